//! Where a listening service accepts connections: TCP addresses (IPv4 or
//! IPv6, with socket options) and Unix domain socket paths.
//!
//! # Examples
//!
//! ```
//! use pingora_core::listeners::{Listeners, TcpSocketOptions};
//!
//! let mut listeners = Listeners::tcp("127.0.0.1:6188");
//! let mut options = TcpSocketOptions::default();
//! assert!(options.nodelay, "TCP_NODELAY is on by default");
//! options.ipv6_only = Some(true);
//! options.reuseport = true;
//! listeners.add_tcp_with_settings("[::1]:6188", options);
//! listeners.add_uds("/tmp/echo.sock", Some(0o600));
//! assert_eq!(listeners.len(), 3);
//! ```

mod backoff;
mod cidr;
mod connection_filter;
mod l4;
pub(crate) mod proxy_protocol;

/// The TLS settings of a listener, under the path Pingora programs import
/// them from (`listeners::tls::TlsSettings`); defined in [`crate::tls`].
pub mod tls {
    pub use crate::tls::{TlsAcceptor, TlsSettings};
}

pub(crate) use backoff::AcceptBackoff;
pub use cidr::{Cidr, CidrParseError};
pub use connection_filter::{AcceptAllFilter, ConnectionFilter};
pub(crate) use l4::Listener;
pub use proxy_protocol::{DEFAULT_PROXY_HEADER_TIMEOUT, ProxyProtocolSettings};

use crate::protocols::l4::TcpKeepalive;
use crate::server::ListenFds;
use pingora_error::Result;

/// Options for a TCP listening socket and the connections it accepts.
///
/// The default turns `TCP_NODELAY` on and leaves everything else to the
/// system.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpSocketOptions {
    /// Length of the queue of connections waiting to be accepted (the kernel
    /// caps it at `net.core.somaxconn`). `None`: 65535.
    pub backlog: Option<u32>,
    /// `SO_REUSEPORT`: let other sockets bind the same address, the kernel
    /// spreading connections among them.
    pub reuseport: bool,
    /// `TCP_NODELAY` on every accepted connection: send small writes at
    /// once. Default `true`.
    ///
    /// An HTTP response goes out as a head and then body pieces. With
    /// Nagle's algorithm a small piece waits until the peer acknowledges
    /// the previous one, and a peer that delays its ACKs holds it back for
    /// up to 40 ms per response on a kept-alive connection. Turn it off
    /// only for a protocol that writes many tiny pieces and prefers fewer
    /// packets to latency.
    pub nodelay: bool,
    /// TCP keepalive probes on every accepted connection.
    pub keepalive: Option<TcpKeepalive>,
    /// `TCP_FASTOPEN` with this queue length: accept data in the SYN.
    pub fastopen: Option<u32>,
    /// `IPV6_V6ONLY` for an IPv6 address: `Some(true)` accepts IPv6 only,
    /// `Some(false)` IPv4 too, `None` leaves the system default.
    pub ipv6_only: Option<bool>,
}

impl Default for TcpSocketOptions {
    fn default() -> Self {
        Self {
            backlog: None,
            reuseport: false,
            nodelay: true,
            keepalive: None,
            fastopen: None,
            ipv6_only: None,
        }
    }
}

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerAddress {
    /// A TCP address such as `127.0.0.1:80` or `[::]:443`, with options.
    Tcp(String, TcpSocketOptions),
    /// A Unix domain socket path, with the file mode to give it (such as
    /// `0o660`); `None` leaves the mode the umask gives.
    Uds(String, Option<u32>),
}

impl ServerAddress {
    /// The key under which the socket is passed to a new process on upgrade:
    /// the same configuration finds the same socket.
    pub(crate) fn key(&self) -> String {
        match self {
            Self::Tcp(addr, _) => format!("tcp://{addr}"),
            Self::Uds(path, _) => format!("unix://{path}"),
        }
    }
}

/// The addresses a listening service accepts connections on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listeners {
    addresses: Vec<ServerAddress>,
}

impl Listeners {
    /// No address yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listen on one TCP address with default options.
    pub fn tcp(addr: &str) -> Self {
        let mut listeners = Self::new();
        listeners.add_tcp(addr);
        listeners
    }

    /// Listen on one Unix domain socket path.
    pub fn uds(path: &str, mode: Option<u32>) -> Self {
        let mut listeners = Self::new();
        listeners.add_uds(path, mode);
        listeners
    }

    /// Add a TCP address with default options.
    pub fn add_tcp(&mut self, addr: &str) {
        self.add_tcp_with_settings(addr, TcpSocketOptions::default());
    }

    /// Add a TCP address with `options`.
    pub fn add_tcp_with_settings(&mut self, addr: &str, options: TcpSocketOptions) {
        self.add_address(ServerAddress::Tcp(addr.to_string(), options));
    }

    /// Add a Unix domain socket path; `mode` is the file mode (such as
    /// `0o660`) to give the socket file.
    pub fn add_uds(&mut self, path: &str, mode: Option<u32>) {
        self.add_address(ServerAddress::Uds(path.to_string(), mode));
    }

    /// Add an address.
    pub fn add_address(&mut self, addr: ServerAddress) {
        self.addresses.push(addr);
    }

    /// The addresses, in the order they were added.
    pub fn addresses(&self) -> &[ServerAddress] {
        &self.addresses
    }

    /// How many addresses there are.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Whether there is no address.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Bind every address, or take its socket from `fds` when the previous
    /// process passed it on (graceful upgrade). Each socket is registered in
    /// `fds` for the next upgrade.
    pub(crate) fn build(&self, fds: &ListenFds) -> Result<Vec<Listener>> {
        self.addresses
            .iter()
            .map(|addr| Listener::bind_or_take(addr, fds))
            .collect()
    }
}
