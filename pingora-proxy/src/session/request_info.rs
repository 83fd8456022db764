//! What is known about a request besides its head and body: the client
//! connection, an id, its timing and the upstream it went to. Enough for
//! an access log line, read in the `logging` phase.

use super::Session;
use pingora_core::protocols::{Digest, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The last request id handed out in this process.
static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// A request's id, start and upstream, kept by its [`Session`].
#[derive(Debug)]
pub(crate) struct RequestInfo {
    id: u64,
    start: Instant,
    upstream_addr: Option<SocketAddr>,
    upstream_head_after: Option<Duration>,
}

impl RequestInfo {
    /// A request starting now, with the next id.
    pub(crate) fn new() -> Self {
        Self {
            id: LAST_ID.fetch_add(1, Ordering::Relaxed) + 1,
            start: Instant::now(),
            upstream_addr: None,
            upstream_head_after: None,
        }
    }
}

impl Session {
    /// What is known about the client connection: addresses, TLS. On a
    /// [subrequest](Self::is_subrequest), the client connection of the
    /// request that made it.
    pub fn digest(&self) -> Option<&Digest> {
        match &self.subrequest {
            Some(sub) => sub.digest.as_ref(),
            None => self.downstream.digest(),
        }
    }

    /// Whether this request is a subrequest: one the proxy made itself
    /// and runs through the phases with no client, such as the background
    /// refresh of a cache entry served stale (`stale-while-revalidate`).
    /// Its head is the one the original request had when it was served,
    /// that is after `request_filter` changed it: a phase that rewrites
    /// the request in a way that must not be done twice checks this.
    pub const fn is_subrequest(&self) -> bool {
        self.subrequest.is_some()
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest().and_then(|d| d.peer_addr.as_ref())
    }

    /// Add the client's IP address to the end of `upstream_request`'s
    /// `X-Forwarded-For` (made one field, the earlier hops first), as a
    /// proxy does in `upstream_request_filter`. The client is
    /// [`client_addr`](Self::client_addr): the one a trusted PROXY header
    /// named when the listener accepts them. Nothing changes when the
    /// client has no IP address (a Unix socket).
    ///
    /// The hops already in the field come from the client and are only
    /// as trustworthy as it is: remove the field first on a public
    /// listener whose clients are not proxies you run.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`](pingora_error::ErrorType::InvalidHTTPHeader)
    /// when an existing value is not visible ASCII.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use pingora_core::header::RequestHeader;
    /// # use pingora_proxy::Session;
    /// # fn filter(session: &Session, upstream_request: &mut RequestHeader) -> pingora_error::Result<()> {
    /// // In `upstream_request_filter`:
    /// session.append_x_forwarded_for(upstream_request)?;
    /// # Ok(()) }
    /// ```
    pub fn append_x_forwarded_for(
        &self,
        upstream_request: &mut pingora_core::header::RequestHeader,
    ) -> pingora_error::Result<()> {
        let Some(client) = self.client_addr().and_then(SocketAddr::as_inet) else {
            return Ok(());
        };
        let mut hops = Vec::new();
        for value in upstream_request.headers().get_all("x-forwarded-for") {
            let value = value.to_str().map_err(|e| {
                pingora_error::Error::because(
                    pingora_error::ErrorType::InvalidHTTPHeader,
                    "X-Forwarded-For",
                    e,
                )
            })?;
            hops.push(value.to_owned());
        }
        hops.push(client.ip().to_string());
        upstream_request.insert_header("x-forwarded-for", hops.join(", "))
    }

    /// Our address on the client connection (the listener's).
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest().and_then(|d| d.local_addr.as_ref())
    }

    /// This request's id: unique in this process (a counter from 1), in
    /// the error log line and for yours, to tie log lines together.
    pub const fn request_id(&self) -> u64 {
        self.info.id
    }

    /// When the request's head had been read and its phases began.
    pub const fn request_start(&self) -> Instant {
        self.info.start
    }

    /// The time since [`request_start`](Self::request_start); in the
    /// `logging` phase, how long the request took.
    pub fn elapsed(&self) -> Duration {
        self.info.start.elapsed()
    }

    /// The address of the upstream the request was last sent to (the
    /// last attempt's, after retries); `None` when it went to none.
    pub const fn upstream_addr(&self) -> Option<&SocketAddr> {
        self.info.upstream_addr.as_ref()
    }

    /// How long after [`request_start`](Self::request_start) the
    /// upstream's final response head arrived; `None` when none did.
    pub const fn upstream_response_time(&self) -> Option<Duration> {
        self.info.upstream_head_after
    }

    /// The request is being sent to the upstream at `addr`.
    pub(crate) fn set_upstream_addr(&mut self, addr: &SocketAddr) {
        self.info.upstream_addr = Some(addr.clone());
    }

    /// The upstream's final response head arrived.
    pub(crate) fn upstream_head_arrived(&mut self) {
        self.info.upstream_head_after = Some(self.info.start.elapsed());
    }

    /// A one-line description for the error log: method, target, host,
    /// client address and request id.
    pub fn request_summary(&self) -> String {
        let req = self.req_header();
        let host = req
            .get_header("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let client = self.client_addr().map(ToString::to_string);
        let client = client.as_deref().unwrap_or("-");
        let id = self.request_id();
        format!(
            "{} {}, Host: {host}, client: {client}, id: {id}",
            req.method(),
            req.uri()
        )
    }
}
