//! [`CacheKey`]: what identifies a stored response, and its fixed-size
//! hashes for storage.

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use pingora_core::header::RequestHeader;
use std::fmt::Write as _;

/// A 128-bit hash: how storage names an entry.
pub type HashBinary = [u8; 16];

type Hasher = Blake2b<U16>;

/// Hash length-prefixed parts, so that `("ab", "c")` and `("a", "bc")`
/// differ.
fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> HashBinary {
    let mut h = Hasher::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Lowercase hex of a hash, for logs and file names.
pub fn hex(bin: &HashBinary) -> String {
    bin.iter().fold(String::with_capacity(32), |mut s, b| {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The key of a cached response.
///
/// - the **namespace** separates caches that share one storage (tenants,
///   services);
/// - the **primary** key names the resource: by default scheme, host and
///   path with query ([`CacheKey::default`]); the user may add parts with
///   [`extend`](Self::extend) (a cookie value, a device class…). Fields
///   the key does not name never change which response is served;
/// - the **variance** picks one variant among those `Vary` allows
///   (see [`crate::variance`]);
/// - the **user tag** is carried along for the user (for example an
///   eviction group) and is not part of the hash.
///
/// Storage uses the 16-byte hashes: [`primary_bin`](Self::primary_bin)
/// for the resource (purge removes every variant under it) and
/// [`combined_bin`](Self::combined_bin) for one variant.
///
/// # Examples
///
/// ```
/// use pingora_cache::CacheKey;
/// use pingora_core::header::RequestHeader;
///
/// let mut req = RequestHeader::build("GET", b"/img/a.png?w=10", None).unwrap();
/// req.insert_header("Host", "Example.COM").unwrap();
/// let key = CacheKey::default(&req);
/// assert_eq!(key.primary(), b"http://example.com/img/a.png?w=10");
///
/// let mut mobile = key.clone();
/// mobile.extend(b"mobile");
/// assert_ne!(key.primary_bin(), mobile.primary_bin());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    namespace: Vec<u8>,
    primary: Vec<u8>,
    extensions: Vec<Vec<u8>>,
    variance: Option<HashBinary>,
    user_tag: String,
    /// The hash of the parts above the variance, kept in step with them:
    /// one request looks up, locks and writes by it several times.
    primary_hash: HashBinary,
}

impl CacheKey {
    /// A key from its parts.
    pub fn new(
        namespace: impl Into<Vec<u8>>,
        primary: impl Into<Vec<u8>>,
        user_tag: impl Into<String>,
    ) -> Self {
        let mut key = Self {
            namespace: namespace.into(),
            primary: primary.into(),
            extensions: Vec::new(),
            variance: None,
            user_tag: user_tag.into(),
            primary_hash: [0; 16],
        };
        key.primary_hash = key.hash_primary();
        key
    }

    /// The default key of a request: empty namespace, primary
    /// `scheme://host/path?query`. The scheme is the request target's,
    /// else `http` (use [`for_request`](Self::for_request) to give it);
    /// the host is the target's authority, else `Host`, lowercased.
    pub fn default(req: &RequestHeader) -> Self {
        let scheme = req.uri().scheme_str().unwrap_or("http");
        Self::for_request("", scheme, req)
    }

    /// The key of a request received over `scheme` (`http` or `https`),
    /// in `namespace`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_cache::CacheKey;
    /// # use pingora_core::header::RequestHeader;
    /// let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    /// req.insert_header("Host", "a.test").unwrap();
    /// let key = CacheKey::for_request("site-1", "https", &req);
    /// assert_eq!(key.primary(), b"https://a.test/");
    /// assert_eq!(key.namespace(), b"site-1");
    /// ```
    pub fn for_request(namespace: impl Into<Vec<u8>>, scheme: &str, req: &RequestHeader) -> Self {
        let uri = req.uri();
        let host = match uri.authority() {
            Some(a) => a.as_str().as_bytes(),
            None => req.get_header("host").map_or(&b""[..], |h| h.as_bytes()),
        };
        let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let path = if path.is_empty() { "/" } else { path };
        let mut primary = Vec::with_capacity(scheme.len() + 3 + host.len() + path.len());
        primary.extend(scheme.bytes().map(|b| b.to_ascii_lowercase()));
        primary.extend_from_slice(b"://");
        primary.extend(host.iter().map(u8::to_ascii_lowercase));
        primary.extend_from_slice(path.as_bytes());
        Self::new(namespace, primary, "")
    }

    /// Add a part to the primary key (after the default parts).
    pub fn extend(&mut self, part: &[u8]) {
        self.extensions.push(part.to_vec());
        self.primary_hash = self.hash_primary();
    }

    /// The namespace.
    pub fn namespace(&self) -> &[u8] {
        &self.namespace
    }

    /// The primary key, without the parts added by [`extend`](Self::extend).
    pub fn primary(&self) -> &[u8] {
        &self.primary
    }

    /// The user tag.
    pub fn user_tag(&self) -> &str {
        &self.user_tag
    }

    /// Set the variance (see [`crate::variance`]).
    pub fn set_variance_key(&mut self, variance: HashBinary) {
        self.variance = Some(variance);
    }

    /// The variance, if set.
    pub const fn variance_bin(&self) -> Option<&HashBinary> {
        self.variance.as_ref()
    }

    /// Clear the variance: the key names the resource again.
    pub fn remove_variance_key(&mut self) {
        self.variance = None;
    }

    /// The hash of namespace, primary key and extensions: names the
    /// resource, whatever the variant.
    pub const fn primary_bin(&self) -> HashBinary {
        self.primary_hash
    }

    fn hash_primary(&self) -> HashBinary {
        hash_parts(
            [&self.namespace[..], &self.primary[..]]
                .into_iter()
                .chain(self.extensions.iter().map(Vec::as_slice)),
        )
    }

    /// The hash that names one variant: the primary hash when there is no
    /// variance.
    pub fn combined_bin(&self) -> HashBinary {
        let primary = self.primary_bin();
        match &self.variance {
            None => primary,
            Some(v) => hash_parts([&primary[..], &v[..]]),
        }
    }
}

/// A cache key reduced to its hashes: what eviction and purge work with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompactCacheKey {
    /// [`CacheKey::primary_bin`].
    pub primary: HashBinary,
    /// [`CacheKey::variance_bin`].
    pub variance: Option<HashBinary>,
}

impl CacheKey {
    /// The key's hashes, for eviction and purge.
    pub fn to_compact(&self) -> CompactCacheKey {
        CompactCacheKey {
            primary: self.primary_bin(),
            variance: self.variance_bin().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &[u8], host: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target, None).unwrap();
        if let Some(h) = host {
            r.insert_header("Host", h).unwrap();
        }
        r
    }

    #[test]
    fn default_key_parts() {
        let k = CacheKey::default(&req(b"https://Up.Test:8443/x?y", Some("ignored")));
        assert_eq!(k.primary(), b"https://up.test:8443/x?y");
        let k = CacheKey::default(&req(b"/p", None));
        assert_eq!(k.primary(), b"http:///p");
        // Unkeyed fields do not change the key.
        let mut r = req(b"/p", Some("h"));
        let a = CacheKey::default(&r);
        r.insert_header("Cookie", "x=1").unwrap();
        assert_eq!(a.combined_bin(), CacheKey::default(&r).combined_bin());
    }

    #[test]
    fn hashes_separate_parts() {
        let a = CacheKey::new("ab", "c", "");
        let b = CacheKey::new("a", "bc", "");
        assert_ne!(a.primary_bin(), b.primary_bin());
        let mut c = CacheKey::new("", "x", "");
        let mut d = c.clone();
        c.extend(b"12");
        d.extend(b"1");
        d.extend(b"2");
        assert_ne!(c.primary_bin(), d.primary_bin());
        // Variance changes the combined hash only; the tag changes nothing.
        let mut v = CacheKey::new("", "x", "tag");
        assert_eq!(v.combined_bin(), CacheKey::new("", "x", "").combined_bin());
        v.set_variance_key([1; 16]);
        assert_eq!(v.primary_bin(), CacheKey::new("", "x", "").primary_bin());
        assert_ne!(v.combined_bin(), v.primary_bin());
        v.remove_variance_key();
        assert_eq!(v.combined_bin(), v.primary_bin());
        assert_eq!(hex(&[0xab; 16]).len(), 32);
        assert!(hex(&[0xab; 16]).starts_with("abab"));
    }
}
