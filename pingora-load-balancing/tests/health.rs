//! Health checks against real loopback origins.

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use parking_lot::Mutex;
use pingora_load_balancing::health_check::{HealthObserver, HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backend, LoadBalancer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Answer, Origin};

type Changes = Arc<Mutex<Vec<(String, bool)>>>;

fn recorder() -> (Changes, HealthObserver) {
    let changes: Changes = Arc::default();
    let sink = Arc::clone(&changes);
    let observer: HealthObserver = Arc::new(move |b: &Backend, healthy| {
        sink.lock().push((b.to_string(), healthy));
    });
    (changes, observer)
}

/// The backends `select` hands out over many picks.
fn selected(lb: &LoadBalancer<RoundRobin>) -> Vec<String> {
    let mut seen: Vec<String> = (0..20)
        .filter_map(|_| lb.select(b"", 4))
        .map(|b| b.to_string())
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

#[tokio::test]
async fn tcp_check_takes_a_stopped_origin_out_and_back_in() {
    let mut a = Origin::start(Answer::Http(200, "ok")).await;
    let b = Origin::start(Answer::Http(200, "ok")).await;
    let (changes, observer) = recorder();
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter([a.backend(), b.backend()]).unwrap();
    lb.set_health_check(
        TcpHealthCheck::new()
            .timeout(Duration::from_millis(500))
            .consecutive_failure(2)
            .consecutive_success(2)
            .on_health_change(observer),
    );
    let both = {
        let mut v = vec![a.backend(), b.backend()];
        v.sort();
        v
    };
    lb.backends().run_health_check(true).await;
    assert_eq!(selected(&lb), both);

    a.stop().await;
    // One failure is below the threshold of two: still selected.
    lb.backends().run_health_check(true).await;
    assert_eq!(selected(&lb), both);
    lb.backends().run_health_check(true).await;
    assert_eq!(selected(&lb), [b.backend()]);
    assert_eq!(*changes.lock(), [(a.backend(), false)]);

    a.restart().await;
    lb.backends().run_health_check(false).await;
    assert_eq!(selected(&lb), [b.backend()], "one success is not enough");
    lb.backends().run_health_check(false).await;
    assert_eq!(selected(&lb), both);
    assert_eq!(*changes.lock(), [(a.backend(), false), (a.backend(), true)]);
}

#[tokio::test]
async fn http_check_judges_status_and_body() {
    let ok = Origin::start(Answer::Http(200, "ok")).await;
    let failing = Origin::start(Answer::Http(503, "busy")).await;
    let wrong_body = Origin::start(Answer::Http(200, "degraded")).await;
    let addrs = [ok.backend(), failing.backend(), wrong_body.backend()];

    let mut by_status = LoadBalancer::<RoundRobin>::try_from_iter(&addrs).unwrap();
    by_status.set_health_check(
        HttpHealthCheck::new("origin.test", false)
            .path("/health")
            .unwrap(),
    );
    by_status.backends().run_health_check(true).await;
    let mut expected = vec![ok.backend(), wrong_body.backend()];
    expected.sort();
    assert_eq!(selected(&by_status), expected);

    let mut by_body = LoadBalancer::<RoundRobin>::try_from_iter(&addrs).unwrap();
    by_body.set_health_check(
        HttpHealthCheck::new("origin.test", false).validator(Arc::new(|resp, body| {
            if resp.status().is_success() && body == b"ok" {
                Ok(())
            } else {
                pingora_error::Error::e_explain(pingora_error::ErrorType::new("NotOk"), "not ok")
            }
        })),
    );
    by_body.backends().run_health_check(true).await;
    assert_eq!(selected(&by_body), [ok.backend()]);

    // A 503 is what the check was told to expect: healthy.
    let mut expect_503 = LoadBalancer::<RoundRobin>::try_from_iter([failing.backend()]).unwrap();
    expect_503.set_health_check(HttpHealthCheck::new("origin.test", false).expect_status(503));
    expect_503.backends().run_health_check(true).await;
    assert_eq!(selected(&expect_503), [failing.backend()]);
}

#[tokio::test]
async fn http_check_times_out_on_a_silent_origin() {
    let silent = Origin::start(Answer::Silent).await;
    let (changes, observer) = recorder();
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter([silent.backend()]).unwrap();
    lb.set_health_check(
        HttpHealthCheck::new("origin.test", false)
            .timeout(Duration::from_millis(200))
            .on_health_change(observer),
    );
    let start = Instant::now();
    lb.backends().run_health_check(true).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(lb.select(b"", 4).is_none());
    assert_eq!(*changes.lock(), [(silent.backend(), false)]);
}

#[tokio::test]
async fn checks_run_in_parallel() {
    // Ten silent origins with a 300 ms timeout: one after another would
    // take 3 s; in parallel about 300 ms.
    let mut origins = Vec::new();
    for _ in 0..10 {
        origins.push(Origin::start(Answer::Silent).await);
    }
    let mut lb =
        LoadBalancer::<RoundRobin>::try_from_iter(origins.iter().map(Origin::backend)).unwrap();
    lb.set_health_check(HttpHealthCheck::new("x", false).timeout(Duration::from_millis(300)));
    let start = Instant::now();
    lb.backends().run_health_check(true).await;
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert!(lb.select(b"", 20).is_none());
}

#[tokio::test]
async fn unix_socket_backends_are_checked_too() {
    let dir = std::env::temp_dir().join(format!("lb-uds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("origin.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let addr = format!("unix:{}", path.display());
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter([addr.as_str()]).unwrap();
    lb.set_health_check(TcpHealthCheck::new().timeout(Duration::from_millis(500)));
    lb.backends().run_health_check(true).await;
    assert_eq!(selected(&lb), std::slice::from_ref(&addr));

    drop(listener);
    std::fs::remove_file(&path).unwrap();
    lb.backends().run_health_check(true).await;
    assert!(lb.select(b"", 4).is_none());
    // As a last resort a caller may still take an unhealthy backend.
    let fallback = lb.select_with(b"", 4, |_, _| true).unwrap();
    assert_eq!(fallback.to_string(), addr);
    let _ = std::fs::remove_dir(&dir);
}
