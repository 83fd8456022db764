//! Subrequests: requests the proxy makes to itself, run through every
//! phase like a client's, with no client.
//!
//! A phase makes one with [`Session::subrequest`] (an auth check, say)
//! and reads its response, or starts one that outlives its request with
//! [`Session::spawn_background_subrequest`]; the cache refreshes an entry
//! served stale under `stale-while-revalidate` with a background one.
//!
//! A subrequest is an ordinary HTTP/1 request on an in-memory pipe: the
//! proxy serves one end as it serves a client connection, and the task
//! that made the request reads the response from the other end. So the
//! user's phases see a [`Session`] like any other, with its own CTX, on
//! which [`Session::is_subrequest`] is true and whose
//! [`digest`](Session::digest) is the original client's.
//!
//! Bounded: subrequests nest at most [`MAX_SUBREQUEST_DEPTH`] deep, and
//! one request makes at most [`MAX_SUBREQUESTS_PER_REQUEST`].

use super::HttpProxy;
use crate::{ProxyHttp, Session};
use bytes::{Bytes, BytesMut};
use http::Method;
use pingora_cache::lock::WritePermit;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::protocols::Digest;
use pingora_core::protocols::http::v1::{ClientSession, ServerConnection};
use pingora_error::{Error, ErrorType, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// How deep subrequests nest: a client's request is at depth 0, its
/// subrequests at 1, theirs at 2, and so on up to this.
pub const MAX_SUBREQUEST_DEPTH: u8 = 3;

/// The most subrequests (background ones included) one request makes.
pub const MAX_SUBREQUESTS_PER_REQUEST: u16 = 16;

/// The most response body [`Session::subrequest`] reads; a longer body
/// is an error.
pub const SUBREQUEST_BODY_LIMIT: usize = 1 << 20;

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
    /// How deep it is (1 for a client request's subrequest).
    pub(crate) depth: u8,
}

/// The response to a [`Session::subrequest`].
#[derive(Debug)]
#[non_exhaustive]
pub struct SubrequestResponse {
    /// The response head.
    pub header: ResponseHeader,
    /// The whole response body (at most [`SUBREQUEST_BODY_LIMIT`]).
    pub body: Bytes,
}

/// A subrequest's future, type-erased: phases that make subrequests run
/// inside the future of the request they belong to.
type SubrequestFuture = Pin<Box<dyn Future<Output = Result<SubrequestResponse>> + Send>>;

/// Runs subrequests on the proxy a request belongs to.
pub(crate) trait SubrequestRunner: Send + Sync {
    /// Run `req` with `body` as a subrequest; with `keep_body`, read its
    /// response body (up to the limit), else drop it.
    fn run(
        self: Arc<Self>,
        req: RequestHeader,
        body: Bytes,
        ctx: SubrequestCtx,
        keep_body: bool,
    ) -> SubrequestFuture;
}

impl<SV: ProxyHttp + 'static> SubrequestRunner for HttpProxy<SV> {
    fn run(
        self: Arc<Self>,
        req: RequestHeader,
        body: Bytes,
        ctx: SubrequestCtx,
        keep_body: bool,
    ) -> SubrequestFuture {
        Box::pin(async move { self.subrequest(req, body, ctx, keep_body).await })
    }
}

/// What a session holds to make subrequests: set when
/// `allow_spawning_subrequest` allowed them.
pub(crate) struct Subrequests {
    pub(crate) runner: Arc<dyn SubrequestRunner>,
    /// The depth of the request this session serves (0: a client's).
    pub(crate) depth: u8,
    /// How many it made so far.
    pub(crate) made: u16,
}

impl std::fmt::Debug for Subrequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subrequests")
            .field("depth", &self.depth)
            .field("made", &self.made)
            .finish_non_exhaustive()
    }
}

/// The request a background refresh of `req`'s entry sends: a GET of
/// the same target with the same fields, minus the client's conditionals
/// and range (it fetches the whole response, for the cache), with `Host`
/// named (an HTTP/2 client names it in the target). Its framing fields
/// are set by [`HttpProxy::subrequest`], which sends it bodyless.
pub(crate) fn refresh_request(req: &RequestHeader) -> Result<RequestHeader> {
    let mut req = req.clone();
    req.set_method(Method::GET);
    for name in super::revalidate::CLIENT_CONDITIONALS {
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
    /// refreshes it meanwhile). Part of the cache: not counted against
    /// the request's subrequests, and not subject to
    /// `allow_spawning_subrequest`.
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
            depth: session.subrequest.as_ref().map_or(0, |s| s.depth) + 1,
        };
        let proxy = Arc::clone(self);
        tokio::spawn(async move {
            match proxy.subrequest(req, Bytes::new(), ctx, false).await {
                Ok(resp) => log::debug!("background refresh: {}", resp.header.status),
                Err(e) => log::debug!("background refresh failed: {e}"),
            }
        });
    }

    /// Run `req` (with `body`) through the phases as a subrequest and
    /// return its response; with `keep_body`, its body up to
    /// [`SUBREQUEST_BODY_LIMIT`], else the body is read and dropped.
    ///
    /// # Errors
    ///
    /// When the proxy did not answer (the request was refused, or the
    /// phases failed before a response head), or the body is too long.
    pub(crate) async fn subrequest(
        self: Arc<Self>,
        mut req: RequestHeader,
        body: Bytes,
        ctx: SubrequestCtx,
        keep_body: bool,
    ) -> Result<SubrequestResponse> {
        req.remove_header("transfer-encoding");
        if body.is_empty() {
            req.remove_header("content-length");
        } else {
            req.insert_header("Content-Length", body.len().to_string())?;
        }
        let (client_end, server_end) = tokio::io::duplex(PIPE_BYTES);
        let mut client = ClientSession::new(Box::new(client_end), Default::default());
        let conn = ServerConnection::new(Box::new(server_end), self.downstream_config());
        let serve = async {
            let Some(h1) = conn.read_request().await? else {
                return Error::e_explain(ErrorType::InternalError, "subrequest not received");
            };
            let mut session = Session::new(h1, false);
            session.subrequest = Some(Box::new(ctx));
            self.serve_request(&mut session, Some(&self)).await;
            // Dropping the session closes the pipe: the reader sees the
            // end of a response without a length there.
            Ok(())
        };
        // Owns the client end: when it ends (an error, the body over the
        // limit), the pipe closes and the serving side stops too.
        let read = async move {
            client.write_request_header(req).await?;
            if !body.is_empty() {
                client.write_body(&body).await?;
            }
            client.finish_body(None).await?;
            let header = client.read_final_response_header().await?.clone();
            let mut kept = BytesMut::new();
            while let Some(piece) = client.read_body_bytes().await? {
                if !keep_body {
                    continue;
                }
                if kept.len() + piece.len() > SUBREQUEST_BODY_LIMIT {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "subrequest response body over the limit",
                    );
                }
                kept.extend_from_slice(&piece);
            }
            Ok::<_, Box<Error>>(SubrequestResponse {
                header,
                body: kept.freeze(),
            })
        };
        let (served, response) = tokio::join!(serve, read);
        served?;
        response
    }
}
