//! A test CA and certificates, generated at run time.

use pingora_core::tls::CertKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

/// A certificate authority that signs leaf certificates for tests.
pub(crate) struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// The CA certificate, DER.
    pub(crate) fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The CA certificate, PEM.
    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate as the only root of a trust list.
    pub(crate) fn roots(&self) -> std::sync::Arc<[CertificateDer<'static>]> {
        std::sync::Arc::from(vec![self.der()])
    }

    /// A leaf for `names`, valid now, usable by servers and clients.
    pub(crate) fn leaf(&self, names: &[&str]) -> CertKey {
        let (cert, key) = self.leaf_pem(names);
        CertKey::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
    }

    /// A leaf for `names` as PEM (certificate, key).
    pub(crate) fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        self.sign(names, false)
    }

    /// A leaf for `names` that expired in 2020.
    pub(crate) fn expired_leaf(&self, names: &[&str]) -> CertKey {
        let (cert, key) = self.sign(names, true);
        CertKey::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
    }

    fn sign(&self, names: &[&str], expired: bool) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The DER of a `CertKey`'s leaf, to compare with a digest.
pub(crate) fn leaf_der(ck: &CertKey) -> Vec<u8> {
    ck.leaf().as_ref().to_vec()
}
