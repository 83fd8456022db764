//! The TCP (layer 4) proxy: relay the bytes of each client connection to
//! an upstream chosen per connection, with the callback style of
//! [`ProxyHttp`](crate::ProxyHttp).
//!
//! Implement [`ProxyTcp`] (at least [`ProxyTcp::upstream_peer`]) and serve
//! it with [`tcp_proxy_service`]:
//!
//! - **Listeners.** A plain TCP listener relays bytes as they come; a TLS
//!   listener (`add_tls_with_settings`) terminates TLS and relays the
//!   plain bytes. A peer made with
//!   [`BasicPeer::with_tls`](pingora_core::upstreams::BasicPeer::with_tls)
//!   originates TLS to the upstream.
//! - **TLS passthrough routed by SNI.** [`TcpSession::read_client_hello`]
//!   reads the ClientHello without answering it (bounded in size and time)
//!   so `upstream_peer` can pick the upstream by server name and ALPN; the
//!   bytes read go to that upstream unchanged.
//! - **Connects** go through the same connector as the HTTP proxy
//!   ([`TransportConnector`](pingora_core::connectors::TransportConnector)),
//!   with the peer's options (connect timeout, TLS); a failed connect is
//!   retried up to the server's `max_retries` while
//!   [`ProxyTcp::fail_to_connect`] leaves it retryable. Upstream
//!   connections are never pooled: a byte stream has no request
//!   boundary at which to reuse it.
//! - **Timeouts** ([`TcpProxyOptions`]): idle (no byte either way for 10
//!   minutes by default), total (none by default), the ClientHello wait
//!   (10 s), and after shutdown begins, a drain timeout (30 s). Every wait
//!   is bounded; a session closed by one ends with [`IDLE_TIMEOUT`],
//!   [`TOTAL_TIMEOUT`] or [`SHUT_DOWN`] in [`ProxyTcp::logging`].
//! - **Half-close.** An end of stream from one side becomes a shutdown
//!   of the write side toward the other, and the other direction goes on
//!   until it ends too; the session ends when both did.
//! - **Zero-copy for bulk.** On Linux, when both sides are plain TCP and
//!   [`ProxyTcp::wants_byte_filters`] is `false`, each direction starts
//!   copying through a 16 KiB buffer (a `recv` and a `send` per message:
//!   cheapest for small messages) and, once a read fills that buffer,
//!   moves its bytes with `splice(2)` through a pipe, never entering user
//!   space ([`TcpSession::spliced`] says whether any byte did). Otherwise
//!   a copy loop with a buffer per direction
//!   ([`TcpProxyOptions::buffer_size`]).
//! - **Shutdown.** The listener keeps accepting through the server's
//!   grace period; once shutdown begins every session, in flight or new,
//!   has [`TcpProxyOptions::drain_timeout`] more, then is closed.
//!
//! # Metrics
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `pingora_tcp_sessions_total` | counter (sessions ended) | `result`: ok, error |
//! | `pingora_tcp_bytes_total` | counter | `direction`: from_downstream, from_upstream |
//! | `pingora_tcp_connect_failures_total` | counter | |
//! | `pingora_tcp_spliced_sessions_total` | counter (sessions that relayed bytes with `splice(2)`) | |

mod metrics;
mod proxy_trait;
mod relay;
mod service;
mod session;
#[cfg(target_os = "linux")]
mod splice;

pub use proxy_trait::ProxyTcp;
pub use relay::{IDLE_TIMEOUT, SHUT_DOWN, TOTAL_TIMEOUT};
pub use service::{TcpProxy, TcpProxyOptions, tcp_proxy_service};
pub use session::TcpSession;
