use super::*;
use proptest::prelude::*;
use std::time::UNIX_EPOCH;

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

const NOW: u64 = 1_700_000_000;

fn verdict(
    status: u16,
    fields: &[(&str, &str)],
    auth: bool,
    d: &CacheMetaDefaults,
) -> RespCacheable {
    let mut r = ResponseHeader::build(status, None).unwrap();
    for (n, v) in fields {
        r.append_header(n, *v).unwrap();
    }
    let cc = CacheControl::from_resp_headers(&r);
    resp_cacheable(cc.as_ref(), r, auth, d, ResponseTimes::at(at(NOW)))
}

fn reason(v: &RespCacheable) -> Option<NoCacheReason> {
    match v {
        RespCacheable::Cacheable(_) => None,
        RespCacheable::Uncacheable(r) => Some(*r),
    }
}

fn meta(v: RespCacheable) -> CacheMeta {
    match v {
        RespCacheable::Cacheable(m) => m,
        RespCacheable::Uncacheable(r) => panic!("uncacheable: {r:?}"),
    }
}

type Row<'a> = (u16, &'a [(&'a str, &'a str)], bool, Option<NoCacheReason>);

#[test]
fn table() {
    use NoCacheReason as R;
    let d = CacheMetaDefaults::default();
    let rows: &[Row<'_>] = &[
        (200, &[("Cache-Control", "max-age=60")], false, None),
        (200, &[], false, Some(R::OriginNotCache)),
        (
            200,
            &[("Cache-Control", "no-store, max-age=60")],
            false,
            Some(R::NoStore),
        ),
        (
            200,
            &[("Cache-Control", "private, max-age=60")],
            false,
            Some(R::Private),
        ),
        (
            200,
            &[("Cache-Control", "max-age=60"), ("Vary", "Accept, *")],
            false,
            Some(R::VaryStar),
        ),
        // §3.5: Authorization needs public, s-maxage or must-revalidate.
        (
            200,
            &[("Cache-Control", "max-age=60")],
            true,
            Some(R::Authorization),
        ),
        (200, &[], true, Some(R::Authorization)),
        (200, &[("Cache-Control", "public, max-age=60")], true, None),
        (200, &[("Cache-Control", "s-maxage=60")], true, None),
        (
            200,
            &[("Cache-Control", "must-revalidate, max-age=60")],
            true,
            None,
        ),
        (
            200,
            &[("Cache-Control", "max-age=60"), ("Set-Cookie", "a=b")],
            false,
            Some(R::SetCookie),
        ),
        (
            200,
            &[
                ("Cache-Control", "max-age=60, private=set-cookie"),
                ("Set-Cookie", "a=b"),
            ],
            false,
            None,
        ),
        (
            206,
            &[("Cache-Control", "max-age=60")],
            false,
            Some(R::StatusNotCacheable),
        ),
        (
            304,
            &[("Cache-Control", "max-age=60")],
            false,
            Some(R::StatusNotCacheable),
        ),
        (101, &[], false, Some(R::StatusNotCacheable)),
        // Explicit freshness makes any final status storable.
        (302, &[("Cache-Control", "max-age=60")], false, None),
        (
            500,
            &[("Expires", "Thu, 01 Jan 2099 00:00:00 GMT")],
            false,
            None,
        ),
        // Stale on arrival with no validator: pointless to store.
        (
            200,
            &[("Cache-Control", "max-age=0")],
            false,
            Some(R::OriginNotCache),
        ),
        (
            200,
            &[("Cache-Control", "max-age=0"), ("ETag", "\"a\"")],
            false,
            None,
        ),
        (
            200,
            &[("Cache-Control", "no-cache"), ("ETag", "\"a\"")],
            false,
            None,
        ),
        (200, &[("Expires", "0")], false, Some(R::OriginNotCache)),
    ];
    for (i, (status, fields, auth, want)) in rows.iter().enumerate() {
        let v = verdict(*status, fields, *auth, &d);
        assert_eq!(reason(&v), *want, "row {i}: {status} {fields:?}");
    }
}

#[test]
fn set_cookie_allowed_by_caller() {
    let d = CacheMetaDefaults::default().allow_set_cookie(true);
    let m = meta(verdict(
        200,
        &[("Cache-Control", "max-age=5"), ("Set-Cookie", "a=b")],
        false,
        &d,
    ));
    assert!(m.response_header().has_header("set-cookie"));
}

#[test]
fn private_fields_are_not_stored() {
    let d = CacheMetaDefaults::default();
    let fields = [
        (
            "Cache-Control",
            "max-age=5, private=\"X-User\", no-cache=\"set-cookie\"",
        ),
        ("Set-Cookie", "s=1"),
        ("X-User", "alice"),
        ("Connection", "close, X-Hop"),
        ("X-Hop", "1"),
        ("Content-Type", "text/plain"),
    ];
    let m = meta(verdict(200, &fields, false, &d));
    let h = m.response_header();
    assert!(!h.has_header("x-user") && !h.has_header("set-cookie"));
    assert!(!h.has_header("connection") && !h.has_header("x-hop"));
    assert!(h.has_header("content-type"));
}

#[test]
fn no_cache_is_stored_stale_and_never_served_stale() {
    let d = CacheMetaDefaults::new(|_| Some(100), 60, 60);
    let m = meta(verdict(
        200,
        &[
            ("Cache-Control", "no-cache, max-age=100"),
            ("ETag", "\"x\""),
        ],
        false,
        &d,
    ));
    assert!(!m.is_fresh(at(NOW)));
    assert!(m.must_revalidate());
    assert!(!m.can_serve_stale_if_error(at(NOW)));
}

#[test]
fn stale_windows_from_response_or_defaults() {
    let d = CacheMetaDefaults::new(|_| None, 7, 9);
    let m = meta(verdict(
        200,
        &[("Cache-Control", "max-age=10, stale-while-revalidate=30")],
        false,
        &d,
    ));
    assert_eq!(
        (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        (30, 9)
    );
    assert!(m.can_serve_stale_while_revalidate(at(NOW + 39)));
    assert!(!m.can_serve_stale_while_revalidate(at(NOW + 40)));
    let m = meta(verdict(
        200,
        &[(
            "Cache-Control",
            "max-age=10, must-revalidate, stale-if-error=60",
        )],
        false,
        &d,
    ));
    assert_eq!(
        (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        (0, 0)
    );
    let m = meta(verdict(
        200,
        &[("Cache-Control", "max-age=10, proxy-revalidate")],
        false,
        &d,
    ));
    assert!(m.must_revalidate());
    // s-maxage: only the windows the response grants.
    let m = meta(verdict(200, &[("Cache-Control", "s-maxage=10")], false, &d));
    assert_eq!(
        (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        (0, 0)
    );
    let m = meta(verdict(
        200,
        &[("Cache-Control", "s-maxage=10, stale-if-error=5")],
        false,
        &d,
    ));
    assert_eq!(
        (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        (0, 5)
    );
}

#[test]
fn defaults_and_heuristics() {
    let d = CacheMetaDefaults::new(|s| (s == StatusCode::OK).then_some(30), 0, 0);
    assert_eq!(meta(verdict(200, &[], false, &d)).fresh_sec(), 30);
    assert!(!verdict(404, &[], false, &d).is_cacheable());
    let lm = httpdate::fmt_http_date(at(NOW - 1000));
    let d =
        CacheMetaDefaults::default().with_heuristic(Heuristic::new(10, Duration::from_secs(3600)));
    assert_eq!(
        meta(verdict(200, &[("Last-Modified", &lm)], false, &d)).fresh_sec(),
        100
    );
    // Heuristics off by default.
    let d0 = CacheMetaDefaults::default();
    assert!(!verdict(200, &[("Last-Modified", &lm)], false, &d0).is_cacheable());
    // 302 is not heuristically cacheable.
    assert!(!verdict(302, &[("Last-Modified", &lm)], false, &d).is_cacheable());
}

#[test]
fn age_moves_creation_back() {
    // RFC 9111 §4.2.3: an upstream cache held it for 20 s already.
    let d = CacheMetaDefaults::default();
    let m = meta(verdict(
        200,
        &[("Cache-Control", "max-age=60"), ("Age", "20")],
        false,
        &d,
    ));
    assert_eq!(m.age(at(NOW)), Duration::from_secs(20));
    assert!(m.is_fresh(at(NOW + 39)));
    assert!(!m.is_fresh(at(NOW + 40)));
}

#[test]
fn methods() {
    for (m, cacheable, unsafe_) in [
        ("GET", true, false),
        ("HEAD", true, false),
        ("POST", false, true),
        ("PUT", false, true),
        ("DELETE", false, true),
        ("OPTIONS", false, false),
    ] {
        let req = RequestHeader::build(m, b"/", None).unwrap();
        assert_eq!(request_cacheable(&req), cacheable, "{m}");
        assert_eq!(is_unsafe_method(req.method()), unsafe_, "{m}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever the field says, a verdict never stores what no-store,
    /// private or Vary: * forbid.
    #[test]
    fn never_stores_forbidden(
        cc in "(max-age=[0-9]{1,3}|no-store|private|public|s-maxage=[0-9]{1,2}|no-cache|must-revalidate|[a-z]{1,5})(, ?(max-age=[0-9]{1,3}|no-store|private|public|no-cache|x))*",
        status in 100u16..600,
        vary_star in any::<bool>(),
        auth in any::<bool>(),
    ) {
        let d = CacheMetaDefaults::new(|_| Some(10), 5, 5);
        let mut fields = vec![("Cache-Control", cc.as_str()), ("ETag", "\"e\"")];
        if vary_star {
            fields.push(("Vary", "*"));
        }
        let parsed = CacheControl::parse([cc.as_bytes()]).unwrap();
        let v = verdict(status, &fields, auth, &d);
        if v.is_cacheable() {
            prop_assert!(!parsed.no_store());
            prop_assert!(parsed.private_fields().is_none_or(|f| !f.is_empty()));
            prop_assert!(!vary_star);
            prop_assert!(!auth || parsed.allow_caching_authorized_req());
            prop_assert!(status >= 200 && status != 206 && status != 304);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// RFC 9111 §4.2: fresh exactly while the current age is below the
    /// freshness lifetime, whatever Age, Date and the delays are.
    #[test]
    fn fresh_while_age_below_lifetime(
        max_age in 0u32..10_000,
        age in proptest::option::of(0u32..5_000),
        date_skew in -3_000i64..3_000,
        delay in 0u64..100,
        later in 0u64..20_000,
    ) {
        let sent = at(NOW);
        let received = at(NOW + delay);
        let date = if date_skew >= 0 {
            received - Duration::from_secs(date_skew.unsigned_abs())
        } else {
            received + Duration::from_secs(date_skew.unsigned_abs())
        };
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.append_header("Cache-Control", format!("max-age={max_age}")).unwrap();
        r.append_header("ETag", "\"e\"").unwrap();
        r.append_header("Date", httpdate::fmt_http_date(date)).unwrap();
        if let Some(a) = age {
            r.append_header("Age", a.to_string()).unwrap();
        }
        let initial = corrected_initial_age(&r, sent, received);
        let cc = CacheControl::from_resp_headers(&r);
        let times = ResponseTimes { request_time: sent, response_time: received };
        let m = meta(resp_cacheable(cc.as_ref(), r, false, &CacheMetaDefaults::default(), times));
        let now = received + Duration::from_secs(later);
        let current = initial + Duration::from_secs(later);
        prop_assert_eq!(m.age(now), current);
        prop_assert_eq!(m.is_fresh(now), current < Duration::from_secs(u64::from(max_age)));
        let served = m.header_for_hit(now).unwrap();
        prop_assert_eq!(served.get_header("age").unwrap().to_str().unwrap(), current.as_secs().to_string());
    }
}

#[test]
fn invalidation_rule() {
    assert!(invalidates(&Method::DELETE, StatusCode::NO_CONTENT));
    assert!(invalidates(&Method::PUT, StatusCode::SEE_OTHER));
    assert!(!invalidates(&Method::PUT, StatusCode::NOT_FOUND));
    assert!(!invalidates(&Method::HEAD, StatusCode::OK));
}
