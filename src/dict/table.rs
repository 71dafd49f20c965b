//! The dict algorithm: open addressing with linear probing over an array of
//! 64-bit words, a seqlock per slot for lock-free readers, one robust writer
//! lock, and a one-slot undo journal that makes every write crash-atomic.
//!
//! # Layout
//!
//! `slots` (a power of two) slots of `stride` words each, then one journal slot:
//!
//! ```text
//! slot i:  [ seq | tag | key words (kw) | value words (vw) ]
//! tag:     hash & !3 | state        state: EMPTY 0, FULL 1, TOMB 2
//! ```
//!
//! Keys and values are copied in and out as little-endian words (the last one
//! zero-padded), so neither needs any alignment and every access is atomic: a
//! reader racing a writer sees stale or new words, never undefined behaviour, and
//! the seqlock tells it to retry.
//!
//! # Protocol
//!
//! Readers: load `seq` (Acquire); odd means a write is in progress, so wait (and
//! if it stays odd, or changes on every read, take the writer lock with a
//! deadline of [`READ_PATIENCE`], which repairs a dead writer's slot, and read
//! under it);
//! read the tag, key and value words (Relaxed); `fence(Acquire)`; re-load `seq`;
//! a different value means the slot changed underneath, so read it again.
//!
//! Writers hold the lock. To change slot `i` they copy its words into the journal
//! slot, publish `journal = SLOT | i` (Release), then `seq += 1` (odd),
//! `fence(Release)`, write the words, `seq += 1` (even, Release), and clear the
//! journal. The two fences are the standard seqlock pairing: a reader whose
//! relaxed loads saw any word written after the writer's Release fence also sees,
//! after its own Acquire fence, the odd `seq` stored before it, so it retries.
//!
//! # Crash recovery
//!
//! A writer killed anywhere leaves the robust lock owner-died. The next acquirer
//! (writer, or a reader that found a slot stuck odd) runs `recover` before doing
//! anything else: it rolls the journaled slot back to its old words if the write
//! was cut short (`seq` odd; a finished write is kept, since readers may have
//! seen it), finishes an interrupted `clear`, makes every odd `seq` even (the only other writes are
//! single-word tag changes, old or new both valid), recounts `len` from the slots,
//! and marks the lock consistent. So after a crash every key maps to its old or
//! its new value, never a mix, and `len` matches the entries.
//!
//! # Removal without tombstone build-up
//!
//! Removing slot `i` leaves a tombstone unless slot `i + 1` is empty, in which
//! case slot `i` becomes empty and so do the tombstones just before it. This is
//! safe for concurrent readers: a key at `j` with home `h` has every slot in
//! `h..j` non-empty, so a slot followed by an empty one lies on no key's probe
//! path.

use crate::identity::SharedType;

use crate::loom::Deadline;
#[cfg(loom)]
use crate::loom::atomic::fence;
use crate::loom::atomic::{AtomicU64, Ordering};
use crate::sync::robust::{Acquired, MutexError, Owners};
use crate::sync::{Held, How, RawLock};
#[cfg(loom)]
use crate::words::word_of;
use crate::words::{self, eq_bytes, read_begin, read_pod, read_validate, seq_settle, seq_write};

const EMPTY: u64 = 0;
const FULL: u64 = 1;
const TOMB: u64 = 2;
const STATE: u64 = 3;

/// `RawDict::journal`: idle.
const JOURNAL_IDLE: u64 = 0;
/// `RawDict::journal`: the journal slot holds the old words of slot `low bits`.
const JOURNAL_SLOT: u64 = 1 << 63;
/// `RawDict::journal`: a `clear` is in progress (recovery finishes it).
const JOURNAL_CLEAR: u64 = 1 << 62;

/// The largest slot count (2^31): keeps indices in `u32` and sizes sane.
pub(crate) const MAX_SLOTS: u64 = 1 << 31;

/// Why a dict operation failed. `Full` hands back what was not inserted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DictError<T = ()> {
    /// The dict holds `capacity` entries already; the key and value are handed
    /// back, nothing was overwritten.
    #[error("the dict is full (its capacity, `SharedDict::capacity`, is fixed at creation)")]
    Full(T),
    /// Called from inside this dict's own `update` closure, which holds the
    /// writer lock: waiting would deadlock.
    #[error("called from inside the same dict's update closure")]
    WouldDeadlock,
    /// The writer lock cannot be repaired (only possible if something other than
    /// this crate released it while inconsistent).
    #[error("the dict's writer lock is not recoverable")]
    NotRecoverable,
    /// This process could not join the region's participant table (it is full),
    /// so it cannot take the writer lock.
    #[error("no participant slot left in the dict's region")]
    NoParticipantSlot,
    /// A lock-free read (`get`, `contains_key`, `iter`, ...) found an entry
    /// mid-write (its seqlock stayed odd, or changed on every read) and could
    /// not get the writer lock to read it within [`READ_PATIENCE`]: another
    /// process held the lock all that time. A writer holds the lock only while
    /// it writes (and while an `update` closure runs) and a dead one's lock is
    /// taken over at once, so this means a writer stalled that long inside the
    /// lock, or a peer scribbled over the region. Nothing was read; retrying is
    /// safe.
    #[error("a read waited {READ_PATIENCE:?} for an entry another process is writing")]
    Timeout,
}

/// How long a lock-free reader waits, at most, for the writer lock when an
/// entry stays mid-write, before it gives up with [`DictError::Timeout`].
/// Readers spin briefly, then take the writer lock with this deadline (which
/// repairs a dead writer's slot) and read under it, so they always make
/// progress once they have the lock and never wait unboundedly, whatever the
/// region holds. One second: long enough to wait out a writer descheduled in
/// the middle of a write on an overloaded machine (tens of milliseconds were
/// seen with a load of 10 on two cores, and a reader then must not fail),
/// short enough to bound what a region left permanently mid-write costs.
pub const READ_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Consecutive failed validations of one slot before a reader treats it as
/// stuck (a slot rewritten faster than it can be read, or scribbled).
const READ_RETRIES: u32 = 64;

impl<T> DictError<T> {
    /// The same error without the handed-back item.
    pub fn without_item(self) -> DictError {
        match self {
            DictError::Full(_) => DictError::Full(()),
            DictError::WouldDeadlock => DictError::WouldDeadlock,
            DictError::NotRecoverable => DictError::NotRecoverable,
            DictError::NoParticipantSlot => DictError::NoParticipantSlot,
            DictError::Timeout => DictError::Timeout,
        }
    }

    /// The item a `Full` error handed back.
    pub fn into_inner(self) -> Option<T> {
        match self {
            DictError::Full(t) => Some(t),
            _ => None,
        }
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> DictError<U> {
        match self {
            DictError::Full(t) => DictError::Full(f(t)),
            DictError::WouldDeadlock => DictError::WouldDeadlock,
            DictError::NotRecoverable => DictError::NotRecoverable,
            DictError::NoParticipantSlot => DictError::NoParticipantSlot,
            DictError::Timeout => DictError::Timeout,
        }
    }
}

/// The dict's shared header; the slot words follow it in the payload.
#[repr(C)]
#[derive(Debug)]
pub struct RawDict {
    /// Serializes writers; owner-died triggers `recover`.
    lock: RawLock,
    /// `JOURNAL_*`; written by the lock holder only.
    journal: AtomicU64,
    /// Entries; written by the lock holder only, read Relaxed by `len()`.
    len: AtomicU64,
    /// Times a dead writer's state was repaired.
    recoveries: AtomicU64,
    capacity: u64,
    slots: u64,
    key_size: u64,
    value_size: u64,
    k0: u64,
    k1: u64,
}

/// Process-local, validated geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geo {
    pub(crate) capacity: usize,
    pub(crate) slots: usize,
    pub(crate) stride: usize,
    pub(crate) key_words: usize,
    pub(crate) value_words: usize,
    pub(crate) k0: u64,
    pub(crate) k1: u64,
}

impl Geo {
    /// The geometry for `capacity` entries of these sizes: slots are the
    /// smallest power of two with `capacity <= 3/4 * slots` (load factor at most
    /// 75%, and at least one empty slot). `None` if out of range.
    pub(crate) fn plan(
        capacity: u64,
        key_size: u64,
        value_size: u64,
        k0: u64,
        k1: u64,
    ) -> Option<Geo> {
        if capacity == 0 {
            return None;
        }
        let min_slots = capacity.checked_mul(4)?.div_ceil(3).max(2);
        let slots = min_slots.checked_next_power_of_two()?;
        if slots > MAX_SLOTS {
            return None;
        }
        let key_words = key_size.div_ceil(8);
        let value_words = value_size.div_ceil(8);
        let stride = key_words.checked_add(value_words)?.checked_add(2)?;
        // The word count must fit comfortably: (slots + 1) * stride * 8 bytes.
        (slots + 1).checked_mul(stride)?.checked_mul(8)?;
        Some(Geo {
            capacity: usize::try_from(capacity).ok()?,
            slots: usize::try_from(slots).ok()?,
            stride: usize::try_from(stride).ok()?,
            key_words: usize::try_from(key_words).ok()?,
            value_words: usize::try_from(value_words).ok()?,
            k0,
            k1,
        })
    }

    /// Number of words in the slot array including the journal slot.
    pub(crate) fn words(&self) -> usize {
        (self.slots + 1) * self.stride
    }
}

impl RawDict {
    /// The header for `geo` (loom builds it on the heap; shared memory writes it
    /// in place through `init`).
    #[cfg(loom)]
    pub(crate) fn new(geo: &Geo, key_size: u64, value_size: u64) -> RawDict {
        RawDict {
            lock: RawLock::new(),
            journal: AtomicU64::new(JOURNAL_IDLE),
            len: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            capacity: geo.capacity as u64,
            slots: geo.slots as u64,
            key_size,
            value_size,
            k0: geo.k0,
            k1: geo.k1,
        }
    }

    /// Writes a fresh header.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes, aligned, zeroed and unused by anyone.
    #[cfg(not(loom))]
    pub(crate) unsafe fn init(
        this: *mut RawDict,
        geo: &Geo,
        key_size: u64,
        value_size: u64,
    ) -> std::io::Result<()> {
        use std::ptr::addr_of_mut;
        // SAFETY: the caller guarantees `this` is valid, aligned and unused; the
        // atomics are zero-initialized (zeroed memory), which is JOURNAL_IDLE / 0.
        unsafe {
            addr_of_mut!((*this).capacity).write(geo.capacity as u64);
            addr_of_mut!((*this).slots).write(geo.slots as u64);
            addr_of_mut!((*this).key_size).write(key_size);
            addr_of_mut!((*this).value_size).write(value_size);
            addr_of_mut!((*this).k0).write(geo.k0);
            addr_of_mut!((*this).k1).write(geo.k1);
            RawLock::init(addr_of_mut!((*this).lock))
        }
    }

    /// Re-derives the geometry from the header, checking it against the sizes the
    /// caller expects. `None` if anything is inconsistent.
    ///
    /// Each field is read once (a peer may be writing them), so the geometry
    /// returned is consistent with what was checked.
    pub(crate) fn geometry(&self, key_size: usize, value_size: usize) -> Option<Geo> {
        // SAFETY: aligned `u64` fields of a live object; volatile reads take
        // whatever a peer left there, and only the checked copies are used.
        let read = |f: &u64| unsafe { std::ptr::read_volatile(f) };
        let (capacity, slots) = (read(&self.capacity), read(&self.slots));
        let (k0, k1) = (read(&self.k0), read(&self.k1));
        if read(&self.key_size) != key_size as u64 || read(&self.value_size) != value_size as u64 {
            return None;
        }
        let geo = Geo::plan(capacity, key_size as u64, value_size as u64, k0, k1)?;
        (geo.slots as u64 == slots).then_some(geo)
    }

    /// Offsets of the header's words, by name.
    #[cfg(not(loom))]
    pub(crate) fn field_offsets() -> Vec<(&'static str, usize)> {
        use std::mem::offset_of;
        vec![
            ("lock", offset_of!(RawDict, lock)),
            ("journal", offset_of!(RawDict, journal)),
            ("len", offset_of!(RawDict, len)),
            ("capacity", offset_of!(RawDict, capacity)),
            ("slots", offset_of!(RawDict, slots)),
            ("key_size", offset_of!(RawDict, key_size)),
            ("value_size", offset_of!(RawDict, value_size)),
        ]
    }

    /// Number of repairs after a dead writer.
    pub(crate) fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    /// Loom only: the writer holding the lock "dies".
    #[cfg(loom)]
    pub(crate) fn simulate_writer_death(&self) {
        self.lock.simulate_owner_death();
    }
}

/// The writer lock taken by a reader (`lock_for_read`); released on drop.
struct ReadHeld<'a>(&'a RawLock);

impl Drop for ReadHeld<'_> {
    fn drop(&mut self) {
        // Cannot fail: this thread holds the lock.
        let _ = self.0.release();
    }
}

/// What a reader found.
enum Read<T> {
    Done(T),
    /// The slot at this base stayed odd past the spin window: settle it
    /// through the lock.
    Stuck(usize),
}

/// Where a key is, for a writer.
enum Locate {
    Found(usize),
    /// Absent; the first reusable slot on its probe path, if any.
    Vacant(Option<usize>),
}

/// The dict algorithm over a header and its slot words.
pub(crate) struct Table<'a> {
    raw: &'a RawDict,
    words: &'a [AtomicU64],
    geo: Geo,
    /// The region's participants: who the writer lock's owner is.
    owners: &'a dyn Owners,
}

impl<'a> Table<'a> {
    /// The table over `words`, which must hold exactly `geo.words()` words (every
    /// index below is `< geo.words()` by construction from the validated `geo`).
    pub(crate) fn new(
        raw: &'a RawDict,
        words: &'a [AtomicU64],
        geo: Geo,
        owners: &'a dyn Owners,
    ) -> Table<'a> {
        debug_assert_eq!(words.len(), geo.words());
        Table {
            raw,
            words,
            geo,
            owners,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.geo.slots - 1
    }

    #[inline]
    fn base(&self, i: usize) -> usize {
        (i & self.mask()) * self.geo.stride
    }

    #[inline]
    fn journal_base(&self) -> usize {
        self.geo.slots * self.geo.stride
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        super::hash::sip13(self.geo.k0, self.geo.k1, key)
    }

    #[inline]
    fn tag_for(h: u64) -> u64 {
        (h & !STATE) | FULL
    }

    /// Words `from..from + n` (in bounds: `from` is a slot base plus an offset
    /// inside the stride).
    #[inline]
    fn span(&self, from: usize, n: usize) -> &[AtomicU64] {
        &self.words[from..from + n]
    }

    /// Whether the key words of the slot at `base` equal `key`.
    #[inline]
    fn key_eq(&self, base: usize, key: &[u8]) -> bool {
        eq_bytes(self.span(base + 2, self.geo.key_words), key)
    }

    #[inline]
    fn key_at<K: SharedType>(&self, base: usize) -> K {
        read_pod(self.span(base + 2, self.geo.key_words))
    }

    #[inline]
    fn value_words(&self, base: usize) -> &[AtomicU64] {
        self.span(base + 2 + self.geo.key_words, self.geo.value_words)
    }

    // ---- readers (no lock) ----

    /// The value for `key`.
    pub(crate) fn get<K: SharedType, V: SharedType>(
        &self,
        key: &K,
    ) -> Result<Option<V>, DictError> {
        let kb = crate::identity::bytes_of(key);
        let h = self.hash(kb);
        match self.read_lookup::<V>(kb, h) {
            Read::Done(r) => Ok(r),
            Read::Stuck(base) => {
                // Read under the writer lock instead: no write is in flight
                // then, so this cannot be stuck again (progress even against a
                // writer that rewrites the slot faster than it can be read).
                let _held = self.lock_for_read(base, Deadline::after(READ_PATIENCE))?;
                Ok(match self.locate(kb, h) {
                    Locate::Found(i) => Some(self.value_at::<V>(i)),
                    Locate::Vacant(_) => None,
                })
            }
        }
    }

    fn read_lookup<V: SharedType>(&self, kb: &[u8], h: u64) -> Read<Option<V>> {
        let want = Self::tag_for(h);
        let mut i = h as usize;
        for _ in 0..self.geo.slots {
            let base = self.base(i);
            let mut retries = 0;
            loop {
                let Some(s) = read_begin(&self.words[base]) else {
                    return Read::Stuck(base);
                };
                let tag = self.words[base + 1].load(Ordering::Relaxed);
                let found = if tag & STATE == EMPTY {
                    Some(None)
                } else if tag == want && self.key_eq(base, kb) {
                    Some(Some(read_pod::<V>(self.value_words(base))))
                } else {
                    None
                };
                if !read_validate(&self.words[base], s) {
                    retries += 1;
                    if retries >= READ_RETRIES {
                        return Read::Stuck(base);
                    }
                    continue;
                }
                match found {
                    Some(r) => return Read::Done(r),
                    None => break,
                }
            }
            i = i.wrapping_add(1);
        }
        Read::Done(None)
    }

    /// Every entry, each read consistently (the set is not one atomic snapshot
    /// when writers run concurrently).
    pub(crate) fn entries<K: SharedType, V: SharedType>(&self) -> Result<Vec<(K, V)>, DictError> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut retries = 0;
        // Once a slot is stuck, the rest of the scan runs under the writer
        // lock, reading directly (no write can be in flight).
        let mut held = None;
        while i < self.geo.slots {
            let base = self.base(i);
            let s = match held {
                Some(_) => None,
                None => match read_begin(&self.words[base]) {
                    Some(s) => Some(s),
                    None => {
                        held = Some(self.lock_for_read(base, Deadline::after(READ_PATIENCE))?);
                        continue;
                    }
                },
            };
            let tag = self.words[base + 1].load(Ordering::Relaxed);
            let entry = (tag & STATE == FULL).then(|| {
                (
                    self.key_at::<K>(base),
                    read_pod::<V>(self.value_words(base)),
                )
            });
            if let Some(s) = s {
                if !read_validate(&self.words[base], s) {
                    retries += 1;
                    if retries >= READ_RETRIES {
                        held = Some(self.lock_for_read(base, Deadline::after(READ_PATIENCE))?);
                    }
                    continue;
                }
            }
            retries = 0;
            out.extend(entry);
            // A sound table never holds more than `capacity` entries; a
            // scribbled one may show more full slots: never report them.
            if out.len() >= self.geo.capacity {
                break;
            }
            i += 1;
        }
        Ok(out)
    }

    /// Number of entries (exact when no write is in flight).
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a count, ordered with nothing else.
        (self.raw.len.load(Ordering::Relaxed) as usize).min(self.geo.capacity)
    }

    /// Takes the writer lock for a reader that found the slot at `base` stuck
    /// (odd past the spin window, or changing on every read), repairing a dead
    /// writer's state first. Holding the lock, no write is in progress, so a
    /// slot still odd then was scribbled over: making it even lets lock-free
    /// readers go on instead of hanging.
    ///
    /// Bounded by `deadline`: a reader never waits for the lock past it (the
    /// holder may be alive and stalled, or a peer may have scribbled over the
    /// lock word), and then fails with [`DictError::Timeout`].
    fn lock_for_read(&self, base: usize, deadline: Deadline) -> Result<ReadHeld<'_>, DictError> {
        if self.raw.lock.is_owned_by_me() {
            return Err(DictError::WouldDeadlock);
        }
        let acquired = self
            .raw
            .lock
            .acquire(How::Until(deadline), self.owners)
            .map_err(|e| match e {
                MutexError::TimedOut | MutexError::WouldBlock => DictError::Timeout,
                MutexError::NotRecoverable => DictError::NotRecoverable,
                MutexError::NoIdentity => DictError::NoParticipantSlot,
            })?;
        let held = ReadHeld(&self.raw.lock);
        if acquired == Acquired::OwnerDied {
            self.recover();
            // Cannot fail: we hold the lock and it is inconsistent.
            let _ = self.raw.lock.mark_consistent();
        }
        seq_settle(&self.words[base]);
        Ok(held)
    }

    // ---- writers (under the lock) ----

    fn lock(&self) -> Result<Held<'_>, DictError> {
        // Only this thread can have stored its own token: a reliable check.
        if self.raw.lock.is_owned_by_me() {
            return Err(DictError::WouldDeadlock);
        }
        self.raw
            .lock
            .lock_repairing(self.owners, || self.recover())
            .map_err(|e| match e {
                MutexError::NotRecoverable => DictError::NotRecoverable,
                MutexError::NoIdentity => DictError::NoParticipantSlot,
                // Not returned by a blocking acquire.
                _ => DictError::NotRecoverable,
            })
    }

    /// Repairs what a dead writer left; the caller holds the lock.
    fn recover(&self) {
        let j = self.raw.journal.load(Ordering::Acquire);
        if j & JOURNAL_CLEAR != 0 {
            for i in 0..self.geo.slots {
                self.write_slot(i, |s| s[0].store(EMPTY, Ordering::Relaxed));
            }
        } else if j & JOURNAL_SLOT != 0 {
            // Masked: a scribbled journal word still names a slot in bounds.
            let i = (j as usize) & self.mask();
            let jb = self.journal_base();
            // Roll back only a write that did not finish (`seq` odd). A finished
            // one (`seq` even) may already have been read: keeping it means no
            // reader ever sees a value go new -> old (found by tests/dict_kill.rs).
            if self.words[self.base(i)].load(Ordering::Relaxed) & 1 == 1 {
                self.write_slot(i, |s| {
                    for (k, w) in s.iter().enumerate() {
                        w.store(
                            self.words[jb + 1 + k].load(Ordering::Relaxed),
                            Ordering::Relaxed,
                        );
                    }
                });
            }
        }
        let mut len = 0u64;
        for i in 0..self.geo.slots {
            let base = self.base(i);
            // An interrupted single-word tag change: old or new tag, both valid.
            seq_settle(&self.words[base]);
            if self.words[base + 1].load(Ordering::Relaxed) & STATE == FULL {
                len += 1;
            }
        }
        self.raw.len.store(len, Ordering::Relaxed);
        self.raw.journal.store(JOURNAL_IDLE, Ordering::Release);
        self.raw.recoveries.fetch_add(1, Ordering::Relaxed);
    }

    /// Seqlock write of slot `i`'s words after `seq` (tag, key, value).
    fn write_slot(&self, i: usize, f: impl FnOnce(&[AtomicU64])) {
        let base = self.base(i);
        seq_write(&self.words[base], || {
            f(self.span(base + 1, self.geo.stride - 1));
        });
    }

    /// Saves slot `i`'s words in the journal and arms it.
    fn journal(&self, i: usize) {
        let base = self.base(i);
        let jb = self.journal_base();
        for k in 1..self.geo.stride {
            self.words[jb + k].store(
                self.words[base + k].load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        // Release: a recoverer that sees the armed journal sees its words (it also
        // synchronizes through the robust mutex; this keeps the order explicit).
        self.raw
            .journal
            .store(JOURNAL_SLOT | (i & self.mask()) as u64, Ordering::Release);
    }

    fn journal_done(&self) {
        self.raw.journal.store(JOURNAL_IDLE, Ordering::Release);
    }

    /// Finds `key` under the lock (no seqlock needed: only we write).
    fn locate(&self, kb: &[u8], h: u64) -> Locate {
        let want = Self::tag_for(h);
        let mut free = None;
        let mut i = h as usize & self.mask();
        for _ in 0..self.geo.slots {
            let tag = self.words[self.base(i) + 1].load(Ordering::Relaxed);
            match tag & STATE {
                EMPTY => return Locate::Vacant(free.or(Some(i))),
                FULL => {
                    if tag == want && self.key_eq(self.base(i), kb) {
                        return Locate::Found(i);
                    }
                }
                // TOMB, or a scribbled state: reusable.
                _ => {
                    free.get_or_insert(i);
                }
            }
            i = (i + 1) & self.mask();
        }
        Locate::Vacant(free)
    }

    fn value_at<V: SharedType>(&self, i: usize) -> V {
        read_pod(self.value_words(self.base(i)))
    }

    fn set_value(&self, i: usize, vb: &[u8]) {
        self.journal(i);
        let kw = self.geo.key_words;
        self.write_slot(i, |s| words::write_bytes(&s[1 + kw..], vb));
        self.journal_done();
    }

    /// `len` as stored (the lock holder's exact count).
    fn len_raw(&self) -> u64 {
        self.raw.len.load(Ordering::Relaxed)
    }

    /// Inserts a new key at `free`; the caller holds the lock and checked absence.
    fn put_new(&self, free: Option<usize>, h: u64, kb: &[u8], vb: &[u8]) -> Result<(), ()> {
        let len = self.len_raw();
        if len >= self.geo.capacity as u64 {
            return Err(());
        }
        // With fewer than `capacity < slots` entries there is always a free slot;
        // `None` only on a scribbled table.
        let i = free.ok_or(())?;
        self.journal(i);
        let kw = self.geo.key_words;
        self.write_slot(i, |s| {
            s[0].store(Self::tag_for(h), Ordering::Relaxed);
            words::write_bytes(&s[1..], kb);
            words::write_bytes(&s[1 + kw..], vb);
        });
        self.raw.len.store(len + 1, Ordering::Relaxed);
        self.journal_done();
        Ok(())
    }

    /// Inserts or replaces; the old value if there was one.
    pub(crate) fn insert<K: SharedType, V: SharedType>(
        &self,
        key: K,
        value: V,
    ) -> Result<Option<V>, DictError<(K, V)>> {
        let kb = crate::identity::bytes_of(&key);
        let h = self.hash(kb);
        let _w = self.lock().map_err(|e| e.map(|()| (key, value)))?;
        match self.locate(kb, h) {
            Locate::Found(i) => {
                let old = self.value_at::<V>(i);
                self.set_value(i, crate::identity::bytes_of(&value));
                Ok(Some(old))
            }
            Locate::Vacant(free) => {
                match self.put_new(free, h, kb, crate::identity::bytes_of(&value)) {
                    Ok(()) => Ok(None),
                    Err(()) => Err(DictError::Full((key, value))),
                }
            }
        }
    }

    /// The value for `key`, inserting `value` first if the key is absent.
    pub(crate) fn get_or_insert<K: SharedType, V: SharedType>(
        &self,
        key: K,
        value: V,
    ) -> Result<V, DictError<(K, V)>> {
        let kb = crate::identity::bytes_of(&key);
        let h = self.hash(kb);
        let _w = self.lock().map_err(|e| e.map(|()| (key, value)))?;
        match self.locate(kb, h) {
            Locate::Found(i) => Ok(self.value_at::<V>(i)),
            Locate::Vacant(free) => {
                match self.put_new(free, h, kb, crate::identity::bytes_of(&value)) {
                    Ok(()) => Ok(value),
                    Err(()) => Err(DictError::Full((key, value))),
                }
            }
        }
    }

    /// Applies `f` to the value of `key` atomically; `None` if absent.
    pub(crate) fn update<K: SharedType, V: SharedType, R>(
        &self,
        key: &K,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<Option<R>, DictError> {
        let kb = crate::identity::bytes_of(key);
        let h = self.hash(kb);
        let _w = self.lock()?;
        match self.locate(kb, h) {
            Locate::Found(i) => {
                let mut v = self.value_at::<V>(i);
                // `f` runs before anything is journaled: if it panics, the guard
                // releases the lock and nothing changed.
                let r = f(&mut v);
                self.set_value(i, crate::identity::bytes_of(&v));
                Ok(Some(r))
            }
            Locate::Vacant(_) => Ok(None),
        }
    }

    /// Applies `f` to the value of `key`, inserting `default` first if absent.
    pub(crate) fn update_or_insert<K: SharedType, V: SharedType, R>(
        &self,
        key: K,
        default: V,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<R, DictError<(K, V)>> {
        let kb = crate::identity::bytes_of(&key);
        let h = self.hash(kb);
        let _w = self.lock().map_err(|e| e.map(|()| (key, default)))?;
        match self.locate(kb, h) {
            Locate::Found(i) => {
                let mut v = self.value_at::<V>(i);
                let r = f(&mut v);
                self.set_value(i, crate::identity::bytes_of(&v));
                Ok(r)
            }
            Locate::Vacant(free) => {
                // Refuse before running `f`: a full dict runs no closure.
                if free.is_none() || self.len_raw() >= self.geo.capacity as u64 {
                    return Err(DictError::Full((key, default)));
                }
                let mut v = default;
                let r = f(&mut v);
                match self.put_new(free, h, kb, crate::identity::bytes_of(&v)) {
                    Ok(()) => Ok(r),
                    Err(()) => Err(DictError::Full((key, default))),
                }
            }
        }
    }

    /// Removes `key`; its value if it was present.
    pub(crate) fn remove<K: SharedType, V: SharedType>(
        &self,
        key: &K,
    ) -> Result<Option<V>, DictError> {
        let kb = crate::identity::bytes_of(key);
        let h = self.hash(kb);
        let _w = self.lock()?;
        let Locate::Found(i) = self.locate(kb, h) else {
            return Ok(None);
        };
        let old = self.value_at::<V>(i);
        let next_empty = self.state(i + 1) == EMPTY;
        self.journal(i);
        let tag = if next_empty { EMPTY } else { TOMB };
        self.write_slot(i, |s| s[0].store(tag, Ordering::Relaxed));
        let len = self.raw.len.load(Ordering::Relaxed);
        self.raw.len.store(len.saturating_sub(1), Ordering::Relaxed);
        self.journal_done();
        if next_empty {
            // Tombstones now followed by an empty slot lie on no probe path.
            let mut j = i.wrapping_sub(1) & self.mask();
            for _ in 1..self.geo.slots {
                if self.state(j) != TOMB {
                    break;
                }
                self.write_slot(j, |s| s[0].store(EMPTY, Ordering::Relaxed));
                j = j.wrapping_sub(1) & self.mask();
            }
        }
        Ok(Some(old))
    }

    fn state(&self, i: usize) -> u64 {
        self.words[self.base(i) + 1].load(Ordering::Relaxed) & STATE
    }

    /// Removes every entry.
    pub(crate) fn clear(&self) -> Result<(), DictError> {
        let _w = self.lock()?;
        self.raw.journal.store(JOURNAL_CLEAR, Ordering::Release);
        for i in 0..self.geo.slots {
            if self.state(i) != EMPTY {
                self.write_slot(i, |s| s[0].store(EMPTY, Ordering::Relaxed));
            }
        }
        self.raw.len.store(0, Ordering::Relaxed);
        self.journal_done();
        Ok(())
    }

    /// Fuzzing: overwrites the journal word, `len` and the slot words with
    /// `data` (as a peer scribbling over the region would), then runs the
    /// crash repair under the lock as the next writer after a death would.
    #[cfg(not(loom))]
    pub(crate) fn fuzz_scribble(&self, data: &[u8]) -> Result<(), DictError> {
        let mut words = data.chunks(8).map(|c| words::word_of(c, 0));
        if let Some(j) = words.next() {
            self.raw.journal.store(j, Ordering::Relaxed);
        }
        if let Some(l) = words.next() {
            self.raw.len.store(l, Ordering::Relaxed);
        }
        for (w, v) in self.words.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
        let _w = self.lock()?;
        self.recover();
        Ok(())
    }

    /// Loom: takes the lock for good (the caller is about to "die" holding it),
    /// finds the present `key` and arms the journal for its slot.
    #[cfg(loom)]
    fn lock_forever_and_journal<K: SharedType>(&self, key: &K) -> Option<usize> {
        let kb = crate::identity::bytes_of(key);
        // The "dying" writer never releases.
        std::mem::forget(self.lock().ok()?);
        let Locate::Found(i) = self.locate(kb, self.hash(kb)) else {
            return None;
        };
        self.journal(i);
        Some(i)
    }

    /// Loom: write `value` to `key`'s slot completely (readers can see it) but
    /// die before clearing the journal. The caller then "dies".
    #[cfg(loom)]
    pub(crate) fn finish_write_then_stop<K: SharedType, V: SharedType>(
        &self,
        key: &K,
        value: &V,
    ) -> bool {
        let Some(i) = self.lock_forever_and_journal(key) else {
            return false;
        };
        let kw = self.geo.key_words;
        self.write_slot(i, |s| {
            words::write_bytes(&s[1 + kw..], crate::identity::bytes_of(value))
        });
        true
    }

    /// Loom and fault-injection tests: begin a write of `value` to `key`'s slot
    /// and stop halfway (journal armed, `seq` odd, first value word written), as a
    /// writer killed at that instruction would. The caller then "dies".
    #[cfg(loom)]
    pub(crate) fn begin_torn_write<K: SharedType, V: SharedType>(
        &self,
        key: &K,
        value: &V,
    ) -> bool {
        let Some(i) = self.lock_forever_and_journal(key) else {
            return false;
        };
        let base = self.base(i);
        let odd = self.words[base].load(Ordering::Relaxed) | 1;
        self.words[base].store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        let vb = crate::identity::bytes_of(value);
        self.words[base + 2 + self.geo.key_words].store(word_of(vb, 0), Ordering::Relaxed);
        true
    }
}

/// Loom model: a dict on the heap.
#[cfg(loom)]
pub mod model {
    use super::{DictError, Geo, RawDict, Table};
    use crate::loom::atomic::AtomicU64;

    /// A two-word value, so a torn read is observable.
    pub type Pair = [u64; 2];

    /// A `u64 -> [u64; 2]` dict for loom models.
    #[derive(Debug)]
    pub struct LoomDict {
        raw: RawDict,
        words: Vec<AtomicU64>,
        geo: Geo,
    }

    impl LoomDict {
        /// A dict with room for `capacity` entries (small: it is a model).
        pub fn new(capacity: u64) -> LoomDict {
            let geo = match Geo::plan(capacity, 8, 16, 0, 0) {
                Some(g) => g,
                None => panic!("loom models use small capacities"),
            };
            let words = (0..geo.words()).map(|_| AtomicU64::new(0)).collect();
            LoomDict {
                raw: RawDict::new(&geo, 8, 16),
                words,
                geo,
            }
        }

        fn table(&self) -> Table<'_> {
            Table::new(&self.raw, &self.words, self.geo, &crate::sync::LoomOwners)
        }

        /// See `SharedDict::get`.
        pub fn get(&self, k: u64) -> Result<Option<Pair>, DictError> {
            self.table().get::<u64, Pair>(&k)
        }

        /// See `SharedDict::insert`.
        pub fn insert(&self, k: u64, v: Pair) -> Result<Option<Pair>, DictError<(u64, Pair)>> {
            self.table().insert(k, v)
        }

        /// See `SharedDict::update`.
        pub fn update(&self, k: u64, f: impl FnOnce(&mut Pair)) -> Result<bool, DictError> {
            Ok(self.table().update::<u64, Pair, ()>(&k, f)?.is_some())
        }

        /// See `SharedDict::remove`.
        pub fn remove(&self, k: u64) -> Result<Option<Pair>, DictError> {
            self.table().remove::<u64, Pair>(&k)
        }

        /// See `SharedDict::len`.
        pub fn len(&self) -> usize {
            self.table().len()
        }

        /// Whether the model is empty.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Number of dead-writer repairs.
        pub fn recoveries(&self) -> u64 {
            self.raw.recoveries()
        }

        /// Writes `v` to the present key `k` completely, then "dies" before
        /// clearing the journal. Returns whether the key was present.
        pub fn die_after_writing(&self, k: u64, v: Pair) -> bool {
            let done = self.table().finish_write_then_stop(&k, &v);
            self.raw.simulate_writer_death();
            done
        }

        /// Begins a write of `v` to the present key `k` and stops halfway (journal
        /// armed, `seq` odd, first value word written), holding the lock; then the
        /// calling thread "dies" (see `RawLock::simulate_owner_death`). Returns
        /// whether the key was present.
        pub fn die_while_writing(&self, k: u64, v: Pair) -> bool {
            let started = self.table().begin_torn_write(&k, &v);
            self.raw.simulate_writer_death();
            started
        }
    }
}
