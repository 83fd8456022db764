use super::*;
use crate::protocols::http::v1::H1Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A server connection on one end of a pipe, the client end returned.
fn pair() -> (ServerConnection, DuplexStream) {
    let (client, server) = tokio::io::duplex(1 << 16);
    (
        ServerConnection::new(Box::new(server), H1Config::default()),
        client,
    )
}

async fn session(input: &[u8]) -> (ServerSession, DuplexStream) {
    let (conn, mut client) = pair();
    client.write_all(input).await.unwrap();
    let session = conn.read_request().await.unwrap().unwrap();
    (session, client)
}

async fn respond(s: &mut ServerSession, resp: ResponseHeader, body: &[u8]) {
    s.write_response_header(resp).await.unwrap();
    s.write_body(body).await.unwrap();
    s.finish_response(None).await.unwrap();
}

async fn read_avail(client: &mut DuplexStream) -> String {
    let mut buf = vec![0; 4096];
    let n = client.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn http10_close_delimited_without_length() {
    let (mut s, mut client) = session(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
    assert!(s.will_keepalive());
    respond(&mut s, ResponseHeader::build(200, None).unwrap(), b"abc").await;
    assert!(!s.will_keepalive());
    assert!(s.reuse().await.is_none());
    let mut out = String::new();
    client.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc");
}

#[tokio::test]
async fn http10_keepalive_with_length() {
    let (mut s, mut client) = session(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", "3").unwrap();
    respond(&mut s, resp, b"abc").await;
    assert!(s.reuse().await.is_some());
    assert_eq!(
        read_avail(&mut client).await,
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
    );
}

#[tokio::test]
async fn http11_defaults_to_chunked() {
    let (mut s, mut client) = session(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    respond(&mut s, ResponseHeader::build(200, None).unwrap(), b"abc").await;
    assert_eq!(
        read_avail(&mut client).await,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
    assert!(s.reuse().await.is_some());
}

#[tokio::test]
async fn no_body_statuses() {
    for (req, status, expect) in [
        ("HEAD", 200, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"),
        (
            "GET",
            304,
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
        ),
        ("GET", 204, "HTTP/1.1 204 No Content\r\n\r\n"),
    ] {
        let input = format!("{req} / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (mut s, mut client) = session(input.as_bytes()).await;
        let mut resp = ResponseHeader::build(status, None).unwrap();
        resp.insert_header("Content-Length", "3").unwrap();
        respond(&mut s, resp, b"abc").await;
        assert_eq!(read_avail(&mut client).await, expect);
        assert!(s.reuse().await.is_some());
    }
}

#[tokio::test]
async fn continue_sent_on_first_body_read() {
    let (mut s, mut client) =
        session(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
            .await;
    let read = tokio::spawn(async move {
        let first = read_avail(&mut client).await;
        client.write_all(b"hi").await.unwrap();
        (first, client)
    });
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "hi");
    assert!(s.read_body_bytes().await.unwrap().is_none());
    let (first, _client) = read.await.unwrap();
    assert_eq!(first, "HTTP/1.1 100 Continue\r\n\r\n");
}

#[tokio::test]
async fn final_answer_without_continue_closes() {
    let (mut s, _client) =
        session(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
            .await;
    let mut resp = ResponseHeader::build(417, None).unwrap();
    resp.insert_header("Content-Length", "0").unwrap();
    respond(&mut s, resp, b"").await;
    assert!(!s.will_keepalive());
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn misuse_is_an_error_not_a_panic() {
    let (mut s, _client) = session(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(s.write_body(b"x").await.is_err());
    assert!(s.finish_response(None).await.is_err());
    // 101 without an upgrade request
    let resp = ResponseHeader::build(101, None).unwrap();
    assert!(s.write_response_header(resp).await.is_err());
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", "1").unwrap();
    s.write_response_header(resp.clone()).await.unwrap();
    assert!(s.write_response_header(resp).await.is_err());
    assert!(s.write_body(b"too long").await.is_err());
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn short_body_closes() {
    let (mut s, _client) = session(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", "5").unwrap();
    s.write_response_header(resp).await.unwrap();
    s.write_body(b"ab").await.unwrap();
    assert!(s.finish_response(None).await.is_err());
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn no_interim_responses_to_http10() {
    let (mut s, mut client) = session(b"GET / HTTP/1.0\r\n\r\n").await;
    s.write_response_header(ResponseHeader::build(103, None).unwrap())
        .await
        .unwrap();
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", "0").unwrap();
    respond(&mut s, resp, b"").await;
    assert_eq!(
        read_avail(&mut client).await,
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// Bytes readable on `client` right now, without waiting for more.
fn read_now(client: &mut DuplexStream) -> Vec<u8> {
    use futures_now::now_or_never;
    let mut buf = vec![0; 4096];
    match now_or_never(client.read(&mut buf)) {
        Some(Ok(n)) => buf[..n].to_vec(),
        _ => Vec::new(),
    }
}

/// A tiny stand-in for `FutureExt::now_or_never`: poll once.
mod futures_now {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    pub(super) fn now_or_never<F: Future>(fut: F) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }
}

#[tokio::test]
async fn head_waits_for_the_body_and_leaves_with_it() {
    let (mut s, mut client) = session(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", "3").unwrap();
    s.write_response_header(resp).await.unwrap();
    assert!(
        read_now(&mut client).is_empty(),
        "head must wait for the body"
    );
    s.write_body(b"abc").await.unwrap();
    assert_eq!(
        String::from_utf8(read_now(&mut client)).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    );
}

#[tokio::test]
async fn flush_sends_a_held_head() {
    let (mut s, mut client) = session(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.write_response_header(ResponseHeader::build(200, None).unwrap())
        .await
        .unwrap();
    assert!(read_now(&mut client).is_empty());
    s.flush().await.unwrap();
    let head = String::from_utf8(read_now(&mut client)).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    // nothing left to send: a second flush writes nothing
    s.flush().await.unwrap();
    assert!(read_now(&mut client).is_empty());
}

#[tokio::test]
async fn bodyless_head_is_sent_at_once() {
    let (mut s, mut client) = session(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", "10").unwrap();
    s.write_response_header(resp).await.unwrap();
    let head = String::from_utf8(read_now(&mut client)).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
}

#[tokio::test]
async fn garbage_gets_400_without_waiting_for_a_full_head() {
    let (conn, mut client) = pair();
    // No blank line ever comes: only the bad request line decides.
    client
        .write_all(&[0u8, 1, 2, 3, b'\r', b'\n', 4, 5, 6])
        .await
        .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_request())
        .await
        .expect("refused at once, not after the header timeout");
    assert!(read.is_err());
    let answer = read_avail(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

#[tokio::test]
async fn coarse_timers_enforce_the_header_timeout() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut config = H1Config::default();
    assert!(config.coarse_timers, "coarse timers are the default");
    config.header_timeout = Duration::from_millis(50);
    let conn = ServerConnection::new(Box::new(server), config);
    let mut client = client;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_request())
        .await
        .expect("the coarse header timeout fires");
    assert!(read.is_err());
    let waited = start.elapsed();
    // Never early; late by at most a couple of 5 ms buckets plus the linger
    // after the 408/close (bounded at 2 s).
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
}

/// Where the request's first field name sits in memory: inside the read
/// buffer, which heads share.
fn first_name_ptr(s: &ServerSession) -> *const u8 {
    s.req_header().wire_headers().next().unwrap().0.as_ptr()
}

#[tokio::test]
async fn keepalive_requests_reuse_one_read_buffer() {
    // Heads are slices of the read buffer; a session that ends releases
    // its head, so the next request is read into the same allocation
    // instead of a fresh one per request.
    let (mut conn, mut client) = pair();
    let mut seen = Vec::new();
    for _ in 0..3 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut s = conn.read_request().await.unwrap().unwrap();
        seen.push(first_name_ptr(&s));
        let mut resp = ResponseHeader::build(204, None).unwrap();
        resp.insert_header("X-A", "b").unwrap();
        s.write_response_header(resp).await.unwrap();
        s.finish_response(None).await.unwrap();
        assert!(read_avail(&mut client).await.starts_with("HTTP/1.1 204"));
        conn = s.reuse().await.unwrap();
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}
