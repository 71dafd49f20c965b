//! The fast path makes no syscall: a put/get pair with nobody waiting performs
//! zero futex calls. In its own test binary so no other test's futex traffic
//! shares the process-wide counter.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use multiproc::__private::futex_syscalls;
use multiproc::{BytesQueue, Event, Queue, Semaphore};

#[test]
fn uncontended_operations_make_no_futex_syscalls() {
    let q: Queue<u64> = Queue::anonymous(8).unwrap();
    let b = BytesQueue::anonymous(8, 32).unwrap();
    let sem = Semaphore::anonymous(1).unwrap();
    let ev = Event::anonymous().unwrap();
    // Warm up: first use joins the participant table.
    q.put(0).unwrap();
    q.get().unwrap();
    b.put(b"x").unwrap();
    b.get().unwrap();

    let before = futex_syscalls();
    for i in 0..1_000 {
        q.put(i).unwrap();
        assert_eq!(q.get(), Ok(i));
        q.try_put(i).unwrap();
        assert_eq!(q.try_get(), Ok(i));
        b.put(b"hello").unwrap();
        assert_eq!(b.get().unwrap(), b"hello");
        sem.acquire();
        sem.release().unwrap();
        ev.set();
        ev.wait();
        ev.clear();
    }
    assert_eq!(q.put_many(&[1, 2, 3]), 3);
    let mut out = [0u64; 3];
    assert_eq!(q.get_many(&mut out), 3);
    assert_eq!(
        futex_syscalls() - before,
        0,
        "a fast path made a futex syscall"
    );

    // The counter does count: a timed wait on an empty queue must sleep.
    let before = futex_syscalls();
    assert!(q.get_timeout(std::time::Duration::from_millis(1)).is_err());
    assert!(futex_syscalls() > before);
}
