//! The classic HTTP/2 attacks, played on raw TCP connections: each
//! attacker is cut off within the limits, and a well-behaved client on
//! another connection keeps being served meanwhile.

#![allow(clippy::unwrap_used)]

mod support_h2;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pingora_core::apps::http_app::{EchoApp, HttpServer};
use pingora_core::protocols::http::v2::H2Options;
use support_h2::frames::*;
use support_h2::{TestServer, WAIT, exchange, h2_client};
use tokio::io::AsyncWriteExt;

async fn server(options: H2Options) -> TestServer {
    let app = HttpServer::new(EchoApp)
        .with_h2c(true)
        .with_h2_options(options);
    TestServer::start(app, None).await
}

/// A client that keeps making requests on its own connection until told
/// to stop; returns how many succeeded (and panics on any failure).
fn bystander(addr: SocketAddr) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut client = h2_client(addr).await;
        let served = AtomicUsize::new(0);
        // Bounded both by the flag and by a request cap.
        for _ in 0..10_000 {
            let got = exchange(&mut client, "POST", "/calm", b"ok", None).await;
            assert_eq!(got.status, 200);
            served.fetch_add(1, Ordering::Relaxed);
            if flag.load(Ordering::Relaxed) {
                break;
            }
        }
        served.into_inner()
    });
    (stop, task)
}

/// Write `bytes` on a task (the server may stop reading, which must not
/// block the test), then wait for a GOAWAY and return its code and how
/// long it took.
async fn attack(addr: SocketAddr, bytes: Vec<u8>) -> (Option<u32>, Duration) {
    let tcp = raw_client(addr).await;
    let (mut rd, mut wr) = tcp.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let _ = tokio::time::timeout(WAIT, wr.write_all(&bytes)).await;
        wr
    });
    let code = goaway_code(&mut rd, WAIT).await;
    let took = start.elapsed();
    writer.abort();
    (code, took)
}

/// Run the attack `ROUNDS` times, each on a new connection, while a
/// bystander makes requests; every round must end in a GOAWAY with the
/// same code. Returns that code, the slowest cut-off and how many requests
/// the bystander got answered meanwhile.
async fn run_with_bystander(addr: SocketAddr, bytes: Vec<u8>) -> (Option<u32>, Duration, usize) {
    const ROUNDS: usize = 20;
    let (stop, calm) = bystander(addr);
    // Let the bystander get going first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut codes = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..ROUNDS {
        let (code, took) = attack(addr, bytes.clone()).await;
        codes.push(code);
        slowest = slowest.max(took);
    }
    stop.store(true, Ordering::Relaxed);
    let served = tokio::time::timeout(WAIT, calm).await.unwrap().unwrap();
    assert!(codes.iter().all(|c| *c == codes[0]), "{codes:?}");
    (codes[0], slowest, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off() {
    let server = server(H2Options::default()).await;
    let mut bytes = Vec::new();
    // 10,000 streams opened and cancelled at once (CVE-2023-44487).
    for i in 0..10_000u32 {
        let id = 2 * i + 1;
        bytes.extend(frame(HEADERS, END_HEADERS, id, &get_block()));
        bytes.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let (code, took, served) = run_with_bystander(server.addr, bytes).await;
    println!("rapid reset: goaway {code:?} after {took:?}; bystander served {served}");
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    assert!(served > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_rapid_reset_is_cut_off_by_the_reset_rate() {
    // Requests the app answers before the reset arrives do not count as
    // pending-accept resets; the RST_STREAM rate limit still catches them.
    let mut options = H2Options::default();
    options.reset_limit =
        pingora_core::protocols::http::v2::FrameRate::new(50, Duration::from_secs(10));
    options.max_pending_accept_reset_streams = 10_000;
    let server = server(options).await;
    let tcp = raw_client(server.addr).await;
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..200u32 {
            let id = 2 * i + 1;
            let mut b = frame(HEADERS, END_HEADERS | END_STREAM, id, &get_block());
            b.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
            if wr.write_all(&b).await.is_err() {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        200
    });
    let code = goaway_code(&mut rd, WAIT).await;
    let sent = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    println!("slow rapid reset: goaway {code:?}; attacker sent {sent} pairs");
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_cut_off() {
    let server = server(H2Options::default()).await;
    // A header block that never ends: HEADERS without END_HEADERS, then
    // empty CONTINUATION frames forever (the 2024 flood).
    let mut bytes = frame(HEADERS, 0, 1, &get_block());
    for _ in 0..100_000 {
        bytes.extend(frame(CONTINUATION, 0, 1, &[]));
    }
    let (code, took, served) = run_with_bystander(server.addr, bytes).await;
    println!("continuation flood: goaway {code:?} after {took:?}; bystander served {served}");
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    assert!(served > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_block_far_over_the_limit_closes_the_connection() {
    let server = server(H2Options::default()).await;
    // 1 MiB of header in 16 KiB frames, against a 64 KiB limit.
    let mut block = get_block();
    block.extend(big_field(1024 * 1024));
    let mut chunks = block.chunks(16_384).peekable();
    let mut bytes = frame(HEADERS, 0, 1, chunks.next().unwrap());
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        bytes.extend(frame(CONTINUATION, flags, 1, chunk));
    }
    let (code, took, served) = run_with_bystander(server.addr, bytes).await;
    println!("oversized header block: goaway {code:?} after {took:?}; bystander served {served}");
    assert!(
        code.is_some_and(|c| c != 0),
        "closed with an error code: {code:?}"
    );
    assert!(served > 0);
}

#[tokio::test]
async fn header_list_slightly_over_the_limit_refuses_only_that_stream() {
    let mut options = H2Options::default();
    options.max_header_list_size = 4096;
    let server = server(options).await;
    let mut tcp = raw_client(server.addr).await;
    let mut block = get_block();
    block.extend(big_field(6000));
    let mut bytes = frame(HEADERS, END_HEADERS | END_STREAM, 1, &block);
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &get_block()));
    tcp.write_all(&bytes).await.unwrap();
    let mut answered = Vec::new();
    while answered.len() < 2 {
        let f = read_frame(&mut tcp, WAIT)
            .await
            .expect("server answers both streams");
        assert_ne!(f.kind, GOAWAY, "the connection must stay up");
        if f.kind == HEADERS || f.kind == RST_STREAM {
            answered.push((f.stream, f.kind));
        }
    }
    // Stream 1 is refused (431 head or RST_STREAM); stream 3 is served.
    assert!(answered.iter().any(|&(s, _)| s == 1));
    assert!(answered.contains(&(3, HEADERS)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_is_cut_off() {
    let server = server(H2Options::default()).await;
    let mut bytes = Vec::new();
    for i in 0..100_000u64 {
        bytes.extend(frame(PING, 0, 0, &i.to_be_bytes()));
    }
    let (code, took, served) = run_with_bystander(server.addr, bytes).await;
    println!("ping flood: goaway {code:?} after {took:?}; bystander served {served}");
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    assert!(served > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_flood_is_cut_off() {
    let server = server(H2Options::default()).await;
    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        // SETTINGS_ENABLE_PUSH = 0, over and over.
        bytes.extend(frame(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 0]));
    }
    let (code, took, served) = run_with_bystander(server.addr, bytes).await;
    println!("settings flood: goaway {code:?} after {took:?}; bystander served {served}");
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    assert!(served > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_data_flood_is_cut_off() {
    let server = server(H2Options::default()).await;
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &get_block());
    for _ in 0..100_000 {
        bytes.extend(frame(DATA, 0, 1, &[]));
    }
    let (code, _, served) = run_with_bystander(server.addr, bytes).await;
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    assert!(served > 0);
}

#[tokio::test]
async fn a_stream_opened_and_never_finished_times_out() {
    let mut options = H2Options::default();
    options.stream_read_timeout = Duration::from_millis(200);
    let server = server(options).await;
    let mut tcp = raw_client(server.addr).await;
    // A request that promises a body and never sends it.
    let start = Instant::now();
    tcp.write_all(&frame(HEADERS, END_HEADERS, 1, &get_block()))
        .await
        .unwrap();
    loop {
        let f = read_frame(&mut tcp, WAIT)
            .await
            .expect("the stream is answered");
        if f.stream == 1 && (f.kind == HEADERS || f.kind == RST_STREAM) {
            break;
        }
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The connection itself still serves new streams.
    tcp.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &get_block()))
        .await
        .unwrap();
    loop {
        let f = read_frame(&mut tcp, WAIT)
            .await
            .expect("stream 3 is answered");
        if f.stream == 3 && f.kind == HEADERS {
            break;
        }
    }
}

#[tokio::test]
async fn an_idle_connection_gets_goaway() {
    let mut options = H2Options::default();
    options.idle_timeout = Duration::from_millis(200);
    let server = server(options).await;
    let mut tcp = raw_client(server.addr).await;
    assert_eq!(goaway_code(&mut tcp, WAIT).await, Some(0));
}

#[tokio::test]
async fn a_silent_handshake_is_dropped() {
    let mut options = H2Options::default();
    options.handshake_timeout = Duration::from_millis(200);
    let server = server(options).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&PREFACE[..10]).await.unwrap();
    // The server gives up: EOF (or reset) instead of waiting forever.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, async {
        use tokio::io::AsyncReadExt;
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "connection closed within the timeout");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_dropped() {
    let mut options = H2Options::default();
    options.keepalive_interval = Some(Duration::from_millis(100));
    options.keepalive_timeout = Duration::from_millis(100);
    let server = server(options).await;
    let mut tcp = raw_client(server.addr).await;
    let start = Instant::now();
    let mut pinged = false;
    let code = loop {
        let Some(f) = read_frame(&mut tcp, WAIT).await else {
            break None;
        };
        if f.kind == PING && f.flags & ACK == 0 {
            // Seen, and deliberately not answered.
            pinged = true;
        }
        if f.kind == GOAWAY {
            break Some(u32::from_be_bytes(f.payload[4..8].try_into().unwrap()));
        }
    };
    assert!(pinged, "the server pinged first");
    assert_eq!(code, Some(0));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

/// Answers after a long delay, so handlers outlive their streams.
struct Sluggish;

#[async_trait::async_trait]
impl pingora_core::apps::http_app::ServeHttp for Sluggish {
    async fn response(
        &self,
        _request: pingora_core::apps::http_app::HttpRequest,
    ) -> pingora_core::apps::http_app::HttpResponse {
        tokio::time::sleep(Duration::from_secs(2)).await;
        pingora_core::apps::http_app::HttpResponse::text(200, "late\n")
    }
}

#[tokio::test]
async fn reset_streams_do_not_pile_up_handlers() {
    let mut options = H2Options::default();
    options.max_concurrent_streams = 4;
    let app = HttpServer::new(Sluggish)
        .with_h2c(true)
        .with_h2_options(options);
    let server = TestServer::start(app, None).await;
    let tcp = raw_client(server.addr).await;
    let (mut rd, mut wr) = tcp.into_split();
    // Open and cancel streams one at a time, each after the server took
    // it: the protocol limit never trips, the handlers keep running.
    for i in 0..10u32 {
        let id = 2 * i + 1;
        wr.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, id, &get_block()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        wr.write_all(&frame(RST_STREAM, 0, id, &8u32.to_be_bytes()))
            .await
            .unwrap();
    }
    // Streams past the four running handlers are refused.
    let refused = loop {
        let f = read_frame(&mut rd, WAIT).await.expect("a refusal arrives");
        if f.kind == RST_STREAM && f.payload == 7u32.to_be_bytes() {
            break f.stream;
        }
    };
    assert!(refused >= 9, "stream {refused} refused");
}
