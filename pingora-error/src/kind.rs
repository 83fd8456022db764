//! What went wrong ([`ErrorType`]), where it came from ([`ErrorSource`]) and
//! whether a retry is safe ([`RetryType`]).

use std::fmt;

/// The kind of an error: what went wrong.
///
/// Callers match on the kind, never on the text of an error. The kinds are
/// grouped by the step that fails; each variant says when it happens and
/// whether a retry on another connection is usually safe. The final decision
/// is carried by the error's [`RetryType`], which the code that creates the
/// error sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    // === connecting ===
    /// The TCP (or Unix socket) connect did not finish in time. Retryable:
    /// nothing was sent.
    ConnectTimedout,
    /// The peer refused the connection (`ECONNREFUSED`). Retryable.
    ConnectRefused,
    /// No route to the peer (`EHOSTUNREACH`, `ENETUNREACH`). Retryable.
    ConnectNoRoute,
    /// The TLS handshake with the peer failed. Retryable.
    TLSHandshakeFailure,
    /// The TLS handshake did not finish in time. Retryable.
    TLSHandshakeTimedout,
    /// The peer's certificate failed verification. Not retryable on the same
    /// peer: the certificate will not change.
    InvalidCert,
    /// A non-TLS handshake (such as a proxy `CONNECT`) failed.
    HandshakeError,
    /// Any other failure to connect. Retryable.
    ConnectError,
    /// Binding a local address failed.
    BindError,
    /// Accepting a connection on a listener failed.
    AcceptError,
    /// Setting up a socket (options, creation) failed.
    SocketError,
    /// A forward proxy in front of the peer refused the tunnel.
    ConnectProxyFailure,

    // === protocol ===
    /// An HTTP header was malformed or over a limit. Not retryable: the same
    /// bytes fail again.
    InvalidHTTPHeader,
    /// An HTTP/1 framing or protocol violation.
    H1Error,
    /// An HTTP/2 protocol violation or stream error.
    H2Error,
    /// The peer asked to downgrade from HTTP/2 to HTTP/1.
    H2Downgrade,
    /// The peer is not speaking valid HTTP/2.
    InvalidH2,

    // === established connection ===
    /// Reading from a connection failed.
    ReadError,
    /// Writing to a connection failed.
    WriteError,
    /// A read did not finish in time.
    ReadTimedout,
    /// A write did not finish in time.
    WriteTimedout,
    /// The peer closed the connection before the exchange was complete.
    /// Retryable when the connection was a reused one: the peer may have closed
    /// it while it sat idle in the pool.
    ConnectionClosed,

    // === application ===
    /// The exchange ended with this HTTP status, to be sent to the client.
    HTTPStatus(u16),
    /// Opening a file failed.
    FileOpenError,
    /// Creating a file failed.
    FileCreateError,
    /// Reading a file failed.
    FileReadError,
    /// Writing a file failed.
    FileWriteError,
    /// A bug or broken invariant inside the framework or the user's code.
    InternalError,
    /// The cause is not known.
    UnknownError,
    /// A kind defined by user code, named by a static string.
    Custom(&'static str),
    /// A kind defined by user code, with a name and the HTTP status to answer
    /// with.
    CustomCode(&'static str, u16),
}

impl ErrorType {
    /// A user-defined kind named `name`.
    pub const fn new(name: &'static str) -> Self {
        Self::Custom(name)
    }

    /// A user-defined kind named `name` that maps to HTTP status `code`.
    pub const fn new_code(name: &'static str, code: u16) -> Self {
        Self::CustomCode(name, code)
    }

    /// The kind's name, as used in logs (`"ConnectTimedout"`, `"HTTPStatus"`,
    /// or the user's name for custom kinds).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::ConnectTimedout => "ConnectTimedout",
            Self::ConnectRefused => "ConnectRefused",
            Self::ConnectNoRoute => "ConnectNoRoute",
            Self::TLSHandshakeFailure => "TLSHandshakeFailure",
            Self::TLSHandshakeTimedout => "TLSHandshakeTimedout",
            Self::InvalidCert => "InvalidCert",
            Self::HandshakeError => "HandshakeError",
            Self::ConnectError => "ConnectError",
            Self::BindError => "BindError",
            Self::AcceptError => "AcceptError",
            Self::SocketError => "SocketError",
            Self::ConnectProxyFailure => "ConnectProxyFailure",
            Self::InvalidHTTPHeader => "InvalidHTTPHeader",
            Self::H1Error => "H1Error",
            Self::H2Error => "H2Error",
            Self::H2Downgrade => "H2Downgrade",
            Self::InvalidH2 => "InvalidH2",
            Self::ReadError => "ReadError",
            Self::WriteError => "WriteError",
            Self::ReadTimedout => "ReadTimedout",
            Self::WriteTimedout => "WriteTimedout",
            Self::ConnectionClosed => "ConnectionClosed",
            Self::HTTPStatus(_) => "HTTPStatus",
            Self::FileOpenError => "FileOpenError",
            Self::FileCreateError => "FileCreateError",
            Self::FileReadError => "FileReadError",
            Self::FileWriteError => "FileWriteError",
            Self::InternalError => "InternalError",
            Self::UnknownError => "UnknownError",
            Self::Custom(name) | Self::CustomCode(name, _) => name,
        }
    }

    /// The HTTP status this kind maps to, where it names one
    /// ([`HTTPStatus`](Self::HTTPStatus) and [`CustomCode`](Self::CustomCode)).
    pub const fn http_status(&self) -> Option<u16> {
        match self {
            Self::HTTPStatus(code) | Self::CustomCode(_, code) => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HTTPStatus(code) => write!(f, "HTTPStatus({code})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Which side of a proxied exchange an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ErrorSource {
    /// The upstream: the server the proxy connects to.
    Upstream,
    /// The downstream: the client connected to the proxy.
    Downstream,
    /// The framework or the user's own code.
    Internal,
    /// Not decided yet.
    #[default]
    Unset,
}

impl ErrorSource {
    /// The source's name as used in logs (`"Upstream"`, ...; empty for
    /// [`Unset`](Self::Unset)).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Upstream => "Upstream",
            Self::Downstream => "Downstream",
            Self::Internal => "Internal",
            Self::Unset => "",
        }
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the operation that failed may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryType {
    /// The decision is made: retry (`true`) or not (`false`).
    Decided(bool),
    /// Retry only if the failed connection was a reused (pooled) one: a
    /// reused connection may have been closed by the peer while idle, so a
    /// fresh connection may well succeed; a fresh one failing means the peer
    /// itself has a problem.
    ReusedOnly,
}

impl RetryType {
    /// Settle a [`ReusedOnly`](Self::ReusedOnly) hint now that it is known
    /// whether the connection was `reused`.
    pub const fn decide_reuse(self, reused: bool) -> Self {
        match self {
            Self::ReusedOnly => Self::Decided(reused),
            decided => decided,
        }
    }

    /// Whether a retry is allowed; an unsettled
    /// [`ReusedOnly`](Self::ReusedOnly) counts as no.
    pub const fn retry(&self) -> bool {
        matches!(self, Self::Decided(true))
    }
}

impl From<bool> for RetryType {
    fn from(retry: bool) -> Self {
        Self::Decided(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_statuses() {
        assert_eq!(ErrorType::ConnectTimedout.as_str(), "ConnectTimedout");
        assert_eq!(ErrorType::HTTPStatus(502).as_str(), "HTTPStatus");
        assert_eq!(ErrorType::HTTPStatus(502).to_string(), "HTTPStatus(502)");
        assert_eq!(ErrorType::HTTPStatus(502).http_status(), Some(502));
        assert_eq!(ErrorType::new("MyKind").as_str(), "MyKind");
        assert_eq!(ErrorType::new_code("Limited", 429).http_status(), Some(429));
        assert_eq!(ErrorType::ReadError.http_status(), None);
        assert_eq!(ErrorSource::Upstream.to_string(), "Upstream");
        assert_eq!(ErrorSource::Unset.to_string(), "");
    }

    #[test]
    fn retry_decisions() {
        assert!(RetryType::Decided(true).retry());
        assert!(!RetryType::Decided(false).retry());
        assert!(!RetryType::ReusedOnly.retry());
        assert!(RetryType::ReusedOnly.decide_reuse(true).retry());
        assert!(!RetryType::ReusedOnly.decide_reuse(false).retry());
        assert_eq!(
            RetryType::Decided(false).decide_reuse(true),
            RetryType::Decided(false)
        );
        assert_eq!(RetryType::from(true), RetryType::Decided(true));
    }
}
