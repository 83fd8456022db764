//! Post-quantum key exchange with the rustls backend: X25519MLKEM768 is
//! offered and preferred by default, on both sides.

#![cfg(feature = "rustls")]
// Test helpers unwrap too: a panic is a failure with a clear location.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use pingora_core::tls::{CertStore, TlsBackend};
use rustls::crypto::SupportedKxGroup;
use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
use rustls::{ClientConfig, NamedGroup, RootCertStore};
use rustls_pki_types::ServerName;
use support::certs::Ca;
use support::origin::{After, Origin, WAIT};
use support::tls::{connector, settings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Handshake with our rustls listener from a plain rustls client offering
/// `groups` (the provider's defaults when `None`); the group negotiated.
async fn negotiated_group(groups: Option<Vec<&'static dyn SupportedKxGroup>>) -> NamedGroup {
    let ca = Ca::new("pq ca");
    let acceptor = settings(
        TlsBackend::Rustls,
        CertStore::new().with_default(ca.leaf(&["pq.test"])),
    )
    .build()
    .unwrap();
    let origin = Origin::start(Some(acceptor), After::KeepAlive).await;

    let mut provider = default_provider();
    if let Some(groups) = groups {
        provider.kx_groups = groups;
    }
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(origin.addr).await.unwrap();
    let name = ServerName::try_from("pq.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut stream = tokio::time::timeout(WAIT, tls.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    // A round trip, so the server has finished its side too.
    stream.write_all(b"ping\n").await.unwrap();
    let mut answer = String::new();
    let mut reader = BufReader::new(&mut stream);
    tokio::time::timeout(WAIT, reader.read_line(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("pong"), "{answer}");
    stream
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .unwrap()
        .name()
}

#[tokio::test]
async fn client_offering_only_x25519mlkem768_gets_it() {
    let group = negotiated_group(Some(vec![kx_group::X25519MLKEM768])).await;
    assert_eq!(group, NamedGroup::X25519MLKEM768);
}

#[tokio::test]
async fn default_client_negotiates_x25519mlkem768() {
    assert_eq!(negotiated_group(None).await, NamedGroup::X25519MLKEM768);
}

#[tokio::test]
async fn classical_client_still_connects() {
    let group = negotiated_group(Some(vec![kx_group::X25519])).await;
    assert_eq!(group, NamedGroup::X25519);
}

/// Our own connector (the proxy's upstream side) offers it too: a rustls
/// server that accepts nothing else completes the handshake with it.
#[tokio::test]
async fn our_connector_offers_x25519mlkem768() {
    let ca = Ca::new("pq ca");
    let (cert, key) = ca.leaf_pem(&["pq.test"]);
    let chain = rustls_pki_types::pem::PemObject::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<rustls_pki_types::CertificateDer<'static>>, _>>()
        .unwrap();
    let key = rustls_pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap();
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::X25519MLKEM768];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = acceptor.accept(tcp).await.unwrap();
        stream
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .unwrap()
            .name()
    });
    let mut peer = pingora_core::upstreams::HttpPeer::new(addr, true, "pq.test");
    peer.options.ca = Some(ca.roots());
    let stream = tokio::time::timeout(WAIT, connector(TlsBackend::Rustls).new_stream(&peer))
        .await
        .unwrap()
        .unwrap();
    let group = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
    assert_eq!(group, NamedGroup::X25519MLKEM768);
    drop(stream);
}
