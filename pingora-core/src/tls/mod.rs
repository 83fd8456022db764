//! TLS for both sides of a connection, behind one small internal interface.
//!
//! The rest of the crate speaks only in the types of this module:
//! certificates as DER ([`CertKey`]), a server's [`TlsSettings`] built into a
//! [`TlsAcceptor`], and the client side in
//! [`connectors`](crate::connectors). Which library runs the handshakes is a
//! value, a [`TlsBackend`], each backend compiled in by its own cargo
//! feature:
//!
//! - `rustls` (default): rustls 0.23 with its aws-lc-rs crypto provider.
//! - `openssl`: the system OpenSSL through the `openssl` crate (needs
//!   libssl-dev and pkg-config to build). Client sessions are resumed by
//!   SNI; connections without an SNI are not resumed.
//! - `boringssl`: BoringSSL through the `boring` crate, which builds its own
//!   copy (needs cmake and clang). Same behaviour as `openssl`, with which
//!   it shares its code.
//!
//! rustls can be compiled in together with either; [`TlsBackend::default_backend`]
//! prefers rustls. `openssl` and `boringssl` cannot be enabled together:
//! both libraries export the same C symbols, so the build stops with a
//! `compile_error!` rather than at the linker.
//!
//! Certificates and keys cross the API as [`CertificateDer`] and
//! [`PrivateKeyDer`], re-exported from `rustls-pki-types`: plain DER
//! wrappers with no dependencies, used by every backend (OpenSSL included),
//! not a tie to rustls.
//!
//! A TLS stream's [`Digest`](crate::protocols::Digest) carries a
//! [`TlsDigest`](crate::protocols::tls::TlsDigest): version, cipher, ALPN,
//! SNI and the peer's certificate.

mod backend;
mod cert;
mod select;
mod server;

#[cfg(all(feature = "openssl", feature = "boringssl"))]
compile_error!(
    "features `openssl` and `boringssl` cannot be enabled together: OpenSSL and BoringSSL \
     export the same C symbols and cannot link into one binary; pick one (rustls goes with either)"
);

#[cfg(feature = "boringssl")]
mod boringssl;
#[cfg(any(feature = "openssl", feature = "boringssl"))]
mod libssl;
#[cfg(feature = "openssl")]
mod openssl;
#[cfg(feature = "rustls")]
mod rustls;

pub use backend::TlsBackend;
pub(crate) use backend::{ClientParams, ConnectorImpl, no_backend};
pub use cert::{CertKey, certs_from_pem, certs_from_pem_file};
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use select::{CertCallback, CertStore};
pub use server::{TlsAcceptor, TlsSettings};

/// Which HTTP versions to offer or accept with ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Alpn {
    /// HTTP/1.1 only.
    #[default]
    H1,
    /// HTTP/2 only.
    H2,
    /// Both, preferring HTTP/2.
    H2H1,
}

impl Alpn {
    /// The ALPN protocol names, in order of preference.
    pub fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Self::H1 => vec![b"http/1.1".to_vec()],
            Self::H2 => vec![b"h2".to_vec()],
            Self::H2H1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// A TLS protocol version, for the minimum and maximum a side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

/// Whether and how a server asks clients for a certificate (mutual TLS).
#[derive(Debug, Clone, Default)]
pub enum ClientAuth {
    /// Ask for no client certificate.
    #[default]
    None,
    /// Ask for one, verify it against these roots if sent, accept clients
    /// that send none.
    Optional(Vec<CertificateDer<'static>>),
    /// Require one, verified against these roots.
    Required(Vec<CertificateDer<'static>>),
}
