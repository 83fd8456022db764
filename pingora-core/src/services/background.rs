//! Background services: work that runs beside the listening services, such as
//! health checks, service discovery or flushing metrics.
//!
//! A service implements one of [`BackgroundService`]'s two methods:
//! [`start`](BackgroundService::start), the shape Pingora programs use,
//! counts as ready as soon as it starts; a service that other services
//! wait for (see [`Server::add_dependency`](crate::server::Server::add_dependency))
//! implements [`start_with_ready`](BackgroundService::start_with_ready) and
//! says when it is ready.
//!
//! # Examples
//!
//! A Pingora-style service:
//!
//! ```no_run
//! use async_trait::async_trait;
//! use pingora_core::server::ShutdownWatch;
//! use pingora_core::services::background::{BackgroundService, background_service};
//!
//! struct Flusher;
//!
//! #[async_trait]
//! impl BackgroundService for Flusher {
//!     async fn start(&self, mut shutdown: ShutdownWatch) {
//!         let _ = shutdown.changed().await;
//!         log::info!("flushed on the way out");
//!     }
//! }
//!
//! let service = background_service("flusher", Flusher);
//! ```
//!
//! A service that says when it is ready:
//!
//! ```no_run
//! use async_trait::async_trait;
//! use pingora_core::server::ShutdownWatch;
//! use pingora_core::services::ReadyNotifier;
//! use pingora_core::services::background::{BackgroundService, background_service};
//! use std::time::Duration;
//!
//! struct Ticker;
//!
//! #[async_trait]
//! impl BackgroundService for Ticker {
//!     async fn start_with_ready(&self, mut shutdown: ShutdownWatch, ready: ReadyNotifier) {
//!         ready.notify_ready();
//!         let mut tick = tokio::time::interval(Duration::from_secs(1));
//!         loop {
//!             tokio::select! {
//!                 _ = shutdown.changed() => return,
//!                 _ = tick.tick() => log::info!("tick"),
//!             }
//!         }
//!     }
//! }
//!
//! let service = background_service("ticker", Ticker);
//! ```

use super::{ReadyNotifier, Service, ServiceContext};
use crate::server::ShutdownWatch;
use async_trait::async_trait;
use pingora_error::Result;
use std::sync::Arc;

/// Work run in the background until the server shuts down.
///
/// Implement one of the two methods; the server calls
/// [`start_with_ready`](Self::start_with_ready), whose default reports the
/// service ready and runs [`start`](Self::start). Like the other traits a
/// server runs (services, apps, health checks, discovery), this one is
/// written with `#[async_trait]`; only `ProxyHttp` uses native `async fn`.
#[async_trait]
pub trait BackgroundService: Send + Sync {
    /// Run until `shutdown` turns `true`, then return: Pingora's shape.
    /// The service counts as ready as soon as it starts.
    ///
    /// The default waits for `shutdown` and returns, for a service that
    /// implements [`start_with_ready`](Self::start_with_ready) instead.
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    }

    /// Run until `shutdown` turns `true`, then return, telling dependents
    /// when this service is ready.
    ///
    /// Call `ready.notify_ready()` once dependents may start, for example
    /// after a first health check; returning or dropping `ready` also
    /// counts. The default notifies at once and runs
    /// [`start`](Self::start).
    async fn start_with_ready(&self, shutdown: ShutdownWatch, ready: ReadyNotifier) {
        ready.notify_ready();
        self.start(shutdown).await;
    }
}

/// A [`Service`] that runs one [`BackgroundService`].
#[derive(Debug)]
pub struct GenBackgroundService<A> {
    name: String,
    task: Arc<A>,
    threads: Option<usize>,
}

impl<A> GenBackgroundService<A> {
    /// A service named `name` running `task`.
    pub fn new(name: &str, task: Arc<A>) -> Self {
        Self {
            name: name.to_string(),
            task,
            threads: None,
        }
    }

    /// The task, to share its state (such as a load balancer's backends)
    /// with other services.
    pub fn task(&self) -> Arc<A> {
        Arc::clone(&self.task)
    }

    /// Run on `threads` threads instead of the server's setting.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = Some(threads);
    }
}

/// A [`GenBackgroundService`] named `name` running `task`.
pub fn background_service<A>(name: &str, task: A) -> GenBackgroundService<A> {
    GenBackgroundService::new(name, Arc::new(task))
}

#[async_trait]
impl<A: BackgroundService + 'static> Service for GenBackgroundService<A> {
    async fn start_service(&mut self, ctx: ServiceContext) -> Result<()> {
        self.task.start_with_ready(ctx.shutdown, ctx.ready).await;
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::watch;

    /// Pingora's shape: only `start`.
    struct PingoraStyle(AtomicBool);

    #[async_trait]
    impl BackgroundService for PingoraStyle {
        async fn start(&self, mut shutdown: ShutdownWatch) {
            self.0.store(true, Ordering::SeqCst);
            let _ = shutdown.changed().await;
        }
    }

    /// Ours: says when it is ready.
    struct Announcing;

    #[async_trait]
    impl BackgroundService for Announcing {
        async fn start_with_ready(&self, mut shutdown: ShutdownWatch, ready: ReadyNotifier) {
            ready.notify_ready();
            let _ = shutdown.changed().await;
        }
    }

    #[tokio::test]
    async fn pingora_style_service_runs_and_is_ready_at_once() {
        let service = Arc::new(PingoraStyle(AtomicBool::new(false)));
        let (tx, shutdown) = watch::channel(false);
        let (ready, mut watch) = ReadyNotifier::new();
        let task = {
            let service = Arc::clone(&service);
            tokio::spawn(async move { service.start_with_ready(shutdown, ready).await })
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), watch.wait())
            .await
            .unwrap();
        assert!(watch.notified());
        tx.send(true).unwrap();
        task.await.unwrap();
        assert!(service.0.load(Ordering::SeqCst), "start ran");
    }

    #[tokio::test]
    async fn start_with_ready_services_still_work() {
        let (tx, shutdown) = watch::channel(false);
        let (ready, mut watch) = ReadyNotifier::new();
        let task = tokio::spawn(async move { Announcing.start_with_ready(shutdown, ready).await });
        watch.wait().await;
        assert!(watch.notified());
        tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        // the default `start` returns at shutdown too
        let (tx, shutdown) = watch::channel(false);
        let idle = tokio::spawn(async move { Announcing.start(shutdown).await });
        tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), idle)
            .await
            .unwrap()
            .unwrap();
    }
}
