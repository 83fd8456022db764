use super::*;
use proptest::prelude::*;

fn single(r: Range<u64>) -> RangeType {
    RangeType::Single(r)
}

#[test]
fn table() {
    // RFC 9110 §14.1.2 examples against a 10000-byte representation.
    let rows: &[(&str, RangeType)] = &[
        ("bytes=0-499", single(0..500)),
        ("bytes=500-999", single(500..1000)),
        ("bytes=-500", single(9500..10000)),
        ("bytes=9500-", single(9500..10000)),
        ("BYTES = 0-0", single(0..1)),
        ("bytes=0-99999", single(0..10000)),
        ("bytes=-99999", single(0..10000)),
        ("bytes=9999-9999", single(9999..10000)),
        ("bytes=0-0, 20000-", single(0..1)),
        ("bytes=10000-", RangeType::Invalid),
        ("bytes=-0", RangeType::Invalid),
        ("bytes=10000-10001, 20000-", RangeType::Invalid),
        ("bytes=5-1", RangeType::None),
        ("bytes=a-b", RangeType::None),
        ("bytes=", RangeType::None),
        ("bytes=1", RangeType::None),
        ("bytes=--1", RangeType::None),
        ("items=0-1", RangeType::None),
        ("bytes 0-1", RangeType::None),
        ("bytes=0-10,5-20", RangeType::None),
        ("bytes=0-99999999999999999999999", single(0..10000)),
    ];
    for (input, want) in rows {
        assert_eq!(
            &parse_range_header(input.as_bytes(), 10_000),
            want,
            "{input}"
        );
    }
    let many = format!(
        "bytes={}",
        (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(parse_range_header(many.as_bytes(), 10_000), RangeType::None);
    // An empty representation satisfies nothing.
    assert_eq!(parse_range_header(b"bytes=0-", 0), RangeType::Invalid);
}

fn head(fields: &[(&str, &str)]) -> ResponseHeader {
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
fn filter_416_and_ignored() {
    let mut resp = head(&[("Content-Length", "10")]);
    let r = range_header_filter(&req("GET", &[("Range", "bytes=10-")]), &mut resp, 10).unwrap();
    assert_eq!(r, RangeType::Invalid);
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.get_header("content-range").unwrap(), "bytes */10");
    // HEAD and non-200 are not ranged.
    let mut resp = head(&[]);
    let r = range_header_filter(&req("HEAD", &[("Range", "bytes=0-1")]), &mut resp, 10).unwrap();
    assert_eq!((r, resp.status()), (RangeType::None, StatusCode::OK));
}

#[test]
fn if_range() {
    let lm = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000));
    let stored = head(&[("ETag", "\"v1\""), ("Last-Modified", &lm)]);
    for (cond, applies) in [
        ("\"v1\"", true),
        ("\"v2\"", false),
        ("W/\"v1\"", false),
        (lm.as_str(), true),
        ("Thu, 01 Jan 1970 00:16:41 GMT", false),
        ("junk", false),
    ] {
        let mut resp = stored.clone();
        let r = req("GET", &[("Range", "bytes=0-1"), ("If-Range", cond)]);
        let out = range_header_filter(&r, &mut resp, 10).unwrap();
        assert_eq!(out != RangeType::None, applies, "{cond}");
    }
}

#[test]
fn multipart_framing() {
    let mut resp = head(&[("Content-Type", "text/plain"), ("Content-Length", "10")]);
    let out =
        range_header_filter(&req("GET", &[("Range", "bytes=0-1,-2")]), &mut resp, 10).unwrap();
    let RangeType::Multi(parts) = out else {
        panic!("multi")
    };
    assert_eq!(parts.ranges(), [0..2, 8..10]);
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let body_src = b"0123456789";
    let mut body = Vec::new();
    for r in parts.ranges() {
        body.extend(parts.part_header(r));
        body.extend_from_slice(&body_src[r.start as usize..r.end as usize]);
    }
    body.extend(parts.trailer());
    assert_eq!(body.len() as u64, parts.body_len());
    assert_eq!(
        resp.get_header("content-length").unwrap().to_str().unwrap(),
        body.len().to_string()
    );
    let text = String::from_utf8(body).unwrap();
    let ct = resp
        .get_header("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    assert!(text.contains(&format!(
        "--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01"
    )));
    assert!(text.contains("Content-Range: bytes 8-9/10\r\n\r\n89"));
    assert!(text.ends_with(&format!("--{boundary}--\r\n")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn never_panics_and_stays_in_bounds(input in "(bytes|BYTES|x)=[-0-9, ]{0,40}", len in 0u64..100_000) {
        match parse_range_header(input.as_bytes(), len) {
            RangeType::Single(r) => prop_assert!(r.start < r.end && r.end <= len),
            RangeType::Multi(p) => {
                for r in p.ranges() {
                    prop_assert!(r.start < r.end && r.end <= len);
                }
            }
            RangeType::None | RangeType::Invalid => {}
        }
    }

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_range_header(&bytes, 1000);
    }
}
