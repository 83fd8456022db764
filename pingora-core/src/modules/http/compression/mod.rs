//! Response compression: a module that encodes response bodies with
//! brotli, zstd or gzip for clients that accept them, and can decode
//! compressed upstream bodies for body filters that need plain text.
//!
//! Register it with [`ResponseCompressionBuilder::enable`] (one level for
//! every algorithm) or configure a [`ResponseCompressionBuilder`]; adjust
//! one request through the [`ResponseCompression`] instance found in the
//! session's module context.
//!
//! # What gets compressed
//!
//! A response is encoded when all of these hold:
//!
//! - the request was not `HEAD` and the response has a body: not 1xx,
//!   204, 304, and not a `206 Partial Content` or anything with a
//!   `Content-Range` (a range of an encoding is not what the client
//!   asked a range of);
//! - it has no `Content-Encoding` yet (other than `identity`) and no
//!   `Cache-Control: no-transform` (RFC 9110 §7.7);
//! - its `Content-Type` is on the allow-list (text, JSON, JavaScript, XML,
//!   SVG, WebAssembly, fonts... see [`DEFAULT_CONTENT_TYPES`]);
//! - its `Content-Length`, when known, is at least the minimum size
//!   (default [`DEFAULT_MIN_SIZE`] bytes: below that the coding's framing
//!   eats the gain);
//! - the client's `Accept-Encoding` accepts an enabled algorithm
//!   (RFC 9110 §12.5.3, with q-values; a request without the field gets
//!   the body as it is). On equal weights brotli wins, then zstd, then
//!   gzip.
//!
//! Every response that passes the first four tests gets
//! `Vary: Accept-Encoding` (merged with an existing `Vary`), whether or
//! not this client accepted an encoding, so that caches keep the variants
//! apart. An encoded response gets `Content-Encoding`, loses
//! `Content-Length` (it is sent chunked over HTTP/1.1) and
//! `Accept-Ranges`, and its strong `ETag` is weakened (`W/"..."`): the
//! bytes differ from the origin's.
//!
//! The body is encoded piece by piece and each piece is flushed through,
//! so memory stays bounded whatever the body size and a streamed body
//! (server-sent events) reaches the client as it comes.
//!
//! # Examples
//!
//! ```
//! use pingora_core::modules::http::HttpModules;
//! use pingora_core::modules::http::compression::{Algorithm, ResponseCompressionBuilder};
//!
//! let mut modules = HttpModules::new();
//! // Level 6 for every algorithm.
//! modules.add_module(ResponseCompressionBuilder::enable(6));
//!
//! // Or: brotli at 4, zstd at 3, gzip at 6, from 1 KiB, JSON only.
//! let mut modules = HttpModules::new();
//! modules.add_module(
//!     ResponseCompressionBuilder::new(6)
//!         .algorithm_level(Algorithm::Brotli, 4)
//!         .algorithm_level(Algorithm::Zstd, 3)
//!         .min_size(1024)
//!         .content_types(["application/json"])
//!         .build(),
//! );
//! ```

mod builder;
mod encoders;
mod negotiate;

pub use self::builder::{DEFAULT_CONTENT_TYPES, DEFAULT_MIN_SIZE, ResponseCompressionBuilder};

use self::builder::Settings;
use self::encoders::{Decoder, Encoder};
use self::negotiate::Accepted;
use super::{HttpModule, async_trait};
use crate::header::{RequestHeader, ResponseHeader};
use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use pingora_error::Result;
use std::any::Any;
use std::sync::Arc;

/// A content coding this module encodes and decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `gzip` (RFC 1952), through flate2.
    Gzip,
    /// `br`: brotli (RFC 7932).
    Brotli,
    /// `zstd`: Zstandard (RFC 8878).
    Zstd,
}

impl Algorithm {
    /// Every algorithm, in the order preferred when a client weighs them
    /// the same.
    const ALL: [Self; 3] = [Self::Brotli, Self::Zstd, Self::Gzip];

    /// The position in [`Self::ALL`], for per-algorithm arrays.
    const fn index(self) -> usize {
        match self {
            Self::Brotli => 0,
            Self::Zstd => 1,
            Self::Gzip => 2,
        }
    }

    /// The content-coding token: `gzip`, `br` or `zstd`.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_core::modules::http::compression::Algorithm;
    /// assert_eq!(Algorithm::Brotli.as_str(), "br");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// The algorithm of a content-coding token, in any case (`x-gzip` is
    /// gzip, RFC 9110 §8.4.1.3).
    fn from_token(token: &[u8]) -> Option<Self> {
        [
            (&b"gzip"[..], Self::Gzip),
            (b"x-gzip", Self::Gzip),
            (b"br", Self::Brotli),
            (b"zstd", Self::Zstd),
        ]
        .into_iter()
        .find_map(|(name, alg)| token.eq_ignore_ascii_case(name).then_some(alg))
    }
}

/// One request's response compression: found with
/// `session.downstream_modules_ctx_mut().get_mut::<ResponseCompression>()`
/// to change this request's levels or decompression before the response
/// arrives.
///
/// # Examples
///
/// ```
/// use pingora_core::modules::http::HttpModules;
/// use pingora_core::modules::http::compression::{
///     Algorithm, ResponseCompression, ResponseCompressionBuilder,
/// };
///
/// let mut modules = HttpModules::new();
/// modules.add_module(ResponseCompressionBuilder::enable(6));
/// let mut ctx = modules.build_ctx();
/// // In a phase, with `session.downstream_modules_ctx_mut()`:
/// let compression = ctx.get_mut::<ResponseCompression>().unwrap();
/// compression.adjust_algorithm_level(Algorithm::Gzip, 0); // no gzip here
/// compression.adjust_decompression(true); // body filters see plain text
/// assert!(compression.is_enabled());
/// ```
pub struct ResponseCompression {
    settings: Arc<Settings>,
    levels: [u32; 3],
    decompress: [bool; 3],
    min_size: usize,
    /// The request's `Accept-Encoding`; `None` when it sent none.
    accepted: Option<Accepted>,
    /// The request is a `HEAD`: no body to encode.
    head: bool,
    encoder: Option<Encoder>,
    decoder: Option<Decoder>,
    /// The algorithm encoding the response, with bytes in and out.
    stats: Option<(Algorithm, u64, u64)>,
    /// The coding of the upstream body being decoded.
    decoded: Option<Algorithm>,
}

impl std::fmt::Debug for ResponseCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCompression")
            .field("levels", &self.levels)
            .field("decompress", &self.decompress)
            .field("stats", &self.stats)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

impl ResponseCompression {
    /// Set every algorithm's level for this request (0: no compression).
    pub const fn adjust_level(&mut self, level: u32) {
        self.levels = [level; 3];
    }

    /// Set one algorithm's level for this request (0: do not use it).
    pub const fn adjust_algorithm_level(&mut self, algorithm: Algorithm, level: u32) {
        self.levels[algorithm.index()] = level;
    }

    /// Decode a gzip, brotli or zstd upstream body for this request, so
    /// that `response_filter` and `response_body_filter` see it plain,
    /// without `Content-Encoding`; the module may then encode it again for
    /// the client. Partial (206) and bodyless responses are not decoded.
    /// A body that does not decode, or a piece of it that expands past
    /// 64 MiB (a decompression bomb), ends the request.
    pub const fn adjust_decompression(&mut self, enabled: bool) {
        self.decompress = [enabled; 3];
    }

    /// Decode upstream bodies of one coding only (see
    /// [`adjust_decompression`](Self::adjust_decompression)).
    pub const fn adjust_algorithm_decompression(&mut self, algorithm: Algorithm, enabled: bool) {
        self.decompress[algorithm.index()] = enabled;
    }

    /// Set this request's minimum size (see
    /// [`ResponseCompressionBuilder::min_size`]).
    pub const fn adjust_min_size(&mut self, bytes: usize) {
        self.min_size = bytes;
    }

    /// Whether this request may compress or decompress at all.
    pub fn is_enabled(&self) -> bool {
        self.levels.iter().any(|&l| l > 0) || self.decompress.iter().any(|&d| d)
    }

    /// The algorithm the response is encoded with, with the body bytes
    /// encoded so far and the bytes they became; `None` when the response
    /// is not being encoded.
    pub const fn compression_stats(&self) -> Option<(Algorithm, u64, u64)> {
        self.stats
    }

    /// The coding of the upstream body being decoded, when it is.
    pub const fn decompressed_from(&self) -> Option<Algorithm> {
        self.decoded
    }

    /// Whether this response may be encoded, whatever the client accepts:
    /// the resource-side tests of the [module docs](self).
    fn eligible(&self, resp: &ResponseHeader, end_of_stream: bool) -> bool {
        let status = resp.status();
        if self.head
            || end_of_stream
            || status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
            )
            || resp.has_header("content-range")
            || resp
                .get_header_values("content-encoding")
                .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
            || resp
                .get_header_values("cache-control")
                .any(|v| has_token(v.as_bytes(), b"no-transform"))
        {
            return false;
        }
        let typed = resp
            .get_header("content-type")
            .is_some_and(|t| self.settings.allows_type(t.as_bytes()));
        let small = resp
            .get_header("content-length")
            .and_then(|l| std::str::from_utf8(l.as_bytes()).ok())
            .and_then(|l| l.trim().parse::<usize>().ok())
            .is_some_and(|len| len < self.min_size);
        typed && !small
    }

    /// Decide on the response head, and rewrite it when encoding.
    fn start(&mut self, resp: &mut ResponseHeader, end_of_stream: bool) -> Result<()> {
        if !self.levels.iter().any(|&l| l > 0) || !self.eligible(resp, end_of_stream) {
            return Ok(());
        }
        add_vary(resp)?;
        let levels = self.levels;
        let Some(alg) = self
            .accepted
            .as_ref()
            .and_then(|a| a.choose(|alg| levels[alg.index()] > 0))
        else {
            return Ok(());
        };
        self.encoder = Some(Encoder::new(alg, levels[alg.index()])?);
        self.stats = Some((alg, 0, 0));
        resp.remove_header("content-encoding");
        resp.insert_header("Content-Encoding", alg.as_str())?;
        resp.remove_header("content-length");
        resp.remove_header("accept-ranges");
        weaken_etag(resp)
    }
}

/// The algorithm of a response coded once with gzip, brotli or zstd.
fn single_coding(resp: &ResponseHeader) -> Option<Algorithm> {
    let mut codings = resp.get_header_values("content-encoding");
    match (codings.next(), codings.next()) {
        (Some(coding), None) => Algorithm::from_token(coding.as_bytes().trim_ascii()),
        _ => None,
    }
}

/// Whether the comma-separated list `value` holds `token`, in any case.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Add `Accept-Encoding` to `Vary` unless it is there or `Vary: *`.
fn add_vary(resp: &mut ResponseHeader) -> Result<()> {
    let varies = resp
        .get_header_values("vary")
        .any(|v| has_token(v.as_bytes(), b"accept-encoding") || has_token(v.as_bytes(), b"*"));
    if varies {
        return Ok(());
    }
    resp.append_header("Vary", "Accept-Encoding")
}

/// Turn a strong `ETag` into a weak one: the encoded bytes are not the
/// origin's, but they mean the same (RFC 9110 §8.8.3).
fn weaken_etag(resp: &mut ResponseHeader) -> Result<()> {
    let Some(etag) = resp.get_header("etag") else {
        return Ok(());
    };
    if etag.as_bytes().starts_with(b"W/") {
        return Ok(());
    }
    let mut weak = BytesMut::with_capacity(etag.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(etag.as_bytes());
    let weak = http::HeaderValue::from_maybe_shared(weak.freeze()).map_err(|e| {
        pingora_error::Error::because(
            pingora_error::ErrorType::InvalidHTTPHeader,
            "weakening the ETag",
            e,
        )
    })?;
    resp.insert_header("ETag", weak)
}

#[async_trait]
impl HttpModule for ResponseCompression {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        self.head = req.method() == Method::HEAD;
        if req.has_header("accept-encoding") {
            let values = req.get_header_values("accept-encoding");
            self.accepted = Some(Accepted::parse(values.map(http::HeaderValue::as_bytes)));
        }
        Ok(())
    }

    fn upstream_response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        if end_of_stream
            || self.head
            || resp.status() == StatusCode::PARTIAL_CONTENT
            || resp.has_header("content-range")
        {
            return Ok(());
        }
        let Some(alg) = single_coding(resp) else {
            return Ok(());
        };
        if !self.decompress[alg.index()] {
            return Ok(());
        }
        self.decoder = Some(Decoder::new(alg)?);
        self.decoded = Some(alg);
        resp.remove_header("content-encoding");
        resp.remove_header("content-length");
        weaken_etag(resp)
    }

    fn upstream_response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(());
        };
        let mut out = match body.as_deref() {
            Some(piece) if !piece.is_empty() => decoder.decode(piece)?,
            _ => Bytes::new(),
        };
        if end_of_stream && let Some(decoder) = self.decoder.take() {
            out = join(out, decoder.finish()?);
        }
        *body = Some(out);
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        self.start(resp, end_of_stream)
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(());
        };
        let input = body.as_ref().map_or(0, Bytes::len);
        let mut out = match body.as_deref() {
            Some(piece) if !piece.is_empty() => encoder.encode(piece)?,
            _ => Bytes::new(),
        };
        if end_of_stream && let Some(encoder) = self.encoder.take() {
            out = join(out, encoder.finish()?);
        }
        if let Some((_, bytes_in, bytes_out)) = self.stats.as_mut() {
            *bytes_in += input as u64;
            *bytes_out += out.len() as u64;
        }
        *body = Some(out);
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// `a` then `b`, copying only when both have bytes.
fn join(a: Bytes, b: Bytes) -> Bytes {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    let mut out = BytesMut::with_capacity(a.len() + b.len());
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out.freeze()
}

#[cfg(test)]
mod tests;
