//! The ring core: a bounded MPMC queue over a trailing slot array, tolerant of a
//! participant dying at any instruction.
//!
//! ## Algorithm
//!
//! Vyukov's bounded MPMC queue (per-slot sequence numbers, 1024cores.net), with
//! the per-slot sequence widened to a 64-bit *slot word* so that claiming a slot
//! and recording who claimed it is one CAS (robustness note §4.4):
//!
//! ```text
//! bits 18..64  seq     Vyukov's sequence: for position p, p = free for a writer,
//!                      p+1 = full, p+capacity = free for the next lap
//! bit  17      POISON  the writer died (or was refused after close): readers skip
//! bit  16      BUSY    claimed by `owner`, who is copying the payload in or out
//! bits 0..16   owner   participant index + 1 of the claimant (0 = anonymous)
//! ```
//!
//! | transition | by | CAS |
//! |---|---|---|
//! | claim for writing | producer | `(p, -)` → `(p, BUSY, me)` |
//! | publish | the same producer | `(p, BUSY, me)` → `(p+1, -)` (Release) |
//! | claim for reading | consumer | `(p+1, -)` → `(p+1, BUSY, me)` (Acquire) |
//! | free | the same consumer | `(p+1, BUSY, me)` → `(p+cap, -)` (Release) |
//! | writer died | any survivor | `(p, BUSY, w)` → `(p+1, POISON)` |
//! | refused after close | the producer | `(p, BUSY, me)` → `(p+1, POISON)` |
//! | skip poison | any consumer | `(p+1, POISON)` → `(p+cap, -)` |
//! | reader died | any survivor | `(p+1, BUSY, r)` → `(p+cap, -)` (at-most-once) |
//!
//! `head` and `tail` are *hints*: the claim is the slot CAS, and any thread that
//! finds the slot at the hint already claimed for this lap advances the hint, so
//! progress never depends on one participant surviving.
//!
//! ## Blocking and closing
//!
//! Two eventcount words, `not_empty` and `not_full`:
//!
//! ```text
//! bit 0   CLOSED  (not_empty only) set once by close
//! bit 1   SLEEPERS a waiter may be asleep on this word
//! 2..32   epoch, bumped (+4, wrapping) by every put (not_empty) / get (not_full)
//! ```
//!
//! A producer bumps `not_empty` with one RMW *after claiming and before
//! publishing*: the RMW tells it whether the queue was closed (then it poisons its
//! own slot and hands the item back) and whether someone sleeps (then it wakes
//! them after publishing). Waiting is [`crate::park`]'s loop in bit mode
//! (`SLEEPERS` is the sleeper bit): a getter reads the word, checks the ring, and
//! sleeps only if a CAS setting `SLEEPERS` succeeds on the unchanged word, so a put
//! that slipped in between makes the CAS fail; puts after the CAS see `SLEEPERS`.
//! The wait layer owns the spin, the growing sleep slices (an idle waiter wakes at
//! most ~10 times a second) and the probe run between slices; the ring's probe asks
//! whether any live process still holds the other end (`super::ends`), and a
//! waiter that finds the head or tail slot held by a dead owner recovers it on its
//! next look (at most one slice, 100 ms, after the death). Because every
//! access to these words is an RMW except the getter's first load (which then
//! synchronizes with the release sequence of RMWs), no store-load race exists and
//! no `SeqCst` is needed. A put or get with nobody asleep makes no syscall.
//!
//! The last sender (receiver) of a process going away bumps `not_empty`
//! (`not_full`) with an RMW after its count's RMW ([`RingCore::ends_changed`]), so
//! the same argument covers disconnection: a getter that read the counts before
//! the drop fails its arming CAS or is woken. A getter reports `Disconnected`
//! only after reading "no live sender" and then finding the ring still empty.
//!
//! A getter returns `Closed` only when it saw `CLOSED` *before* finding the head
//! slot free and unclaimed: any producer that claims that slot afterwards bumps the
//! word after the close in modification order, so it sees `CLOSED` and poisons its
//! slot instead of publishing. Nothing published is ever stranded behind `Closed`.
//!
//! ## Deaths
//!
//! A slot stuck `BUSY` is recovered by whoever finds it in its way (a getter at the
//! head, a putter at the tail, or [`RingCore::recover_all`]) once the owner is
//! confirmed dead through the participant table; waiters sleep in slices so they
//! notice a death nobody announces. At most one message per dead process (the one
//! it was copying) is lost inside the ring, and every such loss is counted in
//! `abandoned`; an item a consumer had already taken is beyond the ring's sight.
//!
//! ## Shared words are untrusted
//!
//! The slot count and payload size stored here are read only when a handle
//! validates the region; operations take the count from [`Slots::capacity`]
//! (the handle's copy), mask every index with it, wrap every position, clamp
//! `len`, and bound every claim loop ([`budget`]) and every wait (the caller's
//! deadline), so a peer that scribbles over the ring can make operations fail
//! or return wrong values, never index out of bounds or spin forever.

#[cfg(not(loom))]
use std::time::Duration;

use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
use crate::loom::futex;
use crate::loom::hint::spin_loop;
use crate::park::{Park, Unparked, WaitPolicy, no_probe};

const OWNER_MASK: u64 = 0xffff;
const BUSY: u64 = 1 << 16;
const POISON: u64 = 1 << 17;
const SEQ_SHIFT: u32 = 18;
/// Sequence numbers are the low 46 bits of a position.
const SEQ_MASK: u64 = (1 << (64 - SEQ_SHIFT)) - 1;

/// `not_empty` only: the queue is closed.
pub(crate) const CLOSED: u32 = 1;
/// A waiter may be asleep on the word.
const SLEEPERS: u32 = 2;
/// One epoch step.
const EPOCH: u32 = 4;

/// The most slots one batch call claims.
pub(crate) const BATCH: usize = 64;

/// The largest number of slots (2^28): creation touches every slot word, so an
/// absurd capacity must be refused up front rather than exhaust memory.
pub(crate) const MAX_CAPACITY: u64 = 1 << 28;

/// Moves a `head`/`tail` hint from `pos` to `pos.wrapping_add(1)` if nobody did already.
///
/// SYNC(hint): Release, paired with the Acquire in [`hint`]: a thread that
/// learns a position from the hint also learns every claim made before the
/// hint moved past it, so a getter that synchronizes with a later producer
/// cannot see an earlier claimed slot as free (loom found the Relaxed version
/// losing a wake-up behind a dead writer's claim).
#[inline]
fn advance(h: &AtomicU64, pos: u64) {
    let _ = h.compare_exchange(
        pos,
        pos.wrapping_add(1),
        Ordering::Release,
        Ordering::Relaxed,
    );
}

/// Reads a `head`/`tail` hint (Acquire: see [`advance`]).
#[inline]
fn hint(h: &AtomicU64) -> u64 {
    h.load(Ordering::Acquire)
}

/// The slot index of position `pos` (masked by the handle's capacity).
#[inline]
fn index<S: Slots>(slots: &S, pos: u64) -> usize {
    (pos & slots.capacity().wrapping_sub(1)) as usize
}

/// How many times one non-blocking call may go round its claim loop before it
/// reports the ring full (or empty). In a sound ring each round is progress: a
/// lost CAS means another process claimed a slot, and the hint lags by at most
/// the number of claimers in flight. A ring a peer scribbled over (sequence
/// numbers far ahead of the hints, say) could otherwise keep a caller advancing
/// hints for 2^46 rounds; with the budget it costs a few microseconds and the
/// operation's own error (`Full`/`Empty`, so a blocking call sleeps a slice and
/// looks again, never past its deadline).
#[inline]
fn budget<S: Slots>(slots: &S) -> u32 {
    (slots.capacity().min(1 << 14) as u32) * 2 + 1024
}

#[inline]
fn pack(pos: u64, flags: u64, owner: u16) -> u64 {
    ((pos & SEQ_MASK) << SEQ_SHIFT) | flags | u64::from(owner)
}

#[inline]
fn seq(w: u64) -> u64 {
    w >> SEQ_SHIFT
}

#[inline]
fn owner_of(w: u64) -> u16 {
    (w & OWNER_MASK) as u16
}

/// `seq - pos` as a signed distance on the 46-bit circle.
#[inline]
fn dist(seq: u64, pos: u64) -> i64 {
    ((seq.wrapping_sub(pos & SEQ_MASK) << SEQ_SHIFT) as i64) >> SEQ_SHIFT
}

/// Where the payload bytes of each slot live. The real queue points into a
/// region; loom tests use a heap array of loom cells.
///
/// The slot count comes from here, never from the shared [`RingCore`]: the real
/// queue's handle validated it against its mapping once at open and keeps it.
pub(crate) trait Slots {
    /// Number of slots: a power of two >= 2, fixed for the handle's life.
    fn capacity(&self) -> u64;
    /// The slot word of slot `i` (`i < capacity`).
    fn word(&self, i: usize) -> &AtomicU64;
    /// Runs `f` with slot `i`'s payload for writing. The caller owns the slot.
    fn write<R>(&self, i: usize, f: impl FnOnce(&mut [u8]) -> R) -> R;
    /// Runs `f` with slot `i`'s payload for reading. The caller owns the slot.
    fn read<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> R;
}

/// Why a non-blocking put did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutFail {
    /// No free slot at the tail. `Some(owner)` when the slot is held by a reader
    /// (who may have died).
    Full(Option<u16>),
    /// The queue is closed.
    Closed,
}

/// Why a non-blocking get did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetFail {
    /// Nothing at the head. `Some(owner)` when a writer holds the head slot (an
    /// item is on its way, unless that writer died).
    Empty(Option<u16>),
}

/// Why a blocking operation gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFail {
    /// The deadline passed.
    Timeout,
    /// The queue is closed (and, for getters, drained).
    Closed,
    /// No live peer holds the other end: no sender is left (for getters, once
    /// drained) or no receiver (for putters, while full).
    Disconnected,
}

/// How long a getter that found a writer mid-copy at the head sleeps before it
/// looks again (the writer is normally done within nanoseconds; this only matters
/// when it was descheduled or died).
#[cfg(not(loom))]
const IN_FLIGHT_NAP: Duration = Duration::from_millis(1);

/// Counters kept in shared memory (Relaxed: statistics only).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RingStats {
    /// Messages lost because their writer or reader died mid-copy.
    pub(crate) abandoned: AtomicU64,
    /// Slots recovered from dead writers (poisoned).
    pub(crate) dead_writers: AtomicU64,
    /// Slots recovered from dead readers (freed).
    pub(crate) dead_readers: AtomicU64,
}

/// A 128-byte line so that words written by different processes never share one.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Line<T>(pub(crate) T);

/// The ring's shared header. The slot array follows it in the region.
#[repr(C)]
#[derive(Debug)]
pub struct RingCore {
    /// Number of slots, a power of two. Immutable after creation.
    capacity: u64,
    /// Payload bytes per slot. Immutable after creation.
    payload: u64,
    /// Producers' hint: the next position to write.
    tail: Line<AtomicU64>,
    /// Consumers' hint: the next position to read.
    head: Line<AtomicU64>,
    /// Eventcount for getters; carries `CLOSED`.
    not_empty: Line<AtomicU32>,
    /// Eventcount for putters.
    not_full: Line<AtomicU32>,
    pub(crate) stats: Line<RingStats>,
    /// `JoinableQueue` accounting.
    tasks: Line<Tasks>,
}

/// Unfinished-task accounting for joinable queues.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Tasks {
    /// Items put and not yet marked done. SYNC(tasks): decrements are AcqRel
    /// RMWs followed by an RMW bump of `joined`.
    unfinished: AtomicU64,
    /// Eventcount for `join` (`SLEEPERS` bit + epoch).
    joined: AtomicU32,
    /// 1 for a joinable queue. Written once at creation.
    joinable: AtomicU32,
}

impl RingCore {
    /// A ring of `capacity` slots (a power of two, checked by the caller) of
    /// `payload` bytes each; `joinable` enables task accounting.
    pub fn new(capacity: u64, payload: u64, joinable: bool) -> RingCore {
        RingCore {
            capacity,
            payload,
            tail: Line(AtomicU64::new(0)),
            head: Line(AtomicU64::new(0)),
            not_empty: Line(AtomicU32::new(0)),
            not_full: Line(AtomicU32::new(0)),
            stats: Line(RingStats {
                abandoned: AtomicU64::new(0),
                dead_writers: AtomicU64::new(0),
                dead_readers: AtomicU64::new(0),
            }),
            tasks: Line(Tasks {
                unfinished: AtomicU64::new(0),
                joined: AtomicU32::new(0),
                joinable: AtomicU32::new(u32::from(joinable)),
            }),
        }
    }

    /// Offsets of the shared words from the ring's start, by name (tests and
    /// the hostile-peer suite scribble over them).
    #[cfg(not(loom))]
    pub(crate) fn field_offsets() -> Vec<(&'static str, usize)> {
        use std::mem::offset_of;
        vec![
            ("capacity", offset_of!(RingCore, capacity)),
            ("payload", offset_of!(RingCore, payload)),
            ("tail", offset_of!(RingCore, tail)),
            ("head", offset_of!(RingCore, head)),
            ("not_empty", offset_of!(RingCore, not_empty)),
            ("not_full", offset_of!(RingCore, not_full)),
            ("stats", offset_of!(RingCore, stats)),
            ("tasks", offset_of!(RingCore, tasks)),
        ]
    }

    /// Whether task accounting is on.
    pub fn is_joinable(&self) -> bool {
        self.tasks.0.joinable.load(Ordering::Relaxed) != 0
    }

    /// Counts `n` more unfinished tasks (before the items are published).
    pub(crate) fn task_add(&self, n: u64) {
        // Relaxed: the item's Release publish orders this before any get, and so
        // before any `task_done` for it.
        self.tasks.0.unfinished.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks one task done; `false` (and no change) if none is unfinished.
    pub fn task_done(&self) -> bool {
        let mut n = self.tasks.0.unfinished.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return false;
            }
            match self.tasks.0.unfinished.compare_exchange_weak(
                n,
                n - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        if n == 1 {
            self.bump(&self.tasks.0.joined);
        }
        true
    }

    /// Unfinished tasks now.
    pub fn unfinished(&self) -> u64 {
        self.tasks.0.unfinished.load(Ordering::Acquire)
    }

    /// Waits until every task is done, or `deadline`; returns whether it is.
    pub fn join_wait(&self, policy: WaitPolicy, deadline: Option<Deadline>) -> bool {
        let mut w = Park::bit(&self.tasks.0.joined, SLEEPERS).waiter(policy, deadline);
        loop {
            // SYNC(tasks): read before `unfinished`, as for the ring's eventcounts.
            let seen = w.load();
            if self.unfinished() == 0 {
                return true;
            }
            if w.sleep(seen, no_probe).is_err() {
                return self.unfinished() == 0;
            }
        }
    }

    /// The initial word of slot `i`: free for position `i`.
    pub fn initial_word(i: u64) -> u64 {
        pack(i, 0, 0)
    }

    /// The slot count as stored in shared memory. Untrusted: read only to
    /// validate a region at open; every operation uses the capacity the handle
    /// validated and keeps ([`Slots::capacity`]).
    pub fn stored_capacity(&self) -> u64 {
        // SAFETY: `self.capacity` is a plain, aligned field of a live object; a
        // volatile read takes whatever a peer left there, which is then checked.
        unsafe { std::ptr::read_volatile(&self.capacity) }
    }

    /// Payload bytes per slot as stored (untrusted, as [`Self::stored_capacity`]).
    pub fn stored_payload(&self) -> u64 {
        // SAFETY: as in `stored_capacity`.
        unsafe { std::ptr::read_volatile(&self.payload) }
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.not_empty.0.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Closes the queue: later puts fail, getters drain what is left then fail.
    /// Wakes every waiter.
    pub fn close(&self) {
        // AcqRel: joins the release sequence of producers' bumps (see module doc).
        self.not_empty.0.fetch_or(CLOSED, Ordering::AcqRel);
        Park::bit(&self.not_empty.0, SLEEPERS).wake(u32::MAX);
        self.not_full.0.fetch_add(EPOCH, Ordering::AcqRel);
        Park::bit(&self.not_full.0, SLEEPERS).wake(u32::MAX);
    }

    /// Approximate number of items (exact when nobody is mid-operation).
    ///
    /// Clamped to `capacity` (the handle's), so hints a peer scribbled over never
    /// make it exceed the slot count.
    pub fn len(&self, capacity: u64) -> u64 {
        // A snapshot; the hints may lag by the operations in flight.
        let tail = hint(&self.tail.0);
        let head = hint(&self.head.0);
        tail.saturating_sub(head).min(capacity)
    }

    /// Tries to put one item, written by `fill` into the claimed slot.
    pub(crate) fn try_put<S: Slots>(
        &self,
        slots: &S,
        owner: u16,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), PutFail> {
        // Refuse before claiming when the close is already visible, so a refused
        // put leaves no poisoned slot (and `len` stays exact); a put racing the
        // close is still caught by the RMW below.
        if self.is_closed() {
            return Err(PutFail::Closed);
        }
        let mut fill = Some(fill);
        for _ in 0..budget(slots) {
            // Relaxed: a hint; the slot word's Acquire load below is what counts.
            let pos = hint(&self.tail.0);
            let i = index(slots, pos);
            let word = slots.word(i);
            let w = word.load(Ordering::Acquire);
            let d = dist(seq(w), pos);
            if d == 0 && w & (BUSY | POISON) == 0 {
                let claimed = pack(pos, BUSY, owner);
                // Acquire: the previous reader's payload copy-out happened before
                // its Release free of this slot; we must not overwrite it earlier.
                // Release: SYNC(claim) anyone who sees this claim and then bumps
                // an eventcount passes it on, so a getter that synchronizes with
                // that bump cannot see this slot as free (found by loom: a getter
                // slept on a slot a dead writer had claimed).
                if word
                    .compare_exchange(w, claimed, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                advance(&self.tail.0, pos);
                // SYNC(close): the RMW orders this claim against `close` (module doc).
                let ec = self.not_empty.0.fetch_add(EPOCH, Ordering::AcqRel);
                if ec & CLOSED != 0 {
                    // Refused: poison our own slot so readers skip it, unless a
                    // recoverer already did (it thought we were dead).
                    let _ = word.compare_exchange(
                        claimed,
                        pack(pos.wrapping_add(1), POISON, 0),
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                    return Err(PutFail::Closed);
                }
                if self.is_joinable() {
                    self.task_add(1);
                }
                if let Some(f) = fill.take() {
                    slots.write(i, f);
                }
                // SYNC(slot): Release publishes the payload to the reader's
                // Acquire claim. Fails only if a recoverer revoked our claim
                // (mistook us for dead); the payload is then lost, counted as
                // abandoned by that recoverer.
                let _ = word.compare_exchange(
                    claimed,
                    pack(pos.wrapping_add(1), 0, 0),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                if ec & SLEEPERS != 0 {
                    self.wake(&self.not_empty.0);
                }
                return Ok(());
            }
            if d >= 0 {
                // Claimed by another producer for this lap, or published already:
                // the hint is behind. Help it along and retry.
                advance(&self.tail.0, pos);
                continue;
            }
            // The slot still holds the previous lap: full, unless the hint moved.
            if hint(&self.tail.0) != pos {
                continue;
            }
            if self.is_closed() {
                return Err(PutFail::Closed);
            }
            let reader = (w & BUSY != 0 && dist(seq(w), pos) == 1 - slots.capacity() as i64)
                .then(|| owner_of(w));
            return Err(PutFail::Full(reader));
        }
        // Out of budget: only a scribbled ring gets here (see `budget`).
        Err(PutFail::Full(None))
    }

    /// Tries to take one item, read by `drain` from the claimed slot.
    pub(crate) fn try_get<S: Slots, R>(
        &self,
        slots: &S,
        owner: u16,
        drain: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GetFail> {
        let mut drain = Some(drain);
        for _ in 0..budget(slots) {
            let pos = hint(&self.head.0);
            let i = index(slots, pos);
            let word = slots.word(i);
            let w = word.load(Ordering::Acquire);
            let d = dist(seq(w), pos.wrapping_add(1));
            if d == 0 {
                if w & POISON != 0 {
                    // A dead or refused writer's slot: free it for the next lap.
                    if word
                        .compare_exchange(
                            w,
                            pack(pos.wrapping_add(slots.capacity()), 0, 0),
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        advance(&self.head.0, pos);
                        self.bump(&self.not_full.0);
                    }
                    continue;
                }
                if w & BUSY == 0 {
                    let claimed = pack(pos.wrapping_add(1), BUSY, owner);
                    // SYNC(slot): Acquire pairs with the writer's Release publish;
                    // Release for SYNC(claim), as in `try_put`.
                    if word
                        .compare_exchange(w, claimed, Ordering::AcqRel, Ordering::Relaxed)
                        .is_err()
                    {
                        continue;
                    }
                    advance(&self.head.0, pos);
                    let out = match drain.take() {
                        Some(f) => slots.read(i, f),
                        None => continue,
                    };
                    // Release: our copy-out happens before the next writer's claim.
                    let _ = word.compare_exchange(
                        claimed,
                        pack(pos.wrapping_add(slots.capacity()), 0, 0),
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                    self.bump(&self.not_full.0);
                    return Ok(out);
                }
                // Another consumer is reading it: the hint is behind.
                advance(&self.head.0, pos);
                continue;
            }
            if d > 0 {
                advance(&self.head.0, pos);
                continue;
            }
            if hint(&self.head.0) != pos {
                continue;
            }
            let writer = (w & BUSY != 0 && dist(seq(w), pos) == 0).then(|| owner_of(w));
            return Err(GetFail::Empty(writer));
        }
        // Out of budget: only a scribbled ring gets here (see `budget`).
        Err(GetFail::Empty(None))
    }

    /// Puts up to `n` items (at most [`BATCH`]) without waiting: claims as many
    /// free slots as it can, makes *one* eventcount RMW for all of them, then
    /// fills slot `j` with `fill(j, ..)` and publishes it. Returns how many were
    /// put (items `0..k`), `Full` if none fit.
    pub(crate) fn try_put_many<S: Slots>(
        &self,
        slots: &S,
        owner: u16,
        n: usize,
        fill: impl Fn(usize, &mut [u8]),
    ) -> Result<usize, PutFail> {
        if self.is_closed() {
            return Err(PutFail::Closed);
        }
        let n = n.min(BATCH);
        let mut claimed = [0u64; BATCH];
        let mut k = 0;
        let mut rounds = budget(slots);
        while k < n && rounds > 0 {
            rounds -= 1;
            let pos = hint(&self.tail.0);
            let word = slots.word(index(slots, pos));
            let w = word.load(Ordering::Acquire);
            let d = dist(seq(w), pos);
            if d == 0 && w & (BUSY | POISON) == 0 {
                // Acquire: as in `try_put`.
                if word
                    .compare_exchange(
                        w,
                        pack(pos, BUSY, owner),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    advance(&self.tail.0, pos);
                    claimed[k] = pos;
                    k += 1;
                }
                continue;
            }
            if d >= 0 {
                advance(&self.tail.0, pos);
                continue;
            }
            if hint(&self.tail.0) != pos {
                continue;
            }
            break;
        }
        if k == 0 {
            return Err(if self.is_closed() {
                PutFail::Closed
            } else {
                PutFail::Full(None)
            });
        }
        // SYNC(close): one RMW orders all k claims against `close`.
        let ec = self.not_empty.0.fetch_add(EPOCH, Ordering::AcqRel);
        let closed = ec & CLOSED != 0;
        if !closed && self.is_joinable() {
            self.task_add(k as u64);
        }
        for (j, &pos) in claimed[..k].iter().enumerate() {
            let i = index(slots, pos);
            let claimed_word = pack(pos, BUSY, owner);
            let new = if closed {
                pack(pos.wrapping_add(1), POISON, 0)
            } else {
                slots.write(i, |buf| fill(j, buf));
                pack(pos.wrapping_add(1), 0, 0)
            };
            // SYNC(slot): Release publishes the payload (or the poison).
            let _ = slots.word(i).compare_exchange(
                claimed_word,
                new,
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
        if ec & SLEEPERS != 0 {
            self.wake(&self.not_empty.0);
        }
        if closed { Err(PutFail::Closed) } else { Ok(k) }
    }

    /// Takes up to `n` items (at most [`BATCH`]) without waiting; `drain(j, ..)`
    /// reads the `j`-th. One `not_full` RMW for the whole batch. Returns how many
    /// were taken (0 when empty).
    pub(crate) fn try_get_many<S: Slots>(
        &self,
        slots: &S,
        owner: u16,
        n: usize,
        mut drain: impl FnMut(usize, &[u8]),
    ) -> usize {
        let n = n.min(BATCH);
        let mut claimed = [0u64; BATCH];
        let mut k = 0;
        let mut rounds = budget(slots);
        while k < n && rounds > 0 {
            rounds -= 1;
            let pos = hint(&self.head.0);
            let word = slots.word(index(slots, pos));
            let w = word.load(Ordering::Acquire);
            let d = dist(seq(w), pos.wrapping_add(1));
            if d == 0 && w & POISON != 0 {
                if word
                    .compare_exchange(
                        w,
                        pack(pos.wrapping_add(slots.capacity()), 0, 0),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    advance(&self.head.0, pos);
                }
                continue;
            }
            if d == 0 && w & BUSY == 0 {
                // SYNC(slot): Acquire pairs with the writer's Release publish.
                if word
                    .compare_exchange(
                        w,
                        pack(pos.wrapping_add(1), BUSY, owner),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    advance(&self.head.0, pos);
                    claimed[k] = pos;
                    k += 1;
                }
                continue;
            }
            if d >= 0 {
                advance(&self.head.0, pos);
                continue;
            }
            if hint(&self.head.0) != pos {
                continue;
            }
            break;
        }
        for (j, &pos) in claimed[..k].iter().enumerate() {
            let i = index(slots, pos);
            slots.read(i, |buf| drain(j, buf));
            // Release: the copy-out happens before the next writer's claim.
            let _ = slots.word(i).compare_exchange(
                pack(pos.wrapping_add(1), BUSY, owner),
                pack(pos.wrapping_add(slots.capacity()), 0, 0),
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
        if k > 0 {
            self.bump(&self.not_full.0);
        }
        k
    }

    /// `try_get`, telling a closed and drained queue (`Ok(Err(()))`) from a
    /// merely empty one (`Err(..)`). Reads `CLOSED` only after finding the ring
    /// empty, then looks once more, so the fast path touches no eventcount.
    pub(crate) fn try_get_or_closed<S: Slots, R>(
        &self,
        slots: &S,
        owner: u16,
        mut drain: impl FnMut(&[u8]) -> R,
    ) -> Result<Result<R, ()>, GetFail> {
        match self.try_get(slots, owner, &mut drain) {
            Ok(r) => Ok(Ok(r)),
            Err(GetFail::Empty(None)) if self.is_closed() => {
                // CLOSED was read (Acquire) before this second look: if the ring
                // is still empty here, nothing more can be published.
                match self.try_get(slots, owner, &mut drain) {
                    Ok(r) => Ok(Ok(r)),
                    Err(GetFail::Empty(None)) => Ok(Err(())),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One RMW bump of an eventcount; wakes sleepers if any were recorded.
    fn bump(&self, word: &AtomicU32) {
        // AcqRel: the release half publishes the slot change to a getter/putter
        // that reads this word before checking the ring.
        if word.fetch_add(EPOCH, Ordering::AcqRel) & SLEEPERS != 0 {
            self.wake(word);
        }
    }

    /// Clears `SLEEPERS` and wakes every sleeper (and any `park::hook`
    /// watcher) of `word`. The clearing RMW follows the publishing one, so a
    /// waiter that armed in between fails its futex compare (park's bit-mode
    /// argument).
    #[cold]
    fn wake(&self, word: &AtomicU32) {
        word.fetch_and(!SLEEPERS, Ordering::Relaxed);
        Park::bit(word, SLEEPERS).wake(u32::MAX);
    }

    /// Recovers slot `i` if its word is still `w` and `owner_dead(owner)` says the
    /// owner died: a writer's slot is poisoned, a reader's freed. Returns whether
    /// this call recovered it.
    pub(crate) fn recover_slot<S: Slots>(
        &self,
        slots: &S,
        i: usize,
        owner_dead: impl Fn(u16) -> bool,
    ) -> bool {
        let word = slots.word(i);
        let w = word.load(Ordering::Acquire);
        if w & BUSY == 0 || !owner_dead(owner_of(w)) {
            return false;
        }
        // A slot at lap position p is free/being written at seq p and full/being
        // read at p+1; the index tells which: (p & mask) == i.
        let s = seq(w);
        let writing = index(slots, s) == i;
        let (new, counter) = if writing {
            (
                pack(s.wrapping_add(1), POISON, 0),
                &self.stats.0.dead_writers,
            )
        } else {
            (
                pack(s.wrapping_sub(1).wrapping_add(slots.capacity()), 0, 0),
                &self.stats.0.dead_readers,
            )
        };
        if word
            .compare_exchange(w, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats.0.abandoned.fetch_add(1, Ordering::Relaxed);
        if self.is_joinable() {
            // The lost message will never be marked done by anyone.
            self.task_done();
        }
        if writing {
            // Getters may be waiting on this slot: let them skip it.
            self.not_empty.0.fetch_add(EPOCH, Ordering::AcqRel);
            Park::bit(&self.not_empty.0, SLEEPERS).wake(u32::MAX);
        } else {
            self.not_full.0.fetch_add(EPOCH, Ordering::AcqRel);
            Park::bit(&self.not_full.0, SLEEPERS).wake(u32::MAX);
        }
        true
    }

    /// Scans every slot and recovers those held by dead owners; returns how many.
    pub(crate) fn recover_all<S: Slots>(&self, slots: &S, owner_dead: impl Fn(u16) -> bool) -> u64 {
        let mut n = 0;
        for i in 0..slots.capacity() as usize {
            if self.recover_slot(slots, i, &owner_dead) {
                n += 1;
            }
        }
        n
    }

    /// Whether the slot at the head hint holds something to take (a peek).
    fn can_get<S: Slots>(&self, slots: &S) -> bool {
        let pos = hint(&self.head.0);
        let w = slots.word(index(slots, pos)).load(Ordering::Relaxed);
        (dist(seq(w), pos.wrapping_add(1)) >= 0 && w & BUSY == 0) || self.is_closed()
    }

    /// One of the end counts changed in a way waiters must see: the last
    /// sender of a process went away (`senders`: wakes getters) or the last
    /// receiver (wakes putters). SYNC(ends): the bump is an RMW after the
    /// count's RMW (`ends` module doc).
    pub(crate) fn ends_changed(&self, senders: bool) {
        if senders {
            self.bump(&self.not_empty.0);
        } else {
            self.bump(&self.not_full.0);
        }
    }

    /// Puts one item, waiting while the queue is full, until `deadline`.
    /// `owner_dead` says whether a slot owner died (it is asked only about
    /// owners holding the slot this call waits for); `gone` whether no live
    /// receiver is left (asked only while the ring is full).
    ///
    /// The wait is [`crate::park`]'s loop on `not_full`: every get bumps it
    /// with an RMW after freeing its slot, and so does the last receiver of a
    /// process when it goes away, so the park argument covers both.
    #[allow(
        clippy::too_many_arguments,
        reason = "internal; each is a separate concern"
    )]
    pub(crate) fn put_wait<S: Slots>(
        &self,
        slots: &S,
        owner: u16,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        fill: impl Fn(&mut [u8]),
        owner_dead: impl Fn(u16) -> bool,
        gone: impl Fn() -> bool,
    ) -> Result<(), WaitFail> {
        // Fast path first: `not_full` is written by every get, so reading it
        // before each put would cost a cache-line transfer per item.
        match self.try_put(slots, owner, &fill) {
            Ok(()) => return Ok(()),
            Err(PutFail::Closed) => return Err(WaitFail::Closed),
            Err(PutFail::Full(_)) => {}
        }
        let mut w = Park::bit(&self.not_full.0, SLEEPERS).waiter(policy, deadline);
        loop {
            // SYNC(eventcount): read before checking the ring (module doc).
            let seen = w.load();
            match self.try_put(slots, owner, &fill) {
                Ok(()) => return Ok(()),
                Err(PutFail::Closed) => return Err(WaitFail::Closed),
                Err(PutFail::Full(Some(reader))) if reader != 0 && owner_dead(reader) => {
                    let i = index(slots, hint(&self.tail.0));
                    self.recover_slot(slots, i, |o| o == reader);
                    if w.timed_out() {
                        return Err(WaitFail::Timeout);
                    }
                    continue;
                }
                Err(PutFail::Full(_)) => {}
            }
            if gone() {
                return Err(WaitFail::Disconnected);
            }
            // A reader mid-copy at the tail frees the slot and then bumps
            // `not_full`, so sleeping with SLEEPERS set is safe here too.
            let probe = || if gone() { Err(()) } else { Ok(()) };
            match w.sleep(seen, probe) {
                Ok(()) => {}
                Err(Unparked::TimedOut) => return Err(WaitFail::Timeout),
                Err(Unparked::Probe(())) => return Err(WaitFail::Disconnected),
            }
        }
    }

    /// Takes one item, waiting while the queue is empty, until `deadline`.
    /// `gone` says whether no live sender is left (asked only when the ring
    /// is empty); then the ring is looked at once more, and only if it is
    /// still empty does the call report `Disconnected`.
    #[allow(
        clippy::too_many_arguments,
        reason = "internal; each is a separate concern"
    )]
    pub(crate) fn get_wait<S: Slots, R>(
        &self,
        slots: &S,
        owner: u16,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        mut drain: impl FnMut(&[u8]) -> R,
        owner_dead: impl Fn(u16) -> bool,
        gone: impl Fn() -> bool,
    ) -> Result<R, WaitFail> {
        // Fast path first, for the same reason as in `put_wait`.
        if let Ok(r) = self.try_get(slots, owner, &mut drain) {
            return Ok(r);
        }
        let mut w = Park::bit(&self.not_empty.0, SLEEPERS).waiter(policy, deadline);
        loop {
            // SYNC(eventcount): read before checking the ring (module doc).
            let seen = w.load();
            match self.try_get(slots, owner, &mut drain) {
                Ok(r) => return Ok(r),
                Err(GetFail::Empty(Some(writer))) => {
                    if writer != 0 && owner_dead(writer) {
                        let i = index(slots, hint(&self.head.0));
                        self.recover_slot(slots, i, |o| o == writer);
                    } else {
                        // The writer bumped `not_empty` before publishing, so it
                        // will not wake us: wait for the publish without SLEEPERS.
                        self.nap_in_flight(slots);
                    }
                    if w.timed_out() {
                        return Err(WaitFail::Timeout);
                    }
                    continue;
                }
                Err(GetFail::Empty(None)) => {
                    if seen & CLOSED != 0 {
                        return Err(WaitFail::Closed);
                    }
                    if gone() {
                        match self.last_look(slots, owner, &mut drain) {
                            Some(r) => return r,
                            None => continue,
                        }
                    }
                }
            }
            let probe = || if gone() { Err(()) } else { Ok(()) };
            match w.sleep(seen, probe) {
                Ok(()) => {}
                Err(Unparked::TimedOut) => return Err(WaitFail::Timeout),
                Err(Unparked::Probe(())) => {
                    if let Some(r) = self.last_look(slots, owner, &mut drain) {
                        return r;
                    }
                }
            }
        }
    }

    /// No sender is left: SYNC(ends) the count reads that said so made every
    /// put before the last drop visible, so one more look tells "drained"
    /// (`Disconnected`) from "something arrived". `None` when a writer is
    /// still copying into the head slot (look again).
    fn last_look<S: Slots, R>(
        &self,
        slots: &S,
        owner: u16,
        drain: &mut impl FnMut(&[u8]) -> R,
    ) -> Option<Result<R, WaitFail>> {
        match self.try_get(slots, owner, drain) {
            Ok(r) => Some(Ok(r)),
            Err(GetFail::Empty(None)) => Some(Err(WaitFail::Disconnected)),
            Err(GetFail::Empty(Some(_))) => None,
        }
    }

    /// Whether a writer is copying into the slot at the head hint.
    fn head_in_flight<S: Slots>(&self, slots: &S) -> bool {
        let pos = hint(&self.head.0);
        let w = slots.word(index(slots, pos)).load(Ordering::Relaxed);
        w & BUSY != 0 && dist(seq(w), pos) == 0
    }

    /// Waits until an item can be taken (or the queue is closed, or `gone`
    /// says no sender is left), or `deadline`. Takes nothing. Returns whether
    /// it became readable (or never will be).
    pub(crate) fn wait_readable<S: Slots>(
        &self,
        slots: &S,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        gone: impl Fn() -> bool,
    ) -> bool {
        let mut w = Park::bit(&self.not_empty.0, SLEEPERS).waiter(policy, deadline);
        loop {
            let seen = w.load();
            if self.can_get(slots) {
                return true;
            }
            if self.head_in_flight(slots) {
                self.nap_in_flight(slots);
                if w.timed_out() {
                    return false;
                }
                continue;
            }
            if gone() {
                return true;
            }
            let probe = || if gone() { Err(()) } else { Ok(()) };
            match w.sleep(seen, probe) {
                Ok(()) => {}
                Err(Unparked::TimedOut) => return self.can_get(slots),
                Err(Unparked::Probe(())) => return true,
            }
        }
    }

    /// Waits briefly for a writer that is copying into the head slot.
    fn nap_in_flight<S: Slots>(&self, slots: &S) {
        spin_loop();
        #[cfg(not(loom))]
        if !crate::spin::spin_until(|| !self.head_in_flight(slots)) {
            // Descheduled (or dead: the caller probes again after this nap).
            let seen = self.not_empty.0.load(Ordering::Relaxed);
            futex::wait(
                &self.not_empty.0,
                seen,
                Some(Deadline::after(IN_FLIGHT_NAP)),
            );
        }
        #[cfg(loom)]
        let _ = slots;
    }
}

/// Loom only: a ring with heap slots of one `u64` each, and the operations the
/// models drive (including "claim and die" to model a SIGKILL mid-copy).
#[cfg(loom)]
pub mod model {
    use super::*;
    use crate::loom::cell::UnsafeCell;

    /// Heap slots for loom.
    #[derive(Debug)]
    pub struct HeapSlots {
        words: Vec<AtomicU64>,
        data: Vec<UnsafeCell<[u8; 8]>>,
    }

    impl Slots for HeapSlots {
        fn capacity(&self) -> u64 {
            self.words.len() as u64
        }

        fn word(&self, i: usize) -> &AtomicU64 {
            &self.words[i % self.words.len()]
        }

        fn write<R>(&self, i: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
            let n = self.data.len();
            // SAFETY: the caller owns slot `i` (claimed by CAS); loom checks that no
            // other access to this cell races with ours.
            self.data[i % n].with_mut(|p| f(unsafe { &mut *p }))
        }

        fn read<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> R {
            let n = self.data.len();
            // SAFETY: as in `write`, for reading.
            self.data[i % n].with(|p| f(unsafe { &*p }))
        }
    }

    /// A ring plus its slots, and live sender/receiver counts standing for
    /// the shared end table (one process's entry).
    #[derive(Debug)]
    pub struct LoomRing {
        core: RingCore,
        slots: HeapSlots,
        senders: AtomicU32,
        receivers: AtomicU32,
    }

    fn to_u64(b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        u64::from_le_bytes(a)
    }

    impl LoomRing {
        /// A ring of `capacity` u64 slots.
        pub fn new(capacity: u64) -> LoomRing {
            LoomRing {
                core: RingCore::new(capacity, 8, false),
                slots: HeapSlots {
                    words: (0..capacity)
                        .map(|i| AtomicU64::new(RingCore::initial_word(i)))
                        .collect(),
                    data: (0..capacity).map(|_| UnsafeCell::new([0; 8])).collect(),
                },
                senders: AtomicU32::new(1),
                receivers: AtomicU32::new(1),
            }
        }

        /// The last sender goes away (as `ends::Local::release` does: the
        /// count's RMW, then the eventcount bump).
        pub fn drop_sender(&self) {
            if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.core.ends_changed(true);
            }
        }

        /// The last receiver goes away.
        pub fn drop_receiver(&self) {
            if self.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.core.ends_changed(false);
            }
        }

        fn no_senders(&self) -> bool {
            // SYNC(ends): Acquire, as `ends::Local::any_live`.
            self.senders.load(Ordering::Acquire) == 0
        }

        fn no_receivers(&self) -> bool {
            self.receivers.load(Ordering::Acquire) == 0
        }

        /// `try_put`.
        pub fn try_put(&self, owner: u16, v: u64) -> Result<(), PutFail> {
            self.core
                .try_put(&self.slots, owner, |b| b.copy_from_slice(&v.to_le_bytes()))
        }

        /// `try_get`.
        pub fn try_get(&self, owner: u16) -> Result<u64, GetFail> {
            self.core.try_get(&self.slots, owner, to_u64)
        }

        /// Blocking put; `dead` says which owners died.
        pub fn put(&self, owner: u16, v: u64, dead: impl Fn(u16) -> bool) -> Result<(), WaitFail> {
            let fill = |b: &mut [u8]| b.copy_from_slice(&v.to_le_bytes());
            self.core.put_wait(
                &self.slots,
                owner,
                WaitPolicy::Park,
                None,
                fill,
                dead,
                || self.no_receivers(),
            )
        }

        /// Blocking get; `dead` says which owners died.
        pub fn get(&self, owner: u16, dead: impl Fn(u16) -> bool) -> Result<u64, WaitFail> {
            self.core.get_wait(
                &self.slots,
                owner,
                WaitPolicy::Park,
                None,
                to_u64,
                dead,
                || self.no_senders(),
            )
        }

        /// Blocking get with the spin-then-park policy.
        pub fn get_spinning(&self, owner: u16) -> Result<u64, WaitFail> {
            self.core.get_wait(
                &self.slots,
                owner,
                WaitPolicy::SpinThenPark,
                None,
                to_u64,
                |_| false,
                || self.no_senders(),
            )
        }

        /// Blocking wait for something to read (or disconnection).
        pub fn wait_readable(&self) -> bool {
            self.core
                .wait_readable(&self.slots, WaitPolicy::Park, None, || self.no_senders())
        }

        /// Batch put of `vs`.
        pub fn put_many(&self, owner: u16, vs: &[u64]) -> Result<usize, PutFail> {
            self.core
                .try_put_many(&self.slots, owner, vs.len(), |j, b| {
                    b.copy_from_slice(&vs[j].to_le_bytes())
                })
        }

        /// Batch get into `out`.
        pub fn get_many(&self, owner: u16, out: &mut [u64]) -> usize {
            let n = out.len();
            self.core
                .try_get_many(&self.slots, owner, n, |j, b| out[j] = to_u64(b))
        }

        /// Closes the ring.
        pub fn close(&self) {
            self.core.close();
        }

        /// Claims the tail slot for writing and "dies" (never publishes).
        pub fn claim_for_write_and_die(&self, owner: u16) -> bool {
            let pos = hint(&self.core.tail.0);
            let word = self.slots.word(index(&self.slots, pos));
            let w = word.load(Ordering::Acquire);
            let claimed = dist(seq(w), pos) == 0
                && w & (BUSY | POISON) == 0
                && word
                    .compare_exchange(
                        w,
                        pack(pos, BUSY, owner),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok();
            if claimed {
                advance(&self.core.tail.0, pos);
            }
            claimed
        }

        /// Claims the head slot for reading and "dies" (never frees it).
        pub fn claim_for_read_and_die(&self, owner: u16) -> bool {
            let pos = hint(&self.core.head.0);
            let word = self.slots.word(index(&self.slots, pos));
            let w = word.load(Ordering::Acquire);
            let claimed = dist(seq(w), pos.wrapping_add(1)) == 0
                && w & (BUSY | POISON) == 0
                && word
                    .compare_exchange(
                        w,
                        pack(pos.wrapping_add(1), BUSY, owner),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok();
            if claimed {
                advance(&self.core.head.0, pos);
            }
            claimed
        }

        /// Messages recovered from dead owners.
        pub fn abandoned(&self) -> u64 {
            self.core.stats.0.abandoned.load(Ordering::Relaxed)
        }
    }
}
