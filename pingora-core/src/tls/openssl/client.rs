//! The OpenSSL client side.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hasher};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use openssl::ssl::{
    NameType, SslConnector, SslMethod, SslRef, SslSession, SslSessionCacheMode, SslSessionRef,
    SslVerifyMode,
};
use openssl::x509::X509Ref;
use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, OrErr, Result};
use rustls_pki_types::CertificateDer;
use tokio_openssl::SslStream;

use super::{alpn_wire, handshake_error, parsed, store};
use crate::protocols::tls::OpensslStream;
use crate::protocols::{SocketAddr, Stream};
use crate::tls::backend::{ClientParams, ConnectorImpl};
use crate::upstreams::PeerOptions;

/// Contexts kept for distinct TLS option sets; see the rustls backend.
const MAX_CONFIGS: usize = 256;
/// Sessions kept for resumption per context; emptied when full.
const MAX_SESSIONS: usize = 1024;

/// Sessions left by past connections, by server name.
type Sessions = Arc<Mutex<HashMap<String, SslSession>>>;

/// One client context and the sessions its connections left behind. The
/// two live and die together: a session may only be resumed with the
/// context that made it.
struct Config {
    connector: SslConnector,
    sessions: Sessions,
}

/// Builds (and caches) one OpenSSL context per distinct set of TLS options.
pub(crate) struct Connector {
    // `None`: the system's default verify paths.
    default_roots: Option<Vec<CertificateDer<'static>>>,
    configs: Mutex<HashMap<u64, Arc<Config>>>,
}

impl Connector {
    pub(crate) fn new(default_roots: Option<Vec<CertificateDer<'static>>>) -> Result<Self> {
        Ok(Self {
            default_roots,
            configs: Mutex::new(HashMap::new()),
        })
    }

    fn config(&self, options: &PeerOptions) -> Result<Arc<Config>> {
        let mut hasher = DefaultHasher::new();
        options.hash_tls(&mut hasher);
        let key = hasher.finish();
        if let Some(config) = self.configs.lock().get(&key) {
            return Ok(config.clone());
        }
        let config = Arc::new(self.build_config(options)?);
        let mut configs = self.configs.lock();
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        configs.insert(key, config.clone());
        Ok(config)
    }

    fn build_config(&self, options: &PeerOptions) -> Result<Config> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())
            .or_err(ErrorType::InternalError, "creating an OpenSSL context")?;
        let roots = options.ca.as_deref().or(self.default_roots.as_deref());
        match roots {
            Some(roots) => builder.set_verify_cert_store(store(roots)?),
            None => builder.set_default_verify_paths(),
        }
        .or_err(ErrorType::InvalidCert, "setting the trust store")?;
        builder.set_verify(if options.verify_cert {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        });
        if let Some(ck) = &options.client_cert_key {
            let cert = parsed(ck).ok_or_else(|| {
                Error::explain(ErrorType::InvalidCert, "unusable client certificate")
            })?;
            builder
                .set_certificate(&cert.leaf)
                .and_then(|()| builder.set_private_key(&cert.key))
                .or_err(ErrorType::InvalidCert, "unusable client certificate")?;
            for intermediate in &cert.intermediates {
                builder
                    .add_extra_chain_cert(intermediate.clone())
                    .or_err(ErrorType::InvalidCert, "unusable client chain")?;
            }
        }
        builder
            .set_alpn_protos(&alpn_wire(&options.alpn.protocols()))
            .or_err(ErrorType::InternalError, "setting ALPN")?;
        let sessions = Sessions::default();
        let store = sessions.clone();
        builder.set_session_cache_mode(SslSessionCacheMode::CLIENT);
        // TLS 1.3 tickets arrive after the handshake, on a later read.
        builder.set_new_session_callback(move |ssl, session| {
            if let Some(name) = ssl.servername(NameType::HOST_NAME) {
                let mut sessions = store.lock();
                if sessions.len() >= MAX_SESSIONS {
                    sessions.clear();
                }
                sessions.insert(name.to_owned(), session);
            }
        });
        Ok(Config {
            connector: builder.build(),
            sessions,
        })
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslConnector")
            .field("default_roots", &self.default_roots.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ConnectorImpl for Connector {
    async fn connect(&self, stream: Stream, params: ClientParams<'_>) -> Result<Stream> {
        let options = params.options;
        let name = match (params.sni, params.addr) {
            ("", SocketAddr::Inet(inet)) => inet.ip().to_string(),
            ("", SocketAddr::Unix(_)) => {
                return Error::e_explain(
                    ErrorType::TLSHandshakeFailure,
                    "TLS to a Unix socket peer needs an SNI",
                );
            }
            (sni, _) => sni.to_owned(),
        };
        let config = self.config(options)?;
        let mut conf = config
            .connector
            .configure()
            .or_err(ErrorType::InternalError, "creating a TLS session")?;
        conf.set_use_server_name_indication(!params.sni.is_empty());
        // With alternative names OpenSSL's single-host check cannot say
        // yes to any of several names: check them after the handshake.
        let check_names_after =
            options.verify_cert && options.verify_hostname && !options.alternative_names.is_empty();
        conf.set_verify_hostname(options.verify_hostname && !check_names_after);
        let mut ssl = conf.into_ssl(&name).or_err(
            ErrorType::TLSHandshakeFailure,
            "SNI is not a valid server name",
        )?;
        // Sessions are keyed by SNI: connections without one are not resumed.
        let session = config.sessions.lock().get(params.sni).cloned();
        if let Some(session) = session {
            resume(&mut ssl, &session);
        }
        let mut tls = SslStream::new(ssl, stream)
            .or_err(ErrorType::InternalError, "creating a TLS stream")?;
        if let Err(e) = Pin::new(&mut tls).connect().await {
            let verify = tls.ssl().verify_result();
            return Err(handshake_error(e, verify, "TLS client handshake"));
        }
        if check_names_after {
            let leaf = tls.ssl().peer_certificate();
            let names = std::iter::once(name.as_str())
                .chain(options.alternative_names.iter().map(String::as_str));
            let matched = leaf.is_some_and(|leaf| names.into_iter().any(|n| names_host(&leaf, n)));
            if !matched {
                return Error::e_explain(
                    ErrorType::InvalidCert,
                    "certificate names neither the SNI nor an alternative name",
                );
            }
        }
        Ok(Box::new(OpensslStream::new(tls)))
    }
}

/// Offer `session` for resumption on a connection not yet started.
#[allow(unsafe_code)]
fn resume(ssl: &mut SslRef, session: &SslSessionRef) {
    // SAFETY: `set_session` requires the session to come from the same
    // context as `ssl`. Sessions are stored only by the new-session
    // callback of one `Config`'s context, in that `Config`'s own map, and
    // `ssl` was made from the same `Config`'s context.
    if let Err(e) = unsafe { ssl.set_session(session) } {
        log::debug!("TLS session not resumable: {e}");
    }
}

/// Whether the certificate's subject alternative names cover `host`
/// (RFC 6125 section 6.4: exact, case-insensitive, or a wildcard for the
/// whole left-most label).
fn names_host(cert: &X509Ref, host: &str) -> bool {
    let Some(sans) = cert.subject_alt_names() else {
        return false;
    };
    let ip: Option<IpAddr> = host.parse().ok();
    sans.iter()
        .any(|san| match (ip, san.dnsname(), san.ipaddress()) {
            (Some(ip), _, Some(bytes)) => match ip {
                IpAddr::V4(v4) => bytes == v4.octets(),
                IpAddr::V6(v6) => bytes == v6.octets(),
            },
            (None, Some(pattern), _) => dns_matches(pattern, host),
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

#[cfg(test)]
mod tests {
    use super::dns_matches;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(dns_matches("a.test", "A.TEST"));
        assert!(dns_matches("*.b.test", "x.b.test"));
        assert!(!dns_matches("*.b.test", "y.x.b.test"));
        assert!(!dns_matches("*.b.test", "b.test"));
        assert!(!dns_matches("a.test", "b.test"));
    }
}
