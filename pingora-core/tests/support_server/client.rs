//! A client of the test server's line protocol.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Send one request on a new connection; the answer line, or the error.
pub(crate) fn request(addr: SocketAddr, line: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "closed without answer",
        ));
    }
    Ok(answer)
}

/// The pid in an answer `ok <pid> <peer>`.
pub(crate) fn answer_pid(answer: &str) -> u32 {
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What a client loop saw.
#[derive(Debug, Default)]
pub(crate) struct LoopReport {
    pub(crate) sent: usize,
    pub(crate) ok: usize,
    pub(crate) refused: usize,
    pub(crate) reset: usize,
    pub(crate) other: usize,
    /// Answers per server pid.
    pub(crate) by_pid: std::collections::BTreeMap<u32, usize>,
    pub(crate) first_errors: Vec<String>,
}

impl LoopReport {
    pub(crate) fn failed(&self) -> usize {
        self.refused + self.reset + self.other
    }

    /// Add up the reports of several clients.
    pub(crate) fn merge(reports: impl IntoIterator<Item = Self>) -> Self {
        let mut total = Self::default();
        for r in reports {
            total.sent += r.sent;
            total.ok += r.ok;
            total.refused += r.refused;
            total.reset += r.reset;
            total.other += r.other;
            for (pid, n) in r.by_pid {
                *total.by_pid.entry(pid).or_default() += n;
            }
            total.first_errors.extend(r.first_errors);
        }
        total
    }
}

/// Send requests one after the other, each on a new connection, until `stop`
/// is set or `max` requests were sent. The `pause` between requests keeps
/// the rate (and the sockets left in TIME_WAIT) bounded.
pub(crate) fn request_loop(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    max: usize,
    pause: Duration,
) -> LoopReport {
    let mut report = LoopReport::default();
    while !stop.load(Ordering::Relaxed) && report.sent < max {
        std::thread::sleep(pause);
        report.sent += 1;
        match request(addr, "ping") {
            Ok(answer) => {
                report.ok += 1;
                *report.by_pid.entry(answer_pid(&answer)).or_default() += 1;
            }
            Err(e) => {
                match e.kind() {
                    ErrorKind::ConnectionRefused => report.refused += 1,
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => report.reset += 1,
                    _ => report.other += 1,
                }
                if report.first_errors.len() < 5 {
                    report.first_errors.push(e.to_string());
                }
            }
        }
    }
    report
}
