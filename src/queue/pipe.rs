//! `Pipe`: two connected duplex ends over two byte rings.

use std::fmt;
use std::time::Duration;

use super::{BytesQueue, GetError, PutError};
use crate::Error;
use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU64, Ordering};
use crate::region::participants::{Liveness, Member};
use crate::region::{Object, Region, RegionOptions, SharedObject};

/// How often a blocked `recv` checks whether the peer is gone.
const PEER_CHECK: Duration = Duration::from_millis(20);

/// Who uses each end: packed participant ids (`(index + 1) << 32 | generation`)
/// of the process that last sent or received on it, 0 = nobody yet.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct PipeState {
    holders: [AtomicU64; 2],
}

// SAFETY: repr(C), two atomics.
unsafe impl SharedObject for PipeState {
    const KIND: &'static str = "PipeState";
    type Params = ();

    unsafe fn init(this: *mut Self, _: &()) -> Result<(), Error> {
        // SAFETY: the caller guarantees `this` is valid, aligned and unused.
        unsafe {
            this.write(PipeState {
                holders: [AtomicU64::new(0), AtomicU64::new(0)],
            })
        };
        Ok(())
    }
}

/// Python's `multiprocessing.Pipe()` in shared memory.
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    /// Two connected duplex ends, each able to queue `capacity` messages (a power
    /// of two >= 2) of up to `slot_size` bytes toward the other. Inherited by
    /// forked children: keep one end in each process.
    ///
    /// ```
    /// use multiproc::{GetError, Pipe};
    ///
    /// let (a, b) = Pipe::anonymous(8, 64)?;
    /// a.send(b"ping").unwrap();
    /// assert_eq!(b.recv().unwrap(), b"ping");
    /// b.send(b"pong").unwrap();
    /// assert_eq!(a.recv().unwrap(), b"pong");
    /// a.close();
    /// assert_eq!(b.recv(), Err(GetError::Closed)); // Python's EOFError
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn anonymous(capacity: usize, slot_size: usize) -> Result<(PipeEnd, PipeEnd), Error> {
        let ab = BytesQueue::anonymous(capacity, slot_size)?;
        let ba = BytesQueue::anonymous(capacity, slot_size)?;
        let state: Object<PipeState> = Region::create_object(None, RegionOptions::default(), &())?;
        let a = PipeEnd {
            tx: ab.clone(),
            rx: ba.clone(),
            state: state.clone(),
            end: 0,
            me: AtomicU64::new(0),
        };
        let b = PipeEnd {
            tx: ba,
            rx: ab,
            state,
            end: 1,
            me: AtomicU64::new(0),
        };
        Ok((a, b))
    }
}

/// One end of a [`Pipe`]: sends to the other end and receives from it.
pub struct PipeEnd {
    tx: BytesQueue,
    rx: BytesQueue,
    state: Object<PipeState>,
    end: usize,
    /// `fork_epoch` once this process registered as the end's holder.
    me: AtomicU64,
}

impl fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeEnd")
            .field("end", &self.end)
            .field("closed", &self.rx.is_closed())
            .finish()
    }
}

fn pack(m: Member) -> u64 {
    (u64::from(m.index) + 1) << 32 | u64::from(m.generation)
}

impl PipeEnd {
    /// The three regions behind this end: its two rings and the shared state.
    pub(crate) fn regions(&self) -> [&Region; 3] {
        [self.tx.region(), self.rx.region(), self.state.region()]
    }

    /// Records this process as the user of this end (once per process).
    fn register(&self) {
        let epoch = u64::from(crate::sys::process::fork_epoch());
        // Relaxed: process-local cache.
        if self.me.load(Ordering::Relaxed) == epoch {
            return;
        }
        if let Some(m) = self.state.region().member() {
            if let Some(h) = self.state.get().holders.get(self.end) {
                h.store(pack(m), Ordering::Release);
            }
        }
        self.me.store(epoch, Ordering::Relaxed);
    }

    /// Whether the process using the other end died or exited.
    fn peer_gone(&self) -> bool {
        let Some(h) = self.state.get().holders.get(1 - self.end) else {
            return false;
        };
        let v = h.load(Ordering::Acquire);
        if v == 0 {
            return false;
        }
        let m = Member {
            index: ((v >> 32) as u32).wrapping_sub(1),
            generation: v as u32,
        };
        matches!(
            self.state.region().probe(m),
            Liveness::Dead | Liveness::Gone
        )
    }

    /// Sends a copy of `msg`, blocking while the peer's buffer is full.
    /// [`PutError::Closed`] if either end was closed; [`PutError::TooLarge`] if
    /// `msg` exceeds the slot size.
    pub fn send<'a>(&self, msg: &'a [u8]) -> Result<(), PutError<&'a [u8]>> {
        self.register();
        self.tx.send_until(msg, None)
    }

    /// Sends, waiting at most `timeout` for room.
    pub fn send_timeout<'a>(
        &self,
        msg: &'a [u8],
        timeout: Duration,
    ) -> Result<(), PutError<&'a [u8]>> {
        self.register();
        self.tx.send_until(msg, Some(Deadline::after(timeout)))
    }

    fn recv_until(&self, deadline: Option<Deadline>) -> Result<Vec<u8>, GetError> {
        self.register();
        loop {
            let check = Deadline::after(PEER_CHECK);
            let slice = deadline.map_or(check, |d| d.min(check));
            match self.rx.get_until(Some(slice)) {
                Err(GetError::Timeout) => {
                    if self.peer_gone() {
                        // Nothing more will come: drain, then report EOF.
                        self.rx.close();
                    }
                    // Checked in both cases: a ring a peer scribbled over may
                    // never drain, and the caller's deadline still holds.
                    if deadline.is_some_and(Deadline::passed) {
                        return Err(GetError::Timeout);
                    }
                }
                other => return other,
            }
        }
    }

    /// Receives the next message, blocking while none is buffered. Once the
    /// other end is closed, or its process has died or exited, and everything
    /// it sent has been received: [`GetError::Closed`] (Python's `EOFError`).
    pub fn recv(&self) -> Result<Vec<u8>, GetError> {
        self.recv_until(None)
    }

    /// Receives, waiting at most `timeout` ([`GetError::Timeout`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        self.recv_until(Some(Deadline::after(timeout)))
    }

    /// Whether a message (or end-of-file) is ready, waiting at most `timeout`.
    pub fn poll(&self, timeout: Duration) -> bool {
        self.register();
        let deadline = Deadline::after(timeout);
        loop {
            let check = Deadline::after(PEER_CHECK).min(deadline);
            if self.rx.wait_readable(Some(check)) {
                return true;
            }
            if self.peer_gone() {
                return true;
            }
            if deadline.passed() {
                return false;
            }
        }
    }

    /// Closes both directions: the peer's `recv` returns [`GetError::Closed`]
    /// once it has received what was sent; sends in either direction fail.
    pub fn close(&self) {
        self.tx.close();
        self.rx.close();
    }

    /// The longest message this end can send.
    pub fn slot_size(&self) -> usize {
        self.tx.slot_size()
    }
}
