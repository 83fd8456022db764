//! [`ServerConnection`]: a downstream connection between requests,
//! waiting for, reading and refusing request heads.

use super::super::H1Config;
use super::super::conn::{Conn, Deadline, TimedOut};
use super::super::decode::BodyDecoder;
use super::super::framing::{self, Framing};
use super::super::head::{HeadError, HeadReader};
use super::{Continue, Response, ServerSession, State, write_error_head};
use crate::header::RequestHeader;
use crate::protocols::{Digest, Stream};
use pingora_error::{Error, ErrorType, Result};
use std::pin::{Pin, pin};

/// Once a connection drains (the server is shutting down), how long it
/// still waits for a next request before it closes. A client that sends
/// requests back to back has its next one on the wire already; cutting
/// the connection at once would lose it (see [`ServerConnection::drain`]).
pub const DRAIN_IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A downstream HTTP/1 connection between requests.
///
/// # Examples
///
/// ```no_run
/// use pingora_core::protocols::http::v1::{H1Config, ServerConnection};
/// use pingora_core::header::ResponseHeader;
/// # async fn serve(stream: pingora_core::protocols::Stream) -> pingora_core::Result<()> {
/// let mut conn = ServerConnection::new(stream, H1Config::default());
/// while let Some(mut session) = conn.read_request().await? {
///     let mut resp = ResponseHeader::build(200, None)?;
///     resp.insert_header("Content-Length", "2")?;
///     session.write_response_header(resp).await?;
///     session.write_body(b"ok").await?;
///     session.finish_response(None).await?;
///     match session.reuse().await {
///         Some(next) => conn = next,
///         None => break,
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ServerConnection {
    pub(super) s: Box<State>,
}

impl ServerConnection {
    /// Serve HTTP/1 on `stream` with `config`'s limits and timeouts.
    pub fn new(stream: Stream, config: H1Config) -> Self {
        let s = Box::new(State {
            conn: Conn::new(stream, config),
            served: 0,
            req: RequestHeader::placeholder(),
            body: BodyDecoder::new(Framing::Empty, 0),
            trailers: None,
            keepalive: true,
            draining: false,
            parkable: false,
            cont: Continue::NotExpected,
            upgraded: false,
            response: Response::NotStarted,
            written: None,
            saved_timeouts: None,
        });
        Self { s }
    }

    /// Serve HTTP/1 on `stream`, a kept-alive connection that already
    /// served requests and was set aside idle (see
    /// [`NextRequest::Idle`]): its next request counts as on a reused
    /// connection, and [`served`](Self::served) starts at 1.
    pub fn resumed(stream: Stream, config: H1Config) -> Self {
        let mut conn = Self::new(stream, config);
        conn.s.served = 1;
        conn
    }

    /// Drain the connection: the server is shutting down. Every response
    /// from now on says `Connection: close`, and the wait for the next
    /// request is cut to [`DRAIN_IDLE_WAIT`] (less when the idle timeout
    /// is shorter). When nothing comes in that time,
    /// [`read_request`](Self::read_request) closes the connection.
    ///
    /// Closing an idle keep-alive connection always races a request the
    /// client may be sending at that moment (RFC 9112 §9.6). The drain
    /// keeps that race as narrow as it can be:
    ///
    /// - a request already read, or in the socket, or still on the wire
    ///   within the wait, is served, and its response announces the
    ///   close, so the client sends nothing more on this connection;
    /// - only a connection that stayed silent for the whole wait is
    ///   closed, and then with a FIN (shutdown of our sending side)
    ///   followed by a lingering read, never with a reset: a client
    ///   learns of the close from the FIN before it sends again, so it
    ///   knows its next request was never sent on this connection and
    ///   can send it elsewhere, idempotent or not. Bytes that do arrive
    ///   after our FIN (a request sent at the very moment the FIN was
    ///   on its way) are read and dropped rather than answered with a
    ///   reset, so the client sees the close it can recognise instead of
    ///   an error that might have destroyed a response.
    ///
    /// A client that sent a request before our FIN reached it cannot tell
    /// whether it was processed; it was not. Clients retry idempotent
    /// requests in that case (RFC 9110 §9.2.2), as for any idle timeout.
    pub fn drain(&mut self) {
        self.s.draining = true;
    }

    /// Let [`read_request_or_idle`](Self::read_request_or_idle) hand the
    /// connection back idle after the config's
    /// [`park_idle_after`](H1Config::park_idle_after), for a caller that
    /// can park it (a listening service, see
    /// [`Handover::parkable`](crate::apps::Handover::parkable)).
    pub const fn set_parkable(&mut self, parkable: bool) {
        self.s.parkable = parkable;
    }

    /// Whether the connection is draining (see [`drain`](Self::drain)).
    pub const fn is_draining(&self) -> bool {
        self.s.draining
    }

    /// Wait until bytes of the next request are here: `Ok(true)` when
    /// some are buffered, `Ok(false)` when the client closed, or let a
    /// kept-alive (or draining) connection sit idle past its wait.
    /// [`read_request`](Self::read_request) does this first; a caller that
    /// races the wait against something else (a shutdown signal) calls
    /// this, which is cancel safe.
    ///
    /// # Errors
    ///
    /// As [`read_request`](Self::read_request): read errors, and
    /// [`ErrorType::ReadTimedout`] when a new connection sent nothing
    /// within the header timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes read stay buffered for the next call.
    pub async fn wait_for_request(&mut self) -> Result<bool> {
        Ok(matches!(self.wait_next(false).await?, Waited::Bytes))
    }

    /// [`wait_for_request`](Self::wait_for_request), but with `park`, a
    /// parkable kept-alive connection that stays silent for the config's
    /// `park_idle_after` is [`Waited::Idle`].
    async fn wait_next(&mut self, park: bool) -> Result<Waited> {
        if !self.s.conn.buf.is_empty() {
            return Ok(Waited::Bytes);
        }
        let config = &self.s.conn.config;
        let mut wait = if self.s.served == 0 {
            config.header_timeout
        } else {
            config.idle_timeout
        };
        if self.s.draining {
            wait = wait.min(DRAIN_IDLE_WAIT);
        }
        let park = park && self.s.parkable && self.s.served > 0 && !self.s.draining;
        if let Some(after) = config.park_idle_after.filter(|_| park) {
            wait = wait.min(after);
        }
        let idle_ok = self.s.served > 0 || self.s.draining;
        match self.wait_bytes(wait).await? {
            Some(true) => Ok(Waited::Bytes),
            Some(false) => Ok(Waited::Closed),
            None if park && config_parks(&self.s.conn.config) => Ok(Waited::Idle),
            None if idle_ok => Ok(Waited::Closed),
            None => Error::e_explain(ErrorType::ReadTimedout, "reading http/1")
                .map_err(|e| e.into_down()),
        }
    }

    /// Wait up to `wait` for bytes: `Some(true)` when some came,
    /// `Some(false)` when the client closed, `None` when it stayed silent.
    /// Holds no buffer while it waits (see `Conn::read_lean`).
    async fn wait_bytes(&mut self, wait: std::time::Duration) -> Result<Option<bool>> {
        match self.s.conn.read_lean_bounded(wait).await {
            Ok(0) => Ok(Some(false)),
            Ok(_) => Ok(Some(true)),
            Err(e) if e.etype() == &ErrorType::ReadTimedout => Ok(None),
            Err(e) => Err(e.into_down()),
        }
    }

    /// The limits and timeouts the connection runs with.
    pub const fn config(&self) -> H1Config {
        self.s.conn.config
    }

    /// How many requests this connection has served.
    pub const fn served(&self) -> u64 {
        self.s.served
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        self.s.conn.stream.digest()
    }

    /// Read the next request head.
    ///
    /// Returns `Ok(None)` when the client closed the connection, or let a
    /// kept-alive connection sit idle past the idle timeout, before sending
    /// a byte of the next request; a draining connection (see
    /// [`drain`](Self::drain)) is then closed gracefully.
    ///
    /// Lean on memory, as this future is what a connection keeps while it
    /// waits: it holds no buffer until bytes arrive, gives its buffers
    /// back whenever it waits with nothing read, and keeps a head that
    /// arrives slowly in a buffer about the size of what came so far.
    ///
    /// # Errors
    ///
    /// A malformed or over-limit head is answered (400, 413, 414, 431 or
    /// 505, see [`H1Config`]) and the connection closed before the error
    /// returns: [`ErrorType::InvalidHTTPHeader`] for bad heads,
    /// [`ErrorType::H1Error`] for smuggling-prone framing and a
    /// Content-Length over the body limit, [`ErrorType::ReadTimedout`]
    /// when the head took longer than the header timeout (answered 408
    /// once part of a head came; a connection that sent nothing is just
    /// closed), and read errors. All are marked downstream.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops (and so closes) the connection.
    pub async fn read_request(mut self) -> Result<Option<ServerSession>> {
        if !self.wait_for_request().await? {
            if self.s.draining {
                // See `drain`: a FIN, then a lingering read. Boxed: this
                // future is what every waiting connection keeps.
                Box::pin(self.s.conn.linger_close()).await;
            }
            return Ok(None);
        }
        // What to refuse, if anything, worked out in a block, so that the
        // head and its request (hundreds of bytes) are not kept across
        // the refusal's await: that would grow the future of every
        // connection waiting for a request.
        let (status, etype, why) = {
            // A deadline rather than `config.bounded`, which would hold a
            // copy of the config and the head read twice.
            let head = {
                let config = &self.s.conn.config;
                let deadline = Deadline::new(config, config.header_timeout);
                deadline.bound(pin!(self.read_head())).await
            };
            let max_body = self.s.conn.config.max_request_body;
            match head {
                Ok(Ok(Some(req))) => match framing::request_framing(&req) {
                    Ok(Framing::Length(n)) if max_body.is_some_and(|max| n > max) => {
                        (413, ErrorType::H1Error, "request body too large")
                    }
                    Ok(framing) => return Ok(Some(ServerSession::new(self, req, framing))),
                    Err(why) => (400, ErrorType::H1Error, why),
                },
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(HeadFail::Io(e))) => return Err(e.into_down()),
                Ok(Err(HeadFail::Bad(bad))) => {
                    (bad.status(), ErrorType::InvalidHTTPHeader, bad.as_str())
                }
                // The client started a head and did not finish it in time
                // (RFC 9110 §15.5.9): say so before closing.
                Err(TimedOut) => (408, ErrorType::ReadTimedout, "reading request head"),
            }
        };
        Err(self.reject(status, etype, why).await)
    }

    /// [`read_request`](Self::read_request), unless `stop` completes
    /// first while the connection waits for the request's first byte:
    /// the connection then [drains](Self::drain) and reads on, so a
    /// request already sent is still served (with `Connection: close`)
    /// and only a silent connection is closed, gracefully. Bytes already
    /// here win over `stop`. Once draining, `stop` is not polled again,
    /// so it may be a future that must not be polled after completing.
    ///
    /// The serving loop of an app calls this with its shutdown signal, one
    /// `stop` future for the whole connection.
    ///
    /// # Errors
    ///
    /// As [`read_request`](Self::read_request).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops (and so closes) the connection.
    pub async fn read_request_until<F>(self, stop: Pin<&mut F>) -> Result<Option<ServerSession>>
    where
        F: Future<Output = ()>,
    {
        match self.read_request_or_idle(stop, false).await? {
            NextRequest::Request(session) => Ok(Some(session)),
            _ => Ok(None),
        }
    }

    /// [`read_request_until`](Self::read_request_until), except that,
    /// with `park`, a [parkable](Self::set_parkable) kept-alive connection
    /// whose client sends nothing for the config's
    /// [`park_idle_after`](H1Config::park_idle_after) is handed back as
    /// [`NextRequest::Idle`] instead of waiting on: its caller can then
    /// hold the bare socket until the client sends more, which costs far
    /// less memory than a task waiting in this future (the
    /// [listening service](crate::services::listening) does that).
    ///
    /// # Errors
    ///
    /// As [`read_request`](Self::read_request).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops (and so closes) the connection.
    pub async fn read_request_or_idle<F>(
        mut self,
        stop: Pin<&mut F>,
        park: bool,
    ) -> Result<NextRequest>
    where
        F: Future<Output = ()>,
    {
        if !self.s.draining {
            let waited = tokio::select! {
                biased;
                waited = self.wait_next(park) => waited?,
                () = stop => {
                    self.drain();
                    Waited::Bytes
                }
            };
            match waited {
                Waited::Bytes => {}
                Waited::Closed => return Ok(NextRequest::Closed),
                Waited::Idle => {
                    let config = &self.s.conn.config;
                    let after = config.park_idle_after.unwrap_or_default();
                    let wait = config.idle_timeout.saturating_sub(after);
                    let stream = self.s.conn.stream;
                    return Ok(NextRequest::Idle { stream, wait });
                }
            }
        }
        Ok(match self.read_request().await? {
            Some(session) => NextRequest::Request(session),
            None => NextRequest::Closed,
        })
    }

    pub(super) async fn read_head(&mut self) -> Result<Option<RequestHeader>, HeadFail> {
        let mut reader = HeadReader::default();
        loop {
            match reader.parse_request(&mut self.s.conn.buf, &self.s.conn.config) {
                Ok(Some(req)) => return Ok(Some(req)),
                Ok(None) => {}
                Err(bad) => return Err(HeadFail::Bad(bad)),
            }
            // The caller bounds the whole head read by the header timeout.
            match self.s.conn.read_lean().await {
                // Closing in the middle of a head is not an error to answer.
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => return Err(HeadFail::Io(e)),
            }
        }
    }

    /// Answer a bad request with `status` and close.
    ///
    /// The writing and lingering run in a boxed future: inline, their
    /// state would make [`read_request`](Self::read_request)'s future, kept
    /// by every connection waiting for a request, several times larger.
    async fn reject(mut self, status: u16, etype: ErrorType, why: &'static str) -> Box<Error> {
        REJECTED_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::request_rejected();
        {
            // In a block: nothing of it is kept across the awaits below.
            let client = self.digest().and_then(|d| d.peer_addr.as_ref());
            let client = client.map_or_else(String::new, ToString::to_string);
            log::info!("request refused: {status} {why}, client: {client}");
        }
        write_error_head(self.s.conn.wbuf(), status);
        Box::pin(async move {
            let _ = self.s.conn.flush_wbuf().await;
            self.s.conn.linger_close().await;
        })
        .await;
        Error::explain(etype, why).into_down()
    }
}

/// Requests refused before any app saw them, process-wide.
static REJECTED_REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many requests this process refused before any app or phase saw
/// them: malformed or oversized heads (400, 414, 431), bodies announced
/// past the limit (413), heads not finished in time (408). Each is also
/// logged at `info` with the client's address.
pub fn rejected_requests() -> u64 {
    REJECTED_REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// What [`ServerConnection::read_request_or_idle`] found.
#[derive(Debug)]
pub enum NextRequest {
    /// A request to serve.
    Request(ServerSession),
    /// The connection stayed idle: hold its stream until the client sends
    /// more, then serve it with [`ServerConnection::resumed`].
    Idle {
        /// The bare stream, nothing of a next request read from it.
        stream: Stream,
        /// How much longer it may stay idle: what is left of the idle
        /// timeout.
        wait: std::time::Duration,
    },
    /// The connection is closed (the client closed it, or it sat idle
    /// past its timeout, or it drained).
    Closed,
}

/// Whether `config` parks idle connections at all.
const fn config_parks(config: &H1Config) -> bool {
    config.park_idle_after.is_some()
}

/// What the wait for a next request found.
enum Waited {
    /// Bytes are here (or, from the caller, shutdown began: read on).
    Bytes,
    /// The client closed, or the connection idled past its timeout.
    Closed,
    /// Silent for the park wait.
    Idle,
}

/// Why reading a head failed.
pub(super) enum HeadFail {
    Io(Box<Error>),
    Bad(HeadError),
}
