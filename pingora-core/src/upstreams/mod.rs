//! Upstream peers: where a connector connects and with which options.
//!
//! A [`Peer`] names an address (TCP over IPv4 or IPv6, or a Unix socket),
//! whether to speak TLS and with which SNI, and [`PeerOptions`]: timeouts,
//! certificate verification, client certificate, ALPN and socket options.
//! [`Peer::reuse_hash`] folds everything that makes two connections
//! interchangeable into one key, which the connection pool is keyed by.

mod address;
mod options;
pub mod peer;
mod proxy;

pub use address::{INVALID_PEER_ADDRESS, ToPeerAddress};
pub use options::{PeerOptions, ProxyVersion, SendProxyHeader};
pub use peer::{BasicPeer, HttpPeer, Peer};
pub use proxy::Proxy;
