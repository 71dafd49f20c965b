//! `open_or_create` on every named kind: one creator among racing starters,
//! the checks of `open` plus capacity and slot size, and the restart after a
//! SIGKILL that `create` alone cannot do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use common::{Unlink, join_all_ok, kill, spawn, unique_name};
use multiproc::{
    Array, Barrier, BoundedSemaphore, BytesQueue, Condition, Counter, Error, Event, JoinableQueue,
    Lock, Manager, Queue, RLock, Region, Semaphore, SharedDict, Tagged, Value,
};

/// Racing processes per round.
const PROCS: usize = 8;
/// Kinds the race cycles through.
const KINDS: usize = 8;

/// Rounds of the race: 100 by default, `MULTIPROC_RACE_ROUNDS` for more.
fn rounds() -> usize {
    std::env::var("MULTIPROC_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// One starter's `open_or_create` of round `r`'s object, which it then uses
/// once (so the parent can check that all of them got the same object).
/// Returns whether this process created it.
fn start(kind: usize, name: &str, me: u64) -> Result<bool, Error> {
    match kind {
        0 => {
            let q = Queue::<u64>::open_or_create(name, 8)?;
            q.try_put(me)
                .map_err(|_| Error::InvalidParameter("queue full"))?;
            Ok(q.region().created_here())
        }
        1 => {
            let d = SharedDict::<u64, u64>::open_or_create(name, 16)?;
            d.insert(me, me * 10)
                .map_err(|_| Error::InvalidParameter("dict insert"))?;
            Ok(d.region().created_here())
        }
        2 => {
            let v = Value::<u64>::open_or_create(name, 0)?;
            v.with_lock(|x| *x += 1)
                .map_err(|_| Error::InvalidParameter("value"))?;
            Ok(v.region().created_here())
        }
        3 => {
            let m = Manager::open_or_create(name, 1 << 16)?;
            m.counter("starters", 0)?.fetch_add(1);
            Ok(m.region().created_here())
        }
        4 => {
            let c = Counter::open_or_create(name, 0)?;
            c.fetch_add(1);
            Ok(c.region().created_here())
        }
        5 => {
            let q = JoinableQueue::<u64>::open_or_create(name, 8)?;
            q.try_put(me)
                .map_err(|_| Error::InvalidParameter("queue full"))?;
            Ok(q.region().created_here())
        }
        6 => {
            let a = Array::<u64>::open_or_create(name, PROCS)?;
            a.fetch_add(me as usize, 1)
                .map_err(|_| Error::InvalidParameter("array"))?;
            Ok(a.region().created_here())
        }
        _ => {
            let s = Semaphore::open_or_create(name, 0)?;
            s.release()
                .map_err(|_| Error::InvalidParameter("release"))?;
            Ok(s.region().created_here())
        }
    }
}

/// Checks that round `r`'s object was shared by all `PROCS` starters.
fn all_used_one_object(kind: usize, name: &str) {
    let all: Vec<u64> = (0..PROCS as u64).collect();
    match kind {
        0 => {
            let q = Queue::<u64>::open(name).unwrap();
            let mut got: Vec<u64> = std::iter::from_fn(|| q.try_get().ok()).collect();
            got.sort_unstable();
            assert_eq!(got, all, "{name}");
        }
        1 => {
            let d = SharedDict::<u64, u64>::open(name).unwrap();
            let mut keys = d.keys().unwrap();
            keys.sort_unstable();
            assert_eq!(keys, all, "{name}");
        }
        2 => assert_eq!(Value::<u64>::open(name).unwrap().load(), Ok(PROCS as u64)),
        3 => {
            let m = Manager::open(name).unwrap();
            assert_eq!(m.counter("starters", 0).unwrap().load(), PROCS as i64);
        }
        4 => assert_eq!(Counter::open(name).unwrap().load(), PROCS as i64),
        5 => assert_eq!(JoinableQueue::<u64>::open(name).unwrap().len(), PROCS),
        6 => assert_eq!(
            Array::<u64>::open(name).unwrap().to_vec().unwrap(),
            vec![1; PROCS]
        ),
        _ => assert_eq!(Semaphore::open(name).unwrap().value(), PROCS as u32),
    }
}

#[test]
fn eight_racing_starters_give_one_creator_and_seven_openers_every_round() {
    let rounds = rounds();
    let names: Vec<String> = (0..rounds)
        .map(|r| unique_name(&format!("race{r}")))
        .collect();
    let _unlink: Vec<Unlink> = names.iter().cloned().map(Unlink).collect();
    let go = Barrier::anonymous(PROCS as u32).unwrap();
    let created = Array::<u64>::anonymous(rounds).unwrap();
    let opened = Array::<u64>::anonymous(rounds).unwrap();
    // Error codes of the first failure per child (0 = none), for the message.
    let failed = Array::<u64>::anonymous(PROCS).unwrap();
    let children = (0..PROCS)
        .map(|me| {
            let (go, created, opened, failed, names) = (&go, &created, &opened, &failed, &names);
            spawn(move || {
                for (r, name) in names.iter().enumerate() {
                    // Everyone starts the round together, so they really race.
                    if go.wait().is_err() {
                        return 10;
                    }
                    let tally = match start(r % KINDS, name, me as u64) {
                        Ok(true) => created,
                        Ok(false) => opened,
                        Err(_) => {
                            let _ = failed.set(me, r as u64 + 1);
                            return 20;
                        }
                    };
                    if tally.fetch_add(r, 1).is_err() {
                        return 30;
                    }
                }
                0
            })
        })
        .collect();
    join_all_ok(children);
    let created = created.to_vec().unwrap();
    let opened = opened.to_vec().unwrap();
    for (r, name) in names.iter().enumerate() {
        assert_eq!(
            (created[r], opened[r]),
            (1, PROCS as u64 - 1),
            "round {r} (kind {}): creators, openers",
            r % KINDS
        );
        all_used_one_object(r % KINDS, name);
    }
}

#[test]
fn a_restarted_program_opens_what_its_killed_predecessor_created() {
    let name = unique_name("restart");
    let _u = Unlink(name.clone());
    let ready = Event::anonymous().unwrap();
    let first = {
        let (name, ready) = (&name, &ready);
        spawn(move || {
            let Ok(q) = Queue::<u64>::open_or_create(name, 64) else {
                return 1;
            };
            if !q.region().created_here() {
                return 2;
            }
            for i in 0..64 {
                if q.put(i).is_err() {
                    return 3;
                }
            }
            ready.set();
            loop {
                std::thread::park();
            }
        })
    };
    assert!(
        ready.wait_timeout(common::WATCHDOG),
        "first run never filled the queue"
    );
    kill(first);
    // The restart: `create` would fail with AlreadyExists; this opens.
    assert!(matches!(
        Queue::<u64>::create(&name, 64),
        Err(Error::AlreadyExists(_))
    ));
    let q = Queue::<u64>::open_or_create(&name, 64).unwrap();
    assert!(!q.region().created_here());
    let got: Vec<u64> = std::iter::from_fn(|| q.try_get().ok()).collect();
    assert_eq!(got, (0..64).collect::<Vec<_>>());
}

#[test]
fn the_opening_side_runs_the_checks_of_open_and_compares_geometry() {
    let name = unique_name("checks");
    let _u = Unlink(name.clone());
    let q = Queue::<[u32; 4]>::open_or_create(&name, 8).unwrap();
    assert!(q.region().created_here());
    q.put([1, 2, 3, 4]).unwrap();

    let e = Queue::<[u32; 4]>::open_or_create(&name, 16).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CapacityMismatch {
                what: "capacity",
                expected: 16,
                found: 8
            }
        ),
        "{e:?}"
    );
    let e = Queue::<[u32; 5]>::open_or_create(&name, 8).unwrap_err();
    assert_eq!(
        e.to_string(),
        "element type differs: this program's has size 20, align 4, no type id; \
         the object's has size 16, align 4, no type id"
    );
    let e = Queue::<Tagged<[u32; 4], 77>>::open_or_create(&name, 8).unwrap_err();
    assert!(
        matches!(&e, Error::ElementMismatch { expected, found, .. }
            if expected.type_id == 77 && found.type_id == 0),
        "{e:?}"
    );
    let e = JoinableQueue::<[u32; 4]>::open_or_create(&name, 8).unwrap_err();
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e:?}");
    let e = SharedDict::<u64, u64>::open_or_create(&name, 8).unwrap_err();
    assert!(
        matches!(&e, Error::TypeMismatch { expected, found } if expected == "SharedDict" && found == "Queue"),
        "{e:?}"
    );
    // Same layout under another type name: the same queue.
    let same = Queue::<[i32; 4]>::open_or_create(&name, 8).unwrap();
    assert_eq!(same.get(), Ok([1, 2, 3, 4]));

    let bytes = unique_name("bytes");
    let _b = Unlink(bytes.clone());
    BytesQueue::open_or_create(&bytes, 4, 100).unwrap();
    let e = BytesQueue::open_or_create(&bytes, 4, 64).unwrap_err();
    assert_eq!(
        e.to_string(),
        "slot size differs: asked for 64 bytes, the existing queue has 100"
    );
    assert_eq!(
        BytesQueue::open_or_create(&bytes, 4, 100)
            .unwrap()
            .slot_size(),
        100
    );

    let dict = unique_name("dict");
    let _d = Unlink(dict.clone());
    SharedDict::<u64, [u8; 24]>::open_or_create(&dict, 10).unwrap();
    let e = SharedDict::<u64, [u8; 16]>::open_or_create(&dict, 10).unwrap_err();
    assert_eq!(
        e.to_string(),
        "value type differs: this program's has size 16, align 1, no type id; \
         the object's has size 24, align 1, no type id"
    );
    let e = SharedDict::<u64, [u8; 24]>::open_or_create(&dict, 11).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CapacityMismatch {
                expected: 11,
                found: 10,
                ..
            }
        ),
        "{e:?}"
    );

    let arr = unique_name("arr");
    let _a = Unlink(arr.clone());
    Array::<u16>::open_or_create(&arr, 5).unwrap();
    let e = Array::<u16>::open_or_create(&arr, 6).unwrap_err();
    assert_eq!(
        e.to_string(),
        "length differs: asked for 6, the existing object has 5"
    );
    // An Array is not a Value, however it is reached: by open, by
    // open_or_create, or through a manager (all told the same way).
    let as_value = |e: Error| match e {
        Error::TypeMismatch { expected, found } => (expected, found),
        e => panic!("{e:?}"),
    };
    let e = Value::<u16>::open_or_create(&arr, 0).unwrap_err();
    assert_eq!(as_value(e), ("Value".into(), "Array".into()));
    let e = Value::<u16>::open(&arr).unwrap_err();
    assert_eq!(as_value(e), ("Value".into(), "Array".into()));
    let q = unique_name("q-as-value");
    let _q = Unlink(q.clone());
    Queue::<u64>::create(&q, 4).unwrap();
    let e = Value::<u64>::open(&q).unwrap_err();
    assert_eq!(e.to_string(), "the object's kind is Queue, not Value");

    let mgr = unique_name("mgr");
    let _m = Unlink(mgr.clone());
    let m = Manager::open_or_create(&mgr, 1 << 16).unwrap();
    m.array::<u32>("a3", 3).unwrap();
    let e = m.value::<u32>("a3", 0).unwrap_err();
    assert_eq!(as_value(e), ("Value".into(), "Array".into()));
    m.queue::<u64>("jobs", 8).unwrap();
    let e = m.queue::<u64>("jobs", 16).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CapacityMismatch {
                expected: 16,
                found: 8,
                ..
            }
        ),
        "{e:?}"
    );
    let e = Manager::open_or_create(&mgr, 1 << 17).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CapacityMismatch {
                what: "arena size",
                ..
            }
        ),
        "{e:?}"
    );
    let again = Manager::open_or_create(&mgr, 1 << 16).unwrap();
    let mut names = again.names();
    names.sort();
    assert_eq!(names, ["a3", "jobs"]);
}

#[test]
fn every_other_named_kind_creates_once_then_opens() {
    fn twice<T>(open_or_create: impl Fn(&str) -> Result<T, Error>, region: impl Fn(&T) -> bool) {
        let name = unique_name("kind");
        let _u = Unlink(name.clone());
        let a = open_or_create(&name).unwrap();
        let b = open_or_create(&name).unwrap();
        assert!(region(&a) && !region(&b), "{name}");
    }
    twice(Lock::open_or_create, |l| l.region().created_here());
    twice(RLock::open_or_create, |l| l.region().created_here());
    twice(Event::open_or_create, |e| e.region().created_here());
    twice(Condition::open_or_create, |c| c.region().created_here());
    twice(
        |n| Semaphore::open_or_create(n, 2),
        |s| s.region().created_here(),
    );
    twice(
        |n| BoundedSemaphore::open_or_create(n, 2),
        |s| s.region().created_here(),
    );
    twice(
        |n| Barrier::open_or_create(n, 3),
        |b| b.region().created_here(),
    );
    twice(
        |n| Counter::open_or_create(n, 5),
        |c| c.region().created_here(),
    );

    // Kind checks as in `open`.
    let name = unique_name("sem");
    let _u = Unlink(name.clone());
    Semaphore::open_or_create(&name, 1).unwrap();
    assert!(matches!(
        BoundedSemaphore::open_or_create(&name, 1),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Lock::open_or_create(&name),
        Err(Error::TypeMismatch { .. })
    ));
}

#[test]
fn bad_parameters_fail_before_anything_is_created() {
    let name = unique_name("bad");
    let _u = Unlink(name.clone());
    assert!(matches!(
        Queue::<u64>::open_or_create(&name, 0),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        SharedDict::<u64, u64>::open_or_create(&name, 0),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        Barrier::open_or_create(&name, 0),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        Queue::<u64>::open_or_create("no-slash", 4),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(Queue::<u64>::open(&name), Err(Error::NotFound(_))));
}

#[test]
fn a_creator_that_never_finishes_is_reported_not_waited_for_forever() {
    // A file at the name whose header never reaches READY (a creator killed
    // while initializing): `open` waits a bounded time, then says so, and
    // leaves the file (`open_or_create` replaces it: the next test).
    use std::os::unix::fs::OpenOptionsExt;
    let name = unique_name("stuck");
    let _u = Unlink(name.clone());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(format!("/dev/shm{name}"))
        .unwrap();
    f.set_len(4096).unwrap();
    let e = Queue::<u64>::open(&name).unwrap_err();
    assert!(matches!(e, Error::NotReady), "{e:?}");
    assert!(Region::unlink(&name).is_ok());
}

/// A creator killed before its region was ready (while sizing or reserving a
/// large object, say) left a file that made every later `open_or_create` of
/// the name fail with `NotReady` for ever, whatever the cleanup policy, and
/// that `multiproc ls`/`gc` did not list. No creator holds such a file's
/// creation lock (the kernel drops a dead creator's), so `open_or_create`
/// now removes it and creates afresh. A file whose creator is still at work
/// (its lock held) is waited for and left alone; plain `open` removes nothing.
#[test]
fn open_or_create_replaces_what_a_dead_creator_left_unfinished() {
    use std::os::fd::AsRawFd;
    let name = unique_name("unfinished");
    let _u = Unlink(name.clone());
    let path = format!("/dev/shm{name}");
    let mk = |len: u64| {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut f.metadata().unwrap().permissions(),
            0o600,
        );
        f.set_len(len).unwrap();
        f
    };
    // Killed before sizing, and killed after sizing but before the header.
    for len in [0, 1 << 20] {
        drop(mk(len));
        assert!(
            matches!(
                Queue::<u64>::open(&name),
                Err(Error::NotReady | Error::Truncated { .. })
            ),
            "plain open of an unfinished creation"
        );
        assert!(
            std::path::Path::new(&path).exists(),
            "plain open removed it"
        );
        let q = Queue::<u64>::open_or_create(&name, 8).unwrap();
        assert!(q.region().created_here(), "len {len}: not created afresh");
        q.put(7).unwrap();
        assert_eq!(Queue::<u64>::open(&name).unwrap().get(), Ok(7));
        drop(q);
        Region::unlink(&name).unwrap();
    }
    // A creator at work (it holds the creation lock): waited for, not removed.
    let f = mk(1 << 20);
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    assert!(matches!(
        Queue::<u64>::open_or_create(&name, 8),
        Err(Error::NotReady)
    ));
    assert!(
        std::path::Path::new(&path).exists(),
        "a creator at work lost its file"
    );
    drop(f);
}
