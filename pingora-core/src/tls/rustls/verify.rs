//! Server certificate verification with the switches peers can set.

use std::sync::Arc;

use pingora_error::{ErrorType, OrErr, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::is_name_error;

/// Verifies a server's chain against roots (webpki), then applies the
/// peer's switches: skip everything, skip the hostname check, or accept one
/// of the alternative names instead of the SNI.
#[derive(Debug)]
pub(super) struct PeerVerifier {
    // `None` when there is nothing to verify against (verification off, or
    // an empty trust store, where every chain is refused).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    verify_cert: bool,
    verify_hostname: bool,
    alternative_names: Vec<String>,
}

impl PeerVerifier {
    pub(super) fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        verify_cert: bool,
        verify_hostname: bool,
        alternative_names: Vec<String>,
    ) -> Result<Self> {
        let webpki = if verify_cert && !roots.is_empty() {
            Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .or_err(ErrorType::InvalidCert, "building server verifier")?,
            )
        } else {
            None
        };
        Ok(Self {
            webpki,
            provider,
            verify_cert,
            verify_hostname,
            alternative_names,
        })
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.verify_cert {
            return Ok(ServerCertVerified::assertion());
        }
        let webpki = self
            .webpki
            .as_ref()
            .ok_or(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))?;
        let err = match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(ok) => return Ok(ok),
            Err(err) => err,
        };
        if !is_name_error(&err) {
            return Err(err);
        }
        // The chain is good but names another host.
        if !self.verify_hostname {
            return Ok(ServerCertVerified::assertion());
        }
        for alt in &self.alternative_names {
            let Ok(name) = ServerName::try_from(alt.as_str()) else {
                continue;
            };
            if webpki
                .verify_server_cert(end_entity, intermediates, &name, ocsp, now)
                .is_ok()
            {
                return Ok(ServerCertVerified::assertion());
            }
        }
        Err(err)
    }

    // Handshake signatures are always checked, even with verification off:
    // it proves the server holds the key of the certificate it sent.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
