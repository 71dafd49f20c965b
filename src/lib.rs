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
//! ## Layers
//!
//! `sys` (all libc calls) → `loom` (the atomics/futex facade, swapped for loom
//! models under `--cfg loom`) → [`region`] (headers, participants) → the
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
pub(crate) mod words;

#[cfg(not(loom))]
pub mod manager;
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
#[cfg(not(loom))]
pub mod value;

pub use dict::{DictError, FixedBytes, FixedStr, TooLong};
#[cfg(not(loom))]
pub use dict::{DictOptions, DictStats, SharedDict};
pub use error::Error;
#[cfg(not(loom))]
pub use manager::{Manager, ManagerOptions, ObjectInfo};
#[cfg(not(loom))]
pub use queue::{
    BytesQueue, GetError, JoinableQueue, Pipe, PipeEnd, PutError, Queue, QueueStats, TaskDoneError,
};
#[cfg(not(loom))]
pub use region::{Region, RegionOptions};
#[cfg(not(loom))]
pub use sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, RLock, RLockGuard, Semaphore,
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
    pub use crate::sync::{
        How, RawBarrier, RawCondition, RawEvent, RawLock, RawRLock, RawSemaphore,
    };
    pub use crate::sys::mutex::{Acquired, MutexError};
    pub use crate::sys::time::Deadline;
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
            fingerprint: 0,
        };
        let mapping_len = bytes.len().max(1) * 4096;
        crate::region::header::parse(bytes, mapping_len, expect).is_ok()
    }

    /// Futex syscalls made by this process so far.
    pub fn futex_syscalls() -> u64 {
        crate::sys::futex::syscall_count()
    }
}

/// The README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
