//! TLS over loopback: certificate reload, session resumption and timeouts.

// Test helpers unwrap too: a panic is a failure with a clear location.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::L4Stream;
use pingora_core::tls::CertStore;
use pingora_core::tls::TlsBackend;
use pingora_core::upstreams::HttpPeer;
use pingora_core::{ErrorSource, ErrorType};
use support::certs::{Ca, leaf_der};
use support::origin::{After, Origin, ping};
use support::tls::{connector, peer, settings};

fn presented(stream: &Stream) -> Vec<u8> {
    let tls = stream.digest().unwrap().tls.clone().unwrap();
    tls.peer_certificate.clone().unwrap()
}

#[tokio::test]
async fn reload_takes_effect_for_new_connections() {
    for backend in TlsBackend::all() {
        reload_takes_effect_for_new_connections_on(backend).await;
    }
}

async fn reload_takes_effect_for_new_connections_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let (old, new) = (ca.leaf(&["a.test"]), ca.leaf(&["a.test"]));
    let (old_der, new_der) = (leaf_der(&old), leaf_der(&new));
    let acceptor = settings(backend, CertStore::new().with_default(old))
        .build()
        .unwrap();
    let origin = Origin::start(Some(acceptor.clone()), After::KeepAlive).await;
    let connector = connector(backend);

    let mut before = connector
        .new_stream(&peer(&origin, &ca, "a.test"))
        .await
        .unwrap();
    assert_eq!(presented(&before), old_der);

    acceptor.reload(CertStore::new().with_default(new));
    let after = connector
        .new_stream(&peer(&origin, &ca, "a.test"))
        .await
        .unwrap();
    assert_eq!(presented(&after), new_der);
    // The connection made before the reload carries on.
    assert_eq!(ping(&mut before).await, 1);
}

#[tokio::test]
async fn reload_from_files_and_failed_reload_keeps_the_old_certificate() {
    for backend in TlsBackend::all() {
        reload_from_files_and_failed_reload_keeps_the_old_certificate_on(backend).await;
    }
}

async fn reload_from_files_and_failed_reload_keeps_the_old_certificate_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let dir = std::env::temp_dir().join(format!("pingora-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (cert_pem, key_pem) = ca.leaf_pem(&["a.test"]);
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();

    let acceptor = support::tls::settings_from_files(backend, &cert_path, &key_path)
        .unwrap()
        .build()
        .unwrap();
    let origin = Origin::start(Some(acceptor.clone()), After::KeepAlive).await;
    let connector = connector(backend);
    let first = presented(
        &connector
            .new_stream(&peer(&origin, &ca, "a.test"))
            .await
            .unwrap(),
    );

    assert!(
        acceptor
            .reload_from_files(dir.join("missing.pem"), &key_path)
            .is_err()
    );
    let same = presented(
        &connector
            .new_stream(&peer(&origin, &ca, "a.test"))
            .await
            .unwrap(),
    );
    assert_eq!(first, same);

    let (cert_pem, key_pem) = ca.leaf_pem(&["a.test"]);
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    acceptor.reload_from_files(&cert_path, &key_path).unwrap();
    let fresh = presented(
        &connector
            .new_stream(&peer(&origin, &ca, "a.test"))
            .await
            .unwrap(),
    );
    assert_ne!(first, fresh);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sessions_are_resumed() {
    for backend in TlsBackend::all() {
        sessions_are_resumed_on(backend).await;
    }
}

async fn sessions_are_resumed_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let acceptor = settings(backend, CertStore::new().with_default(ca.leaf(&["a.test"])))
        .build()
        .unwrap();
    let origin = Origin::start(Some(acceptor), After::KeepAlive).await;
    let connector = connector(backend);

    let mut first = connector
        .new_stream(&peer(&origin, &ca, "a.test"))
        .await
        .unwrap();
    // TLS 1.3 tickets arrive after the handshake: read something first.
    ping(&mut first).await;
    assert!(!first.digest().unwrap().tls.as_ref().unwrap().resumed);
    let second = connector
        .new_stream(&peer(&origin, &ca, "a.test"))
        .await
        .unwrap();
    assert!(second.digest().unwrap().tls.as_ref().unwrap().resumed);
}

#[tokio::test]
async fn silent_server_times_the_handshake_out() {
    for backend in TlsBackend::all() {
        silent_server_times_the_handshake_out_on(backend).await;
    }
}

async fn silent_server_times_the_handshake_out_on(backend: TlsBackend) {
    // Accepts TCP but never answers the ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let held = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(held);
    });
    let mut peer = HttpPeer::new(addr, true, "a.test");
    peer.options.total_connection_timeout = Some(Duration::from_millis(200));
    let err = connector(backend).new_stream(&peer).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::TLSHandshakeTimedout);
    assert_eq!(err.esource(), &ErrorSource::Upstream);
    assert!(err.retry());
    server.abort();
}

#[tokio::test]
async fn silent_client_times_the_server_handshake_out() {
    for backend in TlsBackend::all() {
        silent_client_times_the_server_handshake_out_on(backend).await;
    }
}

async fn silent_client_times_the_server_handshake_out_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let mut settings = settings(backend, CertStore::new().with_default(ca.leaf(&["a.test"])));
    settings.set_handshake_timeout(Duration::from_millis(200));
    let acceptor = settings.build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let err = acceptor
        .accept(Box::new(L4Stream::from_tcp(tcp)))
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ErrorType::TLSHandshakeTimedout);
    assert_eq!(err.esource(), &ErrorSource::Downstream);
}

#[tokio::test]
async fn tls_over_a_unix_socket() {
    for backend in TlsBackend::all() {
        tls_over_a_unix_socket_on(backend).await;
    }
}

async fn tls_over_a_unix_socket_on(backend: TlsBackend) {
    let ca = Ca::new("test ca");
    let acceptor = settings(backend, CertStore::new().with_default(ca.leaf(&["a.test"])))
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("pingora-tls-uds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tls.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((unix, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(Box::new(L4Stream::from_unix(unix))).await;
            });
        }
    });
    let mut peer = HttpPeer::new_uds(&path, true, "a.test");
    peer.options.ca = Some(ca.roots());
    let stream = connector(backend).new_stream(&peer).await.unwrap();
    assert_eq!(
        stream.digest().unwrap().tls.as_ref().unwrap().version,
        "TLSv1.3"
    );

    // Without an SNI there is no name to verify a Unix socket peer by.
    let mut nameless = HttpPeer::new_uds(&path, true, "");
    nameless.options.ca = Some(ca.roots());
    let err = connector(backend).new_stream(&nameless).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::TLSHandshakeFailure);
    let _ = std::fs::remove_dir_all(&dir);
}
