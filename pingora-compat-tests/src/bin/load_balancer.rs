//! Pingora's `load_balancer` example, as a user writes it: round robin over
//! the origins with a TCP health check run by a background service.
//!
//! The one change from Pingora: no `#[async_trait]` on `impl ProxyHttp`
//! (and so no `use async_trait::async_trait`).

use log::info;
use pingora::services::background::background_service;
use std::{sync::Arc, time::Duration};

use pingora::Result;
use pingora::http::RequestHeader;
use pingora::lb::{LoadBalancer, health_check, selection::RoundRobin};
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::Server;
use pingora::server::configuration::Opt;
use pingora::upstreams::peer::HttpPeer;

pub struct LB(Arc<LoadBalancer<RoundRobin>>);

impl ProxyHttp for LB {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let upstream = self
            .0
            .select(b"", 256) // hash doesn't matter for round robin
            .unwrap();

        info!("upstream peer is: {upstream:?}");

        // Pingora's example speaks TLS to 1.1.1.1:443; the test origins are plain.
        let peer = Box::new(HttpPeer::new(
            upstream,
            false,
            "one.one.one.one".to_string(),
        ));
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        upstream_request
            .insert_header("Host", "one.one.one.one")
            .unwrap();
        Ok(())
    }
}

fn main() {
    env_logger::init();

    let opt = Opt::parse_args();
    let mut my_server = Server::new(Some(opt)).unwrap();
    my_server.bootstrap();

    let origins = pingora_compat_tests::origins(&["1.1.1.1:443", "1.0.0.1:443"]);
    let mut upstreams = LoadBalancer::try_from_iter(origins).unwrap();

    let hc = health_check::TcpHealthCheck::new();
    upstreams.set_health_check(hc);
    upstreams.health_check_frequency = Some(Duration::from_millis(200));

    let background = background_service("health check", upstreams);
    let upstreams = background.task();

    let mut lb = pingora::proxy::http_proxy_service(&my_server.configuration, LB(upstreams));
    lb.add_tcp(&pingora_compat_tests::listen_addr("0.0.0.0:6188"));

    my_server.add_service(lb);
    my_server.add_service(background);
    my_server.run_forever();
}
