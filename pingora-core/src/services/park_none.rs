//! Parking idle connections needs epoll: elsewhere they wait on their
//! tasks, and nothing is ever parked.

use super::listening::Listening;
use crate::apps::ServerApp;
use crate::protocols::Stream;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// How many connections are parked: always none on this platform.
#[derive(Debug, Clone, Default)]
pub struct ParkedCount(Arc<AtomicUsize>);

impl ParkedCount {
    /// Connections parked right now.
    pub fn get(&self) -> usize {
        0
    }
}

/// Never built here.
#[derive(Debug)]
pub(super) enum Parker {}

pub(super) fn parker(_: &ParkedCount) -> Option<Arc<Parker>> {
    None
}

pub(super) fn watch<A: ServerApp + Send + Sync + 'static>(_: &Arc<Listening<A>>) {}

/// What became of a connection handed to [`park`]: never parked here.
#[derive(Debug)]
pub(super) enum Parked {
    /// It waits in the listener's set.
    Yes,
    /// It broke on the way and is closed.
    Closed,
}

pub(super) fn park<A>(_: &Listening<A>, stream: Stream, _: Duration) -> Result<Parked, Stream> {
    Err(stream)
}
