//! A TLS stream run by OpenSSL over any [`Stream`].

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use openssl::ssl::{NameType, SslRef};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_openssl::SslStream;

use super::TlsDigest;
use crate::protocols::{Digest, IO, Stream};

/// A TLS session over a [`Stream`], client or server side, with a digest
/// that adds the TLS details to the inner stream's.
pub(crate) struct OpensslStream {
    inner: SslStream<Stream>,
    digest: Digest,
}

impl OpensslStream {
    /// Wrap a finished handshake.
    pub(crate) fn new(inner: SslStream<Stream>) -> Self {
        let mut digest = inner.get_ref().digest().cloned().unwrap_or_default();
        digest.tls = Some(Arc::new(tls_digest(inner.ssl())));
        Self { inner, digest }
    }
}

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

impl fmt::Debug for OpensslStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslStream")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl IO for OpensslStream {
    fn digest(&self) -> Option<&Digest> {
        Some(&self.digest)
    }
}

impl AsyncRead for OpensslStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for OpensslStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
