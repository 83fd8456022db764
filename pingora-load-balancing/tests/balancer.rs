//! The load balancer end to end: failover, discovery updates and the
//! background service, over loopback sockets.

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_core::services::ReadyNotifier;
use pingora_core::services::background::BackgroundService;
use pingora_error::Result;
use pingora_load_balancing::discovery::{Dns, ServiceDiscovery};
use pingora_load_balancing::health_check::TcpHealthCheck;
use pingora_load_balancing::selection::{Consistent, PowerOfTwo, RoundRobin};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::{Answer, Origin, WAIT};
use tokio::net::TcpStream;

/// Connect like a proxy would: pick, try, and on failure pick again
/// excluding what failed.
async fn connect_with_failover(lb: &LoadBalancer<Consistent>, key: &[u8]) -> (Backend, usize) {
    let mut tried: Vec<Backend> = Vec::new();
    loop {
        let backend = lb
            .select_with(key, 16, |b, healthy| healthy && !tried.contains(b))
            .expect("a live backend remains");
        let addr = *backend.addr.as_inet().unwrap();
        match tokio::time::timeout(WAIT, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return (backend, tried.len()),
            _ => tried.push(backend),
        }
    }
}

#[tokio::test]
async fn failover_skips_a_backend_that_refuses() {
    let live = Origin::start(Answer::Http(200, "ok")).await;
    let dead = support::refused_addr().await;
    let lb = LoadBalancer::<Consistent>::try_from_iter([live.backend(), dead.to_string()]).unwrap();
    let mut failovers = 0;
    for i in 0..50 {
        let (backend, failed) = connect_with_failover(&lb, format!("k{i}").as_bytes()).await;
        assert_eq!(backend.to_string(), live.backend());
        failovers += failed;
    }
    // About half the keys hash to the dead backend first.
    assert!(failovers > 5, "{failovers}");
}

/// Discovery whose answer the test changes, counting calls.
#[derive(Default)]
struct Scripted {
    set: Mutex<BTreeSet<Backend>>,
}

#[async_trait]
impl ServiceDiscovery for Scripted {
    async fn discover(&self) -> Result<BTreeSet<Backend>> {
        Ok(self.set.lock().clone())
    }
}

fn backends(addrs: &[&str]) -> BTreeSet<Backend> {
    addrs.iter().map(|a| Backend::new(a).unwrap()).collect()
}

#[tokio::test]
async fn unchanged_sets_do_not_rebuild() {
    let discovery = Arc::new(Scripted::default());
    *discovery.set.lock() = backends(&["127.0.0.1:1", "127.0.0.1:2"]);
    let set = Backends::new(Box::new(Arc::clone(&discovery)));
    let mut builds = 0;
    assert!(set.update(|_| builds += 1).await.unwrap());
    assert!(!set.update(|_| builds += 1).await.unwrap());
    assert_eq!(builds, 1);

    // Round robin's position survives an unchanged update, so the turns
    // keep alternating.
    let lb = LoadBalancer::<RoundRobin>::from_discovery(Arc::clone(&discovery));
    lb.update().await.unwrap();
    let first = lb.select(b"", 1).unwrap();
    lb.update().await.unwrap();
    assert_ne!(lb.select(b"", 1).unwrap(), first);

    // A changed set is picked up.
    *discovery.set.lock() = backends(&["127.0.0.1:3"]);
    lb.update().await.unwrap();
    assert_eq!(lb.select(b"", 4).unwrap().to_string(), "127.0.0.1:3");
}

#[tokio::test]
async fn dns_discovery_resolves_localhost() {
    let origin = Origin::start(Answer::Http(200, "ok")).await;
    let name = format!("localhost:{}", origin.addr.port());
    let lb = LoadBalancer::<RoundRobin>::from_discovery(Dns::new([(name, 1)]));
    assert!(
        lb.select(b"", 4).is_none(),
        "nothing before the first update"
    );
    lb.update().await.unwrap();
    let backend = lb.select(b"", 4).unwrap();
    assert!(backend.addr.as_inet().unwrap().ip().is_loopback());
    assert_eq!(backend.addr.as_inet().unwrap().port(), origin.addr.port());
}

#[tokio::test]
async fn background_service_checks_before_ready_and_stops_on_shutdown() {
    let live = Origin::start(Answer::Http(200, "ok")).await;
    let dead = support::refused_addr().await;
    let mut lb =
        LoadBalancer::<RoundRobin>::try_from_iter([live.backend(), dead.to_string()]).unwrap();
    lb.set_health_check(TcpHealthCheck::new().timeout(Duration::from_millis(500)));
    lb.health_check_frequency = Some(Duration::from_millis(50));
    lb.update_frequency = Some(Duration::from_millis(50));
    let lb = Arc::new(lb);

    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let (ready, mut ready_watch) = ReadyNotifier::new();
    let service = Arc::clone(&lb);
    let running = tokio::spawn(async move { service.start_with_ready(shutdown, ready).await });
    tokio::time::timeout(WAIT, ready_watch.wait())
        .await
        .unwrap();
    // Ready means the first round of checks ran: the dead backend is out.
    for _ in 0..10 {
        assert_eq!(lb.select(b"", 4).unwrap().to_string(), live.backend());
    }
    let probes = live.accepted.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = live.accepted.load(std::sync::atomic::Ordering::Relaxed);
    assert!(later > probes, "checks keep running: {probes} then {later}");

    shutdown_tx.send_replace(true);
    tokio::time::timeout(WAIT, running).await.unwrap().unwrap();
}

#[tokio::test]
async fn tracked_selection_spreads_held_requests() {
    let lb = LoadBalancer::<PowerOfTwo>::try_from_iter(["127.0.0.1:1", "127.0.0.1:2"]).unwrap();
    let (first, guard) = lb.select_tracked(b"", 4, |_, healthy| healthy).unwrap();
    assert!(guard.is_tracked());
    // The first backend has a request in flight: the other one is lighter.
    let (second, _g2) = lb.select_tracked(b"", 4, |_, healthy| healthy).unwrap();
    assert_ne!(first, second);
    drop(guard);
    // Round robin does not count.
    let rr = LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:1"]).unwrap();
    assert!(!rr.select_tracked(b"", 1, |_, h| h).unwrap().1.is_tracked());
}

/// Pingora's shapes: a boxed check with its knobs set as fields, and a
/// backend switched off and on at run time whatever its health.
#[tokio::test]
async fn boxed_check_knobs_and_enabling_at_run_time() {
    use pingora_load_balancing::health_check::HealthCheck;

    let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = [a.local_addr().unwrap(), b.local_addr().unwrap()].map(|a| a.to_string());
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(&addrs).unwrap();
    let mut check = TcpHealthCheck::new();
    check.consecutive_failure = 2;
    check.consecutive_success = 1;
    let check: Box<dyn HealthCheck + Send + Sync> = Box::new(check);
    lb.set_health_check(check);

    let backend_a = Backend::new(&addrs[0]).unwrap();
    let backend_b = Backend::new(&addrs[1]).unwrap();
    lb.backends().run_health_check(true).await;
    assert!(lb.backends().ready(&backend_a) && lb.backends().ready(&backend_b));

    // Disabled: never selected, though healthy and still probed.
    assert!(lb.backends().set_enable(&backend_a, false));
    for _ in 0..6 {
        assert_eq!(lb.select(b"", 8).unwrap(), backend_b);
    }
    lb.backends().run_health_check(true).await;
    assert!(!lb.backends().ready(&backend_a));

    // Enabled again: back in the rotation.
    lb.backends().set_enable(&backend_a, true);
    let picks: BTreeSet<Backend> = (0..4).map(|_| lb.select(b"", 8).unwrap()).collect();
    assert_eq!(picks.len(), 2);

    // The knob is honoured: B down takes two failed probes.
    drop(b);
    lb.backends().run_health_check(true).await;
    assert!(lb.backends().ready(&backend_b), "one failure is not enough");
    lb.backends().run_health_check(true).await;
    assert!(!lb.backends().ready(&backend_b));
    assert!(
        !lb.backends()
            .set_enable(&Backend::new("127.0.0.1:1").unwrap(), false)
    );
}
