//! Queues between real processes: exact accounting with many producers and
//! consumers, byte messages with checksums, pipes, joinable queues.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Scratch, join, join_all_ok, spawn};
use multiproc::process::ExitStatus;
use multiproc::{BytesQueue, GetError, JoinableQueue, Pipe, PutError, Queue};

const PRODUCER_SHIFT: u32 = 40;

/// 4 producer processes x 4 consumer processes move 1,000,000 items through a
/// 64-slot ring. Every item is received exactly once (count, sum and sum of
/// squares per producer), and each consumer sees each producer's items in order.
#[test]
fn four_by_four_processes_move_a_million_items_exactly_once_in_order() {
    const PRODUCERS: u64 = 4;
    const CONSUMERS: usize = 4;
    const PER_PRODUCER: u64 = 250_000;
    let q: Queue<u64> = Queue::anonymous(64).unwrap();
    // Per producer: [count, sum, sum of squares] accumulated by all consumers.
    let mem = Scratch::new(3 * PRODUCERS as usize + 1);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = &q;
            spawn(move || {
                for seq in 1..=PER_PRODUCER {
                    if q.put(p << PRODUCER_SHIFT | seq).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            spawn(|| {
                let mut last = [0u64; PRODUCERS as usize];
                let mut acc = [[0u64; 3]; PRODUCERS as usize];
                loop {
                    match q.get() {
                        Ok(v) => {
                            let (p, seq) = (
                                (v >> PRODUCER_SHIFT) as usize,
                                v & ((1 << PRODUCER_SHIFT) - 1),
                            );
                            if p >= PRODUCERS as usize || seq == 0 || seq > PER_PRODUCER {
                                return 2; // corrupt
                            }
                            if seq <= last[p] {
                                return 3; // out of order or duplicate
                            }
                            last[p] = seq;
                            acc[p][0] += 1;
                            acc[p][1] += seq;
                            acc[p][2] = acc[p][2].wrapping_add(seq * seq);
                        }
                        Err(GetError::Closed) => break,
                        Err(_) => return 4,
                    }
                }
                for (p, a) in acc.iter().enumerate() {
                    for (k, v) in a.iter().enumerate() {
                        mem.atomic(3 * p + k).fetch_add(*v, Ordering::SeqCst);
                    }
                }
                0
            })
        })
        .collect();
    join_all_ok(producers);
    q.shutdown();
    join_all_ok(consumers);
    let n = PER_PRODUCER;
    for p in 0..PRODUCERS as usize {
        assert_eq!(
            mem.atomic(3 * p).load(Ordering::SeqCst),
            n,
            "count, producer {p}"
        );
        assert_eq!(
            mem.atomic(3 * p + 1).load(Ordering::SeqCst),
            n * (n + 1) / 2,
            "sum, producer {p}"
        );
        let squares = (1..=n).fold(0u64, |a, s| a.wrapping_add(s * s));
        assert_eq!(
            mem.atomic(3 * p + 2).load(Ordering::SeqCst),
            squares,
            "squares, producer {p}"
        );
    }
    assert_eq!(q.stats().abandoned, 0);
    assert!(q.is_empty());
}

/// xorshift64*: deterministic test data without a dependency.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Byte messages of random length (0..=200) with a header (producer, sequence,
/// checksum of the body): 4 x 4 processes, 1,000,000 messages, every message
/// intact, exactly once, in order per producer.
#[test]
fn bytes_queue_random_lengths_with_checksums_across_processes() {
    const PRODUCERS: u32 = 4;
    const PER_PRODUCER: u32 = 250_000;
    const SLOT: usize = 212;
    let q = BytesQueue::anonymous(32, SLOT).unwrap();
    let mem = Scratch::new(2 * PRODUCERS as usize);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = &q;
            spawn(move || {
                let mut state = 0x9e37_79b9_7f4a_7c15 ^ u64::from(p + 1);
                let mut msg = Vec::with_capacity(SLOT);
                for seq in 1..=PER_PRODUCER {
                    let len = (rng(&mut state) % 201) as usize;
                    msg.clear();
                    msg.extend_from_slice(&p.to_le_bytes());
                    msg.extend_from_slice(&seq.to_le_bytes());
                    msg.extend_from_slice(&[0; 4]);
                    msg.extend((0..len).map(|_| rng(&mut state) as u8));
                    let sum = checksum(&msg[12..]);
                    msg[8..12].copy_from_slice(&sum.to_le_bytes());
                    if q.put(&msg).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            spawn(|| {
                let mut buf = [0u8; SLOT];
                let mut last = [0u32; PRODUCERS as usize];
                let mut count = [0u64; PRODUCERS as usize];
                let mut sum = [0u64; PRODUCERS as usize];
                loop {
                    let n = match q.get_into(&mut buf) {
                        Ok(n) => n,
                        Err(GetError::Closed) => break,
                        Err(_) => return 4,
                    };
                    if n < 12 {
                        return 2;
                    }
                    let word = |i: usize| u32::from_le_bytes(buf[i..i + 4].try_into().unwrap());
                    let (p, seq, check) = (word(0) as usize, word(4), word(8));
                    if p >= PRODUCERS as usize || check != checksum(&buf[12..n]) {
                        return 2; // corrupt
                    }
                    if seq <= last[p] {
                        return 3;
                    }
                    last[p] = seq;
                    count[p] += 1;
                    sum[p] += u64::from(seq);
                }
                for p in 0..PRODUCERS as usize {
                    mem.atomic(2 * p).fetch_add(count[p], Ordering::SeqCst);
                    mem.atomic(2 * p + 1).fetch_add(sum[p], Ordering::SeqCst);
                }
                0
            })
        })
        .collect();
    join_all_ok(producers);
    q.shutdown();
    join_all_ok(consumers);
    let n = u64::from(PER_PRODUCER);
    for p in 0..PRODUCERS as usize {
        assert_eq!(mem.atomic(2 * p).load(Ordering::SeqCst), n);
        assert_eq!(
            mem.atomic(2 * p + 1).load(Ordering::SeqCst),
            n * (n + 1) / 2
        );
    }
}

#[test]
fn joinable_queue_join_waits_for_consumers_in_other_processes() {
    const JOBS: u64 = 2_000;
    let q: JoinableQueue<u64> = JoinableQueue::anonymous(16).unwrap();
    let mem = Scratch::new(1);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            spawn(|| {
                while let Ok(v) = q.get() {
                    mem.atomic(0).fetch_add(v, Ordering::SeqCst);
                    if q.task_done().is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    for v in 1..=JOBS {
        q.put(v).unwrap();
    }
    q.join();
    // join returned: every task was marked done, so every value was added.
    assert_eq!(mem.atomic(0).load(Ordering::SeqCst), JOBS * (JOBS + 1) / 2);
    assert_eq!(q.unfinished(), 0);
    q.shutdown();
    join_all_ok(consumers);
}

#[test]
fn pipe_ping_pong_then_eof_when_the_child_exits() {
    let (parent, child_end) = Pipe::anonymous(4, 64).unwrap();
    // Moved: the parent's copy of the child's end is dropped by `fork`.
    let child = spawn(move || {
        for _ in 0..1_000 {
            let Ok(m) = child_end.recv() else { return 1 };
            if child_end.send(&m).is_err() {
                return 2;
            }
        }
        0 // exits without closing: the parent must still see EOF
    });
    for i in 0u32..1_000 {
        parent.send(&i.to_le_bytes()).unwrap();
        assert_eq!(parent.recv().unwrap(), i.to_le_bytes());
    }
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(parent.recv(), Err(GetError::Disconnected));
    assert!(parent.poll(Duration::ZERO));
}

#[test]
fn pipe_recv_sees_eof_when_the_peer_is_killed_after_draining_what_it_sent() {
    let (parent, child_end) = Pipe::anonymous(4, 64).unwrap();
    let never = multiproc::Event::anonymous().unwrap();
    let never = &never;
    let child = spawn(move || {
        if child_end.send(b"last words").is_err() {
            return 1;
        }
        never.wait();
        0
    });
    assert_eq!(parent.recv().unwrap(), b"last words");
    common::kill(child);
    assert_eq!(parent.recv(), Err(GetError::Disconnected));
}

#[test]
fn put_after_close_hands_the_item_back_in_every_process() {
    let q: Queue<u32> = Queue::anonymous(4).unwrap();
    q.put(1).unwrap();
    let child = spawn(|| {
        q.shutdown();
        0
    });
    assert_eq!(join(child), ExitStatus::Code(0));
    assert!(q.is_shutdown());
    assert_eq!(q.put(9), Err(PutError::Closed(9)));
    assert_eq!(q.try_put(9), Err(PutError::Closed(9)));
    assert_eq!(q.get(), Ok(1));
    assert_eq!(q.get(), Err(GetError::Closed));
    assert_eq!(q.try_get(), Err(GetError::Closed));
}
