//! Cleanup policies: removing a named region's name when its creator dies or
//! its last participant goes, by whichever process notices first.
//!
//! Nothing runs in a SIGKILLed process, so every removal a death calls for is
//! made by a survivor: an `open` of the name (before it joins), a participant
//! whose probe finds the creator dead, a leaving participant that finds
//! nobody left, or `multiproc gc`. Each removes the name only while it still
//! names this region's file (`(device, inode)` kept at create and open).
//!
//! The last-participant policy races a leaver against a joiner: the leaver
//! must not remove a name someone just joined through, and a joiner must not
//! stay in a region whose name is being removed. The `closing` flag and the
//! slot states form a Dekker pair (SeqCst fences on both sides):
//!
//! ```text
//! joiner                         leaver (table looked empty)
//! slot := LIVE                   CAS closing 0 -> 1
//! fence(SeqCst)                  fence(SeqCst)
//! load closing                   load every slot state
//! 1: leave, NotFound             a member: closing := 0, keep the name
//!                                none: unlink (closing stays 1)
//! ```
//!
//! At least one side sees the other, so a joiner is never left in a region
//! whose name was removed under the policy. (A joiner that backs out while the
//! leaver keeps the name gets a spurious `NotFound`; a retry opens it.)

use super::header::Lifecycle;
use super::participants::{Liveness, Member};
use super::{Cleanup, Region, header, name};
use crate::loom::atomic::{Ordering, fence};
use crate::sys::shm;

impl Region {
    /// The header's lifecycle block.
    pub(super) fn lifecycle(&self) -> &Lifecycle {
        // SAFETY: the mapping holds at least HEADER_SIZE bytes (planned or
        // validated), the block lies inside them at an 8-aligned offset of the
        // page-aligned base, and it is repr(C) of integers and atomics.
        unsafe {
            &*self
                .base()
                .add(header::LIFECYCLE_OFFSET)
                .cast::<Lifecycle>()
        }
    }

    /// This region's cleanup policy.
    pub fn cleanup(&self) -> Cleanup {
        self.cleanup
    }

    /// Removes this region's name if it still names this region's file.
    fn unlink_self(&self) -> bool {
        let (Some(n), Some(id)) = (&self.name, self.file_id) else {
            return false;
        };
        let Ok(c) = name::check(n) else { return false };
        shm::unlink_if_same(&c, id).unwrap_or(false)
    }

    /// Whether the creating process is dead, as far as anyone can tell (a
    /// creator in another pid namespace, or one `/proc` cannot judge, is alive).
    pub(super) fn creator_dead(&self) -> bool {
        let lc = self.lifecycle();
        // SYNC(creator): pairs with the creator's Release store after joining.
        let token = lc.creator_token.load(Ordering::Acquire);
        if let Some(m) = Member::from_token(token) {
            match self.table().probe(m) {
                Liveness::Alive => return false,
                Liveness::Dead => return true,
                Liveness::Gone => {}
            }
        }
        // The creator left the table (or never joined): ask /proc about the
        // process the header names. Plain fields, immutable after READY.
        let pid = self.header().creator_pid;
        !super::participants::proc_says_alive(pid, lc.creator_start_time, lc.creator_pidns)
    }

    /// Applies the policy if it is due now; returns whether the name was
    /// removed (the caller then refuses to join).
    pub(super) fn expire_if_due(&self) -> bool {
        if self.name.is_none() {
            return false;
        }
        match self.cleanup {
            Cleanup::Persistent => false,
            Cleanup::CreatorDeath => self.creator_dead() && self.unlink_self(),
            Cleanup::LastParticipant => {
                // Only once someone died: a clean last leave removed the name
                // already (the creator joins before READY, so an opener never
                // sees an empty table that nobody left).
                let (live, dead) = self.table().occupancy();
                !live && dead && self.try_close()
            }
        }
    }

    /// A probe through this region found the membership `token` dead: if that
    /// is the creator and the policy says so, remove the name.
    pub(super) fn noticed_death(&self, token: u32) {
        if self.cleanup != Cleanup::CreatorDeath || self.name.is_none() {
            return;
        }
        // Acquire: as in `creator_dead`.
        let creator = self.lifecycle().creator_token.load(Ordering::Acquire);
        // A lock word may name a membership that merely left (its process
        // alive): ask again about the process itself before removing anything.
        if creator != 0 && creator == token && self.creator_dead() {
            self.unlink_self();
        }
    }

    /// Last-participant policy: removes the name if no member is left (see the
    /// module note for the race with joiners). Returns whether it did.
    pub(super) fn try_close(&self) -> bool {
        if self.name.is_none() || self.table().occupancy().0 {
            return false;
        }
        let closing = &self.lifecycle().closing;
        // SeqCst: one half of the Dekker pair with `closing_seen`.
        if closing
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false; // someone else is closing it
        }
        fence(Ordering::SeqCst);
        if self.table().occupancy().0 {
            // A joiner came in: it is a participant now and will close later.
            closing.store(0, Ordering::SeqCst);
            return false;
        }
        self.unlink_self()
    }

    /// Joiner's half of the Dekker pair: whether the name is being removed.
    pub(super) fn closing_seen(&self) -> bool {
        fence(Ordering::SeqCst);
        self.lifecycle().closing.load(Ordering::SeqCst) != 0
    }
}
