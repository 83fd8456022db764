use super::*;
use std::task::Context;
use tokio::io::{AsyncWriteExt, DuplexStream, duplex};

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

/// Let the watcher tasks run.
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

#[tokio::test(start_paused = true)]
async fn idle_timeout_drops_the_connection() {
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    let (b, _fb) = conn(2);
    pool.put(1, a, Some(Duration::from_secs(5)));
    pool.put(1, b, Some(Duration::from_secs(60)));
    settle().await;
    tokio::time::advance(Duration::from_secs(6)).await;
    settle().await;
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.get(1).map(|c| c.id), Some(2));
    assert!(pool.get(1).is_none());
}

#[test]
fn idle_timeout_holds_without_a_runtime_watcher() {
    // No runtime: no watcher, only the check at get time.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(10);
    let (a, _fa) = rt.block_on(async { conn(1) });
    {
        let _guard = rt.enter();
        pool.put(1, a, Some(Duration::from_secs(1)));
    }
    rt.block_on(tokio::time::advance(Duration::from_secs(2)));
    let _guard = rt.enter();
    assert!(pool.get(1).is_none());
}

#[tokio::test(start_paused = true)]
async fn closed_by_upstream_is_dropped() {
    let pool = ConnectionPool::new(10);
    let (a, fa) = conn(1);
    pool.put(1, a, None);
    settle().await;
    drop(fa);
    settle().await;
    assert_eq!(pool.len(), 0);
    assert!(pool.get(1).is_none());
}

#[tokio::test(start_paused = true)]
async fn unsolicited_bytes_drop_the_connection() {
    let pool = ConnectionPool::new(10);
    let (a, mut fa) = conn(1);
    pool.put(1, a, None);
    settle().await;
    fa.write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        .await
        .unwrap();
    settle().await;
    assert!(pool.get(1).is_none());
}

#[tokio::test(start_paused = true)]
async fn taken_connection_is_not_watched_any_more() {
    let pool = ConnectionPool::new(10);
    let (a, mut fa) = conn(1);
    pool.put(1, a, None);
    settle().await;
    let mut taken = pool.get(1).unwrap();
    // Bytes sent now belong to the new owner, not to a watcher.
    fa.write_all(b"x").await.unwrap();
    settle().await;
    let mut buf = [0u8; 1];
    let n = tokio::io::AsyncReadExt::read(&mut taken.io, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf[..n], b"x");
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

/// A connection that never turns unusable, for index-only tests.
struct Quiet(u32);

impl IdleWatch for Quiet {
    fn poll_unusable(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u64),
    Get(u64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![(0u64..4).prop_map(Op::Put), (0u64..4).prop_map(Op::Get)]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Against a model: a list in return order, trimmed from the oldest
    /// past the capacity, taken from the newest of a key.
    #[test]
    fn pool_matches_the_lru_model(
        capacity in 0usize..5,
        ops in proptest::collection::vec(op(), 0..64),
    ) {
        // No runtime: no watchers, only the index is exercised.
        let pool = ConnectionPool::new(capacity);
        let mut model: Vec<(u64, u32)> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            let id = u32::try_from(n).unwrap();
            match op {
                Op::Put(key) => {
                    pool.put(key, Quiet(id), None);
                    if capacity > 0 {
                        model.push((key, id));
                    }
                    while model.len() > capacity {
                        model.remove(0);
                    }
                }
                Op::Get(key) => {
                    let expected = model
                        .iter()
                        .rposition(|(k, _)| *k == key)
                        .map(|i| model.remove(i).1);
                    proptest::prop_assert_eq!(pool.get(key).map(|c| c.0), expected);
                }
            }
            proptest::prop_assert_eq!(pool.len(), model.len());
            for key in 0..4 {
                let in_model = model.iter().filter(|(k, _)| *k == key).count();
                proptest::prop_assert_eq!(pool.len_of(key), in_model);
            }
        }
    }
}
