//! The rustls backend: rustls 0.23 with the aws-lc-rs crypto provider.

pub(crate) mod client;
pub(crate) mod server;
mod verify;

use std::io;
use std::sync::Arc;

use pingora_error::{BError, Error, ErrorType, OrErr, Result};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, CertificateError, RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::CertificateDer;

use super::{CertKey, TlsVersion};

/// aws-lc-rs with post-quantum key exchange first: the hybrid
/// X25519MLKEM768 is preferred, the classical groups follow for peers
/// without it. Spelled out rather than left to rustls' default, which a
/// feature of rustls (`prefer-post-quantum`) decides.
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::kx_group;
    Arc::new(CryptoProvider {
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
            kx_group::SECP384R1,
        ],
        ..rustls::crypto::aws_lc_rs::default_provider()
    })
}

/// The versions between `min` and `max`, inclusive.
fn versions(min: TlsVersion, max: TlsVersion) -> Vec<&'static SupportedProtocolVersion> {
    let mut out = Vec::with_capacity(2);
    if (min..=max).contains(&TlsVersion::Tls13) {
        out.push(&rustls::version::TLS13);
    }
    if (min..=max).contains(&TlsVersion::Tls12) {
        out.push(&rustls::version::TLS12);
    }
    out
}

/// A root store holding `certs`.
fn root_store(certs: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert.clone())
            .or_err(ErrorType::InvalidCert, "unusable CA certificate")?;
    }
    Ok(store)
}

/// The rustls form of `ck`, parsed once and cached in it. `None` when the
/// key is of a type the provider cannot sign with.
fn certified(ck: &CertKey) -> Option<Arc<CertifiedKey>> {
    ck.rustls_cell()
        .get_or_init(
            || match rustls::crypto::aws_lc_rs::sign::any_supported_type(ck.key()) {
                Ok(key) => Some(Arc::new(CertifiedKey::new(ck.chain().to_vec(), key))),
                Err(e) => {
                    log::error!("TLS certificate key unusable: {e}");
                    None
                }
            },
        )
        .clone()
}

/// Turn a handshake's I/O error into the framework's kind: certificate
/// problems become [`ErrorType::InvalidCert`], the rest
/// [`ErrorType::TLSHandshakeFailure`].
fn handshake_error(err: io::Error, context: &'static str) -> BError {
    let etype = match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            ErrorType::InvalidCert
        }
        Some(rustls::Error::AlertReceived(alert)) if is_cert_alert(*alert) => {
            ErrorType::InvalidCert
        }
        _ => ErrorType::TLSHandshakeFailure,
    };
    Error::because(etype, context, err)
}

fn is_cert_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
    )
}

/// Whether `err` says the certificate does not name the expected host.
fn is_name_error(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}
