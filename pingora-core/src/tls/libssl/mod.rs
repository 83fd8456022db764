//! What the OpenSSL and BoringSSL backends share.
//!
//! BoringSSL is a fork of OpenSSL and keeps its libssl API, and the Rust
//! bindings of the two (the `openssl` and `boring` crates) mirror each other
//! type for type. So both backends are one body of code, written here once:
//!
//! - crate-neutral logic (ALPN lists, name matching, caches, error
//!   classification) as plain functions and types in this module;
//! - the code that calls the bindings as macros ([`cert!`], [`client!`],
//!   [`server!`]) that each backend expands with its crate's name. Where the
//!   two bindings differ, the expansion calls a few adapter functions that
//!   the backend defines beside it (see [`cert!`] for the list).
//!
//! Macros rather than generics because the two bindings share no traits:
//! a trait over them would restate some forty methods for each crate.

mod cert;
mod client;
mod server;

pub(crate) use cert::cert;
pub(crate) use client::client;
pub(crate) use server::server;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use pingora_error::{BError, Error, ErrorType, Result};

use crate::protocols::SocketAddr;
use crate::tls::backend::ClientParams;
use crate::upstreams::PeerOptions;

/// Contexts kept for distinct TLS option sets; see the rustls backend.
const MAX_CONFIGS: usize = 256;
/// Sessions kept for resumption per context; emptied when full.
const MAX_SESSIONS: usize = 1024;

/// Client contexts, one per distinct set of TLS options.
pub(crate) struct ConfigCache<C> {
    configs: Mutex<HashMap<u64, Arc<C>>>,
}

impl<C> ConfigCache<C> {
    pub(crate) fn new() -> Self {
        Self {
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// The context for `options`, built by `build` on first use.
    pub(crate) fn get_or_build(
        &self,
        options: &PeerOptions,
        build: impl FnOnce() -> Result<C>,
    ) -> Result<Arc<C>> {
        let mut hasher = DefaultHasher::new();
        options.hash_tls(&mut hasher);
        let key = hasher.finish();
        if let Some(config) = self.configs.lock().get(&key) {
            return Ok(config.clone());
        }
        // Built without the lock held: two racing builds both succeed and
        // the later one wins, which only costs one context.
        let config = Arc::new(build()?);
        let mut configs = self.configs.lock();
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        configs.insert(key, config.clone());
        Ok(config)
    }
}

/// Sessions left by past connections of one context, by server name.
pub(crate) struct SessionCache<S> {
    sessions: Arc<Mutex<HashMap<String, S>>>,
}

impl<S> Clone for SessionCache<S> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
        }
    }
}

impl<S: Clone> SessionCache<S> {
    pub(crate) fn new() -> Self {
        Self {
            sessions: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn insert(&self, name: &str, session: S) {
        let mut sessions = self.sessions.lock();
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.insert(name.to_owned(), session);
    }

    pub(crate) fn get(&self, name: &str) -> Option<S> {
        self.sessions.lock().get(name).cloned()
    }
}

/// Which end of a handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    /// The context of a handshake error on this side.
    pub(crate) const fn context(self) -> &'static str {
        match self {
            Self::Client => "TLS client handshake",
            Self::Server => "TLS server handshake",
        }
    }
}

/// The name a client verifies the server against: the SNI, or else the
/// IP address connected to.
pub(crate) fn peer_name(params: &ClientParams<'_>) -> Result<String> {
    match (params.sni, params.addr) {
        ("", SocketAddr::Inet(inet)) => Ok(inet.ip().to_string()),
        ("", SocketAddr::Unix(_)) => Error::e_explain(
            ErrorType::TLSHandshakeFailure,
            "TLS to a Unix socket peer needs an SNI",
        ),
        (sni, _) => Ok(sni.to_owned()),
    }
}

/// ALPN protocol names in the wire format: each prefixed by its length.
pub(crate) fn alpn_wire(protocols: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in protocols {
        // Our names (h2, http/1.1) are far below 256 bytes.
        if let Ok(len) = u8::try_from(p.len()) {
            wire.push(len);
            wire.extend_from_slice(p);
        }
    }
    wire
}

/// Our most preferred protocol that the client offers, as a slice of the
/// client's list (`theirs`, in the wire format of RFC 7301 section 3.1).
pub(crate) fn pick_alpn<'a>(ours: &[Vec<u8>], theirs: &'a [u8]) -> Option<&'a [u8]> {
    let mut offered = Vec::new();
    let mut rest = theirs;
    while let Some((&len, tail)) = rest.split_first() {
        let (name, next) = tail.split_at_checked(usize::from(len))?;
        offered.push(name);
        rest = next;
    }
    ours.iter()
        .find_map(|p| offered.iter().find(|o| **o == p.as_slice()).copied())
}

/// Whether one of a certificate's subject alternative names, given as
/// (DNS name, IP address bytes) pairs, covers `host` (RFC 6125 section 6.4:
/// exact, case-insensitive, or a wildcard for the whole left-most label).
pub(crate) fn sans_cover<'a>(
    sans: impl IntoIterator<Item = (Option<&'a str>, Option<&'a [u8]>)>,
    host: &str,
) -> bool {
    let ip: Option<IpAddr> = host.parse().ok();
    sans.into_iter().any(|san| match (ip, san) {
        (Some(IpAddr::V4(v4)), (_, Some(bytes))) => bytes == v4.octets(),
        (Some(IpAddr::V6(v6)), (_, Some(bytes))) => bytes == v6.octets(),
        (None, (Some(pattern), _)) => dns_matches(pattern, host),
        _ => false,
    })
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    match (pattern.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((label, rest))) => {
            !label.is_empty() && suffix.eq_ignore_ascii_case(rest)
        }
        _ => false,
    }
}

/// Whether a failed handshake is about a certificate: one the library
/// refused (`verify_failed`), or one the peer refused or did not send, as
/// told by the `reasons` of the library's error stack (OpenSSL spells them
/// in lowercase words, BoringSSL in upper snake case).
pub(crate) fn is_cert_problem<'a>(
    verify_failed: bool,
    mut reasons: impl Iterator<Item = &'a str>,
) -> bool {
    verify_failed || reasons.any(|r| r.to_ascii_lowercase().contains("certificate"))
}

/// The error for a failed handshake: [`ErrorType::InvalidCert`] for a
/// certificate problem (see [`is_cert_problem`]), else
/// [`ErrorType::TLSHandshakeFailure`].
pub(crate) fn handshake_error(
    cert_problem: bool,
    side: Side,
    cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> BError {
    let etype = if cert_problem {
        ErrorType::InvalidCert
    } else {
        ErrorType::TLSHandshakeFailure
    };
    Error::because(etype, side.context(), cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(dns_matches("a.test", "A.TEST"));
        assert!(dns_matches("*.b.test", "x.b.test"));
        assert!(!dns_matches("*.b.test", "y.x.b.test"));
        assert!(!dns_matches("*.b.test", "b.test"));
        assert!(!dns_matches("a.test", "b.test"));
    }

    #[test]
    fn ip_names_match_ip_sans_only() {
        let sans = [(Some("127.0.0.1"), None), (None, Some(&[10, 0, 0, 1][..]))];
        assert!(sans_cover(sans, "10.0.0.1"));
        // A DNS name spelling an address is not an IP SAN (RFC 6125 6.4.4).
        assert!(!sans_cover(sans, "127.0.0.1"));
        assert!(sans_cover([(None, Some(&[0u8; 16][..]))], "::"));
    }

    #[test]
    fn alpn_prefers_our_order() {
        let ours = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        assert_eq!(pick_alpn(&ours, b"\x08http/1.1\x02h2"), Some(&b"h2"[..]));
        assert_eq!(pick_alpn(&ours, b"\x08http/1.1"), Some(&b"http/1.1"[..]));
        assert_eq!(pick_alpn(&ours, b"\x03h3x"), None);
        // A truncated list is refused rather than misread.
        assert_eq!(pick_alpn(&ours, b"\x09http/1.1"), None);
    }

    #[test]
    fn alpn_wire_prefixes_lengths() {
        let wire = alpn_wire(&[b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(wire, b"\x02h2\x08http/1.1");
    }

    #[test]
    fn certificate_reasons_are_cert_problems() {
        let openssl = ["certificate verify failed"];
        assert!(is_cert_problem(false, openssl.into_iter()));
        let boring = ["PEER_DID_NOT_RETURN_A_CERTIFICATE"];
        assert!(is_cert_problem(false, boring.into_iter()));
        let other = ["wrong version number"];
        assert!(!is_cert_problem(false, other.into_iter()));
        assert!(is_cert_problem(true, std::iter::empty()));
        let err = handshake_error(true, Side::Client, "e");
        assert_eq!(err.etype(), &ErrorType::InvalidCert);
    }
}
