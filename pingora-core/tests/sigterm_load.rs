//! SIGTERM to a real server process under keep-alive load: from the
//! signal on, every answer says `Connection: close` while the listener
//! still accepts for the grace period, and no request sent is lost.
//!
//! The test binary runs itself again as the server: the `child_server`
//! test is the server's main when [`CHILD`] is set, and does nothing
//! otherwise.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../test-support/keepalive_load.rs"]
mod load;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pingora_core::apps::http_app::{HelloApp, HttpServer};
use pingora_core::protocols::http::v1::H1Config;
use pingora_core::server::{Opt, Server, ServerConf, ShutdownWatch};
use pingora_core::services::ReadyNotifier;
use pingora_core::services::background::{BackgroundService, background_service};
use pingora_core::services::listening::{BoundAddrs, ListeningService};

/// Set (to the ready file's path) in the server process.
const CHILD: &str = "PINGORA_SIGTERM_LOAD_CHILD";
/// The server's grace period: long enough for the load to go on through
/// it on new connections.
const GRACE_SECONDS: u64 = 3;

/// Writes the bound address to the ready file once the listener is up.
struct Announce {
    bound: BoundAddrs,
    path: PathBuf,
}

#[async_trait]
impl BackgroundService for Announce {
    async fn start_with_ready(&self, mut shutdown: ShutdownWatch, ready: ReadyNotifier) {
        let addr = self.bound.get().expect("listener ready first")[0].clone();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string()).expect("write ready file");
        std::fs::rename(&tmp, &self.path).expect("publish ready file");
        ready.notify_ready();
        let _ = shutdown.wait_for(|stop| *stop).await;
    }
}

/// The server process: the plain HTTP app on 127.0.0.1:0.
#[test]
fn child_server() {
    let Some(ready_file) = std::env::var_os(CHILD) else {
        return;
    };
    let mut conf = ServerConf::default();
    conf.threads = 2;
    conf.grace_period_seconds = GRACE_SECONDS;
    conf.graceful_shutdown_timeout_seconds = 5;
    let mut server = Server::new_with_conf(Opt::default(), conf);
    server.bootstrap();
    // Connections idle for 2 ms are parked: the paced clients' are, at
    // every pause, so the signal finds some of them parked.
    let mut h1 = H1Config::default();
    h1.park_idle_after = Some(Duration::from_millis(2));
    let app = HttpServer::new(HelloApp).with_config(h1);
    let mut listening = ListeningService::new("hello", Arc::new(app));
    listening.add_tcp("127.0.0.1:0");
    let announce = Announce {
        bound: listening.bound_addrs(),
        path: PathBuf::from(ready_file),
    };
    let listening = server.add_service(listening);
    let announce = server.add_service(background_service("announce", announce));
    server.add_dependency(&announce, &listening).unwrap();
    server.run_forever();
}

/// The server process, killed if the test fails before it exits.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(ready_file: &Path) -> ServerProcess {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_server", "--nocapture", "--test-threads=1"])
        .env(CHILD, ready_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    ServerProcess(child)
}

fn wait_ready(ready_file: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(ready_file) {
            return text.trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "the server never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Eight clients send requests back to back on keep-alive connections,
/// and eight more pause between requests (so that their connections are
/// parked idle each time); the server gets SIGTERM; the clients go on through the grace period
/// (on new connections, as each answer tells them) and stop before it
/// ends. Every request sent is answered, every answer after the signal
/// announces the close, and the server then exits cleanly.
#[test]
fn no_request_is_lost_across_sigterm_under_keepalive_load() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pingora-sigterm-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ready_file = dir.join("ready");
    let mut server = start_server(&ready_file);
    let addr = wait_ready(&ready_file);
    let pid = Pid::from_raw(i32::try_from(server.0.id()).unwrap());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (report, went_on) = rt.block_on(async {
        let load = load::Load::start(addr, 8);
        let paced = load::Load::start_paced(addr, 8, Duration::from_millis(10));
        assert!(load.wait_for_answers(400).await, "no load");
        assert!(paced.wait_for_answers(40).await, "no paced load");
        let signalled = Instant::now();
        kill(pid, Signal::SIGTERM).unwrap();
        let went_on = load.wait_for_answers(400).await && paced.wait_for_answers(40).await;
        let mut report = load.finish().await;
        let paced = paced.finish().await;
        // Every paced client's connection was parked at each pause: none
        // of their requests may be lost either.
        assert!(
            paced.failed.is_empty(),
            "paced clients lost requests: {paced:?}"
        );
        report.sent += paced.sent;
        report.answered += paced.answered;
        report.closes += paced.closes;
        assert!(
            signalled.elapsed() < Duration::from_secs(GRACE_SECONDS),
            "the load outlived the grace period; the test cannot tell"
        );
        (report, went_on)
    });
    // From the signal on, each answer closes its connection.
    report.assert_none_lost(went_on, 400);

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
