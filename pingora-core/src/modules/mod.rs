//! Modules: filters that plug into a server's request handling, the same
//! way for every request, registered once and instantiated per request.
//!
//! [`http`] holds the HTTP module chain the proxy runs around its phases.

pub mod http;
