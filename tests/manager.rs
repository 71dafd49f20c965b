//! `Manager`: get-or-create of every hosted kind, bad input (a typed error and
//! nothing changed), forked children and an unrelated program sharing one
//! manager, racing creators, and creators killed at random points.
//!
//! Children run only crate code and end with `_exit` (through
//! `multiproc::process::fork`); they report through exit codes and scratch
//! memory. Every wait on another process is under a watchdog, and nothing sleeps
//! to synchronize.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::fmt::Debug;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Scratch, Unlink, join, join_all_ok, spawn, unique_name};
use multiproc::manager::{MAX_ENTRIES, MAX_OBJECT_NAME};
use multiproc::process::{Child, ExitStatus};
use multiproc::{
    Error, Event, FixedStr, GetError, Lock, Manager, ManagerOptions, ObjectInfo, ReleaseError,
};

const ZERO: Duration = Duration::ZERO;

// ---------------------------------------------------------------------------
// (a) get-or-create
// ---------------------------------------------------------------------------

#[test]
fn same_name_and_type_is_the_same_object() {
    let m = Manager::anonymous(1 << 20).unwrap();
    assert!(m.names().is_empty());
    assert_eq!(m.recoveries(), 0);

    let d1 = m.dict::<FixedStr<16>, i64>("counts", 8).unwrap();
    let d2 = m.dict::<FixedStr<16>, i64>("counts", 8).unwrap();
    let key = FixedStr::try_new("apples").unwrap();
    assert_eq!(d1.insert(key, 3), Ok(None));
    assert_eq!(d2.get(&key), Ok(Some(3)));

    let q1 = m.queue::<u64>("jobs", 4).unwrap();
    let q2 = m.queue::<u64>("jobs", 4).unwrap();
    q1.put(11).unwrap();
    assert_eq!(q2.try_get(), Ok(11));

    let c1 = m.counter("hits", 5).unwrap();
    // The initial value of a later call is ignored: it gets the existing counter.
    let c2 = m.counter("hits", 1_000).unwrap();
    assert_eq!(c2.load(), 5);
    c1.fetch_add(2);
    assert_eq!(c2.load(), 7);

    let v1 = m.value("point", [1.5f64, -2.0]).unwrap();
    let v2 = m.value("point", [0.0f64, 0.0]).unwrap();
    assert_eq!(v2.load(), Ok([1.5, -2.0]));
    v2.with_lock(|p| p[0] = 9.0).unwrap();
    assert_eq!(v1.load(), Ok([9.0, -2.0]));

    let a1 = m.array::<u32>("slots", 3).unwrap();
    let a2 = m.array::<u32>("slots", 3).unwrap();
    a1.set(2, 30).unwrap();
    assert_eq!(a2.fetch_add(2, 1), Ok(30));
    assert_eq!(a1.to_vec(), Ok(vec![0, 0, 31]));

    let e1 = m.event("ready").unwrap();
    e1.set();
    assert!(m.event("ready").unwrap().is_set());

    let s1 = m.semaphore("permits", 2).unwrap();
    let s2 = m.semaphore("permits", 50).unwrap();
    assert!(s1.try_acquire());
    assert_eq!(s2.value(), 1);

    let l1 = m.lock("mutex").unwrap();
    let g = l1.lock().unwrap();
    assert!(m.lock("mutex").unwrap().try_lock().is_err());
    drop(g);

    assert_eq!(
        m.names(),
        [
            "counts", "jobs", "hits", "point", "slots", "ready", "permits", "mutex"
        ]
    );
    // A clone of the manager handle is the same manager.
    assert_eq!(m.clone().names(), m.names());
    assert_eq!(m.recoveries(), 0);
}

#[test]
fn every_hosted_kind_works_after_creation() {
    let m = Manager::anonymous(1 << 20).unwrap();

    let d = m.dict::<u64, u64>("dict", 16).unwrap();
    assert_eq!(d.capacity(), 16);
    assert_eq!(d.insert(1, 10), Ok(None));
    assert_eq!(d.get(&1), Ok(Some(10)));
    assert_eq!(d.len(), 1);

    let q = m.queue::<u32>("queue", 8).unwrap();
    assert_eq!(q.capacity(), 8);
    q.put(5).unwrap();
    assert_eq!(q.get_timeout(ZERO), Ok(5));
    assert_eq!(q.try_get(), Err(GetError::Empty));

    let jq = m.joinable_queue::<u32>("joinable", 4).unwrap();
    jq.put(6).unwrap();
    assert_eq!(jq.unfinished(), 1);
    assert_eq!(jq.try_get(), Ok(6));
    assert!(!jq.join_timeout(ZERO));
    jq.task_done().unwrap();
    assert!(jq.join_timeout(ZERO));

    let bq = m.bytes_queue("bytes", 4, 32).unwrap();
    assert_eq!(bq.slot_size(), 32);
    bq.put(b"hello").unwrap();
    assert_eq!(bq.try_get().unwrap(), b"hello");

    let lock = m.lock("lock").unwrap();
    drop(lock.lock().unwrap());
    drop(lock.try_lock().unwrap());

    let rlock = m.rlock("rlock").unwrap();
    {
        let _a = rlock.lock().unwrap();
        let _b = rlock.lock().unwrap();
        assert_eq!(rlock.depth(), 2);
    }
    assert_eq!(rlock.depth(), 0);

    let ev = m.event("event").unwrap();
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(ZERO));
    ev.set();
    ev.wait();
    assert!(ev.wait_timeout(ZERO));

    let cond = m.condition("condition").unwrap();
    let g = cond.lock().unwrap();
    cond.notify_all().unwrap();
    // Nobody notifies: returns at the deadline with the lock held again.
    let (g, _timed_out) = cond.wait_timeout(g, ZERO).unwrap();
    drop(g);
    drop(cond.try_lock().unwrap());

    let sem = m.semaphore("semaphore", 1).unwrap();
    sem.acquire();
    assert!(!sem.try_acquire());
    sem.release().unwrap();
    sem.release().unwrap(); // unbounded
    assert_eq!(sem.value(), 2);

    let bsem = m.bounded_semaphore("bounded", 1).unwrap();
    assert!(bsem.try_acquire());
    bsem.release().unwrap();
    assert_eq!(bsem.release(), Err(ReleaseError::AboveBound));
    assert_eq!(bsem.value(), 1);

    let barrier = m.barrier("barrier", 1).unwrap();
    assert_eq!(barrier.parties(), 1);
    assert!(barrier.wait().unwrap().is_leader());
    assert!(barrier.wait().unwrap().is_leader());

    let c = m.counter("counter", -1).unwrap();
    assert_eq!(c.fetch_add(2), -1);
    assert_eq!(c.compare_exchange(1, 10), Ok(1));
    assert_eq!(c.load(), 10);

    let v = m.value("value", [7u8; 5]).unwrap();
    assert_eq!(v.store([8; 5]), Ok([7; 5]));
    assert_eq!(v.with_lock(|x| x[4] = 0), Ok(()));
    assert_eq!(v.load(), Ok([8, 8, 8, 8, 0]));

    let arr = m.array::<i16>("array", 4).unwrap();
    assert_eq!(arr.len(), 4);
    assert_eq!(arr.fetch_sub(3, 5), Ok(0));
    assert_eq!(arr.with_lock(|s| s[0] = 2), Ok(()));
    assert_eq!(arr.to_vec(), Ok(vec![2, 0, 0, -5]));

    let names = [
        "dict",
        "queue",
        "joinable",
        "bytes",
        "lock",
        "rlock",
        "event",
        "condition",
        "semaphore",
        "bounded",
        "barrier",
        "counter",
        "value",
        "array",
    ];
    assert_eq!(m.names(), names);
    let objects = m.objects();
    assert_eq!(objects.len(), names.len());
    // Kinds as the directory records them. A JoinableQueue is recorded as a
    // Queue, a BoundedSemaphore as a Semaphore and a Value as an Array (the same
    // storage; the handle checks the rest), so accept either name for those.
    let kinds: [&[&str]; 14] = [
        &["SharedDict"],
        &["Queue"],
        &["Queue", "JoinableQueue"],
        &["BytesQueue"],
        &["Lock"],
        &["RLock"],
        &["Event"],
        &["Condition"],
        &["Semaphore"],
        &["Semaphore", "BoundedSemaphore"],
        &["Barrier"],
        &["Counter"],
        &["Array", "Value"],
        &["Array"],
    ];
    for ((o, name), kind) in objects.iter().zip(names).zip(kinds) {
        assert_eq!(o.name, name);
        assert!(kind.contains(&o.kind.as_str()), "{o:?}");
        assert!(o.size > 0, "{o:?}");
    }
    assert!(m.available() < 1 << 20);
    assert!(format!("{m:?}").contains("condition"));
}

#[test]
fn objects_outlive_the_manager_handle() {
    let m = Manager::anonymous(1 << 16).unwrap();
    let c = m.counter("c", 1).unwrap();
    let q = m.queue::<u8>("q", 2).unwrap();
    drop(m);
    c.fetch_add(1);
    q.put(3).unwrap();
    assert_eq!((c.load(), q.try_get()), (2, Ok(3)));
}

#[test]
fn named_manager_opened_twice_in_one_process_shares_objects() {
    let name = unique_name("mgr");
    let _u = Unlink(name.clone());
    let m = Manager::create(&name, 1 << 16).unwrap();
    m.counter("c", 40).unwrap();
    let m2 = Manager::open(&name).unwrap();
    assert_eq!(m2.names(), ["c"]);
    assert_eq!(m2.counter("c", 0).unwrap().fetch_add(2), 40);
    m2.event("e").unwrap().set();
    assert_eq!(m.names(), ["c", "e"]);
    assert!(m.event("e").unwrap().is_set());
    assert_eq!(m.counter("c", 0).unwrap().load(), 42);
    assert_eq!(m.available(), m2.available());
}

// ---------------------------------------------------------------------------
// (b) bad input: a typed error and nothing changed
// ---------------------------------------------------------------------------

/// What a failed call must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    names: Vec<String>,
    objects: Vec<ObjectInfo>,
    available: usize,
    recoveries: u64,
}

fn snapshot(m: &Manager) -> Snapshot {
    Snapshot {
        names: m.names(),
        objects: m.objects(),
        available: m.available(),
        recoveries: m.recoveries(),
    }
}

/// Runs `f`, which must fail, and checks that the manager is unchanged.
fn fails<T: Debug>(m: &Manager, what: &str, f: impl FnOnce() -> Result<T, Error>) -> Error {
    let before = snapshot(m);
    let e = match f() {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    };
    assert_eq!(snapshot(m), before, "{what}: the manager changed");
    e
}

/// A manager holding one object of (nearly) every kind, with known contents.
fn populated() -> Manager {
    let m = Manager::anonymous(1 << 20).unwrap();
    m.dict::<u64, u64>("dict", 16)
        .unwrap()
        .insert(1, 2)
        .unwrap();
    m.queue::<u32>("queue", 4).unwrap().put(3).unwrap();
    m.joinable_queue::<u32>("joinable", 4).unwrap();
    m.bytes_queue("bytes", 4, 16).unwrap();
    m.lock("lock").unwrap();
    m.rlock("rlock").unwrap();
    m.event("event").unwrap();
    m.condition("condition").unwrap();
    m.semaphore("semaphore", 1).unwrap();
    m.bounded_semaphore("bounded", 1).unwrap();
    m.barrier("barrier", 2).unwrap();
    m.counter("counter", 4).unwrap();
    m.value("value", 5u64).unwrap();
    m.array::<u32>("array", 3).unwrap();
    m
}

/// The contents `populated` wrote are still there.
fn contents_intact(m: &Manager) {
    assert_eq!(m.dict::<u64, u64>("dict", 16).unwrap().get(&1), Ok(Some(2)));
    assert_eq!(m.queue::<u32>("queue", 4).unwrap().len(), 1);
    assert_eq!(m.counter("counter", 0).unwrap().load(), 4);
    assert_eq!(m.value("value", 0u64).unwrap().load(), Ok(5));
    assert_eq!(m.barrier("barrier", 2).unwrap().parties(), 2);
}

fn is_type_mismatch(e: &Error, expected: &str, found: &str) -> bool {
    matches!(e, Error::TypeMismatch { expected: x, found: y } if x == expected && y == found)
}

#[test]
fn same_name_with_another_type_is_a_type_mismatch() {
    let m = populated();
    let e = fails(&m, "event as lock", || m.event("lock"));
    assert!(is_type_mismatch(&e, "Event", "Lock"), "{e:?}");
    let e = fails(&m, "lock as event", || m.lock("event"));
    assert!(is_type_mismatch(&e, "Lock", "Event"), "{e:?}");
    let e = fails(&m, "rlock as lock", || m.rlock("lock"));
    assert!(is_type_mismatch(&e, "RLock", "Lock"), "{e:?}");
    let e = fails(&m, "condition as lock", || m.condition("lock"));
    assert!(is_type_mismatch(&e, "Condition", "Lock"), "{e:?}");
    let e = fails(&m, "queue as dict", || m.queue::<u64>("dict", 16));
    assert!(is_type_mismatch(&e, "Queue", "SharedDict"), "{e:?}");
    let e = fails(&m, "dict as queue", || m.dict::<u64, u64>("queue", 16));
    assert!(is_type_mismatch(&e, "SharedDict", "Queue"), "{e:?}");
    let e = fails(&m, "bytes queue as queue", || m.bytes_queue("queue", 4, 4));
    assert!(is_type_mismatch(&e, "BytesQueue", "Queue"), "{e:?}");
    let e = fails(&m, "queue as bytes queue", || m.queue::<u32>("bytes", 4));
    assert!(is_type_mismatch(&e, "Queue", "BytesQueue"), "{e:?}");
    let e = fails(&m, "joinable as queue", || {
        m.joinable_queue::<u32>("queue", 4)
    });
    assert!(is_type_mismatch(&e, "JoinableQueue", "Queue"), "{e:?}");
    let e = fails(&m, "queue as joinable", || m.queue::<u32>("joinable", 4));
    assert!(is_type_mismatch(&e, "Queue", "JoinableQueue"), "{e:?}");
    let e = fails(&m, "bounded as semaphore", || {
        m.bounded_semaphore("semaphore", 1)
    });
    assert!(
        is_type_mismatch(&e, "BoundedSemaphore", "Semaphore"),
        "{e:?}"
    );
    let e = fails(&m, "semaphore as bounded", || m.semaphore("bounded", 1));
    assert!(
        is_type_mismatch(&e, "Semaphore", "BoundedSemaphore"),
        "{e:?}"
    );
    let e = fails(&m, "counter as value", || m.counter("value", 0));
    assert!(is_type_mismatch(&e, "Counter", "Array"), "{e:?}");
    let e = fails(&m, "value as counter", || m.value("counter", 0i64));
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e:?}");
    let e = fails(&m, "array as counter", || m.array::<i64>("counter", 1));
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e:?}");
    let e = fails(&m, "barrier as event", || m.barrier("event", 2));
    assert!(is_type_mismatch(&e, "Barrier", "Event"), "{e:?}");
    let e = fails(&m, "event as barrier", || m.event("barrier"));
    assert!(is_type_mismatch(&e, "Event", "Barrier"), "{e:?}");
    contents_intact(&m);
}

/// `e` is an element mismatch of `role` from `expected` bytes to `found`.
fn is_element(e: &Error, role: &str, expected: u64, found: u64) -> bool {
    matches!(e, Error::ElementMismatch { role: r, expected: x, found: y }
        if *r == role && x.size == expected && y.size == found)
}

#[test]
fn same_kind_with_another_layout_says_what_differs() {
    let m = populated();
    let capacity = |e: Error, what: &str, x: u64, y: u64| {
        assert!(
            matches!(&e, Error::CapacityMismatch { what: w, expected, found }
                if *w == what && *expected == x && *found == y),
            "{e:?}"
        );
    };
    capacity(
        fails(&m, "dict capacity", || m.dict::<u64, u64>("dict", 32)),
        "capacity",
        32,
        16,
    );
    let e = fails(&m, "dict key", || m.dict::<u32, u64>("dict", 16));
    assert!(is_element(&e, "key", 4, 8), "{e:?}");
    let e = fails(&m, "dict value", || m.dict::<u64, u32>("dict", 16));
    assert!(is_element(&e, "value", 4, 8), "{e:?}");
    let e = fails(&m, "dict value, other id", || {
        m.dict::<u64, multiproc::Tagged<u64, 9>>("dict", 16)
    });
    assert!(
        matches!(&e, Error::ElementMismatch { role: "value", expected, found }
            if expected.type_id == 9 && found.type_id == 0),
        "{e:?}"
    );
    capacity(
        fails(&m, "queue capacity", || m.queue::<u32>("queue", 8)),
        "capacity",
        8,
        4,
    );
    let e = fails(&m, "queue item", || m.queue::<u64>("queue", 4));
    assert!(is_element(&e, "element", 8, 4), "{e:?}");
    let e = fails(&m, "bytes slot size", || m.bytes_queue("bytes", 4, 32));
    assert!(
        matches!(
            e,
            Error::SlotSizeMismatch {
                expected: 32,
                found: 16
            }
        ),
        "{e:?}"
    );
    capacity(
        fails(&m, "bytes capacity", || m.bytes_queue("bytes", 8, 16)),
        "capacity",
        8,
        4,
    );
    let e = fails(&m, "value type", || m.value("value", 0u32));
    assert!(is_element(&e, "element", 4, 8), "{e:?}");
    capacity(
        fails(&m, "array length", || m.array::<u32>("array", 4)),
        "length",
        4,
        3,
    );
    let e = fails(&m, "array element", || m.array::<u16>("array", 3));
    assert!(is_element(&e, "element", 2, 4), "{e:?}");
    // A Value is an Array of length 1 inside, but an Array of another length
    // is another kind to a caller asking for a Value (as `Value::open` says).
    let e = fails(&m, "value as the 3-array", || m.value("array", 0u32));
    assert!(is_type_mismatch(&e, "Value", "Array"), "{e:?}");
    contents_intact(&m);
}

#[test]
fn same_layout_under_another_type_name_is_the_same_object() {
    // Identity is size, alignment and type id, not the Rust type: these are
    // how another program's identical `#[repr(C)]` types look to a manager.
    let m = populated();
    let before = snapshot(&m);
    assert_eq!(m.dict::<i64, i64>("dict", 16).unwrap().len(), 1);
    assert_eq!(m.queue::<i32>("queue", 4).unwrap().capacity(), 4);
    assert_eq!(m.value("value", 0i64).unwrap().load(), Ok(5));
    assert_eq!(m.array::<i32>("array", 3).unwrap().len(), 3);
    assert_eq!(snapshot(&m), before);
}

#[test]
fn parameters_that_do_not_change_the_layout_are_taken_from_the_creator() {
    // Documented get-or-create behaviour: a later call with another initial
    // value, permit count or party count gets the existing object as created.
    let m = populated();
    let before = snapshot(&m);
    assert_eq!(m.counter("counter", 99).unwrap().load(), 4);
    assert_eq!(m.value("value", 99u64).unwrap().load(), Ok(5));
    assert_eq!(m.semaphore("semaphore", 7).unwrap().value(), 1);
    assert_eq!(m.barrier("barrier", 5).unwrap().parties(), 2);
    // Same storage: a 1-element array of the value's type is the value.
    assert_eq!(m.array::<u64>("value", 1).unwrap().get(0), Ok(5));
    assert_eq!(snapshot(&m), before);
}

#[test]
fn invalid_parameters_are_rejected() {
    let m = populated();
    let invalid = |e: Error| assert!(matches!(e, Error::InvalidParameter(_)), "{e:?}");
    invalid(fails(&m, "dict capacity 0", || m.dict::<u64, u64>("d0", 0)));
    invalid(fails(&m, "queue capacity 0", || m.queue::<u32>("q0", 0)));
    invalid(fails(&m, "joinable capacity 0", || {
        m.joinable_queue::<u32>("j0", 0)
    }));
    invalid(fails(&m, "bytes capacity 0", || m.bytes_queue("b0", 0, 8)));
    invalid(fails(&m, "queue capacity 2^28+1", || {
        m.queue::<u32>("qbig", (1 << 28) + 1)
    }));
    invalid(fails(&m, "bytes slot 0", || m.bytes_queue("b0", 4, 0)));
    invalid(fails(&m, "array length 0", || m.array::<u64>("a0", 0)));
    invalid(fails(&m, "array length huge", || {
        m.array::<u64>("ahuge", usize::MAX)
    }));
    invalid(fails(&m, "dict capacity huge", || {
        m.dict::<u64, u64>("dhuge", usize::MAX)
    }));
    invalid(fails(&m, "queue capacity 2^62", || {
        m.queue::<u64>("qhuge", 1 << 62)
    }));
    invalid(fails(&m, "bytes slot huge", || {
        m.bytes_queue("bhuge", 4, usize::MAX)
    }));
    invalid(fails(&m, "barrier 0 parties", || m.barrier("b0", 0)));
    invalid(fails(&m, "semaphore above 2^31-1", || {
        m.semaphore("s", u32::MAX)
    }));
    // An invalid parameter is refused even when the name exists.
    invalid(fails(&m, "dict 0 on existing", || {
        m.dict::<u64, u64>("dict", 0)
    }));
    invalid(fails(&m, "queue 0 on existing", || {
        m.queue::<u32>("queue", 0)
    }));
    contents_intact(&m);

    // A representable array bigger than the arena is out of space, not invalid.
    let e = fails(&m, "array bigger than the arena", || {
        m.array::<u64>("abig", 1 << 40)
    });
    assert!(matches!(e, Error::OutOfSpace { .. }), "{e:?}");
    assert!(matches!(
        Manager::anonymous(usize::MAX),
        Err(Error::InvalidParameter(_))
    ));
    for entries in [0, MAX_ENTRIES + 1] {
        let e = Manager::anonymous_with(4096, ManagerOptions::new().entries(entries)).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter(_)), "{entries}: {e:?}");
    }
}

/// Get-or-create takes any capacity from 1 up for every queue kind; a second
/// get finds the same queue, and another capacity is a typed mismatch.
#[test]
fn queues_of_any_capacity_are_created_and_found() {
    let m = Manager::anonymous(1 << 20).unwrap();
    for cap in [1usize, 3, 30] {
        let q = m.queue::<u32>(&format!("q{cap}"), cap).unwrap();
        let j = m.joinable_queue::<u32>(&format!("j{cap}"), cap).unwrap();
        let b = m.bytes_queue(&format!("b{cap}"), cap, 8).unwrap();
        for i in 0..cap as u32 {
            q.try_put(i).unwrap();
            j.try_put(i).unwrap();
            b.try_put(&i.to_le_bytes()).unwrap();
        }
        assert!(q.is_full() && j.is_full() && b.is_full(), "cap {cap}");
        let again = m.queue::<u32>(&format!("q{cap}"), cap).unwrap();
        assert_eq!((again.capacity(), again.len()), (cap, cap));
        assert_eq!(again.try_get(), Ok(0));
        assert!(matches!(
            m.queue::<u32>(&format!("q{cap}"), cap + 1),
            Err(Error::CapacityMismatch { .. })
        ));
    }
}

#[test]
fn invalid_object_names_are_rejected() {
    let m = populated();
    let long = "x".repeat(MAX_OBJECT_NAME + 1);
    for bad in ["", long.as_str(), "a\0b", "\0", "nul-at-end\0"] {
        let e = fails(&m, bad, || m.counter(bad, 0));
        assert!(
            matches!(&e, Error::InvalidObjectName { name, .. } if name == bad),
            "{bad:?}: {e:?}"
        );
        let e = fails(&m, bad, || m.dict::<u64, u64>(bad, 4));
        assert!(matches!(e, Error::InvalidObjectName { .. }), "{bad:?}");
    }
    // A 64-byte name whose first 63 bytes name an existing object: still refused.
    let name63 = "y".repeat(MAX_OBJECT_NAME);
    m.counter(&name63, 63).unwrap();
    let name64 = format!("{name63}z");
    let e = fails(&m, "64 bytes", || m.counter(&name64, 0));
    assert!(matches!(e, Error::InvalidObjectName { .. }), "{e:?}");
    // The longest valid names, ASCII and multi-byte UTF-8, work.
    let utf8 = format!("{}x", "é".repeat(31));
    assert_eq!(utf8.len(), MAX_OBJECT_NAME);
    m.counter(&utf8, 8).unwrap();
    assert_eq!(m.counter(&name63, 0).unwrap().load(), 63);
    assert_eq!(m.counter(&utf8, 0).unwrap().load(), 8);
    assert!(m.names().contains(&name63) && m.names().contains(&utf8));
}

#[test]
fn out_of_space_is_typed_and_a_smaller_object_still_fits() {
    const ARENA: usize = 4096;
    let m = Manager::anonymous(ARENA).unwrap();
    assert_eq!(m.available(), ARENA);
    let e = fails(&m, "big dict", || m.dict::<u64, u64>("big", 10_000));
    match e {
        Error::OutOfSpace { needed, available } => {
            assert!(needed > available, "{needed} > {available}");
            assert_eq!(available, ARENA);
        }
        other => panic!("{other:?}"),
    }
    // Fill the arena with counters until it refuses one; each must be distinct
    // storage (no two objects overlap).
    let mut counters = Vec::new();
    let last = loop {
        match m.counter(&format!("c{}", counters.len()), counters.len() as i64) {
            Ok(c) => counters.push(c),
            Err(e) => break e,
        }
        assert!(counters.len() <= ARENA / 8, "never ran out of space");
    };
    assert!(matches!(last, Error::OutOfSpace { .. }), "{last:?}");
    assert!(!counters.is_empty());
    for (i, c) in counters.iter().enumerate() {
        assert_eq!(c.fetch_add(1000), i as i64);
    }
    for (i, c) in counters.iter().enumerate() {
        assert_eq!(c.load(), i as i64 + 1000);
    }
    // Full: everything refuses, nothing changes, existing objects still resolve.
    let e = fails(&m, "one more counter", || m.counter("more", 0));
    assert!(matches!(e, Error::OutOfSpace { .. }), "{e:?}");
    let e = fails(&m, "an array", || m.array::<u8>("more", 1));
    assert!(matches!(e, Error::OutOfSpace { .. }), "{e:?}");
    assert_eq!(m.counter("c0", 0).unwrap().load(), 1000);
    assert_eq!(m.names().len(), counters.len());

    // An empty arena holds nothing but is a valid manager.
    let empty = Manager::anonymous(0).unwrap();
    assert_eq!(empty.available(), 0);
    let e = fails(&empty, "anything", || empty.event("e"));
    assert!(matches!(e, Error::OutOfSpace { available: 0, .. }), "{e:?}");

    // After a refused big object, a small one still fits.
    let m = Manager::anonymous(ARENA).unwrap();
    m.counter("first", 1).unwrap();
    let e = fails(&m, "big array", || m.array::<u64>("big", ARENA));
    assert!(matches!(e, Error::OutOfSpace { .. }), "{e:?}");
    let small = m.array::<u64>("small", 4).unwrap();
    small.set(3, 3).unwrap();
    assert_eq!(m.names(), ["first", "small"]);
    assert_eq!(m.counter("first", 0).unwrap().load(), 1);
}

#[test]
fn directory_full_is_typed_and_existing_names_still_resolve() {
    let m = Manager::anonymous_with(1 << 16, ManagerOptions::new().entries(2)).unwrap();
    m.counter("a", 1).unwrap();
    m.event("b").unwrap().set();
    let e = fails(&m, "third object", || m.counter("c", 0));
    assert!(matches!(e, Error::DirectoryFull { entries: 2 }), "{e:?}");
    let e = fails(&m, "third object, other kind", || m.lock("d"));
    assert!(matches!(e, Error::DirectoryFull { .. }), "{e:?}");
    // Lookups of existing objects need no entry.
    assert_eq!(m.counter("a", 0).unwrap().load(), 1);
    assert!(m.event("b").unwrap().is_set());
    // Type errors still win over "full" for an existing name.
    let e = fails(&m, "existing as another type", || m.lock("a"));
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e:?}");
    assert_eq!(m.names(), ["a", "b"]);
}

#[test]
fn manager_names_and_regions_are_checked() {
    let name = unique_name("mgr-bad");
    let _u = Unlink(name.clone());
    assert!(matches!(Manager::open(&name), Err(Error::NotFound(_))));
    let m = Manager::create(&name, 4096).unwrap();
    m.counter("c", 1).unwrap();
    assert!(matches!(
        Manager::create(&name, 4096),
        Err(Error::AlreadyExists(_))
    ));
    assert_eq!(Manager::open(&name).unwrap().names(), ["c"]);
    assert!(matches!(
        Manager::create("no-slash", 4096),
        Err(Error::InvalidName { .. })
    ));
    // Another kind of region under a name is not a manager, and vice versa.
    let lock_name = unique_name("not-mgr");
    let _u2 = Unlink(lock_name.clone());
    let _lock = Lock::create(&lock_name).unwrap();
    assert!(matches!(
        Manager::open(&lock_name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(Lock::open(&name), Err(Error::TypeMismatch { .. })));
}

// ---------------------------------------------------------------------------
// (c) forked children
// ---------------------------------------------------------------------------

#[test]
fn forked_child_and_parent_see_each_others_objects_by_name() {
    let m = Manager::anonymous(1 << 20).unwrap();
    m.counter("before-fork", 1).unwrap();
    let go = Event::anonymous().unwrap();
    let child = spawn(|| {
        // Objects the parent created before the fork.
        if m.counter("before-fork", 0).map(|c| c.load()).ok() != Some(1) {
            return 1;
        }
        // Objects the parent creates after the fork: found by name, once published.
        go.wait();
        let Ok(d) = m.dict::<u32, u32>("from-parent", 8) else {
            return 2;
        };
        if d.get(&7) != Ok(Some(70)) {
            return 3;
        }
        if m.queue::<u64>("parent-queue", 4).map(|q| q.try_get()).ok() != Some(Ok(5)) {
            return 4;
        }
        // Objects the child creates, for the parent.
        let Ok(q) = m.queue::<u64>("from-child", 4) else {
            return 5;
        };
        if q.put(99).is_err() {
            return 6;
        }
        let Ok(c) = m.counter("child-counter", 10) else {
            return 7;
        };
        c.fetch_add(1);
        if m.value("child-value", [3u16; 3]).is_err() {
            return 8;
        }
        0
    });
    let d = m.dict::<u32, u32>("from-parent", 8).unwrap();
    d.insert(7, 70).unwrap();
    m.queue::<u64>("parent-queue", 4).unwrap().put(5).unwrap();
    go.set();
    assert_eq!(join(child), ExitStatus::Code(0));
    assert_eq!(
        m.names(),
        [
            "before-fork",
            "from-parent",
            "parent-queue",
            "from-child",
            "child-counter",
            "child-value"
        ]
    );
    assert_eq!(m.queue::<u64>("from-child", 4).unwrap().try_get(), Ok(99));
    assert_eq!(m.counter("child-counter", 0).unwrap().load(), 11);
    assert_eq!(
        m.value("child-value", [0u16; 3]).unwrap().load(),
        Ok([3; 3])
    );
    // The child's objects are ordinary objects: a type error for the wrong type.
    assert!(matches!(
        m.lock("child-counter"),
        Err(Error::TypeMismatch { .. })
    ));
}

// ---------------------------------------------------------------------------
// (d) an unrelated program
// ---------------------------------------------------------------------------

/// Set (to the manager's name) only in the environment of the re-executed test
/// binary started by `unrelated_program_opens_the_manager_by_name`.
const CHILD_ENV: &str = "MULTIPROC_TEST_MANAGER_CHILD";

/// The child half of `unrelated_program_opens_the_manager_by_name`. It does
/// nothing (and passes) in a normal test run: it acts only when the parent test
/// re-executes this binary with `CHILD_ENV` set.
#[test]
fn unrelated_program_child_role() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    let m = Manager::open(&name).unwrap();
    // The parent's objects.
    assert_eq!(m.names(), ["parent-dict", "parent-counter", "parent-array"]);
    let d = m.dict::<FixedStr<8>, u64>("parent-dict", 8).unwrap();
    assert_eq!(d.get(&FixedStr::try_new("answer").unwrap()), Ok(Some(42)));
    let c = m.counter("parent-counter", 0).unwrap();
    assert_eq!(c.fetch_add(1), 7);
    let a = m.array::<u32>("parent-array", 3).unwrap();
    assert_eq!(a.to_vec(), Ok(vec![1, 2, 3]));
    assert!(matches!(
        m.queue::<u64>("parent-dict", 4),
        Err(Error::TypeMismatch { .. })
    ));
    // Objects of its own.
    let q = m.queue::<u64>("child-queue", 4).unwrap();
    q.put(1234).unwrap();
    m.counter("child-counter", -5).unwrap().fetch_sub(1);
}

/// Waits for a spawned program under the watchdog, returning its output.
fn wait_program(child: std::process::Child) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(common::WATCHDOG) {
        Ok(out) => out.expect("wait for the child program"),
        Err(_) => {
            // SAFETY: kill has no memory-safety preconditions; the pid is our
            // unreaped child's.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("watchdog: child program {pid} did not finish");
        }
    }
}

#[test]
fn unrelated_program_opens_the_manager_by_name() {
    let name = unique_name("mgr-exec");
    let _u = Unlink(name.clone());
    let m = Manager::create(&name, 1 << 20).unwrap();
    m.dict::<FixedStr<8>, u64>("parent-dict", 8)
        .unwrap()
        .insert(FixedStr::try_new("answer").unwrap(), 42)
        .unwrap();
    m.counter("parent-counter", 7).unwrap();
    m.array::<u32>("parent-array", 3)
        .unwrap()
        .with_lock(|s| s.copy_from_slice(&[1, 2, 3]))
        .unwrap();

    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unrelated_program_child_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_program(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child program failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The child really ran its test (a filter matching nothing also succeeds).
    assert!(stdout.contains("1 passed"), "{stdout}");

    assert_eq!(
        m.names(),
        [
            "parent-dict",
            "parent-counter",
            "parent-array",
            "child-queue",
            "child-counter"
        ]
    );
    assert_eq!(m.counter("parent-counter", 0).unwrap().load(), 8);
    assert_eq!(
        m.queue::<u64>("child-queue", 4).unwrap().try_get(),
        Ok(1234)
    );
    assert_eq!(m.counter("child-counter", 0).unwrap().load(), -6);
    assert_eq!(m.recoveries(), 0, "the child exited normally");
}

// ---------------------------------------------------------------------------
// (e) racing creators
// ---------------------------------------------------------------------------

#[test]
fn racing_creators_make_exactly_one_object_per_name() {
    const PROCS: usize = 8;
    const ROUNDS: usize = 12;
    let m = Manager::anonymous(1 << 20).unwrap();
    let go = Event::anonymous().unwrap();
    // Per round: successes as a counter (word 2r) and as a lock (word 2r + 1)
    // in the mixed-kind race.
    let mem = Scratch::new(2 * ROUNDS);
    let (m, go, mem) = (&m, &go, &mem);
    let children: Vec<_> = (0..PROCS)
        .map(|i| {
            spawn(move || {
                go.wait();
                for r in 0..ROUNDS {
                    // Everybody creates-or-gets the same counter and counts.
                    let Ok(c) = m.counter(&format!("c{r}"), 0) else {
                        return 1;
                    };
                    c.fetch_add(1);
                    // Everybody creates an object of its own.
                    let Ok(own) = m.counter(&format!("own-{i}-{r}"), (100 * i + r) as i64) else {
                        return 2;
                    };
                    if own.load() != (100 * i + r) as i64 {
                        return 3;
                    }
                    // Half want a counter, half a lock, under one name: one kind
                    // wins, the others get a type error.
                    let name = format!("k{r}");
                    let (won, word) = if i % 2 == 0 {
                        (m.counter(&name, 0).map(|_| ()), 2 * r)
                    } else {
                        (m.lock(&name).map(|_| ()), 2 * r + 1)
                    };
                    match won {
                        Ok(()) => {
                            mem.atomic(word).fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::TypeMismatch { .. }) => {}
                        Err(_) => return 4,
                    }
                }
                0
            })
        })
        .collect();
    go.set();
    join_all_ok(children);

    let names = m.names();
    assert_eq!(names.len(), ROUNDS * (2 + PROCS));
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a name was published twice");
    let objects = m.objects();
    for r in 0..ROUNDS {
        assert_eq!(m.counter(&format!("c{r}"), 0).unwrap().load(), PROCS as i64);
        for i in 0..PROCS {
            assert_eq!(
                m.counter(&format!("own-{i}-{r}"), 0).unwrap().load(),
                (100 * i + r) as i64,
                "objects overlap"
            );
        }
        let kind = &objects
            .iter()
            .find(|o| o.name == format!("k{r}"))
            .unwrap()
            .kind;
        let (as_counter, as_lock) = (
            mem.atomic(2 * r).load(Ordering::Relaxed),
            mem.atomic(2 * r + 1).load(Ordering::Relaxed),
        );
        let half = (PROCS / 2) as u64;
        match kind.as_str() {
            "Counter" => assert_eq!((as_counter, as_lock), (half, 0), "round {r}"),
            "Lock" => assert_eq!((as_counter, as_lock), (0, half), "round {r}"),
            other => panic!("round {r}: kind {other}"),
        }
    }
    assert_eq!(m.recoveries(), 0);
}

// ---------------------------------------------------------------------------
// (f) creators killed at random points
// ---------------------------------------------------------------------------

/// Kills and reaps a child if the test fails first, so no looping child
/// outlives a failed test.
struct Reaper(Option<Child>);

impl Reaper {
    fn take(&mut self) -> Child {
        self.0.take().expect("child already taken")
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait_timeout(common::WATCHDOG);
        }
    }
}

#[test]
fn creators_killed_at_random_points_leave_a_consistent_directory() {
    const KILLS: usize = 30;
    // Enough entries and arena for every object the children can make.
    let m = Manager::anonymous_with(1 << 20, ManagerOptions::new().entries(4096)).unwrap();
    // Word 0: objects the current child finished creating (after the call).
    let mem = Scratch::new(1);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let name = |n: u64| format!("k{n}");
    let check = |n: u64| {
        // Counter `n` holds `n * 3`; the arrays are odd-numbered objects.
        if n % 2 == 0 {
            assert_eq!(m.counter(&name(n), 0).unwrap().load(), (n * 3) as i64);
        } else {
            let a = m.array::<u64>(&name(n), 5).unwrap();
            assert_eq!(a.to_vec(), Ok(vec![0, 0, 0, 0, n]));
        }
    };
    let make = |n: u64| -> bool {
        if n % 2 == 0 {
            m.counter(&name(n), (n * 3) as i64).is_ok()
        } else {
            m.array::<u64>(&name(n), 5)
                .is_ok_and(|a| a.set(4, n).is_ok())
        }
    };
    let mut checked = 0;
    for round in 0..KILLS {
        let start = m.names().len() as u64;
        mem.atomic(0).store(start, Ordering::SeqCst);
        let mut child = Reaper(Some(spawn(|| {
            let mut n = start;
            loop {
                if !make(n) {
                    return 1;
                }
                n += 1;
                mem.atomic(0).store(n, Ordering::SeqCst);
            }
        })));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let target = start + 1 + rng % 40;
        let t0 = Instant::now();
        while mem.atomic(0).load(Ordering::SeqCst) < target {
            assert!(t0.elapsed() < common::WATCHDOG, "watchdog: creator stalled");
            std::thread::yield_now();
        }
        common::kill(child.take());
        let done = mem.atomic(0).load(Ordering::SeqCst);
        let names = m.names();
        let published = names.len() as u64;
        // The in-flight object is published or not, never half.
        assert!(
            published == done || published == done + 1,
            "round {round}: {published} published, {done} completed"
        );
        for (i, n) in names.iter().enumerate() {
            assert_eq!(*n, name(i as u64));
        }
        // An odd object published but killed before its `set`: finish it here.
        if published == done + 1 && done % 2 == 1 {
            m.array::<u64>(&name(done), 5)
                .unwrap()
                .set(4, done)
                .unwrap();
        }
        for n in checked..published {
            check(n);
        }
        checked = published;
        // The next creation works (repairing if the child died holding the lock).
        assert!(m.recoveries() <= round as u64 + 1);
    }
    let total = m.names().len() as u64;
    assert!(make(total));
    // No object overlaps another: every one still holds what its creator wrote.
    for n in 0..=total {
        check(n);
    }
    eprintln!(
        "{KILLS} kills: {} directory repairs, {} objects",
        m.recoveries(),
        total + 1
    );
}
