//! A single-producer single-consumer channel: the bare ring's speed, with
//! its ends owned by processes and recovered from dead ones.
//!
//! [`Queue`](crate::Queue) claims each slot with a compare-and-swap so that
//! any number of processes can put and get and a dead one's claim can be
//! recovered; that locked instruction per item on each side is what keeps it
//! far below a ring with one producer and one consumer (README, "Against the
//! queue targets"). This channel has exactly one of each, so it is that ring:
//!
//! ```text
//! tail   items published, stored (Release) by the producer after each copy-in
//! head   items taken, stored (Release) by the consumer after each copy-out
//! slots  capacity x size_of::<T>() bytes, slot of position p at p mod capacity
//! ```
//!
//! Each side keeps its own position and a cached copy of the other's, and
//! reads the other's word only when the ring looks full (or empty): no
//! read-modify-write and no fence on the fast path.
//!
//! ## Who the producer and the consumer are
//!
//! Each end is held by one process at a time, recorded in a *role* word
//! (the holder's participant token). A process takes a role on its first use
//! of the end (a forked child inherits the handle but not the role) and gives
//! it back when it drops the handle; a role whose holder died (judged by the
//! region's participant table, as for locks) is taken over by the next user.
//! A live holder's role is never taken: another process's use of that end
//! fails with [`SendError::InUse`] / [`RecvError::InUse`] (a blocking call
//! waits for the role, within its timeout). The handles are `Send` but not
//! `Clone` and take `&mut self`, so within a process one thread uses an end
//! at a time.
//!
//! ## Deaths
//!
//! The positions make the ring crash-consistent without marks: a producer
//! killed before its `tail` store published nothing (its send never
//! returned, and the next producer writes the same slot); a consumer killed
//! before its `head` store never returned the item, and the next consumer
//! receives it. Nothing is lost inside the channel and nothing is received
//! twice. A taker of a role resumes from the stored positions, which it
//! first checks (`head <= tail <= head + capacity`); a ring a peer scribbled
//! over is refused ([`SendError::Corrupted`], [`RecvError::Corrupted`]).
//!
//! ## Sleeping without a fence on the fast path
//!
//! A consumer that finds the ring empty spins (as its [`WaitPolicy`] says),
//! then sets `SLEEPING` in `rx_wake` and sleeps on that futex word; the
//! producer, after its `tail` store, reads `rx_wake` and wakes it if the bit
//! is set. That is a store-load pair on each side (the store-buffer shape),
//! which needs a full fence between the store and the load on *both* sides,
//! and a full fence per item costs the ring most of its speed (one
//! `fence(SeqCst)` per send and receive measured 40-43 M msg/s against 418-766 M
//! for the bare ring on the development VM). So the fence is asymmetric:
//! the sleeper, after setting the bit, calls `membarrier(GLOBAL_EXPEDITED)`
//! (`src/sys/membarrier.rs`), which runs a full barrier on every thread of
//! every registered process, and the fast side has only a compiler fence.
//! Either the producer's load of `rx_wake` comes after the barrier and sees
//! the bit, or its `tail` store was drained by the barrier and the sleeper's
//! re-check, after the call, sees it. Producer and consumer swap roles for a
//! full ring (`tx_wake`, `head`). A process that cannot register (a kernel
//! before 4.16, a sandbox that forbids `membarrier`) fences on its fast path
//! instead (`fence(SeqCst)`), so the argument holds for any mix; a sleeper
//! that cannot call `membarrier` while its peer relies on it sleeps in 1 ms
//! slices. The loom model checks the protocol with the fences as
//! read-modify-writes (loom does not model `membarrier`).
//!
//! ## Costs and caveats
//!
//! - A process's first registration for `membarrier` waits for an RCU grace
//!   period (10-13 ms measured in a threaded process); [`channel`] registers
//!   the creator, and forked children inherit the registration, so the cost
//!   falls on the creation, or on the first use in a process that opened
//!   the channel by name.
//! - A child made by a raw `fork` system call (not libc's `fork`, which runs
//!   the crate's fork hook) is not told it is a new process, and would use an
//!   end its parent holds as if it were the parent's: do not.
//! - An end nobody ever used counts as held: a consumer whose producer died
//!   before its first send waits until its timeout (use the `_timeout`
//!   calls when the peer may never start).
//!
//! ## Disconnection
//!
//! Roles count, not copies of the handles (unlike [`Queue`](crate::Queue)'s
//! per-process handle counts). A receive on an empty ring fails with
//! [`RecvError::Disconnected`] once the producer role was given back or its
//! holder died (everything published before is received first); a send fails
//! with [`SendError::Disconnected`] once the consumer role was given back, or,
//! on a full ring, its holder died. A role nobody took yet counts as held: a
//! child that will take it may not have started. A role given back (or left
//! by a dead holder) can be taken again by a process holding a copy of that
//! end, which reconnects the channel: a receiver that read `Disconnected` in
//! between gets that process's items on its next call. The pattern that never
//! sees a false disconnection: create the channel, fork, and use each end only
//! in the process it is meant for (the first use takes the role for good).

use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::park::WaitPolicy;
use crate::queue::ring::Line;
use crate::sync::robust::{Owners, Probe};

/// A role word: nobody took the role yet.
const FREE: u32 = 0;
/// A role word: the holder gave the role back (dropped its end).
const RELEASED: u32 = 1 << 31;

/// `rx_wake` / `tx_wake`: the other side may be asleep on the word.
const SLEEPING: u32 = 1;
/// One wake-up's step of the word (so a sleeper's futex compare fails).
const EPOCH: u32 = 2;

/// The largest capacity: creation is proportional to it.
pub(crate) const MAX_CAPACITY: u64 = 1 << 28;

/// The channel's shared header; `capacity` slots follow it.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SpscCore {
    /// Slots. Immutable after creation; untrusted (the handle keeps its own).
    capacity: u64,
    /// Bytes per slot. Immutable after creation; untrusted.
    slot_size: u64,
    /// Items published (the producer's line).
    tail: Line<AtomicU64>,
    /// Items taken (the consumer's line).
    head: Line<AtomicU64>,
    /// Who holds each end, and whether they fence (rarely written).
    roles: Line<Roles>,
    /// The consumer sleeps here when the ring is empty.
    rx_wake: Line<AtomicU32>,
    /// The producer sleeps here when the ring is full.
    tx_wake: Line<AtomicU32>,
}

/// The role words.
#[repr(C)]
#[derive(Debug)]
struct Roles {
    sender: AtomicU32,
    receiver: AtomicU32,
    /// Whether the sender's holder elides its fast-path fence (registered
    /// for `membarrier`): its sleeping peer must then call `membarrier`.
    sender_light: AtomicU32,
    /// The same for the receiver's holder.
    receiver_light: AtomicU32,
}

/// Which end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The producer.
    Send,
    /// The consumer.
    Recv,
}

/// Why an operation on an end failed (the handle maps it to its error type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Full (send) or empty (receive) right now.
    WouldBlock,
    /// The other end was given back, or its holder died.
    Disconnected,
    /// A live process holds this end.
    InUse,
    /// This process has no participant slot in the region.
    NoParticipantSlot,
    /// The stored positions are impossible.
    Corrupted,
    /// The deadline passed.
    Timeout,
}

impl SpscCore {
    /// A channel of `capacity` (1 to [`MAX_CAPACITY`], checked by the caller)
    /// slots of `slot_size` bytes.
    pub(crate) fn new(capacity: u64, slot_size: u64) -> SpscCore {
        SpscCore {
            capacity,
            slot_size,
            tail: Line(AtomicU64::new(0)),
            head: Line(AtomicU64::new(0)),
            roles: Line(Roles {
                sender: AtomicU32::new(FREE),
                receiver: AtomicU32::new(FREE),
                sender_light: AtomicU32::new(0),
                receiver_light: AtomicU32::new(0),
            }),
            rx_wake: Line(AtomicU32::new(0)),
            tx_wake: Line(AtomicU32::new(0)),
        }
    }

    /// Offsets of the header words from the object's start, by name (for
    /// `Region::inspect`, which reads them without a handle).
    #[cfg(not(loom))]
    pub(crate) fn field_offsets() -> Vec<(&'static str, usize)> {
        use std::mem::offset_of;
        vec![
            ("capacity", offset_of!(SpscCore, capacity)),
            ("slot_size", offset_of!(SpscCore, slot_size)),
            ("tail", offset_of!(SpscCore, tail)),
            ("head", offset_of!(SpscCore, head)),
        ]
    }

    /// The stored geometry (untrusted: for validation at open only).
    #[cfg(not(loom))]
    pub(crate) fn stored(&self) -> (u64, u64) {
        // SAFETY: plain aligned fields of a live object; a volatile read takes
        // whatever a peer left there, which the caller checks.
        unsafe {
            (
                std::ptr::read_volatile(&self.capacity),
                std::ptr::read_volatile(&self.slot_size),
            )
        }
    }

    fn role(&self, end: End) -> &AtomicU32 {
        match end {
            End::Send => &self.roles.0.sender,
            End::Recv => &self.roles.0.receiver,
        }
    }

    fn light(&self, end: End) -> &AtomicU32 {
        match end {
            End::Send => &self.roles.0.sender_light,
            End::Recv => &self.roles.0.receiver_light,
        }
    }

    /// The word `end` sleeps on.
    fn wake_word(&self, end: End) -> &AtomicU32 {
        match end {
            End::Send => &self.tx_wake.0,
            End::Recv => &self.rx_wake.0,
        }
    }

    /// `end`'s own position word.
    fn own(&self, end: End) -> &AtomicU64 {
        match end {
            End::Send => &self.tail.0,
            End::Recv => &self.head.0,
        }
    }

    /// The other side's position word.
    fn other(&self, end: End) -> &AtomicU64 {
        match end {
            End::Send => &self.head.0,
            End::Recv => &self.tail.0,
        }
    }

    /// Whether the holder of the end opposite `end` gave it back or died.
    /// A role nobody took counts as held.
    fn peer_gone(&self, end: End, owners: &(impl Owners + ?Sized)) -> bool {
        let peer = match end {
            End::Send => End::Recv,
            End::Recv => End::Send,
        };
        match self.role(peer).load(Ordering::Acquire) {
            FREE => false,
            RELEASED => true,
            token => matches!(owners.probe(token), Probe::Dead),
        }
    }

    /// Items in the ring as the shared positions say now, clamped to
    /// `capacity` (the handle's): a snapshot, exact when neither side is
    /// mid-call; positions a peer scribbled over give some value in range.
    pub(crate) fn len(&self, capacity: u64) -> u64 {
        let head = self.head.0.load(Ordering::Acquire);
        let tail = self.tail.0.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(capacity)
    }

    /// Whether the peer of `end` gave its role back (one load; no probe).
    #[inline]
    fn peer_released(&self, end: End) -> bool {
        let peer = match end {
            End::Send => &self.roles.0.receiver,
            End::Recv => &self.roles.0.sender,
        };
        // Relaxed: a hint for the fast path; the slow path re-reads with
        // Acquire before reporting a disconnection.
        peer.load(Ordering::Relaxed) == RELEASED
    }
}

/// Where the slot bytes live: a region for the real channel, loom cells in
/// the model. Indices are below the capacity the handle keeps.
pub(crate) trait Cells {
    /// Writes `item` into slot `i`. The caller owns the slot.
    fn put(&self, i: usize, item: &[u8]);
    /// Reads slot `i` into `out`. The caller owns the slot.
    fn take(&self, i: usize, out: &mut [u8]);
}

/// One end's process-local state: the role it holds, its position and its
/// cached copy of the other side's.
#[derive(Debug)]
pub(crate) struct Cursor<const SEND: bool> {
    /// Fork epoch in which this process took the role (0: not held).
    held: u32,
    /// Our token while held.
    token: u32,
    /// Whether this process elides the fast-path fence (registered).
    light: bool,
    capacity: u64,
    /// Our position (items we published or took).
    pos: u64,
    /// Slot index of `pos`.
    idx: usize,
    /// The other side's position as last read.
    seen: u64,
}

/// What a [`Cursor`] needs from its process: identity and the fences. The
/// real channel uses the region and `membarrier`; the loom model, its mocks.
pub(crate) trait Env: Owners {
    /// The current fork epoch (a role taken in another epoch is an ancestor's).
    fn epoch(&self) -> u32;
    /// Registers for light fences; whether this process may elide them.
    fn register_light(&self) -> bool;
    /// The sleeper's heavy barrier; whether it covers peers that elide theirs.
    fn heavy_fence(&self) -> bool;
}

impl<const SEND: bool> Cursor<SEND> {
    /// Which end this cursor is (a constant: every `match` on it folds away).
    const END: End = if SEND { End::Send } else { End::Recv };

    /// A cursor for its end of a ring of `capacity` slots, holding no role.
    pub(crate) fn new(capacity: u64) -> Cursor<SEND> {
        Cursor {
            held: 0,
            token: 0,
            light: false,
            capacity,
            pos: 0,
            idx: 0,
            seen: 0,
        }
    }

    /// Takes the role if this process does not hold it yet.
    #[inline]
    fn hold(&mut self, core: &SpscCore, env: &impl Env) -> Result<(), Fail> {
        if self.held != 0 && self.held == env.epoch() {
            return Ok(());
        }
        self.take_role(core, env)
    }

    #[cold]
    fn take_role(&mut self, core: &SpscCore, env: &impl Env) -> Result<(), Fail> {
        let me = env.me().ok_or(Fail::NoParticipantSlot)?;
        let light = env.register_light();
        let role = core.role(Self::END);
        // Bounded: each lost CAS means the word changed under us, which only
        // a racing taker (then InUse on the next look) or a scribbler does.
        let mut tries = 0;
        loop {
            tries += 1;
            if tries > 64 {
                return Err(Fail::InUse);
            }
            let cur = role.load(Ordering::Acquire);
            // Our own token here can only be a scribble (every mapping joins
            // with a token of its own): held, as a live peer's would be.
            let taken = cur != FREE && cur != RELEASED;
            if taken && (cur == me || !matches!(env.probe(cur), Probe::Dead)) {
                return Err(Fail::InUse);
            }
            // Before the role: a peer that reads the role (Acquire) then
            // reads how we fence.
            core.light(Self::END)
                .store(u32::from(light), Ordering::Relaxed);
            // AcqRel: Acquire for the previous holder's last position store
            // (its give-back is a Release; a dead holder's stores are all
            // visible once the table says it is dead); Release for the flag.
            if role
                .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        let own = core.own(Self::END).load(Ordering::Acquire);
        let other = core.other(Self::END).load(Ordering::Acquire);
        let (head, tail) = match Self::END {
            End::Send => (other, own),
            End::Recv => (own, other),
        };
        if tail.wrapping_sub(head) > self.capacity {
            // Give the role back: nobody can use this ring.
            let _ = role.compare_exchange(me, RELEASED, Ordering::Release, Ordering::Relaxed);
            return Err(Fail::Corrupted);
        }
        self.pos = own;
        self.idx = (own % self.capacity) as usize;
        self.seen = other;
        self.token = me;
        self.light = light;
        self.held = env.epoch();
        Ok(())
    }

    /// Gives the role back if this process holds it, and wakes the peer so a
    /// sleeper sees the disconnection.
    pub(crate) fn release(&mut self, core: &SpscCore, env: &impl Env) {
        if self.held == 0 || self.held != env.epoch() {
            return;
        }
        self.held = 0;
        // Release: our last position store happens before a peer that reads
        // RELEASED (Acquire) looks at the ring again.
        let _ = core.role(Self::END).compare_exchange(
            self.token,
            RELEASED,
            Ordering::Release,
            Ordering::Relaxed,
        );
        let peer = match Self::END {
            End::Send => End::Recv,
            End::Recv => End::Send,
        };
        wake(core.wake_word(peer));
    }

    /// The room (send) or the items (receive) this end sees now, reloading
    /// the other side's position if the cached one shows none.
    #[inline]
    fn available(&mut self, core: &SpscCore) -> u64 {
        let n = self.room_in(self.seen);
        if n != 0 {
            return n;
        }
        // Acquire: the other side's copy-out (or copy-in) of the slots it
        // moved past happened before its Release store.
        let other = core.other(Self::END).load(Ordering::Acquire);
        self.seen = other;
        self.room_in(other)
    }

    /// Room or items given the other side at `other`; 0 for an impossible
    /// position (a scribble), which then reads as full or empty.
    #[inline]
    fn room_in(&self, other: u64) -> u64 {
        match Self::END {
            // The consumer is at most `capacity` behind us, never ahead.
            End::Send => self.capacity.saturating_sub(self.pos.wrapping_sub(other)),
            End::Recv => {
                let items = other.wrapping_sub(self.pos);
                if items > self.capacity { 0 } else { items }
            }
        }
    }

    /// Moves our position one slot on (not yet published).
    #[inline]
    fn step(&mut self) {
        self.pos = self.pos.wrapping_add(1);
        self.idx += 1;
        if self.idx as u64 == self.capacity {
            self.idx = 0;
        }
    }

    /// Moves our position one slot on and publishes it, then wakes the peer
    /// if it may sleep.
    #[inline]
    fn advance(&mut self, core: &SpscCore) {
        self.step();
        self.publish(core);
    }

    /// [`Self::available`], reloading the other side's position unless the
    /// cached one already shows `want`.
    #[inline]
    fn available_for(&mut self, core: &SpscCore, want: u64) -> u64 {
        let n = self.room_in(self.seen);
        if n >= want {
            return n;
        }
        // Acquire: as in `available`.
        self.seen = core.other(Self::END).load(Ordering::Acquire);
        self.room_in(self.seen)
    }

    /// Publishes our position, then wakes the peer if it may sleep.
    #[inline]
    fn publish(&mut self, core: &SpscCore) {
        // Release: publishes the copy-in (or the copy-out) to the peer's
        // Acquire load of this word.
        core.own(Self::END).store(self.pos, Ordering::Release);
        let peer = match Self::END {
            End::Send => End::Recv,
            End::Recv => End::Send,
        };
        let word = core.wake_word(peer);
        if fast_side_load(word, self.light) & SLEEPING != 0 {
            wake(word);
        }
    }

    /// One attempt: sends `item` (the producer's cursor) if there is room.
    #[inline]
    pub(crate) fn try_send(
        &mut self,
        core: &SpscCore,
        cells: &impl Cells,
        env: &impl Env,
        item: &[u8],
    ) -> Result<(), Fail> {
        debug_assert_eq!(Self::END, End::Send);
        self.hold(core, env)?;
        if core.peer_released(Self::END) {
            return Err(Fail::Disconnected);
        }
        if self.available(core) == 0 {
            return Err(if core.peer_gone(Self::END, env) {
                Fail::Disconnected
            } else {
                Fail::WouldBlock
            });
        }
        cells.put(self.idx, item);
        self.advance(core);
        Ok(())
    }

    /// One attempt: receives into `out` (the consumer's cursor) if an item is
    /// there.
    #[inline]
    pub(crate) fn try_recv(
        &mut self,
        core: &SpscCore,
        cells: &impl Cells,
        env: &impl Env,
        out: &mut [u8],
    ) -> Result<(), Fail> {
        debug_assert_eq!(Self::END, End::Recv);
        self.hold(core, env)?;
        if self.available(core) == 0 {
            if !core.peer_gone(Self::END, env) {
                return Err(Fail::WouldBlock);
            }
            // Gone (read with Acquire, after its last publication): look once
            // more before reporting it.
            if self.available(core) == 0 {
                return Err(Fail::Disconnected);
            }
        }
        cells.take(self.idx, out);
        self.advance(core);
        Ok(())
    }

    /// Sends the first `k` of the `n` items of `size` bytes each packed in
    /// `data`, for as many as there is room for now (`k`; `Ok(0)` when full):
    /// one publication, and one look at the peer, for the whole run.
    pub(crate) fn try_send_many(
        &mut self,
        core: &SpscCore,
        cells: &impl Cells,
        env: &impl Env,
        data: &[u8],
        size: usize,
        n: usize,
    ) -> Result<usize, Fail> {
        debug_assert_eq!(Self::END, End::Send);
        self.hold(core, env)?;
        if core.peer_released(Self::END) {
            return Err(Fail::Disconnected);
        }
        if n == 0 {
            return Ok(0);
        }
        let room = self.available_for(core, n as u64);
        if room == 0 {
            return if core.peer_gone(Self::END, env) {
                Err(Fail::Disconnected)
            } else {
                Ok(0)
            };
        }
        let k = n.min(room as usize);
        for j in 0..k {
            let Some(item) = data.get(j * size..(j + 1) * size) else {
                break;
            };
            cells.put(self.idx, item);
            self.step();
        }
        self.publish(core);
        Ok(k)
    }

    /// Receives up to `n` items of `size` bytes each into `out` (packed), as
    /// many as are there now (`Ok(0)` when empty): one publication for the
    /// whole run.
    pub(crate) fn try_recv_many(
        &mut self,
        core: &SpscCore,
        cells: &impl Cells,
        env: &impl Env,
        out: &mut [u8],
        size: usize,
        n: usize,
    ) -> Result<usize, Fail> {
        debug_assert_eq!(Self::END, End::Recv);
        self.hold(core, env)?;
        if n == 0 {
            return Ok(0);
        }
        let mut have = self.available_for(core, n as u64);
        if have == 0 {
            if !core.peer_gone(Self::END, env) {
                return Ok(0);
            }
            have = self.available(core);
            if have == 0 {
                return Err(Fail::Disconnected);
            }
        }
        let k = n.min(have as usize);
        for j in 0..k {
            let Some(slot) = out.get_mut(j * size..(j + 1) * size) else {
                break;
            };
            cells.take(self.idx, slot);
            self.step();
        }
        self.publish(core);
        Ok(k)
    }

    /// Blocks until this end may make progress (room, an item, or a gone
    /// peer), the role is free, or `deadline` passes.
    pub(crate) fn wait(
        &mut self,
        core: &SpscCore,
        env: &impl Env,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
    ) -> Result<(), Fail> {
        if self.held == 0 || self.held != env.epoch() {
            // Waiting for the role: its holder gives it back or dies.
            return self.wait_for_role(core, env, deadline);
        }
        let ready = |c: &mut Cursor<SEND>| -> bool {
            c.available(core) != 0 || core.peer_gone(Self::END, env)
        };
        if policy != WaitPolicy::Park && crate::loom::hint::spin_wait(|| ready(self)) {
            return Ok(());
        }
        let word = core.wake_word(Self::END);
        let peer_light = core.light(match Self::END {
            End::Send => End::Recv,
            End::Recv => End::Send,
        });
        let mut slice = crate::park::FIRST_SLICE;
        loop {
            if deadline.is_some_and(Deadline::passed) {
                return Err(Fail::Timeout);
            }
            if policy == WaitPolicy::BusyPoll {
                if ready(self) {
                    return Ok(());
                }
                crate::spin::relax();
                continue;
            }
            // Acquire: a waker's epoch RMW follows its position store.
            let seen = word.load(Ordering::Acquire);
            let armed = seen | SLEEPING;
            // Always an RMW, even when the bit is set already (`seen ->
            // seen`): the model's argument pairs it with the fast side's.
            if word
                .compare_exchange(seen, armed, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // The sleeper's half of the store-load pair (module doc).
            let covered = sleeper_fence(env);
            if ready(self) {
                return Ok(());
            }
            let mut span = slice;
            if !covered && peer_light.load(Ordering::Relaxed) != 0 {
                // Our barrier does not reach a peer that elides its fence:
                // a wake-up may be missed, so look again soon.
                span = span.min(std::time::Duration::from_millis(1));
            }
            let until = match deadline {
                Some(d) => d.min_after(span),
                None => Deadline::after(span),
            };
            let _ = crate::loom::futex::wait(word, armed, Some(until));
            slice = (slice * 2).min(crate::park::MAX_SLICE);
        }
    }

    #[cold]
    fn wait_for_role(
        &mut self,
        core: &SpscCore,
        env: &impl Env,
        deadline: Option<Deadline>,
    ) -> Result<(), Fail> {
        let mut nap = std::time::Duration::from_micros(50);
        loop {
            match self.hold(core, env) {
                Err(Fail::InUse) => {}
                r => return r,
            }
            if deadline.is_some_and(Deadline::passed) {
                return Err(Fail::Timeout);
            }
            let span = match deadline {
                Some(d) => nap.min(d.remaining()),
                None => nap,
            };
            nap_for(span);
            nap = (nap * 2).min(std::time::Duration::from_millis(10));
        }
    }
}

/// Wakes every sleeper of `word`: the epoch step makes a sleeper that is
/// about to sleep fail its futex compare; then the bit is cleared.
#[cold]
fn wake(word: &AtomicU32) {
    // Release: our position store happens before a woken sleeper's Acquire
    // load of the word at the top of its loop.
    word.fetch_add(EPOCH, Ordering::Release);
    word.fetch_and(!SLEEPING, Ordering::Relaxed);
    crate::loom::futex::wake(word, u32::MAX);
}

/// The fast side's half of the store-load pair: after its position store,
/// reads the peer's wake word.
#[inline]
fn fast_side_load(word: &AtomicU32, light: bool) -> u32 {
    #[cfg(loom)]
    {
        let _ = light;
        // The model: an RMW read, which reads the latest value in the word's
        // modification order (the counted-mode argument of `crate::park`):
        // either it sees the sleeper's arming, or that arming reads from it
        // and the sleeper's later RMW read of our position sees our store.
        word.fetch_add(0, Ordering::AcqRel)
    }
    #[cfg(not(loom))]
    {
        if light {
            // The sleeper's membarrier supplies the hardware barrier.
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
        word.load(Ordering::Relaxed)
    }
}

/// The sleeper's half: after arming its wake word, a barrier that orders the arming
/// before its re-check of the ring. Returns whether it also covers peers that
/// elide their fence (the `membarrier` call worked).
fn sleeper_fence(env: &impl Env) -> bool {
    #[cfg(loom)]
    {
        // The model: the arming was an RMW and the re-check reads the
        // positions after it; pair with `fast_side_load`'s RMW read.
        let _ = env;
        crate::loom::atomic::fence(Ordering::SeqCst);
        true
    }
    #[cfg(not(loom))]
    {
        std::sync::atomic::fence(Ordering::SeqCst);
        env.heavy_fence()
    }
}

fn nap_for(d: std::time::Duration) {
    #[cfg(loom)]
    {
        let _ = d;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    std::thread::sleep(d);
}

#[cfg(loom)]
pub(crate) mod model {
    //! The loom model's environment and cells.
    use super::{Cells, Env};
    use crate::loom::cell::UnsafeCell;
    use crate::sync::LoomOwners;
    use crate::sync::robust::{Owners, Probe};

    /// Loom's process: the owners mock, one fork epoch, membarrier assumed.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct LoomEnv;

    impl Owners for LoomEnv {
        fn me(&self) -> Option<u32> {
            LoomOwners.me()
        }
        fn probe(&self, owner: u32) -> Probe<'_> {
            LoomOwners.probe(owner)
        }
    }

    impl Env for LoomEnv {
        fn epoch(&self) -> u32 {
            1
        }
        fn register_light(&self) -> bool {
            true
        }
        fn heavy_fence(&self) -> bool {
            true
        }
    }

    /// Heap slots of one `u64` each.
    #[derive(Debug)]
    pub struct LoomCells(pub Vec<UnsafeCell<u64>>);

    impl Cells for LoomCells {
        fn put(&self, i: usize, item: &[u8]) {
            let mut b = [0u8; 8];
            b.copy_from_slice(&item[..8]);
            // SAFETY: the caller owns slot `i` (the protocol under test).
            self.0[i].with_mut(|p| unsafe { *p = u64::from_le_bytes(b) });
        }
        fn take(&self, i: usize, out: &mut [u8]) {
            // SAFETY: as in `put`.
            let v = self.0[i].with(|p| unsafe { *p });
            out[..8].copy_from_slice(&v.to_le_bytes());
        }
    }
}

#[cfg(not(loom))]
pub use handle::{
    Consumer, Producer, RecvError, SendError, channel, channel_with, create, create_with, open,
    open_with,
};

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::marker::PhantomData;
    use std::time::Duration;

    use super::{Cells, Cursor, Env, Fail, MAX_CAPACITY, SpscCore};
    use crate::Error;
    use crate::identity::{ElementId, Elements, SharedType};
    use crate::loom::Deadline;
    use crate::park::WaitPolicy;
    use crate::region::{Object, Region, RegionOptions, SharedObject};
    use crate::sync::robust::{Owners, Probe};

    /// Where the slots start, from the object's start.
    const SLOTS_OFFSET: usize = size_of::<SpscCore>().next_multiple_of(128);

    /// The object in the region: the header, then the slots.
    #[repr(C)]
    #[derive(Debug)]
    pub struct SpscObject<T> {
        core: SpscCore,
        _t: PhantomData<fn() -> T>,
    }

    // SAFETY: repr(C): atomics, two plain u64s and a zero-sized marker; the
    // slot bytes after it are only touched through `Slots` by a role holder.
    unsafe impl<T: SharedType> SharedObject for SpscObject<T> {
        const KIND: &'static str = "SpscChannel";
        type Params = u64;

        fn elements() -> Elements {
            Elements::one(ElementId::of::<T>())
        }

        fn geometry(capacity: &u64) -> crate::identity::Geometry {
            crate::identity::Geometry {
                capacity: *capacity,
                what: "capacity",
                slot_size: size_of::<T>() as u64,
            }
        }

        fn payload_size(capacity: &u64) -> Result<usize, Error> {
            if *capacity == 0 || *capacity > MAX_CAPACITY {
                return Err(Error::InvalidParameter(
                    "capacity must be between 1 and 2^28",
                ));
            }
            usize::try_from(*capacity)
                .ok()
                .and_then(|c| c.checked_mul(size_of::<T>()))
                .and_then(|b| b.checked_add(SLOTS_OFFSET))
                .ok_or(Error::InvalidParameter("channel size overflows"))
        }

        unsafe fn init(this: *mut Self, capacity: &u64) -> Result<(), Error> {
            // SAFETY: the caller guarantees `this` is valid, aligned and
            // unused; the slots after the header are already zeroed.
            unsafe {
                this.write(SpscObject {
                    core: SpscCore::new(*capacity, size_of::<T>() as u64),
                    _t: PhantomData,
                });
            }
            Ok(())
        }

        fn check(&self, payload_size: usize) -> Result<(), Error> {
            let (capacity, slot) = self.core.stored();
            if !fits::<T>(capacity, slot, payload_size) {
                return Err(Error::Corrupted("channel geometry"));
            }
            Ok(())
        }
    }

    /// Whether a channel of `capacity` slots of `slot` bytes is one of `T`s
    /// that fits in `size` bytes from the object's start.
    fn fits<T>(capacity: u64, slot: u64, size: usize) -> bool {
        (1..=MAX_CAPACITY).contains(&capacity)
            && slot == size_of::<T>() as u64
            && usize::try_from(capacity)
                .ok()
                .and_then(|c| c.checked_mul(size_of::<T>()))
                .and_then(|b| b.checked_add(SLOTS_OFFSET))
                .is_some_and(|n| n <= size)
    }

    /// The slots of a mapped channel, with the geometry the handle keeps.
    struct Slots<T> {
        base: *mut u8,
        _t: PhantomData<T>,
    }

    impl<T: SharedType> Cells for Slots<T> {
        #[inline]
        fn put(&self, i: usize, item: &[u8]) {
            // The cursor keeps `i` below the handle's capacity, so the slot
            // lies inside the object's `SLOTS_OFFSET + capacity * size_of::<T>()`
            // bytes; a peer writing them meanwhile can garble the item, never
            // make this copy leave the slot.
            // SAFETY: in bounds (above); `item` is `size_of::<T>()` bytes; the
            // producer role and a free slot mean no other copy of ours runs.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    item.as_ptr(),
                    self.base.add(i * size_of::<T>()),
                    size_of::<T>(),
                );
            }
        }

        #[inline]
        fn take(&self, i: usize, out: &mut [u8]) {
            // SAFETY: as in `put`, with the consumer role and a published
            // slot; `out` is `size_of::<T>()` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.base.add(i * size_of::<T>()),
                    out.as_mut_ptr(),
                    size_of::<T>(),
                );
            }
        }
    }

    /// This process as the channel sees it: the region's participant table,
    /// the fork epoch and `membarrier`.
    struct Proc<'a>(&'a Region);

    impl Owners for Proc<'_> {
        #[inline]
        fn me(&self) -> Option<u32> {
            <Region as Owners>::me(self.0)
        }
        fn probe(&self, owner: u32) -> Probe<'_> {
            <Region as Owners>::probe(self.0, owner)
        }
    }

    impl Env for Proc<'_> {
        #[inline]
        fn epoch(&self) -> u32 {
            crate::sys::process::fork_epoch_cached()
        }
        fn register_light(&self) -> bool {
            crate::sys::membarrier::register()
        }
        fn heavy_fence(&self) -> bool {
            crate::sys::membarrier::registered() && crate::sys::membarrier::global()
        }
    }

    /// One end's shared parts.
    struct Shared<T> {
        obj: Object<SpscObject<T>>,
        slots: Slots<T>,
        policy: WaitPolicy,
    }

    // SAFETY: `slots.base` points into the mapping `obj` keeps alive; the
    // bytes are shared memory, touched only under the role protocol.
    unsafe impl<T: SharedType> Send for Shared<T> {}

    impl<T: SharedType> Shared<T> {
        fn new(obj: Object<SpscObject<T>>) -> Shared<T> {
            let start = (obj.get() as *const SpscObject<T>).cast::<u8>();
            // SAFETY: the object's bytes run `SLOTS_OFFSET + capacity *
            // size_of::<T>()` from its start (planned by `payload_size` when
            // this process created it), so the slots start inside them.
            let base = unsafe { start.add(SLOTS_OFFSET) }.cast_mut();
            Shared {
                obj,
                slots: Slots {
                    base,
                    _t: PhantomData,
                },
                policy: WaitPolicy::default(),
            }
        }

        fn core(&self) -> &SpscCore {
            &self.obj.get().core
        }
    }

    /// Creates a channel of `capacity` slots (1 to 2^28) in an anonymous
    /// shared mapping: the producer end and the consumer end. Hand each to
    /// the process that uses it (fork inherits both: a process takes an end's
    /// role on its first use, see the [module docs](crate::spsc)).
    ///
    /// ```
    /// let (mut tx, mut rx) = multiproc::spsc::channel::<u64>(16)?;
    /// tx.send(7).expect("room");
    /// assert_eq!(rx.recv().expect("an item"), 7);
    /// drop(tx);
    /// assert!(matches!(rx.recv(), Err(multiproc::spsc::RecvError::Disconnected)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn channel<T: SharedType>(capacity: usize) -> Result<(Producer<T>, Consumer<T>), Error> {
        channel_with(capacity, RegionOptions::default())
    }

    /// [`channel`] with region options (the participant table's size).
    pub fn channel_with<T: SharedType>(
        capacity: usize,
        opts: RegionOptions,
    ) -> Result<(Producer<T>, Consumer<T>), Error> {
        let cap = u64::try_from(capacity).unwrap_or(u64::MAX);
        let obj = Region::create_object(None, opts, &cap)?;
        // Register for `membarrier` now, in the creator: the kernel keeps
        // the registration across `fork`, so children that take an end pay a
        // cheap re-registration instead of the first one's RCU grace period
        // (10-13 ms measured in a threaded process).
        let _ = crate::sys::membarrier::register();
        ends(obj, cap)
    }

    /// Creates a channel under `name` (see [`Queue::create`](crate::Queue::create)
    /// for names, modes and cleanup), and returns both ends: keep the one this
    /// process uses and drop the other (an end never used takes no role).
    ///
    /// ```no_run
    /// // The producer's program:
    /// let (mut tx, rx) = multiproc::spsc::create::<u64>("/ticks", 1024)?;
    /// drop(rx);
    /// tx.send(1).expect("a consumer or room");
    /// // The consumer's program:
    /// let (tx, mut rx) = multiproc::spsc::open::<u64>("/ticks")?;
    /// drop(tx);
    /// assert_eq!(rx.recv().expect("an item"), 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn create<T: SharedType>(
        name: &str,
        capacity: usize,
    ) -> Result<(Producer<T>, Consumer<T>), Error> {
        create_with(name, capacity, RegionOptions::default())
    }

    /// [`create`] with region options.
    pub fn create_with<T: SharedType>(
        name: &str,
        capacity: usize,
        opts: RegionOptions,
    ) -> Result<(Producer<T>, Consumer<T>), Error> {
        let cap = u64::try_from(capacity).unwrap_or(u64::MAX);
        ends(Region::create_object(Some(name), opts, &cap)?, cap)
    }

    /// Opens the channel `name` (its element type must match: size,
    /// alignment and type id) and returns both ends, as [`create`] does.
    /// The capacity is read from the region and checked against its size
    /// once, here.
    pub fn open<T: SharedType>(name: &str) -> Result<(Producer<T>, Consumer<T>), Error> {
        open_with(name, RegionOptions::default())
    }

    /// [`open`] with the trust options of `opts`
    /// ([`RegionOptions::allow_foreign_owner`],
    /// [`RegionOptions::allow_shared_write`]).
    pub fn open_with<T: SharedType>(
        name: &str,
        opts: RegionOptions,
    ) -> Result<(Producer<T>, Consumer<T>), Error> {
        let obj: Object<SpscObject<T>> = Region::open_object_with(name, opts)?;
        // Read once and checked against the bytes the object owns (a peer
        // may have changed it since `SpscObject::check` looked); kept in the
        // handles from here on, never read again.
        let (cap, slot) = obj.get().core.stored();
        if !fits::<T>(cap, slot, obj.size()) {
            return Err(Error::Corrupted("channel geometry"));
        }
        ends(obj, cap)
    }

    /// Both ends over `obj`, a channel of `cap` slots (planned or checked).
    fn ends<T: SharedType>(
        obj: Object<SpscObject<T>>,
        cap: u64,
    ) -> Result<(Producer<T>, Consumer<T>), Error> {
        let rx = obj.clone();
        Ok((
            Producer {
                shared: Shared::new(obj),
                cursor: Cursor::<true>::new(cap),
            },
            Consumer {
                shared: Shared::new(rx),
                cursor: Cursor::<false>::new(cap),
            },
        ))
    }

    /// The sending end of a [`channel`].
    pub struct Producer<T: SharedType> {
        shared: Shared<T>,
        cursor: Cursor<true>,
    }

    /// The receiving end of a [`channel`].
    pub struct Consumer<T: SharedType> {
        shared: Shared<T>,
        cursor: Cursor<false>,
    }

    impl<T: SharedType> fmt::Debug for Producer<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("spsc::Producer")
                .field("capacity", &self.cursor.capacity)
                .finish_non_exhaustive()
        }
    }

    impl<T: SharedType> fmt::Debug for Consumer<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("spsc::Consumer")
                .field("capacity", &self.cursor.capacity)
                .finish_non_exhaustive()
        }
    }

    /// Why a send did not happen. The item is handed back in every case.
    #[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum SendError<T> {
        /// `try_send`: the ring is full.
        #[error("the channel is full")]
        Full(T),
        /// `send_timeout`: still full (or the role still held) at the timeout.
        #[error("timed out waiting for room")]
        Timeout(T),
        /// The consumer dropped its end, or (with the ring full) died.
        #[error("the receiving end is gone")]
        Disconnected(T),
        /// Another live process holds the producer role (it used this end
        /// and still has it): `try_send` does not wait for it.
        #[error("another process holds the sending end")]
        InUse(T),
        /// This process could not join the channel's participant table.
        #[error("no participant slot left in the channel's region: this process cannot use it")]
        NoParticipantSlot(T),
        /// The stored positions are impossible (a peer scribbled over them).
        #[error("the channel's shared state is corrupted")]
        Corrupted(T),
    }

    impl<T> fmt::Debug for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                SendError::Full(_) => "Full(..)",
                SendError::Timeout(_) => "Timeout(..)",
                SendError::Disconnected(_) => "Disconnected(..)",
                SendError::InUse(_) => "InUse(..)",
                SendError::NoParticipantSlot(_) => "NoParticipantSlot(..)",
                SendError::Corrupted(_) => "Corrupted(..)",
            })
        }
    }

    impl<T> SendError<T> {
        /// The item that was not sent.
        pub fn into_inner(self) -> T {
            match self {
                SendError::Full(t)
                | SendError::Timeout(t)
                | SendError::Disconnected(t)
                | SendError::InUse(t)
                | SendError::NoParticipantSlot(t)
                | SendError::Corrupted(t) => t,
            }
        }

        fn new(f: Fail, item: T) -> SendError<T> {
            match f {
                Fail::WouldBlock => SendError::Full(item),
                Fail::Timeout => SendError::Timeout(item),
                Fail::Disconnected => SendError::Disconnected(item),
                Fail::InUse => SendError::InUse(item),
                Fail::NoParticipantSlot => SendError::NoParticipantSlot(item),
                Fail::Corrupted => SendError::Corrupted(item),
            }
        }
    }

    /// Why a receive returned nothing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum RecvError {
        /// `try_recv`: nothing there right now.
        #[error("the channel is empty")]
        Empty,
        /// `recv_timeout`: still empty (or the role still held) at the timeout.
        #[error("timed out waiting for an item")]
        Timeout,
        /// Drained, and the producer dropped its end or died.
        #[error("the sending end is gone and the channel is empty")]
        Disconnected,
        /// Another live process holds the consumer role.
        #[error("another process holds the receiving end")]
        InUse,
        /// This process could not join the channel's participant table.
        #[error("no participant slot left in the channel's region: this process cannot use it")]
        NoParticipantSlot,
        /// The stored positions are impossible (a peer scribbled over them).
        #[error("the channel's shared state is corrupted")]
        Corrupted,
    }

    impl From<Fail> for RecvError {
        fn from(f: Fail) -> RecvError {
            match f {
                Fail::WouldBlock => RecvError::Empty,
                Fail::Timeout => RecvError::Timeout,
                Fail::Disconnected => RecvError::Disconnected,
                Fail::InUse => RecvError::InUse,
                Fail::NoParticipantSlot => RecvError::NoParticipantSlot,
                Fail::Corrupted => RecvError::Corrupted,
            }
        }
    }

    impl<T: SharedType> Producer<T> {
        /// Sends `item` if there is room now.
        #[inline]
        pub fn try_send(&mut self, item: T) -> Result<(), SendError<T>> {
            let s = &self.shared;
            let env = Proc(s.obj.region());
            let bytes = crate::identity::bytes_of(&item);
            self.cursor
                .try_send(s.core(), &s.slots, &env, bytes)
                .map_err(|f| SendError::new(f, item))
        }

        /// Sends `item`, waiting while the ring is full (or another live
        /// process holds this end).
        pub fn send(&mut self, item: T) -> Result<(), SendError<T>> {
            self.send_until(item, None)
        }

        /// [`Producer::send`] for at most `timeout`.
        pub fn send_timeout(&mut self, item: T, timeout: Duration) -> Result<(), SendError<T>> {
            self.send_until(item, Some(Deadline::after(timeout)))
        }

        fn send_until(&mut self, item: T, deadline: Option<Deadline>) -> Result<(), SendError<T>> {
            let s = &self.shared;
            let env = Proc(s.obj.region());
            let bytes = crate::identity::bytes_of(&item);
            loop {
                match self.cursor.try_send(s.core(), &s.slots, &env, bytes) {
                    Ok(()) => return Ok(()),
                    Err(Fail::WouldBlock | Fail::InUse) => {}
                    Err(f) => return Err(SendError::new(f, item)),
                }
                if let Err(f) = self.cursor.wait(s.core(), &env, s.policy, deadline) {
                    return Err(SendError::new(f, item));
                }
            }
        }

        /// Sends as many items from the front of `items` as there is room
        /// for now, without blocking, and returns how many (`Ok(0)` when the
        /// ring is full): one publication for the whole run, which is what
        /// makes batches cheaper per item than [`Producer::try_send`].
        ///
        /// ```
        /// let (mut tx, mut rx) = multiproc::spsc::channel::<u32>(4)?;
        /// assert_eq!(tx.try_send_many(&[1, 2, 3, 4, 5]).expect("connected"), 4);
        /// let mut out = [0; 8];
        /// assert_eq!(rx.try_recv_many(&mut out).expect("connected"), 4);
        /// assert_eq!(out[..4], [1, 2, 3, 4]);
        /// # Ok::<(), multiproc::Error>(())
        /// ```
        pub fn try_send_many(&mut self, items: &[T]) -> Result<usize, SendError<()>> {
            let s = &self.shared;
            let env = Proc(s.obj.region());
            // SAFETY: `SharedType` types have no padding and no invalid bit
            // patterns, so the items' storage is `size_of_val(items)`
            // initialized bytes, borrowed for this call.
            let data = unsafe {
                std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), size_of_val(items))
            };
            self.cursor
                .try_send_many(s.core(), &s.slots, &env, data, size_of::<T>(), items.len())
                .map_err(|f| SendError::new(f, ()))
        }

        /// This end with another [`WaitPolicy`] for its waits.
        pub fn with_wait_policy(mut self, policy: WaitPolicy) -> Producer<T> {
            self.shared.policy = policy;
            self
        }

        /// The number of slots.
        pub fn capacity(&self) -> usize {
            self.cursor.capacity as usize
        }

        /// Items waiting in the channel now (a snapshot).
        pub fn len(&self) -> usize {
            self.shared.core().len(self.cursor.capacity) as usize
        }

        /// Whether the channel holds no item now (a snapshot).
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// The region holding the channel.
        pub fn region(&self) -> &Region {
            self.shared.obj.region()
        }
    }

    impl<T: SharedType> Consumer<T> {
        /// Receives an item if one is there now.
        #[inline]
        pub fn try_recv(&mut self) -> Result<T, RecvError> {
            let s = &self.shared;
            let env = Proc(s.obj.region());
            let mut out = std::mem::MaybeUninit::<T>::zeroed();
            // SAFETY: `out` is `size_of::<T>()` zeroed bytes; bytes are a
            // valid view of any `T`'s storage for writing.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), size_of::<T>())
            };
            self.cursor.try_recv(s.core(), &s.slots, &env, buf)?;
            // SAFETY: `SharedType` means every bit pattern is a valid `T`,
            // and all `size_of::<T>()` bytes were written (zeroed, then the
            // slot's copy).
            Ok(unsafe { out.assume_init() })
        }

        /// Receives an item, waiting while the ring is empty (or another live
        /// process holds this end).
        pub fn recv(&mut self) -> Result<T, RecvError> {
            self.recv_until(None)
        }

        /// [`Consumer::recv`] for at most `timeout`.
        pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
            self.recv_until(Some(Deadline::after(timeout)))
        }

        fn recv_until(&mut self, deadline: Option<Deadline>) -> Result<T, RecvError> {
            loop {
                match self.try_recv() {
                    Ok(v) => return Ok(v),
                    Err(RecvError::Empty | RecvError::InUse) => {}
                    Err(e) => return Err(e),
                }
                let s = &self.shared;
                let env = Proc(s.obj.region());
                self.cursor.wait(s.core(), &env, s.policy, deadline)?;
            }
        }

        /// Receives as many items as are there now, up to `out.len()`, into
        /// the front of `out`, without blocking, and returns how many
        /// (`Ok(0)` when empty; [`RecvError::Disconnected`] once drained with
        /// the producer gone).
        pub fn try_recv_many(&mut self, out: &mut [T]) -> Result<usize, RecvError> {
            let s = &self.shared;
            let env = Proc(s.obj.region());
            let n = out.len();
            // SAFETY: as in `try_send_many`: `SharedType` items are plain
            // bytes, every pattern valid, so writing them as bytes is sound.
            let data = unsafe {
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), size_of_val(out))
            };
            Ok(self
                .cursor
                .try_recv_many(s.core(), &s.slots, &env, data, size_of::<T>(), n)?)
        }

        /// This end with another [`WaitPolicy`] for its waits.
        pub fn with_wait_policy(mut self, policy: WaitPolicy) -> Consumer<T> {
            self.shared.policy = policy;
            self
        }

        /// The number of slots.
        pub fn capacity(&self) -> usize {
            self.cursor.capacity as usize
        }

        /// Items waiting in the channel now (a snapshot; Python's
        /// `Connection.poll()` is `!rx.is_empty()`).
        pub fn len(&self) -> usize {
            self.shared.core().len(self.cursor.capacity) as usize
        }

        /// Whether the channel holds no item now (a snapshot).
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// A blocking iterator: [`Consumer::recv`] until it fails
        /// (`Disconnected` ends it, as crossbeam's `iter` does).
        ///
        /// ```
        /// let (mut tx, mut rx) = multiproc::spsc::channel::<u8>(8)?;
        /// tx.try_send_many(&[1, 2, 3]).expect("room");
        /// drop(tx);
        /// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2, 3]);
        /// # Ok::<(), multiproc::Error>(())
        /// ```
        pub fn iter(&mut self) -> impl Iterator<Item = T> + '_ {
            std::iter::from_fn(move || self.recv().ok())
        }

        /// A non-blocking iterator: [`Consumer::try_recv`] until it finds
        /// the channel empty (or fails).
        pub fn try_iter(&mut self) -> impl Iterator<Item = T> + '_ {
            std::iter::from_fn(move || self.try_recv().ok())
        }

        /// The region holding the channel.
        pub fn region(&self) -> &Region {
            self.shared.obj.region()
        }
    }

    impl<T: SharedType> Drop for Producer<T> {
        fn drop(&mut self) {
            let s = &self.shared;
            self.cursor.release(s.core(), &Proc(s.obj.region()));
        }
    }

    impl<T: SharedType> Drop for Consumer<T> {
        fn drop(&mut self) {
            let s = &self.shared;
            self.cursor.release(s.core(), &Proc(s.obj.region()));
        }
    }

    #[cfg(test)]
    mod tests {
        //! A peer that scribbles over the positions makes calls fail, never
        //! read or write outside the slots or hang past a timeout.
        use super::*;
        use crate::loom::atomic::Ordering;

        #[test]
        fn scribbled_positions_fail_calls_and_nothing_else() {
            let (mut tx, mut rx) = channel::<u64>(4).unwrap();
            tx.send(1).unwrap();
            assert_eq!(rx.recv(), Ok(1));
            let core = tx.shared.core();
            // Far ahead of the consumer: it sees nothing to take (not 2^64
            // garbage items), and a blocking receive ends at its timeout.
            core.tail.0.store(1 << 40, Ordering::Relaxed);
            assert_eq!(rx.try_recv(), Err(RecvError::Empty));
            assert_eq!(
                rx.recv_timeout(Duration::from_millis(5)),
                Err(RecvError::Timeout)
            );
            // The consumer ahead of the producer: once the producer's cached
            // room is used up, the ring reads full.
            core.head.0.store(u64::MAX - 3, Ordering::Relaxed);
            let mut sent = 0;
            while tx.try_send(2).is_ok() {
                sent += 1;
                assert!(sent <= 4, "more sends than slots");
            }
            assert!(matches!(tx.try_send(2), Err(SendError::Full(2))));
            assert!(matches!(
                tx.send_timeout(2, Duration::from_millis(5)),
                Err(SendError::Timeout(2))
            ));
            // A new holder of a role checks the stored positions first.
            drop(rx);
            let (mut tx2, mut rx2) = channel::<u64>(4).unwrap();
            tx2.shared.core().tail.0.store(100, Ordering::Relaxed);
            assert_eq!(rx2.try_recv(), Err(RecvError::Corrupted));
            assert!(matches!(tx2.try_send(3), Err(SendError::Corrupted(3))));
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The channel's protocol under loom: wake-ups in both directions, the
    //! give-back and a death as disconnections, and a role taken over from a
    //! dead holder. The fences are modelled as read-modify-writes
    //! (`fast_side_load`, `sleeper_fence`); a death's wake-up of a sleeper
    //! stands for the sleep slice after which the real sleeper probes.
    use loom::sync::Arc;
    use loom::thread;

    use super::model::{LoomCells, LoomEnv};
    use super::{Cursor, Fail, SpscCore};
    use crate::loom::cell::UnsafeCell;
    use crate::park::WaitPolicy;

    struct Chan {
        core: SpscCore,
        cells: LoomCells,
    }

    fn chan(capacity: u64) -> Arc<Chan> {
        Arc::new(Chan {
            core: SpscCore::new(capacity, 8),
            cells: LoomCells((0..capacity).map(|_| UnsafeCell::new(0)).collect()),
        })
    }

    fn send(c: &mut Cursor<true>, ch: &Chan, v: u64) -> Result<(), Fail> {
        loop {
            match c.try_send(&ch.core, &ch.cells, &LoomEnv, &v.to_le_bytes()) {
                Err(Fail::WouldBlock) => c.wait(&ch.core, &LoomEnv, WaitPolicy::Park, None)?,
                r => return r,
            }
        }
    }

    fn recv(c: &mut Cursor<false>, ch: &Chan) -> Result<u64, Fail> {
        let mut b = [0u8; 8];
        loop {
            match c.try_recv(&ch.core, &ch.cells, &LoomEnv, &mut b) {
                Ok(()) => return Ok(u64::from_le_bytes(b)),
                Err(Fail::WouldBlock) => c.wait(&ch.core, &LoomEnv, WaitPolicy::Park, None)?,
                Err(e) => return Err(e),
            }
        }
    }

    #[test]
    fn loom_spsc_wakes_both_ways_and_delivers_in_order() {
        // Capacity 1 and two items: the producer must sleep on a full ring
        // and the consumer on an empty one; a lost wake-up is a deadlock.
        loom::model(|| {
            let ch = chan(1);
            let p = {
                let ch = ch.clone();
                thread::spawn(move || {
                    let mut tx = Cursor::<true>::new(1);
                    send(&mut tx, &ch, 1).unwrap();
                    send(&mut tx, &ch, 2).unwrap();
                    tx.release(&ch.core, &LoomEnv);
                })
            };
            let mut rx = Cursor::<false>::new(1);
            assert_eq!(recv(&mut rx, &ch), Ok(1));
            assert_eq!(recv(&mut rx, &ch), Ok(2));
            assert_eq!(recv(&mut rx, &ch), Err(Fail::Disconnected));
            p.join().unwrap();
        });
    }

    #[test]
    fn loom_spsc_dead_producer_is_a_disconnection_after_its_items() {
        loom::model(|| {
            let ch = chan(2);
            let p = {
                let ch = ch.clone();
                thread::spawn(move || {
                    let mut tx = Cursor::<true>::new(2);
                    send(&mut tx, &ch, 5).unwrap();
                    // Killed: no give-back. The wake stands for the sleeper's
                    // slice ending, after which it probes.
                    crate::loom::kill_current_process();
                    super::wake(&ch.core.rx_wake.0);
                })
            };
            let mut rx = Cursor::<false>::new(2);
            assert_eq!(recv(&mut rx, &ch), Ok(5), "a dead producer's item is kept");
            assert_eq!(recv(&mut rx, &ch), Err(Fail::Disconnected));
            p.join().unwrap();
        });
    }

    #[test]
    fn loom_spsc_role_of_a_dead_producer_is_taken_over_in_place() {
        // Producer A sends one item and dies holding the role; B takes the
        // role (only once A is dead: before, it is InUse) and goes on at A's
        // position. The consumer gets both, in order, nothing twice; between
        // A's death and B's take-over it may read the end as disconnected.
        loom::model(|| {
            let ch = chan(2);
            let mut a = Cursor::<true>::new(2);
            send(&mut a, &ch, 1).unwrap();
            let b = {
                let ch = ch.clone();
                thread::spawn(move || {
                    let mut b = Cursor::<true>::new(2);
                    assert_eq!(send(&mut b, &ch, 2), Err(Fail::InUse));
                })
            };
            b.join().unwrap();
            crate::loom::kill_current_process();
            let c = {
                let ch = ch.clone();
                thread::spawn(move || {
                    let mut b = Cursor::<true>::new(2);
                    send(&mut b, &ch, 2).unwrap();
                    b.release(&ch.core, &LoomEnv);
                })
            };
            let mut rx = Cursor::<false>::new(2);
            assert_eq!(recv(&mut rx, &ch), Ok(1));
            // Until B takes the role, the dead holder reads as a disconnection.
            let second = match recv(&mut rx, &ch) {
                Ok(v) => Some(v),
                Err(Fail::Disconnected) => None,
                Err(e) => panic!("{e:?}"),
            };
            c.join().unwrap();
            if second.is_none() {
                assert_eq!(recv(&mut rx, &ch), Ok(2), "B's item, after A's");
            } else {
                assert_eq!(second, Some(2));
            }
            assert_eq!(recv(&mut rx, &ch), Err(Fail::Disconnected));
        });
    }

    #[test]
    fn loom_spsc_consumer_give_back_fails_the_sender() {
        // A consumer that drops its end makes sends fail, and wakes a
        // producer sleeping on a full ring.
        loom::model(|| {
            let ch = chan(1);
            let c = {
                let ch = ch.clone();
                thread::spawn(move || {
                    let mut rx = Cursor::<false>::new(1);
                    assert_eq!(recv(&mut rx, &ch), Ok(1));
                    rx.release(&ch.core, &LoomEnv);
                })
            };
            let mut tx = Cursor::<true>::new(1);
            send(&mut tx, &ch, 1).unwrap();
            let mut sent = 0;
            while send(&mut tx, &ch, 2).is_ok() {
                sent += 1;
            }
            assert!(
                sent <= 1,
                "at most one more fits the ring before the give-back"
            );
            c.join().unwrap();
        });
    }
}
