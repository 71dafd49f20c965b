//! Bad input gets a typed error and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use common::{Unlink, unique_name};
use multiproc::{
    Barrier, BoundedSemaphore, Error, Event, Lock, RLock, RegionOptions, ReleaseError, Semaphore,
};

#[test]
fn open_of_a_missing_name_is_not_found() {
    let name = unique_name("missing");
    assert!(matches!(Lock::open(&name), Err(Error::NotFound(n)) if n == name));
}

#[test]
fn create_of_an_existing_name_fails_and_leaves_it_alone() {
    let name = unique_name("dup");
    let _u = Unlink(name.clone());
    let first = Event::create(&name).unwrap();
    first.set();
    assert!(matches!(Event::create(&name), Err(Error::AlreadyExists(_))));
    assert!(matches!(Lock::create(&name), Err(Error::AlreadyExists(_))));
    // The original object is untouched and still opens.
    assert!(Event::open(&name).unwrap().is_set());
}

#[test]
fn open_as_another_type_is_a_type_mismatch() {
    let name = unique_name("types");
    let _u = Unlink(name.clone());
    let _lock = Lock::create(&name).unwrap();
    match Event::open(&name) {
        Err(Error::TypeMismatch { expected, found }) => {
            assert_eq!(expected, "Event");
            assert_eq!(found, "Lock");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        RLock::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(Lock::open(&name).is_ok());

    let name = unique_name("sem");
    let _u = Unlink(name.clone());
    let _s = BoundedSemaphore::create(&name, 2).unwrap();
    assert!(matches!(
        Semaphore::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(BoundedSemaphore::open(&name).unwrap().value(), 2);
}

/// Edits the bytes of a named region behind the crate's back, through /dev/shm.
fn scribble(name: &str, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn damaged_headers_are_typed_errors() {
    type Case<'a> = (u64, &'a [u8], fn(&Error) -> bool);
    let cases: [Case<'_>; 5] = [
        (0, b"NOTMAGIC", |e| matches!(e, Error::NotARegion)),
        (8, &99u32.to_ne_bytes(), |e| {
            matches!(e, Error::VersionMismatch { found: 99, .. })
        }),
        (12, b"MUSL", |e| matches!(e, Error::LibcMismatch)),
        (24, &0xdead_beefu64.to_ne_bytes(), |e| {
            matches!(e, Error::LayoutMismatch { .. })
        }),
        (48, &u64::MAX.to_ne_bytes(), |e| {
            matches!(e, Error::Corrupted(_))
        }),
    ];
    for (offset, bytes, is) in cases {
        let name = unique_name("hdr");
        let _u = Unlink(name.clone());
        let _lock = Lock::create(&name).unwrap();
        scribble(&name, offset, bytes);
        let e = Lock::open(&name).unwrap_err();
        assert!(is(&e), "offset {offset}: {e:?}");
    }
}

#[test]
fn truncated_and_foreign_files_are_typed_errors() {
    let name = unique_name("trunc");
    let _u = Unlink(name.clone());
    std::fs::write(format!("/dev/shm{name}"), [0u8; 100]).unwrap();
    assert!(matches!(
        Lock::open(&name),
        Err(Error::Truncated { len: 100, .. })
    ));
    std::fs::write(format!("/dev/shm{name}"), vec![7u8; 8192]).unwrap();
    assert!(matches!(Lock::open(&name), Err(Error::NotARegion)));
    // A region whose creator never finished: zeros, init state UNINIT.
    std::fs::write(format!("/dev/shm{name}"), vec![0u8; 8192]).unwrap();
    assert!(matches!(Lock::open(&name), Err(Error::NotReady)));
}

#[test]
fn invalid_names_are_rejected_before_any_syscall() {
    for bad in ["", "noslash", "/", "/a/b", "/..", "/x..y", "/tab\tname"] {
        assert!(
            matches!(Lock::create(bad), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(Event::open(bad), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(
                multiproc::Region::unlink(bad),
                Err(Error::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    let long = format!("/{}", "n".repeat(300));
    assert!(matches!(
        Lock::create(&long),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn bounded_semaphore_refuses_release_past_its_bound() {
    let sem = BoundedSemaphore::anonymous(2).unwrap();
    assert_eq!(sem.release(), Err(ReleaseError::AboveBound));
    assert_eq!(sem.value(), 2);
    assert!(sem.try_acquire());
    sem.release().unwrap();
    assert_eq!(sem.release(), Err(ReleaseError::AboveBound));
    assert_eq!(sem.value(), 2);
    // An unbounded one only refuses at its hard maximum.
    let big = Semaphore::anonymous((1 << 31) - 1).unwrap();
    assert_eq!(big.release(), Err(ReleaseError::Overflow));
    assert!(matches!(
        Semaphore::anonymous(1 << 31),
        Err(Error::InvalidParameter(_))
    ));
}

#[test]
fn rlock_release_by_a_non_owner_is_refused() {
    let lock = RLock::anonymous().unwrap();
    assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    lock.acquire().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(lock.release(), Err(ReleaseError::NotOwner)));
    });
    // Another process is not the owner either, even though it inherited the memory.
    let child = common::spawn(|| i32::from(lock.release() != Err(ReleaseError::NotOwner)));
    assert_eq!(common::join(child), multiproc::process::ExitStatus::Code(0));
    assert_eq!(lock.depth(), 1, "still held once by us");
    lock.release().unwrap();
    assert_eq!(lock.depth(), 0);
    assert!(lock.try_lock().is_ok());
}

#[test]
fn zero_party_barrier_and_bad_options_are_invalid_parameters() {
    assert!(matches!(
        Barrier::anonymous(0),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        Barrier::anonymous(70_000),
        Err(Error::InvalidParameter(_))
    ));
    let name = unique_name("opts");
    let _u = Unlink(name.clone());
    assert!(matches!(
        Lock::create_with(&name, RegionOptions::new().participants(0)),
        Err(Error::InvalidParameter(_))
    ));
    // The failed create left no name behind.
    assert!(matches!(Lock::open(&name), Err(Error::NotFound(_))));
}

#[test]
fn named_regions_get_the_requested_mode() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique_name("mode");
    let _u = Unlink(name.clone());
    let _l = Lock::create(&name).unwrap();
    let mode = std::fs::metadata(format!("/dev/shm{name}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let name2 = unique_name("mode2");
    let _u2 = Unlink(name2.clone());
    let _l2 = Lock::create_with(&name2, RegionOptions::new().mode(0o640)).unwrap();
    let mode = std::fs::metadata(format!("/dev/shm{name2}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn queue_bad_parameters_and_mismatched_opens_are_typed_errors() {
    use multiproc::{BytesQueue, JoinableQueue, PutError, Queue, TaskDoneError};
    // Any capacity from 1 to 2^28 is valid (`queue_proptest` runs 1, 3, 30
    // and 1000); 0 and absurd sizes are refused.
    for cap in [0usize, (1 << 28) + 1, 1 << 40] {
        assert!(
            matches!(
                Queue::<u64>::anonymous(cap),
                Err(Error::InvalidParameter(_))
            ),
            "{cap}"
        );
    }
    assert!(matches!(
        BytesQueue::anonymous(4, 0),
        Err(Error::InvalidParameter(_))
    ));

    let name = unique_name("q");
    let _u = Unlink(name.clone());
    let q = Queue::<u64>::create(&name, 4).unwrap();
    q.put(7).unwrap();
    match Queue::<u32>::open(&name) {
        Err(Error::ElementMismatch {
            role,
            expected,
            found,
        }) => {
            assert_eq!(role, "element");
            assert_eq!((expected.size, found.size), (4, 8));
        }
        other => panic!("{other:?}"),
    }
    // Same size and alignment, no type id: the same identity (type names are
    // not part of it), so it opens and sees the same bytes.
    assert_eq!(Queue::<i64>::open(&name).unwrap().len(), 1);
    // The same layout under an explicit type id is another identity.
    assert!(matches!(
        Queue::<multiproc::Tagged<u64, 1>>::open(&name),
        Err(Error::ElementMismatch { .. })
    ));
    assert!(matches!(
        BytesQueue::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        JoinableQueue::<u64>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(Lock::open(&name), Err(Error::TypeMismatch { .. })));
    assert!(matches!(
        Queue::<u64>::create(&name, 8),
        Err(Error::AlreadyExists(_))
    ));
    // Nothing changed: the right type still opens and finds the item.
    assert_eq!(Queue::<u64>::open(&name).unwrap().try_get(), Ok(7));

    let b = BytesQueue::anonymous(2, 8).unwrap();
    let big = [1u8; 9];
    assert_eq!(b.put(&big), Err(PutError::TooLarge(&big[..])));
    assert_eq!(b.try_put(&big), Err(PutError::TooLarge(&big[..])));
    assert!(b.is_empty(), "nothing written");
    b.put(&big[..8]).unwrap();
    let mut short = [0u8; 4];
    assert_eq!(
        b.get_into(&mut short),
        Err(multiproc::GetError::BufferTooSmall { needed: 8 })
    );
    assert_eq!(b.len(), 1, "nothing taken");

    let j = JoinableQueue::<u8>::anonymous(2).unwrap();
    assert_eq!(j.task_done(), Err(TaskDoneError::TooManyCalls));
    j.put(1).unwrap();
    j.get().unwrap();
    j.task_done().unwrap();
    assert_eq!(j.task_done(), Err(TaskDoneError::TooManyCalls));
    assert_eq!(j.unfinished(), 0);
}

/// A region larger than the machine's memory is refused up front, where a
/// sparse one would have been created and then taken the machine's memory
/// down as it was initialized or used.
#[test]
fn regions_larger_than_memory_are_refused() {
    let huge = 1usize << 40; // 8 TiB of u64s: more than any test machine has
    assert!(matches!(
        multiproc::Array::<u64>::anonymous(huge),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        multiproc::Queue::<[u64; 4096]>::anonymous(1 << 28),
        Err(Error::InvalidParameter(_))
    ));
    let name = unique_name("huge");
    let _u = Unlink(name.clone());
    assert!(matches!(
        multiproc::Array::<u64>::create(&name, huge),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(Lock::open(&name), Err(Error::NotFound(_))));
}

/// A named region's pages are reserved when it is created, so a full tmpfs
/// refuses the create instead of killing a later write with SIGBUS.
#[test]
fn named_regions_reserve_their_pages() {
    use std::os::unix::fs::MetadataExt;
    let name = unique_name("reserved");
    let _u = Unlink(name.clone());
    let _a = multiproc::Array::<u64>::create(&name, 1 << 18).unwrap();
    let meta = std::fs::metadata(format!("/dev/shm{name}")).unwrap();
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "{} of {} bytes allocated",
        meta.blocks() * 512,
        meta.len()
    );
}
