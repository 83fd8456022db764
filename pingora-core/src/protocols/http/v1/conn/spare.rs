//! Small buffers that waiting connections gave back, kept per thread for
//! the next connection that needs one.
//!
//! A kept-alive connection gives its buffers back every time it waits for
//! a request (so that an idle connection costs no buffer memory) and
//! takes them again when the request comes. Through the allocator that is
//! two allocations and two frees per request, plus making each fresh
//! buffer shareable when its head is split off; from this short per-thread
//! list it is a push and a pop. The list is bounded: 64 buffers with at
//! most 4 KiB of room each, usually 64 KiB per thread in all, however many
//! connections there are. (A buffer that is the unused end of a larger one,
//! such as a 16 KiB body read, keeps that allocation alive while listed:
//! at worst about a megabyte per thread.)

use bytes::BytesMut;
use std::cell::RefCell;

/// The most buffers kept per thread.
const MAX_SPARE: usize = 64;
/// Buffers larger than this (grown for a long head) go back to the
/// allocator instead.
const MAX_KEPT_CAPACITY: usize = 4 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with room for at least `room` bytes: a spare one when there
/// is one, else a new one.
pub(super) fn take(room: usize) -> BytesMut {
    let spare = SPARE.with(|spare| spare.try_borrow_mut().ok()?.pop());
    let mut buf = spare.unwrap_or_default();
    // A spare buffer whose allocation is free again takes its room back
    // in place; one still shared with a head somebody keeps allocates.
    buf.reserve(room);
    buf
}

/// Give `buf` back, emptied: kept for [`take`] when it is small and the
/// list has room, freed otherwise.
pub(super) fn give_back(mut buf: BytesMut) {
    if buf.capacity() == 0 || buf.capacity() > MAX_KEPT_CAPACITY {
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut()
            && spare.len() < MAX_SPARE
        {
            spare.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_without_allocating() {
        let mut buf = take(1024);
        assert!(buf.capacity() >= 1024);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let at = buf.as_ptr();
        give_back(buf);
        let again = take(1024);
        assert_eq!(again.as_ptr(), at);
        assert!(again.is_empty() && again.capacity() >= 1024);
    }

    #[test]
    fn large_buffers_and_overflow_go_to_the_allocator() {
        give_back(BytesMut::with_capacity(64 * 1024));
        let kept = SPARE.with(|s| s.borrow().len());
        assert!(kept <= MAX_SPARE);
        for _ in 0..2 * MAX_SPARE {
            give_back(BytesMut::with_capacity(512));
        }
        SPARE.with(|s| {
            let s = s.borrow();
            assert_eq!(s.len(), MAX_SPARE);
            assert!(s.iter().all(|b| b.capacity() <= MAX_KEPT_CAPACITY));
        });
    }
}
