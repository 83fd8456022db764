//! The pool's bookkeeping: idle connections in a slab, threaded on two
//! intrusive lists (all of them in return order, and those of one key).
//!
//! Nothing here does I/O or reads the clock. Every operation is a few
//! index updates and one hash-map access; once the slab and the map have
//! grown to the pool's working size, no operation allocates.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tokio::time::Instant;

/// A pass-through hasher: reuse keys are hashes already, so hashing them
/// again (SipHash by default) only costs time.
#[derive(Debug, Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; this keeps any other input
        // well defined rather than silently ignored.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One idle connection and what the pool knows about it.
pub(super) struct Idle<C> {
    pub(super) conn: C,
    pub(super) key: u64,
    /// When its idle timeout passes, if it has one.
    pub(super) expires: Option<Instant>,
}

/// Neighbours in one list: the one returned just before and just after.
#[derive(Clone, Copy, Default)]
struct Links {
    older: Option<usize>,
    newer: Option<usize>,
}

struct Node<C> {
    idle: Idle<C>,
    /// Position among all idle connections (the LRU order).
    all: Links,
    /// Position among the idle connections of the same key.
    same_key: Links,
}

enum Slot<C> {
    Used(Node<C>),
    /// A free slot, pointing at the next free one.
    Free(Option<usize>),
}

/// The idle connections of one key.
#[derive(Clone, Copy)]
struct Group {
    newest: usize,
    len: usize,
}

/// Idle connections, in return order overall and per key.
pub(super) struct Index<C> {
    slots: Vec<Slot<C>>,
    free: Option<usize>,
    len: usize,
    oldest: Option<usize>,
    newest: Option<usize>,
    groups: HashMap<u64, Group, BuildHasherDefault<KeyHasher>>,
}

impl<C> Index<C> {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: None,
            len: 0,
            oldest: None,
            newest: None,
            groups: HashMap::default(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn len_of(&self, key: u64) -> usize {
        self.groups.get(&key).map_or(0, |g| g.len)
    }

    /// One past the highest slot number in use so far (slot numbers for
    /// [`get_mut`](Self::get_mut) and [`remove`](Self::remove)).
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Add `idle` as the most recently returned connection, overall and
    /// for its key.
    pub(super) fn push(&mut self, idle: Idle<C>) {
        let key = idle.key;
        let key_newest = self.groups.get(&key).map(|g| g.newest);
        let node = Node {
            idle,
            all: Links {
                older: self.newest,
                newer: None,
            },
            same_key: Links {
                older: key_newest,
                newer: None,
            },
        };
        let i = self.occupy(node);
        match self.newest.and_then(|n| self.node_mut(n)) {
            Some(prev) => prev.all.newer = Some(i),
            None => self.oldest = Some(i),
        }
        self.newest = Some(i);
        if let Some(prev) = key_newest.and_then(|n| self.node_mut(n)) {
            prev.same_key.newer = Some(i);
        }
        match self.groups.get_mut(&key) {
            Some(group) => {
                group.newest = i;
                group.len += 1;
            }
            None => {
                self.groups.insert(key, Group { newest: i, len: 1 });
            }
        }
        self.len += 1;
    }

    /// Take the most recently returned connection of `key`.
    pub(super) fn pop_newest_of(&mut self, key: u64) -> Option<Idle<C>> {
        let i = self.groups.get(&key)?.newest;
        self.remove(i)
    }

    /// Take the least recently returned connection of any key.
    pub(super) fn pop_oldest(&mut self) -> Option<Idle<C>> {
        self.remove(self.oldest?)
    }

    /// The connection in slot `i`, if the slot is in use.
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut Idle<C>> {
        self.node_mut(i).map(|node| &mut node.idle)
    }

    /// Take the connection in slot `i` out of both lists and free the slot.
    pub(super) fn remove(&mut self, i: usize) -> Option<Idle<C>> {
        let slot = self.slots.get_mut(i)?;
        if matches!(slot, Slot::Free(_)) {
            return None;
        }
        let Slot::Used(node) = std::mem::replace(slot, Slot::Free(self.free)) else {
            return None;
        };
        self.free = Some(i);
        self.len -= 1;

        let Links { older, newer } = node.all;
        match older.and_then(|o| self.node_mut(o)) {
            Some(prev) => prev.all.newer = newer,
            None => self.oldest = newer,
        }
        match newer.and_then(|n| self.node_mut(n)) {
            Some(next) => next.all.older = older,
            None => self.newest = older,
        }

        let Links { older, newer } = node.same_key;
        if let Some(prev) = older.and_then(|o| self.node_mut(o)) {
            prev.same_key.newer = newer;
        }
        if let Some(next) = newer.and_then(|n| self.node_mut(n)) {
            next.same_key.older = older;
        }
        let key = node.idle.key;
        if let Some(group) = self.groups.get_mut(&key) {
            group.len -= 1;
            if group.len == 0 {
                self.groups.remove(&key);
            } else if group.newest == i {
                // A group with members left has an older one here: the
                // removed node was its newest, so the next is older.
                group.newest = older.unwrap_or(group.newest);
            }
        }
        Some(node.idle)
    }

    /// Put `node` in a free slot (or a new one) and return its number.
    fn occupy(&mut self, node: Node<C>) -> usize {
        if let Some(i) = self.free
            && let Some(Slot::Free(next)) = self.slots.get(i)
        {
            self.free = *next;
            // In bounds: `get(i)` just found the slot.
            self.slots[i] = Slot::Used(node);
            return i;
        }
        // The free list is empty (or, were it ever corrupt, is dropped
        // rather than trusted): grow the slab.
        self.free = None;
        self.slots.push(Slot::Used(node));
        self.slots.len() - 1
    }

    fn node_mut(&mut self, i: usize) -> Option<&mut Node<C>> {
        match self.slots.get_mut(i) {
            Some(Slot::Used(node)) => Some(node),
            _ => None,
        }
    }
}
