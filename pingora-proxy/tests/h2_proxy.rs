//! HTTP/2 through the proxy: the four combinations of HTTP/1 and HTTP/2 on
//! each side, with bodies, trailers, header translation and the response
//! phases; upstream streams sharing one connection; errors per stream.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use http::HeaderMap;
use pingora_core::apps::http_app::HttpServer;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::server::ServerConf;
use pingora_core::tls::Alpn;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use support::h2_tools::{H2Answer, Reflect, h2_client, h2_exchange};
use support::*;

/// Sends everything to `addr`, speaking the version `alpn` says, and
/// marks what its phases saw.
struct ToOrigin {
    addr: SocketAddr,
    alpn: Alpn,
}

impl ProxyHttp for ToOrigin {
    /// Response body bytes seen by the body filter.
    type CTX = usize;

    fn new_ctx(&self) -> usize {
        0
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut usize) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.addr, false, "");
        peer.options.alpn = self.alpn;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _: &mut Session,
        req: &mut RequestHeader,
        _: &mut usize,
    ) -> Result<()> {
        req.insert_header("x-custom", "added")
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut usize,
    ) -> Result<()> {
        let version = format!("{:?}", session.req_header().version());
        resp.insert_header("x-proxied-for", version)
    }

    fn response_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _: bool,
        seen: &mut usize,
    ) -> Result<Option<std::time::Duration>> {
        *seen += body.as_ref().map_or(0, bytes::Bytes::len);
        Ok(None)
    }

    async fn response_trailer_filter(
        &self,
        _: &mut Session,
        trailers: &mut HeaderMap,
        seen: &mut usize,
    ) -> Result<Option<bytes::Bytes>> {
        trailers.insert("x-body-bytes", seen.to_string().parse().unwrap());
        Ok(None)
    }
}

/// An origin speaking HTTP/1 and h2c, and a proxy (also HTTP/1 and h2c)
/// in front of it that speaks `alpn` upstream.
async fn setup(alpn: Alpn) -> (Running, Running) {
    let origin = serve_app(HttpServer::new(Reflect).with_h2c(true)).await;
    let sv = ToOrigin {
        addr: origin.addr,
        alpn,
    };
    let proxy = HttpProxy::new(sv, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    (origin, serve_app(proxy).await)
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("x-trailer", "t1".parse().unwrap());
    t
}

/// POST a body with trailers from an HTTP/1 client (chunked), with
/// hop-by-hop fields that must not reach the origin.
async fn post_h1(proxy: SocketAddr, body: &[u8]) -> Exchange {
    let mut c = client(proxy).await;
    let mut req = request("POST", "/up?q=1");
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    req.insert_header("TE", "trailers").unwrap();
    req.insert_header("Connection", "keep-alive, x-drop")
        .unwrap();
    req.insert_header("x-drop", "1").unwrap();
    req.insert_header("Keep-Alive", "timeout=5").unwrap();
    tokio::time::timeout(WAIT, async {
        c.write_request_header(req).await.unwrap();
        c.write_body(body).await.unwrap();
        c.finish_body(Some(&trailers())).await.unwrap();
        let head = c.read_final_response_header().await.unwrap();
        let (status, headers) = (head.status().as_u16(), head.headers().clone());
        let mut body = Vec::new();
        while let Some(piece) = c.read_body_bytes().await.unwrap() {
            body.extend_from_slice(&piece);
        }
        Exchange {
            status,
            headers,
            body,
            trailers: c.trailers().cloned(),
        }
    })
    .await
    .unwrap()
}

fn h2_request(method: &str, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://test.local{path}"))
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// What every combination must show: the body and trailers made it both
/// ways, Host became `:authority` and back, hop-by-hop fields were
/// dropped, `TE: trailers` reached an HTTP/2 origin only, and every
/// response phase ran.
fn check(
    status: u16,
    headers: &HeaderMap,
    got: &[u8],
    sent: &[u8],
    trailers: Option<&HeaderMap>,
    up_h2: bool,
) {
    assert_eq!(status, 200);
    assert_eq!(got, sent);
    let seen = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let version = if up_h2 { "HTTP/2.0" } else { "HTTP/1.1" };
    assert_eq!(seen("x-seen-version").as_deref(), Some(version));
    assert_eq!(seen("x-seen-host").as_deref(), Some("test.local"));
    assert_eq!(seen("x-seen-uri").as_deref(), Some("/up?q=1"));
    assert_eq!(seen("x-seen-x-custom").as_deref(), Some("added"));
    assert_eq!(seen("x-seen-te").is_some(), up_h2);
    assert_eq!(seen("x-seen-connection"), None);
    assert_eq!(seen("x-seen-keep-alive"), None);
    assert!(seen("x-proxied-for").is_some());
    let trailers = trailers.expect("trailers forwarded");
    assert_eq!(trailers["x-trailer"], "t1");
    assert_eq!(trailers["x-body-bytes"], sent.len().to_string().as_str());
}

async fn h1_down(alpn: Alpn) {
    let (_origin, proxy) = setup(alpn).await;
    let sent = body(100_000);
    let got = post_h1(proxy.addr, &sent).await;
    check(
        got.status,
        &got.headers,
        &got.body,
        &sent,
        got.trailers.as_ref(),
        alpn == Alpn::H2,
    );
    assert_eq!(got.headers["x-proxied-for"], "HTTP/1.1");
    // A bodyless GET goes through too, without trailers.
    let get = get(proxy.addr, "/plain").await;
    assert_eq!(get.status, 200);
    assert!(get.body.is_empty());
}

async fn h2_down(alpn: Alpn) {
    let (_origin, proxy) = setup(alpn).await;
    let send = h2_client(proxy.addr).await;
    let sent = body(300_000);
    let req = h2_request("POST", "/up?q=1");
    let got: H2Answer = h2_exchange(&send, req, &sent, Some(trailers())).await;
    check(
        got.status,
        &got.headers,
        &got.body,
        &sent,
        got.trailers.as_ref(),
        alpn == Alpn::H2,
    );
    assert_eq!(got.headers["x-proxied-for"], "HTTP/2.0");
    let get = h2_exchange(&send, h2_request("GET", "/plain"), b"", None).await;
    assert_eq!(get.status, 200);
    assert!(get.body.is_empty());
    assert_eq!(get.headers["x-seen-method"], "GET");
}

#[tokio::test]
async fn h1_to_h1() {
    h1_down(Alpn::H1).await;
}

#[tokio::test]
async fn h1_to_h2() {
    h1_down(Alpn::H2).await;
}

#[tokio::test]
async fn h2_to_h1() {
    h2_down(Alpn::H1).await;
}

#[tokio::test]
async fn h2_to_h2() {
    h2_down(Alpn::H2).await;
}

/// Concurrent downstream streams share one upstream HTTP/2 connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_streams_share_one_connection() {
    let (origin, proxy) = setup(Alpn::H2).await;
    let send = h2_client(proxy.addr).await;
    // The first request opens the connection; the rest find it.
    let warm = h2_exchange(&send, h2_request("GET", "/warm"), b"", None).await;
    assert_eq!(warm.status, 200);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let send = send.clone();
        tasks.push(tokio::spawn(async move {
            let sent = body(20_000 + i);
            let got = h2_exchange(&send, h2_request("POST", "/up?q=1"), &sent, None).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.body, sent);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(origin.accepted(), 1);
}

/// An upstream that cannot be reached fails only its own stream, with
/// 502, and the connection keeps serving.
#[tokio::test]
async fn dead_upstream_fails_one_stream() {
    let sv = ToOrigin {
        addr: dead_addr().await,
        alpn: Alpn::H2,
    };
    let proxy = HttpProxy::new(sv, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = serve_app(proxy).await;
    let send = h2_client(proxy.addr).await;
    for _ in 0..2 {
        let got = h2_exchange(&send, h2_request("GET", "/"), b"", None).await;
        assert_eq!(got.status, 502);
    }
}

/// An HTTP/1 upstream that promises 1000 bytes and closes after 10: the
/// HTTP/2 client must see its stream fail, not a clean short body.
#[tokio::test]
async fn upstream_failure_mid_body_resets_the_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let origin = serve_fn(|mut stream, _| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";
        let _ = stream.write_all(head).await;
        let _ = stream.flush().await;
    })
    .await;
    let sv = ToOrigin {
        addr: origin.addr,
        alpn: Alpn::H1,
    };
    let proxy = HttpProxy::new(sv, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = serve_app(proxy).await;
    let send = h2_client(proxy.addr).await;
    let outcome = tokio::time::timeout(WAIT, async {
        let mut send = send.clone().ready().await?;
        let (resp, _) = send.send_request(h2_request("GET", "/short"), true)?;
        let mut body = resp.await?.into_body();
        let mut got = 0;
        while let Some(data) = body.data().await {
            got += data?.len();
        }
        Ok::<usize, h2::Error>(got)
    })
    .await
    .unwrap();
    let err = outcome.expect_err("a truncated body must not end cleanly");
    assert!(err.is_reset(), "{err}");
}
