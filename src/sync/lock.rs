//! `Lock`: a robust, process-shared mutual-exclusion lock.
//!
//! The lock word is the crate's own robust word ([`super::robust`]): the owner's
//! participant token, found dead through the region's participant table and the
//! kernel's death notice on the owner's beacon. A holder that died hands the lock
//! to the next acquirer as [`LockError::OwnerDied`], carrying a guard. The guard's
//! [`LockGuard::mark_consistent`] makes the lock usable again; dropping the guard
//! without it makes the lock [`LockError::NotRecoverable`] for everyone, which is
//! what a lock protecting data nobody repaired should do.
//!
//! Beside the word the crate keeps the owner's thread token (random per thread, so
//! PID-namespace proof), which lets a [`super::Condition`] refuse `notify` from a
//! non-owner. Uncontended lock + unlock is one CAS and one swap plus two relaxed
//! stores.

use super::robust::{Acquired, MutexError, Owners, RobustCore};
use crate::loom::atomic::{AtomicU64, Ordering};
use crate::loom::{Deadline, thread_token};
use crate::park::WaitPolicy;

/// Why an acquire did not give a plain guard. `G` is the guard type: the
/// `OwnerDied` variant carries it, because the lock *was* acquired.
#[derive(Debug, thiserror::Error)]
pub enum LockError<G> {
    /// The previous holder died while holding the lock. The caller now holds it
    /// through the guard; the protected data may be half-updated. Repair it, then
    /// call `mark_consistent` on the guard, or drop the guard to make the lock
    /// permanently unusable ([`LockError::NotRecoverable`]).
    #[error("the previous owner died holding the lock")]
    OwnerDied(G),
    /// A holder died and its successor released the lock without marking it
    /// consistent: the lock can never be acquired again.
    #[error("the lock is not recoverable: a previous owner died and nobody marked it consistent")]
    NotRecoverable,
    /// `try_lock`: the lock is held (by another thread or process, or by
    /// the caller: a `Lock` is not reentrant, use an `RLock` for that).
    #[error("the lock is already held")]
    WouldBlock,
    /// `lock_timeout`: the timeout passed first.
    #[error("timed out waiting for the lock")]
    Timeout,
    /// This process could not join the region's participant table (it is full),
    /// so it cannot hold the lock. Raise `RegionOptions::participants`.
    #[error("no participant slot left in the region: this process cannot own the lock")]
    NoParticipantSlot,
    /// `Condition::wait` was given a guard of another lock; it is handed back
    /// untouched. A guard belongs to the mapping it locked: a second `open` of
    /// the same name in one process maps the object again, and the guards of
    /// one handle are foreign to the other's waits (clone a handle instead of
    /// opening the name twice). A guard a forked child inherited from its
    /// parent is foreign too: it holds nothing in the child (see
    /// [`LockGuard`](crate::LockGuard)).
    #[error("the guard belongs to another lock")]
    WrongLock(G),
}

impl<G> LockError<G> {
    /// Maps the carried guard, keeping every other variant.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::NotRecoverable => LockError::NotRecoverable,
            LockError::WouldBlock => LockError::WouldBlock,
            LockError::Timeout => LockError::Timeout,
            LockError::NoParticipantSlot => LockError::NoParticipantSlot,
            LockError::WrongLock(g) => LockError::WrongLock(f(g)),
        }
    }

    /// Drops the guard (if any), for propagating with `?` into an error type
    /// that must be `'static`, such as `Box<dyn Error>`. Dropping an
    /// [`LockError::OwnerDied`] guard without repair makes the lock
    /// not recoverable, which is the right outcome for an error nobody handled.
    ///
    /// ```
    /// fn work(lock: &multiproc::Lock) -> Result<(), Box<dyn std::error::Error>> {
    ///     let _guard = lock.lock().map_err(|e| e.without_guard())?;
    ///     Ok(())
    /// }
    /// work(&multiproc::Lock::anonymous()?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn without_guard(self) -> LockError<()> {
        self.map(drop)
    }

    /// The guard if the lock was acquired after its owner died.
    pub fn into_owner_died(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }
}

/// Why a release, notify or repair was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The calling thread does not hold the lock.
    #[error("the calling thread does not own the lock")]
    NotOwner,
    /// `BoundedSemaphore::release` would raise the value above its initial value.
    #[error("released more times than acquired: the value would exceed the bound")]
    AboveBound,
    /// The value would overflow its counter.
    #[error("the value would overflow")]
    Overflow,
    /// The lock was acquired cleanly: there is nothing to mark consistent.
    #[error("the lock is already consistent")]
    AlreadyConsistent,
}

#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn lock_error<G>(e: MutexError) -> LockError<G> {
    match e {
        MutexError::WouldBlock => LockError::WouldBlock,
        MutexError::TimedOut => LockError::Timeout,
        MutexError::NotRecoverable => LockError::NotRecoverable,
        MutexError::NoIdentity => LockError::NoParticipantSlot,
    }
}

/// How to acquire.
#[derive(Clone, Copy, Debug)]
pub enum How {
    /// Wait as long as it takes.
    Block,
    /// Do not wait.
    Try,
    /// Wait until the deadline.
    Until(Deadline),
}

/// The lock's shared state: the robust core and the owner token.
#[repr(C)]
#[derive(Debug)]
pub struct RawLock {
    core: RobustCore,
    /// Token of the holding thread, 0 when free. Written only by the holder while
    /// it holds the mutex; read by the holder (to check ownership). Relaxed
    /// everywhere: a thread can only ever read back its own token as "mine" if it
    /// stored it itself (program order), and the mutex orders everything else.
    owner: AtomicU64,
}

impl RawLock {
    /// A fresh lock (loom: built on the heap).
    #[cfg(loom)]
    pub fn new() -> RawLock {
        RawLock {
            core: RobustCore::new(),
            owner: AtomicU64::new(0),
        }
    }

    /// Writes a fresh lock in place.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes, aligned, and unused by anyone.
    #[cfg(not(loom))]
    pub(crate) unsafe fn init(this: *mut RawLock) -> std::io::Result<()> {
        // SAFETY: the caller guarantees `this` is valid, aligned and unused.
        unsafe {
            std::ptr::addr_of_mut!((*this).owner).write(AtomicU64::new(0));
            RobustCore::init(std::ptr::addr_of_mut!((*this).core));
        }
        Ok(())
    }

    /// Acquires as a member of `owners` (the region's participant table).
    /// `Ok(Acquired::OwnerDied)` means the caller holds the lock and the previous
    /// owner died.
    #[inline]
    pub fn acquire(
        &self,
        how: How,
        owners: &(impl Owners + ?Sized),
    ) -> Result<Acquired, MutexError> {
        self.acquire_with(how, WaitPolicy::default(), owners)
    }

    /// [`RawLock::acquire`], waiting by `policy` when contended.
    #[inline]
    pub fn acquire_with(
        &self,
        how: How,
        policy: WaitPolicy,
        owners: &(impl Owners + ?Sized),
    ) -> Result<Acquired, MutexError> {
        let r = self.core.acquire_with(how, policy, owners)?;
        self.owner.store(thread_token(), Ordering::Relaxed);
        Ok(r)
    }

    /// Releases; `NotOwner` if the calling thread does not hold it.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        if !self.is_owned_by_me() {
            return Err(ReleaseError::NotOwner);
        }
        self.release_held();
        Ok(())
    }

    /// Releases a lock the caller is known to hold (a guard proves it).
    #[inline]
    pub(crate) fn release_held(&self) {
        self.owner.store(0, Ordering::Relaxed);
        self.core.release();
    }

    /// Marks the state consistent after an `OwnerDied` acquire.
    pub fn mark_consistent(&self) -> Result<(), ReleaseError> {
        if !self.is_owned_by_me() {
            return Err(ReleaseError::NotOwner);
        }
        self.core.consistent()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned_by_me(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_token()
    }

    /// Loom only: the calling thread "dies" holding the lock (the kernel's exit
    /// hook marks it owner-died and wakes one waiter).
    #[cfg(loom)]
    pub fn simulate_owner_death(&self) {
        // A dead process's token stays in the word, harmlessly, since tokens are
        // unique per thread. Models let the "dead" thread go on as another
        // process, so it must not keep recognising the lock as its own.
        self.owner.store(0, Ordering::Relaxed);
        self.core.simulate_owner_death();
    }
}

/// A [`RawLock`] held by crate-internal code; released on drop.
pub(crate) struct Held<'a>(&'a RawLock);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // `Held`'s existence proves this thread holds the lock.
        self.0.release_held();
    }
}

impl RawLock {
    /// Blocks until acquired. If the previous holder died, runs `repair` while
    /// holding the lock and marks it consistent, so the caller always holds a
    /// consistent lock. For state whose repair the crate itself knows how to do
    /// (journals), where no user decision is needed.
    pub(crate) fn lock_repairing(
        &self,
        owners: &(impl Owners + ?Sized),
        repair: impl FnOnce(),
    ) -> Result<Held<'_>, MutexError> {
        let acquired = self.acquire(How::Block, owners)?;
        let held = Held(self);
        if acquired == Acquired::OwnerDied {
            repair();
            // Cannot fail: we hold the lock and it is inconsistent.
            let _ = self.mark_consistent();
        }
        Ok(held)
    }
}

#[cfg(loom)]
impl Default for RawLock {
    fn default() -> Self {
        RawLock::new()
    }
}

#[cfg(not(loom))]
pub use handle::{Lock, LockGuard};

#[cfg(not(loom))]
pub(crate) mod handle {
    use std::fmt;
    use std::marker::PhantomData;
    use std::time::Duration;

    use super::{How, LockError, RawLock, lock_error};
    use crate::Error;
    use crate::loom::Deadline;
    use crate::park::WaitPolicy;
    use crate::region::{Object, Region, RegionOptions, SharedObject};
    use crate::sync::Origin;
    use crate::sync::robust::Acquired;

    // SAFETY: RawLock is repr(C), holds only atomics, no pointers;
    // the default `check` ensures the payload is large enough.
    unsafe impl SharedObject for RawLock {
        const KIND: &'static str = "Lock";
        type Params = ();

        unsafe fn init(this: *mut Self, _: &()) -> Result<(), Error> {
            // SAFETY: forwarded from the caller's guarantee.
            Ok(unsafe { RawLock::init(this) }?)
        }
    }

    /// A robust mutual-exclusion lock shared between processes, like Python's
    /// `multiprocessing.Lock`.
    ///
    /// Not re-entrant: locking twice from one thread deadlocks (use [`crate::RLock`]).
    /// Cloning the handle shares the same lock.
    ///
    /// ```
    /// use multiproc::Lock;
    ///
    /// let lock = Lock::anonymous()?;
    /// {
    ///     let _guard = lock.lock().expect("fresh lock");
    ///     assert!(lock.try_lock().is_err());
    /// }
    /// assert!(lock.try_lock().is_ok());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Lock {
        obj: Object<RawLock>,
        policy: WaitPolicy,
    }

    impl fmt::Debug for Lock {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Lock")
                .field("region", self.obj.region())
                .field("policy", &self.policy)
                .finish()
        }
    }

    /// Proof that the lock is held; releases it on drop. Not `Send`: the lock
    /// records the acquiring thread, which alone may release it.
    ///
    /// Nor does a guard move into a forked child. Captured by a
    /// [`fork`](crate::process::fork) closure, it is released when `fork`
    /// returns, by the parent's copy of the closure being dropped; the child's
    /// copy holds nothing and its drop does nothing. A child that needs the lock
    /// takes it itself:
    ///
    /// ```no_run
    /// let lock = multiproc::Lock::anonymous()?;
    /// let child = multiproc::process::fork(|| match lock.lock() {
    ///     Ok(_held) => 0,
    ///     Err(_) => 1,
    /// })?;
    /// child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "the lock is released as soon as the guard is dropped"]
    pub struct LockGuard<'a> {
        raw: &'a RawLock,
        inconsistent: bool,
        origin: Origin,
        _not_send: PhantomData<*const ()>,
    }

    impl fmt::Debug for LockGuard<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("LockGuard")
                .field("consistent", &!self.inconsistent)
                .finish()
        }
    }

    impl<'a> LockGuard<'a> {
        pub(crate) fn new(raw: &'a RawLock, acquired: Acquired) -> LockGuard<'a> {
            LockGuard {
                raw,
                inconsistent: acquired == Acquired::OwnerDied,
                origin: Origin::here(),
                _not_send: PhantomData,
            }
        }

        pub(crate) fn raw(&self) -> &'a RawLock {
            self.raw
        }

        /// Declares the protected state repaired after [`LockError::OwnerDied`]: the
        /// lock stays usable after this guard drops. A no-op on a clean guard.
        pub fn mark_consistent(&mut self) {
            if self.inconsistent && self.raw.mark_consistent().is_ok() {
                self.inconsistent = false;
            }
        }

        /// `false` while a guard from [`LockError::OwnerDied`] is not yet marked.
        pub fn is_consistent(&self) -> bool {
            !self.inconsistent
        }

        /// Whether this guard is a copy a forked child inherited (it holds
        /// nothing there: see the guard's docs).
        pub(crate) fn inherited(&self) -> bool {
            !self.origin.is_here()
        }

        /// Releases the lock without running drop glue twice; used by `Condition`.
        pub(crate) fn forget_release(self) -> bool {
            let inconsistent = self.inconsistent;
            std::mem::forget(self);
            inconsistent
        }
    }

    impl Drop for LockGuard<'_> {
        fn drop(&mut self) {
            // In the process that made it, the guard's existence proves this
            // thread holds the lock (it is not `Send`). A copy inherited through
            // `fork` proves nothing: its parent released (`Origin`).
            if self.origin.is_here() {
                self.raw.release_held();
            }
        }
    }

    #[inline]
    pub(crate) fn guard_result(
        raw: &RawLock,
        r: Result<Acquired, crate::sync::robust::MutexError>,
    ) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        match r {
            Ok(Acquired::Clean) => Ok(LockGuard::new(raw, Acquired::Clean)),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(LockGuard::new(
                raw,
                Acquired::OwnerDied,
            ))),
            Err(e) => Err(lock_error(e)),
        }
    }

    impl Lock {
        /// Wraps an object placed by the manager.
        pub(crate) fn from_object(obj: Object<RawLock>) -> Lock {
            Lock {
                obj,
                policy: WaitPolicy::default(),
            }
        }

        /// Sets how a contended acquire through this handle waits (see
        /// [`WaitPolicy`]); clones made afterwards inherit it.
        ///
        /// ```
        /// use multiproc::{Lock, WaitPolicy};
        /// let lock = Lock::anonymous()?.with_wait_policy(WaitPolicy::Park);
        /// assert_eq!(lock.wait_policy(), WaitPolicy::Park);
        /// # Ok::<(), multiproc::Error>(())
        /// ```
        pub fn with_wait_policy(mut self, policy: WaitPolicy) -> Lock {
            self.policy = policy;
            self
        }

        /// The [`WaitPolicy`] of this handle's contended acquires.
        pub fn wait_policy(&self) -> WaitPolicy {
            self.policy
        }

        /// A new lock in an anonymous shared mapping, inherited by forked children.
        pub fn anonymous() -> Result<Lock, Error> {
            Ok(Lock::from_object(Region::create_object(
                None,
                RegionOptions::default(),
                &(),
            )?))
        }

        /// Creates a lock under `name` (for example `"/app-lock"`), failing with
        /// [`Error::AlreadyExists`] if the name is taken. Mode 0600.
        pub fn create(name: &str) -> Result<Lock, Error> {
            Lock::create_with(name, RegionOptions::default())
        }

        /// [`Lock::create`] with explicit region options (mode, participants).
        pub fn create_with(name: &str, opts: RegionOptions) -> Result<Lock, Error> {
            Ok(Lock::from_object(Region::create_object(
                Some(name),
                opts,
                &(),
            )?))
        }

        /// Opens the lock `name` created by any process.
        pub fn open(name: &str) -> Result<Lock, Error> {
            Ok(Lock::from_object(Region::open_object(name)?))
        }

        /// `open` with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<Lock, Error> {
            Ok(Lock::from_object(Region::open_object_with(name, opts)?))
        }

        /// Opens the lock `name`, creating it if the name does not exist;
        /// race-free between concurrent starters (see
        /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
        pub fn open_or_create(name: &str) -> Result<Lock, Error> {
            Lock::open_or_create_with(name, RegionOptions::default())
        }

        /// [`Lock::open_or_create`] with region options (creation and trust).
        pub fn open_or_create_with(name: &str, opts: RegionOptions) -> Result<Lock, Error> {
            Ok(Lock::from_object(Region::open_or_create_object(
                name,
                opts,
                &(),
            )?))
        }

        /// Blocks until the lock is acquired.
        ///
        /// The error carries the guard when the previous holder died
        /// ([`LockError::OwnerDied`]), so it borrows the lock: to pass it up
        /// with `?` into a `'static` error such as `Box<dyn Error>`, drop the
        /// guard first with [`LockError::without_guard`].
        ///
        /// ```
        /// fn work(lock: &multiproc::Lock) -> Result<(), Box<dyn std::error::Error>> {
        ///     let _guard = lock.lock().map_err(|e| e.without_guard())?;
        ///     Ok(())
        /// }
        /// work(&multiproc::Lock::anonymous()?)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[inline]
        pub fn lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
            let raw = self.obj.get();
            guard_result(
                raw,
                raw.acquire_with(How::Block, self.policy, self.obj.region()),
            )
        }

        /// Acquires the lock if it is free; [`LockError::WouldBlock`] otherwise.
        pub fn try_lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
            let raw = self.obj.get();
            guard_result(
                raw,
                raw.acquire_with(How::Try, self.policy, self.obj.region()),
            )
        }

        /// Blocks until the lock is acquired or `timeout` passes
        /// ([`LockError::Timeout`]). Uses `CLOCK_MONOTONIC`.
        pub fn lock_timeout(
            &self,
            timeout: Duration,
        ) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
            let raw = self.obj.get();
            let how = How::Until(Deadline::after(timeout));
            guard_result(raw, raw.acquire_with(how, self.policy, self.obj.region()))
        }

        /// The region holding the lock.
        pub fn region(&self) -> &Region {
            self.obj.region()
        }
    }
}
