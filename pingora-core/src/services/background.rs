//! Background services: work that runs beside the listening services, such as
//! health checks, service discovery or flushing metrics.
//!
//! # Examples
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
//!     async fn start(&self, mut shutdown: ShutdownWatch, ready: ReadyNotifier) {
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
#[async_trait]
pub trait BackgroundService: Send + Sync {
    /// Run until `shutdown` turns `true`, then return.
    ///
    /// Call `ready.notify_ready()` once dependents may start, for example
    /// after a first health check; returning or dropping `ready` also counts.
    async fn start(&self, shutdown: ShutdownWatch, ready: ReadyNotifier);
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
        self.task.start(ctx.shutdown, ctx.ready).await;
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}
