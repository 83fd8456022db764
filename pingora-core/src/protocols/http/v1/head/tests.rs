use super::*;
use http::header::HeaderValue;

fn cfg() -> H1Config {
    H1Config::default()
}

fn req(bytes: &[u8]) -> Result<Option<RequestHeader>, HeadError> {
    let mut buf = BytesMut::from(bytes);
    HeadReader::default().parse_request(&mut buf, &cfg())
}

#[test]
fn parses_request_keeping_case_order_and_rest() {
    let mut buf = BytesMut::from(
        &b"GET /p?q=1 HTTP/1.1\r\nHost: a\r\nX-Custom-ID: 7\r\naccept: */*\r\nx-custom-id: 8\r\n\r\nNEXT"[..],
    );
    let r = HeadReader::default()
        .parse_request(&mut buf, &cfg())
        .unwrap()
        .unwrap();
    assert_eq!(r.method(), Method::GET);
    assert_eq!(r.uri().path(), "/p");
    assert_eq!(r.version(), Version::HTTP_11);
    let wire: Vec<_> = r
        .wire_headers()
        .map(|(n, v)| (std::str::from_utf8(n).unwrap(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        wire,
        [
            ("Host", "a"),
            ("X-Custom-ID", "7"),
            ("accept", "*/*"),
            ("x-custom-id", "8")
        ]
    );
    assert_eq!(r.headers().get_all("x-custom-id").iter().count(), 2);
    assert_eq!(&buf[..], b"NEXT");
}

#[test]
fn incremental_bytes_give_same_result() {
    let full = b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi";
    let mut buf = BytesMut::new();
    let mut reader = HeadReader::default();
    let mut got = None;
    for &b in full.iter() {
        buf.extend_from_slice(&[b]);
        if got.is_none() {
            got = reader.parse_request(&mut buf, &cfg()).unwrap();
        }
    }
    let r = got.unwrap();
    assert_eq!(r.version(), Version::HTTP_10);
    assert_eq!(&buf[..], b"hi");
}

#[test]
fn leading_empty_line_is_ignored() {
    assert!(
        req(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .is_some()
    );
}

#[test]
fn rejects_malformed() {
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX\x01: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",
    ] {
        let res = req(bad);
        assert!(
            matches!(res, Err(HeadError::Malformed(_))),
            "{:?} -> {res:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn limits() {
    let mut config = cfg();
    config.max_header_bytes = 100;
    config.max_request_line = 30;
    config.max_headers = 2;
    let parse = |b: &[u8]| {
        let mut buf = BytesMut::from(b);
        HeadReader::default().parse_request(&mut buf, &config)
    };
    // request line over its limit, complete or not
    assert_eq!(parse(&[b'G'; 31]).err(), Some(HeadError::UriTooLong));
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(40));
    assert_eq!(parse(long.as_bytes()).err(), Some(HeadError::UriTooLong));
    // head over its byte limit, complete or not
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "b".repeat(100));
    assert_eq!(parse(big.as_bytes()).err(), Some(HeadError::TooLarge));
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "b".repeat(100));
    assert_eq!(parse(big.as_bytes()).err(), Some(HeadError::TooLarge));
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: h\r\nB: 2\r\nC: 3\r\n\r\n").err(),
        Some(HeadError::TooManyHeaders)
    );
    assert_eq!(HeadError::TooManyHeaders.status(), 431);
    assert_eq!(HeadError::UriTooLong.status(), 414);
    assert!(
        parse(b"GET / HTTP/1.1\r\nHost: h\r\nB: 2\r\n\r\n")
            .unwrap()
            .is_some()
    );
}

#[test]
fn parses_response() {
    let mut buf = BytesMut::from(&b"HTTP/1.0 404 Gone Fishing\r\nContent-Length: 0\r\n\r\n"[..]);
    let r = HeadReader::default()
        .parse_response(&mut buf, &cfg())
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.version(), Version::HTTP_10);
    assert_eq!(r.reason_phrase(), b"Gone Fishing");
    assert!(buf.is_empty());
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n"[..]);
    assert!(
        HeadReader::default()
            .parse_response(&mut buf, &cfg())
            .is_err()
    );
    let mut buf = BytesMut::from(&b"HTTP/1.1 200\r\n\r\n"[..]);
    let r = HeadReader::default()
        .parse_response(&mut buf, &cfg())
        .unwrap()
        .unwrap();
    assert_eq!(r.reason_phrase(), b"OK");
    // The usual phrase and any other spelling both come out as received.
    for (line, reason) in [("200 OK", &b"OK"[..]), ("200 ok", b"ok"), ("503 OK", b"OK")] {
        let mut buf = BytesMut::from(format!("HTTP/1.1 {line}\r\n\r\n").as_bytes());
        let r = HeadReader::default()
            .parse_response(&mut buf, &cfg())
            .unwrap()
            .unwrap();
        assert_eq!(r.reason_phrase(), reason, "{line}");
        let mut out = BytesMut::new();
        r.write_h1(&mut out);
        assert_eq!(&out[..], format!("HTTP/1.1 {line}\r\n\r\n").as_bytes());
    }
}

#[test]
fn dropped_heads_leave_the_read_buffer_reusable() {
    // A head shares the read buffer's allocation (no copy); once the
    // header is dropped, the next read reuses that allocation instead of
    // allocating a fresh one per message.
    for input in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n"[..],
        &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
    ] {
        let mut buf = BytesMut::with_capacity(1024);
        buf.extend_from_slice(input);
        let base = buf.as_ptr();
        let mut reader = HeadReader::default();
        if input.starts_with(b"GET") {
            let req = reader.parse_request(&mut buf, &cfg()).unwrap().unwrap();
            assert_eq!(req.get_header("x-a").unwrap(), "b");
        } else {
            let resp = reader.parse_response(&mut buf, &cfg()).unwrap().unwrap();
            assert_eq!(resp.get_header("content-length").unwrap(), "0");
        }
        assert!(buf.is_empty());
        buf.reserve(1000);
        assert_eq!(buf.as_ptr(), base, "the read buffer was reallocated");
    }
}

#[test]
fn empty_lines_before_the_start_line_are_skipped() {
    // RFC 9112 §2.2: a server should ignore at least one empty line before
    // the request line. The first blank line is then not the end of the
    // head, whether the rest is already in or still to come.
    let whole = b"\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\nnext";
    let mut buf = BytesMut::from(&whole[..]);
    let req = HeadReader::default()
        .parse_request(&mut buf, &cfg())
        .unwrap()
        .unwrap();
    assert_eq!((req.uri().path(), &buf[..]), ("/a", &b"next"[..]));

    let mut reader = HeadReader::default();
    let mut buf = BytesMut::from(&whole[..6]);
    assert!(reader.parse_request(&mut buf, &cfg()).unwrap().is_none());
    assert_eq!(&buf[..], &whole[..6], "bytes must not be lost");
    buf.extend_from_slice(&whole[6..]);
    let req = reader.parse_request(&mut buf, &cfg()).unwrap().unwrap();
    assert_eq!(req.get_header("host").unwrap(), "h");
    assert_eq!(&buf[..], b"next");
}

#[test]
fn a_bad_request_line_is_refused_before_the_head_ends() {
    let mut reader = HeadReader::default();
    // Only the request line has arrived; the fields are still to come.
    let mut buf = BytesMut::from(&b"\x00\x01\x02 / HTTP/1.1\r\nHost: a\r\n"[..]);
    assert!(matches!(
        reader.parse_request(&mut buf, &cfg()),
        Err(HeadError::Malformed(_))
    ));
    // A valid line with the head still incomplete waits for more.
    let mut reader = HeadReader::default();
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n"[..]);
    assert!(matches!(reader.parse_request(&mut buf, &cfg()), Ok(None)));
    buf.extend_from_slice(b"\r\n");
    assert!(matches!(
        reader.parse_request(&mut buf, &cfg()),
        Ok(Some(_))
    ));
}

/// `fields` builds values without checking them again, trusting httparse
/// to accept no byte `HeaderValue` refuses. Every byte, in the middle of a
/// value, in a request and a response: either the parser refuses the head,
/// or the byte is one `HeaderValue` takes and the value came through whole.
#[test]
fn httparse_values_are_valid_header_values() {
    let mut accepted = 0;
    for b in 0..=255u8 {
        let value = [b'a', b, b'z'];
        let mut request = b"GET / HTTP/1.1\r\nHost: h\r\nX-V: ".to_vec();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n\r\n");
        let mut response = b"HTTP/1.1 200 OK\r\nX-V: ".to_vec();
        response.extend_from_slice(&value);
        response.extend_from_slice(b"\r\n\r\n");
        let parsed_request = req(&request)
            .ok()
            .flatten()
            .map(|r| r.get_header("x-v").cloned());
        let mut buf = BytesMut::from(&response[..]);
        let parsed_response = HeadReader::default()
            .parse_response(&mut buf, &cfg())
            .ok()
            .flatten()
            .map(|r| r.get_header("x-v").cloned());
        let valid = HeaderValue::from_bytes(&value).is_ok();
        for parsed in [parsed_request, parsed_response] {
            let Some(got) = parsed else { continue };
            assert!(valid, "byte {b:#04x} accepted by the parser");
            assert_eq!(got.map(|v| v.as_bytes().to_vec()), Some(value.to_vec()));
            accepted += 1;
        }
    }
    // Tab, SP to `~` and 0x80 to 0xFF, in both heads.
    assert_eq!(accepted, 2 * (1 + 95 + 128));
}

#[test]
fn versions() {
    // RFC 9110 §6.2: a later HTTP/1 minor version is served as 1.1; RFC
    // 9110 §15.6.6: another major version gets 505.
    for (minor, want) in [(b'0', Version::HTTP_10), (b'1', Version::HTTP_11)]
        .into_iter()
        .chain((b'2'..=b'9').map(|d| (d, Version::HTTP_11)))
    {
        let line = [&b"GET / HTTP/1."[..], &[minor], b"\r\nHost: h\r\n\r\n"].concat();
        assert_eq!(req(&line).unwrap().unwrap().version(), want);
    }
    for major in [b'0', b'2', b'3', b'9'] {
        let line = [&b"GET / HTTP/"[..], &[major], b".0\r\nHost: h\r\n\r\n"].concat();
        assert_eq!(req(&line).err(), Some(HeadError::VersionNotSupported));
    }
    assert_eq!(HeadError::VersionNotSupported.status(), 505);
    // Also after empty lines, and refused as soon as the line is in.
    assert!(
        req(b"\r\nGET / HTTP/1.2\r\nHost: h\r\n\r\n")
            .unwrap()
            .is_some()
    );
    assert_eq!(
        req(b"PRI * HTTP/2.0\r\n").err(),
        Some(HeadError::VersionNotSupported)
    );
    for bad in [
        &b"GET / HTTP/1.10\r\n\r\n"[..],
        b"GET / HTTP/2\r\n\r\n",
        b"GET / HTTP/1.x\r\n\r\n",
        b"GET / http/1.1\r\n\r\n",
    ] {
        assert!(
            matches!(req(bad), Err(HeadError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn targets_and_hosts() {
    for bad in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: \r\n\r\n",
        b"GET a HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert!(
            matches!(req(bad), Err(HeadError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(req(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    assert!(
        req(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .is_some()
    );
    assert!(
        req(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
            .unwrap()
            .is_some()
    );
    // The authority of an absolute-form target wins over Host.
    let r = req(b"GET http://b.test:8080/p?q HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.headers()["host"], "b.test:8080");
    assert_eq!(r.headers().get_all("host").iter().count(), 1);
    assert_eq!(r.uri().authority().unwrap(), "b.test:8080");
    assert_eq!(r.headers()["x"], "y");
}

#[test]
fn empty_lines_before_the_request_line_are_bounded() {
    let mut config = cfg();
    config.max_request_line = 64;
    let mut reader = HeadReader::default();
    let mut buf = BytesMut::from(&b"\r\n"[..]);
    assert!(matches!(reader.parse_request(&mut buf, &config), Ok(None)));
    buf.extend_from_slice(&b"\r\n".repeat(40));
    assert!(matches!(
        reader.parse_request(&mut buf, &config),
        Err(HeadError::Malformed(_))
    ));
}
