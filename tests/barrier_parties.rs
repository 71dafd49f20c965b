//! Which deaths break a `Barrier`, and how a waiter that was descheduled
//! learns how its generation ended (findings of a hostile user's port of
//! CPython's `_TestBarrier`, 2026-12-03).
//!
//! Every blocking call runs under a watchdog; "asleep" and "stopped" are the
//! kernel's words (`/proc`), never a sleep of ours. No timing is asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use common::{WATCHDOG, join, kill, spawn, wait_until_blocked_in};
use multiproc::__private::park_slices_expired;
use multiproc::process::ExitStatus;
use multiproc::{Barrier, BarrierError};

/// One test at a time: the slice counter is per process, and a child forked
/// by one test would inherit the other's handles.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `pid`'s state in `/proc` is `state` (`T`: stopped).
fn wait_for_state(pid: u32, state: &str) {
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let now = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if now == state {
            return;
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "watchdog: {pid} never reached state {state}"
        );
        thread::yield_now();
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on our own child; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// After `reset`, a process that waited before it and died breaks nothing:
/// the next generation's waiter, asleep through at least two expired sleep
/// slices (so its liveness probe ran), is released normally. Before the fix
/// the barrier remembered every process that ever waited and broke every
/// later wait that slept past one slice, reset or not.
#[test]
fn after_reset_a_dead_party_of_an_earlier_generation_breaks_nothing() {
    let _serial = serial();
    let b = Barrier::anonymous(2).unwrap();
    let bc = b.clone();
    let child = spawn(move || {
        if bc.wait().is_err() {
            return 2;
        }
        loop {
            // SAFETY: pause(2) has no preconditions; the parent kills us.
            unsafe { libc::pause() };
        }
    });
    b.wait().expect("generation 0, with the child");
    kill(child);
    b.reset();

    let (mine, theirs) = next_generation_after_a_probe(&b);
    let (mine, theirs) = (
        mine.expect("main, generation 1"),
        theirs.expect("thread, generation 1"),
    );
    assert!(mine.is_leader() != theirs.is_leader(), "exactly one leader");
    assert!(!b.is_broken());
}

/// Runs a generation of the two-party `b` with this process alone: a thread
/// arrives first and sleeps through two expired slices (so its liveness probe
/// ran at least once and it went back to sleep), then this thread arrives.
/// Returns both outcomes (this thread's first).
fn next_generation_after_a_probe(
    b: &Barrier,
) -> (
    Result<multiproc::BarrierWaitResult, BarrierError>,
    Result<multiproc::BarrierWaitResult, BarrierError>,
) {
    let (tx, rx) = mpsc::channel();
    let b2 = b.clone();
    let before = park_slices_expired();
    thread::spawn(move || {
        let _ = tx.send(b2.wait());
    });
    let start = Instant::now();
    while park_slices_expired() < before + 2 {
        if let Ok(early) = rx.try_recv() {
            panic!("the waiter left before its generation completed: {early:?}");
        }
        assert!(start.elapsed() < WATCHDOG, "watchdog: no slice expired");
        thread::yield_now();
    }
    let mine = b.wait();
    let theirs = rx.recv_timeout(WATCHDOG).expect("watchdog: the waiter");
    (mine, theirs)
}

/// A party that sleeps through a `reset` *and* a whole later generation
/// (stopped with SIGSTOP here; a loaded machine can deschedule it as long)
/// still reports `Broken`, as Python's waiters do when reset. Before the fix
/// the completed generation erased the reset and the party returned `Ok`,
/// so three parties "passed" a two-party barrier.
#[test]
fn a_waiter_descheduled_through_a_reset_and_a_generation_reports_broken() {
    let _serial = serial();
    let b = Barrier::anonymous(2).unwrap();
    let bc = b.clone();
    let child = spawn(move || match bc.wait() {
        Err(BarrierError::Broken) => 0,
        Ok(_) => 1,
        Err(_) => 2,
    });
    let pid = child.pid();
    wait_until_blocked_in(b.region(), pid);
    signal(pid, libc::SIGSTOP);
    wait_for_state(pid, "T");

    b.reset();
    let b2 = b.clone();
    let t = thread::spawn(move || b2.wait());
    let mine = b.wait().expect("the generation after the reset");
    let theirs = t.join().unwrap().expect("the generation after the reset");
    assert!(mine.is_leader() != theirs.is_leader());

    signal(pid, libc::SIGCONT);
    assert_eq!(
        join(child),
        ExitStatus::Code(0),
        "the stopped party must see Broken"
    );
}

/// A party that passes a generation and then ends its process with
/// `std::process::exit` (not through the crate's `fork`, which leaves its
/// regions before `_exit`) left normally: the next generation, filled by
/// others, completes. Before, `exit` skipped the leave, the party looked
/// killed, and the next generation broke for everyone once a waiter's probe
/// ran.
#[test]
fn a_party_that_exits_between_generations_breaks_nothing() {
    let _serial = serial();
    let b = Barrier::anonymous(2).unwrap();
    let bc = b.clone();
    let child = spawn(move || {
        let code = if bc.wait().is_ok() { 0 } else { 2 };
        std::process::exit(code)
    });
    b.wait().expect("generation 0, with the child");
    assert_eq!(join(child), ExitStatus::Code(0));

    let (mine, theirs) = next_generation_after_a_probe(&b);
    assert!(mine.is_ok() && theirs.is_ok(), "{mine:?} {theirs:?}");
    assert!(!b.is_broken());
}
