//! Deterministic tests of the wheel: ticks and clock readings are plain
//! numbers, no clock runs.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::Wake;

const TICK: u64 = 10;

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

/// One driver pass at clock reading `now_nanos`: schedule, then fire.
fn pass(wheel: &Wheel, now_nanos: u64) -> usize {
    wheel.schedule(|| now_nanos);
    let mut out = Vec::new();
    wheel.advance(now_nanos / TICK, &mut out);
    let n = out.len();
    out.into_iter().for_each(Waker::wake);
    n
}

#[test]
fn fires_at_the_first_tick_after_schedule_time_plus_delay() {
    let wheel = Wheel::new(4, TICK);
    let log = Arc::default();
    let p = probe(7, &log);
    let waker = Waker::from(Arc::clone(&p));
    let mut k = wheel.insert(0, 25, &waker).unwrap();
    // Scheduled at 3: due at 28, so tick 3 (30).
    assert_eq!(pass(&wheel, 3), 0);
    assert_eq!(pass(&wheel, 29), 0);
    assert!(!wheel.refresh(&mut k, &waker));
    drop(waker);
    assert_eq!(pass(&wheel, 30), 1);
    assert_eq!(*log.lock().unwrap(), vec![7]);
    assert_eq!(Arc::strong_count(&p), 1, "the wheel let go of the waker");
    assert_eq!(wheel.held(), 1, "reserved until its timer lets go");
    assert!(wheel.refresh(&mut k, Waker::noop()));
    assert_eq!(wheel.held(), 0);
}

#[test]
fn the_start_is_the_pass_that_schedules() {
    let wheel = Wheel::new(1, TICK);
    let log = Arc::default();
    wheel.insert(0, 10, &Waker::from(probe(1, &log))).unwrap();
    // The first pass after arming reads 47: due at 57, so tick 6 (60).
    assert_eq!(pass(&wheel, 47), 0);
    assert_eq!(pass(&wheel, 59), 0);
    assert_eq!(pass(&wheel, 60), 1);
}

#[test]
fn remove_frees_the_entry_and_the_waker() {
    let wheel = Wheel::new(2, TICK);
    let log = Arc::default();
    let p = probe(1, &log);
    let staged = wheel.insert(3, 90, &Waker::from(Arc::clone(&p))).unwrap();
    let slotted = wheel.insert(3, 90, &Waker::from(Arc::clone(&p))).unwrap();
    assert_eq!(Arc::strong_count(&p), 3);
    pass(&wheel, 0);
    let late = wheel.insert(3, 90, &Waker::from(Arc::clone(&p))).unwrap();
    wheel.remove(&staged);
    wheel.remove(&slotted);
    wheel.remove(&late);
    assert_eq!(wheel.held(), 0);
    assert_eq!(Arc::strong_count(&p), 1);
    assert_eq!(pass(&wheel, 1000), 0);
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn refresh_swaps_the_waker() {
    let wheel = Wheel::new(1, TICK);
    let log = Arc::default();
    let old = probe(1, &log);
    let new = probe(2, &log);
    let mut k = wheel.insert(0, 20, &Waker::from(Arc::clone(&old))).unwrap();
    assert!(!wheel.refresh(&mut k, &Waker::from(Arc::clone(&new))));
    assert_eq!(Arc::strong_count(&old), 1, "the replaced waker was dropped");
    assert_eq!(pass(&wheel, 20), 0);
    assert_eq!(pass(&wheel, 40), 1);
    assert_eq!(*log.lock().unwrap(), vec![2]);
}

#[test]
fn later_rounds_wait_for_their_own_round() {
    let wheel = Wheel::new(1, TICK);
    let log = Arc::default();
    let far = 3 * SLOTS as u64 + 5;
    wheel
        .insert(0, far * TICK, &Waker::from(probe(1, &log)))
        .unwrap();
    pass(&wheel, 0);
    for now in (1..far).step_by(SLOTS / 2) {
        assert_eq!(pass(&wheel, now * TICK), 0, "fired early at tick {now}");
    }
    assert_eq!(pass(&wheel, far * TICK), 1);
}

#[test]
fn a_jump_within_a_round_fires_in_tick_order() {
    let wheel = Wheel::new(4, TICK);
    let log = Arc::default();
    for (hint, ticks) in [(0, 9), (1, 2), (2, 7), (3, 4), (0, 1), (1, 8)] {
        wheel
            .insert(
                hint,
                ticks * TICK,
                &Waker::from(probe(ticks as usize, &log)),
            )
            .unwrap();
    }
    pass(&wheel, 0);
    assert_eq!(pass(&wheel, 100 * TICK), 6);
    assert_eq!(*log.lock().unwrap(), vec![1, 2, 4, 7, 8, 9]);
}

#[test]
fn a_jump_over_a_round_fires_everything_due() {
    let wheel = Wheel::new(2, TICK);
    let log = Arc::default();
    for (i, ticks) in [1, 500, 1023, 1024, 3000, 9000].into_iter().enumerate() {
        wheel
            .insert(i, ticks * TICK, &Waker::from(probe(i, &log)))
            .unwrap();
    }
    pass(&wheel, 0);
    assert_eq!(pass(&wheel, 5000 * TICK), 5);
    assert_eq!(wheel.waiting(), 1);
    assert_eq!(pass(&wheel, 8999 * TICK), 0);
    assert_eq!(pass(&wheel, 9000 * TICK), 1);
}

#[derive(Debug, Clone)]
enum Op {
    Insert { hint: usize, delay: u64 },
    Remove(usize),
    Refresh(usize),
    Pass(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8usize, 1..30_000u64).prop_map(|(hint, delay)| Op::Insert { hint, delay }),
        2 => (0..64usize).prop_map(Op::Remove),
        2 => (0..64usize).prop_map(Op::Refresh),
        2 => prop_oneof![0..40u64, 0..15_000u64].prop_map(Op::Pass),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Against a model: a timer armed with delay `d` fires exactly once, at
    /// the first pass whose tick has reached `start + d`, where `start` is
    /// the clock of the first pass after arming; never if removed before.
    #[test]
    fn behaves_like_a_map_of_deadlines(ops in prop::collection::vec(op(), 1..120)) {
        let wheel = Wheel::new(3, TICK);
        let log = Arc::default();
        let mut now = 0u64;
        let mut keys = Vec::new();
        let mut wakers = Vec::new();
        // id -> delay for staged timers, id -> deadline (ns) once scheduled.
        let mut staged: BTreeMap<usize, u64> = BTreeMap::new();
        let mut scheduled: BTreeMap<usize, u64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert { hint, delay } => {
                    let id = keys.len();
                    wakers.push(Waker::from(probe(id, &log)));
                    keys.push(wheel.insert(hint, delay, &wakers[id]));
                    staged.insert(id, delay);
                }
                Op::Remove(i) => {
                    // A timer releases its entry once, on drop.
                    if let Some(k) = keys.get_mut(i).and_then(Option::take) {
                        wheel.remove(&k);
                        staged.remove(&i);
                        scheduled.remove(&i);
                    }
                }
                Op::Refresh(i) => {
                    // With the waker it was armed with, so that the check
                    // without a lock is the one taken while nothing fired.
                    if let Some(k) = keys.get_mut(i).and_then(Option::as_mut) {
                        let fired = !staged.contains_key(&i) && !scheduled.contains_key(&i);
                        prop_assert_eq!(wheel.refresh(k, &wakers[i]), fired);
                        if fired {
                            // A fired refresh released the entry.
                            keys[i] = None;
                        }
                    }
                }
                Op::Pass(by) => {
                    now += by;
                    for (id, delay) in std::mem::take(&mut staged) {
                        scheduled.insert(id, now + delay);
                    }
                    pass(&wheel, now);
                    let tick_start = now / TICK * TICK;
                    let mut due: Vec<(u64, usize)> = scheduled
                        .iter()
                        .filter(|(_, deadline)| **deadline <= tick_start)
                        .map(|(id, deadline)| (*deadline, *id))
                        .collect();
                    due.sort_unstable();
                    let woken = std::mem::take(&mut *log.lock().unwrap());
                    let mut woken_sorted = woken.clone();
                    woken_sorted.sort_unstable();
                    let mut expected: Vec<usize> = due.iter().map(|(_, id)| *id).collect();
                    expected.sort_unstable();
                    prop_assert_eq!(woken_sorted, expected);
                    if by < SLOTS as u64 * TICK {
                        // Within a round, buckets fire in order.
                        let ticks: Vec<u64> =
                            woken.iter().map(|id| scheduled[id].div_ceil(TICK)).collect();
                        prop_assert!(ticks.windows(2).all(|w| w[0] <= w[1]));
                    }
                    for (_, id) in due {
                        scheduled.remove(&id);
                    }
                }
            }
            prop_assert_eq!(wheel.waiting(), staged.len() + scheduled.len());
        }
    }
}
