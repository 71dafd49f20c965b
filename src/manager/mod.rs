//! `Manager`: one region hosting many named, typed objects, the server-less
//! replacement for Python's `multiprocessing.Manager()`.
//!
//! A manager region holds a directory (a robust lock, a bump pointer and a
//! fixed table of 192-byte entries `{name, kind, fingerprint, offset, size,
//! identity block}`) followed by an arena. `m.dict::<K, V>("counts", 1000)`
//! looks the name up; if it exists, the entry's kind, element identities
//! (size, alignment and type id of each element, as in a region header: see
//! [`crate::identity`]), capacity and slot size must match, else a typed error
//! naming both sides ([`Error::TypeMismatch`], [`Error::ElementMismatch`],
//! [`Error::CapacityMismatch`], [`Error::SlotSizeMismatch`]); if it does not
//! exist, the object is built in the arena and published. A forked
//! child or an unrelated program that opens the manager by name finds the same
//! objects.
//!
//! # Concurrency and crashes
//!
//! Lookups take no lock: entries are written completely before the entry count
//! is published with Release, and never change afterwards. Creation takes the
//! directory's robust lock, looks again, initializes the object in fresh
//! (zeroed) arena space, writes the entry, then publishes it. A creator killed
//! halfway leaves nothing published; the next creator, getting the lock
//! owner-died, recomputes the bump pointer from the published entries and
//! overwrites the half-built space. Objects are never freed individually: the
//! arena is sized at creation and [`Error::OutOfSpace`] says when it is full.
//!
//! Parameters that do not change an object's layout (a semaphore's initial
//! value, a counter's start value) are used only by the call that creates it;
//! later calls get the existing object, as with Python's `get-or-create`.
//!
//! ```
//! use multiproc::{FixedStr, Manager};
//!
//! let m = Manager::anonymous(1 << 20)?;
//! let counts = m.dict::<FixedStr<16>, i64>("counts", 100)?;
//! let jobs = m.queue::<u64>("jobs", 64)?;
//! let done = m.counter("done", 0)?;
//! counts.insert(FixedStr::try_new("count")?, 10)?;
//! jobs.put(7)?;
//! done.fetch_add(1);
//! // Same name, same type: the same object.
//! assert_eq!(m.counter("done", 0)?.load(), 1);
//! // Same name, another type: a typed error, nothing changed.
//! assert!(m.queue::<u32>("jobs", 64).is_err());
//! assert_eq!(m.names(), ["counts", "jobs", "done"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use crate::Error;
use crate::dict::{DictObject, DictOptions, SharedDict};
use crate::identity::{self, Block, Geometry, SharedType, TypeIdentity};
use crate::loom::atomic::{AtomicU64, Ordering};
use crate::queue::{BytesQueue, JoinableQueue, Queue};
use crate::region::header::{self, Expect};
use crate::region::{Object, Region, RegionOptions, SharedObject, check_geometry};
use crate::sync::robust::MutexError;
use crate::sync::{
    Barrier, BoundedSemaphore, Condition, Event, Held, Lock, RLock, RawLock, Semaphore,
};
use crate::value::{Array, CellsObject, CellsParams, Counter, RawCounter, Value};

/// Longest object name in bytes.
pub const MAX_OBJECT_NAME: usize = 63;
/// Default number of directory entries.
pub const DEFAULT_ENTRIES: usize = 256;
/// Most directory entries a manager can have.
pub const MAX_ENTRIES: usize = 1 << 16;

/// Size of one directory entry.
const ENTRY_SIZE: usize = 192;
/// Offset of the entry table from the directory's start.
const ENTRIES_OFFSET: usize = size_of::<Directory>().next_multiple_of(128);
/// Alignment of every object in the arena.
const OBJECT_ALIGN: usize = 128;

/// One published object.
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    /// UTF-8 name, NUL-padded.
    name: [u8; 64],
    /// The object's `SharedObject::KIND`, NUL-padded.
    kind: [u8; 32],
    /// The identity fingerprint (spec in `crate::identity`).
    fingerprint: u64,
    /// From the directory's start.
    offset: u64,
    size: u64,
    /// The identity block (spec in `crate::identity`).
    ident: [u8; identity::BLOCK_SIZE],
}

const _: () = assert!(size_of::<Entry>() == ENTRY_SIZE);

fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

fn unpad(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The directory at the start of a manager's payload.
#[repr(C)]
pub(crate) struct Directory {
    /// Serializes creation; owner-died triggers `recover`.
    lock: RawLock,
    /// Published entries (Release after the entry is written).
    count: AtomicU64,
    /// End of the used arena, from the directory's start; lock holder only.
    next: AtomicU64,
    recoveries: AtomicU64,
    max_entries: u64,
    /// Bytes of the whole payload (directory, entries, arena).
    total: u64,
}

/// Offsets of the directory's words from the object's start, by name; the
/// entry table starts at `entries`.
pub(crate) fn field_offsets() -> Vec<(&'static str, usize)> {
    use std::mem::offset_of;
    vec![
        ("lock", offset_of!(Directory, lock)),
        ("count", offset_of!(Directory, count)),
        ("next", offset_of!(Directory, next)),
        ("max_entries", offset_of!(Directory, max_entries)),
        ("total", offset_of!(Directory, total)),
        ("entries", ENTRIES_OFFSET),
    ]
}

/// Entry `i` of a directory copied into `obj` (entries from offset `entries`),
/// as `name kind size` for `Region::inspect`; `None` past the copied bytes.
/// Untrusted text: lossy UTF-8, control characters escaped.
pub(crate) fn entry_view(
    obj: crate::region::inspect::Snapshot<'_>,
    entries: usize,
    i: usize,
) -> Option<String> {
    use std::mem::offset_of;
    let at = entries.checked_add(i.checked_mul(ENTRY_SIZE)?)?;
    let name = unpad(obj.bytes(at + offset_of!(Entry, name), 64)?);
    let kind = unpad(obj.bytes(at + offset_of!(Entry, kind), 32)?);
    let size = obj.u64(at + offset_of!(Entry, size))?;
    Some(format!(
        "{} {} {size}",
        name.escape_debug(),
        kind.escape_debug()
    ))
}

/// Creation parameters of a manager.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirParams {
    entries: usize,
    arena: usize,
}

impl DirParams {
    fn arena_start(entries: usize) -> Option<usize> {
        entries
            .checked_mul(ENTRY_SIZE)?
            .checked_add(ENTRIES_OFFSET)?
            .checked_next_multiple_of(OBJECT_ALIGN)
    }
}

// SAFETY: repr(C): a robust mutex, atomics and integers; entries are plain
// bytes. `check` bounds the entry table and the arena by the payload size, and
// every entry is validated again before use.
unsafe impl SharedObject for Directory {
    const KIND: &'static str = "Manager";
    type Params = DirParams;

    fn geometry(p: &DirParams) -> Geometry {
        Geometry::counted("arena size", p.arena as u64)
    }

    fn payload_size(p: &DirParams) -> Result<usize, Error> {
        if p.entries == 0 || p.entries > MAX_ENTRIES {
            return Err(Error::InvalidParameter(
                "manager entries must be 1 to 65536",
            ));
        }
        DirParams::arena_start(p.entries)
            .and_then(|s| s.checked_add(p.arena))
            .ok_or(Error::InvalidParameter("manager size overflows"))
    }

    unsafe fn init(this: *mut Self, p: &DirParams) -> Result<(), Error> {
        use std::ptr::addr_of_mut;
        let total = Self::payload_size(p)?;
        let start = DirParams::arena_start(p.entries)
            .ok_or(Error::InvalidParameter("manager size overflows"))?;
        // SAFETY: the caller guarantees `payload_size(p)` zeroed, writable,
        // aligned bytes; zero is a valid count and recovery counter.
        unsafe {
            addr_of_mut!((*this).next).write(AtomicU64::new(start as u64));
            addr_of_mut!((*this).max_entries).write(p.entries as u64);
            addr_of_mut!((*this).total).write(total as u64);
            RawLock::init(addr_of_mut!((*this).lock))?;
        }
        Ok(())
    }

    fn check(&self, payload_size: usize) -> Result<(), Error> {
        self.geometry(payload_size).map(|_| ())
    }
}

/// The directory's geometry, validated once against the bytes the manager owns
/// and kept in the handle: a peer that later raises `max_entries` or `total`
/// cannot make this process index past its mapping.
#[derive(Clone, Copy, Debug)]
struct DirGeo {
    /// Directory entries.
    entries: usize,
    /// Arena start, from the directory's start.
    start: usize,
    /// Bytes of the whole payload (directory, entries, arena).
    total: usize,
}

impl Directory {
    /// Reads `max_entries` and `total` once each and checks them against
    /// `payload_size`.
    fn geometry(&self, payload_size: usize) -> Result<DirGeo, Error> {
        // SAFETY: aligned `u64` fields of a live object; a peer may be writing
        // them, so each is read once and only the checked copy is used.
        let (max_entries, total) = unsafe {
            (
                std::ptr::read_volatile(&self.max_entries),
                std::ptr::read_volatile(&self.total),
            )
        };
        let entries = usize::try_from(max_entries)
            .ok()
            .filter(|&e| e > 0 && e <= MAX_ENTRIES)
            .ok_or(Error::Corrupted("manager entry count"))?;
        let start = DirParams::arena_start(entries).ok_or(Error::Corrupted("manager layout"))?;
        match usize::try_from(total) {
            Ok(total) if total >= start && total <= payload_size => Ok(DirGeo {
                entries,
                start,
                total,
            }),
            _ => Err(Error::Corrupted("manager larger than its region")),
        }
    }
}

/// Options for creating a [`Manager`].
#[derive(Clone, Copy, Debug)]
pub struct ManagerOptions {
    region: RegionOptions,
    entries: usize,
}

impl Default for ManagerOptions {
    fn default() -> ManagerOptions {
        ManagerOptions {
            region: RegionOptions::default(),
            entries: DEFAULT_ENTRIES,
        }
    }
}

impl ManagerOptions {
    /// Defaults: [`DEFAULT_ENTRIES`] directory entries, default region options.
    pub fn new() -> ManagerOptions {
        ManagerOptions::default()
    }

    /// Number of directory entries (1 to [`MAX_ENTRIES`]); 128 bytes each.
    pub fn entries(mut self, n: usize) -> ManagerOptions {
        self.entries = n;
        self
    }

    /// Region options (mode, participant slots).
    pub fn region(mut self, opts: RegionOptions) -> ManagerOptions {
        self.region = opts;
        self
    }
}

/// What the directory says about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's name in the manager.
    pub name: String,
    /// Its kind (`"SharedDict"`, `"Queue"`, `"Lock"`, ...).
    pub kind: String,
    /// Bytes of arena it occupies.
    pub size: usize,
    /// What its entry records: element identities, capacity, slot size
    /// (see [`crate::identity`]).
    pub identity: TypeIdentity,
}

/// A region hosting many named objects; see the [module docs](crate::manager).
///
/// Cloning the handle shares the same manager; objects it hands out keep the
/// region mapped after the manager handle is dropped.
#[derive(Clone)]
pub struct Manager {
    obj: Object<Directory>,
    geo: DirGeo,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("objects", &self.names())
            .field("region", self.obj.region())
            .finish()
    }
}

/// Which name rule `name` breaks, if any.
fn check_object_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_OBJECT_NAME {
        "longer than 63 bytes"
    } else if name.contains('\0') {
        "contains NUL"
    } else {
        return Ok(());
    };
    Err(Error::InvalidObjectName {
        name: name.to_owned(),
        reason,
    })
}

impl Manager {
    /// A manager with `arena` bytes for objects in an anonymous shared mapping,
    /// inherited by forked children.
    pub fn anonymous(arena: usize) -> Result<Manager, Error> {
        Manager::build(None, arena, ManagerOptions::default())
    }

    /// [`Manager::anonymous`] with options.
    pub fn anonymous_with(arena: usize, opts: ManagerOptions) -> Result<Manager, Error> {
        Manager::build(None, arena, opts)
    }

    /// Creates a manager under `name` with `arena` bytes for objects; fails if
    /// the name exists.
    pub fn create(name: &str, arena: usize) -> Result<Manager, Error> {
        Manager::build(Some(name), arena, ManagerOptions::default())
    }

    /// [`Manager::create`] with options.
    pub fn create_with(name: &str, arena: usize, opts: ManagerOptions) -> Result<Manager, Error> {
        Manager::build(Some(name), arena, opts)
    }

    /// Opens the manager `name` created by any process.
    ///
    /// Refuses a region file owned by another user or writable by group or
    /// others ([`Error::ForeignOwner`], [`Error::InsecureMode`]); see
    /// [`Manager::open_with`].
    pub fn open(name: &str) -> Result<Manager, Error> {
        Manager::open_with(name, RegionOptions::default())
    }

    /// [`Manager::open`] with the trust options of `opts`
    /// ([`RegionOptions::allow_foreign_owner`],
    /// [`RegionOptions::allow_shared_write`]).
    pub fn open_with(name: &str, opts: RegionOptions) -> Result<Manager, Error> {
        Manager::from_object(Region::open_object_with(name, opts)?)
    }

    /// Opens the manager `name`, or creates it with `arena` bytes for objects
    /// if the name does not exist; race-free between concurrent starters (see
    /// [`Queue::open_or_create`]). An existing manager with another arena
    /// size is [`Error::CapacityMismatch`].
    ///
    /// ```
    /// # let name = format!("/doc-mgr-ooc-{}", std::process::id());
    /// let m = multiproc::Manager::open_or_create(&name, 1 << 16)?;
    /// let d = m.dict::<u64, u64>("d", 8)?;
    /// // Get-or-create with another capacity says so.
    /// let e = m.dict::<u64, u64>("d", 16).unwrap_err();
    /// assert_eq!(e.to_string(), "capacity differs: asked for 16, the existing object has 8");
    /// # multiproc::Region::unlink(&name)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn open_or_create(name: &str, arena: usize) -> Result<Manager, Error> {
        Manager::open_or_create_with(name, arena, ManagerOptions::default())
    }

    /// [`Manager::open_or_create`] with options (entries and region options
    /// if it creates; the region's trust options if it opens).
    pub fn open_or_create_with(
        name: &str,
        arena: usize,
        opts: ManagerOptions,
    ) -> Result<Manager, Error> {
        let params = DirParams {
            entries: opts.entries,
            arena,
        };
        Manager::from_object(Region::open_or_create_object(name, opts.region, &params)?)
    }

    fn from_object(obj: Object<Directory>) -> Result<Manager, Error> {
        let geo = obj.get().geometry(obj.size())?;
        Ok(Manager { obj, geo })
    }

    fn build(name: Option<&str>, arena: usize, opts: ManagerOptions) -> Result<Manager, Error> {
        let params = DirParams {
            entries: opts.entries,
            arena,
        };
        Manager::from_object(Region::create_object(name, opts.region, &params)?)
    }

    fn dir(&self) -> &Directory {
        self.obj.get()
    }

    /// The validated, process-local directory geometry:
    /// `(entries, arena start, total)`.
    fn geometry(&self) -> (usize, usize, usize) {
        (self.geo.entries, self.geo.start, self.geo.total)
    }

    fn entry(&self, i: usize) -> Entry {
        let base = (self.dir() as *const Directory).cast::<u8>();
        let i = i.min(self.geo.entries - 1);
        // SAFETY: `i < entries` (clamped just above; `entries >= 1`), so the entry
        // lies inside the table that `geometry` bounded by the bytes the object
        // owns; `Entry` is plain bytes (any bit pattern is valid), read by copy.
        unsafe {
            base.add(ENTRIES_OFFSET + i * ENTRY_SIZE)
                .cast::<Entry>()
                .read_volatile()
        }
    }

    fn published(&self) -> usize {
        // SYNC(directory): Acquire pairs with the creator's Release of `count`,
        // so entries below it are completely written.
        (self.dir().count.load(Ordering::Acquire) as usize).min(self.geometry().0)
    }

    fn lookup(&self, name: &str) -> Option<Entry> {
        let key: [u8; 64] = padded(name);
        (0..self.published())
            .map(|i| self.entry(i))
            .find(|e| e.name == key)
    }

    /// Names of every object, in creation order.
    pub fn names(&self) -> Vec<String> {
        (0..self.published())
            .map(|i| unpad(&self.entry(i).name))
            .collect()
    }

    /// Name, kind and size of every object, in creation order.
    pub fn objects(&self) -> Vec<ObjectInfo> {
        (0..self.published())
            .map(|i| {
                let e = self.entry(i);
                let kind = unpad(&e.kind);
                let block = Block::decode(&e.ident).unwrap_or_default();
                ObjectInfo {
                    name: unpad(&e.name),
                    identity: TypeIdentity::from_block(kind.clone(), &block, e.fingerprint),
                    kind,
                    size: e.size as usize,
                }
            })
            .collect()
    }

    /// Arena bytes still free (fragmentation from alignment aside).
    pub fn available(&self) -> usize {
        let (_, _, total) = self.geometry();
        total.saturating_sub(self.dir().next.load(Ordering::Relaxed) as usize)
    }

    /// Times a creator killed mid-creation was cleaned up after.
    pub fn recoveries(&self) -> u64 {
        self.dir().recoveries.load(Ordering::Relaxed)
    }

    /// The region holding the manager and its objects.
    pub fn region(&self) -> &Region {
        self.obj.region()
    }

    fn lock_dir(&self) -> Result<Held<'_>, Error> {
        self.dir()
            .lock
            .lock_repairing(self.obj.region(), || self.recover())
            .map_err(|e| match e {
                MutexError::NotRecoverable => Error::NotRecoverable,
                MutexError::NoIdentity => Error::ParticipantsFull {
                    slots: self.obj.region().participant_slots(),
                },
                // Not returned by a blocking acquire.
                _ => Error::Corrupted("manager lock"),
            })
    }

    /// The end of the furthest published object that lies in the arena (the
    /// arena's start if none).
    fn published_end(&self) -> usize {
        let (_, start, total) = self.geometry();
        (0..self.published())
            .map(|i| self.entry(i))
            .filter_map(|e| e.offset.checked_add(e.size))
            .filter(|&e| e <= total as u64)
            .fold(start as u64, u64::max) as usize
    }

    /// A creator died holding the lock: only published entries count.
    fn recover(&self) {
        self.dir()
            .next
            .store(self.published_end() as u64, Ordering::Relaxed);
        self.dir().recoveries.fetch_add(1, Ordering::Relaxed);
    }

    /// Fuzzing: scribbles `data` over the entry count, the bump pointer and the
    /// entry table (as a peer could), then runs the repair a creator's death
    /// would trigger.
    pub(crate) fn fuzz_scribble(&self, data: &[u8]) -> Result<(), Error> {
        let word = |c: &[u8]| crate::words::word_of(c, 0);
        let mut chunks = data.chunks(8);
        if let Some(c) = chunks.next() {
            self.dir().count.store(word(c), Ordering::Relaxed);
        }
        if let Some(c) = chunks.next() {
            self.dir().next.store(word(c), Ordering::Relaxed);
        }
        let rest = data.get(16..).unwrap_or_default();
        let table = self.geometry().0 * ENTRY_SIZE;
        let n = rest.len().min(table);
        let base = (self.dir() as *const Directory).cast::<u8>().cast_mut();
        {
            let _g = self.lock_dir()?;
            // SAFETY: `n` bytes from the entry table's start stay inside the table
            // (`n <= max_entries * ENTRY_SIZE`), which lies in the payload; entries
            // are plain bytes, and this process is the only one using the region.
            unsafe {
                std::ptr::copy_nonoverlapping(rest.as_ptr(), base.add(ENTRIES_OFFSET), n);
            }
            self.recover();
        }
        Ok(())
    }

    /// The object for entry `e`, after checking it is a `T` with geometry
    /// `want`, of `size` bytes.
    fn open_entry<T: SharedObject>(
        &self,
        e: &Entry,
        want: Geometry,
        size: usize,
    ) -> Result<Object<T>, Error> {
        let block = Block::decode(&e.ident).ok_or(Error::Corrupted("manager entry identity"))?;
        let expect = Expect {
            kind: T::KIND,
            elements: T::elements(),
        };
        header::check_identity(expect, &unpad(&e.kind), &block, e.fingerprint)?;
        check_geometry(want, &block)?;
        let (_, start, total) = self.geometry();
        let offset = usize::try_from(e.offset).map_err(|_| Error::Corrupted("entry offset"))?;
        let in_bounds = offset >= start
            && offset % OBJECT_ALIGN == 0
            && offset % align_of::<T>() == 0
            && offset.checked_add(size).is_some_and(|end| end <= total)
            && e.size == size as u64;
        if !in_bounds {
            return Err(Error::Corrupted("manager entry out of bounds"));
        }
        // SAFETY: `offset..offset + size` lies in the payload (bounded by `total`,
        // which `check` bounded by the payload), is aligned for `T`, and holds a
        // `T` initialized before its entry was published; `check` runs next.
        let obj: Object<T> = unsafe { self.obj.sibling(self.obj.offset() + offset, size) };
        obj.get().check(size)?;
        Ok(obj)
    }

    /// Gets the object `name`, creating it with `params` if it does not exist.
    fn get_or_create<T: SharedObject>(
        &self,
        name: &str,
        params: &T::Params,
    ) -> Result<Object<T>, Error> {
        check_object_name(name)?;
        let size = T::payload_size(params)?;
        let want = T::geometry(params);
        if let Some(e) = self.lookup(name) {
            return self.open_entry(&e, want, size);
        }
        let _g = self.lock_dir()?;
        // Someone may have created it while we waited for the lock.
        if let Some(e) = self.lookup(name) {
            return self.open_entry(&e, want, size);
        }
        let (entries, _, total) = self.geometry();
        let count = self.published();
        if count >= entries {
            return Err(Error::DirectoryFull { entries });
        }
        // `next` is shared: never below the end of a published object (a peer
        // may have lowered it into the entry table or over live objects), and
        // an absurd value fails the bounds check below.
        let next = usize::try_from(self.dir().next.load(Ordering::Relaxed))
            .unwrap_or(usize::MAX)
            .max(self.published_end());
        let align = OBJECT_ALIGN.max(align_of::<T>());
        let offset = next.checked_next_multiple_of(align).unwrap_or(usize::MAX);
        let end = offset.checked_add(size).filter(|&e| e <= total);
        let Some(end) = end else {
            return Err(Error::OutOfSpace {
                needed: size,
                available: total.saturating_sub(next),
            });
        };
        let base = (self.dir() as *const Directory).cast::<u8>().cast_mut();
        // `offset..end` lies in the arena past every published object (`next`
        // covers them all, recomputed after a crash), inside the payload, and is
        // aligned for `T`. A dead creator may have left bytes: zero them, as
        // `init` expects.
        // SAFETY: in bounds and aligned as above; we hold the lock and the entry
        // is unpublished, so no other process reads or writes these bytes.
        unsafe {
            let p = base.add(offset);
            std::ptr::write_bytes(p, 0, size);
            T::init(p.cast::<T>(), params)?;
        }
        let entry = Entry {
            name: padded(name),
            kind: padded(T::KIND),
            fingerprint: T::fingerprint(),
            offset: offset as u64,
            size: size as u64,
            ident: Block::new(T::elements(), want).encode(),
        };
        // SAFETY: entry `count < max_entries` lies inside the table; it is not
        // published, so no reader looks at it, and we hold the lock.
        unsafe {
            base.add(ENTRIES_OFFSET + count * ENTRY_SIZE)
                .cast::<Entry>()
                .write_volatile(entry);
        }
        self.dir().next.store(end as u64, Ordering::Relaxed);
        // SYNC(directory): Release publishes the entry and the object's contents.
        self.dir().count.store(count as u64 + 1, Ordering::Release);
        // SAFETY: as in `open_entry`: in bounds, aligned, initialized.
        Ok(unsafe { self.obj.sibling(self.obj.offset() + offset, size) })
    }

    /// The dict `name` (created for `capacity` entries if absent).
    pub fn dict<K: SharedType, V: SharedType>(
        &self,
        name: &str,
        capacity: usize,
    ) -> Result<SharedDict<K, V>, Error> {
        self.dict_with(name, capacity, DictOptions::default())
    }

    /// [`Manager::dict`] with options (hash seed) used if it is created.
    pub fn dict_with<K: SharedType, V: SharedType>(
        &self,
        name: &str,
        capacity: usize,
        opts: DictOptions,
    ) -> Result<SharedDict<K, V>, Error> {
        let obj: Object<DictObject<K, V>> = self.get_or_create(name, &opts.params(capacity))?;
        SharedDict::from_object(obj)
    }

    fn queue_params(
        &self,
        capacity: usize,
        payload: usize,
        joinable: bool,
    ) -> crate::queue::QueueParams {
        crate::queue::QueueParams {
            capacity: capacity as u64,
            payload: payload as u64,
            participants: self.obj.region().participant_slots(),
            joinable,
        }
    }

    /// The queue `name` of `T`s (created with `capacity` slots if absent).
    pub fn queue<T: SharedType>(&self, name: &str, capacity: usize) -> Result<Queue<T>, Error> {
        let p = self.queue_params(capacity, size_of::<T>(), false);
        Queue::from_core(
            crate::queue::QueueCore::from_object(self.get_or_create(name, &p)?)?,
            false,
        )
    }

    /// The joinable queue `name` of `T`s.
    pub fn joinable_queue<T: SharedType>(
        &self,
        name: &str,
        capacity: usize,
    ) -> Result<JoinableQueue<T>, Error> {
        let p = self.queue_params(capacity, size_of::<T>(), true);
        let q = Queue::from_core(
            crate::queue::QueueCore::from_object(self.get_or_create(name, &p)?)?,
            true,
        )?;
        Ok(JoinableQueue::from_queue(q))
    }

    /// The byte queue `name` (created with `capacity` slots of `slot_size`
    /// bytes if absent).
    pub fn bytes_queue(
        &self,
        name: &str,
        capacity: usize,
        slot_size: usize,
    ) -> Result<BytesQueue, Error> {
        let payload = BytesQueue::payload_for(slot_size)?;
        let p = self.queue_params(capacity, payload, false);
        BytesQueue::from_core(crate::queue::QueueCore::from_object(
            self.get_or_create(name, &p)?,
        )?)
    }

    /// The lock `name`.
    pub fn lock(&self, name: &str) -> Result<Lock, Error> {
        Ok(Lock::from_object(self.get_or_create(name, &())?))
    }

    /// The re-entrant lock `name`.
    pub fn rlock(&self, name: &str) -> Result<RLock, Error> {
        Ok(RLock::from_object(self.get_or_create(name, &())?))
    }

    /// The event `name`.
    pub fn event(&self, name: &str) -> Result<Event, Error> {
        Ok(Event::from_object(self.get_or_create(name, &())?))
    }

    /// The condition `name`.
    pub fn condition(&self, name: &str) -> Result<Condition, Error> {
        Ok(Condition::from_object(self.get_or_create(name, &())?))
    }

    /// The semaphore `name` (created with `value` permits if absent).
    pub fn semaphore(&self, name: &str, value: u32) -> Result<Semaphore, Error> {
        Semaphore::from_obj(self.get_or_create(name, &Semaphore::params(value))?)
    }

    /// The bounded semaphore `name` (created with `value` permits if absent).
    pub fn bounded_semaphore(&self, name: &str, value: u32) -> Result<BoundedSemaphore, Error> {
        BoundedSemaphore::from_obj(self.get_or_create(name, &BoundedSemaphore::params(value))?)
    }

    /// The barrier `name` for `parties` processes.
    pub fn barrier(&self, name: &str, parties: u32) -> Result<Barrier, Error> {
        Ok(Barrier::from_object(self.get_or_create(name, &parties)?))
    }

    /// The counter `name` (starting at `initial` if created).
    pub fn counter(&self, name: &str, initial: i64) -> Result<Counter, Error> {
        let obj: Object<RawCounter> = self.get_or_create(name, &initial)?;
        Ok(Counter::from_object(obj))
    }

    /// The value `name` (holding `initial` if created).
    pub fn value<T: SharedType>(&self, name: &str, initial: T) -> Result<Value<T>, Error> {
        let obj: Result<Object<CellsObject<T>>, Error> =
            self.get_or_create(name, &CellsParams::new(1, &[initial])?);
        Value::opened(obj)
    }

    /// The array `name` of `len` elements (zero-filled if created).
    pub fn array<T: SharedType>(&self, name: &str, len: usize) -> Result<Array<T>, Error> {
        let obj: Object<CellsObject<T>> =
            self.get_or_create(name, &CellsParams::new::<T>(len, &[])?)?;
        Array::from_object(obj)
    }
}
