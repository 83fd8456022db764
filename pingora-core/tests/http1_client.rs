//! The HTTP/1 client side against our own server over loopback, and
//! against hostile upstreams that send conflicting framing.

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http1_support;

use http::header::HeaderMap;
use http1_support::{WAIT, serve_http};
use pingora_core::apps::http_app::EchoApp;
use pingora_core::header::RequestHeader;
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::v1::{ClientSession, H1Config};
use pingora_core::protocols::l4::L4Stream;
use pingora_core::{ErrorSource, ErrorType, Result};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn connect(addr: SocketAddr) -> Stream {
    Box::new(L4Stream::from_tcp(TcpStream::connect(addr).await.unwrap()))
}

fn request(method: &str, path: &str) -> RequestHeader {
    let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
    req.insert_header("Host", "origin").unwrap();
    req
}

async fn body(c: &mut ClientSession) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = tokio::time::timeout(WAIT, c.read_body_bytes())
        .await
        .unwrap()?
    {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

#[tokio::test]
async fn requests_reuse_one_connection() {
    let addr = serve_http(EchoApp).await;
    let mut stream = connect(addr).await;
    for i in 0..3 {
        let mut c = ClientSession::new(stream, H1Config::default());
        let mut req = request("POST", &format!("/{i}"));
        req.insert_header("Content-Length", "5").unwrap();
        c.write_request_header(req).await.unwrap();
        c.write_body(b"hello").await.unwrap();
        c.finish_body(None).await.unwrap();
        let resp = c.read_final_response_header().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-echo-uri"], format!("/{i}").as_str());
        assert_eq!(body(&mut c).await.unwrap(), b"hello");
        stream = c.reuse().expect("keep-alive connection is reusable");
    }
}

#[tokio::test]
async fn streamed_chunked_body_with_trailers_round_trips() {
    let addr = serve_http(EchoApp).await;
    let mut c = ClientSession::new(connect(addr).await, H1Config::default());
    let mut req = request("PUT", "/stream");
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    c.write_request_header(req).await.unwrap();
    for piece in [&b"one "[..], b"two ", b"three"] {
        c.write_body(piece).await.unwrap();
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "42".parse().unwrap());
    c.finish_body(Some(&trailers)).await.unwrap();
    c.read_final_response_header().await.unwrap();
    assert_eq!(body(&mut c).await.unwrap(), b"one two three");
    assert_eq!(c.trailers().unwrap()["x-sum"], "42");
    assert!(c.is_reusable());
}

#[tokio::test]
async fn expect_continue_against_our_server() {
    let addr = serve_http(EchoApp).await;
    let mut c = ClientSession::new(connect(addr).await, H1Config::default());
    let mut req = request("POST", "/");
    req.insert_header("Expect", "100-continue").unwrap();
    req.insert_header("Content-Length", "3").unwrap();
    c.write_request_header(req).await.unwrap();
    let interim = c.read_response_header().await.unwrap();
    assert_eq!(interim.status(), 100);
    c.write_body(b"abc").await.unwrap();
    c.finish_body(None).await.unwrap();
    assert_eq!(c.read_final_response_header().await.unwrap().status(), 200);
    assert_eq!(body(&mut c).await.unwrap(), b"abc");
}

#[tokio::test]
async fn head_has_no_body() {
    let addr = serve_http(EchoApp).await;
    let mut c = ClientSession::new(connect(addr).await, H1Config::default());
    c.write_request_header(request("HEAD", "/")).await.unwrap();
    c.finish_body(None).await.unwrap();
    c.read_final_response_header().await.unwrap();
    assert!(body(&mut c).await.unwrap().is_empty());
    assert!(c.is_reusable());
}

/// An upstream that reads a request head and answers with `script`.
async fn hostile(script: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.write_all(script).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn conflicting_framing_is_an_upstream_error() {
    let cases: &[&'static [u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nabcde",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdefgh\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"garbage\r\n\r\n",
        b"",
    ];
    for script in cases {
        let addr = hostile(script).await;
        let mut c = ClientSession::new(connect(addr).await, H1Config::default());
        c.write_request_header(request("GET", "/")).await.unwrap();
        c.finish_body(None).await.unwrap();
        let res = match tokio::time::timeout(WAIT, c.read_final_response_header())
            .await
            .unwrap()
        {
            Ok(_) => body(&mut c).await.map(drop),
            Err(e) => Err(e),
        };
        let err = res.expect_err(&String::from_utf8_lossy(script));
        assert_eq!(err.esource(), &ErrorSource::Upstream, "{err}");
        assert!(
            matches!(
                err.etype(),
                ErrorType::H1Error | ErrorType::InvalidHTTPHeader | ErrorType::ConnectionClosed
            ),
            "{err}"
        );
        assert!(c.reuse().is_none());
    }
}
