//! [`CacheMeta`]: what a cache keeps about a stored response besides its
//! body, and the fresh/stale decisions over it.

use pingora_core::header::ResponseHeader;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The metadata of a stored response: its header and its timeline.
///
/// `created` is when the response was generated, as far as the cache can
/// tell: the time it arrived minus its corrected initial age
/// (RFC 9111 §4.2.3), so that [`age`](Self::age) is the RFC's
/// `current_age` at any later time. `updated` moves on each successful
/// revalidation.
///
/// # Examples
///
/// ```
/// use pingora_cache::CacheMeta;
/// use pingora_core::header::ResponseHeader;
/// use std::time::{Duration, SystemTime};
///
/// let now = SystemTime::now();
/// let header = ResponseHeader::build(200, None).unwrap();
/// let meta = CacheMeta::new(now + Duration::from_secs(60), now, 10, 300, header);
/// assert!(meta.is_fresh(now));
/// assert!(!meta.is_fresh(now + Duration::from_secs(61)));
/// assert!(meta.can_serve_stale_while_revalidate(now + Duration::from_secs(65)));
/// assert!(meta.can_serve_stale_if_error(now + Duration::from_secs(300)));
/// assert_eq!(meta.age(now + Duration::from_secs(5)), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct CacheMeta {
    created: SystemTime,
    updated: SystemTime,
    fresh_until: SystemTime,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    must_revalidate: bool,
    // Shared: a lookup hands out a copy of the metadata on every hit.
    header: Arc<ResponseHeader>,
}

/// Where a stored response stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Fresh: serve it.
    Fresh,
    /// Stale but inside its `stale-while-revalidate` window: serve it and
    /// refresh it in the background.
    StaleWhileRevalidate,
    /// Stale: revalidate before serving (it may still be served on an
    /// origin error, see [`CacheMeta::can_serve_stale_if_error`]).
    Stale,
}

impl CacheMeta {
    /// Metadata for `header`, fresh until `fresh_until`, created (and
    /// updated) at `created`, with the stale windows in seconds.
    pub fn new(
        fresh_until: SystemTime,
        created: SystemTime,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
        header: ResponseHeader,
    ) -> Self {
        Self {
            created,
            updated: created,
            fresh_until,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            must_revalidate: false,
            header: Arc::new(header),
        }
    }

    /// When the response was generated (its age is measured from here).
    pub const fn created(&self) -> SystemTime {
        self.created
    }

    /// When the response was stored or last revalidated.
    pub const fn updated(&self) -> SystemTime {
        self.updated
    }

    /// The end of the freshness lifetime.
    pub const fn fresh_until(&self) -> SystemTime {
        self.fresh_until
    }

    /// The freshness lifetime: `fresh_until − created`.
    pub fn fresh_sec(&self) -> u64 {
        self.fresh_until
            .duration_since(self.created)
            .unwrap_or_default()
            .as_secs()
    }

    /// The `stale-while-revalidate` window, in seconds past `fresh_until`.
    pub const fn stale_while_revalidate_sec(&self) -> u32 {
        self.stale_while_revalidate_sec
    }

    /// The `stale-if-error` window, in seconds past `fresh_until`.
    pub const fn stale_if_error_sec(&self) -> u32 {
        self.stale_if_error_sec
    }

    /// Whether the response forbids serving it stale (`must-revalidate`,
    /// `proxy-revalidate` or `no-cache`): both windows are then ignored.
    pub const fn must_revalidate(&self) -> bool {
        self.must_revalidate
    }

    /// Forbid (or allow) serving the response stale.
    pub fn set_must_revalidate(&mut self, must: bool) {
        self.must_revalidate = must;
    }

    /// The stored response header.
    pub fn response_header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The stored response header, to change.
    pub fn response_header_mut(&mut self) -> &mut ResponseHeader {
        Arc::make_mut(&mut self.header)
    }

    /// Take the stored response header.
    pub fn into_response_header(self) -> ResponseHeader {
        Arc::unwrap_or_clone(self.header)
    }

    /// The stored header as it is served at `now`: with `Age` set to the
    /// current age in seconds (RFC 9111 §5.1).
    ///
    /// # Errors
    ///
    /// Never in practice: the value is a number.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_cache::CacheMeta;
    /// use pingora_core::header::ResponseHeader;
    /// use std::time::{Duration, SystemTime};
    ///
    /// let t = SystemTime::now();
    /// let meta = CacheMeta::new(t, t, 0, 0, ResponseHeader::build(200, None).unwrap());
    /// let head = meta.header_for_hit(t + Duration::from_secs(42)).unwrap();
    /// assert_eq!(head.get_header("age").unwrap(), "42");
    /// ```
    pub fn header_for_hit(&self, now: SystemTime) -> pingora_error::Result<ResponseHeader> {
        let mut header = ResponseHeader::clone(&self.header);
        header.insert_header("Age", self.age(now).as_secs().to_string())?;
        Ok(header)
    }

    /// The current age at `now` (RFC 9111 §4.2.3), as sent in `Age`.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.created).unwrap_or_default()
    }

    /// Whether the response is fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.fresh_until
    }

    fn within(&self, now: SystemTime, window_sec: u32) -> bool {
        !self.must_revalidate && now < self.fresh_until + Duration::from_secs(u64::from(window_sec))
    }

    /// Whether a stale response may be served at `now` while it is
    /// refreshed in the background (RFC 5861 §3).
    pub fn can_serve_stale_while_revalidate(&self, now: SystemTime) -> bool {
        self.within(now, self.stale_while_revalidate_sec)
    }

    /// Whether a stale response may be served at `now` because the origin
    /// failed (RFC 5861 §4).
    pub fn can_serve_stale_if_error(&self, now: SystemTime) -> bool {
        self.within(now, self.stale_if_error_sec)
    }

    /// Where the response stands at `now`.
    pub fn freshness(&self, now: SystemTime) -> Freshness {
        if self.is_fresh(now) {
            Freshness::Fresh
        } else if self.can_serve_stale_while_revalidate(now) {
            Freshness::StaleWhileRevalidate
        } else {
            Freshness::Stale
        }
    }

    /// After a successful revalidation at `now`: a new freshness end and
    /// age origin, and a new header (see
    /// [`merge_not_modified`](crate::conditional::merge_not_modified)).
    pub fn revalidated(&mut self, now: SystemTime, created: SystemTime, fresh_until: SystemTime) {
        self.updated = now;
        self.created = created;
        self.fresh_until = fresh_until;
    }

    /// Replace the stored header.
    pub fn set_response_header(&mut self, header: ResponseHeader) {
        self.header = Arc::new(header);
    }

    /// Change the stale windows.
    pub fn set_stale_windows(&mut self, while_revalidate_sec: u32, if_error_sec: u32) {
        self.stale_while_revalidate_sec = while_revalidate_sec;
        self.stale_if_error_sec = if_error_sec;
    }

    /// Set `fresh_until` (for example to expire an entry at once).
    pub fn set_fresh_until(&mut self, fresh_until: SystemTime) {
        self.fresh_until = fresh_until;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn windows_and_must_revalidate() {
        let h = ResponseHeader::build(200, None).unwrap();
        let mut m = CacheMeta::new(at(160), at(100), 10, 100, h);
        assert_eq!(m.fresh_sec(), 60);
        assert_eq!(m.freshness(at(159)), Freshness::Fresh);
        assert_eq!(m.freshness(at(160)), Freshness::StaleWhileRevalidate);
        assert_eq!(m.freshness(at(170)), Freshness::Stale);
        assert!(m.can_serve_stale_if_error(at(259)));
        assert!(!m.can_serve_stale_if_error(at(260)));
        m.set_must_revalidate(true);
        assert_eq!(m.freshness(at(160)), Freshness::Stale);
        assert!(!m.can_serve_stale_if_error(at(161)));
        assert!(m.is_fresh(at(150)));
        m.revalidated(at(300), at(299), at(400));
        assert_eq!(m.updated(), at(300));
        assert_eq!(m.age(at(301)), Duration::from_secs(2));
        assert_eq!(m.age(at(1)), Duration::ZERO);
    }
}
