//! Stale entries: the conditional request that revalidates one, the 304
//! that refreshes it (RFC 9111 §4.3), and serving it stale when the
//! origin fails (`stale-if-error`, RFC 5861 §4).

use super::HttpProxy;
use super::cache::Fill;
use crate::{ProxyHttp, Session};
use http::StatusCode;
use pingora_cache::conditional::{add_validators, revalidated_meta};
use pingora_cache::{
    CacheMeta, CachePhase, LockStatus, NoCacheReason, RespCacheable, ResponseTimes,
};
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;
use std::time::SystemTime;

/// What to do with an upstream response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upstream {
    /// Send it on (and store it, if it is being stored).
    Forward,
    /// The client was answered from the cache instead.
    FromCache,
    /// The origin's 304 was about another response than the stored one:
    /// ask again, without validators, for the whole response.
    Refetch,
}

/// The request fields that would make the origin answer a part or a 304
/// where the cache needs the whole response.
pub(super) const CLIENT_CONDITIONALS: [&str; 6] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// Shape the upstream request of a request being stored: a revalidation
/// asks with the stored validators; a miss asks for the whole response
/// (the client's own conditionals and ranges are answered from the
/// stored response next time, and the first time the whole 200 is a
/// valid answer to them).
pub(super) fn upstream_request(session: &Session, req: &mut RequestHeader) -> Result<()> {
    if session.fill.is_none() {
        return Ok(());
    }
    let phase = session.cache.phase();
    if !matches!(phase, CachePhase::Miss | CachePhase::Expired) {
        return Ok(());
    }
    for name in CLIENT_CONDITIONALS {
        req.remove_header(name);
    }
    if let (CachePhase::Expired, Some(meta)) = (phase, session.cache.cache_meta()) {
        add_validators(req, meta.response_header())?;
    }
    Ok(())
}

/// Whether an origin answer counts as an error for `stale-if-error`
/// (RFC 5861 §4).
fn is_origin_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

impl<SV: ProxyHttp> HttpProxy<SV> {
    /// The origin answered the revalidation of an expired entry: a 304
    /// refreshes the stored metadata and the client is served from the
    /// cache; an error status may serve the entry stale. `None`: handle
    /// the response as a miss.
    ///
    /// A 304 whose validators do not match the stored response cannot
    /// refresh it (RFC 9111 §4.3.4), and it is no answer to the client's
    /// request either: the request is turned into a miss and, when
    /// `may_refetch` (its body can be sent again), asked again without
    /// validators ([`Upstream::Refetch`]); otherwise the 304 is passed on.
    pub(super) async fn after_revalidation(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        resp: &ResponseHeader,
        fill: &mut Fill,
        may_refetch: bool,
    ) -> Result<Option<Upstream>> {
        let Some(stored) = session.cache.cache_meta().cloned() else {
            return Ok(None);
        };
        let status = resp.status();
        if is_origin_error(status) {
            let e = Error::explain(ErrorType::HTTPStatus(status.as_u16()), "origin error");
            let e = e.into_up();
            if self.may_serve_stale(session, ctx, &stored, &e) {
                fill.release(LockStatus::TransientError);
                session.cache.serve_stale(stored.clone())?;
                self.serve_stored(session, ctx, &stored).await?;
                return Ok(Some(Upstream::FromCache));
            }
            return Ok(None);
        }
        if status != StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let Some(defaults) = session.cache.defaults().copied() else {
            return Ok(None);
        };
        let auth = session.req_header().has_header("authorization");
        let times = ResponseTimes::at(SystemTime::now());
        match revalidated_meta(&stored, resp, auth, &defaults, times)? {
            Some(RespCacheable::Cacheable(meta)) => {
                if let (Some(storage), Some(key)) =
                    (session.cache.storage(), session.cache.cache_key())
                    && let Err(e) = storage.update_meta(key, &meta).await
                {
                    log::warn!("cache metadata update failed: {e}");
                }
                fill.release(LockStatus::Done);
                session.cache.revalidated(meta.clone())?;
                self.serve_stored(session, ctx, &meta).await?;
                Ok(Some(Upstream::FromCache))
            }
            Some(RespCacheable::Uncacheable(reason)) => {
                // Still the stored response, but no longer to be kept:
                // serve it this once and drop it.
                let storage = session.cache.storage().map(Arc::clone);
                let key = session.cache.cache_key().cloned();
                fill.release(LockStatus::GiveUp);
                self.serve_stored(session, ctx, &stored).await?;
                if let (Some(storage), Some(mut key)) = (storage, key) {
                    key.remove_variance_key();
                    if let Err(e) = storage.purge(&key).await {
                        log::warn!("cache purge failed: {e}");
                    }
                }
                session.cache.disable(reason);
                Ok(Some(Upstream::FromCache))
            }
            None if may_refetch => {
                log::debug!("304 does not match the stored response: asking again");
                session.cache.cache_miss()?;
                Ok(Some(Upstream::Refetch))
            }
            // The 304 is about another response and the request cannot
            // be sent again: pass it on as it is.
            None => {
                fill.release(LockStatus::GiveUp);
                session
                    .cache
                    .disable(NoCacheReason::Custom("not_modified_mismatch"));
                Ok(Some(Upstream::Forward))
            }
        }
    }

    /// After a failed attempt to refresh an expired entry: serve it stale
    /// when its `stale-if-error` window and
    /// [`should_serve_stale`](ProxyHttp::should_serve_stale) allow.
    /// Returns whether the client was answered.
    pub(super) async fn stale_if_error(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        e: &Error,
    ) -> Result<bool> {
        if session.response_started() || session.cache.phase() != CachePhase::Expired {
            return Ok(false);
        }
        let Some(stored) = session.cache.cache_meta().cloned() else {
            return Ok(false);
        };
        if !self.may_serve_stale(session, ctx, &stored, e) {
            return Ok(false);
        }
        if let Some(mut fill) = session.fill.take() {
            fill.release(LockStatus::TransientError);
        }
        session.cache.serve_stale(stored.clone())?;
        self.serve_stored(session, ctx, &stored).await?;
        Ok(true)
    }

    fn may_serve_stale(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        stored: &CacheMeta,
        e: &Error,
    ) -> bool {
        stored.can_serve_stale_if_error(SystemTime::now())
            && self.inner.should_serve_stale(session, ctx, Some(e))
    }

    /// Serve the stored body under the key with `meta`'s head.
    async fn serve_stored(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        meta: &CacheMeta,
    ) -> Result<()> {
        let (Some(storage), Some(key)) = (session.cache.storage(), session.cache.cache_key())
        else {
            return Error::e_explain(ErrorType::InternalError, "cache disabled while serving");
        };
        let Some((_, hit)) = storage.lookup(key).await? else {
            return Error::e_explain(ErrorType::InternalError, "stored entry vanished");
        };
        self.serve_hit(session, ctx, meta, hit).await
    }
}
