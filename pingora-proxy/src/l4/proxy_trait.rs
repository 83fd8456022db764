//! [`ProxyTcp`]: the callbacks a user implements to run a TCP proxy.

use super::TcpSession;
use bytes::BytesMut;
use pingora_core::upstreams::BasicPeer;
use pingora_error::{Error, Result};
use std::future::Future;

/// The phases of a proxied TCP connection, each with a default but
/// [`upstream_peer`](Self::upstream_peer), called in this order:
///
/// 1. [`new_ctx`](Self::new_ctx), once per client connection
/// 2. [`upstream_peer`](Self::upstream_peer): where the bytes go. It may
///    read the start of the stream first, such as the TLS ClientHello
///    with [`TcpSession::read_client_hello`]; what it read is forwarded
///    unchanged.
/// 3. connect (the peer's options: connect timeout, TLS); on failure
///    [`fail_to_connect`](Self::fail_to_connect), which may retry from
///    step 2 by marking the error retryable (connect errors are, by
///    default), up to the server's `max_retries`
/// 4. [`connected_to_upstream`](Self::connected_to_upstream)
/// 5. the relay, both ways at once, until both directions ended or a
///    timeout, an error or shutdown ended the session; with
///    [`wants_byte_filters`](Self::wants_byte_filters), every piece of
///    bytes goes through [`downstream_bytes_filter`](Self::downstream_bytes_filter)
///    or [`upstream_bytes_filter`](Self::upstream_bytes_filter) first
/// 6. [`logging`](Self::logging), exactly once per connection, with the
///    error that ended it, if any
///
/// Pingora has no such trait (it offers only a raw `ServerApp` for TCP);
/// this one follows the shape of [`ProxyHttp`](crate::ProxyHttp): plain
/// `async fn` phases returning `Send` futures, a per-connection `CTX`.
///
/// # Examples
///
/// ```
/// use pingora_core::upstreams::BasicPeer;
/// use pingora_error::Result;
/// use pingora_proxy::l4::{ProxyTcp, TcpSession};
///
/// struct ToDatabase;
///
/// impl ProxyTcp for ToDatabase {
///     type CTX = ();
///     fn new_ctx(&self) {}
///
///     async fn upstream_peer(&self, _: &mut TcpSession, _: &mut ()) -> Result<Box<BasicPeer>> {
///         let addr: std::net::SocketAddr = ([127, 0, 0, 1], 5432).into();
///         Ok(Box::new(BasicPeer::new(addr)))
///     }
/// }
/// ```
pub trait ProxyTcp: Send + Sync {
    /// Per-connection state, created by [`new_ctx`](Self::new_ctx) and
    /// handed to every phase of that connection.
    type CTX: Send;

    /// A fresh state for a new client connection.
    fn new_ctx(&self) -> Self::CTX;

    /// Where to send this connection's bytes: a [`BasicPeer`] (plain, or
    /// TLS-originating with [`BasicPeer::with_tls`]), with its options
    /// (connect timeout, certificate checks ...). Pick it from a
    /// `LoadBalancer` as an HTTP proxy does. Called again for each retry.
    ///
    /// # Errors
    ///
    /// An error closes the client connection (and goes to
    /// [`logging`](Self::logging)).
    fn upstream_peer(
        &self,
        session: &mut TcpSession,
        ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<Box<BasicPeer>>> + Send;

    /// Connecting to `peer` failed. Return the error, after deciding
    /// whether to retry with [`Error::set_retry`]: connect errors arrive
    /// retryable, and nothing reached `peer`, so a retry is safe.
    fn fail_to_connect(
        &self,
        _session: &mut TcpSession,
        _peer: &BasicPeer,
        _ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        e
    }

    /// The connection to `peer` is up (its digest is
    /// [`TcpSession::upstream_digest`]); the relay starts next.
    ///
    /// # Errors
    ///
    /// An error closes both connections.
    fn connected_to_upstream(
        &self,
        _session: &mut TcpSession,
        _peer: &BasicPeer,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Whether this connection's bytes go through the byte filters.
    /// `false` by default, which keeps the fast path: `splice(2)` on
    /// Linux between two plain TCP sockets. Asked once, after
    /// [`connected_to_upstream`](Self::connected_to_upstream).
    fn wants_byte_filters(&self, _session: &TcpSession, _ctx: &Self::CTX) -> bool {
        false
    }

    /// Bytes from the client, before they go upstream (only when
    /// [`wants_byte_filters`](Self::wants_byte_filters)), starting with
    /// those [`TcpSession::read_client_hello`] read. Change `data`
    /// as needed; what it holds on return is sent (nothing, if emptied).
    /// Called once more with `end_of_stream` (and `data` empty) when the
    /// client ended its side: bytes added then are sent before the
    /// half-close.
    ///
    /// # Errors
    ///
    /// An error ends the session.
    fn downstream_bytes_filter(
        &self,
        _session: &mut TcpSession,
        _data: &mut BytesMut,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// Bytes from the upstream, before they go to the client; as
    /// [`downstream_bytes_filter`](Self::downstream_bytes_filter).
    ///
    /// # Errors
    ///
    /// An error ends the session.
    fn upstream_bytes_filter(
        &self,
        _session: &mut TcpSession,
        _data: &mut BytesMut,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// The connection is over: `e` is what ended it, if anything did
    /// (connect failure, timeout, reset ...). The session has the byte
    /// counts each way ([`TcpSession::bytes_from_downstream`],
    /// [`TcpSession::bytes_from_upstream`]) and the durations.
    fn logging(
        &self,
        _session: &mut TcpSession,
        _e: Option<&Error>,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}
