//! What every measurement stands on: shared mappings and the control words in
//! them, forked workers that die with their parent, raw file descriptors, a
//! spin-then-sleep backoff, failure reports from children, and a watchdog that
//! turns a hang into a loud failure.
//!
//! Children run allocation-light code only (this crate's primitives, `read`,
//! `write`, atomics), so forking from a multi-threaded process (the test
//! harness) is fine.

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multiproc::process::{self, Child};

/// Errors of the measuring process.
pub type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A `MAP_SHARED | MAP_ANONYMOUS` mapping, zero-filled and page-aligned,
/// shared with every child forked after its creation.
#[derive(Debug)]
pub struct Shm {
    ptr: NonNull<u8>,
    len: usize,
}

impl Shm {
    /// Maps `len` bytes.
    pub fn new(len: usize) -> Res<Shm> {
        // SAFETY: a fresh anonymous mapping with no address hint touches no
        // existing memory; the result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap {len} bytes: {}", std::io::Error::last_os_error()).into());
        }
        let ptr = NonNull::new(p.cast()).ok_or("mmap returned null")?;
        Ok(Shm {
            ptr,
            len: len.max(1),
        })
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is the mapping `new` created; nothing borrows it
        // any more (borrows are tied to `&self`). Children have their own copy.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Types placed in a [`Shared`] mapping.
///
/// # Safety
///
/// All-zero bytes must be a valid value, and every field must be an atomic
/// (concurrent access from several processes is then sound).
pub unsafe trait ZeroShared: Sync {}

/// A `T` in its own shared mapping, zero-initialized.
#[derive(Debug)]
pub struct Shared<T: ZeroShared> {
    shm: Shm,
    _t: PhantomData<T>,
}

impl<T: ZeroShared> Shared<T> {
    /// Maps a zeroed `T`.
    pub fn new() -> Res<Shared<T>> {
        const { assert!(align_of::<T>() <= 4096, "page alignment suffices") };
        Ok(Shared {
            shm: Shm::new(size_of::<T>())?,
            _t: PhantomData,
        })
    }
}

impl<T: ZeroShared> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the mapping is page-aligned (enough for `T`, checked in `new`),
        // at least `size_of::<T>()` bytes, zero-filled by the kernel, and zero is
        // a valid `T` made of atomics (`ZeroShared`); it lives as long as `self`.
        unsafe { &*self.shm.as_ptr().cast::<T>() }
    }
}

/// One atomic word alone on a 128-byte line (adjacent-line prefetch pairs
/// 64-byte lines), so control words never share a line with hot data.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Line(pub AtomicU64);

impl Line {
    /// Acquire load.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Release store.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Release);
    }
}

/// Why a worker gave up; also its exit code.
pub mod code {
    /// A receive failed (closed, end of file, error).
    pub const RECV_FAILED: i32 = 10;
    /// A send failed (closed, broken pipe, error).
    pub const SEND_FAILED: i32 = 11;
    /// A message of the wrong length arrived.
    pub const BAD_LEN: i32 = 12;
    /// A message's bytes are not what its sequence number says (torn or corrupt).
    pub const BAD_CONTENT: i32 = 13;
    /// A message arrived out of turn (lost, duplicated or reordered).
    pub const BAD_SEQ: i32 = 14;
    /// A message names no producer.
    pub const BAD_PRODUCER: i32 = 15;
    /// Taking a lock failed.
    pub const LOCK_FAILED: i32 = 16;
    /// A worker could not set up its transport.
    pub const SETUP_FAILED: i32 = 17;

    /// A human description of `c`.
    pub fn name(c: u64) -> &'static str {
        match i32::try_from(c).unwrap_or(0) {
            RECV_FAILED => "receive failed (closed, EOF or error)",
            SEND_FAILED => "send failed (closed, broken pipe or error)",
            BAD_LEN => "message of the wrong length",
            BAD_CONTENT => "message bytes do not match its sequence number (torn or corrupt)",
            BAD_SEQ => "message out of turn (lost, duplicated or reordered)",
            BAD_PRODUCER => "message names no producer",
            LOCK_FAILED => "lock operation failed",
            SETUP_FAILED => "worker setup failed",
            _ => "unknown failure",
        }
    }
}

/// A failure report from a worker to the measuring process; the first report
/// wins.
#[derive(Debug)]
#[repr(C)]
pub struct FailBlock {
    code: Line,
    expected: Line,
    got: Line,
}

// SAFETY: atomics only; zero is a valid `AtomicU64`.
unsafe impl ZeroShared for FailBlock {}

impl FailBlock {
    /// Records failure `code` (unless one is recorded already) and returns it,
    /// to be used as the worker's exit code.
    pub fn fail(&self, code: i32, expected: u64, got: u64) -> i32 {
        // Relaxed: only the winner writes the details, and they are published by
        // the Release store of the code below.
        if self
            .code
            .0
            .compare_exchange(0, u64::MAX, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.expected.0.store(expected, Ordering::Relaxed);
            self.got.0.store(got, Ordering::Relaxed);
            self.code.set(code as u64);
        }
        code
    }

    /// Whether a failure was recorded.
    pub fn failed(&self) -> bool {
        self.code.get() != 0
    }

    /// `Err` with the details if a failure was recorded.
    pub fn check(&self, what: &str) -> Res {
        if self.failed() {
            return Err(self.describe(what).into());
        }
        Ok(())
    }

    /// The recorded failure, in words.
    pub fn describe(&self, what: &str) -> String {
        let c = self.code.get();
        if c == 0 || c == u64::MAX {
            return format!("{what}: no failure report from the workers");
        }
        let (expected, got) = (self.expected.get(), self.got.get());
        let detail = match i32::try_from(c) {
            Ok(code::BAD_LEN) => format!("expected {expected} bytes, got {got}"),
            Ok(code::BAD_CONTENT) => {
                format!("the message with word {expected:#x} is wrong from byte {got} on")
            }
            _ => format!("expected {expected:#x}, got {got:#x}"),
        };
        format!(
            "{what}: worker failed with code {c} ({}): {detail}",
            code::name(c)
        )
    }
}

/// Waiting for a peer: spin, then yield the CPU, then sleep 20 µs at a time. A
/// descheduled peer on a 2-core machine needs our CPU, and an idle worker
/// between runs should not burn one.
#[derive(Debug)]
pub struct Backoff(u32);

const SPINS: u32 = 1 << 10;
const YIELDS: u32 = 1 << 8;

impl Backoff {
    /// Starts with spinning.
    pub fn new() -> Backoff {
        Backoff(0)
    }

    /// Sleeps from the first snooze (pollers that must not compete with the
    /// workers for the CPU).
    pub fn sleepy() -> Backoff {
        Backoff(SPINS + YIELDS)
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

/// One step of a pure spin-wait: `spin_loop()`, except that every 256th step
/// yields the CPU. A reply from another core arrives long before the first
/// yield; the yield matters only when the peer waits for our CPU (2 cores and
/// a third busy process), where pure spinning would cost a scheduler slice.
pub fn spin(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if *spins % 256 == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Forks a child running `f`; it is killed if the forking thread dies, so a
/// failed run leaves no spinning orphans.
pub fn spawn(f: impl FnOnce() -> i32) -> Res<Child> {
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
    // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
    let child = unsafe { process::fork_unchecked(child) }?;
    Ok(child)
}

/// The forked workers of one measurement: checked while waiting, killed on
/// failure or drop, reaped (exit code 0 required) at the end.
#[derive(Debug, Default)]
pub struct Workers {
    children: Vec<(String, Child)>,
}

impl Workers {
    /// No workers yet.
    pub fn new() -> Workers {
        Workers::default()
    }

    /// Forks worker `name` running `f`.
    pub fn spawn(&mut self, name: &str, f: impl FnOnce() -> i32) -> Res {
        let child = spawn(f)?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// `Err` if a worker has already ended (it should be running). Does not
    /// block and reaps nobody.
    pub fn check_running(&mut self, fail: &FailBlock, what: &str) -> Res {
        fail.check(what)?;
        for (name, child) in &mut self.children {
            if has_exited(child.pid()) {
                let status = child.wait_timeout(Duration::from_secs(1))?;
                fail.check(what)?;
                return Err(format!("{what}: {name} ended early ({status:?})").into());
            }
        }
        Ok(())
    }

    /// Reaps every worker, failing unless all exited with 0 within `timeout`.
    pub fn reap(mut self, fail: &FailBlock, what: &str, timeout: Duration) -> Res {
        let deadline = Instant::now() + timeout;
        let mut bad = Vec::new();
        for (name, child) in &mut self.children {
            let left = deadline.saturating_duration_since(Instant::now());
            match child.wait_timeout(left)? {
                Some(status) if status.success() => {}
                Some(status) => bad.push(format!("{name} ended with {status:?}")),
                None => {
                    child.kill()?;
                    bad.push(format!("{name} did not exit within {timeout:?}; killed"));
                }
            }
        }
        self.children.clear();
        fail.check(what)?;
        if !bad.is_empty() {
            return Err(format!("{what}: {}", bad.join("; ")).into());
        }
        Ok(())
    }
}

/// Whether child `pid` has ended, without waiting and without reaping it.
fn has_exited(pid: u32) -> bool {
    let id = libc::id_t::from(pid);
    // SAFETY: all-zero bytes are a valid `siginfo_t` (a plain C struct).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the child
    // waitable, WNOHANG returns at once.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: after a successful waitid, `si_pid` is the field the kernel
    // filled in (0 when no child has changed state).
    r == 0 && unsafe { info.si_pid() } != 0
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Only on failure paths: kill and reap whatever is left.
        for (_, child) in &mut self.children {
            let _ = child.kill();
        }
        for (_, child) in self.children.drain(..) {
            let _ = child.wait();
        }
    }
}

/// File descriptors closed on drop.
#[derive(Debug, Default)]
pub struct Fds(Vec<libc::c_int>);

impl Fds {
    /// A new pipe as `(write end, read end)`.
    pub fn pipe(&mut self) -> Res<(libc::c_int, libc::c_int)> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid, writable array of two ints, as `pipe` needs.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()).into());
        }
        self.0.extend(fds);
        Ok((fds[1], fds[0]))
    }

    /// A connected `AF_UNIX`/`SOCK_STREAM` socket pair.
    pub fn socketpair(&mut self) -> Res<(libc::c_int, libc::c_int)> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid, writable array of two ints, as `socketpair`
        // needs.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        if r != 0 {
            return Err(format!("socketpair: {}", std::io::Error::last_os_error()).into());
        }
        self.0.extend(fds);
        Ok((fds[0], fds[1]))
    }
}

impl Drop for Fds {
    fn drop(&mut self) {
        for &fd in &self.0 {
            // SAFETY: this process opened `fd` through `Fds` and closes it once.
            unsafe { libc::close(fd) };
        }
    }
}

fn interrupted() -> bool {
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
}

/// Writes all of `buf` (one `write` unless it is cut short); `false` on an
/// error such as `EPIPE`. Allocation-free.
pub fn write_all(fd: libc::c_int, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid, readable memory of `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if interrupted() {
                continue;
            }
            return false;
        }
        buf = &buf[n.unsigned_abs()..];
    }
    true
}

/// Reads at least one byte into `buf`; the count, or `None` on end of file or
/// an error. Allocation-free.
pub fn read_some(fd: libc::c_int, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: `buf` is valid, writable memory of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && interrupted() {
            continue;
        }
        return (n > 0).then_some(n.unsigned_abs());
    }
}

/// Fills all of `buf`; `false` on end of file or an error. Allocation-free.
pub fn read_exact(fd: libc::c_int, mut buf: &mut [u8]) -> bool {
    while !buf.is_empty() {
        let Some(n) = read_some(fd, buf) else {
            return false;
        };
        buf = &mut buf[n..];
    }
    true
}

/// A `raw_sync` pthread mutex (process-shared, not robust) in its own shared
/// mapping: the baseline lock, and the reader/writer lock of the pipe- and
/// socket-based queues (as Python's `multiprocessing.Queue` has).
pub struct PthreadMutex {
    lock: Box<dyn raw_sync::locks::LockImpl>,
    // Declared after `lock` so the mutex is dropped before its memory.
    _shm: Shm,
}

impl std::fmt::Debug for PthreadMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PthreadMutex")
    }
}

impl PthreadMutex {
    /// A new, unlocked mutex.
    pub fn new() -> Res<PthreadMutex> {
        use raw_sync::locks::{LockInit, Mutex};
        // Room for the mutex plus any alignment padding `new` adds.
        let shm = Shm::new(Mutex::size_of(None) + 64)?;
        // SAFETY: the mapping is fresh, used by nothing else, longer than the
        // mutex plus padding, and outlives it (field order). The data pointer is
        // never dereferenced.
        let (lock, _) = unsafe { Mutex::new(shm.as_ptr(), std::ptr::null_mut()) }
            .map_err(|e| format!("raw_sync mutex: {e}"))?;
        Ok(PthreadMutex { lock, _shm: shm })
    }

    /// Runs `f` with the mutex held; `Err` if locking failed.
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> Result<R, i32> {
        let guard = self.lock.lock().map_err(|_| code::LOCK_FAILED)?;
        let r = f();
        drop(guard);
        Ok(r)
    }
}

pub mod watchdog {
    //! Aborts the process (children die with it) when the armed measurement
    //! makes no progress ([`tick`]) for [`STALL`]: a hang becomes a loud failure
    //! instead of a run that never ends.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, Once, PoisonError};
    use std::time::{Duration, Instant};

    const STALL: Duration = Duration::from_secs(60);

    /// Progress ticks; Relaxed, a counter only.
    static PROGRESS: AtomicU64 = AtomicU64::new(0);
    static ARMED: Mutex<Option<String>> = Mutex::new(None);
    static START: Once = Once::new();

    /// Disarms the watchdog when dropped.
    #[derive(Debug)]
    pub struct Armed;

    impl Drop for Armed {
        fn drop(&mut self) {
            *ARMED.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Records progress.
    #[inline]
    pub fn tick() {
        PROGRESS.fetch_add(1, Ordering::Relaxed);
    }

    fn watch() {
        let mut last = (PROGRESS.load(Ordering::Relaxed), Instant::now());
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = PROGRESS.load(Ordering::Relaxed);
            let armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
            if now != last.0 || armed.is_none() {
                last = (now, Instant::now());
                continue;
            }
            if last.1.elapsed() > STALL {
                eprintln!(
                    "compare: watchdog: {} made no progress for {STALL:?}: hung, aborting",
                    armed.as_deref().unwrap_or("?")
                );
                std::process::abort();
            }
        }
    }

    /// Starts watching measurement `what`.
    pub fn arm(what: &str) -> Armed {
        START.call_once(|| {
            // Without a watchdog the run still works; it just cannot abort a hang.
            let _ = std::thread::Builder::new()
                .name("compare-watchdog".into())
                .spawn(watch);
        });
        tick();
        *ARMED.lock().unwrap_or_else(PoisonError::into_inner) = Some(what.to_owned());
        Armed
    }
}
