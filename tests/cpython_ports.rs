//! Ports of CPython's `Lib/test/_test_multiprocessing.py` (the classes named in
//! each test's comment) to this crate's API: the same observable contracts,
//! across real forked processes.
//!
//! No sleeps as synchronization and no timing assertions: a child that must
//! be blocked when the parent acts is proven so (it registered under a lock
//! that its wait releases atomically, or the kernel reports it asleep after a
//! signal that it is about to block); a timeout is only checked to return
//! "timed out". Every wait on a child is under the watchdog of `common`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Scratch, WATCHDOG, join, join_all_ok, spawn};
use multiproc::process::{ExitStatus, PANIC_EXIT_CODE, Process};
use multiproc::{
    Array, Barrier, BarrierError, BoundedSemaphore, Condition, Counter, Event, Lock, LockError,
    RLock, ReleaseError, Semaphore, Value,
};

/// A short timeout for calls that must time out.
const SHORT: Duration = Duration::from_millis(20);

/// Spins (yielding) until `f()` holds, failing the test after the watchdog.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WATCHDOG, "watchdog: never saw {what}");
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------- _TestProcess

// _TestProcess.test_process: exitcode None while running, 0 after, is_alive, pid, name.
#[test]
fn process_lifecycle_exitcode_is_alive_pid_name() {
    let go = Event::anonymous().unwrap();
    // SAFETY: the child only waits on this crate's Event and returns.
    let c = unsafe {
        Process::new(|| if go.wait_timeout(WATCHDOG) { 0 } else { 9 })
            .name("ported-child")
            .start_unchecked()
    }
    .unwrap();
    assert_eq!(c.name(), "ported-child");
    assert!(!c.is_daemon());
    assert!(c.pid() > 0 && c.pid() != std::process::id());
    assert!(c.is_alive());
    assert_eq!(c.exitcode(), None);
    // join(timeout) on a running process returns with it still alive.
    assert_eq!(c.join_timeout(SHORT).unwrap(), None);
    assert!(c.is_alive());
    go.set();
    assert_eq!(c.join_timeout(WATCHDOG).unwrap(), Some(ExitStatus::Code(0)));
    assert!(!c.is_alive());
    assert_eq!(c.exitcode(), Some(0));
    // join again returns the same status.
    assert_eq!(c.join().unwrap(), ExitStatus::Code(0));
}

// _TestProcess.test_process: default names are Process-N.
#[test]
fn process_default_name() {
    // SAFETY: the child returns at once.
    let c = unsafe { Process::new(|| 0).start_unchecked() }.unwrap();
    assert!(c.name().starts_with("Process-"), "{}", c.name());
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestProcess.test_sys_exit / test_exitcode: the code the child returns is its exitcode.
#[test]
fn process_exit_codes() {
    for code in [0, 1, 2, 7, 42, 255] {
        let c = spawn(move || code);
        let s = c.join_timeout(WATCHDOG).unwrap().expect("child ended");
        assert_eq!(s, ExitStatus::Code(code));
        assert_eq!(c.exitcode(), Some(code));
        assert_eq!(s.success(), code == 0);
    }
}

// _TestProcess.test_sys_exit: a Result error exits 1 (like an uncaught exception).
#[test]
fn process_err_result_is_exit_code_1() {
    // SAFETY: the child returns an error (printed to stderr, unbuffered).
    let c =
        unsafe { Process::new(|| Err::<(), _>("deliberate failure")).start_unchecked() }.unwrap();
    assert_eq!(c.join_timeout(WATCHDOG).unwrap(), Some(ExitStatus::Code(1)));
    assert_eq!(c.exitcode(), Some(1));
}

// _TestProcess.test_process (uncaught exception gives a non-zero exitcode; Rust: 101).
#[test]
fn process_panic_exit_code_is_documented_101() {
    let c = spawn(|| {
        // Silence the default hook's message; the child is a throwaway copy.
        std::panic::set_hook(Box::new(|_| {}));
        panic!("deliberate")
    });
    assert_eq!(
        c.join_timeout(WATCHDOG).unwrap(),
        Some(ExitStatus::Code(PANIC_EXIT_CODE))
    );
    assert_eq!(c.exitcode(), Some(101));
}

// _TestProcess.test_exitcode / os._exit semantics: codes are taken mod 256; abort is -SIGABRT.
#[test]
fn process_exit_code_wraps_and_abort() {
    let c = spawn(|| 256);
    assert_eq!(join(c), ExitStatus::Code(0));
    let c = spawn(|| -1);
    assert_eq!(join(c), ExitStatus::Code(255));
    let c = spawn(|| std::process::abort());
    let s = join(c);
    assert_eq!(s, ExitStatus::Signal(libc::SIGABRT));
    assert_eq!(s.code(), -libc::SIGABRT);
}

// _TestProcess (popen_fork.poll on ECHILD): a child reaped elsewhere (SIGCHLD ignored) is not
// alive, and its lost status is documented as Signal(0) / exitcode Some(0).
#[test]
fn process_status_lost_when_reaped_elsewhere() {
    let c = spawn(|| {
        // SAFETY: changes this throwaway child's own SIGCHLD disposition only.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let g = spawn(|| 3);
        let start = Instant::now();
        while g.is_alive() {
            if start.elapsed() > WATCHDOG {
                return 1;
            }
            std::thread::yield_now();
        }
        if g.exitcode() != Some(0) {
            return 2;
        }
        match g.join() {
            Ok(s) if s == ExitStatus::Signal(0) && !s.success() => 0,
            _ => 3,
        }
    });
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestProcess.test_terminate: exitcode is -SIGTERM.
#[test]
fn process_terminate_gives_minus_sigterm() {
    let never = Event::anonymous().unwrap();
    let started = Event::anonymous().unwrap();
    let c = spawn(|| {
        started.set();
        never.wait();
        0
    });
    assert!(started.wait_timeout(WATCHDOG));
    assert!(c.is_alive());
    assert_eq!(c.join_timeout(SHORT).unwrap(), None);
    c.terminate().unwrap();
    let s = c.join_timeout(WATCHDOG).unwrap().expect("terminated");
    assert_eq!(s, ExitStatus::Signal(libc::SIGTERM));
    assert_eq!(s.code(), -libc::SIGTERM);
    assert_eq!(c.exitcode(), Some(-libc::SIGTERM));
    assert!(!c.is_alive());
    // Terminating a reaped process is a no-op, as in Python.
    c.terminate().unwrap();
    c.kill().unwrap();
}

// _TestProcess.test_kill: exitcode is -SIGKILL.
#[test]
fn process_kill_gives_minus_sigkill() {
    let never = Event::anonymous().unwrap();
    let c = spawn(|| {
        never.wait();
        0
    });
    c.kill().unwrap();
    assert_eq!(
        c.join_timeout(WATCHDOG).unwrap(),
        Some(ExitStatus::Signal(libc::SIGKILL))
    );
    assert_eq!(c.exitcode(), Some(-9));
}

// _TestProcess.test_daemon_argument / daemon attribute.
#[test]
fn process_daemon_flag() {
    // SAFETY: the child returns at once.
    let c = unsafe { Process::new(|| 0).daemon(true).start_unchecked() }.unwrap();
    assert!(c.is_daemon());
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestProcess.test_many_processes: many children, each exit code seen.
#[test]
fn process_many_processes() {
    let children: Vec<_> = (0..20).map(|i| spawn(move || i % 5)).collect();
    for (i, c) in children.into_iter().enumerate() {
        assert_eq!(join(c), ExitStatus::Code((i % 5) as i32));
    }
}

// _TestProcess.test_recursion: children start children; shared objects reach grandchildren.
#[test]
fn process_recursion() {
    let hits = Counter::anonymous(0).unwrap();
    let c = spawn(|| {
        hits.fetch_add(1);
        let gcs: Vec<_> = (0..2)
            .map(|_| {
                spawn(|| {
                    hits.fetch_add(10);
                    0
                })
            })
            .collect();
        for g in gcs {
            if join(g) != ExitStatus::Code(0) {
                return 1;
            }
        }
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(hits.load(), 21);
}

// ------------------------------------------------------------------- _TestLock

// _TestLock.test_lock: acquire, a second non-blocking acquire fails, release, acquire again.
#[test]
fn lock_acquire_nonblocking() {
    let lock = Lock::anonymous().unwrap();
    let g = lock.try_lock().unwrap();
    // Held (by this thread): a non-blocking acquire fails, from another process too.
    assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
    let c = spawn(|| match lock.try_lock() {
        Err(LockError::WouldBlock) => 0,
        _ => 1,
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    drop(g);
    assert!(lock.try_lock().is_ok());
}

// _TestLock.test_lock: a Lock is not recursive; a second acquire with a timeout by
// the holder (or another thread) returns False instead of succeeding.
#[test]
fn lock_is_not_recursive() {
    let lock = Lock::anonymous().unwrap();
    let g = lock.lock().unwrap();
    assert!(matches!(lock.lock_timeout(SHORT), Err(LockError::Timeout)));
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
            assert!(matches!(lock.lock_timeout(SHORT), Err(LockError::Timeout)));
        });
    });
    drop(g);
    assert!(lock.try_lock().is_ok());
}

// _TestLock.test_rlock: the owner is a thread; another thread of the same process may not release.
#[test]
fn rlock_release_by_other_thread() {
    let lock = RLock::anonymous().unwrap();
    lock.acquire().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
            assert_eq!(lock.depth(), 0);
            assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
        });
    });
    assert_eq!(lock.depth(), 1);
    lock.release().unwrap();
}

// _TestLock.test_lock (acquire with timeout fails while another process holds it).
#[test]
fn lock_timeout_while_held_elsewhere() {
    let lock = Lock::anonymous().unwrap();
    let held = Event::anonymous().unwrap();
    let release = Event::anonymous().unwrap();
    let c = spawn(|| {
        let Ok(g) = lock.lock() else { return 1 };
        held.set();
        if !release.wait_timeout(WATCHDOG) {
            return 2;
        }
        drop(g);
        0
    });
    assert!(held.wait_timeout(WATCHDOG));
    assert!(matches!(lock.lock_timeout(SHORT), Err(LockError::Timeout)));
    assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
    release.set();
    assert_eq!(join(c), ExitStatus::Code(0));
    assert!(lock.lock_timeout(WATCHDOG).is_ok());
}

// _TestLock.test_rlock: recursion counts, release of an unowned RLock is an error.
#[test]
fn rlock_recursion_and_over_release() {
    let lock = RLock::anonymous().unwrap();
    assert_eq!(lock.depth(), 0);
    lock.acquire().unwrap();
    lock.acquire().unwrap();
    lock.acquire().unwrap();
    assert_eq!(lock.depth(), 3);
    lock.release().unwrap();
    lock.release().unwrap();
    assert_eq!(lock.depth(), 1);
    lock.release().unwrap();
    assert_eq!(lock.depth(), 0);
    // Python: RuntimeError "cannot release un-acquired lock".
    assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    assert_eq!(lock.depth(), 0);
    // Still usable.
    lock.acquire().unwrap();
    lock.release().unwrap();
}

// _TestLock.test_rlock: a release by a non-owner (another process) is an error; the lock stays held.
#[test]
fn rlock_release_by_non_owner_process() {
    let lock = RLock::anonymous().unwrap();
    lock.acquire().unwrap();
    lock.acquire().unwrap();
    let c = spawn(|| {
        if lock.release() != Err(ReleaseError::NotOwner) {
            return 1;
        }
        if lock.depth() != 0 {
            return 2; // depth is the calling thread's
        }
        match lock.try_lock() {
            Err(LockError::WouldBlock) => 0,
            _ => 3,
        }
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(lock.depth(), 2);
    lock.release().unwrap();
    lock.release().unwrap();
    let c = spawn(|| match lock.try_lock() {
        Ok(g) if lock.depth() == 1 => {
            drop(g);
            0
        }
        _ => 1,
    });
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestLock.test_lock_context: the guard releases at scope end.
#[test]
fn lock_guard_releases_on_drop() {
    let lock = RLock::anonymous().unwrap();
    {
        let _a = lock.lock().unwrap();
        let _b = lock.lock().unwrap();
        assert_eq!(lock.depth(), 2);
    }
    assert_eq!(lock.depth(), 0);
    let c = spawn(|| i32::from(lock.try_lock().is_err()));
    assert_eq!(join(c), ExitStatus::Code(0));
}

// -------------------------------------------------------------- _TestSemaphore

// _TestSemaphore.test_semaphore: get_value tracks acquires and releases.
#[test]
fn semaphore_get_value() {
    let sem = Semaphore::anonymous(2).unwrap();
    assert_eq!(sem.value(), 2);
    assert!(sem.try_acquire());
    assert_eq!(sem.value(), 1);
    sem.acquire();
    assert_eq!(sem.value(), 0);
    assert!(!sem.try_acquire());
    assert_eq!(sem.value(), 0);
    sem.release().unwrap();
    assert_eq!(sem.value(), 1);
    sem.release().unwrap();
    assert_eq!(sem.value(), 2);
    // An unbounded semaphore may go above its initial value.
    sem.release().unwrap();
    assert_eq!(sem.value(), 3);
}

// _TestSemaphore.test_bounded_semaphore: over-release is an error (Python ValueError).
#[test]
fn bounded_semaphore_over_release() {
    let sem = BoundedSemaphore::anonymous(2).unwrap();
    assert_eq!(sem.release(), Err(ReleaseError::AboveBound));
    assert_eq!(sem.value(), 2);
    sem.acquire();
    sem.release().unwrap();
    assert_eq!(sem.release(), Err(ReleaseError::AboveBound));
    assert_eq!(sem.value(), 2);
    // From another process too.
    sem.acquire();
    let c = spawn(|| {
        if sem.release().is_err() {
            return 1;
        }
        i32::from(sem.release() != Err(ReleaseError::AboveBound)) * 2
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(sem.value(), 2);
}

// _TestSemaphore: values beyond SEM_VALUE_MAX (INT_MAX on Linux) are refused, as Python's are.
#[test]
fn semaphore_value_limits() {
    assert!(Semaphore::anonymous(u32::MAX).is_err());
    let max = Semaphore::anonymous(i32::MAX as u32).unwrap();
    assert_eq!(max.value(), i32::MAX as u32);
    assert!(max.release().is_err(), "release past SEM_VALUE_MAX");
    assert_eq!(max.value(), i32::MAX as u32);
    let zero = BoundedSemaphore::anonymous(0).unwrap();
    assert!(!zero.try_acquire());
    assert_eq!(zero.release(), Err(ReleaseError::AboveBound));
}

// _TestSemaphore.test_timeout: acquire with a timeout on an empty semaphore returns False.
#[test]
fn semaphore_acquire_timeout() {
    let sem = Semaphore::anonymous(0).unwrap();
    assert!(!sem.acquire_timeout(Duration::ZERO));
    assert!(!sem.acquire_timeout(SHORT));
    assert!(sem.permit_timeout(SHORT).is_none());
    sem.release().unwrap();
    assert!(sem.acquire_timeout(SHORT));
    assert_eq!(sem.value(), 0);
}

// _TestSemaphore.test_semaphore: a release in another process wakes a blocked acquirer.
#[test]
fn semaphore_release_wakes_other_process() {
    let sem = Semaphore::anonymous(0).unwrap();
    let c = spawn(|| i32::from(!sem.acquire_timeout(WATCHDOG)));
    // As in tests/processes.rs; a release that comes before the wait checks
    // the same contract, only less strictly.
    common::wait_until_asleep(c.pid());
    sem.release().unwrap();
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(sem.value(), 0);
}

// -------------------------------------------------------------- _TestCondition

/// Scratch words of the condition tests.
const WAITING: usize = 0;
const WOKEN: usize = 1;
const TOKENS: usize = 2;

/// A condition waiter: registers under the lock, then waits for a token.
fn token_waiter(cond: &Condition, mem: &Scratch) -> i32 {
    let Ok(g) = cond.lock() else { return 1 };
    mem.write(WAITING, mem.read(WAITING) + 1);
    let Ok(g) = cond.wait_while(g, || mem.read(TOKENS) == 0) else {
        return 2;
    };
    mem.write(TOKENS, mem.read(TOKENS) - 1);
    mem.write(WOKEN, mem.read(WOKEN) + 1);
    drop(g);
    0
}

/// Blocks until `n` waiters registered (so all are inside their wait).
fn all_waiting(cond: &Condition, mem: &Scratch, n: u64) {
    until("all waiters registered", || {
        let _g = cond.lock().unwrap();
        mem.read(WAITING) == n
    });
}

// _TestCondition.test_notify: notify wakes one waiter in another process at a time.
#[test]
fn condition_notify_one_at_a_time() {
    let cond = Condition::anonymous().unwrap();
    let mem = Scratch::new(4);
    let children: Vec<_> = (0..2)
        .map(|_| spawn(|| token_waiter(&cond, &mem)))
        .collect();
    all_waiting(&cond, &mem, 2);
    {
        let _g = cond.lock().unwrap();
        assert_eq!(mem.read(WOKEN), 0);
        mem.write(TOKENS, 1);
        cond.notify_one().unwrap();
    }
    until("one woken", || {
        let _g = cond.lock().unwrap();
        mem.read(WOKEN) == 1
    });
    {
        let _g = cond.lock().unwrap();
        // Only one token: the other waiter is still waiting.
        assert_eq!(mem.read(WOKEN), 1);
        mem.write(TOKENS, 1);
        cond.notify_one().unwrap();
    }
    join_all_ok(children);
    assert_eq!(mem.read(WOKEN), 2);
    assert_eq!(mem.read(TOKENS), 0);
}

// _TestCondition.test_notify_all: every waiter in every process wakes.
#[test]
fn condition_notify_all() {
    const N: u64 = 4;
    let cond = Condition::anonymous().unwrap();
    let mem = Scratch::new(4);
    let children: Vec<_> = (0..N)
        .map(|_| spawn(|| token_waiter(&cond, &mem)))
        .collect();
    all_waiting(&cond, &mem, N);
    {
        let _g = cond.lock().unwrap();
        mem.write(TOKENS, N);
        cond.notify_all().unwrap();
    }
    join_all_ok(children);
    assert_eq!(mem.read(WOKEN), N);
}

// _TestCondition.test_notify_n: notify(n) releases n waiters; the rest follow on notify_all.
#[test]
fn condition_notify_n() {
    const N: u64 = 5;
    let cond = Condition::anonymous().unwrap();
    let mem = Scratch::new(4);
    let children: Vec<_> = (0..N)
        .map(|_| spawn(|| token_waiter(&cond, &mem)))
        .collect();
    all_waiting(&cond, &mem, N);
    {
        let _g = cond.lock().unwrap();
        mem.write(TOKENS, 2);
        cond.notify(2).unwrap();
    }
    until("two woken", || {
        let _g = cond.lock().unwrap();
        mem.read(WOKEN) == 2
    });
    {
        let _g = cond.lock().unwrap();
        assert_eq!(mem.read(WOKEN), 2, "only two tokens were given");
        mem.write(TOKENS, 3);
        cond.notify(3).unwrap();
    }
    join_all_ok(children);
    assert_eq!(mem.read(WOKEN), N);
}

// _TestCondition.test_timeout: wait(timeout) with nobody notifying returns timed out.
#[test]
fn condition_wait_timeout_returns_timed_out() {
    let cond = Condition::anonymous().unwrap();
    let g = cond.lock().unwrap();
    let (g, timed_out) = cond.wait_timeout(g, SHORT).unwrap();
    assert!(timed_out);
    // The lock is held again after the wait.
    let c = spawn(|| i32::from(cond.try_lock().is_ok()));
    assert_eq!(join(c), ExitStatus::Code(0));
    drop(g);
}

// _TestCondition.test_waitfor: wait_for(predicate) returns once another process makes it true.
#[test]
fn condition_wait_for_predicate_across_processes() {
    const STEPS: u64 = 5;
    let cond = Condition::anonymous().unwrap();
    let mem = Scratch::new(4);
    let c = spawn(|| {
        let Ok(g) = cond.lock() else { return 1 };
        let Ok(g) = cond.wait_while(g, || mem.read(0) != STEPS) else {
            return 2;
        };
        let ok = mem.read(0) == STEPS;
        drop(g);
        i32::from(!ok) * 3
    });
    for _ in 0..STEPS {
        let _g = cond.lock().unwrap();
        mem.write(0, mem.read(0) + 1);
        cond.notify_all().unwrap();
    }
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestCondition.test_waitfor_timeout: wait_for with a timeout and a false predicate times out.
#[test]
fn condition_wait_for_timeout() {
    let cond = Condition::anonymous().unwrap();
    let g = cond.lock().unwrap();
    let mut calls = 0;
    let (g, timed_out) = cond
        .wait_while_timeout(g, SHORT, || {
            calls += 1;
            true
        })
        .unwrap();
    assert!(timed_out);
    assert!(calls >= 2, "the predicate is checked again after the wait");
    // A predicate already false returns at once, not timed out.
    let (g, timed_out) = cond.wait_while_timeout(g, SHORT, || false).unwrap();
    assert!(!timed_out);
    drop(g);
}

// _TestCondition: wait without holding the condition's lock is an error (Python RuntimeError).
#[test]
fn condition_wait_with_another_lock_is_refused() {
    let cond = Condition::anonymous().unwrap();
    let other = Condition::anonymous().unwrap();
    let g = other.lock().unwrap();
    assert!(matches!(
        cond.wait_timeout(g, SHORT),
        Err(LockError::WrongLock(_))
    ));
}

// _TestCondition: notify without holding the lock is an error (Python RuntimeError).
#[test]
fn condition_notify_without_lock_is_refused() {
    let cond = Condition::anonymous().unwrap();
    assert_eq!(cond.notify_one(), Err(ReleaseError::NotOwner));
    assert_eq!(cond.notify_all(), Err(ReleaseError::NotOwner));
    // Held by another process: still not ours.
    let held = Event::anonymous().unwrap();
    let release = Event::anonymous().unwrap();
    let c = spawn(|| {
        let Ok(g) = cond.lock() else { return 1 };
        held.set();
        let ok = release.wait_timeout(WATCHDOG);
        drop(g);
        i32::from(!ok) * 2
    });
    assert!(held.wait_timeout(WATCHDOG));
    assert_eq!(cond.notify(1), Err(ReleaseError::NotOwner));
    release.set();
    assert_eq!(join(c), ExitStatus::Code(0));
    let _g = cond.lock().unwrap();
    cond.notify(1).unwrap();
}

// ------------------------------------------------------------------ _TestEvent

// _TestEvent.test_event: is_set/set/clear and wait's return value.
#[test]
fn event_set_clear_wait() {
    let ev = Event::anonymous().unwrap();
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(Duration::ZERO));
    assert!(!ev.wait_timeout(SHORT));
    ev.set();
    assert!(ev.is_set());
    assert!(ev.wait_timeout(Duration::ZERO));
    assert!(ev.wait_timeout(SHORT));
    ev.wait();
    // set again is harmless.
    ev.set();
    assert!(ev.is_set());
    ev.clear();
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(SHORT));
    // A child sets it; the parent's wait returns True.
    let c = spawn(|| {
        ev.set();
        0
    });
    assert!(ev.wait_timeout(WATCHDOG));
    assert!(ev.is_set());
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestEvent.test_event: a waiter blocked in another process returns True when set.
#[test]
fn event_wakes_blocked_waiter_in_other_process() {
    let ev = Event::anonymous().unwrap();
    let c = spawn(|| i32::from(!ev.wait_timeout(WATCHDOG)));
    common::wait_until_asleep(c.pid());
    ev.set();
    assert_eq!(join(c), ExitStatus::Code(0));
}

// ---------------------------------------------------------------- _TestBarrier

// _TestBarrier.test_barrier / test_wait_return: indices 0..n, one each, exactly one leader.
#[test]
fn barrier_indices_distinct_and_one_leader() {
    const N: usize = 4;
    const ROUNDS: usize = 5;
    let b = Barrier::anonymous(N as u32).unwrap();
    assert_eq!(b.parties(), N as u32);
    assert_eq!(b.n_waiting(), 0);
    assert!(!b.is_broken());
    let mem = Scratch::new(N * ROUNDS + 1);
    let children: Vec<_> = (0..N)
        .map(|me| {
            let (b, mem) = (&b, &mem);
            spawn(move || {
                for r in 0..ROUNDS {
                    let Ok(w) = b.wait_timeout(WATCHDOG) else {
                        return 1;
                    };
                    if w.index() >= N as u32 {
                        return 2;
                    }
                    if w.is_leader() {
                        mem.atomic(N * ROUNDS).fetch_add(1, Ordering::SeqCst);
                    }
                    // Slot r*N + me records this party's index + 1.
                    mem.atomic(r * N + me)
                        .store(u64::from(w.index()) + 1, Ordering::SeqCst);
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    for r in 0..ROUNDS {
        let got: HashSet<u64> = (0..N)
            .map(|me| mem.atomic(r * N + me).load(Ordering::SeqCst))
            .collect();
        let want: HashSet<u64> = (1..=N as u64).collect();
        assert_eq!(got, want, "round {r}");
    }
    assert_eq!(mem.atomic(N * ROUNDS).load(Ordering::SeqCst), ROUNDS as u64);
    assert_eq!(b.n_waiting(), 0);
    assert!(!b.is_broken());
}

// _TestBarrier.test_action: the action runs exactly once per generation (here: by the leader).
#[test]
fn barrier_action_by_leader_runs_once_before_next_generation() {
    const N: usize = 3;
    let b = Barrier::anonymous(N as u32).unwrap();
    let runs = Counter::anonymous(0).unwrap();
    let children: Vec<_> = (0..N)
        .map(|_| {
            spawn(|| {
                let Ok(w) = b.wait_timeout(WATCHDOG) else {
                    return 1;
                };
                if w.is_leader() {
                    runs.fetch_add(1);
                }
                // Second generation: the action of the first ran before anyone got here
                // from the leader, so after this wait every party sees it.
                if b.wait_timeout(WATCHDOG).is_err() {
                    return 2;
                }
                i32::from(runs.load() != 1) * 3
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(runs.load(), 1);
}

// _TestBarrier.test_n_waiting: n_waiting counts parties blocked in wait.
#[test]
fn barrier_n_waiting() {
    let b = Barrier::anonymous(3).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| spawn(|| i32::from(b.wait_timeout(WATCHDOG).is_err())))
        .collect();
    until("two waiting", || b.n_waiting() == 2);
    assert!(!b.is_broken());
    let w = b.wait_timeout(WATCHDOG).unwrap();
    assert!(w.index() < 3);
    join_all_ok(children);
    assert_eq!(b.n_waiting(), 0);
}

// _TestBarrier.test_abort: abort breaks waiters and later waits until reset.
#[test]
fn barrier_abort_breaks_waiters() {
    let b = Barrier::anonymous(3).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            spawn(|| match b.wait_timeout(WATCHDOG) {
                Err(BarrierError::Broken) => 0,
                Ok(_) => 1,
                Err(BarrierError::Timeout) => 2,
                Err(_) => 3,
            })
        })
        .collect();
    until("two waiting", || b.n_waiting() == 2);
    b.abort();
    join_all_ok(children);
    assert!(b.is_broken());
    // Python: n_waiting is 0 while broken (it was 2 here before the fix).
    assert_eq!(b.n_waiting(), 0);
    // Python: later waits raise BrokenBarrierError at once.
    assert_eq!(b.wait_timeout(WATCHDOG), Err(BarrierError::Broken));
    assert_eq!(b.wait(), Err(BarrierError::Broken));
    b.reset();
    assert!(!b.is_broken());
    assert_eq!(b.n_waiting(), 0);
}

// _TestBarrier.test_reset: reset while parties wait breaks them; afterwards the barrier works.
#[test]
fn barrier_reset_breaks_waiters_then_works() {
    let b = Barrier::anonymous(2).unwrap();
    let c = spawn(|| match b.wait_timeout(WATCHDOG) {
        Err(BarrierError::Broken) => 0,
        _ => 1,
    });
    until("one waiting", || b.n_waiting() == 1);
    b.reset();
    assert_eq!(join(c), ExitStatus::Code(0));
    assert!(!b.is_broken(), "reset leaves the barrier usable");
    let c = spawn(|| i32::from(b.wait_timeout(WATCHDOG).is_err()));
    let w = b.wait_timeout(WATCHDOG).unwrap();
    assert!(w.index() < 2);
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestBarrier.test_timeout: a wait that times out breaks the barrier for every party.
#[test]
fn barrier_timeout_breaks_everyone() {
    let b = Barrier::anonymous(3).unwrap();
    let c = spawn(|| match b.wait_timeout(WATCHDOG) {
        Err(BarrierError::Broken) => 0,
        _ => 1,
    });
    until("one waiting", || b.n_waiting() == 1);
    assert_eq!(b.wait_timeout(SHORT), Err(BarrierError::Timeout));
    assert_eq!(join(c), ExitStatus::Code(0));
    assert!(b.is_broken());
    assert_eq!(b.n_waiting(), 0, "nobody waits at a broken barrier");
    assert_eq!(b.wait_timeout(SHORT), Err(BarrierError::Broken));
    b.reset();
    assert!(!b.is_broken());
}

// _TestBarrier.test_abort_and_reset: one party aborts, the others break; after a reset
// (done between two waits of a second barrier) everyone passes again.
#[test]
fn barrier_abort_and_reset() {
    const N: u32 = 5;
    let b = Barrier::anonymous(N).unwrap();
    let b2 = Barrier::anonymous(N).unwrap();
    let mem = Scratch::new(3);
    let children: Vec<_> = (0..N)
        .map(|_| {
            spawn(|| {
                match b.wait_timeout(WATCHDOG) {
                    Ok(w) if w.index() == N / 2 => b.abort(),
                    Ok(_) => match b.wait_timeout(WATCHDOG) {
                        Ok(_) => {
                            mem.atomic(0).fetch_add(1, Ordering::SeqCst);
                        }
                        Err(BarrierError::Broken) => {
                            mem.atomic(1).fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => return 1,
                    },
                    Err(_) => return 2,
                }
                let Ok(w) = b2.wait_timeout(WATCHDOG) else {
                    return 3;
                };
                if w.index() == N / 2 {
                    b.reset();
                }
                if b2.wait_timeout(WATCHDOG).is_err() {
                    return 4;
                }
                if b.wait_timeout(WATCHDOG).is_err() {
                    return 5;
                }
                mem.atomic(2).fetch_add(1, Ordering::SeqCst);
                0
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(mem.atomic(0).load(Ordering::SeqCst), 0);
    assert_eq!(mem.atomic(1).load(Ordering::SeqCst), u64::from(N - 1));
    assert_eq!(mem.atomic(2).load(Ordering::SeqCst), u64::from(N));
}

// _TestBarrier.test_thousand: many generations in a row, each with one leader.
#[test]
fn barrier_thousand_passes() {
    const N: usize = 3;
    const PASSES: u64 = 1000;
    let b = Barrier::anonymous(N as u32).unwrap();
    let leaders = Counter::anonymous(0).unwrap();
    let children: Vec<_> = (0..N)
        .map(|_| {
            spawn(|| {
                for _ in 0..PASSES {
                    match b.wait_timeout(WATCHDOG) {
                        Ok(w) if w.is_leader() => {
                            leaders.fetch_add(1);
                        }
                        Ok(_) => {}
                        Err(_) => return 1,
                    }
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(leaders.load(), PASSES as i64);
}

// _TestBarrier.test_single_thread: a barrier of one party never blocks.
#[test]
fn barrier_single_party() {
    let b = Barrier::anonymous(1).unwrap();
    for _ in 0..5 {
        let w = b.wait().unwrap();
        assert_eq!(w.index(), 0);
        assert!(w.is_leader());
    }
    // Python: Barrier(0) raises ValueError.
    assert!(Barrier::anonymous(0).is_err());
}

// ------------------------------------------------------------------ _TestValue

// _TestValue.test_value: initial values are seen by the child; the child's writes by the parent.
#[test]
fn value_initial_and_written_by_child() {
    let i = Value::<i32>::anonymous(25).unwrap();
    let d = Value::<f64>::anonymous(1.25).unwrap();
    let h = Value::<i64>::anonymous(-17).unwrap();
    let c = spawn(|| {
        if i.load() != Ok(25) || d.load() != Ok(1.25) || h.load() != Ok(-17) {
            return 1;
        }
        i.store(i.load().unwrap() * 2).unwrap();
        d.store(d.load().unwrap() * 2.0).unwrap();
        h.store(h.load().unwrap() * 2).unwrap();
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(i.load(), Ok(50));
    assert_eq!(d.load(), Ok(2.5));
    assert_eq!(h.load(), Ok(-34));
}

// _TestValue.test_getobj_getlock: increments under the value's lock from several processes.
#[test]
fn value_increments_under_lock_from_processes() {
    const PROCS: usize = 4;
    const ROUNDS: u64 = 500;
    let v = Value::<u64>::anonymous(0).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            spawn(|| {
                for _ in 0..ROUNDS {
                    if v.with_lock(|x| *x += 1).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(v.load(), Ok(PROCS as u64 * ROUNDS));
}

// _TestValue.test_getobj_getlock: an exception inside `with lock:` releases the lock
// (here the value is also left unchanged: documented on Value::with_lock).
#[test]
fn value_with_lock_panic_releases_the_lock() {
    let v = Value::<u64>::anonymous(1).unwrap();
    let arr = Array::<u64>::from_slice(&[1, 2]).unwrap();
    // The panics happen in a child, so no hook runs in this test process
    // while other tests fork.
    let c = spawn(|| {
        std::panic::set_hook(Box::new(|_| {}));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            v.with_lock(|x| {
                *x = 99;
                panic!("inside with_lock")
            })
        }));
        if r.is_ok() {
            return 1;
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            arr.with_lock(|a| {
                a[0] = 99;
                panic!("inside with_lock")
            })
        }));
        if r.is_ok() {
            return 2;
        }
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(v.load_timeout(WATCHDOG), Ok(1));
    assert_eq!(v.with_lock(|x| *x += 1), Ok(()));
    assert_eq!(v.load(), Ok(2));
    assert_eq!(arr.to_vec().unwrap(), vec![1, 2]);
    assert_eq!(arr.with_lock(|a| a[1] = 7), Ok(()));
    assert_eq!(arr.get_timeout(1, WATCHDOG), Ok(7));
}

// _TestValue.test_rawvalue analogue: Counter is the lock-free integer cell.
#[test]
fn counter_increments_from_processes() {
    let n = Counter::anonymous(0).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            spawn(|| {
                for _ in 0..1000 {
                    n.fetch_add(1);
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(n.load(), 4000);
}

// ------------------------------------------------------------------ _TestArray

// _TestArray.test_array: the child sees the values and its changes are seen.
#[test]
fn array_from_slice_shared_with_child() {
    let seq = [680i32, 626, 934, 821, 150, 233, 548, 982, 714, 831];
    let arr = Array::from_slice(&seq).unwrap();
    assert_eq!(arr.len(), seq.len());
    assert!(!arr.is_empty());
    assert_eq!(arr.to_vec().unwrap(), seq);
    assert_eq!(arr.get(3), Ok(821));
    // Python: arr[len] raises IndexError.
    assert!(arr.get(seq.len()).is_err());
    assert!(arr.set(seq.len(), 0).is_err());
    let c = spawn(|| {
        // The "f" of the CPython test: cumulative sums, in place.
        for i in 1..arr.len() {
            let prev = arr.get(i - 1).unwrap();
            let cur = arr.get(i).unwrap();
            arr.set(i, prev + cur).unwrap();
        }
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    let mut want = seq;
    for i in 1..want.len() {
        want[i] += want[i - 1];
    }
    assert_eq!(arr.to_vec().unwrap(), want);
}

// _TestArray.test_array_from_size: a new array is zeroed.
#[test]
fn array_from_size_is_zeroed() {
    let arr = Array::<u64>::anonymous(10).unwrap();
    assert_eq!(arr.len(), 10);
    assert_eq!(arr.to_vec().unwrap(), vec![0; 10]);
}

// _TestArray.test_getobj_getlock: with_lock over the whole array from several processes.
#[test]
fn array_increments_under_lock_from_processes() {
    const PROCS: usize = 3;
    const ROUNDS: u64 = 300;
    let arr = Array::<u64>::anonymous(4).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            spawn(|| {
                for _ in 0..ROUNDS {
                    let r = arr.with_lock(|a| {
                        for x in a.iter_mut() {
                            *x += 1;
                        }
                    });
                    if r.is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(arr.to_vec().unwrap(), vec![PROCS as u64 * ROUNDS; 4]);
    // Atomic element ops too.
    assert_eq!(arr.fetch_add(0, 5), Ok(PROCS as u64 * ROUNDS));
    assert_eq!(arr.get(0), Ok(PROCS as u64 * ROUNDS + 5));
}

// Huge timeouts (threading.TIMEOUT_MAX-like) on every primitive: no overflow panic.
#[test]
fn huge_timeouts_do_not_overflow() {
    let big = Duration::MAX;
    let ev = Event::anonymous().unwrap();
    ev.set();
    assert!(ev.wait_timeout(big));
    let sem = Semaphore::anonymous(1).unwrap();
    assert!(sem.acquire_timeout(big));
    let lock = Lock::anonymous().unwrap();
    assert!(lock.lock_timeout(big).is_ok());
    let rlock = RLock::anonymous().unwrap();
    rlock.acquire_timeout(big).unwrap();
    rlock.release().unwrap();
    let cond = Condition::anonymous().unwrap();
    let g = cond.lock_timeout(big).unwrap();
    let (g, timed_out) = cond.wait_while_timeout(g, big, || false).unwrap();
    assert!(!timed_out);
    drop(g);
    let b = Barrier::anonymous(1).unwrap();
    assert!(b.wait_timeout(big).is_ok());
    let v = Value::<u32>::anonymous(4).unwrap();
    assert_eq!(v.load_timeout(big), Ok(4));
    let q = multiproc::Queue::<u8>::anonymous(1).unwrap();
    q.put_timeout(1, big).unwrap();
    assert_eq!(q.get_timeout(big), Ok(1));
    let c = spawn(|| 0);
    assert_eq!(c.join_timeout(big).unwrap(), Some(ExitStatus::Code(0)));
}
