use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

use super::{FOREVER, PARK, SPIN};
use crate::sync::RawSemaphore;

#[test]
fn loom_semaphore_conserves_permits_and_excludes() {
    loom::model(|| {
        let sem = Arc::new(RawSemaphore::new(1, Some(1)));
        let inside = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = [PARK, SPIN]
            .into_iter()
            .map(|p| {
                let (sem, inside) = (sem.clone(), inside.clone());
                thread::spawn(move || {
                    assert!(sem.acquire(p, FOREVER));
                    assert!(!inside.swap(true, Ordering::Relaxed), "two holders");
                    inside.store(false, Ordering::Relaxed);
                    sem.release().unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(sem.value(), 1);
        assert!(sem.release().is_err(), "bounded at 1");
    });
}

#[test]
fn loom_semaphore_two_releases_wake_two_sleepers() {
    // The release that finds SLEEPERS cleared by the first one wakes nobody:
    // the first woken waiter must pass the baton.
    loom::model(|| {
        let sem = Arc::new(RawSemaphore::new(0, Some(10)));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || assert!(sem.acquire(PARK, FOREVER)))
            })
            .collect();
        sem.release().unwrap();
        sem.release().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(sem.value(), 0);
    });
}
