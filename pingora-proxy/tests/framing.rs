//! Message framing through the proxy: bodyless responses, HTTP/1.0
//! clients, absolute-form targets, chunked re-framing.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers by path: `/204`, `/304`, else 200 with `hello` and the target
/// and Host it saw in fields.
struct ByPath;

#[async_trait]
impl ServeHttp for ByPath {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let status = match request.header().uri().path() {
            "/204" => 204,
            "/304" => 304,
            _ => 200,
        };
        let mut resp = HttpResponse::text(status, if status == 200 { "hello" } else { "" });
        let h = resp.header_mut();
        h.insert_header("X-Target", request.header().uri().to_string())
            .unwrap();
        let host = request.header().headers().get("host").cloned();
        h.insert_header("X-Host", host.unwrap_or_else(|| "-".parse().unwrap()))
            .unwrap();
        resp
    }
}

struct To(SocketAddr);

impl ProxyHttp for To {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }
}

#[tokio::test]
async fn bodyless_responses_keep_the_connection() {
    let origin = start_origin(ByPath).await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let mut c = client(proxy.addr).await;
    let resp = exchange(&mut c, request("HEAD", "/"), b"").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers["content-length"], "5");
    assert!(resp.body.is_empty());
    for (path, status) in [("/204", 204), ("/304", 304)] {
        c = next(c);
        let resp = exchange(&mut c, request("GET", path), b"").await;
        assert_eq!(resp.status, status);
        assert!(resp.body.is_empty());
    }
    c = next(c);
    let resp = exchange(&mut c, request("GET", "/"), b"").await;
    assert_eq!(resp.body, b"hello");
    assert_eq!(proxy.accepted(), 1);
}

#[tokio::test]
async fn http10_client_gets_a_close_delimited_answer() {
    let origin = start_origin(ByPath).await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"GET /old HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello"), "{out}");
    assert!(
        !out.to_ascii_lowercase().contains("transfer-encoding"),
        "{out}"
    );
}

#[tokio::test]
async fn absolute_form_target_reaches_the_origin_in_origin_form() {
    let origin = start_origin(ByPath).await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let mut c = client(proxy.addr).await;
    let mut req =
        pingora_core::header::RequestHeader::build("GET", b"http://example.test/p?q=1", None)
            .unwrap();
    req.insert_header("Host", "ignored.test").unwrap();
    let resp = exchange(&mut c, req, b"").await;
    assert_eq!(resp.headers["x-target"], "/p?q=1");
    assert_eq!(resp.headers["x-host"], "example.test");
}

#[tokio::test]
async fn chunked_upload_is_rechunked_and_echoed() {
    let origin = start_origin(pingora_core::apps::http_app::EchoApp).await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let mut c = client(proxy.addr).await;
    let mut req = request("PUT", "/chunks");
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    c.write_request_header(req).await.unwrap();
    for piece in [&b"one "[..], b"two ", b"three"] {
        c.write_body(piece).await.unwrap();
    }
    c.finish_body(None).await.unwrap();
    let head = c.read_final_response_header().await.unwrap();
    assert_eq!(head.status(), 200);
    let mut body = Vec::new();
    while let Some(piece) = c.read_body_bytes().await.unwrap() {
        body.extend_from_slice(&piece);
    }
    assert_eq!(body, b"one two three");
}

struct ToUds(std::path::PathBuf);

impl ProxyHttp for ToUds {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new_uds(&self.0, false, "")))
    }
}

#[tokio::test]
async fn unix_socket_origin_gets_a_host() {
    use pingora_core::apps::ServerApp;
    use pingora_core::apps::http_app::HttpServer;
    use pingora_core::protocols::l4::L4Stream;
    let path = std::env::temp_dir().join(format!("pingora-proxy-uds-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let app = std::sync::Arc::new(HttpServer::new(ByPath));
    let origin = tokio::spawn(async move {
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        while let Ok((unix, _)) = listener.accept().await {
            let (app, shutdown) = (app.clone(), shutdown.clone());
            tokio::spawn(async move {
                app.process_new(Box::new(L4Stream::from_unix(unix)), &shutdown)
                    .await;
            });
        }
    });
    let proxy = start_proxy(ToUds(path.clone()), 0).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"GET /u HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8(out).unwrap().to_ascii_lowercase();
    assert!(out.starts_with("http/1.1 200"), "{out}");
    assert!(out.contains("x-host: localhost"), "{out}");
    origin.abort();
    let _ = std::fs::remove_file(&path);
}

/// Reads the whole request body in `request_filter` (to inspect it),
/// refusing bodies that contain "forbidden", then lets it go upstream.
struct Inspect(SocketAddr);

impl ProxyHttp for Inspect {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        let mut seen = Vec::new();
        while let Some(piece) = session.read_request_body().await? {
            seen.extend_from_slice(&piece);
        }
        if seen.windows(9).any(|w| w == b"forbidden") {
            session.respond_error(403).await?;
            return Ok(true);
        }
        Ok(false)
    }
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }
}

#[tokio::test]
async fn body_read_by_a_phase_is_still_forwarded() {
    let origin = start_origin(pingora_core::apps::http_app::EchoApp).await;
    let proxy = start_proxy(Inspect(origin.addr), 0).await;
    let post = |body: &'static [u8]| {
        let mut req = request("POST", "/inspect");
        req.insert_header("Content-Length", body.len().to_string())
            .unwrap();
        (req, body)
    };
    let mut c = client(proxy.addr).await;
    let (req, body) = post(b"a fine body");
    let resp = exchange(&mut c, req, body).await;
    assert_eq!((resp.status, &resp.body[..]), (200, &b"a fine body"[..]));

    let mut c = client(proxy.addr).await;
    let (req, body) = post(b"a forbidden body");
    assert_eq!(exchange(&mut c, req, body).await.status, 403);

    // More than the proxy keeps: the phase must answer itself, or 500.
    let big: &'static [u8] = Box::leak(vec![b'x'; 100 * 1024].into_boxed_slice());
    let mut c = client(proxy.addr).await;
    let (req, body) = post(big);
    assert_eq!(exchange(&mut c, req, body).await.status, 500);
}

/// The proxy holds a response head back for the first piece of body so a
/// small response leaves in one write; when the upstream is slow to send
/// the body, the head must still reach the client at once.
#[tokio::test]
async fn head_reaches_the_client_before_a_slow_body() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let origin = serve_fn(move |mut stream, _| {
        let mut release = release_rx.clone();
        async move {
            let mut buf = vec![0; 4096];
            let _ = stream.read(&mut buf).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                .await
                .unwrap();
            stream.flush().await.unwrap();
            // The body only comes once the test has seen the head.
            let _ = release.wait_for(|go| *go).await;
            stream.write_all(b"hello").await.unwrap();
            stream.flush().await.unwrap();
            let _ = stream.read(&mut buf).await;
        }
    })
    .await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    let mut c = client(proxy.addr).await;
    c.write_request_header(request("GET", "/")).await.unwrap();
    c.finish_body(None).await.unwrap();
    let head = tokio::time::timeout(WAIT, c.read_response_header())
        .await
        .expect("the head must not wait for the body")
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    release_tx.send(true).unwrap();
    let body = tokio::time::timeout(WAIT, c.read_body_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"hello"[..]));
}
