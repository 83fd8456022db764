//! `RedisRateLimiter` against a real `redis-server` started on a free
//! loopback port: two limiters (two processes' worth) share one limit,
//! and a limiter refuses while Redis is gone (fail closed) and recovers
//! when it is back. Prints `SKIPPED: redis-server not installed` and
//! passes when there is no `redis-server`.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use pingora_limits::distributed::{FailurePolicy, RedisLimitConfig, RedisRateLimiter};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on `port`, with no persistence; killed when dropped.
struct RedisServer(Child);

impl RedisServer {
    /// `None` when `redis-server` is not installed.
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut server = match child {
            Ok(child) => Self(child),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("redis-server: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.0.try_wait().unwrap() {
                panic!("redis-server exited with {status}");
            }
            assert!(Instant::now() < deadline, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(limit: u64) -> RedisLimitConfig {
    // A long window: the test never crosses into the next one.
    let mut config = RedisLimitConfig::new(limit, Duration::from_secs(3600));
    config.flush_every = 5;
    config.timeout = Duration::from_millis(500);
    config
}

/// Let the spawned flushes finish.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_limiters_share_one_limit() {
    let port = free_port();
    let Some(_redis) = RedisServer::start(port) else {
        assert!(
            std::env::var_os("PINGORA_REQUIRE_INTEROP").is_none(),
            "PINGORA_REQUIRE_INTEROP is set but redis-server is missing"
        );
        println!("SKIPPED: redis-server not installed");
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let a = RedisRateLimiter::new(&url, config(40)).unwrap();
    let b = RedisRateLimiter::new(&url, config(40)).unwrap();
    let mut admitted = 0;
    for _ in 0..50 {
        for limiter in [&a, &b] {
            if limiter.check("shared").await.allowed() {
                admitted += 1;
            }
        }
        settle_briefly().await;
    }
    println!("admitted {admitted} of 100, limit 40");
    // limit + M * k = 40 + 2 * 5; at least limit - k.
    assert!((35..=50).contains(&admitted), "{admitted}");
    assert_eq!((a.failures(), b.failures()), (0, 0));
    // Once the flushes are in, both see the key as full.
    settle().await;
    let full = a.check("shared").await;
    assert!(!full.allowed(), "{full:?}");
    assert_eq!(full.remaining(), 0);
    assert!(full.count() >= 40, "{full:?}");
    // Another key has its own limit.
    assert!(b.check("other").await.allowed());
}

/// A short pause between rounds, so flushes land as they would between
/// real requests.
async fn settle_briefly() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_while_redis_is_gone_and_recovers() {
    let port = free_port();
    let Some(redis) = RedisServer::start(port) else {
        assert!(
            std::env::var_os("PINGORA_REQUIRE_INTEROP").is_none(),
            "PINGORA_REQUIRE_INTEROP is set but redis-server is missing"
        );
        println!("SKIPPED: redis-server not installed");
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let mut config = config(1000);
    config.flush_every = 1;
    config.flush_interval = Duration::from_millis(20);
    config.timeout = Duration::from_millis(200);
    config.failure_policy = FailurePolicy::Closed;
    let limiter = RedisRateLimiter::new(&url, config).unwrap();
    assert!(limiter.check("k").await.allowed());
    settle().await;
    assert!(!limiter.redis_down());

    drop(redis);
    // The next flush fails: from then on, refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !limiter.redis_down() {
        assert!(Instant::now() < deadline, "never saw redis go");
        limiter.check("k").await;
        settle_briefly().await;
    }
    assert!(limiter.failures() >= 1);
    assert!(!limiter.check("k").await.allowed());

    let _redis = RedisServer::start(port).unwrap();
    // One request per flush interval tries again; it comes back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if limiter.check("k").await.allowed() {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!limiter.redis_down());
}
