//! Helpers for the HTTP/2 tests: an in-process server on 127.0.0.1:0, an
//! `h2` client, and a tiny raw frame encoder for the attack tests.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub(crate) mod frames;
#[path = "../../../test-support/h2_client.rs"]
mod shared;
#[allow(unused_imports)] // each test file uses some of them
pub(crate) use shared::{Answer, h2_client, h2_client_on, h2_exchange, send_all};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::L4Stream;
use pingora_core::tls::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Every network wait in these tests is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A running server; dropping it stops accepting.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Serve `app` on 127.0.0.1:0, over TLS when an acceptor is given.
    pub(crate) async fn start<S: ServeHttp>(app: HttpServer<S>, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, watch) = watch::channel(false);
        let app = Arc::new(app);
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (app, watch, tls) = (app.clone(), watch.clone(), tls.clone());
                // As the real listeners do: no Nagle delay on small frames.
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let stream: Stream = Box::new(L4Stream::from_tcp(tcp));
                    let stream = match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => s,
                            Err(_) => return,
                        },
                        None => stream,
                    };
                    app.process_new(stream, &watch).await;
                });
            }
        });
        Self {
            addr,
            shutdown,
            accept,
        }
    }

    /// Tell every connection the server is shutting down.
    pub(crate) fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Send `method path` with `body` (and `trailers`), read the whole answer.
pub(crate) async fn exchange(
    send: &mut h2::client::SendRequest<Bytes>,
    method: &str,
    path: &str,
    body: &[u8],
    trailers: Option<http::HeaderMap>,
) -> Answer {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://test.local{path}"))
        .body(())
        .unwrap();
    h2_exchange(send, req, body, trailers).await
}
