//! Forward-proxy CONNECT: refused by default; with a `ConnectPolicy`, a
//! tunnel to allowed targets only (403 otherwise, 400 when malformed),
//! closed when idle, bounded in memory, over HTTP/1 and HTTP/2; curl
//! reaches a local TLS server through it with `-p -x`.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::HttpServer;
use pingora_core::header::ResponseHeader;
use pingora_core::server::ServerConf;
use pingora_core::tls::{CertKey, CertStore, TlsSettings};
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{ConnectPolicy, HttpProxy, ProxyHttp, Session};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::h2_tools::{Reflect, h2_client};
use support::tools::{run_tool, tool_available};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What `logging` saw: the status, the bytes read from the client and
/// the bytes sent to it.
type Logged = (Option<u16>, u64, u64);

/// Never proxies plain requests; records what `logging` saw of each
/// request: status and the bytes both ways.
#[derive(Clone, Default)]
struct Forward {
    peers: Arc<AtomicUsize>,
    logged: Arc<Mutex<Vec<Logged>>>,
    /// Answer 407 to requests without `Proxy-Authorization: Basic ok`.
    require_auth: bool,
}

impl ProxyHttp for Forward {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        if self.require_auth && session.get_header_bytes("proxy-authorization") != b"Basic ok" {
            let mut resp = ResponseHeader::build(407, None)?;
            resp.insert_header("Proxy-Authenticate", "Basic realm=\"test\"")?;
            resp.insert_header("Content-Length", "0")?;
            session.set_keepalive(None);
            session.write_response_header(Box::new(resp), true).await?;
            return Ok(true);
        }
        Ok(false)
    }
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        self.peers.fetch_add(1, Ordering::SeqCst);
        Err(Error::new_str("no upstream for plain requests"))
    }
    async fn logging(&self, session: &mut Session, _: Option<&Error>, _: &mut ()) {
        let entry = (
            session.response_status(),
            session.body_bytes_read(),
            session.body_bytes_sent(),
        );
        self.logged.lock().unwrap().push(entry);
    }
}

/// A forward proxy with `policy` (none: CONNECT refused), serving h2c
/// too.
async fn forward_proxy(sv: &Forward, policy: Option<ConnectPolicy>) -> Running {
    let mut proxy = HttpProxy::new(sv.clone(), &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    if let Some(policy) = policy {
        proxy = proxy.with_connect(policy);
    }
    serve_app(proxy).await
}

/// A TCP echo server counting its connections.
async fn echo() -> Running {
    serve_fn(|stream, _| async move {
        let (mut r, mut w) = tokio::io::split(stream);
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

fn allow(pattern: &str) -> ConnectPolicy {
    ConnectPolicy::new().allow(pattern).unwrap()
}

/// Send `request` and read until the proxy closes.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let run = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(WAIT, run).await.expect("timed out")
}

fn connect_to(target: &str) -> String {
    format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")
}

/// Open a tunnel to `target` through `proxy`: the proxy's answer head,
/// and the connection, now the tunnel.
async fn open_tunnel(proxy: SocketAddr, target: &str) -> (String, TcpStream) {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(connect_to(target).as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), tcp)
}

#[tokio::test]
async fn connect_is_refused_by_default_and_connects_nothing() {
    let target = echo().await;
    let sv = Forward::default();
    let proxy = forward_proxy(&sv, None).await;
    let resp = raw(proxy.addr, &connect_to(&target.addr.to_string())).await;
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    assert!(resp.contains("\r\nAllow: "), "{resp}");
    assert_eq!(target.accepted(), 0);
    assert_eq!(sv.peers.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_allowed_target_is_tunnelled_and_logged_with_its_bytes() {
    let target = echo().await;
    let sv = Forward::default();
    let policy = allow(&format!("127.0.0.1:{}", target.addr.port()));
    let proxy = forward_proxy(&sv, Some(policy)).await;
    let (head, mut tunnel) = open_tunnel(proxy.addr, &target.addr.to_string()).await;
    assert!(
        head.starts_with("HTTP/1.1 200 Connection Established\r\n"),
        "{head}"
    );
    // RFC 9110 §9.3.6: no framing fields in a 2xx to CONNECT.
    let lower = head.to_ascii_lowercase();
    assert!(!lower.contains("content-length") && !lower.contains("transfer-encoding"));
    tunnel.write_all(b"hello tunnel").await.unwrap();
    let mut back = [0; 12];
    tokio::time::timeout(WAIT, tunnel.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"hello tunnel");
    // Half-close: the echo sees the end, closes, and so does the tunnel.
    tunnel.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tunnel.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    assert_eq!(target.accepted(), 1);
    assert_eq!(sv.peers.load(Ordering::SeqCst), 0);
    let logged = wait_logged(&sv).await;
    assert_eq!(logged, (Some(200), 12, 12));
}

/// The first `logging` entry, waiting for the request to end.
async fn wait_logged(sv: &Forward) -> Logged {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(entry) = sv.logged.lock().unwrap().first() {
            return *entry;
        }
        assert!(Instant::now() < deadline, "logging was not called");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn targets_outside_the_allow_list_are_403_and_connect_nothing() {
    let target = echo().await;
    let port = target.addr.port();
    let sv = Forward::default();
    // Another port, another host, and a wildcard that reaches only
    // public addresses (localhost resolves to loopback).
    let policy = allow(&format!("127.0.0.1:{}", port + 1))
        .allow(&format!("localhost.test:{port}"))
        .unwrap()
        .allow("*:*")
        .unwrap();
    let proxy = forward_proxy(&sv, Some(policy)).await;
    for t in [format!("127.0.0.2:{port}"), format!("localhost:{port}")] {
        let resp = raw(proxy.addr, &connect_to(&t)).await;
        assert!(resp.starts_with("HTTP/1.1 403"), "{t}: {resp}");
    }
    let no_wildcard = Forward::default();
    let proxy = forward_proxy(&no_wildcard, Some(allow("example.com:443"))).await;
    let resp = raw(proxy.addr, &connect_to(&target.addr.to_string())).await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert_eq!(target.accepted(), 0);
}

#[tokio::test]
async fn a_malformed_target_is_400() {
    let sv = Forward::default();
    let proxy = forward_proxy(&sv, Some(allow("*:*"))).await;
    for t in ["localhost", "localhost:0", "127.1:80", "a..b:80"] {
        let resp = raw(proxy.addr, &connect_to(t)).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{t}: {resp}");
    }
    // A body would sit in front of the tunnel's bytes.
    let with_body = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\
        Content-Length: 3\r\n\r\nabc";
    let resp = raw(proxy.addr, with_body).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
}

#[tokio::test]
async fn an_unreachable_target_is_502() {
    let dead = dead_addr().await;
    let sv = Forward::default();
    let proxy = forward_proxy(&sv, Some(allow(&dead.to_string()))).await;
    let resp = raw(proxy.addr, &connect_to(&dead.to_string())).await;
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
}

#[tokio::test]
async fn a_silent_tunnel_is_closed_after_the_idle_timeout() {
    // A target that accepts and says nothing; it reports when the proxy
    // closes its side.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0; 16];
        let _ = tcp.read(&mut buf).await;
        let _ = closed_tx.send(());
    });
    let sv = Forward::default();
    let idle = Duration::from_millis(300);
    let policy = allow(&addr.to_string()).idle_timeout(idle);
    let proxy = forward_proxy(&sv, Some(policy)).await;
    let start = Instant::now();
    let (head, mut tunnel) = open_tunnel(proxy.addr, &addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tunnel.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(start.elapsed() >= idle);
    tokio::time::timeout(WAIT, closed_rx)
        .await
        .unwrap()
        .unwrap();
}

/// The resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_both_ways_in_bounded_memory() {
    const TOTAL: usize = 64 << 20;
    let target = echo().await;
    let sv = Forward::default();
    let proxy = forward_proxy(&sv, Some(allow(&target.addr.to_string()))).await;
    let (head, tunnel) = open_tunnel(proxy.addr, &target.addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let before = rss_kib();
    let (mut r, mut w) = tunnel.into_split();
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..TOTAL / chunk.len() {
            w.write_all(&chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut peak = before;
    let mut got = 0usize;
    let mut buf = vec![0; 64 * 1024];
    let run = async {
        // A slow reader first: the writer fills whatever buffers there
        // are meanwhile, and the proxy must hold back instead of reading
        // on (the kernel's socket buffers do not count in resident
        // memory; a queue in the proxy would).
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_kib());
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, ((got + i) % (64 * 1024) % 251) as u8);
            }
            got += n;
            if got % (4 << 20) < n {
                peak = peak.max(rss_kib());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(got, TOTAL);
    // Far less than what was carried: nothing piles up in the proxy.
    let grown = peak.saturating_sub(before);
    eprintln!("rss before {before} KiB, peak {peak} KiB");
    assert!(grown < 24 * 1024, "resident memory grew by {grown} KiB");
    let logged = wait_logged(&sv).await;
    assert_eq!(logged, (Some(200), TOTAL as u64, TOTAL as u64));
}

#[tokio::test]
async fn an_h2_client_tunnels_over_its_stream() {
    let target = echo().await;
    let sv = Forward::default();
    let proxy = forward_proxy(&sv, Some(allow(&target.addr.to_string()))).await;
    let mut send = h2_client(proxy.addr).await;
    let req = http::Request::builder()
        .method("CONNECT")
        .uri(target.addr.to_string())
        .body(())
        .unwrap();
    send = send.ready().await.unwrap();
    let (resp, mut out) = send.send_request(req, false).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    // 2 MiB, past every default flow-control window both ways.
    let sent: Vec<u8> = (0..2 << 20).map(|i: u32| (i % 253) as u8).collect();
    for piece in sent.chunks(16 * 1024) {
        out.send_data(Bytes::copy_from_slice(piece), false).unwrap();
    }
    out.send_data(Bytes::new(), true).unwrap();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(data) = tokio::time::timeout(WAIT, body.data()).await.unwrap() {
        let data = data.unwrap();
        let _ = body.flow_control().release_capacity(data.len());
        got.extend_from_slice(&data);
    }
    assert!(got == sent, "{} bytes back of {}", got.len(), sent.len());
    // Outside the allow-list: 403 on the stream, the connection lives on.
    let req = http::Request::builder()
        .method("CONNECT")
        .uri("example.com:443")
        .body(())
        .unwrap();
    let (resp, _out) = send.send_request(req, false).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(target.accepted(), 1);
}

/// A TLS origin (the framework's HTTP server with a self-signed
/// certificate for `localhost`), reached by curl through the proxy with
/// `-p -x`: curl sends CONNECT, then speaks TLS through the tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_tunnels_to_a_local_tls_server() {
    if !tool_available("curl") {
        eprintln!("SKIPPED: curl not installed");
        return;
    }
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let cert = CertKey::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let acceptor = TlsSettings::new(CertStore::new().with_default(cert))
        .build()
        .unwrap();
    let app = Arc::new(HttpServer::new(Reflect));
    let origin = serve_fn(move |stream, shutdown| {
        let (app, acceptor) = (app.clone(), acceptor.clone());
        async move {
            if let Ok(stream) = acceptor.accept(stream).await {
                app.process_new(stream, &shutdown).await;
            }
        }
    })
    .await;
    let port = origin.addr.port();
    let sv = Forward::default();
    let proxy = forward_proxy(&sv, Some(allow(&format!("localhost:{port}")))).await;
    let args: Vec<String> = vec![
        "-sS".into(),
        "-p".into(),
        "-x".into(),
        format!("http://127.0.0.1:{}", proxy.addr.port()),
        "-k".into(),
        "-d".into(),
        "through the tunnel".into(),
        "-D".into(),
        "-".into(),
        format!("https://localhost:{port}/secret"),
    ];
    let out = run_tool("curl", args, 30).await;
    let out = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(out.contains("200 connection established"), "{out}");
    assert!(out.contains("x-seen-uri: /secret"), "{out}");
    assert!(out.ends_with("through the tunnel"), "{out}");
    assert_eq!(origin.accepted(), 1);
    // A target outside the allow-list: curl fails on the 403.
    let args: Vec<String> = vec![
        "-sS".into(),
        "-p".into(),
        "-x".into(),
        format!("http://127.0.0.1:{}", proxy.addr.port()),
        "-k".into(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_connect}".into(),
        format!("https://127.0.0.1:{port}/"),
    ];
    let refused = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .arg("30")
            .arg("curl")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "403");
    assert_eq!(origin.accepted(), 1);
}

/// A reverse proxy whose upstream sits behind a CONNECT proxy: its peer
/// is `HttpPeer::new_proxy` with `Proxy-Authorization: auth`.
struct ViaConnectProxy {
    forward: SocketAddr,
    origin: SocketAddr,
    auth: &'static str,
}

impl ProxyHttp for ViaConnectProxy {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut headers = BTreeMap::new();
        headers.insert(
            "Proxy-Authorization".to_owned(),
            self.auth.as_bytes().to_vec(),
        );
        let (ip, port) = (self.origin.ip(), self.origin.port());
        let hop = self.forward.to_string();
        Ok(Box::new(HttpPeer::new_proxy(
            &hop, ip, port, false, "", headers,
        )))
    }
}

/// Both halves of the section at once: a reverse proxy reaches its origin
/// through a CONNECT proxy (this framework's forward proxy, asking for
/// credentials in `request_filter`), sending the peer's
/// `Proxy-Authorization`.
#[tokio::test]
async fn an_upstream_is_reached_through_an_authenticating_connect_proxy() {
    let origin = start_origin(Reflect).await;
    let sv = Forward {
        require_auth: true,
        ..Forward::default()
    };
    let forward = forward_proxy(&sv, Some(allow(&origin.addr.to_string()))).await;
    for (auth, status) in [("Basic ok", 200), ("Basic wrong", 502)] {
        let via = ViaConnectProxy {
            forward: forward.addr,
            origin: origin.addr,
            auth,
        };
        let reverse = start_proxy(via, 0).await;
        let answer = get(reverse.addr, "/through").await;
        assert_eq!(answer.status, status, "{auth}");
        if status == 200 {
            assert_eq!(answer.headers["x-seen-uri"], "/through");
        }
    }
    // The refused one never reached the origin.
    assert_eq!(origin.accepted(), 1);
    // (The tunnel of the first stays open, pooled by the reverse proxy.)
    assert_eq!(wait_logged(&sv).await, (Some(407), 0, 0));
}
