//! kill -9 on `SharedDict` writers: a process dies at a random instruction of a
//! write, over and over, and the dict stays consistent and usable.
//!
//! Values are `[u64; 4] = [x, x ^ K, x.rotate_left(7), !x]` with `x` naming its
//! key in its top bits, so a torn or misplaced value fails its checksum.
//!
//! Each writer owns its keys and keeps, per key, two scratch words outside the
//! crate: `PENDING` (the state it is about to write, stored before the call) and
//! `LAST` (the state the last completed call left, stored right after it
//! returned). After a kill the key must hold one of the two: a dead writer's key
//! maps to its old or its new value, never anything else.
//!
//! Kills land at random moments: the parent waits (no sleeps) until a writer's
//! progress counter passes a random threshold, then SIGKILLs it while it keeps
//! writing. To make "the lock holder died" certain rather than likely, some
//! victims instead park inside an `update` closure (which runs under the writer
//! lock) and are killed there; those kills must each cost one recovery and leave
//! the old value in place.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report; std atomics on our own scratch mapping"
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Scratch, join, spawn};
use multiproc::process::{Child, ExitStatus};
use multiproc::{DictError, Event, SharedDict};

type Val = [u64; 4];
type Dict = SharedDict<u64, Val>;

const K: u64 = 0x5bd1_e995_c6a4_a793;
/// `x` = key << KEY_SHIFT | sequence number (never 0: sequences start at 1).
const KEY_SHIFT: u32 = 48;

fn val(x: u64) -> Val {
    [x, x ^ K, x.rotate_left(7), !x]
}

/// The `x` a value encodes, if its checksum holds and it names `key`.
fn x_of(key: u64, v: &Val) -> Option<u64> {
    let x = v[0];
    (*v == val(x) && x >> KEY_SHIFT == key && x & ((1 << KEY_SHIFT) - 1) != 0).then_some(x)
}

/// A key's state as the scratch records it: 0 = absent, else the `x` it holds.
fn state(d: &Dict, key: u64) -> Result<u64, String> {
    match d.get(&key) {
        Ok(None) => Ok(0),
        Ok(Some(v)) => x_of(key, &v).ok_or_else(|| format!("key {key}: torn value {v:x?}")),
        Err(e) => Err(format!("key {key}: get failed: {e}")),
    }
}

// Scratch layout (u64 words).
const ERR: usize = 0;
const PROGRESS: usize = 8; // + writer
const HANGING: usize = 16; // + writer
const SEQ: usize = 24; // + writer
const LAST: usize = 64; // + key
const PENDING: usize = 128; // + key
const WORDS: usize = 192;

const WRITERS: u64 = 2;
const KEYS_PER_WRITER: u64 = 8;
const KEYS: u64 = WRITERS * KEYS_PER_WRITER;
/// Fewer than `KEYS`: the table fills, inserts meet `Full`, removals churn
/// tombstones.
const CAPACITY: usize = 12;
/// Only the parent writes this key.
const PARENT_KEY: u64 = 31;

fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Records the first error code and returns it as the exit code.
fn fail(mem: &Scratch, code: i32) -> i32 {
    let _ = mem
        .atomic(ERR)
        .compare_exchange(0, code as u64, Ordering::SeqCst, Ordering::SeqCst);
    code
}

/// A writer: random insert / update / update_or_insert / get_or_insert / remove
/// on its own keys, checking each result against `LAST`, forever (until killed;
/// it also stops if the parent is gone). With `hang_after = Some(n)`, after `n`
/// operations it parks inside an `update` closure of its next present key,
/// holding the writer lock.
fn writer(
    d: &Dict,
    mem: &Scratch,
    w: u64,
    seed: u64,
    hang_after: Option<u64>,
    never: &Event,
) -> i32 {
    let parent = std::os::unix::process::parent_id();
    let mut r = seed | 1;
    let progress = mem.atomic(PROGRESS + w as usize);
    let seq = mem.atomic(SEQ + w as usize);
    let mut ops = 0u64;
    loop {
        if ops % 256 == 0 && std::os::unix::process::parent_id() != parent {
            return 0; // orphaned: the test is gone
        }
        let key = w * KEYS_PER_WRITER + rng(&mut r) % KEYS_PER_WRITER;
        let last_w = mem.atomic(LAST + key as usize);
        let pending_w = mem.atomic(PENDING + key as usize);
        let last = last_w.load(Ordering::SeqCst);
        let x = key << KEY_SHIFT | seq.fetch_add(1, Ordering::SeqCst);
        let old = (last != 0).then(|| val(last));

        if last != 0 && hang_after.is_some_and(|n| ops >= n) {
            // Under the writer lock until killed: the value must stay `last`.
            pending_w.store(last, Ordering::SeqCst);
            let _ = d.update(&key, |v| {
                mem.atomic(HANGING + w as usize).store(1, Ordering::SeqCst);
                never.wait();
                *v = val(x);
            });
            return fail(mem, 99); // unreachable: `never` is never set
        }

        let done = match rng(&mut r) % 10 {
            0..=2 => {
                pending_w.store(x, Ordering::SeqCst);
                match d.insert(key, val(x)) {
                    Ok(o) if o == old => x,
                    Err(DictError::Full((k, v))) if last == 0 && k == key && v == val(x) => 0,
                    _ => return fail(mem, 10),
                }
            }
            3..=4 => {
                let new = if last != 0 { x } else { 0 };
                pending_w.store(new, Ordering::SeqCst);
                let mut seen = None;
                let res = d.update(&key, |v| {
                    seen = Some(*v);
                    *v = val(x);
                    7u8
                });
                match res {
                    Ok(Some(7)) if seen == old => new,
                    Ok(None) if last == 0 && seen.is_none() => 0,
                    _ => return fail(mem, 11),
                }
            }
            5 => {
                pending_w.store(x, Ordering::SeqCst);
                let default = val(x ^ 0xff); // replaced by the closure
                let res = d.update_or_insert(key, default, |v| {
                    let was = *v;
                    *v = val(x);
                    was
                });
                match res {
                    Ok(was) if Some(was) == old || (last == 0 && was == default) => x,
                    Err(DictError::Full((k, v))) if last == 0 && k == key && v == default => 0,
                    _ => return fail(mem, 12),
                }
            }
            6 => {
                let new = if last != 0 { last } else { x };
                pending_w.store(new, Ordering::SeqCst);
                match d.get_or_insert(key, val(x)) {
                    Ok(v) if v == val(new) => new,
                    Err(DictError::Full((k, v))) if last == 0 && k == key && v == val(x) => 0,
                    _ => return fail(mem, 13),
                }
            }
            7 => match d.get(&key) {
                Ok(v) if v == old => last,
                _ => return fail(mem, 14),
            },
            _ => {
                pending_w.store(0, Ordering::SeqCst);
                match d.remove(&key) {
                    Ok(o) if o == old => 0,
                    _ => return fail(mem, 15),
                }
            }
        };
        last_w.store(done, Ordering::SeqCst);
        pending_w.store(done, Ordering::SeqCst);
        ops += 1;
        progress.fetch_add(1, Ordering::SeqCst);
    }
}

/// Kills whatever children are left if the test fails, so none outlives it.
struct Reaper(Vec<Option<Child>>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait_timeout(common::WATCHDOG);
        }
    }
}

/// Spins (yielding) until `done()`, failing if `child` exits or the watchdog fires.
fn wait_for(child: &mut Child, mem: &Scratch, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    let mut spins = 0u64;
    while !done() {
        spins += 1;
        if spins % 1024 == 0 {
            if let Some(s) = child.wait_timeout(Duration::ZERO).unwrap() {
                panic!(
                    "writer exited with {s:?} before {what} (error code {})",
                    mem.atomic(ERR).load(Ordering::SeqCst)
                );
            }
            assert!(
                start.elapsed() < common::WATCHDOG,
                "watchdog: never saw {what}"
            );
        }
        std::thread::yield_now();
    }
}

/// Checks every key of writer `w` against its scratch words: the key holds
/// `LAST` or `PENDING`. Returns the states found.
fn check_keys(d: &Dict, mem: &Scratch, w: u64, ctx: &str) -> Vec<u64> {
    (w * KEYS_PER_WRITER..(w + 1) * KEYS_PER_WRITER)
        .map(|key| {
            let got = state(d, key).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let last = mem.atomic(LAST + key as usize).load(Ordering::SeqCst);
            let pending = mem.atomic(PENDING + key as usize).load(Ordering::SeqCst);
            assert!(
                got == last || got == pending,
                "{ctx}: key {key} holds {got:#x}, expected last {last:#x} or pending {pending:#x}"
            );
            got
        })
        .collect()
}

/// Every visible entry passes its checksum; returns how many there are.
fn check_entries(d: &Dict, ctx: &str) -> usize {
    let entries: Vec<_> = d.iter().unwrap().collect();
    for (k, v) in &entries {
        assert!(
            (*k < KEYS || *k == PARENT_KEY) && x_of(*k, v).is_some(),
            "{ctx}: bad entry {k} => {v:x?}"
        );
    }
    entries.len()
}

#[test]
fn sigkilled_writers_leave_old_or_new_values_and_a_usable_dict() {
    const ROUNDS: u64 = 150;
    /// Every HANG_EVERY-th round the victim parks under the writer lock.
    const HANG_EVERY: u64 = 4;

    let d: Dict = SharedDict::anonymous(CAPACITY).unwrap();
    let mem = Scratch::new(WORDS);
    let never = Event::anonymous().unwrap();
    for w in 0..WRITERS {
        mem.atomic(SEQ + w as usize).store(1, Ordering::SeqCst);
    }
    let mut r = 0x0dd5_eed5_1234_5678u64;
    let (mut kills, mut hang_kills, mut len_off_before_repair) = (0u64, 0u64, 0u64);
    let (mut parent_repairs, mut rolled_back) = (0u64, 0u64);
    let mut parent_seq = 1u64;

    for round in 0..ROUNDS {
        let victim = rng(&mut r) % WRITERS;
        let hang = round % HANG_EVERY == HANG_EVERY - 1;
        let starts: Vec<u64> = (0..WRITERS)
            .map(|w| mem.atomic(PROGRESS + w as usize).load(Ordering::SeqCst))
            .collect();
        let thresholds: Vec<u64> = (0..WRITERS).map(|_| 1 + rng(&mut r) % 300).collect();
        let mut kids = Reaper(
            (0..WRITERS)
                .map(|w| {
                    let hang_after = (hang && w == victim).then_some(thresholds[w as usize]);
                    let seed = rng(&mut r);
                    let (d, mem, never) = (&d, &mem, &never);
                    Some(spawn(move || writer(d, mem, w, seed, hang_after, never)))
                })
                .collect(),
        );
        let recoveries_before = d.stats().recoveries;

        // The victim first (while the other writer keeps going), then the other.
        for w in [victim, (victim + 1) % WRITERS] {
            let mut child = kids.0[w as usize].take().unwrap();
            let ctx = format!("round {round} writer {w}");
            if hang && w == victim {
                let flag = mem.atomic(HANGING + w as usize);
                wait_for(&mut child, &mem, "the writer parked under the lock", || {
                    flag.load(Ordering::SeqCst) == 1
                });
                flag.store(0, Ordering::SeqCst);
                hang_kills += 1;
            } else {
                let (p, goal) = (
                    mem.atomic(PROGRESS + w as usize),
                    starts[w as usize] + thresholds[w as usize],
                );
                wait_for(&mut child, &mem, "progress", || {
                    p.load(Ordering::SeqCst) >= goal
                });
            }
            common::kill(child);
            kills += 1;
            assert_eq!(
                mem.atomic(ERR).load(Ordering::SeqCst),
                0,
                "{ctx}: a writer saw a wrong result"
            );
            // Before any repair (the other writer may or may not have run one):
            // the dead writer's keys hold old or new values, nothing is torn.
            check_keys(&d, &mem, w, &format!("{ctx}, after kill"));
            check_entries(&d, &ctx);
        }

        // No writer runs now. `len` may be stale until the next writer repairs
        // a death inside the lock; count how often, then repair with a no-op
        // write and demand exactness.
        let n = check_entries(&d, &format!("round {round}"));
        if d.len() != n {
            len_off_before_repair += 1;
        }
        let seen: Vec<Vec<u64>> = (0..WRITERS)
            .map(|w| check_keys(&d, &mem, w, &format!("round {round}, before repair")))
            .collect();
        let r0 = d.stats().recoveries;
        assert_eq!(d.update(&u64::MAX, |_| ()), Ok(None));
        if d.stats().recoveries > r0 {
            parent_repairs += 1;
        }
        let n = check_entries(&d, &format!("round {round}, repaired"));
        assert_eq!(d.len(), n, "round {round}: len vs iter after repair");
        assert!(n <= CAPACITY);
        if hang {
            assert!(
                d.stats().recoveries > recoveries_before,
                "round {round}: a killed lock holder was not recovered"
            );
        }

        // The old-or-new check again after the repair; then adopt what is there
        // as the writers' starting state.
        for w in 0..WRITERS {
            let states = check_keys(&d, &mem, w, &format!("round {round}, repaired"));
            // A write that readers could already see, undone by the repair
            // (allowed: old or new; counted for the report).
            rolled_back += states
                .iter()
                .zip(&seen[w as usize])
                .filter(|(a, b)| a != b)
                .count() as u64;
            for (i, s) in states.into_iter().enumerate() {
                let key = w * KEYS_PER_WRITER + i as u64;
                mem.atomic(LAST + key as usize).store(s, Ordering::SeqCst);
                mem.atomic(PENDING + key as usize)
                    .store(s, Ordering::SeqCst);
            }
        }

        // Usable: insert / update / remove work, and `Full` is exact.
        let len = d.len();
        let px = |s: u64| PARENT_KEY << KEY_SHIFT | s;
        if len < CAPACITY {
            parent_seq += 2;
            assert_eq!(d.insert(PARENT_KEY, val(px(parent_seq))), Ok(None));
            assert_eq!(d.len(), len + 1);
            assert_eq!(
                d.update(&PARENT_KEY, |v| *v = val(px(parent_seq + 1))),
                Ok(Some(()))
            );
            assert_eq!(d.get(&PARENT_KEY), Ok(Some(val(px(parent_seq + 1)))));
            assert_eq!(d.remove(&PARENT_KEY), Ok(Some(val(px(parent_seq + 1)))));
            assert_eq!(d.len(), len);
        } else {
            let v = val(px(1));
            assert_eq!(
                d.insert(PARENT_KEY, v),
                Err(DictError::Full((PARENT_KEY, v)))
            );
        }
        // One of the victim's keys: remove, re-insert, update.
        let key = victim * KEYS_PER_WRITER;
        let s = mem.atomic(LAST + key as usize).load(Ordering::SeqCst);
        let x = key << KEY_SHIFT
            | mem
                .atomic(SEQ + victim as usize)
                .fetch_add(2, Ordering::SeqCst);
        assert_eq!(d.remove(&key), Ok((s != 0).then(|| val(s))));
        if d.len() < CAPACITY {
            assert_eq!(d.insert(key, val(x)), Ok(None));
            assert_eq!(d.update(&key, |v| *v = val(x + 1)), Ok(Some(())));
            assert_eq!(state(&d, key), Ok(x + 1));
            mem.atomic(LAST + key as usize)
                .store(x + 1, Ordering::SeqCst);
            mem.atomic(PENDING + key as usize)
                .store(x + 1, Ordering::SeqCst);
        } else {
            // It was absent and the others fill the dict.
            assert_eq!(d.insert(key, val(x)), Err(DictError::Full((key, val(x)))));
            mem.atomic(LAST + key as usize).store(0, Ordering::SeqCst);
            mem.atomic(PENDING + key as usize)
                .store(0, Ordering::SeqCst);
        }
        assert_eq!(d.len(), check_entries(&d, "after parent writes"));
    }

    let stats = d.stats();
    eprintln!(
        "dict kill test: {kills} kills ({hang_kills} inside the lock), {} recoveries, \
         {parent_repairs} of them by the parent after both kills; before those repairs len was \
         stale in {len_off_before_repair} rounds and {rolled_back} visible writes were rolled back; \
         final {stats:?}",
        stats.recoveries
    );
    assert!(kills >= 50);
    assert!(hang_kills > 0);
    assert!(
        stats.recoveries >= hang_kills,
        "every kill inside the lock costs one recovery"
    );
}

/// The deterministic case: a writer parked inside an `update` closure holds the
/// lock when it is killed. The next writer (a process already blocked on the
/// lock, or this one) repairs it: one recovery, the old value stays, and the
/// dict goes on.
#[test]
fn writer_killed_inside_update_is_recovered_by_the_next_writer() {
    let d: Dict = SharedDict::anonymous(8).unwrap();
    let mem = Scratch::new(WORDS);
    let never = Event::anonymous().unwrap();
    let key = 3;
    d.insert(key, val(key << KEY_SHIFT | 1)).unwrap();
    for i in 0..12u64 {
        let old = val(key << KEY_SHIFT | (i + 1));
        assert_eq!(d.get(&key), Ok(Some(old)));
        let before = d.stats().recoveries;
        mem.atomic(HANGING).store(0, Ordering::SeqCst);
        let mut holder = spawn(|| {
            let _ = d.update(&key, |v| {
                mem.atomic(HANGING).store(1, Ordering::SeqCst);
                never.wait();
                *v = val(0);
            });
            1
        });
        wait_for(
            &mut holder,
            &mem,
            "the holder parked under the lock",
            || mem.atomic(HANGING).load(Ordering::SeqCst) == 1,
        );
        let new = val(key << KEY_SHIFT | (i + 2));
        if i % 2 == 0 {
            // A second process is already asleep on the lock when the holder
            // dies. The insert is the waiter's first use of the dict: it joins
            // the dict's region (starting its beacon, a futex sleep of its own)
            // and then blocks on the lock, so the sleep that counts is the one
            // seen after the join.
            let waiter = spawn(|| match d.insert(key, new) {
                Ok(Some(v)) if v == old => 0,
                _ => 1,
            });
            common::wait_until_blocked_in(d.region(), waiter.pid());
            common::kill(holder);
            assert_eq!(join(waiter), ExitStatus::Code(0), "round {i}");
        } else {
            common::kill(holder);
            // Readers take no lock: the old value, no repair yet.
            assert_eq!(d.get(&key), Ok(Some(old)));
            assert_eq!(d.stats().recoveries, before, "round {i}");
            assert_eq!(d.insert(key, new), Ok(Some(old)), "round {i}");
        }
        assert_eq!(d.stats().recoveries, before + 1, "round {i}");
        assert_eq!(d.get(&key), Ok(Some(new)));
        assert_eq!(d.len(), 1);
        assert_eq!(d.iter().unwrap().count(), 1);
    }
}

/// A writer killed after its slot write finished but before it cleared the
/// journal has made the new value visible to lock-free readers; the repair must
/// keep it, not roll it back (readers would see a key go new -> old with no
/// writer changing it back). Found with this test: before the fix, a rollback
/// showed up within 9 to 450 kills; 1,000 kills of a tight `insert` loop here.
#[test]
fn visible_write_is_never_rolled_back_by_repair() {
    const KILLS: u64 = 1_000;
    let d: Dict = SharedDict::anonymous(4).unwrap();
    let mem = Scratch::new(WORDS);
    let key = 1u64;
    let x0 = key << KEY_SHIFT | 1;
    d.insert(key, val(x0)).unwrap();
    for (i, w) in [(LAST, x0), (PENDING, x0), (SEQ, 2)] {
        mem.atomic(i + if i == SEQ { 0 } else { key as usize })
            .store(w, Ordering::SeqCst);
    }
    let mut r = 0x1234_5678_9abc_def1u64;
    for kill in 0..KILLS {
        let start = mem.atomic(PROGRESS).load(Ordering::SeqCst);
        let goal = start + 1 + rng(&mut r) % 64;
        let mut child = spawn(|| {
            let parent = std::os::unix::process::parent_id();
            loop {
                if std::os::unix::process::parent_id() != parent {
                    return 0;
                }
                let last = mem.atomic(LAST + key as usize).load(Ordering::SeqCst);
                let x = key << KEY_SHIFT | mem.atomic(SEQ).fetch_add(1, Ordering::SeqCst);
                mem.atomic(PENDING + key as usize)
                    .store(x, Ordering::SeqCst);
                if d.insert(key, val(x)) != Ok(Some(val(last))) {
                    return fail(&mem, 20);
                }
                mem.atomic(LAST + key as usize).store(x, Ordering::SeqCst);
                mem.atomic(PROGRESS).fetch_add(1, Ordering::SeqCst);
            }
        });
        let p = mem.atomic(PROGRESS);
        wait_for(&mut child, &mem, "progress", || {
            p.load(Ordering::SeqCst) >= goal
        });
        common::kill(child);
        let last = mem.atomic(LAST + key as usize).load(Ordering::SeqCst);
        let pending = mem.atomic(PENDING + key as usize).load(Ordering::SeqCst);
        let before = state(&d, key).unwrap();
        assert_eq!(d.update(&u64::MAX, |_| ()), Ok(None)); // repairs if needed
        let after = state(&d, key).unwrap();
        assert!(before == last || before == pending);
        assert!(after == last || after == pending);
        assert!(
            !(before == pending && pending != last && after == last),
            "kill {kill}: readers saw the new value {pending:#x}, then the repair \
             rolled the key back to {last:#x} ({:?})",
            d.stats()
        );
        mem.atomic(LAST + key as usize)
            .store(after, Ordering::SeqCst);
        mem.atomic(PENDING + key as usize)
            .store(after, Ordering::SeqCst);
    }
}
