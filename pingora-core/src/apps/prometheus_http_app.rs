//! [`PrometheusHttpApp`]: serves the `prometheus` crate's default registry
//! (the framework's metrics and the program's) in the text format.

use super::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use async_trait::async_trait;
use prometheus::{Encoder, TextEncoder};

/// Answers every GET with the metrics of the default registry, in the
/// Prometheus text format; other methods get 405.
///
/// Serve it with [`Service::prometheus_http_service`](crate::services::listening::Service::prometheus_http_service),
/// on a listener of its own (keep it off the public address).
#[derive(Debug, Default, Clone, Copy)]
pub struct PrometheusHttpApp;

/// The HTTP server of a [`PrometheusHttpApp`].
pub type PrometheusServer = HttpServer<PrometheusHttpApp>;

impl PrometheusHttpApp {
    /// The text a scrape returns now.
    pub fn scrape() -> Vec<u8> {
        crate::metrics::register_core();
        let families = prometheus::gather();
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut text) {
            log::warn!("metrics encoding failed: {e}");
        }
        text
    }
}

#[async_trait]
impl ServeHttp for PrometheusHttpApp {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let method = request.header().method();
        if method != http::Method::GET && method != http::Method::HEAD {
            return HttpResponse::text(405, "GET the metrics\n");
        }
        let mut resp = HttpResponse::text(200, Self::scrape());
        let header = resp.header_mut();
        // Static, valid names and values cannot fail to insert.
        let _ = header.insert_header("Content-Type", TextEncoder::new().format_type());
        let _ = header.insert_header("Cache-Control", "no-store");
        resp
    }
}
