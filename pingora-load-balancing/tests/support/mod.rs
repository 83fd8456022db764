//! Loopback origins for the integration tests: servers on `127.0.0.1:0`
//! that can be stopped and restarted on the same port.

// Each test binary uses a part; `pub` items are the module's interface.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(5);

/// How an origin answers each connection.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// `HTTP/1.1 <status>` with body `body`, then close.
    Http(u16, &'static str),
    /// Accept and never answer.
    Silent,
}

/// A loopback origin server.
pub struct Origin {
    pub addr: SocketAddr,
    answer: Answer,
    task: Option<JoinHandle<()>>,
    /// Connections accepted so far, over all restarts.
    pub accepted: Arc<AtomicUsize>,
}

impl Origin {
    pub async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut origin = Self {
            addr,
            answer,
            task: None,
            accepted: Arc::new(AtomicUsize::new(0)),
        };
        origin.serve(listener);
        origin
    }

    fn serve(&mut self, listener: TcpListener) {
        let (answer, accepted) = (self.answer, Arc::clone(&self.accepted));
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(respond(stream, answer));
            }
        }));
    }

    /// Stop listening: new connections are refused.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listen again on the same port.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub fn backend(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn respond(mut stream: TcpStream, answer: Answer) {
    let Answer::Http(status, body) = answer else {
        // Hold the connection open without answering.
        tokio::time::sleep(WAIT).await;
        return;
    };
    // Read the request head (health checks send no body).
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            // A TCP probe connects and closes without a request.
            _ => return,
        }
    }
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// An address on which nothing listens: connections are refused.
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
