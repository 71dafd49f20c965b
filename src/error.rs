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
    /// The region holds another kind of object.
    #[error("region holds a {found}, not a {expected}")]
    TypeMismatch {
        /// The kind the caller asked for.
        expected: String,
        /// The kind recorded in the header.
        found: String,
    },
    /// Same kind, different layout (element type, size or alignment).
    #[error("layout fingerprint {found:#018x} differs from the expected {expected:#018x}")]
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
