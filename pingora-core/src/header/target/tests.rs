use super::*;
use http::Method;
use proptest::prelude::*;

/// Cases per property test: a CI-sized slice by default; set
/// `PINGORA_PROPTEST_CASES` for a long run, for example
/// `PINGORA_PROPTEST_CASES=1000000 cargo test -p pingora-core --release --lib strict_`.
pub(crate) fn proptest_cases(default: u32) -> u32 {
    std::env::var("PINGORA_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target(method: &str, t: &[u8]) -> Result<TargetForm, &'static str> {
    check_target(&Method::from_bytes(method.as_bytes()).unwrap(), t)
}

#[test]
fn forms_follow_the_method() {
    let ok: &[(&str, &[u8])] = &[
        ("GET", b"/"),
        ("GET", b"//double/slash"),
        ("GET", b"/a/b;p=1/%2F?q=1&r=%zz{}|^`\\?[]"),
        ("GET", b"/a?"),
        ("GET", b"/[x]"),
        ("POST", b"/a@b:c!$&'()*+,;="),
        ("OPTIONS", b"*"),
        ("OPTIONS", b"/x"),
        ("CONNECT", b"example.com:443"),
        ("CONNECT", b"[::1]:8443"),
        ("GET", b"http://example.com"),
        ("GET", b"HTTPS://example.com:8443/a?b"),
        ("GET", b"http://example.com?q"),
        ("GET", b"http://[2001:db8::1]:80/"),
    ];
    for (m, t) in ok {
        assert!(target(m, t).is_ok(), "{m} {}", String::from_utf8_lossy(t));
    }
    let bad: &[(&str, &[u8])] = &[
        ("GET", b""),
        ("GET", b"a/b"),
        ("GET", b"*"),
        ("PRI", b"*"),
        ("GET", b"example.com:443"),
        ("CONNECT", b"/"),
        ("CONNECT", b"example.com"),
        ("CONNECT", b"example.com:"),
        ("CONNECT", b"http://example.com:443/"),
        ("GET", b"ftp://example.com/"),
        ("GET", b"http:/example.com/"),
        ("GET", b"http://"),
        ("GET", b"http:///a"),
        ("GET", b"http://user@example.com/"),
        ("GET", b"http://user:pw@example.com/"),
        ("GET", b"http://a@b@example.com/"),
        ("GET", b"http://exa mple.com/"),
        ("GET", b"http://example.com:99999/"),
        ("GET", b"http://example.com/#frag"),
        ("GET", b"/a#frag"),
        ("GET", b"/a?b#frag"),
        ("GET", b"/%"),
        ("GET", b"/%4"),
        ("GET", b"/%4g"),
        ("GET", b"/a\\b"),
        ("GET", b"/a{b}"),
        ("GET", b"/?a\"b"),
        ("GET", b"/\xc3\xa9"),
        ("GET", b"/?\xc3\xa9"),
        ("GET", b"/a\x00"),
        ("GET", b"/?a\x7f"),
    ];
    for (m, t) in bad {
        assert!(target(m, t).is_err(), "{m} {}", String::from_utf8_lossy(t));
    }
    assert_eq!(
        target("GET", b"http://h:1/p"),
        Ok(TargetForm::Absolute { start: 7, end: 10 })
    );
}

/// Every byte, in the path and in the query: exactly the documented set
/// passes, and whatever passes also parses as a `Uri`, so no request is
/// let through here only to fail later.
#[test]
fn byte_rules_of_path_and_query() {
    let mut path_ok = Vec::new();
    let mut query_ok = Vec::new();
    for b in 0..=255u8 {
        let in_path = [b'/', b'a', b, b'z'];
        let in_query = [b'/', b'?', b, b'z'];
        if target("GET", &in_path).is_ok() {
            path_ok.push(b);
            assert!(http::Uri::try_from(&in_path[..]).is_ok(), "{b:#04x}");
        }
        if target("GET", &in_query).is_ok() {
            query_ok.push(b);
            assert!(http::Uri::try_from(&in_query[..]).is_ok(), "{b:#04x}");
        }
    }
    let expected_path: Vec<u8> = (0..=255u8)
        .filter(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/|^[]?".contains(b))
        .collect();
    assert_eq!(path_ok, expected_path);
    let expected_query: Vec<u8> = (0x21..=0x7e).filter(|b| !b"#\"<>".contains(b)).collect();
    assert_eq!(query_ok, expected_query);
}

#[test]
fn hosts() {
    let ok: &[&[u8]] = &[
        b"example.com",
        b"EXAMPLE.com:8080",
        b"a",
        b"a:0",
        b"a:65535",
        b"127.0.0.1",
        b"999.1.1.1",
        b"under_score",
        b"xn--bcher-kva.example",
        b"[::1]",
        b"[2001:db8::1]:443",
        b"[::ffff:192.0.2.1]",
        b"[v1.fe80::a+en1]",
        b"sub!$&'()*+,;=delims",
    ];
    for h in ok {
        assert_eq!(check_authority(h), Ok(()), "{}", String::from_utf8_lossy(h));
    }
    let bad: &[&[u8]] = &[
        b"",
        b":80",
        b"a:",
        b"a:65536",
        b"a:123456",
        b"a:8a",
        b"a:+80",
        b"a:80:80",
        b"a b",
        b"a\tb",
        b"user@a",
        b"a/b",
        b"a?b",
        b"a#b",
        b"a\\b",
        b"a%zz",
        b"%C3%A9.example",
        b"a%4",
        b"caf\xc3\xa9",
        b"[::1",
        b"::1",
        b"[::1]x",
        b"[::g]",
        b"[fe80::1%25en0]",
        b"[v1]",
        b"[v.a]",
        b"[vg.a]",
        b"[1.2.3.4]",
        b"a\x00",
    ];
    for h in bad {
        assert!(
            check_authority(h).is_err(),
            "{}",
            String::from_utf8_lossy(h)
        );
    }
}

#[test]
fn host_fields() {
    let one = [&b"a"[..]];
    assert_eq!(check_host_fields(one.into_iter(), false), Ok(()));
    assert!(check_host_fields([].into_iter(), false).is_err());
    assert_eq!(check_host_fields([].into_iter(), true), Ok(()));
    let two = [&b"a"[..], b"a"];
    assert!(check_host_fields(two.into_iter(), true).is_err());
    assert!(check_host_fields([&b"a b"[..]].into_iter(), true).is_err());
}

// === property tests ===

/// Path bytes allowed as they are, and query bytes.
const PATH_BYTES: &[u8] = b"abcXYZ019-._~!$&'()*+,;=:@|^";
const QUERY_BYTES: &[u8] = b"abz09-._~!$&'()*+,;=:@/?{}|^\\`[]%";
/// Bytes refused anywhere in a target.
const NEVER: &[u8] = b" \x00\x01\t\r\n\x1f\x7f\x80\xc3\xff#\"";
const UNWISE_IN_PATH: &[u8] = b"<>\\`{}";

fn segment() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => prop::sample::select(PATH_BYTES).prop_map(|b| vec![b]),
        1 => (any::<u8>()).prop_map(|b| format!("%{b:02X}").into_bytes()),
        1 => (any::<u8>()).prop_map(|b| format!("%{b:02x}").into_bytes()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// An origin-form target from the grammar: `1*("/" segment) ["?" query]`.
fn origin_form() -> impl Strategy<Value = Vec<u8>> {
    let query = prop::option::of(prop::collection::vec(
        prop::sample::select(QUERY_BYTES),
        0..20,
    ));
    (prop::collection::vec(segment(), 1..5), query).prop_map(|(segments, query)| {
        let mut t = Vec::new();
        for s in segments {
            t.push(b'/');
            t.extend(s);
        }
        if let Some(q) = query {
            t.push(b'?');
            t.extend(q);
        }
        t
    })
}

/// A valid host and optional port, from the RFC 3986 grammar.
fn valid_host() -> impl Strategy<Value = Vec<u8>> {
    let reg_name = prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(&b"abcdefghijklmnopqrstuvwxyzABCZ0189-._~"[..]).prop_map(|b| vec![b]),
            1 => prop::sample::select(&b"!$&'()*+,;="[..]).prop_map(|b| vec![b]),
        ],
        1..20,
    )
    .prop_map(|v| v.concat());
    let ipv4 = any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string().into_bytes());
    let ipv6 = any::<u128>().prop_map(|a| format!("[{}]", Ipv6Addr::from(a)).into_bytes());
    let future = ("[0-9a-fA-F]{1,4}", "[a-z0-9:.~+]{1,10}")
        .prop_map(|(v, rest)| format!("[v{v}.{rest}]").into_bytes());
    let host = prop_oneof![4 => reg_name, 2 => ipv4, 2 => ipv6, 1 => future];
    (host, prop::option::of(0u16..=u16::MAX)).prop_map(|(mut h, port)| {
        if let Some(p) = port {
            h.extend(format!(":{p}").bytes());
        }
        h
    })
}

/// Targets of any shape: grammar-built ones, mangled ones and noise.
fn any_target() -> impl Strategy<Value = Vec<u8>> {
    let noise = prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(&b"/?#%@:[]*.azAZ09 \"<>\\^`{|}"[..]),
            1 => any::<u8>(),
        ],
        0..24,
    );
    let absolute = (
        prop::sample::select(&["http://", "https://", "HTTP://", "ftp://", ""][..]),
        valid_host(),
        origin_form(),
    )
        .prop_map(|(s, h, p)| [s.as_bytes(), &h, &p].concat());
    prop_oneof![
        origin_form(),
        absolute,
        valid_host(),
        noise,
        Just(b"*".to_vec())
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(&["GET", "POST", "OPTIONS", "CONNECT", "PRI", "HEAD"][..])
        .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(1024)))]

    /// Grammar-built origin-form targets pass, and the whole request
    /// line parses to exactly that target.
    #[test]
    fn strict_request_line_valid_origin_form_passes(t in origin_form()) {
        prop_assert_eq!(check_target(&Method::GET, &t), Ok(TargetForm::Origin));
        let mut wire = bytes::BytesMut::from(&b"GET "[..]);
        wire.extend_from_slice(&t);
        wire.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
        let config = crate::protocols::http::v1::H1Config::default();
        let req = crate::protocols::http::v1::parse_request_head(&mut wire, &config);
        let req = req.unwrap().unwrap();
        let pq = req.uri().path_and_query().unwrap().as_str().as_bytes().to_vec();
        prop_assert_eq!(pq, t);
    }

    /// One refused byte anywhere in a valid target makes it refused.
    #[test]
    fn strict_request_line_bad_byte_is_refused(
        t in origin_form(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(NEVER),
    ) {
        let mut t = t;
        let i = 1 + at.index(t.len());
        t.insert(i, bad);
        prop_assert!(check_target(&Method::GET, &t).is_err());
    }

    /// The same for the unwise bytes, in the path.
    #[test]
    fn strict_request_line_unwise_byte_in_path_is_refused(
        t in origin_form(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(UNWISE_IN_PATH),
    ) {
        let path_len = t.iter().position(|&b| b == b'?').unwrap_or(t.len());
        let mut t = t;
        t.insert(1 + at.index(path_len), bad);
        prop_assert!(check_target(&Method::GET, &t).is_err());
    }

    /// Whatever the target: no panic; a form only with its method; and
    /// anything let through parses as a `Uri` with the same authority.
    #[test]
    fn strict_request_line_any_target(m in method(), t in any_target()) {
        let Ok(form) = check_target(&m, &t) else { return Ok(()) };
        match form {
            TargetForm::Asterisk => prop_assert_eq!(&m, &Method::OPTIONS),
            TargetForm::Authority => prop_assert_eq!(&m, &Method::CONNECT),
            TargetForm::Origin => prop_assert_eq!(t[0], b'/'),
            TargetForm::Absolute { start, end } => {
                let uri = http::Uri::try_from(&t[..]).unwrap();
                prop_assert_eq!(uri.authority().unwrap().as_str().as_bytes(), &t[start..end]);
                prop_assert!(!t[start..end].contains(&b'@'));
            }
        }
        prop_assert!(m != Method::CONNECT || form == TargetForm::Authority);
        prop_assert!(!t.iter().any(|b| !b.is_ascii_graphic()));
        prop_assert!(http::Uri::try_from(&t[..]).is_ok());
    }

    /// Grammar-built hosts pass, and `http` takes them as an authority,
    /// so an HTTP/2 upstream request can be built from them.
    #[test]
    fn strict_host_valid_passes(h in valid_host()) {
        prop_assert_eq!(check_authority(&h), Ok(()));
        prop_assert!(http::uri::Authority::try_from(&h[..]).is_ok());
    }

    /// One refused byte in a valid host makes it refused.
    #[test]
    fn strict_host_bad_byte_is_refused(
        h in valid_host(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(&b" \x00\t\x7f\x80\xff@/?#\\\"<>^`{|}%"[..]),
    ) {
        let mut h = h;
        h.insert(at.index(h.len() + 1), bad);
        prop_assert!(check_authority(&h).is_err());
    }

    /// Any bytes: no panic, and a value let through is visible ASCII.
    #[test]
    fn strict_host_any_bytes(h in prop::collection::vec(
        prop_oneof![4 => prop::sample::select(&b"[]:.%vV09afAFxz@!"[..]), 1 => any::<u8>()],
        0..24,
    )) {
        if check_authority(&h).is_ok() {
            prop_assert!(h.iter().all(u8::is_ascii_graphic));
            prop_assert!(!h.contains(&b'@'));
        }
    }
}
