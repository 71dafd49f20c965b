//! `Sender` and `Receiver`: one-role handles for crossbeam-style
//! disconnection (see the [module docs](crate::queue#disconnection)).

use std::fmt;
use std::time::Duration;

use crate::identity::SharedType;

use super::{BytesQueue, GetError, JoinableQueue, PutError, Queue, TaskDoneError};

/// The sending end of a queue: `Sender<Queue<T>>`, `Sender<BytesQueue>`,
/// `Sender<JoinableQueue<T>>` or (feature `serde`) `Sender<SerdeQueue<T>>`.
///
/// It counts as a sender (not a receiver) while it lives in a live process:
/// when no live process holds a sender any more, a `get` on the drained queue
/// returns [`GetError::Disconnected`]. Clones count too. Made by
/// [`Queue::sender`] and the other queues' `sender`/`split`.
///
/// A forked child inherits a copy of every sender its parent held, and each
/// copy counts while the child lives: a consumer child that iterates
/// (`rx.iter()`) until the producers are gone must drop or
/// `close` its inherited sender copies first, or it waits
/// for itself (Python's `iter(q.get, None)` idiom has the same trap with
/// sentinels; here the end of the stream is the last live sender going away,
/// or [`Queue::shutdown`]).
///
/// ```
/// use multiproc::{PutError, Queue};
/// let (tx, rx) = Queue::<u8>::anonymous(2)?.split();
/// tx.put(1).unwrap();
/// tx.put(2).unwrap();
/// drop(rx); // the last receiver: a full queue now refuses puts
/// assert_eq!(tx.put(3), Err(PutError::Disconnected(3)));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Sender<Q> {
    q: Q,
}

/// The receiving end of a queue (see [`Sender`] for the kinds).
///
/// It counts as a receiver while it lives in a live process: when no live
/// process holds a receiver any more, a `put` on the full queue returns
/// [`PutError::Disconnected`].
///
/// ```
/// use multiproc::{GetError, Queue};
/// let (tx, rx) = Queue::<u8>::anonymous(4)?.split();
/// tx.put(7).unwrap();
/// drop(tx);
/// assert_eq!(rx.get(), Ok(7));
/// assert_eq!(rx.get(), Err(GetError::Disconnected));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Receiver<Q> {
    q: Q,
}

impl<Q: fmt::Debug> fmt::Debug for Sender<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Sender").field(&self.q).finish()
    }
}

impl<Q: fmt::Debug> fmt::Debug for Receiver<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Receiver").field(&self.q).finish()
    }
}

impl<Q> Sender<Q> {
    pub(crate) fn wrap(q: Q) -> Sender<Q> {
        Sender { q }
    }
}

impl<Q> Receiver<Q> {
    pub(crate) fn wrap(q: Q) -> Receiver<Q> {
        Receiver { q }
    }
}

/// Forwards `fn name(&self, args) -> ret` to the wrapped queue, with a doc
/// line pointing at the queue's method.
macro_rules! forward {
    ($q:ty; $( $name:ident $(<$lt:lifetime>)? ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {
        $(
            #[doc = concat!("See [`", stringify!($q), "::", stringify!($name), "`].")]
            #[inline]
            #[allow(clippy::unused_unit, reason = "macro-generated forwarders")]
            pub fn $name $(<$lt>)? (&self, $($arg: $ty),*) -> $ret {
                self.q.$name($($arg),*)
            }
        )*
    };
}

/// What both ends of every queue kind have.
macro_rules! common {
    ($q:ty) => {
        forward! { $q;
            len() -> usize;
            is_empty() -> bool;
            is_full() -> bool;
            capacity() -> usize;
            shutdown() -> ();
            is_shutdown() -> bool;
            stats() -> crate::QueueStats;
            recover() -> u64;
            region() -> &crate::Region;
            wait_policy() -> crate::WaitPolicy;
        }

        /// This handle with another [`WaitPolicy`](crate::WaitPolicy).
        pub fn with_wait_policy(self, policy: crate::WaitPolicy) -> Self {
            Self::wrap(self.q.with_wait_policy(policy))
        }
    };
}

impl<T: SharedType> Sender<Queue<T>> {
    forward! { Queue;
        put(item: T) -> Result<(), PutError<T>>;
        put_timeout(item: T, timeout: Duration) -> Result<(), PutError<T>>;
        try_put(item: T) -> Result<(), PutError<T>>;
        put_many(items: &[T]) -> usize;
        close() -> ();
        is_closed() -> bool;
        receivers_gone() -> bool;
    }
    common!(Queue);
}

impl<T: SharedType> Receiver<Queue<T>> {
    /// This process will get no more through this mapping: its handles stop
    /// counting as receivers, and their gets fail with [`GetError::Closed`].
    /// For a copy a forked child inherited and cannot drop (it borrowed it),
    /// as Python's child closes the pipe end it does not use.
    pub fn close(&self) {
        self.q.core().close_receiving();
    }

    forward! { Queue;
        get() -> Result<T, GetError>;
        get_timeout(timeout: Duration) -> Result<T, GetError>;
        try_get() -> Result<T, GetError>;
        get_many(out: &mut [T]) -> usize;
        senders_gone() -> bool;
    }

    /// See [`Queue::iter`]: ends once the queue is drained and no live
    /// process holds a sender (or it was shut down).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.q.iter()
    }

    /// See [`Queue::try_iter`].
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        self.q.try_iter()
    }
    common!(Queue);
}

impl Sender<BytesQueue> {
    forward! { BytesQueue;
        put<'a>(msg: &'a [u8]) -> Result<(), PutError<&'a [u8]>>;
        put_timeout<'a>(msg: &'a [u8], timeout: Duration) -> Result<(), PutError<&'a [u8]>>;
        try_put<'a>(msg: &'a [u8]) -> Result<(), PutError<&'a [u8]>>;
        slot_size() -> usize;
        close() -> ();
        is_closed() -> bool;
        receivers_gone() -> bool;
    }
    common!(BytesQueue);
}

impl Receiver<BytesQueue> {
    /// This process will get no more through this mapping: its handles stop
    /// counting as receivers, and their gets fail with [`GetError::Closed`].
    /// For a copy a forked child inherited and cannot drop (it borrowed it),
    /// as Python's child closes the pipe end it does not use.
    pub fn close(&self) {
        self.q.close_receiving();
    }

    forward! { BytesQueue;
        get() -> Result<Vec<u8>, GetError>;
        get_timeout(timeout: Duration) -> Result<Vec<u8>, GetError>;
        try_get() -> Result<Vec<u8>, GetError>;
        get_into(out: &mut [u8]) -> Result<usize, GetError>;
        get_into_timeout(out: &mut [u8], timeout: Duration) -> Result<usize, GetError>;
        try_get_into(out: &mut [u8]) -> Result<usize, GetError>;
        slot_size() -> usize;
        senders_gone() -> bool;
    }

    /// See [`BytesQueue::iter`].
    pub fn iter(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.q.iter()
    }

    /// See [`BytesQueue::try_iter`].
    pub fn try_iter(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.q.try_iter()
    }
    common!(BytesQueue);
}

impl<T: SharedType> Sender<JoinableQueue<T>> {
    forward! { Queue;
        put(item: T) -> Result<(), PutError<T>>;
        put_timeout(item: T, timeout: Duration) -> Result<(), PutError<T>>;
        try_put(item: T) -> Result<(), PutError<T>>;
        put_many(items: &[T]) -> usize;
        close() -> ();
        is_closed() -> bool;
        receivers_gone() -> bool;
    }
    forward! { JoinableQueue;
        unfinished() -> u64;
        join() -> ();
        join_timeout(timeout: Duration) -> bool;
    }
    common!(Queue);
}

impl<T: SharedType> Receiver<JoinableQueue<T>> {
    /// This process will get no more through this mapping: its handles stop
    /// counting as receivers, and their gets fail with [`GetError::Closed`].
    /// For a copy a forked child inherited and cannot drop (it borrowed it),
    /// as Python's child closes the pipe end it does not use.
    pub fn close(&self) {
        self.q.core().close_receiving();
    }

    forward! { Queue;
        get() -> Result<T, GetError>;
        get_timeout(timeout: Duration) -> Result<T, GetError>;
        try_get() -> Result<T, GetError>;
        get_many(out: &mut [T]) -> usize;
        senders_gone() -> bool;
    }

    /// See [`Queue::iter`]: ends once the queue is drained and no live
    /// process holds a sender (or it was shut down).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.q.iter()
    }

    /// See [`Queue::try_iter`].
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        self.q.try_iter()
    }
    forward! { JoinableQueue;
        task_done() -> Result<(), TaskDoneError>;
        unfinished() -> u64;
        join() -> ();
        join_timeout(timeout: Duration) -> bool;
    }
    common!(Queue);
}

#[cfg(feature = "serde")]
mod serde_ends {
    use std::time::Duration;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{Receiver, Sender};
    use crate::queue::{SerdeError, SerdeQueue};

    impl<T: Serialize + DeserializeOwned> Sender<SerdeQueue<T>> {
        forward! { SerdeQueue;
            put(item: T) -> Result<(), SerdeError<T>>;
            put_timeout(item: T, timeout: Duration) -> Result<(), SerdeError<T>>;
            try_put(item: T) -> Result<(), SerdeError<T>>;
            close() -> ();
        }
        /// The underlying byte queue's sender.
        pub fn bytes(&self) -> &crate::BytesQueue {
            self.q.bytes()
        }

        /// This handle with another [`WaitPolicy`](crate::WaitPolicy).
        pub fn with_wait_policy(self, policy: crate::WaitPolicy) -> Self {
            Self::wrap(self.q.with_wait_policy(policy))
        }
    }

    impl<T: Serialize + DeserializeOwned> Receiver<SerdeQueue<T>> {
        forward! { SerdeQueue;
            get() -> Result<T, SerdeError<T>>;
            get_timeout(timeout: Duration) -> Result<T, SerdeError<T>>;
            try_get() -> Result<T, SerdeError<T>>;
        }
        /// This process will get no more (see `Receiver<Queue<T>>::close`).
        pub fn close(&self) {
            self.q.bytes().close_receiving();
        }

        /// The underlying byte queue's receiver.
        pub fn bytes(&self) -> &crate::BytesQueue {
            self.q.bytes()
        }

        /// This handle with another [`WaitPolicy`](crate::WaitPolicy).
        pub fn with_wait_policy(self, policy: crate::WaitPolicy) -> Self {
            Self::wrap(self.q.with_wait_policy(policy))
        }
    }
}
