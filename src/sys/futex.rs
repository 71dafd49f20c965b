//! Shared (non-private) futex wait and wake.
//!
//! The word lives in a `MAP_SHARED` mapping, so the kernel keys it on the backing
//! object and offset: two processes with the mapping at different addresses still
//! meet on the same futex. `FUTEX_PRIVATE_FLAG` would key on `(mm, address)` and
//! silently never wake another process, so it is never used here.
//!
//! Waits use `FUTEX_WAIT_BITSET` with an absolute `CLOCK_MONOTONIC` deadline, so a
//! retry after a signal or a spurious wake-up never stretches the timeout.
#![expect(
    clippy::disallowed_types,
    reason = "the syscall layer takes the real atomic; crate::loom swaps this module out under loom"
)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::time::Deadline;

/// How a futex wait ended. Every outcome obliges the caller to re-check its state:
/// wake-ups may be spurious and the word may change right after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken by `futex_wake`, by a signal, or spuriously.
    Woken,
    /// The word did not hold `expected` when the kernel looked (`EAGAIN`).
    Changed,
    /// The deadline passed.
    TimedOut,
}

/// Count of futex syscalls this process made (waits and wakes). Fast paths make
/// none; tests use this to prove it.
static SYSCALLS: AtomicU64 = AtomicU64::new(0);

/// Number of futex syscalls (wait + wake) this process has made so far.
pub(crate) fn syscall_count() -> u64 {
    // Relaxed: a statistic, read for reporting only.
    SYSCALLS.load(Ordering::Relaxed)
}

/// Sleeps while `*word == expected`, until woken or until `deadline`.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> WaitResult {
    SYSCALLS.fetch_add(1, Ordering::Relaxed);
    let ts = deadline.map(Deadline::timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // The shared (non-private) variant is intended: the word is in MAP_SHARED
    // memory and waiters may be in other processes.
    // SAFETY: `word` is a live, aligned u32 (the reference guarantees it); `ts_ptr`
    // is null or points at `ts`, which outlives the call; the kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if r == 0 {
        return WaitResult::Woken;
    }
    match super::errno() {
        libc::EAGAIN => WaitResult::Changed,
        libc::ETIMEDOUT => WaitResult::TimedOut,
        // EINTR: a signal; the caller re-checks and waits again with the same
        // absolute deadline. Anything else (EFAULT/EINVAL cannot happen with a valid
        // reference) is reported as a spurious wake so callers re-check.
        _ => WaitResult::Woken,
    }
}

/// Wakes up to `n` waiters on `word`; returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> u32 {
    SYSCALLS.fetch_add(1, Ordering::Relaxed);
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access the memory
    // behind the address beyond looking up its key.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    u32::try_from(r).unwrap_or(0)
}

/// The kernel's `struct futex_waitv`.
#[repr(C)]
struct WaitV {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: a 32-bit word, shared (no `FUTEX2_PRIVATE`).
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Set once `futex_waitv` turned out to be missing (kernels before 5.16).
static NO_WAITV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sleeps while `*a == a_val` and `*b == b_val`: woken by a wake on either word.
///
/// Uses `futex_waitv` (Linux 5.16); on older kernels it waits on `a` alone with
/// the same deadline, so the caller's re-check of `b` happens once per slice.
pub(crate) fn wait2(
    a: &AtomicU32,
    a_val: u32,
    b: &AtomicU32,
    b_val: u32,
    deadline: Option<Deadline>,
) -> WaitResult {
    // Relaxed: a cached capability bit.
    if NO_WAITV.load(Ordering::Relaxed) {
        return wait(a, a_val, deadline);
    }
    SYSCALLS.fetch_add(1, Ordering::Relaxed);
    let waiters = [
        WaitV {
            val: u64::from(a_val),
            uaddr: a.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        },
        WaitV {
            val: u64::from(b_val),
            uaddr: b.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        },
    ];
    let ts = deadline.map(Deadline::timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `waiters` is a valid array of two futex_waitv records naming live,
    // aligned u32 words (the references guarantee it); `ts_ptr` is null or points
    // at `ts`; the kernel only reads all of them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            2u32,
            0u32,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return WaitResult::Woken;
    }
    match super::errno() {
        libc::EAGAIN => WaitResult::Changed,
        libc::ETIMEDOUT => WaitResult::TimedOut,
        libc::ENOSYS => {
            NO_WAITV.store(true, Ordering::Relaxed);
            wait(a, a_val, deadline)
        }
        _ => WaitResult::Woken,
    }
}
