//! Regions: `MAP_SHARED` mappings with a validated header, a participant table and
//! a payload holding one shared object (or, through the manager, many).
//!
//! A region is created anonymous (a `memfd`, inherited by forked children), created
//! by name (`shm_open` with `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600 unless told
//! otherwise), or opened by name. Creation follows an explicit handshake: the
//! creator CASes the header's init word `UNINIT -> INITIALIZING`, writes the header,
//! participant table and object, then Release-stores `READY` and wakes openers;
//! openers wait (bounded) for `READY` with Acquire, copy the header and validate
//! every field (`header::parse`) before touching anything else. A process joins
//! the participant table when it creates or opens a region (a forked child joins
//! the first time it needs an identity) and leaves when its handle drops.
//!
//! Named regions outlive their programs in `/dev/shm`. [`Region::list`] finds
//! the names that carry the crate's magic and [`Region::inspect`] describes one
//! without knowing its type (both read only: see `inspect.rs`); the `multiproc`
//! command-line tool (feature `cli`) is built on them. A [`Cleanup`] policy
//! chosen at creation decides whether a name outlives its creator or its last
//! participant (see `lifecycle.rs`).

pub(crate) mod header;
pub(crate) mod inspect;
mod lifecycle;
mod name;
pub(crate) mod participants;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::identity::{self, Block, Elements, Geometry, TypeIdentity};
use crate::loom::atomic::{AtomicU64, Ordering};
use crate::sys::{self, shm, time::Deadline};
use header::{Expect, Header, Layout};
pub use inspect::{Detail, DetailValue, RegionInfo};
pub use name::MAX_NAME_LEN;
pub use participants::Participant;
use participants::{Liveness, Member, Slot, Table};

/// Default number of participant slots in a region.
pub const DEFAULT_PARTICIPANTS: u32 = 128;
/// How long `open` waits for a concurrent creator to finish initializing.
const OPEN_WAIT: Duration = Duration::from_secs(2);
/// How many times `open_or_create` goes round create-or-open when the name
/// keeps vanishing between its `O_EXCL` create and its open (a creator that
/// failed and removed it, or someone unlinking it): each round means another
/// process made progress, so a bound this size is never reached in practice.
const OPEN_OR_CREATE_ROUNDS: u32 = 64;

/// An object that can live in a region: a `#[repr(C)]` struct of atomics and
/// plain integers with no pointers.
///
/// # Safety
///
/// Implementors must be valid for shared access from many processes once `init`
/// returned `Ok`, contain no pointers or process-local state, and `check` must
/// reject every payload size or content that would make a method access memory
/// outside the `payload_size` bytes of the payload.
pub(crate) unsafe trait SharedObject: Sync + Sized {
    /// Type name stored in the header (at most 31 bytes are kept).
    const KIND: &'static str;
    /// Creation parameters.
    type Params;

    /// Identities of the element types the object holds (none by default):
    /// with `KIND`, what an opener must match. The object's own layout is
    /// fixed by `KIND` and the format version.
    fn elements() -> Elements {
        Elements::NONE
    }

    /// The fingerprint the [spec](crate::identity) defines for `KIND` and
    /// `elements()`: never a Rust type name.
    fn fingerprint() -> u64 {
        identity::fingerprint(Self::KIND, Self::elements().as_slice())
    }

    /// Capacity and slot size these parameters create, recorded in the
    /// identity block and compared by `open_or_create`.
    fn geometry(_params: &Self::Params) -> Geometry {
        Geometry::default()
    }

    /// Bytes the object needs for these parameters; rejects bad parameters.
    fn payload_size(_params: &Self::Params) -> Result<usize, Error> {
        Ok(size_of::<Self>())
    }

    /// Writes a fresh object.
    ///
    /// # Safety
    ///
    /// `this` points at `payload_size(params)` zeroed, writable bytes aligned for
    /// `Self`, which nobody else uses during the call.
    unsafe fn init(this: *mut Self, params: &Self::Params) -> Result<(), Error>;

    /// Validates an object found in a region opened by name, whose payload is
    /// `payload_size` bytes.
    fn check(&self, payload_size: usize) -> Result<(), Error> {
        if payload_size < size_of::<Self>() {
            return Err(Error::Corrupted("payload smaller than the object"));
        }
        Ok(())
    }
}

/// Options for creating and opening a region.
///
/// Creating uses `mode` and `participants`; opening by name uses the two
/// trust options. By default `open` accepts only a region file owned by this
/// process's effective uid and writable by nobody else (no group or other
/// write bit): whoever can write the file can scribble over every object in it
/// or shrink it under the mappings of its users (see the README's trust
/// boundary). A region created with a wider mode (`mode(0o660)`, to share it
/// with a group) must therefore be opened with
/// [`allow_shared_write(true)`](RegionOptions::allow_shared_write), even by
/// its creator's uid: the choice to trust the group is made explicitly on both
/// sides.
///
/// ```no_run
/// use multiproc::{Queue, RegionOptions};
///
/// // Shared with a group: the creator widens the mode...
/// let opts = RegionOptions::new().mode(0o660);
/// let q = Queue::<u64>::create_with("/team-jobs", 64, opts)?;
/// // ...and every opener says it trusts the group's writers.
/// let q2 = Queue::<u64>::open_with("/team-jobs", RegionOptions::new().allow_shared_write(true))?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RegionOptions {
    mode: u32,
    participants: u32,
    allow_foreign_owner: bool,
    allow_shared_write: bool,
    cleanup: Cleanup,
}

impl Default for RegionOptions {
    fn default() -> RegionOptions {
        RegionOptions {
            mode: 0o600,
            participants: DEFAULT_PARTICIPANTS,
            allow_foreign_owner: false,
            allow_shared_write: false,
            cleanup: Cleanup::Persistent,
        }
    }
}

/// What happens to a named region's name when the processes using it go away,
/// chosen at creation ([`RegionOptions::cleanup`]) and recorded in the header.
///
/// Removing the name never disturbs processes that have the region mapped: they
/// keep using it, and the memory is freed when the last mapping goes. A process
/// that opens the name afterwards gets [`Error::NotFound`] (so
/// `open`-else-`create` starts afresh).
///
/// Nobody runs code when a process is SIGKILLed, so the removal a death calls
/// for is made by whichever process notices first: an `open` of the name (which
/// then fails with [`Error::NotFound`]), a participant whose probe finds the
/// dead process (a lock or queue operation looking at a dead peer), or
/// `multiproc gc` ([`Region::inspect`] then [`Region::collect`]).
///
/// ```
/// use multiproc::{Cleanup, Counter, RegionOptions};
///
/// # let name = format!("/doc-cleanup-{}", std::process::id());
/// let opts = RegionOptions::new().cleanup(Cleanup::LastParticipant);
/// let c = Counter::create_with(&name, 0, opts)?;
/// assert_eq!(multiproc::Region::inspect(&name)?.cleanup, Cleanup::LastParticipant);
/// drop(c); // the last participant left: the name is gone
/// assert!(matches!(Counter::open(&name), Err(multiproc::Error::NotFound(_))));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cleanup {
    /// The name stays until someone unlinks it (the default): a program that
    /// restarts finds what others left in the region while it was away.
    #[default]
    Persistent,
    /// The name is removed once the creating process is dead (killed, or
    /// exited), like the objects Python's `resource_tracker` removes.
    CreatorDeath,
    /// The name is removed when the last participant leaves (drops its last
    /// handle, or exits from [`crate::process::fork`]), or once every
    /// participant is dead.
    LastParticipant,
}

impl Cleanup {
    fn to_raw(self) -> u32 {
        match self {
            Cleanup::Persistent => header::CLEANUP_PERSISTENT,
            Cleanup::CreatorDeath => header::CLEANUP_CREATOR,
            Cleanup::LastParticipant => header::CLEANUP_LAST,
        }
    }

    /// The policy a header stores (validated: unknown values never get here).
    fn from_raw(raw: u32) -> Cleanup {
        match raw {
            header::CLEANUP_CREATOR => Cleanup::CreatorDeath,
            header::CLEANUP_LAST => Cleanup::LastParticipant,
            _ => Cleanup::Persistent,
        }
    }

    /// The policy's name as the CLI prints it: `persistent`, `creator-death`,
    /// `last-participant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cleanup::Persistent => "persistent",
            Cleanup::CreatorDeath => "creator-death",
            Cleanup::LastParticipant => "last-participant",
        }
    }
}

impl fmt::Display for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RegionOptions {
    /// Default options: mode `0o600`, [`DEFAULT_PARTICIPANTS`] slots.
    pub fn new() -> RegionOptions {
        RegionOptions::default()
    }

    /// Permission bits for a named region (applied with `fchmod`, so the umask
    /// does not change them). Only the low nine bits are used.
    pub fn mode(mut self, mode: u32) -> RegionOptions {
        self.mode = mode & 0o777;
        self
    }

    /// Number of participant slots (1 to 4096; default [`DEFAULT_PARTICIPANTS`]).
    ///
    /// Every process that creates or opens the region, or uses an inherited
    /// handle in a forked child, holds one slot until its handle drops or it dies.
    /// Slots of dead processes (and of joiners killed halfway) are reclaimed when
    /// the table runs full; a table full of live processes makes `open` fail with
    /// [`Error::ParticipantsFull`], and a forked child's first locking operation
    /// fail with its operation's `NoParticipantSlot` error. Size it for the most
    /// processes that will use the region at once.
    ///
    /// ```
    /// use multiproc::{Lock, RegionOptions};
    ///
    /// # let name = format!("/doc-participants-{}", std::process::id());
    /// let lock = Lock::create_with(&name, RegionOptions::new().participants(512))?;
    /// assert_eq!(lock.region().participants().len(), 1); // this process
    /// # multiproc::Region::unlink(&name)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn participants(mut self, n: u32) -> RegionOptions {
        self.participants = n;
        self
    }

    /// `open`: accept a region file owned by another user (default `false`:
    /// [`Error::ForeignOwner`]). Only for a peer you trust as much as your own
    /// process: the owner can change the file's contents and size at will.
    pub fn allow_foreign_owner(mut self, yes: bool) -> RegionOptions {
        self.allow_foreign_owner = yes;
        self
    }

    /// `open`: accept a region file whose group or other users may write it
    /// (default `false`: [`Error::InsecureMode`]), such as one created with
    /// `mode(0o660)` to share it with a group.
    pub fn allow_shared_write(mut self, yes: bool) -> RegionOptions {
        self.allow_shared_write = yes;
        self
    }

    /// Cleanup policy of a named region (default [`Cleanup::Persistent`]);
    /// ignored for anonymous regions, which vanish with their last mapping.
    pub fn cleanup(mut self, policy: Cleanup) -> RegionOptions {
        self.cleanup = policy;
        self
    }

    /// The participant slot count these options ask for.
    pub(crate) fn participant_count(&self) -> u32 {
        self.participants
    }
}

/// A process-shared mapping with a validated header and a participant table.
///
/// Primitives create their own region; [`Region`] is public so that programs can
/// inspect it (name, size, participants) and remove names with
/// [`Region::unlink`].
///
/// ```
/// use multiproc::Lock;
/// let lock = Lock::anonymous()?;
/// let region = lock.region();
/// assert!(region.name().is_none());
/// // The creating process joined the participant table.
/// assert_eq!(region.participants().len(), 1);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Region {
    map: shm::Mapping,
    layout: Layout,
    name: Option<String>,
    /// An anonymous region's memfd (close-on-exec), kept so that the region
    /// can be handed to a spawned child ([`crate::process::Spawn::share`]);
    /// `None` for named regions (a child opens those by name).
    memfd: Option<std::fs::File>,
    /// The identity block as written (creator) or validated (opener):
    /// process-local, never re-read.
    ident: Block,
    /// Whether this handle's process created the region.
    created: bool,
    /// Cleanup policy, as planned or validated from the header (process-local).
    cleanup: Cleanup,
    /// `(device, inode)` of a named region's file, so that a policy removes the
    /// name only while it still names this region.
    file_id: Option<(u64, u64)>,
    /// This process's membership, cached: `fork_epoch << 32 | state` where state is
    /// the membership's owner token (`Member::token`, never 0), 0 (none) or
    /// `JOINING`. Process-local memory; a forked child sees an older epoch and
    /// joins anew.
    me: AtomicU64,
}

const JOINING: u64 = 0xffff_ffff;

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name)
            .field("len", &self.layout.total_size)
            .finish()
    }
}

fn os_error(e: std::io::Error, name: &str) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(name.to_owned()),
        std::io::ErrorKind::AlreadyExists => Error::AlreadyExists(name.to_owned()),
        std::io::ErrorKind::PermissionDenied => Error::PermissionDenied(name.to_owned()),
        _ => Error::Io(e),
    }
}

impl Region {
    fn base(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked on create and
        // open), page aligned, and Header is repr(C) with alignment <= 8.
        unsafe { &*self.base().cast::<Header>() }
    }

    fn table(&self) -> Table<'_> {
        // SAFETY: the layout was planned or validated: `participants_len` slots of
        // SLOT_SIZE bytes start at `participants_offset` (128-aligned) inside the
        // mapping, and were initialized before READY.
        let slots = unsafe {
            std::slice::from_raw_parts(
                self.base()
                    .add(self.layout.participants_offset)
                    .cast::<Slot>(),
                self.layout.participants_len as usize,
            )
        };
        Table { slots }
    }

    /// Base address and length of this process's mapping (tests that play a
    /// hostile peer write through it from a forked child).
    pub(crate) fn span(&self) -> (*mut u8, usize) {
        (self.base(), self.layout.total_size)
    }

    /// The name this region was created or opened with; `None` if anonymous.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.layout.total_size
    }

    /// Always `false`: a region holds at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The kind of object this region holds (`"Lock"`, `"Semaphore"`, ...).
    pub fn kind(&self) -> String {
        header::kind_name(&self.header().kind)
    }

    /// What the region says it holds: kind, element identities, capacity and
    /// slot size, fingerprint (see [`crate::identity`]). Read when the region
    /// was created or opened.
    ///
    /// ```
    /// use multiproc::Queue;
    /// let q = Queue::<[u32; 3]>::anonymous(16)?;
    /// let id = q.region().identity();
    /// assert_eq!((id.kind.as_str(), id.capacity, id.slot_size), ("Queue", 16, 12));
    /// assert_eq!((id.elements[0].size, id.elements[0].align), (12, 4));
    /// assert_eq!(id.to_string(), "Queue; element size 12, align 4, no type id; capacity 16; slot size 12");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn identity(&self) -> TypeIdentity {
        TypeIdentity::from_block(self.kind(), &self.ident, self.header().fingerprint)
    }

    /// Whether this process created the region (with `create`, `anonymous`,
    /// or as the winner of an `open_or_create`), rather than opened it.
    ///
    /// ```
    /// # let name = format!("/doc-created-{}", std::process::id());
    /// let a = multiproc::Event::open_or_create(&name)?;
    /// let b = multiproc::Event::open_or_create(&name)?;
    /// assert!(a.region().created_here());
    /// assert!(!b.region().created_here());
    /// # multiproc::Region::unlink(&name)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn created_here(&self) -> bool {
        self.created
    }

    /// The processes that joined this region and have not left, each probed for
    /// liveness now.
    pub fn participants(&self) -> Vec<Participant> {
        self.table().list()
    }

    /// Removes the name `name`; processes that have it mapped keep using it, and
    /// the memory is freed when the last one unmaps it.
    pub fn unlink(name: &str) -> Result<(), Error> {
        let c = name::check(name)?;
        shm::unlink_named(&c).map_err(|e| os_error(e, name))
    }

    /// This process's membership, joining on first use in a (forked) process.
    /// `None` if the table is full.
    pub(crate) fn member(&self) -> Option<Member> {
        self.token().and_then(Member::from_token)
    }

    /// This process's owner token, joining on first use in a (forked) process.
    #[inline]
    pub(crate) fn token(&self) -> Option<u32> {
        // A cached token was stored after `fork_epoch()` registered the fork hook,
        // so the cheap read is enough to tell whether it is this process's.
        let epoch = u64::from(sys::process::fork_epoch_cached());
        // Acquire: pairs with the Release store after joining in `join_slow`.
        let cur = self.me.load(Ordering::Acquire);
        let st = cur & 0xffff_ffff;
        if cur >> 32 == epoch && st != 0 && st != JOINING {
            return Some(st as u32);
        }
        self.join_slow(epoch)
    }

    #[cold]
    fn join_slow(&self, _cached: u64) -> Option<u32> {
        let epoch = u64::from(sys::process::fork_epoch());
        loop {
            let cur = self.me.load(Ordering::Acquire);
            let (e, st) = (cur >> 32, cur & 0xffff_ffff);
            if e == epoch && st != 0 && st != JOINING {
                return Some(st as u32);
            }
            if e == epoch && st == JOINING {
                crate::loom::hint::spin_loop();
                std::thread::yield_now();
                continue;
            }
            if e == epoch && st == 0 {
                return None;
            }
            // Stale (no membership yet, or an ancestor's): claim the join.
            let joining = (epoch << 32) | JOINING;
            if self
                .me
                .compare_exchange(cur, joining, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let joined = self.table().join().map(Member::token);
            self.me.store(
                (epoch << 32) | u64::from(joined.unwrap_or(0)),
                Ordering::Release,
            );
            if joined.is_some() {
                track(self);
            }
            return joined;
        }
    }

    /// Probes member `m`.
    /// Number of participant slots in the table.
    pub(crate) fn participant_slots(&self) -> u32 {
        self.layout.participants_len
    }

    pub(crate) fn probe(&self, m: Member) -> Liveness {
        let l = self.table().probe(m);
        if l == Liveness::Dead {
            self.noticed_death(m.token());
        }
        l
    }

    /// An anonymous region's memfd (`None` for a named region).
    pub(crate) fn memfd(&self) -> Option<&std::fs::File> {
        self.memfd.as_ref()
    }

    /// Joins the participant table now (creators and openers do), so that a full
    /// table is an error at attach rather than at the first lock.
    fn attach(&self) -> Result<(), Error> {
        match self.token() {
            Some(_) => Ok(()),
            None => Err(Error::ParticipantsFull {
                slots: self.layout.participants_len,
            }),
        }
    }

    /// Creates a region holding a fresh `T`: anonymous when `name` is `None`.
    pub(crate) fn create_object<T: SharedObject>(
        name: Option<&str>,
        opts: RegionOptions,
        params: &T::Params,
    ) -> Result<Object<T>, Error> {
        let cname = name.map(name::check).transpose()?;
        let layout = Layout::plan(T::payload_size(params)?, align_of::<T>(), opts.participants)?;
        // A sparse region can be created at any size, but initializing it (a
        // queue writes every slot word) or using it would take the machine's
        // memory down with it: refuse what could never fit.
        if sys::physical_memory().is_some_and(|m| layout.total_size as u64 > m) {
            return Err(Error::InvalidParameter(
                "the region would be larger than this machine's physical memory",
            ));
        }
        let file = match (&cname, name) {
            (Some(c), Some(n)) => {
                shm::create_named(c, opts.mode, layout.total_size).map_err(|e| os_error(e, n))?
            }
            _ => shm::memfd(layout.total_size)?,
        };
        // A second descriptor of the same open file keeps a named object's
        // creation lock (see `shm::create_named`) until the region is READY
        // or its creation failed: `build` closes the first one early.
        let creation_lock = match cname {
            Some(_) => Some(file.try_clone()?),
            None => None,
        };
        let built = Self::build::<T>(file, layout, name, opts, params);
        if built.is_err() {
            if let (Some(c), Some(f)) = (&cname, &creation_lock) {
                if let Ok((id, _)) = shm::file_id(f) {
                    let _ = shm::unlink_if_same(c, id);
                }
            }
        }
        drop(creation_lock);
        built
    }

    fn build<T: SharedObject>(
        file: std::fs::File,
        layout: Layout,
        name: Option<&str>,
        opts: RegionOptions,
        params: &T::Params,
    ) -> Result<Object<T>, Error> {
        let map = shm::Mapping::new(&file, layout.total_size)?;
        let ident = Block::new(T::elements(), T::geometry(params));
        let file_id = match name {
            Some(_) => Some(shm::file_id(&file)?.0),
            None => None,
        };
        let region = Region {
            map,
            layout,
            name: name.map(str::to_owned),
            memfd: name.is_none().then_some(file),
            ident,
            created: true,
            cleanup: if name.is_some() {
                opts.cleanup
            } else {
                Cleanup::Persistent
            },
            file_id,
            me: AtomicU64::new(0),
        };
        let base = region.base();
        let hdr = region.header();
        // The file is new and zero-filled; the CAS makes double initialization
        // impossible even if a name were somehow shared.
        if hdr
            .init
            .compare_exchange(
                header::UNINIT,
                header::INITIALIZING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(Error::Corrupted("region was already initialized"));
        }
        let h = base.cast::<Header>();
        // SAFETY: we own the INITIALIZING state, so no other process reads these
        // fields until READY; `h` is the page-aligned start of the mapping, and
        // the identity block lies inside the header (HEADER_SIZE bytes).
        unsafe {
            (*h).magic = header::MAGIC;
            (*h).version = header::VERSION;
            (*h).libc_family = sys::LIBC_FAMILY;
            (*h).total_size = layout.total_size as u64;
            (*h).fingerprint = T::fingerprint();
            (*h).participants_offset = layout.participants_offset as u64;
            (*h).participants_len = layout.participants_len;
            (*h).payload_offset = layout.payload_offset as u64;
            (*h).payload_size = layout.payload_size as u64;
            (*h).kind = header::kind_field(T::KIND);
            (*h).creator_pid = sys::process::pid();
            let block = ident.encode();
            std::ptr::copy_nonoverlapping(
                block.as_ptr(),
                base.add(header::IDENTITY_OFFSET),
                block.len(),
            );
            let lc = base
                .add(header::LIFECYCLE_OFFSET)
                .cast::<header::Lifecycle>();
            (*lc).created_at = sys::time::unix_seconds();
            (*lc).creator_start_time = sys::process::start_time();
            (*lc).creator_pidns = sys::process::pid_namespace();
            (*lc).cleanup = region.cleanup.to_raw();
        }
        for i in 0..layout.participants_len as usize {
            // SAFETY: slot `i` lies inside the planned table, which is inside the
            // mapping and 128-aligned; nobody else uses it before READY.
            unsafe {
                Slot::init(
                    base.add(layout.participants_offset + i * header::SLOT_SIZE)
                        .cast(),
                )?
            };
        }
        // SAFETY: the payload is `payload_size(params)` zeroed bytes at an offset
        // aligned to max(128, align_of::<T>()), unused by anyone before READY.
        unsafe { T::init(base.add(layout.payload_offset).cast(), params)? };
        let region = Arc::new(region);
        // Join once the region has its final address (the exit registry keeps
        // it), and before READY: no opener can see a table without its creator
        // (a last-participant region would look abandoned to it).
        region.attach()?;
        if let Some(token) = region.token() {
            // SYNC(creator): published by the READY store below (openers) and
            // paired with the Acquire load in `creator_dead`.
            region
                .lifecycle()
                .creator_token
                .store(token, Ordering::Release);
        }
        // SYNC(init): Release publishes the header, table and object to openers.
        region.header().init.store(header::READY, Ordering::Release);
        crate::loom::futex::wake(&region.header().init, u32::MAX);
        Ok(Object {
            region,
            offset: layout.payload_offset,
            size: layout.payload_size,
            _t: PhantomData,
        })
    }

    /// Opens the region `name` holding a `T`, checking everything first, with
    /// the default trust options.
    pub(crate) fn open_object<T: SharedObject>(name: &str) -> Result<Object<T>, Error> {
        Self::open_object_with(name, RegionOptions::default())
    }

    /// Opens the region `name` holding a `T`: checks the file's owner and mode
    /// against `opts`, maps the header page alone, waits for `READY` and
    /// validates the header, and only then maps the size it states (which must
    /// equal the file's size), so a huge or garbage file at the name is refused
    /// without being mapped whole.
    pub(crate) fn open_object_with<T: SharedObject>(
        name: &str,
        opts: RegionOptions,
    ) -> Result<Object<T>, Error> {
        Self::open_named_object::<T>(name, opts, false)
    }

    /// [`Region::open_object_with`]; with `reclaim`, a file at the name that a
    /// creator left unfinished (it never became ready and no creator holds its
    /// creation lock: the creator died) is removed and the open reports
    /// `NotFound`, so `open_or_create` creates afresh instead of failing with
    /// `NotReady` for ever.
    fn open_named_object<T: SharedObject>(
        name: &str,
        opts: RegionOptions,
        reclaim: bool,
    ) -> Result<Object<T>, Error> {
        let cname = name::check(name)?;
        let file = shm::open_named(&cname).map_err(|e| os_error(e, name))?;
        let (owner, mode) = shm::owner_and_mode(&file)?;
        let euid = shm::effective_uid();
        if owner != euid && !opts.allow_foreign_owner {
            return Err(Error::ForeignOwner {
                name: name.to_owned(),
                owner,
                euid,
            });
        }
        if mode & 0o022 != 0 && !opts.allow_shared_write {
            return Err(Error::InsecureMode {
                name: name.to_owned(),
                mode,
            });
        }
        let unfinished = reclaim.then_some(cname.as_c_str());
        Self::open_file_as::<T>(file, Some(name), unfinished, |_| {
            Ok((T::KIND.to_owned(), T::elements()))
        })
    }

    /// Opens a region handed to this spawned process by its parent (see
    /// [`crate::process::Spawn::share`]): `index` counts the parent's `share`
    /// calls. Checked as [`Region::open_object`] checks a named file (the
    /// owner and mode checks aside: the parent made it).
    pub(crate) fn inherit_object<T: SharedObject>(index: usize) -> Result<Object<T>, Error> {
        let fd = crate::process::take_inherited(index).ok_or(Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no region was shared with this spawned process at that index",
        )))?;
        Self::open_fd(fd)
    }

    /// Maps the anonymous region behind `fd` (a memfd a parent passed),
    /// checked as [`Region::inherit_object`] checks.
    pub(crate) fn open_fd<T: SharedObject>(fd: std::os::fd::OwnedFd) -> Result<Object<T>, Error> {
        Self::open_file(std::fs::File::from(fd), None)
    }

    /// [`Region::inherit_object`] for an object of any of `kinds`, whatever
    /// element identities its header records (the header is validated with
    /// them, as an open of that exact type would): how a spawned process
    /// maps the queues it was handed before it knows their types. Returns
    /// the object and the kind it holds; the caller checks the type when it
    /// learns it (see `Region::check_kind`). The descriptor at `index` stays
    /// in place (a duplicate is mapped), whatever the outcome.
    pub(crate) fn open_inherited_any<T: SharedObject>(
        fd: std::os::fd::BorrowedFd<'_>,
        kinds: &[&str],
    ) -> Result<(Object<T>, String), Error> {
        let file = std::fs::File::from(shm::dup_cloexec(fd)?);
        let mut found = String::new();
        let object = Self::open_file_as::<T>(file, None, None, |snapshot| {
            let (kind, elements) = header::stored_kind(snapshot)?;
            if !kinds.contains(&kind.as_str()) {
                return Err(Error::TypeMismatch {
                    expected: kinds.join(" or "),
                    found: kind,
                });
            }
            found.clone_from(&kind);
            Ok((kind, elements))
        })?;
        Ok((object, found))
    }

    /// Whether this region, opened by [`Region::open_inherited_any`] and
    /// found holding `found_kind`, holds exactly a `T`: the same comparison
    /// an open of `T` makes, against the identity recorded when it was mapped.
    pub(crate) fn check_kind<T: SharedObject>(&self, found_kind: &str) -> Result<(), Error> {
        let fingerprint = identity::fingerprint(found_kind, self.ident.elements.as_slice());
        let expect = Expect {
            kind: T::KIND,
            elements: T::elements(),
        };
        header::check_identity(expect, found_kind, &self.ident, fingerprint)
    }

    /// The open path after the trust checks: waits for the size and `READY`,
    /// validates the header, maps. `name`: `None` for an inherited memfd.
    fn open_file<T: SharedObject>(
        file: std::fs::File,
        name: Option<&str>,
    ) -> Result<Object<T>, Error> {
        Self::open_file_as::<T>(file, name, None, |_| {
            Ok((T::KIND.to_owned(), T::elements()))
        })
    }

    /// [`Region::open_file`], the header checked against the kind and
    /// elements `expect` gives for its snapshot (those of `T`, unless the
    /// caller takes them from the header itself). With `unfinished` (the
    /// name's C form), a creation its creator abandoned is removed
    /// ([`Region::open_named_object`]).
    fn open_file_as<T: SharedObject>(
        file: std::fs::File,
        name: Option<&str>,
        unfinished: Option<&std::ffi::CStr>,
        expect: impl FnOnce(&[u8]) -> Result<(String, Elements), Error>,
    ) -> Result<Object<T>, Error> {
        // Removes the name if its creator is gone and the file is still not
        // ready (checked by `still`, with the creation lock held, so no creator
        // can be at work meanwhile); `true` if it did.
        let abandoned = |still: &dyn Fn() -> bool| -> Result<bool, Error> {
            let Some(cname) = unfinished else {
                return Ok(false);
            };
            let Some(_lock) = shm::take_over_creation(&file) else {
                return Ok(false);
            };
            if !still() {
                return Ok(false);
            }
            let _ = shm::unlink_if_same(cname, shm::file_id(&file)?.0);
            Ok(true)
        };
        let gone = || Error::NotFound(name.unwrap_or("(inherited region)").to_owned());
        // A name may be mid-creation: wait for its creator. An inherited
        // memfd was finished before its parent handed it on, so anything else
        // (a raw file a spawned child was also given, say) is refused at once.
        let wait = if name.is_some() {
            OPEN_WAIT
        } else {
            Duration::ZERO
        };
        let deadline = Deadline::after(wait);
        // The creator sizes the object right after creating it: wait for that
        // (touching a mapped page past the end of the file would be SIGBUS).
        loop {
            let len = shm::file_len(&file)?;
            if len >= header::HEADER_SIZE as u64 {
                break;
            }
            let short = || shm::file_len(&file).is_ok_and(|l| l < header::HEADER_SIZE as u64);
            if abandoned(&short)? {
                return Err(gone());
            }
            if deadline.passed() {
                return Err(Error::Truncated {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    needed: header::HEADER_SIZE,
                });
            }
            std::thread::yield_now();
        }
        let snapshot = match Self::read_header(&file, deadline, &abandoned) {
            Err(Error::NotFound(_)) => return Err(gone()),
            other => other?,
        };
        // The creator sized the file before it stored READY: this is its size.
        let len = usize::try_from(shm::file_len(&file)?)
            .map_err(|_| Error::Corrupted("size does not fit in memory"))?;
        let (kind, elements) = expect(&snapshot)?;
        let expect = Expect {
            kind: &kind,
            elements,
        };
        let (layout, ident) = header::parse(&snapshot, len, expect)?;
        if layout.payload_offset % align_of::<T>() != 0 {
            return Err(Error::Corrupted("payload misaligned for the object"));
        }
        // An inherited memfd is anonymous: no name to clean up or identify.
        let (cleanup, file_id) = match name {
            Some(_) => (
                Cleanup::from_raw(header::cleanup_of(&snapshot)),
                Some(shm::file_id(&file)?.0),
            ),
            None => (Cleanup::Persistent, None),
        };
        let map = shm::Mapping::new(&file, layout.total_size)?;
        let region = Region {
            map,
            layout,
            name: name.map(str::to_owned),
            memfd: name.is_none().then_some(file),
            ident,
            created: false,
            cleanup,
            file_id,
            me: AtomicU64::new(0),
        };
        let offset = region.layout.payload_offset;
        let size = region.layout.payload_size;
        let object: Object<T> = Object {
            region: Arc::new(region),
            offset,
            size,
            _t: PhantomData,
        };
        object.get().check(object.region.layout.payload_size)?;
        // A region its policy says should be gone is removed by whoever notices
        // first: here, before joining it.
        let gone = || Error::NotFound(name.unwrap_or("(inherited region)").to_owned());
        if name.is_some() && object.region.expire_if_due() {
            return Err(gone());
        }
        object.region.attach()?;
        if object.region.cleanup == Cleanup::LastParticipant && object.region.closing_seen() {
            // The last participant is removing the name right now (see
            // `try_close`): do not join a region that is going away.
            object.region.leave();
            return Err(gone());
        }
        Ok(object)
    }

    /// Opens the region `name` holding a `T`, or creates it with `params` if
    /// the name does not exist: race-free between any number of concurrent
    /// starters. Creation is `O_EXCL`, so exactly one of them creates; the
    /// others get `EEXIST` and open, which waits (at most 2 s) for the
    /// creator's `READY` exactly as `open` does, runs every check `open` runs,
    /// and then compares the capacity and slot size these `params` would
    /// create. A name that vanishes between the two steps (a creator that
    /// failed and removed it) sends the caller round again.
    pub(crate) fn open_or_create_object<T: SharedObject>(
        name: &str,
        opts: RegionOptions,
        params: &T::Params,
    ) -> Result<Object<T>, Error> {
        name::check(name)?;
        // Bad parameters fail the same way whoever wins the race.
        T::payload_size(params)?;
        let want = T::geometry(params);
        for _ in 0..OPEN_OR_CREATE_ROUNDS {
            match Self::create_object::<T>(Some(name), opts, params) {
                Err(Error::AlreadyExists(_)) => {}
                other => return other,
            }
            match Self::open_named_object::<T>(name, opts, true) {
                Ok(obj) => {
                    check_geometry(want, &obj.region.ident)?;
                    return Ok(obj);
                }
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotFound(name.to_owned()))
    }

    /// Maps the header alone, waits (until `deadline`) for the creator's
    /// `READY`, and returns a copy of the header bytes.
    fn read_header(
        file: &std::fs::File,
        deadline: Deadline,
        abandoned: &Abandoned<'_>,
    ) -> Result<[u8; header::HEADER_SIZE], Error> {
        let head = shm::Mapping::new(file, header::HEADER_SIZE)?;
        // SAFETY: the mapping holds HEADER_SIZE bytes of a file at least that
        // long (checked by the caller), page aligned; `Header` is repr(C) with
        // alignment <= 8 and only its atomic `init` is read before the copy.
        let hdr = unsafe { &*head.as_ptr().cast::<Header>() };
        loop {
            // SYNC(init): Acquire pairs with the creator's Release store of READY.
            let state = hdr.init.load(Ordering::Acquire);
            // Anything but the two in-progress values is final: READY, or garbage
            // that `parse` turns into a typed error.
            if state != header::UNINIT && state != header::INITIALIZING {
                break;
            }
            let unready = || {
                let now = hdr.init.load(Ordering::Acquire);
                now == header::UNINIT || now == header::INITIALIZING
            };
            if abandoned(&unready)? {
                return Err(Error::NotFound(String::new()));
            }
            if deadline.passed() {
                return Err(Error::NotReady);
            }
            crate::loom::futex::wait(
                &hdr.init,
                state,
                Some(deadline.min_after(Duration::from_millis(10))),
            );
        }
        let mut snapshot = [0u8; header::HEADER_SIZE];
        // SAFETY: the mapping has HEADER_SIZE bytes; the header is immutable after
        // READY, which we observed with Acquire (a peer writing it anyway only
        // makes `parse` fail: the copy is of plain bytes).
        unsafe {
            std::ptr::copy_nonoverlapping(head.as_ptr(), snapshot.as_mut_ptr(), header::HEADER_SIZE)
        };
        Ok(snapshot)
    }
}

/// How an opener removes an unfinished creation whose creator is gone: given
/// a check that the file is still unfinished (run with the creation lock
/// held), `Ok(true)` if it removed the name (see `Region::open_file_as`).
type Abandoned<'a> = dyn Fn(&dyn Fn() -> bool) -> Result<bool, Error> + 'a;

/// Compares the geometry a caller would create with what an existing object
/// recorded.
pub(crate) fn check_geometry(want: Geometry, found: &Block) -> Result<(), Error> {
    if want.capacity != found.capacity {
        return Err(Error::CapacityMismatch {
            what: want.what,
            expected: want.capacity,
            found: found.capacity,
        });
    }
    if want.slot_size != found.slot_size {
        return Err(Error::SlotSizeMismatch {
            expected: want.slot_size,
            found: found.slot_size,
        });
    }
    Ok(())
}

impl Region {
    /// Gives this process's slot back, if it holds one in this region.
    fn leave(&self) {
        let epoch = u64::from(sys::process::fork_epoch());
        let cur = self.me.load(Ordering::Acquire);
        let (e, st) = (cur >> 32, cur & 0xffff_ffff);
        if e == epoch && st != 0 && st != JOINING {
            if let Some(m) = Member::from_token(st as u32) {
                self.table().leave(m);
                self.table().forget_dead_if_deserted();
            }
            self.me.store(epoch << 32, Ordering::Release);
            if self.cleanup == Cleanup::LastParticipant {
                self.try_close();
            }
        }
    }
}

impl crate::sync::robust::Owners for Region {
    #[inline]
    fn me(&self) -> Option<u32> {
        self.token()
    }

    fn probe(&self, owner: u32) -> crate::sync::robust::Probe<'_> {
        let p = self.table().probe_owner(owner);
        if matches!(p, crate::sync::robust::Probe::Dead) {
            self.noticed_death(owner);
        }
        p
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        untrack(self);
        self.leave();
    }
}

/// Addresses of the live `Region`s this process joined (0 = free entry), so a
/// forked child that returns normally can leave them before `_exit`, and a
/// single-threaded process that ends with `exit` (`std::process::exit`, or
/// returning from `main` with handles still alive) leaves them too
/// ([`leave_at_exit`]): otherwise a process that simply finished would look
/// exactly like one that was killed (a barrier would break for its team).
/// Beyond 256 joined regions, extra ones are not tracked (they then look dead
/// after a normal `_exit`, which costs a false "party died" at worst).
static JOINED: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

fn track(r: &Region) {
    // Not a `Once`: a child forked while another thread of its parent ran the
    // registration would find the `Once` running for ever and block here (a
    // flag set first only means such a child may lack the hook; it leaves
    // its regions on its own way out, `exit_child`, anyway).
    static AT_EXIT: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only which caller registers matters, not what it publishes.
    if AT_EXIT.swap(1, Ordering::Relaxed) == 0 {
        let _ = sys::process::at_exit(leave_at_exit);
    }
    let a = r as *const Region as u64;
    // Relaxed: process-local bookkeeping; the forked child reads it single-threaded.
    if JOINED.iter().any(|s| s.load(Ordering::Relaxed) == a) {
        return;
    }
    for s in &JOINED {
        if s.compare_exchange(0, a, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

fn untrack(r: &Region) {
    let a = r as *const Region as u64;
    for s in &JOINED {
        let _ = s.compare_exchange(a, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// At `exit`: leaves every joined region, as a forked child does before its
/// `_exit`, if the exiting thread is the process's only one (besides the
/// crate's parked beacon thread). Then no `Region` can be dropped meanwhile,
/// which [`leave_all`] relies on; with other threads still running, nothing
/// is done and the process looks dead to its peers, as before.
extern "C" fn leave_at_exit() {
    if sys::process::thread_count().is_ok_and(|n| n == 1) {
        leave_all();
    }
}

/// Leaves every region this process joined. Called by [`crate::process::fork`]
/// in the child, after its closure returned and right before `_exit`, and at
/// `exit` by a single-threaded process ([`leave_at_exit`]).
pub(crate) fn leave_all() {
    for s in &JOINED {
        let a = s.load(Ordering::Relaxed);
        if a == 0 {
            continue;
        }
        // Entries are added by `member()` on a `Region` inside an `Arc` and removed
        // first thing in its `Drop`; this runs in a single-threaded process (a
        // forked child about to `_exit`, or one whose only thread is exiting).
        // SAFETY: so a non-zero entry names a live `Region` no `Drop` can race.
        let region = unsafe { &*(a as *const Region) };
        region.leave();
    }
}

/// A handle to one `T` inside a region; clones share the mapping.
pub(crate) struct Object<T> {
    region: Arc<Region>,
    offset: usize,
    /// Bytes from `offset` that belong to the object (the region's payload, or
    /// the manager entry's size): validated, process-local, the bound every
    /// geometry read from the object is checked against.
    size: usize,
    _t: PhantomData<T>,
}

impl<T> Clone for Object<T> {
    fn clone(&self) -> Self {
        Object {
            region: Arc::clone(&self.region),
            offset: self.offset,
            size: self.size,
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Object<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("region", &self.region)
            .field("offset", &self.offset)
            .finish()
    }
}

impl<T> Object<T> {
    /// The same object seen as a `U`.
    ///
    /// # Safety
    ///
    /// `U` must have `T`'s layout and accept every value the bytes can hold
    /// (a kind marker changed, say, as in `QueueObject<K>`).
    pub(crate) unsafe fn retype<U>(self) -> Object<U> {
        Object {
            region: self.region,
            offset: self.offset,
            size: self.size,
            _t: PhantomData,
        }
    }
}

impl<T: SharedObject> Object<T> {
    /// The shared object.
    pub(crate) fn get(&self) -> &T {
        // SAFETY: `offset` is the payload offset of a region whose layout was
        // planned or validated for `T` (size checked by `T::check`, alignment
        // checked), initialized before READY, and mapped while `self.region` lives.
        unsafe { &*self.region.base().add(self.offset).cast::<T>() }
    }

    /// The region holding the object.
    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    /// Offset of the object from the start of the mapping.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes from the object's start that belong to it (validated when the
    /// handle was made; never re-read from shared memory).
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Another object in the same region, at `offset` from the mapping's start,
    /// owning `size` bytes.
    ///
    /// # Safety
    ///
    /// `offset..offset + size` must lie in this region's payload, `offset` be
    /// aligned for `U`, and hold an initialized `U` whose `check` passed for
    /// those `size` bytes.
    pub(crate) unsafe fn sibling<U>(&self, offset: usize, size: usize) -> Object<U> {
        Object {
            region: Arc::clone(&self.region),
            offset,
            size,
            _t: PhantomData,
        }
    }
}
