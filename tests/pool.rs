//! Pool tests with real worker processes: results against a sequential
//! reference, callbacks exactly once, panics, workers killed mid-task (with and
//! without an outside killer), terminate/drop leaving no child, close/join,
//! initializer and maxtasksperchild.
//!
//! Every test runs under a watchdog; nothing depends on timing: victims are
//! chosen by argument, and a task that must still be running when the test looks
//! blocks on an `Event` the test sets later.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report; a process-local std atomic counts callbacks"
)]

mod common;

use common::WATCHDOG;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, mpsc};
use std::time::Duration;

use multiproc::pool::{Pool, PoolError, as_completed};
use multiproc::{Event, Queue};
use proptest::prelude::*;

/// Held for reading by every test, for writing by a test that panics in this
/// process on purpose. A panic holds std's process-local backtrace lock while
/// the default hook prints; a worker forked at that moment (any test forks
/// replacements at any time) inherits it locked and would hang in the hook of
/// its own first panicking task.
static PARENT_PANICS: RwLock<()> = RwLock::new(());

/// Runs `f` on its own thread; fails the test if it does not finish in time.
fn watchdog(f: impl FnOnce() + Send + 'static) {
    let _forks = PARENT_PANICS.read().unwrap_or_else(|e| e.into_inner());
    common::watchdog(f);
}

/// [`watchdog`] for a test that panics in this process: no other test runs
/// (forks) meanwhile.
fn watchdog_alone(f: impl FnOnce() + Send + 'static) {
    let _alone = PARENT_PANICS.write().unwrap_or_else(|e| e.into_inner());
    common::watchdog(f);
}

fn pool(n: usize) -> Pool {
    builder(n).build().expect("pool")
}

fn builder(n: usize) -> multiproc::pool::PoolBuilder {
    // SAFETY: the test harness runs other threads; the tasks below do
    // arithmetic, panic, block on this crate's Event, or end their own process;
    // none takes a lock another thread may hold (a panicking task takes std's
    // backtrace lock: the test that panics in this process runs alone, see
    // `PARENT_PANICS`).
    unsafe { Pool::builder().processes(n).fork_unchecked() }
}

/// This process's pid.
fn me() -> u32 {
    std::process::id()
}

/// Whether `pid` is a zombie or live child of this process (per `/proc`).
fn is_our_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me())
}

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

fn add(a: u32, b: u64) -> u64 {
    u64::from(a) + b
}

fn my_pid(_: u32) -> u32 {
    std::process::id()
}

/// Panics on odd input. `resume_unwind` unwinds like `panic!` without running
/// the panic hook, whose locks another thread of this harness may hold when a
/// worker is forked; `real_panic_in_its_own_process` checks `panic!` itself.
fn panic_if_odd(x: u32) -> u32 {
    if x % 2 == 1 {
        std::panic::resume_unwind(Box::new(format!("odd input {x}")));
    }
    x / 2
}

fn real_panic(x: u32) -> u32 {
    if x == 3 {
        panic!("boom {x}");
    }
    x
}

/// Role body, run by `real_panic_in_its_own_process` in a re-executed test
/// binary that runs only this test.
#[test]
fn role_real_panic() {
    if std::env::var("MULTIPROC_ROLE").as_deref() != Ok("real_panic") {
        return;
    }
    let p = pool(1);
    let out: Vec<_> = p.imap_chunked(real_panic, 0..6u32, 2).unwrap().collect();
    assert_eq!(out[3], Err(PoolError::Panicked("boom 3".into())));
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, r)| i == 3 || *r == Ok(i as u32))
    );
    println!("<real-panic-ok>");
}

#[test]
fn real_panic_in_its_own_process() {
    watchdog(|| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "role_real_panic",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env("MULTIPROC_ROLE", "real_panic")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("<real-panic-ok>"),
            "{text}"
        );
    });
}

/// Kills its own worker with SIGKILL when `x % 10 == 3`.
fn die_on_3(x: u64) -> u64 {
    if x % 10 == 3 {
        // SAFETY: sending SIGKILL to this worker process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    x + 1
}

fn exit_7(x: u32) -> u32 {
    if x == 5 {
        std::process::exit(7);
    }
    x
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// map / imap / imap_unordered / starmap agree with a sequential reference for
    /// any size and chunk size (0: the default rule).
    #[test]
    fn maps_match_sequential(n in 0usize..400, chunk in 0usize..40) {
        let (tx, rx) = mpsc::channel();
        watchdog(move || {
            let p = pool(2);
            let args: Vec<u64> = (0..n as u64).map(|i| i * 7919 + 3).collect();
            let want: Vec<u64> = args.iter().copied().map(square).collect();
            let got = p.map_chunked(square, args.clone(), chunk).unwrap();
            let ordered: Vec<u64> =
                p.imap_chunked(square, args.clone(), chunk).unwrap().map(Result::unwrap).collect();
            let mut unordered: Vec<u64> = p
                .imap_unordered_chunked(square, args.clone(), chunk)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            unordered.sort_unstable();
            let mut want_sorted = want.clone();
            want_sorted.sort_unstable();
            let pairs: Vec<(u32, u64)> = args.iter().map(|&a| (a as u32, a)).collect();
            let star = p.starmap_chunked(add, pairs.clone(), chunk).unwrap();
            let star_want: Vec<u64> = pairs.iter().map(|&(a, b)| add(a, b)).collect();
            tx.send((got == want, ordered == want, unordered == want_sorted, star == star_want)).unwrap();
        });
        prop_assert_eq!(rx.recv().unwrap(), (true, true, true, true));
    }
}

#[test]
fn map_of_squares_like_the_seed() {
    watchdog(|| {
        let p = pool(2);
        let v = p.map(square, 0..100u64).unwrap();
        assert_eq!(v, (0..100u64).map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(p.apply(square, 12).unwrap(), 144);
        let r = p.map_async(square, 0..10u64).unwrap();
        assert_eq!(r.get().unwrap()[9], 81);
    });
}

#[test]
fn panics_become_values() {
    watchdog(|| {
        let p = pool(2);
        let out: Vec<Result<u32, PoolError>> =
            p.imap_chunked(panic_if_odd, 0..40u32, 3).unwrap().collect();
        for (i, r) in out.iter().enumerate() {
            if i % 2 == 1 {
                assert_eq!(r, &Err(PoolError::Panicked(format!("odd input {i}"))));
            } else {
                assert_eq!(r, &Ok(i as u32 / 2));
            }
        }
        // map reports the first failure in order.
        assert_eq!(
            p.map(panic_if_odd, [0, 2, 5, 7]),
            Err(PoolError::Panicked("odd input 5".into()))
        );
        let r = p.apply_async(panic_if_odd, 3).unwrap();
        r.wait();
        assert_eq!(r.successful(), Some(false));
        // The pool still works.
        assert_eq!(p.map(square, [3u64]).unwrap(), vec![9]);
        assert_eq!(p.pids().len(), 2);
    });
}

#[test]
fn callbacks_run_exactly_once() {
    watchdog(|| {
        let p = pool(2);
        let oks = Arc::new(Mutex::new(HashMap::<u32, usize>::new()));
        let errs = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut handles = Vec::new();
        for x in 0..60u32 {
            let (o, e) = (Arc::clone(&oks), Arc::clone(&errs));
            handles.push(
                p.apply_async_with(
                    panic_if_odd,
                    x,
                    move |v| *o.lock().unwrap().entry(v).or_default() += 1,
                    move |err| e.lock().unwrap().push(err.to_string()),
                )
                .unwrap(),
            );
        }
        p.close();
        p.join().unwrap();
        // join ran every callback: look before touching the handles.
        {
            let oks = oks.lock().unwrap();
            assert_eq!(oks.len(), 30);
            assert!(oks.iter().all(|(&v, &n)| n == 1 && v < 30), "{oks:?}");
            let errs = errs.lock().unwrap();
            assert_eq!(errs.len(), 30);
            assert_eq!(errs.iter().collect::<HashSet<_>>().len(), 30);
        }
        for (x, h) in handles.iter().enumerate() {
            assert_eq!(h.successful(), Some(x % 2 == 0));
        }
        assert!(p.pids().is_empty());
        // Nothing ran twice after all.
        assert_eq!(oks.lock().unwrap().values().sum::<usize>(), 30);
        assert_eq!(errs.lock().unwrap().len(), 30);
    });
}

#[test]
fn error_callback_on_terminate() {
    watchdog(|| {
        static GATE: OnceLock<Event> = OnceLock::new();
        fn wait_gate(x: u32) -> u32 {
            GATE.get().unwrap().wait();
            x
        }
        GATE.get_or_init(|| Event::anonymous().unwrap());
        let p = pool(1);
        let errs = Arc::new(AtomicUsize::new(0));
        let e = Arc::clone(&errs);
        let h = p
            .apply_async_with(
                wait_gate,
                1,
                |_| panic!("must not succeed"),
                move |err| {
                    assert_eq!(err, PoolError::Terminated);
                    e.fetch_add(1, Ordering::SeqCst);
                },
            )
            .unwrap();
        assert_eq!(
            h.get_timeout(Duration::from_millis(20)),
            Err(PoolError::Timeout)
        );
        p.terminate();
        assert_eq!(errs.load(Ordering::SeqCst), 1);
        assert_eq!(h.get(), Err(PoolError::Terminated));
        drop(p);
        assert_eq!(errs.load(Ordering::SeqCst), 1);
    });
}

/// At least 100 workers SIGKILLed mid-task in one run: exactly those tasks get
/// `WorkerDied`, every other task its right result, the pool keeps its size and
/// no dead worker is left a zombie.
#[test]
fn hundred_kills_fail_exactly_the_running_tasks() {
    watchdog(|| {
        let p = pool(2);
        let n = 1000u64;
        let out: Vec<Result<u64, PoolError>> = p.imap(die_on_3, 0..n).unwrap().collect();
        let mut dead_pids = HashSet::new();
        for (x, r) in out.iter().enumerate() {
            if x % 10 == 3 {
                match r {
                    Err(PoolError::WorkerDied {
                        pid,
                        signal: Some(9),
                        code: None,
                    }) => {
                        assert!(dead_pids.insert(*pid), "one death per worker");
                    }
                    other => panic!("task {x}: {other:?}"),
                }
            } else {
                assert_eq!(r, &Ok(x as u64 + 1), "task {x}");
            }
        }
        assert_eq!(dead_pids.len(), 100);
        let live = p.pids();
        assert_eq!(live.len(), 2, "the pool keeps its size");
        for pid in &dead_pids {
            assert!(!live.contains(pid));
            assert!(!is_our_child(*pid), "dead worker {pid} was not reaped");
        }
        assert_eq!(p.map(square, 0..10u64).unwrap()[3], 9);
        p.terminate();
        for pid in live {
            assert!(!is_our_child(pid), "worker {pid} left after terminate");
        }
    });
}

/// Logs every run of a task, then dies like [`die_on_3`].
fn log_then_die_on_3(x: u64) -> u64 {
    RAN.get().unwrap().put(x).unwrap();
    die_on_3(x)
}

static RAN: OnceLock<Queue<u64>> = OnceLock::new();

/// The tasks of a killed worker's chunk that had finished keep their results
/// (they are in the shared slot): with `map`, `imap` and default chunks (many
/// tasks per chunk, a kill in every one), every task runs exactly once.
#[test]
fn killed_chunks_run_each_task_once() {
    watchdog(|| {
        let ran = RAN.get_or_init(|| Queue::anonymous(4096).unwrap());
        let p = pool(2);
        let n = 1000u64;
        let out: Vec<Result<u64, PoolError>> = p.imap(log_then_die_on_3, 0..n).unwrap().collect();
        for (x, r) in out.iter().enumerate() {
            if x % 10 == 3 {
                assert!(
                    matches!(
                        r,
                        Err(PoolError::WorkerDied {
                            signal: Some(9),
                            ..
                        })
                    ),
                    "task {x}: {r:?}"
                );
            } else {
                assert_eq!(r, &Ok(x as u64 + 1), "task {x}");
            }
        }
        let mut runs = vec![0u32; n as usize];
        while let Ok(x) = ran.try_get() {
            runs[x as usize] += 1;
        }
        let wrong: Vec<(usize, u32)> = runs
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 1)
            .map(|(i, c)| (i, *c))
            .collect();
        assert!(wrong.is_empty(), "tasks not run exactly once: {wrong:?}");
        // `map` (the caller's iterator feeds the chunks) reports the first
        // death in order and runs nothing twice either.
        let r = p.map(log_then_die_on_3, 0..100u64);
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
        let mut runs = vec![0u32; 100];
        while let Ok(x) = ran.try_get() {
            runs[x as usize] += 1;
        }
        assert!(runs.iter().all(|&c| c == 1), "{runs:?}");
        assert_eq!(p.pids().len(), 2, "the pool keeps its size");
    });
}

/// Many more chunks than arena slots: slots are reused, results stay in order,
/// for `map` over a range (fed while the caller drives), over an iterator of
/// unknown length (collected), `map_async` and `starmap`.
#[test]
fn many_chunks_reuse_the_slots() {
    watchdog(|| {
        let p = builder(2).message_size(16 * 1024).build().unwrap();
        let n = 100_000u64;
        let want: Vec<u64> = (0..n).map(square).collect();
        assert!(p.map(square, 0..n).unwrap() == want);
        let odd: Vec<u64> = (0..n).filter(|x| x % 2 == 1).map(square).collect();
        assert!(p.map(square, (0..n).filter(|x| x % 2 == 1)).unwrap() == odd);
        assert!(p.map_async(square, 0..n).unwrap().get().unwrap() == want);
        let pairs: Vec<(u32, u64)> = (0..n).map(|x| (x as u32, x)).collect();
        let star: Vec<u64> = pairs.iter().map(|&(a, b)| add(a, b)).collect();
        assert!(p.starmap(add, pairs).unwrap() == star);
        // Two jobs in flight at once share the slots.
        let a = p.map_async(square, 0..n).unwrap();
        let b = p.map_async(square, 0..n).unwrap();
        assert!(p.map(square, 0..n).unwrap() == want);
        assert!(b.get().unwrap() == want);
        assert!(a.get().unwrap() == want);
    });
}

/// An argument iterator that panics: the panic reaches the caller of `map`,
/// and the pool goes on.
#[test]
fn panicking_argument_iterator() {
    watchdog_alone(|| {
        let p = pool(2);
        let it = (0..10_000u64).inspect(|&x| assert!(x != 5_000, "iterator gave up"));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.map(square, it)));
        assert!(r.is_err());
        assert_eq!(p.map(square, 0..10u64).unwrap()[9], 81);
        p.close();
        p.join().unwrap();
    });
}

fn plus_one(x: u64) -> u64 {
    x + 1
}

/// An argument iterator that uses the pool itself (Python collects the
/// iterable first; here it is read while `map` drives, with no pool lock
/// held): `apply`, `pids`, a nested `map`, one chunk at a time or several.
#[test]
fn argument_iterator_may_use_the_pool() {
    watchdog(|| {
        let p = pool(2);
        let v = p.map(square, (0..4u64).map(|x| p.apply(plus_one, x).unwrap()));
        assert_eq!(v.unwrap(), vec![1, 4, 9, 16]);
        let v = p.map(square, (0..4u64).map(|x| x + p.pids().len() as u64));
        assert_eq!(v.unwrap(), vec![4, 9, 16, 25]);
        let it = (0..20u64).map(|x| p.map(plus_one, [x, x]).unwrap()[1]);
        assert_eq!(
            p.map_chunked(square, it, 1).unwrap(),
            (1..21u64).map(square).collect::<Vec<_>>()
        );
        let it = (0..3u64).map(|x| p.apply_async(plus_one, x).unwrap().get().unwrap());
        assert_eq!(p.map(plus_one, it).unwrap(), vec![2, 3, 4]);
    });
}

/// Process counts and message sizes whose queue, table or arena sizes
/// overflow are typed errors, not panics or unusable pools.
#[test]
fn oversized_configurations_are_typed_errors() {
    watchdog(|| {
        for n in [usize::MAX, 1 << 61, (1 << 60) + 1, 1 << 40] {
            let r = builder(n).build();
            assert!(matches!(r, Err(PoolError::Start(_))), "{n}: {r:?}");
        }
        for size in [usize::MAX, usize::MAX - 6, 1 << 62] {
            let r = builder(1).message_size(size).build();
            assert!(matches!(r, Err(PoolError::Start(_))), "{size}: {r:?}");
        }
    });
}

/// A panicking `callback` does not lose the other callbacks completed in the
/// same batch: each runs exactly once, and the panic reaches the thread that
/// drove the pool.
#[test]
fn panicking_callback_loses_no_other_callback() {
    watchdog_alone(|| {
        static GATE: OnceLock<Event> = OnceLock::new();
        static LAST: OnceLock<Event> = OnceLock::new();
        fn gated(x: u64) -> u64 {
            GATE.get().unwrap().wait();
            x
        }
        fn last(x: u64) -> u64 {
            LAST.get().unwrap().set();
            x
        }
        GATE.get_or_init(|| Event::anonymous().unwrap());
        LAST.get_or_init(|| Event::anonymous().unwrap());
        let p = pool(1);
        let oks = Arc::new(AtomicUsize::new(0));
        let errs = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..6u64)
            .map(|x| {
                let (o, e) = (Arc::clone(&oks), Arc::clone(&errs));
                p.apply_async_with(
                    gated,
                    x,
                    move |v| {
                        o.fetch_add(1, Ordering::SeqCst);
                        assert!(v != 0, "callback 0 panics");
                    },
                    move |_| {
                        e.fetch_add(1, Ordering::SeqCst);
                    },
                )
                .unwrap()
            })
            .collect();
        let end = p.apply_async(last, 6).unwrap();
        // Nothing has completed yet (every task waits on the gate), so no
        // callback ran during the submissions.
        GATE.get().unwrap().set();
        // The one worker sent the six results before it ran `last`: the next
        // drive receives them in one batch, callback 0 first.
        LAST.get().unwrap().wait();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| end.wait()));
        assert!(r.is_err(), "the callback's panic reaches the driver");
        for h in &hs {
            h.wait();
        }
        assert!(hs.iter().all(|h| h.successful() == Some(true)));
        assert_eq!(end.get(), Ok(6));
        p.close();
        p.join().unwrap();
        assert_eq!(oks.load(Ordering::SeqCst), 6);
        assert_eq!(errs.load(Ordering::SeqCst), 0);
    });
}

/// Workers killed from outside (by another thread) while their task blocks:
/// exactly that task fails with the killed pid, the tasks queued behind it on
/// the same worker run elsewhere.
#[test]
fn outside_kills_mid_task() {
    static STARTED: OnceLock<Queue<[u32; 2]>> = OnceLock::new();
    static GATE: OnceLock<Event> = OnceLock::new();
    fn block_if_victim(x: u32) -> u32 {
        if x % 5 == 0 {
            let _ = STARTED.get().unwrap().put([x, std::process::id()]);
            // Blocks until killed: the gate is never set.
            GATE.get().unwrap().wait();
        }
        x * 3
    }
    watchdog(|| {
        STARTED.get_or_init(|| Queue::anonymous(64).unwrap());
        GATE.get_or_init(|| Event::anonymous().unwrap());
        let p = pool(2);
        let n = 50u32;
        let killer = std::thread::spawn(move || {
            let mut killed = HashMap::new();
            for _ in 0..n / 5 {
                let [x, pid] = STARTED.get().unwrap().get_timeout(WATCHDOG).unwrap();
                // SAFETY: SIGKILL to a pool worker of this test.
                assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
                killed.insert(x, pid);
            }
            killed
        });
        let out: Vec<Result<u32, PoolError>> =
            p.imap_chunked(block_if_victim, 0..n, 4).unwrap().collect();
        let killed = killer.join().unwrap();
        for (x, r) in out.iter().enumerate() {
            let x = x as u32;
            if x % 5 == 0 {
                assert_eq!(
                    r,
                    &Err(PoolError::WorkerDied {
                        pid: killed[&x],
                        signal: Some(9),
                        code: None
                    }),
                    "task {x}"
                );
            } else {
                assert_eq!(r, &Ok(x * 3), "task {x}");
            }
        }
        assert_eq!(p.pids().len(), 2);
    });
}

#[test]
fn worker_exit_mid_task_is_worker_died() {
    watchdog(|| {
        let p = pool(2);
        let out: Vec<Result<u32, PoolError>> =
            p.imap_chunked(exit_7, 0..10u32, 4).unwrap().collect();
        for (x, r) in out.iter().enumerate() {
            if x == 5 {
                assert!(
                    matches!(
                        r,
                        Err(PoolError::WorkerDied {
                            signal: None,
                            code: Some(7),
                            ..
                        })
                    ),
                    "{r:?}"
                );
            } else {
                assert_eq!(r, &Ok(x as u32));
            }
        }
        assert_eq!(p.pids().len(), 2);
    });
}

#[test]
fn terminate_and_drop_leave_no_child() {
    watchdog(|| {
        let p = pool(3);
        let pids = p.pids();
        assert_eq!(pids.len(), 3);
        assert!(pids.iter().all(|&pid| is_our_child(pid)));
        p.terminate();
        assert!(p.pids().is_empty());
        for pid in pids {
            assert!(!is_our_child(pid), "worker {pid} left after terminate");
        }
        assert_eq!(p.apply(square, 1), Err(PoolError::Terminated));

        let p = pool(2);
        let pids = p.pids();
        let pending = p.apply_async(square, 4).unwrap();
        drop(p);
        for pid in pids {
            assert!(!is_our_child(pid), "worker {pid} left after drop");
        }
        // The handle outlives the pool: its task either finished or was terminated.
        assert!(matches!(pending.get(), Ok(16) | Err(PoolError::Terminated)));
    });
}

#[test]
fn close_and_join() {
    watchdog(|| {
        let p = pool(2);
        assert_eq!(p.join(), Err(PoolError::NotClosed));
        let rs: Vec<_> = (0..20u64)
            .map(|x| p.apply_async(square, x).unwrap())
            .collect();
        let pids = p.pids();
        p.close();
        assert_eq!(p.apply_async(square, 1).err(), Some(PoolError::Closed));
        p.join().unwrap();
        for pid in pids {
            assert!(!is_our_child(pid), "worker {pid} left after join");
        }
        for (x, r) in rs.iter().enumerate() {
            assert!(r.ready());
            assert_eq!(r.get(), Ok(square(x as u64)));
        }
    });
}

#[test]
fn get_timeout_then_result() {
    static GATE: OnceLock<Event> = OnceLock::new();
    fn gated(x: u64) -> u64 {
        GATE.get().unwrap().wait();
        x + 100
    }
    watchdog(|| {
        GATE.get_or_init(|| Event::anonymous().unwrap());
        let p = pool(1);
        let r = p.apply_async(gated, 1).unwrap();
        assert_eq!(
            r.get_timeout(Duration::from_millis(10)),
            Err(PoolError::Timeout)
        );
        assert!(!r.ready());
        assert_eq!(r.successful(), None);
        assert!(!r.wait_timeout(Duration::from_millis(1)));
        GATE.get().unwrap().set();
        assert_eq!(r.get(), Ok(101));
        assert_eq!(r.successful(), Some(true));
    });
}

#[test]
fn submit_and_as_completed() {
    watchdog(|| {
        let p = pool(2);
        let fs: Vec<_> = (0..30u64).map(|x| p.submit(square, x).unwrap()).collect();
        let mut got: Vec<u64> = as_completed(fs).map(|f| f.get().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..30u64).map(square).collect::<Vec<_>>());
    });
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    watchdog(|| {
        let p = builder(1).max_tasks_per_child(1).build().unwrap();
        let pids = p.map_chunked(my_pid, 0..8u32, 1).unwrap();
        assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 8, "{pids:?}");
        assert_eq!(p.pids().len(), 1);
    });
}

#[test]
fn initializer_runs_in_each_worker() {
    static READY: OnceLock<Queue<u32>> = OnceLock::new();
    fn init() {
        READY.get().unwrap().put(std::process::id()).unwrap();
    }
    fn bad_init() {
        panic!("no init");
    }
    watchdog(|| {
        READY.get_or_init(|| Queue::anonymous(8).unwrap());
        let p = builder(2).initializer(init).build().unwrap();
        let mut inited = vec![
            READY.get().unwrap().get().unwrap(),
            READY.get().unwrap().get().unwrap(),
        ];
        inited.sort_unstable();
        let mut pids = p.pids();
        pids.sort_unstable();
        assert_eq!(inited, pids);

        let p = builder(1).initializer(bad_init).build().unwrap();
        assert_eq!(p.apply(square, 2), Err(PoolError::InitializerPanicked));
        assert_eq!(p.apply(square, 2), Err(PoolError::InitializerPanicked));
    });
}

#[test]
fn too_large_arguments_are_refused() {
    fn big(x: [u64; 1024]) -> u64 {
        x[0]
    }
    watchdog(|| {
        let p = builder(1).message_size(4096).build().unwrap();
        assert!(matches!(
            p.apply(big, [0; 1024]),
            Err(PoolError::TooLarge { .. })
        ));
        let p = builder(1).message_size(16384).build().unwrap();
        assert_eq!(p.apply(big, [5; 1024]), Ok(5));
    });
}

#[test]
fn refused_in_a_threaded_parent_without_the_unsafe_builder() {
    watchdog(|| {
        // This test thread plus the harness's: more than one thread.
        assert!(matches!(Pool::new(1), Err(PoolError::Start(_))));
    });
}

/// A forked child's copy of a pool is inert: terminating or using it there
/// leaves the parent's workers alone.
#[test]
fn forked_copy_of_a_pool_is_inert() {
    watchdog(|| {
        let p = pool(2);
        let before = p.pids();
        let pr = &p;
        // SAFETY: the child only calls this crate's pool methods (which return at
        // once in a process that did not start the workers) and exits.
        let child = unsafe {
            multiproc::process::fork_unchecked(move || {
                let used = pr.apply(square, 2);
                pr.terminate();
                i32::from(used != Err(PoolError::Terminated))
            })
        }
        .unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(p.pids(), before);
        assert_eq!(p.apply(square, 5), Ok(25));
    });
}

/// The serde methods: any `Serialize + DeserializeOwned` argument and result.
#[cfg(feature = "serde")]
mod serde_values {
    use super::*;

    fn describe(v: (String, Vec<u32>)) -> (usize, String, Option<u32>) {
        let (name, xs) = v;
        (xs.len(), name.to_uppercase(), xs.iter().copied().max())
    }

    fn fail_on_odd_len(s: String) -> String {
        assert!(s.len() % 2 == 0, "odd length {}", s.len());
        s.repeat(2)
    }

    fn huge(n: u32) -> Vec<u8> {
        vec![7; n as usize]
    }

    fn die_on_len_3(s: String) -> usize {
        if s.len() % 10 == 3 {
            // SAFETY: SIGKILL to this worker process.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        s.len()
    }

    fn inputs(n: usize) -> Vec<(String, Vec<u32>)> {
        (0..n)
            .map(|i| {
                (
                    format!("item-{i}"),
                    (0..(i % 17) as u32).map(|k| k * 31 + i as u32).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn serde_map_imap_apply_match_sequential() {
        watchdog(|| {
            let p = pool(2);
            for n in [0usize, 1, 7, 300, 5000] {
                let args = inputs(n);
                let want: Vec<_> = args.iter().cloned().map(describe).collect();
                assert_eq!(
                    p.map_serde(describe, args.clone()).unwrap(),
                    want,
                    "n = {n}"
                );
                assert_eq!(
                    p.map_serde_chunked(describe, args.clone(), 3).unwrap(),
                    want
                );
                let ordered: Vec<_> = p
                    .imap_serde(describe, args.clone(), true)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                assert_eq!(ordered, want);
                let mut unordered: Vec<_> = p
                    .imap_serde(describe, args.clone(), false)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                unordered.sort();
                let mut sorted = want.clone();
                sorted.sort();
                assert_eq!(unordered, sorted);
            }
            let one = ("x".to_string(), vec![3, 9]);
            assert_eq!(
                p.apply_serde(describe, one.clone()).unwrap(),
                describe(one.clone())
            );
            let r = p.apply_async_serde(describe, one.clone()).unwrap();
            assert_eq!(r.get().unwrap(), describe(one.clone()));
            assert_eq!(r.get().unwrap(), describe(one));
        });
    }

    #[test]
    fn serde_failures_are_values() {
        watchdog(|| {
            let p = builder(2).serde_result_size(256).build().unwrap();
            // Panics.
            let words: Vec<String> = (0..20)
                .map(|i| "ab".repeat(i) + &"c".repeat(i % 2))
                .collect();
            let out: Vec<_> = p
                .imap_serde(fail_on_odd_len, words.clone(), true)
                .unwrap()
                .collect();
            for (w, r) in words.iter().zip(&out) {
                if w.len() % 2 == 1 {
                    assert_eq!(
                        r,
                        &Err(PoolError::Panicked(format!("odd length {}", w.len())))
                    );
                } else {
                    assert_eq!(r, &Ok(w.repeat(2)));
                }
            }
            // A result larger than its cell fails that task only.
            let out: Vec<_> = p
                .imap_serde(huge, [10u32, 100_000, 20], true)
                .unwrap()
                .collect();
            assert_eq!(out[0], Ok(vec![7; 10]));
            assert!(
                matches!(&out[1], Err(PoolError::Panicked(m)) if m.contains("does not fit")),
                "{:?}",
                out[1]
            );
            assert_eq!(out[2], Ok(vec![7; 20]));
            // Killed workers: exactly the running tasks fail, the pool keeps its size.
            let words: Vec<String> = (0..200).map(|i| "z".repeat(i)).collect();
            let out: Vec<_> = p
                .imap_serde(die_on_len_3, words.clone(), true)
                .unwrap()
                .collect();
            for (w, r) in words.iter().zip(&out) {
                if w.len() % 10 == 3 {
                    assert!(
                        matches!(
                            r,
                            Err(PoolError::WorkerDied {
                                signal: Some(9),
                                ..
                            })
                        ),
                        "{}: {r:?}",
                        w.len()
                    );
                } else {
                    assert_eq!(r, &Ok(w.len()));
                }
            }
            assert_eq!(p.pids().len(), 2);
        });
    }
}

/// Set in the parent before the pool starts: a forked worker sees it, a
/// spawned one (a fresh run of the program) does not.
static MARK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn mark_plus(x: u64) -> u64 {
    MARK.load(Ordering::SeqCst) + x
}

fn init_mark() {
    MARK.store(1000, Ordering::SeqCst);
}

/// The spawn start method in a parent with several threads (one holding a
/// lock): no `unsafe`, workers are fresh processes (they do not see the
/// parent's statics; the initializer runs in each), results match, failures
/// are values, a killed worker is replaced by a spawned one, and terminate
/// leaves no child.
#[test]
fn spawn_start_method_in_a_threaded_parent() {
    watchdog(|| {
        let held = Arc::new(Mutex::new(()));
        let (locked, release) = (
            Arc::new(std::sync::Barrier::new(3)),
            Arc::new(std::sync::Barrier::new(3)),
        );
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (h, l, r) = (Arc::clone(&held), Arc::clone(&locked), Arc::clone(&release));
                std::thread::spawn(move || {
                    let _g = (i == 0).then(|| h.lock().unwrap());
                    l.wait();
                    r.wait();
                })
            })
            .collect();
        locked.wait();
        MARK.store(7, Ordering::SeqCst);
        assert!(matches!(Pool::new(2), Err(PoolError::Start(_))));
        let p = Pool::builder().processes(2).spawn().build().unwrap();
        let pids = p.pids();
        assert_eq!(pids.len(), 2);
        assert!(pids.iter().all(|&pid| is_our_child(pid)));
        // Fresh processes: the parent's 7 is not there.
        assert_eq!(
            p.map(mark_plus, 0..100u64).unwrap(),
            (0..100u64).collect::<Vec<_>>()
        );
        let n = 20_000u64;
        let want: Vec<u64> = (0..n).map(square).collect();
        assert!(p.map(square, 0..n).unwrap() == want);
        let pairs: Vec<(u32, u64)> = (0..100).map(|x| (x as u32, x)).collect();
        assert_eq!(
            p.starmap(add, pairs.clone()).unwrap(),
            pairs.iter().map(|&(a, b)| add(a, b)).collect::<Vec<_>>()
        );
        assert_eq!(
            p.apply(panic_if_odd, 3),
            Err(PoolError::Panicked("odd input 3".into()))
        );
        let out: Vec<Result<u64, PoolError>> = p.imap(die_on_3, 0..40u64).unwrap().collect();
        for (x, r) in out.iter().enumerate() {
            if x % 10 == 3 {
                assert!(
                    matches!(
                        r,
                        Err(PoolError::WorkerDied {
                            signal: Some(9),
                            ..
                        })
                    ),
                    "{x}: {r:?}"
                );
            } else {
                assert_eq!(r, &Ok(x as u64 + 1));
            }
        }
        let live = p.pids();
        assert_eq!(live.len(), 2, "replacements are spawned");
        p.terminate();
        for pid in live {
            assert!(!is_our_child(pid), "worker {pid} left after terminate");
        }
        // The initializer runs in every spawned worker.
        let p = Pool::builder()
            .processes(2)
            .spawn()
            .initializer(init_mark)
            .build()
            .unwrap();
        assert!(
            p.map(mark_plus, 0..10u64)
                .unwrap()
                .iter()
                .zip(0..)
                .all(|(&r, x)| r == 1000 + x)
        );
        drop(p);
        release.wait();
        for t in threads {
            t.join().unwrap();
        }
    });
}

fn widen(x: u32) -> u64 {
    u64::from(x) << 33 | 1
}

fn narrow(x: u64) -> u32 {
    (x >> 1) as u32 ^ 0xA5
}

/// Panics on the arguments `pick` selects.
fn panic_on_mod_7(x: u64) -> u64 {
    assert!(x % 7 != 3, "mod 7 is 3: {x}");
    x + 1
}

fn panic_on_mod_11(x: u64) -> u64 {
    assert!(x % 11 != 10, "mod 11 is 10: {x}");
    x + 2
}

/// Results that overwrite their arguments in place (a result no larger than
/// the argument) and results laid out after them, over reused slots: a slot
/// whose previous run had panics must not make a later run's tasks fail, and
/// a run's panics fail exactly its panicking tasks.
#[test]
fn in_place_and_separate_results_over_reused_slots() {
    watchdog(|| {
        // Small slots: many chunks, every slot reused many times.
        let p = builder(2).message_size(4096).build().unwrap();
        let n = 5_000u64;
        for round in 0..3 {
            let got: Vec<Result<u64, PoolError>> =
                p.imap_chunked(panic_on_mod_7, 0..n, 37).unwrap().collect();
            for (x, r) in (0..n).zip(&got) {
                if x % 7 == 3 {
                    assert_eq!(r, &Err(PoolError::Panicked(format!("mod 7 is 3: {x}"))));
                } else {
                    assert_eq!(r, &Ok(x + 1), "round {round}");
                }
            }
            // Same slots, no panics: every task succeeds (stale status bytes
            // of the run above are not read).
            let want: Vec<u64> = (0..n).map(square).collect();
            assert!(p.map_chunked(square, 0..n, 37).unwrap() == want);
            // Other panicking tasks over the same slots.
            let got: Vec<Result<u64, PoolError>> =
                p.imap_chunked(panic_on_mod_11, 0..n, 41).unwrap().collect();
            for (x, r) in (0..n).zip(&got) {
                if x % 11 == 10 {
                    assert!(matches!(r, Err(PoolError::Panicked(_))), "{x}: {r:?}");
                } else {
                    assert_eq!(r, &Ok(x + 2));
                }
            }
            // Results larger than arguments (after them) and smaller (in place).
            let xs: Vec<u32> = (0..n as u32)
                .map(|x| x.wrapping_mul(2_654_435_761))
                .collect();
            let w = p.map(widen, xs.clone()).unwrap();
            assert!(w == xs.iter().map(|&x| widen(x)).collect::<Vec<_>>());
            let ys: Vec<u64> = w.iter().map(|&y| y ^ 0xDEAD_BEEF).collect();
            let v = p.map(narrow, ys.clone()).unwrap();
            assert!(v == ys.iter().map(|&y| narrow(y)).collect::<Vec<_>>());
        }
    });
}

/// `map` takes fn items, closures that capture nothing and fn pointers alike;
/// a closure that captures state is refused.
#[test]
fn task_functions_items_closures_pointers() {
    watchdog(|| {
        let p = pool(2);
        let n = 20_000u64;
        let want: Vec<u64> = (0..n).map(|x| x * 3 + 1).collect();
        assert!(p.map(|x: u64| x * 3 + 1, 0..n).unwrap() == want);
        let ptr: fn(u64) -> u64 = square;
        assert!(p.map(ptr, 0..n).unwrap() == (0..n).map(square).collect::<Vec<_>>());
        let odd: Vec<u32> = p
            .imap(|x: u32| x | 1, 0..100u32)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(odd, (0..100u32).map(|x| x | 1).collect::<Vec<_>>());
        let r = p.map_async(|x: u8| x.wrapping_add(1), 0..=255u8).unwrap();
        assert_eq!(
            r.get().unwrap(),
            (0..=255u8).map(|x| x.wrapping_add(1)).collect::<Vec<_>>()
        );
        let k = 5u64;
        assert_eq!(
            p.map(move |x: u64| x + k, 0..3u64),
            Err(PoolError::Captures)
        );
        assert!(p.imap(move |x: u64| x + k, 0..3u64).is_err());
        // The pool is unharmed.
        assert_eq!(p.map(square, [7u64]).unwrap(), vec![49]);
    });
}

/// An iterator whose exact `size_hint` over- or under-promises.
struct Liar {
    promised: usize,
    yields: u64,
    next: u64,
}

impl Iterator for Liar {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        (self.next < self.yields).then(|| {
            self.next += 1;
            self.next
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.promised, Some(self.promised))
    }
}

/// `map` over an iterator that breaks its exact `size_hint` fails with
/// `LengthMismatch` instead of returning results made up for items that
/// never came (or dropping items beyond the promise), whatever the chunking;
/// the pool keeps working.
#[test]
fn an_iterator_that_breaks_its_size_hint_fails_the_map() {
    watchdog(|| {
        let p = pool(2);
        for chunk in [0, 1, 2] {
            let short = Liar {
                promised: 5,
                yields: 3,
                next: 0,
            };
            assert_eq!(
                p.map_chunked(square, short, chunk),
                Err(PoolError::LengthMismatch {
                    promised: 5,
                    yielded: 3
                }),
                "chunk size {chunk}"
            );
            let long = Liar {
                promised: 3,
                yields: 5,
                next: 0,
            };
            assert_eq!(
                p.map_chunked(square, long, chunk),
                Err(PoolError::LengthMismatch {
                    promised: 3,
                    yielded: 4
                }),
                "chunk size {chunk}"
            );
        }
        let honest = Liar {
            promised: 3,
            yields: 3,
            next: 0,
        };
        assert_eq!(p.map(square, honest).unwrap(), vec![1, 4, 9]);
    });
}

/// Blocks until thread `tid` of this process is asleep (state `S`), or
/// `done` says it finished what it was doing.
fn thread_asleep_or(tid: i32, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    loop {
        let stat =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if state == "S" || done() {
            return;
        }
        assert!(start.elapsed() < WATCHDOG, "watchdog: thread never slept");
        std::thread::yield_now();
    }
}

/// `as_completed` over handles of two pools yields only finished handles:
/// neither task can finish until its gate opens, the iterator's first
/// `next` is asleep waiting before gate A opens, and then the handle it
/// yields is A's, finished. Before the fix a handle of the second pool
/// counted as done at once.
#[test]
fn as_completed_over_two_pools_yields_finished_handles() {
    watchdog(|| {
        static A: OnceLock<Event> = OnceLock::new();
        static B: OnceLock<Event> = OnceLock::new();
        fn gate_a(x: u64) -> u64 {
            A.get().unwrap().wait();
            x
        }
        fn gate_b(x: u64) -> u64 {
            B.get().unwrap().wait();
            x
        }
        A.get_or_init(|| Event::anonymous().unwrap());
        B.get_or_init(|| Event::anonymous().unwrap());
        let (pa, pb) = (pool(1), pool(1));
        let handles = vec![pa.submit(gate_a, 1).unwrap(), pb.submit(gate_b, 2).unwrap()];
        let (tid_tx, tid_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            let mut it = as_completed(handles);
            let first = it.next().unwrap();
            tx.send(first.ready()).unwrap();
            let first = first.get();
            let second = it.next().unwrap().get();
            (first, second)
        });
        let tid = tid_rx.recv_timeout(WATCHDOG).unwrap();
        let early = std::cell::Cell::new(None);
        thread_asleep_or(tid, || {
            if let Ok(r) = rx.try_recv() {
                early.set(Some(r));
            }
            early.get().is_some()
        });
        assert_eq!(
            early.get(),
            None,
            "as_completed yielded before any task finished"
        );
        A.get().unwrap().set();
        assert!(
            rx.recv_timeout(WATCHDOG).unwrap(),
            "the first handle yielded is finished"
        );
        B.get().unwrap().set();
        let (first, second) = t.join().unwrap();
        assert_eq!((first, second), (Ok(1), Ok(2)));
    });
}

/// A forked worker joins its own inbox's region (and the results'), not every
/// other worker's inbox it inherits: otherwise N workers make N^2 joins, and
/// past the default table size the later workers found no slot in their own
/// inbox. In a forked child of its own: a fork by another test while the pool
/// lives would inherit (and join) its inboxes too.
#[test]
fn each_inbox_has_only_the_pool_and_its_worker() {
    watchdog(|| {
        let child = common::spawn(|| {
            // Each worker has joined what it joins by the time it is started:
            // a fork waits for the child to publish what it inherits.
            let p = pool(5);
            let members = multiproc::__private::pool_inbox_members(&p);
            if members.len() != 5 || p.map(square, 0..100u64).is_err() {
                return 1;
            }
            // The pool's process and the inbox's own worker.
            if members.iter().all(|&m| m <= 2) {
                0
            } else {
                2
            }
        });
        assert_eq!(common::join(child), multiproc::process::ExitStatus::Code(0));
    });
}
