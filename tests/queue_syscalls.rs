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

    // The counter does count: a getter blocked on the empty queue is asleep in
    // the futex (the kernel says so), so it made a wait syscall. No timeout is
    // involved, so a loaded machine cannot make the getter give up before it
    // reaches the futex (a 1 ms `get_timeout` could, by spinning past it).
    let before = futex_syscalls();
    let (tx, rx) = std::sync::mpsc::channel();
    let getter = {
        let q = q.clone();
        std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions and cannot fail.
            tx.send(unsafe { libc::gettid() }).unwrap();
            q.get()
        })
    };
    let tid = rx.recv().unwrap();
    wait_until_in_futex(u32::try_from(tid).unwrap(), || futex_syscalls() > before);
    q.put(7).unwrap();
    assert_eq!(getter.join().unwrap(), Ok(7));
    assert!(
        futex_syscalls() > before,
        "a getter asleep in the futex was not counted"
    );
}

/// Blocks until thread `tid` is asleep in a futex wait and `counted()` holds,
/// under a watchdog. Both must become true once the getter sleeps.
fn wait_until_in_futex(tid: u32, counted: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let wchan =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if state == "S"
            && (wchan.contains("futex") || wchan.is_empty() || wchan == "0")
            && counted()
        {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "watchdog: the getter never slept in the futex (state {state:?}, wchan {wchan:?}, counted {})",
            counted()
        );
        std::thread::yield_now();
    }
}
