//! Apps: what a listening service runs on each accepted connection.

pub mod http_app;

use crate::protocols::Stream;
use crate::protocols::http::v1::H1Config;
use crate::protocols::http::v2::H2Options;
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

    /// Serve `stream`, accepted on a listener with `options`. A listening
    /// service calls this one; the default ignores `options` and calls
    /// [`process_new`](Self::process_new). HTTP apps override it to apply
    /// the listener's limits and timeouts.
    async fn process_new_on(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
        options: &ListenerOptions,
    ) -> Option<Stream>
    where
        Self: Send + Sync + 'static,
    {
        let _ = options;
        self.process_new(stream, shutdown).await
    }

    /// Called once when the service stops, to release what the app holds.
    async fn cleanup(&self) {}
}

/// Settings of one listener that override the app's for the connections
/// it accepts, such as a shorter header timeout on a public port than on
/// an internal one.
///
/// The HTTP apps ([`HttpServer`](http_app::HttpServer) and the proxy)
/// use the `h1` and `h2` settings given here instead of their own; other
/// apps may ignore them.
///
/// # Examples
///
/// ```
/// use pingora_core::apps::ListenerOptions;
/// use pingora_core::protocols::http::v1::H1Config;
/// use std::time::Duration;
///
/// let mut h1 = H1Config::default();
/// h1.header_timeout = Duration::from_secs(5);
/// h1.max_request_body = Some(10 * 1024 * 1024);
/// let options = ListenerOptions::default().with_h1(h1);
/// assert_eq!(options.h1.unwrap().header_timeout, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// HTTP/1 limits and timeouts; `None` keeps the app's.
    pub h1: Option<H1Config>,
    /// HTTP/2 settings and limits; `None` keeps the app's.
    pub h2: Option<H2Options>,
}

impl ListenerOptions {
    /// Use `config` for HTTP/1 connections of this listener.
    #[must_use]
    pub const fn with_h1(mut self, config: H1Config) -> Self {
        self.h1 = Some(config);
        self
    }

    /// Use `options` for HTTP/2 connections of this listener.
    #[must_use]
    pub const fn with_h2(mut self, options: H2Options) -> Self {
        self.h2 = Some(options);
        self
    }
}
