//! Which response an error gets.

use pingora_error::{Error, ErrorSource, ErrorType};

/// The status to answer a failed request with, or 0 when nobody should be
/// answered (the client is gone or broke the connection).
///
/// - a kind that names a status ([`ErrorType::HTTPStatus`],
///   [`ErrorType::CustomCode`]): that status;
/// - upstream timeouts (connect, TLS handshake, read, write): 504;
/// - any other upstream error (refused, reset, malformed response): 502;
/// - a malformed request: 400; a client too slow to send it: 408; a client
///   that closed or reset the connection: 0;
/// - anything else (internal, user code): 500.
///
/// # Examples
///
/// ```
/// use pingora_error::{Error, ErrorType};
/// use pingora_proxy::error_status;
///
/// assert_eq!(error_status(&Error::new_up(ErrorType::ConnectRefused)), 502);
/// assert_eq!(error_status(&Error::new_up(ErrorType::ReadTimedout)), 504);
/// assert_eq!(error_status(&Error::new_down(ErrorType::InvalidHTTPHeader)), 400);
/// assert_eq!(error_status(&Error::new(ErrorType::HTTPStatus(403))), 403);
/// ```
pub fn error_status(e: &Error) -> u16 {
    if let Some(code) = e.etype().http_status() {
        return code;
    }
    match e.esource() {
        ErrorSource::Upstream => match e.etype() {
            ErrorType::ConnectTimedout
            | ErrorType::TLSHandshakeTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout => 504,
            _ => 502,
        },
        ErrorSource::Downstream => match e.etype() {
            ErrorType::InvalidHTTPHeader
            | ErrorType::H1Error
            | ErrorType::H2Error
            | ErrorType::InvalidH2 => 400,
            ErrorType::ReadTimedout => 408,
            _ => 0,
        },
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            error_status(&Error::new_up(ErrorType::ConnectTimedout)),
            504
        );
        assert_eq!(
            error_status(&Error::new_up(ErrorType::ConnectionClosed)),
            502
        );
        assert_eq!(error_status(&Error::new_down(ErrorType::ReadTimedout)), 408);
        assert_eq!(
            error_status(&Error::new_down(ErrorType::ConnectionClosed)),
            0
        );
        assert_eq!(error_status(&Error::new_in(ErrorType::InternalError)), 500);
        assert_eq!(error_status(&Error::new(ErrorType::ReadError)), 500);
        assert_eq!(
            error_status(&Error::new(ErrorType::new_code("Limited", 429))),
            429
        );
    }
}
