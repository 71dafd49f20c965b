//! `BytesQueue`: variable-length byte messages up to a fixed slot size.

use std::fmt;
use std::time::Duration;

use super::ends::Role;
use super::shared::{QueueCore, QueueKind};
use super::{GetError, PutError, Receiver, Sender};
use crate::loom::Deadline;
use crate::{Error, RegionOptions};

pub(crate) struct Bytes;

impl QueueKind for Bytes {
    const KIND: &'static str = "BytesQueue";
    const FRAMING: u64 = LEN as u64;
}

/// Bytes of the length prefix in each slot.
const LEN: usize = 4;
/// The largest slot size (1 GiB).
const MAX_SLOT: usize = 1 << 30;

fn write_msg(msg: &[u8], buf: &mut [u8]) {
    let len = msg.len().min(u32::MAX as usize) as u32;
    if buf.len() < LEN + msg.len() {
        return; // refused earlier by the TooLarge check; never reached
    }
    let (l, rest) = buf.split_at_mut(LEN);
    l.copy_from_slice(&len.to_le_bytes());
    if let Some(dst) = rest.get_mut(..msg.len()) {
        dst.copy_from_slice(msg);
    }
}

/// The message in a slot; the stored length is never trusted beyond the slot.
fn msg_of(buf: &[u8]) -> &[u8] {
    let mut l = [0u8; LEN];
    if let Some(src) = buf.get(..LEN) {
        l.copy_from_slice(src);
    }
    let len = (u32::from_le_bytes(l) as usize).min(buf.len().saturating_sub(LEN));
    buf.get(LEN..LEN + len).unwrap_or(&[])
}

fn copy_into(buf: &[u8], out: &mut [u8]) -> usize {
    let msg = msg_of(buf);
    let n = msg.len().min(out.len());
    if let (Some(dst), Some(src)) = (out.get_mut(..n), msg.get(..n)) {
        dst.copy_from_slice(src);
    }
    n
}

/// A bounded MPMC queue of byte messages, each at most `slot_size` bytes (fixed
/// at creation). An oversize message is refused with [`PutError::TooLarge`] and
/// nothing is written.
///
/// ```
/// use multiproc::{BytesQueue, PutError};
///
/// let q = BytesQueue::anonymous(4, 16)?;
/// q.put(b"hello").unwrap();
/// assert_eq!(q.get().unwrap(), b"hello");
/// let big = [0u8; 17];
/// assert!(matches!(q.put(&big), Err(PutError::TooLarge(_))));
/// let mut buf = [0u8; 16];
/// q.put(b"abc").unwrap();
/// assert_eq!(q.get_into(&mut buf), Ok(3));
/// assert_eq!(&buf[..3], b"abc");
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct BytesQueue {
    core: QueueCore<Bytes>,
}

impl fmt::Debug for BytesQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl BytesQueue {
    /// A queue of `capacity` slots (any number from 1 to 2^28) of `slot_size` bytes
    /// each, in an anonymous shared mapping.
    pub fn anonymous(capacity: usize, slot_size: usize) -> Result<BytesQueue, Error> {
        BytesQueue::new(None, capacity, slot_size, RegionOptions::default())
    }

    /// [`BytesQueue::anonymous`] with explicit region options (more
    /// [participant slots](RegionOptions::participants) for more processes, say).
    pub fn anonymous_with(
        capacity: usize,
        slot_size: usize,
        opts: RegionOptions,
    ) -> Result<BytesQueue, Error> {
        BytesQueue::new(None, capacity, slot_size, opts)
    }

    /// Creates a byte queue under `name`.
    pub fn create(name: &str, capacity: usize, slot_size: usize) -> Result<BytesQueue, Error> {
        BytesQueue::new(Some(name), capacity, slot_size, RegionOptions::default())
    }

    /// [`BytesQueue::create`] with explicit region options.
    pub fn create_with(
        name: &str,
        capacity: usize,
        slot_size: usize,
        opts: RegionOptions,
    ) -> Result<BytesQueue, Error> {
        BytesQueue::new(Some(name), capacity, slot_size, opts)
    }

    pub(crate) fn new(
        name: Option<&str>,
        capacity: usize,
        slot_size: usize,
        opts: RegionOptions,
    ) -> Result<BytesQueue, Error> {
        let payload = BytesQueue::payload_for(slot_size)?;
        let core = QueueCore::create(name, capacity as u64, payload as u64, false, opts)?;
        Ok(BytesQueue { core })
    }

    /// Opens the byte queue `name`, or creates it with `capacity` slots of
    /// `slot_size` bytes; race-free, with the checks of
    /// [`Queue::open_or_create`](crate::Queue::open_or_create) (an existing
    /// queue with another slot size is [`Error::SlotSizeMismatch`]).
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        slot_size: usize,
    ) -> Result<BytesQueue, Error> {
        BytesQueue::open_or_create_with(name, capacity, slot_size, RegionOptions::default())
    }

    /// [`BytesQueue::open_or_create`] with region options.
    pub fn open_or_create_with(
        name: &str,
        capacity: usize,
        slot_size: usize,
        opts: RegionOptions,
    ) -> Result<BytesQueue, Error> {
        let payload = BytesQueue::payload_for(slot_size)?;
        BytesQueue::from_core(QueueCore::open_or_create(
            name,
            capacity as u64,
            payload as u64,
            false,
            opts,
        )?)
    }

    /// Slot payload bytes for messages of up to `slot_size` bytes.
    pub(crate) fn payload_for(slot_size: usize) -> Result<usize, Error> {
        if slot_size == 0 || slot_size > MAX_SLOT {
            return Err(Error::InvalidParameter("slot size must be 1 byte to 1 GiB"));
        }
        Ok(slot_size + LEN)
    }

    /// Opens the byte queue `name`.
    ///
    /// Refuses a region file owned by another user or writable by group or
    /// others ([`Error::ForeignOwner`], [`Error::InsecureMode`]); see
    /// [`BytesQueue::open_with`].
    pub fn open(name: &str) -> Result<BytesQueue, Error> {
        BytesQueue::open_with(name, RegionOptions::default())
    }

    /// [`BytesQueue::open`] with the trust options of `opts`
    /// ([`RegionOptions::allow_foreign_owner`],
    /// [`RegionOptions::allow_shared_write`]).
    pub fn open_with(name: &str, opts: RegionOptions) -> Result<BytesQueue, Error> {
        BytesQueue::from_core(QueueCore::open(name, opts)?)
    }

    /// In a process started with [`Spawn`](crate::process::Spawn): the
    /// anonymous queue its parent passed with the `index`-th
    /// [`Spawn::share`](crate::process::Spawn::share) call, checked as
    /// [`BytesQueue::open`] checks. No region at `index` (or one already
    /// opened): [`Error::Io`] (`NotFound`).
    ///
    /// ```no_run
    /// fn child(_: &[u8]) -> i32 {
    ///     let q = multiproc::BytesQueue::inherit(0).unwrap();
    ///     q.put(b"hi").unwrap();
    ///     0
    /// }
    /// let q = multiproc::BytesQueue::anonymous(8, 64)?;
    /// let mut c = multiproc::process::Spawn::new(child, b"").share(q.region()).start()?;
    /// assert_eq!(q.get()?, b"hi");
    /// assert!(c.join()?.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inherit(index: usize) -> Result<BytesQueue, Error> {
        BytesQueue::from_core(QueueCore::inherit(index)?)
    }

    pub(crate) fn core(&self) -> &QueueCore<Bytes> {
        &self.core
    }

    /// Another handle on this mapping counting as `role` only.
    pub(crate) fn with_role(&self, role: Role) -> BytesQueue {
        BytesQueue {
            core: self.core.with_role(role),
        }
    }

    /// A new sending handle (see [`Queue::sender`](crate::Queue::sender)).
    pub fn sender(&self) -> Sender<BytesQueue> {
        Sender::wrap(self.with_role(Role::Send))
    }

    /// A new receiving handle (see [`Queue::receiver`](crate::Queue::receiver)).
    pub fn receiver(&self) -> Receiver<BytesQueue> {
        Receiver::wrap(self.with_role(Role::Recv))
    }

    /// A handle counting as a sender only, as a plain `BytesQueue` (for pipes).
    pub(crate) fn sender_queue(&self) -> BytesQueue {
        self.with_role(Role::Send)
    }

    /// A handle counting as a receiver only (for pipes).
    pub(crate) fn receiver_queue(&self) -> BytesQueue {
        self.with_role(Role::Recv)
    }

    /// A sender and a receiver, consuming this handle.
    pub fn split(self) -> (Sender<BytesQueue>, Receiver<BytesQueue>) {
        (self.sender(), self.receiver())
    }

    /// This process will put no more through this mapping (Python's
    /// `Queue.close()`; see [`Queue::close`](crate::Queue::close)).
    pub fn close(&self) {
        self.core.close_sending();
    }

    /// Whether this process closed its sending side.
    pub fn is_closed(&self) -> bool {
        self.core.send_closed()
    }

    /// Whether no live process holds a sender now.
    pub fn senders_gone(&self) -> bool {
        self.core.no_senders()
    }

    /// Whether no live process holds a receiver now.
    pub fn receivers_gone(&self) -> bool {
        self.core.no_receivers()
    }

    /// This process will get no more through this mapping (a pipe end's close).
    pub(crate) fn close_receiving(&self) {
        self.core.close_receiving();
    }

    /// Wraps a queue core after checking its slot size.
    pub(crate) fn from_core(core: QueueCore<Bytes>) -> Result<BytesQueue, Error> {
        if core.slot_size() <= LEN {
            return Err(Error::Corrupted("byte queue slot size"));
        }
        Ok(BytesQueue { core })
    }

    /// The longest message the queue holds.
    pub fn slot_size(&self) -> usize {
        self.core.slot_size() - LEN
    }

    fn put_until<'a>(
        &self,
        msg: &'a [u8],
        deadline: Option<Deadline>,
    ) -> Result<(), PutError<&'a [u8]>> {
        if msg.len() > self.slot_size() {
            return Err(PutError::TooLarge(msg));
        }
        self.core
            .put(deadline, |buf| write_msg(msg, buf))
            .map_err(|e| e.replace(msg))
    }

    /// Puts a copy of `msg`, blocking while the queue is full.
    pub fn put<'a>(&self, msg: &'a [u8]) -> Result<(), PutError<&'a [u8]>> {
        self.put_until(msg, None)
    }

    /// Puts a copy of `msg`, waiting at most `timeout`.
    pub fn put_timeout<'a>(
        &self,
        msg: &'a [u8],
        timeout: Duration,
    ) -> Result<(), PutError<&'a [u8]>> {
        self.put_until(msg, Some(Deadline::after(timeout)))
    }

    /// Puts a copy of `msg` if a slot is free now.
    pub fn try_put<'a>(&self, msg: &'a [u8]) -> Result<(), PutError<&'a [u8]>> {
        if msg.len() > self.slot_size() {
            return Err(PutError::TooLarge(msg));
        }
        self.core
            .try_put(|buf| write_msg(msg, buf))
            .map_err(|e| e.replace(msg))
    }

    pub(crate) fn get_until(&self, deadline: Option<Deadline>) -> Result<Vec<u8>, GetError> {
        self.core.get(deadline, |b| msg_of(b).to_vec())
    }

    pub(crate) fn wait_readable(&self, deadline: Option<Deadline>) -> bool {
        self.core.wait_readable(deadline)
    }

    pub(crate) fn send_until<'a>(
        &self,
        msg: &'a [u8],
        deadline: Option<Deadline>,
    ) -> Result<(), PutError<&'a [u8]>> {
        self.put_until(msg, deadline)
    }

    /// Takes the oldest message, blocking while empty.
    pub fn get(&self) -> Result<Vec<u8>, GetError> {
        self.core.get(None, |b| msg_of(b).to_vec())
    }

    /// Takes the oldest message, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        self.core
            .get(Some(Deadline::after(timeout)), |b| msg_of(b).to_vec())
    }

    /// Takes the oldest message if there is one now.
    pub fn try_get(&self) -> Result<Vec<u8>, GetError> {
        self.try_get_with(|b| msg_of(b).to_vec())
    }

    /// `try_get` with `drain` reading the slot; see [`crate::Queue::try_get`].
    fn try_get_with<R>(&self, drain: impl FnMut(&[u8]) -> R) -> Result<R, GetError> {
        self.core.try_get(drain)
    }

    fn check_buf(&self, out: &[u8]) -> Result<(), GetError> {
        if out.len() < self.slot_size() {
            return Err(GetError::BufferTooSmall {
                needed: self.slot_size(),
            });
        }
        Ok(())
    }

    /// Copies the oldest message into `out` (blocking while empty) and returns
    /// its length, without allocating. `out` must hold [`BytesQueue::slot_size`]
    /// bytes ([`GetError::BufferTooSmall`] otherwise, and nothing is taken).
    pub fn get_into(&self, out: &mut [u8]) -> Result<usize, GetError> {
        self.check_buf(out)?;
        self.core.get(None, |b| copy_into(b, out))
    }

    /// [`BytesQueue::get_into`], waiting at most `timeout`.
    pub fn get_into_timeout(&self, out: &mut [u8], timeout: Duration) -> Result<usize, GetError> {
        self.check_buf(out)?;
        self.core
            .get(Some(Deadline::after(timeout)), |b| copy_into(b, out))
    }

    /// [`BytesQueue::get_into`] without waiting.
    pub fn try_get_into(&self, out: &mut [u8]) -> Result<usize, GetError> {
        self.check_buf(out)?;
        self.try_get_with(|b| copy_into(b, out))
    }

    /// A blocking iterator over received messages: each step is a
    /// [`BytesQueue::get`], ending at the first error (shut down and drained,
    /// or disconnected), as [`Queue::iter`](crate::Queue::iter) does.
    pub fn iter(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        std::iter::from_fn(move || self.get().ok())
    }

    /// A non-blocking iterator over the messages there now: each step is a
    /// [`BytesQueue::try_get`], ending at the first error.
    pub fn try_iter(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        std::iter::from_fn(move || self.try_get().ok())
    }

    super::shared::queue_common_methods!("messages");
}
