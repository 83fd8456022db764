//! Running in the background (`-d`): fork, detach, lock and write the pid
//! file, switch user and group, send the output where the config says,
//! and let the launching process exit only once the daemon is ready.
//!
//! The steps, in order:
//!
//! 1. In the foreground: open the error log, look the user and group up,
//!    lock the pid file, and create the launch pipe. Each failure is
//!    reported on the terminal, with exit status 1.
//! 2. Fork. The launching process waits on the pipe: `ready` makes it exit
//!    0, an error or the pipe closing without a word makes it print the
//!    reason and exit 1.
//! 3. The child starts a new session (no controlling terminal) and forks
//!    again, so that the daemon, not being a session leader, can never get
//!    one back; the middle process exits.
//! 4. The daemon sets umask 022, writes its pid, switches group then user,
//!    and points stdio at the error log, the journal, syslog or
//!    `/dev/null` (see `logs`). Relative paths keep their meaning: the
//!    working directory is not changed.

#![allow(unsafe_code)]

use super::ServerConf;
use super::logs::DaemonOutput;
use super::pidfile;
use nix::unistd::{ForkResult, Gid, Group, User};
use pingora_error::{Error, ErrorType, OkOrErr, OrErr, Result};
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

/// How long a new daemon started with `-u` waits for the old one to let go
/// of the pid file after handing its sockets over.
const PID_FILE_WAIT_ON_UPGRADE: Duration = Duration::from_secs(10);

/// The daemon's end of the pipe to the launching process.
#[derive(Debug)]
pub(crate) struct LaunchPipe(PipeWriter);

impl LaunchPipe {
    /// The daemon is ready: the launcher exits 0.
    pub(crate) fn ready(self) {
        self.say("ready\n");
    }

    /// The daemon failed to start: the launcher prints `why`, exits 1.
    pub(crate) fn failed(self, why: &str) {
        self.say(&format!("error {why}\n"));
    }

    fn say(mut self, message: &str) {
        // The launcher may be gone (killed); nothing to do about that.
        let _ = self.0.write_all(message.as_bytes());
    }
}

/// The user and group to switch to, looked up before forking.
struct Identity {
    user: Option<User>,
    group: Option<Gid>,
}

impl Identity {
    fn look_up(conf: &ServerConf) -> Result<Self> {
        let user = match &conf.user {
            Some(name) => Some(
                User::from_name(name)
                    .ok()
                    .flatten()
                    .or_err_with(ErrorType::InternalError, || format!("no user {name}"))?,
            ),
            None => None,
        };
        let group = match &conf.group {
            Some(name) => Some(
                Group::from_name(name)
                    .ok()
                    .flatten()
                    .or_err_with(ErrorType::InternalError, || format!("no group {name}"))?
                    .gid,
            ),
            // A user without a group runs with the user's own group, not
            // with root's.
            None => user.as_ref().map(|u| u.gid),
        };
        Ok(Self { user, group })
    }

    /// Group first: once the user is switched, the group can no longer be.
    fn switch(&self) -> Result<()> {
        if let Some(gid) = self.group {
            nix::unistd::setgid(gid).or_err_with(ErrorType::InternalError, || {
                format!("cannot switch to group {gid}")
            })?;
        }
        if let Some(user) = &self.user {
            let gid = self.group.unwrap_or(user.gid);
            supplementary_groups(user, gid)?;
            nix::unistd::setuid(user.uid).or_err_with(ErrorType::InternalError, || {
                format!("cannot switch to user {}", user.name)
            })?;
        }
        Ok(())
    }
}

/// Drop root's supplementary groups for `user`'s own.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn supplementary_groups(user: &User, gid: Gid) -> Result<()> {
    let name = std::ffi::CString::new(user.name.as_str())
        .or_err(ErrorType::InternalError, "user name holds a NUL byte")?;
    nix::unistd::initgroups(&name, gid).or_err_with(ErrorType::InternalError, || {
        format!("cannot set the groups of user {}", user.name)
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn supplementary_groups(_: &User, _: Gid) -> Result<()> {
    Ok(())
}

/// Daemonize the process. The launching process stays in this call until
/// the daemon reports on the returned pipe, then exits; the daemon
/// returns from it.
///
/// Must be called before any thread is started: only the calling thread
/// survives the fork.
///
/// # Errors
///
/// When the error log cannot be opened, the pid file is locked by another
/// server, the user or group does not exist, or a system call fails.
pub(crate) fn daemonize(conf: &ServerConf, upgrading: bool) -> Result<LaunchPipe> {
    let output = DaemonOutput::choose(conf.error_log.as_deref())?;
    let identity = Identity::look_up(conf)?;
    let wait = if upgrading {
        PID_FILE_WAIT_ON_UPGRADE
    } else {
        Duration::ZERO
    };
    pidfile::lock(Path::new(&conf.pid_file), wait)?;
    let (read, write) =
        std::io::pipe().or_err(ErrorType::InternalError, "cannot create the launch pipe")?;
    if let Some(child) = fork()? {
        drop(write);
        // The middle process exits at once (see `detach`): reap it. The
        // daemon is re-parented to init.
        let _ = nix::sys::wait::waitpid(child, None);
        wait_for_daemon(read)
    }
    drop(read);
    let launch = LaunchPipe(write);
    if let Err(e) = detach().and_then(|()| {
        pidfile::write_pid()?;
        identity.switch()?;
        output.install()
    }) {
        launch.failed(&e.to_string());
        pidfile::remove_if_ours(Path::new(&conf.pid_file));
        std::process::exit(1);
    }
    Ok(launch)
}

/// Second half of the daemon's start: new session, second fork.
fn detach() -> Result<()> {
    nix::unistd::setsid().or_err(ErrorType::InternalError, "setsid failed")?;
    if fork()?.is_some() {
        // SAFETY: `_exit` ends the middle process at once, without running
        // exit handlers that belong to the daemon's state.
        unsafe { libc::_exit(0) }
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    Ok(())
}

/// Fork; the child's pid in the parent, `None` in the child.
fn fork() -> Result<Option<nix::unistd::Pid>> {
    // SAFETY: `run` calls this before it starts any thread of ours and
    // warns about threads the program started; the fast timers' locks are
    // held across the fork (`prepare_fork`), so the child inherits no lock
    // held by a thread it lost. The child only allocates and makes system
    // calls before it starts its runtime.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => Ok(Some(child)),
        Ok(ForkResult::Child) => Ok(None),
        Err(e) => Err(Error::because(ErrorType::InternalError, "fork failed", e)),
    }
}

/// The launching process: wait until the daemon says it is ready or why it
/// failed, then exit.
fn wait_for_daemon(mut pipe: PipeReader) -> ! {
    let mut said = String::new();
    // Read to the end: the daemon closes its end after one message, or by
    // dying.
    let _ = pipe.read_to_string(&mut said);
    match said.lines().next() {
        Some("ready") => std::process::exit(0),
        Some(line) => {
            let why = line.strip_prefix("error ").unwrap_or(line);
            eprintln!("daemon failed to start: {why}");
        }
        None => {
            eprintln!("daemon exited before it was ready; see the error log (or syslog) for why")
        }
    }
    std::process::exit(1)
}

/// The names of the threads of this process that a fork would lose: all
/// but the calling one and the fast timers' thread, which is restarted
/// (see `pingora_timeout::fast::prepare_fork`). Linux only: elsewhere
/// and where `/proc` does not list them, empty.
#[cfg(target_os = "linux")]
pub(crate) fn threads_lost_in_fork() -> Vec<String> {
    let me = nix::unistd::gettid().as_raw().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut lost: Vec<String> = tasks
        .filter_map(|task| task.ok())
        .filter(|task| task.file_name().to_string_lossy() != me)
        .map(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .map_or_else(|_| "?".to_string(), |name| name.trim().to_string())
        })
        .filter(|name| name != pingora_timeout::fast::TIMER_THREAD_NAME)
        .collect();
    lost.sort();
    lost
}

/// See the Linux version.
#[cfg(not(target_os = "linux"))]
pub(crate) fn threads_lost_in_fork() -> Vec<String> {
    Vec::new()
}
