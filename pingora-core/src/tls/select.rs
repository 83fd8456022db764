//! Picking the server certificate for a handshake.

// Without any backend compiled in, nothing reads these settings.
#![cfg_attr(
    not(any(feature = "rustls", feature = "openssl", feature = "boringssl")),
    allow(dead_code, unused_variables)
)]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::CertKey;

/// User code that chooses or builds a certificate during the handshake.
///
/// Called with the SNI the client sent (if any) before the certificates of
/// the [`CertStore`] are looked at. It runs inside the handshake, so it must
/// not block: look certificates up in memory, and load or mint them ahead
/// of time.
pub trait CertCallback: Send + Sync {
    /// The certificate to present, or `None` to fall back to the store.
    fn certificate(&self, sni: Option<&str>) -> Option<Arc<CertKey>>;
}

/// A server's certificates: a default and any number picked by SNI.
///
/// Names are matched case-insensitively, exactly first, then as a wildcard
/// entry `*.example.com` covering one label (RFC 6125 section 6.4.3).
///
/// # Examples
///
/// ```no_run
/// use pingora_core::tls::{CertKey, CertStore};
///
/// # fn main() -> pingora_core::Result<()> {
/// let store = CertStore::new()
///     .with_default(CertKey::from_pem_files("default.crt", "default.key")?)
///     .with_name("api.example.com", CertKey::from_pem_files("api.crt", "api.key")?);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct CertStore {
    default: Option<Arc<CertKey>>,
    by_name: HashMap<String, Arc<CertKey>>,
}

impl CertStore {
    /// An empty store: handshakes fail until a certificate is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Present `cert` when no name matches (or the client sent no SNI).
    #[must_use]
    pub fn with_default(mut self, cert: CertKey) -> Self {
        self.default = Some(Arc::new(cert));
        self
    }

    /// Present `cert` to clients asking for `name` (may be `*.domain`).
    #[must_use]
    pub fn with_name(mut self, name: &str, cert: CertKey) -> Self {
        self.add(name, Arc::new(cert));
        self
    }

    /// Present `cert` to clients asking for `name` (may be `*.domain`).
    pub fn add(&mut self, name: &str, cert: Arc<CertKey>) {
        self.by_name.insert(name.to_ascii_lowercase(), cert);
    }

    /// Whether the store holds no certificate at all.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.by_name.is_empty()
    }

    fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertKey>> {
        if let Some(sni) = sni {
            let sni = sni.to_ascii_lowercase();
            if let Some(cert) = self.by_name.get(&sni) {
                return Some(cert.clone());
            }
            if let Some((_, parent)) = sni.split_once('.')
                && let Some(cert) = self.by_name.get(&format!("*.{parent}"))
            {
                return Some(cert.clone());
            }
        }
        self.default.clone()
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("default", &self.default.is_some())
            .field("names", &self.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The certificates a running acceptor picks from. The store sits behind
/// an `ArcSwap` so a reload is one atomic pointer swap: handshakes in
/// flight keep the store they started with, new ones see the new one.
pub(crate) struct CertSelector {
    store: ArcSwap<CertStore>,
    callback: Option<Arc<dyn CertCallback>>,
}

impl CertSelector {
    pub(crate) fn new(store: CertStore, callback: Option<Arc<dyn CertCallback>>) -> Self {
        Self {
            store: ArcSwap::from_pointee(store),
            callback,
        }
    }

    /// The certificate for a client that sent `sni`.
    pub(crate) fn select(&self, sni: Option<&str>) -> Option<Arc<CertKey>> {
        if let Some(cb) = &self.callback
            && let Some(cert) = cb.certificate(sni)
        {
            return Some(cert);
        }
        self.store.load().lookup(sni)
    }

    pub(crate) fn reload(&self, store: CertStore) {
        self.store.store(Arc::new(store));
    }
}

impl fmt::Debug for CertSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSelector")
            .field("store", &self.store.load())
            .field("callback", &self.callback.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    fn cert(tag: u8) -> CertKey {
        CertKey::new(
            vec![CertificateDer::from(vec![tag])],
            PrivateKeyDer::Pkcs8(vec![tag].into()),
        )
        .unwrap()
    }

    fn tag(c: Option<Arc<CertKey>>) -> Option<u8> {
        c.map(|c| c.leaf().as_ref()[0])
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let store = CertStore::new()
            .with_default(cert(0))
            .with_name("a.test", cert(1))
            .with_name("*.b.test", cert(2));
        let sel = CertSelector::new(store, None);
        assert_eq!(tag(sel.select(Some("A.test"))), Some(1));
        assert_eq!(tag(sel.select(Some("x.b.test"))), Some(2));
        // A wildcard covers exactly one label.
        assert_eq!(tag(sel.select(Some("y.x.b.test"))), Some(0));
        assert_eq!(tag(sel.select(None)), Some(0));
    }

    struct Fixed;
    impl CertCallback for Fixed {
        fn certificate(&self, sni: Option<&str>) -> Option<Arc<CertKey>> {
            (sni == Some("cb.test")).then(|| Arc::new(cert(9)))
        }
    }

    #[test]
    fn callback_wins_and_falls_back() {
        let sel = CertSelector::new(
            CertStore::new().with_default(cert(0)),
            Some(Arc::new(Fixed)),
        );
        assert_eq!(tag(sel.select(Some("cb.test"))), Some(9));
        assert_eq!(tag(sel.select(Some("other"))), Some(0));
    }

    #[test]
    fn reload_swaps_the_store() {
        let sel = CertSelector::new(CertStore::new().with_default(cert(0)), None);
        sel.reload(CertStore::new().with_default(cert(5)));
        assert_eq!(tag(sel.select(None)), Some(5));
        sel.reload(CertStore::new());
        assert_eq!(tag(sel.select(None)), None);
    }
}
