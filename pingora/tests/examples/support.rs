//! Running examples as processes, and the small blocking clients and
//! origins the example tests talk to. Every wait is bounded.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The bound on every network wait of these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A loopback address with a port free right now.
pub(crate) fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `n` distinct loopback addresses with ports free right now: all are
/// bound at once, so none is handed out twice.
pub(crate) fn free_addrs(n: usize) -> Vec<String> {
    let listeners: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

/// A directory for one test's files, removed at the end.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pingora-ex-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Write `text` to `name` in the directory; its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An example running as a process; killed if a test ends before it.
pub(crate) struct Example {
    child: Child,
    logs: TempDir,
}

impl Example {
    /// Start example `name` with `args` and `env`. Its binary is the one
    /// `cargo test` built beside this test.
    pub(crate) fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
        let binary = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples")
            .join(name);
        assert!(
            binary.exists(),
            "{} is not built: `cargo test -p pingora` builds the examples (`--test examples` alone does not)",
            binary.display()
        );
        let logs = TempDir::new(&format!("{name}-{}", unique()));
        let stdout = std::fs::File::create(logs.path().join("stdout")).unwrap();
        let stderr = std::fs::File::create(logs.path().join("stderr")).unwrap();
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Self { child, logs }
    }

    /// What the example logged so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
    }

    /// Wait until `addr` accepts connections.
    pub(crate) fn wait_listening(&mut self, addr: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited with {status} before listening: {}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "{addr} never listened: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, signal).unwrap();
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send `signal` and expect a clean exit.
    pub(crate) fn stop(&mut self, signal: Signal) {
        self.signal(signal);
        let status = self.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "{status}: {}", self.stderr());
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One HTTP/1.1 response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Answer {
    /// The value of header `name`, when present.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// `GET path` on a new connection to `addr`, with `headers`, read to the
/// close.
pub(crate) fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Answer> {
    send(addr, "GET", path, headers, b"")
}

/// `method path` on a new connection to `addr`, read to the close.
pub(crate) fn request(addr: &str, method: &str, path: &str) -> std::io::Result<Answer> {
    send(addr, method, path, &[], b"")
}

/// `POST path` with `headers` and `body` on a new connection to `addr`,
/// read to the close.
pub(crate) fn post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    send(addr, "POST", path, headers, body)
}

fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(WAIT))?;
    tcp.set_write_timeout(Some(WAIT))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes())?;
    tcp.write_all(body)?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = || std::io::Error::other(format!("not an HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mut answer = Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        answer.body = dechunk(body).ok_or_else(bad)?;
    }
    Ok(answer)
}

/// The data of a chunked body (RFC 9112 §7.1), trailers dropped.
fn dechunk(mut body: &str) -> Option<String> {
    let mut data = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(data);
        }
        data.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Send `bytes` to the echo server at `addr` and read as many back.
pub(crate) fn echo(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(bytes).unwrap();
    let mut back = vec![0; bytes.len()];
    tcp.read_exact(&mut back).unwrap();
    back
}

/// Open a websocket through `addr`, send `payload` in one masked text
/// frame and read the frame the echo origin sends back: the payload it
/// carries, unmasked.
pub(crate) fn websocket_echo(addr: &str, payload: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(
        b"GET /chat HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455 §1.3: the accept value for this sample key.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    let mask = [0x12, 0x34, 0x56, 0x78];
    let len = u8::try_from(payload.len()).unwrap();
    assert!(len < 126, "one short frame only");
    let mut frame = vec![0x81, 0x80 | len];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&frame).unwrap();
    let mut back = vec![0; frame.len()];
    tcp.read_exact(&mut back).unwrap();
    assert_eq!(back[..2], frame[..2], "the frame comes back as sent");
    let mask = [back[2], back[3], back[4], back[5]];
    back[6..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect()
}

/// An origin on a free port answering every request with its name, until
/// dropped (then its port refuses connections).
pub(crate) struct Origin {
    pub(crate) addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    pub(crate) fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let stopped = Arc::clone(&stopped);
                        std::thread::spawn(move || serve_name(tcp, name, &stopped));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answer each request head on `tcp` with `name`, keeping the connection
/// alive, until the client closes or the origin stops.
fn serve_name(mut tcp: TcpStream, name: &str, stopped: &AtomicBool) {
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stopped.load(Ordering::Relaxed) {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                name.len()
            );
            if tcp.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
        match tcp.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    pub(crate) ok: usize,
    pub(crate) failed: Vec<String>,
}

/// A client looping on `GET /`, one connection per request.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<LoadReport>,
}

impl Load {
    pub(crate) fn start(addr: &str) -> Self {
        let addr = addr.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let (stopped, counted) = (Arc::clone(&stop), Arc::clone(&ok));
        let thread = std::thread::spawn(move || {
            let mut report = LoadReport::default();
            while !stopped.load(Ordering::Relaxed) {
                match get(&addr, "/", &[]) {
                    Ok(answer) if answer.status == 200 => {
                        report.ok += 1;
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(answer) => report.failed.push(format!("{answer:?}")),
                    Err(e) => report.failed.push(e.to_string()),
                }
            }
            report
        });
        Self { stop, ok, thread }
    }

    /// Wait (bounded) until `n` more requests succeeded.
    pub(crate) fn wait_for(&self, n: usize) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + WAIT;
        while self.ok.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
