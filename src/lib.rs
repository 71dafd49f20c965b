//! # multiproc
//!
//! Python's `multiprocessing` toolbox rebuilt on process-shared memory: robust
//! [`Lock`] and [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`],
//! [`Condition`] and [`Barrier`], all living in `mmap`ed regions that forked
//! children inherit ([`Lock::anonymous`]) or unrelated programs open by name
//! ([`Lock::create`], [`Lock::open`]).
//!
//! No pipes, no pickling, no server process: an uncontended operation is a few
//! atomic instructions, and blocking uses shared futexes that wake a waiter in
//! another process directly.
//!
//! ## Robustness
//!
//! A process may die at any instruction. A [`Lock`] held by a process that was
//! killed is handed to the next acquirer as [`LockError::OwnerDied`], with a guard
//! it may use to repair the protected data before calling
//! [`LockGuard::mark_consistent`]. A [`Barrier`] whose party died breaks instead of
//! hanging. A process killed while waiting on an [`Event`], [`Condition`] or
//! [`Semaphore`] blocks nobody else.
//!
//! ```no_run
//! use multiproc::{process, Lock};
//!
//! let lock = Lock::anonymous()?;
//! let child = process::fork(|| {
//!     let _held = lock.lock().ok();
//!     0
//! })?;
//! assert_eq!(child.wait()?, process::ExitStatus::Code(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Named objects between programs
//!
//! A named object (`Queue::create("/jobs", 64)`) can be opened by any program
//! of the same user, written in Rust or not. What must match is the object's
//! kind and the *layout* of its element types (size, alignment and an
//! optional type id, never a Rust type name: see [`identity`]), so two
//! programs that each define the same `#[repr(C)]` struct share it, and
//! [`Tagged`] keeps equal layouts of different meaning apart. A mismatch is a
//! typed [`Error`] naming both sides. `open_or_create` (on every named kind)
//! is what a program that may start first, second or again after a crash
//! calls: race-free, exactly one starter creates.
//!
//! ```
//! use multiproc::{Error, Queue};
//!
//! # let name = format!("/doc-named-{}", std::process::id());
//! let jobs = Queue::<[u64; 2]>::open_or_create(&name, 64)?;
//! jobs.put([1, 2]).unwrap();
//! // Another program, another type of the same layout: the same queue.
//! let same = Queue::<[i64; 2]>::open_or_create(&name, 64)?;
//! assert_eq!(same.get(), Ok([1, 2]));
//! // Another size: refused, and the error says both.
//! let e = Queue::<[u64; 3]>::open(&name).unwrap_err();
//! assert!(matches!(e, Error::ElementMismatch { .. }));
//! assert!(e.to_string().contains("size 24") && e.to_string().contains("size 16"));
//! # multiproc::Region::unlink(&name)?;
//! # Ok::<(), Error>(())
//! ```
//!
//! ## Layers
//!
//! `sys` (all libc calls) → `loom` (the atomics/futex facade, swapped for loom
//! models under `--cfg loom`) → [`region`] (headers, participants, discovery and
//! cleanup policies of named regions) → the
//! primitives in [`sync`].
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
compile_error!(
    "multiproc supports Linux (glibc) only: it needs shared futexes and robust pthread mutexes"
);

mod error;
pub(crate) mod loom;
#[cfg_attr(
    loom,
    allow(
        dead_code,
        reason = "under loom only the time and mutex types of sys are used"
    )
)]
pub(crate) mod sys;

pub mod dict;
#[cfg_attr(loom, allow(dead_code, reason = "regions are not modelled under loom"))]
pub mod identity;
pub(crate) mod park;
pub(crate) mod spin;
pub(crate) mod words;

#[cfg(not(loom))]
pub mod manager;
#[cfg(not(loom))]
pub mod pool;
#[cfg(not(loom))]
pub mod process;
#[cfg(not(loom))]
pub mod queue;
#[cfg(loom)]
#[allow(dead_code, reason = "under loom only the ring core is modelled")]
mod queue;
#[cfg(not(loom))]
pub mod region;
pub mod sync;
pub mod value;

pub use dict::{DictError, FixedBytes, FixedStr, TooLong};
#[cfg(not(loom))]
pub use dict::{DictOptions, DictStats, SharedDict};
pub use error::Error;
pub use identity::{SharedType, Tagged};

/// The `bytemuck` this crate is built on, so one dependency suffices: derive
/// [`Pod`] and [`Zeroable`] for your own `#[repr(C)]` types through it.
///
/// ```
/// use multiproc::{Pod, Queue, Zeroable};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
/// #[bytemuck(crate = "multiproc::bytemuck")]
/// #[repr(C)]
/// struct Job {
///     id: u64,
///     cost: f64,
/// }
///
/// let q = Queue::<Job>::anonymous(4)?;
/// q.put(Job { id: 1, cost: 0.5 })?;
/// assert_eq!(q.get()?, Job { id: 1, cost: 0.5 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use bytemuck;
/// Plain old data (re-exported from `bytemuck`, trait and derive): every
/// `Pod` type is a [`SharedType`], the bound on every value that crosses a
/// region, identified by its size, alignment and optional type id (see
/// [`identity`]).
pub use bytemuck::Pod;
/// All-zero bytes are a valid value (re-exported from `bytemuck`, trait and derive).
pub use bytemuck::Zeroable;
#[cfg(not(loom))]
pub use manager::{Manager, ManagerOptions, ObjectInfo};
pub use park::WaitPolicy;
#[cfg(not(loom))]
pub use pool::{AsyncResult, Pool, PoolError};
#[cfg(not(loom))]
pub use process::Process;
pub use queue::spsc;
#[cfg(not(loom))]
pub use queue::{
    BytesQueue, GetError, JoinableQueue, Pipe, PipeEnd, PutError, Queue, QueueStats, TaskDoneError,
};
#[cfg(not(loom))]
pub use region::{Cleanup, Region, RegionInfo, RegionOptions};
#[cfg(not(loom))]
pub use sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, RLock, RLockGuard, Semaphore,
    SemaphorePermit,
};
pub use sync::{BarrierError, BarrierWaitResult, LockError, ReleaseError};
#[cfg(not(loom))]
pub use value::{Array, AtomicElement, Counter, Value, ValueError};

/// Raw algorithms and the mocked robust mutex, for `tests/loom.rs` (loom builds only).
#[doc(hidden)]
#[cfg(loom)]
pub mod __loom {
    pub use crate::dict::table::model::LoomDict;
    pub use crate::queue::ring::model::LoomRing;
    pub use crate::queue::ring::{GetFail, PutFail, WaitFail};
    pub use crate::sync::LoomOwners;
    pub use crate::sync::robust::{Acquired, MutexError};
    pub use crate::sync::{
        How, RawBarrier, RawCondition, RawEvent, RawLock, RawRLock, RawSemaphore,
    };
    pub use crate::sys::time::Deadline;
    pub use crate::value::ValueError;
    pub use crate::value::model::{Crash, LoomArray};
}

/// Internals exposed for the fuzz targets and the proptest suite; not a stable API.
#[doc(hidden)]
#[cfg(not(loom))]
pub mod __private {
    /// Parses `bytes` as a region header for an expected kind; the fuzz target.
    /// Returns whether it was accepted. Never panics.
    pub fn fuzz_region_header(bytes: &[u8]) -> bool {
        let expect = crate::region::header::Expect {
            kind: "Lock",
            elements: crate::identity::Elements::NONE,
        };
        let mapping_len = bytes.len().max(1) * 4096;
        crate::region::header::parse(bytes, mapping_len, expect).is_ok()
    }

    /// Scribbles `data` over a fresh dict's shared words (journal, `len`, slots),
    /// runs the crash repair, then every operation; the fuzz target. Returns how
    /// many operations succeeded. Never panics or hangs.
    pub fn fuzz_dict(data: &[u8]) -> usize {
        let Ok(d) = crate::SharedDict::<u64, [u64; 2]>::anonymous(6) else {
            return 0;
        };
        let mut ok = usize::from(d.fuzz_scribble(data).is_ok());
        for k in 0..12u64 {
            ok += usize::from(matches!(d.get(&k), Ok(Some(_))));
            ok += usize::from(d.insert(k, [k, k]).is_ok());
            ok += usize::from(matches!(d.update(&k, |v| v[0] ^= 1), Ok(Some(()))));
            ok += usize::from(d.iter().is_ok_and(|it| it.count() <= d.capacity()));
            if k % 3 == 0 {
                ok += usize::from(matches!(d.remove(&k), Ok(Some(_))));
            }
        }
        ok += usize::from(d.clear().is_ok() && d.is_empty());
        ok
    }

    /// Scribbles `data` over a fresh manager's directory, repairs it, then
    /// lists and gets-or-creates objects; the fuzz target. Returns how many
    /// objects it could use. Never panics or hangs.
    pub fn fuzz_manager(data: &[u8]) -> usize {
        let opts = crate::ManagerOptions::new().entries(8);
        let Ok(m) = crate::Manager::anonymous_with(1 << 16, opts) else {
            return 0;
        };
        if m.fuzz_scribble(data).is_err() {
            return 0;
        }
        let mut ok = m.names().len() + m.objects().len() + m.available() % 2;
        ok += usize::from(m.counter("c", 1).is_ok_and(|c| c.fetch_add(1) >= 0));
        ok += usize::from(
            m.dict::<u64, u64>("d", 4)
                .is_ok_and(|d| d.insert(1, 1).is_ok()),
        );
        ok += usize::from(m.queue::<u64>("q", 4).is_ok_and(|q| q.try_put(1).is_ok()));
        ok += usize::from(m.lock("l").is_ok_and(|l| l.try_lock().is_ok()));
        ok += usize::from(m.value("v", [1u8; 3]).is_ok_and(|v| v.load().is_ok()));
        ok
    }

    /// Scribbles `data` over a fresh queue's shared state (ring words, stored
    /// geometry, slot words, owner table, payloads: see
    /// `QueueCore::fuzz_scribble`), then runs every non-blocking operation and
    /// the zero-timeout blocking ones, on a `Queue<u64>` and on a `BytesQueue`;
    /// the `queue_ring` fuzz target. Returns how many operations succeeded.
    /// Never hangs; panics only if an invariant a caller relies on breaks
    /// (`len() > capacity()`, a batch reporting more items than asked), which
    /// the fuzzer then reports.
    pub fn fuzz_ring(data: &[u8]) -> usize {
        use std::time::Duration;
        type Rings = (crate::Queue<u64>, Vec<u8>, crate::BytesQueue, Vec<u8>);
        thread_local! {
            // Made once per thread and restored to its fresh bytes before each
            // run: region creation would otherwise dominate a fuzzing run.
            static RINGS: Option<Rings> = {
                let opts = crate::RegionOptions::new().participants(4);
                let q = crate::Queue::<u64>::new_kind(None, 8, opts, false).ok()?;
                let b = crate::BytesQueue::new(None, 4, 12, opts).ok()?;
                // Register this process in both before the snapshot.
                let _ = (q.core().owner(), b.core().owner());
                let (sq, sb) = (q.core().fuzz_snapshot(), b.core().fuzz_snapshot());
                Some((q, sq, b, sb))
            };
        }
        RINGS.with(|r| {
            let Some((q, sq, b, sb)) = r else { return 0 };
            let mut ok = 0;
            q.core().fuzz_restore(sq);
            q.core().fuzz_scribble(data);
            let cap = q.capacity();
            assert!(q.len() <= cap, "len {} > capacity {cap}", q.len());
            ok += q.recover() as usize % 2;
            let c = q.clone();
            for k in 0..12u64 {
                ok += usize::from(q.try_put(k).is_ok());
                ok += usize::from(c.try_get().is_ok());
                assert!(q.len() <= cap);
            }
            let items = [7u64; 10];
            let n = q.put_many(&items);
            assert!(n <= items.len());
            let mut out = [0u64; 10];
            let m = c.get_many(&mut out);
            assert!(m <= out.len());
            ok += n + m;
            ok += usize::from(q.put_timeout(1, Duration::ZERO).is_ok());
            let s = q.stats();
            assert!(s.len <= s.capacity);
            q.shutdown();
            for _ in 0..cap + 2 {
                match q.try_get() {
                    Ok(_) => ok += 1,
                    Err(_) => break,
                }
            }
            ok += usize::from(q.try_put(0).is_err());

            b.core().fuzz_restore(sb);
            b.core().fuzz_scribble(data);
            let mut buf = [0u8; 12];
            for k in 0..6u8 {
                ok += usize::from(b.try_put(&[k; 5]).is_ok());
                if let Ok(v) = b.try_get() {
                    assert!(v.len() <= b.slot_size());
                    ok += 1;
                }
                if let Ok(n) = b.try_get_into(&mut buf) {
                    assert!(n <= buf.len());
                    ok += 1;
                }
            }
            ok += b.recover() as usize % 2;
            assert!(b.len() <= b.capacity());
            ok
        })
    }

    /// Offsets of the shared words of an object of `kind` (`"Queue"` for every
    /// queue kind, `"SharedDict"`, `"Manager"`) from the object's start (the
    /// region header's payload offset), by name; empty for other kinds. For
    /// tests that play a peer scribbling over a region.
    pub fn field_offsets(kind: &str) -> Vec<(&'static str, usize)> {
        match kind {
            "Queue" => crate::queue::field_offsets(),
            "SharedDict" => crate::dict::field_offsets(),
            "Manager" => crate::manager::field_offsets(),
            _ => Vec::new(),
        }
    }

    /// Base address and length of `region`'s mapping in this process, for tests
    /// that play a peer scribbling over it (from a forked child, which shares
    /// the mapping).
    pub fn region_span(region: &crate::Region) -> (*mut u8, usize) {
        region.span()
    }

    /// How long a waiter on a robust lock sleeps before it re-probes the owner:
    /// what a lock word a peer scribbled over costs an untimed acquire (the
    /// manager's directory, the dict's writer lock, `Value`/`Array` writes).
    pub fn lock_slice() -> std::time::Duration {
        crate::park::MAX_SLICE
    }

    /// How many participants each worker's inbox region of `pool` has.
    pub fn pool_inbox_members(pool: &crate::Pool) -> Vec<usize> {
        pool.inbox_members()
    }

    /// The regions behind a pipe end (its two rings).
    pub fn pipe_regions(end: &crate::PipeEnd) -> [&crate::Region; 2] {
        end.regions()
    }

    /// Scribbles `data` over a fresh array's shared words (journal word, seqs,
    /// data, journal entries, changed-bitmap), optionally runs the crash repair,
    /// then every read and update, checking them against each other; the fuzz
    /// target. Returns how many operations succeeded. Never hangs.
    pub fn fuzz_value(data: &[u8]) -> usize {
        crate::value::fuzz_value(data)
    }

    /// Where an array's shared words sit in its region (byte offsets from the
    /// start of the mapping or file), for tests that play a hostile peer.
    pub fn array_layout<T: crate::SharedType>(a: &crate::Array<T>) -> crate::value::CellsLayout {
        a.layout()
    }

    /// [`array_layout`] for a `Value` (an array of one element).
    pub fn value_layout<T: crate::SharedType>(v: &crate::Value<T>) -> crate::value::CellsLayout {
        v.layout()
    }

    /// Futex syscalls made by this process so far.
    pub fn futex_syscalls() -> u64 {
        crate::sys::futex::syscall_count()
    }

    /// Sleep slices of the wait layer that ended by their timeout in this
    /// process so far (an idle waiter's wake-ups).
    pub fn park_slices_expired() -> u64 {
        crate::park::stats::slices_expired()
    }

    /// Waiters (in any process) that this process's wait-layer wakers woke,
    /// as the kernel counted them.
    pub fn park_woken() -> u64 {
        crate::park::stats::woken()
    }
}

/// The README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
