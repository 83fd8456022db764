//! Services: what a [`Server`](crate::server::Server) runs, each on its own
//! tokio runtime.
//!
//! - [`listening::ListeningService`] accepts connections on its listeners and
//!   hands each one to a [`ServerApp`](crate::apps::ServerApp).
//! - [`background::GenBackgroundService`] runs a
//!   [`BackgroundService`](background::BackgroundService): periodic work such
//!   as health checks, service discovery or flushing metrics.
//! - [`udp::UdpService`] receives datagrams on its UDP sockets and hands
//!   each to a [`DatagramApp`](udp::DatagramApp).
//!
//! A service says when it is ready (a listening service once its sockets are
//! bound, a background service when it decides), so that services that
//! depend on it start only then.

mod admit;
pub mod background;
pub mod listening;
#[cfg(target_os = "linux")]
mod park;
#[cfg(not(target_os = "linux"))]
#[path = "park_none.rs"]
mod park;
mod ready;
pub mod udp;

pub use ready::{ReadyNotifier, ReadyWatch};

use crate::server::{ListenFds, ShutdownWatch, Spawner};
use async_trait::async_trait;
use pingora_error::Result;

/// What a service is given when it starts.
#[derive(Debug)]
#[non_exhaustive]
pub struct ServiceContext {
    /// The server's listening sockets: sockets passed on by the previous
    /// process, and where to register the ones this service binds.
    pub fds: ListenFds,
    /// Turns `true` when the server shuts down, once the grace period
    /// after the shutdown signal is over: stop taking new work (close the
    /// listeners), finish what is in flight, and return.
    pub shutdown: ShutdownWatch,
    /// Turns `true` at the shutdown signal itself (SIGTERM, or SIGQUIT once
    /// the listening sockets are handed to a new process), at the start
    /// of the grace period, and always before
    /// [`shutdown`](Self::shutdown): connections should drain. HTTP/1
    /// responses then say `Connection: close`, HTTP/2 connections get
    /// GOAWAY, and idle connections are closed without losing a request,
    /// while listeners go on accepting until `shutdown`. A
    /// [`ListeningService`](listening::ListeningService) hands this watch
    /// to its app.
    pub draining: ShutdownWatch,
    /// Tell the server (and dependent services) this service is ready.
    pub ready: ReadyNotifier,
    /// How many accept tasks to run per listening socket.
    pub listener_tasks_per_fd: usize,
    /// Spawns tasks across the service's runtime threads.
    pub spawner: Spawner,
}

impl ServiceContext {
    /// A context for running a service on its own, outside a
    /// [`Server`](crate::server::Server) (in a test, or embedded in
    /// another program): its tasks go to the current tokio runtime, it
    /// binds its own sockets, `stop` turning `true` both drains it and
    /// shuts it down, and the watch says when it is ready.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn standalone(stop: ShutdownWatch) -> (Self, ReadyWatch) {
        let (ready, watch) = ReadyNotifier::new();
        let ctx = Self {
            fds: ListenFds::new(),
            shutdown: stop.clone(),
            draining: stop,
            ready,
            listener_tasks_per_fd: 1,
            spawner: Spawner::current(),
        };
        (ctx, watch)
    }
}

/// Anything a [`Server`](crate::server::Server) runs.
#[async_trait]
pub trait Service: Send + Sync {
    /// Run the service until `ctx.shutdown` turns `true` and its in-flight
    /// work is done (or the server gives up waiting).
    ///
    /// # Errors
    ///
    /// An error means the service could not start (for example a listener
    /// could not bind); the server then exits with status 1.
    async fn start_service(&mut self, ctx: ServiceContext) -> Result<()>;

    /// The service's name, for logs and thread names.
    fn name(&self) -> &str;

    /// Threads for this service, overriding the server's `threads` setting.
    fn threads(&self) -> Option<usize> {
        None
    }
}
