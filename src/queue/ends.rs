//! Who still holds a queue's ends: the sender/receiver counts behind
//! disconnection.
//!
//! ## In shared memory: one counter per participant and role
//!
//! ```text
//! ends[2 * i + SEND]   bits 32..64 generation of participant i's membership
//! ends[2 * i + RECV]   bits  0..32 handles of that role it holds
//! ```
//!
//! A process adjusts only the entries of its own participant index, with a CAS
//! that also stamps its generation: an entry stamped with another generation
//! belongs to an earlier holder of that participant slot (gone, since the slot
//! is now ours) and counts as 0. So a process that was killed, or exited
//! without dropping its handles, leaves behind only entries stamped with its
//! own membership, which any reader discounts once the participant table says
//! that membership is dead or gone. No global counter exists for a crash to
//! leave wrong.
//!
//! A reader (a getter asking "is any sender left?") scans the entries of its
//! peers' role, probing the membership of each non-zero one; entries are
//! untrusted like every shared word: the scan is bounded by the handle's
//! validated table length, an impossible generation probes as gone, and a
//! wrong count can only make a peer look alive (then the caller keeps waiting
//! in bounded slices) or dead (then the caller gets `Disconnected`), never
//! make this process misbehave otherwise.
//!
//! ## In this process: counts per mapping, for `fork`
//!
//! A forked child inherits copies of every handle, and so must count as their
//! holder from the moment it exists (Python: the child inherits the pipe's
//! file descriptors). [`Local`] keeps this process's counts for one mapping;
//! the crate's `fork` calls [`inherit_in_child`] in the child before the
//! child's closure runs, which publishes every mapping's counts under the
//! child's own membership, and the parent's `fork` returns only after the
//! child has done so (or died), so a parent that drops its copy right after
//! forking never makes its peers see a false disconnection. A child made by a
//! raw `fork` publishes its inherited counts when it first creates, clones,
//! drops or closes a handle of that mapping.
//!
//! SYNC(ends): every adjustment is an AcqRel RMW, and a reader loads with
//! Acquire. A sender that drops its last handle after its last put made the
//! put happen-before its decrement; a getter that reads the decremented entry
//! then re-checks the ring and sees the item. After its process's count for a
//! role reaches 0, the dropper bumps the peers' eventcount (`not_empty` for the
//! last sender, `not_full` for the last receiver), so a waiter that checked the
//! counts before the drop either fails its arming CAS or is woken (the park
//! argument, `crate::park`).

use std::sync::{Arc, OnceLock, Weak};

use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::region::Region;
use crate::region::participants::{Liveness, Member};

/// Index of the sender entry within a participant's pair.
pub(crate) const SEND: usize = 0;
/// Index of the receiver entry.
pub(crate) const RECV: usize = 1;

/// What a handle counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A plain queue handle: sender and receiver.
    Both,
    /// A `Sender`.
    Send,
    /// A `Receiver`.
    Recv,
}

impl Role {
    fn sends(self) -> bool {
        matches!(self, Role::Both | Role::Send)
    }

    fn receives(self) -> bool {
        matches!(self, Role::Both | Role::Recv)
    }
}

/// The shared entry table of one mapping: `2 * len` words at `base`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table {
    pub(crate) base: *const AtomicU64,
    /// Participant entries (validated `owners_len`, process-local).
    pub(crate) len: usize,
}

impl Table {
    fn entry(&self, index: usize, role: usize) -> Option<&AtomicU64> {
        if index >= self.len || role > 1 {
            return None;
        }
        // SAFETY: `index < len` (the validated owner-table length) and the
        // entry table of `2 * len` 8-aligned words lies inside the object's
        // validated bytes (`shared::layout`); the mapping outlives the handle
        // that owns this table copy.
        Some(unsafe { &*self.base.add(2 * index + role) })
    }
}

fn count_of(v: u64, generation: u32) -> u32 {
    if (v >> 32) as u32 == generation {
        v as u32
    } else {
        0
    }
}

/// Adds `delta` to member `m`'s entry for `role`; returns the new count.
fn adjust(t: &Table, m: Member, role: usize, delta: i64) -> Option<u32> {
    let e = t.entry(m.index as usize, role)?;
    let mut cur = e.load(Ordering::Relaxed);
    loop {
        let n = i64::from(count_of(cur, m.generation));
        let n = (n + delta).clamp(0, i64::from(u32::MAX)) as u32;
        let new = u64::from(m.generation) << 32 | u64::from(n);
        // SYNC(ends): AcqRel (module doc).
        match e.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return Some(n),
            Err(now) => cur = now,
        }
    }
}

/// A process-local lock that a forked child can always take: the word holds
/// the holder's fork epoch, and a hold from another epoch belongs to a thread
/// of an ancestor, which does not exist in this process (a `std` mutex held
/// at the fork would stay locked in the child for good). Critical sections
/// are a few loads and one shared CAS, so waiting is a yield loop.
struct ForkLock<T> {
    /// 0: free; `epoch << 32 | 1`: held by a thread of the process with that
    /// fork epoch.
    word: AtomicU64,
    cell: crate::loom::cell::UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to `T` (an ancestor's
// stale hold is from a thread that does not run in this process).
unsafe impl<T: Send> Sync for ForkLock<T> {}
// SAFETY: as above; `T` moves with the lock.
unsafe impl<T: Send> Send for ForkLock<T> {}

struct ForkGuard<'a, T> {
    lock: &'a ForkLock<T>,
}

impl<T> ForkLock<T> {
    fn new(v: T) -> ForkLock<T> {
        ForkLock {
            word: AtomicU64::new(0),
            cell: crate::loom::cell::UnsafeCell::new(v),
        }
    }

    /// Takes the lock; `None` if `wait` is false and a thread of this process
    /// holds it.
    fn acquire(&self, wait: bool) -> Option<ForkGuard<'_, T>> {
        let me = u64::from(crate::sys::process::fork_epoch()) << 32 | 1;
        loop {
            let cur = self.word.load(Ordering::Relaxed);
            if cur == 0 || cur >> 32 != me >> 32 {
                // Acquire: pairs with the Release in `ForkGuard::drop`.
                if self
                    .word
                    .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(ForkGuard { lock: self });
                }
                continue;
            }
            if !wait {
                return None;
            }
            std::thread::yield_now();
        }
    }

    fn lock(&self) -> ForkGuard<'_, T> {
        loop {
            if let Some(g) = self.acquire(true) {
                return g;
            }
        }
    }
}

impl<T> std::ops::Deref for ForkGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no other thread of this process
        // touches the cell until it is dropped.
        self.lock.cell.with(|p| unsafe { &*p })
    }
}

impl<T> std::ops::DerefMut for ForkGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow.
        self.lock.cell.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T> Drop for ForkGuard<'_, T> {
    fn drop(&mut self) {
        // Release: the next holder sees what this one wrote.
        self.lock.word.store(0, Ordering::Release);
    }
}

/// This process's counts for one mapping.
#[derive(Debug, Default)]
struct Counts {
    /// `fork_epoch` of the process these counts are published for (0: none).
    epoch: u32,
    senders: u32,
    receivers: u32,
    send_closed: bool,
    recv_closed: bool,
}

impl Counts {
    /// What this process contributes to the shared entries.
    fn published(&self, role: usize) -> u32 {
        match role {
            SEND if !self.send_closed => self.senders,
            RECV if !self.recv_closed => self.receivers,
            _ => 0,
        }
    }
}

/// Process-local end accounting for one mapping of a queue, shared by every
/// handle made from it in this process.
pub(crate) struct Local {
    region: Arc<dyn RegionRef>,
    table: Table,
    counts: ForkLock<Counts>,
    /// Mirrors of the close flags, read by `put` without the mutex.
    send_closed: AtomicU32,
    recv_closed: AtomicU32,
    /// A participant index found holding a live peer last time: checked first.
    hint: [AtomicU32; 2],
    /// Lock-free mirror of what `counts` publishes: `epoch << 32 | count`
    /// per role, read by [`Local::any_live`] (a hot `try_get` on an empty
    /// queue must not take the mutex).
    mirror: [AtomicU64; 2],
    /// Wakes the eventcount waiters of `role` (`SEND` wakes getters).
    wake: Box<dyn Fn(usize) + Send + Sync>,
}

// SAFETY: `table.base` points into the mapping that `region` keeps alive; all
// shared access goes through atomics.
unsafe impl Send for Local {}
// SAFETY: as above.
unsafe impl Sync for Local {}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("table", &self.table).finish()
    }
}

/// A way to reach the region (and so the participant table) of a mapping
/// without naming the queue's kind.
pub(crate) trait RegionRef: Send + Sync {
    fn region(&self) -> &Region;
}

/// Every live [`Local`] of this process, for [`inherit_in_child`].
static LOCALS: OnceLock<ForkLock<Vec<Weak<Local>>>> = OnceLock::new();

fn locals() -> &'static ForkLock<Vec<Weak<Local>>> {
    LOCALS.get_or_init(|| ForkLock::new(Vec::new()))
}

impl Local {
    /// Accounting for a mapping whose entry table is `table`; `wake(role)`
    /// bumps and wakes the eventcount of the waiters that wait on `role`'s
    /// holders.
    pub(crate) fn new(
        region: Arc<dyn RegionRef>,
        table: Table,
        wake: Box<dyn Fn(usize) + Send + Sync>,
    ) -> Arc<Local> {
        let l = Arc::new(Local {
            region,
            table,
            counts: ForkLock::new(Counts::default()),
            send_closed: AtomicU32::new(0),
            recv_closed: AtomicU32::new(0),
            hint: [AtomicU32::new(0), AtomicU32::new(0)],
            mirror: [AtomicU64::new(0), AtomicU64::new(0)],
            wake,
        });
        let mut all = locals().lock();
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&l));
        l
    }

    fn member(&self) -> Option<Member> {
        self.region.region().member()
    }

    fn lock(&self) -> ForkGuard<'_, Counts> {
        self.counts.lock()
    }

    /// Refreshes the lock-free mirror of `c` (called with the mutex held).
    fn sync_mirror(&self, c: &Counts) {
        for role in [SEND, RECV] {
            // Relaxed: process-local; readers only need a recent value, and
            // the shared entries are what peers rely on.
            self.mirror[role].store(
                u64::from(c.epoch) << 32 | u64::from(c.published(role)),
                Ordering::Relaxed,
            );
        }
    }

    /// Makes `c` the counts published for this process: a child that inherited
    /// them publishes them under its own membership first.
    fn adopt(&self, c: &mut Counts, m: Option<Member>) {
        let epoch = crate::sys::process::fork_epoch();
        if c.epoch == epoch {
            return;
        }
        c.epoch = epoch;
        if let Some(m) = m {
            for role in [SEND, RECV] {
                let n = c.published(role);
                if n != 0 {
                    adjust(&self.table, m, role, i64::from(n));
                }
            }
        }
    }

    /// A handle of `role` was made (created, cloned, split off).
    pub(crate) fn acquire(&self, role: Role) {
        self.change(role, 1);
    }

    /// A handle of `role` was dropped.
    pub(crate) fn release(&self, role: Role) {
        self.change(role, -1);
    }

    fn change(&self, role: Role, delta: i64) {
        let m = self.member();
        let mut c = self.lock();
        self.adopt(&mut c, m);
        let mut emptied = [false; 2];
        for (r, holds) in [(SEND, role.sends()), (RECV, role.receives())] {
            if !holds {
                continue;
            }
            let n = if r == SEND {
                &mut c.senders
            } else {
                &mut c.receivers
            };
            *n = (i64::from(*n) + delta).clamp(0, i64::from(u32::MAX)) as u32;
            let closed = if r == SEND {
                c.send_closed
            } else {
                c.recv_closed
            };
            if closed {
                continue;
            }
            if let Some(m) = m {
                if adjust(&self.table, m, r, delta) == Some(0) && delta < 0 {
                    emptied[r] = true;
                }
            }
        }
        self.sync_mirror(&c);
        drop(c);
        for r in [SEND, RECV] {
            if emptied[r] {
                (self.wake)(r);
            }
        }
    }

    /// This process holds no more `role` ends of this mapping: its handles
    /// stop counting (and refuse to act in that role). Returns whether it was
    /// open.
    pub(crate) fn close(&self, role: usize) -> bool {
        let m = self.member();
        let mut c = self.lock();
        self.adopt(&mut c, m);
        let n = c.published(role);
        let flag = if role == SEND {
            &mut c.send_closed
        } else {
            &mut c.recv_closed
        };
        if *flag {
            return false;
        }
        *flag = true;
        let mirror = if role == SEND {
            &self.send_closed
        } else {
            &self.recv_closed
        };
        // Relaxed: a process-local flag; the shared effect is the RMW below.
        mirror.store(1, Ordering::Relaxed);
        if let (Some(m), true) = (m, n != 0) {
            adjust(&self.table, m, role, -i64::from(n));
        }
        self.sync_mirror(&c);
        drop(c);
        // Both sides: peers' waiters on the other end see the count change,
        // and this process's own calls blocked in `role` (a put waiting for
        // room, a get for an item) wake, read the flag stored above (the
        // bump is an RMW after it) and fail with `Closed`.
        (self.wake)(SEND);
        (self.wake)(RECV);
        true
    }

    /// Whether this process closed its `role` ends of this mapping.
    #[inline]
    pub(crate) fn closed(&self, role: usize) -> bool {
        let f = if role == SEND {
            &self.send_closed
        } else {
            &self.recv_closed
        };
        // Relaxed: process-local.
        f.load(Ordering::Relaxed) != 0
    }

    /// Whether any process may still hold a live `role` end: this process
    /// (if it holds one), else a peer whose membership the participant table
    /// says is alive. Entries of dead or gone members are zeroed on the way.
    pub(crate) fn any_live(&self, role: usize) -> bool {
        // Relaxed: process-local (see `mirror`).
        let mine = self.mirror[role & 1].load(Ordering::Relaxed);
        if (mine >> 32) as u32 == crate::sys::process::fork_epoch() && mine as u32 != 0 {
            return true;
        }
        let region = self.region.region();
        let me = region.member();
        let hint = self.hint[role & 1].load(Ordering::Relaxed) as usize;
        if self.live_at(region, me, hint, role) {
            return true;
        }
        for i in 0..self.table.len {
            if i != hint && self.live_at(region, me, i, role) {
                // Relaxed: a process-local hint.
                self.hint[role & 1].store(i as u32, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    fn live_at(&self, region: &Region, me: Option<Member>, i: usize, role: usize) -> bool {
        let Some(e) = self.table.entry(i, role) else {
            return false;
        };
        // SYNC(ends): Acquire (module doc).
        let v = e.load(Ordering::Acquire);
        if v as u32 == 0 {
            return false;
        }
        let m = Member {
            index: i as u32,
            generation: (v >> 32) as u32,
        };
        if me == Some(m) {
            // Our own entry: another mapping of the same queue in this
            // process holds the role (or a peer scribbled it; then this
            // process waits in bounded slices as for any live peer).
            return true;
        }
        match region.probe(m) {
            Liveness::Alive => true,
            Liveness::Dead | Liveness::Gone => {
                // Discount it for good: a dead or departed member cannot hold
                // handles, and a new holder of the slot stamps a new
                // generation.
                let _ = e.compare_exchange(
                    v,
                    u64::from(m.generation) << 32,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                false
            }
        }
    }

    /// Publishes this mapping's inherited counts for the (forked) calling
    /// process, if not yet done.
    fn inherit(&self) {
        let m = self.member();
        // The child is single-threaded here: a hold it finds is an ancestor
        // thread's, which `ForkLock` takes over.
        if let Some(mut c) = self.counts.acquire(false) {
            self.adopt(&mut c, m);
            self.sync_mirror(&c);
        }
    }
}

/// In a freshly forked child: every mapping's inherited handles start
/// counting under the child's membership (joining its region), except those
/// of the regions `skip` names, if given. Returns at once if this process
/// holds no queue handle.
///
/// A child that will not use some of the queues it inherits (a pool worker
/// and every other worker's inbox) skips them, so it joins only the
/// participant tables it needs and counts as an end only where it is one. A
/// handle it skipped still counts from its first clone, drop or close, as in
/// any process.
pub(crate) fn inherit_in_child(skip: Option<&dyn Fn(&Region) -> bool>) {
    let all: Vec<Arc<Local>> = match locals().acquire(false) {
        Some(v) => v.iter().filter_map(Weak::upgrade).collect(),
        None => return,
    };
    for l in all {
        if !skip.is_some_and(|skip| skip(l.region.region())) {
            l.inherit();
        }
    }
}

/// Whether this process holds any queue handle (so a fork must wait for the
/// child to publish what it inherits).
pub(crate) fn any_held() -> bool {
    locals().lock().iter().any(|w| w.strong_count() > 0)
}

/// The crate's `fork` waits for the child to publish what it inherited.
pub(crate) struct ForkHandshake {
    done: crate::Event,
}

/// The longest a parent's `fork` waits for its child to publish its counts
/// (a child stopped by a signal must not stop its parent for good).
const HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

impl ForkHandshake {
    /// Before forking: `None` if this process holds no queue handle (then
    /// `fork` costs nothing more).
    pub(crate) fn before_fork() -> Option<ForkHandshake> {
        if !any_held() {
            return None;
        }
        crate::Event::anonymous()
            .ok()
            .map(|done| ForkHandshake { done })
    }

    /// In the child, first thing: publishes the inherited counts (but those
    /// `skip` names: [`inherit_in_child`]), then releases the parent.
    pub(crate) fn in_child(&self, skip: Option<&dyn Fn(&Region) -> bool>) {
        inherit_in_child(skip);
        self.done.set();
    }

    /// In the parent: waits until the child `pid` published (or died).
    pub(crate) fn in_parent(self, pid: u32) {
        let limit = crate::loom::Deadline::after(HANDSHAKE_LIMIT);
        while !self.done.wait_timeout(std::time::Duration::from_millis(10)) {
            if crate::sys::process::is_alive(pid, 0) == Some(false) || limit.passed() {
                return;
            }
        }
    }
}
