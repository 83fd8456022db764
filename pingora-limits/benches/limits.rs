//! `Rate::observe` and `Estimator::incr`, on one thread and under
//! contention from two.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use pingora_limits::estimator::Estimator;
use pingora_limits::rate::Rate;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Run `op` on a second thread, hammering the same keys, while `body`
/// measures on this one.
fn contended<T: Send + Sync + 'static>(shared: &Arc<T>, op: fn(&T, u64), body: impl FnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (shared, stop) = (Arc::clone(shared), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                op(&shared, i % 64);
                i += 1;
            }
        })
    };
    body();
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
}

fn estimator(c: &mut Criterion) {
    let estimator = Arc::new(Estimator::new(4, 1024));
    let mut i = 0u64;
    c.bench_function("estimator incr, 1 thread", |b| {
        b.iter(|| {
            i += 1;
            black_box(estimator.incr(black_box(i % 64), 1))
        })
    });
    let incr = |e: &Estimator, key: u64| {
        black_box(e.incr(key, 1));
    };
    contended(&estimator, incr, || {
        c.bench_function("estimator incr, 2 threads", |b| {
            b.iter(|| {
                i += 1;
                black_box(estimator.incr(black_box(i % 64), 1))
            })
        });
    });
}

fn rate(c: &mut Criterion) {
    let rate = Arc::new(Rate::new(Duration::from_secs(1)));
    let mut i = 0u64;
    c.bench_function("rate observe, 1 thread", |b| {
        b.iter(|| {
            i += 1;
            black_box(rate.observe(black_box(i % 64), 1))
        })
    });
    let observe = |r: &Rate, key: u64| {
        black_box(r.observe(key, 1));
    };
    contended(&rate, observe, || {
        c.bench_function("rate observe, 2 threads", |b| {
            b.iter(|| {
                i += 1;
                black_box(rate.observe(black_box(i % 64), 1))
            })
        });
    });
}

criterion_group!(benches, estimator, rate);
criterion_main!(benches);
