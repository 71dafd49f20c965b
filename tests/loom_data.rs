//! Loom models of the shared dict's algorithm (`src/dict/table.rs`: seqlocked
//! readers, the robust writer lock and the undo journal) and of `Value`/`Array`
//! (`src/value.rs`: seqlocked elements, the redo journal with its
//! changed-bitmap, lock-free element atomics).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom_data`
//!
//! Values are two words written one at a time, so a torn read (one old word, one
//! new) is observable: every model asserts both words are equal.
//!
//! Thread placement matters: loom's DPOR records only the last access to each
//! atomic, so a writer that loads a word before storing it hides an earlier
//! load by another thread. The lock-free readers therefore run in spawned
//! threads, scheduled after the writer in loom's first execution, where their
//! loads conflict with the writer's stores and every interleaving is explored
//! (checked: disabling the seqlock validation makes these models fail).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use multiproc::__loom::{Crash, LoomArray, LoomDict};

/// A reader racing a writer sees the old or the new value, never a mix.
#[test]
fn dict_reader_never_sees_a_torn_value() {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    loom::model(|| {
        eprintln!(
            "iter {}",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let d = Arc::new(LoomDict::new(2));
        assert_eq!(d.insert(1, [0, 0]), Ok(None));
        let r = {
            let d = Arc::clone(&d);
            thread::spawn(move || {
                let v = d.get(1).expect("lock is healthy").expect("key present");
                assert!(v == [0, 0] || v == [7, 7], "torn read {v:?}");
            })
        };
        assert_eq!(d.insert(1, [7, 7]), Ok(Some([0, 0])));
        r.join().expect("reader");
        assert_eq!(d.get(1), Ok(Some([7, 7])));
    });
}

/// A reader racing the insert of a new key sees it absent or complete.
#[test]
fn dict_reader_sees_a_new_key_absent_or_whole() {
    loom::model(|| {
        let d = Arc::new(LoomDict::new(2));
        let r = {
            let d = Arc::clone(&d);
            thread::spawn(move || match d.get(3).expect("lock is healthy") {
                None | Some([5, 5]) => {}
                Some(v) => panic!("torn read {v:?}"),
            })
        };
        assert_eq!(d.insert(3, [5, 5]), Ok(None));
        r.join().expect("reader");
        assert_eq!(d.len(), 1);
    });
}

/// Two `update`s of the same key never lose one.
#[test]
fn dict_two_updates_never_lose_one() {
    loom::model(|| {
        let d = Arc::new(LoomDict::new(2));
        assert_eq!(d.insert(1, [0, 0]), Ok(None));
        let bump = |d: Arc<LoomDict>| {
            thread::spawn(move || {
                let updated = d.update(1, |v| {
                    v[0] += 1;
                    v[1] += 1;
                });
                assert_eq!(updated, Ok(true));
            })
        };
        let a = bump(Arc::clone(&d));
        let b = bump(Arc::clone(&d));
        a.join().expect("a");
        b.join().expect("b");
        assert_eq!(d.get(1), Ok(Some([2, 2])));
    });
}

/// An insert racing a remove of another key keeps `len` exact, and a reader in
/// the middle finds the surviving key.
#[test]
fn dict_insert_remove_race_keeps_len_exact() {
    loom::model(|| {
        let d = Arc::new(LoomDict::new(3));
        assert_eq!(d.insert(1, [1, 1]), Ok(None));
        assert_eq!(d.insert(2, [2, 2]), Ok(None));
        let r = {
            let d = Arc::clone(&d);
            // Key 2 is never touched: a lookup racing both writers must find it.
            thread::spawn(move || assert_eq!(d.get(2), Ok(Some([2, 2]))))
        };
        let i = {
            let d = Arc::clone(&d);
            thread::spawn(move || assert_eq!(d.insert(3, [3, 3]), Ok(None)))
        };
        assert_eq!(d.remove(1), Ok(Some([1, 1])));
        r.join().expect("reader");
        i.join().expect("inserter");
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(1), Ok(None));
        assert_eq!(d.get(3), Ok(Some([3, 3])));
    });
}

/// A writer that dies halfway through a write (journal armed, first word
/// written) is rolled back: a concurrent reader and every later operation see
/// the old value, the lock is repaired once, and the dict keeps working.
#[test]
fn dict_dead_writer_is_rolled_back() {
    loom::model(|| {
        let d = Arc::new(LoomDict::new(2));
        assert_eq!(d.insert(1, [5, 5]), Ok(None));
        let reader = {
            let d = Arc::clone(&d);
            thread::spawn(move || {
                let v = d.get(1).expect("repairable").expect("key present");
                assert_eq!(v, [5, 5], "a half-written value escaped");
            })
        };
        assert!(d.die_while_writing(1, [9, 9]));
        reader.join().expect("reader");
        assert_eq!(d.get(1), Ok(Some([5, 5])));
        assert_eq!(d.insert(2, [6, 6]), Ok(None));
        assert_eq!(d.recoveries(), 1);
        assert_eq!(d.len(), 2);
    });
}

/// A writer that dies after its write finished (readers may have seen the new
/// value) but before it cleared the journal: the repair keeps the new value, so
/// no reader ever sees the key go back to the old one.
#[test]
fn dict_finished_write_survives_its_writers_death() {
    loom::model(|| {
        let d = Arc::new(LoomDict::new(2));
        assert_eq!(d.insert(1, [5, 5]), Ok(None));
        let reader = {
            let d = Arc::clone(&d);
            thread::spawn(move || {
                let first = d.get(1).expect("repairable").expect("key present");
                let second = d.get(1).expect("repairable").expect("key present");
                assert!(first == [5, 5] || first == [9, 9], "torn read {first:?}");
                assert!(!(first == [9, 9] && second == [5, 5]), "write rolled back");
            })
        };
        assert!(d.die_after_writing(1, [9, 9]));
        reader.join().expect("reader");
        assert_eq!(d.get(1), Ok(Some([9, 9])));
        assert_eq!(d.insert(2, [6, 6]), Ok(None));
        assert_eq!(d.len(), 2);
    });
}

// ---------------------------------------------------------------------------
// Value / Array: the redo journal
//
// The writer "dies" at a crash point inside the real commit (`Crash`, compiled
// to nothing outside loom), holding the lock; the thread then goes on as
// another process, whose next locked operation runs the repair. Elements are
// two words written one at a time, so a torn element is observable.
//
// Mutation-checked: each bug below was planted in src/value.rs or
// src/words.rs, made the listed models fail, and was reverted.
// - journal entries not written: 7 models (with_lock after arming, mid
//   element, between elements, before clearing; the three atomic models);
// - bitmap bits not set, or the bitmap cleared right after arming, or the
//   journal armed only after the write-back, or a repair that re-applies only
//   elements left mid-write: 5 each (with_lock after arming, mid element,
//   between elements; atomics after arming, mid element);
// - a repair re-applying every element, or the bitmap not cleared at the start
//   of a commit (a stale bit): the 3 atomic models;
// - `set` arming `journal = i` instead of `i + 1`: set after arming, mid element;
// - the seqlock's final even store Relaxed: 4 (torn readers, and the readers
//   of the dying writers that finish element writes);
// - the reader's Acquire fence dropped, or its validation skipped: 6.
// Not caught, by design: the validation of a read made under the lock (no
// writer of this crate races it; it guards against scribblers, which
// tests/value_hostile.rs covers) and the Release of the journal's arming (the
// lock already orders it for the repairer).

/// Runs a model with at most `bound` preemptions (and never more than the
/// environment's `LOOM_MAX_PREEMPTIONS`), as `tests/loom.rs` does for its ring
/// models. With the lock word's futex and beacon models, a reader racing a
/// two-element commit whose writer dies before clearing the journal takes 56 s
/// at 3 preemptions (12 s at 2, measured), so the dying-`with_lock` models run
/// at 2; all the Value/Array models together take about 30 s.
fn value_model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    let env = builder.preemption_bound.unwrap_or(bound);
    builder.preemption_bound = Some(env.min(bound));
    builder.check(f);
}

const OLD: [u64; 2] = [0, 0];
const NEW: [u64; 2] = [7, 7];

fn old_or_new(v: [u64; 2]) -> bool {
    v == OLD || v == NEW
}

/// Whether the repair completes an update stopped at `at` (the journal was
/// armed) rather than leaving it unapplied.
fn completed(at: Crash) -> bool {
    !matches!(at, Crash::BeforeJournal | Crash::MidJournal)
}

/// A two-element `with_lock` whose writer dies at `at`, raced by a lock-free
/// reader: every element the reader sees is whole and old or new, element 0
/// (the first written back) never goes back from new to old, and after the
/// repair the array is exactly all old (journal not armed) or all new.
fn with_lock_dies_at(at: Crash) {
    value_model(2, move || {
        let a = Arc::new(LoomArray::new(&[OLD, OLD]));
        let reader = {
            let a = Arc::clone(&a);
            thread::spawn(move || {
                let first = a.get(0).expect("repairable");
                let second = a.get(0).expect("repairable");
                let other = a.get(1).expect("repairable");
                assert!(
                    old_or_new(first) && old_or_new(second),
                    "torn {first:?} {second:?}"
                );
                assert!(old_or_new(other), "torn {other:?}");
                assert!(
                    !(first == NEW && second == OLD),
                    "a seen write was rolled back"
                );
            })
        };
        a.die_in_with_lock(
            |s| {
                s[0] = NEW;
                s[1] = NEW;
            },
            at,
        )
        .expect("lock is healthy");
        reader.join().expect("reader");
        let want = if completed(at) { NEW } else { OLD };
        assert_eq!(
            a.with_lock(|s| s.to_vec()),
            Ok(vec![want, want]),
            "mixed after repair"
        );
        assert_eq!(a.recoveries(), 1);
        assert_eq!(a.to_vec(), Ok(vec![want, want]));
    });
}

#[test]
fn value_with_lock_dies_before_journaling() {
    with_lock_dies_at(Crash::BeforeJournal);
}

#[test]
fn value_with_lock_dies_mid_journal() {
    with_lock_dies_at(Crash::MidJournal);
}

#[test]
fn value_with_lock_dies_after_arming() {
    with_lock_dies_at(Crash::AfterArm);
}

#[test]
fn value_with_lock_dies_mid_element() {
    with_lock_dies_at(Crash::MidElement);
}

#[test]
fn value_with_lock_dies_between_elements() {
    with_lock_dies_at(Crash::BetweenElements);
}

#[test]
fn value_with_lock_dies_before_clearing_the_journal() {
    with_lock_dies_at(Crash::BeforeClear);
}

/// A `set` (journal naming one element) whose writer dies at `at`, raced by a
/// reader of that element: whole, never rolled back, and after the repair old
/// (not armed) or new; the other element is never touched.
fn set_dies_at(at: Crash) {
    loom::model(move || {
        let a = Arc::new(LoomArray::new(&[OLD, [3, 3]]));
        let reader = {
            let a = Arc::clone(&a);
            thread::spawn(move || {
                let first = a.get(0).expect("repairable");
                let second = a.get(0).expect("repairable");
                assert!(
                    old_or_new(first) && old_or_new(second),
                    "torn {first:?} {second:?}"
                );
                assert!(
                    !(first == NEW && second == OLD),
                    "a seen write was rolled back"
                );
            })
        };
        assert_eq!(a.die_in_set(0, NEW, at), Ok(OLD));
        reader.join().expect("reader");
        let want = if completed(at) { NEW } else { OLD };
        assert_eq!(a.with_lock(|s| s.to_vec()), Ok(vec![want, [3, 3]]));
        assert_eq!(a.recoveries(), 1);
    });
}

#[test]
fn value_set_dies_before_journaling() {
    set_dies_at(Crash::BeforeJournal);
}

#[test]
fn value_set_dies_after_arming() {
    set_dies_at(Crash::AfterArm);
}

#[test]
fn value_set_dies_mid_element() {
    set_dies_at(Crash::MidElement);
}

#[test]
fn value_set_dies_before_clearing_the_journal() {
    set_dies_at(Crash::BeforeClear);
}

/// A lock-free reader racing a live two-element `with_lock` sees every element
/// whole, old or new (a `set` then runs after the join: its racing reads are
/// covered by the `set` models above).
#[test]
fn value_readers_never_see_a_torn_element() {
    value_model(3, || {
        let a = Arc::new(LoomArray::new(&[OLD, OLD]));
        let reader = {
            let a = Arc::clone(&a);
            thread::spawn(move || {
                for i in [0, 1] {
                    let v = a.get(i).expect("lock is healthy");
                    assert!(old_or_new(v), "torn read {v:?}");
                }
            })
        };
        a.with_lock(|s| {
            s[0] = NEW;
            s[1] = NEW;
        })
        .expect("lock is healthy");
        reader.join().expect("reader");
        assert_eq!(a.set(0, [9, 9]), Ok(NEW));
        assert_eq!(a.to_vec(), Ok(vec![[9, 9], NEW]));
        assert_eq!(a.recoveries(), 0);
    });
}

/// Two `with_lock` increments never lose one.
#[test]
fn value_two_with_locks_never_lose_one() {
    loom::model(|| {
        let a = Arc::new(LoomArray::new(&[OLD]));
        let bump = |a: Arc<LoomArray<[u64; 2]>>| {
            thread::spawn(move || {
                a.with_lock(|s| {
                    s[0][0] += 1;
                    s[0][1] += 1;
                })
                .expect("lock is healthy");
            })
        };
        let x = bump(Arc::clone(&a));
        let y = bump(Arc::clone(&a));
        x.join().expect("x");
        y.join().expect("y");
        assert_eq!(a.get(0), Ok([2, 2]));
    });
}

/// The changed-bitmap: a `with_lock` that changes elements 1 and 2 dies at
/// `at` while another thread adds to element 0 with a lock-free atomic (which
/// the docs allow: the update leaves element 0 alone). An earlier finished
/// update did change element 0, so a stale bit would also show. The repair
/// re-applies elements 1 and 2 only: the atomic's change survives.
fn atomic_survives_repair(at: Crash) {
    loom::model(move || {
        let a = Arc::new(LoomArray::<u64>::new(&[0, 0, 0]));
        a.with_lock(|s| s[0] = 1).expect("lock is healthy");
        let adder = {
            let a = Arc::clone(&a);
            thread::spawn(move || assert_eq!(a.fetch_add(0, 5), Ok(1)))
        };
        a.die_in_with_lock(
            |s| {
                s[1] = 9;
                s[2] = 9;
            },
            at,
        )
        .expect("lock is healthy");
        adder.join().expect("adder");
        let want = if completed(at) { 9 } else { 0 };
        assert_eq!(
            a.with_lock(|s| s.to_vec()),
            Ok(vec![6, want, want]),
            "the repair clobbered element 0 or mixed 1 and 2"
        );
        assert_eq!(a.recoveries(), 1);
    });
}

#[test]
fn value_atomic_survives_repair_after_arming() {
    atomic_survives_repair(Crash::AfterArm);
}

#[test]
fn value_atomic_survives_repair_mid_element() {
    atomic_survives_repair(Crash::MidElement);
}

#[test]
fn value_atomic_survives_repair_before_clearing_the_journal() {
    atomic_survives_repair(Crash::BeforeClear);
}
