//! The participant table: which processes use a region, and which of them died.
//!
//! Each slot holds `{state, pid, generation, start time, pid namespace, beacon}`.
//! The beacon is a robust process-shared mutex that the joining thread locks and
//! keeps locked until the process leaves. A peer probes it with `trylock`:
//!
//! | probe result | meaning |
//! |---|---|
//! | `EBUSY` | the holder thread lives: the participant is alive |
//! | `EOWNERDEAD` / free | the holder thread is gone; `/proc/<pid>/stat` (pid + start time, zombies count as dead) decides whether the whole process is gone or only the thread that joined |
//!
//! The kernel marks the beacon owner-died before the pid can be reused, so a
//! probe never mistakes a new process for an old one. The process is the unit of
//! failure: a thread that dies in a live process does not make it "dead".
//!
//! Slot states (`state` word):
//!
//! | state | set by | meaning |
//! |---|---|---|
//! | `EMPTY` | creator (zeroed), leaver | free |
//! | `CLAIMING` | joiner, by CAS from `EMPTY`/`DEAD` | being filled in |
//! | `LIVE` | joiner, Release after the fields and beacon | in use |
//! | `DEAD` | the prober that saw it die, by CAS from `LIVE` | dead, reusable |
//!
//! `generation` increases on every join, so `(index, generation)` names one
//! process's membership even after the slot is reused.

use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::loom::{Acquired, MutexError, RobustMutex};
use crate::sys::process;

pub(crate) const EMPTY: u32 = 0;
pub(crate) const CLAIMING: u32 = 1;
pub(crate) const LIVE: u32 = 2;
pub(crate) const DEAD: u32 = 3;

/// One participant slot; exactly [`super::header::SLOT_SIZE`] bytes.
#[repr(C, align(128))]
pub(crate) struct Slot {
    state: AtomicU32,
    pid: AtomicU32,
    generation: AtomicU32,
    _pad: u32,
    start_time: AtomicU64,
    pidns: AtomicU64,
    beacon: RobustMutex,
}

const _: () = assert!(size_of::<Slot>() == super::header::SLOT_SIZE);

/// A process's membership: slot index and the generation it joined with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) index: u32,
    pub(crate) generation: u32,
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
            std::ptr::addr_of_mut!((*this).state).write(AtomicU32::new(EMPTY));
            std::ptr::addr_of_mut!((*this).pid).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this).generation).write(AtomicU32::new(0));
            std::ptr::addr_of_mut!((*this)._pad).write(0);
            std::ptr::addr_of_mut!((*this).start_time).write(AtomicU64::new(0));
            std::ptr::addr_of_mut!((*this).pidns).write(AtomicU64::new(0));
            RobustMutex::init(std::ptr::addr_of_mut!((*this).beacon))
        }
    }

    fn fill_and_publish(&self, index: u32) -> Option<Member> {
        // Take the beacon first: if a thread of a live process still holds it (it
        // left from another thread than the one that joined), skip the slot.
        match self.beacon.try_lock() {
            Ok(Acquired::Clean) => {}
            Ok(Acquired::OwnerDied) => {
                let _ = self.beacon.consistent();
            }
            Err(_) => return None,
        }
        // Relaxed: the generation is only written by the claimant (state CLAIMING);
        // the Release store of LIVE below publishes it.
        let generation = self
            .generation
            .load(Ordering::Relaxed)
            .wrapping_add(1)
            .max(1);
        self.generation.store(generation, Ordering::Relaxed);
        self.pid.store(process::pid(), Ordering::Relaxed);
        self.start_time
            .store(process::start_time(), Ordering::Relaxed);
        self.pidns
            .store(process::pid_namespace(), Ordering::Relaxed);
        // SYNC(slot): pairs with the Acquire loads of `state` in `probe`/`list`.
        self.state.store(LIVE, Ordering::Release);
        Some(Member { index, generation })
    }

    fn probe(&self, generation: u32) -> Liveness {
        // SYNC(slot): Acquire pairs with the Release store of LIVE/DEAD.
        let state = self.state.load(Ordering::Acquire);
        if self.generation.load(Ordering::Relaxed) != generation {
            return Liveness::Gone;
        }
        match state {
            LIVE => {}
            DEAD => return Liveness::Dead,
            _ => return Liveness::Gone,
        }
        let died = match self.beacon.try_lock() {
            Err(MutexError::WouldBlock) => return Liveness::Alive,
            Ok(Acquired::OwnerDied) => {
                let _ = self.beacon.consistent();
                true
            }
            Ok(Acquired::Clean) => false,
            // Not recoverable or scribbled over: fall back to /proc alone.
            Err(_) => {
                return match self.proc_says_alive(false) {
                    true => Liveness::Alive,
                    false => self.mark_dead(generation),
                };
            }
        };
        // We hold the beacon: the thread that joined is gone. Decide for the process.
        let alive = self.proc_says_alive(died);
        let result = if alive {
            Liveness::Alive
        } else {
            self.mark_dead(generation)
        };
        let _ = self.beacon.unlock();
        result
    }

    /// Whether `/proc` shows the process still running. When `/proc` cannot tell
    /// (another pid namespace), the beacon's owner-died verdict decides.
    fn proc_says_alive(&self, beacon_died: bool) -> bool {
        let pidns = self.pidns.load(Ordering::Relaxed);
        if pidns != 0 && pidns != process::pid_namespace() {
            return !beacon_died;
        }
        let pid = self.pid.load(Ordering::Relaxed);
        let start = self.start_time.load(Ordering::Relaxed);
        process::is_alive(pid, start).unwrap_or(!beacon_died)
    }

    fn mark_dead(&self, generation: u32) -> Liveness {
        if self.generation.load(Ordering::Relaxed) != generation {
            return Liveness::Gone;
        }
        // Release: publishes nothing new, but keeps the state word's history
        // ordered for the Acquire readers.
        match self
            .state
            .compare_exchange(LIVE, DEAD, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(DEAD) => Liveness::Dead,
            Err(_) => Liveness::Gone,
        }
    }
}

/// The table: a slice of slots inside a mapping.
#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    pub(crate) slots: &'a [Slot],
}

impl Table<'_> {
    /// Takes a slot for the calling process; `None` when the table is full.
    pub(crate) fn join(&self) -> Option<Member> {
        for from in [EMPTY, DEAD] {
            for (i, slot) in self.slots.iter().enumerate() {
                if slot.state.load(Ordering::Relaxed) != from {
                    continue;
                }
                // Acquire: see the previous occupant's writes before reusing.
                if slot
                    .state
                    .compare_exchange(from, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                match slot.fill_and_publish(index) {
                    Some(m) => return Some(m),
                    None => slot.state.store(from, Ordering::Release),
                }
            }
        }
        // Full: look for dead members to reclaim, then try once more.
        let mut reclaimed = false;
        for slot in self.slots {
            let g = slot.generation.load(Ordering::Relaxed);
            if slot.state.load(Ordering::Acquire) == LIVE && slot.probe(g) == Liveness::Dead {
                reclaimed = true;
            }
        }
        if reclaimed {
            self.join_dead_only()
        } else {
            None
        }
    }

    fn join_dead_only(&self) -> Option<Member> {
        for (i, slot) in self.slots.iter().enumerate() {
            if slot
                .state
                .compare_exchange(DEAD, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                match slot.fill_and_publish(index) {
                    Some(m) => return Some(m),
                    None => slot.state.store(DEAD, Ordering::Release),
                }
            }
        }
        None
    }

    /// Gives the slot back. A no-op if it is no longer ours.
    pub(crate) fn leave(&self, m: Member) {
        let Some(slot) = self.slots.get(m.index as usize) else {
            return;
        };
        if slot.generation.load(Ordering::Relaxed) != m.generation
            || slot.pid.load(Ordering::Relaxed) != process::pid()
            || slot
                .state
                .compare_exchange(LIVE, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Fails with NotOwner when leaving from another thread than the one that
        // joined; `join` then skips the slot until that thread exits.
        let _ = slot.beacon.unlock();
        slot.pid.store(0, Ordering::Relaxed);
        // SYNC(slot): Release pairs with joiners' Acquire CAS.
        slot.state.store(EMPTY, Ordering::Release);
    }

    /// Probes member `m`; an out-of-range index is `Gone`.
    pub(crate) fn probe(&self, m: Member) -> Liveness {
        match self.slots.get(m.index as usize) {
            Some(slot) => slot.probe(m.generation),
            None => Liveness::Gone,
        }
    }

    /// The current generation of slot `index`.
    pub(crate) fn generation(&self, index: u32) -> Option<u32> {
        // Relaxed: callers confirm ownership with `is_mine`, which loads `state`
        // with Acquire.
        self.slots
            .get(index as usize)
            .map(|s| s.generation.load(Ordering::Relaxed))
    }

    /// Whether `m` is still this process's live membership.
    pub(crate) fn is_mine(&self, m: Member) -> bool {
        self.slots.get(m.index as usize).is_some_and(|s| {
            s.state.load(Ordering::Acquire) == LIVE
                && s.generation.load(Ordering::Relaxed) == m.generation
                && s.pid.load(Ordering::Relaxed) == process::pid()
        })
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
            });
        }
        out
    }
}
