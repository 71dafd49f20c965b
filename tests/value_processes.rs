//! Real processes: `Counter`, `Value` and `Array` across `fork`, with exact
//! accounting.
//!
//! Children run only crate code (plus the test's scratch atomics) and end with
//! `_exit` (through `multiproc::process::fork`); they report through exit codes
//! and scratch shared memory, never by printing. Every wait on a child is under a
//! watchdog, and no test sleeps to synchronize.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::sync::atomic::Ordering;

use common::{Scratch, join_all_ok, spawn};
use multiproc::{Array, Counter, Event, Value};

#[test]
fn counter_fetch_sub_from_eight_processes_is_exact_and_linearizable() {
    const PROCS: usize = 8;
    const ROUNDS: usize = 10_000;
    const TOTAL: usize = PROCS * ROUNDS;
    const START: i64 = 1_000;
    let c = Counter::anonymous(START).unwrap();
    // One bit per returned previous value: each must be returned exactly once.
    let seen = Scratch::new(TOTAL.div_ceil(64));
    let go = Event::anonymous().unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            spawn(|| {
                go.wait();
                let mut last = i64::MAX;
                for _ in 0..ROUNDS {
                    let prev = c.fetch_sub(1);
                    // Only decrements happen, so one process sees them descend.
                    if prev >= last {
                        return 1;
                    }
                    last = prev;
                    let Ok(k) = usize::try_from(START - prev) else {
                        return 2;
                    };
                    if k >= TOTAL {
                        return 3;
                    }
                    let bit = 1u64 << (k % 64);
                    if seen.atomic(k / 64).fetch_or(bit, Ordering::Relaxed) & bit != 0 {
                        return 4; // the same previous value handed out twice
                    }
                }
                0
            })
        })
        .collect();
    go.set();
    join_all_ok(children);
    assert_eq!(c.load(), START - TOTAL as i64);
    for w in 0..TOTAL / 64 {
        assert_eq!(seen.atomic(w).load(Ordering::Relaxed), u64::MAX, "word {w}");
    }
}

#[test]
fn value_with_lock_from_eight_writers_is_never_torn_for_two_readers() {
    const WRITERS: u64 = 8;
    const ROUNDS: u64 = 2_000;
    const READERS: usize = 2;
    const FINAL: [u64; 4] = [
        WRITERS * ROUNDS,
        2 * WRITERS * ROUNDS,
        3 * WRITERS * ROUNDS,
        4 * WRITERS * ROUNDS,
    ];
    let v = Value::anonymous([0u64; 4]).unwrap();
    // Word 0: writers finished (set by the parent after reaping them).
    // Words 1..=READERS: loads each reader made; READERS+1..: distinct values seen.
    let mem = Scratch::new(8);
    let consistent = |x: &[u64; 4]| x[1] == 2 * x[0] && x[2] == 3 * x[0] && x[3] == 4 * x[0];

    let (v, mem) = (&v, &mem);
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            spawn(move || {
                let mut last = 0;
                let mut loads = 0u64;
                let mut distinct = 0u64;
                loop {
                    // Read the flag first: a load after seeing it must be final.
                    let done = mem.atomic(0).load(Ordering::SeqCst) == 1;
                    let Ok(x) = v.load() else { return 1 };
                    loads += 1;
                    mem.atomic(1 + r).store(loads, Ordering::Relaxed);
                    if !consistent(&x) {
                        return 2; // torn
                    }
                    if x[0] < last {
                        return 3; // went back in time
                    }
                    distinct += u64::from(x[0] != last);
                    last = x[0];
                    if done {
                        mem.atomic(1 + READERS + r)
                            .store(distinct, Ordering::Relaxed);
                        return if x == FINAL { 0 } else { 4 };
                    }
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            spawn(|| {
                let reader_loads = || (1..=READERS).map(|i| mem.atomic(i).load(Ordering::Relaxed));
                let mut seen: Vec<u64> = reader_loads().collect();
                for round in 0..ROUNDS {
                    // Every 25 rounds, wait until every reader has loaded again,
                    // so the readers really run while the writers write (on a
                    // loaded machine they might otherwise only run afterwards).
                    if round % 25 == 0 {
                        while reader_loads().zip(&seen).any(|(now, &then)| now == then) {
                            std::thread::yield_now();
                        }
                        seen = reader_loads().collect();
                    }
                    let r = v.with_lock(|x| {
                        // Inside the lock the value is consistent too.
                        let ok = consistent(x);
                        x[0] += 1;
                        x[1] += 2;
                        x[2] += 3;
                        x[3] += 4;
                        ok
                    });
                    match r {
                        Ok(true) => {}
                        Ok(false) => return 2,
                        Err(_) => return 1,
                    }
                }
                0
            })
        })
        .collect();
    join_all_ok(writers);
    mem.atomic(0).store(1, Ordering::SeqCst);
    join_all_ok(readers);
    assert_eq!(v.load(), Ok(FINAL));
    assert_eq!(v.recoveries(), 0);
    for r in 0..READERS {
        let loads = mem.atomic(1 + r).load(Ordering::Relaxed);
        let distinct = mem.atomic(1 + READERS + r).load(Ordering::Relaxed);
        assert!(loads >= 1);
        // Diagnostic only (how much the reader overlapped the writers).
        eprintln!("reader {r}: {loads} loads, {distinct} distinct values");
    }
}

#[test]
fn array_atomics_from_several_processes_are_exact() {
    const PROCS: u64 = 4;
    const ROUNDS: u64 = 5_000;
    // 0: fetch_add(1); 1: fetch_add(p + 1); 2: compare_exchange loop +1;
    // 3: fetch_sub(1) from 0 (wraps); 4: swap-based token passing (see below).
    let a = Array::<u64>::anonymous(5).unwrap();
    let go = Event::anonymous().unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|p| {
            spawn(|| {
                go.wait();
                for _ in 0..ROUNDS {
                    if a.fetch_add(0, 1).is_err()
                        || a.fetch_add(1, p + 1).is_err()
                        || a.fetch_sub(3, 1).is_err()
                    {
                        return 1;
                    }
                    let mut cur = a.get(2).unwrap();
                    loop {
                        match a.compare_exchange(2, cur, cur + 1) {
                            Ok(Ok(_)) => break,
                            Ok(Err(actual)) => cur = actual,
                            Err(_) => return 2,
                        }
                    }
                    // Element 4 accumulates through swap: take the whole value
                    // (leaving 0), add 1, give it back with fetch_add. No update
                    // is lost because what swap took is always returned.
                    let Ok(took) = a.swap(4, 0) else { return 3 };
                    if a.fetch_add(4, took + 1).is_err() {
                        return 3;
                    }
                }
                0
            })
        })
        .collect();
    go.set();
    join_all_ok(children);
    let n = PROCS * ROUNDS;
    assert_eq!(
        a.to_vec(),
        Ok(vec![
            n,
            ROUNDS * (1..=PROCS).sum::<u64>(),
            n,
            0u64.wrapping_sub(n),
            n,
        ])
    );
}

#[test]
fn array_with_lock_transfers_from_several_processes_conserve_the_sum() {
    const PROCS: u64 = 4;
    const ROUNDS: u64 = 1_500;
    const SLOTS: usize = 8;
    const EACH: u32 = 1_000;
    // Elements 0..SLOTS are balances, element SLOTS counts transfers.
    let mut init = vec![EACH; SLOTS];
    init.push(0);
    let a = Array::from_slice(&init).unwrap();
    let go = Event::anonymous().unwrap();
    let (a, go) = (&a, &go);
    let children: Vec<_> = (0..PROCS)
        .map(|p| {
            spawn(move || {
                go.wait();
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ p;
                for _ in 0..ROUNDS {
                    rng = rng
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let from = (rng >> 33) as usize % SLOTS;
                    let to = (rng >> 45) as usize % SLOTS;
                    let r = a.with_lock(|s| {
                        // The locked view is a consistent snapshot.
                        let ok = s[..SLOTS].iter().map(|&x| u64::from(x)).sum::<u64>()
                            == u64::from(EACH) * SLOTS as u64;
                        let amount = s[from].min(7);
                        s[from] -= amount;
                        s[to] += amount;
                        s[SLOTS] += 1;
                        ok
                    });
                    if r != Ok(true) {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    go.set();
    join_all_ok(children);
    let v = a.to_vec().unwrap();
    assert_eq!(
        v[..SLOTS].iter().map(|&x| u64::from(x)).sum::<u64>(),
        u64::from(EACH) * SLOTS as u64
    );
    assert_eq!(u64::from(v[SLOTS]), PROCS * ROUNDS);
    assert_eq!(a.recoveries(), 0);
}

#[test]
fn named_value_is_shared_with_a_child_that_opens_it() {
    let name = common::unique_name("value");
    let _u = common::Unlink(name.clone());
    let v = Value::create(&name, [1u32, 2]).unwrap();
    let child = spawn(|| {
        let Ok(w) = Value::<[u32; 2]>::open(&name) else {
            return 1;
        };
        if w.load() != Ok([1, 2]) {
            return 2;
        }
        i32::from(w.with_lock(|x| x.swap(0, 1)).is_err()) * 3
    });
    assert!(common::join(child).success());
    assert_eq!(v.load(), Ok([2, 1]));
}
