//! Consistent hashing on a ketama ring, with libketama's point placement.
//!
//! # Convention
//!
//! We follow libketama (the last.fm C library, `ketama.c`), which most
//! memcached clients copied, so that a deployment moving to this load
//! balancer keeps its key → server mapping:
//!
//! - A server of weight `w` (libketama's "memory") out of a total `W` over
//!   `n` servers gets `floorf(w / W * 40 * n)` MD5 digests, computed with
//!   libketama's mix of `float` and `double` arithmetic, which we copy
//!   because it leaves some uneven shares one digest short of the exact
//!   value (weight 21 of 40 over 5 servers gets 104 digests, not 105).
//! - Digest `k` is `md5("<addr>-<k>")`, `<addr>` being the server as
//!   written in the server list: here the backend's address as displayed,
//!   `ip:port` (`[v6]:port` for IPv6).
//! - Each digest gives 4 points: bytes `4h..4h+4` of the digest read
//!   little-endian, for `h` in `0..4`; 160 points per server of average
//!   weight.
//! - A key hashes to the first 4 bytes of `md5(key)`, little-endian, and
//!   goes to the server of the first point `>=` that value, wrapping to the
//!   first point past the end.
//!
//! Clients that call themselves "ketama compatible" differ in the point
//! strings and counts, which is why the rules above are spelled out.

use super::md5::md5;
use super::{BackendIter, BackendSelection, SelectionConfig};
use crate::Backend;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Digests per server of average weight; each digest gives 4 points.
const DIGESTS_PER_SERVER: f64 = 40.0;

/// The ketama ring's tuning (Pingora's `KetamaConfig`).
///
/// # Examples
///
/// ```
/// use pingora_load_balancing::selection::KetamaConfig;
///
/// let mut config = KetamaConfig::default();
/// assert_eq!(config.point_multiple, None); // 160, libketama's ring
/// config.point_multiple = Some(640);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KetamaConfig {
    /// Points per server of average weight, in steps of 4 (one MD5 digest
    /// gives 4 points); values below 4 count as 4. `None`: 160, the
    /// libketama ring, which keeps the key mapping of libketama clients.
    /// More points spread keys more evenly at the cost of memory and
    /// build time.
    pub point_multiple: Option<u32>,
}

impl KetamaConfig {
    fn digests_per_server(&self) -> f64 {
        self.point_multiple
            .map_or(DIGESTS_PER_SERVER, |p| f64::from(p.max(4) / 4))
    }
}

/// One point on the ring, owned by backend `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    value: u32,
    index: u32,
}

/// Consistent hashing with a ketama ring: the key picks a point on a ring
/// where each backend owns points in proportion to its weight.
///
/// When a backend leaves, only the keys it owned move (about `1/n` of them);
/// the others keep their backend. Failover candidates are the next distinct
/// backends clockwise on the ring, which is where the key would go if its
/// backend were removed. See the module docs for the exact point placement.
#[derive(Debug)]
pub struct Consistent {
    backends: Box<[Backend]>,
    ring: Box<[Point]>,
}

impl BackendSelection for Consistent {
    type Iter = ConsistentIter;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self::build_with_config(backends, &SelectionConfig::default())
    }

    fn build_with_config(backends: &BTreeSet<Backend>, config: &SelectionConfig) -> Self {
        let backends: Box<[Backend]> = backends.iter().cloned().collect();
        let ring = build_ring(&backends, config.ketama.digests_per_server());
        Self { backends, ring }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> ConsistentIter {
        let hash = key_hash(key);
        let first = self.ring.partition_point(|p| p.value < hash);
        ConsistentIter {
            selection: Arc::clone(self),
            // Past the last point the ring wraps to the first.
            position: if first == self.ring.len() { 0 } else { first },
            steps: 0,
            last: None,
        }
    }
}

/// How many digests libketama gives a server of weight `weight` out of
/// `total` over `servers` servers.
///
/// `ketama.c` computes `floorf(pct * 40.0 * (float)numservers)` with
/// `float pct`: the product is taken in `double` (40.0 is a double
/// literal) and rounded to `float` by `floorf`'s parameter. We do the same
/// so that the rounding, including its shortfalls, matches.
fn digests_for(weight: u64, total: u64, servers: usize, per_server: f64) -> u32 {
    let pct = weight as f32 / total as f32;
    let product = f64::from(pct) * per_server * f64::from(servers as f32);
    (product as f32).floor() as u32
}

/// The sorted ring of `backends`.
fn build_ring(backends: &[Backend], per_server: f64) -> Box<[Point]> {
    let total: u64 = backends.iter().map(|b| b.effective_weight() as u64).sum();
    let mut ring = Vec::new();
    for (index, backend) in backends.iter().enumerate() {
        let digests = digests_for(
            backend.effective_weight() as u64,
            total,
            backends.len(),
            per_server,
        );
        for k in 0..digests {
            let digest = md5(format!("{backend}-{k}").as_bytes());
            for quarter in digest.chunks_exact(4) {
                ring.push(Point {
                    value: u32::from_le_bytes([quarter[0], quarter[1], quarter[2], quarter[3]]),
                    index: index as u32,
                });
            }
        }
    }
    // libketama sorts by value only; equal values (a 32-bit collision) are
    // ordered by backend here so the ring is deterministic.
    ring.sort_unstable();
    ring.into_boxed_slice()
}

/// libketama's `ketama_hashi`: the first 4 bytes of `md5(key)`,
/// little-endian.
fn key_hash(key: &[u8]) -> u32 {
    let digest = md5(key);
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The iterator of [`Consistent`]: walks the ring clockwise from the key,
/// yielding each run of one backend's points once, for at most one lap.
#[derive(Debug)]
pub struct ConsistentIter {
    selection: Arc<Consistent>,
    position: usize,
    steps: usize,
    last: Option<u32>,
}

impl BackendIter for ConsistentIter {
    fn next(&mut self) -> Option<&Backend> {
        let ring = &self.selection.ring;
        while self.steps < ring.len() {
            let point = ring[self.position % ring.len()];
            self.position = (self.position + 1) % ring.len();
            self.steps += 1;
            if self.last != Some(point.index) {
                self.last = Some(point.index);
                return self.selection.backends.get(point.index as usize);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
