//! The rustls client side.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, OrErr, Result};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::{ClientConfig, KeyLog, KeyLogFile, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsStream;

use super::verify::PeerVerifier;
use super::{handshake_error, provider, root_store};
use crate::protocols::tls::RustlsStream;
use crate::protocols::{SocketAddr, Stream};
use crate::tls::backend::{ClientParams, ConnectorImpl};
use crate::upstreams::PeerOptions;

/// Configurations kept for distinct TLS option sets. Past this the cache is
/// emptied: peers with that many distinct TLS settings are rare, and a
/// rebuild costs one config, not a connection.
const MAX_CONFIGS: usize = 256;
/// TLS sessions kept for resumption, across all peers.
const SESSION_CACHE_SIZE: usize = 1024;

/// Builds (and caches) one rustls client config per distinct set of TLS
/// options, all sharing one session store so resumption works across them.
pub(crate) struct Connector {
    /// Where session keys go, when `upstream_debug_ssl_keylog` is on.
    key_log: Option<Arc<dyn KeyLog>>,
    default_roots: Arc<RootCertStore>,
    sessions: Arc<dyn ClientSessionStore>,
    configs: Mutex<HashMap<u64, Arc<ClientConfig>>>,
}

impl Connector {
    /// A connector trusting `default_roots`, or the system's roots when
    /// `None`.
    pub(crate) fn new(
        default_roots: Option<Vec<CertificateDer<'static>>>,
        key_log: bool,
    ) -> Result<Self> {
        let roots = match default_roots {
            Some(certs) => root_store(&certs)?,
            None => system_roots(),
        };
        Ok(Self {
            // Reads SSLKEYLOGFILE; logs nothing when it is unset.
            key_log: key_log.then(|| Arc::new(KeyLogFile::new()) as Arc<dyn KeyLog>),
            default_roots: Arc::new(roots),
            sessions: Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE_SIZE)),
            configs: Mutex::new(HashMap::new()),
        })
    }

    fn config(&self, options: &PeerOptions) -> Result<Arc<ClientConfig>> {
        let mut hasher = DefaultHasher::new();
        options.hash_tls(&mut hasher);
        let key = hasher.finish();
        if let Some(config) = self.configs.lock().get(&key) {
            return Ok(config.clone());
        }
        // Built outside the lock: two racing builders make the same config.
        let config = Arc::new(self.build_config(options)?);
        let mut configs = self.configs.lock();
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        configs.insert(key, config.clone());
        Ok(config)
    }

    fn build_config(&self, options: &PeerOptions) -> Result<ClientConfig> {
        let provider = provider();
        let roots = match &options.ca {
            Some(ca) => Arc::new(root_store(ca)?),
            None => self.default_roots.clone(),
        };
        let verifier = PeerVerifier::new(
            roots,
            provider.clone(),
            options.verify_cert,
            options.verify_hostname,
            options.alternative_names.clone(),
        )?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .or_err(ErrorType::InternalError, "TLS versions not supported")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match &options.client_cert_key {
            Some(ck) => builder
                .with_client_auth_cert(ck.chain().to_vec(), ck.key().clone_key())
                .or_err(ErrorType::InvalidCert, "unusable client certificate")?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = options.alpn.protocols();
        config.resumption = Resumption::store(self.sessions.clone());
        if let Some(key_log) = &self.key_log {
            config.key_log = Arc::clone(key_log);
        }
        Ok(config)
    }
}

fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        log::warn!("loading system CA certificates: {err}");
    }
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    log::debug!("system trust store: {added} roots, {ignored} ignored");
    store
}

/// The name to send as SNI and verify: the SNI when set, else the IP.
fn server_name(sni: &str, addr: &SocketAddr) -> Result<ServerName<'static>> {
    if !sni.is_empty() {
        return ServerName::try_from(sni.to_owned()).or_err(
            ErrorType::TLSHandshakeFailure,
            "SNI is not a valid server name",
        );
    }
    match addr {
        SocketAddr::Inet(inet) => Ok(ServerName::IpAddress(inet.ip().into())),
        SocketAddr::Unix(_) => Error::e_explain(
            ErrorType::TLSHandshakeFailure,
            "TLS to a Unix socket peer needs an SNI",
        ),
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsConnector")
            .field("default_roots", &self.default_roots.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ConnectorImpl for Connector {
    async fn connect(&self, stream: Stream, params: ClientParams<'_>) -> Result<Stream> {
        let name = server_name(params.sni, params.addr)?;
        let config = self.config(params.options)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| handshake_error(e, "TLS client handshake"))?;
        let sni = (!params.sni.is_empty()).then(|| params.sni.to_owned());
        Ok(Box::new(RustlsStream::new(TlsStream::Client(tls), sni)))
    }
}
