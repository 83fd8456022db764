//! The OpenSSL server side.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use openssl::ssl::{
    AlpnError, NameType, SniError, Ssl, SslAcceptor, SslAlert, SslContext, SslMethod, SslRef,
    SslVerifyMode,
};
use pingora_error::{ErrorType, OrErr, Result};
use tokio_openssl::SslStream;

use super::{handshake_error, parsed, store, version, x509};
use crate::protocols::Stream;
use crate::protocols::tls::OpensslStream;
use crate::tls::ClientAuth;
use crate::tls::backend::{AcceptorImpl, ServerParams};
use crate::tls::select::CertSelector;

/// Build an OpenSSL acceptor from neutral settings.
pub(crate) fn acceptor(params: ServerParams) -> Result<Arc<dyn AcceptorImpl>> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .or_err(ErrorType::InternalError, "creating an OpenSSL context")?;
    builder
        .set_min_proto_version(Some(version(params.min_version)))
        .and_then(|()| builder.set_max_proto_version(Some(version(params.max_version))))
        .or_err(ErrorType::InternalError, "TLS versions not supported")?;
    set_client_auth(&mut builder, &params.client_auth)?;
    if let Some(alpn) = params.alpn {
        let ours = alpn.protocols();
        builder.set_alpn_select_callback(move |_, theirs| {
            pick_alpn(&ours, theirs).ok_or(AlpnError::NOACK)
        });
    }
    let selector = params.selector.clone();
    builder.set_servername_callback(move |ssl, _alert: &mut SslAlert| {
        let sni = ssl.servername(NameType::HOST_NAME).map(str::to_owned);
        match sni {
            Some(sni) if !use_certificate(ssl, &selector, Some(&sni)) => Err(SniError::ALERT_FATAL),
            _ => Ok(()),
        }
    });
    Ok(Arc::new(Acceptor {
        context: builder.build().into_context(),
        selector: params.selector,
    }))
}

fn set_client_auth(
    builder: &mut openssl::ssl::SslAcceptorBuilder,
    auth: &ClientAuth,
) -> Result<()> {
    let (roots, mode) = match auth {
        ClientAuth::None => return Ok(()),
        ClientAuth::Optional(roots) => (roots, SslVerifyMode::PEER),
        ClientAuth::Required(roots) => (
            roots,
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        ),
    };
    if roots.is_empty() {
        return pingora_error::Error::e_explain(
            ErrorType::InvalidCert,
            "client auth without CA roots",
        );
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

/// Our most preferred protocol that the client offers, as a slice of the
/// client's list (`theirs`, in the wire format of RFC 7301 section 3.1).
fn pick_alpn<'a>(ours: &[Vec<u8>], theirs: &'a [u8]) -> Option<&'a [u8]> {
    let mut offered = Vec::new();
    let mut rest = theirs;
    while let Some((&len, tail)) = rest.split_first() {
        let (name, next) = tail.split_at_checked(usize::from(len))?;
        offered.push(name);
        rest = next;
    }
    ours.iter()
        .find_map(|p| offered.iter().find(|o| **o == p.as_slice()).copied())
}

/// Put the certificate the selector picks for `sni` on the connection;
/// `false` when there is none or OpenSSL refuses it.
fn use_certificate(ssl: &mut SslRef, selector: &CertSelector, sni: Option<&str>) -> bool {
    let Some(cert) = selector.select(sni).as_deref().and_then(parsed) else {
        log::debug!("no certificate for SNI {sni:?}");
        return false;
    };
    let mut set = || -> Result<(), openssl::error::ErrorStack> {
        ssl.set_certificate(&cert.leaf)?;
        ssl.set_private_key(&cert.key)?;
        for intermediate in &cert.intermediates {
            ssl.add_chain_cert(intermediate.clone())?;
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
        f.write_str("OpensslAcceptor")
    }
}

#[async_trait]
impl AcceptorImpl for Acceptor {
    async fn accept(&self, stream: Stream) -> Result<Stream> {
        let mut ssl =
            Ssl::new(&self.context).or_err(ErrorType::InternalError, "creating a TLS session")?;
        // A client without SNI never reaches the servername callback:
        // start from the certificate for no name. A client with SNI gets
        // its own from the callback.
        use_certificate(&mut ssl, &self.selector, None);
        let mut tls = SslStream::new(ssl, stream)
            .or_err(ErrorType::InternalError, "creating a TLS stream")?;
        if let Err(e) = Pin::new(&mut tls).accept().await {
            let verify = tls.ssl().verify_result();
            return Err(handshake_error(e, verify, "TLS server handshake"));
        }
        Ok(Box::new(OpensslStream::new(tls)))
    }
}

#[cfg(test)]
mod tests {
    use super::pick_alpn;

    #[test]
    fn alpn_prefers_our_order() {
        let ours = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        assert_eq!(pick_alpn(&ours, b"\x08http/1.1\x02h2"), Some(&b"h2"[..]));
        assert_eq!(pick_alpn(&ours, b"\x08http/1.1"), Some(&b"http/1.1"[..]));
        assert_eq!(pick_alpn(&ours, b"\x03h3x"), None);
        // A truncated list is refused rather than misread.
        assert_eq!(pick_alpn(&ours, b"\x09http/1.1"), None);
    }
}
