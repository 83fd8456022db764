//! The extension hooks: upstream trailers, throttled body filters, the
//! reused-connection hook, a context per client connection (also across
//! parking), `fail_to_proxy` keeping the connection, and the subrequest
//! switch.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use http::HeaderMap;
use parking_lot::Mutex;
use pingora_core::apps::http_app::EchoApp;
use pingora_core::apps::{Handover, ListenerOptions, Served, ServerApp};
use pingora_core::header::ResponseHeader;
use pingora_core::protocols::Digest;
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::v1::H1Config;
use pingora_core::protocols::l4::L4Stream;
use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{FailToProxy, HttpProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::net::TcpListener;

/// Requests seen on this client connection.
struct Seen(u32);

#[derive(Default)]
struct Notes {
    trailer_order: Vec<&'static str>,
    upstream_reused: Vec<bool>,
}

struct Hooks {
    origin: SocketAddr,
    notes: Arc<Mutex<Notes>>,
}

impl ProxyHttp for Hooks {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        let seen = match session.connection_ctx_mut::<Seen>() {
            Some(seen) => {
                seen.0 += 1;
                seen.0
            }
            None => {
                session.set_connection_ctx(Seen(1));
                1
            }
        };
        session
            .req_header_mut()
            .insert_header("X-Conn-Requests", seen.to_string().as_str())?;
        assert!(!self.allow_spawning_subrequest(session, &()));
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        if session.req_header().uri().path() == "/down" {
            return Error::e_explain(pingora_error::ErrorType::ConnectRefused, "down on purpose")
                .map_err(Error::into_up);
        }
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    async fn connected_to_upstream(
        &self,
        _: &mut Session,
        reused: bool,
        _: &HttpPeer,
        _: Option<&Digest>,
        _: &mut (),
    ) -> Result<()> {
        self.notes.lock().upstream_reused.push(reused);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        let seen = session.connection_ctx::<Seen>().map_or(0, |s| s.0);
        resp.insert_header("X-Conn-Requests", seen.to_string().as_str())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        _: &mut Option<Bytes>,
        _: bool,
        _: &mut (),
    ) -> Result<Option<Duration>> {
        let slow = session.req_header().uri().path() == "/slow";
        Ok(slow.then_some(Duration::from_millis(150)))
    }

    fn upstream_response_trailer_filter(
        &self,
        _: &mut Session,
        trailers: &mut HeaderMap,
        _: &mut (),
    ) -> Result<()> {
        self.notes.lock().trailer_order.push("upstream");
        trailers.insert("x-upstream-trailer", "1".parse().unwrap());
        Ok(())
    }

    async fn response_trailer_filter(
        &self,
        _: &mut Session,
        trailers: &mut HeaderMap,
        _: &mut (),
    ) -> Result<Option<Bytes>> {
        self.notes.lock().trailer_order.push("downstream");
        let saw = trailers.contains_key("x-upstream-trailer").to_string();
        trailers.insert("x-saw-upstream-filter", saw.parse().unwrap());
        Ok(Some(Bytes::from_static(b"+tail")))
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _: &mut ()) -> FailToProxy {
        let code = pingora_proxy::error_status(e);
        let body = Bytes::from_static(b"origin down\n");
        let sent = session.respond_error_with_body(code, body).await.is_ok();
        FailToProxy {
            error_code: code,
            can_reuse_downstream: sent,
        }
    }
}

async fn setup() -> (Running, Running, Arc<Mutex<Notes>>) {
    let origin = start_origin(EchoApp).await;
    let notes = Arc::new(Mutex::new(Notes::default()));
    let hooks = Hooks {
        origin: origin.addr,
        notes: notes.clone(),
    };
    let proxy = start_proxy(hooks, 0).await;
    (origin, proxy, notes)
}

#[tokio::test]
async fn trailers_pass_both_trailer_filters_in_order() {
    let (_origin, proxy, notes) = setup().await;
    let mut c = client(proxy.addr).await;
    // A chunked upload with trailers, which the echo origin sends back.
    let mut req = request("POST", "/trailers");
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    req.insert_header("TE", "trailers").unwrap();
    let answer = tokio::time::timeout(WAIT, async {
        c.write_request_header(req).await.unwrap();
        c.write_body(b"body").await.unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-client-trailer", "1".parse().unwrap());
        c.finish_body(Some(&trailers)).await.unwrap();
        let head = c.read_final_response_header().await.unwrap().clone();
        let mut body = Vec::new();
        while let Some(piece) = c.read_body_bytes().await.unwrap() {
            body.extend_from_slice(&piece);
        }
        (head, body, c.trailers().cloned().unwrap())
    })
    .await
    .unwrap();
    let (head, body, trailers) = answer;
    assert_eq!(head.status(), 200);
    // Bytes returned by `response_trailer_filter` end the body.
    assert_eq!(body, b"body+tail");
    assert_eq!(trailers["x-client-trailer"], "1");
    assert_eq!(trailers["x-upstream-trailer"], "1");
    assert_eq!(trailers["x-saw-upstream-filter"], "true");
    assert_eq!(notes.lock().trailer_order, ["upstream", "downstream"]);
}

/// An origin answering every request with a chunked body of two pieces,
/// written 10 ms apart.
async fn two_piece_origin() -> Running {
    serve_fn(|mut stream, _| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0; 1];
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
        stream.write_all(first).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        stream.write_all(b"6\r\nsecond\r\n0\r\n\r\n").await.unwrap();
        stream.flush().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn a_throttling_body_filter_slows_the_response() {
    let origin = two_piece_origin().await;
    let notes = Arc::new(Mutex::new(Notes::default()));
    let hooks = Hooks {
        origin: origin.addr,
        notes,
    };
    let proxy = start_proxy(hooks, 0).await;
    let start = Instant::now();
    let fast = get(proxy.addr, "/fast").await;
    let fast_took = start.elapsed();
    assert_eq!(fast.body, b"firstsecond");
    // `/slow` pauses 150 ms after each piece but the last.
    let start = Instant::now();
    let slow = get(proxy.addr, "/slow").await;
    let took = start.elapsed();
    assert_eq!(slow.body, b"firstsecond");
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(fast_took < took, "{fast_took:?} vs {took:?}");
}

#[tokio::test]
async fn the_reuse_hook_and_the_connection_context() {
    let (_origin, proxy, notes) = setup().await;
    let mut c = client(proxy.addr).await;
    let first = exchange(&mut c, request("GET", "/a"), b"").await;
    assert_eq!(first.headers["x-conn-requests"], "1");
    let mut c = next(c);
    let second = exchange(&mut c, request("GET", "/b"), b"").await;
    assert_eq!(second.headers["x-conn-requests"], "2");
    // A new client connection starts with no context.
    let other = get(proxy.addr, "/c").await;
    assert_eq!(other.headers["x-conn-requests"], "1");
    // The upstream connection went back to the pool and was reused.
    assert_eq!(notes.lock().upstream_reused[..2], [false, true]);
}

#[tokio::test]
async fn fail_to_proxy_may_keep_the_client_connection() {
    let (_origin, proxy, _notes) = setup().await;
    let mut c = client(proxy.addr).await;
    let failed = exchange(&mut c, request("GET", "/down"), b"").await;
    assert_eq!(
        (failed.status, &failed.body[..]),
        (502, &b"origin down\n"[..])
    );
    assert!(!failed.headers.contains_key("connection"));
    // Kept: the next request on the connection goes through.
    let mut c = next(c);
    let ok = exchange(&mut c, request("GET", "/up"), b"").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers["x-conn-requests"], "2");
}

/// A connection holding a context is not parked: the context survives
/// an idle wait far past `park_idle_after`, and the connection is never
/// handed back idle.
#[tokio::test]
async fn a_connection_with_a_context_is_not_parked() {
    let origin = start_origin(EchoApp).await;
    let notes = Arc::new(Mutex::new(Notes::default()));
    let hooks = Hooks {
        origin: origin.addr,
        notes,
    };
    let proxy = Arc::new(HttpProxy::new(hooks, &ServerConf::default()).unwrap());
    let mut h1 = H1Config::default();
    h1.park_idle_after = Some(Duration::from_millis(20));
    let options = ListenerOptions::default().with_h1(h1);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, shutdown) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream: Stream = Box::new(L4Stream::from_tcp(tcp));
        let handover = Handover::accepted(true);
        match proxy
            .process_connection(stream, &shutdown, &options, handover)
            .await
        {
            Served::Idle { .. } => "idle",
            Served::Closed => "closed",
            Served::Again(_) => "again",
        }
    });
    let mut c = client(addr).await;
    let first = exchange(&mut c, request("GET", "/a"), b"").await;
    assert_eq!(first.headers["x-conn-requests"], "1");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut c = next(c);
    let second = exchange(&mut c, request("GET", "/b"), b"").await;
    assert_eq!(second.headers["x-conn-requests"], "2");
    drop(c);
    let outcome = tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
    assert_eq!(outcome, "closed");
}
