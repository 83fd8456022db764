//! A million concurrent timeouts: the fast coarse timer against tokio's.
//!
//! Each timeout guards a future that is pending on its first poll and ready
//! on its second, so every timeout arms a real timer. One run makes all of
//! them, polls each once (all million are now armed at the same time), polls
//! each again (the futures win) and drops them. A third entry runs the same
//! harness with no timer, to show what the harness itself costs.
//!
//! Run with `cargo bench -p pingora-timeout -- --sample-size 10`.

// `criterion_group!` generates a public function with no docs.
#![allow(missing_docs)]

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use std::future::{Future, poll_fn};
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::runtime::Runtime;

const TIMERS: usize = 1_000_000;

/// Far enough that no timer fires during a run.
const DEADLINE: Duration = Duration::from_secs(30);

/// Pending on its first poll, ready on the second.
#[derive(Default)]
struct PendOnce {
    polled: bool,
}

impl Future for PendOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.polled, true) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Arm `TIMERS` timeouts made by `make`, then let every guarded future win.
///
/// The timeouts are written in place over the previous run's, so the timed
/// work is: drop the old timeout, make a new one, arm it, complete it.
fn arm_and_complete<T, E>(cx: &mut Context<'_>, all: &mut [Pin<Box<T>>], make: &impl Fn() -> T)
where
    T: Future<Output = Result<(), E>>,
{
    for t in all.iter_mut() {
        t.set(make());
    }
    for t in all.iter_mut() {
        assert!(t.as_mut().poll(cx).is_pending());
    }
    for t in all.iter_mut() {
        assert!(matches!(t.as_mut().poll(cx), Poll::Ready(Ok(()))));
    }
    black_box(all);
}

fn bench<T, E>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    make: impl Fn() -> T,
) where
    T: Future<Output = Result<(), E>>,
{
    // Storage for a million pinned timeouts, allocated once outside the
    // timing, so that both flavours pay only for their timers.
    let mut all: Vec<Pin<Box<T>>> =
        rt.block_on(async { (0..TIMERS).map(|_| Box::pin(make())).collect() });
    group.bench_function(name, |b| {
        b.iter(|| {
            // Polled inside a task with tokio's cooperative budget switched
            // off: past 128 polls the budget would make tokio's timers skip
            // arming.
            rt.block_on(tokio::task::unconstrained(poll_fn(|cx| {
                arm_and_complete(cx, &mut all, &make);
                Poll::Ready(())
            })));
        });
    });
    // tokio's timers must be dropped inside the runtime's context.
    rt.block_on(async move { drop(all) });
}

/// Arm and complete `iters` timeouts one after the other, each guarding a
/// future that is pending `pends` times before it is ready, inside one task
/// poll with tokio's budget switched off, with the task's own `waker` (so
/// that both flavours pay for cloning and dropping it).
fn one_at_a_time<T, E>(iters: u64, pends: u8, waker: &Waker, make: &impl Fn(u8) -> T) -> Duration
where
    T: Future<Output = Result<(), E>>,
{
    let start = std::time::Instant::now();
    let run = std::pin::pin!(tokio::task::unconstrained(poll_fn(|cx| {
        for _ in 0..iters {
            let mut t = std::pin::pin!(make(pends));
            for _ in 0..pends {
                assert!(t.as_mut().poll(cx).is_pending());
            }
            assert!(matches!(t.as_mut().poll(cx), Poll::Ready(Ok(()))));
        }
        Poll::Ready(())
    })));
    // Inside a task, so tokio's timers find their runtime.
    assert!(run.poll(&mut Context::from_waker(waker)).is_ready());
    start.elapsed()
}

/// Pending `left` more times, then ready.
struct PendN {
    left: u8,
}

impl Future for PendN {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.left == 0 {
            Poll::Ready(())
        } else {
            self.left -= 1;
            Poll::Pending
        }
    }
}

/// One timeout at a time, cache-warm: the cost of arming and completing
/// the timer of a future that is ready at once (`pends` 0) or after one or
/// two polls, on one thread and on two threads at once.
fn arm_and_complete_one(c: &mut Criterion) {
    fn fast(left: u8) -> pingora_timeout::fast::Timeout<PendN> {
        pingora_timeout::fast::timeout(DEADLINE, PendN { left })
    }
    fn tokio(left: u8) -> tokio::time::Timeout<PendN> {
        tokio::time::timeout(DEADLINE, PendN { left })
    }
    let mut group = c.benchmark_group("arm and complete");
    for threads in [1_usize, 2] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_time()
            .build()
            .expect("a runtime builds");
        for pends in [0_u8, 1, 2] {
            let mut run = |name: &str, f: fn(u64, u8, &Waker) -> Duration| {
                group.bench_function(format!("{name}, {pends} pends, {threads} threads"), |b| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let tasks: Vec<_> = (0..threads)
                                .map(|_| {
                                    tokio::spawn(async move {
                                        let waker =
                                            poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
                                        f(iters, pends, &waker)
                                    })
                                })
                                .collect();
                            let mut most = Duration::ZERO;
                            for t in tasks {
                                most = most.max(t.await.expect("bench task"));
                            }
                            most
                        })
                    });
                });
            };
            run("fast", |iters, pends, waker| {
                one_at_a_time(iters, pends, waker, &fast)
            });
            run("tokio", |iters, pends, waker| {
                one_at_a_time(iters, pends, waker, &tokio)
            });
        }
    }
    group.finish();
}

fn concurrent_timeouts(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds");
    let mut group = c.benchmark_group("1M concurrent timeouts");
    group.sample_size(10);
    bench(&mut group, &rt, "fast::timeout", || {
        pingora_timeout::fast::timeout(DEADLINE, PendOnce::default())
    });
    bench(&mut group, &rt, "tokio::time::timeout", || {
        tokio::time::timeout(DEADLINE, PendOnce::default())
    });
    bench(&mut group, &rt, "no timer (harness cost)", || async {
        PendOnce::default().await;
        Ok::<(), ()>(())
    });
    group.finish();
}

criterion_group!(benches, arm_and_complete_one, concurrent_timeouts);
criterion_main!(benches);
