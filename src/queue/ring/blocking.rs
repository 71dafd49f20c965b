//! Blocking: the waits, on [`crate::park`]'s loop in bit mode, plus polling
//! and the end-count wake-ups (module doc, "Blocking and closing").

#[cfg(not(loom))]
use std::time::Duration;

use super::ops::hint;
use super::{
    BUSY, CLOSED, GetFail, PutFail, RingCore, SLEEPERS, Slots, WaitFail, dist, full, index, seq,
};
use crate::loom::Deadline;
use crate::loom::atomic::Ordering;
#[cfg(not(loom))]
use crate::loom::futex;
use crate::loom::hint::spin_loop;
use crate::park::{Park, Unparked, WaitPolicy};

/// How long a getter that found a writer mid-copy at the head sleeps before it
/// looks again (the writer is normally done within nanoseconds; this only matters
/// when it was descheduled or died).
#[cfg(not(loom))]
const IN_FLIGHT_NAP: Duration = Duration::from_millis(1);

/// How many slots of room [`RingCore::await_room`] waits for.
const ROOM: u64 = 8;

/// How long (in spin hints) [`RingCore::await_room`] waits for them.
const ROOM_SPINS: u32 = 256;

impl RingCore {
    /// Whether the slot at the head hint holds something to take (a peek).
    fn can_get<S: Slots>(&self, slots: &S) -> bool {
        let pos = hint(&self.head.0);
        let w = slots.word(index(slots, pos)).load(Ordering::Relaxed);
        (dist(seq(w), full(pos)) >= 0 && w & BUSY == 0) || self.is_closed()
    }

    /// Whether the head slot holds something to take, or the queue was
    /// closed, read without touching a line every put writes: the spin of a
    /// blocking get.
    fn head_ready<S: Slots>(&self, slots: &S) -> bool {
        let pos = hint(&self.head.0);
        let w = slots.word(index(slots, pos)).load(Ordering::Relaxed);
        (dist(seq(w), full(pos)) >= 0 && w & BUSY == 0) || self.closed_seen()
    }

    /// Whether the tail slot is free for the position at the tail hint (or
    /// the hint is behind), or the queue was closed: the spin of a blocking
    /// put, reading no line every get writes.
    fn tail_ready<S: Slots>(&self, slots: &S) -> bool {
        let pos = hint(&self.tail.0);
        let w = slots.word(index(slots, pos)).load(Ordering::Relaxed);
        dist(seq(w), pos) >= 0 || self.closed_seen()
    }

    /// Hysteresis for a put that found the ring full and then saw its tail
    /// slot freed: wait a bounded moment for the slot [`ROOM`] positions
    /// later to be free as well before claiming.
    ///
    /// Without it a producer that outruns its consumer puts one item each
    /// time one slot frees, finds the ring full again, and the two trade the
    /// same slot lines item by item. Letting the consumer drain a short run
    /// first turns that into runs of puts on lines the consumer has left.
    /// This is wait policy only: it reads words, claims nothing and writes
    /// nothing, gives up after [`ROOM_SPINS`] spins (or at once on a ring of
    /// fewer than `4 * ROOM` slots, where the run would be most of the
    /// ring), and the put that follows is the ordinary claim. Measured in
    /// `docs/compare/compare-hysteresis-2026-12-03.txt`: a small gain, inside
    /// the run-to-run spread of this machine.
    fn await_room<S: Slots>(&self, slots: &S) {
        if cfg!(loom) || slots.capacity() < 4 * ROOM {
            return;
        }
        let mut far = hint(&self.tail.0);
        for _ in 0..ROOM {
            far = super::next(slots, far);
        }
        for _ in 0..ROOM_SPINS {
            let w = slots.word(index(slots, far)).load(Ordering::Relaxed);
            if dist(seq(w), far) >= 0 || self.closed_seen() {
                return;
            }
            spin_loop();
        }
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
    #[inline]
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
        // Fast path first, inlined into the caller: `not_full` is written by
        // every get, so reading it before each put would cost a cache-line
        // transfer per item.
        match self.try_put(slots, owner, &fill) {
            Ok(()) => Ok(()),
            Err(PutFail::Closed) => Err(WaitFail::Closed),
            Err(PutFail::Full(_)) => {
                self.put_wait_slow(slots, owner, policy, deadline, fill, owner_dead, gone)
            }
        }
    }

    /// [`RingCore::put_wait`] once the ring was found full.
    #[cold]
    #[allow(
        clippy::too_many_arguments,
        reason = "internal; each is a separate concern"
    )]
    fn put_wait_slow<S: Slots>(
        &self,
        slots: &S,
        owner: u16,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        fill: impl Fn(&mut [u8]),
        owner_dead: impl Fn(u16) -> bool,
        gone: impl Fn() -> bool,
    ) -> Result<(), WaitFail> {
        let mut w = Park::bit(&self.not_full.0, SLEEPERS).waiter(policy, deadline);
        // The spin watches the tail slot, not `not_full`, which every get
        // writes with an RMW (as in `get_wait_slow`).
        if w.spin_first(|| self.tail_ready(slots)) {
            self.await_room(slots);
            match self.try_put(slots, owner, &fill) {
                Ok(()) => return Ok(()),
                Err(PutFail::Closed) => return Err(WaitFail::Closed),
                Err(PutFail::Full(_)) => {}
            }
        }
        loop {
            // SYNC(eventcount): read before checking the ring (module doc).
            let seen = w.load();
            match self.try_put(slots, owner, &fill) {
                Ok(()) => return Ok(()),
                Err(PutFail::Closed) => return Err(WaitFail::Closed),
                Err(PutFail::Full(Some(reader))) if reader != 0 && owner_dead(reader) => {
                    let i = index(slots, hint(&self.tail.0));
                    // Death is judged again for the word recover_slot reads: the
                    // slot may have moved on to a new holder of the same tag.
                    self.recover_slot(slots, i, |o| o == reader && owner_dead(o));
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
    #[inline]
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
        // Fast path first, inlined, for the same reason as in `put_wait`.
        match self.try_get(slots, owner, &mut drain) {
            Ok(r) => Ok(r),
            Err(_) => self.get_wait_slow(slots, owner, policy, deadline, drain, owner_dead, gone),
        }
    }

    /// [`RingCore::get_wait`] once the ring was found empty.
    #[cold]
    #[allow(
        clippy::too_many_arguments,
        reason = "internal; each is a separate concern"
    )]
    fn get_wait_slow<S: Slots, R>(
        &self,
        slots: &S,
        owner: u16,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        mut drain: impl FnMut(&[u8]) -> R,
        owner_dead: impl Fn(u16) -> bool,
        gone: impl Fn() -> bool,
    ) -> Result<R, WaitFail> {
        let mut w = Park::bit(&self.not_empty.0, SLEEPERS).waiter(policy, deadline);
        // The spin watches the head slot, not `not_empty`: the put writes
        // that word with an RMW, and a getter that reads it pulls the line
        // away from the putter, which then pays a transfer for its next put.
        // The head slot's line has to travel anyway. The spin reads nothing
        // the outcome depends on; the loop below decides as before.
        if w.spin_first(|| self.head_ready(slots)) {
            if let Ok(r) = self.try_get(slots, owner, &mut drain) {
                return Ok(r);
            }
        }
        loop {
            // SYNC(eventcount): read before checking the ring (module doc).
            let seen = w.load();
            match self.try_get(slots, owner, &mut drain) {
                Ok(r) => return Ok(r),
                Err(GetFail::Empty(Some(writer))) => {
                    if writer != 0 && owner_dead(writer) {
                        let i = index(slots, hint(&self.head.0));
                        self.recover_slot(slots, i, |o| o == writer && owner_dead(o));
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
