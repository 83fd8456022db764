//! Certificates, trust stores, versions and the digest, for both bindings.

/// Expands, in a backend's root module, the parsing of [`CertKey`]s and
/// roots, the version mapping and the [`TlsDigest`] of a session. `$ssl`
/// names the binding crate (`openssl` or `boring`).
///
/// The backend defines beside it the adapters where the bindings differ:
///
/// - `cert_cell(&CertKey) -> &OnceLock<Option<Arc<ParsedCert>>>`: where
///   the backend's parsed form is cached in a `CertKey`;
/// - `private_key(&PrivateKeyDer) -> Result<PKey<Private>>`;
/// - `add_chain_cert(&mut SslRef, &X509) -> Result<(), ErrorStack>`;
/// - `async handshake(Ssl, Stream, Side) -> Result<SslStream<Stream>>`:
///   run a handshake with the binding's tokio crate and classify its
///   failure with [`handshake_error`](super::handshake_error).
///
/// [`CertKey`]: crate::tls::CertKey
/// [`TlsDigest`]: crate::protocols::tls::TlsDigest
macro_rules! cert {
    ($ssl:ident) => {
        use std::sync::Arc;

        use pingora_error::{ErrorType, OrErr, Result};
        use rustls_pki_types::CertificateDer;
        use $ssl::ssl::{NameType, SslRef, SslVersion};
        use $ssl::x509::X509;
        use $ssl::x509::store::{X509Store, X509StoreBuilder};

        use crate::protocols::tls::TlsDigest;
        use crate::tls::{CertKey, TlsVersion};

        /// A [`CertKey`] parsed by this backend, cached in it.
        pub(crate) struct ParsedCert {
            leaf: X509,
            intermediates: Vec<X509>,
            key: $ssl::pkey::PKey<$ssl::pkey::Private>,
        }

        /// The parsed form of `ck`, parsed once and cached in it. `None`
        /// when the library cannot parse it.
        fn parsed(ck: &CertKey) -> Option<Arc<ParsedCert>> {
            cert_cell(ck)
                .get_or_init(|| match parse(ck) {
                    Ok(cert) => Some(Arc::new(cert)),
                    Err(e) => {
                        log::error!("TLS certificate unusable: {e}");
                        None
                    }
                })
                .clone()
        }

        fn parse(ck: &CertKey) -> Result<ParsedCert> {
            let leaf = x509(ck.leaf())?;
            let intermediates = ck.chain()[1..]
                .iter()
                .map(x509)
                .collect::<Result<Vec<_>>>()?;
            Ok(ParsedCert {
                leaf,
                intermediates,
                key: private_key(ck.key())?,
            })
        }

        fn x509(der: &CertificateDer<'_>) -> Result<X509> {
            X509::from_der(der.as_ref()).or_err(ErrorType::InvalidCert, "unusable certificate")
        }

        fn store(roots: &[CertificateDer<'static>]) -> Result<X509Store> {
            let mut builder = X509StoreBuilder::new()
                .or_err(ErrorType::InternalError, "creating a trust store")?;
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

        /// What was negotiated on a finished handshake.
        fn tls_digest(ssl: &SslRef) -> TlsDigest {
            TlsDigest {
                version: ssl.version_str().to_owned(),
                cipher: ssl
                    .current_cipher()
                    .map(|c| c.standard_name().unwrap_or(c.name()).to_owned())
                    .unwrap_or_default(),
                alpn: ssl.selected_alpn_protocol().map(<[u8]>::to_vec),
                sni: ssl.servername(NameType::HOST_NAME).map(str::to_owned),
                peer_certificate: ssl.peer_certificate().and_then(|c| c.to_der().ok()),
                resumed: ssl.session_reused(),
            }
        }
    };
}

pub(crate) use cert;
