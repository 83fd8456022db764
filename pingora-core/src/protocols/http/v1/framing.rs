//! Sans-IO framing decisions: how long a message body is (RFC 9112 §6.3),
//! whether a connection persists (RFC 9112 §9.3), and the checks that stop
//! request smuggling.

use crate::header::{HeaderList, RequestHeader, ResponseHeader, same_name, trim_ows};
use http::header;
use http::{Method, StatusCode, Version};

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// Chunked transfer coding (RFC 9112 §7.1).
    Chunked,
    /// Until the connection closes: responses without a length (RFC 9112
    /// §6.3 rule 8) and raw bytes after an upgrade.
    UntilClose,
}

/// The comma-separated elements of every field named `name`, trimmed of
/// optional whitespace, empty ones skipped (RFC 9110 §5.6.1). Bytes, not
/// text: every element is compared with ASCII, which non-ASCII bytes
/// never match.
fn elements<'a>(headers: &'a HeaderList, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers.get_all_bytes(name).flat_map(|v| {
        v.split(|&b| b == b',')
            .map(trim_ows)
            .filter(|e| !e.is_empty())
    })
}

/// Whether a `Connection`-style list field holds `token`.
pub(crate) fn has_token(headers: &HeaderList, name: &header::HeaderName, token: &str) -> bool {
    let token = token.as_bytes();
    headers.get_all_bytes(name.as_str()).any(|v| {
        v.split(|&b| b == b',')
            .any(|e| same_name(trim_ows(e), token))
    })
}

/// Parse every Content-Length value. RFC 9110 §8.6: a list of identical
/// values may be taken as one value; differing values, or anything but
/// digits, make the framing invalid (RFC 9112 §6.3 rule 5).
fn content_length(headers: &HeaderList) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    let mut present = false;
    for value in headers.get_all_bytes(header::CONTENT_LENGTH.as_str()) {
        present = true;
        for e in value.split(|&b| b == b',').map(trim_ows) {
            if e.is_empty() {
                continue;
            }
            // u64 holds any 19-digit number; longer is a bogus length anyway.
            if e.len() > 19 || !e.iter().all(u8::is_ascii_digit) {
                return Err("invalid content-length");
            }
            let n = e.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            match found {
                Some(prev) if prev != n => return Err("differing content-length values"),
                _ => found = Some(n),
            }
        }
    }
    if found.is_none() && present {
        return Err("empty content-length");
    }
    Ok(found)
}

/// Check Transfer-Encoding. We only accept exactly `chunked`: RFC 9112
/// §6.3 rule 4 requires a request's final coding to be chunked, and we
/// decode no other coding, so anything else would leave the body length
/// unknown to us while a neighbour might read it differently.
fn transfer_encoding(headers: &HeaderList, version: Version) -> Result<bool, &'static str> {
    if !headers.contains(header::TRANSFER_ENCODING.as_str()) {
        return Ok(false);
    }
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means the
    // framing is faulty.
    if version == Version::HTTP_10 {
        return Err("transfer-encoding in http/1.0");
    }
    let mut codings = elements(headers, header::TRANSFER_ENCODING.as_str());
    match (codings.next(), codings.next()) {
        (Some(c), None) if same_name(c, b"chunked") => Ok(true),
        _ => Err("unsupported transfer-encoding"),
    }
}

/// Framing from Content-Length and Transfer-Encoding, rejecting both at
/// once (RFC 9112 §6.3 rule 3: a classic smuggling vector, so we treat it
/// as an error instead of letting Transfer-Encoding win).
fn length_framing(headers: &HeaderList, version: Version) -> Result<Option<Framing>, &'static str> {
    let chunked = transfer_encoding(headers, version)?;
    if chunked && headers.contains(header::CONTENT_LENGTH.as_str()) {
        return Err("both content-length and transfer-encoding");
    }
    if chunked {
        return Ok(Some(Framing::Chunked));
    }
    Ok(content_length(headers)?.map(|n| {
        if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        }
    }))
}

/// Check a request head and find its body framing. `Err` means 400 and
/// close the connection.
pub(crate) fn request_framing(req: &RequestHeader) -> Result<Framing, &'static str> {
    // RFC 9112 §3.2: a request with no Host (in 1.1) or more than one Host
    // gets 400.
    let hosts = req
        .header_list()
        .get_all_bytes(header::HOST.as_str())
        .count();
    if hosts > 1 || (hosts == 0 && req.version() == Version::HTTP_11) {
        return Err("missing or repeated host");
    }
    request_body_framing(req)
}

/// The body framing of a request from its length fields alone, for a
/// client that sends it (the Host rules are the server's to enforce).
pub(crate) fn request_body_framing(req: &RequestHeader) -> Result<Framing, &'static str> {
    // RFC 9112 §6.3 rule 7: a request without either field has no body.
    Ok(length_framing(req.header_list(), req.version())?.unwrap_or(Framing::Empty))
}

/// Find the body framing of a response to a `method` request. `Err` means
/// the upstream sent conflicting framing: close and fail, never forward.
pub(crate) fn response_framing(
    method: &Method,
    resp: &ResponseHeader,
) -> Result<Framing, &'static str> {
    let status = resp.status();
    // RFC 9112 §6.3 rule 1.
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    // RFC 9112 §6.3 rule 2: a 2xx to CONNECT is a tunnel.
    if *method == Method::CONNECT && status.is_success() {
        return Ok(Framing::UntilClose);
    }
    Ok(length_framing(resp.header_list(), resp.version())?.unwrap_or(Framing::UntilClose))
}

/// Whether the connection persists after this request, by RFC 9112 §9.3:
/// `close` ends it; HTTP/1.1 persists by default; HTTP/1.0 only with
/// `keep-alive`.
pub(crate) fn request_keepalive(req: &RequestHeader) -> bool {
    keepalive(req.header_list(), req.version())
}

/// The same rule for a response.
pub(crate) fn response_keepalive(resp: &ResponseHeader) -> bool {
    keepalive(resp.header_list(), resp.version())
}

fn keepalive(headers: &HeaderList, version: Version) -> bool {
    if has_token(headers, &header::CONNECTION, "close") {
        return false;
    }
    version == Version::HTTP_11 || has_token(headers, &header::CONNECTION, "keep-alive")
}

/// Whether the request asks to switch protocols (RFC 9110 §7.8): HTTP/1.1
/// with `Upgrade` named in `Connection`.
pub(crate) fn is_upgrade_request(req: &RequestHeader) -> bool {
    req.version() == Version::HTTP_11
        && req.has_header(header::UPGRADE.as_str())
        && has_token(req.header_list(), &header::CONNECTION, "upgrade")
}

/// Whether the client waits for `100 Continue` (RFC 9110 §10.1.1; ignored
/// in HTTP/1.0 requests).
pub(crate) fn expects_continue(req: &RequestHeader) -> bool {
    req.version() == Version::HTTP_11
        && req
            .get_header(header::EXPECT.as_str())
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(fields: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        r.append_header("Host", "h").unwrap();
        for (n, v) in fields {
            r.append_header(n, *v).unwrap();
        }
        r
    }

    #[test]
    fn request_rules() {
        assert_eq!(request_framing(&req(&[])), Ok(Framing::Empty));
        assert_eq!(
            request_framing(&req(&[("Content-Length", "5")])),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            request_framing(&req(&[("Content-Length", "0")])),
            Ok(Framing::Empty)
        );
        assert_eq!(
            request_framing(&req(&[("Content-Length", "5, 5"), ("content-length", "5")])),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            request_framing(&req(&[("Transfer-Encoding", "Chunked")])),
            Ok(Framing::Chunked)
        );
        for bad in [
            &[("Content-Length", "5"), ("Content-Length", "6")][..],
            &[("Content-Length", "5, 6")],
            &[("Content-Length", "+5")],
            &[("Content-Length", "-1")],
            &[("Content-Length", "0x5")],
            &[("Content-Length", "99999999999999999999")],
            &[("Content-Length", "")],
            &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
            &[("Transfer-Encoding", "gzip, chunked")],
            &[("Transfer-Encoding", "chunked, chunked")],
            &[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "identity"),
            ],
            &[("Transfer-Encoding", "gzip")],
            &[("Transfer-Encoding", "xchunked")],
            &[("Transfer-Encoding", "")],
            &[("Host", "again")],
        ] {
            assert!(request_framing(&req(bad)).is_err(), "{bad:?}");
        }
        let mut r = req(&[("Transfer-Encoding", "chunked")]);
        r.set_version(Version::HTTP_10);
        assert!(request_framing(&r).is_err());
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(request_framing(&r).is_err());
        r.set_version(Version::HTTP_10);
        assert_eq!(request_framing(&r), Ok(Framing::Empty));
    }

    #[test]
    fn response_rules() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        assert_eq!(response_framing(&Method::GET, &r), Ok(Framing::UntilClose));
        r.insert_header("Content-Length", "3").unwrap();
        assert_eq!(response_framing(&Method::GET, &r), Ok(Framing::Length(3)));
        assert_eq!(response_framing(&Method::HEAD, &r), Ok(Framing::Empty));
        r.insert_header("Transfer-Encoding", "chunked").unwrap();
        assert!(response_framing(&Method::GET, &r).is_err());
        r.remove_header("content-length");
        assert_eq!(response_framing(&Method::GET, &r), Ok(Framing::Chunked));
        for s in [100, 204, 304] {
            r.set_status(s).unwrap();
            assert_eq!(response_framing(&Method::GET, &r), Ok(Framing::Empty));
        }
    }

    #[test]
    fn connection_rules() {
        let mut r = req(&[]);
        assert!(request_keepalive(&r));
        r.insert_header("Connection", "foo, Close").unwrap();
        assert!(!request_keepalive(&r));
        r.set_version(Version::HTTP_10);
        r.insert_header("Connection", "keep-alive").unwrap();
        assert!(request_keepalive(&r));
        r.remove_header("connection");
        assert!(!request_keepalive(&r));
        let mut r = req(&[("Upgrade", "websocket"), ("Connection", "Upgrade")]);
        assert!(is_upgrade_request(&r));
        r.insert_header("Expect", "100-Continue").unwrap();
        assert!(expects_continue(&r));
    }
}
