//! Telling whoever started the server that it is ready: the launching
//! process of `-d`, and systemd (`Type=notify`).
//!
//! systemd's protocol (sd_notify(3)): when `NOTIFY_SOCKET` is set, send
//! newline-separated `KEY=value` assignments in one datagram to that Unix
//! socket; a name starting with `@` is an abstract socket. We send
//! `READY=1` with `MAINPID=` once every service is ready, `RELOADING=1`
//! when a graceful upgrade starts (the new process then sends its own
//! `MAINPID=` and `READY=1`; the old one sends `READY=1` again if the
//! upgrade fails), and `STOPPING=1` when a shutdown starts.

use super::daemon::LaunchPipe;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub(crate) struct Systemd {
    socket: UnixDatagram,
}

impl Systemd {
    /// Connect to the socket `NOTIFY_SOCKET` names; `None` when it is not
    /// set (not started by systemd) or cannot be reached.
    pub(crate) fn from_env() -> Option<Self> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        match Self::connect(name.to_str()?) {
            Ok(systemd) => Some(systemd),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET {name:?}: cannot connect: {e}");
                None
            }
        }
    }

    /// Connect to the notification socket `name`: a path, or an abstract
    /// name after `@`.
    fn connect(name: &str) -> std::io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        match name.strip_prefix('@') {
            Some(abstract_name) => connect_abstract(&socket, abstract_name)?,
            None => socket.connect(name)?,
        }
        // A datagram to systemd never waits long; never hang on it.
        socket.set_write_timeout(Some(Duration::from_secs(1)))?;
        Ok(Self { socket })
    }

    /// Send `state`, such as `"READY=1"`. Failures are logged: systemd
    /// going away must not stop the server.
    fn send(&self, state: &str) {
        if let Err(e) = self.socket.send(state.as_bytes()) {
            log::warn!("cannot notify systemd of {state:?}: {e}");
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn connect_abstract(socket: &UnixDatagram, name: &str) -> std::io::Result<()> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    socket.connect_addr(&addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn connect_abstract(_: &UnixDatagram, _: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// Reports the server's state to the launcher of `-d` and to systemd.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    launcher: Option<LaunchPipe>,
    systemd: Option<Systemd>,
    ready: bool,
}

impl Readiness {
    /// Report to `launcher` (in daemon mode) and to systemd when
    /// `NOTIFY_SOCKET` is set.
    pub(crate) fn new(launcher: Option<LaunchPipe>) -> Self {
        Self {
            launcher,
            systemd: Systemd::from_env(),
            ready: false,
        }
    }

    /// Every service is ready: the launcher exits 0, systemd marks the
    /// service started.
    pub(crate) fn ready(&mut self) {
        log::info!("all services ready");
        self.ready = true;
        if let Some(launcher) = self.launcher.take() {
            launcher.ready();
        }
        if let Some(systemd) = &self.systemd {
            systemd.send(&format!("READY=1\nMAINPID={}", std::process::id()));
        }
    }

    /// The server failed to start: the launcher prints `why` and exits 1.
    /// Once ready, this does nothing: the exit status tells the rest.
    pub(crate) fn failed(&mut self, why: &str) {
        if self.ready {
            return;
        }
        if let Some(launcher) = self.launcher.take() {
            launcher.failed(why);
        }
        if let Some(systemd) = &self.systemd {
            systemd.send(&format!("STATUS=failed: {}", why.replace('\n', " ")));
        }
    }

    /// A graceful upgrade starts: the new process will report ready.
    pub(crate) fn reloading(&self) {
        if let Some(systemd) = &self.systemd {
            systemd.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        }
    }

    /// The upgrade failed: we are still the one serving.
    pub(crate) fn still_serving(&self) {
        if let Some(systemd) = &self.systemd {
            systemd.send(&format!("READY=1\nMAINPID={}", std::process::id()));
        }
    }

    /// A shutdown starts.
    pub(crate) fn stopping(&self) {
        if let Some(systemd) = &self.systemd {
            systemd.send("STOPPING=1");
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, which `RELOADING=1` carries so that
/// systemd can tell this reload from an older one.
fn monotonic_usec() -> u128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| Duration::from(t).as_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("pingora-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let systemd = Systemd::connect(path.to_str().unwrap()).unwrap();
        let mut readiness = Readiness {
            launcher: None,
            systemd: Some(systemd),
            ready: false,
        };
        readiness.ready();
        let pid = std::process::id();
        assert_eq!(receive(&listener), format!("READY=1\nMAINPID={pid}"));
        readiness.reloading();
        assert!(receive(&listener).starts_with("RELOADING=1\nMONOTONIC_USEC="));
        readiness.stopping();
        assert_eq!(receive(&listener), "STOPPING=1");
        std::fs::remove_dir_all(&dir).unwrap();

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("pingora-notify-{pid}");
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
            let listener = UnixDatagram::bind_addr(&addr).unwrap();
            listener
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            Systemd::connect(&format!("@{name}"))
                .unwrap()
                .send("READY=1");
            assert_eq!(receive(&listener), "READY=1");
        }
        assert!(Systemd::connect("/nonexistent/notify.sock").is_err());
    }
}
