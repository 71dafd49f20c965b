//! One pool shared by several threads (`Arc<Pool>`), as Python's `Pool`
//! allows: every thread gets exactly its own results, nothing is lost or
//! mixed up, and no thread is left waiting while the workers sit idle.
//!
//! Every test runs under the watchdog; nothing depends on timing. A lost
//! result or a driver that can no longer receive shows as the watchdog
//! firing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::sync::Arc;

use common::watchdog;
use multiproc::pool::{Pool, PoolError};

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

fn inc(x: u64) -> u64 {
    x + 1
}

fn forked(n: usize) -> Pool {
    // SAFETY: the test harness runs other threads; the tasks below only do
    // arithmetic, and no test in this binary panics in the parent, so no
    // worker can inherit a lock held across the fork that it then needs.
    unsafe { Pool::builder().processes(n).fork_unchecked() }
        .build()
        .expect("pool")
}

fn spawned(n: usize) -> Pool {
    Pool::builder().processes(n).spawn().build().expect("pool")
}

/// `threads` threads each run `rounds` rounds of `map` (a range, fed while
/// driving), `map` over a collected iterator, `imap`, `apply` and
/// `apply_async` on one pool, each over arguments of its own, and check every
/// result.
fn hammer(pool: Pool, threads: u64, rounds: u64) {
    let pool = Arc::new(pool);
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            let p = Arc::clone(&pool);
            std::thread::spawn(move || {
                for round in 0..rounds {
                    let base = (k * rounds + round) * 1000;
                    let n = 200 + 37 * (round % 3);
                    let want: Vec<u64> = (base..base + n).map(square).collect();
                    assert_eq!(p.map(square, base..base + n).unwrap(), want);
                    let odd = (base..base + n).filter(|x| x % 2 == 1);
                    assert_eq!(
                        p.map_chunked(inc, odd.clone(), 3).unwrap(),
                        odd.clone().map(inc).collect::<Vec<_>>()
                    );
                    let got: Result<Vec<u64>, PoolError> = p
                        .imap_chunked(square, base..base + 50, 7)
                        .unwrap()
                        .collect();
                    assert_eq!(got.unwrap(), want[..50]);
                    assert_eq!(p.apply(inc, base).unwrap(), base + 1);
                    let r = p.apply_async(square, base + 3).unwrap();
                    assert_eq!(r.get().unwrap(), square(base + 3));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(pool.map(square, 0..10u64).unwrap()[9], 81);
    pool.close();
    pool.join().unwrap();
}

#[test]
fn threads_share_a_forked_pool() {
    watchdog(|| hammer(forked(2), 4, 12));
}

#[test]
fn threads_share_a_spawned_pool() {
    watchdog(|| hammer(spawned(2), 3, 8));
}

/// The tester's repro, small: two threads, map after map over the same range.
#[test]
fn two_threads_map_after_map() {
    watchdog(|| {
        let pool = Arc::new(forked(2));
        let want: Vec<u64> = (0..1000u64).map(square).collect();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (p, want) = (Arc::clone(&pool), want.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        assert_eq!(p.map(square, 0..1000u64).unwrap(), want);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}

/// A thread whose argument iterator waits on another thread's use of the
/// pool: the iterator runs with no pool lock held, so the other thread
/// proceeds.
#[test]
fn argument_iterator_waits_for_another_thread() {
    watchdog(|| {
        let pool = Arc::new(forked(2));
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let p = Arc::clone(&pool);
        let other = std::thread::spawn(move || {
            for x in 0..8u64 {
                tx.send(p.apply(inc, x).unwrap()).unwrap();
            }
        });
        let it = (0..8u64).map(|_| rx.recv().unwrap());
        assert_eq!(
            pool.map_chunked(square, it, 1).unwrap(),
            (1..9u64).map(square).collect::<Vec<_>>()
        );
        other.join().unwrap();
    });
}

/// A fork-method pool shared by threads must replace workers (here every
/// third task, `max_tasks_per_child(3)`) while other threads run, where it
/// cannot fork safely: it starts the replacements with the spawn method and
/// goes on. Before, every replacement was refused ("refusing to fork: the
/// process runs N threads"), and once the last worker was gone the pool was
/// broken for good. Runs in a forked child, so the pool is built
/// single-threaded, with the default (checked) fork method.
#[test]
fn a_fork_pool_replaces_workers_while_threads_share_it() {
    watchdog(|| {
        let child = common::spawn(|| {
            let Ok(pool) = Pool::builder().processes(2).max_tasks_per_child(3).build() else {
                return 1;
            };
            let pool = Arc::new(pool);
            let hs: Vec<_> = (0..3u64)
                .map(|k| {
                    let p = Arc::clone(&pool);
                    std::thread::spawn(move || {
                        (0..4u64).all(|round| {
                            let base = (k * 4 + round) * 100;
                            let want: Vec<u64> = (base..base + 20).map(square).collect();
                            p.map_chunked(square, base..base + 20, 2).ok() == Some(want)
                        })
                    })
                })
                .collect();
            let ok = hs.into_iter().all(|h| h.join().unwrap_or(false));
            if ok { 0 } else { 2 }
        });
        assert_eq!(common::join(child), multiproc::process::ExitStatus::Code(0));
    });
}

/// Workers that end after `max_tasks_per_child` chunks while several threads
/// drive the pool: every result is exact. Before, a thread could take a
/// result message and let go of the pool's lock before applying it; another
/// thread then reaped the worker that sent it, found no message, and ran the
/// chunk again on arguments the first run had overwritten with its results
/// (`f(f(x))` for a chunk, in about one run in two).
#[test]
fn results_stay_exact_while_workers_retire_under_several_drivers() {
    watchdog(|| {
        let pool = Arc::new({
            // SAFETY: as in `forked`.
            unsafe {
                Pool::builder()
                    .processes(2)
                    .max_tasks_per_child(3)
                    .fork_unchecked()
            }
            .build()
            .expect("pool")
        });
        let hs: Vec<_> = (0..3u64)
            .map(|k| {
                let p = Arc::clone(&pool);
                std::thread::spawn(move || {
                    for round in 0..30u64 {
                        let base = (k * 30 + round) * 100;
                        let want: Vec<u64> = (base..base + 20).map(square).collect();
                        assert_eq!(p.map_chunked(square, base..base + 20, 2).unwrap(), want);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}
