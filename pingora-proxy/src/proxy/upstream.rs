//! Pick a peer, connect, and retry what may be retried.

use super::HttpProxy;
use super::body::SentBody;
use super::exchange::{Attempted, Failure};
use crate::{ProxyHttp, Session};
use pingora_core::connectors::http::retry_before_response;
use pingora_core::upstreams::Peer;
use pingora_error::Result;

impl<SV: ProxyHttp> HttpProxy<SV> {
    /// Send the request upstream and its response downstream, retrying up
    /// to `max_retries` times: after a failed connect, or after an error
    /// on a reused connection before any response byte, while the request
    /// body sent so far can be sent again. Each attempt asks
    /// `upstream_peer` again, so it can pick another peer.
    ///
    /// A request the upstream may have processed is not sent again unless
    /// its method is idempotent (RFC 9110 §9.2.2): once the head of a
    /// POST went out, the retry hint is cleared before `error_while_proxy`
    /// sees the error, unless the upstream showed it did not process the
    /// request (an HTTP/2 REFUSED_STREAM or GOAWAY, RFC 9113 §8.7).
    /// `error_while_proxy` may still set it again.
    pub(super) async fn proxy_to_upstream(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        session.check_forwardable()?;
        let mut body = SentBody::default();
        let mut retries = 0;
        loop {
            body.start_attempt();
            let peer = self.inner.upstream_peer(session, ctx).await?;
            session.set_upstream_addr(peer.address());
            let (mut client, reused) = match self.connector.get_session(&peer).await {
                Ok(connected) => connected,
                Err(e) => {
                    let e = self.inner.fail_to_connect(session, &peer, ctx, e);
                    if e.retry() && retries < self.max_retries {
                        retries += 1;
                        crate::metrics::retried();
                        log::debug!("retrying after connect failure: {e}");
                        continue;
                    }
                    return Err(e);
                }
            };
            let attempt = self
                .attempt(session, ctx, &peer, &mut client, reused, &mut body)
                .await;
            let Failure {
                mut e,
                before_response,
            } = match attempt {
                Ok(Attempted::Done) => {
                    self.connector.release_session(client, &peer);
                    return Ok(());
                }
                Ok(Attempted::Again) => {
                    self.connector.release_session(client, &peer);
                    body.set_refetched();
                    continue;
                }
                Err(failure) => failure,
            };
            if before_response {
                retry_before_response(&mut e, reused, body.may_be_processed_once_only());
            }
            let client_reused = session.is_downstream_reused();
            let e = self
                .inner
                .error_while_proxy(&peer, session, e, ctx, client_reused);
            let replayable = before_response && !session.response_started() && body.replayable();
            if e.retry() && replayable && retries < self.max_retries {
                retries += 1;
                crate::metrics::retried();
                log::debug!("retrying after upstream failure: {e}");
                continue;
            }
            return Err(e);
        }
    }
}
