//! Retries and idempotency (RFC 9110 §9.2.2): a request the upstream may
//! have processed is sent again only when its method is idempotent, or
//! when the user's `error_while_proxy` asks for it; a request that never
//! reached the upstream (failed connect, refused HTTP/2 stream) may be
//! sent again whatever its method.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use h2::server::SendResponse;
use pingora_core::header::ResponseHeader;
use pingora_core::protocols::http::v1::{H1Config, ServerConnection};
use pingora_core::tls::Alpn;
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Every request an origin read whole, as `METHOD /path body`.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn record(&self, method: &str, path: &str, body: &[u8]) {
        let line = format!("{method} {path} {}", String::from_utf8_lossy(body));
        self.0.lock().unwrap().push(line);
    }

    fn count(&self, line: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|l| *l == line).count()
    }
}

/// HTTP/1: answers the first request of each connection and keeps the
/// connection open; reads the next request whole, then closes without
/// answering. A pooled connection that fails after the origin read the
/// request, deterministically.
async fn h1_origin(seen: Seen) -> Running {
    serve_fn(move |stream, _| {
        let seen = seen.clone();
        async move {
            let conn = ServerConnection::new(stream, H1Config::default());
            let Ok(Some(mut s)) = conn.read_request().await else {
                return;
            };
            let body = read_all(&mut s).await;
            let req = s.req_header();
            seen.record(req.method().as_str(), req.uri().path(), &body);
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.insert_header("Content-Length", "2").unwrap();
            s.write_response_header(resp).await.unwrap();
            s.write_body(b"ok").await.unwrap();
            s.finish_response(None).await.unwrap();
            let Some(conn) = s.reuse().await else { return };
            let Ok(Some(mut s)) = conn.read_request().await else {
                return;
            };
            let body = read_all(&mut s).await;
            let req = s.req_header();
            seen.record(req.method().as_str(), req.uri().path(), &body);
        }
    })
    .await
}

async fn read_all(s: &mut pingora_core::protocols::http::v1::ServerSession) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(piece)) = s.read_body_bytes().await {
        body.extend_from_slice(&piece);
    }
    body
}

/// What an HTTP/2 origin does with the second stream of a connection.
#[derive(Clone, Copy)]
enum Second {
    /// Read it whole, then drop the connection (no GOAWAY, no answer).
    ReadAndClose,
    /// Refuse it unread (RST_STREAM REFUSED_STREAM), answer the others.
    Refuse,
}

/// HTTP/2 (prior knowledge): answers every stream with 200 `ok` after
/// reading its request whole, but the second stream of a connection as
/// `second` says.
async fn h2_origin(seen: Seen, second: Second) -> Running {
    serve_fn(move |stream, _| {
        let seen = seen.clone();
        async move {
            let Ok(mut conn) = h2::server::handshake(stream).await else {
                return;
            };
            // The stream to leave unanswered comes back here, so that the
            // connection closes before the stream is dropped (dropping it
            // first would reset it with CANCEL).
            let (close, mut closed) = mpsc::channel::<SendResponse<Bytes>>(1);
            let mut streams = 0;
            loop {
                let next = tokio::select! {
                    Some(respond) = closed.recv() => {
                        drop(conn);
                        drop(respond);
                        return;
                    }
                    next = conn.accept() => next,
                };
                let Some(Ok((req, mut respond))) = next else {
                    return;
                };
                streams += 1;
                if streams == 2 && matches!(second, Second::Refuse) {
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                    continue;
                }
                let answer = streams != 2;
                let (seen, close) = (seen.clone(), close.clone());
                tokio::spawn(async move {
                    let (parts, mut body) = req.into_parts();
                    let mut data = Vec::new();
                    while let Some(Ok(piece)) = body.data().await {
                        let _ = body.flow_control().release_capacity(piece.len());
                        data.extend_from_slice(&piece);
                    }
                    seen.record(parts.method.as_str(), parts.uri.path(), &data);
                    if !answer {
                        let _ = close.send(respond).await;
                        return;
                    }
                    let resp = http::Response::builder().status(200).body(()).unwrap();
                    let mut out = respond.send_response(resp, false).unwrap();
                    out.send_data(Bytes::from_static(b"ok"), true).unwrap();
                });
            }
        }
    })
    .await
}

/// An HTTP/2 frame: type `kind`, `flags`, on `stream`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HTTP/2 at the frame level, so that it can send a GOAWAY naming the
/// stream before one it just received: answers a stream (200, body `ok`)
/// once its request ended, recording the request body; on the second
/// stream of a connection sends GOAWAY (NO_ERROR) with the previous stream
/// as the last one processed, and closes.
async fn goaway_origin(bodies: Arc<Mutex<Vec<Vec<u8>>>>) -> Running {
    const DATA: u8 = 0;
    const HEADERS: u8 = 1;
    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    const GOAWAY: u8 = 7;
    const END_STREAM: u8 = 0x1;
    const ACK: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    serve_fn(move |mut stream, _| {
        let bodies = bodies.clone();
        async move {
            let mut preface = [0u8; 24];
            if stream.read_exact(&mut preface).await.is_err() {
                return;
            }
            stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
            let mut streams = 0;
            let mut body = Vec::new();
            loop {
                let mut head = [0u8; 9];
                if stream.read_exact(&mut head).await.is_err() {
                    return;
                }
                let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                let (kind, flags) = (head[3], head[4]);
                let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let mut payload = vec![0; len];
                if stream.read_exact(&mut payload).await.is_err() {
                    return;
                }
                let mut out = Vec::new();
                match kind {
                    SETTINGS if flags & ACK == 0 => out = frame(SETTINGS, ACK, 0, &[]),
                    PING if flags & ACK == 0 => out = frame(PING, ACK, 0, &payload),
                    HEADERS => {
                        streams += 1;
                        body.clear();
                        if streams == 2 {
                            // RFC 9113 §6.8: streams above `last` were not
                            // processed and may be retried.
                            let mut goaway = (id - 2).to_be_bytes().to_vec();
                            goaway.extend_from_slice(&0u32.to_be_bytes());
                            let _ = stream.write_all(&frame(GOAWAY, 0, 0, &goaway)).await;
                            return;
                        }
                    }
                    DATA => body.extend_from_slice(&payload),
                    _ => {}
                }
                if matches!(kind, HEADERS | DATA) && flags & END_STREAM != 0 {
                    bodies.lock().unwrap().push(std::mem::take(&mut body));
                    // `:status: 200` is entry 8 of the HPACK static table.
                    out = frame(HEADERS, END_HEADERS, id, &[0x88]);
                    out.extend(frame(DATA, END_STREAM, id, b"ok"));
                }
                if !out.is_empty() && stream.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// Proxies to `addrs[n]` on the n-th attempt (the last one after that),
/// over `alpn`; retries a POST when `retry_post`.
struct To {
    addrs: Vec<SocketAddr>,
    alpn: Alpn,
    retry_post: bool,
}

impl ProxyHttp for To {
    /// Attempts so far.
    type CTX = usize;
    fn new_ctx(&self) -> usize {
        0
    }

    async fn upstream_peer(&self, _: &mut Session, tries: &mut usize) -> Result<Box<HttpPeer>> {
        let addr = self.addrs[(*tries).min(self.addrs.len() - 1)];
        *tries += 1;
        let mut peer = HttpPeer::new(addr, false, "");
        peer.options.alpn = self.alpn;
        Ok(Box::new(peer))
    }

    fn error_while_proxy(
        &self,
        _: &HttpPeer,
        session: &mut Session,
        mut e: Box<Error>,
        _: &mut usize,
        _: bool,
    ) -> Box<Error> {
        // The user knows this POST may be repeated.
        if self.retry_post && session.req_header().method() == http::Method::POST {
            e.set_retry(true);
        }
        e
    }
}

fn to(addr: SocketAddr, alpn: Alpn) -> To {
    To {
        addrs: vec![addr],
        alpn,
        retry_post: false,
    }
}

/// On one client connection: a GET that leaves a pooled upstream
/// connection behind, then `method /again` with body `abc`, which goes on
/// that pooled connection. The status of the second.
async fn prime_then(proxy: SocketAddr, method: &str) -> (u16, Vec<u8>) {
    let mut c = client(proxy).await;
    let first = exchange(&mut c, request("GET", "/"), b"").await;
    assert_eq!((first.status, &first.body[..]), (200, &b"ok"[..]));
    let mut c = next(c);
    let mut req = request(method, "/again");
    req.insert_header("Content-Length", "3").unwrap();
    let resp = exchange(&mut c, req, b"abc").await;
    (resp.status, resp.body)
}

#[tokio::test]
async fn post_on_a_failing_pooled_h1_connection_reaches_the_origin_once() {
    let seen = Seen::default();
    let origin = h1_origin(seen.clone()).await;
    let proxy = start_proxy(to(origin.addr, Alpn::H1), 3).await;
    assert_eq!(prime_then(proxy.addr, "POST").await.0, 502);
    assert_eq!(seen.count("POST /again abc"), 1);
    // No second connection was opened to send it again.
    assert_eq!(origin.accepted(), 1);
}

#[tokio::test]
async fn patch_is_not_idempotent_either() {
    let seen = Seen::default();
    let origin = h1_origin(seen.clone()).await;
    let proxy = start_proxy(to(origin.addr, Alpn::H1), 3).await;
    assert_eq!(prime_then(proxy.addr, "PATCH").await.0, 502);
    assert_eq!(seen.count("PATCH /again abc"), 1);
}

#[tokio::test]
async fn idempotent_methods_on_a_failing_pooled_h1_connection_are_retried() {
    for method in ["GET", "PUT", "DELETE"] {
        let seen = Seen::default();
        let origin = h1_origin(seen.clone()).await;
        let proxy = start_proxy(to(origin.addr, Alpn::H1), 3).await;
        let (status, body) = prime_then(proxy.addr, method).await;
        assert_eq!((status, &body[..]), (200, &b"ok"[..]), "{method}");
        // Once on the failing connection, once on a fresh one.
        assert_eq!(seen.count(&format!("{method} /again abc")), 2, "{method}");
        assert_eq!(origin.accepted(), 2, "{method}");
    }
}

#[tokio::test]
async fn post_is_retried_when_error_while_proxy_asks() {
    let seen = Seen::default();
    let origin = h1_origin(seen.clone()).await;
    let mut sv = to(origin.addr, Alpn::H1);
    sv.retry_post = true;
    let proxy = start_proxy(sv, 3).await;
    let (status, body) = prime_then(proxy.addr, "POST").await;
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    assert_eq!(seen.count("POST /again abc"), 2);
}

#[tokio::test]
async fn post_after_a_failed_connect_is_retried() {
    let seen = Seen::default();
    let origin = h1_origin(seen.clone()).await;
    let sv = To {
        addrs: vec![dead_addr().await, origin.addr],
        alpn: Alpn::H1,
        retry_post: false,
    };
    let proxy = start_proxy(sv, 3).await;
    let mut c = client(proxy.addr).await;
    let mut req = request("POST", "/first");
    req.insert_header("Content-Length", "3").unwrap();
    let resp = exchange(&mut c, req, b"abc").await;
    // Nothing reached the dead peer: sending it to the next is safe.
    assert_eq!((resp.status, &resp.body[..]), (200, &b"ok"[..]));
    assert_eq!(seen.count("POST /first abc"), 1);
}

#[tokio::test]
async fn post_on_a_failing_h2_connection_reaches_the_origin_once() {
    let seen = Seen::default();
    let origin = h2_origin(seen.clone(), Second::ReadAndClose).await;
    let proxy = start_proxy(to(origin.addr, Alpn::H2), 3).await;
    assert_eq!(prime_then(proxy.addr, "POST").await.0, 502);
    assert_eq!(seen.count("POST /again abc"), 1);
    assert_eq!(origin.accepted(), 1);
}

#[tokio::test]
async fn get_on_a_failing_h2_connection_is_retried() {
    let seen = Seen::default();
    let origin = h2_origin(seen.clone(), Second::ReadAndClose).await;
    let proxy = start_proxy(to(origin.addr, Alpn::H2), 3).await;
    let (status, body) = prime_then(proxy.addr, "GET").await;
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    assert_eq!(seen.count("GET /again abc"), 2);
}

#[tokio::test]
async fn post_refused_by_an_h2_origin_is_retried() {
    let seen = Seen::default();
    let origin = h2_origin(seen.clone(), Second::Refuse).await;
    let proxy = start_proxy(to(origin.addr, Alpn::H2), 3).await;
    let (status, body) = prime_then(proxy.addr, "POST").await;
    // REFUSED_STREAM: the origin did not process it (RFC 9113 §8.7), so
    // it is sent again, and processed once.
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    assert_eq!(seen.count("POST /again abc"), 1);
}

#[tokio::test]
async fn post_above_an_h2_goaway_is_retried() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let origin = goaway_origin(bodies.clone()).await;
    let proxy = start_proxy(to(origin.addr, Alpn::H2), 3).await;
    let (status, body) = prime_then(proxy.addr, "POST").await;
    // The GOAWAY said the POST's stream was not processed (RFC 9113
    // §8.7): it is sent again, on a new connection, and processed once.
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    assert_eq!(*bodies.lock().unwrap(), [&b""[..], b"abc"]);
    assert_eq!(origin.accepted(), 2);
}
