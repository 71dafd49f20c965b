//! Loom models of every primitive's algorithm.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom`
//!
//! Under `--cfg loom` the crate's facade swaps atomics for loom's, the futex for a
//! model with the kernel's compare-and-sleep guarantee (timed waits block until
//! woken, so a wait that only a timeout could end is a deadlock loom reports),
//! and the robust mutex for a mock of its contract (`EOWNERDEAD` once to the next
//! acquirer, then `consistent` or `ENOTRECOVERABLE`). The models below run the
//! same `Raw*` code the library runs in shared memory.
//!
//! The wait layer's models and those of Semaphore, Event, Condition and Barrier
//! live beside their code (`src/park.rs`, `src/sync/tests/`) and run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --lib loom`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use multiproc::__loom::{Acquired, How, LoomOwners, MutexError, RawLock, RawRLock};

/// Enters a critical section guarded by an "inside" flag that must be false.
fn critical(inside: &AtomicBool) {
    assert!(
        !inside.swap(true, Ordering::Relaxed),
        "two threads inside the lock"
    );
    inside.store(false, Ordering::Relaxed);
}

#[test]
fn lock_mutual_exclusion() {
    loom::model(|| {
        let lock = Arc::new(RawLock::new());
        let inside = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                thread::spawn(move || {
                    assert_eq!(lock.acquire(How::Block, &LoomOwners), Ok(Acquired::Clean));
                    critical(&inside);
                    lock.release().unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(lock.acquire(How::Try, &LoomOwners), Ok(Acquired::Clean));
    });
}

#[test]
fn lock_owner_died_is_handed_over_exactly_once() {
    loom::model(|| {
        let lock = Arc::new(RawLock::new());
        let victim = {
            let lock = lock.clone();
            thread::spawn(move || {
                assert_eq!(lock.acquire(How::Block, &LoomOwners), Ok(Acquired::Clean));
                lock.simulate_owner_death(); // SIGKILL while holding
            })
        };
        let survivor = {
            let lock = lock.clone();
            thread::spawn(move || {
                let died = match lock.acquire(How::Block, &LoomOwners) {
                    Ok(Acquired::OwnerDied) => {
                        assert!(lock.is_owned_by_me());
                        lock.mark_consistent().unwrap();
                        true
                    }
                    Ok(Acquired::Clean) => false,
                    Err(e) => panic!("{e:?}"),
                };
                lock.release().unwrap();
                died
            })
        };
        victim.join().unwrap();
        let survivor_saw_death = survivor.join().unwrap();
        // If the survivor went first, the death happened after it: we see it now.
        let main_saw_death = match lock.acquire(How::Block, &LoomOwners) {
            Ok(Acquired::OwnerDied) => true,
            Ok(Acquired::Clean) => false,
            Err(e) => panic!("{e:?}"),
        };
        assert!(
            survivor_saw_death ^ main_saw_death,
            "the death is reported exactly once"
        );
    });
}

#[test]
fn lock_released_without_repair_is_not_recoverable() {
    loom::model(|| {
        let lock = Arc::new(RawLock::new());
        let l2 = lock.clone();
        thread::spawn(move || {
            l2.acquire(How::Block, &LoomOwners).unwrap();
            l2.simulate_owner_death();
        })
        .join()
        .unwrap();
        // Two acquirers race; whoever is first sees the death and releases
        // without repairing, so the other must get NotRecoverable.
        let take = |lock: &RawLock| {
            let r = lock.acquire(How::Block, &LoomOwners);
            if r == Ok(Acquired::OwnerDied) {
                lock.release().unwrap();
            }
            r
        };
        let l3 = lock.clone();
        let other = thread::spawn(move || take(&l3));
        let mine = take(&lock);
        let other = other.join().unwrap();
        let died = [mine, other]
            .iter()
            .filter(|r| **r == Ok(Acquired::OwnerDied))
            .count();
        let refused = [mine, other]
            .iter()
            .filter(|r| **r == Err(MutexError::NotRecoverable))
            .count();
        assert_eq!((died, refused), (1, 1), "{mine:?} {other:?}");
        assert_eq!(
            lock.acquire(How::Try, &LoomOwners),
            Err(MutexError::NotRecoverable)
        );
    });
}

/// Two waiters queue behind a holder that releases: the waiters bit must be
/// kept by a waiter that slept and then acquired, or the second sleeper is never
/// woken (mutation-checked: acquiring with `keep = cur & WAITERS` after a sleep
/// deadlocks this model).
#[test]
fn lock_two_sleepers_are_both_woken_in_turn() {
    loom::model(|| {
        let lock = Arc::new(RawLock::new());
        let inside = Arc::new(AtomicBool::new(false));
        lock.acquire(How::Block, &LoomOwners).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                thread::spawn(move || {
                    lock.acquire(How::Block, &LoomOwners).unwrap();
                    critical(&inside);
                    lock.release().unwrap();
                })
            })
            .collect();
        lock.release().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
    });
}

/// Two acquirers race a holder that dies holding the lock: the death is handed
/// over exactly once (to a survivor, or to main afterwards if the holder went
/// last), and nobody sleeps through it (mutation-checked: a probe that ignores
/// the beacon, `Probe::Alive(None)`, deadlocks this model).
#[test]
fn lock_owner_death_reaches_two_sleepers() {
    // Four threads: bounded at 2 preemptions (like the ring models) to stay
    // within a minute.
    ring_model(2, || {
        let lock = Arc::new(RawLock::new());
        let victim = {
            let lock = lock.clone();
            thread::spawn(move || {
                lock.acquire(How::Block, &LoomOwners).unwrap();
                lock.simulate_owner_death();
            })
        };
        let survivors: Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || {
                    let r = lock.acquire(How::Block, &LoomOwners).unwrap();
                    if r == Acquired::OwnerDied {
                        lock.mark_consistent().unwrap();
                    }
                    lock.release().unwrap();
                    usize::from(r == Acquired::OwnerDied)
                })
            })
            .collect();
        victim.join().unwrap();
        let mut died: usize = survivors.into_iter().map(|s| s.join().unwrap()).sum();
        if lock.acquire(How::Try, &LoomOwners) == Ok(Acquired::OwnerDied) {
            died += 1;
        }
        assert_eq!(died, 1, "the death is handed over exactly once");
    });
}

#[test]
fn rlock_reentry_and_exclusion() {
    loom::model(|| {
        let lock = Arc::new(RawRLock::new());
        let inside = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                thread::spawn(move || {
                    lock.acquire(How::Block, &LoomOwners).unwrap();
                    lock.acquire(How::Block, &LoomOwners).unwrap();
                    assert_eq!(lock.depth(), 2);
                    critical(&inside);
                    lock.release().unwrap();
                    critical(&inside);
                    lock.release().unwrap();
                    assert_eq!(lock.depth(), 0);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn rlock_owner_died_resets_depth() {
    loom::model(|| {
        let lock = Arc::new(RawRLock::new());
        let l2 = lock.clone();
        let victim = thread::spawn(move || {
            l2.acquire(How::Block, &LoomOwners).unwrap();
            l2.acquire(How::Block, &LoomOwners).unwrap();
            l2.simulate_owner_death();
        });
        victim.join().unwrap();
        assert_eq!(
            lock.acquire(How::Block, &LoomOwners),
            Ok(Acquired::OwnerDied)
        );
        assert_eq!(lock.depth(), 1);
        lock.mark_consistent().unwrap();
        lock.release().unwrap();
        assert_eq!(lock.acquire(How::Block, &LoomOwners), Ok(Acquired::Clean));
    });
}

// ---- The queue ring --------------------------------------------------------

use multiproc::__loom::{GetFail, LoomRing, PutFail, WaitFail};

fn nobody_dead(_: u16) -> bool {
    false
}

/// Runs a ring model with at most `bound` preemptions (and never more than the
/// environment's `LOOM_MAX_PREEMPTIONS`): the ring's blocking paths go through
/// the futex model and the in-flight retry loop, whose state space grows much
/// faster than the sync primitives'. Three-thread ring models use 1 (at 2 they
/// exceed loom's branch limit after minutes), two-thread ones 2.
fn ring_model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    let env = builder.preemption_bound.unwrap_or(bound);
    builder.preemption_bound = Some(env.min(bound));
    builder.check(f);
}

// With the blocking entry points, a 2 producers x 2 consumers model on a two-slot
// ring does not finish in hours even with one preemption (five threads, retry
// loops and the futex model). The two halves below check each side with more
// items per thread and through `get`'s sleep path; the combination is modelled
// with the non-blocking entry points further down, and the 4 x 4 process test
// covers it at scale.

#[test]
fn ring_two_producers_fifo_per_producer_exactly_once() {
    ring_model(2, || {
        // Four slots for four items, so producers never wait: this model is
        // about concurrent claims and publishes, wrap-around is covered below.
        let ring = Arc::new(LoomRing::new(4));
        let producers: Vec<_> = (1..=2u64)
            .map(|p| {
                let ring = ring.clone();
                thread::spawn(move || {
                    for seq in 1..=2u64 {
                        ring.try_put(p as u16, p << 8 | seq).unwrap();
                    }
                })
            })
            .collect();
        // One item taken concurrently with the producers, the rest after them.
        let mut got = vec![ring.get(3, nobody_dead).unwrap()];
        for p in producers {
            p.join().unwrap();
        }
        got.extend((0..3).map(|_| ring.try_get(3).unwrap()));
        for p in 1..=2u64 {
            let mine: Vec<_> = got.iter().filter(|v| *v >> 8 == p).collect();
            assert_eq!(
                mine,
                [&(p << 8 | 1), &(p << 8 | 2)],
                "FIFO per producer: {got:?}"
            );
        }
        assert_eq!(ring.try_get(9), Err(GetFail::Empty(None)));
    });
}

#[test]
fn ring_two_consumers_take_each_item_exactly_once() {
    ring_model(1, || {
        let ring = Arc::new(LoomRing::new(4));
        let consumers: Vec<_> = (3..=4u16)
            .map(|me| {
                let ring = ring.clone();
                thread::spawn(move || ring.get(me, nobody_dead).unwrap())
            })
            .collect();
        for v in 1..=3 {
            ring.try_put(1, v).unwrap();
        }
        let mut all: Vec<_> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        all.push(ring.try_get(5).unwrap());
        all.sort_unstable();
        assert_eq!(all, vec![1, 2, 3]);
    });
}

// ---- 2 producers x 2 consumers on a capacity-2 ring -------------------------
//
// P1 puts a1 then a2, P2 puts b1, C1 takes up to two items, the main thread (C2)
// up to one. Three items through two slots: the third put needs a slot freed by
// a get (wrap-around) while the consumers race each other and the producers.
//
// Loom-sized how:
// - Non-blocking entry points only (`try_put`/`try_get`), with
//   `thread::yield_now` between attempts: no futex model, no in-flight nap.
// - At most `RING_2X2_TRIES` attempts per operation. Two threads retrying with
//   yields can hand the CPU back and forth forever without a preemption (loom
//   charges none for leaving a yielding thread) and blow loom's branch limit.
//   A thread out of attempts stops and leaves the rest of its work (its
//   unput items, its untaken count) to the main thread, which after the joins
//   puts the leftovers in order, draining as needed, and drains the ring. The
//   scheduler can still delay a last attempt arbitrarily, so every placement of
//   a successful put or get against the other threads' steps (within the
//   preemption bound) is explored; only runs with more failed attempts in a row
//   are cut (a failed attempt only reads, or moves a lagging hint as the next
//   attempt would).
// - Preemption bound 1, like the other models with more than two threads:
//   ~1 min at 1 (release, 2 cores); at bound 2 it did not finish in 10 min, and
//   3 tries per operation at bound 1 take ~6x longer.
//
// What it checks:
// - Exactly once: a bitmask of items whose get has returned (a duplicate
//   panics at once), then the multiset of everything taken equals what was put
//   and the ring is empty.
// - FIFO per producer, in the real-time form linearizability gives: put(a1)
//   returns before put(a2) begins (same thread, or main after the joins), so a
//   get that *begins* after a get of a2 has *returned* must not return a1.
//   Within one consumer this is "a1 before a2"; across consumers it rules out a
//   later get finding a1 still queued once a2 is out. Overlapping gets may
//   finish in either order, so nothing stronger is observable from outside.
//   The mask lives in a `std` mutex outside the model: loom runs one thread at a
//   time and switches only at modelled operations, so it records the explored
//   schedule's real-time order exactly, adds no branches, and creates no
//   happens-before edge that could hide an ordering bug in the ring.

/// Attempts per operation in the 2 x 2 model (see above).
const RING_2X2_TRIES: usize = 2;

use std::sync::PoisonError;

/// Items whose get has returned, one bit each (see [`item_bit`]).
type Returned = std::sync::Mutex<u32>;

/// Item `p << 4 | seq` (producer `p` in 1..=2, `seq` in 1..=7) as one bit.
fn item_bit(v: u64) -> u32 {
    1 << ((v >> 4) * 8 + (v & 7))
}

/// Puts `items` in order, `RING_2X2_TRIES` attempts each; returns how many.
fn put_some(ring: &LoomRing, me: u16, items: &[u64]) -> usize {
    for (n, &v) in items.iter().enumerate() {
        let mut tries = RING_2X2_TRIES;
        loop {
            match ring.try_put(me, v) {
                Ok(()) => break,
                Err(PutFail::Full(_)) if tries > 1 => {
                    tries -= 1;
                    thread::yield_now();
                }
                Err(PutFail::Full(_)) => return n,
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    items.len()
}

/// One `try_get`, checked against the items already returned.
fn take_one(ring: &LoomRing, returned: &Returned, me: u16) -> Option<u64> {
    let before = *returned.lock().unwrap_or_else(PoisonError::into_inner);
    let v = ring.try_get(me).ok()?;
    let mut now = returned.lock().unwrap_or_else(PoisonError::into_inner);
    assert_eq!(*now & item_bit(v), 0, "{v:#x} delivered twice");
    if let Some(l) = (v + 1..=(v | 7)).find(|&l| before & item_bit(l) != 0) {
        panic!(
            "{v:#x} taken by a get that began after a get of {l:#x} (same producer, later) returned"
        );
    }
    *now |= item_bit(v);
    Some(v)
}

/// Takes up to `n` items, `RING_2X2_TRIES` attempts each; stops at the first
/// item it cannot get.
fn take_some(ring: &LoomRing, returned: &Returned, me: u16, n: usize) -> Vec<u64> {
    let mut got = Vec::new();
    'items: while got.len() < n {
        for t in 0..RING_2X2_TRIES {
            if t > 0 {
                thread::yield_now();
            }
            if let Some(v) = take_one(ring, returned, me) {
                got.push(v);
                continue 'items;
            }
        }
        break;
    }
    got
}

#[test]
fn ring_two_producers_two_consumers_exactly_once_fifo_per_producer() {
    ring_model(1, || {
        const A: [u64; 2] = [0x11, 0x12];
        const B: [u64; 1] = [0x21];
        let ring = Arc::new(LoomRing::new(2));
        let returned = std::sync::Arc::new(Returned::new(0));
        let p1 = {
            let ring = ring.clone();
            thread::spawn(move || put_some(&ring, 1, &A))
        };
        let p2 = {
            let ring = ring.clone();
            thread::spawn(move || put_some(&ring, 2, &B))
        };
        let c1 = {
            let (ring, returned) = (ring.clone(), returned.clone());
            thread::spawn(move || take_some(&ring, &returned, 3, 2))
        };
        let mut all = take_some(&ring, &returned, 4, 1);
        let leftovers = [(1, &A[p1.join().unwrap()..]), (2, &B[p2.join().unwrap()..])];
        all.extend(c1.join().unwrap());
        // Alone now: finish the producers' work in order, then drain.
        for (me, items) in leftovers {
            for &v in items {
                while ring.try_put(me, v).is_err() {
                    all.push(take_one(&ring, &returned, 5).expect("a full ring yields an item"));
                }
            }
        }
        while let Some(v) = take_one(&ring, &returned, 5) {
            all.push(v);
        }
        all.sort_unstable();
        assert_eq!(all, [0x11, 0x12, 0x21]);
        assert_eq!(ring.try_get(5), Err(GetFail::Empty(None)));
    });
}

#[test]
fn ring_blocking_put_and_get_never_lose_a_wakeup() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(2));
        let r2 = ring.clone();
        // Three items through two slots: the producer must block on full and the
        // consumer on empty, and each must be woken by the other.
        let producer = thread::spawn(move || {
            for v in 1..=3 {
                r2.put(1, v, nobody_dead).unwrap();
            }
        });
        let got: Vec<_> = (0..3).map(|_| ring.get(2, nobody_dead).unwrap()).collect();
        producer.join().unwrap();
        assert_eq!(got, vec![1, 2, 3]);
    });
}

#[test]
fn ring_close_wakes_every_waiter() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(2));
        let getters: Vec<_> = (1..=2u16)
            .map(|me| {
                let ring = ring.clone();
                thread::spawn(move || ring.get(me, nobody_dead))
            })
            .collect();
        ring.close();
        for g in getters {
            assert_eq!(g.join().unwrap(), Err(WaitFail::Closed));
        }
        assert_eq!(ring.try_put(3, 8), Err(PutFail::Closed));
    });
}

#[test]
fn ring_close_wakes_a_blocked_putter() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(2));
        ring.try_put(1, 1).unwrap();
        ring.try_put(1, 2).unwrap();
        let r2 = ring.clone();
        let putter = thread::spawn(move || r2.put(2, 3, nobody_dead));
        ring.close();
        assert_eq!(putter.join().unwrap(), Err(WaitFail::Closed));
        assert_eq!(ring.try_get(3), Ok(1));
        assert_eq!(ring.try_get(3), Ok(2));
    });
}

/// One put of 42 races `close` and a getter `get` (which returns what it
/// took, or `None` for `Closed`): never may the put succeed while the getter
/// reports `Closed` (a stranded item), nor be refused while the getter takes it.
fn put_racing_close(get: fn(&LoomRing) -> Option<u64>) {
    ring_model(2, move || {
        let ring = Arc::new(LoomRing::new(2));
        let r2 = ring.clone();
        let putter = thread::spawn(move || r2.try_put(1, 42));
        let r3 = ring.clone();
        let getter = thread::spawn(move || get(&r3));
        ring.close();
        let put = putter.join().expect("putter");
        let got = getter.join().expect("getter");
        match put {
            Ok(()) => assert_eq!(got, Some(42)),
            Err(PutFail::Closed) => assert_eq!(got, None),
            Err(e) => panic!("{e:?}"),
        }
    });
}

/// `Closed` from a blocking getter as `None`; any other failure fails the model.
fn closed_as_none(r: Result<u64, WaitFail>) -> Option<u64> {
    match r {
        Ok(v) => Some(v),
        Err(WaitFail::Closed) => None,
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn ring_put_racing_close_is_either_delivered_or_handed_back() {
    put_racing_close(|ring| closed_as_none(ring.get(2, nobody_dead)));
}

#[test]
fn ring_recovers_a_dead_writers_slot_and_moves_on() {
    ring_model(2, || {
        const DEAD: u16 = 9;
        let ring = Arc::new(LoomRing::new(2));
        let r2 = ring.clone();
        // The victim claims whichever slot is at the tail (or none, if the live
        // producer filled the ring first) and dies without publishing.
        let victim = thread::spawn(move || {
            let _ = r2.claim_for_write_and_die(DEAD);
        });
        let r3 = ring.clone();
        let live = thread::spawn(move || r3.put(1, 5, nobody_dead).unwrap());
        let got = ring.get(2, |o| o == DEAD).unwrap();
        victim.join().unwrap();
        live.join().unwrap();
        assert_eq!(
            got, 5,
            "the live producer's item arrives past the dead one's slot"
        );
        assert!(ring.abandoned() <= 1);
    });
}

#[test]
fn ring_recovers_a_dead_readers_slot_and_moves_on() {
    ring_model(2, || {
        const DEAD: u16 = 9;
        let ring = Arc::new(LoomRing::new(2));
        ring.try_put(1, 1).unwrap();
        ring.try_put(1, 2).unwrap();
        assert!(ring.claim_for_read_and_die(DEAD)); // took item 1, never frees the slot
        let r2 = ring.clone();
        // The ring looks full until the dead reader's slot is freed.
        let putter = thread::spawn(move || r2.put(1, 3, |o| o == DEAD));
        assert_eq!(ring.get(2, nobody_dead), Ok(2));
        putter.join().unwrap().unwrap();
        assert_eq!(ring.get(2, nobody_dead), Ok(3));
        assert_eq!(ring.abandoned(), 1);
    });
}

#[test]
fn ring_batches_deliver_in_order() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(4));
        let r2 = ring.clone();
        let producer = thread::spawn(move || {
            let mut sent = 0;
            while sent < 3 {
                sent += r2.put_many(1, &[1, 2, 3][sent..]).unwrap_or(0);
                loom::thread::yield_now();
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut out = [0u64; 3];
            let n = ring.get_many(2, &mut out[..3 - got.len()]);
            got.extend_from_slice(&out[..n]);
            loom::thread::yield_now();
        }
        producer.join().unwrap();
        assert_eq!(got, vec![1, 2, 3]);
    });
}

// ---- Disconnection on the ported blocking path ------------------------------
//
// The ring's blocking get/put are `park`'s loop; the last sender (receiver)
// of a process going away is the count RMW then an eventcount bump
// (`RingCore::ends_changed`). The loom futex never times out, so a waiter the
// bump fails to reach is a deadlock loom reports (mutation-checked: making
// `ends_changed` skip its bump makes both models below fail).

#[test]
fn ring_last_sender_drop_wakes_a_blocked_getter_after_draining() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(2));
        let r2 = ring.clone();
        let sender = thread::spawn(move || {
            r2.try_put(1, 5).unwrap();
            r2.drop_sender();
        });
        // Nothing put is stranded behind `Disconnected`.
        assert_eq!(ring.get(2, nobody_dead), Ok(5));
        assert_eq!(ring.get(2, nobody_dead), Err(WaitFail::Disconnected));
        sender.join().unwrap();
    });
}

#[test]
fn ring_last_receiver_drop_wakes_a_blocked_putter() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(2));
        ring.try_put(1, 1).unwrap();
        ring.try_put(1, 2).unwrap();
        let r2 = ring.clone();
        let putter = thread::spawn(move || r2.put(1, 3, nobody_dead));
        ring.drop_receiver();
        assert_eq!(putter.join().unwrap(), Err(WaitFail::Disconnected));
    });
}

/// A getter that polls with `try_get` (which reads the stats line's copy of
/// `CLOSED`, not `not_empty`) and a blocking getter that spins on the head
/// slot before it parks: neither reports `Closed` while an item that a racing
/// put delivered is still in the ring. Mutation-checked: `close` storing the
/// copy before its `not_empty` RMW makes the poller report `Closed` with the
/// item stranded.
#[test]
fn ring_polling_getter_racing_close_never_strands_an_item() {
    put_racing_close(|ring| {
        loop {
            match ring.try_get_or_closed(2) {
                Ok(got) => return got,
                Err(_) => thread::yield_now(),
            }
        }
    });
}

#[test]
fn ring_spinning_getter_racing_close_never_strands_an_item() {
    put_racing_close(|ring| closed_as_none(ring.get_spinning(2)));
}

/// A putter that spins on the tail slot (not on `not_full`) before it parks:
/// a get that frees the slot lets it in, and a close that races it either
/// hands the item back or lets it through to be drained.
#[test]
fn ring_spinning_putter_is_let_in_by_a_get_or_refused_by_close() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(1));
        ring.try_put(1, 7).unwrap();
        let r2 = ring.clone();
        let putter = thread::spawn(move || r2.put_spinning(2, 8));
        assert_eq!(ring.try_get(3), Ok(7));
        assert_eq!(putter.join().unwrap(), Ok(()));
        assert_eq!(ring.try_get(3), Ok(8));
    });
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(1));
        ring.try_put(1, 7).unwrap();
        let r2 = ring.clone();
        let putter = thread::spawn(move || r2.put_spinning(2, 8));
        ring.close();
        assert_eq!(putter.join().unwrap(), Err(WaitFail::Closed));
        assert_eq!(ring.try_get(3), Ok(7));
        assert!(ring.try_get(3).is_err());
    });
}

#[test]
fn ring_spinning_getter_and_poll_see_the_last_drop() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(2));
        let r2 = ring.clone();
        let poller = thread::spawn(move || r2.wait_readable());
        let r3 = ring.clone();
        let getter = thread::spawn(move || r3.get_spinning(2));
        ring.drop_sender();
        assert!(poller.join().unwrap());
        assert_eq!(getter.join().unwrap(), Err(WaitFail::Disconnected));
    });
}

// ---- Capacities that are not powers of two ---------------------------------
//
// Positions skip the unused indices of each lap (`ring` module doc,
// "Positions: any capacity"): at capacity 3 a lap is 4 positions and the hint
// jumps from index 2 to index 0 of the next lap; at capacity 1 every put and
// get crosses a lap. Mutation-checked: freeing a slot to `p + capacity`
// instead of `p + lap` makes the capacity-3 models fail (the next writer
// never finds its sequence, so the blocked producer deadlocks).

#[test]
fn ring_capacity_one_blocking_put_and_get_wrap_without_losing_a_wakeup() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(1));
        let r2 = ring.clone();
        let producer = thread::spawn(move || {
            for v in 1..=3 {
                r2.put(1, v, nobody_dead).unwrap();
            }
        });
        let got: Vec<_> = (0..3).map(|_| ring.get(2, nobody_dead).unwrap()).collect();
        producer.join().unwrap();
        assert_eq!(got, vec![1, 2, 3]);
        assert_eq!(ring.try_get(2), Err(GetFail::Empty(None)));
    });
}

#[test]
fn ring_capacity_three_wraps_across_the_lap_jump_in_order() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(3));
        let r2 = ring.clone();
        // Five items through three slots: the producer blocks on full at least
        // once and the hint crosses from index 2 to the next lap.
        let producer = thread::spawn(move || {
            assert_eq!(r2.put_many(1, &[1, 2]), Ok(2));
            for v in 3..=5 {
                r2.put(1, v, nobody_dead).unwrap();
            }
        });
        let mut got: Vec<_> = (0..3).map(|_| ring.get(2, nobody_dead).unwrap()).collect();
        producer.join().unwrap();
        let mut out = [0u64; 3];
        let n = ring.get_many(2, &mut out);
        got.extend_from_slice(&out[..n]);
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert_eq!(ring.try_put(1, 6), Ok(()));
        assert_eq!(ring.try_get(2), Ok(6));
    });
}

#[test]
fn ring_capacity_one_recovers_a_dead_writers_slot_and_moves_on() {
    ring_model(2, || {
        const DEAD: u16 = 9;
        let ring = Arc::new(LoomRing::new(1));
        // The victim holds the only slot and died before announcing its put.
        // (Racing the claim against a getter that is already asleep, as the
        // capacity-2 model does, needs the sleep slice to notice the death:
        // at capacity 1 no live put can slip past the dead slot to wake the
        // getter, and loom's futex never times out.)
        assert!(ring.claim_for_write_and_die(DEAD));
        let r2 = ring.clone();
        // The live producer waits until the getter poisons and skips the slot.
        let live = thread::spawn(move || r2.put(1, 5, nobody_dead).unwrap());
        let got = ring.get(2, |o| o == DEAD).unwrap();
        live.join().unwrap();
        assert_eq!(got, 5);
        assert_eq!(ring.abandoned(), 1);
        assert_eq!(ring.try_get(2), Err(GetFail::Empty(None)));
    });
}

#[test]
fn ring_capacity_three_recovers_a_dead_readers_slot_and_moves_on() {
    ring_model(2, || {
        const DEAD: u16 = 9;
        let ring = Arc::new(LoomRing::new(3));
        for v in 1..=3 {
            ring.try_put(1, v).unwrap();
        }
        assert!(ring.claim_for_read_and_die(DEAD)); // took item 1, never frees it
        let r2 = ring.clone();
        // Full until the dead reader's slot (index 0) is freed for the next lap.
        let putter = thread::spawn(move || r2.put(1, 4, |o| o == DEAD));
        assert_eq!(ring.get(2, nobody_dead), Ok(2));
        assert_eq!(ring.get(2, nobody_dead), Ok(3));
        putter.join().unwrap().unwrap();
        assert_eq!(ring.get(2, nobody_dead), Ok(4));
        assert_eq!(ring.abandoned(), 1);
    });
}

// ---- Publish and free as plain stores ----------------------------------------
//
// A claimant settles its own BUSY slot word with a plain Release store
// (`RingCore::settle`: publish, refuse after close, free); survivors move a
// BUSY word only by CAS after a confirmed death. Every model above that
// moves items goes through it. Mutation-checked: weakening the store to
// Relaxed makes `ring_batches_deliver_in_order` fail (loom: the reader's copy
// races with the writer's, "concurrent read and write accesses").

// ---- Batch runs --------------------------------------------------------------
//
// A batch call claims the first slot through the tail (head) claim and the
// ones after it directly, while each slot's word is exactly "free for this
// position" ("published for this position"), then moves the hint once past
// the run. Mutation-checked: accepting any word with the right sequence
// (ignoring BUSY) lets the run take a slot a single put has just claimed, and
// this model fails (two writers in one slot's cell).

#[test]
fn ring_batch_run_and_single_put_share_the_tail_exactly_once() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(3));
        let r1 = ring.clone();
        let batch = thread::spawn(move || r1.put_many(1, &[0x11, 0x12]));
        let r2 = ring.clone();
        let single = thread::spawn(move || r2.try_put(2, 0x21));
        // Three items, three slots: neither producer can find the ring full.
        assert_eq!(batch.join().unwrap(), Ok(2));
        assert_eq!(single.join().unwrap(), Ok(()));
        let mut out = [0u64; 4];
        let n = ring.get_many(3, &mut out);
        let got = &out[..n];
        assert_eq!(n, 3, "{got:?}");
        let mine: Vec<_> = got.iter().filter(|v| *v >> 4 == 1).collect();
        assert_eq!(mine, [&0x11, &0x12], "FIFO per producer: {got:?}");
        assert!(got.contains(&0x21));
        // The hints ended where the claims did: the next lap works.
        assert_eq!(ring.put_many(1, &[1, 2, 3]), Ok(3));
        assert_eq!(ring.get_many(3, &mut out[..3]), 3);
        assert_eq!(out[..3], [1, 2, 3]);
    });
}

#[test]
fn ring_batch_run_and_single_get_share_the_head_exactly_once() {
    ring_model(2, || {
        let ring = Arc::new(LoomRing::new(3));
        assert_eq!(ring.put_many(1, &[1, 2, 3]), Ok(3));
        let r1 = ring.clone();
        let batch = thread::spawn(move || {
            let mut out = [0u64; 3];
            let n = r1.get_many(2, &mut out);
            out[..n].to_vec()
        });
        let r2 = ring.clone();
        let single = thread::spawn(move || r2.try_get(3).ok());
        let mut got = batch.join().unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        got.extend(single.join().unwrap());
        while let Ok(v) = ring.try_get(4) {
            got.push(v);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
    });
}
