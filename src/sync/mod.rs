//! Synchronization primitives in shared memory, with Python's names.
//!
//! Each primitive is split like `lock_api`: a `#[repr(C)]` raw state struct that
//! lives in a region and holds only atomics (`RawLock`,
//! `RawSemaphore`, ...), with the algorithm as methods on `&self`; and a public
//! handle that owns the mapping. The raw structs are what the loom models run.
//! Every blocking call waits through the crate's one wait layer (check, park, re-check),
//! as the handle's [`crate::WaitPolicy`] says.
//!
//! | primitive | state | owner death |
//! |---|---|---|
//! | [`Lock`] | the crate's robust word (owner's participant token + waiters bit) + owner thread token | next acquirer gets [`LockError::OwnerDied`]; waiters learn of the death from the owner's beacon |
//! | [`RLock`] | the same + recursion count | as `Lock` |
//! | [`Semaphore`], [`BoundedSemaphore`] | one futex word: permits + sleepers bit | permits held by a dead process are not returned (documented leak) |
//! | [`Event`] | one futex word: set + sleepers bit + generation | nothing to recover |
//! | [`Condition`] | its own `Lock` + two group futex words, counts and per-process waiter records | `notify` takes dead waiters out of the counts before it grants |
//! | [`Barrier`] | one futex word: count, generation, broken | waiters notice a dead party and break |

mod barrier;
mod condition;
mod event;
mod lock;
mod rlock;
pub(crate) mod robust;
mod semaphore;

pub use barrier::{BarrierError, BarrierWaitResult};
pub use lock::{LockError, ReleaseError};

#[cfg(not(loom))]
pub use barrier::Barrier;
#[cfg(not(loom))]
pub use condition::Condition;
#[cfg(not(loom))]
pub use event::Event;
#[cfg(not(loom))]
pub use lock::{Lock, LockGuard};
#[cfg(not(loom))]
pub use rlock::{RLock, RLockGuard};
#[cfg(not(loom))]
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphorePermit};

#[cfg(loom)]
pub use barrier::RawBarrier;
#[cfg(loom)]
pub use condition::RawCondition;
#[cfg(loom)]
pub use event::RawEvent;
pub(crate) use lock::Held;
#[cfg(loom)]
pub use lock::How;
#[cfg(not(loom))]
pub(crate) use lock::How;
#[cfg(loom)]
pub use lock::RawLock;
#[cfg(not(loom))]
pub(crate) use lock::RawLock;
#[cfg(loom)]
pub use rlock::RawRLock;
#[cfg(loom)]
pub use robust::LoomOwners;
#[cfg(loom)]
pub use semaphore::RawSemaphore;

#[cfg(all(test, loom))]
mod tests;

/// The process a guard was made in; its drop releases only there.
///
/// A guard captured by a [`crate::process::fork`] closure exists twice after the
/// fork: the parent drops its copy when `fork` returns (the closure is dropped
/// there unrun) and the child drops its own when the closure ends. The parent's
/// copy, in the process that acquired, releases; the child's is inert, so the
/// lock or permit is released once, never a second time under whoever holds it
/// by then.
#[cfg(not(loom))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin(u32);

#[cfg(not(loom))]
impl Origin {
    /// The calling process.
    #[inline]
    pub(crate) fn here() -> Origin {
        Origin(crate::sys::process::fork_epoch())
    }

    /// Whether the calling process is the one `self` was made in. (Fork epochs
    /// only grow along a line of descent, and a guard's memory only reaches
    /// descendants of the process that made it.)
    #[inline]
    pub(crate) fn is_here(self) -> bool {
        crate::sys::process::fork_epoch_cached() == self.0
    }
}

/// `Region::inspect`'s decoder for the sync kinds (nothing for kinds without a
/// count: locks, conditions).
#[cfg(not(loom))]
pub(crate) fn inspect(
    kind: &str,
    obj: crate::region::inspect::Snapshot<'_>,
    info: &mut crate::region::inspect::KindInfo,
) {
    match kind {
        "Semaphore" => semaphore::inspect(obj, info),
        "Event" => event::inspect(obj, info),
        "Barrier" => barrier::inspect(obj, info),
        _ => {}
    }
}
