//! Queues in shared memory: the process-shared replacement for Python's
//! pipe-based `multiprocessing.Queue`.
//!
//! | type | payload | Python |
//! |---|---|---|
//! | [`Queue<T>`] | any `T: Pod`, copied into a slot | `Queue` |
//! | [`BytesQueue`] | byte messages up to a slot size fixed at creation | `Queue` of `bytes` |
//! | [`JoinableQueue<T>`] | as `Queue<T>`, plus `task_done`/`join` | `JoinableQueue` |
//! | [`Pipe`] | two connected duplex ends over byte rings | `Pipe()` |
//!
//! All are one lock-free MPMC ring ([`ring`](self) module doc): a put or get with
//! nobody asleep is a handful of atomic operations and no syscall; blocked callers
//! wait on the crate's one wait layer (spin briefly, then park on a shared futex,
//! as the handle's [`WaitPolicy`](crate::WaitPolicy) says; `with_wait_policy` on
//! every queue handle and pipe end).
//!
//! ## Disconnection
//!
//! crossbeam-channel's rule, across processes. Every handle counts as a
//! *sender*, a *receiver* or both, in shared memory, per participant process:
//!
//! | handle | counts as |
//! |---|---|
//! | [`Queue`], [`BytesQueue`], [`JoinableQueue`], `SerdeQueue` (and their clones) | sender and receiver |
//! | [`Sender`] (`q.sender()`, `q.split().0`) | sender |
//! | [`Receiver`] (`q.receiver()`, `q.split().1`) | receiver |
//! | [`PipeEnd`] | sender toward the other end, receiver from it |
//!
//! - A `get` on an empty queue with no live sender returns
//!   [`GetError::Disconnected`] (after everything already put was taken).
//! - A `put` on a full queue with no live receiver returns
//!   [`PutError::Disconnected`] with the item. A put that finds room succeeds
//!   whatever the receivers: the item waits in shared memory (a named queue
//!   may be opened by a receiver later). A [`PipeEnd`]'s `send` is the
//!   exception, as Python's `BrokenPipeError` is: an anonymous pipe's end
//!   cannot be opened again, so it fails at once when no live process holds
//!   the other end.
//! - A handle stops counting when it is dropped, when its process closes that
//!   side ([`Queue::close`], [`PipeEnd::close`]), or when its process exits or
//!   is killed: the process's counts are kept under its participant
//!   membership and are discounted as soon as the participant table says it
//!   is dead or gone. A blocked caller is woken at once by the last drop or
//!   close in a process, and notices a dead process within about 100 ms
//!   (the wait layer's probe).
//! - Because a plain handle counts as both, code written against Python's
//!   `multiprocessing.Queue` never sees `Disconnected` while it holds its own
//!   handle: a queue it holds is never "disconnected" from itself. To get
//!   disconnection, each process keeps only the role it uses.
//!
//! Python's names: [`Queue::close`] is Python's `Queue.close()`, "this
//! process will put no more" (its handles of that queue stop counting as
//! senders and refuse puts); [`Queue::shutdown`] is Python 3.13's
//! `Queue.shutdown()`, global and permanent (every put fails with
//! [`PutError::Closed`], gets drain and then fail with [`GetError::Closed`]).
//!
//! ### `fork`: drop what you do not use
//!
//! A forked child inherits a copy of every handle, and each copy counts (as
//! Python's child inherits the pipe's file descriptors): the crate's
//! [`fork`](crate::process::fork) publishes the child's inherited counts
//! before it returns in the parent, so a parent that drops its copy right
//! after forking never makes a receiver see a false disconnection (a child
//! started with [`Spawn`](crate::process::Spawn) counts for the queues it was
//! handed before its entry runs, and `start` returns after that). So, as
//! Python's docs advise for `Pipe`, each process drops the ends it does not
//! use: a closure that *moves* an end into the child drops the parent's copy
//! when `fork` returns; a copy the child only borrowed it closes
//! ([`Queue::close`] for a sending side, `Receiver::close` for a receiving one,
//! [`PipeEnd::close`]).
//!
//! ```no_run
//! use multiproc::{GetError, Queue};
//! let (tx, rx) = Queue::<u64>::anonymous(64)?.split();
//! let rx_copy = &rx;
//! let worker = multiproc::process::fork(move || {
//!     // The child holds `tx` (moved in) and a copy of `rx` it never uses:
//!     // that copy counts as a receiver until the child exits, unless the
//!     // child closes it (a borrowed copy cannot be dropped).
//!     rx_copy.close();
//!     for i in 0..10 {
//!         if tx.put(i).is_err() {
//!             return 1;
//!         }
//!     }
//!     0
//! })?; // here the parent's `tx` is dropped: the child is the only sender
//! let mut got = Vec::new();
//! loop {
//!     match rx.get() {
//!         Ok(v) => got.push(v),
//!         // The child exited (or was killed) and everything it put was taken.
//!         Err(GetError::Disconnected) => break,
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! assert_eq!(got.len(), 10);
//! worker.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A child made by a raw `libc::fork` (not the crate's) starts counting its
//! inherited handles only when it first makes, clones, drops or closes a
//! handle of that queue: until then its copies do not keep peers connected.
//!
//! ### Trust
//!
//! The counts are shared words like any other: a peer can make them say
//! "alive" (then a blocked caller keeps waiting in bounded slices, as for a
//! live peer that never sends) or "gone" (then the caller gets
//! `Disconnected` early); it cannot make this process index outside the
//! queue's validated table or wait unboundedly on a slice. Counts are kept
//! per participant, so a killed process leaves only entries stamped with its
//! own membership, never a global counter off by one. A process that cannot
//! join the region's participant table (full) does not count at all: a
//! getter elsewhere may then report `Disconnected` while that process still
//! puts, and what it puts afterwards sits unread. Size the table for every
//! process that uses the queue ([`RegionOptions::participants`](crate::RegionOptions::participants),
//! default [`DEFAULT_PARTICIPANTS`](crate::region::DEFAULT_PARTICIPANTS)).
//!
//! ## Delivery after a crash
//!
//! Delivery is **at-most-once** when a process dies, and the queue itself loses
//! at most one message per killed process: a producer killed between claiming a
//! slot and publishing it loses that message (survivors poison and skip the
//! slot); a consumer killed while copying a message out of its slot loses that
//! message (survivors free the slot). Those are the losses the queue can see,
//! and exactly those are counted in [`QueueStats::abandoned`]. Nothing is
//! delivered twice. A stuck slot is recovered by the next blocking `put`/`get`
//! that waits on it, or by [`Queue::recover`].
//!
//! What the queue cannot see is a message a consumer had already *taken*: once
//! `get` returned, the item is the consumer's, and if the consumer is killed
//! before it finished with it, the item is gone without trace in the queue.
//! Under random kills of busy consumers most lost items are of this kind (in
//! runs of 1,000 kills, about ten times as many as `abandoned` counted), so
//! `abandoned` is a lower bound on what an application lost, not the total.
//!
//! A program that needs **at-least-once** delivery keeps the record of
//! outstanding work outside the item's trip through the queue and acknowledges
//! completion explicitly:
//!
//! - Record each job before putting it (for example `jobs: SharedDict<JobId,
//!   Job>`, inserted by the producer), send the id through the queue, and
//!   remove the entry only after the job is done (the acknowledgement).
//! - After a consumer dies (its `Process` exit status, or `Region::participants`
//!   showing it dead), re-put every id still in the record. Some of them may
//!   still be in the queue or half done, so consumers must tolerate duplicates
//!   (make the work idempotent, or check the record before acting).
//! - With a [`JoinableQueue`], call `task_done` only after the work is done. A
//!   message the queue itself lost is marked done by the survivor that
//!   recovers its slot; a task a dead consumer had taken stays unfinished, so
//!   use `join_timeout` when consumers may crash, and let the supervisor that
//!   re-puts a dead consumer's jobs call `task_done` once for each job that
//!   consumer had marked as taken in the record (a consumer marks an entry
//!   right after `get`; one killed before marking leaves an entry that looks
//!   queued, which is re-put all the same).

#[cfg(not(loom))]
mod bytes;
#[cfg(not(loom))]
pub(crate) mod ends;
#[cfg(not(loom))]
mod handles;
#[cfg(not(loom))]
mod joinable;
#[cfg(not(loom))]
mod pipe;
pub(crate) mod ring;
#[cfg(not(loom))]
mod shared;
#[cfg(not(loom))]
mod typed;

#[cfg(all(feature = "serde", not(loom)))]
mod serde_queue;
pub mod spsc;

#[cfg(not(loom))]
pub use bytes::BytesQueue;
#[cfg(not(loom))]
pub use handles::{Receiver, Sender};
#[cfg(not(loom))]
pub use joinable::JoinableQueue;
#[cfg(not(loom))]
pub use pipe::{Pipe, PipeEnd};
#[cfg(all(feature = "serde", not(loom)))]
pub use serde_queue::{SerdeError, SerdeQueue};
#[cfg(not(loom))]
pub(crate) use shared::PreInherited;
#[cfg(not(loom))]
pub(crate) use shared::{QueueCore, QueueParams, field_offsets};
#[cfg(not(loom))]
pub use typed::Queue;

/// Why a put did not happen. The item is handed back in every case.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PutError<T> {
    /// `try_put`: no free slot.
    #[error("the queue is full")]
    Full(T),
    /// `put_timeout`: still full when the timeout passed.
    #[error("timed out waiting for a free slot")]
    Timeout(T),
    /// The queue was shut down, or this process closed its sending side.
    #[error("the queue is closed")]
    Closed(T),
    /// [`BytesQueue`]: the message is longer than the slot size; nothing was written.
    #[error("the message is larger than the queue's slot size")]
    TooLarge(T),
    /// The queue is full and no live process holds a receiver (see the
    /// [module docs](crate::queue#disconnection)).
    #[error("no receiver is left")]
    Disconnected(T),
    /// This process could not join the queue's participant table (every slot
    /// is held by a live process), so a put it died in could never be
    /// recovered: it is refused instead. Raise `RegionOptions::participants`
    /// when creating the queue.
    #[error("no participant slot left in the queue's region: this process cannot use it")]
    NoParticipantSlot(T),
}

impl<T> std::fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PutError::Full(_) => "Full(..)",
            PutError::Timeout(_) => "Timeout(..)",
            PutError::Closed(_) => "Closed(..)",
            PutError::TooLarge(_) => "TooLarge(..)",
            PutError::Disconnected(_) => "Disconnected(..)",
            PutError::NoParticipantSlot(_) => "NoParticipantSlot(..)",
        })
    }
}

impl<T> PutError<T> {
    /// The same error carrying `item` instead (the handle-level core reports
    /// `PutError<()>`; each queue kind puts its own item back).
    #[cfg(not(loom))]
    pub(crate) fn replace<U>(self, item: U) -> PutError<U> {
        match self {
            PutError::Full(_) => PutError::Full(item),
            PutError::Timeout(_) => PutError::Timeout(item),
            PutError::Closed(_) => PutError::Closed(item),
            PutError::TooLarge(_) => PutError::TooLarge(item),
            PutError::Disconnected(_) => PutError::Disconnected(item),
            PutError::NoParticipantSlot(_) => PutError::NoParticipantSlot(item),
        }
    }

    /// The same error without its item, for propagating with `?` into an
    /// error type that must be `'static`, such as `Box<dyn Error>` (a
    /// [`PipeEnd::send`] error borrows the message).
    ///
    /// ```
    /// fn ping(end: &multiproc::PipeEnd) -> Result<(), Box<dyn std::error::Error>> {
    ///     end.send(&7u32.to_le_bytes()).map_err(|e| e.without_item())?;
    ///     Ok(())
    /// }
    /// let (a, b) = multiproc::Pipe::anonymous(4, 16)?;
    /// ping(&a)?;
    /// assert_eq!(b.recv()?, 7u32.to_le_bytes());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn without_item(self) -> PutError<()> {
        self.replace(())
    }

    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t)
            | PutError::Timeout(t)
            | PutError::Closed(t)
            | PutError::TooLarge(t)
            | PutError::Disconnected(t)
            | PutError::NoParticipantSlot(t) => t,
        }
    }
}

/// Why a get returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// `try_get`: nothing to take right now.
    #[error("the queue is empty")]
    Empty,
    /// `get_timeout`: still empty when the timeout passed.
    #[error("timed out waiting for an item")]
    Timeout,
    /// The queue was shut down and is drained, or this process closed its
    /// receiving side (a [`PipeEnd`] it closed).
    #[error("the queue is closed and empty")]
    Closed,
    /// The queue is drained and no live process holds a sender (Python's
    /// `EOFError` on a pipe; see the [module docs](crate::queue#disconnection)).
    #[error("no sender is left and the queue is empty")]
    Disconnected,
    /// [`BytesQueue::get_into`]: the buffer is shorter than the slot size, so a
    /// message might not fit; nothing was taken.
    #[error("the buffer is shorter than the queue's slot size ({needed} bytes)")]
    BufferTooSmall {
        /// The slot size: the longest message the queue can hold.
        needed: usize,
    },
    /// This process could not join the queue's participant table (every slot
    /// is held by a live process), so a get it died in could never be
    /// recovered: it is refused instead (see [`PutError::NoParticipantSlot`]).
    #[error("no participant slot left in the queue's region: this process cannot use it")]
    NoParticipantSlot,
}

/// Why `task_done` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskDoneError {
    /// Called more times than items were put (Python's `ValueError`); nothing changed.
    #[error("task_done() called more times than there were items")]
    TooManyCalls,
}

/// A snapshot of a queue's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Number of slots.
    pub capacity: u64,
    /// Items in the queue (approximate while operations are in flight).
    pub len: u64,
    /// Messages lost inside the queue: a process died while it held their slot
    /// (a producer between claiming and publishing, a consumer between claiming
    /// and finishing its copy-out), and a survivor recovered the slot. At most
    /// one per dead process. Not counted, because the queue cannot see them:
    /// messages a consumer had already taken (its `get` returned) when it died.
    /// See the [module docs](crate::queue#delivery-after-a-crash) for
    /// at-least-once delivery.
    pub abandoned: u64,
    /// Of those, slots whose writer died (poisoned and skipped).
    pub dead_writers: u64,
    /// Of those, slots whose reader died (freed).
    pub dead_readers: u64,
}
