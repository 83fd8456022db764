//! Server process tests: real server processes on loopback, driven by
//! signals and a client.
//!
//! This binary has its own main (`harness = false`): run with
//! `PINGORA_TEST_CHILD=1` it is the server under test (see
//! `support_server::child`); otherwise it runs the tests below, each of
//! which starts such server processes. Ports are ephemeral and every file
//! lives in a directory named after this process's pid.

// Test code: a panic is a test failure with a clear location. Clippy's
// allow-unwrap-in-tests does not see these functions, which are not #[test].
#![allow(clippy::unwrap_used)]

#[path = "server_process/ops.rs"]
mod ops;
mod support_server;

use nix::sys::signal::Signal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support_server::child::CHILD_ENV;
use support_server::client::{LoopReport, answer_pid, request, request_loop};
use support_server::process::{ServerProcess, TempDir, is_dead, read_ready, signal_pid};

const READY: Duration = Duration::from_secs(15);
const EXIT: Duration = Duration::from_secs(20);

fn conf_arg(path: &std::path::Path) -> String {
    path.to_str().unwrap().to_string()
}

fn test_flag_accepts_valid_config() {
    let dir = TempDir::new("t-ok");
    let conf = conf_arg(&dir.conf("threads: 3\nwork_stealing: false\n"));
    let mut server = ServerProcess::start(&dir, "t", &["-t", "-c", &conf], &[]);
    let status = server.wait_exit(EXIT);
    assert!(status.success(), "{status}: {}", server.stderr());
    let out = server.stdout();
    assert!(
        out.contains("is valid") && out.contains("threads: 3"),
        "{out}"
    );
}

fn test_flag_names_unknown_key_and_file() {
    let dir = TempDir::new("t-bad");
    let conf = conf_arg(&dir.conf("threads: 2\nthreadz: 3\n"));
    let mut server = ServerProcess::start(&dir, "t", &["--test", "--conf", &conf], &[]);
    let status = server.wait_exit(EXIT);
    assert_eq!(status.code(), Some(1));
    let err = server.stderr();
    assert!(
        err.contains("threadz") && err.contains("conf.yaml"),
        "{err}"
    );
}

fn test_flag_accepts_the_programs_own_keys() {
    let dir = TempDir::new("t-own");
    let conf = conf_arg(
        &dir.conf("threads: 2\nclient_bind_to_ipv4: [127.0.0.1]\nmy_upstreams: [10.0.0.1:80]\n"),
    );
    let mut server = ServerProcess::start(&dir, "t", &["-t", "-c", &conf], &[]);
    let status = server.wait_exit(EXIT);
    assert!(status.success(), "{status}: {}", server.stderr());
    let err = server.stderr();
    assert!(
        err.contains("my_upstreams") && err.contains("not a server key"),
        "{err}"
    );
}

fn work_dir_is_entered_at_startup() {
    let dir = TempDir::new("workdir");
    let work = dir.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let conf = conf_arg(&dir.conf(&format!("work_dir: {}\n", work.display())));
    let mut server = ServerProcess::start(&dir, "w", &["-c", &conf], &[]);
    let addr = server.wait_ready(READY).tcp();
    let answer = request(addr, "cwd").unwrap();
    let want = format!("cwd {}", work.canonicalize().unwrap().display());
    assert_eq!(answer.trim(), want);
    server.signal(Signal::SIGINT);
    server.wait_exit(EXIT);

    // A work_dir that does not exist stops the server at start-up.
    let conf = conf_arg(&dir.conf(&format!("work_dir: {}\n", dir.path("nope").display())));
    let mut server = ServerProcess::start(&dir, "w2", &["-c", &conf], &[]);
    let status = server.wait_exit(EXIT);
    assert_eq!(status.code(), Some(1));
    assert!(server.stderr().contains("work_dir"), "{}", server.stderr());
}

fn wrong_type_is_named_at_startup() {
    let dir = TempDir::new("type");
    let conf = conf_arg(&dir.conf("grace_period_seconds: soon\n"));
    let mut server = ServerProcess::start(&dir, "s", &["-c", &conf], &[]);
    assert_eq!(server.wait_exit(EXIT).code(), Some(1));
    let err = server.stderr();
    assert!(
        err.contains("grace_period_seconds") && err.contains("conf.yaml"),
        "{err}"
    );
}

fn help_lists_options() {
    let dir = TempDir::new("help");
    let mut server = ServerProcess::start(&dir, "h", &["--help"], &[]);
    assert!(server.wait_exit(EXIT).success());
    let out = server.stdout();
    for flag in ["--conf", "--daemon", "--test", "--upgrade", "--nocapture"] {
        assert!(out.contains(flag), "{flag} not in {out}");
    }
}

fn bind_failure_exits_with_error() {
    let dir = TempDir::new("bind");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let conf = conf_arg(&dir.conf(""));
    let mut server = ServerProcess::start(&dir, "s", &["-c", &conf], &[("LISTEN_ADDR", &addr)]);
    assert_eq!(server.wait_exit(EXIT).code(), Some(1));
    assert!(server.stderr().contains(&addr), "{}", server.stderr());
}

/// Start a request that takes `ms` on the server, in the background.
fn slow_request(
    addr: std::net::SocketAddr,
    ms: u64,
) -> std::thread::JoinHandle<std::io::Result<String>> {
    let handle = std::thread::spawn(move || request(addr, &format!("slow {ms}")));
    // Give the request time to reach the server before the signal.
    std::thread::sleep(Duration::from_millis(300));
    handle
}

fn sigterm_lets_slow_request_finish() {
    let dir = TempDir::new("term");
    let conf = conf_arg(
        &dir.conf("grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 10\nthreads: 2\n"),
    );
    let mut server = ServerProcess::start(&dir, "s", &["-c", &conf], &[]);
    let addr = server.wait_ready(READY).tcp();
    let slow = slow_request(addr, 1500);
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    // New connections are refused once the server stopped accepting, while
    // the slow request is still being served.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match request(addr, "ping") {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => assert!(Instant::now() < deadline, "still accepting after SIGTERM"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = slow.join().unwrap().expect("in-flight request finishes");
    assert_eq!(answer_pid(&answer), server.pid());
    let status = server.wait_exit(EXIT);
    assert!(status.success(), "{status}: {}", server.stderr());
    assert!(signalled.elapsed() >= Duration::from_millis(1000));
}

fn graceful_timeout_bounds_the_drain() {
    let dir = TempDir::new("drain");
    let conf =
        conf_arg(&dir.conf("grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 1\n"));
    let mut server = ServerProcess::start(&dir, "s", &["-c", &conf], &[]);
    let addr = server.wait_ready(READY).tcp();
    let slow = slow_request(addr, 20_000);
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(EXIT).success());
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(slow.join().unwrap().is_err());
}

fn sigint_does_not_wait() {
    let dir = TempDir::new("int");
    let conf =
        conf_arg(&dir.conf("grace_period_seconds: 5\ngraceful_shutdown_timeout_seconds: 10\n"));
    let mut server = ServerProcess::start(&dir, "s", &["-c", &conf], &[]);
    let addr = server.wait_ready(READY).tcp();
    let slow = slow_request(addr, 10_000);
    let signalled = Instant::now();
    server.signal(Signal::SIGINT);
    assert!(server.wait_exit(EXIT).success());
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(1), "SIGINT took {took:?}");
    assert!(slow.join().unwrap().is_err());
}

fn unix_socket_and_digest() {
    use std::io::{BufRead, BufReader, Write};
    let dir = TempDir::new("uds");
    let uds = dir.path("lines.sock");
    let conf = conf_arg(&dir.conf("grace_period_seconds: 0\n"));
    let env = [("LISTEN_UDS", uds.to_str().unwrap())];
    let mut server = ServerProcess::start(&dir, "s", &["-c", &conf], &env);
    let ready = server.wait_ready(READY);
    assert!(
        ready.addrs.iter().any(|a| a.starts_with("unix:")),
        "{ready:?}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&uds).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let mut unix = std::os::unix::net::UnixStream::connect(&uds).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    unix.write_all(b"ping\n").unwrap();
    let mut answer = String::new();
    BufReader::new(unix).read_line(&mut answer).unwrap();
    assert!(
        answer.starts_with(&format!("ok {} unix:", server.pid())),
        "{answer}"
    );

    // The digest's peer address is the client's own address.
    let mut tcp = std::net::TcpStream::connect(ready.tcp()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let local = tcp.local_addr().unwrap();
    tcp.write_all(b"ping\n").unwrap();
    let mut answer = String::new();
    BufReader::new(tcp).read_line(&mut answer).unwrap();
    assert_eq!(answer.trim(), format!("ok {} {local}", server.pid()));
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(EXIT).success());
}

const UPGRADE_ROUNDS: usize = 3;
const CLIENTS: usize = 2;
const MAX_REQUESTS_PER_CLIENT: usize = 20_000;

/// Clients sending requests in a loop until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<std::thread::JoinHandle<LoopReport>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, clients: usize, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || request_loop(addr, stop, MAX_REQUESTS_PER_CLIENT, pause))
            })
            .collect();
        Self { stop, clients }
    }

    fn finish(self) -> LoopReport {
        self.stop.store(true, Ordering::Relaxed);
        LoopReport::merge(self.clients.into_iter().map(|c| c.join().unwrap()))
    }
}

fn upgrade_refuses_no_connection() {
    let dir = TempDir::new("upgrade");
    let conf = conf_arg(&dir.conf(
        "grace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 5\n\
         work_stealing: false\nthreads: 2\nlistener_tasks_per_fd: 2\n",
    ));
    let mut old = ServerProcess::start(&dir, "gen0", &["-c", &conf], &[]);
    let first = old.wait_ready(READY);
    let addr = first.tcp();
    let mut old_pid = first.pid;
    for round in 1..=UPGRADE_ROUNDS {
        let load = Load::start(addr, CLIENTS, Duration::from_micros(500));
        std::thread::sleep(Duration::from_millis(100));
        let gen_name = format!("gen{round}");
        let mut new = ServerProcess::start(&dir, &gen_name, &["-c", &conf, "-u"], &[]);
        // The new process waits on the upgrade socket; the old one retries
        // until it is there.
        old.signal(Signal::SIGQUIT);
        let ready = new.wait_ready(READY);
        assert_eq!(
            ready.tcp(),
            addr,
            "the new process took over the same socket"
        );
        let status = old.wait_exit(EXIT);
        assert!(status.success(), "{status}: {}", old.stderr());
        std::thread::sleep(Duration::from_millis(200));
        let report = load.finish();
        let by_old = report.by_pid.get(&old_pid).copied().unwrap_or(0);
        let by_new = report.by_pid.get(&ready.pid).copied().unwrap_or(0);
        println!(
            "upgrade round {round}: sent {} ok {} failed {} (refused {}, reset {}, other {}); \
             answered by old {by_old}, new {by_new}",
            report.sent,
            report.ok,
            report.failed(),
            report.refused,
            report.reset,
            report.other,
        );
        assert_eq!(report.failed(), 0, "{:?}", report.first_errors);
        assert!(by_old > 0 && by_new > 0, "{report:?}");
        old = new;
        old_pid = ready.pid;
    }
    old.signal(Signal::SIGTERM);
    assert!(old.wait_exit(EXIT).success());
}

fn failed_upgrade_keeps_serving() {
    let dir = TempDir::new("noupgrade");
    let conf = conf_arg(&dir.conf("grace_period_seconds: 0\n"));
    let mut server = ServerProcess::start(&dir, "s", &["-c", &conf], &[]);
    let addr = server.wait_ready(READY).tcp();
    let load = Load::start(addr, 1, Duration::from_millis(5));
    // No new process: the old one gives up after its 10 s send timeout.
    server.signal(Signal::SIGQUIT);
    let deadline = Instant::now() + EXIT;
    while !server.stderr().contains("upgrade failed, still serving") {
        assert!(Instant::now() < deadline, "{}", server.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = load.finish();
    println!(
        "failed upgrade: sent {} failed {}",
        report.sent,
        report.failed()
    );
    assert_eq!(report.failed(), 0, "{:?}", report.first_errors);
    assert_eq!(answer_pid(&request(addr, "ping").unwrap()), server.pid());
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(EXIT).success());
}

fn upgrade_closes_sockets_nobody_claims() {
    let dir = TempDir::new("unclaimed");
    let conf = conf_arg(&dir.conf("grace_period_seconds: 0\n"));
    let mut old = ServerProcess::start(&dir, "old", &["-c", &conf], &[]);
    let old_addr = old.wait_ready(READY).tcp();
    // The new version listens elsewhere. The old socket it receives must not
    // linger, queueing connections that nobody accepts.
    let env = [("LISTEN_ADDR", "127.0.0.2:0")];
    let mut new = ServerProcess::start(&dir, "new", &["-c", &conf, "-u"], &env);
    old.signal(Signal::SIGQUIT);
    let new_addr = new.wait_ready(READY).tcp();
    assert!(old.wait_exit(EXIT).success());
    assert_ne!(new_addr, old_addr);
    let deadline = Instant::now() + EXIT;
    while !new.stderr().contains("not listened on") {
        assert!(Instant::now() < deadline, "{}", new.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    let refused = request(old_addr, "ping").unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(answer_pid(&request(new_addr, "ping").unwrap()), new.pid());
    new.signal(Signal::SIGTERM);
    assert!(new.wait_exit(EXIT).success());
}

/// Kills a daemon that a failing test left running.
pub(crate) struct DaemonGuard(pub(crate) u32);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if !is_dead(self.0) {
            signal_pid(self.0, Signal::SIGKILL);
        }
    }
}

/// Start a daemon with `extra` config; returns what it announced once ready.
fn start_daemon(
    dir: &TempDir,
    name: &str,
    extra: &str,
    upgrade: bool,
) -> (support_server::process::Ready, DaemonGuard) {
    let log = dir.path("error.log");
    let conf = conf_arg(&dir.conf(&format!(
        "error_log: {}\ngrace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 5\n{extra}",
        log.display()
    )));
    let mut args = vec!["-c", conf.as_str(), "-d"];
    if upgrade {
        args.push("-u");
    }
    // A fast timer armed and a thread started before daemonizing: the
    // daemon must still have working fast timers, and the lost thread is
    // named (see `daemon_writes_pid_file_and_error_log`).
    // A service slow to get ready: the launcher must wait for it.
    let env = [
        ("ARM_FAST_TIMER_FIRST", "1"),
        ("START_THREAD_FIRST", "1"),
        ("ANNOUNCE_DELAY_MS", "300"),
    ];
    let mut launcher = ServerProcess::start(dir, name, &args, &env);
    // The launching process exits once the daemon is ready: its listener
    // is bound and every service (the one writing the ready file too) is up.
    assert!(launcher.wait_exit(EXIT).success(), "{}", launcher.stderr());
    let ready = read_ready(&launcher.ready_file).expect("daemon ready when its launcher exits");
    assert_ne!(ready.pid, launcher.pid());
    let guard = DaemonGuard(ready.pid);
    (ready, guard)
}

/// SIGTERM a daemon and wait until it exited and removed its pid file.
fn stop_daemon(pid: u32, pid_file: &std::path::Path) {
    signal_pid(pid, Signal::SIGTERM);
    let deadline = Instant::now() + EXIT;
    while !is_dead(pid) || pid_file.exists() {
        assert!(Instant::now() < deadline, "daemon did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn daemon_writes_pid_file_and_error_log() {
    let dir = TempDir::new("daemon");
    let (ready, _guard) = start_daemon(&dir, "d", "", false);
    let pid_file = dir.path("server.pid");
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim().parse::<u32>().unwrap(), ready.pid);
    let answer = request(ready.tcp(), "ping").unwrap();
    assert_eq!(answer_pid(&answer), ready.pid);
    // The launcher armed a fast timer before forking; the daemon's own
    // fast timers still fire.
    let answer = request(ready.tcp(), "fast 20").unwrap();
    assert_eq!(answer_pid(&answer), ready.pid);
    let logged = std::fs::read_to_string(dir.path("error.log")).unwrap();
    assert!(logged.contains("server starting"), "{logged}");
    // Before forking, the launcher named the thread the daemon loses, and
    // not the fast timers' thread, which the daemon starts again.
    let launched = std::fs::read_to_string(dir.path("d.stderr")).unwrap();
    assert!(
        launched.contains("(user-worker)") && launched.contains("do not survive the fork"),
        "{launched}"
    );
    assert!(
        !launched.contains(pingora_timeout::fast::TIMER_THREAD_NAME),
        "{launched}"
    );
    stop_daemon(ready.pid, &pid_file);
}

fn daemon_switches_user_and_group() {
    let (Ok(Some(user)), Ok(Some(group))) = (
        nix::unistd::User::from_name("nobody"),
        nix::unistd::Group::from_name("nogroup"),
    ) else {
        println!("skipped: no user nobody or group nogroup");
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: switching user needs root");
        return;
    }
    let dir = TempDir::new("daemon-user");
    // The daemon writes its ready file and removes its pid file as nobody.
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (ready, _guard) = start_daemon(&dir, "d", "user: nobody\ngroup: nogroup\n", false);
    let status = std::fs::read_to_string(format!("/proc/{}/status", ready.pid)).unwrap();
    let ids = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(
        ids("Uid:").iter().all(|id| *id == user.uid.to_string()),
        "{status}"
    );
    assert!(
        ids("Gid:").iter().all(|id| *id == group.gid.to_string()),
        "{status}"
    );
    assert_eq!(
        answer_pid(&request(ready.tcp(), "ping").unwrap()),
        ready.pid
    );
    stop_daemon(ready.pid, &dir.path("server.pid"));
}

/// As root, the config that makes daemons run as nobody (when that user
/// exists), with `dir` opened up for them; otherwise no user switch.
fn unprivileged_user(dir: &TempDir) -> &'static str {
    let exists = nix::unistd::User::from_name("nobody").is_ok_and(|u| u.is_some())
        && nix::unistd::Group::from_name("nogroup").is_ok_and(|g| g.is_some());
    if !exists || !nix::unistd::geteuid().is_root() {
        return "";
    }
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o777);
    std::fs::set_permissions(&dir.0, mode).unwrap();
    "user: nobody\ngroup: nogroup\n"
}

fn daemon_upgrade_hands_over_the_pid_file() {
    let dir = TempDir::new("daemon-upgrade");
    let pid_file = dir.path("server.pid");
    // As root this also covers the old daemon, running as nobody, sending
    // its sockets to a new process that is still root.
    let user = unprivileged_user(&dir);
    println!("daemon upgrade with {user:?}");
    let (old, _old_guard) = start_daemon(&dir, "old", user, false);
    // The new daemon receives the sockets in the foreground, so its launcher
    // only exits once the old one has sent them.
    let new = std::thread::scope(|s| {
        let new = s.spawn(|| start_daemon(&dir, "new", user, true));
        std::thread::sleep(Duration::from_millis(200));
        signal_pid(old.pid, Signal::SIGQUIT);
        new.join().unwrap()
    });
    let (new, _new_guard) = new;
    assert_eq!(new.tcp(), old.tcp());
    let deadline = Instant::now() + EXIT;
    while !is_dead(old.pid) {
        assert!(Instant::now() < deadline, "old daemon did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The old daemon left the pid file alone: it names the new one.
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim().parse::<u32>().unwrap(), new.pid);
    assert_eq!(answer_pid(&request(new.tcp(), "ping").unwrap()), new.pid);
    stop_daemon(new.pid, &pid_file);
}

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    (
        "test_flag_accepts_valid_config",
        test_flag_accepts_valid_config,
    ),
    (
        "test_flag_names_unknown_key_and_file",
        test_flag_names_unknown_key_and_file,
    ),
    (
        "test_flag_accepts_the_programs_own_keys",
        test_flag_accepts_the_programs_own_keys,
    ),
    (
        "work_dir_is_entered_at_startup",
        work_dir_is_entered_at_startup,
    ),
    (
        "wrong_type_is_named_at_startup",
        wrong_type_is_named_at_startup,
    ),
    ("help_lists_options", help_lists_options),
    (
        "bind_failure_exits_with_error",
        bind_failure_exits_with_error,
    ),
    (
        "sigterm_lets_slow_request_finish",
        sigterm_lets_slow_request_finish,
    ),
    (
        "graceful_timeout_bounds_the_drain",
        graceful_timeout_bounds_the_drain,
    ),
    ("sigint_does_not_wait", sigint_does_not_wait),
    ("unix_socket_and_digest", unix_socket_and_digest),
    (
        "upgrade_refuses_no_connection",
        upgrade_refuses_no_connection,
    ),
    ("failed_upgrade_keeps_serving", failed_upgrade_keeps_serving),
    (
        "upgrade_closes_sockets_nobody_claims",
        upgrade_closes_sockets_nobody_claims,
    ),
    (
        "daemon_writes_pid_file_and_error_log",
        daemon_writes_pid_file_and_error_log,
    ),
    (
        "daemon_switches_user_and_group",
        daemon_switches_user_and_group,
    ),
    (
        "daemon_upgrade_hands_over_the_pid_file",
        daemon_upgrade_hands_over_the_pid_file,
    ),
    (
        "daemon_bind_failure_fails_launcher",
        ops::daemon_bind_failure_fails_launcher,
    ),
    (
        "second_daemon_refused_by_pid_file_lock",
        ops::second_daemon_refused_by_pid_file_lock,
    ),
    (
        "systemd_notified_when_ready",
        ops::systemd_notified_when_ready,
    ),
    (
        "error_log_reopened_on_sigusr1",
        ops::error_log_reopened_on_sigusr1,
    ),
    ("fd_exhaustion_backs_off", ops::fd_exhaustion_backs_off),
    (
        "daemon_death_before_ready_fails_launcher",
        ops::daemon_death_before_ready_fails_launcher,
    ),
    (
        "daemon_keeps_journal_stderr",
        ops::daemon_keeps_journal_stderr,
    ),
];

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        support_server::child::main();
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let selected: Vec<&Test> = TESTS
        .iter()
        .filter(|(name, _)| filter.is_none_or(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in selected.iter().copied() {
        let started = Instant::now();
        let passed = std::panic::catch_unwind(test).is_ok();
        let verdict = if passed { "ok" } else { "FAILED" };
        println!(
            "test {name} ... {verdict} ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
        if !passed {
            failed.push(*name);
        }
    }
    let passed = selected.len() - failed.len();
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed; 0 failed\n");
    } else {
        println!(
            "\nfailures: {failed:?}\ntest result: FAILED. {passed} passed; {} failed\n",
            failed.len()
        );
        std::process::exit(101);
    }
}
