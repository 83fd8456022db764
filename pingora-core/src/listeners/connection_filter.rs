//! [`ConnectionFilter`]: decide from the client's address whether to serve
//! a connection at all, before TLS or HTTP spend anything on it.

use crate::protocols::SocketAddr;
use async_trait::async_trait;

/// A hook that sees each accepted connection's client address and may
/// drop the connection.
///
/// A listening service calls [`should_accept`](Self::should_accept) on the
/// connection's own task, right after the accept and after any PROXY
/// protocol header (so `addr` is the real client when a trusted balancer
/// said who it is), before the TLS handshake and before the app reads a
/// byte. A connection it refuses is closed at once, nothing written to
/// it; the refusal is counted in `pingora_connections_filtered_total` and
/// logged at debug level.
///
/// Set one for all the listeners of a service with
/// [`ListeningService::set_connection_filter`](crate::services::listening::ListeningService::set_connection_filter).
///
/// # Examples
///
/// ```
/// use async_trait::async_trait;
/// use pingora_core::listeners::{Cidr, ConnectionFilter};
/// use pingora_core::protocols::SocketAddr;
///
/// /// Serves only clients in the given networks.
/// struct AllowList(Vec<Cidr>);
///
/// #[async_trait]
/// impl ConnectionFilter for AllowList {
///     async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
///         let Some(inet) = addr.and_then(SocketAddr::as_inet) else {
///             return false;
///         };
///         self.0.iter().any(|net| net.contains(inet.ip()))
///     }
/// }
/// ```
#[async_trait]
pub trait ConnectionFilter: Send + Sync {
    /// Whether to serve the connection from `addr` (`None` when the socket
    /// could not say). The default accepts every connection.
    async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
        let _ = addr;
        true
    }
}

/// The filter that accepts every connection (what a service without a
/// filter does).
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAllFilter;

#[async_trait]
impl ConnectionFilter for AcceptAllFilter {}
