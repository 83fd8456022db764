//! The one internal interface every TLS backend implements.
//!
//! A backend turns backend-neutral settings into an acceptor (server side)
//! or a connector (client side) and runs handshakes over a [`Stream`]. It
//! classifies its own failures into [`ErrorType::TLSHandshakeFailure`] and
//! [`ErrorType::InvalidCert`]; timeouts are enforced by the callers, the
//! same way for every backend.

// Without any backend compiled in, nothing reads these settings.
#![cfg_attr(
    not(any(feature = "rustls", feature = "openssl", feature = "boringssl")),
    allow(dead_code, unused_variables)
)]

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::{Error, ErrorType, Result};
use rustls_pki_types::CertificateDer;

use super::select::CertSelector;
use super::{Alpn, ClientAuth, TlsVersion};
use crate::protocols::{SocketAddr, Stream};
use crate::upstreams::PeerOptions;

/// The library that runs TLS handshakes. Each variant exists when its
/// cargo feature is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsBackend {
    /// rustls with the aws-lc-rs provider (feature `rustls`).
    #[cfg(feature = "rustls")]
    Rustls,
    /// OpenSSL through the `openssl` crate (feature `openssl`).
    #[cfg(feature = "openssl")]
    OpenSsl,
    /// BoringSSL through the `boring` crate (feature `boringssl`).
    #[cfg(feature = "boringssl")]
    BoringSsl,
}

impl TlsBackend {
    /// The backend used when none is named: the first compiled in, or
    /// `None` when the crate was built without any TLS feature.
    pub const fn default_backend() -> Option<Self> {
        #[cfg(feature = "rustls")]
        return Some(Self::Rustls);
        #[cfg(all(not(feature = "rustls"), feature = "openssl"))]
        return Some(Self::OpenSsl);
        #[cfg(all(
            not(feature = "rustls"),
            not(feature = "openssl"),
            feature = "boringssl"
        ))]
        return Some(Self::BoringSsl);
        #[cfg(not(any(feature = "rustls", feature = "openssl", feature = "boringssl")))]
        return None;
    }

    /// Every backend compiled in, the default first.
    pub fn all() -> Vec<Self> {
        vec![
            #[cfg(feature = "rustls")]
            Self::Rustls,
            #[cfg(feature = "openssl")]
            Self::OpenSsl,
            #[cfg(feature = "boringssl")]
            Self::BoringSsl,
        ]
    }

    pub(crate) fn acceptor(self, params: ServerParams) -> Result<Arc<dyn AcceptorImpl>> {
        match self {
            #[cfg(feature = "rustls")]
            Self::Rustls => super::rustls::server::acceptor(params),
            #[cfg(feature = "openssl")]
            Self::OpenSsl => super::openssl::server::acceptor(params),
            #[cfg(feature = "boringssl")]
            Self::BoringSsl => super::boringssl::server::acceptor(params),
        }
    }

    /// The client side of this backend. With `key_log`, session keys are
    /// written to the file named by `SSLKEYLOGFILE` (rustls only so far).
    pub(crate) fn connector(
        self,
        default_roots: Option<Vec<CertificateDer<'static>>>,
        key_log: bool,
    ) -> Result<Arc<dyn ConnectorImpl>> {
        #[cfg(feature = "rustls")]
        let writes_key_log = matches!(self, Self::Rustls);
        #[cfg(not(feature = "rustls"))]
        let writes_key_log = false;
        if key_log && !writes_key_log {
            log::warn!("upstream_debug_ssl_keylog: only the rustls backend writes key logs");
        }
        match self {
            #[cfg(feature = "rustls")]
            Self::Rustls => Ok(Arc::new(super::rustls::client::Connector::new(
                default_roots,
                key_log,
            )?)),
            #[cfg(feature = "openssl")]
            Self::OpenSsl => Ok(Arc::new(super::openssl::client::Connector::new(
                default_roots,
            )?)),
            #[cfg(feature = "boringssl")]
            Self::BoringSsl => Ok(Arc::new(super::boringssl::client::Connector::new(
                default_roots,
            )?)),
        }
    }
}

/// The error for a build without any TLS backend.
pub(crate) fn no_backend() -> pingora_error::BError {
    Error::explain(
        ErrorType::InternalError,
        "no TLS backend compiled in (enable the rustls, openssl or boringssl feature)",
    )
}

/// What a server-side backend needs, already checked and neutral.
pub(crate) struct ServerParams {
    pub(crate) selector: Arc<CertSelector>,
    pub(crate) alpn: Option<Alpn>,
    pub(crate) min_version: TlsVersion,
    pub(crate) max_version: TlsVersion,
    pub(crate) client_auth: ClientAuth,
}

/// A server-side backend, ready to accept handshakes.
#[async_trait]
pub(crate) trait AcceptorImpl: Send + Sync + Debug {
    /// Run the server handshake over `stream`.
    async fn accept(&self, stream: Stream) -> Result<Stream>;
}

/// What the client side needs for one handshake.
pub(crate) struct ClientParams<'a> {
    /// The SNI to send and to verify; empty for none.
    pub(crate) sni: &'a str,
    /// The address connected to, verified as an IP name when `sni` is empty.
    pub(crate) addr: &'a SocketAddr,
    pub(crate) options: &'a PeerOptions,
}

/// A client-side backend. It may cache configurations across handshakes
/// (and must, for session resumption).
#[async_trait]
pub(crate) trait ConnectorImpl: Send + Sync + Debug {
    /// Run the client handshake over `stream`.
    async fn connect(&self, stream: Stream, params: ClientParams<'_>) -> Result<Stream>;
}
