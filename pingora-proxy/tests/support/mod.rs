//! Loopback proxies, origins and a client for the proxy tests. Everything
//! binds 127.0.0.1:0 and every wait is bounded by [`WAIT`].

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]
// Test helpers: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod h2_tools;
#[path = "../../../test-support/tools.rs"]
pub(crate) mod tools;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::header::RequestHeader;
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::v1::{ClientSession, H1Config};
use pingora_core::protocols::l4::L4Stream;
use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_proxy::{HttpProxy, ProxyHttp};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Every network wait in these tests is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A running server on loopback; dropping it stops accepting.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    _shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Tell the served connections the server is shutting down.
    pub(crate) fn shutdown(&self) {
        self._shutdown.send_replace(true);
    }

    /// A peer for this server.
    pub(crate) fn peer(&self) -> Box<HttpPeer> {
        Box::new(HttpPeer::new(self.addr, false, ""))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve `app` on 127.0.0.1:0, one task per connection.
pub(crate) async fn serve_app<A: ServerApp + Send + Sync + 'static>(app: A) -> Running {
    let app = Arc::new(app);
    serve_fn(move |stream, shutdown| {
        let app = app.clone();
        async move {
            app.process_new(stream, &shutdown).await;
        }
    })
    .await
}

/// Serve each accepted connection with `f`.
pub(crate) async fn serve_fn<F, Fut>(f: F) -> Running
where
    F: Fn(Stream, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = watch::channel(false);
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let stream = L4Stream::from_tcp(tcp);
            // As the proxy service's listeners do (see HttpProxyService).
            stream.set_nodelay(true).unwrap();
            let stream: Stream = Box::new(stream);
            tokio::spawn(f(stream, rx.clone()));
        }
    });
    Running {
        addr,
        accepted,
        _shutdown: tx,
        task,
    }
}

/// A proxy running `sv` with `max_retries`.
pub(crate) async fn start_proxy<SV: ProxyHttp + 'static>(sv: SV, max_retries: usize) -> Running {
    let mut conf = ServerConf::default();
    conf.max_retries = max_retries;
    serve_app(HttpProxy::new(sv, &conf).unwrap()).await
}

/// An origin serving `app` with the framework's HTTP server app.
pub(crate) async fn start_origin<S: ServeHttp>(app: S) -> Running {
    serve_app(HttpServer::new(app)).await
}

/// An address nothing listens on.
pub(crate) async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// An HTTP/1 client connection to `addr`.
pub(crate) async fn client(addr: SocketAddr) -> ClientSession {
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut config = H1Config::default();
    config.header_timeout = WAIT;
    config.body_read_timeout = WAIT;
    config.write_timeout = WAIT;
    ClientSession::new(Box::new(L4Stream::from_tcp(tcp)), config)
}

/// A request for `path` with a Host field.
pub(crate) fn request(method: &str, path: &str) -> RequestHeader {
    let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
    req.insert_header("Host", "test.local").unwrap();
    req
}

/// A finished exchange: the same as an HTTP/2 one.
pub(crate) use h2_tools::H2Answer as Exchange;

/// Send `req` with `body` on `client` and read the whole response.
pub(crate) async fn exchange(
    client: &mut ClientSession,
    req: RequestHeader,
    body: &[u8],
) -> Exchange {
    tokio::time::timeout(WAIT, async {
        client.write_request_header(req).await.unwrap();
        if !body.is_empty() {
            client.write_body(body).await.unwrap();
        }
        client.finish_body(None).await.unwrap();
        let head = client.read_final_response_header().await.unwrap();
        let (status, headers) = (head.status().as_u16(), head.headers().clone());
        let mut body = Vec::new();
        while let Some(piece) = client.read_body_bytes().await.unwrap() {
            body.extend_from_slice(&piece);
        }
        Exchange {
            status,
            headers,
            body,
            trailers: client.trailers().cloned(),
        }
    })
    .await
    .expect("exchange timed out")
}

/// One GET on a fresh connection to `addr`.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Exchange {
    let mut c = client(addr).await;
    exchange(&mut c, request("GET", path), b"").await
}

/// The same connection, ready for the next request; panics when the
/// previous exchange did not leave it reusable.
pub(crate) fn next(client: ClientSession) -> ClientSession {
    let stream = client.reuse().expect("connection not kept alive");
    let mut config = H1Config::default();
    config.header_timeout = WAIT;
    config.body_read_timeout = WAIT;
    ClientSession::new(stream, config)
}
