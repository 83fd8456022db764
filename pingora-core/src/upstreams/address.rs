//! What [`HttpPeer::new`](super::HttpPeer::new) accepts as an address:
//! [`ToPeerAddress`].

use crate::protocols::SocketAddr;
use pingora_error::{Error, ErrorType, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};

/// The kind of error for an address a peer cannot be built from: not
/// `ip:port`, a name that does not resolve, or no port. Not retryable:
/// the address is wrong, not the network.
pub const INVALID_PEER_ADDRESS: ErrorType = ErrorType::new("InvalidPeerAddress");

/// An address a peer can be built from: the forms Pingora programs pass to
/// `HttpPeer::new`.
///
/// - `std::net::SocketAddr` (and its V4/V6 forms) and this crate's
///   [`SocketAddr`]: taken as they are;
/// - `(ip, port)` with an [`IpAddr`], [`Ipv4Addr`] or [`Ipv6Addr`]: taken
///   as they are;
/// - `"ip:port"` or `"[ipv6]:port"` strings (`&str`, `String`): parsed;
/// - `"host:port"` strings and `(&str, port)` / `(String, port)` pairs
///   whose host is a name: resolved with the system resolver, first
///   address wins. Resolving **blocks** the calling thread; resolve names
///   once at start-up (with [`HttpPeer::try_new`](super::HttpPeer::try_new))
///   rather than on every request;
/// - a load balancer's `Backend` (implemented in `pingora-load-balancing`).
///
/// # Examples
///
/// ```
/// use pingora_core::upstreams::ToPeerAddress;
///
/// assert!("127.0.0.1:80".to_peer_address().is_ok());
/// assert!(("127.0.0.1", 80).to_peer_address().is_ok());
/// assert!("no port".to_peer_address().is_err());
/// ```
pub trait ToPeerAddress {
    /// The address to connect to.
    ///
    /// # Errors
    ///
    /// [`INVALID_PEER_ADDRESS`] when this is not an address (or a name
    /// that resolves to one).
    fn to_peer_address(&self) -> Result<SocketAddr>;
}

impl<T: ToPeerAddress + ?Sized> ToPeerAddress for &T {
    fn to_peer_address(&self) -> Result<SocketAddr> {
        (**self).to_peer_address()
    }
}

impl ToPeerAddress for SocketAddr {
    fn to_peer_address(&self) -> Result<SocketAddr> {
        Ok(self.clone())
    }
}

/// Types that are an inet address already.
macro_rules! inet {
    ($($ty:ty),*) => {$(
        impl ToPeerAddress for $ty {
            fn to_peer_address(&self) -> Result<SocketAddr> {
                Ok(SocketAddr::Inet((*self).into()))
            }
        }
    )*};
}

inet!(
    std::net::SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToPeerAddress for str {
    fn to_peer_address(&self) -> Result<SocketAddr> {
        if let Ok(inet) = self.parse::<std::net::SocketAddr>() {
            return Ok(SocketAddr::Inet(inet));
        }
        resolve(self, self.to_socket_addrs())
    }
}

impl ToPeerAddress for String {
    fn to_peer_address(&self) -> Result<SocketAddr> {
        self.as_str().to_peer_address()
    }
}

impl ToPeerAddress for (&str, u16) {
    fn to_peer_address(&self) -> Result<SocketAddr> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::Inet((ip, port).into()));
        }
        resolve(&format!("{host}:{port}"), (host, port).to_socket_addrs())
    }
}

impl ToPeerAddress for (String, u16) {
    fn to_peer_address(&self) -> Result<SocketAddr> {
        (self.0.as_str(), self.1).to_peer_address()
    }
}

/// The first address a name resolved to.
fn resolve(
    shown: &str,
    resolved: std::io::Result<impl Iterator<Item = std::net::SocketAddr>>,
) -> Result<SocketAddr> {
    match resolved {
        Ok(mut addrs) => addrs.next().map(SocketAddr::Inet).ok_or_else(|| {
            Error::explain(
                INVALID_PEER_ADDRESS,
                format!("peer address {shown:?} resolves to nothing"),
            )
        }),
        Err(e) => Err(Error::because(
            INVALID_PEER_ADDRESS,
            format!("peer address {shown:?} is not host:port or does not resolve"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(s: &str) -> SocketAddr {
        SocketAddr::Inet(s.parse().unwrap())
    }

    #[test]
    fn every_literal_form() {
        let want = inet("127.0.0.1:8080");
        let std_addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let ip: IpAddr = [127, 0, 0, 1].into();
        for got in [
            "127.0.0.1:8080".to_peer_address(),
            String::from("127.0.0.1:8080").to_peer_address(),
            ("127.0.0.1", 8080).to_peer_address(),
            (String::from("127.0.0.1"), 8080).to_peer_address(),
            std_addr.to_peer_address(),
            (ip, 8080).to_peer_address(),
            (Ipv4Addr::LOCALHOST, 8080).to_peer_address(),
            want.to_peer_address(),
        ] {
            assert_eq!(got.unwrap(), want);
        }
        assert_eq!(("::1", 443).to_peer_address().unwrap(), inet("[::1]:443"));
    }

    #[test]
    fn names_resolve() {
        let addr = "localhost:80".to_peer_address().unwrap();
        assert_eq!(addr.as_inet().map(std::net::SocketAddr::port), Some(80));
    }

    #[test]
    fn bad_addresses_are_errors() {
        for bad in ["", "127.0.0.1", "127.0.0.1:http", "a b:80", "1.2.3.4:99999"] {
            let e = bad.to_peer_address().unwrap_err();
            assert_eq!(e.etype, INVALID_PEER_ADDRESS, "{bad:?}");
        }
    }
}
