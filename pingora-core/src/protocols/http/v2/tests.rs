//! Timeout behaviour of the HTTP/2 sessions over in-memory pipes, on
//! virtual time: nothing here waits for a real clock.

use super::{H2Options, ServerConnection, ServerSession};
use crate::header::ResponseHeader;
use bytes::Bytes;
use pingora_error::ErrorType;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A server on one end of a pipe, handing its sessions to the test, and
/// the client end. The server's last `accept` result is sent at the end.
fn serve(
    options: H2Options,
) -> (
    DuplexStream,
    mpsc::UnboundedReceiver<ServerSession>,
    tokio::sync::oneshot::Receiver<Option<ErrorType>>,
) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (tx, rx) = mpsc::unbounded_channel();
    let (done_tx, done) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut conn = ServerConnection::handshake(Box::new(server), &options)
            .await
            .unwrap();
        let end = loop {
            match conn.accept().await {
                Some(Ok(session)) => {
                    let _ = tx.send(session);
                }
                Some(Err(e)) => break Some(*e.etype()),
                None => break None,
            }
        };
        let _ = done_tx.send(end);
    });
    (client, rx, done)
}

async fn client(io: DuplexStream, window: u32) -> h2::client::SendRequest<Bytes> {
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(window)
        .handshake(io)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn request() -> http::Request<()> {
    http::Request::post("http://t/").body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let (io, _sessions, done) = serve(H2Options::default());
    let _client = client(io, 65_535).await;
    let start = Instant::now();
    assert_eq!(done.await.unwrap(), None);
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_secs(60) && idle < Duration::from_secs(62),
        "{idle:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_answer_pings_is_dropped() {
    let (mut io, _sessions, done) = serve(H2Options::default());
    // Speak the preface, then never read again: PINGs go unanswered.
    tokio::io::AsyncWriteExt::write_all(
        &mut io,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    )
    .await
    .unwrap();
    let start = Instant::now();
    assert_eq!(done.await.unwrap(), Some(ErrorType::ReadTimedout));
    let took = start.elapsed();
    // Interval (30 s) plus timeout (10 s).
    assert!(
        took >= Duration::from_secs(40) && took < Duration::from_secs(42),
        "{took:?}"
    );
    drop(io);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_comes_times_out() {
    let (io, mut sessions, _done) = serve(H2Options::default());
    let mut send = client(io, 65_535).await;
    let (_resp, _body) = send.send_request(request(), false).unwrap();
    let mut session = sessions.recv().await.unwrap();
    let start = Instant::now();
    let err = session.read_body_bytes().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout);
    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_gives_no_window_times_the_write_out() {
    let (io, mut sessions, _done) = serve(H2Options::default());
    // A zero window: not a byte of body may be sent until it grows.
    let mut send = client(io, 0).await;
    let (_resp, _body) = send.send_request(request(), true).unwrap();
    let mut session = sessions.recv().await.unwrap();
    let resp = ResponseHeader::build(200, None).unwrap();
    session.write_response_header(resp).await.unwrap();
    let start = Instant::now();
    let err = session.write_body(&[1u8; 1000]).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::WriteTimedout);
    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn an_open_stream_keeps_an_idle_connection_until_it_ends() {
    let (io, mut sessions, done) = serve(H2Options::default());
    let mut send = client(io, 65_535).await;
    let (resp, _) = send.send_request(request(), true).unwrap();
    let mut session = sessions.recv().await.unwrap();
    // Well past the idle timeout, the stream is still being served.
    tokio::time::sleep(Duration::from_secs(90)).await;
    let head = ResponseHeader::build(204, None).unwrap();
    session.write_response_header(head).await.unwrap();
    session.finish_response(None).await.unwrap();
    assert_eq!(resp.await.unwrap().status(), 204);
    let end = Instant::now();
    // Then the idle timeout closes the connection.
    assert_eq!(done.await.unwrap(), None);
    assert!(
        end.elapsed() <= Duration::from_secs(61),
        "{:?}",
        end.elapsed()
    );
}

/// A response that ends with its head is one HEADERS frame carrying
/// END_STREAM (a gRPC "trailers-only" answer); one whose head is flushed
/// first leaves the stream open for body.
#[tokio::test(start_paused = true)]
async fn a_head_only_response_ends_the_stream_on_its_headers() {
    let (io, mut sessions, _done) = serve(H2Options::default());
    let mut send = client(io, 65_535).await;
    let (resp, _) = send.send_request(request(), true).unwrap();
    let mut session = sessions.recv().await.unwrap();
    let mut head = ResponseHeader::build(200, None).unwrap();
    head.insert_header("grpc-status", "12").unwrap();
    session.write_response_header(head).await.unwrap();
    // An empty piece of body sends nothing.
    session.write_body(b"").await.unwrap();
    session.finish_response(None).await.unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.headers()["grpc-status"], "12");
    assert!(resp.body().is_end_stream());

    let (resp, _) = send.send_request(request(), true).unwrap();
    let mut session = sessions.recv().await.unwrap();
    let head = ResponseHeader::build(200, None).unwrap();
    session.write_response_header(head).await.unwrap();
    session.flush().unwrap();
    let resp = resp.await.unwrap();
    assert!(!resp.body().is_end_stream());
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    session.finish_response(Some(&trailers)).await.unwrap();
    let mut body = resp.into_body();
    assert!(body.data().await.is_none());
    assert_eq!(body.trailers().await.unwrap().unwrap()["grpc-status"], "0");
}

/// A response to a request still being sent waits `request_end_wait`
/// at most for the rest (a client that never ends its request gets its
/// response that much later); one to a client waiting for 100 before it
/// sends its body does not wait at all.
#[tokio::test(start_paused = true)]
async fn ending_a_response_waits_a_little_for_the_request_end() {
    let (io, mut sessions, _done) = serve(H2Options::default());
    let mut send = client(io, 65_535).await;
    let (resp, _body) = send.send_request(request(), false).unwrap();
    let mut session = sessions.recv().await.unwrap();
    let start = Instant::now();
    session
        .write_response_header(ResponseHeader::build(200, None).unwrap())
        .await
        .unwrap();
    session.finish_response(None).await.unwrap();
    assert_eq!(start.elapsed(), H2Options::default().request_end_wait);
    assert!(resp.await.unwrap().body().is_end_stream());

    let mut expecting = request();
    expecting
        .headers_mut()
        .insert("expect", "100-continue".parse().unwrap());
    let (resp, _body) = send.send_request(expecting, false).unwrap();
    let mut session = sessions.recv().await.unwrap();
    let start = Instant::now();
    session
        .write_response_header(ResponseHeader::build(417, None).unwrap())
        .await
        .unwrap();
    session.finish_response(None).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(resp.await.unwrap().status(), 417);
}

/// A small seeded generator, so failures replay.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

/// Random frames with plausible headers: every kind, random flags and
/// stream ids, short random payloads.
fn random_frames(rng: &mut Lcg) -> Vec<u8> {
    // The preface and an empty SETTINGS frame, so that what follows is
    // read as frames rather than refused at the door.
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
    for _ in 0..(rng.next() % 40) {
        let len = (rng.next() % 64) as usize;
        let kind = (rng.next() % 11) as u8;
        let flags = rng.next() as u8;
        let stream = rng.next() % 8;
        out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend((0..len).map(|_| rng.next() as u8));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn random_frames_never_panic_or_hang_the_server() {
    let mut rng = Lcg(0x5eed);
    let mut errors = 0;
    for case in 0..200 {
        let (mut io, mut sessions, done) = serve(H2Options::default());
        let bytes = random_frames(&mut rng);
        // The server may stop reading at any point; do not block on it.
        let writer = tokio::spawn(async move {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut io, &bytes).await;
            // Keep the pipe open: the server must end the connection on
            // its own, by error or timeout.
            tokio::time::sleep(Duration::from_secs(300)).await;
        });
        // Answer whatever streams open, reading their bodies.
        let answer = tokio::spawn(async move {
            while let Some(mut s) = sessions.recv().await {
                tokio::spawn(async move {
                    while let Ok(Some(_)) = s.read_body_bytes().await {}
                    let _ = s.respond_error(400).await;
                });
            }
        });
        let t0 = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(200), done).await;
        match ended {
            Ok(Ok(end)) => errors += usize::from(end.is_some()),
            _ => panic!("case {case}: server hung or panicked"),
        }
        assert!(t0.elapsed() <= Duration::from_secs(120), "case {case}");
        writer.abort();
        answer.abort();
    }
    // Most random inputs break the protocol and end in an error; the rest
    // end by the idle timeout.
    assert!(errors > 100, "{errors} of 200 ended in an error");
}

#[tokio::test(start_paused = true)]
async fn a_client_connection_closes_after_its_idle_timeout() {
    use super::ClientConnection;
    let (io, mut sessions, done) = serve(H2Options::default());
    let options = H2Options {
        idle_timeout: Duration::from_secs(20),
        ..H2Options::default()
    };
    let conn = ClientConnection::handshake(Box::new(io), &options, false, "t")
        .await
        .unwrap();
    let mut session = conn.new_session().await.unwrap();
    let req = crate::header::RequestHeader::build("GET", b"/", None).unwrap();
    session.write_request_header(req, true).await.unwrap();
    let mut served = sessions.recv().await.unwrap();
    served.respond_error(204).await.unwrap();
    assert_eq!(session.read_response_header().await.unwrap().status(), 204);
    assert_eq!(conn.in_flight(), 1);
    // A stream in use keeps the connection, however long.
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert!(!conn.is_closed());
    drop(session);
    assert_eq!(conn.in_flight(), 0);
    let released = Instant::now();
    while !conn.is_closed() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        released.elapsed() <= Duration::from_secs(41),
        "{:?}",
        released.elapsed()
    );
    assert!(conn.new_session().await.is_err());
    // The server sees the connection go.
    assert!(done.await.is_ok());
}
