//! [`UdpProxy`]: the session table, and the [`DatagramApp`] that feeds it.

use super::metrics::{self, DropReason, UdpProxyStats};
use super::queue::{self, PushError, QueueTx};
use super::{ProxyUdp, session};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use pingora_core::services::udp::{DatagramApp, DatagramReply};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// The limits of a [`UdpProxy`].
///
/// # Examples
///
/// ```
/// use pingora_proxy::udp::UdpProxyOptions;
/// use std::time::Duration;
///
/// let mut options = UdpProxyOptions::default();
/// options.idle_timeout = Duration::from_secs(120);
/// options.max_sessions = 50_000;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpProxyOptions {
    /// A session ends when no datagram went either way for this long; the
    /// client's next datagram starts a new one (maybe to another
    /// upstream). Default 30 s.
    pub idle_timeout: Duration,
    /// Sessions open at once; a datagram from a new client beyond it is
    /// dropped and counted (`reason="session_limit"`). Each session holds
    /// one socket (a file descriptor) and one task. Default 10,000.
    pub max_sessions: usize,
    /// Datagrams a session queues toward its upstream; beyond it they are
    /// dropped and counted (`reason="queue_full"`). Default 64.
    pub max_pending_datagrams: usize,
    /// Bytes a session queues toward its upstream (one datagram always
    /// fits); beyond it datagrams are dropped and counted
    /// (`reason="queue_full"`). With the 64 KiB receive buffer of the
    /// session's task shared per thread, this bounds a session's memory.
    /// Default 256 KiB.
    pub max_pending_bytes: usize,
    /// How long choosing the upstream
    /// ([`upstream_peer`](ProxyUdp::upstream_peer)) and opening the
    /// session's socket may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How long sending one datagram may wait for room in a socket's
    /// buffer, either way. Default 1 s.
    pub send_timeout: Duration,
}

impl Default for UdpProxyOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            max_sessions: 10_000,
            max_pending_datagrams: 64,
            max_pending_bytes: 256 * 1024,
            connect_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(1),
        }
    }
}

/// A session's key: the proxy's address the client wrote to, and the
/// client's address.
pub(super) type Key = (SocketAddr, SocketAddr);

/// A session in the table: its queue, and an id telling it from a later
/// session of the same client.
struct Entry {
    id: u64,
    queue: QueueTx,
}

const SHARDS: usize = 16;

/// The open sessions by key, in shards so that clients rarely contend.
struct Table {
    shards: Vec<Mutex<HashMap<Key, Entry>>>,
    hasher: RandomState,
}

impl Table {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<HashMap<Key, Entry>> {
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        &self.shards[index]
    }
}

/// A UDP proxy: a [`DatagramApp`] that relays each client's datagrams to
/// the upstream its [`ProxyUdp`] chose, and the upstream's back. Run it
/// with [`udp_proxy_service`](super::udp_proxy_service).
pub struct UdpProxy<P> {
    pub(super) inner: P,
    pub(super) options: UdpProxyOptions,
    table: Table,
    /// One permit per open session: the session cap, and how cleanup
    /// waits for every session to end.
    slots: Arc<Semaphore>,
    pub(super) closing: watch::Sender<bool>,
    next_id: AtomicU64,
    pub(super) stats: UdpProxyStats,
}

impl<P> std::fmt::Debug for UdpProxy<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpProxy")
            .field("options", &self.options)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P> UdpProxy<P> {
    /// A proxy running `inner`'s callbacks within `options`' limits.
    pub fn new(inner: P, options: UdpProxyOptions) -> Self {
        metrics::register_all();
        let max = session_cap(&options) as usize;
        Self {
            inner,
            options,
            table: Table::new(),
            slots: Arc::new(Semaphore::new(max)),
            closing: watch::Sender::new(false),
            next_id: AtomicU64::new(0),
            stats: UdpProxyStats::default(),
        }
    }

    /// The callbacks.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The limits.
    pub fn options(&self) -> &UdpProxyOptions {
        &self.options
    }

    /// This proxy's counts: sessions and dropped datagrams.
    pub fn stats(&self) -> &UdpProxyStats {
        &self.stats
    }

    /// Forget the session `id` of `key`, unless a later one replaced it.
    pub(super) fn remove(&self, key: &Key, id: u64) {
        let mut shard = self.table.shard(key).lock();
        if shard.get(key).is_some_and(|entry| entry.id == id) {
            shard.remove(key);
        }
    }
}

impl<P: ProxyUdp> UdpProxy<P> {
    /// Queue `datagram` on its client's session, starting one when there
    /// is none.
    fn relay(self: &Arc<Self>, datagram: Bytes, reply: &DatagramReply) {
        let key = (reply.local_addr(), reply.peer_addr());
        let mut shard = self.table.shard(&key).lock();
        let datagram = match shard.get(&key) {
            None => datagram,
            Some(entry) => match entry.queue.push(datagram) {
                Ok(()) => return,
                Err(PushError::Full) => {
                    self.stats.drop_datagrams(DropReason::QueueFull, 1);
                    return;
                }
                // The session just ended (its idle timeout, say): this
                // datagram starts the next one.
                Err(PushError::Closed(datagram)) => {
                    shard.remove(&key);
                    datagram
                }
            },
        };
        if *self.closing.borrow() {
            // Shutting down: no new session.
            self.stats.drop_datagrams(DropReason::Closed, 1);
            return;
        }
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.stats.drop_datagrams(DropReason::SessionLimit, 1);
            log::debug!("udp proxy: no room for a session of {}", key.1);
            return;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = queue::queue(
            self.options.max_pending_datagrams,
            self.options.max_pending_bytes,
        );
        shard.insert(key, Entry { id, queue: tx });
        drop(shard);
        let proxy = Arc::clone(self);
        let reply = reply.clone();
        tokio::spawn(async move {
            session::run(proxy, key, id, rx, datagram, reply).await;
            drop(slot);
        });
    }
}

/// The session cap as semaphore permits: at least one, and no more than
/// a semaphore can hand out at once.
fn session_cap(options: &UdpProxyOptions) -> u32 {
    let max = options.max_sessions.clamp(1, Semaphore::MAX_PERMITS);
    u32::try_from(max).unwrap_or(u32::MAX)
}

#[async_trait]
impl<P: ProxyUdp> DatagramApp for UdpProxy<P> {
    /// Every datagram is handled here, on the receive loop, so each
    /// client's datagrams reach its session in order; no handler task is
    /// spent on them.
    fn filter_datagram(
        self: &Arc<Self>,
        datagram: Bytes,
        _from: SocketAddr,
        reply: &DatagramReply,
    ) -> Option<Bytes> {
        self.relay(datagram, reply);
        None
    }

    async fn process_datagram(
        self: &Arc<Self>,
        datagram: Bytes,
        _from: SocketAddr,
        reply: &DatagramReply,
    ) {
        // Not reached: `filter_datagram` takes every datagram.
        self.relay(datagram, reply);
    }

    /// End every session (each logs), waiting at most the send timeout
    /// plus five seconds.
    async fn cleanup(&self) {
        self.closing.send_replace(true);
        let all = session_cap(&self.options);
        let wait = self
            .options
            .send_timeout
            .saturating_add(Duration::from_secs(5));
        if pingora_timeout::fast::timeout(wait, self.slots.acquire_many(all))
            .await
            .is_err()
        {
            log::warn!("udp proxy: sessions still open after {wait:?} at shutdown");
        }
    }
}
