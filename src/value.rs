//! Shared values: [`Counter`] (an atomic `i64`), [`Value<T>`] (one `Pod` or other [`SharedType`] value
//! with lock-free reads and locked, crash-atomic updates) and [`Array<T>`] (a
//! fixed-length array of them, with lock-free per-element atomics for integers).
//!
//! Python's `multiprocessing.Value('i', 0)` needs `with v.get_lock(): v.value -= 1`
//! because `v.value -= 1` is a read and a write. Here [`Counter::fetch_sub`] is one
//! atomic instruction, and [`Value::with_lock`] is a read-modify-write that other
//! processes cannot interleave with and that a SIGKILL cannot tear.
//!
//! # How `Value` and `Array` stay consistent
//!
//! Each element is stored as 64-bit words behind its own sequence counter (a
//! seqlock), so readers take no lock and retry if a write raced them. Writers
//! take one robust lock and first copy what they are about to change into a
//! journal, a redo log of the new values, before touching any element. If a
//! writer is killed mid-write, the next process to take the lock re-applies the
//! journal, completing the update. So every element holds its old value (the
//! writer died before arming the journal) or its new one, a multi-element
//! `with_lock` update ends up applied completely (by its writer or by the
//! repair), and a value a reader has seen is never rolled back. Lock-free reads
//! of several elements (`to_vec`) can see part of an update while it is being
//! applied; use `with_lock` for a snapshot of the whole array.
//!
//! The protocol, for a `with_lock` commit (`store`/`set` is the same with one
//! element and `journal = k + 1` instead of the bitmap):
//!
//! 1. clear the changed-bitmap; for every element the update changed, write its
//!    new value into its journal entry and set its bit;
//! 2. arm: `journal = JOURNAL_ALL`;
//! 3. write each changed element back as one seqlock write (`seq` odd, data,
//!    `seq` even);
//! 4. disarm: `journal = JOURNAL_IDLE`.
//!
//! The repair (run by whoever next takes the lock from a dead owner) re-applies
//! the journal entries whose bit is set if the journal is armed, and makes every
//! odd `seq` even. Re-applying is idempotent, so a repairer that dies too is
//! repaired by the next one. `tests/loom_data.rs` model-checks a writer dying at
//! each step, racing readers and lock-free atomics.
//!
//! # Fault containment
//!
//! Every number read from the region is untrusted. The geometry (length and
//! element size) is read once at open, checked against the mapping and kept in
//! the handle; later changes to those header words are ignored. The repair
//! bounds-checks the journal's element index and reads the bitmap only for
//! elements below the length, so scribbled journal words can make it restore
//! wrong values (a peer with write access can always write wrong values) but
//! never touch memory outside the array. A lock-free read never waits without
//! bound: if an element stays mid-write (its `seq` odd) past a short spin, the
//! reader waits for the writer lock in slices, re-checking the element between
//! them, for at most [`READ_TIMEOUT`] ([`Value::load_timeout`] and
//! [`Array::get_timeout`] take another bound), and then fails with
//! [`ValueError::Stalled`]. A writer that died is repaired, not reported; only
//! a live process that holds the lock without finishing its write (stopped, or
//! the element's `seq` was overwritten) makes reads stall. Writers
//! (`store`, `set`, `with_lock`) block on the lock as a mutex does.
//!
//! ```
//! use multiproc::{Array, Counter, Value};
//!
//! let hits = Counter::anonymous(0)?;
//! hits.fetch_add(1);
//! assert_eq!(hits.load(), 1);
//!
//! let point: Value<[f64; 2]> = Value::anonymous([0.0, 0.0])?;
//! point.with_lock(|p| p[0] += 1.5)?;
//! assert_eq!(point.load()?, [1.5, 0.0]);
//!
//! let slots: Array<u64> = Array::anonymous(4)?;
//! slots.fetch_add(2, 10)?;
//! assert_eq!(slots.to_vec()?, vec![0, 0, 10, 0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use crate::identity::SharedType;

use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU64, Ordering};
use crate::sync::robust::{Acquired, MutexError, Owners};
use crate::sync::{How, RawLock};
use crate::words::{self, read_begin, read_pod, read_validate, seq_settle, seq_write};

#[cfg(not(loom))]
pub use handle::{Array, Counter, Value};
#[cfg(not(loom))]
#[doc(hidden)]
pub use handle::{CellsLayout, fuzz_value};
#[cfg(not(loom))]
pub(crate) use handle::{CellsObject, CellsParams, RawCounter, inspect};

/// How long a lock-free read ([`Value::load`], [`Array::get`], [`Array::to_vec`]
/// per element) waits for an element that stays mid-write before it fails with
/// [`ValueError::Stalled`].
///
/// An element is mid-write only while a writer copies a few words into it, so a
/// live writer finishes in well under a microsecond unless it is descheduled;
/// one second covers a heavily loaded machine. A writer that died is repaired
/// by the reader itself, without waiting this long.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Failed validations (a writer raced the read) before a reader stops retrying
/// lock-free and reads under the lock instead, so a stream of writes (or a peer
/// bumping `seq`) cannot keep it retrying forever.
const TORN_RETRIES: u32 = 32;
/// Reads under the lock whose validation still fails before the reader gives
/// up with [`ValueError::Corrupted`]: with the lock held no legitimate writer
/// touches `seq`, so only a process writing the region behind the lock's back
/// can make more than one fail.
const LOCKED_RETRIES: u32 = 4;
/// A stalled reader's lock wait is cut into slices of this length; between
/// slices it re-checks the element lock-free, so a long `with_lock` closure of
/// another writer does not delay a reader whose element is no longer mid-write.
#[cfg_attr(loom, allow(dead_code, reason = "loom models the wait as blocking"))]
const READ_SLICE: Duration = Duration::from_millis(1);

/// Why a [`Value`] or [`Array`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The index is not below the array's length.
    #[error("index {index} out of bounds for length {len}")]
    OutOfBounds {
        /// The rejected index.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// Called from inside this object's own `with_lock` closure, which holds
    /// its lock: waiting would deadlock.
    #[error("called from inside the same object's with_lock")]
    WouldDeadlock,
    /// The writer lock cannot be repaired.
    #[error("the value's writer lock is not recoverable")]
    NotRecoverable,
    /// This process could not join the region's participant table (it is full),
    /// so it cannot take the writer lock.
    #[error("no participant slot left in the value's region")]
    NoParticipantSlot,
    /// A lock-free read found the element mid-write for the whole read timeout
    /// while another process held the writer lock: that process is stopped
    /// inside a write, or the element's sequence word was overwritten. The read
    /// can be retried; nothing was changed.
    #[error("element {index} stayed mid-write for the whole read timeout")]
    Stalled {
        /// The element being read.
        index: usize,
    },
    /// The element kept changing while this process held the writer lock, which
    /// no writer of this crate does: another process is writing the region
    /// without the lock.
    #[error("element {index} changed under the writer lock: the region is being overwritten")]
    Corrupted {
        /// The element being read.
        index: usize,
    },
}

// ---------------------------------------------------------------------------
// Element atomics

/// Element types with lock-free atomic operations in an [`Array`]: the integers
/// of at most 64 bits.
pub trait AtomicElement: bytemuck::Pod + sealed::Sealed {
    #[doc(hidden)]
    fn to_word(self) -> u64;
    #[doc(hidden)]
    fn from_word(w: u64) -> Self;
    #[doc(hidden)]
    fn wrapping_add_(self, d: Self) -> Self;
    #[doc(hidden)]
    fn wrapping_sub_(self, d: Self) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! atomic_element {
    ($($t:ty => $u:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicElement for $t {
            #[inline]
            fn to_word(self) -> u64 {
                // Zero-extended: the same little-endian bytes `load` copies out.
                u64::from(self as $u)
            }
            #[inline]
            fn from_word(w: u64) -> Self {
                w as $u as $t
            }
            #[inline]
            fn wrapping_add_(self, d: Self) -> Self {
                self.wrapping_add(d)
            }
            #[inline]
            fn wrapping_sub_(self, d: Self) -> Self {
                self.wrapping_sub(d)
            }
        }
    )*};
}

atomic_element!(u8 => u8, u16 => u16, u32 => u32, u64 => u64, i8 => u8, i16 => u16, i32 => u32, i64 => u64);

// ---------------------------------------------------------------------------
// Cells: the storage behind Value and Array

/// `RawCells::journal`: nothing to re-apply.
const JOURNAL_IDLE: u64 = 0;
/// `RawCells::journal`: the journal holds the new value of every element whose
/// bit is set in the changed-bitmap.
const JOURNAL_ALL: u64 = u64::MAX;

/// Offset of the words from the start of the cells object.
const WORDS_OFFSET: usize = size_of::<RawCells>().next_multiple_of(128);

/// Header of a seqlocked array; the words follow it:
/// `len` records of `[seq, data words]`, then `len * data words` of journal,
/// then a bitmap of the elements a multi-element update changes.
///
/// | `journal` | set by | meaning |
/// |---|---|---|
/// | `JOURNAL_IDLE` | creator; a writer after its write-back; the repair | nothing to re-apply |
/// | `JOURNAL_ALL` | `with_lock`, after journaling its changed elements | re-apply every element whose bit is set |
/// | `k + 1` | `store`/`set` of element `k`, after journaling it | re-apply element `k` |
/// | anything else | a peer scribbling | re-apply nothing |
///
/// Only the lock holder writes `journal`, the journal entries and the bitmap.
#[repr(C)]
pub(crate) struct RawCells {
    lock: RawLock,
    journal: AtomicU64,
    recoveries: AtomicU64,
    /// Read once at open (untrusted afterwards: the handle keeps its copy).
    len: u64,
    /// Read once at open, like `len`.
    elem_size: u64,
}

#[derive(Clone, Copy, Debug)]
struct CellGeo {
    len: usize,
    elem_words: usize,
}

impl CellGeo {
    fn plan(len: u64, elem_size: u64) -> Option<CellGeo> {
        let elem_words = usize::try_from(elem_size.div_ceil(8)).ok()?;
        let len = usize::try_from(len).ok()?;
        // Records, journal and changed-bitmap, in bytes, must not overflow.
        len.checked_mul(2 * elem_words + 1)?
            .checked_add(len.div_ceil(64))?
            .checked_mul(8)?
            .checked_add(WORDS_OFFSET)?;
        Some(CellGeo { len, elem_words })
    }

    fn words(&self) -> usize {
        self.len * (2 * self.elem_words + 1) + self.len.div_ceil(64)
    }

    #[cfg_attr(loom, allow(dead_code, reason = "loom models live on the heap"))]
    fn bytes(&self) -> usize {
        WORDS_OFFSET + self.words() * 8
    }

    fn record(&self, i: usize) -> usize {
        i * (self.elem_words + 1)
    }

    fn journal(&self, i: usize) -> usize {
        self.len * (self.elem_words + 1) + i * self.elem_words
    }

    /// The word of the changed-bitmap holding element `i`'s bit.
    fn changed(&self, i: usize) -> usize {
        self.len * (2 * self.elem_words + 1) + i / 64
    }
}

/// Where a loom model's writer "dies" inside an update. The real build always
/// passes `Never`, and `stops` is then constant `false`, so the checked steps
/// are the steps that run.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(loom), allow(dead_code, reason = "crash points exist for loom"))]
pub enum Crash {
    /// Completes normally.
    Never,
    /// After taking the lock (and running the closure), before journaling.
    BeforeJournal,
    /// After journaling the first changed element, before the second (not armed).
    MidJournal,
    /// Journal armed, nothing written back.
    AfterArm,
    /// The first changed element half written: `seq` odd, its first word new.
    MidElement,
    /// The first changed element written back, the second not.
    BetweenElements,
    /// Everything written back, the journal still armed.
    BeforeClear,
}

#[inline(always)]
fn stops(crash: Crash, at: Crash) -> bool {
    cfg!(loom) && crash == at
}

/// The writer lock, held; released on drop.
struct Hold<'a>(&'a RawLock);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        // `Hold`'s existence proves this thread holds the lock.
        self.0.release_held();
    }
}

/// The algorithm over a header and its words (exactly `geo.words()` of them);
/// every element index passed in is below `geo.len` (callers check), so every
/// word index below is in bounds by construction.
struct Core<'a, T> {
    raw: &'a RawCells,
    words: &'a [AtomicU64],
    geo: CellGeo,
    /// Who may own the lock: the region's participant table.
    owners: &'a dyn Owners,
    _t: PhantomData<fn() -> T>,
}

impl<'a, T: SharedType> Core<'a, T> {
    fn new(
        raw: &'a RawCells,
        words: &'a [AtomicU64],
        geo: CellGeo,
        owners: &'a dyn Owners,
    ) -> Core<'a, T> {
        debug_assert_eq!(words.len(), geo.words());
        Core {
            raw,
            words,
            geo,
            owners,
            _t: PhantomData,
        }
    }

    fn check_index(&self, index: usize) -> Result<(), ValueError> {
        if index < self.geo.len {
            Ok(())
        } else {
            Err(ValueError::OutOfBounds {
                index,
                len: self.geo.len,
            })
        }
    }

    /// The data words of element `i`.
    fn data(&self, i: usize) -> &'a [AtomicU64] {
        let rec = self.geo.record(i) + 1;
        &self.words[rec..rec + self.geo.elem_words]
    }

    /// The journal words of element `i`.
    fn journal_words(&self, i: usize) -> &'a [AtomicU64] {
        let j = self.geo.journal(i);
        &self.words[j..j + self.geo.elem_words]
    }

    fn seq(&self, i: usize) -> &'a AtomicU64 {
        &self.words[self.geo.record(i)]
    }

    /// One lock-free attempt: `None` if the element stayed mid-write through
    /// the spin window or a write raced the read.
    #[inline]
    fn try_read(&self, i: usize) -> Option<T> {
        let s = read_begin(self.seq(i))?;
        let v = read_pod::<T>(self.data(i));
        read_validate(self.seq(i), s).then_some(v)
    }

    /// Read of element `i`: lock-free, unless it stays mid-write or keeps
    /// being rewritten (then under the lock, waiting at most `timeout`).
    #[inline]
    fn load(&self, i: usize, timeout: Duration) -> Result<T, ValueError> {
        let seq = self.seq(i);
        for _ in 0..TORN_RETRIES {
            let Some(s) = read_begin(seq) else { break };
            let v = read_pod::<T>(self.data(i));
            if read_validate(seq, s) {
                return Ok(v);
            }
        }
        self.load_slow(i, timeout)
    }

    /// A writer is slow or dead, a stream of writes keeps racing the reader, or
    /// `seq` was scribbled: wait for the lock (which repairs a dead writer) in
    /// slices, re-checking lock-free between them, and read under it.
    #[cold]
    fn load_slow(&self, i: usize, timeout: Duration) -> Result<T, ValueError> {
        let deadline = Deadline::after(timeout);
        loop {
            // Loom: deadlines are real time, which a model must not depend on;
            // the model's futex ignores them anyway, so the wait blocks.
            #[cfg(loom)]
            let how = How::Block;
            #[cfg(not(loom))]
            let how = How::Until(deadline.min_after(READ_SLICE));
            match self.acquire(how)? {
                Some(_held) => return self.read_locked(i),
                None if deadline.passed() => return Err(ValueError::Stalled { index: i }),
                None => {}
            }
            // The writer may have finished while we waited.
            if let Some(v) = self.try_read(i) {
                return Ok(v);
            }
        }
    }

    /// Read of element `i` with the lock held: no writer of this crate writes
    /// `seq` now, so an odd one was left by a scribbler and is made even.
    fn read_locked(&self, i: usize) -> Result<T, ValueError> {
        for _ in 0..LOCKED_RETRIES {
            seq_settle(self.seq(i));
            if let Some(v) = self.try_read(i) {
                return Ok(v);
            }
        }
        Err(ValueError::Corrupted { index: i })
    }

    /// Acquires the writer lock as `how` says; `Ok(None)` if it timed out.
    /// If the previous holder died, repairs before returning, so the caller
    /// always holds a consistent lock.
    fn acquire(&self, how: How) -> Result<Option<Hold<'a>>, ValueError> {
        let lock = &self.raw.lock;
        // Only this thread can have stored its own token: a reliable check.
        if lock.is_owned_by_me() {
            return Err(ValueError::WouldDeadlock);
        }
        let acquired = match lock.acquire(how, self.owners) {
            Ok(a) => a,
            Err(MutexError::TimedOut | MutexError::WouldBlock) => return Ok(None),
            Err(MutexError::NotRecoverable) => return Err(ValueError::NotRecoverable),
            Err(MutexError::NoIdentity) => return Err(ValueError::NoParticipantSlot),
        };
        let held = Hold(lock);
        if acquired == Acquired::OwnerDied {
            self.recover();
            // Cannot fail: we hold the lock and it is inconsistent.
            let _ = lock.mark_consistent();
        }
        Ok(Some(held))
    }

    /// Blocks until the lock is held (and repaired).
    fn lock(&self) -> Result<Hold<'a>, ValueError> {
        loop {
            // A blocking acquire does not time out: this runs once.
            if let Some(held) = self.acquire(How::Block)? {
                return Ok(held);
            }
        }
    }

    /// Under the lock, after a dead owner: re-applies the journal if it was
    /// armed and evens every seq. Bounded by the handle's length whatever the
    /// journal word and bitmap say.
    fn recover(&self) {
        // Relaxed: written only by lock holders; the lock orders those writes
        // before this read.
        let j = self.raw.journal.load(Ordering::Relaxed);
        if j == JOURNAL_ALL {
            for i in (0..self.geo.len).filter(|&i| self.is_changed(i)) {
                self.redo(i);
            }
        } else if let Some(k) = j
            .checked_sub(1)
            .and_then(|k| usize::try_from(k).ok())
            .filter(|&k| k < self.geo.len)
        {
            self.redo(k);
        }
        for i in 0..self.geo.len {
            seq_settle(self.seq(i));
        }
        self.raw.journal.store(JOURNAL_IDLE, Ordering::Release);
        self.raw.recoveries.fetch_add(1, Ordering::Relaxed);
    }

    /// Re-applies element `i`'s journal entry.
    fn redo(&self, i: usize) {
        let new: T = read_pod(self.journal_words(i));
        self.seq_write(i, &new);
    }

    fn seq_write(&self, i: usize, v: &T) {
        seq_write(self.seq(i), || {
            words::write_bytes(self.data(i), crate::identity::bytes_of(v))
        });
    }

    /// Loom: the first half of a seqlock write (`seq` odd, first word new), as
    /// a writer killed between two data stores leaves it.
    #[cfg(loom)]
    fn torn_write(&self, i: usize, v: &T) {
        use crate::loom::atomic::fence;
        let seq = self.seq(i);
        let odd = seq.load(Ordering::Relaxed) | 1;
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        if let Some(w) = self.data(i).first() {
            w.store(
                words::word_of(crate::identity::bytes_of(v), 0),
                Ordering::Relaxed,
            );
        }
    }

    /// Loom: the caller "dies" holding `held` (a SIGKILL's effect on the lock).
    fn die(&self, held: Hold<'a>) {
        std::mem::forget(held);
        #[cfg(loom)]
        self.raw.lock.simulate_owner_death();
    }

    /// Under the lock: lets `f` edit a copy, then commits the elements that
    /// changed. `crash` is `Never` outside loom models.
    fn update<R>(&self, f: impl FnOnce(&mut [T]) -> R, crash: Crash) -> Result<R, ValueError> {
        let held = self.lock()?;
        let old: Vec<T> = (0..self.geo.len).map(|i| read_pod(self.data(i))).collect();
        let mut new = old.clone();
        // `f` runs before anything is journaled: if it panics, nothing changed.
        let r = f(&mut new);
        if !self.commit(&old, &new, crash) {
            self.die(held);
        }
        Ok(r)
    }

    fn is_changed(&self, i: usize) -> bool {
        // Relaxed: only lock holders write the bitmap (see `recover`).
        self.words[self.geo.changed(i)].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }

    /// Writes `new` over `old` through the journal (the caller holds the lock).
    /// Only the elements that differ are journaled, marked and written, so the
    /// repair after a crash re-applies exactly those and never touches an
    /// element the update left alone (whose lock-free atomics must survive).
    /// `false` if it stopped at `crash`.
    fn commit(&self, old: &[T], new: &[T], crash: Crash) -> bool {
        if stops(crash, Crash::BeforeJournal) {
            return false;
        }
        let w = self.words;
        for word in 0..self.geo.len.div_ceil(64) {
            w[self.geo.changed(word * 64)].store(0, Ordering::Relaxed);
        }
        let changed =
            |i: usize| crate::identity::bytes_of(&old[i]) != crate::identity::bytes_of(&new[i]);
        for (n, (i, v)) in new
            .iter()
            .enumerate()
            .filter(|&(i, _)| changed(i))
            .enumerate()
        {
            if n == 1 && stops(crash, Crash::MidJournal) {
                return false;
            }
            words::write_bytes(self.journal_words(i), crate::identity::bytes_of(v));
            w[self.geo.changed(i)].fetch_or(1 << (i % 64), Ordering::Relaxed);
        }
        // Release: the journal words and bitmap before the armed flag. Only a
        // later lock holder reads them, which the lock already orders; the
        // Release keeps the journal self-describing for any reader.
        self.raw.journal.store(JOURNAL_ALL, Ordering::Release);
        if stops(crash, Crash::AfterArm) {
            return false;
        }
        for (n, (i, v)) in new
            .iter()
            .enumerate()
            .filter(|&(i, _)| changed(i))
            .enumerate()
        {
            if n == 0 && stops(crash, Crash::MidElement) {
                #[cfg(loom)]
                self.torn_write(i, v);
                return false;
            }
            if n == 1 && stops(crash, Crash::BetweenElements) {
                return false;
            }
            self.seq_write(i, v);
        }
        if stops(crash, Crash::BeforeClear) {
            return false;
        }
        self.raw.journal.store(JOURNAL_IDLE, Ordering::Release);
        true
    }

    /// Under the lock: replaces element `i`, returning the old value.
    fn store(&self, i: usize, v: T, crash: Crash) -> Result<T, ValueError> {
        let held = self.lock()?;
        let old: T = read_pod(self.data(i));
        if stops(crash, Crash::BeforeJournal) {
            self.die(held);
            return Ok(old);
        }
        words::write_bytes(self.journal_words(i), crate::identity::bytes_of(&v));
        // Release: the journal words before the armed flag naming element `i`
        // (as in `commit`, the lock is what orders them for the repair).
        self.raw.journal.store(i as u64 + 1, Ordering::Release);
        if stops(crash, Crash::AfterArm) {
            self.die(held);
            return Ok(old);
        }
        if stops(crash, Crash::MidElement) {
            #[cfg(loom)]
            self.torn_write(i, &v);
            self.die(held);
            return Ok(old);
        }
        self.seq_write(i, &v);
        if stops(crash, Crash::BeforeClear) {
            self.die(held);
            return Ok(old);
        }
        self.raw.journal.store(JOURNAL_IDLE, Ordering::Release);
        Ok(old)
    }

    fn to_vec(&self, timeout: Duration) -> Result<Vec<T>, ValueError> {
        (0..self.geo.len).map(|i| self.load(i, timeout)).collect()
    }

    fn recoveries(&self) -> u64 {
        self.raw.recoveries.load(Ordering::Relaxed)
    }
}

impl<'a, T: AtomicElement> Core<'a, T> {
    /// The single data word of integer element `index`.
    fn word(&self, index: usize) -> Result<&'a AtomicU64, ValueError> {
        self.check_index(index)?;
        // An `AtomicElement` is at most 8 bytes: exactly one data word.
        self.data(index).first().ok_or(ValueError::OutOfBounds {
            index,
            len: self.geo.len,
        })
    }

    fn rmw(&self, index: usize, f: impl Fn(T) -> T) -> Result<T, ValueError> {
        let w = self.word(index)?;
        // SeqCst: the element atomics are documented as SeqCst, like Counter's.
        let mut cur = w.load(Ordering::SeqCst);
        loop {
            let new = f(T::from_word(cur)).to_word();
            match w.compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(T::from_word(cur)),
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::marker::PhantomData;
    use std::time::Duration;

    use crate::identity::SharedType;

    use super::*;
    use crate::Error;
    use crate::identity::{ElementId, Elements, Geometry};
    use crate::region::{Object, Region, RegionOptions, SharedObject};

    // -----------------------------------------------------------------------
    // Counter

    /// The counter's shared state: one atomic word.
    #[repr(C)]
    pub(crate) struct RawCounter {
        value: AtomicU64,
    }

    // SAFETY: repr(C), one atomic, no pointers; the default `check` ensures the
    // payload holds it.
    unsafe impl SharedObject for RawCounter {
        const KIND: &'static str = "Counter";
        type Params = i64;

        unsafe fn init(this: *mut Self, initial: &i64) -> Result<(), Error> {
            // SAFETY: the caller guarantees `this` is valid, aligned and unused.
            unsafe {
                this.write(RawCounter {
                    value: AtomicU64::new(*initial as u64),
                })
            };
            Ok(())
        }
    }

    /// `Region::inspect`: a counter's value (as a detail), an array's length
    /// (`len`, also `capacity`) and element size, from a copy of the bytes.
    pub(crate) fn inspect(
        kind: &str,
        obj: crate::region::inspect::Snapshot<'_>,
        info: &mut crate::region::inspect::KindInfo,
    ) {
        use std::mem::offset_of;
        match kind {
            "Counter" => {
                let v = obj.u64(offset_of!(RawCounter, value));
                if let Some(v) = v {
                    info.text("value", (v as i64).to_string());
                }
            }
            _ => {
                let len = obj.u64(offset_of!(RawCells, len));
                info.len = len;
                info.capacity = len;
                info.element_size = obj.u64(offset_of!(RawCells, elem_size));
            }
        }
    }

    /// A shared `i64` with atomic arithmetic (wrapping on overflow), like a
    /// `multiprocessing.Value('q')` whose updates need no lock.
    ///
    /// Every operation is a single atomic instruction with `SeqCst` ordering, so
    /// counters can also be used as simple flags between processes. Any value a
    /// peer writes is a valid `i64`, so nothing here can fail.
    ///
    /// ```
    /// let c = multiproc::Counter::anonymous(10)?;
    /// assert_eq!(c.fetch_sub(3), 10);
    /// assert_eq!(c.compare_exchange(7, 0), Ok(7));
    /// assert_eq!(c.load(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Counter {
        obj: Object<RawCounter>,
    }

    impl fmt::Debug for Counter {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Counter")
                .field("value", &self.load())
                .finish()
        }
    }

    impl Counter {
        /// A counter starting at `initial` in an anonymous shared mapping.
        pub fn anonymous(initial: i64) -> Result<Counter, Error> {
            Ok(Counter {
                obj: Region::create_object(None, RegionOptions::default(), &initial)?,
            })
        }

        /// Creates a counter under `name`; fails if the name exists.
        pub fn create(name: &str, initial: i64) -> Result<Counter, Error> {
            Counter::create_with(name, initial, RegionOptions::default())
        }

        /// [`Counter::create`] with explicit region options.
        pub fn create_with(
            name: &str,
            initial: i64,
            opts: RegionOptions,
        ) -> Result<Counter, Error> {
            Ok(Counter {
                obj: Region::create_object(Some(name), opts, &initial)?,
            })
        }

        /// Opens the counter `name`.
        pub fn open(name: &str) -> Result<Counter, Error> {
            Ok(Counter {
                obj: Region::open_object(name)?,
            })
        }

        /// `open` with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<Counter, Error> {
            Ok(Counter {
                obj: Region::open_object_with(name, opts)?,
            })
        }

        /// Opens the counter `name`, creating it at `initial` if the name does
        /// not exist; race-free between concurrent starters (see
        /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
        /// `initial` is used only by the creator.
        pub fn open_or_create(name: &str, initial: i64) -> Result<Counter, Error> {
            Counter::open_or_create_with(name, initial, RegionOptions::default())
        }

        /// [`Counter::open_or_create`] with region options (creation and
        /// trust).
        pub fn open_or_create_with(
            name: &str,
            initial: i64,
            opts: RegionOptions,
        ) -> Result<Counter, Error> {
            Ok(Counter {
                obj: Region::open_or_create_object(name, opts, &initial)?,
            })
        }

        pub(crate) fn from_object(obj: Object<RawCounter>) -> Counter {
            Counter { obj }
        }

        fn word(&self) -> &AtomicU64 {
            &self.obj.get().value
        }

        /// The current value.
        pub fn load(&self) -> i64 {
            self.word().load(Ordering::SeqCst) as i64
        }

        /// Sets the value.
        pub fn store(&self, v: i64) {
            self.word().store(v as u64, Ordering::SeqCst);
        }

        /// Sets the value, returning the previous one.
        pub fn swap(&self, v: i64) -> i64 {
            self.word().swap(v as u64, Ordering::SeqCst) as i64
        }

        /// Adds `delta` (wrapping), returning the previous value.
        pub fn fetch_add(&self, delta: i64) -> i64 {
            self.word().fetch_add(delta as u64, Ordering::SeqCst) as i64
        }

        /// Subtracts `delta` (wrapping), returning the previous value.
        pub fn fetch_sub(&self, delta: i64) -> i64 {
            self.word().fetch_sub(delta as u64, Ordering::SeqCst) as i64
        }

        /// Stores `new` if the value is `current`; `Err(actual)` otherwise.
        pub fn compare_exchange(&self, current: i64, new: i64) -> Result<i64, i64> {
            self.word()
                .compare_exchange(
                    current as u64,
                    new as u64,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .map(|v| v as i64)
                .map_err(|v| v as i64)
        }

        /// The region holding the counter.
        pub fn region(&self) -> &Region {
            self.obj.region()
        }
    }

    // -----------------------------------------------------------------------
    // Cells in a region

    /// Creation parameters: length, element size and the initial elements' bytes
    /// (`len * elem_size` of them, or empty for zeros).
    #[derive(Clone, Debug)]
    pub(crate) struct CellsParams {
        len: u64,
        elem_size: u64,
        initial: Vec<u8>,
    }

    impl CellsParams {
        pub(crate) fn new<T: SharedType>(len: usize, initial: &[T]) -> Result<CellsParams, Error> {
            if len == 0 {
                return Err(Error::InvalidParameter("array length must be at least 1"));
            }
            Ok(CellsParams {
                len: len as u64,
                elem_size: size_of::<T>() as u64,
                initial: crate::identity::slice_bytes(initial).to_vec(),
            })
        }
    }

    /// A cells object typed by its element.
    #[repr(C)]
    pub(crate) struct CellsObject<T> {
        raw: RawCells,
        _t: PhantomData<fn() -> T>,
    }

    // SAFETY: repr(C): a robust mutex, atomics and integers; `check` re-derives
    // the geometry and requires the words to fit in the payload, and the handle
    // (`Cells::from_object`) re-checks the geometry it keeps against the mapping.
    unsafe impl<T: SharedType> SharedObject for CellsObject<T> {
        const KIND: &'static str = "Array";
        type Params = CellsParams;

        fn elements() -> Elements {
            Elements::one(ElementId::of::<T>())
        }

        fn geometry(p: &CellsParams) -> Geometry {
            Geometry::counted("length", p.len)
        }

        fn payload_size(p: &CellsParams) -> Result<usize, Error> {
            Ok(CellGeo::plan(p.len, p.elem_size)
                .ok_or(Error::InvalidParameter("array too large"))?
                .bytes())
        }

        unsafe fn init(this: *mut Self, p: &CellsParams) -> Result<(), Error> {
            use std::ptr::addr_of_mut;
            let geo = CellGeo::plan(p.len, p.elem_size)
                .ok_or(Error::InvalidParameter("array too large"))?;
            // SAFETY: the caller guarantees `payload_size(p)` zeroed, writable,
            // aligned bytes; zeroed words are valid atomics (even seqs, zero data,
            // idle journal), so only the header fields and initial data need writing.
            let words = unsafe {
                addr_of_mut!((*this).raw.len).write(p.len);
                addr_of_mut!((*this).raw.elem_size).write(p.elem_size);
                RawLock::init(addr_of_mut!((*this).raw.lock))?;
                std::slice::from_raw_parts(
                    this.cast::<u8>().add(WORDS_OFFSET).cast::<AtomicU64>(),
                    geo.words(),
                )
            };
            let elem = usize::try_from(p.elem_size).unwrap_or(usize::MAX).max(1);
            for (i, bytes) in p.initial.chunks(elem).take(geo.len).enumerate() {
                words::write_bytes(&words[geo.record(i) + 1..], bytes);
            }
            Ok(())
        }

        fn check(&self, payload_size: usize) -> Result<(), Error> {
            let (len, elem_size) = self.geometry_words();
            if elem_size != size_of::<T>() as u64 {
                return Err(Error::Corrupted("array element size"));
            }
            match CellGeo::plan(len, elem_size) {
                Some(g) if g.bytes() <= payload_size => Ok(()),
                _ => Err(Error::Corrupted("array larger than its region")),
            }
        }
    }

    impl<T> CellsObject<T> {
        /// `len` and `elem_size`, read once each (a peer may be rewriting them).
        fn geometry_words(&self) -> (u64, u64) {
            let raw: *const RawCells = &self.raw;
            // SAFETY: both fields are plain `u64`s inside the mapped object;
            // volatile reads keep the compiler from re-reading them later.
            unsafe {
                (
                    std::ptr::addr_of!((*raw).len).read_volatile(),
                    std::ptr::addr_of!((*raw).elem_size).read_volatile(),
                )
            }
        }
    }

    /// The handle core behind [`Value`] and [`Array`]: the object and the
    /// geometry validated when it was opened.
    struct Cells<T> {
        obj: Object<CellsObject<T>>,
        geo: CellGeo,
        words: *const AtomicU64,
    }

    // SAFETY: `words` points into the mapping kept alive by `obj`; every access
    // through it is atomic.
    unsafe impl<T: SharedType> Send for Cells<T> {}
    // SAFETY: as above.
    unsafe impl<T: SharedType> Sync for Cells<T> {}

    impl<T: SharedType> Clone for Cells<T> {
        fn clone(&self) -> Self {
            Cells {
                obj: self.obj.clone(),
                geo: self.geo,
                words: self.words,
            }
        }
    }

    impl<T: SharedType> Cells<T> {
        fn create(
            name: Option<&str>,
            len: usize,
            initial: &[T],
            opts: RegionOptions,
        ) -> Result<Cells<T>, Error> {
            Cells::from_object(Region::create_object(
                name,
                opts,
                &CellsParams::new(len, initial)?,
            )?)
        }

        /// Reads the geometry once, checks it against the mapping (not against
        /// what `check` saw: a peer may have changed it since) and keeps it.
        fn from_object(obj: Object<CellsObject<T>>) -> Result<Cells<T>, Error> {
            let (len, elem_size) = obj.get().geometry_words();
            let geo = CellGeo::plan(len, elem_size)
                .filter(|_| elem_size == size_of::<T>() as u64 && len > 0)
                .ok_or(Error::Corrupted("array geometry"))?;
            let room = obj.region().len().saturating_sub(obj.offset());
            if geo.bytes() > room {
                return Err(Error::Corrupted("array larger than its region"));
            }
            // SAFETY: the words follow the header at WORDS_OFFSET, and all
            // `geo.words()` of them lie inside the mapping (checked just above);
            // 128 keeps them 8-aligned.
            let words = unsafe {
                (obj.get() as *const CellsObject<T>)
                    .cast::<u8>()
                    .add(WORDS_OFFSET)
                    .cast::<AtomicU64>()
            };
            Ok(Cells { obj, geo, words })
        }

        fn core(&self) -> Core<'_, T> {
            // SAFETY: `words` points at `geo.words()` initialized atomics inside
            // the mapping, which lives as long as `self.obj`; shared access only.
            let words = unsafe { std::slice::from_raw_parts(self.words, self.geo.words()) };
            Core::new(&self.obj.get().raw, words, self.geo, self.obj.region())
        }

        /// Fuzzing: overwrites the journal word, the repair counter and every
        /// word (seqs, data, journal entries, bitmap) with `data`, as a peer
        /// scribbling over the region would; then, if `repair`, runs the crash
        /// repair under the lock exactly as the next lock holder after a dead
        /// writer does.
        fn fuzz_scribble(&self, data: &[u8], repair: bool) -> Result<(), ValueError> {
            let core = self.core();
            let mut w = data.chunks(8).map(|c| words::word_of(c, 0));
            if let Some(j) = w.next() {
                core.raw.journal.store(j, Ordering::Relaxed);
            }
            if let Some(r) = w.next() {
                core.raw.recoveries.store(r, Ordering::Relaxed);
            }
            for (word, v) in core.words.iter().zip(w) {
                word.store(v, Ordering::Relaxed);
            }
            if repair {
                let _held = core.lock()?;
                core.recover();
            }
            Ok(())
        }

        fn layout(&self) -> CellsLayout {
            let base = self.obj.offset();
            let raw = std::mem::offset_of!(CellsObject<T>, raw);
            CellsLayout {
                journal: base + raw + std::mem::offset_of!(RawCells, journal),
                len: base + raw + std::mem::offset_of!(RawCells, len),
                elem_size: base + raw + std::mem::offset_of!(RawCells, elem_size),
                words: base + WORDS_OFFSET,
                elements: self.geo.len,
                elem_words: self.geo.elem_words,
            }
        }
    }

    /// Where a `Value`'s or `Array`'s shared words sit, in bytes from the start
    /// of its region's mapping (equally, of its file): for tests that play a
    /// peer writing the region. Not a stable API.
    #[doc(hidden)]
    #[derive(Clone, Copy, Debug)]
    pub struct CellsLayout {
        /// The journal word.
        pub journal: usize,
        /// The length word of the header.
        pub len: usize,
        /// The element-size word of the header.
        pub elem_size: usize,
        /// The first word of the element records.
        pub words: usize,
        /// Number of elements (as validated at open).
        pub elements: usize,
        /// Data words per element.
        pub elem_words: usize,
    }

    impl CellsLayout {
        /// Element `i`'s sequence word.
        pub fn seq(&self, i: usize) -> usize {
            self.words + 8 * i * (self.elem_words + 1)
        }

        /// Element `i`'s first data word.
        pub fn data(&self, i: usize) -> usize {
            self.seq(i) + 8
        }

        /// Element `i`'s first journal word.
        pub fn journal_entry(&self, i: usize) -> usize {
            self.words + 8 * (self.elements * (self.elem_words + 1) + i * self.elem_words)
        }

        /// Word `w` of the changed-bitmap (element `i`'s bit is bit `i % 64` of
        /// word `i / 64`).
        pub fn bitmap(&self, w: usize) -> usize {
            self.words + 8 * (self.elements * (2 * self.elem_words + 1) + w)
        }
    }

    // -----------------------------------------------------------------------
    // Value

    /// One shared `Pod` value: lock-free [`load`](Value::load), and locked,
    /// crash-atomic [`store`](Value::store) and [`with_lock`](Value::with_lock)
    /// (Python's `with v.get_lock(): v.value += 1`, as one call).
    ///
    /// A `Value<T>` is stored as an [`Array<T>`] of length 1: its region (or
    /// [`crate::Manager`] entry) has the kind `"Array"`, and opening it as an
    /// `Array<T>` gives the same element. Opening a longer array as a `Value` is a
    /// [`Error::TypeMismatch`].
    ///
    /// ```
    /// let v = multiproc::Value::anonymous(1.5f64)?;
    /// v.with_lock(|x| *x *= 2.0)?;
    /// assert_eq!(v.load()?, 3.0);
    /// assert_eq!(v.store(0.0)?, 3.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct Value<T> {
        cells: Cells<T>,
    }

    impl<T: SharedType> Clone for Value<T> {
        fn clone(&self) -> Self {
            Value {
                cells: self.cells.clone(),
            }
        }
    }

    impl<T: SharedType + fmt::Debug> fmt::Debug for Value<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Value")
                .field("value", &self.load())
                .finish()
        }
    }

    impl<T: SharedType> Value<T> {
        /// A value holding `initial` in an anonymous shared mapping.
        pub fn anonymous(initial: T) -> Result<Value<T>, Error> {
            Ok(Value {
                cells: Cells::create(None, 1, &[initial], RegionOptions::default())?,
            })
        }

        /// Creates a value under `name`; fails if the name exists.
        pub fn create(name: &str, initial: T) -> Result<Value<T>, Error> {
            Value::create_with(name, initial, RegionOptions::default())
        }

        /// [`Value::create`] with explicit region options.
        pub fn create_with(name: &str, initial: T, opts: RegionOptions) -> Result<Value<T>, Error> {
            Ok(Value {
                cells: Cells::create(Some(name), 1, &[initial], opts)?,
            })
        }

        /// Opens the value `name`, checking that it holds a `T`.
        pub fn open(name: &str) -> Result<Value<T>, Error> {
            Value::opened(Region::open_object(name))
        }

        /// `open` with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<Value<T>, Error> {
            Value::opened(Region::open_object_with(name, opts))
        }

        /// In a process started with [`Spawn`](crate::process::Spawn): the
        /// anonymous value its parent passed with the `index`-th
        /// [`Spawn::share`](crate::process::Spawn::share) call, checked as
        /// [`Value::open`] checks. No region at `index` (or one already
        /// opened): [`Error::Io`] (`NotFound`).
        ///
        /// ```no_run
        /// fn child(_: &[u8]) -> i32 {
        ///     let v = multiproc::Value::<u64>::inherit(0).unwrap();
        ///     v.store(7).unwrap();
        ///     0
        /// }
        /// let v = multiproc::Value::<u64>::anonymous(0)?;
        /// let mut c = multiproc::process::Spawn::new(child, b"").share(v.region()).start()?;
        /// assert!(c.join()?.success());
        /// assert_eq!(v.load()?, 7);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn inherit(index: usize) -> Result<Value<T>, Error> {
            Value::opened(Region::inherit_object(index))
        }

        /// Opens the value `name`, creating it holding `initial` if the name
        /// does not exist; race-free between concurrent starters (see
        /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
        /// `initial` is used only by the creator; an existing value of another
        /// element type is refused as [`Value::open`] refuses it.
        pub fn open_or_create(name: &str, initial: T) -> Result<Value<T>, Error> {
            Value::open_or_create_with(name, initial, RegionOptions::default())
        }

        /// [`Value::open_or_create`] with region options (creation and
        /// trust).
        pub fn open_or_create_with(
            name: &str,
            initial: T,
            opts: RegionOptions,
        ) -> Result<Value<T>, Error> {
            let params = CellsParams::new(1, &[initial])?;
            Value::opened(Region::open_or_create_object(name, opts, &params))
        }

        /// An error of opening an object as a `Value`, told as one: the
        /// object is an `Array` (of another length), or another kind.
        pub(crate) fn open_error(e: Error) -> Error {
            match e {
                Error::CapacityMismatch {
                    what: "length",
                    expected: 1,
                    ..
                } => Error::TypeMismatch {
                    expected: "Value".into(),
                    found: "Array".into(),
                },
                Error::TypeMismatch { expected, found } if expected == "Array" => {
                    Error::TypeMismatch {
                        expected: "Value".into(),
                        found,
                    }
                }
                e => e,
            }
        }

        /// [`Value::from_object`] of an opening's outcome, errors told as a
        /// `Value`'s ([`Value::open_error`]).
        pub(crate) fn opened(
            obj: Result<Object<CellsObject<T>>, Error>,
        ) -> Result<Value<T>, Error> {
            Value::from_object(obj.map_err(Value::<T>::open_error)?)
        }

        pub(crate) fn from_object(obj: Object<CellsObject<T>>) -> Result<Value<T>, Error> {
            let cells = Cells::from_object(obj)?;
            if cells.geo.len != 1 {
                return Err(Error::TypeMismatch {
                    expected: "Value".into(),
                    found: "Array".into(),
                });
            }
            Ok(Value { cells })
        }

        /// The current value (never torn). Lock-free unless a writer died
        /// mid-write, in which case this repairs it first; waits at most
        /// [`READ_TIMEOUT`](super::READ_TIMEOUT) for a writer stuck mid-write
        /// (see [`Value::load_timeout`]).
        pub fn load(&self) -> Result<T, ValueError> {
            self.load_timeout(READ_TIMEOUT)
        }

        /// [`Value::load`], waiting at most `timeout` for a writer that stays
        /// mid-write ([`ValueError::Stalled`] then). `Duration::ZERO` never
        /// waits for the lock.
        ///
        /// ```
        /// use std::time::Duration;
        /// let v = multiproc::Value::anonymous(7u32)?;
        /// assert_eq!(v.load_timeout(Duration::from_millis(10))?, 7);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn load_timeout(&self, timeout: Duration) -> Result<T, ValueError> {
            self.cells.core().load(0, timeout)
        }

        /// Replaces the value, returning the old one.
        pub fn store(&self, v: T) -> Result<T, ValueError> {
            self.cells.core().store(0, v, Crash::Never)
        }

        /// Runs `f` on the value under the value's lock: an atomic read-modify-write.
        /// If the process dies while `f` runs, the value keeps its old contents; if
        /// it dies while the result is being written, the next process to take the
        /// lock completes the write (never a torn mix). If `f` panics, the panic
        /// goes on with the lock released and the value unchanged (Python's
        /// `with v.get_lock():` keeps what the block assigned before it raised).
        pub fn with_lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, ValueError> {
            self.cells.core().update(|s| f(&mut s[0]), Crash::Never)
        }

        /// Times a writer killed mid-write was repaired.
        pub fn recoveries(&self) -> u64 {
            self.cells.core().recoveries()
        }

        /// The region holding the value.
        pub fn region(&self) -> &Region {
            self.cells.obj.region()
        }

        /// Tests: where the shared words are.
        pub(crate) fn layout(&self) -> CellsLayout {
            self.cells.layout()
        }
    }

    // -----------------------------------------------------------------------
    // Array

    /// A fixed-length shared array of `Pod` elements, like Python's
    /// `multiprocessing.Array`.
    ///
    /// - [`get`](Array::get) and [`to_vec`](Array::to_vec) read without a lock,
    ///   never torn.
    /// - [`set`](Array::set) and [`with_lock`](Array::with_lock) take the array's
    ///   robust lock and are crash-atomic: a writer killed inside leaves the old
    ///   contents, or the new ones completed from the journal by the next writer.
    /// - For integer elements, [`fetch_add`](Array::fetch_add),
    ///   [`compare_exchange`](Array::compare_exchange) and friends are single
    ///   lock-free atomic operations on the element. They do not take the lock.
    ///   A `with_lock` update writes back (and a repair re-applies) only the
    ///   elements its closure changed, so atomics on the other elements are
    ///   never lost; do not mix them with `with_lock` updates *of the same
    ///   elements*: the locked writer would write back the value it computed
    ///   from its copy and lose the atomic's change.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[1u32, 2, 3])?;
    /// a.with_lock(|s| s.reverse())?;
    /// assert_eq!(a.to_vec()?, vec![3, 2, 1]);
    /// assert_eq!(a.fetch_add(0, 1)?, 3);
    /// assert!(a.get(3).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct Array<T> {
        cells: Cells<T>,
    }

    impl<T: SharedType> Clone for Array<T> {
        fn clone(&self) -> Self {
            Array {
                cells: self.cells.clone(),
            }
        }
    }

    impl<T: SharedType + fmt::Debug> fmt::Debug for Array<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Array").field("len", &self.len()).finish()
        }
    }

    impl<T: SharedType> Array<T> {
        /// A zero-filled array of `len` elements in an anonymous shared mapping.
        pub fn anonymous(len: usize) -> Result<Array<T>, Error> {
            Ok(Array {
                cells: Cells::create(None, len, &[], RegionOptions::default())?,
            })
        }

        /// An anonymous array holding a copy of `values` (at least one).
        pub fn from_slice(values: &[T]) -> Result<Array<T>, Error> {
            Ok(Array {
                cells: Cells::create(None, values.len(), values, RegionOptions::default())?,
            })
        }

        /// Creates a zero-filled array under `name`; fails if the name exists.
        pub fn create(name: &str, len: usize) -> Result<Array<T>, Error> {
            Array::create_with(name, len, RegionOptions::default())
        }

        /// [`Array::create`] with explicit region options.
        pub fn create_with(name: &str, len: usize, opts: RegionOptions) -> Result<Array<T>, Error> {
            Ok(Array {
                cells: Cells::create(Some(name), len, &[], opts)?,
            })
        }

        /// Opens the array `name`, checking that it holds `T`s.
        pub fn open(name: &str) -> Result<Array<T>, Error> {
            Array::from_object(Region::open_object(name)?)
        }

        /// `open` with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<Array<T>, Error> {
            Array::from_object(Region::open_object_with(name, opts)?)
        }

        /// Opens the array `name`, creating it with `len` zeroed elements if
        /// the name does not exist; race-free between concurrent starters
        /// (see [`Queue::open_or_create`](crate::Queue::open_or_create)).
        /// An existing array of another length is [`Error::CapacityMismatch`].
        pub fn open_or_create(name: &str, len: usize) -> Result<Array<T>, Error> {
            Array::open_or_create_with(name, len, RegionOptions::default())
        }

        /// [`Array::open_or_create`] with region options (creation and
        /// trust).
        pub fn open_or_create_with(
            name: &str,
            len: usize,
            opts: RegionOptions,
        ) -> Result<Array<T>, Error> {
            let params = CellsParams::new::<T>(len, &[])?;
            Array::from_object(Region::open_or_create_object(name, opts, &params)?)
        }

        pub(crate) fn from_object(obj: Object<CellsObject<T>>) -> Result<Array<T>, Error> {
            Ok(Array {
                cells: Cells::from_object(obj)?,
            })
        }

        /// Number of elements (fixed when the handle was opened).
        pub fn len(&self) -> usize {
            self.cells.geo.len
        }

        /// Always `false`: arrays have at least one element.
        pub fn is_empty(&self) -> bool {
            self.cells.geo.len == 0
        }

        /// Element `index` (never torn). Lock-free unless a writer is stuck
        /// mid-write; waits at most [`READ_TIMEOUT`](super::READ_TIMEOUT) then
        /// (see [`Array::get_timeout`]).
        pub fn get(&self, index: usize) -> Result<T, ValueError> {
            self.get_timeout(index, READ_TIMEOUT)
        }

        /// [`Array::get`], waiting at most `timeout` for a writer that stays
        /// mid-write ([`ValueError::Stalled`] then).
        pub fn get_timeout(&self, index: usize, timeout: Duration) -> Result<T, ValueError> {
            let core = self.cells.core();
            core.check_index(index)?;
            core.load(index, timeout)
        }

        /// Replaces element `index` under the lock, returning the old value.
        pub fn set(&self, index: usize, value: T) -> Result<T, ValueError> {
            let core = self.cells.core();
            core.check_index(index)?;
            core.store(index, value, Crash::Never)
        }

        /// A copy of every element, each read consistently (the copy is not one
        /// atomic snapshot of the whole array when writers run concurrently; use
        /// [`Array::with_lock`] for that). Each element's read is bounded by
        /// [`READ_TIMEOUT`](super::READ_TIMEOUT).
        pub fn to_vec(&self) -> Result<Vec<T>, ValueError> {
            self.cells.core().to_vec(READ_TIMEOUT)
        }

        /// Runs `f` on the whole array under the lock: one atomic, crash-atomic
        /// update of any number of elements. If `f` panics, the panic goes on
        /// with the lock released and no element changed.
        pub fn with_lock<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R, ValueError> {
            self.cells.core().update(f, Crash::Never)
        }

        /// Times a writer killed mid-write was repaired.
        pub fn recoveries(&self) -> u64 {
            self.cells.core().recoveries()
        }

        /// The region holding the array.
        pub fn region(&self) -> &Region {
            self.cells.obj.region()
        }

        /// Tests: where the shared words are.
        pub(crate) fn layout(&self) -> CellsLayout {
            self.cells.layout()
        }
    }

    impl<T: AtomicElement> Array<T> {
        /// Adds `delta` to element `index` atomically (wrapping), without the lock;
        /// returns the previous value.
        pub fn fetch_add(&self, index: usize, delta: T) -> Result<T, ValueError> {
            self.cells.core().rmw(index, |v| v.wrapping_add_(delta))
        }

        /// Subtracts `delta` from element `index` atomically (wrapping).
        pub fn fetch_sub(&self, index: usize, delta: T) -> Result<T, ValueError> {
            self.cells.core().rmw(index, |v| v.wrapping_sub_(delta))
        }

        /// Replaces element `index` atomically, returning the previous value.
        pub fn swap(&self, index: usize, value: T) -> Result<T, ValueError> {
            Ok(T::from_word(
                self.cells
                    .core()
                    .word(index)?
                    .swap(value.to_word(), Ordering::SeqCst),
            ))
        }

        /// Stores `new` in element `index` if it holds `current`: `Ok(Ok(current))`
        /// on success, `Ok(Err(actual))` if it held something else.
        pub fn compare_exchange(
            &self,
            index: usize,
            current: T,
            new: T,
        ) -> Result<Result<T, T>, ValueError> {
            Ok(self
                .cells
                .core()
                .word(index)?
                .compare_exchange(
                    current.to_word(),
                    new.to_word(),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .map(T::from_word)
                .map_err(T::from_word))
        }
    }

    // -----------------------------------------------------------------------
    // Fuzzing

    /// Short: nothing in the fuzz target holds the lock while reading, so a
    /// read never needs to wait; a bug that made it wait would show as slow
    /// executions rather than a hang.
    const FUZZ_READ: Duration = Duration::from_millis(50);

    /// The fuzz target: `data[0]` picks the array (bit 0: 67 `u64`s, two
    /// bitmap words; else 5 twelve-byte elements, two data words each) and
    /// whether the crash repair runs (bit 1); the rest is scribbled over the
    /// journal word, the repair counter and every word of the array. Then every
    /// read, a `with_lock`, `set`s and (for `u64`) atomics run, and their
    /// results are checked against each other. Returns how many operations
    /// succeeded. Panics only if an invariant breaks (a fuzz finding); never
    /// hangs, never touches memory outside the array.
    pub fn fuzz_value(data: &[u8]) -> usize {
        let (mode, rest) = data.split_first().map_or((0, &[][..]), |(m, r)| (*m, r));
        let repair = mode & 2 != 0;
        if mode & 1 == 1 {
            match Array::<u64>::anonymous(67) {
                Ok(a) => exercise(&a, rest, repair, |a, i| {
                    // An atomic on an element nobody else writes is exact.
                    let before = a.fetch_add(i, 3).ok()?;
                    (a.get_timeout(i, FUZZ_READ).ok()? == before.wrapping_add(3)).then_some(())
                }),
                Err(_) => 0,
            }
        } else {
            match Array::<[u32; 3]>::anonymous(5) {
                Ok(a) => exercise(&a, rest, repair, |_, _| Some(())),
                Err(_) => 0,
            }
        }
    }

    fn exercise<T: SharedType + PartialEq + fmt::Debug>(
        a: &Array<T>,
        data: &[u8],
        repair: bool,
        atomic: impl Fn(&Array<T>, usize) -> Option<()>,
    ) -> usize {
        let mut ok = usize::from(a.cells.fuzz_scribble(data, repair).is_ok());
        let len = a.len();
        for i in 0..len {
            ok += usize::from(a.get_timeout(i, FUZZ_READ).is_ok());
        }
        // After a read settled (or the repair evened) every seq, all reads are
        // consistent with a locked snapshot.
        let snapshot = a.with_lock(|s| s.to_vec());
        if let Ok(snap) = &snapshot {
            ok += 1;
            for (i, v) in snap.iter().enumerate() {
                let got = a.get_timeout(i, FUZZ_READ);
                assert_eq!(got.as_ref(), Ok(v), "element {i} differs from the snapshot");
            }
        }
        // Inside its own with_lock, a read never waits for the lock.
        let inner = a.with_lock(|_| a.get_timeout(0, FUZZ_READ).is_ok());
        ok += usize::from(inner == Ok(true));
        assert_eq!(a.get(len), Err(ValueError::OutOfBounds { index: len, len }));
        // Updates: a set is read back exactly; a with_lock edits what set wrote.
        let pattern = |i: usize| {
            let mut v: T = crate::identity::zeroed();
            for (n, b) in crate::identity::bytes_of_mut(&mut v).iter_mut().enumerate() {
                *b = (i * 31 + n) as u8;
            }
            v
        };
        for i in [0, len / 2, len - 1] {
            if a.set(i, pattern(i)).is_ok() {
                ok += 1;
                assert_eq!(a.get_timeout(i, FUZZ_READ), Ok(pattern(i)));
            }
        }
        if a.with_lock(|s| s.iter_mut().for_each(|v| *v = crate::identity::zeroed()))
            .is_ok()
        {
            ok += 1;
            assert_eq!(
                a.to_vec().ok(),
                Some(vec![crate::identity::zeroed::<T>(); len])
            );
        }
        for i in [1, len - 2] {
            ok += usize::from(atomic(a, i).is_some());
        }
        // A clone keeps the validated geometry.
        ok += usize::from(a.clone().to_vec().is_ok_and(|v| v.len() == len));
        ok
    }
}

/// Loom model: an array on the heap, with crash points.
#[cfg(loom)]
pub mod model {
    use super::*;

    pub use super::Crash;

    /// An array of `T` for loom models (small: it is a model).
    pub struct LoomArray<T> {
        raw: RawCells,
        words: Vec<AtomicU64>,
        geo: CellGeo,
        _t: PhantomData<fn() -> T>,
    }

    impl<T> std::fmt::Debug for LoomArray<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("LoomArray")
                .field("len", &self.geo.len)
                .finish()
        }
    }

    impl<T: SharedType> LoomArray<T> {
        /// An array holding `initial` (at least one element).
        pub fn new(initial: &[T]) -> LoomArray<T> {
            let geo = match CellGeo::plan(initial.len() as u64, size_of::<T>() as u64) {
                Some(g) if !initial.is_empty() => g,
                _ => panic!("loom models use small, non-empty arrays"),
            };
            let words: Vec<AtomicU64> = (0..geo.words()).map(|_| AtomicU64::new(0)).collect();
            let a = LoomArray {
                raw: RawCells {
                    lock: RawLock::new(),
                    journal: AtomicU64::new(JOURNAL_IDLE),
                    recoveries: AtomicU64::new(0),
                    len: initial.len() as u64,
                    elem_size: size_of::<T>() as u64,
                },
                words,
                geo,
                _t: PhantomData,
            };
            for (i, v) in initial.iter().enumerate() {
                words::write_bytes(a.core().data(i), crate::identity::bytes_of(v));
            }
            a
        }

        fn core(&self) -> Core<'_, T> {
            Core::new(&self.raw, &self.words, self.geo, &crate::sync::LoomOwners)
        }

        /// See `Array::get`.
        pub fn get(&self, i: usize) -> Result<T, ValueError> {
            let core = self.core();
            core.check_index(i)?;
            core.load(i, READ_TIMEOUT)
        }

        /// See `Array::set`.
        pub fn set(&self, i: usize, v: T) -> Result<T, ValueError> {
            self.die_in_set(i, v, Crash::Never)
        }

        /// See `Array::with_lock`.
        pub fn with_lock<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R, ValueError> {
            self.core().update(f, Crash::Never)
        }

        /// See `Array::to_vec`.
        pub fn to_vec(&self) -> Result<Vec<T>, ValueError> {
            self.core().to_vec(READ_TIMEOUT)
        }

        /// Number of dead-writer repairs.
        pub fn recoveries(&self) -> u64 {
            self.core().recoveries()
        }

        /// A `with_lock(f)` whose writer "dies" at `at` (holding the lock; see
        /// `RawLock::simulate_owner_death`). The calling thread goes on as
        /// another process.
        pub fn die_in_with_lock(
            &self,
            f: impl FnOnce(&mut [T]),
            at: Crash,
        ) -> Result<(), ValueError> {
            self.core().update(f, at)
        }

        /// A `set(i, v)` whose writer "dies" at `at` (`MidJournal` and
        /// `BetweenElements` do not apply to one element: it completes).
        pub fn die_in_set(&self, i: usize, v: T, at: Crash) -> Result<T, ValueError> {
            let core = self.core();
            core.check_index(i)?;
            core.store(i, v, at)
        }
    }

    impl<T: AtomicElement> LoomArray<T> {
        /// See `Array::fetch_add`.
        pub fn fetch_add(&self, i: usize, d: T) -> Result<T, ValueError> {
            self.core().rmw(i, |v| v.wrapping_add_(d))
        }
    }
}
