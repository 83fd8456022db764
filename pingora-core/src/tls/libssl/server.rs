//! The server side, for both bindings.

/// Expands, in a backend's `server` module, its `acceptor` builder. `$ssl`
/// names the binding crate and `$lib` the library, for messages. Uses the
/// items [`cert!`](macro@super::cert) expands in the parent module and its adapters.
macro_rules! server {
    ($ssl:ident, $lib:literal) => {
        use std::fmt;
        use std::sync::Arc;

        use async_trait::async_trait;
        use pingora_error::{Error, ErrorType, OrErr, Result};
        use $ssl::ssl::{
            AlpnError, NameType, SniError, Ssl, SslAcceptor, SslAcceptorBuilder, SslAlert,
            SslContext, SslMethod, SslRef, SslVerifyMode,
        };

        use super::{add_chain_cert, handshake, parsed, store, tls_digest, version, x509};
        use crate::protocols::Stream;
        use crate::protocols::tls::LibsslStream;
        use crate::tls::ClientAuth;
        use crate::tls::backend::{AcceptorImpl, ServerParams};
        use crate::tls::libssl::{self, Side};
        use crate::tls::select::CertSelector;

        /// Build an acceptor from neutral settings.
        pub(crate) fn acceptor(params: ServerParams) -> Result<Arc<dyn AcceptorImpl>> {
            let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).or_err(
                ErrorType::InternalError,
                concat!("creating an ", $lib, " context"),
            )?;
            builder
                .set_min_proto_version(Some(version(params.min_version)))
                .and_then(|()| builder.set_max_proto_version(Some(version(params.max_version))))
                .or_err(ErrorType::InternalError, "TLS versions not supported")?;
            set_client_auth(&mut builder, &params.client_auth)?;
            if let Some(alpn) = params.alpn {
                let ours = alpn.protocols();
                builder.set_alpn_select_callback(move |_, theirs| {
                    libssl::pick_alpn(&ours, theirs).ok_or(AlpnError::NOACK)
                });
            }
            let selector = params.selector.clone();
            builder.set_servername_callback(move |ssl, _alert: &mut SslAlert| {
                let sni = ssl.servername(NameType::HOST_NAME).map(str::to_owned);
                match sni {
                    Some(sni) if !use_certificate(ssl, &selector, Some(&sni)) => {
                        Err(SniError::ALERT_FATAL)
                    }
                    _ => Ok(()),
                }
            });
            Ok(Arc::new(Acceptor {
                context: builder.build().into_context(),
                selector: params.selector,
            }))
        }

        fn set_client_auth(builder: &mut SslAcceptorBuilder, auth: &ClientAuth) -> Result<()> {
            let (roots, mode) = match auth {
                ClientAuth::None => return Ok(()),
                ClientAuth::Optional(roots) => (roots, SslVerifyMode::PEER),
                ClientAuth::Required(roots) => (
                    roots,
                    SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
                ),
            };
            if roots.is_empty() {
                return Error::e_explain(ErrorType::InvalidCert, "client auth without CA roots");
            }
            for root in roots {
                builder
                    .add_client_ca(x509(root)?.as_ref())
                    .or_err(ErrorType::InvalidCert, "unusable client CA")?;
            }
            builder
                .set_verify_cert_store(store(roots)?)
                .or_err(ErrorType::InvalidCert, "setting client CA roots")?;
            builder.set_verify(mode);
            Ok(())
        }

        /// Put the certificate the selector picks for `sni` on the
        /// connection; `false` when there is none or the library refuses it.
        fn use_certificate(ssl: &mut SslRef, selector: &CertSelector, sni: Option<&str>) -> bool {
            let Some(cert) = selector.select(sni).as_deref().and_then(parsed) else {
                log::debug!("no certificate for SNI {sni:?}");
                return false;
            };
            let mut set = || -> Result<(), $ssl::error::ErrorStack> {
                ssl.set_certificate(&cert.leaf)?;
                ssl.set_private_key(&cert.key)?;
                for intermediate in &cert.intermediates {
                    add_chain_cert(ssl, intermediate)?;
                }
                Ok(())
            };
            match set() {
                Ok(()) => true,
                Err(e) => {
                    log::error!("setting TLS certificate: {e}");
                    false
                }
            }
        }

        struct Acceptor {
            context: SslContext,
            selector: Arc<CertSelector>,
        }

        impl fmt::Debug for Acceptor {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!($lib, "Acceptor"))
            }
        }

        #[async_trait]
        impl AcceptorImpl for Acceptor {
            async fn accept(&self, stream: Stream) -> Result<Stream> {
                let mut ssl = Ssl::new(&self.context)
                    .or_err(ErrorType::InternalError, "creating a TLS session")?;
                // A client without SNI never reaches the servername
                // callback: start from the certificate for no name. A
                // client with SNI gets its own from the callback.
                use_certificate(&mut ssl, &self.selector, None);
                let tls = handshake(ssl, stream, Side::Server).await?;
                let digest = tls_digest(tls.ssl());
                let base = tls.get_ref().digest().cloned();
                Ok(Box::new(LibsslStream::new(tls, base, digest)))
            }
        }
    };
}

pub(crate) use server;
