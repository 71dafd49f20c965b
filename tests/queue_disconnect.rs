//! Disconnection across processes: senders and receivers counted per process,
//! discounted when the process exits or is killed, and blocked callers told.
//!
//! Regression tests for issue 10's findings 3 (pipe EOF while the peer's end
//! is alive in this process), 4 (pipe hang when the peer dies early or while
//! blocked) and 5 (queue get hangs when its only worker is SIGKILLed), and one
//! cross-process test per disconnection rule. Every blocking call runs under a
//! watchdog (a helper thread reports back through a channel the test waits on
//! with a timeout), so a bug fails the test instead of hanging it. No timing
//! is asserted: "blocked" is the kernel's word (the thread asleep in a futex).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report; std atomics for test control"
)]

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{WATCHDOG, join, kill, spawn, wait_until_asleep};
use multiproc::process::ExitStatus;
use multiproc::{BytesQueue, Event, GetError, JoinableQueue, Pipe, PutError, Queue};

/// One test at a time: a child forked by one test inherits (and counts as a
/// holder of) every handle the other tests hold at that moment, which would
/// keep their queues connected. Programs see the same: fork while other
/// threads hold handles, and the child holds copies.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a helper thread, waits until that thread is asleep in the
/// kernel (so `f` reached its blocking call), then runs `then` and returns
/// `f`'s result, failing (not hanging) if it never comes.
fn blocked_then<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
    then: impl FnOnce(),
) -> R {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::channel();
    thread::spawn(move || {
        // SAFETY: gettid has no preconditions and cannot fail.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = out_tx.send(f());
    });
    let tid = tid_rx
        .recv_timeout(WATCHDOG)
        .expect("helper thread started");
    wait_thread_asleep(tid);
    then();
    out_rx
        .recv_timeout(WATCHDOG)
        .expect("watchdog: the blocked call never returned")
}

/// Blocks until thread `tid` of this process is asleep (state `S`).
fn wait_thread_asleep(tid: i32) {
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if state == "S" {
            return;
        }
        assert!(start.elapsed() < WATCHDOG, "watchdog: thread never slept");
        thread::yield_now();
    }
}

/// Runs `f` on a helper thread and returns its result, under the watchdog.
fn watched<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WATCHDOG)
        .expect("watchdog: the call never returned")
}

// ---- Finding 3 --------------------------------------------------------------

/// A child sends through the write end and exits; the parent still holds the
/// write end, so its read end must not see end-of-file, and its own write end
/// must keep working.
#[test]
fn finding3_pipe_no_eof_while_this_process_holds_the_peer_end() {
    let _serial = serial();
    let (w, r) = Pipe::anonymous(8, 64).unwrap();
    let child = spawn(|| i32::from(w.send(b"x").is_err()));
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(r.recv().unwrap(), b"x");
    // The child (a holder of `w` too) is gone; the parent's `w` is not.
    assert_eq!(
        r.recv_timeout(Duration::from_millis(100)),
        Err(GetError::Timeout)
    );
    w.send(b"y").unwrap();
    assert_eq!(r.recv().unwrap(), b"y");
    // And once the parent drops its last copy: end-of-file.
    drop(w);
    assert_eq!(r.recv(), Err(GetError::Disconnected));
}

// ---- Finding 4 --------------------------------------------------------------

/// The sender is SIGKILLed before its first send; the receiver starts
/// receiving only after the kill.
#[test]
fn finding4_pipe_receiver_sees_eof_when_the_sender_dies_before_sending() {
    let _serial = serial();
    let (parent, child_end) = Pipe::anonymous(8, 64).unwrap();
    let never = Event::anonymous().unwrap();
    let never = &never;
    let child = spawn(move || {
        never.wait();
        i32::from(child_end.send(b"late").is_err())
    });
    wait_until_asleep(child.pid());
    kill(child);
    let got = watched(move || parent.recv());
    assert_eq!(got, Err(GetError::Disconnected));
}

/// The receiver is blocked in `recv` when the sender (which never sent) is
/// SIGKILLed.
#[test]
fn finding4_pipe_blocked_receiver_sees_eof_when_the_sender_is_killed() {
    let _serial = serial();
    let (parent, child_end) = Pipe::anonymous(8, 64).unwrap();
    let never = Event::anonymous().unwrap();
    let never = &never;
    let child = spawn(move || {
        never.wait();
        i32::from(child_end.send(b"late").is_err())
    });
    wait_until_asleep(child.pid());
    let got = blocked_then(move || parent.recv(), || kill(child));
    assert_eq!(got, Err(GetError::Disconnected));
}

/// A sender blocked in `send` on a full pipe when the receiver is SIGKILLed.
#[test]
fn finding4_pipe_blocked_sender_sees_disconnection_when_the_receiver_is_killed() {
    let _serial = serial();
    let (parent, child_end) = Pipe::anonymous(2, 16).unwrap();
    let never = Event::anonymous().unwrap();
    let never = &never;
    let child = spawn(move || {
        never.wait();
        i32::from(child_end.recv().is_err())
    });
    parent.send(b"1").unwrap();
    parent.send(b"2").unwrap();
    wait_until_asleep(child.pid());
    let got = blocked_then(
        move || parent.send(b"3").map_err(|e| format!("{e:?}")),
        || kill(child),
    );
    assert_eq!(got, Err("Disconnected(..)".to_owned()));
}

// ---- Finding 5 --------------------------------------------------------------

/// A front with only a `Receiver` of the reply queue; its only worker holds
/// the `Sender` and is SIGKILLed while the front is blocked in `get`.
#[test]
fn finding5_get_returns_disconnected_when_the_only_worker_is_killed() {
    let _serial = serial();
    let (tx, rx) = Queue::<u64>::anonymous(8).unwrap().split();
    let jobs = Event::anonymous().unwrap();
    let jobs = &jobs;
    let worker = spawn(move || {
        jobs.wait(); // never set: the worker is killed first
        i32::from(tx.put(1).is_err())
    });
    // `tx` was moved into the worker: the front holds no sender.
    wait_until_asleep(worker.pid());
    let got = blocked_then(move || rx.get(), || kill(worker));
    assert_eq!(got, Err(GetError::Disconnected));
}

/// The same with a `JoinableQueue`, and a worker that answers once first.
#[test]
fn finding5_joinable_get_after_answer_then_kill() {
    let _serial = serial();
    let (tx, rx) = JoinableQueue::<u64>::anonymous(8).unwrap().split();
    let never = Event::anonymous().unwrap();
    let never = &never;
    let worker = spawn(move || {
        if tx.put(42).is_err() {
            return 1;
        }
        never.wait();
        0
    });
    assert_eq!(watched_get(&rx), Ok(42));
    rx.task_done().unwrap();
    let got = blocked_then(move || rx.get(), || kill(worker));
    assert_eq!(got, Err(GetError::Disconnected));
}

fn watched_get(rx: &multiproc::queue::Receiver<JoinableQueue<u64>>) -> Result<u64, GetError> {
    let rx = rx.clone();
    watched(move || rx.get())
}

// ---- Rules, across processes ------------------------------------------------

/// Senders exit normally: the receiver drains everything they put, then gets
/// `Disconnected`.
#[test]
fn senders_exit_receiver_drains_then_disconnected() {
    let _serial = serial();
    const PRODUCERS: u64 = 3;
    const PER: u64 = 2_000;
    let (tx, rx) = Queue::<u64>::anonymous(16).unwrap().split();
    let children: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            spawn(move || {
                for i in 0..PER {
                    if tx.put(p << 32 | i).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    drop(tx);
    let got = watched(move || {
        let mut next = [0u64; PRODUCERS as usize];
        loop {
            match rx.get() {
                Ok(v) => {
                    let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                    assert_eq!(i, next[p], "producer {p} out of order");
                    next[p] += 1;
                }
                Err(e) => return (e, next),
            }
        }
    });
    assert_eq!(got.0, GetError::Disconnected);
    assert_eq!(got.1, [PER; PRODUCERS as usize]);
    for c in children {
        assert_eq!(join(c), ExitStatus::Code(0));
    }
}

/// Senders SIGKILLed mid-stream: the receiver gets a prefix of each
/// producer's sequence (in order, no duplicates) and then `Disconnected`.
#[test]
fn senders_killed_mid_stream_receiver_ends_with_disconnected() {
    let _serial = serial();
    const PRODUCERS: u64 = 2;
    let (tx, rx) = BytesQueue::anonymous(8, 16).unwrap().split();
    let children: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            spawn(move || {
                for i in 0u64.. {
                    let mut m = [0u8; 16];
                    m[..8].copy_from_slice(&p.to_le_bytes());
                    m[8..].copy_from_slice(&i.to_le_bytes());
                    if tx.put(&m).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    drop(tx);
    // Some items from each producer first: both are mid-stream.
    let mut next = [0u64; PRODUCERS as usize];
    let check = |next: &mut [u64], m: &[u8]| {
        let p = u64::from_le_bytes(m[..8].try_into().unwrap()) as usize;
        let i = u64::from_le_bytes(m[8..16].try_into().unwrap());
        assert_eq!(i, next[p], "producer {p}: out of order or duplicated");
        next[p] += 1;
    };
    while next.iter().any(|&n| n < 100) {
        let m = rx.get_timeout(WATCHDOG).expect("producers make progress");
        check(&mut next, &m);
    }
    for c in children {
        kill(c);
    }
    let rest = watched(move || {
        let mut rest = Vec::new();
        loop {
            match rx.get() {
                Ok(m) => rest.push(m),
                Err(e) => return (e, rest),
            }
        }
    });
    assert_eq!(rest.0, GetError::Disconnected);
    for m in &rest.1 {
        check(&mut next, m);
    }
}

/// Receivers die while a sender is blocked in `put` on a full queue.
#[test]
fn receivers_killed_while_a_sender_blocks_in_put() {
    let _serial = serial();
    let (tx, rx) = Queue::<u32>::anonymous(2).unwrap().split();
    let never = Event::anonymous().unwrap();
    let never = &never;
    let receivers: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            spawn(move || {
                never.wait();
                i32::from(rx.get().is_err())
            })
        })
        .collect();
    drop(rx);
    tx.put(1).unwrap();
    tx.put(2).unwrap();
    for r in &receivers {
        wait_until_asleep(r.pid());
    }
    let got = blocked_then(
        move || tx.put(3),
        || {
            for r in receivers {
                kill(r);
            }
        },
    );
    assert_eq!(got, Err(PutError::Disconnected(3)));
}

/// Receivers that exit normally: a sender on the full queue is told, and a
/// put that finds room still succeeds (the item waits in the queue).
#[test]
fn receivers_exit_then_put_on_full_queue_is_disconnected() {
    let _serial = serial();
    let (tx, rx) = Queue::<u32>::anonymous(2).unwrap().split();
    let child = spawn(move || match rx.get() {
        Ok(1) => 0,
        _ => 1,
    });
    tx.put(1).unwrap();
    assert_eq!(join(child), ExitStatus::Code(0));
    tx.put(2).unwrap();
    tx.put(3).unwrap();
    assert_eq!(tx.try_put(4), Err(PutError::Disconnected(4)));
    assert_eq!(watched(move || tx.put(5)), Err(PutError::Disconnected(5)));
}

/// The last sender dropped in another (still running) process wakes a
/// receiver blocked in `get`: the drop wakes the futex.
#[test]
fn last_sender_dropped_in_a_live_process_wakes_the_receiver() {
    let _serial = serial();
    let (tx, rx) = Queue::<u8>::anonymous(4).unwrap().split();
    let go = Event::anonymous().unwrap();
    let never = Event::anonymous().unwrap();
    let (go, never) = (&go, &never);
    let child = spawn(move || {
        go.wait();
        drop(tx);
        never.wait();
        0
    });
    let got = blocked_then(move || rx.get(), || go.set());
    assert_eq!(got, Err(GetError::Disconnected));
    kill(child);
}

/// In one process, threads: dropping the last `Sender` wakes a blocked
/// receiver; dropping the last `Receiver` wakes a blocked sender.
#[test]
fn last_drop_wakes_blocked_threads() {
    let _serial = serial();
    let (tx, rx) = Queue::<u8>::anonymous(2).unwrap().split();
    let got = blocked_then(move || rx.get(), move || drop(tx));
    assert_eq!(got, Err(GetError::Disconnected));

    let (tx, rx) = Queue::<u8>::anonymous(2).unwrap().split();
    tx.put(1).unwrap();
    tx.put(2).unwrap();
    let got = blocked_then(move || tx.put(3), move || drop(rx));
    assert_eq!(got, Err(PutError::Disconnected(3)));
}

/// The crate's `fork` returns only once the child's inherited handles count:
/// a parent that drops its sender right after forking does not see a false
/// disconnection, even before the child has done anything.
#[test]
fn forked_child_counts_its_inherited_sender_from_the_start() {
    let _serial = serial();
    for _ in 0..20 {
        let (tx, rx) = Queue::<u8>::anonymous(4).unwrap().split();
        let go = Event::anonymous().unwrap();
        let go = &go;
        let child = spawn(move || {
            go.wait();
            i32::from(tx.put(7).is_err())
        });
        // The parent's `tx` was moved into the closure and is dropped now.
        assert_eq!(rx.try_get(), Err(GetError::Empty));
        go.set();
        assert_eq!(rx.get_timeout(WATCHDOG), Ok(7));
        assert_eq!(join(child), ExitStatus::Code(0));
        assert_eq!(rx.get_timeout(WATCHDOG), Err(GetError::Disconnected));
    }
}

/// A plain `Queue` handle counts as sender and receiver: Python-style code
/// that holds one never sees `Disconnected`.
#[test]
fn plain_queue_handles_are_never_disconnected_from_themselves() {
    let _serial = serial();
    let q: Queue<u8> = Queue::anonymous(2).unwrap();
    let child = spawn(|| i32::from(q.put(1).is_err()));
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(q.get(), Ok(1));
    assert_eq!(q.try_get(), Err(GetError::Empty));
    assert_eq!(
        q.get_timeout(Duration::from_millis(1)),
        Err(GetError::Timeout)
    );
}

/// `close()` is this process's "I put no more"; `shutdown()` is global.
#[test]
fn close_is_per_process_and_shutdown_is_global() {
    let _serial = serial();
    let q: Queue<u8> = Queue::anonymous(4).unwrap();
    let rx = q.receiver();
    q.put(1).unwrap();
    q.close();
    assert_eq!(q.put(2), Err(PutError::Closed(2)));
    // The receiver drains, then no open sender is left anywhere.
    assert_eq!(rx.get(), Ok(1));
    assert_eq!(rx.get(), Err(GetError::Disconnected));

    // A process forked before the close keeps its own (open) sending side.
    let q: Queue<u8> = Queue::anonymous(4).unwrap();
    let rx = q.receiver();
    let go = Event::anonymous().unwrap();
    let go = &go;
    let child = spawn(|| {
        go.wait();
        i32::from(q.put(3).is_err())
    });
    q.close();
    assert_eq!(q.put(2), Err(PutError::Closed(2)));
    go.set();
    assert_eq!(rx.get_timeout(WATCHDOG), Ok(3));
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(rx.get_timeout(WATCHDOG), Err(GetError::Disconnected));

    let q: Queue<u8> = Queue::anonymous(4).unwrap();
    let child = spawn(|| {
        q.shutdown();
        0
    });
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(q.put(1), Err(PutError::Closed(1)));
    assert_eq!(q.get(), Err(GetError::Closed));
}

/// `PipeEnd::close` closes this process's end only.
#[test]
fn pipe_close_is_this_process_end() {
    let _serial = serial();
    let (a, b) = Pipe::anonymous(4, 16).unwrap();
    a.send(b"last").unwrap();
    a.close();
    assert!(matches!(a.send(b"more"), Err(PutError::Closed(_))));
    assert_eq!(a.recv(), Err(GetError::Closed));
    assert_eq!(b.recv().unwrap(), b"last");
    assert_eq!(b.recv(), Err(GetError::Disconnected));
    assert!(b.poll(Duration::ZERO));
}

/// `SerdeQueue` ends follow the same rules.
#[cfg(feature = "serde")]
#[test]
fn serde_queue_ends_disconnect() {
    let _serial = serial();
    let (tx, rx) = multiproc::queue::SerdeQueue::<String>::anonymous(4, 64)
        .unwrap()
        .split();
    let child = spawn(move || i32::from(tx.put("hi".to_owned()).is_err()));
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(rx.get().unwrap(), "hi");
    assert!(matches!(
        rx.get(),
        Err(multiproc::queue::SerdeError::Get(GetError::Disconnected))
    ));
}

/// The fork idiom for a copy the child only borrowed: the child closes it,
/// and it stops counting while the child lives on.
#[test]
fn child_closes_a_borrowed_receiver_copy() {
    let _serial = serial();
    let (tx, rx) = Queue::<u8>::anonymous(2).unwrap().split();
    let closed = Event::anonymous().unwrap();
    let never = Event::anonymous().unwrap();
    let (closed, never) = (&closed, &never);
    let rx_copy = &rx;
    let child = spawn(move || {
        rx_copy.close();
        closed.set();
        never.wait();
        0
    });
    closed.wait();
    drop(rx);
    tx.put(1).unwrap();
    tx.put(2).unwrap();
    assert_eq!(watched(move || tx.put(3)), Err(PutError::Disconnected(3)));
    kill(child);
}

/// A thread keeps making and dropping handles of a queue while the main
/// thread forks children that do the same: a child forked while that thread
/// held this process's end-count lock must still be able to take it (the
/// thread does not exist in the child). Each child must finish, not hang.
#[test]
fn forks_while_another_thread_churns_handles_never_hang_the_child() {
    let _serial = serial();
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let q: Queue<u8> = Queue::anonymous(4).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (q, stop) = (q.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let tx = q.sender();
                let rx = tx.clone();
                drop((tx, rx));
            }
        })
    };
    for _ in 0..100 {
        let child = spawn(|| {
            let tx = q.sender();
            let rx = q.receiver();
            drop((tx, rx));
            i32::from(q.put(1).is_err())
        });
        assert_eq!(join(child), ExitStatus::Code(0));
        assert_eq!(q.try_get(), Ok(1));
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
}

// ---- Iterators ----------------------------------------------------------------

/// crossbeam's `iter`: a receiver iterates over everything the producers
/// sent, in order per producer, and the iteration ends (no hang) once the
/// producer processes have exited.
#[test]
fn receiver_iter_ends_when_the_producers_exit() {
    let _serial = serial();
    let (tx, rx) = Queue::<u64>::anonymous(4).unwrap().split();
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let tx = &tx;
            spawn(move || {
                for i in 0..100 {
                    if tx.put(p << 32 | i).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    drop(tx);
    let got: Vec<u64> = watched(move || rx.iter().collect());
    for c in producers {
        assert_eq!(join(c), ExitStatus::Code(0));
    }
    assert_eq!(got.len(), 200);
    for p in 0..2u64 {
        let mine: Vec<u64> = got
            .iter()
            .filter(|&&v| v >> 32 == p)
            .map(|&v| v & 0xffff_ffff)
            .collect();
        assert_eq!(
            mine,
            (0..100).collect::<Vec<_>>(),
            "producer {p}'s items in order"
        );
    }
}

/// The same for byte queues and pipes, with the producer SIGKILLed after it
/// sent: what it sent is delivered, then the stream ends.
#[test]
fn bytes_and_pipe_iter_end_when_the_producer_is_killed() {
    let _serial = serial();
    let (tx, rx) = BytesQueue::anonymous(8, 16).unwrap().split();
    let (near, far) = Pipe::anonymous(8, 16).unwrap();
    let never = Event::anonymous().unwrap();
    let never = &never;
    let child = spawn(move || {
        let sent = tx.put(b"a").is_ok() && tx.put(b"bc").is_ok() && far.send(b"p").is_ok();
        drop((tx, far));
        never.wait();
        i32::from(!sent)
    });
    wait_until_asleep(child.pid());
    kill(child);
    let (q, p) = watched(move || {
        (
            rx.iter().collect::<Vec<_>>(),
            near.iter().collect::<Vec<_>>(),
        )
    });
    assert_eq!(q, [b"a".to_vec(), b"bc".to_vec()]);
    assert_eq!(p, [b"p".to_vec()]);
}

/// `try_iter` takes what is there now and stops at empty, without waiting for
/// the producer (which still holds its sender).
#[test]
fn try_iter_drains_without_waiting() {
    let _serial = serial();
    let q = JoinableQueue::<u32>::anonymous(8).unwrap();
    let (tx, rx) = q.clone().split();
    drop(q);
    assert_eq!(tx.put_many(&[1, 2, 3]), 3);
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rx.try_iter().next(), None);
    assert_eq!(rx.try_get(), Err(GetError::Empty), "the sender is alive");
    for _ in 0..3 {
        rx.task_done().unwrap();
    }
    assert!(rx.join_timeout(Duration::from_secs(1)));
}

/// Python's `BrokenPipeError`: once no live process holds the other end, a
/// send fails even though the buffer has room (nobody could ever read it).
#[test]
fn pipe_send_fails_at_once_when_the_other_end_is_gone() {
    let _serial = serial();
    // In this process: the other end dropped.
    let (a, b) = Pipe::anonymous(8, 16).unwrap();
    drop(b);
    assert!(matches!(a.send(b"x"), Err(PutError::Disconnected(m)) if m == b"x"));
    // Across processes: the only holder of the other end is SIGKILLed.
    let (a, b) = Pipe::anonymous(8, 16).unwrap();
    let never = Event::anonymous().unwrap();
    let never = &never;
    let child = spawn(move || {
        never.wait();
        i32::from(b.recv().is_err())
    });
    a.send(b"1").unwrap(); // the child holds `b`: room, and a live receiver
    wait_until_asleep(child.pid());
    kill(child);
    let got = watched(move || a.send(b"2").map_err(|e| format!("{e:?}")));
    assert_eq!(got, Err("Disconnected(..)".to_owned()));
}

/// `close` in this process ends the calls this process has blocked on that
/// side (found by a hostile user's port: a put waiting for room and a get
/// waiting for an item slept on after `close`, a timed one until its
/// timeout). Each call is asleep in the kernel before the close.
#[test]
fn close_wakes_this_process_calls_blocked_on_that_side() {
    let _serial = serial();
    // A put waiting for room, then `Queue::close` on a clone.
    let q = Queue::<u8>::anonymous(1).unwrap();
    q.put(1).unwrap();
    let q2 = q.clone();
    let got = blocked_then(move || q2.put(2), move || q.close());
    assert_eq!(got, Err(PutError::Closed(2)));

    // The same with a timeout the close must cut short (the caller is told
    // `Closed`, not `Timeout`).
    let q = Queue::<u8>::anonymous(1).unwrap();
    q.put(1).unwrap();
    let q2 = q.clone();
    let got = blocked_then(move || q2.put_timeout(2, WATCHDOG * 2), move || q.close());
    assert_eq!(got, Err(PutError::Closed(2)));

    // A get waiting for an item, then `Receiver::close` on a clone; the
    // sender stays alive, so only the close can end the wait.
    let (tx, rx) = Queue::<u8>::anonymous(2).unwrap().split();
    let rx2 = rx.clone();
    let got = blocked_then(move || rx2.get(), move || rx.close());
    assert_eq!(got, Err(GetError::Closed));
    drop(tx);

    // A pipe end blocked in `recv`, then `close` of that end; and `poll`
    // on a closed end answers at once.
    let (a, b) = Pipe::anonymous(2, 8).unwrap();
    let a = std::sync::Arc::new(a);
    let a2 = std::sync::Arc::clone(&a);
    let closer = std::sync::Arc::clone(&a);
    let got = blocked_then(move || a2.recv(), move || closer.close());
    assert_eq!(got, Err(GetError::Closed));
    let ready = watched(move || a.poll(Duration::MAX));
    assert!(ready, "poll on an end this process closed is ready at once");
    drop(b);
}
