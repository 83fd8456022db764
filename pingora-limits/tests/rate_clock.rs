//! `Rate` on the real clock, with short intervals (each test well under a
//! second).

#![allow(clippy::unwrap_used)]

use pingora_limits::inflight::Inflight;
use pingora_limits::rate::Rate;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn counts_move_to_the_previous_interval_then_fade() {
    let interval = Duration::from_millis(200);
    let rate = Rate::new(interval);
    // Count 20 events within one interval; on a loaded machine the sleep
    // may overshoot past it, so try again (a few times at most).
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 5, "never fit 20 events in one interval");
        std::thread::sleep(rate.time_left());
        let (started, left) = (Instant::now(), rate.time_left());
        let key = format!("k{attempts}");
        for _ in 0..20 {
            rate.observe(&key, 1);
        }
        let estimate = rate.estimate(&key);
        if started.elapsed() >= left {
            continue;
        }
        assert_eq!(estimate, 20.0);
        // 20 events in 0.2 s: 100 per second.
        assert!((rate.rate(&key) - 100.0).abs() < 1e-9);
        // Into the next interval: the 20 fade as it goes.
        std::thread::sleep(rate.time_left() + interval / 2);
        let faded = rate.estimate(&key);
        assert!(faded > 0.0 && faded < 20.0, "{faded}");
        // Two intervals on, nothing is left.
        std::thread::sleep(interval * 2);
        assert_eq!(rate.estimate(&key), 0.0);
        assert_eq!(rate.observe(&key, 1), 1);
        break;
    }
}

#[test]
fn two_threads_observing_lose_no_event() {
    let rate = Arc::new(Rate::new(Duration::from_secs(60)));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let rate = rate.clone();
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    rate.observe("shared", 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Within the first minute: all in the current interval.
    assert_eq!(rate.estimate("shared"), 10_000.0);
}

#[test]
fn inflight_holds_concurrent_requests() {
    let inflight = Inflight::new();
    let started = Instant::now();
    let guards: Vec<_> = (0..8).map(|_| inflight.incr("upstream", 1).0).collect();
    assert_eq!(inflight.get("upstream"), 8);
    let threads: Vec<_> = guards
        .into_iter()
        .map(|guard| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                drop(guard);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(inflight.get("upstream"), 0);
    assert!(started.elapsed() < Duration::from_secs(5));
}
