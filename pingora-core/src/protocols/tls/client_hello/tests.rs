use super::*;
use proptest::prelude::*;

/// A ClientHello handshake message with these extensions.
fn message(sni: Option<&str>, alpn: &[&[u8]], padding: usize) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let n = name.len() as u16;
        ext.extend_from_slice(&[0, 0]);
        ext.extend_from_slice(&(n + 5).to_be_bytes());
        ext.extend_from_slice(&(n + 3).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&n.to_be_bytes());
        ext.extend_from_slice(name.as_bytes());
    }
    if !alpn.is_empty() {
        let list: Vec<u8> = alpn
            .iter()
            .flat_map(|p| std::iter::once(p.len() as u8).chain(p.iter().copied()))
            .collect();
        ext.extend_from_slice(&[0, 16]);
        ext.extend_from_slice(&(list.len() as u16 + 2).to_be_bytes());
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
    }
    if padding > 0 {
        // The padding extension (RFC 7685), ignored.
        ext.extend_from_slice(&[0, 21]);
        ext.extend_from_slice(&(padding as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0, padding));
    }
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut msg = vec![CLIENT_HELLO];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    msg
}

/// `msg` in handshake records of at most `chunk` bytes each.
fn records(msg: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in msg.chunks(chunk) {
        out.extend_from_slice(&[HANDSHAKE_RECORD, 3, 1]);
        out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out
}

fn complete(buf: &[u8]) -> ClientHello {
    match parse_client_hello(buf) {
        Ok(ParsedHello::Complete(hello)) => hello,
        other => panic!("not complete: {other:?}"),
    }
}

#[test]
fn server_name_and_alpn() {
    let buf = records(&message(Some("a.example"), &[b"h2", b"http/1.1"], 0), 16384);
    let hello = complete(&buf);
    assert_eq!(hello.server_name.as_deref(), Some("a.example"));
    assert_eq!(hello.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(hello.offers_alpn(b"h2") && !hello.offers_alpn(b"h3"));
    assert_eq!(hello.legacy_version, 0x0303);
    assert_eq!(hello.record_len, buf.len());
}

#[test]
fn no_extensions_at_all() {
    let hello = complete(&records(&message(None, &[], 0), 16384));
    assert_eq!(hello.server_name, None);
    assert!(hello.alpn.is_empty());
}

#[test]
fn every_prefix_is_incomplete_and_records_may_split_the_message() {
    let msg = message(Some("split.example"), &[b"h2"], 300);
    for chunk in [1, 3, 4, 5, 100, 16384] {
        let mut buf = records(&msg, chunk);
        for end in 0..buf.len() {
            assert_eq!(
                parse_client_hello(&buf[..end]),
                Ok(ParsedHello::Incomplete),
                "chunk {chunk}, {end} bytes"
            );
        }
        let hello = complete(&buf);
        assert_eq!(hello.server_name.as_deref(), Some("split.example"));
        // Bytes after the hello (early data, say) are not its business.
        buf.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
        assert_eq!(complete(&buf).record_len, buf.len() - 6);
    }
}

#[test]
fn clear_errors() {
    use ClientHelloError::*;
    let err = |b: &[u8]| parse_client_hello(b).unwrap_err();
    assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), NotTls);
    assert_eq!(err(b"G"), NotTls);
    assert_eq!(err(&[22, 9]), NotTls);
    assert_eq!(err(&[21, 3, 1, 0, 2, 2, 0]), NotTls);
    assert_eq!(err(&[22, 3, 1, 0, 0]), Malformed("empty handshake record"));
    assert_eq!(err(&[22, 3, 1, 0x40, 1]), TooLarge);
    // A ServerHello where a ClientHello belongs.
    assert_eq!(err(&[22, 3, 3, 0, 4, 2, 0, 0, 0]), UnexpectedMessage);
    // An alert between the records of a split hello.
    let msg = message(Some("a"), &[], 0);
    let mut buf = records(&msg[..10], 10);
    buf.extend_from_slice(&[21, 3, 3, 0, 2, 2, 40]);
    assert_eq!(err(&buf), UnexpectedMessage);
    // A message claiming more than the limit.
    assert_eq!(err(&records(&[1, 0, 0x40, 0], 4)), TooLarge);
    let too_big = message(Some("a"), &[], MAX_CLIENT_HELLO_LEN);
    assert_eq!(err(&records(&too_big, 16384)), TooLarge);
    // Lengths that do not add up inside the message.
    let mut bad = message(Some("a.example"), &[], 0);
    let n = bad.len();
    bad[n - 10] = 0xff;
    assert!(matches!(err(&records(&bad, 16384)), Malformed(_)));
    assert!(matches!(
        err(&records(&message(Some("a/b"), &[], 0), 16384)),
        Malformed("server name")
    ));
    assert!(matches!(
        err(&records(&message(None, &[b""], 0), 16384)),
        Malformed(_)
    ));
    for e in [NotTls, UnexpectedMessage, TooLarge, Malformed("x")] {
        let text = e.to_string();
        assert!(!text.is_empty() && !text.ends_with('.'), "{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random bytes never panic, and a prefix of a valid hello never errs.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_client_hello(&bytes);
        let mut tls = vec![22, 3, 1];
        tls.extend_from_slice(&bytes);
        let _ = parse_client_hello(&tls);
    }

    /// A valid hello with bytes flipped, cut or split anywhere never
    /// panics; unmodified, whatever the record size, it parses the same.
    #[test]
    fn mutated_hellos_never_panic(
        name in "[a-z0-9.-]{1,40}",
        chunk in 1usize..400,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in any::<usize>(),
    ) {
        let msg = message(Some(&name), &[b"h2"], 20);
        let good = records(&msg, chunk);
        let hello = complete(&good);
        prop_assert_eq!(hello.server_name.as_deref(), Some(name.as_str()));
        let mut bad = good.clone();
        for (at, byte) in flips {
            let i = at % bad.len();
            bad[i] = byte;
        }
        bad.truncate(cut % (bad.len() + 1));
        let _ = parse_client_hello(&bad);
    }
}

/// A ClientHello as our own TLS connector sends it, read off a loopback
/// socket.
#[cfg(feature = "rustls")]
#[tokio::test]
async fn the_connectors_own_client_hello() {
    use crate::connectors::{ConnectorOptions, TransportConnector};
    use crate::upstreams::BasicPeer;
    use tokio::io::AsyncReadExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connector = TransportConnector::new(ConnectorOptions::default()).unwrap();
    let mut peer = BasicPeer::new(addr).with_tls("backend.example");
    peer.options.alpn = crate::tls::Alpn::H2H1;
    peer.options.total_connection_timeout = Some(std::time::Duration::from_secs(5));
    // The handshake never completes: the server reads and says nothing.
    let client = tokio::spawn(async move { connector.new_stream(&peer).await.map(|_| ()) });
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let hello = loop {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut chunk));
        let n = read.await.unwrap().unwrap();
        assert!(n > 0, "closed before a whole hello: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        if let ParsedHello::Complete(hello) = parse_client_hello(&buf).unwrap() {
            break hello;
        }
    };
    assert_eq!(hello.server_name.as_deref(), Some("backend.example"));
    assert_eq!(hello.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(hello.record_len, buf.len());
    drop(socket);
    client.abort();
}
