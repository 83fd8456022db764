use super::*;
use proptest::prelude::*;

fn set(weights: &[usize]) -> BTreeSet<Backend> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Backend::new_with_weight(&format!("10.0.0.{}:80", i + 1), w).unwrap())
        .collect()
}

/// Index of `backend` in the (sorted) set of [`set`].
fn index(backend: &Backend) -> usize {
    let ip = backend.addr.as_inet().unwrap().ip().to_string();
    ip.rsplit('.').next().unwrap().parse::<usize>().unwrap() - 1
}

fn counts<S: BackendSelection>(
    weights: &[usize],
    picks: usize,
    key: impl Fn(usize) -> Vec<u8>,
) -> Vec<usize> {
    let selection = Arc::new(S::build(&set(weights)));
    let mut counts = vec![0; weights.len()];
    for i in 0..picks {
        let mut iter = selection.iter(&key(i));
        counts[index(iter.next().unwrap())] += 1;
    }
    counts
}

#[test]
fn smooth_cycle_spreads_turns() {
    let cycle = smooth_cycle(Weighted::new(&set(&[5, 1, 1])).backends());
    assert_eq!(&*cycle, &[0, 0, 0, 1, 2, 0, 0]);
    // Weights are reduced by their gcd: 4:2 cycles like 2:1.
    let cycle = smooth_cycle(Weighted::new(&set(&[4, 2])).backends());
    assert_eq!(&*cycle, &[0, 1, 0]);
    // Weight 0 counts as 1.
    let cycle = smooth_cycle(Weighted::new(&set(&[0, 1])).backends());
    assert_eq!(&*cycle, &[0, 1]);
}

#[test]
fn round_robin_distribution_is_exact() {
    // 100,000 is a whole number of cycles (1 + 2 + 3 + 4 = 10), so each
    // backend gets exactly its share.
    let counts = counts::<RoundRobin>(&[1, 2, 3, 4], 100_000, |_| Vec::new());
    assert_eq!(counts, [10_000, 20_000, 30_000, 40_000]);
}

#[test]
fn random_distribution_within_one_percent() {
    let weights = [1, 2, 3, 4];
    let picks = 100_000;
    let counts = counts::<Random>(&weights, picks, |_| Vec::new());
    for (count, weight) in counts.iter().zip(weights) {
        let expected = picks * weight / 10;
        // The standard deviation of a count is at most sqrt(picks / 4) =
        // 158; 1% of 100,000 is over 6 deviations.
        let off = count.abs_diff(expected);
        assert!(off < picks / 100, "{counts:?}: {count} vs {expected}");
    }
}

#[test]
fn fnv_hash_distribution_and_stability() {
    let weights = [1, 1, 2];
    let picks = 100_000;
    let counts = counts::<FNVHash>(&weights, picks, |i| format!("key-{i}").into_bytes());
    for (count, weight) in counts.iter().zip(weights) {
        let expected = picks * weight / 4;
        assert!(count.abs_diff(expected) < picks / 50, "{counts:?}");
    }
    // The same key goes to the same backend, across rebuilds.
    let a = Arc::new(FNVHash::build(&set(&[1, 1, 2])));
    let b = Arc::new(FNVHash::build(&set(&[1, 1, 2])));
    for key in [&b"user-1"[..], b"", b"x"] {
        assert_eq!(a.iter(key).next(), b.iter(key).next());
    }
}

#[test]
fn fnv_hash_failover_visits_each_backend_once() {
    let selection = Arc::new(FNVHash::build(&set(&[1, 2, 3])));
    let mut iter = selection.iter(b"k");
    let mut seen = Vec::new();
    while let Some(b) = iter.next() {
        seen.push(index(b));
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2]);
}

#[test]
fn failover_reaches_a_light_backend_past_a_heavy_one() {
    // Failover is unweighted: the second candidate is never the heavy
    // backend again, and each iterator visits each backend once.
    let rr = Arc::new(RoundRobin::build(&set(&[100, 1])));
    let random = Arc::new(Random::build(&set(&[100, 1])));
    for _ in 0..300 {
        let mut iter = rr.iter(b"");
        let (a, b) = (index(iter.next().unwrap()), index(iter.next().unwrap()));
        assert_ne!(a, b);
        assert!(iter.next().is_none());
        let mut iter = random.iter(b"");
        let (a, b) = (index(iter.next().unwrap()), index(iter.next().unwrap()));
        assert_ne!(a, b);
        assert!(iter.next().is_none());
    }
}

#[test]
fn round_robin_failover_spreads_over_the_others() {
    // Requests whose slot lands on backend 0 fail over to all the others,
    // not only to backend 1.
    let rr = Arc::new(RoundRobin::build(&set(&[1, 1, 1, 1, 1])));
    let mut second = vec![0usize; 5];
    for _ in 0..5_000 {
        let mut iter = rr.iter(b"");
        if index(iter.next().unwrap()) == 0 {
            second[index(iter.next().unwrap())] += 1;
        }
    }
    assert_eq!(second[0], 0);
    for (i, &n) in second.iter().enumerate().skip(1) {
        assert!(n > 100, "backend {i} got {n} of the failovers: {second:?}");
    }
}

#[test]
fn empty_sets_select_nothing() {
    let empty = BTreeSet::new();
    assert!(
        Arc::new(RoundRobin::build(&empty))
            .iter(b"")
            .next()
            .is_none()
    );
    assert!(Arc::new(Random::build(&empty)).iter(b"").next().is_none());
    assert!(Arc::new(FNVHash::build(&empty)).iter(b"").next().is_none());
}

#[test]
fn huge_weights_are_scaled_not_exploded() {
    let cycle = smooth_cycle(Weighted::new(&set(&[usize::MAX / 2, 3, 1 << 40])).backends());
    assert!(cycle.len() as u64 <= MAX_CYCLE + 3);
    assert!(cycle.contains(&1), "every backend keeps a turn");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Failover gives every backend but the first exactly once.
    #[test]
    fn failover_visits_every_other_backend_once(len in 1usize..64, first in any::<usize>(), spread in any::<u64>()) {
        let first = first % len;
        let mut failover = Failover::new(first, spread, len);
        let mut seen = Vec::new();
        while let Some(i) = failover.next() {
            prop_assert!(seen.len() < len, "runaway failover");
            seen.push(i);
        }
        seen.sort_unstable();
        let expected: Vec<usize> = (0..len).filter(|&i| i != first).collect();
        prop_assert_eq!(seen, expected);
    }

    /// Over one cycle every backend gets exactly its reduced weight, and no
    /// backend waits longer than about cycle / weight + 1 between turns.
    #[test]
    fn round_robin_cycle_is_exact_and_smooth(weights in prop::collection::vec(1usize..20, 1..12)) {
        let weighted = Weighted::new(&set(&weights));
        let reduced = reduced_weights(weighted.backends());
        let cycle = smooth_cycle(weighted.backends());
        let total: u64 = reduced.iter().sum();
        prop_assert_eq!(cycle.len() as u64, total);
        for (i, &w) in reduced.iter().enumerate() {
            let turns: Vec<usize> = cycle.iter().enumerate()
                .filter(|&(_, &b)| b as usize == i).map(|(pos, _)| pos).collect();
            prop_assert_eq!(turns.len() as u64, w);
            // Gaps between turns, wrapping around the cycle.
            let len = cycle.len();
            for pair in 0..turns.len() {
                let next = turns[(pair + 1) % turns.len()] + if pair + 1 == turns.len() { len } else { 0 };
                let gap = (next - turns[pair]) as u64;
                prop_assert!(gap * w <= total + reduced.len() as u64 * w,
                    "backend {} gap {} over cycle {} with weight {}", i, gap, total, w);
            }
        }
    }

    /// Weighted lookup maps every point to the backend whose range holds it.
    #[test]
    fn weighted_index_matches_linear_scan(weights in prop::collection::vec(0usize..50, 1..20), point in any::<u64>()) {
        let weighted = Weighted::new(&set(&weights));
        let target = point % weighted.total;
        let mut start = 0u64;
        let mut expected = None;
        for (i, b) in weighted.backends().iter().enumerate() {
            let end = start + b.effective_weight() as u64;
            if (start..end).contains(&target) { expected = Some(i); break; }
            start = end;
        }
        prop_assert_eq!(weighted.index_of(point), expected);
    }

    /// Random and hash selections always return a member of the set.
    #[test]
    fn picks_are_members(weights in prop::collection::vec(0usize..10, 1..10), key in prop::collection::vec(any::<u8>(), 0..32)) {
        let backends = set(&weights);
        let random = Arc::new(Random::build(&backends));
        let hash = Arc::new(FNVHash::build(&backends));
        let rr = Arc::new(RoundRobin::build(&backends));
        prop_assert!(backends.contains(random.iter(&key).next().unwrap()));
        prop_assert!(backends.contains(hash.iter(&key).next().unwrap()));
        prop_assert!(backends.contains(rr.iter(&key).next().unwrap()));
    }
}
