//! Ports of CPython's `_test_multiprocessing.py` queue, pipe and manager tests
//! (`_TestQueue`, `_TestConnection`, `_TestContainers`) to this crate's API,
//! across real forked processes. No sleeps as synchronization, no timing
//! assertions: a timeout is only checked to report "timed out".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::time::Duration;

use common::{WATCHDOG, join, join_all_ok, spawn};
use multiproc::process::ExitStatus;
use multiproc::{
    BytesQueue, Event, GetError, JoinableQueue, Manager, Pipe, PutError, Queue, TaskDoneError,
};

const SHORT: Duration = Duration::from_millis(20);

// ----------------------------------------------------------------- _TestQueue

// _TestQueue.test_put: put(block=False) / put(timeout) on a full queue raise Full; qsize/full/empty.
#[test]
fn queue_put_full_and_sizes() {
    const MAX: usize = 6;
    let q = Queue::<u64>::anonymous(MAX).unwrap();
    assert_eq!(q.capacity(), MAX);
    assert!(q.is_empty());
    assert!(!q.is_full());
    assert_eq!(q.len(), 0);
    q.put(1).unwrap();
    q.put_timeout(2, SHORT).unwrap();
    q.try_put(3).unwrap();
    q.put(4).unwrap();
    q.put_timeout(5, SHORT).unwrap();
    q.try_put(6).unwrap();
    assert_eq!(q.len(), MAX);
    assert!(q.is_full());
    assert!(!q.is_empty());
    assert_eq!(q.try_put(7), Err(PutError::Full(7)));
    assert_eq!(q.put_timeout(7, Duration::ZERO), Err(PutError::Timeout(7)));
    assert_eq!(q.put_timeout(7, SHORT), Err(PutError::Timeout(7)));
    assert_eq!(q.len(), MAX);
    // A child drains it: items in order.
    let c = spawn(|| {
        for want in 1..=MAX as u64 {
            if q.get_timeout(WATCHDOG) != Ok(want) {
                return want as i32;
            }
        }
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert!(q.is_empty());
    assert_eq!(q.len(), 0);
}

// _TestQueue.test_get: get(block=False) / get(timeout) on an empty queue raise Empty; FIFO order.
#[test]
fn queue_get_empty_and_order() {
    let q = Queue::<u32>::anonymous(8).unwrap();
    assert_eq!(q.try_get(), Err(GetError::Empty));
    assert_eq!(q.get_timeout(Duration::ZERO), Err(GetError::Timeout));
    assert_eq!(q.get_timeout(SHORT), Err(GetError::Timeout));
    let c = spawn(|| {
        for i in 1..=5 {
            if q.put(i).is_err() {
                return 1;
            }
        }
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(q.len(), 5);
    assert_eq!(q.get(), Ok(1));
    assert_eq!(q.get_timeout(SHORT), Ok(2));
    assert_eq!(q.try_get(), Ok(3));
    assert_eq!(q.get(), Ok(4));
    assert_eq!(q.get_timeout(SHORT), Ok(5));
    assert_eq!(q.try_get(), Err(GetError::Empty));
}

// _TestQueue.test_fork: items put by the parent before and after forking reach a child.
#[test]
fn queue_fork_before_and_after() {
    let q = Queue::<u64>::anonymous(32).unwrap();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    let results = Queue::<u64>::anonymous(32).unwrap();
    let c = spawn(|| {
        for _ in 0..10 {
            match q.get_timeout(WATCHDOG) {
                Ok(v) => {
                    if results.put(v).is_err() {
                        return 2;
                    }
                }
                Err(_) => return 1,
            }
        }
        0
    });
    for i in 5..10 {
        q.put(i).unwrap();
    }
    assert_eq!(join(c), ExitStatus::Code(0));
    let got: Vec<u64> = (0..10).map(|_| results.try_get().unwrap()).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

// _TestQueue.test_qsize: qsize follows puts and gets.
#[test]
fn queue_qsize() {
    let q = Queue::<u8>::anonymous(4).unwrap();
    assert_eq!(q.len(), 0);
    q.put(5).unwrap();
    assert_eq!(q.len(), 1);
    q.put(6).unwrap();
    assert_eq!(q.len(), 2);
    q.get().unwrap();
    assert_eq!(q.len(), 1);
    q.get().unwrap();
    assert_eq!(q.len(), 0);
}

// _TestQueue.test_closed_queue_put_get_exceptions: put after close fails; shutdown fails gets once drained.
#[test]
fn queue_closed_put_and_shutdown_get() {
    let q = Queue::<u32>::anonymous(4).unwrap();
    q.put(1).unwrap();
    q.close();
    assert!(q.is_closed());
    assert_eq!(q.put(2), Err(PutError::Closed(2)));
    assert_eq!(q.try_put(2), Err(PutError::Closed(2)));
    // Python 3.12+ also refuses get after close (ValueError "is closed"); here close
    // is per side (documented on Queue::close): the item is still there.
    assert_eq!(q.get(), Ok(1));
    // Python 3.13 shutdown(): global; puts fail, gets drain then fail.
    let q = Queue::<u32>::anonymous(4).unwrap();
    q.put(1).unwrap();
    q.shutdown();
    assert!(q.is_shutdown());
    assert_eq!(q.put(2), Err(PutError::Closed(2)));
    let c = spawn(|| {
        if q.put(3) != Err(PutError::Closed(3)) {
            return 1;
        }
        if q.get() != Ok(1) {
            return 2;
        }
        i32::from(q.get() != Err(GetError::Closed)) * 3
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(q.try_get(), Err(GetError::Closed));
}

// _TestQueue (the reader end after every writer is gone): a blocked get returns, it does not hang.
#[test]
fn queue_get_after_all_senders_gone() {
    let q = Queue::<u32>::anonymous(4).unwrap();
    let (tx, rx) = q.split();
    // The closure takes only the sender; the parent's copy goes with it.
    let c = spawn(move || {
        for i in 0..3 {
            if tx.put(i).is_err() {
                return 1;
            }
        }
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(rx.get(), Ok(0));
    assert_eq!(rx.get(), Ok(1));
    assert_eq!(rx.get(), Ok(2));
    assert_eq!(rx.get(), Err(GetError::Disconnected));
    assert_eq!(rx.try_get(), Err(GetError::Disconnected));
}

// _TestQueue.test_queue_feeder_donot_stop_onexc analogue: a BytesQueue refuses an oversize message and goes on.
#[test]
fn bytes_queue_too_large_then_ok() {
    let q = BytesQueue::anonymous(4, 16).unwrap();
    let big = [0u8; 17];
    assert!(matches!(q.put(&big), Err(PutError::TooLarge(_))));
    q.put(b"fits").unwrap();
    let c = spawn(|| i32::from(q.get_timeout(WATCHDOG).as_deref() != Ok(b"fits".as_slice())));
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestQueue.test_task_done: workers task_done every item; join returns once all are done.
#[test]
fn joinable_queue_task_done_and_join() {
    const ITEMS: u64 = 40;
    const WORKERS: usize = 3;
    let q = JoinableQueue::<u64>::anonymous(64).unwrap();
    let stop = u64::MAX;
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            spawn(|| {
                loop {
                    let Ok(v) = q.get_timeout(WATCHDOG) else {
                        return 1;
                    };
                    if q.task_done().is_err() {
                        return 2;
                    }
                    if v == stop {
                        return 0;
                    }
                }
            })
        })
        .collect();
    for i in 0..ITEMS {
        q.put(i).unwrap();
    }
    assert!(q.join_timeout(WATCHDOG), "join timed out");
    assert_eq!(q.unfinished(), 0);
    for _ in 0..WORKERS {
        q.put(stop).unwrap();
    }
    q.join();
    join_all_ok(workers);
    assert_eq!(q.unfinished(), 0);
}

// _TestQueue.test_task_done (ValueError when called too many times); join with tasks pending times out.
#[test]
fn joinable_queue_task_done_too_often() {
    let q = JoinableQueue::<u8>::anonymous(4).unwrap();
    assert_eq!(q.task_done(), Err(TaskDoneError::TooManyCalls));
    assert!(q.join_timeout(SHORT), "nothing unfinished: join returns");
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.unfinished(), 2);
    assert!(!q.join_timeout(SHORT));
    assert_eq!(q.get(), Ok(1));
    q.task_done().unwrap();
    assert!(!q.join_timeout(SHORT));
    let c = spawn(|| {
        if q.get() != Ok(2) || q.task_done().is_err() {
            return 1;
        }
        i32::from(q.task_done() != Err(TaskDoneError::TooManyCalls)) * 2
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert!(q.join_timeout(WATCHDOG));
    assert_eq!(q.unfinished(), 0);
    assert_eq!(q.task_done(), Err(TaskDoneError::TooManyCalls));
}

// _TestQueue.test_task_done: task_done may come before the matching get (it counts puts).
#[test]
fn joinable_queue_task_done_before_get() {
    let q = JoinableQueue::<u8>::anonymous(2).unwrap();
    q.put(1).unwrap();
    q.task_done().unwrap();
    assert_eq!(q.unfinished(), 0);
    assert!(q.join_timeout(WATCHDOG));
    assert_eq!(q.get(), Ok(1));
    assert_eq!(q.task_done(), Err(TaskDoneError::TooManyCalls));
}

// _TestQueue: Queue(maxsize=0) is unbounded in Python; here a capacity is required (documented).
#[test]
fn queue_capacity_zero_is_refused() {
    assert!(Queue::<u8>::anonymous(0).is_err());
    assert!(JoinableQueue::<u8>::anonymous(0).is_err());
}

// ------------------------------------------------------------ _TestConnection

// _TestConnection.test_connection: send/recv both ways between processes, poll.
#[test]
fn pipe_duplex_between_processes() {
    let (a, b) = Pipe::anonymous(8, 64).unwrap();
    assert!(!a.poll(Duration::ZERO));
    assert!(!a.poll(SHORT));
    let c = spawn(move || {
        // Echo each message, reversed, until "stop".
        loop {
            let Ok(m) = b.recv() else { return 1 };
            if m == b"stop" {
                return 0;
            }
            let r: Vec<u8> = m.iter().rev().copied().collect();
            if b.send(&r).is_err() {
                return 2;
            }
        }
    });
    for msg in [&b"hello"[..], b"", b"x", &[7u8; 64]] {
        a.send(msg).unwrap();
        assert!(a.poll(WATCHDOG));
        let back = a.recv_timeout(WATCHDOG).unwrap();
        let want: Vec<u8> = msg.iter().rev().copied().collect();
        assert_eq!(back, want);
    }
    assert_eq!(a.recv_timeout(SHORT), Err(GetError::Timeout));
    a.send(b"stop").unwrap();
    assert_eq!(join(c), ExitStatus::Code(0));
}

// _TestConnection.test_connection: recv raises EOFError once the other end is closed everywhere.
#[test]
fn pipe_eof_after_peer_exits() {
    let (a, b) = Pipe::anonymous(8, 32).unwrap();
    let c = spawn(move || {
        for m in [&b"one"[..], b"two"] {
            if b.send(m).is_err() {
                return 1;
            }
        }
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    // b was moved into the child's closure: the parent's copy is gone.
    assert_eq!(a.recv().unwrap(), b"one");
    assert_eq!(a.recv().unwrap(), b"two");
    assert_eq!(a.recv(), Err(GetError::Disconnected));
    // poll reports EOF as readable, as Python's poll does.
    assert!(a.poll(Duration::ZERO));
}

// _TestConnection.test_connection: a closed end refuses send and recv (Python OSError).
#[test]
fn pipe_closed_end_refuses() {
    let (a, b) = Pipe::anonymous(4, 16).unwrap();
    a.send(b"queued").unwrap();
    a.close();
    assert!(matches!(a.send(b"late"), Err(PutError::Closed(_))));
    assert_eq!(a.recv(), Err(GetError::Closed));
    // The message sent before the close still arrives, then EOF.
    assert_eq!(b.recv().unwrap(), b"queued");
    assert_eq!(b.recv(), Err(GetError::Disconnected));
    // Python: send of an oversize message fails, nothing is sent.
    assert!(matches!(b.send(&[0u8; 17]), Err(PutError::TooLarge(_))));
}

// _TestConnection.test_duplex_false analogue: the other end blocks in recv until a send from another process.
#[test]
fn pipe_recv_blocks_until_sent() {
    let (a, b) = Pipe::anonymous(4, 16).unwrap();
    let ready = Event::anonymous().unwrap();
    let ready = &ready;
    let c = spawn(move || {
        ready.set();
        i32::from(b.recv_timeout(WATCHDOG).as_deref() != Ok(b"late".as_slice()))
    });
    assert!(ready.wait_timeout(WATCHDOG));
    a.send(b"late").unwrap();
    assert_eq!(join(c), ExitStatus::Code(0));
}

// -------------------------------------------------------------- _TestContainers

// _TestContainers.test_dict: a manager dict shared with a child; missing keys are None (KeyError).
#[test]
fn manager_dict_shared_with_child() {
    let m = Manager::anonymous(1 << 20).unwrap();
    let d = m.dict::<u32, u64>("d", 64).unwrap();
    for i in 0..10u32 {
        assert_eq!(d.insert(i, u64::from(i) * 2).unwrap(), None);
    }
    assert_eq!(d.len(), 10);
    let c = spawn(|| {
        let Ok(d) = m.dict::<u32, u64>("d", 64) else {
            return 1;
        };
        if d.get(&3) != Ok(Some(6)) || d.get(&99) != Ok(None) {
            return 2;
        }
        if d.insert(3, 33).ok() != Some(Some(6)) {
            return 3;
        }
        if d.remove(&4) != Ok(Some(8)) {
            return 4;
        }
        0
    });
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(d.get(&3), Ok(Some(33)));
    assert_eq!(d.get(&4), Ok(None));
    assert!(!d.contains_key(&4).unwrap());
    assert_eq!(d.len(), 9);
    assert_eq!(d.remove(&4), Ok(None));
    d.clear().unwrap();
    assert!(d.is_empty());
    assert!(m.names().contains(&"d".to_string()));
}

// _TestContainers / manager objects: named objects reached from a child are the same objects.
#[test]
fn manager_objects_shared_with_child() {
    let m = Manager::anonymous(1 << 20).unwrap();
    let q = m.queue::<u32>("q", 8).unwrap();
    let ev = m.event("ev").unwrap();
    let n = m.counter("n", 5).unwrap();
    let c = spawn(|| {
        let (Ok(q), Ok(ev), Ok(n)) = (m.queue::<u32>("q", 8), m.event("ev"), m.counter("n", 0))
        else {
            return 1;
        };
        if q.put(42).is_err() {
            return 2;
        }
        n.fetch_add(1);
        ev.set();
        0
    });
    assert!(ev.wait_timeout(WATCHDOG));
    assert_eq!(join(c), ExitStatus::Code(0));
    assert_eq!(q.try_get(), Ok(42));
    assert_eq!(
        n.load(),
        6,
        "the second counter(\"n\", 0) opened, not reset"
    );
}
