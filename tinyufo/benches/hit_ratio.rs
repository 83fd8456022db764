//! Hit ratio of TinyUfo, a plain LRU and moka on Zipf traces, then
//! get/put throughput of TinyUfo and moka under two threads.
//!
//! `cargo bench -p tinyufo --bench hit_ratio` prints two tables. Each
//! request is a `get`, and a `put` (weight 1) on a miss, the way a
//! read-through cache is used.

use std::collections::HashMap;
use std::time::Instant;
use tinyufo::TinyUfo;

const KEYS: usize = 1_000_000;
const REQUESTS: usize = 3_000_000;
/// Per thread, per throughput run.
const THROUGHPUT_REQUESTS: usize = 1_000_000;

/// xorshift64*: fast and good enough to drive a trace.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` requests over `KEYS` keys, rank r drawn with probability
/// proportional to 1 / r^skew (inverse CDF by binary search).
fn zipf_trace(skew: f64, n: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(KEYS);
    let mut sum = 0.0;
    for r in 1..=KEYS {
        sum += 1.0 / (r as f64).powf(skew);
        cdf.push(sum);
    }
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| {
            let u = rng.unit() * sum;
            // Scatter ranks over the key space so no cache sees them sorted.
            let rank = cdf.partition_point(|&c| c < u) as u64;
            rank.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        })
        .collect()
}

/// A plain LRU over a slab with an intrusive doubly linked list.
struct Lru {
    map: HashMap<u64, usize>,
    nodes: Vec<(u64, usize, usize)>,
    head: usize,
    tail: usize,
    cap: usize,
}

const NIL: usize = usize::MAX;

impl Lru {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::with_capacity(cap),
            nodes: Vec::with_capacity(cap),
            head: NIL,
            tail: NIL,
            cap,
        }
    }
    fn unlink(&mut self, i: usize) {
        let (_, prev, next) = self.nodes[i];
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].2 = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].1 = prev;
        }
    }
    fn push_front(&mut self, i: usize) {
        self.nodes[i].1 = NIL;
        self.nodes[i].2 = self.head;
        if self.head != NIL {
            self.nodes[self.head].1 = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }
    /// Whether `key` was cached; caches it either way.
    fn access(&mut self, key: u64) -> bool {
        if let Some(&i) = self.map.get(&key) {
            self.unlink(i);
            self.push_front(i);
            return true;
        }
        let i = if self.nodes.len() < self.cap {
            self.nodes.push((key, NIL, NIL));
            self.nodes.len() - 1
        } else {
            let i = self.tail;
            self.unlink(i);
            self.map.remove(&self.nodes[i].0);
            self.nodes[i].0 = key;
            i
        };
        self.map.insert(key, i);
        self.push_front(i);
        false
    }
}

fn ratio_tinyufo(trace: &[u64], cap: usize) -> f64 {
    let c = TinyUfo::new(cap, cap);
    let hits = trace
        .iter()
        .filter(|&&k| {
            let hit = c.get(&k).is_some();
            if !hit {
                c.put(k, (), 1);
            }
            hit
        })
        .count();
    hits as f64 / trace.len() as f64
}

fn ratio_lru(trace: &[u64], cap: usize) -> f64 {
    let mut c = Lru::new(cap);
    let hits = trace.iter().filter(|&&k| c.access(k)).count();
    hits as f64 / trace.len() as f64
}

fn ratio_moka(trace: &[u64], cap: usize) -> f64 {
    let c = moka::sync::Cache::builder()
        .max_capacity(cap as u64)
        .weigher(|_: &u64, _: &()| 1)
        .build();
    let hits = trace
        .iter()
        .filter(|&&k| {
            let hit = c.get(&k).is_some();
            if !hit {
                c.insert(k, ());
            }
            hit
        })
        .count();
    hits as f64 / trace.len() as f64
}

/// Million requests per second over two threads sharing one cache built
/// by `make`: the best of three runs, each on a fresh cache, since other
/// work on the machine only ever slows a run down.
fn throughput<C: Sync>(
    traces: &[Vec<u64>; 2],
    make: impl Fn() -> C,
    run: impl Fn(&C, &[u64]) + Sync,
) -> f64 {
    (0..3)
        .map(|_| {
            let cache = make();
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in traces {
                    s.spawn(|| run(&cache, t));
                }
            });
            let n: usize = traces.iter().map(Vec::len).sum();
            n as f64 / start.elapsed().as_secs_f64() / 1e6
        })
        .fold(0.0, f64::max)
}

fn main() {
    println!("hit ratio, {KEYS} keys, {REQUESTS} requests per trace (get, put on a miss)");
    println!();
    println!("| skew | cache | LRU | moka | TinyUfo | TinyUfo - moka |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for skew in [0.6, 0.8, 1.0, 1.2] {
        let trace = zipf_trace(skew, REQUESTS, 0x5eed);
        for (pct, cap) in [
            ("0.1 %", KEYS / 1000),
            ("1 %", KEYS / 100),
            ("10 %", KEYS / 10),
        ] {
            let lru = ratio_lru(&trace, cap);
            let moka = ratio_moka(&trace, cap);
            let ufo = ratio_tinyufo(&trace, cap);
            println!(
                "| {skew} | {pct} | {:.2} % | {:.2} % | {:.2} % | {:+.2} |",
                lru * 100.0,
                moka * 100.0,
                ufo * 100.0,
                (ufo - moka) * 100.0
            );
        }
    }

    println!();
    println!("throughput, 2 threads, one shared cache, Mops/s, best of 3 (get, put on a miss)");
    println!();
    println!("| skew | cache | moka | TinyUfo | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for skew in [0.8, 1.0] {
        let traces = [
            zipf_trace(skew, THROUGHPUT_REQUESTS, 1),
            zipf_trace(skew, THROUGHPUT_REQUESTS, 2),
        ];
        for (pct, cap) in [("1 %", KEYS / 100), ("10 %", KEYS / 10)] {
            let moka_ops = throughput(
                &traces,
                || {
                    moka::sync::Cache::builder()
                        .max_capacity(cap as u64)
                        .weigher(|_: &u64, _: &u64| 1)
                        .build()
                },
                |moka, t| {
                    for &k in t {
                        if moka.get(&k).is_none() {
                            moka.insert(k, k);
                        }
                    }
                },
            );
            let ufo_ops = throughput(
                &traces,
                || TinyUfo::new(cap, cap),
                |ufo, t| {
                    for &k in t {
                        if ufo.get(&k).is_none() {
                            ufo.put(k, k, 1);
                        }
                    }
                },
            );
            println!(
                "| {skew} | {pct} | {moka_ops:.2} | {ufo_ops:.2} | {:.1}x |",
                ufo_ops / moka_ops
            );
        }
    }
}
