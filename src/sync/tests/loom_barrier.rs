use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;

use super::{FOREVER, PARK, SPIN};
use crate::sync::RawBarrier;

#[test]
fn loom_barrier_generations() {
    loom::model(|| {
        const GENERATIONS: u32 = 2;
        let barrier = Arc::new(RawBarrier::new(2));
        let reached: Arc<[AtomicU32; 2]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let leaders = Arc::new(AtomicU32::new(0));
        let party = |me: usize| {
            let (barrier, reached, leaders) = (barrier.clone(), reached.clone(), leaders.clone());
            let policy = if me == 0 { PARK } else { SPIN };
            move || {
                for g in 1..=GENERATIONS {
                    reached[me].store(g, Ordering::Relaxed);
                    let r = barrier.wait(policy, FOREVER, || false).unwrap();
                    if r.is_leader() {
                        leaders.fetch_add(1, Ordering::Relaxed);
                    }
                    // SYNC(barrier) makes the other party's store visible.
                    assert!(
                        reached[1 - me].load(Ordering::Relaxed) >= g,
                        "left generation {g} early"
                    );
                }
            }
        };
        let other = thread::spawn(party(1));
        party(0)();
        other.join().unwrap();
        assert_eq!(leaders.load(Ordering::Relaxed), GENERATIONS);
        assert_eq!(barrier.n_waiting(), 0);
    });
}

#[test]
fn loom_barrier_abort_releases_waiters() {
    loom::model(|| {
        let barrier = Arc::new(RawBarrier::new(2));
        let b2 = barrier.clone();
        let waiter = thread::spawn(move || b2.wait(PARK, FOREVER, || false));
        barrier.abort();
        // Either the waiter arrived before the abort and was released Broken, or
        // it arrived after and was refused at once: never a hang, never success.
        assert!(waiter.join().unwrap().is_err());
        assert!(barrier.is_broken());
        barrier.reset();
        assert!(!barrier.is_broken());
    });
}
