//! Loom models of the shared dict's algorithm (`src/dict/table.rs`): seqlocked
//! readers, the robust writer lock and the undo journal.
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
use multiproc::__loom::LoomDict;

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
