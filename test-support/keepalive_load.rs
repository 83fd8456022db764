//! Keep-alive HTTP/1.1 load across a graceful shutdown, shared by the
//! crates' test suites (each includes this file with `#[path]`).
//!
//! Each client sends `GET` after `GET` on one connection, as fast as the
//! answers come, and opens a new connection only when an answer said
//! `Connection: close`, as a correct client does. A request that was
//! written and got no complete answer counts as failed: that is the
//! request a server loses when it closes a connection under a client.
//! A connection that cannot even be opened is not a failure (nothing was
//! sent; the client stops).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The bound on each read or write of the load clients.
const STEP_WAIT: Duration = Duration::from_secs(10);

/// What one or more clients saw.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    /// Requests written.
    pub(crate) sent: usize,
    /// Complete `200` answers.
    pub(crate) answered: usize,
    /// Answers that said `Connection: close`.
    pub(crate) closes: usize,
    /// Requests written that got no complete answer, with what happened.
    pub(crate) failed: Vec<String>,
}

impl LoadReport {
    /// Assert that no request was lost, that the load `went_on` after
    /// the shutdown signal, and that at least `closes` answers announced
    /// the connection's close (each answer after the signal does).
    pub(crate) fn assert_none_lost(&self, went_on: bool, closes: usize) {
        assert!(
            self.failed.is_empty(),
            "{} of {} requests lost: {:?}",
            self.failed.len(),
            self.sent,
            &self.failed[..self.failed.len().min(5)]
        );
        assert!(went_on, "the load stalled after the signal: {self:?}");
        assert_eq!(self.answered, self.sent);
        assert!(self.closes >= closes, "{self:?}");
    }

    fn merge(&mut self, other: Self) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.closes += other.closes;
        self.failed.extend(other.failed);
    }
}

/// Running load: `clients` tasks on `addr`, counting answers in
/// `answered` as they come.
pub(crate) struct Load {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<LoadReport>>,
    answered: Arc<AtomicUsize>,
}

impl Load {
    /// Start `clients` looping clients of `addr`.
    pub(crate) fn start(addr: SocketAddr, clients: usize) -> Self {
        Self::start_paced(addr, clients, Duration::ZERO)
    }

    /// Start `clients` clients of `addr` that leave their connection idle
    /// for `pause` before each request after the first: long enough, and
    /// a server parks idle connections between requests.
    pub(crate) fn start_paced(addr: SocketAddr, clients: usize, pause: Duration) -> Self {
        let (stop, stopped) = watch::channel(false);
        let answered = Arc::new(AtomicUsize::new(0));
        let tasks = (0..clients)
            .map(|_| tokio::spawn(client(addr, stopped.clone(), answered.clone(), pause)))
            .collect();
        Self {
            stop,
            tasks,
            answered,
        }
    }

    /// Complete answers so far, over all clients.
    pub(crate) fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Wait (up to 10 s) until `n` more answers than now came; whether
    /// they did.
    pub(crate) async fn wait_for_answers(&self, n: usize) -> bool {
        let target = self.answered() + n;
        let deadline = tokio::time::Instant::now() + STEP_WAIT;
        while self.answered() < target {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Stop sending new requests, wait for the clients, and report.
    pub(crate) async fn finish(self) -> LoadReport {
        self.stop.send_replace(true);
        let mut report = LoadReport::default();
        for task in self.tasks {
            report.merge(task.await.expect("load client panicked"));
        }
        report
    }
}

async fn client(
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
    answered: Arc<AtomicUsize>,
    pause: Duration,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0;
    while !*stop.borrow() {
        let tcp = match conn.as_mut() {
            Some(tcp) => {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                tcp
            }
            None => match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    tcp.set_nodelay(true).expect("nodelay");
                    buf.clear();
                    conn.insert(tcp)
                }
                // Nothing was sent: not a failure, but the end.
                Err(_) => break,
            },
        };
        n += 1;
        let req = format!("GET /load/{n} HTTP/1.1\r\nHost: load.test\r\n\r\n");
        report.sent += 1;
        let sent = tokio::time::timeout(STEP_WAIT, tcp.write_all(req.as_bytes())).await;
        if !matches!(sent, Ok(Ok(()))) {
            report
                .failed
                .push(format!("request {n}: write failed: {sent:?}"));
            conn = None;
            continue;
        }
        match tokio::time::timeout(STEP_WAIT, read_answer(tcp, &mut buf)).await {
            Ok(Ok(close)) => {
                report.answered += 1;
                answered.fetch_add(1, Ordering::SeqCst);
                if close {
                    report.closes += 1;
                    conn = None;
                }
            }
            Ok(Err(why)) => {
                report.failed.push(format!("request {n}: {why}"));
                conn = None;
            }
            Err(_) => {
                report
                    .failed
                    .push(format!("request {n}: no answer in time"));
                conn = None;
            }
        }
    }
    report
}

/// Read one complete `200` answer with a `Content-Length` body; whether
/// it said `Connection: close`.
async fn read_answer(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tcp.read(&mut chunk).await {
            Ok(0) => return Err(format!("closed after {} bytes of answer", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read error after {} bytes: {e}", buf.len())),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200 ") {
        return Err(format!("not a 200: {head:?}"));
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no content-length: {head:?}"))?;
    let close = head.lines().any(|l| {
        l.strip_prefix("connection:")
            .is_some_and(|v| v.split(',').any(|t| t.trim() == "close"))
    });
    while buf.len() < head_end + length {
        match tcp.read(&mut chunk).await {
            Ok(0) => return Err("closed in the body".to_owned()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read error in the body: {e}")),
        }
    }
    buf.drain(..head_end + length);
    Ok(close)
}
