//! HTTP/1.0 and HTTP/1.1 (RFC 9112) for both sides of a proxy.
//!
//! The protocol logic is sans-IO and private: head parsing (`head`), body
//! framing rules (`framing`), and body decoders and encoders (`decode`,
//! `encode`) work on byte buffers and return events. The public sessions
//! are thin async drivers over them that own the stream, reuse its
//! buffers and enforce the timeouts of [`H1Config`]:
//!
//! - [`ServerConnection`] / [`ServerSession`]: the downstream side, which
//!   reads requests and writes responses;
//! - [`ClientSession`]: the upstream side, which writes requests and reads
//!   responses.
//!
//! Both sides refuse ambiguous framing (RFC 9112 §6.3, §11.2): both
//! Content-Length and Transfer-Encoding, differing Content-Length values,
//! a Transfer-Encoding other than a lone `chunked`, invalid chunk sizes and
//! obsolete line folding end the connection. A client gets 400; an
//! upstream's response becomes an upstream error and is never forwarded.
//!
//! A server also refuses, before anything above sees the request: a
//! target or `Host` that breaks the rules of
//! [`header::target`](crate::header) (400), a version other than HTTP/1.x
//! (505; HTTP/1.2 and later minor versions are served as 1.1), a head
//! over its limits (414, 431), a body over
//! [`H1Config::max_request_body`] (413), and a head not finished within
//! the header timeout (408).

mod client;
mod config;
mod conn;
mod decode;
mod encode;
mod framing;
mod head;
mod server;

pub use client::ClientSession;
pub use config::H1Config;
pub use server::{
    DRAIN_IDLE_WAIT, NextRequest, ServerConnection, ServerSession, rejected_requests,
};

use crate::header::RequestHeader;
use bytes::BytesMut;
use pingora_error::{Error, ErrorType, Result};

/// Parse a request head from the front of `buf` with `config`'s limits:
/// the sans-IO parser the server session uses, for tools, benchmarks and
/// fuzzing. `Ok(None)` means the head is not complete yet; on success the
/// head is split off `buf`, leaving any body or pipelined bytes.
///
/// # Errors
///
/// [`ErrorType::InvalidHTTPHeader`] for a malformed or over-limit head,
/// an invalid target or `Host`, or an HTTP version other than 1.x; the
/// context says which rule failed.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use pingora_core::protocols::http::v1::{parse_request_head, H1Config};
///
/// let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"[..]);
/// let req = parse_request_head(&mut buf, &H1Config::default()).unwrap().unwrap();
/// assert_eq!(req.uri().path(), "/");
/// assert_eq!(&buf[..], b"rest");
/// ```
pub fn parse_request_head(buf: &mut BytesMut, config: &H1Config) -> Result<Option<RequestHeader>> {
    head::HeadReader::default()
        .parse_request(buf, config)
        .map_err(|e| Error::explain(ErrorType::InvalidHTTPHeader, e.as_str()))
}

#[cfg(test)]
mod fuzz_tests;
