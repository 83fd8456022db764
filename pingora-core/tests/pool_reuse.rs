//! Connection pooling over loopback, counted at the origin: reuse, a
//! connection closed by the origin, the size bound, the idle timeout and
//! SNI separation.

// Test helpers unwrap too: a panic is a failure with a clear location.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::tls::{CertStore, TlsBackend};
use pingora_core::upstreams::{HttpPeer, Peer};
use support::certs::Ca;
use support::origin::{After, Origin, WAIT, ping};
use support::tls::settings;

fn connector(pool_size: usize) -> TransportConnector {
    let mut options = ConnectorOptions::default();
    options.keepalive_pool_size = pool_size;
    TransportConnector::new(options).unwrap()
}

fn connector_on(backend: TlsBackend, pool_size: usize) -> TransportConnector {
    let mut options = ConnectorOptions::default();
    options.keepalive_pool_size = pool_size;
    support::tls::connector_with(backend, options)
}

/// Poll `cond` every 10ms until it holds, for at most [`WAIT`].
async fn eventually(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn sequential_requests(peer: &HttpPeer, origin: &Origin, connector: &TransportConnector) {
    for i in 0..5 {
        let (mut stream, reused) = connector.get_stream(peer).await.unwrap();
        assert_eq!(reused, i > 0);
        assert_eq!(ping(&mut stream).await, 1);
        connector.release_stream(stream, peer.reuse_hash(), None);
    }
    assert_eq!(origin.accepted(), 1);
}

#[tokio::test]
async fn one_connection_serves_sequential_requests() {
    let origin = Origin::start(None, After::KeepAlive).await;
    let peer = HttpPeer::new(origin.addr, false, "");
    sequential_requests(&peer, &origin, &connector(16)).await;
}

#[tokio::test]
async fn one_tls_connection_serves_sequential_requests() {
    for backend in TlsBackend::all() {
        one_tls_connection_serves_sequential_requests_on(backend).await;
    }
}

async fn one_tls_connection_serves_sequential_requests_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let acceptor = settings(backend, CertStore::new().with_default(ca.leaf(&["a.test"])))
        .build()
        .unwrap();
    let origin = Origin::start(Some(acceptor), After::KeepAlive).await;
    let mut peer = HttpPeer::new(origin.addr, true, "a.test");
    peer.options.ca = Some(ca.roots());
    sequential_requests(&peer, &origin, &connector_on(backend, 16)).await;
}

#[tokio::test]
async fn connection_closed_by_the_origin_is_not_reused() {
    let origin = Origin::start(None, After::Close).await;
    let peer = HttpPeer::new(origin.addr, false, "");
    let connector = connector(16);

    let (mut stream, _) = connector.get_stream(&peer).await.unwrap();
    assert_eq!(ping(&mut stream).await, 1);
    connector.release_stream(stream, peer.reuse_hash(), None);
    // The pool's sweeper sees the origin's FIN and drops the connection
    // (within about a second; a `get` before then would refuse it too).
    eventually(|| connector.pool().is_empty()).await;

    let (mut stream, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    assert_eq!(ping(&mut stream).await, 2);
}

#[tokio::test]
async fn pool_size_is_bounded() {
    let origin = Origin::start(None, After::KeepAlive).await;
    let peer = HttpPeer::new(origin.addr, false, "");
    let connector = connector(2);
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(connector.get_stream(&peer).await.unwrap().0);
    }
    for stream in streams {
        connector.release_stream(stream, peer.reuse_hash(), None);
    }
    assert_eq!(connector.pool().len(), 2);
    // The origin counts in its own task, which may lag the client.
    eventually(|| origin.accepted() == 3).await;
}

#[tokio::test]
async fn idle_timeout_holds() {
    let origin = Origin::start(None, After::KeepAlive).await;
    let mut peer = HttpPeer::new(origin.addr, false, "");
    peer.options.idle_timeout = Some(Duration::from_millis(100));
    let connector = connector(16);

    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    connector.release_stream(stream, peer.reuse_hash(), peer.options.idle_timeout);
    assert_eq!(connector.pool().len(), 1);
    eventually(|| connector.pool().is_empty()).await;
    let (_, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    eventually(|| origin.accepted() == 2).await;
}

#[tokio::test]
async fn different_snis_never_share_a_connection() {
    for backend in TlsBackend::all() {
        different_snis_never_share_a_connection_on(backend).await;
    }
}

async fn different_snis_never_share_a_connection_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let store = CertStore::new()
        .with_name("a.test", ca.leaf(&["a.test"]))
        .with_name("b.test", ca.leaf(&["b.test"]));
    let acceptor = settings(backend, store).build().unwrap();
    let origin = Origin::start(Some(acceptor), After::KeepAlive).await;
    let connector = connector_on(backend, 16);
    let mut a = HttpPeer::new(origin.addr, true, "a.test");
    a.options.ca = Some(ca.roots());
    let mut b = HttpPeer::new(origin.addr, true, "b.test");
    b.options.ca = Some(ca.roots());
    assert_ne!(a.reuse_hash(), b.reuse_hash());

    let (stream, _) = connector.get_stream(&a).await.unwrap();
    connector.release_stream(stream, a.reuse_hash(), None);
    let (stream, reused) = connector.get_stream(&b).await.unwrap();
    assert!(!reused);
    let tls = stream.digest().unwrap().tls.clone().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("b.test"));
    assert_eq!(origin.accepted(), 2);
    // a's connection is still there for a.
    assert!(connector.get_stream(&a).await.unwrap().1);
}

#[tokio::test]
async fn tls_connection_closed_by_the_origin_is_not_reused() {
    for backend in TlsBackend::all() {
        tls_connection_closed_by_the_origin_is_not_reused_on(backend).await;
    }
}

async fn tls_connection_closed_by_the_origin_is_not_reused_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let acceptor = settings(backend, CertStore::new().with_default(ca.leaf(&["a.test"])))
        .build()
        .unwrap();
    let origin = Origin::start(Some(acceptor), After::Close).await;
    let mut peer = HttpPeer::new(origin.addr, true, "a.test");
    peer.options.ca = Some(ca.roots());
    let connector = connector_on(backend, 16);

    let (mut stream, _) = connector.get_stream(&peer).await.unwrap();
    assert_eq!(ping(&mut stream).await, 1);
    connector.release_stream(stream, peer.reuse_hash(), None);
    // The close arrives through TLS (close_notify, then FIN).
    eventually(|| connector.pool().is_empty()).await;
    let (mut stream, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    assert_eq!(ping(&mut stream).await, 2);
}
