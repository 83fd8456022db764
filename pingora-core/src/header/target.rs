//! Sans-IO checks of request targets (RFC 9112 §3.2) and of `Host` and
//! `:authority` values (RFC 3986 §3.2.2, RFC 9110 §7.2).
//!
//! A request that fails any check is answered with 400 by the session that
//! read it and never reaches the code above. The rules, and where they are
//! stricter or looser than the RFCs:
//!
//! - **Forms.** origin-form (`/path?query`) for every method but CONNECT;
//!   authority-form (`host:port`, port required) only and always for
//!   CONNECT; asterisk-form (`*`) only for OPTIONS; absolute-form only with
//!   the `http` or `https` scheme, a non-empty authority and no userinfo
//!   (`user@`): an `@` there is how an authority is made to look like a
//!   different host, and no origin needs it.
//! - **Bytes of the path.** Only what RFC 3986 allows: unreserved,
//!   sub-delims, `:`, `@`, `/` and well-formed `%XX` escapes, plus `|`,
//!   `^`, `[` and `]`, which browsers send unescaped (the WHATWG URL path
//!   percent-encode set leaves them) and nginx takes. Refused: control bytes, space, DEL,
//!   every byte of 0x80 and above (raw non-ASCII), `#` (a fragment is never
//!   part of a request target), `"`, `<`, `>`, `\`, `` ` ``, `{`, `}`, and
//!   `%` not followed by two hex digits. The path is what routing and
//!   access rules see, often after decoding, so it is where ambiguous bytes
//!   (such as `\`, a separator to some servers) cause disagreements between
//!   hops.
//! - **Bytes of the query.** Any visible ASCII byte except `#`, `"`, `<`
//!   and `>`: the query is opaque to the proxy, browsers send `{`, `}`,
//!   `|`, `^`, `` ` `` and `\` in it unescaped, and nginx takes them.
//!   Control bytes, space and non-ASCII are refused here too, and so are
//!   `"`, `<` and `>`, which browsers always escape (the WHATWG query
//!   percent-encode set) and the `http` crate's `Uri` cannot hold.
//! - **Host values** (`Host`, the authority of an absolute-form target,
//!   HTTP/2 `:authority`): `uri-host [":" port]` where `uri-host` is a
//!   reg-name (unreserved and sub-delims), an IPv4 address (a reg-name by
//!   grammar), or an `[IPv6]` or `[vX.IPvFuture]` literal. Stricter than
//!   RFC 3986: the host may not be empty (a proxy must know where a request
//!   goes; nginx refuses an empty one as well); a reg-name may not hold
//!   `%XX` escapes (no DNS name needs one, and the `http` crate's
//!   `Authority`, which carries the host to an HTTP/2 upstream, refuses
//!   them); and a port, when the `:` is there, is 1 to 5 digits no larger
//!   than 65535.
//!
//! HTTP/1.x minor versions past 1 are served as 1.1 and other major
//! versions get 505; that rule lives with the request-line parser.
//!
//! # Testing
//!
//! Besides unit tests, property tests named `strict_*` generate targets,
//! hosts, request lines and `Connection` fields. `cargo test` runs a
//! CI-sized slice (1024 cases each); a long run takes the count from
//! `PINGORA_PROPTEST_CASES`:
//!
//! ```text
//! PINGORA_PROPTEST_CASES=1000000 cargo test -p pingora-core --release --lib strict_
//! ```

use std::net::Ipv6Addr;

/// The form of a valid request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetForm {
    /// `/path?query`.
    Origin,
    /// `http://authority/path?query`; the authority is `target[start..end]`.
    Absolute { start: usize, end: usize },
    /// `host:port`, for CONNECT.
    Authority,
    /// `*`, for OPTIONS.
    Asterisk,
}

/// Whether `b` is `unreserved` or `sub-delims` (RFC 3986 §2.2, §2.3).
const fn unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// A byte a path may hold as is (`%` is checked by the caller).
const fn path_byte(b: u8) -> bool {
    unreserved_or_sub_delim(b) || matches!(b, b':' | b'@' | b'/' | b'|' | b'^' | b'[' | b']')
}

/// A byte a query may hold: visible ASCII but `#`, `"`, `<` and `>`.
const fn query_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'#' | b'"' | b'<' | b'>')
}

/// Byte classes as tables: one load per byte on the hot path.
const fn tables() -> [[bool; 256]; 3] {
    let mut t = [[false; 256]; 3];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[0][i] = path_byte(b);
        t[1][i] = query_byte(b);
        t[2][i] = unreserved_or_sub_delim(b);
        i += 1;
    }
    t
}

const TABLES: [[bool; 256]; 3] = tables();
const PATH: [bool; 256] = TABLES[0];
const QUERY: [bool; 256] = TABLES[1];
const REG_NAME: [bool; 256] = TABLES[2];

/// Whether `rest` starts with two hex digits (the tail of a `%XX`).
fn escaped(rest: &[u8]) -> bool {
    matches!(rest, [a, b, ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit())
}

/// Check `path-abempty [ "?" query ]` by the byte rules in the module docs.
fn check_path_and_query(pq: &[u8]) -> Result<(), &'static str> {
    let mut i = 0;
    loop {
        i += pq[i..]
            .iter()
            .position(|&b| !PATH[usize::from(b)])
            .unwrap_or(pq.len() - i);
        match pq.get(i) {
            None => return Ok(()),
            Some(b'?') if pq[i + 1..].iter().all(|&b| QUERY[usize::from(b)]) => return Ok(()),
            Some(b'?') => return Err("invalid byte in query"),
            Some(b'%') if escaped(&pq[i + 1..]) => i += 3,
            Some(b'%') => return Err("invalid percent-encoding in path"),
            Some(_) => return Err("invalid byte in path"),
        }
    }
}

/// Check a request target against `method` and say which form it is.
///
/// # Errors
///
/// Why the target is refused (answer 400).
pub(crate) fn check_target(
    method: &http::Method,
    target: &[u8],
) -> Result<TargetForm, &'static str> {
    let connect = method == http::Method::CONNECT;
    if connect {
        // RFC 9112 §3.2.3 and RFC 9110 §9.3.6: host and port only.
        check_authority(target)?;
        return match port_of(target) {
            Some(_) => Ok(TargetForm::Authority),
            None => Err("connect target without port"),
        };
    }
    match target {
        b"*" if method == http::Method::OPTIONS => Ok(TargetForm::Asterisk),
        b"*" => Err("asterisk-form target without options"),
        [b'/', ..] => check_path_and_query(target).map(|()| TargetForm::Origin),
        _ => check_absolute(target),
    }
}

/// Check an absolute-form target (RFC 9112 §3.2.2).
fn check_absolute(target: &[u8]) -> Result<TargetForm, &'static str> {
    let start = if starts_with_ignore_case(target, b"http://") {
        7
    } else if starts_with_ignore_case(target, b"https://") {
        8
    } else {
        return Err("invalid request target");
    };
    let rest = &target[start..];
    let end = start
        + rest
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
    let authority = &target[start..end];
    if authority.contains(&b'@') {
        return Err("userinfo in request target");
    }
    check_authority(authority)?;
    match target.get(end) {
        None | Some(b'/') => check_path_and_query(&target[end..])?,
        // `http://a?q`: an empty path, then a query.
        Some(b'?') => check_path_and_query(&target[end..])?,
        Some(_) => return Err("invalid request target"),
    }
    Ok(TargetForm::Absolute { start, end })
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Check a `Host` or `:authority` value: `uri-host [":" port]` by the rules
/// in the module docs.
///
/// # Errors
///
/// Why the value is refused (answer 400).
pub(crate) fn check_authority(value: &[u8]) -> Result<(), &'static str> {
    let host_end = match value {
        [] => return Err("empty host"),
        [b'[', rest @ ..] => {
            let close = rest
                .iter()
                .position(|&b| b == b']')
                .ok_or("unterminated ip literal")?;
            check_ip_literal(&rest[..close])?;
            close + 2
        }
        // A reg-name (not empty) runs up to the first byte it cannot
        // hold, which must be the `:` of a port, or the end.
        _ => match value.iter().position(|&b| !REG_NAME[usize::from(b)]) {
            Some(0) => return Err("invalid host"),
            Some(end) => end,
            None => value.len(),
        },
    };
    match &value[host_end..] {
        [] => Ok(()),
        [b':', port @ ..] => check_port(port),
        _ => Err("invalid host"),
    }
}

/// Check the `Host` fields of a request (RFC 9112 §3.2): exactly one,
/// with a valid value; none is allowed only in HTTP/1.0.
///
/// # Errors
///
/// Why the request is refused (answer 400).
pub(crate) fn check_host_fields<'a>(
    mut hosts: impl Iterator<Item = &'a [u8]>,
    http10: bool,
) -> Result<(), &'static str> {
    match (hosts.next(), hosts.next()) {
        (None, _) if http10 => Ok(()),
        (None, _) => Err("missing host"),
        (Some(_), Some(_)) => Err("repeated host"),
        (Some(host), None) => check_authority(host),
    }
}

/// The port of a valid authority, if it has one.
fn port_of(authority: &[u8]) -> Option<&[u8]> {
    let host_end = match authority {
        [b'[', rest @ ..] => rest.iter().position(|&b| b == b']')? + 2,
        _ => authority.iter().position(|&b| b == b':')?,
    };
    authority.get(host_end + 1..)
}

fn check_port(port: &[u8]) -> Result<(), &'static str> {
    let valid = (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65_535;
    if valid { Ok(()) } else { Err("invalid port") }
}

/// The inside of `[...]`: an IPv6 address or `v` HEX `.` IPvFuture.
fn check_ip_literal(inner: &[u8]) -> Result<(), &'static str> {
    if let [b'v' | b'V', rest @ ..] = inner {
        let dot = rest
            .iter()
            .position(|&b| b == b'.')
            .ok_or("invalid ip literal")?;
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        let valid = !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| unreserved_or_sub_delim(b) || b == b':');
        return if valid {
            Ok(())
        } else {
            Err("invalid ip literal")
        };
    }
    // The standard parser takes exactly RFC 4291 text forms (including an
    // embedded IPv4 tail), and no zone id, as RFC 3986 wants.
    std::str::from_utf8(inner)
        .ok()
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
        .map(drop)
        .ok_or("invalid ip literal")
}

#[cfg(test)]
pub(crate) mod tests;
