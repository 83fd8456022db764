//! The daemon's pid file, locked so that two daemons cannot share one.
//!
//! The daemon holds an exclusive `flock` on the file for as long as it
//! serves. A second daemon started on the same pid file fails at once,
//! naming the pid of the first. During a graceful upgrade the old daemon
//! lets go of the lock once its sockets are handed over, and the new one
//! (started with `-u`) waits for it.

use nix::fcntl::{Flock, FlockArg};
use pingora_error::{Error, ErrorType, OrErr, Result};
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The lock this process holds, released on [`release`].
static HELD: Mutex<Option<Flock<File>>> = Mutex::new(None);

/// How often a process waiting for the lock tries again.
const RETRY: Duration = Duration::from_millis(20);

/// Open and lock the pid file at `path`, waiting up to `wait` for another
/// process to let go of it. The lock stays with this process (and the
/// processes it forks) until [`release`].
///
/// # Errors
///
/// When the file cannot be opened, or another process holds the lock for
/// longer than `wait`: the error then names that process's pid.
pub(crate) fn lock(path: &Path, wait: Duration) -> Result<()> {
    let name = path.display();
    let deadline = Instant::now() + wait;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .or_err_with(ErrorType::FileOpenError, || {
            format!("cannot open pid_file {name}")
        })?;
    let locked = loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => break locked,
            Err((back, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = back;
                std::thread::sleep(RETRY);
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                return Error::e_explain(
                    ErrorType::FileOpenError,
                    format!(
                        "pid_file {name} is locked by another server (pid {}): \
                         is it still running?",
                        holder.trim()
                    ),
                );
            }
            Err((_, e)) => {
                return Err(Error::because(
                    ErrorType::FileOpenError,
                    format!("cannot lock pid_file {name}"),
                    e,
                ));
            }
        }
    };
    *HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(locked);
    Ok(())
}

/// Write our pid into the locked pid file.
///
/// # Errors
///
/// When no pid file is locked or the write fails.
pub(crate) fn write_pid() -> Result<()> {
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(file) = held.as_mut() else {
        return Error::e_explain(ErrorType::FileWriteError, "no pid file locked");
    };
    let file: &mut File = file;
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .or_err(ErrorType::FileWriteError, "cannot write pid_file")
}

/// Let go of the lock, so that the process taking over can write its pid.
pub(crate) fn release() {
    HELD.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
}

/// Remove the pid file at `path` if it still names this process: after a
/// graceful upgrade it names the new one, which must keep it.
pub(crate) fn remove_if_ours(path: &Path) {
    let ours = std::process::id().to_string();
    if let Ok(content) = std::fs::read_to_string(path)
        && content.trim() == ours
    {
        let _ = std::fs::remove_file(path);
    }
    release();
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the lock is per process, shared by the tests of this binary.
    #[test]
    fn lock_write_remove() {
        let path = std::env::temp_dir().join(format!("pingora-pid-{}", std::process::id()));
        lock(&path, Duration::ZERO).unwrap();
        write_pid().unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.trim(), std::process::id().to_string());
        // A second open file description conflicts with ours, as another
        // process's would.
        let err = lock(&path, Duration::from_millis(50)).unwrap_err();
        assert!(
            err.to_string().contains("locked by another server"),
            "{err}"
        );
        remove_if_ours(&path);
        assert!(!path.exists());

        std::fs::write(&path, "1\n").unwrap();
        remove_if_ours(&path);
        assert!(path.exists(), "another process's pid file was removed");
        std::fs::remove_file(&path).unwrap();
    }
}
