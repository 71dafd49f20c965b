//! Helpers shared by the multi-process tests: unique names, shared scratch memory,
//! a watchdog around child processes, and a wait for "the child is asleep".
#![allow(
    dead_code,
    clippy::disallowed_types,
    reason = "test scaffolding; std atomics on our own scratch mapping"
)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use multiproc::process::{self, Child, ExitStatus};

/// A name unique to this test process and call.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/mp-test-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        tag
    )
}

/// Unlinks a name when dropped, so a failing test leaves nothing in /dev/shm.
pub struct Unlink(pub String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = multiproc::Region::unlink(&self.0);
    }
}

/// A page of `MAP_SHARED` scratch memory that forked children share, used by
/// tests to record what happened (counters, slots) independently of the crate.
pub struct Scratch {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is only accessed through atomics or by one process at a
// time under a lock the test holds.
unsafe impl Sync for Scratch {}
// SAFETY: as above; the pointer is to a shared mapping, not thread-local data.
unsafe impl Send for Scratch {}

impl Scratch {
    pub fn new(words: usize) -> Scratch {
        let len = (words * 8).max(4096);
        // SAFETY: anonymous shared mapping with no address hint; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap failed");
        Scratch {
            ptr: ptr.cast(),
            len,
        }
    }

    /// Word `i` as an atomic.
    pub fn atomic(&self, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 8 <= self.len);
        // SAFETY: in bounds (checked), 8-aligned (page-aligned base), zero-initialized
        // shared memory that lives as long as `self`.
        unsafe { &*self.ptr.add(i * 8).cast::<AtomicU64>() }
    }

    /// Plain (non-atomic) read of word `i`; the caller holds the lock guarding it.
    pub fn read(&self, i: usize) -> u64 {
        assert!((i + 1) * 8 <= self.len);
        // SAFETY: in bounds and aligned; volatile so the compiler cannot cache it
        // across the lock operations of the test.
        unsafe { std::ptr::read_volatile(self.ptr.add(i * 8).cast::<u64>()) }
    }

    /// Plain (non-atomic) write of word `i`; the caller holds the lock guarding it.
    pub fn write(&self, i: usize, v: u64) {
        assert!((i + 1) * 8 <= self.len);
        // SAFETY: as in `read`.
        unsafe { std::ptr::write_volatile(self.ptr.add(i * 8).cast::<u64>(), v) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// How long any child may run before the test fails instead of hanging CI.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Forks `f` into a child.
pub fn spawn(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the test harness runs other threads; the child runs only this crate's primitives and plain code, then `_exit`s, taking no lock another thread may hold.
    unsafe { process::fork_unchecked(f) }.expect("fork")
}

/// Waits for `child` under the watchdog: a hang kills it and fails the test.
pub fn join(child: Child) -> ExitStatus {
    match child.wait_timeout(WATCHDOG).expect("wait") {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait_timeout(WATCHDOG);
            panic!(
                "watchdog: child {} did not finish in {:?}",
                child.pid(),
                WATCHDOG
            );
        }
    }
}

/// Waits for every child and asserts each exited with code 0.
pub fn join_all_ok(children: Vec<Child>) {
    for (i, c) in children.into_iter().enumerate() {
        assert_eq!(join(c), ExitStatus::Code(0), "child {i}");
    }
}

/// Kills `child` with SIGKILL and reaps it.
pub fn kill(child: Child) {
    child.kill().expect("kill");
    assert_eq!(join(child), ExitStatus::Signal(libc::SIGKILL));
}

/// Blocks until the kernel reports `pid` asleep (state `S`) in a futex wait,
/// without guessing with sleeps.
///
/// Proof that the child reached its blocking call only if that call is its
/// first futex sleep: a process's first lock (or other join of a region)
/// starts its beacon thread and sleeps on a futex for the hand-shake, and a
/// child seen asleep there runs on afterwards. Have the child signal "about
/// to block" (after it joined, for a lock: after a `try_lock`) and wait for
/// that signal before calling this, or use [`wait_until_blocked_in`] when the
/// blocking call is the child's first use of its region.
pub fn wait_until_asleep(pid: u32) {
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if state == "S" && (wchan.contains("futex") || wchan.is_empty() || wchan == "0") {
            return;
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "watchdog: child {pid} never went to sleep"
        );
        std::thread::yield_now();
    }
}

/// Blocks until `pid` is blocked in a call that is its first use of `region`
/// (a write to a dict or value whose lock another process holds, say).
///
/// First waits until `pid` is a live participant of `region`: it joined, so the
/// join and whatever it slept on (the beacon thread's hand-shake, on a
/// process's first join) are behind it. Only then [`wait_until_asleep`]: a
/// sleep seen after the join is the call's own. Without the first step a child
/// still starting its beacon looks just as asleep (measured on
/// `tests/dict_kill.rs`: 36 of 60 waiters had not joined yet when
/// `wait_until_asleep` alone returned).
///
/// The child must not have used `region` before the call: a process that
/// joined earlier is in the table already and proves nothing.
pub fn wait_until_blocked_in(region: &multiproc::Region, pid: u32) {
    let start = Instant::now();
    while !region
        .participants()
        .iter()
        .any(|p| p.pid == pid && p.alive)
    {
        assert!(
            start.elapsed() < WATCHDOG,
            "watchdog: child {pid} never joined the region"
        );
        std::thread::yield_now();
    }
    wait_until_asleep(pid);
}

/// Runs `f` on its own thread and waits for it under [`WATCHDOG`]: a panic in
/// `f` is re-raised here, and a body that never finishes fails the test
/// instead of hanging it.
pub fn watchdog(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => t.join().expect("the watched thread finished"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: re-raise its panic.
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: test did not finish in {WATCHDOG:?}")
        }
    }
}
