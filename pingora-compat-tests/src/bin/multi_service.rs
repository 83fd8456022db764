//! A server running several services, the way Pingora's `server` example
//! builds one: an HTTP echo app, a proxy and a background service, added
//! together as a `Vec<Box<dyn Service>>`.
//!
//! The one change from Pingora: no `#[async_trait]` on `impl ProxyHttp`.
//! The echo app is written against this project's `ServeHttp`, whose
//! shape differs from Pingora's (see the comment on `impl ServeHttp`).

use async_trait::async_trait;
use log::info;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::interval;

use pingora::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::prelude::*;
use pingora::services::Service;
use pingora::services::background::BackgroundService;
use pingora::services::listening::Service as ListeningService;

/// Ticks of the background service, shown by the echo app on `/ticks`.
static TICKS: AtomicUsize = AtomicUsize::new(0);

pub struct ExampleBackgroundService;

#[async_trait]
impl BackgroundService for ExampleBackgroundService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut period = interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    // shutdown
                    break;
                }
                _ = period.tick() => {
                    // do some work
                    TICKS.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

pub struct HttpEchoApp;

// Pingora: `async fn response(&self, http_stream: &mut ServerSession) -> Response<Vec<u8>>`,
// reading the body with `http_stream.read_request_body()`.
#[async_trait]
impl ServeHttp for HttpEchoApp {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        if request.header().uri.path() == "/ticks" {
            return HttpResponse::text(200, TICKS.load(Ordering::Relaxed).to_string());
        }
        let body = if request.body().is_empty() {
            bytes::Bytes::from("no body!")
        } else {
            request.body().clone()
        };
        HttpResponse::text(200, body)
    }
}

pub struct Passthrough;

impl ProxyHttp for Passthrough {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let origin = pingora_compat_tests::origins(&["1.1.1.1:80"]).remove(0);
        Ok(Box::new(HttpPeer::new(origin, false, String::new())))
    }
}

fn main() {
    env_logger::init();

    let opt = Opt::parse_args();
    let mut my_server = Server::new(Some(opt)).unwrap();
    my_server.bootstrap();

    // Pingora: Service::new("Echo Service HTTP".to_string(), HttpEchoApp)
    let mut echo_service_http =
        ListeningService::new("Echo Service HTTP", Arc::new(HttpServer::new(HttpEchoApp)));
    echo_service_http.add_tcp(&pingora_compat_tests::listen_addr("0.0.0.0:6145"));

    let mut proxy_service = http_proxy_service(&my_server.configuration, Passthrough);
    let proxy_addr = std::env::var("COMPAT_LISTEN_2").unwrap_or("0.0.0.0:6147".to_string());
    proxy_service.add_tcp(&proxy_addr);

    let background_service = background_service("example", ExampleBackgroundService {});

    let services: Vec<Box<dyn Service>> = vec![
        Box::new(echo_service_http),
        Box::new(proxy_service),
        Box::new(background_service),
    ];
    my_server.add_services(services);
    info!("starting the services");
    my_server.run_forever();
}
