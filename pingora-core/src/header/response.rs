//! [`ResponseHeader`]: status, version, reason and fields of a response.

use super::{HeaderList, Headers};
use bytes::{Bytes, BytesMut};
use http::{StatusCode, Version};
use pingora_error::{Error, ErrorType, Result};

/// The head of an HTTP response: status line and header fields.
///
/// Header names keep their case and order for the wire (see the
/// [module docs](crate::header)). A reason phrase received from a peer is
/// kept and forwarded; otherwise the canonical phrase is written.
///
/// # Examples
///
/// ```
/// use pingora_core::header::ResponseHeader;
///
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.insert_header("Content-Type", "text/plain").unwrap();
/// assert_eq!(resp.status().as_u16(), 200);
/// ```
#[derive(Debug, Clone)]
pub struct ResponseHeader {
    parts: ResponseParts,
    reason: Option<Bytes>,
}

/// The parts of a [`ResponseHeader`], readable as fields through `Deref`
/// the way Pingora programs read them: `resp.status`, `resp.version`,
/// `resp.headers`.
///
/// Read-only: change them through the header's methods (`set_status`,
/// `insert_header` ...), which keep the wire form in step.
///
/// # Examples
///
/// ```
/// use pingora_core::header::ResponseHeader;
///
/// let mut resp = ResponseHeader::build(404, None).unwrap();
/// resp.insert_header("Server", "MyGateway").unwrap();
/// assert_eq!(resp.status.as_u16(), 404);
/// assert_eq!(resp.headers.get("server").unwrap(), "MyGateway");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResponseParts {
    /// The status code.
    pub status: StatusCode,
    /// The HTTP version.
    pub version: Version,
    /// The header fields, read as an `http::HeaderMap`.
    pub headers: Headers,
}

impl std::ops::Deref for ResponseHeader {
    type Target = ResponseParts;

    fn deref(&self) -> &ResponseParts {
        &self.parts
    }
}

impl ResponseHeader {
    /// A response with `status`, HTTP/1.1 and no fields. `size_hint` is the
    /// expected number of header fields.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] when `status` is not in 100..=999.
    pub fn build<S>(status: S, size_hint: Option<usize>) -> Result<Self>
    where
        S: TryInto<StatusCode>,
    {
        let status = status
            .try_into()
            .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid status"))?;
        Ok(Self::from_parts(
            status,
            Version::HTTP_11,
            None,
            HeaderList::with_capacity(size_hint.unwrap_or(8)),
        ))
    }

    /// Pingora's name for a head that writes names in lower case. Here
    /// every head keeps names as they are written (`insert_header("x-a", ..)`
    /// goes out as `x-a`), so this is [`build`](Self::build).
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_no_case<S>(status: S, size_hint: Option<usize>) -> Result<Self>
    where
        S: TryInto<StatusCode>,
    {
        Self::build(status, size_hint)
    }

    pub(crate) const fn from_parts(
        status: StatusCode,
        version: Version,
        reason: Option<Bytes>,
        headers: HeaderList,
    ) -> Self {
        Self {
            parts: ResponseParts {
                status,
                version,
                headers: Headers(headers),
            },
            reason,
        }
    }

    /// The status code.
    pub const fn status(&self) -> StatusCode {
        self.parts.status
    }

    /// Replace the status code (a `StatusCode` or a `u16`); a kept reason
    /// phrase is dropped, since it belonged to the old status.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] when `status` is not in 100..=999;
    /// the status is then unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_core::header::ResponseHeader;
    ///
    /// let mut resp = ResponseHeader::build(200, None).unwrap();
    /// resp.set_status(404).unwrap();
    /// resp.set_status(http::StatusCode::GONE).unwrap();
    /// assert_eq!(resp.status, 410);
    /// assert!(resp.set_status(1000).is_err());
    /// ```
    pub fn set_status<S: TryInto<StatusCode>>(&mut self, status: S) -> Result<()> {
        let status = status
            .try_into()
            .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid status"))?;
        self.parts.status = status;
        self.reason = None;
        Ok(())
    }

    /// The HTTP version.
    pub const fn version(&self) -> Version {
        self.parts.version
    }

    /// Replace the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        self.parts.version = version;
    }

    /// The reason phrase that will be written: the one received or set, or
    /// the canonical one for the status.
    pub fn reason_phrase(&self) -> &[u8] {
        match &self.reason {
            Some(r) => r,
            None => self
                .status
                .canonical_reason()
                .unwrap_or_default()
                .as_bytes(),
        }
    }

    /// Set the reason phrase (`"Nope"` or `Some("Nope")`); `None` goes back
    /// to the canonical phrase of the status.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] when the phrase holds bytes RFC 9112
    /// §4 does not allow (only HTAB, SP, visible ASCII and obs-text).
    pub fn set_reason_phrase<'a>(&mut self, reason: impl Into<Option<&'a str>>) -> Result<()> {
        let Some(reason) = reason.into() else {
            self.reason = None;
            return Ok(());
        };
        if !valid_reason(reason.as_bytes()) {
            return Error::e_explain(ErrorType::InvalidHTTPHeader, "invalid reason phrase");
        }
        self.reason = Some(Bytes::copy_from_slice(reason.as_bytes()));
        Ok(())
    }

    /// Append the HTTP/1 wire form of the head to `out`: status line,
    /// fields in wire order with their case, blank line.
    pub fn write_h1(&self, out: &mut BytesMut) {
        out.extend_from_slice(if self.parts.version == Version::HTTP_10 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        out.extend_from_slice(self.parts.status.as_str().as_bytes());
        out.extend_from_slice(b" ");
        out.extend_from_slice(self.reason_phrase());
        out.extend_from_slice(b"\r\n");
        self.parts.headers.0.write_to(out);
        out.extend_from_slice(b"\r\n");
    }
}

/// RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
pub(crate) fn valid_reason(r: &[u8]) -> bool {
    r.iter()
        .all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
}

field_methods!(ResponseHeader, "response", "200");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_status_line() {
        let mut resp = ResponseHeader::build(404, None).unwrap();
        resp.append_header("Content-Length", "0").unwrap();
        let mut out = BytesMut::new();
        resp.write_h1(&mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        );
        resp.set_reason_phrase("Nope").unwrap();
        assert_eq!(resp.reason_phrase(), b"Nope");
        assert!(resp.set_reason_phrase("a\r\nb").is_err());
        resp.set_status(StatusCode::OK).unwrap();
        resp.set_reason_phrase(Some("Fine")).unwrap();
        assert_eq!(resp.reason_phrase(), b"Fine");
        resp.set_reason_phrase(None).unwrap();
        assert_eq!(resp.reason_phrase(), b"OK");
        assert_eq!(resp.reason_phrase(), b"OK");
        assert!(ResponseHeader::build(1000, None).is_err());
    }
}
