//! Operations: the `-d` launcher's report, the pid file lock, systemd
//! notifications and the error log's reopening.

use super::{EXIT, READY, conf_arg, start_daemon, stop_daemon};
use crate::support_server::client::{answer_pid, request};
use crate::support_server::process::{ServerProcess, TempDir, read_ready};
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// `-d` on a port that is taken: the launcher exits 1 with the bind error,
/// not 0 before the daemon found out.
pub(crate) fn daemon_bind_failure_fails_launcher() {
    let dir = TempDir::new("daemon-bind");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let conf = conf_arg(&dir.conf(&format!("error_log: {}\n", dir.path("error.log").display())));
    let env = [("LISTEN_ADDR", addr.as_str())];
    let mut launcher = ServerProcess::start(&dir, "d", &["-c", &conf, "-d"], &env);
    let status = launcher.wait_exit(EXIT);
    let err = launcher.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("daemon failed to start") && err.contains(&addr) && err.contains("bind"),
        "{err}"
    );
    // The daemon is gone and took its pid file with it.
    assert!(read_ready(&launcher.ready_file).is_none());
    let deadline = Instant::now() + EXIT;
    while dir.path("server.pid").exists() {
        assert!(Instant::now() < deadline, "pid file left behind");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A second daemon on the same pid file fails at once, naming the first.
pub(crate) fn second_daemon_refused_by_pid_file_lock() {
    let dir = TempDir::new("daemon-twice");
    let (first, _guard) = start_daemon(&dir, "first", "", false);
    let conf = conf_arg(&dir.path("conf.yaml"));
    let mut second = ServerProcess::start(&dir, "second", &["-c", &conf, "-d"], &[]);
    assert_eq!(second.wait_exit(EXIT).code(), Some(1));
    let err = second.stderr();
    assert!(
        err.contains("locked by another server") && err.contains(&first.pid.to_string()),
        "{err}"
    );
    // The first one still serves and still owns the pid file.
    assert_eq!(
        answer_pid(&request(first.tcp(), "ping").unwrap()),
        first.pid
    );
    let written = std::fs::read_to_string(dir.path("server.pid")).unwrap();
    assert_eq!(written.trim(), first.pid.to_string());
    stop_daemon(first.pid, &dir.path("server.pid"));
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0; 512];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Run a server with `NOTIFY_SOCKET=name` and check what `socket` gets.
fn notify_case(dir: &TempDir, name: &str, socket: &UnixDatagram) {
    socket.set_read_timeout(Some(READY)).unwrap();
    let conf = conf_arg(&dir.conf("grace_period_seconds: 0\n"));
    // One service is slow to get ready: READY=1 must wait for it too.
    let env = [("NOTIFY_SOCKET", name), ("ANNOUNCE_DELAY_MS", "300")];
    let mut server = ServerProcess::start(dir, "s", &["-c", &conf], &env);
    let ready = receive(socket);
    // READY=1 comes once every service is up: the ready file is written
    // and the listener accepts at once.
    let announced = read_ready(&server.ready_file).expect("ready file before READY=1");
    assert_eq!(
        answer_pid(&request(announced.tcp(), "ping").unwrap()),
        server.pid()
    );
    assert_eq!(ready, format!("READY=1\nMAINPID={}", server.pid()));
    server.signal(Signal::SIGTERM);
    assert_eq!(receive(socket), "STOPPING=1");
    assert!(server.wait_exit(EXIT).success());
}

/// systemd's `Type=notify`: READY=1 with MAINPID once listening, STOPPING=1
/// on SIGTERM, over a socket path and over an abstract name.
pub(crate) fn systemd_notified_when_ready() {
    let dir = TempDir::new("notify");
    let path = dir.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    notify_case(&dir, path.to_str().unwrap(), &socket);

    use std::os::linux::net::SocketAddrExt;
    let name = format!("pingora-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    notify_case(&dir, &format!("@{name}"), &socket);
}

/// SIGUSR1 reopens the error log: after a rotation renamed it, new lines
/// land in a new file at the configured path, none in the old one.
pub(crate) fn error_log_reopened_on_sigusr1() {
    let dir = TempDir::new("reopen");
    let (ready, _guard) = start_daemon(&dir, "d", "", false);
    let log = dir.path("error.log");
    let rotated = dir.path("error.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    crate::support_server::process::signal_pid(ready.pid, Signal::SIGUSR1);
    let deadline = Instant::now() + EXIT;
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("reopened error log")) {
        assert!(Instant::now() < deadline, "no new error log");
        std::thread::sleep(Duration::from_millis(10));
    }
    stop_daemon(ready.pid, &dir.path("server.pid"));
    let new = std::fs::read_to_string(&log).unwrap();
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(new.contains("SIGTERM: graceful shutdown"), "{new}");
    assert!(old.contains("server starting"), "{old}");
    assert!(!old.contains("SIGTERM"), "{old}");
}

/// Open descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// CPU time (user + system) process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which may hold spaces: utime and
    // stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap();
    Duration::from_millis(ticks * 1000 / u64::try_from(per_second).unwrap())
}

/// Out of descriptors: the server keeps serving the connections it has,
/// does not spin on the listener, logs the exhaustion about once a second,
/// and accepts again once descriptors are free.
pub(crate) fn fd_exhaustion_backs_off() {
    use std::io::{BufRead, BufReader, Write};
    const LIMIT: usize = 96;
    let dir = TempDir::new("nofile");
    let conf = conf_arg(&dir.conf("grace_period_seconds: 0\nthreads: 1\n"));
    // The soft limit is raised to the hard one at start-up.
    let limits = format!("{},{LIMIT}", LIMIT / 2);
    let env = [("NOFILE_LIMITS", limits.as_str())];
    let mut server = ServerProcess::start(&dir, "s", &["-c", &conf], &env);
    let addr = server.wait_ready(READY).tcp();
    let pid = server.pid();
    let raised = format!("raised from {} to the hard limit {LIMIT}", LIMIT / 2);
    assert!(server.stderr().contains(&raised), "{}", server.stderr());

    // An existing connection, accepted while descriptors are free.
    let mut existing = std::net::TcpStream::connect(addr).unwrap();
    existing
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let deadline = Instant::now() + EXIT;
    let base = open_fds(pid);
    // Fill the table, and queue a few more that cannot be accepted.
    let mut held = Vec::new();
    for _ in 0..(LIMIT - base + 8) {
        held.push(std::net::TcpStream::connect(addr).unwrap());
    }
    while !server.stderr().contains("pausing accepts") {
        assert!(Instant::now() < deadline, "{}", server.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    let full = open_fds(pid);
    assert!(full >= LIMIT - 2, "only {full} descriptors open");

    // Measure over a second of exhaustion: a spinning accept loop would
    // burn the whole second.
    let before = cpu_time(pid);
    let logged_before = server.stderr().matches("pausing accepts").count();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time(pid) - before;
    let logged = server.stderr().matches("pausing accepts").count() - logged_before;
    println!("out of descriptors for 1 s: {used:?} of CPU, {logged} log line(s)");
    assert!(used < Duration::from_millis(150), "{used:?}");
    assert!(logged <= 2, "{}", server.stderr());

    // The connection accepted before is still served.
    existing.write_all(b"ping\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&existing).read_line(&mut answer).unwrap();
    assert_eq!(answer_pid(&answer), pid);

    // Free the descriptors: new connections are accepted again, after at
    // most one pause.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match request(addr, "ping") {
            Ok(answer) => {
                assert_eq!(answer_pid(&answer), pid);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "not accepting again: {e}"),
        }
    }
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(EXIT).success());
}

/// A daemon that dies before it is ready: its launcher says so and exits 1
/// rather than waiting forever or reporting success.
pub(crate) fn daemon_death_before_ready_fails_launcher() {
    let dir = TempDir::new("daemon-dies");
    let conf = conf_arg(&dir.conf(&format!("error_log: {}\n", dir.path("error.log").display())));
    let env = [("ANNOUNCE_DELAY_MS", "60000")];
    let mut launcher = ServerProcess::start(&dir, "d", &["-c", &conf, "-d"], &env);
    // The pid file is written before the services start.
    let deadline = Instant::now() + READY;
    let pid = loop {
        let written = std::fs::read_to_string(dir.path("server.pid")).unwrap_or_default();
        if let Ok(pid) = written.trim().parse::<u32>() {
            break pid;
        }
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_ne!(pid, launcher.pid());
    crate::support_server::process::signal_pid(pid, Signal::SIGKILL);
    assert_eq!(launcher.wait_exit(EXIT).code(), Some(1));
    let err = launcher.stderr();
    assert!(err.contains("daemon exited before it was ready"), "{err}");
}

/// A daemon without `error_log` whose stderr is the journal stream systemd
/// names in `JOURNAL_STREAM` keeps writing its logs there; with a stale
/// `JOURNAL_STREAM` (another stream) it does not.
pub(crate) fn daemon_keeps_journal_stderr() {
    use std::os::unix::fs::MetadataExt;
    for matching in [true, false] {
        let dir = TempDir::new("journal");
        let conf = conf_arg(&dir.conf("grace_period_seconds: 0\n"));
        // The launcher's stderr file: created here so its inode is known.
        let stderr = dir.path("d.stderr");
        std::fs::write(&stderr, "").unwrap();
        let meta = std::fs::metadata(&stderr).unwrap();
        let ino = if matching { meta.ino() } else { meta.ino() + 1 };
        let stream = format!("{}:{ino}", meta.dev());
        let env = [("JOURNAL_STREAM", stream.as_str())];
        let mut launcher = ServerProcess::start(&dir, "d", &["-c", &conf, "-d"], &env);
        assert!(launcher.wait_exit(EXIT).success(), "{}", launcher.stderr());
        let ready = read_ready(&launcher.ready_file).unwrap();
        let _guard = super::DaemonGuard(ready.pid);
        assert_eq!(
            answer_pid(&request(ready.tcp(), "ping").unwrap()),
            ready.pid
        );
        stop_daemon(ready.pid, &dir.path("server.pid"));
        let logged = launcher.stderr();
        let from_daemon = format!("server starting, pid {}", ready.pid);
        assert_eq!(logged.contains(&from_daemon), matching, "{logged}");
    }
}
