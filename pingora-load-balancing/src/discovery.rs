//! Service discovery: where the set of backends comes from.

use crate::Backend;
use crate::backend::INVALID_BACKEND;
use async_trait::async_trait;
use pingora_error::{Error, ErrorType, Result};
use std::collections::BTreeSet;
use std::time::Duration;

/// Finds the current set of backends.
///
/// [`Backends::update`](crate::Backends::update) calls it every
/// [`update_frequency`](crate::LoadBalancer::update_frequency); when the
/// returned set equals the current one nothing is rebuilt.
#[async_trait]
pub trait ServiceDiscovery: Send + Sync {
    /// The current set of backends.
    ///
    /// # Errors
    ///
    /// Any error keeps the previous set in place; it is logged.
    async fn discover(&self) -> Result<BTreeSet<Backend>>;
}

/// Shared discovery: lets the caller keep a handle to feed or inspect it.
#[async_trait]
impl<T: ServiceDiscovery + ?Sized> ServiceDiscovery for std::sync::Arc<T> {
    async fn discover(&self) -> Result<BTreeSet<Backend>> {
        (**self).discover().await
    }
}

/// A boxed discovery is a discovery, so that [`Backends::new`](crate::Backends::new)
/// takes a `Box<dyn ServiceDiscovery>` as well as a discovery by value.
#[async_trait]
impl<T: ServiceDiscovery + ?Sized> ServiceDiscovery for Box<T> {
    async fn discover(&self) -> Result<BTreeSet<Backend>> {
        (**self).discover().await
    }
}

/// A fixed list of backends.
#[derive(Debug, Clone, Default)]
pub struct Static {
    backends: BTreeSet<Backend>,
}

impl Static {
    /// Discovery that always returns `backends`.
    pub fn new(backends: BTreeSet<Backend>) -> Self {
        Self { backends }
    }

    /// Parse each address with [`Backend::new`].
    ///
    /// # Errors
    ///
    /// [`INVALID_BACKEND`] for the first address
    /// that does not parse.
    pub fn try_from_iter<A: AsRef<str>, I: IntoIterator<Item = A>>(addrs: I) -> Result<Self> {
        let backends = addrs
            .into_iter()
            .map(|addr| Backend::new(addr.as_ref()))
            .collect::<Result<_>>()?;
        Ok(Self { backends })
    }
}

impl Static {
    /// The list.
    pub fn backends(&self) -> &BTreeSet<Backend> {
        &self.backends
    }
}

#[async_trait]
impl ServiceDiscovery for Static {
    async fn discover(&self) -> Result<BTreeSet<Backend>> {
        Ok(self.backends.clone())
    }
}

/// DNS discovery: resolves `host:port` names with the system resolver and
/// takes every address found as a backend of the name's weight.
///
/// # Examples
///
/// ```no_run
/// use pingora_load_balancing::discovery::Dns;
///
/// let dns = Dns::new([("origin.internal:8080", 1), ("localhost:8081", 2)]);
/// ```
#[derive(Debug, Clone)]
pub struct Dns {
    names: Vec<(String, usize)>,
    timeout: Duration,
}

impl Dns {
    /// How long one name may take to resolve by default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Resolve each `(host:port, weight)` pair.
    pub fn new<N: Into<String>>(names: impl IntoIterator<Item = (N, usize)>) -> Self {
        Self {
            names: names.into_iter().map(|(n, w)| (n.into(), w)).collect(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Give up on a name after `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn resolve(&self, name: &str, weight: usize) -> Result<Vec<Backend>> {
        let lookup = tokio::time::timeout(self.timeout, tokio::net::lookup_host(name)).await;
        let addrs = match lookup {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Error::e_because(INVALID_BACKEND, format!("resolving {name}"), e),
            Err(_) => {
                return Error::e_explain(
                    ErrorType::ConnectTimedout,
                    format!("resolving {name} timed out"),
                );
            }
        };
        Ok(addrs.map(|addr| Backend::from_addr(addr, weight)).collect())
    }
}

#[async_trait]
impl ServiceDiscovery for Dns {
    /// # Errors
    ///
    /// A name that fails to resolve fails the whole discovery, so that a
    /// resolver outage keeps the previous set instead of shrinking it.
    async fn discover(&self) -> Result<BTreeSet<Backend>> {
        let mut backends = BTreeSet::new();
        for (name, weight) in &self.names {
            backends.extend(self.resolve(name, *weight).await?);
        }
        Ok(backends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dns_resolves_localhost() {
        let dns = Dns::new([("localhost:8080", 2)]);
        let found = dns.discover().await.unwrap();
        assert!(!found.is_empty());
        for backend in &found {
            let inet = backend.addr.as_inet().unwrap();
            assert!(inet.ip().is_loopback(), "{inet}");
            assert_eq!(inet.port(), 8080);
            assert_eq!(backend.weight, 2);
        }
    }

    #[tokio::test]
    async fn dns_failure_is_an_error() {
        let dns = Dns::new([("no-port-given", 1)]);
        assert!(dns.discover().await.is_err());
    }

    #[tokio::test]
    async fn static_list() {
        let s = Static::try_from_iter(["127.0.0.1:2", "127.0.0.1:1"]).unwrap();
        let found: Vec<String> = s
            .discover()
            .await
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(Static::try_from_iter(["bad"]).is_err());
    }
}
