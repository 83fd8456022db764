//! The gRPC-web bridge: lets browsers call gRPC services through the
//! proxy.
//!
//! Browsers cannot read HTTP trailers nor insist on HTTP/2, so
//! [gRPC-web](https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md)
//! carries a gRPC call over any HTTP version and moves the trailers
//! (`grpc-status`, `grpc-message`, custom metadata) into the body, as a
//! last frame. [`GrpcWeb`] registers a module, [`GrpcWebBridge`], that
//! translates such calls to plain gRPC for the upstream and the answers
//! back:
//!
//! - A request whose `Content-Type` is `application/grpc-web` or
//!   `application/grpc-web-text` (each with an optional `+proto`-like
//!   suffix) is rewritten to `application/grpc` (same suffix) with
//!   `TE: trailers`. In the text mode its body is base64-decoded as it
//!   streams, and its `Content-Length` removed.
//! - The gRPC response gets the matching `application/grpc-web…`
//!   `Content-Type`; its trailers are sent as a trailer frame at the end
//!   of the body (flag byte `0x80`, a 4-byte big-endian length, then
//!   `name: value\r\n` lines) instead of as HTTP trailers. In the text
//!   mode every piece of body (and the trailer frame) goes out
//!   base64-encoded, padded, as soon as it arrives: a client decodes the
//!   body four characters at a time, as gRPC-web clients do.
//! - A "trailers-only" answer (a gRPC error with no message: the status
//!   in the response head and no body) keeps its `grpc-status` in the
//!   head, which the gRPC-web protocol allows; no trailer frame is added.
//!
//! Any other request (a plain gRPC call included) is left alone, and so
//! is a response that is not gRPC (an error page, say).
//!
//! # What the proxy must do
//!
//! - **Reach the upstream over HTTP/2**: gRPC needs it (its status comes
//!   in trailers). `upstream_peer` must return a peer with
//!   `peer.options.alpn = Alpn::H2` (over TLS, or in cleartext for h2c).
//!   An HTTP/1 upstream cannot answer gRPC.
//! - **CORS** is not handled: a browser page served from another origin
//!   needs `Access-Control-Allow-Origin` on the answers, a preflight
//!   (`OPTIONS`) answered, and `Access-Control-Expose-Headers: grpc-status,
//!   grpc-message` for trailers-only answers. Add them in the proxy's
//!   phases (`request_filter` for the preflight, `response_filter` for the
//!   rest), where the allowed origins are known.
//!
//! # Examples
//!
//! ```
//! use pingora_core::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge};
//! use pingora_core::modules::http::HttpModules;
//!
//! // In `ProxyHttp::init_downstream_modules`:
//! let mut modules = HttpModules::new();
//! modules.add_module(Box::new(GrpcWeb));
//!
//! // Each request gets its own bridge, on until turned off.
//! let mut ctx = modules.build_ctx();
//! let bridge = ctx.get_mut::<GrpcWebBridge>().unwrap();
//! assert!(bridge.mode().is_none()); // not a gRPC-web request (yet)
//! bridge.disable(); // for example for a path served natively
//! ```

mod base64;

use super::{HttpModule, HttpModuleBuilder, Module, async_trait};
use crate::header::{RequestHeader, ResponseHeader};
use bytes::Bytes;
use http::HeaderMap;
use pingora_error::{Error, ErrorType, Result};
use std::any::Any;

/// The flag byte of a gRPC-web trailer frame.
const TRAILER_FLAG: u8 = 0x80;

/// Registers the [`GrpcWebBridge`] module; add it in
/// `ProxyHttp::init_downstream_modules` to let browsers' gRPC-web calls
/// through to gRPC upstreams. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcWeb;

impl HttpModuleBuilder for GrpcWeb {
    fn init(&self) -> Module {
        Box::new(GrpcWebBridge::default())
    }
}

/// How a gRPC-web call encodes its bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcWebMode {
    /// `application/grpc-web`: the gRPC frames as they are.
    Binary,
    /// `application/grpc-web-text`: the gRPC frames in base64.
    Text,
}

/// The gRPC-web bridge of one request, made by [`GrpcWeb`]: find it with
/// `session.downstream_modules_ctx_mut().get_mut::<GrpcWebBridge>()` to
/// turn it off for a request, or to ask whether the request was gRPC-web.
/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct GrpcWebBridge {
    disabled: bool,
    /// Set when the request is gRPC-web: the mode and the content-type
    /// suffix (`+proto`), kept for the answer.
    mode: Option<GrpcWebMode>,
    /// The request body's base64 decoder (text mode).
    decoder: base64::Decoder,
    /// The answer is gRPC and is being translated.
    translating: bool,
    /// The answer's head carried `grpc-status`: a trailers-only answer.
    status_in_head: bool,
}

impl GrpcWebBridge {
    /// Turn the bridge on for this request (it is on unless
    /// [`disable`](Self::disable)d). Pingora's bridge is off until
    /// `init` is called in `early_request_filter`; ours is on from the
    /// start, since it only acts on gRPC-web requests, so calling `init`
    /// there, as Pingora code does, is harmless.
    pub fn init(&mut self) {
        self.disabled = false;
    }

    /// Leave this request alone, for example for an upstream that speaks
    /// gRPC-web itself. Call it before the modules see the request head
    /// (in `early_request_filter`).
    pub fn disable(&mut self) {
        self.disabled = true;
    }

    /// The mode of this request's gRPC-web call; `None` when it is not
    /// one (or before the request head went through the modules).
    pub const fn mode(&self) -> Option<GrpcWebMode> {
        self.mode
    }
}

/// The gRPC-web mode and the suffix (`"+proto"` or `""`) of a
/// `Content-Type` value; `None` for anything that is not gRPC-web.
fn parse_grpc_web(content_type: &[u8]) -> Option<(GrpcWebMode, String)> {
    let ct = std::str::from_utf8(content_type).ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    let rest = essence.strip_prefix("application/grpc-web")?;
    let (mode, suffix) = match rest.strip_prefix("-text") {
        Some(suffix) => (GrpcWebMode::Text, suffix),
        None => (GrpcWebMode::Binary, rest),
    };
    if !suffix.is_empty() && !suffix.starts_with('+') {
        return None;
    }
    Some((mode, suffix.to_owned()))
}

/// The suffix (`"+proto"` or `""`) of a gRPC `Content-Type`; `None` for
/// anything else, gRPC-web included.
fn parse_grpc(content_type: &[u8]) -> Option<String> {
    let ct = std::str::from_utf8(content_type).ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    let suffix = essence.strip_prefix("application/grpc")?;
    (suffix.is_empty() || suffix.starts_with('+')).then(|| suffix.to_owned())
}

/// `trailers` as a gRPC-web trailer frame.
fn trailer_frame(trailers: &HeaderMap) -> Result<Vec<u8>> {
    let mut block = Vec::new();
    for (name, value) in trailers {
        // `HeaderName`s are lowercase already, as the frame wants.
        block.extend_from_slice(name.as_str().as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    let len = u32::try_from(block.len())
        .map_err(|_| Error::explain(ErrorType::InternalError, "grpc-web trailers too large"))?;
    let mut frame = Vec::with_capacity(5 + block.len());
    frame.push(TRAILER_FLAG);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&block);
    Ok(frame)
}

fn bad_request(why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(400), why)
}

#[async_trait]
impl HttpModule for GrpcWebBridge {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        if self.disabled {
            return Ok(());
        }
        let Some(ct) = req.get_header("content-type") else {
            return Ok(());
        };
        let Some((mode, suffix)) = parse_grpc_web(ct.as_bytes()) else {
            return Ok(());
        };
        req.insert_header("Content-Type", format!("application/grpc{suffix}"))?;
        // gRPC servers insist on it; the proxy keeps it over HTTP/2.
        req.insert_header("TE", "trailers")?;
        if mode == GrpcWebMode::Text {
            // Decoding changes the length; HTTP/2 frames the body itself.
            req.remove_header("content-length");
        }
        self.mode = Some(mode);
        Ok(())
    }

    async fn request_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        if self.mode != Some(GrpcWebMode::Text) {
            return Ok(());
        }
        let mut out = Vec::new();
        if let Some(piece) = body.as_deref() {
            self.decoder
                .decode(piece, &mut out)
                .map_err(|_| bad_request("grpc-web-text: request body is not base64"))?;
        }
        if end_of_stream {
            self.decoder
                .finish(&mut out)
                .map_err(|_| bad_request("grpc-web-text: request body ends mid-character"))?;
        }
        *body = (!out.is_empty()).then(|| Bytes::from(out));
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        let Some(mode) = self.mode else {
            return Ok(());
        };
        let status_in_head = resp.headers().contains_key("grpc-status");
        let suffix = match resp.get_header("content-type") {
            Some(ct) => parse_grpc(ct.as_bytes()),
            // A trailers-only answer may come without a Content-Type.
            None if status_in_head => Some(String::new()),
            None => None,
        };
        let Some(suffix) = suffix else {
            // Not gRPC (an error page, say): pass it on as it is.
            return Ok(());
        };
        let text = if mode == GrpcWebMode::Text {
            "-text"
        } else {
            ""
        };
        resp.insert_header(
            "Content-Type",
            format!("application/grpc-web{text}{suffix}"),
        )?;
        // The trailer frame (and base64) change the length.
        resp.remove_header("content-length");
        self.translating = true;
        self.status_in_head = status_in_head;
        Ok(())
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        if !self.translating || self.mode != Some(GrpcWebMode::Text) {
            return Ok(());
        }
        if let Some(piece) = body.as_mut().filter(|p| !p.is_empty()) {
            *piece = Bytes::from(base64::encode(piece));
        }
        Ok(())
    }

    fn response_trailer_filter(
        &mut self,
        trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        if !self.translating {
            return Ok(None);
        }
        // Browsers cannot read HTTP trailers: they go in the body only.
        let Some(trailers) = trailers.take() else {
            // A trailers-only answer has its status in the head already;
            // an answer with neither is broken, and the client says so.
            return Ok(None);
        };
        if trailers.is_empty() && self.status_in_head {
            return Ok(None);
        }
        let frame = trailer_frame(&trailers)?;
        let frame = match self.mode {
            Some(GrpcWebMode::Text) => base64::encode(&frame),
            _ => frame,
        };
        Ok(Some(Bytes::from(frame)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::http::HttpModules;

    fn modules() -> super::super::HttpModuleCtx {
        let mut modules = HttpModules::new();
        modules.add_module(Box::new(GrpcWeb));
        modules.build_ctx()
    }

    fn request(ct: &str, len: usize) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/pkg.Svc/Call", None).unwrap();
        req.insert_header("Content-Type", ct).unwrap();
        req.insert_header("Content-Length", len).unwrap();
        req
    }

    fn grpc_head(ct: Option<&str>) -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        if let Some(ct) = ct {
            resp.insert_header("Content-Type", ct).unwrap();
        }
        resp
    }

    #[test]
    fn content_types() {
        let cases = [
            ("application/grpc-web", Some((GrpcWebMode::Binary, ""))),
            (
                "application/grpc-web+proto",
                Some((GrpcWebMode::Binary, "+proto")),
            ),
            ("Application/GRPC-Web-Text", Some((GrpcWebMode::Text, ""))),
            (
                "application/grpc-web-text+proto; charset=x",
                Some((GrpcWebMode::Text, "+proto")),
            ),
            ("application/grpc", None),
            ("application/grpc-webx", None),
            ("text/plain", None),
        ];
        for (ct, want) in cases {
            let got = parse_grpc_web(ct.as_bytes());
            let got = got.as_ref().map(|(m, s)| (*m, s.as_str()));
            assert_eq!(got, want, "{ct}");
        }
        assert_eq!(parse_grpc(b"application/grpc").as_deref(), Some(""));
        assert_eq!(
            parse_grpc(b"application/grpc+proto").as_deref(),
            Some("+proto")
        );
        assert_eq!(parse_grpc(b"application/grpc-web"), None);
    }

    #[test]
    fn trailer_frame_layout() {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", "3".parse().unwrap());
        t.insert("Grpc-Message", "bad%20arg".parse().unwrap());
        let frame = trailer_frame(&t).unwrap();
        let block = b"grpc-status: 3\r\ngrpc-message: bad%20arg\r\n";
        assert_eq!(frame[0], 0x80);
        assert_eq!(frame[1..5], (block.len() as u32).to_be_bytes());
        assert_eq!(&frame[5..], block);
    }

    #[tokio::test]
    async fn binary_call_round_trip() {
        let mut ctx = modules();
        let mut req = request("application/grpc-web+proto", 7);
        ctx.request_header_filter(&mut req).await.unwrap();
        assert_eq!(req.headers()["content-type"], "application/grpc+proto");
        assert_eq!(req.headers()["te"], "trailers");
        assert_eq!(req.headers()["content-length"], "7");
        let mut body = Some(Bytes::from_static(b"\0\0\0\0\x02hi"));
        ctx.request_body_filter(&mut body, true).await.unwrap();
        assert_eq!(body.unwrap(), &b"\0\0\0\0\x02hi"[..]);

        let mut resp = grpc_head(Some("application/grpc+proto"));
        resp.insert_header("Content-Length", "7").unwrap();
        ctx.response_header_filter(&mut resp, false).await.unwrap();
        assert_eq!(resp.headers()["content-type"], "application/grpc-web+proto");
        assert!(!resp.headers().contains_key("content-length"));
        let mut piece = Some(Bytes::from_static(b"\0\0\0\0\x02ok"));
        ctx.response_body_filter(&mut piece, true).unwrap();
        assert_eq!(piece.unwrap(), &b"\0\0\0\0\x02ok"[..]);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let mut trailers = Some(Box::new(trailers));
        let last = ctx.response_trailer_filter(&mut trailers).unwrap().unwrap();
        assert!(trailers.is_none(), "trailers move into the body");
        assert_eq!(&last[..], b"\x80\0\0\0\x10grpc-status: 0\r\n");
    }

    #[tokio::test]
    async fn text_call_round_trip() {
        let mut ctx = modules();
        let mut req = request("application/grpc-web-text", 12);
        ctx.request_header_filter(&mut req).await.unwrap();
        assert_eq!(req.headers()["content-type"], "application/grpc");
        assert!(!req.headers().contains_key("content-length"));
        // "AAAAAAJoaQ==" is base64 for the frame 0,0,0,0,2,'h','i'.
        let mut out = Vec::new();
        for (piece, end) in [("AAAAA", false), ("AJ", false), ("oaQ==", true)] {
            let mut body = Some(Bytes::from(piece));
            ctx.request_body_filter(&mut body, end).await.unwrap();
            out.extend_from_slice(body.as_deref().unwrap_or_default());
        }
        assert_eq!(out, b"\0\0\0\0\x02hi");

        let mut resp = grpc_head(Some("application/grpc"));
        ctx.response_header_filter(&mut resp, false).await.unwrap();
        assert_eq!(resp.headers()["content-type"], "application/grpc-web-text");
        let mut piece = Some(Bytes::from_static(b"\0\0\0\0\x02ok"));
        ctx.response_body_filter(&mut piece, false).unwrap();
        assert_eq!(piece.unwrap(), "AAAAAAJvaw==");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let last = ctx
            .response_trailer_filter(&mut Some(Box::new(trailers)))
            .unwrap()
            .unwrap();
        assert_eq!(last, base64::encode(b"\x80\0\0\0\x10grpc-status: 0\r\n"));
    }

    #[tokio::test]
    async fn bad_base64_is_a_400() {
        let mut ctx = modules();
        let mut req = request("application/grpc-web-text", 3);
        ctx.request_header_filter(&mut req).await.unwrap();
        let mut body = Some(Bytes::from_static(b"a*c"));
        let e = ctx.request_body_filter(&mut body, true).await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::HTTPStatus(400));
    }

    #[tokio::test]
    async fn trailers_only_and_other_answers() {
        // Trailers-only: the status stays in the head, no frame is added.
        let mut ctx = modules();
        let mut req = request("application/grpc-web", 0);
        ctx.request_header_filter(&mut req).await.unwrap();
        let mut resp = grpc_head(None);
        resp.insert_header("grpc-status", "7").unwrap();
        ctx.response_header_filter(&mut resp, true).await.unwrap();
        assert_eq!(resp.headers()["content-type"], "application/grpc-web");
        assert_eq!(resp.headers()["grpc-status"], "7");
        ctx.response_body_filter(&mut None, true).unwrap();
        assert!(ctx.response_trailer_filter(&mut None).unwrap().is_none());

        // A non-gRPC answer passes as it is.
        let mut ctx = modules();
        ctx.request_header_filter(&mut req).await.unwrap();
        let mut resp = grpc_head(Some("text/html"));
        resp.insert_header("Content-Length", "3").unwrap();
        ctx.response_header_filter(&mut resp, false).await.unwrap();
        assert_eq!(resp.headers()["content-type"], "text/html");
        assert_eq!(resp.headers()["content-length"], "3");

        // Plain gRPC and disabled bridges are left alone.
        for (ct, disable) in [("application/grpc", false), ("application/grpc-web", true)] {
            let mut ctx = modules();
            if disable {
                ctx.get_mut::<GrpcWebBridge>().unwrap().disable();
            }
            let mut req = request(ct, 0);
            ctx.request_header_filter(&mut req).await.unwrap();
            assert_eq!(req.headers()["content-type"], ct);
            assert!(!req.headers().contains_key("te"));
            assert_eq!(ctx.get::<GrpcWebBridge>().unwrap().mode(), None);
            let mut resp = grpc_head(Some("application/grpc"));
            ctx.response_header_filter(&mut resp, false).await.unwrap();
            assert_eq!(resp.headers()["content-type"], "application/grpc");
        }
    }
}
