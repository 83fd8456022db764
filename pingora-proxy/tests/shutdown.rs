//! Graceful shutdown of the proxy under keep-alive load: from the
//! shutdown signal on, HTTP/1 answers say `Connection: close`, HTTP/2
//! connections get a two-step GOAWAY, a request already sent is served,
//! and idle connections close with a FIN; no request is lost.
//!
//! The signal is the one the services hand their apps (the listening
//! service's `draining` watch, which turns `true` at SIGTERM); the test
//! listener goes on accepting meanwhile, as the real one does for the
//! grace period.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

#[path = "../../pingora-core/tests/support_h2/frames.rs"]
#[allow(dead_code)] // this file uses some of the helpers
mod frames;
#[path = "../../test-support/keepalive_load.rs"]
mod load;

use std::net::SocketAddr;

use frames::{END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, frame, read_frame};
use load::Load;
use pingora_core::apps::http_app::HelloApp;
use pingora_core::protocols::http::v1::DRAIN_IDLE_WAIT;
use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use support::{Running, WAIT, serve_app, start_origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct ToOrigin(SocketAddr);

impl ProxyHttp for ToOrigin {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }
}

/// A hello origin and a proxy (HTTP/1 and h2c) in front of it.
async fn setup() -> (Running, Running) {
    let origin = start_origin(HelloApp).await;
    let proxy = HttpProxy::new(ToOrigin(origin.addr), &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    (origin, serve_app(proxy).await)
}

/// Eight clients send requests back to back on keep-alive connections
/// while the proxy begins to shut down, and go on (on new connections, as
/// each answer tells them) through the grace period: every request sent
/// gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_lost_across_shutdown_under_keepalive_load() {
    let (_origin, proxy) = setup().await;
    let load = Load::start(proxy.addr, 8);
    assert!(load.wait_for_answers(400).await, "no load");
    proxy.shutdown();
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
/// shutdown begins, is served and told the connection closes; then the
/// connection closes with a FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_at_the_signal_is_served_with_close() {
    for _ in 0..10 {
        let (_origin, proxy) = setup().await;
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        let head = get(&mut tcp).await;
        assert!(!head.contains("connection: close"), "{head}");
        proxy.shutdown();
        let head = get(&mut tcp).await;
        assert!(head.contains("connection: close"), "{head}");
        let mut rest = [0u8; 16];
        let end = tokio::time::timeout(WAIT, tcp.read(&mut rest)).await;
        assert_eq!(end.unwrap().unwrap(), 0);
    }
}

/// A kept-alive connection that stays silent is closed once the drain
/// wait passes, with a FIN (a clean end of stream), not a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_with_a_fin() {
    let (_origin, proxy) = setup().await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    get(&mut tcp).await;
    let start = tokio::time::Instant::now();
    proxy.shutdown();
    let mut rest = [0u8; 16];
    let end = tokio::time::timeout(WAIT, tcp.read(&mut rest)).await;
    assert_eq!(end.unwrap().unwrap(), 0);
    let took = start.elapsed();
    assert!(took >= DRAIN_IDLE_WAIT / 2, "closed after {took:?}");
}

/// An HTTP/2 client is told at the signal with GOAWAY(2^31-1) and a PING
/// (RFC 9113 §6.8); a stream it opens before answering the PING is still
/// served, and the final GOAWAY names it as the last one processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_gets_a_two_step_goaway_and_late_streams_are_served() {
    let (_origin, proxy) = setup().await;
    let mut tcp = frames::raw_client(proxy.addr).await;
    let get = |stream: u32| {
        frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            stream,
            &frames::get_block(),
        )
    };
    tcp.write_all(&get(1)).await.unwrap();
    let mut ended = Vec::new();
    while !ended.contains(&1) {
        let f = read_frame(&mut tcp, WAIT).await.expect("an answer on 1");
        ack_settings(&mut tcp, &f).await;
        if f.stream == 1 && f.flags & END_STREAM != 0 {
            ended.push(1);
        }
    }
    proxy.shutdown();
    let first = loop {
        let f = read_frame(&mut tcp, WAIT).await.expect("a GOAWAY");
        ack_settings(&mut tcp, &f).await;
        if f.kind == GOAWAY {
            break last_stream(&f);
        }
    };
    assert_eq!(first, 0x7fff_ffff);
    let ping = loop {
        let f = read_frame(&mut tcp, WAIT).await.expect("a PING");
        if f.kind == PING && f.flags & frames::ACK == 0 {
            break f.payload;
        }
    };
    // A request already on its way when the GOAWAY left.
    tcp.write_all(&get(3)).await.unwrap();
    tcp.write_all(&frame(PING, frames::ACK, 0, &ping))
        .await
        .unwrap();
    let mut last = None;
    while !(ended.contains(&3) && last.is_some()) {
        let f = read_frame(&mut tcp, WAIT).await.unwrap_or_else(|| {
            panic!(
                "stream 3 answered: {}, final GOAWAY: {last:?}",
                ended.contains(&3)
            )
        });
        if f.kind == GOAWAY {
            last = Some(last_stream(&f));
        } else if f.stream == 3 && f.flags & END_STREAM != 0 {
            assert_ne!(f.kind, frames::RST_STREAM);
            ended.push(3);
        }
    }
    assert_eq!(last, Some(3));
}

fn last_stream(goaway: &frames::Frame) -> u32 {
    let p = &goaway.payload;
    u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff
}

async fn ack_settings(tcp: &mut TcpStream, f: &frames::Frame) {
    if f.kind == frames::SETTINGS && f.flags & frames::ACK == 0 {
        let ack = frame(frames::SETTINGS, frames::ACK, 0, &[]);
        tcp.write_all(&ack).await.unwrap();
    }
}
