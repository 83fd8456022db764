//! [`DatagramReply`]: sends datagrams back to a client from the address it
//! wrote to.

use pingora_error::{Error, ErrorType, OrErr, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// The way back to the client of a datagram: sends from the service's
/// socket the datagram arrived on, so the client sees answers come from
/// the address it wrote to.
///
/// Cheap to clone (a shared socket handle and two addresses), and may be
/// kept past the datagram's handler, to answer later or many times: the
/// UDP proxy keeps one per session. It keeps the socket open while it
/// lives.
///
/// # Examples
///
/// ```
/// # use pingora_core::services::udp::DatagramReply;
/// # async fn answer(reply: &DatagramReply) -> pingora_error::Result<()> {
/// reply.send(b"pong").await?;
/// reply.send(b"and a second datagram").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DatagramReply {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    peer: SocketAddr,
    send_timeout: Duration,
}

impl DatagramReply {
    pub(super) fn new(
        socket: Arc<UdpSocket>,
        local: SocketAddr,
        peer: SocketAddr,
        send_timeout: Duration,
    ) -> Self {
        Self {
            socket,
            local,
            peer,
            send_timeout,
        }
    }

    /// Send `datagram` to the client, whole, as one datagram.
    ///
    /// # Errors
    ///
    /// `WriteError` when the socket refuses it (too large, say),
    /// `WriteTimedout` when the socket stays full for the service's
    /// [send timeout](super::UdpServiceOptions::send_timeout). A datagram
    /// sent may still be lost on the way: UDP does not say.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is sent whole or not at all.
    pub async fn send(&self, datagram: &[u8]) -> Result<()> {
        let sent = pingora_timeout::fast::timeout(
            self.send_timeout,
            self.socket.send_to(datagram, self.peer),
        )
        .await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e).or_err_with(ErrorType::WriteError, || {
                format!("cannot send a datagram to {}", self.peer)
            }),
            Err(_) => Error::e_explain(
                ErrorType::WriteTimedout,
                format!("UDP socket {} stayed full", self.local),
            ),
        }
    }

    /// The client's address: where [`send`](Self::send) sends to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The service's address the datagram arrived on, which answers come
    /// from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}
