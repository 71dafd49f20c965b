//! `Semaphore` and `BoundedSemaphore`: a permit count in one futex word.
//!
//! ```text
//! bit 31      SLEEPERS: a waiter may be asleep on the word (set by a waiter that
//!             found no permit, cleared by the release that wakes one)
//! bits 0..31  the number of available permits
//! ```
//!
//! Keeping the sleepers flag in the same word as the count makes "is anyone
//! asleep?" part of the same atomic read-modify-write as the permit change, so
//! a release with nobody asleep makes no syscall and no store-load (Dekker) race
//! exists between a waiter going to sleep and a releaser deciding not to wake.
//!
//! Waiting is [`crate::park`]'s loop in bit mode. A release that clears
//! `SLEEPERS` wakes exactly one waiter (`FUTEX_WAKE` of 1), so one release wakes
//! at most one acquirer. The woken waiter passes the baton on: having taken a
//! permit (or given up), it wakes the next sleeper if permits remain, for the
//! releases that found `SLEEPERS` already cleared, or sets `SLEEPERS` again so
//! the next release wakes one. Waiters that stay asleep are therefore never
//! stranded. The woken waiter gets the permit unless an acquirer that was not
//! asleep takes it first (no hand-off: barging keeps an uncontended acquire one
//! CAS); it then sleeps again, and the permit went to a caller that was running.
//! A waiter killed between being woken and passing the baton strands the others
//! for at most one wait slice, after which they re-check the word themselves.
//!
//! Permits are not tied to processes: a process that dies holding permits does
//! not return them (the same as Python's `multiprocessing.Semaphore`).

use super::lock::ReleaseError;
use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, Ordering};
use crate::park::{Park, WaitPolicy, no_probe};

/// A waiter may be asleep on the word.
const SLEEPERS: u32 = 1 << 31;
/// The largest possible number of permits.
pub(crate) const MAX_VALUE: u32 = SLEEPERS - 1;
/// `bound` of a plain (unbounded) semaphore; above any real bound.
const UNBOUNDED: u32 = u32::MAX;

/// The semaphore's shared state.
#[repr(C)]
#[derive(Debug)]
pub struct RawSemaphore {
    /// Permits and the sleepers flag. SYNC(permit): releases are Release RMWs,
    /// acquires Acquire RMWs, so whatever a releaser wrote before `release` is
    /// visible to the process that takes the permit.
    word: AtomicU32,
    /// The largest value `release` may reach, or `UNBOUNDED`. Written once at
    /// creation.
    bound: AtomicU32,
}

/// `Region::inspect`: permits now (`len`) and the bound (`capacity`, absent
/// when unbounded), from a copy of the object's bytes.
#[cfg(not(loom))]
pub(crate) fn inspect(
    obj: crate::region::inspect::Snapshot<'_>,
    info: &mut crate::region::inspect::KindInfo,
) {
    use std::mem::offset_of;
    let bound = obj.u32(offset_of!(RawSemaphore, bound));
    info.capacity = bound
        .filter(|&b| b != UNBOUNDED)
        .map(|b| u64::from(b.min(MAX_VALUE)));
    // Clamped to the bound: only a scribbled word holds more.
    info.len = obj
        .u32(offset_of!(RawSemaphore, word))
        .map(|w| u64::from(w & MAX_VALUE))
        .map(|v| info.capacity.map_or(v, |c| v.min(c)));
    info.flag("bounded", bound.map(|b| b != UNBOUNDED));
}

impl RawSemaphore {
    /// A semaphore with `value` permits that `release` may raise up to `bound`
    /// (`None`: up to the hard maximum, 2^31 - 1).
    pub fn new(value: u32, bound: Option<u32>) -> RawSemaphore {
        RawSemaphore {
            word: AtomicU32::new(value & MAX_VALUE),
            bound: AtomicU32::new(bound.map_or(UNBOUNDED, |b| b.min(MAX_VALUE))),
        }
    }

    /// Takes a permit if one is available.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let mut v = self.word.load(Ordering::Relaxed);
        loop {
            if v & MAX_VALUE == 0 {
                return false;
            }
            match self
                .word
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
    }

    fn park(&self) -> Park<'_> {
        Park::bit(&self.word, SLEEPERS)
    }

    /// Takes a permit, waiting as `policy` says until `deadline` (forever if
    /// `None`); `false` on timeout.
    pub fn acquire(&self, policy: WaitPolicy, deadline: Option<Deadline>) -> bool {
        if self.try_acquire() {
            return true;
        }
        self.acquire_slow(policy, deadline)
    }

    #[cold]
    fn acquire_slow(&self, policy: WaitPolicy, deadline: Option<Deadline>) -> bool {
        let mut w = self.park().waiter(policy, deadline);
        loop {
            let v = w.load();
            if v & MAX_VALUE != 0 {
                if self
                    .word
                    .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                if w.slept() {
                    self.pass_baton();
                }
                return true;
            }
            if w.sleep(v, no_probe).is_err() {
                if w.slept() {
                    // We may have absorbed a wake-up meant to be passed on.
                    self.pass_baton();
                }
                return false;
            }
        }
    }

    /// After a waiter that slept took a permit (or gave up): if permits remain,
    /// wake the next sleeper; otherwise re-arm `SLEEPERS` so the next release
    /// wakes one. Reads the word afresh: a release may have landed since our CAS
    /// (found by the loom model with three preemptions).
    fn pass_baton(&self) {
        let mut v = self.word.load(Ordering::Relaxed);
        loop {
            if v & MAX_VALUE != 0 {
                self.park().wake(1);
                return;
            }
            if v & SLEEPERS != 0 {
                return;
            }
            // Relaxed: a flag only; a spurious flag costs one extra wake.
            match self
                .word
                .compare_exchange_weak(v, SLEEPERS, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => v = now,
            }
        }
    }

    /// Returns a permit; refused (nothing changed) above the bound.
    pub fn release(&self) -> Result<(), ReleaseError> {
        let raw_bound = self.bound.load(Ordering::Relaxed);
        let bound = raw_bound.min(MAX_VALUE);
        let mut v = self.word.load(Ordering::Relaxed);
        loop {
            let permits = v & MAX_VALUE;
            if permits >= bound {
                return Err(if raw_bound == UNBOUNDED {
                    ReleaseError::Overflow
                } else {
                    ReleaseError::AboveBound
                });
            }
            // Clearing SLEEPERS: the waiter we wake passes the baton on.
            match self.word.compare_exchange_weak(
                v,
                permits + 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        self.park().wake_if(v, 1);
        Ok(())
    }

    /// Permits available now.
    pub fn value(&self) -> u32 {
        self.word.load(Ordering::Relaxed) & MAX_VALUE
    }

    /// The bound `release` may not exceed; `None` for a plain semaphore.
    pub fn bound(&self) -> Option<u32> {
        match self.bound.load(Ordering::Relaxed) {
            UNBOUNDED => None,
            b => Some(b),
        }
    }
}

#[cfg(not(loom))]
pub use handle::{BoundedSemaphore, Semaphore, SemaphorePermit};

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::time::Duration;

    use super::{MAX_VALUE, RawSemaphore};
    use crate::Error;
    use crate::loom::Deadline;
    use crate::park::WaitPolicy;
    use crate::region::{Object, Region, RegionOptions, SharedObject};
    use crate::sync::{Origin, ReleaseError};

    /// Creation parameters: initial value and bound.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct SemParams {
        value: u32,
        bound: Option<u32>,
    }

    // SAFETY: repr(C), two atomics; `check` validates the bound.
    unsafe impl SharedObject for RawSemaphore {
        const KIND: &'static str = "Semaphore";
        type Params = SemParams;

        fn payload_size(p: &SemParams) -> Result<usize, Error> {
            if p.value > MAX_VALUE {
                return Err(Error::InvalidParameter("semaphore value above 2^31 - 1"));
            }
            Ok(size_of::<Self>())
        }

        unsafe fn init(this: *mut Self, p: &SemParams) -> Result<(), Error> {
            // SAFETY: the caller guarantees `this` is valid, aligned and unused.
            unsafe { this.write(RawSemaphore::new(p.value, p.bound)) };
            Ok(())
        }
    }

    /// A permit taken with [`Semaphore::permit`] (or the bounded variant's),
    /// returned when dropped: Python's `with sem:`.
    ///
    /// A process that dies holding a permit does not return it (see the
    /// semaphore's docs). A permit is returned by the process that took it: one
    /// captured by a [`fork`](crate::process::fork) closure is returned when
    /// `fork` returns (the parent drops its copy of the closure), and the
    /// child's copy returns nothing, so the permit is never returned twice.
    #[must_use = "the permit is returned as soon as it is dropped"]
    pub struct SemaphorePermit<'a> {
        raw: &'a RawSemaphore,
        origin: Origin,
    }

    impl fmt::Debug for SemaphorePermit<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SemaphorePermit").finish_non_exhaustive()
        }
    }

    impl Drop for SemaphorePermit<'_> {
        fn drop(&mut self) {
            // A copy a forked child inherited returns nothing: the parent's
            // copy did (`Origin`).
            if !self.origin.is_here() {
                return;
            }
            // Cannot exceed a bound: this permit was taken from the semaphore.
            // (Extra `release` calls by others could; nothing to do in drop.)
            let _ = self.raw.release();
        }
    }

    macro_rules! semaphore_handle {
        ($name:ident, $doc:literal, $bounded:expr, $example:literal) => {
            #[doc = $doc]
            ///
            /// ```
            #[doc = $example]
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            #[derive(Clone)]
            pub struct $name {
                obj: Object<RawSemaphore>,
                policy: WaitPolicy,
            }

            impl fmt::Debug for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.debug_struct(stringify!($name))
                        .field("value", &self.value())
                        .finish()
                }
            }

            impl $name {
                pub(crate) fn params(value: u32) -> SemParams {
                    SemParams {
                        value,
                        bound: if $bounded { Some(value) } else { None },
                    }
                }

                pub(crate) fn from_obj(obj: Object<RawSemaphore>) -> Result<$name, Error> {
                    let bounded = obj.get().bound().is_some();
                    if bounded != $bounded {
                        return Err(Error::TypeMismatch {
                            expected: stringify!($name).to_owned(),
                            found: if bounded {
                                "BoundedSemaphore"
                            } else {
                                "Semaphore"
                            }
                            .to_owned(),
                        });
                    }
                    Ok($name {
                        obj,
                        policy: WaitPolicy::default(),
                    })
                }

                /// This handle with another [`WaitPolicy`] for its blocking calls
                /// (clones made from it inherit it).
                pub fn with_wait_policy(mut self, policy: WaitPolicy) -> $name {
                    self.policy = policy;
                    self
                }

                /// The [`WaitPolicy`] of this handle's blocking calls.
                pub fn wait_policy(&self) -> WaitPolicy {
                    self.policy
                }

                /// A new semaphore with `value` permits (at most 2^31 - 1) in an
                /// anonymous shared mapping, inherited by forked children.
                pub fn anonymous(value: u32) -> Result<$name, Error> {
                    $name::from_obj(Region::create_object(
                        None,
                        RegionOptions::default(),
                        &Self::params(value),
                    )?)
                }

                /// Creates a semaphore with `value` permits under `name`.
                pub fn create(name: &str, value: u32) -> Result<$name, Error> {
                    $name::create_with(name, value, RegionOptions::default())
                }

                /// [`Self::create`] with explicit region options.
                pub fn create_with(
                    name: &str,
                    value: u32,
                    opts: RegionOptions,
                ) -> Result<$name, Error> {
                    $name::from_obj(Region::create_object(
                        Some(name),
                        opts,
                        &Self::params(value),
                    )?)
                }

                /// Opens the semaphore `name`.
                pub fn open(name: &str) -> Result<$name, Error> {
                    $name::from_obj(Region::open_object(name)?)
                }

                /// `open` with the trust options of `opts`
                /// ([`RegionOptions::allow_foreign_owner`],
                /// [`RegionOptions::allow_shared_write`]).
                pub fn open_with(name: &str, opts: RegionOptions) -> Result<$name, Error> {
                    $name::from_obj(Region::open_object_with(name, opts)?)
                }

                /// Opens the semaphore `name`, creating it with `value` permits
                /// if the name does not exist; race-free between concurrent
                /// starters (see [`Queue::open_or_create`](crate::Queue::open_or_create)).
                /// `value` is used only by the creator (an existing semaphore
                /// keeps its count, as with a manager's get-or-create).
                pub fn open_or_create(name: &str, value: u32) -> Result<$name, Error> {
                    $name::open_or_create_with(name, value, RegionOptions::default())
                }

                /// [`Self::open_or_create`] with region options (creation and
                /// trust).
                pub fn open_or_create_with(
                    name: &str,
                    value: u32,
                    opts: RegionOptions,
                ) -> Result<$name, Error> {
                    $name::from_obj(Region::open_or_create_object(
                        name,
                        opts,
                        &Self::params(value),
                    )?)
                }

                /// Takes a permit, blocking while none is available.
                pub fn acquire(&self) {
                    while !self.obj.get().acquire(self.policy, None) {}
                }

                /// Takes a permit if one is available now.
                pub fn try_acquire(&self) -> bool {
                    self.obj.get().try_acquire()
                }

                /// Takes a permit, blocking while none is available, and returns
                /// it when the guard drops.
                ///
                /// ```
                #[doc = concat!("let sem = multiproc::", stringify!($name), "::anonymous(1)?;")]
                /// {
                ///     let _permit = sem.permit();
                ///     assert_eq!(sem.value(), 0);
                ///     assert!(sem.try_permit().is_none());
                /// }
                /// assert_eq!(sem.value(), 1);
                /// # Ok::<(), multiproc::Error>(())
                /// ```
                pub fn permit(&self) -> SemaphorePermit<'_> {
                    self.acquire();
                    SemaphorePermit {
                        raw: self.obj.get(),
                        origin: Origin::here(),
                    }
                }

                /// [`Self::permit`] if a permit is available now.
                pub fn try_permit(&self) -> Option<SemaphorePermit<'_>> {
                    self.try_acquire().then(|| SemaphorePermit {
                        raw: self.obj.get(),
                        origin: Origin::here(),
                    })
                }

                /// [`Self::permit`], waiting at most `timeout`.
                pub fn permit_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
                    self.acquire_timeout(timeout).then(|| SemaphorePermit {
                        raw: self.obj.get(),
                        origin: Origin::here(),
                    })
                }

                /// Takes a permit, waiting at most `timeout`; `false` on timeout.
                pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                    self.obj
                        .get()
                        .acquire(self.policy, Some(Deadline::after(timeout)))
                }

                /// Returns a permit and wakes one waiter if any sleeps.
                pub fn release(&self) -> Result<(), ReleaseError> {
                    self.obj.get().release()
                }

                /// Permits available now (Python's `get_value`).
                pub fn value(&self) -> u32 {
                    self.obj.get().value()
                }

                /// The region holding the semaphore.
                pub fn region(&self) -> &Region {
                    self.obj.region()
                }
            }
        };
    }

    semaphore_handle!(
        Semaphore,
        "A counting semaphore shared between processes, like Python's \
         `multiprocessing.Semaphore`. Permits held by a process that dies are not returned.",
        false,
        "let sem = multiproc::Semaphore::anonymous(1)?;\nassert!(sem.try_acquire());\nassert!(!sem.try_acquire());\nsem.release().unwrap();\nassert_eq!(sem.value(), 1);"
    );

    semaphore_handle!(
        BoundedSemaphore,
        "A semaphore whose value may never exceed its initial value, like Python's \
         `BoundedSemaphore`: a release past the bound is refused with \
         [`ReleaseError::AboveBound`] and changes nothing.",
        true,
        "use multiproc::{BoundedSemaphore, ReleaseError};\nlet sem = BoundedSemaphore::anonymous(2)?;\nassert_eq!(sem.release(), Err(ReleaseError::AboveBound));\nsem.acquire();\nsem.release().unwrap();\nassert_eq!(sem.value(), 2);"
    );
}
