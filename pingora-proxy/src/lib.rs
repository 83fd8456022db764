//! The HTTP proxy of pingora-rs.
//!
//! Implement [`ProxyHttp`], the callbacks ("phases") that decide where each
//! request goes and how it changes on the way, and serve it with
//! [`http_proxy_service`]. The crate drives every request through the
//! phases in a fixed order (see [`ProxyHttp`] and the book chapter
//! `docs/src/phases.md`):
//!
//! - request and response bodies stream both ways with backpressure, one
//!   piece in flight per direction, so memory stays bounded whatever the
//!   body size;
//! - hop-by-hop fields are dropped and the body re-framed (RFC 9110
//!   §7.6.1); `Connection` cannot remove `Host` or `Content-Length`;
//! - `Upgrade` requests for an allowed protocol (websockets by default,
//!   [`HttpProxy::with_allowed_upgrades`]) pass a matching `101` through
//!   and then carry raw bytes both ways; other upgrades (`h2c` always) go
//!   upstream as plain requests, and a `101` to them is a 502;
//! - `CONNECT` is answered `405` and never forwarded, unless the proxy
//!   is a forward proxy ([`HttpProxy::with_connect`]), which tunnels to
//!   the targets its [`ConnectPolicy`] allows;
//! - a failed connect, or a failure on a reused upstream connection before
//!   any response byte, is retried up to the server's `max_retries`,
//!   asking [`ProxyHttp::upstream_peer`] again each time, but a request
//!   the upstream may have processed only when its method is idempotent
//!   (RFC 9110 §9.2.2, see [`ProxyHttp::error_while_proxy`]);
//! - errors get the right response ([`error_status`]: 502, 504, 400 ...),
//!   or a closed connection once a response has started;
//! - upstream connections go back to the pool when reusable, and client
//!   connections are kept alive across requests;
//! - HTTP modules ([`ProxyHttp::init_downstream_modules`]) filter every
//!   request and response around the phases, a response body filter can
//!   throttle the response, and a context set on the [`Session`] lives as
//!   long as the client connection.
//!
//! HTTP/1 and HTTP/2 on both sides, in any combination: clients get
//! HTTP/2 over TLS by ALPN ([`HttpProxyService::add_tls`]) or, with
//! [`HttpProxy::with_h2c`], cleartext with prior knowledge; the upstream
//! version is the peer's ALPN option. Every HTTP/2 stream runs through
//! the same phases as an HTTP/1 request, through the version-neutral
//! [`ServerSession`](pingora_core::protocols::http::ServerSession) and
//! [`ClientSession`](pingora_core::protocols::http::ClientSession). Headers
//! are translated between versions, trailers pass both ways, and gRPC
//! calls of every kind go through (book chapter `docs/src/http2.md`).
//!
//! HTTP caching is off until a request's
//! [`request_cache_filter`](ProxyHttp::request_cache_filter) turns it on
//! with `session.cache.enable(storage, lock, defaults)` (a
//! [`pingora_cache::Storage`] such as [`pingora_cache::MemCache`]): GET
//! and HEAD are then answered from the cache when a fresh response is
//! stored (with `Age`, 304s, ranges and HEAD from the stored response),
//! misses are fetched once per key under the cache lock and stored while
//! they stream to the client, stale entries are revalidated with their
//! validators or served stale where `stale-while-revalidate` and
//! `stale-if-error` allow, purges and unsafe methods remove entries. The
//! cache phases of [`ProxyHttp`] change every decision.
//!
//! Below HTTP, the [`l4`] module proxies raw TCP with the same callback
//! style ([`l4::ProxyTcp`], [`l4::tcp_proxy_service`]): TLS terminated,
//! originated or passed through by SNI, `splice(2)` between plain TCP
//! sockets on Linux.
//!
//! This crate is **not** a connection or protocol library: listeners,
//! sessions, connectors and TLS live in `pingora-core`; choosing among
//! several upstreams lives in `pingora-load-balancing`.
//!
//! # Features
//!
//! - `rustls` (default), `openssl`, `boringssl`: the TLS backend, passed
//!   through to `pingora-core`.
//!
//! # Examples
//!
//! A proxy that sends everything to one origin and tags the response:
//!
//! ```no_run
//! use pingora_core::header::ResponseHeader;
//! use pingora_core::server::Server;
//! use pingora_core::upstreams::HttpPeer;
//! use pingora_error::Result;
//! use pingora_proxy::{http_proxy_service, ProxyHttp, Session};
//!
//! struct MyProxy;
//!
//! impl ProxyHttp for MyProxy {
//!     type CTX = ();
//!     fn new_ctx(&self) {}
//!
//!     async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
//!         let addr: std::net::SocketAddr = "127.0.0.1:8000".parse().unwrap();
//!         Ok(Box::new(HttpPeer::new(addr, false, "")))
//!     }
//!
//!     async fn response_filter(
//!         &self,
//!         _session: &mut Session,
//!         resp: &mut ResponseHeader,
//!         _ctx: &mut (),
//!     ) -> Result<()> {
//!         resp.insert_header("X-Proxied-By", "pingora-rs")
//!     }
//! }
//!
//! let mut server = Server::new(None).unwrap();
//! server.bootstrap();
//! let mut proxy = http_proxy_service(server.configuration(), MyProxy);
//! proxy.add_tcp("127.0.0.1:6188");
//! server.add_service(proxy);
//! server.run_forever();
//! ```

#![forbid(unsafe_code)]

mod error;
mod hop;
pub mod l4;
mod metrics;
pub mod prelude;
mod proxy;
mod proxy_trait;
mod service;
mod session;
pub mod udp;

pub use error::error_status;
pub use proxy::{
    ConnectPolicy, HttpProxy, MAX_SUBREQUEST_DEPTH, MAX_SUBREQUESTS_PER_REQUEST,
    SUBREQUEST_BODY_LIMIT, SubrequestResponse,
};
pub use proxy_trait::{FailToProxy, ProxyHttp};
pub use service::{HttpProxyService, http_proxy_service, try_http_proxy_service};
pub use session::Session;
