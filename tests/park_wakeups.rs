//! How often the wait layer wakes: an idle waiter at most ~10 times a second,
//! and one release or `notify(1)` wakes at most one sleeper.
//!
//! The counts are process-wide (`park_slices_expired`, `park_woken`), so this
//! binary holds only these tests and runs them one at a time under a lock.
//! Every bound is an upper bound that load can only make easier to meet: a
//! busy machine delays a slice's end or a wake-up, it never adds one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report; std atomics for test control"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multiproc::__private::{park_slices_expired, park_woken};
use multiproc::{Condition, Event, Pipe, Queue, Semaphore, WaitPolicy};

static SERIAL: Mutex<()> = Mutex::new(());

const WATCHDOG: Duration = Duration::from_secs(60);

/// Slices double from 10 ms to 100 ms: 10 + 20 + 40 + 80 ms in the first four,
/// then one per 100 ms. Over `elapsed` at most this many can end, plus one for
/// the slice in progress at either end.
fn max_slices(elapsed: Duration) -> u64 {
    let ms = u64::try_from(elapsed.as_millis()).unwrap();
    4 + ms.saturating_sub(150) / 100 + 2
}

#[test]
fn an_idle_waiter_wakes_at_most_ten_times_a_second() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for policy in [WaitPolicy::SpinThenPark, WaitPolicy::Park] {
        let ev = Event::anonymous().unwrap().with_wait_policy(policy);
        let before = park_slices_expired();
        let start = Instant::now();
        assert!(!ev.wait_timeout(Duration::from_millis(1_500)));
        let elapsed = start.elapsed();
        let slices = park_slices_expired() - before;
        eprintln!("{policy:?}: {slices} slice wake-ups in {elapsed:?}");
        // A fixed 20 ms slice (the old loop) would give ~75 here.
        assert!(
            slices <= max_slices(elapsed),
            "{policy:?}: {slices} slice wake-ups in {elapsed:?}"
        );
    }
}

#[test]
fn an_idle_queue_getter_and_pipe_receiver_wake_at_most_ten_times_a_second() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for policy in [WaitPolicy::SpinThenPark, WaitPolicy::Park] {
        // A receiver with a live sender elsewhere (this process): nothing is
        // ever put, so every wake-up is a slice ending.
        let (tx, rx) = Queue::<u64>::anonymous(4).unwrap().split();
        let rx = rx.with_wait_policy(policy);
        assert_eq!(rx.wait_policy(), policy);
        let before = park_slices_expired();
        let start = Instant::now();
        assert_eq!(
            rx.get_timeout(Duration::from_millis(1_000)),
            Err(multiproc::GetError::Timeout)
        );
        let elapsed = start.elapsed();
        let slices = park_slices_expired() - before;
        eprintln!("queue {policy:?}: {slices} slice wake-ups in {elapsed:?}");
        // The old queue loop (a fixed 20 ms slice) would give ~50 here.
        assert!(
            slices <= max_slices(elapsed),
            "queue {policy:?}: {slices} slice wake-ups in {elapsed:?}"
        );
        drop(tx);

        let (a, b) = Pipe::anonymous(4, 8).unwrap();
        let b = b.with_wait_policy(policy);
        let before = park_slices_expired();
        let start = Instant::now();
        assert!(b.recv_timeout(Duration::from_millis(1_000)).is_err());
        let elapsed = start.elapsed();
        let slices = park_slices_expired() - before;
        eprintln!("pipe {policy:?}: {slices} slice wake-ups in {elapsed:?}");
        assert!(
            slices <= max_slices(elapsed),
            "pipe {policy:?}: {slices} slice wake-ups in {elapsed:?}"
        );
        drop(a);
    }
}

/// Blocks until thread `tid` of this process is asleep (state S).
fn wait_until_asleep(tid: i32) {
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        let wchan =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")).unwrap_or_default();
        if state == "S" && (wchan.contains("futex") || wchan.is_empty() || wchan == "0") {
            return;
        }
        assert!(start.elapsed() < WATCHDOG, "thread {tid} never slept");
        std::thread::yield_now();
    }
}

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

#[test]
fn one_release_wakes_at_most_one_sleeper() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 4;
    let sem = Arc::new(
        Semaphore::anonymous(0)
            .unwrap()
            .with_wait_policy(WaitPolicy::Park),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let (sem, tx) = (sem.clone(), tx.clone());
            std::thread::spawn(move || {
                tx.send(tid()).unwrap();
                sem.acquire_timeout(WATCHDOG)
            })
        })
        .collect();
    for _ in 0..N {
        wait_until_asleep(rx.recv().unwrap());
    }
    for i in 1..=N as u64 {
        let before = park_woken();
        sem.release().unwrap();
        let woken = park_woken() - before;
        assert!(woken <= 1, "release {i} woke {woken} sleepers");
    }
    for t in threads {
        assert!(t.join().unwrap());
    }
    assert_eq!(sem.value(), 0);
}

#[test]
fn notify_one_wakes_at_most_one_sleeper() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 4;
    let cond = Arc::new(
        Condition::anonymous()
            .unwrap()
            .with_wait_policy(WaitPolicy::Park),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let (cond, tx) = (cond.clone(), tx.clone());
            std::thread::spawn(move || {
                let g = cond.lock().unwrap();
                tx.send(tid()).unwrap();
                let (g, timed_out) = cond.wait_timeout(g, WATCHDOG).unwrap();
                drop(g);
                !timed_out
            })
        })
        .collect();
    for _ in 0..N {
        wait_until_asleep(rx.recv().unwrap());
    }
    // Each notify(1) under the lock: its wake-up count is taken before the
    // woken waiter can re-take the lock and pass anything on.
    let mut woken = 0;
    for _ in 0..N {
        let g = cond.lock().unwrap();
        let before = park_woken();
        cond.notify(1).unwrap();
        let w = park_woken() - before;
        drop(g);
        assert!(w <= 1, "notify(1) woke {w} sleepers");
        woken += w;
    }
    for t in threads {
        assert!(t.join().unwrap(), "a waiter was not notified");
    }
    assert!(woken <= N as u64);
}

#[test]
fn a_lock_waiter_sleeps_in_slices_and_one_unlock_wakes_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A timed wait on a held lock sleeps in the wait layer's slices: at
    // least the last one ends by its timeout, and no more end than an idle
    // waiter's bound allows.
    let lock = Arc::new(multiproc::Lock::anonymous().unwrap());
    let _held = lock.lock().unwrap();
    let before = park_slices_expired();
    let start = Instant::now();
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || lock.lock_timeout(Duration::from_millis(600)).is_err())
    };
    assert!(
        waiter.join().unwrap(),
        "the lock is held: the wait times out"
    );
    let elapsed = start.elapsed();
    let slices = park_slices_expired() - before;
    assert!(
        (1..=max_slices(elapsed)).contains(&slices),
        "{slices} slice wake-ups in {elapsed:?}"
    );

    // N sleepers on the held lock; each unlock wakes exactly one of them
    // (the sleeper bit is set, so a wake-up is owed, and only one).
    const N: usize = 4;
    let lock = Arc::new(
        multiproc::Lock::anonymous()
            .unwrap()
            .with_wait_policy(WaitPolicy::Park),
    );
    let mut guard = Some(lock.lock().unwrap());
    // Each thread sends its TID, then says it is past the send: the send may
    // itself sleep (on the channel's waker lock, while this thread receives),
    // and that sleep must not pass for the lock's. After the flag, the only
    // sleep left before the lock is taken is the lock's own.
    let sent: Arc<[AtomicBool; N]> = Arc::new(std::array::from_fn(|_| AtomicBool::new(false)));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut gates = Vec::new();
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let (lock, tid_tx, got_tx) = (lock.clone(), tid_tx.clone(), got_tx.clone());
            let (done_tx, sent) = (done_tx.clone(), sent.clone());
            let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
            gates.push(gate_tx);
            std::thread::spawn(move || {
                tid_tx.send((i, tid())).unwrap();
                sent[i].store(true, Ordering::SeqCst);
                let g = lock.lock_timeout(WATCHDOG).unwrap();
                got_tx.send(i).unwrap();
                gate_rx.recv_timeout(WATCHDOG).unwrap();
                drop(g);
                // The wake-up count is taken after the unlock returned.
                done_tx.send(()).unwrap();
                // Stay alive until every release was measured.
                gate_rx.recv_timeout(WATCHDOG).unwrap();
            })
        })
        .collect();
    for _ in 0..N {
        let (i, tid) = tid_rx.recv().unwrap();
        let start = Instant::now();
        while !sent[i].load(Ordering::SeqCst) {
            assert!(start.elapsed() < WATCHDOG, "thread {i} never sent");
            std::thread::yield_now();
        }
        wait_until_asleep(tid);
    }
    let mut holders: Vec<usize> = Vec::new();
    for i in 0..N {
        let before = park_woken();
        match (guard.take(), holders.last()) {
            (Some(g), _) => drop(g),
            // Let the current holder go: its unlock is the one measured.
            (None, Some(&h)) => {
                gates[h].send(()).unwrap();
                done_rx.recv_timeout(WATCHDOG).unwrap();
            }
            (None, None) => unreachable!("main's guard is the first release"),
        }
        let holder = got_rx.recv_timeout(WATCHDOG).unwrap();
        let woken = park_woken() - before;
        // Each unlock found sleepers (all but the holders are asleep or on
        // their way): it woke one, never more.
        assert!(woken <= 1, "unlock {i} woke {woken} sleepers");
        if i == 0 {
            assert_eq!(woken, 1, "the first unlock found all asleep: it woke one");
        }
        holders.push(holder);
    }
    gates[holders[N - 1]].send(()).unwrap();
    for gate in &gates {
        gate.send(()).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    holders.sort_unstable();
    assert_eq!(
        holders,
        (0..N).collect::<Vec<_>>(),
        "every sleeper got the lock once"
    );
}
