//! The core: the one tail claim and the one head claim, the single-item and
//! batch operations built on them, the eventcount bumps, and the recovery of
//! slots held by dead owners. The transitions are the module doc's table.

use super::{
    BATCH, BUSY, CLOSED, EPOCH, GetFail, POISON, PutFail, RingCore, SLEEPERS, Slots, dist, full,
    index, next, next_lap, owner_of, pack, prev_lap, seq,
};
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::park::Park;

/// Moves a `head`/`tail` hint from `pos` to the position after it if nobody
/// did already.
///
/// SYNC(hint): Release, paired with the Acquire in [`hint`]: a thread that
/// learns a position from the hint also learns every claim made before the
/// hint moved past it, so a getter that synchronizes with a later producer
/// cannot see an earlier claimed slot as free (loom found the Relaxed version
/// losing a wake-up behind a dead writer's claim).
#[inline]
fn advance<S: Slots>(slots: &S, h: &AtomicU64, pos: u64) {
    let _ = h.compare_exchange(pos, next(slots, pos), Ordering::Release, Ordering::Relaxed);
}

/// Reads a `head`/`tail` hint (Acquire: see [`advance`]).
#[inline]
pub(super) fn hint(h: &AtomicU64) -> u64 {
    h.load(Ordering::Acquire)
}

/// How many times one claim may go round its loop before it reports the ring
/// full (or empty). In a sound ring each round is progress: a lost CAS means
/// another process claimed a slot, and the hint lags by at most the number of
/// claimers in flight. A ring a peer scribbled over (sequence numbers far
/// ahead of the hints, say) could otherwise keep a caller advancing hints for
/// 2^46 rounds; with the budget it costs a few microseconds and the
/// operation's own error (`Full`/`Empty`, so a blocking call sleeps a slice
/// and looks again, never past its deadline).
#[inline]
fn budget<S: Slots>(slots: &S) -> u32 {
    (slots.capacity().min(1 << 14) as u32) * 2 + 1024
}

/// A slot the caller claimed: its word is `BUSY` with the caller as owner
/// until the caller publishes, refuses or frees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Claim {
    /// The position claimed.
    pub(crate) pos: u64,
    /// Its slot index (`< capacity`).
    pub(crate) i: usize,
}

impl Claim {
    const NONE: Claim = Claim { pos: 0, i: 0 };
}

impl RingCore {
    /// Claims the slot at the tail for writing, `(p, -)` → `(p, BUSY, owner)`,
    /// helping the hint along past slots other producers claimed. `Err` when the
    /// ring is full, with `Some(owner)` when a reader holds the tail slot (who
    /// may have died), or when the claim ran out of [`budget`].
    #[inline]
    pub(crate) fn claim_tail<S: Slots>(&self, slots: &S, owner: u16) -> Result<Claim, Option<u16>> {
        for _ in 0..budget(slots) {
            let pos = hint(&self.tail.0);
            let i = index(slots, pos);
            if i as u64 >= slots.capacity() {
                // Only a hint a peer scribbled over points past the last slot.
                advance(slots, &self.tail.0, pos);
                continue;
            }
            let word = slots.word(i);
            let w = word.load(Ordering::Acquire);
            let d = dist(seq(w), pos);
            if d == 0 && w & (BUSY | POISON) == 0 {
                // Acquire: the previous reader's payload copy-out happened before
                // its Release free of this slot; we must not overwrite it earlier.
                match self.cas_claim(slots, &self.tail.0, pos, i, w, pack(pos, BUSY, owner)) {
                    Some(c) => return Ok(c),
                    None => continue,
                }
            }
            if d >= 0 {
                // Claimed by another producer for this lap, or published already:
                // the hint is behind. Help it along and retry.
                advance(slots, &self.tail.0, pos);
                continue;
            }
            // The slot still holds the previous lap: full, unless the hint moved.
            if hint(&self.tail.0) != pos {
                continue;
            }
            // A reader of the previous lap's item at this slot may hold it.
            let reader = (w & BUSY != 0 && dist(seq(w), full(prev_lap(slots, pos))) == 0)
                .then(|| owner_of(w));
            return Err(reader);
        }
        // Out of budget: only a scribbled ring gets here (see `budget`).
        Err(None)
    }

    /// Claims the slot at the head for reading, `(p+1, -)` → `(p+1, BUSY,
    /// owner)`, skipping (and freeing) poisoned slots and helping the hint
    /// along. `Err` when the ring is empty, with `Some(owner)` when a writer
    /// holds the head slot (an item is on its way, unless that writer died),
    /// or when the claim ran out of [`budget`].
    #[inline]
    pub(crate) fn claim_head<S: Slots>(&self, slots: &S, owner: u16) -> Result<Claim, Option<u16>> {
        for _ in 0..budget(slots) {
            let pos = hint(&self.head.0);
            let i = index(slots, pos);
            if i as u64 >= slots.capacity() {
                // Only a hint a peer scribbled over points past the last slot.
                advance(slots, &self.head.0, pos);
                continue;
            }
            let word = slots.word(i);
            let w = word.load(Ordering::Acquire);
            let d = dist(seq(w), full(pos));
            if d == 0 {
                if w & POISON != 0 {
                    // A dead or refused writer's slot: free it for the next lap.
                    if word
                        .compare_exchange(
                            w,
                            pack(next_lap(slots, pos), 0, 0),
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        advance(slots, &self.head.0, pos);
                        self.bump(&self.not_full.0);
                    }
                    continue;
                }
                if w & BUSY == 0 {
                    // SYNC(slot): Acquire pairs with the writer's Release publish.
                    let claimed = pack(full(pos), BUSY, owner);
                    match self.cas_claim(slots, &self.head.0, pos, i, w, claimed) {
                        Some(c) => return Ok(c),
                        None => continue,
                    }
                }
                // Another consumer is reading it: the hint is behind.
                advance(slots, &self.head.0, pos);
                continue;
            }
            if d > 0 {
                advance(slots, &self.head.0, pos);
                continue;
            }
            if hint(&self.head.0) != pos {
                continue;
            }
            let writer = (w & BUSY != 0 && dist(seq(w), pos) == 0).then(|| owner_of(w));
            return Err(writer);
        }
        // Out of budget: only a scribbled ring gets here (see `budget`).
        Err(None)
    }

    /// The claim CAS of slot `i` from `w` to `claimed` for position `pos`,
    /// then the hint `h` moved past `pos`. `None` if another claimant won.
    ///
    /// AcqRel. Acquire: what the slot's previous owner did (a payload copy in
    /// or out) happened before its Release, and so before ours. Release:
    /// SYNC(claim) anyone who sees this claim and then bumps an eventcount
    /// passes it on, so a getter that synchronizes with that bump cannot see
    /// this slot as free (found by loom: a getter slept on a slot a dead writer
    /// had claimed).
    #[inline]
    fn cas_claim<S: Slots>(
        &self,
        slots: &S,
        h: &AtomicU64,
        pos: u64,
        i: usize,
        w: u64,
        claimed: u64,
    ) -> Option<Claim> {
        slots
            .word(i)
            .compare_exchange(w, claimed, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        advance(slots, h, pos);
        Some(Claim { pos, i })
    }

    /// Moves a claimed slot from `c`'s word to `new`: a plain Release store,
    /// no read-modify-write.
    ///
    /// Only the claimant moves a `BUSY` word it claimed. A recoverer moves it
    /// only after a *confirmed* death of the owner, judged for the very word
    /// it then replaces by CAS ([`Self::recover_slot`]): the participant
    /// table's beacon (the kernel's robust-futex notice) or `/proc` says the
    /// process is dead or its membership gone, and a dead process stores
    /// nothing. The one place a tag changes hands inside a live process,
    /// re-registering a participant index, recovers the old holder's slots
    /// once, before any thread claims with the tag (`QueueCore::register`).
    /// So in a ring nobody scribbled over, the word is still the claimed one here and
    /// the store is what the CAS was. (A peer that does scribble can make this
    /// store overwrite its scribble: a wrong value, never an out-of-bounds
    /// access.)
    ///
    /// SYNC(slot): Release publishes the payload (or our copy-out) to the next
    /// claimant's Acquire.
    #[inline]
    fn settle<S: Slots>(slots: &S, c: &Claim, new: u64) {
        slots.word(c.i).store(new, Ordering::Release);
    }

    /// Publishes a tail claim: `(p, BUSY, me)` → `(p+1, -)`.
    #[inline]
    fn publish<S: Slots>(slots: &S, c: &Claim) {
        Self::settle(slots, c, pack(full(c.pos), 0, 0));
    }

    /// Refuses a tail claim after close: `(p, BUSY, me)` → `(p+1, POISON)`, so
    /// readers skip it (unless a recoverer already did, thinking us dead).
    #[inline]
    fn refuse<S: Slots>(slots: &S, c: &Claim) {
        Self::settle(slots, c, pack(full(c.pos), POISON, 0));
    }

    /// Frees a head claim for the next lap: `(p+1, BUSY, me)` → `(p+lap, -)`.
    #[inline]
    fn free<S: Slots>(slots: &S, c: &Claim) {
        Self::settle(slots, c, pack(next_lap(slots, c.pos), 0, 0));
    }

    /// The `not_empty` RMW of a put, after its claims: SYNC(close) it orders
    /// the claims against `close` (module doc). Returns the word before it.
    #[inline]
    fn announce_put(&self) -> u32 {
        self.not_empty.0.fetch_add(EPOCH, Ordering::AcqRel)
    }

    /// Tries to put one item, written by `fill` into the claimed slot.
    #[inline]
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
        let c = match self.claim_tail(slots, owner) {
            Ok(c) => c,
            Err(_) if self.is_closed() => return Err(PutFail::Closed),
            Err(reader) => return Err(PutFail::Full(reader)),
        };
        let ec = self.announce_put();
        if ec & CLOSED != 0 {
            Self::refuse(slots, &c);
            return Err(PutFail::Closed);
        }
        if self.is_joinable() {
            self.task_add(1);
        }
        slots.write(c.i, fill);
        Self::publish(slots, &c);
        if ec & SLEEPERS != 0 {
            self.wake(&self.not_empty.0);
        }
        Ok(())
    }

    /// Tries to take one item, read by `drain` from the claimed slot.
    #[inline]
    pub(crate) fn try_get<S: Slots, R>(
        &self,
        slots: &S,
        owner: u16,
        drain: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GetFail> {
        let c = self.claim_head(slots, owner).map_err(GetFail::Empty)?;
        let out = slots.read(c.i, drain);
        Self::free(slots, &c);
        self.bump(&self.not_full.0);
        Ok(out)
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
        let mut claims = [Claim::NONE; BATCH];
        let k = self.claim_many(
            slots,
            &self.tail.0,
            &mut claims[..n.min(BATCH)],
            |r| r.claim_tail(slots, owner),
            |pos| pos,
            owner,
        );
        if k == 0 {
            return Err(if self.is_closed() {
                PutFail::Closed
            } else {
                PutFail::Full(None)
            });
        }
        let ec = self.announce_put();
        let closed = ec & CLOSED != 0;
        if !closed && self.is_joinable() {
            self.task_add(k as u64);
        }
        for (j, c) in claims[..k].iter().enumerate() {
            if closed {
                Self::refuse(slots, c);
            } else {
                slots.write(c.i, |buf| fill(j, buf));
                Self::publish(slots, c);
            }
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
        let mut claims = [Claim::NONE; BATCH];
        let k = self.claim_many(
            slots,
            &self.head.0,
            &mut claims[..n.min(BATCH)],
            |r| r.claim_head(slots, owner),
            full,
            owner,
        );
        for (j, c) in claims[..k].iter().enumerate() {
            slots.read(c.i, |buf| drain(j, buf));
            Self::free(slots, c);
        }
        if k > 0 {
            self.bump(&self.not_full.0);
        }
        k
    }

    /// Fills `out` with claims, for a batch call: `claim` (the tail or head
    /// claim, hint `h`) makes the first of each run, and the slots after it are
    /// claimed directly at the next positions, without reading the hint, for
    /// as long as each slot's word is *exactly* the one that makes it
    /// claimable (`ready(p)`: free for writing at `p`, or published for
    /// reading at `p`, no flag, no owner). The hint then moves once past the
    /// whole run, instead of once per slot. Anything else (a slot taken by
    /// someone else, poison, full, empty) ends the run and goes back to
    /// `claim`, which handles it. Returns how many were claimed.
    ///
    /// A word equal to `ready(p)` means position `p` is unclaimed and its
    /// previous lap is finished (the module doc's transitions never produce
    /// it otherwise), so the direct claim is the same claim `claim` would
    /// make at `p`; the hint is only a hint (its SYNC argument holds for the
    /// one Release CAS after the run: it follows every claim of the run).
    #[inline]
    fn claim_many<S: Slots>(
        &self,
        slots: &S,
        h: &AtomicU64,
        out: &mut [Claim],
        claim: impl Fn(&RingCore) -> Result<Claim, Option<u16>>,
        ready: impl Fn(u64) -> u64,
        owner: u16,
    ) -> usize {
        let mut k = 0;
        while k < out.len() {
            let Ok(first) = claim(self) else { break };
            out[k] = first;
            k += 1;
            let mut last = first.pos;
            while k < out.len() {
                let pos = next(slots, last);
                let i = index(slots, pos);
                let free = pack(ready(pos), 0, 0);
                if slots.word(i).load(Ordering::Acquire) != free {
                    break;
                }
                let claimed = pack(ready(pos), BUSY, owner);
                // AcqRel, as in `cas_claim`; the hint moves after the run.
                if slots
                    .word(i)
                    .compare_exchange(free, claimed, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    break;
                }
                out[k] = Claim { pos, i };
                k += 1;
                last = pos;
            }
            if last != first.pos {
                // `claim` moved the hint past `first`; move it past the run
                // (SYNC(hint), as `advance`), unless a helper already did.
                let _ = h.compare_exchange(
                    next(slots, first.pos),
                    next(slots, last),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
        }
        k
    }

    /// `try_get`, telling a closed and drained queue (`Ok(Err(()))`) from a
    /// merely empty one (`Err(..)`). Reads `CLOSED` only after finding the ring
    /// empty, then looks once more, so the fast path touches no eventcount.
    #[inline]
    pub(crate) fn try_get_or_closed<S: Slots, R>(
        &self,
        slots: &S,
        owner: u16,
        mut drain: impl FnMut(&[u8]) -> R,
    ) -> Result<Result<R, ()>, GetFail> {
        match self.try_get(slots, owner, &mut drain) {
            Ok(r) => Ok(Ok(r)),
            Err(GetFail::Empty(None)) if self.closed_seen() => {
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
    pub(super) fn bump(&self, word: &AtomicU32) {
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
        // read at p+1; the index tells which: index(p) == i.
        let s = seq(w);
        let writing = index(slots, s) == i;
        let (new, counter) = if writing {
            (pack(full(s), POISON, 0), &self.stats.0.dead_writers)
        } else {
            (
                pack(next_lap(slots, s.wrapping_sub(1)), 0, 0),
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
        let ec = if writing {
            // Getters may be waiting on this slot: let them skip it.
            &self.not_empty.0
        } else {
            &self.not_full.0
        };
        ec.fetch_add(EPOCH, Ordering::AcqRel);
        Park::bit(ec, SLEEPERS).wake(u32::MAX);
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
}
