//! `SharedDict<K, V>`: a typed hash map in shared memory, the server-less
//! replacement for Python's `Manager().dict()`.
//!
//! # Design
//!
//! - **Fixed capacity**, chosen at creation: the table has the smallest power of
//!   two of slots such that `capacity` entries fill at most 75% of them. A full
//!   dict refuses new keys with [`DictError::Full`], handing the pair back.
//! - **Open addressing, linear probing**; keys and values are [`SharedType`](crate::SharedType)s (any `Pod`), copied
//!   in and out as words, so no pointer ever lives in the region.
//! - **Stable hashing**: SipHash-1-3 keyed by two words stored in the region,
//!   identical in every process. By default the key is fixed, so the layout is
//!   reproducible; [`DictOptions::random_seed`] draws it from the kernel at
//!   creation, which makes it hard for anyone who cannot read the region to
//!   predict which keys collide (the hash-flooding defence `std`'s `HashMap` gets
//!   from a per-process seed, which a shared table cannot use).
//! - **Readers take no lock**: each slot carries a seqlock, so `get`,
//!   `contains_key`, `len` and `iter` are pure loads and never block a writer.
//! - **Writers take one robust lock** (a `PTHREAD_MUTEX_ROBUST` mutex) and write
//!   through a one-slot undo journal. Why one lock rather than stripes: after a
//!   writer is killed, the next process must be able to repair *all* in-flight
//!   state before anyone writes again. With one lock that state is one journal
//!   slot, `len` and `capacity` stay exact without cross-stripe accounting, and
//!   `update` is trivially atomic. Stripes would let writers of different keys run
//!   in parallel but need a slot-claim protocol and a journal per stripe whose
//!   repairs interleave with live writers. A write holds the lock for tens of
//!   nanoseconds and readers never take it, so the single lock is the robust
//!   choice for the read-mostly, counter-style use this type targets;
//!   `benches/dict.rs` measures the cost under two writing processes.
//! - **Crash consistency**: a writer killed at any instruction leaves the lock
//!   owner-died; the next writer (or a reader that finds a slot stuck mid-write)
//!   rolls back the journaled slot if its write was cut short (a finished
//!   write, which readers may have seen, is kept), recounts `len`, and goes on. Every key then
//!   maps to its old or its new value, never a torn mix. [`DictStats::recoveries`]
//!   counts the repairs.
//! - **Tombstones** from `remove` are reused by later inserts, and a removal next
//!   to an empty slot clears the tombstones before it, so a churning dict does not
//!   degrade; [`SharedDict::clear`] resets everything.
//!
//! ```
//! use multiproc::{FixedStr, SharedDict};
//!
//! let counts: SharedDict<FixedStr<16>, i64> = SharedDict::anonymous(100)?;
//! let key = FixedStr::try_new("count")?;
//! counts.insert(key, 10)?;
//! counts.update(&key, |v| *v -= 1)?; // atomic, unlike Python's `d[k] -= 1`
//! assert_eq!(counts.get(&key)?, Some(9));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod fixed;
mod hash;
#[cfg_attr(
    loom,
    allow(dead_code, reason = "loom models a subset of the operations")
)]
pub(crate) mod table;

pub use fixed::{FixedBytes, FixedStr, TooLong};
pub use table::{DictError, READ_PATIENCE};

#[cfg(not(loom))]
#[allow(unused_imports, reason = "hosted by the manager")]
pub(crate) use handle::{DictObject, field_offsets};
#[cfg(not(loom))]
pub use handle::{DictOptions, DictStats, SharedDict};

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::marker::PhantomData;

    use crate::identity::SharedType;

    use super::*;
    use crate::Error;
    use crate::identity::{ElementId, Elements, Geometry};
    use crate::loom::atomic::AtomicU64;
    use crate::region::{Object, Region, RegionOptions, SharedObject};
    use table::{Geo, RawDict, Table};

    /// Offset of the slot words from the start of the dict object.
    const WORDS_OFFSET: usize = size_of::<RawDict>().next_multiple_of(128);

    /// Offsets of a dict's shared words from the object's start, by name: the
    /// writer lock, then the slot words (`words`; slot `i`'s `seq` is word
    /// `i * stride`, `stride` = key words + value words + 2).
    pub(crate) fn field_offsets() -> Vec<(&'static str, usize)> {
        let mut v = RawDict::field_offsets();
        v.push(("words", WORDS_OFFSET));
        v
    }

    /// Creation parameters of a dict.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct DictParams {
        pub(crate) capacity: u64,
        pub(crate) k0: u64,
        pub(crate) k1: u64,
    }

    /// The dict object in a region: the header, then the slot words.
    #[repr(C)]
    pub(crate) struct DictObject<K, V> {
        raw: RawDict,
        _kv: PhantomData<fn() -> (K, V)>,
    }

    fn plan<K, V>(p: &DictParams) -> Result<Geo, Error> {
        Geo::plan(
            p.capacity,
            size_of::<K>() as u64,
            size_of::<V>() as u64,
            p.k0,
            p.k1,
        )
        .ok_or(if p.capacity == 0 {
            Error::InvalidParameter("dict capacity must be at least 1")
        } else {
            Error::InvalidParameter("dict capacity too large")
        })
    }

    // SAFETY: repr(C); a robust mutex, atomics and immutable integers; `check`
    // re-derives the geometry from the header and requires the slot words to fit
    // in the payload before any handle computes an address from it.
    unsafe impl<K: SharedType, V: SharedType> SharedObject for DictObject<K, V> {
        const KIND: &'static str = "SharedDict";
        type Params = DictParams;

        fn elements() -> Elements {
            Elements::two(ElementId::of::<K>(), ElementId::of::<V>())
        }

        fn geometry(p: &DictParams) -> Geometry {
            Geometry::counted("capacity", p.capacity)
        }

        fn payload_size(p: &DictParams) -> Result<usize, Error> {
            let geo = plan::<K, V>(p)?;
            geo.words()
                .checked_mul(8)
                .and_then(|b| b.checked_add(WORDS_OFFSET))
                .ok_or(Error::InvalidParameter("dict capacity too large"))
        }

        unsafe fn init(this: *mut Self, p: &DictParams) -> Result<(), Error> {
            let geo = plan::<K, V>(p)?;
            // SAFETY: the caller guarantees `payload_size(p)` zeroed, writable,
            // aligned bytes at `this`; zeroed words are valid atomics with
            // `seq == 0` and tag EMPTY, so only the header needs writing.
            unsafe {
                RawDict::init(
                    std::ptr::addr_of_mut!((*this).raw),
                    &geo,
                    size_of::<K>() as u64,
                    size_of::<V>() as u64,
                )?;
            }
            Ok(())
        }

        fn check(&self, payload_size: usize) -> Result<(), Error> {
            validate::<K, V>(&self.raw, payload_size).map(|_| ())
        }
    }

    /// Reads the dict's geometry from its header once and checks that the slot
    /// words fit in the `payload_size` bytes the object owns: the geometry a
    /// handle keeps for life.
    fn validate<K, V>(raw: &RawDict, payload_size: usize) -> Result<Geo, Error> {
        if payload_size < WORDS_OFFSET {
            return Err(Error::Corrupted("payload smaller than the dict header"));
        }
        let geo = raw
            .geometry(size_of::<K>(), size_of::<V>())
            .ok_or(Error::Corrupted("dict geometry"))?;
        let need = geo
            .words()
            .checked_mul(8)
            .and_then(|b| b.checked_add(WORDS_OFFSET));
        match need {
            Some(n) if n <= payload_size => Ok(geo),
            _ => Err(Error::Corrupted("dict larger than its region")),
        }
    }

    /// Options for creating a [`SharedDict`].
    #[derive(Clone, Copy, Debug, Default)]
    pub struct DictOptions {
        region: RegionOptions,
        seed: Option<(u64, u64)>,
        random: bool,
    }

    impl DictOptions {
        /// Defaults: fixed hash key, default region options.
        pub fn new() -> DictOptions {
            DictOptions::default()
        }

        /// Region options (mode, participant slots) for a named dict.
        pub fn region(mut self, opts: RegionOptions) -> DictOptions {
            self.region = opts;
            self
        }

        /// Hash with this key instead of the fixed default.
        pub fn seed(mut self, k0: u64, k1: u64) -> DictOptions {
            self.seed = Some((k0, k1));
            self.random = false;
            self
        }

        /// Draw the hash key from the kernel at creation (hash-flooding defence).
        pub fn random_seed(mut self) -> DictOptions {
            self.random = true;
            self.seed = None;
            self
        }

        pub(crate) fn params(&self, capacity: usize) -> DictParams {
            let (k0, k1) = match (self.random, self.seed) {
                (true, _) => (
                    crate::sys::process::random_u64(),
                    crate::sys::process::random_u64(),
                ),
                (false, Some(s)) => s,
                // "multiproc" / "dict-key": any fixed pair does.
                (false, None) => (0x636f_7270_6974_6c75, 0x7965_6b2d_7463_6964),
            };
            DictParams {
                capacity: capacity as u64,
                k0,
                k1,
            }
        }
    }

    /// Counters describing a dict.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct DictStats {
        /// Entries.
        pub len: usize,
        /// Maximum entries.
        pub capacity: usize,
        /// Slots in the table (a power of two, at least `capacity * 4 / 3`).
        pub slots: usize,
        /// Times a writer killed mid-write was repaired.
        pub recoveries: u64,
    }

    /// A typed hash map in shared memory; see the [module docs](crate::dict).
    ///
    /// Cloning the handle shares the same dict. Keys compare by their bytes, so
    /// types with several representations of one value (floats with `-0.0`,
    /// `NaN`s) compare as their bytes do.
    pub struct SharedDict<K, V> {
        obj: Object<DictObject<K, V>>,
        geo: Geo,
        words: *const AtomicU64,
    }

    // SAFETY: `words` points into the mapping kept alive by `obj`; every access
    // through it is atomic.
    unsafe impl<K: SharedType, V: SharedType> Send for SharedDict<K, V> {}
    // SAFETY: as above.
    unsafe impl<K: SharedType, V: SharedType> Sync for SharedDict<K, V> {}

    impl<K: SharedType, V: SharedType> Clone for SharedDict<K, V> {
        fn clone(&self) -> Self {
            SharedDict {
                obj: self.obj.clone(),
                geo: self.geo,
                words: self.words,
            }
        }
    }

    impl<K: SharedType, V: SharedType> fmt::Debug for SharedDict<K, V> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SharedDict")
                .field("len", &self.len())
                .field("capacity", &self.geo.capacity)
                .field("region", self.obj.region())
                .finish()
        }
    }

    impl<K: SharedType, V: SharedType> SharedDict<K, V> {
        /// A dict for up to `capacity` entries in an anonymous shared mapping,
        /// inherited by forked children.
        pub fn anonymous(capacity: usize) -> Result<SharedDict<K, V>, Error> {
            SharedDict::anonymous_with(capacity, DictOptions::default())
        }

        /// [`SharedDict::anonymous`] with options.
        pub fn anonymous_with(
            capacity: usize,
            opts: DictOptions,
        ) -> Result<SharedDict<K, V>, Error> {
            SharedDict::from_object(Region::create_object(
                None,
                opts.region,
                &opts.params(capacity),
            )?)
        }

        /// Creates a dict under `name`; fails if the name exists.
        pub fn create(name: &str, capacity: usize) -> Result<SharedDict<K, V>, Error> {
            SharedDict::create_with(name, capacity, DictOptions::default())
        }

        /// [`SharedDict::create`] with options.
        pub fn create_with(
            name: &str,
            capacity: usize,
            opts: DictOptions,
        ) -> Result<SharedDict<K, V>, Error> {
            SharedDict::from_object(Region::create_object(
                Some(name),
                opts.region,
                &opts.params(capacity),
            )?)
        }

        /// Opens the dict `name`, checking that it holds `K -> V`.
        ///
        /// Refuses a region file owned by another user or writable by group
        /// or others ([`Error::ForeignOwner`], [`Error::InsecureMode`]); see
        /// [`SharedDict::open_with`].
        pub fn open(name: &str) -> Result<SharedDict<K, V>, Error> {
            SharedDict::open_with(name, RegionOptions::default())
        }

        /// [`SharedDict::open`] with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<SharedDict<K, V>, Error> {
            SharedDict::from_object(Region::open_object_with(name, opts)?)
        }

        /// Opens the dict `name`, creating it for `capacity` entries if the
        /// name does not exist; race-free between concurrent starters (see
        /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
        /// An existing dict must hold `K -> V` (as for [`SharedDict::open`])
        /// for the same `capacity` ([`Error::CapacityMismatch`] otherwise).
        pub fn open_or_create(name: &str, capacity: usize) -> Result<SharedDict<K, V>, Error> {
            SharedDict::open_or_create_with(name, capacity, DictOptions::default())
        }

        /// [`SharedDict::open_or_create`] with options: the hash seed is used
        /// only if this call creates the dict; the region options apply to
        /// both paths (mode and slots when creating, trust when opening).
        pub fn open_or_create_with(
            name: &str,
            capacity: usize,
            opts: DictOptions,
        ) -> Result<SharedDict<K, V>, Error> {
            SharedDict::from_object(Region::open_or_create_object(
                name,
                opts.region,
                &opts.params(capacity),
            )?)
        }

        pub(crate) fn from_object(
            obj: Object<DictObject<K, V>>,
        ) -> Result<SharedDict<K, V>, Error> {
            // Validated here, against the bytes the object owns, not taken from
            // an earlier `check`: a peer may have changed the header since.
            let geo = validate::<K, V>(&obj.get().raw, obj.size())?;
            // SAFETY: the object is followed by its `geo.words()` words at
            // WORDS_OFFSET, inside its bytes (just validated); 128 keeps them
            // 8-aligned.
            let words = unsafe {
                (obj.get() as *const DictObject<K, V>)
                    .cast::<u8>()
                    .add(WORDS_OFFSET)
                    .cast::<AtomicU64>()
            };
            Ok(SharedDict { obj, geo, words })
        }

        fn table(&self) -> Table<'_> {
            // SAFETY: `words` points at `geo.words()` initialized atomics inside
            // the mapping, which lives as long as `self.obj`; shared access only.
            let words = unsafe { std::slice::from_raw_parts(self.words, self.geo.words()) };
            Table::new(&self.obj.get().raw, words, self.geo, self.obj.region())
        }

        /// Inserts `value` for `key`, returning the old value. A new key in a
        /// full dict is refused with [`DictError::Full`] holding `(key, value)`.
        pub fn insert(&self, key: K, value: V) -> Result<Option<V>, DictError<(K, V)>> {
            self.table().insert(key, value)
        }

        /// The value for `key`. Lock-free.
        pub fn get(&self, key: &K) -> Result<Option<V>, DictError> {
            self.table().get(key)
        }

        /// Whether `key` is present. Lock-free.
        pub fn contains_key(&self, key: &K) -> Result<bool, DictError> {
            Ok(self.table().get::<K, V>(key)?.is_some())
        }

        /// Removes `key`, returning its value.
        pub fn remove(&self, key: &K) -> Result<Option<V>, DictError> {
            self.table().remove::<K, V>(key)
        }

        /// Applies `f` to the value of `key` as one atomic read-modify-write
        /// (other writers wait; readers see the old or the new value). Returns
        /// `f`'s result, or `None` if the key is absent. `f` runs under the
        /// dict's writer lock: keep it short; a writing call on the same dict
        /// from inside `f` returns [`DictError::WouldDeadlock`].
        pub fn update<R>(
            &self,
            key: &K,
            f: impl FnOnce(&mut V) -> R,
        ) -> Result<Option<R>, DictError> {
            self.table().update(key, f)
        }

        /// Like [`SharedDict::update`], inserting `default` first if the key is
        /// absent (a word count's `*counts.entry(k).or_insert(0) += 1`).
        pub fn update_or_insert<R>(
            &self,
            key: K,
            default: V,
            f: impl FnOnce(&mut V) -> R,
        ) -> Result<R, DictError<(K, V)>> {
            self.table().update_or_insert(key, default, f)
        }

        /// The value for `key`, inserting `value` first if it is absent.
        pub fn get_or_insert(&self, key: K, value: V) -> Result<V, DictError<(K, V)>> {
            self.table().get_or_insert(key, value)
        }

        /// Number of entries (exact when no write is in flight).
        pub fn len(&self) -> usize {
            self.table().len()
        }

        /// Whether the dict has no entries.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Maximum number of entries.
        pub fn capacity(&self) -> usize {
            self.geo.capacity
        }

        /// Removes every entry.
        pub fn clear(&self) -> Result<(), DictError> {
            self.table().clear()
        }

        /// A snapshot of the entries: each pair is consistent (never torn);
        /// writes that run during the walk may or may not be included.
        pub fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>, DictError> {
            Ok(self.table().entries::<K, V>()?.into_iter())
        }

        /// The keys of a snapshot (see [`SharedDict::iter`]).
        pub fn keys(&self) -> Result<Vec<K>, DictError> {
            Ok(self.iter()?.map(|(k, _)| k).collect())
        }

        /// The values of a snapshot (see [`SharedDict::iter`]).
        pub fn values(&self) -> Result<Vec<V>, DictError> {
            Ok(self.iter()?.map(|(_, v)| v).collect())
        }

        /// Counters: entries, capacity, slots, repairs after dead writers.
        pub fn stats(&self) -> DictStats {
            DictStats {
                len: self.len(),
                capacity: self.geo.capacity,
                slots: self.geo.slots,
                recoveries: self.obj.get().raw.recoveries(),
            }
        }

        /// The region holding the dict.
        pub fn region(&self) -> &Region {
            self.obj.region()
        }

        /// Fuzzing: scribbles `data` over the shared state, then repairs.
        pub(crate) fn fuzz_scribble(&self, data: &[u8]) -> Result<(), DictError> {
            self.table().fuzz_scribble(data)
        }
    }
}
