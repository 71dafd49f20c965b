//! A robust, process-shared `pthread_mutex_t`, `#[repr(C)]` so it can live in a
//! region.
//!
//! Owner death is detected through the kernel's robust-futex list, which glibc owns
//! (one list head per thread; a library must never call `set_robust_list`). When a
//! thread dies holding the mutex, the kernel marks the word `FUTEX_OWNER_DIED` and
//! wakes one waiter; that acquirer gets `EOWNERDEAD` and must either call
//! `pthread_mutex_consistent` or, by unlocking without it, make the mutex
//! permanently `ENOTRECOVERABLE`.
//!
//! The type is NORMAL (not ERRORCHECK/RECURSIVE): those compare kernel TIDs, which
//! are not unique across PID namespaces. Recursion lives in the crate (`RLock`).
#![expect(
    clippy::disallowed_types,
    reason = "the pthread object needs a real UnsafeCell; crate::loom mocks this type under loom"
)]

use std::cell::UnsafeCell;
use std::io;

use super::time::Deadline;

unsafe extern "C" {
    // glibc >= 2.30; missing from the libc crate.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// What a successful acquire found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The previous owner unlocked normally.
    Clean,
    /// The previous owner died holding the mutex (`EOWNERDEAD`); the caller owns it
    /// and must call [`RobustMutex::consistent`] before unlocking to keep it usable.
    OwnerDied,
}

/// Why an operation on a [`RobustMutex`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutexError {
    /// `try_lock`: held by someone else.
    WouldBlock,
    /// `lock_until`: the deadline passed.
    TimedOut,
    /// A previous owner died and the next one unlocked without repairing.
    NotRecoverable,
    /// `unlock`/`consistent` by a thread that does not own the mutex.
    NotOwner,
    /// Any other errno (for example `EINVAL` on a scribbled-over mutex).
    Os(i32),
}

/// A robust process-shared mutex. Only [`RobustMutex::init`] makes one.
#[repr(C)]
pub(crate) struct RobustMutex {
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: a pthread mutex is designed to be used from many threads at once; all
// access goes through pthread functions that synchronize internally.
unsafe impl Sync for RobustMutex {}
// SAFETY: the mutex holds no thread-local state; ownership is tracked in the word.
unsafe impl Send for RobustMutex {}

impl std::fmt::Debug for RobustMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobustMutex").finish_non_exhaustive()
    }
}

fn decode(rc: libc::c_int) -> Result<Acquired, MutexError> {
    match rc {
        0 => Ok(Acquired::Clean),
        libc::EOWNERDEAD => Ok(Acquired::OwnerDied),
        libc::EBUSY => Err(MutexError::WouldBlock),
        libc::ETIMEDOUT => Err(MutexError::TimedOut),
        libc::ENOTRECOVERABLE => Err(MutexError::NotRecoverable),
        libc::EPERM => Err(MutexError::NotOwner),
        e => Err(MutexError::Os(e)),
    }
}

impl RobustMutex {
    /// Initializes a robust, process-shared, NORMAL mutex in place.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes of `size_of::<RobustMutex>()` bytes, suitably
    /// aligned, and no thread in any process may use the mutex during the call.
    pub(crate) unsafe fn init(this: *mut RobustMutex) -> io::Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is writable storage for an attribute object.
        let rc = unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let attr_ptr = attr.as_mut_ptr();
        let set = || -> libc::c_int {
            // SAFETY: `attr_ptr` was initialized by pthread_mutexattr_init above.
            let rc = unsafe {
                libc::pthread_mutexattr_setpshared(attr_ptr, libc::PTHREAD_PROCESS_SHARED)
            };
            if rc != 0 {
                return rc;
            }
            // SAFETY: as above.
            let rc =
                unsafe { libc::pthread_mutexattr_setrobust(attr_ptr, libc::PTHREAD_MUTEX_ROBUST) };
            if rc != 0 {
                return rc;
            }
            // SAFETY: as above.
            unsafe { libc::pthread_mutexattr_settype(attr_ptr, libc::PTHREAD_MUTEX_NORMAL) }
        };
        let mut rc = set();
        if rc == 0 {
            // SAFETY: the caller guarantees `this` is valid, aligned and unused; the
            // attribute object is initialized. `UnsafeCell<T>` has `T`'s layout.
            rc =
                unsafe { libc::pthread_mutex_init(this.cast::<libc::pthread_mutex_t>(), attr_ptr) };
        }
        // SAFETY: `attr_ptr` is initialized and destroyed exactly once.
        unsafe { libc::pthread_mutexattr_destroy(attr_ptr) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.inner.get()
    }

    /// Blocks until the mutex is acquired.
    pub(crate) fn lock(&self) -> Result<Acquired, MutexError> {
        // SAFETY: `self` was initialized by `init` (the only constructor) and lives in
        // memory that stays mapped while `&self` exists.
        decode(unsafe { libc::pthread_mutex_lock(self.raw()) })
    }

    /// Acquires the mutex if it is free.
    pub(crate) fn try_lock(&self) -> Result<Acquired, MutexError> {
        // SAFETY: as in `lock`.
        decode(unsafe { libc::pthread_mutex_trylock(self.raw()) })
    }

    /// Blocks until the mutex is acquired or `deadline` (monotonic) passes.
    pub(crate) fn lock_until(&self, deadline: Deadline) -> Result<Acquired, MutexError> {
        let ts = deadline.timespec();
        loop {
            // SAFETY: as in `lock`; `ts` outlives the call.
            let rc = unsafe { pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &ts) };
            // glibc never returns EINTR here, but be explicit: the deadline is
            // absolute, so retrying cannot stretch it.
            if rc != libc::EINTR {
                return decode(rc);
            }
        }
    }

    /// Releases the mutex. Fails with `NotOwner` when the caller does not hold it.
    pub(crate) fn unlock(&self) -> Result<(), MutexError> {
        // SAFETY: as in `lock`. A robust mutex checks ownership and returns EPERM
        // instead of corrupting its state when the caller is not the owner.
        decode(unsafe { libc::pthread_mutex_unlock(self.raw()) }).map(|_| ())
    }

    /// Marks a mutex acquired with [`Acquired::OwnerDied`] as consistent again.
    pub(crate) fn consistent(&self) -> Result<(), MutexError> {
        // SAFETY: as in `lock`; glibc checks that the caller owns the mutex.
        let rc = unsafe { libc::pthread_mutex_consistent(self.raw()) };
        match rc {
            0 => Ok(()),
            libc::EINVAL => Err(MutexError::NotOwner),
            e => decode(e).map(|_| ()),
        }
    }
}
