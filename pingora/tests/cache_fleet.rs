//! The `cache_fleet` example as a real fleet: 1 origin, 3 shard and 3 edge
//! processes on free loopback ports. Requests for the same keys through
//! every edge make one origin fetch per key; after one shard is killed,
//! only its keys move (each to one surviving shard, fetched once more).
//!
//! The example binary is the one `cargo test -p pingora` builds beside
//! this test; alone, build it first:
//! `cargo build -p pingora --example cache_fleet`.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The fleet test uses only part of the example helpers.
#[allow(dead_code)]
#[path = "examples/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Example, free_addr, get};

/// Distinct keys (paths) asked for.
const KEYS: usize = 90;
/// Client threads sending requests at the same time.
const CLIENTS: usize = 12;

/// Every process of the fleet; each is killed when dropped, so a failing
/// test leaves nothing running.
struct Fleet {
    origin: String,
    shards: Vec<(String, Option<Example>)>,
    edges: Vec<String>,
    _processes: Vec<Example>,
}

impl Fleet {
    /// Start the fleet; the edges probe the shards every `health_check_ms`.
    fn start(health_check_ms: &str) -> Self {
        let origin = free_addr();
        let mut processes = Vec::new();
        let mut started = Example::start("cache_fleet", &["origin"], &[("LISTEN", &origin)]);
        started.wait_listening(&origin);
        processes.push(started);

        let mut shards = Vec::new();
        for _ in 0..3 {
            let listen = free_addr();
            let env = [("LISTEN", listen.as_str()), ("ORIGIN", origin.as_str())];
            let mut shard = Example::start("cache_fleet", &["shard"], &env);
            shard.wait_listening(&listen);
            shards.push((listen, Some(shard)));
        }
        let list = shards
            .iter()
            .map(|(addr, _)| addr.as_str())
            .collect::<Vec<_>>()
            .join(",");

        let mut edges = Vec::new();
        for _ in 0..3 {
            let listen = free_addr();
            let env = [
                ("LISTEN", listen.as_str()),
                ("SHARDS", list.as_str()),
                ("HEALTH_CHECK_MS", health_check_ms),
            ];
            let mut edge = Example::start("cache_fleet", &["edge"], &env);
            // The edge listens once its first health probes are done.
            edge.wait_listening(&listen);
            processes.push(edge);
            edges.push(listen);
        }
        Self {
            origin,
            shards,
            edges,
            _processes: processes,
        }
    }

    /// The origin's fetch count per path.
    fn origin_counts(&self) -> BTreeMap<String, u64> {
        let answer = get(&self.origin, "/__counts", &[]).unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        answer
            .body
            .lines()
            .map(|line| {
                let (n, path) = line.split_once(' ').unwrap();
                (path.to_owned(), n.parse().unwrap())
            })
            .collect()
    }

    /// Kill shard `index` at once (SIGKILL): its port refuses from now on.
    fn kill_shard(&mut self, index: usize) -> String {
        let (addr, process) = &mut self.shards[index];
        drop(process.take());
        addr.clone()
    }

    /// Wait (bounded) until every edge's health check sees `shard` down.
    fn wait_down(&self, shard: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for edge in &self.edges {
            loop {
                let view = get(edge, "/__shards", &[]).unwrap().body;
                if view.contains(&format!("{shard} down")) {
                    break;
                }
                assert!(Instant::now() < deadline, "{edge} still sees {view}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn key(i: usize) -> String {
    format!("/k/{i}")
}

/// Ask every key through every edge, `rounds` times, from `CLIENTS`
/// threads at once: consecutive requests are one key through different
/// edges, so they race on the shard. Returns for each key the shards that
/// answered it.
fn ask_all(fleet: &Fleet, rounds: usize) -> BTreeMap<String, Vec<String>> {
    let jobs: Vec<(String, &str)> = (0..rounds)
        .flat_map(|_| (0..KEYS).map(key))
        .flat_map(|k| fleet.edges.iter().map(move |e| (k.clone(), e.as_str())))
        .collect();
    let next = AtomicUsize::new(0);
    let seen = Mutex::new(BTreeMap::<String, Vec<String>>::new());
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                while let Some((path, edge)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let answer = get(edge, path, &[]).unwrap();
                    assert_eq!(answer.status, 200, "{path} via {edge}: {answer:?}");
                    assert_eq!(answer.body, format!("content of {path}\n"));
                    let shard = answer.header("x-shard").expect("a shard answered");
                    seen.lock()
                        .unwrap()
                        .entry(path.clone())
                        .or_default()
                        .push(shard);
                }
            });
        }
    });
    seen.into_inner().unwrap()
}

/// Each key's one shard: every edge and every round must agree.
fn owners(seen: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, String> {
    assert_eq!(seen.len(), KEYS);
    seen.iter()
        .map(|(path, shards)| {
            assert!(
                shards.iter().all(|s| *s == shards[0]),
                "{path} went to several shards: {shards:?}"
            );
            (path.clone(), shards[0].clone())
        })
        .collect()
}

#[test]
fn one_origin_fetch_per_key_and_a_lost_shard_moves_only_its_keys() {
    let started = Instant::now();
    let mut fleet = Fleet::start("200");

    // Every key through all 3 edges, 3 rounds: 810 requests, 1 fetch each.
    let before = owners(&ask_all(&fleet, 3));
    let counts = fleet.origin_counts();
    for i in 0..KEYS {
        assert_eq!(counts.get(&key(i)), Some(&1), "{}: {counts:?}", key(i));
    }
    for (shard, _) in &fleet.shards {
        let owned = before.values().filter(|s| *s == shard).count();
        assert!(owned > 0, "{shard} owns no key: {before:?}");
    }

    let gone = fleet.kill_shard(1);
    fleet.wait_down(&gone);

    let after = owners(&ask_all(&fleet, 2));
    let counts = fleet.origin_counts();
    let mut moved = 0;
    let mut heirs = std::collections::BTreeSet::new();
    for (path, owner) in &before {
        let now = &after[path];
        if *owner == gone {
            // The key moved to a survivor, which fetched it once.
            moved += 1;
            assert_ne!(*now, gone);
            heirs.insert(now.clone());
            assert_eq!(counts[path], 2, "{path}: {counts:?}");
        } else {
            // The key stayed where it was, and was still cached there.
            assert_eq!(now, owner, "{path} moved off a surviving shard");
            assert_eq!(counts[path], 1, "{path}: {counts:?}");
        }
    }
    // One shard of three: about a third of the keys, give or take the
    // ring's spread (bounds more than four standard deviations wide).
    assert!(
        (KEYS / 10..=KEYS * 6 / 10).contains(&moved),
        "{moved} of {KEYS} keys moved"
    );
    // The lost shard's points are spread over the ring, so its keys are
    // shared by both survivors rather than piled onto one neighbour.
    assert_eq!(heirs.len(), 2, "{heirs:?}");
    println!(
        "{moved} of {KEYS} keys moved off {gone}; the test took {:?}",
        started.elapsed()
    );
}

/// A shard lost before the health check notices: the edges' connects to
/// it fail, and each request retries on the next shard of the ring, the
/// one the health check would have chosen. No request fails.
#[test]
fn a_shard_lost_between_health_checks_costs_no_request() {
    // After the first round of probes, none for a minute.
    let mut fleet = Fleet::start("60000");
    let before = owners(&ask_all(&fleet, 1));
    let gone = fleet.kill_shard(0);
    // Every request answers 200 (`ask_all` checks), from a survivor.
    let after = owners(&ask_all(&fleet, 2));
    let counts = fleet.origin_counts();
    for (path, owner) in &before {
        let now = &after[path];
        assert_ne!(*now, gone);
        if *owner == gone {
            assert_eq!(counts[path], 2, "{path}: {counts:?}");
        } else {
            assert_eq!(now, owner, "{path} moved off a surviving shard");
            assert_eq!(counts[path], 1, "{path}: {counts:?}");
        }
    }
    let view = get(&fleet.edges[0], "/__shards", &[]).unwrap().body;
    assert!(view.contains(&format!("{gone} up")), "probed again: {view}");
}
