//! TLS health checks against a loopback origin that speaks TLS with a
//! certificate from a test CA made at run time.

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Needs a TLS backend; a build without one has nothing to test here.
#![cfg(any(feature = "rustls", feature = "openssl", feature = "boringssl"))]

mod support;

use pingora_core::protocols::l4::L4Stream;
use pingora_core::tls::{CertKey, CertStore, TlsSettings, certs_from_pem};
use pingora_core::upstreams::PeerOptions;
use pingora_load_balancing::Backend;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::{Answer, Origin, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A CA (PEM) and a leaf it signed for `name`.
fn ca_and_leaf(name: &str) -> (String, CertKey) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lb test ca");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_params = CertificateParams::new(vec![name.to_string()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let leaf =
        CertKey::from_pem(leaf.pem().as_bytes(), leaf_key.serialize_pem().as_bytes()).unwrap();
    (ca.pem(), leaf)
}

/// An HTTPS origin on 127.0.0.1:0 answering every request with 200 "ok".
async fn tls_origin(leaf: CertKey) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let acceptor = Arc::new(
        TlsSettings::new(CertStore::new().with_default(leaf))
            .build()
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = Arc::clone(&acceptor);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(Box::new(L4Stream::from_tcp(tcp))).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(WAIT, tls.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let response =
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
                let _ = tls.write_all(response).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, task)
}

fn trusting(ca_pem: &str) -> PeerOptions {
    let mut options = PeerOptions::default();
    options.ca = Some(Arc::from(certs_from_pem(ca_pem.as_bytes()).unwrap()));
    options
}

#[tokio::test]
async fn tls_checks_verify_the_certificate_and_sni() {
    let (ca, leaf) = ca_and_leaf("origin.test");
    let (addr, _task) = tls_origin(leaf).await;
    let backend = Backend::from_addr(addr, 1);
    let timeout = Duration::from_secs(2);

    let tcp = TcpHealthCheck::new()
        .with_tls("origin.test")
        .timeout(timeout)
        .peer_options(trusting(&ca));
    tcp.check(&backend).await.unwrap();
    let http = HttpHealthCheck::new("origin.test", true)
        .timeout(timeout)
        .peer_options(trusting(&ca));
    http.check(&backend).await.unwrap();

    // A name the certificate does not carry fails verification.
    let wrong_sni = HttpHealthCheck::new("origin.test", true)
        .sni("other.test")
        .timeout(timeout)
        .peer_options(trusting(&ca));
    assert!(wrong_sni.check(&backend).await.is_err());
    // So does a CA we do not trust (the system roots).
    let untrusted = TcpHealthCheck::new()
        .with_tls("origin.test")
        .timeout(timeout);
    assert!(untrusted.check(&backend).await.is_err());
}

#[tokio::test]
async fn tls_check_fails_against_a_plain_text_origin() {
    let plain = Origin::start(Answer::Http(200, "ok")).await;
    let backend = Backend::from_addr(plain.addr, 1);
    let check = TcpHealthCheck::new()
        .with_tls("origin.test")
        .timeout(Duration::from_millis(300));
    let start = std::time::Instant::now();
    assert!(check.check(&backend).await.is_err());
    assert!(start.elapsed() < Duration::from_secs(2));
    // Without TLS the same origin passes.
    TcpHealthCheck::new().check(&backend).await.unwrap();
}
