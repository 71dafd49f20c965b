//! `SharedDict` across real processes (`fork`), with exact accounting.
//!
//! Children run only crate code and allocation-free loops, end with `_exit`
//! (through `multiproc::process::fork`), and report through exit codes and
//! scratch shared memory. Every wait on a child is under the watchdog; nothing
//! synchronizes by sleeping.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report; std atomics on our own scratch mapping"
)]

mod common;

use std::sync::atomic::Ordering;

use common::{Scratch, join_all_ok, spawn};
use multiproc::{Event, Lock, SharedDict};

/// 100 processes, each 1,000 `update` decrements of one shared key and 1,000
/// inserts of its own keys: nothing is lost, every key is there with its value.
#[test]
fn hundred_processes_update_one_key_and_insert_their_own() {
    const PROCS: u64 = 100;
    const PER: u64 = 1_000;
    /// Children run this many at a time (all 100 are separate processes).
    const BATCH: u64 = 20;
    const SHARED: u64 = u64::MAX;
    let value_of = |k: u64| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) as i64;

    let d: SharedDict<u64, i64> = SharedDict::anonymous((PROCS * PER + 1) as usize).unwrap();
    assert_eq!(d.insert(SHARED, (PROCS * PER) as i64), Ok(None));
    // One start gate per batch, so a batch's children contend from the start.
    let gates: Vec<Event> = (0..PROCS / BATCH)
        .map(|_| Event::anonymous().unwrap())
        .collect();
    let mut pids = Vec::new();
    for b in 0..PROCS / BATCH {
        let gate = &gates[b as usize];
        let children: Vec<_> = (b * BATCH..(b + 1) * BATCH)
            .map(|i| {
                let d = &d;
                spawn(move || {
                    if !gate.wait_timeout(common::WATCHDOG) {
                        return 1;
                    }
                    for j in 0..PER {
                        match d.update(&SHARED, |v| *v -= 1) {
                            Ok(Some(())) => {}
                            _ => return 2,
                        }
                        let k = i * PER + j;
                        if d.insert(k, value_of(k)) != Ok(None) {
                            return 3;
                        }
                    }
                    0
                })
            })
            .collect();
        pids.extend(children.iter().map(|c| c.pid()));
        gate.set();
        join_all_ok(children);
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), PROCS as usize, "100 distinct processes");

    assert_eq!(d.get(&SHARED), Ok(Some(0)), "lost updates");
    assert_eq!(d.len(), (1 + PROCS * PER) as usize);
    let stats = d.stats();
    assert_eq!(stats.len, (1 + PROCS * PER) as usize);
    assert_eq!(stats.recoveries, 0);
    // Every child key, by lookup (a 1-in-7 sample) and all of them by iteration.
    for k in (0..PROCS * PER).step_by(7) {
        assert_eq!(d.get(&k), Ok(Some(value_of(k))), "key {k}");
    }
    let mut n = 0u64;
    for (k, v) in d.iter().unwrap() {
        if k == SHARED {
            assert_eq!(v, 0);
        } else {
            assert!(k < PROCS * PER, "stray key {k}");
            assert_eq!(v, value_of(k), "key {k}");
        }
        n += 1;
    }
    assert_eq!(n, 1 + PROCS * PER);
    // Full at exactly capacity.
    assert!(d.insert(PROCS * PER, 0).is_err());
}

// Scratch words for the torn-read test.
const STOP: usize = 0;
const WRITES: usize = 1;
const READS: usize = 2; // + reader index
const TORN: usize = 8;

/// Sets `STOP` to 2 ("abort") if the test panics, so no child outlives it.
struct StopOnPanic<'a>(&'a Scratch);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.atomic(STOP).store(2, Ordering::SeqCst);
        }
    }
}

/// One writer process rewrites a few `[u64; 8]` values (all words equal, the
/// word encoding the key) by `insert`, `update` and remove + re-insert, while
/// reader processes `get` and `iter` them: no reader ever sees a mix of words.
#[test]
fn readers_never_see_a_torn_value() {
    const KEYS: u64 = 4;
    const READERS: usize = 2;
    /// Reads per reader, at least; readers also wait for this many value
    /// changes so that reads certainly overlap writes.
    const MIN_READS: u64 = 50_000;
    const MIN_CHANGES: u64 = 2_000;
    // x = round * KEYS + key, so a value also names its key.
    let d: SharedDict<u64, [u64; 8]> = SharedDict::anonymous(16).unwrap();
    for k in 0..KEYS {
        d.insert(k, [k; 8]).unwrap();
    }
    let mem = Scratch::new(16);
    // On a failed assertion, stop the children instead of leaving them running.
    let _stop = StopOnPanic(&mem);

    let writer = spawn(|| {
        let mut round = 1u64;
        while mem.atomic(STOP).load(Ordering::SeqCst) == 0 {
            for k in 0..KEYS {
                let x = round * KEYS + k;
                let ok = match round % 4 {
                    0 | 1 => d.insert(k, [x; 8]).is_ok_and(|old| old.is_some()),
                    2 => d.update(&k, |v| *v = [x; 8]) == Ok(Some(())),
                    _ => {
                        d.remove(&k).is_ok_and(|old| old.is_some())
                            && d.insert(k, [x; 8]) == Ok(None)
                    }
                };
                if !ok {
                    mem.atomic(STOP).store(2, Ordering::SeqCst); // release the readers
                    return 1;
                }
            }
            mem.atomic(WRITES).fetch_add(1, Ordering::SeqCst);
            round += 1;
        }
        0
    });
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (d, mem) = (&d, &mem);
            spawn(move || {
                let check = |k: u64, v: &[u64; 8]| v.iter().all(|w| *w == v[0]) && v[0] % KEYS == k;
                let mut reads = 0u64;
                let mut changes = 0u64;
                let mut last = [0u64; KEYS as usize];
                while reads < MIN_READS || changes < MIN_CHANGES {
                    if mem.atomic(STOP).load(Ordering::Relaxed) == 2 {
                        return 5; // the writer failed
                    }
                    let k = reads % KEYS;
                    match d.get(&k) {
                        Ok(Some(v)) => {
                            if !check(k, &v) {
                                mem.atomic(TORN).fetch_add(1, Ordering::SeqCst);
                                return 1;
                            }
                            if v[0] != last[k as usize] {
                                last[k as usize] = v[0];
                                changes += 1;
                            }
                        }
                        Ok(None) => {} // between a remove and its re-insert
                        Err(_) => return 2,
                    }
                    reads += 1;
                    // The second reader also walks the whole table now and then.
                    if r == 1 && reads % 64 == 0 {
                        let Ok(it) = d.iter() else { return 3 };
                        for (k, v) in it {
                            if k >= KEYS || !check(k, &v) {
                                mem.atomic(TORN).fetch_add(1, Ordering::SeqCst);
                                return 4;
                            }
                        }
                    }
                }
                mem.atomic(READS + r).store(reads, Ordering::SeqCst);
                0
            })
        })
        .collect();
    join_all_ok(readers);
    mem.atomic(STOP).store(1, Ordering::SeqCst);
    join_all_ok(vec![writer]);
    assert_eq!(mem.atomic(TORN).load(Ordering::SeqCst), 0);
    let reads: Vec<u64> = (0..READERS)
        .map(|r| mem.atomic(READS + r).load(Ordering::SeqCst))
        .collect();
    let writes = mem.atomic(WRITES).load(Ordering::SeqCst);
    eprintln!("torn-read test: reads per reader {reads:?}, writer rounds {writes}");
    assert!(reads.iter().all(|&n| n >= MIN_READS));
    assert!(writes > 0);
    assert_eq!(d.len(), KEYS as usize);
    for k in 0..KEYS {
        let v = d.get(&k).unwrap().unwrap();
        assert!(v.iter().all(|w| *w == v[0]) && v[0] % KEYS == k);
    }
}

/// The Python way: `with lock: d[k] = d[k] + 1` (a separate `Lock` around a
/// lock-free `get` and an `insert`) loses nothing either.
#[test]
fn lock_around_get_and_insert_loses_no_increment() {
    const PROCS: usize = 4;
    const ROUNDS: u64 = 2_000;
    let d: SharedDict<u64, u64> = SharedDict::anonymous(8).unwrap();
    let lock = Lock::anonymous().unwrap();
    d.insert(7, 0).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            spawn(|| {
                for _ in 0..ROUNDS {
                    let Ok(_g) = lock.lock() else { return 1 };
                    let Ok(Some(v)) = d.get(&7) else { return 2 };
                    std::hint::spin_loop();
                    if d.insert(7, v + 1) != Ok(Some(v)) {
                        return 3;
                    }
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    assert_eq!(d.get(&7), Ok(Some(PROCS as u64 * ROUNDS)));
    assert_eq!(d.len(), 1);
}
