//! The HTTP/1 server side end to end, over pipes and loopback sockets:
//! limits, keep-alive, pipelining, 100-continue, bodiless statuses,
//! trailers and upgrades.

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http1_support;

use async_trait::async_trait;
use http1_support::{
    WAIT, exchange_tcp, read_responses, read_to_close, serve_http, serve_pipe, serve_tcp, statuses,
};
use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::{
    EchoApp, HelloApp, HttpRequest, HttpResponse, HttpServer, ServeHttp,
};
use pingora_core::header::ResponseHeader;
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::v1::{H1Config, ServerConnection};
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn hello_over_loopback() {
    let addr = serve_http(HelloApp).await;
    let out = exchange_tcp(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Connection: close\r\n"));
    assert!(out.ends_with("\r\n\r\nHello, world!\n"), "{out}");
}

#[tokio::test]
async fn oversized_head_gets_431() {
    let addr = serve_http(EchoApp).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let out = exchange_tcp(addr, big.as_bytes()).await;
    assert_eq!(statuses(&out), [431], "{out}");
    // Too many fields is 431 too.
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let out = exchange_tcp(addr, many.as_bytes()).await;
    assert_eq!(statuses(&out), [431], "{out}");
}

#[tokio::test]
async fn long_request_line_gets_414() {
    let addr = serve_http(EchoApp).await;
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(10_000));
    let out = exchange_tcp(addr, long.as_bytes()).await;
    assert_eq!(statuses(&out), [414], "{out}");
    // Even when the line never ends.
    let out = exchange_tcp(addr, "G".repeat(9000).as_bytes()).await;
    assert_eq!(statuses(&out), [414], "{out}");
}

#[tokio::test]
async fn limits_are_configurable() {
    let mut config = H1Config::default();
    config.max_header_bytes = 200;
    let mut client = serve_pipe(HttpServer::new(EchoApp).with_config(config));
    let req = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "b".repeat(200)
    );
    client.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(statuses(&read_to_close(&mut client).await), [431]);
}

#[tokio::test]
async fn malformed_gets_400() {
    let addr = serve_http(EchoApp).await;
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"[..],
        b"GET / HTTP/1.\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        b"GET\r\n\r\n",
    ] {
        let out = exchange_tcp(addr, bad).await;
        assert_eq!(statuses(&out), [400], "{out}");
    }
}

#[tokio::test]
async fn other_major_versions_get_505() {
    let addr = serve_http(EchoApp).await;
    for bad in [
        &b"GET / HTTP/9.9\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    ] {
        let out = exchange_tcp(addr, bad).await;
        assert_eq!(statuses(&out), [505], "{out}");
    }
}

#[tokio::test]
async fn pipelined_requests_answered_in_order() {
    let addr = serve_http(EchoApp).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut reqs = String::new();
    for i in 0..20 {
        reqs.push_str(&format!(
            "POST /{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\nbody{i}",
            4 + i.to_string().len()
        ));
    }
    // One write: all requests arrive together.
    tcp.write_all(reqs.as_bytes()).await.unwrap();
    let out = read_responses(&mut tcp, 20).await;
    let mut at = 0;
    for i in 0..20 {
        let uri = format!("X-Echo-Uri: /{i}\r\n");
        let found = out[at..]
            .find(&uri)
            .unwrap_or_else(|| panic!("{i} missing: {out}"));
        at += found;
        assert!(out[at..].contains(&format!("body{i}")));
    }
}

#[tokio::test]
async fn keepalive_rules_by_version() {
    let addr = serve_http(HelloApp).await;
    // 1.1 persists by default: two requests on one connection.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let out = read_responses(&mut tcp, 1).await;
        assert!(!out.contains("Connection: close"), "{out}");
    }
    // 1.0 closes by default.
    let out = exchange_tcp(addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(statuses(&out), [200]);
    assert!(out.contains("Connection: close\r\n"));
    // 1.0 with keep-alive persists and says so.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        tcp.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let out = read_responses(&mut tcp, 1).await;
        assert!(out.contains("Connection: keep-alive\r\n"), "{out}");
    }
    // 1.1 with close: answered, then closed.
    let out = exchange_tcp(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&out), [200]);
}

#[tokio::test]
async fn expect_continue() {
    let addr = serve_http(EchoApp).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    tcp.write_all(b"hello").await.unwrap();
    let out = read_responses(&mut tcp, 1).await;
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("hello"),
        "{out}"
    );
}

/// Answers with the status named by the path, and a body it must not send
/// for bodiless statuses.
struct StatusApp;

#[async_trait]
impl ServeHttp for StatusApp {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let status = request.header().uri().path()[1..].parse().unwrap_or(500);
        HttpResponse::text(status, "must not be sent")
    }
}

#[tokio::test]
async fn head_204_304_have_no_body() {
    let addr = serve_http(StatusApp).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"HEAD /200 HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /200 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let out = read_to_close(&mut tcp).await;
    assert_eq!(statuses(&out), [200, 204, 304, 200], "{out}");
    assert_eq!(out.matches("must not be sent").count(), 1, "{out}");
    // HEAD keeps the length it would have had; 204 has none.
    assert!(out.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 16\r\n\r\nHTTP/1.1 204"), "{out}");
    assert!(
        out.contains("204 No Content\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"),
        "{out}"
    );
}

#[tokio::test]
async fn chunked_request_and_response_with_trailers() {
    let mut client = serve_pipe(HttpServer::new(EchoApp));
    client
        .write_all(
            b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              5;ext=1\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n",
        )
        .await
        .unwrap();
    let out = read_to_close(&mut client).await;
    assert!(out.contains("Transfer-Encoding: chunked\r\n"), "{out}");
    assert!(
        out.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n"),
        "{out}"
    );
}

#[tokio::test]
async fn body_over_limit_gets_413() {
    let mut client = serve_pipe(HttpServer::new(EchoApp).with_max_request_body(4));
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
        .await
        .unwrap();
    assert_eq!(statuses(&read_to_close(&mut client).await), [413]);
}

/// Answers without reading the body: the server drains small bodies to keep
/// the connection, and closes on large ones.
struct NoRead;

#[async_trait]
impl ServerApp for NoRead {
    async fn process_new(self: &Arc<Self>, stream: Stream, _: &ShutdownWatch) -> Option<Stream> {
        let mut config = H1Config::default();
        config.max_drain_bytes = 100;
        let mut conn = ServerConnection::new(stream, config);
        while let Ok(Some(mut s)) = conn.read_request().await {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.insert_header("Content-Length", "2").unwrap();
            s.write_response_header(resp).await.ok()?;
            s.write_body(b"ok").await.ok()?;
            s.finish_response(None).await.ok()?;
            conn = s.reuse().await?;
        }
        None
    }
}

#[tokio::test]
async fn unread_body_is_drained_or_closed() {
    let addr = serve_tcp(NoRead).await;
    let small = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
    let out = exchange_tcp(
        addr,
        format!("{small}{small}GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(statuses(&out), [200, 200, 200]);
    let big = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n{}",
        "x".repeat(1000)
    );
    let out = exchange_tcp(addr, format!("{big}{small}").as_bytes()).await;
    assert_eq!(statuses(&out), [200]);
}

/// Accepts websocket-style upgrades and echoes raw bytes back, upper-cased.
struct UpgradeApp;

#[async_trait]
impl ServerApp for UpgradeApp {
    async fn process_new(self: &Arc<Self>, stream: Stream, _: &ShutdownWatch) -> Option<Stream> {
        let conn = ServerConnection::new(stream, H1Config::default());
        let mut s = conn.read_request().await.ok()??;
        assert!(s.is_upgrade_request());
        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.insert_header("Upgrade", "websocket").unwrap();
        resp.insert_header("Connection", "Upgrade").unwrap();
        s.write_response_header(resp).await.ok()?;
        assert!(s.is_upgraded());
        while let Ok(Some(data)) = s.read_body_bytes().await {
            s.write_body(&data.to_ascii_uppercase()).await.ok()?;
        }
        None
    }
}

#[tokio::test]
async fn upgrade_passes_raw_bytes_both_ways() {
    let addr = serve_tcp(UpgradeApp).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // Bytes sent right behind the head belong to the new protocol.
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nfirst ",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let want = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nFIRST ";
    while got.len() < want.len() {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n not http any more")
        .await
        .unwrap();
    tcp.shutdown().await.unwrap();
    let rest = read_to_close(&mut tcp).await;
    assert_eq!(rest, "GET / HTTP/1.1\r\n\r\n NOT HTTP ANY MORE");
}

#[tokio::test]
async fn shutdown_closes_idle_connections() {
    let (client, server) = tokio::io::duplex(4096);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let app = Arc::new(HttpServer::new(HelloApp));
    let task = tokio::spawn(async move { app.process_new(Box::new(server), &rx).await });
    let mut client = client;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    read_responses(&mut client, 1).await;
    tx.send(true).unwrap();
    assert!(
        tokio::time::timeout(WAIT, task)
            .await
            .unwrap()
            .unwrap()
            .is_none()
    );
}

/// Panics on `/panic`, echoes otherwise.
struct Panicky;

#[async_trait]
impl ServeHttp for Panicky {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        if request.header().uri().path() == "/panic" {
            panic!("app bug");
        }
        HttpResponse::text(200, "fine")
    }
}

#[tokio::test]
async fn a_panicking_app_costs_one_request() {
    let addr = serve_http(Panicky).await;
    let out = exchange_tcp(addr, b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n").await;
    // A 500, and the connection closes (exchange_tcp reads to the end).
    assert_eq!(statuses(&out), [500], "{out}");
    let out = exchange_tcp(
        addr,
        b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.ends_with("\r\n\r\nfine"), "{out}");
}
