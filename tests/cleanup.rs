//! Cleanup policies with real processes killed by SIGKILL: a persistent region
//! outlives everyone (a restarted program finds what was queued), a
//! creator-death region is removed by the first process to notice the death
//! (an open, a lock probe), and a last-participant region goes when its last
//! participant leaves or every participant is dead.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use common::{Scratch, Unlink, WATCHDOG, join, kill, spawn, unique_name};
use multiproc::process::{Child, ExitStatus};
use multiproc::{Cleanup, Counter, Error, Event, Lock, LockError, Queue, Region, RegionOptions};

fn exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm{name}")).exists()
}

fn policy(p: Cleanup) -> RegionOptions {
    RegionOptions::new().cleanup(p)
}

/// Forks a child that runs `setup` (creating or opening regions, which it
/// keeps), says it is done, then waits in the crate's own code to be killed.
fn child_holding<H>(setup: impl FnOnce() -> Option<H>) -> Child {
    let ready = Event::anonymous().unwrap();
    let never = Event::anonymous().unwrap();
    let set = ready.clone();
    let child = spawn(move || {
        let Some(_held) = setup() else { return 3 };
        set.set();
        never.wait();
        4
    });
    assert!(ready.wait_timeout(WATCHDOG), "watchdog: child setup");
    child
}

#[test]
fn persistent_regions_outlive_their_killed_creator() {
    let name = unique_name("persist");
    let _u = Unlink(name.clone());
    let n = name.clone();
    let c = child_holding(move || {
        let q = Queue::<u64>::create(&n, 64).ok()?;
        for i in 0..64 {
            q.try_put(i).ok()?;
        }
        Some(q)
    });
    kill(c);
    // The restarted consumer finds every job queued while it was away.
    let info = Region::inspect(&name).unwrap();
    assert_eq!(info.cleanup, Cleanup::Persistent);
    assert!(!info.creator_alive);
    let q = Queue::<u64>::open(&name).unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| q.try_get().ok()).collect();
    assert_eq!(got, (0..64).collect::<Vec<_>>());
    assert!(exists(&name));
}

#[test]
fn creator_death_is_noticed_by_the_next_open() {
    let name = unique_name("creator-open");
    let _u = Unlink(name.clone());
    let n = name.clone();
    let c = child_holding(move || Counter::create_with(&n, 5, policy(Cleanup::CreatorDeath)).ok());
    // While the creator lives, the region opens as usual.
    let before = Counter::open(&name).unwrap();
    assert_eq!(before.load(), 5);
    assert_eq!(
        Region::inspect(&name).unwrap().cleanup,
        Cleanup::CreatorDeath
    );
    kill(c);
    // An open notices the dead creator, removes the name and says NotFound, so
    // open-else-create starts afresh...
    assert!(exists(&name));
    match Counter::open(&name) {
        Err(Error::NotFound(n)) => assert_eq!(n, name),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!exists(&name));
    // ...while a process that had it open keeps using it.
    assert_eq!(before.fetch_add(1), 5);
    let fresh = Counter::create_with(&name, 0, policy(Cleanup::CreatorDeath)).unwrap();
    assert_eq!(fresh.load(), 0);
}

#[test]
fn creator_death_after_a_clean_exit_counts_too() {
    let name = unique_name("creator-exit");
    let _u = Unlink(name.clone());
    let n = name.clone();
    // The child creates and returns normally (leaving the table on the way).
    let c = spawn(
        move || match Counter::create_with(&n, 1, policy(Cleanup::CreatorDeath)) {
            Ok(c) => {
                std::mem::forget(c);
                0
            }
            Err(_) => 1,
        },
    );
    assert_eq!(join(c), ExitStatus::Code(0));
    assert!(exists(&name));
    assert!(matches!(Counter::open(&name), Err(Error::NotFound(_))));
    assert!(!exists(&name));
}

#[test]
fn creator_death_is_noticed_by_a_lock_probe() {
    let name = unique_name("creator-lock");
    let _u = Unlink(name.clone());
    let n = name.clone();
    // The creator dies holding the lock; this process, already attached, finds
    // out through its acquire.
    let c = child_holding(move || {
        let l = Lock::create_with(&n, policy(Cleanup::CreatorDeath)).ok()?;
        let g = l.lock().ok()?;
        std::mem::forget(g);
        Some(l)
    });
    let lock = Lock::open(&name).unwrap();
    kill(c);
    assert!(exists(&name));
    match lock.lock() {
        Err(LockError::OwnerDied(mut g)) => g.mark_consistent(),
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    }
    assert!(
        !exists(&name),
        "the probe that found the creator dead left the name"
    );
    // The lock itself works on.
    drop(lock.lock().unwrap());
}

#[test]
fn creator_death_ignores_other_participants_dying() {
    let name = unique_name("creator-other");
    let _u = Unlink(name.clone());
    let lock = Lock::create_with(&name, policy(Cleanup::CreatorDeath)).unwrap();
    let n = name.clone();
    let c = child_holding(move || {
        let l = Lock::open(&n).ok()?;
        let g = l.lock().ok()?;
        std::mem::forget(g);
        Some(l)
    });
    kill(c);
    match lock.lock() {
        Err(LockError::OwnerDied(mut g)) => g.mark_consistent(),
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    }
    assert!(exists(&name));
    let again = Lock::open(&name).unwrap();
    drop(again);
    assert!(exists(&name));
    assert!(!Region::inspect(&name).unwrap().collectable());
}

#[test]
fn last_participant_leaving_removes_the_name() {
    let name = unique_name("last-leave");
    let _u = Unlink(name.clone());
    let mine = Counter::create_with(&name, 0, policy(Cleanup::LastParticipant)).unwrap();
    let (ready, go) = (Event::anonymous().unwrap(), Event::anonymous().unwrap());
    let (set, wait) = (ready.clone(), go.clone());
    let n = name.clone();
    let c = spawn(move || {
        let Ok(h) = Counter::open(&n) else { return 3 };
        set.set();
        if !wait.wait_timeout(WATCHDOG) {
            return 5;
        }
        h.fetch_add(1);
        drop(h); // the last participant: removes the name
        0
    });
    assert!(ready.wait_timeout(WATCHDOG));
    // The creator leaves first: the child still uses the region.
    drop(mine);
    assert!(exists(&name));
    go.set();
    assert_eq!(join(c), ExitStatus::Code(0));
    assert!(!exists(&name));
    assert!(matches!(Counter::open(&name), Err(Error::NotFound(_))));
}

#[test]
fn last_participant_leaving_after_a_kill_removes_the_name() {
    let name = unique_name("last-kill");
    let _u = Unlink(name.clone());
    let mine = Counter::create_with(&name, 0, policy(Cleanup::LastParticipant)).unwrap();
    let n = name.clone();
    let c = child_holding(move || Counter::open(&n).ok());
    kill(c);
    assert!(exists(&name));
    // Our leave probes the killed child's slot, finds it dead: nobody is left.
    drop(mine);
    assert!(!exists(&name));
}

#[test]
fn last_participant_all_killed_is_noticed_by_the_next_open() {
    let name = unique_name("last-all");
    let _u = Unlink(name.clone());
    let n = name.clone();
    let creator =
        child_holding(move || Counter::create_with(&n, 0, policy(Cleanup::LastParticipant)).ok());
    let n = name.clone();
    let joiner = child_holding(move || Counter::open(&n).ok());
    kill(creator);
    kill(joiner);
    let info = Region::inspect(&name).unwrap();
    assert!(info.expired() && info.collectable(), "{info:?}");
    assert_eq!(info.participants.len(), 2);
    match Counter::open(&name) {
        Err(Error::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!exists(&name));
}

/// Two processes repeatedly open-or-create, use and drop one last-participant
/// region: a process that holds a handle always finds the name there (a leaver
/// never removes a name someone joined through).
#[test]
fn last_participant_close_never_strands_a_joiner() {
    let name = unique_name("last-race");
    let _u = Unlink(name.clone());
    let scratch = Scratch::new(4);
    const ROUNDS: u64 = 200;
    let children: Vec<Child> = (0..2)
        .map(|_| {
            let n = name.clone();
            let s = &scratch;
            spawn(move || {
                for _ in 0..ROUNDS {
                    let h = loop {
                        match Counter::open(&n) {
                            Ok(h) => break h,
                            Err(Error::NotFound(_)) => {}
                            Err(_) => return 2,
                        }
                        match Counter::create_with(&n, 0, policy(Cleanup::LastParticipant)) {
                            Ok(h) => break h,
                            Err(Error::AlreadyExists(_)) => {}
                            Err(_) => return 3,
                        }
                    };
                    h.fetch_add(1);
                    if !matches!(Region::is_region(&n), Ok(true)) {
                        s.atomic(0)
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    s.atomic(1)
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    drop(h);
                }
                0
            })
        })
        .collect();
    for c in children {
        assert_eq!(join(c), ExitStatus::Code(0));
    }
    assert_eq!(
        scratch.atomic(1).load(std::sync::atomic::Ordering::Relaxed),
        2 * ROUNDS
    );
    assert_eq!(
        scratch.atomic(0).load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a holder found its region's name removed"
    );
    assert!(!exists(&name), "the last leaver left the name behind");
}

/// `Region::collect` (what `multiproc gc` calls after its prompt) looks again:
/// a region joined or replaced since it was inspected is kept.
#[test]
fn collect_keeps_regions_joined_or_replaced_since_inspection() {
    let joined = unique_name("collect-joined");
    let _u1 = Unlink(joined.clone());
    let replaced = unique_name("collect-replaced");
    let _u2 = Unlink(replaced.clone());
    let gone = unique_name("collect-gone");
    let _u3 = Unlink(gone.clone());
    let mut infos = Vec::new();
    for n in [&joined, &replaced, &gone] {
        let n2 = n.clone();
        let c = child_holding(move || Counter::create(&n2, 1).ok());
        kill(c);
        let info = Region::inspect(n).unwrap();
        assert!(info.abandoned() && info.collectable(), "{info:?}");
        infos.push(info);
    }
    // A restarted program joins the first; the second is made anew.
    let _back = Counter::open(&joined).unwrap();
    Region::unlink(&replaced).unwrap();
    let _new = Counter::create(&replaced, 2).unwrap();
    assert!(!Region::collect(&infos[0]).unwrap());
    assert!(!Region::collect(&infos[1]).unwrap());
    assert!(Region::collect(&infos[2]).unwrap());
    assert!(exists(&joined) && exists(&replaced) && !exists(&gone));
    assert!(!Region::collect(&infos[2]).unwrap(), "already removed");
}

#[test]
fn open_or_create_starts_afresh_after_a_killed_creator_death_creator() {
    let name = unique_name("creator-ooc");
    let _u = Unlink(name.clone());
    let n = name.clone();
    let c = child_holding(move || {
        let q = Queue::<u64>::open_or_create_with(&n, 8, policy(Cleanup::CreatorDeath)).ok()?;
        q.try_put(7).ok()?;
        q.region().created_here().then_some(q)
    });
    // While the creator lives, open_or_create opens its queue.
    let live = Queue::<u64>::open_or_create_with(&name, 8, policy(Cleanup::CreatorDeath)).unwrap();
    assert!(!live.region().created_here());
    assert_eq!(live.len(), 1);
    drop(live);
    kill(c);
    // After its death the name is removed by whoever notices, and
    // open_or_create creates a fresh, empty queue instead of failing.
    let q = Queue::<u64>::open_or_create_with(&name, 8, policy(Cleanup::CreatorDeath)).unwrap();
    assert!(q.region().created_here());
    assert_eq!(q.len(), 0);
    assert!(exists(&name));
}

/// A persistent queue that a participant crashed in once, and whose users
/// then all left cleanly, is idle, not abandoned: `multiproc gc` keeps it
/// with its queued items. Before, the dead member's slot stayed in the table
/// for good, the region read "abandoned" as soon as the live users left, and
/// `gc` removed it with the jobs it held. The users run in a forked child of
/// the test: a child another test forks (and kills) while the queue is open
/// here would join it too.
#[test]
fn a_crash_long_ago_does_not_make_a_left_region_abandoned() {
    let name = unique_name("crashed-once");
    let _u = Unlink(name.clone());
    let users = spawn(|| {
        let Ok(q) = Queue::<u64>::create(&name, 64) else {
            return 10;
        };
        let Ok(started) = Event::anonymous() else {
            return 11;
        };
        let crasher = spawn(|| {
            let Ok(q) = Queue::<u64>::open(&name) else {
                return 1;
            };
            started.set();
            let _ = q.get_timeout(WATCHDOG);
            0
        });
        if !started.wait_timeout(WATCHDOG) {
            return 12;
        }
        kill(crasher);
        if (0..5).any(|i| q.put(i).is_err()) {
            return 13;
        }
        0
    });
    assert_eq!(join(users), ExitStatus::Code(0));
    let info = Region::inspect(&name).unwrap();
    assert!(
        !info.collectable(),
        "a region left cleanly reads collectable: {:?}",
        info.participants
    );
    assert_eq!(info.len, Some(5));
    assert!(exists(&name));
}
