//! The worker loop: take a chunk from the inbox, run each task (recording which
//! one runs in the shared [`Running`] table first), send the results.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::wire::{
    MAX_CHUNK_ITEMS, MAX_PANIC_MSG, OK, PANICKED, RESULT_HEADER, RESULT_MAGIC, ResultHeader,
    Running, TASK_HEADER, TASK_MAGIC, TaskHeader, Trampoline, read,
};
use crate::loom::atomic::Ordering;
use crate::{BytesQueue, GetError};

/// Exit code of a worker whose initializer panicked.
pub(crate) const EXIT_INIT_PANICKED: i32 = 102;
/// Exit code of a worker that received a malformed task.
pub(crate) const EXIT_BAD_TASK: i32 = 103;

/// What a worker needs; everything is inherited through `fork`.
pub(crate) struct WorkerArgs<'a> {
    pub(crate) index: usize,
    pub(crate) inbox: &'a BytesQueue,
    pub(crate) results: &'a BytesQueue,
    pub(crate) running: &'a Running,
    pub(crate) key: u64,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) initializer: Option<fn()>,
    /// Added to every function address received (0 in forked workers).
    pub(crate) relocate: isize,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

/// Runs the worker until its inbox is closed; returns the exit code.
pub(crate) fn run(a: &WorkerArgs<'_>) -> i32 {
    if let Some(init) = a.initializer {
        if catch_unwind(init).is_err() {
            return EXIT_INIT_PANICKED;
        }
    }
    let mut task = vec![0u8; a.inbox.slot_size()];
    let mut out = vec![0u8; a.results.slot_size()];
    let mut done: u64 = 0;
    loop {
        if a.max_tasks.is_some_and(|m| done >= m) {
            return 0;
        }
        let len = match a.inbox.get_into(&mut task) {
            Ok(n) => n,
            Err(GetError::Closed) => return 0,
            Err(_) => return EXIT_BAD_TASK,
        };
        let Some(msg) = task.get(..len) else {
            return EXIT_BAD_TASK;
        };
        match run_chunk(a, msg, &mut out) {
            Some(n) => {
                let Some(reply) = out.get(..n) else {
                    return EXIT_BAD_TASK;
                };
                if a.results.put(reply).is_err() {
                    // The pool closed the result queue: it is going away.
                    return 0;
                }
            }
            None => return EXIT_BAD_TASK,
        }
        done += 1;
    }
}

/// Runs every task of one chunk; returns the length of the reply written into
/// `out`, `None` if the message is malformed.
fn run_chunk(a: &WorkerArgs<'_>, msg: &[u8], out: &mut [u8]) -> Option<usize> {
    let h: TaskHeader = read(msg)?;
    if h.magic != TASK_MAGIC || h.checksum(a.key) != h.check {
        return None;
    }
    let count = h.count as usize;
    let arg_size = h.arg_size as usize;
    let res_size = h.res_size as usize;
    if count > MAX_CHUNK_ITEMS
        || TASK_HEADER.checked_add(count.checked_mul(arg_size)?)? != msg.len()
    {
        return None;
    }
    let results_end = RESULT_HEADER.checked_add(count.checked_mul(res_size)?)?;
    let status_end = results_end.checked_add(count)?;
    if status_end > out.len() {
        return None;
    }
    let func = (h.func as usize).wrapping_add_signed(a.relocate);
    let tramp_addr = (h.tramp as usize).wrapping_add_signed(a.relocate);
    // SAFETY: the address was written by the pool from a `Trampoline` and the
    // keyed checksum over it matched, so it is that function's address in this
    // image (relocated for a spawned worker).
    let tramp = unsafe { std::mem::transmute::<usize, Trampoline>(tramp_addr) };
    let args = msg.get(TASK_HEADER..)?;
    let (head, body) = out.split_at_mut(results_end);
    let (status, panics) = body.split_at_mut(count);
    let results = head.get_mut(RESULT_HEADER..)?;
    let running = a.running.begin(a.index, h.chunk)?;
    let mut panic_len = 0usize;
    let mut from = 0;
    // One `catch_unwind` per chunk; after a panic, go on after the task that
    // panicked (the trampoline left its index in `running`).
    while from < count {
        // SAFETY: `func`/`tramp` are a matching pair (checked above); `args`
        // holds `count` arguments and `results` `count` results of the sizes
        // the trampoline was instantiated for, as the checksummed header says.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe {
            tramp(func, args, results, from, count, running)
        }));
        let Err(p) = r else {
            status.get_mut(from..)?.fill(OK);
            break;
        };
        // Relaxed: written by this thread.
        let k = (running.load(Ordering::Relaxed) as usize)
            .checked_sub(1)
            .filter(|k| (from..count).contains(k))?;
        status.get_mut(from..k)?.fill(OK);
        status[k] = PANICKED;
        if let Some(res) = results.get_mut(k * res_size..(k + 1) * res_size) {
            res.fill(0);
        }
        let m = panic_message(&*p).as_bytes();
        let m = &m[..m.len().min(MAX_PANIC_MSG)];
        if let Some(rec) = panics.get_mut(panic_len..panic_len + 8 + m.len()) {
            rec[..4].copy_from_slice(&(k as u32).to_ne_bytes());
            rec[4..8].copy_from_slice(&(m.len() as u32).to_ne_bytes());
            rec[8..].copy_from_slice(m);
            panic_len += 8 + m.len();
        }
        from = k + 1;
    }
    a.running.clear(a.index);
    let rh = ResultHeader {
        magic: RESULT_MAGIC,
        count: h.count,
        chunk: h.chunk,
        res_size: h.res_size,
        worker: a.index as u32,
    };
    out.get_mut(..RESULT_HEADER)?
        .copy_from_slice(bytemuck::bytes_of(&rh));
    Some(status_end + panic_len)
}
