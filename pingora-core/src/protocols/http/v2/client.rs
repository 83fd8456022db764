//! The upstream side: one HTTP/2 connection, many concurrent exchanges.
//!
//! A [`ClientConnection`] is driven by its own task. Each
//! [`ClientConnection::new_session`] opens one stream as a
//! [`ClientSession`]; the connection counts them so a pool can tell when
//! it is full (the server's SETTINGS_MAX_CONCURRENT_STREAMS, RFC 9113
//! §5.1.2). A dead connection (closed, broken, or a keep-alive PING not
//! answered in time) reports [`ClientConnection::is_closed`] and must not
//! be reused.

use super::H2Options;
use super::body::{h2_error, recv_data, recv_trailers, send_data, send_end};
use super::convert::{request_to_h2, response_from_h2};
use super::guard::{MeteredIo, Tripwire, Watch};
use super::meter::FrameMeter;
use crate::header::{RequestHeader, ResponseHeader};
use crate::protocols::{Digest, Stream};
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::HeaderMap;
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// State shared by a connection, its driver task and its sessions.
#[derive(Debug)]
struct Shared {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    /// When the last stream ended, for the idle timeout.
    last_used: parking_lot::Mutex<Instant>,
}

impl Shared {
    fn new() -> Self {
        Self {
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_used: parking_lot::Mutex::new(Instant::now()),
        }
    }

    /// Whether no stream is open and none was for `idle`.
    fn idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.last_used.lock().elapsed() >= idle
    }
}

/// An HTTP/2 connection to an upstream.
///
/// # Examples
///
/// ```no_run
/// use pingora_core::header::RequestHeader;
/// use pingora_core::protocols::http::v2::{ClientConnection, H2Options};
///
/// # async fn run(stream: pingora_core::protocols::Stream) -> pingora_core::Result<()> {
/// let conn = ClientConnection::handshake(stream, &H2Options::default(), false, "origin:80").await?;
/// let mut session = conn.new_session().await?;
/// let req = RequestHeader::build("GET", b"/", None)?;
/// session.write_request_header(req, true).await?;
/// let status = session.read_response_header().await?.status();
/// while let Some(chunk) = session.read_body_bytes().await? {
///     println!("{status}: {} bytes", chunk.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClientConnection {
    send: SendRequest<Bytes>,
    shared: Arc<Shared>,
    tls: bool,
    authority: Arc<str>,
    digest: Option<Arc<Digest>>,
    options: H2Options,
}

impl ClientConnection {
    /// Send the connection preface and SETTINGS over `stream` (RFC 9113
    /// §3.4) and start the task that drives the connection. `tls` and
    /// `authority` give `:scheme` and the default `:authority` of requests
    /// without a `Host`.
    ///
    /// # Errors
    ///
    /// [`ErrorType::ConnectTimedout`] after the handshake timeout,
    /// [`ErrorType::H2Error`] when the handshake fails; both marked
    /// upstream.
    pub async fn handshake(
        stream: Stream,
        options: &H2Options,
        tls: bool,
        authority: &str,
    ) -> Result<Self> {
        let digest = stream.digest().cloned().map(Arc::new);
        let wire = Arc::new(Tripwire::default());
        let io = MeteredIo::new(stream, FrameMeter::for_client(options), wire.clone());
        let handshake = builder(options).handshake::<_, Bytes>(io);
        let (send, mut conn) = match pingora_timeout::timeout(options.handshake_timeout, handshake)
            .await
        {
            Err(_) => {
                return Err(Error::explain(ErrorType::ConnectTimedout, "h2 handshake").into_up());
            }
            Ok(Err(e)) => return Err(h2_error(e, "h2 handshake").into_up()),
            Ok(Ok(pair)) => pair,
        };
        let shared = Arc::new(Shared::new());
        let mut watch = Watch::new(wire);
        if let (Some(interval), Some(pings)) = (options.keepalive_interval, conn.ping_pong()) {
            watch.start_keepalive(pings, interval, options.keepalive_timeout);
        }
        tokio::spawn(drive(conn, watch, shared.clone(), options.idle_timeout));
        Ok(Self {
            send,
            shared,
            tls,
            authority: Arc::from(authority),
            digest,
            options: *options,
        })
    }

    /// Whether the connection is gone: closed by either side, broken, or
    /// found dead by a keep-alive PING.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Streams open on this connection now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// How many more streams the server lets us open now.
    pub fn spare_streams(&self) -> usize {
        self.send
            .current_max_send_streams()
            .saturating_sub(self.in_flight())
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_deref()
    }

    /// Open a new stream for one exchange, waiting (up to the handshake
    /// timeout) while the connection is at its stream limit.
    ///
    /// # Errors
    ///
    /// [`ErrorType::ConnectionClosed`] when the connection is gone or the
    /// server sent GOAWAY, [`ErrorType::WriteTimedout`] when no stream
    /// became free in time; both marked upstream.
    pub async fn new_session(&self) -> Result<ClientSession> {
        if self.is_closed() {
            return Err(
                Error::explain(ErrorType::ConnectionClosed, "h2 connection closed").into_up(),
            );
        }
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.shared.clone());
        let ready = self.send.clone().ready();
        let send = match pingora_timeout::timeout(self.options.handshake_timeout, ready).await {
            Err(_) => {
                return Err(Error::explain(ErrorType::WriteTimedout, "h2 stream slot").into_up());
            }
            Ok(Err(e)) => {
                let err = Error::because(ErrorType::ConnectionClosed, "h2 connection unusable", e);
                return Err(err.into_up());
            }
            Ok(Ok(send)) => send,
        };
        Ok(ClientSession {
            send: Some(send),
            tls: self.tls,
            authority: self.authority.clone(),
            out: None,
            upload_stopped: false,
            pending: None,
            resp: None,
            body: None,
            body_done: false,
            trailers: None,
            read_timeout: self.options.stream_read_timeout,
            write_timeout: self.options.stream_write_timeout,
            digest: self.digest.clone(),
            _slot: slot,
        })
    }
}

/// Drive the connection until it ends, a watcher trips, or it has had no
/// stream for `idle` (checked every `idle`, so it closes within twice
/// that); then mark it closed so no one picks it again.
async fn drive<C>(mut conn: C, watch: Watch, shared: Arc<Shared>, idle: Duration)
where
    C: Future<Output = Result<(), h2::Error>> + Unpin,
{
    let wire = watch.wire.clone();
    loop {
        tokio::select! {
            end = &mut conn => {
                if let Err(e) = end {
                    log::debug!("h2 upstream connection ended: {e}");
                }
                break;
            }
            why = wire.wait() => {
                log::debug!("h2 upstream connection dropped: {why:?}");
                break;
            }
            () = tokio::time::sleep(idle) => {
                if shared.idle_for(idle) {
                    break;
                }
            }
        }
    }
    shared.closed.store(true, Ordering::Release);
}

/// The `h2` client builder for `options`.
fn builder(options: &H2Options) -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(H2Options::window(options.initial_stream_window))
        .initial_connection_window_size(H2Options::window(options.initial_connection_window))
        .max_header_list_size(options.max_header_list_size)
        .max_frame_size(options.frame_size())
        .max_send_buffer_size(options.max_send_buffer as usize)
        .max_pending_accept_reset_streams(options.max_pending_accept_reset_streams as usize)
        .max_local_error_reset_streams(Some(options.max_local_error_reset_streams as usize))
        // We never accept server push (RFC 9113 §8.4).
        .enable_push(false);
    b
}

/// Gives a stream slot back to its connection when a session ends.
#[derive(Debug)]
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.last_used.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One exchange with an upstream on one HTTP/2 stream.
#[derive(Debug)]
pub struct ClientSession {
    send: Option<SendRequest<Bytes>>,
    tls: bool,
    authority: Arc<str>,
    out: Option<SendStream<Bytes>>,
    /// The server stopped taking the request body; the rest is dropped.
    upload_stopped: bool,
    pending: Option<ResponseFuture>,
    resp: Option<ResponseHeader>,
    body: Option<RecvStream>,
    body_done: bool,
    trailers: Option<HeaderMap>,
    read_timeout: Duration,
    write_timeout: Duration,
    digest: Option<Arc<Digest>>,
    _slot: Slot,
}

impl ClientSession {
    /// Use these timeouts for each read and each wait for window instead
    /// of the connection's defaults.
    pub fn set_timeouts(&mut self, read: Option<Duration>, write: Option<Duration>) {
        self.read_timeout = read.unwrap_or(self.read_timeout);
        self.write_timeout = write.unwrap_or(self.write_timeout);
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_deref()
    }

    /// Send the request head; `end` when the request has no body.
    /// Connection-specific fields are dropped and `Host` becomes
    /// `:authority` (RFC 9113 §8.2.2, §8.3.1).
    ///
    /// # Errors
    ///
    /// [`ErrorType::H2Error`] when a head was already sent or the stream
    /// cannot open, [`ErrorType::InvalidHTTPHeader`] for an unusable
    /// authority. Marked upstream.
    pub async fn write_request_header(&mut self, req: RequestHeader, end: bool) -> Result<()> {
        let Some(mut send) = self.send.take() else {
            return Err(Error::explain(ErrorType::H2Error, "request head already sent").into_up());
        };
        let head = request_to_h2(&req, self.tls, &self.authority)?;
        let (resp, out) = send
            .send_request(head, end)
            .map_err(|e| h2_error(e, "sending h2 request head").into_up())?;
        self.pending = Some(resp);
        self.out = (!end).then_some(out);
        Ok(())
    }

    /// Send a piece of the request body, waiting for the server's window.
    ///
    /// # Errors
    ///
    /// [`ErrorType::H2Error`] when no body is expected,
    /// [`ErrorType::WriteTimedout`] when the server's window stays shut.
    /// A server that stopped taking the body (closed or reset the stream)
    /// is not an error here: the upload ends and the response read reports
    /// the outcome. Marked upstream.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        if self.upload_stopped {
            return Ok(());
        }
        let Some(out) = &mut self.out else {
            return Err(Error::explain(ErrorType::H2Error, "no request body expected").into_up());
        };
        let sent = send_data(out, Bytes::copy_from_slice(data), self.write_timeout).await;
        self.body_refused(sent)
    }

    /// Settle a failed request-body write. RFC 9113 §8.1: a server may
    /// answer before the whole request arrived and then stop the upload
    /// with RST_STREAM(NO_ERROR), or close the stream with its complete
    /// response; the request body is then simply no longer wanted. Any
    /// write failure but a timeout therefore ends the upload quietly, and
    /// the response read that follows returns the answer, or the real
    /// reason the stream ended (with its retry hint).
    fn body_refused(&mut self, sent: Result<()>) -> Result<()> {
        match sent {
            Ok(()) => Ok(()),
            Err(e) if *e.etype() == ErrorType::WriteTimedout => Err(e.into_up()),
            Err(e) => {
                log::debug!("upstream stopped taking the request body: {e}");
                self.out = None;
                self.upload_stopped = true;
                Ok(())
            }
        }
    }

    /// End the request body, with `trailers` when given. A stream the
    /// server already closed or stopped is not an error here (see
    /// `write_body`); the response read reports what happened.
    ///
    /// # Errors
    ///
    /// None today; kept fallible for protocol errors. Marked upstream.
    pub async fn finish_body(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        match self.out.take() {
            Some(mut out) => {
                let sent = send_end(&mut out, trailers);
                self.body_refused(sent)
            }
            None => Ok(()),
        }
    }

    /// Wait for the final response head.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a later call goes on waiting for the same response.
    ///
    /// # Errors
    ///
    /// [`ErrorType::ReadTimedout`] after the read timeout,
    /// [`ErrorType::H2Error`] when the server reset the stream or sent
    /// nothing valid. Marked upstream.
    pub async fn read_response_header(&mut self) -> Result<&ResponseHeader> {
        if self.resp.is_none() {
            // Polled through `&mut` and cleared only once it resolves, so
            // a caller racing this read against another (the proxy reads
            // the request body meanwhile) loses nothing when cancelled.
            let Some(pending) = self.pending.as_mut() else {
                return Err(Error::explain(ErrorType::H2Error, "no request sent").into_up());
            };
            let resp = pingora_timeout::timeout(self.read_timeout, pending).await;
            self.pending = None;
            let resp = match resp {
                Err(_) => {
                    return Err(
                        Error::explain(ErrorType::ReadTimedout, "h2 response head").into_up()
                    );
                }
                Ok(Err(e)) => return Err(h2_error(e, "reading h2 response head").into_up()),
                Ok(Ok(resp)) => resp,
            };
            let (parts, body) = resp.into_parts();
            self.body_done = body.is_end_stream();
            self.body = Some(body);
            self.resp = Some(response_from_h2(&parts));
        }
        self.resp
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::H2Error, "no response head").into_up())
    }

    /// The response head, once read.
    pub const fn response_header(&self) -> Option<&ResponseHeader> {
        self.resp.as_ref()
    }

    /// Read the next piece of the response body; `None` at its end. Read
    /// bytes go back to the server's window, so a slow reader slows the
    /// server instead of growing a buffer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: data and trailers are taken from the stream only when
    /// the call returns them.
    ///
    /// # Errors
    ///
    /// [`ErrorType::ReadTimedout`], or [`ErrorType::H2Error`] when the
    /// stream was reset. Marked upstream.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if self.body_done {
            return Ok(None);
        }
        let Some(body) = &mut self.body else {
            return Err(Error::explain(ErrorType::H2Error, "response head not read").into_up());
        };
        match recv_data(body, self.read_timeout)
            .await
            .map_err(Error::into_up)?
        {
            Some(data) => Ok(Some(data)),
            None => {
                // Done only once the trailers are in: a call cancelled
                // while waiting for them finds the body ended again and
                // waits anew, losing nothing.
                let trailers = recv_trailers(body, self.read_timeout).await;
                self.trailers = trailers.map_err(Error::into_up)?;
                self.body_done = true;
                Ok(None)
            }
        }
    }

    /// Whether the whole response body has been read.
    pub const fn is_body_done(&self) -> bool {
        self.body_done
    }

    /// The response trailers, once the body is fully read.
    pub const fn response_trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }
}
