//! The error of a timeout whose deadline passed first.

use std::fmt;

/// The error returned when a timeout's deadline passes before its future
/// completes.
///
/// Both [`timeout`](crate::timeout) and [`fast::timeout`](crate::fast::timeout)
/// return it, so switching between them changes no error handling. It
/// converts into an [`std::io::Error`] of kind
/// [`TimedOut`](std::io::ErrorKind::TimedOut).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Elapsed(());

impl Elapsed {
    pub(crate) const fn new() -> Self {
        Self(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(elapsed: Elapsed) -> Self {
        Self::new(std::io::ErrorKind::TimedOut, elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_a_timed_out_io_error() {
        let err = std::io::Error::from(Elapsed::new());
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "deadline has elapsed");
    }
}
