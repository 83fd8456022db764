//! The UDP proxy on loopback, in front of DNS-like echo upstreams that
//! answer each datagram with its id and their own name; and `socat` as a
//! real client (skipped with a notice when it is missing, failing under
//! `PINGORA_REQUIRE_INTEROP=1`). Every wait is bounded.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use parking_lot::Mutex;
use pingora_core::server::Spawner;
use pingora_core::services::udp::MAX_DATAGRAM;
use pingora_core::services::{Service, ServiceContext};
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::udp::{
    DropReason, ProxyUdp, SessionEnd, UdpPeer, UdpProxy, UdpProxyOptions, UdpSession,
    udp_proxy_service_with_options,
};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::WAIT;
use tokio::net::UdpSocket;
use tokio::sync::watch;

// === upstreams ===

/// A DNS-like upstream: answers each datagram with its first two bytes
/// (the id), `|NAME|`, then the rest of the datagram; remembers the
/// source addresses it saw.
struct Upstream {
    addr: SocketAddr,
    sources: Arc<Mutex<HashSet<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn upstream(name: &'static str) -> Upstream {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let sources = Arc::new(Mutex::new(HashSet::new()));
    let seen = sources.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            seen.lock().insert(from);
            let _ = socket.send_to(&answer(&buf[..n], name), from).await;
        }
    });
    Upstream {
        addr,
        sources,
        task,
    }
}

fn answer(query: &[u8], name: &str) -> Vec<u8> {
    let split = query.len().min(2);
    let mut out = query[..split].to_vec();
    out.extend_from_slice(format!("|{name}|").as_bytes());
    out.extend_from_slice(&query[split..]);
    out
}

/// The upstream name in an answer.
fn answered_by(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(&answer[2..]);
    text.split('|').nth(1).unwrap_or_default().to_owned()
}

// === the proxy's callbacks ===

/// What `logging` saw of one session.
#[derive(Debug, Clone)]
struct Logged {
    client: SocketAddr,
    upstream: Option<SocketAddr>,
    up: (u64, u64),
    down: (u64, u64),
    dropped: u64,
    end: Option<SessionEnd>,
    error: Option<ErrorType>,
}

/// Round robin over `upstreams` per new session, after `hold`; drops
/// datagrams that start with `drop` toward the upstream and marks every
/// answer with `+` on the way back.
#[derive(Default)]
struct Chooser {
    upstreams: Vec<SocketAddr>,
    next: AtomicUsize,
    hold: Duration,
    logged: Arc<Mutex<Vec<Logged>>>,
}

impl ProxyUdp for Chooser {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &UdpSession, first: &[u8], _: &mut ()) -> Result<UdpPeer> {
        if first.starts_with(b"no") {
            return Error::e_explain(ErrorType::ConnectNoRoute, "refused by the test");
        }
        tokio::time::sleep(self.hold).await;
        let i = self.next.fetch_add(1, Ordering::SeqCst) % self.upstreams.len();
        Ok(UdpPeer::new(self.upstreams[i]))
    }

    fn upstream_datagram_filter(
        &self,
        _: &UdpSession,
        datagram: bytes::Bytes,
        _: &mut (),
    ) -> Option<bytes::Bytes> {
        (!datagram.starts_with(b"drop")).then_some(datagram)
    }

    fn downstream_datagram_filter(
        &self,
        _: &UdpSession,
        datagram: bytes::Bytes,
        _: &mut (),
    ) -> Option<bytes::Bytes> {
        let mut marked = datagram.to_vec();
        marked.push(b'+');
        Some(marked.into())
    }

    async fn logging(&self, session: &UdpSession, error: Option<&Error>, _: &mut ()) {
        self.logged.lock().push(Logged {
            client: session.client_addr(),
            upstream: session.upstream_addr(),
            up: (session.datagrams_to_upstream(), session.bytes_to_upstream()),
            down: (session.datagrams_to_client(), session.bytes_to_client()),
            dropped: session.datagrams_dropped(),
            end: session.end_reason(),
            error: error.map(|e| *e.etype()),
        });
    }
}

// === running it ===

struct Proxy {
    addr: SocketAddr,
    app: Arc<UdpProxy<Chooser>>,
    logged: Arc<Mutex<Vec<Logged>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy(upstreams: &[&Upstream], hold: Duration, options: UdpProxyOptions) -> Proxy {
    let chooser = Chooser {
        upstreams: upstreams.iter().map(|u| u.addr).collect(),
        hold,
        ..Chooser::default()
    };
    start(chooser, options).await
}

/// A UDP proxy service running `chooser` on 127.0.0.1, ready.
async fn start(chooser: Chooser, options: UdpProxyOptions) -> Proxy {
    let logged = chooser.logged.clone();
    let mut service = udp_proxy_service_with_options("udp proxy", chooser, options);
    service.add_udp("127.0.0.1:0");
    let bound = service.bound_addrs();
    let app = service.app().clone();
    let (stop, stopped) = watch::channel(false);
    let (mut ctx, mut ready_watch) = ServiceContext::standalone(stopped);
    ctx.spawner = Spawner::current();
    let task = tokio::spawn(async move { service.start_service(ctx).await });
    tokio::time::timeout(WAIT, ready_watch.wait())
        .await
        .unwrap();
    Proxy {
        addr: bound.get().unwrap()[0],
        app,
        logged,
        stop,
        task,
    }
}

fn options() -> UdpProxyOptions {
    UdpProxyOptions::default()
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// The next datagram on `socket` within `limit`.
async fn recv(socket: &UdpSocket, limit: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let (n, _) = tokio::time::timeout(limit, socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(buf[..n].to_vec())
}

/// Send `query` through the proxy and read its answer, sending again up
/// to three times should a datagram be lost.
async fn ask(socket: &UdpSocket, proxy: SocketAddr, query: &[u8]) -> Vec<u8> {
    for _ in 0..3 {
        socket.send_to(query, proxy).await.unwrap();
        if let Some(answer) = recv(socket, Duration::from_secs(3)).await {
            return answer;
        }
    }
    panic!("no answer to {:?}", String::from_utf8_lossy(&query[..2]));
}

/// Wait until `check` holds, polling; fail after `WAIT`.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// === tests ===

#[tokio::test]
async fn each_client_sticks_to_one_upstream_and_clients_spread() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let proxy = proxy(&[&a, &b], Duration::ZERO, options()).await;
    let mut chosen = Vec::new();
    for c in 0..4u8 {
        let client = client().await;
        let mut names = HashSet::new();
        for i in 0..5u8 {
            let answer = ask(&client, proxy.addr, &[c, i, b'q']).await;
            assert_eq!(&answer[..2], &[c, i], "the answer to this query");
            assert!(answer.ends_with(b"|q+"), "{answer:?}");
            names.insert(answered_by(&answer));
        }
        assert_eq!(names.len(), 1, "client {c} moved: {names:?}");
        chosen.extend(names);
    }
    // Round robin per new session: the four clients alternate.
    assert_eq!(chosen, ["a", "b", "a", "b"]);
    assert_eq!(proxy.app.stats().sessions_created(), 4);
    assert_eq!(proxy.app.stats().sessions_active(), 4);
    // Each upstream saw one source port per client it served.
    assert_eq!(a.sources.lock().len(), 2);
    assert_eq!(b.sources.lock().len(), 2);
}

#[tokio::test]
async fn an_idle_session_expires_and_the_next_datagram_starts_another() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let mut options = options();
    options.idle_timeout = Duration::from_millis(200);
    let proxy = proxy(&[&a, &b], Duration::ZERO, options).await;
    let client = client().await;
    let first = ask(&client, proxy.addr, b"01hello").await;
    assert_eq!(answered_by(&first), "a");
    let stats = proxy.app.stats();
    assert_eq!(stats.sessions_active(), 1);
    // Logged last, after the counts.
    until("the session expires", || !proxy.logged.lock().is_empty()).await;
    assert_eq!(stats.sessions_active(), 0);
    assert_eq!(stats.sessions_expired(), 1);
    let logged = proxy.logged.lock().clone();
    assert_eq!(logged.len(), 1, "{logged:?}");
    let session = &logged[0];
    assert_eq!(session.client, client.local_addr().unwrap());
    assert_eq!(session.upstream, Some(a.addr));
    assert_eq!(session.end, Some(SessionEnd::Idle));
    assert_eq!(session.up, (1, 7));
    // "01|a|hello+": the filter's mark is counted too.
    assert_eq!(session.down, (1, 11));
    assert!(session.error.is_none());
    // A new session, chosen anew.
    let second = ask(&client, proxy.addr, b"02hello").await;
    assert_eq!(answered_by(&second), "b");
    assert_eq!(stats.sessions_created(), 2);
}

#[tokio::test]
async fn new_clients_beyond_the_session_cap_are_dropped_and_counted() {
    let a = upstream("a").await;
    let mut options = options();
    options.max_sessions = 2;
    let proxy = proxy(&[&a], Duration::ZERO, options).await;
    let (c1, c2, c3) = (client().await, client().await, client().await);
    ask(&c1, proxy.addr, b"11").await;
    ask(&c2, proxy.addr, b"21").await;
    c3.send_to(b"31", proxy.addr).await.unwrap();
    assert!(recv(&c3, Duration::from_millis(300)).await.is_none());
    let stats = proxy.app.stats();
    assert_eq!(stats.dropped(DropReason::SessionLimit), 1);
    assert_eq!(stats.sessions_active(), 2);
    // The clients in sessions are still served.
    assert_eq!(&ask(&c1, proxy.addr, b"12").await[..2], b"12");
}

#[tokio::test]
async fn a_full_session_queue_drops_and_counts() {
    let a = upstream("a").await;
    let mut options = options();
    options.max_pending_datagrams = 4;
    // The upstream is chosen slowly: the datagrams after the first queue.
    let proxy = proxy(&[&a], Duration::from_millis(400), options).await;
    let client = client().await;
    for i in 0..20u8 {
        client.send_to(&[b'q', i], proxy.addr).await.unwrap();
    }
    let mut answers = Vec::new();
    while let Some(answer) = recv(&client, Duration::from_secs(1)).await {
        answers.push(answer[1]);
    }
    // The first, then the four queued, in order; the rest were dropped.
    assert_eq!(answers, [0, 1, 2, 3, 4]);
    assert_eq!(proxy.app.stats().dropped(DropReason::QueueFull), 15);
}

#[tokio::test]
async fn large_datagrams_pass_whole_both_ways() {
    let a = upstream("a").await;
    let proxy = proxy(&[&a], Duration::ZERO, options()).await;
    let client = client().await;
    let query: Vec<u8> = (0..65_000u32).map(|i| i as u8).collect();
    let answer = ask(&client, proxy.addr, &query).await;
    assert_eq!(answer.len(), query.len() + "|a|".len() + 1);
    assert_eq!(&answer[5..answer.len() - 1], &query[2..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let proxy = proxy(&[&a, &b], Duration::ZERO, options()).await;
    let addr = proxy.addr;
    let clients: Vec<_> = (0..200u16)
        .map(|c| {
            tokio::spawn(async move {
                let client = client().await;
                let mut names = HashSet::new();
                for i in 0..3u8 {
                    let id = c.to_be_bytes();
                    let answer = ask(&client, addr, &[id[0], id[1], i]).await;
                    assert_eq!(&answer[..2], &id);
                    assert_eq!(answer[answer.len() - 2], i);
                    names.insert(answered_by(&answer));
                }
                assert_eq!(names.len(), 1);
            })
        })
        .collect();
    for client in clients {
        tokio::time::timeout(WAIT, client).await.unwrap().unwrap();
    }
    assert_eq!(proxy.app.stats().sessions_created(), 200);
    assert_eq!(a.sources.lock().len() + b.sources.lock().len(), 200);
}

#[tokio::test]
async fn filters_drop_and_change_datagrams_and_logging_counts_them() {
    let a = upstream("a").await;
    let proxy = proxy(&[&a], Duration::ZERO, options()).await;
    let client = client().await;
    ask(&client, proxy.addr, b"01").await;
    client.send_to(b"drop me", proxy.addr).await.unwrap();
    assert!(recv(&client, Duration::from_millis(200)).await.is_none());
    ask(&client, proxy.addr, b"02").await;
    assert_eq!(proxy.app.stats().dropped(DropReason::Filtered), 1);
    proxy.stop.send_replace(true);
    until("the service returns", || proxy.task.is_finished()).await;
    let logged = proxy.logged.lock().clone();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].end, Some(SessionEnd::Shutdown));
    assert_eq!(logged[0].up, (2, 4));
    assert_eq!(logged[0].down.0, 2);
    assert_eq!(logged[0].dropped, 1);
}

#[tokio::test]
async fn an_unreachable_upstream_ends_the_session_and_the_next_goes_elsewhere() {
    // Nothing listens on `dead`: the kernel answers port unreachable.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let live = upstream("live").await;
    // Sessions alternate: first to the dead upstream, then the live one.
    let chooser = Chooser {
        upstreams: vec![dead, live.addr],
        ..Chooser::default()
    };
    let proxy = start(chooser, options()).await;
    let first = client().await;
    first.send_to(b"01", proxy.addr).await.unwrap();
    first.send_to(b"02", proxy.addr).await.unwrap();
    until("the session to the dead upstream is logged", || {
        !proxy.logged.lock().is_empty()
    })
    .await;
    let logged = proxy.logged.lock().clone();
    assert_eq!(logged[0].upstream, Some(dead));
    assert_eq!(logged[0].end, Some(SessionEnd::Error), "{logged:?}");
    assert_eq!(logged[0].error, Some(ErrorType::ConnectRefused));
    let answer = ask(&first, proxy.addr, b"03").await;
    assert_eq!(answered_by(&answer), "live");
    // An error from upstream_peer drops the datagram and is logged.
    let other = client().await;
    other.send_to(b"no upstream", proxy.addr).await.unwrap();
    assert!(recv(&other, Duration::from_millis(300)).await.is_none());
    until("the refused session is logged", || {
        proxy.logged.lock().len() == 2
    })
    .await;
    let refused = proxy.logged.lock()[1].clone();
    assert_eq!(refused.error, Some(ErrorType::ConnectNoRoute));
    assert_eq!(refused.upstream, None);
    assert!(proxy.app.stats().dropped(DropReason::NoUpstream) >= 1);
}

#[tokio::test]
async fn socat_gets_its_answer_through_the_proxy() {
    if !support::tools::tool_available("socat") {
        return;
    }
    let a = upstream("a").await;
    let proxy = proxy(&[&a], Duration::ZERO, options()).await;
    // socat sends its stdin as one datagram, prints the answer, and exits
    // half a second after its stdin ends (`-t`).
    let target = format!("UDP:{}", proxy.addr);
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("timeout")
            .args(["10", "socat", "-t", "2", "-", &target])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"42socat").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"42|a|socat+", "{out:?}");
    assert_eq!(proxy.app.stats().sessions_created(), 1);
}
