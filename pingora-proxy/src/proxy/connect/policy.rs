//! [`ConnectPolicy`]: which CONNECT targets a forward proxy may open a
//! tunnel to, and the tunnel's limits. Pure: no I/O here, so every rule
//! is tested without a network.

use pingora_error::{Error, ErrorType, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The host part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any host, names and IP literals alike.
    Any,
    /// `*.example.com`: any name ending in `.example.com` (not
    /// `example.com` itself); stored as `.example.com`.
    Suffix(Box<str>),
    /// An exact name, lowercase, without a trailing dot.
    Name(Box<str>),
    /// An exact IP literal.
    Ip(IpAddr),
}

/// One `host:port` entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    host: HostPattern,
    /// `None` for `*`.
    port: Option<u16>,
}

/// The host of a CONNECT target, as the client named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetHost {
    /// A DNS name, lowercase, without a trailing dot.
    Name(Box<str>),
    /// An IP literal (IPv6 was bracketed in the target).
    Ip(IpAddr),
}

/// A well-formed CONNECT target: `host:port` (RFC 9110 §9.3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: TargetHost,
    pub(crate) port: u16,
}

/// How an allowed target was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// By an exact name or IP literal: its addresses are trusted, internal
    /// ones included.
    Exactly,
    /// By a wildcard (`*`, `*.suffix`): internal addresses are refused
    /// unless [`ConnectPolicy::allow_internal_targets`] says otherwise.
    ByWildcard,
}

/// What [`HttpProxy::with_connect`](crate::HttpProxy::with_connect) lets
/// clients tunnel to with CONNECT, and the limits of each tunnel.
///
/// # The allow-list
///
/// Each entry is `host:port`, matched against the CONNECT target **as
/// the client sent it** (after `request_filter`, which may rewrite it),
/// before any DNS lookup:
///
/// - `host` is an exact name (`api.example.com`, any case, a trailing
///   dot ignored), a suffix wildcard (`*.example.com`: every name under
///   `example.com`, but not `example.com` itself), an IP literal
///   (`192.0.2.1`, `[2001:db8::1]`, compared as addresses), or `*` (any
///   host, IP literals included). A name never matches an IP literal
///   target, nor the reverse.
/// - `port` is a number, or `*` for any.
///
/// An empty list (the default) refuses every target with `403`.
///
/// # Internal addresses
///
/// A name matched by a wildcard could resolve anywhere, including to the
/// proxy's own network: a client owning `evil.example.com` makes it
/// resolve to `127.0.0.1` (DNS rebinding). So the proxy resolves the
/// target itself, drops every address in a loopback, private,
/// link-local, shared, unspecified, multicast or reserved range, and
/// connects only to what is left (`403` when nothing is). This holds
/// for targets matched by a wildcard; an entry naming the host exactly
/// (`localhost:8443`, `10.0.0.5:22`) is trusted to go where it resolves.
/// [`allow_internal_targets`](Self::allow_internal_targets) lifts the
/// rule for wildcards too.
///
/// # Examples
///
/// ```
/// use pingora_proxy::ConnectPolicy;
/// use std::time::Duration;
///
/// let policy = ConnectPolicy::new()
///     .allow("*.example.com:443")?
///     .allow("[2001:db8::1]:*")?
///     .connect_timeout(Duration::from_secs(5))
///     .idle_timeout(Duration::from_secs(120));
/// # Ok::<(), Box<pingora_error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectPolicy {
    allow: Vec<Pattern>,
    internal: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) buffer_size: usize,
}

impl Default for ConnectPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectPolicy {
    /// An empty allow-list (every target refused), internal addresses
    /// refused for wildcards, a 10 s connect timeout, a 60 s idle timeout
    /// and 64 KiB relay buffers.
    pub const fn new() -> Self {
        Self {
            allow: Vec::new(),
            internal: false,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            buffer_size: 64 * 1024,
        }
    }

    /// Also allow targets matching `pattern` (`host:port`, see the type's
    /// docs).
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] when `pattern` is not `host:port` as
    /// described there.
    pub fn allow(mut self, pattern: &str) -> Result<Self> {
        match parse_pattern(pattern) {
            Some(p) => {
                self.allow.push(p);
                Ok(self)
            }
            None => Error::e_explain(
                ErrorType::InternalError,
                format!("invalid CONNECT allow-list entry {pattern:?}"),
            ),
        }
    }

    /// Let targets matched by a wildcard reach internal addresses too
    /// (off by default; see the type's docs). Only for a proxy whose
    /// clients may reach everything its own host can.
    #[must_use]
    pub const fn allow_internal_targets(mut self, allow: bool) -> Self {
        self.internal = allow;
        self
    }

    /// The bound on resolving the target and connecting to it; past it
    /// the client gets `504`.
    #[must_use]
    pub const fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a tunnel may carry nothing, in either direction, before
    /// it is closed.
    #[must_use]
    pub const fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most bytes read from the target at once (at least 1 KiB). One
    /// piece per direction is in flight at a time, so a tunnel holds
    /// about this much, whatever it carries.
    #[must_use]
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.max(1024);
        self
    }

    /// How `target` is allowed, if it is.
    pub(crate) fn check(&self, target: &Target) -> Option<Allowed> {
        let mut best = None;
        for p in &self.allow {
            if p.port.is_some_and(|port| port != target.port) {
                continue;
            }
            let how = match (&p.host, &target.host) {
                (HostPattern::Any, _) => Allowed::ByWildcard,
                (HostPattern::Suffix(s), TargetHost::Name(n)) if n.ends_with(&**s) => {
                    Allowed::ByWildcard
                }
                (HostPattern::Name(a), TargetHost::Name(b)) if a == b => Allowed::Exactly,
                (HostPattern::Ip(a), TargetHost::Ip(b)) if a == b => Allowed::Exactly,
                _ => continue,
            };
            if how == Allowed::Exactly {
                return Some(how);
            }
            best = Some(how);
        }
        best
    }

    /// Whether a target allowed `how` may be reached at `ip`.
    pub(crate) fn may_reach(&self, how: Allowed, ip: IpAddr) -> bool {
        how == Allowed::Exactly || self.internal || !is_internal(ip)
    }
}

/// Parse an allow-list entry.
fn parse_pattern(pattern: &str) -> Option<Pattern> {
    let (host, port) = split_host_port(pattern.trim())?;
    let port = match port {
        "*" => None,
        p => Some(parse_port(p)?),
    };
    let host = match host {
        "*" => HostPattern::Any,
        h if h.starts_with('[') => HostPattern::Ip(IpAddr::V6(parse_v6(h)?)),
        h => match h.strip_prefix("*.") {
            Some(suffix) => HostPattern::Suffix(format!(".{}", parse_name(suffix)?).into()),
            None => match h.parse::<Ipv4Addr>() {
                Ok(ip) => HostPattern::Ip(IpAddr::V4(ip)),
                Err(_) => HostPattern::Name(parse_name(h)?),
            },
        },
    };
    Some(Pattern { host, port })
}

/// Parse a CONNECT request target: `host:port` with a port, nothing else
/// (RFC 9110 §9.3.6); `None` when malformed.
pub(crate) fn parse_target(target: &str) -> Option<Target> {
    let (host, port) = split_host_port(target)?;
    let port = parse_port(port)?;
    let host = if host.starts_with('[') {
        TargetHost::Ip(IpAddr::V6(parse_v6(host)?))
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        TargetHost::Ip(IpAddr::V4(ip))
    } else {
        TargetHost::Name(parse_name(host)?)
    };
    Some(Target { host, port })
}

/// Split at the port's colon: after a bracketed IPv6 literal, else the
/// only colon.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return Some((host, rest.strip_prefix(':')?));
    }
    let (host, port) = s.split_once(':')?;
    (!host.is_empty() && !port.contains(':')).then_some((host, port))
}

/// A port number, 1 to 65535, digits only.
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok().filter(|&p| p != 0)
}

/// `[v6]`, brackets required.
fn parse_v6(h: &str) -> Option<Ipv6Addr> {
    h.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// A DNS name: labels of letters, digits, `-` and `_`, 1 to 63 bytes,
/// 253 at most in all; lowercased, a trailing dot dropped. A name whose
/// last label is numeric is refused: resolvers read `127.1` or `0x7f.1`
/// as IPv4 addresses, which a name pattern must never match.
fn parse_name(h: &str) -> Option<Box<str>> {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() || h.len() > 253 {
        return None;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !h.split('.').all(label_ok) {
        return None;
    }
    let last = h.rsplit('.').next().unwrap_or(h);
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
    let numeric = hex || last.bytes().all(|b| b.is_ascii_digit());
    if numeric {
        return None;
    }
    Some(h.to_ascii_lowercase().into())
}

/// Whether `ip` is in a range a forward proxy must not open to clients
/// by accident: loopback, private (RFC 1918, RFC 4193), link-local,
/// shared (RFC 6598), unspecified, benchmarking, multicast, reserved and
/// broadcast; IPv4 in IPv6 (mapped, compatible, NAT64) by the IPv4 rule.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if let Some(v4) = v6.to_ipv4() {
                // ::a.b.c.d and ::ffff:a.b.c.d (`::1` is loopback too).
                return v6.is_loopback() || is_internal_v4(v4);
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_internal_v4(Ipv4Addr::new(a, b, c, d));
            }
            v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // shared, RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> ConnectPolicy {
        patterns
            .iter()
            .fold(ConnectPolicy::new(), |p, s| p.allow(s).unwrap())
    }

    fn check(p: &ConnectPolicy, target: &str) -> Option<Allowed> {
        p.check(&parse_target(target).unwrap())
    }

    #[test]
    fn targets_must_be_host_and_port() {
        for bad in [
            "example.com",
            "example.com:",
            ":443",
            "example.com:0",
            "example.com:65536",
            "example.com:+1",
            "http://example.com:443",
            "example.com:443/x",
            "user@example.com:443",
            "[::1]",
            "::1:443",
            "[::1]443",
            "[zz]:443",
            "exa mple.com:443",
            "example..com:443",
            "127.1:443",
            "0x7f.1:443",
            "a.0X1:443",
        ] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
        let t = parse_target("API.Example.COM.:443").unwrap();
        assert_eq!(t.host, TargetHost::Name("api.example.com".into()));
        assert_eq!(t.port, 443);
        let t = parse_target("[::1]:8443").unwrap();
        assert_eq!(t.host, TargetHost::Ip("::1".parse().unwrap()));
    }

    #[test]
    fn patterns_match_exactly_or_by_suffix() {
        let p = policy(&["api.example.com:443", "*.test.net:*", "10.0.0.5:22"]);
        assert_eq!(check(&p, "API.example.com:443"), Some(Allowed::Exactly));
        assert_eq!(check(&p, "api.example.com:80"), None);
        assert_eq!(check(&p, "x.api.example.com:443"), None);
        assert_eq!(check(&p, "a.b.test.net:1"), Some(Allowed::ByWildcard));
        assert_eq!(check(&p, "test.net:443"), None);
        assert_eq!(check(&p, "eviltest.net:443"), None);
        assert_eq!(check(&p, "10.0.0.5:22"), Some(Allowed::Exactly));
        assert_eq!(check(&p, "10.0.0.6:22"), None);
        let any = policy(&["*:443", "[2001:db8::1]:*"]);
        assert_eq!(check(&any, "127.0.0.1:443"), Some(Allowed::ByWildcard));
        assert_eq!(check(&any, "[2001:DB8::1]:9"), Some(Allowed::Exactly));
        assert_eq!(check(&any, "x:80"), None);
        assert_eq!(check(&ConnectPolicy::new(), "x:443"), None);
        // An exact entry wins over a wildcard one.
        let both = policy(&["*:*", "localhost:1"]);
        assert_eq!(check(&both, "localhost:1"), Some(Allowed::Exactly));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in [
            "example.com",
            "*.:443",
            "a:b",
            "*.*.x:1",
            "[::1:1",
            "a:1:2",
            "",
        ] {
            assert!(ConnectPolicy::new().allow(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
        let loopback = "127.0.0.1".parse().unwrap();
        let p = ConnectPolicy::new();
        assert!(p.may_reach(Allowed::Exactly, loopback));
        assert!(!p.may_reach(Allowed::ByWildcard, loopback));
        assert!(p.may_reach(Allowed::ByWildcard, "8.8.8.8".parse().unwrap()));
        let open = p.allow_internal_targets(true);
        assert!(open.may_reach(Allowed::ByWildcard, loopback));
    }
}
