//! The HTTP module chain, through a real proxy and origin: where each
//! hook runs among the phases, per-request instances, and responses a
//! phase writes itself.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use parking_lot::Mutex;
use pingora_core::apps::http_app::EchoApp;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::modules::http::{
    HttpModule, HttpModuleBuilder, HttpModules, Module, async_trait,
};
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{ProxyHttp, Session};
use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use support::*;

/// Marks the request, upper-cases its body, tags the response (saying
/// whether the phases' own field was there already) and counts the
/// response body bytes it let through.
struct Counter {
    on: bool,
    bytes: usize,
    ended: bool,
    totals: Arc<Mutex<Vec<(usize, bool)>>>,
}

#[async_trait]
impl HttpModule for Counter {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("X-Module", "seen")
    }
    async fn request_body_filter(&mut self, body: &mut Option<Bytes>, _: bool) -> Result<()> {
        if let Some(piece) = body {
            *piece = Bytes::from(piece.to_ascii_uppercase());
        }
        Ok(())
    }
    async fn response_header_filter(&mut self, resp: &mut ResponseHeader, _: bool) -> Result<()> {
        if self.on {
            let after = if resp.headers().contains_key("x-phase") {
                "yes"
            } else {
                "no"
            };
            resp.insert_header("X-Module-After-Phase", after)?;
        }
        Ok(())
    }
    fn response_body_filter(&mut self, body: &mut Option<Bytes>, end: bool) -> Result<()> {
        self.bytes += body.as_ref().map_or(0, Bytes::len);
        self.ended |= end;
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.totals.lock().push((self.bytes, self.ended));
    }
}

struct CounterBuilder(Arc<Mutex<Vec<(usize, bool)>>>);

impl HttpModuleBuilder for CounterBuilder {
    fn init(&self) -> Module {
        Box::new(Counter {
            on: true,
            bytes: 0,
            ended: false,
            totals: self.0.clone(),
        })
    }
}

struct WithModules {
    origin: SocketAddr,
    totals: Arc<Mutex<Vec<(usize, bool)>>>,
    /// Whether `request_filter` saw the module's request field.
    saw: Arc<Mutex<Vec<bool>>>,
    /// The status of each response head written, from `response_written`.
    written: Arc<Mutex<Vec<Option<u16>>>>,
}

impl ProxyHttp for WithModules {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(CounterBuilder(self.totals.clone())));
    }

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        self.saw
            .lock()
            .push(session.get_header("x-module").is_some());
        match session.req_header().uri().path() {
            "/off" => {
                let module = session.downstream_modules_ctx_mut().get_mut::<Counter>();
                module.unwrap().on = false;
                Ok(false)
            }
            "/direct" => {
                session.respond_error_with_body(401, "who?".into()).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    async fn response_filter(
        &self,
        _: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        resp.insert_header("X-Phase", "1")
    }

    async fn logging(&self, session: &mut Session, _: Option<&Error>, _: &mut ()) {
        // Still this request's instance, with its count so far.
        assert!(session.downstream_modules_ctx().get::<Counter>().is_some());
        let status = session.response_written().map(|h| h.status().as_u16());
        self.written.lock().push(status);
    }
}

fn post(path: &str, body: &[u8]) -> RequestHeader {
    let mut req = request("POST", path);
    req.insert_header("Content-Length", body.len().to_string())
        .unwrap();
    req
}

#[tokio::test]
async fn modules_run_around_the_phases_per_request() {
    let origin = start_origin(EchoApp).await;
    let totals = Arc::new(Mutex::new(Vec::new()));
    let saw = Arc::new(Mutex::new(Vec::new()));
    let proxy = start_proxy(
        WithModules {
            origin: origin.addr,
            totals: totals.clone(),
            saw: saw.clone(),
            written: Arc::default(),
        },
        0,
    )
    .await;
    let mut c = client(proxy.addr).await;
    let echoed = exchange(&mut c, post("/echo", b"hello"), b"hello").await;
    assert_eq!(echoed.status, 200);
    // The request body filter ran before the body went upstream.
    assert_eq!(echoed.body, b"HELLO");
    // The response head filter ran after `response_filter`.
    assert_eq!(echoed.headers["x-module-after-phase"], "yes");
    assert_eq!(echoed.headers["x-phase"], "1");

    // A phase turns this request's instance off; the next request gets a
    // fresh one.
    let mut c = next(c);
    let off = exchange(&mut c, post("/off", b"abc"), b"abc").await;
    assert!(!off.headers.contains_key("x-module-after-phase"));
    let mut c = next(c);
    let direct = exchange(&mut c, request("GET", "/direct"), b"").await;
    assert_eq!((direct.status, &direct.body[..]), (401, &b"who?"[..]));
    // A response a phase writes goes through the response filters too
    // (it has no `X-Phase`: `response_filter` is for upstream responses).
    assert_eq!(direct.headers["x-module-after-phase"], "no");
    drop(c);

    // The request head filter ran before `request_filter`, every time.
    assert_eq!(*saw.lock(), [true, true, true]);
    // Each request's instance counted its own body and saw its end.
    let deadline = std::time::Instant::now() + WAIT;
    while totals.lock().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(*totals.lock(), [(5, true), (3, true), (4, true)]);
}

/// HTTP/2 clients go through the same chain, stream by stream.
#[tokio::test]
async fn modules_run_for_http2_streams() {
    let origin = start_origin(EchoApp).await;
    let totals = Arc::new(Mutex::new(Vec::new()));
    let written = Arc::new(Mutex::new(Vec::new()));
    let sv = WithModules {
        origin: origin.addr,
        totals: totals.clone(),
        saw: Arc::default(),
        written: written.clone(),
    };
    let proxy = pingora_proxy::HttpProxy::new(sv, &pingora_core::server::ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = serve_app(proxy).await;
    let send = h2_tools::h2_client(proxy.addr).await;
    let req = http::Request::builder()
        .method("POST")
        .uri("http://test.local/echo")
        .body(())
        .unwrap();
    let answer = h2_tools::h2_exchange(&send, req, b"quiet", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"QUIET");
    assert_eq!(answer.headers["x-module-after-phase"], "yes");
    let req = http::Request::builder()
        .uri("http://test.local/direct")
        .body(())
        .unwrap();
    let direct = h2_tools::h2_exchange(&send, req, b"", None).await;
    assert_eq!((direct.status, &direct.body[..]), (401, &b"who?"[..]));
    assert_eq!(direct.headers["x-module-after-phase"], "no");
    drop(send);
    let deadline = std::time::Instant::now() + WAIT;
    while totals.lock().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(*totals.lock(), [(5, true), (4, true)]);
    assert_eq!(*written.lock(), [Some(200), Some(401)]);
}
