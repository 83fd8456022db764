//! Hop-by-hop header fields (RFC 9110 §7.6.1) and re-framing of what is
//! forwarded.
//!
//! A proxy must not forward the fields that describe one connection:
//! `Connection` and every field it names, `Keep-Alive`, `Proxy-Connection`,
//! `TE`, `Transfer-Encoding`, `HTTP2-Settings` and `Upgrade` (kept, with
//! `Connection: upgrade`, only for an upgrade the proxy allows to become a
//! tunnel). `Connection` never removes `Host` or `Content-Length`: they
//! route and frame the message, so a token naming them is ignored. The
//! body framing of the next hop is then chosen anew: a chunked body is
//! re-chunked, a Content-Length is kept.

use http::HeaderValue;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_error::{ErrorType, OrErr, Result};

/// Absolute-form targets (`GET http://host/path`) are for proxies; an
/// origin gets origin-form, and the target's authority replaces `Host`
/// (RFC 9112 §3.2.2).
fn to_origin_form(req: &mut RequestHeader) -> Result<()> {
    let uri = req.uri();
    let (Some(_), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Ok(());
    };
    let host = authority.as_str().to_owned();
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let target = http::Uri::try_from(target)
        .or_err(ErrorType::InvalidHTTPHeader, "invalid request target")?;
    req.set_uri(target);
    req.insert_header("Host", host)
}

/// Prepare a request head for the upstream: drop hop-by-hop fields, speak
/// HTTP/1.1, and announce the body framing the proxy will use.
///
/// `chunked_body` says the downstream body has no known length (it came
/// chunked), so it is re-chunked upstream; a Content-Length is forwarded as
/// is. `upgrade`, the allowed protocols the client offered, replaces
/// `Upgrade` and is asked for with `Connection: upgrade`; without it no
/// upgrade is offered. `HTTP2-Settings` always goes: it belongs to an
/// `h2c` upgrade (RFC 7540 §3.2.1), which is never passed on.
/// `Expect` is dropped: the downstream session answers `100 Continue`
/// itself when the proxy starts reading the body.
///
/// # Errors
///
/// [`ErrorType::InvalidHTTPHeader`] when an absolute-form target cannot be
/// turned into origin-form.
pub(crate) fn upstream_request(
    req: &mut RequestHeader,
    chunked_body: bool,
    upgrade: Option<HeaderValue>,
) -> Result<()> {
    req.remove_hop_by_hop_headers(upgrade.is_some());
    req.remove_header("http2-settings");
    to_origin_form(req)?;
    req.remove_header("expect");
    req.set_version(http::Version::HTTP_11);
    if chunked_body {
        req.remove_header("content-length");
        req.insert_header("Transfer-Encoding", "chunked")?;
    }
    if let Some(offer) = upgrade {
        req.insert_header("Upgrade", offer)?;
        req.insert_header("Connection", "upgrade")?;
    }
    Ok(())
}

/// Prepare a response head for the downstream: drop hop-by-hop fields
/// (keeping `Upgrade` on a 101). The downstream session picks the framing:
/// the Content-Length when there is one, else chunked (or close-delimited
/// to an HTTP/1.0 client).
///
/// # Errors
///
/// Only if a static field cannot be inserted, which does not happen.
pub(crate) fn downstream_response(resp: &mut ResponseHeader) -> Result<()> {
    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let chunked = resp.has_header("transfer-encoding");
    resp.remove_hop_by_hop_headers(upgrade);
    if chunked {
        // RFC 9112 §6.3: with Transfer-Encoding, a Content-Length is
        // ignored; the length is unknown until the body ends.
        resp.remove_header("content-length");
    }
    if upgrade {
        resp.insert_header("Connection", "upgrade")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in fields {
            req.append_header(name, *value).unwrap();
        }
        req
    }

    #[test]
    fn connection_and_named_fields_are_dropped() {
        let mut req = request(&[
            ("Host", "a"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("X-Kept", "yes"),
        ]);
        upstream_request(&mut req, false, None).unwrap();
        let h = req.headers();
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h["x-kept"], "yes");
        assert_eq!(h["host"], "a");
    }

    #[test]
    fn connection_cannot_remove_host_or_length() {
        let mut req = request(&[
            ("Host", "a"),
            ("Content-Length", "5"),
            (
                "Connection",
                "Host, Content-Length, Transfer-Encoding, X-Hop",
            ),
            ("X-Hop", "1"),
        ]);
        upstream_request(&mut req, false, None).unwrap();
        assert_eq!(req.headers()["host"], "a");
        assert_eq!(req.headers()["content-length"], "5");
        assert!(!req.headers().contains_key("x-hop"));
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Content-Length", "3").unwrap();
        resp.append_header("Connection", "content-length").unwrap();
        downstream_response(&mut resp).unwrap();
        assert_eq!(resp.headers()["content-length"], "3");
    }

    #[test]
    fn h2c_upgrade_fields_never_go_upstream() {
        let mut req = request(&[
            ("Connection", "Upgrade, HTTP2-Settings"),
            ("Upgrade", "h2c"),
            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ]);
        upstream_request(&mut req, false, None).unwrap();
        assert!(req.headers().is_empty(), "{:?}", req.headers());
        // Even without `Connection` naming it.
        let mut req = request(&[("HTTP2-Settings", "AAMAAABk")]);
        upstream_request(&mut req, false, None).unwrap();
        assert!(req.headers().is_empty());
    }

    #[test]
    fn chunked_request_is_rechunked() {
        let mut req = request(&[("Transfer-Encoding", "chunked")]);
        upstream_request(&mut req, true, None).unwrap();
        assert_eq!(req.headers()["transfer-encoding"], "chunked");
        let mut req = request(&[("Content-Length", "5"), ("Expect", "100-continue")]);
        upstream_request(&mut req, false, None).unwrap();
        assert_eq!(req.headers()["content-length"], "5");
        assert!(!req.headers().contains_key("expect"));
    }

    #[test]
    fn upgrade_is_kept_when_upgrading() {
        let mut req = request(&[("Connection", "Upgrade"), ("Upgrade", "websocket")]);
        req.set_version(http::Version::HTTP_10);
        let offer = Some(HeaderValue::from_static("websocket"));
        upstream_request(&mut req, false, offer).unwrap();
        assert_eq!(req.headers()["upgrade"], "websocket");
        assert_eq!(req.headers()["connection"], "upgrade");
        assert_eq!(req.version(), http::Version::HTTP_11);
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let mut req = RequestHeader::build("GET", b"http://example.com:8080/a?b=1", None).unwrap();
        req.insert_header("Host", "other").unwrap();
        upstream_request(&mut req, false, None).unwrap();
        assert_eq!(req.uri().to_string(), "/a?b=1");
        assert_eq!(req.headers()["host"], "example.com:8080");
        let mut req = RequestHeader::build("GET", b"/plain", None).unwrap();
        upstream_request(&mut req, false, None).unwrap();
        assert_eq!(req.uri().to_string(), "/plain");
        assert!(!req.headers().contains_key("host"));
    }

    #[test]
    fn response_fields_are_dropped_and_101_keeps_upgrade() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Transfer-Encoding", "chunked").unwrap();
        resp.append_header("Content-Length", "3").unwrap();
        resp.append_header("Connection", "close").unwrap();
        downstream_response(&mut resp).unwrap();
        assert!(resp.headers().is_empty());

        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.append_header("Upgrade", "websocket").unwrap();
        resp.append_header("Connection", "upgrade").unwrap();
        downstream_response(&mut resp).unwrap();
        assert_eq!(resp.headers()["upgrade"], "websocket");
        assert_eq!(resp.headers()["connection"], "upgrade");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const NAMES: [&str; 12] = [
            "Connection",
            "keep-alive",
            "TE",
            "Transfer-Encoding",
            "Upgrade",
            "Proxy-Connection",
            "X-A",
            "x-b",
            "Host",
            "Content-Length",
            "HOST",
            "HTTP2-Settings",
        ];

        /// Fields `Connection` can never remove, in lowercase.
        const NEVER_NOMINATED: [&str; 2] = ["host", "content-length"];

        fn field() -> impl Strategy<Value = (usize, String)> {
            let value = prop_oneof![
                "[ -~]{0,20}",
                prop::sample::subsequence(NAMES.to_vec(), 0..4).prop_map(|v| v.join(", ")),
            ];
            (0..NAMES.len(), value)
        }

        /// 256 cases, or `PROPTEST_CASES` (proptest's own variable) for
        /// a long run: `PROPTEST_CASES=1000000 cargo test --release -p
        /// pingora-proxy --lib hop::tests::properties`.
        fn cases() -> u32 {
            std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(256)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(cases()))]

            /// Whatever the fields, no hop-by-hop field survives, nothing
            /// `Connection` names survives but `Host` and `Content-Length`,
            /// which always do, and nothing panics.
            #[test]
            fn no_hop_field_survives(fields in prop::collection::vec(field(), 0..12)) {
                let mut req = RequestHeader::build("GET", b"/", None).unwrap();
                for (name, value) in &fields {
                    // Values the header type refuses are not ours to test.
                    let _ = req.append_header(NAMES[*name], value.as_str());
                }
                // The names `Connection` lists, worked out here independently.
                let named: Vec<String> = req
                    .get_header_values("connection")
                    .flat_map(|v| v.to_str().unwrap_or("").split(','))
                    .map(|t| t.trim_matches([' ', '\t']).to_ascii_lowercase())
                    .filter(|t| http::HeaderName::from_bytes(t.as_bytes()).is_ok())
                    .filter(|t| !NEVER_NOMINATED.contains(&t.as_str()))
                    .collect();
                // What of the never-nominated fields each head holds before.
                let held = |h: &http::HeaderMap| -> Vec<Vec<HeaderValue>> {
                    NEVER_NOMINATED
                        .iter()
                        .map(|n| h.get_all(*n).iter().cloned().collect())
                        .collect()
                };
                let req_held = held(req.headers());
                let mut resp = ResponseHeader::build(200, None).unwrap();
                for (name, value) in &fields {
                    let _ = resp.append_header(NAMES[*name], value.as_str());
                }
                let resp_chunked = resp.headers().contains_key("transfer-encoding");
                let resp_held = held(resp.headers());
                upstream_request(&mut req, false, None).unwrap();
                downstream_response(&mut resp).unwrap();
                prop_assert_eq!(held(req.headers()), req_held);
                let resp_now = held(resp.headers());
                prop_assert_eq!(&resp_now[0], &resp_held[0]);
                if !resp_chunked {
                    // With Transfer-Encoding, Content-Length is dropped
                    // for the framing's sake (RFC 9112 §6.3), not because
                    // `Connection` named it.
                    prop_assert_eq!(&resp_now[1], &resp_held[1]);
                }
                prop_assert!(!req.headers().contains_key("http2-settings"));
                for headers in [req.headers(), resp.headers()] {
                    for gone in ["connection", "keep-alive", "te", "upgrade", "proxy-connection"] {
                        prop_assert!(!headers.contains_key(gone), "{gone}");
                    }
                    for name in &named {
                        prop_assert!(!headers.contains_key(name.as_str()), "{name}");
                    }
                }
                prop_assert!(!resp.headers().contains_key("transfer-encoding"));
            }
        }
    }
}
