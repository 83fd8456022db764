//! Deterministic tests of the wheel: ticks are plain numbers, no clock runs.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::Wake;

/// A waker that logs its id when woken; its `Arc` count tells whether the
/// wheel still holds a clone.
struct Probe {
    id: usize,
    log: Arc<Mutex<Vec<usize>>>,
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.log.lock().unwrap().push(self.id);
    }
}

fn probe(id: usize, log: &Arc<Mutex<Vec<usize>>>) -> Arc<Probe> {
    Arc::new(Probe {
        id,
        log: Arc::clone(log),
    })
}

fn fire(wheel: &Wheel, now: u64) -> usize {
    let mut out = Vec::new();
    wheel.advance(now, &mut out);
    let n = out.len();
    out.into_iter().for_each(Waker::wake);
    n
}

fn key(insert: Insert) -> Key {
    match insert {
        Insert::Waiting(key) => key,
        other => panic!("expected a waiting timer, got {other:?}"),
    }
}

#[test]
fn fires_at_its_tick_and_not_before() {
    let wheel = Wheel::new(4, 0);
    let log = Arc::default();
    let p = probe(7, &log);
    let k = key(wheel.insert(0, 5, &Waker::from(Arc::clone(&p))));
    assert_eq!(fire(&wheel, 4), 0);
    assert!(!wheel.has_fired(&k));
    assert_eq!(fire(&wheel, 5), 1);
    assert!(wheel.has_fired(&k));
    assert_eq!(*log.lock().unwrap(), vec![7]);
    assert_eq!(Arc::strong_count(&p), 1, "the wheel let go of the waker");
    assert_eq!(wheel.len(), 0);
}

#[test]
fn a_passed_tick_is_due_at_once() {
    let wheel = Wheel::new(2, 10);
    assert_eq!(wheel.insert(1, 10, Waker::noop()), Insert::Due);
    assert_eq!(wheel.insert(1, 3, Waker::noop()), Insert::Due);
    assert!(matches!(
        wheel.insert(1, 11, Waker::noop()),
        Insert::Waiting(_)
    ));
}

#[test]
fn remove_frees_the_waker() {
    let wheel = Wheel::new(2, 0);
    let log = Arc::default();
    let p = probe(1, &log);
    let k = key(wheel.insert(3, 9, &Waker::from(Arc::clone(&p))));
    assert_eq!(wheel.len(), 1);
    assert_eq!(Arc::strong_count(&p), 2);
    wheel.remove(&k);
    assert_eq!(wheel.len(), 0);
    assert_eq!(Arc::strong_count(&p), 1);
    assert_eq!(fire(&wheel, 100), 0);
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn removing_a_fired_timer_spares_the_next_one_in_its_slot() {
    let wheel = Wheel::new(1, 0);
    let log = Arc::default();
    let first = key(wheel.insert(0, 3, &Waker::from(probe(1, &log))));
    assert_eq!(fire(&wheel, 3), 1);
    // Same slot one round later: the slab hands out the freed index again.
    let second = key(wheel.insert(0, 3 + SLOTS as u64, &Waker::from(probe(2, &log))));
    assert_eq!(first.index, second.index);
    wheel.remove(&first);
    assert_eq!(wheel.len(), 1, "the stale key did not remove the new timer");
    assert_eq!(fire(&wheel, 3 + SLOTS as u64), 1);
    assert_eq!(*log.lock().unwrap(), vec![1, 2]);
}

#[test]
fn refresh_swaps_the_waker() {
    let wheel = Wheel::new(1, 0);
    let log = Arc::default();
    let old = probe(1, &log);
    let new = probe(2, &log);
    let k = key(wheel.insert(0, 2, &Waker::from(Arc::clone(&old))));
    assert!(!wheel.refresh(&k, &Waker::from(Arc::clone(&new))));
    assert_eq!(Arc::strong_count(&old), 1, "the replaced waker was dropped");
    assert_eq!(fire(&wheel, 2), 1);
    assert!(wheel.refresh(&k, &Waker::from(Arc::clone(&new))));
    assert_eq!(*log.lock().unwrap(), vec![2]);
}

#[test]
fn later_rounds_wait_for_their_own_round() {
    let wheel = Wheel::new(1, 0);
    let log = Arc::default();
    let far = 5 + 3 * SLOTS as u64;
    wheel.insert(0, far, &Waker::from(probe(1, &log)));
    for now in (5..far).step_by(SLOTS / 2) {
        assert_eq!(fire(&wheel, now), 0, "fired early at tick {now}");
    }
    assert_eq!(fire(&wheel, far), 1);
}

#[test]
fn a_jump_within_a_round_fires_in_tick_order() {
    let wheel = Wheel::new(4, 0);
    let log = Arc::default();
    for (hint, tick) in [(0, 9), (1, 2), (2, 7), (3, 4), (0, 1), (1, 8)] {
        wheel.insert(hint, tick, &Waker::from(probe(tick as usize, &log)));
    }
    assert_eq!(fire(&wheel, 100), 6);
    assert_eq!(*log.lock().unwrap(), vec![1, 2, 4, 7, 8, 9]);
}

#[test]
fn a_jump_over_a_round_fires_everything_due() {
    let wheel = Wheel::new(2, 0);
    let log = Arc::default();
    let ticks = [1, 500, 1023, 1024, 3000, 9000];
    for (i, tick) in ticks.into_iter().enumerate() {
        wheel.insert(i, tick, &Waker::from(probe(tick as usize, &log)));
    }
    assert_eq!(fire(&wheel, 5000), 5);
    assert_eq!(wheel.len(), 1);
    assert_eq!(fire(&wheel, 8999), 0);
    assert_eq!(fire(&wheel, 9000), 1);
}

#[derive(Debug, Clone)]
enum Op {
    Insert { hint: usize, ahead: u64 },
    Remove(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8usize, 0..3000u64).prop_map(|(hint, ahead)| Op::Insert { hint, ahead }),
        2 => (0..64usize).prop_map(Op::Remove),
        2 => prop_oneof![0..4u64, 0..1500u64].prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Against a model: every timer wakes exactly once, at the first
    /// advance that reaches its tick, unless removed before.
    #[test]
    fn behaves_like_a_map_of_deadlines(ops in prop::collection::vec(op(), 1..120)) {
        let wheel = Wheel::new(3, 0);
        let log = Arc::default();
        let mut now = 0u64;
        let mut keys = Vec::new();
        let mut model: BTreeMap<usize, u64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert { hint, ahead } => {
                    let id = keys.len();
                    let tick = now + ahead;
                    match wheel.insert(hint, tick, &Waker::from(probe(id, &log))) {
                        Insert::Waiting(k) => {
                            prop_assert!(ahead > 0);
                            model.insert(id, tick);
                            keys.push(Some(k));
                        }
                        Insert::Due => {
                            prop_assert_eq!(ahead, 0);
                            keys.push(None);
                        }
                        Insert::Full => prop_assert!(false, "slot full"),
                    }
                }
                Op::Remove(i) => {
                    // A registration removes itself once, on drop.
                    if let Some(k) = keys.get_mut(i).and_then(Option::take) {
                        wheel.remove(&k);
                        model.remove(&i);
                    }
                }
                Op::Advance(by) => {
                    now += by;
                    fire(&wheel, now);
                    let mut due: Vec<(u64, usize)> = model
                        .iter()
                        .filter(|(_, tick)| **tick <= now)
                        .map(|(id, tick)| (*tick, *id))
                        .collect();
                    due.sort_unstable();
                    let woken = std::mem::take(&mut *log.lock().unwrap());
                    let mut woken_sorted = woken.clone();
                    woken_sorted.sort_unstable();
                    let mut expected: Vec<usize> = due.iter().map(|(_, id)| *id).collect();
                    expected.sort_unstable();
                    prop_assert_eq!(woken_sorted, expected);
                    if by < SLOTS as u64 {
                        // Within a round, ticks fire in order.
                        let ticks: Vec<u64> = woken.iter().map(|id| model[id]).collect();
                        prop_assert!(ticks.windows(2).all(|w| w[0] <= w[1]));
                    }
                    for (_, id) in due {
                        model.remove(&id);
                    }
                }
            }
            prop_assert_eq!(wheel.len(), model.len());
        }
    }
}
