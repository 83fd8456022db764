//! The only `unsafe` in pingora-core: two system calls that neither std,
//! socket2 nor nix wrap safely.
//!
//! - Adopting file descriptors received over `SCM_RIGHTS` (graceful upgrade):
//!   nix hands them back as raw integers, and turning one into an owner is
//!   `unsafe` because the type system cannot know nothing else owns it.
//! - Setting `TCP_FASTOPEN` on a listening socket, which has no safe setter.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Take ownership of descriptors that `recvmsg` just installed into this
/// process from an `SCM_RIGHTS` control message.
///
/// The caller passes each received descriptor exactly once, right after
/// `recvmsg` returned it, and keeps no other copy of the numbers.
pub(crate) fn adopt_received_fds(fds: Vec<RawFd>) -> Vec<OwnedFd> {
    fds.into_iter()
        .filter(|fd| *fd >= 0)
        .map(|fd| {
            // SAFETY: the kernel installed `fd` into our descriptor table
            // while handling `recvmsg`; it is open, and no other object in
            // this process refers to it because its number was only ever
            // seen in the control message we consume here. So the returned
            // `OwnedFd` is its sole owner and closes it exactly once.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .collect()
}

/// Enable TCP Fast Open on a listening socket with a queue of `queue_len`
/// pending Fast Open requests.
///
/// # Errors
///
/// The `setsockopt` error, for example when the kernel disables Fast Open.
pub(crate) fn set_tcp_fastopen(socket: &impl AsFd, queue_len: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(queue_len).unwrap_or(libc::c_int::MAX);
    let len = libc::socklen_t::try_from(size_of::<libc::c_int>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor is borrowed from a live socket for the duration
    // of the call; `value` is a valid `c_int` on our stack and `len` is its
    // exact size, which is what `TCP_FASTOPEN` reads.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN,
            std::ptr::from_ref(&value).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{
        AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
        sendmsg, socketpair,
    };
    use std::io::{IoSlice, IoSliceMut, Read, Write};

    #[test]
    fn adopted_fd_is_the_sent_one() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (mut reader, mut writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let writer_fd = writer.as_raw_fd();
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(b"x")],
            &[ControlMessage::ScmRights(&[writer_fd])],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let mut buf = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg =
            recvmsg::<()>(b.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
        let mut received = Vec::new();
        for cmsg in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                received.extend(adopt_received_fds(fds));
            }
        }
        assert_eq!(received.len(), 1);
        let mut adopted = std::os::unix::net::UnixStream::from(received.remove(0));
        assert_ne!(adopted.as_raw_fd(), writer_fd);
        // The adopted descriptor is a second handle on the same socket.
        adopted.write_all(b"hi").unwrap();
        writer.write_all(b"!").unwrap();
        let mut got = [0u8; 3];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi!");
    }

    #[test]
    fn fastopen_on_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_tcp_fastopen(&listener, 16).unwrap();
        let queue = nix::sys::socket::getsockopt(&listener, FastOpenQueue).unwrap();
        assert_eq!(queue, 16);
        // Not a TCP socket: the kernel's error comes back, no panic.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(set_tcp_fastopen(&a, 16).is_err());
    }

    /// Reads `TCP_FASTOPEN` back, to check what we set.
    #[derive(Clone, Copy)]
    struct FastOpenQueue;

    impl nix::sys::socket::GetSockOpt for FastOpenQueue {
        type Val = i32;

        fn get<F: AsFd>(&self, fd: &F) -> nix::Result<i32> {
            let mut value: libc::c_int = 0;
            let mut len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap();
            // SAFETY: `value` and `len` are valid for writes and `len` is
            // the size of `value`, as getsockopt requires.
            let rc = unsafe {
                libc::getsockopt(
                    fd.as_fd().as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_FASTOPEN,
                    std::ptr::from_mut(&mut value).cast(),
                    &mut len,
                )
            };
            nix::errno::Errno::result(rc).map(|_| value)
        }
    }
}
