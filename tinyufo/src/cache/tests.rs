use super::*;
use proptest::prelude::*;

#[test]
fn put_get_replace_remove() {
    let c = TinyUfo::new(100, 10);
    assert!(c.put(1, "a", 10).is_empty());
    assert!(c.put(2, "b", 20).is_empty());
    assert_eq!(c.get(&1), Some("a"));
    assert_eq!((c.len(), c.total_weight()), (2, 30));
    // Replacing keeps one entry and takes the new weight.
    assert!(c.put(1, "A", 5).is_empty());
    assert_eq!(c.get(&1), Some("A"));
    assert_eq!((c.len(), c.total_weight()), (2, 25));
    assert_eq!(c.remove(&1), Some("A"));
    assert_eq!(c.remove(&1), None);
    assert_eq!(c.get(&1), None);
    assert_eq!((c.len(), c.total_weight()), (1, 20));
    assert!(c.contains(&2) && !c.contains(&1));
    assert_eq!((c.weight(&2), c.weight(&1)), (Some(20), None));
}

#[test]
fn too_heavy_is_returned_and_drops_the_old_value() {
    let c = TinyUfo::new(10, 10);
    c.put(1, "old", 5);
    let out = c.put(1, "new", 11);
    assert_eq!(
        out,
        [KV {
            key: c.key_hash(&1),
            data: "new",
            weight: 11
        }]
    );
    assert_eq!(c.get(&1), None);
    assert!(c.is_empty());
    assert_eq!(c.total_weight(), 0);
}

#[test]
fn evicted_entries_are_returned_with_their_data() {
    let c = TinyUfo::new(10, 10);
    let mut evicted = Vec::new();
    for k in 0..50u64 {
        evicted.extend(c.put(k, k * 2, 1));
        assert!(c.total_weight() <= 10);
    }
    assert_eq!(evicted.len() + c.len(), 50);
    for kv in &evicted {
        assert_eq!(kv.weight, 1);
        // The data is the evicted key's own.
        assert_eq!(c.key_hash(&(kv.data / 2)), kv.key);
        assert!(!c.contains(&(kv.data / 2)));
    }
}

#[test]
fn frequency_beats_recency_on_a_scan() {
    let c = TinyUfo::new(100, 100);
    let access = |k: u64| {
        let hit = c.get(&k).is_some();
        if !hit {
            c.put(k, k, 1);
        }
        hit
    };
    // A working set of 60 keys read in turn, interleaved with a scan of
    // one-time keys: between two reads of a hot key come 120 distinct
    // keys, so an LRU of 100 would never hit.
    let mut hot_hits = 0;
    for i in 0..20_000u64 {
        access(1_000_000 + i);
        if access(i % 60) && i >= 10_000 {
            hot_hits += 1;
        }
    }
    assert!(hot_hits >= 9_000, "only {hot_hits} of 10000 hot reads hit");
}

#[test]
fn newcomer_may_lose_its_own_admission() {
    let c = TinyUfo::new(10, 10);
    for _ in 0..3 {
        for k in 0..10u64 {
            if c.get(&k).is_none() {
                c.put(k, k, 1);
            }
        }
    }
    // A newcomer heavier than the small queue's share (1) reaches its
    // head at once, duels a hot victim, and loses: it is turned away by
    // its own put, and the hot set stays.
    for k in 100..110u64 {
        let out = c.put(k, k, 2);
        assert!(out.iter().any(|kv| kv.data == k), "{k} was admitted");
    }
    assert!((0..10u64).filter(|k| c.contains(k)).count() >= 9);
}

#[test]
fn force_put_skips_probation() {
    let c = TinyUfo::new(10, 10);
    for k in 0..10u64 {
        c.put(k, k, 1);
    }
    // Both cold; the forced one goes straight to the main queue, the
    // other must win a duel to get there.
    c.put(98, 98, 1);
    c.force_put(99, 99, 1);
    for k in 100..120u64 {
        c.put(k, k, 1);
    }
    assert!(c.contains(&99));
    assert!(!c.contains(&98));
}

#[test]
fn removals_do_not_grow_the_queues() {
    let c = TinyUfo::new(1_000_000, 100);
    for k in 0..20_000u64 {
        c.put(k, k, 1);
        c.remove(&k);
    }
    assert!(c.small.len() + c.main.len() <= 2 * c.len() + 2048);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the operations, the weight stays within the limit, the
    /// counters agree with the entries, and every entry put is either
    /// still there, removed, or returned exactly once.
    #[test]
    fn weight_bound_and_accounting(
        limit in 1usize..200,
        ops in proptest::collection::vec((0u8..4, 0u64..40, 1usize..60), 1..300),
    ) {
        let c = TinyUfo::new(limit, 16);
        let mut model: HashMap<u64, usize> = Default::default();
        for (op, k, w) in ops {
            let out = match op {
                0 => c.put(k, k, w),
                1 => c.force_put(k, k, w),
                2 => { prop_assert_eq!(c.get(&k).is_some(), model.contains_key(&k)); Vec::new() }
                _ => { prop_assert_eq!(c.remove(&k).is_some(), model.remove(&k).is_some()); Vec::new() }
            };
            if op < 2 {
                model.insert(k, w);
            }
            for kv in out {
                prop_assert_eq!(c.key_hash(&kv.data), kv.key);
                prop_assert_eq!(model.remove(&kv.data), Some(kv.weight));
            }
            prop_assert!(c.total_weight() <= limit);
            prop_assert_eq!(c.total_weight(), model.values().sum::<usize>());
            prop_assert_eq!(c.len(), model.len());
        }
    }
}
