use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::thread;

use super::{FOREVER, PARK, SPIN};
use crate::park::WaitPolicy;
use crate::sync::{How, LoomOwners, RawCondition};

/// Waits (lock held on entry and exit) until `go`; returns how many of its
/// waits ended notified.
fn wait_for(cond: &RawCondition, go: &AtomicBool, policy: WaitPolicy) -> u32 {
    cond.lock().acquire(How::Block, &LoomOwners).unwrap();
    let mut notified = 0;
    while !go.load(Ordering::Relaxed) {
        let (relocked, n) = cond.wait(policy, FOREVER, &LoomOwners).unwrap();
        relocked.unwrap();
        assert!(n, "an untimed wait returned without a notification");
        notified += 1;
    }
    cond.lock().release().unwrap();
    notified
}

#[test]
fn loom_condition_no_lost_wakeup() {
    loom::model(|| {
        let cond = Arc::new(RawCondition::new());
        let ready = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (cond, ready) = (cond.clone(), ready.clone());
            thread::spawn(move || wait_for(&cond, &ready, SPIN))
        };
        cond.lock().acquire(How::Block, &LoomOwners).unwrap();
        ready.store(true, Ordering::Relaxed);
        cond.notify(1, &LoomOwners).unwrap();
        cond.lock().release().unwrap();
        assert!(
            cond.notify(1, &LoomOwners).is_err(),
            "notify without the lock is refused"
        );
        assert!(waiter.join().unwrap() <= 1);
    });
}

#[test]
fn loom_condition_notify_all_wakes_both() {
    loom::model(|| {
        let cond = Arc::new(RawCondition::new());
        let go = Arc::new(AtomicBool::new(false));
        let waiters: Vec<_> = [PARK, SPIN]
            .into_iter()
            .map(|p| {
                let (cond, go) = (cond.clone(), go.clone());
                thread::spawn(move || wait_for(&cond, &go, p))
            })
            .collect();
        cond.lock().acquire(How::Block, &LoomOwners).unwrap();
        go.store(true, Ordering::Relaxed);
        cond.notify(u32::MAX, &LoomOwners).unwrap();
        cond.lock().release().unwrap();
        for w in waiters {
            assert!(w.join().unwrap() <= 1);
        }
    });
}

#[test]
fn loom_condition_notify_one_wakes_at_most_one() {
    // `phase` (under the lock): 0, then 1 with `notify(1)`, then 2 with
    // `notify_all`. A wait that started in phase 0 and ended in phase 1 was
    // ended by the `notify(1)`: at most one may. Every waiter waits until phase
    // 2, so none is left behind (loom would report the deadlock). Three
    // threads, each taking the lock twice: bounded to 2 preemptions (~10 s).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let cond = Arc::new(RawCondition::new());
        let phase = Arc::new(AtomicU32::new(0));
        let by_notify_one = Arc::new(AtomicU32::new(0));
        let waiters: Vec<_> = [PARK, SPIN]
            .into_iter()
            .map(|p| {
                let (cond, phase, by_one) = (cond.clone(), phase.clone(), by_notify_one.clone());
                thread::spawn(move || {
                    cond.lock().acquire(How::Block, &LoomOwners).unwrap();
                    loop {
                        let started = phase.load(Ordering::Relaxed);
                        if started == 2 {
                            break;
                        }
                        let (relocked, notified) = cond.wait(p, FOREVER, &LoomOwners).unwrap();
                        relocked.unwrap();
                        assert!(notified, "an untimed wait returned un-notified");
                        if started == 0 && phase.load(Ordering::Relaxed) == 1 {
                            by_one.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    cond.lock().release().unwrap();
                })
            })
            .collect();
        for (next, n) in [(1, 1), (2, u32::MAX)] {
            cond.lock().acquire(How::Block, &LoomOwners).unwrap();
            phase.store(next, Ordering::Relaxed);
            cond.notify(n, &LoomOwners).unwrap();
            cond.lock().release().unwrap();
        }
        for w in waiters {
            w.join().unwrap();
        }
        assert!(
            by_notify_one.load(Ordering::Relaxed) <= 1,
            "notify(1) ended two waits"
        );
    });
}

#[test]
fn loom_condition_dead_waiters_absorb_no_grant() {
    // Two waiters are killed in their wait (the main thread's "process" dies
    // twice and goes on as a third), then two `notify(1)`s, the second after
    // `go`. A live waiter that joined at any point must end: the dead ones,
    // in G2 or left ungranted in G1 by the first notify, absorb no grant
    // (before the records, the second notify went to a dead member of G1
    // while the live waiter slept in G2, and loom found the deadlock).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let cond = Arc::new(RawCondition::new());
        let go = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (cond, go) = (cond.clone(), go.clone());
            thread::spawn(move || wait_for(&cond, &go, PARK))
        };
        for _ in 0..2 {
            cond.lock().acquire(How::Block, &LoomOwners).unwrap();
            cond.join_and_die(&LoomOwners).unwrap();
        }
        for last in [false, true] {
            cond.lock().acquire(How::Block, &LoomOwners).unwrap();
            go.store(last, Ordering::Relaxed);
            cond.notify(1, &LoomOwners).unwrap();
            cond.lock().release().unwrap();
        }
        assert!(waiter.join().unwrap() <= 2);
    });
}
