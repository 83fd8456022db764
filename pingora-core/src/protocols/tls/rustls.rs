//! A TLS stream run by rustls over any [`Stream`].

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::{CommonState, HandshakeKind, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsStream;

use super::TlsDigest;
use crate::protocols::{Digest, IO, Stream};

/// A TLS session over a [`Stream`], client or server side, with a digest
/// that adds the TLS details to the inner stream's.
pub(crate) struct RustlsStream {
    inner: TlsStream<Stream>,
    digest: Digest,
}

impl RustlsStream {
    /// Wrap a finished handshake. `sni` is what the client sent.
    pub(crate) fn new(inner: TlsStream<Stream>, sni: Option<String>) -> Self {
        let (io, state): (&Stream, &CommonState) = match &inner {
            TlsStream::Client(s) => {
                let (io, conn) = s.get_ref();
                (io, conn)
            }
            TlsStream::Server(s) => {
                let (io, conn) = s.get_ref();
                (io, conn)
            }
        };
        let mut digest = io.digest().cloned().unwrap_or_default();
        digest.tls = Some(Arc::new(tls_digest(state, sni)));
        Self { inner, digest }
    }
}

fn tls_digest(state: &CommonState, sni: Option<String>) -> TlsDigest {
    let version = match state.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher = state
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    TlsDigest {
        version,
        cipher,
        alpn: state.alpn_protocol().map(<[u8]>::to_vec),
        sni,
        peer_certificate: state
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.as_ref().to_vec()),
        resumed: state.handshake_kind() == Some(HandshakeKind::Resumed),
    }
}

impl fmt::Debug for RustlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsStream")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl IO for RustlsStream {
    fn digest(&self) -> Option<&Digest> {
        Some(&self.digest)
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
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

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
