//! Binding UDP sockets, or taking them over from the previous process
//! through [`ListenFds`] under the key `udp://ADDR`.

use crate::server::ListenFds;
use pingora_error::{ErrorType, OkOrErr, OrErr, Result};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::ToSocketAddrs;
use std::os::fd::OwnedFd;

/// Options of a UDP socket a [`UdpService`](super::UdpService) binds.
///
/// A socket taken over from the previous process on a graceful upgrade
/// keeps the options that process bound it with.
///
/// # Examples
///
/// ```
/// use pingora_core::services::udp::UdpSocketOptions;
///
/// let mut options = UdpSocketOptions::default();
/// options.recv_buffer = Some(4 << 20);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpSocketOptions {
    /// `SO_RCVBUF` in bytes: how many datagrams the kernel queues while
    /// the service is busy. `None` keeps the system default.
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF` in bytes. `None` keeps the system default.
    pub send_buffer: Option<usize>,
    /// `IPV6_V6ONLY` for an IPv6 address; `None` keeps the system default.
    pub ipv6_only: Option<bool>,
}

/// The key of the socket for `addr` in the [`ListenFds`] table: distinct
/// from the `tcp://` key of a TCP listener on the same address.
pub(super) fn key(addr: &str) -> String {
    format!("udp://{addr}")
}

/// Take the socket for `addr` from `fds` if the previous process passed it
/// on, else bind it; register it in `fds` either way.
///
/// Must run inside a tokio runtime.
pub(super) fn bind_or_take(
    addr: &str,
    options: &UdpSocketOptions,
    fds: &ListenFds,
) -> Result<tokio::net::UdpSocket> {
    let key = key(addr);
    let fd = match fds.dup(&key) {
        Some(fd) => {
            log::info!("taking over UDP socket {key}");
            fd.or_err_with(ErrorType::SocketError, || {
                format!("cannot dup socket {key}")
            })?
        }
        None => {
            let fd = bind(addr, options)?;
            let kept = fd.try_clone().or_err_with(ErrorType::SocketError, || {
                format!("cannot dup socket {key}")
            })?;
            fds.insert(key, kept);
            fd
        }
    };
    let std = std::net::UdpSocket::from(fd);
    std.set_nonblocking(true)
        .or_err(ErrorType::SocketError, "cannot set UDP socket non-blocking")?;
    tokio::net::UdpSocket::from_std(std)
        .or_err(ErrorType::SocketError, "cannot register UDP socket")
}

/// Forget (and close our handle on) the socket for `addr` in `fds`.
pub(super) fn forget(addr: &str, fds: &ListenFds) {
    fds.remove(&key(addr));
}

fn bind(addr: &str, options: &UdpSocketOptions) -> Result<OwnedFd> {
    let sockaddr = addr
        .to_socket_addrs()
        .or_err_with(ErrorType::BindError, || {
            format!("invalid UDP address {addr}")
        })?
        .next()
        .or_err_with(ErrorType::BindError, || {
            format!("{addr} resolves to no address")
        })?;
    let fail = |what: &str| format!("udp {addr}: cannot {what}");
    let socket = Socket::new(
        Domain::for_address(sockaddr),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .or_err_with(ErrorType::SocketError, || fail("create socket"))?;
    if let Some(size) = options.recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .or_err_with(ErrorType::SocketError, || fail("set SO_RCVBUF"))?;
    }
    if let Some(size) = options.send_buffer {
        socket
            .set_send_buffer_size(size)
            .or_err_with(ErrorType::SocketError, || fail("set SO_SNDBUF"))?;
    }
    if let (Some(only), true) = (options.ipv6_only, sockaddr.is_ipv6()) {
        socket
            .set_only_v6(only)
            .or_err_with(ErrorType::SocketError, || fail("set IPV6_V6ONLY"))?;
    }
    socket
        .bind(&sockaddr.into())
        .or_err_with(ErrorType::BindError, || fail("bind"))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_registers_and_takes_over() {
        let fds = ListenFds::new();
        let options = UdpSocketOptions {
            recv_buffer: Some(1 << 20),
            ..Default::default()
        };
        let first = bind_or_take("127.0.0.1:0", &options, &fds).unwrap();
        assert_eq!(fds.len(), 1);
        // The same configured address finds the registered socket instead
        // of binding a new port: what a new process does on an upgrade.
        let second = bind_or_take("127.0.0.1:0", &options, &fds).unwrap();
        assert_eq!(first.local_addr().unwrap(), second.local_addr().unwrap());
        // A datagram sent to the address reaches either handle.
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client
            .send_to(b"x", first.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 4];
        let (n, _) = second.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"x");
        forget("127.0.0.1:0", &fds);
        assert!(fds.is_empty());
    }

    #[test]
    fn bad_address_is_named() {
        let err = bind("not an address", &UdpSocketOptions::default()).unwrap_err();
        assert!(err.to_string().contains("not an address"), "{err}");
        assert_eq!(key("0.0.0.0:53"), "udp://0.0.0.0:53");
    }
}
