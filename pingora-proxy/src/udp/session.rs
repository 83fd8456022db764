//! The task of one UDP session: choose the upstream, then relay datagrams
//! both ways until the session is idle, fails or the server shuts down.

use super::metrics::DropReason;
use super::proxy::{Key, UdpProxy};
use super::queue::QueueRx;
use super::{ProxyUdp, SessionEnd, UdpPeer, UdpSession};
use bytes::Bytes;
use pingora_core::services::udp::{DatagramReply, MAX_DATAGRAM};
use pingora_error::{Error, ErrorType, OrErr, Result};
use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

thread_local! {
    /// The receive buffer of every session on this thread: a datagram is
    /// copied out at its own size at once, so sessions need no 64 KiB
    /// buffer each.
    static RECV_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

/// Run the session `id` of `key`, whose first datagram is `first`; answers
/// go back through `reply`.
pub(super) async fn run<P: ProxyUdp>(
    proxy: Arc<UdpProxy<P>>,
    key: Key,
    id: u64,
    mut queue: QueueRx,
    first: Bytes,
    reply: DatagramReply,
) {
    proxy.stats.session_started();
    let mut session = UdpSession::new(key.1, key.0);
    let mut ctx = proxy.inner.new_ctx();
    let mut closing = proxy.closing.subscribe();
    let mut relay = Relay {
        proxy: &proxy,
        session: &mut session,
        ctx: &mut ctx,
        reply: &reply,
    };
    let result = relay.run(&mut queue, first, &mut closing).await;
    // Closed first: a datagram arriving from now on starts a new session
    // instead of waiting in this one's queue.
    let left = queue.close();
    proxy.remove(&key, id);
    let reason = if session.upstream.is_none() {
        DropReason::NoUpstream
    } else {
        DropReason::Closed
    };
    proxy.stats.drop_datagrams(reason, left);
    session.dropped += left + queue.dropped();
    let error = match result {
        Ok(end) => {
            session.end = Some(end);
            None
        }
        Err(e) => {
            session.end = Some(SessionEnd::Error);
            Some(e)
        }
    };
    proxy
        .stats
        .session_ended(session.end == Some(SessionEnd::Idle));
    proxy
        .inner
        .logging(&session, error.as_deref(), &mut ctx)
        .await;
}

/// What the relay of one session works with.
struct Relay<'a, P: ProxyUdp> {
    proxy: &'a UdpProxy<P>,
    session: &'a mut UdpSession,
    ctx: &'a mut P::CTX,
    reply: &'a DatagramReply,
}

impl<P: ProxyUdp> Relay<'_, P> {
    /// Relay until the session ends, and say why it did.
    async fn run(
        &mut self,
        queue: &mut QueueRx,
        first: Bytes,
        closing: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd> {
        let options = &self.proxy.options;
        let connecting =
            pingora_timeout::fast::timeout(options.connect_timeout, self.connect(&first));
        let socket = tokio::select! {
            connected = connecting => match connected {
                Ok(Ok(socket)) => socket,
                Ok(Err(e)) => {
                    self.drop_datagram(DropReason::NoUpstream);
                    return Err(e);
                }
                Err(_) => {
                    self.drop_datagram(DropReason::NoUpstream);
                    return Error::e_explain(
                        ErrorType::ConnectTimedout,
                        "choosing the UDP upstream and opening its socket took too long",
                    )
                    .map_err(Error::into_up);
                }
            },
            () = closed(closing) => {
                self.drop_datagram(DropReason::Closed);
                return Ok(SessionEnd::Shutdown);
            }
        };
        self.send_upstream(&socket, first).await?;

        let idle_timeout = options.idle_timeout;
        let mut last = Instant::now();
        let idle = tokio::time::sleep_until(idle_deadline(last, idle_timeout));
        tokio::pin!(idle);
        loop {
            // Not biased: a flood one way must not starve the other.
            tokio::select! {
                () = closed(closing) => return Ok(SessionEnd::Shutdown),
                readable = socket.readable() => {
                    readable.or_err(ErrorType::ReadError, "UDP upstream socket failed")?;
                    if let Some(datagram) = try_recv(&socket)? {
                        last = Instant::now();
                        self.send_to_client(datagram).await;
                    }
                }
                datagram = queue.recv() => {
                    // The queue's sender left the table: the proxy is
                    // going away.
                    let Some(datagram) = datagram else {
                        return Ok(SessionEnd::Shutdown);
                    };
                    last = Instant::now();
                    self.send_upstream(&socket, datagram).await?;
                }
                () = &mut idle => {
                    // Re-armed only when it fires, not on every datagram.
                    let deadline = idle_deadline(last, idle_timeout);
                    if deadline <= Instant::now() {
                        return Ok(SessionEnd::Idle);
                    }
                    idle.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Choose the upstream and open the session's socket, connected to it.
    async fn connect(&mut self, first: &[u8]) -> Result<UdpSocket> {
        let peer = self
            .proxy
            .inner
            .upstream_peer(self.session, first, self.ctx)
            .await?;
        let socket = open(&peer).await.map_err(Error::into_up)?;
        self.session.upstream = Some(peer.addr);
        Ok(socket)
    }

    /// Filter `datagram` and send it to the upstream. A refused one (an
    /// ICMP port unreachable came back) ends the session, so the client's
    /// next datagram can go to another upstream.
    async fn send_upstream(&mut self, socket: &UdpSocket, datagram: Bytes) -> Result<()> {
        let filtered = self
            .proxy
            .inner
            .upstream_datagram_filter(self.session, datagram, self.ctx);
        let Some(datagram) = filtered else {
            self.drop_datagram(DropReason::Filtered);
            return Ok(());
        };
        let limit = self.proxy.options.send_timeout;
        match pingora_timeout::fast::timeout(limit, socket.send(&datagram)).await {
            Ok(Ok(_)) => self.session.to_upstream.add(datagram.len()),
            Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
                self.drop_datagram(DropReason::SendFailed);
                return Err(refused(e));
            }
            Ok(Err(e)) => {
                log::debug!("udp proxy: cannot send to the upstream: {e}");
                self.drop_datagram(DropReason::SendFailed);
            }
            Err(_) => self.drop_datagram(DropReason::SendFailed),
        }
        Ok(())
    }

    /// Filter `datagram` and send it to the client.
    async fn send_to_client(&mut self, datagram: Bytes) {
        let filtered =
            self.proxy
                .inner
                .downstream_datagram_filter(self.session, datagram, self.ctx);
        let Some(datagram) = filtered else {
            self.drop_datagram(DropReason::Filtered);
            return;
        };
        match self.reply.send(&datagram).await {
            Ok(()) => self.session.to_client.add(datagram.len()),
            Err(e) => {
                log::debug!("udp proxy: {e}");
                self.drop_datagram(DropReason::SendFailed);
            }
        }
    }

    fn drop_datagram(&mut self, reason: DropReason) {
        self.session.dropped += 1;
        self.proxy.stats.drop_datagrams(reason, 1);
    }
}

/// A socket bound as `peer` asks and connected to it, so that only the
/// upstream's datagrams reach it.
async fn open(peer: &UdpPeer) -> Result<UdpSocket> {
    let local = peer.bind_to.unwrap_or_else(|| match peer.addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    });
    let socket = UdpSocket::bind(local)
        .await
        .or_err_with(ErrorType::BindError, || {
            format!("cannot bind a UDP socket to {local}")
        })?;
    socket
        .connect(peer.addr)
        .await
        .or_err_with(ErrorType::ConnectError, || {
            format!("cannot connect a UDP socket to {}", peer.addr)
        })?;
    Ok(socket)
}

/// The next datagram waiting on `socket`, if any, copied out of this
/// thread's receive buffer.
fn try_recv(socket: &UdpSocket) -> Result<Option<Bytes>> {
    RECV_BUF.with_borrow_mut(|buf| match socket.try_recv(buf) {
        Ok(len) => Ok(Some(Bytes::copy_from_slice(&buf[..len]))),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Err(refused(e)),
        Err(e) => Err(e).or_err(ErrorType::ReadError, "UDP upstream receive failed"),
    })
}

/// When a session last active at `last` expires; a timeout too long to
/// add (`Duration::MAX`, say) means a year, which is as good as never.
fn idle_deadline(last: Instant, idle_timeout: Duration) -> Instant {
    last.checked_add(idle_timeout)
        .unwrap_or_else(|| last + Duration::from_secs(365 * 24 * 3600))
}

/// Wait until `closing` turns `true` (or its sender is gone).
///
/// # Cancel safety
///
/// Cancel safe.
async fn closed(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = closing.wait_for(|stop| *stop).await;
}

fn refused(e: std::io::Error) -> Box<Error> {
    Error::because(
        ErrorType::ConnectRefused,
        "the UDP upstream refused a datagram (port unreachable)",
        e,
    )
    .into_up()
}
