//! A UDP proxy with client-to-upstream session affinity.
//!
//! Pingora has no UDP proxy; this one is ours. Implement [`ProxyUdp`]
//! (at least [`upstream_peer`](ProxyUdp::upstream_peer)) and run it with
//! [`udp_proxy_service`], a
//! [`UdpService`] whose app is a
//! [`UdpProxy`]. It lives beside the HTTP proxy, over pingora-core's UDP
//! service, so that a load balancer plugs into `upstream_peer` the same
//! way it does into [`ProxyHttp`](crate::ProxyHttp).
//!
//! # Sessions
//!
//! A session is one client address on one of the proxy's addresses. Its
//! first datagram starts it and [`upstream_peer`](ProxyUdp::upstream_peer)
//! chooses its upstream; the session then gets a socket of its own,
//! connected to that upstream. All the client's datagrams go there, in
//! the order they came, and everything the upstream sends back goes to
//! the client from the address the client wrote to. The upstream sees one
//! source port per client.
//!
//! A session ends when no datagram went either way for the
//! [idle timeout](UdpProxyOptions::idle_timeout) (30 s by default), when
//! the upstream socket fails (an ICMP port unreachable, say), or at
//! shutdown; [`logging`](ProxyUdp::logging) then gets its datagrams and
//! bytes each way. The client's next datagram starts a new session.
//!
//! # Graceful upgrade
//!
//! The new process takes the proxy's sockets over; sessions are not
//! handed over. Until the old process's grace period ends both read the
//! shared sockets, so a client's datagrams may reach either, and each
//! process keeps a session (an upstream socket, maybe an upstream) of its
//! own for it; the old sessions end at its shutdown. Upstreams see the
//! client come from a new source port after an upgrade, as they do after
//! an idle expiry.
//!
//! # Limits
//!
//! | limit | default | beyond it |
//! | --- | --- | --- |
//! | [`max_sessions`](UdpProxyOptions::max_sessions) | 10,000 | a new client's datagram is dropped, `reason="session_limit"` |
//! | [`max_pending_datagrams`](UdpProxyOptions::max_pending_datagrams) per session | 64 | dropped, `reason="queue_full"` |
//! | [`max_pending_bytes`](UdpProxyOptions::max_pending_bytes) per session | 256 KiB | dropped, `reason="queue_full"` |
//! | [`connect_timeout`](UdpProxyOptions::connect_timeout) | 5 s | the session ends, its datagrams dropped, `reason="no_upstream"` |
//! | [`send_timeout`](UdpProxyOptions::send_timeout) | 1 s | dropped, `reason="send_failed"` |
//!
//! # Metrics
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `pingora_udp_proxy_sessions_active` | gauge | |
//! | `pingora_udp_proxy_sessions_created_total` | counter | |
//! | `pingora_udp_proxy_sessions_expired_total` | counter (ended idle) | |
//! | `pingora_udp_proxy_datagrams_dropped_total` | counter | `reason`: see [`DropReason`] |
//!
//! The same counts for one proxy alone: [`UdpProxy::stats`].
//!
//! # Examples
//!
//! ```no_run
//! use pingora_core::server::Server;
//! use pingora_error::Result;
//! use pingora_proxy::udp::{ProxyUdp, UdpPeer, UdpSession, udp_proxy_service};
//!
//! struct Dns;
//!
//! impl ProxyUdp for Dns {
//!     type CTX = ();
//!     fn new_ctx(&self) {}
//!
//!     async fn upstream_peer(&self, _: &UdpSession, _: &[u8], _: &mut ()) -> Result<UdpPeer> {
//!         Ok(UdpPeer::new("10.0.0.53:53".parse().unwrap()))
//!     }
//!
//!     async fn logging(&self, session: &UdpSession, _: Option<&pingora_error::Error>, _: &mut ()) {
//!         println!(
//!             "{} -> {:?}: {} datagrams up, {} down",
//!             session.client_addr(),
//!             session.upstream_addr(),
//!             session.datagrams_to_upstream(),
//!             session.datagrams_to_client(),
//!         );
//!     }
//! }
//!
//! let mut server = Server::new(None).unwrap();
//! server.bootstrap();
//! let mut dns = udp_proxy_service("dns proxy", Dns);
//! dns.add_udp("0.0.0.0:53");
//! server.add_service(dns);
//! server.run_forever();
//! ```

mod metrics;
mod proxy;
mod proxy_trait;
mod queue;
mod session;

pub use metrics::{DropReason, UdpProxyStats};
pub use proxy::{UdpProxy, UdpProxyOptions};
pub use proxy_trait::{ProxyUdp, SessionEnd, UdpPeer, UdpSession};

use pingora_core::services::udp::UdpService;
use std::sync::Arc;

/// A UDP service running a [`UdpProxy`]: add addresses with
/// [`add_udp`](UdpService::add_udp), reach the proxy (its
/// [`stats`](UdpProxy::stats)) with [`app`](UdpService::app).
pub type UdpProxyService<P> = UdpService<UdpProxy<P>>;

/// A UDP proxy service named `name` running `inner`, with the default
/// [`UdpProxyOptions`].
pub fn udp_proxy_service<P: ProxyUdp>(name: &str, inner: P) -> UdpProxyService<P> {
    udp_proxy_service_with_options(name, inner, UdpProxyOptions::default())
}

/// A UDP proxy service named `name` running `inner` within `options`.
///
/// # Examples
///
/// ```
/// # use pingora_error::Result;
/// # use pingora_proxy::udp::{ProxyUdp, UdpPeer, UdpSession};
/// # struct Dns;
/// # impl ProxyUdp for Dns {
/// #     type CTX = ();
/// #     fn new_ctx(&self) {}
/// #     async fn upstream_peer(&self, _: &UdpSession, _: &[u8], _: &mut ()) -> Result<UdpPeer> {
/// #         Ok(UdpPeer::new("10.0.0.53:53".parse().unwrap()))
/// #     }
/// # }
/// use pingora_proxy::udp::{UdpProxyOptions, udp_proxy_service_with_options};
/// use std::time::Duration;
///
/// let mut options = UdpProxyOptions::default();
/// options.idle_timeout = Duration::from_secs(10);
/// let mut service = udp_proxy_service_with_options("dns", Dns, options);
/// service.add_udp("127.0.0.1:5353");
/// assert_eq!(service.app().stats().sessions_active(), 0);
/// ```
pub fn udp_proxy_service_with_options<P: ProxyUdp>(
    name: &str,
    inner: P,
    options: UdpProxyOptions,
) -> UdpProxyService<P> {
    UdpService::new(name, Arc::new(UdpProxy::new(inner, options)))
}
