//! The one error type shared by every pingora-rs crate.
//!
//! An [`Error`] records what a proxy needs to know about a failure:
//!
//! - its kind, an [`ErrorType`] such as [`ErrorType::ConnectTimedout`] or
//!   [`ErrorType::HTTPStatus`], which callers match on;
//! - where it came from, an [`ErrorSource`] (upstream, downstream, internal);
//! - whether a retry is safe, a [`RetryType`];
//! - an optional context string saying what was being done;
//! - an optional cause, any `std::error::Error`, forming a chain that
//!   [`Display`](std::fmt::Display) prints whole and
//!   [`source()`](std::error::Error::source) walks.
//!
//! Errors travel boxed ([`BError`]) so that a `Result` stays one pointer wide
//! on the error side; [`Result`] is the alias every crate uses.
//!
//! This crate is **not** a general error-handling library: it has no
//! backtraces and no dynamic attachments beyond one context string and one
//! cause. The text an error prints is for people and logs, not a stable API.
//!
//! # Examples
//!
//! ```
//! use pingora_error::{Error, ErrorType, OrErr, Result};
//!
//! fn parse_port(s: &str) -> Result<u16> {
//!     s.parse::<u16>()
//!         .or_err(ErrorType::InvalidHTTPHeader, "port is not a number")
//! }
//!
//! let err = parse_port("eighty").unwrap_err();
//! assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader);
//! assert!(err.to_string().contains("port is not a number"));
//!
//! let err = Error::explain(ErrorType::ConnectTimedout, "connecting to 127.0.0.1:80")
//!     .into_up();
//! assert_eq!(err.to_string(), "Upstream ConnectTimedout context: connecting to 127.0.0.1:80");
//! ```

mod ext;
mod kind;
pub mod prelude;

pub use ext::{Context, OkOrErr, OrErr};
pub use kind::{ErrorSource, ErrorType, RetryType};

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

/// A boxed [`Error`], the error type that crosses every API.
pub type BError = Box<Error>;

/// The result type of every fallible function in pingora-rs.
pub type Result<T, E = BError> = std::result::Result<T, E>;

/// Any error that can be kept as the cause of an [`Error`].
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// A context string: borrowed when static, owned when formatted.
pub type ImmutStr = Cow<'static, str>;

/// The framework's error: kind, source, retry hint, context and cause.
///
/// Build one with [`Error::new`], [`Error::explain`] or [`Error::because`]
/// (or the `e_*` and `err_*` shortcuts that wrap it in `Err`), or attach it
/// to a foreign error with the [`OrErr`] and [`OkOrErr`] extension traits.
///
/// The fields are public under the names Pingora code reads (`e.etype`,
/// `e.esource`, `e.retry`, `e.context`, `e.cause`); the methods of the same
/// names return the same facts. The struct is `#[non_exhaustive]`: it is
/// built through its constructors only, so it can grow.
///
/// # Examples
///
/// ```
/// use pingora_error::{Error, ErrorSource, ErrorType};
///
/// let e = Error::explain(ErrorType::ConnectRefused, "origin a").into_up();
/// assert_eq!(e.etype, ErrorType::ConnectRefused);
/// assert_eq!(e.esource, ErrorSource::Upstream);
/// assert_eq!(e.context.as_deref(), Some("origin a"));
/// assert!(e.cause.is_none());
/// assert!(!e.retry());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Error {
    /// The kind of error, which callers match on.
    pub etype: ErrorType,
    /// Where the error came from.
    pub esource: ErrorSource,
    /// Whether a retry is safe; [`Error::retry`] settles it to a `bool`.
    pub retry: RetryType,
    /// What was being done when it happened.
    pub context: Option<ImmutStr>,
    /// The error that caused this one, if any.
    pub cause: Option<Cause>,
}

impl Error {
    /// Create an error with every field given.
    pub fn create(
        etype: ErrorType,
        esource: ErrorSource,
        context: Option<ImmutStr>,
        cause: Option<Cause>,
    ) -> BError {
        Box::new(Self {
            etype,
            esource,
            retry: RetryType::Decided(false),
            context,
            cause,
        })
    }

    /// An error of kind `etype` with no context, cause or source.
    pub fn new(etype: ErrorType) -> BError {
        Self::create(etype, ErrorSource::Unset, None, None)
    }

    /// An error of a user-defined kind named `name`.
    pub fn new_str(name: &'static str) -> BError {
        Self::new(ErrorType::Custom(name))
    }

    /// An error of kind `etype` that came from the upstream.
    pub fn new_up(etype: ErrorType) -> BError {
        Self::create(etype, ErrorSource::Upstream, None, None)
    }

    /// An error of kind `etype` that came from the downstream.
    pub fn new_down(etype: ErrorType) -> BError {
        Self::create(etype, ErrorSource::Downstream, None, None)
    }

    /// An error of kind `etype` from inside the framework or user code.
    pub fn new_in(etype: ErrorType) -> BError {
        Self::create(etype, ErrorSource::Internal, None, None)
    }

    /// An error of kind `etype` with a context string.
    pub fn explain(etype: ErrorType, context: impl Into<ImmutStr>) -> BError {
        Self::create(etype, ErrorSource::Unset, Some(context.into()), None)
    }

    /// An error of kind `etype` with a context string, caused by `cause`.
    pub fn because(
        etype: ErrorType,
        context: impl Into<ImmutStr>,
        cause: impl Into<Cause>,
    ) -> BError {
        Self::create(
            etype,
            ErrorSource::Unset,
            Some(context.into()),
            Some(cause.into()),
        )
    }

    /// `Err` of [`Error::explain`].
    ///
    /// # Errors
    ///
    /// Always returns `Err`.
    pub fn e_explain<T>(etype: ErrorType, context: impl Into<ImmutStr>) -> Result<T> {
        Err(Self::explain(etype, context))
    }

    /// `Err` of [`Error::because`].
    ///
    /// # Errors
    ///
    /// Always returns `Err`.
    pub fn e_because<T>(
        etype: ErrorType,
        context: impl Into<ImmutStr>,
        cause: impl Into<Cause>,
    ) -> Result<T> {
        Err(Self::because(etype, context, cause))
    }

    /// `Err` of [`Error::new`].
    ///
    /// # Errors
    ///
    /// Always returns `Err`.
    pub fn err<T>(etype: ErrorType) -> Result<T> {
        Err(Self::new(etype))
    }

    /// `Err` of [`Error::new_up`].
    ///
    /// # Errors
    ///
    /// Always returns `Err`.
    pub fn err_up<T>(etype: ErrorType) -> Result<T> {
        Err(Self::new_up(etype))
    }

    /// `Err` of [`Error::new_down`].
    ///
    /// # Errors
    ///
    /// Always returns `Err`.
    pub fn err_down<T>(etype: ErrorType) -> Result<T> {
        Err(Self::new_down(etype))
    }

    /// `Err` of [`Error::new_in`].
    ///
    /// # Errors
    ///
    /// Always returns `Err`.
    pub fn err_in<T>(etype: ErrorType) -> Result<T> {
        Err(Self::new_in(etype))
    }

    /// Mark the error, in place, as coming from the upstream.
    pub fn as_up(&mut self) {
        self.esource = ErrorSource::Upstream;
    }

    /// Mark the error, in place, as coming from the downstream.
    pub fn as_down(&mut self) {
        self.esource = ErrorSource::Downstream;
    }

    /// Mark the error, in place, as coming from inside the framework or
    /// user code.
    pub fn as_in(&mut self) {
        self.esource = ErrorSource::Internal;
    }

    /// Mark the error as coming from the upstream.
    pub fn into_up(mut self: BError) -> BError {
        self.esource = ErrorSource::Upstream;
        self
    }

    /// Mark the error as coming from the downstream.
    pub fn into_down(mut self: BError) -> BError {
        self.esource = ErrorSource::Downstream;
        self
    }

    /// Mark the error as coming from inside the framework or user code.
    pub fn into_in(mut self: BError) -> BError {
        self.esource = ErrorSource::Internal;
        self
    }

    /// Change the kind, keeping everything else.
    pub fn into_etype(mut self: BError, etype: ErrorType) -> BError {
        self.etype = etype;
        self
    }

    /// Change the kind, keeping everything else (Pingora's name for
    /// [`into_etype`](Self::into_etype)).
    pub fn into_different(self: BError, etype: ErrorType) -> BError {
        self.into_etype(etype)
    }

    /// Prepend `context` to the existing context (or set it when there is
    /// none), for a caller that adds what it was doing.
    pub fn more_context(mut self: BError, context: impl Into<ImmutStr>) -> BError {
        let context = context.into();
        self.context = Some(match self.context.take() {
            Some(inner) => format!("{context}: {inner}").into(),
            None => context,
        });
        self
    }

    /// The kind of this error.
    pub const fn etype(&self) -> &ErrorType {
        &self.etype
    }

    /// Where this error came from.
    pub const fn esource(&self) -> &ErrorSource {
        &self.esource
    }

    /// The retry hint as set, which may still be
    /// [`RetryType::ReusedOnly`].
    pub const fn retry_type(&self) -> RetryType {
        self.retry
    }

    /// Whether a retry is allowed ([`RetryType::retry`]).
    pub const fn retry(&self) -> bool {
        self.retry.retry()
    }

    /// Set whether a retry is allowed.
    pub fn set_retry(&mut self, retry: bool) {
        self.retry = RetryType::Decided(retry);
    }

    /// Set the retry hint, for example [`RetryType::ReusedOnly`].
    pub fn set_retry_type(&mut self, retry: RetryType) {
        self.retry = retry;
    }

    /// Settle a [`RetryType::ReusedOnly`] hint now that it is known whether
    /// the connection was `reused`.
    pub fn decide_reuse(&mut self, reused: bool) {
        self.retry = self.retry.decide_reuse(reused);
    }

    /// The context string, if any.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// Replace the context string.
    pub fn set_context(&mut self, context: impl Into<ImmutStr>) {
        self.context = Some(context.into());
    }

    /// The direct cause, if any.
    pub fn direct_cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    /// Replace the cause.
    pub fn set_cause(&mut self, cause: impl Into<Cause>) {
        self.cause = Some(cause.into());
    }

    /// The kind's name, for logs and metrics labels.
    pub const fn reason_str(&self) -> &'static str {
        self.etype.as_str()
    }

    /// The kind of the innermost [`Error`] of the cause chain: a proxy error
    /// caused by a connect timeout reports
    /// [`ErrorType::ConnectTimedout`] here. This error's own kind when no
    /// cause is an [`Error`].
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_error::{Error, ErrorType};
    ///
    /// let inner = Error::new(ErrorType::ConnectTimedout);
    /// let outer = Error::because(ErrorType::HTTPStatus(502), "proxying", inner);
    /// assert_eq!(outer.root_etype(), &ErrorType::ConnectTimedout);
    /// ```
    pub fn root_etype(&self) -> &ErrorType {
        let mut root = &self.etype;
        let mut current: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(e) = current {
            // A cause given as a `BError` is kept boxed inside the `Cause`.
            let ours = e
                .downcast_ref::<Self>()
                .or_else(|| e.downcast_ref::<BError>().map(|b| &**b));
            if let Some(ours) = ours {
                root = &ours.etype;
            }
            current = e.source();
        }
        root
    }

    /// The innermost error of the chain: the last cause found by following
    /// [`source()`](StdError::source), or this error when it has none.
    pub fn root_cause(&self) -> &(dyn StdError + 'static) {
        let mut current: &(dyn StdError + 'static) = self;
        while let Some(next) = current.source() {
            current = next;
        }
        current
    }
}

impl fmt::Display for Error {
    /// Prints `Source Kind context: ... cause: ...`, with the cause printed
    /// by its own `Display`, so a chain of [`Error`]s prints whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.esource != ErrorSource::Unset {
            write!(f, "{} ", self.esource)?;
        }
        write!(f, "{}", self.etype)?;
        if let Some(context) = &self.context {
            write!(f, " context: {context}")?;
        }
        if let Some(cause) = &self.cause {
            write!(f, " cause: {cause}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn StdError + 'static))
    }
}

impl From<ErrorType> for BError {
    fn from(etype: ErrorType) -> Self {
        Error::new(etype)
    }
}

#[cfg(test)]
mod tests;
