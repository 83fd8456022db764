//! The HTTP connector's HTTP/1 side: idle sessions are pooled and reused,
//! one TCP connection carrying many sequential requests.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::{EchoApp, HttpServer};
use pingora_core::connectors::ConnectorOptions;
use pingora_core::connectors::http::HttpConnector;
use pingora_core::header::RequestHeader;
use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::L4Stream;
use pingora_core::upstreams::HttpPeer;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

/// An echo origin on 127.0.0.1:0 that counts the connections it accepts.
async fn origin() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let app = Arc::new(HttpServer::new(EchoApp));
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = _tx;
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let stream: Stream = Box::new(L4Stream::from_tcp(tcp));
            let (app, rx) = (app.clone(), rx.clone());
            tokio::spawn(async move { app.process_new(stream, &rx).await });
        }
    });
    (addr, accepted)
}

async fn post(connector: &HttpConnector, peer: &HttpPeer, body: &[u8]) -> bool {
    let (mut session, reused) = tokio::time::timeout(WAIT, connector.get_http_session(peer))
        .await
        .unwrap()
        .unwrap();
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    req.insert_header("Content-Length", body.len().to_string())
        .unwrap();
    session.write_request_header(req).await.unwrap();
    session.write_body(body).await.unwrap();
    session.finish_body(None).await.unwrap();
    let status = session.read_final_response_header().await.unwrap().status();
    assert_eq!(status.as_u16(), 200);
    let mut got = Vec::new();
    while let Some(piece) = session.read_body_bytes().await.unwrap() {
        got.extend_from_slice(&piece);
    }
    assert_eq!(got, body);
    connector.release_http_session(session, peer);
    reused
}

#[tokio::test]
async fn sequential_requests_share_one_pooled_session() {
    let (addr, accepted) = origin().await;
    let connector = HttpConnector::new(ConnectorOptions::default()).unwrap();
    let peer = HttpPeer::new(addr, false, "");
    assert!(!post(&connector, &peer, b"first").await);
    assert_eq!(connector.idle_http_sessions(), 1);
    for i in 0..20 {
        let body = format!("request {i}");
        assert!(
            post(&connector, &peer, body.as_bytes()).await,
            "request {i}"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(connector.idle_http_sessions(), 1);
}

#[tokio::test]
async fn a_session_left_mid_response_is_not_pooled() {
    let (addr, accepted) = origin().await;
    let connector = HttpConnector::new(ConnectorOptions::default()).unwrap();
    let peer = HttpPeer::new(addr, false, "");
    let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    req.insert_header("Content-Length", "5").unwrap();
    session.write_request_header(req).await.unwrap();
    session.write_body(b"hello").await.unwrap();
    session.finish_body(None).await.unwrap();
    session.read_final_response_header().await.unwrap();
    // The body is never read: the connection is not in a reusable state.
    connector.release_http_session(session, &peer);
    assert_eq!(connector.idle_http_sessions(), 0);
    assert!(!post(&connector, &peer, b"next").await);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
