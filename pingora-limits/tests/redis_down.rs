//! The Redis limiter with no Redis: the failure policy decides, and every
//! failed call is counted. Needs no redis-server (it points at a port
//! nothing listens on).

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use pingora_limits::distributed::{FailurePolicy, RedisLimitConfig, RedisRateLimiter};
use std::time::Duration;

/// A loopback port nothing listens on.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("redis://127.0.0.1:{port}/")
}

fn config(policy: FailurePolicy) -> RedisLimitConfig {
    let mut config = RedisLimitConfig::new(5, Duration::from_secs(60));
    config.flush_every = 1;
    config.flush_interval = Duration::from_millis(10);
    config.timeout = Duration::from_millis(200);
    config.failure_policy = policy;
    config
}

/// Wait (bounded) until the limiter has seen Redis fail.
async fn wait_down(limiter: &RedisRateLimiter) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !limiter.redis_down() {
        assert!(tokio::time::Instant::now() < deadline, "never marked down");
        limiter.check("probe").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn fail_open_keeps_limiting_on_local_counts() {
    let limiter = RedisRateLimiter::new(&dead_url(), config(FailurePolicy::Open)).unwrap();
    wait_down(&limiter).await;
    let admitted = {
        let mut admitted = 0;
        for _ in 0..8 {
            if limiter.check("client").await.allowed() {
                admitted += 1;
            }
        }
        admitted
    };
    // Open: this process's own limit still holds.
    assert_eq!(admitted, 5);
    assert!(limiter.failures() >= 1);
    assert_eq!(
        limiter.failures(),
        limiter
            .failure_counter()
            .load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[tokio::test]
async fn fail_closed_refuses_and_counts_failures() {
    let limiter = RedisRateLimiter::new(&dead_url(), config(FailurePolicy::Closed)).unwrap();
    wait_down(&limiter).await;
    let before = limiter.failures();
    for _ in 0..5 {
        let decision = limiter.check("client").await;
        assert!(!decision.allowed(), "{decision:?}");
        assert!(decision.retry_after() > Duration::ZERO);
        assert_eq!(decision.limit(), 5);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // One retry per flush interval, each a failure.
    assert!(limiter.failures() > before, "{}", limiter.failures());
}

#[test]
fn a_bad_url_is_an_error() {
    assert!(
        RedisRateLimiter::new(
            "not a url",
            RedisLimitConfig::new(1, Duration::from_secs(1))
        )
        .is_err()
    );
}
