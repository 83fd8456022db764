//! The server's YAML config file: [`ServerConf`].

use super::conf_keys::{self, UnknownKey};
use crate::protocols::http::v2::H2Options;
use pingora_error::{BError, Error, ErrorType, OrErr, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The only config file format version so far.
const CONF_VERSION: usize = 1;

/// The kind of error for a config file that is not valid: an unknown key, a
/// value of the wrong type or out of range. Not retryable: fix the file.
pub const CONFIG_ERROR: ErrorType = ErrorType::new("ConfigError");

/// The server's settings, loaded from a YAML file.
///
/// Every key is optional and has a default (see [`Default`]); a value of
/// the wrong type or out of range is an error that names the key and the
/// file. The book chapter `docs/src/config.md` lists every key with its
/// meaning. Pingora's `conf.yaml` keys are all accepted.
///
/// # Keys of the program's own
///
/// A top-level key the server does not know is ignored, so a program can
/// keep its own settings in the same file and read them with its own
/// serde struct. Such keys are still reported ([`ServerConf::unknown_keys`]):
/// one close to a server key (`threadz`) is taken for a typo, logged as a
/// warning at start-up and failing `-t`; the others are noted. Use
/// [`from_yaml_strict`](Self::from_yaml_strict) to refuse any unknown key.
/// The `h2` section stays strict: every key in it must be known.
///
/// # Examples
///
/// ```
/// use pingora_core::server::ServerConf;
///
/// let conf = ServerConf::from_yaml("threads: 4\nwork_stealing: false\n").unwrap();
/// assert_eq!(conf.threads, 4);
/// assert_eq!(conf.grace_period_seconds, 5);
/// // A program's own key is allowed; the strict parser refuses it.
/// assert!(ServerConf::from_yaml("threads: 4\nmy_upstream: 10.0.0.1:80\n").is_ok());
/// assert!(ServerConf::from_yaml_strict("thread: 4\n").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ServerConf {
    /// Version of the config file format. Only `1` exists.
    pub version: usize,
    /// Run in the background (see `-d`).
    pub daemon: bool,
    /// Where stdout and stderr go once daemonized; SIGUSR1 reopens it.
    /// `None`: the journal when systemd started the daemon, else syslog
    /// (`/dev/log`), else discarded.
    pub error_log: Option<String>,
    /// Where the daemon writes its process id. It holds a lock on the
    /// file while it runs, so a second daemon on the same file fails.
    pub pid_file: String,
    /// The Unix socket over which listening sockets pass to a new process
    /// during a graceful upgrade.
    pub upgrade_sock: String,
    /// Switch to this user after daemonizing.
    pub user: Option<String>,
    /// Switch to this group after daemonizing; `None` with a `user`: the
    /// user's own group.
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
    /// Connections drain from the signal on: HTTP/1 answers say
    /// `Connection: close`, HTTP/2 connections get GOAWAY, and idle
    /// connections are closed (see
    /// [`ServiceContext::draining`](crate::services::ServiceContext::draining)).
    pub grace_period_seconds: u64,
    /// Then wait at most this long for in-flight work to finish, then exit.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Idle upstream connections kept for reuse, per server.
    pub upstream_keepalive_pool_size: usize,
    /// How many times a proxy may retry a failed upstream request.
    pub max_retries: usize,
    /// Accept tasks per listening socket.
    pub listener_tasks_per_fd: usize,
    /// The directory the server changes to at start-up (after
    /// daemonizing); `None` stays where it was started.
    pub work_dir: Option<String>,
    /// IPv4 addresses upstream connections to IPv4 peers are made from,
    /// one picked in turn per connection; empty: the system's choice. A
    /// peer's own `bind_to` wins.
    pub client_bind_to_ipv4: Vec<String>,
    /// IPv6 addresses upstream connections to IPv6 peers are made from;
    /// see `client_bind_to_ipv4`.
    pub client_bind_to_ipv6: Vec<String>,
    /// Pingora's dedicated connect thread pools. Accepted so a Pingora
    /// config boots; connects run on the service's runtime here, and a
    /// warning says so at start-up when set.
    pub upstream_connect_offload_threadpools: Option<usize>,
    /// Threads per pool of `upstream_connect_offload_threadpools`;
    /// accepted, not used (see there).
    pub upstream_connect_offload_thread_per_pool: Option<usize>,
    /// Write upstream TLS session keys to the file named by
    /// `SSLKEYLOGFILE`, for decrypting a packet capture (rustls backend;
    /// the others log that they do not). Never in production: anyone with
    /// the file reads the traffic. A warning says it is on at start-up.
    pub upstream_debug_ssl_keylog: bool,
    /// HTTP/2 settings of the connections the server accepts; see
    /// [`h2_options`](Self::h2_options).
    pub h2: H2Conf,
}

/// The `h2` section: HTTP/2 settings of accepted connections.
///
/// Every key is optional, with the default of [`H2Options`]. Services
/// built from a [`ServerConf`] (the proxy's `http_proxy_service`,
/// [`HttpServer::with_server_conf`](crate::apps::http_app::HttpServer::with_server_conf))
/// take them through [`ServerConf::h2_options`]; the other
/// [`H2Options`] (timeouts, flood limits) keep their defaults.
///
/// # Examples
///
/// ```
/// use pingora_core::server::ServerConf;
///
/// let conf = ServerConf::from_yaml("h2:\n  max_concurrent_streams: 64\n").unwrap();
/// assert_eq!(conf.h2.max_concurrent_streams, 64);
/// assert_eq!(conf.h2_options().max_concurrent_streams, 64);
/// assert_eq!(conf.h2.max_frame_size, 16_384);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct H2Conf {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may open at once,
    /// at least 1.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: body bytes of one stream a client may
    /// send before the server reads them, at most 2^31 - 1.
    pub initial_stream_window: u32,
    /// Body bytes of all streams of a connection a client may send before
    /// the server reads them, at most 2^31 - 1.
    pub initial_connection_window: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: largest decoded request header block,
    /// at least 1; larger requests are refused with 431.
    pub max_header_list_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE: largest frame payload a client may send,
    /// 16384 to 16777215 (RFC 9113 §4.2).
    pub max_frame_size: u32,
    /// Send a PING after this many seconds without traffic, at least 1;
    /// `null` sends none.
    pub keepalive_interval_seconds: Option<u64>,
    /// Close the connection when a PING goes unanswered this many seconds,
    /// at least 1.
    pub keepalive_timeout_seconds: u64,
}

impl Default for H2Conf {
    /// The defaults of [`H2Options`].
    fn default() -> Self {
        let options = H2Options::default();
        Self {
            max_concurrent_streams: options.max_concurrent_streams,
            initial_stream_window: options.initial_stream_window,
            initial_connection_window: options.initial_connection_window,
            max_header_list_size: options.max_header_list_size,
            max_frame_size: options.max_frame_size,
            keepalive_interval_seconds: options.keepalive_interval.map(|d| d.as_secs()),
            keepalive_timeout_seconds: options.keepalive_timeout.as_secs(),
        }
    }
}

impl H2Conf {
    /// The largest flow-control window (RFC 9113 §6.9.1).
    const MAX_WINDOW: u32 = (1 << 31) - 1;
    /// The frame size range (RFC 9113 §4.2).
    const FRAME_SIZES: std::ops::RangeInclusive<u32> = 16_384..=16_777_215;

    /// `base` with this section's settings.
    fn apply(&self, mut base: H2Options) -> H2Options {
        base.max_concurrent_streams = self.max_concurrent_streams;
        base.initial_stream_window = self.initial_stream_window;
        base.initial_connection_window = self.initial_connection_window;
        base.max_header_list_size = self.max_header_list_size;
        base.max_frame_size = self.max_frame_size;
        base.keepalive_interval = self.keepalive_interval_seconds.map(Duration::from_secs);
        base.keepalive_timeout = Duration::from_secs(self.keepalive_timeout_seconds);
        base
    }

    /// The first key out of range, with the reason.
    fn invalid(&self) -> Option<(&'static str, &'static str)> {
        if self.max_concurrent_streams == 0 {
            return Some(("max_concurrent_streams", "must be at least 1"));
        }
        if self.initial_stream_window > Self::MAX_WINDOW {
            return Some(("initial_stream_window", "must be at most 2147483647"));
        }
        if self.initial_connection_window > Self::MAX_WINDOW {
            return Some(("initial_connection_window", "must be at most 2147483647"));
        }
        if self.max_header_list_size == 0 {
            return Some(("max_header_list_size", "must be at least 1"));
        }
        if !Self::FRAME_SIZES.contains(&self.max_frame_size) {
            return Some(("max_frame_size", "must be 16384 to 16777215"));
        }
        if self.keepalive_interval_seconds == Some(0) {
            return Some((
                "keepalive_interval_seconds",
                "must be at least 1 (null sends no pings)",
            ));
        }
        if self.keepalive_timeout_seconds == 0 {
            return Some(("keepalive_timeout_seconds", "must be at least 1"));
        }
        None
    }
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
            work_dir: None,
            client_bind_to_ipv4: Vec::new(),
            client_bind_to_ipv6: Vec::new(),
            upstream_connect_offload_threadpools: None,
            upstream_connect_offload_thread_per_pool: None,
            upstream_debug_ssl_keylog: false,
            h2: H2Conf::default(),
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
        Self::load_and_check(path).map(|(conf, _)| conf)
    }

    /// Load and validate the config file at `path`, with the top-level
    /// keys the server does not know (see [`unknown_keys`](Self::unknown_keys)).
    ///
    /// # Errors
    ///
    /// As [`load_from_yaml`](Self::load_from_yaml).
    pub fn load_and_check(path: impl AsRef<Path>) -> Result<(Self, Vec<UnknownKey>)> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).or_err_with(ErrorType::FileReadError, || {
            format!("cannot read config file {}", path.display())
        })?;
        let in_file = |e: BError| {
            let context = e.context().unwrap_or_default().to_string();
            Error::explain(CONFIG_ERROR, format!("{}: {context}", path.display()))
        };
        let conf = Self::from_yaml(&text).map_err(in_file)?;
        Ok((conf, Self::unknown_keys(&text)))
    }

    /// The top-level keys of the YAML `text` the server does not know, in
    /// file order, each with the server key it resembles if it looks
    /// misspelt. Empty when `text` does not parse (the parser reports
    /// that).
    pub fn unknown_keys(text: &str) -> Vec<UnknownKey> {
        let Ok(doc) = yaml_serde::from_str::<yaml_serde::Value>(text) else {
            return Vec::new();
        };
        // The keys the server knows are the ones it writes.
        let known: Vec<String> = yaml_serde::to_value(Self::default())
            .ok()
            .and_then(|v| {
                v.as_mapping().map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        conf_keys::unknown(&doc, &known)
    }

    /// [`from_yaml`](Self::from_yaml), refusing any key the server does not
    /// know, for programs that keep nothing of their own in the file.
    ///
    /// # Errors
    ///
    /// As [`from_yaml`](Self::from_yaml), and [`CONFIG_ERROR`] naming the
    /// first unknown key.
    pub fn from_yaml_strict(text: &str) -> Result<Self> {
        let conf = Self::from_yaml(text)?;
        match Self::unknown_keys(text).first() {
            Some(unknown) => Error::e_explain(CONFIG_ERROR, unknown.to_string()),
            None => Ok(conf),
        }
    }

    /// The warnings to give at start-up about this config: keys that look
    /// misspelt, and keys accepted for Pingora compatibility that have no
    /// effect here.
    pub(crate) fn start_up_warnings(&self, unknown: &[UnknownKey]) -> Vec<String> {
        let mut warnings: Vec<String> = unknown.iter().map(ToString::to_string).collect();
        if self.upstream_connect_offload_threadpools.is_some()
            || self.upstream_connect_offload_thread_per_pool.is_some()
        {
            warnings.push(
                "upstream_connect_offload_* is accepted but not used: connects run on \
                 each service's runtime"
                    .to_string(),
            );
        }
        if self.upstream_debug_ssl_keylog {
            warnings.push(
                "upstream_debug_ssl_keylog is on: TLS session keys go to $SSLKEYLOGFILE".into(),
            );
        }
        warnings
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
        // yaml_serde reports an empty document as `null`, not as an empty map.
        let conf: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            yaml_serde::from_str(text).explain_err(CONFIG_ERROR, |e| e.to_string())?
        };
        conf.validate()?;
        Ok(conf)
    }

    /// The config as YAML, every key included.
    pub fn to_yaml(&self) -> String {
        // Serializing plain strings, numbers and options into YAML cannot fail.
        yaml_serde::to_string(self).unwrap_or_default()
    }

    /// The HTTP/2 settings for accepted connections: [`H2Options`]'
    /// defaults with the keys of the `h2` section applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_core::protocols::http::v2::H2Options;
    /// use pingora_core::server::ServerConf;
    ///
    /// assert_eq!(ServerConf::default().h2_options(), H2Options::default());
    /// ```
    pub fn h2_options(&self) -> H2Options {
        self.h2.apply(H2Options::default())
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
        if let Some((key, why)) = self.h2.invalid() {
            return bad(&format!("h2.{key}"), why);
        }
        for ip in &self.client_bind_to_ipv4 {
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                return bad(
                    "client_bind_to_ipv4",
                    &format!("{ip:?} is not an IPv4 address"),
                );
            }
        }
        for ip in &self.client_bind_to_ipv6 {
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return bad(
                    "client_bind_to_ipv6",
                    &format!("{ip:?} is not an IPv6 address"),
                );
            }
        }
        if self.work_dir.as_deref() == Some("") {
            return bad("work_dir", "must not be empty");
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
    fn h2_defaults_are_h2_options_defaults() {
        let conf = ServerConf::from_yaml("threads: 2\n").unwrap();
        assert_eq!(conf.h2, H2Conf::default());
        assert_eq!(conf.h2_options(), H2Options::default());
        let conf = ServerConf::from_yaml("h2:\n  max_frame_size: 32768\n").unwrap();
        let expected = H2Options {
            max_frame_size: 32_768,
            ..H2Options::default()
        };
        assert_eq!(conf.h2_options(), expected);
    }

    #[test]
    fn every_h2_key_parses() {
        let yaml = "h2:\n  max_concurrent_streams: 7\n  initial_stream_window: 65535\n\
            \x20 initial_connection_window: 2000000\n  max_header_list_size: 4096\n\
            \x20 max_frame_size: 65536\n  keepalive_interval_seconds: 20\n\
            \x20 keepalive_timeout_seconds: 3\n";
        let conf = ServerConf::from_yaml(yaml).unwrap();
        let options = conf.h2_options();
        assert_eq!(options.max_concurrent_streams, 7);
        assert_eq!(options.initial_stream_window, 65_535);
        assert_eq!(options.initial_connection_window, 2_000_000);
        assert_eq!(options.max_header_list_size, 4096);
        assert_eq!(options.max_frame_size, 65_536);
        assert_eq!(options.keepalive_interval, Some(Duration::from_secs(20)));
        assert_eq!(options.keepalive_timeout, Duration::from_secs(3));
        // The keys not in the section keep their defaults.
        assert_eq!(options.idle_timeout, H2Options::default().idle_timeout);
        assert_eq!(ServerConf::from_yaml(&conf.to_yaml()).unwrap(), conf);
        // `null` turns the pings off.
        let conf = ServerConf::from_yaml("h2:\n  keepalive_interval_seconds: null\n").unwrap();
        assert_eq!(conf.h2_options().keepalive_interval, None);
    }

    #[test]
    fn bad_h2_keys_are_named() {
        let cases = [
            ("h2:\n  max_frame_size: big\n", "max_frame_size"),
            (
                "h2:\n  max_concurrent_streams: -1\n",
                "max_concurrent_streams",
            ),
            (
                "h2:\n  max_concurrent_stream: 10\n",
                "max_concurrent_stream",
            ),
            ("h2: 3\n", "h2"),
            ("h2:\n  max_frame_size: 1000\n", "h2.max_frame_size"),
            (
                "h2:\n  max_concurrent_streams: 0\n",
                "h2.max_concurrent_streams",
            ),
            (
                "h2:\n  initial_stream_window: 4294967295\n",
                "h2.initial_stream_window",
            ),
            (
                "h2:\n  keepalive_interval_seconds: 0\n",
                "h2.keepalive_interval_seconds",
            ),
            (
                "h2:\n  keepalive_timeout_seconds: 0\n",
                "h2.keepalive_timeout_seconds",
            ),
        ];
        for (yaml, key) in cases {
            let err = ServerConf::from_yaml(yaml).unwrap_err();
            assert_eq!(*err.etype(), CONFIG_ERROR, "{yaml}");
            assert!(err.to_string().contains(key), "{yaml}: {err}");
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let err = ServerConf::from_yaml_strict("threads: 2\nthreadz: 3\n").unwrap_err();
        assert_eq!(*err.etype(), CONFIG_ERROR);
        assert!(err.to_string().contains("threadz"), "{err}");
        // The lenient parser takes the file and reports the key.
        let yaml = "threads: 2\nthreadz: 3\n";
        assert_eq!(ServerConf::from_yaml(yaml).unwrap().threads, 2);
        let unknown = ServerConf::unknown_keys(yaml);
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].is_likely_typo());
        let warnings = ServerConf::default().start_up_warnings(&unknown);
        assert!(warnings[0].contains("threadz") && warnings[0].contains("threads"));
    }

    /// A Pingora `conf.yaml`, with a program's own keys beside the
    /// server's: it boots, and the program reads its keys with its own
    /// serde struct from the same text.
    #[test]
    fn pingora_conf_yaml_boots_with_the_programs_own_keys() {
        let yaml = "---\nversion: 1\nthreads: 2\npid_file: /run/pingora.pid\n\
            upgrade_sock: /tmp/pingora_upgrade.sock\nuser: nobody\ngroup: webusers\n\
            daemon: false\nerror_log: /tmp/pingora_err.log\nwork_stealing: true\n\
            ca_file: /etc/ssl/cert.pem\ngrace_period_seconds: 60\n\
            graceful_shutdown_timeout_seconds: 10\nupstream_keepalive_pool_size: 256\n\
            client_bind_to_ipv4: [127.0.0.2]\nclient_bind_to_ipv6: ['::1']\n\
            upstream_connect_offload_threadpools: 2\n\
            upstream_connect_offload_thread_per_pool: 4\nmax_retries: 3\n\
            upstream_debug_ssl_keylog: false\nwork_dir: /tmp\n\
            my_upstreams: ['10.0.0.1:80', '10.0.0.2:80']\n";
        let conf = ServerConf::from_yaml(yaml).unwrap();
        assert_eq!(conf.threads, 2);
        assert_eq!(conf.client_bind_to_ipv4, ["127.0.0.2"]);
        assert_eq!(conf.upstream_connect_offload_threadpools, Some(2));
        assert_eq!(conf.work_dir.as_deref(), Some("/tmp"));

        #[derive(Deserialize)]
        struct Mine {
            my_upstreams: Vec<String>,
        }
        let mine: Mine = yaml_serde::from_str(yaml).unwrap();
        assert_eq!(mine.my_upstreams.len(), 2);

        let unknown = ServerConf::unknown_keys(yaml);
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].key, "my_upstreams");
        assert!(!unknown[0].is_likely_typo());
        let warnings = conf.start_up_warnings(&unknown);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("upstream_connect_offload"))
        );

        // Bad bind addresses are named.
        let err = ServerConf::from_yaml("client_bind_to_ipv4: ['::1']\n").unwrap_err();
        assert!(err.to_string().contains("client_bind_to_ipv4"), "{err}");
        let err = ServerConf::from_yaml("client_bind_to_ipv6: [1.2.3.4]\n").unwrap_err();
        assert!(err.to_string().contains("client_bind_to_ipv6"), "{err}");
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
        std::fs::write(&path, "h2:\n  max_frame_size: 12\n").unwrap();
        let err = ServerConf::load_from_yaml(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("h2.max_frame_size"),
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
