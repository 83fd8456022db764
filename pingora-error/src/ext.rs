//! Extension traits that turn foreign errors and missing values into an
//! [`Error`] with a kind and context in one call.

use crate::{BError, Cause, Error, ErrorType, ImmutStr, Result};

/// Attach a kind and context to the error of a `Result`.
pub trait OrErr<T, E> {
    /// Replace the error with an [`Error`] of kind `et` and a static
    /// `context`, keeping the original error as the cause.
    ///
    /// # Errors
    ///
    /// Returns the wrapped error when `self` is `Err`.
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>
    where
        E: Into<Cause>;

    /// Like [`or_err`](Self::or_err) but builds the context lazily, only on
    /// error.
    ///
    /// # Errors
    ///
    /// Returns the wrapped error when `self` is `Err`.
    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>
    where
        E: Into<Cause>;

    /// Replace the error with an [`Error`] of kind `et` whose context is
    /// computed from the original error, which is dropped. For errors that
    /// are not `std::error::Error` or not worth keeping.
    ///
    /// # Errors
    ///
    /// Returns the new error when `self` is `Err`.
    fn explain_err<C: Into<ImmutStr>, F: FnOnce(E) -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>;

    /// Wrap the error as the cause of an [`ErrorType::InternalError`].
    ///
    /// # Errors
    ///
    /// Returns the wrapped error when `self` is `Err`.
    fn or_fail(self) -> Result<T>
    where
        E: Into<Cause>;
}

impl<T, E> OrErr<T, E> for Result<T, E> {
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>
    where
        E: Into<Cause>,
    {
        self.map_err(|e| Error::because(et, context, e))
    }

    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>
    where
        E: Into<Cause>,
    {
        self.map_err(|e| Error::because(et, context(), e))
    }

    fn explain_err<C: Into<ImmutStr>, F: FnOnce(E) -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError> {
        self.map_err(|e| Error::explain(et, context(e)))
    }

    fn or_fail(self) -> Result<T>
    where
        E: Into<Cause>,
    {
        self.map_err(|e| Error::because(ErrorType::InternalError, "", e))
    }
}

/// Turn a missing value into an [`Error`].
pub trait OkOrErr<T> {
    /// `Err` of kind `et` with a static `context` when `self` is `None`.
    ///
    /// # Errors
    ///
    /// Returns the error when `self` is `None`.
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>;

    /// Like [`or_err`](Self::or_err) but builds the context lazily.
    ///
    /// # Errors
    ///
    /// Returns the error when `self` is `None`.
    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>;
}

impl<T> OkOrErr<T> for Option<T> {
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError> {
        self.ok_or_else(|| Error::explain(et, context))
    }

    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError> {
        self.ok_or_else(|| Error::explain(et, context()))
    }
}

/// Add context to an existing [`Error`] as it travels up the stack.
pub trait Context<T> {
    /// Prepend the context built by `context` to the error's context (see
    /// [`Error::more_context`]).
    ///
    /// # Errors
    ///
    /// Returns the error with more context when `self` is `Err`.
    fn err_context<C: Into<ImmutStr>, F: FnOnce() -> C>(self, context: F) -> Result<T, BError>;
}

impl<T> Context<T> for Result<T, BError> {
    fn err_context<C: Into<ImmutStr>, F: FnOnce() -> C>(self, context: F) -> Self {
        self.map_err(|e| e.more_context(context()))
    }
}
