//! Apps: what a listening service runs on each accepted connection.

pub mod http_app;
pub mod prometheus_http_app;

use crate::listeners::{ConnectionFilter, ProxyProtocolSettings};
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

    /// Serve `stream` as [`process_new_on`](Self::process_new_on) does,
    /// and say what became of it. A
    /// [`ListeningService`](crate::services::listening::ListeningService)
    /// calls this one. An app that serves clients which speak first (HTTP)
    /// overrides it to hand an idle connection back as [`Served::Idle`]
    /// when `handover.parkable` says the service can hold it without a
    /// task; the service then parks the bare socket until its client sends
    /// more and calls this again with `handover.resumed`.
    ///
    /// The default calls `process_new_on`: a stream it returns is
    /// [`Served::Again`], served again at once.
    async fn process_connection(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
        options: &ListenerOptions,
        handover: Handover,
    ) -> Served
    where
        Self: Send + Sync + 'static,
    {
        let _ = handover;
        Served::from_reusable(self.process_new_on(stream, shutdown, options).await)
    }

    /// Called once when the service stops, to release what the app holds.
    async fn cleanup(&self) {}
}

/// How a listening service hands a connection to
/// [`ServerApp::process_connection`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handover {
    /// The app handed this connection back idle ([`Served::Idle`]) and its
    /// client has since sent bytes, or closed: serve its next exchange
    /// (for HTTP/1, a request on a reused connection).
    pub resumed: bool,
    /// The service can park this connection: an app may return it as
    /// [`Served::Idle`] rather than wait for its client on the task.
    pub parkable: bool,
}

impl Handover {
    /// A connection just accepted, which the service can park or not.
    #[must_use]
    pub const fn accepted(parkable: bool) -> Self {
        Self {
            resumed: false,
            parkable,
        }
    }

    /// A parked connection whose client sent more, which the service can
    /// park again or not.
    #[must_use]
    pub const fn resumed(parkable: bool) -> Self {
        Self {
            resumed: true,
            parkable,
        }
    }
}

/// What became of a connection [`ServerApp::process_connection`] served.
#[derive(Debug)]
pub enum Served {
    /// Done with: the stream is closed.
    Closed,
    /// Reusable: serve it again at once (what `process_new` returning the
    /// stream means).
    Again(Stream),
    /// Idle, waiting for its client: hold it for at most `wait` (then
    /// close it) until the client sends bytes or closes, then serve it
    /// again with [`Handover::resumed`].
    Idle {
        /// The idle connection, nothing of its next exchange read.
        stream: Stream,
        /// How much longer it may stay idle.
        wait: std::time::Duration,
    },
}

impl Served {
    /// What `process_new` returning `stream` means: [`Served::Again`]
    /// with it, or [`Served::Closed`].
    pub fn from_reusable(stream: Option<Stream>) -> Self {
        stream.map_or(Self::Closed, Self::Again)
    }

    /// What to return from `process_new` for this: the stream of
    /// [`Served::Again`], or `None`. An idle connection cannot be held
    /// by a caller of `process_new`, which apps know from
    /// [`Handover::parkable`]: they never hand one back to it.
    pub fn into_reusable(self) -> Option<Stream> {
        match self {
            Self::Again(stream) => Some(stream),
            _ => None,
        }
    }
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
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// HTTP/1 limits and timeouts; `None` keeps the app's.
    pub h1: Option<H1Config>,
    /// HTTP/2 settings and limits; `None` keeps the app's.
    pub h2: Option<H2Options>,
    /// Accept PROXY protocol headers from these senders; `None` (the
    /// default) reads none: every byte is the app's.
    pub proxy_protocol: Option<ProxyProtocolSettings>,
    /// The connection filter of this listener, asked instead of the
    /// service's (see
    /// [`ListeningService::set_connection_filter`](crate::services::listening::ListeningService::set_connection_filter)).
    pub connection_filter: Option<Arc<dyn ConnectionFilter>>,
}

impl std::fmt::Debug for ListenerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerOptions")
            .field("h1", &self.h1)
            .field("h2", &self.h2)
            .field("proxy_protocol", &self.proxy_protocol)
            .field("connection_filter", &self.connection_filter.is_some())
            .finish()
    }
}

/// Equal when the settings are, and the connection filters are the same
/// one (or both absent).
impl PartialEq for ListenerOptions {
    fn eq(&self, other: &Self) -> bool {
        let same_filter = match (&self.connection_filter, &other.connection_filter) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        self.h1 == other.h1
            && self.h2 == other.h2
            && self.proxy_protocol == other.proxy_protocol
            && same_filter
    }
}

impl Eq for ListenerOptions {}

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

    /// Ask `filter` about the connections of this listener, instead of
    /// the service's filter; see [`ConnectionFilter`].
    #[must_use]
    pub fn with_connection_filter(mut self, filter: Arc<dyn ConnectionFilter>) -> Self {
        self.connection_filter = Some(filter);
        self
    }

    /// Accept PROXY protocol headers on this listener as `settings` say:
    /// read one from each connection of a trusted sender, before TLS, and
    /// serve the connection as from the client it names.
    #[must_use]
    pub fn with_proxy_protocol(mut self, settings: ProxyProtocolSettings) -> Self {
        self.proxy_protocol = Some(settings);
        self
    }
}
