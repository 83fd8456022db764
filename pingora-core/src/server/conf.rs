//! The server's YAML config file: [`ServerConf`].

use pingora_error::{Error, ErrorType, OrErr, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The only config file format version so far.
const CONF_VERSION: usize = 1;

/// The kind of error for a config file that is not valid: an unknown key, a
/// value of the wrong type or out of range. Not retryable: fix the file.
pub const CONFIG_ERROR: ErrorType = ErrorType::new("ConfigError");

/// The server's settings, loaded from a YAML file.
///
/// Every key is optional and has a default (see [`Default`]); a key the
/// server does not know, or a value of the wrong type, is an error that names
/// the key and the file. The book chapter `docs/src/config.md` lists every
/// key with its meaning.
///
/// # Examples
///
/// ```
/// use pingora_core::server::ServerConf;
///
/// let conf = ServerConf::from_yaml("threads: 4\nwork_stealing: false\n").unwrap();
/// assert_eq!(conf.threads, 4);
/// assert_eq!(conf.grace_period_seconds, 5);
/// assert!(ServerConf::from_yaml("thread: 4\n").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConf {
    /// Version of the config file format. Only `1` exists.
    pub version: usize,
    /// Run in the background (see `-d`).
    pub daemon: bool,
    /// Where stderr goes once daemonized. `None`: discarded.
    pub error_log: Option<String>,
    /// Where the daemon writes its process id.
    pub pid_file: String,
    /// The Unix socket over which listening sockets pass to a new process
    /// during a graceful upgrade.
    pub upgrade_sock: String,
    /// Switch to this user after daemonizing.
    pub user: Option<String>,
    /// Switch to this group after daemonizing.
    pub group: Option<String>,
    /// Worker threads per service.
    pub threads: usize,
    /// `true`: each service runs on one work-stealing runtime with `threads`
    /// workers. `false`: on `threads` single-threaded runtimes.
    pub work_stealing: bool,
    /// CA certificates (PEM) that upstream TLS connections trust; `None`: the
    /// system roots.
    pub ca_file: Option<String>,
    /// After SIGTERM or SIGQUIT, keep serving this long before stopping to
    /// accept, so load balancers and the new process can take over.
    pub grace_period_seconds: u64,
    /// Then wait at most this long for in-flight work to finish, then exit.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Idle upstream connections kept for reuse, per server.
    pub upstream_keepalive_pool_size: usize,
    /// How many times a proxy may retry a failed upstream request.
    pub max_retries: usize,
    /// Accept tasks per listening socket.
    pub listener_tasks_per_fd: usize,
}

impl Default for ServerConf {
    fn default() -> Self {
        Self {
            version: CONF_VERSION,
            daemon: false,
            error_log: None,
            pid_file: "/tmp/pingora.pid".to_string(),
            upgrade_sock: "/tmp/pingora_upgrade.sock".to_string(),
            user: None,
            group: None,
            threads: 1,
            work_stealing: true,
            ca_file: None,
            grace_period_seconds: 5,
            graceful_shutdown_timeout_seconds: 30,
            upstream_keepalive_pool_size: 128,
            max_retries: 16,
            listener_tasks_per_fd: 1,
        }
    }
}

impl ServerConf {
    /// Load and validate the config file at `path`.
    ///
    /// # Errors
    ///
    /// [`ErrorType::FileReadError`] when the file cannot be read,
    /// [`CONFIG_ERROR`] naming the file and the key when the content is
    /// invalid.
    pub fn load_from_yaml(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).or_err_with(ErrorType::FileReadError, || {
            format!("cannot read config file {}", path.display())
        })?;
        Self::from_yaml(&text).map_err(|e| {
            let context = e.context().unwrap_or_default().to_string();
            Error::explain(CONFIG_ERROR, format!("{}: {context}", path.display()))
        })
    }

    /// Parse and validate a config from YAML text.
    ///
    /// An empty document gives the defaults.
    ///
    /// # Errors
    ///
    /// [`CONFIG_ERROR`] naming the key that is unknown, of the wrong type
    /// or out of range.
    pub fn from_yaml(text: &str) -> Result<Self> {
        // serde_yaml reports an empty document as `null`, not as an empty map.
        let conf: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            serde_yaml::from_str(text).explain_err(CONFIG_ERROR, |e| e.to_string())?
        };
        conf.validate()?;
        Ok(conf)
    }

    /// The config as YAML, every key included.
    pub fn to_yaml(&self) -> String {
        // Serializing plain strings, numbers and options into YAML cannot fail.
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// Check the values that the types alone do not constrain.
    ///
    /// # Errors
    ///
    /// [`CONFIG_ERROR`] naming the key that is out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Error::e_explain(CONFIG_ERROR, format!("{key}: {why}"));
        if self.version != CONF_VERSION {
            return bad("version", "only version 1 is supported");
        }
        if self.threads == 0 {
            return bad("threads", "must be at least 1");
        }
        if self.listener_tasks_per_fd == 0 {
            return bad("listener_tasks_per_fd", "must be at least 1");
        }
        if self.upgrade_sock.is_empty() {
            return bad("upgrade_sock", "must not be empty");
        }
        if self.pid_file.is_empty() {
            return bad("pid_file", "must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_gives_defaults() {
        assert_eq!(ServerConf::from_yaml("").unwrap(), ServerConf::default());
        assert_eq!(
            ServerConf::from_yaml("---\n").unwrap(),
            ServerConf::default()
        );
    }

    #[test]
    fn every_key_parses() {
        let yaml = "version: 1\ndaemon: true\nerror_log: /tmp/e.log\npid_file: /tmp/p.pid\n\
            upgrade_sock: /tmp/u.sock\nuser: nobody\ngroup: nogroup\nthreads: 3\n\
            work_stealing: false\nca_file: /tmp/ca.pem\ngrace_period_seconds: 1\n\
            graceful_shutdown_timeout_seconds: 2\nupstream_keepalive_pool_size: 7\n\
            max_retries: 2\nlistener_tasks_per_fd: 4\n";
        let conf = ServerConf::from_yaml(yaml).unwrap();
        assert!(conf.daemon);
        assert_eq!(conf.error_log.as_deref(), Some("/tmp/e.log"));
        assert_eq!(conf.user.as_deref(), Some("nobody"));
        assert_eq!(conf.threads, 3);
        assert!(!conf.work_stealing);
        assert_eq!(conf.graceful_shutdown_timeout_seconds, 2);
        assert_eq!(conf.listener_tasks_per_fd, 4);
        // What we print with `-t` reads back to the same config.
        assert_eq!(ServerConf::from_yaml(&conf.to_yaml()).unwrap(), conf);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = ServerConf::from_yaml("threads: 2\nthreadz: 3\n").unwrap_err();
        assert_eq!(*err.etype(), CONFIG_ERROR);
        assert!(err.to_string().contains("threadz"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = ServerConf::from_yaml("work_stealing: 3\n").unwrap_err();
        assert!(err.to_string().contains("work_stealing"), "{err}");
        let err = ServerConf::from_yaml("threads: -1\n").unwrap_err();
        assert!(err.to_string().contains("threads"), "{err}");
    }

    #[test]
    fn out_of_range_is_named() {
        let err = ServerConf::from_yaml("threads: 0\n").unwrap_err();
        assert!(err.to_string().contains("threads"), "{err}");
        let err = ServerConf::from_yaml("version: 2\n").unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
    }

    #[test]
    fn file_is_named() {
        let dir = std::env::temp_dir().join(format!("pingora-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.yaml");
        std::fs::write(&path, "max_retries: many\n").unwrap();
        let err = ServerConf::load_from_yaml(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("max_retries"),
            "{err}"
        );
        let err = ServerConf::load_from_yaml(dir.join("missing.yaml")).unwrap_err();
        assert!(err.to_string().contains("missing.yaml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        // The config file is untrusted input: any text is an error or a
        // config, never a panic.
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = ServerConf::from_yaml(&text);
        }
    }
}
