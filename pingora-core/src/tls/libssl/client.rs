//! The client side, for both bindings.

/// Expands, in a backend's `client` module, its `Connector`. `$ssl` names
/// the binding crate and `$lib` the library, for messages. Uses the items
/// [`cert!`](macro@super::cert) expands in the parent module and its adapters.
macro_rules! client {
    ($ssl:ident, $lib:literal) => {
        use std::fmt;

        use async_trait::async_trait;
        use pingora_error::{Error, ErrorType, OrErr, Result};
        use rustls_pki_types::CertificateDer;
        use $ssl::ssl::{
            NameType, SslConnector, SslMethod, SslRef, SslSession, SslSessionCacheMode,
            SslSessionRef, SslVerifyMode,
        };
        use $ssl::x509::X509Ref;

        use super::{handshake, parsed, store, tls_digest};
        use crate::protocols::Stream;
        use crate::protocols::tls::LibsslStream;
        use crate::tls::backend::{ClientParams, ConnectorImpl};
        use crate::tls::libssl::{self, ConfigCache, SessionCache, Side};
        use crate::upstreams::PeerOptions;

        /// One client context and the sessions its connections left
        /// behind. The two live and die together: a session may only be
        /// resumed with the context that made it.
        struct Config {
            connector: SslConnector,
            sessions: SessionCache<SslSession>,
        }

        /// Builds (and caches) one context per distinct set of TLS options.
        pub(crate) struct Connector {
            // `None`: the library's default verify paths.
            default_roots: Option<Vec<CertificateDer<'static>>>,
            configs: ConfigCache<Config>,
        }

        impl Connector {
            pub(crate) fn new(default_roots: Option<Vec<CertificateDer<'static>>>) -> Result<Self> {
                Ok(Self {
                    default_roots,
                    configs: ConfigCache::new(),
                })
            }

            fn build_config(&self, options: &PeerOptions) -> Result<Config> {
                let mut builder = SslConnector::builder(SslMethod::tls()).or_err(
                    ErrorType::InternalError,
                    concat!("creating an ", $lib, " context"),
                )?;
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
                    .set_alpn_protos(&libssl::alpn_wire(&options.alpn.protocols()))
                    .or_err(ErrorType::InternalError, "setting ALPN")?;
                let sessions = SessionCache::new();
                let store = sessions.clone();
                builder.set_session_cache_mode(SslSessionCacheMode::CLIENT);
                // TLS 1.3 tickets arrive after the handshake, on a later read.
                builder.set_new_session_callback(move |ssl, session| {
                    if let Some(name) = ssl.servername(NameType::HOST_NAME) {
                        store.insert(name, session);
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
                f.debug_struct(concat!($lib, "Connector"))
                    .field("default_roots", &self.default_roots.as_ref().map(Vec::len))
                    .finish_non_exhaustive()
            }
        }

        #[async_trait]
        impl ConnectorImpl for Connector {
            async fn connect(&self, stream: Stream, params: ClientParams<'_>) -> Result<Stream> {
                let options = params.options;
                let name = libssl::peer_name(&params)?;
                let config = self
                    .configs
                    .get_or_build(options, || self.build_config(options))?;
                let mut conf = config
                    .connector
                    .configure()
                    .or_err(ErrorType::InternalError, "creating a TLS session")?;
                conf.set_use_server_name_indication(!params.sni.is_empty());
                // With alternative names the library's single-host check
                // cannot say yes to any of several names: check them after
                // the handshake.
                let check_names_after = options.verify_cert
                    && options.verify_hostname
                    && !options.alternative_names.is_empty();
                conf.set_verify_hostname(options.verify_hostname && !check_names_after);
                let mut ssl = conf.into_ssl(&name).or_err(
                    ErrorType::TLSHandshakeFailure,
                    "SNI is not a valid server name",
                )?;
                // Sessions are keyed by SNI: connections without one are
                // not resumed.
                if let Some(session) = config.sessions.get(params.sni) {
                    resume(&mut ssl, &session);
                }
                let tls = handshake(ssl, stream, Side::Client).await?;
                if check_names_after {
                    let leaf = tls.ssl().peer_certificate();
                    let mut names = std::iter::once(name.as_str())
                        .chain(options.alternative_names.iter().map(String::as_str));
                    if !leaf.is_some_and(|leaf| names.any(|n| names_host(&leaf, n))) {
                        return Error::e_explain(
                            ErrorType::InvalidCert,
                            "certificate names neither the SNI nor an alternative name",
                        );
                    }
                }
                let digest = tls_digest(tls.ssl());
                let base = tls.get_ref().digest().cloned();
                Ok(Box::new(LibsslStream::new(tls, base, digest)))
            }
        }

        /// Offer `session` for resumption on a connection not yet started.
        #[allow(unsafe_code)]
        fn resume(ssl: &mut SslRef, session: &SslSessionRef) {
            // SAFETY: `set_session` requires the session to come from the
            // same context as `ssl`. Sessions are stored only by the
            // new-session callback of one `Config`'s context, in that
            // `Config`'s own cache, and `ssl` was made from the same
            // `Config`'s context.
            if let Err(e) = unsafe { ssl.set_session(session) } {
                log::debug!("TLS session not resumable: {e}");
            }
        }

        /// Whether the certificate's subject alternative names cover `host`.
        fn names_host(cert: &X509Ref, host: &str) -> bool {
            let Some(sans) = cert.subject_alt_names() else {
                return false;
            };
            libssl::sans_cover(
                sans.iter().map(|san| (san.dnsname(), san.ipaddress())),
                host,
            )
        }
    };
}

pub(crate) use client;
