//! `Condition`: a condition variable with its own robust lock, on group words.
//!
//! Not `pthread_cond_t`: a waiter killed inside glibc's condvar protocol can block
//! signallers forever. Here the state is the condition's [`super::lock::RawLock`]
//! plus a few words, all but the futex words and the sleeper count changed only
//! while holding that lock.
//!
//! ## Exact notification: two groups
//!
//! `notify(n)` must wake at most `n` waiters, and `notify_all` every waiter
//! that was waiting when it was called, never one that came later. Waiters are
//! counted in two groups (the scheme of glibc's condvar, simplified because every
//! step but the sleep runs under the lock):
//!
//! | field | meaning |
//! |---|---|
//! | `g1` | id of the *signal group* G1; the *arrival group* G2 is `g1 + 1` |
//! | `g1_left` | members of G1 not yet granted a notification |
//! | `signals` | grants to G1 not yet consumed by a member |
//! | `g2_len` | members of G2 |
//! | `words[g & 1]` | the futex word group `g` sleeps on, bumped by every grant to it |
//! | `sleepers` | waiters inside or entering `FUTEX_WAIT` (the park layer's counted mode) |
//!
//! A waiter joins G2 (`g2_len += 1`) and remembers its group id. `notify(n)`
//! grants from G1 (`g1_left -> signals`); when G1 has nobody left to grant and
//! G2 is not empty, G1 is *closed* (all its remaining members were granted) and
//! G2 becomes the new G1. A woken waiter re-takes the lock and decides there: a
//! member of a closed group was notified; a member of G1 was notified if it can
//! consume a signal; otherwise it sleeps again (or, past its deadline, leaves
//! its group: `g1_left -= 1` or `g2_len -= 1`). So every grant is consumed by
//! exactly one waiter that was waiting when the grant was made, and a waiter
//! that times out never absorbs a notification meant for another.
//!
//! G1 and G2 sleep on different futex words (group parity), so a grant wakes
//! only members of the group it was made to. The waiter's wait is the park
//! layer's loop in counted mode (the no-lost-wake-up argument is
//! [`crate::park`]'s); its "condition" is a lock-free peek at `g1` and
//! `signals`, confirmed under the lock. Closing a group bumps its word and wakes
//! all of it, so a peek that raced the close re-checks.
//!
//! ## Deaths
//!
//! The counts alone cannot tell a live waiter from one killed in its sleep,
//! and a dead member of G1 that was never granted would absorb the next
//! grant (`notify(1)` waking nobody while a live waiter sleeps in G2). So each
//! waiter is also *recorded*: `records` holds, per membership (the lock's
//! owner token) and group, how many of that process's threads wait in the
//! group, written under the lock like the counts. `notify` first probes the
//! memberships recorded in G1 and G2 and takes the dead ones' waiters out of
//! the counts (from G1's ungranted members first: a grant a dead member may
//! have been woken for is left for a live member to consume, and only grants
//! beyond the live members are dropped), then grants. A waiter leaving its
//! group removes itself from its record; closing a group forgets its records
//! (every member was granted).
//!
//! What stays: a waiter that found [`RECORDS`] entries all taken is counted
//! but not recorded, and may, if killed, absorb one later grant; so may a
//! timed wait that could not re-take the lock (see [`RawCondition::relock`]),
//! whose process lives on. `notify_all` is never short. Spurious returns do
//! not happen: a waiter returns notified only when it was granted.

use super::lock::{How, RawLock, ReleaseError};
use super::robust::{Acquired, MutexError, Owners, Probe};
use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, Ordering};
use crate::park::{Park, WaitPolicy, no_probe};
use crate::spin;

/// How long past its deadline a timed wait may still take to re-take the
/// lock ([`RawCondition::relock`]): about a scheduler quantum.
const RELOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Waiter records kept per condition: distinct (membership, group) pairs
/// with waiters at once. Each waiting process needs one per group it has
/// waiters in (at most two), so 32 cover 16 processes waiting at one time
/// whatever their thread counts.
pub const RECORDS: usize = 32;

/// How many threads of one membership wait in one group. Written only
/// under the condition's lock (Relaxed, as the counts); `count == 0` is a
/// free entry. Untrusted like every shared word: a scribbled record can make
/// a notify wake fewer waiters, never index anything.
#[repr(C)]
#[derive(Debug)]
struct Record {
    token: AtomicU32,
    group: AtomicU32,
    count: AtomicU32,
}

impl Record {
    fn new() -> Record {
        Record {
            token: AtomicU32::new(0),
            group: AtomicU32::new(0),
            count: AtomicU32::new(0),
        }
    }

    fn holds(&self, token: u32, group: u32) -> bool {
        self.count.load(Ordering::Relaxed) != 0
            && self.token.load(Ordering::Relaxed) == token
            && self.group.load(Ordering::Relaxed) == group
    }

    fn clear(&self) {
        self.count.store(0, Ordering::Relaxed);
    }
}

/// The condition's shared state.
#[repr(C)]
#[derive(Debug)]
pub struct RawCondition {
    lock: RawLock,
    /// Futex words by group parity. SYNC(grant): bumped with a Release RMW after
    /// the grant's fields are written; a peeking waiter loads it with Acquire.
    words: [AtomicU32; 2],
    /// Waiters committed to `FUTEX_WAIT` (RMWs only: the park layer's counted mode).
    sleepers: AtomicU32,
    /// The fields below are written only under `lock` (Relaxed: the lock orders
    /// them for lock holders; peeks outside the lock are hints, see `words`).
    g1: AtomicU32,
    g1_left: AtomicU32,
    signals: AtomicU32,
    g2_len: AtomicU32,
    /// Who waits where (module doc, "Deaths"); last, so the fields above keep
    /// the offsets they had before records existed.
    records: [Record; RECORDS],
}

/// Whether group `my` is closed while `g1` is the signal group.
fn closed(my: u32, g1: u32) -> bool {
    (g1.wrapping_sub(my) as i32) > 0
}

impl RawCondition {
    /// A fresh condition (loom: built on the heap).
    #[cfg(loom)]
    pub fn new() -> RawCondition {
        RawCondition {
            lock: RawLock::new(),
            words: [AtomicU32::new(0), AtomicU32::new(0)],
            sleepers: AtomicU32::new(0),
            g1: AtomicU32::new(0),
            g1_left: AtomicU32::new(0),
            signals: AtomicU32::new(0),
            g2_len: AtomicU32::new(0),
            records: std::array::from_fn(|_| Record::new()),
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
            std::ptr::addr_of_mut!((*this).words).write([AtomicU32::new(0), AtomicU32::new(0)]);
            std::ptr::addr_of_mut!((*this).sleepers).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this).g1).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this).g1_left).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this).signals).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this).g2_len).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this).records).write(std::array::from_fn(|_| Record::new()));
            RawLock::init(std::ptr::addr_of_mut!((*this).lock))
        }
    }

    /// The condition's lock.
    pub fn lock(&self) -> &RawLock {
        &self.lock
    }

    fn park(&self, group: u32) -> Park<'_> {
        Park::counted(&self.words[(group & 1) as usize], &self.sleepers)
    }

    /// Outside the lock: whether group `my` may have been notified.
    fn peek(&self, my: u32) -> bool {
        let g1 = self.g1.load(Ordering::Relaxed);
        closed(my, g1) || (my == g1 && self.signals.load(Ordering::Relaxed) != 0)
    }

    /// Under the lock: `Some(true)` if `my`'s waiter was notified (consuming a
    /// signal), `Some(false)` if it leaves un-notified because `give_up`, `None`
    /// if it should wait on.
    ///
    /// `me` is the waiter's record token if [`Self::join`] recorded it: a
    /// waiter that leaves its group takes itself out of its record (a closed
    /// group's records were forgotten when it closed).
    fn decide(&self, my: u32, give_up: bool, me: Option<u32>) -> Option<bool> {
        let g1 = self.g1.load(Ordering::Relaxed);
        if closed(my, g1) {
            return Some(true);
        }
        let field = if my == g1 {
            let signals = self.signals.load(Ordering::Relaxed);
            if signals != 0 {
                self.signals.store(signals - 1, Ordering::Relaxed);
                self.unrecord(me, my);
                return Some(true);
            }
            &self.g1_left
        } else {
            &self.g2_len
        };
        if !give_up {
            return None;
        }
        // Saturating: a dead waiter or a scribble may have left it off.
        let n = field.load(Ordering::Relaxed);
        field.store(n.saturating_sub(1), Ordering::Relaxed);
        self.unrecord(me, my);
        Some(false)
    }

    /// Under the lock: joins the arrival group G2, recording the caller (if
    /// it has a membership and a record is free). Returns the group id and
    /// the record token (`None`: counted, not recorded).
    fn join(&self, owners: &(impl Owners + ?Sized)) -> (u32, Option<u32>) {
        let my = self.g1.load(Ordering::Relaxed).wrapping_add(1);
        let len = self.g2_len.load(Ordering::Relaxed);
        self.g2_len.store(len.saturating_add(1), Ordering::Relaxed);
        let me = owners.me().filter(|&t| self.record(t, my));
        (my, me)
    }

    /// Under the lock: one more waiter of `token` in `group`. `false` if no
    /// record is free.
    fn record(&self, token: u32, group: u32) -> bool {
        let r = self
            .records
            .iter()
            .find(|r| r.holds(token, group))
            .or_else(|| {
                self.records
                    .iter()
                    .find(|r| r.count.load(Ordering::Relaxed) == 0)
            });
        let Some(r) = r else { return false };
        if r.count.load(Ordering::Relaxed) == 0 {
            r.token.store(token, Ordering::Relaxed);
            r.group.store(group, Ordering::Relaxed);
        }
        let n = r.count.load(Ordering::Relaxed);
        r.count.store(n.saturating_add(1), Ordering::Relaxed);
        true
    }

    /// Under the lock: one waiter of `me` left `group`.
    fn unrecord(&self, me: Option<u32>, group: u32) {
        let Some(token) = me else { return };
        if let Some(r) = self.records.iter().find(|r| r.holds(token, group)) {
            let n = r.count.load(Ordering::Relaxed);
            r.count.store(n - 1, Ordering::Relaxed);
        }
    }

    /// Under the lock, before granting: takes the waiters of dead
    /// memberships out of G1 (`g1_left` first, then grants beyond the live
    /// members) and G2, and forgets records of groups that are neither
    /// (a scribble, or a group closed by a build that kept no records).
    /// Returns whether G1 lost members while grants were outstanding, so
    /// that the caller wakes its sleepers for them.
    fn purge(
        &self,
        owners: &(impl Owners + ?Sized),
        g1: u32,
        g1_left: &mut u32,
        signals: &mut u32,
        g2_len: &mut u32,
    ) -> bool {
        let me = owners.me();
        let mut woke = false;
        for r in &self.records {
            let count = r.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let group = r.group.load(Ordering::Relaxed);
            if group != g1 && group != g1.wrapping_add(1) {
                r.clear();
                continue;
            }
            let token = r.token.load(Ordering::Relaxed);
            if Some(token) == me || !matches!(owners.probe(token), Probe::Dead) {
                continue;
            }
            r.clear();
            if group == g1 {
                let ungranted = count.min(*g1_left);
                *g1_left -= ungranted;
                *signals = signals.saturating_sub(count - ungranted);
                woke |= *signals != 0;
            } else {
                *g2_len = g2_len.saturating_sub(count);
            }
        }
        woke
    }

    /// Releases the lock (held by the caller), sleeps as `policy` says until
    /// notified or `deadline`, and re-acquires the lock. Returns the re-acquire
    /// result and whether a notification ended the wait (rather than the
    /// deadline).
    pub fn wait(
        &self,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        owners: &(impl Owners + ?Sized),
    ) -> Result<(Result<Acquired, MutexError>, bool), ReleaseError> {
        if !self.lock.is_owned_by_me() {
            return Err(ReleaseError::NotOwner);
        }
        let (my, me) = self.join(owners);
        let mut w = self.park(my).waiter(policy, deadline);
        self.lock.release()?;
        loop {
            let timed_out = loop {
                let seen = w.load();
                if self.peek(my) {
                    break false;
                }
                if w.sleep(seen, no_probe).is_err() {
                    break true;
                }
            };
            let relocked = self.relock(policy, owners, deadline);
            let owner_died = match relocked {
                Ok(Acquired::Clean) => false,
                Ok(Acquired::OwnerDied) => true,
                // Not holding the lock: the counts cannot be updated. The lock
                // is unusable (or the OS failed), so no notify can follow.
                Err(_) => return Ok((relocked, false)),
            };
            let give_up = timed_out || owner_died || w.timed_out();
            if let Some(notified) = self.decide(my, give_up, me) {
                return Ok((relocked, notified));
            }
            // Another member consumed the signal we peeked: wait on.
            self.lock.release()?;
        }
    }

    /// Re-takes the lock after a wait. The notifier still holds it for a
    /// moment: try while spinning before blocking, so a quick release costs no
    /// futex sleep.
    ///
    /// A timed wait re-takes it by its deadline, or [`RELOCK_GRACE`] after
    /// now if that is later (a wait that ends by its timeout while a notifier
    /// holds the lock for a moment still gets it): a holder that keeps the
    /// lock, or a peer that wrote a live owner into the word, cannot make a
    /// timed wait block past its timeout. Then the call fails with
    /// `TimedOut`, not holding the lock; its place among the waiters stays
    /// counted (its process lives, so no `notify` takes it out) and may absorb
    /// one later grant.
    fn relock(
        &self,
        policy: WaitPolicy,
        owners: &(impl Owners + ?Sized),
        deadline: Option<Deadline>,
    ) -> Result<Acquired, MutexError> {
        if policy != WaitPolicy::Park {
            let mut tried = None;
            spin::spin_until(|| match self.lock.acquire(How::Try, owners) {
                Err(MutexError::WouldBlock) => false,
                r => {
                    tried = Some(r);
                    true
                }
            });
            if let Some(r) = tried {
                return r;
            }
        }
        match deadline {
            None => self.lock.acquire(How::Block, owners),
            Some(d) => {
                let until = d.max(Deadline::after(RELOCK_GRACE));
                self.lock.acquire(How::Until(until), owners)
            }
        }
    }

    /// Loom only: the caller (holding the lock) joins the waiters as
    /// [`Self::wait`] does, releases the lock and its "process" dies before
    /// it sleeps: a waiter SIGKILLed in its wait.
    #[cfg(loom)]
    pub fn join_and_die(&self, owners: &(impl Owners + ?Sized)) -> Result<(), ReleaseError> {
        if !self.lock.is_owned_by_me() {
            return Err(ReleaseError::NotOwner);
        }
        let _ = self.join(owners);
        self.lock.release()?;
        crate::loom::kill_current_process();
        Ok(())
    }

    /// Wakes up to `n` of the current live waiters (`owners` probes the
    /// recorded ones). The caller must hold the lock.
    pub fn notify(&self, n: u32, owners: &(impl Owners + ?Sized)) -> Result<(), ReleaseError> {
        if !self.lock.is_owned_by_me() {
            return Err(ReleaseError::NotOwner);
        }
        let mut g1 = self.g1.load(Ordering::Relaxed);
        let mut g1_left = self.g1_left.load(Ordering::Relaxed);
        let mut signals = self.signals.load(Ordering::Relaxed);
        let mut g2_len = self.g2_len.load(Ordering::Relaxed);
        let mut granted = 0u32;
        if self.purge(owners, g1, &mut g1_left, &mut signals, &mut g2_len) {
            // A dead member may have been the one a grant woke: let the live
            // ones look at the grants left.
            granted = signals;
        }
        let mut left = n;
        while left != 0 {
            if g1_left != 0 {
                let k = left.min(g1_left);
                g1_left -= k;
                left -= k;
                signals = signals.saturating_add(k);
                granted = granted.saturating_add(k);
            } else if g2_len != 0 {
                // Close G1: everyone left in it was granted. Publish the new
                // groups before bumping the old word, so its members' peeks
                // after the bump see the close.
                let old = g1;
                g1 = g1.wrapping_add(1);
                (g1_left, signals, g2_len) = (g2_len, 0, 0);
                self.store(g1, g1_left, signals, g2_len);
                self.forget(old);
                self.bump(old, u32::MAX);
                granted = 0;
            } else {
                break;
            }
        }
        self.store(g1, g1_left, signals, g2_len);
        if granted != 0 {
            self.bump(g1, granted);
        }
        Ok(())
    }

    /// Under the lock: forgets the records of `group`, which just closed.
    fn forget(&self, group: u32) {
        for r in &self.records {
            if r.count.load(Ordering::Relaxed) != 0 && r.group.load(Ordering::Relaxed) == group {
                r.clear();
            }
        }
    }

    fn store(&self, g1: u32, g1_left: u32, signals: u32, g2_len: u32) {
        self.g1.store(g1, Ordering::Relaxed);
        self.g1_left.store(g1_left, Ordering::Relaxed);
        self.signals.store(signals, Ordering::Relaxed);
        self.g2_len.store(g2_len, Ordering::Relaxed);
    }

    /// Publishes a grant to `group` and wakes up to `n` of its sleepers.
    fn bump(&self, group: u32, n: u32) {
        let park = self.park(group);
        // SYNC(grant): Release publishes the fields stored above to peekers.
        self.words[(group & 1) as usize].fetch_add(1, Ordering::AcqRel);
        park.wake_counted(n);
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
    use crate::park::WaitPolicy;
    use crate::region::{Object, Region, RegionOptions, SharedObject};
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
        policy: WaitPolicy,
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
            Condition {
                obj,
                policy: WaitPolicy::default(),
            }
        }

        /// This handle with another [`WaitPolicy`] for its waits (clones made
        /// from it inherit it).
        pub fn with_wait_policy(mut self, policy: WaitPolicy) -> Condition {
            self.policy = policy;
            self
        }

        /// The [`WaitPolicy`] of this handle's waits.
        pub fn wait_policy(&self) -> WaitPolicy {
            self.policy
        }

        /// A new condition in an anonymous shared mapping.
        pub fn anonymous() -> Result<Condition, Error> {
            Ok(Condition::from_object(Region::create_object(
                None,
                RegionOptions::default(),
                &(),
            )?))
        }

        /// Creates a condition under `name`.
        pub fn create(name: &str) -> Result<Condition, Error> {
            Condition::create_with(name, RegionOptions::default())
        }

        /// [`Condition::create`] with explicit region options.
        pub fn create_with(name: &str, opts: RegionOptions) -> Result<Condition, Error> {
            Ok(Condition::from_object(Region::create_object(
                Some(name),
                opts,
                &(),
            )?))
        }

        /// Opens the condition `name`.
        pub fn open(name: &str) -> Result<Condition, Error> {
            Ok(Condition::from_object(Region::open_object(name)?))
        }

        /// `open` with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<Condition, Error> {
            Ok(Condition::from_object(Region::open_object_with(
                name, opts,
            )?))
        }

        /// Opens the condition `name`, creating it if the name does not
        /// exist; race-free between concurrent starters (see
        /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
        pub fn open_or_create(name: &str) -> Result<Condition, Error> {
            Condition::open_or_create_with(name, RegionOptions::default())
        }

        /// [`Condition::open_or_create`] with region options (creation and
        /// trust).
        pub fn open_or_create_with(name: &str, opts: RegionOptions) -> Result<Condition, Error> {
            Ok(Condition::from_object(Region::open_or_create_object(
                name,
                opts,
                &(),
            )?))
        }

        /// Acquires the condition's lock.
        /// As with [`Lock::lock`](crate::Lock::lock), the error carries the
        /// guard: `.map_err(|e| e.without_guard())?` passes it up into a
        /// `'static` error such as `Box<dyn Error>`.
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
            // A guard a forked child inherited holds nothing here (its parent
            // released): as foreign to this wait as another lock's.
            if !std::ptr::eq(guard.raw(), raw.lock()) || guard.inherited() {
                return Err(LockError::WrongLock(guard));
            }
            let was_inconsistent = !guard.is_consistent();
            if was_inconsistent {
                // Waiting on unrepaired state would hand it to the next locker as
                // if it were fine: hand the guard back instead.
                return Err(LockError::OwnerDied(guard));
            }
            guard.forget_release();
            match raw.wait(self.policy, deadline, self.obj.region()) {
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
        ///
        /// Re-taking the lock is bounded too (by the timeout, or 2 ms after
        /// the wait ended if that is later): if another holder keeps the lock
        /// past that, the call fails with [`LockError::Timeout`] and the lock
        /// is *not* held. Python's `wait(timeout)` blocks on the re-acquire
        /// instead; here no holder, and no peer writing the lock word, can
        /// keep a timed call past its timeout.
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
        /// Re-taking the lock is bounded as in [`Condition::wait_timeout`].
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
            self.obj.get().notify(n, self.obj.region())
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
