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
//!                      p+1 = full, p+lap = free for the next lap
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
//! | free | the same consumer | `(p+1, BUSY, me)` → `(p+lap, -)` (Release) |
//! | writer died | any survivor | `(p, BUSY, w)` → `(p+1, POISON)` |
//! | refused after close | the producer | `(p, BUSY, me)` → `(p+1, POISON)` |
//! | skip poison | any consumer | `(p+1, POISON)` → `(p+lap, -)` |
//! | reader died | any survivor | `(p+1, BUSY, r)` → `(p+lap, -)` (at-most-once) |
//!
//! `head` and `tail` are *hints*: the claim is the slot CAS, and any thread that
//! finds the slot at the hint already claimed for this lap advances the hint, so
//! progress never depends on one participant surviving.
//!
//! ## Positions: any capacity
//!
//! A position is `lap number · lap + index`, where `lap` is the capacity
//! rounded up to a power of two (at least 2, [`lap_for`]): the index sits in
//! the low bits, so finding the slot of a position is a mask, never a
//! division, and positions wrap (at 2^64 in the hints, 2^46 in the slot
//! words) on a multiple of every lap. A hint moves from index `i` to `i+1`,
//! and from the last index (`capacity - 1`) to index 0 of the next lap
//! ([`next`]), skipping the `lap - capacity` unused indices, as the stamps of
//! crossbeam's `ArrayQueue` do. A slot's full sequence `p+1` may then be an
//! unused index (for the last slot), which is fine: it is only ever compared
//! with the same slot's expected sequences. With `lap >= 2` the full
//! sequence of a slot never has that slot's own index, so a recoverer tells
//! a writer's claim (`index(seq) == i`) from a reader's, even at capacity 1.
//! For a power of two >= 2, `lap == capacity` and every position is the
//! plain Vyukov one (`next(p) = p+1`), bit for bit as in format version 3.
//!
//! `len` counts whole laps times the capacity plus the index difference.
//! Only a hint a peer scribbled over can hold an unused index; a claim that
//! meets one moves the hint on to the next lap, and [`Slots`] bounds every
//! index it is given regardless.
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
//! Getters that only look (a `try_get` that finds the ring empty, the spin of a
//! blocking get) read a copy of `CLOSED` on the stats line instead, which
//! `close` stores after its `not_empty` RMW ([`RingCore::closed_seen`]): every
//! put writes `not_empty`, and a getter that reads it on each look pulls that
//! line away from the putter, which then pays one more transfer per item (the
//! spinning 8-byte round trip measured ~340 ns with it, ~190 ns without). A
//! getter that reads the copy has the close's RMW happen before its next look,
//! so the argument above holds as it is (loom:
//! `ring_polling_getter_racing_close_never_strands_an_item`, which fails when
//! the copy is stored first). A blocking get spins on the head slot, not on
//! `not_empty`, for the same reason, and a blocking put on the tail slot, not
//! on `not_full` (which every get writes: with the producer spinning on it,
//! 1 -> 1 single-item 8-byte throughput measured 17.7-26.1 M msg/s, against
//! 26.5-32.9 M without, three interleaved runs each); the loops they fall
//! into after the spin read the eventcounts as before.
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

//!
//! ## Files
//!
//! - this file: the essay, the slot-word codec and the shared header
//!   ([`RingCore`]) with what needs no slot (close, `len`, stored geometry);
//! - `ops`: the one tail claim and the one head claim ([`RingCore::claim_tail`],
//!   [`RingCore::claim_head`]) every put and get path uses, the single-item and
//!   batch operations, the eventcount bumps and the recovery of dead owners' slots;
//! - `blocking`: the waits (on [`crate::park`]), disconnection and polling;
//! - `tasks`: `JoinableQueue`'s unfinished-task counter;
//! - `model` (loom only): heap slots and the entry points the models drive,
//!   including "claim and die" built on the same claims.

mod blocking;
#[cfg(loom)]
pub mod model;
mod ops;
mod tasks;

use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::park::Park;

use tasks::Tasks;

// ---- The slot-word codec ---------------------------------------------------

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

/// The slot index of position `pos`: its low bits. Below the capacity for
/// every position the ring itself makes; a hint a peer scribbled over may
/// give more, which the claims step over and [`Slots`] bounds anyway.
#[inline]
fn index<S: Slots>(slots: &S, pos: u64) -> usize {
    (pos & slots.lap().wrapping_sub(1)) as usize
}

/// The position after `pos` (where a hint moves once `pos` is claimed): the
/// next index of the same lap, or index 0 of the next lap after the last slot.
/// For a power-of-two capacity that is always `pos + 1`.
#[inline]
fn next<S: Slots>(slots: &S, pos: u64) -> u64 {
    let mask = slots.lap().wrapping_sub(1);
    if (pos & mask).wrapping_add(1) < slots.capacity() {
        pos.wrapping_add(1)
    } else {
        (pos | mask).wrapping_add(1)
    }
}

/// The sequence that marks the slot of `pos` as full (written, not yet read).
#[inline]
fn full(pos: u64) -> u64 {
    pos.wrapping_add(1)
}

/// The sequence that marks the slot of `pos` free for the next lap.
#[inline]
fn next_lap<S: Slots>(slots: &S, pos: u64) -> u64 {
    pos.wrapping_add(slots.lap())
}

/// The position one lap before `pos`, at the same slot.
#[inline]
fn prev_lap<S: Slots>(slots: &S, pos: u64) -> u64 {
    pos.wrapping_sub(slots.lap())
}

/// The position stride of one lap for `capacity` slots: the next power of
/// two, and at least 2 so that a full slot's sequence (`p+1`) never reads as
/// the free one of its own index (`capacity == 1`). Equal to the capacity
/// for every power of two >= 2, so those rings keep the plain Vyukov
/// positions of format version 3.
#[inline]
pub(crate) fn lap_for(capacity: u64) -> u64 {
    capacity.max(2).next_power_of_two()
}

/// Items between the positions `head` and `tail` of a ring of `capacity` slots
/// (1 to [`MAX_CAPACITY`]), in `0..=capacity`: [`RingCore::len`], and
/// `Region::inspect`'s reading of a queue nobody validated.
///
/// Positions are `lap number << shift | index`: the distance is whole laps
/// (signed, on the circle the lap numbers wrap on) times the capacity plus the
/// difference of the indices. Every step saturates, so positions a peer
/// scribbled over give some value in `0..=capacity`.
pub(crate) fn items_between(head: u64, tail: u64, capacity: u64) -> u64 {
    let lap = lap_for(capacity);
    let shift = lap.trailing_zeros();
    let laps = (((tail >> shift).wrapping_sub(head >> shift) << shift) as i64) >> shift;
    let mask = lap - 1;
    let within = (tail & mask) as i64 - (head & mask) as i64;
    let cap = capacity.min(MAX_CAPACITY) as i64;
    laps.saturating_mul(cap)
        .saturating_add(within)
        .clamp(0, cap) as u64
}

/// Where the payload bytes of each slot live. The real queue points into a
/// region; loom tests use a heap array of loom cells.
///
/// The slot count comes from here, never from the shared [`RingCore`]: the real
/// queue's handle validated it against its mapping once at open and keeps it.
pub(crate) trait Slots {
    /// Number of slots, 1 to [`MAX_CAPACITY`], fixed for the handle's life.
    fn capacity(&self) -> u64;
    /// [`lap_for`] of the capacity, computed once with it.
    fn lap(&self) -> u64;
    /// The slot word of slot `i` (`i < capacity`).
    fn word(&self, i: usize) -> &AtomicU64;
    /// Runs `f` with slot `i`'s payload for writing. The caller owns the slot.
    fn write<R>(&self, i: usize, f: impl FnOnce(&mut [u8]) -> R) -> R;
    /// Runs `f` with slot `i`'s payload for reading. The caller owns the slot.
    fn read<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> R;
}

// ---- Outcomes ----------------------------------------------------------------

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

// ---- The shared header -------------------------------------------------------

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
    /// `CLOSED` once `close` has set it in `not_empty`: a copy on a line no
    /// put writes, for getters that find the ring empty.
    pub(crate) closed: AtomicU32,
}

/// A 128-byte line so that words written by different processes never share one.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Line<T>(pub(crate) T);

/// The ring's shared header. The slot array follows it in the region.
#[repr(C)]
#[derive(Debug)]
pub struct RingCore {
    /// Number of slots. Immutable after creation.
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

impl RingCore {
    /// A ring of `capacity` slots (checked by the caller) of `payload` bytes
    /// each; `joinable` enables task accounting.
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
                closed: AtomicU32::new(0),
            }),
            tasks: Line(Tasks::new(joinable)),
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

    /// Whether `close` was called, read from the copy on the stats line
    /// (which only `close` and deaths write), so that a getter polling an
    /// empty ring does not pull in the line every put writes.
    ///
    /// SYNC(close): `close` stores the copy (Release) after its `not_empty`
    /// RMW, so a getter that reads it (Acquire) has that RMW happen before
    /// its next look at the ring, as a getter that read `not_empty` does.
    pub(crate) fn closed_seen(&self) -> bool {
        self.stats.0.closed.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Closes the queue: later puts fail, getters drain what is left then fail.
    /// Wakes every waiter.
    pub fn close(&self) {
        // AcqRel: joins the release sequence of producers' bumps (see module doc).
        self.not_empty.0.fetch_or(CLOSED, Ordering::AcqRel);
        self.stats.0.closed.store(CLOSED, Ordering::Release);
        Park::bit(&self.not_empty.0, SLEEPERS).wake(u32::MAX);
        self.not_full.0.fetch_add(EPOCH, Ordering::AcqRel);
        Park::bit(&self.not_full.0, SLEEPERS).wake(u32::MAX);
    }

    /// Approximate number of items (exact when nobody is mid-operation).
    ///
    /// Clamped to the handle's capacity, so hints a peer scribbled over never
    /// make it exceed the slot count.
    pub(crate) fn len<S: Slots>(&self, slots: &S) -> u64 {
        // A snapshot; the hints may lag by the operations in flight.
        items_between(
            ops::hint(&self.head.0),
            ops::hint(&self.tail.0),
            slots.capacity(),
        )
    }
}
