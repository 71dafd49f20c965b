//! The participant table: which processes use a region, and which of them died.
//!
//! Each slot holds `{state, pid, generation, start time, pid namespace, joined at,
//! beacon}`. The beacon (`crate::sys::robust::Entry`) is a futex word on the
//! kernel's robust list of this process's beacon thread, a thread the crate keeps
//! parked for the life of the process: it holds that thread's TID while the process
//! lives, and the kernel sets `FUTEX_OWNER_DIED` in it (and wakes a sleeper) when
//! the process dies or execs. So a probe is a few loads:
//!
//! | beacon word | meaning |
//! |---|---|
//! | a TID, no `FUTEX_OWNER_DIED` | the process lives |
//! | `FUTEX_OWNER_DIED` | the process died (the kernel said so, before its pid could be reused) |
//! | 0 | not armed (no beacon thread, or the kernel's list limit): `/proc/<pid>/stat` (pid + start time, zombies count as dead) decides |
//!
//! The process is the unit of failure: the beacon does not belong to the thread
//! that joined, so a handle may be created, used and dropped on any thread, and
//! the joining thread may exit first.
//!
//! Slot states (`state` word):
//!
//! | state | set by | meaning |
//! |---|---|---|
//! | `EMPTY` | creator (zeroed), leaver | free |
//! | `CLAIMING` tag with the claimant's pid (`pid << 2 \| 1`) | joiner, by CAS from `EMPTY`/`DEAD`; leaver, by CAS from `LIVE` | being filled in or emptied; a joiner that finds the table full reclaims slots whose claimant's pid is gone |
//! | `LIVE` | joiner, Release after the fields and beacon | in use |
//! | `DEAD` | the prober that saw it die, by CAS from `LIVE`; a reclaimer, from a dead claimant's `CLAIMING` | dead, reusable |
//!
//! `generation` (18 bits, never 0) increases on every join, so `(index,
//! generation)` names one process's membership even after the slot is reused;
//! packed as an owner token (`index + 1` in the low 13 bits, the generation above)
//! it is what robust lock words hold.

use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sys::process;
use crate::sys::robust::{self, Entry, FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS};

pub(crate) const EMPTY: u32 = 0;
const CLAIMING_TAG: u32 = 1;
pub(crate) const LIVE: u32 = 2;
pub(crate) const DEAD: u32 = 3;

/// Bits of an owner token that hold `index + 1`.
const INDEX_BITS: u32 = 13;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// Generations wrap within 18 bits (skipping 0), so a token fits in 31.
pub(crate) const GENERATION_MASK: u32 = (1 << (31 - INDEX_BITS)) - 1;

const _: () = assert!(super::header::MAX_PARTICIPANTS < INDEX_MASK);

/// `CLAIMING` for the process `pid`.
fn claiming(pid: u32) -> u32 {
    (pid << 2) | CLAIMING_TAG
}

fn is_claiming(state: u32) -> bool {
    state & 3 == CLAIMING_TAG
}

/// One participant slot; exactly [`super::header::SLOT_SIZE`] bytes.
#[repr(C, align(128))]
pub(crate) struct Slot {
    state: AtomicU32,
    pid: AtomicU32,
    generation: AtomicU32,
    _pad: u32,
    start_time: AtomicU64,
    pidns: AtomicU64,
    /// Seconds since the Unix epoch when the current member joined.
    joined_at: AtomicU64,
    beacon: Entry,
}

const _: () = assert!(size_of::<Slot>() == super::header::SLOT_SIZE);

/// A process's membership: slot index and the generation it joined with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl Member {
    /// The owner token naming this membership in robust lock words.
    pub(crate) fn token(self) -> u32 {
        (self.index + 1) | ((self.generation & GENERATION_MASK) << INDEX_BITS)
    }

    /// The membership a token names; `None` for 0 or an impossible token.
    pub(crate) fn from_token(token: u32) -> Option<Member> {
        let index = (token & INDEX_MASK).checked_sub(1)?;
        let generation = (token >> INDEX_BITS) & GENERATION_MASK;
        (generation != 0).then_some(Member { index, generation })
    }
}

/// What a probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Still running.
    Alive,
    /// Died without leaving.
    Dead,
    /// Left, or the slot now belongs to someone else.
    Gone,
}

/// Public view of one participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Participant {
    /// Slot index in the table.
    pub index: u32,
    /// Process id (in the pid namespace of the process that joined).
    pub pid: u32,
    /// Join count of this slot; names this membership.
    pub generation: u32,
    /// `false` once a probe found the process dead.
    pub alive: bool,
    /// When it joined, in seconds since the Unix epoch (as the joiner wrote it:
    /// informational, untrusted).
    pub joined_at: u64,
}

impl Slot {
    /// Writes an empty slot in place.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes, aligned, and unused by anyone.
    pub(crate) unsafe fn init(this: *mut Slot) -> std::io::Result<()> {
        // SAFETY: the caller guarantees `this` is valid and unused; every field is
        // written before the region is published (READY).
        unsafe {
            this.write(Slot {
                state: AtomicU32::new(EMPTY),
                pid: AtomicU32::new(0),
                generation: AtomicU32::new(0),
                _pad: 0,
                start_time: AtomicU64::new(0),
                pidns: AtomicU64::new(0),
                joined_at: AtomicU64::new(0),
                beacon: Entry::new(),
            });
        }
        Ok(())
    }

    /// Fills a slot this process claimed and publishes it.
    fn fill_and_publish(&self, index: u32) -> Member {
        // Relaxed: these fields are only written by the claimant (state
        // CLAIMING); the Release store of LIVE below publishes them.
        let generation =
            (self.generation.load(Ordering::Relaxed).wrapping_add(1)) & GENERATION_MASK;
        let generation = generation.max(1);
        self.generation.store(generation, Ordering::Relaxed);
        self.pid.store(process::pid(), Ordering::Relaxed);
        self.start_time
            .store(process::start_time(), Ordering::Relaxed);
        self.pidns
            .store(process::pid_namespace(), Ordering::Relaxed);
        self.joined_at
            .store(crate::sys::time::unix_seconds(), Ordering::Relaxed);
        if !robust::arm(&self.beacon) {
            // No beacon: peers judge this membership from /proc.
            self.beacon.word.store(0, Ordering::Relaxed);
        }
        // SYNC(slot): pairs with the Acquire loads of `state` in `probe`/`list`.
        self.state.store(LIVE, Ordering::Release);
        Member { index, generation }
    }

    fn probe(&self, generation: u32) -> Liveness {
        match self.probe_beacon(generation) {
            Some(_) => Liveness::Alive,
            None => self.verdict(generation),
        }
    }

    /// `Some(beacon value)` (0 if not armed) while the member looks alive;
    /// `None` when it is dead or gone (the caller asks [`Slot::verdict`] which).
    fn probe_beacon(&self, generation: u32) -> Option<u32> {
        // SYNC(slot): Acquire pairs with the Release store of LIVE/DEAD.
        let state = self.state.load(Ordering::Acquire);
        if state != LIVE || self.generation.load(Ordering::Relaxed) != generation {
            return None;
        }
        // Acquire: pairs with the beacon's arming store (and the kernel's write).
        let w = self.beacon.word.load(Ordering::Acquire);
        if w & FUTEX_OWNER_DIED != 0 {
            return None;
        }
        if w & FUTEX_TID_MASK != 0 {
            return Some(w);
        }
        self.proc_says_alive().then_some(0)
    }

    /// Why `probe_beacon` said no: marks a dead member `DEAD` (once) and wakes
    /// everyone sleeping on its beacon (the kernel wakes only one).
    fn verdict(&self, generation: u32) -> Liveness {
        let state = self.state.load(Ordering::Acquire);
        if self.generation.load(Ordering::Relaxed) != generation {
            return Liveness::Gone;
        }
        match state {
            LIVE => {}
            DEAD => return Liveness::Dead,
            _ => return Liveness::Gone,
        }
        let w = self.beacon.word.load(Ordering::Acquire);
        let dead =
            w & FUTEX_OWNER_DIED != 0 || (w & FUTEX_TID_MASK == 0 && !self.proc_says_alive());
        if !dead {
            return Liveness::Alive;
        }
        if w & FUTEX_WAITERS != 0 {
            crate::sys::futex::wake(&self.beacon.word, u32::MAX);
        }
        self.mark_dead(generation)
    }

    /// Whether `/proc` shows the process still running. When `/proc` cannot tell
    /// (another pid namespace, or no permission), the member counts as alive: a
    /// wrong "dead" would hand its locks and slots to others.
    fn proc_says_alive(&self) -> bool {
        proc_says_alive(
            self.pid.load(Ordering::Relaxed),
            self.start_time.load(Ordering::Relaxed),
            self.pidns.load(Ordering::Relaxed),
        )
    }

    fn mark_dead(&self, generation: u32) -> Liveness {
        if self.generation.load(Ordering::Relaxed) != generation {
            return Liveness::Gone;
        }
        // AcqRel: the winner's later reuse of the slot (join from DEAD) is ordered
        // after what the dead member wrote.
        match self
            .state
            .compare_exchange(LIVE, DEAD, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(DEAD) => Liveness::Dead,
            Err(_) => Liveness::Gone,
        }
    }

    /// A slot stuck in `CLAIMING` by a claimant whose process is gone becomes
    /// `DEAD` (reusable). Returns whether it did.
    fn reclaim_dead_claimant(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        if !is_claiming(state) {
            return false;
        }
        let pid = state >> 2;
        if pid == process::pid() || process::is_alive(pid, 0) != Some(false) {
            return false;
        }
        self.state
            .compare_exchange(state, DEAD, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

/// Whether `/proc` shows the process `pid` that started at `start` (in the pid
/// namespace `pidns`, 0 if unknown) still running; `true` when it cannot tell.
pub(crate) fn proc_says_alive(pid: u32, start: u64, pidns: u64) -> bool {
    if pidns != 0 && pidns != process::pid_namespace() {
        return true;
    }
    process::is_alive(pid, start).unwrap_or(true)
}

/// One slot as copied out of a region by a process that has not joined it
/// (`Region::inspect`): plain numbers, untrusted, judged without writing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotView {
    state: u32,
    pid: u32,
    generation: u32,
    start_time: u64,
    pidns: u64,
    joined_at: u64,
    beacon: u32,
}

impl SlotView {
    /// Reads slot `index` of a participant table copied into `table`; `None`
    /// past the end of the bytes.
    pub(crate) fn read(table: &[u8], index: usize) -> Option<SlotView> {
        use std::mem::offset_of;
        let size = size_of::<Slot>();
        let b = table.get(index.checked_mul(size)?..)?.get(..size)?;
        let u32_at = |o: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(b.get(o..o + 4).unwrap_or(&[0; 4]));
            u32::from_ne_bytes(a)
        };
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b.get(o..o + 8).unwrap_or(&[0; 8]));
            u64::from_ne_bytes(a)
        };
        Some(SlotView {
            state: u32_at(offset_of!(Slot, state)),
            pid: u32_at(offset_of!(Slot, pid)),
            generation: u32_at(offset_of!(Slot, generation)),
            start_time: u64_at(offset_of!(Slot, start_time)),
            pidns: u64_at(offset_of!(Slot, pidns)),
            joined_at: u64_at(offset_of!(Slot, joined_at)),
            beacon: u32_at(offset_of!(Slot, beacon) + offset_of!(Entry, word)),
        })
    }

    /// The participant this slot holds (`None` when free or being filled), with
    /// its liveness judged as [`Slot::probe`] would, without marking anything.
    pub(crate) fn participant(&self, index: u32) -> Option<Participant> {
        let alive = match self.state {
            LIVE => self.looks_alive(),
            DEAD => false,
            _ => return None,
        };
        Some(Participant {
            index,
            pid: self.pid,
            generation: self.generation,
            alive,
            joined_at: self.joined_at,
        })
    }

    fn looks_alive(&self) -> bool {
        if self.beacon & FUTEX_OWNER_DIED != 0 {
            return false;
        }
        if self.beacon & FUTEX_TID_MASK != 0 {
            return true;
        }
        proc_says_alive(self.pid, self.start_time, self.pidns)
    }

    /// The liveness of membership `m` if this is its slot: `Gone` when the
    /// slot was left or reused since.
    pub(crate) fn liveness(&self, m: Member) -> Liveness {
        if self.generation != m.generation {
            return Liveness::Gone;
        }
        match self.state {
            LIVE if self.looks_alive() => Liveness::Alive,
            LIVE | DEAD => Liveness::Dead,
            _ => Liveness::Gone,
        }
    }
}

/// The table: a slice of slots inside a mapping.
#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    pub(crate) slots: &'a [Slot],
}

impl<'a> Table<'a> {
    /// Takes a slot for the calling process; `None` when the table is full even
    /// after reclaiming slots of dead members and dead claimants.
    pub(crate) fn join(&self) -> Option<Member> {
        if let Some(m) = self.try_claim() {
            return Some(m);
        }
        // Full: reclaim dead members and claimants that died mid-join, then retry.
        let mut reclaimed = false;
        for slot in self.slots {
            let g = slot.generation.load(Ordering::Relaxed);
            let state = slot.state.load(Ordering::Acquire);
            if (state == LIVE && slot.probe(g) == Liveness::Dead) || slot.reclaim_dead_claimant() {
                reclaimed = true;
            }
        }
        if reclaimed { self.try_claim() } else { None }
    }

    fn try_claim(&self) -> Option<Member> {
        let me = claiming(process::pid());
        for from in [EMPTY, DEAD] {
            for (i, slot) in self.slots.iter().enumerate() {
                if slot.state.load(Ordering::Relaxed) != from {
                    continue;
                }
                // Acquire: see the previous occupant's writes before reusing.
                if slot
                    .state
                    .compare_exchange(from, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    let index = u32::try_from(i).unwrap_or(u32::MAX);
                    return Some(slot.fill_and_publish(index));
                }
            }
        }
        None
    }

    /// Gives the slot back. A no-op if it is no longer ours. Any thread may call
    /// it: the beacon is the process's, not the joining thread's.
    pub(crate) fn leave(&self, m: Member) {
        let Some(slot) = self.slots.get(m.index as usize) else {
            return;
        };
        // First, and whatever the slot says now: the mapping may go away next,
        // and an armed entry must never be left on our robust list.
        robust::disarm(&slot.beacon);
        let pid = process::pid();
        if slot.generation.load(Ordering::Relaxed) != m.generation
            || slot.pid.load(Ordering::Relaxed) != pid
            || slot
                .state
                .compare_exchange(LIVE, claiming(pid), Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        slot.pid.store(0, Ordering::Relaxed);
        // SYNC(slot): Release pairs with joiners' Acquire CAS.
        slot.state.store(EMPTY, Ordering::Release);
    }

    /// After a clean leave: if no live member (or joiner at work) is left,
    /// forgets the members found dead (`DEAD` slots become `EMPTY`, so their
    /// memberships read as gone). A dead member's traces matter to the live
    /// ones (a lock it held, a barrier generation it was part of, a queue slot
    /// it claimed: all still recovered, since gone counts as dead for them);
    /// with nobody live left, what remains is a region its users left
    /// cleanly, which `multiproc gc` must keep (a crash long ago made it
    /// read "abandoned" for ever, and `gc` removed its queued data).
    pub(crate) fn forget_dead_if_deserted(&self) {
        let (live, dead) = self.occupancy();
        if live || !dead {
            return;
        }
        for slot in self.slots {
            // AcqRel: as a leave (Release) that also takes the slot over.
            let _ = slot
                .state
                .compare_exchange(DEAD, EMPTY, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Probes the membership an owner token names, for robust lock words: alive
    /// with its beacon word (to sleep on) or dead. Impossible tokens are dead.
    pub(crate) fn probe_owner(&self, token: u32) -> crate::sync::robust::Probe<'a> {
        use crate::sync::robust::Probe;
        let Some(m) = Member::from_token(token) else {
            return Probe::Dead;
        };
        let Some(slot) = self.slots.get(m.index as usize) else {
            return Probe::Dead;
        };
        match slot.probe_beacon(m.generation) {
            Some(0) => Probe::Alive(None),
            Some(w) => Probe::Alive(Some((&slot.beacon.word, w))),
            None => match slot.verdict(m.generation) {
                Liveness::Alive => Probe::Alive(None),
                Liveness::Dead | Liveness::Gone => Probe::Dead,
            },
        }
    }

    /// Whether any slot holds a live member or a joiner at work (`CLAIMING` by
    /// a live claimant), probing (and marking) dead members on the way; and
    /// whether any member was found dead.
    pub(crate) fn occupancy(&self) -> (bool, bool) {
        let (mut live, mut dead) = (false, false);
        for slot in self.slots {
            let state = slot.state.load(Ordering::Acquire);
            if state == LIVE {
                let g = slot.generation.load(Ordering::Relaxed);
                match slot.probe(g) {
                    Liveness::Alive => live = true,
                    Liveness::Dead => dead = true,
                    // Left or rejoined since the load: look again.
                    Liveness::Gone => match slot.state.load(Ordering::Acquire) {
                        EMPTY => {}
                        DEAD => dead = true,
                        _ => live = true,
                    },
                }
            } else if state == DEAD {
                dead = true;
            } else if is_claiming(state) && !slot.reclaim_dead_claimant() {
                live = true;
            }
        }
        (live, dead)
    }

    /// Probes member `m`; an out-of-range index is `Gone`.
    pub(crate) fn probe(&self, m: Member) -> Liveness {
        match self.slots.get(m.index as usize) {
            Some(slot) => slot.probe(m.generation),
            None => Liveness::Gone,
        }
    }

    /// Snapshot of occupied slots, probing each live one.
    pub(crate) fn list(&self) -> Vec<Participant> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let state = slot.state.load(Ordering::Acquire);
            if state != LIVE && state != DEAD {
                continue;
            }
            let generation = slot.generation.load(Ordering::Relaxed);
            let pid = slot.pid.load(Ordering::Relaxed);
            let alive = match state {
                LIVE => slot.probe(generation) == Liveness::Alive,
                _ => false,
            };
            out.push(Participant {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                pid,
                generation,
                alive,
                joined_at: slot.joined_at.load(Ordering::Relaxed),
            });
        }
        out
    }
}
