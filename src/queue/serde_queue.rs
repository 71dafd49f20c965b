//! `SerdeQueue<T>`: Python's "put any object", for any `Serialize +
//! DeserializeOwned` type, encoded with postcard into a [`BytesQueue`].

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BytesQueue, GetError, PutError, Receiver, Sender};
use crate::Error;

/// Why a [`SerdeQueue`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerdeError<T> {
    /// The put did not happen; the value is handed back.
    #[error("put failed: {0}")]
    Put(PutError<T>),
    /// The get did not happen.
    #[error("get failed: {0}")]
    Get(#[from] GetError),
    /// The value could not be encoded (the item is handed back).
    #[error("could not encode the value: {1}")]
    Encode(T, postcard::Error),
    /// A message could not be decoded as `T` (it was taken from the queue).
    #[error("could not decode a message: {0}")]
    Decode(postcard::Error),
}

/// A queue of any serde type, over a [`BytesQueue`] whose slot size bounds the
/// encoded size (larger values are refused with `PutError::TooLarge`).
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use multiproc::queue::SerdeQueue;
///
/// let q: SerdeQueue<(String, Vec<u32>)> = SerdeQueue::anonymous(8, 256)?;
/// q.put(("job".to_owned(), vec![1, 2, 3])).unwrap();
/// assert_eq!(q.get().unwrap(), ("job".to_owned(), vec![1, 2, 3]));
/// # }
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct SerdeQueue<T> {
    bytes: BytesQueue,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for SerdeQueue<T> {
    fn clone(&self) -> Self {
        SerdeQueue {
            bytes: self.bytes.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SerdeQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeQueue")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> SerdeQueue<T> {
    /// A queue of `capacity` slots of `slot_size` encoded bytes each.
    pub fn anonymous(capacity: usize, slot_size: usize) -> Result<SerdeQueue<T>, Error> {
        Ok(SerdeQueue {
            bytes: BytesQueue::anonymous(capacity, slot_size)?,
            _t: PhantomData,
        })
    }

    /// Creates a named queue.
    pub fn create(name: &str, capacity: usize, slot_size: usize) -> Result<SerdeQueue<T>, Error> {
        Ok(SerdeQueue {
            bytes: BytesQueue::create(name, capacity, slot_size)?,
            _t: PhantomData,
        })
    }

    /// Opens a named queue. The element type is **not** recorded, and
    /// postcard's encoding does not describe itself: opening with another
    /// `T` may decode the bytes as that type without complaint (a `u32` 3
    /// read as an `i32` -2, say), or fail with [`SerdeError::Decode`] where
    /// the bytes do not fit. Agree on `T` out of band, or use
    /// [`Queue`](crate::Queue), whose element type is checked at open.
    pub fn open(name: &str) -> Result<SerdeQueue<T>, Error> {
        Ok(SerdeQueue {
            bytes: BytesQueue::open(name)?,
            _t: PhantomData,
        })
    }

    /// Opens the queue `name`, or creates it with `capacity` slots of
    /// `slot_size` encoded bytes; race-free, with the checks of
    /// [`BytesQueue::open_or_create`]. As with [`SerdeQueue::open`], the
    /// element type is not recorded (serde types have no fixed layout).
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        slot_size: usize,
    ) -> Result<SerdeQueue<T>, Error> {
        Ok(SerdeQueue {
            bytes: BytesQueue::open_or_create(name, capacity, slot_size)?,
            _t: PhantomData,
        })
    }

    fn encode(item: T) -> Result<(Vec<u8>, T), SerdeError<T>> {
        match postcard::to_allocvec(&item) {
            Ok(v) => Ok((v, item)),
            Err(e) => Err(SerdeError::Encode(item, e)),
        }
    }

    /// Puts `item`, blocking while full.
    pub fn put(&self, item: T) -> Result<(), SerdeError<T>> {
        let (buf, item) = Self::encode(item)?;
        self.bytes
            .put(&buf)
            .map_err(|e| SerdeError::Put(e.replace(item)))
    }

    /// Puts `item`, waiting at most `timeout`.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), SerdeError<T>> {
        let (buf, item) = Self::encode(item)?;
        self.bytes
            .put_timeout(&buf, timeout)
            .map_err(|e| SerdeError::Put(e.replace(item)))
    }

    /// Puts `item` if there is room now.
    pub fn try_put(&self, item: T) -> Result<(), SerdeError<T>> {
        let (buf, item) = Self::encode(item)?;
        self.bytes
            .try_put(&buf)
            .map_err(|e| SerdeError::Put(e.replace(item)))
    }

    fn decode(buf: Vec<u8>) -> Result<T, SerdeError<T>> {
        postcard::from_bytes(&buf).map_err(SerdeError::Decode)
    }

    /// Takes the oldest value, blocking while empty.
    pub fn get(&self) -> Result<T, SerdeError<T>> {
        Self::decode(self.bytes.get()?)
    }

    /// Takes the oldest value, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, SerdeError<T>> {
        Self::decode(self.bytes.get_timeout(timeout)?)
    }

    /// Takes the oldest value if there is one now.
    pub fn try_get(&self) -> Result<T, SerdeError<T>> {
        Self::decode(self.bytes.try_get()?)
    }

    /// The underlying byte queue (shutdown, stats, len, ...).
    pub fn bytes(&self) -> &BytesQueue {
        &self.bytes
    }

    /// This handle with another [`WaitPolicy`](crate::WaitPolicy).
    pub fn with_wait_policy(self, policy: crate::WaitPolicy) -> SerdeQueue<T> {
        SerdeQueue {
            bytes: self.bytes.with_wait_policy(policy),
            _t: PhantomData,
        }
    }

    /// The [`WaitPolicy`](crate::WaitPolicy) of this handle's blocking calls.
    pub fn wait_policy(&self) -> crate::WaitPolicy {
        self.bytes.wait_policy()
    }

    fn with_role(&self, role: super::ends::Role) -> SerdeQueue<T> {
        SerdeQueue {
            bytes: self.bytes.with_role(role),
            _t: PhantomData,
        }
    }

    /// A new sending handle (see [`crate::Queue::sender`]).
    pub fn sender(&self) -> Sender<SerdeQueue<T>> {
        Sender::wrap(self.with_role(super::ends::Role::Send))
    }

    /// A new receiving handle (see [`crate::Queue::receiver`]).
    pub fn receiver(&self) -> Receiver<SerdeQueue<T>> {
        Receiver::wrap(self.with_role(super::ends::Role::Recv))
    }

    /// A sender and a receiver, consuming this handle.
    pub fn split(self) -> (Sender<SerdeQueue<T>>, Receiver<SerdeQueue<T>>) {
        (self.sender(), self.receiver())
    }

    /// This process will put no more (see [`crate::Queue::close`]).
    pub fn close(&self) {
        self.bytes.close();
    }
}
