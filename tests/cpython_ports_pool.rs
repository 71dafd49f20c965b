//! Ports of CPython's `_test_multiprocessing.py` pool tests (`_TestPool`,
//! `_TestPoolWorkerErrors`, `_TestPoolWorkerLifetime`) to this crate's
//! [`Pool`], with real forked workers. Every test runs under a watchdog; a
//! task that must still run when the test looks blocks on an `Event` the test
//! sets later; no timing assertions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report; process-local std atomics count callbacks"
)]

mod common;

use common::watchdog;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use multiproc::Event;
use multiproc::pool::{Pool, PoolError};

const SHORT: Duration = Duration::from_millis(20);

fn pool(n: usize) -> Pool {
    builder(n).build().expect("pool")
}

fn builder(n: usize) -> multiproc::pool::PoolBuilder {
    // SAFETY: the test harness runs other threads; the tasks below do
    // arithmetic, panic (std's panic machinery only), block on this crate's
    // Event, or end their own process; none takes a lock another thread of
    // this test process may hold while it forks.
    unsafe { Pool::builder().processes(n).fork_unchecked() }
}

fn sqr(x: u64) -> u64 {
    x * x
}

fn mul(a: u64, b: u64) -> u64 {
    a * b
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

fn raise_on_5(x: u64) -> u64 {
    if x == 5 {
        panic!("task {x} fails");
    }
    x * x
}

fn kill_self_on_3(x: u64) -> u64 {
    if x == 3 {
        // SAFETY: sends SIGKILL to this worker process; nothing to uphold.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    x + 1000
}

static GATE: OnceLock<Event> = OnceLock::new();

/// Blocks until the test opens the gate (the Event is created before the pool forks).
fn gated(x: u64) -> u64 {
    GATE.get().unwrap().wait();
    x + 100
}

fn gate() -> &'static Event {
    GATE.get_or_init(|| Event::anonymous().unwrap())
}

// _TestPool.test_apply: apply returns the function's value.
#[test]
fn pool_apply() {
    watchdog(|| {
        let p = pool(2);
        assert_eq!(p.apply(sqr, 5), Ok(25));
        assert_eq!(p.starmap(mul, [(3, 4)]), Ok(vec![12]));
    });
}

// _TestPool.test_map: results in argument order, default and explicit chunk sizes.
#[test]
fn pool_map_order_and_chunksize() {
    watchdog(|| {
        let p = pool(3);
        let want: Vec<u64> = (0..10).map(sqr).collect();
        assert_eq!(p.map(sqr, 0..10u64), Ok(want));
        let want: Vec<u64> = (0..100).map(sqr).collect();
        assert_eq!(p.map_chunked(sqr, 0..100u64, 20), Ok(want.clone()));
        assert_eq!(p.map_chunked(sqr, 0..100u64, 1), Ok(want.clone()));
        assert_eq!(p.map_chunked(sqr, 0..100u64, 1000), Ok(want.clone()));
        // An iterator without an exact length.
        assert_eq!(
            p.map(sqr, (0..200u64).filter(|x| x % 2 == 0)),
            Ok((0..200).filter(|x| x % 2 == 0).map(sqr).collect())
        );
    });
}

// _TestPool.test_starmap: pairs, in order, with and without chunk size.
#[test]
fn pool_starmap() {
    watchdog(|| {
        let p = pool(2);
        let pairs: Vec<(u64, u64)> = (0..10).map(|i| (i, i + 1)).collect();
        let want: Vec<u64> = pairs.iter().map(|&(a, b)| mul(a, b)).collect();
        assert_eq!(p.starmap(mul, pairs.clone()), Ok(want.clone()));
        assert_eq!(p.starmap_chunked(mul, pairs, 3), Ok(want));
    });
}

// _TestPool.test_map_async: map_async(...).get() is map's result.
#[test]
fn pool_map_async() {
    watchdog(|| {
        let p = pool(2);
        let r = p.map_async(sqr, 0..10u64).unwrap();
        assert_eq!(r.get(), Ok((0..10).map(sqr).collect()));
        assert!(r.ready());
        assert_eq!(r.successful(), Some(true));
    });
}

// _TestPool.test_map_chunksize / test_empty_iterable: empty input gives empty output everywhere.
#[test]
fn pool_empty_iterable() {
    watchdog(|| {
        let p = pool(2);
        let none: [u64; 0] = [];
        assert_eq!(p.map(sqr, none), Ok(vec![]));
        assert_eq!(p.map_chunked(sqr, none, 1), Ok(vec![]));
        assert_eq!(p.starmap(mul, Vec::<(u64, u64)>::new()), Ok(vec![]));
        assert_eq!(p.imap(sqr, none).unwrap().count(), 0);
        assert_eq!(p.imap_unordered(sqr, none).unwrap().count(), 0);
        assert_eq!(p.map_async(sqr, none).unwrap().get(), Ok(vec![]));
    });
}

// _TestPool.test_async / test_async_timeout: get(timeout) raises TimeoutError, the task goes on.
#[test]
fn pool_async_and_timeout() {
    watchdog(|| {
        let gate = gate();
        let p = pool(1);
        let quick = p.apply_async(sqr, 7).unwrap();
        assert_eq!(quick.get(), Ok(49));
        let slow = p.apply_async(gated, 1).unwrap();
        assert_eq!(slow.get_timeout(SHORT), Err(PoolError::Timeout));
        assert!(!slow.ready());
        // Python: successful() before ready raises ValueError; here None.
        assert_eq!(slow.successful(), None);
        assert!(!slow.wait_timeout(SHORT));
        gate.set();
        assert_eq!(slow.get(), Ok(101));
        assert!(slow.ready());
        assert_eq!(slow.successful(), Some(true));
        // get again: the same value.
        assert_eq!(slow.get(), Ok(101));
    });
}

// _TestPool.test_async_timeout with a huge timeout (threading.TIMEOUT_MAX-like):
// returns the result; it panicked on `Instant + Duration` overflow before the fix.
#[test]
fn pool_huge_timeouts() {
    watchdog(|| {
        let p = pool(1);
        let r = p.apply_async(sqr, 3).unwrap();
        assert_eq!(r.get_timeout(Duration::MAX), Ok(9));
        assert!(r.wait_timeout(Duration::MAX));
        let r = p.map_async(sqr, 0..3u64).unwrap();
        assert!(r.wait_timeout(Duration::MAX));
        assert_eq!(r.get_timeout(Duration::MAX), Ok(vec![0, 1, 4]));
    });
}

// _TestPool.test_imap: ordered results, StopIteration at the end, big chunks.
#[test]
fn pool_imap() {
    watchdog(|| {
        let p = pool(3);
        let mut it = p.imap(sqr, 0..10u64).unwrap();
        assert_eq!(it.len(), 10);
        for i in 0..10 {
            assert_eq!(it.next(), Some(Ok(sqr(i))));
        }
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        let got: Result<Vec<u64>, _> = p.imap_chunked(sqr, 0..1000u64, 100).unwrap().collect();
        assert_eq!(got, Ok((0..1000).map(sqr).collect()));
    });
}

// _TestPool.test_imap_unordered: every result once, in any order.
#[test]
fn pool_imap_unordered() {
    watchdog(|| {
        let p = pool(3);
        let mut got: Vec<u64> = p
            .imap_unordered(sqr, 0..100u64)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).map(sqr).collect::<Vec<_>>());
        let mut got: Vec<u64> = p
            .imap_unordered_chunked(sqr, 0..1000u64, 53)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..1000).map(sqr).collect::<Vec<_>>());
    });
}

// _TestPool.test_make_pool: the pool has the requested number of workers.
#[test]
fn pool_make_pool() {
    watchdog(|| {
        let p = pool(3);
        assert_eq!(p.processes(), 3);
        assert_eq!(p.pids().len(), 3);
        let pids: HashSet<u32> = p
            .map_chunked(pid, 0..300u32, 1)
            .unwrap()
            .into_iter()
            .collect();
        assert!(!pids.is_empty() && pids.len() <= 3);
        assert!(pids.iter().all(|w| p.pids().contains(w)));
        assert!(!pids.contains(&std::process::id()));
    });
}

// _TestPool.test_terminate: terminate with tasks running; their results are errors.
#[test]
fn pool_terminate_running_tasks() {
    watchdog(|| {
        let _ = gate();
        // Another test may have opened the gate already: use a private one.
        static PRIVATE: OnceLock<Event> = OnceLock::new();
        fn blocked(x: u64) -> u64 {
            PRIVATE.get().unwrap().wait();
            x
        }
        PRIVATE.get_or_init(|| Event::anonymous().unwrap());
        let p = pool(2);
        let r = p.map_async(blocked, 0..10u64).unwrap();
        let a = p.apply_async(blocked, 1).unwrap();
        assert_eq!(a.get_timeout(SHORT), Err(PoolError::Timeout));
        p.terminate();
        assert_eq!(r.get(), Err(PoolError::Terminated));
        assert_eq!(a.get(), Err(PoolError::Terminated));
        assert!(p.pids().is_empty());
        // After terminate: no new work, and terminate again is harmless.
        assert!(p.apply(sqr, 1).is_err());
        p.terminate();
    });
}

// _TestPool.test_traceback / test_map_no_failfast: a failing task fails only itself.
#[test]
fn pool_task_panic_fails_only_its_task() {
    watchdog(|| {
        let p = pool(2);
        match p.apply(raise_on_5, 5) {
            Err(PoolError::Panicked(msg)) => assert!(msg.contains("task 5 fails"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // map: the failed task is the error.
        assert!(matches!(
            p.map_chunked(raise_on_5, 0..10u64, 1),
            Err(PoolError::Panicked(_))
        ));
        // imap: each task's own outcome.
        let got: Vec<_> = p.imap_chunked(raise_on_5, 0..10u64, 3).unwrap().collect();
        for (i, r) in got.into_iter().enumerate() {
            if i == 5 {
                assert!(matches!(r, Err(PoolError::Panicked(_))));
            } else {
                assert_eq!(r, Ok(sqr(i as u64)));
            }
        }
        // The pool still works and kept its size.
        assert_eq!(p.apply(sqr, 3), Ok(9));
        assert_eq!(p.pids().len(), 2);
    });
}

// _TestPool.test_enter / using a pool after close raises ValueError.
#[test]
fn pool_use_after_close_is_refused() {
    watchdog(|| {
        let p = pool(2);
        let before = p.apply_async(sqr, 4).unwrap();
        // Python: join before close raises ValueError.
        assert_eq!(p.join(), Err(PoolError::NotClosed));
        p.close();
        assert_eq!(p.apply(sqr, 2), Err(PoolError::Closed));
        assert!(matches!(p.apply_async(sqr, 2), Err(PoolError::Closed)));
        assert_eq!(p.map(sqr, 0..3u64), Err(PoolError::Closed));
        assert!(matches!(p.map_async(sqr, 0..3u64), Err(PoolError::Closed)));
        assert!(matches!(p.imap(sqr, 0..3u64), Err(PoolError::Closed)));
        assert!(matches!(
            p.imap_unordered(sqr, 0..3u64),
            Err(PoolError::Closed)
        ));
        assert_eq!(p.starmap(mul, [(1, 2)]), Err(PoolError::Closed));
        // Close again is harmless; join waits for the task submitted before.
        p.close();
        assert_eq!(p.join(), Ok(()));
        assert!(before.ready());
        assert_eq!(before.get(), Ok(16));
        assert!(p.pids().is_empty());
        // join again, and terminate after join, are harmless (Python allows both).
        assert_eq!(p.join(), Ok(()));
        p.terminate();
    });
}

// _TestPool.test_terminate then join: Python's join after terminate returns.
#[test]
fn pool_join_after_terminate() {
    watchdog(|| {
        let p = pool(2);
        p.terminate();
        assert_eq!(p.join(), Ok(()));
        assert!(p.pids().is_empty());
    });
}

// _TestPool.test_context: leaving the scope (drop) terminates the workers.
#[test]
fn pool_drop_terminates() {
    watchdog(|| {
        let p = pool(2);
        let pids = p.pids();
        assert_eq!(p.apply(sqr, 2), Ok(4));
        drop(p);
        for w in pids {
            // Reaped: not our child any more (kill(pid, 0) fails or it is another process).
            let mut status = 0;
            // SAFETY: a non-blocking waitpid on a pid we forked; no memory is shared.
            let r = unsafe { libc::waitpid(w as i32, &mut status, libc::WNOHANG) };
            assert_eq!(r, -1, "worker {w} was not reaped");
        }
    });
}

// _TestPool.test_map_async_callbacks / _TestPoolWorkerErrors.test_async_error_callback.
#[test]
fn pool_callbacks_run_once() {
    watchdog(|| {
        let p = pool(2);
        let ok = Arc::new(Mutex::new(Vec::new()));
        let errs = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..10u64)
            .map(|x| {
                let (ok, errs) = (Arc::clone(&ok), Arc::clone(&errs));
                p.apply_async_with(
                    raise_on_5,
                    x,
                    move |v| ok.lock().unwrap().push(v),
                    move |e| errs.lock().unwrap().push(e),
                )
                .unwrap()
            })
            .collect();
        for (x, h) in handles.iter().enumerate() {
            h.wait();
            assert_eq!(h.successful(), Some(x != 5));
        }
        let mut got = ok.lock().unwrap().clone();
        got.sort_unstable();
        let want: Vec<u64> = (0..10).filter(|&x| x != 5).map(sqr).collect();
        assert_eq!(got, want);
        let errs = errs.lock().unwrap();
        assert_eq!(errs.len(), 1);
        assert!(matches!(&errs[0], PoolError::Panicked(m) if m.contains("task 5")));
        assert!(matches!(handles[5].get(), Err(PoolError::Panicked(_))));
    });
}

// _TestPoolWorkerLifetime.test_pool_worker_lifetime: maxtasksperchild replaces workers.
#[test]
fn pool_worker_lifetime() {
    watchdog(|| {
        let p = builder(2).max_tasks_per_child(5).build().unwrap();
        let first: HashSet<u32> = p.pids().into_iter().collect();
        let seen: HashSet<u32> = p
            .map_chunked(pid, 0..100u32, 1)
            .unwrap()
            .into_iter()
            .collect();
        // 100 tasks, at most 5 each: at least 20 different workers ran them.
        assert!(seen.len() >= 20, "only {} workers", seen.len());
        assert_eq!(p.pids().len(), 2, "the pool keeps its size");
        assert!(!p.pids().iter().all(|w| first.contains(w)));
    });
}

// _TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close.
#[test]
fn pool_worker_lifetime_early_close() {
    watchdog(|| {
        let p = builder(1).max_tasks_per_child(1).build().unwrap();
        let rs: Vec<_> = (0..6u64).map(|x| p.apply_async(sqr, x).unwrap()).collect();
        p.close();
        p.join().unwrap();
        for (x, r) in rs.iter().enumerate() {
            assert_eq!(r.get(), Ok(sqr(x as u64)));
        }
    });
}

// A worker killed mid-task (Python hangs; documented: that task gets WorkerDied, the rest run).
#[test]
fn pool_worker_killed_mid_task() {
    watchdog(|| {
        let p = pool(2);
        let got: Vec<_> = p
            .imap_chunked(kill_self_on_3, 0..10u64, 2)
            .unwrap()
            .collect();
        for (i, r) in got.into_iter().enumerate() {
            if i == 3 {
                assert!(
                    matches!(
                        r,
                        Err(PoolError::WorkerDied {
                            signal: Some(9),
                            ..
                        })
                    ),
                    "{r:?}"
                );
            } else {
                assert_eq!(r, Ok(i as u64 + 1000));
            }
        }
        assert_eq!(p.pids().len(), 2, "replaced");
        assert_eq!(p.apply(sqr, 6), Ok(36));
        let calls = AtomicUsize::new(0);
        let r = p.apply_async_with(
            kill_self_on_3,
            3,
            |_| panic!("must fail"),
            move |e| {
                assert!(matches!(e, PoolError::WorkerDied { .. }));
                calls.fetch_add(1, Ordering::SeqCst);
            },
        );
        assert!(matches!(
            r.unwrap().get(),
            Err(PoolError::WorkerDied { .. })
        ));
    });
}
