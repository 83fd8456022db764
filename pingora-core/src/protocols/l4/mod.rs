//! Layer-4 streams: accepted TCP and Unix domain socket connections, each
//! carrying its [`Digest`](super::Digest).

mod stream;
pub(crate) mod sys;

pub(crate) use stream::IdleSocket;
pub use stream::{L4Stream, TcpKeepalive};
