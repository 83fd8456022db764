//! `Connection` cannot nominate the fields that route and frame a message
//! (`Host`, `Content-Length`): a token naming them is ignored, on the
//! request and on the response path; other named fields still go.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct To(SocketAddr);

impl ProxyHttp for To {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }
}

/// Echoes the body, and reports the Host, Content-Length and `X-Hop`
/// fields it received in `x-seen-*` fields (`-` when absent).
struct Report;

#[async_trait]
impl ServeHttp for Report {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let req = request.header();
        let mut resp = HttpResponse::text(200, request.body().clone());
        for name in ["host", "content-length", "x-hop"] {
            let seen = req.headers().get(name).cloned();
            let seen = seen.unwrap_or_else(|| http::HeaderValue::from_static("-"));
            resp.header_mut()
                .insert_header(format!("x-seen-{name}"), seen)
                .unwrap();
        }
        resp
    }
}

/// Send raw `request` to `addr`, read until the server closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let run = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).to_ascii_lowercase()
    };
    tokio::time::timeout(WAIT, run).await.expect("timed out")
}

#[tokio::test]
async fn connection_cannot_take_host_or_the_body_length_from_the_origin() {
    let origin = start_origin(Report).await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let resp = raw(
        proxy.addr,
        b"POST /upload HTTP/1.1\r\nHost: test.local\r\n\
          Connection: Host, Content-Length, close, X-Hop\r\n\
          Content-Length: 5\r\nX-Hop: 1\r\n\r\nhello",
    )
    .await;
    assert!(resp.starts_with("http/1.1 200"), "{resp}");
    // The origin got the client's Host and the body with its length.
    assert!(resp.contains("x-seen-host: test.local\r\n"), "{resp}");
    assert!(resp.contains("x-seen-content-length: 5\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nhello"), "{resp}");
    // A field `Connection` may name still goes.
    assert!(resp.contains("x-seen-x-hop: -\r\n"), "{resp}");
}

#[tokio::test]
async fn connection_naming_transfer_encoding_keeps_a_chunked_body() {
    let origin = start_origin(Report).await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let resp = raw(
        proxy.addr,
        b"POST / HTTP/1.1\r\nHost: test.local\r\nConnection: transfer-encoding, close\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("http/1.1 200"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nhello"), "{resp}");
}

#[tokio::test]
async fn connection_cannot_take_the_length_from_a_response() {
    // An origin whose response names its own Content-Length in
    // `Connection`.
    let origin = serve_fn(|mut stream, _| async move {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\
            Connection: Content-Length, Host, X-Hop\r\nX-Hop: 1\r\nHost: origin\r\n\r\nhello";
        stream.write_all(resp).await.unwrap();
        let _ = stream.read(&mut byte).await;
    })
    .await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let mut c = client(proxy.addr).await;
    let resp = exchange(&mut c, request("GET", "/"), b"").await;
    assert_eq!((resp.status, &resp.body[..]), (200, &b"hello"[..]));
    assert_eq!(resp.headers["content-length"], "5");
    assert!(!resp.headers.contains_key("transfer-encoding"));
    assert_eq!(resp.headers["host"], "origin");
    assert!(!resp.headers.contains_key("x-hop"));
}
