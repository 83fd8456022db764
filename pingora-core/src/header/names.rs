//! The Pingora-shaped ways to name and read header fields:
//! [`IntoCaseHeaderName`] and [`Headers`].

use super::HeaderList;
use http::HeaderMap;
use http::header::HeaderName;

/// A header name as the field methods (`insert_header`, `append_header`,
/// `remove_header`) take it: a `&str` or `String`, written on the wire as
/// given (case kept), or an `http::HeaderName` (lower case, as that type
/// holds it).
///
/// # Examples
///
/// ```
/// use pingora_core::header::ResponseHeader;
///
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.insert_header("X-Served-By", "a").unwrap();
/// resp.insert_header(http::header::CONTENT_TYPE, "text/plain").unwrap();
/// resp.insert_header(String::from("X-Trace"), "1").unwrap();
/// resp.remove_header(&http::header::CONTENT_TYPE);
/// let names: Vec<&[u8]> = resp.wire_headers().map(|(n, _)| n).collect();
/// assert_eq!(names, [&b"X-Served-By"[..], b"X-Trace"]);
/// ```
pub trait IntoCaseHeaderName {
    /// The name as it is written.
    fn as_case_header_name(&self) -> &str;
}

impl<T: IntoCaseHeaderName + ?Sized> IntoCaseHeaderName for &T {
    fn as_case_header_name(&self) -> &str {
        (**self).as_case_header_name()
    }
}

impl IntoCaseHeaderName for str {
    fn as_case_header_name(&self) -> &str {
        self
    }
}

impl IntoCaseHeaderName for String {
    fn as_case_header_name(&self) -> &str {
        self
    }
}

impl IntoCaseHeaderName for HeaderName {
    fn as_case_header_name(&self) -> &str {
        self.as_str()
    }
}

/// The header fields of a request or response, as the `headers` field of
/// [`RequestParts`](super::RequestParts) and
/// [`ResponseParts`](super::ResponseParts): read it as an
/// `http::HeaderMap` (`req.headers.get("host")`, `.get_all`, `.iter`),
/// through `Deref`.
///
/// The fields themselves are kept in wire order with their case; the map
/// is built on first read. To change fields use the header's
/// `insert_header`, `append_header` and `remove_header`.
#[derive(Debug, Clone)]
pub struct Headers(pub(crate) HeaderList);

impl std::ops::Deref for Headers {
    type Target = HeaderMap;

    fn deref(&self) -> &HeaderMap {
        self.0.map()
    }
}
