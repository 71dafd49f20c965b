//! Shared values: [`Counter`] (an atomic `i64`), [`Value<T>`] (one `Pod` value
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

use std::fmt;
use std::marker::PhantomData;

use bytemuck::Pod;

use crate::Error;
use crate::loom::atomic::{AtomicU64, Ordering};
use crate::region::header::Fnv;
use crate::region::{Object, Region, RegionOptions, SharedObject};
use crate::sync::robust::MutexError;
use crate::sync::{Held, RawLock};
use crate::words::{self, read_begin, read_pod, read_validate, seq_settle, seq_write};

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
}

// ---------------------------------------------------------------------------
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

/// A shared `i64` with atomic arithmetic (wrapping on overflow), like a
/// `multiprocessing.Value('q')` whose updates need no lock.
///
/// Every operation is a single atomic instruction with `SeqCst` ordering, so
/// counters can also be used as simple flags between processes.
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
    pub fn create_with(name: &str, initial: i64, opts: RegionOptions) -> Result<Counter, Error> {
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

// ---------------------------------------------------------------------------
// Cells: the storage behind Value and Array

/// `RawCells::journal`: nothing to restore.
const JOURNAL_IDLE: u64 = 0;
/// `RawCells::journal`: the journal holds the new value of every element whose
/// bit is set in the changed-bitmap.
const JOURNAL_ALL: u64 = u64::MAX;

/// Offset of the words from the start of the cells object.
const WORDS_OFFSET: usize = size_of::<RawCells>().next_multiple_of(128);

/// Header of a seqlocked array; the words follow it:
/// `len` records of `[seq, data words]`, then `len * data words` of journal,
/// then a bitmap of the elements a multi-element update changes.
#[repr(C)]
pub(crate) struct RawCells {
    lock: RawLock,
    /// `JOURNAL_IDLE`, `JOURNAL_ALL`, or `k + 1` while element `k` is rewritten.
    journal: AtomicU64,
    recoveries: AtomicU64,
    len: u64,
    elem_size: u64,
}

/// Creation parameters: length, element size and the initial elements' bytes
/// (`len * elem_size` of them, or empty for zeros).
#[derive(Clone, Debug)]
pub(crate) struct CellsParams {
    len: u64,
    elem_size: u64,
    initial: Vec<u8>,
}

impl CellsParams {
    pub(crate) fn new<T: Pod>(len: usize, initial: &[T]) -> Result<CellsParams, Error> {
        if len == 0 {
            return Err(Error::InvalidParameter("array length must be at least 1"));
        }
        Ok(CellsParams {
            len: len as u64,
            elem_size: size_of::<T>() as u64,
            initial: bytemuck::cast_slice(initial).to_vec(),
        })
    }
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

/// A cells object typed by its element.
#[repr(C)]
pub(crate) struct CellsObject<T> {
    raw: RawCells,
    _t: PhantomData<fn() -> T>,
}

// SAFETY: repr(C): a robust mutex, atomics and immutable integers; `check`
// re-derives the geometry and requires the words to fit in the payload.
unsafe impl<T: Pod> SharedObject for CellsObject<T> {
    const KIND: &'static str = "Array";
    type Params = CellsParams;

    fn fingerprint() -> u64 {
        Fnv::new()
            .bytes(Self::KIND.as_bytes())
            .bytes(std::any::type_name::<T>().as_bytes())
            .u64(size_of::<T>() as u64)
            .u64(align_of::<T>() as u64)
            .u64(size_of::<RawCells>() as u64)
            .finish()
    }

    fn payload_size(p: &CellsParams) -> Result<usize, Error> {
        Ok(CellGeo::plan(p.len, p.elem_size)
            .ok_or(Error::InvalidParameter("array too large"))?
            .bytes())
    }

    unsafe fn init(this: *mut Self, p: &CellsParams) -> Result<(), Error> {
        use std::ptr::addr_of_mut;
        let geo =
            CellGeo::plan(p.len, p.elem_size).ok_or(Error::InvalidParameter("array too large"))?;
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
        if self.raw.elem_size != size_of::<T>() as u64 {
            return Err(Error::Corrupted("array element size"));
        }
        match CellGeo::plan(self.raw.len, self.raw.elem_size) {
            Some(g) if g.bytes() <= payload_size => Ok(()),
            _ => Err(Error::Corrupted("array larger than its region")),
        }
    }
}

/// The handle core behind [`Value`] and [`Array`].
struct Cells<T> {
    obj: Object<CellsObject<T>>,
    geo: CellGeo,
    words: *const AtomicU64,
}

// SAFETY: `words` points into the mapping kept alive by `obj`; every access
// through it is atomic.
unsafe impl<T: Pod> Send for Cells<T> {}
// SAFETY: as above.
unsafe impl<T: Pod> Sync for Cells<T> {}

impl<T: Pod> Clone for Cells<T> {
    fn clone(&self) -> Self {
        Cells {
            obj: self.obj.clone(),
            geo: self.geo,
            words: self.words,
        }
    }
}

impl<T: Pod> Cells<T> {
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

    fn from_object(obj: Object<CellsObject<T>>) -> Result<Cells<T>, Error> {
        let raw = &obj.get().raw;
        let geo = CellGeo::plan(raw.len, raw.elem_size)
            .filter(|_| raw.elem_size == size_of::<T>() as u64 && raw.len > 0)
            .ok_or(Error::Corrupted("array geometry"))?;
        // SAFETY: the words follow the header at WORDS_OFFSET inside the payload
        // (`check`, or planned by us); 128 keeps them 8-aligned.
        let words = unsafe {
            (obj.get() as *const CellsObject<T>)
                .cast::<u8>()
                .add(WORDS_OFFSET)
                .cast::<AtomicU64>()
        };
        Ok(Cells { obj, geo, words })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `words` points at `geo.words()` initialized atomics inside the
        // mapping, which lives as long as `self.obj`; shared access only.
        unsafe { std::slice::from_raw_parts(self.words, self.geo.words()) }
    }

    fn raw(&self) -> &RawCells {
        &self.obj.get().raw
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

    /// The data words of element `i` (in bounds).
    fn data(&self, i: usize) -> &[AtomicU64] {
        let rec = self.geo.record(i) + 1;
        &self.words()[rec..rec + self.geo.elem_words]
    }

    /// The journal words of element `i` (in bounds).
    fn journal_words(&self, i: usize) -> &[AtomicU64] {
        let j = self.geo.journal(i);
        &self.words()[j..j + self.geo.elem_words]
    }

    fn seq(&self, i: usize) -> &AtomicU64 {
        &self.words()[self.geo.record(i)]
    }

    /// Lock-free read of element `i` (in bounds).
    fn load(&self, i: usize) -> Result<T, ValueError> {
        loop {
            let Some(s) = read_begin(self.seq(i)) else {
                // A writer is slow or dead: wait for the lock, which repairs. With
                // the lock held no write is in progress, so a seq still odd was
                // scribbled over: make it even rather than spin forever.
                let _w = self.lock()?;
                seq_settle(self.seq(i));
                continue;
            };
            let v = read_pod::<T>(self.data(i));
            if read_validate(self.seq(i), s) {
                return Ok(v);
            }
        }
    }

    fn lock(&self) -> Result<Held<'_>, ValueError> {
        // Only this thread can have stored its own token: a reliable check.
        if self.raw().lock.is_owned_by_me() {
            return Err(ValueError::WouldDeadlock);
        }
        self.raw()
            .lock
            .lock_repairing(self.obj.region(), || self.recover())
            .map_err(|e| match e {
                MutexError::NotRecoverable => ValueError::NotRecoverable,
                MutexError::NoIdentity => ValueError::NoParticipantSlot,
                // Not returned by a blocking acquire.
                _ => ValueError::NotRecoverable,
            })
    }

    /// Re-applies the journal if a dead writer armed it and evens every seq.
    fn recover(&self) {
        let j = self.raw().journal.load(Ordering::Acquire);
        for i in 0..self.geo.len {
            // JOURNAL_ALL restores everything, `k + 1` element `k` only; any other
            // (scribbled) value restores nothing.
            let redo = if j == JOURNAL_ALL {
                self.is_changed(i)
            } else {
                j == i as u64 + 1
            };
            if redo {
                let new: T = read_pod(self.journal_words(i));
                self.seq_write(i, &new);
            }
            seq_settle(self.seq(i));
        }
        self.raw().journal.store(JOURNAL_IDLE, Ordering::Release);
        self.raw().recoveries.fetch_add(1, Ordering::Relaxed);
    }

    fn seq_write(&self, i: usize, v: &T) {
        seq_write(self.seq(i), || {
            words::write_bytes(self.data(i), bytemuck::bytes_of(v))
        });
    }

    /// Under the lock: journals every element, lets `f` edit a copy, writes back
    /// the elements that changed.
    fn update<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R, ValueError> {
        let _w = self.lock()?;
        let old: Vec<T> = (0..self.geo.len).map(|i| read_pod(self.data(i))).collect();
        let mut new = old.clone();
        // `f` runs before anything is journaled: if it panics, nothing changed.
        let r = f(&mut new);
        self.commit(&old, &new);
        Ok(r)
    }

    fn is_changed(&self, i: usize) -> bool {
        self.words()[self.geo.changed(i)].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }

    /// Writes `new` over `old` through the journal (the caller holds the lock).
    /// Only the elements that differ are journaled, marked and written, so the
    /// repair after a crash re-applies exactly those and never touches an
    /// element the update left alone (whose lock-free atomics must survive).
    fn commit(&self, old: &[T], new: &[T]) {
        let w = self.words();
        for word in 0..self.geo.len.div_ceil(64) {
            w[self.geo.changed(word * 64)].store(0, Ordering::Relaxed);
        }
        let changed = |i: usize| bytemuck::bytes_of(&old[i]) != bytemuck::bytes_of(&new[i]);
        for (i, v) in new.iter().enumerate().filter(|&(i, _)| changed(i)) {
            words::write_bytes(self.journal_words(i), bytemuck::bytes_of(v));
            w[self.geo.changed(i)].fetch_or(1 << (i % 64), Ordering::Relaxed);
        }
        // Release: the journal words and bitmap before the armed flag.
        self.raw().journal.store(JOURNAL_ALL, Ordering::Release);
        for (i, v) in new.iter().enumerate().filter(|&(i, _)| changed(i)) {
            self.seq_write(i, v);
        }
        self.raw().journal.store(JOURNAL_IDLE, Ordering::Release);
    }

    /// Under the lock: replaces element `i` (in bounds), returning the old value.
    fn store(&self, i: usize, v: T) -> Result<T, ValueError> {
        let _w = self.lock()?;
        let old: T = read_pod(self.data(i));
        words::write_bytes(self.journal_words(i), bytemuck::bytes_of(&v));
        // Release: the journal words before the armed flag naming element `i`.
        self.raw().journal.store(i as u64 + 1, Ordering::Release);
        self.seq_write(i, &v);
        self.raw().journal.store(JOURNAL_IDLE, Ordering::Release);
        Ok(old)
    }

    fn to_vec(&self) -> Result<Vec<T>, ValueError> {
        (0..self.geo.len).map(|i| self.load(i)).collect()
    }

    fn recoveries(&self) -> u64 {
        self.raw().recoveries.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------
// Value

/// One shared `Pod` value: lock-free [`load`](Value::load), and locked,
/// crash-atomic [`store`](Value::store) and [`with_lock`](Value::with_lock)
/// (Python's `with v.get_lock(): v.value += 1`, as one call).
///
/// A `Value<T>` is stored as an [`Array<T>`] of length 1: its region (or
/// [`crate::Manager`] entry) has the kind `"Array"`, and opening it as an
/// `Array<T>` gives the same element. Opening a longer array as a `Value` is a
/// [`Error::TypeMismatch`].
pub struct Value<T> {
    cells: Cells<T>,
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            cells: self.cells.clone(),
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("value", &self.load())
            .finish()
    }
}

impl<T: Pod> Value<T> {
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
        Value::from_object(Region::open_object(name)?)
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

    /// The current value (never torn). Lock-free unless a writer died mid-write,
    /// in which case this waits for the repair.
    pub fn load(&self) -> Result<T, ValueError> {
        self.cells.load(0)
    }

    /// Replaces the value, returning the old one.
    pub fn store(&self, v: T) -> Result<T, ValueError> {
        self.cells.store(0, v)
    }

    /// Runs `f` on the value under the value's lock: an atomic read-modify-write.
    /// If the process dies while `f` runs, the value keeps its old contents; if
    /// it dies while the result is being written, the next process to take the
    /// lock completes the write (never a torn mix).
    pub fn with_lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, ValueError> {
        self.cells.update(|s| f(&mut s[0]))
    }

    /// Times a writer killed mid-write was repaired.
    pub fn recoveries(&self) -> u64 {
        self.cells.recoveries()
    }

    /// The region holding the value.
    pub fn region(&self) -> &Region {
        self.cells.obj.region()
    }
}

// ---------------------------------------------------------------------------
// Array

/// Element types with lock-free atomic operations in an [`Array`]: the integers
/// of at most 64 bits.
pub trait AtomicElement: Pod + sealed::Sealed {
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
///   lock-free atomic operations on the element. They do not take the lock, so
///   do not mix them with `with_lock` updates of the same elements: the locked
///   writer would write back the value it read and lose the atomic's change.
pub struct Array<T> {
    cells: Cells<T>,
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            cells: self.cells.clone(),
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array").field("len", &self.len()).finish()
    }
}

impl<T: Pod> Array<T> {
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

    pub(crate) fn from_object(obj: Object<CellsObject<T>>) -> Result<Array<T>, Error> {
        Ok(Array {
            cells: Cells::from_object(obj)?,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.cells.geo.len
    }

    /// Always `false`: arrays have at least one element.
    pub fn is_empty(&self) -> bool {
        self.cells.geo.len == 0
    }

    /// Element `index` (never torn).
    pub fn get(&self, index: usize) -> Result<T, ValueError> {
        self.cells.check_index(index)?;
        self.cells.load(index)
    }

    /// Replaces element `index` under the lock, returning the old value.
    pub fn set(&self, index: usize, value: T) -> Result<T, ValueError> {
        self.cells.check_index(index)?;
        self.cells.store(index, value)
    }

    /// A copy of every element, each read consistently (the copy is not one
    /// atomic snapshot of the whole array when writers run concurrently; use
    /// [`Array::with_lock`] for that).
    pub fn to_vec(&self) -> Result<Vec<T>, ValueError> {
        self.cells.to_vec()
    }

    /// Runs `f` on the whole array under the lock: one atomic, crash-atomic
    /// update of any number of elements.
    pub fn with_lock<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R, ValueError> {
        self.cells.update(f)
    }

    /// Times a writer killed mid-write was repaired.
    pub fn recoveries(&self) -> u64 {
        self.cells.recoveries()
    }

    /// The region holding the array.
    pub fn region(&self) -> &Region {
        self.cells.obj.region()
    }
}

impl<T: AtomicElement> Array<T> {
    fn word(&self, index: usize) -> Result<&AtomicU64, ValueError> {
        self.cells.check_index(index)?;
        Ok(&self.cells.words()[self.cells.geo.record(index) + 1])
    }

    fn rmw(&self, index: usize, f: impl Fn(T) -> T) -> Result<T, ValueError> {
        let w = self.word(index)?;
        let mut cur = w.load(Ordering::SeqCst);
        loop {
            let new = f(T::from_word(cur)).to_word();
            match w.compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(T::from_word(cur)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Adds `delta` to element `index` atomically (wrapping), without the lock;
    /// returns the previous value.
    pub fn fetch_add(&self, index: usize, delta: T) -> Result<T, ValueError> {
        self.rmw(index, |v| v.wrapping_add_(delta))
    }

    /// Subtracts `delta` from element `index` atomically (wrapping).
    pub fn fetch_sub(&self, index: usize, delta: T) -> Result<T, ValueError> {
        self.rmw(index, |v| v.wrapping_sub_(delta))
    }

    /// Replaces element `index` atomically, returning the previous value.
    pub fn swap(&self, index: usize, value: T) -> Result<T, ValueError> {
        Ok(T::from_word(
            self.word(index)?.swap(value.to_word(), Ordering::SeqCst),
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
