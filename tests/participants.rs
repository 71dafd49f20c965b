//! The participant table: a full table is a typed error, slots stuck by a
//! joiner that died are reclaimed, deaths are seen through the beacon, and bytes a
//! peer writes over a held lock's region cannot crash the holder.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use common::{Unlink, join, spawn, unique_name};
use multiproc::process::ExitStatus;
use multiproc::{Error, Event, Lock, LockError, RegionOptions};

/// Where the participant table starts, and the size of one slot (the documented
/// layout: a 256-byte header, then 128-byte slots whose first word is the state).
const TABLE: u64 = 256;
const SLOT: u64 = 128;

fn shm_file(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap()
}

/// A pid that is certainly not running: a child we forked and reaped.
fn dead_pid() -> u32 {
    let child = spawn(|| 0);
    let pid = child.pid();
    assert_eq!(join(child), ExitStatus::Code(0));
    pid
}

#[test]
fn a_full_table_is_a_typed_error_at_attach() {
    let name = unique_name("full");
    let _u = Unlink(name.clone());
    let lock = Lock::create_with(&name, RegionOptions::new().participants(1)).unwrap();
    // This process holds the only slot (a second handle in the same process
    // shares it? no: each open region joins once, so the open must fail).
    match Lock::open(&name) {
        Err(Error::ParticipantsFull { slots: 1 }) => {}
        other => panic!("expected ParticipantsFull, got {other:?}"),
    }
    // A forked child joins on first use: its lock() says why it cannot.
    let child = spawn(|| match lock.lock() {
        Err(LockError::NoParticipantSlot) => 0,
        Ok(_) => 1,
        Err(_) => 2,
    });
    assert_eq!(join(child), ExitStatus::Code(0));
}

#[test]
fn a_slot_stuck_by_a_dead_joiner_is_reclaimed() {
    let name = unique_name("stuck");
    let _u = Unlink(name.clone());
    let lock = Lock::create_with(&name, RegionOptions::new().participants(2)).unwrap();
    // Slot 0 is ours. Leave slot 1 as a joiner killed mid-join would: CLAIMING,
    // tagged with the pid of a process that is gone.
    let pid = dead_pid();
    let mut f = shm_file(&name);
    f.seek(SeekFrom::Start(TABLE + SLOT)).unwrap();
    f.write_all(&((pid << 2) | 1).to_ne_bytes()).unwrap();
    drop(f);
    let child = spawn(|| match lock.lock() {
        Ok(_) => 0,
        Err(LockError::NoParticipantSlot) => 1,
        Err(_) => 2,
    });
    assert_eq!(
        join(child),
        ExitStatus::Code(0),
        "the stuck slot was not reclaimed"
    );
}

#[test]
fn a_killed_process_is_seen_dead_by_its_beacon() {
    let lock = Lock::anonymous().unwrap();
    let joined = Event::anonymous().unwrap();
    let never = Event::anonymous().unwrap();
    let child = spawn(|| {
        drop(lock.lock());
        joined.set();
        never.wait();
        0
    });
    assert!(joined.wait_timeout(common::WATCHDOG));
    let pid = child.pid();
    let alive = |pid| {
        lock.region()
            .participants()
            .iter()
            .any(|p| p.pid == pid && p.alive)
    };
    assert!(alive(pid));
    common::kill(child);
    assert!(!alive(pid), "a reaped, SIGKILLed child still looks alive");
}

/// A peer overwrites the whole lock region (lock word, participant table with
/// its beacon links) while we hold the lock: releasing, re-locking with a
/// timeout and dropping never crash, and no wait outlasts its timeout by much.
#[test]
fn scribbled_lock_region_cannot_crash_the_holder() {
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    for round in 0..50 {
        let name = unique_name("scribble");
        let _u = Unlink(name.clone());
        let lock = Lock::create(&name).unwrap();
        let g = lock.lock().unwrap();
        let len = lock.region().len();
        let mut bytes = vec![0u8; len];
        for b in &mut bytes {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        // Keep the header (checked only at open) but everything after it is noise
        // in odd rounds; in even rounds only the table and lock words.
        let from = if round % 2 == 0 { TABLE as usize } else { 64 };
        let mut f = shm_file(&name);
        f.seek(SeekFrom::Start(from as u64)).unwrap();
        f.write_all(&bytes[from..]).unwrap();
        drop(f);
        drop(g);
        let t = Instant::now();
        let r = lock.lock_timeout(Duration::from_millis(200));
        assert!(
            t.elapsed() < Duration::from_millis(200 + 500),
            "round {round}: lock_timeout(200 ms) took {:?}",
            t.elapsed()
        );
        match r {
            Ok(g) => drop(g),
            Err(LockError::OwnerDied(mut g)) => g.mark_consistent(),
            Err(_) => {}
        }
    }
}

/// A process a queue's participant table has no room for is refused, not let
/// in with no owner tag: a slot it claimed and then died holding could never
/// be recovered, and would wedge the queue for every survivor (seen: a
/// SIGKILLed tagless producer left `len` at capacity and every get timing
/// out). Once a slot is free again, the same kind of process gets in. Runs
/// in a forked child of its own: a fork by another test of this binary would
/// inherit the queue and take a slot of its two.
#[test]
fn a_queue_refuses_a_process_its_table_has_no_room_for() {
    let scenario = spawn(|| {
        use multiproc::{GetError, PutError, Queue};
        let Ok(q) = Queue::<u64>::anonymous_with(8, RegionOptions::new().participants(2)) else {
            return 10;
        };
        if q.put(1).is_err() {
            return 11; // this process: slot 1 of 2
        }
        let Ok(release) = Event::anonymous() else {
            return 12;
        };
        // Holds slot 2 until released (it joined when it inherited `q`).
        let holder = spawn(|| {
            let _q = &q;
            i32::from(!release.wait_timeout(Duration::from_secs(60)))
        });
        let refused = spawn(|| {
            let put = matches!(q.try_put(2), Err(PutError::NoParticipantSlot(2)));
            let put_blocking = matches!(
                q.put_timeout(2, Duration::from_millis(1)),
                Err(PutError::NoParticipantSlot(2))
            );
            let get = matches!(q.try_get(), Err(GetError::NoParticipantSlot));
            let get_blocking = matches!(
                q.get_timeout(Duration::from_millis(1)),
                Err(GetError::NoParticipantSlot)
            );
            let many = q.put_many(&[3, 4]) == 0 && q.get_many(&mut [0; 2]) == 0;
            i32::from(!(put && put_blocking && get && get_blocking && many))
        });
        if join(refused) != ExitStatus::Code(0) {
            return 13;
        }
        if q.len() != 1 {
            return 14; // the refused process changed the queue
        }
        release.set();
        if join(holder) != ExitStatus::Code(0) {
            return 15;
        }
        let admitted = spawn(|| match (q.try_put(5), q.try_get()) {
            (Ok(()), Ok(1)) => 0,
            _ => 1,
        });
        if join(admitted) != ExitStatus::Code(0) {
            return 16;
        }
        if q.try_get() != Ok(5) {
            return 17;
        }
        0
    });
    assert_eq!(join(scenario), ExitStatus::Code(0));
}
