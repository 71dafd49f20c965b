//! The only module that calls libc.
//!
//! Everything above this layer sees a small, mostly safe API: futex wait/wake on a
//! shared `AtomicU32` with an absolute `CLOCK_MONOTONIC` deadline, shared mappings
//! (named `shm_open` objects and anonymous `memfd`s), a `#[repr(C)]` robust
//! process-shared `pthread_mutex_t`, process identity (pid, tid, start time,
//! fork epoch), and a small fork/wait layer for [`crate::process`].
//!
//! `EINTR` and `errno` are handled here and nowhere else.

pub(crate) mod futex;
pub(crate) mod membarrier;
pub(crate) mod process;
pub(crate) mod robust;
pub(crate) mod shm;
pub(crate) mod time;

use std::io;

/// The calling thread's `errno` as an [`io::Error`].
#[cold]
fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// This machine's physical memory in bytes, if the system says.
pub(crate) fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let pages = u64::try_from(pages).ok()?;
    let size = u64::try_from(size).ok()?;
    pages.checked_mul(size)
}

/// The raw `errno` value of the calling thread.
#[cold]
fn errno() -> i32 {
    last_error().raw_os_error().unwrap_or(0)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
compile_error!(
    "multiproc supports Linux with glibc only: it relies on shared futexes and glibc's robust pthread mutexes"
);

/// The libc family this build links against, recorded in every region header so
/// processes built against different `pthread_mutex_t` layouts never share a lock.
pub(crate) const LIBC_FAMILY: u32 = u32::from_le_bytes(*b"GNU\0");
