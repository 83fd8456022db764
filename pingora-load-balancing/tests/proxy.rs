//! Traffic through a real proxy (pingora-proxy) that picks its upstream
//! with a load balancer: unhealthy origins are skipped, and a refused
//! connection fails over to another backend.

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use pingora_core::apps::ServerApp;
use pingora_core::header::RequestHeader;
use pingora_core::protocols::http::v1::{ClientSession, H1Config};
use pingora_core::protocols::l4::L4Stream;
use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_load_balancing::health_check::TcpHealthCheck;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backend, LoadBalancer};
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{Answer, Origin, WAIT};
use tokio::net::{TcpListener, TcpStream};

/// A proxy that asks the load balancer for each attempt, skipping the
/// backends this request already failed on.
struct LbProxy {
    lb: Arc<LoadBalancer<RoundRobin>>,
    connect_failures: Arc<AtomicUsize>,
}

impl ProxyHttp for LbProxy {
    type CTX = Vec<Backend>;

    fn new_ctx(&self) -> Vec<Backend> {
        Vec::new()
    }

    async fn upstream_peer(
        &self,
        _: &mut Session,
        tried: &mut Vec<Backend>,
    ) -> Result<Box<HttpPeer>> {
        let backend = self
            .lb
            .select_with(b"", 16, |b, healthy| healthy && !tried.contains(b))
            .ok_or_else(|| Error::explain(ErrorType::ConnectError, "no backend left"))?;
        tried.push(backend.clone());
        Ok(Box::new(HttpPeer::new(backend.addr, false, "")))
    }

    fn fail_to_connect(
        &self,
        _: &mut Session,
        _: &HttpPeer,
        _: &mut Vec<Backend>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
        e.set_retry(true);
        e
    }
}

/// Serve `proxy` on 127.0.0.1:0.
async fn start_proxy(proxy: LbProxy) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let conf = ServerConf::default();
    let app = Arc::new(HttpProxy::new(proxy, &conf).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let served = Arc::clone(&app);
    let task = tokio::spawn(async move {
        let _keep = _tx;
        while let Ok((tcp, _)) = listener.accept().await {
            let (app, rx) = (Arc::clone(&served), rx.clone());
            tokio::spawn(async move {
                app.process_new(Box::new(L4Stream::from_tcp(tcp)), &rx)
                    .await;
            });
        }
    });
    (addr, task)
}

/// One GET through the proxy: the status and body.
async fn get(proxy: SocketAddr) -> (u16, String) {
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(proxy))
        .await
        .unwrap()
        .unwrap();
    let mut config = H1Config::default();
    config.header_timeout = WAIT;
    config.body_read_timeout = WAIT;
    config.write_timeout = WAIT;
    let mut client = ClientSession::new(Box::new(L4Stream::from_tcp(tcp)), config);
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Host", "lb.test").unwrap();
    client.write_request_header(req).await.unwrap();
    client.finish_body(None).await.unwrap();
    let status = client
        .read_final_response_header()
        .await
        .unwrap()
        .status()
        .as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = client.read_body_bytes().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    (status, String::from_utf8(body).unwrap())
}

/// The bodies of `n` requests, sorted and deduplicated; panics on any
/// non-200 answer.
async fn answers(proxy: SocketAddr, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let (status, body) = get(proxy).await;
        assert_eq!(status, 200, "a client request failed");
        seen.push(body);
    }
    seen.sort();
    seen.dedup();
    seen
}

#[tokio::test]
async fn traffic_moves_off_a_down_origin_and_back() {
    let mut a = Origin::start(Answer::Http(200, "a")).await;
    let b = Origin::start(Answer::Http(200, "b")).await;
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter([a.backend(), b.backend()]).unwrap();
    lb.set_health_check(
        TcpHealthCheck::new()
            .timeout(Duration::from_millis(500))
            .consecutive_failure(2),
    );
    let lb = Arc::new(lb);
    let failed = Arc::new(AtomicUsize::new(0));
    let proxy = LbProxy {
        lb: Arc::clone(&lb),
        connect_failures: Arc::clone(&failed),
    };
    let (addr, _task) = start_proxy(proxy).await;
    assert_eq!(answers(addr, 10).await, ["a", "b"]);

    a.stop().await;
    lb.backends().run_health_check(true).await;
    lb.backends().run_health_check(true).await;
    // Marked down: every request goes to b, none fails, and the proxy does
    // not even try a.
    let failures = failed.load(Ordering::Relaxed);
    assert_eq!(answers(addr, 20).await, ["b"]);
    assert_eq!(failed.load(Ordering::Relaxed), failures);

    a.restart().await;
    lb.backends().run_health_check(true).await;
    assert_eq!(answers(addr, 10).await, ["a", "b"]);
}

#[tokio::test]
async fn a_refused_connection_fails_over_to_another_backend() {
    let live = Origin::start(Answer::Http(200, "live")).await;
    let dead = support::refused_addr().await;
    // No health check: the proxy finds out by connecting.
    let lb = Arc::new(
        LoadBalancer::<RoundRobin>::try_from_iter([live.backend(), dead.to_string()]).unwrap(),
    );
    let failed = Arc::new(AtomicUsize::new(0));
    let proxy = LbProxy {
        lb,
        connect_failures: Arc::clone(&failed),
    };
    let (addr, _task) = start_proxy(proxy).await;
    assert_eq!(answers(addr, 10).await, ["live"]);
    // Round robin sent about half the first attempts to the dead backend.
    assert!(failed.load(Ordering::Relaxed) >= 4);
}
