//! A loopback origin that counts its connections and answers pings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::L4Stream;
use pingora_core::protocols::tls::TlsDigest;
use pingora_core::tls::TlsAcceptor;
use pingora_core::{BError, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Every network wait in these tests is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// How the origin treats each connection after its first answer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Keep answering pings until the client closes.
    KeepAlive,
    /// Close the connection.
    Close,
}

/// A running origin.
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// What the server side of each TLS handshake saw.
    pub(crate) handshakes: mpsc::UnboundedReceiver<Result<Option<Arc<TlsDigest>>, BError>>,
}

impl Origin {
    /// Start an origin on 127.0.0.1, over TLS when an acceptor is given.
    pub(crate) async fn start(tls: Option<TlsAcceptor>, after: After) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, handshakes) = mpsc::unbounded_channel();
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let stream: Stream = Box::new(L4Stream::from_tcp(tcp));
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    let stream = match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => {
                                let tls = s.digest().and_then(|d| d.tls.clone());
                                let _ = tx.send(Ok(tls));
                                s
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        },
                        None => stream,
                    };
                    serve(stream, n, after).await;
                });
            }
        });
        Self {
            addr,
            accepted,
            handshakes,
        }
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The server's view of the next TLS handshake.
    pub(crate) async fn next_handshake(&mut self) -> Result<Option<Arc<TlsDigest>>, BError> {
        tokio::time::timeout(WAIT, self.handshakes.recv())
            .await
            .expect("handshake reported in time")
            .expect("origin running")
    }
}

/// Answer each `ping\n` with `pong <connection number>\n`.
async fn serve(stream: Stream, n: usize, after: After) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match tokio::time::timeout(WAIT, reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        let stream = reader.get_mut();
        if stream
            .write_all(format!("pong {n}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
        if after == After::Close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Send a ping and return the origin's connection number from the answer.
pub(crate) async fn ping(stream: &mut Stream) -> usize {
    stream.write_all(b"ping\n").await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "origin closed before answering");
        answer.push(byte[0]);
    }
    let text = String::from_utf8(answer).unwrap();
    text.trim().trim_start_matches("pong ").parse().unwrap()
}
