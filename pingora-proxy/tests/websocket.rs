//! Upgrade requests: 101 passes through, then bytes flow both ways.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use pingora_core::header::ResponseHeader;
use pingora_core::protocols::http::v1::{H1Config, ServerConnection};
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Accepts a websocket upgrade and echoes every byte until the client
/// closes.
async fn echo_origin() -> Running {
    serve_fn(|stream, _| async move {
        let conn = ServerConnection::new(stream, H1Config::default());
        let Ok(Some(mut s)) = conn.read_request().await else {
            return;
        };
        assert!(s.is_upgrade_request());
        assert_eq!(s.req_header().headers()["upgrade"], "websocket");
        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.insert_header("Upgrade", "websocket").unwrap();
        resp.insert_header("Connection", "Upgrade").unwrap();
        resp.insert_header("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .unwrap();
        s.write_response_header(resp).await.unwrap();
        while let Ok(Some(data)) = s.read_body_bytes().await {
            if s.write_body(&data).await.is_err() {
                return;
            }
        }
    })
    .await
}

struct To(SocketAddr);

impl ProxyHttp for To {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }
}

/// Read until the end of a response head; returns the head.
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 8192, "head too long");
        let n = tcp.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "closed in the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let origin = echo_origin().await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let handshake = b"GET /chat HTTP/1.1\r\nHost: test.local\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    let run = async {
        tcp.write_all(handshake).await.unwrap();
        let head = read_head(&mut tcp).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: websocket"), "{head}");
        assert!(head.contains("connection: upgrade"), "{head}");
        // A masked text frame "hello" (RFC 6455 §5.7), then a larger
        // binary frame: the tunnel carries frames as opaque bytes.
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        for frame in [&hello[..], &[0x42; 100_000][..]] {
            tcp.write_all(frame).await.unwrap();
            let mut echoed = vec![0u8; frame.len()];
            tcp.read_exact(&mut echoed).await.unwrap();
            assert_eq!(echoed, frame);
        }
        // Closing our side ends the tunnel: the proxy closes its side too.
        tcp.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tcp.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    };
    tokio::time::timeout(WAIT, run)
        .await
        .expect("websocket timed out");
}

#[tokio::test]
async fn refused_upgrade_is_a_plain_response() {
    let origin = start_origin(pingora_core::apps::http_app::HelloApp).await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let mut c = client(proxy.addr).await;
    let mut req = request("GET", "/");
    req.insert_header("Upgrade", "websocket").unwrap();
    req.insert_header("Connection", "Upgrade").unwrap();
    let resp = exchange(&mut c, req, b"").await;
    assert_eq!(
        (resp.status, &resp.body[..]),
        (200, &b"Hello, world!\n"[..])
    );
}
