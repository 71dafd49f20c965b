//! `RLock`: a re-entrant robust lock.
//!
//! The word is the same robust word as [`super::Lock`]'s ([`super::robust`]), and
//! beside it live the owner's thread token (random per thread, renewed in forked
//! children; kernel TIDs would repeat across PID namespaces) and a recursion count.
//!
//! | field | written by | read by |
//! |---|---|---|
//! | `owner` | the holder, right after acquiring the mutex and right before releasing it | any thread, to ask "is it me?" |
//! | `count` | the holder only | the holder only |
//!
//! A thread that reads its own token in `owner` must have stored it itself (tokens
//! are unique), so the check needs no ordering: Relaxed throughout, the mutex
//! orders the rest.

use super::lock::{How, ReleaseError};
use super::robust::{Acquired, MutexError, Owners, RobustCore};
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::loom::thread_token;
use crate::park::WaitPolicy;

/// The re-entrant lock's shared state.
#[repr(C)]
#[derive(Debug)]
pub struct RawRLock {
    core: RobustCore,
    owner: AtomicU64,
    count: AtomicU32,
}

impl RawRLock {
    /// A fresh lock (loom: built on the heap).
    #[cfg(loom)]
    pub fn new() -> RawRLock {
        RawRLock {
            core: RobustCore::new(),
            owner: AtomicU64::new(0),
            count: AtomicU32::new(0),
        }
    }

    /// Writes a fresh lock in place.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes, aligned, and unused by anyone.
    #[cfg(not(loom))]
    pub(crate) unsafe fn init(this: *mut RawRLock) -> std::io::Result<()> {
        // SAFETY: the caller guarantees `this` is valid, aligned and unused.
        unsafe {
            std::ptr::addr_of_mut!((*this).owner).write(AtomicU64::new(0));
            std::ptr::addr_of_mut!((*this).count).write(AtomicU32::new(0));
            RobustCore::init(std::ptr::addr_of_mut!((*this).core));
        }
        Ok(())
    }

    /// Acquires, or re-enters if the calling thread holds the lock already.
    #[cfg_attr(
        not(loom),
        expect(dead_code, reason = "the handles pass a policy; loom models use this")
    )]
    pub fn acquire(
        &self,
        how: How,
        owners: &(impl Owners + ?Sized),
    ) -> Result<Acquired, MutexError> {
        self.acquire_with(how, WaitPolicy::default(), owners)
    }

    /// [`RawRLock::acquire`], waiting by `policy` when contended.
    pub fn acquire_with(
        &self,
        how: How,
        policy: WaitPolicy,
        owners: &(impl Owners + ?Sized),
    ) -> Result<Acquired, MutexError> {
        let me = thread_token();
        if self.owner.load(Ordering::Relaxed) == me {
            let c = self.count.load(Ordering::Relaxed);
            // Re-entering u32::MAX times is a caller bug; refuse rather than wrap
            // (reported as "held": the caller cannot take it once more).
            let next = c.checked_add(1).ok_or(MutexError::WouldBlock)?;
            self.count.store(next, Ordering::Relaxed);
            return Ok(Acquired::Clean);
        }
        let r = self.core.acquire_with(how, policy, owners)?;
        // After an owner death `owner`/`count` hold the dead thread's values:
        // overwrite both.
        self.owner.store(me, Ordering::Relaxed);
        self.count.store(1, Ordering::Relaxed);
        Ok(r)
    }

    /// Releases one level; the mutex is unlocked when the count reaches zero.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if self.owner.load(Ordering::Relaxed) != thread_token() {
            return Err(ReleaseError::NotOwner);
        }
        let c = self.count.load(Ordering::Relaxed);
        if c > 1 {
            self.count.store(c - 1, Ordering::Relaxed);
            return Ok(());
        }
        self.count.store(0, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        self.core.release();
        Ok(())
    }

    /// Marks the lock consistent after an `OwnerDied` acquire.
    pub fn mark_consistent(&self) -> Result<(), ReleaseError> {
        if self.owner.load(Ordering::Relaxed) != thread_token() {
            return Err(ReleaseError::NotOwner);
        }
        self.core.consistent()
    }

    /// Recursion depth if the calling thread holds the lock, else 0.
    pub fn depth(&self) -> u32 {
        if self.owner.load(Ordering::Relaxed) == thread_token() {
            self.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Loom only: the calling thread dies holding the lock.
    #[cfg(loom)]
    pub fn simulate_owner_death(&self) {
        self.core.simulate_owner_death();
    }
}

#[cfg(loom)]
impl Default for RawRLock {
    fn default() -> Self {
        RawRLock::new()
    }
}

#[cfg(not(loom))]
pub use handle::{RLock, RLockGuard};

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::marker::PhantomData;
    use std::time::Duration;

    use super::{How, RawRLock, ReleaseError};
    use crate::Error;
    use crate::loom::Deadline;
    use crate::park::WaitPolicy;
    use crate::region::{Object, Region, RegionOptions, SharedObject};
    use crate::sync::lock::{LockError, lock_error};
    use crate::sync::robust::{Acquired, MutexError};

    // SAFETY: repr(C), a robust mutex and two atomics, no pointers.
    unsafe impl SharedObject for RawRLock {
        const KIND: &'static str = "RLock";
        type Params = ();

        unsafe fn init(this: *mut Self, _: &()) -> Result<(), Error> {
            // SAFETY: forwarded from the caller's guarantee.
            Ok(unsafe { RawRLock::init(this) }?)
        }
    }

    /// A re-entrant robust lock shared between processes, like Python's
    /// `multiprocessing.RLock`: the thread holding it may acquire it again, and
    /// must release it as many times.
    ///
    /// Use the RAII [`RLock::lock`] or the Python-style [`RLock::acquire`] /
    /// [`RLock::release`] pair; a release by a thread that does not hold the lock
    /// is refused with [`ReleaseError::NotOwner`].
    ///
    /// ```
    /// use multiproc::RLock;
    ///
    /// let rlock = RLock::anonymous()?;
    /// let outer = rlock.lock().expect("fresh lock");
    /// let inner = rlock.lock().expect("re-entry");
    /// assert_eq!(rlock.depth(), 2);
    /// drop(inner);
    /// drop(outer);
    /// assert_eq!(rlock.release(), Err(multiproc::ReleaseError::NotOwner));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct RLock {
        obj: Object<RawRLock>,
        policy: WaitPolicy,
    }

    impl fmt::Debug for RLock {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RLock")
                .field("region", self.obj.region())
                .field("policy", &self.policy)
                .finish()
        }
    }

    /// One level of an [`RLock`]; released on drop. Not `Send`.
    #[must_use = "the level is released as soon as the guard is dropped"]
    pub struct RLockGuard<'a> {
        raw: &'a RawRLock,
        inconsistent: bool,
        _not_send: PhantomData<*const ()>,
    }

    impl fmt::Debug for RLockGuard<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RLockGuard")
                .field("consistent", &!self.inconsistent)
                .finish()
        }
    }

    impl RLockGuard<'_> {
        /// Declares the protected state repaired after [`LockError::OwnerDied`].
        pub fn mark_consistent(&mut self) {
            if self.inconsistent && self.raw.mark_consistent().is_ok() {
                self.inconsistent = false;
            }
        }

        /// `false` while an owner-died guard is not yet marked consistent.
        pub fn is_consistent(&self) -> bool {
            !self.inconsistent
        }
    }

    impl Drop for RLockGuard<'_> {
        fn drop(&mut self) {
            let _ = self.raw.release();
        }
    }

    fn guard(
        raw: &RawRLock,
        r: Result<Acquired, MutexError>,
    ) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        let g = |inconsistent| RLockGuard {
            raw,
            inconsistent,
            _not_send: PhantomData,
        };
        match r {
            Ok(Acquired::Clean) => Ok(g(false)),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(g(true))),
            Err(e) => Err(lock_error(e)),
        }
    }

    fn unit(r: Result<Acquired, MutexError>) -> Result<(), LockError<()>> {
        match r {
            Ok(Acquired::Clean) => Ok(()),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(())),
            Err(e) => Err(lock_error(e)),
        }
    }

    impl RLock {
        /// Wraps an object placed by the manager.
        pub(crate) fn from_object(obj: Object<RawRLock>) -> RLock {
            RLock {
                obj,
                policy: WaitPolicy::default(),
            }
        }

        /// Sets how a contended acquire through this handle waits (see
        /// [`WaitPolicy`]); clones made afterwards inherit it.
        ///
        /// ```
        /// use multiproc::{RLock, WaitPolicy};
        /// let lock = RLock::anonymous()?.with_wait_policy(WaitPolicy::Park);
        /// assert_eq!(lock.wait_policy(), WaitPolicy::Park);
        /// # Ok::<(), multiproc::Error>(())
        /// ```
        pub fn with_wait_policy(mut self, policy: WaitPolicy) -> RLock {
            self.policy = policy;
            self
        }

        /// The [`WaitPolicy`] of this handle's contended acquires.
        pub fn wait_policy(&self) -> WaitPolicy {
            self.policy
        }

        /// A new re-entrant lock in an anonymous shared mapping.
        pub fn anonymous() -> Result<RLock, Error> {
            Ok(RLock::from_object(Region::create_object(
                None,
                RegionOptions::default(),
                &(),
            )?))
        }

        /// Creates a re-entrant lock under `name`; fails if the name exists.
        pub fn create(name: &str) -> Result<RLock, Error> {
            RLock::create_with(name, RegionOptions::default())
        }

        /// [`RLock::create`] with explicit region options.
        pub fn create_with(name: &str, opts: RegionOptions) -> Result<RLock, Error> {
            Ok(RLock::from_object(Region::create_object(
                Some(name),
                opts,
                &(),
            )?))
        }

        /// Opens the re-entrant lock `name`.
        pub fn open(name: &str) -> Result<RLock, Error> {
            Ok(RLock::from_object(Region::open_object(name)?))
        }

        /// `open` with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<RLock, Error> {
            Ok(RLock::from_object(Region::open_object_with(name, opts)?))
        }

        /// Opens the re-entrant lock `name`, creating it if the name does not
        /// exist; race-free between concurrent starters (see
        /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
        pub fn open_or_create(name: &str) -> Result<RLock, Error> {
            RLock::open_or_create_with(name, RegionOptions::default())
        }

        /// [`RLock::open_or_create`] with region options (creation and trust).
        pub fn open_or_create_with(name: &str, opts: RegionOptions) -> Result<RLock, Error> {
            Ok(RLock::from_object(Region::open_or_create_object(
                name,
                opts,
                &(),
            )?))
        }

        /// Blocks until acquired (immediately if this thread holds it already).
        /// As with [`Lock::lock`](crate::Lock::lock), the error carries the
        /// guard: `.map_err(|e| e.without_guard())?` passes it up into a
        /// `'static` error such as `Box<dyn Error>`.
        pub fn lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
            self.acquire_guard(How::Block)
        }

        /// Acquires if free or already held by this thread.
        pub fn try_lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
            self.acquire_guard(How::Try)
        }

        fn acquire_guard(&self, how: How) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
            let raw = self.obj.get();
            guard(raw, raw.acquire_with(how, self.policy, self.obj.region()))
        }

        /// Blocks until acquired or `timeout` passes.
        pub fn lock_timeout(
            &self,
            timeout: Duration,
        ) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
            self.acquire_guard(How::Until(Deadline::after(timeout)))
        }

        /// Python-style acquire without a guard; pair it with [`RLock::release`].
        /// After `Err(LockError::OwnerDied(()))` the lock is held: repair, then
        /// call [`RLock::mark_consistent`].
        pub fn acquire(&self) -> Result<(), LockError<()>> {
            unit(
                self.obj
                    .get()
                    .acquire_with(How::Block, self.policy, self.obj.region()),
            )
        }

        /// Python-style acquire with a timeout.
        pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), LockError<()>> {
            let how = How::Until(Deadline::after(timeout));
            unit(
                self.obj
                    .get()
                    .acquire_with(how, self.policy, self.obj.region()),
            )
        }

        /// Releases one level acquired with [`RLock::acquire`]. Refused with
        /// [`ReleaseError::NotOwner`] (nothing changes) when the calling thread
        /// does not hold the lock.
        pub fn release(&self) -> Result<(), ReleaseError> {
            self.obj.get().release()
        }

        /// Marks the lock consistent after an owner-died [`RLock::acquire`].
        pub fn mark_consistent(&self) -> Result<(), ReleaseError> {
            self.obj.get().mark_consistent()
        }

        /// The calling thread's recursion depth (0 if it does not hold the lock).
        pub fn depth(&self) -> u32 {
            self.obj.get().depth()
        }

        /// The region holding the lock.
        pub fn region(&self) -> &Region {
            self.obj.region()
        }
    }
}
