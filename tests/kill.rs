//! kill -9: a process dies at the worst moment and the survivors go on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use common::{join, spawn};
use multiproc::process::ExitStatus;
use multiproc::{Barrier, BarrierError, Condition, Event, Lock, LockError, RLock, Semaphore};

/// A child takes the lock, says so, and blocks forever; we SIGKILL it.
fn kill_holder_of(take: impl FnOnce() -> bool) {
    let held = Event::anonymous().unwrap();
    let never = Event::anonymous().unwrap();
    let child = spawn(|| {
        if !take() {
            return 1;
        }
        held.set();
        never.wait();
        0
    });
    assert!(
        held.wait_timeout(common::WATCHDOG),
        "child never took the lock"
    );
    common::kill(child);
}

#[test]
fn lock_owner_killed_gives_owner_died_then_recovers() {
    let lock = Lock::anonymous().unwrap();
    kill_holder_of(|| lock.lock().map(std::mem::forget).is_ok());
    match lock.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert!(!g.is_consistent());
            g.mark_consistent();
            assert!(g.is_consistent());
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    // Usable again, by this process and by another one.
    drop(lock.lock().expect("consistent again"));
    let child = spawn(|| i32::from(lock.lock().is_err()));
    assert_eq!(join(child), ExitStatus::Code(0));
}

#[test]
fn lock_owner_killed_without_repair_is_not_recoverable() {
    let lock = Lock::anonymous().unwrap();
    kill_holder_of(|| lock.lock().map(std::mem::forget).is_ok());
    let g = lock
        .lock()
        .expect_err("owner died")
        .into_owner_died()
        .expect("a guard");
    drop(g); // no mark_consistent
    assert!(matches!(lock.lock(), Err(LockError::NotRecoverable)));
    assert!(matches!(lock.try_lock(), Err(LockError::NotRecoverable)));
    let child = spawn(|| i32::from(!matches!(lock.lock(), Err(LockError::NotRecoverable))));
    assert_eq!(join(child), ExitStatus::Code(0));
}

#[test]
fn lock_owner_killed_while_others_block_hands_over() {
    // The survivor is already blocked in lock() when the holder dies: the
    // holder's beacon wakes it with owner-died instead of leaving it asleep.
    let lock = Lock::anonymous().unwrap();
    let held = Event::anonymous().unwrap();
    let never = Event::anonymous().unwrap();
    let holder = spawn(|| {
        let Ok(g) = lock.lock() else { return 1 };
        std::mem::forget(g);
        held.set();
        never.wait();
        0
    });
    assert!(held.wait_timeout(common::WATCHDOG));
    let joined = Event::anonymous().unwrap();
    let waiter = spawn(|| {
        // The first lock call joins the region and starts this process's
        // beacon thread, sleeping on a futex for its hand-shake, which
        // `wait_until_asleep` would take for the blocked `lock` (the holder
        // could then die before this process even tried). Join with a
        // `try_lock` and say so; after that the only sleep left is the lock's.
        if !matches!(lock.try_lock(), Err(LockError::WouldBlock)) {
            return 2;
        }
        joined.set();
        match lock.lock() {
            Err(LockError::OwnerDied(mut g)) => {
                g.mark_consistent();
                0
            }
            _ => 1,
        }
    });
    assert!(joined.wait_timeout(common::WATCHDOG), "waiter never joined");
    common::wait_until_asleep(waiter.pid());
    common::kill(holder);
    assert_eq!(join(waiter), ExitStatus::Code(0));
    drop(lock.lock().expect("repaired by the waiter"));
}

#[test]
fn rlock_owner_killed_gives_owner_died_then_recovers() {
    let lock = RLock::anonymous().unwrap();
    kill_holder_of(|| {
        let (Ok(a), Ok(b)) = (lock.lock(), lock.lock()) else {
            return false;
        };
        std::mem::forget((a, b));
        true
    });
    match lock.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(lock.depth(), 1, "the dead owner's depth is not inherited");
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    let _a = lock.lock().unwrap();
    let _b = lock.lock().unwrap();
    assert_eq!(lock.depth(), 2);
}

#[test]
fn rlock_owner_killed_without_repair_is_not_recoverable() {
    let lock = RLock::anonymous().unwrap();
    kill_holder_of(|| lock.acquire().is_ok());
    assert!(matches!(lock.acquire(), Err(LockError::OwnerDied(()))));
    lock.release().unwrap();
    assert!(matches!(lock.acquire(), Err(LockError::NotRecoverable)));
}

#[test]
fn condition_lock_owner_killed_is_reported_by_wait_and_lock() {
    let cond = Condition::anonymous().unwrap();
    kill_holder_of(|| cond.lock().map(std::mem::forget).is_ok());
    let mut g = cond
        .lock()
        .expect_err("owner died")
        .into_owner_died()
        .unwrap();
    g.mark_consistent();
    cond.notify_all().unwrap();
    drop(g);
    drop(cond.lock().unwrap());
}

#[test]
fn barrier_party_killed_while_others_wait_breaks_it() {
    let barrier = Barrier::anonymous(3).unwrap();
    let gate = Event::anonymous().unwrap();
    let never = Event::anonymous().unwrap();
    // Generation 1 with all three parties, so each process is a known party.
    let victim = spawn(|| {
        if barrier.wait().is_err() {
            return 1;
        }
        gate.set();
        never.wait();
        0
    });
    let other = spawn(|| {
        if barrier.wait().is_err() {
            return 1;
        }
        // Generation 2: the victim never arrives.
        match barrier.wait() {
            Err(BarrierError::Broken) => 0,
            _ => 2,
        }
    });
    barrier.wait().unwrap();
    assert!(gate.wait_timeout(common::WATCHDOG));
    // `other` is waiting in generation 2 once it arrived there (generation 1
    // has tripped: this process and the victim passed it, and neither arrived
    // again). Its sleep before that may be generation 1's wait or its join's
    // beacon hand-shake, so the arrival comes first, then the sleep.
    wait_for_arrivals(&barrier, 1);
    common::wait_until_asleep(other.pid());
    common::kill(victim);
    assert_eq!(barrier.wait(), Err(BarrierError::Broken));
    assert_eq!(join(other), ExitStatus::Code(0));
    assert!(barrier.is_broken());
}

/// Blocks until `n` parties have arrived in the barrier's current generation.
fn wait_for_arrivals(barrier: &Barrier, n: u32) {
    let start = std::time::Instant::now();
    while barrier.n_waiting() != n {
        assert!(
            start.elapsed() < common::WATCHDOG,
            "watchdog: {n} parties never arrived ({} did)",
            barrier.n_waiting()
        );
        std::thread::yield_now();
    }
}

/// A process killed while asleep in `wait` must not strand the next waiter.
///
/// `wait(entered)` is a child's whole job: it sets `entered` as its last step
/// before it blocks. `wait_until_asleep` alone is not proof that a child reached
/// its wait: a child's first use of a region starts its beacon thread and sleeps
/// on a futex for the thread's hand-shake, and a child seen asleep there runs
/// on (and may be killed anywhere) later. A sleep seen *after* `entered` is the
/// wait's own. `settled` runs once each child has entered, before anything else
/// happens (the condition uses it to prove its waiter released the lock).
fn killed_waiter_blocks_nobody(
    wait: impl Fn(&Event) -> bool,
    settled: impl Fn(),
    wake: impl FnOnce(),
) {
    let start = || {
        let entered = Event::anonymous().unwrap();
        let child = spawn(|| i32::from(!wait(&entered)));
        assert!(
            entered.wait_timeout(common::WATCHDOG),
            "watchdog: child never reached its wait"
        );
        settled();
        common::wait_until_asleep(child.pid());
        child
    };
    let victim = start();
    common::kill(victim);
    let survivor = start();
    wake();
    assert_eq!(join(survivor), ExitStatus::Code(0));
}

#[test]
fn killed_event_waiter_blocks_nobody() {
    let ev = Event::anonymous().unwrap();
    killed_waiter_blocks_nobody(
        |entered| {
            entered.set();
            ev.wait_timeout(common::WATCHDOG)
        },
        || {},
        || ev.set(),
    );
}

#[test]
fn killed_semaphore_waiter_blocks_nobody() {
    let sem = Semaphore::anonymous(0).unwrap();
    killed_waiter_blocks_nobody(
        |entered| {
            entered.set();
            sem.acquire_timeout(common::WATCHDOG)
        },
        || {},
        || sem.release().unwrap(),
    );
    assert_eq!(sem.value(), 0, "the survivor took the one permit");
}

#[test]
fn killed_condition_waiter_blocks_nobody() {
    // Robust-lock contract: `OwnerDied` only when an owner really died holding
    // the lock. A waiter killed inside `wait` had released it, so the survivor
    // and the waker must both find it clean. Each waiter sets `entered` from the
    // predicate, under the lock, just before it waits; `settled` then takes the
    // lock, which it can only get once that waiter released it inside `wait`.
    // From then on the waiter holds nothing: it re-takes the lock only when
    // notified, and nobody notifies before `wake`.
    let cond = Condition::anonymous().unwrap();
    let flag = Event::anonymous().unwrap();
    killed_waiter_blocks_nobody(
        |entered| {
            let Ok(g) = cond.lock() else { return false };
            cond.wait_while_timeout(g, common::WATCHDOG, || {
                entered.set();
                !flag.is_set()
            })
            .is_ok_and(|(_, timed_out)| !timed_out)
        },
        || drop(cond.lock().expect("a live waiter in wait holds nothing")),
        || {
            let g = cond
                .lock()
                .expect("a waiter killed in wait did not hold the lock");
            flag.set();
            // One notification, and the dead waiter is still counted in the
            // same group: it must not absorb the survivor's wake-up.
            cond.notify(1).unwrap();
            drop(g);
        },
    );
}

#[test]
fn killed_condition_waiter_absorbs_no_later_notify() {
    // Waiters A and B wait; A is killed in its wait; `notify(1)` wakes B.
    // Then C waits and `notify(1)` must wake C. Before the waiter records,
    // the first notify had moved A into the signal group ungranted, and the
    // second granted to dead A while C slept in the arrival group: C never
    // woke. Each waiter bumps WAITING under the lock just before it waits (so
    // a count the parent reads under the lock means "inside its wait"), takes
    // one of the TOKENS the notifier hands out, and bumps WOKEN.
    const WAITING: usize = 0;
    const TOKENS: usize = 1;
    const WOKEN: usize = 2;
    let cond = Condition::anonymous().unwrap();
    let mem = common::Scratch::new(3);
    let waiter = || {
        let Ok(g) = cond.lock() else { return 1 };
        mem.write(WAITING, mem.read(WAITING) + 1);
        let Ok(g) = cond.wait_while(g, || mem.read(TOKENS) == 0) else {
            return 2;
        };
        mem.write(TOKENS, mem.read(TOKENS) - 1);
        mem.write(WOKEN, mem.read(WOKEN) + 1);
        drop(g);
        0
    };
    let until = |what: &str, f: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        loop {
            let g = cond.lock().expect("no holder died");
            if f() {
                return g;
            }
            drop(g);
            assert!(
                start.elapsed() < common::WATCHDOG,
                "watchdog: never saw {what}"
            );
            std::thread::yield_now();
        }
    };
    let a = spawn(waiter);
    let b = spawn(waiter);
    drop(until("A and B waiting", &|| mem.read(WAITING) == 2));
    common::kill(a);
    let g = cond.lock().expect("A held nothing in its wait");
    mem.write(TOKENS, 1);
    cond.notify(1).unwrap();
    drop(g);
    drop(until("B woken", &|| mem.read(WOKEN) == 1));
    assert_eq!(join(b), ExitStatus::Code(0));
    let c = spawn(waiter);
    let g = until("C waiting", &|| mem.read(WAITING) == 3);
    mem.write(TOKENS, 1);
    cond.notify(1).unwrap();
    drop(g);
    drop(until("C woken by the second notify", &|| {
        mem.read(WOKEN) == 2
    }));
    assert_eq!(join(c), ExitStatus::Code(0));
}

#[test]
fn barrier_survives_a_party_that_exited_normally() {
    // A party that finished and exited must not look dead: the fork helper
    // leaves the regions a child joined before `_exit`.
    let barrier = Barrier::anonymous(2).unwrap();
    let first = spawn(|| i32::from(barrier.wait().is_err()));
    barrier.wait().unwrap();
    assert_eq!(join(first), ExitStatus::Code(0));
    let late = spawn(|| {
        // Arrive late on purpose: the parent sleeps through several 20 ms slices
        // and probes the parties it knows, including the one that exited.
        let never = Event::anonymous().unwrap();
        never.wait_timeout(std::time::Duration::from_millis(120));
        i32::from(barrier.wait().is_err())
    });
    assert!(
        barrier.wait().is_ok(),
        "a normal exit was taken for a death"
    );
    assert_eq!(join(late), ExitStatus::Code(0));
}
