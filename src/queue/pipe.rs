//! `Pipe`: two connected duplex ends over two byte rings.
//!
//! End `a` holds a sender of ring `ab` and a receiver of ring `ba`; end `b`
//! the opposite. Both rings count their ends per process (the `ends`
//! module), so an end's EOF is exactly Python's: [`PipeEnd::recv`] returns
//! [`GetError::Disconnected`] once no live process holds the other end (it
//! was closed or dropped everywhere, or every process holding it exited or
//! was killed) and everything it sent was received.

use std::fmt;
use std::time::Duration;

use super::{BytesQueue, GetError, PutError};
use crate::Error;
use crate::loom::Deadline;
use crate::region::Region;

/// Python's `multiprocessing.Pipe()` in shared memory.
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    /// Two connected duplex ends, each able to queue `capacity` messages (1 to
    /// 2^28) of up to `slot_size` bytes toward the other. Inherited by
    /// forked children: keep one end in each process and drop the other (see
    /// [`PipeEnd`]).
    ///
    /// ```
    /// use multiproc::{GetError, Pipe};
    ///
    /// let (a, b) = Pipe::anonymous(8, 64)?;
    /// a.send(b"ping").unwrap();
    /// assert_eq!(b.recv().unwrap(), b"ping");
    /// b.send(b"pong").unwrap();
    /// assert_eq!(a.recv().unwrap(), b"pong");
    /// a.send(b"bye").unwrap();
    /// drop(a); // the only holder of end `a`
    /// assert_eq!(b.recv().unwrap(), b"bye");
    /// assert_eq!(b.recv(), Err(GetError::Disconnected)); // Python's EOFError
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn anonymous(capacity: usize, slot_size: usize) -> Result<(PipeEnd, PipeEnd), Error> {
        let ab = BytesQueue::anonymous(capacity, slot_size)?;
        let ba = BytesQueue::anonymous(capacity, slot_size)?;
        let a = PipeEnd {
            tx: ab.sender_queue(),
            rx: ba.receiver_queue(),
            end: 0,
        };
        let b = PipeEnd {
            tx: ba.sender_queue(),
            rx: ab.receiver_queue(),
            end: 1,
        };
        Ok((a, b))
    }
}

/// One end of a [`Pipe`]: sends to the other end and receives from it.
///
/// It counts as the holder of its end in every process that has a copy
/// (forked children inherit copies). The other end sees end-of-file once no
/// live process holds this end. After a `fork`, each process drops (or, for a
/// copy it only borrowed, [`close`](PipeEnd::close)s) the end it does not
/// use, as with Python's `Pipe`:
///
/// ```no_run
/// use multiproc::{GetError, Pipe};
/// let (parent_end, child_end) = Pipe::anonymous(8, 64)?;
/// let parent_copy = &parent_end;
/// let child = multiproc::process::fork(move || {
///     parent_copy.close(); // the child's copy of the parent's end
///     let _ = child_end.send(b"hello");
///     0
/// })?;
/// // The parent's copy of `child_end` was moved into the closure and dropped
/// // by `fork`: the child is now its only holder.
/// assert_eq!(parent_end.recv()?, b"hello");
/// assert_eq!(parent_end.recv(), Err(GetError::Disconnected)); // the child exited
/// child.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PipeEnd {
    tx: BytesQueue,
    rx: BytesQueue,
    end: usize,
}

impl fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeEnd")
            .field("end", &self.end)
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl PipeEnd {
    /// The regions behind this end: its two rings.
    pub(crate) fn regions(&self) -> [&Region; 2] {
        [self.tx.region(), self.rx.region()]
    }

    /// This end with another [`WaitPolicy`](crate::WaitPolicy) for its
    /// blocking calls.
    pub fn with_wait_policy(self, policy: crate::WaitPolicy) -> PipeEnd {
        PipeEnd {
            tx: self.tx.with_wait_policy(policy),
            rx: self.rx.with_wait_policy(policy),
            end: self.end,
        }
    }

    /// The [`WaitPolicy`](crate::WaitPolicy) of this end's blocking calls.
    pub fn wait_policy(&self) -> crate::WaitPolicy {
        self.rx.wait_policy()
    }

    /// Sends a copy of `msg`, blocking while the peer's buffer is full.
    /// [`PutError::Closed`] if this process closed this end;
    /// [`PutError::Disconnected`] if no live process holds the other end,
    /// whether or not the buffer has room (Python's `BrokenPipeError`: an
    /// anonymous pipe's end cannot be opened again, so nobody could ever
    /// receive it); [`PutError::TooLarge`] if `msg` exceeds the slot size.
    ///
    /// A peer that dies after the check may leave the message unread, as a
    /// kernel pipe's reader that exits after a `write` does.
    pub fn send<'a>(&self, msg: &'a [u8]) -> Result<(), PutError<&'a [u8]>> {
        self.send_until(msg, None)
    }

    /// Sends, waiting at most `timeout` for room.
    pub fn send_timeout<'a>(
        &self,
        msg: &'a [u8],
        timeout: Duration,
    ) -> Result<(), PutError<&'a [u8]>> {
        self.send_until(msg, Some(Deadline::after(timeout)))
    }

    fn send_until<'a>(
        &self,
        msg: &'a [u8],
        deadline: Option<Deadline>,
    ) -> Result<(), PutError<&'a [u8]>> {
        // A message that can never fit is refused as `TooLarge` first, as
        // the queue refuses it, whatever the other end's state.
        let core = self.tx.core();
        if msg.len() <= self.tx.slot_size() && !core.send_closed() && core.no_receivers() {
            return Err(PutError::Disconnected(msg));
        }
        self.tx.send_until(msg, deadline)
    }

    /// Receives the next message, blocking while none is buffered. Once no
    /// live process holds the other end and everything it sent has been
    /// received: [`GetError::Disconnected`] (Python's `EOFError`);
    /// [`GetError::Closed`] if this process closed this end.
    pub fn recv(&self) -> Result<Vec<u8>, GetError> {
        self.rx.get_until(None)
    }

    /// Receives, waiting at most `timeout` ([`GetError::Timeout`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        self.rx.get_until(Some(Deadline::after(timeout)))
    }

    /// A blocking iterator over received messages: each step is a
    /// [`PipeEnd::recv`], ending at the first error (the other end closed,
    /// or no live process holds it: Python's `EOFError`).
    pub fn iter(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// Whether a message (or end-of-file) is ready, waiting at most `timeout`.
    /// `true` at once on an end this process closed (its `recv` then fails
    /// with [`GetError::Closed`], where Python's `poll` raises `OSError`).
    pub fn poll(&self, timeout: Duration) -> bool {
        self.rx.wait_readable(Some(Deadline::after(timeout)))
    }

    /// Closes this end in this process (Python's `Connection.close()`): its
    /// sends and receives here fail with `Closed`, and it stops counting as a
    /// holder of the end. The other end sees end-of-file once no other live
    /// process holds this end. Dropping every copy in the process does the
    /// same.
    pub fn close(&self) {
        self.tx.close();
        self.rx.close_receiving();
    }

    /// The longest message this end can send.
    pub fn slot_size(&self) -> usize {
        self.tx.slot_size()
    }
}
