//! Byte streams the framework serves and connects over, and what is known
//! about each connection.

mod digest;
pub mod http;
pub mod l4;
pub mod proxy_protocol;
pub mod tls;

pub use digest::{Digest, SocketAddr};

use std::any::Any;
use std::fmt::Debug;
use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream the framework can serve or proxy over: a TCP
/// or Unix socket, a TLS session over one, or an in-memory pipe in tests.
pub trait IO: Any + AsyncRead + AsyncWrite + Unpin + Send + Sync + Debug + 'static {
    /// What is known about the connection (addresses, accept time, TLS),
    /// when the stream is a real connection.
    fn digest(&self) -> Option<&Digest> {
        None
    }
}

/// A boxed [`IO`]: the stream type handed to apps and sessions.
pub type Stream = Box<dyn IO>;

impl IO for tokio::io::DuplexStream {}
