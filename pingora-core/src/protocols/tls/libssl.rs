//! A TLS stream run by OpenSSL or BoringSSL over any [`Stream`].
//!
//! [`Stream`]: crate::protocols::Stream

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::TlsDigest;
use crate::protocols::{Digest, IO};

/// A TLS session over a stream, client or server side, with a digest that
/// adds the TLS details to the inner stream's. `S` is the binding's tokio
/// stream (`tokio_openssl::SslStream` or `tokio_boring::SslStream`).
pub(crate) struct LibsslStream<S> {
    inner: S,
    digest: Digest,
}

impl<S> LibsslStream<S> {
    /// Wrap a finished handshake: `base` is the inner stream's digest and
    /// `tls` what the handshake negotiated.
    pub(crate) fn new(inner: S, base: Option<Digest>, tls: TlsDigest) -> Self {
        let mut digest = base.unwrap_or_default();
        digest.tls = Some(Arc::new(tls));
        Self { inner, digest }
    }
}

impl<S> fmt::Debug for LibsslStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LibsslStream")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl<S> IO for LibsslStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    fn digest(&self) -> Option<&Digest> {
        Some(&self.digest)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LibsslStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LibsslStream<S> {
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
