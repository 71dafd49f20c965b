//! Criterion benchmarks for `multiproc`'s primitives.
//!
//! * [`uncontended`]: one thread, lock + unlock pairs of `multiproc::Lock`
//!   against `std::sync::Mutex<()>` and `raw_sync`'s process-shared pthread
//!   mutex, plus `multiproc::Event` `set` + `is_set`.
//! * [`cross_process`]: round-trip latency between this process and one forked
//!   child, over two `multiproc::Event`s and over two pipes.
//!
//! Run with `cargo bench -p multiproc-benches --bench sync -- --noplot`.

// A benchmark has no caller to hand errors to: failing setup should abort loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main};

mod uncontended {
    //! Group `uncontended`.
    //!
    //! Method: a single thread repeatedly acquires and immediately releases a
    //! lock nobody else touches, so every iteration is the pure fast path (no
    //! syscall). `multiproc_lock` is a robust process-shared pthread mutex plus
    //! the crate's consistency and owner words; `raw_sync_mutex` is a plain
    //! process-shared pthread mutex placed in a `shared_memory` mapping;
    //! `std_mutex` (`std::sync::Mutex<()>`, process-private futex lock) is the
    //! floor. `event_set_is_set` is `Event::set` (one swap; no waiter, so no
    //! wake) followed by `Event::is_set` (one load).

    use std::hint::black_box;
    use std::time::Duration;

    use criterion::Criterion;
    use multiproc::{Event, Lock};
    use raw_sync::locks::{LockInit, Mutex as RawSyncMutex};
    use shared_memory::ShmemConf;

    /// Runs the group.
    pub fn bench(c: &mut Criterion) {
        let mut g = c.benchmark_group("uncontended");
        g.measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .sample_size(50);

        let lock = Lock::anonymous().expect("create multiproc::Lock");
        g.bench_function("multiproc_lock", |b| {
            b.iter(|| {
                let guard = black_box(&lock).lock().expect("uncontended lock");
                drop(black_box(guard));
            });
        });

        let std_mutex = std::sync::Mutex::new(());
        g.bench_function("std_mutex", |b| {
            b.iter(|| {
                let guard = black_box(&std_mutex).lock().expect("uncontended std lock");
                drop(black_box(guard));
            });
        });

        // Padding room: `new` aligns the mutex inside the buffer.
        let shmem = ShmemConf::new()
            .size(RawSyncMutex::size_of(None) + 64)
            .create()
            .expect("create shared_memory mapping");
        // SAFETY: the mapping is freshly created, used by nothing else and longer
        // than `size_of(None)` plus any alignment padding; it outlives the mutex
        // (`raw_mutex` is dropped before `shmem` below). The data pointer is never
        // dereferenced.
        let (raw_mutex, _) = unsafe { RawSyncMutex::new(shmem.as_ptr(), std::ptr::null_mut()) }
            .expect("init raw_sync mutex");
        g.bench_function("raw_sync_mutex", |b| {
            b.iter(|| {
                let guard = black_box(&*raw_mutex)
                    .lock()
                    .expect("uncontended raw_sync lock");
                drop(black_box(guard));
            });
        });

        let event = Event::anonymous().expect("create multiproc::Event");
        g.bench_function("event_set_is_set", |b| {
            b.iter(|| {
                let ev = black_box(&event);
                ev.set();
                black_box(ev.is_set())
            });
        });

        g.finish();
        drop(raw_mutex);
        drop(shmem);
    }
}

mod cross_process {
    //! Group `cross_process`.
    //!
    //! Method: one child is forked per benchmark function (not per sample) and
    //! echoes every ping with a pong; `iter_custom` times `iters` full round
    //! trips (parent → child → parent) and returns the total, so the reported
    //! time is one round trip. When criterion is done with the function, the
    //! parent tells the child to stop and reaps it.
    //!
    //! * `event_ping_pong`: two `Event`s. Parent: `ping.set(); pong.wait();
    //!   pong.clear()`. Child: `ping.wait(); ping.clear(); pong.set()`. Each side
    //!   clears the event it waited on *before* signalling the other, so every
    //!   `set` of an event comes after the previous round's `clear` of it: no
    //!   wake-up is lost and none is seen twice. `wait` spins briefly, then
    //!   sleeps on a shared futex. To stop, the parent sets a third `Event`,
    //!   `stop`, then `ping`; the child checks `stop` right after waking (`set` is
    //!   a Release, `wait` an Acquire, so `stop` is visible).
    //!   `event_ping_pong_park` and `event_ping_pong_busy_poll` are the same
    //!   with `WaitPolicy::Park` and `WaitPolicy::BusyPoll` on both sides.
    //! * `pipe_ping_pong`: the same over two pipes, one byte each way with
    //!   blocking `write`/`read`; the byte `b'q'` tells the child to exit.

    use std::time::{Duration, Instant};

    use criterion::Criterion;
    use multiproc::process::{self, Child};
    use multiproc::{Event, WaitPolicy};

    /// Runs the group.
    pub fn bench(c: &mut Criterion) {
        let mut g = c.benchmark_group("cross_process");
        g.measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .sample_size(30);
        events(&mut g, WaitPolicy::SpinThenPark, "event_ping_pong");
        events(&mut g, WaitPolicy::Park, "event_ping_pong_park");
        events(&mut g, WaitPolicy::BusyPoll, "event_ping_pong_busy_poll");
        pipes(&mut g);
        g.finish();
    }

    type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

    fn events(g: &mut Group<'_>, policy: WaitPolicy, name: &str) {
        let ping = Event::anonymous()
            .expect("create ping")
            .with_wait_policy(policy);
        let pong = Event::anonymous()
            .expect("create pong")
            .with_wait_policy(policy);
        let stop = Event::anonymous().expect("create stop");
        // SAFETY: criterion may run other threads; the child runs only this crate's primitives and plain code, then `_exit`s, taking no lock another thread may hold.
        let child = unsafe {
            process::fork_unchecked(|| {
                loop {
                    ping.wait();
                    ping.clear();
                    if stop.is_set() {
                        return 0;
                    }
                    pong.set();
                }
            })
        }
        .expect("fork event child");

        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    ping.set();
                    pong.wait();
                    pong.clear();
                }
                start.elapsed()
            });
        });

        stop.set();
        ping.set();
        reap(child);
    }

    fn pipes(g: &mut Group<'_>) {
        let (to_child, from_parent) = pipe();
        let (to_parent, from_child) = pipe();
        // SAFETY: criterion may run other threads; the child runs only this crate's primitives and plain code, then `_exit`s, taking no lock another thread may hold.
        let child = unsafe {
            process::fork_unchecked(|| {
                let mut byte = 0u8;
                loop {
                    if read_byte(from_parent, &mut byte) != 1 {
                        return 1;
                    }
                    if byte == b'q' {
                        return 0;
                    }
                    if write_byte(to_parent, b'p') != 1 {
                        return 2;
                    }
                }
            })
        }
        .expect("fork pipe child");

        g.bench_function("pipe_ping_pong", |b| {
            b.iter_custom(|iters| {
                let mut byte = 0u8;
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(write_byte(to_child, b'p'), 1, "write ping");
                    assert_eq!(read_byte(from_child, &mut byte), 1, "read pong");
                }
                start.elapsed()
            });
        });

        assert_eq!(write_byte(to_child, b'q'), 1, "write stop");
        reap(child);
        for fd in [to_child, from_parent, to_parent, from_child] {
            // SAFETY: `fd` is a pipe end this function opened and closes exactly
            // once; the (reaped) child had its own copies.
            unsafe { libc::close(fd) };
        }
    }

    /// Reaps `child`, panicking unless it exited with code 0.
    fn reap(child: Child) {
        let status = child.wait().expect("wait for child");
        assert!(status.success(), "child ended with {status:?}");
    }

    /// A new pipe as `(write end, read end)`.
    fn pipe() -> (libc::c_int, libc::c_int) {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid, writable array of two ints, as `pipe` needs.
        let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
        (fds[1], fds[0])
    }

    /// Writes one byte to `fd`; returns what `write` returned. Allocation-free,
    /// so fine in a forked child.
    fn write_byte(fd: libc::c_int, byte: u8) -> isize {
        // SAFETY: the buffer is one valid, readable byte on the stack.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) }
    }

    /// Reads one byte from `fd` into `byte`; returns what `read` returned.
    /// Allocation-free, so fine in a forked child.
    fn read_byte(fd: libc::c_int, byte: &mut u8) -> isize {
        // SAFETY: `byte` is one valid, writable byte.
        unsafe { libc::read(fd, std::ptr::from_mut(byte).cast(), 1) }
    }
}

criterion_group!(benches, uncontended::bench, cross_process::bench);
criterion_main!(benches);
