//! The queue object in a region, and the handle core every queue type shares.
//!
//! ```text
//! payload offset 0   QueueHeader { RingCore, layout fields }
//!                    owners: [AtomicU32; owners_len]   generation of each participant
//!                                                      index that used this queue
//!                    (pad to 8)
//! ends_offset        ends: [AtomicU64; 2 * owners_len] sender/receiver counts per
//!                                                      participant (`ends` module)
//!                    (pad to 128)
//! slots_offset       slot 0: { word: AtomicU64, payload: [u8; payload] } (stride bytes)
//!                    slot 1 ...
//! ```
//!
//! Everything a process reads to compute an address (`capacity`, `stride`,
//! `payload`, `owners_len`, `slots_offset`) is validated on open and then *copied
//! into the handle*: a peer that later scribbles over the header can make the
//! queue misbehave, never make this process index outside its mapping.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::ends::{self, Local, RECV, RegionRef, Role, SEND};
use super::ring::{BATCH, GetFail, MAX_CAPACITY, PutFail, RingCore, Slots, WaitFail, lap_for};
use super::{GetError, PutError, QueueStats};
use crate::Error;
use crate::WaitPolicy;
use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::region::participants::{Liveness, Member};
use crate::region::{Object, Region, RegionOptions, SharedObject};

/// `QueueCore::owner` word: the tag is registered for the epoch.
const REGISTERED: u64 = 0x1_0000;
/// `QueueCore::owner` word: a thread of the epoch is registering.
const REGISTERING: u64 = 0x2_0000;

/// The fixed part of a queue's payload.
#[repr(C)]
#[derive(Debug)]
pub struct QueueHeader {
    pub(crate) ring: RingCore,
    owners_len: u64,
    stride: u64,
    slots_offset: u64,
}

/// Offsets of a queue's header words from the object's start, by name.
pub(crate) fn field_offsets() -> Vec<(&'static str, usize)> {
    use std::mem::offset_of;
    let ring = offset_of!(QueueHeader, ring);
    let mut v: Vec<_> = RingCore::field_offsets()
        .into_iter()
        .map(|(n, o)| (n, ring + o))
        .collect();
    v.push(("owners_len", offset_of!(QueueHeader, owners_len)));
    v.push(("stride", offset_of!(QueueHeader, stride)));
    v.push(("slots_offset", offset_of!(QueueHeader, slots_offset)));
    v
}

/// What a queue is made of; part of its identity on open.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueParams {
    pub(crate) capacity: u64,
    pub(crate) payload: u64,
    pub(crate) participants: u32,
    pub(crate) joinable: bool,
}

impl QueueParams {
    fn new(capacity: u64, payload: u64, joinable: bool, opts: &RegionOptions) -> QueueParams {
        QueueParams {
            capacity,
            payload,
            participants: opts.participant_count(),
            joinable,
        }
    }
}

fn round_up(n: u64, a: u64) -> Option<u64> {
    n.checked_add(a - 1).map(|v| v & !(a - 1))
}

/// Offsets derived from the parameters.
#[derive(Clone, Copy, Debug)]
struct Layout {
    owners_offset: u64,
    ends_offset: u64,
    slots_offset: u64,
    stride: u64,
    total: u64,
}

fn layout(capacity: u64, payload: u64, owners: u64) -> Option<Layout> {
    let owners_offset = round_up(size_of::<QueueHeader>() as u64, 8)?;
    let ends_offset = round_up(owners_offset.checked_add(owners.checked_mul(4)?)?, 8)?;
    let slots_offset = round_up(ends_offset.checked_add(owners.checked_mul(16)?)?, 128)?;
    let stride = round_up(payload.checked_add(8)?, 8)?;
    let total = slots_offset.checked_add(capacity.checked_mul(stride)?)?;
    Some(Layout {
        owners_offset,
        ends_offset,
        slots_offset,
        stride,
        total,
    })
}

/// Checks creation parameters: any capacity from 1 to [`MAX_CAPACITY`].
pub(crate) fn check_capacity(capacity: u64) -> Result<(), Error> {
    if capacity == 0 {
        return Err(Error::InvalidParameter("queue capacity must be at least 1"));
    }
    if capacity > MAX_CAPACITY {
        return Err(Error::InvalidParameter("queue capacity too large"));
    }
    Ok(())
}

/// Marker types naming what a queue region holds, for the header's kind and
/// element identity (a `Queue<u64>` cannot be opened as a `Queue<u32>` or a
/// `BytesQueue`).
pub(crate) trait QueueKind: 'static {
    const KIND: &'static str;
    /// Bytes of each slot's payload that are framing, not message (a byte
    /// queue's length prefix): the recorded slot size leaves them out.
    const FRAMING: u64 = 0;
    /// The element identity (none for byte queues).
    fn elements() -> crate::identity::Elements {
        crate::identity::Elements::NONE
    }
}

/// A queue payload of kind `K` (the type parameter only selects the header
/// identity; the bytes are a `QueueHeader` and what follows it).
#[repr(C)]
pub(crate) struct QueueObject<K> {
    header: QueueHeader,
    _k: PhantomData<fn() -> K>,
}

// SAFETY: repr(C); atomics and immutable integers only, no pointers. `check`
// validates every field used to compute an address against the payload size.
unsafe impl<K: QueueKind> SharedObject for QueueObject<K> {
    const KIND: &'static str = K::KIND;
    type Params = QueueParams;

    fn elements() -> crate::identity::Elements {
        K::elements()
    }

    fn geometry(p: &QueueParams) -> crate::identity::Geometry {
        crate::identity::Geometry {
            capacity: p.capacity,
            what: "capacity",
            slot_size: p.payload.saturating_sub(K::FRAMING),
        }
    }

    fn payload_size(p: &QueueParams) -> Result<usize, Error> {
        check_capacity(p.capacity)?;
        let l = layout(p.capacity, p.payload, u64::from(p.participants))
            .ok_or(Error::InvalidParameter("queue size overflows"))?;
        usize::try_from(l.total).map_err(|_| Error::InvalidParameter("queue size overflows"))
    }

    unsafe fn init(this: *mut Self, p: &QueueParams) -> Result<(), Error> {
        let Layout {
            owners_offset,
            ends_offset,
            slots_offset,
            stride,
            ..
        } = layout(p.capacity, p.payload, u64::from(p.participants))
            .ok_or(Error::InvalidParameter("queue size overflows"))?;
        let base = this.cast::<u8>();
        // SAFETY: the caller guarantees `payload_size(p)` zeroed writable bytes at
        // `this`, aligned for Self; every write below is inside them by `layout`.
        unsafe {
            this.cast::<QueueHeader>().write(QueueHeader {
                ring: RingCore::new(p.capacity, p.payload, p.joinable),
                owners_len: u64::from(p.participants),
                stride,
                slots_offset,
            });
            for i in 0..u64::from(p.participants) {
                base.add((owners_offset + 4 * i) as usize)
                    .cast::<AtomicU32>()
                    .write(AtomicU32::new(0));
            }
            for i in 0..2 * u64::from(p.participants) {
                base.add((ends_offset + 8 * i) as usize)
                    .cast::<AtomicU64>()
                    .write(AtomicU64::new(0));
            }
            for i in 0..p.capacity {
                let w = base
                    .add((slots_offset + i * stride) as usize)
                    .cast::<AtomicU64>();
                w.write(AtomicU64::new(RingCore::initial_word(i)));
            }
        }
        Ok(())
    }

    fn check(&self, payload_size: usize) -> Result<(), Error> {
        validate(&self.header, payload_size).map(|_| ())
    }
}

/// Reads a plain header field once (a peer may be writing it: whatever it holds
/// is then validated, and only the validated copy is ever used).
fn stored(field: &u64) -> u64 {
    // SAFETY: `field` is an aligned `u64` of a live object in the mapping.
    unsafe { std::ptr::read_volatile(field) }
}

/// Reads the layout fields of `h` once each and checks them against the
/// `payload_size` bytes the object owns: the geometry a handle keeps for life.
fn validate(h: &QueueHeader, payload_size: usize) -> Result<Geometry, Error> {
    if payload_size < size_of::<QueueHeader>() {
        return Err(Error::Corrupted("payload smaller than the queue header"));
    }
    let cap = h.ring.stored_capacity();
    let payload = h.ring.stored_payload();
    let owners_len = stored(&h.owners_len);
    let stride = stored(&h.stride);
    let slots_offset = stored(&h.slots_offset);
    if cap == 0 || cap > MAX_CAPACITY {
        return Err(Error::Corrupted("queue capacity"));
    }
    if owners_len > u64::from(crate::region::header::MAX_PARTICIPANTS) {
        return Err(Error::Corrupted("queue owner table"));
    }
    match layout(cap, payload, owners_len) {
        Some(l)
            if l.slots_offset == slots_offset
                && l.stride == stride
                && l.total <= payload_size as u64 =>
        {
            // Every value is now bounded by `payload_size`, a `usize`.
            Ok(Geometry {
                capacity: cap as usize,
                lap: lap_for(cap),
                payload: payload as usize,
                stride: stride as usize,
                owners_offset: l.owners_offset as usize,
                ends_offset: l.ends_offset as usize,
                owners_len: owners_len as usize,
                slots_offset: slots_offset as usize,
            })
        }
        _ => Err(Error::Corrupted("queue layout")),
    }
}

/// Validated, process-local copies of the layout.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// 1 to `MAX_CAPACITY`: never zero, so `capacity - 1` never wraps.
    capacity: usize,
    /// `lap_for(capacity)`.
    lap: u64,
    payload: usize,
    stride: usize,
    owners_offset: usize,
    ends_offset: usize,
    owners_len: usize,
    slots_offset: usize,
}

/// The slot array of a mapped queue.
pub(crate) struct ShmSlots {
    base: *const u8,
    geo: Geometry,
}

impl Slots for ShmSlots {
    #[inline]
    fn capacity(&self) -> u64 {
        self.geo.capacity as u64
    }

    #[inline]
    fn lap(&self) -> u64 {
        self.geo.lap
    }

    #[inline]
    fn word(&self, i: usize) -> &AtomicU64 {
        let i = i.min(self.geo.capacity - 1);
        // Slot `i` (bounded by the validated, process-local capacity) lies inside
        // the payload (`check`); `slots_offset` is 128-aligned, `stride` a multiple
        // of 8; the creator initialized every word before READY.
        // SAFETY: in bounds, aligned and initialized, as just argued.
        unsafe {
            &*self
                .base
                .add(self.geo.slots_offset + i * self.geo.stride)
                .cast::<AtomicU64>()
        }
    }

    #[inline]
    fn write<R>(&self, i: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let i = i.min(self.geo.capacity - 1);
        // The caller owns the slot (BUSY, claimed by CAS): no other process touches
        // these bytes until the Release publish, and other processes hold no Rust
        // references to them.
        // SAFETY: in bounds as in `word`; exclusive for the closure's duration.
        let payload = unsafe {
            std::slice::from_raw_parts_mut(
                self.base
                    .add(self.geo.slots_offset + i * self.geo.stride + 8)
                    .cast_mut(),
                self.geo.payload,
            )
        };
        f(payload)
    }

    #[inline]
    fn read<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let i = i.min(self.geo.capacity - 1);
        // SAFETY: as in `write`; the caller owns the slot for reading.
        let payload = unsafe {
            std::slice::from_raw_parts(
                self.base
                    .add(self.geo.slots_offset + i * self.geo.stride + 8),
                self.geo.payload,
            )
        };
        f(payload)
    }
}

/// Any queue kind: how a spawned process maps the queues it was handed before
/// its entry says their types ([`PreInherited`]). Never created.
pub(crate) struct AnyQueue;

impl QueueKind for AnyQueue {
    const KIND: &'static str = "(any queue)";
}

/// The kinds [`AnyQueue`] stands for.
const QUEUE_KINDS: [&str; 2] = [
    <super::typed::Typed<u8> as QueueKind>::KIND,
    <super::bytes::Bytes as QueueKind>::KIND,
];

/// A queue handed to a spawned process, mapped and counted as one of its
/// ends (sender and receiver) by the spawn hook before the entry runs, as a
/// forked child's inherited handles count from its first instruction: so a
/// parent that drops its own handle right after `start` causes no false
/// `Disconnected`. The entry's `inherit` takes it over, typed; if it never
/// does, it counts until the process exits, as an unused inherited handle
/// of a forked child does.
pub(crate) struct PreInherited {
    core: QueueCore<AnyQueue>,
    /// The kind the header recorded when it was mapped (private: a peer
    /// writing the header later cannot change what the type is checked against).
    kind: String,
}

impl PreInherited {
    /// Maps the region behind `fd` if it holds a queue (any kind, any
    /// element type); `Err` (and nothing joined or counted) otherwise.
    pub(crate) fn open(fd: std::os::fd::BorrowedFd<'_>) -> Result<PreInherited, Error> {
        let (obj, kind) = Region::open_inherited_any::<QueueObject<AnyQueue>>(fd, &QUEUE_KINDS)?;
        Ok(PreInherited {
            core: QueueCore::from_object(obj)?,
            kind,
        })
    }

    /// The region's memfd, for a caller that wants the descriptor instead.
    pub(crate) fn file(&self) -> Option<&std::fs::File> {
        self.core.region().memfd()
    }

    /// Whether it holds a queue of kind `K`: the check an open of `K` makes
    /// (`TypeMismatch` and the like otherwise).
    pub(crate) fn fits<K: QueueKind>(&self) -> Result<(), Error> {
        self.core.region().check_kind::<QueueObject<K>>(&self.kind)
    }

    /// The handle as a queue of kind `K`, which [`Self::fits`] accepted. Its
    /// end count carries over: no second count, no gap.
    fn into_kind<K: QueueKind>(self) -> QueueCore<K> {
        let me = std::mem::ManuallyDrop::new(self.core);
        // SAFETY: each field is read exactly once and `me` is never used or
        // dropped again, so each value has one owner: the new handle.
        let (obj, owner, local) = unsafe {
            (
                std::ptr::read(&me.obj),
                std::ptr::read(&me.owner),
                std::ptr::read(&me.local),
            )
        };
        // SAFETY: `QueueObject<K>` is `repr(C)` and differs from
        // `QueueObject<AnyQueue>` only in a zero-sized marker.
        let obj = unsafe { obj.retype::<QueueObject<K>>() };
        QueueCore {
            obj,
            slots: ShmSlots {
                base: me.slots.base,
                geo: me.slots.geo,
            },
            owner,
            local,
            role: me.role,
            policy: me.policy,
        }
    }
}

/// What [`Local`] needs of a mapping: its region and its ring (to wake).
struct Anchor<K>(Object<QueueObject<K>>);

impl<K: QueueKind> RegionRef for Anchor<K> {
    fn region(&self) -> &Region {
        self.0.region()
    }
}

/// The handle core shared by every queue type: the mapping, the validated
/// geometry, this process's owner id, what the handle counts as (sender,
/// receiver, both) and its wait policy.
pub(crate) struct QueueCore<K> {
    obj: Object<QueueObject<K>>,
    slots: ShmSlots,
    /// `fork_epoch << 32 | REGISTERED | owner` once registered: process-local,
    /// shared by every handle of this mapping, so the tag's recovery runs
    /// once per process and mapping (see `register`).
    owner: Arc<AtomicU64>,
    /// This process's end counts for this mapping, shared by its handles.
    local: Arc<Local>,
    role: Role,
    policy: WaitPolicy,
}

// SAFETY: `ShmSlots` holds a pointer into the mapping that `obj` keeps alive; all
// shared access goes through atomics or owned slots.
unsafe impl<K> Send for QueueCore<K> {}
// SAFETY: as above.
unsafe impl<K> Sync for QueueCore<K> {}

impl<K: QueueKind> fmt::Debug for QueueCore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.slots.geo.capacity)
            .field("slot_size", &self.slots.geo.payload)
            .field("region", self.obj.region())
            .finish()
    }
}

impl<K: QueueKind> Clone for QueueCore<K> {
    fn clone(&self) -> Self {
        self.with_role(self.role)
    }
}

impl<K> Drop for QueueCore<K> {
    fn drop(&mut self) {
        self.local.release(self.role);
    }
}

impl<K: QueueKind> QueueCore<K> {
    /// The handle for a queue object, validating its geometry against the bytes
    /// the object owns (once; the handle keeps the result). It counts as a
    /// sender and a receiver.
    pub(crate) fn from_object(obj: Object<QueueObject<K>>) -> Result<QueueCore<K>, Error> {
        let geo = validate(&obj.get().header, obj.size())?;
        let base = (obj.get() as *const QueueObject<K>).cast::<u8>();
        let table = ends::Table {
            // SAFETY: `ends_offset` lies inside the object's validated bytes
            // (`validate`) and is 8-aligned (`layout`).
            base: unsafe { base.add(geo.ends_offset) }.cast::<AtomicU64>(),
            len: geo.owners_len,
        };
        let waker = Anchor(obj.clone());
        let local = Local::new(
            Arc::new(Anchor(obj.clone())),
            table,
            Box::new(move |role| waker.0.get().header.ring.ends_changed(role == SEND)),
        );
        local.acquire(Role::Both);
        Ok(QueueCore {
            obj,
            slots: ShmSlots { base, geo },
            owner: Arc::new(AtomicU64::new(0)),
            local,
            role: Role::Both,
            policy: WaitPolicy::default(),
        })
    }

    /// Another handle on the same mapping counting as `role`. The geometry
    /// is copied, never re-read: a peer that scribbled over the header since
    /// this handle was made cannot change what the new one indexes.
    pub(crate) fn with_role(&self, role: Role) -> QueueCore<K> {
        self.local.acquire(role);
        QueueCore {
            obj: self.obj.clone(),
            slots: ShmSlots {
                base: self.slots.base,
                geo: self.slots.geo,
            },
            owner: self.owner.clone(),
            local: self.local.clone(),
            role,
            policy: self.policy,
        }
    }

    pub(crate) fn set_policy(&mut self, policy: WaitPolicy) {
        self.policy = policy;
    }

    pub(crate) fn policy(&self) -> WaitPolicy {
        self.policy
    }

    /// This process will put no more through this mapping (Python's
    /// `Queue.close`): its handles stop counting as senders and refuse puts.
    pub(crate) fn close_sending(&self) {
        self.local.close(SEND);
    }

    /// This process will get no more through this mapping.
    pub(crate) fn close_receiving(&self) {
        self.local.close(RECV);
    }

    /// Whether this process closed its sending side of this mapping.
    #[inline]
    pub(crate) fn send_closed(&self) -> bool {
        self.local.closed(SEND)
    }

    /// Whether this process closed its receiving side of this mapping.
    #[inline]
    pub(crate) fn recv_closed(&self) -> bool {
        self.local.closed(RECV)
    }

    /// Whether no live process holds a sender (see the `ends` module).
    pub(crate) fn no_senders(&self) -> bool {
        !self.local.any_live(SEND)
    }

    /// Whether no live process holds a receiver.
    pub(crate) fn no_receivers(&self) -> bool {
        !self.local.any_live(RECV)
    }

    pub(crate) fn create(
        name: Option<&str>,
        capacity: u64,
        payload: u64,
        joinable: bool,
        opts: RegionOptions,
    ) -> Result<QueueCore<K>, Error> {
        let params = QueueParams::new(capacity, payload, joinable, &opts);
        QueueCore::from_object(Region::create_object(name, opts, &params)?)
    }

    /// Opens the queue `name` or creates it with these parameters (see
    /// `Region::open_or_create_object`).
    pub(crate) fn open_or_create(
        name: &str,
        capacity: u64,
        payload: u64,
        joinable: bool,
        opts: RegionOptions,
    ) -> Result<QueueCore<K>, Error> {
        let params = QueueParams::new(capacity, payload, joinable, &opts);
        QueueCore::from_object(Region::open_or_create_object(name, opts, &params)?)
    }

    pub(crate) fn open(name: &str, opts: RegionOptions) -> Result<QueueCore<K>, Error> {
        QueueCore::from_object(Region::open_object_with(name, opts)?)
    }

    /// The queue shared with this spawned process at `index`
    /// ([`crate::process::Spawn::share`]): the handle the spawn hook made
    /// before the entry ran ([`PreInherited`]), now typed, or else a fresh
    /// mapping of the descriptor.
    pub(crate) fn inherit(index: usize) -> Result<QueueCore<K>, Error> {
        match crate::process::take_inherited_queue(index, PreInherited::fits::<K>) {
            Some(pre) => Ok(pre?.into_kind()),
            None => QueueCore::from_object(Region::inherit_object(index)?),
        }
    }

    fn ring(&self) -> &RingCore {
        &self.obj.get().header.ring
    }

    pub(crate) fn region(&self) -> &Region {
        self.obj.region()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.geo.capacity
    }

    pub(crate) fn slot_size(&self) -> usize {
        self.slots.geo.payload
    }

    fn owners(&self, index: usize) -> Option<&AtomicU32> {
        if index >= self.slots.geo.owners_len {
            return None;
        }
        // SAFETY: `index < owners_len`; the owner table lies inside the payload
        // (validated layout) and is 4-aligned.
        Some(unsafe {
            &*self
                .slots
                .base
                .add(self.slots.geo.owners_offset + 4 * index)
                .cast::<AtomicU32>()
        })
    }

    /// This process's owner id in the slot words (participant index + 1), joining
    /// and registering on first use. 0 if the participant table is full (then
    /// nothing may be claimed: [`Self::claimant`]).
    #[inline]
    pub(crate) fn owner(&self) -> u16 {
        // The cached epoch, without the fork hook's registration check: a
        // registered tag was written by `register`, which registered the hook
        // first (in this process or in an ancestor, whose hook fork copied),
        // so the epoch it is compared with is current. Anything else takes
        // the slow path, which registers it.
        let epoch = u64::from(crate::sys::process::fork_epoch_cached());
        // Acquire: pairs with the Release that published the registration, so
        // its recovery of the tag's old slots happened before our claims.
        let cached = self.owner.load(Ordering::Acquire);
        if cached >> 32 == epoch && cached & REGISTERED != 0 {
            return cached as u16;
        }
        self.register(u64::from(crate::sys::process::fork_epoch()))
    }

    /// Registers this process (fork epoch `epoch`) as the owner tag of its
    /// participant index in this mapping, once for all its handles.
    ///
    /// Busy slots tagged with our index may belong to the previous (dead or
    /// gone) holder of this participant slot: they are recovered before the
    /// tag starts meaning us. Exactly one thread per process and mapping does
    /// that, and every other thread waits until it is done: a second recovery
    /// running while the first thread already claims with the tag would take
    /// a live claim for a dead one (and, since a claimant settles its slot with
    /// a plain store, corrupt the slot). A registration left half done by a
    /// fork (another epoch) is simply started again by the child.
    #[cold]
    fn register(&self, epoch: u64) -> u16 {
        loop {
            let cur = self.owner.load(Ordering::Acquire);
            if cur >> 32 == epoch {
                if cur & REGISTERED != 0 {
                    return cur as u16;
                }
                // Another thread of this process is registering: it does a
                // bounded amount of work (the scan is capped by the capacity).
                std::thread::yield_now();
                continue;
            }
            if self
                .owner
                .compare_exchange(
                    cur,
                    epoch << 32 | REGISTERING,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                break;
            }
        }
        let owner = match self.obj.region().member() {
            Some(m) if m.index < 0xffff => {
                let owner = (m.index + 1) as u16;
                if let Some(gen_word) = self.owners(m.index as usize) {
                    if gen_word.load(Ordering::Acquire) != m.generation {
                        self.ring().recover_all(&self.slots, |o| o == owner);
                        gen_word.store(m.generation, Ordering::Release);
                    }
                    owner
                } else {
                    0
                }
            }
            _ => 0,
        };
        if owner == 0 {
            // No participant slot: nothing is cached, so the next operation
            // tries again (a slot may have been freed meanwhile).
            self.owner.store(0, Ordering::Release);
            return 0;
        }
        // Release: publishes the recovery to every handle's `owner` Acquire.
        self.owner.store(
            epoch << 32 | REGISTERED | u64::from(owner),
            Ordering::Release,
        );
        owner
    }

    /// [`Self::owner`], or `None` when this process has no participant slot.
    ///
    /// A slot word claimed with no owner could not be recovered if this
    /// process died holding it: the queue would stay wedged at that slot for
    /// every survivor. So a process the participant table has no room for is
    /// refused ([`PutError::NoParticipantSlot`], [`GetError::NoParticipantSlot`])
    /// rather than let in unrecoverably.
    #[inline]
    fn claimant(&self) -> Option<u16> {
        match self.owner() {
            0 => None,
            o => Some(o),
        }
    }

    /// Whether the process that tagged a slot with `owner` is gone.
    pub(crate) fn owner_dead(&self, owner: u16) -> bool {
        if owner == 0 {
            return false;
        }
        let index = u32::from(owner) - 1;
        let Some(gen_word) = self.owners(index as usize) else {
            return false;
        };
        let generation = gen_word.load(Ordering::Acquire);
        if generation == 0 {
            return false;
        }
        // Gone: left normally or the slot was reused, so whoever tagged the slot
        // cannot finish it either.
        matches!(
            self.obj.region().probe(Member { index, generation }),
            Liveness::Dead | Liveness::Gone
        )
    }

    /// Puts one message, written by `fill` into the slot, if a slot is free now.
    #[inline]
    pub(crate) fn try_put(&self, fill: impl FnOnce(&mut [u8])) -> Result<(), PutError<()>> {
        if self.send_closed() {
            return Err(PutError::Closed(()));
        }
        let Some(owner) = self.claimant() else {
            return Err(PutError::NoParticipantSlot(()));
        };
        match self.ring().try_put(&self.slots, owner, fill) {
            Ok(()) => Ok(()),
            Err(PutFail::Full(_)) if self.no_receivers() => Err(PutError::Disconnected(())),
            Err(PutFail::Full(_)) => Err(PutError::Full(())),
            Err(PutFail::Closed) => Err(PutError::Closed(())),
        }
    }

    /// Puts one message, waiting while the queue is full until `deadline`
    /// (forever if `None`), with this handle's wait policy.
    pub(crate) fn put(
        &self,
        deadline: Option<Deadline>,
        fill: impl Fn(&mut [u8]),
    ) -> Result<(), PutError<()>> {
        if self.send_closed() {
            return Err(PutError::Closed(()));
        }
        let Some(owner) = self.claimant() else {
            return Err(PutError::NoParticipantSlot(()));
        };
        // A close by this process while the put waits ends the wait as the
        // loss of the last receiver does (`close` wakes this side too); the
        // outcome is then `Closed`.
        self.ring()
            .put_wait(
                &self.slots,
                owner,
                self.policy,
                deadline,
                fill,
                |o| self.owner_dead(o),
                || self.send_closed() || self.no_receivers(),
            )
            .map_err(|e| match e {
                WaitFail::Timeout => PutError::Timeout(()),
                WaitFail::Closed => PutError::Closed(()),
                WaitFail::Disconnected if self.send_closed() => PutError::Closed(()),
                WaitFail::Disconnected => PutError::Disconnected(()),
            })
    }

    /// Takes the oldest message, read by `drain` from its slot, if there is one
    /// now; tells a shut-down and drained queue (`Closed`) and a drained one
    /// with no live sender (`Disconnected`) from an empty one.
    #[inline]
    pub(crate) fn try_get<R>(&self, mut drain: impl FnMut(&[u8]) -> R) -> Result<R, GetError> {
        if self.recv_closed() {
            return Err(GetError::Closed);
        }
        let Some(owner) = self.claimant() else {
            return Err(GetError::NoParticipantSlot);
        };
        let ring = self.ring();
        match ring.try_get_or_closed(&self.slots, owner, &mut drain) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(())) => Err(GetError::Closed),
            Err(GetFail::Empty(None)) if self.no_senders() => {
                // SYNC(ends): look once more after reading the counts.
                match ring.try_get(&self.slots, owner, &mut drain) {
                    Ok(r) => Ok(r),
                    Err(GetFail::Empty(None)) => Err(GetError::Disconnected),
                    Err(GetFail::Empty(Some(_))) => Err(GetError::Empty),
                }
            }
            Err(GetFail::Empty(_)) => Err(GetError::Empty),
        }
    }

    /// Takes the oldest message, waiting while the queue is empty until
    /// `deadline` (forever if `None`).
    pub(crate) fn get<R>(
        &self,
        deadline: Option<Deadline>,
        drain: impl FnMut(&[u8]) -> R,
    ) -> Result<R, GetError> {
        if self.recv_closed() {
            return Err(GetError::Closed);
        }
        let Some(owner) = self.claimant() else {
            return Err(GetError::NoParticipantSlot);
        };
        // As in `put`: a close of this process's receiving side ends the
        // wait (a get racing it may still take an item that is there).
        self.ring()
            .get_wait(
                &self.slots,
                owner,
                self.policy,
                deadline,
                drain,
                |o| self.owner_dead(o),
                || self.recv_closed() || self.no_senders(),
            )
            .map_err(|e| match e {
                WaitFail::Timeout => GetError::Timeout,
                WaitFail::Closed => GetError::Closed,
                WaitFail::Disconnected if self.recv_closed() => GetError::Closed,
                WaitFail::Disconnected => GetError::Disconnected,
            })
    }

    /// Puts as many of `n` messages as fit now, message `j` written by
    /// `fill(j, ..)`, in batches of up to [`BATCH`] (one eventcount RMW each);
    /// returns how many (messages `0..k`). 0 when full or closed, or when this
    /// process has no participant slot ([`Self::claimant`]).
    pub(crate) fn put_many(&self, n: usize, fill: impl Fn(usize, &mut [u8])) -> usize {
        if self.send_closed() {
            return 0;
        }
        let Some(owner) = self.claimant() else {
            return 0;
        };
        let mut done = 0;
        while done < n {
            let batch = (n - done).min(BATCH);
            match self
                .ring()
                .try_put_many(&self.slots, owner, batch, |j, buf| fill(done + j, buf))
            {
                Ok(k) if k == batch => done += k,
                Ok(k) => return done + k,
                Err(_) => break,
            }
        }
        done
    }

    /// Takes as many as `n` messages as are there now, message `j` read by
    /// `drain(j, ..)`, in batches of up to [`BATCH`]; returns how many (0 also
    /// when this process has no participant slot: [`Self::claimant`]).
    pub(crate) fn get_many(&self, n: usize, mut drain: impl FnMut(usize, &[u8])) -> usize {
        if self.recv_closed() {
            return 0;
        }
        let Some(owner) = self.claimant() else {
            return 0;
        };
        let mut done = 0;
        while done < n {
            let batch = (n - done).min(BATCH);
            let k = self
                .ring()
                .try_get_many(&self.slots, owner, batch, |j, buf| drain(done + j, buf));
            done += k;
            if k < batch {
                break;
            }
        }
        done
    }

    /// Waits until an item can be taken, the queue is shut down or no sender
    /// is left, or `deadline`; takes nothing. Returns whether it is readable
    /// (or will never be).
    pub(crate) fn wait_readable(&self, deadline: Option<Deadline>) -> bool {
        self.ring()
            .wait_readable(&self.slots, self.policy, deadline, || {
                self.recv_closed() || self.no_senders()
            })
    }

    /// Number of messages now (approximate while operations are in flight,
    /// never above the capacity).
    pub(crate) fn len(&self) -> usize {
        self.ring().len(&self.slots) as usize
    }

    /// Shuts the queue down for every process (see `queue_common_methods`).
    pub(crate) fn shutdown(&self) {
        self.ring().close();
    }

    /// Whether the queue was shut down (by any process).
    pub(crate) fn is_shutdown(&self) -> bool {
        self.ring().is_closed()
    }

    /// Whether the queue counts tasks (a `JoinableQueue`).
    pub(crate) fn is_joinable(&self) -> bool {
        self.ring().is_joinable()
    }

    /// Marks one task done; `false` (and no change) if none is unfinished.
    pub(crate) fn task_done(&self) -> bool {
        self.ring().task_done()
    }

    /// Tasks put and not yet done.
    pub(crate) fn unfinished(&self) -> u64 {
        self.ring().unfinished()
    }

    /// Waits until every task is done or `deadline` (forever if `None`);
    /// returns whether all are done.
    pub(crate) fn join(&self, deadline: Option<Deadline>) -> bool {
        match deadline {
            Some(_) => self.ring().join_wait(self.policy, deadline),
            None => {
                while !self.ring().join_wait(self.policy, None) {}
                true
            }
        }
    }

    /// Fuzzing and tests: overwrites the queue's shared state with `data`, as
    /// a peer scribbling over the region would. `data` is read as 8-byte
    /// little-endian words (missing bytes are zero) assigned in turn to the
    /// ring's words (tail, head, `not_empty`, `not_full`, the stored capacity,
    /// payload size, owner-table length, stride and slots offset, the task
    /// counters and `abandoned`), then to every slot word, then to every owner
    /// generation word, then to every sender/receiver count; what is left is copied over the slots' payload bytes.
    /// The handle's validated geometry is what bounds every write.
    pub(crate) fn fuzz_scribble(&self, data: &[u8]) {
        let off = |name: &str| {
            field_offsets()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, o)| o)
        };
        let tasks = off("tasks");
        // (offset from the object's start, bytes): every field a peer can reach.
        let mut fields: Vec<(usize, usize)> = vec![
            (off("tail"), 8),
            (off("head"), 8),
            (off("not_empty"), 4),
            (off("not_full"), 4),
            (off("capacity"), 8),
            (off("payload"), 8),
            (off("owners_len"), 8),
            (off("stride"), 8),
            (off("slots_offset"), 8),
            (tasks, 8),
            (tasks + 8, 4),
            (tasks + 12, 4),
            (off("stats"), 8),
        ];
        let g = self.slots.geo;
        fields.extend((0..g.capacity).map(|i| (g.slots_offset + i * g.stride, 8)));
        fields.extend((0..g.owners_len).map(|i| (g.owners_offset + 4 * i, 4)));
        fields.extend((0..2 * g.owners_len).map(|i| (g.ends_offset + 8 * i, 8)));
        let mut i = 0;
        for &(at, n) in &fields {
            if i >= data.len() {
                return;
            }
            let w = crate::words::word_of(&data[i..], 0).to_le_bytes();
            i += 8;
            // SAFETY: `at..at + n` is a header field or a slot/owner word inside
            // the object's validated bytes; this is the only thread using them.
            unsafe {
                std::ptr::copy_nonoverlapping(w.as_ptr(), self.slots.base.add(at).cast_mut(), n)
            };
        }
        let rest = data.get(i..).unwrap_or_default();
        let mut rest = rest.chunks(g.payload);
        for slot in 0..g.capacity {
            let Some(bytes) = rest.next() else { return };
            // SAFETY: a slot's payload (`payload` bytes after its word) lies in
            // the validated slot array; `bytes.len() <= payload`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.slots
                        .base
                        .add(g.slots_offset + slot * g.stride + 8)
                        .cast_mut(),
                    bytes.len(),
                )
            };
        }
    }

    /// Fuzzing: a copy of the object's bytes (header, owner table, slots).
    pub(crate) fn fuzz_snapshot(&self) -> Vec<u8> {
        let n = self.obj.size();
        let mut v = vec![0u8; n];
        // SAFETY: the object owns `n` bytes from `base` (validated); plain copy.
        unsafe { std::ptr::copy_nonoverlapping(self.slots.base, v.as_mut_ptr(), n) };
        v
    }

    /// Fuzzing: puts back bytes taken by `fuzz_snapshot` (this thread is the
    /// only user of the queue).
    pub(crate) fn fuzz_restore(&self, snap: &[u8]) {
        let n = snap.len().min(self.obj.size());
        // SAFETY: as in `fuzz_snapshot`; nobody else uses these bytes now.
        unsafe { std::ptr::copy_nonoverlapping(snap.as_ptr(), self.slots.base.cast_mut(), n) };
    }

    /// Recovers every slot held by a dead process; returns how many.
    pub(crate) fn recover(&self) -> u64 {
        self.ring().recover_all(&self.slots, |o| self.owner_dead(o))
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let s = &self.ring().stats.0;
        QueueStats {
            capacity: self.capacity() as u64,
            len: self.ring().len(&self.slots),
            abandoned: s.abandoned.load(Ordering::Relaxed),
            dead_writers: s.dead_writers.load(Ordering::Relaxed),
            dead_readers: s.dead_readers.load(Ordering::Relaxed),
        }
    }
}

/// The inspection and shutdown methods every queue handle has, delegated to its
/// `core: QueueCore<_>` field. `$what` names what the queue holds in the docs.
macro_rules! queue_common_methods {
    ($what:literal) => {
        #[doc = concat!("Number of ", $what, " in the queue now (approximate while operations are in flight).")]
        pub fn len(&self) -> usize {
            self.core.len()
        }

        #[doc = concat!("Whether the queue holds no ", $what, " now.")]
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Whether every slot is taken now.
        pub fn is_full(&self) -> bool {
            self.len() >= self.capacity()
        }

        /// Number of slots.
        pub fn capacity(&self) -> usize {
            self.core.capacity()
        }

        /// Shuts the queue down for every process (Python 3.13's
        /// `Queue.shutdown()`): puts fail with
        /// [`PutError::Closed`](crate::PutError::Closed); gets drain what is
        /// left, then fail with [`GetError::Closed`](crate::GetError::Closed).
        /// Wakes every waiter. Permanent.
        pub fn shutdown(&self) {
            self.core.shutdown();
        }

        /// Whether the queue was shut down (by any process).
        pub fn is_shutdown(&self) -> bool {
            self.core.is_shutdown()
        }

        /// This handle with another [`WaitPolicy`](crate::WaitPolicy) for its
        /// blocking calls (clones made from it inherit it).
        pub fn with_wait_policy(mut self, policy: crate::WaitPolicy) -> Self {
            self.core.set_policy(policy);
            self
        }

        /// The [`WaitPolicy`](crate::WaitPolicy) of this handle's blocking calls.
        pub fn wait_policy(&self) -> crate::WaitPolicy {
            self.core.policy()
        }

        #[doc = concat!("Counters, including ", $what, " lost to crashed processes.")]
        pub fn stats(&self) -> crate::QueueStats {
            self.core.stats()
        }

        /// Recovers every slot held by a process that died mid-copy (normally
        /// done on demand by blocked callers); returns how many were recovered.
        pub fn recover(&self) -> u64 {
            self.core.recover()
        }

        /// The region holding the queue.
        pub fn region(&self) -> &crate::Region {
            self.core.region()
        }
    };
}
pub(crate) use queue_common_methods;
