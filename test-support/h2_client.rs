//! An `h2` client for integration tests, shared by the crates' test
//! suites (each includes this file with `#[path]`): connect, run one
//! exchange with a body and trailers, every wait bounded by [`H2_WAIT`].

use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// The bound on every wait here: connecting, the handshake, a whole
/// exchange.
pub(crate) const H2_WAIT: Duration = Duration::from_secs(10);

/// An `h2` client connection (prior knowledge) to `addr`, driven on its
/// own task.
pub(crate) async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::time::timeout(H2_WAIT, TcpStream::connect(addr))
        .await
        .expect("h2 connect timed out")
        .expect("h2 connect");
    tcp.set_nodelay(true).expect("nodelay");
    h2_client_on(tcp).await
}

/// An `h2` client on an established byte stream, driven on its own task.
pub(crate) async fn h2_client_on<T>(io: T) -> h2::client::SendRequest<Bytes>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = tokio::time::timeout(H2_WAIT, h2::client::handshake(io))
        .await
        .expect("h2 handshake timed out")
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A finished exchange as the client saw it.
#[derive(Debug)]
pub(crate) struct Answer {
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
) -> Answer {
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
        Ok::<_, h2::Error>(Answer {
            status,
            headers,
            body,
            trailers,
        })
    };
    tokio::time::timeout(H2_WAIT, fut)
        .await
        .expect("h2 exchange timed out")
        .expect("h2 exchange")
}

/// Send `body` as DATA frames, waiting for flow-control capacity.
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
