//! Tests of one shard's arena and lists.

use super::*;

const TICK: u64 = 10;
/// Timers of 100 ticks or more are batched.
const LAZY: u64 = 100 * TICK;

fn slots() -> Slots {
    Slots::new(TICK, LAZY)
}

/// Schedule everything due, as a pass at `now` would.
fn schedule(slots: &mut Slots, now: u64) -> usize {
    slots.schedule(usize::MAX, now, 0).0
}

fn fired(slots: &mut Slots, tick: u64) -> usize {
    let mut out = Vec::new();
    slots.fire_slot(tick, &mut out);
    out.len()
}

#[test]
fn indexes_are_reused_after_release() {
    let mut slots = slots();
    let a = slots.insert(1, Waker::noop()).unwrap();
    let b = slots.insert(2, Waker::noop()).unwrap();
    assert_ne!(a, b);
    assert!(slots.remove(a).is_some());
    assert!(slots.remove(a).is_none(), "a second removal finds nothing");
    let c = slots.insert(3, Waker::noop()).unwrap();
    assert_eq!(c, a);
    assert_eq!(slots.held(), 2);
}

#[test]
fn scheduling_rounds_up_from_the_given_time() {
    let mut slots = slots();
    let i = slots.insert(25, Waker::noop()).unwrap();
    assert_eq!(schedule(&mut slots, 7), 1);
    // 7 + 25 = 32 rounds up to tick 4 (40).
    assert_eq!(fired(&mut slots, 3), 0);
    assert_eq!(fired(&mut slots, 4), 1);
    assert_eq!(slots.waiting(), 0);
    assert_eq!(slots.held(), 1, "reserved until released");
    assert!(matches!(slots.refresh(i, Waker::noop()), Refresh::Fired));
    assert_eq!(slots.held(), 0);
}

#[test]
fn scheduling_never_picks_a_tick_below_the_floor() {
    let mut slots = slots();
    slots.insert(1, Waker::noop()).unwrap();
    slots.schedule(1, 0, 9);
    assert_eq!(fired(&mut slots, 1), 0);
    assert_eq!(fired(&mut slots, 9), 1);
}

#[test]
fn scheduling_takes_the_oldest_first_within_its_budget() {
    let mut slots = slots();
    let old = slots.insert(10, Waker::noop()).unwrap();
    let new = slots.insert(10, Waker::noop()).unwrap();
    assert_eq!(slots.schedule(1, 0, 0), (1, true));
    assert_eq!(fired(&mut slots, 1), 1);
    assert!(matches!(slots.refresh(old, Waker::noop()), Refresh::Fired));
    assert!(matches!(
        slots.refresh(new, Waker::noop()),
        Refresh::Waiting(_)
    ));
}

#[test]
fn later_rounds_and_other_slots_stay() {
    let mut slots = slots();
    for delay in [50, 50 + TICK * SLOTS as u64, 60] {
        slots.insert(delay, Waker::noop()).unwrap();
    }
    schedule(&mut slots, 0);
    // The long one is batched until close to its time.
    assert_eq!(fired(&mut slots, 5), 1);
    assert_eq!(fired(&mut slots, 6), 1);
    schedule(&mut slots, (5 + SLOTS as u64) * TICK - LAZY);
    assert_eq!(fired(&mut slots, 5 + SLOTS as u64), 1);
    assert_eq!(slots.waiting(), 0);
}

#[test]
fn removal_from_any_list_position_keeps_lists_whole() {
    let mut slots = slots();
    let ids: Vec<u32> = (0..6)
        .map(|_| slots.insert(90, Waker::noop()).unwrap())
        .collect();
    // From the staged list: middle, head, tail.
    slots.remove(ids[2]).unwrap();
    slots.remove(ids[5]).unwrap();
    slots.remove(ids[0]).unwrap();
    schedule(&mut slots, 0);
    // From a slot list.
    slots.remove(ids[3]).unwrap();
    assert_eq!(fired(&mut slots, 9), 2);
    assert_eq!(slots.waiting(), 0);
}

#[test]
fn fire_all_reaches_every_slot() {
    let mut slots = slots();
    for tick in [1, 7, 1023, 1024, 5000, 9999] {
        slots.insert(tick * TICK, Waker::noop()).unwrap();
    }
    schedule(&mut slots, 0);
    schedule(&mut slots, 9999 * TICK);
    let mut out = Vec::new();
    slots.fire_all(5000, &mut out);
    assert_eq!(out.len(), 5);
    assert_eq!(slots.waiting(), 1);
}

#[test]
fn an_emptied_large_arena_frees_its_memory() {
    let mut slots = slots();
    let ids: Vec<u32> = (0..=KEEP_CAPACITY)
        .map(|_| slots.insert(1, Waker::noop()).unwrap())
        .collect();
    for id in ids {
        slots.remove(id).unwrap();
    }
    assert!(slots.entries.capacity() > KEEP_CAPACITY, "kept for reuse");
    slots.shrink_if_empty();
    assert_eq!(slots.entries.capacity(), 0);
}

#[test]
fn a_batch_keeps_its_sealing_time_and_waits_until_nearly_due() {
    let mut slots = slots();
    let long = slots.insert(LAZY + 5 * TICK, Waker::noop()).unwrap();
    // Sealed by the pass at 3: due at LAZY + 53, so tick 106.
    assert_eq!(schedule(&mut slots, 3), 0);
    assert_eq!(schedule(&mut slots, LAZY - 3 * TICK), 0, "not yet near");
    assert_eq!(schedule(&mut slots, LAZY - 2 * TICK + 3), 1);
    assert_eq!(fired(&mut slots, 105), 0);
    assert_eq!(fired(&mut slots, 106), 1);
    assert!(matches!(slots.refresh(long, Waker::noop()), Refresh::Fired));
}

#[test]
fn released_long_timers_are_never_scheduled() {
    let mut slots = slots();
    let ids: Vec<u32> = (0..3)
        .map(|_| slots.insert(LAZY * 3, Waker::noop()).unwrap())
        .collect();
    schedule(&mut slots, 0);
    let kept = slots.insert(LAZY * 3, Waker::noop()).unwrap();
    schedule(&mut slots, TICK);
    for id in ids {
        slots.remove(id).unwrap();
    }
    // The first batch is empty; only the kept timer is scheduled.
    assert_eq!(schedule(&mut slots, LAZY * 3), 1);
    assert!(slots.batches.is_empty());
    slots.remove(kept).unwrap();
    assert_eq!(slots.held(), 0);
}

#[test]
fn removal_from_a_batch_keeps_it_whole() {
    let mut slots = slots();
    let ids: Vec<u32> = (0..4)
        .map(|_| slots.insert(LAZY, Waker::noop()).unwrap())
        .collect();
    slots.remove(ids[3]).unwrap();
    schedule(&mut slots, 0);
    slots.remove(ids[1]).unwrap();
    slots.remove(ids[0]).unwrap();
    assert_eq!(schedule(&mut slots, LAZY), 1);
    assert_eq!(fired(&mut slots, LAZY / TICK), 1);
}

#[test]
fn next_pass_is_the_next_tick_while_short_timers_are_staged() {
    let mut slots = slots();
    assert_eq!(slots.next_pass(4, 14), 14, "nothing waits: the latest");
    slots.insert(90, Waker::noop()).unwrap();
    assert!(slots.has_staged());
    assert_eq!(slots.next_pass(4, 14), 5);
    schedule(&mut slots, 40);
    assert!(!slots.has_staged());
    // Slotted for tick 13 (40 + 90 rounded up to tick 13).
    assert_eq!(slots.next_pass(4, 14), 13);
    assert_eq!(slots.next_pass(4, 9), 9, "never past the latest");
    assert_eq!(slots.next_pass(4, 2), 5, "never before the next tick");
}

#[test]
fn next_pass_comes_when_the_oldest_batch_is_slotted() {
    let mut slots = slots();
    slots.insert(LAZY + 5 * TICK, Waker::noop()).unwrap();
    // Sealed at 3: `schedule` slots it from a reading of LAZY + 3 - 2 ticks,
    // which falls in tick 99.
    assert_eq!(schedule(&mut slots, 3), 0);
    assert_eq!(slots.next_pass(0, 1000), 99);
    assert_eq!(slots.next_pass(0, 50), 50);
    // A pass at the start of that tick slots it.
    assert_eq!(schedule(&mut slots, 99 * TICK), 1);
    assert_eq!(slots.next_pass(99, 1000), 106);
    // An emptied batch still asks for its pass (which drops it).
    let mut slots = self::slots();
    let id = slots.insert(LAZY, Waker::noop()).unwrap();
    schedule(&mut slots, 0);
    slots.remove(id).unwrap();
    assert_eq!(slots.next_pass(0, 1000), 98);
}
