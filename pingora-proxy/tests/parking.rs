//! The proxy's side of parking idle connections: a kept-alive HTTP/1
//! connection that stays silent is handed back idle (`Served::Idle`) when
//! the listening service says it can park it, and the proxy serves it
//! again afterwards as a reused connection. The parking itself (the
//! epoll set, timeouts, draining) is tested with the listening service
//! in `pingora-core`.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use pingora_core::apps::http_app::HelloApp;
use pingora_core::apps::{Handover, ListenerOptions, Served, ServerApp};
use pingora_core::header::ResponseHeader;
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::v1::H1Config;
use pingora_core::protocols::l4::L4Stream;
use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{WAIT, client, exchange, next, request, start_origin};
use tokio::net::TcpListener;

/// Proxies to its origin and says whether the client's connection was
/// reused.
struct SaysReused(SocketAddr);

impl ProxyHttp for SaysReused {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        let reused = session.is_downstream_reused().to_string();
        resp.insert_header("x-reused", reused)?;
        Ok(())
    }
}

fn reused(answer: &support::Exchange) -> &str {
    answer.headers.get("x-reused").unwrap().to_str().unwrap()
}

/// An origin, a proxy to it, listener options that park after
/// `park_after`, and a listener for the test to accept on.
async fn setup(
    park_after: Duration,
) -> (
    support::Running,
    Arc<HttpProxy<SaysReused>>,
    ListenerOptions,
    TcpListener,
) {
    let origin = start_origin(HelloApp).await;
    let proxy = Arc::new(HttpProxy::new(SaysReused(origin.addr), &ServerConf::default()).unwrap());
    let mut h1 = H1Config::default();
    h1.park_idle_after = Some(park_after);
    h1.idle_timeout = Duration::from_secs(30);
    let options = ListenerOptions::default().with_h1(h1);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (origin, proxy, options, listener)
}

#[tokio::test]
async fn an_idle_connection_is_handed_back_and_served_again_as_reused() {
    let (_origin, proxy, options, listener) = setup(Duration::from_millis(50)).await;
    let addr = listener.local_addr().unwrap();
    let (_tx, shutdown) = tokio::sync::watch::channel(false);

    // The server side: what a listening service does, minus the parking.
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream: Stream = Box::new(L4Stream::from_tcp(tcp));
        let mut outcomes = Vec::new();
        let mut handover = Handover::accepted(true);
        let mut stream = Some(stream);
        while let Some(s) = stream.take() {
            let started = Instant::now();
            match proxy
                .process_connection(s, &shutdown, &options, handover)
                .await
            {
                Served::Idle { stream: idle, wait } => {
                    outcomes.push(format!("idle after {:?}, {wait:?} left", started.elapsed()));
                    // Handed back at once (the parker would wait for the
                    // client first): the proxy waits the park wait again.
                    stream = Some(idle);
                    handover = Handover::resumed(true);
                }
                Served::Closed => outcomes.push("closed".to_owned()),
                Served::Again(_) => outcomes.push("again".to_owned()),
            }
        }
        outcomes
    });

    let mut c = client(addr).await;
    let first = exchange(&mut c, request("GET", "/"), b"").await;
    assert_eq!(first.status, 200);
    assert_eq!(reused(&first), "false");
    // Silent past the park wait: the proxy hands the connection back,
    // then serves the next request on it as a reused connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = next(c);
    let second = exchange(&mut c, request("GET", "/"), b"").await;
    assert_eq!(second.status, 200);
    assert_eq!(reused(&second), "true");
    drop(c);

    let outcomes = tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
    // Idle each time it sat silent for the park wait (the first time
    // after the first request), closed once the client closed.
    let (last, idles) = outcomes.split_last().unwrap();
    assert_eq!(last, "closed", "{outcomes:?}");
    assert!(idles.len() >= 2, "{outcomes:?}");
    assert!(
        idles.iter().all(|o| o.starts_with("idle after")),
        "{outcomes:?}"
    );
}

/// Without the service's say-so (`parkable` false), and so for every
/// caller of `process_new`, the proxy keeps the connection on its task
/// for the whole idle timeout: nothing is handed back.
#[tokio::test]
async fn a_connection_that_cannot_be_parked_stays_on_its_task() {
    let (_origin, proxy, options, listener) = setup(Duration::from_millis(20)).await;
    let addr = listener.local_addr().unwrap();
    let (_tx, shutdown) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream: Stream = Box::new(L4Stream::from_tcp(tcp));
        let handover = Handover::accepted(false);
        match proxy
            .process_connection(stream, &shutdown, &options, handover)
            .await
        {
            Served::Closed => "closed",
            Served::Idle { .. } => "idle",
            Served::Again(_) => "again",
        }
    });
    let mut c = client(addr).await;
    exchange(&mut c, request("GET", "/"), b"").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = next(c);
    let second = exchange(&mut c, request("GET", "/"), b"").await;
    assert_eq!(reused(&second), "true");
    drop(c);
    let outcome = tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
    assert_eq!(outcome, "closed");
}
