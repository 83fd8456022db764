//! Every HTTP/1 timeout fires for slow or idle peers, checked on paused
//! tokio time: the tests take no real time.

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pingora_core::ErrorType;
use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::{EchoApp, HttpServer};
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::protocols::http::v1::{ClientSession, H1Config, ServerConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

fn config() -> H1Config {
    let mut c = H1Config::default();
    c.idle_timeout = Duration::from_secs(7);
    c.header_timeout = Duration::from_secs(5);
    c.body_read_timeout = Duration::from_secs(11);
    c.write_timeout = Duration::from_secs(13);
    // These tests run on tokio's paused clock, which only the precise
    // timers follow.
    c.coarse_timers = false;
    c
}

fn server(buffer: usize) -> (ServerConnection, DuplexStream) {
    let (client, server) = tokio::io::duplex(buffer);
    (ServerConnection::new(Box::new(server), config()), client)
}

fn secs(since: Instant) -> u64 {
    since.elapsed().as_secs()
}

#[tokio::test(start_paused = true)]
async fn silent_new_connection_hits_header_timeout() {
    let (conn, _client) = server(4096);
    let start = Instant::now();
    let err = conn.read_request().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout);
    assert_eq!(secs(start), 5);
}

#[tokio::test(start_paused = true)]
async fn slow_head_hits_header_timeout_and_gets_408() {
    let (conn, client) = server(4096);
    let (mut rd, mut wr) = tokio::io::split(client);
    let drip = tokio::spawn(async move {
        // One byte a second: each read is quick, the whole head is not.
        for b in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: yes\r\n\r\n" {
            wr.write_all(&[*b]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        wr
    });
    let start = Instant::now();
    let served = tokio::spawn(conn.read_request());
    // First byte at once, then five seconds for the rest: then 408
    // (RFC 9110 §15.5.9), and the connection closes.
    let mut answer = Vec::new();
    rd.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert_eq!(secs(start), 5);
    let err = served.await.unwrap().unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout);
    drip.abort();
}

#[tokio::test(start_paused = true)]
async fn idle_keepalive_connection_closes_quietly() {
    let (conn, mut client) = server(4096);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut s = conn.read_request().await.unwrap().unwrap();
    let mut resp = ResponseHeader::build(204, None).unwrap();
    resp.insert_header("X", "y").unwrap();
    s.write_response_header(resp).await.unwrap();
    s.finish_response(None).await.unwrap();
    let conn = s.reuse().await.unwrap();
    let start = Instant::now();
    assert!(conn.read_request().await.unwrap().is_none());
    assert_eq!(secs(start), 7);
}

#[tokio::test(start_paused = true)]
async fn stalled_body_hits_body_timeout_and_gets_408() {
    let app = Arc::new(HttpServer::new(EchoApp).with_config(config()));
    let (mut client, server) = tokio::io::duplex(4096);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { app.process_new(Box::new(server), &rx).await });
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
        .await
        .unwrap();
    let start = Instant::now();
    let mut out = String::new();
    client.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    // 11 s of body timeout, then up to 2 s of lingering before the close.
    assert!((11..=13).contains(&secs(start)), "{}", secs(start));
    assert!(task.await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn client_that_never_reads_hits_write_timeout() {
    let (conn, mut client) = server(64);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut s = conn.read_request().await.unwrap().unwrap();
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", "100000").unwrap();
    s.write_response_header(resp).await.unwrap();
    let start = Instant::now();
    let err = s.write_body(&[b'x'; 100_000]).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::WriteTimedout);
    assert_eq!(secs(start), 13);
    assert!(!s.will_keepalive());
}

#[tokio::test(start_paused = true)]
async fn upstream_timeouts() {
    let (ours, mut upstream) = tokio::io::duplex(4096);
    let mut c = ClientSession::new(Box::new(ours), config());
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Host", "up").unwrap();
    c.write_request_header(req).await.unwrap();
    let start = Instant::now();
    let err = c.read_final_response_header().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout);
    assert_eq!(secs(start), 5);

    let (ours, mut upstream2) = tokio::io::duplex(4096);
    let mut c = ClientSession::new(Box::new(ours), config());
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Host", "up").unwrap();
    c.write_request_header(req).await.unwrap();
    upstream2
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    c.read_final_response_header().await.unwrap();
    assert_eq!(&c.read_body_bytes().await.unwrap().unwrap()[..], b"abc");
    let start = Instant::now();
    let err = c.read_body_bytes().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout);
    assert_eq!(secs(start), 11);
    assert!(c.reuse().is_none());
    upstream.shutdown().await.unwrap();
}
