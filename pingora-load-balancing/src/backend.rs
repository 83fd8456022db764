//! [`Backend`]: one server a load balancer can pick.

use crate::health_check::HealthFlag;
use pingora_core::protocols::SocketAddr;
use pingora_error::{Error, ErrorType, Result};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

/// The error kind for a backend address that cannot be parsed or resolved.
pub const INVALID_BACKEND: ErrorType = ErrorType::new("InvalidBackend");

/// One server a load balancer can pick: its address, weight and user data.
///
/// Two backends are the same backend when their address and weight are
/// equal; [`ext`](Self::ext) does not take part in comparisons, so user data
/// can change without the load balancer seeing a new set.
///
/// Build one with [`Backend::new`] or [`Backend::from_addr`]; a backend
/// handed out by a load balancer also carries a private link to its health
/// entry.
///
/// # Examples
///
/// ```
/// use pingora_load_balancing::Backend;
///
/// let mut backend = Backend::new("127.0.0.1:8080").unwrap();
/// backend.weight = 3;
/// backend.ext.insert(String::from("origin.example"));
/// assert_eq!(backend.ext.get::<String>().map(String::as_str), Some("origin.example"));
/// assert_eq!(backend.to_string(), "127.0.0.1:8080");
/// ```
#[derive(Clone)]
pub struct Backend {
    /// Where the backend listens: an IP address and port, or a Unix socket.
    pub addr: SocketAddr,
    /// The relative share of traffic this backend gets; `0` is treated as
    /// `1` by every selection algorithm so that no listed backend is starved.
    pub weight: usize,
    /// Typed user data for this backend, such as the SNI or TLS settings to
    /// use when connecting to it.
    pub ext: Extensions,
    /// This backend's health in the load balancer's current set, attached
    /// when the set is published so that selection reads it with one load
    /// instead of a map lookup. Not part of the identity.
    pub(crate) health: Option<Arc<dyn HealthFlag>>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("addr", &self.addr)
            .field("weight", &self.weight)
            .field("ext", &self.ext)
            .finish()
    }
}

impl Backend {
    /// A backend of weight 1 at `addr`: an `ip:port` pair, or `unix:PATH`
    /// for a Unix domain socket.
    ///
    /// # Errors
    ///
    /// [`INVALID_BACKEND`] when `addr` is neither.
    pub fn new(addr: &str) -> Result<Self> {
        Self::new_with_weight(addr, 1)
    }

    /// A backend of weight `weight` at `addr`; see [`Backend::new`].
    ///
    /// # Errors
    ///
    /// [`INVALID_BACKEND`] when `addr` is not an address.
    pub fn new_with_weight(addr: &str, weight: usize) -> Result<Self> {
        let addr = if let Some(path) = addr.strip_prefix("unix:") {
            SocketAddr::Unix(Some(PathBuf::from(path)))
        } else {
            match addr.parse::<std::net::SocketAddr>() {
                Ok(inet) => SocketAddr::Inet(inet),
                Err(e) => {
                    return Err(Error::because(
                        INVALID_BACKEND,
                        format!("backend address {addr:?}"),
                        e,
                    ));
                }
            }
        };
        Ok(Self::from_addr(addr, weight))
    }

    /// A backend of weight `weight` at an already parsed address.
    pub fn from_addr(addr: impl Into<SocketAddr>, weight: usize) -> Self {
        Self {
            addr: addr.into(),
            weight,
            ext: Extensions::default(),
            health: None,
        }
    }

    /// The weight the selection algorithms use: [`weight`](Self::weight),
    /// with `0` raised to `1`.
    pub(crate) fn effective_weight(&self) -> usize {
        self.weight.max(1)
    }
}

/// A backend is a peer address: `HttpPeer::new(&backend, ...)` and
/// `HttpPeer::new(backend, ...)` connect to [`Backend::addr`].
///
/// # Examples
///
/// ```
/// use pingora_core::upstreams::HttpPeer;
/// use pingora_load_balancing::Backend;
///
/// let backend = Backend::new("127.0.0.1:8080")?;
/// let peer = HttpPeer::new(&backend, false, "");
/// assert!(peer.to_string().contains("127.0.0.1:8080"));
/// # Ok::<(), pingora_error::BError>(())
/// ```
impl pingora_core::upstreams::ToPeerAddress for Backend {
    fn to_peer_address(&self) -> Result<SocketAddr> {
        Ok(self.addr.clone())
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr.fmt(f)
    }
}

// Identity is (address, weight): see the type docs.
impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr && self.weight == other.weight
    }
}

impl Eq for Backend {}

impl Hash for Backend {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        self.weight.hash(state);
    }
}

impl Ord for Backend {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_addr(&self.addr, &other.addr).then(self.weight.cmp(&other.weight))
    }
}

impl PartialOrd for Backend {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Inet addresses sort before Unix sockets, each in its natural order, so
/// that a set of backends always iterates in the same order.
fn cmp_addr(a: &SocketAddr, b: &SocketAddr) -> Ordering {
    match (a, b) {
        (SocketAddr::Inet(a), SocketAddr::Inet(b)) => a.cmp(b),
        (SocketAddr::Inet(_), SocketAddr::Unix(_)) => Ordering::Less,
        (SocketAddr::Unix(_), SocketAddr::Inet(_)) => Ordering::Greater,
        (SocketAddr::Unix(a), SocketAddr::Unix(b)) => a.cmp(b),
    }
}

/// A typed map of user data attached to a [`Backend`].
///
/// Cloning is a reference-count increment, so a selected backend is handed
/// out without copying its data; [`insert`](Self::insert) copies the map
/// only when another clone still shares it.
#[derive(Clone, Debug, Default)]
pub struct Extensions(Option<Arc<http::Extensions>>);

impl Extensions {
    /// Store `value`, returning the previous value of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        let map = self.0.get_or_insert_with(Default::default);
        Arc::make_mut(map).insert(value)
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.as_ref().and_then(|map| map.get::<T>())
    }

    /// Remove and return the value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&mut self) -> Option<T> {
        self.0
            .as_mut()
            .and_then(|map| Arc::make_mut(map).remove::<T>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_inet_and_unix() {
        let b = Backend::new("[::1]:80").unwrap();
        assert_eq!(b.to_string(), "[::1]:80");
        let u = Backend::new_with_weight("unix:/tmp/x.sock", 2).unwrap();
        assert_eq!(u.addr, SocketAddr::Unix(Some("/tmp/x.sock".into())));
        assert_eq!(u.weight, 2);
        assert!(b < u);
        let err = Backend::new("nope").unwrap_err();
        assert_eq!(err.etype(), &INVALID_BACKEND);
    }

    #[test]
    fn ext_does_not_change_identity() {
        let a = Backend::new("127.0.0.1:1").unwrap();
        let mut b = a.clone();
        b.ext.insert(7u32);
        assert_eq!(a, b);
        assert_eq!(b.ext.get::<u32>(), Some(&7));
        assert_eq!(a.ext.get::<u32>(), None);
        assert_eq!(b.ext.remove::<u32>(), Some(7));
        assert_ne!(a, Backend::new_with_weight("127.0.0.1:1", 2).unwrap());
    }
}
