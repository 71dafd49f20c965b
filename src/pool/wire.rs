//! The bytes a pool's queues carry, and the per-worker "running" table.
//!
//! A task message is a [`TaskHeader`] followed by `count` arguments of
//! `arg_size` bytes each. A result message is a [`ResultHeader`] followed by
//! `count` results of `res_size` bytes, `count` status bytes ([`OK`] or
//! [`PANICKED`]) and, for panicked items while room remains, panic records
//! (`index: u32`, `len: u32`, `len` bytes of UTF-8, lossy).
//!
//! Both travel through the crate's [`BytesQueue`](crate::BytesQueue)s: one inbox
//! per worker (only the parent puts, only that worker gets) and one result queue
//! (every worker puts, only the parent gets). Every field read back is checked
//! against the message length before use; the function addresses in a task are
//! checked against a keyed checksum (a key drawn in the parent before the
//! workers start, never stored in shared memory), so a stray write into an inbox
//! makes the worker exit instead of jumping somewhere.

use bytemuck::{Pod, Zeroable};

use crate::loom::atomic::{AtomicU64, Ordering};
use crate::region::header::Fnv;
use crate::sys::shm;

pub(crate) const TASK_MAGIC: u32 = u32::from_le_bytes(*b"TASK");
pub(crate) const RESULT_MAGIC: u32 = u32::from_le_bytes(*b"RSLT");

/// Status byte of a result that ran to completion.
pub(crate) const OK: u8 = 1;
/// Status byte of a result whose task panicked.
pub(crate) const PANICKED: u8 = 2;

/// Longest panic message kept per task (bytes).
pub(crate) const MAX_PANIC_MSG: usize = 512;
/// Room kept in every result message for panic records.
pub(crate) const PANIC_RESERVE: usize = 1024;
/// Most tasks in one chunk (bounds the per-chunk status bytes for zero-sized
/// arguments and results).
pub(crate) const MAX_CHUNK_ITEMS: usize = 1 << 16;

/// Runs tasks `from..to` of a chunk: for each, records `index + 1` in
/// `running`, reads the argument from `args`, calls the function at `func` and
/// writes the result into `out`. A panic leaves `running` naming the task that
/// panicked.
///
/// # Safety
///
/// `func` must be the address of a function of the exact type the trampoline
/// was instantiated for.
pub(crate) type Trampoline = unsafe fn(
    func: usize,
    args: &[u8],
    out: &mut [u8],
    from: usize,
    to: usize,
    running: &AtomicU64,
);

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct TaskHeader {
    pub(crate) magic: u32,
    pub(crate) count: u32,
    pub(crate) chunk: u64,
    pub(crate) arg_size: u32,
    pub(crate) res_size: u32,
    pub(crate) func: u64,
    pub(crate) tramp: u64,
    pub(crate) check: u64,
}

pub(crate) const TASK_HEADER: usize = size_of::<TaskHeader>();

impl TaskHeader {
    /// The keyed checksum over every other field.
    pub(crate) fn checksum(&self, key: u64) -> u64 {
        Fnv::new()
            .u64(key)
            .u64(u64::from(self.magic))
            .u64(u64::from(self.count))
            .u64(self.chunk)
            .u64(u64::from(self.arg_size))
            .u64(u64::from(self.res_size))
            .u64(self.func)
            .u64(self.tramp)
            .u64(key.rotate_left(17))
            .finish()
    }
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct ResultHeader {
    pub(crate) magic: u32,
    pub(crate) count: u32,
    pub(crate) chunk: u64,
    pub(crate) res_size: u32,
    pub(crate) worker: u32,
}

pub(crate) const RESULT_HEADER: usize = size_of::<ResultHeader>();

/// Reads a `T` from the front of `bytes`, if it is long enough.
pub(crate) fn read<T: Pod>(bytes: &[u8]) -> Option<T> {
    bytes
        .get(..size_of::<T>())
        .map(bytemuck::pod_read_unaligned)
}

/// Stores `r` as result `i` of `out` (nothing if out of range).
#[inline]
fn put<R: Pod>(out: &mut [u8], i: usize, r: &R) {
    let size = size_of::<R>();
    if let Some(dst) = out.get_mut(i * size..(i + 1) * size) {
        dst.copy_from_slice(bytemuck::bytes_of(r));
    }
}

/// The trampoline for `fn(A) -> R`.
///
/// # Safety
///
/// See [`Trampoline`].
pub(crate) unsafe fn call1<A: Pod, R: Pod>(
    func: usize,
    args: &[u8],
    out: &mut [u8],
    from: usize,
    to: usize,
    running: &AtomicU64,
) {
    // SAFETY: the caller passes the address of a `fn(A) -> R` (the pool put it
    // there, and the task's checksum matched).
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    let size = size_of::<A>();
    for i in from..to {
        // Relaxed: see `Running`.
        running.store(i as u64 + 1, Ordering::Relaxed);
        let a: A = args
            .get(i * size..)
            .and_then(read)
            .unwrap_or_else(A::zeroed);
        put(out, i, &f(a));
    }
}

/// The trampoline for `fn(A, B) -> R` (arguments stored `A` then `B`).
///
/// # Safety
///
/// See [`Trampoline`].
pub(crate) unsafe fn call2<A: Pod, B: Pod, R: Pod>(
    func: usize,
    args: &[u8],
    out: &mut [u8],
    from: usize,
    to: usize,
    running: &AtomicU64,
) {
    // SAFETY: as in `call1`, for a `fn(A, B) -> R`.
    let f = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(func) };
    let size = size_of::<A>() + size_of::<B>();
    for i in from..to {
        // Relaxed: see `Running`.
        running.store(i as u64 + 1, Ordering::Relaxed);
        let arg = args.get(i * size..).unwrap_or(&[]);
        let a: A = read(arg).unwrap_or_else(A::zeroed);
        let b: B = arg
            .get(size_of::<A>()..)
            .and_then(read)
            .unwrap_or_else(B::zeroed);
        put(out, i, &f(a, b));
    }
}

/// Which task each worker runs: two words per worker on its own cache line,
/// `[chunk id, index + 1 within the chunk (0: none)]`, in an anonymous shared
/// mapping the workers inherit.
///
/// Only worker `i` writes line `i`; the parent reads it only after reaping that
/// worker (`waitpid` returned), when the worker's stores are complete, so
/// `Relaxed` suffices on both sides.
#[derive(Debug)]
pub(crate) struct Running {
    map: shm::Mapping,
    workers: usize,
}

const LINE: usize = 128;

impl Running {
    pub(crate) fn new(workers: usize) -> std::io::Result<Running> {
        let len = workers.max(1) * LINE;
        let file = shm::memfd(len)?;
        let map = shm::Mapping::new(&file, len)?;
        Ok(Running { map, workers })
    }

    fn word(&self, worker: usize, j: usize) -> Option<&AtomicU64> {
        if worker >= self.workers || j >= 2 {
            return None;
        }
        // SAFETY: the mapping is `workers * LINE` bytes, page aligned and
        // zero-filled (a valid AtomicU64), and `worker * LINE + j * 8 + 8` is
        // within it; the mapping lives as long as `self`.
        Some(unsafe {
            &*self
                .map
                .as_ptr()
                .add(worker * LINE + j * 8)
                .cast::<AtomicU64>()
        })
    }

    /// Worker side: starting `chunk`; returns the word that names the task
    /// running (`index + 1`, 0: none), which the trampoline updates.
    pub(crate) fn begin(&self, worker: usize, chunk: u64) -> Option<&AtomicU64> {
        let c = self.word(worker, 0)?;
        let i = self.word(worker, 1)?;
        // Relaxed: read only after this process was reaped (see the type docs).
        // The index is 0 here (cleared after the previous chunk), so a death
        // between the two stores names no task.
        c.store(chunk, Ordering::Relaxed);
        Some(i)
    }

    /// Worker side: between tasks.
    #[inline]
    pub(crate) fn clear(&self, worker: usize) {
        if let Some(i) = self.word(worker, 1) {
            // Relaxed: as in `set`.
            i.store(0, Ordering::Relaxed);
        }
    }

    /// Parent side, after reaping `worker`: `(chunk, index)` of the task it was
    /// running, if any. Also clears the line for the replacement.
    pub(crate) fn take(&self, worker: usize) -> Option<(u64, usize)> {
        let c = self.word(worker, 0)?;
        let i = self.word(worker, 1)?;
        // Relaxed: the worker is reaped; its stores are visible.
        let idx = i.swap(0, Ordering::Relaxed);
        let chunk = c.load(Ordering::Relaxed);
        let idx = usize::try_from(idx.checked_sub(1)?).ok()?;
        Some((chunk, idx))
    }
}
