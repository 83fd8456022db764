//! Subrequests made from a phase: [`Session::subrequest`] and
//! [`Session::spawn_background_subrequest`].

use super::Session;
use crate::proxy::{
    MAX_SUBREQUEST_DEPTH, MAX_SUBREQUESTS_PER_REQUEST, SubrequestCtx, SubrequestResponse,
};
use bytes::Bytes;
use pingora_core::header::RequestHeader;
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;

impl Session {
    /// Run `req` (with `body`, empty for none) through this proxy's
    /// phases as a subrequest, with a CTX of its own, and return its
    /// response: an auth check, say, whose 401 stops this request.
    ///
    /// Allowed only when
    /// [`allow_spawning_subrequest`](crate::ProxyHttp::allow_spawning_subrequest)
    /// returned `true` for this request; subrequests nest at most
    /// [`MAX_SUBREQUEST_DEPTH`](crate::MAX_SUBREQUEST_DEPTH) deep, and a
    /// request makes at most
    /// [`MAX_SUBREQUESTS_PER_REQUEST`](crate::MAX_SUBREQUESTS_PER_REQUEST).
    /// The subrequest's `client_addr()` is this request's; its head is
    /// `req` as given (give it a `Host`).
    ///
    /// # Errors
    ///
    /// When subrequests are not allowed or past a bound, when the proxy
    /// did not answer it, or when its body is over
    /// [`SUBREQUEST_BODY_LIMIT`](crate::SUBREQUEST_BODY_LIMIT). A
    /// subrequest answered with an error status is not an error: read
    /// `header.status`.
    pub async fn subrequest(
        &mut self,
        req: RequestHeader,
        body: Bytes,
    ) -> Result<SubrequestResponse> {
        let (runner, ctx) = self.next_subrequest()?;
        runner.run(req, body, ctx, true).await
    }

    /// Start `req` as a subrequest on a task of its own: it outlives this
    /// request, and its response is dropped (a cache warm-up, a
    /// notification). Bounded as [`subrequest`](Self::subrequest).
    ///
    /// # Errors
    ///
    /// When subrequests are not allowed or past a bound.
    pub fn spawn_background_subrequest(&mut self, req: RequestHeader) -> Result<()> {
        let (runner, ctx) = self.next_subrequest()?;
        tokio::spawn(async move {
            if let Err(e) = runner.run(req, Bytes::new(), ctx, false).await {
                log::debug!("background subrequest failed: {e}");
            }
        });
        Ok(())
    }

    /// Count one more subrequest of this request, within the bounds.
    fn next_subrequest(
        &mut self,
    ) -> Result<(Arc<dyn crate::proxy::SubrequestRunner>, SubrequestCtx)> {
        let digest = self.digest().cloned();
        let Some(subs) = self.subrequests.as_mut() else {
            return Error::e_explain(
                ErrorType::InternalError,
                "subrequests not allowed for this request (allow_spawning_subrequest)",
            );
        };
        if subs.depth >= MAX_SUBREQUEST_DEPTH {
            return Error::e_explain(ErrorType::InternalError, "subrequests nested too deep");
        }
        if subs.made >= MAX_SUBREQUESTS_PER_REQUEST {
            return Error::e_explain(ErrorType::InternalError, "too many subrequests");
        }
        subs.made += 1;
        let ctx = SubrequestCtx {
            digest,
            permit: None,
            depth: subs.depth + 1,
        };
        Ok((Arc::clone(&subs.runner), ctx))
    }
}
