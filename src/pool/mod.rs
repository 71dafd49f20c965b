//! A process pool, Python's `multiprocessing.Pool` (and `ProcessPoolExecutor`'s
//! `submit`/`as_completed`), whose failures are values instead of hangs.
//!
//! ```no_run
//! use multiproc::pool::Pool;
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! let pool = Pool::new(0)?; // one worker per CPU
//! let squares = pool.map(square, 0..100u64)?;
//! assert_eq!(squares[7], 49);
//! # Ok::<(), multiproc::pool::PoolError>(())
//! ```
//!
//! # Tasks
//!
//! A task is a plain `fn` (no captured state, so it means the same thing in
//! every worker) of [`Pod`] arguments returning a [`Pod`] result. The
//! `map`/`imap` family takes any [`TaskFn`]: a `fn` item, a closure that
//! captures nothing, or a `fn` pointer; the first two are zero-sized, so the
//! worker's loop calls them directly (inlined) instead of through a pointer,
//! which is most of a tiny task's cost. Tasks go to
//! the workers in *chunks*: the parent writes a chunk's arguments straight into
//! a slot of a shared arena the workers inherit, and only a small descriptor
//! (slot, task range, function) travels through the crate's queues
//! ([`BytesQueue`]s: one inbox per worker, one result queue); the worker reads
//! the arguments and writes the results in place. The chunk size (by default
//! Python's rule for `map`, `len / (4 * processes)` rounded up, capped by what
//! fits in one slot) is what makes the per-task cost small: a few nanoseconds
//! for tiny tasks.
//!
//! # Failures
//!
//! - A task that panics gives [`PoolError::Panicked`] with the panic message;
//!   the worker goes on. (Built with `panic = "abort"`, a panic ends the worker
//!   instead, which gives `WorkerDied`.)
//! - A worker that dies mid-task (SIGKILL, abort, OOM, `exit`) gives exactly
//!   that task [`PoolError::WorkerDied`]; the tasks of its chunk that had
//!   finished keep their results (they are in the shared slot), the rest of
//!   the chunk and its other queued chunks are run by another worker, and a
//!   replacement worker starts, so the pool keeps its size. (Python's `Pool`
//!   hangs forever; `concurrent.futures` breaks the whole pool.) Each task runs
//!   once, with one exception: a worker killed after its chunk's last task but
//!   before it reported the chunk gets that last task `WorkerDied` (it may have
//!   run).
//! - [`Pool::terminate`] and dropping the pool kill and reap every worker; tasks
//!   without a result then get [`PoolError::Terminated`].
//!
//! # Progress and callbacks
//!
//! The pool has no thread of its own: it sends tasks, collects results, reaps
//! and replaces workers while a caller is inside one of its methods (`map`,
//! an iterator's `next`, [`AsyncResult::get`], `wait`, `ready`,
//! [`Pool::join`]). Workers keep running tasks already sent to them (up to
//! eight chunks each) in the meantime. Keeping the parent free of threads is
//! what lets it fork replacement workers safely. Because chunks are handed to
//! a worker ahead of time, a short task sent behind a long one waits for it
//! even while another worker is idle (Python's shared task queue hands work to
//! whichever worker asks first); the parent sends to the worker with the
//! fewest chunks queued. `callback` and `error_callback` run in
//! the parent exactly once per task, on the thread that drives the pool when
//! the task completes, with no pool lock held (they may use the pool). A
//! callback that panics does not stop the others: every callback of the batch
//! still runs (each exactly once), then the first panic resumes on the thread
//! that was driving the pool, out of the `map`, `wait`, `get` or `join` it was
//! in. Argument iterators also run with no pool lock held, so they too may
//! use the pool, and several threads may share one pool (`Arc<Pool>`).
//!
//! # Start method
//!
//! Workers are forked. [`Pool::new`] and [`PoolBuilder::build`] refuse (with
//! [`PoolError::Start`]) when the parent runs other threads, as
//! [`crate::process::Process::start`] does; [`PoolBuilder::fork_unchecked`]
//! lifts the check for callers who accept its conditions. The check also runs
//! before every replacement worker: if the parent has started threads since, a
//! dead worker is not replaced (the pool runs one worker short), and once no
//! worker is left every unfinished task fails with [`PoolError::Start`]. Workers
//! are daemons: they die with the parent (more precisely, with the thread that
//! forked them, as `PR_SET_PDEATHSIG` works; the pool forks from the threads
//! that call it). With [`PoolBuilder::spawn`] workers are instead fresh
//! `exec`s of the program ([`crate::process::Spawn`]), which is safe in a
//! parent with any number of threads; they are handed the pool's queues and
//! arena as inherited descriptors and relocate the function addresses they
//! receive.
//!
//! # Trust
//!
//! The queues and the arena are anonymous and shared only with the pool's own
//! workers. Task messages carry function addresses; a worker calls one only if
//! the message's keyed checksum (the key lives in process memory, not in
//! shared memory; a spawned worker receives it in its environment) matches, so
//! a stray write makes the worker exit rather than jump. The parent reads
//! results from the arena with bounds it computed itself: a worker that
//! scribbles over the arena can make results wrong, never make the parent
//! read or write out of bounds. A deliberately hostile worker runs as the same
//! user and is not defended against.

mod engine;
#[cfg(feature = "serde")]
mod serde_pool;
mod wire;
mod worker;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;

#[allow(unused_imports, reason = "linked from the docs")]
use crate::BytesQueue;
use engine::{Config, Feed, Inner, Job, Method, OnDone, Spec};

/// Default size of one chunk slot of the shared arena (bytes): a chunk's
/// arguments, results, status bytes and panic messages. Large slots mean large
/// chunks and few hand-offs between processes; the arena has 8 slots per
/// worker, whose memory is only touched as far as chunks fill it.
pub const DEFAULT_MESSAGE_SIZE: usize = 1024 * 1024;

/// Why a task, or the pool, failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The task panicked; the panic message (`Box<dyn Any>` if the payload was
    /// not a string, as the standard library prints it).
    #[error("the task panicked: {0}")]
    Panicked(String),
    /// The worker running the task died before it finished.
    #[error("worker {pid} died while running the task (signal {signal:?}, exit code {code:?})")]
    WorkerDied {
        /// The worker's pid.
        pid: u32,
        /// The signal that ended it, if a signal did.
        signal: Option<i32>,
        /// Its exit code, if it exited (for example the task called `exit`).
        code: Option<i32>,
    },
    /// `get_timeout`/`wait_timeout`: no result yet (the task goes on).
    #[error("timed out waiting for the result")]
    Timeout,
    /// The pool was closed: no new tasks.
    #[error("the pool is closed")]
    Closed,
    /// The pool was terminated (or dropped) before the task finished.
    #[error("the pool was terminated")]
    Terminated,
    /// [`Pool::join`] before [`Pool::close`] (Python's `ValueError`).
    #[error("join() before close()")]
    NotClosed,
    /// One argument or result is too large for the pool's message size.
    #[error("one task needs {needed} bytes, messages hold {max}")]
    TooLarge {
        /// Bytes one task's argument or result needs.
        needed: usize,
        /// The message size.
        max: usize,
    },
    /// A value could not be encoded or decoded (the `serde` methods, such as
    /// `Pool::map_serde`): postcard's message.
    #[error("cannot encode or decode a value: {0}")]
    Serde(String),
    /// The workers' initializer panicked; the pool accepts no work.
    #[error("the worker initializer panicked")]
    InitializerPanicked,
    /// Workers could not be started (fork failed, the parent runs threads, or
    /// the queues could not be created).
    #[error("cannot start pool workers: {0}")]
    Start(String),
    /// [`Pool::map`]'s argument iterator broke its own exact `size_hint`:
    /// it promised `promised` items and yielded `yielded` (fewer; or
    /// `promised + 1`, meaning more). The map fails as a whole rather than
    /// return results it made up: the tasks of missing items already ran, on
    /// all-zero arguments (the arguments go to the workers as the iterator
    /// yields them), and their results are discarded.
    #[error("the argument iterator promised {promised} items and yielded {yielded}")]
    LengthMismatch {
        /// The exact length the iterator's `size_hint` gave.
        promised: usize,
        /// How many items it yielded (`promised + 1`: at least that many).
        yielded: usize,
    },
    /// A task function for the `map`/`imap` family is a closure that captures
    /// state (see [`TaskFn`]): the state could not reach the workers.
    #[error(
        "a pool task must not capture state (use a fn item, a fn pointer or a closure that captures nothing)"
    )]
    Captures,
}

/// Builds a [`Pool`] (Python's `Pool(processes, initializer,
/// maxtasksperchild)`).
///
/// ```no_run
/// use multiproc::pool::Pool;
/// fn init() {}
/// let pool = Pool::builder().processes(2).initializer(init).max_tasks_per_child(100).build()?;
/// assert_eq!(pool.processes(), 2);
/// # Ok::<(), multiproc::pool::PoolError>(())
/// ```
#[derive(Clone, Debug)]
pub struct PoolBuilder {
    processes: usize,
    message_size: usize,
    max_tasks: Option<u64>,
    initializer: Option<fn()>,
    method: Method,
    serde_result: usize,
}

/// Default bytes of one result cell of the `serde` methods (`Pool::map_serde`
/// and the others): the largest encoded result, plus 4.
pub const DEFAULT_SERDE_RESULT_SIZE: usize = 1024;

impl Default for PoolBuilder {
    fn default() -> PoolBuilder {
        PoolBuilder {
            processes: 0,
            message_size: DEFAULT_MESSAGE_SIZE,
            max_tasks: None,
            initializer: None,
            method: Method::Fork,
            serde_result: DEFAULT_SERDE_RESULT_SIZE,
        }
    }
}

impl PoolBuilder {
    /// Number of workers; 0 (the default) means one per CPU this process may
    /// run on.
    ///
    /// ```
    /// let b = multiproc::pool::Pool::builder().processes(4);
    /// # drop(b);
    /// ```
    pub fn processes(mut self, n: usize) -> PoolBuilder {
        self.processes = n;
        self
    }

    /// A function every worker runs once when it starts (Python's
    /// `initializer`). If it panics, the pool accepts no work and every task
    /// gets [`PoolError::InitializerPanicked`].
    ///
    /// ```
    /// fn init() {}
    /// let b = multiproc::pool::Pool::builder().initializer(init);
    /// # drop(b);
    /// ```
    pub fn initializer(mut self, f: fn()) -> PoolBuilder {
        self.initializer = Some(f);
        self
    }

    /// A worker exits after this many chunks (a chunk counts as one task, as in
    /// Python's `maxtasksperchild`) and a fresh one replaces it. 0: unlimited.
    ///
    /// ```
    /// let b = multiproc::pool::Pool::builder().max_tasks_per_child(10);
    /// # drop(b);
    /// ```
    pub fn max_tasks_per_child(mut self, n: u64) -> PoolBuilder {
        self.max_tasks = (n > 0).then_some(n);
        self
    }

    /// Bytes per chunk slot (default [`DEFAULT_MESSAGE_SIZE`]): bounds the chunk
    /// size and the largest argument or result. The arena holds 8 slots per
    /// worker.
    ///
    /// ```
    /// let b = multiproc::pool::Pool::builder().message_size(1 << 20);
    /// # drop(b);
    /// ```
    pub fn message_size(mut self, bytes: usize) -> PoolBuilder {
        self.message_size = bytes.max(4096);
        self
    }

    /// Bytes of one result cell of the `serde` methods (default
    /// [`DEFAULT_SERDE_RESULT_SIZE`]): a result whose postcard encoding needs
    /// more than this minus 4 bytes gives its task [`PoolError::Panicked`]
    /// saying so. (Arguments are sized by the largest one of each call.)
    ///
    /// ```
    /// let b = multiproc::pool::Pool::builder().serde_result_size(64 * 1024);
    /// # drop(b);
    /// ```
    pub fn serde_result_size(mut self, bytes: usize) -> PoolBuilder {
        self.serde_result = bytes.clamp(8, u32::MAX as usize);
        self
    }

    /// Start workers with `fork` (the default), refusing when the parent runs
    /// other threads. A worker that must be *replaced* (it died, or reached
    /// `max_tasks_per_child`) while other threads run, threads sharing the
    /// pool say, is started with the [spawn](PoolBuilder::spawn) method
    /// instead, so the pool goes on: that replacement is a fresh run of the
    /// program and inherits none of the parent's memory, only the pool's
    /// queues and arena (and the initializer runs in it).
    ///
    /// ```
    /// let b = multiproc::pool::Pool::builder().fork();
    /// # drop(b);
    /// ```
    pub fn fork(mut self) -> PoolBuilder {
        self.method = Method::Fork;
        self
    }

    /// Start workers with the spawn start method: each worker is a fresh
    /// `exec` of this program ([`crate::process::Spawn`]) handed the pool's
    /// queues and arena, so the parent may run any number of threads (a tokio
    /// service, a test harness). Task functions and the initializer must be in
    /// the program's executable (not a separately loaded shared library):
    /// `build` checks the initializer, every call its task function
    /// ([`PoolError::Start`] otherwise). Workers start slower than forked ones
    /// (an `exec` each) and share nothing else with the parent: statics have
    /// their initial values there.
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// std::thread::spawn(|| std::thread::park()); // a threaded parent is fine
    /// let pool = multiproc::pool::Pool::builder().processes(2).spawn().build()?;
    /// assert_eq!(pool.map(square, 0..4u64)?, vec![0, 1, 4, 9]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn spawn(mut self) -> PoolBuilder {
        self.method = Method::Spawn;
        self
    }

    /// Start workers with `fork` even when the parent runs other threads (now or
    /// when a replacement worker starts later).
    ///
    /// # Safety
    ///
    /// Tasks and the initializer must not take any lock (the program's own,
    /// `stdout`'s, a logger's) that another thread of the parent may hold while
    /// a worker is forked; see [`crate::process`]'s notes on threads. The crate's
    /// own primitives take no such lock.
    ///
    /// ```no_run
    /// // SAFETY: the tasks only do arithmetic.
    /// let b = unsafe { multiproc::pool::Pool::builder().fork_unchecked() };
    /// # drop(b);
    /// ```
    pub unsafe fn fork_unchecked(mut self) -> PoolBuilder {
        self.method = Method::ForkUnchecked;
        self
    }

    /// Starts the workers.
    ///
    /// ```no_run
    /// let pool = multiproc::pool::Pool::builder().processes(2).build()?;
    /// assert_eq!(pool.pids().len(), 2);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn build(self) -> Result<Pool, PoolError> {
        let processes = match self.processes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        if self.method == Method::Spawn {
            if let Some(init) = self.initializer {
                if !engine::in_executable(&[init as usize]) {
                    return Err(PoolError::Start(
                        "with the spawn start method, the initializer must be in the program's executable"
                            .into(),
                    ));
                }
            }
        }
        let cfg = Config {
            processes,
            message_size: self.message_size,
            max_tasks: self.max_tasks,
            initializer: self.initializer,
            method: self.method,
            serde_result: self.serde_result,
            key: crate::sys::process::random_u64(),
        };
        Ok(Pool {
            inner: Arc::new(Inner::new(cfg)?),
        })
    }
}

/// A pool of worker processes.
///
/// Dropping it kills and reaps every worker (Python's `terminate`); call
/// [`Pool::close`] and [`Pool::join`] first to let submitted tasks finish.
/// A copy of a pool inherited by a forked child process is inert there: its
/// methods fail with [`PoolError::Terminated`] and dropping it leaves the
/// parent's workers alone.
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Tests: how many participants each worker's inbox region has.
    pub(crate) fn inbox_members(&self) -> Vec<usize> {
        self.inner.inbox_members()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.inner.cfg.processes)
            .finish_non_exhaustive()
    }
}

impl Default for Pool {
    /// [`Pool::new(0)`](Pool::new); panics if the workers cannot start (use
    /// [`Pool::new`] to get the error instead).
    fn default() -> Pool {
        match Pool::new(0) {
            Ok(p) => p,
            Err(e) => panic!("cannot start a process pool: {e}"),
        }
    }
}

/// A task function for the `map`/`imap` family: a `fn` item, a closure that
/// captures nothing (both zero-sized: the workers call them inlined), or a
/// `fn(A) -> R` pointer. Implemented for every `Fn(A) -> R + Copy + 'static`;
/// a closure that captures state does not compile when it is larger than a
/// pointer, and fails with [`PoolError::Captures`] otherwise (its state could
/// not reach the workers).
///
/// ```no_run
/// use multiproc::pool::{Pool, PoolError};
/// fn square(x: u64) -> u64 { x * x }
/// let pool = Pool::new(2)?;
/// assert_eq!(pool.map(square, 0..4u64)?, vec![0, 1, 4, 9]);
/// assert_eq!(pool.map(|x: u32| x + 1, [1, 2])?, vec![2, 3]);
/// let by_pointer: fn(u64) -> u64 = square;
/// assert_eq!(pool.map(by_pointer, [5u64])?, vec![25]);
/// let k = 3u64;
/// assert_eq!(pool.map(move |x: u64| x + k, [1u64]), Err(PoolError::Captures));
/// # Ok::<(), PoolError>(())
/// ```
pub trait TaskFn<A, R>: Fn(A) -> R + Copy + 'static {}

impl<A, R, F: Fn(A) -> R + Copy + 'static> TaskFn<A, R> for F {}

/// How `f` reaches the workers: `(address, trampoline)`. A zero-sized `F`
/// travels as its trampoline alone (address 0), which calls it inlined; a
/// `fn(A) -> R` pointer as its address, called through [`wire::call1`].
fn task_fn<A: Pod, R: Pod, F: TaskFn<A, R>>(f: F) -> Result<(usize, wire::Trampoline), PoolError> {
    const {
        assert!(
            size_of::<F>() == 0 || size_of::<F>() == size_of::<fn(A) -> R>(),
            "a pool task must be a fn item, a fn pointer or a closure that captures nothing"
        );
    }
    if size_of::<F>() == 0 {
        return Ok((0, wire::call_item::<A, R, F>));
    }
    if std::any::TypeId::of::<F>() == std::any::TypeId::of::<fn(A) -> R>() {
        // SAFETY: `F` is `fn(A) -> R` (same type id), so this copies the
        // pointer.
        let p: fn(A) -> R = unsafe { std::mem::transmute_copy(&f) };
        return Ok((p as usize, wire::call1::<A, R>));
    }
    Err(PoolError::Captures)
}

/// Writes the next items of `it` into the cells of `out` (`size_of::<A>()`
/// bytes each, not zero) until either ends; returns how many it wrote.
///
/// A function of its own: its `&mut` parameters tell the compiler that the
/// iterator's state and the cells do not overlap, so the state stays in
/// registers instead of being stored back after every item.
fn write_args<A: Pod, I: Iterator<Item = A>>(it: &mut I, out: &mut [u8]) -> usize {
    let size = size_of::<A>();
    if size == 0 {
        return 0;
    }
    let mut filled = 0;
    for (cell, a) in out.chunks_exact_mut(size).zip(it) {
        cell.copy_from_slice(bytemuck::bytes_of(&a));
        filled += 1;
    }
    filled
}

/// Python's default chunk size for `n` tasks over `workers` workers.
fn python_chunksize(n: usize, workers: usize) -> usize {
    let d = workers.max(1) * 4;
    n.div_ceil(d).max(1)
}

fn sizes_ok(inner: &Inner, arg: usize, res: usize) -> Result<usize, PoolError> {
    let max = inner.max_items(arg, res);
    if max == 0 {
        return Err(PoolError::TooLarge {
            needed: arg.max(res),
            max: inner.cfg.message_size,
        });
    }
    Ok(max)
}

impl Pool {
    /// A pool of `processes` forked workers (0: one per CPU), refusing when the
    /// parent runs other threads.
    ///
    /// ```no_run
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        PoolBuilder::default().processes(processes).build()
    }

    /// A builder for the other options.
    ///
    /// ```no_run
    /// let pool = multiproc::pool::Pool::builder().processes(1).build()?;
    /// # drop(pool);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Number of workers the pool keeps.
    ///
    /// ```no_run
    /// let pool = multiproc::pool::Pool::new(3)?;
    /// assert_eq!(pool.processes(), 3);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.inner.cfg.processes
    }

    /// The pids of the live workers (after reaping and replacing dead ones).
    ///
    /// ```no_run
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// assert_eq!(pool.pids().len(), 2);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn pids(&self) -> Vec<u32> {
        self.inner.pids()
    }

    fn spec(
        &self,
        func: usize,
        tramp: wire::Trampoline,
        arg_size: usize,
        res_size: usize,
        n: usize,
        chunksize: Option<usize>,
    ) -> Result<Spec, PoolError> {
        let max = sizes_ok(&self.inner, arg_size, res_size)?;
        let chunk = chunksize
            .unwrap_or_else(|| python_chunksize(n, self.processes()))
            .clamp(1, max);
        Ok(Spec {
            func,
            tramp: tramp as usize,
            arg_size,
            res_size,
            n,
            chunk,
        })
    }

    /// Submits `f` over owned arguments (the job feeds itself from them).
    fn submit_map<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: Vec<A>,
        chunksize: Option<usize>,
        on_done: Option<OnDone>,
        track: bool,
    ) -> Result<u64, PoolError> {
        let (asz, rsz) = (size_of::<A>(), size_of::<R>());
        let n = args.len();
        let (func, tramp) = task_fn(f)?;
        let spec = self.spec(func, tramp, asz, rsz, n, chunksize)?;
        let feed: Box<Feed> = Box::new(move |first, count, out: &mut [u8]| {
            if let Some(src) = args.get(first..first + count) {
                if asz > 0 && out.len() == count * asz {
                    out.copy_from_slice(bytemuck::cast_slice(src));
                }
            }
        });
        self.inner.submit(
            spec,
            Box::new(engine::Results::<R>::new(n)),
            Some(feed),
            on_done,
            track,
        )
    }

    fn submit_star<A: Pod + Send, B: Pod + Send, R: Pod + Send>(
        &self,
        f: fn(A, B) -> R,
        args: Vec<(A, B)>,
        chunksize: Option<usize>,
    ) -> Result<u64, PoolError> {
        let (asz, rsz) = (size_of::<A>() + size_of::<B>(), size_of::<R>());
        let n = args.len();
        let spec = self.spec(f as usize, wire::call2::<A, B, R>, asz, rsz, n, chunksize)?;
        let feed: Box<Feed> = Box::new(move |first, count, out: &mut [u8]| {
            if asz == 0 {
                return;
            }
            let src = args.iter().skip(first).take(count);
            for ((a, b), dst) in src.zip(out.chunks_exact_mut(asz)) {
                let (da, db) = dst.split_at_mut(size_of::<A>());
                da.copy_from_slice(bytemuck::bytes_of(a));
                db.copy_from_slice(bytemuck::bytes_of(b));
            }
        });
        self.inner.submit(
            spec,
            Box::new(engine::Results::<R>::new(n)),
            Some(feed),
            None,
            false,
        )
    }

    /// Python's `map`: `f` over every argument, results in order. The first
    /// failed task (in order) is the error; use [`Pool::imap`] for each task's
    /// outcome.
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// assert_eq!(pool.map(square, 0..5u64)?, vec![0, 1, 4, 9, 16]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn map<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError> {
        self.map_chunked(f, args, 0)
    }

    /// [`Pool::map`] with an explicit chunk size (tasks per message; 0: the
    /// default rule).
    ///
    /// ```no_run
    /// fn inc(x: u32) -> u32 { x + 1 }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// assert_eq!(pool.map_chunked(inc, [1, 2, 3], 1)?, vec![2, 3, 4]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn map_chunked<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, PoolError> {
        let chunksize = (chunksize > 0).then_some(chunksize);
        let mut it = args.into_iter();
        // An iterator that knows its length (a range, a Vec) is read chunk by
        // chunk straight into the arena while this call drives the pool;
        // others are collected first.
        let n = match it.size_hint() {
            (lo, Some(hi)) if lo == hi => lo,
            _ => {
                let job = self.submit_map(f, it.collect(), chunksize, None, false)?;
                let _guard = Release(&self.inner, job);
                return collect_vec(&self.inner, job, None);
            }
        };
        let (asz, rsz) = (size_of::<A>(), size_of::<R>());
        let (func, tramp) = task_fn(f)?;
        let spec = self.spec(func, tramp, asz, rsz, n, chunksize)?;
        let job = self.inner.submit(
            spec,
            Box::new(engine::Results::<R>::new(n)),
            None,
            None,
            false,
        )?;
        let _guard = Release(&self.inner, job);
        // How many items the iterator really yielded (`n + 1`: more than it
        // promised); checked once the job is done.
        let mut yielded = 0usize;
        let mut feed = |first: usize, count: usize, out: &mut [u8]| {
            let filled = if asz == 0 {
                it.by_ref().take(count).count()
            } else {
                write_args(&mut it, out)
            };
            yielded = yielded.saturating_add(filled);
            // An iterator that yields fewer items than it promised: pad, so
            // every task has an argument (and a result slot); the map then
            // fails with `LengthMismatch`.
            if let Some(rest) = out.get_mut(filled.saturating_mul(asz)..) {
                rest.fill(0);
            }
            if first.saturating_add(count) >= n && filled == count && it.next().is_some() {
                yielded = yielded.saturating_add(1);
            }
        };
        let out = collect_vec(&self.inner, job, Some((job, &mut feed)));
        if out.is_ok() && yielded != n {
            return Err(PoolError::LengthMismatch {
                promised: n,
                yielded,
            });
        }
        out
    }

    /// Python's `map_async`: [`Pool::map`] without waiting. Python's
    /// `callback` and `error_callback` arguments have no counterpart here:
    /// act on the handle's [`AsyncResult::get`], or use
    /// [`Pool::apply_async_with`] per task.
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// let r = pool.map_async(square, 0..4u64)?;
    /// assert_eq!(r.get()?, vec![0, 1, 4, 9]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn map_async<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError> {
        let job = self.submit_map(f, args.into_iter().collect(), None, None, false)?;
        Ok(AsyncResult::new(&self.inner, job, decode_vec::<R>))
    }

    /// Python's `imap`: each task's outcome, in argument order, as they become
    /// available. The arguments are collected first (the iterator must end).
    /// Unlike Python's `imap` (chunk size 1), the default chunk size is
    /// [`Pool::map`]'s.
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// let v: Result<Vec<u64>, _> = pool.imap(square, 0..4u64)?.collect();
    /// assert_eq!(v?, vec![0, 1, 4, 9]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn imap<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Imap<R>, PoolError> {
        self.imap_chunked(f, args, 0)
    }

    /// [`Pool::imap`] with an explicit chunk size (0: the default rule).
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// let first = pool.imap_chunked(square, 0..100u64, 10)?.next();
    /// assert_eq!(first, Some(Ok(0)));
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn imap_chunked<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Imap<R>, PoolError> {
        self.imap_inner(f, args, chunksize, true)
    }

    fn imap_inner<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: impl IntoIterator<Item = A>,
        chunksize: usize,
        ordered: bool,
    ) -> Result<Imap<R>, PoolError> {
        let args: Vec<A> = args.into_iter().collect();
        let n = args.len();
        let job = self.submit_map(
            f,
            args,
            (chunksize > 0).then_some(chunksize),
            None,
            !ordered,
        )?;
        Ok(Imap {
            inner: Arc::clone(&self.inner),
            job,
            next: 0,
            n,
            ordered,
            decode: item_pod::<R>,
            _r: PhantomData,
        })
    }

    /// Python's `imap_unordered`: each task's outcome as it completes.
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// let mut v: Vec<u64> = pool.imap_unordered(square, 0..4u64)?.map(Result::unwrap).collect();
    /// v.sort();
    /// assert_eq!(v, vec![0, 1, 4, 9]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn imap_unordered<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Imap<R>, PoolError> {
        self.imap_unordered_chunked(f, args, 0)
    }

    /// [`Pool::imap_unordered`] with an explicit chunk size (0: the default
    /// rule).
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// assert_eq!(pool.imap_unordered_chunked(square, 0..10u64, 1)?.count(), 10);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn imap_unordered_chunked<A: Pod + Send, R: Pod + Send, F: TaskFn<A, R>>(
        &self,
        f: F,
        args: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Imap<R>, PoolError> {
        self.imap_inner(f, args, chunksize, false)
    }

    /// Python's `starmap` for two-argument functions: `f(a, b)` for every pair,
    /// results in order; the first failed task is the error.
    ///
    /// ```no_run
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, vec![3, 7]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn starmap<A: Pod + Send, B: Pod + Send, R: Pod + Send>(
        &self,
        f: fn(A, B) -> R,
        args: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>, PoolError> {
        self.starmap_chunked(f, args, 0)
    }

    /// [`Pool::starmap`] with an explicit chunk size (0: the default rule).
    ///
    /// ```no_run
    /// fn mul(a: u64, b: u64) -> u64 { a * b }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// assert_eq!(pool.starmap_chunked(mul, [(2, 3), (4, 5)], 1)?, vec![6, 20]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn starmap_chunked<A: Pod + Send, B: Pod + Send, R: Pod + Send>(
        &self,
        f: fn(A, B) -> R,
        args: impl IntoIterator<Item = (A, B)>,
        chunksize: usize,
    ) -> Result<Vec<R>, PoolError> {
        let args: Vec<(A, B)> = args.into_iter().collect();
        let job = self.submit_star(f, args, (chunksize > 0).then_some(chunksize))?;
        let _guard = Release(&self.inner, job);
        collect_vec(&self.inner, job, None)
    }

    /// Python's `apply`: runs `f(arg)` in a worker and waits for the result.
    ///
    /// ```no_run
    /// fn double(x: i32) -> i32 { 2 * x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// assert_eq!(pool.apply(double, 21)?, 42);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn apply<A: Pod + Send, R: Pod + Send>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<R, PoolError> {
        self.apply_async(f, arg)?.get()
    }

    /// Python's `apply_async`: runs `f(arg)` in a worker; the handle gives the
    /// result.
    ///
    /// ```no_run
    /// fn double(x: i32) -> i32 { 2 * x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// let r = pool.apply_async(double, 21)?;
    /// r.wait();
    /// assert_eq!(r.successful(), Some(true));
    /// assert_eq!(r.get()?, 42);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn apply_async<A: Pod + Send, R: Pod + Send>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<AsyncResult<R>, PoolError> {
        let job = self.submit_map(f, vec![arg], Some(1), None, false)?;
        Ok(AsyncResult::new(&self.inner, job, decode_one::<R>))
    }

    /// [`Pool::apply_async`] with Python's `callback` (given the result) and
    /// `error_callback` (given the error). **Callbacks run only while some
    /// thread is inside a pool method** (`get`, `wait`, `ready`, `map`,
    /// `join`, ...): the pool has no thread of its own, unlike Python's
    /// result-handler thread, so a task that finished while nobody drove the
    /// pool has its callback run at the next such call. Exactly one of them
    /// runs, once, in this process, on the thread driving the pool when the
    /// task completes (see the [module docs](self#progress-and-callbacks)); also when the pool
    /// is terminated first ([`PoolError::Terminated`]). If `callback` or
    /// `error_callback` panics, the other callbacks completing with it still
    /// run, then the panic resumes in the pool method that ran it.
    ///
    /// ```no_run
    /// use std::sync::{Arc, Mutex};
    /// fn double(x: i32) -> i32 { 2 * x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// let got = Arc::new(Mutex::new(None));
    /// let g = Arc::clone(&got);
    /// let r = pool.apply_async_with(double, 21, move |v| *g.lock().unwrap() = Some(v), |e| panic!("{e}"))?;
    /// r.wait();
    /// assert_eq!(*got.lock().unwrap(), Some(42));
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn apply_async_with<A: Pod + Send, R: Pod + Send>(
        &self,
        f: fn(A) -> R,
        arg: A,
        callback: impl FnOnce(R) + Send + 'static,
        error_callback: impl FnOnce(PoolError) + Send + 'static,
    ) -> Result<AsyncResult<R>, PoolError> {
        let on_done: OnDone = Box::new(move |job: &mut Job| {
            let run: Box<dyn FnOnce() + Send> = match job.item::<R>(0) {
                Some(Ok(r)) => Box::new(move || callback(r)),
                Some(Err(e)) => Box::new(move || error_callback(e)),
                None => return None,
            };
            Some(run)
        });
        let job = self.submit_map(f, vec![arg], Some(1), Some(on_done), false)?;
        Ok(AsyncResult::new(&self.inner, job, decode_one::<R>))
    }

    /// `ProcessPoolExecutor.submit`: [`Pool::apply_async`] under its
    /// `concurrent.futures` name; combine with [`as_completed`].
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// let f = pool.submit(square, 9)?;
    /// assert_eq!(f.get()?, 81);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn submit<A: Pod + Send, R: Pod + Send>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<AsyncResult<R>, PoolError> {
        self.apply_async(f, arg)
    }

    /// Python's `close`: no more tasks; those submitted still run.
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// pool.close();
    /// assert_eq!(pool.apply(square, 2), Err(multiproc::pool::PoolError::Closed));
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// Python's `join`: after [`Pool::close`], waits until every submitted task
    /// has a result (running callbacks), then lets the workers exit and reaps
    /// them. [`PoolError::NotClosed`] before `close`.
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// let r = pool.apply_async(square, 3)?;
    /// pool.close();
    /// pool.join()?;
    /// assert!(r.ready());
    /// assert!(pool.pids().is_empty());
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn join(&self) -> Result<(), PoolError> {
        self.inner.join()
    }

    /// Python's `terminate`: kills (SIGKILL) and reaps every worker now; tasks
    /// without a result get [`PoolError::Terminated`]. Dropping the pool does
    /// the same.
    ///
    /// ```no_run
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// pool.terminate();
    /// assert!(pool.pids().is_empty());
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn terminate(&self) {
        self.inner.terminate();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.terminate();
    }
}

/// Forgets a job when a blocking call ends.
struct Release<'a>(&'a Inner, u64);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// `timeout` from now; `None` (no deadline) when that is past what an
/// `Instant` can hold (`Duration::MAX`, say), where `Instant + Duration`
/// would panic.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

fn decode_one<R: Pod>(job: &mut Job) -> Result<R, PoolError> {
    job.item::<R>(0).unwrap_or(Err(PoolError::Terminated))
}

fn decode_vec<R: Pod>(job: &mut Job) -> Result<Vec<R>, PoolError> {
    if let Some(e) = job.first_error() {
        return Err(e);
    }
    if !job.is_done() {
        return Err(PoolError::Terminated);
    }
    let store = job.store.take().ok_or(PoolError::Terminated)?;
    let results = store
        .into_any()
        .downcast::<engine::Results<R>>()
        .map_err(|_| PoolError::Terminated)?;
    // SAFETY: the job is done with no failed item, so every item is `OK` and
    // was written.
    Ok(unsafe { results.finish() })
}

fn collect_vec<R: Pod>(
    inner: &Inner,
    job: u64,
    local: engine::Local<'_>,
) -> Result<Vec<R>, PoolError> {
    inner.drive(None, local, |st| {
        let j = st.jobs.get_mut(&job)?;
        j.is_done().then(|| decode_vec::<R>(j))
    })?
}

/// The pending result of [`Pool::apply_async`], [`Pool::submit`] or
/// [`Pool::map_async`] (Python's `AsyncResult`, `concurrent.futures.Future`).
///
/// Waiting on it drives the pool (see the
/// [module docs](self#progress-and-callbacks)).
pub struct AsyncResult<T> {
    inner: Arc<Inner>,
    job: u64,
    decode: fn(&mut Job) -> Result<T, PoolError>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for AsyncResult<T> {
    fn drop(&mut self) {
        self.inner.release(self.job);
    }
}

impl<T> AsyncResult<T> {
    fn new(inner: &Arc<Inner>, job: u64, decode: fn(&mut Job) -> Result<T, PoolError>) -> Self {
        AsyncResult {
            inner: Arc::clone(inner),
            job,
            decode,
        }
    }

    fn until(&self, deadline: Option<Instant>) -> Result<T, PoolError> {
        let decode = self.decode;
        self.inner
            .drive(deadline, None, |st| match st.jobs.get_mut(&self.job) {
                Some(j) if j.is_done() => Some(decode(j)),
                Some(_) => None,
                None => Some(Err(PoolError::Terminated)),
            })?
    }

    /// Waits for the result (again on later calls for `Pod` results; a
    /// [`Pool::map_async`] vector is handed out once, later calls get
    /// [`PoolError::Terminated`]).
    ///
    /// ```no_run
    /// fn neg(x: i64) -> i64 { -x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// assert_eq!(pool.apply_async(neg, 5)?.get()?, -5);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn get(&self) -> Result<T, PoolError> {
        self.until(None)
    }

    /// Waits at most `timeout`: [`PoolError::Timeout`] if the task has not
    /// finished (it goes on; ask again later).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// fn neg(x: i64) -> i64 { -x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// let r = pool.apply_async(neg, 5)?;
    /// assert_eq!(r.get_timeout(Duration::from_secs(10))?, -5);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, PoolError> {
        self.until(deadline_after(timeout))
    }

    /// Whether the task has finished (collects what arrived, never blocks).
    ///
    /// ```no_run
    /// fn neg(x: i64) -> i64 { -x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// let r = pool.apply_async(neg, 5)?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.inner
            .drive(Some(Instant::now()), None, |st| {
                Some(st.jobs.get(&self.job).is_none_or(Job::is_done))
            })
            .unwrap_or(false)
    }

    /// Python's `successful`: `None` while not ready, then whether every task
    /// succeeded.
    ///
    /// ```no_run
    /// fn boom(_: u8) -> u8 { panic!("no") }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// let r = pool.apply_async(boom, 0)?;
    /// r.wait();
    /// assert_eq!(r.successful(), Some(false));
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn successful(&self) -> Option<bool> {
        self.inner
            .drive(Some(Instant::now()), None, |st| {
                Some(match st.jobs.get(&self.job) {
                    Some(j) if j.is_done() => Some(j.errors.is_empty()),
                    Some(_) => None,
                    None => Some(false),
                })
            })
            .unwrap_or(None)
    }

    /// Waits until the task has finished.
    ///
    /// ```no_run
    /// fn neg(x: i64) -> i64 { -x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// let r = pool.apply_async(neg, 5)?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn wait(&self) {
        let _ = self.inner.drive(None, None, |st| {
            st.jobs
                .get(&self.job)
                .is_none_or(Job::is_done)
                .then_some(())
        });
    }

    /// Waits at most `timeout`; whether the task has finished.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// fn neg(x: i64) -> i64 { -x }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// let r = pool.apply_async(neg, 5)?;
    /// assert!(r.wait_timeout(Duration::from_secs(10)));
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.inner
            .drive(deadline_after(timeout), None, |st| {
                st.jobs
                    .get(&self.job)
                    .is_none_or(Job::is_done)
                    .then_some(())
            })
            .is_ok()
    }
}

/// `concurrent.futures.as_completed`: yields each handle once its task has
/// finished, in completion order, driving the pool while it waits. Handles
/// may come from several pools: each is then driven in turn, for slices of
/// at most 16 ms, so a task of one pool is seen at most that late.
///
/// ```no_run
/// use multiproc::pool::{as_completed, Pool};
/// fn square(x: u64) -> u64 { x * x }
/// let pool = Pool::new(2)?;
/// let futures: Vec<_> = (0..4u64).map(|x| pool.submit(square, x)).collect::<Result<_, _>>()?;
/// let mut got: Vec<u64> = as_completed(futures).map(|f| f.get().unwrap()).collect();
/// got.sort();
/// assert_eq!(got, vec![0, 1, 4, 9]);
/// # Ok::<(), multiproc::pool::PoolError>(())
/// ```
pub fn as_completed<T>(handles: impl IntoIterator<Item = AsyncResult<T>>) -> AsCompleted<T> {
    AsCompleted {
        pending: handles.into_iter().collect(),
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<T> {
    pending: Vec<AsyncResult<T>>,
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = AsyncResult<T>;

    fn next(&mut self) -> Option<AsyncResult<T>> {
        let first = self.pending.first()?;
        let inner = Arc::clone(&first.inner);
        let one_pool = self.pending.iter().all(|h| Arc::ptr_eq(&h.inner, &inner));
        // Handles of several pools: drive each in turn for a slice that
        // grows from 1 ms to 16 ms (a pool only makes progress while driven,
        // and each waits on its own result queue).
        let mut slice = Duration::from_millis(1);
        loop {
            for (k, h) in self.pending.iter().enumerate() {
                if self.pending[..k]
                    .iter()
                    .any(|e| Arc::ptr_eq(&e.inner, &h.inner))
                {
                    continue; // that pool was driven this round already
                }
                let inner = Arc::clone(&h.inner);
                let pending = &self.pending;
                let mine = |h: &AsyncResult<T>| Arc::ptr_eq(&h.inner, &inner);
                let deadline = if one_pool {
                    None
                } else {
                    deadline_after(slice)
                };
                let found = inner.drive(deadline, None, |st| {
                    pending
                        .iter()
                        .position(|h| mine(h) && st.jobs.get(&h.job).is_none_or(Job::is_done))
                });
                let i = match found {
                    Ok(i) => i,
                    Err(PoolError::Timeout) => continue,
                    // The pool is gone (terminated, or inherited across a
                    // fork): its first handle reports that from `get`.
                    Err(_) => pending.iter().position(mine).unwrap_or(0),
                };
                return Some(self.pending.swap_remove(i));
            }
            slice = (slice * 2).min(Duration::from_millis(16));
        }
    }
}

/// Results of [`Pool::imap`] (in order) or [`Pool::imap_unordered`] (as they
/// complete): one `Result` per task. Iterating drives the pool; dropping it
/// early lets the remaining tasks finish unobserved.
pub struct Imap<R> {
    inner: Arc<Inner>,
    job: u64,
    next: usize,
    n: usize,
    ordered: bool,
    decode: fn(&mut Job, usize) -> Option<Result<R, PoolError>>,
    _r: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Imap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("next", &self.next)
            .field("len", &self.n)
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl<R> Drop for Imap<R> {
    fn drop(&mut self) {
        self.inner.release(self.job);
    }
}

impl<R> Iterator for Imap<R> {
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Result<R, PoolError>> {
        if self.next >= self.n {
            return None;
        }
        let (job, i, ordered, decode) = (self.job, self.next, self.ordered, self.decode);
        let r = self.inner.drive(None, None, |st| {
            let Some(j) = st.jobs.get_mut(&job) else {
                return Some(Err(PoolError::Terminated));
            };
            if ordered {
                decode(j, i)
            } else {
                let k = j.completed.pop_front()?;
                decode(j, k)
            }
        });
        self.next += 1;
        Some(r.unwrap_or_else(Err))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.n - self.next;
        (left, Some(left))
    }
}

impl<R> ExactSizeIterator for Imap<R> {}

fn item_pod<R: Pod>(job: &mut Job, i: usize) -> Option<Result<R, PoolError>> {
    job.item::<R>(i)
}
