//! HTTP sessions.
//!
//! [`v1`] holds HTTP/1.0 and HTTP/1.1 for both sides. [`ServerSession`] is
//! the version-neutral view of one downstream exchange that code above the
//! protocols works with, and [`ClientSession`] that of one upstream
//! exchange.

mod client;
mod server;
pub mod v1;
pub mod v2;

pub use client::ClientSession;
pub use server::ServerSession;
