//! [`ListenFds`]: the listening sockets of a server, by address, so that a
//! graceful upgrade can pass them to the next process.

use parking_lot::Mutex;
use std::collections::HashMap;
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
    fds: Arc<Mutex<HashMap<String, OwnedFd>>>,
}

impl ListenFds {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table holding sockets received from the previous process.
    pub(crate) fn from_received(fds: Vec<(String, OwnedFd)>) -> Self {
        Self {
            fds: Arc::new(Mutex::new(fds.into_iter().collect())),
        }
    }

    /// A new descriptor for the socket registered under `key`, if any. The
    /// table keeps its own.
    pub(crate) fn dup(&self, key: &str) -> Option<io::Result<OwnedFd>> {
        self.fds.lock().get(key).map(OwnedFd::try_clone)
    }

    /// Register the socket listening on `key`.
    pub(crate) fn insert(&self, key: String, fd: OwnedFd) {
        self.fds.lock().insert(key, fd);
    }

    /// Forget (and close our handle on) the socket listening on `key`.
    pub(crate) fn remove(&self, key: &str) {
        self.fds.lock().remove(key);
    }

    /// New descriptors for every socket, to send to another process.
    pub(crate) fn dup_all(&self) -> io::Result<Vec<(String, OwnedFd)>> {
        let fds = self.fds.lock();
        let mut all = Vec::with_capacity(fds.len());
        for (key, fd) in fds.iter() {
            all.push((key.clone(), fd.try_clone()?));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// How many sockets are registered.
    pub fn len(&self) -> usize {
        self.fds.lock().len()
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
}
