//! Shared helpers of the http1_* integration tests: in-process servers on
//! 127.0.0.1:0 or over in-memory pipes, and a raw-bytes client.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::L4Stream;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Every real-time network wait in these tests is bounded by this, so a
/// bug shows up as a failure, not a hang.
pub const WAIT: Duration = Duration::from_secs(10);

/// Serve `app` on a fresh loopback port; returns its address. The server
/// lives as long as the test's runtime.
pub async fn serve_tcp<A: ServerApp + Send + Sync + 'static>(app: A) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Arc::new(app);
    tokio::spawn(async move {
        let (_tx, shutdown) = watch::channel(false);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let app = app.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let stream: Stream = Box::new(L4Stream::from_tcp(tcp));
                app.process_new(stream, &shutdown).await;
            });
        }
    });
    addr
}

/// Serve a [`ServeHttp`] app on a fresh loopback port.
pub async fn serve_http<S: ServeHttp>(app: S) -> SocketAddr {
    serve_tcp(HttpServer::new(app)).await
}

/// Serve `app` on one end of an in-memory pipe; returns the other end.
pub fn serve_pipe<A: ServerApp + Send + Sync + 'static>(app: A) -> DuplexStream {
    let (client, server) = tokio::io::duplex(1 << 20);
    let app = Arc::new(app);
    tokio::spawn(async move {
        let (_tx, shutdown) = watch::channel(false);
        app.process_new(Box::new(server), &shutdown).await;
    });
    client
}

/// Connect, send `bytes`, and read until the server closes (bounded by
/// [`WAIT`]). The write side stays open, so only the server can end it.
pub async fn exchange_tcp(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    read_to_close(&mut tcp).await
}

/// Read until the peer closes, bounded by [`WAIT`]; panics on a hang.
pub async fn read_to_close<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "peer did not close: got {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// Read until `out` holds `count` complete responses with Content-Length
/// bodies, bounded by [`WAIT`].
pub async fn read_responses<S: AsyncReadExt + Unpin>(s: &mut S, count: usize) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 8192];
        while complete_responses(&out) < count {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "responses did not arrive: {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

fn complete_responses(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        if bytes.len() < end + 4 + len {
            break;
        }
        bytes = &bytes[end + 4 + len..];
        n += 1;
    }
    n
}

/// The status codes of every response in `out`, in order.
pub fn statuses(out: &str) -> Vec<u16> {
    out.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| out.get(i + 9..i + 12)?.parse().ok())
        .collect()
}
