//! The cache phases: key, purge, lookup, the cache lock, serving a hit,
//! and storing a miss while it streams to the client.
//!
//! The order follows `pingora_cache`'s "How a proxy drives it": a
//! request the user enabled caching for is keyed, purged when it is a
//! purge, looked up (GET and HEAD only), served from the cache when a
//! fresh entry is found, and otherwise goes to the origin under the
//! cache lock; its response is stored while it streams
//! ([`HttpProxy::cache_response`], [`Fill`]). An unsafe method invalidates
//! its target after a non-error response (RFC 9111 §4.4).

use super::HttpProxy;
use super::revalidate::Upstream;
use crate::{ProxyHttp, Session};
use bytes::Bytes;
use http::Method;
use pingora_cache::filters::{invalidates, request_cacheable};
use pingora_cache::hit::{BodyPlan, plan_hit_with};
use pingora_cache::lock::WritePermit;
use pingora_cache::{
    CacheKey, CacheMeta, CachePhase, ForcedInvalidationKind, HitHandler, LockStatus, Locked,
    MissHandler, NoCacheReason, PurgeStatus, RespCacheable,
};
use pingora_core::header::ResponseHeader;
use pingora_core::protocols::http::ClientSession;
use pingora_error::{BError, Error, ErrorType, Result};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

/// How many times one request looks up and waits on the lock before it
/// goes to the origin whatever it found.
const LOOKUP_ROUNDS: usize = 4;

/// The storing of one response: the storage's writer and the cache lock
/// held for the key, if any.
pub(crate) struct Fill {
    miss: Option<MissHandler>,
    permit: Option<WritePermit>,
    written: usize,
    max: Option<usize>,
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill")
            .field("writing", &self.miss.is_some())
            .field("locked", &self.permit.is_some())
            .field("written", &self.written)
            .finish()
    }
}

impl Fill {
    pub(super) fn release(&mut self, status: LockStatus) {
        if let Some(permit) = self.permit.take() {
            permit.release(status);
        }
    }

    /// Store a piece of the upstream body (`None`: nothing), and finish
    /// the entry at `end`. A failure drops the entry and lets the
    /// response go on uncached: the client is not hurt by the cache.
    async fn write(
        &mut self,
        cache: &mut pingora_cache::HttpCache,
        data: Option<&Bytes>,
        end: bool,
    ) {
        let Some(miss) = &mut self.miss else {
            return;
        };
        if let Some(data) = data.filter(|d| !d.is_empty()) {
            self.written += data.len();
            let too_large = self.max.is_some_and(|max| self.written > max);
            let failed = if too_large {
                Some(NoCacheReason::ResponseTooLarge)
            } else {
                match miss.write_body(data.clone()).await {
                    Ok(()) => None,
                    Err(e) if e.etype() == &pingora_cache::storage::ENTRY_TOO_LARGE => {
                        Some(NoCacheReason::ResponseTooLarge)
                    }
                    Err(e) => {
                        log::warn!("cache write failed: {e}");
                        Some(NoCacheReason::StorageError)
                    }
                }
            };
            if let Some(reason) = failed {
                self.miss = None;
                self.release(LockStatus::GiveUp);
                cache.disable(reason);
                return;
            }
        }
        if !end {
            return;
        }
        if let Some(miss) = self.miss.take() {
            match miss.finish().await {
                Ok(_) => self.release(LockStatus::Done),
                Err(e) => {
                    log::warn!("cache finish failed: {e}");
                    self.release(LockStatus::TransientError);
                }
            }
        }
    }
}

impl Fill {
    /// Whether the body is still being written to the storage.
    const fn is_writing(&self) -> bool {
        self.miss.is_some()
    }
}

/// Whether `session` is storing its response right now.
fn filling(session: &Session) -> bool {
    session.fill.as_ref().is_some_and(Fill::is_writing)
}

/// Store `data` (the upstream body piece) in the fill of `session`, if
/// one is running.
pub(super) async fn fill_body(session: &mut Session, data: Option<&Bytes>, end: bool) {
    if let Some(mut fill) = session.fill.take() {
        fill.write(&mut session.cache, data, end).await;
        session.fill = Some(fill);
    }
}

/// What a lookup found, after the user's hit filter.
enum Found {
    Fresh(CacheMeta, HitHandler),
    /// Stale but inside its `stale-while-revalidate` window.
    StaleWhileRevalidate(CacheMeta, HitHandler),
    /// Stale, or forced to be: go to the origin.
    Expired(CacheMeta),
    Miss,
}

/// What a lookup came to.
enum Lookup {
    /// The client was answered from the cache.
    Answered,
    /// Go to the origin; with the write permit when this request fills.
    GoUpstream(Option<WritePermit>),
}

impl<SV: ProxyHttp> HttpProxy<SV> {
    /// Run the cache phases before the request goes upstream. Returns
    /// whether the request was answered (a hit or a purge).
    pub(super) async fn cache_phases(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> Result<bool> {
        self.inner.request_cache_filter(session, ctx)?;
        if !session.cache.enabled() {
            return Ok(false);
        }
        let key = self.inner.cache_key_callback(session, ctx)?;
        session.cache.set_cache_key(key)?;
        if self.inner.is_purge(session, ctx) {
            self.purge(session, ctx).await?;
            return Ok(true);
        }
        if !request_cacheable(session.req_header()) {
            // Keep the key: a non-error response invalidates it.
            session.cache.bypass();
            crate::metrics::cache_looked_up(session);
            return Ok(false);
        }
        let looked_up = self.lookup(session, ctx).await;
        crate::metrics::cache_looked_up(session);
        let permit = match looked_up? {
            Lookup::Answered => return Ok(true),
            Lookup::GoUpstream(permit) => permit,
        };
        if session.cache.phase() == CachePhase::Miss {
            self.inner.cache_miss(session, ctx);
        }
        if session.cache.enabled() {
            session.fill = Some(Fill {
                miss: None,
                permit,
                written: 0,
                max: session.cache.max_file_size_bytes(),
            });
        }
        Ok(false)
    }

    /// Look the request up, under the cache lock when there is one: a
    /// fresh hit (or, while another request refreshes, a stale one) is
    /// served here; otherwise the request goes upstream, holding the
    /// lock's write permit when it is the one that fills the entry.
    async fn lookup(&self, session: &mut Session, ctx: &mut SV::CTX) -> Result<Lookup> {
        // A background refresh holds the permit from the start.
        let mut permit = session.subrequest.as_mut().and_then(|s| s.permit.take());
        for _ in 0..LOOKUP_ROUNDS {
            match self.find(session, ctx).await? {
                Found::Fresh(meta, hit) => {
                    if let Some(p) = permit.take() {
                        WritePermit::release(p, LockStatus::Done);
                    }
                    session.cache.cache_found(meta.clone())?;
                    self.serve_hit(session, ctx, &meta, hit).await?;
                    return Ok(Lookup::Answered);
                }
                Found::StaleWhileRevalidate(meta, hit) => {
                    // Served stale at once; the request that takes the
                    // lock also starts the one refresh, in the background
                    // (a subrequest, once this request is answered).
                    if permit.is_none()
                        && self.inner.should_serve_stale(session, ctx, None)
                        && let (Some(lock), Some(key)) =
                            (session.cache.cache_lock(), session.cache.cache_key())
                    {
                        if let Locked::Write(p) = lock.lock(key) {
                            session.background_refresh = Some(p);
                        }
                        session.cache.serve_stale(meta.clone())?;
                        self.serve_hit(session, ctx, &meta, hit).await?;
                        return Ok(Lookup::Answered);
                    }
                    session.cache.cache_expired(meta)?;
                }
                Found::Expired(meta) => session.cache.cache_expired(meta)?,
                Found::Miss => session.cache.cache_miss()?,
            }
            if permit.is_some() || !session.cache.enabled() {
                break;
            }
            let Some(lock) = session.cache.cache_lock().cloned() else {
                break;
            };
            let Some(key) = session.cache.cache_key() else {
                break;
            };
            match lock.lock(key) {
                // Look once more: a writer may have finished between the
                // lookup and the lock.
                Locked::Write(p) => permit = Some(p),
                Locked::Read(wait) => match wait.wait().await {
                    LockStatus::Timeout => {
                        session.cache.disable(NoCacheReason::CacheLockTimeout);
                        break;
                    }
                    // Not cacheable: no point waiting for anyone again.
                    LockStatus::GiveUp => break,
                    // Stored, or the writer failed: look again (and
                    // maybe become the writer).
                    _ => {}
                },
            }
        }
        Ok(Lookup::GoUpstream(permit))
    }

    /// Look the key up, choosing the variant the request's fields select,
    /// and ask the user's hit filter about what was found.
    async fn find(&self, session: &mut Session, ctx: &mut SV::CTX) -> Result<Found> {
        let (Some(storage), Some(key)) = (session.cache.storage(), session.cache.cache_key())
        else {
            return Ok(Found::Miss);
        };
        let (storage, mut key) = (Arc::clone(storage), key.clone());
        key.remove_variance_key();
        let found = match storage.lookup(&key).await {
            Ok(Some((meta, hit))) => {
                match self
                    .inner
                    .cache_vary_filter(&meta, ctx, session.req_header())
                {
                    None => Ok(Some((meta, hit))),
                    Some(variance) => {
                        key.set_variance_key(variance);
                        storage.lookup(&key).await
                    }
                }
            }
            other => other,
        };
        if let Some(k) = session.cache.cache_key_mut() {
            *k = key;
        }
        let (meta, hit) = match found {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(Found::Miss),
            Err(e) => {
                // A broken storage must not break the proxy: go to the
                // origin and store nothing.
                log::warn!("cache lookup failed: {e}");
                session.cache.disable(NoCacheReason::StorageError);
                return Ok(Found::Miss);
            }
        };
        let fresh = meta.is_fresh(SystemTime::now());
        let forced = self
            .inner
            .cache_hit_filter(session, &meta, fresh, ctx)
            .await?;
        Ok(match (forced, fresh) {
            (Some(ForcedInvalidationKind::ForceMiss), _) => Found::Miss,
            (Some(ForcedInvalidationKind::ForceExpired), _) => Found::Expired(meta),
            (None, false) if meta.can_serve_stale_while_revalidate(SystemTime::now()) => {
                Found::StaleWhileRevalidate(meta, hit)
            }
            (None, false) => Found::Expired(meta),
            (None, true) => Found::Fresh(meta, hit),
        })
    }

    /// Answer from a stored entry: the head `plan_hit_with` picks (304, HEAD,
    /// range), through `response_filter` and the modules, then the body
    /// through the response body filters. An unread request body is left
    /// to the downstream session, which drains it (or closes the
    /// connection) before the next request.
    pub(super) async fn serve_hit(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        meta: &CacheMeta,
        mut hit: HitHandler,
    ) -> Result<()> {
        let is_304 = self
            .inner
            .cache_not_modified_filter(session, meta.response_header(), ctx)?;
        let inner = &self.inner;
        let plan = plan_hit_with(
            session.req_header(),
            meta,
            SystemTime::now(),
            hit.body_len(),
            is_304,
            |req, header, _| Ok(inner.range_header_filter(req, header, ctx)),
        )?;
        let mut header = plan.header;
        self.inner
            .response_filter(session, &mut header, ctx)
            .await?;
        let bodyless = plan.body == BodyPlan::None;
        session.write_head(header, bodyless).await?;
        match plan.body {
            BodyPlan::None => {}
            BodyPlan::Full => self.send_hit_body(session, ctx, &mut hit).await?,
            BodyPlan::Range(r) => {
                hit.seek(r.start, Some(r.end))?;
                self.send_hit_body(session, ctx, &mut hit).await?;
            }
            BodyPlan::Multi(parts) => {
                for r in parts.ranges() {
                    let head = Bytes::from(parts.part_header(r));
                    self.send_hit_piece(session, ctx, Some(head)).await?;
                    hit.seek(r.start, Some(r.end))?;
                    self.send_hit_body(session, ctx, &mut hit).await?;
                }
                let trailer = Bytes::from(parts.trailer());
                self.send_hit_piece(session, ctx, Some(trailer)).await?;
            }
        }
        if !bodyless {
            let mut end = None;
            self.inner
                .response_body_filter(session, &mut end, true, ctx)?;
            session.write_body(end, true).await?;
        }
        session.finish_response(None).await
    }

    async fn send_hit_body(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        hit: &mut HitHandler,
    ) -> Result<()> {
        while let Some(piece) = hit.read_body().await? {
            self.send_hit_piece(session, ctx, Some(piece)).await?;
        }
        Ok(())
    }

    async fn send_hit_piece(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        mut piece: Option<Bytes>,
    ) -> Result<()> {
        let throttle = self
            .inner
            .response_body_filter(session, &mut piece, false, ctx)?;
        session.write_body(piece, false).await?;
        if let Some(pause) = throttle {
            pingora_timeout::sleep(pause).await;
        }
        Ok(())
    }

    /// The client went away (`e`, a failed write) while its response was
    /// being stored: read the rest of the upstream body into the cache,
    /// so that the entry completes for the requests that already follow
    /// it and for the next ones, then return `e`. An upstream failure
    /// abandons the entry, as it would have with the client there.
    pub(super) async fn fill_without_client(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        client: &mut ClientSession,
        e: BError,
    ) -> BError {
        if !filling(session) {
            return e;
        }
        log::debug!("client gone, finishing the cache fill alone: {e}");
        while filling(session) {
            let mut piece = match client.read_body_bytes().await {
                Ok(piece) => piece,
                Err(up) => {
                    log::debug!("cache fill without client failed: {up}");
                    break;
                }
            };
            let end = piece.is_none() || client.is_body_done();
            let filtered = session
                .run_upstream_response_body_modules(&mut piece, end)
                .and_then(|()| {
                    self.inner
                        .upstream_response_body_filter(session, &mut piece, end, ctx)
                });
            if filtered.is_err() {
                break;
            }
            fill_body(session, piece.as_ref(), end).await;
            if end {
                break;
            }
        }
        e
    }

    /// Remove every variant under the key and answer with the response
    /// `purge_response_filter` leaves: 200 when something was removed,
    /// 404 when nothing was stored, 500 when the storage failed.
    async fn purge(&self, session: &mut Session, ctx: &mut SV::CTX) -> Result<()> {
        let (Some(storage), Some(key)) = (session.cache.storage(), session.cache.cache_key())
        else {
            return Error::e_explain(ErrorType::InternalError, "purge without a cache key");
        };
        let mut key = key.clone();
        key.remove_variance_key();
        let status = match storage.purge(&key).await {
            Ok(true) => PurgeStatus::Purged,
            Ok(false) => PurgeStatus::NotFound,
            Err(e) => PurgeStatus::Error(e),
        };
        let code = match status {
            PurgeStatus::Purged => 200,
            PurgeStatus::NotFound => 404,
            PurgeStatus::Error(_) => 500,
        };
        let mut resp = ResponseHeader::build(code, Some(2))?;
        resp.insert_header("Content-Length", "0")?;
        let mut resp = Cow::Owned(resp);
        self.inner
            .purge_response_filter(session, ctx, status, &mut resp)?;
        session.cache.disable(NoCacheReason::Custom("purge"));
        session.write_head(resp.into_owned(), true).await?;
        session.finish_response(None).await
    }

    /// The upstream response head arrived (hop-by-hop fields removed,
    /// `upstream_response_filter` run): decide whether to store it and
    /// start the entry. Never fails the request: a response that cannot
    /// be stored is proxied uncached. `may_refetch`: the request can be
    /// sent again (see [`HttpProxy::after_revalidation`]).
    pub(super) async fn cache_response(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        resp: &ResponseHeader,
        may_refetch: bool,
    ) -> Result<Upstream> {
        let Some(mut fill) = session.fill.take() else {
            return Ok(Upstream::Forward);
        };
        let phase = session.cache.phase();
        if !matches!(phase, CachePhase::Miss | CachePhase::Expired) {
            fill.release(LockStatus::GiveUp);
            return Ok(Upstream::Forward);
        }
        if phase == CachePhase::Expired
            && let Some(answer) = self
                .after_revalidation(session, ctx, resp, &mut fill, may_refetch)
                .await?
        {
            if answer == Upstream::Refetch {
                // Still this request's to fill, with the lock it holds.
                session.fill = Some(fill);
            }
            return Ok(answer);
        }
        // A HEAD response has no body to store.
        if session.req_header().method() == Method::HEAD {
            fill.release(LockStatus::GiveUp);
            return Ok(Upstream::Forward);
        }
        let meta = match self.inner.response_cache_filter(session, resp, ctx)? {
            RespCacheable::Cacheable(meta) => meta,
            RespCacheable::Uncacheable(reason) => {
                fill.release(LockStatus::GiveUp);
                session.cache.disable(reason);
                return Ok(Upstream::Forward);
            }
        };
        // Known too large from the start: do not make an entry readers
        // would join and then lose.
        let length = resp
            .get_header("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if let (Some(max), Some(length)) = (fill.max, length)
            && length > max
        {
            fill.release(LockStatus::GiveUp);
            session.cache.disable(NoCacheReason::ResponseTooLarge);
            return Ok(Upstream::Forward);
        }
        let variance = self
            .inner
            .cache_vary_filter(&meta, ctx, session.req_header());
        let Some(storage) = session.cache.storage().cloned() else {
            return Ok(Upstream::Forward);
        };
        let Some(key) = session.cache.cache_key_mut() else {
            return Ok(Upstream::Forward);
        };
        match variance {
            Some(v) => key.set_variance_key(v),
            None => key.remove_variance_key(),
        }
        match storage.get_miss_handler(key, &meta).await {
            Ok(miss) => {
                let streaming = storage.support_streaming_partial_write();
                fill.miss = Some(miss);
                session.cache.set_cache_meta(meta)?;
                // Readers can follow the entry as it fills: let the
                // waiters look it up now rather than after the body.
                if streaming {
                    fill.release(LockStatus::Done);
                }
                session.fill = Some(fill);
            }
            Err(e) => {
                log::warn!("cache miss handler failed: {e}");
                fill.release(LockStatus::TransientError);
                session.cache.disable(NoCacheReason::StorageError);
            }
        }
        Ok(Upstream::Forward)
    }

    /// After a response to a bypassed request: an unsafe method with a
    /// non-error status removes the stored responses of its target
    /// (RFC 9111 §4.4).
    pub(super) async fn invalidate_after(&self, session: &mut Session) {
        if !session.cache.bypassing() {
            return;
        }
        let Some(status) = session.response_status() else {
            return;
        };
        let Ok(status) = http::StatusCode::from_u16(status) else {
            return;
        };
        if !invalidates(session.req_header().method(), status) {
            return;
        }
        if let (Some(storage), Some(key)) = (session.cache.storage(), session.cache.cache_key()) {
            let mut key: CacheKey = key.clone();
            key.remove_variance_key();
            if let Err(e) = storage.purge(&key).await {
                log::warn!("cache invalidation failed: {e}");
            }
        }
    }
}
