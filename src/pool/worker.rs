//! The worker loop: take a task descriptor from the inbox, run each task of its
//! range in place in the arena slot (recording which one runs in the shared
//! [`Running`] table first), send the result descriptor.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::wire::{
    Arena, Layout, MSG_SIZE, PANICKED, RESULT_MAGIC, ResultMsg, Running, TASK_MAGIC, TaskMsg,
    Trampoline, read, write_panic,
};
use crate::loom::atomic::Ordering;
use crate::{BytesQueue, GetError};

/// Exit code of a spawned worker that could not set itself up.
pub(crate) const EXIT_SPAWN_SETUP: i32 = 104;
const SETUP_MAGIC: u64 = u64::from_le_bytes(*b"POOLSPWN");

/// What a spawned worker is told (its [`Spawn`](crate::process::Spawn)
/// argument); the queues, the arena and the running table follow as shared
/// descriptors 0 (inbox), 1 (results), 2 (arena), 3 (running).
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub(crate) struct SpawnSetup {
    pub(crate) magic: u64,
    pub(crate) index: u64,
    pub(crate) workers: u64,
    pub(crate) key: u64,
    /// 0: unlimited.
    pub(crate) max_tasks: u64,
    /// The initializer's address in the parent, 0: none.
    pub(crate) initializer: u64,
    /// [`anchor`]'s address in the parent: the difference to this process's
    /// relocates every function address.
    pub(crate) anchor: u64,
    pub(crate) slots: u64,
    pub(crate) slot_size: u64,
}

/// A function of this crate whose address relocates a spawned worker's.
pub(crate) fn anchor() -> usize {
    anchor as fn() -> usize as usize
}

/// The entry point of a spawned worker (see [`SpawnSetup`]).
pub(crate) fn spawn_entry(arg: &[u8]) -> i32 {
    spawn_setup(arg).unwrap_or(EXIT_SPAWN_SETUP)
}

fn spawn_setup(arg: &[u8]) -> Option<i32> {
    let s: SpawnSetup = read(arg)?;
    if s.magic != SETUP_MAGIC || arg.len() != size_of::<SpawnSetup>() {
        return None;
    }
    let inbox = BytesQueue::inherit(0).ok()?;
    let results = BytesQueue::inherit(1).ok()?;
    let arena = crate::process::take_inherited(2)?;
    let running = crate::process::take_inherited(3)?;
    let (slots, slot_size, workers) = (
        usize::try_from(s.slots).ok()?,
        usize::try_from(s.slot_size).ok()?,
        usize::try_from(s.workers).ok()?,
    );
    let arena = Arena::from_file(std::fs::File::from(arena), slots, slot_size).ok()?;
    let running = Running::from_file(std::fs::File::from(running), workers).ok()?;
    let relocate = (anchor() as isize).wrapping_sub(s.anchor as isize);
    let initializer = (s.initializer != 0).then(|| {
        let addr = (s.initializer as usize).wrapping_add_signed(relocate);
        // SAFETY: the parent put the address of a `fn()` of its executable
        // there (checked with `object_base`); this process runs the same
        // executable, so the relocated address is that function here.
        unsafe { std::mem::transmute::<usize, fn()>(addr) }
    });
    let index = usize::try_from(s.index).ok().filter(|&i| i < workers)?;
    Some(run(&WorkerArgs {
        index,
        inbox: &inbox,
        results: &results,
        running: &running,
        arena: &arena,
        key: s.key,
        max_tasks: (s.max_tasks > 0).then_some(s.max_tasks),
        initializer,
        relocate,
    }))
}

/// A setup for worker `index` of a pool (the parent side).
pub(crate) fn setup(
    index: usize,
    workers: usize,
    key: u64,
    max_tasks: Option<u64>,
    initializer: Option<fn()>,
    arena: &Arena,
) -> SpawnSetup {
    SpawnSetup {
        magic: SETUP_MAGIC,
        index: index as u64,
        workers: workers as u64,
        key,
        max_tasks: max_tasks.unwrap_or(0),
        initializer: initializer.map_or(0, |f| f as usize as u64),
        anchor: anchor() as u64,
        slots: arena.slots() as u64,
        slot_size: arena.slot_size() as u64,
    }
}

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
    pub(crate) arena: &'a Arena,
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
    let mut task = vec![0u8; a.inbox.slot_size().max(MSG_SIZE)];
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
        let Some(reply) = task.get(..len).and_then(|msg| run_chunk(a, msg)) else {
            return EXIT_BAD_TASK;
        };
        if a.results.put(bytemuck::bytes_of(&reply)).is_err() {
            // The pool closed the result queue: it is going away.
            return 0;
        }
        a.running.clear(a.index);
        done += 1;
    }
}

/// Runs tasks `from..to` of one chunk in its slot; the reply to send, `None`
/// if the descriptor is malformed.
fn run_chunk(a: &WorkerArgs<'_>, msg: &[u8]) -> Option<ResultMsg> {
    let h: TaskMsg = read(msg)?;
    if msg.len() != size_of::<TaskMsg>() || h.magic != TASK_MAGIC || h.checksum(a.key) != h.check {
        return None;
    }
    let (count, from, to) = (h.count as usize, h.from as usize, h.to as usize);
    let (arg_size, res_size) = (h.arg_size as usize, h.res_size as usize);
    let slot = h.slot as usize;
    let lay = Layout::new(count, arg_size, res_size, a.arena.slot_size())?;
    if from > to || to > count {
        return None;
    }
    // SAFETY: this worker owns the slot from taking its descriptor until it
    // sends the reply (the parent touches it again only after the reply, or
    // after reaping this process); each section is a separate range.
    let (data, status, panics) = unsafe {
        (
            a.arena.bytes_mut(slot, 0, lay.data_len)?,
            a.arena.bytes_mut(slot, lay.status, count)?,
            a.arena.bytes_mut(slot, lay.panics, lay.panics_len)?,
        )
    };
    // 0: a zero-sized function, which the trampoline calls itself.
    let func = match h.func as usize {
        0 => 0,
        f => f.wrapping_add_signed(a.relocate),
    };
    let tramp_addr = (h.tramp as usize).wrapping_add_signed(a.relocate);
    // SAFETY: the address was written by the pool from a `Trampoline` and the
    // keyed checksum over it matched, so it is that function's address in this
    // image (relocated for a spawned worker).
    let tramp = unsafe { std::mem::transmute::<usize, Trampoline>(tramp_addr) };
    // An empty panic list: the parent reads no status byte of this run unless
    // a record follows (see the module docs of `wire`).
    panics.get_mut(..8)?.fill(0);
    let running = a.running.begin(a.index, h.chunk)?;
    let mut panic_len = 0usize;
    let mut cleared = false;
    let mut next = from;
    // One `catch_unwind` per run; after a panic, go on after the task that
    // panicked (the trampoline left its index in `running`).
    while next < to {
        // SAFETY: `func`/`tramp` are a matching pair (checked above); `data`
        // holds `count` arguments and `count` results (from `lay.results`) of
        // the sizes the trampoline was instantiated for, as the checksummed
        // header says.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe {
            tramp(
                func,
                &mut *data,
                lay.results,
                next,
                to,
                (arg_size, res_size),
                running,
            )
        }));
        let Err(p) = r else {
            break;
        };
        // Relaxed: written by this thread.
        let k = (running.load(Ordering::Relaxed) as usize)
            .checked_sub(1)
            .filter(|k| (next..to).contains(k))?;
        let cell = lay.results + k * res_size;
        if let Some(res) = data.get_mut(cell..cell + res_size) {
            res.fill(0);
        }
        if !cleared {
            // The run's first panic: its status bytes become meaningful now,
            // cleared before the first record says so.
            if let Some(run) = status.get_mut(from..to) {
                run.fill(0);
            }
            cleared = true;
        }
        write_panic(panics, &mut panic_len, k, panic_message(&*p).as_bytes());
        // After the record: a death from here on still finds it.
        status[k] = PANICKED;
        next = k + 1;
    }
    // Not cleared until the result is published (`run`): a death before
    // then must not make the parent run the chunk again.
    a.running.finish(a.index, to);
    Some(ResultMsg {
        magic: RESULT_MAGIC,
        worker: a.index as u32,
        chunk: h.chunk,
        from: h.from,
        to: h.to,
    })
}
