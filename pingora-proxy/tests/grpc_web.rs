//! The gRPC-web bridge module through a real proxy, in front of a real
//! gRPC server (`tonic`): gRPC-web calls built by hand (5-byte frame
//! prefix, prost-encoded messages) over HTTP/1.1 and HTTP/2, in binary
//! and text (base64) modes, with the responses' frames and trailer frame
//! decoded and checked; and a plain gRPC call through the same proxy,
//! which the module leaves alone.
//!
//! As in `grpc_proxy.rs`, the messages and the service are written by
//! hand, so no `protoc` is needed.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]
// tonic's API returns `Result<_, Status>`; its size is not ours to change.
#![allow(clippy::result_large_err)]

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::Bytes;
use pingora_core::modules::http::HttpModules;
use pingora_core::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge, GrpcWebMode};
use pingora_core::server::ServerConf;
use pingora_core::tls::Alpn;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use prost::Message;
use support::h2_tools::{h2_client, h2_exchange};
use support::{Running, WAIT, serve_app};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::codec::ProstCodec;
use tonic::codegen::{BoxFuture, Service};
use tonic::metadata::MetadataMap;
use tonic::server::{Grpc, NamedService, ServerStreamingService, UnaryService};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

/// The one message type: a number and a note.
#[derive(Clone, PartialEq, prost::Message)]
struct Num {
    #[prost(int64, tag = "1")]
    value: i64,
    #[prost(string, tag = "2")]
    note: String,
}

fn num(value: i64) -> Num {
    Num {
        value,
        note: format!("n{value}"),
    }
}

/// An error status with custom metadata, which gRPC sends with the status.
fn status_with_reason(code: Code, message: &str, reason: &'static str) -> Status {
    let mut md = MetadataMap::new();
    md.insert("x-reason", reason.parse().unwrap());
    Status::with_metadata(code, message, md)
}

type NumStream = std::pin::Pin<Box<dyn Stream<Item = Result<Num, Status>> + Send>>;

/// Unary: doubles; a negative number is refused with INVALID_ARGUMENT and
/// a reason (a "trailers-only" answer: the status in the head).
struct Double;

impl UnaryService<Num> for Double {
    type Response = Num;
    type Future = BoxFuture<Response<Num>, Status>;

    fn call(&mut self, req: Request<Num>) -> Self::Future {
        Box::pin(async move {
            let n = req.into_inner().value;
            if n < 0 {
                let why = "negative: not allowed";
                return Err(status_with_reason(Code::InvalidArgument, why, "sign"));
            }
            Ok(Response::new(num(n * 2)))
        })
    }
}

/// Server streaming: `0..n`; with a negative `n`, two messages and then
/// ABORTED with a reason, in the trailers after data.
struct Count;

impl ServerStreamingService<Num> for Count {
    type Response = Num;
    type ResponseStream = NumStream;
    type Future = BoxFuture<Response<NumStream>, Status>;

    fn call(&mut self, req: Request<Num>) -> Self::Future {
        Box::pin(async move {
            let n = req.into_inner().value;
            let items: Vec<Result<Num, Status>> = if n < 0 {
                let stop = status_with_reason(Code::Aborted, "stopped midway", "two-sent");
                vec![Ok(num(0)), Ok(num(1)), Err(stop)]
            } else {
                (0..n).map(|i| Ok(num(i))).collect()
            };
            let stream: NumStream = Box::pin(tokio_stream::iter(items));
            Ok(Response::new(stream))
        })
    }
}

/// Lets `Gated` send its second message; the test holding it releases a
/// permit once it has read the first.
static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

/// Server streaming: message 0, then message 1 once [`GATE`] opens. A
/// bridge that held message 0 back would never see the gate open.
struct Gated;

impl ServerStreamingService<Num> for Gated {
    type Response = Num;
    type ResponseStream = NumStream;
    type Future = BoxFuture<Response<NumStream>, Status>;

    fn call(&mut self, _: Request<Num>) -> Self::Future {
        Box::pin(async move {
            let second = async {
                let permit = GATE.acquire().await;
                permit.unwrap().forget();
                Ok(num(1))
            };
            let items =
                tokio_stream::once(Ok(num(0))).chain(tokio_stream::once(second).then(|f| f));
            let stream: NumStream = Box::pin(items);
            Ok(Response::new(stream))
        })
    }
}

/// The `test.Web` service, routing by path as generated code does.
#[derive(Clone)]
struct Web;

impl NamedService for Web {
    const NAME: &'static str = "test.Web";
}

impl Service<http::Request<tonic::body::Body>> for Web {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<Num, Num>::default());
            let resp = match req.uri().path() {
                "/test.Web/Double" => grpc.unary(Double, req).await,
                "/test.Web/Count" => grpc.server_streaming(Count, req).await,
                "/test.Web/Gated" => grpc.server_streaming(Gated, req).await,
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(resp)
        })
    }
}

/// A tonic server for `Web` on 127.0.0.1:0.
async fn start_grpc_origin() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(Web)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, server)
}

/// Bridges gRPC-web and sends every call to the gRPC origin over HTTP/2;
/// tells the client in a field which mode the bridge saw.
struct WebProxy {
    origin: SocketAddr,
}

impl ProxyHttp for WebProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(GrpcWeb));
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        // gRPC needs HTTP/2 to the upstream, here in cleartext (h2c).
        let mut peer = HttpPeer::new(self.origin, false, "");
        peer.options.alpn = Alpn::H2;
        Ok(Box::new(peer))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut pingora_core::header::ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        let bridge = session.downstream_modules_ctx().get::<GrpcWebBridge>();
        let mode = match bridge.and_then(GrpcWebBridge::mode) {
            Some(GrpcWebMode::Binary) => "binary",
            Some(GrpcWebMode::Text) => "text",
            None => "none",
        };
        resp.insert_header("x-bridge-mode", mode)
    }
}

/// The gRPC origin and the proxy (HTTP/1.1 and h2c) in front of it.
async fn setup() -> (tokio::task::JoinHandle<()>, Running) {
    let (origin, server) = start_grpc_origin().await;
    let proxy = HttpProxy::new(WebProxy { origin }, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    (server, serve_app(proxy).await)
}

// === a gRPC-web client, by hand ===

/// `msg` as a gRPC message frame: flag 0, 4-byte length, the message.
fn frame(msg: &Num) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Base64 (standard, padded), as the test's client encodes it.
fn b64_encode(input: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for g in input.chunks(3) {
        let b = [g[0], *g.get(1).unwrap_or(&0), *g.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63]);
        out.push(A[(n >> 12) as usize & 63]);
        out.push(if g.len() > 1 {
            A[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if g.len() > 2 {
            A[n as usize & 63]
        } else {
            b'='
        });
    }
    out
}

/// Decode base64 four characters at a time, as gRPC-web clients do: each
/// group stands alone, so padded chunks may follow each other.
fn b64_decode(input: &[u8]) -> Vec<u8> {
    assert_eq!(input.len() % 4, 0, "base64 body of {} chars", input.len());
    let val = |c: u8| match c {
        b'A'..=b'Z' => u32::from(c - b'A'),
        b'a'..=b'z' => u32::from(c - b'a' + 26),
        b'0'..=b'9' => u32::from(c - b'0' + 52),
        b'+' => 62,
        b'/' => 63,
        b'=' => 0,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for g in input.chunks(4) {
        let n = g.iter().fold(0, |n, &c| n << 6 | val(c));
        let [_, a, b, c] = n.to_be_bytes();
        let keep = 3 - g.iter().filter(|&&c| c == b'=').count();
        out.extend_from_slice(&[a, b, c][..keep]);
    }
    out
}

/// A gRPC-web response body taken apart: the messages, then the trailer
/// frame's fields (lowercase names), which must come last.
#[derive(Debug, Default)]
struct WebAnswer {
    messages: Vec<Num>,
    trailers: Option<HashMap<String, String>>,
}

fn parse_frames(mut body: &[u8]) -> WebAnswer {
    let mut answer = WebAnswer::default();
    while !body.is_empty() {
        assert!(answer.trailers.is_none(), "a frame after the trailer frame");
        let flag = body[0];
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + len];
        body = &body[5 + len..];
        match flag {
            0 => answer.messages.push(Num::decode(payload).unwrap()),
            0x80 => {
                let text = std::str::from_utf8(payload).unwrap();
                let mut fields = HashMap::new();
                for line in text.split_terminator("\r\n") {
                    let (name, value) = line.split_once(": ").unwrap();
                    assert_eq!(name, name.to_ascii_lowercase(), "names are lowercase");
                    fields.insert(name.to_owned(), value.to_owned());
                }
                answer.trailers = Some(fields);
            }
            other => panic!("unexpected frame flag {other:#x}"),
        }
    }
    answer
}

/// The content-type a gRPC-web client sends for `mode`.
fn content_type(text: bool) -> &'static str {
    if text {
        "application/grpc-web-text"
    } else {
        "application/grpc-web+proto"
    }
}

/// A request body for one message, as the client sends it in `mode`.
fn web_request_body(msg: &Num, text: bool) -> Vec<u8> {
    if text {
        b64_encode(&frame(msg))
    } else {
        frame(msg)
    }
}

/// One gRPC-web call over HTTP/1.1; the answer's head fields and parsed
/// body. Text bodies go chunked, in 5-byte pieces (not aligned to base64's
/// 4-character groups).
async fn call_h1(
    proxy: SocketAddr,
    method: &str,
    msg: &Num,
    text: bool,
) -> (http::HeaderMap, WebAnswer) {
    let mut client = support::client(proxy).await;
    let mut req = support::request("POST", &format!("/test.Web/{method}"));
    req.insert_header("Content-Type", content_type(text))
        .unwrap();
    req.insert_header("X-Grpc-Web", "1").unwrap();
    let body = web_request_body(msg, text);
    let answer = tokio::time::timeout(WAIT, async {
        if text {
            req.insert_header("Transfer-Encoding", "chunked").unwrap();
            client.write_request_header(req).await.unwrap();
            for piece in body.chunks(5) {
                client.write_body(piece).await.unwrap();
            }
        } else {
            req.insert_header("Content-Length", body.len()).unwrap();
            client.write_request_header(req).await.unwrap();
            client.write_body(&body).await.unwrap();
        }
        client.finish_body(None).await.unwrap();
        let head = client.read_final_response_header().await.unwrap();
        assert_eq!(head.status().as_u16(), 200);
        let headers = head.headers().clone();
        let mut body = Vec::new();
        while let Some(piece) = client.read_body_bytes().await.unwrap() {
            body.extend_from_slice(&piece);
        }
        assert!(client.trailers().is_none(), "no HTTP trailers for gRPC-web");
        (headers, body)
    })
    .await
    .expect("grpc-web call timed out");
    let (headers, body) = answer;
    let body = if text { b64_decode(&body) } else { body };
    (headers, parse_frames(&body))
}

/// One gRPC-web call over HTTP/2 (the `h2` crate).
async fn call_h2(
    proxy: SocketAddr,
    method: &str,
    msg: &Num,
    text: bool,
) -> (http::HeaderMap, WebAnswer) {
    let send = h2_client(proxy).await;
    let req = http::Request::post(format!("http://test.local/test.Web/{method}"))
        .header("content-type", content_type(text))
        .header("x-grpc-web", "1")
        .body(())
        .unwrap();
    let answer = h2_exchange(&send, req, &web_request_body(msg, text), None).await;
    assert_eq!(answer.status, 200);
    assert!(answer.trailers.is_none(), "no HTTP/2 trailers for gRPC-web");
    let body = if text {
        b64_decode(&answer.body)
    } else {
        answer.body
    };
    (answer.headers, parse_frames(&body))
}

fn values(answer: &WebAnswer) -> Vec<i64> {
    answer.messages.iter().map(|m| m.value).collect()
}

/// Unary and server-streaming calls, their statuses and metadata, for one
/// transport and mode.
async fn check_calls<F, Fut>(proxy: SocketAddr, text: bool, call: F)
where
    F: Fn(SocketAddr, &'static str, Num, bool) -> Fut,
    Fut: Future<Output = (http::HeaderMap, WebAnswer)>,
{
    let mode = if text { "text" } else { "binary" };
    let want_ct = if text {
        "application/grpc-web-text"
    } else {
        "application/grpc-web"
    };

    // Unary: one message, then grpc-status 0 in the trailer frame.
    let (headers, answer) = call(proxy, "Double", num(21), text).await;
    assert_eq!(headers["content-type"], want_ct, "{mode}");
    assert_eq!(headers["x-bridge-mode"], mode);
    assert!(!headers.contains_key("content-length"));
    assert_eq!(answer.messages, vec![num(42)], "{mode}");
    let trailers = answer.trailers.expect("trailer frame");
    assert_eq!(trailers["grpc-status"], "0", "{mode}");

    // Server streaming, 100 messages.
    let (_, answer) = call(proxy, "Count", num(100), text).await;
    assert_eq!(values(&answer), (0..100).collect::<Vec<_>>(), "{mode}");
    assert_eq!(answer.trailers.unwrap()["grpc-status"], "0");

    // An error after two messages: status, message and custom metadata
    // arrive in the trailer frame.
    let (_, answer) = call(proxy, "Count", num(-1), text).await;
    assert_eq!(values(&answer), vec![0, 1], "{mode}");
    let trailers = answer.trailers.expect("trailer frame");
    assert_eq!(trailers["grpc-status"], (Code::Aborted as i32).to_string());
    assert_eq!(trailers["grpc-message"], "stopped%20midway");
    assert_eq!(trailers["x-reason"], "two-sent");

    // A trailers-only error: the status in the head, an empty body.
    let (headers, answer) = call(proxy, "Double", num(-1), text).await;
    assert_eq!(headers["content-type"], want_ct, "{mode}");
    assert_eq!(
        headers["grpc-status"],
        (Code::InvalidArgument as i32).to_string()
    );
    assert_eq!(headers["grpc-message"], "negative:%20not%20allowed");
    assert_eq!(headers["x-reason"], "sign");
    assert!(answer.messages.is_empty() && answer.trailers.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_http1_binary_and_text() {
    let (_server, proxy) = setup().await;
    for text in [false, true] {
        check_calls(proxy.addr, text, |addr, method, msg, text| async move {
            call_h1(addr, method, &msg, text).await
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_http2_binary_and_text() {
    let (_server, proxy) = setup().await;
    for text in [false, true] {
        check_calls(proxy.addr, text, |addr, method, msg, text| async move {
            call_h2(addr, method, &msg, text).await
        })
        .await;
    }
}

/// A text body that is not base64 is refused with 400, and nothing is
/// forwarded in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_base64_is_refused() {
    let (_server, proxy) = setup().await;
    let mut client = support::client(proxy.addr).await;
    let mut req = support::request("POST", "/test.Web/Double");
    req.insert_header("Content-Type", "application/grpc-web-text")
        .unwrap();
    req.insert_header("Content-Length", "8").unwrap();
    let answer = support::exchange(&mut client, req, b"AAAA!!!!").await;
    assert_eq!(answer.status, 400, "{answer:?}");
}

/// Plain gRPC through the same proxy: the module stays out of the way and
/// the status still comes in HTTP/2 trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_grpc_is_untouched() {
    let (_server, proxy) = setup().await;
    let channel = Channel::from_shared(format!("http://{}", proxy.addr))
        .unwrap()
        .connect_timeout(WAIT)
        .timeout(WAIT);
    let channel = tokio::time::timeout(WAIT, channel.connect())
        .await
        .unwrap()
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let codec = ProstCodec::<Num, Num>::default;
    client.ready().await.unwrap();
    let path = "/test.Web/Double".parse().unwrap();
    let call = client.unary(Request::new(num(5)), path, codec());
    let resp = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert_eq!(resp.metadata().get("x-bridge-mode").unwrap(), "none");
    assert_eq!(resp.into_inner(), num(10));

    client.ready().await.unwrap();
    let path = "/test.Web/Count".parse().unwrap();
    let call = client.server_streaming(Request::new(num(-1)), path, codec());
    let mut stream = tokio::time::timeout(WAIT, call)
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    let status = loop {
        match tokio::time::timeout(WAIT, stream.message()).await.unwrap() {
            Ok(Some(n)) => got.push(n.value),
            Ok(None) => panic!("the stream should end with an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(got, vec![0, 1]);
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "stopped midway");
    assert_eq!(status.metadata().get("x-reason").unwrap(), "two-sent");
}

/// In text mode each message goes out as soon as it arrives: the client
/// decodes message 0 while the server still holds message 1 back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_mode_streams_each_message_at_once() {
    let (_server, proxy) = setup().await;
    let send = h2_client(proxy.addr).await;
    let req = http::Request::post("http://test.local/test.Web/Gated")
        .header("content-type", "application/grpc-web-text")
        .body(())
        .unwrap();
    let body = Bytes::from(web_request_body(&num(0), true));
    let fut = async {
        let mut send = send.ready().await.unwrap();
        let (resp, mut out) = send.send_request(req, false).unwrap();
        out.send_data(body, true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.headers()["content-type"], "application/grpc-web-text");
        let mut recv = resp.into_body();
        let mut text = Vec::new();
        let mut gate_opened = false;
        while let Some(data) = recv.data().await {
            let data = data.unwrap();
            let _ = recv.flow_control().release_capacity(data.len());
            text.extend_from_slice(&data);
            let whole = text.len() - text.len() % 4;
            let answer = parse_frames_so_far(&b64_decode(&text[..whole]));
            if !gate_opened && answer.messages.len() == 1 {
                assert_eq!(answer.messages, vec![num(0)]);
                GATE.add_permits(1);
                gate_opened = true;
            }
        }
        assert!(gate_opened, "message 0 never arrived on its own");
        b64_decode(&text)
    };
    let body = tokio::time::timeout(WAIT, fut)
        .await
        .expect("message 0 was held back");
    let answer = parse_frames(&body);
    assert_eq!(values(&answer), vec![0, 1]);
    assert_eq!(answer.trailers.unwrap()["grpc-status"], "0");
}

/// The whole frames at the start of `body` (a stream still arriving).
fn parse_frames_so_far(body: &[u8]) -> WebAnswer {
    let mut end = 0;
    while body.len() >= end + 5 {
        let len = u32::from_be_bytes(body[end + 1..end + 5].try_into().unwrap()) as usize;
        if body.len() < end + 5 + len {
            break;
        }
        end += 5 + len;
    }
    parse_frames(&body[..end])
}
