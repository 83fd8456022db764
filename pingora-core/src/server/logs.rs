//! Where a daemon's stdout and stderr go, and reopening the error log for
//! log rotation.
//!
//! A daemon has no terminal. Its output goes to, in this order:
//!
//! 1. the `error_log` file, when the config names one; SIGUSR1 reopens it,
//!    so that a rotated file is let go of;
//! 2. journald, when systemd connected stderr to the journal
//!    (`JOURNAL_STREAM` names the stream stderr is): stderr is kept;
//! 3. syslog, when `/dev/log` accepts datagrams: a thread of the daemon
//!    sends each line with facility `daemon`, its severity guessed from
//!    the level word of the line (`ERROR`, `WARN`, ...);
//! 4. otherwise nowhere (`/dev/null`).

use pingora_error::{ErrorType, OrErr, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The socket syslog daemons (and journald) read on.
const SYSLOG_SOCKET: &str = "/dev/log";
/// Facility `daemon` (RFC 5424 §6.2.1: 3), shifted as the priority wants.
const FACILITY_DAEMON: u8 = 3 << 3;
/// The longest line sent as one syslog message; longer ones are cut.
const MAX_SYSLOG_LINE: usize = 4096;

/// Where a daemon's output goes: decided in the foreground, before the
/// fork, so that an error log that cannot be opened is reported there.
#[derive(Debug)]
pub(crate) enum DaemonOutput {
    /// The error log file, opened.
    File(File),
    /// Stderr is systemd's journal stream: keep it.
    Journal,
    /// Send lines to syslog through this socket.
    Syslog(UnixDatagram),
    /// Discard.
    Null,
}

impl DaemonOutput {
    /// Choose the output for a daemon with error log `error_log`.
    ///
    /// # Errors
    ///
    /// When the error log cannot be opened.
    pub(crate) fn choose(error_log: Option<&str>) -> Result<Self> {
        if let Some(path) = error_log {
            return open_error_log(path).map(Self::File);
        }
        if stderr_is_journal() {
            return Ok(Self::Journal);
        }
        Ok(syslog_socket(Path::new(SYSLOG_SOCKET)).map_or(Self::Null, Self::Syslog))
    }

    /// Point stdin at `/dev/null` and stdout and stderr where this says.
    /// Call in the daemon, after the fork: the syslog variant starts the
    /// thread that forwards lines.
    ///
    /// # Errors
    ///
    /// When `/dev/null`, the pipe or the thread cannot be had.
    pub(crate) fn install(self) -> Result<()> {
        let null = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .or_err(ErrorType::FileOpenError, "cannot open /dev/null")?;
        redirect(&null, &[0])?;
        match self {
            Self::File(file) => redirect(&file, &[1, 2]),
            Self::Journal => redirect(&null, &[1]),
            Self::Null => redirect(&null, &[1, 2]),
            Self::Syslog(socket) => {
                let (read, write) = std::io::pipe()
                    .or_err(ErrorType::InternalError, "cannot create the syslog pipe")?;
                redirect(&write, &[1, 2])?;
                let tag = program_name();
                std::thread::Builder::new()
                    .name("syslog".into())
                    .spawn(move || forward_to_syslog(BufReader::new(read), &socket, &tag))
                    .or_err(ErrorType::InternalError, "cannot start the syslog thread")?;
                Ok(())
            }
        }
    }
}

/// Open the error log for appending, creating it if needed.
fn open_error_log(path: &str) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .or_err_with(ErrorType::FileOpenError, || {
            format!("cannot open error_log {path}")
        })
}

/// SIGUSR1: open the error log at `path` again and point stdout and stderr
/// at the new file. A log rotator that renamed the old file then sees it
/// let go of, and new lines land in a new file at `path`.
///
/// # Errors
///
/// When the file cannot be opened; the old one stays in use.
pub(crate) fn reopen_error_log(path: &str) -> Result<()> {
    let file = open_error_log(path)?;
    redirect(&file, &[1, 2])
}

/// Make each of `fds` a copy of `file`'s descriptor. `dup2` replaces a
/// descriptor atomically, so a concurrent write lands in the old file or
/// the new one, never nowhere.
fn redirect(file: &impl AsRawFd, fds: &[i32]) -> Result<()> {
    for &fd in fds {
        nix::unistd::dup2(file.as_raw_fd(), fd)
            .or_err(ErrorType::InternalError, "cannot redirect stdio")?;
    }
    Ok(())
}

/// Whether stderr is the journal stream systemd gave us: `JOURNAL_STREAM`
/// holds `device:inode` of that stream, which must match stderr's (a
/// child process may have inherited the variable with another stderr).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(2) else {
        return false;
    };
    dev == stat.st_dev.to_string() && ino == stat.st_ino.to_string()
}

/// A datagram socket connected to the syslog socket at `path`, or `None`
/// when nothing listens there.
fn syslog_socket(path: &Path) -> Option<UnixDatagram> {
    let socket = UnixDatagram::unbound().ok()?;
    socket.connect(path).ok()?;
    // Never block the daemon on a stuck syslog daemon: a full socket drops
    // the line instead.
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

/// The name syslog lines are tagged with: the program's file name.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pingora".to_string())
}

/// Send each line read from `lines` to syslog until the pipe closes.
fn forward_to_syslog(mut lines: impl BufRead, socket: &UnixDatagram, tag: &str) {
    let mut line = Vec::new();
    let pid = std::process::id();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        // A lost line is better than a daemon blocked on its log.
        let _ = socket.send(syslog_message(tag, pid, text).as_bytes());
    }
}

/// One RFC 3164 message: `<PRI>TAG[PID]: MSG`. The timestamp is left out;
/// the syslog daemon stamps the time of receipt (RFC 3164 §4.3.2).
fn syslog_message(tag: &str, pid: u32, line: &str) -> String {
    let priority = FACILITY_DAEMON | severity(line);
    let mut end = line.len().min(MAX_SYSLOG_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("<{priority}>{tag}[{pid}]: {}", &line[..end])
}

/// The syslog severity of a log line, from the first level word in its
/// first few words: the common loggers' formats put it there.
fn severity(line: &str) -> u8 {
    for word in line
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .take(6)
    {
        match word {
            "ERROR" | "error" => return 3,
            "WARN" | "WARNING" | "warn" | "warning" => return 4,
            "INFO" | "info" => return 6,
            "DEBUG" | "TRACE" | "debug" | "trace" => return 7,
            _ => {}
        }
    }
    // Notice: plain output, such as a panic message.
    5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_facility_and_severity() {
        let line = "[2026-01-01T00:00:00Z ERROR pingora_core::server] service x failed";
        assert_eq!(
            syslog_message("srv", 7, line),
            format!("<27>srv[7]: {line}")
        );
        assert!(syslog_message("s", 1, "[t WARN m] x").starts_with("<28>"));
        assert!(syslog_message("s", 1, "[t INFO m] x").starts_with("<30>"));
        assert!(syslog_message("s", 1, "thread 'x' panicked").starts_with("<29>"));
        let long = "é".repeat(MAX_SYSLOG_LINE);
        assert!(syslog_message("s", 1, &long).len() < MAX_SYSLOG_LINE + 20);
    }

    #[test]
    fn lines_reach_the_syslog_socket() {
        let dir = std::env::temp_dir().join(format!("pingora-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let client = syslog_socket(&path).unwrap();
        let input = b"[x INFO m] one\n\n[x ERROR m] two\n";
        forward_to_syslog(&input[..], &client, "t");
        let mut buf = [0; 512];
        let n = server.recv(&mut buf).unwrap();
        let pid = std::process::id();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("<30>t[{pid}]: [x INFO m] one")
        );
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("<27>t[{pid}]: [x ERROR m] two")
        );
        assert!(syslog_socket(&dir.join("none.sock")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
