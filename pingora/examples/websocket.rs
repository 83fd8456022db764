//! Proxy websockets: the proxy passes the `101 Switching Protocols` through,
//! then carries the frames both ways, untouched, until either side closes.
//!
//! ```text
//! cargo run --example websocket --features proxy
//! # then connect any websocket client to ws://127.0.0.1:6188/, or:
//! curl -i -N -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
//!      -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
//!      http://127.0.0.1:6188/
//! ```
//!
//! The origin (127.0.0.1:6191, a service of the same server) is a minimal
//! websocket echo server: it accepts the handshake and sends every byte
//! back, which echoes each frame (a real server would unmask and parse
//! them; the proxy never does). Features: `proxy`.
//!
//! `LISTEN=addr` and `ORIGIN=addr` move the proxy and the demo origin.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use pingora::core::apps::ServerApp;
use pingora::core::header::ResponseHeader;
use pingora::core::protocols::Stream;
use pingora::core::protocols::http::v1::{H1Config, ServerConnection};
use pingora::core::server::{Opt, Server, ShutdownWatch};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::{Arc, LazyLock};

/// Where the demo origin listens (`ORIGIN` moves it).
static ORIGIN: LazyLock<String> = LazyLock::new(|| env_or("ORIGIN", "127.0.0.1:6191"));
/// Where the proxy listens (`LISTEN` moves it).
static LISTEN: LazyLock<String> = LazyLock::new(|| env_or("LISTEN", "127.0.0.1:6188"));

/// The proxy has nothing websocket-specific to do: upgrades are proxied
/// by default.
struct WsProxy;

impl ProxyHttp for WsProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        if session.is_upgrade_request() {
            log::info!("proxying an upgrade to {}", *ORIGIN);
        }
        let addr: std::net::SocketAddr = ORIGIN.parse().or_err(InternalError, "bad origin")?;
        Ok(Box::new(HttpPeer::new(addr, false, "")))
    }
}

/// The demo origin: accept the websocket handshake, echo every byte.
struct EchoOrigin;

#[async_trait]
impl ServerApp for EchoOrigin {
    async fn process_new(self: &Arc<Self>, stream: Stream, _: &ShutdownWatch) -> Option<Stream> {
        let conn = ServerConnection::new(stream, H1Config::default());
        let mut session = conn.read_request().await.ok()??;
        let key = session
            .req_header()
            .headers()
            .get("sec-websocket-key")
            .cloned();
        let (true, Some(key)) = (session.is_upgrade_request(), key) else {
            let _ = session.respond_error(426).await;
            return None;
        };
        let mut resp = ResponseHeader::build(101, None).ok()?;
        resp.insert_header("Upgrade", "websocket").ok()?;
        resp.insert_header("Connection", "Upgrade").ok()?;
        resp.insert_header("Sec-WebSocket-Accept", accept_key(key.as_bytes()))
            .ok()?;
        session.write_response_header(resp).await.ok()?;
        while let Ok(Some(data)) = session.read_body_bytes().await {
            session.write_body(&data).await.ok()?;
        }
        None
    }
}

/// `Sec-WebSocket-Accept` (RFC 6455 §4.2.2): base64 of the SHA-1 of the
/// key and the protocol's GUID.
fn accept_key(key: &[u8]) -> String {
    let mut input = key.to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha1(&input))
}

/// SHA-1 (RFC 3174), enough for the handshake; not for security.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in data.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `var` from the environment, else `default`: the tests run every example
/// on free ports by setting these.
fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // The handshake example of RFC 6455 §1.3.
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let mut server = Server::new(Some(Opt::parse_args())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    server.bootstrap();

    let mut origin = ListeningService::new("ws origin", Arc::new(EchoOrigin));
    origin.add_tcp(&ORIGIN);
    let origin = server.add_service(origin);

    let mut proxy = http_proxy_service(&server.configuration, WsProxy);
    proxy.add_tcp(&LISTEN);
    let proxy = server.add_service(proxy);
    server
        .add_dependency(&proxy, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
