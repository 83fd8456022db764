//! HTTP/2 through the proxy, frame by frame, with a raw client: where
//! END_STREAM lands (a response that ends with its head stays one HEADERS
//! frame, trailers stay trailers) and which side wins when a client's
//! request stream is malformed while a fast origin already answered.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

#[path = "../../pingora-core/tests/support_h2/frames.rs"]
#[allow(dead_code)] // this file uses some of the helpers
mod frames;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use frames::{DATA, END_HEADERS, END_STREAM, Frame, HEADERS, RST_STREAM, frame, read_frame};
use pingora_core::server::ServerConf;
use pingora_core::tls::Alpn;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use support::{Running, WAIT, serve_app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// PROTOCOL_ERROR (RFC 9113 §7).
const PROTOCOL_ERROR: u32 = 0x1;

/// Sends everything to one origin, speaking `alpn` to it.
struct ToOrigin {
    addr: SocketAddr,
    alpn: Alpn,
}

impl ProxyHttp for ToOrigin {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.addr, false, "");
        peer.options.alpn = self.alpn;
        Ok(Box::new(peer))
    }
}

async fn proxy_to(addr: SocketAddr, alpn: Alpn) -> Running {
    let proxy = HttpProxy::new(ToOrigin { addr, alpn }, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    serve_app(proxy).await
}

// === origins ===

/// How an origin answers, by request path.
fn grpc_head(status: &str) -> http::Response<()> {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .header("grpc-status", status)
        .body(())
        .unwrap()
}

fn grpc_trailers(status: &str) -> http::HeaderMap {
    let mut t = http::HeaderMap::new();
    t.insert("grpc-status", status.parse().unwrap());
    t
}

/// An HTTP/2 origin (h2c) built on the `h2` crate, so its frames are
/// exactly the ones named here:
/// - `/trailers-only`: one HEADERS with END_STREAM (gRPC
///   PERMISSION_DENIED, 7);
/// - `/headers-trailers`: HEADERS, then trailers, no DATA;
/// - `/body-trailers`: HEADERS, DATA, trailers;
/// - anything else: a whole response at once, without reading the
///   request body.
async fn h2_origin() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let path = req.uri().path().to_owned();
                    let _ = match path.as_str() {
                        "/trailers-only" => respond.send_response(grpc_head("7"), true).map(drop),
                        "/headers-trailers" => {
                            let head = http::Response::new(());
                            respond
                                .send_response(head, false)
                                .and_then(|mut out| out.send_trailers(grpc_trailers("0")))
                        }
                        "/body-trailers" => {
                            let head = http::Response::new(());
                            respond.send_response(head, false).and_then(|mut out| {
                                out.send_data(Bytes::from_static(b"abc"), false)?;
                                out.send_trailers(grpc_trailers("0"))
                            })
                        }
                        _ => {
                            let head = http::Response::new(());
                            respond.send_response(head, false).and_then(|mut out| {
                                out.send_data(Bytes::from_static(b"early"), true)
                            })
                        }
                    };
                    // Keep the request body unread: the answer came first.
                    tokio::spawn(async move {
                        let _keep = req;
                        tokio::time::sleep(WAIT).await;
                    });
                }
            });
        }
    });
    (addr, task)
}

/// An HTTP/1 origin answering each connection's first request as soon
/// as its head is in, without reading any body, then closing:
/// - `/empty`: `Content-Length: 0`;
/// - `/trailers`: chunked, no body, a `grpc-status` trailer;
/// - anything else: `early`.
async fn h1_origin() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head).into_owned();
                let answer: &[u8] = if line.starts_with("GET /empty ") {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else if line.starts_with("GET /trailers ") {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                      0\r\ngrpc-status: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nearly"
                };
                let _ = tcp.write_all(answer).await;
                // Linger so the proxy reads the answer, not a reset.
                let _ = tcp.shutdown().await;
                let _ = tokio::time::timeout(WAIT, async {
                    while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                })
                .await;
            });
        }
    });
    (addr, task)
}

// === a raw client ===

/// An HPACK literal field without indexing, with a literal name (RFC 7541
/// §6.2.2); names and values under 127 bytes.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
    out
}

/// An HPACK block for `method path` on `http://a`, plus `fields`.
fn request_block(method: &str, path: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    // Static table: 2 = GET, 3 = POST, 6 = http; `:path` and `:authority`
    // as literals with indexed names 4 and 1.
    let mut out = vec![if method == "GET" { 0x82 } else { 0x83 }, 0x86];
    out.extend([0x04, path.len() as u8]);
    out.extend_from_slice(path.as_bytes());
    out.extend([0x01, 0x01, b'a']);
    for (name, value) in fields {
        out.extend(literal(name, value));
    }
    out
}

/// A raw h2c client of `addr` that has sent its preface and SETTINGS.
async fn raw(addr: SocketAddr) -> TcpStream {
    let tcp = tokio::time::timeout(WAIT, frames::raw_client(addr))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// Frames on `stream` until it ends (END_STREAM or RST_STREAM); the
/// connection's own frames (SETTINGS, PING, WINDOW_UPDATE) are skipped.
/// Acknowledges the server's SETTINGS so it keeps talking.
async fn stream_frames(tcp: &mut TcpStream, stream: u32) -> Vec<Frame> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = read_frame(tcp, left)
            .await
            .unwrap_or_else(|| panic!("stream {stream} did not end: {:?}", kinds(&got)));
        if f.kind == frames::SETTINGS && f.flags & frames::ACK == 0 {
            tcp.write_all(&frame(frames::SETTINGS, frames::ACK, 0, &[]))
                .await
                .unwrap();
        }
        if f.stream != stream {
            continue;
        }
        let end = f.kind == RST_STREAM || f.flags & END_STREAM != 0;
        got.push(f);
        if end {
            return got;
        }
    }
}

/// `(kind, flags & END_STREAM)` of each frame, for assertions and
/// messages.
fn kinds(frames: &[Frame]) -> Vec<(u8, bool)> {
    frames
        .iter()
        .map(|f| (f.kind, f.kind != RST_STREAM && f.flags & END_STREAM != 0))
        .collect()
}

/// Send a bodyless GET for `path` on `stream`, return its frames.
async fn get_frames(tcp: &mut TcpStream, stream: u32, path: &str) -> Vec<Frame> {
    let block = request_block("GET", path, &[("te", "trailers")]);
    tcp.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, stream, &block))
        .await
        .unwrap();
    stream_frames(tcp, stream).await
}

const HEAD_END: (u8, bool) = (HEADERS, true);
const HEAD: (u8, bool) = (HEADERS, false);

// === defect: END_STREAM placement ===

/// A response that ends with its head (a gRPC "trailers-only" error)
/// reaches an HTTP/2 client as one HEADERS frame with END_STREAM and no
/// DATA; trailers after a body stay trailers, and trailers with no body
/// come with no empty DATA frame between; over an HTTP/2 origin and an
/// HTTP/1 one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_stream_stays_where_the_origin_put_it() {
    let (h2_addr, _h2) = h2_origin().await;
    let proxy = proxy_to(h2_addr, Alpn::H2).await;
    let mut tcp = raw(proxy.addr).await;
    // Again and again: the placement must not depend on timing.
    let mut stream = 1;
    for _ in 0..20 {
        let trailers_only = get_frames(&mut tcp, stream, "/trailers-only").await;
        assert_eq!(kinds(&trailers_only), [HEAD_END]);
        let no_body = get_frames(&mut tcp, stream + 2, "/headers-trailers").await;
        assert_eq!(kinds(&no_body), [HEAD, HEAD_END]);
        stream += 4;
    }
    let body = get_frames(&mut tcp, stream, "/body-trailers").await;
    let data: Vec<u8> = body
        .iter()
        .filter(|f| f.kind == DATA)
        .flat_map(|f| f.payload.clone())
        .collect();
    assert_eq!(data, b"abc");
    assert_eq!(body.first().map(|f| f.kind), Some(HEADERS));
    assert_eq!(kinds(&body).last(), Some(&HEAD_END));
    assert!(
        body.iter().all(|f| f.kind != DATA || !f.payload.is_empty()),
        "an empty DATA frame: {:?}",
        kinds(&body)
    );

    let (h1_addr, _h1) = h1_origin().await;
    let proxy = proxy_to(h1_addr, Alpn::H1).await;
    let mut tcp = raw(proxy.addr).await;
    let empty = get_frames(&mut tcp, 1, "/empty").await;
    assert_eq!(kinds(&empty), [HEAD_END]);
    let trailers = get_frames(&mut tcp, 3, "/trailers").await;
    assert_eq!(kinds(&trailers), [HEAD, HEAD_END]);
}

/// An HTTP/1 client of an HTTP/2 origin's trailers-only answer gets a
/// complete response carrying the status fields, and may reuse the
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailers_only_answer_reaches_an_http1_client_whole() {
    let (h2_addr, _h2) = h2_origin().await;
    let proxy = proxy_to(h2_addr, Alpn::H2).await;
    let mut c = support::client(proxy.addr).await;
    for _ in 0..2 {
        let got = support::exchange(&mut c, support::request("GET", "/trailers-only"), b"").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.headers["grpc-status"], "7");
        assert!(got.body.is_empty());
        c = support::next(c);
    }
}

// === defect: a malformed request stream loses to nothing ===

/// How a client breaks its request stream (RFC 9113 §8.1.1).
#[derive(Debug, Clone, Copy)]
enum Broken {
    /// More DATA than its `content-length`.
    Longer,
    /// END_STREAM before `content-length` bytes.
    Shorter,
    /// A trailer section without END_STREAM.
    OpenTrailer,
}

/// The frames of one broken POST on `stream`, sent in one write.
fn broken_request(stream: u32, how: Broken) -> Vec<u8> {
    let fields: &[(&str, &str)] = match how {
        Broken::Longer | Broken::Shorter => &[("content-length", "5")],
        Broken::OpenTrailer => &[],
    };
    let block = request_block("POST", "/early", fields);
    let mut out = frame(HEADERS, END_HEADERS, stream, &block);
    match how {
        Broken::Longer => out.extend(frame(DATA, END_STREAM, stream, b"0123456789")),
        Broken::Shorter => out.extend(frame(DATA, END_STREAM, stream, b"012")),
        Broken::OpenTrailer => {
            out.extend(frame(DATA, 0, stream, b"body"));
            let trailer = literal("x-trailer", "t");
            out.extend(frame(HEADERS, END_HEADERS, stream, &trailer));
        }
    }
    out
}

/// Each broken request, sent again and again to a proxy whose origin
/// answers before reading any body: the client must get RST_STREAM with
/// PROTOCOL_ERROR every time, never the origin's answer.
async fn broken_requests_are_reset(alpn: Alpn) {
    let (addr, _origin) = match alpn {
        Alpn::H2 => h2_origin().await,
        _ => h1_origin().await,
    };
    let proxy = proxy_to(addr, alpn).await;
    let mut tcp = raw(proxy.addr).await;
    let mut stream = 1;
    for round in 0..30 {
        for how in [Broken::Longer, Broken::Shorter, Broken::OpenTrailer] {
            tcp.write_all(&broken_request(stream, how)).await.unwrap();
            let got = stream_frames(&mut tcp, stream).await;
            let last = got.last().unwrap();
            assert!(
                got.iter().all(|f| f.kind != DATA),
                "round {round}, {how:?}: the origin's answer got through: {:?}",
                kinds(&got)
            );
            assert_eq!(last.kind, RST_STREAM, "round {round}, {how:?}");
            let code = u32::from_be_bytes(last.payload[..4].try_into().unwrap());
            assert_eq!(code, PROTOCOL_ERROR, "round {round}, {how:?}");
            stream += 2;
        }
    }
}

/// The frames that break a request whose head and first DATA went
/// before (`broken_request` minus its start).
fn broken_tail(stream: u32, how: Broken) -> Vec<u8> {
    match how {
        Broken::Longer => frame(DATA, END_STREAM, stream, b"3456789"),
        Broken::Shorter => frame(DATA, END_STREAM, stream, b""),
        Broken::OpenTrailer => frame(HEADERS, END_HEADERS, stream, &literal("x-trailer", "t")),
    }
}

/// The harder timing: the request is valid until the proxy has already
/// sent the origin's answer on its way (the client waits for its
/// HEADERS), and only then breaks. The response must not end: the stream
/// ends with RST_STREAM(PROTOCOL_ERROR), never with END_STREAM.
async fn late_breaks_win_over_the_answer(alpn: Alpn) {
    let (addr, _origin) = match alpn {
        Alpn::H2 => h2_origin().await,
        _ => h1_origin().await,
    };
    let mut options = pingora_core::protocols::http::v2::H2Options::default();
    // Generous, so that a loaded test machine cannot turn the client's
    // late frame into a late-after-the-wait one.
    options.request_end_wait = Duration::from_secs(5);
    let proxy = HttpProxy::new(ToOrigin { addr, alpn }, &ServerConf::default())
        .unwrap()
        .with_h2c(true)
        .with_h2_options(options);
    let proxy = serve_app(proxy).await;
    let mut tcp = raw(proxy.addr).await;
    let mut stream = 1;
    for round in 0..10 {
        for how in [Broken::Longer, Broken::Shorter, Broken::OpenTrailer] {
            let fields: &[(&str, &str)] = match how {
                Broken::Longer | Broken::Shorter => &[("content-length", "5")],
                Broken::OpenTrailer => &[],
            };
            let block = request_block("POST", "/early", fields);
            let mut start = frame(HEADERS, END_HEADERS, stream, &block);
            start.extend(frame(DATA, 0, stream, b"012"));
            tcp.write_all(&start).await.unwrap();
            // Wait for the answer's head, then break the request.
            let head = loop {
                let f = read_frame(&mut tcp, WAIT).await.expect("an answer");
                if f.kind == frames::SETTINGS && f.flags & frames::ACK == 0 {
                    let ack = frame(frames::SETTINGS, frames::ACK, 0, &[]);
                    tcp.write_all(&ack).await.unwrap();
                }
                if f.stream == stream {
                    break f;
                }
            };
            assert_eq!(head.kind, HEADERS, "round {round}, {how:?}");
            assert_eq!(head.flags & END_STREAM, 0, "round {round}, {how:?}");
            tcp.write_all(&broken_tail(stream, how)).await.unwrap();
            let rest = stream_frames(&mut tcp, stream).await;
            let last = rest.last().unwrap();
            assert_eq!(
                last.kind,
                RST_STREAM,
                "round {round}, {how:?}: the answer ended normally: {:?}",
                kinds(&rest)
            );
            let code = u32::from_be_bytes(last.payload[..4].try_into().unwrap());
            assert_eq!(code, PROTOCOL_ERROR, "round {round}, {how:?}");
            stream += 2;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_broken_after_the_answer_started_is_reset_h1_origin() {
    tokio::time::timeout(
        Duration::from_secs(60),
        late_breaks_win_over_the_answer(Alpn::H1),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_broken_after_the_answer_started_is_reset_h2_origin() {
    tokio::time::timeout(
        Duration::from_secs(60),
        late_breaks_win_over_the_answer(Alpn::H2),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_stream_is_reset_before_an_h1_origin_answer() {
    tokio::time::timeout(Duration::from_secs(60), broken_requests_are_reset(Alpn::H1))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_stream_is_reset_before_an_h2_origin_answer() {
    tokio::time::timeout(Duration::from_secs(60), broken_requests_are_reset(Alpn::H2))
        .await
        .unwrap();
}
