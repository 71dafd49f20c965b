//! `Queue<T>`: a bounded MPMC queue of plain-old-data items.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::identity::SharedType;

use super::ends::Role;
use super::shared::{QueueCore, QueueKind};
use super::{GetError, PutError, Receiver, Sender};
use crate::identity::{ElementId, Elements};
use crate::loom::Deadline;
use crate::{Error, RegionOptions};

pub(crate) struct Typed<T>(PhantomData<T>);

impl<T: SharedType> QueueKind for Typed<T> {
    const KIND: &'static str = "Queue";

    fn elements() -> Elements {
        Elements::one(ElementId::of::<T>())
    }
}

pub(crate) fn write_item<T: SharedType>(item: &T, buf: &mut [u8]) {
    let src = crate::identity::bytes_of(item);
    if let Some(dst) = buf.get_mut(..src.len()) {
        dst.copy_from_slice(src);
    }
}

pub(crate) fn read_item<T: SharedType>(buf: &[u8]) -> T {
    // The slot is exactly `size_of::<T>()` bytes (validated layout), so this
    // always succeeds; a short slice would yield zeroes rather than panic.
    crate::identity::read_unaligned(buf)
}

/// A bounded multi-producer multi-consumer queue of `T: SharedType` items in shared
/// memory, like Python's `multiprocessing.Queue` without the pipe, the feeder
/// thread and the pickling.
///
/// Items are copied into fixed-size slots. A put that does not happen hands the
/// item back in the error. After [`Queue::shutdown`], getters drain what is
/// left and then get [`GetError::Closed`].
///
/// A `Queue` handle counts as both a sender and a receiver; for crossbeam-style
/// disconnection take [`Queue::sender`] / [`Queue::receiver`] handles (or
/// [`Queue::split`]) and drop the plain handle (see the [module
/// docs](crate::queue#disconnection)).
///
/// The element type's layout is part of the queue's identity: opening a
/// `Queue<u32>` as a `Queue<u64>` is [`Error::ElementMismatch`], naming both
/// sizes. Type names are not: the same `#[repr(C)]` struct defined in two
/// programs opens the same queue (see [`crate::identity`]; give a type an id
/// with [`Tagged`](crate::Tagged) to keep equal layouts apart).
///
/// ```
/// use multiproc::{Queue, GetError, PutError};
///
/// let q: Queue<u64> = Queue::anonymous(2)?;
/// q.put(1).unwrap();
/// q.try_put(2).unwrap();
/// assert_eq!(q.try_put(3), Err(PutError::Full(3)));
/// assert_eq!(q.get(), Ok(1));
/// q.shutdown();
/// assert_eq!(q.put(4), Err(PutError::Closed(4)));
/// assert_eq!(q.get(), Ok(2)); // drained after shutdown
/// assert_eq!(q.get(), Err(GetError::Closed));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Queue<T> {
    core: QueueCore<Typed<T>>,
}

impl<T: SharedType> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: self.core.clone(),
        }
    }
}

impl<T: SharedType> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<T: SharedType> Queue<T> {
    /// A queue of `capacity` slots (any number from 1 to 2^28) in an anonymous
    /// shared mapping, inherited by forked children.
    ///
    /// ```
    /// use multiproc::{PutError, Queue};
    ///
    /// let q: Queue<u32> = Queue::anonymous(3)?; // Python's Queue(3)
    /// assert_eq!(q.put_many(&[1, 2, 3, 4]), 3);
    /// assert_eq!(q.try_put(4), Err(PutError::Full(4)));
    /// assert_eq!(q.get(), Ok(1));
    /// q.try_put(4).unwrap();
    /// assert_eq!((q.len(), q.capacity()), (3, 3));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn anonymous(capacity: usize) -> Result<Queue<T>, Error> {
        Queue::new(None, capacity, RegionOptions::default())
    }

    /// [`Queue::anonymous`] with explicit region options. Each process that
    /// uses a queue holds one of its region's participant slots (128 by
    /// default); a process that finds none free is refused with
    /// [`PutError::NoParticipantSlot`] / [`GetError::NoParticipantSlot`], so
    /// more processes than that need more slots:
    ///
    /// ```
    /// use multiproc::{Queue, RegionOptions};
    ///
    /// let q: Queue<u64> = Queue::anonymous_with(64, RegionOptions::new().participants(1024))?;
    /// q.put(1)?;
    /// assert_eq!(q.get(), Ok(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn anonymous_with(capacity: usize, opts: RegionOptions) -> Result<Queue<T>, Error> {
        Queue::new(None, capacity, opts)
    }

    /// Creates a queue under `name`; fails if the name exists.
    pub fn create(name: &str, capacity: usize) -> Result<Queue<T>, Error> {
        Queue::new(Some(name), capacity, RegionOptions::default())
    }

    /// [`Queue::create`] with explicit region options.
    pub fn create_with(
        name: &str,
        capacity: usize,
        opts: RegionOptions,
    ) -> Result<Queue<T>, Error> {
        Queue::new(Some(name), capacity, opts)
    }

    fn new(name: Option<&str>, capacity: usize, opts: RegionOptions) -> Result<Queue<T>, Error> {
        Queue::new_kind(name, capacity, opts, false)
    }

    pub(crate) fn new_kind(
        name: Option<&str>,
        capacity: usize,
        opts: RegionOptions,
        joinable: bool,
    ) -> Result<Queue<T>, Error> {
        let core = QueueCore::create(name, capacity as u64, size_of::<T>() as u64, joinable, opts)?;
        Ok(Queue { core })
    }

    /// Opens the queue `name`, checking that it holds `T`s.
    ///
    /// Refuses a region file owned by another user or writable by group or
    /// others ([`Error::ForeignOwner`], [`Error::InsecureMode`]); see
    /// [`Queue::open_with`].
    pub fn open(name: &str) -> Result<Queue<T>, Error> {
        Queue::open_kind(name, false, RegionOptions::default())
    }

    /// [`Queue::open`] with the trust options of `opts`
    /// ([`RegionOptions::allow_foreign_owner`],
    /// [`RegionOptions::allow_shared_write`]).
    pub fn open_with(name: &str, opts: RegionOptions) -> Result<Queue<T>, Error> {
        Queue::open_kind(name, false, opts)
    }

    /// In a process started with [`Spawn`](crate::process::Spawn): the
    /// anonymous queue its parent passed with the `index`-th
    /// [`Spawn::share`](crate::process::Spawn::share) call, checked as
    /// [`Queue::open`] checks (type, capacity, layout). An `index` with no
    /// shared region (or one already opened) is [`Error::Io`] (`NotFound`).
    ///
    /// ```no_run
    /// fn child(_: &[u8]) -> i32 {
    ///     let q = multiproc::Queue::<u64>::inherit(0).unwrap();
    ///     q.put(1).unwrap();
    ///     0
    /// }
    /// let q = multiproc::Queue::<u64>::anonymous(8)?;
    /// let mut c = multiproc::process::Spawn::new(child, b"").share(q.region()).start()?;
    /// assert_eq!(q.get()?, 1);
    /// assert!(c.join()?.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inherit(index: usize) -> Result<Queue<T>, Error> {
        Queue::from_core(QueueCore::inherit(index)?, false)
    }

    /// Opens the queue `name`, or creates it with `capacity` slots if the
    /// name does not exist: what a program that may start first, second or
    /// again after a crash calls, instead of `create` then `open` (which
    /// races, and fails with [`Error::AlreadyExists`] after a restart).
    ///
    /// Race-free between any number of concurrent starters: creation is
    /// `O_EXCL`, so exactly one of them creates the queue and the others open
    /// it, waiting (at most 2 s, else [`Error::NotReady`]) for the creator to
    /// finish initializing. The opening side runs every check [`Queue::open`]
    /// runs (owner and mode, kind, element size, alignment and type id), then
    /// compares the capacity ([`Error::CapacityMismatch`]) and the slot size
    /// ([`Error::SlotSizeMismatch`]). [`Region::created_here`](crate::Region::created_here)
    /// tells which side this process was.
    ///
    /// ```
    /// use multiproc::{Error, Queue};
    ///
    /// # let name = format!("/doc-ooc-{}", std::process::id());
    /// let a = Queue::<u64>::open_or_create(&name, 8)?; // creates
    /// let b = Queue::<u64>::open_or_create(&name, 8)?; // opens the same queue
    /// a.put(7).unwrap();
    /// assert_eq!(b.get(), Ok(7));
    /// assert!(a.region().created_here() && !b.region().created_here());
    ///
    /// let e = Queue::<u64>::open_or_create(&name, 16).unwrap_err();
    /// assert_eq!(e.to_string(), "capacity differs: asked for 16, the existing object has 8");
    /// let e = Queue::<[u64; 2]>::open_or_create(&name, 8).unwrap_err();
    /// assert_eq!(
    ///     e.to_string(),
    ///     "element type differs: this program's has size 16, align 8, no type id; \
    ///      the object's has size 8, align 8, no type id"
    /// );
    /// # multiproc::Region::unlink(&name)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Queue<T>, Error> {
        Queue::open_or_create_with(name, capacity, RegionOptions::default())
    }

    /// [`Queue::open_or_create`] with region options: mode and participant
    /// slots if this call creates the queue, trust options if it opens it.
    pub fn open_or_create_with(
        name: &str,
        capacity: usize,
        opts: RegionOptions,
    ) -> Result<Queue<T>, Error> {
        Queue::open_or_create_kind(name, capacity, false, opts)
    }

    pub(crate) fn open_or_create_kind(
        name: &str,
        capacity: usize,
        joinable: bool,
        opts: RegionOptions,
    ) -> Result<Queue<T>, Error> {
        let core = QueueCore::open_or_create(
            name,
            capacity as u64,
            size_of::<T>() as u64,
            joinable,
            opts,
        )?;
        Queue::from_core(core, joinable)
    }

    pub(crate) fn open_kind(
        name: &str,
        joinable: bool,
        opts: RegionOptions,
    ) -> Result<Queue<T>, Error> {
        Queue::from_core(QueueCore::open(name, opts)?, joinable)
    }

    /// Wraps a queue core after checking its slot size and kind.
    pub(crate) fn from_core(core: QueueCore<Typed<T>>, joinable: bool) -> Result<Queue<T>, Error> {
        if core.slot_size() != size_of::<T>() {
            return Err(Error::Corrupted("queue slot size does not match its type"));
        }
        if core.is_joinable() != joinable {
            let (expected, found) = if joinable {
                ("JoinableQueue", "Queue")
            } else {
                ("Queue", "JoinableQueue")
            };
            return Err(Error::TypeMismatch {
                expected: expected.to_owned(),
                found: found.to_owned(),
            });
        }
        Ok(Queue { core })
    }

    pub(crate) fn core(&self) -> &QueueCore<Typed<T>> {
        &self.core
    }

    /// Another handle on this mapping counting as `role` only.
    pub(crate) fn with_role(&self, role: Role) -> Queue<T> {
        Queue {
            core: self.core.with_role(role),
        }
    }

    /// A new sending handle: it counts as a sender (and not as a receiver)
    /// until it is dropped, or its process closes its sending side or dies.
    ///
    /// ```
    /// use multiproc::{GetError, Queue};
    /// let q: Queue<u32> = Queue::anonymous(4)?;
    /// let (tx, rx) = q.split();
    /// tx.put(1).unwrap();
    /// drop(tx); // the last sender
    /// assert_eq!(rx.get(), Ok(1)); // drained first
    /// assert_eq!(rx.get(), Err(GetError::Disconnected));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn sender(&self) -> Sender<Queue<T>> {
        Sender::wrap(self.with_role(Role::Send))
    }

    /// A new receiving handle: it counts as a receiver (and not as a sender)
    /// until it is dropped or its process dies.
    pub fn receiver(&self) -> Receiver<Queue<T>> {
        Receiver::wrap(self.with_role(Role::Recv))
    }

    /// A sender and a receiver for this queue, consuming this handle (which
    /// counted as both).
    pub fn split(self) -> (Sender<Queue<T>>, Receiver<Queue<T>>) {
        (self.sender(), self.receiver())
    }

    /// This process will put no more through this mapping of the queue
    /// (Python's `Queue.close()`): its handles stop counting as senders, and
    /// their puts fail with [`PutError::Closed`]. Other processes, and this
    /// process's gets, are unaffected; once no live process holds an open
    /// sender, receivers drain the queue and then get
    /// [`GetError::Disconnected`]. For a global stop, [`Queue::shutdown`].
    ///
    /// ```
    /// use multiproc::{PutError, Queue};
    /// let q: Queue<u8> = Queue::anonymous(2)?;
    /// q.close();
    /// assert_eq!(q.put(1), Err(PutError::Closed(1)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn close(&self) {
        self.core.close_sending();
    }

    /// Whether this process closed its sending side ([`Queue::close`]).
    pub fn is_closed(&self) -> bool {
        self.core.send_closed()
    }

    /// Whether no live process holds a sender now (then a `get` on the
    /// empty queue returns [`GetError::Disconnected`]). Probes the
    /// participant table: not for a hot loop.
    pub fn senders_gone(&self) -> bool {
        self.core.no_senders()
    }

    /// Whether no live process holds a receiver now (then a `put` on the
    /// full queue returns [`PutError::Disconnected`]).
    pub fn receivers_gone(&self) -> bool {
        self.core.no_receivers()
    }

    fn put_until(&self, item: T, deadline: Option<Deadline>) -> Result<(), PutError<T>> {
        self.core
            .put(deadline, |buf| write_item(&item, buf))
            .map_err(|e| e.replace(item))
    }

    /// Puts `item`, blocking while the queue is full. Fails, handing the item
    /// back, when the queue is shut down or this process closed its sending
    /// side ([`PutError::Closed`]), or when the queue is full and no live
    /// process holds a receiver ([`PutError::Disconnected`]).
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_until(item, None)
    }

    /// Puts `item`, waiting at most `timeout` for a free slot.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_until(item, Some(Deadline::after(timeout)))
    }

    /// Puts `item` if a slot is free now ([`PutError::Full`] otherwise).
    /// [`PutError::Disconnected`] instead of `Full` when no live process holds
    /// a receiver.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.core
            .try_put(|buf| write_item(&item, buf))
            .map_err(|e| e.replace(item))
    }

    /// Takes the oldest item, blocking while the queue is empty. Once the
    /// queue is drained: [`GetError::Closed`] after a [`Queue::shutdown`],
    /// [`GetError::Disconnected`] when no live process holds a sender.
    pub fn get(&self) -> Result<T, GetError> {
        self.core.get(None, read_item::<T>)
    }

    /// Takes the oldest item, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.core
            .get(Some(Deadline::after(timeout)), read_item::<T>)
    }

    /// Takes the oldest item if there is one now ([`GetError::Empty`] otherwise,
    /// [`GetError::Closed`] if shut down and drained, [`GetError::Disconnected`]
    /// if no live process holds a sender and the queue is drained).
    pub fn try_get(&self) -> Result<T, GetError> {
        self.core.try_get(read_item::<T>)
    }

    /// Puts as many items from the front of `items` as fit now, without
    /// blocking, and returns how many. Each batch of up to 64 items costs one
    /// eventcount update instead of one per item. 0 when full or closed.
    pub fn put_many(&self, items: &[T]) -> usize {
        self.core.put_many(items.len(), |j, buf| {
            if let Some(item) = items.get(j) {
                write_item(item, buf);
            }
        })
    }

    /// Takes as many items as are available now, up to `out.len()`, into the
    /// front of `out`, and returns how many. Never blocks.
    pub fn get_many(&self, out: &mut [T]) -> usize {
        self.core.get_many(out.len(), |j, buf| {
            if let Some(slot) = out.get_mut(j) {
                *slot = read_item(buf);
            }
        })
    }

    /// A blocking iterator over received items, crossbeam-channel's `iter`:
    /// each step is a [`Queue::get`], and the iteration ends at the first
    /// error, that is once the queue is drained and shut down
    /// ([`GetError::Closed`]) or no live process holds a sender
    /// ([`GetError::Disconnected`]). Call `get` to tell the two apart.
    ///
    /// A plain `Queue` handle counts as a sender itself, so iterating over one
    /// ends only at a shutdown; iterate over a [`Receiver`](super::Receiver)
    /// to end when the producers are gone:
    ///
    /// ```
    /// use multiproc::Queue;
    ///
    /// let (tx, rx) = Queue::<u32>::anonymous(8)?.split();
    /// for i in 0..3 {
    ///     tx.put(i).unwrap();
    /// }
    /// drop(tx); // the last sender: the receiver drains, then the stream ends
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.get().ok())
    }

    /// A non-blocking iterator over the items there now, crossbeam-channel's
    /// `try_iter`: each step is a [`Queue::try_get`], ending at the first
    /// error (empty, closed or disconnected).
    ///
    /// ```
    /// use multiproc::Queue;
    ///
    /// let q: Queue<u32> = Queue::anonymous(8)?;
    /// q.put_many(&[4, 5, 6]);
    /// assert_eq!(q.try_iter().sum::<u32>(), 15);
    /// assert!(q.is_empty());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_get().ok())
    }

    super::shared::queue_common_methods!("items");
}
