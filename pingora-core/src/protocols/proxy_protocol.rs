//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load
//! balancer in front sends at the start of a connection to say who the
//! real client is, and the one we send to an upstream.
//!
//! This module parses and writes headers; it does no I/O. [`parse`] reads
//! a header from the first bytes of a connection and says how long it
//! was, or that more bytes are needed; [`encode_v1`] and [`encode_v2`]
//! write one. A header is believed only from a trusted sender: checking
//! the socket's peer against a list of trusted networks is the caller's
//! job, before calling [`parse`].
//!
//! ```
//! use pingora_core::protocols::proxy_protocol::{parse, Parsed, ProxyAddresses};
//!
//! let bytes = b"PROXY TCP4 192.0.2.7 198.51.100.1 53122 443\r\nGET / HTTP/1.1\r\n";
//! let Parsed::Header { header, len } = parse(bytes).unwrap() else { panic!() };
//! assert_eq!(len, 45);
//! let ProxyAddresses::Inet { source, .. } = header.addresses else { panic!() };
//! assert_eq!(source.to_string(), "192.0.2.7:53122");
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest version 1 header, CRLF included (the specification's 107).
pub const V1_MAX_LEN: usize = 107;

/// The longest version 2 header accepted: its 16-byte prefix and at most
/// this many bytes of addresses and TLVs (the format allows 65,535).
pub const V2_MAX_BODY: usize = 4096;

/// Version 2's 12-byte signature.
const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The addresses a header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAddresses {
    /// The connection's addresses are the socket's own: a health check
    /// from the balancer (v1 `UNKNOWN`, v2 `LOCAL` or an unspecified
    /// family).
    Unknown,
    /// A TCP or UDP client over IPv4 or IPv6.
    Inet {
        /// The real client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// Unix socket addresses (v2 only), as raw 108-byte paths.
    Unix {
        /// The client's path, NUL-padded.
        source: Vec<u8>,
        /// The server's path, NUL-padded.
        destination: Vec<u8>,
    },
}

/// The transport a v2 header says the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A stream (TCP, or a Unix stream socket).
    Stream,
    /// Datagrams (UDP, or a Unix datagram socket).
    Datagram,
    /// Unspecified (v1, or v2 `UNSPEC`).
    Unspecified,
}

/// One type-length-value entry of a v2 header (ALPN, authority, TLS
/// details, a cloud provider's connection id, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The type byte (`0x01` ALPN, `0x02` authority, `0x20` SSL, ...).
    pub kind: u8,
    /// Its value.
    pub value: Vec<u8>,
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The client's transport.
    pub transport: Transport,
    /// Who the client is, if the sender says.
    pub addresses: ProxyAddresses,
    /// The v2 TLVs, in order (none in v1).
    pub tlvs: Vec<Tlv>,
}

impl ProxyHeader {
    /// The real client's address, when the header names one.
    pub fn source(&self) -> Option<SocketAddr> {
        match &self.addresses {
            ProxyAddresses::Inet { source, .. } => Some(*source),
            _ => None,
        }
    }

    /// The value of the first TLV of `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.value.as_slice())
    }
}

/// What [`parse`] found at the start of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long; the connection's own bytes start
    /// after it.
    Header {
        /// The header.
        header: ProxyHeader,
        /// How many bytes it took.
        len: usize,
    },
    /// The bytes so far are the start of a header: read more.
    Partial,
}

/// Why a header was refused. A trusted sender that sends one of these
/// gets its connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The bytes start neither a v1 nor a v2 header.
    NotProxy,
    /// A v1 header that breaks the format.
    BadV1(&'static str),
    /// A v2 header that breaks the format.
    BadV2(&'static str),
    /// Longer than [`V1_MAX_LEN`] or [`V2_MAX_BODY`] allows.
    TooLong,
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotProxy => f.write_str("no PROXY protocol header"),
            Self::BadV1(why) => write!(f, "bad PROXY v1 header: {why}"),
            Self::BadV2(why) => write!(f, "bad PROXY v2 header: {why}"),
            Self::TooLong => f.write_str("PROXY header too long"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Parse a PROXY header at the start of `bytes` (v1 or v2, told apart by
/// their first bytes).
///
/// # Errors
///
/// When the bytes cannot start a valid header.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    let v2_prefix = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..v2_prefix] == V2_SIGNATURE[..v2_prefix] && !bytes.is_empty() {
        return parse_v2(bytes);
    }
    let v1_prefix = bytes.len().min(6);
    if bytes[..v1_prefix] == b"PROXY "[..v1_prefix] {
        return parse_v1(bytes);
    }
    Err(ProxyError::NotProxy)
}

fn parse_v1(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &bytes[..bytes.len().min(V1_MAX_LEN)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if bytes.len() >= V1_MAX_LEN {
            return Err(ProxyError::TooLong);
        }
        // A lone CR or LF inside would never become a valid line.
        if window.contains(&b'\n') {
            return Err(ProxyError::BadV1("stray line feed"));
        }
        return Ok(Parsed::Partial);
    };
    let line = std::str::from_utf8(&bytes[..end]).map_err(|_| ProxyError::BadV1("not ASCII"))?;
    let mut parts = line.split(' ');
    parts.next(); // "PROXY"
    let family = parts.next().ok_or(ProxyError::BadV1("no protocol"))?;
    let addresses = match family {
        "UNKNOWN" => ProxyAddresses::Unknown,
        "TCP4" | "TCP6" => {
            let mut field = || parts.next().ok_or(ProxyError::BadV1("missing field"));
            let (src, dst, sport, dport) = (field()?, field()?, field()?, field()?);
            if parts.next().is_some() {
                return Err(ProxyError::BadV1("extra fields"));
            }
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                let ip: IpAddr = s.parse().map_err(|_| ProxyError::BadV1("bad address"))?;
                match (family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(ProxyError::BadV1("address of the wrong family")),
                }
            };
            let port = |s: &str| -> Result<u16, ProxyError> {
                // Decimal, no sign, no leading zero (the specification).
                if s.is_empty() || s.len() > 5 || (s.len() > 1 && s.starts_with('0')) {
                    return Err(ProxyError::BadV1("bad port"));
                }
                if !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ProxyError::BadV1("bad port"));
                }
                s.parse().map_err(|_| ProxyError::BadV1("bad port"))
            };
            ProxyAddresses::Inet {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        _ => return Err(ProxyError::BadV1("unknown protocol")),
    };
    Ok(Parsed::Header {
        header: ProxyHeader {
            version: 1,
            transport: Transport::Unspecified,
            addresses,
            tlvs: Vec::new(),
        },
        len: end + 2,
    })
}

fn parse_v2(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    if bytes.len() < 16 {
        return Ok(Parsed::Partial);
    }
    let version_command = bytes[12];
    if version_command >> 4 != 2 {
        return Err(ProxyError::BadV2("version is not 2"));
    }
    let local = match version_command & 0x0F {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::BadV2("unknown command")),
    };
    let family = bytes[13];
    let body_len = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if body_len > V2_MAX_BODY {
        return Err(ProxyError::TooLong);
    }
    if bytes.len() < 16 + body_len {
        return Ok(Parsed::Partial);
    }
    let body = &bytes[16..16 + body_len];
    let transport = match family & 0x0F {
        0 => Transport::Unspecified,
        1 => Transport::Stream,
        2 => Transport::Datagram,
        _ => return Err(ProxyError::BadV2("unknown transport")),
    };
    let (addresses, used) = match family >> 4 {
        0 => (ProxyAddresses::Unknown, 0),
        1 => {
            let a = body
                .get(..12)
                .ok_or(ProxyError::BadV2("short IPv4 block"))?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]));
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let source = SocketAddr::new(ip(0), port(8));
            let destination = SocketAddr::new(ip(4), port(10));
            (
                ProxyAddresses::Inet {
                    source,
                    destination,
                },
                12,
            )
        }
        2 => {
            let a = body
                .get(..36)
                .ok_or(ProxyError::BadV2("short IPv6 block"))?;
            let ip = |o: usize| {
                let mut octets = [0; 16];
                octets.copy_from_slice(&a[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let source = SocketAddr::new(ip(0), port(32));
            let destination = SocketAddr::new(ip(16), port(34));
            (
                ProxyAddresses::Inet {
                    source,
                    destination,
                },
                36,
            )
        }
        3 => {
            let a = body
                .get(..216)
                .ok_or(ProxyError::BadV2("short Unix block"))?;
            let addresses = ProxyAddresses::Unix {
                source: a[..108].to_vec(),
                destination: a[108..216].to_vec(),
            };
            (addresses, 216)
        }
        _ => return Err(ProxyError::BadV2("unknown address family")),
    };
    let tlvs = parse_tlvs(&body[used..])?;
    // LOCAL: a connection of the balancer's own; whatever it carries,
    // the socket's addresses stand.
    let addresses = if local {
        ProxyAddresses::Unknown
    } else {
        addresses
    };
    Ok(Parsed::Header {
        header: ProxyHeader {
            version: 2,
            transport,
            addresses,
            tlvs,
        },
        len: 16 + body_len,
    })
}

fn parse_tlvs(mut rest: &[u8]) -> Result<Vec<Tlv>, ProxyError> {
    let mut tlvs = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(ProxyError::BadV2("truncated TLV"));
        }
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let value = rest
            .get(3..3 + len)
            .ok_or(ProxyError::BadV2("TLV longer than the header"))?;
        tlvs.push(Tlv {
            kind: rest[0],
            value: value.to_vec(),
        });
        rest = &rest[3 + len..];
    }
    Ok(tlvs)
}

/// A v1 header for a connection from `source` to `destination` (both
/// IPv4 or both IPv6; otherwise, or with `None`, `PROXY UNKNOWN`).
pub fn encode_v1(addresses: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    match addresses {
        Some((s, d)) if s.is_ipv4() == d.is_ipv4() => {
            let family = if s.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            )
            .into_bytes()
        }
        _ => b"PROXY UNKNOWN\r\n".to_vec(),
    }
}

/// A v2 `PROXY` header over TCP for a connection from `source` to
/// `destination`, with `tlvs` (a `LOCAL` header when `addresses` is
/// `None` or the families differ).
///
/// # Errors
///
/// When the TLVs make the header longer than [`V2_MAX_BODY`].
pub fn encode_v2(
    addresses: Option<(SocketAddr, SocketAddr)>,
    tlvs: &[Tlv],
) -> Result<Vec<u8>, ProxyError> {
    let mut out = V2_SIGNATURE.to_vec();
    let mut body = Vec::new();
    let (command, family) = match addresses {
        Some((SocketAddr::V4(s), SocketAddr::V4(d))) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            body.extend_from_slice(&s.port().to_be_bytes());
            body.extend_from_slice(&d.port().to_be_bytes());
            (0x21, 0x11)
        }
        Some((SocketAddr::V6(s), SocketAddr::V6(d))) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            body.extend_from_slice(&s.port().to_be_bytes());
            body.extend_from_slice(&d.port().to_be_bytes());
            (0x21, 0x21)
        }
        _ => (0x20, 0x00),
    };
    for tlv in tlvs {
        let len = u16::try_from(tlv.value.len()).map_err(|_| ProxyError::TooLong)?;
        body.push(tlv.kind);
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&tlv.value);
    }
    if body.len() > V2_MAX_BODY {
        return Err(ProxyError::TooLong);
    }
    out.push(command);
    out.push(family);
    // At most V2_MAX_BODY, which fits in u16.
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(parsed: Result<Parsed, ProxyError>) -> (ProxyHeader, usize) {
        match parsed.unwrap() {
            Parsed::Header { header, len } => (header, len),
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let (h, len) = header(parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\nx"));
        assert_eq!(len, 44);
        assert_eq!(h.source().unwrap().to_string(), "[2001:db8::1]:1");
        let (h, len) = header(parse(b"PROXY UNKNOWN ffff::1 whatever\r\n"));
        assert_eq!((h.addresses, len), (ProxyAddresses::Unknown, 32));
    }

    #[test]
    fn v1_refusals() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 9\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 443\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 1.2.3.4\n",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(&[b'P'; 200][..]), Err(ProxyError::NotProxy));
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(120));
        assert_eq!(parse(long.as_bytes()), Err(ProxyError::TooLong));
    }

    #[test]
    fn partial_headers_ask_for_more() {
        let full = encode_v1(Some((
            "192.0.2.1:1".parse().unwrap(),
            "192.0.2.2:2".parse().unwrap(),
        )));
        for cut in 1..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(Parsed::Partial), "cut at {cut}");
        }
        let tlv = Tlv {
            kind: 0x02,
            value: b"example.com".to_vec(),
        };
        let full = encode_v2(None, &[tlv]).unwrap();
        for cut in 1..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(Parsed::Partial), "cut at {cut}");
        }
    }

    #[test]
    fn v2_local_and_refusals() {
        let (h, len) = header(parse(&encode_v2(None, &[]).unwrap()));
        assert_eq!(
            (h.version, h.addresses, len),
            (2, ProxyAddresses::Unknown, 16)
        );
        let mut bad = encode_v2(None, &[]).unwrap();
        bad[12] = 0x11;
        assert_eq!(parse(&bad), Err(ProxyError::BadV2("version is not 2")));
        let mut long = encode_v2(None, &[]).unwrap();
        long[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse(&long), Err(ProxyError::TooLong));
        // An IPv4 family whose block is cut short.
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]);
        assert_eq!(parse(&short), Err(ProxyError::BadV2("short IPv4 block")));
    }

    fn socket_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        prop_oneof![
            (
                any::<[u8; 4]>(),
                any::<[u8; 4]>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(s, d, sp, dp)| (
                    SocketAddr::new(IpAddr::from(s), sp),
                    SocketAddr::new(IpAddr::from(d), dp)
                )),
            (
                any::<[u8; 16]>(),
                any::<[u8; 16]>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(s, d, sp, dp)| (
                    SocketAddr::new(IpAddr::from(s), sp),
                    SocketAddr::new(IpAddr::from(d), dp)
                )),
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
            let mut v2 = V2_SIGNATURE.to_vec();
            v2.extend_from_slice(&bytes);
            let _ = parse(&v2);
            let mut v1 = b"PROXY ".to_vec();
            v1.extend_from_slice(&bytes);
            let _ = parse(&v1);
        }

        #[test]
        fn v1_round_trips(pair in socket_pair(), rest in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut bytes = encode_v1(Some(pair));
            let len = bytes.len();
            bytes.extend_from_slice(&rest);
            let (h, parsed_len) = header(parse(&bytes));
            prop_assert_eq!(parsed_len, len);
            prop_assert_eq!(h.addresses, ProxyAddresses::Inet { source: pair.0, destination: pair.1 });
        }

        #[test]
        fn v2_round_trips(
            pair in socket_pair(),
            tlvs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..5),
        ) {
            let tlvs: Vec<Tlv> = tlvs.into_iter().map(|(kind, value)| Tlv { kind, value }).collect();
            let bytes = encode_v2(Some(pair), &tlvs).unwrap();
            let (h, len) = header(parse(&bytes));
            prop_assert_eq!(len, bytes.len());
            prop_assert_eq!(h.transport, Transport::Stream);
            prop_assert_eq!(h.addresses, ProxyAddresses::Inet { source: pair.0, destination: pair.1 });
            prop_assert_eq!(h.tlvs, tlvs);
        }
    }
}
