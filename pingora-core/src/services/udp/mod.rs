//! UDP services: datagrams in, datagrams out.
//!
//! Pingora has no UDP API; this is ours. A [`UdpService`] binds one socket
//! per configured address and hands each datagram it receives to a
//! [`DatagramApp`], which answers through a [`DatagramReply`] (as many
//! datagrams as it likes, now or later). The UDP proxy of `pingora-proxy`
//! is such an app.
//!
//! # Sockets, threads and upgrades
//!
//! Each address gets **one socket, shared by every thread** of the
//! service: its receive loop (or loops, one per
//! [`listener_tasks_per_fd`](crate::server::ServerConf::listener_tasks_per_fd))
//! reads datagrams and spawns their handlers across the service's threads.
//! We chose one shared socket over an `SO_REUSEPORT` socket per thread
//! because a graceful upgrade passes sockets to the new process by address
//! (in [`ListenFds`](crate::server::ListenFds), under `udp://ADDR`): one
//! socket per address hands over whole, whatever thread count the new
//! process runs, while a reuse-port group would rehash clients when its
//! size changes and keep delivering datagrams to the sockets of a process
//! that stopped reading. One receive loop (the default) also keeps each
//! client's datagrams in order through [`DatagramApp::filter_datagram`];
//! more loops per socket read in parallel but may reorder them.
//!
//! # Limits
//!
//! - The receive buffer holds 64 KiB, the largest UDP datagram, so nothing
//!   is truncated; each datagram is copied out at its own size.
//! - At most [`max_in_flight`](UdpServiceOptions::max_in_flight) handlers
//!   run at once; a datagram arriving when all are busy is dropped and
//!   counted (`pingora_udp_datagrams_dropped_total{reason="busy"}`), so a
//!   slow handler cannot hold up the others. Each handler is cancelled
//!   after [`handler_timeout`](UdpServiceOptions::handler_timeout)
//!   (`reason="timeout"`).
//! - A reply waits at most [`send_timeout`](UdpServiceOptions::send_timeout)
//!   for room in the socket's buffer.
//!
//! # Shutdown
//!
//! Like a TCP listener goes on accepting, the service goes on receiving
//! through the grace period after the shutdown signal. At shutdown it
//! stops reading, lets the handlers in flight finish (each bounded by its
//! timeout), calls [`DatagramApp::cleanup`], and closes its sockets unless
//! a new process took them over.
//!
//! # Examples
//!
//! An echo service:
//!
//! ```no_run
//! use bytes::Bytes;
//! use pingora_core::services::udp::{DatagramApp, DatagramReply, UdpService};
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! struct Echo;
//!
//! #[async_trait::async_trait]
//! impl DatagramApp for Echo {
//!     async fn process_datagram(
//!         self: &Arc<Self>,
//!         datagram: Bytes,
//!         _from: SocketAddr,
//!         reply: &DatagramReply,
//!     ) {
//!         let _ = reply.send(&datagram).await;
//!     }
//! }
//!
//! let mut echo = UdpService::new("echo", Arc::new(Echo));
//! echo.add_udp("0.0.0.0:5353");
//! // server.add_service(echo);
//! ```

mod metrics;
mod reply;
mod socket;

pub use reply::DatagramReply;
pub use socket::UdpSocketOptions;

use super::{Service, ServiceContext};
use crate::server::{ShutdownWatch, Spawner};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use pingora_error::Result;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

/// The largest datagram a UDP service receives: the receive buffer's size.
/// A UDP payload cannot be larger (65,507 bytes over IPv4, 65,527 over
/// IPv6 without jumbograms).
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// What a [`UdpService`] runs: takes datagrams, sends datagrams back.
///
/// # Examples
///
/// A DNS-style responder that answers each query with its first two bytes
/// (the query id) and a fixed payload:
///
/// ```
/// use bytes::Bytes;
/// use pingora_core::services::udp::{DatagramApp, DatagramReply};
/// use std::net::SocketAddr;
/// use std::sync::Arc;
///
/// struct Answer;
///
/// #[async_trait::async_trait]
/// impl DatagramApp for Answer {
///     fn filter_datagram(
///         self: &Arc<Self>,
///         datagram: Bytes,
///         _from: SocketAddr,
///         _reply: &DatagramReply,
///     ) -> Option<Bytes> {
///         // Too short to carry an id: dropped before a task is spent on it.
///         (datagram.len() >= 2).then_some(datagram)
///     }
///
///     async fn process_datagram(
///         self: &Arc<Self>,
///         datagram: Bytes,
///         _from: SocketAddr,
///         reply: &DatagramReply,
///     ) {
///         let mut answer = datagram[..2].to_vec();
///         answer.extend_from_slice(b" answered");
///         let _ = reply.send(&answer).await;
///     }
/// }
/// ```
#[async_trait]
pub trait DatagramApp: Send + Sync + 'static {
    /// Runs on the receive loop for each datagram, before a handler task
    /// is spent on it; must not block. Return the datagram to have
    /// [`process_datagram`](Self::process_datagram) handle it, or `None`
    /// to drop it, or when this handled it already (the UDP proxy queues
    /// datagrams toward their upstream here, in arrival order). The default
    /// passes every datagram on.
    fn filter_datagram(
        self: &Arc<Self>,
        datagram: Bytes,
        from: SocketAddr,
        reply: &DatagramReply,
    ) -> Option<Bytes> {
        let _ = (from, reply);
        Some(datagram)
    }

    /// Handle one datagram from `from`, on a task of its own; answer with
    /// `reply`, which may be cloned and kept. Cancelled after the service's
    /// [`handler_timeout`](UdpServiceOptions::handler_timeout).
    async fn process_datagram(
        self: &Arc<Self>,
        datagram: Bytes,
        from: SocketAddr,
        reply: &DatagramReply,
    );

    /// Called once at shutdown, after the service stopped receiving and
    /// its handlers finished: end what the app keeps running (sessions,
    /// say).
    async fn cleanup(&self) {}
}

/// The limits of a [`UdpService`].
///
/// # Examples
///
/// ```
/// use pingora_core::services::udp::UdpServiceOptions;
/// use std::time::Duration;
///
/// let mut options = UdpServiceOptions::default();
/// options.max_in_flight = 256;
/// options.handler_timeout = Duration::from_secs(2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpServiceOptions {
    /// Handlers running at once, over all the service's sockets; a
    /// datagram beyond it is dropped and counted. Default 1024.
    pub max_in_flight: usize,
    /// How long one handler may run before it is cancelled. Default 10 s.
    pub handler_timeout: Duration,
    /// How long a [`DatagramReply::send`] waits for room in the socket's
    /// send buffer. Default 1 s.
    pub send_timeout: Duration,
}

impl Default for UdpServiceOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            handler_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(1),
        }
    }
}

/// A service that receives datagrams on its UDP sockets and hands each to
/// a [`DatagramApp`]. See the [module docs](self) for its threads, limits
/// and shutdown.
///
/// # Examples
///
/// ```no_run
/// # use pingora_core::services::udp::{DatagramApp, UdpService, UdpServiceOptions};
/// # use std::sync::Arc;
/// # fn make<A: DatagramApp>(app: A) {
/// let mut service = UdpService::new("dns", Arc::new(app));
/// service.add_udp("0.0.0.0:53");
/// service.add_udp("[::]:53");
/// let mut options = UdpServiceOptions::default();
/// options.max_in_flight = 4096;
/// service.set_options(options);
/// # }
/// ```
pub struct UdpService<A> {
    name: String,
    addrs: Vec<(String, UdpSocketOptions)>,
    app: Arc<A>,
    options: UdpServiceOptions,
    threads: Option<usize>,
    bound: UdpBoundAddrs,
}

impl<A> std::fmt::Debug for UdpService<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpService")
            .field("name", &self.name)
            .field("addrs", &self.addrs)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<A> UdpService<A> {
    /// A service named `name` serving `app`, with no address yet.
    pub fn new(name: &str, app: Arc<A>) -> Self {
        Self {
            name: name.to_owned(),
            addrs: Vec::new(),
            app,
            options: UdpServiceOptions::default(),
            threads: None,
            bound: UdpBoundAddrs::default(),
        }
    }

    /// Receive on the UDP address `addr` (`"0.0.0.0:53"`, `"[::1]:0"`).
    pub fn add_udp(&mut self, addr: &str) {
        self.add_udp_with_settings(addr, UdpSocketOptions::default());
    }

    /// Receive on the UDP address `addr`, bound with `options`.
    pub fn add_udp_with_settings(&mut self, addr: &str, options: UdpSocketOptions) {
        self.addrs.push((addr.to_owned(), options));
    }

    /// Set the service's limits.
    pub fn set_options(&mut self, options: UdpServiceOptions) {
        self.options = options;
    }

    /// Run on `threads` threads instead of the server's setting.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = Some(threads);
    }

    /// The app.
    pub fn app(&self) -> &Arc<A> {
        &self.app
    }

    /// A handle that gives the bound addresses once the service is ready,
    /// such as the port picked for `127.0.0.1:0`.
    pub fn bound_addrs(&self) -> UdpBoundAddrs {
        self.bound.clone()
    }
}

/// The addresses a [`UdpService`] is bound to, known once it is ready.
#[derive(Debug, Clone, Default)]
pub struct UdpBoundAddrs(Arc<Mutex<Option<Vec<SocketAddr>>>>);

impl UdpBoundAddrs {
    /// The addresses in the order they were added, or `None` before the
    /// service is ready.
    pub fn get(&self) -> Option<Vec<SocketAddr>> {
        self.0.lock().clone()
    }
}

#[async_trait]
impl<A: DatagramApp> Service for UdpService<A> {
    async fn start_service(&mut self, ctx: ServiceContext) -> Result<()> {
        let mut sockets = Vec::with_capacity(self.addrs.len());
        for (addr, options) in &self.addrs {
            let socket = socket::bind_or_take(addr, options, &ctx.fds)?;
            let local = socket.local_addr().map_err(|e| {
                pingora_error::Error::because(
                    pingora_error::ErrorType::SocketError,
                    format!("udp {addr}: no local address"),
                    e,
                )
            })?;
            log::info!("{}: receiving on udp {local}", self.name);
            sockets.push((Arc::new(socket), local));
        }
        *self.bound.0.lock() = Some(sockets.iter().map(|(_, local)| *local).collect());
        metrics::register();
        ctx.ready.notify_ready();

        let slots = Arc::new(Semaphore::new(self.options.max_in_flight.max(1)));
        let mut loops = Vec::new();
        for (socket, local) in &sockets {
            for _ in 0..ctx.listener_tasks_per_fd.max(1) {
                let receiver = Receiver {
                    socket: Arc::clone(socket),
                    local: *local,
                    app: Arc::clone(&self.app),
                    slots: Arc::clone(&slots),
                    options: self.options.clone(),
                    spawner: ctx.spawner.clone(),
                    shutdown: ctx.shutdown.clone(),
                };
                loops.push(ctx.spawner.spawn(receiver.run()));
            }
        }
        for receive_loop in loops {
            let _ = receive_loop.await;
        }
        // Close our sockets (once the handlers holding replies are done),
        // so a plain shutdown stops taking datagrams; after an upgrade the
        // new process holds its own descriptors for them.
        for (addr, _) in &self.addrs {
            socket::forget(addr, &ctx.fds);
        }
        drop(sockets);
        log::info!("{}: stopped receiving, finishing handlers", self.name);
        // Every handler holds a slot and is bounded by its timeout, so
        // taking all slots back waits for them, and not for long.
        let all = u32::try_from(self.options.max_in_flight.max(1)).unwrap_or(u32::MAX);
        let wait = self
            .options
            .handler_timeout
            .saturating_add(Duration::from_secs(1));
        let _ = pingora_timeout::fast::timeout(wait, slots.acquire_many(all)).await;
        self.app.cleanup().await;
        log::info!("{}: stopped", self.name);
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

/// One receive loop on one socket.
struct Receiver<A> {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    app: Arc<A>,
    /// Free handler slots, shared by the service's loops.
    slots: Arc<Semaphore>,
    options: UdpServiceOptions,
    spawner: Spawner,
    shutdown: ShutdownWatch,
}

impl<A: DatagramApp> Receiver<A> {
    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let received = tokio::select! {
                received = self.socket.recv_from(&mut buf) => received,
                () = stopped(&mut self.shutdown) => return,
            };
            let (len, from) = match received {
                Ok(received) => received,
                Err(e) => {
                    // Rare on an unconnected socket (no ICMP errors are
                    // reported on it); pause so a lasting one cannot spin.
                    log::warn!("udp {}: receive failed: {e}", self.local);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            metrics::received();
            let datagram = Bytes::copy_from_slice(&buf[..len]);
            self.dispatch(datagram, from);
        }
    }

    /// Filter `datagram` on this loop, then hand it to a handler task if a
    /// slot is free.
    fn dispatch(&self, datagram: Bytes, from: SocketAddr) {
        let reply = DatagramReply::new(
            Arc::clone(&self.socket),
            self.local,
            from,
            self.options.send_timeout,
        );
        let Some(datagram) = self.app.filter_datagram(datagram, from, &reply) else {
            return;
        };
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            metrics::dropped(metrics::Dropped::Busy);
            log::debug!(
                "udp {}: every handler busy, dropped a datagram from {from}",
                self.local
            );
            return;
        };
        let app = Arc::clone(&self.app);
        let limit = self.options.handler_timeout;
        self.spawner.spawn(async move {
            let handled =
                pingora_timeout::fast::timeout(limit, app.process_datagram(datagram, from, &reply))
                    .await;
            if handled.is_err() {
                metrics::dropped(metrics::Dropped::Timeout);
                log::debug!("udp: the handler of a datagram from {from} timed out");
            }
            drop(slot);
        });
    }
}

/// Wait until `shutdown` turns `true` (or its sender is gone).
///
/// # Cancel safety
///
/// Cancel safe.
async fn stopped(shutdown: &mut ShutdownWatch) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests;
