//! Helpers for the HTTP/2 tests: an in-process server on 127.0.0.1:0, an
//! `h2` client, and a tiny raw frame encoder for the attack tests.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub(crate) mod frames;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::L4Stream;
use pingora_core::tls::TlsAcceptor;
use tokio::net::{TcpListener, TcpStream};
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

/// An `h2` client connection to a server; the connection is driven on
/// its own task.
pub(crate) async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    h2_client_on(tcp).await
}

/// An `h2` client on an established byte stream.
pub(crate) async fn h2_client_on<T>(io: T) -> h2::client::SendRequest<Bytes>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = tokio::time::timeout(WAIT, h2::client::handshake(io))
        .await
        .unwrap()
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A finished exchange as the client saw it.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Option<http::HeaderMap>,
}

/// Send `method path` with `body` (and `trailers`), read the whole answer.
pub(crate) async fn exchange(
    send: &mut h2::client::SendRequest<Bytes>,
    method: &str,
    path: &str,
    body: &[u8],
    trailers: Option<http::HeaderMap>,
) -> Answer {
    let fut = async {
        let mut send = send.clone().ready().await?;
        let req = http::Request::builder()
            .method(method)
            .uri(format!("http://test.local{path}"))
            .body(())
            .unwrap();
        let no_body = body.is_empty() && trailers.is_none();
        let (resp, mut out) = send.send_request(req, no_body)?;
        if !no_body {
            send_all(&mut out, body).await?;
            match trailers {
                Some(t) => out.send_trailers(t)?,
                None => out.send_data(Bytes::new(), true)?,
            }
        }
        let resp = resp.await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut recv = resp.into_body();
        let mut body = Vec::new();
        while let Some(data) = recv.data().await {
            let data = data?;
            let _ = recv.flow_control().release_capacity(data.len());
            body.extend_from_slice(&data);
        }
        let trailers = recv.trailers().await?;
        Ok::<_, h2::Error>(Answer {
            status,
            headers,
            body,
            trailers,
        })
    };
    tokio::time::timeout(WAIT, fut).await.unwrap().unwrap()
}

/// Send `body` respecting flow control.
pub(crate) async fn send_all(
    out: &mut h2::SendStream<Bytes>,
    body: &[u8],
) -> Result<(), h2::Error> {
    let mut rest = Bytes::copy_from_slice(body);
    while !rest.is_empty() {
        out.reserve_capacity(rest.len());
        let cap = std::future::poll_fn(|cx| out.poll_capacity(cx))
            .await
            .expect("stream open")?;
        let chunk = rest.split_to(cap.min(rest.len()));
        out.send_data(chunk, false)?;
    }
    Ok(())
}
