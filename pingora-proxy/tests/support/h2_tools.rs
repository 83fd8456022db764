//! An `h2` client for the proxy tests, and an origin that reports what it
//! received.

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};

#[path = "../../../test-support/h2_client.rs"]
mod shared;
#[allow(unused_imports)] // each test file uses some of them
pub(crate) use shared::{Answer as H2Answer, h2_client, h2_exchange, send_all};

/// Echoes the request body and trailers, and reports in `x-seen-*`
/// fields the version, Host, TE and any connection-specific field it
/// received.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reflect;

#[async_trait]
impl ServeHttp for Reflect {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let req = request.header();
        let mut resp = HttpResponse::text(200, request.body().clone());
        let h = resp.header_mut();
        let _ = h.insert_header("x-seen-version", format!("{:?}", req.version()));
        let _ = h.insert_header("x-seen-method", req.method().as_str());
        let _ = h.insert_header("x-seen-uri", req.uri().to_string());
        for name in ["host", "te", "connection", "keep-alive", "x-custom"] {
            if let Some(v) = req.headers().get(name) {
                let _ = h.insert_header(format!("x-seen-{name}"), v.clone());
            }
        }
        match request.trailers() {
            Some(t) => resp.with_trailers(t.clone()),
            None => resp,
        }
    }
}
