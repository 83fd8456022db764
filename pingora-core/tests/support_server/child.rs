//! The server process: what the test binary runs when it re-executes itself
//! with `PINGORA_TEST_CHILD=1`.
//!
//! It listens on `LISTEN_ADDR` (default `127.0.0.1:0`) and, when set, the
//! Unix socket `LISTEN_UDS`. Each connection carries one request line:
//! `ping`, `slow <ms>` (a tokio sleep first) or `fast <ms>` (a sleep on
//! `pingora_timeout::fast`); the answer is `ok <pid> <peer address>`
//! (`cwd` answers `cwd <working directory>` instead). Once
//! the listener is bound, a background service that depends on it writes
//! the bound addresses and the pid to `READY_FILE`. With
//! `ARM_FAST_TIMER_FIRST` set, it arms a fast timer before `run_forever`,
//! as a program that checks its upstreams at startup would; with
//! `START_THREAD_FIRST`, it starts a thread named `user-worker` before it.
//! `NOFILE_LIMITS=soft,hard` sets its RLIMIT_NOFILE before the server
//! starts; `ANNOUNCE_DELAY_MS` delays the ready file (and so the server's
//! readiness) by that long.

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::{Opt, Server, ShutdownWatch};
use pingora_core::services::ReadyNotifier;
use pingora_core::services::background::{BackgroundService, background_service};
use pingora_core::services::listening::{BoundAddrs, ListeningService};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub(crate) const CHILD_ENV: &str = "PINGORA_TEST_CHILD";

/// The request/answer app.
struct LineApp;

#[async_trait]
impl ServerApp for LineApp {
    async fn process_new(self: &Arc<Self>, stream: Stream, _: &ShutdownWatch) -> Option<Stream> {
        let peer = stream
            .digest()
            .and_then(|d| d.peer_addr.clone())
            .map_or_else(|| "-".to_string(), |a| a.to_string());
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line));
        if !matches!(read.await, Ok(Ok(n)) if n > 0) {
            return None;
        }
        if let Some(ms) = line.trim().strip_prefix("slow ") {
            let ms: u64 = ms.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(ms) = line.trim().strip_prefix("fast ") {
            let ms: u64 = ms.parse().unwrap_or(0);
            pingora_timeout::fast::sleep(Duration::from_millis(ms)).await;
        }
        let answer = if line.trim() == "cwd" {
            let cwd =
                std::env::current_dir().map_or_else(|e| e.to_string(), |d| d.display().to_string());
            format!("cwd {cwd}\n")
        } else {
            format!("ok {} {peer}\n", std::process::id())
        };
        let mut stream = reader.into_inner();
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        None
    }
}

/// Writes the bound addresses to the ready file once the listener is up.
struct Announce {
    bound: BoundAddrs,
    path: String,
}

#[async_trait]
impl BackgroundService for Announce {
    async fn start_with_ready(&self, mut shutdown: ShutdownWatch, ready: ReadyNotifier) {
        // A service slow to get ready, for the tests of readiness.
        if let Some(ms) = std::env::var("ANNOUNCE_DELAY_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        // This service depends on the listener, so the addresses are known.
        let addrs = self
            .bound
            .get()
            .expect("listener ready before its dependents");
        let mut text = format!("pid {}\n", std::process::id());
        for addr in addrs {
            text.push_str(&format!("addr {addr}\n"));
        }
        // Write then rename, so the test never reads half a file.
        let tmp = format!("{}.tmp", self.path);
        std::fs::write(&tmp, text).expect("write ready file");
        std::fs::rename(&tmp, &self.path).expect("publish ready file");
        ready.notify_ready();
        let _ = shutdown.wait_for(|stop| *stop).await;
    }
}

/// The server process's main.
pub(crate) fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    if let Ok(limits) = std::env::var("NOFILE_LIMITS") {
        let (soft, hard) = limits.split_once(',').expect("NOFILE_LIMITS=soft,hard");
        let limit = |n: &str| n.parse().expect("a number of files");
        nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
            limit(soft),
            limit(hard),
        )
        .expect("setrlimit");
    }
    let opt = Opt::parse_args();
    let mut server = match Server::new(Some(opt)) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("server: {e}");
            std::process::exit(1);
        }
    };
    server.bootstrap();
    if std::env::var_os("ARM_FAST_TIMER_FIRST").is_some() {
        // The fast timers' thread then exists before the server forks.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("startup runtime");
        rt.block_on(pingora_timeout::fast::sleep(Duration::from_millis(1)));
    }
    if std::env::var_os("START_THREAD_FIRST").is_some() {
        // Wait until it runs: a new thread takes its name as it starts.
        let (started, running) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("user-worker".into())
            .spawn(move || {
                let _ = started.send(());
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn user-worker");
        running.recv().expect("user-worker started");
    }
    let mut listening = ListeningService::new("lines", Arc::new(LineApp));
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:0".to_string());
    listening.add_tcp(&addr);
    if let Ok(path) = std::env::var("LISTEN_UDS") {
        listening.add_uds(&path, Some(0o600));
    }
    let announce = Announce {
        bound: listening.bound_addrs(),
        path: std::env::var("READY_FILE").expect("READY_FILE set by the test"),
    };
    let listening = server.add_service(listening);
    let announce = server.add_service(background_service("announce", announce));
    server
        .add_dependency(&announce, &listening)
        .expect("no cycle");
    server.run_forever();
}
