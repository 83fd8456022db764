//! Certificate verification over loopback: wrong hostname, untrusted and
//! expired certificates, the switches that turn checks off, and mutual TLS.

// Test helpers unwrap too: a panic is a failure with a clear location.
#![allow(clippy::unwrap_used)]

mod support;

use pingora_core::connectors::ConnectorOptions;
use pingora_core::tls::TlsBackend;
use pingora_core::tls::{CertKey, CertStore, ClientAuth};
use pingora_core::upstreams::HttpPeer;
use pingora_core::{ErrorSource, ErrorType};
use support::certs::{Ca, leaf_der};
use support::origin::{After, Origin, ping};
use support::tls::{connector, peer, settings};

async fn origin_with(backend: TlsBackend, cert: CertKey) -> Origin {
    let acceptor = settings(backend, CertStore::new().with_default(cert))
        .build()
        .unwrap();
    Origin::start(Some(acceptor), After::KeepAlive).await
}

async fn refused(backend: TlsBackend, peer: &HttpPeer) -> ErrorType {
    let err = connector(backend).new_stream(peer).await.unwrap_err();
    assert_eq!(err.esource(), &ErrorSource::Upstream);
    assert!(!err.retry(), "a certificate error is not retryable");
    *err.etype()
}

#[tokio::test]
async fn wrong_hostname_is_refused_unless_allowed() {
    for backend in TlsBackend::all() {
        wrong_hostname_is_refused_unless_allowed_on(backend).await;
    }
}

async fn wrong_hostname_is_refused_unless_allowed_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let origin = origin_with(backend, ca.leaf(&["a.test"])).await;

    let wrong = peer(&origin, &ca, "b.test");
    assert_eq!(refused(backend, &wrong).await, ErrorType::InvalidCert);

    let mut no_hostname = peer(&origin, &ca, "b.test");
    no_hostname.options.verify_hostname = false;
    assert!(connector(backend).new_stream(&no_hostname).await.is_ok());

    let mut alternative = peer(&origin, &ca, "b.test");
    alternative.options.alternative_names = vec!["c.test".into(), "a.test".into()];
    assert!(connector(backend).new_stream(&alternative).await.is_ok());

    let mut bad_alternative = peer(&origin, &ca, "b.test");
    bad_alternative.options.alternative_names = vec!["c.test".into()];
    assert_eq!(
        refused(backend, &bad_alternative).await,
        ErrorType::InvalidCert
    );
}

#[tokio::test]
async fn untrusted_is_refused_unless_verification_is_off() {
    for backend in TlsBackend::all() {
        untrusted_is_refused_unless_verification_is_off_on(backend).await;
    }
}

async fn untrusted_is_refused_unless_verification_is_off_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let other = Ca::new("other ca");
    let origin = origin_with(backend, ca.leaf(&["a.test"])).await;

    assert_eq!(
        refused(backend, &peer(&origin, &other, "a.test")).await,
        ErrorType::InvalidCert
    );
    // The system roots do not know the test CA either.
    let system = HttpPeer::new(origin.addr, true, "a.test");
    assert_eq!(refused(backend, &system).await, ErrorType::InvalidCert);

    let mut off = peer(&origin, &other, "a.test");
    off.options.verify_cert = false;
    let mut stream = connector(backend).new_stream(&off).await.unwrap();
    assert_eq!(ping(&mut stream).await, 3);
}

#[tokio::test]
async fn connector_ca_file_feeds_the_default_trust_store() {
    for backend in TlsBackend::all() {
        connector_ca_file_feeds_the_default_trust_store_on(backend).await;
    }
}

async fn connector_ca_file_feeds_the_default_trust_store_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let origin = origin_with(backend, ca.leaf(&["a.test"])).await;
    let dir = std::env::temp_dir().join(format!("pingora-tls-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let mut options = ConnectorOptions::default();
    options.ca_file = Some(ca_file);
    let connector = support::tls::connector_with(backend, options);
    let plain_peer = HttpPeer::new(origin.addr, true, "a.test");
    assert!(connector.new_stream(&plain_peer).await.is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn expired_is_refused_unless_verification_is_off() {
    for backend in TlsBackend::all() {
        expired_is_refused_unless_verification_is_off_on(backend).await;
    }
}

async fn expired_is_refused_unless_verification_is_off_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let origin = origin_with(backend, ca.expired_leaf(&["a.test"])).await;
    assert_eq!(
        refused(backend, &peer(&origin, &ca, "a.test")).await,
        ErrorType::InvalidCert
    );

    let mut off = peer(&origin, &ca, "a.test");
    off.options.verify_cert = false;
    assert!(connector(backend).new_stream(&off).await.is_ok());
}

async fn mtls_origin(backend: TlsBackend, server_ca: &Ca, client_ca: &Ca) -> Origin {
    let mut settings = settings(
        backend,
        CertStore::new().with_default(server_ca.leaf(&["a.test"])),
    );
    settings.set_client_auth(ClientAuth::Required(vec![client_ca.der()]));
    Origin::start(Some(settings.build().unwrap()), After::KeepAlive).await
}

#[tokio::test]
async fn mtls_accepts_a_trusted_client_certificate() {
    for backend in TlsBackend::all() {
        mtls_accepts_a_trusted_client_certificate_on(backend).await;
    }
}

async fn mtls_accepts_a_trusted_client_certificate_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let clients = Ca::new("client ca");
    let mut origin = mtls_origin(backend, &ca, &clients).await;

    let client_cert = clients.leaf(&["client.test"]);
    let client_der = leaf_der(&client_cert);
    let mut peer = peer(&origin, &ca, "a.test");
    peer.options.client_cert_key = Some(std::sync::Arc::new(client_cert));
    let mut stream = connector(backend).new_stream(&peer).await.unwrap();
    assert_eq!(ping(&mut stream).await, 1);

    let server = origin.next_handshake().await.unwrap().unwrap();
    assert_eq!(server.peer_certificate.as_deref(), Some(&client_der[..]));
}

#[tokio::test]
async fn mtls_refuses_missing_or_untrusted_client_certificates() {
    for backend in TlsBackend::all() {
        mtls_refuses_missing_or_untrusted_client_certificates_on(backend).await;
    }
}

async fn mtls_refuses_missing_or_untrusted_client_certificates_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let clients = Ca::new("client ca");
    let strangers = Ca::new("stranger ca");
    let mut origin = mtls_origin(backend, &ca, &clients).await;

    let cases = [None, Some(strangers.leaf(&["client.test"]))];
    for client_cert in cases {
        let mut peer = peer(&origin, &ca, "a.test");
        peer.options.client_cert_key = client_cert.map(std::sync::Arc::new);
        // With TLS 1.3 the client may finish its side before the server
        // refuses its certificate; either way no exchange succeeds.
        if let Ok(mut stream) = connector(backend).new_stream(&peer).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = stream.write_all(b"ping\n").await;
            let mut buf = [0u8; 16];
            let read = tokio::time::timeout(support::origin::WAIT, stream.read(&mut buf))
                .await
                .unwrap();
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
        let err = origin.next_handshake().await.unwrap_err();
        assert_eq!(err.etype(), &ErrorType::InvalidCert, "{err}");
        assert_eq!(err.esource(), &ErrorSource::Downstream);
    }
}
