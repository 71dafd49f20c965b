//! The one wait layer: every blocking primitive is "check, park, re-check" on it.
//!
//! parking_lot's shape (one `park` under every `lock_slow`), rebuilt for shared
//! memory: the primitive owns its state word and its condition; this module owns
//! sleeping on the word. It holds, each written once:
//!
//! * the **sleeper-word protocol** ([`Park::arm`], [`Park::wake_if`],
//!   [`Park::wake_counted`]): how a waiter records that it may be asleep and how a
//!   waker learns it must call `FUTEX_WAKE`;
//! * the **sliced sleep** ([`Waiter::sleep`]): `FUTEX_WAIT_BITSET` with an absolute
//!   `CLOCK_MONOTONIC` deadline, in slices that grow while the wait is idle;
//! * the **liveness probe**: a closure the primitive passes, run between slices,
//!   that may end the wait with an error (a dead peer);
//! * the **spin policy** ([`crate::spin`]) and the [`WaitPolicy`] that selects it.
//!
//! ## The loop every primitive writes
//!
//! ```text
//! let mut w = park.waiter(policy, deadline);
//! loop {
//!     let seen = w.load();                 // Acquire, BEFORE checking
//!     if condition_holds(seen) { return Ok(..) }
//!     w.sleep(seen, probe)?;               // spin once, then arm + one slice
//! }
//! ```
//!
//! ## Why no wake-up is lost (the one argument)
//!
//! Every change a waiter waits for is made by a read-modify-write on the word
//! (the *publishing RMW*), and the waiter sleeps only through the kernel's
//! compare-and-sleep on the value `seen` it read *before* checking its
//! condition. Two cases, by where the publishing RMW falls in the word's
//! modification order relative to the waiter's arming RMW:
//!
//! * **Bit mode** (a `SLEEPERS` bit in the word): the waiter arms with a CAS
//!   `seen -> seen | SLEEPERS`. If the publishing RMW came first, the word is no
//!   longer `seen`, the CAS fails and the waiter re-checks. If it came after, it
//!   reads `SLEEPERS` and calls `FUTEX_WAKE`; the waiter is either already queued
//!   in the kernel (woken) or not yet (the kernel's compare sees a changed word
//!   and returns at once). The arming CAS is `Relaxed`: it carries no data, and
//!   the kernel re-reads the word under its bucket lock. A waker that clears
//!   `SLEEPERS` must wake *everyone* it may have hidden from later wakers (all
//!   sleepers, or, for wake-one primitives, the woken waiter passes the baton:
//!   see the semaphore).
//! * **Counted mode** (a separate sleeper count, for wake-n): the waiter
//!   increments the count and then re-reads the word with an RMW; the waker
//!   publishes with an RMW and then reads the count with an RMW. An RMW reads the
//!   latest value in its word's modification order, so if the waker's read of
//!   the count precedes the waiter's increment, that increment reads from (and
//!   synchronizes with) the waker's AcqRel RMW, and the waiter's later RMW read
//!   of the word sees the publication: it does not sleep. Otherwise the waker
//!   sees a sleeper and wakes. No store-load fence is needed (and loom can check
//!   it; loom lets SeqCst loads miss SeqCst stores in this store-buffer shape:
//!   tokio-rs/loom#180).
//!
//! The loom models beside this module plant each half of the argument's
//! failure and check the model catches it (see `loom_tests`).
//!
//! ## Slices and the probe
//!
//! No wait on a shared word is unbounded (DESIGN rule 9): a waker that died
//! between its publishing RMW and its `FUTEX_WAKE`, or a peer that scribbled the
//! word, costs at most one slice. Slices start at [`FIRST_SLICE`] and double up
//! to [`MAX_SLICE`] (100 ms) while nothing happens, so a waiter blocked with
//! nothing to do wakes about ten times a second, and its probe (run after every
//! slice that expired, and at least every `MAX_SLICE` otherwise) notices a dead
//! peer within 100 ms plus scheduling delay. Live peers never wait for a slice:
//! they wake waiters directly.
//!
//! ## Other waiters
//!
//! [`hook`] keeps a place for waiters that are not a thread in `futex_wait`
//! (an async task behind an fd or io_uring `FUTEX_WAIT`, a `futex_waitv`
//! select): they arm the same bit, so a waker reaches its slow path, where one
//! load tells whether any such waiter is registered in this process.

use std::time::Duration;

use crate::loom::atomic::{AtomicU32, Ordering};
use crate::loom::{Deadline, KernelWord, WaitResult, futex};
use crate::spin;

/// The first sleep slice of a wait.
pub(crate) const FIRST_SLICE: Duration = Duration::from_millis(10);
/// The longest sleep slice: an idle waiter wakes at most ~10 times a second,
/// and its liveness probe runs at least this often.
pub(crate) const MAX_SLICE: Duration = Duration::from_millis(100);
/// How often a busy-polling waiter runs its liveness probe.
const BUSY_PROBE: Duration = Duration::from_millis(10);

/// How a blocked call waits: spin first, park at once, or never park.
///
/// Set per handle (`with_wait_policy` on [`crate::Lock`], [`crate::RLock`],
/// [`crate::Semaphore`], [`crate::Event`], [`crate::Condition`],
/// [`crate::Barrier`], and every queue, pipe end, sender and receiver); every
/// clone made afterwards inherits it. The shared dict's, the manager's and
/// `Value`'s internal locks wait with the default. Guidance:
///
/// | policy | use when | cost |
/// |---|---|---|
/// | [`WaitPolicy::SpinThenPark`] (default) | almost always: it spins only while spinning pays | at most 20 µs of `pause`s per wait, shrinking to none (a 30 µs probe about every 8th wait, spaced out to ~64 waits while probes fail) when recent spins failed |
/// | [`WaitPolicy::Park`] | waits that are known to be long, or a thread whose spins would keep failing anyway | a futex sleep and wake-up on every wait that does not succeed at once (~10-25 µs round trip on the machine below) |
/// | [`WaitPolicy::BusyPoll`] | a pinned, isolated core per waiter; lowest latency at any price | burns its CPU for the whole wait; on an oversubscribed machine a waiter that is preempted waits a whole scheduler slice (milliseconds) |
///
/// **Why the default adapts** (measured with
/// `cargo run --release -p compare -- --only latency --sizes 8 --load N`,
/// 2 vCPUs, AMD EPYC under a hypervisor, Linux 6.18 (EEVDF), where `--load N`
/// adds N CPU-bound processes and other builds kept the load average at 9-15):
/// on an idle machine a peer that has its own CPU answers an 8-byte queue round
/// trip in ~0.4 µs if the waiter spins, against ~60 µs for a kernel pipe's two
/// wake-ups, so spinning is worth up to about one wake-up's cost. On a busy
/// machine the peer usually has no CPU: a fixed 20 µs spin with `sched_yield`
/// between rounds (the policy before this one) took the round trip to
/// 12-24 ms median with 4 or 8 hogs, because the spinner, preempted or
/// yielding, is a *runnable* task when the answer arrives, while a futex
/// sleeper is a *waking* task that the scheduler lets preempt a hog. The
/// adaptive spin stops spinning after a few failed spins and measured
/// 14-16 µs median there, the same range as parking at once, and within
/// 1.1-1.5x of a kernel pipe (10-13 µs) in the same runs; a bare futex
/// ping-pong measured the same as the pipe, so the rest is the queue's own
/// work per hop and noise. Handing the CPU over explicitly (`sched_yield` right after `FUTEX_WAKE`)
/// measured worse, not better: it gives the CPU to a hog. [`WaitPolicy::Park`]
/// therefore buys little over the default on a busy host; choose it for waits
/// that are long by design, where even the default's first spins are waste.
///
/// Whatever the policy, a wait never outlives its timeout and notices a dead
/// peer (where the primitive has one to notice) within about 100 ms.
///
/// ```
/// use multiproc::{Event, WaitPolicy};
/// let ev = Event::anonymous()?.with_wait_policy(WaitPolicy::Park);
/// assert_eq!(ev.wait_policy(), WaitPolicy::Park);
/// assert!(!ev.wait_timeout(std::time::Duration::from_millis(1)));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitPolicy {
    /// Spin while recent spins paid (adaptively, per thread: see
    /// [`WaitPolicy`]), then sleep on the futex.
    #[default]
    SpinThenPark,
    /// Sleep on the futex at once.
    Park,
    /// Re-check in a loop and never sleep.
    BusyPoll,
}

/// Why [`Waiter::sleep`] ended the wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unparked<E> {
    /// The caller's deadline passed (checked after the caller's last check).
    TimedOut,
    /// The liveness probe reported an error.
    Probe(E),
}

/// Where a waiter records that it may be asleep.
#[derive(Clone, Copy, Debug)]
enum Sleepers<'a> {
    /// A bit of the word itself.
    Bit(u32),
    /// A count beside the word.
    Count(&'a AtomicU32),
}

/// A futex word and where its sleepers are recorded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Park<'a> {
    word: &'a AtomicU32,
    sleepers: Sleepers<'a>,
}

impl<'a> Park<'a> {
    /// `word`'s bit `bit` records a possible sleeper.
    #[inline]
    pub(crate) fn bit(word: &'a AtomicU32, bit: u32) -> Park<'a> {
        Park {
            word,
            sleepers: Sleepers::Bit(bit),
        }
    }

    /// `count` counts the waiters sleeping on `word`.
    #[inline]
    pub(crate) fn counted(word: &'a AtomicU32, count: &'a AtomicU32) -> Park<'a> {
        Park {
            word,
            sleepers: Sleepers::Count(count),
        }
    }

    /// Starts a wait.
    #[inline]
    pub(crate) fn waiter(self, policy: WaitPolicy, deadline: Option<Deadline>) -> Waiter<'a> {
        Waiter {
            park: self,
            policy,
            deadline,
            spun: policy != WaitPolicy::SpinThenPark,
            slept: false,
            slice: FIRST_SLICE,
            next_probe: None,
        }
    }

    /// Bit mode: records a possible sleeper if the word still equals `seen`.
    /// Returns the value to sleep on, or `None` if the word moved (re-check).
    ///
    /// The CAS is made even when the bit is already set (then `seen -> seen`),
    /// so that it is always an RMW in the word's modification order: the
    /// [`hook`] argument needs it. `Release` for the same reason; sleepers
    /// alone would need only `Relaxed` (the kernel re-reads the word).
    #[inline]
    pub(crate) fn arm(&self, seen: u32) -> Option<u32> {
        let Sleepers::Bit(bit) = self.sleepers else {
            return Some(seen);
        };
        let want = seen | bit;
        self.word
            .compare_exchange(seen, want, Ordering::Release, Ordering::Relaxed)
            .ok()
            .map(|_| want)
    }

    /// Bit mode, waker side: `prev` is what the caller's publishing RMW
    /// returned. If it had the sleeper bit, wakes up to `n` sleepers (and any
    /// [`hook`] watcher). The caller's RMW must have cleared the bit if `n` is
    /// `u32::MAX`, or must leave the bit to a baton scheme otherwise.
    #[inline]
    pub(crate) fn wake_if(&self, prev: u32, n: u32) -> bool {
        match self.sleepers {
            Sleepers::Bit(bit) if prev & bit != 0 => {
                self.wake_slow(n);
                true
            }
            _ => false,
        }
    }

    /// Counted mode, waker side: call after the publishing RMW; wakes up to `n`
    /// if any waiter is (about to be) asleep.
    #[inline]
    pub(crate) fn wake_counted(&self, n: u32) {
        if let Sleepers::Count(count) = self.sleepers {
            // SYNC(sleepers): an RMW read, the waker's half of the module doc's
            // counted-mode argument.
            if count.fetch_add(0, Ordering::AcqRel) != 0 {
                stats::woke(futex::wake(self.word, n));
            }
        }
    }

    /// Wakes up to `n` sleepers whatever the word says: for a waker that cannot
    /// tell from an RMW (a baton pass, recovery).
    #[cold]
    pub(crate) fn wake(&self, n: u32) {
        self.wake_slow(n);
    }

    #[cold]
    fn wake_slow(&self, n: u32) {
        stats::woke(futex::wake(self.word, n));
        hook::fire(self.word);
    }
}

/// One blocking call's wait on a [`Park`]: its policy, deadline, slice and
/// whether it has slept.
#[derive(Debug)]
pub(crate) struct Waiter<'a> {
    park: Park<'a>,
    policy: WaitPolicy,
    deadline: Option<Deadline>,
    spun: bool,
    slept: bool,
    slice: Duration,
    next_probe: Option<Deadline>,
}

impl Waiter<'_> {
    /// Reads the word (Acquire): read it *before* checking the condition and
    /// pass the value to [`Waiter::sleep`].
    #[inline]
    pub(crate) fn load(&self) -> u32 {
        self.park.word.load(Ordering::Acquire)
    }

    /// Whether this wait went to sleep at least once (and so may have consumed
    /// a wake-up meant to be passed on).
    pub(crate) fn slept(&self) -> bool {
        self.slept
    }

    /// Under [`WaitPolicy::SpinThenPark`], spins until `done` holds (or this
    /// thread's spin budget runs out) in place of the first
    /// [`Waiter::sleep`]'s spin on the word, for a caller whose condition is
    /// cheaper to watch than the word. Returns whether `done` held; `false`
    /// at once (and no spin) under the other policies or after a spin.
    pub(crate) fn spin_first(&mut self, done: impl FnMut() -> bool) -> bool {
        if self.spun {
            return false;
        }
        self.spun = true;
        spin::spin_until(done)
    }

    /// Whether the deadline has passed.
    pub(crate) fn timed_out(&self) -> bool {
        self.deadline.is_some_and(Deadline::passed)
    }

    /// The condition did not hold at `seen`: wait for the word to move. The
    /// first call under [`WaitPolicy::SpinThenPark`] spins; later calls arm the
    /// sleeper record and sleep one slice (or until the deadline). Returns
    /// `Ok(())` whenever the caller should re-check (woken, word moved, slice
    /// over, spurious), `Err(TimedOut)` once the deadline has passed, and
    /// `Err(Probe(e))` if `probe`, run between slices, reported `e`.
    pub(crate) fn sleep<E>(
        &mut self,
        seen: u32,
        probe: impl FnMut() -> Result<(), E>,
    ) -> Result<(), Unparked<E>> {
        self.sleep_beside(seen, None, probe)
    }

    /// [`Waiter::sleep`], also ending the sleep when `beacon` (a second futex
    /// word and the value it held) changes: a lock waiter sleeps on the lock
    /// word and on its owner's death beacon at once (`futex_waitv`). Bit mode
    /// only; a counted park ignores the beacon.
    pub(crate) fn sleep_beside<E>(
        &mut self,
        seen: u32,
        beacon: Option<(&KernelWord, u32)>,
        mut probe: impl FnMut() -> Result<(), E>,
    ) -> Result<(), Unparked<E>> {
        if !self.spun {
            self.spun = true;
            let word = self.park.word;
            // Relaxed: a hint to stop spinning; the caller re-reads with Acquire.
            spin::spin_until(|| word.load(Ordering::Relaxed) != seen);
            return Ok(());
        }
        if self.timed_out() {
            return Err(Unparked::TimedOut);
        }
        if self.policy == WaitPolicy::BusyPoll {
            spin::relax();
            if self.probe_due(BUSY_PROBE) {
                probe().map_err(Unparked::Probe)?;
            }
            return Ok(());
        }
        let r = match self.park.sleepers {
            Sleepers::Bit(_) => match self.park.arm(seen) {
                Some(expect) => futex::wait2(self.park.word, expect, beacon, Some(self.until())),
                None => return Ok(()),
            },
            Sleepers::Count(count) => {
                // SYNC(sleepers): increment, then an RMW read of the word (the
                // waiter's half of the counted-mode argument).
                count.fetch_add(1, Ordering::AcqRel);
                let r = if self.park.word.fetch_add(0, Ordering::AcqRel) == seen {
                    futex::wait(self.park.word, seen, Some(self.until()))
                } else {
                    WaitResult::Changed
                };
                count.fetch_sub(1, Ordering::Relaxed);
                r
            }
        };
        self.slept = true;
        let expired = r == WaitResult::TimedOut;
        if expired {
            stats::slice_expired();
            self.slice = (self.slice * 2).min(MAX_SLICE);
        }
        if (expired && !self.timed_out()) || self.probe_due(MAX_SLICE) {
            probe().map_err(Unparked::Probe)?;
        }
        Ok(())
    }

    /// The end of the next slice: the deadline if sooner.
    fn until(&self) -> Deadline {
        match self.deadline {
            Some(d) => d.min_after(self.slice),
            None => Deadline::after(self.slice),
        }
    }

    /// Whether `every` has passed since the last probe (or since the first
    /// call, which starts the clock).
    fn probe_due(&mut self, every: Duration) -> bool {
        match self.next_probe {
            None => {
                self.next_probe = Some(Deadline::after(every));
                false
            }
            Some(t) if t.passed() => {
                self.next_probe = Some(Deadline::after(every));
                true
            }
            Some(_) => false,
        }
    }
}

/// A probe that never fails.
#[inline]
pub(crate) fn no_probe() -> Result<(), core::convert::Infallible> {
    Ok(())
}

/// Per-process counts of what waits did, for tests and measurements.
pub(crate) mod stats {
    #[cfg(not(loom))]
    use crate::loom::atomic::{AtomicU64, Ordering};

    #[cfg(not(loom))]
    static SLICES_EXPIRED: AtomicU64 = AtomicU64::new(0);
    #[cfg(not(loom))]
    static WOKEN: AtomicU64 = AtomicU64::new(0);

    /// Counts the waiters one `FUTEX_WAKE` woke (as the kernel reports).
    #[inline]
    pub(crate) fn woke(n: u32) {
        // Relaxed: a statistic.
        #[cfg(not(loom))]
        WOKEN.fetch_add(u64::from(n), Ordering::Relaxed);
        #[cfg(loom)]
        let _ = n;
    }

    /// Waiters woken by the wait layer's wakers in this process so far.
    #[cfg(not(loom))]
    pub(crate) fn woken() -> u64 {
        WOKEN.load(Ordering::Relaxed)
    }

    /// Counts one sleep slice that ended by its timeout.
    #[inline]
    pub(crate) fn slice_expired() {
        // Relaxed: a statistic.
        #[cfg(not(loom))]
        SLICES_EXPIRED.fetch_add(1, Ordering::Relaxed);
    }

    /// Sleep slices that ended by their timeout in this process so far.
    #[cfg(not(loom))]
    pub(crate) fn slices_expired() -> u64 {
        SLICES_EXPIRED.load(Ordering::Relaxed)
    }
}

pub(crate) mod hook {
    //! Waiters that are not a thread in `futex_wait`, in this process.
    //!
    //! A watcher (the future tokio adapter, a `futex_waitv` select) registers a
    //! one-shot callback for a word with [`watch`], which then arms the word's
    //! sleeper bit exactly as a sleeper would ([`super::Park::arm`], a `Release`
    //! CAS). A waker whose publishing RMW sees the bit takes its slow path anyway
    //! (it must `FUTEX_WAKE`); there [`fire`] costs one load (after an `Acquire`
    //! fence) when nobody is registered. SYNC(hook): the fence makes the waker's
    //! RMW, which read the armed word (or a later RMW in its release sequence),
    //! synchronize with the watcher's arming CAS, so the count it loads includes
    //! the watcher's registration, made before that CAS.
    //!
    //! A watcher in another process is reached only through the futex itself
    //! (an io_uring `FUTEX_WAIT` or `futex_waitv` on the same word): that is
    //! the adapters' part. Registrations match by address in this process.

    use crate::loom::atomic::{AtomicU32, Ordering, fence};

    type Callback = Box<dyn FnOnce() + Send>;

    #[cfg(not(loom))]
    static REGISTERED: AtomicU32 = AtomicU32::new(0);
    #[cfg(not(loom))]
    static TABLE: std::sync::Mutex<Vec<(usize, u64, Callback)>> = std::sync::Mutex::new(Vec::new());

    #[cfg(loom)]
    loom::lazy_static! {
        static ref REGISTERED: AtomicU32 = AtomicU32::new(0);
        static ref TABLE: loom::sync::Mutex<Vec<(usize, u64, Callback)>> =
            loom::sync::Mutex::new(Vec::new());
    }

    /// A registration; [`cancel`] it if the wait ends another way.
    #[derive(Debug)]
    #[must_use = "cancel a watch that did not fire"]
    pub(crate) struct Watch {
        key: usize,
        id: u64,
    }

    fn key(word: &AtomicU32) -> usize {
        word as *const AtomicU32 as usize
    }

    /// Registers `callback` to run once when a waker reaches `park`'s word
    /// after it held `seen`, and arms the sleeper bit. `None` (nothing
    /// registered) if the word moved: re-check the condition.
    #[allow(dead_code, reason = "the async and select adapters come later")]
    pub(crate) fn watch(
        park: &super::Park<'_>,
        seen: u32,
        callback: impl FnOnce() + Send + 'static,
    ) -> Option<Watch> {
        let word = park.word;
        let id = {
            let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            let id = t.iter().map(|e| e.1).max().map_or(0, |m| m + 1);
            t.push((key(word), id, Box::new(callback)));
            // Relaxed: published by the Release arming CAS below (SYNC(hook)).
            REGISTERED.fetch_add(1, Ordering::Relaxed);
            id
        };
        let w = Watch { key: key(word), id };
        if park.arm(seen).is_some() {
            Some(w)
        } else {
            cancel(w);
            None
        }
    }

    /// Removes a registration that has not fired; `true` if it was still there.
    pub(crate) fn cancel(w: Watch) -> bool {
        let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let before = t.len();
        t.retain(|e| !(e.0 == w.key && e.1 == w.id));
        let removed = t.len() != before;
        if removed {
            REGISTERED.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// The waker's slow path: runs and removes every watcher of `word`.
    #[inline]
    pub(crate) fn fire(word: &AtomicU32) {
        // SYNC(hook): see the module doc.
        fence(Ordering::Acquire);
        if REGISTERED.load(Ordering::Relaxed) != 0 {
            fire_slow(word);
        }
    }

    #[cold]
    fn fire_slow(word: &AtomicU32) {
        let k = key(word);
        let ready: Vec<Callback> = {
            let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            let mut ready = Vec::new();
            let mut i = 0;
            while i < t.len() {
                if t[i].0 == k {
                    ready.push(t.swap_remove(i).2);
                    REGISTERED.fetch_sub(1, Ordering::Relaxed);
                } else {
                    i += 1;
                }
            }
            ready
        };
        // Outside the table lock: a callback may register again.
        for f in ready {
            f();
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Models of the park layer itself. The loom futex model never times out a
    //! wait, so a wake-up the protocol loses is a deadlock loom reports.
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;
    use loom::thread;

    use super::*;

    /// Bit 0 is the sleeper bit; the rest counts publications.
    const S: u32 = 1;

    fn wait_for_publication(word: &AtomicU32, policy: WaitPolicy) {
        let park = Park::bit(word, S);
        let mut w = park.waiter(policy, None);
        loop {
            let seen = w.load();
            if seen >> 1 != 0 {
                return;
            }
            w.sleep(seen, no_probe).unwrap();
        }
    }

    /// Publishes with an RMW that clears the sleeper bit, then wakes all.
    fn publish(word: &AtomicU32) {
        let mut v = word.load(Ordering::Relaxed);
        loop {
            match word.compare_exchange(v, (v & !S) + 2, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        Park::bit(word, S).wake_if(v, u32::MAX);
    }

    #[test]
    fn loom_bit_mode_two_sleepers_one_waker() {
        loom::model(|| {
            let word = Arc::new(AtomicU32::new(0));
            let waiters: Vec<_> = [WaitPolicy::Park, WaitPolicy::SpinThenPark]
                .into_iter()
                .map(|p| {
                    let word = word.clone();
                    thread::spawn(move || wait_for_publication(&word, p))
                })
                .collect();
            publish(&word);
            for w in waiters {
                w.join().unwrap();
            }
        });
    }

    #[test]
    fn loom_counted_mode_wakes_n_of_n() {
        loom::model(|| {
            let word = Arc::new(AtomicU32::new(0));
            let count = Arc::new(AtomicU32::new(0));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let (word, count) = (word.clone(), count.clone());
                    thread::spawn(move || {
                        let mut w = Park::counted(&word, &count).waiter(WaitPolicy::Park, None);
                        loop {
                            let seen = w.load();
                            if seen != 0 {
                                return;
                            }
                            w.sleep(seen, no_probe).unwrap();
                        }
                    })
                })
                .collect();
            word.fetch_add(1, Ordering::AcqRel);
            Park::counted(&word, &count).wake_counted(2);
            for w in waiters {
                w.join().unwrap();
            }
            assert_eq!(count.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn loom_hook_fires_or_watcher_sees_the_change() {
        loom::model(|| {
            let word = Arc::new(AtomicU32::new(0));
            let fired = Arc::new(AtomicBool::new(false));
            let watcher = {
                let (word, fired) = (word.clone(), fired.clone());
                thread::spawn(move || {
                    let park = Park::bit(&word, S);
                    let seen = park.waiter(WaitPolicy::Park, None).load();
                    if seen >> 1 != 0 {
                        return true; // ready before registering
                    }
                    let f = fired.clone();
                    let Some(watch) = hook::watch(&park, seen, move || {
                        f.store(true, Ordering::Relaxed);
                    }) else {
                        return true; // the word moved: the caller re-checks
                    };
                    // Registered and armed: the condition is re-checked once;
                    // if still false, only the hook may report the change.
                    if park.waiter(WaitPolicy::Park, None).load() >> 1 != 0 {
                        let _ = hook::cancel(watch);
                        return true;
                    }
                    false
                })
            };
            publish(&word);
            let saw_it = watcher.join().unwrap();
            assert!(
                saw_it || fired.load(Ordering::Relaxed),
                "a registered watcher missed the publication"
            );
        });
    }
}
