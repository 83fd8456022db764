//! Helpers of the TCP proxy tests: a proxy with fixed answers that
//! reports what its `logging` saw, loopback origins (echo, reply after
//! end of stream, TLS) and certificates from a test CA.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{Running, WAIT, serve_app, serve_fn};
use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::protocols::Stream;
use pingora_core::server::ServerConf;
use pingora_core::tls::{CertKey, CertStore, TlsAcceptor, TlsSettings, certs_from_pem};
use pingora_core::upstreams::{BasicPeer, PeerOptions};
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::l4::{ProxyTcp, TcpProxy, TcpProxyOptions, TcpSession};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// What `logging` saw of one session.
#[derive(Debug)]
pub(crate) struct Logged {
    pub(crate) error: Option<ErrorType>,
    pub(crate) from_downstream: u64,
    pub(crate) from_upstream: u64,
    pub(crate) spliced: bool,
    pub(crate) duration: Option<Duration>,
    pub(crate) connected: bool,
}

/// A proxy to one peer, optionally uppercasing what the client sends.
pub(crate) struct Fixed {
    pub(crate) to: SocketAddr,
    pub(crate) tls: Option<(String, PeerOptions)>,
    pub(crate) uppercase: bool,
    pub(crate) asked: Arc<AtomicUsize>,
    pub(crate) log: mpsc::UnboundedSender<Logged>,
}

impl ProxyTcp for Fixed {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut TcpSession, _: &mut ()) -> Result<Box<BasicPeer>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let mut peer = BasicPeer::new(self.to);
        if let Some((sni, options)) = &self.tls {
            peer = peer.with_tls(sni.clone());
            peer.options = options.clone();
        }
        peer.options.connection_timeout = Some(Duration::from_secs(2));
        Ok(Box::new(peer))
    }

    fn wants_byte_filters(&self, _: &TcpSession, _: &()) -> bool {
        self.uppercase
    }

    fn downstream_bytes_filter(
        &self,
        _: &mut TcpSession,
        data: &mut bytes::BytesMut,
        end: bool,
        _: &mut (),
    ) -> Result<()> {
        data.make_ascii_uppercase();
        if end {
            data.extend_from_slice(b"<EOF>");
        }
        Ok(())
    }

    async fn logging(&self, session: &mut TcpSession, e: Option<&Error>, _: &mut ()) {
        let _ = self.log.send(Logged {
            error: e.map(|e| *e.etype()),
            from_downstream: session.bytes_from_downstream(),
            from_upstream: session.bytes_from_upstream(),
            spliced: session.spliced(),
            duration: session.duration(),
            connected: session.upstream_digest().is_some(),
        });
    }
}

/// A [`Fixed`] proxy to `to` with `options`, and what it logs.
pub(crate) fn fixed(to: SocketAddr) -> (Fixed, mpsc::UnboundedReceiver<Logged>) {
    let (log, rx) = mpsc::unbounded_channel();
    let sv = Fixed {
        to,
        tls: None,
        uppercase: false,
        asked: Arc::default(),
        log,
    };
    (sv, rx)
}

/// Serve `sv` on loopback with `options` and `max_retries`.
pub(crate) async fn start_tcp_proxy<SV: ProxyTcp + 'static>(
    sv: SV,
    options: TcpProxyOptions,
    max_retries: usize,
) -> Running {
    let mut conf = ServerConf::default();
    conf.max_retries = max_retries;
    serve_app(TcpProxy::new(sv, &conf).unwrap().with_options(options)).await
}

/// The next logged session, waiting at most [`WAIT`].
pub(crate) async fn next_log(rx: &mut mpsc::UnboundedReceiver<Logged>) -> Logged {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no logging in time")
        .expect("the proxy is gone")
}

/// An origin that echoes every byte back and half-closes after the
/// client did.
pub(crate) async fn echo_origin() -> Running {
    serve_fn(|stream, _| async move {
        let (mut r, mut w) = tokio::io::split(stream);
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

/// Echo on `stream` until its end of stream, then half-close.
pub(crate) async fn echo(stream: Stream) {
    let (mut r, mut w) = tokio::io::split(stream);
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

/// A CA certificate (PEM) and a leaf it signed for `name`.
pub(crate) fn ca_and_leaf(name: &str) -> (String, CertKey) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "l4 test ca");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_params = CertificateParams::new(vec![name.to_string()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let leaf =
        CertKey::from_pem(leaf.pem().as_bytes(), leaf_key.serialize_pem().as_bytes()).unwrap();
    (ca.pem(), leaf)
}

/// Peer options that trust `ca_pem` (and only it).
pub(crate) fn trusting(ca_pem: &str) -> PeerOptions {
    let mut options = PeerOptions::default();
    options.ca = Some(Arc::from(certs_from_pem(ca_pem.as_bytes()).unwrap()));
    options
}

/// An acceptor presenting `leaf`.
pub(crate) fn acceptor(leaf: CertKey) -> TlsAcceptor {
    TlsSettings::new(CertStore::new().with_default(leaf))
        .build()
        .unwrap()
}

/// A TLS origin presenting `leaf` that greets with `greeting`, then
/// echoes.
pub(crate) async fn tls_origin(leaf: CertKey, greeting: &'static [u8]) -> Running {
    let acceptor = acceptor(leaf);
    serve_fn(move |stream, _| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            if tls.write_all(greeting).await.is_err() {
                return;
            }
            echo(tls).await;
        }
    })
    .await
}

/// A TLS client connection to `addr` for `sni`, trusting `ca_pem`,
/// offering `alpn`, made by our own connector (rustls by default).
pub(crate) async fn tls_client(
    addr: SocketAddr,
    sni: &str,
    ca_pem: &str,
    alpn: pingora_core::tls::Alpn,
) -> Result<Stream> {
    let connector = TransportConnector::new(ConnectorOptions::default()).unwrap();
    let mut peer = BasicPeer::new(addr).with_tls(sni);
    peer.options = trusting(ca_pem);
    peer.options.alpn = alpn;
    peer.options.total_connection_timeout = Some(WAIT);
    connector.new_stream(&peer).await
}

/// Read exactly `n` bytes, bounded by [`WAIT`].
pub(crate) async fn read_n(stream: &mut (impl AsyncReadExt + Unpin), n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .unwrap();
    buf
}
