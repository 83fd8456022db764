//! `Vary` (RFC 9111 §4.1): which request fields select among the stored
//! variants of one cache key.

use pingora_core::header::ResponseHeader;

/// Whether a response's `Vary` holds `*`, which never matches a later
/// request (RFC 9111 §4.1), so the response is never stored.
pub fn has_vary_star(resp: &ResponseHeader) -> bool {
    resp.get_header_values("vary")
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|name| name.trim_ascii() == b"*")
}
