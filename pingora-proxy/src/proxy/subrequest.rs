//! Subrequests: requests the proxy makes to itself, run through every
//! phase like a client's, with no client. The cache refreshes an entry
//! served stale under `stale-while-revalidate` with one, in the
//! background.
//!
//! A subrequest is an ordinary HTTP/1 request on an in-memory pipe: the
//! proxy serves one end as it serves a client connection, and the task
//! that made the request reads the response from the other end and drops
//! it. So the user's phases see a [`Session`] like any other, on which
//! [`Session::is_subrequest`] is true and whose
//! [`digest`](Session::digest) is the original client's.

use super::HttpProxy;
use crate::{ProxyHttp, Session};
use http::Method;
use pingora_cache::lock::WritePermit;
use pingora_core::header::RequestHeader;
use pingora_core::protocols::Digest;
use pingora_core::protocols::http::v1::{ClientSession, ServerConnection};
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;

/// The in-memory pipe's buffer, each way.
const PIPE_BYTES: usize = 16 * 1024;

/// What a subrequest carries from the request that made it.
#[derive(Debug)]
pub(crate) struct SubrequestCtx {
    /// The original client connection's digest (addresses, TLS).
    pub(crate) digest: Option<Digest>,
    /// The cache lock's write permit for the key this subrequest
    /// refreshes: its lookup goes to the origin holding it.
    pub(crate) permit: Option<WritePermit>,
}

/// The request fields a background refresh drops from the client's
/// request: it fetches the whole response, for the cache.
const NOT_REFRESHED: [&str; 8] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
    "content-length",
    "transfer-encoding",
];

/// The request a background refresh of `req`'s entry sends: a bodyless
/// GET of the same target with the same fields, minus the client's
/// conditionals and range, with `Host` named (an HTTP/2 client names it
/// in the target).
pub(crate) fn refresh_request(req: &RequestHeader) -> Result<RequestHeader> {
    let mut req = req.clone();
    req.set_method(Method::GET);
    for name in NOT_REFRESHED {
        req.remove_header(name);
    }
    if !req.has_header("host")
        && let Some(authority) = req.uri().authority().map(ToString::to_string)
    {
        req.insert_header("Host", authority)?;
    }
    Ok(req)
}

impl<SV: ProxyHttp + 'static> HttpProxy<SV> {
    /// Refresh the entry the request of `session` was served stale from,
    /// on a task of its own, holding `permit` (so no other request
    /// refreshes it meanwhile).
    pub(super) fn spawn_refresh(self: &Arc<Self>, session: &Session, permit: WritePermit) {
        let req = match refresh_request(session.req_header()) {
            Ok(req) => req,
            Err(e) => {
                log::warn!("background refresh not started: {e}");
                return;
            }
        };
        let ctx = SubrequestCtx {
            digest: session.digest().cloned(),
            permit: Some(permit),
        };
        let proxy = Arc::clone(self);
        tokio::spawn(async move {
            match proxy.subrequest(req, ctx).await {
                Ok(status) => log::debug!("background refresh: {status}"),
                Err(e) => log::debug!("background refresh failed: {e}"),
            }
        });
    }

    /// Run `req` through the phases as a subrequest and return its
    /// response status; the response body is read and dropped.
    ///
    /// # Errors
    ///
    /// When the proxy did not answer (the request was refused, or the
    /// phases failed before a response head).
    pub(crate) async fn subrequest(&self, req: RequestHeader, ctx: SubrequestCtx) -> Result<u16> {
        let (client_end, server_end) = tokio::io::duplex(PIPE_BYTES);
        let mut client = ClientSession::new(Box::new(client_end), Default::default());
        let conn = ServerConnection::new(Box::new(server_end), self.downstream_config());
        let serve = async {
            let Some(h1) = conn.read_request().await? else {
                return Error::e_explain(ErrorType::InternalError, "subrequest not received");
            };
            let mut session = Session::new(h1, false);
            session.subrequest = Some(Box::new(ctx));
            self.serve_request(&mut session).await;
            // Dropping the session closes the pipe: the reader sees the
            // end of a response without a length there.
            Ok(())
        };
        let read = async {
            client.write_request_header(req).await?;
            let status = client.read_response_header().await?.status.as_u16();
            while client.read_body_bytes().await?.is_some() {}
            Ok::<_, Box<Error>>(status)
        };
        let (served, status) = tokio::join!(serve, read);
        served?;
        status
    }
}
