//! The PROXY protocol through the proxy, with HAProxy as the real peer on
//! both sides: in front of the proxy as the sender (`send-proxy`,
//! `send-proxy-v2`) and behind it as the receiver (`accept-proxy`). Plus
//! the real client surviving a parked keep-alive connection, and the
//! pool never reusing a connection announced for another client.
//!
//! Clients connect from 127.0.0.2 and 127.0.0.3, HAProxy from
//! 127.0.0.1: an address the proxy reports can only be the client's if
//! the PROXY header carried it. Without `haproxy` the HAProxy tests print
//! a notice and pass, unless `PINGORA_REQUIRE_INTEROP` is set.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use pingora_core::apps::ListenerOptions;
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};
use pingora_core::header::RequestHeader;
use pingora_core::listeners::{ProxyProtocolSettings, ServerAddress, TcpSocketOptions};
use pingora_core::protocols::http::v1::H1Config;
use pingora_core::server::ServerConf;
use pingora_core::services::listening::ParkedCount;
use pingora_core::services::{Service, ServiceContext};
use pingora_core::upstreams::{HttpPeer, ProxyVersion, SendProxyHeader};
use pingora_error::Result;
use pingora_proxy::{HttpProxy, HttpProxyService, ProxyHttp, Session};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{WAIT, dead_addr, start_origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// Answers with the client address the proxy saw (`x-client`) and the
/// `X-Forwarded-For` it sent.
struct EchoClient;

#[async_trait::async_trait]
impl ServeHttp for EchoClient {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let field = |name| {
            let value = request.header().get_header(name);
            value.map_or("-", |v| v.to_str().unwrap()).to_owned()
        };
        let body = format!("{} {}", field("x-client"), field("x-forwarded-for"));
        HttpResponse::text(200, body)
    }
}

/// Proxies to `upstream`; on `/v1` and `/v2` it announces its client to
/// the upstream with a PROXY header of that version.
struct Front {
    upstream: SocketAddr,
}

impl ProxyHttp for Front {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, session: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, "");
        let version = match session.req_header().uri().path() {
            "/v1" => Some(ProxyVersion::V1),
            "/v2" => Some(ProxyVersion::V2),
            _ => None,
        };
        if let (Some(version), Some(digest)) = (version, session.digest()) {
            peer.options.proxy_header = SendProxyHeader::from_digest(version, digest);
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _: &mut (),
    ) -> Result<()> {
        session.append_x_forwarded_for(upstream_request)?;
        if let Some(client) = session.client_addr() {
            upstream_request.insert_header("x-client", client.to_string())?;
        }
        Ok(())
    }
}

/// The proxy service running `Front`, on one listener with `options`.
struct Proxy {
    addr: SocketAddr,
    parked: ParkedCount,
    _stop: watch::Sender<bool>,
}

async fn start_front(upstream: SocketAddr, options: ListenerOptions) -> Proxy {
    let proxy = HttpProxy::new(Front { upstream }, &ServerConf::default()).unwrap();
    let mut service = HttpProxyService::new("front", proxy);
    let addr = ServerAddress::Tcp("127.0.0.1:0".into(), TcpSocketOptions::default());
    service.add_listener(addr, None, options).unwrap();
    let bound = service.bound_addrs();
    let parked = service.parked_connections();
    let (stop_tx, stop) = watch::channel(false);
    let (ctx, mut ready) = ServiceContext::standalone(stop);
    tokio::spawn(async move { service.start_service(ctx).await });
    ready.wait().await;
    let addr = *bound.get().unwrap()[0].as_inet().unwrap();
    Proxy {
        addr,
        parked,
        _stop: stop_tx,
    }
}

fn trusting_localhost() -> ListenerOptions {
    let proxy = ProxyProtocolSettings::trusting(["127.0.0.1/32".parse().unwrap()]);
    ListenerOptions::default().with_proxy_protocol(proxy)
}

/// A connection to `addr` from `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .unwrap()
        .unwrap()
}

/// Send a GET for `path` on `conn` (`close`: the last one) and read the
/// whole response; returns its body.
async fn get_on(conn: &mut TcpStream, path: &str, close: bool) -> String {
    let connection = if close { "close" } else { "keep-alive" };
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(body) = complete_body(&got) {
                return body;
            }
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read).await.unwrap()
}

/// The body of a whole 200 response with a Content-Length in `got`.
fn complete_body(got: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(got).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    })?;
    (body.len() >= len).then(|| body[..len].to_owned())
}

/// An HAProxy process with `config` (its `{dir}` replaced by its own temp
/// dir), killed when dropped.
struct HaProxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Start HAProxy with the `frontends` part of a config, and wait until
/// every address in `ports` accepts; `None` when it is not installed.
async fn start_haproxy(name: &str, frontends: &str, ports: &[SocketAddr]) -> Option<HaProxy> {
    if !support::tools::tool_available("haproxy") {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("pingora-pp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = format!(
        "global\n  maxconn 256\n\
         defaults\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
         {frontends}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let haproxy = HaProxy { child, dir };
    for _ in 0..100 {
        let mut up = true;
        for port in ports {
            up &= TcpStream::connect(port).await.is_ok();
        }
        if up {
            return Some(haproxy);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("haproxy did not start on {ports:?}");
}

/// HAProxy in front of the proxy, sending v1 and v2 headers: the origin
/// hears of HAProxy's client, not of HAProxy.
#[tokio::test]
async fn haproxy_in_front_sends_the_client_in_v1_and_v2() {
    let origin = start_origin(EchoClient).await;
    let proxy = start_front(origin.addr, trusting_localhost()).await;
    let (fe_v1, fe_v2) = (dead_addr().await, dead_addr().await);
    let to = proxy.addr;
    let frontends = format!(
        "frontend v1\n  mode tcp\n  bind {fe_v1}\n  default_backend v1\n\
         backend v1\n  mode tcp\n  server us {to} send-proxy\n\
         frontend v2\n  mode tcp\n  bind {fe_v2}\n  default_backend v2\n\
         backend v2\n  mode tcp\n  server us {to} send-proxy-v2\n"
    );
    let Some(_haproxy) = start_haproxy("sender", &frontends, &[fe_v1, fe_v2]).await else {
        return;
    };
    for fe in [fe_v1, fe_v2] {
        let mut conn = connect_from("127.0.0.2", fe).await;
        let client = conn.local_addr().unwrap();
        let body = get_on(&mut conn, "/", true).await;
        assert_eq!(body, format!("{client} 127.0.0.2"), "through {fe}");
    }
    // A direct connection from an untrusted address that sends a PROXY
    // header of its own is not believed: its header is a bad request.
    let mut conn = connect_from("127.0.0.2", proxy.addr).await;
    conn.write_all(b"PROXY TCP4 203.0.113.7 198.51.100.1 1 2\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let read = conn.read_to_string(&mut answer);
    let _ = tokio::time::timeout(WAIT, read).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// HAProxy behind the proxy, accepting PROXY headers: it sees the
/// proxy's client, in v1 and v2, and the pool never hands a connection
/// announced for one client to another.
#[tokio::test]
async fn haproxy_behind_receives_the_client_in_v1_and_v2() {
    let receiver = dead_addr().await;
    let frontends = format!(
        "frontend receiver\n  mode http\n  bind {receiver} accept-proxy\n\
         http-request return status 200 content-type text/plain lf-string \"%[src]:%[src_port]\"\n"
    );
    let Some(_haproxy) = start_haproxy("receiver", &frontends, &[receiver]).await else {
        return;
    };
    let proxy = start_front(receiver, ListenerOptions::default()).await;
    for path in ["/v1", "/v2", "/v1", "/v2"] {
        for from in ["127.0.0.2", "127.0.0.3"] {
            let mut conn = connect_from(from, proxy.addr).await;
            let client = conn.local_addr().unwrap();
            // Twice on the same connection: the upstream connection is
            // pooled between them, and between the clients.
            for _ in 0..2 {
                let body = get_on(&mut conn, path, false).await;
                assert_eq!(body, client.to_string(), "{path} from {from}");
            }
        }
    }
}

/// A kept-alive connection whose client a PROXY header named, parked
/// while idle and served again, still names that client.
#[tokio::test]
async fn the_proxied_client_survives_parking() {
    let origin = start_origin(EchoClient).await;
    let mut h1 = H1Config::default();
    h1.park_idle_after = Some(Duration::from_millis(20));
    h1.idle_timeout = Duration::from_secs(30);
    let proxy = start_front(origin.addr, trusting_localhost().with_h1(h1)).await;
    let mut conn = connect_from("127.0.0.1", proxy.addr).await;
    conn.write_all(b"PROXY TCP4 203.0.113.7 198.51.100.1 50123 443\r\n")
        .await
        .unwrap();
    let expected = "203.0.113.7:50123 203.0.113.7";
    assert_eq!(get_on(&mut conn, "/", false).await, expected);
    let parked = async {
        while proxy.parked.get() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, parked).await.unwrap();
    assert_eq!(get_on(&mut conn, "/", false).await, expected);
    // An existing X-Forwarded-For gets the client appended.
    let req = "GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n";
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let body = loop {
        if let Some(body) = complete_body(&got) {
            break body;
        }
        let n = tokio::time::timeout(WAIT, conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    };
    assert_eq!(body, "203.0.113.7:50123 192.0.2.1, 203.0.113.7");
}
