//! Upstream failures: timeouts, connections closed early or mid-body,
//! stale pooled connections, early answers.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use pingora_core::header::ResponseHeader;
use pingora_core::protocols::http::v1::{H1Config, ServerConnection};
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Proxies to one address, with an optional read timeout, and may refuse
/// to go upstream.
struct To {
    addr: SocketAddr,
    read_timeout: Option<Duration>,
    go_upstream: bool,
    peers_asked: Arc<AtomicUsize>,
}

fn to(addr: SocketAddr) -> To {
    To {
        addr,
        read_timeout: None,
        go_upstream: true,
        peers_asked: Arc::default(),
    }
}

impl ProxyHttp for To {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn proxy_upstream_filter(&self, _: &mut Session, _: &mut ()) -> Result<bool> {
        Ok(self.go_upstream)
    }
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        self.peers_asked.fetch_add(1, Ordering::SeqCst);
        let mut peer = HttpPeer::new(self.addr, false, "");
        peer.options.read_timeout = self.read_timeout;
        Ok(Box::new(peer))
    }
}

/// An origin that accepts, reads the request and never answers.
async fn silent_origin() -> Running {
    serve_fn(|mut stream, _| async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn upstream_timeout_is_504() {
    let origin = silent_origin().await;
    let mut sv = to(origin.addr);
    sv.read_timeout = Some(Duration::from_millis(200));
    let proxy = start_proxy(sv, 3).await;
    let resp = get(proxy.addr, "/slow").await;
    assert_eq!(resp.status, 504);
}

#[tokio::test]
async fn refusing_to_go_upstream_is_502() {
    let origin = silent_origin().await;
    let mut sv = to(origin.addr);
    sv.go_upstream = false;
    let proxy = start_proxy(sv, 0).await;
    assert_eq!(get(proxy.addr, "/").await.status, 502);
    assert_eq!(origin.accepted(), 0);
}

#[tokio::test]
async fn connect_refused_without_retries_is_502() {
    let sv = to(dead_addr().await);
    let asked = sv.peers_asked.clone();
    let proxy = start_proxy(sv, 2).await;
    assert_eq!(get(proxy.addr, "/").await.status, 502);
    // One try and two retries.
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

/// Sends a head announcing `head_len`, `sent` body bytes, then closes.
async fn truncating_origin(chunked: bool) -> Running {
    serve_fn(move |mut stream, _| async move {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let head: &[u8] = if chunked {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello"
        };
        let _ = stream.write_all(head).await;
        let _ = stream.flush().await;
        // Dropping the stream closes the connection mid-body.
    })
    .await
}

#[tokio::test]
async fn origin_closing_mid_body_closes_the_client_connection() {
    for chunked in [false, true] {
        let origin = truncating_origin(chunked).await;
        let proxy = start_proxy(to(origin.addr), 0).await;
        let mut c = client(proxy.addr).await;
        c.write_request_header(request("GET", "/cut"))
            .await
            .unwrap();
        c.finish_body(None).await.unwrap();
        let head = c.read_final_response_header().await.unwrap();
        assert_eq!(head.status(), 200);
        let mut body = Vec::new();
        let outcome = loop {
            match c.read_body_bytes().await {
                Ok(Some(piece)) => body.extend_from_slice(&piece),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let e = outcome.expect_err("a truncated body must not look complete");
        assert_eq!(
            e.etype(),
            &pingora_error::ErrorType::ConnectionClosed,
            "{e}"
        );
        assert_eq!(body, b"hello", "chunked: {chunked}");
    }
}

/// Answers the first request on each connection and keeps it open, but
/// closes without answering when a second request arrives: a stale pooled
/// connection, deterministically.
async fn one_shot_origin() -> Running {
    serve_fn(|stream, _| async move {
        let conn = ServerConnection::new(stream, H1Config::default());
        let Ok(Some(mut s)) = conn.read_request().await else {
            return;
        };
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Content-Length", "2").unwrap();
        s.write_response_header(resp).await.unwrap();
        s.write_body(b"ok").await.unwrap();
        s.finish_response(None).await.unwrap();
        let Some(conn) = s.reuse().await else { return };
        // Wait for the next request, then close instead of answering.
        let _ = conn.read_request().await;
    })
    .await
}

#[tokio::test]
async fn stale_pooled_connection_is_retried_on_a_fresh_one() {
    let origin = one_shot_origin().await;
    let proxy = start_proxy(to(origin.addr), 1).await;
    for _ in 0..3 {
        let resp = get(proxy.addr, "/").await;
        assert_eq!((resp.status, &resp.body[..]), (200, &b"ok"[..]));
    }
    // Every request after the first found the pooled connection stale and
    // went on a new one.
    assert_eq!(origin.accepted(), 3);
}

#[tokio::test]
async fn stale_pooled_connection_without_retries_is_502() {
    let origin = one_shot_origin().await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    assert_eq!(get(proxy.addr, "/").await.status, 200);
    assert_eq!(get(proxy.addr, "/").await.status, 502);
}

/// Answers 413 as soon as the head arrives, without reading the body.
async fn early_answer_origin() -> Running {
    serve_fn(|stream, _| async move {
        let conn = ServerConnection::new(stream, H1Config::default());
        let Ok(Some(mut s)) = conn.read_request().await else {
            return;
        };
        let _ = s.respond_error(413).await;
        // Keep the socket open a while so the proxy reads the answer
        // rather than a reset.
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await
}

#[tokio::test]
async fn early_upstream_answer_reaches_the_client_during_upload() {
    let origin = early_answer_origin().await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    let mut c = client(proxy.addr).await;
    let mut req = request("POST", "/big");
    req.insert_header("Content-Length", "10000000").unwrap();
    c.write_request_header(req).await.unwrap();
    c.write_body(&[b'x'; 1000]).await.unwrap();
    // The rest of the body never comes; the answer must arrive anyway.
    let head = tokio::time::timeout(WAIT, c.read_final_response_header())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.status(), 413);
}

/// Answers after `delay`.
struct Slow(Duration);

#[async_trait]
impl pingora_core::apps::http_app::ServeHttp for Slow {
    async fn response(
        &self,
        _: pingora_core::apps::http_app::HttpRequest,
    ) -> pingora_core::apps::http_app::HttpResponse {
        tokio::time::sleep(self.0).await;
        pingora_core::apps::http_app::HttpResponse::text(200, "late")
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_closes_idle_ones() {
    let origin = start_origin(Slow(Duration::from_millis(300))).await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    // An idle kept-alive client connection...
    let mut idle = client(proxy.addr).await;
    assert_eq!(
        exchange(&mut idle, request("GET", "/"), b"").await.status,
        200
    );
    let mut idle = next(idle);
    // ...and a request in flight when the shutdown comes.
    let mut busy = client(proxy.addr).await;
    busy.write_request_header(request("GET", "/"))
        .await
        .unwrap();
    busy.finish_body(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.shutdown();
    let head = busy.read_final_response_header().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["connection"], "close");
    let body = busy.read_body_bytes().await.unwrap().unwrap();
    assert_eq!(&body[..], b"late");
    // The idle connection drains: a request sent on it now is still
    // answered, and the answer closes it (see tests/shutdown.rs).
    let got = exchange(&mut idle, request("GET", "/"), b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["connection"], "close");
}

/// Sends `hints` 103 heads, then a 200 when `finish`, else stalls.
async fn hinting_origin(hints: usize, finish: bool) -> Running {
    serve_fn(move |mut stream, _| async move {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        for _ in 0..hints {
            let hint = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
            if stream.write_all(hint).await.is_err() {
                return;
            }
        }
        if finish {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await
}

async fn raw_get(addr: SocketAddr) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn interim_responses_pass_through_but_are_bounded() {
    let origin = hinting_origin(1, true).await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    let out = raw_get(proxy.addr).await;
    assert!(out.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{out}");
    assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
    assert!(out.ends_with("ok"), "{out}");

    let origin = hinting_origin(1000, false).await;
    let proxy = start_proxy(to(origin.addr), 0).await;
    let out = raw_get(proxy.addr).await;
    assert_eq!(out.matches(" 103 ").count(), 16, "{out}");
    assert!(out.contains("HTTP/1.1 502"), "{out}");
}
