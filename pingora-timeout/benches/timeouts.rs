//! The fast coarse timer against tokio's, in two groups.
//!
//! `arm and complete` makes one timeout at a time in a tokio task, with the
//! task's own waker, and polls it until its future is ready: at once (`0
//! pends`: no timer is armed), or after one or two `Pending`s (the timer is
//! armed, then released). With `2 threads`, two tasks on a two-worker
//! runtime do the same at once; the time is per timeout on each thread.
//!
//! Measured on the 2-core development machine while another benchmark ran,
//! before and after the lock-free re-poll (two runs each, middle estimate,
//! fast / tokio and the ratio, same run):
//!
//! | case | before, run 1 | before, run 2 | after, run 1 | after, run 2 |
//! | --- | --- | --- | --- | --- |
//! | 0 pends, 1 thread | 6.4 / 56 ns (8.6x) | 3.7 / 32 ns (8.7x) | 3.7 / 56 ns (15x) | 2.2 / 33 ns (15x) |
//! | 1 pend, 1 thread | 83 / 214 ns (2.6x) | 32 / 89 ns (2.7x) | 45 / 134 ns (3.0x) | 43 / 125 ns (2.9x) |
//! | 2 pends, 1 thread | 116 / 270 ns (2.3x) | 36 / 99 ns (2.7x) | 43 / 151 ns (3.5x) | 42 / 130 ns (3.1x) |
//! | 0 pends, 2 threads | 10 / 117 ns (11x) | 3.8 / 56 ns (15x) | 4.9 / 104 ns (21x) | 3.2 / 53 ns (17x) |
//! | 1 pend, 2 threads | 67 / 1106 ns (17x) | 49 / 527 ns (11x) | 65 / 413 ns (6.4x) | 30 / 673 ns (22x) |
//! | 2 pends, 2 threads | 71 / 852 ns (12x) | 44 / 668 ns (15x) | 34 / 657 ns (19x) | 41 / 397 ns (9.8x) |
//!
//! The first "before" run shared the machine with a build too. The change
//! touched only the 2-pends rows (the 0-pends path arms nothing in either
//! version: those rows show the noise). On one
//! thread an armed fast timer costs two uncontended lock cycles of its
//! shard (arm, release) plus the waker's clone and drop, about a third of
//! tokio's; on two threads tokio's timers meet on one driver lock and the
//! fast ones do not, and the gap passes ten times.
//!
//! `1M concurrent timeouts` arms a million at once (same runs: fast 36, 38
//! and 62 ms against tokio's 96, 95 and 105 ms; harness alone 5 ms). Each
//! timeout guards a future that is pending on its first poll and ready
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
