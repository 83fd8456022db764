//! A process-wide hook for errors worth reporting: send them to an error
//! tracker (Sentry, an alerting pipeline) besides the log.
//!
//! The framework calls the reporter for what it logs at `error` level:
//! requests a proxy failed to serve (unless `suppress_error_log` said
//! no), and panics caught in request phases. Panics anywhere else reach
//! the standard panic hook ([`std::panic::set_hook`]) as usual.
//!
//! ```
//! use pingora_core::report::{set_error_reporter, ErrorReport};
//!
//! set_error_reporter(|report: &ErrorReport<'_>| {
//!     // Forward to your tracker; here, standard error.
//!     eprintln!("[{}] {} ({})", report.source, report.error, report.context);
//! });
//! ```

use pingora_error::Error;
use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// One error to report.
#[derive(Debug)]
#[non_exhaustive]
pub struct ErrorReport<'a> {
    /// The error.
    pub error: &'a Error,
    /// Where it happened, such as `"proxy"` or `"panic"`.
    pub source: &'static str,
    /// What it happened to: for a request, its summary (method, target,
    /// host, client, request id).
    pub context: &'a str,
}

type Reporter = Box<dyn Fn(&ErrorReport<'_>) + Send + Sync>;

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// Install the process's error reporter. Only the first call installs
/// one; returns whether this call did.
pub fn set_error_reporter<F>(reporter: F) -> bool
where
    F: Fn(&ErrorReport<'_>) + Send + Sync + 'static,
{
    REPORTER.set(Box::new(reporter)).is_ok()
}

/// Hand `error` to the reporter, if one is installed. Cheap when none is.
pub fn report_error(error: &Error, source: &'static str, context: &str) {
    if let Some(reporter) = REPORTER.get() {
        reporter(&ErrorReport {
            error,
            source,
            context,
        });
    }
}

/// Polls the future it wraps, turning a panic into `Err` with the panic's
/// payload, so that a panicking user callback costs one request rather
/// than the task serving a whole connection. After a panic the future is
/// not polled again; drop it.
///
/// Unwind safety is the wrapper's to assert: use it where what the
/// future borrowed is, after a panic, only used to answer an error,
/// close a connection and log.
///
/// ```
/// use pingora_core::report::{panic_message, CatchUnwind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let call = std::pin::pin!(async { panic!("bad input") });
/// let Err(payload) = CatchUnwind(call).await else { unreachable!() };
/// assert_eq!(panic_message(payload.as_ref()), "bad input");
/// # }
/// ```
#[derive(Debug)]
pub struct CatchUnwind<F>(pub F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The message of a panic's payload (`panic!` with a string or a format),
/// or `"(no message)"`.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
