//! A storm of SIGKILLs on lock holders and waiters (holds of 0-3 us): the lock
//! stays mutually exclusive, every death is handed over, and nobody sleeps on a
//! free lock (the glibc mutex did: a waiter parked forever on a word of 0).
//!
//! `cargo test` runs a few hundred kills per test; set `MULTIPROC_STORM_KILLS`
//! for a longer run (the issue asks for thousands, ten times).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, spawn};
use multiproc::process::Child;
use multiproc::{Lock, LockError, Manager, SharedDict};

const WORKERS: usize = 4;

fn kills() -> usize {
    std::env::var("MULTIPROC_STORM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// xorshift; seeded per child.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Spins for 0-3 us.
fn hold(rng: &mut u64) {
    let until = Instant::now() + Duration::from_nanos(next(rng) % 3000);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Scratch layout: word 0 = "inside" flag, 1 = exclusion violations,
/// 2 = deaths handed over, 8 + i = iterations of worker slot i.
const INSIDE: usize = 0;
const VIOLATIONS: usize = 1;
const HANDED_OVER: usize = 2;
const PROGRESS: usize = 8;

/// Runs a storm: `WORKERS` children run `body(slot, rng)` in a loop; the parent
/// kills random ones at random moments and replaces them. Afterwards every
/// worker must keep making progress (no one stuck on a free lock) and the
/// parent must get the lock within a bounded time.
fn storm(scratch: &Scratch, body: impl Fn(usize, &mut u64) + Copy) {
    let start_child = |slot: usize, seed: u64| -> Child {
        spawn(move || {
            // Die with the test process, even if it is killed itself.
            // SAFETY: prctl(PR_SET_PDEATHSIG) only sets this process's own flag.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let mut rng = seed | 1;
            loop {
                body(slot, &mut rng);
                scratch
                    .atomic(PROGRESS + slot)
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut children: Vec<Child> = (0..WORKERS)
        .map(|i| start_child(i, next(&mut rng)))
        .collect();
    let n = kills();
    for _ in 0..n {
        let victim = (next(&mut rng) as usize) % WORKERS;
        // A random moment: 0-300 us from now (timing only picks *when* to kill;
        // nothing is synchronized by it).
        let until = Instant::now() + Duration::from_micros(next(&mut rng) % 300);
        while Instant::now() < until {
            std::thread::yield_now();
        }
        let replacement = start_child(victim, next(&mut rng));
        common::kill(std::mem::replace(&mut children[victim], replacement));
    }
    // Progress: every worker completes 50 more rounds under the watchdog. A waiter
    // parked forever on a free lock would stop its counter.
    let base: Vec<u64> = (0..WORKERS).map(|i| scratch.read(PROGRESS + i)).collect();
    let deadline = Instant::now() + common::WATCHDOG;
    for (i, b) in base.iter().enumerate() {
        while scratch.read(PROGRESS + i) < b + 50 {
            assert!(
                Instant::now() < deadline,
                "watchdog: worker {i} made no progress after the storm ({} kills)",
                n
            );
            std::thread::yield_now();
        }
    }
    for c in children {
        common::kill(c);
    }
    assert_eq!(scratch.read(VIOLATIONS), 0, "mutual exclusion violated");
}

#[test]
fn lock_survives_a_kill_storm() {
    let scratch = Scratch::new(64);
    let lock = Lock::anonymous().unwrap();
    storm(&scratch, |_, rng| {
        let mut g = match lock.lock() {
            Ok(g) => g,
            Err(LockError::OwnerDied(g)) => {
                // The dead holder may have been inside: repair the flag.
                scratch.write(INSIDE, 0);
                scratch
                    .atomic(HANDED_OVER)
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                g
            }
            Err(_) => {
                scratch
                    .atomic(VIOLATIONS)
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        };
        if scratch.read(INSIDE) != 0 {
            scratch
                .atomic(VIOLATIONS)
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        scratch.write(INSIDE, 1);
        hold(rng);
        scratch.write(INSIDE, 0);
        g.mark_consistent();
        drop(g);
    });
    // The lock is consistent and free (or its holder is dead): we get it quickly.
    match lock.lock_timeout(Duration::from_secs(10)) {
        Ok(_) => {}
        Err(LockError::OwnerDied(mut g)) => g.mark_consistent(),
        Err(e) => panic!("after the storm: {e:?}"),
    }
    assert!(
        scratch.read(HANDED_OVER) > 0 || kills() < 50,
        "no death was ever handed over: the storm never killed a holder"
    );
}

#[test]
fn dict_writers_survive_a_kill_storm() {
    let scratch = Scratch::new(64);
    let dict = SharedDict::<u64, u64>::anonymous(64).unwrap();
    storm(&scratch, |slot, rng| {
        let k = next(rng) % 16;
        match dict.update_or_insert(k, 0, |v| *v += 1) {
            Ok(_) => {}
            Err(e) => {
                // Only "full" is possible with 16 keys in 64 slots: never.
                let _ = e;
                scratch
                    .atomic(VIOLATIONS)
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _ = slot;
    });
    assert!(dict.len() <= 16);
    dict.insert(99, 1)
        .expect("writer lock usable after the storm");
}

#[test]
fn manager_creators_survive_a_kill_storm() {
    let scratch = Scratch::new(64);
    let m = Manager::anonymous(1 << 20).unwrap();
    storm(&scratch, |_, rng| {
        let name = format!("c{}", next(rng) % 32);
        if m.counter(&name, 0).is_err() {
            scratch
                .atomic(VIOLATIONS)
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    m.counter("after", 0)
        .expect("directory lock usable after the storm");
}
