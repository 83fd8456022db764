//! Graceful shutdown of the plain HTTP server app under keep-alive load:
//! from the shutdown signal on, answers say `Connection: close`, a
//! request already sent is served, idle connections close with a FIN, and
//! no request is lost. (The proxy's own test is in
//! `pingora-proxy/tests/shutdown.rs`.)

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

#[path = "../../test-support/keepalive_load.rs"]
mod load;
mod support_h2;

use load::Load;
use pingora_core::apps::http_app::{HelloApp, HttpServer};
use pingora_core::protocols::http::v1::DRAIN_IDLE_WAIT;
use support_h2::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn hello() -> TestServer {
    TestServer::start(HttpServer::new(HelloApp).with_h2c(true), None).await
}

/// Eight clients send requests back to back on keep-alive connections
/// while the server begins to shut down, and go on through the grace
/// period on new connections: every request sent gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_lost_across_shutdown_under_keepalive_load() {
    let server = hello().await;
    let load = Load::start(server.addr, 8);
    assert!(load.wait_for_answers(400).await, "no load");
    server.shutdown();
    let went_on = load.wait_for_answers(400).await;
    let report = load.finish().await;
    // From the signal on, each answer closes its connection.
    report.assert_none_lost(went_on, 400);
}

/// `GET /` and its whole answer on `tcp`; the answer's head.
async fn get(tcp: &mut TcpStream) -> String {
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed without an answer: {got:?}");
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n")
                && body.len() >= "Hello, world!\n".len()
            {
                return head.to_ascii_lowercase();
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.unwrap()
}

/// The next request on an idle kept-alive connection, sent just as the
/// shutdown begins, is served with `Connection: close`; an idle one that
/// stays silent is closed with a FIN after the drain wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_the_signal_are_served_and_idle_connections_end_cleanly() {
    for _ in 0..3 {
        let server = hello().await;
        let mut busy = TcpStream::connect(server.addr).await.unwrap();
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        assert!(!get(&mut busy).await.contains("connection: close"));
        assert!(!get(&mut idle).await.contains("connection: close"));
        let start = tokio::time::Instant::now();
        server.shutdown();
        assert!(get(&mut busy).await.contains("connection: close"));
        let mut rest = [0u8; 16];
        for tcp in [&mut busy, &mut idle] {
            let end = tokio::time::timeout(WAIT, tcp.read(&mut rest)).await;
            assert_eq!(end.unwrap().unwrap(), 0);
        }
        let took = start.elapsed();
        assert!(took >= DRAIN_IDLE_WAIT / 2, "closed after {took:?}");
    }
}
