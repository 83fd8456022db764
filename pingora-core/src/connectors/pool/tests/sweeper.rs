//! The background sweeper: what it releases, when, and that it is one
//! task per pool rather than one per connection.

use super::*;
use tokio::io::AsyncWriteExt;

/// Move paused time past the next sweep and let the sweeper run.
async fn after_a_sweep() {
    settle().await;
    tokio::time::advance(SWEEP_PERIOD + Duration::from_millis(1)).await;
    settle().await;
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_drops_the_connection() {
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    let (b, _fb) = conn(2);
    pool.put(1, a, Some(Duration::from_secs(5)));
    pool.put(1, b, Some(Duration::from_secs(60)));
    settle().await;
    // Released by the sweeper, without any get.
    tokio::time::advance(Duration::from_secs(6)).await;
    settle().await;
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.get(1).map(|c| c.id), Some(2));
    assert!(pool.get(1).is_none());
}

#[tokio::test(start_paused = true)]
async fn closed_by_upstream_is_dropped() {
    let pool = ConnectionPool::new(10);
    let (a, fa) = conn(1);
    pool.put(1, a, None);
    settle().await;
    drop(fa);
    after_a_sweep().await;
    assert_eq!(pool.len(), 0);
    assert!(pool.get(1).is_none());
}

#[tokio::test(start_paused = true)]
async fn sweeper_releases_closed_connections_nobody_asks_for() {
    let pool = ConnectionPool::new(10);
    let (a, fa) = conn(1);
    let (b, _fb) = conn(2);
    pool.put(1, a, None);
    pool.put(2, b, None);
    settle().await;
    drop(fa);
    // Well before a period has passed, nothing was swept yet.
    tokio::time::advance(SWEEP_PERIOD / 2).await;
    settle().await;
    assert_eq!(pool.len(), 2);
    after_a_sweep().await;
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.len_of(2), 1);
}

#[tokio::test(start_paused = true)]
async fn short_idle_timeouts_shorten_the_sweep_period() {
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    pool.put(1, a, Some(Duration::from_millis(100)));
    settle().await;
    tokio::time::advance(Duration::from_millis(250)).await;
    settle().await;
    assert!(pool.is_empty());
}

#[test]
fn sweep_now_works_without_a_runtime() {
    let pool = ConnectionPool::new(10);
    let (a, fa) = conn(1);
    let (b, _fb) = conn(2);
    let (c, _fc) = conn(3);
    pool.put(1, a, None);
    pool.put(1, b, None);
    pool.put(1, c, Some(Duration::ZERO));
    drop(fa);
    assert_eq!(pool.sweep_now(), 2);
    assert_eq!(pool.get(1).map(|c| c.id), Some(2));
}

#[tokio::test(start_paused = true)]
async fn no_task_per_connection() {
    let pool = ConnectionPool::new(4);
    let mut fars = Vec::new();
    for id in 0..4 {
        let (c, far) = conn(id);
        fars.push(far);
        pool.put(9, c, Some(Duration::from_secs(60)));
    }
    for _ in 0..1000 {
        let c = pool.get(9).unwrap();
        pool.put(9, c, Some(Duration::from_secs(60)));
    }
    // Tasks that were aborted but not yet polled still count as alive, so
    // this sees any per-connection task, even one aborted by `get`.
    assert_eq!(alive_tasks(), 1);
    settle().await;
    assert_eq!(alive_tasks(), 1);
    assert_eq!(pool.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_ends_the_sweeper() {
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    pool.put(1, a, None);
    settle().await;
    assert_eq!(alive_tasks(), 1);
    drop(pool);
    settle().await;
    assert_eq!(alive_tasks(), 0);
}

#[test]
fn sweeper_restarts_on_a_new_runtime() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let pool = ConnectionPool::new(10);
    let (a, _fa) = conn(1);
    let (b, fb) = conn(2);
    let first = runtime();
    first.block_on(async {
        pool.put(1, a, None);
        settle().await;
        assert_eq!(alive_tasks(), 1);
    });
    drop(first);
    runtime().block_on(async {
        pool.put(2, b, None);
        settle().await;
        assert_eq!(alive_tasks(), 1);
        drop(fb);
        after_a_sweep().await;
        assert_eq!(pool.len(), 1);
    });
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
    after_a_sweep().await;
    assert!(pool.is_empty());
    assert!(pool.get(1).is_none());
}

#[tokio::test(start_paused = true)]
async fn taken_connection_is_not_watched_any_more() {
    let pool = ConnectionPool::new(10);
    let (a, mut fa) = conn(1);
    pool.put(1, a, None);
    settle().await;
    let mut taken = pool.get(1).unwrap();
    // Bytes sent now belong to the new owner, not to the sweeper.
    fa.write_all(b"x").await.unwrap();
    after_a_sweep().await;
    assert_eq!(pool.sweep_now(), 0);
    let mut buf = [0u8; 1];
    let n = tokio::io::AsyncReadExt::read(&mut taken.io, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf[..n], b"x");
}

#[test]
fn a_failing_sweeper_is_not_restarted_on_every_put() {
    // No timer: the sweeper panics on its first sleep.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = ConnectionPool::new(10);
        for id in 0..3 {
            let (c, _far) = conn(id);
            pool.put(1, c, None);
            settle().await;
            assert_eq!(alive_tasks(), 0);
        }
        assert_eq!(pool.len(), 3);
        assert!(pool.shared.state.lock().sweeper_failed);
    });
}
