//! The parent's side of a pool: chunk bookkeeping, sending, receiving, reaping
//! and replacing workers.
//!
//! There is no background thread: the pool makes progress while a caller is in
//! one of its methods (a `map`, an iterator's `next`, an [`AsyncResult`]'s
//! `get`/`wait`/`ready`, `join`). Keeping the parent single-threaded is what lets
//! it fork replacement workers safely. Callbacks run on the thread that drives
//! the pool when their task completes, with no pool lock held.
//!
//! A job's arguments are written into arena slots lazily, a chunk at a time,
//! when a slot is free: by the job's own feeder (a collected vector), or, for
//! [`Pool::map`](super::Pool::map), by the caller's iterator while that caller
//! drives the pool. The iterator is user code and may use the pool itself, so
//! it runs with no lock held, into a slot reserved for it ([`Inner::reserve`],
//! then [`Inner::commit`]). Any number of threads may drive one pool at once;
//! each waits on the result queue with a receive buffer of its own. Every chunk
//! sent goes to one worker's inbox and is remembered in that worker's `sent`
//! list until its result arrives. When a worker is reaped, the parent first
//! drains the result queue (a dead process publishes nothing more), then reads
//! the worker's [`Running`] line: the tasks before the one it names finished
//! and their results are in the slot (they are delivered), the task it names
//! gets [`PoolError::WorkerDied`], and the rest of that chunk and the worker's
//! other unfinished chunks go back to the front of the backlog, in their slots.
//! A replacement worker starts with a fresh inbox at the same index, so the
//! pool keeps its size.
//!
//! [`AsyncResult`]: super::AsyncResult

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::PoolError;
use super::wire::{
    Arena, Layout, MSG_SIZE, PANICKED, RESULT_MAGIC, ResultMsg, Running, TASK_MAGIC, TaskMsg,
    panic_records, read,
};
use super::worker::{self, EXIT_INIT_PANICKED};
use crate::process::ExitStatus;
use crate::sys::process as sys;
use crate::{BytesQueue, RegionOptions};

/// How long a waiting caller sleeps on the result queue before checking for
/// dead workers.
const SLICE: Duration = Duration::from_millis(2);
/// Most chunks in flight per worker (queued in its inbox or running); the arena
/// has this many slots per worker. Deep enough that workers rarely wait for the
/// parent to be scheduled on a busy machine.
pub(crate) const DEPTH: usize = 8;
/// Chunks a worker is always given (one running, one queued); more only while
/// the bytes in flight to it stay within one slot. Large chunks then cycle
/// through few slots, whose lines stay in the caches (measured: about a fifth
/// less CPU per tiny task than eight 1 MiB chunks per worker), and small ones
/// (`apply_async`, `imap` with chunk size 1) still queue deep.
const ALWAYS: usize = 2;
/// Item state in a job.
const PENDING: u8 = 0;
pub(crate) const OK: u8 = 1;
const FAILED: u8 = 3;

/// How workers are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `fork`, refused when the parent runs other threads.
    Fork,
    /// `fork` without the thread check (the builder's `unsafe` method).
    ForkUnchecked,
    /// A fresh `exec` of this program ([`crate::process::Spawn`]).
    Spawn,
}

pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) message_size: usize,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) initializer: Option<fn()>,
    pub(crate) method: Method,
    /// Result cell bytes of the serde methods.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) serde_result: usize,
    pub(crate) key: u64,
}

/// A job's typed result storage, seen as raw bytes while results arrive.
pub(crate) trait Store: Send {
    /// Where bytes `off..off + len` of the results go (within the storage),
    /// `None` if out of range.
    fn raw(&mut self, off: usize, len: usize) -> Option<*mut u8>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// The results of a job of `n` tasks: a vector with room for `n` values,
/// filled as chunks arrive. Nothing is zeroed first (that would cost a pass
/// over the whole vector): every byte of item `i` is written (by
/// [`Inner::deliver`]) before item `i` is marked [`OK`], and only `OK` items
/// are read.
pub(crate) struct Results<R> {
    v: Vec<R>,
    n: usize,
}

impl<R: bytemuck::Pod> Results<R> {
    pub(crate) fn new(n: usize) -> Results<R> {
        Results {
            v: Vec::with_capacity(n),
            n,
        }
    }

    /// The vector.
    ///
    /// # Safety
    ///
    /// Every item was written (its job completed with every item `OK`).
    pub(crate) unsafe fn finish(mut self) -> Vec<R> {
        // SAFETY: the capacity is at least `n` and, by the caller's contract,
        // items `0..n` are initialized.
        unsafe { self.v.set_len(self.n) };
        self.v
    }
}

impl<R: bytemuck::Pod + Send> Store for Results<R> {
    fn raw(&mut self, off: usize, len: usize) -> Option<*mut u8> {
        let total = self.n.checked_mul(size_of::<R>())?;
        if off.checked_add(len)? > total {
            return None;
        }
        // In bounds of the allocation (capacity >= n), or a zero-length range.
        Some(self.v.as_mut_ptr().cast::<u8>().wrapping_add(off))
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Writes the packed arguments of tasks `first..first + count` into the slice
/// (exactly `count * arg_size` bytes).
pub(crate) type Feed = dyn FnMut(usize, usize, &mut [u8]) + Send;
/// A feeder borrowed from the caller for one job (see [`Inner::drive`]).
pub(crate) type Local<'a> = Option<(u64, &'a mut dyn FnMut(usize, usize, &mut [u8]))>;

/// Runs when a job completes; returns what to call with no lock held.
pub(crate) type OnDone = Box<dyn FnOnce(&mut Job) -> Option<Box<dyn FnOnce() + Send>> + Send>;

/// What a job runs and how it is cut into chunks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub(crate) func: usize,
    pub(crate) tramp: usize,
    pub(crate) arg_size: usize,
    pub(crate) res_size: usize,
    pub(crate) n: usize,
    pub(crate) chunk: usize,
}

pub(crate) struct Job {
    spec: Spec,
    /// Tasks `0..fed` have been written into chunks.
    fed: usize,
    /// Writes arguments; `None`: the submitting caller feeds while it drives.
    feed: Option<Box<Feed>>,
    pub(crate) store: Option<Box<dyn Store>>,
    pub(crate) status: Vec<u8>,
    pub(crate) errors: HashMap<usize, PoolError>,
    pub(crate) remaining: usize,
    /// Indices in completion order, for `imap_unordered` and `as_completed`.
    pub(crate) completed: VecDeque<usize>,
    /// Whether to fill `completed` (only `imap_unordered` reads it).
    track: bool,
    on_done: Option<OnDone>,
    /// The handle is gone: remove the job once complete.
    dropped: bool,
}

impl Job {
    pub(crate) fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// The outcome of item `i`, once it completed.
    pub(crate) fn item<R: bytemuck::Pod>(&mut self, i: usize) -> Option<Result<R, PoolError>> {
        match self.status.get(i).copied()? {
            PENDING => None,
            OK => {
                let size = size_of::<R>();
                if size == 0 {
                    return Some(Ok(R::zeroed()));
                }
                let p = self.store.as_mut()?.raw(i * size, size)?;
                // SAFETY: `p..p + size` lies in the storage (checked by `raw`)
                // and item `i` is `OK`, so its bytes were written (see
                // `Results`); any bytes are a valid `R: Pod`.
                Some(Ok(unsafe { p.cast::<R>().read_unaligned() }))
            }
            _ => Some(Err(self
                .errors
                .get(&i)
                .cloned()
                .unwrap_or(PoolError::Panicked(String::new())))),
        }
    }

    /// The outcome of item `i` as the `size` bytes of its result cell, once it
    /// completed.
    #[cfg(feature = "serde")]
    pub(crate) fn item_bytes(&mut self, i: usize, size: usize) -> Option<Result<&[u8], PoolError>> {
        match self.status.get(i).copied()? {
            PENDING => None,
            OK => {
                let p = self.store.as_mut()?.raw(i.checked_mul(size)?, size)?;
                // SAFETY: in the storage (checked by `raw`) and written, since
                // item `i` is `OK` (see `Results`); borrowed from `self`.
                Some(Ok(unsafe { std::slice::from_raw_parts(p, size) }))
            }
            _ => Some(Err(self
                .errors
                .get(&i)
                .cloned()
                .unwrap_or(PoolError::Panicked(String::new())))),
        }
    }

    /// The first failure in item order, if any.
    pub(crate) fn first_error(&self) -> Option<PoolError> {
        let i = self.errors.keys().min()?;
        self.errors.get(i).cloned()
    }

    /// Items in the job.
    #[cfg(feature = "serde")]
    pub(crate) fn len(&self) -> usize {
        self.spec.n
    }

    /// Bytes of one result (cell).
    #[cfg(feature = "serde")]
    pub(crate) fn cell_size(&self) -> usize {
        self.spec.res_size
    }

    fn fail(&mut self, i: usize, e: PoolError) {
        if self.status.get(i) == Some(&PENDING) {
            self.status[i] = FAILED;
            self.errors.insert(i, e);
            self.remaining -= 1;
            if self.track {
                self.completed.push_back(i);
            }
        }
    }

    fn succeed(&mut self, i: usize) {
        if self.status.get(i) == Some(&PENDING) {
            self.status[i] = OK;
            self.remaining -= 1;
            if self.track {
                self.completed.push_back(i);
            }
        }
    }
}

/// Tasks `first..first + count` of a job, in arena slot `slot`, of which
/// `from..to` (slot-relative) still have to run.
struct Chunk {
    job: u64,
    first: usize,
    count: usize,
    from: usize,
    to: usize,
    slot: usize,
    worker: Option<usize>,
}

/// A free slot taken by [`Inner::reserve`] for tasks `first..first + count`
/// of job `job`, with the bytes their arguments go to.
struct Reserved<'a> {
    job: u64,
    slot: usize,
    first: usize,
    count: usize,
    args: &'a mut [u8],
}

struct Worker {
    pid: Option<u32>,
    inbox: BytesQueue,
    sent: VecDeque<u64>,
    total_sent: u64,
    /// Argument and result bytes of the chunks in `sent`.
    inflight: usize,
}

pub(crate) struct State {
    workers: Vec<Worker>,
    running: Running,
    backlog: VecDeque<u64>,
    chunks: HashMap<u64, Chunk>,
    pub(crate) jobs: HashMap<u64, Job>,
    /// Jobs with tasks not yet written into chunks, oldest first.
    feeding: VecDeque<u64>,
    /// Arena slots no chunk holds.
    free: Vec<usize>,
    next_chunk: u64,
    next_job: u64,
    pub(crate) closed: bool,
    joining: bool,
    terminated: bool,
    broken: Option<PoolError>,
    last_reap: Instant,
    /// Receive buffer of [`Inner::receive_all`] ([`BytesQueue::slot_size`]
    /// bytes). Only ever used with the lock held, never taken across an
    /// unlock: a caller that waits unlocked uses a buffer of its own (with a
    /// shared one, a second waiting thread took the empty placeholder, put it
    /// back last, and every later receive failed at once with
    /// `BufferTooSmall`: a busy loop that never received again).
    buf: Vec<u8>,
    /// Status bytes scratch of [`Inner::deliver`] (which runs inside
    /// `receive_all`, while `buf` is in use).
    scratch: Vec<u8>,
    callbacks: Vec<Box<dyn FnOnce() + Send>>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    results: BytesQueue,
    arena: Arena,
    pub(crate) cfg: Config,
    /// The process that started the workers; a forked copy of the pool in
    /// another process must not kill or reap them.
    owner: u32,
}

fn region_error(e: crate::Error) -> PoolError {
    PoolError::Start(e.to_string())
}

/// Region options for the pool's queues: every worker joins every queue it
/// inherits (all inboxes and the results), and so does the pool's process; a
/// queue refuses a process its participant table has no room for, so the
/// tables are sized for all of them, with room for replacements joining while
/// a dead worker's slot is not yet reclaimed.
fn queue_options(processes: usize) -> RegionOptions {
    let slots = processes.saturating_mul(2).saturating_add(8);
    RegionOptions::new().participants(u32::try_from(slots).unwrap_or(u32::MAX).min(4096))
}

fn new_inbox(processes: usize) -> Result<BytesQueue, PoolError> {
    let capacity = (DEPTH * 2).next_power_of_two();
    BytesQueue::anonymous_with(capacity, MSG_SIZE, queue_options(processes)).map_err(region_error)
}

impl Inner {
    pub(crate) fn new(cfg: Config) -> Result<Inner, PoolError> {
        let too_many = || {
            PoolError::Start(format!(
                "{} processes: result queue capacity too large",
                cfg.processes
            ))
        };
        let slots = cfg.processes.checked_mul(DEPTH).ok_or_else(too_many)?;
        let capacity = slots
            .checked_next_power_of_two()
            .ok_or_else(too_many)?
            .max(2);
        let results = BytesQueue::anonymous_with(capacity, MSG_SIZE, queue_options(cfg.processes))
            .map_err(region_error)?;
        let running = Running::new(cfg.processes).map_err(|e| PoolError::Start(e.to_string()))?;
        let arena =
            Arena::new(slots, cfg.message_size).map_err(|e| PoolError::Start(e.to_string()))?;
        let mut workers = Vec::with_capacity(cfg.processes);
        for _ in 0..cfg.processes {
            workers.push(Worker {
                pid: None,
                inbox: new_inbox(cfg.processes)?,
                sent: VecDeque::new(),
                total_sent: 0,
                inflight: 0,
            });
        }
        let mut state = State {
            workers,
            running,
            backlog: VecDeque::new(),
            chunks: HashMap::new(),
            jobs: HashMap::new(),
            feeding: VecDeque::new(),
            free: (0..arena.slots()).rev().collect(),
            next_chunk: 1,
            next_job: 1,
            closed: false,
            joining: false,
            terminated: false,
            broken: None,
            last_reap: Instant::now(),
            buf: vec![0u8; results.slot_size().max(MSG_SIZE)],
            scratch: Vec::new(),
            callbacks: Vec::new(),
        };
        for i in 0..cfg.processes {
            if let Err(e) = start_worker(&cfg, &mut state, &results, &arena, i, false) {
                // Workers already started are killed here.
                kill_all(&mut state);
                return Err(e);
            }
        }
        Ok(Inner {
            state: Mutex::new(state),
            results,
            arena,
            cfg,
            owner: sys::pid(),
        })
    }

    /// Tests: how many participants each worker's inbox region has.
    pub(crate) fn inbox_members(&self) -> Vec<usize> {
        let st = self.lock();
        st.workers
            .iter()
            .map(|w| w.inbox.region().participants().len())
            .collect()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under the lock (callbacks and the caller's
        // argument iterator run unlocked), so poisoning is not expected: keep
        // going with the state as is all the same, every step leaves it
        // consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Largest number of tasks per chunk for these sizes.
    pub(crate) fn max_items(&self, arg_size: usize, res_size: usize) -> usize {
        Layout::max_items(arg_size, res_size, self.arena.slot_size())
    }

    /// Registers a job; its arguments are written by `feed` as slots free up
    /// (with `None`, only by the caller's [`Inner::drive`] that passes the
    /// returned job id with its feeder). Returns the job id.
    pub(crate) fn submit(
        &self,
        spec: Spec,
        store: Box<dyn Store>,
        feed: Option<Box<Feed>>,
        on_done: Option<OnDone>,
        track: bool,
    ) -> Result<u64, PoolError> {
        if sys::pid() != self.owner {
            return Err(PoolError::Terminated);
        }
        // (A zero-sized function travels as its trampoline alone: address 0.)
        let addrs = [spec.func, spec.tramp];
        let addrs: Vec<usize> = addrs.into_iter().filter(|&a| a != 0).collect();
        if self.cfg.method == Method::Spawn && !in_executable(&addrs) {
            return Err(PoolError::Start(
                "with the spawn start method, task functions must be in the program's executable"
                    .into(),
            ));
        }
        let mut st = self.lock();
        if st.terminated {
            return Err(PoolError::Terminated);
        }
        if st.closed {
            return Err(PoolError::Closed);
        }
        let id = st.next_job;
        st.next_job += 1;
        let n = spec.n;
        let mut job = Job {
            spec: Spec {
                chunk: spec.chunk.max(1),
                ..spec
            },
            fed: 0,
            feed,
            store: Some(store),
            status: vec![PENDING; n],
            errors: HashMap::new(),
            remaining: n,
            completed: VecDeque::new(),
            track,
            on_done,
            dropped: false,
        };
        if let Some(e) = st.broken.clone() {
            for i in 0..n {
                job.fail(i, e.clone());
            }
            job.fed = n;
        }
        let done = job.is_done();
        let unfed = job.fed < n;
        st.jobs.insert(id, job);
        if unfed {
            st.feeding.push_back(id);
        }
        if done {
            complete(&mut st, id);
        }
        self.pump(&mut st);
        let cbs = std::mem::take(&mut st.callbacks);
        drop(st);
        run_callbacks(cbs);
        Ok(id)
    }

    /// Drives the pool until `ready` returns `Some` (checked with the lock held
    /// after every step) or `deadline` passes (`Err(Timeout)`). `local` feeds
    /// the arguments of the job it names, with no lock held (it is the
    /// caller's iterator: it may use the pool).
    ///
    /// Any number of threads may drive at once: each waits, with no lock
    /// held, until the result queue has something, then takes what is there
    /// with the lock held, and whichever thread receives a result applies it
    /// to the shared state, where its owner's `ready` sees it.
    ///
    /// Results are only ever *taken* with the lock held. A thread that took
    /// one and let go of the lock before applying it would let another
    /// thread reap the worker that sent it, find the result queue empty
    /// ("a dead worker publishes nothing more"), and run the chunk again,
    /// on the arguments its first run had already overwritten with results
    /// (seen: `max_tasks_per_child` with several driving threads returned
    /// `f(f(x))` for a chunk).
    pub(crate) fn drive<T>(
        &self,
        deadline: Option<Instant>,
        mut local: Local<'_>,
        mut ready: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, PoolError> {
        if sys::pid() != self.owner {
            return Err(PoolError::Terminated);
        }
        loop {
            let mut st = self.lock();
            self.pump(&mut st);
            if let Some((id, f)) = local.as_mut() {
                if let Some(r) = self.reserve(&mut st, Some(*id)) {
                    drop(st);
                    let wrote = catch_unwind(AssertUnwindSafe(|| f(r.first, r.count, r.args)));
                    let mut st = self.lock();
                    if wrote.is_ok() {
                        self.commit(&mut st, *id, r.slot, r.first, r.count);
                    } else {
                        // The caller's iterator panicked: the slot stays
                        // free; the job's unfed tasks fail when its handle
                        // is released.
                        st.free.push(r.slot);
                    }
                    let cbs = std::mem::take(&mut st.callbacks);
                    drop(st);
                    run_callbacks(cbs);
                    if let Err(p) = wrote {
                        resume_unwind(p);
                    }
                    continue;
                }
            }
            let r = ready(&mut st);
            let cbs = std::mem::take(&mut st.callbacks);
            if !cbs.is_empty() {
                drop(st);
                run_callbacks(cbs);
                match r {
                    Some(r) => return Ok(r),
                    None => continue,
                }
            }
            if let Some(r) = r {
                return Ok(r);
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if d <= now => return Err(PoolError::Timeout),
                Some(d) => (d - now).min(SLICE),
                None => SLICE,
            };
            if st.terminated {
                return Err(PoolError::Terminated);
            }
            drop(st);
            // Wait without taking: the next round's `pump` takes what came
            // (with the lock held, see above).
            let _ = self
                .results
                .wait_readable(Some(crate::loom::Deadline::after(wait)));
        }
    }

    /// One step without waiting: receive what arrived, reap if due, send,
    /// write new chunks of self-feeding jobs into free slots.
    fn pump(&self, st: &mut State) {
        if st.terminated {
            return;
        }
        self.receive_all(st);
        if st.last_reap.elapsed() >= SLICE {
            st.last_reap = Instant::now();
            self.reap(st);
        }
        self.send_backlog(st);
        self.feed(st);
    }

    fn receive_all(&self, st: &mut State) {
        let mut buf = std::mem::take(&mut st.buf);
        // (Never short, see `State::buf`; cheap insurance all the same.)
        buf.resize(self.results.slot_size().max(MSG_SIZE), 0);
        while let Ok(n) = self.results.try_get_into(&mut buf) {
            if let Some(msg) = buf.get(..n) {
                self.on_result(st, msg);
            }
        }
        st.buf = buf;
    }

    /// Whether some live worker can take another (small) chunk.
    fn room(&self, st: &State) -> bool {
        st.workers.iter().any(|w| self.can_take(w, 0))
    }

    /// Whether worker `w` can take a chunk of `bytes` bytes (see [`ALWAYS`]).
    fn can_take(&self, w: &Worker, bytes: usize) -> bool {
        w.pid.is_some()
            && (w.sent.len() < ALWAYS
                || (w.sent.len() < DEPTH
                    && w.inflight.saturating_add(bytes) <= self.arena.slot_size()))
            && self.cfg.max_tasks.is_none_or(|m| w.total_sent < m)
    }

    /// Writes chunks of self-feeding jobs (their feeders only copy owned,
    /// already collected arguments: no user code runs under the lock) into
    /// free slots while a worker has room, sending each at once (so workers
    /// start before the parent has written every argument).
    fn feed(&self, st: &mut State) {
        while let Some(r) = self.reserve(st, None) {
            let Some(job) = st.jobs.get_mut(&r.job) else {
                st.free.push(r.slot);
                return;
            };
            let mut own = job.feed.take();
            let wrote = own
                .as_mut()
                .map(|f| catch_unwind(AssertUnwindSafe(|| f(r.first, r.count, r.args))));
            job.feed = own;
            if !matches!(wrote, Some(Ok(()))) {
                // Not reached: these feeders copy from a vector, in bounds.
                st.free.push(r.slot);
                if let Some(Err(p)) = wrote {
                    resume_unwind(p);
                }
                return;
            }
            self.commit(st, r.job, r.slot, r.first, r.count);
        }
    }

    /// Takes a free slot for the next chunk of a job that still has tasks to
    /// feed, while the backlog is empty and a worker has room: of job `local`
    /// (fed by its caller, see [`Inner::drive`]), or with `None` of the oldest
    /// self-feeding job. The slot is then this caller's alone until
    /// [`Inner::commit`] (or until it pushes it back on `free`).
    fn reserve<'a>(&'a self, st: &mut State, local: Option<u64>) -> Option<Reserved<'a>> {
        loop {
            if st.terminated || !st.backlog.is_empty() || !self.room(st) {
                return None;
            }
            let pos = st.feeding.iter().position(|id| match local {
                Some(l) => *id == l,
                None => st.jobs.get(id).is_none_or(|j| j.feed.is_some()),
            })?;
            let id = st.feeding[pos];
            let Some(job) = st.jobs.get_mut(&id) else {
                st.feeding.remove(pos);
                continue;
            };
            let (spec, first) = (job.spec, job.fed);
            let count = spec.chunk.min(spec.n.saturating_sub(first));
            if count == 0
                || Layout::new(count, spec.arg_size, spec.res_size, self.arena.slot_size())
                    .is_none()
            {
                // Not reached: the chunk size is capped by `max_items`.
                for i in first..spec.n {
                    job.fail(
                        i,
                        PoolError::TooLarge {
                            needed: spec.arg_size.max(spec.res_size),
                            max: self.cfg.message_size,
                        },
                    );
                }
                job.fed = spec.n;
                st.feeding.remove(pos);
                if job_done(st, id) {
                    complete(st, id);
                }
                continue;
            }
            let slot = st.free.pop()?;
            // SAFETY: the slot was free: no worker holds it and this process
            // holds no other reference to its bytes; it stays out of `free`
            // and out of every chunk until the `Reserved` is committed or
            // given back, so the slice is the only reference meanwhile.
            let Some(args) = (unsafe {
                self.arena
                    .bytes_mut(slot, 0, count.saturating_mul(spec.arg_size))
            }) else {
                st.free.push(slot);
                return None;
            };
            return Some(Reserved {
                job: id,
                slot,
                first,
                count,
                args,
            });
        }
    }

    /// Turns slot `slot`, holding the arguments of tasks `first..first +
    /// count` of job `id` (written since [`Inner::reserve`]), into a chunk and
    /// sends it; frees the slot instead if the job no longer wants those tasks
    /// (the pool broke or was terminated meanwhile).
    fn commit(&self, st: &mut State, id: u64, slot: usize, first: usize, count: usize) {
        let wanted = !st.terminated
            && st.feeding.contains(&id)
            && st.jobs.get(&id).is_some_and(|j| j.fed == first);
        let Some(job) = st.jobs.get_mut(&id).filter(|_| wanted) else {
            st.free.push(slot);
            return;
        };
        job.fed += count;
        if job.fed >= job.spec.n {
            st.feeding.retain(|&j| j != id);
        }
        let cid = st.next_chunk;
        st.next_chunk += 1;
        st.chunks.insert(
            cid,
            Chunk {
                job: id,
                first,
                count,
                from: 0,
                to: count,
                slot,
                worker: None,
            },
        );
        st.backlog.push_back(cid);
        self.send_backlog(st);
    }

    /// Sends backlog chunks to the workers with the fewest queued, up to
    /// [`DEPTH`] each (and never past a worker's `max_tasks`).
    fn send_backlog(&self, st: &mut State) {
        while let Some(&cid) = st.backlog.front() {
            let bytes = st.chunks.get(&cid).map_or(0, |c| chunk_bytes(c, &st.jobs));
            let mut best: Option<usize> = None;
            for (i, w) in st.workers.iter().enumerate() {
                if !self.can_take(w, bytes) {
                    continue;
                }
                if best.is_none_or(|b| st.workers[b].sent.len() > w.sent.len()) {
                    best = Some(i);
                }
            }
            let Some(i) = best else {
                return;
            };
            let Some(c) = st.chunks.get_mut(&cid) else {
                st.backlog.pop_front();
                continue;
            };
            let Some(spec) = st.jobs.get(&c.job).map(|j| j.spec) else {
                // The job is gone (released after a failure): drop the chunk.
                st.backlog.pop_front();
                if let Some(c) = st.chunks.remove(&cid) {
                    st.free.push(c.slot);
                }
                continue;
            };
            let mut m = TaskMsg {
                magic: TASK_MAGIC,
                slot: c.slot as u32,
                chunk: cid,
                count: c.count as u32,
                from: c.from as u32,
                to: c.to as u32,
                arg_size: spec.arg_size as u32,
                res_size: spec.res_size as u32,
                _pad: 0,
                func: spec.func as u64,
                tramp: spec.tramp as u64,
                check: 0,
            };
            m.check = m.checksum(self.cfg.key);
            if st.workers[i].inbox.try_put(bytemuck::bytes_of(&m)).is_err() {
                return;
            }
            c.worker = Some(i);
            st.backlog.pop_front();
            let w = &mut st.workers[i];
            w.sent.push_back(cid);
            w.total_sent += 1;
            w.inflight = w.inflight.saturating_add(bytes);
        }
    }

    /// Applies one result message from a worker.
    fn on_result(&self, st: &mut State, msg: &[u8]) {
        let Some(h) = read::<ResultMsg>(msg) else {
            return;
        };
        if h.magic != RESULT_MAGIC {
            return;
        }
        let matches = st.chunks.get(&h.chunk).is_some_and(|c| {
            c.from == h.from as usize
                && c.to == h.to as usize
                && c.worker == Some(h.worker as usize)
        });
        if !matches {
            return;
        }
        let Some(c) = st.chunks.remove(&h.chunk) else {
            return;
        };
        let bytes = chunk_bytes(&c, &st.jobs);
        if let Some(w) = c.worker.and_then(|w| st.workers.get_mut(w)) {
            if let Some(pos) = w.sent.iter().position(|&x| x == h.chunk) {
                w.sent.remove(pos);
                w.inflight = w.inflight.saturating_sub(bytes);
            }
        }
        self.deliver(st, &c, c.to);
        st.free.push(c.slot);
    }

    /// Copies the outcomes of tasks `c.from..to` of chunk `c` from its slot into
    /// the job (their worker has finished them).
    fn deliver(&self, st: &mut State, c: &Chunk, to: usize) {
        let Some(job) = st.jobs.get_mut(&c.job) else {
            return;
        };
        let (from, spec) = (c.from, job.spec);
        if from >= to {
            return;
        }
        let Some(lay) = Layout::new(
            c.count,
            spec.arg_size,
            spec.res_size,
            self.arena.slot_size(),
        ) else {
            return;
        };
        let rs = spec.res_size;
        let (lo, hi) = (c.first + from, c.first + to);
        // Every item marked OK below must have its bytes written here.
        let written = job
            .store
            .as_mut()
            .and_then(|s| s.raw(lo * rs, (hi - lo) * rs))
            .map(|dst| {
                // SAFETY: `dst` has room for `(hi - lo) * rs` bytes (checked by
                // `raw`); the storage is this process's own memory.
                unsafe {
                    self.arena
                        .copy_out(c.slot, lay.results + from * rs, dst, (hi - lo) * rs)
                }
            });
        // An empty panic record list: no task of the run panicked, and the
        // status bytes were not written (see the module docs of `wire`).
        let mut first = [0u8; 4];
        let no_panics =
            self.arena.read_into(c.slot, lay.panics, &mut first) && u32::from_ne_bytes(first) == 0;
        let written = written == Some(true);
        // (PENDING is 0: an OR over the range vectorizes, an early exit would not.)
        let all_pending = job
            .status
            .get(lo..hi)
            .is_some_and(|v| v.iter().fold(PENDING, |a, &s| a | s) == PENDING);
        if written && no_panics && all_pending && !job.track {
            // The common case: every task of the chunk succeeded.
            job.status[lo..hi].fill(OK);
            job.remaining -= hi - lo;
        } else {
            let mut status = std::mem::take(&mut st.scratch);
            status.clear();
            status.resize(to - from, 0);
            let read_ok = written
                && (no_panics
                    || self
                        .arena
                        .read_into(c.slot, lay.status + from, &mut status[..to - from]));
            let mut messages: HashMap<usize, String> = HashMap::new();
            if !no_panics {
                let mut area = vec![0u8; lay.panics_len];
                if self.arena.read_into(c.slot, lay.panics, &mut area) {
                    panic_records(&area, |k, m| {
                        messages.insert(k, m);
                    });
                }
            }
            for k in from..to {
                if !read_ok || status[k - from] == PANICKED {
                    let m = messages.remove(&k).unwrap_or_default();
                    job.fail(c.first + k, PoolError::Panicked(m));
                } else {
                    job.succeed(c.first + k);
                }
            }
            st.scratch = status;
        }
        if job_done(st, c.job) {
            complete(st, c.job);
        }
    }

    /// Reaps every worker that ended, fails the task it ran, requeues the rest
    /// of its chunks and starts a replacement.
    fn reap(&self, st: &mut State) {
        for i in 0..st.workers.len() {
            let Some(pid) = st.workers[i].pid else {
                continue;
            };
            let status = match sys::try_wait_child(pid) {
                Ok(None) => continue,
                Ok(Some(sys::Exit::Code(c))) => ExitStatus::Code(c),
                Ok(Some(sys::Exit::Signal(s))) => ExitStatus::Signal(s),
                Err(_) => ExitStatus::Signal(0),
            };
            st.workers[i].pid = None;
            // A dead worker publishes nothing more: take all it sent first.
            self.receive_all(st);
            self.requeue(st, i, pid, status);
            if status == ExitStatus::Code(EXIT_INIT_PANICKED) {
                break_pool(st, PoolError::InitializerPanicked);
                continue;
            }
            if st.joining || st.broken.is_some() {
                continue;
            }
            match new_inbox(self.cfg.processes) {
                Ok(inbox) => st.workers[i].inbox = inbox,
                Err(e) => {
                    self.replacement_failed(st, e);
                    continue;
                }
            }
            if let Err(e) = start_worker(&self.cfg, st, &self.results, &self.arena, i, true) {
                self.replacement_failed(st, e);
            }
        }
    }

    fn replacement_failed(&self, st: &mut State, e: PoolError) {
        if st.workers.iter().all(|w| w.pid.is_none()) {
            break_pool(st, e);
        }
    }

    fn requeue(&self, st: &mut State, w: usize, pid: u32, status: ExitStatus) {
        let running = st.running.take(w);
        let sent: Vec<u64> = st.workers[w].sent.drain(..).collect();
        st.workers[w].inflight = 0;
        let mut front = Vec::new();
        for cid in sent {
            let Some(mut c) = st.chunks.remove(&cid) else {
                continue;
            };
            c.worker = None;
            match running {
                Some((rc, k)) if rc == cid && (c.from..c.to).contains(&k) => {
                    // Tasks before `k` finished: their results are in the slot.
                    self.deliver(st, &c, k);
                    let (signal, code) = match status {
                        ExitStatus::Signal(s) => (Some(s), None),
                        ExitStatus::Code(c) => (None, Some(c)),
                    };
                    if let Some(job) = st.jobs.get_mut(&c.job) {
                        job.fail(c.first + k, PoolError::WorkerDied { pid, signal, code });
                    }
                    if job_done(st, c.job) {
                        complete(st, c.job);
                    }
                    if k + 1 < c.to {
                        // The rest runs elsewhere, from the same slot, under a
                        // new id (the dead worker's line names the old one).
                        c.from = k + 1;
                        let id = st.next_chunk;
                        st.next_chunk += 1;
                        st.chunks.insert(id, c);
                        front.push(id);
                    } else {
                        st.free.push(c.slot);
                    }
                }
                Some((rc, k)) if rc == cid && k == c.to => {
                    // Every task finished and its result is in the slot; the
                    // worker died before its result message was published (or
                    // the message was lost with it). Running the chunk again
                    // would read results as arguments: deliver them.
                    self.deliver(st, &c, c.to);
                    st.free.push(c.slot);
                }
                _ => {
                    st.chunks.insert(cid, c);
                    front.push(cid);
                }
            }
        }
        for id in front.into_iter().rev() {
            st.backlog.push_front(id);
        }
    }

    /// Handle dropped: forget the job once it completed. A job whose caller
    /// fed it and stopped (its iterator panicked) fails its unfed tasks.
    pub(crate) fn release(&self, job: u64) {
        let mut st = self.lock();
        let Some(j) = st.jobs.get_mut(&job) else {
            return;
        };
        if j.feed.is_none() && j.fed < j.spec.n {
            for i in j.fed..j.spec.n {
                j.fail(i, PoolError::Terminated);
            }
            j.fed = j.spec.n;
            st.feeding.retain(|&id| id != job);
        }
        let Some(j) = st.jobs.get_mut(&job) else {
            return;
        };
        if j.is_done() {
            st.jobs.remove(&job);
        } else {
            j.dropped = true;
        }
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// After `close`: waits until every task has a result, then lets every
    /// worker finish and reaps it.
    pub(crate) fn join(&self) -> Result<(), PoolError> {
        {
            let st = self.lock();
            if !st.closed && !st.terminated {
                return Err(PoolError::NotClosed);
            }
        }
        let r = self.drive(None, None, |st| {
            (st.terminated || (st.chunks.is_empty() && st.feeding.is_empty())).then_some(())
        });
        if let Err(e) = r {
            if e != PoolError::Terminated {
                return Err(e);
            }
        }
        let mut st = self.lock();
        st.joining = true;
        for w in &st.workers {
            w.inbox.shutdown();
        }
        for w in &mut st.workers {
            if let Some(pid) = w.pid.take() {
                let _ = sys::wait_child(pid, None);
            }
        }
        self.results.shutdown();
        Ok(())
    }

    /// Kills every worker, reaps it, and fails every unfinished task with
    /// [`PoolError::Terminated`].
    pub(crate) fn terminate(&self) {
        if sys::pid() != self.owner {
            return;
        }
        let mut st = self.lock();
        if !st.terminated {
            kill_all(&mut st);
            break_pool(&mut st, PoolError::Terminated);
            st.terminated = true;
            st.closed = true;
        }
        let cbs = std::mem::take(&mut st.callbacks);
        drop(st);
        run_callbacks(cbs);
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut st = self.lock();
        self.pump(&mut st);
        st.workers.iter().filter_map(|w| w.pid).collect()
    }
}

/// Whether every address lies in the ELF object holding this crate (the
/// executable), so that a spawned worker finds the same code at the same
/// offset.
pub(crate) fn in_executable(addrs: &[usize]) -> bool {
    let Some(base) = sys::object_base(worker::anchor()) else {
        return false;
    };
    addrs.iter().all(|&a| sys::object_base(a) == Some(base))
}

/// Argument and result bytes of chunk `c`'s slot (its whole layout: that is
/// what the caches hold).
fn chunk_bytes(c: &Chunk, jobs: &HashMap<u64, Job>) -> usize {
    jobs.get(&c.job).map_or(0, |j| {
        c.count
            .saturating_mul(j.spec.arg_size.saturating_add(j.spec.res_size))
    })
}

fn job_done(st: &State, job: u64) -> bool {
    st.jobs.get(&job).is_some_and(Job::is_done)
}

/// A job just completed: queue its completion callback, drop it if unwatched.
fn complete(st: &mut State, job: u64) {
    let Some(j) = st.jobs.get_mut(&job) else {
        return;
    };
    if let Some(cb) = j.on_done.take() {
        if let Some(run) = cb(j) {
            st.callbacks.push(run);
        }
    }
    if j.dropped {
        st.jobs.remove(&job);
    }
}

/// Runs completion callbacks (no lock held). Each runs under `catch_unwind`,
/// so a panicking one does not lose the others (each still runs exactly
/// once); the first panic is then resumed, on the thread that drove the pool,
/// as if no catching had happened; later ones are dropped (their callbacks
/// did run).
fn run_callbacks(cbs: Vec<Box<dyn FnOnce() + Send>>) {
    let mut first = None;
    for cb in cbs {
        if let Err(p) = catch_unwind(AssertUnwindSafe(cb)) {
            first.get_or_insert(p);
        }
    }
    if let Some(p) = first {
        resume_unwind(p);
    }
}

/// Fails every unfinished task with `e` and stops sending.
fn break_pool(st: &mut State, e: PoolError) {
    st.broken = Some(e.clone());
    st.backlog.clear();
    for w in &mut st.workers {
        w.sent.clear();
        w.inflight = 0;
    }
    let chunks: Vec<Chunk> = st.chunks.drain().map(|(_, c)| c).collect();
    for c in chunks {
        st.free.push(c.slot);
        if let Some(job) = st.jobs.get_mut(&c.job) {
            for i in c.first + c.from..c.first + c.to {
                job.fail(i, e.clone());
            }
        }
        if job_done(st, c.job) {
            complete(st, c.job);
        }
    }
    let feeding: Vec<u64> = st.feeding.drain(..).collect();
    for id in feeding {
        if let Some(job) = st.jobs.get_mut(&id) {
            for i in job.fed..job.spec.n {
                job.fail(i, e.clone());
            }
            job.fed = job.spec.n;
        }
        if job_done(st, id) {
            complete(st, id);
        }
    }
}

fn kill_all(st: &mut State) {
    for w in &mut st.workers {
        if let Some(pid) = w.pid.take() {
            let _ = sys::kill(pid, sys::SIGKILL);
            let _ = sys::wait_child(pid, None);
        }
        w.inbox.shutdown();
    }
}

/// Starts worker `i` by the pool's method. A `Fork` pool whose process runs
/// other threads by the time a worker must be *replaced* (threads sharing the
/// pool, say) cannot fork safely; it starts the replacement with the spawn
/// method instead (a fresh exec of the program, as `PoolBuilder::spawn` does),
/// so the pool goes on rather than break for good. Building a `Fork` pool in a
/// threaded process is still refused: the caller chooses the method then.
fn start_worker(
    cfg: &Config,
    st: &mut State,
    results: &BytesQueue,
    arena: &Arena,
    i: usize,
    replacing: bool,
) -> Result<(), PoolError> {
    let fork_refused = cfg.method == Method::Fork
        && match crate::process::check_single_threaded() {
            Ok(()) => false,
            Err(e) if !replacing => return Err(PoolError::Start(e.to_string())),
            Err(_) => true,
        };
    if cfg.method == Method::Spawn || fork_refused {
        let setup = worker::setup(
            i,
            cfg.processes,
            cfg.key,
            cfg.max_tasks,
            cfg.initializer,
            arena,
        );
        let child = crate::process::Spawn::new(worker::spawn_entry, bytemuck::bytes_of(&setup))
            .daemon(true)
            .share(st.workers[i].inbox.region())
            .share(results.region())
            .share_file(arena.file())
            .share_file(st.running.file())
            .start()
            .map_err(|e| PoolError::Start(e.to_string()))?;
        let w = &mut st.workers[i];
        w.pid = Some(child.detach());
        w.sent.clear();
        w.total_sent = 0;
        w.inflight = 0;
        return Ok(());
    }
    let args = worker::WorkerArgs {
        index: i,
        inbox: &st.workers[i].inbox,
        results,
        running: &st.running,
        arena,
        key: cfg.key,
        max_tasks: cfg.max_tasks,
        initializer: cfg.initializer,
        relocate: 0,
    };
    // The worker does not use the other workers' inboxes it inherits: it
    // neither joins their regions nor counts as their receiver (else every
    // worker would join every inbox's table, N^2 joins for N workers).
    let others: std::collections::HashSet<usize> = (st.workers.iter().enumerate())
        .filter(|&(j, _)| j != i)
        .map(|(_, w)| std::ptr::from_ref(w.inbox.region()) as usize)
        .collect();
    let skip = |r: &crate::Region| others.contains(&(std::ptr::from_ref(r) as usize));
    // SAFETY: with `Method::Fork` the thread check above passed; with
    // `ForkUnchecked` the builder's caller took on the post-fork restrictions in
    // an `unsafe` call. The child runs only the worker loop and the user's
    // plain functions, then `_exit`s; it is a daemon, so it dies with the parent.
    let pid = unsafe {
        crate::process::fork_child_with(true, cfg.method == Method::Fork, Some(&skip), || {
            worker::run(&args)
        })
    }
    .map_err(|e| PoolError::Start(e.to_string()))?;
    let w = &mut st.workers[i];
    w.pid = Some(pid);
    w.sent.clear();
    w.total_sent = 0;
    w.inflight = 0;
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        if sys::pid() != self.owner {
            return;
        }
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        kill_all(st);
        self.results.shutdown();
    }
}
