//! Upgrades (RFC 9110 §7.8): which may become a tunnel, and, after
//! `101 Switching Protocols`, raw bytes both ways until either side closes.
//!
//! A tunnel carries bytes no phase sees, so it opens only for a protocol
//! the user allowed (websocket by default), offered by the client, and
//! answered by the upstream with a 101 naming that very protocol. Any
//! other offer is removed from the request, which is then proxied as a
//! plain one; any other 101 is an upstream error (502) and opens nothing.

use crate::Session;
use http::HeaderValue;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::protocols::http::ClientSession;
use pingora_error::{Error, ErrorType, Result};

/// Protocols never tunnelled, whatever the user allows: a switch to
/// another HTTP version (`h2c` is HTTP/2 over cleartext, RFC 7540 §3.2)
/// would carry requests that no phase of this proxy sees.
const NEVER: [&str; 3] = ["h2c", "h2", "http"];

/// The upgrades a proxy may tunnel, by protocol name (RFC 9110 §7.8).
#[derive(Debug, Clone)]
pub(crate) struct Upgrades {
    /// Lowercase protocol names, none of them in [`NEVER`].
    allowed: Box<[Box<str>]>,
}

impl Default for Upgrades {
    /// Websocket (RFC 6455) only.
    fn default() -> Self {
        Self::new(["websocket"])
    }
}

/// The protocols listed in an `Upgrade` value: `name[/version]` tokens.
fn protocols(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
}

/// The name of a `name[/version]` protocol token.
fn name(protocol: &[u8]) -> &[u8] {
    protocol.split(|&b| b == b'/').next().unwrap_or_default()
}

impl Upgrades {
    /// Allow `protocols`, by name (a `/version` suffix is ignored), less
    /// the [`NEVER`] ones.
    pub(crate) fn new<I, S>(protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let allowed = protocols
            .into_iter()
            .map(|p| {
                let p = p.as_ref();
                p.split('/').next().unwrap_or(p).trim().to_ascii_lowercase()
            })
            .filter(|p| !p.is_empty() && !NEVER.contains(&p.as_str()))
            .map(String::into_boxed_str)
            .collect();
        Self { allowed }
    }

    fn allows(&self, protocol: &[u8]) -> bool {
        let name = name(protocol);
        self.allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
    }

    /// What to offer the upstream in `Upgrade`: the allowed protocols the
    /// client offered, in its order; `None` when the request asks for no
    /// upgrade or for none allowed, and is then forwarded as a plain one.
    pub(crate) fn offer(&self, session: &Session) -> Option<HeaderValue> {
        if !session.is_upgrade_request() {
            return None;
        }
        offer_of(self, session.req_header())
    }

    /// Check a 101 from the upstream before anything of it goes
    /// downstream: it must name, in `Upgrade`, only protocols offered
    /// upstream (RFC 9110 §15.2.2), so a switch to anything else (`h2c`,
    /// or a protocol nobody asked for) never opens a tunnel.
    ///
    /// # Errors
    ///
    /// An upstream [`ErrorType::InvalidHTTPHeader`] (answered with 502)
    /// when the 101 answers no allowed offer.
    pub(crate) fn check_switch(&self, session: &Session, resp: &ResponseHeader) -> Result<()> {
        if switch_answers(self.offer(session).as_ref(), resp) {
            return Ok(());
        }
        let e = Error::explain(
            ErrorType::InvalidHTTPHeader,
            "101 switching to a protocol not offered or not allowed",
        );
        Err(e.into_up())
    }
}

/// Whether protocol token `chosen` answers `offered`: the same name, and
/// the same version when both name one.
fn same_protocol(offered: &[u8], chosen: &[u8]) -> bool {
    let (o, c) = (name(offered), name(chosen));
    let versionless = offered.len() == o.len() || chosen.len() == c.len();
    o.eq_ignore_ascii_case(c) && (versionless || offered.eq_ignore_ascii_case(chosen))
}

/// Whether a 101 names at least one protocol in `Upgrade`, and only ones
/// in `offered` (the `Upgrade` value sent upstream, already filtered to
/// allowed protocols).
fn switch_answers(offered: Option<&HeaderValue>, resp: &ResponseHeader) -> bool {
    let offered = offered.map_or(&[][..], HeaderValue::as_bytes);
    let mut named = false;
    for value in resp.get_header_values("upgrade") {
        for chosen in protocols(value.as_bytes()) {
            if !protocols(offered).any(|o| same_protocol(o, chosen)) {
                return false;
            }
            named = true;
        }
    }
    named
}

fn offer_of(upgrades: &Upgrades, req: &RequestHeader) -> Option<HeaderValue> {
    let mut offer = Vec::new();
    for value in req.get_header_values("upgrade") {
        for protocol in protocols(value.as_bytes()).filter(|p| upgrades.allows(p)) {
            if !offer.is_empty() {
                offer.extend_from_slice(b", ");
            }
            offer.extend_from_slice(protocol);
        }
    }
    if offer.is_empty() {
        return None;
    }
    // Made of bytes of valid values joined by ", ": still valid.
    HeaderValue::from_bytes(&offer).ok()
}

/// Carry bytes between the client and the upstream until one side ends
/// its stream. Each read is bounded by that side's body read timeout, so
/// a tunnel idle for longer is closed.
pub(super) async fn run(session: &mut Session, client: &mut ClientSession) -> Result<()> {
    loop {
        // Both reads are cancel safe; one piece is in flight at a time, so
        // memory stays bounded and each side is slowed by the other.
        tokio::select! {
            down = session.read_body_to_forward() => match down? {
                Some(data) => client.write_body(&data).await?,
                None => break,
            },
            up = client.read_body_bytes() => match up? {
                Some(data) => session.write_raw(&data).await?,
                None => break,
            },
        }
    }
    session.finish_response(None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(upgrade: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("Upgrade", upgrade).unwrap();
        r
    }

    #[test]
    fn only_allowed_protocols_are_offered() {
        let default = Upgrades::default();
        assert_eq!(offer_of(&default, &req("WebSocket")).unwrap(), "WebSocket");
        assert_eq!(
            offer_of(&default, &req("h2c, websocket/13")).unwrap(),
            "websocket/13"
        );
        assert!(offer_of(&default, &req("h2c")).is_none());
        assert!(offer_of(&default, &req("foo, , bar/2")).is_none());
        // h2c and other HTTP versions cannot be allowed.
        let wide = Upgrades::new(["h2c", "HTTP/2.0", "foo", " "]);
        assert_eq!(wide.allowed.len(), 1);
        assert_eq!(
            offer_of(&wide, &req("h2c, HTTP/2.0, foo/1")).unwrap(),
            "foo/1"
        );
        assert!(offer_of(&Upgrades::new::<_, &str>([]), &req("websocket")).is_none());
    }

    fn switch(upgrade: &[&str]) -> ResponseHeader {
        let mut r = ResponseHeader::build(101, None).unwrap();
        for u in upgrade {
            r.append_header("Upgrade", *u).unwrap();
        }
        r
    }

    #[test]
    fn a_switch_must_name_an_offered_protocol() {
        let offer = HeaderValue::from_static("websocket, foo/2");
        let answers = |u: &[&str]| switch_answers(Some(&offer), &switch(u));
        assert!(answers(&["WebSocket"]));
        assert!(answers(&["websocket/13"]));
        assert!(answers(&["foo/2"]));
        assert!(answers(&["foo"]));
        assert!(!answers(&["foo/3"]));
        assert!(!answers(&["h2c"]));
        assert!(!answers(&["websocket", "h2c"]));
        assert!(!answers(&[]));
        assert!(!answers(&[" , "]));
        assert!(!switch_answers(None, &switch(&["websocket"])));
    }
}
