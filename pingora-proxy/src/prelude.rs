//! The names a proxy program uses, for `use pingora_proxy::prelude::*`:
//! [`ProxyHttp`], [`Session`] and [`http_proxy_service`].
//!
//! # Examples
//!
//! ```
//! use pingora_core::upstreams::HttpPeer;
//! use pingora_error::Result;
//! use pingora_proxy::prelude::*;
//!
//! struct Proxy;
//!
//! impl ProxyHttp for Proxy {
//!     type CTX = ();
//!     fn new_ctx(&self) -> Self::CTX {}
//!
//!     async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
//!         Ok(Box::new(HttpPeer::new("127.0.0.1:8080", false, "")))
//!     }
//! }
//! ```

pub use crate::{ProxyHttp, Session, http_proxy_service};
