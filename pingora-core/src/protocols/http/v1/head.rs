//! Sans-IO parsing of HTTP/1 request and response heads.
//!
//! The parsers take the connection's read buffer. While the head is
//! incomplete they return `Ok(None)` and leave the buffer alone; once it is
//! complete they split the head off the front of the buffer (the rest is
//! body or a pipelined request) and build the header type from slices of
//! it, so field values are not copied.

use super::H1Config;
use crate::header::target::{self, TargetForm};
use crate::header::{HeaderList, RequestHeader, ResponseHeader, static_spelling};
use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode, Uri, Version};
use std::mem::MaybeUninit;

/// Why a head was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Not valid HTTP/1 syntax (400).
    Malformed(&'static str),
    /// The head is over the byte limit (431).
    TooLarge,
    /// The head has more fields than allowed (431).
    TooManyHeaders,
    /// The request line is over its limit (414).
    UriTooLong,
    /// An HTTP major version other than 1 (505, RFC 9110 §15.6.6).
    VersionNotSupported,
}

impl HeadError {
    /// The status a server answers with.
    pub(crate) const fn status(self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::TooLarge | Self::TooManyHeaders => 431,
            Self::UriTooLong => 414,
            Self::VersionNotSupported => 505,
        }
    }

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed(why) => why,
            Self::TooLarge => "head too large",
            Self::TooManyHeaders => "too many header fields",
            Self::UriTooLong => "request line too long",
            Self::VersionNotSupported => "http version not supported",
        }
    }
}

fn span_of(base: &[u8], part: &[u8]) -> (usize, usize) {
    // `part` is a sub-slice of `base` (httparse only returns slices of its
    // input), so the difference of the start addresses is its offset.
    let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    (start, part.len())
}

fn slice(head: &Bytes, (start, len): (usize, usize)) -> Bytes {
    head.slice(start..start + len)
}

/// Where the first blank line of `buf` ends, if it has one: the end of a
/// head, unless empty lines come before the start line. The search resumes
/// from `*scanned`, so repeated calls stay linear.
fn head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    // Back up two bytes so a terminator split across reads is still seen.
    let mut at = scanned.saturating_sub(2).min(buf.len());
    *scanned = buf.len();
    // memchr: a vectorised search, several times faster than a byte loop
    // on the few hundred bytes of a head.
    while let Some(lf) = memchr::memchr(b'\n', &buf[at..]) {
        let lf = at + lf;
        match (buf.get(lf + 1), buf.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => at = lf + 1,
        }
    }
    None
}

/// A head split off the front of the read buffer. It shares the buffer's
/// allocation (no copy); the buffer is reusable for the next read once
/// the header built from it is dropped, which the sessions do before
/// reading the next message.
fn split_head(buf: &mut BytesMut, end: usize) -> Bytes {
    buf.split_to(end).freeze()
}

/// Put a head split off by [`split_head`] back in front of `buf` (only
/// when it turned out not to be a whole head: empty lines before the
/// start line).
fn unsplit_head(buf: &mut BytesMut, head: &Bytes) {
    let mut whole = BytesMut::with_capacity(head.len() + buf.len());
    whole.extend_from_slice(head);
    whole.extend_from_slice(buf);
    *buf = whole;
}

/// Incremental state of reading one head: how far the end-of-head search
/// got, so a slow peer does not make parsing quadratic.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HeadReader {
    scanned: usize,
    /// The request line was complete and valid; it is checked once, as
    /// soon as it is in, so garbage is refused at once instead of after
    /// the header timeout.
    line_checked: bool,
}

impl HeadReader {
    /// Check limits of an incomplete request head, then parse it when it is
    /// complete.
    pub(crate) fn parse_request(
        &mut self,
        buf: &mut BytesMut,
        config: &H1Config,
    ) -> Result<Option<RequestHeader>, HeadError> {
        // RFC 9112 §2.2: empty lines before the request line are skipped,
        // but no more of them than a request line may hold, so that every
        // call scans a bounded prefix.
        let start = buf
            .iter()
            .take(config.max_request_line)
            .position(|&b| b != b'\r' && b != b'\n');
        let Some(start) = start else {
            if buf.len() >= config.max_request_line {
                return Err(HeadError::Malformed("too many empty lines"));
            }
            return Ok(None);
        };
        let line_end = buf[start..]
            .iter()
            .take(config.max_request_line + 1)
            .position(|&b| b == b'\n');
        if line_end.is_none() && buf.len() - start > config.max_request_line {
            return Err(HeadError::UriTooLong);
        }
        if let Some(end) = line_end
            && !self.line_checked
        {
            check_request_line(&mut buf[start..=start + end])?;
            self.line_checked = true;
        }
        self.parse_with(buf, config, parse_request)
    }

    /// Check limits of an incomplete response head, then parse it when it
    /// is complete.
    pub(crate) fn parse_response(
        &mut self,
        buf: &mut BytesMut,
        config: &H1Config,
    ) -> Result<Option<ResponseHeader>, HeadError> {
        self.parse_with(buf, config, parse_response)
    }

    /// Once `buf` holds a blank line, split the head off it and `parse` it
    /// in place.
    fn parse_with<T: KeepHead>(
        &mut self,
        buf: &mut BytesMut,
        config: &H1Config,
        parse: HeadParser<T>,
    ) -> Result<Option<T>, HeadError> {
        let Some(end) = head_end(buf, &mut self.scanned) else {
            return check_size(buf.len(), config).map(|()| None);
        };
        let head = split_head(buf, end);
        match parse(&head, config)? {
            Some((mut parsed, len)) if len == head.len() => {
                parsed.keep_head(head);
                return Ok(Some(parsed));
            }
            _ => unsplit_head(buf, &head),
        }
        // Rare: empty lines before the start line, so the first blank line
        // was not the end of the head. Parse the whole buffer, from a copy.
        let whole = Bytes::copy_from_slice(buf);
        match parse(&whole, config)? {
            Some((mut parsed, len)) => {
                buf.advance(len);
                parsed.keep_head(whole);
                Ok(Some(parsed))
            }
            None => check_size(buf.len(), config).map(|()| None),
        }
    }
}

/// Parses a head at the start of a buffer into `T`, with its length.
type HeadParser<T> = fn(&Bytes, &H1Config) -> Result<Option<(T, usize)>, HeadError>;

/// A parsed head whose field values are spans of the buffer it was parsed
/// from, which it must be given (moved, not shared: a shared copy would
/// cost two atomic operations per message).
trait KeepHead {
    fn keep_head(&mut self, head: Bytes);
}

impl KeepHead for RequestHeader {
    fn keep_head(&mut self, head: Bytes) {
        self.set_received_head(head);
    }
}

impl KeepHead for ResponseHeader {
    fn keep_head(&mut self, head: Bytes) {
        self.set_received_head(head);
    }
}

/// Validate a complete request line (with its line ending) on its own:
/// with no room for fields, httparse stops after the line and reports
/// only whether the line itself is well formed. The version is settled
/// first, see [`settle_version`].
fn check_request_line(line: &mut [u8]) -> Result<(), HeadError> {
    settle_version(line)?;
    let mut no_fields = [httparse::EMPTY_HEADER; 0];
    let mut req = httparse::Request::new(&mut no_fields);
    match req.parse(line) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => Ok(()),
        Err(e) => Err(map_httparse(e)),
    }
}

/// RFC 9112 §2.3: `HTTP-version = "HTTP/" DIGIT "." DIGIT`. A later
/// minor version of HTTP/1 is served as HTTP/1.1, the highest we speak
/// (RFC 9110 §6.2: a recipient treats it as the highest minor version it
/// implements): its digit is rewritten in place, so the parser sees 1.1.
/// Any other major version gets 505. A line whose end does not look like a
/// version is left to the parser, which refuses it.
fn settle_version(line: &mut [u8]) -> Result<(), HeadError> {
    let ([body @ .., b'\r', b'\n'] | [body @ .., b'\n']) = line else {
        return Ok(());
    };
    let Some(at) = body.len().checked_sub(9) else {
        return Ok(());
    };
    match &mut body[at..] {
        [b' ', b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' {
                return Err(HeadError::VersionNotSupported);
            }
            if *minor > b'1' {
                *minor = b'1';
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_size(len: usize, config: &H1Config) -> Result<(), HeadError> {
    if len > config.max_header_bytes {
        Err(HeadError::TooLarge)
    } else {
        Ok(())
    }
}

fn map_httparse(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Status => HeadError::Malformed("invalid status"),
        httparse::Error::Token => HeadError::Malformed("invalid token"),
        httparse::Error::Version => HeadError::Malformed("invalid version"),
    }
}

fn version_of(v: Option<u8>) -> Version {
    if v == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    }
}

/// Build the field list from the parsed fields of `base`: names as slices
/// of `head`, which holds the same bytes, values as spans of it (the
/// caller hands the list `head` once it is done with it, see [`KeepHead`]).
fn fields(base: &[u8], head: &Bytes, parsed: &[httparse::Header<'_>]) -> HeaderList {
    let mut list = HeaderList::with_capacity(parsed.len());
    for field in parsed {
        // httparse checked that the name is a token.
        let raw = field.name.as_bytes();
        let name = match static_spelling(raw) {
            Some(usual) => Bytes::from_static(usual),
            None => slice(head, span_of(base, raw)),
        };
        let (start, len) = span_of(base, field.value);
        list.push_span(name, start, len);
    }
    list
}

/// Parse the request head at the start of `buf`, building the header from
/// slices of `buf`; with its length.
fn parse_request(
    buf: &Bytes,
    config: &H1Config,
) -> Result<Option<(RequestHeader, usize)>, HeadError> {
    // Uninitialised slots: initialising 256 of them on every parse would
    // cost more than the parse itself.
    let mut slots =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; H1Config::MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(buf, &mut slots[..config.header_slots()]);
    let len = match parsed.map_err(map_httparse)? {
        httparse::Status::Complete(len) => len,
        // A blank line was seen but is not the end of a head (for example
        // empty lines before the request line, RFC 9112 §2.2).
        httparse::Status::Partial => return Ok(None),
    };
    check_size(len, config)?;
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let form = target::check_target(&method, path.as_bytes()).map_err(HeadError::Malformed)?;
    let hosts = req
        .headers
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("host"));
    target::check_host_fields(hosts.map(|f| f.value), req.version == Some(0))
        .map_err(HeadError::Malformed)?;
    // RFC 9112 §3.2.2: the authority of an absolute-form target wins over
    // Host. A proxy sends it on as Host, so it becomes Host here already
    // and every phase sees the host the origin will see.
    let authority = match form {
        TargetForm::Absolute { start, end } => Some(&path.as_bytes()[start..end]),
        _ => None,
    };
    let authority = authority.map(http::HeaderValue::from_bytes).transpose();
    let authority = authority.map_err(|_| HeadError::Malformed("invalid request target"))?;
    let path = span_of(buf, path.as_bytes());
    let version = version_of(req.version);
    let mut list = fields(buf, buf, req.headers);
    if let Some(authority) = authority {
        list.insert("Host", authority)
            .map_err(|_| HeadError::Malformed("invalid request target"))?;
    }
    let uri = Uri::from_maybe_shared(slice(buf, path))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    let req = RequestHeader::from_parts(method, uri, version, list);
    Ok(Some((req, len)))
}

/// Parse the response head at the start of `buf`, building the header
/// from slices of `buf`; with its length.
fn parse_response(
    buf: &Bytes,
    config: &H1Config,
) -> Result<Option<(ResponseHeader, usize)>, HeadError> {
    let mut slots =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; H1Config::MAX_HEADERS_CAP];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut slots[..config.header_slots()],
    );
    let len = match parsed.map_err(map_httparse)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    check_size(len, config)?;
    let Some(code) = resp.code else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Malformed("invalid status"))?;
    // The usual phrase is not kept: it is written anyway when none is, and
    // keeping it would share the head's buffer (two atomic operations).
    let reason = resp
        .reason
        .filter(|r| !r.is_empty() && Some(*r) != status.canonical_reason())
        .map(|r| span_of(buf, r.as_bytes()));
    let version = version_of(resp.version);
    let list = fields(buf, buf, resp.headers);
    let reason = reason.map(|r| slice(buf, r));
    let resp = ResponseHeader::from_parts(status, version, reason, list);
    Ok(Some((resp, len)))
}

#[cfg(test)]
mod tests;
