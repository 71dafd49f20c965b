//! Type identity: what a region records about the types it holds, so that two
//! programs agree on a layout without sharing a Rust type (or a language).
//!
//! # The rule
//!
//! The identity of an element type is three numbers: its **size**, its
//! **alignment** and a **type id** (a `u64`; 0 means "none given"). Its Rust
//! name plays no part, so the same `#[repr(C)]` struct defined in two crates,
//! two binaries or two compiler versions opens the same named object, and a C
//! or Python peer can create or open it from the numbers alone.
//!
//! - Any [`Pod`](bytemuck::Pod) type is a [`SharedType`] with type id 0: simple
//!   use stays `Queue::<Stat>::create(..)`, nothing to implement.
//! - Two types with the same layout but different meaning are told apart by
//!   giving them different ids: wrap the element in [`Tagged<T, ID>`] (a
//!   transparent wrapper), or implement [`SharedType`] with your own
//!   [`TYPE_ID`](SharedType::TYPE_ID) for a type that does not derive `Pod`.
//!   [`stable_id`] turns a name you choose (`"myapp.Stat/v1"`) into an id at
//!   compile time. An opener must then use the same id: an untagged `Stat`
//!   (id 0) does not open a queue of `Tagged<Stat, 7>`.
//! - What is compared on open: the object's kind (`"Queue"`, `"SharedDict"`,
//!   ...), then each element's size, alignment and type id (a dict has two
//!   elements: key, then value), each mismatch a typed [`Error`] naming both
//!   sides; `open_or_create` also compares the capacity and slot size.
//!
//! # Spec (region format version 4)
//!
//! All integers are native-endian like the rest of the header (regions never
//! leave one machine); "LE" marks the bytes fed to the hash, which are
//! little-endian everywhere.
//!
//! The region header (see `src/region/header.rs`) carries at offset 24 the
//! **fingerprint** and at offsets 184..256 the **identity block**:
//!
//! ```text
//! offset  size  field
//! 184     4     n, the number of element identities: 0, 1 (element) or 2 (key, value)
//! 188     4     reserved, 0
//! 192     8     element 0: size in bytes
//! 200     8     element 0: alignment in bytes
//! 208     8     element 0: type id (0 = none)
//! 216     8     element 1: size      (0 when n < 2)
//! 224     8     element 1: alignment (0 when n < 2)
//! 232     8     element 1: type id   (0 when n < 2)
//! 240     8     capacity: queue slots, dict entries, array length, manager arena
//!               bytes; else 0
//! 248     8     slot size: bytes of item per queue slot (a Queue's element size, a
//!               BytesQueue's slot_size without its 4-byte length prefix); else 0
//! ```
//!
//! The fingerprint is FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime
//! `0x100000001b3`) over: the kind's name in UTF-8 (as stored at header offset
//! 64), one `0x00` byte, `n` as 8 bytes LE, then for each element its size,
//! alignment and type id, each 8 bytes LE. Capacity and slot size are not
//! hashed: they are geometry, compared field by field. A worked value, checked
//! by a unit test: a `Queue<u64>` (kind `"Queue"`, one element of size 8,
//! alignment 8, id 0) has fingerprint `0x0243_ba91_b1e4_ada9`.
//!
//! Which kinds have which elements: `Queue<T>` and `JoinableQueue<T>` (kind
//! `"Queue"`; the joinable flag lives in the queue object) and `Value<T>` /
//! `Array<T>` (kind `"Array"`, a `Value` being an array of length 1): one
//! element, `T`. `SharedDict<K, V>` (kind `"SharedDict"`): two, `K` then `V`.
//! Every other kind (`BytesQueue`, locks, semaphores, events, conditions,
//! barriers, counters, managers): none. A [`crate::Manager`] entry stores the
//! same fingerprint and identity block for its object.
//!
//! [`stable_id`] is the same FNV-1a 64 over the name's UTF-8 bytes (no
//! terminator), so a peer can derive a tagged id from the same name.
//!
//! The bytes of an element are its in-memory representation (native-endian,
//! `#[repr(C)]` field order and padding rules of the platform's C ABI): a C
//! peer uses the same struct, a Python peer `ctypes.Structure` or `struct`
//! with native alignment.
//!
//! [`Error`]: crate::Error

use std::fmt;
use std::ops::{Deref, DerefMut};

/// A type whose values can be copied into shared memory and read back by
/// another process: plain old data, identified by its size, alignment and
/// [`TYPE_ID`](SharedType::TYPE_ID) (see the [module docs](self)).
///
/// Every [`Pod`](bytemuck::Pod) type implements it with `TYPE_ID = 0`; use
/// [`Tagged`] to give a `Pod` type an id.
///
/// # Safety
///
/// The same contract as `bytemuck::Pod`: every bit pattern of
/// `size_of::<Self>()` bytes (including all zeros) is a valid value, the type
/// has no padding bytes, no pointers or references, and no interior
/// mutability.
///
/// ```
/// use multiproc::identity::SharedType;
///
/// /// Not `Pod` (no derive), but promised to be plain data.
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Celsius(f64);
///
/// // SAFETY: one f64: any bits are a valid value, no padding, no pointers.
/// unsafe impl SharedType for Celsius {
///     const TYPE_ID: u64 = multiproc::identity::stable_id("example.Celsius");
/// }
///
/// let q = multiproc::Queue::<Celsius>::anonymous(2)?;
/// q.put(Celsius(21.5)).unwrap();
/// assert_eq!(q.get().unwrap().0, 21.5);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub unsafe trait SharedType: Copy + 'static {
    /// The explicit, stable id of the type's meaning; 0 means none.
    const TYPE_ID: u64 = 0;
}

// SAFETY: `Pod`'s contract is this trait's.
unsafe impl<T: bytemuck::Pod> SharedType for T {}

/// `T` with the type id `ID`: same bytes, same layout, a different identity.
///
/// Use it when two element types have equal layouts but must not be mixed up,
/// or simply to pin a named object to one meaning:
///
/// ```
/// use multiproc::identity::{stable_id, Tagged};
/// use multiproc::{Error, Queue};
///
/// const METERS: u64 = stable_id("example.meters");
/// type Meters = Tagged<f64, METERS>;
///
/// # let name = format!("/doc-tagged-{}", std::process::id());
/// let q = Queue::<Meters>::create(&name, 4)?;
/// q.put(Tagged(3.5)).unwrap();
/// assert_eq!(*q.get().unwrap(), 3.5);
/// // Same size and alignment, no id: refused, naming both ids.
/// let err = Queue::<f64>::open(&name).unwrap_err();
/// assert!(matches!(err, Error::ElementMismatch { .. }), "{err}");
/// # multiproc::Region::unlink(&name)?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Tagged<T, const ID: u64>(pub T);

// SAFETY: `repr(transparent)` over a `SharedType`: the same bytes and validity.
unsafe impl<T: SharedType, const ID: u64> SharedType for Tagged<T, ID> {
    const TYPE_ID: u64 = ID;
}

impl<T, const ID: u64> Tagged<T, ID> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Tagged(value)
    }

    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T, const ID: u64> From<T> for Tagged<T, ID> {
    fn from(value: T) -> Self {
        Tagged(value)
    }
}

impl<T, const ID: u64> Deref for Tagged<T, ID> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T, const ID: u64> DerefMut for Tagged<T, ID> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

const fn fnv(mut h: u64, b: &[u8]) -> u64 {
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// A type id derived from a name of your choosing: FNV-1a 64 of its UTF-8
/// bytes, computable at compile time and by a peer in any language. Pick
/// names that say what the bytes mean and change them when the meaning
/// changes (`"myapp.Stat/v2"`).
///
/// ```
/// use multiproc::identity::stable_id;
/// const STAT: u64 = stable_id("myapp.Stat/v1");
/// assert_eq!(stable_id(""), 0xcbf2_9ce4_8422_2325);
/// assert_ne!(STAT, stable_id("myapp.Stat/v2"));
/// ```
pub const fn stable_id(name: &str) -> u64 {
    fnv(FNV_BASIS, name.as_bytes())
}

/// One element type's identity: size, alignment and type id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ElementId {
    /// `size_of` the element, in bytes.
    pub size: u64,
    /// `align_of` the element, in bytes.
    pub align: u64,
    /// Its [`SharedType::TYPE_ID`]; 0 means none.
    pub type_id: u64,
}

impl ElementId {
    /// The identity of `T`.
    ///
    /// ```
    /// use multiproc::identity::{ElementId, Tagged};
    /// let id = ElementId::of::<Tagged<[u32; 3], 9>>();
    /// assert_eq!((id.size, id.align, id.type_id), (12, 4, 9));
    /// ```
    pub const fn of<T: SharedType>() -> ElementId {
        ElementId {
            size: size_of::<T>() as u64,
            align: align_of::<T>() as u64,
            type_id: T::TYPE_ID,
        }
    }
}

impl fmt::Display for ElementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "size {}, align {}", self.size, self.align)?;
        if self.type_id == 0 {
            write!(f, ", no type id")
        } else {
            write!(f, ", type id {:#x}", self.type_id)
        }
    }
}

/// Up to two element identities (none, an element, or a key and a value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Elements {
    n: usize,
    e: [ElementId; 2],
}

impl Elements {
    /// No elements (locks, byte queues, ...).
    pub(crate) const NONE: Elements = Elements {
        n: 0,
        e: [ElementId {
            size: 0,
            align: 0,
            type_id: 0,
        }; 2],
    };

    /// One element.
    pub(crate) const fn one(a: ElementId) -> Elements {
        Elements {
            n: 1,
            e: [a, Elements::NONE.e[1]],
        }
    }

    /// A key and a value.
    pub(crate) const fn two(k: ElementId, v: ElementId) -> Elements {
        Elements { n: 2, e: [k, v] }
    }

    pub(crate) fn as_slice(&self) -> &[ElementId] {
        &self.e[..self.n.min(2)]
    }

    /// What element `i` of these is called in an error message.
    pub(crate) fn role(&self, i: usize) -> &'static str {
        match (self.n, i) {
            (2, 0) => "key",
            (2, _) => "value",
            _ => "element",
        }
    }
}

/// The fingerprint of a kind holding `elements`, as the [spec](self#spec-region-format-version-4)
/// defines it.
pub(crate) fn fingerprint(kind: &str, elements: &[ElementId]) -> u64 {
    let mut h = fnv(FNV_BASIS, kind.as_bytes());
    h = fnv(h, &[0]);
    h = fnv(h, &(elements.len() as u64).to_le_bytes());
    for e in elements {
        h = fnv(h, &e.size.to_le_bytes());
        h = fnv(h, &e.align.to_le_bytes());
        h = fnv(h, &e.type_id.to_le_bytes());
    }
    h
}

/// Geometry recorded beside the identity: what `open_or_create` compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Queue slots, dict entries, array length, manager arena bytes; else 0.
    pub(crate) capacity: u64,
    /// What `capacity` counts, for error messages.
    pub(crate) what: &'static str,
    /// Bytes per queue slot; else 0.
    pub(crate) slot_size: u64,
}

impl Geometry {
    /// A capacity-like parameter named `what`.
    pub(crate) const fn counted(what: &'static str, capacity: u64) -> Geometry {
        Geometry {
            capacity,
            what,
            slot_size: 0,
        }
    }
}

/// Size of the identity block in a header or manager entry.
pub(crate) const BLOCK_SIZE: usize = 72;

/// The identity block as stored (see the spec): elements and geometry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) elements: Elements,
    pub(crate) capacity: u64,
    pub(crate) slot_size: u64,
}

impl Block {
    pub(crate) fn new(elements: Elements, geo: Geometry) -> Block {
        Block {
            elements,
            capacity: geo.capacity,
            slot_size: geo.slot_size,
        }
    }

    /// The stored bytes.
    pub(crate) fn encode(&self) -> [u8; BLOCK_SIZE] {
        let mut b = [0u8; BLOCK_SIZE];
        b[0..4].copy_from_slice(&(self.elements.n as u32).to_ne_bytes());
        for (i, e) in self.elements.as_slice().iter().enumerate() {
            let at = 8 + 24 * i;
            b[at..at + 8].copy_from_slice(&e.size.to_ne_bytes());
            b[at + 8..at + 16].copy_from_slice(&e.align.to_ne_bytes());
            b[at + 16..at + 24].copy_from_slice(&e.type_id.to_ne_bytes());
        }
        b[56..64].copy_from_slice(&self.capacity.to_ne_bytes());
        b[64..72].copy_from_slice(&self.slot_size.to_ne_bytes());
        b
    }

    /// Parses stored bytes (fewer than `BLOCK_SIZE` read as zeros); `None` if
    /// the element count is impossible.
    pub(crate) fn decode(b: &[u8]) -> Option<Block> {
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            if let Some(s) = b.get(at..at + 8) {
                a.copy_from_slice(s);
            }
            u64::from_ne_bytes(a)
        };
        let mut n4 = [0u8; 4];
        if let Some(s) = b.get(0..4) {
            n4.copy_from_slice(s);
        }
        let n = u32::from_ne_bytes(n4) as usize;
        if n > 2 {
            return None;
        }
        let e = |i: usize| ElementId {
            size: u64_at(8 + 24 * i),
            align: u64_at(16 + 24 * i),
            type_id: u64_at(24 + 24 * i),
        };
        let mut elements = Elements::NONE;
        elements.n = n;
        for i in 0..n {
            elements.e[i] = e(i);
        }
        Some(Block {
            elements,
            capacity: u64_at(56),
            slot_size: u64_at(64),
        })
    }
}

/// What a region (or a manager entry) says it holds, readable without
/// knowing the type: see [`crate::Region::identity`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeIdentity {
    /// The object's kind (`"Queue"`, `"SharedDict"`, `"Lock"`, ...).
    pub kind: String,
    /// Element identities: none, one (queues, values, arrays) or two (a dict's
    /// key and value).
    pub elements: Vec<ElementId>,
    /// Queue slots, dict entries, array length or manager arena bytes; 0 for
    /// kinds without one.
    pub capacity: u64,
    /// Bytes of item per queue slot (a byte queue's `slot_size`); 0 for
    /// other kinds.
    pub slot_size: u64,
    /// The fingerprint stored with it (see the [spec](self#spec-region-format-version-4)).
    pub fingerprint: u64,
}

impl TypeIdentity {
    pub(crate) fn from_block(kind: String, block: &Block, fingerprint: u64) -> TypeIdentity {
        TypeIdentity {
            kind,
            elements: block.elements.as_slice().to_vec(),
            capacity: block.capacity,
            slot_size: block.slot_size,
            fingerprint,
        }
    }
}

impl fmt::Display for TypeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        let roles: &[&str] = if self.elements.len() == 2 {
            &["key", "value"]
        } else {
            &["element"]
        };
        for (e, role) in self.elements.iter().zip(roles) {
            write!(f, "; {role} {e}")?;
        }
        if self.capacity != 0 {
            write!(f, "; capacity {}", self.capacity)?;
        }
        if self.slot_size != 0 {
            write!(f, "; slot size {}", self.slot_size)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Byte views of shared types (what `bytemuck` gives `Pod` types).

/// The bytes of `v`.
#[inline]
pub(crate) fn bytes_of<T: SharedType>(v: &T) -> &[u8] {
    // SAFETY: `SharedType` promises no padding, so all `size_of::<T>()` bytes
    // behind a valid reference are initialized; the slice borrows `v`.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The bytes of `v`, writable.
#[inline]
pub(crate) fn bytes_of_mut<T: SharedType>(v: &mut T) -> &mut [u8] {
    // SAFETY: as in `bytes_of`; any bytes written are a valid `T` (the
    // `SharedType` contract), and the slice borrows `v` exclusively.
    unsafe { std::slice::from_raw_parts_mut((v as *mut T).cast::<u8>(), size_of::<T>()) }
}

/// The bytes of a slice of `T`s.
#[inline]
pub(crate) fn slice_bytes<T: SharedType>(v: &[T]) -> &[u8] {
    // SAFETY: as in `bytes_of`, for `v.len()` contiguous values.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// An all-zero `T`.
#[inline]
pub(crate) fn zeroed<T: SharedType>() -> T {
    // SAFETY: `SharedType` promises every bit pattern, zeros included, is valid.
    unsafe { std::mem::zeroed() }
}

/// A `T` copied from the first `size_of::<T>()` bytes of `b` (any alignment);
/// zeros if `b` is shorter.
#[inline]
pub(crate) fn read_unaligned<T: SharedType>(b: &[u8]) -> T {
    match b.get(..size_of::<T>()) {
        // SAFETY: `s` has `size_of::<T>()` readable bytes; any bytes are a valid
        // `T` (the `SharedType` contract); `read_unaligned` needs no alignment.
        Some(s) => unsafe { s.as_ptr().cast::<T>().read_unaligned() },
        None => zeroed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Stat {
        hits: u64,
        last: u32,
        flags: u32,
    }

    #[test]
    fn pod_types_have_id_zero_and_tagged_ones_their_id() {
        assert_eq!(
            ElementId::of::<Stat>(),
            ElementId {
                size: 16,
                align: 8,
                type_id: 0
            }
        );
        assert_eq!(ElementId::of::<Tagged<Stat, 5>>().type_id, 5);
        assert_eq!(ElementId::of::<Tagged<Stat, 5>>().size, 16);
        // The outer tag wins.
        assert_eq!(ElementId::of::<Tagged<Tagged<u8, 1>, 2>>().type_id, 2);
    }

    #[test]
    fn fingerprint_follows_the_written_spec() {
        // The worked value quoted in the module docs, recomputed by hand from
        // the spec's byte string.
        let mut s = b"Queue\0".to_vec();
        s.extend_from_slice(&1u64.to_le_bytes());
        s.extend_from_slice(&8u64.to_le_bytes());
        s.extend_from_slice(&8u64.to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in s {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        let fp = fingerprint("Queue", &[ElementId::of::<u64>()]);
        assert_eq!(fp, h);
        assert_eq!(fp, 0x0243_ba91_b1e4_ada9);
        // Names are not part of it; ids, sizes and kinds are.
        assert_eq!(fp, fingerprint("Queue", &[ElementId::of::<i64>()]));
        assert_ne!(
            fp,
            fingerprint("Queue", &[ElementId::of::<Tagged<u64, 1>>()])
        );
        assert_ne!(fp, fingerprint("Array", &[ElementId::of::<u64>()]));
        assert_ne!(fp, fingerprint("Queue", &[ElementId::of::<[u32; 2]>()]));
    }

    #[test]
    fn block_round_trips_and_rejects_bad_counts() {
        let b = Block::new(
            Elements::two(ElementId::of::<Stat>(), ElementId::of::<Tagged<u16, 3>>()),
            Geometry {
                capacity: 100,
                what: "capacity",
                slot_size: 7,
            },
        );
        let bytes = b.encode();
        assert_eq!(Block::decode(&bytes), Some(b));
        let mut bad = bytes;
        bad[0] = 3;
        assert_eq!(Block::decode(&bad), None);
        assert_eq!(Block::decode(&[]), Some(Block::default()));
    }

    #[test]
    fn byte_views_match_bytemuck() {
        let s = Stat {
            hits: 1,
            last: 2,
            flags: 3,
        };
        assert_eq!(bytes_of(&s), bytemuck::bytes_of(&s));
        let back: Stat = read_unaligned(bytes_of(&s));
        assert_eq!(back.flags, 3);
        let z: Stat = read_unaligned(&[1, 2]);
        assert_eq!(z.hits, 0);
    }
}
