//! Errors from creating and opening shared objects.
//!
//! Operations on a live object have their own error enums next to the object
//! ([`crate::LockError`], [`crate::BarrierError`], ...), each handing back what the
//! caller needs (a guard, an item).

/// Why a shared object could not be created or opened.
///
/// Every variant leaves the system as it was: a failed `create` removes the name
/// it made, a failed `open` maps nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name breaks the rules (leading `/`, no other `/`, no `..`, at most
    /// [`crate::region::MAX_NAME_LEN`] bytes, no control characters).
    #[error("invalid shared memory name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `open` of a name that does not exist.
    #[error("no shared memory object named {0:?}")]
    NotFound(String),
    /// `create` of a name that exists already.
    #[error("a shared memory object named {0:?} already exists")]
    AlreadyExists(String),
    /// The object's permissions do not allow this process to open it.
    #[error("permission denied for shared memory object {0:?}")]
    PermissionDenied(String),
    /// The bytes do not start with the region magic: not made by this crate.
    #[error("not a multiproc region (bad magic)")]
    NotARegion,
    /// Made by a build with another shared-memory format.
    #[error("region format version {found}, this build reads version {expected}")]
    VersionMismatch {
        /// The version this build writes and reads.
        expected: u32,
        /// The version found in the header.
        found: u32,
    },
    /// Made by a process linked against another libc, whose `pthread_mutex_t`
    /// layout differs.
    #[error("region was created by a process using another libc")]
    LibcMismatch,
    /// The region (or manager entry) holds another kind of object: a `Queue`
    /// opened as a `SharedDict`, a `JoinableQueue` as a plain `Queue`, a longer
    /// `Array` as a `Value`.
    #[error("the object's kind is {found}, not {expected}")]
    TypeMismatch {
        /// The kind the caller asked for.
        expected: String,
        /// The kind recorded in the header.
        found: String,
    },
    /// Same kind, another element type: its size, alignment or type id differs
    /// (see [`crate::identity`] for what identifies a type). Both sides are
    /// named, for example `value type differs: this program's has size 24,
    /// align 8, no type id; the object's has size 16, align 8, no type id`.
    #[error("{role} type differs: this program's has {expected}; the object's has {found}")]
    ElementMismatch {
        /// Which element: `"element"` (queues, values, arrays), `"key"` or
        /// `"value"` (dicts).
        role: &'static str,
        /// The caller's type.
        expected: crate::identity::ElementId,
        /// The type recorded in the header or manager entry.
        found: crate::identity::ElementId,
    },
    /// `open_or_create` (or a [`crate::Manager`] get-or-create) found the
    /// object with another capacity (or array length, or arena size).
    #[error("{what} differs: asked for {expected}, the existing object has {found}")]
    CapacityMismatch {
        /// What differs: `"capacity"` (queues, dicts), `"length"` (arrays; an
        /// array asked for as a `Value` is a `TypeMismatch`) or `"arena size"`
        /// (managers).
        what: &'static str,
        /// The value asked for.
        expected: u64,
        /// The existing object's.
        found: u64,
    },
    /// `open_or_create` (or a [`crate::Manager`] get-or-create) found a queue
    /// whose slots have another size.
    #[error("slot size differs: asked for {expected} bytes, the existing queue has {found}")]
    SlotSizeMismatch {
        /// Bytes per slot asked for.
        expected: u64,
        /// Bytes per slot of the existing queue.
        found: u64,
    },
    /// The kind and every element identity match but the stored fingerprint
    /// does not: the header (or entry) is inconsistent, or was written by an
    /// implementation that hashes differently.
    #[error("identity fingerprint {found:#018x} differs from the expected {expected:#018x}")]
    LayoutMismatch {
        /// Fingerprint of the caller's type.
        expected: u64,
        /// Fingerprint in the header.
        found: u64,
    },
    /// Fewer bytes than a header needs.
    #[error("region is {len} bytes, smaller than the {needed}-byte header")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// `open` of a region file owned by another user. Whoever owns the file
    /// can rewrite it at any time (including shrinking it, which kills every
    /// process using it with `SIGBUS`); opening one is refused unless
    /// [`crate::RegionOptions::allow_foreign_owner`] says otherwise.
    #[error(
        "shared memory object {name:?} is owned by uid {owner}, not by this process (euid {euid})"
    )]
    ForeignOwner {
        /// The region's name.
        name: String,
        /// The file's owner.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// `open` of a region file that its group or other users may write, so any
    /// of them could scribble over it or shrink it; refused unless
    /// [`crate::RegionOptions::allow_shared_write`] says otherwise.
    #[error("shared memory object {name:?} has mode {mode:#o}: writable by group or others")]
    InsecureMode {
        /// The region's name.
        name: String,
        /// The file's permission bits.
        mode: u32,
    },
    /// A header or object field holds an impossible value.
    #[error("region is corrupted: {0}")]
    Corrupted(&'static str),
    /// Every participant slot is held by a live process, so this process cannot
    /// join (dead members and stuck joiners are reclaimed first).
    #[error(
        "the region's participant table is full ({slots} slots): raise RegionOptions::participants"
    )]
    ParticipantsFull {
        /// Size of the table.
        slots: u32,
    },
    /// The creator did not finish initializing in time (it may have died).
    #[error("region was not initialized in time (did its creator die?)")]
    NotReady,
    /// A creation parameter is out of range (zero parties, zero slots, ...).
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// A [`crate::Manager`] has no room left for the object.
    #[error("manager region is out of space: {needed} bytes needed, {available} available")]
    OutOfSpace {
        /// Bytes the object needs.
        needed: usize,
        /// Bytes still free in the manager's arena.
        available: usize,
    },
    /// A [`crate::Manager`]'s directory has no free entry.
    #[error("manager directory is full ({entries} objects)")]
    DirectoryFull {
        /// The directory's size.
        entries: usize,
    },
    /// An object name inside a [`crate::Manager`] breaks the rules (1 to 63
    /// bytes, no NUL).
    #[error("invalid object name {name:?}: {reason}")]
    InvalidObjectName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The manager's directory lock cannot be repaired.
    #[error("the manager's directory lock is not recoverable")]
    NotRecoverable,
    /// Any other operating-system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
