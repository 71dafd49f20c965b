//! Property tests, single process.
//!
//! * The region header parser behind the `region_header` fuzz target: it runs over
//!   the checked-in fuzz corpus, over random bytes, and over mutations of a valid
//!   header, and its verdict is compared with an independent reference validator
//!   written from the layout documented in `src/region/header.rs`.
//! * Model-based operation sequences: every primitive is driven by a random `Vec`
//!   of operations next to a trivial reference model (a counter, a bool, an
//!   `Option`), and every result and observable value must match the model.
//!
//! Each case maps a fresh region, so case counts stay moderate.

use std::time::Duration;

use multiproc::__private::fuzz_region_header;
use multiproc::{
    Barrier, BarrierError, BoundedSemaphore, Event, Lock, LockError, LockGuard, RLock,
    ReleaseError, Semaphore,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Moderate case counts: each case creates (maps) at least one primitive. No
/// failure persistence, so a failing run writes no files into the source tree.
fn config(cases: u32) -> Config {
    Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

const ZERO: Duration = Duration::ZERO;

// ---------------------------------------------------------------------------
// Region header
// ---------------------------------------------------------------------------

const HEADER_SIZE: usize = 256;
const MAGIC: &[u8; 8] = b"MPROCRGN";
const READY: u32 = 2;
const SLOT_SIZE: u64 = 128;
const ALIGN: u64 = 128;
const MAX_PARTICIPANTS: u32 = 4096;
/// The kind `fuzz_region_header` expects.
const KIND: &[u8] = b"Lock";
/// The format version.
const VERSION: u32 = 4;
/// Where the identity block starts (element count, then elements, capacity,
/// slot size: see `src/identity.rs`).
const IDENTITY: usize = 184;

/// FNV-1a 64, as the identity spec in `src/identity.rs` defines it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The fingerprint of a kind with no elements (a lock): the kind's name, a
/// NUL, and the element count 0 as 8 bytes.
fn lock_fingerprint() -> u64 {
    let mut s = KIND.to_vec();
    s.push(0);
    s.extend_from_slice(&0u64.to_le_bytes());
    fnv1a(&s)
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn get_u64(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// What `fuzz_region_header` uses as the mapping length for `len` bytes.
fn mapping_len(len: usize) -> u64 {
    (len.max(1) * 4096) as u64
}

/// A header `fuzz_region_header` must accept: `len` bytes (at least 256), kind
/// "Lock", no elements, its fingerprint, total size equal to the mapping length it assumes,
/// `participants` slots, the payload `extra` alignment units after the table and
/// `payload_size` bytes long (reduced to fit).
fn valid_header(len: usize, participants: u32, extra: u64, payload_size: u64) -> Vec<u8> {
    assert!(len >= HEADER_SIZE);
    assert!((1..=MAX_PARTICIPANTS).contains(&participants));
    let total = mapping_len(len);
    let table_end = HEADER_SIZE as u64 + u64::from(participants) * SLOT_SIZE;
    let payload_offset = table_end.next_multiple_of(ALIGN) + extra * ALIGN;
    assert!(payload_offset <= total);
    let payload_size = payload_size % (total - payload_offset + 1);
    let mut b = vec![0u8; len];
    b[..8].copy_from_slice(MAGIC);
    put_u32(&mut b, 8, VERSION);
    b[12..16].copy_from_slice(b"GNU\0");
    put_u64(&mut b, 16, total);
    put_u64(&mut b, 24, lock_fingerprint());
    put_u64(&mut b, 32, HEADER_SIZE as u64);
    put_u32(&mut b, 40, participants);
    put_u32(&mut b, 44, READY);
    put_u64(&mut b, 48, payload_offset);
    put_u64(&mut b, 56, payload_size);
    b[64..64 + KIND.len()].copy_from_slice(KIND);
    put_u32(&mut b, 96, 4242);
    b
}

/// An independent validator written from the documented layout: the verdict
/// `fuzz_region_header` must reach for `b`.
fn reference_accepts(b: &[u8]) -> bool {
    if b.len() < HEADER_SIZE {
        return false;
    }
    let kind = &b[64..96];
    let kind = &kind[..kind.iter().position(|&c| c == 0).unwrap_or(kind.len())];
    let total = get_u64(b, 16);
    let participants = get_u32(b, 40);
    let payload_offset = get_u64(b, 48);
    let payload_size = get_u64(b, 56);
    let table_end = HEADER_SIZE as u64 + u64::from(participants) * SLOT_SIZE;
    &b[..8] == MAGIC
        && get_u32(b, 8) == VERSION
        // The lifecycle block's cleanup policy (offset 104 + 24): 0, 1 or 2.
        && get_u32(b, 128) <= 2
        && b[12..16] == *b"GNU\0"
        && get_u32(b, 44) == READY
        && kind == KIND
        && get_u64(b, 24) == lock_fingerprint()
        && get_u32(b, IDENTITY) == 0
        && total == mapping_len(b.len())
        && get_u64(b, 32) == HEADER_SIZE as u64
        && (1..=MAX_PARTICIPANTS).contains(&participants)
        && payload_offset >= table_end
        && payload_offset % ALIGN == 0
        && u128::from(payload_offset) + u128::from(payload_size) <= u128::from(total)
}

/// Byte ranges where any change must make the header invalid: magic, version,
/// libc family, total size, fingerprint, participant table offset, init state,
/// the kind name with its terminating NUL, and the identity block's element
/// count (a lock has none).
const STRICT: &[std::ops::Range<usize>] = &[
    0..8,
    8..12,
    12..16,
    16..24,
    24..32,
    32..40,
    44..48,
    64..69,
    IDENTITY..IDENTITY + 4,
];

fn strict_offset() -> impl Strategy<Value = usize> {
    prop::sample::select(STRICT.iter().flat_map(|r| r.clone()).collect::<Vec<_>>())
}

fn header_params() -> impl Strategy<Value = (usize, u32, u64, u64)> {
    (
        HEADER_SIZE..600usize,
        prop_oneof![1..=8u32, Just(MAX_PARTICIPANTS), 1..=MAX_PARTICIPANTS],
        prop_oneof![Just(0u64), 0..16u64],
        prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
    )
}

/// A change to a valid header.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR one byte anywhere.
    Xor(usize, u8),
    /// Flip one bit anywhere.
    Bit(usize, u8),
    /// Set the participant count.
    Participants(u32),
    /// Set the payload offset.
    PayloadOffset(u64),
    /// Set the payload size.
    PayloadSize(u64),
    /// Set the payload size so the payload ends this many bytes past the end of
    /// the region (negative: before it).
    PayloadEnd(i64),
    /// Set the payload offset this many bytes past the end of the participant
    /// table (negative: inside it).
    PayloadAfterTable(i64),
    /// Keep only this many bytes.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let edge64 = prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(u64::MAX - 127),
        Just(1u64 << 63),
        (0..9000u64).prop_map(|k| k * 64),
        any::<u64>(),
    ];
    prop_oneof![
        (0..600usize, 1..=255u8).prop_map(|(o, x)| Mutation::Xor(o, x)),
        (0..600usize, 0..8u8).prop_map(|(o, bit)| Mutation::Bit(o, bit)),
        prop_oneof![
            Just(0u32),
            Just(1),
            Just(MAX_PARTICIPANTS),
            Just(MAX_PARTICIPANTS + 1),
            Just(u32::MAX),
            any::<u32>()
        ]
        .prop_map(Mutation::Participants),
        edge64.clone().prop_map(Mutation::PayloadOffset),
        edge64.prop_map(Mutation::PayloadSize),
        (-2..=2i64).prop_map(Mutation::PayloadEnd),
        prop_oneof![-2..=2i64, -130..=130i64].prop_map(Mutation::PayloadAfterTable),
        (0..600usize).prop_map(Mutation::Truncate),
    ]
}

fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let len = b.len();
    match *m {
        Mutation::Xor(o, x) => b[o % len] ^= x,
        Mutation::Bit(o, bit) => b[o % len] ^= 1 << bit,
        Mutation::Participants(v) if len >= 44 => put_u32(b, 40, v),
        Mutation::PayloadOffset(v) if len >= 56 => put_u64(b, 48, v),
        Mutation::PayloadSize(v) if len >= 64 => put_u64(b, 56, v),
        Mutation::PayloadEnd(d) if len >= 64 => {
            let size = get_u64(b, 16)
                .wrapping_add_signed(d)
                .wrapping_sub(get_u64(b, 48));
            put_u64(b, 56, size);
        }
        Mutation::PayloadAfterTable(d) if len >= 56 => {
            let table_end = HEADER_SIZE as u64 + u64::from(get_u32(b, 40)) * SLOT_SIZE;
            put_u64(b, 48, table_end.wrapping_add_signed(d));
        }
        Mutation::Truncate(n) => b.truncate(n),
        _ => {}
    }
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/region_header")
}

/// `cargo test` runs the fuzz target over its checked-in corpus (and anything a
/// local fuzzing run added to it): the verdict must match the reference, and the
/// seeds named `valid_*` must be accepted.
#[test]
fn fuzz_corpus_region_header() {
    let mut files = 0;
    let mut valid = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let accepted = fuzz_region_header(&data);
        assert_eq!(accepted, reference_accepts(&data), "corpus file {name}");
        if name.starts_with("valid_") {
            assert!(accepted, "corpus file {name} must be accepted");
            valid += 1;
        }
        files += 1;
    }
    assert!(files >= 5, "only {files} corpus files");
    assert!(valid >= 1, "no valid_* seed in the corpus");
}

#[test]
fn valid_header_is_accepted_and_its_truncations_are_not() {
    let h = valid_header(HEADER_SIZE, 4, 0, 64);
    assert!(fuzz_region_header(&h));
    for n in 0..HEADER_SIZE {
        assert!(!fuzz_region_header(&h[..n]), "accepted {n} bytes");
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let accepted = fuzz_region_header(&bytes);
        prop_assert_eq!(accepted, reference_accepts(&bytes));
        if bytes.len() < HEADER_SIZE || &bytes[..8] != MAGIC {
            prop_assert!(!accepted);
        }
    }

    #[test]
    fn random_bytes_behind_a_good_prefix_never_panic(
        (len, n, extra, size) in header_params(),
        tail in prop::collection::vec(any::<u8>(), 0..600),
        cut in 0..100usize,
    ) {
        // A valid header's first `cut` bytes, then garbage.
        let mut b = valid_header(len, n, extra, size);
        b.truncate(cut);
        b.extend_from_slice(&tail);
        prop_assert_eq!(fuzz_region_header(&b), reference_accepts(&b));
    }

    #[test]
    fn valid_headers_are_accepted(
        (len, n, extra, size) in header_params(),
        reserved in prop::collection::vec(any::<u8>(), 600),
    ) {
        let mut h = valid_header(len, n, extra, size);
        // The creator pid, the reserved bytes after it, and everything of
        // the identity block but its element count are not validated for a
        // kind without elements, except the lifecycle block's cleanup policy
        // (offset 128), which must be 0..=2.
        let reserved_len = h.len() - 96;
        h[96..].copy_from_slice(&reserved[..reserved_len]);
        put_u32(&mut h, IDENTITY, 0);
        put_u32(&mut h, 128, u32::from(reserved[0] % 3));
        prop_assert!(fuzz_region_header(&h));
    }

    #[test]
    fn any_change_to_a_checked_field_is_rejected(
        (len, n, extra, size) in header_params(),
        off in strict_offset(),
        xor in 1..=255u8,
    ) {
        let mut h = valid_header(len, n, extra, size);
        prop_assert!(fuzz_region_header(&h));
        h[off] ^= xor;
        prop_assert!(!fuzz_region_header(&h), "byte {} ^ {:#x} accepted", off, xor);
    }

    #[test]
    fn mutated_headers_match_the_reference(
        (len, n, extra, size) in header_params(),
        muts in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut h = valid_header(len, n, extra, size);
        for m in &muts {
            if h.is_empty() {
                break;
            }
            apply(&mut h, m);
        }
        prop_assert_eq!(fuzz_region_header(&h), reference_accepts(&h));
    }
}

// ---------------------------------------------------------------------------
// Semaphore and BoundedSemaphore
// ---------------------------------------------------------------------------

/// The largest semaphore value.
const SEM_MAX: u32 = (1 << 31) - 1;

#[derive(Clone, Copy, Debug)]
enum SemOp {
    TryAcquire,
    /// Blocking acquire; only issued when the model has a permit.
    Acquire,
    AcquireTimeout0,
    Release,
    Value,
}

fn sem_op() -> impl Strategy<Value = SemOp> {
    prop_oneof![
        3 => Just(SemOp::TryAcquire),
        1 => Just(SemOp::Acquire),
        2 => Just(SemOp::AcquireTimeout0),
        3 => Just(SemOp::Release),
        1 => Just(SemOp::Value),
    ]
}

/// Runs `ops` on a semaphore created with `initial`, against a counter model;
/// `bound` is the value `release` may not exceed and `past_bound` the error it
/// gives there.
macro_rules! check_semaphore {
    ($sem:expr, $initial:expr, $ops:expr, $bound:expr, $past_bound:expr) => {{
        let sem = $sem;
        let mut model: u32 = $initial;
        prop_assert_eq!(sem.value(), model);
        for op in $ops {
            match op {
                SemOp::TryAcquire => {
                    prop_assert_eq!(sem.try_acquire(), model > 0);
                    model = model.saturating_sub(1);
                }
                SemOp::Acquire if model > 0 => {
                    sem.acquire();
                    model -= 1;
                }
                SemOp::Acquire => {}
                SemOp::AcquireTimeout0 => {
                    prop_assert_eq!(sem.acquire_timeout(ZERO), model > 0);
                    model = model.saturating_sub(1);
                }
                SemOp::Release => {
                    if model < $bound {
                        prop_assert_eq!(sem.release(), Ok(()));
                        model += 1;
                    } else {
                        prop_assert_eq!(sem.release(), Err($past_bound));
                    }
                }
                SemOp::Value => {}
            }
            prop_assert_eq!(sem.value(), model, "after {:?}", op);
        }
    }};
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn semaphore_matches_a_counter(
        initial in prop_oneof![0..4u32, SEM_MAX - 3..=SEM_MAX],
        ops in prop::collection::vec(sem_op(), 0..64),
    ) {
        check_semaphore!(
            Semaphore::anonymous(initial).unwrap(),
            initial,
            ops,
            SEM_MAX,
            ReleaseError::Overflow
        );
    }

    #[test]
    fn bounded_semaphore_matches_a_bounded_counter(
        initial in 0..5u32,
        ops in prop::collection::vec(sem_op(), 0..64),
    ) {
        check_semaphore!(
            BoundedSemaphore::anonymous(initial).unwrap(),
            initial,
            ops,
            initial,
            ReleaseError::AboveBound
        );
    }
}

#[test]
fn semaphore_rejects_values_above_the_maximum() {
    assert!(Semaphore::anonymous(SEM_MAX + 1).is_err());
    assert!(BoundedSemaphore::anonymous(SEM_MAX + 1).is_err());
    assert!(Semaphore::anonymous(u32::MAX).is_err());
}

/// Python allows a `BoundedSemaphore` of any initial value; the largest one this
/// crate accepts for `Semaphore` should work bounded too.
#[test]
fn bounded_semaphore_at_the_maximum_value() {
    let sem = BoundedSemaphore::anonymous(SEM_MAX).unwrap();
    assert_eq!(sem.release(), Err(ReleaseError::AboveBound));
    assert!(sem.try_acquire());
    assert_eq!(sem.release(), Ok(()));
    assert_eq!(sem.value(), SEM_MAX);
}

// ---------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum EventOp {
    Set,
    Clear,
    IsSet,
    WaitTimeout0,
    /// Blocking wait; only issued when the model is set.
    Wait,
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn event_matches_a_bool(
        ops in prop::collection::vec(
            prop_oneof![
                Just(EventOp::Set),
                Just(EventOp::Clear),
                Just(EventOp::IsSet),
                Just(EventOp::WaitTimeout0),
                Just(EventOp::Wait),
            ],
            0..64,
        ),
    ) {
        let ev = Event::anonymous().unwrap();
        let mut model = false;
        prop_assert!(!ev.is_set());
        for op in ops {
            match op {
                EventOp::Set => {
                    ev.set();
                    model = true;
                }
                EventOp::Clear => {
                    ev.clear();
                    model = false;
                }
                EventOp::IsSet => {}
                EventOp::WaitTimeout0 => prop_assert_eq!(ev.wait_timeout(ZERO), model),
                EventOp::Wait if model => ev.wait(),
                EventOp::Wait => {}
            }
            prop_assert_eq!(ev.is_set(), model, "after {:?}", op);
        }
    }
}

// ---------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum LockOp {
    TryLock,
    LockTimeout0,
    /// Blocking lock; only issued when the model is free.
    Lock,
    DropGuard,
    OtherThreadTryLock,
    OtherThreadLockTimeout0,
}

fn is_would_block(r: &Result<LockGuard<'_>, LockError<LockGuard<'_>>>) -> bool {
    matches!(r, Err(LockError::WouldBlock))
}

fn is_timeout(r: &Result<LockGuard<'_>, LockError<LockGuard<'_>>>) -> bool {
    matches!(r, Err(LockError::Timeout))
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn lock_matches_an_option(
        ops in prop::collection::vec(
            prop_oneof![
                3 => Just(LockOp::TryLock),
                2 => Just(LockOp::LockTimeout0),
                1 => Just(LockOp::Lock),
                3 => Just(LockOp::DropGuard),
                1 => Just(LockOp::OtherThreadTryLock),
                1 => Just(LockOp::OtherThreadLockTimeout0),
            ],
            0..48,
        ),
    ) {
        let lock = Lock::anonymous().unwrap();
        // The model: `Some` while this thread holds the lock.
        let mut held: Option<LockGuard<'_>> = None;
        for op in ops {
            match op {
                LockOp::TryLock | LockOp::LockTimeout0 | LockOp::Lock => {
                    let r = match op {
                        LockOp::TryLock => lock.try_lock(),
                        LockOp::LockTimeout0 => lock.lock_timeout(ZERO),
                        _ if held.is_none() => lock.lock(),
                        _ => continue,
                    };
                    if held.is_some() {
                        let expected = if matches!(op, LockOp::TryLock) {
                            is_would_block(&r)
                        } else {
                            is_timeout(&r)
                        };
                        prop_assert!(expected, "{:?} while held gave {:?}", op, r);
                    } else {
                        let g = r.map_err(|e| format!("{op:?} on a free lock: {e:?}"));
                        let g = g.map_err(TestCaseError::fail)?;
                        prop_assert!(g.is_consistent());
                        held = Some(g);
                    }
                }
                LockOp::DropGuard => held = None,
                LockOp::OtherThreadTryLock | LockOp::OtherThreadLockTimeout0 => {
                    let is_held = held.is_some();
                    let ok = std::thread::scope(|s| {
                        s.spawn(|| {
                            let r = if matches!(op, LockOp::OtherThreadTryLock) {
                                lock.try_lock()
                            } else {
                                lock.lock_timeout(ZERO)
                            };
                            match (is_held, r) {
                                (false, Ok(g)) => g.is_consistent(),
                                (true, r) if matches!(op, LockOp::OtherThreadTryLock) => {
                                    is_would_block(&r)
                                }
                                (true, r) => is_timeout(&r),
                                (false, Err(_)) => false,
                            }
                        })
                        .join()
                        .unwrap()
                    });
                    prop_assert!(ok, "{:?} with held = {}", op, is_held);
                }
            }
        }
        // Whatever happened, the lock is free again once the guard is gone.
        drop(held);
        prop_assert!(lock.try_lock().is_ok());
    }
}

// ---------------------------------------------------------------------------
// RLock
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum RLockOp {
    Acquire,
    AcquireTimeout0,
    Release,
    Depth,
    /// `try_lock` and drop the guard at once: depth goes up by one and back.
    TryLockGuard,
    OtherThreadRelease,
    OtherThreadTryLock,
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn rlock_matches_a_depth_counter(
        ops in prop::collection::vec(
            prop_oneof![
                3 => Just(RLockOp::Acquire),
                1 => Just(RLockOp::AcquireTimeout0),
                3 => Just(RLockOp::Release),
                1 => Just(RLockOp::Depth),
                1 => Just(RLockOp::TryLockGuard),
                1 => Just(RLockOp::OtherThreadRelease),
                1 => Just(RLockOp::OtherThreadTryLock),
            ],
            0..64,
        ),
    ) {
        let rlock = RLock::anonymous().unwrap();
        let mut depth: u32 = 0;
        for op in ops {
            match op {
                RLockOp::Acquire => {
                    prop_assert!(rlock.acquire().is_ok());
                    depth += 1;
                }
                RLockOp::AcquireTimeout0 => {
                    prop_assert!(rlock.acquire_timeout(ZERO).is_ok());
                    depth += 1;
                }
                RLockOp::Release => {
                    if depth > 0 {
                        prop_assert_eq!(rlock.release(), Ok(()));
                        depth -= 1;
                    } else {
                        prop_assert_eq!(rlock.release(), Err(ReleaseError::NotOwner));
                    }
                }
                RLockOp::Depth => {}
                RLockOp::TryLockGuard => {
                    let g = rlock.try_lock();
                    prop_assert!(g.is_ok(), "try_lock by the owner or on a free lock");
                    prop_assert_eq!(rlock.depth(), depth + 1);
                }
                RLockOp::OtherThreadRelease => {
                    let (r, other_depth) = std::thread::scope(|s| {
                        s.spawn(|| (rlock.release(), rlock.depth())).join().unwrap()
                    });
                    prop_assert_eq!(r, Err(ReleaseError::NotOwner));
                    prop_assert_eq!(other_depth, 0);
                }
                RLockOp::OtherThreadTryLock => {
                    let ok = std::thread::scope(|s| {
                        s.spawn(|| match rlock.try_lock() {
                            Ok(g) => depth == 0 && rlock.depth() == 1 && g.is_consistent(),
                            Err(LockError::WouldBlock) => depth > 0 && rlock.depth() == 0,
                            Err(_) => false,
                        })
                        .join()
                        .unwrap()
                    });
                    prop_assert!(ok, "other thread's try_lock at depth {}", depth);
                }
            }
            prop_assert_eq!(rlock.depth(), depth, "after {:?}", op);
        }
        for _ in 0..depth {
            prop_assert_eq!(rlock.release(), Ok(()));
        }
        prop_assert_eq!(rlock.release(), Err(ReleaseError::NotOwner));
        prop_assert_eq!(rlock.depth(), 0);
    }
}

// ---------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum BarrierOp {
    Wait,
    WaitTimeout0,
    Abort,
    Reset,
    IsBroken,
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn one_party_barrier_matches_a_bool(
        ops in prop::collection::vec(
            prop_oneof![
                4 => Just(BarrierOp::Wait),
                2 => Just(BarrierOp::WaitTimeout0),
                1 => Just(BarrierOp::Abort),
                1 => Just(BarrierOp::Reset),
                1 => Just(BarrierOp::IsBroken),
            ],
            0..64,
        ),
    ) {
        let b = Barrier::anonymous(1).unwrap();
        prop_assert_eq!(b.parties(), 1);
        let mut broken = false;
        for op in ops {
            match op {
                BarrierOp::Wait | BarrierOp::WaitTimeout0 => {
                    let r = if matches!(op, BarrierOp::Wait) {
                        b.wait()
                    } else {
                        b.wait_timeout(ZERO)
                    };
                    if broken {
                        prop_assert_eq!(r, Err(BarrierError::Broken));
                    } else {
                        let r = r.map_err(|e| TestCaseError::fail(format!("{op:?}: {e:?}")))?;
                        prop_assert!(r.is_leader());
                        prop_assert_eq!(r.index(), 0);
                    }
                }
                BarrierOp::Abort => {
                    b.abort();
                    broken = true;
                }
                BarrierOp::Reset => {
                    b.reset();
                    broken = false;
                }
                BarrierOp::IsBroken => {}
            }
            prop_assert_eq!(b.is_broken(), broken, "after {:?}", op);
            prop_assert_eq!(b.n_waiting(), 0);
        }
    }
}

/// The generation counter is 13 bits: a one-party barrier must keep working
/// across its wrap-around.
#[test]
fn one_party_barrier_survives_generation_wrap() {
    let b = Barrier::anonymous(1).unwrap();
    for i in 0..(1 << 13) + 10 {
        let r = b.wait().unwrap_or_else(|e| panic!("wait {i}: {e:?}"));
        assert!(r.is_leader() && r.index() == 0, "wait {i}");
        if i % 1000 == 0 {
            b.reset();
        }
    }
    assert!(!b.is_broken());
}
