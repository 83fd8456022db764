//! The server: runs services until told to stop, in the process model every
//! program built with the framework shares.
//!
//! A program builds a [`Server`] from its command line ([`Opt`]) and config
//! file ([`ServerConf`]), calls [`Server::bootstrap`], adds services and calls
//! [`Server::run_forever`]. Each service runs on its own tokio runtime. The
//! server then reacts to signals:
//!
//! - SIGTERM: graceful shutdown. Keep serving for `grace_period_seconds`,
//!   stop accepting, let in-flight work finish for up to
//!   `graceful_shutdown_timeout_seconds`, exit 0.
//! - SIGINT: fast shutdown: exit 0 at once.
//! - SIGQUIT: graceful upgrade. Pass the listening sockets to a new process
//!   started with `-u` over `upgrade_sock`, then shut down gracefully.
//! - SIGUSR1: reopen the daemon's `error_log`, for log rotation.
//!
//! At start-up the soft limit on open files is raised to the hard limit.
//! With `-d` the process forks a daemon and returns only once every service
//! of the daemon is ready (exit 0), or failed to start (exit 1, with the
//! reason). When systemd started the process with `Type=notify`
//! (`NOTIFY_SOCKET` set), it is told `READY=1` at the same point, and
//! `STOPPING=1` at shutdown.
//!
//! The book chapter `docs/src/lifecycle.md` walks through each step.
//!
//! # Examples
//!
//! ```no_run
//! use pingora_core::server::{Opt, Server};
//!
//! let mut server = Server::new(Some(Opt::parse_args())).unwrap();
//! server.bootstrap();
//! // server.add_service(...);
//! server.run_forever();
//! ```

mod conf;
mod conf_keys;
mod daemon;
mod deps;
mod fds;
mod lifecycle;
mod limits;
mod logs;
mod notify;
mod opt;
mod pidfile;
mod runtime;
mod upgrade;

pub use conf::{CONFIG_ERROR, H2Conf, ServerConf};
pub use conf_keys::UnknownKey;

/// The command line and the config file under the module path Pingora
/// programs import them from (`server::configuration::{Opt, ServerConf}`).
/// The same types as [`Opt`] and [`ServerConf`].
pub mod configuration {
    pub use super::{CONFIG_ERROR, H2Conf, Opt, ServerConf, UnknownKey};
}
pub use fds::ListenFds;
pub use opt::Opt;
pub use runtime::Spawner;

use crate::services::Service;
use pingora_error::{Error, ErrorType, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Turns `true` when the server begins shutting down. Apps and background
/// services watch it to finish their work and return.
pub type ShutdownWatch = tokio::sync::watch::Receiver<bool>;

/// How long a new process started with `-u` waits for the old one to send
/// its listening sockets.
const UPGRADE_RECEIVE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the old process tries to reach the new one on SIGQUIT.
const UPGRADE_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Names a service added to a [`Server`], to declare dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHandle {
    index: usize,
    name: String,
}

impl ServiceHandle {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Runs services, each on its own runtime, and handles signals, graceful
/// shutdown, graceful upgrade and daemonizing.
pub struct Server {
    services: Vec<Box<dyn Service>>,
    deps: deps::Dependencies,
    opt: Opt,
    fds: ListenFds,
    bootstrapped: bool,
    /// The configuration in effect: the file, with the command line
    /// applied. Pass it to the services that need it, as in
    /// `http_proxy_service(&server.configuration, ...)`.
    pub configuration: Arc<ServerConf>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.services.iter().map(|s| s.name()).collect();
        f.debug_struct("Server")
            .field("services", &names)
            .field("opt", &self.opt)
            .field("configuration", &self.configuration)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server configured by `opt`: the config file named by `-c` (or the
    /// defaults), with the command line's flags applied.
    ///
    /// # Test mode
    ///
    /// With `-t` this validates the config, prints it (or the error) and
    /// exits the process: 0 when valid, 1 when not.
    ///
    /// # Errors
    ///
    /// When the config file cannot be read or is invalid; the error names
    /// the file and the key.
    pub fn new(opt: impl Into<Option<Opt>>) -> Result<Self> {
        let opt = opt.into().unwrap_or_default();
        let loaded = match &opt.conf {
            Some(path) => ServerConf::load_and_check(path),
            None => Ok((ServerConf::default(), Vec::new())),
        };
        if opt.test {
            test_mode(opt.conf.as_deref(), loaded);
        }
        let (conf, unknown) = loaded?;
        let name = opt.conf.as_deref().unwrap_or_default();
        for warning in conf.start_up_warnings(&unknown) {
            log::warn!("config {name}: {warning}");
        }
        Ok(Self::new_with_conf(opt, conf))
    }

    /// A server with the config `conf`, the flags of `opt` applied.
    pub fn new_with_conf(opt: Opt, mut conf: ServerConf) -> Self {
        if opt.daemon {
            conf.daemon = true;
        }
        Self {
            services: Vec::new(),
            deps: deps::Dependencies::default(),
            opt,
            fds: ListenFds::new(),
            bootstrapped: false,
            configuration: Arc::new(conf),
        }
    }

    /// The configuration in effect: the file, with the command line applied.
    pub fn configuration(&self) -> &Arc<ServerConf> {
        &self.configuration
    }

    /// Prepare to run: with `-u`, receive the listening sockets from the
    /// running server. Call it early, before slow initialisation, so the
    /// handover is not held up; [`run_forever`](Self::run_forever) calls it
    /// when it was not called.
    ///
    /// On failure this logs the error and exits with status 1: a new
    /// process that cannot take over must not bind on its own.
    pub fn bootstrap(&mut self) {
        if let Err(e) = self.try_bootstrap() {
            log::error!("bootstrap failed: {e}");
            eprintln!("bootstrap failed: {e}");
            std::process::exit(1);
        }
    }

    /// [`bootstrap`](Self::bootstrap), returning the error instead of exiting.
    ///
    /// # Errors
    ///
    /// When upgrading and the listening sockets do not arrive in time.
    pub fn try_bootstrap(&mut self) -> Result<()> {
        if self.bootstrapped {
            return Ok(());
        }
        log::info!("bootstrap, upgrade: {}", self.opt.upgrade);
        if self.opt.upgrade {
            let path = Path::new(&self.configuration.upgrade_sock);
            let trusted = upgrade::TrustedPeers::new(self.configuration.user.as_deref())?;
            let received = upgrade::receive_fds(path, &trusted, UPGRADE_RECEIVE_TIMEOUT)?;
            log::info!("received {} listening sockets", received.len());
            self.fds = ListenFds::from_received(received);
        }
        self.bootstrapped = true;
        Ok(())
    }

    /// Add a service; it starts when [`run_forever`](Self::run_forever) runs.
    pub fn add_service(&mut self, service: impl Service + 'static) -> ServiceHandle {
        self.add_boxed_service(Box::new(service))
    }

    /// Add several boxed services, as Pingora programs do with a
    /// `Vec<Box<dyn Service>>`.
    pub fn add_services(&mut self, services: Vec<Box<dyn Service>>) -> Vec<ServiceHandle> {
        services
            .into_iter()
            .map(|service| self.add_boxed_service(service))
            .collect()
    }

    /// Add a boxed service.
    pub fn add_boxed_service(&mut self, service: Box<dyn Service>) -> ServiceHandle {
        let handle = ServiceHandle {
            index: self.services.len(),
            name: service.name().to_string(),
        };
        self.services.push(service);
        self.deps.add_service();
        handle
    }

    /// Start `service` only once `depends_on` is ready.
    ///
    /// # Errors
    ///
    /// When either handle is not from this server, or the dependency would
    /// close a cycle (which would keep both services waiting forever).
    pub fn add_dependency(
        &mut self,
        service: &ServiceHandle,
        depends_on: &ServiceHandle,
    ) -> Result<()> {
        self.deps
            .add(service.index, depends_on.index)
            .map_err(|why| {
                Error::explain(
                    ErrorType::InternalError,
                    format!(
                        "{} cannot depend on {}: {why}",
                        service.name, depends_on.name
                    ),
                )
            })
    }

    /// Run every service until the server is told to stop, then exit the
    /// process: this never returns.
    pub fn run_forever(mut self) -> ! {
        self.bootstrap();
        lifecycle::run(self)
    }
}

/// `-t`: report on the config and exit: 1 when it is invalid or has a key
/// that looks like a misspelt server key, 0 otherwise.
fn test_mode(path: Option<&str>, loaded: Result<(ServerConf, Vec<UnknownKey>)>) -> ! {
    let name = path.unwrap_or("(no config file: defaults)");
    match loaded {
        Ok((conf, unknown)) => {
            for warning in conf.start_up_warnings(&unknown) {
                eprintln!("config {name}: {warning}");
            }
            if unknown.iter().any(UnknownKey::is_likely_typo) {
                eprintln!("config {name} is invalid: a key looks misspelt");
                std::process::exit(1)
            }
            println!("config {name} is valid:\n{}", conf.to_yaml());
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("config {name} is invalid: {e}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ReadyNotifier;
    use crate::services::background::{BackgroundService, background_service};
    use async_trait::async_trait;

    struct Idle;

    #[async_trait]
    impl BackgroundService for Idle {
        async fn start_with_ready(&self, _: ShutdownWatch, _: ReadyNotifier) {}
    }

    #[test]
    fn command_line_overrides_config() {
        let opt = Opt {
            daemon: true,
            ..Opt::default()
        };
        let server = Server::new_with_conf(opt, ServerConf::default());
        assert!(server.configuration().daemon);
        let server = Server::new(None).unwrap();
        assert_eq!(**server.configuration(), ServerConf::default());
    }

    #[test]
    fn missing_config_file_is_named() {
        let opt = Opt {
            conf: Some("/nonexistent/pingora.yaml".into()),
            ..Opt::default()
        };
        let err = Server::new(opt).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/pingora.yaml"),
            "{err}"
        );
    }

    #[test]
    fn dependencies_refuse_cycles() {
        let mut server = Server::new(None).unwrap();
        let a = server.add_service(background_service("a", Idle));
        let b = server.add_service(background_service("b", Idle));
        assert_eq!(b.name(), "b");
        server.add_dependency(&b, &a).unwrap();
        let err = server.add_dependency(&a, &b).unwrap_err();
        assert!(err.to_string().contains("a cannot depend on b"), "{err}");
        let mut other = Server::new(None).unwrap();
        assert!(other.add_dependency(&a, &b).is_err());
    }

    #[test]
    fn bootstrap_without_upgrade_is_a_no_op() {
        let mut server = Server::new(None).unwrap();
        server.try_bootstrap().unwrap();
        server.try_bootstrap().unwrap();
        assert!(server.fds.is_empty());
    }
}
