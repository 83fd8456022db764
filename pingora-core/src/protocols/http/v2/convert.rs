//! Translating heads between the framework's header types and the `http`
//! types `h2` reads and writes.
//!
//! Sessions present HTTP/2 requests the way HTTP/1 ones look, so that code
//! above the protocols needs no version checks: the target is in origin
//! form and `:authority` is visible as `Host` (RFC 9113 §8.3.1). Going out,
//! the connection-specific fields HTTP/2 forbids are dropped (RFC 9113
//! §8.2.2).

use crate::header::{HeaderList, RequestHeader, ResponseHeader, target};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use pingora_error::{Error, ErrorType, OrErr, Result};

/// Fields that are specific to one HTTP/1 connection and must not appear
/// in an HTTP/2 message (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Whether `name: value` may be sent in an HTTP/2 message: not connection
/// specific, and `TE` only as `trailers` (kept, as gRPC needs it).
fn allowed(name: &HeaderName, value: &HeaderValue) -> bool {
    if CONNECTION_SPECIFIC.contains(name) {
        return false;
    }
    name != header::TE || value.as_bytes().eq_ignore_ascii_case(b"trailers")
}

fn list_from(map: &HeaderMap) -> HeaderList {
    let mut list = HeaderList::with_capacity(map.len() + 1);
    for (name, value) in map {
        // h2 delivers lowercase names, so the wire case is the name itself.
        let case = Bytes::copy_from_slice(name.as_str().as_bytes());
        list.push_parsed(case, value.clone());
    }
    list
}

/// The request `h2` decoded, as the HTTP/1-shaped [`RequestHeader`],
/// once it passed the checks HTTP/1 requests get (see
/// [`target`](crate::header::target)): a valid `:authority` without
/// userinfo, at most one valid `Host` that names the same host, at least
/// one of them, and a `:path` by the HTTP/1 target rules (RFC 9113
/// §8.3.1).
///
/// # Errors
///
/// Why the request is refused (answer 400).
pub(crate) fn request_from_h2(parts: &http::request::Parts) -> Result<RequestHeader, &'static str> {
    let uri = &parts.uri;
    let authority = uri.authority().map(|a| a.as_str().as_bytes());
    if let Some(authority) = authority {
        if authority.contains(&b'@') {
            return Err("userinfo in :authority");
        }
        target::check_authority(authority)?;
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next(), authority) {
        (Some(_), Some(_), _) => return Err("repeated host"),
        (None, _, None) => return Err("missing :authority and host"),
        (Some(host), None, authority) => {
            target::check_authority(host.as_bytes())?;
            if authority.is_some_and(|a| !a.eq_ignore_ascii_case(host.as_bytes())) {
                return Err("host differs from :authority");
            }
        }
        (None, _, Some(_)) => {}
    }
    if parts.method == Method::CONNECT {
        target::check_target(&parts.method, authority.unwrap_or_default())?;
    } else {
        let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        target::check_target(&parts.method, path.as_bytes())?;
    }
    let mut list = list_from(&parts.headers);
    if let (false, Some(authority)) = (parts.headers.contains_key(header::HOST), uri.authority()) {
        // An authority is always a valid header value.
        let _ = list.append("host", authority.as_str());
    }
    let target = if parts.method == Method::CONNECT {
        uri.clone()
    } else {
        let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        Uri::try_from(path).map_err(|_| "invalid :path")?
    };
    Ok(RequestHeader::from_parts(
        parts.method.clone(),
        target,
        Version::HTTP_2,
        list,
    ))
}

/// A response head as `h2` sends it.
///
/// # Errors
///
/// [`ErrorType::InvalidHTTPHeader`] when the head cannot be built.
pub(crate) fn response_to_h2(resp: &ResponseHeader) -> Result<Response<()>> {
    let mut out = Response::new(());
    *out.status_mut() = resp.status();
    *out.version_mut() = Version::HTTP_2;
    copy_allowed(resp.headers(), out.headers_mut());
    Ok(out)
}

/// The response `h2` decoded, as a [`ResponseHeader`].
pub(crate) fn response_from_h2(parts: &http::response::Parts) -> ResponseHeader {
    ResponseHeader::from_parts(
        parts.status,
        Version::HTTP_2,
        None,
        list_from(&parts.headers),
    )
}

/// A request head as `h2` sends it, for a peer reached over `tls` (or
/// not). `:authority` comes from the target, else `Host`, else
/// `default_authority` (the peer's name); `Host` itself is dropped.
///
/// # Errors
///
/// [`ErrorType::InvalidHTTPHeader`] when no valid authority or target can
/// be built.
pub(crate) fn request_to_h2(
    req: &RequestHeader,
    tls: bool,
    default_authority: &str,
) -> Result<Request<()>> {
    let uri = req.uri();
    let authority = match uri.authority() {
        Some(a) => a.clone(),
        None => {
            let host = req
                .get_header(header::HOST.as_str())
                .map(HeaderValue::as_bytes);
            let raw = host.unwrap_or(default_authority.as_bytes());
            Authority::try_from(raw).or_err(ErrorType::InvalidHTTPHeader, "invalid authority")?
        }
    };
    let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    parts.path_and_query = if req.method() == Method::CONNECT {
        None
    } else {
        Some(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        )
    };
    let uri = Uri::from_parts(parts)
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "invalid request target", e))?;
    let mut out = Request::new(());
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = uri;
    *out.version_mut() = Version::HTTP_2;
    copy_allowed(req.headers(), out.headers_mut());
    out.headers_mut().remove(header::HOST);
    Ok(out)
}

/// Trailers as `h2` sends them: connection-specific fields dropped.
pub(crate) fn trailers_to_h2(trailers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(trailers.len());
    copy_allowed(trailers, &mut out);
    out
}

fn copy_allowed(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if allowed(name, value) {
            to.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_looks_like_http1() {
        let req = Request::builder()
            .method("POST")
            .uri("https://example.com:8443/a/b?c=d")
            .header("x-id", "1")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let head = request_from_h2(&parts).unwrap();
        assert_eq!(head.uri(), "/a/b?c=d");
        assert_eq!(head.version(), Version::HTTP_2);
        assert_eq!(head.headers()["host"], "example.com:8443");
        assert_eq!(head.headers()["x-id"], "1");
    }

    fn checked(uri: &str, hosts: &[&str]) -> Result<RequestHeader, &'static str> {
        let mut req = Request::builder().method("GET").uri(uri);
        for h in hosts {
            req = req.header("host", *h);
        }
        let (parts, ()) = req.body(()).unwrap().into_parts();
        request_from_h2(&parts)
    }

    #[test]
    fn authority_and_host_are_checked() {
        assert!(checked("https://a.test/x", &[]).is_ok());
        assert!(checked("https://a.test/x", &["A.TEST"]).is_ok());
        assert!(checked("/x", &["a.test"]).is_ok());
        for (uri, hosts) in [
            ("/x", &[][..]),
            ("https://a.test/x", &["b.test"]),
            ("https://a.test/x", &["a.test", "a.test"]),
            ("/x", &["a b"]),
            ("/x", &["user@a"]),
            ("https://user@a.test/x", &[]),
            ("https://a.test:99999/x", &[]),
            ("https://a.test/x{y}", &[]),
        ] {
            assert!(checked(uri, hosts).is_err(), "{uri} {hosts:?}");
        }
    }

    #[test]
    fn connection_specific_fields_are_dropped() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Connection", "keep-alive").unwrap();
        resp.insert_header("Transfer-Encoding", "chunked").unwrap();
        resp.insert_header("Keep-Alive", "timeout=5").unwrap();
        resp.insert_header("Content-Type", "text/plain").unwrap();
        let out = response_to_h2(&resp).unwrap();
        assert_eq!(out.headers().len(), 1);
        assert_eq!(out.headers()["content-type"], "text/plain");
    }

    #[test]
    fn request_to_h2_uses_host_as_authority_and_keeps_te_trailers() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("Host", "origin.test").unwrap();
        req.insert_header("TE", "trailers").unwrap();
        req.insert_header("Upgrade", "websocket").unwrap();
        let out = request_to_h2(&req, true, "fallback").unwrap();
        assert_eq!(out.uri(), "https://origin.test/x");
        assert!(out.headers().get("host").is_none());
        assert_eq!(out.headers()["te"], "trailers");
        assert!(out.headers().get("upgrade").is_none());

        let mut gzip = RequestHeader::build("GET", b"/", None).unwrap();
        gzip.insert_header("TE", "gzip").unwrap();
        let out = request_to_h2(&gzip, false, "peer:80").unwrap();
        assert_eq!(out.uri(), "http://peer:80/");
        assert!(out.headers().get("te").is_none());
    }

    #[test]
    fn bad_authority_is_an_error() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "a b").unwrap();
        let err = request_to_h2(&req, false, "x").unwrap_err();
        assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader);
    }
}
