//! Connecting to peers through an HTTP proxy (`HttpPeer::new_proxy`): the
//! connector asks the proxy to `CONNECT` with the peer's fields, then
//! speaks to the peer through the tunnel, TLS end to end; a refusal is a
//! clear `ConnectProxyFailure`, and proxied connections never share the
//! pool with direct ones.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pingora_core::ErrorType;
use pingora_core::tls::{CertStore, TlsBackend};
use pingora_core::upstreams::{HttpPeer, Peer, Proxy};
use support::certs::Ca;
use support::origin::{After, Origin, WAIT, ping};
use support::tls::{connector, settings};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::mpsc;

/// A `CONNECT` proxy: each request head it reads is reported; it opens
/// the tunnel when the head carries `Proxy-Authorization: Basic ok`, and
/// answers 407 otherwise.
fn serve_proxy<S>(stream: S, heads: mpsc::UnboundedSender<String>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = stream;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let _ = heads.send(head.clone());
        if !head.contains("\r\nProxy-Authorization: Basic ok\r\n") {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
                )
                .await;
            return;
        }
        let target = head.split(' ').nth(1).unwrap().to_owned();
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        stream
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .unwrap();
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
    });
}

async fn tcp_proxy() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            serve_proxy(tcp, tx.clone());
        }
    });
    (addr, rx)
}

fn authorized() -> BTreeMap<String, Vec<u8>> {
    let mut headers = BTreeMap::new();
    headers.insert("Proxy-Authorization".to_owned(), b"Basic ok".to_vec());
    headers
}

async fn next_head(heads: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, heads.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn tls_runs_end_to_end_through_the_tunnel() {
    let backend = TlsBackend::default_backend().unwrap();
    let ca = Ca::new("proxy test ca");
    let acceptor = settings(
        backend,
        CertStore::new().with_default(ca.leaf(&["origin.test"])),
    )
    .build()
    .unwrap();
    let mut origin = Origin::start(Some(acceptor), After::KeepAlive).await;
    let (proxy, mut heads) = tcp_proxy().await;

    let ip = origin.addr.ip();
    let port = origin.addr.port();
    let mut peer = HttpPeer::new_proxy(
        &proxy.to_string(),
        ip,
        port,
        true,
        "origin.test",
        authorized(),
    );
    peer.options.ca = Some(ca.roots());
    let mut stream = connector(backend).new_stream(&peer).await.unwrap();
    assert_eq!(ping(&mut stream).await, 1);
    // The certificate was checked against the peer's name, through the
    // tunnel: the origin saw the handshake.
    assert!(origin.next_handshake().await.unwrap().is_some());
    let head = next_head(&mut heads).await;
    let authority = format!("{ip}:{port}");
    assert!(
        head.starts_with(&format!("CONNECT {authority} HTTP/1.1\r\n")),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nHost: {authority}\r\n")),
        "{head}"
    );
}

#[tokio::test]
async fn a_refused_tunnel_is_a_connect_proxy_failure() {
    let origin = Origin::start(None, After::KeepAlive).await;
    let (proxy, mut heads) = tcp_proxy().await;
    let peer = HttpPeer::new_proxy(
        &proxy.to_string(),
        origin.addr.ip(),
        origin.addr.port(),
        false,
        "",
        BTreeMap::new(),
    );
    let backend = TlsBackend::default_backend().unwrap();
    let err = connector(backend).new_stream(&peer).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectProxyFailure, "{err}");
    assert!(err.to_string().contains("407"), "{err}");
    assert!(!err.retry(), "a refusal is not worth retrying");
    next_head(&mut heads).await;
    assert_eq!(origin.accepted(), 0);
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_retryable_connect_error() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ip = "127.0.0.1".parse().unwrap();
    let peer = HttpPeer::new_proxy(&dead.to_string(), ip, 80, false, "", BTreeMap::new());
    let backend = TlsBackend::default_backend().unwrap();
    let err = connector(backend).new_stream(&peer).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectRefused, "{err}");
    assert!(err.retry());
}

struct TempSocket(PathBuf);

impl Drop for TempSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn the_proxy_may_listen_on_a_unix_socket() {
    let origin = Origin::start(None, After::KeepAlive).await;
    let path = std::env::temp_dir().join(format!("pingora-proxy-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let _cleanup = TempSocket(path.clone());
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, mut heads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((unix, _)) = listener.accept().await {
            serve_proxy(unix, tx.clone());
        }
    });
    let next_hop = Path::new(&path).to_str().unwrap();
    let peer = HttpPeer::new_proxy(
        next_hop,
        origin.addr.ip(),
        origin.addr.port(),
        false,
        "",
        authorized(),
    );
    let backend = TlsBackend::default_backend().unwrap();
    let mut stream = connector(backend).new_stream(&peer).await.unwrap();
    assert_eq!(ping(&mut stream).await, 1);
    next_head(&mut heads).await;
}

#[test]
fn proxied_and_direct_connections_are_never_pooled_together() {
    let origin: SocketAddr = "192.0.2.1:443".parse().unwrap();
    let direct = HttpPeer::new(origin, true, "a.test");
    let mut proxied = HttpPeer::new(origin, true, "a.test");
    proxied.proxy = Some(Proxy::new(
        "127.0.0.1:3128".parse::<SocketAddr>().unwrap(),
        "192.0.2.1",
        443,
    ));
    let mut other_credentials = proxied.clone();
    other_credentials.proxy = other_credentials
        .proxy
        .map(|p| p.with_header("Proxy-Authorization", "Basic other"));
    assert_ne!(direct.reuse_hash(), proxied.reuse_hash());
    assert_ne!(proxied.reuse_hash(), other_credentials.reuse_hash());
    assert_eq!(proxied.reuse_hash(), proxied.clone().reuse_hash());
    assert!(
        proxied.to_string().contains("via proxy 127.0.0.1:3128"),
        "{proxied}"
    );
}

#[tokio::test]
async fn a_silent_proxy_times_out_within_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    // Accepts and never answers.
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let ip = "127.0.0.1".parse().unwrap();
    let mut peer = HttpPeer::new_proxy(&proxy.to_string(), ip, 80, false, "", authorized());
    peer.options.connection_timeout = Some(std::time::Duration::from_millis(200));
    let backend = TlsBackend::default_backend().unwrap();
    let started = std::time::Instant::now();
    let err = connector(backend).new_stream(&peer).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectTimedout, "{err}");
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}
