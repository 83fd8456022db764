//! Accepting the PROXY protocol on a listener: whom to believe
//! ([`ProxyProtocolSettings`]) and reading the header off a new
//! connection, on its own task, before TLS.
//!
//! The header is read without taking a byte past it: the socket is
//! peeked until the bytes there hold a whole header (or prove there is
//! none), then exactly the header's length is read. What follows it is
//! left on the socket for TLS or the app, and nothing needs replaying.

use super::Cidr;
use crate::protocols::l4::L4Stream;
use crate::protocols::proxy_protocol::{self, Parsed, ProxyError, ProxyHeader};
use crate::protocols::{SocketAddr, Stream};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How long a trusted sender has to send its whole header, by default.
pub const DEFAULT_PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes a header may take: the v2 prefix and its largest body (a v1
/// header is shorter).
const MAX_HEADER: usize = 16 + proxy_protocol::V2_MAX_BODY;

/// The longest pause between two looks at a socket whose header has
/// arrived only in part.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(20);

/// How a listener accepts PROXY protocol headers (v1 and v2): from which
/// senders, how long it waits for one, and whether it must come.
///
/// Only connections whose socket peer is in a trusted network are read
/// for a header; their header's client address then replaces the peer in
/// the connection's [`Digest`](crate::protocols::Digest) (logs, the
/// proxy's `client_addr`, connection filters). A connection from anywhere
/// else is served with its socket address, and bytes it sends that look
/// like a header are never believed: they are the app's bytes like any
/// other (an HTTP app answers them 400).
///
/// From a trusted sender, a malformed header, a closed connection or a
/// header that does not arrive within `header_timeout` closes the
/// connection; so does a missing one when `required` (the default).
/// When the header is optional, a trusted client that starts with other
/// bytes is served at once, and one that sends nothing is served once
/// `header_timeout` has passed (a protocol where the server speaks
/// first).
///
/// # Examples
///
/// ```
/// use pingora_core::apps::ListenerOptions;
/// use pingora_core::listeners::ProxyProtocolSettings;
/// use std::time::Duration;
///
/// let balancers = ["10.0.0.0/8".parse().unwrap(), "127.0.0.1".parse().unwrap()];
/// let proxy = ProxyProtocolSettings::trusting(balancers)
///     .with_header_timeout(Duration::from_secs(2));
/// let options = ListenerOptions::default().with_proxy_protocol(proxy);
/// assert!(options.proxy_protocol.unwrap().required);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyProtocolSettings {
    /// The networks whose connections are read for a header (the
    /// balancers in front).
    pub trusted: Vec<Cidr>,
    /// Also read connections on a Unix socket listener for a header (a
    /// Unix peer has no IP address to match `trusted` against). Off by
    /// default.
    pub trust_unix_peers: bool,
    /// How long a trusted sender has to send the whole header
    /// ([`DEFAULT_PROXY_HEADER_TIMEOUT`] by default).
    pub header_timeout: Duration,
    /// Whether a trusted sender must send a header (on by default). When
    /// off, a connection from a trusted network that does not start with
    /// one (a health check, say) is served with its socket address.
    pub required: bool,
}

impl ProxyProtocolSettings {
    /// Believe headers from `networks`, required, with the default
    /// timeout.
    pub fn trusting(networks: impl IntoIterator<Item = Cidr>) -> Self {
        Self {
            trusted: networks.into_iter().collect(),
            trust_unix_peers: false,
            header_timeout: DEFAULT_PROXY_HEADER_TIMEOUT,
            required: true,
        }
    }

    /// Give a trusted sender `timeout` to send its whole header.
    #[must_use]
    pub const fn with_header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Whether a trusted sender must send a header.
    #[must_use]
    pub const fn with_required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// Whether peers of a Unix socket listener are trusted senders.
    #[must_use]
    pub const fn with_unix_peers_trusted(mut self, trusted: bool) -> Self {
        self.trust_unix_peers = trusted;
        self
    }

    /// Whether a connection from `peer` is read for a header.
    pub fn trusts(&self, peer: Option<&SocketAddr>) -> bool {
        match peer {
            Some(SocketAddr::Inet(addr)) => self.trusted.iter().any(|n| n.contains(addr.ip())),
            Some(SocketAddr::Unix(_)) => self.trust_unix_peers,
            None => false,
        }
    }
}

/// Why a connection was closed for its header; the label of the
/// `pingora_proxy_protocol_rejected_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// A trusted sender sent no header, and one is required.
    Missing,
    /// The header broke the format or was too long.
    Malformed,
    /// The header did not arrive in time.
    Timeout,
    /// The connection closed or failed before the header was read.
    Closed,
}

impl Rejected {
    /// Every reason, in the order of [`Self::index`].
    pub(crate) const ALL: [&'static str; 4] = ["missing", "malformed", "timeout", "closed"];

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Read the PROXY header `settings` ask for off `stream`, a connection
/// just accepted: the stream back (its digest naming the client the
/// header carried, if one was read), or why it must be closed.
pub(crate) async fn accept_header(
    stream: Stream,
    settings: &ProxyProtocolSettings,
) -> Result<Stream, Rejected> {
    let peer = stream.digest().and_then(|d| d.peer_addr.clone());
    if !settings.trusts(peer.as_ref()) {
        return Ok(stream);
    }
    // Only a socket can be peeked; every accepted connection is one.
    let mut l4 = match L4Stream::from_boxed(stream) {
        Ok(l4) => l4,
        Err(stream) => return Ok(stream),
    };
    // How many bytes the client had sent at the last look.
    let mut seen = 0;
    let read = async {
        let Some((header, len)) = peek_header(&l4, peer.as_ref(), &mut seen).await? else {
            return Ok(None);
        };
        // Exactly the header's bytes, which are already there.
        let mut taken = vec![0; len];
        l4.read_exact(&mut taken)
            .await
            .map_err(|_| Rejected::Closed)?;
        Ok(Some(header))
    };
    match tokio::time::timeout(settings.header_timeout, read).await {
        Ok(Ok(Some(header))) => {
            l4.set_proxy_header(header);
            Ok(l4)
        }
        Ok(Ok(None)) if !settings.required => Ok(l4),
        Ok(Ok(None)) => Err(Rejected::Missing),
        Ok(Err(rejected)) => Err(rejected),
        // Silent all along: a client that waits for the server to speak
        // first, served as is when the header is optional.
        Err(_) if !settings.required && seen == 0 => Ok(l4),
        Err(_) => Err(Rejected::Timeout),
    }
}

/// Look at the bytes waiting on `l4` until they hold a whole header
/// (`Some` with its length), prove there is none (`None`), or break the
/// format. `seen` is kept at how many bytes the last look found.
async fn peek_header(
    l4: &L4Stream,
    peer: Option<&SocketAddr>,
    seen: &mut usize,
) -> Result<Option<(ProxyHeader, usize)>, Rejected> {
    let mut buf = vec![0; MAX_HEADER];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = l4.peek(&mut buf).await.map_err(|_| Rejected::Closed)?;
        if n == 0 {
            return Err(Rejected::Closed);
        }
        *seen = n;
        match proxy_protocol::parse(&buf[..n]) {
            Ok(Parsed::Header { header, len }) => return Ok(Some((header, len))),
            Err(ProxyError::NotProxy) => return Ok(None),
            Err(e) => {
                log::debug!("PROXY header from {peer:?}: {e}");
                return Err(Rejected::Malformed);
            }
            // A peek returns at once while any byte waits, new or not:
            // pause before looking again rather than spin. Senders write
            // the header in one piece, so this is the rare path.
            Ok(Parsed::Partial) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_POLL_PAUSE);
            }
        }
    }
}
