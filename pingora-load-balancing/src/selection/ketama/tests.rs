use super::*;
use proptest::prelude::*;

/// The five servers of the reference table, with their weights.
const SERVERS: [(&str, usize); 5] = [
    ("10.0.1.1:11211", 1),
    ("10.0.1.2:11211", 1),
    ("10.0.1.3:11211", 2),
    ("10.0.1.4:11211", 1),
    ("10.0.1.5:11211", 3),
];

fn set(servers: &[(&str, usize)]) -> BTreeSet<Backend> {
    servers
        .iter()
        .map(|(addr, w)| Backend::new_with_weight(addr, *w).unwrap())
        .collect()
}

fn pick(ring: &Arc<Consistent>, key: &str) -> String {
    ring.iter(key.as_bytes()).next().unwrap().to_string()
}

/// A straightforward reference of libketama's algorithm, written apart
/// from the implementation: points in a flat list in server order, lookup
/// by a linear scan for the smallest point not below the key's hash.
fn reference(servers: &[(&str, usize)], key: &str) -> String {
    let total: usize = servers.iter().map(|s| s.1).sum();
    let mut points: Vec<(u32, &str)> = Vec::new();
    for (addr, weight) in servers {
        let pct = *weight as f32 / total as f32;
        let ks = (f64::from(pct) * 40.0 * f64::from(servers.len() as f32)) as f32;
        for k in 0..ks.floor() as u32 {
            let d = md5(format!("{addr}-{k}").as_bytes());
            for h in 0..4 {
                let point = u32::from(d[3 + h * 4]) << 24
                    | u32::from(d[2 + h * 4]) << 16
                    | u32::from(d[1 + h * 4]) << 8
                    | u32::from(d[h * 4]);
                points.push((point, addr));
            }
        }
    }
    let d = md5(key.as_bytes());
    let hash = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    let at_or_after = points.iter().filter(|p| p.0 >= hash).min_by_key(|p| p.0);
    let wrapped = points.iter().min_by_key(|p| p.0);
    at_or_after.or(wrapped).unwrap().1.to_string()
}

#[test]
fn first_points_match_a_hand_check() {
    // md5("10.0.1.1:11211-0") = 1387ed90 033bcef5 a6860306 7d362ba2 (from
    // Python's hashlib); read 4 bytes at a time little-endian.
    let d = md5(b"10.0.1.1:11211-0");
    assert_eq!(d[..4], [0x13, 0x87, 0xed, 0x90]);
    let ring = Consistent::build(&set(&SERVERS[..1]));
    let first: Vec<u32> = [0x90ed_8713, 0xf5ce_3b03, 0x0603_86a6, 0xa22b_367d].to_vec();
    for point in first {
        assert!(ring.ring.iter().any(|p| p.value == point), "{point:#x}");
    }
}

#[test]
fn point_counts_follow_libketama() {
    // 40 digests (160 points) per server at equal weights.
    assert_eq!(Consistent::build(&set(&SERVERS[..2])).ring.len(), 2 * 160);
    // Weights 1+1+2+1+3 = 8 over 5 servers: 25, 25, 50, 25, 75 digests.
    assert_eq!(Consistent::build(&set(&SERVERS)).ring.len(), 200 * 4);
    // libketama's float rounding: 21/40 of 5 * 40 digests is 105 exactly,
    // but floorf(float(21/40) * 40.0 * 5) is 104.
    assert_eq!(digests_for(21, 40, 5, DIGESTS_PER_SERVER), 104);
    assert_eq!(digests_for(1, 3, 3, DIGESTS_PER_SERVER), 40);
}

#[test]
fn known_keys_map_to_known_servers() {
    // Computed with an independent Python model of libketama (hashlib's
    // MD5, float32 rounding emulated with struct): key -> server.
    let table = [
        ("", "10.0.1.4:11211"),
        ("a", "10.0.1.3:11211"),
        ("foo", "10.0.1.2:11211"),
        ("bar", "10.0.1.5:11211"),
        ("user:1", "10.0.1.5:11211"),
        ("user:2", "10.0.1.5:11211"),
        ("user:3", "10.0.1.5:11211"),
        ("session-42", "10.0.1.5:11211"),
        ("memcached", "10.0.1.3:11211"),
        ("ketama", "10.0.1.3:11211"),
        ("hello world", "10.0.1.2:11211"),
        ("0", "10.0.1.1:11211"),
        ("1", "10.0.1.3:11211"),
        ("2", "10.0.1.3:11211"),
        ("3", "10.0.1.3:11211"),
        ("4", "10.0.1.5:11211"),
    ];
    let ring = Arc::new(Consistent::build(&set(&SERVERS)));
    for (key, server) in table {
        assert_eq!(pick(&ring, key), server, "key {key:?}");
        assert_eq!(reference(&SERVERS, key), server, "reference, key {key:?}");
    }
}

#[test]
fn removing_one_of_n_moves_about_one_nth() {
    let servers: Vec<String> = (1..=10).map(|i| format!("10.0.2.{i}:11211")).collect();
    let all: Vec<(&str, usize)> = servers.iter().map(|s| (s.as_str(), 1)).collect();
    let before = Arc::new(Consistent::build(&set(&all)));
    let after = Arc::new(Consistent::build(&set(&all[1..])));
    let removed = all[0].0;
    let keys = 100_000;
    let (mut moved, mut owned) = (0, 0);
    for i in 0..keys {
        let key = format!("key-{i}");
        let (old, new) = (pick(&before, &key), pick(&after, &key));
        if old == removed {
            owned += 1;
        } else if old != new {
            moved += 1;
        }
    }
    // Only the removed server's keys move, and it held about 1/10.
    assert_eq!(moved, 0, "keys of the remaining servers must stay");
    let share = owned as f64 / keys as f64;
    assert!((0.07..0.13).contains(&share), "removed server held {share}");
}

#[test]
fn failover_walks_distinct_servers_clockwise() {
    let ring = Arc::new(Consistent::build(&set(&SERVERS)));
    let mut iter = ring.iter(b"user:1");
    let first = iter.next().unwrap().clone();
    let second = iter.next().unwrap().clone();
    assert_ne!(first, second);
    // The second choice is where the key goes once the first is removed.
    let without: Vec<(&str, usize)> = SERVERS
        .iter()
        .copied()
        .filter(|(a, _)| *a != first.to_string())
        .collect();
    assert_eq!(second.to_string(), reference(&without, "user:1"));
    // One lap at most.
    let mut rest = 0;
    while iter.next().is_some() {
        rest += 1;
    }
    assert!(rest < ring.ring.len());
}

#[test]
fn empty_ring_selects_nothing() {
    let ring = Arc::new(Consistent::build(&BTreeSet::new()));
    assert!(ring.iter(b"k").next().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The ring agrees with the reference for any set and key.
    #[test]
    fn ring_matches_reference(
        weights in prop::collection::vec(1usize..5, 1..6),
        key in "[a-z0-9:]{0,24}",
    ) {
        let addrs: Vec<String> = (0..weights.len()).map(|i| format!("192.0.2.{}:80", i + 1)).collect();
        let servers: Vec<(&str, usize)> = addrs.iter().map(String::as_str).zip(weights).collect();
        let ring = Arc::new(Consistent::build(&set(&servers)));
        prop_assert_eq!(pick(&ring, &key), reference(&servers, &key));
    }
}

#[test]
fn point_multiple_sizes_the_ring() {
    let servers = [("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)];
    let default = Consistent::build(&set(&servers));
    assert_eq!(default.ring.len(), 3 * 160);
    for (multiple, points) in [
        (Some(320), 320),
        (Some(2), 4),
        (Some(161), 160),
        (None, 160),
    ] {
        let mut config = SelectionConfig::default();
        config.ketama.point_multiple = multiple;
        let ring = Consistent::build_with_config(&set(&servers), &config);
        assert_eq!(ring.ring.len(), 3 * points, "{multiple:?}");
    }
    // The default config keeps libketama's ring, key for key.
    let same = Consistent::build_with_config(&set(&servers), &SelectionConfig::default());
    assert_eq!(same.ring, default.ring);
}
