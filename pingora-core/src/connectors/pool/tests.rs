use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{DuplexStream, duplex};

mod sweeper;

/// A connection that knows its number; its far end lets a test close it or
/// send unsolicited bytes.
struct Conn {
    id: u32,
    io: DuplexStream,
}

impl IdleWatch for Conn {
    fn poll_unusable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        poll_read_unusable(&mut self.io, cx)
    }
}

fn conn(id: u32) -> (Conn, DuplexStream) {
    let (io, far) = duplex(64);
    (Conn { id, io }, far)
}

/// Let spawned tasks (the sweeper) run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn reuse_most_recent_first() {
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    let (b, _fb) = conn(2);
    pool.put(1, a, None);
    pool.put(1, b, None);
    assert_eq!(pool.len_of(1), 2);
    assert_eq!(pool.get(1).map(|c| c.id), Some(2));
    assert_eq!(pool.get(1).map(|c| c.id), Some(1));
    assert!(pool.get(1).is_none());
    assert!(pool.is_empty());
}

#[tokio::test(start_paused = true)]
async fn keys_never_mix() {
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    pool.put(1, a, None);
    assert!(pool.get(2).is_none());
    assert_eq!(pool.get(1).map(|c| c.id), Some(1));
}

#[tokio::test(start_paused = true)]
async fn capacity_evicts_least_recently_returned() {
    let pool = ConnectionPool::new(2);
    let mut fars = Vec::new();
    for id in 1..=3 {
        let (c, far) = conn(id);
        fars.push(far);
        pool.put(u64::from(id % 2), c, None);
    }
    assert_eq!(pool.len(), 2);
    // Connection 1 (key 1) was the oldest and is gone: key 1 now holds 3.
    assert_eq!(pool.get(1).map(|c| c.id), Some(3));
    assert!(pool.get(1).is_none());
    assert_eq!(pool.get(0).map(|c| c.id), Some(2));
    // The evicted connection was dropped: its far end sees end of stream.
    let mut buf = [0u8; 1];
    let n = tokio::io::AsyncReadExt::read(&mut fars[0], &mut buf)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(start_paused = true)]
async fn zero_capacity_pools_nothing() {
    let pool = ConnectionPool::new(0);
    let (a, _fa) = conn(1);
    pool.put(1, a, None);
    assert!(pool.get(1).is_none());
}

#[test]
fn idle_timeout_holds_without_a_runtime() {
    // No runtime: no sweeper, only the check at get time. A zero timeout
    // has passed by the time `get` looks, with no need to wait.
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    let (b, _fb) = conn(2);
    let (c, _fc) = conn(3);
    pool.put(1, a, Some(Duration::from_secs(60)));
    pool.put(1, b, Some(Duration::ZERO));
    pool.put(1, c, Some(Duration::ZERO));
    assert_eq!(pool.len(), 3);
    // Both expired ones are skipped, and dropped.
    assert_eq!(pool.get(1).map(|c| c.id), Some(1));
    assert!(pool.is_empty());
}

#[tokio::test(start_paused = true)]
async fn expired_connection_is_not_handed_out_before_a_sweep() {
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    pool.put(1, a, Some(Duration::ZERO));
    assert!(pool.get(1).is_none());
}

#[test]
fn closed_connection_is_refused_without_a_runtime() {
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    let (b, fb) = conn(2);
    pool.put(1, a, None);
    pool.put(1, b, None);
    drop(fb);
    assert_eq!(pool.get(1).map(|c| c.id), Some(1));
}

#[tokio::test(start_paused = true)]
async fn closed_connection_is_not_handed_out_before_a_sweep() {
    let pool = ConnectionPool::new(10);
    let (a, fa) = conn(1);
    pool.put(1, a, None);
    settle().await;
    drop(fa);
    // No time passed: the sweeper has not run since the close.
    assert_eq!(pool.len(), 1);
    assert!(pool.get(1).is_none());
    assert!(pool.is_empty());
}

#[tokio::test]
async fn closed_connection_is_refused_when_the_task_budget_is_spent() {
    let pool = ConnectionPool::new(10);
    let (a, fa) = conn(1);
    pool.put(1, a, None);
    drop(fa);
    // Spend this task's cooperative budget: a ready channel then says
    // `Pending`, as would a socket polled within the budget.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..1000 {
        tx.send(n).unwrap();
    }
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut spent = false;
    for _ in 0..1000 {
        if rx.poll_recv(&mut cx).is_pending() {
            spent = true;
            break;
        }
    }
    assert!(spent);
    assert!(pool.get(1).is_none());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_releases_connections() {
    let pool = ConnectionPool::new(10);
    let (a, mut fa) = conn(1);
    pool.put(1, a, None);
    settle().await;
    drop(pool);
    settle().await;
    let mut buf = [0u8; 1];
    let n = tokio::io::AsyncReadExt::read(&mut fa, &mut buf)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// A connection that turns unusable only when a test says so, for
/// index-only tests.
struct Quiet {
    id: u32,
    dead: Arc<AtomicBool>,
}

impl IdleWatch for Quiet {
    fn poll_unusable(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        if self.dead.load(Ordering::Relaxed) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u64),
    Get(u64),
    /// Close the idle connection at this position (modulo the count) in
    /// return order, then sweep.
    Close(usize),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0u64..4).prop_map(Op::Put),
        (0u64..4).prop_map(Op::Get),
        (0usize..8).prop_map(Op::Close),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Against a model: a list in return order, trimmed from the oldest
    /// past the capacity, taken from the newest of a key, and losing any
    /// entry, wherever it is, that a sweep finds closed.
    #[test]
    fn pool_matches_the_lru_model(
        capacity in 0usize..5,
        ops in proptest::collection::vec(op(), 0..64),
    ) {
        // No runtime: no sweeper, only explicit sweeps.
        let pool = ConnectionPool::new(capacity);
        let mut model: Vec<(u64, u32, Arc<AtomicBool>)> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            let id = u32::try_from(n).unwrap();
            match op {
                Op::Put(key) => {
                    let dead = Arc::new(AtomicBool::new(false));
                    pool.put(key, Quiet { id, dead: dead.clone() }, None);
                    if capacity > 0 {
                        model.push((key, id, dead));
                    }
                    while model.len() > capacity {
                        model.remove(0);
                    }
                }
                Op::Get(key) => {
                    let expected = model
                        .iter()
                        .rposition(|(k, _, _)| *k == key)
                        .map(|i| model.remove(i).1);
                    proptest::prop_assert_eq!(pool.get(key).map(|c| c.id), expected);
                }
                Op::Close(at) => {
                    let closed = if model.is_empty() {
                        0
                    } else {
                        let (_, _, dead) = model.remove(at % model.len());
                        dead.store(true, Ordering::Relaxed);
                        1
                    };
                    proptest::prop_assert_eq!(pool.sweep_now(), closed);
                }
            }
            proptest::prop_assert_eq!(pool.len(), model.len());
            for key in 0..4 {
                let in_model = model.iter().filter(|(k, _, _)| *k == key).count();
                proptest::prop_assert_eq!(pool.len_of(key), in_model);
            }
        }
    }
}
