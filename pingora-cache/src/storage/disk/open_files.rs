//! The files of recently hit entries, kept open with their checked
//! metadata, so that a hit on a hot entry costs one read: no `open`, no
//! `close`, no checksum and no parsing of its metadata.
//!
//! Safe because an entry's file never changes once renamed into place (a
//! new version is a new file with a new id) and ids are never reused: a
//! cached file is used only when the index still names its id, so a
//! purged, evicted or replaced entry is never served from here. Dropping
//! its file from here too only lets the disk space go sooner.

use crate::meta::CacheMeta;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::Arc;

/// Shards of the table, so that hits on different entries rarely meet.
const SHARDS: usize = 16;

/// An entry's open file and its metadata, checked when it was opened.
#[derive(Debug)]
pub(super) struct OpenFile {
    pub(super) file: Arc<File>,
    pub(super) meta: CacheMeta,
}

#[derive(Debug, Default)]
struct Shard {
    files: HashMap<u64, Arc<OpenFile>>,
    /// Ids in the order they were opened: the oldest is closed first.
    order: VecDeque<u64>,
}

/// Up to `capacity` open entry files, by entry id.
#[derive(Debug)]
pub(super) struct OpenFiles {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl OpenFiles {
    /// Keep up to `capacity` files open (0: none).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<Shard> {
        // Ids are sequential: consecutive ones land on different shards.
        &self.shards[(id % SHARDS as u64) as usize]
    }

    pub(super) fn get(&self, id: u64) -> Option<Arc<OpenFile>> {
        if self.per_shard == 0 {
            return None;
        }
        self.shard(id).lock().files.get(&id).cloned()
    }

    pub(super) fn insert(&self, id: u64, open: Arc<OpenFile>) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(id).lock();
        if shard.files.insert(id, open).is_none() {
            shard.order.push_back(id);
        }
        while shard.files.len() > self.per_shard {
            let Some(oldest) = shard.order.pop_front() else {
                break;
            };
            shard.files.remove(&oldest);
        }
    }

    /// The entry `id` is gone: close its file (once no reader holds it).
    pub(super) fn remove(&self, id: u64) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(id).lock();
        if shard.files.remove(&id).is_some() {
            shard.order.retain(|o| *o != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::header::ResponseHeader;
    use std::time::SystemTime;

    fn open_file() -> Arc<OpenFile> {
        let now = SystemTime::now();
        #[allow(clippy::unwrap_used)]
        let header = ResponseHeader::build(200, None).unwrap();
        #[allow(clippy::unwrap_used)]
        let file = File::open("/dev/null").unwrap();
        Arc::new(OpenFile {
            file: Arc::new(file),
            meta: CacheMeta::new(now, now, 0, 0, header),
        })
    }

    #[test]
    fn bounded_oldest_first_and_removable() {
        let files = OpenFiles::new(SHARDS);
        // One per shard: the second on a shard pushes the first out.
        files.insert(1, open_file());
        files.insert(1 + SHARDS as u64, open_file());
        assert!(files.get(1).is_none());
        assert!(files.get(1 + SHARDS as u64).is_some());
        files.remove(1 + SHARDS as u64);
        assert!(files.get(1 + SHARDS as u64).is_none());
        let none = OpenFiles::new(0);
        none.insert(2, open_file());
        assert!(none.get(2).is_none());
    }
}
