//! [`TinyUfo`]: the sharded map, the two queues and the eviction loop.

use crate::sketch::Sketch;
use crate::{KV, Weight};
use crossbeam_queue::SegQueue;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// Shards of the map: enough that two threads rarely want the same one.
const SHARDS: usize = 64;
/// A hit is remembered up to this many times: an entry in the main queue
/// survives this many passes of the eviction hand without new hits.
const MAX_USES: u8 = 3;
/// The small queue's share of the weight limit, in percent.
const SMALL_PERCENT: usize = 10;

/// Keys are already keyed SipHash values: the map only needs their bits
/// spread (the shard took the top ones).
#[derive(Default)]
struct SpreadHasher(u64);

impl Hasher for SpreadHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One cached entry.
struct Bucket<T> {
    data: T,
    weight: Weight,
    /// Hits since it was last looked at by the eviction hand.
    uses: AtomicU8,
    /// Which queue holds it; changes only under the shard's write lock.
    in_main: bool,
    /// Tells this entry from an earlier one of the same key whose queue
    /// slot is still queued (removed, then put again).
    id: u64,
}

type Map<T> = HashMap<u64, Bucket<T>, BuildHasherDefault<SpreadHasher>>;

/// What the eviction hand saw of an entry it took off a queue.
#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    id: u64,
    uses: u8,
    weight: Weight,
}

/// A weight-bounded cache with TinyLFU admission over S3-FIFO-style
/// queues, for many threads.
///
/// - [`get`](Self::get) takes one shard's read lock, bumps the entry's
///   use counter and the frequency sketch (relaxed atomics) and clones the
///   data: keep `T` cheap to clone (an `Arc`, a small value).
/// - [`put`](Self::put) inserts into the small queue and then evicts until
///   the total weight is within the limit, returning what left. The
///   newcomer itself may be among them: it is on probation, and leaves if
///   it is not used before reaching the head of the small queue and
///   estimates no more frequent than the main queue's victim.
/// - The bound holds whenever no `put` is in flight; while several run at
///   once the total may pass the limit by their weights until they return.
///
/// Keys are hashed to 64 bits with a per-cache random SipHash key; two
/// keys of one cache sharing a hash (odds about n²/2⁶⁵ for n keys) share
/// an entry.
///
/// # Examples
///
/// ```
/// use tinyufo::TinyUfo;
///
/// let cache = TinyUfo::new(3, 3);
/// for k in 0..3 {
///     assert!(cache.put(k, k * 10, 1).is_empty());
/// }
/// // Key 0 is popular.
/// for _ in 0..5 {
///     assert_eq!(cache.get(&0), Some(0));
/// }
/// // A flood of one-time keys does not displace it.
/// for k in 100..200 {
///     cache.put(k, k, 1);
/// }
/// assert_eq!(cache.get(&0), Some(0));
/// assert_eq!(cache.len(), 3);
/// ```
pub struct TinyUfo<K, T> {
    shards: Box<[RwLock<Map<T>>]>,
    small: SegQueue<(u64, u64)>,
    main: SegQueue<(u64, u64)>,
    small_weight: AtomicUsize,
    main_weight: AtomicUsize,
    items: AtomicUsize,
    limit: Weight,
    small_limit: Weight,
    sketch: Sketch,
    next_id: AtomicU64,
    hasher: RandomState,
    _key: PhantomData<fn(&K)>,
}

impl<K, T> std::fmt::Debug for TinyUfo<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TinyUfo")
            .field("limit", &self.limit)
            .field("small_weight", &self.small_weight.load(Ordering::Relaxed))
            .field("main_weight", &self.main_weight.load(Ordering::Relaxed))
            .field("items", &self.items.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K, T> TinyUfo<K, T> {
    /// The weight of all entries.
    pub fn total_weight(&self) -> Weight {
        self.small_weight.load(Ordering::Relaxed) + self.main_weight.load(Ordering::Relaxed)
    }

    /// The weight limit given to [`new`](Self::new).
    pub fn weight_limit(&self) -> Weight {
        self.limit
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.items.load(Ordering::Relaxed)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash, T: Clone + Send + Sync> TinyUfo<K, T> {
    /// A cache holding at most `total_weight_limit` of weight, sized for
    /// about `estimated_size` entries (which sizes the frequency sketch:
    /// too low only makes the estimates coarser).
    pub fn new(total_weight_limit: Weight, estimated_size: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            small: SegQueue::new(),
            main: SegQueue::new(),
            small_weight: AtomicUsize::new(0),
            main_weight: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
            limit: total_weight_limit,
            small_limit: total_weight_limit / 100 * SMALL_PERCENT
                + total_weight_limit % 100 * SMALL_PERCENT / 100,
            sketch: Sketch::new(estimated_size.max(1)),
            next_id: AtomicU64::new(0),
            hasher: RandomState::new(),
            _key: PhantomData,
        }
    }

    /// The same as [`new`](Self::new): here every cache is laid out
    /// compactly (a hash map of entries and two queues of 16-byte slots),
    /// so there is no separate mode. For code written against Pingora's
    /// `TinyUfo::new_compact`.
    pub fn new_compact(total_weight_limit: Weight, estimated_size: usize) -> Self {
        Self::new(total_weight_limit, estimated_size)
    }

    /// The 64-bit hash this cache files `key` under (the `key` of the
    /// [`KV`]s it returns).
    pub fn key_hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &RwLock<Map<T>> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// The data of `key`, counting a use of it.
    pub fn get(&self, key: &K) -> Option<T> {
        self.get_hashed(self.key_hash(key))
    }

    /// [`get`](Self::get) by the key's [`key_hash`](Self::key_hash): for
    /// callers that hash once and use the hash several times.
    pub fn get_hashed(&self, hash: u64) -> Option<T> {
        let data = {
            let shard = self.shard(hash).read();
            let bucket = shard.get(&hash)?;
            let uses = bucket.uses.load(Ordering::Relaxed);
            if uses < MAX_USES {
                bucket.uses.store(uses + 1, Ordering::Relaxed);
            }
            bucket.data.clone()
        };
        self.sketch.incr(hash);
        Some(data)
    }

    /// Whether `key` is cached, without counting a use.
    pub fn contains(&self, key: &K) -> bool {
        let hash = self.key_hash(key);
        self.shard(hash).read().contains_key(&hash)
    }

    /// The weight `key` is stored with, without counting a use.
    pub fn weight(&self, key: &K) -> Option<Weight> {
        let hash = self.key_hash(key);
        self.shard(hash).read().get(&hash).map(|b| b.weight)
    }

    /// Store `data` under `key` with `weight` (replacing what `key` held);
    /// returns the entries evicted to stay within the limit, possibly
    /// including this one.
    pub fn put(&self, key: K, data: T, weight: Weight) -> Vec<KV<T>> {
        self.put_hashed(self.key_hash(&key), data, weight)
    }

    /// [`put`](Self::put) by the key's [`key_hash`](Self::key_hash).
    pub fn put_hashed(&self, hash: u64, data: T, weight: Weight) -> Vec<KV<T>> {
        self.sketch.incr(hash);
        self.insert(hash, data, weight, false)
    }

    /// Like [`put`](Self::put), but the entry skips probation: it goes
    /// straight to the main queue, whatever its estimated frequency (for
    /// data known to be wanted). It still leaves if it alone is over the
    /// limit.
    pub fn force_put(&self, key: K, data: T, weight: Weight) -> Vec<KV<T>> {
        self.force_put_hashed(self.key_hash(&key), data, weight)
    }

    /// [`force_put`](Self::force_put) by the key's
    /// [`key_hash`](Self::key_hash).
    pub fn force_put_hashed(&self, hash: u64, data: T, weight: Weight) -> Vec<KV<T>> {
        self.sketch.incr(hash);
        self.insert(hash, data, weight, true)
    }

    /// Remove `key`; returns its data.
    pub fn remove(&self, key: &K) -> Option<T> {
        self.remove_hashed(self.key_hash(key))
    }

    /// [`remove`](Self::remove) by the key's [`key_hash`](Self::key_hash).
    pub fn remove_hashed(&self, hash: u64) -> Option<T> {
        let bucket = self.shard(hash).write().remove(&hash)?;
        self.release(&bucket);
        Some(bucket.data)
    }

    fn queue_weight(&self, in_main: bool) -> &AtomicUsize {
        if in_main {
            &self.main_weight
        } else {
            &self.small_weight
        }
    }

    /// Account for a bucket taken out of the map.
    fn release(&self, bucket: &Bucket<T>) {
        self.queue_weight(bucket.in_main)
            .fetch_sub(bucket.weight, Ordering::Relaxed);
        self.items.fetch_sub(1, Ordering::Relaxed);
    }

    fn insert(&self, hash: u64, data: T, weight: Weight, force: bool) -> Vec<KV<T>> {
        let mut out = Vec::new();
        if weight > self.limit {
            // It can never fit: drop any older value too, so that a reader
            // does not keep seeing data its writer replaced.
            if let Some(old) = self.shard(hash).write().remove(&hash) {
                self.release(&old);
            }
            out.push(KV {
                key: hash,
                data,
                weight,
            });
            return out;
        }
        {
            let mut shard = self.shard(hash).write();
            if let Some(bucket) = shard.get_mut(&hash) {
                // Same entry, new value: it keeps its place in its queue.
                let counter = self.queue_weight(bucket.in_main);
                counter.fetch_add(weight, Ordering::Relaxed);
                counter.fetch_sub(bucket.weight, Ordering::Relaxed);
                bucket.data = data;
                bucket.weight = weight;
                let uses = bucket.uses.get_mut();
                *uses = (*uses + 1).min(MAX_USES);
            } else {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                shard.insert(
                    hash,
                    Bucket {
                        data,
                        weight,
                        uses: AtomicU8::new(0),
                        in_main: force,
                        id,
                    },
                );
                self.items.fetch_add(1, Ordering::Relaxed);
                self.queue_weight(force)
                    .fetch_add(weight, Ordering::Relaxed);
                // Queued under the lock: an eviction hand that pops the
                // slot must find the bucket, or it would drop the slot as
                // stale and the entry could never be evicted.
                self.queue(force).push((hash, id));
            }
        }
        self.evict_to_limit(&mut out);
        self.sweep_if_bloated();
        out
    }

    fn queue(&self, main: bool) -> &SegQueue<(u64, u64)> {
        if main { &self.main } else { &self.small }
    }

    /// Evict until the total weight is within the limit.
    fn evict_to_limit(&self, out: &mut Vec<KV<T>>) {
        while self.total_weight() > self.limit {
            if !self.evict_one(out) {
                break;
            }
        }
    }

    /// One step of the eviction hand; false when both queues are empty.
    fn evict_one(&self, out: &mut Vec<KV<T>>) -> bool {
        let small = self.small_weight.load(Ordering::Relaxed);
        let main = self.main_weight.load(Ordering::Relaxed);
        if (small > self.small_limit || main == 0)
            && let Some(c) = self.pop_valid(false)
        {
            self.end_probation(c, out);
            return true;
        }
        if let Some(v) = self.main_victim() {
            self.evict(v, true, out);
            return true;
        }
        match self.pop_valid(false) {
            Some(c) => {
                self.end_probation(c, out);
                true
            }
            None => false,
        }
    }

    /// A newcomer reached the head of the small queue: it moves to the main
    /// queue if main has room; otherwise it duels the main queue's victim
    /// on estimated frequency (which counts the hits it had on probation
    /// and the times it was put before, as S3-FIFO's ghost queue would),
    /// and the loser is evicted.
    fn end_probation(&self, c: Slot, out: &mut Vec<KV<T>>) {
        let main_room = self.limit - self.small_limit;
        if self.main_weight.load(Ordering::Relaxed) + c.weight <= main_room {
            self.promote(c);
            return;
        }
        let Some(v) = self.main_victim() else {
            self.promote(c);
            return;
        };
        if self.sketch.get(c.key) > self.sketch.get(v.key) {
            self.evict(v, true, out);
            self.promote(c);
        } else {
            self.evict(c, false, out);
            // The victim won: it goes round once more.
            self.main.push((v.key, v.id));
        }
    }

    /// Take entries off the main queue until one without recent uses,
    /// giving the others a second chance. Bounded: uses only go down here,
    /// so after `MAX_USES` laps every entry has none.
    fn main_victim(&self) -> Option<Slot> {
        let laps = (self.len() + 1) * (usize::from(MAX_USES) + 1);
        for _ in 0..laps {
            let v = self.pop_valid(true)?;
            if v.uses == 0 {
                return Some(v);
            }
            self.second_chance(v);
        }
        // Readers kept every entry busy: take the next one anyway.
        self.pop_valid(true)
    }

    /// Pop slots off a queue until one whose entry is still there.
    fn pop_valid(&self, main: bool) -> Option<Slot> {
        let queue = self.queue(main);
        loop {
            let (key, id) = queue.pop()?;
            let shard = self.shard(key).read();
            match shard.get(&key) {
                Some(b) if b.id == id && b.in_main == main => {
                    return Some(Slot {
                        key,
                        id,
                        uses: b.uses.load(Ordering::Relaxed),
                        weight: b.weight,
                    });
                }
                // Removed, or replaced by a newer entry of the same key.
                _ => continue,
            }
        }
    }

    /// Put a main-queue entry back at the tail with one use fewer.
    fn second_chance(&self, v: Slot) {
        let shard = self.shard(v.key).read();
        if let Some(b) = shard.get(&v.key).filter(|b| b.id == v.id) {
            let uses = b.uses.load(Ordering::Relaxed);
            b.uses.store(uses.saturating_sub(1), Ordering::Relaxed);
            self.main.push((v.key, v.id));
        }
    }

    fn promote(&self, c: Slot) {
        let mut shard = self.shard(c.key).write();
        if let Some(b) = shard.get_mut(&c.key).filter(|b| b.id == c.id && !b.in_main) {
            b.in_main = true;
            *b.uses.get_mut() = 0;
            self.main_weight.fetch_add(b.weight, Ordering::Relaxed);
            self.small_weight.fetch_sub(b.weight, Ordering::Relaxed);
            self.main.push((c.key, c.id));
        }
    }

    fn evict(&self, s: Slot, main: bool, out: &mut Vec<KV<T>>) {
        let mut shard = self.shard(s.key).write();
        if !shard
            .get(&s.key)
            .is_some_and(|b| b.id == s.id && b.in_main == main)
        {
            return;
        }
        if let Some(b) = shard.remove(&s.key) {
            self.release(&b);
            out.push(KV {
                key: s.key,
                data: b.data,
                weight: b.weight,
            });
        }
    }

    /// Removed entries leave stale slots in the queues, dropped when the
    /// hand reaches them; if removals outpace evictions, drop them here so
    /// the queues stay proportional to the entries.
    fn sweep_if_bloated(&self) {
        let items = self.len();
        for main in [false, true] {
            let queue = self.queue(main);
            if queue.len() <= 2 * items + 1024 {
                continue;
            }
            for _ in 0..queue.len() {
                let Some((key, id)) = queue.pop() else {
                    break;
                };
                let shard = self.shard(key).read();
                if shard
                    .get(&key)
                    .is_some_and(|b| b.id == id && b.in_main == main)
                {
                    queue.push((key, id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
