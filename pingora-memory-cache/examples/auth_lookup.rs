//! Caching an authorization lookup with `RTCache`.
//!
//! 500 requests arrive at once carrying one of five API tokens. Each miss
//! would ask a (simulated, 50 ms) auth service; the cache makes one call
//! per token, the other requests wait for it, and an unknown token's
//! failure reaches every request that carried it without being cached.
//!
//! ```text
//! cargo run -p pingora-memory-cache --example auth_lookup
//! ```

use pingora_memory_cache::{CacheStatus, Lookup, LookupError, RTCache};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the auth service says about a token.
#[derive(Debug)]
struct Grant {
    user: String,
    scopes: Vec<&'static str>,
}

/// A stand-in for a remote auth service, counting its calls.
#[derive(Default)]
struct AuthService {
    calls: AtomicUsize,
}

impl AuthService {
    async fn check(&self, token: &str) -> Result<Grant, String> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        match token.strip_prefix("tok-") {
            Some(user) if user != "revoked" => Ok(Grant {
                user: user.to_string(),
                scopes: vec!["read"],
            }),
            _ => Err(format!("token {token:?} is not valid")),
        }
    }
}

/// The cache's loader: ask the service passed as `extra`, keep a grant
/// for 30 s.
struct AuthLookup;

impl Lookup<String, Arc<Grant>, AuthService> for AuthLookup {
    async fn lookup(
        token: &String,
        service: Option<&AuthService>,
    ) -> Result<(Arc<Grant>, Option<Duration>), LookupError> {
        let service = service.ok_or("no auth service given")?;
        let grant = service.check(token).await?;
        Ok((Arc::new(grant), Some(Duration::from_secs(30))))
    }
}

type AuthCache = RTCache<String, Arc<Grant>, AuthLookup, AuthService>;

#[tokio::main]
async fn main() {
    // Room for 10 000 tokens; a request waits at most 2 s for another
    // request's lookup before asking the service itself.
    let cache = Arc::new(AuthCache::new(10_000, None, Some(Duration::from_secs(2))));
    let service = Arc::new(AuthService::default());
    let tokens = [
        "tok-alice",
        "tok-bob",
        "tok-carol",
        "tok-dave",
        "tok-revoked",
    ];

    let start = Instant::now();
    let requests: Vec<_> = (0..500)
        .map(|i| {
            let (cache, service) = (Arc::clone(&cache), Arc::clone(&service));
            let token = tokens[i % tokens.len()].to_string();
            tokio::spawn(async move {
                let (grant, status) = cache.get(&token, None, Some(&service)).await;
                (grant.map(|g| g.user.clone()), status)
            })
        })
        .collect();

    let mut statuses = BTreeMap::new();
    let (mut allowed, mut denied) = (0, 0);
    for r in requests {
        let (user, status) = r.await.expect("request task");
        *statuses.entry(status.as_str()).or_insert(0) += 1;
        match user {
            Ok(_) => allowed += 1,
            Err(_) => denied += 1,
        }
    }
    println!(
        "500 requests in {:?}: {allowed} allowed, {denied} denied",
        start.elapsed()
    );
    println!(
        "auth service calls: {}",
        service.calls.load(Ordering::Relaxed)
    );
    println!("statuses: {statuses:?}");

    // Later requests hit the cache; the revoked token is asked again,
    // since failures are not cached.
    let (grant, status) = cache
        .get(&"tok-alice".to_string(), None, Some(&service))
        .await;
    let grant = grant.expect("alice is cached");
    assert_eq!(status, CacheStatus::Hit);
    println!(
        "then tok-alice: {} {:?}, {}",
        grant.user,
        grant.scopes,
        status.as_str()
    );
    let (_, status) = cache
        .get(&"tok-revoked".to_string(), None, Some(&service))
        .await;
    println!(
        "then tok-revoked: {}, auth service calls now {}",
        status.as_str(),
        service.calls.load(Ordering::Relaxed)
    );
}
