//! The HTTP server app over HTTP/2: h2c with prior knowledge and TLS with
//! ALPN, bodies, trailers, concurrency and graceful shutdown.

#![allow(clippy::unwrap_used)]

mod support;
mod support_h2;

use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::http_app::{EchoApp, HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::tls::{Alpn, CertStore};
use pingora_core::upstreams::HttpPeer;
use support::certs::Ca;
use support_h2::{TestServer, WAIT, exchange, h2_client, h2_client_on};

fn echo() -> HttpServer<EchoApp> {
    HttpServer::new(EchoApp)
        .with_h2c(true)
        .with_max_request_body(16 * 1024 * 1024)
}

#[tokio::test]
async fn h2c_get_and_post_with_trailers() {
    let server = TestServer::start(echo(), None).await;
    let mut client = h2_client(server.addr).await;

    let got = exchange(&mut client, "GET", "/hello?x=1", b"", None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["x-echo-method"], "GET");
    assert_eq!(got.headers["x-echo-uri"], "/hello?x=1");
    assert!(got.headers.get("transfer-encoding").is_none());

    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let got = exchange(&mut client, "POST", "/up", b"payload", Some(trailers)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"payload");
    assert_eq!(got.trailers.unwrap()["grpc-status"], "0");
}

#[tokio::test]
async fn an_h2c_server_still_serves_http1_clients() {
    use pingora_core::protocols::http::v1::{ClientSession, H1Config};
    use pingora_core::protocols::l4::L4Stream;
    let server = TestServer::start(echo(), None).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut h1 = ClientSession::new(Box::new(L4Stream::from_tcp(tcp)), H1Config::default());
    for path in ["/one", "/two"] {
        let mut req =
            pingora_core::header::RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        req.insert_header("Host", "a").unwrap();
        h1.write_request_header(req).await.unwrap();
        h1.finish_body(None).await.unwrap();
        let resp = h1.read_final_response_header().await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_11);
        assert_eq!(resp.headers()["x-echo-uri"], path);
        while h1.read_body_bytes().await.unwrap().is_some() {}
        // Keep-alive: the next request goes on the same connection.
        h1 = ClientSession::new(h1.reuse().unwrap(), H1Config::default());
    }
}

#[tokio::test]
async fn expect_continue_gets_100_before_the_body_is_sent() {
    let server = TestServer::start(echo(), None).await;
    let client = h2_client(server.addr).await;
    let mut send = client.ready().await.unwrap();
    let req = http::Request::post("http://test.local/c")
        .header("expect", "100-continue")
        .body(())
        .unwrap();
    let (mut resp, mut out) = send.send_request(req, false).unwrap();
    let interim =
        tokio::time::timeout(WAIT, std::future::poll_fn(|cx| resp.poll_informational(cx)))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    assert_eq!(interim.status(), 100);
    out.send_data(bytes::Bytes::from_static(b"late body"), true)
        .unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let data = body.data().await.unwrap().unwrap();
    assert_eq!(&data[..], b"late body");
}

#[tokio::test]
async fn bodies_larger_than_every_window_stream_through() {
    let server = TestServer::start(echo(), None).await;
    let mut client = h2_client(server.addr).await;
    // 3 MiB: more than the stream window (256 KiB), the connection window
    // (1 MiB) and the client's 64 KiB default, so flow control must work
    // both ways for this to finish.
    let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let got = exchange(&mut client, "PUT", "/big", &body, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len(), body.len());
    assert!(got.body == body);
}

#[tokio::test]
async fn many_concurrent_streams_on_one_connection() {
    let server = TestServer::start(echo(), None).await;
    let client = h2_client(server.addr).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("stream {i}");
            let got = exchange(&mut client, "POST", &format!("/{i}"), body.as_bytes(), None).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.body, body.as_bytes());
        }));
    }
    for t in tasks {
        tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn tls_with_alpn_h2_serves_h2_and_h1_still_works() {
    let ca = Ca::new("h2 test ca");
    let mut settings =
        pingora_core::tls::TlsSettings::new(CertStore::new().with_default(ca.leaf(&["h2.test"])));
    settings.set_alpn(Alpn::H2H1);
    let app = HttpServer::new(EchoApp);
    let server = TestServer::start(app, Some(settings.build().unwrap())).await;
    let connector = TransportConnector::new(ConnectorOptions::default()).unwrap();

    let mut peer = HttpPeer::new(server.addr, true, "h2.test");
    peer.options.ca = Some(ca.roots());
    peer.options.alpn = Alpn::H2;
    let stream = connector.new_stream(&peer).await.unwrap();
    let tls = stream.digest().unwrap().tls.clone().unwrap();
    assert!(tls.is_h2());
    let mut client = h2_client_on(stream).await;
    let got = exchange(&mut client, "POST", "/tls", b"secret", None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"secret");

    // The same listener still speaks HTTP/1 to clients that ask for it.
    peer.options.alpn = Alpn::H1;
    let stream = connector.new_stream(&peer).await.unwrap();
    let mut h1 = pingora_core::protocols::http::v1::ClientSession::new(
        stream,
        pingora_core::protocols::http::v1::H1Config::default(),
    );
    let mut req = pingora_core::header::RequestHeader::build("GET", b"/h1", None).unwrap();
    req.insert_header("Host", "h2.test").unwrap();
    h1.write_request_header(req).await.unwrap();
    h1.finish_body(None).await.unwrap();
    let resp = h1.read_final_response_header().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_11);
}

/// Answers after a delay, to keep a stream open across a shutdown.
struct Slow;

#[async_trait]
impl ServeHttp for Slow {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        tokio::time::sleep(Duration::from_millis(300)).await;
        HttpResponse::text(200, "finally\n")
    }
}

#[tokio::test]
async fn graceful_shutdown_sends_goaway_and_finishes_open_streams() {
    let server = TestServer::start(HttpServer::new(Slow).with_h2c(true), None).await;
    let mut client = h2_client(server.addr).await;
    let mut inflight = client.clone();
    let open =
        tokio::spawn(async move { exchange(&mut inflight, "GET", "/slow", b"", None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown();

    let got = tokio::time::timeout(WAIT, open).await.unwrap().unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"finally\n");

    // After the GOAWAY, a new stream is refused and the connection ends.
    let refused = tokio::time::timeout(WAIT, async {
        let mut send = client.clone().ready().await?;
        let req = http::Request::get("http://test.local/late")
            .body(())
            .unwrap();
        let (resp, _) = send.send_request(req, true)?;
        resp.await
    })
    .await
    .unwrap();
    assert!(refused.is_err(), "a stream after GOAWAY must fail");
    let _ = &mut client;
}

#[tokio::test]
async fn raw_goaway_on_shutdown_is_no_error() {
    use support_h2::frames::*;
    let server = TestServer::start(HttpServer::new(EchoApp).with_h2c(true), None).await;
    let mut tcp = raw_client(server.addr).await;
    // Let the server finish its handshake before it is told to stop.
    let settings = read_frame(&mut tcp, WAIT).await.unwrap();
    assert_eq!(settings.kind, SETTINGS);
    server.shutdown();
    assert_eq!(goaway_code(&mut tcp, WAIT).await, Some(0));
}

#[tokio::test]
async fn settings_of_the_server_conf_reach_the_client() {
    use pingora_core::server::ServerConf;
    let conf = ServerConf::from_yaml("h2:\n  max_concurrent_streams: 7\n").unwrap();
    let app = HttpServer::new(EchoApp)
        .with_server_conf(&conf)
        .with_h2c(true);
    let server = TestServer::start(app, None).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let mut conn = std::pin::pin!(conn);
    // Drive the connection through one exchange: the server's SETTINGS
    // frame has been read by then.
    let got = tokio::select! {
        got = exchange(&mut client, "GET", "/", b"", None) => got,
        end = &mut conn => panic!("connection ended first: {end:?}"),
    };
    assert_eq!(got.status, 200);
    assert_eq!(conn.as_ref().get_ref().max_concurrent_send_streams(), 7);
}
