use super::*;

type Outcome = (Vec<u8>, Vec<u8>, Option<HeaderMap>);

/// Decode all of `input` fed `step` bytes at a time; returns the body, the
/// bytes left after it, and the trailers.
fn run(framing: Framing, input: &[u8], step: usize) -> Result<Outcome, DecodeError> {
    let mut d = BodyDecoder::new(framing, 1024);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match d.decode(&mut buf)? {
            Decoded::Data(b) => body.extend_from_slice(&b),
            Decoded::Done => return Ok((body, buf.to_vec(), d.take_trailers())),
            Decoded::NeedMore if fed < input.len() => {
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
            Decoded::NeedMore => {
                d.on_eof()?;
            }
        }
    }
}

#[test]
fn chunked_any_split() {
    let input = b"5\r\nhello\r\n6;ext=\"x y\";b\r\n world\r\nA\r\n0123456789\r\n0\r\n\r\nGET /next";
    for step in 1..input.len() {
        let (body, rest, trailers) = run(Framing::Chunked, input, step).unwrap();
        assert_eq!(body, b"hello world0123456789");
        assert!(trailers.is_none());
        // bytes after the body are left for the next request, whole
        let mut expect = b"GET /next".to_vec();
        expect.truncate(rest.len());
        assert_eq!(rest, expect, "step {step}");
    }
}

#[test]
fn chunked_trailers() {
    let input = b"3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nX-T: a\r\n\r\n";
    for step in [1, 2, 7, input.len()] {
        let (body, rest, trailers) = run(Framing::Chunked, input, step).unwrap();
        assert_eq!(body, b"abc");
        assert!(rest.is_empty());
        let t = trailers.unwrap();
        assert_eq!(t.get("grpc-status").unwrap(), "0");
        assert_eq!(t.get("x-t").unwrap(), "a");
    }
}

#[test]
fn chunked_rejects() {
    for bad in [
        &b"\r\n"[..],                // empty size
        b"x\r\n",                    // not hex
        b"-1\r\n",                   // sign
        b"0x5\r\n",                  // prefix
        b" 5\r\n",                   // leading space
        b"5 \r\nhello\r\n0\r\n\r\n", // trailing space without extension
        b"5\nhello\r\n0\r\n\r\n",    // bare LF
        b"5\rxhello",                // CR not followed by LF
        b"5\r\nhelloX\r\n",          // data longer than size
        b"5\r\nhello\n0\r\n\r\n",
        b"10000000000000000\r\n",   // 17 hex digits: overflow
        b"5;a\x00b\r\n",            // control byte in extension
        b"0\r\n\n",                 // bare LF ends body
        b"0\r\nX: a\r\n b\r\n\r\n", // obs-fold in trailers
        b"0\r\nBad Name: a\r\n\r\n",
    ] {
        let res = run(Framing::Chunked, bad, bad.len());
        assert!(
            res.is_err(),
            "{:?} -> {res:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn chunked_limits() {
    // extension bytes are capped over the body
    let mut input = Vec::new();
    for _ in 0..100 {
        input.extend_from_slice(b"1;");
        input.extend_from_slice(&[b'e'; 1000]);
        input.extend_from_slice(b"\r\na\r\n");
    }
    assert_eq!(
        run(Framing::Chunked, &input, 4096),
        Err(DecodeError::Chunk("chunk extensions too long"))
    );
    // trailers are capped at max_trailer_bytes (1024 here), complete or not
    let mut input = b"0\r\nX: ".to_vec();
    input.extend_from_slice(&[b'v'; 2000]);
    assert!(matches!(
        run(Framing::Chunked, &input, 100),
        Err(DecodeError::Trailers(_))
    ));
    input.extend_from_slice(b"\r\n\r\n");
    assert!(matches!(
        run(Framing::Chunked, &input, 5000),
        Err(DecodeError::Trailers(_))
    ));
    // max size is fine: 16 digits
    let mut d = BodyDecoder::new(Framing::Chunked, 10);
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(Decoded::Data(Bytes::from_static(b"ab")))
    );
    assert_eq!(d.decode(&mut buf), Ok(Decoded::NeedMore));
    assert_eq!(d.on_eof(), Err(DecodeError::Incomplete));
}

#[test]
fn length_and_close() {
    let (body, rest, _) = run(Framing::Length(5), b"helloGET", 3).unwrap();
    assert_eq!(
        (body.as_slice(), rest.as_slice()),
        (&b"hello"[..], &b"G"[..])
    );
    assert_eq!(
        run(Framing::Length(5), b"hel", 3),
        Err(DecodeError::Incomplete)
    );
    let (body, rest, _) = run(Framing::Empty, b"next", 4).unwrap();
    assert!(body.is_empty() && rest.is_empty());
    let (body, _, _) = run(Framing::UntilClose, b"all of it", 2).unwrap();
    assert_eq!(body, b"all of it");
}

#[test]
fn chunked_body_limit_counts_decoded_bytes() {
    // 3 + 4 = 7 data bytes: fine at a limit of 7, refused at 6 as soon as
    // the second size line is in, before its data.
    let wire = b"3;ext=long-extension\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
    let mut dec = BodyDecoder::new(Framing::Chunked, 64).with_body_limit(Some(7));
    let mut buf = BytesMut::from(&wire[..]);
    let mut got = Vec::new();
    loop {
        match dec.decode(&mut buf).unwrap() {
            Decoded::Data(d) => got.extend_from_slice(&d),
            Decoded::Done => break,
            Decoded::NeedMore => panic!("whole body given"),
        }
    }
    assert_eq!(got, b"abcdefg");
    let mut dec = BodyDecoder::new(Framing::Chunked, 64).with_body_limit(Some(6));
    let mut buf = BytesMut::from(&b"3\r\nabc\r\n4\r\n"[..]);
    assert_eq!(
        dec.decode(&mut buf),
        Ok(Decoded::Data(Bytes::from_static(b"abc")))
    );
    assert_eq!(dec.decode(&mut buf), Err(DecodeError::TooLarge));
    // A huge announced chunk is refused without waiting for its data.
    let mut dec = BodyDecoder::new(Framing::Chunked, 64).with_body_limit(Some(1 << 20));
    let mut buf = BytesMut::from(&b"fffffff\r\n"[..]);
    assert_eq!(dec.decode(&mut buf), Err(DecodeError::TooLarge));
    // No limit: the same size line is fine.
    let mut dec = BodyDecoder::new(Framing::Chunked, 64).with_body_limit(None);
    let mut buf = BytesMut::from(&b"fffffff\r\n"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(Decoded::NeedMore));
}
