//! The server side: settings for a listener and the acceptor built from them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pingora_error::{Error, ErrorType, Result};

use super::backend::{AcceptorImpl, ServerParams, no_backend};
use super::select::CertSelector;
use super::{Alpn, CertCallback, CertKey, CertStore, ClientAuth, TlsBackend, TlsVersion};
use crate::protocols::Stream;

/// How long a server handshake may take unless set otherwise.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings of a listener; [`TlsSettings::build`] turns them into a
/// [`TlsAcceptor`].
///
/// # Examples
///
/// ```no_run
/// use pingora_core::tls::{Alpn, TlsSettings, TlsVersion};
///
/// # async fn run(stream: pingora_core::protocols::Stream) -> pingora_core::Result<()> {
/// let mut settings = TlsSettings::with_cert_files("server.crt", "server.key")?;
/// settings.set_alpn(Alpn::H2H1);
/// settings.set_min_version(TlsVersion::Tls13);
/// let acceptor = settings.build()?;
/// let tls_stream = acceptor.accept(stream).await?;
/// # Ok(()) }
/// ```
pub struct TlsSettings {
    certs: CertStore,
    callback: Option<Arc<dyn CertCallback>>,
    alpn: Option<Alpn>,
    min_version: TlsVersion,
    max_version: TlsVersion,
    client_auth: ClientAuth,
    handshake_timeout: Duration,
    backend: Option<TlsBackend>,
}

impl TlsSettings {
    /// Settings presenting the certificates of `certs`.
    pub fn new(certs: CertStore) -> Self {
        Self {
            certs,
            callback: None,
            alpn: None,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            client_auth: ClientAuth::None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            backend: TlsBackend::default_backend(),
        }
    }

    /// Settings presenting one certificate read from PEM files.
    ///
    /// # Errors
    ///
    /// As [`CertKey::from_pem_files`].
    pub fn with_cert_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self> {
        let cert = CertKey::from_pem_files(cert_path, key_path)?;
        Ok(Self::new(CertStore::new().with_default(cert)))
    }

    /// Pingora's name for settings presenting one certificate from PEM
    /// files with Mozilla's "intermediate" profile: TLS 1.2 and 1.3 with
    /// the backend's default (AEAD, forward-secret) cipher suites, which is
    /// what [`with_cert_files`](Self::with_cert_files) gives.
    ///
    /// # Errors
    ///
    /// As [`CertKey::from_pem_files`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use pingora_core::listeners::tls::TlsSettings;
    ///
    /// let mut tls_settings = TlsSettings::intermediate("server.crt", "key.pem")?;
    /// tls_settings.enable_h2();
    /// # Ok::<(), pingora_error::BError>(())
    /// ```
    pub fn intermediate(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        Self::with_cert_files(cert_path, key_path)
    }

    /// Let `callback` choose the certificate before the store is consulted.
    pub fn set_cert_callback(&mut self, callback: Arc<dyn CertCallback>) {
        self.callback = Some(callback);
    }

    /// Protocols to accept with ALPN; by default ALPN is not negotiated.
    pub fn set_alpn(&mut self, alpn: Alpn) {
        self.alpn = Some(alpn);
    }

    /// Advertise `h2` and `http/1.1`, preferring HTTP/2.
    pub fn enable_h2(&mut self) {
        self.alpn = Some(Alpn::H2H1);
    }

    /// The lowest TLS version accepted (default TLS 1.2).
    pub fn set_min_version(&mut self, version: TlsVersion) {
        self.min_version = version;
    }

    /// The highest TLS version accepted (default TLS 1.3).
    pub fn set_max_version(&mut self, version: TlsVersion) {
        self.max_version = version;
    }

    /// Ask clients for certificates (mutual TLS).
    pub fn set_client_auth(&mut self, auth: ClientAuth) {
        self.client_auth = auth;
    }

    /// How long a handshake may take (default 10 seconds).
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// Run handshakes with `backend` instead of the default one.
    pub fn set_backend(&mut self, backend: TlsBackend) {
        self.backend = Some(backend);
    }

    /// Build the acceptor.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] when no backend is compiled in or the
    /// version range is empty, [`ErrorType::InvalidCert`] when the client
    /// CA roots cannot be used.
    pub fn build(self) -> Result<TlsAcceptor> {
        let backend = self.backend.ok_or_else(no_backend)?;
        if self.min_version > self.max_version {
            return Error::e_explain(ErrorType::InternalError, "min TLS version above max");
        }
        let selector = Arc::new(CertSelector::new(self.certs, self.callback));
        let inner = backend.acceptor(ServerParams {
            selector: selector.clone(),
            alpn: self.alpn,
            min_version: self.min_version,
            max_version: self.max_version,
            client_auth: self.client_auth,
        })?;
        Ok(TlsAcceptor {
            inner,
            selector,
            handshake_timeout: self.handshake_timeout,
        })
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("certs", &self.certs)
            .field("alpn", &self.alpn)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Runs server-side TLS handshakes on accepted streams.
///
/// Cheap to clone; clones share the certificates, so
/// [`reload`](Self::reload) on one affects all.
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    inner: Arc<dyn AcceptorImpl>,
    selector: Arc<CertSelector>,
    handshake_timeout: Duration,
}

impl TlsAcceptor {
    /// Run the server handshake over an accepted `stream`. The returned
    /// stream's digest carries the TLS details.
    ///
    /// # Errors
    ///
    /// All marked as from the downstream:
    /// [`ErrorType::TLSHandshakeTimedout`] past the handshake timeout,
    /// [`ErrorType::InvalidCert`] when a client certificate is refused,
    /// [`ErrorType::TLSHandshakeFailure`] for anything else.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the stream.
    pub async fn accept(&self, stream: Stream) -> Result<Stream> {
        match tokio::time::timeout(self.handshake_timeout, self.inner.accept(stream)).await {
            Ok(result) => result.map_err(Error::into_down),
            Err(_) => Err(Error::explain(
                ErrorType::TLSHandshakeTimedout,
                format!("server handshake took over {:?}", self.handshake_timeout),
            )
            .into_down()),
        }
    }

    /// Present `certs` to handshakes that start from now on. Sessions
    /// already established keep their certificate.
    pub fn reload(&self, certs: CertStore) {
        self.selector.reload(certs);
    }

    /// Replace the default certificate with the one in these PEM files,
    /// dropping any certificates picked by name.
    ///
    /// # Errors
    ///
    /// As [`CertKey::from_pem_files`]; on error the old certificates stay.
    pub fn reload_from_files(
        &self,
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<()> {
        let cert = CertKey::from_pem_files(cert_path, key_path)?;
        self.reload(CertStore::new().with_default(cert));
        Ok(())
    }
}
