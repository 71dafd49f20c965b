//! `Condition`: a condition variable with its own robust lock, on a sequence word.
//!
//! Not `pthread_cond_t`: a waiter killed inside glibc's condvar protocol can block
//! signallers forever. Here the state is the condition's [`super::lock::RawLock`]
//! plus two words that are only modified while holding that lock:
//!
//! | field | meaning |
//! |---|---|
//! | `seq` | futex word, bumped by every notify that finds waiters |
//! | `waiters` | threads between "registered in `wait`" and "re-acquired the lock"; a hint (a dead waiter leaves it one too high, which costs an extra wake, never a lost one) |
//! | `sleepers` | waiters about to enter or inside `FUTEX_WAIT` (same hint rules) |
//!
//! `wait` registers and reads `seq` under the lock, releases it, spins briefly
//! for `seq` to change, then sleeps while `seq` is unchanged; a notify after the
//! release changes `seq` before waking, so the kernel's compare-and-sleep makes a
//! lost wake-up impossible. `notify` with `waiters == 0` does nothing, and with
//! only spinning waiters (`sleepers == 0`) makes no syscall: a waiter increments
//! `sleepers` and then re-reads `seq` before sleeping, a notifier bumps `seq` and
//! then reads `sleepers`, all with read-modify-writes, so at least one of them
//! sees the other (the waiter then skips the sleep, or the notifier wakes it). Spurious wake-ups are possible (as with every
//! condition variable); loop on your predicate or use `wait_while`.

use super::lock::{How, RawLock, ReleaseError};
use super::robust::{Acquired, MutexError, Owners};
use crate::loom::atomic::{AtomicU32, Ordering};
use crate::loom::hint::spin_wait;
use crate::loom::{Deadline, WaitResult, futex};

/// The condition's shared state.
#[repr(C)]
#[derive(Debug)]
pub struct RawCondition {
    lock: RawLock,
    /// Relaxed everywhere: written only under `lock`, whose acquire/release order
    /// it for lock holders; sleepers compare it in the kernel.
    seq: AtomicU32,
    waiters: AtomicU32,
    /// Waiters committed to `FUTEX_WAIT`; changed by waiters outside the lock
    /// (RMWs only: the Dekker pairing with `notify` in the module doc).
    sleepers: AtomicU32,
}

impl RawCondition {
    /// A fresh condition (loom: built on the heap).
    #[cfg(loom)]
    pub fn new() -> RawCondition {
        RawCondition {
            lock: RawLock::new(),
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Writes a fresh condition in place.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes, aligned, and unused by anyone.
    #[cfg(not(loom))]
    pub(crate) unsafe fn init(this: *mut RawCondition) -> std::io::Result<()> {
        // SAFETY: the caller guarantees `this` is valid, aligned and unused.
        unsafe {
            std::ptr::addr_of_mut!((*this).seq).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this).waiters).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this).sleepers).write(AtomicU32::new(0));
            RawLock::init(std::ptr::addr_of_mut!((*this).lock))
        }
    }

    /// The condition's lock.
    pub fn lock(&self) -> &RawLock {
        &self.lock
    }

    /// Releases the lock (held by the caller), sleeps until notified or
    /// `deadline`, and re-acquires the lock. Returns the re-acquire result and
    /// whether a notification (or a spurious wake-up) ended the sleep, rather than
    /// the deadline.
    pub fn wait(
        &self,
        deadline: Option<Deadline>,
        slice: std::time::Duration,
        owners: &(impl Owners + ?Sized),
    ) -> Result<(Result<Acquired, MutexError>, bool), ReleaseError> {
        if !self.lock.is_owned_by_me() {
            return Err(ReleaseError::NotOwner);
        }
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let seq = self.seq.load(Ordering::Relaxed);
        self.lock.release()?;
        // A notify usually follows quickly (the notifier is running): spin on
        // `seq` first, so the common hand-off costs no sleep and wake-up.
        let notified = spin_wait(|| self.seq.load(Ordering::Relaxed) != seq)
            || loop {
                let until = deadline
                    .unwrap_or_else(|| Deadline::after(slice))
                    .min_after(slice);
                // SYNC(sleepers): RMW, then an RMW read of `seq` (see `notify`).
                self.sleepers.fetch_add(1, Ordering::AcqRel);
                let r = if self.seq.fetch_add(0, Ordering::AcqRel) == seq {
                    futex::wait(&self.seq, seq, Some(until))
                } else {
                    WaitResult::Changed
                };
                self.sleepers.fetch_sub(1, Ordering::Relaxed);
                if self.seq.load(Ordering::Relaxed) != seq || r == WaitResult::Changed {
                    break true;
                }
                if deadline.is_some_and(Deadline::passed) {
                    break false;
                }
            };
        // The notifier still holds the lock for a moment: try for it while
        // spinning before blocking, so a quick release costs no futex sleep.
        let mut tried = None;
        spin_wait(|| match self.lock.acquire(How::Try, owners) {
            Err(MutexError::WouldBlock) => false,
            r => {
                tried = Some(r);
                true
            }
        });
        let relocked = match tried {
            Some(r) => r,
            None => self.lock.acquire(How::Block, owners),
        };
        if relocked.is_ok() {
            // Saturating: a dead waiter may have left the count off; never wrap.
            let w = self.waiters.load(Ordering::Relaxed);
            self.waiters.store(w.saturating_sub(1), Ordering::Relaxed);
        }
        Ok((relocked, notified))
    }

    /// Wakes up to `n` waiters. The caller must hold the lock.
    pub fn notify(&self, n: u32) -> Result<(), ReleaseError> {
        if !self.lock.is_owned_by_me() {
            return Err(ReleaseError::NotOwner);
        }
        if n == 0 || self.waiters.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        // SYNC(sleepers): a Dekker pair with `wait`, made of RMWs rather than
        // loads: an RMW reads the latest value in the word's modification order,
        // so if this read of `sleepers` precedes a waiter's increment, that
        // increment synchronizes with it and the waiter's later RMW read of `seq`
        // sees our bump (it then skips the sleep). No store-load fence needed,
        // and loom can check it (loom lets SeqCst loads miss SeqCst stores in
        // this store-buffer shape: tokio-rs/loom#180).
        self.seq.fetch_add(1, Ordering::AcqRel);
        if self.sleepers.fetch_add(0, Ordering::AcqRel) != 0 {
            futex::wake(&self.seq, n);
        }
        Ok(())
    }
}

#[cfg(loom)]
impl Default for RawCondition {
    fn default() -> Self {
        RawCondition::new()
    }
}

#[cfg(not(loom))]
pub use handle::Condition;

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::time::Duration;

    use super::RawCondition;
    use crate::Error;
    use crate::loom::Deadline;
    use crate::region::{Object, Region, RegionOptions, SharedObject};
    use crate::sync::SLICE;
    use crate::sync::lock::handle::guard_result;
    use crate::sync::lock::{How, LockError, LockGuard, ReleaseError, lock_error};
    use crate::sync::robust::Acquired;

    // SAFETY: repr(C): a robust mutex and three atomics.
    unsafe impl SharedObject for RawCondition {
        const KIND: &'static str = "Condition";
        type Params = ();

        unsafe fn init(this: *mut Self, _: &()) -> Result<(), Error> {
            // SAFETY: forwarded from the caller's guarantee.
            Ok(unsafe { RawCondition::init(this) }?)
        }
    }

    /// A condition variable shared between processes, with its own robust lock,
    /// like Python's `multiprocessing.Condition()`.
    ///
    /// Take the lock with [`Condition::lock`], then [`Condition::wait`] (which
    /// releases it while sleeping) or [`Condition::notify`] (which requires it).
    /// If a process dies holding the lock, the next `lock` or `wait` returns
    /// [`LockError::OwnerDied`] with the guard.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cond = multiproc::Condition::anonymous()?;
    /// let guard = cond.lock().expect("fresh lock");
    /// cond.notify_all().expect("we hold the lock");
    /// let (guard, timed_out) = cond.wait_timeout(guard, Duration::from_millis(1)).expect("relock");
    /// assert!(timed_out);
    /// drop(guard);
    /// assert!(cond.notify(1).is_err()); // not holding the lock
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Condition {
        obj: Object<RawCondition>,
    }

    impl fmt::Debug for Condition {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Condition")
                .field("region", self.obj.region())
                .finish()
        }
    }

    type Guarded<'a, T> = Result<T, LockError<LockGuard<'a>>>;

    impl Condition {
        /// Wraps an object placed by the manager.
        pub(crate) fn from_object(obj: Object<RawCondition>) -> Condition {
            Condition { obj }
        }

        /// A new condition in an anonymous shared mapping.
        pub fn anonymous() -> Result<Condition, Error> {
            Ok(Condition {
                obj: Region::create_object(None, RegionOptions::default(), &())?,
            })
        }

        /// Creates a condition under `name`.
        pub fn create(name: &str) -> Result<Condition, Error> {
            Condition::create_with(name, RegionOptions::default())
        }

        /// [`Condition::create`] with explicit region options.
        pub fn create_with(name: &str, opts: RegionOptions) -> Result<Condition, Error> {
            Ok(Condition {
                obj: Region::create_object(Some(name), opts, &())?,
            })
        }

        /// Opens the condition `name`.
        pub fn open(name: &str) -> Result<Condition, Error> {
            Ok(Condition {
                obj: Region::open_object(name)?,
            })
        }

        /// Acquires the condition's lock.
        pub fn lock(&self) -> Guarded<'_, LockGuard<'_>> {
            let raw = self.obj.get().lock();
            guard_result(raw, raw.acquire(How::Block, self.obj.region()))
        }

        /// Acquires the condition's lock, waiting at most `timeout`.
        pub fn lock_timeout(&self, timeout: Duration) -> Guarded<'_, LockGuard<'_>> {
            let raw = self.obj.get().lock();
            let how = How::Until(Deadline::after(timeout));
            guard_result(raw, raw.acquire(how, self.obj.region()))
        }

        /// Acquires the condition's lock if it is free.
        pub fn try_lock(&self) -> Guarded<'_, LockGuard<'_>> {
            let raw = self.obj.get().lock();
            guard_result(raw, raw.acquire(How::Try, self.obj.region()))
        }

        fn wait_inner<'a>(
            &'a self,
            guard: LockGuard<'a>,
            deadline: Option<Deadline>,
        ) -> Guarded<'a, (LockGuard<'a>, bool)> {
            let raw = self.obj.get();
            if !std::ptr::eq(guard.raw(), raw.lock()) {
                return Err(LockError::WrongLock(guard));
            }
            let was_inconsistent = !guard.is_consistent();
            if was_inconsistent {
                // Waiting on unrepaired state would hand it to the next locker as
                // if it were fine: hand the guard back instead.
                return Err(LockError::OwnerDied(guard));
            }
            guard.forget_release();
            match raw.wait(deadline, SLICE, self.obj.region()) {
                Ok((Ok(Acquired::Clean), notified)) => {
                    Ok((LockGuard::new(raw.lock(), Acquired::Clean), !notified))
                }
                Ok((Ok(Acquired::OwnerDied), _)) => Err(LockError::OwnerDied(LockGuard::new(
                    raw.lock(),
                    Acquired::OwnerDied,
                ))),
                Ok((Err(e), _)) => Err(lock_error(e)),
                // The guard proved ownership, so this cannot happen; report the
                // lock as unusable rather than panic.
                Err(_) => Err(LockError::NotRecoverable),
            }
        }

        /// Releases the lock, sleeps until notified, re-acquires the lock.
        /// Wake-ups may be spurious: re-check the predicate, or use
        /// [`Condition::wait_while`].
        pub fn wait<'a>(&'a self, guard: LockGuard<'a>) -> Guarded<'a, LockGuard<'a>> {
            self.wait_inner(guard, None).map(|(g, _)| g)
        }

        /// As [`Condition::wait`], for at most `timeout`; the flag is `true` when
        /// the timeout passed without a notification.
        pub fn wait_timeout<'a>(
            &'a self,
            guard: LockGuard<'a>,
            timeout: Duration,
        ) -> Guarded<'a, (LockGuard<'a>, bool)> {
            self.wait_inner(guard, Some(Deadline::after(timeout)))
        }

        /// Waits while `condition()` returns `true` (checked with the lock held).
        pub fn wait_while<'a>(
            &'a self,
            mut guard: LockGuard<'a>,
            mut condition: impl FnMut() -> bool,
        ) -> Guarded<'a, LockGuard<'a>> {
            while condition() {
                guard = self.wait(guard)?;
            }
            Ok(guard)
        }

        /// As [`Condition::wait_while`], for at most `timeout`; the flag is `true`
        /// when it returned because the timeout passed with `condition()` still true.
        pub fn wait_while_timeout<'a>(
            &'a self,
            mut guard: LockGuard<'a>,
            timeout: Duration,
            mut condition: impl FnMut() -> bool,
        ) -> Guarded<'a, (LockGuard<'a>, bool)> {
            let deadline = Deadline::after(timeout);
            while condition() {
                if deadline.passed() {
                    return Ok((guard, true));
                }
                guard = self.wait_inner(guard, Some(deadline))?.0;
            }
            Ok((guard, false))
        }

        /// Wakes up to `n` waiters. The calling thread must hold the lock
        /// ([`ReleaseError::NotOwner`] otherwise, like Python's `RuntimeError`).
        pub fn notify(&self, n: u32) -> Result<(), ReleaseError> {
            self.obj.get().notify(n)
        }

        /// Wakes one waiter.
        pub fn notify_one(&self) -> Result<(), ReleaseError> {
            self.notify(1)
        }

        /// Wakes every waiter.
        pub fn notify_all(&self) -> Result<(), ReleaseError> {
            self.notify(u32::MAX)
        }

        /// The region holding the condition.
        pub fn region(&self) -> &Region {
            self.obj.region()
        }
    }
}
