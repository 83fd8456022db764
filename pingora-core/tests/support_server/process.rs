//! Starting server processes and sending them signals, from the tests.

use super::child::CHILD_ENV;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A temp directory for one test, scoped by our pid, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pingora-srv-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Write a config file; `upgrade_sock` and `pid_file` point into this dir.
    pub(crate) fn conf(&self, extra: &str) -> PathBuf {
        let text = format!(
            "upgrade_sock: {}\npid_file: {}\n{extra}",
            self.path("upgrade.sock").display(),
            self.path("server.pid").display(),
        );
        let path = self.path("conf.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process; killed (SIGKILL) if still running when dropped, so a
/// failing test leaves nothing behind.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) ready_file: PathBuf,
    pub(crate) stderr_file: PathBuf,
    pub(crate) stdout_file: PathBuf,
}

/// What a server wrote to its ready file.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    pub(crate) pid: u32,
    pub(crate) addrs: Vec<String>,
}

impl Ready {
    pub(crate) fn tcp(&self) -> SocketAddr {
        self.addrs.iter().find_map(|a| a.parse().ok()).unwrap()
    }
}

impl ServerProcess {
    /// Start the server with `args`, named `name` for its files in `dir`.
    pub(crate) fn start(dir: &TempDir, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let ready_file = dir.path(&format!("{name}.ready"));
        let stderr_file = dir.path(&format!("{name}.stderr"));
        let stdout_file = dir.path(&format!("{name}.stdout"));
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(args)
            .env(CHILD_ENV, "1")
            .env("READY_FILE", &ready_file)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_file).unwrap())
            .stderr(std::fs::File::create(&stderr_file).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Self {
            child,
            ready_file,
            stderr_file,
            stdout_file,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until the server wrote its ready file.
    pub(crate) fn wait_ready(&mut self, timeout: Duration) -> Ready {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ready) = read_ready(&self.ready_file) {
                return ready;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited early with {status}: {}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "server not ready: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for the process to exit.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server still running: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        signal_pid(self.pid(), signal);
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_file).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn signal_pid(pid: u32, signal: Signal) {
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
}

pub(crate) fn read_ready(path: &Path) -> Option<Ready> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut pid = None;
    let mut addrs = Vec::new();
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("pid ") {
            pid = p.parse().ok();
        } else if let Some(a) = line.strip_prefix("addr ") {
            addrs.push(a.to_string());
        }
    }
    Some(Ready { pid: pid?, addrs })
}

/// Whether process `pid` is gone or a zombie (exited, not yet reaped by a
/// parent that is not us).
pub(crate) fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}
