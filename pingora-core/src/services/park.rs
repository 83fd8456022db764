//! Parked connections: idle keep-alive connections held as bare sockets,
//! with no task and no protocol state, until their client sends again.
//!
//! A kept-alive HTTP/1 connection mostly waits. Waiting on its own task
//! costs the task, the serving future, the runtime's readiness record and
//! the connection's state: a couple of kilobytes, times every idle client.
//! Once such a connection has been silent for a moment (the app says when,
//! by returning [`Served::Idle`](crate::apps::Served::Idle)), the listening
//! service parks it here instead: the socket leaves the runtime's reactor
//! for an epoll set of its own, and what is kept is one small slot (the
//! descriptor, a deadline, when the connection was accepted). One task per
//! listener watches the set. When a parked socket becomes readable (bytes
//! of a request, or the client's close) it is taken out and served again
//! on a new task; when its deadline passes first it is closed; when the
//! server starts draining, every parked connection is handed back to the
//! app, which drains it as it would any idle connection.
//!
//! Linux only (epoll); elsewhere connections wait on their tasks.

use super::listening::{Listening, serve};
use crate::apps::ServerApp;
use crate::protocols::Stream;
use crate::protocols::http::v2::unwrap_replayed;
use crate::protocols::l4::{IdleSocket, L4Stream};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use parking_lot::Mutex;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A sweep for expired connections runs at most this often: a slot's
/// deadline may be passed by up to this much before it is closed.
const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// How many readiness events one `epoll_wait` takes.
const EVENTS: usize = 256;

/// How many connections are parked, across the listeners of a service.
///
/// # Examples
///
/// ```no_run
/// # use pingora_core::services::listening::ListeningService;
/// # fn show<A>(service: &ListeningService<A>) {
/// let parked = service.parked_connections();
/// println!("{} idle connections parked", parked.get());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ParkedCount(Arc<AtomicUsize>);

impl ParkedCount {
    /// Connections parked right now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// One parked connection.
#[derive(Debug)]
struct Slot {
    /// Bumped each time the slot is freed, so that an event for an earlier
    /// occupant is never taken for the current one.
    generation: u32,
    parked: Option<(IdleSocket, Instant)>,
}

#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// No more parking: the server is draining.
    closed: bool,
    /// When the watcher wakes next to close expired connections.
    next_sweep: Option<Instant>,
}

/// A parker for a listener, counted in `count`; `None` when epoll is not
/// available (the connections then wait on their tasks).
pub(super) fn parker(count: &ParkedCount) -> Option<Arc<Parker>> {
    match Parker::new(count.clone()) {
        Ok(parker) => Some(Arc::new(parker)),
        Err(e) => {
            log::warn!("idle connections will not be parked: {e}");
            None
        }
    }
}

/// Start the task that watches `listening`'s parked connections.
pub(super) fn watch<A: ServerApp + Send + Sync + 'static>(listening: &Arc<Listening<A>>) {
    let Some(parker) = listening.parker.clone() else {
        return;
    };
    let draining = listening.draining.clone();
    let resume: Arc<dyn Resume> = Arc::new(ServeAgain(Arc::clone(listening)));
    listening.spawner.spawn(parker.watch(draining, resume));
}

/// What became of a connection handed to [`park`].
#[derive(Debug)]
pub(super) enum Parked {
    /// It waits in the listener's set.
    Yes,
    /// It broke on the way and is closed.
    Closed,
}

/// Park `stream`, idle, for at most `wait`. `Err` hands it back when it
/// cannot be parked: not a plain socket, or the server is draining. A
/// socket that broke on the way is closed.
pub(super) fn park<A>(
    listening: &Listening<A>,
    stream: Stream,
    wait: Duration,
) -> Result<Parked, Stream> {
    let Some(parker) = &listening.parker else {
        return Err(stream);
    };
    let l4 = L4Stream::from_boxed(unwrap_replayed(stream))?;
    let socket = match l4.into_idle() {
        Ok(socket) => socket,
        Err(e) => {
            log::debug!("cannot park a connection: {e}");
            return Ok(Parked::Closed);
        }
    };
    match parker.park(socket, wait) {
        Ok(()) => Ok(Parked::Yes),
        Err(socket) => match socket.into_stream() {
            Ok(stream) => Err(Box::new(stream)),
            Err(e) => {
                log::debug!("cannot take back a connection: {e}");
                Ok(Parked::Closed)
            }
        },
    }
}

/// Serves a resumed connection on a new task of the listener's runtime.
struct ServeAgain<A>(Arc<Listening<A>>);

impl<A: ServerApp + Send + Sync + 'static> Resume for ServeAgain<A> {
    fn resume(&self, socket: IdleSocket) {
        let listening = Arc::clone(&self.0);
        self.0.spawner.spawn(async move {
            // Registered with the runtime of the task that serves it.
            match socket.into_stream() {
                Ok(stream) => serve(listening, Box::new(stream), true).await,
                Err(e) => {
                    crate::metrics::connection_closed();
                    log::debug!("cannot resume a parked connection: {e}");
                }
            }
        });
    }
}

/// The parked connections of one listener.
#[derive(Debug)]
pub(super) struct Parker {
    epoll: Epoll,
    slots: Mutex<Slots>,
    /// Wakes the watcher when a deadline earlier than its next sweep came.
    sooner: Notify,
    count: ParkedCount,
}

/// What the watcher does with a connection it takes out of the set.
trait Resume: Send + Sync + 'static {
    /// Serve `socket` again: its client sent bytes, closed, or the server
    /// is draining.
    fn resume(&self, socket: IdleSocket);
}

fn key(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

impl Parker {
    /// An empty set whose parked connections `count` counts.
    fn new(count: ParkedCount) -> std::io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        Ok(Self {
            epoll,
            slots: Mutex::new(Slots::default()),
            sooner: Notify::new(),
            count,
        })
    }

    /// Park `socket` until it is readable, for at most `wait`. Hands it
    /// back when the set is closed (the server is draining) or the socket
    /// cannot join the set.
    fn park(&self, socket: IdleSocket, wait: Duration) -> Result<(), IdleSocket> {
        let deadline = Instant::now() + wait;
        let mut slots = self.slots.lock();
        if slots.closed {
            return Err(socket);
        }
        let index = match slots.free.pop() {
            Some(index) => index,
            None => match u32::try_from(slots.slots.len()) {
                Ok(index) => {
                    slots.slots.push(Slot {
                        generation: 0,
                        parked: None,
                    });
                    index
                }
                Err(_) => return Err(socket),
            },
        };
        let slot = &mut slots.slots[index as usize];
        // Level-triggered: a socket with bytes already waiting is reported
        // at the next wait, so nothing that arrived before this is missed.
        let event = EpollEvent::new(EpollFlags::EPOLLIN, key(index, slot.generation));
        if self.epoll.add(socket.as_fd(), event).is_err() {
            slots.free.push(index);
            return Err(socket);
        }
        slot.parked = Some((socket, deadline));
        self.count.0.fetch_add(1, Ordering::Relaxed);
        if slots.next_sweep.is_none_or(|next| deadline < next) {
            slots.next_sweep = Some(deadline);
            drop(slots);
            self.sooner.notify_one();
        }
        Ok(())
    }

    /// Take the connection of `index` out of the set, when `generation`
    /// is still its occupant's.
    fn take(&self, slots: &mut Slots, index: u32, generation: Option<u32>) -> Option<IdleSocket> {
        let slot = slots.slots.get_mut(index as usize)?;
        if generation.is_some_and(|g| g != slot.generation) {
            return None;
        }
        let (socket, _) = slot.parked.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        slots.free.push(index);
        let _ = self.epoll.delete(socket.as_fd());
        self.count.0.fetch_sub(1, Ordering::Relaxed);
        Some(socket)
    }

    /// Close the connections whose deadline passed, and plan the next sweep.
    fn sweep(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut slots = self.slots.lock();
        let mut next: Option<Instant> = None;
        for index in 0..slots.slots.len() {
            match slots.slots[index].parked {
                Some((_, deadline)) if deadline <= now => {
                    // `index` came from the slots' length, a u32.
                    if let Some(socket) = self.take(&mut slots, index as u32, None) {
                        expired.push(socket);
                    }
                }
                Some((_, deadline)) => next = Some(next.map_or(deadline, |n| n.min(deadline))),
                None => {}
            }
        }
        slots.next_sweep = next.map(|n| n.max(now + SWEEP_EVERY));
        drop(slots);
        // Closed outside the lock: an idle connection past its timeout is
        // simply closed, as its task would have done.
        for _ in &expired {
            crate::metrics::connection_closed();
        }
        drop(expired);
    }

    /// Take every parked connection out and stop parking.
    fn close(&self) -> Vec<IdleSocket> {
        let mut slots = self.slots.lock();
        slots.closed = true;
        let mut all = Vec::new();
        for index in 0..slots.slots.len() {
            if let Some(socket) = self.take(&mut slots, index as u32, None) {
                all.push(socket);
            }
        }
        all
    }

    /// Take out the connections epoll reports ready; `false` when none is.
    fn take_ready(&self, events: &mut [EpollEvent], ready: &mut Vec<IdleSocket>) -> bool {
        let n = match self.epoll.wait(events, EpollTimeout::ZERO) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => return true,
            Err(e) => {
                log::warn!("waiting on parked connections: {e}");
                return false;
            }
        };
        let mut slots = self.slots.lock();
        for event in &events[..n] {
            let data = event.data();
            // The key packs a u32 index and a u32 generation.
            let (index, generation) = (data as u32, (data >> 32) as u32);
            if let Some(socket) = self.take(&mut slots, index, Some(generation)) {
                ready.push(socket);
            }
        }
        n == events.len()
    }

    /// Watch the set until `draining` turns true (or its sender is gone),
    /// resuming the connections that become readable and closing those
    /// that expire; then hand every parked connection to `resume`.
    async fn watch(
        self: Arc<Self>,
        mut draining: crate::server::ShutdownWatch,
        resume: Arc<dyn Resume>,
    ) {
        let epoll = EpollFd(Arc::clone(&self));
        // SAFETY: the descriptor is the parker's epoll instance, an
        // `OwnedFd` it never replaces or closes while alive, and the
        // `AsyncFd` owns an `Arc` of the parker: the descriptor stays open
        // and the same for the `AsyncFd`'s whole life. (Exercised by every
        // test that parks a connection, such as
        // `services::listening::tests::an_idle_connection_is_parked_and_resumed`.)
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE) };
        let readiness = match registered {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!("cannot watch parked connections: {e}");
                None
            }
        };
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let mut ready = Vec::new();
        loop {
            let next_sweep = self.slots.lock().next_sweep;
            let sweep = async {
                match next_sweep {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = draining.wait_for(|d| *d) => break,
                () = self.sooner.notified() => {}
                guard = async { readiness.as_ref()?.readable().await.ok() }, if readiness.is_some() => {
                    let Some(mut guard) = guard else { break };
                    while self.take_ready(&mut events, &mut ready) {}
                    guard.clear_ready();
                    // Bytes that came after the last wait are reported by the
                    // next one: the set is level-triggered.
                    while self.take_ready(&mut events, &mut ready) {}
                    for socket in ready.drain(..) {
                        resume.resume(socket);
                    }
                }
                () = sweep => self.sweep(),
            }
        }
        for socket in self.close() {
            resume.resume(socket);
        }
    }
}

/// The epoll descriptor, as tokio's reactor watches it.
struct EpollFd(Arc<Parker>);

impl AsRawFd for EpollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.epoll.0.as_raw_fd()
    }
}
