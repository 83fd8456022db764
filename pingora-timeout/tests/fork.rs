//! The fast timers across a `fork`: the child has only the forking thread,
//! so the timers' thread is gone; with [`fast::prepare_fork`] held across
//! the fork, the child's timers start a new one and fire.
#![allow(unsafe_code)] // fork and _exit, each with its SAFETY note

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use pingora_timeout::fast;
use std::time::{Duration, Instant};

/// How long the child's fast sleep may take before it counts as never.
const WATCHDOG: Duration = Duration::from_secs(1);
/// How long the parent waits for the child before killing it.
const CHILD_DEADLINE: Duration = Duration::from_secs(10);

/// The child's whole life: a 20 ms fast sleep under tokio's own timer as a
/// watchdog. Exits 0 when the sleep ends, 1 when the watchdog fires, 2 when
/// no runtime could be built.
fn child_sleeps_then_exits() -> ! {
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => {
            let sleep = fast::sleep(Duration::from_millis(20));
            match rt.block_on(async { tokio::time::timeout(WATCHDOG, sleep).await }) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        }
        Err(_) => 2,
    };
    // SAFETY: `_exit` ends the child at once. Unlike `exit`, it runs no
    // atexit handlers and flushes no stdio buffers copied from the parent
    // (the test harness's), so nothing is done twice.
    unsafe { libc::_exit(code) }
}

/// Fork a child that runs [`child_sleeps_then_exits`], with or without the
/// fork guard, and return its exit code; `None` if it had to be killed.
fn fork_a_sleeper(with_guard: bool) -> Option<i32> {
    let guard = with_guard.then(fast::prepare_fork);
    // SAFETY: the child runs only `child_sleeps_then_exits`, which builds a
    // single-threaded runtime and ends with `_exit`. Allocation is safe
    // after a fork with glibc, and the fast timers' locks are either held
    // across the fork by `guard` or (without it) the case under test.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            if let Some(guard) = guard {
                guard.in_child();
            }
            child_sleeps_then_exits()
        }
        ForkResult::Parent { child } => {
            drop(guard);
            wait_for(child)
        }
    }
}

/// The exit code of `child`, or `None` if it did not exit in time (then it
/// is killed and reaped).
fn wait_for(child: Pid) -> Option<i32> {
    let deadline = Instant::now() + CHILD_DEADLINE;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
            WaitStatus::Exited(_, code) => return Some(code),
            WaitStatus::StillAlive if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            WaitStatus::StillAlive => {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return None;
            }
            other => panic!("child ended unexpectedly: {other:?}"),
        }
    }
}

fn fast_sleep_ends(rt: &tokio::runtime::Runtime) -> bool {
    let sleep = fast::sleep(Duration::from_millis(20));
    rt.block_on(async { tokio::time::timeout(WATCHDOG, sleep).await })
        .is_ok()
}

// One test, so that no other test thread arms timers during the forks.
#[test]
fn a_child_forked_under_the_guard_has_working_timers() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // The parent's timers' thread runs before the fork.
    assert!(fast_sleep_ends(&rt));

    // Without the guard the child believes a timers' thread runs, so its
    // sleep never ends (or, had the thread held a lock at the fork, the
    // child hangs and is killed).
    assert_ne!(fork_a_sleeper(false), Some(0));

    assert_eq!(fork_a_sleeper(true), Some(0));
    // Twice: the guard leaves nothing behind in the parent.
    assert_eq!(fork_a_sleeper(true), Some(0));

    // The parent's timers work as before.
    assert!(fast_sleep_ends(&rt));
}
