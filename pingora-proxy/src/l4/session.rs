//! [`TcpSession`]: one proxied client connection, as the phases see it.

use bytes::BytesMut;
use pingora_core::protocols::tls::client_hello::{
    ClientHello, MAX_CLIENT_HELLO_LEN, ParsedHello, parse_client_hello,
};
use pingora_core::protocols::{Digest, Stream};
use pingora_core::server::ShutdownWatch;
use pingora_core::upstreams::BasicPeer;
use pingora_error::{Error, ErrorType, Result};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// A proxied TCP connection: the client stream until the relay starts,
/// what is known about both ends, what [`TcpSession::read_client_hello`]
/// read, and, once the relay ran, the bytes each way and the durations.
#[derive(Debug)]
pub struct TcpSession {
    /// Taken by the relay.
    pub(super) downstream: Option<Stream>,
    digest: Option<Digest>,
    /// Bytes read from the client before the relay, sent upstream first.
    pub(super) preread: BytesMut,
    client_hello: Option<ClientHello>,
    pub(super) upstream_digest: Option<Digest>,
    pub(super) peer: Option<Box<BasicPeer>>,
    pub(super) from_downstream: u64,
    pub(super) from_upstream: u64,
    pub(super) spliced: bool,
    start: Instant,
    pub(super) connected_after: Option<Duration>,
    pub(super) ended_after: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) total_timeout: Option<Duration>,
    pub(super) client_hello_timeout: Duration,
    pub(super) shutdown: ShutdownWatch,
}

impl TcpSession {
    pub(super) fn new(stream: Stream, shutdown: ShutdownWatch) -> Self {
        Self {
            digest: stream.digest().cloned(),
            downstream: Some(stream),
            preread: BytesMut::new(),
            client_hello: None,
            upstream_digest: None,
            peer: None,
            from_downstream: 0,
            from_upstream: 0,
            spliced: false,
            start: Instant::now(),
            connected_after: None,
            ended_after: None,
            idle_timeout: None,
            total_timeout: None,
            client_hello_timeout: Duration::ZERO,
            shutdown,
        }
    }

    /// What is known about the client connection: its addresses, and
    /// the TLS session on a TLS-terminating listener.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The client's address, when known.
    pub fn client_addr(&self) -> Option<&pingora_core::protocols::SocketAddr> {
        self.digest.as_ref()?.peer_addr.as_ref()
    }

    /// What is known about the upstream connection, once connected.
    pub fn upstream_digest(&self) -> Option<&Digest> {
        self.upstream_digest.as_ref()
    }

    /// The peer connected to, once connected.
    pub fn peer(&self) -> Option<&BasicPeer> {
        self.peer.as_deref()
    }

    /// Bytes received from the client, all forwarded upstream unless a
    /// byte filter changed them (or the session ended first).
    pub fn bytes_from_downstream(&self) -> u64 {
        self.from_downstream
    }

    /// Bytes received from the upstream.
    pub fn bytes_from_upstream(&self) -> u64 {
        self.from_upstream
    }

    /// Whether the relay moved bytes with `splice(2)`, never through user
    /// space (both ends plain TCP, no byte filter, Linux). A direction
    /// copies small reads and switches to `splice(2)` once a read fills
    /// its 16 KiB buffer, so a session of small messages only is copied
    /// and reports `false`.
    pub fn spliced(&self) -> bool {
        self.spliced
    }

    /// Time since the client connection was accepted.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Time from accept until the upstream connection was up.
    pub fn connect_duration(&self) -> Option<Duration> {
        self.connected_after
    }

    /// Time from accept until the session ended (set before
    /// [`logging`](super::ProxyTcp::logging)).
    pub fn duration(&self) -> Option<Duration> {
        self.ended_after
    }

    /// Whether the server is shutting down.
    pub fn is_draining(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Close this session after `timeout` without a byte either way,
    /// instead of the service's idle timeout; `None`: never.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle_timeout = timeout;
    }

    /// Close this session `timeout` after it was accepted, instead of
    /// the service's total timeout; `None`: never.
    pub fn set_total_timeout(&mut self, timeout: Option<Duration>) {
        self.total_timeout = timeout;
    }

    /// Bytes read from the client so far and not yet forwarded (by
    /// [`read_client_hello`](Self::read_client_hello)); they go upstream
    /// first, unchanged.
    pub fn preread(&self) -> &[u8] {
        &self.preread
    }

    /// Read the client's TLS ClientHello without answering it: the server
    /// name and ALPN protocols it offers, to pick the upstream in
    /// [`upstream_peer`](super::ProxyTcp::upstream_peer). The bytes read
    /// are kept and forwarded to the upstream unchanged, which then does
    /// the handshake (TLS passthrough). A second call returns the same
    /// hello.
    ///
    /// Bounded in size ([`MAX_CLIENT_HELLO_LEN`]) and time (the service's
    /// [`client_hello_timeout`](super::TcpProxyOptions::client_hello_timeout)).
    ///
    /// # Errors
    ///
    /// From the client side: [`ErrorType::ReadTimedout`] when the hello
    /// does not arrive in time, [`ErrorType::ConnectionClosed`] when the
    /// client closes first, [`ErrorType::ReadError`],
    /// [`ErrorType::TLSHandshakeFailure`] when the bytes are not a
    /// ClientHello (the cause says why), [`ErrorType::InternalError`]
    /// once the relay has started.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_core::upstreams::BasicPeer;
    /// # use pingora_error::Result;
    /// # use pingora_proxy::l4::{ProxyTcp, TcpSession};
    /// struct ByName;
    ///
    /// impl ProxyTcp for ByName {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    ///
    ///     async fn upstream_peer(&self, session: &mut TcpSession, _: &mut ()) -> Result<Box<BasicPeer>> {
    ///         let hello = session.read_client_hello().await?;
    ///         let port = match hello.server_name.as_deref() {
    ///             Some(name) if name.eq_ignore_ascii_case("a.example") => 8443,
    ///             _ => 9443,
    ///         };
    ///         Ok(Box::new(BasicPeer::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)))))
    ///     }
    /// }
    /// ```
    pub async fn read_client_hello(&mut self) -> Result<&ClientHello> {
        if self.client_hello.is_none() {
            let deadline = tokio::time::Instant::now() + self.client_hello_timeout;
            let hello = tokio::time::timeout_at(deadline, self.read_hello()).await;
            let hello = hello.map_err(|_| {
                Error::explain(ErrorType::ReadTimedout, "waiting for the client hello").into_down()
            })??;
            self.client_hello = Some(hello);
        }
        match &self.client_hello {
            Some(hello) => Ok(hello),
            None => Error::e_explain(ErrorType::InternalError, "no client hello"),
        }
    }

    /// The hello, once read.
    pub fn client_hello(&self) -> Option<&ClientHello> {
        self.client_hello.as_ref()
    }

    async fn read_hello(&mut self) -> Result<ClientHello> {
        let Some(stream) = self.downstream.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "the relay took the client stream");
        };
        // Record headers on top of the message: a split hello may take
        // one 5-byte header per byte in theory; four records' worth is
        // what real clients need.
        let limit = MAX_CLIENT_HELLO_LEN + 4 * 5 + 5;
        loop {
            match parse_client_hello(&self.preread) {
                Ok(ParsedHello::Complete(hello)) => return Ok(hello),
                Ok(ParsedHello::Incomplete) if self.preread.len() < limit => {}
                Ok(ParsedHello::Incomplete) => {
                    return Err(Error::explain(
                        ErrorType::TLSHandshakeFailure,
                        "client hello in too many records",
                    )
                    .into_down());
                }
                Err(e) => {
                    let e = Error::because(ErrorType::TLSHandshakeFailure, "no client hello", e);
                    return Err(e.into_down());
                }
            }
            self.preread.reserve(4096);
            let n = stream.read_buf(&mut self.preread).await.map_err(|e| {
                Error::because(ErrorType::ReadError, "reading the client hello", e).into_down()
            })?;
            if n == 0 {
                return Err(Error::explain(
                    ErrorType::ConnectionClosed,
                    "client closed before its hello",
                )
                .into_down());
            }
        }
    }

    pub(super) fn mark_connected(&mut self) {
        self.connected_after = Some(self.start.elapsed());
    }

    pub(super) fn mark_ended(&mut self) {
        self.ended_after = Some(self.start.elapsed());
    }

    pub(super) fn start(&self) -> Instant {
        self.start
    }
}
