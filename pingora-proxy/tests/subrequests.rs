//! Subrequests made from a phase: an auth check by subrequest whose 401
//! stops the main request, subrequests refused unless the proxy allows
//! them, the nesting bound, and a background subrequest that outlives its
//! request.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};
use pingora_core::header::RequestHeader;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{MAX_SUBREQUEST_DEPTH, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

/// `/auth` answers 200 to `Authorization: Bearer good`, else 401; any
/// other path answers 200 naming it. Counts requests by kind.
#[derive(Clone, Default)]
struct Origin {
    auth: Arc<AtomicUsize>,
    app: Arc<AtomicUsize>,
}

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let req = request.header();
        if req.uri().path() == "/auth" {
            self.auth.fetch_add(1, Ordering::SeqCst);
            let good = req
                .get_header("authorization")
                .is_some_and(|v| v.as_bytes() == b"Bearer good");
            return HttpResponse::text(if good { 200 } else { 401 }, "auth");
        }
        self.app.fetch_add(1, Ordering::SeqCst);
        HttpResponse::text(200, format!("app {}", req.uri().path()))
    }
}

/// `/app*` asks `/auth` first, by subrequest; `/loop` subrequests itself;
/// `/warm` answers at once and warms `/app/warmed` in the background.
struct Gateway {
    origin: SocketAddr,
    allow: bool,
    /// Requests seen by `request_filter` on `/loop`, subrequests included.
    loops: Arc<AtomicUsize>,
}

/// A GET of `path` for a subrequest, with the client's Authorization.
fn sub_request(session: &Session, path: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    req.insert_header("Host", "test.local").unwrap();
    if let Some(auth) = session.get_header("authorization") {
        req.insert_header("Authorization", auth.clone()).unwrap();
    }
    req
}

impl ProxyHttp for Gateway {
    type CTX = ();
    fn new_ctx(&self) {}

    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &()) -> bool {
        self.allow
    }

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        let path = session.req_header().uri().path().to_owned();
        if path == "/loop" {
            self.loops.fetch_add(1, Ordering::SeqCst);
            let req = sub_request(session, "/loop");
            // Past the depth bound this fails (500), and each level
            // passes the failure on.
            let answer = session.subrequest(req, Bytes::new()).await?;
            session.respond_error(answer.header.status.as_u16()).await?;
            return Ok(true);
        }
        if path == "/warm" {
            let req = sub_request(session, "/app/warmed");
            session.spawn_background_subrequest(req)?;
            session.respond_error(204).await?;
            return Ok(true);
        }
        if path.starts_with("/app") && !session.is_subrequest() {
            let check = sub_request(session, "/auth");
            let answer = session.subrequest(check, Bytes::new()).await?;
            if answer.header.status != 200 {
                session.respond_error(401).await?;
                return Ok(true);
            }
            assert_eq!(answer.body, "auth");
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }
}

async fn setup(allow: bool) -> (Running, Running, Origin, Arc<AtomicUsize>) {
    let origin = Origin::default();
    let origin_server = start_origin(origin.clone()).await;
    let loops = Arc::new(AtomicUsize::new(0));
    let gateway = Gateway {
        origin: origin_server.addr,
        allow,
        loops: loops.clone(),
    };
    (start_proxy(gateway, 0).await, origin_server, origin, loops)
}

async fn get_with(addr: SocketAddr, path: &str, token: &str) -> Exchange {
    let mut c = client(addr).await;
    let mut req = request("GET", path);
    req.insert_header("Authorization", format!("Bearer {token}"))
        .unwrap();
    exchange(&mut c, req, b"").await
}

#[tokio::test]
async fn an_auth_subrequest_lets_through_or_stops_the_request() {
    let (proxy, _origin_server, origin, _) = setup(true).await;
    let good = get_with(proxy.addr, "/app/page", "good").await;
    assert_eq!((good.status, &good.body[..]), (200, &b"app /app/page"[..]));
    assert_eq!(origin.auth.load(Ordering::SeqCst), 1);
    assert_eq!(origin.app.load(Ordering::SeqCst), 1);
    let bad = get_with(proxy.addr, "/app/page", "bad").await;
    assert_eq!(bad.status, 401);
    // The auth service was asked; the app never saw the request.
    assert_eq!(origin.auth.load(Ordering::SeqCst), 2);
    assert_eq!(origin.app.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn subrequests_need_the_proxy_to_allow_them() {
    let (proxy, _origin_server, origin, _) = setup(false).await;
    let refused = get_with(proxy.addr, "/app/page", "good").await;
    assert_eq!(refused.status, 500);
    assert_eq!(origin.auth.load(Ordering::SeqCst), 0);
    assert_eq!(origin.app.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn subrequests_nest_only_so_deep() {
    let (proxy, _origin_server, _, loops) = setup(true).await;
    let answer = get_with(proxy.addr, "/loop", "good").await;
    assert_eq!(answer.status, 500);
    // The client's request and one subrequest per level.
    let levels = usize::from(MAX_SUBREQUEST_DEPTH);
    assert_eq!(loops.load(Ordering::SeqCst), 1 + levels);
}

#[tokio::test]
async fn a_background_subrequest_outlives_its_request() {
    let (proxy, _origin_server, origin, _) = setup(true).await;
    let answer = get_with(proxy.addr, "/warm", "good").await;
    assert_eq!(answer.status, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while origin.app.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // It ran through the phases, which skip the auth check for
    // subrequests (`is_subrequest`): the client's request passed none.
    assert_eq!(origin.app.load(Ordering::SeqCst), 1);
    assert_eq!(origin.auth.load(Ordering::SeqCst), 0);
}
