//! The phases: order, short-circuits, header rewrites, keep-alive.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use parking_lot::Mutex;
use pingora_core::apps::http_app::{EchoApp, HttpRequest, HttpResponse, ServeHttp};
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::protocols::Digest;
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use support::*;

/// Records every phase it goes through, collapsing repeats (body filters
/// run once per piece).
struct Recorder {
    log: Arc<Mutex<Vec<&'static str>>>,
    peers: Vec<SocketAddr>,
}

impl Recorder {
    fn note(&self, phase: &'static str) {
        let mut log = self.log.lock();
        if log.last() != Some(&phase) {
            log.push(phase);
        }
    }
}

impl ProxyHttp for Recorder {
    type CTX = usize;
    fn new_ctx(&self) -> usize {
        0
    }
    async fn early_request_filter(&self, _: &mut Session, _: &mut usize) -> Result<()> {
        self.note("early_request_filter");
        Ok(())
    }
    async fn request_filter(&self, _: &mut Session, _: &mut usize) -> Result<bool> {
        self.note("request_filter");
        Ok(false)
    }
    async fn proxy_upstream_filter(&self, _: &mut Session, _: &mut usize) -> Result<bool> {
        self.note("proxy_upstream_filter");
        Ok(true)
    }
    async fn upstream_peer(&self, _: &mut Session, tries: &mut usize) -> Result<Box<HttpPeer>> {
        self.note("upstream_peer");
        let addr = self.peers[(*tries).min(self.peers.len() - 1)];
        *tries += 1;
        Ok(Box::new(HttpPeer::new(addr, false, "")))
    }
    async fn connected_to_upstream(
        &self,
        _: &mut Session,
        _: bool,
        _: &HttpPeer,
        _: Option<&Digest>,
        _: &mut usize,
    ) -> Result<()> {
        self.note("connected_to_upstream");
        Ok(())
    }
    async fn upstream_request_filter(
        &self,
        _: &mut Session,
        _: &mut RequestHeader,
        _: &mut usize,
    ) -> Result<()> {
        self.note("upstream_request_filter");
        Ok(())
    }
    async fn request_body_filter(
        &self,
        _: &mut Session,
        _: &mut Option<Bytes>,
        end: bool,
        _: &mut usize,
    ) -> Result<()> {
        self.note(if end {
            "request_body_filter(end)"
        } else {
            "request_body_filter"
        });
        Ok(())
    }
    fn upstream_response_filter(
        &self,
        _: &mut Session,
        _: &mut ResponseHeader,
        _: &mut usize,
    ) -> Result<()> {
        self.note("upstream_response_filter");
        Ok(())
    }
    async fn response_filter(
        &self,
        _: &mut Session,
        _: &mut ResponseHeader,
        _: &mut usize,
    ) -> Result<()> {
        self.note("response_filter");
        Ok(())
    }
    fn upstream_response_body_filter(
        &self,
        _: &mut Session,
        _: &mut Option<Bytes>,
        _: bool,
        _: &mut usize,
    ) -> Result<()> {
        self.note("upstream_response_body_filter");
        Ok(())
    }
    fn response_body_filter(
        &self,
        _: &mut Session,
        _: &mut Option<Bytes>,
        _: bool,
        _: &mut usize,
    ) -> Result<Option<std::time::Duration>> {
        self.note("response_body_filter");
        Ok(None)
    }
    async fn response_trailer_filter(
        &self,
        _: &mut Session,
        _: &mut HeaderMap,
        _: &mut usize,
    ) -> Result<Option<Bytes>> {
        self.note("response_trailer_filter");
        Ok(None)
    }
    async fn logging(&self, _: &mut Session, _: Option<&Error>, _: &mut usize) {
        self.note("logging");
    }
    fn fail_to_connect(
        &self,
        _: &mut Session,
        _: &HttpPeer,
        _: &mut usize,
        e: Box<Error>,
    ) -> Box<Error> {
        self.note("fail_to_connect");
        e
    }
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _: &mut usize) -> FailToProxy {
        self.note("fail_to_proxy");
        let status = pingora_proxy::error_status(e);
        session.respond_error(status).await.unwrap();
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }
}

#[tokio::test]
async fn phases_run_in_the_documented_order() {
    let origin = start_origin(EchoApp).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        log: log.clone(),
        peers: vec![origin.addr],
    };
    let proxy = start_proxy(recorder, 2).await;

    // A chunked upload with trailers, which the echo origin sends back.
    let mut c = client(proxy.addr).await;
    let mut req = request("POST", "/order");
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    c.write_request_header(req).await.unwrap();
    c.write_body(b"hello").await.unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "5".parse().unwrap());
    c.finish_body(Some(&trailers)).await.unwrap();
    assert_eq!(c.read_final_response_header().await.unwrap().status(), 200);
    let mut body = Vec::new();
    while let Some(piece) = c.read_body_bytes().await.unwrap() {
        body.extend_from_slice(&piece);
    }
    assert_eq!(body, b"hello");
    assert_eq!(c.trailers().unwrap()["x-sum"], "5");
    drop(c);

    let expected = [
        "early_request_filter",
        "request_filter",
        "proxy_upstream_filter",
        "upstream_peer",
        "connected_to_upstream",
        "upstream_request_filter",
        "request_body_filter",
        "request_body_filter(end)",
        "upstream_response_filter",
        "response_filter",
        "upstream_response_body_filter",
        "response_body_filter",
        "response_trailer_filter",
        "logging",
    ];
    wait_for_logging(&log).await;
    let seen: Vec<_> = interleave_body_filters(&log.lock());
    assert_eq!(seen, expected);
}

/// The two response body filters alternate per piece; keep the first pair.
fn interleave_body_filters(log: &[&'static str]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for phase in log {
        if phase.ends_with("body_filter") && out.contains(phase) {
            continue;
        }
        out.push(phase);
    }
    out
}

async fn wait_for_logging(log: &Mutex<Vec<&'static str>>) {
    // `logging` runs after the last response byte went out.
    for _ in 0..200 {
        if log.lock().last() == Some(&"logging") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("logging never ran: {:?}", log.lock());
}

#[tokio::test]
async fn failed_connect_retries_and_logs_once() {
    let origin = start_origin(EchoApp).await;
    let dead = dead_addr().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        log: log.clone(),
        peers: vec![dead, origin.addr],
    };
    let proxy = start_proxy(recorder, 2).await;
    let resp = get(proxy.addr, "/retry").await;
    assert_eq!(resp.status, 200);
    wait_for_logging(&log).await;
    let log = log.lock().clone();
    assert_eq!(
        &log[..6],
        [
            "early_request_filter",
            "request_filter",
            "proxy_upstream_filter",
            "upstream_peer",
            "fail_to_connect",
            "upstream_peer",
        ]
    );
    assert_eq!(log.iter().filter(|p| **p == "logging").count(), 1);
}

#[tokio::test]
async fn connect_refused_is_502_and_logged_once() {
    let dead = dead_addr().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        log: log.clone(),
        peers: vec![dead],
    };
    let proxy = start_proxy(recorder, 0).await;
    let resp = get(proxy.addr, "/").await;
    assert_eq!(resp.status, 502);
    wait_for_logging(&log).await;
    let log = log.lock().clone();
    let tail = &log[log.len() - 4..];
    assert_eq!(
        tail,
        [
            "upstream_peer",
            "fail_to_connect",
            "fail_to_proxy",
            "logging"
        ]
    );
}

/// Answers without a login header, itself, and keeps the connection.
struct Gate {
    origin: SocketAddr,
    logged: Arc<Mutex<Vec<Option<u16>>>>,
}

impl ProxyHttp for Gate {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        if session.get_header("x-login").is_some() {
            return Ok(false);
        }
        let mut resp = ResponseHeader::build(403, None)?;
        resp.insert_header("Content-Length", "6")?;
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some("denied".into()), true)
            .await?;
        Ok(true)
    }
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }
    async fn logging(&self, session: &mut Session, _: Option<&Error>, _: &mut ()) {
        self.logged.lock().push(session.response_status());
    }
}

#[tokio::test]
async fn request_filter_short_circuits_and_keeps_alive() {
    let origin = start_origin(EchoApp).await;
    let logged = Arc::new(Mutex::new(Vec::new()));
    let proxy = start_proxy(
        Gate {
            origin: origin.addr,
            logged: logged.clone(),
        },
        0,
    )
    .await;
    let mut c = client(proxy.addr).await;
    let resp = exchange(&mut c, request("GET", "/"), b"").await;
    assert_eq!((resp.status, &resp.body[..]), (403, &b"denied"[..]));
    assert_eq!(origin.accepted(), 0);

    // The same client connection carries the next, proxied, requests, and
    // the upstream connection is reused between them.
    let mut c = next(c);
    for _ in 0..3 {
        let mut req = request("POST", "/in");
        req.insert_header("X-Login", "me").unwrap();
        req.insert_header("Content-Length", "2").unwrap();
        let resp = exchange(&mut c, req, b"hi").await;
        assert_eq!((resp.status, &resp.body[..]), (200, &b"hi"[..]));
        c = next(c);
    }
    assert_eq!(origin.accepted(), 1);
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(logged.lock()[0], Some(403));
    assert_eq!(logged.lock().len(), 4);
}

/// Answers with the request fields it got, one `name: value` per line,
/// plus a field the proxy must hide.
struct ShowHeaders;

#[async_trait]
impl ServeHttp for ShowHeaders {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let mut lines = String::new();
        for (name, value) in request.header().headers() {
            lines.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        let mut resp = HttpResponse::text(200, lines);
        resp.header_mut()
            .insert_header("X-Origin-Secret", "s3cret")
            .unwrap();
        resp.header_mut()
            .insert_header("Connection", "X-Origin-Hop")
            .unwrap();
        resp.header_mut()
            .insert_header("X-Origin-Hop", "1")
            .unwrap();
        resp
    }
}

struct Rewrite(SocketAddr);

impl ProxyHttp for Rewrite {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }
    async fn upstream_request_filter(
        &self,
        _: &mut Session,
        req: &mut RequestHeader,
        _: &mut (),
    ) -> Result<()> {
        req.insert_header("X-Added-By-Proxy", "1")?;
        req.remove_header("x-remove-me");
        Ok(())
    }
    async fn response_filter(
        &self,
        _: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        resp.remove_header("x-origin-secret");
        resp.insert_header("X-Via", "pingora-rs")
    }
}

#[tokio::test]
async fn headers_are_rewritten_both_ways_and_hop_fields_dropped() {
    let origin = start_origin(ShowHeaders).await;
    let proxy = start_proxy(Rewrite(origin.addr), 0).await;
    let mut c = client(proxy.addr).await;
    let mut req = request("GET", "/h");
    req.insert_header("X-Remove-Me", "1").unwrap();
    req.insert_header("Connection", "keep-alive, X-Hop")
        .unwrap();
    req.insert_header("X-Hop", "1").unwrap();
    req.insert_header("Keep-Alive", "timeout=5").unwrap();
    req.insert_header("TE", "trailers").unwrap();
    req.insert_header("X-End-To-End", "kept").unwrap();
    let resp = exchange(&mut c, req, b"").await;
    let seen = String::from_utf8(resp.body).unwrap();
    assert!(seen.contains("x-added-by-proxy: 1"), "{seen}");
    assert!(seen.contains("x-end-to-end: kept"), "{seen}");
    for gone in [
        "x-remove-me",
        "x-hop",
        "keep-alive",
        "te:",
        "connection: keep-alive",
    ] {
        assert!(!seen.contains(gone), "{gone} in {seen}");
    }
    assert_eq!(resp.headers["x-via"], "pingora-rs");
    assert!(!resp.headers.contains_key("x-origin-secret"));
    assert!(!resp.headers.contains_key("x-origin-hop"));
}

#[tokio::test]
async fn malformed_request_gets_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = start_origin(EchoApp).await;
    let proxy = start_proxy(Rewrite(origin.addr), 0).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(origin.accepted(), 0);
}
