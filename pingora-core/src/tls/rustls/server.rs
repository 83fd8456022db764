//! The rustls server side.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::{Error, ErrorType, OrErr, Result};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsStream;

use super::{certified, handshake_error, provider, root_store, versions};
use crate::protocols::Stream;
use crate::protocols::tls::RustlsStream;
use crate::tls::ClientAuth;
use crate::tls::backend::{AcceptorImpl, ServerParams};
use crate::tls::select::CertSelector;

/// Build a rustls acceptor from neutral settings.
pub(crate) fn acceptor(params: ServerParams) -> Result<Arc<dyn AcceptorImpl>> {
    let provider = provider();
    let versions = versions(params.min_version, params.max_version);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .or_err(ErrorType::InternalError, "TLS versions not supported")?;
    let builder = match params.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(roots) | ClientAuth::Required(roots) if roots.is_empty() => {
            return Error::e_explain(ErrorType::InvalidCert, "client auth without CA roots");
        }
        ClientAuth::Optional(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(&roots)?), provider)
                .allow_unauthenticated()
                .build()
                .or_err(ErrorType::InvalidCert, "building client verifier")?,
        ),
        ClientAuth::Required(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(&roots)?), provider)
                .build()
                .or_err(ErrorType::InvalidCert, "building client verifier")?,
        ),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Resolver {
        selector: params.selector,
    }));
    config.alpn_protocols = params.alpn.map(|a| a.protocols()).unwrap_or_default();
    Ok(Arc::new(Acceptor {
        inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }))
}

struct Acceptor {
    inner: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RustlsAcceptor")
    }
}

#[async_trait]
impl AcceptorImpl for Acceptor {
    async fn accept(&self, stream: Stream) -> Result<Stream> {
        let tls = self
            .inner
            .accept(stream)
            .await
            .map_err(|e| handshake_error(e, "TLS server handshake"))?;
        let sni = tls.get_ref().1.server_name().map(str::to_owned);
        Ok(Box::new(RustlsStream::new(TlsStream::Server(tls), sni)))
    }
}

/// Hands rustls the certificate the selector picks for the client's SNI.
struct Resolver {
    selector: Arc<CertSelector>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("selector", &self.selector)
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let cert = self.selector.select(hello.server_name());
        if cert.is_none() {
            log::debug!("no certificate for SNI {:?}", hello.server_name());
        }
        certified(cert.as_deref()?)
    }
}
