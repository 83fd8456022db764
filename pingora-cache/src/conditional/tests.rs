use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

fn d(s: u64) -> String {
    httpdate::fmt_http_date(at(s))
}

fn stored(fields: &[(&str, &str)]) -> ResponseHeader {
    let mut r = ResponseHeader::build(200, None).unwrap();
    for (n, v) in fields {
        r.append_header(n, *v).unwrap();
    }
    r
}

fn req(method: &str, fields: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build(method, b"/", None).unwrap();
    for (n, v) in fields {
        r.append_header(n, *v).unwrap();
    }
    r
}

#[test]
fn if_none_match() {
    let s = stored(&[("ETag", "W/\"a,b\"")]);
    let yes = [
        "\"a,b\"",
        "W/\"a,b\"",
        "\"x\", W/\"a,b\"",
        "*",
        " \"x\" ,, \"a,b\"",
    ];
    for v in yes {
        assert!(
            not_modified(&req("GET", &[("If-None-Match", v)]), &s),
            "{v}"
        );
    }
    for v in ["\"a\"", "\"b\"", "a,b", "", "\"a,b"] {
        assert!(
            !not_modified(&req("GET", &[("If-None-Match", v)]), &s),
            "{v}"
        );
    }
    // Two lines.
    let r = req(
        "GET",
        &[("If-None-Match", "\"x\""), ("If-None-Match", "\"a,b\"")],
    );
    assert!(not_modified(&r, &s));
    // No ETag stored: only * matches.
    let plain = stored(&[]);
    assert!(!not_modified(
        &req("GET", &[("If-None-Match", "\"a\"")]),
        &plain
    ));
    assert!(not_modified(&req("GET", &[("If-None-Match", "*")]), &plain));
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let s = stored(&[("ETag", "\"a\""), ("Last-Modified", &d(100))]);
    let r = req(
        "GET",
        &[("If-None-Match", "\"b\""), ("If-Modified-Since", &d(200))],
    );
    assert!(!not_modified(&r, &s));
    // Not for a stored non-200.
    let mut s404 = stored(&[("ETag", "\"a\"")]);
    s404.set_status(StatusCode::NOT_FOUND).unwrap();
    assert!(!not_modified(
        &req("GET", &[("If-None-Match", "\"a\"")]),
        &s404
    ));
}

#[test]
fn if_modified_since() {
    let s = stored(&[("Last-Modified", &d(1000)), ("Date", &d(5000))]);
    assert!(not_modified(
        &req("GET", &[("If-Modified-Since", &d(1000))]),
        &s
    ));
    assert!(not_modified(
        &req("HEAD", &[("If-Modified-Since", &d(2000))]),
        &s
    ));
    assert!(!not_modified(
        &req("GET", &[("If-Modified-Since", &d(999))]),
        &s
    ));
    assert!(!not_modified(
        &req("POST", &[("If-Modified-Since", &d(2000))]),
        &s
    ));
    assert!(!not_modified(
        &req("GET", &[("If-Modified-Since", "garbage")]),
        &s
    ));
    // Falls back to Date without Last-Modified.
    let s = stored(&[("Date", &d(5000))]);
    assert!(not_modified(
        &req("GET", &[("If-Modified-Since", &d(5000))]),
        &s
    ));
    assert!(!not_modified(
        &req("GET", &[("If-Modified-Since", &d(4999))]),
        &s
    ));
}

#[test]
fn comparisons() {
    // RFC 9110 §8.8.3.2 table.
    assert!(!strong_match(b"W/\"1\"", b"W/\"1\""));
    assert!(weak_match(b"W/\"1\"", b"W/\"1\""));
    assert!(!strong_match(b"W/\"1\"", b"W/\"2\""));
    assert!(!weak_match(b"W/\"1\"", b"W/\"2\""));
    assert!(!strong_match(b"W/\"1\"", b"\"1\""));
    assert!(weak_match(b"W/\"1\"", b"\"1\""));
    assert!(strong_match(b"\"1\"", b"\"1\""));
}

#[test]
fn head_304() {
    let s = stored(&[
        ("ETag", "\"a\""),
        ("Content-Type", "text/plain"),
        ("Cache-Control", "max-age=5"),
        ("Content-Length", "10"),
        ("Vary", "Accept"),
    ]);
    let r = to_304(&s).unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.has_header("etag") && r.has_header("cache-control") && r.has_header("vary"));
    assert!(!r.has_header("content-type") && !r.has_header("content-length"));
}

#[test]
fn validators_and_merge() {
    let s = stored(&[("ETag", "\"a\""), ("Last-Modified", &d(10))]);
    let mut r = req("GET", &[("If-Match", "\"z\""), ("If-Range", "\"z\"")]);
    assert!(add_validators(&mut r, &s).unwrap());
    assert_eq!(
        r.get_header("if-modified-since").unwrap().to_str().unwrap(),
        d(10)
    );
    assert!(!r.has_header("if-match") && !r.has_header("if-range"));
    let mut r = req("GET", &[]);
    assert!(!add_validators(&mut r, &stored(&[])).unwrap());

    let mut s = stored(&[
        ("ETag", "\"a\""),
        ("Cache-Control", "max-age=1"),
        ("X-Old", "1"),
        ("Content-Length", "10"),
        ("X-Multi", "1"),
    ]);
    let mut nm = ResponseHeader::build(304, None).unwrap();
    for (n, v) in [
        ("ETag", "\"a\""),
        ("Cache-Control", "max-age=100"),
        ("Content-Length", "0"),
        ("X-Multi", "2"),
        ("x-multi", "3"),
        ("Connection", "close"),
    ] {
        nm.append_header(n, v).unwrap();
    }
    assert!(not_modified_applies(&s, &nm));
    merge_not_modified(&mut s, &nm).unwrap();
    assert_eq!(s.get_header("cache-control").unwrap(), "max-age=100");
    assert_eq!(s.get_header("content-length").unwrap(), "10");
    assert_eq!(s.get_header("x-old").unwrap(), "1");
    let multi: Vec<_> = s.get_header_values("x-multi").collect();
    assert_eq!(multi, ["2", "3"]);
    assert!(!s.has_header("connection"));
    assert_eq!(s.status(), StatusCode::OK);
}

#[test]
fn applies_by_validator() {
    let s = stored(&[("ETag", "\"a\""), ("Last-Modified", &d(10))]);
    let nm = |f: &[(&str, &str)]| {
        let mut r = ResponseHeader::build(304, None).unwrap();
        for (n, v) in f {
            r.append_header(n, *v).unwrap();
        }
        r
    };
    assert!(not_modified_applies(&s, &nm(&[("ETag", "W/\"a\"")])));
    assert!(!not_modified_applies(&s, &nm(&[("ETag", "\"b\"")])));
    assert!(not_modified_applies(&s, &nm(&[("Last-Modified", &d(10))])));
    assert!(!not_modified_applies(&s, &nm(&[("Last-Modified", &d(11))])));
    assert!(not_modified_applies(&s, &nm(&[])));
}

#[test]
fn revalidation_refreshes_meta() {
    let defaults = CacheMetaDefaults::default();
    let s = stored(&[
        ("ETag", "\"a\""),
        ("Cache-Control", "max-age=10"),
        ("Date", &d(1000)),
        ("Age", "3"),
    ]);
    let cc = CacheControl::from_resp_headers(&s);
    let RespCacheable::Cacheable(meta) = resp_cacheable(
        cc.as_ref(),
        s,
        false,
        &defaults,
        ResponseTimes::at(at(1000)),
    ) else {
        panic!("cacheable");
    };
    assert!(!meta.is_fresh(at(1008)));
    let mut nm = ResponseHeader::build(304, None).unwrap();
    nm.append_header("ETag", "\"a\"").unwrap();
    nm.append_header("Cache-Control", "max-age=60").unwrap();
    let out = revalidated_meta(&meta, &nm, false, &defaults, ResponseTimes::at(at(2000))).unwrap();
    let Some(RespCacheable::Cacheable(new)) = out else {
        panic!("refreshed");
    };
    // Old Date and Age no longer count: fresh for 60 s from 2000.
    assert!(new.is_fresh(at(2059)));
    assert!(!new.is_fresh(at(2060)));
    assert_eq!(new.age(at(2000)), Duration::ZERO);
    // A 304 with another ETag is not about this response.
    nm.insert_header("ETag", "\"other\"").unwrap();
    let out = revalidated_meta(&meta, &nm, false, &defaults, ResponseTimes::at(at(2000))).unwrap();
    assert!(out.is_none());
    // A 304 that now says no-store makes the entry uncacheable.
    nm.insert_header("ETag", "\"a\"").unwrap();
    nm.insert_header("Cache-Control", "no-store").unwrap();
    let out = revalidated_meta(&meta, &nm, false, &defaults, ResponseTimes::at(at(2000))).unwrap();
    assert!(matches!(out, Some(RespCacheable::Uncacheable(_))));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Any If-None-Match value: no panic, and the list parser only yields
    /// tags that start with a quote and lie inside the input.
    #[test]
    fn entity_tag_lists_never_panic(value in "[ ,W/\"a-z*]{0,40}") {
        for (_, tag) in entity_tags(value.as_bytes()) {
            proptest::prop_assert!(tag.starts_with(b"\""));
            proptest::prop_assert!(tag.len() <= value.len());
        }
        let s = stored(&[("ETag", "\"abc\"")]);
        if let Ok(r) = RequestHeader::build("GET", b"/", None).and_then(|mut r| {
            r.insert_header("If-None-Match", value.as_str()).map(|()| r)
        }) {
            let _ = not_modified(&r, &s);
        }
    }
}
