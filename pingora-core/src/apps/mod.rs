//! Apps: what a listening service runs on each accepted connection.

pub mod http_app;

use crate::protocols::Stream;
use crate::server::ShutdownWatch;
use async_trait::async_trait;
use std::sync::Arc;

/// An application served on accepted connections.
///
/// A listening service calls [`process_new`](Self::process_new) once per
/// accepted connection, on its own task.
#[async_trait]
pub trait ServerApp {
    /// Serve `stream` until done. `shutdown` turns `true` when the server is
    /// shutting down: finish the exchange in progress and return.
    ///
    /// Return the stream when it is left in a state where it may serve again
    /// (for example an idle HTTP keep-alive connection), `None` when it must
    /// be closed.
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream>;

    /// Called once when the service stops, to release what the app holds.
    async fn cleanup(&self) {}
}
