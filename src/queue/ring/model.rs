//! Loom only: a ring with heap slots of one `u64` each, and the operations the
//! models drive (including "claim and die" to model a SIGKILL mid-copy).

use super::{GetFail, PutFail, RingCore, Slots, WaitFail};
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::loom::cell::UnsafeCell;
use crate::park::WaitPolicy;

/// Heap slots for loom.
#[derive(Debug)]
pub struct HeapSlots {
    words: Vec<AtomicU64>,
    data: Vec<UnsafeCell<[u8; 8]>>,
}

impl Slots for HeapSlots {
    fn capacity(&self) -> u64 {
        self.words.len() as u64
    }

    fn lap(&self) -> u64 {
        super::lap_for(self.capacity())
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        &self.words[i % self.words.len()]
    }

    fn write<R>(&self, i: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let n = self.data.len();
        // SAFETY: the caller owns slot `i` (claimed by CAS); loom checks that no
        // other access to this cell races with ours.
        self.data[i % n].with_mut(|p| f(unsafe { &mut *p }))
    }

    fn read<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let n = self.data.len();
        // SAFETY: as in `write`, for reading.
        self.data[i % n].with(|p| f(unsafe { &*p }))
    }
}

/// A ring plus its slots, and live sender/receiver counts standing for
/// the shared end table (one process's entry).
#[derive(Debug)]
pub struct LoomRing {
    core: RingCore,
    slots: HeapSlots,
    senders: AtomicU32,
    receivers: AtomicU32,
}

fn to_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl LoomRing {
    /// A ring of `capacity` u64 slots.
    pub fn new(capacity: u64) -> LoomRing {
        LoomRing {
            core: RingCore::new(capacity, 8, false),
            slots: HeapSlots {
                words: (0..capacity)
                    .map(|i| AtomicU64::new(RingCore::initial_word(i)))
                    .collect(),
                data: (0..capacity).map(|_| UnsafeCell::new([0; 8])).collect(),
            },
            senders: AtomicU32::new(1),
            receivers: AtomicU32::new(1),
        }
    }

    /// The last sender goes away (as `ends::Local::release` does: the
    /// count's RMW, then the eventcount bump).
    pub fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.core.ends_changed(true);
        }
    }

    /// The last receiver goes away.
    pub fn drop_receiver(&self) {
        if self.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.core.ends_changed(false);
        }
    }

    fn no_senders(&self) -> bool {
        // SYNC(ends): Acquire, as `ends::Local::any_live`.
        self.senders.load(Ordering::Acquire) == 0
    }

    fn no_receivers(&self) -> bool {
        self.receivers.load(Ordering::Acquire) == 0
    }

    /// `try_put`.
    pub fn try_put(&self, owner: u16, v: u64) -> Result<(), PutFail> {
        self.core
            .try_put(&self.slots, owner, |b| b.copy_from_slice(&v.to_le_bytes()))
    }

    /// `try_get`.
    pub fn try_get(&self, owner: u16) -> Result<u64, GetFail> {
        self.core.try_get(&self.slots, owner, to_u64)
    }

    /// `try_get` telling a closed and drained ring (`Ok(None)`) from an
    /// empty one, as the queues' `try_get` does.
    pub fn try_get_or_closed(&self, owner: u16) -> Result<Option<u64>, GetFail> {
        self.core
            .try_get_or_closed(&self.slots, owner, to_u64)
            .map(Result::ok)
    }

    /// Blocking put; `dead` says which owners died.
    pub fn put(&self, owner: u16, v: u64, dead: impl Fn(u16) -> bool) -> Result<(), WaitFail> {
        let fill = |b: &mut [u8]| b.copy_from_slice(&v.to_le_bytes());
        self.core.put_wait(
            &self.slots,
            owner,
            WaitPolicy::Park,
            None,
            fill,
            dead,
            || self.no_receivers(),
        )
    }

    /// Blocking put with the spin-then-park policy.
    pub fn put_spinning(&self, owner: u16, v: u64) -> Result<(), WaitFail> {
        let fill = |b: &mut [u8]| b.copy_from_slice(&v.to_le_bytes());
        self.core.put_wait(
            &self.slots,
            owner,
            WaitPolicy::SpinThenPark,
            None,
            fill,
            |_| false,
            || self.no_receivers(),
        )
    }

    /// Blocking get; `dead` says which owners died.
    pub fn get(&self, owner: u16, dead: impl Fn(u16) -> bool) -> Result<u64, WaitFail> {
        self.core.get_wait(
            &self.slots,
            owner,
            WaitPolicy::Park,
            None,
            to_u64,
            dead,
            || self.no_senders(),
        )
    }

    /// Blocking get with the spin-then-park policy.
    pub fn get_spinning(&self, owner: u16) -> Result<u64, WaitFail> {
        self.core.get_wait(
            &self.slots,
            owner,
            WaitPolicy::SpinThenPark,
            None,
            to_u64,
            |_| false,
            || self.no_senders(),
        )
    }

    /// Blocking wait for something to read (or disconnection).
    pub fn wait_readable(&self) -> bool {
        self.core
            .wait_readable(&self.slots, WaitPolicy::Park, None, || self.no_senders())
    }

    /// Batch put of `vs`.
    pub fn put_many(&self, owner: u16, vs: &[u64]) -> Result<usize, PutFail> {
        self.core
            .try_put_many(&self.slots, owner, vs.len(), |j, b| {
                b.copy_from_slice(&vs[j].to_le_bytes())
            })
    }

    /// Batch get into `out`.
    pub fn get_many(&self, owner: u16, out: &mut [u64]) -> usize {
        let n = out.len();
        self.core
            .try_get_many(&self.slots, owner, n, |j, b| out[j] = to_u64(b))
    }

    /// Closes the ring.
    pub fn close(&self) {
        self.core.close();
    }

    /// Claims the tail slot for writing and "dies" (never publishes): the
    /// real claim, [`RingCore::claim_tail`].
    pub fn claim_for_write_and_die(&self, owner: u16) -> bool {
        self.core.claim_tail(&self.slots, owner).is_ok()
    }

    /// Claims the head slot for reading and "dies" (never frees it): the real
    /// claim, [`RingCore::claim_head`].
    pub fn claim_for_read_and_die(&self, owner: u16) -> bool {
        self.core.claim_head(&self.slots, owner).is_ok()
    }

    /// Messages recovered from dead owners.
    pub fn abandoned(&self) -> u64 {
        self.core.stats.0.abandoned.load(Ordering::Relaxed)
    }
}
