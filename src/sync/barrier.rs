//! `Barrier`: N parties meet, in one futex word; it breaks when a party dies.
//!
//! ```text
//! bits 0..16   COUNT        parties arrived in the current generation
//! bits 16..28  GENERATION   bumped when the last party arrives (or on reset)
//! bit 28       PREV_BROKEN  the generation before the previous one ended by
//!                           reset (LAST_BROKEN, one transition older)
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
//! Every transition shifts the outcome history by one (`LAST_BROKEN` moves to
//! `PREV_BROKEN`), so a waiter of `g` that next looks when the word already
//! says `g+2` (it slept through a reset and a whole later generation) still
//! learns how `g` ended. A waiter that sleeps through three or more
//! transitions (descheduled that long) can no longer tell and reports
//! success: the history is two transitions deep.
//!
//! Waiting is [`crate::park`]'s loop in bit mode on the state word.
//!
//! Dead parties: each process that waits records its participant id *and the
//! last generation it arrived in* in `party_ids`. The wait's liveness probe
//! (run by the park layer between sleep slices, at least every 100 ms) breaks
//! the barrier, as Python's `BrokenBarrierError` would after an `abort()`, if
//! a process died that arrived in the waiter's generation (it died waiting)
//! or in the one before (a member of the team that died before coming back).
//! A process that finished (its `fork` closure returned, or it called `exit`
//! single-threaded) left its regions and is not dead here.
//! A process whose last arrival is older breaks nothing, and `reset` forgets
//! every record, so a barrier is whole again after a reset whoever died
//! before it.

use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::park::{Park, Unparked, WaitPolicy};

const COUNT: u32 = 0xffff;
const GEN_SHIFT: u32 = 16;
const GEN_MASK: u32 = 0xfff;
const PREV_BROKEN: u32 = 1 << 28;
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

/// The word after a transition out of `v`'s generation: the next
/// generation, no arrivals, no flags but the history (`reset` says whether
/// this transition is a reset that interrupted waiters).
fn next_generation(v: u32, reset: bool) -> u32 {
    let history = if v & LAST_BROKEN != 0 { PREV_BROKEN } else { 0 };
    let last = if reset { LAST_BROKEN } else { 0 };
    (((generation(v) + 1) & GEN_MASK) << GEN_SHIFT) | history | last
}

/// How a waiter that arrived in generation `arrived` fares, seen from the
/// word `v` of a later generation: `Ok(())` if its generation completed.
fn outcome(arrived: u32, v: u32) -> Result<(), BarrierError> {
    let broken = match generation(v).wrapping_sub(arrived) & GEN_MASK {
        1 => v & LAST_BROKEN != 0,
        2 => v & PREV_BROKEN != 0,
        // Three or more transitions ago: no history left (module doc).
        _ => false,
    };
    if broken {
        Err(BarrierError::Broken)
    } else {
        Ok(())
    }
}

/// What the barrier learns from and tells about the parties' processes.
/// The real barrier records participant ids ([`Barrier`]'s handle); loom
/// models track nothing.
pub(crate) trait Parties {
    /// This wait arrived in `generation` (as a waiter or as the last party):
    /// record it.
    fn arrived(&self, generation: u32);
    /// Whether a party that should be part of `generation` died.
    fn any_dead(&self, generation: u32) -> bool;
}

/// A [`Parties`] that only asks a liveness closure (no records): the loom
/// models' barrier.
#[cfg(loom)]
struct Probe<F>(std::cell::RefCell<F>);

#[cfg(loom)]
impl<F: FnMut() -> bool> Parties for Probe<F> {
    fn arrived(&self, _: u32) {}
    fn any_dead(&self, _: u32) -> bool {
        match self.0.try_borrow_mut() {
            Ok(mut f) => f(),
            Err(_) => false,
        }
    }
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
    /// Processes that waited here, by participant id and the last generation
    /// they arrived in (the handle's `pack`), 0 = free; maintained by the
    /// handle.
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
            let new = next_generation(v, interrupted);
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

    #[cfg(loom)]
    /// Arrives and waits as `policy` says for the other parties, until
    /// `deadline`. `dead_party` is the liveness probe, run between sleep slices:
    /// it returns whether a party died (which breaks the barrier).
    pub fn wait(
        &self,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        dead_party: impl FnMut() -> bool,
    ) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_with(
            policy,
            deadline,
            &Probe(std::cell::RefCell::new(dead_party)),
        )
    }

    /// Breaks generation `g` if the barrier is still in it (a timeout or a
    /// dead party of `g`); if `g` ended meanwhile, returns how it ended for
    /// a waiter of `g` instead, so a timeout racing the last arrival never
    /// breaks the next generation.
    fn abort_generation(&self, g: u32) -> Result<(), Result<(), BarrierError>> {
        let mut v = self.state.load(Ordering::Acquire);
        loop {
            if generation(v) != g {
                return Err(outcome(g, v));
            }
            if v & BROKEN != 0 {
                return Ok(());
            }
            match self.state.compare_exchange_weak(
                v,
                v | BROKEN,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.park().wake_if(v, u32::MAX);
                    return Ok(());
                }
                Err(now) => v = now,
            }
        }
    }

    /// [`RawBarrier::wait`], recording this party in `parties` while it
    /// waits and asking it about the deaths of the others.
    pub(crate) fn wait_with(
        &self,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        parties_seen: &impl Parties,
    ) -> Result<BarrierWaitResult, BarrierError> {
        let parties = self.parties().clamp(1, MAX_PARTIES);
        let mut v = self.state.load(Ordering::Acquire);
        let (gen_at_arrival, index) = loop {
            if v & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            let count = (v & COUNT).min(parties - 1);
            if count + 1 == parties {
                let new = next_generation(v, false);
                match self
                    .state
                    .compare_exchange_weak(v, new, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        // `new` has no SLEEPERS: wake everyone the old word recorded.
                        self.park().wake_if(v, u32::MAX);
                        // A member of this generation, as the others are.
                        parties_seen.arrived(generation(v));
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
        parties_seen.arrived(gen_at_arrival);
        let released = Ok(BarrierWaitResult {
            index,
            leader: false,
        });
        let mut w = self.park().waiter(policy, deadline);
        loop {
            let v = w.load();
            if generation(v) != gen_at_arrival {
                return outcome(gen_at_arrival, v).and(released);
            }
            if v & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            let probe = || {
                if parties_seen.any_dead(gen_at_arrival) {
                    Err(())
                } else {
                    Ok(())
                }
            };
            let failure = match w.sleep(v, probe) {
                Ok(()) => continue,
                Err(Unparked::TimedOut) => BarrierError::Timeout,
                Err(Unparked::Probe(())) => BarrierError::Broken,
            };
            // Break our generation, unless it ended meanwhile: then that is
            // the answer (the last party arrived just as the time ran out).
            return match self.abort_generation(gen_at_arrival) {
                Ok(()) => Err(failure),
                Err(ended) => ended.and(released),
            };
        }
    }
}

#[cfg(not(loom))]
pub use handle::Barrier;

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::time::Duration;

    use super::{BarrierError, BarrierWaitResult, GEN_MASK, MAX_PARTIES, Parties, RawBarrier};
    use crate::Error;
    use crate::loom::Deadline;
    use crate::loom::atomic::{AtomicU64, Ordering};
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

    /// A `party_ids` entry: `(index + 1) << 48 | generation of the barrier
    /// (12 bits) << 32 | membership generation`; 0 is free.
    fn pack(m: Member, barrier_gen: u32) -> u64 {
        (u64::from(m.index) + 1) << 48
            | u64::from(barrier_gen & GEN_MASK) << 32
            | u64::from(m.generation)
    }

    fn unpack(v: u64) -> (Member, u32) {
        let m = Member {
            index: ((v >> 48) as u32).wrapping_sub(1),
            generation: v as u32,
        };
        (m, ((v >> 32) as u32) & GEN_MASK)
    }

    /// One wait's view of the other parties.
    struct Tracked<'a> {
        barrier: &'a Barrier,
        me: Option<Member>,
    }

    impl Tracked<'_> {
        fn ids(&self) -> &[AtomicU64] {
            &self.barrier.obj.get().party_ids
        }

        fn is(m: Member, other: Member) -> bool {
            m.index == other.index && m.generation == other.generation
        }
    }

    // Relaxed throughout: the entries are hints for death detection, not
    // data; a stale read costs one more probe slice, never a wrong release.
    impl Parties for Tracked<'_> {
        fn arrived(&self, generation: u32) {
            let Some(me) = self.me else { return };
            let packed = pack(me, generation);
            let ids = self.ids();
            // Our own entry, if we have one (threads of a process share it).
            for slot in ids {
                let cur = slot.load(Ordering::Relaxed);
                if cur != 0 && Self::is(unpack(cur).0, me) {
                    slot.store(packed, Ordering::Relaxed);
                    return;
                }
            }
            let region = self.barrier.obj.region();
            for slot in ids {
                let cur = slot.load(Ordering::Relaxed);
                let free = cur == 0 || region.probe(unpack(cur).0) == Liveness::Gone;
                if free
                    && slot
                        .compare_exchange(cur, packed, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    return;
                }
            }
            // Every entry taken: this process is not tracked (its death goes
            // unnoticed, as in a barrier without a participant table).
        }

        fn any_dead(&self, generation: u32) -> bool {
            let region = self.barrier.obj.region();
            let previous = generation.wrapping_sub(1) & GEN_MASK;
            for slot in self.ids() {
                let cur = slot.load(Ordering::Relaxed);
                if cur == 0 {
                    continue;
                }
                let (m, last) = unpack(cur);
                if self.me.is_some_and(|me| Self::is(m, me)) {
                    continue;
                }
                match region.probe(m) {
                    Liveness::Alive => {}
                    Liveness::Dead if last == generation || last == previous => return true,
                    // Dead since an older generation (it breaks nothing now),
                    // or gone: the entry is stale.
                    Liveness::Dead | Liveness::Gone => {
                        let _ = slot.compare_exchange(cur, 0, Ordering::Relaxed, Ordering::Relaxed);
                    }
                }
            }
            false
        }
    }

    impl Barrier {
        /// Forgets every recorded party (after a reset).
        fn forget_parties(&self) {
            for slot in &self.obj.get().party_ids {
                // Relaxed: hints (see `Tracked`).
                slot.store(0, Ordering::Relaxed);
            }
        }
    }

    /// A barrier for a fixed number of parties in any processes, like Python's
    /// `multiprocessing.Barrier`.
    ///
    /// A timeout, [`Barrier::abort`], or the death of a process that waited in
    /// the current generation or the one before breaks it: every waiter gets
    /// [`BarrierError::Broken`] until [`Barrier::reset`], which also forgets the
    /// processes that waited before it (their deaths break nothing after the
    /// reset). A timeout that races the last arrival either loses (everyone
    /// passes) or breaks the generation it timed out in, never the next one.
    /// Deaths are noticed by the waiters' probe between sleep slices (the
    /// first after about 10 ms of sleep): a party that arrived and then died
    /// counts as arrived, so if the last party comes before any waiter
    /// probed, that generation completes; the next one breaks if one of its
    /// waiters sleeps long enough to probe, and if it too fills within a
    /// slice (another process took the dead party's place), nobody is told
    /// and the barrier goes on whole.
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

        fn wait_until(
            &self,
            deadline: Option<Deadline>,
        ) -> Result<BarrierWaitResult, BarrierError> {
            let tracked = Tracked {
                barrier: self,
                me: self.obj.region().member(),
            };
            self.obj.get().wait_with(self.policy, deadline, &tracked)
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

        /// Returns the barrier to its initial state: parties waiting now get
        /// [`BarrierError::Broken`], and the deaths of processes that waited
        /// before the reset no longer break it.
        pub fn reset(&self) {
            self.obj.get().reset();
            self.forget_parties();
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The word of generation `g` with the given history flags.
    fn word(g: u32, flags: u32) -> u32 {
        (g & GEN_MASK) << GEN_SHIFT | flags
    }

    #[test]
    fn the_history_says_how_each_of_the_last_two_generations_ended() {
        // Reset out of g, then g+1 completed: a waiter of g learns Broken
        // from PREV_BROKEN, one of g+1 learns Ok.
        let v = next_generation(next_generation(word(7, 3), true), false);
        assert_eq!(generation(v), 9);
        assert_eq!(outcome(7, v), Err(BarrierError::Broken));
        assert_eq!(outcome(8, v), Ok(()));
        // Completed, then reset: the other way round.
        let v = next_generation(next_generation(word(7, 3), false), true);
        assert_eq!(outcome(7, v), Ok(()));
        assert_eq!(outcome(8, v), Err(BarrierError::Broken));
        // Across the wrap of the generation counter.
        let v = next_generation(word(GEN_MASK, 1), true);
        assert_eq!(generation(v), 0);
        assert_eq!(outcome(GEN_MASK, v), Err(BarrierError::Broken));
    }

    #[test]
    fn a_timeout_after_the_generation_ended_breaks_nothing() {
        let b = RawBarrier::new(2);
        // Generation 0 completed (the last party arrived) before the timed-out
        // waiter of generation 0 got to break it.
        b.state
            .store(next_generation(word(0, 1), false), Ordering::Relaxed);
        assert_eq!(b.abort_generation(0), Err(Ok(())));
        assert!(!b.is_broken(), "the next generation must not be broken");
        // Still in generation 1: a timeout there does break it.
        assert_eq!(b.abort_generation(1), Ok(()));
        assert!(b.is_broken());
        // A reset ended generation 1: its waiter reports Broken, and the new
        // generation stays whole.
        b.reset();
        assert_eq!(b.abort_generation(1), Err(Err(BarrierError::Broken)));
        assert!(!b.is_broken());
    }
}
