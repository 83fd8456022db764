//! Reading a TLS ClientHello without terminating TLS: the server name
//! (SNI) and the ALPN protocols a client offers, for routing a TLS
//! connection by name while its bytes go on, unchanged, to a backend that
//! does the handshake.
//!
//! No I/O: [`parse_client_hello`] takes the bytes read from the client so
//! far and says whether they hold a whole ClientHello, need more bytes, or
//! are not one. The caller reads, calls again with the longer buffer, and
//! bounds the wait.
//!
//! The ClientHello is a handshake message (RFC 8446 §4.1.2, RFC 5246
//! §7.4.1.2) carried in one or more handshake records (RFC 8446 §5.1): a
//! client may split it over several records, so the record payloads are
//! joined before the message is parsed. The message may be at most
//! [`MAX_CLIENT_HELLO_LEN`] bytes.

use std::fmt;

/// The largest ClientHello accepted, in bytes of handshake message. Real
/// ones are well under 2 KiB, about 3 KiB with post-quantum key shares;
/// a larger one is refused rather than buffered.
pub const MAX_CLIENT_HELLO_LEN: usize = 16 * 1024;

/// TLS record content type of handshake records (RFC 8446 §5.1).
const HANDSHAKE_RECORD: u8 = 22;
/// Handshake message type of a ClientHello (RFC 8446 §4).
const CLIENT_HELLO: u8 = 1;
/// Largest record payload a peer may send (2^14, RFC 8446 §5.1).
const MAX_RECORD_LEN: usize = 16 * 1024;
/// Extension numbers (RFC 6066 §3, RFC 7301 §3.1).
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

/// What a client offers in its ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientHello {
    /// The `host_name` of the server name extension, as sent (the RFC
    /// makes it case-insensitive ASCII: compare with
    /// [`str::eq_ignore_ascii_case`]). `None` when the client sent none.
    pub server_name: Option<String>,
    /// The ALPN protocol names offered, in the client's order (empty
    /// when the extension is absent).
    pub alpn: Vec<Vec<u8>>,
    /// The `legacy_version` field (0x0303 for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
    /// How many bytes of the input the records holding the ClientHello
    /// took, headers included. They are not consumed: a passthrough
    /// proxy forwards all of them.
    pub record_len: usize,
}

impl ClientHello {
    /// Whether the client offers ALPN protocol `proto` (such as `b"h2"`).
    pub fn offers_alpn(&self, proto: &[u8]) -> bool {
        self.alpn.iter().any(|p| p == proto)
    }
}

/// Why bytes are not a ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientHelloError {
    /// The first record is not a TLS handshake record: the client does
    /// not speak TLS (plain HTTP on a TLS port, say).
    NotTls,
    /// A record of another type, or another handshake message, came
    /// before the ClientHello was complete.
    UnexpectedMessage,
    /// The ClientHello (or a record) is larger than the limits allow.
    TooLarge,
    /// A length or field does not add up; the text names which.
    Malformed(&'static str),
}

impl fmt::Display for ClientHelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotTls => f.write_str("not a tls handshake"),
            Self::UnexpectedMessage => f.write_str("unexpected message before the client hello"),
            Self::TooLarge => f.write_str("client hello too large"),
            Self::Malformed(what) => write!(f, "malformed client hello: {what}"),
        }
    }
}

impl std::error::Error for ClientHelloError {}

/// What [`parse_client_hello`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedHello {
    /// The bytes hold a whole ClientHello.
    Complete(ClientHello),
    /// Not enough bytes yet: read more and call again with all of them.
    Incomplete,
}

/// Parse the ClientHello at the start of `buf`, the bytes a client sent
/// first, as many as were read so far.
///
/// # Errors
///
/// A [`ClientHelloError`] when the bytes cannot be the start of a TLS
/// connection: reading more will not help.
///
/// # Examples
///
/// ```
/// use pingora_core::protocols::tls::client_hello::{parse_client_hello, ParsedHello};
///
/// // Two bytes of a record header: read more.
/// assert_eq!(parse_client_hello(&[22, 3]), Ok(ParsedHello::Incomplete));
/// // Plain HTTP on a TLS port.
/// assert!(parse_client_hello(b"GET / HTTP/1.1\r\n").is_err());
/// ```
pub fn parse_client_hello(buf: &[u8]) -> Result<ParsedHello, ClientHelloError> {
    // The handshake message, joined from the payloads of its records.
    let mut message = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + 5) else {
            return incomplete_or_not_tls(buf, at);
        };
        if header[0] != HANDSHAKE_RECORD {
            return Err(if at == 0 {
                ClientHelloError::NotTls
            } else {
                ClientHelloError::UnexpectedMessage
            });
        }
        // Major version 3 for SSL 3.0 up to TLS 1.3 (RFC 8446 §5.1).
        if header[1] != 3 {
            return Err(ClientHelloError::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            return Err(ClientHelloError::Malformed("empty handshake record"));
        }
        if len > MAX_RECORD_LEN {
            return Err(ClientHelloError::TooLarge);
        }
        let Some(payload) = buf.get(at + 5..at + 5 + len) else {
            return Ok(ParsedHello::Incomplete);
        };
        message.extend_from_slice(payload);
        at += 5 + len;
        if let Some(&kind) = message.first()
            && kind != CLIENT_HELLO
        {
            return Err(ClientHelloError::UnexpectedMessage);
        }
        if message.len() < 4 {
            continue;
        }
        let body_len =
            usize::from(message[1]) << 16 | usize::from(message[2]) << 8 | usize::from(message[3]);
        if body_len + 4 > MAX_CLIENT_HELLO_LEN {
            return Err(ClientHelloError::TooLarge);
        }
        if message.len() < body_len + 4 {
            continue;
        }
        // A record may carry the next handshake message too; the client
        // sends none before the server answers, so trailing bytes in the
        // last record are an error.
        if message.len() > body_len + 4 {
            return Err(ClientHelloError::UnexpectedMessage);
        }
        let mut hello = parse_body(&message[4..])?;
        hello.record_len = at;
        return Ok(ParsedHello::Complete(hello));
    }
}

/// Whether a short first record header can still become TLS.
fn incomplete_or_not_tls(buf: &[u8], at: usize) -> Result<ParsedHello, ClientHelloError> {
    let rest = buf.get(at..).unwrap_or_default();
    let bad_type = rest.first().is_some_and(|&t| t != HANDSHAKE_RECORD);
    let bad_version = rest.get(1).is_some_and(|&v| v != 3);
    match (bad_type || bad_version, at) {
        (true, 0) => Err(ClientHelloError::NotTls),
        (true, _) => Err(ClientHelloError::UnexpectedMessage),
        (false, _) => Ok(ParsedHello::Incomplete),
    }
}

/// A cursor over a message that never reads past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        if n > self.0.len() {
            return Err(ClientHelloError::Malformed(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ClientHelloError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ClientHelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let len = self.u8(what)?;
        self.take(usize::from(len), what)
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The ClientHello body (RFC 8446 §4.1.2).
fn parse_body(body: &[u8]) -> Result<ClientHello, ClientHelloError> {
    let mut r = Reader(body);
    let legacy_version = r.u16("version")?;
    r.take(32, "random")?;
    let session_id = r.vec8("session id")?;
    if session_id.len() > 32 {
        return Err(ClientHelloError::Malformed("session id"));
    }
    let suites = r.vec16("cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(ClientHelloError::Malformed("cipher suites"));
    }
    if r.vec8("compression methods")?.is_empty() {
        return Err(ClientHelloError::Malformed("compression methods"));
    }
    let mut hello = ClientHello {
        legacy_version,
        ..ClientHello::default()
    };
    // Clients before TLS 1.2 may send no extensions at all.
    if r.is_empty() {
        return Ok(hello);
    }
    let mut extensions = Reader(r.vec16("extensions")?);
    if !r.is_empty() {
        return Err(ClientHelloError::Malformed("bytes after the extensions"));
    }
    let (mut seen_sni, mut seen_alpn) = (false, false);
    while !extensions.is_empty() {
        let kind = extensions.u16("extension type")?;
        let data = extensions.vec16("extension")?;
        match kind {
            // Each extension at most once (RFC 8446 §4.2).
            EXT_SERVER_NAME if std::mem::replace(&mut seen_sni, true) => {
                return Err(ClientHelloError::Malformed("repeated server name"));
            }
            EXT_ALPN if std::mem::replace(&mut seen_alpn, true) => {
                return Err(ClientHelloError::Malformed("repeated alpn"));
            }
            EXT_SERVER_NAME => hello.server_name = parse_server_name(data)?,
            EXT_ALPN => hello.alpn = parse_alpn(data)?,
            _ => {}
        }
    }
    Ok(hello)
}

/// The `host_name` entry of a server name list (RFC 6066 §3).
fn parse_server_name(data: &[u8]) -> Result<Option<String>, ClientHelloError> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16("server name list")?);
    if !outer.is_empty() {
        return Err(ClientHelloError::Malformed("server name list"));
    }
    let mut name = None;
    while !list.is_empty() {
        let kind = list.u8("server name type")?;
        let value = list.vec16("server name")?;
        // 0 is host_name, the only type defined; others are skipped.
        if kind != 0 {
            continue;
        }
        if name.is_some() {
            return Err(ClientHelloError::Malformed("two host names"));
        }
        let valid = !value.is_empty()
            && value
                .iter()
                .all(|b| b.is_ascii_graphic() && *b != b'/' && *b != b'\\');
        if !valid {
            return Err(ClientHelloError::Malformed("server name"));
        }
        // Checked above: printable ASCII is UTF-8.
        name = Some(String::from_utf8_lossy(value).into_owned());
    }
    Ok(name)
}

/// The protocol names of an ALPN extension (RFC 7301 §3.1).
fn parse_alpn(data: &[u8]) -> Result<Vec<Vec<u8>>, ClientHelloError> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16("alpn list")?);
    if !outer.is_empty() || list.is_empty() {
        return Err(ClientHelloError::Malformed("alpn list"));
    }
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let proto = list.vec8("alpn protocol")?;
        if proto.is_empty() {
            return Err(ClientHelloError::Malformed("empty alpn protocol"));
        }
        protocols.push(proto.to_vec());
    }
    Ok(protocols)
}

#[cfg(test)]
mod tests;
