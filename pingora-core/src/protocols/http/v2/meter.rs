//! A sans-IO meter of the frames a peer sends, for flood limits.
//!
//! The `h2` crate enforces the protocol, but it does not count how often a
//! peer sends frames that cost us work and give nothing back: RST_STREAM
//! (the 2023 "rapid reset" attack), PING and SETTINGS (each must be
//! answered, RFC 9113 §6.5.3 and §6.7), PRIORITY and empty DATA frames
//! (the 2019 "resource loop" and "0-length headers" floods), and
//! CONTINUATION frames of one header block (the 2024 CONTINUATION flood).
//!
//! [`FrameMeter`] reads only the 9-byte frame headers (RFC 9113 §4.1) of
//! the bytes it is fed and skips payloads without buffering them, so its
//! memory is constant whatever the peer declares. It takes the time as an
//! input and never reads a clock.

use super::{FrameRate, H2Options};
use std::fmt;
use std::time::{Duration, Instant};

/// The client connection preface (RFC 9113 §3.4), which precedes the first
/// frame on the server side.
const PREFACE_LEN: usize = 24;
/// Every frame starts with a header of this size (RFC 9113 §4.1).
const HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// The limit a peer went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Too many RST_STREAM frames in the window (rapid reset).
    Resets,
    /// Too many PING frames in the window.
    Pings,
    /// Too many SETTINGS frames in the window.
    Settings,
    /// Too many PRIORITY or empty DATA frames in the window.
    PointlessFrames,
    /// Too many CONTINUATION frames in one header block.
    Continuations,
}

impl Violation {
    /// A short lowercase description, for logs and errors.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Resets => "too many stream resets",
            Self::Pings => "too many pings",
            Self::Settings => "too many settings frames",
            Self::PointlessFrames => "too many priority or empty data frames",
            Self::Continuations => "too many continuation frames",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A count of events in a fixed window of time.
#[derive(Debug, Clone, Copy)]
struct Window {
    limit: FrameRate,
    start: Option<Instant>,
    count: u32,
}

impl Window {
    const fn new(limit: FrameRate) -> Self {
        Self {
            limit,
            start: None,
            count: 0,
        }
    }

    /// Count one event at `now`; false when it goes over the limit.
    fn hit(&mut self, now: Instant) -> bool {
        let fresh = match self.start {
            Some(start) => now.saturating_duration_since(start) >= self.limit.per,
            None => true,
        };
        if fresh {
            self.start = Some(now);
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= self.limit.max
    }
}

/// Where the reader stands in the byte stream.
#[derive(Debug, Clone, Copy)]
enum Position {
    /// Inside the connection preface; this many bytes of it are left.
    Preface(usize),
    /// Inside a frame header; this many of its bytes are known.
    Header([u8; HEADER_LEN], usize),
    /// Inside a payload; this many bytes of it are left.
    Payload(usize),
}

/// Counts the frames a peer sends and reports the first limit it passes.
#[derive(Debug)]
pub(crate) struct FrameMeter {
    position: Position,
    resets: Window,
    pings: Window,
    settings: Window,
    pointless: Window,
    max_continuations: u32,
    /// CONTINUATION frames seen in the header block now open, if any.
    continuations: Option<u32>,
    tripped: Option<Violation>,
}

impl FrameMeter {
    /// A meter for the frames a client sends to a server: the stream
    /// starts with the connection preface.
    pub(crate) fn for_server(options: &H2Options) -> Self {
        Self::new(options, Position::Preface(PREFACE_LEN))
    }

    /// A meter for the frames a server sends to a client.
    pub(crate) fn for_client(options: &H2Options) -> Self {
        Self::new(options, Position::Header([0; HEADER_LEN], 0))
    }

    fn new(options: &H2Options, position: Position) -> Self {
        Self {
            position,
            resets: Window::new(options.reset_limit),
            pings: Window::new(options.ping_limit),
            settings: Window::new(options.settings_limit),
            pointless: Window::new(options.pointless_frame_limit),
            max_continuations: options.max_continuation_frames,
            continuations: None,
            tripped: None,
        }
    }

    /// Account for `bytes` received at `now`. Once a limit is passed the
    /// violation is sticky: every later call returns it.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), Violation> {
        while !bytes.is_empty() {
            if let Some(v) = self.tripped {
                return Err(v);
            }
            match &mut self.position {
                Position::Preface(left) => {
                    let n = (*left).min(bytes.len());
                    bytes = &bytes[n..];
                    *left -= n;
                    if *left == 0 {
                        self.position = Position::Header([0; HEADER_LEN], 0);
                    }
                }
                Position::Payload(left) => {
                    let n = (*left).min(bytes.len());
                    bytes = &bytes[n..];
                    *left -= n;
                    if *left == 0 {
                        self.position = Position::Header([0; HEADER_LEN], 0);
                    }
                }
                Position::Header(head, have) => {
                    let n = (HEADER_LEN - *have).min(bytes.len());
                    head[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == HEADER_LEN {
                        let head = *head;
                        let len = usize::from(head[0]) << 16
                            | usize::from(head[1]) << 8
                            | usize::from(head[2]);
                        self.position = if len == 0 {
                            Position::Header([0; HEADER_LEN], 0)
                        } else {
                            Position::Payload(len)
                        };
                        if let Err(v) = self.on_frame(head[3], head[4], len, now) {
                            self.tripped = Some(v);
                        }
                    }
                }
            }
        }
        self.tripped.map_or(Ok(()), Err)
    }

    /// Count one frame of `kind` with `flags` and payload length `len`.
    fn on_frame(&mut self, kind: u8, flags: u8, len: usize, now: Instant) -> Result<(), Violation> {
        let within = match kind {
            RST_STREAM => self.resets.hit(now).then_some(()).ok_or(Violation::Resets),
            PING => self.pings.hit(now).then_some(()).ok_or(Violation::Pings),
            SETTINGS => (self.settings.hit(now))
                .then_some(())
                .ok_or(Violation::Settings),
            PRIORITY => self.pointless_hit(now),
            DATA if len == 0 && flags & END_STREAM == 0 => self.pointless_hit(now),
            _ => Ok(()),
        };
        within?;
        self.track_header_block(kind, flags)
    }

    fn pointless_hit(&mut self, now: Instant) -> Result<(), Violation> {
        if self.pointless.hit(now) {
            Ok(())
        } else {
            Err(Violation::PointlessFrames)
        }
    }

    /// Count CONTINUATION frames per header block (RFC 9113 §6.10): a
    /// block opens with HEADERS or PUSH_PROMISE without END_HEADERS and
    /// closes at the frame that has it. Order violations are left to `h2`.
    fn track_header_block(&mut self, kind: u8, flags: u8) -> Result<(), Violation> {
        let ends = flags & END_HEADERS != 0;
        match kind {
            HEADERS | PUSH_PROMISE => self.continuations = (!ends).then_some(0),
            CONTINUATION => {
                let seen = self.continuations.unwrap_or(0).saturating_add(1);
                if seen > self.max_continuations {
                    return Err(Violation::Continuations);
                }
                self.continuations = (!ends).then_some(seen);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The default window of the frame rate limits.
pub(crate) const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn options() -> H2Options {
        H2Options {
            ping_limit: FrameRate::new(3, Duration::from_secs(1)),
            reset_limit: FrameRate::new(2, Duration::from_secs(1)),
            max_continuation_frames: 2,
            ..H2Options::default()
        }
    }

    #[test]
    fn skips_the_preface_and_counts_pings_per_window() {
        let mut m = FrameMeter::for_server(&options());
        let t0 = Instant::now();
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..3 {
            bytes.extend(frame(PING, 0, &[0; 8]));
        }
        assert_eq!(m.feed(&bytes, t0), Ok(()));
        // A new window starts the count again.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(m.feed(&frame(PING, 0, &[0; 8]), later), Ok(()));
        let ping = frame(PING, 0, &[0; 8]);
        assert_eq!(m.feed(&ping, later), Ok(()));
        assert_eq!(m.feed(&ping, later), Ok(()));
        assert_eq!(m.feed(&ping, later), Err(Violation::Pings));
        // Sticky.
        assert_eq!(m.feed(&frame(DATA, 1, b"x"), later), Err(Violation::Pings));
    }

    #[test]
    fn frames_split_at_every_byte_are_counted_once() {
        let mut m = FrameMeter::for_client(&options());
        let t0 = Instant::now();
        let mut bytes = frame(DATA, 0, &[7; 300]);
        bytes.extend(frame(RST_STREAM, 0, &[0; 4]));
        bytes.extend(frame(RST_STREAM, 0, &[0; 4]));
        for b in &bytes {
            assert_eq!(m.feed(std::slice::from_ref(b), t0), Ok(()));
        }
        assert_eq!(
            m.feed(&frame(RST_STREAM, 0, &[0; 4]), t0),
            Err(Violation::Resets)
        );
    }

    #[test]
    fn continuation_frames_are_limited_per_block() {
        let mut m = FrameMeter::for_client(&options());
        let t0 = Instant::now();
        let mut ok = frame(HEADERS, 0, b"a");
        ok.extend(frame(CONTINUATION, 0, b""));
        ok.extend(frame(CONTINUATION, END_HEADERS, b""));
        ok.extend(frame(HEADERS, 0, b"a"));
        ok.extend(frame(CONTINUATION, 0, b""));
        ok.extend(frame(CONTINUATION, 0, b""));
        assert_eq!(m.feed(&ok, t0), Ok(()));
        assert_eq!(
            m.feed(&frame(CONTINUATION, 0, b""), t0),
            Err(Violation::Continuations)
        );
    }

    #[test]
    fn a_huge_declared_length_is_skipped_without_buffering() {
        let mut m = FrameMeter::for_client(&options());
        let head = [0xff, 0xff, 0xff, DATA, 0, 0, 0, 0, 1];
        assert_eq!(m.feed(&head, Instant::now()), Ok(()));
        assert!(matches!(m.position, Position::Payload(0xff_ffff)));
    }

    #[test]
    fn empty_data_without_end_stream_is_pointless() {
        let opts = H2Options {
            pointless_frame_limit: FrameRate::new(1, Duration::from_secs(1)),
            ..H2Options::default()
        };
        let mut m = FrameMeter::for_client(&opts);
        let t0 = Instant::now();
        assert_eq!(m.feed(&frame(DATA, END_STREAM, b""), t0), Ok(()));
        assert_eq!(m.feed(&frame(DATA, 0, b""), t0), Ok(()));
        assert_eq!(
            m.feed(&frame(PRIORITY, 0, &[0; 5]), t0),
            Err(Violation::PointlessFrames)
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut m = FrameMeter::for_server(&H2Options::default());
        let mut x: u32 = 12345;
        let t0 = Instant::now();
        for _ in 0..10_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let len = (x >> 24) as usize % 40;
            let chunk: Vec<u8> = (0..len).map(|i| (x >> (i % 24)) as u8).collect();
            let _ = m.feed(&chunk, t0);
        }
    }
}
