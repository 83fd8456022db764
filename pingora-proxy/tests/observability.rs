//! What a proxy can log and report: the `logging` phase sees everything an
//! access log line needs, errors reach the error reporter with the
//! request's summary, requests refused before the phases are counted, and
//! a panicking phase costs only its own request.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use parking_lot::Mutex;
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use support::h2_tools::{Reflect, h2_client, h2_exchange};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One access log line, as the `logging` phase saw it.
#[derive(Debug, Clone)]
struct Line {
    id: u64,
    client: Option<String>,
    method: String,
    path: String,
    status: Option<u16>,
    read: u64,
    sent: u64,
    elapsed: Duration,
    upstream: Option<String>,
    upstream_time: Option<Duration>,
    error: Option<String>,
}

/// Proxies to `origin`; `/panic` panics in `request_filter`,
/// `/panic-body` in `response_body_filter` (after the head).
struct Logged {
    origin: SocketAddr,
    lines: Arc<Mutex<Vec<Line>>>,
}

impl ProxyHttp for Logged {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        if session.req_header().uri().path() == "/panic" {
            panic!("boom in request_filter");
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        _body: &mut Option<Bytes>,
        _end: bool,
        _: &mut (),
    ) -> Result<Option<Duration>> {
        if session.req_header().uri().path() == "/panic-body" {
            panic!("boom in response_body_filter");
        }
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, _: &mut ()) {
        let req = session.req_header();
        let line = Line {
            id: session.request_id(),
            client: session.client_addr().map(ToString::to_string),
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            status: session.response_status(),
            read: session.body_bytes_read(),
            sent: session.body_bytes_sent(),
            elapsed: session.elapsed(),
            upstream: session.upstream_addr().map(ToString::to_string),
            upstream_time: session.upstream_response_time(),
            error: e.map(ToString::to_string),
        };
        self.lines.lock().push(line);
    }
}

/// The proxy app, serving h2c too.
fn proxy(logged: Logged) -> HttpProxy<Logged> {
    let conf = pingora_core::server::ServerConf::default();
    HttpProxy::new(logged, &conf).unwrap().with_h2c(true)
}

struct Setup {
    proxy: Running,
    origin_addr: SocketAddr,
    lines: Arc<Mutex<Vec<Line>>>,
    _origin: Running,
}

async fn setup_to(origin: Option<SocketAddr>) -> Setup {
    let origin_server = start_origin(Reflect).await;
    let origin_addr = origin.unwrap_or(origin_server.addr);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let logged = Logged {
        origin: origin_addr,
        lines: lines.clone(),
    };
    Setup {
        proxy: serve_app(proxy(logged)).await,
        origin_addr,
        lines,
        _origin: origin_server,
    }
}

/// The line logged for `path`, once `logging` ran: it runs after the
/// response went out, so the client may have it first.
async fn line(lines: &Mutex<Vec<Line>>, path: &str) -> Line {
    for _ in 0..500 {
        if let Some(line) = lines.lock().iter().find(|l| l.path == path).cloned() {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no log line for {path}");
}

#[tokio::test]
async fn logging_sees_what_an_access_log_needs() {
    let s = setup_to(None).await;
    let mut c = client(s.proxy.addr).await;
    let mut post = request("POST", "/echo");
    post.insert_header("Content-Length", "5").unwrap();
    let echoed = exchange(&mut c, post, b"hello").await;
    assert_eq!((echoed.status, &echoed.body[..]), (200, &b"hello"[..]));
    get(s.proxy.addr, "/second").await;
    let l = line(&s.lines, "/echo").await;
    assert_eq!(l.method, "POST");
    assert_eq!(l.status, Some(200));
    assert_eq!((l.read, l.sent), (5, 5));
    assert!(l.client.unwrap().starts_with("127.0.0.1:"));
    assert_eq!(l.upstream.unwrap(), s.origin_addr.to_string());
    let upstream_time = l.upstream_time.unwrap();
    assert!(
        upstream_time <= l.elapsed,
        "{upstream_time:?} > {:?}",
        l.elapsed
    );
    assert!(l.error.is_none());
    assert_ne!(line(&s.lines, "/second").await.id, l.id);
}

/// The source and context of each report received.
type Reports = Arc<Mutex<Vec<(String, String)>>>;

/// The reports the error reporter received, installed once per process.
static REPORTS: LazyLock<Reports> = LazyLock::new(|| {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let kept = reports.clone();
    pingora_core::report::set_error_reporter(move |r| {
        kept.lock()
            .push((r.source.to_owned(), r.context.to_owned()));
    });
    reports
});

#[tokio::test]
async fn a_failed_request_is_logged_and_reported_with_its_summary() {
    let reports = REPORTS.clone();
    let s = setup_to(Some(dead_addr().await)).await;
    let failed = get(s.proxy.addr, "/to-a-dead-origin").await;
    assert_eq!(failed.status, 502);
    let l = line(&s.lines, "/to-a-dead-origin").await;
    assert_eq!(l.status, Some(502));
    assert!(l.error.is_some());
    assert_eq!(l.upstream.unwrap(), s.origin_addr.to_string());
    assert!(l.upstream_time.is_none());
    let reports = reports.lock();
    let (source, context) = reports
        .iter()
        .find(|(_, context)| context.contains("/to-a-dead-origin"))
        .unwrap();
    assert_eq!(source, "proxy");
    assert!(context.contains(&format!("id: {}", l.id)), "{context}");
    assert!(context.contains("client: 127.0.0.1:"), "{context}");
}

#[tokio::test]
async fn requests_refused_before_the_phases_are_counted() {
    let s = setup_to(None).await;
    let before = pingora_core::protocols::http::v1::rejected_requests();
    let mut tcp = tokio::net::TcpStream::connect(s.proxy.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 400"));
    assert!(pingora_core::protocols::http::v1::rejected_requests() > before);
    // Refused before the phases: no log line of the proxy's.
    assert!(s.lines.lock().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_phase_costs_only_its_request() {
    let s = setup_to(None).await;
    // A connection in the middle of its own requests.
    let mut neighbour = client(s.proxy.addr).await;
    let first = exchange(&mut neighbour, request("GET", "/before"), b"").await;
    assert_eq!(first.status, 200);

    // Nothing was sent yet: a 500, and the connection closes.
    let mut c = client(s.proxy.addr).await;
    let panicked = exchange(&mut c, request("GET", "/panic"), b"").await;
    assert_eq!(panicked.status, 500);
    assert!(
        c.reuse().is_none(),
        "a panicked request's connection is kept"
    );
    let l = line(&s.lines, "/panic").await;
    assert!(l.error.unwrap().contains("boom in request_filter"));

    // The head was on its way: the connection closes, the response is
    // not completed.
    let mut tcp = tokio::net::TcpStream::connect(s.proxy.addr).await.unwrap();
    tcp.write_all(b"POST /panic-body HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer));
    read.await.unwrap().unwrap();
    assert!(!answer.ends_with(b"\r\n\r\nbody"), "{answer:?}");

    // The neighbour's connection and new ones still work.
    let mut neighbour = next(neighbour);
    let after = exchange(&mut neighbour, request("GET", "/after"), b"").await;
    assert_eq!(after.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_stream_leaves_its_http2_connection_working() {
    let s = setup_to(None).await;
    let send = h2_client(s.proxy.addr).await;
    let req = |path: &str| {
        let uri = format!("http://test.local{path}");
        http::Request::builder().uri(uri).body(()).unwrap()
    };
    let (bad, good) = tokio::join!(
        h2_exchange(&send, req("/panic"), b"", None),
        h2_exchange(&send, req("/h2-fine"), b"", None)
    );
    assert_eq!((bad.status, good.status), (500, 200));
    let again = h2_exchange(&send, req("/h2-again"), b"", None).await;
    assert_eq!(again.status, 200);
}
