//! The error names a program uses, for `use pingora_error::prelude::*`.
//!
//! Besides the types and extension traits, this brings every
//! [`ErrorType`] variant into scope by name, listed one by one rather than
//! glob-imported, so that `HTTPStatus(502)` or `InternalError` read the
//! way they do in Pingora programs.
//!
//! # Examples
//!
//! ```
//! use pingora_error::prelude::*;
//!
//! fn port(s: &str) -> Result<u16> {
//!     s.parse().or_err(InvalidHTTPHeader, "port is not a number")
//! }
//! assert_eq!(port("x").unwrap_err().etype, InvalidHTTPHeader);
//! assert_eq!(Error::new(HTTPStatus(403)).etype().http_status(), Some(403));
//! ```

pub use crate::ErrorType::{
    AcceptError, BindError, ConnectError, ConnectNoRoute, ConnectProxyFailure, ConnectRefused,
    ConnectTimedout, ConnectionClosed, Custom, CustomCode, FileCreateError, FileOpenError,
    FileReadError, FileWriteError, H1Error, H2Downgrade, H2Error, HTTPStatus, HandshakeError,
    InternalError, InvalidCert, InvalidH2, InvalidHTTPHeader, ReadError, ReadTimedout, SocketError,
    TLSHandshakeFailure, TLSHandshakeTimedout, UnknownError, WriteError, WriteTimedout,
};
pub use crate::{
    BError, Context, Error, ErrorSource, ErrorType, ImmutStr, OkOrErr, OrErr, Result, RetryType,
};
