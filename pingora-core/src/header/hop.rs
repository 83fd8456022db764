//! Hop-by-hop fields (RFC 9110 §7.6.1): the fields that describe one
//! connection and must not be forwarded to the next.

use super::HeaderList;
use super::known::{
    CONNECTION, CONTENT_LENGTH, HOST, KEEP_ALIVE, KnownSet, PROXY_CONNECTION, TE,
    TRANSFER_ENCODING, UPGRADE, known_bit, same_name,
};
use http::header::HeaderName;

/// Trim optional whitespace (RFC 9110 §5.6.3) from both ends.
pub(crate) fn trim_ows(mut e: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = e {
        e = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = e {
        e = rest;
    }
    e
}

/// The fields that are always hop-by-hop, beyond those `Connection` names:
/// `Transfer-Encoding` is listed by RFC 9112 §6.1 as applying to one hop,
/// and `Upgrade` unless an upgrade is being proxied.
const fn always(keep_upgrade: bool) -> KnownSet {
    let set = CONNECTION | KEEP_ALIVE | PROXY_CONNECTION | TE | TRANSFER_ENCODING;
    if keep_upgrade { set } else { set | UPGRADE }
}

/// The fields a `Connection` token never removes: those that route and
/// frame the message. `Connection: Host` would make the next hop lose the
/// target's authority, and `Connection: Content-Length` would turn a
/// request with a body into one without, so the proxy and the next hop
/// would disagree about where the message ends. RFC 9110 §7.6.1 lets a
/// sender nominate only fields that describe the connection; these never
/// do, so such a token is ignored. `Transfer-Encoding` is hop-by-hop
/// anyway, and the framing of the next hop is chosen anew.
pub(crate) const NEVER_NOMINATED: KnownSet = HOST | CONTENT_LENGTH | TRANSFER_ENCODING;

/// The field names listed in `Connection` that are not already removed
/// anyway. The usual tokens (`close`, `keep-alive`, `upgrade`) are skipped,
/// so the common case allocates nothing, and so are the names of
/// [`NEVER_NOMINATED`] fields. Bounded: a head is bounded by the head size
/// limit, and so is this list.
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<HeaderName> {
    let mut names = Vec::new();
    for value in values {
        for token in value.split(|&b| b == b',') {
            let token = trim_ows(token);
            let usual = [&b"close"[..], b"keep-alive", b"upgrade", b""]
                .iter()
                .any(|u| same_name(token, u));
            if usual || known_bit(token) & NEVER_NOMINATED != 0 {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token) {
                names.push(name);
            }
        }
    }
    names
}

impl HeaderList {
    /// Remove `Connection`, every field it names (but `Host` and
    /// `Content-Length`, see [`NEVER_NOMINATED`]), `Keep-Alive`,
    /// `Proxy-Connection`, `TE`, `Transfer-Encoding` and, unless
    /// `keep_upgrade`, `Upgrade` (which `Connection` naming it does not
    /// remove then either).
    pub(crate) fn remove_hop_by_hop(&mut self, keep_upgrade: bool) {
        let always = always(keep_upgrade);
        // A field `Connection` names is only hop-by-hop when `Connection`
        // itself is present, and that is in `always`.
        if !self.has_any(always) {
            return;
        }
        let named = connection_tokens(self.get_all_bytes("connection"));
        self.retain_known(|name, bit| {
            if bit & always != 0 {
                return false;
            }
            let kept_upgrade = keep_upgrade && bit == UPGRADE;
            kept_upgrade || !named.iter().any(|n| same_name(name, n.as_str().as_bytes()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(fields: &[(&str, &str)]) -> HeaderList {
        let mut l = HeaderList::with_capacity(fields.len());
        for (name, value) in fields {
            l.append(name, *value).unwrap();
        }
        l
    }

    #[test]
    fn connection_cannot_remove_routing_or_framing_fields() {
        let mut l = list(&[
            ("Host", "a"),
            ("Content-Length", "5"),
            ("Connection", "Host, content-length, X-Hop"),
            ("Connection", "HOST"),
            ("X-Hop", "1"),
        ]);
        l.remove_hop_by_hop(false);
        assert_eq!(l.get("host").unwrap(), "a");
        assert_eq!(l.get("content-length").unwrap(), "5");
        assert!(l.get("x-hop").is_none());
        assert!(l.get("connection").is_none());
    }
}
