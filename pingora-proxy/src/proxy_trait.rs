//! [`ProxyHttp`]: the callbacks ("phases") a user implements to run a proxy.

use crate::Session;
use bytes::Bytes;
use http::header::HeaderMap;
use pingora_cache::filters::{NoCacheReason, ResponseTimes};
use pingora_cache::range::RangeType;
use pingora_cache::{
    CacheControl, CacheKey, CacheMeta, ForcedInvalidationKind, HashBinary, PurgeStatus,
    RespCacheable,
};
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::modules::http::HttpModules;
use pingora_core::protocols::Digest;
use pingora_core::upstreams::HttpPeer;
use pingora_error::{Error, Result};
use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

/// What [`ProxyHttp::fail_to_proxy`] did: the status it answered with
/// (0 when none), and whether the client connection may serve another
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailToProxy {
    /// The status of the error response sent, or 0 when none was.
    pub error_code: u16,
    /// Whether the client connection may be kept for its next request.
    /// It is closed anyway when a response had started before the error
    /// (the client could not tell a cut response from a whole one), or
    /// the error left the connection unusable.
    pub can_reuse_downstream: bool,
}

/// The phases of a proxied request, each with a default, called in this
/// order (the book chapter `docs/src/phases.md` draws it):
///
/// 1. [`early_request_filter`](Self::early_request_filter)
/// 2. [`request_filter`](Self::request_filter): may answer and stop
///    Then the cache phases, when [`request_cache_filter`](Self::request_cache_filter)
///    enabled caching: [`cache_key_callback`](Self::cache_key_callback),
///    [`is_purge`](Self::is_purge) (then
///    [`purge_response_filter`](Self::purge_response_filter) and stop), the
///    lookup with [`cache_vary_filter`](Self::cache_vary_filter) and
///    [`cache_hit_filter`](Self::cache_hit_filter); a fresh hit is served
///    ([`cache_not_modified_filter`](Self::cache_not_modified_filter),
///    [`range_header_filter`](Self::range_header_filter)) through
///    [`response_filter`](Self::response_filter) and
///    [`response_body_filter`](Self::response_body_filter) and stops; a
///    miss calls [`cache_miss`](Self::cache_miss) and goes on, and its
///    response meets [`response_cache_filter`](Self::response_cache_filter)
///    after [`upstream_response_filter`](Self::upstream_response_filter).
///    A stale entry is revalidated upstream, or served stale when
///    [`should_serve_stale`](Self::should_serve_stale) allows.
/// 3. [`proxy_upstream_filter`](Self::proxy_upstream_filter): may refuse
///    to go upstream
/// 4. [`upstream_peer`](Self::upstream_peer) (required), then connect;
///    on failure [`fail_to_connect`](Self::fail_to_connect), which may
///    retry from step 4
/// 5. [`connected_to_upstream`](Self::connected_to_upstream)
/// 6. [`upstream_request_filter`](Self::upstream_request_filter)
/// 7. [`request_body_filter`](Self::request_body_filter), once per piece of
///    request body (at least once, with `end_of_stream` set last)
/// 8. [`upstream_response_filter`](Self::upstream_response_filter), then
///    [`response_filter`](Self::response_filter)
/// 9. [`upstream_response_body_filter`](Self::upstream_response_body_filter)
///    then [`response_body_filter`](Self::response_body_filter), per piece
///    of response body
/// 10. [`upstream_response_trailer_filter`](Self::upstream_response_trailer_filter)
///     then [`response_trailer_filter`](Self::response_trailer_filter), when
///     the upstream sent trailers
/// 11. [`logging`](Self::logging), exactly once per request, also after
///     errors and short-circuits
///
/// An error in steps 5-10 goes to [`error_while_proxy`](Self::error_while_proxy),
/// which may retry from step 4 while nothing was sent downstream and the
/// request body can be replayed; a request the upstream may have processed
/// is retried by default only when its method is idempotent (see there).
/// A `CONNECT` request stops after step 2 with `405` unless a phase
/// answered it (see [`request_filter`](Self::request_filter)), or becomes
/// a tunnel on a proxy built
/// [`with_connect`](crate::HttpProxy::with_connect). An error
/// that ends the request goes to
/// [`fail_to_proxy`](Self::fail_to_proxy), which answers the client when no
/// response has started, then to [`logging`](Self::logging).
///
///
/// # HTTP modules
///
/// The modules of [`init_downstream_modules`](Self::init_downstream_modules)
/// run around these phases, in their [order](pingora_core::modules::http::HttpModuleBuilder::order):
///
/// - their request head filters right after step 1
///   (`early_request_filter`), before step 2 (`request_filter`);
/// - their request body filters as each piece is read from the client,
///   before [`request_body_filter`](Self::request_body_filter) (and
///   before a phase that reads the body with
///   [`Session::read_request_body`] sees it);
/// - their upstream response head and body filters as the upstream's
///   response arrives, before
///   [`upstream_response_filter`](Self::upstream_response_filter),
///   [`upstream_response_body_filter`](Self::upstream_response_body_filter)
///   and the cache (so that, for example, compression's upstream
///   decompression gives those phases plain text);
/// - their response head filters after
///   [`response_filter`](Self::response_filter), just before the head is
///   written, and their body and trailer filters after
///   [`response_body_filter`](Self::response_body_filter) and
///   [`response_trailer_filter`](Self::response_trailer_filter).
///
/// Responses a phase writes itself ([`Session::write_response_header`],
/// [`Session::respond_error_with_body`]) go through the response filters
/// too; a bodyless [`Session::respond_error`] does not.
///
/// Implement the asynchronous phases with plain `async fn` (no macro
/// needed); each must return a `Send` future, as the proxy runs on a
/// multi-threaded runtime. Their futures are not boxed: the default ones
/// cost nothing, and a request makes no allocation for its phases.
///
/// ```
/// use pingora_core::upstreams::HttpPeer;
/// use pingora_error::Result;
/// use pingora_proxy::{ProxyHttp, Session};
///
/// struct Origin;
///
/// impl ProxyHttp for Origin {
///     type CTX = ();
///     fn new_ctx(&self) {}
///
///     async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
///         let addr: std::net::SocketAddr = ([127, 0, 0, 1], 8000).into();
///         Ok(Box::new(HttpPeer::new(addr, false, "")))
///     }
/// }
/// ```
///
/// The response body filters are plain functions, not `async`: they run
/// for every piece of body (a filter that needs to wait returns a pause,
/// see [`response_body_filter`](Self::response_body_filter)).
/// [`request_body_filter`](Self::request_body_filter) is `async`, as in
/// Pingora.
pub trait ProxyHttp: Send + Sync {
    /// Per-request state, created by [`new_ctx`](Self::new_ctx) and handed
    /// to every phase of that request.
    type CTX: Send;

    /// A fresh state for a new request.
    fn new_ctx(&self) -> Self::CTX;

    /// Register the HTTP modules every request of this proxy runs
    /// (called once, when the proxy is built); each request gets fresh
    /// instances, reachable with [`Session::downstream_modules_ctx_mut`].
    /// None by default.
    ///
    /// Where the modules run among the phases (see the
    /// [module order](ProxyHttp#http-modules)): the request hooks before
    /// the user's filters of the same kind, the response hooks after
    /// them, right before the bytes go to the client.
    ///
    /// ```
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_error::Result;
    /// # use pingora_proxy::{ProxyHttp, Session};
    /// use pingora_core::modules::http::{
    ///     async_trait, HttpModule, HttpModuleBuilder, HttpModules, Module,
    /// };
    /// use pingora_core::header::ResponseHeader;
    /// use std::any::Any;
    ///
    /// struct Tag;
    ///
    /// #[async_trait]
    /// impl HttpModule for Tag {
    ///     async fn response_header_filter(&mut self, resp: &mut ResponseHeader, _: bool) -> Result<()> {
    ///         resp.insert_header("X-Tagged", "1")
    ///     }
    ///     fn as_any(&self) -> &dyn Any { self }
    ///     fn as_any_mut(&mut self) -> &mut dyn Any { self }
    /// }
    ///
    /// struct TagBuilder;
    ///
    /// impl HttpModuleBuilder for TagBuilder {
    ///     fn init(&self) -> Module { Box::new(Tag) }
    /// }
    ///
    /// struct Tagged;
    ///
    /// impl ProxyHttp for Tagged {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    ///     fn init_downstream_modules(&self, modules: &mut HttpModules) {
    ///         modules.add_module(Box::new(TagBuilder));
    ///     }
    /// #   async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
    /// #       unimplemented!()
    /// #   }
    /// }
    /// ```
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// Where to send the request. Called again for each retry, so it can
    /// pick another peer.
    ///
    /// # Errors
    ///
    /// An error ends the request (answered through
    /// [`fail_to_proxy`](Self::fail_to_proxy)).
    fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<Box<HttpPeer>>> + Send;

    /// The first phase, before any other processing of the request.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn early_request_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { Ok(()) }
    }

    /// Inspect or change the request, or answer it directly. Return
    /// `Ok(true)` when a response was written (for example with
    /// [`Session::respond_error`]): the request then goes no further.
    ///
    /// This phase (and [`early_request_filter`](Self::early_request_filter))
    /// also sees `CONNECT` requests, which the proxy never forwards: one
    /// not answered here gets `405 Method Not Allowed` with an `Allow`
    /// field, and no phase after this one runs for it (no
    /// [`upstream_peer`](Self::upstream_peer), no upstream connection).
    /// On a forward proxy ([`with_connect`](crate::HttpProxy::with_connect))
    /// one not answered here is checked against its allow-list and may
    /// become a tunnel; still no later phase runs.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn request_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(false) }
    }

    /// Turn caching on for this request: call
    /// [`session.cache.enable`](pingora_cache::HttpCache::enable) with a
    /// storage, the defaults for what responses do not say, and a
    /// [`CacheLock`](pingora_cache::CacheLock) against stampedes. Off by
    /// default: nothing is cached unless this phase enables it. Runs after
    /// [`request_filter`](Self::request_filter).
    ///
    /// ```
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_error::Result;
    /// # use pingora_proxy::{ProxyHttp, Session};
    /// use pingora_cache::{CacheLock, CacheMetaDefaults, MemCache};
    /// use std::sync::{Arc, LazyLock};
    /// use std::time::Duration;
    ///
    /// static STORAGE: LazyLock<Arc<MemCache>> = LazyLock::new(|| Arc::new(MemCache::new(64 << 20)));
    /// static LOCK: LazyLock<Arc<CacheLock>> =
    ///     LazyLock::new(|| Arc::new(CacheLock::new(Duration::from_secs(5))));
    ///
    /// struct Cdn;
    ///
    /// impl ProxyHttp for Cdn {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    /// #   async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
    /// #       unimplemented!()
    /// #   }
    ///     fn request_cache_filter(&self, session: &mut Session, _: &mut ()) -> Result<()> {
    ///         let storage = STORAGE.clone();
    ///         session.cache.enable(storage, Some(LOCK.clone()), CacheMetaDefaults::default());
    ///         Ok(())
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn request_cache_filter(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<()> {
        Ok(())
    }

    /// The cache key of the request. The default is
    /// [`CacheKey::for_request`] with an empty namespace and the scheme the
    /// client used (`https` on TLS): scheme, host, path and query. Extend
    /// it ([`CacheKey::extend`]) for anything else that selects the
    /// response; request fields the key does not name never change which
    /// stored response is served.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn cache_key_callback(&self, session: &Session, _ctx: &mut Self::CTX) -> Result<CacheKey> {
        let tls = session.digest().is_some_and(|d| d.tls.is_some());
        let scheme = if tls { "https" } else { "http" };
        Ok(CacheKey::for_request("", scheme, session.req_header()))
    }

    /// Nothing usable was found: the request goes to the origin. A hook
    /// for logging or counting; the proxy has already recorded the miss
    /// (the default calls `session.cache.cache_miss()`, which does
    /// nothing more then).
    fn cache_miss(&self, session: &mut Session, _ctx: &mut Self::CTX) {
        // Already in the miss phase: this cannot fail.
        let _ = session.cache.cache_miss();
    }

    /// A stored response was found (`is_fresh` says whether it is fresh
    /// now). Return `Some(ForceMiss)` to ignore it, or
    /// `Some(ForceExpired)` to fetch it again as if it were stale; `None`
    /// serves it when fresh.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn cache_hit_filter(
        &self,
        _session: &mut Session,
        _meta: &CacheMeta,
        _is_fresh: bool,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<Option<ForcedInvalidationKind>>> + Send {
        async move { Ok(None) }
    }

    /// Whether and how to store the upstream response `resp` (after
    /// [`upstream_response_filter`](Self::upstream_response_filter)). The
    /// default applies RFC 9111 as a shared cache
    /// ([`resp_cacheable`](pingora_cache::resp_cacheable)) with the
    /// defaults given to `enable`: `no-store`, `private`, `Vary: *`,
    /// `Set-Cookie` and unpermitted `Authorization` are not stored.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<RespCacheable> {
        let Some(defaults) = session.cache.defaults() else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::NeverEnabled));
        };
        let cc = CacheControl::from_resp_headers(resp);
        let auth = session.req_header().has_header("authorization");
        let times = ResponseTimes::at(std::time::SystemTime::now());
        Ok(pingora_cache::resp_cacheable(
            cc.as_ref(),
            resp.clone(),
            auth,
            defaults,
            times,
        ))
    }

    /// The variance of `req` against the stored (or new) response `meta`:
    /// which variant of the key serves it. The default follows the
    /// response's `Vary` ([`variance_for`](pingora_cache::variance::variance_for));
    /// `None` means one variant for every request.
    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Self::CTX,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        pingora_cache::variance::variance_for(meta.response_header(), req)
    }

    /// Whether the request is a purge: it then removes every variant
    /// stored under its key and is answered by the proxy (see
    /// [`purge_response_filter`](Self::purge_response_filter)), without
    /// going upstream. Asked only when caching is enabled. `false` by
    /// default.
    fn is_purge(&self, _session: &Session, _ctx: &Self::CTX) -> bool {
        false
    }

    /// Change the answer to a purge: by default an empty `200` when
    /// something was removed, `404` when nothing was stored, `500` when the
    /// storage failed.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn purge_response_filter(
        &self,
        _session: &Session,
        _ctx: &mut Self::CTX,
        _purge_status: PurgeStatus,
        _purge_response: &mut Cow<'static, ResponseHeader>,
    ) -> Result<()> {
        Ok(())
    }

    /// Whether a response served from the cache is answered `304 Not
    /// Modified`: `resp` is the stored head. The default follows the
    /// request's `If-None-Match` / `If-Modified-Since` (RFC 9110 §13.1).
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn cache_not_modified_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<bool> {
        Ok(pingora_cache::conditional::not_modified(
            session.req_header(),
            resp,
        ))
    }

    /// Which part of a response served from the cache is sent, for a
    /// request with `Range` (RFC 9110 §14): change `resp` (status,
    /// `Content-Range`, `Content-Length`) and say which bytes. Called only
    /// when the stored body is complete; `resp` then carries its length
    /// in `Content-Length`. The default serves single and multiple
    /// ranges, and 416 for unsatisfiable ones.
    fn range_header_filter(
        &self,
        req: &RequestHeader,
        resp: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> RangeType {
        let len = resp
            .get_header("content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let Some(len) = len else {
            return RangeType::None;
        };
        pingora_cache::range::range_header_filter(req, resp, len).unwrap_or(RangeType::None)
    }

    /// Whether a stale entry may be served. `error` is `None` inside the
    /// entry's `stale-while-revalidate` window (the entry is then served
    /// stale to the requests that find another one refreshing it), and
    /// the error that ended the refresh inside its `stale-if-error`
    /// window (RFC 5861). The default allows it, for errors that come
    /// from the upstream only. The windows are never widened: an entry
    /// past them, or with `must-revalidate`, is never served stale.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
        error: Option<&Error>,
    ) -> bool {
        error.is_none_or(|e| e.esource() == &pingora_error::ErrorSource::Upstream)
    }

    /// Whether to go upstream at all. Returning `false` ends the request:
    /// with the response written here, or with 502 when none was.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn proxy_upstream_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(true) }
    }

    /// A connection to `peer` is ready; `reused` says it came from the pool
    /// (this is the hook for a reused pooled connection, as in Pingora;
    /// Pingora's raw file descriptor argument is not passed: the digest
    /// carries what is known about the socket).
    ///
    /// # Errors
    ///
    /// An error goes to [`error_while_proxy`](Self::error_while_proxy).
    fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _digest: Option<&Digest>,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { Ok(()) }
    }

    /// Change the request head sent upstream (a copy of the downstream one,
    /// hop-by-hop fields already removed).
    ///
    /// # Errors
    ///
    /// An error goes to [`error_while_proxy`](Self::error_while_proxy).
    fn upstream_request_filter(
        &self,
        _session: &mut Session,
        _upstream_request: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { Ok(()) }
    }

    /// Inspect or change a piece of request body on its way upstream.
    /// `end_of_stream` is set on the last call. A filter that changes the
    /// body length must fix the framing in
    /// [`upstream_request_filter`](Self::upstream_request_filter) (remove
    /// `Content-Length`, set `Transfer-Encoding: chunked`).
    ///
    /// Asynchronous, as in Pingora, so a filter may wait (to check a
    /// piece against a service, say) while the upload is held back by
    /// backpressure. The default's future costs nothing.
    ///
    /// # Errors
    ///
    /// An error goes to [`error_while_proxy`](Self::error_while_proxy).
    fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { Ok(()) }
    }

    /// Change the response head as it arrives from the upstream
    /// (hop-by-hop fields already removed).
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// Change the response head just before it goes downstream.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { Ok(()) }
    }

    /// Inspect or change a piece of response body as it arrives from the
    /// upstream. `end_of_stream` is set on the last call.
    ///
    /// # Errors
    ///
    /// An error ends the request; the downstream connection is closed.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// Inspect or change a piece of response body just before it goes
    /// downstream. A filter that changes the length must remove
    /// `Content-Length` in [`response_filter`](Self::response_filter).
    ///
    /// Return `Some(duration)` to throttle: the proxy waits that long
    /// after writing this piece before it reads the next one from the
    /// upstream (the upstream is slowed down by backpressure, nothing
    /// piles up in memory). `None` goes on at once.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_error::Result;
    /// # use pingora_proxy::{ProxyHttp, Session};
    /// use std::time::Duration;
    ///
    /// /// About 1 MB/s per response: a 16 KiB piece, then 16 ms of rest.
    /// struct Slow;
    ///
    /// impl ProxyHttp for Slow {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    /// #   async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
    /// #       unimplemented!()
    /// #   }
    ///     fn response_body_filter(
    ///         &self,
    ///         _session: &mut Session,
    ///         body: &mut Option<Bytes>,
    ///         _end_of_stream: bool,
    ///         _ctx: &mut (),
    ///     ) -> Result<Option<Duration>> {
    ///         let len = body.as_ref().map_or(0, Bytes::len) as u64;
    ///         Ok(Some(Duration::from_micros(len)))
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// An error ends the request; the downstream connection is closed.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        Ok(None)
    }

    /// Change the response trailers as they arrive from the upstream,
    /// when it sent some; before
    /// [`response_trailer_filter`](Self::response_trailer_filter).
    ///
    /// # Errors
    ///
    /// An error ends the request; the downstream connection is closed.
    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        _upstream_trailers: &mut HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// Change the response trailers just before they go downstream, when
    /// the upstream sent some. Bytes returned are sent as the last piece
    /// of response body, before the trailers (for a protocol that carries
    /// trailers in its body, such as gRPC-web; the response must then
    /// not have a `Content-Length`).
    ///
    /// # Errors
    ///
    /// An error ends the request; the downstream connection is closed.
    fn response_trailer_filter(
        &self,
        _session: &mut Session,
        _upstream_trailers: &mut HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        async move { Ok(None) }
    }

    /// The request is over: log it, count it. Called exactly once per
    /// request, with the error that ended it, if any.
    fn logging(
        &self,
        _session: &mut Session,
        _e: Option<&Error>,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Connecting to `peer` failed. Return the error, after deciding
    /// whether to retry with [`Error::set_retry`]; connect failures are
    /// marked retryable by default. Nothing of the request reached `peer`,
    /// so a retry is safe whatever the method.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        e
    }

    /// Proxying to `peer` failed after connecting. Return the error, after
    /// deciding whether to retry with [`Error::set_retry`]. `client_reused`
    /// says whether the downstream connection served requests before this
    /// one.
    ///
    /// The retry hint `e` arrives with, which the default keeps:
    ///
    /// - a failure on a reused upstream connection before any response
    ///   byte is retryable (the pooled connection may have gone stale), a
    ///   failure on a fresh one is not;
    /// - but once the request head was sent, a request whose method is not
    ///   idempotent (RFC 9110 §9.2.2: anything but GET, HEAD, OPTIONS,
    ///   TRACE, PUT and DELETE, so POST and PATCH among others) is never
    ///   marked retryable: the upstream may have processed it, and a replay
    ///   would process it twice. The one exception is an HTTP/2 upstream
    ///   that showed it did not process the stream (REFUSED_STREAM, or a
    ///   GOAWAY below it; RFC 9113 §8.7).
    ///
    /// To retry anyway, for a method known to be safe to repeat here (a
    /// POST that is a read-only query, or one carrying an idempotency
    /// key), call `e.set_retry(true)`. A retry still happens only while no
    /// response byte was received and the request body sent so far was
    /// kept (up to 64 KiB), and at most `max_retries` times.
    ///
    /// ```
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_error::{Error, Result};
    /// # use pingora_proxy::{ProxyHttp, Session};
    /// struct Search;
    ///
    /// impl ProxyHttp for Search {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    /// #   async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
    /// #       unimplemented!()
    /// #   }
    ///     fn error_while_proxy(
    ///         &self,
    ///         _peer: &HttpPeer,
    ///         session: &mut Session,
    ///         mut e: Box<Error>,
    ///         _ctx: &mut (),
    ///         _client_reused: bool,
    ///     ) -> Box<Error> {
    ///         // POST /search only reads: sending it twice is harmless. The
    ///         // same failure a GET would be retried for is retried.
    ///         let query = session.req_header().uri().path() == "/search";
    ///         if query && matches!(e.etype(), pingora_error::ErrorType::ConnectionClosed) {
    ///             e.set_retry(true);
    ///         }
    ///         e
    ///     }
    /// }
    /// ```
    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        _session: &mut Session,
        e: Box<Error>,
        _ctx: &mut Self::CTX,
        _client_reused: bool,
    ) -> Box<Error> {
        e
    }

    /// The request failed: answer the client with an error response when
    /// no response has started, and say what was sent and whether the
    /// client connection may be kept. The default maps the error with
    /// [`crate::error_status`], answers with a bodyless response and
    /// closes the connection.
    ///
    /// A custom answer may keep the connection: write a complete response
    /// (for example with [`Session::respond_error_with_body`]) and return
    /// `can_reuse_downstream: true`.
    ///
    /// ```
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_error::{Error, Result};
    /// # use pingora_proxy::{FailToProxy, ProxyHttp, Session};
    /// struct Friendly;
    ///
    /// impl ProxyHttp for Friendly {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    /// #   async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
    /// #       unimplemented!()
    /// #   }
    ///     async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _: &mut ()) -> FailToProxy {
    ///         let code = pingora_proxy::error_status(e);
    ///         let sent = code > 0
    ///             && !session.response_started()
    ///             && session.respond_error_with_body(code, "try again later\n".into()).await.is_ok();
    ///         FailToProxy {
    ///             error_code: if sent { code } else { 0 },
    ///             can_reuse_downstream: sent,
    ///         }
    ///     }
    /// }
    /// ```
    fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = FailToProxy> + Send {
        async move {
            let status = crate::error_status(e);
            let mut error_code = 0;
            if status > 0
                && !session.response_started()
                && session.respond_error(status).await.is_ok()
            {
                error_code = status;
            }
            FailToProxy {
                error_code,
                can_reuse_downstream: false,
            }
        }
    }

    /// Whether this request may make subrequests
    /// ([`Session::subrequest`], [`Session::spawn_background_subrequest`]):
    /// requests run through these same phases, with their own CTX. Asked
    /// once per request, before `early_request_filter`. Off by default.
    ///
    /// The cache's background refresh of an entry served stale
    /// (`stale-while-revalidate`) is a subrequest too, but part of the
    /// cache: it does not ask this (turn it off with
    /// [`should_serve_stale`](Self::should_serve_stale)).
    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &Self::CTX) -> bool {
        false
    }

    /// Whether to leave the error that ended this request out of the error
    /// log.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        false
    }

    /// A one-line description of the request for the error log.
    fn request_summary(&self, session: &Session, _ctx: &Self::CTX) -> String {
        session.request_summary()
    }
}
