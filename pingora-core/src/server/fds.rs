//! [`ListenFds`]: the listening sockets of a server, by address, so that a
//! graceful upgrade can pass them to the next process.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// The listening sockets of a server, keyed by the address they were
/// configured with.
///
/// Listening services register each socket they bind here. On a graceful
/// upgrade the server sends every socket in the table to the new process,
/// whose listening services then find theirs here instead of binding.
/// Cloning shares the table.
#[derive(Debug, Clone, Default)]
pub struct ListenFds {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    fds: HashMap<String, OwnedFd>,
    /// Keys a listener of this process uses.
    claimed: HashSet<String>,
}

impl ListenFds {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table holding sockets received from the previous process.
    pub(crate) fn from_received(fds: Vec<(String, OwnedFd)>) -> Self {
        let table = Table {
            fds: fds.into_iter().collect(),
            claimed: HashSet::new(),
        };
        Self {
            inner: Arc::new(Mutex::new(table)),
        }
    }

    /// A new descriptor for the socket registered under `key`, if any. The
    /// table keeps its own.
    pub(crate) fn dup(&self, key: &str) -> Option<io::Result<OwnedFd>> {
        let mut table = self.inner.lock();
        let fd = table.fds.get(key).map(OwnedFd::try_clone)?;
        table.claimed.insert(key.to_string());
        Some(fd)
    }

    /// Register the socket listening on `key`.
    pub(crate) fn insert(&self, key: String, fd: OwnedFd) {
        let mut table = self.inner.lock();
        table.claimed.insert(key.clone());
        table.fds.insert(key, fd);
    }

    /// Forget (and close our handle on) the socket listening on `key`.
    pub(crate) fn remove(&self, key: &str) {
        self.inner.lock().fds.remove(key);
    }

    /// Close the sockets no listener of this process took over.
    pub(crate) fn close_unclaimed(&self) {
        let mut table = self.inner.lock();
        let Table { fds, claimed } = &mut *table;
        fds.retain(|key, _| {
            let keep = claimed.contains(key);
            if !keep {
                log::warn!("closing {key}: passed on by the previous process, but not listened on");
            }
            keep
        });
    }

    /// New descriptors for every socket, to send to another process.
    pub(crate) fn dup_all(&self) -> io::Result<Vec<(String, OwnedFd)>> {
        let table = self.inner.lock();
        let mut all = Vec::with_capacity(table.fds.len());
        for (key, fd) in &table.fds {
            all.push((key.clone(), fd.try_clone()?));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// How many sockets are registered.
    pub fn len(&self) -> usize {
        self.inner.lock().fds.len()
    }

    /// Whether no socket is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let fds = ListenFds::new();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        fds.insert("tcp://a".into(), OwnedFd::from(l));
        assert_eq!(fds.len(), 1);
        let dup = fds.dup("tcp://a").unwrap().unwrap();
        let listener = std::net::TcpListener::from(dup);
        assert!(listener.local_addr().is_ok());
        assert!(fds.dup("tcp://b").is_none());
        assert_eq!(fds.dup_all().unwrap().len(), 1);
        fds.remove("tcp://a");
        assert!(fds.is_empty());
    }

    #[test]
    fn unclaimed_sockets_are_closed() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fds = ListenFds::from_received(vec![
            ("tcp://a".into(), OwnedFd::from(a)),
            ("tcp://b".into(), OwnedFd::from(b)),
        ]);
        drop(fds.dup("tcp://a").unwrap().unwrap());
        fds.close_unclaimed();
        assert_eq!(fds.len(), 1);
        assert!(fds.dup("tcp://a").is_some() && fds.dup("tcp://b").is_none());
    }
}
