//! Fault containment, one regression test per finding of issue 9 that this
//! suite owns: numbers a peer writes into a region (queue capacity and tail,
//! manager directory fields, dict sequence words with the writer lock held)
//! never crash or hang this process, `open` refuses files it should not trust
//! (another owner, group/other-writable, a huge sparse file is never mapped
//! whole), and anonymous regions cannot be shrunk (the memfd seal itself is
//! tested in `src/sys/shm.rs`; here through a live queue's mapping).
//!
//! The "peer" writes through the region's file in `/dev/shm` (`pwrite`), which
//! changes the very pages every process has mapped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step is a failed test"
)]

mod common;

use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Unlink, unique_name};
use multiproc::__private::field_offsets;
use multiproc::{BytesQueue, DictError, Error, Manager, Queue, RegionOptions, SharedDict, process};

/// Generous bound for operations that must simply return (not hang).
const RETURNS_WITHIN: Duration = Duration::from_secs(10);

fn shm_path(name: &str) -> String {
    format!("/dev/shm{name}")
}

/// Offset of the region's payload (the object), from its header.
fn payload_offset(name: &str) -> u64 {
    let f = std::fs::File::open(shm_path(name)).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, 48).unwrap();
    u64::from_ne_bytes(b)
}

fn field(kind: &str, name: &str) -> u64 {
    field_offsets(kind)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, o)| o as u64)
        .unwrap_or_else(|| panic!("no field {name} in {kind}"))
}

/// A peer's write: `bytes` at `off` from the object's start.
fn poke(name: &str, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(name))
        .unwrap();
    f.write_all_at(bytes, payload_offset(name) + off).unwrap();
}

/// Runs `f` on a thread and fails the test if it does not return in time.
fn returns<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(RETURNS_WITHIN)
        .unwrap_or_else(|_| panic!("{what} did not return within {RETURNS_WITHIN:?}"))
}

#[test]
fn queue_capacity_word_raised_to_2_40() {
    let name = unique_name("cap40");
    let _u = Unlink(name.clone());
    let q = Queue::<u64>::create(&name, 16).unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    poke(
        &name,
        field("Queue", "capacity"),
        &(1u64 << 40).to_ne_bytes(),
    );
    // The handle keeps the capacity it validated: recover() scans 16 slots.
    let q2 = q.clone();
    assert_eq!(returns("recover", move || q2.recover()), 0);
    assert_eq!(q.capacity(), 16);
    // A clone made after the scribble indexes with the same 16 slots.
    let c = q.clone();
    assert_eq!(c.capacity(), 16);
    c.try_put(3).unwrap();
    assert_eq!(q.len(), 4);
    for i in 0..4 {
        assert_eq!(c.try_get(), Ok(i));
    }
    // A new opener validates the header against the mapping and refuses it.
    assert!(matches!(
        Queue::<u64>::open(&name),
        Err(Error::Corrupted(_))
    ));
}

#[test]
fn queue_tail_word_raised_to_2_40() {
    let name = unique_name("tail40");
    let _u = Unlink(name.clone());
    let q = Queue::<u64>::create(&name, 16).unwrap();
    q.put(1).unwrap();
    poke(&name, field("Queue", "tail"), &(1u64 << 40).to_ne_bytes());
    assert_eq!(q.capacity(), 16);
    assert!(q.len() <= q.capacity(), "len {}", q.len());
    assert!(q.stats().len <= 16);
    // Operations return within their bound (the put may find the scribbled
    // tail's slot "behind" and report Full; the item is then handed back).
    let q2 = q.clone();
    let (put, took) = returns("put_timeout", move || {
        let t = Instant::now();
        let r = q2.put_timeout(2, Duration::from_millis(50));
        (r, t.elapsed())
    });
    assert!(took < Duration::from_millis(150), "put took {took:?}");
    if let Err(e) = put {
        assert_eq!(e.into_inner(), 2);
    }
    // The item put before the scribble is still there: head is untouched.
    assert_eq!(q.try_get(), Ok(1));
    let q3 = q.clone();
    let took = returns("get_timeout", move || {
        let t = Instant::now();
        let _ = q3.get_timeout(Duration::from_millis(50));
        t.elapsed()
    });
    assert!(took < Duration::from_millis(150), "get took {took:?}");
}

#[test]
fn queue_hints_near_u64_max_do_not_overflow() {
    let name = unique_name("wrap");
    let _u = Unlink(name.clone());
    let q = BytesQueue::create(&name, 8, 16).unwrap();
    poke(&name, field("Queue", "tail"), &(u64::MAX).to_ne_bytes());
    poke(&name, field("Queue", "head"), &(u64::MAX - 1).to_ne_bytes());
    let q2 = q.clone();
    returns("ops", move || {
        for _ in 0..20 {
            let _ = q2.try_put(b"x");
            let _ = q2.try_get();
        }
        q2.recover();
    });
    assert!(q.len() <= q.capacity());
}

#[test]
fn manager_total_and_next_raised() {
    let name = unique_name("mgr-total");
    let _u = Unlink(name.clone());
    let m = Manager::create(&name, 1 << 16).unwrap();
    m.counter("a", 1).unwrap();
    let available = m.available();
    poke(
        &name,
        field("Manager", "total"),
        &(1u64 << 40).to_ne_bytes(),
    );
    poke(&name, field("Manager", "next"), &(1u64 << 39).to_ne_bytes());
    // The handle keeps the total it validated: "b" is refused as out of space
    // (next now lies past it), nothing is written outside the mapping.
    let m2 = m.clone();
    let r = returns("counter", move || m2.counter("b", 0).map(|c| c.load()));
    assert!(matches!(r, Err(Error::OutOfSpace { .. })), "{r:?}");
    assert!(m.available() <= available);
    // A next lowered into the directory is clamped to the arena: a new object
    // never overlaps the entry table.
    poke(&name, field("Manager", "next"), &0u64.to_ne_bytes());
    let c = m.counter("c", 5).unwrap();
    assert_eq!(c.load(), 5);
    assert_eq!(m.counter("a", 0).unwrap().load(), 1);
    assert_eq!(m.names(), ["a", "c"]);
    // A new opener refuses the raised total.
    assert!(matches!(Manager::open(&name), Err(Error::Corrupted(_))));
}

#[test]
fn manager_max_entries_and_count_raised() {
    let name = unique_name("mgr-count");
    let _u = Unlink(name.clone());
    let opts = multiproc::ManagerOptions::new().entries(4);
    let m = Manager::create_with(&name, 1 << 16, opts).unwrap();
    m.counter("a", 1).unwrap();
    poke(
        &name,
        field("Manager", "max_entries"),
        &(1u64 << 40).to_ne_bytes(),
    );
    poke(
        &name,
        field("Manager", "count"),
        &(1u64 << 40).to_ne_bytes(),
    );
    let m2 = m.clone();
    let names = returns("names", move || m2.names());
    // Bounded by the handle's 4 entries, whatever the shared count says.
    assert_eq!(names.len(), 4);
    assert_eq!(names[0], "a");
    assert!(m.objects().len() <= 4);
    let r = m.counter("zz", 0);
    assert!(
        matches!(r, Err(Error::DirectoryFull { entries: 4 })),
        "{r:?}"
    );
}

#[test]
fn dict_odd_seqs_with_the_writer_lock_held() {
    let name = unique_name("dict-odd");
    let _u = Unlink(name.clone());
    let d = SharedDict::<u64, u64>::create(&name, 8).unwrap();
    for k in 1..=4 {
        d.insert(k, k * 10).unwrap();
    }
    let locked = BytesQueue::anonymous(2, 8).unwrap();
    let release = BytesQueue::anonymous(2, 8).unwrap();
    // The peer: takes the writer lock (inside `update`) and keeps it.
    let child = {
        let (d, locked, release) = (d.clone(), locked.clone(), release.clone());
        common::spawn(move || {
            let r = d.update(&1, |_| {
                let _ = locked.put(b"locked");
                let _ = release.get_timeout(Duration::from_secs(30));
            });
            i32::from(r.is_err())
        })
    };
    assert_eq!(
        locked.get_timeout(common::WATCHDOG).unwrap(),
        b"locked",
        "peer never took the lock"
    );
    // Every slot's seq word odd: each looks mid-write to a lock-free reader.
    let slots = d.stats().slots;
    let words = field("SharedDict", "words");
    let stride = 4; // seq, tag, one key word, one value word
    for i in 0..slots as u64 {
        poke(&name, words + i * stride * 8, &1u64.to_ne_bytes());
    }
    let bound = multiproc::dict::READ_PATIENCE + Duration::from_millis(100);
    let d2 = d.clone();
    let (get, took) = returns("get", move || {
        let t = Instant::now();
        (d2.get(&2), t.elapsed())
    });
    assert_eq!(get, Err(DictError::Timeout));
    assert!(took < bound, "get took {took:?}");
    let d3 = d.clone();
    let (iter, took) = returns("iter", move || {
        let t = Instant::now();
        (d3.iter().map(|i| i.count()), t.elapsed())
    });
    assert_eq!(iter, Err(DictError::Timeout));
    assert!(took < bound, "iter took {took:?}");
    // The peer dies holding the lock: the next reader repairs and goes on.
    common::kill(child);
    assert_eq!(d.get(&2), Ok(Some(20)));
    let mut all: Vec<_> = d.iter().unwrap().collect();
    all.sort();
    assert_eq!(all, [(1, 10), (2, 20), (3, 30), (4, 40)]);
    assert!(d.stats().recoveries >= 1);
}

#[test]
fn open_refuses_group_or_other_writable_files_unless_asked() {
    let name = unique_name("mode666");
    let _u = Unlink(name.clone());
    let opts = RegionOptions::new().mode(0o666);
    let q = Queue::<u64>::create_with(&name, 4, opts).unwrap();
    q.put(9).unwrap();
    match Queue::<u64>::open(&name) {
        Err(Error::InsecureMode { mode, .. }) => assert_eq!(mode, 0o666),
        other => panic!("expected InsecureMode, got {other:?}"),
    }
    let trusting = RegionOptions::new().allow_shared_write(true);
    let q2 = Queue::<u64>::open_with(&name, trusting).unwrap();
    assert_eq!(q2.try_get(), Ok(9));
    // Group-readable only is fine.
    let name2 = unique_name("mode640");
    let _u2 = Unlink(name2.clone());
    let _d = SharedDict::<u64, u64>::create_with(
        &name2,
        4,
        multiproc::DictOptions::new().region(RegionOptions::new().mode(0o640)),
    )
    .unwrap();
    SharedDict::<u64, u64>::open(&name2).unwrap();
}

#[test]
fn open_refuses_a_file_owned_by_another_user_unless_asked() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // Only root can give a file away; CI runs as root.
        eprintln!("skipped: needs root to chown the region file");
        return;
    }
    let name = unique_name("foreign");
    let _u = Unlink(name.clone());
    let m = Manager::create(&name, 1 << 16).unwrap();
    m.counter("x", 3).unwrap();
    std::os::unix::fs::chown(shm_path(&name), Some(65534), Some(65534)).unwrap();
    match Manager::open(&name) {
        Err(Error::ForeignOwner { owner, euid, .. }) => {
            assert_eq!(owner, 65534);
            assert_eq!(euid, 0);
        }
        other => panic!("expected ForeignOwner, got {other:?}"),
    }
    let m2 = Manager::open_with(&name, RegionOptions::new().allow_foreign_owner(true)).unwrap();
    assert_eq!(m2.counter("x", 0).unwrap().load(), 3);
}

#[test]
fn a_huge_sparse_file_at_the_name_is_not_mapped_whole() {
    let name = unique_name("sparse");
    let _u = Unlink(name.clone());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(shm_path(&name))
        .unwrap();
    std::fs::set_permissions(
        shm_path(&name),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    f.set_len(1 << 40).unwrap();
    // A header that is not ours, with the init word "ready" so open does not
    // wait for a creator.
    f.write_all_at(b"NOTMINE!", 0).unwrap();
    f.write_all_at(&2u32.to_ne_bytes(), 44).unwrap();
    // In a child whose address space is capped at 64 GiB, mapping the file
    // whole fails with ENOMEM (an `Io` error); mapping the header alone first
    // lets `open` see the bad magic.
    let child = common::spawn(move || {
        let cap = libc::rlimit {
            rlim_cur: 64 << 30,
            rlim_max: 64 << 30,
        };
        // SAFETY: setrlimit with a valid struct; async-signal-safe.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &cap) } != 0 {
            return 3;
        }
        match Queue::<u64>::open(&name) {
            Err(Error::NotARegion) => 0,
            Err(Error::Io(_)) => 1,
            _ => 2,
        }
    });
    assert_eq!(common::join(child), process::ExitStatus::Code(0));
}
