//! Real processes: every primitive across `fork`, with exact accounting.
//!
//! Children run only crate code and end with `_exit` (through
//! `multiproc::process::fork`); they report through exit codes and scratch
//! shared memory, never by printing. Every wait on a child is under a watchdog.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Scratch, join, join_all_ok, spawn};
use multiproc::{Barrier, BarrierError, Condition, Event, Lock, RLock, Semaphore};

#[test]
fn lock_protects_a_plain_counter_across_processes() {
    const PROCS: usize = 4;
    const ROUNDS: u64 = 5_000;
    let lock = Lock::anonymous().unwrap();
    let mem = Scratch::new(1);
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            spawn(|| {
                for _ in 0..ROUNDS {
                    let Ok(_g) = lock.lock() else { return 1 };
                    // A non-atomic read-modify-write: loses updates without the lock.
                    let v = mem.read(0);
                    std::hint::spin_loop();
                    mem.write(0, v + 1);
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(mem.read(0), PROCS as u64 * ROUNDS);
}

#[test]
fn rlock_is_reentrant_and_exclusive_across_processes() {
    const PROCS: usize = 3;
    const ROUNDS: u64 = 2_000;
    let lock = RLock::anonymous().unwrap();
    let mem = Scratch::new(1);
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            spawn(|| {
                for _ in 0..ROUNDS {
                    let Ok(_outer) = lock.lock() else { return 1 };
                    let Ok(_inner) = lock.lock() else { return 2 };
                    if lock.depth() != 2 {
                        return 3;
                    }
                    let v = mem.read(0);
                    mem.write(0, v + 1);
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(mem.read(0), PROCS as u64 * ROUNDS);
}

#[test]
fn event_releases_waiters_in_other_processes() {
    let go = Event::anonymous().unwrap();
    let mem = Scratch::new(1);
    let children: Vec<_> = (0..3)
        .map(|_| {
            spawn(|| {
                if !go.wait_timeout(common::WATCHDOG) {
                    return 1;
                }
                // The wait may only return once the flag is set.
                if !go.is_set() {
                    return 2;
                }
                mem.atomic(0).fetch_add(1, Ordering::SeqCst);
                0
            })
        })
        .collect();
    for c in &children {
        common::wait_until_asleep(c.pid());
    }
    assert_eq!(
        mem.atomic(0).load(Ordering::SeqCst),
        0,
        "a waiter passed before set"
    );
    go.set();
    join_all_ok(children);
    assert_eq!(mem.atomic(0).load(Ordering::SeqCst), 3);
}

/// A one-slot channel over a Condition: word 0 = full flag, word 1 = value,
/// word 2 = sum received, word 3 = count received, word 4 = done flag.
#[test]
fn condition_producer_consumer_across_processes() {
    const ITEMS: u64 = 2_000;
    let cond = Condition::anonymous().unwrap();
    let mem = Scratch::new(8);
    let consumer = || {
        loop {
            let Ok(g) = cond.lock() else { return 1 };
            let Ok(g) = cond.wait_while(g, || mem.read(0) == 0 && mem.read(4) == 0) else {
                return 2;
            };
            if mem.read(0) == 0 {
                drop(g);
                return 0; // done and drained
            }
            let v = mem.read(1);
            mem.write(0, 0);
            mem.write(2, mem.read(2) + v);
            mem.write(3, mem.read(3) + 1);
            if cond.notify_all().is_err() {
                return 3;
            }
            drop(g);
        }
    };
    let children = vec![spawn(consumer), spawn(consumer)];
    for v in 1..=ITEMS {
        let g = cond.lock().unwrap();
        let g = cond.wait_while(g, || mem.read(0) != 0).unwrap();
        mem.write(1, v);
        mem.write(0, 1);
        cond.notify_all().unwrap();
        drop(g);
    }
    {
        let g = cond.lock().unwrap();
        let _g = cond.wait_while(g, || mem.read(0) != 0).unwrap();
        mem.write(4, 1);
        cond.notify_all().unwrap();
    }
    join_all_ok(children);
    assert_eq!(mem.read(3), ITEMS, "every item received exactly once");
    assert_eq!(mem.read(2), ITEMS * (ITEMS + 1) / 2);
}

#[test]
fn barrier_synchronizes_generations_across_processes() {
    const PARTIES: usize = 4;
    const GENERATIONS: u64 = 6;
    let barrier = Barrier::anonymous(PARTIES as u32).unwrap();
    // Words 0..PARTIES: the generation each party has reached; PARTIES: leader count.
    let mem = Scratch::new(PARTIES + 1);
    let party = |me: usize| {
        for g in 1..=GENERATIONS {
            mem.atomic(me).store(g, Ordering::SeqCst);
            let Ok(r) = barrier.wait() else { return 1 };
            if r.is_leader() {
                mem.atomic(PARTIES).fetch_add(1, Ordering::SeqCst);
            }
            // Nobody may leave generation g before everyone reached it.
            if (0..PARTIES).any(|p| mem.atomic(p).load(Ordering::SeqCst) < g) {
                return 2;
            }
            if r.index() >= PARTIES as u32 {
                return 3;
            }
        }
        0
    };
    let children: Vec<_> = (1..PARTIES).map(|i| spawn(move || party(i))).collect();
    assert_eq!(party(0), 0);
    join_all_ok(children);
    assert_eq!(
        mem.atomic(PARTIES).load(Ordering::SeqCst),
        GENERATIONS,
        "one leader per generation"
    );
}

#[test]
fn semaphore_caps_concurrency_across_processes() {
    const PROCS: usize = 6;
    const LIMIT: u64 = 2;
    const ROUNDS: u64 = 300;
    let sem = Semaphore::anonymous(LIMIT as u32).unwrap();
    // Word 0: inside now; 1: high-water mark; 2: total entries.
    let mem = Scratch::new(3);
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            spawn(|| {
                for _ in 0..ROUNDS {
                    sem.acquire();
                    let now = mem.atomic(0).fetch_add(1, Ordering::SeqCst) + 1;
                    mem.atomic(1).fetch_max(now, Ordering::SeqCst);
                    mem.atomic(2).fetch_add(1, Ordering::SeqCst);
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                    mem.atomic(0).fetch_sub(1, Ordering::SeqCst);
                    if sem.release().is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    let high = mem.atomic(1).load(Ordering::SeqCst);
    assert!(
        (1..=LIMIT).contains(&high),
        "high-water mark {high} above the bound {LIMIT}"
    );
    assert_eq!(mem.atomic(2).load(Ordering::SeqCst), PROCS as u64 * ROUNDS);
    assert_eq!(sem.value(), LIMIT as u32, "every permit returned");
}

#[test]
fn named_objects_are_shared_and_participants_tracked() {
    let name = common::unique_name("ev");
    let _unlink = common::Unlink(name.clone());
    let ev = Event::create(&name).unwrap();
    let never = Event::anonymous().unwrap();
    // A child that opens by name, sets the event and then blocks forever.
    let child = spawn(|| match Event::open(&name) {
        Ok(e) => {
            if e.region().participants().len() != 2 {
                return 2;
            }
            e.set();
            never.wait();
            0
        }
        Err(_) => 1,
    });
    assert!(ev.wait_timeout(common::WATCHDOG));
    let pid = child.pid();
    let parts = ev.region().participants();
    assert!(
        parts.iter().any(|p| p.pid == std::process::id() && p.alive),
        "{parts:?}"
    );
    assert!(parts.iter().any(|p| p.pid == pid && p.alive), "{parts:?}");
    common::kill(child);
    // The killed child never left: a probe finds it dead (its beacon's owner died).
    let parts = ev.region().participants();
    assert!(parts.iter().any(|p| p.pid == pid && !p.alive), "{parts:?}");
    // A child that opens and returns normally leaves on drop.
    let child = spawn(|| i32::from(Event::open(&name).is_err()));
    assert_eq!(join(child), multiproc::process::ExitStatus::Code(0));
    assert!(
        ev.region()
            .participants()
            .iter()
            .all(|p| p.pid == std::process::id() || p.pid == pid)
    );
}

#[test]
fn participant_table_join_on_attach_leave_on_drop() {
    let name = common::unique_name("lock");
    let _unlink = common::Unlink(name.clone());
    let a = Lock::create(&name).unwrap();
    assert_eq!(a.region().participants().len(), 1);
    // Another handle in the same process is another attach (it may be used by
    // another thread of the process, which counts as the same process).
    let b = Lock::open(&name).unwrap();
    assert_eq!(a.region().participants().len(), 2);
    drop(b);
    assert_eq!(a.region().participants().len(), 1);
    assert_eq!(a.region().participants()[0].pid, std::process::id());
}

#[test]
fn waits_time_out() {
    let ev = Event::anonymous().unwrap();
    assert!(!ev.wait_timeout(Duration::from_millis(5)));
    let sem = Semaphore::anonymous(0).unwrap();
    assert!(!sem.acquire_timeout(Duration::from_millis(5)));
    let lock = Lock::anonymous().unwrap();
    let _g = lock.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(
                lock.lock_timeout(Duration::from_millis(5)),
                Err(multiproc::LockError::Timeout)
            ))
        });
    });
    let b = Barrier::anonymous(2).unwrap();
    assert_eq!(
        b.wait_timeout(Duration::from_millis(5)),
        Err(BarrierError::Timeout)
    );
    assert!(b.is_broken(), "a timeout breaks the barrier, as in Python");
    assert_eq!(b.wait(), Err(BarrierError::Broken));
    b.reset();
    assert!(!b.is_broken());
}

/// A guard captured by a fork closure exists twice after the fork; only the
/// parent's copy (dropped, unrun, when `fork` returns) releases. The child's
/// drop used to release the lock a second time, out from under whoever held it
/// by then.
#[test]
fn a_lock_guard_inherited_through_fork_releases_once() {
    let lock = Lock::anonymous().unwrap();
    let g = lock.lock().unwrap();
    let child = spawn(move || {
        drop(g);
        0
    });
    // The parent's copy of the closure was dropped by `fork`: the lock is free.
    let held = lock.try_lock().expect("released when fork returned");
    // The child has dropped its copy of the guard by the time it exits.
    join_all_ok(vec![child]);
    let other = std::thread::scope(|s| s.spawn(|| lock.try_lock().is_ok()).join().unwrap());
    assert!(
        !other,
        "the child's copy of the guard released a lock the parent holds"
    );
    drop(held);
    assert!(lock.try_lock().is_ok());
}

#[test]
fn a_semaphore_permit_inherited_through_fork_is_returned_once() {
    let sem = Semaphore::anonymous(1).unwrap();
    let p = sem.permit();
    let child = spawn(move || {
        drop(p);
        0
    });
    join_all_ok(vec![child]);
    assert_eq!(sem.value(), 1, "the permit was returned twice");
}

#[test]
fn condition_wait_refuses_a_guard_inherited_through_fork() {
    let cond = Condition::anonymous().unwrap();
    let c = &cond;
    let g = c.lock().unwrap();
    let child = spawn(move || match c.wait_timeout(g, Duration::from_millis(1)) {
        Err(multiproc::LockError::WrongLock(_)) => 0,
        Err(_) => 2,
        Ok(_) => 1,
    });
    join_all_ok(vec![child]);
    // Released once, by the parent, when fork returned.
    assert!(cond.try_lock().is_ok());
}
