//! Where the `boring` crate differs from `openssl`: the adapters that
//! [`libssl::cert!`](macro@crate::tls::libssl::cert) asks for.

use std::error::Error as _;
use std::sync::{Arc, OnceLock};

use boring::ec::EcKey;
use boring::error::ErrorStack;
use boring::pkey::{PKey, Private};
use boring::rsa::Rsa;
use boring::ssl::{self, Ssl, SslRef};
use boring::x509::{X509, X509VerifyError};
use pingora_error::{Error, ErrorType, OrErr, Result};
use rustls_pki_types::PrivateKeyDer;
use tokio_boring::{SslStream, SslStreamBuilder};

use super::ParsedCert;
use crate::protocols::Stream;
use crate::tls::CertKey;
use crate::tls::libssl::{Side, handshake_error, is_cert_problem};

pub(super) fn cert_cell(ck: &CertKey) -> &OnceLock<Option<Arc<ParsedCert>>> {
    ck.boringssl_cell()
}

pub(super) fn private_key(der: &PrivateKeyDer<'_>) -> Result<PKey<Private>> {
    // `boring` has no d2i_AutoPrivateKey: pick the parser by the format
    // the PEM label (or the caller) declared.
    let key = match der {
        PrivateKeyDer::Pkcs8(k) => PKey::private_key_from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => {
            Rsa::private_key_from_der(k.secret_pkcs1_der()).and_then(PKey::from_rsa)
        }
        PrivateKeyDer::Sec1(k) => {
            EcKey::private_key_from_der(k.secret_sec1_der()).and_then(PKey::from_ec_key)
        }
        _ => return Error::e_explain(ErrorType::InvalidCert, "unsupported private key format"),
    };
    key.or_err(ErrorType::InvalidCert, "unusable private key")
}

pub(super) fn add_chain_cert(ssl: &mut SslRef, cert: &X509) -> Result<(), ErrorStack> {
    ssl.add_chain_cert(cert)
}

/// Run the handshake of `side` on `ssl` over `stream`.
pub(super) async fn handshake(ssl: Ssl, stream: Stream, side: Side) -> Result<SslStream<Stream>> {
    let builder = SslStreamBuilder::new(ssl, stream);
    let done = match side {
        Side::Client => builder.connect().await,
        Side::Server => builder.accept().await,
    };
    done.map_err(|e| {
        // BoringSSL reports INVALID_CALL until a certificate was verified.
        let verify_failed = e.ssl().is_some_and(|ssl| {
            ssl.verify_result()
                .is_err_and(|v| v != X509VerifyError::INVALID_CALL)
        });
        // The library's error stack sits behind the handshake error's source.
        let stack = e
            .source()
            .and_then(|s| s.downcast_ref::<ssl::Error>())
            .and_then(ssl::Error::ssl_error);
        let reasons = stack.map(ErrorStack::errors).unwrap_or_default();
        let cert_problem =
            is_cert_problem(verify_failed, reasons.iter().filter_map(|r| r.reason()));
        // The error holds the stream: keep only its message.
        handshake_error(cert_problem, side, e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use boring::ec::{EcGroup, EcKey};
    use boring::nid::Nid;
    use boring::rsa::Rsa;
    use pingora_error::ErrorType;
    use rustls_pki_types::PrivateKeyDer;

    use super::private_key;

    #[test]
    fn keys_parse_in_each_declared_format() {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let sec1 = EcKey::generate(&group)
            .unwrap()
            .private_key_to_der()
            .unwrap();
        let pkcs1 = Rsa::generate(2048).unwrap().private_key_to_der().unwrap();
        assert!(private_key(&PrivateKeyDer::Sec1(sec1.clone().into())).is_ok());
        assert!(private_key(&PrivateKeyDer::Pkcs1(pkcs1.into())).is_ok());
        // A key labelled with the wrong format is refused, not misread.
        let mislabelled = private_key(&PrivateKeyDer::Pkcs8(sec1.into())).unwrap_err();
        assert_eq!(mislabelled.etype(), &ErrorType::InvalidCert);
    }
}
