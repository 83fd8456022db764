//! HTTP/1.0 and HTTP/1.1 (RFC 9112) for both sides of a proxy.
//!
//! The protocol logic is sans-IO and private: head parsing (`head`), body
//! framing rules (`framing`), and body decoders and encoders (`decode`,
//! `encode`) work on byte buffers and return events. The public sessions
//! are thin async drivers over them that own the stream, reuse its
//! buffers and enforce the timeouts of [`H1Config`]:
//!
//! - [`ServerConnection`] / [`ServerSession`]: the downstream side, which
//!   reads requests and writes responses;
//! - [`ClientSession`]: the upstream side, which writes requests and reads
//!   responses.
//!
//! Both sides refuse ambiguous framing (RFC 9112 §6.3, §11.2): both
//! Content-Length and Transfer-Encoding, differing Content-Length values,
//! a Transfer-Encoding other than a lone `chunked`, invalid chunk sizes and
//! obsolete line folding end the connection. A client gets 400; an
//! upstream's response becomes an upstream error and is never forwarded.

mod client;
mod config;
mod conn;
mod decode;
mod encode;
mod framing;
mod head;
mod server;

pub use client::ClientSession;
pub use config::H1Config;
pub use server::{ServerConnection, ServerSession};

#[cfg(test)]
mod fuzz_tests;
