//! Passing listening sockets to a new process during a graceful upgrade.
//!
//! The new process (started with `-u`) listens on the `upgrade_sock` Unix
//! socket; the old one, on SIGQUIT, connects and sends one message: a header
//! naming each socket, with the sockets themselves attached as `SCM_RIGHTS`.
//! The new process answers one byte once it owns them, and only then does
//! the old one stop accepting. Because both processes hold the same
//! listening sockets throughout, the kernel keeps queueing connections the
//! whole time: none is refused.
//!
//! Only a peer running as root, as our own user, or as the user the
//! config switches to may take part: the socket path is often in a shared
//! directory, and whoever gets the listening sockets can serve the traffic.
//!
//! Message: `b"PFD1"`, the payload length as a big-endian `u32`, then the
//! payload: the socket keys, UTF-8, each followed by a NUL byte, in the order
//! of the attached descriptors.

use crate::protocols::l4::sys::adopt_received_fds;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, getsockopt, recvmsg, sendmsg, sockopt,
};
use nix::unistd::{Uid, User};
use pingora_error::{Error, ErrorType, OkOrErr, OrErr, Result};
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 4] = b"PFD1";
const HEADER_LEN: usize = 8;
/// The kernel's limit of descriptors in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;
/// Keys are addresses or paths; this bounds what a peer can make us buffer.
const MAX_PAYLOAD: usize = 64 * 1024;
/// The byte the new process answers once it owns the sockets.
const ACK: u8 = b'1';
/// How often to retry while waiting for the other process.
const POLL: Duration = Duration::from_millis(10);

/// The users allowed at the other end of the upgrade socket: root, us, and
/// the user named in the config, which a daemon switches to.
#[derive(Debug, Clone)]
pub(crate) struct TrustedPeers {
    uids: Vec<Uid>,
}

impl TrustedPeers {
    /// Root, our effective user and `user` (when it exists).
    pub(crate) fn new(user: Option<&str>) -> Result<Self> {
        let mut uids = vec![Uid::from_raw(0), nix::unistd::geteuid()];
        if let Some(name) = user {
            let found = User::from_name(name)
                .ok()
                .flatten()
                .or_err_with(ErrorType::InternalError, || format!("unknown user {name}"))?;
            uids.push(found.uid);
        }
        Ok(Self { uids })
    }

    /// The configured user, other than root and us, who must be able to
    /// connect to a socket we create.
    fn switch_user(&self) -> Option<Uid> {
        self.uids.get(2).copied().filter(|uid| *uid != self.uids[1])
    }

    /// Fail unless the process at the other end of `stream` is trusted.
    fn check(&self, stream: &UnixStream) -> Result<()> {
        let creds = getsockopt(stream, sockopt::PeerCredentials).or_err(
            ErrorType::SocketError,
            "cannot read upgrade peer credentials",
        )?;
        let uid = Uid::from_raw(creds.uid());
        if self.uids.contains(&uid) {
            return Ok(());
        }
        Error::e_explain(
            ErrorType::InternalError,
            format!(
                "upgrade peer pid {} runs as untrusted uid {uid}",
                creds.pid()
            ),
        )
    }
}

/// Encode the message header and payload for `keys`.
fn encode(keys: &[&str]) -> Result<Vec<u8>> {
    let payload_len: usize = keys.iter().map(|k| k.len() + 1).sum();
    if keys.len() > MAX_FDS || payload_len > MAX_PAYLOAD {
        return Error::e_explain(
            ErrorType::InternalError,
            "too many listening sockets to pass",
        );
    }
    if keys.iter().any(|k| k.contains('\0')) {
        return Error::e_explain(ErrorType::InternalError, "listener key contains NUL");
    }
    let mut msg = Vec::with_capacity(HEADER_LEN + payload_len);
    msg.extend_from_slice(MAGIC);
    // payload_len <= MAX_PAYLOAD, which fits a u32.
    msg.extend_from_slice(&u32::try_from(payload_len).unwrap_or(u32::MAX).to_be_bytes());
    for key in keys {
        msg.extend_from_slice(key.as_bytes());
        msg.push(0);
    }
    Ok(msg)
}

/// The payload length announced by a header.
fn decode_header(header: &[u8; HEADER_LEN]) -> Result<usize> {
    if &header[..4] != MAGIC {
        return Error::e_explain(ErrorType::InternalError, "upgrade message: bad magic");
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_PAYLOAD {
        return Error::e_explain(
            ErrorType::InternalError,
            "upgrade message: payload too large",
        );
    }
    Ok(len)
}

/// The keys in a payload.
fn decode_payload(payload: &[u8]) -> Result<Vec<String>> {
    let Some(body) = payload.strip_suffix(b"\0") else {
        return if payload.is_empty() {
            Ok(Vec::new())
        } else {
            Error::e_explain(
                ErrorType::InternalError,
                "upgrade message: unterminated key",
            )
        };
    };
    body.split(|b| *b == 0)
        .map(|k| {
            String::from_utf8(k.to_vec()).explain_err(
                ErrorType::InternalError,
                |_| "upgrade message: key not UTF-8",
            )
        })
        .collect()
}

/// Old process: send `fds` to the new process listening on `path`, retrying
/// the connection until `timeout`, and wait for its acknowledgement.
///
/// # Errors
///
/// When the new process cannot be reached in time, or does not confirm.
pub(crate) fn send_fds(
    path: &Path,
    fds: &[(String, OwnedFd)],
    trusted: &TrustedPeers,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let keys: Vec<&str> = fds.iter().map(|(k, _)| k.as_str()).collect();
    let msg = encode(&keys)?;
    let raw: Vec<RawFd> = fds.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    let mut stream = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            // The new process may not have bound the socket yet.
            Err(e) if Instant::now() < deadline => log::debug!("upgrade socket not ready: {e}"),
            Err(e) => {
                return Err(e).or_err_with(ErrorType::ConnectError, || {
                    format!("no new process listening on {}", path.display())
                });
            }
        }
        std::thread::sleep(POLL);
    };
    trusted.check(&stream)?;
    let remaining = deadline.saturating_duration_since(Instant::now()).max(POLL);
    stream
        .set_write_timeout(Some(remaining))
        .and_then(|()| stream.set_read_timeout(Some(remaining)))
        .or_err(ErrorType::SocketError, "cannot set upgrade socket timeouts")?;
    let cmsg = [ControlMessage::ScmRights(&raw)];
    // The descriptors travel with the first byte; the rest follows as data.
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&msg)],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .or_err(ErrorType::WriteError, "cannot send listening sockets")?;
    stream
        .write_all(&msg[sent..])
        .or_err(ErrorType::WriteError, "cannot send listening sockets")?;
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack).or_err(
        ErrorType::ReadError,
        "new process did not confirm the upgrade",
    )?;
    if ack[0] != ACK {
        return Error::e_explain(ErrorType::ReadError, "new process refused the upgrade");
    }
    Ok(())
}

/// New process: listen on `path`, wait up to `timeout` for the old process
/// to send its sockets, and return them by key.
///
/// # Errors
///
/// When nothing arrives in time or the message is malformed.
pub(crate) fn receive_fds(
    path: &Path,
    trusted: &TrustedPeers,
    timeout: Duration,
) -> Result<Vec<(String, OwnedFd)>> {
    let deadline = Instant::now() + timeout;
    // A socket file left by an earlier upgrade would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).or_err_with(ErrorType::BindError, || {
        format!("cannot listen on upgrade socket {}", path.display())
    })?;
    // Connecting needs write permission on the socket file: let the user a
    // daemon switches to connect to us when we started as root.
    if let Some(uid) = trusted.switch_user() {
        nix::unistd::chown(path, Some(uid), None).or_err(
            ErrorType::SocketError,
            "cannot hand the upgrade socket to the user",
        )?;
    }
    let result = accept_and_receive(&listener, trusted, deadline);
    let _ = std::fs::remove_file(path);
    result
}

fn accept_and_receive(
    listener: &UnixListener,
    trusted: &TrustedPeers,
    deadline: Instant,
) -> Result<Vec<(String, OwnedFd)>> {
    listener.set_nonblocking(true).or_err(
        ErrorType::SocketError,
        "cannot set upgrade socket non-blocking",
    )?;
    let mut stream = loop {
        match listener.accept() {
            // An untrusted peer is ignored, not fatal: it must not be able
            // to cancel the upgrade by connecting first.
            Ok((s, _)) => match trusted.check(&s) {
                Ok(()) => break s,
                Err(e) => log::warn!("{e}"),
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(POLL);
            }
            Err(e) => {
                return Err(e).or_err(ErrorType::AcceptError, "old process never sent its sockets");
            }
        }
    };
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(remaining)))
        .and_then(|()| stream.set_write_timeout(Some(remaining)))
        .or_err(ErrorType::SocketError, "cannot set upgrade socket timeouts")?;
    let (first, fds) = recv_with_fds(&stream)?;
    let mut header = [0u8; HEADER_LEN];
    let head_len = first.len().min(HEADER_LEN);
    header[..head_len].copy_from_slice(&first[..head_len]);
    stream
        .read_exact(&mut header[head_len..])
        .or_err(ErrorType::ReadError, "upgrade message truncated")?;
    let payload_len = decode_header(&header)?;
    let mut payload = first[head_len..].to_vec();
    if payload.len() > payload_len {
        return Error::e_explain(ErrorType::ReadError, "upgrade message too long");
    }
    let already = payload.len();
    payload.resize(payload_len, 0);
    stream
        .read_exact(&mut payload[already..])
        .or_err(ErrorType::ReadError, "upgrade message truncated")?;
    let keys = decode_payload(&payload)?;
    if keys.len() != fds.len() {
        return Error::e_explain(
            ErrorType::ReadError,
            format!(
                "upgrade message names {} sockets but carries {}",
                keys.len(),
                fds.len()
            ),
        );
    }
    stream
        .write_all(&[ACK])
        .or_err(ErrorType::WriteError, "cannot confirm the upgrade")?;
    Ok(keys.into_iter().zip(fds).collect())
}

/// One `recvmsg`: the bytes read and the descriptors attached to them.
fn recv_with_fds(stream: &UnixStream) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    // CLOEXEC: the sockets are passed on explicitly, never inherited.
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg_space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .or_err(ErrorType::ReadError, "cannot receive listening sockets")?;
    let mut fds = Vec::new();
    for cmsg in msg
        .cmsgs()
        .or_err(ErrorType::ReadError, "bad control message")?
    {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            fds.extend(adopt_received_fds(raw));
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Error::e_explain(ErrorType::ReadError, "listening sockets were truncated");
    }
    let len = msg.bytes;
    buf.truncate(len);
    Ok((buf, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let keys = ["tcp://127.0.0.1:0", "unix:///tmp/a b.sock"];
        let msg = encode(&keys).unwrap();
        let header: [u8; HEADER_LEN] = msg[..HEADER_LEN].try_into().unwrap();
        assert_eq!(decode_header(&header).unwrap(), msg.len() - HEADER_LEN);
        assert_eq!(decode_payload(&msg[HEADER_LEN..]).unwrap(), keys);
        assert!(decode_payload(b"").unwrap().is_empty());
        assert!(decode_payload(b"abc").is_err());
        assert!(encode(&["a\0b"]).is_err());
        assert!(decode_header(b"XXXX\0\0\0\0").is_err());
        assert!(decode_header(b"PFD1\xff\xff\xff\xff").is_err());
    }

    #[test]
    fn sockets_pass_between_threads() {
        let dir = std::env::temp_dir().join(format!("pingora-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("upgrade.sock");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fds = vec![("tcp://x".to_string(), OwnedFd::from(listener))];
        let receiver = {
            let path = path.clone();
            std::thread::spawn(move || {
                receive_fds(
                    &path,
                    &TrustedPeers::new(None).unwrap(),
                    Duration::from_secs(10),
                )
            })
        };
        let trusted = TrustedPeers::new(None).unwrap();
        send_fds(&path, &fds, &trusted, Duration::from_secs(10)).unwrap();
        let mut received = receiver.join().unwrap().unwrap();
        assert_eq!(received.len(), 1);
        let (key, fd) = received.remove(0);
        assert_eq!(key, "tcp://x");
        assert_eq!(std::net::TcpListener::from(fd).local_addr().unwrap(), addr);
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn send_times_out_without_receiver() {
        let path = std::env::temp_dir().join(format!("pingora-none-{}.sock", std::process::id()));
        let trusted = TrustedPeers::new(None).unwrap();
        let err = send_fds(&path, &[], &trusted, Duration::from_millis(50)).unwrap_err();
        assert_eq!(*err.etype(), ErrorType::ConnectError);
    }

    #[test]
    fn untrusted_peer_is_refused() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(TrustedPeers::new(None).unwrap().check(&a).is_ok());
        let nobody = TrustedPeers {
            uids: vec![Uid::from_raw(u32::MAX - 1)],
        };
        let err = nobody.check(&a).unwrap_err();
        assert!(err.to_string().contains("untrusted uid"), "{err}");
        assert!(TrustedPeers::new(Some("no-such-user-pingora")).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        // The upgrade message comes from another process: malformed bytes are
        // an error, never a panic.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_payload(&bytes);
            if bytes.len() >= HEADER_LEN {
                let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
                let _ = decode_header(&header);
            }
        }
    }
}
