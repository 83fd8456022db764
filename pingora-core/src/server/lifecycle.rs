//! Running the services and reacting to signals: the life of a server
//! process from `run_forever` to exit.

use super::daemon::LaunchPipe;
use super::notify::Readiness;
use super::runtime::ServiceRuntime;
use super::{Server, ServerConf, UPGRADE_SEND_TIMEOUT, daemon, limits, logs, pidfile, upgrade};
use crate::server::ListenFds;
use crate::services::{ReadyNotifier, ReadyWatch, Service, ServiceContext};
use pingora_error::{Error, ErrorType, Result};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};

/// How often the server names a service it is still waiting for.
const NOT_READY_REPORT: Duration = Duration::from_secs(10);

/// A service thread's report: the service's index and name, and how it
/// ended.
type Done = (usize, String, Result<()>);

/// Run `server` and exit the process with its status.
pub(super) fn run(server: Server) -> ! {
    let conf = Arc::clone(&server.configuration);
    limits::raise_nofile();
    let launcher = if conf.daemon {
        Some(start_daemon(&conf, server.opt.upgrade))
    } else {
        None
    };
    let mut readiness = Readiness::new(launcher);
    if let Some(dir) = &conf.work_dir
        && let Err(e) = std::env::set_current_dir(dir)
    {
        let why = format!("cannot change to work_dir {dir}: {e}");
        log::error!("{why}");
        readiness.failed(&why);
        std::process::exit(1);
    }
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(supervise(server, &mut readiness)),
        Err(e) => {
            let why = format!("cannot build the main runtime: {e}");
            log::error!("{why}");
            readiness.failed(&why);
            1
        }
    };
    if conf.daemon {
        pidfile::remove_if_ours(Path::new(&conf.pid_file));
    }
    log::info!("exiting with status {code}");
    std::process::exit(code)
}

/// Fork the daemon off; in the daemon, returns the pipe to report
/// readiness on. The launching process exits in here.
fn start_daemon(conf: &ServerConf, upgrading: bool) -> LaunchPipe {
    // Only the forking thread survives a fork, so no runtime exists
    // yet. The fast timers' thread may, if the program armed a timer
    // before `run_forever` (a health check at startup, say): its locks
    // are held across the fork and the daemon starts its own thread.
    let lost = daemon::threads_lost_in_fork();
    if !lost.is_empty() {
        // Said before the fork, where whoever started the server sees it.
        log::warn!(
            "daemonizing with {} other thread(s) running ({}): they do not \
             survive the fork; start them from services instead",
            lost.len(),
            lost.join(", ")
        );
    }
    let timers = pingora_timeout::fast::prepare_fork();
    match daemon::daemonize(conf, upgrading) {
        Ok(launcher) => {
            timers.in_child();
            launcher
        }
        Err(e) => {
            drop(timers);
            log::error!("{e}");
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// The signals a server reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: graceful shutdown.
    Graceful,
    /// SIGINT: fast shutdown.
    Fast,
    /// SIGQUIT: graceful upgrade.
    Upgrade,
}

struct Signals {
    term: Signal,
    int: Signal,
    quit: Signal,
    usr1: Signal,
    /// The error log SIGUSR1 reopens: a daemon's `error_log`.
    error_log: Option<String>,
}

impl Signals {
    fn new(conf: &ServerConf) -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
            error_log: conf.error_log.clone().filter(|_| conf.daemon),
        })
    }

    /// The next stop signal. SIGUSR1 is handled in here: it reopens the
    /// error log.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a signal is only consumed when returned or handled.
    async fn recv(&mut self) -> Stop {
        loop {
            tokio::select! {
                _ = self.term.recv() => return Stop::Graceful,
                _ = self.int.recv() => return Stop::Fast,
                _ = self.quit.recv() => return Stop::Upgrade,
                _ = self.usr1.recv() => self.reopen_error_log(),
            }
        }
    }

    fn reopen_error_log(&self) {
        let Some(path) = &self.error_log else {
            log::info!("SIGUSR1: no error log to reopen (only a daemon writes one)");
            return;
        };
        match logs::reopen_error_log(path) {
            Ok(()) => log::info!("SIGUSR1: reopened error log {path}"),
            Err(e) => log::error!("SIGUSR1: {e}; still writing to the old file"),
        }
    }

    /// Run `work`, unless SIGINT comes first (`None`). Other signals are
    /// ignored: a shutdown is already under way.
    async fn unless_interrupted<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Some(out),
                stop = self.recv() => {
                    if stop == Stop::Fast {
                        log::info!("SIGINT during shutdown: exiting now");
                        return None;
                    }
                    log::info!("{stop:?} ignored: already shutting down");
                }
            }
        }
    }
}

/// Start the services and handle signals until it is time to exit; returns
/// the exit status.
async fn supervise(server: Server, readiness: &mut Readiness) -> i32 {
    let conf = Arc::clone(&server.configuration);
    // Registered before any service starts, so that an early SIGTERM is
    // handled instead of killing the process.
    let Some(mut signals) = register_signals(&conf, readiness) else {
        return 1;
    };
    log::info!("server starting, pid {}", std::process::id());
    let fds = server.fds.clone();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (draining_tx, draining_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let names: Vec<String> = server
        .services
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    let stop = ShutdownSteps {
        draining: draining_rx,
        shutdown: shutdown_rx,
    };
    let watches = start_services(server, &stop, &done_tx);
    drop(done_tx);
    let mut running = watches.len();
    let mut startup = Startup::new(watches.len());
    let mut all_ready = wait_for_readiness(watches, names, fds.clone());

    loop {
        tokio::select! {
            stop = signals.recv() => match stop {
                Stop::Fast => {
                    log::info!("SIGINT: fast shutdown");
                    readiness.failed("stopped by SIGINT while starting");
                    readiness.stopping();
                    return 0;
                }
                Stop::Graceful => {
                    log::info!("SIGTERM: graceful shutdown");
                    readiness.failed("stopped by SIGTERM while starting");
                    readiness.stopping();
                    break;
                }
                Stop::Upgrade => {
                    if hand_over(&fds, &conf, readiness).await {
                        break;
                    }
                }
            },
            not_notified = &mut all_ready, if !startup.all_ready => {
                startup.all_ready = true;
                // Only a panic in the waiting task loses the list.
                startup.waiting_for = not_notified.unwrap_or_default();
                if startup.complete() {
                    readiness.ready();
                }
            }
            Some((index, name, result)) = done_rx.recv() => {
                running -= 1;
                if let Err(e) = result {
                    let why = format!("service {name} failed: {e}");
                    log::error!("{why}");
                    eprintln!("{why}");
                    readiness.failed(&why);
                    return 1;
                }
                log::info!("service {name} finished");
                startup.finished[index] = true;
                if startup.complete() {
                    readiness.ready();
                }
            }
        }
    }
    let senders = (&draining_tx, &shutdown_tx);
    graceful_shutdown(&conf, &mut signals, senders, &mut done_rx, running).await
}

/// The signal handlers, or `None` (said to whoever waits for readiness)
/// when they cannot be registered.
fn register_signals(conf: &ServerConf, readiness: &mut Readiness) -> Option<Signals> {
    match Signals::new(conf) {
        Ok(signals) => Some(signals),
        Err(e) => {
            let why = format!("cannot register signal handlers: {e}");
            log::error!("{why}");
            readiness.failed(&why);
            None
        }
    }
}

/// SIGQUIT: hand the listening sockets to the new process. `true` when
/// it took them and this process should shut down gracefully; on failure
/// this process keeps serving.
async fn hand_over(fds: &ListenFds, conf: &ServerConf, readiness: &mut Readiness) -> bool {
    readiness.reloading();
    match send_sockets(fds, conf).await {
        Ok(()) => {
            log::info!("SIGQUIT: sockets handed over, graceful shutdown");
            // The new process writes its pid into the file.
            pidfile::release();
            true
        }
        Err(e) => {
            log::error!("SIGQUIT: upgrade failed, still serving: {e}");
            readiness.still_serving();
            false
        }
    }
}

/// Wait, on a task of its own, until every service is ready or gone; the
/// receiver then gets the indices of those that ended without saying they
/// were ready. Then close the passed-on sockets no listener took.
fn wait_for_readiness(
    watches: Vec<ReadyWatch>,
    names: Vec<String>,
    fds: ListenFds,
) -> oneshot::Receiver<Vec<usize>> {
    let (all_ready_tx, all_ready) = oneshot::channel();
    tokio::spawn(async move {
        let mut not_notified = Vec::new();
        for (index, (mut watch, name)) in watches.into_iter().zip(names).enumerate() {
            // A service that holds its notifier without calling it keeps
            // the server from being ready: say which one, now and then.
            while tokio::time::timeout(NOT_READY_REPORT, watch.wait())
                .await
                .is_err()
            {
                log::warn!("still waiting for service {name} to be ready");
            }
            if !watch.notified() {
                not_notified.push(index);
            }
        }
        let _ = all_ready_tx.send(not_notified);
        // Sockets the previous process passed on that no listener of ours
        // took: close them, or they would queue connections nobody accepts.
        fds.close_unclaimed();
    });
    all_ready
}

/// Whether every service has started: said it is ready, or ended well
/// without saying so. A service that ends without a word may have failed
/// to start, so its report is awaited before the server counts as ready.
struct Startup {
    all_ready: bool,
    /// The services that ended without saying they were ready.
    waiting_for: Vec<usize>,
    /// The services that ended well, by index.
    finished: Vec<bool>,
    reported: bool,
}

impl Startup {
    fn new(services: usize) -> Self {
        Self {
            all_ready: false,
            waiting_for: Vec::new(),
            finished: vec![false; services],
            reported: false,
        }
    }

    /// `true` once, when the server has just become ready.
    fn complete(&mut self) -> bool {
        let done =
            self.all_ready && !self.reported && self.waiting_for.iter().all(|&i| self.finished[i]);
        self.reported |= done;
        done
    }
}

/// Tell the services to drain their connections, keep accepting for the
/// grace period, tell them to stop, and wait for them to finish for up to
/// the graceful shutdown timeout.
async fn graceful_shutdown(
    conf: &ServerConf,
    signals: &mut Signals,
    (draining_tx, shutdown_tx): (&watch::Sender<bool>, &watch::Sender<bool>),
    done_rx: &mut mpsc::UnboundedReceiver<Done>,
    mut running: usize,
) -> i32 {
    // From the signal on, HTTP/1 responses announce the close and HTTP/2
    // connections get GOAWAY, so that clients move to new connections
    // (to the new process after an upgrade) while this one still accepts
    // them; idle connections are closed without losing a request.
    draining_tx.send_replace(true);
    let grace = Duration::from_secs(conf.grace_period_seconds);
    log::info!("grace period: serving for {}s more", grace.as_secs());
    if signals
        .unless_interrupted(tokio::time::sleep(grace))
        .await
        .is_none()
    {
        return 0;
    }
    log::info!("stopping services");
    shutdown_tx.send_replace(true);
    let drain = async {
        while running > 0 {
            match done_rx.recv().await {
                Some((_, name, Err(e))) => log::warn!("service {name} ended with: {e}"),
                Some((_, name, Ok(()))) => log::info!("service {name} stopped"),
                None => break,
            }
            running -= 1;
        }
    };
    let limit = Duration::from_secs(conf.graceful_shutdown_timeout_seconds);
    match signals
        .unless_interrupted(tokio::time::timeout(limit, drain))
        .await
    {
        Some(Ok(())) => log::info!("all services stopped"),
        Some(Err(_)) => log::warn!("gave up waiting for services after {}s", limit.as_secs()),
        None => {}
    }
    0
}

/// Pass every listening socket to the new process waiting on `path`.
async fn send_sockets(fds: &ListenFds, conf: &ServerConf) -> Result<()> {
    let fds = fds.clone();
    let path = conf.upgrade_sock.clone();
    let trusted = upgrade::TrustedPeers::new(conf.user.as_deref())?;
    let sending = tokio::task::spawn_blocking(move || {
        let all = fds.dup_all().map_err(|e| {
            Error::because(ErrorType::SocketError, "cannot dup listening sockets", e)
        })?;
        upgrade::send_fds(Path::new(&path), &all, &trusted, UPGRADE_SEND_TIMEOUT)
    });
    sending
        .await
        .map_err(|e| Error::because(ErrorType::InternalError, "upgrade task failed", e))?
}

/// Start each service on its own thread and runtime; returns a readiness
/// watch per service.
fn start_services(
    server: Server,
    stop: &ShutdownSteps,
    done: &mpsc::UnboundedSender<Done>,
) -> Vec<ReadyWatch> {
    let Server {
        services,
        deps,
        fds,
        configuration: conf,
        ..
    } = server;
    let (mut notifiers, watches): (Vec<_>, Vec<_>) =
        services.iter().map(|_| ReadyNotifier::new()).unzip();
    for (index, service) in services.into_iter().enumerate().rev() {
        let waits_for = deps.of(index).iter().map(|&i| watches[i].clone()).collect();
        let Some(ready) = notifiers.pop() else { break };
        let start = ServiceStart {
            index,
            service,
            fds: fds.clone(),
            stop: stop.clone(),
            ready,
            waits_for,
            conf: Arc::clone(&conf),
            done: done.clone(),
        };
        let name = start.service.name().to_string();
        if let Err(e) = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || start.run())
        {
            let error = Error::because(ErrorType::InternalError, "cannot start service thread", e);
            let _ = done.send((index, name, Err(error)));
        }
    }
    watches
}

/// The two steps of a graceful shutdown, as the services see them.
#[derive(Clone)]
struct ShutdownSteps {
    /// Turns `true` at the shutdown signal: drain connections.
    draining: watch::Receiver<bool>,
    /// Turns `true` after the grace period: stop accepting, finish.
    shutdown: watch::Receiver<bool>,
}

/// Everything one service thread needs.
struct ServiceStart {
    index: usize,
    service: Box<dyn Service>,
    fds: ListenFds,
    stop: ShutdownSteps,
    ready: ReadyNotifier,
    waits_for: Vec<ReadyWatch>,
    conf: Arc<ServerConf>,
    done: mpsc::UnboundedSender<Done>,
}

impl ServiceStart {
    /// The body of a service thread: build the runtime, wait for the
    /// dependencies, run the service, report how it ended.
    fn run(self) {
        let Self {
            index,
            mut service,
            fds,
            stop:
                ShutdownSteps {
                    draining,
                    mut shutdown,
                },
            ready,
            waits_for,
            conf,
            done,
        } = self;
        let name = service.name().to_string();
        let threads = service.threads().unwrap_or(conf.threads);
        let result = match ServiceRuntime::new(&name, threads, conf.work_stealing) {
            Ok(rt) => {
                let ctx = ServiceContext {
                    fds,
                    shutdown: shutdown.clone(),
                    draining,
                    ready,
                    listener_tasks_per_fd: conf.listener_tasks_per_fd,
                    spawner: rt.spawner(),
                };
                let run = async move {
                    for mut dependency in waits_for {
                        tokio::select! {
                            () = dependency.wait() => {}
                            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                        }
                    }
                    log::info!("starting service {}", service.name());
                    service.start_service(ctx).await
                };
                // A panicking service is reported like a failed one rather
                // than leaving the server waiting for it.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(run)))
                    .unwrap_or_else(|_| {
                        Error::e_explain(ErrorType::InternalError, "service panicked")
                    })
            }
            Err(e) => Err(Error::because(
                ErrorType::InternalError,
                "cannot build runtime",
                e,
            )),
        };
        let _ = done.send((index, name, result));
    }
}
