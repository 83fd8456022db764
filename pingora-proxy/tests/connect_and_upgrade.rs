//! CONNECT is refused (405) and never forwarded; an upgrade becomes a
//! tunnel only for an allowed protocol answered by a matching 101. `h2c`
//! upgrades never go upstream, and a 101 that answers no allowed offer is
//! a 502 with no tunnel byte.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::h2_tools::{h2_client, h2_exchange};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Proxies to one address and counts the calls of two phases; answers
/// CONNECT itself with 403 when `answer_connect`.
#[derive(Clone)]
struct To {
    addr: SocketAddr,
    request_filters: Arc<AtomicUsize>,
    peers: Arc<AtomicUsize>,
    answer_connect: bool,
}

fn to(addr: SocketAddr) -> To {
    To {
        addr,
        request_filters: Arc::default(),
        peers: Arc::default(),
        answer_connect: false,
    }
}

impl ProxyHttp for To {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        self.request_filters.fetch_add(1, Ordering::SeqCst);
        if self.answer_connect && session.req_header().method() == http::Method::CONNECT {
            session.respond_error(403).await?;
            return Ok(true);
        }
        Ok(false)
    }
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        self.peers.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(HttpPeer::new(self.addr, false, "")))
    }
}

/// Send raw `request` to `addr`, read until the server closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let run = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(WAIT, run).await.expect("timed out")
}

/// An origin that records the request head it gets, answers `answer`,
/// then sends `TUNNEL-BYTES` (as a switched protocol would) and echoes
/// until the proxy closes.
async fn raw_origin(answer: &'static str) -> (Running, Arc<Mutex<Vec<String>>>) {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let origin = serve_fn(move |mut stream, _| {
        let seen = seen.clone();
        async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            seen.lock().unwrap().push(head);
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.write_all(b"TUNNEL-BYTES").await;
            let mut buf = [0u8; 1024];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (origin, heads)
}

const SWITCH_H2C: &str = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
    Upgrade: h2c\r\n\r\n";
const SWITCH_WS: &str = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\n\r\n";
const SWITCH_FOO: &str = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
    Upgrade: foo\r\n\r\n";
const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[tokio::test]
async fn connect_is_refused_and_never_reaches_an_origin() {
    let (origin, _) = raw_origin(OK).await;
    let sv = to(origin.addr);
    let proxy = start_proxy(sv.clone(), 0).await;
    let resp = raw(
        proxy.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nbytes for a tunnel",
    )
    .await;
    let lower = resp.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 405"), "{resp}");
    assert!(lower.contains("\r\nallow: get, head, post"), "{resp}");
    assert!(!lower.contains("tunnel-bytes"), "{resp}");
    // request_filter saw it (and could have answered it); nothing else ran.
    assert_eq!(sv.request_filters.load(Ordering::SeqCst), 1);
    assert_eq!(sv.peers.load(Ordering::SeqCst), 0);
    assert_eq!(origin.accepted(), 0);
}

#[tokio::test]
async fn request_filter_may_answer_connect_itself() {
    let (origin, _) = raw_origin(OK).await;
    let mut sv = to(origin.addr);
    sv.answer_connect = true;
    let proxy = start_proxy(sv.clone(), 0).await;
    let resp = raw(
        proxy.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert_eq!(sv.peers.load(Ordering::SeqCst), 0);
    assert_eq!(origin.accepted(), 0);
}

#[tokio::test]
async fn h2_connect_is_refused_and_never_reaches_an_origin() {
    let (origin, _) = raw_origin(OK).await;
    let sv = to(origin.addr);
    let proxy = HttpProxy::new(sv.clone(), &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = serve_app(proxy).await;
    let send = h2_client(proxy.addr).await;
    let req = http::Request::builder()
        .method("CONNECT")
        .uri("example.com:443")
        .body(())
        .unwrap();
    let resp = h2_exchange(&send, req, b"", None).await;
    assert_eq!(resp.status, 405);
    assert!(resp.headers["allow"].to_str().unwrap().contains("GET"));
    // The connection serves other requests afterwards.
    let req = http::Request::builder()
        .method("CONNECT")
        .uri("example.com:443")
        .body(())
        .unwrap();
    assert_eq!(h2_exchange(&send, req, b"", None).await.status, 405);
    assert_eq!(sv.peers.load(Ordering::SeqCst), 0);
    assert_eq!(origin.accepted(), 0);
}

/// An h2c upgrade request: `Upgrade: h2c` with its settings.
const H2C_UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: test.local\r\n\
    Connection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n\
    HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";

#[tokio::test]
async fn h2c_upgrade_goes_upstream_as_a_plain_request() {
    let (origin, heads) = raw_origin(OK).await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    let resp = raw(proxy.addr, H2C_UPGRADE).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let head = heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("get / http/1.1\r\n"), "{head}");
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(!head.contains(&format!("\r\n{gone}:")), "{gone}: {head}");
    }
}

#[tokio::test]
async fn a_101_to_an_h2c_upgrade_is_502_and_opens_no_tunnel() {
    let (origin, _) = raw_origin(SWITCH_H2C).await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    let resp = raw(proxy.addr, H2C_UPGRADE).await;
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
    assert!(!resp.contains("TUNNEL-BYTES"), "{resp}");
}

/// A websocket handshake.
const WS_UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: test.local\r\n\
    Connection: Upgrade\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[tokio::test]
async fn a_101_naming_another_protocol_is_502() {
    let (origin, _) = raw_origin(SWITCH_H2C).await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    let resp = raw(proxy.addr, WS_UPGRADE).await;
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
    assert!(!resp.contains("TUNNEL-BYTES"), "{resp}");
}

#[tokio::test]
async fn a_101_naming_no_protocol_is_502() {
    let switch = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n";
    let (origin, _) = raw_origin(switch).await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    let resp = raw(proxy.addr, WS_UPGRADE).await;
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
    assert!(!resp.contains("TUNNEL-BYTES"), "{resp}");
}

#[tokio::test]
async fn an_upgrade_not_allowed_is_removed_and_a_101_to_it_is_502() {
    let foo = b"GET / HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n";
    let (origin, heads) = raw_origin(SWITCH_FOO).await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    let resp = raw(proxy.addr, foo).await;
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
    assert!(!resp.contains("TUNNEL-BYTES"), "{resp}");
    let head = heads.lock().unwrap()[0].clone();
    assert!(!head.contains("\r\nupgrade:"), "{head}");
    // Websocket upgrades are refused too when the user allows none.
    let (origin, heads) = raw_origin(SWITCH_WS).await;
    let proxy = HttpProxy::new(to(origin.addr), &ServerConf::default())
        .unwrap()
        .with_allowed_upgrades::<_, &str>([]);
    let proxy = serve_app(proxy).await;
    let resp = raw(proxy.addr, WS_UPGRADE).await;
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
    assert!(!resp.contains("TUNNEL-BYTES"), "{resp}");
    let head = heads.lock().unwrap()[0].clone();
    assert!(!head.contains("\r\nupgrade:"), "{head}");
}

#[tokio::test]
async fn an_allowed_upgrade_becomes_a_tunnel() {
    let foo = b"GET / HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\n\
        Upgrade: h2c, foo\r\n\r\n";
    let (origin, heads) = raw_origin(SWITCH_FOO).await;
    let proxy = HttpProxy::new(to(origin.addr), &ServerConf::default())
        .unwrap()
        .with_allowed_upgrades(["websocket", "FOO", "h2c"]);
    let proxy = serve_app(proxy).await;
    let run = async {
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(foo).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"TUNNEL-BYTES") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "{}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let got = String::from_utf8(got).unwrap().to_ascii_lowercase();
        assert!(got.starts_with("http/1.1 101"), "{got}");
        assert!(got.contains("\r\nupgrade: foo\r\n"), "{got}");
        tcp.write_all(b"ping").await.unwrap();
        let mut echoed = [0u8; 4];
        tcp.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping");
    };
    tokio::time::timeout(WAIT, run).await.expect("timed out");
    // Only the allowed protocol was offered upstream; h2c never is.
    let head = heads.lock().unwrap()[0].clone();
    assert!(head.contains("\r\nupgrade: foo\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
}
