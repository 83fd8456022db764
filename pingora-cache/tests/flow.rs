//! The calls a proxy makes, in order, against the real MemCache and
//! CacheLock, with a fake origin: miss and fill under the lock, waiters
//! served from the fill, a hit with Age and a 304 to a conditional client,
//! a range, revalidation with a 304 that refreshes the metadata, Vary
//! variants, stale-if-error, and purge.

// Test helpers may unwrap: a panic is a test failure with its location.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use pingora_cache::conditional::{add_validators, not_modified, revalidated_meta, to_304};
use pingora_cache::hit::{BodyPlan, plan_hit};
use pingora_cache::storage::lookup_variant;
use pingora_cache::variance::variance_for;
use pingora_cache::{
    CacheControl, CacheKey, CacheLock, CacheMeta, CacheMetaDefaults, Freshness, HitHandler,
    LockStatus, Locked, MemCache, RespCacheable, ResponseTimes, Storage, resp_cacheable,
};
use pingora_core::header::{RequestHeader, ResponseHeader};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
}

fn get(path: &str, fields: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    r.insert_header("Host", "origin.test").unwrap();
    for (n, v) in fields {
        r.append_header(n, *v).unwrap();
    }
    r
}

fn origin_response(fields: &[(&str, &str)]) -> ResponseHeader {
    let mut r = ResponseHeader::build(200, None).unwrap();
    for (n, v) in fields {
        r.append_header(n, *v).unwrap();
    }
    r
}

async fn body(hit: &mut HitHandler) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await.unwrap() {
        out.extend_from_slice(&b);
    }
    out
}

/// The miss path: decide cacheability, pick the variant, write the body.
async fn fill(
    cache: &MemCache,
    key: &mut CacheKey,
    req: &RequestHeader,
    resp: ResponseHeader,
    data: &'static [u8],
    now: SystemTime,
) -> Option<CacheMeta> {
    let cc = CacheControl::from_resp_headers(&resp);
    let defaults = CacheMetaDefaults::default();
    let auth = req.has_header("authorization");
    let RespCacheable::Cacheable(meta) =
        resp_cacheable(cc.as_ref(), resp, auth, &defaults, ResponseTimes::at(now))
    else {
        return None;
    };
    match variance_for(meta.response_header(), req) {
        Some(v) => key.set_variance_key(v),
        None => key.remove_variance_key(),
    }
    let mut miss = cache.get_miss_handler(key, &meta).await.unwrap();
    miss.write_body(Bytes::from_static(data)).await.unwrap();
    miss.finish().await.unwrap();
    Some(meta)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_misses_one_origin_request() {
    let cache = MemCache::new(1 << 20);
    let lock = Arc::new(CacheLock::new(Duration::from_secs(10)));
    let origin_hits = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (cache, lock, origin_hits) =
                (cache.clone(), Arc::clone(&lock), Arc::clone(&origin_hits));
            tokio::spawn(async move {
                let req = get("/hot", &[]);
                let mut key = CacheKey::default(&req);
                loop {
                    if let Some((_, mut hit)) =
                        lookup_variant(&cache, &mut key, &req).await.unwrap()
                    {
                        return body(&mut hit).await;
                    }
                    match lock.lock(&key) {
                        Locked::Write(permit) => {
                            // A writer that finished between our lookup and
                            // our lock left the entry: look once more.
                            let again = lookup_variant(&cache, &mut key, &req).await.unwrap();
                            if let Some((_, mut hit)) = again {
                                permit.release(LockStatus::Done);
                                return body(&mut hit).await;
                            }
                            origin_hits.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let resp = origin_response(&[("Cache-Control", "max-age=60")]);
                            fill(&cache, &mut key, &req, resp, b"hot body", SystemTime::now())
                                .await;
                            permit.release(LockStatus::Done);
                        }
                        Locked::Read(wait) => {
                            assert_eq!(wait.wait().await, LockStatus::Done);
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let got = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"hot body");
    }
    assert_eq!(origin_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn hit_conditional_range_revalidate_purge() {
    let cache = MemCache::new(1 << 20);
    let defaults = CacheMetaDefaults::default();
    let req = get("/doc", &[]);
    let mut key = CacheKey::default(&req);
    assert!(
        lookup_variant(&cache, &mut key, &req)
            .await
            .unwrap()
            .is_none()
    );
    let resp = origin_response(&[
        ("Cache-Control", "max-age=10, stale-if-error=100"),
        ("ETag", "\"v1\""),
        ("Content-Length", "10"),
    ]);
    fill(&cache, &mut key, &req, resp, b"0123456789", at(0))
        .await
        .unwrap();

    // A fresh hit, served with Age.
    let (meta, mut hit) = lookup_variant(&cache, &mut key, &req)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.freshness(at(4)), Freshness::Fresh);
    assert_eq!(
        meta.header_for_hit(at(4))
            .unwrap()
            .get_header("age")
            .unwrap(),
        "4"
    );
    assert_eq!(body(&mut hit).await, b"0123456789");

    // A conditional client gets a 304 from cache.
    let cond = get("/doc", &[("If-None-Match", "\"v1\"")]);
    assert!(not_modified(&cond, meta.response_header()));
    assert_eq!(
        to_304(meta.response_header()).unwrap().status().as_u16(),
        304
    );

    // A range is served by seeking the stored body (plan_hit decides).
    let ranged = get("/doc", &[("Range", "bytes=-3")]);
    let (meta, mut hit) = lookup_variant(&cache, &mut key, &ranged)
        .await
        .unwrap()
        .unwrap();
    let plan = plan_hit(&ranged, &meta, at(4), hit.body_len()).unwrap();
    let BodyPlan::Range(r) = plan.body else {
        panic!("single range");
    };
    hit.seek(r.start, Some(r.end)).unwrap();
    assert_eq!(body(&mut hit).await, b"789");
    assert_eq!(
        plan.header.get_header("content-range").unwrap(),
        "bytes 7-9/10"
    );

    // Multiple ranges: multipart framing around seeks.
    let ranged = get("/doc", &[("Range", "bytes=0-1,8-")]);
    let plan = plan_hit(&ranged, &meta, at(4), Some(10)).unwrap();
    let BodyPlan::Multi(parts) = plan.body else {
        panic!("multipart");
    };
    let mut sent = Vec::new();
    for r in parts.ranges() {
        sent.extend(parts.part_header(r));
        let (_, mut hit) = cache.lookup(&key).await.unwrap().unwrap();
        hit.seek(r.start, Some(r.end)).unwrap();
        sent.extend(body(&mut hit).await);
    }
    sent.extend(parts.trailer());
    let length = plan.header.get_header("content-length").unwrap();
    assert_eq!(length.to_str().unwrap(), sent.len().to_string());

    // Stale at 20: revalidate with the stored ETag; the 304 refreshes it.
    assert_eq!(meta.freshness(at(20)), Freshness::Stale);
    let mut upstream = req.clone();
    assert!(add_validators(&mut upstream, meta.response_header()).unwrap());
    assert_eq!(upstream.get_header("if-none-match").unwrap(), "\"v1\"");
    let mut resp_304 = ResponseHeader::build(304, None).unwrap();
    resp_304.insert_header("ETag", "\"v1\"").unwrap();
    // The 304's Cache-Control replaces the stored one (RFC 9111 §3.2), so
    // it restates the stale-if-error window.
    resp_304
        .insert_header("Cache-Control", "max-age=30, stale-if-error=100")
        .unwrap();
    let refreshed = revalidated_meta(
        &meta,
        &resp_304,
        false,
        &defaults,
        ResponseTimes::at(at(20)),
    )
    .unwrap()
    .unwrap();
    let RespCacheable::Cacheable(new_meta) = refreshed else {
        panic!("still cacheable");
    };
    assert!(cache.update_meta(&key, &new_meta).await.unwrap());
    let (meta, mut hit) = lookup_variant(&cache, &mut key, &req)
        .await
        .unwrap()
        .unwrap();
    assert!(meta.is_fresh(at(49)));
    assert_eq!(body(&mut hit).await, b"0123456789");

    // Origin down at 60: stale-if-error allows serving it.
    assert!(!meta.is_fresh(at(60)));
    assert!(meta.can_serve_stale_if_error(at(60)));

    // Purge removes it.
    assert!(cache.purge(&key).await.unwrap());
    assert!(
        lookup_variant(&cache, &mut key, &req)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn vary_variants_and_uncacheable() {
    let cache = MemCache::new(1 << 20);
    for lang in ["en", "fr"] {
        let req = get("/v", &[("Accept-Language", lang)]);
        let mut key = CacheKey::default(&req);
        assert!(
            lookup_variant(&cache, &mut key, &req)
                .await
                .unwrap()
                .is_none()
        );
        let resp = origin_response(&[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")]);
        let data: &'static [u8] = if lang == "en" { b"hello" } else { b"bonjour" };
        fill(&cache, &mut key, &req, resp, data, SystemTime::now())
            .await
            .unwrap();
    }
    for (lang, want) in [("EN", &b"hello"[..]), ("fr", b"bonjour")] {
        let req = get("/v", &[("Accept-Language", lang)]);
        let mut key = CacheKey::default(&req);
        let (_, mut hit) = lookup_variant(&cache, &mut key, &req)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body(&mut hit).await, want);
    }
    let de = get("/v", &[("Accept-Language", "de")]);
    assert!(
        lookup_variant(&cache, &mut CacheKey::default(&de), &de)
            .await
            .unwrap()
            .is_none()
    );

    // Never stored: Set-Cookie, Authorization without permission, Vary: *.
    for (fields, auth) in [
        (
            &[("Cache-Control", "max-age=60"), ("Set-Cookie", "s=1")][..],
            false,
        ),
        (&[("Cache-Control", "max-age=60")][..], true),
        (&[("Cache-Control", "max-age=60"), ("Vary", "*")][..], false),
    ] {
        let mut req = get("/private", &[]);
        if auth {
            req.insert_header("Authorization", "Bearer x").unwrap();
        }
        let mut key = CacheKey::default(&req);
        let stored = fill(
            &cache,
            &mut key,
            &req,
            origin_response(fields),
            b"secret",
            SystemTime::now(),
        )
        .await;
        assert!(stored.is_none(), "{fields:?}");
        assert!(cache.lookup(&key).await.unwrap().is_none());
    }
}
