//! A tour of every primitive, each used by real forked processes.
//!
//! ```text
//! cargo run --release --example tour
//! ```
//!
//! Sections: `Queue` (3 producer processes, the parent consumes: every item
//! exactly once, in order per producer), `SharedDict` through a `Manager` (4
//! processes count words in one dict they each get by name), `Pipe` (a child
//! answers the parent's messages), `Lock` (4 processes increment one plain counter), `RLock`
//! (re-entry in a child, exclusion for the parent), `Semaphore` (8 processes,
//! at most 3 inside at once), `BoundedSemaphore` (an extra release is refused),
//! `Event` (a start signal), `Condition` (producer and consumer hand values
//! through a one-value slot), `Barrier` (4 processes, 3 rounds) and robustness
//! (a child is SIGKILLed holding the `Lock`; the parent gets `OwnerDied`,
//! repairs the data and goes on; a producer is SIGKILLed while it streams into
//! a `Queue`, which keeps working: nothing after the loss point is missing or
//! out of order, at most the one message in flight is lost and counted).
//!
//! Children only compute: they report through a small shared mapping made here
//! ([`Shared`]) and their exit code, and the parent prints everything. The
//! program exits 0 only if every check passed; it takes well under a second.

#![allow(
    clippy::disallowed_types,
    reason = "the example keeps plain std atomics in its own mapping; the lint is for the crate's loom facade"
)]

use std::error::Error;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multiproc::process::{self, Child, ExitStatus};
use multiproc::{
    Barrier, BoundedSemaphore, Condition, Error as MpError, Event, FixedStr, GetError, Lock,
    LockError, Manager, Pipe, Queue, RLock, ReleaseError, Semaphore,
};

type Res<T = ()> = Result<T, Box<dyn Error>>;

/// One section of the tour: prints what happened, fails if a check failed.
type Section = fn() -> Res;

/// How long the parent waits for any child before killing it and failing.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Words of plain data in a `MAP_SHARED | MAP_ANONYMOUS` mapping: forked
/// children see the very same memory as the parent.
#[derive(Clone, Copy)]
struct Shared {
    words: &'static [AtomicU64],
}

impl Shared {
    /// `n` zeroed words, shared with every child forked afterwards.
    fn new(n: usize) -> std::io::Result<Shared> {
        let len = n.max(1) * size_of::<AtomicU64>();
        // SAFETY: asks for a fresh mapping at an address the kernel picks, so no
        // existing memory is touched; the arguments are valid for an anonymous map.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the mapping is `len >= n * 8` bytes, page aligned (enough for
        // AtomicU64), zero-filled (a valid AtomicU64), and never unmapped, so a
        // `'static` borrow is sound. It is only accessed through atomics, in this
        // process and in forked children, which share the pages (MAP_SHARED).
        let words = unsafe { std::slice::from_raw_parts(p.cast::<AtomicU64>(), n) };
        Ok(Shared { words })
    }

    fn at(&self, i: usize) -> &'static AtomicU64 {
        &self.words[i]
    }

    fn get(&self, i: usize) -> u64 {
        self.words[i].load(Ordering::SeqCst)
    }

    fn set(&self, i: usize, v: u64) {
        self.words[i].store(v, Ordering::SeqCst);
    }
}

/// Turns a failed check into an error.
fn check(ok: bool, what: impl Into<String>) -> Res {
    if ok { Ok(()) } else { Err(what.into().into()) }
}

/// Waits for one child (killing it after [`WATCHDOG`]) and returns its status.
fn reap(child: Child) -> Res<ExitStatus> {
    let pid = child.pid();
    if let Some(s) = child.wait_timeout(WATCHDOG)? {
        return Ok(s);
    }
    child.kill()?;
    child.wait()?;
    Err(format!("child {pid} hung and was killed").into())
}

/// Waits for every child; fails unless all exited with code 0.
fn join_ok(section: &str, children: Vec<Child>) -> Res {
    let mut failures = Vec::new();
    for child in children {
        let pid = child.pid();
        match reap(child) {
            Ok(s) if s.success() => {}
            Ok(s) => failures.push(format!("child {pid}: {s:?}")),
            Err(e) => failures.push(e.to_string()),
        }
    }
    check(
        failures.is_empty(),
        format!("{section}: {}", failures.join(", ")),
    )
}

/// Polls `cond` every millisecond for up to [`WATCHDOG`].
fn wait_until(what: &str, cond: impl Fn() -> bool) -> Res {
    let start = Instant::now();
    while !cond() {
        check(start.elapsed() < WATCHDOG, format!("timed out: {what}"))?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn queue_section() -> Res {
    const PRODUCERS: u64 = 3;
    const ITEMS: u64 = 10_000;
    // Items are `[producer, sequence number]`; any `Pod` type works.
    let q = Queue::<[u64; 2]>::anonymous(64)?;
    let start = Instant::now();
    let producers = (0..PRODUCERS)
        .map(|p| {
            // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
            unsafe {
                process::fork_unchecked(|| {
                    for seq in 0..ITEMS {
                        if q.put([p, seq]).is_err() {
                            return 1;
                        }
                    }
                    0
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut next = [0u64; PRODUCERS as usize];
    let mut out_of_order = 0;
    for _ in 0..PRODUCERS * ITEMS {
        let [p, seq] = q.get_timeout(WATCHDOG)?;
        let Some(n) = next.get_mut(p as usize) else {
            return Err(format!("Queue: item from unknown producer {p}").into());
        };
        if seq != *n {
            out_of_order += 1;
        }
        *n = seq + 1;
    }
    join_ok("Queue", producers)?;
    let extra = q.try_get();
    println!(
        "  {PRODUCERS} producer processes x {ITEMS} items through a 64-slot queue in {:.0?}: \
         received {} per producer, {out_of_order} out of order, then {extra:?}",
        start.elapsed(),
        next.map(|n| n.to_string()).join("/"),
    );
    check(
        next == [ITEMS; PRODUCERS as usize] && out_of_order == 0,
        "Queue: items lost, duplicated or reordered",
    )?;
    check(extra == Err(GetError::Empty), "Queue: extra items")
}

fn manager_dict_section() -> Res {
    const PROCS: usize = 4;
    const ROUNDS: usize = 1_000;
    const WORDS: [&str; 3] = ["apple", "banana", "cherry"];
    type Word = FixedStr<16>;
    let m = Manager::anonymous(1 << 20)?;
    let children = (0..PROCS)
        .map(|c| {
            // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
            unsafe {
                process::fork_unchecked(|| {
                    // Each process gets the dict by name: the first creates it.
                    let Ok(counts) = m.dict::<Word, u64>("counts", 16) else {
                        return 1;
                    };
                    for i in 0..ROUNDS {
                        let Ok(w) = Word::try_new(WORDS[(i + c) % WORDS.len()]) else {
                            return 2;
                        };
                        // One atomic read-modify-write, unlike Python's `d[k] += 1`.
                        if counts.update_or_insert(w, 0, |n| *n += 1).is_err() {
                            return 3;
                        }
                    }
                    0
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    join_ok("SharedDict", children)?;
    let counts = m.dict::<Word, u64>("counts", 16)?;
    let mut got = Vec::new();
    let mut ok = counts.len() == WORDS.len();
    for (k, word) in WORDS.iter().enumerate() {
        let expected = (0..PROCS)
            .map(|c| (0..ROUNDS).filter(|i| (i + c) % WORDS.len() == k).count() as u64)
            .sum::<u64>();
        let n = counts.get(&Word::try_new(word)?)?.unwrap_or(0);
        ok &= n == expected;
        got.push(format!("{word}={n} (expected {expected})"));
    }
    println!(
        "  {PROCS} processes x {ROUNDS} updates of one dict found by name in a Manager: {}",
        got.join(", ")
    );
    // The same name with another capacity is refused, saying why.
    let other = m.dict::<Word, u64>("counts", 32).map(drop);
    println!(
        "  m.dict(\"counts\", 32) -> {}",
        match &other {
            Err(e) => format!("Err({e})"),
            Ok(()) => "Ok".to_owned(),
        }
    );
    check(ok, "SharedDict: wrong counts")?;
    check(
        matches!(
            other,
            Err(MpError::CapacityMismatch {
                expected: 32,
                found: 16,
                ..
            })
        ),
        "SharedDict: capacity mismatch not reported",
    )
}

fn pipe_section() -> Res {
    let (here, there) = Pipe::anonymous(8, 64)?;
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let child = unsafe {
        process::fork_unchecked(|| {
            // Drop what you do not use: this copy of the parent's end would
            // keep the child's own `recv` from ever seeing end-of-file.
            here.close();
            loop {
                match there.recv() {
                    Ok(msg) => {
                        if there.send(&msg.to_ascii_uppercase()).is_err() {
                            return 1;
                        }
                    }
                    // The parent closed its end: Python's EOFError.
                    Err(GetError::Disconnected) => return 0,
                    Err(_) => return 2,
                }
            }
        })
    }?;
    let mut replies = Vec::new();
    for word in ["ping", "multiproc", "pipe"] {
        here.send(word.as_bytes())
            .map_err(|e| format!("Pipe: send: {e}"))?;
        let reply = here.recv_timeout(WATCHDOG)?;
        replies.push(String::from_utf8_lossy(&reply).into_owned());
    }
    here.close();
    join_ok("Pipe", vec![child])?;
    println!(
        "  sent ping, multiproc, pipe; the child answered {replies:?}, then saw the close and exited 0"
    );
    check(
        replies == ["PING", "MULTIPROC", "PIPE"],
        "Pipe: wrong replies",
    )
}

fn queue_kill_section() -> Res {
    let q = Queue::<u64>::anonymous(16)?;
    let started = Event::anonymous()?;
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let producer = unsafe {
        process::fork_unchecked(|| {
            for i in 0.. {
                if q.put(i).is_err() {
                    return 1;
                }
                if i == 0 {
                    started.set();
                }
            }
            0
        })
    }?;
    check(
        started.wait_timeout(WATCHDOG),
        "queue kill: producer never started",
    )?;
    // Take some items while the producer streams, then kill it mid-stream.
    let mut expected = 0u64;
    let mut gaps = 0;
    for _ in 0..1_000 {
        let v = q.get_timeout(WATCHDOG)?;
        gaps += u64::from(v != expected);
        expected = v + 1;
    }
    let pid = producer.pid();
    producer.kill()?;
    let status = reap(producer)?;
    // A slot the producer held when it died is recovered (and counted); the
    // items it published before are all still there, in order.
    let recovered = q.recover();
    let mut drained = 0;
    loop {
        match q.try_get() {
            Ok(v) => {
                gaps += u64::from(v != expected);
                expected = v + 1;
                drained += 1;
            }
            Err(GetError::Empty) => break,
            Err(e) => return Err(format!("queue kill: {e}").into()),
        }
    }
    let stats = q.stats();
    // Still usable by everyone: a new child puts, the parent gets.
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let newcomer = unsafe {
        process::fork_unchecked(|| {
            for v in [7, 8, 9] {
                if q.put(v).is_err() {
                    return 1;
                }
            }
            0
        })
    }?;
    join_ok("queue kill", vec![newcomer])?;
    let after: Vec<u64> = (0..3)
        .map(|_| q.get_timeout(WATCHDOG))
        .collect::<Result<_, _>>()?;
    println!(
        "  producer {pid} streamed into a 16-slot queue and was killed ({status:?}) after the \
         parent took 1000 items; the parent then drained {drained} more, {gaps} out of order; \
         slots recovered from the dead producer: {recovered}, messages lost and counted: {}",
        stats.abandoned
    );
    println!("  a new child put [7, 8, 9] into the same queue; the parent got {after:?}");
    check(
        status == ExitStatus::Signal(libc::SIGKILL),
        "queue kill: producer not killed",
    )?;
    check(
        gaps == 0 && stats.abandoned <= 1,
        "queue kill: items lost or reordered",
    )?;
    check(
        after == [7, 8, 9],
        "queue kill: queue unusable after the kill",
    )
}

fn lock_section() -> Res {
    const PROCS: u64 = 4;
    const ROUNDS: u64 = 10_000;
    let lock = Lock::anonymous()?;
    let go = Event::anonymous()?;
    let mem = Shared::new(1)?;
    let children = (0..PROCS)
        .map(|_| {
            // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
            unsafe {
                process::fork_unchecked(|| {
                    // Start together, so the processes really contend.
                    go.wait();
                    for _ in 0..ROUNDS {
                        let Ok(_guard) = lock.lock() else { return 1 };
                        // A plain load + store, not fetch_add: only the lock makes it exact.
                        let v = mem.at(0).load(Ordering::Relaxed);
                        // Widen the window between load and store, as real work would.
                        for _ in 0..50 {
                            std::hint::spin_loop();
                        }
                        mem.at(0).store(v + 1, Ordering::Relaxed);
                    }
                    0
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    go.set();
    join_ok("Lock", children)?;
    let total = mem.get(0);
    println!(
        "  {PROCS} processes x {ROUNDS} increments under the lock: counter = {total} (expected {})",
        PROCS * ROUNDS
    );
    check(total == PROCS * ROUNDS, "Lock: lost updates")
}

fn rlock_section() -> Res {
    const DEPTH: u64 = 3;
    let rlock = RLock::anonymous()?;
    let holding = Event::anonymous()?;
    let checked = Event::anonymous()?;
    // 0..DEPTH: depth seen at each level; DEPTH: depth after releasing all.
    let mem = Shared::new(DEPTH as usize + 1)?;
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let child = unsafe {
        process::fork_unchecked(|| {
            let mut guards = Vec::new();
            for level in 0..DEPTH as usize {
                match rlock.lock() {
                    Ok(g) => guards.push(g),
                    Err(_) => return 1,
                }
                mem.set(level, u64::from(rlock.depth()));
            }
            holding.set();
            if !checked.wait_timeout(WATCHDOG) {
                return 2;
            }
            drop(guards);
            mem.set(DEPTH as usize, u64::from(rlock.depth()));
            0
        })
    }?;
    check(holding.wait_timeout(WATCHDOG), "RLock: child never held it")?;
    let while_held = rlock.try_lock().map(|_| ()).map_err(|e| e.map(|_| ()));
    let foreign_release = rlock.release();
    checked.set();
    join_ok("RLock", vec![child])?;
    let depths: Vec<u64> = (0..DEPTH as usize).map(|i| mem.get(i)).collect();
    println!(
        "  child re-entered: depth {depths:?}, after dropping every guard: {}",
        mem.get(DEPTH as usize)
    );
    println!("  parent try_lock while the child held it: {while_held:?}");
    println!("  parent release() of the child's lock: {foreign_release:?}");
    let after = rlock.try_lock().is_ok();
    println!("  parent try_lock after the child released: acquired = {after}");
    check(
        depths == [1, 2, 3] && mem.get(DEPTH as usize) == 0,
        "RLock: wrong depths",
    )?;
    check(
        matches!(while_held, Err(LockError::WouldBlock)),
        "RLock: not exclusive",
    )?;
    check(
        foreign_release == Err(ReleaseError::NotOwner),
        "RLock: foreign release accepted",
    )?;
    check(after, "RLock: still held after the child released")
}

fn semaphore_section() -> Res {
    const PROCS: usize = 8;
    const PERMITS: u32 = 3;
    const VISITS: usize = 3;
    const CURRENT: usize = 0;
    const HIGH: usize = 1;
    const OVER: usize = 2;
    let sem = Semaphore::anonymous(PERMITS)?;
    let go = Event::anonymous()?;
    let mem = Shared::new(3)?;
    let children = (0..PROCS)
        .map(|_| {
            // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
            unsafe {
                process::fork_unchecked(|| {
                    go.wait();
                    for _ in 0..VISITS {
                        sem.acquire();
                        let inside = mem.at(CURRENT).fetch_add(1, Ordering::SeqCst) + 1;
                        mem.at(HIGH).fetch_max(inside, Ordering::SeqCst);
                        if inside > u64::from(PERMITS) {
                            mem.at(OVER).fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        mem.at(CURRENT).fetch_sub(1, Ordering::SeqCst);
                        if sem.release().is_err() {
                            return 1;
                        }
                    }
                    0
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    go.set();
    join_ok("Semaphore", children)?;
    println!(
        "  {PROCS} processes x {VISITS} visits, {PERMITS} permits: high-water mark {} inside at once, \
         {} over the limit, {:.0?}, value back to {}",
        mem.get(HIGH),
        mem.get(OVER),
        start.elapsed(),
        sem.value()
    );
    check(
        mem.get(HIGH) <= u64::from(PERMITS) && mem.get(OVER) == 0,
        "Semaphore: too many inside",
    )?;
    check(sem.value() == PERMITS, "Semaphore: permits lost")
}

fn bounded_semaphore_section() -> Res {
    let sem = BoundedSemaphore::anonymous(2)?;
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let child = unsafe {
        process::fork_unchecked(|| {
            sem.acquire();
            0
        })
    }?;
    join_ok("BoundedSemaphore", vec![child])?;
    let after_child = sem.value();
    let first = sem.release();
    let second = sem.release();
    println!(
        "  bound 2, a child took a permit: value {after_child}; release -> {first:?} (value {}); \
         release again -> {second:?}",
        sem.value()
    );
    check(
        after_child == 1 && first.is_ok(),
        "BoundedSemaphore: acquire/release",
    )?;
    check(
        second == Err(ReleaseError::AboveBound) && sem.value() == 2,
        "BoundedSemaphore: release above the bound accepted",
    )
}

fn event_section() -> Res {
    const PROCS: usize = 4;
    const READY: usize = 0;
    const STARTED: usize = 1;
    const EARLY: usize = 2;
    const SIGNALLED: usize = 3;
    let start = Event::anonymous()?;
    let mem = Shared::new(4)?;
    let children = (0..PROCS)
        .map(|_| {
            // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
            unsafe {
                process::fork_unchecked(|| {
                    mem.at(READY).fetch_add(1, Ordering::SeqCst);
                    start.wait();
                    if mem.get(SIGNALLED) == 0 {
                        mem.at(EARLY).fetch_add(1, Ordering::SeqCst);
                    }
                    mem.at(STARTED).fetch_add(1, Ordering::SeqCst);
                    0
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    wait_until("children ready", || mem.get(READY) == PROCS as u64)?;
    std::thread::sleep(Duration::from_millis(50));
    let before = mem.get(STARTED);
    mem.set(SIGNALLED, 1);
    start.set();
    join_ok("Event", children)?;
    println!(
        "  {PROCS} children waiting; 50 ms later {before} had started; after set(): {} started, \
         {} before the signal",
        mem.get(STARTED),
        mem.get(EARLY)
    );
    check(
        before == 0 && mem.get(EARLY) == 0,
        "Event: a child started early",
    )?;
    check(
        mem.get(STARTED) == PROCS as u64,
        "Event: not every child started",
    )
}

fn condition_section() -> Res {
    const ITEMS: u64 = 20;
    const FULL: usize = 0;
    const SLOT: usize = 1;
    const SUM: usize = 2;
    const IN_ORDER: usize = 3;
    const WAITS: usize = 4;
    let cond = Condition::anonymous()?;
    let mem = Shared::new(5)?;
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let producer = unsafe {
        process::fork_unchecked(|| {
            for v in 1..=ITEMS {
                let Ok(guard) = cond.lock() else { return 1 };
                let Ok(_guard) = cond.wait_while(guard, || mem.get(FULL) == 1) else {
                    return 2;
                };
                mem.set(SLOT, v);
                mem.set(FULL, 1);
                if cond.notify_all().is_err() {
                    return 3;
                }
            }
            0
        })
    }?;
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let consumer = unsafe {
        process::fork_unchecked(|| {
            for expected in 1..=ITEMS {
                let Ok(guard) = cond.lock() else { return 1 };
                let Ok(_guard) = cond.wait_while(guard, || {
                    let empty = mem.get(FULL) == 0;
                    if empty {
                        mem.at(WAITS).fetch_add(1, Ordering::SeqCst);
                    }
                    empty
                }) else {
                    return 2;
                };
                let v = mem.get(SLOT);
                mem.at(SUM).fetch_add(v, Ordering::SeqCst);
                if v == expected {
                    mem.at(IN_ORDER).fetch_add(1, Ordering::SeqCst);
                }
                mem.set(FULL, 0);
                if cond.notify_all().is_err() {
                    return 3;
                }
            }
            0
        })
    }?;
    join_ok("Condition", vec![producer, consumer])?;
    let expected_sum = ITEMS * (ITEMS + 1) / 2;
    println!(
        "  producer handed 1..={ITEMS} through a one-value slot: consumer got {} in order, \
         sum {} (expected {expected_sum}), found the slot empty {} times",
        mem.get(IN_ORDER),
        mem.get(SUM),
        mem.get(WAITS)
    );
    check(
        mem.get(IN_ORDER) == ITEMS && mem.get(SUM) == expected_sum,
        "Condition: values lost or reordered",
    )
}

fn barrier_section() -> Res {
    const PARTIES: usize = 4;
    const ROUNDS: usize = 3;
    // Per round: arrivals, leaders counted, leader's worker number, early leavers.
    const ARRIVED: usize = 0;
    const LEADERS: usize = ROUNDS;
    const LEADER: usize = 2 * ROUNDS;
    const EARLY: usize = 3 * ROUNDS;
    let barrier = Barrier::anonymous(PARTIES as u32)?;
    let mem = Shared::new(4 * ROUNDS)?;
    let children = (0..PARTIES)
        .map(|worker| {
            // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
            unsafe {
                process::fork_unchecked(|| {
                    for round in 0..ROUNDS {
                        // Stagger arrivals so a different worker tends to come last.
                        let pause = (worker + round) % PARTIES;
                        std::thread::sleep(Duration::from_millis(2 * pause as u64));
                        mem.at(ARRIVED + round).fetch_add(1, Ordering::SeqCst);
                        let Ok(r) = barrier.wait() else { return 1 };
                        if mem.get(ARRIVED + round) != PARTIES as u64 {
                            mem.at(EARLY + round).fetch_add(1, Ordering::SeqCst);
                        }
                        if r.is_leader() {
                            mem.at(LEADERS + round).fetch_add(1, Ordering::SeqCst);
                            mem.set(LEADER + round, worker as u64 + 1);
                        }
                    }
                    0
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pids: Vec<u32> = children.iter().map(Child::pid).collect();
    join_ok("Barrier", children)?;
    for round in 0..ROUNDS {
        let leader = mem.get(LEADER + round);
        let pid = leader
            .checked_sub(1)
            .and_then(|w| pids.get(w as usize))
            .map_or_else(|| "?".to_owned(), u32::to_string);
        println!(
            "  round {}: all {PARTIES} arrived, leader worker {leader} (pid {pid}), {} leader(s), \
             {} left early",
            round + 1,
            mem.get(LEADERS + round),
            mem.get(EARLY + round)
        );
        check(
            mem.get(LEADERS + round) == 1 && mem.get(EARLY + round) == 0,
            format!("Barrier: round {} went wrong", round + 1),
        )?;
    }
    Ok(())
}

fn robustness_section() -> Res {
    // Invariant protected by the lock: A == B.
    const A: usize = 0;
    const B: usize = 1;
    let lock = Lock::anonymous()?;
    let holding = Event::anonymous()?;
    let mem = Shared::new(2)?;
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let victim = unsafe {
        process::fork_unchecked(|| {
            let Ok(_guard) = lock.lock() else { return 1 };
            // Half of an update, then the process dies before the other half.
            mem.set(A, mem.get(A) + 1);
            holding.set();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    }?;
    check(
        holding.wait_timeout(WATCHDOG),
        "robustness: child never locked",
    )?;
    let pid = victim.pid();
    victim.kill()?;
    let status = reap(victim)?;
    println!("  child {pid} took the lock, wrote half an update, was killed: {status:?}");
    check(
        status == ExitStatus::Signal(libc::SIGKILL),
        "robustness: child not killed",
    )?;
    match lock.lock() {
        Err(LockError::OwnerDied(mut guard)) => {
            let (a, b) = (mem.get(A), mem.get(B));
            mem.set(A, b);
            guard.mark_consistent();
            println!(
                "  parent lock(): OwnerDied; found A={a} B={b}, rolled back to A={b}, \
                 mark_consistent -> consistent = {}",
                guard.is_consistent()
            );
            check(guard.is_consistent(), "robustness: mark_consistent failed")?;
        }
        Ok(_) => return Err("robustness: lock() did not report OwnerDied".into()),
        Err(e) => return Err(format!("robustness: lock() failed: {e}").into()),
    }
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let worker = unsafe {
        process::fork_unchecked(|| {
            let Ok(_guard) = lock.lock() else { return 1 };
            mem.set(A, mem.get(A) + 1);
            mem.set(B, mem.get(B) + 1);
            0
        })
    }?;
    join_ok("robustness", vec![worker])?;
    let clean = lock.lock().is_ok();
    println!(
        "  a new child locked cleanly and updated: A={} B={}; parent lock() again: clean = {clean}",
        mem.get(A),
        mem.get(B)
    );
    check(
        clean && mem.get(A) == 1 && mem.get(B) == 1,
        "robustness: lock not usable after recovery",
    )
}

fn main() -> Res {
    let start = Instant::now();
    let sections: [(&str, Section); 12] = [
        ("Queue between processes", queue_section),
        ("SharedDict through a Manager", manager_dict_section),
        ("Pipe", pipe_section),
        ("Lock", lock_section),
        ("RLock", rlock_section),
        ("Semaphore", semaphore_section),
        ("BoundedSemaphore", bounded_semaphore_section),
        ("Event", event_section),
        ("Condition", condition_section),
        ("Barrier", barrier_section),
        (
            "Robustness: owner killed holding the Lock",
            robustness_section,
        ),
        (
            "Robustness: producer killed (kill -9) mid-stream, the queue survives",
            queue_kill_section,
        ),
    ];
    for (name, section) in sections {
        println!("{name}");
        section()?;
    }
    println!("all checks passed in {:.0?}", start.elapsed());
    Ok(())
}
