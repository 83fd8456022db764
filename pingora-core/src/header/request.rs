//! [`RequestHeader`]: method, target, version and fields of a request.

use super::{HeaderList, Headers};
use bytes::BytesMut;
use http::{Method, Uri, Version};
use pingora_error::{Error, ErrorType, OrErr, Result};

/// The head of an HTTP request: request line and header fields.
///
/// Header names keep their case and order for the wire (see the
/// [module docs](crate::header)).
///
/// # Examples
///
/// ```
/// use pingora_core::header::RequestHeader;
/// use http::{Method, Version};
///
/// let mut req = RequestHeader::build(Method::POST, b"/upload?x=1", Some(4)).unwrap();
/// req.insert_header("Content-Length", "5").unwrap();
/// assert_eq!(req.method(), Method::POST);
/// assert_eq!(req.uri().query(), Some("x=1"));
/// assert_eq!(req.version(), Version::HTTP_11);
/// ```
#[derive(Debug, Clone)]
pub struct RequestHeader {
    parts: RequestParts,
}

/// The parts of a [`RequestHeader`], readable as fields through `Deref`
/// the way Pingora programs read them: `req.method`, `req.uri`,
/// `req.version`, `req.headers`.
///
/// Read-only: change them through the header's methods (`set_uri`,
/// `insert_header` ...), which keep the wire form in step.
///
/// # Examples
///
/// ```
/// use pingora_core::header::RequestHeader;
///
/// let mut req = RequestHeader::build("GET", b"/login?next=/", None).unwrap();
/// req.insert_header("Authorization", "password").unwrap();
/// assert_eq!(req.method, http::Method::GET);
/// assert_eq!(req.uri.path(), "/login");
/// assert_eq!(req.headers.get("authorization").unwrap(), "password");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestParts {
    /// The request method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// The HTTP version.
    pub version: Version,
    /// The header fields, read as an `http::HeaderMap`.
    pub headers: Headers,
}

impl std::ops::Deref for RequestHeader {
    type Target = RequestParts;

    fn deref(&self) -> &RequestParts {
        &self.parts
    }
}

impl RequestHeader {
    /// A request for `path` (an origin-form target such as `/a?b`, or any
    /// form [`Uri`] accepts) with `method`, HTTP/1.1 and no fields.
    /// `size_hint` is the expected number of header fields.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] when the method or path is invalid.
    pub fn build<M>(method: M, path: &[u8], size_hint: Option<usize>) -> Result<Self>
    where
        M: TryInto<Method>,
    {
        let method = method
            .try_into()
            .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid method"))?;
        let uri = Uri::try_from(path).or_err(ErrorType::InvalidHTTPHeader, "invalid uri")?;
        Ok(Self::from_parts(
            method,
            uri,
            Version::HTTP_11,
            HeaderList::with_capacity(size_hint.unwrap_or(8)),
        ))
    }

    /// Pingora's name for a head that writes names in lower case. Here
    /// every head keeps names as they are written, so this is
    /// [`build`](Self::build).
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_no_case<M>(method: M, path: &[u8], size_hint: Option<usize>) -> Result<Self>
    where
        M: TryInto<Method>,
    {
        Self::build(method, path, size_hint)
    }

    /// `GET / HTTP/1.1` with no fields, allocating nothing: a stand-in
    /// until a real head is read.
    pub(crate) fn placeholder() -> Self {
        Self::from_parts(
            Method::GET,
            Uri::default(),
            Version::HTTP_11,
            HeaderList::default(),
        )
    }

    pub(crate) const fn from_parts(
        method: Method,
        uri: Uri,
        version: Version,
        headers: HeaderList,
    ) -> Self {
        Self {
            parts: RequestParts {
                method,
                uri,
                version,
                headers: Headers(headers),
            },
        }
    }

    /// The request method.
    pub const fn method(&self) -> &Method {
        &self.parts.method
    }

    /// Replace the request method.
    pub fn set_method(&mut self, method: Method) {
        self.parts.method = method;
    }

    /// The request target.
    pub const fn uri(&self) -> &Uri {
        &self.parts.uri
    }

    /// Replace the request target.
    pub fn set_uri(&mut self, uri: Uri) {
        self.parts.uri = uri;
    }

    /// The HTTP version of the request.
    pub const fn version(&self) -> Version {
        self.parts.version
    }

    /// Replace the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        self.parts.version = version;
    }

    /// Append the HTTP/1 wire form of the head to `out`: request line,
    /// fields in wire order with their case, blank line.
    pub fn write_h1(&self, out: &mut BytesMut) {
        out.extend_from_slice(self.parts.method.as_str().as_bytes());
        out.extend_from_slice(b" ");
        // RFC 9112 §3.2: origin-form is the default; an empty path is sent
        // as "/" (and "*" only for OPTIONS, which Uri keeps as is).
        match self.parts.uri.path_and_query() {
            Some(pq) if self.parts.uri.scheme().is_none() => {
                let s = pq.as_str();
                out.extend_from_slice(if s.is_empty() { b"/" } else { s.as_bytes() });
            }
            _ => out.extend_from_slice(self.parts.uri.to_string().as_bytes()),
        }
        out.extend_from_slice(version_str(self.parts.version));
        out.extend_from_slice(b"\r\n");
        self.parts.headers.0.write_to(out);
        out.extend_from_slice(b"\r\n");
    }
}

fn version_str(version: Version) -> &'static [u8] {
    if version == Version::HTTP_10 {
        b" HTTP/1.0"
    } else {
        b" HTTP/1.1"
    }
}

field_methods!(RequestHeader, "request", "\"GET\", b\"/\"");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_request_line_and_fields() {
        let mut req = RequestHeader::build("GET", b"/a?b=c", None).unwrap();
        req.insert_header("Host", "x").unwrap();
        let mut out = BytesMut::new();
        req.write_h1(&mut out);
        assert_eq!(&out[..], b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n");
        req.set_version(Version::HTTP_10);
        req.set_method(Method::HEAD);
        req.set_uri(Uri::from_static("http://h/p"));
        out.clear();
        req.write_h1(&mut out);
        assert_eq!(&out[..], b"HEAD http://h/p HTTP/1.0\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn rejects_bad_parts() {
        assert!(RequestHeader::build("G ET", b"/", None).is_err());
        assert!(RequestHeader::build("GET", b"/a b", None).is_err());
    }
}
