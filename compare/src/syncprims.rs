//! Sync primitives: the wake-up round trip of events and conditions, and the
//! contended hand-off of locks.
//!
//! * Wake-up: ping-pong as in [`super::latency`] with 8-byte messages, where a
//!   message is a word in shared memory plus a signal. Events: two of them,
//!   one per direction; a side stores the word, sets the peer's event; the peer
//!   waits, clears, reads. Conditions: one condition and one word; a side
//!   takes the lock, stores the word, notifies and unlocks; the peer waits
//!   (with the lock) while the word is still the one it sent last.
//! * Locks: two workers (processes, or threads for `std`) take the lock, do a
//!   non-atomic increment of a shared counter (a load and a store) and note
//!   whether the previous holder was the other worker, release, do about
//!   100 ns of local work (so the other worker gets a chance), repeat, for
//!   the phase's duration. Figures: time per acquisition (phase time over all
//!   acquisitions), acquisitions per second, and the share of acquisitions
//!   that changed hands. At the end the counter must equal the number of
//!   acquisitions (mutual exclusion held).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use multiproc::{Condition, Event, Lock};
use raw_sync::Timeout;
use raw_sync::events::{EventImpl, EventInit, EventState};

use super::latency::{self, End, Timing};
use super::payload::word;
use super::plumbing::{
    Backoff, FailBlock, Line, PthreadMutex, Res, Shared, Shm, Workers, ZeroShared, code, watchdog,
};
use super::stats::LockRun;

/// Wake-up rows, in table order.
pub const WAKEUP_ROWS: [&str; 4] = [
    "multiproc Event",
    "multiproc Condition",
    "raw_sync Event (pthread mutex + cond)",
    "std Mutex + Condvar (threads)",
];

/// Lock rows, in table order.
pub const LOCK_ROWS: [&str; 3] = [
    "multiproc Lock (robust)",
    "raw_sync Mutex (pthread, not robust)",
    "std Mutex (threads)",
];

/// The words a wake-up ping-pong carries, one per direction.
#[derive(Debug)]
#[repr(C)]
struct Words {
    to_child: Line,
    to_parent: Line,
}

// SAFETY: atomics only; zero is a valid `AtomicU64`.
unsafe impl ZeroShared for Words {}

/// Measures one wake-up round-trip run of row `i` of [`WAKEUP_ROWS`].
pub fn wakeup(i: usize, t: Timing) -> Res<Histogram<u64>> {
    let what = format!("wake-up {}", WAKEUP_ROWS[i]);
    let words = Shared::<Words>::new()?;
    match i {
        0 => {
            let ping = Event::anonymous()?;
            let pong = Event::anonymous()?;
            let parent = EventEnd {
                tx: &ping,
                rx: &pong,
                tx_word: &words.to_child.0,
                rx_word: &words.to_parent.0,
            };
            let child = EventEnd {
                tx: &pong,
                rx: &ping,
                tx_word: &words.to_parent.0,
                rx_word: &words.to_child.0,
            };
            latency::processes(&what, 8, t, parent, child)
        }
        1 => {
            let cond = Condition::anonymous()?;
            let w = &words.to_child.0;
            let parent = CondEnd {
                cond: &cond,
                word: w,
                last_sent: 0,
            };
            let child = CondEnd {
                cond: &cond,
                word: w,
                last_sent: 0,
            };
            latency::processes(&what, 8, t, parent, child)
        }
        2 => {
            let ping = RsEvent::new()?;
            let pong = RsEvent::new()?;
            let parent = RsEventEnd {
                tx: &*pong.ev,
                rx: &*ping.ev,
                tx_word: &words.to_child.0,
                rx_word: &words.to_parent.0,
            };
            let child = RsEventEnd {
                tx: &*ping.ev,
                rx: &*pong.ev,
                tx_word: &words.to_parent.0,
                rx_word: &words.to_child.0,
            };
            latency::processes(&what, 8, t, parent, child)
        }
        _ => {
            let m = std::sync::Mutex::new(0u64);
            let cv = std::sync::Condvar::new();
            let parent = CvEnd {
                m: &m,
                cv: &cv,
                last_sent: 0,
            };
            let child = CvEnd {
                m: &m,
                cv: &cv,
                last_sent: 0,
            };
            latency::threads(&what, 8, t, parent, child)
        }
    }
}

struct EventEnd<'a> {
    tx: &'a Event,
    rx: &'a Event,
    tx_word: &'a AtomicU64,
    rx_word: &'a AtomicU64,
}

impl End for EventEnd<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        // Release: publishes the word with the signal (pairs with `recv`).
        self.tx_word.store(word(msg), Ordering::Release);
        self.tx.set();
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        self.rx.wait();
        // Cleared before this side signals the peer, so the peer's next `set`
        // comes after it: no wake-up is lost or seen twice.
        self.rx.clear();
        // Acquire: pairs with the peer's Release store in `send`.
        let w = self.rx_word.load(Ordering::Acquire);
        buf[..8].copy_from_slice(&w.to_le_bytes());
        Ok(8)
    }
}

struct CondEnd<'a> {
    cond: &'a Condition,
    word: &'a AtomicU64,
    last_sent: u64,
}

impl End for CondEnd<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let w = word(msg);
        let guard = self.cond.lock().map_err(|_| code::LOCK_FAILED)?;
        // Relaxed: the condition's lock orders it.
        self.word.store(w, Ordering::Relaxed);
        self.cond.notify_all().map_err(|_| code::LOCK_FAILED)?;
        drop(guard);
        self.last_sent = w;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let guard = self.cond.lock().map_err(|_| code::LOCK_FAILED)?;
        let last = self.last_sent;
        let guard = self
            .cond
            .wait_while(guard, || self.word.load(Ordering::Relaxed) == last)
            .map_err(|_| code::LOCK_FAILED)?;
        let w = self.word.load(Ordering::Relaxed);
        drop(guard);
        buf[..8].copy_from_slice(&w.to_le_bytes());
        Ok(8)
    }
}

/// A `raw_sync` auto-reset event (pthread mutex + condition variable, process
/// shared) in its own shared mapping.
struct RsEvent {
    ev: Box<dyn EventImpl>,
    // After `ev`: the event is dropped before its memory.
    _shm: Shm,
}

impl RsEvent {
    fn new() -> Res<RsEvent> {
        let shm = Shm::new(raw_sync::events::Event::size_of(None) + 64)?;
        // SAFETY: the mapping is fresh, used by nothing else, larger than the
        // event plus alignment padding, and outlives it (field order).
        let (ev, _) = unsafe { raw_sync::events::Event::new(shm.as_ptr(), true) }
            .map_err(|e| format!("raw_sync event: {e}"))?;
        Ok(RsEvent { ev, _shm: shm })
    }
}

struct RsEventEnd<'a> {
    tx: &'a dyn EventImpl,
    rx: &'a dyn EventImpl,
    tx_word: &'a AtomicU64,
    rx_word: &'a AtomicU64,
}

impl End for RsEventEnd<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        // Release: publishes the word (the event's mutex orders it too).
        self.tx_word.store(word(msg), Ordering::Release);
        self.tx
            .set(EventState::Signaled)
            .map_err(|_| code::SEND_FAILED)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        // Auto-reset: a successful wait clears the event.
        self.rx
            .wait(Timeout::Infinite)
            .map_err(|_| code::RECV_FAILED)?;
        // Acquire: pairs with the peer's Release store in `send`.
        let w = self.rx_word.load(Ordering::Acquire);
        buf[..8].copy_from_slice(&w.to_le_bytes());
        Ok(8)
    }
}

struct CvEnd<'a> {
    m: &'a std::sync::Mutex<u64>,
    cv: &'a std::sync::Condvar,
    last_sent: u64,
}

impl End for CvEnd<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        let w = word(msg);
        let mut g = self.m.lock().map_err(|_| code::LOCK_FAILED)?;
        *g = w;
        self.cv.notify_all();
        drop(g);
        self.last_sent = w;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let g = self.m.lock().map_err(|_| code::LOCK_FAILED)?;
        let last = self.last_sent;
        let g = self
            .cv
            .wait_while(g, |v| *v == last)
            .map_err(|_| code::LOCK_FAILED)?;
        let w = *g;
        drop(g);
        buf[..8].copy_from_slice(&w.to_le_bytes());
        Ok(8)
    }
}

/// A lock under test.
trait Locker {
    /// Runs `f` holding the lock.
    fn with(&self, f: impl FnOnce()) -> Result<(), i32>;
}

impl Locker for Lock {
    fn with(&self, f: impl FnOnce()) -> Result<(), i32> {
        let guard = self.lock().map_err(|_| code::LOCK_FAILED)?;
        f();
        drop(guard);
        Ok(())
    }
}

impl Locker for PthreadMutex {
    fn with(&self, f: impl FnOnce()) -> Result<(), i32> {
        PthreadMutex::with(self, f)
    }
}

impl Locker for std::sync::Mutex<()> {
    fn with(&self, f: impl FnOnce()) -> Result<(), i32> {
        let guard = self.lock().map_err(|_| code::LOCK_FAILED)?;
        f();
        drop(guard);
        Ok(())
    }
}

/// The control block of a lock run.
#[derive(Debug)]
#[repr(C)]
struct LockCtl {
    go: Line,
    stop: Line,
    /// Acquisitions by worker `w` in all, published at the end of a phase.
    count: [Line; 2],
    /// Of those, the ones where the previous holder was the other worker.
    handoffs: [Line; 2],
    acked: [Line; 2],
    /// Incremented (load + store) under the lock.
    counter: Line,
    /// The last holder (1 + worker index), written under the lock.
    owner: Line,
    fail: FailBlock,
}

// SAFETY: atomics only; zero is a valid `AtomicU64`.
unsafe impl ZeroShared for LockCtl {}

const EXIT: u64 = u64::MAX;
const CHUNK: usize = 64;

/// Work between two acquisitions (a few dozen dependent multiply-adds, about
/// 100 ns), so the other worker gets a chance at the lock and hand-offs happen:
/// without it the releasing worker takes the lock straight back.
#[inline(never)]
fn local_work(mut x: u64) -> u64 {
    for i in 0..32 {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    x
}

fn contend<L: Locker>(lock: &L, me: usize, ctl: &LockCtl) -> i32 {
    let mine = me as u64 + 1;
    let (mut n, mut hand, mut seen, mut outside) = (0u64, 0u64, 0u64, 0u64);
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
            return 0;
        }
        seen = phase;
        loop {
            for _ in 0..CHUNK {
                // Relaxed inside: the lock orders these accesses.
                let r = lock.with(|| {
                    let c = ctl.counter.0.load(Ordering::Relaxed);
                    ctl.counter.0.store(c + 1, Ordering::Relaxed);
                    if ctl.owner.0.load(Ordering::Relaxed) != mine {
                        ctl.owner.0.store(mine, Ordering::Relaxed);
                        hand += 1;
                    }
                });
                if let Err(c) = r {
                    return ctl.fail.fail(c, n, 0);
                }
                n += 1;
                outside = local_work(outside);
            }
            if ctl.stop.0.load(Ordering::Relaxed) >= phase {
                break;
            }
        }
        ctl.count[me].0.store(n, Ordering::Relaxed);
        ctl.handoffs[me].0.store(hand, Ordering::Relaxed);
        // Release: publishes the counts; pairs with the parent's Acquire.
        ctl.acked[me].set(phase);
    }
}

fn lock_phases(
    ctl: &LockCtl,
    t: Timing,
    what: &str,
    alive: &mut dyn FnMut() -> Res,
) -> Res<LockRun> {
    let sum =
        |lines: &[Line; 2]| -> u64 { lines.iter().map(|l| l.0.load(Ordering::Relaxed)).sum() };
    let mut before = (0u64, 0u64);
    let mut run = None;
    for (phase, dur, measured) in [(1u64, t.warmup, false), (2, t.time, true)] {
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
        let limit = Duration::from_secs(30) + dur * 10;
        let mut b = Backoff::sleepy();
        while !(0..2).all(|w| ctl.acked[w].get() >= phase) {
            if t0.elapsed() > limit + dur {
                return Err(format!("{what}: workers did not finish the phase: stalled").into());
            }
            alive()?;
            b.snooze();
        }
        let secs = t0.elapsed().as_secs_f64();
        let now = (sum(&ctl.count), sum(&ctl.handoffs));
        if measured {
            run = Some(LockRun {
                acquisitions: now.0 - before.0,
                handoffs: now.1 - before.1,
                secs,
            });
        }
        before = now;
    }
    ctl.go.set(EXIT);
    run.ok_or_else(|| format!("{what}: no measured phase").into())
}

fn check_exclusion(ctl: &LockCtl, what: &str) -> Res {
    ctl.fail.check(what)?;
    let total: u64 = ctl.count.iter().map(|l| l.0.load(Ordering::Relaxed)).sum();
    let counter = ctl.counter.0.load(Ordering::Relaxed);
    if counter != total {
        return Err(format!(
            "{what}: the counter incremented under the lock is {counter}, but the lock was \
             taken {total} times: mutual exclusion failed"
        )
        .into());
    }
    Ok(())
}

/// Measures one contended run of row `i` of [`LOCK_ROWS`].
pub fn lock(i: usize, t: Timing) -> Res<LockRun> {
    let what = format!("lock {}", LOCK_ROWS[i]);
    let _armed = watchdog::arm(&what);
    let ctl = Shared::<LockCtl>::new()?;
    let cr: &LockCtl = &ctl;
    match i {
        0 | 1 => {
            let mp = Lock::anonymous()?;
            let pt = PthreadMutex::new()?;
            let mut workers = Workers::new();
            for me in 0..2 {
                let (mp, pt) = (&mp, &pt);
                workers.spawn(&format!("worker {me}"), move || {
                    if i == 0 {
                        contend(mp, me, cr)
                    } else {
                        contend(pt, me, cr)
                    }
                })?;
            }
            let run = lock_phases(cr, t, &what, &mut || workers.check_running(&cr.fail, &what))?;
            workers.reap(&cr.fail, &what, Duration::from_secs(30))?;
            check_exclusion(cr, &what)?;
            Ok(run)
        }
        _ => {
            let m = std::sync::Mutex::new(());
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..2)
                    .map(|me| {
                        let m = &m;
                        s.spawn(move || contend(m, me, cr))
                    })
                    .collect();
                let run = lock_phases(cr, t, &what, &mut || {
                    cr.fail.check(&what)?;
                    if handles.iter().any(|h| h.is_finished()) {
                        return Err(format!("{what}: a worker thread ended early").into());
                    }
                    Ok(())
                });
                cr.go.set(EXIT);
                for h in handles {
                    let status = h
                        .join()
                        .map_err(|_| format!("{what}: worker thread panicked"))?;
                    if status != 0 {
                        return Err(cr.fail.describe(&what).into());
                    }
                }
                let run = run?;
                check_exclusion(cr, &what)?;
                Ok(run)
            })
        }
    }
}
