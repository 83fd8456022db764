//! Running the services and reacting to signals: the life of a server
//! process from `run_forever` to exit.

use super::runtime::ServiceRuntime;
use super::{Server, ServerConf, UPGRADE_SEND_TIMEOUT, daemon, upgrade};
use crate::server::ListenFds;
use crate::services::{ReadyNotifier, ReadyWatch, Service, ServiceContext};
use pingora_error::{Error, ErrorType, Result};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};

/// A service thread's report: the service's name and how it ended.
type Done = (String, Result<()>);

/// Run `server` and exit the process with its status.
pub(super) fn run(server: Server) -> ! {
    let conf = Arc::clone(&server.configuration);
    if conf.daemon {
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
        match daemon::daemonize(&conf) {
            Ok(()) => timers.in_child(),
            Err(e) => {
                drop(timers);
                log::error!("{e}");
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(supervise(server)),
        Err(e) => {
            log::error!("cannot build the main runtime: {e}");
            1
        }
    };
    if conf.daemon {
        daemon::remove_pid_file(Path::new(&conf.pid_file));
    }
    log::info!("exiting with status {code}");
    std::process::exit(code)
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
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// # Cancel safety
    ///
    /// Cancel safe: a signal is only consumed when returned.
    async fn recv(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Graceful,
            _ = self.int.recv() => Stop::Fast,
            _ = self.quit.recv() => Stop::Upgrade,
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
async fn supervise(server: Server) -> i32 {
    let conf = Arc::clone(&server.configuration);
    // Registered before any service starts, so that an early SIGTERM is
    // handled instead of killing the process.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot register signal handlers: {e}");
            return 1;
        }
    };
    log::info!("server starting, pid {}", std::process::id());
    let fds = server.fds.clone();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (draining_tx, draining_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let stop = ShutdownSteps {
        draining: draining_rx,
        shutdown: shutdown_rx,
    };
    let ready = start_services(server, &stop, &done_tx);
    drop(done_tx);
    let mut running = ready.len();
    let unclaimed = fds.clone();
    tokio::spawn(async move {
        for mut service in ready {
            service.wait().await;
        }
        // Sockets the previous process passed on that no listener of ours
        // took: close them, or they would queue connections nobody accepts.
        unclaimed.close_unclaimed();
    });

    loop {
        tokio::select! {
            stop = signals.recv() => match stop {
                Stop::Fast => {
                    log::info!("SIGINT: fast shutdown");
                    return 0;
                }
                Stop::Graceful => {
                    log::info!("SIGTERM: graceful shutdown");
                    break;
                }
                Stop::Upgrade => match send_sockets(&fds, &conf).await {
                    Ok(()) => {
                        log::info!("SIGQUIT: sockets handed over, graceful shutdown");
                        break;
                    }
                    Err(e) => log::error!("SIGQUIT: upgrade failed, still serving: {e}"),
                },
            },
            Some((name, result)) = done_rx.recv() => {
                running -= 1;
                if let Err(e) = result {
                    log::error!("service {name} failed: {e}");
                    eprintln!("service {name} failed: {e}");
                    return 1;
                }
                log::info!("service {name} finished");
            }
        }
    }
    let senders = (&draining_tx, &shutdown_tx);
    graceful_shutdown(&conf, &mut signals, senders, &mut done_rx, running).await
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
                Some((name, Err(e))) => log::warn!("service {name} ended with: {e}"),
                Some((name, Ok(()))) => log::info!("service {name} stopped"),
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
            let _ = done.send((name, Err(error)));
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
        let _ = done.send((name, result));
    }
}
