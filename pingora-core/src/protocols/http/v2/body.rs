//! Body and trailer transfer on one HTTP/2 stream, shared by both sides:
//! flow control (RFC 9113 §5.2) with backpressure both ways, and a timeout
//! on every wait.

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http::HeaderMap;
use pingora_error::{Error, ErrorType, Result};
use std::future::poll_fn;
use std::time::Duration;

/// Turn an `h2` error into ours: I/O failures keep their own kinds, the
/// rest are HTTP/2 protocol or stream errors.
///
/// A stream the server did not process at all ([`is_unprocessed`]) is
/// marked retryable (RFC 9113 §8.7).
pub(crate) fn h2_error(e: h2::Error, context: &'static str) -> Box<Error> {
    let etype = if e.is_io() {
        ErrorType::ReadError
    } else {
        ErrorType::H2Error
    };
    let unprocessed = unprocessed(&e);
    let mut err = Error::because(etype, context, e);
    if unprocessed {
        err.set_retry(true);
    }
    err
}

/// RFC 9113 §8.7: a stream reset with REFUSED_STREAM, or above the last
/// stream a GOAWAY names (`h2` fails exactly those streams with the
/// peer's GOAWAY; the others end with an I/O error), was not processed.
fn unprocessed(e: &h2::Error) -> bool {
    e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote())
}

/// Whether `e` shows that an HTTP/2 server did not process the request at
/// all, so that it may be sent again whatever its method (RFC 9113 §8.7):
/// the server refused the stream (REFUSED_STREAM), or sent a GOAWAY whose
/// last stream is below this one.
pub fn is_unprocessed(e: &Error) -> bool {
    e.root_cause()
        .downcast_ref::<h2::Error>()
        .is_some_and(unprocessed)
}

/// Read the next piece of body; `None` at its end.
///
/// The bytes are given back to the peer's flow-control window as they are
/// handed out, so a peer can send at most one window ahead of the reader:
/// a slow consumer slows the peer down instead of growing a buffer.
///
/// # Errors
///
/// [`ErrorType::ReadTimedout`] when no data came within `timeout`, else
/// as [`h2_error`].
pub(crate) async fn recv_data(body: &mut RecvStream, timeout: Duration) -> Result<Option<Bytes>> {
    loop {
        let data = match pingora_timeout::timeout(timeout, body.data()).await {
            Err(_) => return Error::e_explain(ErrorType::ReadTimedout, "reading h2 body"),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(h2_error(e, "reading h2 body")),
            Ok(Some(Ok(data))) => data,
        };
        // Releasing can only fail when the stream is already gone, which
        // the next read reports.
        let _ = body.flow_control().release_capacity(data.len());
        if !data.is_empty() {
            return Ok(Some(data));
        }
    }
}

/// Read the trailers after the body, if the peer sent any.
///
/// # Errors
///
/// As [`recv_data`].
pub(crate) async fn recv_trailers(
    body: &mut RecvStream,
    timeout: Duration,
) -> Result<Option<HeaderMap>> {
    match pingora_timeout::timeout(timeout, body.trailers()).await {
        Err(_) => Error::e_explain(ErrorType::ReadTimedout, "reading h2 trailers"),
        Ok(Err(e)) => Err(h2_error(e, "reading h2 trailers")),
        Ok(Ok(trailers)) => Ok(trailers),
    }
}

/// Send `data` on `out`, waiting for window as the peer grants it.
///
/// `h2` hands out capacity up to the peer's window and our send buffer
/// limit, so a peer that reads slowly makes this wait rather than makes
/// memory grow.
///
/// # Errors
///
/// [`ErrorType::WriteTimedout`] when no window came within `timeout` (the
/// stream is then reset with CANCEL), [`ErrorType::ConnectionClosed`] when
/// the stream went away, else as [`h2_error`].
pub(crate) async fn send_data(
    out: &mut SendStream<Bytes>,
    mut data: Bytes,
    timeout: Duration,
) -> Result<()> {
    while !data.is_empty() {
        out.reserve_capacity(data.len());
        let granted = pingora_timeout::timeout(timeout, poll_fn(|cx| out.poll_capacity(cx))).await;
        let cap = match granted {
            Err(_) => {
                out.send_reset(h2::Reason::CANCEL);
                return Error::e_explain(ErrorType::WriteTimedout, "waiting for h2 window");
            }
            Ok(None) => return Error::e_explain(ErrorType::ConnectionClosed, "h2 stream closed"),
            Ok(Some(Err(e))) => return Err(h2_error(e, "writing h2 body")),
            Ok(Some(Ok(cap))) => cap,
        };
        if cap == 0 {
            continue;
        }
        let chunk = data.split_to(cap.min(data.len()));
        out.send_data(chunk, false)
            .map_err(|e| h2_error(e, "writing h2 body"))?;
    }
    Ok(())
}

/// End the stream: with `trailers` when given, else with an empty DATA
/// frame carrying END_STREAM (RFC 9113 §8.1).
///
/// # Errors
///
/// As [`h2_error`].
pub(crate) fn send_end(out: &mut SendStream<Bytes>, trailers: Option<&HeaderMap>) -> Result<()> {
    let sent = match trailers {
        Some(t) if !t.is_empty() => out.send_trailers(super::convert::trailers_to_h2(t)),
        _ => out.send_data(Bytes::new(), true),
    };
    sent.map_err(|e| h2_error(e, "ending h2 stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_streams_may_be_retried() {
        let refused = h2_error(h2::Reason::REFUSED_STREAM.into(), "test");
        assert_eq!(refused.etype(), &ErrorType::H2Error);
        assert!(refused.retry());
        let reset = h2_error(h2::Reason::INTERNAL_ERROR.into(), "test");
        assert!(!reset.retry());
        assert!(is_unprocessed(&refused.into_up()));
        assert!(!is_unprocessed(&reset));
        assert!(!is_unprocessed(&Error::new_up(ErrorType::ConnectionClosed)));
    }
}
