use loom::sync::Arc;
use loom::thread;

use super::{FOREVER, PARK, SPIN};
use crate::sync::RawEvent;

#[test]
fn loom_event_set_wakes_every_waiter() {
    loom::model(|| {
        let ev = Arc::new(RawEvent::new());
        let waiters: Vec<_> = [PARK, SPIN]
            .into_iter()
            .map(|p| {
                let ev = ev.clone();
                thread::spawn(move || assert!(ev.wait(p, FOREVER)))
            })
            .collect();
        ev.set();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(ev.is_set());
    });
}

#[test]
fn loom_event_set_then_clear_still_releases_waiters() {
    // Python: every waiter blocked when `set` is called returns True, even if
    // `clear` follows at once. A waiter that only looked at the flag would
    // sleep on (loom: deadlock). The waits start (take their snapshot of the
    // word) before `set`; they may reach the sleep before or after it.
    loom::model(|| {
        let ev = Arc::new(RawEvent::new());
        let waiters: Vec<_> = [PARK, SPIN]
            .into_iter()
            .map(|p| {
                let ev = ev.clone();
                let start = ev.snapshot();
                thread::spawn(move || assert!(ev.wait_since(p, FOREVER, start)))
            })
            .collect();
        ev.set();
        ev.clear();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(!ev.is_set());
    });
}
