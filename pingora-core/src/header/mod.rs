//! HTTP request and response headers that remember how they were written.
//!
//! [`RequestHeader`] and [`ResponseHeader`] wrap the `http` crate's method,
//! URI, status, version and [`HeaderMap`](http::HeaderMap), and also keep
//! every header field in arrival order with the exact case of its name.
//! A proxy only forwards what it did not change, so a header that came in
//! as `X-Request-ID` leaves as `X-Request-ID`, in the same place.
//!
//! Change headers through the methods on the header types
//! (`insert_header`, `append_header`, `remove_header`): they keep the lookup
//! map and the wire order in step. [`headers`](RequestHeader::headers) gives
//! read access to the map for lookups.
//!
//! # Examples
//!
//! ```
//! use pingora_core::header::RequestHeader;
//!
//! let mut req = RequestHeader::build("GET", b"/index.html", None).unwrap();
//! req.insert_header("Host", "example.com").unwrap();
//! req.append_header("X-Trace", "a").unwrap();
//! req.append_header("x-trace", "b").unwrap();
//! assert_eq!(req.headers().get_all("x-trace").iter().count(), 2);
//! let names: Vec<&[u8]> = req.wire_headers().map(|(n, _)| n).collect();
//! assert_eq!(names, [&b"Host"[..], b"X-Trace", b"x-trace"]);
//! ```

/// The field methods `RequestHeader` and `ResponseHeader` share: each
/// passes to the head's [`HeaderList`]. `$what` names the head in the
/// docs, `$build` is the argument list of a `build` call for the example.
macro_rules! field_methods {
    ($ty:ident, $what:literal, $build:literal) => {
        impl $ty {
            /// The header fields as an `http::HeaderMap`, for lookups.
            ///
            /// The map is built on the first call (and kept in step with later
            /// changes); to look up one field, [`get_header`](Self::get_header)
            /// and [`get_header_values`](Self::get_header_values) are cheaper.
            pub fn headers(&self) -> &http::header::HeaderMap {
                self.parts.headers.0.map()
            }

            /// The first value of the field `name`, in any case.
            ///
            /// Scans the fields in wire order, without building the map
            /// [`headers`](Self::headers) returns.
            pub fn get_header(&self, name: &str) -> Option<&http::header::HeaderValue> {
                self.parts.headers.0.get(name)
            }

            /// Every value of the field `name`, in any case, in wire order.
            pub fn get_header_values<'a>(
                &'a self,
                name: &'a str,
            ) -> impl Iterator<Item = &'a http::header::HeaderValue> + 'a {
                self.parts.headers.0.get_all(name)
            }

            #[doc = concat!("Whether the ", $what, " has a field `name`, in any case.")]
            pub fn has_header(&self, name: &str) -> bool {
                self.parts.headers.0.contains(name)
            }

            #[doc = concat!("How many header fields the ", $what, " has.")]
            pub const fn header_count(&self) -> usize {
                self.parts.headers.0.len()
            }

            /// Keep only the fields for which `keep(name, value)` is true (the
            /// name as written), in one pass over the fields: cheaper than a
            /// [`remove_header`](Self::remove_header) per name when several go.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("# use pingora_core::header::", stringify!($ty), ";")]
            #[doc = concat!("# let mut head = ", stringify!($ty), "::build(", $build, ", None).unwrap();")]
            /// head.append_header("X-Internal-Id", "7").unwrap();
            /// head.append_header("Accept", "*/*").unwrap();
            /// head.retain_headers(|name, _| !name.starts_with(b"X-Internal-"));
            /// assert!(!head.has_header("x-internal-id"));
            /// assert_eq!(head.header_count(), 1);
            /// ```
            pub fn retain_headers(
                &mut self,
                keep: impl FnMut(&[u8], &http::header::HeaderValue) -> bool,
            ) {
                self.parts.headers.0.retain(keep);
            }

            /// Remove the hop-by-hop fields (RFC 9110 §7.6.1), which describe
            /// one connection and must not be forwarded: `Connection`, every
            /// field it names, `Keep-Alive`, `Proxy-Connection`, `TE`,
            /// `Transfer-Encoding`, and `Upgrade` unless `keep_upgrade` (set it
            /// when an upgrade is being passed on).
            ///
            /// `Connection` never removes `Host` or `Content-Length`: they route
            /// and frame the message, never describe one connection, and losing
            /// them would make the next hop see another target or another body
            /// (a token naming them is ignored).
            ///
            /// Cheap when there is nothing to remove: the head knows whether it
            /// holds any of these names without scanning its fields.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("# use pingora_core::header::", stringify!($ty), ";")]
            #[doc = concat!("# let mut head = ", stringify!($ty), "::build(", $build, ", None).unwrap();")]
            /// head.append_header("Connection", "keep-alive, X-Hop").unwrap();
            /// head.append_header("X-Hop", "1").unwrap();
            /// head.append_header("Accept", "*/*").unwrap();
            /// head.remove_hop_by_hop_headers(false);
            /// let names: Vec<&[u8]> = head.wire_headers().map(|(n, _)| n).collect();
            /// assert_eq!(names, [&b"Accept"[..]]);
            /// ```
            pub fn remove_hop_by_hop_headers(&mut self, keep_upgrade: bool) {
                self.parts.headers.0.remove_hop_by_hop(keep_upgrade);
            }

            pub(crate) const fn header_list(&self) -> &$crate::header::HeaderList {
                &self.parts.headers.0
            }

            /// Hand over the received head the parsed fields' values are
            /// spans of.
            pub(crate) fn set_received_head(&mut self, head: bytes::Bytes) {
                self.parts.headers.0.set_head(head);
            }

            /// The header fields in wire order, each name as it was written.
            pub fn wire_headers(
                &self,
            ) -> impl Iterator<Item = (&[u8], &http::header::HeaderValue)> {
                self.parts.headers.0.wire()
            }

            /// Set `name` to `value`, replacing every existing field of that name
            /// (the new field takes the place of the first old one).
            ///
            /// # Errors
            ///
            /// [`ErrorType::InvalidHTTPHeader`](pingora_error::ErrorType::InvalidHTTPHeader)
            /// when the name or value is invalid.
            ///
            /// `name` is a `&str`, a `String` or an `http::HeaderName`; see
            /// [`IntoCaseHeaderName`]($crate::header::IntoCaseHeaderName).
            pub fn insert_header<V>(
                &mut self,
                name: impl $crate::header::IntoCaseHeaderName,
                value: V,
            ) -> pingora_error::Result<()>
            where
                V: TryInto<http::header::HeaderValue>,
                V::Error: std::error::Error + Send + Sync + 'static,
            {
                self.parts.headers.0.insert(name.as_case_header_name(), value)
            }

            /// Add a field `name: value` after the existing fields.
            ///
            /// # Errors
            ///
            /// [`ErrorType::InvalidHTTPHeader`](pingora_error::ErrorType::InvalidHTTPHeader)
            /// when the name or value is invalid.
            pub fn append_header<V>(
                &mut self,
                name: impl $crate::header::IntoCaseHeaderName,
                value: V,
            ) -> pingora_error::Result<()>
            where
                V: TryInto<http::header::HeaderValue>,
                V::Error: std::error::Error + Send + Sync + 'static,
            {
                self.parts.headers.0.append(name.as_case_header_name(), value)
            }

            /// Remove every field named `name`; returns the first removed value.
            pub fn remove_header(
                &mut self,
                name: impl $crate::header::IntoCaseHeaderName,
            ) -> Option<http::header::HeaderValue> {
                self.parts.headers.0.remove(name.as_case_header_name())
            }

            /// Set `Content-Length` to `len`, replacing any existing value.
            ///
            /// # Errors
            ///
            /// None in practice (a number is always a valid value); the
            /// `Result` keeps Pingora's signature.
            pub fn set_content_length(&mut self, len: usize) -> pingora_error::Result<()> {
                self.insert_header("Content-Length", len)
            }
        }
    };
}

mod hop;
mod known;
mod list;
mod names;
mod request;
mod response;
pub(crate) mod target;

pub use names::{Headers, IntoCaseHeaderName};
pub use request::{RequestHeader, RequestParts};
pub use response::{ResponseHeader, ResponseParts};

pub(crate) use hop::trim_ows;
pub(crate) use known::{same_name, static_spelling};
pub(crate) use list::HeaderList;
