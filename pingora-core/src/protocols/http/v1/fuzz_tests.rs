//! Property tests standing in for fuzz targets (stable toolchain): random
//! and mutated request heads, response heads and chunked bodies go through
//! the parsers, which must never panic, never loop, and never hold more
//! than their limits.

use super::H1Config;
use super::decode::{BodyDecoder, Decoded};
use super::framing::{self, Framing};
use super::head::HeadReader;
use bytes::BytesMut;
use proptest::prelude::*;

const SEEDS: &[&[u8]] = &[
    b"GET /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
];

fn small_config() -> H1Config {
    H1Config {
        max_header_bytes: 512,
        max_request_line: 128,
        max_headers: 8,
        max_trailer_bytes: 128,
        ..H1Config::default()
    }
}

/// A seed with random byte edits: flips, inserts of interesting bytes,
/// deletions.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<usize>(),
        0u8..3,
        prop::sample::select(&b"\r\n :;,0\t\x00\x7fzZ-9Ff"[..]),
    );
    (0..SEEDS.len(), prop::collection::vec(edit, 0..8)).prop_map(|(seed, edits)| {
        let mut v = SEEDS[seed].to_vec();
        for (at, op, b) in edits {
            let i = at % (v.len() + 1);
            match op {
                0 if i < v.len() => v[i] = b,
                1 => v.insert(i, b),
                _ if i < v.len() => {
                    v.remove(i);
                }
                _ => {}
            }
        }
        v
    })
}

fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![mutated(), prop::collection::vec(any::<u8>(), 0..700)]
}

/// Feed `input` in `step`-byte reads through head parsing and, when a
/// request comes out, its body decoder.
fn drive_request(input: &[u8], step: usize) {
    let config = small_config();
    let mut buf = BytesMut::new();
    let mut reader = HeadReader::default();
    let mut chunks = input.chunks(step.max(1));
    let req = loop {
        match reader.parse_request(&mut buf, &config) {
            Ok(Some(req)) => break req,
            Err(_) => return,
            Ok(None) => {}
        }
        // Never holds more than one read past the head limit.
        assert!(buf.len() <= config.max_header_bytes + step);
        match chunks.next() {
            Some(c) => buf.extend_from_slice(c),
            None => return,
        }
    };
    let Ok(framing) = framing::request_framing(&req) else {
        return;
    };
    drive_body(framing, &mut buf, chunks, config.max_trailer_bytes, step);
}

fn drive_body<'a>(
    framing: Framing,
    buf: &mut BytesMut,
    mut chunks: impl Iterator<Item = &'a [u8]>,
    max_trailer: usize,
    step: usize,
) {
    let mut decoder = BodyDecoder::new(framing, max_trailer);
    // Every step consumes bytes or asks for more, so this bound is never
    // reached unless the decoder spins.
    for _ in 0..100_000 {
        match decoder.decode(buf) {
            Ok(Decoded::Data(d)) => assert!(!d.is_empty()),
            Ok(Decoded::Done) | Err(_) => return,
            Ok(Decoded::NeedMore) => {
                assert!(buf.len() <= max_trailer + step);
                match chunks.next() {
                    Some(c) => buf.extend_from_slice(c),
                    None => {
                        let _ = decoder.on_eof();
                        return;
                    }
                }
            }
        }
    }
    panic!("decoder did not make progress");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn request_parsing_never_panics(input in inputs(), step in 1usize..64) {
        drive_request(&input, step);
    }

    #[test]
    fn response_parsing_never_panics(input in inputs(), step in 1usize..64) {
        let mut buf = BytesMut::new();
        let mut reader = HeadReader::default();
        let config = small_config();
        for c in input.chunks(step) {
            buf.extend_from_slice(c);
            match reader.parse_response(&mut buf, &config) {
                Ok(Some(resp)) => {
                    let _ = framing::response_framing(&http::Method::GET, &resp);
                    break;
                }
                Ok(None) => prop_assert!(buf.len() <= config.max_header_bytes + step),
                Err(_) => break,
            }
        }
    }

    #[test]
    fn chunked_decoding_never_panics(input in inputs(), step in 1usize..64) {
        let mut buf = BytesMut::new();
        drive_body(Framing::Chunked, &mut buf, input.chunks(step), 128, step);
    }

    /// Valid chunked bodies decode to exactly their data, however split.
    #[test]
    fn chunked_round_trip(
        pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..10),
        step in 1usize..50,
    ) {
        let mut wire = BytesMut::new();
        let mut enc = super::encode::BodyEncoder::new(Framing::Chunked);
        for p in &pieces {
            enc.encode(p, &mut wire).unwrap();
        }
        enc.finish(None, &mut wire).unwrap();
        wire.extend_from_slice(b"NEXT");
        let mut decoder = BodyDecoder::new(Framing::Chunked, 64);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut chunks = wire.chunks(step);
        loop {
            match decoder.decode(&mut buf).unwrap() {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::Done => break,
                Decoded::NeedMore => buf.extend_from_slice(chunks.next().unwrap()),
            }
        }
        prop_assert_eq!(out, pieces.concat());
        let rest: Vec<u8> = buf.iter().copied().chain(chunks.flatten().copied()).collect();
        prop_assert_eq!(rest, b"NEXT".to_vec());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Header serialisation: whatever names and values the API accepts
    /// serialise into a head that parses back to the same fields, in the
    /// same order and case; nothing can inject a line.
    #[test]
    fn serialised_heads_parse_back(
        fields in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 1..12), prop::collection::vec(any::<u8>(), 0..24)),
            0..12,
        ),
    ) {
        let mut req = crate::header::RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "h").unwrap();
        let mut accepted = vec![(b"Host".to_vec(), b"h".to_vec())];
        for (name, value) in fields {
            let name = String::from_utf8_lossy(&name).into_owned();
            let value = String::from_utf8_lossy(&value).into_owned();
            if req.append_header(&name, value.as_str()).is_ok() {
                accepted.push((name.into_bytes(), value.into_bytes()));
            }
        }
        let mut wire = BytesMut::new();
        req.write_h1(&mut wire);
        let parsed = super::parse_request_head(&mut wire, &H1Config::default()).unwrap().unwrap();
        prop_assert!(wire.is_empty());
        let got: Vec<(Vec<u8>, Vec<u8>)> = parsed
            .wire_headers()
            .map(|(n, v)| (n.to_vec(), v.as_bytes().to_vec()))
            .collect();
        // The parser trims whitespace around values (RFC 9112 §5.1).
        let want: Vec<(Vec<u8>, Vec<u8>)> = accepted
            .into_iter()
            .map(|(n, v)| {
                let v = String::from_utf8(v).unwrap();
                (n, v.trim_matches([' ', '\t']).as_bytes().to_vec())
            })
            .collect();
        prop_assert_eq!(got, want);
    }
}

/// A `Connection` value built from the tokens that matter to framing and
/// routing, in any case, with odd separators.
fn connection_value() -> impl Strategy<Value = String> {
    let token = prop::sample::select(
        &[
            "close",
            "keep-alive",
            "upgrade",
            "host",
            "content-length",
            "transfer-encoding",
            "te",
            "x-foo",
            "",
        ][..],
    );
    let cased = (token, any::<u64>()).prop_map(|(t, bits)| {
        t.chars()
            .enumerate()
            .map(|(i, c)| match bits >> (i % 64) & 1 {
                1 => c.to_ascii_uppercase(),
                _ => c,
            })
            .collect::<String>()
    });
    let sep = prop::sample::select(&[",", ", ", " ,", ",,", "\t,"][..]);
    prop::collection::vec((cased, sep), 1..6).prop_map(|parts| {
        let mut v = String::new();
        for (t, s) in parts {
            v.push_str(&t);
            v.push_str(s);
        }
        v.trim_matches([' ', '\t']).to_owned()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        crate::header::target::tests::proptest_cases(1024),
    ))]

    /// Whatever `Connection` says, the parsed head keeps Host,
    /// Content-Length and Transfer-Encoding, and the body framing is the
    /// one the length fields alone give.
    #[test]
    fn strict_connection_keeps_framing_and_host(
        conns in prop::collection::vec(connection_value(), 1..3),
        chunked in any::<bool>(),
        len in 0u64..100_000,
        http10 in any::<bool>(),
    ) {
        let version = if http10 { "1.0" } else { "1.1" };
        let length = if chunked && !http10 {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {len}")
        };
        let mut wire = format!("POST /p HTTP/{version}\r\nHost: h.test\r\n{length}\r\n");
        let plain = format!("{wire}\r\n");
        for c in &conns {
            wire.push_str(&format!("Connection: {c}\r\n"));
        }
        wire.push_str("\r\n");
        let config = H1Config::default();
        let parsed = super::parse_request_head(&mut BytesMut::from(wire.as_bytes()), &config);
        let req = parsed.unwrap().unwrap();
        let baseline = super::parse_request_head(&mut BytesMut::from(plain.as_bytes()), &config);
        let baseline = baseline.unwrap().unwrap();
        prop_assert_eq!(req.headers().get("host").unwrap(), "h.test");
        prop_assert_eq!(
            req.headers().get("content-length"),
            baseline.headers().get("content-length")
        );
        prop_assert_eq!(
            req.headers().get("transfer-encoding"),
            baseline.headers().get("transfer-encoding")
        );
        prop_assert_eq!(
            framing::request_framing(&req),
            framing::request_framing(&baseline)
        );
    }

    /// Any `HTTP/x.y` request line: 1.0 and 1.1 as sent, later 1.x as 1.1,
    /// any other major version refused with 505 (never 400, never served).
    #[test]
    fn strict_request_line_versions(major in 0u8..10, minor in 0u8..10, target_ok in any::<bool>()) {
        let target = if target_ok { "/" } else { "/a b" };
        let wire = format!("GET {target} HTTP/{major}.{minor}\r\nHost: h\r\n\r\n");
        let res = HeadReader::default().parse_request(&mut BytesMut::from(wire.as_bytes()), &H1Config::default());
        match (major, res) {
            (1, Ok(Some(req))) => {
                prop_assert!(target_ok);
                let want = if minor == 0 { http::Version::HTTP_10 } else { http::Version::HTTP_11 };
                prop_assert_eq!(req.version(), want);
            }
            (1, Err(e)) => prop_assert!(!target_ok && e.status() == 400),
            (_, Err(e)) => prop_assert_eq!(e.status(), 505),
            (_, other) => prop_assert!(false, "{other:?}"),
        }
    }
}
