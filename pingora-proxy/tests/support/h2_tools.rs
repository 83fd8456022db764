//! An `h2` client for the proxy tests, and an origin that reports what it
//! received.

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};
use tokio::net::TcpStream;

use super::WAIT;

/// An `h2` client connection (prior knowledge) to `addr`, driven on its
/// own task.
pub(crate) async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let (send, conn) = tokio::time::timeout(WAIT, h2::client::handshake(tcp))
        .await
        .unwrap()
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A finished HTTP/2 exchange as the client saw it.
pub(crate) struct H2Answer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Option<http::HeaderMap>,
}

/// Send `req` with `body` (and `trailers`), read the whole answer.
pub(crate) async fn h2_exchange(
    send: &h2::client::SendRequest<Bytes>,
    req: http::Request<()>,
    body: &[u8],
    trailers: Option<http::HeaderMap>,
) -> H2Answer {
    let fut = async {
        let mut send = send.clone().ready().await?;
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
        Ok::<_, h2::Error>(H2Answer {
            status,
            headers,
            body,
            trailers,
        })
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("h2 exchange timed out")
        .unwrap()
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
                let _ = h.insert_header(&format!("x-seen-{name}"), v.clone());
            }
        }
        match request.trailers() {
            Some(t) => resp.with_trailers(t.clone()),
            None => resp,
        }
    }
}
