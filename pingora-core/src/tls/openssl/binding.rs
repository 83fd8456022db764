//! Where the `openssl` crate differs from `boring`: the adapters that
//! [`libssl::cert!`](macro@crate::tls::libssl::cert) asks for.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslRef};
use openssl::x509::{X509, X509VerifyResult};
use pingora_error::{ErrorType, OrErr, Result};
use rustls_pki_types::PrivateKeyDer;
use tokio_openssl::SslStream;

use super::ParsedCert;
use crate::protocols::Stream;
use crate::tls::CertKey;
use crate::tls::libssl::{Side, handshake_error, is_cert_problem};

pub(super) fn cert_cell(ck: &CertKey) -> &OnceLock<Option<Arc<ParsedCert>>> {
    ck.openssl_cell()
}

pub(super) fn private_key(der: &PrivateKeyDer<'_>) -> Result<PKey<Private>> {
    // d2i_AutoPrivateKey: PKCS#8 as well as the traditional RSA and EC forms.
    PKey::private_key_from_der(der.secret_der())
        .or_err(ErrorType::InvalidCert, "unusable private key")
}

pub(super) fn add_chain_cert(ssl: &mut SslRef, cert: &X509) -> Result<(), ErrorStack> {
    ssl.add_chain_cert(cert.clone())
}

/// Run the handshake of `side` on `ssl` over `stream`.
pub(super) async fn handshake(ssl: Ssl, stream: Stream, side: Side) -> Result<SslStream<Stream>> {
    let mut tls =
        SslStream::new(ssl, stream).or_err(ErrorType::InternalError, "creating a TLS stream")?;
    let done = match side {
        Side::Client => Pin::new(&mut tls).connect().await,
        Side::Server => Pin::new(&mut tls).accept().await,
    };
    match done {
        Ok(()) => Ok(tls),
        Err(e) => {
            let verify_failed = tls.ssl().verify_result() != X509VerifyResult::OK;
            let reasons = e
                .ssl_error()
                .map(|stack| stack.errors())
                .unwrap_or_default();
            let cert_problem =
                is_cert_problem(verify_failed, reasons.iter().filter_map(|r| r.reason()));
            Err(handshake_error(cert_problem, side, e))
        }
    }
}
