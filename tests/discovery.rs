//! `Region::list` and `Region::inspect` on hostile files: truncated copies of
//! real regions, bytes scribbled over header, participant table and payload,
//! regions still initializing. Inspect may refuse (typed error) but never
//! panics, never reports a length above the capacity, and list skips what is
//! not a region.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use common::{Unlink, unique_name};
use multiproc::{Barrier, Error, Manager, Queue, Region, SharedDict};

fn path(name: &str) -> String {
    format!("/dev/shm{name}")
}

/// Checks what `inspect` said about a (possibly scribbled) region.
fn sane(name: &str) {
    match Region::inspect(name) {
        Ok(i) => {
            if let (Some(l), Some(c)) = (i.len, i.capacity) {
                assert!(l <= c, "{name}: len {l} > capacity {c}");
            }
            assert!(i.participants.len() <= i.participant_slots as usize);
            assert!(i.payload_size <= i.size);
        }
        Err(
            Error::NotARegion
            | Error::Truncated { .. }
            | Error::Corrupted(_)
            | Error::VersionMismatch { .. }
            | Error::LibcMismatch
            | Error::NotReady
            | Error::TypeMismatch { .. }
            | Error::LayoutMismatch { .. },
        ) => {}
        Err(e) => panic!("{name}: unexpected error {e:?}"),
    }
}

/// A handle kept alive for the length of a test.
type Keep = Box<dyn std::any::Any>;

/// Real regions of a few shapes, their bytes, and their names.
struct Originals {
    regions: Vec<(String, Vec<u8>)>,
    _guards: Vec<Unlink>,
    _keep: Vec<Keep>,
}

fn originals(tag: &str) -> Originals {
    let mut out = Vec::new();
    let mut guards = Vec::new();
    let mut keep: Vec<Keep> = Vec::new();
    let q = unique_name(&format!("{tag}-q"));
    guards.push(Unlink(q.clone()));
    let qh = Queue::<u64>::create(&q, 16).unwrap();
    qh.put(1).unwrap();
    keep.push(Box::new(qh));
    let d = unique_name(&format!("{tag}-d"));
    guards.push(Unlink(d.clone()));
    keep.push(Box::new(SharedDict::<u64, u64>::create(&d, 8).unwrap()));
    let m = unique_name(&format!("{tag}-m"));
    guards.push(Unlink(m.clone()));
    let mh = Manager::create(&m, 1 << 14).unwrap();
    keep.push(Box::new(mh.queue::<u8>("q", 4).unwrap()));
    keep.push(Box::new(mh));
    let b = unique_name(&format!("{tag}-b"));
    guards.push(Unlink(b.clone()));
    keep.push(Box::new(Barrier::create(&b, 2).unwrap()));
    for n in [q, d, m, b] {
        let bytes = std::fs::read(path(&n)).unwrap();
        out.push((n, bytes));
    }
    Originals {
        regions: out,
        _guards: guards,
        _keep: keep,
    }
}

#[test]
fn truncated_copies_are_refused_or_listed_safely() {
    let o = originals("trunc");
    let copy = unique_name("trunc-copy");
    let _u = Unlink(copy.clone());
    for (_, bytes) in &o.regions {
        let mut lens: Vec<usize> = vec![0, 1, 8, 100, 255, 256, 257, 300, 4096, 4097];
        lens.extend((0..bytes.len()).step_by(1531));
        lens.push(bytes.len() - 1);
        for len in lens.into_iter().filter(|&l| l < bytes.len()) {
            std::fs::write(path(&copy), &bytes[..len]).unwrap();
            match Region::inspect(&copy) {
                // The header states the full size: every shorter copy is refused.
                Ok(i) => panic!(
                    "a {len}-byte copy of a {}-byte region inspected: {i:?}",
                    bytes.len()
                ),
                Err(Error::NotARegion | Error::Truncated { .. } | Error::Corrupted(_)) => {}
                Err(e) => panic!("len {len}: {e:?}"),
            }
            // Listed only if it carries the magic (then `inspect` explains).
            let listed = Region::list().unwrap().contains(&copy);
            assert_eq!(listed, len >= 256, "len {len}");
        }
    }
}

#[test]
fn scribbled_regions_never_crash_inspect() {
    let o = originals("scribble");
    let copy = unique_name("scribble-copy");
    let _u = Unlink(copy.clone());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (name, bytes) in &o.regions {
        // The untouched copy reads like the original.
        std::fs::write(path(&copy), bytes).unwrap();
        let (a, b) = (
            Region::inspect(name).unwrap(),
            Region::inspect(&copy).unwrap(),
        );
        assert_eq!((a.kind, a.capacity, a.len), (b.kind, b.capacity, b.len));
        for round in 0..300 {
            let mut b = bytes.clone();
            // Mostly the first pages (header, table, object header), some anywhere.
            let span = if round % 4 == 0 {
                b.len()
            } else {
                b.len().min(20_000)
            };
            for _ in 0..1 + (next() % 16) {
                let at = (next() as usize) % span;
                b[at] = next() as u8;
            }
            if round % 10 == 0 {
                // A whole word of garbage in the payload's first bytes.
                let at = 0x4000.min(b.len() - 8) + (next() as usize % 64) * 8;
                let at = at.min(b.len() - 8);
                b[at..at + 8].copy_from_slice(&next().to_ne_bytes());
            }
            std::fs::write(path(&copy), &b).unwrap();
            sane(&copy);
        }
    }
}

#[test]
fn a_region_being_initialized_is_not_ready() {
    let o = originals("init");
    let copy = unique_name("init-copy");
    let _u = Unlink(copy.clone());
    let mut b = o.regions[0].1.clone();
    b[44..48].copy_from_slice(&1u32.to_ne_bytes()); // INITIALIZING
    std::fs::write(path(&copy), &b).unwrap();
    assert!(matches!(Region::inspect(&copy), Err(Error::NotReady)));
    assert!(Region::list().unwrap().contains(&copy));
    assert!(Region::is_region(&copy).unwrap());
}

/// Any capacity `>= 1` is a queue's (not only powers of two): `inspect` reads
/// its capacity and length, across lap boundaries too (positions of a ring
/// whose capacity is not a power of two jump at the end of each lap).
#[test]
fn inspect_reads_queues_of_every_capacity() {
    for cap in [1usize, 2, 3, 16, 30, 100, 1000, 1024] {
        let name = unique_name(&format!("cap{cap}"));
        let _g = Unlink(name.clone());
        let q = Queue::<u64>::create(&name, cap).unwrap();
        let check = |want: u64| {
            let i = Region::inspect(&name).unwrap();
            assert_eq!(i.capacity, Some(cap as u64), "capacity {cap}");
            assert_eq!(i.len, Some(want), "capacity {cap}");
        };
        check(0);
        // Two and a half laps of traffic, leaving items queued across a lap end.
        for round in 0..(cap * 5 / 2 + 1) {
            q.try_put(round as u64).unwrap();
            if round % 2 == 1 || q.is_full() {
                q.try_get().unwrap();
            }
        }
        check(q.len() as u64);
        while q.try_put(7).is_ok() {}
        check(cap as u64);
    }
}
