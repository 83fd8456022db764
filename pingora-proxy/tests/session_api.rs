//! The `Session` calls phases make: answers with a body, boxed heads with
//! an end of stream, keep-alive with a timeout, per-request timeouts, a
//! request body limit, draining, and the head as written.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use parking_lot::Mutex;
use pingora_core::apps::http_app::EchoApp;
use pingora_core::header::ResponseHeader;
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Per request: the status of the head written, and whether it said
/// `Connection: close`.
type Written = Arc<Mutex<Vec<Option<(u16, bool)>>>>;

/// Answers by path, otherwise proxies to `origin`; logs the status of
/// the head each request wrote, as `response_written` shows it.
struct Answers {
    origin: SocketAddr,
    written: Written,
}

impl ProxyHttp for Answers {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        let path = session.req_header().uri().path().to_owned();
        match path.as_str() {
            "/deny" => {
                session
                    .respond_error_with_body(403, "no login".into())
                    .await?;
                Ok(true)
            }
            "/boxed" => {
                let mut resp = ResponseHeader::build(200, None)?;
                resp.insert_header("Content-Length", "5")?;
                session.write_response_header(Box::new(resp), false).await?;
                session
                    .write_response_body(Some(Bytes::from_static(b"he")), false)
                    .await?;
                session.write_response_body(None, false).await?;
                session
                    .write_response_body(Some(Bytes::from_static(b"llo")), true)
                    .await?;
                Ok(true)
            }
            "/empty" => {
                let mut resp = ResponseHeader::build(204, None)?;
                resp.insert_header("X-Empty", "1")?;
                session.write_response_header(Box::new(resp), true).await?;
                Ok(true)
            }
            "/drain" => {
                session.drain_request_body().await?;
                let read = session.body_bytes_read().to_string();
                session.respond_error_with_body(200, read.into()).await?;
                Ok(true)
            }
            "/whoami" => {
                let addr = session.server_addr().unwrap().to_string();
                let host = String::from_utf8_lossy(session.get_header_bytes("host")).into_owned();
                let absent = session.get_header_bytes("x-absent").len();
                let text = format!("{addr} {host} {absent} {}", session.is_http2());
                session.respond_error_with_body(200, text.into()).await?;
                Ok(true)
            }
            "/close" => {
                session.set_keepalive(None);
                Ok(false)
            }
            "/short-keepalive" => {
                session.set_keepalive(Some(1));
                Ok(false)
            }
            "/limit" => {
                session.set_request_body_limit(Some(4));
                Ok(false)
            }
            "/slow-body" => {
                session.set_read_timeout(Some(Duration::from_millis(300)));
                session.set_write_timeout(Some(Duration::from_secs(5)));
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    async fn logging(&self, session: &mut Session, _: Option<&Error>, _: &mut ()) {
        let written = session.response_written().map(|head| {
            let close = head
                .headers()
                .get("connection")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            (head.status().as_u16(), close)
        });
        self.written.lock().push(written);
    }
}

async fn setup() -> (Running, Running, Written) {
    let origin = start_origin(EchoApp).await;
    let written = Arc::new(Mutex::new(Vec::new()));
    let proxy = start_proxy(
        Answers {
            origin: origin.addr,
            written: written.clone(),
        },
        0,
    )
    .await;
    (origin, proxy, written)
}

/// A POST of `len` body bytes.
fn post(path: &str, len: usize) -> pingora_core::header::RequestHeader {
    let mut req = request("POST", path);
    req.insert_header("Content-Length", len.to_string())
        .unwrap();
    req
}

/// Everything the proxy sends on a connection until it closes it.
async fn until_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("the proxy did not close")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_answer_with_a_body_keeps_the_connection() {
    let (_origin, proxy, written) = setup().await;
    let mut c = client(proxy.addr).await;
    let denied = exchange(&mut c, request("GET", "/deny"), b"").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body, b"no login");
    assert_eq!(denied.headers["content-length"], "8");
    // The same connection serves the next request, proxied.
    let mut c = next(c);
    let echoed = exchange(&mut c, post("/echo", 2), b"hi").await;
    assert_eq!((echoed.status, &echoed.body[..]), (200, &b"hi"[..]));
    assert_eq!(*written.lock(), [Some((403, false)), Some((200, false))]);
}

#[tokio::test]
async fn what_the_session_knows_of_the_request() {
    let (_origin, proxy, _written) = setup().await;
    let me = get(proxy.addr, "/whoami").await;
    let text = String::from_utf8(me.body).unwrap();
    assert_eq!(text, format!("{} test.local 0 false", proxy.addr));
}

#[tokio::test]
async fn boxed_heads_and_body_pieces_with_end_of_stream() {
    let (_origin, proxy, written) = setup().await;
    let mut c = client(proxy.addr).await;
    let boxed = exchange(&mut c, request("GET", "/boxed"), b"").await;
    assert_eq!((boxed.status, &boxed.body[..]), (200, &b"hello"[..]));
    let mut c = next(c);
    let empty = exchange(&mut c, request("GET", "/empty"), b"").await;
    assert_eq!(empty.status, 204);
    assert_eq!(empty.headers["x-empty"], "1");
    assert!(empty.body.is_empty());
    // Still reusable after a head that ended the response.
    let mut c = next(c);
    assert_eq!(
        exchange(&mut c, request("GET", "/x"), b"").await.status,
        200
    );
    assert_eq!(
        written.lock()[..2],
        [Some((200, false)), Some((204, false))]
    );
}

#[tokio::test]
async fn draining_reads_the_body_and_keeps_the_connection() {
    let (_origin, proxy, _written) = setup().await;
    let mut c = client(proxy.addr).await;
    let drained = exchange(&mut c, post("/drain", 3000), &[7; 3000]).await;
    assert_eq!((drained.status, &drained.body[..]), (200, &b"3000"[..]));
    let mut c = next(c);
    let echoed = exchange(&mut c, post("/after", 2), b"ok").await;
    assert_eq!(echoed.body, b"ok");
}

#[tokio::test]
async fn keepalive_none_closes_and_the_head_says_so() {
    let (_origin, proxy, written) = setup().await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let out = until_close(&mut tcp).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert_eq!(*written.lock(), [Some((200, true))]);
}

#[tokio::test]
async fn keepalive_with_a_timeout_closes_the_idle_connection_then() {
    let (_origin, proxy, _written) = setup().await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"GET /short-keepalive HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let out = until_close(&mut tcp).await;
    // Kept alive (no close in the head), then closed after about a
    // second idle instead of the default minute.
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        !out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
}

#[tokio::test]
async fn a_body_over_the_request_limit_gets_413() {
    let (_origin, proxy, written) = setup().await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"POST /limit HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
        .await
        .unwrap();
    let out = until_close(&mut tcp).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert_eq!(*written.lock(), [Some((413, true))]);
    // Chunked, so no length is declared: the read that passes it fails.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"POST /limit HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
        .await
        .unwrap();
    let out = until_close(&mut tcp).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    // Under the limit it goes through.
    let mut c = client(proxy.addr).await;
    let fine = exchange(&mut c, post("/limit", 4), b"abcd").await;
    assert_eq!((fine.status, &fine.body[..]), (200, &b"abcd"[..]));
}

#[tokio::test]
async fn a_per_request_read_timeout_ends_a_stalled_body() {
    let (_origin, proxy, _written) = setup().await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"POST /slow-body HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01")
        .await
        .unwrap();
    let start = Instant::now();
    let out = until_close(&mut tcp).await;
    // The listener's body timeout is a minute; this request's is 300 ms.
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(start.elapsed() < Duration::from_secs(5));
}
