//! What a connection holds while it waits: no buffer when idle, a buffer
//! the size of what arrived when a head comes slowly.

use super::*;
use crate::protocols::http::v1::H1Config;
use crate::protocols::l4::L4Stream;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server connection on an accepted loopback socket, and its client.
async fn tcp_pair() -> (ServerConnection, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let stream: Stream = Box::new(L4Stream::from_tcp(accepted));
    (ServerConnection::new(stream, H1Config::default()), client)
}

/// Poll `fut` once.
async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Answer `ok` to the session's request and read the answer on `client`.
async fn answer(mut s: ServerSession, client: &mut TcpStream) -> ServerConnection {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", "2").unwrap();
    s.write_response_header(resp).await.unwrap();
    s.write_body(b"ok").await.unwrap();
    s.finish_response(None).await.unwrap();
    let conn = s.reuse().await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"ok") {
        let mut chunk = [0; 256];
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    conn
}

/// A kept-alive connection waiting for its next request holds neither a
/// read nor a write buffer, and allocates them again when the request
/// comes.
#[tokio::test]
async fn an_idle_connection_holds_no_buffer() {
    let (conn, mut client) = tcp_pair().await;
    // Before the first byte: nothing allocated yet.
    assert_eq!(conn.s.conn.buf.capacity(), 0);
    assert_eq!(conn.s.conn.wbuf.capacity(), 0);
    client
        .write_all(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let s = conn.read_request().await.unwrap().unwrap();
    let mut conn = answer(s, &mut client).await;

    {
        let wait = pin!(conn.wait_for_request());
        assert!(poll_once(wait).await.is_pending(), "nothing was sent");
    }
    assert_eq!(conn.s.conn.buf.capacity(), 0, "read buffer kept while idle");
    assert_eq!(
        conn.s.conn.wbuf.capacity(),
        0,
        "write buffer kept while idle"
    );

    client
        .write_all(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let s = conn.read_request().await.unwrap().unwrap();
    assert_eq!(s.req_header().uri().path(), "/2");
    answer(s, &mut client).await;
}

/// Half a head waits in a buffer cut to its size, not in a read-sized
/// one, and nothing of it is lost when the rest comes.
#[tokio::test]
async fn a_partial_head_waits_in_a_buffer_of_its_size() {
    let (mut conn, mut client) = tcp_pair().await;
    let half = b"GET /slow HTTP/1.1\r\nHost: a\r\nUser-Ag";
    client.write_all(half).await.unwrap();
    assert!(conn.wait_for_request().await.unwrap());
    {
        let head = pin!(conn.read_head());
        assert!(poll_once(head).await.is_pending(), "the head is incomplete");
    }
    assert_eq!(conn.s.conn.buf.len(), half.len());
    assert!(
        conn.s.conn.buf.capacity() < 2 * half.len(),
        "{} bytes of room for {} bytes",
        conn.s.conn.buf.capacity(),
        half.len()
    );
    assert_eq!(conn.s.conn.wbuf.capacity(), 0);

    client.write_all(b"ent: slow\r\n\r\n").await.unwrap();
    let s = conn.read_request().await.unwrap().unwrap();
    assert_eq!(s.req_header().uri().path(), "/slow");
    let agent = s.req_header().headers().get("user-agent").unwrap();
    assert_eq!(agent.as_bytes(), b"slow");
    answer(s, &mut client).await;
}

/// What a connection waiting for a request keeps (its `read_request`
/// future) stays small: the head's parsing, a refusal's write and linger
/// and the request head itself are not part of it while it waits. Debug
/// builds lay futures out more loosely than release ones; the budget is
/// the debug size with a margin.
#[tokio::test]
async fn a_connection_waiting_for_a_request_keeps_a_small_future() {
    const BUDGET: usize = 256;
    let (conn, _client) = tcp_pair().await;
    let waiting = conn.read_request();
    let size = size_of_val(&waiting);
    assert!(size <= BUDGET, "{size} bytes per waiting connection");
}
