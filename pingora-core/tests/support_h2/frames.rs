//! A tiny HTTP/2 frame encoder and reader (RFC 9113 §4.1), to play
//! misbehaving clients on a raw TCP connection.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const CONTINUATION: u8 = 0x9;
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
/// GOAWAY / RST_STREAM error codes (RFC 9113 §7).
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One encoded frame.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block for `GET /` on `http://a` (RFC 7541: static indexes
/// 2, 6, 4 and a literal `:authority`).
pub(crate) fn get_block() -> Vec<u8> {
    vec![0x82, 0x86, 0x84, 0x01, 0x01, b'a']
}

/// An HPACK literal field `x-big: <n bytes>`, never indexed.
pub(crate) fn big_field(n: usize) -> Vec<u8> {
    let mut out = vec![0x10, 5];
    out.extend_from_slice(b"x-big");
    // Value length as an HPACK integer with a 7-bit prefix.
    let mut len = n;
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push((len % 128 + 128) as u8);
            len /= 128;
        }
        out.push(len as u8);
    }
    out.extend(std::iter::repeat_n(b'v', n));
    out
}

/// A raw client that has sent the preface and an empty SETTINGS frame.
pub(crate) async fn raw_client(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    tcp.write_all(&hello).await.unwrap();
    tcp
}

/// A frame as read: kind, flags, stream, payload.
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

/// Read one frame; `None` on EOF, error or when `within` passes.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    tcp: &mut R,
    within: Duration,
) -> Option<Frame> {
    let read = async {
        let mut head = [0u8; 9];
        tcp.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        tcp.read_exact(&mut payload).await.ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream,
            payload,
        })
    };
    tokio::time::timeout(within, read).await.ok().flatten()
}

/// Read frames until a GOAWAY and return its error code, or `None` when
/// the connection ended or `within` passed without one.
pub(crate) async fn goaway_code<R: AsyncRead + Unpin>(
    tcp: &mut R,
    within: Duration,
) -> Option<u32> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = read_frame(tcp, left).await?;
        if f.kind == GOAWAY && f.payload.len() >= 8 {
            let p = &f.payload;
            return Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
    }
}
