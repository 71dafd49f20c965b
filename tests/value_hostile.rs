//! A peer writing bytes into a `Value`/`Array` region: whatever it writes, this
//! process never crashes, never reads or writes outside the array and never
//! waits past a read's timeout. The peer maps the region's file in /dev/shm a
//! second time (the same pages, at another address) and writes words there, as
//! another process with write access would; `__private::array_layout` says
//! where the words are.
//!
//! Each test is a regression test for one hostile case fixed in `src/value.rs`:
//! a sequence word left odd while a live process holds the lock (readers used
//! to wait for the lock without bound), a sequence word a peer keeps bumping,
//! header geometry rewritten after open, and journal words (element index,
//! bitmap) scribbled before a repair.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report; the peer uses std atomics on its own mapping"
)]

mod common;

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::{Scratch, Unlink, join, spawn, unique_name};
use multiproc::__private::{array_layout, value_layout};
use multiproc::process::ExitStatus;
use multiproc::{Array, Error, Event, Value, ValueError};

/// The peer: its own `MAP_SHARED` mapping of the region's file.
struct Peer {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is shared memory accessed only through atomics.
unsafe impl Send for Peer {}
// SAFETY: as above.
unsafe impl Sync for Peer {}

impl Peer {
    fn open(name: &str) -> Peer {
        use std::os::fd::AsRawFd;
        let path = format!("/dev/shm/{}", name.trim_start_matches('/'));
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .expect("region file");
        let len = file.metadata().expect("metadata").len() as usize;
        // SAFETY: a fresh shared mapping of the whole file, no address hint;
        // checked below. The fd may close afterwards.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        Peer {
            ptr: ptr.cast(),
            len,
        }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len, "offset {offset}");
        // SAFETY: in bounds and 8-aligned (checked; the mapping is page
        // aligned); the region's words are only ever accessed atomically.
        unsafe { &*self.ptr.add(offset).cast::<AtomicU64>() }
    }

    fn write(&self, offset: usize, v: u64) {
        self.word(offset).store(v, Ordering::SeqCst);
    }

    fn read(&self, offset: usize) -> u64 {
        self.word(offset).load(Ordering::SeqCst)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Runs `f` on another thread and fails the test if it does not return within
/// the watchdog period (a hang is the bug these tests look for).
fn within_watchdog<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(common::WATCHDOG)
        .unwrap_or_else(|_| panic!("watchdog: {what} did not return"))
}

/// Waits (yielding) for a flag a child sets in scratch memory, with a watchdog.
fn wait_flag(mem: &Scratch, what: &str) {
    let start = std::time::Instant::now();
    while mem.atomic(0).load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < common::WATCHDOG, "watchdog: {what}");
        std::thread::yield_now();
    }
}

/// A peer leaves the value's sequence word odd (as if mid-write) while a live
/// process holds the writer lock and never finishes. Readers used to block on
/// the lock forever; now they fail with `Stalled` after their timeout, and once
/// the holder is gone (killed: its lock is repaired) they read the value again.
#[test]
fn odd_seq_while_a_live_peer_holds_the_lock_is_a_stalled_read() {
    let name = unique_name("val-stall");
    let _u = Unlink(name.clone());
    let v = Value::<[u64; 2]>::create(&name, [4, 5]).unwrap();
    let layout = value_layout(&v);
    let peer = Peer::open(&name);
    let mem = Scratch::new(1);
    let never = Event::anonymous().unwrap();
    let holder = spawn(|| {
        let _ = v.with_lock(|_| {
            mem.atomic(0).store(1, Ordering::SeqCst);
            never.wait(); // holds the lock until killed
        });
        0
    });
    wait_flag(&mem, "holder inside with_lock");
    let seq = peer.read(layout.seq(0));
    peer.write(layout.seq(0), seq | 1);

    let v2 = v.clone();
    let (short, default) = within_watchdog("stalled reads", move || {
        (v2.load_timeout(Duration::from_millis(50)), v2.load())
    });
    assert_eq!(short, Err(ValueError::Stalled { index: 0 }));
    assert_eq!(default, Err(ValueError::Stalled { index: 0 }));
    // Not waiting at all is allowed too.
    assert_eq!(
        v.load_timeout(Duration::ZERO),
        Err(ValueError::Stalled { index: 0 })
    );

    common::kill(holder);
    // The dead holder's lock is taken, repaired (seq made even) and released.
    let v2 = v.clone();
    assert_eq!(
        within_watchdog("read after kill", move || v2.load()),
        Ok([4, 5])
    );
    assert_eq!(v.recoveries(), 1);
    assert_eq!(peer.read(layout.seq(0)) & 1, 0);
    assert_eq!(v.store([6, 7]), Ok([4, 5]));
    assert_eq!(v.load(), Ok([6, 7]));
}

/// With the lock free, an odd sequence word left by a peer is settled by the
/// first reader (through the lock, without a repair) and the value is intact.
#[test]
fn odd_seq_with_the_lock_free_is_settled_by_the_reader() {
    let name = unique_name("arr-odd");
    let _u = Unlink(name.clone());
    let a = Array::<[u32; 3]>::create(&name, 3).unwrap();
    a.set(1, [1, 2, 3]).unwrap();
    let layout = array_layout(&a);
    let peer = Peer::open(&name);
    for i in 0..3 {
        peer.write(layout.seq(i), peer.read(layout.seq(i)) | 1);
    }
    let a2 = a.clone();
    let got = within_watchdog("to_vec", move || a2.to_vec());
    assert_eq!(got, Ok(vec![[0; 3], [1, 2, 3], [0; 3]]));
    assert_eq!(a.recoveries(), 0);
    for i in 0..3 {
        assert_eq!(peer.read(layout.seq(i)) & 1, 0, "seq {i} still odd");
    }
}

/// A peer bumps the sequence word nonstop (odd, even, odd, ...) without
/// touching the data. Every read returns (the value, or `Corrupted`/`Stalled`
/// once retrying lock-free and under the lock both failed); none spins forever.
#[test]
fn seq_bumped_nonstop_by_a_peer_never_traps_a_reader() {
    let name = unique_name("arr-bump");
    let _u = Unlink(name.clone());
    let a = Array::<[u64; 2]>::create(&name, 2).unwrap();
    a.set(0, [8, 9]).unwrap();
    let layout = array_layout(&a);
    let stop = Arc::new(AtomicBool::new(false));
    let bumper = {
        let stop = Arc::clone(&stop);
        let name = name.clone();
        std::thread::spawn(move || {
            let peer = Peer::open(&name);
            let seq = peer.word(layout.seq(0));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
            n
        })
    };
    let a2 = a.clone();
    let (ok, failed) = within_watchdog("reads under a bumping peer", move || {
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..300 {
            match a2.get_timeout(0, Duration::from_millis(20)) {
                Ok(v) => {
                    assert_eq!(v, [8, 9], "the data was never changed");
                    ok += 1;
                }
                Err(ValueError::Corrupted { index: 0 } | ValueError::Stalled { index: 0 }) => {
                    failed += 1
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        (ok, failed)
    });
    stop.store(true, Ordering::Relaxed);
    let bumps = bumper.join().unwrap();
    eprintln!("{ok} reads returned the value, {failed} gave up; the peer bumped seq {bumps} times");
    assert_eq!(ok + failed, 300);
    // Untouched element, and the array stays usable once the peer stops.
    assert_eq!(a.get(1), Ok([0, 0]));
    assert_eq!(a.get(0), Ok([8, 9]));
    assert_eq!(a.set(0, [1, 1]), Ok([8, 9]));
}

/// A peer rewrites the header's length and element size after this process
/// opened the array: the handles keep the geometry validated at open (no
/// access beyond the real array), and opening again is refused.
#[test]
fn geometry_rewritten_after_open_is_ignored_and_refused_on_reopen() {
    let name = unique_name("arr-geo");
    let _u = Unlink(name.clone());
    let a = Array::<u64>::create(&name, 4).unwrap();
    let b = Array::<u64>::open(&name).unwrap();
    let layout = array_layout(&a);
    let peer = Peer::open(&name);
    for (len, elem) in [
        (1u64 << 40, 8u64),
        (u64::MAX, 8),
        (1000, 8),
        (4, 4096),
        (0, 8),
    ] {
        peer.write(layout.len, len);
        peer.write(layout.elem_size, elem);
        for h in [&a, &b] {
            assert_eq!(h.len(), 4);
            assert_eq!(h.get(4), Err(ValueError::OutOfBounds { index: 4, len: 4 }));
            assert_eq!(h.fetch_add(3, 1).map(|_| ()), Ok(()));
            assert_eq!(h.with_lock(|s| s.len()), Ok(4));
            assert_eq!(h.to_vec().map(|v| v.len()), Ok(4));
            assert_eq!(
                h.clone().set(4, 1),
                Err(ValueError::OutOfBounds { index: 4, len: 4 })
            );
        }
        match Array::<u64>::open(&name) {
            Err(Error::Corrupted(_)) => {}
            other => panic!("len {len} elem {elem}: reopen gave {other:?}"),
        }
    }
    peer.write(layout.len, 4);
    peer.write(layout.elem_size, 8);
    let c = Array::<u64>::open(&name).unwrap();
    assert_eq!(c.to_vec(), Ok(vec![0, 0, 0, 10]));
    // A Value opened on a header claiming 2 elements is refused too.
    peer.write(layout.len, 2);
    assert!(Value::<u64>::open(&name).is_err());
}

/// Scribbles the journal (word, entries, bitmap) then lets a child die holding
/// the lock, so the next lock holder repairs from the peer's bytes. The repair
/// must stay inside the array: journal indices at or past the length and
/// bitmap bits past the length are ignored; what it does re-apply is whatever
/// the journal entries say (a peer with write access can write wrong values).
#[test]
fn scribbled_journal_is_bounds_checked_by_the_repair() {
    const LEN: usize = 3;
    let name = unique_name("arr-jrnl");
    let _u = Unlink(name.clone());
    let a = Array::<[u64; 2]>::create(&name, LEN).unwrap();
    let layout = array_layout(&a);
    let peer = Peer::open(&name);
    let start = [[1, 1], [2, 2], [3, 3]];
    let from_journal = |i: usize| [0xa0 + i as u64, 0xb0 + i as u64];
    // (journal word, bitmap word, expected elements after the repair)
    let cases: Vec<(u64, u64, Vec<[u64; 2]>)> = vec![
        // Armed for "all", every bit set (61 of them past the length).
        (u64::MAX, u64::MAX, (0..LEN).map(from_journal).collect()),
        // Armed for "all", only a bit past the length.
        (u64::MAX, 1 << 40, start.to_vec()),
        // One element, in bounds.
        (2, 0, vec![start[0], from_journal(1), start[2]]),
        // One element, at and far past the length.
        (LEN as u64 + 1, u64::MAX, start.to_vec()),
        (1 << 62, u64::MAX, start.to_vec()),
        (u64::MAX - 1, u64::MAX, start.to_vec()),
    ];
    for (n, (journal, bitmap, want)) in cases.into_iter().enumerate() {
        a.with_lock(|s| s.copy_from_slice(&start)).unwrap();
        for i in 0..LEN {
            let [x, y] = from_journal(i);
            peer.write(layout.journal_entry(i), x);
            peer.write(layout.journal_entry(i) + 8, y);
        }
        peer.write(layout.bitmap(0), bitmap);
        peer.write(layout.journal, journal);
        let before = a.recoveries();
        let child = spawn(|| {
            // Dies holding the lock, before its commit touches the journal.
            let _ = a.with_lock(|_| unsafe_exit());
            1
        });
        assert_eq!(join(child), ExitStatus::Code(0));
        let a2 = a.clone();
        let got = within_watchdog("repair", move || a2.with_lock(|s| s.to_vec()));
        assert_eq!(got, Ok(want.clone()), "case {n}");
        assert_eq!(a.recoveries(), before + 1, "case {n}");
        assert_eq!(a.to_vec(), Ok(want), "case {n}");
        assert_eq!(peer.read(layout.journal), 0, "case {n}: journal left armed");
    }
}

/// `_exit(0)` from inside a forked child: the process dies at once, holding
/// whatever it holds, like a SIGKILL (but without a race with the parent).
fn unsafe_exit() -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(0) }
}
