//! Limits and timeouts of an HTTP/1 connection.

use std::time::Duration;

/// Limits and timeouts of an HTTP/1 connection, server or client side.
///
/// Every field has a default suited to a public-facing proxy. Change the
/// fields you care about on a [`Default`] value.
///
/// # Examples
///
/// ```
/// use pingora_core::protocols::http::v1::H1Config;
/// use std::time::Duration;
///
/// let mut config = H1Config::default();
/// config.max_header_bytes = 16 * 1024;
/// config.idle_timeout = Duration::from_secs(5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct H1Config {
    /// Largest request or response head (start line plus fields), in bytes.
    /// A larger request gets 431 (RFC 6585 §5). Default 64 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in one head, at most [`H1Config::MAX_HEADERS_CAP`].
    /// More gets 431. Default 128.
    pub max_headers: usize,
    /// Longest request line, in bytes. Longer gets 414 (RFC 9112 §3).
    /// Default 8 KiB, as nginx's `large_client_header_buffers`.
    pub max_request_line: usize,
    /// Largest request body a server accepts, in bytes; `None` for no
    /// limit. A Content-Length above it is answered with 413 (RFC 9110
    /// §15.5.14) before any of the body is read, and a chunked body is
    /// refused with 413 as soon as its chunk sizes add up to more (the
    /// decoded bytes are counted, not the framing). The connection then
    /// closes. Default `None`: a proxy streams bodies with backpressure,
    /// so their size costs no memory and the limit is a policy choice
    /// (nginx defaults to 1 MiB because it buffers bodies; the
    /// [`HttpServer`](crate::apps::http_app::HttpServer) app, which
    /// does too, keeps its own 1 MiB limit).
    pub max_request_body: Option<u64>,
    /// Largest trailer section of a chunked body, in bytes. Default 16 KiB.
    pub max_trailer_bytes: usize,
    /// Most unread request body a server reads and discards so that the
    /// connection can serve the next request; past it the connection is
    /// closed instead. Default 64 KiB.
    pub max_drain_bytes: usize,
    /// How long a kept-alive connection may wait for the first byte of its
    /// next request. Default 60 s.
    pub idle_timeout: Duration,
    /// How long a kept-alive connection waits for its next request on its
    /// own task before it is parked: its HTTP/1 state and task are freed
    /// and only the socket is kept, in a set the listening service watches
    /// for the client's next bytes (or the end of `idle_timeout`). A
    /// parked connection costs about a hundred bytes instead of a couple
    /// of kilobytes; waking one costs a few system calls, which is why a
    /// busy connection is not parked between requests. Plain TCP and Unix
    /// connections on Linux are parked; TLS ones keep their task. `None`
    /// never parks. Default 100 ms.
    pub park_idle_after: Option<Duration>,
    /// How long reading one head may take: on a new connection from accept
    /// to the first byte, then from the first byte to the end of the head.
    /// A client that started a head and did not finish it in time (a
    /// slowloris) gets 408 with `Connection: close` (RFC 9110 §15.5.9);
    /// one that sent nothing is closed without a response. Default 30 s.
    /// Set it per listener with
    /// [`ListenerOptions`](crate::apps::ListenerOptions).
    pub header_timeout: Duration,
    /// How long one read of body bytes may wait. Default 60 s.
    pub body_read_timeout: Duration,
    /// How long one write may wait for the peer to accept bytes.
    /// Default 60 s.
    pub write_timeout: Duration,
    /// Enforce these timeouts with the coarse shared timers of
    /// `pingora_timeout::fast` (they fire up to about 10 ms late but cost
    /// far less per read and write than a precise timer, which matters when
    /// every read of every connection is bounded). Default `true`. Turn it
    /// off to run under tokio's paused test clock, which only the precise
    /// timers follow.
    pub coarse_timers: bool,
}

impl H1Config {
    /// The largest value [`max_headers`](Self::max_headers) can take: the
    /// parser keeps its field table on the stack to avoid allocating.
    pub const MAX_HEADERS_CAP: usize = 256;

    /// Run `future` for at most `wait`, on the timer this config picks.
    pub(crate) async fn bounded<F: Future>(
        &self,
        wait: Duration,
        future: F,
    ) -> Result<F::Output, pingora_timeout::Elapsed> {
        if self.coarse_timers {
            pingora_timeout::fast::timeout(wait, future).await
        } else {
            pingora_timeout::timeout(wait, future).await
        }
    }

    pub(crate) fn header_slots(&self) -> usize {
        self.max_headers.clamp(1, Self::MAX_HEADERS_CAP)
    }
}

impl Default for H1Config {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: 128,
            max_request_line: 8 * 1024,
            max_request_body: None,
            max_trailer_bytes: 16 * 1024,
            max_drain_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
            park_idle_after: Some(Duration::from_millis(100)),
            header_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            coarse_timers: true,
        }
    }
}
