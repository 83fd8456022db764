//! The names a program built on this crate uses, for
//! `use pingora_core::prelude::*`: the server and its configuration, the
//! background service helper, [`HttpPeer`], the header types and the error
//! names of [`pingora_error::prelude`] (every [`ErrorType`] variant
//! included).
//!
//! # Examples
//!
//! ```no_run
//! use pingora_core::prelude::*;
//!
//! fn main() -> Result<()> {
//!     let mut server = Server::new(Some(Opt::parse_args()))?;
//!     server.bootstrap();
//!     let peer = HttpPeer::new("127.0.0.1:8080", false, "");
//!     let mut req = RequestHeader::build("GET", b"/", None)?;
//!     req.insert_header("Host", "example.com")?;
//!     let _ = (peer, req);
//!     Ok(())
//! }
//! ```

pub use crate::header::{RequestHeader, ResponseHeader};
pub use crate::server::{Opt, Server, ServerConf, ShutdownWatch};
pub use crate::services::background::{BackgroundService, background_service};
pub use crate::upstreams::HttpPeer;
pub use pingora_error::prelude::*;
