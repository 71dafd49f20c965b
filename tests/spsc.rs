//! The single-producer single-consumer channel across real processes: order,
//! capacities, wake-ups, roles (taken on first use, refused while a live
//! process holds them, taken over from a dead one), disconnection, and
//! SIGKILLs of either end in the middle of a stream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Scratch, WATCHDOG, join, spawn};
use multiproc::Event;
use multiproc::process::ExitStatus;
use multiproc::spsc::{self, RecvError, SendError};
use proptest::prelude::*;

#[test]
fn any_capacity_fills_drains_in_order() {
    for cap in [1usize, 3, 30, 1000] {
        let (mut tx, mut rx) = spsc::channel::<u64>(cap).unwrap();
        assert_eq!(tx.capacity(), cap);
        for round in 0..3u64 {
            for i in 0..cap as u64 {
                tx.try_send(round * 10_000 + i).unwrap();
            }
            assert!(
                matches!(tx.try_send(7), Err(SendError::Full(7))),
                "cap {cap}"
            );
            assert_eq!((tx.len(), rx.len()), (cap, cap));
            for i in 0..cap as u64 {
                assert_eq!(rx.try_recv(), Ok(round * 10_000 + i), "cap {cap}");
            }
            assert_eq!(rx.try_recv(), Err(RecvError::Empty));
            assert!(rx.is_empty() && tx.is_empty());
        }
    }
}

#[test]
fn zero_and_absurd_capacities_are_refused() {
    assert!(spsc::channel::<u64>(0).is_err());
    assert!(spsc::channel::<u64>(1 << 40).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn behaves_like_a_bounded_vecdeque(
        cap in prop::sample::select(vec![1usize, 2, 3, 30, 1000]),
        ops in prop::collection::vec(any::<Option<u32>>(), 0..400),
    ) {
        let (mut tx, mut rx) = spsc::channel::<u32>(cap).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Some(v) => {
                    let r = tx.try_send(v);
                    if model.len() < cap {
                        prop_assert!(r.is_ok());
                        model.push_back(v);
                    } else {
                        prop_assert!(matches!(r, Err(SendError::Full(x)) if x == v));
                    }
                }
                None => match model.pop_front() {
                    Some(v) => prop_assert_eq!(rx.try_recv(), Ok(v)),
                    None => prop_assert_eq!(rx.try_recv(), Err(RecvError::Empty)),
                },
            }
        }
    }
}

#[test]
fn a_child_producer_streams_in_order_then_disconnects() {
    const N: u64 = 200_000;
    let (tx, mut rx) = spsc::channel::<u64>(64).unwrap();
    let child = spawn(move || {
        let mut tx = tx;
        for i in 0..N {
            if tx.send(i).is_err() {
                return 1;
            }
        }
        0
    });
    for i in 0..N {
        assert_eq!(rx.recv_timeout(WATCHDOG), Ok(i));
    }
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(rx.recv_timeout(WATCHDOG), Err(RecvError::Disconnected));
}

#[test]
fn a_child_consumer_wakes_a_parent_blocked_on_a_full_ring() {
    // Capacity 1: nearly every send waits for the child to take the last one.
    const N: u64 = 20_000;
    let (mut tx, rx) = spsc::channel::<u64>(1).unwrap();
    let sum = Scratch::new(1);
    let child = spawn(|| {
        let mut rx = rx;
        let mut next = 0;
        loop {
            match rx.recv_timeout(WATCHDOG) {
                Ok(v) if v == next => next += 1,
                Ok(_) => return 1,
                Err(RecvError::Disconnected) => break,
                Err(_) => return 2,
            }
        }
        sum.atomic(0).store(next, Ordering::SeqCst);
        0
    });
    for i in 0..N {
        tx.send_timeout(i, WATCHDOG).unwrap();
    }
    drop(tx);
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(sum.atomic(0).load(Ordering::SeqCst), N);
}

#[test]
fn a_sleeping_consumer_is_woken_by_a_send() {
    let (mut tx, rx) = spsc::channel::<u64>(4).unwrap();
    let ready = Event::anonymous().unwrap();
    let child = spawn(|| {
        let mut rx = rx.with_wait_policy(multiproc::WaitPolicy::Park);
        // Take the role (nothing there yet), say so, then block.
        if rx.try_recv() != Err(RecvError::Empty) {
            return 1;
        }
        ready.set();
        match rx.recv() {
            Ok(42) => 0,
            _ => 2,
        }
    });
    assert!(ready.wait_timeout(WATCHDOG));
    common::wait_until_asleep(child.pid());
    tx.send(42).unwrap();
    assert_eq!(join(child), ExitStatus::Code(0));
}

#[test]
fn a_live_holder_keeps_its_role_until_it_drops_the_end() {
    let (mut tx, mut rx) = spsc::channel::<u64>(8).unwrap();
    tx.send(1).unwrap(); // the parent holds the producer role now
    let go = Event::anonymous().unwrap();
    let saw_in_use = Event::anonymous().unwrap();
    let child = spawn(|| {
        // SAFETY: the forked child owns its copy of the parent's memory and
        // never drops the original (it exits without unwinding the parent's
        // frames), so this is the one owner of the child's copy.
        let mut tx = unsafe { std::ptr::read(&tx) };
        match tx.try_send(2) {
            Err(SendError::InUse(2)) => saw_in_use.set(),
            _ => return 1,
        }
        if !go.wait_timeout(WATCHDOG) {
            return 2;
        }
        // The parent dropped its end: the role is free.
        let r = if tx.send_timeout(2, WATCHDOG).is_ok() {
            0
        } else {
            3
        };
        drop(tx);
        r
    });
    assert!(saw_in_use.wait_timeout(WATCHDOG));
    drop(tx);
    // Given back: until the child takes the role, a receive on the drained
    // ring would read the end as disconnected (roles, not copies, count).
    go.set();
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(rx.recv_timeout(WATCHDOG), Ok(1));
    assert_eq!(rx.recv_timeout(WATCHDOG), Ok(2));
    assert_eq!(rx.recv_timeout(WATCHDOG), Err(RecvError::Disconnected));
}

#[test]
fn a_killed_producer_loses_nothing_it_sent_and_its_role_is_taken_over() {
    // Round after round, a child streams numbers and is SIGKILLed at a random
    // moment; the parent then takes the producer role itself and sends the
    // next numbers. What the parent receives is one unbroken run: every item
    // the dead child published, nothing twice, nothing garbled.
    for round in 0..20u64 {
        let (tx, mut rx) = spsc::channel::<u64>(16).unwrap();
        let started = Event::anonymous().unwrap();
        let child = spawn(|| {
            // SAFETY: as in the test above: the child's one owner of its
            // copy of the parent's handle.
            let mut tx = unsafe { std::ptr::read(&tx) };
            let mut i = 0u64;
            loop {
                if tx.send(i).is_err() {
                    return 1;
                }
                if i == 10 {
                    started.set();
                }
                i += 1;
            }
        });
        assert!(started.wait_timeout(WATCHDOG));
        let mut next = 0u64;
        // Take a few while it runs, then kill it mid-stream.
        for _ in 0..(round * 37) % 200 {
            assert_eq!(rx.recv_timeout(WATCHDOG), Ok(next));
            next += 1;
        }
        common::kill(child);
        let mut tx = tx;
        let mut drained = false;
        loop {
            match rx.try_recv() {
                Ok(v) => {
                    assert_eq!(v, next, "round {round}");
                    next += 1;
                }
                Err(RecvError::Disconnected) if !drained => {
                    // The dead holder's items are all here; take over.
                    drained = true;
                    tx.send_timeout(next, WATCHDOG).unwrap();
                    tx.send_timeout(next + 1, WATCHDOG).unwrap();
                }
                Err(RecvError::Empty) if drained => break,
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert!(drained, "round {round}: the death was never seen");
        assert!(next >= 11, "round {round}: the child's first items arrived");
    }
}

#[test]
fn a_killed_consumer_s_unfinished_item_goes_to_the_next_consumer() {
    // A child receives and records the last value it got; it is SIGKILLed
    // mid-stream, and the parent takes the consumer role. The parent's first
    // item follows the child's last record: by one (nothing lost), or by two
    // when the kill fell between the child's receive and its record.
    for round in 0..20u64 {
        let (mut tx, rx) = spsc::channel::<u64>(8).unwrap();
        let last = Scratch::new(1);
        last.atomic(0).store(u64::MAX, Ordering::SeqCst);
        let child = spawn(|| {
            // SAFETY: as above: the child's one owner of its copy.
            let mut rx = unsafe { std::ptr::read(&rx) };
            loop {
                match rx.recv() {
                    Ok(v) => last.atomic(0).store(v, Ordering::SeqCst),
                    Err(_) => return 1,
                }
            }
        });
        let mut i = 0u64;
        let stop = 50 + (round * 53) % 500;
        while i < stop {
            tx.send_timeout(i, WATCHDOG).unwrap();
            i += 1;
        }
        common::kill(child);
        // Fill what room is left; the dead holder's role does not stop sends
        // until the ring is full.
        while tx.try_send(i).is_ok() {
            i += 1;
        }
        let mut rx = rx;
        let first = rx.recv_timeout(WATCHDOG).unwrap();
        let seen = last.atomic(0).load(Ordering::SeqCst);
        let expect = seen.wrapping_add(1);
        assert!(
            first == expect || first == expect + 1,
            "round {round}: child recorded {seen}, next consumer got {first}"
        );
        let mut next = first + 1;
        while let Ok(v) = rx.try_recv() {
            assert_eq!(v, next, "round {round}");
            next += 1;
        }
        assert_eq!(next, i, "round {round}: everything sent arrived");
    }
}

#[test]
fn a_dropped_consumer_fails_sends_at_once() {
    let (mut tx, rx) = spsc::channel::<u64>(8).unwrap();
    let child = spawn(move || {
        let mut rx = rx;
        i32::from(rx.recv_timeout(WATCHDOG) != Ok(5))
    });
    tx.send(5).unwrap();
    assert_eq!(join(child), ExitStatus::Code(0));
    // The child took the role and gave it back when its end dropped.
    assert!(matches!(tx.try_send(6), Err(SendError::Disconnected(6))));
}

#[test]
fn timeouts_are_kept() {
    let (mut tx, mut rx) = spsc::channel::<u64>(1).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)),
        Err(RecvError::Timeout)
    );
    tx.send(1).unwrap();
    assert!(matches!(
        tx.send_timeout(2, Duration::from_millis(5)),
        Err(SendError::Timeout(2))
    ));
}

#[test]
fn a_named_channel_connects_a_process_that_opens_it_by_name() {
    let name = common::unique_name("spsc-named");
    let _u = common::Unlink(name.clone());
    let (mut tx, rx) = spsc::create::<u64>(&name, 30).unwrap();
    drop(rx); // never used: takes no role
    let child = spawn(|| {
        // A fresh open by name, as an unrelated program would.
        let Ok((tx, mut rx)) = spsc::open::<u64>(&name) else {
            return 1;
        };
        drop(tx);
        if rx.capacity() != 30 {
            return 2;
        }
        for i in 0..1000 {
            if rx.recv_timeout(WATCHDOG) != Ok(i) {
                return 3;
            }
        }
        0
    });
    for i in 0..1000 {
        tx.send_timeout(i, WATCHDOG).unwrap();
    }
    assert_eq!(join(child), ExitStatus::Code(0));
    // The consumer gave its end back when it exited.
    assert!(matches!(tx.try_send(7), Err(SendError::Disconnected(7))));
    let info = multiproc::Region::inspect(&name).unwrap();
    assert_eq!(info.kind, "SpscChannel");
    assert_eq!(
        (info.capacity, info.element_size, info.len),
        (Some(30), Some(8), Some(0))
    );
    // The wrong element type is refused at open.
    assert!(spsc::open::<u32>(&name).is_err());
    assert!(multiproc::Queue::<u64>::open(&name).is_err());
}

#[test]
fn a_second_handle_of_an_end_in_the_same_process_is_in_use() {
    let name = common::unique_name("spsc-twice");
    let _u = common::Unlink(name.clone());
    let (mut tx1, mut rx1) = spsc::create::<u64>(&name, 4).unwrap();
    let (mut tx2, mut rx2) = spsc::open::<u64>(&name).unwrap();
    tx1.send(1).unwrap();
    assert!(matches!(tx2.try_send(2), Err(SendError::InUse(2))));
    assert_eq!(rx2.try_recv(), Ok(1));
    assert_eq!(rx1.try_recv(), Err(RecvError::InUse));
    drop(tx1);
    tx2.send(3).unwrap();
    assert_eq!(rx2.try_recv(), Ok(3));
}
