//! The hostile peer: for every region kind, a victim process keeps operating
//! on the object (timed variants only) and re-opening it by name, while a
//! second process scribbles random bytes over the region: the whole region,
//! the header, the participant table, the object's header, its body (indices,
//! slots, entries), single words and bit flips.
//!
//! Pass criteria, per kind:
//! - the victim exits normally: a signal (SIGSEGV, SIGBUS, SIGABRT, SIGILL) is
//!   a failure, and so is a panic (exit code 101);
//! - no operation took longer than its own timeout plus 100 ms (each is
//!   measured, less the time the victim thread spent runnable but waiting for
//!   a CPU, from `/proc/thread-self/schedstat`, so an overloaded machine does
//!   not fail the test; both figures are printed; lock-free operations without a timeout have timeout 0, dict
//!   reads [`multiproc::dict::READ_PATIENCE`], and untimed operations that take
//!   a robust lock (dict writes, `Value`/`Array` writes, manager creation) one
//!   lock slice: a scribbled lock word costs a waiter one slice, after which it
//!   re-probes the owner).
//!
//! The victim is this test binary re-executed (`HOSTILE_ROLE` selects the
//! role); it forks the scribbler (`libc::fork`), which shares the region's
//! mapping and only writes bytes, spins and `_exit`s. Each kind runs `MULTIPROC_HOSTILE_SECS`
//! seconds (default 1); the RNG seed is fixed per kind but varies per run
//! (`MULTIPROC_HOSTILE_SEED` replays one) and is printed on failure.
//!
//! Every byte of the header, the participant table and the object is fair
//! game, lock words and beacons included: the crate's lock word validates what
//! it reads, and the crate only ever writes the robust-list links in the table
//! (their order lives in private memory), so scribbled links can at worst make
//! the kernel's walk at our death stop early. `MULTIPROC_HOSTILE_PARTICIPANTS=0`
//! leaves the table alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step is a failed test"
)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use multiproc::__private::{lock_slice, pipe_regions, region_span};
use multiproc::{
    Array, Barrier, BytesQueue, Condition, Counter, Event, JoinableQueue, Lock, Manager, Pipe,
    Queue, RLock, Region, Semaphore, SharedDict, Value,
};

const ROLE_ENV: &str = "HOSTILE_ROLE";
const SECS_ENV: &str = "MULTIPROC_HOSTILE_SECS";
const SEED_ENV: &str = "MULTIPROC_HOSTILE_SEED";
const TABLE_ENV: &str = "MULTIPROC_HOSTILE_PARTICIPANTS";

/// Slack allowed past an operation's own timeout.
const SLACK: Duration = Duration::from_millis(100);
/// How long `open` waits for a region's creator to finish (its own bound).
const OPEN_WAIT: Duration = Duration::from_secs(2);
/// The timeout the victim passes to timed operations.
const T: Duration = Duration::from_millis(5);

/// One kind at a time: the machine has two cores, and an operation's latency
/// is what is measured.
static SERIAL: Mutex<()> = Mutex::new(());

/// xorshift64*: small, allocation-free (the scribbler runs it after fork).
#[derive(Clone, Copy)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A byte range of a mapping the scribbler may write.
#[derive(Clone, Copy)]
struct Target {
    base: *mut u8,
    len: usize,
    /// Payload (object) offset in the region.
    payload: usize,
}

fn target(r: &Region) -> Target {
    let (base, len) = region_span(r);
    // SAFETY: the header's payload offset (bytes 48..56) lies in the mapping.
    let payload = unsafe { base.add(48).cast::<u64>().read_volatile() } as usize;
    Target {
        base,
        len,
        payload: payload.min(len),
    }
}

/// The scribbler's loop (runs in a forked child: no allocation, no locks).
fn scribble(targets: &[Target], mut rng: Rng, until: Instant, table: bool, dry: bool) -> i32 {
    const HEADER: usize = 256;
    while !dry && Instant::now() < until {
        let t = targets[rng.below(targets.len() as u64) as usize];
        // Where this burst writes: [lo, hi).
        let body = t.payload;
        let (lo, hi) = match rng.below(100) {
            // The whole region (rare: it wrecks everything for good).
            0 => (0, t.len),
            1..=3 => (0, HEADER),
            4..=13 => (HEADER, t.payload),
            14..=49 => (body, (body + 1024).min(t.len)),
            _ => (body, t.len),
        };
        let protected = |i: usize| !table && (HEADER..t.payload).contains(&i);
        if hi > lo {
            let span = (hi - lo) as u64;
            match rng.below(4) {
                // A run of random bytes.
                0 => {
                    let start = lo + rng.below(span) as usize;
                    let n = 1 + rng.below(64) as usize;
                    for i in start..(start + n).min(hi) {
                        if !protected(i) {
                            // SAFETY: `i < len`, inside the shared mapping.
                            unsafe { t.base.add(i).write_volatile(rng.next() as u8) };
                        }
                    }
                }
                // Random aligned words (indices, counts, slot words).
                1 => {
                    for _ in 0..1 + rng.below(8) {
                        let i = (lo + rng.below(span) as usize) & !7;
                        if i >= lo && i + 8 <= hi && !protected(i) && !protected(i + 7) {
                            let v = match rng.below(4) {
                                0 => rng.below(64),
                                1 => 1 << rng.below(64),
                                2 => u64::MAX - rng.below(4),
                                _ => rng.next(),
                            };
                            // SAFETY: `i..i + 8` lies in the mapping, 8-aligned.
                            unsafe { t.base.add(i).cast::<u64>().write_volatile(v) };
                        }
                    }
                }
                // Bit flips.
                2 => {
                    for _ in 0..1 + rng.below(8) {
                        let i = lo + rng.below(span) as usize;
                        if !protected(i) {
                            // SAFETY: `i < len`, inside the shared mapping.
                            unsafe {
                                let p = t.base.add(i);
                                p.write_volatile(p.read_volatile() ^ (1 << rng.below(8)));
                            }
                        }
                    }
                }
                // A longer fill, all of the range.
                _ => {
                    for i in lo..hi.min(lo + 4096) {
                        if !protected(i) {
                            // SAFETY: `i < len`, inside the shared mapping.
                            unsafe { t.base.add(i).write_volatile(rng.next() as u8) };
                        }
                    }
                }
            }
        }
        // Between bursts: 20 us to 2 ms, so the victim runs on both
        // half-scribbled and freshly scribbled state.
        let pause = Duration::from_micros(20 + rng.below(2000));
        let wake = Instant::now() + pause;
        while Instant::now() < wake {
            std::hint::spin_loop();
            if rng.below(64) == 0 {
                std::thread::yield_now();
            }
        }
    }
    0
}

/// Discards an operation's result (errors are allowed; only time and crashes
/// count).
fn ignore<T>(_: T) {}

/// This thread's time spent runnable but waiting for a CPU
/// (`/proc/thread-self/schedstat`, second field), so that a scheduler stall on
/// a loaded machine is not mistaken for an operation that blocked.
struct RunDelay(Option<std::fs::File>);

impl RunDelay {
    fn open() -> RunDelay {
        RunDelay(std::fs::File::open("/proc/thread-self/schedstat").ok())
    }

    fn now(&self) -> Duration {
        use std::os::unix::fs::FileExt;
        let Some(f) = &self.0 else {
            return Duration::ZERO;
        };
        let mut buf = [0u8; 96];
        let n = f.read_at(&mut buf, 0).unwrap_or(0);
        let ns = std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Duration::from_nanos(ns)
    }
}

/// What the victim measured.
struct Tally {
    ops: u64,
    reopens: u64,
    reopened_ok: u64,
    slow: Vec<(String, Duration, Duration, Duration)>,
    /// Largest wall time past an operation's allowance.
    max_over: Duration,
    /// The same, less the time the thread waited for a CPU meanwhile: what
    /// the criterion is checked on.
    max_over_blocked: Duration,
    delay: RunDelay,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            ops: 0,
            reopens: 0,
            reopened_ok: 0,
            slow: Vec::new(),
            max_over: Duration::ZERO,
            max_over_blocked: Duration::ZERO,
            delay: RunDelay::open(),
        }
    }

    fn time(&mut self, what: &str, allowed: Duration, f: impl FnOnce()) {
        let d0 = self.delay.now();
        let t = Instant::now();
        f();
        let took = t.elapsed();
        let stalled = self.delay.now().saturating_sub(d0);
        self.ops += 1;
        let over = took.saturating_sub(allowed);
        self.max_over = self.max_over.max(over);
        // Time the operation really spent (running or asleep in the crate),
        // not waiting in the run queue of an overloaded machine.
        let blocked_over = took.saturating_sub(stalled).saturating_sub(allowed);
        self.max_over_blocked = self.max_over_blocked.max(blocked_over);
        if blocked_over > SLACK && self.slow.len() < 20 {
            self.slow.push((what.to_owned(), took, stalled, allowed));
        }
    }
}

fn env_secs() -> f64 {
    std::env::var(SECS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// The participant table (beacons included) is scribbled too unless
/// `MULTIPROC_HOSTILE_PARTICIPANTS=0`.
fn table_fair_game() -> bool {
    std::env::var(TABLE_ENV).map_or(true, |v| v != "0")
}

/// The victim's work for one kind: operates for `secs` while the scribbler
/// runs, re-opening by name now and then.
fn victim(kind: &str, seed: u64, secs: f64) {
    let name = common::unique_name(&format!("hostile-{}", kind.to_lowercase()));
    // The companion objects some kinds create beside `name` go too: a leaked
    // one makes a later run whose pid is reused fail with AlreadyExists.
    let _u = ["", "-a", "-c", "-r"].map(|suffix| common::Unlink(format!("{name}{suffix}")));
    let table = table_fair_game();
    let mut rng = Rng(seed | 1);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut tally = Tally::new();

    macro_rules! run {
        ($handle:expr, $targets:expr, $reopen:expr, |$h:ident, $r:ident, $t:ident| $ops:block) => {{
            let first = $handle;
            let targets: Vec<Target> = $targets(&first);
            let srng = Rng(rng.next() | 1);
            // A control run: the same victim with nobody scribbling.
            let dry = std::env::var_os("MULTIPROC_HOSTILE_DRY").is_some();
            // The victim has several threads (the test harness's, the crate's
            // beacon), so `multiproc::process::fork` refuses; the child only
            // writes bytes into the shared mapping, reads the clock and
            // `_exit`s: no allocation, no lock.
            // SAFETY: as just said, the child touches nothing another thread
            // could have left locked.
            let child = unsafe { libc::fork() };
            if child == 0 {
                let rc = scribble(&targets, srng, until, table, dry);
                // SAFETY: ends the child without running any destructor.
                unsafe { libc::_exit(rc) };
            }
            assert!(child > 0, "fork scribbler");
            let mut handles = vec![first];
            while Instant::now() < until {
                if rng.below(64) == 0 {
                    tally.reopens += 1;
                    let mut opened = None;
                    // `open` waits up to 2 s for a creator that has not stored
                    // READY yet (the scribbler may have cleared it).
                    tally.time("open", OPEN_WAIT, || opened = $reopen(&name));
                    if let Some(h) = opened {
                        tally.reopened_ok += 1;
                        if handles.len() > 4 {
                            handles.remove(1);
                        }
                        handles.push(h);
                    }
                }
                let i = rng.below(handles.len() as u64) as usize;
                let $h = &handles[i];
                let $r = &mut rng;
                let $t = &mut tally;
                $ops
            }
            // SAFETY: `child` is our own child's pid, not yet reaped.
            unsafe {
                libc::kill(child, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(child, &mut status, 0);
            }
            drop(handles);
        }};
    }

    let one = |r: &Region| vec![target(r)];
    match kind {
        "Queue" => run!(
            Queue::<u64>::create(&name, 16).unwrap(),
            |q: &Queue<u64>| one(q.region()),
            |n: &str| Queue::<u64>::open(n).ok(),
            |q, r, t| {
                match r.below(8) {
                    0 => t.time("try_put", Duration::ZERO, || ignore(q.try_put(r.next()))),
                    1 => t.time("try_get", Duration::ZERO, || ignore(q.try_get())),
                    2 => t.time("put_timeout", T, || ignore(q.put_timeout(1, T))),
                    3 => t.time("get_timeout", T, || ignore(q.get_timeout(T))),
                    4 => t.time("len", Duration::ZERO, || {
                        assert!(q.len() <= q.capacity());
                        assert!(q.stats().len <= 16);
                    }),
                    5 => t.time("recover", Duration::ZERO, || ignore(q.recover())),
                    6 => t.time("batch", Duration::ZERO, || {
                        let mut out = [0u64; 8];
                        assert!(q.put_many(&[1; 8]) <= 8);
                        assert!(q.get_many(&mut out) <= 8);
                    }),
                    _ => t.time("clone+try_put", Duration::ZERO, || {
                        ignore(q.clone().try_put(2))
                    }),
                }
            }
        ),
        "BytesQueue" => run!(
            BytesQueue::create(&name, 8, 32).unwrap(),
            |q: &BytesQueue| one(q.region()),
            |n: &str| BytesQueue::open(n).ok(),
            |q, r, t| {
                let mut buf = [0u8; 32];
                match r.below(6) {
                    0 => t.time("try_put", Duration::ZERO, || ignore(q.try_put(b"hello"))),
                    1 => t.time("try_get", Duration::ZERO, || {
                        if let Ok(m) = q.try_get() {
                            assert!(m.len() <= 32);
                        }
                    }),
                    2 => t.time("put_timeout", T, || ignore(q.put_timeout(&[7; 32], T))),
                    3 => t.time("get_into_timeout", T, || {
                        if let Ok(n) = q.get_into_timeout(&mut buf, T) {
                            assert!(n <= 32);
                        }
                    }),
                    4 => t.time("recover", Duration::ZERO, || ignore(q.recover())),
                    _ => t.time("len", Duration::ZERO, || assert!(q.len() <= q.capacity())),
                }
            }
        ),
        "JoinableQueue" => run!(
            JoinableQueue::<u64>::create(&name, 8).unwrap(),
            |q: &JoinableQueue<u64>| one(q.region()),
            |n: &str| JoinableQueue::<u64>::open(n).ok(),
            |q, r, t| {
                match r.below(5) {
                    0 => t.time("put_timeout", T, || ignore(q.put_timeout(3, T))),
                    1 => t.time("get_timeout+task_done", T, || {
                        if q.get_timeout(T).is_ok() {
                            let _ = q.task_done();
                        }
                    }),
                    2 => t.time("join_timeout", T, || ignore(q.join_timeout(T))),
                    3 => t.time("unfinished", Duration::ZERO, || ignore(q.unfinished())),
                    _ => t.time("try_get", Duration::ZERO, || ignore(q.try_get())),
                }
            }
        ),
        "Pipe" => {
            // Anonymous only: the victim keeps both ends; nothing to re-open.
            run!(
                Pipe::anonymous(8, 32).unwrap(),
                |p: &(multiproc::PipeEnd, multiproc::PipeEnd)| {
                    pipe_regions(&p.0).iter().map(|r| target(r)).collect()
                },
                |_: &str| None,
                |p, r, t| {
                    let (a, b) = (&p.0, &p.1);
                    match r.below(4) {
                        0 => t.time("send_timeout", T, || ignore(a.send_timeout(b"ping", T))),
                        1 => t.time("recv_timeout", T, || ignore(b.recv_timeout(T))),
                        2 => t.time("poll", T, || ignore(b.poll(T))),
                        _ => t.time("send back", T, || ignore(b.send_timeout(b"pong", T))),
                    }
                }
            )
        }
        "SharedDict" => {
            let patience = multiproc::dict::READ_PATIENCE;
            let slice = lock_slice();
            run!(
                SharedDict::<u64, u64>::create(&name, 32).unwrap(),
                |d: &SharedDict<u64, u64>| one(d.region()),
                |n: &str| SharedDict::<u64, u64>::open(n).ok(),
                |d, r, t| {
                    let k = r.below(48);
                    match r.below(7) {
                        0 => t.time("get", patience, || ignore(d.get(&k))),
                        1 => t.time("insert", slice, || ignore(d.insert(k, k))),
                        2 => t.time("update", slice, || {
                            ignore(d.update(&k, |v| *v = v.wrapping_add(1)))
                        }),
                        3 => t.time("remove", slice, || ignore(d.remove(&k))),
                        4 => t.time("iter", patience, || {
                            if let Ok(it) = d.iter() {
                                assert!(it.count() <= d.capacity());
                            }
                        }),
                        5 => t.time("len", Duration::ZERO, || assert!(d.len() <= d.capacity())),
                        _ => t.time("contains_key", patience, || ignore(d.contains_key(&k))),
                    }
                }
            )
        }
        "Value" => run!(
            (
                Value::<u64>::create(&name, 1).unwrap(),
                Array::<u64>::create(&format!("{name}-a"), 8).unwrap(),
                Counter::create(&format!("{name}-c"), 0).unwrap(),
            ),
            |v: &(Value<u64>, Array<u64>, Counter)| vec![
                target(v.0.region()),
                target(v.1.region()),
                target(v.2.region()),
            ],
            |n: &str| Some((
                Value::<u64>::open(n).ok()?,
                Array::<u64>::open(&format!("{n}-a")).ok()?,
                Counter::open(&format!("{n}-c")).ok()?,
            )),
            |v, r, t| {
                let i = r.below(10) as usize;
                match r.below(6) {
                    0 => t.time("value load", lock_slice(), || ignore(v.0.load())),
                    1 => t.time("value store", lock_slice(), || ignore(v.0.store(i as u64))),
                    2 => t.time("array get", lock_slice(), || ignore(v.1.get(i))),
                    3 => t.time("array set", lock_slice(), || ignore(v.1.set(i, 1))),
                    4 => t.time("array to_vec", lock_slice(), || ignore(v.1.to_vec())),
                    _ => t.time("counter", lock_slice(), || ignore(v.2.fetch_add(1))),
                }
            }
        ),
        "Lock" => run!(
            (
                Lock::create(&name).unwrap(),
                RLock::create(&format!("{name}-r")).unwrap()
            ),
            |l: &(Lock, RLock)| vec![target(l.0.region()), target(l.1.region()),],
            |n: &str| Some((Lock::open(n).ok()?, RLock::open(&format!("{n}-r")).ok()?)),
            |l, r, t| {
                match r.below(4) {
                    0 => t.time("try_lock", Duration::ZERO, || ignore(l.0.try_lock())),
                    1 => t.time("lock_timeout", T, || ignore(l.0.lock_timeout(T))),
                    2 => t.time("rlock try_lock", Duration::ZERO, || ignore(l.1.try_lock())),
                    _ => t.time("rlock lock_timeout", T, || ignore(l.1.lock_timeout(T))),
                }
            }
        ),
        "Semaphore" => run!(
            Semaphore::create(&name, 2).unwrap(),
            |s: &Semaphore| one(s.region()),
            |n: &str| Semaphore::open(n).ok(),
            |s, r, t| {
                match r.below(4) {
                    0 => t.time("try_acquire", Duration::ZERO, || ignore(s.try_acquire())),
                    1 => t.time("acquire_timeout", T, || ignore(s.acquire_timeout(T))),
                    2 => t.time("release", Duration::ZERO, || ignore(s.release())),
                    _ => t.time("value", Duration::ZERO, || ignore(s.value())),
                }
            }
        ),
        "Event" => run!(
            Event::create(&name).unwrap(),
            |e: &Event| one(e.region()),
            |n: &str| Event::open(n).ok(),
            |e, r, t| {
                match r.below(4) {
                    0 => t.time("set", Duration::ZERO, || e.set()),
                    1 => t.time("clear", Duration::ZERO, || e.clear()),
                    2 => t.time("is_set", Duration::ZERO, || ignore(e.is_set())),
                    _ => t.time("wait_timeout", T, || ignore(e.wait_timeout(T))),
                }
            }
        ),
        "Condition" => run!(
            Condition::create(&name).unwrap(),
            |c: &Condition| one(c.region()),
            |n: &str| Condition::open(n).ok(),
            |c, r, t| {
                match r.below(3) {
                    0 => t.time("lock+wait_timeout", T + T, || {
                        if let Ok(g) = c.lock_timeout(T) {
                            ignore(c.wait_timeout(g, T));
                        }
                    }),
                    1 => t.time("notify_all", Duration::ZERO, || ignore(c.notify_all())),
                    _ => t.time("try_lock", Duration::ZERO, || ignore(c.try_lock())),
                }
            }
        ),
        "Barrier" => run!(
            Barrier::create(&name, 1).unwrap(),
            |b: &Barrier| one(b.region()),
            |n: &str| Barrier::open(n).ok(),
            |b, r, t| {
                match r.below(4) {
                    0 => t.time("wait_timeout", T, || ignore(b.wait_timeout(T))),
                    1 => t.time("reset", Duration::ZERO, || b.reset()),
                    2 => t.time("is_broken", Duration::ZERO, || ignore(b.is_broken())),
                    _ => t.time("n_waiting", Duration::ZERO, || ignore(b.n_waiting())),
                }
            }
        ),
        "Manager" => {
            let make = |m: &Manager| {
                let _ = m.counter("c", 0);
                let _ = m.queue::<u64>("q", 8);
            };
            run!(
                {
                    let m = Manager::create(&name, 1 << 16).unwrap();
                    make(&m);
                    m
                },
                |m: &Manager| one(m.region()),
                |n: &str| Manager::open(n).ok(),
                |m, r, t| {
                    match r.below(6) {
                        0 => t.time("counter", lock_slice(), || {
                            if let Ok(c) = m.counter("c", 0) {
                                c.fetch_add(1);
                            }
                        }),
                        1 => t.time("queue put", lock_slice(), || {
                            if let Ok(q) = m.queue::<u64>("q", 8) {
                                let _ = q.try_put(1);
                            }
                        }),
                        2 => t.time("queue get_timeout", T + lock_slice(), || {
                            if let Ok(q) = m.queue::<u64>("q", 8) {
                                let _ = q.get_timeout(T);
                            }
                        }),
                        3 => t.time("names", Duration::ZERO, || {
                            assert!(m.names().len() <= multiproc::manager::DEFAULT_ENTRIES)
                        }),
                        4 => t.time("objects", Duration::ZERO, || ignore(m.objects())),
                        _ => t.time("new counter", lock_slice(), || {
                            ignore(m.counter(&format!("n{}", r.below(300)), 1))
                        }),
                    }
                }
            )
        }
        "SpscChannel" => run!(
            std::cell::RefCell::new(multiproc::spsc::channel::<u64>(8).unwrap()),
            |c: &std::cell::RefCell<(
                multiproc::spsc::Producer<u64>,
                multiproc::spsc::Consumer<u64>,
            )>| one(c.borrow().0.region()),
            // Anonymous only: nothing to re-open.
            |_: &str| None,
            |c, r, t| {
                let (tx, rx) = &mut *c.borrow_mut();
                match r.below(6) {
                    0 => t.time("try_send", Duration::ZERO, || ignore(tx.try_send(r.next()))),
                    1 => t.time("try_recv", Duration::ZERO, || ignore(rx.try_recv())),
                    2 => t.time("send_timeout", T, || ignore(tx.send_timeout(1, T))),
                    3 => t.time("recv_timeout", T, || ignore(rx.recv_timeout(T))),
                    4 => t.time("send_many", Duration::ZERO, || {
                        if let Ok(k) = tx.try_send_many(&[1; 8]) {
                            assert!(k <= 8);
                        }
                    }),
                    _ => t.time("recv_many", Duration::ZERO, || {
                        let mut out = [0u64; 8];
                        if let Ok(k) = rx.try_recv_many(&mut out) {
                            assert!(k <= 8);
                        }
                    }),
                }
            }
        ),
        other => panic!("unknown kind {other}"),
    }

    println!(
        "HOSTILE kind={kind} seed={seed:#x} secs={secs} ops={} reopens={} reopened_ok={} \
         max_over_ms={:.1} max_over_less_runqueue_ms={:.1} slow={}",
        tally.ops,
        tally.reopens,
        tally.reopened_ok,
        tally.max_over.as_secs_f64() * 1e3,
        tally.max_over_blocked.as_secs_f64() * 1e3,
        tally.slow.len()
    );
    assert!(
        tally.slow.is_empty(),
        "{kind}: operations blocked past their timeout + {SLACK:?} \
         (op, wall time, of which waiting for a CPU, allowed): {:?}",
        tally.slow
    );
}

/// The victim's entry point in the re-executed binary; a no-op otherwise.
#[test]
fn hostile_victim_role() {
    let Ok(spec) = std::env::var(ROLE_ENV) else {
        return;
    };
    let mut it = spec.split(':');
    let kind = it.next().unwrap().to_owned();
    let seed = u64::from_str_radix(it.next().unwrap(), 16).unwrap();
    let secs: f64 = it.next().unwrap().parse().unwrap();
    victim(&kind, seed, secs);
}

fn seed_for(kind: &str) -> u64 {
    if let Some(s) = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
    {
        return s;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ now ^ u64::from(std::process::id()) << 32;
    for b in kind.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn run_kind(kind: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = seed_for(kind);
    let secs = env_secs();
    let watchdog = Duration::from_secs_f64(secs) + Duration::from_secs(30);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hostile_victim_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_ENV, format!("{kind}:{seed:x}:{secs}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > watchdog {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail = |s: &str| s.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    let replay = format!("replay: {SEED_ENV}={seed:x} {SECS_ENV}={secs}");
    let Some(status) = status else {
        panic!(
            "{kind}: victim hung past the {watchdog:?} watchdog ({replay})\n{}",
            tail(&stdout)
        );
    };
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        panic!(
            "{kind}: victim died with signal {sig} ({replay})\n{}\n{}",
            tail(&stdout),
            tail(&stderr)
        );
    }
    assert!(
        status.success(),
        "{kind}: victim failed with {status} ({replay})\n{}\n{}",
        tail(&stdout),
        tail(&stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("HOSTILE kind=").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("{kind}: victim printed no summary ({replay})\n{stdout}"));
    eprintln!("{line}");
    // The victim really ran and kept operating.
    let ops: u64 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("ops="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(ops >= 10, "{kind}: only {ops} operations\n{line}");
}

#[test]
fn hostile_queue() {
    run_kind("Queue");
}

#[test]
fn hostile_spsc_channel() {
    run_kind("SpscChannel");
}

#[test]
fn hostile_bytes_queue() {
    run_kind("BytesQueue");
}

#[test]
fn hostile_joinable_queue() {
    run_kind("JoinableQueue");
}

#[test]
fn hostile_pipe() {
    run_kind("Pipe");
}

#[test]
fn hostile_shared_dict() {
    run_kind("SharedDict");
}

#[test]
fn hostile_value_array_counter() {
    run_kind("Value");
}

#[test]
fn hostile_lock_rlock() {
    run_kind("Lock");
}

#[test]
fn hostile_semaphore() {
    run_kind("Semaphore");
}

#[test]
fn hostile_event() {
    run_kind("Event");
}

#[test]
fn hostile_condition() {
    run_kind("Condition");
}

#[test]
fn hostile_barrier() {
    run_kind("Barrier");
}

#[test]
fn hostile_manager() {
    run_kind("Manager");
}
