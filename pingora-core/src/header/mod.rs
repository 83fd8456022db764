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

mod list;
mod request;
mod response;

pub use request::RequestHeader;
pub use response::ResponseHeader;

pub(crate) use list::HeaderList;
