//! The region header: what a process checks before it trusts a single byte of a
//! mapping it did not create.
//!
//! ```text
//! offset  field                 written
//! 0       magic "MPROCRGN"      by the creator, before READY; immutable after
//! 8       format version        "
//! 12      libc family           "
//! 16      total size            "
//! 24      fingerprint           "   (kind and element identities: see below)
//! 32      participants offset   "
//! 40      participants count    "
//! 44      init state            UNINIT -> INITIALIZING -> READY (CAS, then a
//!                               Release store that pairs with openers' Acquire)
//! 48      payload offset        by the creator, before READY
//! 56      payload size          "
//! 64      kind name (32 bytes)  "
//! 96      creator pid           "
//! 100     (free, zero)
//! 104     lifecycle block       40 bytes, see [`Lifecycle`]: creation time, the
//!                               creator's identity and the cleanup policy
//!                               (before READY), the creator's membership token
//!                               (before READY) and the closing flag (atomic)
//! 144     (free, zero)
//! 184     identity block        "   (72 bytes: element sizes, alignments and
//!                               type ids, capacity, slot size; spec in
//!                               `crate::identity`)
//! ```
//!
//! The fingerprint at 24 is the identity hash the spec in [`crate::identity`]
//! defines (kind and element identities, never a Rust type name); a C or
//! Python peer computes it from the same numbers. The lifecycle and identity
//! blocks sit at fixed offsets of their own, so neither moves the other.
//!
//! [`parse`] turns an arbitrary byte snapshot into either a validated [`Layout`] or a
//! typed [`Error`]; it never panics and never indexes out of bounds, which the
//! proptest and fuzz suites check with random and truncated input.

use crate::Error;
use crate::identity::{self, Block, Elements};
use crate::loom::atomic::AtomicU32;
use crate::sys::LIBC_FAMILY;

/// The first eight bytes of every region.
pub(crate) const MAGIC: [u8; 8] = *b"MPROCRGN";
/// Bumped whenever any shared layout in the crate changes. 3: type identity
/// from layout (element size, alignment, type id) instead of Rust type names,
/// the identity block at [`IDENTITY_OFFSET`], 192-byte manager entries, and the
/// lifecycle block at [`LIFECYCLE_OFFSET`] (cleanup policy, creation time,
/// creator identity). 4: the queue ring's copy of `CLOSED` on its stats line,
/// which `close` sets and getters that find the ring empty read.
pub(crate) const VERSION: u32 = 4;
/// Where the identity block (`crate::identity::Block`) sits in the header.
pub(crate) const IDENTITY_OFFSET: usize = HEADER_SIZE - identity::BLOCK_SIZE;
/// Bytes reserved for the header; the participant table starts here.
pub(crate) const HEADER_SIZE: usize = 256;
/// Alignment of the participant table and the payload (two cache lines, so the
/// adjacent-line prefetcher never couples them).
pub(crate) const ALIGN: usize = 128;
/// Upper bound on the participant table, to reject absurd headers.
pub(crate) const MAX_PARTICIPANTS: u32 = 4096;
/// Bytes per participant slot.
pub(crate) const SLOT_SIZE: usize = 128;

/// `init` values.
pub(crate) const UNINIT: u32 = 0;
/// The creator is building the region.
pub(crate) const INITIALIZING: u32 = 1;
/// Everything before this store is immutable and visible to an Acquire reader.
pub(crate) const READY: u32 = 2;

/// The header as it sits at offset 0 of a region.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: [u8; 8],
    pub(crate) version: u32,
    pub(crate) libc_family: u32,
    pub(crate) total_size: u64,
    pub(crate) fingerprint: u64,
    pub(crate) participants_offset: u64,
    pub(crate) participants_len: u32,
    /// SYNC(init): Release-stored `READY` by the creator after every other field
    /// and the payload are written; openers load it with Acquire.
    pub(crate) init: AtomicU32,
    pub(crate) payload_offset: u64,
    pub(crate) payload_size: u64,
    pub(crate) kind: [u8; 32],
    pub(crate) creator_pid: u32,
}

/// Offset of the [`Lifecycle`] block in the header.
pub(crate) const LIFECYCLE_OFFSET: usize = 104;

/// Cleanup policy values stored in [`Lifecycle::cleanup`].
pub(crate) const CLEANUP_PERSISTENT: u32 = 0;
/// Unlink the name once the creating process is dead.
pub(crate) const CLEANUP_CREATOR: u32 = 1;
/// Unlink the name once no participant is left (left or dead).
pub(crate) const CLEANUP_LAST: u32 = 2;

/// Who made a region, when, and what happens to its name afterwards.
///
/// | field | written |
/// |---|---|
/// | `created_at`, `creator_start_time`, `creator_pidns`, `cleanup` | by the creator, before READY; immutable after |
/// | `creator_token` | by the creator, once it joined, before READY (0 if it could not join) |
/// | `closing` | 0 -> 1 by the process that unlinks the name under the last-participant policy (SeqCst, see `Region::try_close`); 1 -> 0 if a joiner came in between |
#[repr(C)]
pub(crate) struct Lifecycle {
    /// Seconds since the Unix epoch at creation.
    pub(crate) created_at: u64,
    /// The creator's start time (`/proc/<pid>/stat`, clock ticks after boot).
    pub(crate) creator_start_time: u64,
    /// The creator's pid namespace (0 when unknown).
    pub(crate) creator_pidns: u64,
    /// One of the `CLEANUP_*` values.
    pub(crate) cleanup: u32,
    /// SYNC(creator): the creator's owner token, Release-stored after it joined.
    pub(crate) creator_token: AtomicU32,
    /// SYNC(closing): set while the name is being removed (last-participant
    /// policy); paired with the participant states through SeqCst fences.
    pub(crate) closing: AtomicU32,
    _pad: u32,
}

const _: () = {
    assert!(size_of::<Header>() <= LIFECYCLE_OFFSET);
    assert!(LIFECYCLE_OFFSET + size_of::<Lifecycle>() <= IDENTITY_OFFSET);
    assert!(IDENTITY_OFFSET == 184);
    assert!(LIFECYCLE_OFFSET % 8 == 0);
    assert!(core::mem::offset_of!(Header, init) == 44);
    assert!(core::mem::offset_of!(Header, kind) == 64);
};

/// Where things are in a region, as planned by the creator or read back by a
/// process that opens it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) total_size: usize,
    pub(crate) participants_offset: usize,
    pub(crate) participants_len: u32,
    pub(crate) payload_offset: usize,
    pub(crate) payload_size: usize,
}

fn align_up(n: usize, a: usize) -> Option<usize> {
    n.checked_add(a - 1).map(|v| v & !(a - 1))
}

impl Layout {
    /// The layout for a payload of `payload_size` bytes aligned to `payload_align`
    /// (at most 4096) with `participants` slots, the total rounded to a page.
    pub(crate) fn plan(
        payload_size: usize,
        payload_align: usize,
        participants: u32,
    ) -> Result<Layout, Error> {
        if participants == 0 || participants > MAX_PARTICIPANTS {
            return Err(Error::InvalidParameter(
                "participants must be between 1 and 4096",
            ));
        }
        if !payload_align.is_power_of_two() || payload_align > 4096 {
            return Err(Error::InvalidParameter(
                "payload alignment must be a power of two up to 4096",
            ));
        }
        let too_big = Error::InvalidParameter("region size overflows");
        let participants_offset = HEADER_SIZE;
        let table = (participants as usize) * SLOT_SIZE;
        let payload_offset =
            align_up(participants_offset + table, payload_align.max(ALIGN)).ok_or(too_big)?;
        let end = payload_offset
            .checked_add(payload_size)
            .ok_or(Error::InvalidParameter("region size overflows"))?;
        let total_size =
            align_up(end, 4096).ok_or(Error::InvalidParameter("region size overflows"))?;
        if total_size > isize::MAX as usize / 2 {
            return Err(Error::InvalidParameter("region size overflows"));
        }
        Ok(Layout {
            total_size,
            participants_offset,
            participants_len: participants,
            payload_offset,
            payload_size,
        })
    }
}

/// What the opener expects to find.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect<'a> {
    /// Kind name, compared first so a wrong type gives the clearest error.
    pub(crate) kind: &'a str,
    /// The element identities, compared next, one by one.
    pub(crate) elements: Elements,
}

/// Compares a stored identity against the expected one: kind first, then
/// each element, then the fingerprint (which only an inconsistent or foreign
/// header can fail once the fields match). Shared by region headers and
/// manager entries.
pub(crate) fn check_identity(
    expect: Expect<'_>,
    found_kind: &str,
    found: &Block,
    found_fingerprint: u64,
) -> Result<(), Error> {
    if found_kind != kind_name(&kind_field(expect.kind)) {
        return Err(Error::TypeMismatch {
            expected: expect.kind.to_owned(),
            found: found_kind.to_owned(),
        });
    }
    let (want, have) = (expect.elements.as_slice(), found.elements.as_slice());
    if want.len() != have.len() {
        return Err(Error::Corrupted(
            "identity element count differs from the kind's",
        ));
    }
    for (i, (w, h)) in want.iter().zip(have).enumerate() {
        if w != h {
            return Err(Error::ElementMismatch {
                role: expect.elements.role(i),
                expected: *w,
                found: *h,
            });
        }
    }
    let fingerprint = identity::fingerprint(expect.kind, want);
    if found_fingerprint != fingerprint {
        return Err(Error::LayoutMismatch {
            expected: fingerprint,
            found: found_fingerprint,
        });
    }
    Ok(())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(off..off + 4) {
        a.copy_from_slice(s);
    }
    u32::from_ne_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(off..off + 8) {
        a.copy_from_slice(s);
    }
    u64::from_ne_bytes(a)
}

/// The kind name stored in a header (up to the first NUL, lossy UTF-8).
pub(crate) fn kind_name(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The fixed-size kind field for `kind` (truncated to 31 bytes, NUL padded).
pub(crate) fn kind_field(kind: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let n = kind.len().min(31);
    out[..n].copy_from_slice(&kind.as_bytes()[..n]);
    out
}

/// The kind and element identities a header snapshot records (not yet
/// validated: [`parse`] does that against them).
pub(crate) fn stored_kind(bytes: &[u8]) -> Result<(String, Elements), Error> {
    let (Some(kind), Some(block)) = (bytes.get(64..96), bytes.get(IDENTITY_OFFSET..HEADER_SIZE))
    else {
        return Err(Error::Truncated {
            len: bytes.len(),
            needed: HEADER_SIZE,
        });
    };
    let block = Block::decode(block).ok_or(Error::Corrupted("identity element count"))?;
    Ok((kind_name(kind), block.elements))
}

/// Validates a snapshot of a region's first bytes against the mapping length and
/// what the caller expects; returns the layout and the stored identity block.
/// Never panics, whatever the bytes.
pub(crate) fn parse(
    bytes: &[u8],
    mapping_len: usize,
    expect: Expect<'_>,
) -> Result<(Layout, Block), Error> {
    if bytes.len() < HEADER_SIZE || mapping_len < HEADER_SIZE {
        return Err(Error::Truncated {
            len: bytes.len().min(mapping_len),
            needed: HEADER_SIZE,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(Error::NotARegion);
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(Error::VersionMismatch {
            expected: VERSION,
            found: version,
        });
    }
    if u32_at(bytes, 12) != LIBC_FAMILY {
        return Err(Error::LibcMismatch);
    }
    if u32_at(bytes, 44) != READY {
        return Err(Error::NotReady);
    }
    if cleanup_of(bytes) > CLEANUP_LAST {
        return Err(Error::Corrupted("cleanup policy"));
    }
    let kind = kind_name(&bytes[64..96]);
    let block = Block::decode(&bytes[IDENTITY_OFFSET..HEADER_SIZE])
        .ok_or(Error::Corrupted("identity element count"))?;
    check_identity(expect, &kind, &block, u64_at(bytes, 24))?;
    let corrupt = |what: &'static str| Err(Error::Corrupted(what));
    let total = u64_at(bytes, 16);
    if usize::try_from(total).ok() != Some(mapping_len) {
        return corrupt("total size differs from the mapping size");
    }
    let participants_offset = u64_at(bytes, 32);
    let participants_len = u32_at(bytes, 40);
    if participants_offset != HEADER_SIZE as u64 {
        return corrupt("participant table offset");
    }
    if participants_len == 0 || participants_len > MAX_PARTICIPANTS {
        return corrupt("participant count");
    }
    let table_end = HEADER_SIZE as u64 + u64::from(participants_len) * SLOT_SIZE as u64;
    let payload_offset = u64_at(bytes, 48);
    let payload_size = u64_at(bytes, 56);
    if payload_offset < table_end || payload_offset % ALIGN as u64 != 0 {
        return corrupt("payload offset");
    }
    match payload_offset.checked_add(payload_size) {
        Some(end) if end <= total => {}
        _ => return corrupt("payload extends past the end of the region"),
    }
    // Every value is now bounded by `total`, which equals `mapping_len`.
    let layout = Layout {
        total_size: mapping_len,
        participants_offset: HEADER_SIZE,
        participants_len,
        payload_offset: payload_offset as usize,
        payload_size: payload_size as usize,
    };
    Ok((layout, block))
}

/// The raw cleanup policy of a header snapshot (validated by [`parse`]).
pub(crate) fn cleanup_of(bytes: &[u8]) -> u32 {
    u32_at(
        bytes,
        LIFECYCLE_OFFSET + core::mem::offset_of!(Lifecycle, cleanup),
    )
}

/// A header snapshot read without knowing the kind: every field as stored,
/// nothing trusted beyond the checks [`peek`] names.
#[derive(Clone, Debug)]
pub(crate) struct Peek {
    pub(crate) version: u32,
    pub(crate) kind: String,
    pub(crate) fingerprint: u64,
    pub(crate) creator_pid: u32,
    pub(crate) created_at: u64,
    pub(crate) creator_start_time: u64,
    pub(crate) creator_pidns: u64,
    pub(crate) cleanup: u32,
    pub(crate) creator_token: u32,
    /// The stored type identity (kind, element identities, geometry).
    pub(crate) identity: identity::TypeIdentity,
}

/// Reads what a header says about itself: `None` without the magic (not a
/// region), `Err` for this crate's magic with a header that another format
/// version wrote, is not ready, or whose geometry does not fit `file_len`.
/// Never panics, whatever the bytes.
pub(crate) fn peek(bytes: &[u8], file_len: u64) -> Option<Result<(Peek, Layout), Error>> {
    if bytes.get(..8)? != MAGIC {
        return None;
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Some(Err(Error::VersionMismatch {
            expected: VERSION,
            found: version,
        }));
    }
    let Ok(len) = usize::try_from(file_len) else {
        return Some(Err(Error::Corrupted("size does not fit in memory")));
    };
    let kind = kind_name(bytes.get(64..96).unwrap_or(&[]));
    let fingerprint = u64_at(bytes, 24);
    // `parse` checks everything except kind and element identities, which it
    // is told: here they are taken from the header itself.
    let Some(block) = bytes
        .get(IDENTITY_OFFSET..HEADER_SIZE)
        .and_then(Block::decode)
    else {
        return Some(Err(Error::Corrupted("identity element count")));
    };
    let layout = match parse(
        bytes,
        len,
        Expect {
            kind: &kind,
            elements: block.elements,
        },
    ) {
        Ok((l, _)) => l,
        Err(e) => return Some(Err(e)),
    };
    let identity = identity::TypeIdentity::from_block(kind.clone(), &block, fingerprint);
    let lc = |f: usize| LIFECYCLE_OFFSET + f;
    use core::mem::offset_of;
    Some(Ok((
        Peek {
            version,
            kind,
            fingerprint,
            creator_pid: u32_at(bytes, 96),
            created_at: u64_at(bytes, lc(offset_of!(Lifecycle, created_at))),
            creator_start_time: u64_at(bytes, lc(offset_of!(Lifecycle, creator_start_time))),
            creator_pidns: u64_at(bytes, lc(offset_of!(Lifecycle, creator_pidns))),
            cleanup: cleanup_of(bytes),
            creator_token: u32_at(bytes, lc(offset_of!(Lifecycle, creator_token))),
            identity,
        },
        layout,
    )))
}

/// FNV-1a, 64 bit: a fingerprint that is the same in every process and build
/// (unlike `std`'s randomly seeded hasher).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) const fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) const fn bytes(mut self, b: &[u8]) -> Fnv {
        let mut i = 0;
        while i < b.len() {
            self.0 ^= b[i] as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        self
    }

    pub(crate) const fn u64(self, v: u64) -> Fnv {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) const fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ElementId;

    fn good() -> (Vec<u8>, Layout) {
        let l = Layout::plan(100, 8, 4).unwrap();
        let mut b = vec![0u8; HEADER_SIZE];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_ne_bytes());
        b[12..16].copy_from_slice(&LIBC_FAMILY.to_ne_bytes());
        b[16..24].copy_from_slice(&(l.total_size as u64).to_ne_bytes());
        b[24..32].copy_from_slice(&identity::fingerprint("Test", &[ELEM]).to_ne_bytes());
        b[32..40].copy_from_slice(&(HEADER_SIZE as u64).to_ne_bytes());
        b[40..44].copy_from_slice(&4u32.to_ne_bytes());
        b[44..48].copy_from_slice(&READY.to_ne_bytes());
        b[48..56].copy_from_slice(&(l.payload_offset as u64).to_ne_bytes());
        b[56..64].copy_from_slice(&100u64.to_ne_bytes());
        b[64..68].copy_from_slice(b"Test");
        let block = Block::new(Elements::one(ELEM), identity::Geometry::default());
        b[IDENTITY_OFFSET..].copy_from_slice(&block.encode());
        (b, l)
    }

    const ELEM: ElementId = ElementId {
        size: 24,
        align: 8,
        type_id: 0,
    };

    const EXPECT: Expect<'static> = Expect {
        kind: "Test",
        elements: Elements::one(ELEM),
    };

    #[test]
    fn good_header_parses_to_the_planned_layout() {
        let (b, l) = good();
        assert_eq!(parse(&b, l.total_size, EXPECT).unwrap().0, l);
    }

    #[test]
    fn each_field_is_checked() {
        let (b, l) = good();
        type Case = (usize, u8, fn(&Error) -> bool);
        let cases: &[Case] = &[
            (0, b'X', |e| matches!(e, Error::NotARegion)),
            (8, 9, |e| matches!(e, Error::VersionMismatch { .. })),
            (12, 0, |e| matches!(e, Error::LibcMismatch)),
            (44, 1, |e| matches!(e, Error::NotReady)),
            (64, b'X', |e| matches!(e, Error::TypeMismatch { .. })),
            (24, 8, |e| matches!(e, Error::LayoutMismatch { .. })),
            // Element 0's size, alignment and type id.
            (192, 16, |e| matches!(e, Error::ElementMismatch { .. })),
            (200, 4, |e| matches!(e, Error::ElementMismatch { .. })),
            (208, 1, |e| matches!(e, Error::ElementMismatch { .. })),
            // The element count.
            (184, 2, |e| matches!(e, Error::Corrupted(_))),
            (184, 9, |e| matches!(e, Error::Corrupted(_))),
            (17, 0xff, |e| matches!(e, Error::Corrupted(_))),
            (41, 0xff, |e| matches!(e, Error::Corrupted(_))),
            (49, 0xff, |e| matches!(e, Error::Corrupted(_))),
            (63, 0xff, |e| matches!(e, Error::Corrupted(_))),
            (LIFECYCLE_OFFSET + 24, 3, |e| {
                matches!(e, Error::Corrupted(_))
            }),
        ];
        for &(off, val, is) in cases {
            let mut bad = b.clone();
            bad[off] = val;
            let e = parse(&bad, l.total_size, EXPECT).unwrap_err();
            assert!(is(&e), "offset {off}: {e:?}");
        }
        assert!(matches!(
            parse(&b[..100], l.total_size, EXPECT),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            parse(&b, l.total_size + 4096, EXPECT),
            Err(Error::Corrupted(_))
        ));
    }

    #[test]
    fn identity_is_readable_without_knowing_the_type() {
        let (b, l) = good();
        let (p, _) = peek(&b, l.total_size as u64).unwrap().unwrap();
        let id = p.identity;
        assert_eq!(id.kind, "Test");
        assert_eq!(id.elements, [ELEM]);
        assert_eq!(id.fingerprint, identity::fingerprint("Test", &[ELEM]));
        let mut bad = b.clone();
        bad[IDENTITY_OFFSET] = 3; // an impossible element count
        assert!(matches!(
            peek(&bad, l.total_size as u64),
            Some(Err(Error::Corrupted(_)))
        ));
    }

    #[test]
    fn peek_reads_any_kind_and_never_panics() {
        let (b, l) = good();
        let (p, layout) = peek(&b, l.total_size as u64).unwrap().unwrap();
        assert_eq!((p.kind.as_str(), layout), ("Test", l));
        assert_eq!(p.identity.elements, [ELEM]);
        assert!(peek(&b[..7], 4096).is_none());
        assert!(peek(b"not a region at all", 4096).is_none());
        assert!(matches!(peek(&b[..100], 4096), Some(Err(_))));
        for off in 0..HEADER_SIZE {
            for v in [0u8, 1, 0x80, 0xff] {
                let mut bad = b.clone();
                bad[off] = v;
                let _ = peek(&bad, l.total_size as u64);
                let _ = peek(&bad, u64::MAX);
            }
        }
    }

    #[test]
    fn plan_rejects_nonsense() {
        assert!(Layout::plan(1, 8, 0).is_err());
        assert!(Layout::plan(1, 3, 1).is_err());
        assert!(Layout::plan(usize::MAX - 10, 8, 1).is_err());
        let l = Layout::plan(1, 8, 128).unwrap();
        assert_eq!(l.payload_offset % ALIGN, 0);
        assert!(l.payload_offset >= HEADER_SIZE + 128 * SLOT_SIZE);
        assert_eq!(l.total_size % 4096, 0);
    }
}
