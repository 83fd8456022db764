//! HTTP/2 (RFC 9113) for both sides, on the `h2` crate.
//!
//! - [`ServerConnection`] accepts an HTTP/2 connection (after ALPN `h2`,
//!   or cleartext with prior knowledge, "h2c") and turns each stream into
//!   a [`ServerSession`], which code above the protocols sees through the
//!   version-neutral [`crate::protocols::http::ServerSession`].
//! - [`ClientConnection`] speaks HTTP/2 to an upstream; one connection
//!   carries many concurrent [`ClientSession`]s.
//!
//! Both sides take their settings and limits from [`H2Options`]. Besides
//! what `h2` enforces (header list size, the CONTINUATION count bound of
//! h2 0.4.4+, streams reset before they are accepted, locally caused
//! resets), every connection runs through a frame meter that counts the
//! frames a peer sends for free work (RST_STREAM, PING, SETTINGS,
//! PRIORITY, empty DATA, CONTINUATION) and closes the connection with a
//! GOAWAY of `ENHANCE_YOUR_CALM` (RFC 9113 §7) when one passes its limit.

/// `impl AsyncWrite for $ty` that passes every call to its `inner`
/// stream, for the wrappers that only change how bytes are read.
macro_rules! write_through_inner {
    ($ty:ty) => {
        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

mod body;
mod client;
mod convert;
mod detect;
mod guard;
mod meter;
mod server;
#[cfg(test)]
mod tests;

pub use body::is_unprocessed;
pub use client::{ClientConnection, ClientSession};
pub(crate) use detect::unwrap_replayed;
pub use detect::{Detected, detect, detect_h2c};
pub use server::{ServerConnection, ServerSession, serve_connection};

use std::time::Duration;

/// The ALPN protocol id of HTTP/2 over TLS (RFC 9113 §3.2).
pub const ALPN_H2: &[u8] = b"h2";

/// At most `max` frames of a kind per `per` of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    /// How many frames are allowed in one window.
    pub max: u32,
    /// The length of the window.
    pub per: Duration,
}

impl FrameRate {
    /// At most `max` frames per `per`.
    pub const fn new(max: u32, per: Duration) -> Self {
        Self { max, per }
    }
}

/// HTTP/2 settings, timeouts and flood limits of one side.
///
/// The settings are advertised to the peer in the SETTINGS frame (RFC 9113
/// §6.5.2); the limits are enforced locally. Start from
/// [`H2Options::default`] and change what you need.
///
/// # Examples
///
/// ```
/// use pingora_core::protocols::http::v2::H2Options;
/// use std::time::Duration;
///
/// let mut options = H2Options::default();
/// options.max_concurrent_streams = 64;
/// options.keepalive_interval = Some(Duration::from_secs(20));
/// assert_eq!(options.max_frame_size, 16_384);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct H2Options {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams the peer may open at once.
    /// Default 128.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: how many body bytes of one stream the
    /// peer may send before we read them. Default 256 KiB.
    pub initial_stream_window: u32,
    /// The connection-level receive window, across all streams.
    /// Default 1 MiB.
    pub initial_connection_window: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: largest decoded header block we take
    /// (RFC 9113 §6.5.2), counting 32 bytes per field on top of its name
    /// and value, so it bounds the number of fields too (at most 2048 at
    /// the default). A larger request is refused with 431. Default 64 KiB,
    /// the HTTP/1 head limit ([`H1Config::max_header_bytes`]).
    ///
    /// [`H1Config::max_header_bytes`]: crate::protocols::http::v1::H1Config::max_header_bytes
    pub max_header_list_size: u32,
    /// Most header fields in one request, as
    /// [`H1Config::max_headers`]. More gets 431. Default 128.
    ///
    /// [`H1Config::max_headers`]: crate::protocols::http::v1::H1Config::max_headers
    pub max_headers: usize,
    /// Longest `:path` (with its query), in bytes, as
    /// [`H1Config::max_request_line`] bounds an HTTP/1 target. Longer gets
    /// 414. Default 8 KiB.
    ///
    /// [`H1Config::max_request_line`]: crate::protocols::http::v1::H1Config::max_request_line
    pub max_path_bytes: usize,
    /// Largest request body a server accepts, in bytes; `None` for no
    /// limit. A `content-length` above it is answered with 413 before the
    /// request is handed on; a body that grows past it is answered with
    /// 413 (or the stream reset, when a response was already started).
    /// Default `None`, as [`H1Config::max_request_body`].
    ///
    /// [`H1Config::max_request_body`]: crate::protocols::http::v1::H1Config::max_request_body
    pub max_request_body: Option<u64>,
    /// SETTINGS_MAX_FRAME_SIZE: largest frame payload the peer may send,
    /// 16 KiB to 16 MiB - 1 (RFC 9113 §4.2). Default 16 KiB.
    pub max_frame_size: u32,
    /// Response (or request) body bytes buffered per stream before a
    /// writer waits. Default 256 KiB.
    pub max_send_buffer: u32,
    /// Send a PING this often on an otherwise quiet connection; `None`
    /// sends none. Default 30 s on the server side.
    pub keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is
    /// considered dead and closed. Default 10 s.
    pub keepalive_timeout: Duration,
    /// How long the connection preface and first SETTINGS may take.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// How long a connection with no open stream stays open: a server
    /// then sends GOAWAY, a client closes it (within twice this). Default
    /// 60 s.
    pub idle_timeout: Duration,
    /// How long one read of a stream's body may wait: a stream the peer
    /// opens and never finishes is reset after it. Default 60 s.
    pub stream_read_timeout: Duration,
    /// How long one write may wait for flow-control window. Default 60 s.
    pub stream_write_timeout: Duration,
    /// After a graceful GOAWAY, how long open streams may take to finish
    /// before the connection is closed. Default 30 s.
    pub graceful_timeout: Duration,
    /// When a server ends a response while the client is still sending
    /// its request, how long it first waits for the rest of the request
    /// (reading and dropping up to 64 KiB of body), so that a request
    /// stream that turns out malformed (a body longer or shorter than its
    /// `content-length`, trailers without END_STREAM) is reset with
    /// PROTOCOL_ERROR instead of getting a complete response (RFC 9113
    /// §8.1.1). After the wait the response ends anyway and the rest of
    /// the request is refused with RST_STREAM(NO_ERROR) (§8.1).
    /// Default 200 ms.
    pub request_end_wait: Duration,
    /// Streams the peer resets before we accept them, kept at once; more
    /// is a rapid reset and closes the connection. Default 20.
    pub max_pending_accept_reset_streams: u32,
    /// Streams we reset because of the peer's protocol errors; more
    /// closes the connection. Default 128.
    pub max_local_error_reset_streams: u32,
    /// RST_STREAM frames the peer may send per window (rapid reset, 2023).
    /// Default 200 per 10 s.
    pub reset_limit: FrameRate,
    /// PING frames the peer may send per window. Default 100 per 10 s.
    pub ping_limit: FrameRate,
    /// SETTINGS frames the peer may send per window. Default 100 per 10 s.
    pub settings_limit: FrameRate,
    /// PRIORITY frames and empty DATA frames without END_STREAM the peer
    /// may send per window. Default 1000 per 10 s.
    pub pointless_frame_limit: FrameRate,
    /// CONTINUATION frames in one header block (CONTINUATION flood, 2024).
    /// Default 32.
    pub max_continuation_frames: u32,
}

impl Default for H2Options {
    fn default() -> Self {
        let window = meter::DEFAULT_RATE_WINDOW;
        Self {
            max_concurrent_streams: 128,
            initial_stream_window: 256 * 1024,
            initial_connection_window: 1024 * 1024,
            max_header_list_size: 64 * 1024,
            max_request_body: None,
            max_headers: 128,
            max_path_bytes: 8 * 1024,
            max_frame_size: 16_384,
            max_send_buffer: 256 * 1024,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            stream_read_timeout: Duration::from_secs(60),
            stream_write_timeout: Duration::from_secs(60),
            graceful_timeout: Duration::from_secs(30),
            request_end_wait: Duration::from_millis(200),
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 128,
            reset_limit: FrameRate::new(200, window),
            ping_limit: FrameRate::new(100, window),
            settings_limit: FrameRate::new(100, window),
            pointless_frame_limit: FrameRate::new(1000, window),
            max_continuation_frames: 32,
        }
    }
}

impl H2Options {
    /// The frame size clamped into the range RFC 9113 §4.2 allows, so that
    /// a bad value in a config file cannot make `h2` panic.
    pub(crate) fn frame_size(&self) -> u32 {
        self.max_frame_size.clamp(16_384, 16_777_215)
    }

    /// A window size clamped to the largest RFC 9113 §6.9.1 allows.
    pub(crate) fn window(size: u32) -> u32 {
        size.min(0x7fff_ffff)
    }
}

/// Whether `stream` negotiated HTTP/2 with ALPN.
pub fn negotiated_h2(stream: &crate::protocols::Stream) -> bool {
    stream
        .digest()
        .and_then(|d| d.tls.as_ref())
        .is_some_and(|tls| tls.is_h2())
}
