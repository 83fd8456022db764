//! The TCP proxy (`pingora_proxy::l4`) between real loopback clients and
//! origins: byte-exact relay both ways (spliced and copied), half-close,
//! timeouts, connect failures, TLS on either side, shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/l4.rs"]
mod l4;
mod support;

use l4::*;
use pingora_core::tls::Alpn;
use pingora_error::ErrorType;
use pingora_proxy::l4::{IDLE_TIMEOUT, SHUT_DOWN, TOTAL_TIMEOUT, TcpProxyOptions};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::{WAIT, dead_addr, serve_fn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes that are not all the same, from a simple generator.
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Send `payload` through `proxy` to the echo origin while reading the
/// echo, half-close, and return what came back.
async fn echo_through(proxy: std::net::SocketAddr, payload: &[u8]) -> Vec<u8> {
    let client = TcpStream::connect(proxy).await.unwrap();
    let (mut r, mut w) = client.into_split();
    let write = async {
        w.write_all(payload).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let read = r.read_to_end(&mut back);
    let ((), n) = tokio::time::timeout(WAIT, async { tokio::join!(write, read) })
        .await
        .expect("echo timed out");
    n.unwrap();
    back
}

#[tokio::test]
async fn passthrough_is_byte_exact_both_ways_and_spliced() {
    let origin = echo_origin().await;
    let (sv, mut log) = fixed(origin.addr);
    let proxy = start_tcp_proxy(sv, TcpProxyOptions::default(), 0).await;
    let payload = random_bytes(6 << 20, 0x9e37_79b9);
    let back = echo_through(proxy.addr, &payload).await;
    assert!(back == payload, "echo differs ({} bytes back)", back.len());
    let logged = next_log(&mut log).await;
    assert_eq!(logged.error, None);
    assert!(logged.spliced, "{logged:?}");
    assert!(logged.connected && logged.duration.is_some());
    assert_eq!(logged.from_downstream, payload.len() as u64);
    assert_eq!(logged.from_upstream, payload.len() as u64);
    // Counted in the metrics too (shared by the tests of this binary).
    let text = metrics_text();
    for name in [
        "pingora_tcp_sessions_total{result=\"ok\"}",
        "pingora_tcp_bytes_total{direction=\"from_upstream\"}",
        "pingora_tcp_spliced_sessions_total",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default();
        let value: f64 = line
            .rsplit(' ')
            .next()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0.0);
        assert!(value >= 1.0, "{name}: {line:?}");
    }
}

/// The default registry, in the text format.
fn metrics_text() -> String {
    let mut out = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    prometheus::Encoder::encode(&encoder, &prometheus::gather(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn copy_loop_when_splice_is_off_is_byte_exact() {
    let origin = echo_origin().await;
    let (sv, mut log) = fixed(origin.addr);
    let mut options = TcpProxyOptions::default();
    options.splice = false;
    options.buffer_size = 4096;
    let proxy = start_tcp_proxy(sv, options, 0).await;
    let payload = random_bytes(2 << 20, 7);
    assert!(echo_through(proxy.addr, &payload).await == payload);
    let logged = next_log(&mut log).await;
    assert!(!logged.spliced && logged.error.is_none(), "{logged:?}");
}

/// A client that half-closes still reads the answer the origin sends
/// after seeing the end of stream: copied (a small request), spliced (a
/// request that fills the copy buffer) and through the byte filters.
#[tokio::test]
async fn half_close_passes_on_and_the_answer_still_arrives() {
    let origin = serve_fn(|mut stream, _| async move {
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        // Only after the client's end of stream.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tail = &request[request.len().saturating_sub(16)..];
        let answer = format!(
            "got {} bytes: {}",
            request.len(),
            String::from_utf8_lossy(tail)
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    })
    .await;
    let mut large = b"question".repeat(8 * 1024);
    large.extend_from_slice(b" and the end");
    let cases: [(bool, &[u8], &[u8], bool); 3] = [
        (false, b"question", b"got 8 bytes: question", false),
        (false, &large, b"got 65548 bytes: tion and the end", true),
        (true, b"question", b"got 13 bytes: QUESTION<EOF>", false),
    ];
    for (uppercase, request, expected, spliced) in cases {
        let (mut sv, mut log) = fixed(origin.addr);
        sv.uppercase = uppercase;
        let proxy = start_tcp_proxy(sv, TcpProxyOptions::default(), 0).await;
        let back = echo_through(proxy.addr, request).await;
        let logged = next_log(&mut log).await;
        assert_eq!(back, expected, "{}", String::from_utf8_lossy(&back));
        assert_eq!(logged.spliced, spliced, "{logged:?}");
        assert_eq!(logged.error, None, "{logged:?}");
    }
}

#[tokio::test]
async fn idle_timeout_closes_a_silent_session() {
    let origin = echo_origin().await;
    let (sv, mut log) = fixed(origin.addr);
    let mut options = TcpProxyOptions::default();
    options.idle_timeout = Some(Duration::from_millis(300));
    let proxy = start_tcp_proxy(sv, options, 0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    // Activity keeps it open past the timeout.
    for _ in 0..4 {
        client.write_all(b"x").await.unwrap();
        assert_eq!(read_n(&mut client, 1).await, b"x");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let start = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await;
    assert!(read.expect("not closed").is_ok() && rest.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let logged = next_log(&mut log).await;
    assert_eq!(logged.error, Some(IDLE_TIMEOUT));
    assert_eq!(logged.from_downstream, 4);
}

#[tokio::test]
async fn total_timeout_closes_a_busy_session() {
    let origin = echo_origin().await;
    let (sv, mut log) = fixed(origin.addr);
    let mut options = TcpProxyOptions::default();
    options.total_timeout = Some(Duration::from_millis(500));
    let proxy = start_tcp_proxy(sv, options, 0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let start = Instant::now();
    let closed = async {
        loop {
            if client.write_all(b"y").await.is_err() {
                return;
            }
            let mut b = [0u8; 1];
            match client.read(&mut b).await {
                Ok(1) => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => return,
            }
        }
    };
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("never closed");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(next_log(&mut log).await.error, Some(TOTAL_TIMEOUT));
}

#[tokio::test]
async fn a_failed_connect_is_retried_then_logged() {
    let (sv, mut log) = fixed(dead_addr().await);
    let asked = sv.asked.clone();
    let proxy = start_tcp_proxy(sv, TcpProxyOptions::default(), 2).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await;
    assert!(read.expect("not closed").is_ok() && rest.is_empty());
    let logged = next_log(&mut log).await;
    assert_eq!(logged.error, Some(ErrorType::ConnectRefused));
    assert!(!logged.connected);
    // The first attempt and two retries.
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

/// A TLS-terminating listener: the client speaks TLS to the proxy, the
/// origin gets plain bytes.
#[tokio::test]
async fn tls_terminating_listener() {
    let origin = echo_origin().await;
    let (sv, mut log) = fixed(origin.addr);
    let (ca, leaf) = ca_and_leaf("proxy.test");
    let acceptor = acceptor(leaf);
    let conf = pingora_core::server::ServerConf::default();
    let app = std::sync::Arc::new(pingora_proxy::l4::TcpProxy::new(sv, &conf).unwrap());
    let proxy = serve_fn(move |stream, shutdown| {
        let (app, acceptor) = (app.clone(), acceptor.clone());
        async move {
            use pingora_core::apps::ServerApp;
            if let Ok(tls) = acceptor.accept(stream).await {
                app.process_new(tls, &shutdown).await;
            }
        }
    })
    .await;
    let mut client = tls_client(proxy.addr, "proxy.test", &ca, Alpn::H1)
        .await
        .unwrap();
    client.write_all(b"over tls").await.unwrap();
    assert_eq!(read_n(&mut client, 8).await, b"over tls");
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let logged = next_log(&mut log).await;
    assert!(logged.error.is_none() && !logged.spliced, "{logged:?}");
    assert_eq!(logged.from_downstream, 8);
}

/// A TLS-originating peer: plain client, TLS to the origin, whose
/// certificate is checked.
#[tokio::test]
async fn tls_originating_peer() {
    let (ca, leaf) = ca_and_leaf("origin.test");
    let origin = tls_origin(leaf, b"hi:").await;
    let (mut sv, mut log) = fixed(origin.addr);
    sv.tls = Some(("origin.test".into(), trusting(&ca)));
    let proxy = start_tcp_proxy(sv, TcpProxyOptions::default(), 0).await;
    let back = echo_through(proxy.addr, b"plain in, tls out").await;
    assert_eq!(back, b"hi:plain in, tls out");
    let logged = next_log(&mut log).await;
    assert!(logged.error.is_none() && !logged.spliced, "{logged:?}");

    // The wrong name fails the certificate check: logged, not retried.
    let (mut sv, mut log) = fixed(origin.addr);
    sv.tls = Some(("other.test".into(), trusting(&ca)));
    let proxy = start_tcp_proxy(sv, TcpProxyOptions::default(), 0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await;
    assert!(read.expect("not closed").is_ok() && rest.is_empty());
    let logged = next_log(&mut log).await;
    assert!(logged.error.is_some() && !logged.connected, "{logged:?}");
}

/// At shutdown a session in flight gets the drain timeout, then closes.
#[tokio::test]
async fn shutdown_closes_sessions_after_the_drain_timeout() {
    let origin = echo_origin().await;
    let (sv, mut log) = fixed(origin.addr);
    let mut options = TcpProxyOptions::default();
    options.drain_timeout = Duration::from_millis(300);
    let proxy = start_tcp_proxy(sv, options, 0).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(b"a").await.unwrap();
    assert_eq!(read_n(&mut client, 1).await, b"a");
    proxy.shutdown();
    // Still relaying during the drain timeout.
    client.write_all(b"b").await.unwrap();
    assert_eq!(read_n(&mut client, 1).await, b"b");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await;
    assert!(read.expect("not closed").is_ok() && rest.is_empty());
    assert_eq!(next_log(&mut log).await.error, Some(SHUT_DOWN));
}

/// A proxy whose peers ask for a PROXY header naming the client.
struct AnnouncesTheClient {
    to: std::net::SocketAddr,
    version: pingora_core::upstreams::ProxyVersion,
}

impl pingora_proxy::l4::ProxyTcp for AnnouncesTheClient {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        session: &mut pingora_proxy::l4::TcpSession,
        _: &mut (),
    ) -> pingora_error::Result<Box<pingora_core::upstreams::BasicPeer>> {
        use pingora_core::upstreams::{BasicPeer, SendProxyHeader};
        let mut peer = BasicPeer::new(self.to);
        peer.options.proxy_header = session
            .digest()
            .and_then(|digest| SendProxyHeader::from_digest(self.version, digest));
        Ok(Box::new(peer))
    }
}

/// The PROXY header a peer asks for goes out before the client's first
/// byte, on the spliced path as on any other, in both versions.
#[tokio::test]
async fn a_peer_that_asks_gets_a_proxy_header_first() {
    use pingora_core::protocols::proxy_protocol::{Parsed, parse};
    use pingora_core::upstreams::ProxyVersion;
    for version in [ProxyVersion::V1, ProxyVersion::V2] {
        let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = origin.local_addr().unwrap();
        let received = tokio::spawn(async move {
            let (mut stream, _) = origin.accept().await.unwrap();
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.unwrap();
            all
        });
        let sv = AnnouncesTheClient { to, version };
        let proxy = start_tcp_proxy(sv, TcpProxyOptions::default(), 0).await;
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        let client_addr = client.local_addr().unwrap();
        client.write_all(b"first bytes").await.unwrap();
        client.shutdown().await.unwrap();
        let all = tokio::time::timeout(WAIT, received).await.unwrap().unwrap();
        let Ok(Parsed::Header { header, len }) = parse(&all) else {
            panic!("no PROXY header in {all:?}");
        };
        assert_eq!(header.source(), Some(client_addr), "{version:?}");
        assert_eq!(&all[len..], b"first bytes", "{version:?}");
    }
}
