//! Strict request checks through a real proxy: invalid targets, hosts and
//! versions get 400 or 505 and reach neither the phases nor the origin;
//! slow heads get 408 on the listener that asks for a short header
//! timeout; a broken h2c preface gets an HTTP/2 connection error; bodies
//! over the limit get 413.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use pingora_core::apps::ListenerOptions;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::http::v1::H1Config;
use pingora_core::protocols::http::v2::H2Options;
use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::h2_tools::{Reflect, h2_client, h2_exchange};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Proxies to `origin`, counting requests that reach the first phase and
/// reporting the Host that phase saw.
struct Counting {
    origin: SocketAddr,
    phases: Arc<AtomicUsize>,
}

impl ProxyHttp for Counting {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn early_request_filter(&self, _: &mut Session, _: &mut ()) -> Result<()> {
        self.phases.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut pingora_core::header::ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        if let Some(host) = session.req_header().headers().get("host") {
            resp.insert_header("x-phase-host", host.clone())?;
        }
        Ok(())
    }
}

/// An origin, and a proxy to it built by `build`.
async fn setup(
    build: impl FnOnce(HttpProxy<Counting>) -> HttpProxy<Counting>,
) -> (Running, Running, Arc<AtomicUsize>) {
    let origin = start_origin(Reflect).await;
    let phases = Arc::new(AtomicUsize::new(0));
    let sv = Counting {
        origin: origin.addr,
        phases: phases.clone(),
    };
    let proxy = build(HttpProxy::new(sv, &ServerConf::default()).unwrap());
    (origin, serve_app(proxy).await, phases)
}

/// Send `raw` on a new connection and read until the proxy closes it.
async fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut out))
        .await
        .expect("the proxy did not close")
        .unwrap();
    out
}

#[tokio::test]
async fn invalid_targets_hosts_and_versions_reach_nothing() {
    let (origin, proxy, phases) = setup(|p| p).await;
    let cases: &[(&[u8], &str)] = &[
        (b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET http://user@evil/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET /?q=\xff HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET /a\\..\\b HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", "400"),
        (b"GET / HTTP/1.0\r\nHost: \r\n\r\n", "400"),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"),
        (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", "505"),
        (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", "505"),
    ];
    for (raw, status) in cases {
        let out = raw_exchange(proxy.addr, raw).await;
        let line = String::from_utf8_lossy(&out);
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status} ")),
            "{} -> {line}",
            String::from_utf8_lossy(raw)
        );
        assert!(line.contains("Connection: close"), "{line}");
    }
    assert_eq!(
        phases.load(Ordering::SeqCst),
        0,
        "a request reached a phase"
    );
    assert_eq!(origin.accepted(), 0, "a request reached the origin");
}

#[tokio::test]
async fn valid_edge_cases_are_served() {
    let (_origin, proxy, phases) = setup(|p| p).await;
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.9\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET /a/%2F/b?x={y}|z^[0] HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET /a|b^c[d] HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ];
    for raw in cases {
        let out = raw_exchange(proxy.addr, raw).await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 200 ") || text.starts_with("HTTP/1.0 200 "),
            "{} -> {text}",
            String::from_utf8_lossy(raw)
        );
        // Served as 1.1: the origin saw HTTP/1.1 (the proxy speaks it).
        assert!(text.contains("x-seen-version: HTTP/1.1"), "{text}");
    }
    assert_eq!(phases.load(Ordering::SeqCst), cases.len());
}

/// The authority of an absolute-form target wins over Host, and the
/// phases see the same Host as the origin.
#[tokio::test]
async fn absolute_form_authority_is_the_host_everywhere() {
    let (_origin, proxy, _) = setup(|p| p).await;
    let raw =
        b"GET http://right.test:8080/p?q HTTP/1.1\r\nHost: wrong.test\r\nConnection: close\r\n\r\n";
    let out = raw_exchange(proxy.addr, raw).await;
    let text = String::from_utf8_lossy(&out).to_lowercase();
    assert!(text.starts_with("http/1.1 200 "), "{text}");
    assert!(text.contains("x-seen-host: right.test:8080\r\n"), "{text}");
    assert!(text.contains("x-phase-host: right.test:8080\r\n"), "{text}");
    assert!(text.contains("x-seen-uri: /p?q\r\n"), "{text}");
    assert!(!text.contains("wrong.test"), "{text}");
}

/// Bytes that begin like the HTTP/2 preface and then break it get an
/// HTTP/2 connection error (RFC 9113 §3.4), not an HTTP/1 answer.
#[tokio::test]
async fn broken_h2c_preface_gets_goaway_protocol_error() {
    let (origin, proxy, phases) = setup(|p| p.with_h2c(true)).await;
    for raw in [
        &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\nHost: a\r\n\r\n",
    ] {
        let out = raw_exchange(proxy.addr, raw).await;
        assert!(
            !out.starts_with(b"HTTP/"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        // SETTINGS (type 4) first, then GOAWAY (type 7) with
        // PROTOCOL_ERROR (1).
        assert_eq!(out.len(), 9 + 17, "{out:?}");
        assert_eq!(out[3], 4);
        assert_eq!(out[12], 7);
        assert_eq!(&out[22..26], &[0, 0, 0, 1]);
    }
    // A good preface is still HTTP/2, and an HTTP/1 request HTTP/1.
    let send = h2_client(proxy.addr).await;
    let req = http::Request::get("http://a.test/").body(()).unwrap();
    assert_eq!(h2_exchange(&send, req, b"", None).await.status, 200);
    let out = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with(b"HTTP/1.1 200 "));
    assert_eq!(phases.load(Ordering::SeqCst), 2);
    // Both went to the origin (on one pooled connection).
    assert_eq!(origin.accepted(), 1);
}

/// HTTP/2 requests get the same host checks: a bad or conflicting
/// authority is answered 400 on its stream, and the connection goes on.
#[tokio::test]
async fn h2_bad_authority_gets_400() {
    let (_origin, proxy, phases) = setup(|p| p.with_h2c(true)).await;
    let send = h2_client(proxy.addr).await;
    for (uri, host) in [
        ("http://user@a.test/", None),
        ("http://a.test:99999/", None),
        ("http://a.test/", Some("b.test")),
        ("/no-authority", None),
        ("http://a.test/x{y}", None),
    ] {
        let mut req = http::Request::get(uri);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let answer = h2_exchange(&send, req.body(()).unwrap(), b"", None).await;
        assert_eq!(answer.status, 400, "{uri} {host:?}");
    }
    assert_eq!(phases.load(Ordering::SeqCst), 0);
    let req = http::Request::get("http://a.test/").body(()).unwrap();
    assert_eq!(h2_exchange(&send, req, b"", None).await.status, 200);
}

fn limited_h1(max: u64) -> H1Config {
    let mut h1 = H1Config::default();
    h1.max_request_body = Some(max);
    h1
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let (origin, proxy, phases) = setup(|p| p.with_downstream_config(limited_h1(10))).await;
    // A Content-Length over the limit: refused before the body is read
    // (the client waits for 100 Continue and never sends it).
    let out = raw_exchange(
        proxy.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert_eq!(phases.load(Ordering::SeqCst), 0);
    assert_eq!(origin.accepted(), 0);
    // At the limit: served.
    let mut c = client(proxy.addr).await;
    let mut req = request("POST", "/");
    req.insert_header("Content-Length", "10").unwrap();
    assert_eq!(exchange(&mut c, req, b"0123456789").await.status, 200);
    // Chunked, the decoded bytes counted: 6 + 5 > 10, whatever the
    // chunk extensions add to the wire.
    let out = raw_exchange(
        proxy.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6;e=xxxxxxxx\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    let out = raw_exchange(
        proxy.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6;e=xxxxxxxx\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("abcdefghij"), "{text}");
}

#[tokio::test]
async fn h2_bodies_over_the_limit_get_413() {
    let mut h2 = H2Options::default();
    h2.max_request_body = Some(10);
    let (_origin, proxy, phases) = setup(|p| p.with_h2c(true).with_h2_options(h2)).await;
    let send = h2_client(proxy.addr).await;
    // content-length over the limit: answered before the app sees it.
    let mut ready = send.clone().ready().await.unwrap();
    let req = http::Request::post("http://a.test/")
        .header("content-length", "11")
        .body(())
        .unwrap();
    let (resp, _body) = ready.send_request(req, false).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(phases.load(Ordering::SeqCst), 0);
    // No length, more data than allowed: 413 as well.
    let req = http::Request::post("http://a.test/").body(()).unwrap();
    let mut ready = send.clone().ready().await.unwrap();
    let (resp, mut body) = ready.send_request(req, false).unwrap();
    body.send_data(Bytes::from_static(b"0123456789abc"), false)
        .unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 413);
    // Within the limit: served.
    let req = http::Request::post("http://a.test/").body(()).unwrap();
    let answer = h2_exchange(&send, req, b"0123456789", None).await;
    assert_eq!((answer.status, &answer.body[..]), (200, &b"0123456789"[..]));
}

/// Serve `proxy` on a loopback listener whose connections carry
/// `options`, as a listening service hands them to the app (the service
/// side is tested in pingora-core's `services::listening`).
async fn serve_with(proxy: &Arc<HttpProxy<Counting>>, options: ListenerOptions) -> Running {
    let proxy = Arc::clone(proxy);
    let options = Arc::new(options);
    serve_fn(move |stream, shutdown| {
        let (proxy, options) = (Arc::clone(&proxy), Arc::clone(&options));
        async move {
            proxy.process_new_on(stream, &shutdown, &options).await;
        }
    })
    .await
}

/// A slowloris on the listener with a short header timeout gets 408 and
/// is closed; the same on a listener with the proxy's (long) timeout is
/// still waiting; an idle connection that sent nothing is closed without
/// a response.
#[tokio::test]
async fn slow_heads_get_408_on_the_listener_that_asks() {
    let origin = start_origin(Reflect).await;
    let sv = Counting {
        origin: origin.addr,
        phases: Arc::default(),
    };
    let proxy = Arc::new(HttpProxy::new(sv, &ServerConf::default()).unwrap());
    let mut short = H1Config::default();
    short.header_timeout = Duration::from_millis(200);
    let fast = serve_with(&proxy, ListenerOptions::default().with_h1(short)).await;
    let slow = serve_with(&proxy, ListenerOptions::default()).await;
    let (fast, slow) = (fast.addr, slow.addr);

    let mut patient = TcpStream::connect(slow).await.unwrap();
    patient
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let out = raw_exchange(fast, b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ").await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing sent: closed without a response.
    let out = raw_exchange(fast, b"").await;
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    // The other listener keeps its own (30 s) timeout: still open, and it
    // serves the request once the head is finished.
    patient
        .write_all(b"Connection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, patient.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

/// HTTP/2 has the HTTP/1 head limits: field count (431) and target
/// length (414), per listener like the rest of `H2Options`.
#[tokio::test]
async fn h2_field_count_and_path_length_are_limited() {
    let (_origin, proxy, phases) = setup(|p| p.with_h2c(true)).await;
    let send = h2_client(proxy.addr).await;
    let mut req = http::Request::get("http://a.test/");
    for i in 0..129 {
        req = req.header(format!("x-{i}"), "v");
    }
    let answer = h2_exchange(&send, req.body(()).unwrap(), b"", None).await;
    assert_eq!(answer.status, 431);
    let long = format!("http://a.test/{}", "a".repeat(8 * 1024));
    let req = http::Request::get(long).body(()).unwrap();
    assert_eq!(h2_exchange(&send, req, b"", None).await.status, 414);
    assert_eq!(phases.load(Ordering::SeqCst), 0);
    // Below them: served (the origin's own HTTP/1 limits, 8 KiB of
    // request line and 128 fields, apply to what is forwarded).
    let mut req = http::Request::get(format!("http://a.test/{}", "a".repeat(4 * 1024)));
    for i in 0..100 {
        req = req.header(format!("x-{i}"), "v");
    }
    let answer = h2_exchange(&send, req.body(()).unwrap(), b"", None).await;
    assert_eq!(answer.status, 200);
}

/// Many stalled heads at once: every one is answered 408 and closed at
/// the header timeout, none is left hanging.
#[tokio::test]
async fn many_slow_heads_all_get_408() {
    let origin = start_origin(Reflect).await;
    let sv = Counting {
        origin: origin.addr,
        phases: Arc::default(),
    };
    let proxy = Arc::new(HttpProxy::new(sv, &ServerConf::default()).unwrap());
    let mut short = H1Config::default();
    short.header_timeout = Duration::from_millis(300);
    let listener = serve_with(&proxy, ListenerOptions::default().with_h1(short)).await;
    let mut clients = Vec::new();
    for i in 0..200 {
        let mut c = TcpStream::connect(listener.addr).await.unwrap();
        c.write_all(format!("GET /{i} HTTP/1.1\r\nHost: a\r\nX-").as_bytes())
            .await
            .unwrap();
        clients.push(c);
    }
    let started = tokio::time::Instant::now();
    for mut c in clients {
        let mut out = Vec::new();
        tokio::time::timeout(WAIT, c.read_to_end(&mut out))
            .await
            .expect("a stalled connection was left open")
            .unwrap();
        assert!(
            out.starts_with(b"HTTP/1.1 408 "),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}
