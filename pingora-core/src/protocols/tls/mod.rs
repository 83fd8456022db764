//! TLS streams and what is known about a TLS session.

pub mod client_hello;
#[cfg(any(feature = "openssl", feature = "boringssl"))]
mod libssl;
#[cfg(feature = "rustls")]
mod rustls;

#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub(crate) use self::libssl::LibsslStream;
#[cfg(feature = "rustls")]
pub(crate) use self::rustls::RustlsStream;

/// What was negotiated on a TLS session, whatever the backend.
///
/// Found in [`Digest::tls`](super::Digest::tls) of a TLS stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsDigest {
    /// The protocol version, such as `"TLSv1.3"`.
    pub version: String,
    /// The cipher suite's name as the backend spells it, such as
    /// `"TLS13_AES_256_GCM_SHA384"` (rustls) or `"TLS_AES_256_GCM_SHA384"`
    /// (OpenSSL and BoringSSL).
    pub cipher: String,
    /// The protocol chosen with ALPN, such as `b"h2"`.
    pub alpn: Option<Vec<u8>>,
    /// The server name the client sent (SNI).
    pub sni: Option<String>,
    /// The peer's leaf certificate, DER encoded.
    pub peer_certificate: Option<Vec<u8>>,
    /// Whether the session was resumed rather than fully negotiated.
    pub resumed: bool,
}

impl TlsDigest {
    /// Whether ALPN chose HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.alpn.as_deref() == Some(b"h2")
    }
}
