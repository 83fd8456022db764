//! Certificates and keys, held as DER whatever the backend.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
#[cfg(any(feature = "rustls", feature = "openssl", feature = "boringssl"))]
use std::sync::{Arc, OnceLock};

use pingora_error::{Error, ErrorType, OrErr, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain (leaf first) and its private key.
///
/// Used for a server's certificates and for a client certificate (mTLS).
/// The key is never printed by `Debug`. Cloning shares the parsed forms
/// the backends cache.
pub struct CertKey {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    // The rustls signing key is parsed once per `CertKey`, on first use, so
    // that a certificate chosen by a callback on every handshake does not
    // re-parse its key each time. `None` inside means the key is unusable.
    #[cfg(feature = "rustls")]
    rustls: OnceLock<Option<Arc<rustls::sign::CertifiedKey>>>,
    // The same for OpenSSL: the parsed certificates and key.
    #[cfg(feature = "openssl")]
    openssl: OnceLock<Option<Arc<super::openssl::ParsedCert>>>,
    // And for BoringSSL.
    #[cfg(feature = "boringssl")]
    boringssl: OnceLock<Option<Arc<super::boringssl::ParsedCert>>>,
}

impl CertKey {
    /// A chain (leaf first) and the private key of its leaf.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidCert`] when the chain is empty.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self> {
        if chain.is_empty() {
            return Error::e_explain(ErrorType::InvalidCert, "empty certificate chain");
        }
        Ok(Self {
            chain,
            key,
            #[cfg(feature = "rustls")]
            rustls: OnceLock::new(),
            #[cfg(feature = "openssl")]
            openssl: OnceLock::new(),
            #[cfg(feature = "boringssl")]
            boringssl: OnceLock::new(),
        })
    }

    /// Parse a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1
    /// or SEC1).
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidCert`] when either input holds no usable item.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let chain = certs_from_pem(cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .or_err(ErrorType::InvalidCert, "no private key in PEM")?;
        Self::new(chain, key)
    }

    /// Read a PEM certificate chain and a PEM private key from files.
    ///
    /// # Errors
    ///
    /// [`ErrorType::FileReadError`] when a file cannot be read,
    /// [`ErrorType::InvalidCert`] when it holds no usable item.
    pub fn from_pem_files(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        let cert = read_file(cert_path.as_ref())?;
        let key = read_file(key_path.as_ref())?;
        Self::from_pem(&cert, &key)
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        // `new` refuses an empty chain, the only way to build a `CertKey`.
        &self.chain[0]
    }

    /// The private key of the leaf.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// A hash of the chain, so two connections presenting different client
    /// certificates never share a reuse key.
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        for cert in &self.chain {
            cert.as_ref().hash(&mut hasher);
        }
        hasher.finish()
    }

    #[cfg(feature = "rustls")]
    pub(crate) fn rustls_cell(&self) -> &OnceLock<Option<Arc<rustls::sign::CertifiedKey>>> {
        &self.rustls
    }

    #[cfg(feature = "openssl")]
    pub(crate) fn openssl_cell(&self) -> &OnceLock<Option<Arc<super::openssl::ParsedCert>>> {
        &self.openssl
    }

    #[cfg(feature = "boringssl")]
    pub(crate) fn boringssl_cell(&self) -> &OnceLock<Option<Arc<super::boringssl::ParsedCert>>> {
        &self.boringssl
    }
}

impl Clone for CertKey {
    // Written out because the key type is deliberately not `Clone`: a copy
    // of a secret should be a visible decision, and sharing a parsed
    // `CertKey` is what we want.
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            #[cfg(feature = "rustls")]
            rustls: self.rustls.clone(),
            #[cfg(feature = "openssl")]
            openssl: self.openssl.clone(),
            #[cfg(feature = "boringssl")]
            boringssl: self.boringssl.clone(),
        }
    }
}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertKey")
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Parse every certificate in a PEM buffer.
///
/// # Errors
///
/// [`ErrorType::InvalidCert`] when a section is malformed or there is none.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .or_err(ErrorType::InvalidCert, "malformed PEM certificate")?;
    if certs.is_empty() {
        return Error::e_explain(ErrorType::InvalidCert, "no certificate in PEM");
    }
    Ok(certs)
}

/// Read every certificate of a PEM file, such as a CA bundle.
///
/// # Errors
///
/// [`ErrorType::FileReadError`] when the file cannot be read,
/// [`ErrorType::InvalidCert`] when it holds no certificate.
pub fn certs_from_pem_file(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>> {
    certs_from_pem(&read_file(path.as_ref())?)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).or_err_with(ErrorType::FileReadError, || {
        format!("reading {}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_chain_is_refused() {
        let key = PrivateKeyDer::Pkcs8(vec![1, 2, 3].into());
        let err = CertKey::new(vec![], key).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::InvalidCert);
    }

    #[test]
    fn garbage_pem_is_refused() {
        assert!(certs_from_pem(b"not pem").is_err());
        assert!(CertKey::from_pem(b"", b"").is_err());
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = certs_from_pem_file("/nonexistent/ca.pem").unwrap_err();
        assert_eq!(err.etype(), &ErrorType::FileReadError);
    }
}
