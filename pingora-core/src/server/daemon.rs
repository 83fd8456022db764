//! Running in the background (`-d`): fork, detach, write the pid file,
//! switch user and group, send stderr to the error log.

use super::ServerConf;
use daemonize::Daemonize;
use pingora_error::{Error, ErrorType, OrErr, Result};
use std::fs::OpenOptions;
use std::path::Path;

/// Daemonize the process. The calling process exits with status 0; the
/// daemon returns from this call.
///
/// Must be called before any thread is started: only the calling thread
/// survives the fork.
///
/// # Errors
///
/// When the error log cannot be opened or the fork, pid file or user switch
/// fails.
pub(crate) fn daemonize(conf: &ServerConf) -> Result<()> {
    let cwd = std::env::current_dir().or_err(ErrorType::InternalError, "no working directory")?;
    // Keep relative paths in the config meaningful after detaching.
    let mut daemon = Daemonize::new().working_directory(cwd).umask(0o022);
    if let Some(path) = &conf.error_log {
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .or_err_with(ErrorType::FileOpenError, || {
                    format!("cannot open error_log {path}")
                })
        };
        daemon = daemon.stderr(open()?).stdout(open()?);
    }
    if let Some(user) = &conf.user {
        daemon = daemon.user(user.as_str());
    }
    if let Some(group) = &conf.group {
        daemon = daemon.group(group.as_str());
    }
    // Our own pid file, written before dropping privileges. Not the crate's:
    // it keeps the file locked, which would stop the next process of a
    // graceful upgrade from writing its pid.
    let pid_file = conf.pid_file.clone();
    let daemon = daemon.privileged_action(move || write_pid_file(Path::new(&pid_file)));
    match daemon.start() {
        Ok(written) => written,
        Err(e) => Error::e_explain(ErrorType::InternalError, format!("cannot daemonize: {e}")),
    }
}

/// Write our pid to `path`.
fn write_pid_file(path: &Path) -> Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .or_err_with(ErrorType::FileWriteError, || {
            format!("cannot write pid_file {}", path.display())
        })
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

/// Remove the pid file at `path` if it still names this process: after a
/// graceful upgrade it names the new one, which must keep it.
pub(crate) fn remove_pid_file(path: &Path) {
    let ours = std::process::id().to_string();
    if let Ok(content) = std::fs::read_to_string(path)
        && content.trim() == ours
    {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_is_ours_to_remove() {
        let path = std::env::temp_dir().join(format!("pingora-pid-{}", std::process::id()));
        write_pid_file(&path).unwrap();
        remove_pid_file(&path);
        assert!(!path.exists());
        std::fs::write(&path, "1\n").unwrap();
        remove_pid_file(&path);
        assert!(path.exists(), "another process's pid file was removed");
        std::fs::remove_file(&path).unwrap();
    }
}
