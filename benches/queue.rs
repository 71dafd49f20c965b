//! Criterion benchmarks for `multiproc`'s queues between processes, one group
//! per regime. Only multiproc is measured here; the comparison with pipes,
//! sockets, POSIX message queues, crossbeam, Python and the peer crates (and
//! the bare-ring floor and ceiling) is the `compare` workspace member
//! (`cargo run --release -p compare`).
//!
//! * [`round_trip`]: one 8-byte message to a forked echo child and back, two
//!   `Queue<u64>` of capacity 2: `spin_try_get` (`try_put`, and `try_get` in a
//!   spin loop) and `blocking_get` (`put` and blocking `get`, which spins
//!   briefly and then parks on the queue's futex).
//! * [`throughput`]: one producer (this process) to one consumer process,
//!   capacity 1024: `single/queue_u64` (`put`/`get`), `batched/queue_u64_64`
//!   (`put_many`/`get_many` of 64), and 1 KiB messages: `kib/bytes_queue`
//!   (`BytesQueue`, `put`/`get_into`) and `kib/queue_array` (`Queue<[u8; 1024]>`).
//! * [`mpmc`]: two producer processes and two consumer processes on one
//!   `Queue<u64>`.
//!
//! Every benchmark function forks its children once (not per sample), runs
//! criterion's samples through `iter_custom`, then stops its children and reaps
//! them; a child that exits with anything but 0 fails the run. Consumers verify
//! every payload (consecutive sequence numbers, or exactly-once tallies for
//! `mpmc`) and report a mismatch through a shared control block, so the parent
//! panics with the details instead of timing garbage. Children die with the
//! parent (`PR_SET_PDEATHSIG`), and a watchdog thread aborts the run if a
//! benchmark function completes no iteration for 30 s (a hang).
//!
//! Run with `cargo bench -p multiproc-benches --bench queue -- --noplot` (one
//! group: `cargo bench -p multiproc-benches --bench queue -- round_trip`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "a benchmark has no caller to hand errors to; the std atomics here live in \
              the bench's own mappings, outside the crate's loom-modelled code"
)]

use criterion::{criterion_group, criterion_main};

mod common {
    //! Plumbing shared by every group: shared mappings, fork and reap, a
    //! spin-then-yield-then-sleep backoff, the consumer's control block and a
    //! hang watchdog.

    use std::marker::PhantomData;
    use std::ops::Deref;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use multiproc::process::{self, Child};

    pub type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

    /// The value (or sequence number) telling an echo child or a consumer to exit.
    pub const STOP: u64 = u64::MAX;

    /// Types placed in a [`Shared`] mapping.
    ///
    /// # Safety
    ///
    /// All-zero bytes must be a valid value, and every field must be an atomic
    /// (concurrent access from several processes is then sound).
    pub unsafe trait ZeroShared: Sync {}

    /// A zeroed `T` in its own `MAP_SHARED | MAP_ANONYMOUS` mapping, shared
    /// with every child forked after its creation.
    pub struct Shared<T: ZeroShared> {
        ptr: *mut T,
        _t: PhantomData<T>,
    }

    impl<T: ZeroShared> Shared<T> {
        /// Maps a zeroed `T`.
        pub fn new() -> std::io::Result<Shared<T>> {
            const { assert!(align_of::<T>() <= 4096, "page alignment suffices") };
            // SAFETY: a fresh anonymous mapping with no address hint touches no
            // existing memory; the result is checked below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    size_of::<T>().max(1),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Shared {
                ptr: p.cast(),
                _t: PhantomData,
            })
        }
    }

    impl<T: ZeroShared> Deref for Shared<T> {
        type Target = T;

        fn deref(&self) -> &T {
            // SAFETY: the mapping is page-aligned (enough for `T`, checked in
            // `new`), at least `size_of::<T>()` bytes, zero-filled by the kernel,
            // and zero is a valid `T` made of atomics (`ZeroShared`); it lives
            // as long as `self`.
            unsafe { &*self.ptr }
        }
    }

    impl<T: ZeroShared> Drop for Shared<T> {
        fn drop(&mut self) {
            // SAFETY: the mapping `new` created; borrows of it are tied to
            // `&self`, so none is left. Children have their own copy.
            unsafe { libc::munmap(self.ptr.cast(), size_of::<T>().max(1)) };
        }
    }

    /// One atomic word alone on a 128-byte line.
    #[repr(C, align(128))]
    pub struct Line(pub AtomicU64);

    /// Waiting for a peer: spin, then yield the CPU, then sleep 20 us at a time.
    pub struct Backoff(u32);

    const SPINS: u32 = 1 << 10;
    const YIELDS: u32 = 1 << 8;

    impl Backoff {
        /// Starts with spinning.
        pub fn new() -> Backoff {
            Backoff(0)
        }

        /// Sleeps from the first snooze (a poller that must not compete with
        /// the workers for the CPU).
        pub fn sleepy() -> Backoff {
            Backoff(SPINS + YIELDS)
        }

        /// True once every 256 snoozes: time to look for a failure report.
        pub fn check_due(&self) -> bool {
            self.0 % 256 == 255
        }

        /// Waits a little, longer the more often it is called.
        pub fn snooze(&mut self) {
            if self.0 < SPINS {
                std::hint::spin_loop();
            } else if self.0 < SPINS + YIELDS {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
            self.0 = self.0.saturating_add(1);
        }
    }

    /// One step of a pure spin-wait: `spin_loop()`, yielding every 256th step
    /// (only matters when the peer waits for this CPU).
    pub fn spin(spins: &mut u32) {
        *spins = spins.wrapping_add(1);
        if *spins % 256 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }

    /// Why a consumer gave up (its exit code too).
    pub const RECV_FAILED: i32 = 10;
    pub const BAD_LEN: i32 = 11;
    pub const BAD_SEQ: i32 = 12;
    pub const BAD_TAIL: i32 = 13;
    pub const BAD_END: i32 = 14;
    pub const BAD_PRODUCER: i32 = 15;
    pub const OUT_OF_ORDER: i32 = 16;
    pub const SEND_FAILED: i32 = 17;

    fn code_name(code: u64) -> &'static str {
        match code as i32 {
            RECV_FAILED => "receive failed (closed, EOF or error)",
            BAD_LEN => "wrong message length",
            BAD_SEQ => "sequence number in the first 8 bytes not consecutive",
            BAD_TAIL => "sequence number in the last 8 bytes differs (torn copy)",
            BAD_END => "stop message arrived mid-round",
            BAD_PRODUCER => "value names no producer",
            OUT_OF_ORDER => "a producer's values arrived out of order",
            SEND_FAILED => "send failed (full, closed or error)",
            _ => "?",
        }
    }

    /// The control block between a parent and its consumer(s).
    #[repr(C)]
    pub struct Ctl {
        /// Rounds (of `throughput::N` messages) the consumer has fully received.
        pub done: Line,
        /// 0 while all is well, else the consumer's failure code.
        pub failed: Line,
        pub expected: Line,
        pub got: Line,
    }

    // SAFETY: atomics only; zero is a valid `AtomicU64`.
    unsafe impl ZeroShared for Ctl {}

    impl Ctl {
        /// Records a failure (for the parent to report) and returns `code`.
        pub fn fail(&self, code: i32, expected: u64, got: u64) -> i32 {
            self.expected.0.store(expected, Ordering::Relaxed);
            self.got.0.store(got, Ordering::Relaxed);
            // Release: publishes `expected` and `got` with the code.
            self.failed.0.store(code as u64, Ordering::Release);
            code
        }

        pub fn describe(&self) -> String {
            let code = self.failed.0.load(Ordering::Acquire);
            format!(
                "consumer failure code {code} ({}): expected {:#x}, got {:#x}",
                code_name(code),
                self.expected.0.load(Ordering::Relaxed),
                self.got.0.load(Ordering::Relaxed),
            )
        }

        /// Panics if a consumer reported a failure.
        pub fn check(&self) {
            if self.failed.0.load(Ordering::Acquire) != 0 {
                panic!("{}", self.describe());
            }
        }

        /// Waits until the consumer has received `round` full rounds.
        pub fn wait_done(&self, round: u64) {
            let mut b = Backoff::new();
            while self.done.0.load(Ordering::Acquire) < round {
                if b.check_due() {
                    self.check();
                }
                b.snooze();
            }
        }
    }

    /// Forks a child running `f`. The child is killed if this process dies, so
    /// a failing benchmark leaves no spinning orphans.
    pub fn spawn(f: impl FnOnce() -> i32) -> Child {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let child = move || {
            // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory involved.
            unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } != parent {
                return 99; // the parent died before the prctl
            }
            f()
        };
        // SAFETY: criterion may run other threads; the child runs only this crate's primitives and plain code, then `_exit`s, taking no lock another thread may hold.
        unsafe { process::fork_unchecked(child) }.expect("fork")
    }

    /// Reaps `child`, panicking unless it exited with code 0.
    pub fn reap(child: Child, what: &str) {
        let status = child.wait().expect("wait for child");
        assert!(status.success(), "{what}: child ended with {status:?}");
    }

    pub mod watchdog {
        //! Aborts the run (children die with it) when the armed benchmark
        //! function makes no progress ([`tick`]) for [`STALL`], or runs longer
        //! than [`LIMIT`] in all: a hang is reported instead of waited out, and a
        //! run slowed down by other load is not mistaken for one.

        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::{Mutex, Once, PoisonError};
        use std::time::{Duration, Instant};

        const STALL: Duration = Duration::from_secs(30);
        const LIMIT: Duration = Duration::from_secs(600);

        /// Completed iterations or rounds; written by the benchmark thread only.
        static PROGRESS: AtomicU64 = AtomicU64::new(0);
        static ARMED: Mutex<Option<(String, Instant)>> = Mutex::new(None);
        static START: Once = Once::new();

        /// Disarms the watchdog when dropped.
        pub struct Armed;

        impl Drop for Armed {
            fn drop(&mut self) {
                *ARMED.lock().unwrap_or_else(PoisonError::into_inner) = None;
            }
        }

        /// Records progress. Only the benchmark thread calls it, so a plain load
        /// and store (no locked RMW, ~1 ns) suffice.
        #[inline]
        pub fn tick() {
            PROGRESS.store(
                PROGRESS.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        }

        fn watch() {
            let mut last = (PROGRESS.load(Ordering::Relaxed), Instant::now());
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = PROGRESS.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                }
                let armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
                let Some((what, since)) = &*armed else {
                    last.1 = Instant::now();
                    continue;
                };
                let idle = last.1.elapsed().min(since.elapsed());
                if idle > STALL || since.elapsed() > LIMIT {
                    eprintln!(
                        "watchdog: {what}: no progress for {idle:?} ({:?} since it \
                         started): hung, aborting",
                        since.elapsed()
                    );
                    std::process::abort();
                }
            }
        }

        /// Starts watching benchmark function `what`.
        pub fn arm(what: &str) -> Armed {
            START.call_once(|| {
                std::thread::Builder::new()
                    .name("watchdog".into())
                    .spawn(watch)
                    .expect("spawn watchdog");
            });
            *ARMED.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((what.to_owned(), Instant::now()));
            Armed
        }
    }
}

mod round_trip {
    //! Group `round_trip`: latency of one 8-byte message there and back.
    //!
    //! Method: one child is forked per benchmark function and echoes every
    //! value `v` it receives as `v + 1`; `iter_custom` times `iters` round trips
    //! (parent sends `v`, waits for `v + 1`, checks it, then uses `v + 2`), so
    //! the reported time is one round trip. `u64::MAX` tells the child to exit;
    //! the parent then reaps it. A child whose send or receive fails records it
    //! in a shared control block and shuts the queues down, so the parent fails
    //! with the details instead of waiting.
    //!
    //! * `spin_try_get`: two `Queue<u64>` of capacity 2 (request, response);
    //!   `try_put`, and a getter looping on `try_get` + `spin_loop()` (with a
    //!   `sched_yield` every 256 fruitless tries, see [`spin`]).
    //! * `blocking_get`: the same queues with `put` and blocking `get` (which
    //!   spins briefly, then parks on the queue's futex).

    use std::time::{Duration, Instant};

    use criterion::Criterion;
    use multiproc::{GetError, Queue};

    use crate::common::{
        Ctl, Group, RECV_FAILED, SEND_FAILED, STOP, Shared, reap, spawn, spin, watchdog,
    };

    /// Runs the group.
    pub fn bench(c: &mut Criterion) {
        let mut g = c.benchmark_group("round_trip");
        g.measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .sample_size(20);

        let req = Queue::<u64>::anonymous(2).expect("create request queue");
        let resp = Queue::<u64>::anonymous(2).expect("create response queue");
        run(
            &mut g,
            "spin_try_get",
            QueueSpin {
                tx: &req,
                rx: &resp,
            },
            QueueSpin {
                tx: &resp,
                rx: &req,
            },
        );
        let req = Queue::<u64>::anonymous(2).expect("create request queue");
        let resp = Queue::<u64>::anonymous(2).expect("create response queue");
        run(
            &mut g,
            "blocking_get",
            QueueBlocking {
                tx: &req,
                rx: &resp,
            },
            QueueBlocking {
                tx: &resp,
                rx: &req,
            },
        );
        g.finish();
    }

    /// One side of a ping-pong.
    trait End {
        /// Sends `v`; `false` on failure.
        fn send(&mut self, v: u64) -> bool;
        /// Receives the next value; `None` on failure.
        fn recv(&mut self) -> Option<u64>;
        /// After a failure: make the peer's wait end.
        fn abort(&self);
    }

    struct QueueSpin<'a> {
        tx: &'a Queue<u64>,
        rx: &'a Queue<u64>,
    }

    impl End for QueueSpin<'_> {
        fn send(&mut self, v: u64) -> bool {
            // At most one value is ever in flight, so `Full` would be a bug.
            self.tx.try_put(v).is_ok()
        }

        fn recv(&mut self) -> Option<u64> {
            let mut spins = 0;
            loop {
                match self.rx.try_get() {
                    Ok(v) => return Some(v),
                    Err(GetError::Empty) => spin(&mut spins),
                    Err(_) => return None,
                }
            }
        }

        fn abort(&self) {
            self.tx.shutdown();
            self.rx.shutdown();
        }
    }

    struct QueueBlocking<'a> {
        tx: &'a Queue<u64>,
        rx: &'a Queue<u64>,
    }

    impl End for QueueBlocking<'_> {
        fn send(&mut self, v: u64) -> bool {
            self.tx.put(v).is_ok()
        }

        fn recv(&mut self) -> Option<u64> {
            self.rx.get().ok()
        }

        fn abort(&self) {
            self.tx.shutdown();
            self.rx.shutdown();
        }
    }

    /// The child: echo `v + 1` until `STOP`. A failure is recorded in `ctl`
    /// and the queues shut down, so the parent's wait ends and it can report.
    fn echo<E: End>(mut end: E, ctl: &Ctl) -> i32 {
        let mut last = 0;
        loop {
            let Some(v) = end.recv() else {
                end.abort();
                return ctl.fail(RECV_FAILED, last, 0);
            };
            if v == STOP {
                return 0;
            }
            if !end.send(v + 1) {
                end.abort();
                return ctl.fail(SEND_FAILED, v + 1, 0);
            }
            last = v;
        }
    }

    fn run<E: End>(g: &mut Group<'_>, name: &str, mut parent: E, child: E) {
        let _armed = watchdog::arm(&format!("round_trip/{name}"));
        let ctl = Shared::<Ctl>::new().expect("map the control block");
        let ctl_ref: &Ctl = &ctl;
        let proc = spawn(move || echo(child, ctl_ref));
        let mut v = 1u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    assert!(parent.send(v), "{name}: send failed; {}", ctl.describe());
                    let r = parent.recv();
                    assert_eq!(
                        r,
                        Some(v + 1),
                        "{name}: wrong or no reply; {}",
                        ctl.describe()
                    );
                    v += 2;
                    watchdog::tick();
                }
                start.elapsed()
            });
        });
        assert!(parent.send(STOP), "{name}: send stop failed");
        reap(proc, name);
    }
}

mod throughput {
    //! Groups `throughput_single`, `throughput_batched` and `throughput_1k`:
    //! one-way messages per second, one producer to one consumer process.
    //!
    //! Method: one consumer (a forked child) per benchmark function; the parent
    //! produces. One iteration moves [`N`] messages: the clock starts before the
    //! first send and stops when the consumer has received and checked all of
    //! them (it bumps a round counter in a shared control block; the parent
    //! spins on it). Every message carries a sequence number in its first 8
    //! bytes, and for 1024 bytes also in its last 8 (a torn copy shows); the
    //! consumer checks that they are consecutive and the length is right. On a
    //! mismatch it records what it expected and got in the control block, shuts
    //! the queue down, and exits non-zero; the parent then panics with the
    //! details (it checks the block while waiting, and a shut-down queue fails
    //! its `put`). A message with sequence number `u64::MAX` stops the
    //! consumer, which the parent then reaps.
    //!
    //! * `throughput_single/queue_u64/8`: `Queue<u64>` (capacity 1024),
    //!   blocking `put` and `get`, one item per call.
    //! * `throughput_batched/queue_u64_batch64/8`: the same queue with
    //!   `put_many`/`get_many` in batches of 64, backing off (spin, yield,
    //!   sleep) when they move nothing.
    //! * `throughput_1k/bytes_queue/1024`: `BytesQueue` (capacity 1024, 1 KiB
    //!   slots), blocking `put` and `get_into`.
    //! * `throughput_1k/queue_array/1024`: `Queue<[u8; 1024]>` (capacity 1024),
    //!   blocking `put` and `get`.

    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
    use multiproc::{BytesQueue, Queue};

    use crate::common::{
        BAD_END, BAD_LEN, BAD_SEQ, BAD_TAIL, Backoff, Ctl, Group, RECV_FAILED, STOP, Shared, reap,
        spawn, watchdog,
    };

    /// Messages per iteration.
    pub const N: u64 = 100_000;
    /// The largest message.
    const MAX: usize = 1024;
    /// Slots in every queue.
    const CAP: usize = 1024;

    fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
        let mut g = c.benchmark_group(name);
        g.measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .throughput(Throughput::Elements(N));
        g
    }

    /// Runs the groups.
    pub fn bench(c: &mut Criterion) {
        let mut g = group(c, "throughput_single");
        queue_u64(&mut g);
        g.finish();
        let mut g = group(c, "throughput_batched");
        queue_u64_batch(&mut g);
        g.finish();
        let mut g = group(c, "throughput_1k");
        bytes_queue(&mut g, MAX);
        queue_array(&mut g);
        g.finish();
    }

    /// The producer side of a transport. Panics on failure, with the consumer's
    /// report if it made one.
    trait Tx {
        fn send(&mut self, msg: &[u8], ctl: &Ctl);

        /// Sends one round of `N` messages numbered from `*seq`.
        fn send_round(&mut self, buf: &mut [u8; MAX], size: usize, seq: &mut u64, ctl: &Ctl) {
            for _ in 0..N {
                stamp(buf, *seq, size);
                self.send(&buf[..size], ctl);
                *seq += 1;
            }
        }
    }

    /// The consumer side of a transport. Allocation-free (it runs in forked
    /// children).
    trait Rx {
        /// Receives the next message into `buf`; its length, or a failure code.
        fn recv(&mut self, buf: &mut [u8; MAX]) -> Result<usize, i32>;

        /// After a failure: make the producer's next send fail, if possible.
        fn abort(&self) {}
    }

    /// Writes `seq` into the first 8 bytes of the message and, if it is at least
    /// 16 bytes long, into its last 8.
    fn stamp(buf: &mut [u8; MAX], seq: u64, size: usize) {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        if size >= 16 {
            buf[size - 8..size].copy_from_slice(&seq.to_le_bytes());
        }
    }

    fn le(b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        u64::from_le_bytes(a)
    }

    /// The consumer loop: checks every message, reports each finished round in
    /// `ctl.done`, returns 0 on the stop message.
    fn consume<R: Rx>(mut rx: R, size: usize, ctl: &Ctl) -> i32 {
        let mut buf = [0u8; MAX];
        let mut expected = 0u64;
        let fail = |rx: &R, code, want, got| {
            rx.abort();
            ctl.fail(code, want, got)
        };
        loop {
            let len = match rx.recv(&mut buf) {
                Ok(len) => len,
                Err(code) => return fail(&rx, code, expected, 0),
            };
            if len != size {
                return fail(&rx, BAD_LEN, size as u64, len as u64);
            }
            let head = le(&buf[..8]);
            if head == STOP {
                if expected % N != 0 {
                    return fail(&rx, BAD_END, expected, head);
                }
                return 0;
            }
            if head != expected {
                return fail(&rx, BAD_SEQ, expected, head);
            }
            if size >= 16 {
                let tail = le(&buf[size - 8..size]);
                if tail != expected {
                    return fail(&rx, BAD_TAIL, expected, tail);
                }
            }
            expected += 1;
            if expected % N == 0 {
                // Release: the parent may start the next round.
                ctl.done.0.store(expected / N, Ordering::Release);
            }
        }
    }

    /// The producer side of one benchmark function: criterion's iterations, then
    /// the stop message.
    fn drive<T: Tx>(g: &mut Group<'_>, id: BenchmarkId, size: usize, tx: &mut T, ctl: &Ctl) {
        let mut buf = [0xa5u8; MAX];
        let mut seq = 0u64;
        let mut round = 0u64;
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    tx.send_round(&mut buf, size, &mut seq, ctl);
                    round += 1;
                    ctl.wait_done(round);
                    watchdog::tick();
                }
                start.elapsed()
            });
        });
        ctl.check();
        stamp(&mut buf, STOP, size);
        tx.send(&buf[..size], ctl);
    }

    /// Forks a consumer running `rx`, drives `tx`, reaps the consumer.
    fn procs<T: Tx, R: Rx>(g: &mut Group<'_>, name: &str, size: usize, mut tx: T, rx: R) {
        let what = format!("throughput/{name}/{size}");
        let _armed = watchdog::arm(&what);
        let ctl = Shared::<Ctl>::new().expect("map the control block");
        let ctl_ref: &Ctl = &ctl;
        let child = spawn(move || consume(rx, size, ctl_ref));
        drive(g, BenchmarkId::new(name, size), size, &mut tx, &ctl);
        reap(child, &what);
    }

    struct BytesTx<'a>(&'a BytesQueue);

    impl Tx for BytesTx<'_> {
        fn send(&mut self, msg: &[u8], ctl: &Ctl) {
            if let Err(e) = self.0.put(msg) {
                panic!("BytesQueue::put: {e}; {}", ctl.describe());
            }
        }
    }

    struct BytesRx<'a>(&'a BytesQueue);

    impl Rx for BytesRx<'_> {
        fn recv(&mut self, buf: &mut [u8; MAX]) -> Result<usize, i32> {
            self.0.get_into(buf).map_err(|_| RECV_FAILED)
        }

        fn abort(&self) {
            self.0.shutdown();
        }
    }

    fn bytes_queue(g: &mut Group<'_>, size: usize) {
        let q = BytesQueue::anonymous(CAP, size).expect("create BytesQueue");
        procs(g, "bytes_queue", size, BytesTx(&q), BytesRx(&q));
    }

    struct U64Tx<'a>(&'a Queue<u64>);

    impl Tx for U64Tx<'_> {
        fn send(&mut self, msg: &[u8], ctl: &Ctl) {
            if let Err(e) = self.0.put(le(msg)) {
                panic!("Queue::put: {e}; {}", ctl.describe());
            }
        }
    }

    struct U64Rx<'a>(&'a Queue<u64>);

    impl Rx for U64Rx<'_> {
        fn recv(&mut self, buf: &mut [u8; MAX]) -> Result<usize, i32> {
            let v = self.0.get().map_err(|_| RECV_FAILED)?;
            buf[..8].copy_from_slice(&v.to_le_bytes());
            Ok(8)
        }

        fn abort(&self) {
            self.0.shutdown();
        }
    }

    fn queue_u64(g: &mut Group<'_>) {
        let q = Queue::<u64>::anonymous(CAP).expect("create Queue<u64>");
        procs(g, "queue_u64", 8, U64Tx(&q), U64Rx(&q));
    }

    const BATCH: usize = 64;

    struct BatchTx<'a>(&'a Queue<u64>);

    impl BatchTx<'_> {
        /// Puts all of `items`, backing off while the queue is full.
        fn put_all(&self, items: &[u64], ctl: &Ctl) {
            let mut done = 0;
            let mut b = Backoff::new();
            while done < items.len() {
                let k = self.0.put_many(&items[done..]);
                if k > 0 {
                    done += k;
                    continue;
                }
                if self.0.is_shutdown() {
                    panic!("Queue::put_many: queue closed; {}", ctl.describe());
                }
                if b.check_due() {
                    ctl.check();
                }
                b.snooze();
            }
        }
    }

    impl Tx for BatchTx<'_> {
        fn send(&mut self, msg: &[u8], ctl: &Ctl) {
            self.put_all(&[le(msg)], ctl);
        }

        fn send_round(&mut self, _: &mut [u8; MAX], _: usize, seq: &mut u64, ctl: &Ctl) {
            let mut batch = [0u64; BATCH];
            let mut left = N;
            while left > 0 {
                let m = left.min(BATCH as u64) as usize;
                for (j, slot) in batch[..m].iter_mut().enumerate() {
                    *slot = *seq + j as u64;
                }
                self.put_all(&batch[..m], ctl);
                *seq += m as u64;
                left -= m as u64;
            }
        }
    }

    struct BatchRx<'a> {
        q: &'a Queue<u64>,
        buf: [u64; BATCH],
        pos: usize,
        len: usize,
    }

    impl Rx for BatchRx<'_> {
        fn recv(&mut self, buf: &mut [u8; MAX]) -> Result<usize, i32> {
            let mut b = Backoff::new();
            while self.pos == self.len {
                self.pos = 0;
                self.len = self.q.get_many(&mut self.buf);
                if self.len == 0 {
                    if self.q.is_shutdown() {
                        return Err(RECV_FAILED);
                    }
                    b.snooze();
                }
            }
            buf[..8].copy_from_slice(&self.buf[self.pos].to_le_bytes());
            self.pos += 1;
            Ok(8)
        }

        fn abort(&self) {
            self.q.shutdown();
        }
    }

    fn queue_u64_batch(g: &mut Group<'_>) {
        let q = Queue::<u64>::anonymous(CAP).expect("create Queue<u64>");
        let rx = BatchRx {
            q: &q,
            buf: [0; BATCH],
            pos: 0,
            len: 0,
        };
        procs(g, "queue_u64_batch64", 8, BatchTx(&q), rx);
    }

    struct ArrTx<'a, const S: usize>(&'a Queue<[u8; S]>);

    impl<const S: usize> Tx for ArrTx<'_, S>
    where
        [u8; S]: multiproc::Pod,
    {
        fn send(&mut self, msg: &[u8], ctl: &Ctl) {
            let item: [u8; S] = msg.try_into().expect("a message of the item's size");
            if let Err(e) = self.0.put(item) {
                panic!("Queue::put: {e}; {}", ctl.describe());
            }
        }
    }

    struct ArrRx<'a, const S: usize>(&'a Queue<[u8; S]>);

    impl<const S: usize> Rx for ArrRx<'_, S>
    where
        [u8; S]: multiproc::Pod,
    {
        fn recv(&mut self, buf: &mut [u8; MAX]) -> Result<usize, i32> {
            let item = self.0.get().map_err(|_| RECV_FAILED)?;
            buf[..S].copy_from_slice(&item);
            Ok(S)
        }

        fn abort(&self) {
            self.0.shutdown();
        }
    }

    fn queue_array(g: &mut Group<'_>) {
        let q = Queue::<[u8; MAX]>::anonymous(CAP).expect("create Queue<[u8; 1024]>");
        procs(g, "queue_array", MAX, ArrTx(&q), ArrRx(&q));
    }
}

mod mpmc {
    //! Group `mpmc`: two producers and two consumers on one queue.
    //!
    //! Method: four workers per benchmark function. One iteration moves [`N`]
    //! items: the parent lets each producer put `N / 2` items, then polls (sleeping
    //! 20 µs between looks, so it does not compete with the workers for the 2
    //! vCPUs) until the consumers' published counts reach the round's total.
    //! Producer `p` puts `p << 48 | k` with its own counter `k = 1, 2, …`
    //! (continuing across rounds). Each consumer checks that every producer's
    //! values reach it in increasing order (FIFO), and tallies per producer the
    //! count, sum and sum of squares of `k`. At the end the parent checks that,
    //! per producer, the tallies of both consumers add up to exactly
    //! `1 + 2 + … + K` and `1² + … + K²` over `K` items: every item arrived exactly
    //! once.
    //!
    //! * `queue_u64_2p2c_processes`: one `Queue<u64>` (capacity 1024), four forked
    //!   processes with blocking `put`/`get`. The parent starts a round by putting
    //!   a token in each producer's own start `Queue<u64>` (blocking `get` there);
    //!   at the end it puts a stop token in each, reaps the producers, closes the queue (the
    //!   consumers drain it, get `Closed`, store their tallies and exit) and reaps
    //!   the consumers. `QueueStats::abandoned` must stay 0.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use criterion::{Criterion, SamplingMode, Throughput};
    use multiproc::{GetError, Queue};

    use crate::common::{
        BAD_PRODUCER, Backoff, Ctl, Group, Line, OUT_OF_ORDER, STOP, Shared, ZeroShared, reap,
        spawn, watchdog,
    };

    /// Items per iteration (half from each producer).
    const N: u64 = 100_000;
    const HALF: u64 = N / 2;
    const SHIFT: u32 = 48;
    const CAP: usize = 1024;

    /// Runs the group.
    pub fn bench(c: &mut Criterion) {
        let mut g = c.benchmark_group("mpmc");
        g.measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .throughput(Throughput::Elements(N));
        processes(&mut g);
        g.finish();
    }

    /// One consumer's final tallies, per producer.
    #[repr(C, align(128))]
    struct TallyLine {
        count: [AtomicU64; 2],
        sum: [AtomicU64; 2],
        sumsq: [AtomicU64; 2],
    }

    #[repr(C)]
    struct MpmcCtl {
        /// Items each consumer has taken so far (progress, Relaxed).
        live: [Line; 2],
        tally: [TallyLine; 2],
        ctl: Ctl,
    }

    // SAFETY: atomics only; zero is a valid `AtomicU64`.
    unsafe impl ZeroShared for MpmcCtl {}

    /// A consumer's running tallies.
    #[derive(Default)]
    struct Tally {
        last: [u64; 2],
        count: [u64; 2],
        sum: [u64; 2],
        sumsq: [u64; 2],
        total: u64,
    }

    impl Tally {
        /// Accounts for item `v`; a failure code if it is malformed or out of
        /// order.
        fn take(&mut self, v: u64, ctl: &Ctl) -> Result<(), i32> {
            let p = (v >> SHIFT) as usize;
            let k = v & ((1 << SHIFT) - 1);
            if p >= 2 {
                return Err(ctl.fail(BAD_PRODUCER, 1, v));
            }
            if k <= self.last[p] {
                return Err(ctl.fail(OUT_OF_ORDER, self.last[p], v));
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

    /// Waits (sleeping) until the consumers have taken `target` items in all.
    fn wait_taken(m: &MpmcCtl, target: u64) {
        let mut b = Backoff::sleepy();
        loop {
            let taken: u64 = m.live.iter().map(|l| l.0.load(Ordering::Relaxed)).sum();
            if taken >= target {
                return;
            }
            m.ctl.check();
            b.snooze();
        }
    }

    /// Checks that every item of `rounds` rounds arrived exactly once. The
    /// tallies must have been published (consumers reaped or joined).
    fn verify(m: &MpmcCtl, rounds: u64, what: &str) {
        m.ctl.check();
        let k = u128::from(rounds * HALF);
        let want_sum = (k * (k + 1) / 2) as u64;
        let want_sumsq = (k * (k + 1) * (2 * k + 1) / 6) as u64;
        for p in 0..2 {
            let t = &m.tally;
            let count =
                t[0].count[p].load(Ordering::Relaxed) + t[1].count[p].load(Ordering::Relaxed);
            let sum = t[0].sum[p]
                .load(Ordering::Relaxed)
                .wrapping_add(t[1].sum[p].load(Ordering::Relaxed));
            let sumsq = t[0].sumsq[p]
                .load(Ordering::Relaxed)
                .wrapping_add(t[1].sumsq[p].load(Ordering::Relaxed));
            assert_eq!(count as u128, k, "{what}: producer {p}: items received");
            assert_eq!(sum, want_sum, "{what}: producer {p}: sum of items");
            assert_eq!(sumsq, want_sumsq, "{what}: producer {p}: sum of squares");
        }
    }

    fn processes(g: &mut Group<'_>) {
        let name = "queue_u64_2p2c_processes";
        let what = format!("mpmc/{name}");
        let _armed = watchdog::arm(&what);
        let q = Queue::<u64>::anonymous(CAP).expect("create queue");
        // One start queue per producer, so each moves exactly `HALF` per round.
        let go = [0, 1].map(|_| Queue::<u64>::anonymous(2).expect("create go queue"));
        let m = Shared::<MpmcCtl>::new().expect("map the control block");
        let (qr, mr): (&Queue<u64>, &MpmcCtl) = (&q, &m);

        let producers = [0u64, 1].map(|p| {
            let gor = &go[p as usize];
            spawn(move || {
                let mut k = 0u64;
                loop {
                    match gor.get() {
                        Ok(STOP) => return 0,
                        Ok(_) => {}
                        Err(_) => return 20,
                    }
                    for _ in 0..HALF {
                        k += 1;
                        if qr.put(p << SHIFT | k).is_err() {
                            return 21;
                        }
                    }
                }
            })
        });
        let consumers = [0usize, 1].map(|c| {
            spawn(move || {
                let mut t = Tally::default();
                loop {
                    match qr.get() {
                        Ok(v) => {
                            if let Err(code) = t.take(v, &mr.ctl) {
                                qr.shutdown();
                                return code;
                            }
                            mr.live[c].0.store(t.total, Ordering::Relaxed);
                        }
                        Err(GetError::Closed) => {
                            t.publish(&mr.tally[c]);
                            return 0;
                        }
                        Err(_) => return 22,
                    }
                }
            })
        });

        let mut rounds = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rounds += 1;
                    for go in &go {
                        go.put(rounds).expect("start a producer");
                    }
                    wait_taken(&m, rounds * N);
                    watchdog::tick();
                }
                start.elapsed()
            });
        });

        for go in &go {
            go.put(STOP).expect("stop a producer");
        }
        for (p, child) in producers.into_iter().enumerate() {
            reap(child, &format!("{what} producer {p}"));
        }
        q.shutdown();
        for (c, child) in consumers.into_iter().enumerate() {
            reap(child, &format!("{what} consumer {c}"));
        }
        verify(&m, rounds, &what);
        let stats = q.stats();
        assert_eq!(stats.abandoned, 0, "{what}: {stats:?}");
        assert!(q.is_empty(), "{what}: items left over: {stats:?}");
    }
}

criterion_group!(benches, round_trip::bench, throughput::bench, mpmc::bench);
criterion_main!(benches);
