//! A rate-limiting proxy: each client gets `LIMIT` requests per window
//! (default 5 per second); beyond that the proxy answers 429 itself, with
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `Retry-After`.
//! Admitted responses carry the first two as well.
//!
//! ```text
//! cargo run --example rate_limiter
//! for i in 1 2 3 4 5 6 7; do curl -si 127.0.0.1:6188/ | head -1; done   # 5 x 200, then 429
//! curl -si -H 'appid: 42' 127.0.0.1:6188/ | head -1                     # 200: its own limit
//! ```
//!
//! A client is its `appid` header when it sends one, else its IP address.
//! Counting is local by default, with `pingora::limits::rate::Rate`: one
//! process, one limit. With `REDIS=host:port` (and the `redis` feature:
//! `cargo run --example rate_limiter --features redis`) the counts go
//! through `pingora::limits::distributed::RedisRateLimiter`, so every proxy
//! pointed at that Redis shares one limit. Redis down: the proxy keeps
//! limiting on its own counts (`FailurePolicy::Open`); `FAIL=closed`
//! refuses everything instead.
//!
//! The origin (127.0.0.1:6191, a service of the same server) answers
//! "hello". `LISTEN=addr` and `ORIGIN=addr` move the proxy and the origin,
//! `LIMIT=n` and `WINDOW_SECS=s` set the limit. The tests
//! (`pingora/tests/examples.rs`, `pingora/tests/rate_limit_redis.rs`) run
//! it that way, on free ports.
//! Features: `proxy`, `limits` (both on by default); `redis` for Redis.

use pingora::core::apps::http_app::{HelloApp, HttpServer};
use pingora::core::header::ResponseHeader;
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::limits::rate::Rate;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Where the demo origin listens (`ORIGIN` moves it).
static ORIGIN: LazyLock<String> = LazyLock::new(|| env_or("ORIGIN", "127.0.0.1:6191"));
/// Where the proxy listens (`LISTEN` moves it).
static LISTEN: LazyLock<String> = LazyLock::new(|| env_or("LISTEN", "127.0.0.1:6188"));

/// What the limiter said about one request.
struct Verdict {
    allowed: bool,
    limit: u64,
    remaining: u64,
    retry_after: Duration,
}

/// Where the counts live.
enum Counts {
    /// In this process.
    Local(Rate),
    /// In Redis, shared by every proxy that uses it.
    #[cfg(feature = "redis")]
    Redis(pingora::limits::distributed::RedisRateLimiter),
}

struct RateLimiter {
    origin: std::net::SocketAddr,
    limit: u64,
    counts: Counts,
}

impl RateLimiter {
    async fn check(&self, client: &str) -> Verdict {
        match &self.counts {
            Counts::Local(rate) => {
                // Count first, then look: two requests at once cannot both
                // take the last place. A refused request is taken back, so
                // a client that keeps trying is not locked out for good.
                rate.observe(client, 1);
                let count = rate.estimate(client).ceil() as u64;
                let allowed = count <= self.limit;
                if !allowed {
                    rate.observe(client, -1);
                }
                Verdict {
                    allowed,
                    limit: self.limit,
                    remaining: self.limit.saturating_sub(count),
                    retry_after: rate.time_left(),
                }
            }
            #[cfg(feature = "redis")]
            Counts::Redis(limiter) => {
                let decision = limiter.check(client).await;
                Verdict {
                    allowed: decision.allowed(),
                    limit: decision.limit(),
                    remaining: decision.remaining(),
                    retry_after: decision.retry_after(),
                }
            }
        }
    }
}

/// The client of a request: its `appid` header, else its IP address.
fn client_key(session: &Session) -> String {
    match session.get_header("appid").and_then(|v| v.to_str().ok()) {
        Some(appid) => format!("appid:{appid}"),
        None => match session.client_addr().and_then(|a| a.as_inet()) {
            Some(addr) => format!("ip:{}", addr.ip()),
            // A Unix socket client: all of them share one limit.
            None => "unix".to_owned(),
        },
    }
}

impl ProxyHttp for RateLimiter {
    /// The limit and what is left of it, for the response headers.
    type CTX = Option<(u64, u64)>;
    fn new_ctx(&self) -> Self::CTX {
        None
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let verdict = self.check(&client_key(session)).await;
        if verdict.allowed {
            *ctx = Some((verdict.limit, verdict.remaining));
            return Ok(false);
        }
        // RFC 6585 §4: 429, with a Retry-After in whole seconds.
        let retry = verdict.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let body = "too many requests\n";
        let mut resp = ResponseHeader::build(429, Some(5))?;
        resp.insert_header("X-RateLimit-Limit", verdict.limit.to_string())?;
        resp.insert_header("X-RateLimit-Remaining", "0")?;
        resp.insert_header("Retry-After", retry.to_string())?;
        resp.insert_header("Content-Length", body.len().to_string())?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body.into()), true).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some((limit, remaining)) = *ctx {
            resp.insert_header("X-RateLimit-Limit", limit.to_string())?;
            resp.insert_header("X-RateLimit-Remaining", remaining.to_string())?;
        }
        Ok(())
    }
}

/// `var` from the environment, else `default`: the tests run every example
/// on free ports by setting these.
fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// `var` parsed, else `default`; exits on a value that does not parse.
fn env_num(var: &str, default: u64) -> u64 {
    let value = env_or(var, &default.to_string());
    value.parse().unwrap_or_else(|e| {
        eprintln!("{var}={value}: {e}");
        std::process::exit(1)
    })
}

/// The counts: in Redis when `REDIS` is set, else here.
fn counts(limit: u64, window: Duration) -> Counts {
    let Ok(redis) = std::env::var("REDIS") else {
        return Counts::Local(Rate::new(window));
    };
    #[cfg(feature = "redis")]
    {
        use pingora::limits::distributed::{FailurePolicy, RedisLimitConfig, RedisRateLimiter};
        let mut config = RedisLimitConfig::new(limit, window);
        if env_or("FAIL", "open") == "closed" {
            config.failure_policy = FailurePolicy::Closed;
        }
        let limiter =
            RedisRateLimiter::new(&format!("redis://{redis}/"), config).unwrap_or_else(|e| {
                eprintln!("REDIS={redis}: {e}");
                std::process::exit(1)
            });
        log::info!("counting in redis at {redis}");
        Counts::Redis(limiter)
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = limit;
        eprintln!("REDIS={redis}: build with `--features redis` to count in Redis");
        std::process::exit(1)
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::new(Some(Opt::parse_args())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    server.bootstrap();

    let origin_addr = ORIGIN.parse().unwrap_or_else(|e| {
        eprintln!("ORIGIN {}: {e}", *ORIGIN);
        std::process::exit(1)
    });
    let mut origin = ListeningService::new("origin", Arc::new(HttpServer::new(HelloApp)));
    origin.add_tcp(&ORIGIN);
    let origin = server.add_service(origin);

    let limit = env_num("LIMIT", 5);
    let window = Duration::from_secs(env_num("WINDOW_SECS", 1).max(1));
    let limiter = RateLimiter {
        origin: origin_addr,
        limit,
        counts: counts(limit, window),
    };
    let mut proxy = http_proxy_service(&server.configuration, limiter);
    proxy.add_tcp(&LISTEN);
    let proxy = server.add_service(proxy);
    server
        .add_dependency(&proxy, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
