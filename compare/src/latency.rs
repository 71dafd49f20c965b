//! Round-trip latency: ping-pong between this process and one forked echo
//! process (or thread, where a row says threads).
//!
//! Method: the parent stamps message `v` (odd), starts the clock, sends it,
//! waits for the reply, stops the clock, and checks the reply is exactly the
//! message for `v + 1`; the echo side checks every message it gets (content,
//! and that it is `v` where the last was `v - 2`) before replying. Each round
//! trip is timed on its own (one clock read inside the interval) and recorded
//! in an HDR histogram; a warm-up phase comes first and is not recorded. A
//! message with word [`STOP`] ends the echo side, which the parent then reaps
//! (it must exit 0). The echo side reports a failure through a shared
//! [`FailBlock`] and closes its transport where it can, so the parent fails
//! with the details instead of waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytemuck::Pod;
use hdrhistogram::Histogram;
use multiproc::{GetError, PipeEnd, PutError, Queue};

use super::payload::{self, MAX, STOP};
use super::plumbing::{
    FailBlock, Res, Shared, Shm, Workers, code, read_exact, spin, watchdog, write_all,
};
use super::stats;

/// How long to warm up and to measure, per run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Unrecorded round trips first, for this long.
    pub warmup: Duration,
    /// Then recorded round trips for this long.
    pub time: Duration,
}

/// One side of a ping-pong transport. Allocation-light: it runs in forked
/// children.
pub trait End {
    /// Sends all of `msg`; a failure code otherwise.
    fn send(&mut self, msg: &[u8]) -> Result<(), i32>;
    /// Receives the next message into `buf` (at least [`MAX`] bytes); its
    /// length, or a failure code.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32>;
    /// After a failure: end the peer's wait, if the transport can.
    fn abort(&self) {}
}

/// The echo side: replies to `v` with `v + 1` until [`STOP`].
fn echo<E: End>(mut end: E, size: usize, fail: &FailBlock) -> i32 {
    let mut buf = [0u8; MAX];
    let mut out = [0u8; MAX];
    let mut expect = 1u64;
    // Records the failure first, then aborts the transport: the parent's
    // resulting error must not win the report.
    let give_up = |end: &E, c: i32, expected: u64, got: u64| {
        let c = fail.fail(c, expected, got);
        end.abort();
        c
    };
    loop {
        let n = match end.recv(&mut buf) {
            Ok(n) => n,
            Err(c) => return give_up(&end, c, expect, 0),
        };
        let w = match payload::check(&buf[..n], size) {
            Ok(w) => w,
            Err(bad) => {
                let (c, e, got) = bad.report(size);
                return give_up(&end, c, e, got);
            }
        };
        if w == STOP {
            return 0;
        }
        if w != expect {
            return give_up(&end, code::BAD_SEQ, expect, w);
        }
        payload::stamp(&mut out[..size], w + 1);
        if let Err(c) = end.send(&out[..size]) {
            return give_up(&end, c, w + 1, 0);
        }
        expect = w + 2;
    }
}

/// The parent's side: warm-up, then recorded round trips; then [`STOP`].
fn drive<E: End>(
    end: &mut E,
    size: usize,
    t: Timing,
    fail: &FailBlock,
    what: &str,
) -> Res<Histogram<u64>> {
    let mut msg = [0u8; MAX];
    let mut buf = [0u8; MAX];
    let mut hist = stats::new_histogram()?;
    let mut v = 1u64;
    let failed = |step: &str, c: i32, fail: &FailBlock| -> Box<dyn std::error::Error> {
        format!(
            "{what}: {step} failed ({}); {}",
            code::name(c as u64),
            fail.describe("echo side")
        )
        .into()
    };
    for (dur, recorded) in [(t.warmup, false), (t.time, true)] {
        let start = Instant::now();
        loop {
            payload::stamp(&mut msg[..size], v);
            let t0 = Instant::now();
            if let Err(c) = end.send(&msg[..size]) {
                end.abort();
                return Err(failed("send", c, fail));
            }
            let n = match end.recv(&mut buf) {
                Ok(n) => n,
                Err(c) => {
                    end.abort();
                    return Err(failed("receive", c, fail));
                }
            };
            let t1 = Instant::now();
            match payload::check(&buf[..n], size) {
                Ok(w) if w == v + 1 => {}
                other => {
                    end.abort();
                    return Err(format!(
                        "{what}: wrong reply to message {v}: {other:?} (expected {}); {}",
                        v + 1,
                        fail.describe("echo side")
                    )
                    .into());
                }
            }
            if recorded {
                stats::record(&mut hist, t1 - t0);
            }
            v += 2;
            watchdog::tick();
            if t1 - start >= dur {
                break;
            }
        }
    }
    payload::stamp(&mut msg[..size], STOP);
    if let Err(c) = end.send(&msg[..size]) {
        return Err(failed("send stop", c, fail));
    }
    Ok(hist)
}

/// One run between this process and a forked echo process. `child` is built
/// in the parent before the fork (and dropped there unused).
pub fn processes<P: End, C: End>(
    what: &str,
    size: usize,
    t: Timing,
    mut parent: P,
    child: C,
) -> Res<Histogram<u64>> {
    let _armed = watchdog::arm(what);
    let fail = Shared::<FailBlock>::new()?;
    let fr: &FailBlock = &fail;
    let mut workers = Workers::new();
    workers.spawn("echo process", move || echo(child, size, fr))?;
    let hist = drive(&mut parent, size, t, &fail, what)?;
    workers.reap(&fail, what, Duration::from_secs(10))?;
    Ok(hist)
}

/// One run whose echo side is `make_child`'s transport, built in the child
/// after the fork (for transports that must not be shared across a fork).
#[cfg(feature = "peers")]
pub fn processes_built_in_child<P: End, C: End>(
    what: &str,
    size: usize,
    t: Timing,
    make_parent: impl FnOnce() -> Res<P>,
    make_child: impl FnOnce() -> Result<C, i32>,
) -> Res<Histogram<u64>> {
    let _armed = watchdog::arm(what);
    let fail = Shared::<FailBlock>::new()?;
    let fr: &FailBlock = &fail;
    let mut workers = Workers::new();
    workers.spawn("echo process", move || match make_child() {
        Ok(end) => echo(end, size, fr),
        Err(c) => fr.fail(c, 0, 0),
    })?;
    let mut parent = make_parent()?;
    let hist = drive(&mut parent, size, t, &fail, what)?;
    drop(parent);
    workers.reap(&fail, what, Duration::from_secs(10))?;
    Ok(hist)
}

/// One run between two threads of this process.
pub fn threads<P: End, C: End + Send>(
    what: &str,
    size: usize,
    t: Timing,
    mut parent: P,
    child: C,
) -> Res<Histogram<u64>> {
    let _armed = watchdog::arm(what);
    let fail = Shared::<FailBlock>::new()?;
    let fr: &FailBlock = &fail;
    std::thread::scope(|s| {
        let echo_thread = s.spawn(move || echo(child, size, fr));
        let hist = drive(&mut parent, size, t, fr, what);
        if hist.is_err() {
            // Best effort: let the echo thread finish so the scope can end.
            let mut stop = [0u8; MAX];
            payload::stamp(&mut stop[..size], STOP);
            let _ = parent.send(&stop[..size]);
        }
        let status = echo_thread
            .join()
            .map_err(|_| format!("{what}: echo thread panicked"))?;
        let hist = hist?;
        if status != 0 {
            return Err(fr.describe(what).into());
        }
        Ok(hist)
    })
}

/// `Queue<[u8; S]>` ends: `try_put`, and `try_get` in a spin loop.
#[derive(Debug)]
pub struct QueueSpin<'a, const S: usize>
where
    [u8; S]: Pod,
{
    /// Where this side puts.
    pub tx: &'a Queue<[u8; S]>,
    /// Where this side gets.
    pub rx: &'a Queue<[u8; S]>,
}

impl<const S: usize> End for QueueSpin<'_, S>
where
    [u8; S]: Pod,
{
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let mut item: [u8; S] = msg.try_into().map_err(|_| code::BAD_LEN)?;
        let mut spins = 0;
        loop {
            match self.tx.try_put(item) {
                Ok(()) => return Ok(()),
                Err(PutError::Full(back)) => {
                    item = back;
                    spin(&mut spins);
                }
                Err(_) => return Err(code::SEND_FAILED),
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let mut spins = 0;
        loop {
            match self.rx.try_get() {
                Ok(item) => {
                    buf[..S].copy_from_slice(&item);
                    return Ok(S);
                }
                Err(GetError::Empty) => spin(&mut spins),
                Err(_) => return Err(code::RECV_FAILED),
            }
        }
    }

    fn abort(&self) {
        self.tx.shutdown();
        self.rx.shutdown();
    }
}

/// `Queue<[u8; S]>` ends: blocking `put` and `get` (which spins briefly, then
/// sleeps on the queue's futex).
#[derive(Debug)]
pub struct QueueBlocking<'a, const S: usize>
where
    [u8; S]: Pod,
{
    /// Where this side puts.
    pub tx: &'a Queue<[u8; S]>,
    /// Where this side gets.
    pub rx: &'a Queue<[u8; S]>,
}

impl<const S: usize> End for QueueBlocking<'_, S>
where
    [u8; S]: Pod,
{
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let item: [u8; S] = msg.try_into().map_err(|_| code::BAD_LEN)?;
        self.tx.put(item).map_err(|_| code::SEND_FAILED)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let item = self.rx.get().map_err(|_| code::RECV_FAILED)?;
        buf[..S].copy_from_slice(&item);
        Ok(S)
    }

    fn abort(&self) {
        self.tx.shutdown();
        self.rx.shutdown();
    }
}

/// `spsc::channel` ends, one channel each way: blocking `send` and `recv`.
#[derive(Debug)]
pub struct ChanEnd<const S: usize>
where
    [u8; S]: Pod,
{
    /// Where this side sends.
    pub tx: multiproc::spsc::Producer<[u8; S]>,
    /// Where this side receives.
    pub rx: multiproc::spsc::Consumer<[u8; S]>,
}

impl<const S: usize> End for ChanEnd<S>
where
    [u8; S]: Pod,
{
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let item: [u8; S] = msg.try_into().map_err(|_| code::BAD_LEN)?;
        self.tx.send(item).map_err(|_| code::SEND_FAILED)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let item = self.rx.recv().map_err(|_| code::RECV_FAILED)?;
        buf[..S].copy_from_slice(&item);
        Ok(S)
    }
}

/// A `multiproc::Pipe` end: `send`, and `recv` (which returns a `Vec`).
#[derive(Debug)]
pub struct MpPipe(pub PipeEnd);

impl End for MpPipe {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        self.0.send(msg).map_err(|_| code::SEND_FAILED)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let v = self.0.recv().map_err(|_| code::RECV_FAILED)?;
        let dst = buf.get_mut(..v.len()).ok_or(code::BAD_LEN)?;
        dst.copy_from_slice(&v);
        Ok(v.len())
    }

    fn abort(&self) {
        self.0.close();
    }
}

/// Descriptors: two pipes (`w` and `r` differ) or one socket (`w == r`).
/// Messages have a fixed size here, so each is one `write` and one `read` of
/// exactly `size` bytes: the best case for a byte stream.
#[derive(Debug)]
pub struct Fd {
    /// Written to.
    pub w: libc::c_int,
    /// Read from.
    pub r: libc::c_int,
    /// Bytes per message.
    pub size: usize,
}

impl End for Fd {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        if write_all(self.w, msg) {
            Ok(())
        } else {
            Err(code::SEND_FAILED)
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        if read_exact(self.r, &mut buf[..self.size]) {
            Ok(self.size)
        } else {
            Err(code::RECV_FAILED)
        }
    }
}

/// The floor: no queue at all. One shared buffer, `[flag: u64][payload]` from
/// offset 0 of a page, owned by one side at a time. The sender copies the
/// payload in and stores the next value of its own sequence in the flag
/// (parent odd, echo side even; Release); the receiver spins until the flag
/// differs from the value it last stored (Acquire) and copies the payload out.
/// For 8-byte messages flag and payload share one cache line, so a round trip
/// is one line bouncing between the two cores.
#[derive(Debug)]
pub struct Floor<'a> {
    shm: &'a Shm,
    size: usize,
    last: u64,
    next: u64,
}

/// Offset of the payload in the floor's buffer.
const FLOOR_DATA: usize = 8;

impl<'a> Floor<'a> {
    /// The shared buffer both sides use.
    pub fn buffer() -> Res<Shm> {
        Shm::new(4096)
    }

    /// The parent's side (`first` = true) or the echo side.
    pub fn new(shm: &'a Shm, size: usize, first: bool) -> Floor<'a> {
        assert!(shm.len() >= FLOOR_DATA + MAX, "floor buffer too small");
        Floor {
            shm,
            size,
            last: 0,
            next: if first { 1 } else { 2 },
        }
    }

    fn flag(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of a page-aligned, zero-filled mapping of at least
        // 8 bytes; zero is a valid `AtomicU64` and the word is only accessed
        // atomically (here and in the peer); it lives as long as `self.shm`.
        unsafe { &*self.shm.as_ptr().cast::<AtomicU64>() }
    }
}

impl End for Floor<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        if msg.len() > MAX {
            return Err(code::BAD_LEN);
        }
        // SAFETY: the payload area `FLOOR_DATA..FLOOR_DATA + MAX` lies inside the
        // mapping (checked in `new`). It is this side's to write: the peer copied
        // the previous message out before it stored the flag value this side
        // last received (ping-pong: one message in flight).
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                self.shm.as_ptr().add(FLOOR_DATA),
                msg.len(),
            );
        }
        self.last = self.next;
        self.next += 2;
        // Release: publishes the payload; pairs with the Acquire in `recv`.
        self.flag().store(self.last, Ordering::Release);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        if buf.len() < self.size || self.size > MAX {
            return Err(code::BAD_LEN);
        }
        let mut spins = 0;
        // Acquire: pairs with the peer's Release in `send`.
        while self.flag().load(Ordering::Acquire) == self.last {
            spin(&mut spins);
        }
        // SAFETY: the source `FLOOR_DATA..FLOOR_DATA + size` lies inside the
        // mapping (checked in `new`, `size <= MAX` above) and `buf` holds at
        // least `size` bytes (checked above); the peer published the payload
        // before its flag store and does not write again until this side
        // stores the flag.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.shm.as_ptr().add(FLOOR_DATA),
                buf.as_mut_ptr(),
                self.size,
            );
        }
        Ok(self.size)
    }
}
