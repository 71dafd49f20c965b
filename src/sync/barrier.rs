//! `Barrier`: N parties meet, in one futex word; it breaks when a party dies.
//!
//! ```text
//! bits 0..16   COUNT        parties arrived in the current generation
//! bits 16..29  GENERATION   bumped when the last party arrives (or on reset)
//! bit 29       LAST_BROKEN  the previous generation ended by reset, not by
//!                           completion (its waiters report Broken)
//! bit 30       SLEEPERS     a waiter may be asleep
//! bit 31       BROKEN       the current generation is broken (abort, timeout,
//!                           a dead party); every wait fails until `reset`
//! ```
//!
//! Arrival is one CAS: the last party turns `(g, parties-1)` into `(g+1, 0)` and
//! wakes everyone if `SLEEPERS` was set, so a barrier whose parties all arrive
//! while spinning makes no syscall. Waiters compare only the generation, so
//! early arrivals of generation `g+1` cannot confuse late leavers of `g`.
//!
//! Waiting is [`crate::park`]'s loop in bit mode on the state word.
//!
//! Dead parties: each process that waits records its participant id in the
//! barrier (`party_ids`). The wait's liveness probe (run by the park layer
//! between sleep slices, at least every 100 ms) checks the recorded parties and
//! breaks the barrier if one died, as Python's `BrokenBarrierError` would after
//! an `abort()`.

use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::park::{Park, Unparked, WaitPolicy};

const COUNT: u32 = 0xffff;
const GEN_SHIFT: u32 = 16;
const GEN_MASK: u32 = 0x1fff;
const LAST_BROKEN: u32 = 1 << 29;
const SLEEPERS: u32 = 1 << 30;
const BROKEN: u32 = 1 << 31;
/// The largest number of parties.
pub(crate) const MAX_PARTIES: u32 = COUNT;
/// How many processes a barrier tracks for death detection.
pub(crate) const TRACKED: usize = 64;

fn generation(v: u32) -> u32 {
    (v >> GEN_SHIFT) & GEN_MASK
}

fn next_generation(v: u32) -> u32 {
    ((generation(v) + 1) & GEN_MASK) << GEN_SHIFT
}

/// Why a barrier wait failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: a party timed out, called `abort`, or died, or the
    /// barrier was reset while this party waited.
    #[error("the barrier is broken")]
    Broken,
    /// This party's timeout passed; the barrier is now broken for everyone.
    #[error("timed out waiting at the barrier (the barrier is now broken)")]
    Timeout,
}

/// What a successful wait returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWaitResult {
    index: u32,
    leader: bool,
}

impl BarrierWaitResult {
    /// Arrival order in this generation, `0..parties` (Python's return value).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// `true` for exactly one party per generation: the last to arrive.
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

/// The barrier's shared state.
#[repr(C)]
#[derive(Debug)]
pub struct RawBarrier {
    /// SYNC(barrier): arrivals are AcqRel RMWs and waiters load with Acquire, so
    /// everything each party wrote before `wait` is visible to all after it.
    state: AtomicU32,
    /// Written once at creation.
    parties: AtomicU32,
    /// Participant ids (`(index + 1) << 32 | generation`) of processes that waited
    /// here, 0 = free; maintained by the handle.
    pub(crate) party_ids: [AtomicU64; TRACKED],
}

/// `Region::inspect`: parties (`capacity`), parties waiting now (`len`,
/// clamped) and the broken flag, from a copy of the object's bytes.
#[cfg(not(loom))]
pub(crate) fn inspect(
    obj: crate::region::inspect::Snapshot<'_>,
    info: &mut crate::region::inspect::KindInfo,
) {
    use std::mem::offset_of;
    let parties = obj.u32(offset_of!(RawBarrier, parties)).map(|p| p & COUNT);
    info.capacity = parties.map(u64::from);
    let state = obj.u32(offset_of!(RawBarrier, state));
    if let (Some(s), Some(p)) = (state, parties) {
        info.len = Some(u64::from((s & COUNT).min(p)));
    }
    info.flag("broken", state.map(|s| s & BROKEN != 0));
}

impl RawBarrier {
    /// A barrier for `parties` (1 to 65535, checked by the caller).
    pub fn new(parties: u32) -> RawBarrier {
        RawBarrier {
            state: AtomicU32::new(0),
            parties: AtomicU32::new(parties),
            party_ids: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Number of parties.
    pub fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    /// Parties waiting in the current generation; 0 while the barrier is
    /// broken (as Python's: the parties that had arrived were sent away).
    pub fn n_waiting(&self) -> u32 {
        let v = self.state.load(Ordering::Relaxed);
        if v & BROKEN != 0 { 0 } else { v & COUNT }
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state.load(Ordering::Relaxed) & BROKEN != 0
    }

    fn park(&self) -> Park<'_> {
        Park::bit(&self.state, SLEEPERS)
    }

    /// Breaks the barrier: current and future waiters get `Broken` until `reset`.
    pub fn abort(&self) {
        let prev = self.state.fetch_or(BROKEN, Ordering::AcqRel);
        // Sleepers see BROKEN when woken; SLEEPERS may stay set (a spare wake).
        self.park().wake_if(prev, u32::MAX);
    }

    /// Returns the barrier to its initial state; parties waiting now get `Broken`.
    pub fn reset(&self) {
        let mut v = self.state.load(Ordering::Relaxed);
        loop {
            let interrupted = v & COUNT != 0 || v & BROKEN != 0;
            let new = next_generation(v) | if interrupted { LAST_BROKEN } else { 0 };
            match self
                .state
                .compare_exchange_weak(v, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        // `new` has no SLEEPERS: wake everyone the old word recorded.
        self.park().wake_if(v, u32::MAX);
    }

    /// Arrives and waits as `policy` says for the other parties, until
    /// `deadline`. `dead_party` is the liveness probe, run between sleep slices:
    /// it returns whether a party died (which breaks the barrier).
    pub fn wait(
        &self,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        mut dead_party: impl FnMut() -> bool,
    ) -> Result<BarrierWaitResult, BarrierError> {
        let parties = self.parties().clamp(1, MAX_PARTIES);
        let mut v = self.state.load(Ordering::Acquire);
        let (gen_at_arrival, index) = loop {
            if v & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            let count = (v & COUNT).min(parties - 1);
            if count + 1 == parties {
                let new = next_generation(v);
                match self
                    .state
                    .compare_exchange_weak(v, new, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        // `new` has no SLEEPERS: wake everyone the old word recorded.
                        self.park().wake_if(v, u32::MAX);
                        return Ok(BarrierWaitResult {
                            index: count,
                            leader: true,
                        });
                    }
                    Err(now) => v = now,
                }
            } else {
                match self.state.compare_exchange_weak(
                    v,
                    v + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break (generation(v), count),
                    Err(now) => v = now,
                }
            }
        };
        let mut w = self.park().waiter(policy, deadline);
        loop {
            let v = w.load();
            if generation(v) != gen_at_arrival {
                return if v & LAST_BROKEN != 0 {
                    Err(BarrierError::Broken)
                } else {
                    Ok(BarrierWaitResult {
                        index,
                        leader: false,
                    })
                };
            }
            if v & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            let probe = || if dead_party() { Err(()) } else { Ok(()) };
            match w.sleep(v, probe) {
                Ok(()) => {}
                Err(Unparked::TimedOut) => {
                    self.abort();
                    return Err(BarrierError::Timeout);
                }
                Err(Unparked::Probe(())) => {
                    self.abort();
                    return Err(BarrierError::Broken);
                }
            }
        }
    }
}

#[cfg(not(loom))]
pub use handle::Barrier;

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::time::Duration;

    use super::{BarrierError, BarrierWaitResult, MAX_PARTIES, RawBarrier};
    use crate::Error;
    use crate::loom::Deadline;
    use crate::loom::atomic::Ordering;
    use crate::park::WaitPolicy;
    use crate::region::participants::{Liveness, Member};
    use crate::region::{Object, Region, RegionOptions, SharedObject};

    // SAFETY: repr(C), atomics only; `check` validates `parties`.
    unsafe impl SharedObject for RawBarrier {
        const KIND: &'static str = "Barrier";
        type Params = u32;

        fn payload_size(parties: &u32) -> Result<usize, Error> {
            if *parties == 0 || *parties > MAX_PARTIES {
                return Err(Error::InvalidParameter(
                    "a barrier needs 1 to 65535 parties",
                ));
            }
            Ok(size_of::<Self>())
        }

        unsafe fn init(this: *mut Self, parties: &u32) -> Result<(), Error> {
            // SAFETY: the caller guarantees `this` is valid, aligned and unused.
            unsafe { this.write(RawBarrier::new(*parties)) };
            Ok(())
        }

        fn check(&self, payload_size: usize) -> Result<(), Error> {
            if payload_size < size_of::<Self>() {
                return Err(Error::Corrupted("payload smaller than the barrier"));
            }
            let p = self.parties();
            if p == 0 || p > MAX_PARTIES {
                return Err(Error::Corrupted("barrier party count"));
            }
            Ok(())
        }
    }

    fn pack(m: Member) -> u64 {
        (u64::from(m.index) + 1) << 32 | u64::from(m.generation)
    }

    fn unpack(v: u64) -> Member {
        Member {
            index: ((v >> 32) as u32).wrapping_sub(1),
            generation: v as u32,
        }
    }

    /// A barrier for a fixed number of parties in any processes, like Python's
    /// `multiprocessing.Barrier`.
    ///
    /// A timeout, [`Barrier::abort`], or the death of a process that waited on the
    /// barrier breaks it: every waiter gets [`BarrierError::Broken`] until
    /// [`Barrier::reset`].
    ///
    /// Python's `action` and default `timeout` arguments have no counterpart:
    /// the party whose wait returns [`BarrierWaitResult::is_leader`] (exactly
    /// one per generation) runs the action, after the others were released
    /// (Python runs it before), and each wait takes its own timeout
    /// ([`Barrier::wait_timeout`]). The party whose own timeout passed gets
    /// [`BarrierError::Timeout`], where Python raises `BrokenBarrierError` in
    /// every party.
    ///
    /// ```
    /// let b = multiproc::Barrier::anonymous(1)?;
    /// assert!(b.wait().expect("one party").is_leader());
    /// assert!(multiproc::Barrier::anonymous(0).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Barrier {
        obj: Object<RawBarrier>,
        policy: WaitPolicy,
    }

    impl fmt::Debug for Barrier {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Barrier")
                .field("parties", &self.parties())
                .field("n_waiting", &self.n_waiting())
                .field("broken", &self.is_broken())
                .finish()
        }
    }

    impl Barrier {
        /// Wraps an object placed by the manager.
        pub(crate) fn from_object(obj: Object<RawBarrier>) -> Barrier {
            Barrier {
                obj,
                policy: WaitPolicy::default(),
            }
        }

        /// This handle with another [`WaitPolicy`] for its waits (clones made
        /// from it inherit it).
        pub fn with_wait_policy(mut self, policy: WaitPolicy) -> Barrier {
            self.policy = policy;
            self
        }

        /// The [`WaitPolicy`] of this handle's waits.
        pub fn wait_policy(&self) -> WaitPolicy {
            self.policy
        }

        /// A barrier for `parties` (1 to 65535) in an anonymous shared mapping.
        pub fn anonymous(parties: u32) -> Result<Barrier, Error> {
            Ok(Barrier::from_object(Region::create_object(
                None,
                RegionOptions::default(),
                &parties,
            )?))
        }

        /// Creates a barrier for `parties` under `name`.
        pub fn create(name: &str, parties: u32) -> Result<Barrier, Error> {
            Barrier::create_with(name, parties, RegionOptions::default())
        }

        /// [`Barrier::create`] with explicit region options.
        pub fn create_with(
            name: &str,
            parties: u32,
            opts: RegionOptions,
        ) -> Result<Barrier, Error> {
            Ok(Barrier::from_object(Region::create_object(
                Some(name),
                opts,
                &parties,
            )?))
        }

        /// Opens the barrier `name`.
        pub fn open(name: &str) -> Result<Barrier, Error> {
            Ok(Barrier::from_object(Region::open_object(name)?))
        }

        /// `open` with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<Barrier, Error> {
            Ok(Barrier::from_object(Region::open_object_with(name, opts)?))
        }

        /// Opens the barrier `name`, creating it for `parties` if the name
        /// does not exist; race-free between concurrent starters (see
        /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
        /// `parties` is used only by the creator (as with a manager's
        /// get-or-create): check [`Barrier::parties`] if it matters.
        pub fn open_or_create(name: &str, parties: u32) -> Result<Barrier, Error> {
            Barrier::open_or_create_with(name, parties, RegionOptions::default())
        }

        /// [`Barrier::open_or_create`] with region options (creation and
        /// trust).
        pub fn open_or_create_with(
            name: &str,
            parties: u32,
            opts: RegionOptions,
        ) -> Result<Barrier, Error> {
            Ok(Barrier::from_object(Region::open_or_create_object(
                name, opts, &parties,
            )?))
        }

        /// Records this process as a party so others notice if it dies.
        fn register(&self) -> Option<Member> {
            let me = self.obj.region().member()?;
            let ids = &self.obj.get().party_ids;
            let packed = pack(me);
            // Relaxed: the ids are hints for death detection, not data.
            if ids.iter().any(|s| s.load(Ordering::Relaxed) == packed) {
                return Some(me);
            }
            for slot in ids {
                let cur = slot.load(Ordering::Relaxed);
                let free = cur == 0 || self.obj.region().probe(unpack(cur)) == Liveness::Gone;
                if free
                    && slot
                        .compare_exchange(cur, packed, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    return Some(me);
                }
            }
            Some(me)
        }

        fn any_party_dead(&self, me: Option<Member>) -> bool {
            let region = self.obj.region();
            for slot in &self.obj.get().party_ids {
                let cur = slot.load(Ordering::Relaxed);
                if cur == 0 || me.is_some_and(|m| pack(m) == cur) {
                    continue;
                }
                match region.probe(unpack(cur)) {
                    Liveness::Dead => return true,
                    Liveness::Gone => {
                        let _ = slot.compare_exchange(cur, 0, Ordering::Relaxed, Ordering::Relaxed);
                    }
                    Liveness::Alive => {}
                }
            }
            false
        }

        fn wait_until(
            &self,
            deadline: Option<Deadline>,
        ) -> Result<BarrierWaitResult, BarrierError> {
            let me = self.register();
            self.obj
                .get()
                .wait(self.policy, deadline, || self.any_party_dead(me))
        }

        /// Waits until all parties have called `wait`.
        pub fn wait(&self) -> Result<BarrierWaitResult, BarrierError> {
            self.wait_until(None)
        }

        /// Waits at most `timeout`; on timeout the barrier breaks for everyone
        /// and this party gets [`BarrierError::Timeout`].
        pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, BarrierError> {
            self.wait_until(Some(Deadline::after(timeout)))
        }

        /// Breaks the barrier.
        pub fn abort(&self) {
            self.obj.get().abort();
        }

        /// Returns the barrier to its initial state.
        pub fn reset(&self) {
            self.obj.get().reset();
        }

        /// Number of parties.
        pub fn parties(&self) -> u32 {
            self.obj.get().parties()
        }

        /// Parties waiting now; 0 while the barrier is broken (as Python's
        /// `n_waiting`).
        pub fn n_waiting(&self) -> u32 {
            self.obj.get().n_waiting()
        }

        /// Whether the barrier is broken.
        pub fn is_broken(&self) -> bool {
            self.obj.get().is_broken()
        }

        /// The region holding the barrier.
        pub fn region(&self) -> &Region {
            self.obj.region()
        }
    }
}
