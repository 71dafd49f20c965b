//! How long a blocked `Lock::lock()` takes to learn that the holder was killed.
//!
//! Each round: a forked child takes the lock and parks; a thread of ours blocks
//! in `lock()`; once the kernel shows that thread asleep, we SIGKILL the child and
//! time from just before `kill()` until the waiter returns `OwnerDied`.
//!
//! ```text
//! cargo run --release --example owner_death [rounds]
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement program: a panic is the report"
)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use multiproc::{Event, Lock, LockError, process};

fn tid_asleep(tid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("S")
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let mut micros = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let lock = Lock::anonymous().unwrap();
        let held = Event::anonymous().unwrap();
        let never = Event::anonymous().unwrap();
        // SAFETY: the child only runs crate code and `_exit`s (process::fork).
        let child = unsafe {
            process::fork_unchecked(|| {
                std::mem::forget(lock.lock().ok());
                held.set();
                never.wait();
                0
            })
        }
        .unwrap();
        assert!(
            held.wait_timeout(Duration::from_secs(10)),
            "child never locked"
        );
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                // SAFETY: gettid has no preconditions.
                tx.send(unsafe { libc::gettid() }).unwrap();
                let r = lock.lock();
                let t = Instant::now();
                match r {
                    Err(LockError::OwnerDied(mut g)) => g.mark_consistent(),
                    other => panic!("expected OwnerDied, got {other:?}"),
                }
                t
            });
            let tid = rx.recv().unwrap();
            while !tid_asleep(tid) {
                std::thread::yield_now();
            }
            let t0 = Instant::now();
            child.kill().unwrap();
            let t1 = waiter.join().unwrap();
            micros.push(t1.duration_since(t0).as_secs_f64() * 1e6);
        });
        let _ = child.wait();
    }
    micros.sort_by(f64::total_cmp);
    let q = |p: f64| micros[((micros.len() - 1) as f64 * p).round() as usize];
    println!(
        "owner death -> blocked lock() returns OwnerDied, {rounds} rounds: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}
