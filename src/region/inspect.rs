//! Discovery: [`Region::list`] and [`Region::inspect`], reading regions without
//! knowing (or trusting) what they hold.
//!
//! Nothing here maps a region or joins its participant table. The file is
//! opened read-only, without following symlinks and without blocking (a FIFO
//! planted under the mount cannot hang a `multiproc ls`), checked to be a
//! regular file, and read with `pread`: a file that is shorter than its header
//! claims, or shrinks while it is read, gives a short read and a typed error,
//! never a `SIGBUS`. Every number copied out is untrusted: the header goes
//! through the same `header::parse` as `open`, and each kind's decoder reads
//! its fields from a bounded copy of the payload's first bytes with checked
//! offsets, clamping what it reports (a queue's length to its capacity, ...).

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

use super::header::{self, HEADER_SIZE, Peek, SLOT_SIZE};
use super::participants::{Liveness, Member, Participant, SlotView};
use super::{Cleanup, Region, name, os_error};
use crate::Error;
use crate::sys::shm;

/// Bytes of a payload copied for the kind decoders (a manager's directory
/// entries beyond them are not listed).
const PAYLOAD_PREFIX: usize = 64 * 1024;

/// One kind-specific fact about a region (a semaphore's bound, a manager's
/// objects, ...), for display: see [`RegionInfo::details`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detail {
    /// What it is (`"bound"`, `"closed"`, `"object"`, ...).
    pub name: &'static str,
    /// Its value as read (untrusted).
    pub value: DetailValue,
}

/// The value of a [`Detail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetailValue {
    /// A count or size.
    Int(u64),
    /// A flag.
    Bool(bool),
    /// Anything else (a manager entry: `name kind size`).
    Text(String),
}

impl std::fmt::Display for DetailValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DetailValue::Int(v) => write!(f, "{v}"),
            DetailValue::Bool(v) => write!(f, "{v}"),
            DetailValue::Text(v) => f.write_str(v),
        }
    }
}

/// What [`Region::inspect`] found in a named region, read without joining it.
///
/// Every number comes from shared memory that any process with write access
/// may have scribbled over: it was bounds-checked before use, but it is a
/// snapshot and not a promise (a queue's `len` may change the next instant).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RegionInfo {
    /// The region's name (with its leading `/`).
    pub name: String,
    /// The kind of object it holds (`"Queue"`, `"SharedDict"`, `"Lock"`, ...).
    pub kind: String,
    /// The header's type identity (layout fingerprint) as stored: opaque, equal
    /// for every handle type that may open the region.
    pub fingerprint: u64,
    /// The stored type identity: element sizes, alignments and type ids, and
    /// the capacity and slot size the identity block records (see
    /// [`crate::identity`]).
    pub identity: crate::identity::TypeIdentity,
    /// Shared-memory format version.
    pub version: u32,
    /// Size of the file in bytes.
    pub size: u64,
    /// Bytes of the object (the payload after header and participant table).
    pub payload_size: u64,
    /// Number of participant slots.
    pub participant_slots: u32,
    /// Slots, entries or parties, where the kind has a capacity.
    pub capacity: Option<u64>,
    /// Bytes per item, value or element, where the kind stores one size.
    pub element_size: Option<u64>,
    /// Items queued, entries in a dict or manager, permits, or elements, where
    /// the kind has a count.
    pub len: Option<u64>,
    /// Kind-specific facts beyond the fields above.
    pub details: Vec<Detail>,
    /// Processes in the participant table (alive or found dead).
    pub participants: Vec<Participant>,
    /// Pid of the creating process.
    pub creator_pid: u32,
    /// Whether the creating process still runs (`true` when it cannot be told).
    pub creator_alive: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// The cleanup policy chosen at creation.
    pub cleanup: Cleanup,
    /// Owner of the file (`fstat`).
    pub uid: u32,
    /// Group of the file.
    pub gid: u32,
    /// Permission bits of the file.
    pub mode: u32,
    file_id: (u64, u64),
}

impl RegionInfo {
    /// Whether the policy says the name should be gone already: the creator is
    /// dead ([`Cleanup::CreatorDeath`]), or no participant is alive and one
    /// died ([`Cleanup::LastParticipant`]).
    pub fn expired(&self) -> bool {
        match self.cleanup {
            Cleanup::Persistent => false,
            Cleanup::CreatorDeath => !self.creator_alive,
            Cleanup::LastParticipant => self.abandoned(),
        }
    }

    /// Whether participants joined and every one of them is dead now.
    pub fn abandoned(&self) -> bool {
        !self.participants.is_empty() && self.participants.iter().all(|p| !p.alive)
    }

    /// What `multiproc gc` removes: an [`abandoned`](Self::abandoned) region
    /// (whatever its policy) or an [`expired`](Self::expired) one. A region
    /// nobody is attached to but nobody died in (its users left cleanly) is
    /// kept: that is how a persistent queue waits for its consumer.
    pub fn collectable(&self) -> bool {
        self.abandoned() || self.expired()
    }
}

/// A bounded copy of an object's first bytes, for the kind decoders: every
/// read is checked and out-of-range reads give `None`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot<'a>(pub(crate) &'a [u8]);

impl Snapshot<'_> {
    /// The `u32` at `off`, if the copy holds it.
    pub(crate) fn u32(&self, off: usize) -> Option<u32> {
        let b = self.0.get(off..off.checked_add(4)?)?;
        Some(u32::from_ne_bytes(b.try_into().ok()?))
    }

    /// The `u64` at `off`, if the copy holds it.
    pub(crate) fn u64(&self, off: usize) -> Option<u64> {
        let b = self.0.get(off..off.checked_add(8)?)?;
        Some(u64::from_ne_bytes(b.try_into().ok()?))
    }

    /// The `len` bytes at `off`, if the copy holds them.
    pub(crate) fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        self.0.get(off..off.checked_add(len)?)
    }
}

/// What a kind decoder found; `None` fields are left out of the report.
#[derive(Clone, Debug, Default)]
pub(crate) struct KindInfo {
    pub(crate) capacity: Option<u64>,
    pub(crate) element_size: Option<u64>,
    pub(crate) len: Option<u64>,
    pub(crate) details: Vec<Detail>,
}

impl KindInfo {
    pub(crate) fn int(&mut self, name: &'static str, v: Option<u64>) {
        if let Some(v) = v {
            self.details.push(Detail {
                name,
                value: DetailValue::Int(v),
            });
        }
    }

    pub(crate) fn flag(&mut self, name: &'static str, v: Option<bool>) {
        if let Some(v) = v {
            self.details.push(Detail {
                name,
                value: DetailValue::Bool(v),
            });
        }
    }

    pub(crate) fn text(&mut self, name: &'static str, v: String) {
        self.details.push(Detail {
            name,
            value: DetailValue::Text(v),
        });
    }
}

/// Named offsets (the kinds' `field_offsets`) looked up by name.
fn offset(fields: &[(&'static str, usize)], name: &str) -> Option<usize> {
    fields.iter().find(|(n, _)| *n == name).map(|&(_, o)| o)
}

/// The queue kinds: capacity, slot payload, items queued (clamped), closed.
fn queue(obj: Snapshot<'_>, info: &mut KindInfo) {
    let f = crate::queue::field_offsets();
    let at = |n: &str| offset(&f, n).and_then(|o| obj.u64(o));
    let cap = at("capacity").filter(|c| (1..=crate::queue::ring::MAX_CAPACITY).contains(c));
    info.capacity = cap;
    info.element_size = at("payload");
    if let (Some(cap), Some(tail), Some(head)) = (cap, at("tail"), at("head")) {
        info.len = Some(crate::queue::ring::items_between(head, tail, cap));
    }
    let closed = offset(&f, "not_empty").and_then(|o| obj.u32(o));
    info.flag(
        "closed",
        closed.map(|w| w & crate::queue::ring::CLOSED != 0),
    );
}

/// A single-producer single-consumer channel: capacity, slot size, items
/// (clamped).
fn spsc(obj: Snapshot<'_>, info: &mut KindInfo) {
    let f = crate::queue::spsc::SpscCore::field_offsets();
    let at = |n: &str| offset(&f, n).and_then(|o| obj.u64(o));
    let cap = at("capacity").filter(|c| (1..=crate::queue::spsc::MAX_CAPACITY).contains(c));
    info.capacity = cap;
    info.element_size = at("slot_size");
    if let (Some(cap), Some(tail), Some(head)) = (cap, at("tail"), at("head")) {
        info.len = Some(tail.wrapping_sub(head).min(cap));
    }
}

/// A dict: capacity, entries (clamped), key and value sizes.
fn dict(obj: Snapshot<'_>, info: &mut KindInfo) {
    let f = crate::dict::field_offsets();
    let at = |n: &str| offset(&f, n).and_then(|o| obj.u64(o));
    let cap = at("capacity");
    info.capacity = cap;
    info.len = at("len").map(|l| cap.map_or(l, |c| l.min(c)));
    info.int("key_size", at("key_size"));
    info.int("value_size", at("value_size"));
    info.element_size = at("value_size");
}

/// A manager: its directory (entries used and their names, kinds and sizes).
fn manager(obj: Snapshot<'_>, info: &mut KindInfo) {
    let f = crate::manager::field_offsets();
    let at = |n: &str| offset(&f, n).and_then(|o| obj.u64(o));
    let max = at("max_entries");
    info.capacity = max;
    let count = at("count").map(|c| max.map_or(c, |m| c.min(m)));
    info.len = count;
    info.int("arena_used", at("next"));
    info.int("arena_total", at("total"));
    let (Some(count), Some(entries)) = (count, offset(&f, "entries")) else {
        return;
    };
    for i in 0..count.min(crate::manager::MAX_ENTRIES as u64) as usize {
        let Some(e) = crate::manager::entry_view(obj, entries, i) else {
            break; // past the copied bytes
        };
        info.text("object", e);
    }
}

/// Decodes the kind-specific part of an object of `kind`.
fn describe(kind: &str, obj: Snapshot<'_>) -> KindInfo {
    let mut info = KindInfo::default();
    match kind {
        "Queue" | "BytesQueue" => queue(obj, &mut info),
        "SpscChannel" => spsc(obj, &mut info),
        "SharedDict" => dict(obj, &mut info),
        "Manager" => manager(obj, &mut info),
        "Counter" | "Array" => crate::value::inspect(kind, obj, &mut info),
        _ => crate::sync::inspect(kind, obj, &mut info),
    }
    info
}

/// Reads `len` bytes at `off`; a short read (a truncated or shrinking file) is
/// [`Error::Truncated`].
fn read_exact(file: &File, off: u64, len: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => {
                return Err(Error::Truncated {
                    len: usize::try_from(off)
                        .unwrap_or(usize::MAX)
                        .saturating_add(done),
                    needed: usize::try_from(off)
                        .unwrap_or(usize::MAX)
                        .saturating_add(len),
                });
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(buf)
}

/// A region file opened read-only for inspection.
struct Opened {
    file: File,
    /// The header's bytes.
    head: Vec<u8>,
    /// `(device, inode)`.
    id: (u64, u64),
    meta: std::fs::Metadata,
}

/// Opens `name` read-only and returns it with its header bytes, its
/// `(device, inode)` and its metadata; [`Error::NotARegion`] for anything that
/// is not a regular file starting with the magic.
fn open_checked(name: &str) -> Result<Opened, Error> {
    let c = name::check(name)?;
    let file = shm::open_readonly(&c).map_err(|e| os_error(e, name))?;
    let (id, regular) = shm::file_id(&file)?;
    if !regular {
        return Err(Error::NotARegion);
    }
    let meta = file.metadata()?;
    if meta.len() < HEADER_SIZE as u64 {
        return Err(Error::NotARegion);
    }
    let head = read_exact(&file, 0, HEADER_SIZE)?;
    if head.get(..8) != Some(&header::MAGIC[..]) {
        return Err(Error::NotARegion);
    }
    Ok(Opened {
        file,
        head,
        id,
        meta,
    })
}

impl Region {
    /// The names under the shared memory mount (`/dev/shm`) of files that
    /// carry this crate's magic, sorted, each with its leading `/`.
    ///
    /// Anything else there (other programs' objects, POSIX semaphores,
    /// FIFOs, symlinks, unreadable or short files) is skipped. A listed name
    /// may still fail [`Region::inspect`]: another format version, a creator
    /// that died before finishing, or a corrupted header.
    ///
    /// ```
    /// use multiproc::{Counter, Region};
    ///
    /// # let name = format!("/doc-list-{}", std::process::id());
    /// let c = Counter::create(&name, 0)?;
    /// assert!(Region::list()?.contains(&name));
    /// # Region::unlink(&name)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn list() -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for n in shm::list_names()? {
            if name::check(&n).is_ok() && open_checked(&n).is_ok() {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Whether the name `name` is a file carrying this crate's magic (what
    /// [`Region::list`] lists); `Ok(false)` for other files.
    pub fn is_region(name: &str) -> Result<bool, Error> {
        match open_checked(name) {
            Ok(_) => Ok(true),
            Err(Error::NotARegion | Error::Truncated { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Describes the named region without knowing its type and without
    /// joining it: kind, type identity, geometry, current length or count
    /// where the kind has one, participants (each judged alive or dead now),
    /// creator, creation time, cleanup policy, owner and mode.
    ///
    /// Reads only (nothing is mapped, marked or removed), so it works on
    /// regions of other users the caller may read, and on regions `open`
    /// would refuse for their mode.
    ///
    /// ```
    /// use multiproc::{Queue, Region};
    ///
    /// # let name = format!("/doc-inspect-{}", std::process::id());
    /// let q = Queue::<u64>::create(&name, 8)?;
    /// q.put(7).unwrap();
    /// let info = Region::inspect(&name)?;
    /// assert_eq!(info.kind, "Queue");
    /// assert_eq!((info.capacity, info.element_size, info.len), (Some(8), Some(8), Some(1)));
    /// assert_eq!(info.participants.len(), 1);
    /// # Region::unlink(&name)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn inspect(name: &str) -> Result<RegionInfo, Error> {
        let Opened {
            file,
            head,
            id: file_id,
            meta,
        } = open_checked(name)?;
        let (peek, layout): (Peek, _) = match header::peek(&head, meta.len()) {
            None => return Err(Error::NotARegion),
            Some(r) => r?,
        };
        // `parse` bounded the table and the payload by the file's size.
        let table_len = layout.participants_len as usize * SLOT_SIZE;
        let table = read_exact(&file, layout.participants_offset as u64, table_len)?;
        let participants: Vec<Participant> = (0..layout.participants_len)
            .filter_map(|i| SlotView::read(&table, i as usize)?.participant(i))
            .collect();
        let prefix = layout.payload_size.min(PAYLOAD_PREFIX);
        let payload = read_exact(&file, layout.payload_offset as u64, prefix)?;
        let kind = describe(&peek.kind, Snapshot(&payload));
        let creator_alive = creator_alive(&peek, &table);
        Ok(RegionInfo {
            name: name.to_owned(),
            kind: peek.kind,
            fingerprint: peek.fingerprint,
            identity: peek.identity,
            version: peek.version,
            size: meta.len(),
            payload_size: layout.payload_size as u64,
            participant_slots: layout.participants_len,
            capacity: kind.capacity,
            element_size: kind.element_size,
            len: kind.len,
            details: kind.details,
            participants,
            creator_pid: peek.creator_pid,
            creator_alive,
            created_at: peek.created_at,
            cleanup: Cleanup::from_raw(peek.cleanup),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            file_id,
        })
    }

    /// Removes the name of a region [`inspect`](Region::inspect)ed before if
    /// it is still [`collectable`](RegionInfo::collectable) now and still the
    /// same file: it is inspected again first, so a region that someone joined
    /// since (a restarted consumer), or that was removed and created anew under
    /// the name, is left alone. Returns whether it removed it.
    ///
    /// What remains is the instant between that second look and the unlink: a
    /// process joining exactly then keeps a working region whose name is gone.
    pub fn collect(info: &RegionInfo) -> Result<bool, Error> {
        let now = match Region::inspect(&info.name) {
            Ok(now) => now,
            Err(Error::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if now.file_id != info.file_id || !now.collectable() {
            return Ok(false);
        }
        let c = name::check(&info.name)?;
        shm::unlink_if_same(&c, info.file_id).map_err(|e| os_error(e, &info.name))
    }
}

/// The creator's liveness from a snapshot: its membership's slot if it still
/// holds it, else `/proc` (alive when it cannot tell).
fn creator_alive(peek: &Peek, table: &[u8]) -> bool {
    if let Some(m) = Member::from_token(peek.creator_token) {
        if let Some(v) = SlotView::read(table, m.index as usize) {
            match v.liveness(m) {
                Liveness::Alive => return true,
                Liveness::Dead => return false,
                Liveness::Gone => {}
            }
        }
    }
    super::participants::proc_says_alive(
        peek.creator_pid,
        peek.creator_start_time,
        peek.creator_pidns,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_never_panic_on_garbage() {
        let kinds = [
            "Queue",
            "BytesQueue",
            "SpscChannel",
            "SharedDict",
            "Manager",
            "Counter",
            "Array",
            "Semaphore",
            "Event",
            "Barrier",
            "Lock",
            "RLock",
            "Condition",
            "PipeState",
            "Unknown",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in [0usize, 1, 7, 8, 63, 64, 200, 1000, 5000] {
            for fill in [0u8, 0xff, 0x01] {
                let mut b = vec![fill; len];
                for x in b.iter_mut().step_by(3) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *x = seed as u8;
                }
                for k in kinds {
                    let info = describe(k, Snapshot(&b));
                    if let (Some(l), Some(c)) = (info.len, info.capacity) {
                        assert!(l <= c, "{k}: len {l} > capacity {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn slot_views_of_garbage_never_panic() {
        let b = vec![0xffu8; 3 * SLOT_SIZE + 5];
        for i in 0..5 {
            if let Some(v) = SlotView::read(&b, i) {
                let _ = v.participant(i as u32);
                let _ = v.liveness(Member {
                    index: 0,
                    generation: 1,
                });
            }
        }
        assert!(SlotView::read(&b, 3).is_none());
    }
}
