use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the test lookups see: how often they ran, how long they take, and
/// whether they fail.
#[derive(Default)]
struct Source {
    calls: AtomicUsize,
    delay: Duration,
    fail: bool,
    ttl: Option<Duration>,
}

struct Load;

impl Lookup<u32, String, Source> for Load {
    async fn lookup(
        key: &u32,
        extra: Option<&Source>,
    ) -> Result<(String, Option<Duration>), LookupError> {
        let src = extra.ok_or("no source")?;
        src.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(src.delay).await;
        if src.fail {
            return Err(format!("source down for {key}").into());
        }
        Ok((format!("value-{key}"), src.ttl))
    }
}

type Cache = RTCache<u32, String, Load, Source>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_callers_one_lookup() {
    let cache = Arc::new(Cache::new(100, None, None));
    let src = Arc::new(Source {
        delay: Duration::from_millis(100),
        ..Source::default()
    });
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (cache, src) = (Arc::clone(&cache), Arc::clone(&src));
            tokio::spawn(async move { cache.get(&7, None, Some(&src)).await })
        })
        .collect();
    let mut statuses = HashMap::new();
    for t in tasks {
        let (value, status) = t.await.unwrap();
        assert_eq!(value.unwrap(), "value-7");
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    assert_eq!(statuses.get(&CacheStatus::Miss), Some(&1));
    assert_eq!(statuses.get(&CacheStatus::LockHit), Some(&99));
    let (value, status) = cache.get(&7, None, Some(&src)).await;
    assert_eq!(
        (value.unwrap().as_str(), status),
        ("value-7", CacheStatus::Hit)
    );
    assert_eq!(src.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_reaches_every_caller_and_is_not_cached() {
    let cache = Arc::new(Cache::new(100, None, None));
    let src = Arc::new(Source {
        delay: Duration::from_millis(100),
        fail: true,
        ..Source::default()
    });
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (cache, src) = (Arc::clone(&cache), Arc::clone(&src));
            tokio::spawn(async move { cache.get(&3, None, Some(&src)).await })
        })
        .collect();
    for t in tasks {
        let (value, _) = t.await.unwrap();
        let err = value.unwrap_err();
        assert_eq!(*err.etype(), LOOKUP_ERROR);
        assert_eq!(err.root_cause().to_string(), "source down for 3");
    }
    assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    // Nothing cached: the next call looks up again.
    let (value, status) = cache.get(&3, None, Some(&src)).await;
    assert!(value.is_err());
    assert_eq!(status, CacheStatus::Miss);
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn ttl_from_the_lookup_expires() {
    let cache = Cache::new(100, None, None);
    let src = Source {
        ttl: Some(Duration::from_secs(10)),
        ..Source::default()
    };
    assert_eq!(cache.get(&1, None, Some(&src)).await.1, CacheStatus::Miss);
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(cache.get(&1, None, Some(&src)).await.1, CacheStatus::Hit);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (value, status) = cache.get(&1, None, Some(&src)).await;
    assert_eq!(
        (value.unwrap().as_str(), status),
        ("value-1", CacheStatus::Expired)
    );
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    assert_eq!(cache.cache().get(&1).1, CacheStatus::Hit);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_its_lock_timeout_looks_up_itself() {
    let cache = Arc::new(Cache::new(100, None, Some(Duration::from_secs(1))));
    let src = Arc::new(Source {
        delay: Duration::from_secs(5),
        ..Source::default()
    });
    let leader = {
        let (cache, src) = (Arc::clone(&cache), Arc::clone(&src));
        tokio::spawn(async move { cache.get(&9, None, Some(&src)).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    // This one overrides the timeout: it waits for the leader.
    let patient = {
        let (cache, src) = (Arc::clone(&cache), Arc::clone(&src));
        tokio::spawn(async move {
            cache
                .get(&9, Some(Duration::from_secs(60)), Some(&src))
                .await
        })
    };
    let (value, status) = cache.get(&9, None, Some(&src)).await;
    assert_eq!(
        (value.unwrap().as_str(), status),
        ("value-9", CacheStatus::Miss)
    );
    // 1 s waiting, then its own 5 s lookup.
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    assert_eq!(leader.await.unwrap().1, CacheStatus::Miss);
    assert_eq!(patient.await.unwrap().1, CacheStatus::LockHit);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_lookup_hands_over_to_a_waiter() {
    let cache = Arc::new(Cache::new(100, None, None));
    let src = Arc::new(Source {
        delay: Duration::from_secs(5),
        ..Source::default()
    });
    let leader = {
        let (cache, src) = (Arc::clone(&cache), Arc::clone(&src));
        tokio::spawn(async move { cache.get(&4, None, Some(&src)).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiter = {
        let (cache, src) = (Arc::clone(&cache), Arc::clone(&src));
        tokio::spawn(async move { cache.get(&4, None, Some(&src)).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    leader.abort();
    let (value, status) = waiter.await.unwrap();
    assert_eq!(
        (value.unwrap().as_str(), status),
        ("value-4", CacheStatus::Miss)
    );
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_lookup_older_than_lock_age_no_longer_holds_callers() {
    let cache = Arc::new(Cache::new(100, Some(Duration::from_secs(2)), None));
    let src = Arc::new(Source {
        delay: Duration::from_secs(5),
        ..Source::default()
    });
    let first = {
        let (cache, src) = (Arc::clone(&cache), Arc::clone(&src));
        tokio::spawn(async move { cache.get(&5, None, Some(&src)).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = Instant::now();
    let (value, status) = cache.get(&5, None, Some(&src)).await;
    assert_eq!(
        (value.unwrap().as_str(), status),
        ("value-5", CacheStatus::Miss)
    );
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(first.await.unwrap().1, CacheStatus::Miss);
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn stale_is_served_while_one_caller_refreshes() {
    let cache = Arc::new(Cache::new(100, None, None));
    let src = Arc::new(Source {
        delay: Duration::from_secs(1),
        ttl: Some(Duration::from_secs(10)),
        ..Source::default()
    });
    cache.get(&2, None, Some(&src)).await.0.unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let refresher = {
        let (cache, src) = (Arc::clone(&cache), Arc::clone(&src));
        tokio::spawn(async move { cache.get_stale(&2, None, None, Some(&src)).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    let (value, status) = cache.get_stale(&2, None, None, Some(&src)).await;
    assert_eq!(start.elapsed(), Duration::ZERO, "served without waiting");
    assert_eq!(value.unwrap(), "value-2");
    assert!(matches!(status, CacheStatus::Stale(_)), "{status:?}");
    assert_eq!(refresher.await.unwrap().1, CacheStatus::Expired);
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    assert_eq!(cache.get(&2, None, Some(&src)).await.1, CacheStatus::Hit);
    // Past stale_ttl it is a plain get.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let short = Some(Duration::from_secs(1));
    let (_, status) = cache.get_stale(&2, None, short, Some(&src)).await;
    assert_eq!(status, CacheStatus::Expired);
    assert_eq!(src.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_serves_stale() {
    let cache = Cache::new(100, None, None);
    let ok = Source {
        ttl: Some(Duration::from_secs(1)),
        ..Source::default()
    };
    cache.get(&6, None, Some(&ok)).await.0.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let down = Source {
        fail: true,
        ..Source::default()
    };
    let (value, status) = cache.get_stale(&6, None, None, Some(&down)).await;
    assert_eq!(value.unwrap(), "value-6");
    assert_eq!(status, CacheStatus::Stale(Duration::from_secs(1)));
    assert_eq!(down.calls.load(Ordering::SeqCst), 1);
    // Nothing stale to serve: the error comes through.
    assert!(
        cache
            .get_stale(&7, None, None, Some(&down))
            .await
            .0
            .is_err()
    );
}
