//! Handles are sound on every thread: created on one, used and dropped on others,
//! and the creating thread may exit first while the process goes on (peers still
//! see the process alive).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::thread;

use common::{Unlink, join, spawn, unique_name};
use multiproc::process::ExitStatus;
use multiproc::{
    Barrier, BoundedSemaphore, BytesQueue, Condition, Counter, Event, JoinableQueue, Lock, Manager,
    Pipe, Queue, RLock, Region, Semaphore, SharedDict, Value,
};

/// The repro: two handles made on one thread, one dropped on another
/// thread, then the second used and dropped (it segfaulted in the pthread beacon).
#[test]
fn drop_on_another_thread_then_drop_here() {
    let a = Value::<u64>::anonymous(1).unwrap();
    let b = Value::<u64>::anonymous(1).unwrap();
    thread::spawn(move || drop(a)).join().unwrap();
    b.store(2).unwrap();
    assert_eq!(b.load().unwrap(), 2);
    drop(b);

    let l1 = Lock::anonymous().unwrap();
    let l2 = Lock::anonymous().unwrap();
    thread::spawn(move || drop(l1)).join().unwrap();
    drop(l2.lock().unwrap());
    drop(l2);

    let e = Event::anonymous().unwrap();
    let l = Lock::anonymous().unwrap();
    thread::spawn(move || drop(e)).join().unwrap();
    drop(l.lock().unwrap());
    drop(l);

    let q1 = Queue::<u64>::anonymous(4).unwrap();
    let q2 = Queue::<u64>::anonymous(4).unwrap();
    thread::spawn(move || drop(q1)).join().unwrap();
    q2.put(1).unwrap();
    assert_eq!(q2.get().unwrap(), 1);
    drop(q2);
}

/// One of every kind, made on a thread that then exits.
struct Everything {
    lock: Lock,
    rlock: RLock,
    sem: Semaphore,
    bsem: BoundedSemaphore,
    event: Event,
    cond: Condition,
    barrier: Barrier,
    queue: Queue<u64>,
    bytes: BytesQueue,
    joinable: JoinableQueue<u64>,
    pipe: (multiproc::PipeEnd, multiproc::PipeEnd),
    dict: SharedDict<u64, u64>,
    value: Value<u64>,
    counter: Counter,
    manager: Manager,
}

impl Everything {
    fn new() -> Everything {
        Everything {
            lock: Lock::anonymous().unwrap(),
            rlock: RLock::anonymous().unwrap(),
            sem: Semaphore::anonymous(1).unwrap(),
            bsem: BoundedSemaphore::anonymous(1).unwrap(),
            event: Event::anonymous().unwrap(),
            cond: Condition::anonymous().unwrap(),
            barrier: Barrier::anonymous(1).unwrap(),
            queue: Queue::anonymous(4).unwrap(),
            bytes: BytesQueue::anonymous(4, 64).unwrap(),
            joinable: JoinableQueue::anonymous(4).unwrap(),
            pipe: Pipe::anonymous(4, 64).unwrap(),
            dict: SharedDict::anonymous(16).unwrap(),
            value: Value::anonymous(0).unwrap(),
            counter: Counter::anonymous(0).unwrap(),
            manager: Manager::anonymous(1 << 16).unwrap(),
        }
    }

    /// Every blocking kind once, through its lock or wait path.
    fn exercise(&self) {
        drop(self.lock.lock().unwrap());
        drop(self.rlock.lock().unwrap());
        self.sem.acquire();
        self.sem.release().unwrap();
        self.bsem.acquire();
        self.bsem.release().unwrap();
        self.event.set();
        assert!(self.event.wait_timeout(std::time::Duration::from_secs(5)));
        self.event.clear();
        drop(self.cond.lock().unwrap());
        self.barrier.wait().unwrap();
        self.queue.put(7).unwrap();
        assert_eq!(self.queue.get().unwrap(), 7);
        self.bytes.put(b"x").unwrap();
        assert_eq!(self.bytes.get().unwrap(), b"x");
        self.joinable.put(1).unwrap();
        assert_eq!(self.joinable.get().unwrap(), 1);
        self.joinable.task_done().unwrap();
        self.pipe.0.send(b"p").unwrap();
        assert_eq!(self.pipe.1.recv().unwrap(), b"p");
        self.dict.insert(1, 2).unwrap();
        assert_eq!(self.dict.get(&1).unwrap(), Some(2));
        self.value.store(3).unwrap();
        assert_eq!(self.value.load().unwrap(), 3);
        self.counter.fetch_add(1);
        let c = self.manager.counter("c", 0).unwrap();
        c.fetch_add(1);
    }

    fn regions(&self) -> Vec<&Region> {
        vec![
            self.lock.region(),
            self.rlock.region(),
            self.queue.region(),
            self.dict.region(),
            self.value.region(),
            self.manager.region(),
        ]
    }
}

#[test]
fn creator_thread_exits_first_and_peers_still_see_us_alive() {
    let all = thread::spawn(Everything::new).join().unwrap();
    // The creating thread is gone; this process is not.
    all.exercise();
    let me = std::process::id();
    for r in all.regions() {
        let p = r.participants();
        assert!(
            p.iter().any(|p| p.pid == me && p.alive),
            "{} shows this process dead after its creating thread exited: {p:?}",
            r.kind()
        );
    }
    // A peer (a forked child) sees the same, and can still use every lock while
    // the parent lives (no false "owner died").
    let child = spawn(|| {
        let me = std::process::id();
        for r in all.regions() {
            let parent = r
                .participants()
                .into_iter()
                .find(|p| p.pid != me && p.alive);
            if parent.is_none() {
                return 1;
            }
        }
        match all.lock.lock() {
            Ok(g) => drop(g),
            Err(_) => return 2,
        }
        0
    });
    assert_eq!(join(child), ExitStatus::Code(0));
    // Used on one thread, dropped on several others.
    let Everything {
        lock,
        rlock,
        sem,
        bsem,
        event,
        cond,
        barrier,
        queue,
        bytes,
        joinable,
        pipe,
        dict,
        value,
        counter,
        manager,
    } = all;
    thread::scope(|s| {
        s.spawn(move || drop((lock, rlock, sem)));
        s.spawn(move || drop((bsem, event, cond, barrier)));
        s.spawn(move || drop((queue, bytes, joinable, pipe)));
        s.spawn(move || drop((dict, value, counter, manager)));
    });
}

#[test]
fn clones_and_named_handles_move_between_threads() {
    let name = unique_name("thr-lock");
    let _u = Unlink(name.clone());
    let created = {
        let name = name.clone();
        thread::spawn(move || Lock::create(&name).unwrap())
            .join()
            .unwrap()
    };
    let opened = {
        let name = name.clone();
        thread::spawn(move || Lock::open(&name).unwrap())
            .join()
            .unwrap()
    };
    let clone = created.clone();
    thread::spawn(move || drop(created)).join().unwrap();
    // Lock on one thread, release by dropping the guard there; the other handle
    // sees it free again.
    thread::spawn(move || drop(clone.lock().unwrap()))
        .join()
        .unwrap();
    drop(opened.try_lock().expect("free again"));
    // Re-create handles many times on short-lived threads: slots are given back.
    for _ in 0..300 {
        let name = name.clone();
        thread::spawn(move || {
            let l = Lock::open(&name).unwrap();
            drop(l.lock().unwrap());
        })
        .join()
        .unwrap();
    }
    assert_eq!(
        opened.region().participants().len(),
        1,
        "only the last open handle is a participant"
    );
}

/// A producer blocked on a full queue whose consumer frees exactly one slot at a
/// time still completes each put: the wait for more room before claiming
/// (`await_room` in the ring's blocking path) is bounded, and the single freed
/// slot is enough. The consumer takes the next item only once the queue is full
/// again, so a put that finds the queue full has exactly one slot of room.
#[test]
fn blocking_put_completes_when_one_slot_frees_at_a_time() {
    const CAP: usize = 64;
    const ITEMS: u64 = 500;
    let q = Queue::<u64>::anonymous(CAP).unwrap();
    for i in 0..CAP as u64 {
        q.put(i).unwrap();
    }
    let producer = {
        let q = q.clone();
        thread::spawn(move || {
            for i in CAP as u64..CAP as u64 + ITEMS {
                q.put_timeout(i, std::time::Duration::from_secs(30))
                    .unwrap();
            }
        })
    };
    // A watchdog, not a synchronisation: the test fails rather than hangs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for expect in 0..ITEMS {
        assert_eq!(q.get().unwrap(), expect);
        while !q.is_full() {
            assert!(
                std::time::Instant::now() < deadline,
                "put {expect} never completed with one free slot"
            );
            thread::yield_now();
        }
    }
    producer.join().unwrap();
    for expect in ITEMS..ITEMS + CAP as u64 {
        assert_eq!(q.get().unwrap(), expect);
    }
    assert!(q.is_empty());
}

/// A child forked while another thread of the parent starts and ends `std`
/// threads must still get through its first join of a region (which starts
/// its beacon thread). When the beacon was a `std` thread, a fork that landed
/// inside another thread's start or exit left the child's copy of std's
/// thread-registration lock held, and the child hung for ever in its first
/// `lock()` (the CI flake in `cpython_ports.rs`).
#[test]
#[expect(
    clippy::disallowed_types,
    reason = "a process-local stop flag for the churning threads, never shared with a child"
)]
fn a_child_forked_beside_thread_churn_gets_through_its_first_join() {
    use std::sync::atomic::{AtomicBool, Ordering};
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        // Stops the churners however the loop below ends (a failed round too).
        let _stop = StopOnDrop(&stop);
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    thread::spawn(|| {}).join().unwrap();
                }
            });
        }
        for round in 0..5000 {
            let child = spawn(|| {
                let Ok(lock) = Lock::anonymous() else {
                    return 1;
                };
                i32::from(lock.lock().is_err()) * 2
            });
            assert_eq!(join(child), ExitStatus::Code(0), "round {round}");
        }
    });
}
