use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn pair() -> (ClientSession, DuplexStream) {
    let (client, server) = tokio::io::duplex(1 << 16);
    (
        ClientSession::new(Box::new(client), H1Config::default()),
        server,
    )
}

fn get() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
    req.insert_header("Host", "up").unwrap();
    req
}

async fn read_avail(s: &mut DuplexStream) -> String {
    let mut buf = vec![0; 4096];
    let n = s.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn body(c: &mut ClientSession) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = c.read_body_bytes().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

#[tokio::test]
async fn get_with_length_is_reusable() {
    let (mut c, mut up) = pair();
    c.write_request_header(get()).await.unwrap();
    c.finish_body(None).await.unwrap();
    assert_eq!(
        read_avail(&mut up).await,
        "GET /x HTTP/1.1\r\nHost: up\r\n\r\n"
    );
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .await
        .unwrap();
    assert_eq!(c.read_final_response_header().await.unwrap().status(), 200);
    assert_eq!(body(&mut c).await.unwrap(), b"ok");
    assert!(c.reuse().is_some());
}

#[tokio::test]
async fn chunked_request_and_response_with_trailers() {
    let (mut c, mut up) = pair();
    let mut req = get();
    req.set_method(Method::POST);
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    req.insert_header("Content-Length", "99").unwrap();
    c.write_request_header(req).await.unwrap();
    c.write_body(b"abc").await.unwrap();
    c.finish_body(None).await.unwrap();
    assert_eq!(
        read_avail(&mut up).await,
        "POST /x HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
    up.write_all(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
    )
    .await
    .unwrap();
    c.read_final_response_header().await.unwrap();
    assert_eq!(body(&mut c).await.unwrap(), b"ok");
    assert_eq!(c.trailers().unwrap().get("x-t").unwrap(), "1");
    assert!(c.is_reusable());
}

#[tokio::test]
async fn interim_responses() {
    let (mut c, mut up) = pair();
    let mut req = get();
    req.insert_header("Expect", "100-continue").unwrap();
    req.insert_header("Content-Length", "2").unwrap();
    c.write_request_header(req).await.unwrap();
    up.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(c.read_response_header().await.unwrap().status(), 100);
    c.write_body(b"hi").await.unwrap();
    c.finish_body(None).await.unwrap();
    up.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(c.read_final_response_header().await.unwrap().status(), 200);
    assert!(body(&mut c).await.unwrap().is_empty());
    assert!(c.is_reusable());
}

#[tokio::test]
async fn hostile_upstreams_are_upstream_errors() {
    for resp in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ] {
        let (mut c, mut up) = pair();
        c.write_request_header(get()).await.unwrap();
        up.write_all(resp).await.unwrap();
        let e = c.read_final_response_header().await.unwrap_err();
        assert_eq!(e.esource(), &pingora_error::ErrorSource::Upstream, "{e}");
        assert!(!c.is_reusable());
    }
}

#[tokio::test]
async fn bad_chunk_and_early_close_are_upstream_errors() {
    for (resp, etype) in [
        (
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            ErrorType::H1Error,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            ErrorType::ConnectionClosed,
        ),
    ] {
        let (mut c, mut up) = pair();
        c.write_request_header(get()).await.unwrap();
        up.write_all(resp).await.unwrap();
        up.shutdown().await.unwrap();
        c.read_final_response_header().await.unwrap();
        let e = body(&mut c).await.unwrap_err();
        assert_eq!(e.etype(), &etype);
        assert_eq!(e.esource(), &pingora_error::ErrorSource::Upstream);
        assert!(c.reuse().is_none());
    }
}

#[tokio::test]
async fn closed_pooled_connection_is_retryable_if_reused() {
    let (mut c, mut up) = pair();
    c.write_request_header(get()).await.unwrap();
    up.shutdown().await.unwrap();
    let mut e = c.read_final_response_header().await.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::ConnectionClosed);
    e.decide_reuse(true);
    assert!(e.retry());
}

#[tokio::test]
async fn close_delimited_and_head() {
    let (mut c, mut up) = pair();
    c.write_request_header(get()).await.unwrap();
    up.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil close")
        .await
        .unwrap();
    up.shutdown().await.unwrap();
    c.read_final_response_header().await.unwrap();
    assert_eq!(body(&mut c).await.unwrap(), b"until close");
    assert!(!c.is_reusable());

    let (mut c, mut up) = pair();
    let mut req = get();
    req.set_method(Method::HEAD);
    c.write_request_header(req).await.unwrap();
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    c.read_final_response_header().await.unwrap();
    assert!(body(&mut c).await.unwrap().is_empty());
    assert!(c.is_reusable());
}

#[tokio::test]
async fn extra_bytes_after_response_prevent_reuse() {
    let (mut c, mut up) = pair();
    c.write_request_header(get()).await.unwrap();
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n")
        .await
        .unwrap();
    c.read_final_response_header().await.unwrap();
    assert_eq!(body(&mut c).await.unwrap(), b"a");
    assert!(!c.is_reusable());
}

#[tokio::test]
async fn misuse_is_an_error() {
    let (mut c, _up) = pair();
    assert!(c.write_body(b"x").await.is_err());
    assert!(c.read_body_bytes().await.is_err());
    c.write_request_header(get()).await.unwrap();
    assert!(c.write_request_header(get()).await.is_err());
    assert!(c.write_body(b"no body declared").await.is_err());
}

#[tokio::test]
async fn request_without_host_keeps_its_framing() {
    let (mut c, mut up) = pair();
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.set_version(Version::HTTP_10);
    req.insert_header("Content-Length", "2").unwrap();
    c.write_request_header(req).await.unwrap();
    c.write_body(b"hi").await.unwrap();
    assert!(c.write_body(b"!").await.is_err());
    c.finish_body(None).await.unwrap();
    assert_eq!(
        read_avail(&mut up).await,
        "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"
    );
}

#[tokio::test]
async fn upgrade_only_when_asked() {
    let (mut c, mut up) = pair();
    c.write_request_header(get()).await.unwrap();
    up.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
        .await
        .unwrap();
    let e = c.read_final_response_header().await.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::H1Error);

    let (mut c, mut up) = pair();
    let mut req = get();
    req.insert_header("Upgrade", "websocket").unwrap();
    req.insert_header("Connection", "Upgrade").unwrap();
    c.write_request_header(req).await.unwrap();
    up.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nraw from up")
        .await
        .unwrap();
    assert_eq!(c.read_final_response_header().await.unwrap().status(), 101);
    assert!(c.is_upgraded());
    assert_eq!(
        &c.read_body_bytes().await.unwrap().unwrap()[..],
        b"raw from up"
    );
    let _ = read_avail(&mut up).await;
    c.write_body(b"raw to up").await.unwrap();
    assert_eq!(read_avail(&mut up).await, "raw to up");
    assert!(c.reuse().is_none());
}
