//! What a pool's processes share: the chunk arena, the small descriptors its
//! queues carry, and the per-worker "running" table.
//!
//! Arguments and results never travel through a queue. They live in the
//! [`Arena`], an anonymous shared mapping of fixed-size *slots* that every worker
//! inherits: the parent writes a chunk's arguments straight into a free slot,
//! sends the worker a [`TaskMsg`] (a few dozen bytes naming the slot, the task
//! range and the function), the worker reads the arguments in place and writes
//! results, status bytes and panic records into the same slot, then sends a
//! [`ResultMsg`] back; the parent copies the results into the caller's vector
//! and frees the slot. Per task that is one write of the argument, one read of
//! it, one write and one read of the result: no copy through queue slots.
//!
//! A slot's [`Layout`] for a chunk of `count` tasks: `count` arguments of
//! `arg_size` bytes; the `count` results of `res_size` bytes overwrite them in
//! place when a result is no larger than an argument (result `i` covers bytes
//! of arguments `0..=i` only, which have been read by then), and otherwise
//! follow them, 64-byte aligned; then `count` status bytes ([`PANICKED`] marks
//! a task that panicked; anything else, once the task ran, is success), then
//! the panic records (`index + 1: u32`, `len: u32`, `len` bytes of UTF-8; a
//! record with index 0 ends the list). Both sides compute the layout from the
//! slot size they hold in process memory and the checked descriptor.
//!
//! In place, a chunk's bytes cross between the cores once each way (the parent
//! writes an argument, the worker reads it and writes the result over it, the
//! parent reads that), half the cache lines of separate sections. The status
//! bytes are only written when a task of the run panics: a worker starts a run
//! by ending the panic record list at its first record, and clears the run's
//! status bytes before it writes its first record, so an empty list tells the
//! parent that every task it delivers succeeded without reading them.
//!
//! Ownership of a slot passes with the messages: the parent owns a free slot
//! and one whose chunk is waiting to be sent; the worker owns it from taking
//! the [`TaskMsg`] until it sends the [`ResultMsg`] (the queues' Release/Acquire
//! hand-offs order the bytes); after a worker dies and is reaped, the parent
//! owns the slots it held again, with every byte the worker wrote visible. The
//! parent reads results with bounds it computed itself, so a worker that
//! scribbles can make results wrong, never make the parent read out of bounds.
//! The function addresses in a task are checked against a keyed checksum (a key
//! drawn in the parent before the workers start, never stored in shared
//! memory), so a stray write into an inbox makes the worker exit instead of
//! jumping somewhere.

use bytemuck::{Pod, Zeroable};

use crate::loom::atomic::{AtomicU64, Ordering};
use crate::region::header::Fnv;
use crate::sys::shm;

pub(crate) const TASK_MAGIC: u32 = u32::from_le_bytes(*b"TASK");
pub(crate) const RESULT_MAGIC: u32 = u32::from_le_bytes(*b"RSLT");

/// Status byte of a result whose task panicked (the worker clears a run's
/// status bytes to 0 before it starts).
pub(crate) const PANICKED: u8 = 2;

/// Longest panic message kept per task (bytes).
pub(crate) const MAX_PANIC_MSG: usize = 512;
/// Room kept in every slot for panic records.
pub(crate) const PANIC_RESERVE: usize = 1024;
/// Most tasks in one chunk (bounds the per-chunk status bytes for zero-sized
/// arguments and results).
pub(crate) const MAX_CHUNK_ITEMS: usize = 1 << 16;
/// Alignment of the sections of a slot.
const ALIGN: usize = 64;
/// Bytes of a descriptor message (both kinds fit).
pub(crate) const MSG_SIZE: usize = 128;

/// Runs tasks `from..to` of a chunk: for each, records `index + 1` in
/// `running`, reads argument `i` from `data` (cells of `cells.0` bytes from
/// offset 0), calls the function at `func` and writes the result into `data`
/// at `results + i * cells.1` (the result may overwrite the argument it was
/// computed from: see the module docs). A panic leaves `running` naming the
/// task that panicked. Nothing runs if a cell of `from..to` is out of bounds.
///
/// # Safety
///
/// `func` must be the address of a function of the exact type the trampoline
/// was instantiated for.
pub(crate) type Trampoline = unsafe fn(
    func: usize,
    data: &mut [u8],
    results: usize,
    from: usize,
    to: usize,
    cells: (usize, usize),
    running: &AtomicU64,
);

/// Whether cells `from..to` of `asz`-byte arguments (from offset 0) and of
/// `rsz`-byte results (from `results`) all lie within `len` bytes.
#[inline]
fn cells_fit(len: usize, results: usize, from: usize, to: usize, asz: usize, rsz: usize) -> bool {
    from <= to
        && to.checked_mul(asz).is_some_and(|e| e <= len)
        && to
            .checked_mul(rsz)
            .and_then(|e| e.checked_add(results))
            .is_some_and(|e| e <= len)
}

/// Parent -> worker: run tasks `from..to` of the chunk in `slot`.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct TaskMsg {
    pub(crate) magic: u32,
    pub(crate) slot: u32,
    pub(crate) chunk: u64,
    /// Tasks in the slot (fixes its layout).
    pub(crate) count: u32,
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) arg_size: u32,
    pub(crate) res_size: u32,
    pub(crate) _pad: u32,
    pub(crate) func: u64,
    pub(crate) tramp: u64,
    pub(crate) check: u64,
}

impl TaskMsg {
    /// The keyed checksum over every other field.
    pub(crate) fn checksum(&self, key: u64) -> u64 {
        Fnv::new()
            .u64(key)
            .u64(u64::from(self.magic))
            .u64(u64::from(self.slot))
            .u64(self.chunk)
            .u64(u64::from(self.count))
            .u64(u64::from(self.from))
            .u64(u64::from(self.to))
            .u64(u64::from(self.arg_size))
            .u64(u64::from(self.res_size))
            .u64(self.func)
            .u64(self.tramp)
            .u64(key.rotate_left(17))
            .finish()
    }
}

/// Worker -> parent: tasks `from..to` of `chunk` ran; results are in its slot.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct ResultMsg {
    pub(crate) magic: u32,
    pub(crate) worker: u32,
    pub(crate) chunk: u64,
    pub(crate) from: u32,
    pub(crate) to: u32,
}

/// Where the sections of a chunk of `count` tasks lie in a slot (byte offsets
/// from the slot's start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) arg_size: usize,
    pub(crate) res_size: usize,
    /// Offset of the results: 0 when they overwrite the arguments.
    pub(crate) results: usize,
    /// Bytes of the arguments and results together (from offset 0).
    pub(crate) data_len: usize,
    pub(crate) status: usize,
    pub(crate) panics: usize,
    /// Bytes of the panic record area (to the end of the slot).
    pub(crate) panics_len: usize,
}

fn align_up(x: usize) -> Option<usize> {
    x.checked_add(ALIGN - 1).map(|v| v & !(ALIGN - 1))
}

impl Layout {
    /// The layout of `count` tasks in a slot of `slot_size` bytes, `None` if
    /// they do not fit (with at least [`PANIC_RESERVE`] bytes of panic records).
    pub(crate) fn new(
        count: usize,
        arg_size: usize,
        res_size: usize,
        slot_size: usize,
    ) -> Option<Layout> {
        if count > MAX_CHUNK_ITEMS {
            return None;
        }
        let args_len = count.checked_mul(arg_size)?;
        let res_len = count.checked_mul(res_size)?;
        let (results, data_len) = if res_size <= arg_size {
            (0, args_len)
        } else {
            let r = align_up(args_len)?;
            (r, r.checked_add(res_len)?)
        };
        let status = align_up(data_len)?;
        let panics = align_up(status.checked_add(count)?)?;
        let panics_len = slot_size.checked_sub(panics)?;
        (panics_len >= PANIC_RESERVE).then_some(Layout {
            arg_size,
            res_size,
            results,
            data_len,
            status,
            panics,
            panics_len,
        })
    }

    /// Most tasks of these sizes one slot holds (0: not even one).
    pub(crate) fn max_items(arg_size: usize, res_size: usize, slot_size: usize) -> usize {
        let data = if res_size <= arg_size {
            arg_size
        } else {
            arg_size + res_size
        };
        let per = data + 1;
        let room = slot_size.saturating_sub(PANIC_RESERVE + 3 * ALIGN);
        let mut n = (room / per).min(MAX_CHUNK_ITEMS);
        while n > 0 && Layout::new(n, arg_size, res_size, slot_size).is_none() {
            n -= 1;
        }
        n
    }
}

/// The chunk slots: `slots` slots of `slot_size` bytes in one anonymous shared
/// mapping, inherited by every worker. Pages are touched only as far as chunks
/// fill them.
#[derive(Debug)]
pub(crate) struct Arena {
    map: shm::Mapping,
    slots: usize,
    slot_size: usize,
    /// The memfd, kept for spawned workers.
    file: std::fs::File,
}

fn invalid(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned())
}

impl Arena {
    pub(crate) fn new(slots: usize, slot_size: usize) -> std::io::Result<Arena> {
        let slot_size =
            align_up(slot_size.max(ALIGN)).ok_or_else(|| invalid("message size too large"))?;
        let len = slots
            .max(1)
            .checked_mul(slot_size)
            .ok_or_else(|| invalid("arena too large"))?;
        let file = shm::memfd(len)?;
        Arena::from_file(file, slots.max(1), slot_size)
    }

    /// Maps an arena's memfd (a spawned worker's inherited one), checking that
    /// its length is exactly `slots * slot_size`.
    pub(crate) fn from_file(
        file: std::fs::File,
        slots: usize,
        slot_size: usize,
    ) -> std::io::Result<Arena> {
        let len = slots
            .checked_mul(slot_size)
            .filter(|&l| l > 0 && slot_size % ALIGN == 0)
            .ok_or_else(|| invalid("bad arena geometry"))?;
        if shm::file_len(&file)? != len as u64 {
            return Err(invalid("arena size does not match"));
        }
        let map = shm::Mapping::new(&file, len)?;
        Ok(Arena {
            map,
            slots,
            slot_size,
            file,
        })
    }

    pub(crate) fn file(&self) -> &std::fs::File {
        &self.file
    }

    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    pub(crate) fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Bytes `off..off + len` of slot `slot`, if in bounds.
    ///
    /// # Safety
    ///
    /// The caller owns the slot (see the module docs): no other process writes
    /// these bytes while the slice lives, and this process holds no other
    /// reference to them.
    #[allow(clippy::mut_from_ref, reason = "exclusive by the slot protocol")]
    pub(crate) unsafe fn bytes_mut(
        &self,
        slot: usize,
        off: usize,
        len: usize,
    ) -> Option<&mut [u8]> {
        if slot >= self.slots || off.checked_add(len)? > self.slot_size {
            return None;
        }
        // SAFETY: `slot * slot_size + off + len` is within the mapping (checked
        // above), which lives as long as `self`; exclusivity is the caller's
        // contract.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.map.as_ptr().add(slot * self.slot_size + off), len)
        })
    }

    /// Copies bytes `off..off + len` of slot `slot` to `dst`; if they are out
    /// of bounds, writes `len` zero bytes there instead and returns false.
    ///
    /// # Safety
    ///
    /// `dst` is valid for writes of `len` bytes and does not overlap the arena.
    pub(crate) unsafe fn copy_out(
        &self,
        slot: usize,
        off: usize,
        dst: *mut u8,
        len: usize,
    ) -> bool {
        let inside = slot < self.slots && off.checked_add(len).is_some_and(|e| e <= self.slot_size);
        if !inside {
            // SAFETY: `dst` is valid for `len` bytes (the caller's contract).
            unsafe { std::ptr::write_bytes(dst, 0, len) };
            return false;
        }
        // SAFETY: the source is in bounds of the live mapping (checked above),
        // `dst` valid for `len` bytes and disjoint (the caller's contract); a
        // raw copy makes no reference to shared bytes, so a worker writing them
        // at the same time (a protocol breach) can only make the values wrong.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(slot * self.slot_size + off),
                dst,
                len,
            );
        }
        true
    }

    /// Copies bytes `off..off + dst.len()` of slot `slot` into `dst`; false if
    /// out of bounds.
    pub(crate) fn read_into(&self, slot: usize, off: usize, dst: &mut [u8]) -> bool {
        let Some(end) = off.checked_add(dst.len()) else {
            return false;
        };
        if slot >= self.slots || end > self.slot_size {
            return false;
        }
        // SAFETY: in bounds of the live mapping (checked above); a raw copy
        // makes no reference to shared bytes, so a worker writing them at the
        // same time (a protocol breach) can only make the copied values wrong.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(slot * self.slot_size + off),
                dst.as_mut_ptr(),
                dst.len(),
            );
        }
        true
    }
}

/// Reads the panic records of a run (written by [`write_panic`]): the message
/// of each task index found.
pub(crate) fn panic_records(area: &[u8], mut f: impl FnMut(usize, String)) {
    let mut p = area;
    while p.len() >= 8 {
        let idx = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as usize;
        let len = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as usize;
        let Some(text) = p.get(8..8 + len.min(MAX_PANIC_MSG)) else {
            break;
        };
        let Some(idx) = idx.checked_sub(1) else {
            break;
        };
        f(idx, String::from_utf8_lossy(text).into_owned());
        p = &p[8 + text.len()..];
    }
}

/// Appends a panic record for task `idx` at `*at` in `area` (and the end
/// marker after it, if room remains); nothing if there is no room.
pub(crate) fn write_panic(area: &mut [u8], at: &mut usize, idx: usize, msg: &[u8]) {
    let msg = &msg[..msg.len().min(MAX_PANIC_MSG)];
    let Some(rec) = area.get_mut(*at..*at + 8 + msg.len()) else {
        return;
    };
    rec[..4].copy_from_slice(&(idx as u32 + 1).to_ne_bytes());
    rec[4..8].copy_from_slice(&(msg.len() as u32).to_ne_bytes());
    rec[8..].copy_from_slice(msg);
    *at += 8 + msg.len();
    if let Some(end) = area.get_mut(*at..*at + 8) {
        end.fill(0);
    }
}

/// Reads a `T` from the front of `bytes`, if it is long enough.
pub(crate) fn read<T: Pod>(bytes: &[u8]) -> Option<T> {
    bytes
        .get(..size_of::<T>())
        .map(bytemuck::pod_read_unaligned)
}

/// Runs cells `from..to` of `data` through `f` (see [`Trampoline`]).
#[inline(always)]
fn run_cells<A: Pod, R: Pod>(
    f: impl Fn(A) -> R,
    data: &mut [u8],
    results: usize,
    from: usize,
    to: usize,
    running: &AtomicU64,
) {
    let (asz, rsz) = (size_of::<A>(), size_of::<R>());
    if !cells_fit(data.len(), results, from, to, asz, rsz) {
        return;
    }
    let base = data.as_mut_ptr();
    for i in from..to {
        // Release (SYNC(running)): the previous task's result is written
        // before this names the next one, so after a death the parent finds
        // every task before the named one complete (see `Running`).
        running.store(i as u64 + 1, Ordering::Release);
        // SAFETY: argument cell `i` and result cell `i` lie in `data` (checked
        // above: `i < to`); `A` and `R` are `Pod`, read and written unaligned.
        // The argument is read before the result is written over it.
        let a = unsafe { base.add(i * asz).cast::<A>().read_unaligned() };
        let r = f(a);
        // SAFETY: as above.
        unsafe { base.add(results + i * rsz).cast::<R>().write_unaligned(r) };
    }
}

/// The trampoline for a `fn(A) -> R` pointer.
///
/// # Safety
///
/// See [`Trampoline`].
pub(crate) unsafe fn call1<A: Pod, R: Pod>(
    func: usize,
    data: &mut [u8],
    results: usize,
    from: usize,
    to: usize,
    _cells: (usize, usize),
    running: &AtomicU64,
) {
    // SAFETY: the caller passes the address of a `fn(A) -> R` (the pool put it
    // there, and the task's checksum matched).
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    run_cells(f, data, results, from, to, running);
}

/// The trampoline for a zero-sized function type `F` (a `fn` item or a
/// closure that captures nothing): `func` is unused, and the call is inlined
/// into the loop.
///
/// # Safety
///
/// `F` is zero-sized, and the pool held a value of it when it sent this
/// trampoline (see [`Trampoline`]).
pub(crate) unsafe fn call_item<A: Pod, R: Pod, F: Fn(A) -> R + Copy>(
    _func: usize,
    data: &mut [u8],
    results: usize,
    from: usize,
    to: usize,
    _cells: (usize, usize),
    running: &AtomicU64,
) {
    if size_of::<F>() != 0 {
        // Not reached: the pool sends this trampoline for zero-sized `F` only.
        return;
    }
    // SAFETY: `F` has no bytes, so every value of it is this one; it is `Copy`
    // and the pool held one (the caller's contract), so this is a copy of that
    // value, carried in zero bytes.
    let f: F = unsafe { std::mem::zeroed() };
    run_cells(f, data, results, from, to, running);
}

/// The trampoline for `fn(A, B) -> R` (arguments stored `A` then `B`).
///
/// # Safety
///
/// See [`Trampoline`].
pub(crate) unsafe fn call2<A: Pod, B: Pod, R: Pod>(
    func: usize,
    data: &mut [u8],
    results: usize,
    from: usize,
    to: usize,
    _cells: (usize, usize),
    running: &AtomicU64,
) {
    // SAFETY: as in `call1`, for a `fn(A, B) -> R`.
    let f = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(func) };
    let (asz, rsz) = (size_of::<A>() + size_of::<B>(), size_of::<R>());
    if !cells_fit(data.len(), results, from, to, asz, rsz) {
        return;
    }
    let base = data.as_mut_ptr();
    for i in from..to {
        // Release (SYNC(running)): as in `call1`.
        running.store(i as u64 + 1, Ordering::Release);
        // SAFETY: as in `call1`; `B` follows `A` within argument cell `i`.
        let (a, b) = unsafe {
            let p = base.add(i * asz);
            (
                p.cast::<A>().read_unaligned(),
                p.add(size_of::<A>()).cast::<B>().read_unaligned(),
            )
        };
        let r = f(a, b);
        // SAFETY: as in `call1`.
        unsafe { base.add(results + i * rsz).cast::<R>().write_unaligned(r) };
    }
}

/// Which task each worker runs: two words per worker on its own cache line,
/// `[chunk id, index + 1 within the chunk (0: none)]`, in an anonymous shared
/// mapping the workers inherit.
///
/// Only worker `i` writes line `i`; the parent reads it only after reaping that
/// worker (`waitpid` returned), when the worker's stores are complete. The
/// index is stored with Release so that the compiler keeps each task's result
/// (and status) writes before the store naming the next task: what the parent
/// finds after a death is every task before the named one finished.
#[derive(Debug)]
pub(crate) struct Running {
    map: shm::Mapping,
    workers: usize,
    /// The memfd, kept for spawned workers.
    file: std::fs::File,
}

const LINE: usize = 128;

impl Running {
    pub(crate) fn new(workers: usize) -> std::io::Result<Running> {
        let len = workers
            .max(1)
            .checked_mul(LINE)
            .ok_or_else(|| invalid("running table too large"))?;
        let file = shm::memfd(len)?;
        Running::from_file(file, workers.max(1))
    }

    /// Maps a running table's memfd, checking its length.
    pub(crate) fn from_file(file: std::fs::File, workers: usize) -> std::io::Result<Running> {
        let len = workers
            .checked_mul(LINE)
            .filter(|&l| l > 0)
            .ok_or_else(|| invalid("bad running table geometry"))?;
        if shm::file_len(&file)? != len as u64 {
            return Err(invalid("running table size does not match"));
        }
        let map = shm::Mapping::new(&file, len)?;
        Ok(Running { map, workers, file })
    }

    pub(crate) fn file(&self) -> &std::fs::File {
        &self.file
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

    /// Worker side: every task of the chunk up to `to` has finished and its
    /// result is in the slot, but the result message is not yet published.
    /// Reads as task `to` running (one past the last), which the parent,
    /// after a death here, takes for "all finished": it delivers the slot's
    /// results rather than run the chunk again, whose arguments the results
    /// may have overwritten.
    #[inline]
    pub(crate) fn finish(&self, worker: usize, to: usize) {
        if let Some(i) = self.word(worker, 1) {
            // Relaxed: as in `clear`.
            i.store(to as u64 + 1, Ordering::Relaxed);
        }
    }

    /// Worker side: between chunks, after the result message is published.
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

/// Bytes of the length prefix of a serde cell.
#[cfg(feature = "serde")]
pub(crate) const CELL_LEN: usize = 4;

/// The value in a serde cell (`len: u32 LE`, then `len` bytes of postcard),
/// `None` if the length does not fit the cell.
#[cfg(feature = "serde")]
pub(crate) fn cell_value(cell: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(cell.get(..CELL_LEN)?.try_into().ok()?) as usize;
    cell.get(CELL_LEN..CELL_LEN.checked_add(len)?)
}

/// Writes `value` into `cell` as a serde cell; false if it does not fit.
#[cfg(feature = "serde")]
pub(crate) fn write_cell(cell: &mut [u8], value: &[u8]) -> bool {
    let Some(end) = CELL_LEN.checked_add(value.len()) else {
        return false;
    };
    let (Some(dst), Ok(len)) = (cell.get_mut(..end), u32::try_from(value.len())) else {
        return false;
    };
    dst[..CELL_LEN].copy_from_slice(&len.to_le_bytes());
    dst[CELL_LEN..].copy_from_slice(value);
    true
}

/// The trampoline for `fn(A) -> R` over serde values: each argument cell is
/// decoded with postcard, the result encoded into its result cell. A value
/// that does not decode, or a result too large for its cell, panics (the task
/// gets [`PoolError::Panicked`](super::PoolError::Panicked) with the reason).
///
/// # Safety
///
/// See [`Trampoline`].
#[cfg(feature = "serde")]
pub(crate) unsafe fn call_serde<A: serde::de::DeserializeOwned, R: serde::Serialize>(
    func: usize,
    data: &mut [u8],
    results: usize,
    from: usize,
    to: usize,
    (asz, rsz): (usize, usize),
    running: &AtomicU64,
) {
    // SAFETY: as in `call1`.
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    if !cells_fit(data.len(), results, from, to, asz, rsz) {
        return;
    }
    for i in from..to {
        // Release (SYNC(running)): as in `call1`.
        running.store(i as u64 + 1, Ordering::Release);
        let cell = data
            .get(i * asz..(i + 1) * asz)
            .and_then(cell_value)
            .unwrap_or(&[]);
        // Decoded into an owned value before the result cell (which may
        // overlap this argument's) is written.
        let a: A = match postcard::from_bytes(cell) {
            Ok(a) => a,
            Err(e) => panic!("cannot decode the argument: {e}"),
        };
        let r = f(a);
        let Some(dst) = data.get_mut(results + i * rsz..results + (i + 1) * rsz) else {
            return;
        };
        let room = rsz.saturating_sub(CELL_LEN);
        match postcard::to_slice(&r, &mut dst[CELL_LEN.min(rsz)..]) {
            Ok(b) => {
                let len = b.len() as u32;
                if let Some(l) = dst.get_mut(..CELL_LEN) {
                    l.copy_from_slice(&len.to_le_bytes());
                }
            }
            Err(postcard::Error::SerializeBufferFull) => panic!(
                "the result does not fit its {room}-byte cell (PoolBuilder::serde_result_size)"
            ),
            Err(e) => panic!("cannot encode the result: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_overwrite_arguments_only_when_no_larger() {
        let slot = 1 << 20;
        for (asz, rsz) in [(8, 8), (8, 4), (16, 1), (0, 0), (8, 0)] {
            let l = Layout::new(1000, asz, rsz, slot).unwrap();
            assert_eq!(l.results, 0, "{asz}/{rsz}");
            assert_eq!(l.data_len, 1000 * asz);
        }
        for (asz, rsz) in [(4, 8), (0, 8), (1, 1024)] {
            let l = Layout::new(1000, asz, rsz, slot).unwrap();
            assert!(
                l.results >= 1000 * asz && l.results % ALIGN == 0,
                "{asz}/{rsz}"
            );
            assert_eq!(l.data_len, l.results + 1000 * rsz);
        }
    }

    #[test]
    fn sections_are_disjoint_and_fit_the_slot() {
        for slot in [4096, 16384, 1 << 20] {
            for (asz, rsz) in [(8, 8), (4, 8), (8, 4), (1, 1), (0, 8), (8, 0), (100, 3)] {
                let max = Layout::max_items(asz, rsz, slot);
                assert!(max > 0, "{slot} {asz}/{rsz}");
                for count in [1, max / 2 + 1, max] {
                    let l = Layout::new(count, asz, rsz, slot).unwrap();
                    assert!(l.data_len <= l.status && l.status + count <= l.panics);
                    assert!(l.panics + l.panics_len == slot && l.panics_len >= PANIC_RESERVE);
                    // Result `i` never reaches argument `i + 1`.
                    if l.results == 0 {
                        assert!(rsz <= asz || asz == 0);
                    }
                }
            }
        }
    }

    #[test]
    fn cells_fit_checks_both_ranges() {
        assert!(cells_fit(64, 0, 0, 8, 8, 8));
        assert!(!cells_fit(64, 0, 0, 9, 8, 8));
        assert!(cells_fit(128, 64, 0, 8, 8, 8));
        assert!(!cells_fit(128, 72, 0, 8, 8, 8));
        assert!(!cells_fit(128, 0, 5, 4, 8, 8));
        assert!(!cells_fit(usize::MAX, 0, 0, usize::MAX, 2, 2));
    }
}
