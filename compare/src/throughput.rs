//! One-way throughput: `n` producers to `n` consumers (`n` = 1 or 2), each a
//! forked process (threads for the crossbeam row).
//!
//! Method: the workers are forked once per run and wait on a shared control
//! block. A phase starts when the parent stores its number in `go`; producers
//! then send messages as fast as the transport takes them, looking at `stop`
//! every 64 messages. After the phase's duration the parent stores `stop`,
//! waits until every producer has published how many messages it sent in all,
//! then until the consumers (who publish their running count after every
//! message) have received that many: the phase lasted from `go` to that
//! moment. The first phase is the warm-up, the second is measured.
//!
//! Checks: producer `p` sends words `p << 56 | k`, `k = 1, 2, …`. Every
//! consumer checks each message's bytes and length, that it names a producer,
//! and that each producer's words reach it in increasing order; it tallies per
//! producer the count, sum and sum of squares of `k`. At the end every
//! producer sends one [`STOP`] (there are as many consumers as producers),
//! everybody exits, and the parent checks that per producer the consumers'
//! tallies add up to exactly `1 + 2 + … + K` and `1² + … + K²` for the `K`
//! it sent: every message arrived exactly once. A consumer that finds a bad
//! message records it in the control block, closes its queue where there is
//! one, and exits non-zero; the parent then kills the rest and fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytemuck::Pod;
use crossbeam_queue::ArrayQueue;
use multiproc::{BytesQueue, Queue};

use super::latency::Timing;
use super::payload::{self, MAX, PRODUCER_SHIFT, STOP};
use super::plumbing::{
    Backoff, FailBlock, Fds, Line, PthreadMutex, Res, Shared, Shm, Workers, ZeroShared, code,
    read_exact, read_some, watchdog, write_all,
};
use super::stats::Rate;

/// Slots in every queue and ring.
pub const CAP: usize = 1024;
/// Messages between two looks at `stop`.
const CHUNK: usize = 64;
/// Items per `put_many`/`get_many` batch.
const BATCH: usize = 64;
/// Bytes of the buffered pipe's write and read buffers.
const BUF: usize = 64 * 1024;
/// Frame header (pipes and sockets): the payload length, `u32` little-endian.
const HDR: usize = 4;
/// `go` value telling producers to send [`STOP`] and exit.
const EXIT: u64 = u64::MAX;
/// After every producer has finished a phase, consumers that receive nothing
/// for this long while messages are missing have lost them: the run fails.
const LOST_AFTER: Duration = Duration::from_secs(5);

/// The mechanisms measured here (Python's runs in its own script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    /// `Queue<[u8; S]>`, blocking `put` and `get`.
    Queue,
    /// `Queue<[u8; S]>`, `put_many`/`get_many` in batches of 64.
    QueueBatch,
    /// `spsc::channel::<[u8; S]>`, blocking `send` and `recv` (1 -> 1 only).
    Channel,
    /// `spsc::channel::<[u8; S]>`, `try_send_many`/`try_recv_many` in batches of 64.
    ChannelBatch,
    /// `BytesQueue`, blocking `put` and `get_into`.
    Bytes,
    /// A pipe; one `write` per length-prefixed frame.
    Pipe,
    /// A pipe; frames gathered into 64 KiB writes, read through a 64 KiB buffer.
    PipeBuffered,
    /// An `AF_UNIX` stream socket pair; one `write` per frame.
    Socket,
    /// A POSIX message queue ([`super::mq`]); one `mq_send` per message.
    Mq,
    /// `crossbeam_queue::ArrayQueue<[u8; S]>` between threads.
    Crossbeam,
    /// A bare single-producer single-consumer ring in shared memory.
    Spsc,
}

impl Mech {
    /// Every mechanism, in table order.
    pub const ALL: [Mech; 11] = [
        Mech::Queue,
        Mech::QueueBatch,
        Mech::Channel,
        Mech::ChannelBatch,
        Mech::Bytes,
        Mech::Pipe,
        Mech::PipeBuffered,
        Mech::Socket,
        Mech::Mq,
        Mech::Crossbeam,
        Mech::Spsc,
    ];

    /// The row name.
    pub fn name(self) -> &'static str {
        match self {
            Mech::Queue => "multiproc Queue (put/get)",
            Mech::QueueBatch => "multiproc Queue (put_many/get_many, 64)",
            Mech::Channel => "multiproc spsc::channel (send/recv)",
            Mech::ChannelBatch => "multiproc spsc::channel (send_many/recv_many, 64)",
            Mech::Bytes => "multiproc BytesQueue (put/get_into)",
            Mech::Pipe => "pipe, one write per frame",
            Mech::PipeBuffered => "pipe, buffered frames (64 KiB)",
            Mech::Socket => "Unix socket, one write per frame",
            Mech::Mq => "POSIX message queue (10 deep)",
            Mech::Crossbeam => "crossbeam ArrayQueue (threads)",
            Mech::Spsc => "bare SPSC ring in shared memory",
        }
    }

    /// Why the mechanism has no `pairs` -> `pairs` row, if it has none.
    pub fn unsupported(self, pairs: usize) -> Option<&'static str> {
        match (self, pairs) {
            (Mech::PipeBuffered, 2) => Some(
                "n/a: buffered frames need one writer and one reader per stream \
                 (writes over PIPE_BUF interleave)",
            ),
            (Mech::Spsc | Mech::Channel | Mech::ChannelBatch, 2) => {
                Some("n/a: single producer, single consumer by design")
            }
            _ => None,
        }
    }
}

/// The producer side of a transport.
pub trait Tx {
    /// Sends (or buffers) `msg`; a failure code otherwise.
    fn send(&mut self, msg: &[u8]) -> Result<(), i32>;
    /// Sends anything buffered.
    fn flush(&mut self) -> Result<(), i32> {
        Ok(())
    }
}

/// The consumer side of a transport. Allocation-free after construction.
pub trait Rx {
    /// Receives the next message into `buf` (at least [`MAX`] bytes); its
    /// length, or a failure code.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32>;
    /// After a failure: make the producers' next send fail, if possible.
    fn abort(&self) {}
}

/// One consumer's final tallies, per producer.
#[derive(Debug)]
#[repr(C, align(128))]
struct TallyLine {
    count: [AtomicU64; 2],
    sum: [AtomicU64; 2],
    sumsq: [AtomicU64; 2],
}

/// The control block between the parent and its workers.
#[derive(Debug)]
#[repr(C)]
struct Ctl {
    /// The phase producers should run (0 = none yet, [`EXIT`] = finish).
    go: Line,
    /// The last phase producers must stop sending for.
    stop: Line,
    /// Messages producer `p` has sent in all, published at the end of a phase.
    sent: [Line; 2],
    /// The last phase producer `p` finished.
    acked: [Line; 2],
    /// Messages consumer `c` has received in all (Relaxed, after each one).
    received: [Line; 2],
    tally: [TallyLine; 2],
    fail: FailBlock,
}

// SAFETY: atomics only; zero is a valid `AtomicU64`.
unsafe impl ZeroShared for Ctl {}

/// A consumer's running tallies.
#[derive(Debug, Default)]
struct Tally {
    last: [u64; 2],
    count: [u64; 2],
    sum: [u64; 2],
    sumsq: [u64; 2],
    total: u64,
}

impl Tally {
    /// Accounts for word `w`; `Err((code, expected))` if it is malformed or out
    /// of order.
    fn take(&mut self, w: u64, producers: usize) -> Result<(), (i32, u64)> {
        let p = (w >> PRODUCER_SHIFT) as usize;
        let k = w & ((1 << PRODUCER_SHIFT) - 1);
        if p >= producers {
            return Err((code::BAD_PRODUCER, producers as u64));
        }
        if k <= self.last[p] {
            return Err((code::BAD_SEQ, self.last[p] + 1));
        }
        self.last[p] = k;
        self.count[p] += 1;
        self.sum[p] = self.sum[p].wrapping_add(k);
        self.sumsq[p] = self.sumsq[p].wrapping_add(k.wrapping_mul(k));
        self.total += 1;
        Ok(())
    }

    fn publish(&self, line: &TallyLine) {
        for p in 0..2 {
            line.count[p].store(self.count[p], Ordering::Relaxed);
            line.sum[p].store(self.sum[p], Ordering::Relaxed);
            line.sumsq[p].store(self.sumsq[p], Ordering::Relaxed);
        }
    }
}

fn produce<T: Tx>(mut tx: T, p: usize, size: usize, ctl: &Ctl) -> i32 {
    let mut buf = [0u8; MAX];
    let base = (p as u64) << PRODUCER_SHIFT;
    let mut k = 0u64;
    let mut seen = 0u64;
    loop {
        let mut b = Backoff::new();
        let phase = loop {
            let g = ctl.go.get();
            if g != seen {
                break g;
            }
            b.snooze();
        };
        if phase == EXIT {
            payload::stamp(&mut buf[..size], STOP);
            if let Err(c) = tx.send(&buf[..size]).and_then(|()| tx.flush()) {
                return ctl.fail.fail(c, STOP, 0);
            }
            return 0;
        }
        seen = phase;
        loop {
            for _ in 0..CHUNK {
                k += 1;
                payload::stamp(&mut buf[..size], base | k);
                if let Err(c) = tx.send(&buf[..size]) {
                    return ctl.fail.fail(c, base | k, 0);
                }
            }
            if ctl.stop.0.load(Ordering::Relaxed) >= phase {
                break;
            }
        }
        if let Err(c) = tx.flush() {
            return ctl.fail.fail(c, base | k, 0);
        }
        ctl.sent[p].0.store(k, Ordering::Relaxed);
        // Release: publishes `sent`; pairs with the parent's Acquire of `acked`.
        ctl.acked[p].set(phase);
    }
}

fn consume<R: Rx>(mut rx: R, c: usize, size: usize, producers: usize, ctl: &Ctl) -> i32 {
    let mut buf = [0u8; MAX];
    let mut t = Tally::default();
    // Records the failure first, then aborts the transport: the producers'
    // resulting send errors must not win the report.
    let fail = |rx: &R, code: i32, expected: u64, got: u64| {
        let code = ctl.fail.fail(code, expected, got);
        rx.abort();
        code
    };
    loop {
        let n = match rx.recv(&mut buf) {
            Ok(n) => n,
            Err(code) => return fail(&rx, code, t.total, 0),
        };
        let w = match payload::check(&buf[..n], size) {
            Ok(w) => w,
            Err(bad) => {
                let (code, expected, got) = bad.report(size);
                return fail(&rx, code, expected, got);
            }
        };
        if w == STOP {
            t.publish(&ctl.tally[c]);
            return 0;
        }
        if let Err((code, expected)) = t.take(w, producers) {
            return fail(&rx, code, expected, w);
        }
        ctl.received[c].0.store(t.total, Ordering::Relaxed);
    }
}

/// Waits until `done()` is `Ok(true)`, checking the workers every few
/// milliseconds; fails after `limit` or when `done` fails.
fn wait_for(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> Res<bool>,
    alive: &mut dyn FnMut() -> Res,
) -> Res {
    let start = Instant::now();
    let mut checked = start;
    let mut b = Backoff::sleepy();
    while !done()? {
        if checked.elapsed() > Duration::from_millis(5) {
            checked = Instant::now();
            alive()?;
            watchdog::tick();
            if start.elapsed() > limit {
                return Err(format!("{what}: no progress for {limit:?}: stalled").into());
            }
        }
        b.snooze();
    }
    Ok(())
}

/// Runs the warm-up and the measured phase; returns the measured rate.
fn orchestrate(
    ctl: &Ctl,
    pairs: usize,
    t: Timing,
    lost_after: Duration,
    what: &str,
    alive: &mut dyn FnMut() -> Res,
) -> Res<Rate> {
    let mut rate = None;
    let mut total_before = 0u64;
    for (phase, dur, measured) in [(1u64, t.warmup, false), (2, t.time, true)] {
        let limit = Duration::from_secs(30) + dur * 10;
        let t0 = Instant::now();
        ctl.go.set(phase);
        loop {
            let left = dur.saturating_sub(t0.elapsed());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(10)));
            alive()?;
            watchdog::tick();
        }
        ctl.stop.set(phase);
        wait_for(
            what,
            limit,
            || Ok((0..pairs).all(|p| ctl.acked[p].get() >= phase)),
            alive,
        )?;
        let total: u64 = (0..pairs)
            .map(|p| ctl.sent[p].0.load(Ordering::Relaxed))
            .sum();
        let received = || -> u64 {
            (0..pairs)
                .map(|c| ctl.received[c].0.load(Ordering::Relaxed))
                .sum()
        };
        let mut last = (received(), Instant::now());
        wait_for(
            what,
            limit,
            || {
                let got = received();
                if got >= total {
                    return Ok(true);
                }
                if got != last.0 {
                    last = (got, Instant::now());
                } else if last.1.elapsed() > lost_after {
                    return Err(format!(
                        "{what}: the producers sent {total} messages, the consumers received \
                         {got} and nothing more for {lost_after:?}: messages were lost"
                    )
                    .into());
                }
                Ok(false)
            },
            alive,
        )?;
        let secs = t0.elapsed().as_secs_f64();
        if measured {
            rate = Some(Rate {
                msgs: total - total_before,
                secs,
            });
        }
        total_before = total;
    }
    ctl.go.set(EXIT);
    rate.ok_or_else(|| format!("{what}: no measured phase").into())
}

/// Checks, after every worker finished, that each producer's messages arrived
/// exactly once.
fn verify(ctl: &Ctl, pairs: usize, what: &str) -> Res {
    ctl.fail.check(what)?;
    for p in 0..pairs {
        let k = u128::from(ctl.sent[p].0.load(Ordering::Relaxed));
        let want_sum = (k * (k + 1) / 2) as u64;
        let want_sumsq = (k * (k + 1) * (2 * k + 1) / 6) as u64;
        let (mut count, mut sum, mut sumsq) = (0u64, 0u64, 0u64);
        for c in 0..pairs {
            let t = &ctl.tally[c];
            count += t.count[p].load(Ordering::Relaxed);
            sum = sum.wrapping_add(t.sum[p].load(Ordering::Relaxed));
            sumsq = sumsq.wrapping_add(t.sumsq[p].load(Ordering::Relaxed));
        }
        if u128::from(count) != k || sum != want_sum || sumsq != want_sumsq {
            return Err(format!(
                "{what}: producer {p} sent {k} messages but the consumers received {count} \
                 (sum {sum} vs {want_sum}, sum of squares {sumsq} vs {want_sumsq}): \
                 messages were lost or duplicated"
            )
            .into());
        }
    }
    Ok(())
}

/// One run with every worker a forked process.
fn procs<T: Tx, R: Rx>(what: &str, size: usize, t: Timing, txs: Vec<T>, rxs: Vec<R>) -> Res<Rate> {
    procs_with(what, size, t, LOST_AFTER, txs, rxs)
}

/// [`procs`] with the time after which missing messages count as lost.
fn procs_with<T: Tx, R: Rx>(
    what: &str,
    size: usize,
    t: Timing,
    lost_after: Duration,
    txs: Vec<T>,
    rxs: Vec<R>,
) -> Res<Rate> {
    let _armed = watchdog::arm(what);
    let pairs = txs.len();
    assert_eq!(pairs, rxs.len(), "as many producers as consumers");
    let ctl = Shared::<Ctl>::new()?;
    let cr: &Ctl = &ctl;
    let mut workers = Workers::new();
    for (c, rx) in rxs.into_iter().enumerate() {
        workers.spawn(&format!("consumer {c}"), move || {
            consume(rx, c, size, pairs, cr)
        })?;
    }
    for (p, tx) in txs.into_iter().enumerate() {
        workers.spawn(&format!("producer {p}"), move || produce(tx, p, size, cr))?;
    }
    let rate = orchestrate(&ctl, pairs, t, lost_after, what, &mut || {
        workers.check_running(&ctl.fail, what)
    })?;
    workers.reap(&ctl.fail, what, Duration::from_secs(30))?;
    verify(&ctl, pairs, what)?;
    Ok(rate)
}

/// One run with every worker a thread of this process.
fn threads<T: Tx + Send, R: Rx + Send>(
    what: &str,
    size: usize,
    t: Timing,
    txs: Vec<T>,
    rxs: Vec<R>,
) -> Res<Rate> {
    let _armed = watchdog::arm(what);
    let pairs = txs.len();
    assert_eq!(pairs, rxs.len(), "as many producers as consumers");
    let ctl = Shared::<Ctl>::new()?;
    let cr: &Ctl = &ctl;
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (c, rx) in rxs.into_iter().enumerate() {
            handles.push(s.spawn(move || consume(rx, c, size, pairs, cr)));
        }
        for (p, tx) in txs.into_iter().enumerate() {
            handles.push(s.spawn(move || produce(tx, p, size, cr)));
        }
        let rate = orchestrate(cr, pairs, t, LOST_AFTER, what, &mut || {
            cr.fail.check(what)?;
            if handles.iter().any(|h| h.is_finished()) {
                return Err(format!("{what}: a worker thread ended early").into());
            }
            Ok(())
        });
        if rate.is_err() {
            // Let producers finish so the scope can end (consumers of a broken
            // run may still hang: the watchdog catches that).
            cr.go.set(EXIT);
        }
        for h in handles {
            let status = h
                .join()
                .map_err(|_| format!("{what}: worker thread panicked"))?;
            if status != 0 {
                return Err(cr.fail.describe(what).into());
            }
        }
        let rate = rate?;
        verify(cr, pairs, what)?;
        Ok(rate)
    })
}

/// Measures one run of `mech` with `size`-byte messages and `pairs`
/// producers and consumers.
pub fn run(mech: Mech, size: usize, pairs: usize, t: Timing) -> Res<Rate> {
    let what = format!("throughput {} {pairs}->{pairs} {size} B", mech.name());
    match size {
        8 => sized::<8>(mech, pairs, t, &what),
        64 => sized::<64>(mech, pairs, t, &what),
        1024 => sized::<1024>(mech, pairs, t, &what),
        s => Err(format!("unsupported message size {s}").into()),
    }
}

fn sized<const S: usize>(mech: Mech, pairs: usize, t: Timing, what: &str) -> Res<Rate>
where
    [u8; S]: Pod,
{
    if let Some(why) = mech.unsupported(pairs) {
        return Err(why.into());
    }
    let n = pairs;
    match mech {
        Mech::Queue => {
            let q = Queue::<[u8; S]>::anonymous(CAP)?;
            let txs = (0..n).map(|_| QueueTx(&q)).collect();
            let rxs = (0..n).map(|_| QueueRx(&q)).collect();
            procs(what, S, t, txs, rxs)
        }
        Mech::QueueBatch => {
            let q = Queue::<[u8; S]>::anonymous(CAP)?;
            let txs = (0..n)
                .map(|_| BatchTx {
                    q: &q,
                    batch: Vec::with_capacity(BATCH),
                })
                .collect();
            let rxs = (0..n)
                .map(|_| BatchRx {
                    q: &q,
                    buf: vec![[0u8; S]; BATCH],
                    pos: 0,
                    len: 0,
                })
                .collect();
            procs(what, S, t, txs, rxs)
        }
        Mech::Channel => {
            let (tx, rx) = multiproc::spsc::channel::<[u8; S]>(CAP)?;
            procs(what, S, t, vec![ChanTx(tx)], vec![ChanRx(rx)])
        }
        Mech::ChannelBatch => {
            let (tx, rx) = multiproc::spsc::channel::<[u8; S]>(CAP)?;
            let tx = ChanBatchTx {
                tx,
                batch: Vec::with_capacity(BATCH),
            };
            let rx = ChanBatchRx {
                rx,
                buf: vec![[0u8; S]; BATCH],
                pos: 0,
                len: 0,
            };
            procs(what, S, t, vec![tx], vec![rx])
        }
        Mech::Bytes => {
            let q = BytesQueue::anonymous(CAP, S)?;
            let txs = (0..n).map(|_| BytesTx(&q)).collect();
            let rxs = (0..n).map(|_| BytesRx(&q)).collect();
            procs(what, S, t, txs, rxs)
        }
        Mech::Pipe | Mech::Socket => {
            let mut fds = Fds::default();
            let (w, r) = if mech == Mech::Pipe {
                fds.pipe()?
            } else {
                fds.socketpair()?
            };
            // Several readers must not interleave their header and payload
            // reads: a reader lock, as Python's `multiprocessing.Queue` has.
            // Pipe writes up to PIPE_BUF are atomic; stream-socket writes are
            // not promised to be, so sockets also get a writer lock.
            let rlock = if n > 1 {
                Some(PthreadMutex::new()?)
            } else {
                None
            };
            let wlock = if n > 1 && mech == Mech::Socket {
                Some(PthreadMutex::new()?)
            } else {
                None
            };
            let txs = (0..n)
                .map(|_| FrameTx {
                    fd: w,
                    lock: wlock.as_ref(),
                    frame: [0; HDR + MAX],
                })
                .collect();
            let rxs = (0..n)
                .map(|_| FrameRx {
                    fd: r,
                    lock: rlock.as_ref(),
                })
                .collect();
            procs(what, S, t, txs, rxs)
        }
        Mech::PipeBuffered => {
            let mut fds = Fds::default();
            let (w, r) = fds.pipe()?;
            let tx = BufTx {
                fd: w,
                buf: vec![0; BUF],
                len: 0,
            };
            let rx = BufRx {
                fd: r,
                buf: vec![0; BUF],
                start: 0,
                end: 0,
            };
            procs(what, S, t, vec![tx], vec![rx])
        }
        Mech::Mq => {
            let q = super::mq::Mq::new(S)?;
            let txs = (0..n).map(|_| super::mq::MqPort(&q)).collect();
            let rxs = (0..n).map(|_| super::mq::MqPort(&q)).collect();
            procs(what, S, t, txs, rxs)
        }
        Mech::Crossbeam => {
            let q = ArrayQueue::<[u8; S]>::new(CAP);
            let txs = (0..n).map(|_| CbTx(&q)).collect();
            let rxs = (0..n).map(|_| CbRx(&q)).collect();
            threads(what, S, t, txs, rxs)
        }
        Mech::Spsc => {
            let ring = Spsc::new(S)?;
            let (tx, rx) = ring.ends();
            procs(what, S, t, vec![tx], vec![rx])
        }
    }
}

struct ChanTx<const S: usize>(multiproc::spsc::Producer<[u8; S]>)
where
    [u8; S]: Pod;

impl<const S: usize> Tx for ChanTx<S>
where
    [u8; S]: Pod,
{
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let item: [u8; S] = msg.try_into().map_err(|_| code::BAD_LEN)?;
        self.0.send(item).map_err(|_| code::SEND_FAILED)
    }
}

struct ChanRx<const S: usize>(multiproc::spsc::Consumer<[u8; S]>)
where
    [u8; S]: Pod;

impl<const S: usize> Rx for ChanRx<S>
where
    [u8; S]: Pod,
{
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let item = self.0.recv().map_err(|_| code::RECV_FAILED)?;
        buf[..S].copy_from_slice(&item);
        Ok(S)
    }
}

struct ChanBatchTx<const S: usize>
where
    [u8; S]: Pod,
{
    tx: multiproc::spsc::Producer<[u8; S]>,
    batch: Vec<[u8; S]>,
}

impl<const S: usize> Tx for ChanBatchTx<S>
where
    [u8; S]: Pod,
{
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        self.batch.push(msg.try_into().map_err(|_| code::BAD_LEN)?);
        if self.batch.len() == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the whole batch, backing off while the ring is full.
    fn flush(&mut self) -> Result<(), i32> {
        let mut done = 0;
        let mut b = Backoff::new();
        while done < self.batch.len() {
            match self.tx.try_send_many(&self.batch[done..]) {
                Ok(0) => b.snooze(),
                Ok(k) => {
                    done += k;
                    b = Backoff::new();
                }
                Err(_) => return Err(code::SEND_FAILED),
            }
        }
        self.batch.clear();
        Ok(())
    }
}

struct ChanBatchRx<const S: usize>
where
    [u8; S]: Pod,
{
    rx: multiproc::spsc::Consumer<[u8; S]>,
    buf: Vec<[u8; S]>,
    pos: usize,
    len: usize,
}

impl<const S: usize> Rx for ChanBatchRx<S>
where
    [u8; S]: Pod,
{
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let mut b = Backoff::new();
        while self.pos == self.len {
            self.pos = 0;
            self.len = self
                .rx
                .try_recv_many(&mut self.buf)
                .map_err(|_| code::RECV_FAILED)?;
            if self.len == 0 {
                b.snooze();
            }
        }
        // One producer, one consumer: its stop message is the last it sends,
        // so nothing follows it in a batch.
        let item = self.buf[self.pos];
        self.pos += 1;
        buf[..S].copy_from_slice(&item);
        Ok(S)
    }
}

struct QueueTx<'a, const S: usize>(&'a Queue<[u8; S]>);

impl<const S: usize> Tx for QueueTx<'_, S>
where
    [u8; S]: Pod,
{
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let item: [u8; S] = msg.try_into().map_err(|_| code::BAD_LEN)?;
        self.0.put(item).map_err(|_| code::SEND_FAILED)
    }
}

struct QueueRx<'a, const S: usize>(&'a Queue<[u8; S]>);

impl<const S: usize> Rx for QueueRx<'_, S>
where
    [u8; S]: Pod,
{
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let item = self.0.get().map_err(|_| code::RECV_FAILED)?;
        buf[..S].copy_from_slice(&item);
        Ok(S)
    }

    fn abort(&self) {
        self.0.shutdown();
    }
}

struct BatchTx<'a, const S: usize>
where
    [u8; S]: Pod,
{
    q: &'a Queue<[u8; S]>,
    batch: Vec<[u8; S]>,
}

impl<const S: usize> Tx for BatchTx<'_, S>
where
    [u8; S]: Pod,
{
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        self.batch.push(msg.try_into().map_err(|_| code::BAD_LEN)?);
        if self.batch.len() == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Puts the whole batch, backing off while the queue is full.
    fn flush(&mut self) -> Result<(), i32> {
        let mut done = 0;
        let mut b = Backoff::new();
        while done < self.batch.len() {
            let k = self.q.put_many(&self.batch[done..]);
            if k > 0 {
                done += k;
                b = Backoff::new();
                continue;
            }
            if self.q.is_shutdown() {
                return Err(code::SEND_FAILED);
            }
            b.snooze();
        }
        self.batch.clear();
        Ok(())
    }
}

struct BatchRx<'a, const S: usize>
where
    [u8; S]: Pod,
{
    q: &'a Queue<[u8; S]>,
    buf: Vec<[u8; S]>,
    pos: usize,
    len: usize,
}

impl<const S: usize> Rx for BatchRx<'_, S>
where
    [u8; S]: Pod,
{
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let mut b = Backoff::new();
        while self.pos == self.len {
            self.pos = 0;
            self.len = self.q.get_many(&mut self.buf);
            if self.len == 0 {
                if self.q.is_shutdown() {
                    return Err(code::RECV_FAILED);
                }
                b.snooze();
            }
        }
        let item = self.buf[self.pos];
        self.pos += 1;
        if payload::word(&item) == STOP && self.pos < self.len {
            // This consumer ends here; whatever else the batch took (only other
            // consumers' stop messages: all data was received before the
            // producers were told to exit) goes back to the queue.
            let mut rest = self.pos;
            let mut b = Backoff::new();
            while rest < self.len {
                let k = self.q.put_many(&self.buf[rest..self.len]);
                if k == 0 {
                    if self.q.is_shutdown() {
                        return Err(code::SEND_FAILED);
                    }
                    b.snooze();
                }
                rest += k;
            }
            self.len = self.pos;
        }
        buf[..S].copy_from_slice(&item);
        Ok(S)
    }

    fn abort(&self) {
        self.q.shutdown();
    }
}

struct BytesTx<'a>(&'a BytesQueue);

impl Tx for BytesTx<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        self.0.put(msg).map_err(|_| code::SEND_FAILED)
    }
}

struct BytesRx<'a>(&'a BytesQueue);

impl Rx for BytesRx<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        self.0.get_into(buf).map_err(|_| code::RECV_FAILED)
    }

    fn abort(&self) {
        self.0.shutdown();
    }
}

/// Length-prefixed frames, each written with one `write` (under the writer
/// lock, if there is one).
struct FrameTx<'a> {
    fd: libc::c_int,
    lock: Option<&'a PthreadMutex>,
    frame: [u8; HDR + MAX],
}

impl Tx for FrameTx<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let len = u32::try_from(msg.len()).map_err(|_| code::BAD_LEN)?;
        self.frame[..HDR].copy_from_slice(&len.to_le_bytes());
        self.frame
            .get_mut(HDR..HDR + msg.len())
            .ok_or(code::BAD_LEN)?
            .copy_from_slice(msg);
        let frame = &self.frame[..HDR + msg.len()];
        let ok = match self.lock {
            Some(l) => l.with(|| write_all(self.fd, frame))?,
            None => write_all(self.fd, frame),
        };
        if ok { Ok(()) } else { Err(code::SEND_FAILED) }
    }
}

/// Reads the header, then exactly the payload (two `read`s per message, like
/// Python's `Connection.recv_bytes`), under the reader lock if there is one.
struct FrameRx<'a> {
    fd: libc::c_int,
    lock: Option<&'a PthreadMutex>,
}

impl FrameRx<'_> {
    fn read_frame(fd: libc::c_int, buf: &mut [u8]) -> Result<usize, i32> {
        let mut hdr = [0u8; HDR];
        if !read_exact(fd, &mut hdr) {
            return Err(code::RECV_FAILED);
        }
        let len = u32::from_le_bytes(hdr) as usize;
        let dst = buf.get_mut(..len).ok_or(code::BAD_LEN)?;
        if !read_exact(fd, dst) {
            return Err(code::RECV_FAILED);
        }
        Ok(len)
    }
}

impl Rx for FrameRx<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        match self.lock {
            Some(l) => l.with(|| FrameRx::read_frame(self.fd, buf))?,
            None => FrameRx::read_frame(self.fd, buf),
        }
    }
}

/// Frames gathered in a 64 KiB buffer, written when the next one does not fit
/// and at the end of a phase.
struct BufTx {
    fd: libc::c_int,
    buf: Vec<u8>,
    len: usize,
}

impl Tx for BufTx {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let len = u32::try_from(msg.len()).map_err(|_| code::BAD_LEN)?;
        if self.len + HDR + msg.len() > self.buf.len() {
            self.flush()?;
        }
        let at = self.len;
        let dst = self
            .buf
            .get_mut(at..at + HDR + msg.len())
            .ok_or(code::BAD_LEN)?;
        dst[..HDR].copy_from_slice(&len.to_le_bytes());
        dst[HDR..].copy_from_slice(msg);
        self.len += HDR + msg.len();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), i32> {
        let ok = write_all(self.fd, &self.buf[..self.len]);
        self.len = 0;
        if ok { Ok(()) } else { Err(code::SEND_FAILED) }
    }
}

/// Reads as much as the pipe has (up to 64 KiB) and cuts frames out of it.
struct BufRx {
    fd: libc::c_int,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl BufRx {
    /// Makes at least `n` unread bytes available.
    fn fill(&mut self, n: usize) -> Result<(), i32> {
        if n > self.buf.len() {
            return Err(code::BAD_LEN);
        }
        if self.start + n > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < n {
            let got = read_some(self.fd, &mut self.buf[self.end..]).ok_or(code::RECV_FAILED)?;
            self.end += got;
        }
        Ok(())
    }
}

impl Rx for BufRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        self.fill(HDR)?;
        let mut hdr = [0u8; HDR];
        hdr.copy_from_slice(&self.buf[self.start..self.start + HDR]);
        let len = u32::from_le_bytes(hdr) as usize;
        if len > buf.len() {
            return Err(code::BAD_LEN);
        }
        self.fill(HDR + len)?;
        let at = self.start + HDR;
        buf[..len].copy_from_slice(&self.buf[at..at + len]);
        self.start = at + len;
        Ok(len)
    }
}

struct CbTx<'a, const S: usize>(&'a ArrayQueue<[u8; S]>);

impl<const S: usize> Tx for CbTx<'_, S> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let mut item: [u8; S] = msg.try_into().map_err(|_| code::BAD_LEN)?;
        let mut b = Backoff::new();
        while let Err(back) = self.0.push(item) {
            item = back;
            b.snooze();
        }
        Ok(())
    }
}

struct CbRx<'a, const S: usize>(&'a ArrayQueue<[u8; S]>);

impl<const S: usize> Rx for CbRx<'_, S> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let mut b = Backoff::new();
        loop {
            if let Some(item) = self.0.pop() {
                buf[..S].copy_from_slice(&item);
                return Ok(S);
            }
            b.snooze();
        }
    }
}

/// A bare SPSC ring: `head` (consumer position) at offset 0, `tail`
/// (producer position) at 128, [`CAP`] slots of `slot` bytes from 256. Each
/// side caches the other's index and reloads it only when the ring looks full
/// or empty.
#[derive(Debug)]
pub struct Spsc {
    shm: Shm,
    slot: usize,
}

const HEAD: usize = 0;
const TAIL: usize = 128;
const SLOTS: usize = 256;

impl Spsc {
    /// A ring of [`CAP`] slots of `slot` bytes.
    pub fn new(slot: usize) -> Res<Spsc> {
        Ok(Spsc {
            shm: Shm::new(SLOTS + CAP * slot)?,
            slot,
        })
    }

    /// The producer's and the consumer's end (one of each per ring).
    pub fn ends(&self) -> (impl Tx + '_, impl Rx + '_) {
        (
            SpscTx {
                ring: self,
                tail: 0,
                head_cache: 0,
            },
            SpscRx {
                ring: self,
                head: 0,
                tail_cache: 0,
            },
        )
    }

    fn index(&self, off: usize) -> &AtomicU64 {
        assert!(off == HEAD || off == TAIL, "HEAD or TAIL");
        // SAFETY: `off` is HEAD or TAIL, 8-aligned inside the mapping's
        // zero-filled first 256 bytes (zero is a valid `AtomicU64`); the word is
        // only accessed atomically and lives as long as `self`.
        unsafe { &*self.shm.as_ptr().add(off).cast::<AtomicU64>() }
    }

    fn slot(&self, pos: u64) -> *mut u8 {
        let i = (pos % CAP as u64) as usize;
        debug_assert!(SLOTS + (i + 1) * self.slot <= self.shm.len());
        // SAFETY: `i < CAP`, so the slot lies inside the mapping.
        unsafe { self.shm.as_ptr().add(SLOTS + i * self.slot) }
    }
}

struct SpscTx<'a> {
    ring: &'a Spsc,
    tail: u64,
    head_cache: u64,
}

impl Tx for SpscTx<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        if msg.len() != self.ring.slot {
            return Err(code::BAD_LEN);
        }
        let mut b = Backoff::new();
        while self.tail - self.head_cache == CAP as u64 {
            // Acquire: the consumer copied the slot out before freeing it.
            self.head_cache = self.ring.index(HEAD).load(Ordering::Acquire);
            if self.tail - self.head_cache == CAP as u64 {
                b.snooze();
            }
        }
        // SAFETY: the slot at `tail` is free (tail - head < CAP) and only the
        // producer writes it until the Release store below publishes it; the
        // source is `msg`, exactly `slot` bytes long (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), self.ring.slot(self.tail), msg.len());
        }
        self.tail += 1;
        // Release: publishes the slot; pairs with the consumer's Acquire.
        self.ring.index(TAIL).store(self.tail, Ordering::Release);
        Ok(())
    }
}

struct SpscRx<'a> {
    ring: &'a Spsc,
    head: u64,
    tail_cache: u64,
}

impl Rx for SpscRx<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let n = self.ring.slot;
        if buf.len() < n {
            return Err(code::BAD_LEN);
        }
        let mut b = Backoff::new();
        while self.head == self.tail_cache {
            // Acquire: pairs with the producer's Release publish.
            self.tail_cache = self.ring.index(TAIL).load(Ordering::Acquire);
            if self.head == self.tail_cache {
                b.snooze();
            }
        }
        // SAFETY: the slot at `head` was published (head < tail) and the
        // producer does not touch it until the Release store below frees it;
        // `buf` holds at least `slot` bytes (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(self.ring.slot(self.head), buf.as_mut_ptr(), n);
        }
        self.head += 1;
        // Release: frees the slot; pairs with the producer's Acquire.
        self.ring.index(HEAD).store(self.head, Ordering::Release);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug)]
    enum Fault {
        Lose,
        Duplicate,
        Corrupt,
    }

    /// A `Queue` producer that mishandles data message 50, 150, 250, …: the
    /// first phase alone sends at least [`CHUNK`] (64) messages, so every run
    /// has a fault however slow the machine.
    struct Faulty<'a> {
        inner: QueueTx<'a, 64>,
        n: u64,
        fault: Fault,
    }

    impl Tx for Faulty<'_> {
        fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
            self.n += 1;
            if self.n % 100 != 50 || payload::word(msg) == STOP {
                return self.inner.send(msg);
            }
            match self.fault {
                Fault::Lose => Ok(()),
                Fault::Duplicate => {
                    self.inner.send(msg)?;
                    self.inner.send(msg)
                }
                Fault::Corrupt => {
                    let mut bad = msg.to_vec();
                    bad[20] ^= 1;
                    self.inner.send(&bad)
                }
            }
        }
    }

    #[test]
    fn lost_duplicated_or_corrupt_messages_fail_the_run() {
        let t = Timing {
            warmup: Duration::from_millis(1),
            time: Duration::from_millis(20),
        };
        for fault in [Fault::Lose, Fault::Duplicate, Fault::Corrupt] {
            let q = Queue::<[u8; 64]>::anonymous(CAP).expect("queue");
            let tx = Faulty {
                inner: QueueTx(&q),
                n: 0,
                fault,
            };
            let r = procs_with(
                "faulty",
                64,
                t,
                Duration::from_millis(300),
                vec![tx],
                vec![QueueRx(&q)],
            );
            let err = r.expect_err("a faulty transport must fail the run");
            eprintln!("{fault:?}: {err}");
        }
    }
}
