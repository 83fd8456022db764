//! TLS over loopback: handshake, digest, SNI selection, ALPN, versions and
//! the certificate callback.

// Test helpers unwrap too: a panic is a failure with a clear location.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use pingora_core::tls::TlsBackend;
use pingora_core::tls::{Alpn, CertCallback, CertKey, CertStore, TlsVersion};
use support::certs::{Ca, leaf_der};
use support::origin::{After, Origin, ping};
use support::tls::{connector, peer, settings};

#[tokio::test]
async fn handshake_fills_both_digests() {
    for backend in TlsBackend::all() {
        handshake_fills_both_digests_on(backend).await;
    }
}

async fn handshake_fills_both_digests_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let leaf = ca.leaf(&["a.test"]);
    let leaf_bytes = leaf_der(&leaf);
    let acceptor = settings(backend, CertStore::new().with_default(leaf))
        .build()
        .unwrap();
    let mut origin = Origin::start(Some(acceptor), After::KeepAlive).await;

    let mut stream = connector(backend)
        .new_stream(&peer(&origin, &ca, "a.test"))
        .await
        .unwrap();
    assert_eq!(ping(&mut stream).await, 1);

    let digest = stream.digest().unwrap();
    assert!(digest.peer_addr.is_some());
    let tls = digest.tls.as_ref().unwrap();
    assert_eq!(tls.version, "TLSv1.3");
    assert!(
        tls.cipher.contains("AES") || tls.cipher.contains("CHACHA"),
        "{}",
        tls.cipher
    );
    assert_eq!(tls.sni.as_deref(), Some("a.test"));
    assert_eq!(tls.peer_certificate.as_deref(), Some(&leaf_bytes[..]));
    assert!(!tls.resumed);

    let server = origin.next_handshake().await.unwrap().unwrap();
    assert_eq!(server.sni.as_deref(), Some("a.test"));
    assert_eq!(server.peer_certificate, None);
}

#[tokio::test]
async fn certificate_is_picked_by_sni() {
    for backend in TlsBackend::all() {
        certificate_is_picked_by_sni_on(backend).await;
    }
}

async fn certificate_is_picked_by_sni_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let (default, b, wild) = (
        ca.leaf(&["a.test"]),
        ca.leaf(&["b.test"]),
        ca.leaf(&["*.c.test"]),
    );
    let expect = [
        ("a.test", leaf_der(&default)),
        ("b.test", leaf_der(&b)),
        ("x.c.test", leaf_der(&wild)),
    ];
    let store = CertStore::new()
        .with_default(default)
        .with_name("b.test", b)
        .with_name("*.c.test", wild);
    let acceptor = settings(backend, store).build().unwrap();
    let origin = Origin::start(Some(acceptor), After::KeepAlive).await;
    let connector = connector(backend);
    for (sni, leaf) in expect {
        let stream = connector
            .new_stream(&peer(&origin, &ca, sni))
            .await
            .unwrap();
        let tls = stream.digest().unwrap().tls.clone().unwrap();
        assert_eq!(tls.peer_certificate.as_deref(), Some(&leaf[..]), "{sni}");
    }
}

#[tokio::test]
async fn no_certificate_for_the_name_fails_the_handshake() {
    for backend in TlsBackend::all() {
        no_certificate_for_the_name_fails_the_handshake_on(backend).await;
    }
}

async fn no_certificate_for_the_name_fails_the_handshake_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let store = CertStore::new().with_name("only.test", ca.leaf(&["only.test"]));
    let acceptor = settings(backend, store).build().unwrap();
    let mut origin = Origin::start(Some(acceptor), After::KeepAlive).await;
    let err = connector(backend)
        .new_stream(&peer(&origin, &ca, "other.test"))
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &pingora_core::ErrorType::TLSHandshakeFailure);
    assert_eq!(err.esource(), &pingora_core::ErrorSource::Upstream);
    assert!(origin.next_handshake().await.is_err());
}

async fn negotiated(backend: TlsBackend, server: Option<Alpn>, client: Alpn) -> Option<Vec<u8>> {
    let ca = Ca::new("test ca");
    let mut settings = settings(backend, CertStore::new().with_default(ca.leaf(&["a.test"])));
    if let Some(alpn) = server {
        settings.set_alpn(alpn);
    }
    let origin = Origin::start(Some(settings.build().unwrap()), After::KeepAlive).await;
    let mut peer = peer(&origin, &ca, "a.test");
    peer.options.alpn = client;
    let stream = connector(backend).new_stream(&peer).await.unwrap();
    stream.digest().unwrap().tls.as_ref().unwrap().alpn.clone()
}

#[tokio::test]
async fn alpn_negotiates_h2_or_http1() {
    for backend in TlsBackend::all() {
        alpn_negotiates_h2_or_http1_on(backend).await;
    }
}

async fn alpn_negotiates_h2_or_http1_on(backend: TlsBackend) {
    assert_eq!(
        negotiated(backend, Some(Alpn::H2H1), Alpn::H2H1)
            .await
            .as_deref(),
        Some(&b"h2"[..])
    );
    assert_eq!(
        negotiated(backend, Some(Alpn::H2H1), Alpn::H1)
            .await
            .as_deref(),
        Some(&b"http/1.1"[..])
    );
    assert_eq!(
        negotiated(backend, Some(Alpn::H1), Alpn::H2H1)
            .await
            .as_deref(),
        Some(&b"http/1.1"[..])
    );
    // A server without ALPN lets the client fall back to HTTP/1.
    assert_eq!(negotiated(backend, None, Alpn::H2H1).await, None);
}

#[tokio::test]
async fn max_version_caps_the_protocol() {
    for backend in TlsBackend::all() {
        max_version_caps_the_protocol_on(backend).await;
    }
}

async fn max_version_caps_the_protocol_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let mut settings = settings(backend, CertStore::new().with_default(ca.leaf(&["a.test"])));
    settings.set_max_version(TlsVersion::Tls12);
    let origin = Origin::start(Some(settings.build().unwrap()), After::KeepAlive).await;
    let stream = connector(backend)
        .new_stream(&peer(&origin, &ca, "a.test"))
        .await
        .unwrap();
    assert_eq!(
        stream.digest().unwrap().tls.as_ref().unwrap().version,
        "TLSv1.2"
    );
}

#[test]
fn empty_version_range_is_refused() {
    let mut settings = pingora_core::tls::TlsSettings::new(CertStore::new());
    settings.set_min_version(TlsVersion::Tls13);
    settings.set_max_version(TlsVersion::Tls12);
    assert!(settings.build().is_err());
}

/// Picks a certificate per SNI, as a user callback would from its own map.
struct Minted(CertKey);

impl CertCallback for Minted {
    fn certificate(&self, sni: Option<&str>) -> Option<Arc<CertKey>> {
        (sni == Some("minted.test")).then(|| Arc::new(self.0.clone()))
    }
}

#[tokio::test]
async fn callback_chooses_the_certificate() {
    for backend in TlsBackend::all() {
        callback_chooses_the_certificate_on(backend).await;
    }
}

async fn callback_chooses_the_certificate_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let minted = ca.leaf(&["minted.test"]);
    let minted_der = leaf_der(&minted);
    let mut settings = settings(backend, CertStore::new().with_default(ca.leaf(&["a.test"])));
    settings.set_cert_callback(Arc::new(Minted(minted)));
    let origin = Origin::start(Some(settings.build().unwrap()), After::KeepAlive).await;
    let connector = connector(backend);
    let stream = connector
        .new_stream(&peer(&origin, &ca, "minted.test"))
        .await
        .unwrap();
    let tls = stream.digest().unwrap().tls.clone().unwrap();
    assert_eq!(tls.peer_certificate.as_deref(), Some(&minted_der[..]));
    // Other names fall back to the store.
    assert!(
        connector
            .new_stream(&peer(&origin, &ca, "a.test"))
            .await
            .is_ok()
    );
}
