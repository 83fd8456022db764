//! Nanoseconds per `LoadBalancer::select` for each algorithm, at 10 and
//! 1,000 backends (all healthy, so one candidate per call).
//!
//! Run: `cargo bench -p pingora-load-balancing --bench select`.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pingora_load_balancing::LoadBalancer;
use pingora_load_balancing::selection::{
    BackendSelection, Consistent, FNVHash, LeastConnection, PowerOfTwo, Random, RoundRobin,
};
use std::hint::black_box;

fn addrs(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}:80", i >> 16, (i >> 8) & 0xff, i & 0xff))
        .collect()
}

fn bench_one<S: BackendSelection>(c: &mut Criterion, name: &str) {
    let mut group = c.benchmark_group(name);
    for n in [10, 1_000] {
        let lb = LoadBalancer::<S>::try_from_iter(addrs(n)).unwrap();
        let mut i = 0u64;
        let mut key = *b"user-00000000";
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                // A different key each time, as a proxy would see.
                i = i.wrapping_add(1);
                key[5..13].copy_from_slice(&i.to_le_bytes());
                black_box(lb.select(black_box(&key), 16))
            })
        });
    }
    group.finish();
}

fn select(c: &mut Criterion) {
    bench_one::<RoundRobin>(c, "select/round_robin");
    bench_one::<Random>(c, "select/random");
    bench_one::<FNVHash>(c, "select/fnv_hash");
    bench_one::<Consistent>(c, "select/consistent");
    bench_one::<PowerOfTwo>(c, "select/power_of_two");
    bench_one::<LeastConnection>(c, "select/least_connection");
}

criterion_group!(benches, select);
criterion_main!(benches);
