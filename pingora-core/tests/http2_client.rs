//! The HTTP/2 client side: sessions through `H2Connector` against the
//! HTTP server app, connection sharing, ALPN choice and dead connections.

#![allow(clippy::unwrap_used)]

mod support;
mod support_h2;

use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::http_app::{EchoApp, HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora_core::connectors::ConnectorOptions;
use pingora_core::connectors::http2::{H2Connector, UpstreamSession};
use pingora_core::header::RequestHeader;
use pingora_core::protocols::http::v2::{ClientSession, H2Options};
use pingora_core::tls::{Alpn, CertStore, TlsSettings};
use pingora_core::upstreams::HttpPeer;
use support::certs::Ca;
use support_h2::{TestServer, WAIT};

fn connector(options: H2Options) -> H2Connector {
    H2Connector::new(ConnectorOptions::default(), options).unwrap()
}

fn h2c_peer(server: &TestServer) -> HttpPeer {
    let mut peer = HttpPeer::new(server.addr, false, "");
    peer.options.alpn = Alpn::H2;
    peer
}

async fn h2_session(connector: &H2Connector, peer: &HttpPeer) -> (ClientSession, bool) {
    match tokio::time::timeout(WAIT, connector.get_session(peer))
        .await
        .unwrap()
        .unwrap()
    {
        (UpstreamSession::H2(s), reused) => (*s, reused),
        _ => panic!("expected h2"),
    }
}

/// POST `body` with `trailers`; returns status, body and trailers.
async fn post(
    session: &mut ClientSession,
    body: &[u8],
    trailers: Option<http::HeaderMap>,
) -> (u16, Vec<u8>, Option<http::HeaderMap>) {
    let mut req = RequestHeader::build("POST", b"/echo", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    req.insert_header("Connection", "keep-alive").unwrap();
    session.write_request_header(req, false).await.unwrap();
    session.write_body(body).await.unwrap();
    session.finish_body(trailers.as_ref()).await.unwrap();
    let status = session
        .read_response_header()
        .await
        .unwrap()
        .status()
        .as_u16();
    let mut got = Vec::new();
    while let Some(chunk) = session.read_body_bytes().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    (status, got, session.response_trailers().cloned())
}

#[tokio::test]
async fn h2c_exchange_with_body_and_trailers() {
    let app = HttpServer::new(EchoApp)
        .with_h2c(true)
        .with_max_request_body(8 << 20);
    let server = TestServer::start(app, None).await;
    let connector = connector(H2Options::default());
    let peer = h2c_peer(&server);
    let (mut session, reused) = h2_session(&connector, &peer).await;
    assert!(!reused);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let (status, body, back) = post(&mut session, b"hello h2", Some(trailers)).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"hello h2");
    assert_eq!(back.unwrap()["grpc-status"], "0");
    assert_eq!(
        session.response_header().unwrap().headers()["x-echo-uri"],
        "/echo"
    );

    // A big body goes through both windows.
    let big = vec![7u8; 2 << 20];
    let (mut session, reused) = h2_session(&connector, &peer).await;
    assert!(reused);
    let (status, body, _) = post(&mut session, &big, None).await;
    assert_eq!((status, body.len()), (200, big.len()));
}

#[tokio::test]
async fn concurrent_sessions_share_one_connection() {
    let app = HttpServer::new(EchoApp).with_h2c(true);
    let server = TestServer::start(app, None).await;
    let connector = std::sync::Arc::new(connector(H2Options::default()));
    let peer = h2c_peer(&server);
    // Warm up: one connection, whose SETTINGS are then known.
    let (mut first, _) = h2_session(&connector, &peer).await;
    post(&mut first, b"warm", None).await;
    drop(first);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (connector, peer) = (connector.clone(), peer.clone());
        tasks.push(tokio::spawn(async move {
            let (mut s, reused) = h2_session(&connector, &peer).await;
            assert!(reused);
            let body = format!("req {i}");
            let (status, got, _) = post(&mut s, body.as_bytes(), None).await;
            assert_eq!((status, got), (200, body.into_bytes()));
        }));
    }
    for t in tasks {
        tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
    }
    assert_eq!(connector.h2_connections(&peer), 1);
}

/// Holds each request open a while, counting the requests it got.
struct Hold(std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl ServeHttp for Hold {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Long enough that no stream ends while the test opens the rest.
        tokio::time::sleep(Duration::from_secs(1)).await;
        HttpResponse::text(200, "held\n")
    }
}

#[tokio::test]
async fn a_full_connection_makes_the_connector_open_another() {
    let mut options = H2Options::default();
    options.max_concurrent_streams = 2;
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = HttpServer::new(Hold(got.clone()))
        .with_h2c(true)
        .with_h2_options(options);
    let server = TestServer::start(app, None).await;
    let connector = connector(H2Options::default());
    let peer = h2c_peer(&server);
    let (mut warm, _) = h2_session(&connector, &peer).await;
    post(&mut warm, b"", None).await;
    drop(warm);
    // Five open streams, two per connection: three connections.
    let mut held = Vec::new();
    for i in 0..5 {
        let (mut s, _) = h2_session(&connector, &peer).await;
        let req = RequestHeader::build("GET", b"/", None).unwrap();
        s.write_request_header(req, true).await.unwrap();
        held.push(s);
        // Until a new connection's SETTINGS arrive its limit is unknown
        // (RFC 9113 §5.1.2). The server sent them before it read this
        // request, so once it has the request they are on their way.
        let arrived = async {
            while got.load(std::sync::atomic::Ordering::SeqCst) < i + 2 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(WAIT, arrived).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connector.h2_connections(&peer), 3);
    for mut s in held {
        assert_eq!(s.read_response_header().await.unwrap().status(), 200);
    }
}

/// A peer's own stream limit (`max_h2_streams`) makes the connector open
/// another connection before the server's limit is reached.
#[tokio::test]
async fn a_peer_stream_limit_spreads_requests_over_connections() {
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = HttpServer::new(Hold(got.clone())).with_h2c(true);
    let server = TestServer::start(app, None).await;
    let connector = connector(H2Options::default());
    let mut peer = h2c_peer(&server);
    peer.options.max_h2_streams = 2;
    // Four open streams, at most two per connection: two connections,
    // though the server would take a hundred streams on one.
    let mut held = Vec::new();
    for _ in 0..4 {
        let (mut s, _) = h2_session(&connector, &peer).await;
        let req = RequestHeader::build("GET", b"/", None).unwrap();
        s.write_request_header(req, true).await.unwrap();
        held.push(s);
    }
    assert_eq!(connector.h2_connections(&peer), 2);
    for mut s in held {
        assert_eq!(s.read_response_header().await.unwrap().status(), 200);
    }
    // Once they are done, a new request reuses a connection.
    let (_, reused) = h2_session(&connector, &peer).await;
    assert!(reused);
}

async fn tls_server(ca: &Ca, alpn: Alpn) -> TestServer {
    let mut settings = TlsSettings::new(CertStore::new().with_default(ca.leaf(&["h2.test"])));
    settings.set_alpn(alpn);
    TestServer::start(HttpServer::new(EchoApp), Some(settings.build().unwrap())).await
}

fn tls_peer(server: &TestServer, ca: &Ca, alpn: Alpn) -> HttpPeer {
    let mut peer = HttpPeer::new(server.addr, true, "h2.test");
    peer.options.ca = Some(ca.roots());
    peer.options.alpn = alpn;
    peer
}

#[tokio::test]
async fn alpn_choice_decides_the_version() {
    let ca = Ca::new("h2 client ca");
    let both = tls_server(&ca, Alpn::H2H1).await;
    let h1_only = tls_server(&ca, Alpn::H1).await;
    let connector = connector(H2Options::default());

    // H2-preferred to a server that speaks both: HTTP/2.
    let (mut s, _) = h2_session(&connector, &tls_peer(&both, &ca, Alpn::H2H1)).await;
    assert!(s.digest().unwrap().tls.as_ref().unwrap().is_h2());
    assert_eq!(post(&mut s, b"tls", None).await.1, b"tls");

    // H2-preferred to an HTTP/1-only server: falls back to HTTP/1.
    let peer = tls_peer(&h1_only, &ca, Alpn::H2H1);
    let (session, _) = connector.get_session(&peer).await.unwrap();
    let UpstreamSession::H1(mut h1) = session else {
        panic!("expected the http/1 fallback");
    };
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Host", "h2.test").unwrap();
    h1.write_request_header(req).await.unwrap();
    h1.finish_body(None).await.unwrap();
    assert_eq!(h1.read_final_response_header().await.unwrap().status(), 200);

    // H2 only to an HTTP/1-only server: refused.
    let peer = tls_peer(&h1_only, &ca, Alpn::H2);
    let err = connector.get_session(&peer).await.unwrap_err();
    assert!(
        matches!(
            err.etype(),
            pingora_core::ErrorType::H2Downgrade | pingora_core::ErrorType::TLSHandshakeFailure
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_connection_that_stops_answering_pings_is_not_reused() {
    // An upstream that takes the connection and then never writes a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(tcp);
        }
    });
    let mut options = H2Options::default();
    options.keepalive_interval = None;
    options.keepalive_timeout = Duration::from_millis(100);
    let connector = connector(options);
    let mut peer = HttpPeer::new(addr, false, "");
    peer.options.alpn = Alpn::H2;
    // The peer's own ping interval: the connector pings none by default.
    peer.options.h2_ping_interval = Some(Duration::from_millis(50));
    let (_first, _) = h2_session(&connector, &peer).await;
    assert_eq!(connector.h2_connections(&peer), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        connector.h2_connections(&peer),
        0,
        "dead connection dropped"
    );
    let (_second, reused) = h2_session(&connector, &peer).await;
    assert!(!reused);
    // The client handshake needs no answer, so the accept may lag.
    let second_accept = async {
        while accepted.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, second_accept).await.unwrap();
}

/// RFC 9113 §8.1: a server may answer before the whole request body came
/// and then stop the upload with RST_STREAM(NO_ERROR). The client must
/// keep the response and not fail the exchange.
#[tokio::test]
async fn an_early_answer_with_a_no_error_reset_keeps_the_response() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        // The connection is driven by `accept`; answer on the side.
        while let Some(Ok((_req, mut respond))) = conn.accept().await {
            tokio::spawn(async move {
                let resp = http::Response::builder().status(200).body(()).unwrap();
                respond.send_response(resp, true).unwrap();
                // Let the answer go out first, as a server that answers
                // early does, then stop the upload.
                tokio::time::sleep(Duration::from_millis(20)).await;
                respond.send_reset(h2::Reason::NO_ERROR);
            });
        }
    });
    let connector = connector(H2Options::default());
    let mut peer = HttpPeer::new(addr, false, "");
    peer.options.alpn = Alpn::H2;
    let (mut session, _) = h2_session(&connector, &peer).await;
    let mut req = RequestHeader::build("POST", b"/upload", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    session.write_request_header(req, false).await.unwrap();
    // The answer (and the reset) arrive before any body is sent.
    let status = tokio::time::timeout(WAIT, session.read_response_header())
        .await
        .unwrap()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    session.write_body(b"no longer wanted").await.unwrap();
    session.write_body(b"nor this").await.unwrap();
    session.finish_body(None).await.unwrap();
    assert_eq!(session.read_body_bytes().await.unwrap(), None);
}
