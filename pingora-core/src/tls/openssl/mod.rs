//! The OpenSSL backend, through the `openssl` crate.

pub(crate) mod client;
pub(crate) mod server;

use std::sync::Arc;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{self, SslVersion};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509, X509VerifyResult};
use pingora_error::{BError, Error, ErrorType, OrErr, Result};
use rustls_pki_types::CertificateDer;

use super::{CertKey, TlsVersion};

/// A [`CertKey`] parsed by OpenSSL, cached in it.
pub(crate) struct OpensslCert {
    leaf: X509,
    intermediates: Vec<X509>,
    key: PKey<Private>,
}

/// The OpenSSL form of `ck`, parsed once and cached in it. `None` when
/// OpenSSL cannot parse it.
fn parsed(ck: &CertKey) -> Option<Arc<OpensslCert>> {
    ck.openssl_cell()
        .get_or_init(|| match parse(ck) {
            Ok(cert) => Some(Arc::new(cert)),
            Err(e) => {
                log::error!("TLS certificate unusable: {e}");
                None
            }
        })
        .clone()
}

fn parse(ck: &CertKey) -> Result<OpensslCert> {
    let leaf = x509(ck.leaf())?;
    let intermediates = ck.chain()[1..]
        .iter()
        .map(x509)
        .collect::<Result<Vec<_>>>()?;
    // d2i_AutoPrivateKey: PKCS#8 as well as the traditional RSA and EC forms.
    let key = PKey::private_key_from_der(ck.key().secret_der())
        .or_err(ErrorType::InvalidCert, "unusable private key")?;
    Ok(OpensslCert {
        leaf,
        intermediates,
        key,
    })
}

fn x509(der: &CertificateDer<'_>) -> Result<X509> {
    X509::from_der(der.as_ref()).or_err(ErrorType::InvalidCert, "unusable certificate")
}

fn store(roots: &[CertificateDer<'static>]) -> Result<X509Store> {
    let mut builder =
        X509StoreBuilder::new().or_err(ErrorType::InternalError, "creating a trust store")?;
    for root in roots {
        builder
            .add_cert(x509(root)?)
            .or_err(ErrorType::InvalidCert, "unusable CA certificate")?;
    }
    Ok(builder.build())
}

const fn version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    }
}

/// ALPN protocol names in the wire format: each prefixed by its length.
fn alpn_wire(protocols: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in protocols {
        // Our names (h2, http/1.1) are far below 256 bytes.
        if let Ok(len) = u8::try_from(p.len()) {
            wire.push(len);
            wire.extend_from_slice(p);
        }
    }
    wire
}

/// Classify a failed handshake: a certificate OpenSSL refused (or one the
/// peer refused or did not send) is [`ErrorType::InvalidCert`], the rest
/// [`ErrorType::TLSHandshakeFailure`].
fn handshake_error(err: ssl::Error, verify: X509VerifyResult, context: &'static str) -> BError {
    let cert_problem = verify != X509VerifyResult::OK
        || err.ssl_error().is_some_and(|stack| {
            stack
                .errors()
                .iter()
                .any(|e| e.reason().is_some_and(|r| r.contains("certificate")))
        });
    let etype = if cert_problem {
        ErrorType::InvalidCert
    } else {
        ErrorType::TLSHandshakeFailure
    };
    Error::because(etype, context, err)
}
