//! Accepting the PROXY protocol on a listener, and the connection filter:
//! real listeners on 127.0.0.1, real client sockets.
//!
//! Trust is decided by the socket's peer: the listener trusts 127.0.0.1,
//! and a client that must not be trusted connects from 127.0.0.2.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr as InetAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::apps::{ListenerOptions, ServerApp};
use pingora_core::listeners::{
    Cidr, ConnectionFilter, ProxyProtocolSettings, ServerAddress, TcpSocketOptions,
};
use pingora_core::protocols::proxy_protocol::{Tlv, encode_v1, encode_v2};
use pingora_core::protocols::{SocketAddr, Stream};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::listening::ListeningService;
use pingora_core::services::{Service, ServiceContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

/// Writes what the connection's digest says (`peer socket tlvs`), a
/// newline, then the first bytes the client sent, and closes.
struct ShowPeer;

#[async_trait]
impl ServerApp for ShowPeer {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        _: &ShutdownWatch,
    ) -> Option<Stream> {
        let digest = stream.digest().cloned().unwrap_or_default();
        let show = |a: Option<SocketAddr>| a.map_or("-".to_owned(), |a| a.to_string());
        let tlvs = digest.proxy_header.as_ref().map_or(0, |h| h.tlvs.len());
        let line = format!(
            "{} {} {tlvs}\n",
            show(digest.peer_addr),
            show(digest.socket_peer_addr)
        );
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.unwrap_or(0);
        let _ = stream.write_all(line.as_bytes()).await;
        let _ = stream.write_all(&buf[..n]).await;
        let _ = stream.shutdown().await;
        None
    }
}

/// Drops every connection whose client is not in `allow`.
struct Allow(Vec<Cidr>);

#[async_trait]
impl ConnectionFilter for Allow {
    async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
        addr.and_then(SocketAddr::as_inet)
            .is_some_and(|a| self.0.iter().any(|n| n.contains(a.ip())))
    }
}

/// A [`ShowPeer`] service on 127.0.0.1 with `options` and `filter`: its
/// address, and the sender that stops it.
async fn serve(
    options: ListenerOptions,
    filter: Option<Arc<dyn ConnectionFilter>>,
) -> (InetAddr, watch::Sender<bool>) {
    let mut service = ListeningService::new("pp", Arc::new(ShowPeer));
    let addr = ServerAddress::Tcp("127.0.0.1:0".into(), TcpSocketOptions::default());
    service.add_listener(addr, None, options);
    if let Some(filter) = filter {
        service.set_connection_filter(filter);
    }
    let bound = service.bound_addrs();
    let (stop_tx, stop) = watch::channel(false);
    let (ctx, mut ready) = ServiceContext::standalone(stop);
    tokio::spawn(async move { service.start_service(ctx).await });
    ready.wait().await;
    let addr = *bound.get().unwrap()[0].as_inet().unwrap();
    (addr, stop_tx)
}

fn trusting_localhost() -> ProxyProtocolSettings {
    ProxyProtocolSettings::trusting(["127.0.0.1".parse().unwrap()])
        .with_header_timeout(Duration::from_millis(300))
}

/// Connect to `addr` from `from` (127.0.0.1 is trusted, 127.0.0.2 not).
async fn connect_from(from: &str, addr: InetAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Send `chunks` (pausing between them), then read all the server says.
async fn exchange(mut client: TcpStream, chunks: &[&[u8]]) -> String {
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        client.write_all(chunk).await.unwrap();
    }
    let mut out = Vec::new();
    let read = client.read_to_end(&mut out);
    // A connection closed with unread bytes may end in a reset: what was
    // read before it is the answer.
    let _ = tokio::time::timeout(WAIT, read).await.unwrap();
    String::from_utf8(out).unwrap()
}

fn v1(source: &str, destination: &str) -> Vec<u8> {
    encode_v1(Some((
        source.parse().unwrap(),
        destination.parse().unwrap(),
    )))
}

/// The value of the series `series` (`name` or `name{label="value"}`) in
/// the default registry, 0 when it is not there.
fn metric(series: &str) -> f64 {
    use pingora_core::metrics::prometheus::{Encoder, TextEncoder, gather};
    let mut text = Vec::new();
    let families = gather();
    TextEncoder::new().encode(&families, &mut text).unwrap();
    String::from_utf8(text)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_trusted_v1_header_names_the_client_and_nothing_more_is_taken() {
    let options = ListenerOptions::default().with_proxy_protocol(trusting_localhost());
    let (addr, _stop) = serve(options, None).await;
    let mut bytes = v1("203.0.113.7:50123", "198.51.100.1:443");
    bytes.extend_from_slice(b"hello");
    let client = connect_from("127.0.0.1", addr).await;
    let local = client.local_addr().unwrap();
    let out = exchange(client, &[&bytes]).await;
    assert_eq!(out, format!("203.0.113.7:50123 {local} 0\nhello"));
}

#[tokio::test]
async fn a_trusted_v2_header_in_pieces_keeps_its_tlvs() {
    let options = ListenerOptions::default().with_proxy_protocol(trusting_localhost());
    let (addr, _stop) = serve(options, None).await;
    let source = "[2001:db8::7]:4000".parse().unwrap();
    let destination = "[2001:db8::1]:443".parse().unwrap();
    let tlvs = [Tlv {
        kind: 0x02,
        value: b"example.com".to_vec(),
    }];
    let header = encode_v2(Some((source, destination)), &tlvs).unwrap();
    let client = connect_from("127.0.0.1", addr).await;
    let local = client.local_addr().unwrap();
    // The header arrives in three writes, then the app's bytes.
    let out = exchange(
        client,
        &[&header[..5], &header[5..20], &header[20..], b"hi"],
    )
    .await;
    assert_eq!(out, format!("[2001:db8::7]:4000 {local} 1\nhi"));
}

#[tokio::test]
async fn an_untrusted_sender_is_never_believed() {
    let options = ListenerOptions::default().with_proxy_protocol(trusting_localhost());
    let (addr, _stop) = serve(options, None).await;
    let header = v1("203.0.113.7:50123", "198.51.100.1:443");
    let client = connect_from("127.0.0.2", addr).await;
    let local = client.local_addr().unwrap();
    let out = exchange(client, &[&header]).await;
    // Its header is just the app's bytes.
    let expected = format!("{local} {local} 0\n{}", String::from_utf8(header).unwrap());
    assert_eq!(out, expected);
}

#[tokio::test]
async fn a_trusted_sender_without_a_valid_header_is_closed() {
    let options = ListenerOptions::default().with_proxy_protocol(trusting_localhost());
    let (addr, _stop) = serve(options, None).await;
    let rejected = |reason| {
        metric(&format!(
            "pingora_proxy_protocol_rejected_total{{reason=\"{reason}\"}}"
        ))
    };
    let (missing, malformed, timeout) = (
        rejected("missing"),
        rejected("malformed"),
        rejected("timeout"),
    );
    let cases: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PROXY TCP4 203.0.113.7 nonsense\r\nGET / HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x2f\x11\x00\x0cgarbage-----",
    ];
    for bytes in cases {
        let client = connect_from("127.0.0.1", addr).await;
        assert_eq!(exchange(client, &[bytes]).await, "", "{bytes:?}");
    }
    // Half a header, then silence: closed at the header timeout.
    let client = connect_from("127.0.0.1", addr).await;
    let started = Instant::now();
    assert_eq!(exchange(client, &[b"PROXY TCP4 203.0"]).await, "");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(rejected("missing") > missing);
    assert!(rejected("malformed") >= malformed + 2.0);
    assert!(rejected("timeout") > timeout);
}

#[tokio::test]
async fn an_optional_header_may_be_left_out() {
    let proxy = trusting_localhost().with_required(false);
    let options = ListenerOptions::default().with_proxy_protocol(proxy);
    let (addr, _stop) = serve(options, None).await;
    let client = connect_from("127.0.0.1", addr).await;
    let local = client.local_addr().unwrap();
    assert_eq!(
        exchange(client, &[b"ping"]).await,
        format!("{local} {local} 0\nping")
    );
    let client = connect_from("127.0.0.1", addr).await;
    let mut bytes = v1("203.0.113.7:1", "198.51.100.1:2");
    bytes.extend_from_slice(b"ping");
    let out = exchange(client, &[&bytes]).await;
    assert!(out.starts_with("203.0.113.7:1 "), "{out}");
    // A client that waits for the server to speak first is served once
    // the header timeout has passed (here the app reads, and gets `late`).
    let client = connect_from("127.0.0.1", addr).await;
    let local = client.local_addr().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let out = exchange(client, &[b"late"]).await;
    assert_eq!(out, format!("{local} {local} 0\nlate"));
}

#[tokio::test]
async fn the_filter_drops_and_counts_and_sees_the_proxied_client() {
    let filtered = || metric("pingora_connections_filtered_total");
    let before = filtered();
    let allow: Arc<dyn ConnectionFilter> = Arc::new(Allow(vec!["203.0.113.0/24".parse().unwrap()]));
    let options = ListenerOptions::default().with_proxy_protocol(trusting_localhost());
    let (addr, _stop) = serve(options, Some(allow)).await;
    // The balancer's client is allowed: served.
    let mut bytes = v1("203.0.113.7:50123", "198.51.100.1:443");
    bytes.extend_from_slice(b"x");
    let out = exchange(connect_from("127.0.0.1", addr).await, &[&bytes]).await;
    assert!(out.starts_with("203.0.113.7:50123 "), "{out}");
    // Another client through the same balancer: dropped, nothing written.
    let bytes = v1("192.0.2.1:50123", "198.51.100.1:443");
    assert_eq!(
        exchange(connect_from("127.0.0.1", addr).await, &[&bytes]).await,
        ""
    );
    // A direct client (untrusted, not allowed): dropped too.
    assert_eq!(
        exchange(connect_from("127.0.0.2", addr).await, &[b"x"]).await,
        ""
    );
    assert!(filtered() >= before + 2.0);
}

/// Our connector sends the header a peer's options ask for before its TLS
/// handshake, and our TLS listener reads it before its own: the app on
/// the far side sees the announced client over TLS.
#[tokio::test]
async fn a_header_sent_by_our_connector_is_read_before_tls() {
    use pingora_core::connectors::{ConnectorOptions, TransportConnector};
    use pingora_core::tls::{CertKey, CertStore, TlsSettings};
    use pingora_core::upstreams::{HttpPeer, ProxyVersion, SendProxyHeader};

    let cert = rcgen::generate_simple_self_signed(vec!["pp.test".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let key = CertKey::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let acceptor = TlsSettings::new(CertStore::new().with_default(key))
        .build()
        .unwrap();
    let mut service = ListeningService::new("pp-tls", Arc::new(ShowPeer));
    let listen = ServerAddress::Tcp("127.0.0.1:0".into(), TcpSocketOptions::default());
    let options = ListenerOptions::default().with_proxy_protocol(trusting_localhost());
    service.add_listener(listen, Some(acceptor), options);
    let bound = service.bound_addrs();
    let (_stop, stop) = watch::channel(false);
    let (ctx, mut ready) = ServiceContext::standalone(stop);
    tokio::spawn(async move { service.start_service(ctx).await });
    ready.wait().await;
    let addr = *bound.get().unwrap()[0].as_inet().unwrap();

    let connector = TransportConnector::new(ConnectorOptions::default()).unwrap();
    for version in [ProxyVersion::V1, ProxyVersion::V2] {
        let mut peer = HttpPeer::new(addr, true, "pp.test");
        peer.options.verify_cert = false;
        let client = "203.0.113.7:50123".parse().unwrap();
        let header = SendProxyHeader::new(version, client, "198.51.100.1:443".parse().unwrap());
        peer.options.proxy_header = Some(header);
        let connect = connector.new_stream(&peer);
        let mut stream = tokio::time::timeout(WAIT, connect).await.unwrap().unwrap();
        assert!(stream.digest().unwrap().tls.is_some());
        stream.write_all(b"over tls").await.unwrap();
        stream.flush().await.unwrap();
        let mut out = Vec::new();
        let read = stream.read_to_end(&mut out);
        let _ = tokio::time::timeout(WAIT, read).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("203.0.113.7:50123 127.0.0.1:"), "{out}");
        assert!(out.ends_with(" 0\nover tls"), "{out}");
    }
}

/// A listener's own filter is asked instead of the service's.
#[tokio::test]
async fn a_listener_filter_overrides_the_service_filter() {
    let nobody: Arc<dyn ConnectionFilter> = Arc::new(Allow(Vec::new()));
    let everyone: Arc<dyn ConnectionFilter> = Arc::new(Allow(vec!["0.0.0.0/0".parse().unwrap()]));
    let mut service = ListeningService::new("pp-filters", Arc::new(ShowPeer));
    service.set_connection_filter(nobody);
    let tcp = |a: &str| ServerAddress::Tcp(a.into(), TcpSocketOptions::default());
    let open = ListenerOptions::default().with_connection_filter(everyone);
    service.add_listener(tcp("127.0.0.1:0"), None, open);
    service.add_listener(tcp("127.0.0.2:0"), None, ListenerOptions::default());
    let bound = service.bound_addrs();
    let (_stop, stop) = watch::channel(false);
    let (ctx, mut ready) = ServiceContext::standalone(stop);
    tokio::spawn(async move { service.start_service(ctx).await });
    ready.wait().await;
    let addrs = bound.get().unwrap();
    let (open, closed) = (*addrs[0].as_inet().unwrap(), *addrs[1].as_inet().unwrap());
    let out = exchange(connect_from("127.0.0.1", open).await, &[b"x"]).await;
    assert!(out.ends_with(" 0\nx"), "{out}");
    assert_eq!(
        exchange(connect_from("127.0.0.1", closed).await, &[b"x"]).await,
        ""
    );
}
