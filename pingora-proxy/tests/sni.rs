//! TLS passthrough routed by the ClientHello: a real rustls client (our
//! connector) reaches one of two TLS backends with different
//! certificates through the TCP proxy, which never terminates TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/l4.rs"]
mod l4;
mod support;

use l4::*;
use pingora_core::tls::Alpn;
use pingora_core::upstreams::BasicPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::l4::{ProxyTcp, TcpProxyOptions, TcpSession};
use std::net::SocketAddr;
use std::time::Duration;
use support::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Routes `a.test` to `a`, `b.test` (or any name offering `h2`) to `b`,
/// and closes anything else; reports what it saw.
struct Router {
    a: SocketAddr,
    b: SocketAddr,
    seen: mpsc::UnboundedSender<(Option<String>, Option<ErrorType>)>,
}

impl ProxyTcp for Router {
    type CTX = Option<String>;
    fn new_ctx(&self) -> Option<String> {
        None
    }

    async fn upstream_peer(
        &self,
        session: &mut TcpSession,
        name: &mut Option<String>,
    ) -> Result<Box<BasicPeer>> {
        let hello = session.read_client_hello().await?;
        *name = hello.server_name.clone();
        let to = match hello.server_name.as_deref() {
            Some(n) if n.eq_ignore_ascii_case("a.test") => self.a,
            Some(n) if n.eq_ignore_ascii_case("b.test") => self.b,
            _ if hello.offers_alpn(b"h2") => self.b,
            _ => return Error::e_explain(ErrorType::Custom("UnknownName"), "no backend"),
        };
        Ok(Box::new(BasicPeer::new(to)))
    }

    async fn logging(&self, _: &mut TcpSession, e: Option<&Error>, name: &mut Option<String>) {
        let _ = self.seen.send((name.take(), e.map(|e| *e.etype())));
    }
}

struct Setup {
    ca_a: String,
    ca_b: String,
    proxy: support::Running,
    seen: mpsc::UnboundedReceiver<(Option<String>, Option<ErrorType>)>,
    _backends: (support::Running, support::Running),
}

async fn setup(options: TcpProxyOptions) -> Setup {
    let (ca_a, leaf_a) = ca_and_leaf("a.test");
    let (ca_b, leaf_b) = ca_and_leaf("b.test");
    let a = tls_origin(leaf_a, b"backend a\n").await;
    let b = tls_origin(leaf_b, b"backend b\n").await;
    let (tx, seen) = mpsc::unbounded_channel();
    let router = Router {
        a: a.addr,
        b: b.addr,
        seen: tx,
    };
    let proxy = start_tcp_proxy(router, options, 0).await;
    Setup {
        ca_a,
        ca_b,
        proxy,
        seen,
        _backends: (a, b),
    }
}

async fn seen(s: &mut Setup) -> (Option<String>, Option<ErrorType>) {
    tokio::time::timeout(WAIT, s.seen.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn routes_by_server_name_without_terminating_tls() {
    let mut s = setup(TcpProxyOptions::default()).await;
    for (name, ca, greeting) in [
        ("a.test", s.ca_a.clone(), b"backend a\n"),
        ("b.test", s.ca_b.clone(), b"backend b\n"),
        ("A.Test", s.ca_a.clone(), b"backend a\n"),
    ] {
        // The backend's certificate (from its own CA) verifies end to
        // end: the proxy passed the handshake through.
        let mut tls = tls_client(s.proxy.addr, name, &ca, Alpn::H1).await.unwrap();
        assert_eq!(read_n(&mut tls, greeting.len()).await, greeting);
        tls.write_all(b"echo me").await.unwrap();
        assert_eq!(read_n(&mut tls, 7).await, b"echo me");
        tls.shutdown().await.unwrap();
        drop(tls);
        let (logged_name, error) = seen(&mut s).await;
        assert_eq!(logged_name.as_deref(), Some(name));
        // The backend may see the client's close as a reset of the TLS
        // session; the routing is what matters here.
        let _ = error;
    }
}

#[tokio::test]
async fn alpn_routes_an_unknown_name_and_other_names_are_closed() {
    let mut s = setup(TcpProxyOptions::default()).await;
    // Unknown name, offering h2: backend b, whose certificate is for
    // b.test, so the client's check of "c.test" fails there: the bytes
    // reached b.
    let err = tls_client(s.proxy.addr, "c.test", &s.ca_b, Alpn::H2H1).await;
    assert!(err.is_err());
    let (name, _) = seen(&mut s).await;
    assert_eq!(name.as_deref(), Some("c.test"));
    // Unknown name, no h2: closed before any backend.
    let err = tls_client(s.proxy.addr, "c.test", &s.ca_a, Alpn::H1).await;
    assert!(err.is_err());
    let (name, error) = seen(&mut s).await;
    assert_eq!(name.as_deref(), Some("c.test"));
    assert_eq!(error, Some(ErrorType::Custom("UnknownName")));
}

#[tokio::test]
async fn not_tls_or_too_slow_is_closed() {
    let mut options = TcpProxyOptions::default();
    options.client_hello_timeout = Duration::from_millis(300);
    let mut s = setup(options).await;
    let mut plain = TcpStream::connect(s.proxy.addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, plain.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    assert_eq!(seen(&mut s).await.1, Some(ErrorType::TLSHandshakeFailure));

    // Half a record header, then silence.
    let mut slow = TcpStream::connect(s.proxy.addr).await.unwrap();
    slow.write_all(&[22, 3]).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, slow.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen(&mut s).await.1, Some(ErrorType::ReadTimedout));
}

/// Reads the hello, then filters: the filter sees every byte the client
/// sent, the hello included.
struct Counting {
    to: SocketAddr,
    filtered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    logged: mpsc::UnboundedSender<u64>,
}

impl ProxyTcp for Counting {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, session: &mut TcpSession, _: &mut ()) -> Result<Box<BasicPeer>> {
        session.read_client_hello().await?;
        Ok(Box::new(BasicPeer::new(self.to)))
    }

    fn wants_byte_filters(&self, _: &TcpSession, _: &()) -> bool {
        true
    }

    fn downstream_bytes_filter(
        &self,
        _: &mut TcpSession,
        data: &mut bytes::BytesMut,
        _: bool,
        _: &mut (),
    ) -> Result<()> {
        let n = data.len() as u64;
        self.filtered
            .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn logging(&self, session: &mut TcpSession, _: Option<&Error>, _: &mut ()) {
        let _ = self.logged.send(session.bytes_from_downstream());
    }
}

#[tokio::test]
async fn byte_filters_see_the_client_hello_too() {
    let (ca, leaf) = ca_and_leaf("a.test");
    let backend = tls_origin(leaf, b"hi\n").await;
    let (logged, mut rx) = mpsc::unbounded_channel();
    let filtered = std::sync::Arc::default();
    let sv = Counting {
        to: backend.addr,
        filtered: std::sync::Arc::clone(&filtered),
        logged,
    };
    let proxy = start_tcp_proxy(sv, TcpProxyOptions::default(), 0).await;
    let mut tls = tls_client(proxy.addr, "a.test", &ca, Alpn::H1)
        .await
        .unwrap();
    assert_eq!(read_n(&mut tls, 3).await, b"hi\n");
    tls.shutdown().await.unwrap();
    drop(tls);
    let from_client = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(from_client > 100, "{from_client}");
    let seen = filtered.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(seen, from_client);
}
