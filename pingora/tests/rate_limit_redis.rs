//! Two proxies share one limit through a real Redis: the `rate_limiter`
//! example, twice, with `REDIS` set, in front of a `redis-server` this
//! test starts on a free loopback port.
//!
//! An interop test: it needs `redis-server` installed (`.ci/run` installs
//! it) and prints `SKIPPED: redis-server not installed` without it. Run it
//! with the feature and the example built:
//! `cargo test -p pingora --features redis --example rate_limiter --test rate_limit_redis`.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "examples/support.rs"]
#[allow(dead_code)]
mod support;

use nix::sys::signal::Signal;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

/// The limit both proxies share, per window.
const LIMIT: u64 = 60;
/// The window, in seconds.
const WINDOW_SECS: u64 = 10;
/// `RedisLimitConfig`'s default `flush_every` (`k`).
const FLUSH_EVERY: u64 = 10;
/// The proxies.
const PROXIES: u64 = 2;
/// Requests each proxy gets: together well over the limit.
const PER_PROXY: u64 = 80;

/// A `redis-server` on a free loopback port, with no persistence; killed
/// when dropped.
struct RedisServer {
    child: Child,
    addr: String,
}

impl RedisServer {
    /// `None` when `redis-server` is not installed.
    fn start() -> Option<Self> {
        let addr = free_addr();
        let port = addr.rsplit(':').next().unwrap().to_owned();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("redis-server: {e}"),
        };
        let mut server = Self { child, addr };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(&server.addr).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sleep until the current window (aligned on the Unix epoch, as the
/// limiter's) has at least `room` left.
fn wait_for_room_in_window(room: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let window = Duration::from_secs(WINDOW_SECS);
    let into = Duration::from_nanos((now.as_nanos() % window.as_nanos()) as u64);
    let left = window - into;
    if left < room {
        std::thread::sleep(left + Duration::from_millis(100));
    }
}

#[test]
fn two_proxies_share_one_limit() {
    let Some(redis) = RedisServer::start() else {
        assert!(
            std::env::var_os("PINGORA_REQUIRE_INTEROP").is_none(),
            "PINGORA_REQUIRE_INTEROP is set but redis-server is missing"
        );
        println!("SKIPPED: redis-server not installed");
        return;
    };
    let limit = LIMIT.to_string();
    let window = WINDOW_SECS.to_string();
    let proxies: Vec<(Example, String)> = (0..PROXIES)
        .map(|_| {
            let (listen, origin) = (free_addr(), free_addr());
            let env = [
                ("LISTEN", listen.as_str()),
                ("ORIGIN", origin.as_str()),
                ("REDIS", redis.addr.as_str()),
                ("LIMIT", limit.as_str()),
                ("WINDOW_SECS", window.as_str()),
            ];
            let mut example = Example::start("rate_limiter", &[], &env);
            example.wait_listening(&listen);
            example.wait_listening(&origin);
            (example, listen)
        })
        .collect();

    // The whole burst (well under a second) falls in one window, and the
    // key is new: the sliding estimate is that window's count alone.
    wait_for_room_in_window(Duration::from_secs(6));
    let started = Instant::now();
    let clients: Vec<_> = proxies
        .iter()
        .map(|(_, listen)| {
            let listen = listen.clone();
            std::thread::spawn(move || {
                (0..PER_PROXY)
                    .map(|_| get(&listen, "/", &[("appid", "shared")]).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<Vec<Answer>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let took = started.elapsed();

    let admitted: Vec<u64> = answers
        .iter()
        .map(|a| a.iter().filter(|a| a.status == 200).count() as u64)
        .collect();
    let total: u64 = admitted.iter().sum();
    // The stated tolerance (`RedisRateLimiter`'s docs): at most
    // limit + M * k, plus for each proxy the requests it admits during one
    // Redis round trip (one here, each proxy serving one client at a
    // time); at least limit - k.
    let over = PROXIES * FLUSH_EVERY + PROXIES;
    let under = FLUSH_EVERY;
    println!(
        "redis limit {LIMIT}: admitted {admitted:?} = {total} of {} in {took:?} \
         (allowed {}..={})",
        PROXIES * PER_PROXY,
        LIMIT - under,
        LIMIT + over
    );
    assert!(total <= LIMIT + over, "admitted {admitted:?}");
    assert!(total >= LIMIT - under, "admitted {admitted:?}");
    // Each proxy alone would have admitted LIMIT: the limit is shared.
    assert!(total < PROXIES * LIMIT, "admitted {admitted:?}");
    for answer in answers.iter().flatten() {
        match answer.status {
            200 => assert_eq!(answer.body, "Hello, world!\n"),
            429 => {
                assert_eq!(answer.header("x-ratelimit-limit"), Some(limit.clone()));
                assert_eq!(answer.header("x-ratelimit-remaining").as_deref(), Some("0"));
                let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=WINDOW_SECS).contains(&retry), "{answer:?}");
            }
            _ => panic!("{answer:?}"),
        }
    }
    assert!(took < Duration::from_secs(5), "{took:?}");
    for (mut example, _) in proxies {
        example.stop(Signal::SIGTERM);
    }
}
