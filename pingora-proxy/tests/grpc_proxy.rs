//! gRPC through the proxy with `tonic` on both ends: unary,
//! server-streaming, client-streaming and bidirectional calls, with
//! `grpc-status` and `grpc-message` trailers kept, and an upstream error
//! arriving with its own status.
//!
//! The messages are written by hand with prost's derive, and the service
//! is a small hand-written `tower` service over `tonic::server::Grpc` (what
//! `tonic-build` would generate), so no `protoc` is needed.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]
// tonic's API returns `Result<_, Status>`; its size is not ours to change.
#![allow(clippy::result_large_err)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::HeaderMap;
use pingora_core::server::ServerConf;
use pingora_core::tls::Alpn;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use support::{Running, WAIT, serve_app};
use tokio::net::TcpListener;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::codec::{ProstCodec, Streaming};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::{
    ClientStreamingService, Grpc, NamedService, ServerStreamingService, StreamingService,
    UnaryService,
};
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

type NumStream = std::pin::Pin<Box<dyn Stream<Item = Result<Num, Status>> + Send>>;

// === the service: one small struct per method ===

/// Unary: doubles; a negative number is refused with INVALID_ARGUMENT.
struct Double;

impl UnaryService<Num> for Double {
    type Response = Num;
    type Future = BoxFuture<Response<Num>, Status>;

    fn call(&mut self, req: Request<Num>) -> Self::Future {
        Box::pin(async move {
            let n = req.into_inner().value;
            if n < 0 {
                return Err(Status::invalid_argument("negative: not allowed"));
            }
            Ok(Response::new(num(n * 2)))
        })
    }
}

/// Server streaming: `0..n`; with a negative `n`, two messages and then
/// ABORTED, to carry an error status in trailers after data.
struct Count;

impl ServerStreamingService<Num> for Count {
    type Response = Num;
    type ResponseStream = NumStream;
    type Future = BoxFuture<Response<NumStream>, Status>;

    fn call(&mut self, req: Request<Num>) -> Self::Future {
        Box::pin(async move {
            let n = req.into_inner().value;
            let items: Vec<Result<Num, Status>> = if n < 0 {
                vec![
                    Ok(num(0)),
                    Ok(num(1)),
                    Err(Status::aborted("stopped midway")),
                ]
            } else {
                (0..n).map(|i| Ok(num(i))).collect()
            };
            let stream: NumStream = Box::pin(tokio_stream::iter(items));
            Ok(Response::new(stream))
        })
    }
}

/// Client streaming: the sum of every number sent.
struct Sum;

impl ClientStreamingService<Num> for Sum {
    type Response = Num;
    type Future = BoxFuture<Response<Num>, Status>;

    fn call(&mut self, req: Request<Streaming<Num>>) -> Self::Future {
        Box::pin(async move {
            let mut stream = req.into_inner();
            let mut sum = 0;
            while let Some(n) = stream.message().await? {
                sum += n.value;
            }
            Ok(Response::new(num(sum)))
        })
    }
}

/// Bidirectional: answers each number with its successor, as it comes.
struct Echo;

impl StreamingService<Num> for Echo {
    type Response = Num;
    type ResponseStream = NumStream;
    type Future = BoxFuture<Response<NumStream>, Status>;

    fn call(&mut self, req: Request<Streaming<Num>>) -> Self::Future {
        Box::pin(async move {
            let stream = req.into_inner().map(|n| n.map(|n| num(n.value + 1)));
            let stream: NumStream = Box::pin(stream);
            Ok(Response::new(stream))
        })
    }
}

/// The `test.Calc` service, routing by path as generated code does.
#[derive(Clone)]
struct Calc;

impl NamedService for Calc {
    const NAME: &'static str = "test.Calc";
}

impl Service<http::Request<tonic::body::Body>> for Calc {
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
                "/test.Calc/Double" => grpc.unary(Double, req).await,
                "/test.Calc/Count" => grpc.server_streaming(Count, req).await,
                "/test.Calc/Sum" => grpc.client_streaming(Sum, req).await,
                "/test.Calc/Echo" => grpc.streaming(Echo, req).await,
                "/test.Calc/Deny" => Status::permission_denied("").into_http(),
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(resp)
        })
    }
}

/// A tonic server for `Calc` on 127.0.0.1:0.
async fn start_grpc_origin() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(Calc)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, server)
}

// === the proxy ===

/// Sends every call to the gRPC origin over HTTP/2 and adds a trailer, to
/// show `response_trailer_filter` runs on gRPC responses.
struct GrpcProxy {
    origin: SocketAddr,
}

impl ProxyHttp for GrpcProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.origin, false, "");
        peer.options.alpn = Alpn::H2;
        Ok(Box::new(peer))
    }

    async fn response_trailer_filter(
        &self,
        _: &mut Session,
        trailers: &mut HeaderMap,
        _: &mut (),
    ) -> Result<Option<bytes::Bytes>> {
        trailers.insert("x-proxy-trailer", "seen".parse().unwrap());
        Ok(None)
    }
}

/// A gRPC origin, a proxy (h2c) in front of it, and a tonic client of the
/// proxy.
async fn setup() -> (
    tokio::task::JoinHandle<()>,
    Running,
    tonic::client::Grpc<Channel>,
) {
    let (origin, server) = start_grpc_origin().await;
    let proxy = HttpProxy::new(GrpcProxy { origin }, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = serve_app(proxy).await;
    let channel = Channel::from_shared(format!("http://{}", proxy.addr))
        .unwrap()
        .connect_timeout(WAIT)
        .timeout(WAIT);
    let channel = tokio::time::timeout(WAIT, channel.connect())
        .await
        .unwrap()
        .unwrap();
    (server, proxy, tonic::client::Grpc::new(channel))
}

fn path(method: &str) -> http::uri::PathAndQuery {
    format!("/test.Calc/{method}").parse().unwrap()
}

fn codec() -> ProstCodec<Num, Num> {
    ProstCodec::default()
}

async fn unary(client: &mut tonic::client::Grpc<Channel>, n: i64) -> Result<Num, Status> {
    client.ready().await.unwrap();
    let call = client.unary(Request::new(num(n)), path("Double"), codec());
    let resp = tokio::time::timeout(WAIT, call).await.unwrap()?;
    Ok(resp.into_inner())
}

/// Read a response stream to its end; the messages, the final status and
/// the trailers.
async fn drain(mut stream: Streaming<Num>) -> (Vec<i64>, Result<(), Status>, Option<HeaderMap>) {
    let mut got = Vec::new();
    let end = loop {
        match tokio::time::timeout(WAIT, stream.message()).await.unwrap() {
            Ok(Some(n)) => got.push(n.value),
            Ok(None) => break Ok(()),
            Err(status) => break Err(status),
        }
    };
    let trailers = match &end {
        Ok(()) => stream
            .trailers()
            .await
            .unwrap()
            .map(tonic::metadata::MetadataMap::into_headers),
        Err(_) => None,
    };
    (got, end, trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_and_an_error_status() {
    let (_server, _proxy, mut client) = setup().await;
    for n in [1, 21, 1000] {
        let got = unary(&mut client, n).await.unwrap();
        assert_eq!(got, num(n * 2));
    }
    // A "trailers-only" error answer keeps its status and message.
    let err = unary(&mut client, -5).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "negative: not allowed");
    // An unknown method is answered by the origin, not the proxy.
    client.ready().await.unwrap();
    let call = client.unary(Request::new(num(1)), path("Nope"), codec());
    let err = tokio::time::timeout(WAIT, call).await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
}

/// Error statuses with no message sent as "trailers-only" responses (one
/// HEADERS frame with END_STREAM) keep their codes through the proxy,
/// call after call; `h2_frames.rs` checks the frames themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_only_statuses_keep_their_codes() {
    let (_server, _proxy, mut client) = setup().await;
    for _ in 0..10 {
        for (method, code) in [
            ("Deny", Code::PermissionDenied),
            ("Nope", Code::Unimplemented),
        ] {
            client.ready().await.unwrap();
            let call = client.unary(Request::new(num(1)), path(method), codec());
            let err = tokio::time::timeout(WAIT, call).await.unwrap().unwrap_err();
            assert_eq!(err.code(), code, "{method}: {err:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_with_trailers() {
    let (_server, _proxy, mut client) = setup().await;
    client.ready().await.unwrap();
    let call = client.server_streaming(Request::new(num(50)), path("Count"), codec());
    let resp = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    let (got, end, trailers) = drain(resp.into_inner()).await;
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    end.unwrap();
    let trailers = trailers.expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-proxy-trailer"], "seen");

    // An error after two messages arrives in the trailers, with its code.
    client.ready().await.unwrap();
    let call = client.server_streaming(Request::new(num(-1)), path("Count"), codec());
    let resp = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    let (got, end, _) = drain(resp.into_inner()).await;
    assert_eq!(got, vec![0, 1]);
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "stopped midway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming() {
    let (_server, _proxy, mut client) = setup().await;
    client.ready().await.unwrap();
    let numbers = tokio_stream::iter((1..=100).map(num));
    let call = client.client_streaming(Request::new(numbers), path("Sum"), codec());
    let resp = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert_eq!(resp.into_inner().value, 5050);
}

/// Each answer arrives before the next number is sent: the proxy streams
/// both directions at once instead of waiting for the request to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_streaming_interleaves() {
    let (_server, _proxy, mut client) = setup().await;
    client.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(num(0)).await.unwrap();
    let call = client.streaming(Request::new(ReceiverStream::new(rx)), path("Echo"), codec());
    let resp = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    let mut replies = resp.into_inner();
    for i in 0..20 {
        let reply = tokio::time::timeout(WAIT, replies.message()).await.unwrap();
        assert_eq!(reply.unwrap().unwrap().value, i + 1);
        tx.send(num(i + 1)).await.unwrap();
    }
    drop(tx);
    let (rest, end, trailers) = drain(replies).await;
    assert_eq!(rest, vec![21]);
    end.unwrap();
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}

/// With the gRPC server gone, the proxy's 502 reaches the client as
/// UNAVAILABLE, the status gRPC gives an HTTP 502 (so clients may retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_unavailable() {
    let origin = support::dead_addr().await;
    let proxy = HttpProxy::new(GrpcProxy { origin }, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = serve_app(proxy).await;
    let endpoint = Channel::from_shared(format!("http://{}", proxy.addr))
        .unwrap()
        .connect_timeout(WAIT)
        .timeout(WAIT);
    let channel = tokio::time::timeout(WAIT, endpoint.connect())
        .await
        .unwrap()
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let err = unary(&mut client, 1).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}
