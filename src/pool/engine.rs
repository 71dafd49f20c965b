//! The parent's side of a pool: chunk bookkeeping, sending, receiving, reaping
//! and replacing workers.
//!
//! There is no background thread: the pool makes progress while a caller is in
//! one of its methods (a `map`, an iterator's `next`, an [`AsyncResult`]'s
//! `get`/`wait`/`ready`, `join`). Keeping the parent single-threaded is what lets
//! it fork replacement workers safely. Callbacks run on the thread that drives
//! the pool when their task completes, with no pool lock held.
//!
//! Every chunk the parent sends goes to one worker's inbox and is remembered in
//! that worker's `sent` list until its result arrives. When a worker is reaped,
//! the parent first drains the result queue (a dead process publishes nothing
//! more), then reads the worker's [`Running`] line: the task it names gets
//! [`PoolError::WorkerDied`], and every other task of that worker's unfinished
//! chunks goes back to the front of the backlog. A replacement worker starts with
//! a fresh inbox at the same index, so the pool keeps its size.
//!
//! [`AsyncResult`]: super::AsyncResult

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::PoolError;
use super::wire::{
    MAX_CHUNK_ITEMS, OK, PANICKED, RESULT_HEADER, RESULT_MAGIC, ResultHeader, Running, TASK_HEADER,
    TaskHeader, read,
};
use super::worker::{self, EXIT_INIT_PANICKED};
use crate::BytesQueue;
use crate::process::ExitStatus;
use crate::sys::process as sys;

/// How long a waiting caller sleeps on the result queue before checking for
/// dead workers.
const SLICE: Duration = Duration::from_millis(2);
/// Chunks queued per worker (its inbox holds twice as many). Deep enough that
/// workers rarely wait for the parent to be scheduled on a busy machine.
pub(crate) const DEPTH: usize = 8;
/// Item state in a job.
const PENDING: u8 = 0;
const FAILED: u8 = 3;

/// How workers are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `fork`, refused when the parent runs other threads.
    Fork,
    /// `fork` without the thread check (the builder's `unsafe` method).
    ForkUnchecked,
}

pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) message_size: usize,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) initializer: Option<fn()>,
    pub(crate) method: Method,
    pub(crate) key: u64,
}

/// A job's typed result storage, seen as bytes while results arrive.
pub(crate) trait Store: Send {
    fn bytes(&mut self) -> &mut [u8];
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<R: bytemuck::Pod + Send> Store for Vec<R> {
    fn bytes(&mut self) -> &mut [u8] {
        if size_of::<R>() == 0 {
            return &mut [];
        }
        bytemuck::cast_slice_mut(self.as_mut_slice())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Runs when a job completes; returns what to call with no lock held.
pub(crate) type OnDone = Box<dyn FnOnce(&mut Job) -> Option<Box<dyn FnOnce() + Send>> + Send>;

pub(crate) struct Job {
    pub(crate) res_size: usize,
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
                let store = self.store.as_mut()?;
                let bytes = store.bytes();
                if size == 0 {
                    return Some(Ok(R::zeroed()));
                }
                Some(Ok(read(bytes.get(i * size..)?)?))
            }
            _ => Some(Err(self
                .errors
                .get(&i)
                .cloned()
                .unwrap_or(PoolError::Panicked(String::new())))),
        }
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
}

struct Chunk {
    job: u64,
    first: usize,
    count: usize,
    msg: Vec<u8>,
    worker: Option<usize>,
}

struct Worker {
    pid: Option<u32>,
    inbox: BytesQueue,
    sent: VecDeque<u64>,
    total_sent: u64,
}

pub(crate) struct State {
    workers: Vec<Worker>,
    running: Running,
    backlog: VecDeque<u64>,
    chunks: HashMap<u64, Chunk>,
    pub(crate) jobs: HashMap<u64, Job>,
    next_chunk: u64,
    next_job: u64,
    pub(crate) closed: bool,
    joining: bool,
    terminated: bool,
    broken: Option<PoolError>,
    last_reap: Instant,
    buf: Vec<u8>,
    spare: Vec<Vec<u8>>,
    callbacks: Vec<Box<dyn FnOnce() + Send>>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    results: BytesQueue,
    pub(crate) cfg: Config,
    /// The process that started the workers; a forked copy of the pool in
    /// another process must not kill or reap them.
    owner: u32,
}

fn region_error(e: crate::Error) -> PoolError {
    PoolError::Start(e.to_string())
}

fn new_inbox(cfg: &Config) -> Result<BytesQueue, PoolError> {
    BytesQueue::anonymous(DEPTH * 2, cfg.message_size).map_err(region_error)
}

impl Inner {
    pub(crate) fn new(cfg: Config) -> Result<Inner, PoolError> {
        let results = BytesQueue::anonymous(
            (cfg.processes * DEPTH).next_power_of_two().max(2),
            cfg.message_size,
        )
        .map_err(region_error)?;
        let running = Running::new(cfg.processes).map_err(|e| PoolError::Start(e.to_string()))?;
        let mut workers = Vec::with_capacity(cfg.processes);
        for _ in 0..cfg.processes {
            workers.push(Worker {
                pid: None,
                inbox: new_inbox(&cfg)?,
                sent: VecDeque::new(),
                total_sent: 0,
            });
        }
        let mut state = State {
            workers,
            running,
            backlog: VecDeque::new(),
            chunks: HashMap::new(),
            jobs: HashMap::new(),
            next_chunk: 1,
            next_job: 1,
            closed: false,
            joining: false,
            terminated: false,
            broken: None,
            last_reap: Instant::now(),
            buf: vec![0u8; cfg.message_size],
            spare: Vec::new(),
            callbacks: Vec::new(),
        };
        let inner_results = results.clone();
        for i in 0..cfg.processes {
            if let Err(e) = start_worker(&cfg, &mut state, &inner_results, i) {
                // Workers already started are killed by State's cleanup below.
                kill_all(&mut state);
                return Err(e);
            }
        }
        Ok(Inner {
            state: Mutex::new(state),
            results,
            cfg,
            owner: sys::pid(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a callback never happens under the lock; a poisoned lock can
        // only come from a bug in this module: keep going with the state as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Largest number of tasks per chunk for these sizes.
    pub(crate) fn max_items(&self, arg_size: usize, res_size: usize) -> usize {
        let m = self.cfg.message_size;
        let by_args = match arg_size {
            0 => MAX_CHUNK_ITEMS,
            a => m.saturating_sub(TASK_HEADER) / a,
        };
        let by_results =
            m.saturating_sub(RESULT_HEADER + super::wire::PANIC_RESERVE) / (res_size + 1);
        by_args.min(by_results).min(MAX_CHUNK_ITEMS)
    }

    /// Registers a job of `n` tasks whose packed arguments `arg(i)` writes, in
    /// chunks of `chunk` tasks. Returns the job id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit(
        &self,
        func: usize,
        tramp: usize,
        arg_size: usize,
        res_size: usize,
        n: usize,
        chunk: usize,
        store: Box<dyn Store>,
        mut write_args: impl FnMut(usize, usize, &mut Vec<u8>),
        on_done: Option<OnDone>,
        track: bool,
    ) -> Result<u64, PoolError> {
        if sys::pid() != self.owner {
            return Err(PoolError::Terminated);
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
        let mut job = Job {
            res_size,
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
        }
        let broken = st.broken.is_some();
        let chunk = chunk.max(1);
        let mut first = 0;
        while first < n && !broken {
            let count = chunk.min(n - first);
            let mut msg = buffer(&mut st, TASK_HEADER + count * arg_size);
            msg.resize(TASK_HEADER, 0);
            write_args(first, count, &mut msg);
            let cid = st.next_chunk;
            st.next_chunk += 1;
            let h = TaskHeader {
                magic: super::wire::TASK_MAGIC,
                count: count as u32,
                chunk: cid,
                arg_size: arg_size as u32,
                res_size: res_size as u32,
                func: func as u64,
                tramp: tramp as u64,
                check: 0,
            };
            seal(&mut msg, h, self.cfg.key);
            st.chunks.insert(
                cid,
                Chunk {
                    job: id,
                    first,
                    count,
                    msg,
                    worker: None,
                },
            );
            st.backlog.push_back(cid);
            first += count;
        }
        let done = job.is_done();
        st.jobs.insert(id, job);
        if done {
            complete(&mut st, id);
        }
        self.pump(&mut st);
        let cbs = std::mem::take(&mut st.callbacks);
        drop(st);
        for cb in cbs {
            cb();
        }
        Ok(id)
    }

    /// Drives the pool until `ready` returns `Some` (checked with the lock held
    /// after every step) or `deadline` passes (`Err(Timeout)`).
    pub(crate) fn drive<T>(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, PoolError> {
        if sys::pid() != self.owner {
            return Err(PoolError::Terminated);
        }
        loop {
            let mut st = self.lock();
            self.pump(&mut st);
            let r = ready(&mut st);
            let cbs = std::mem::take(&mut st.callbacks);
            if !cbs.is_empty() {
                drop(st);
                for cb in cbs {
                    cb();
                }
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
            let mut buf = std::mem::take(&mut st.buf);
            drop(st);
            let got = self.results.get_into_timeout(&mut buf, wait);
            let mut st = self.lock();
            if let Ok(n) = got {
                if let Some(msg) = buf.get(..n) {
                    on_result(&mut st, msg);
                }
            }
            st.buf = buf;
        }
    }

    /// One step without waiting: receive what arrived, reap if due, send.
    fn pump(&self, st: &mut State) {
        if st.terminated {
            return;
        }
        self.receive_all(st);
        if st.last_reap.elapsed() >= SLICE {
            st.last_reap = Instant::now();
            self.reap(st);
        }
        send_backlog(st, self.cfg.max_tasks);
    }

    fn receive_all(&self, st: &mut State) {
        let mut buf = std::mem::take(&mut st.buf);
        while let Ok(n) = self.results.try_get_into(&mut buf) {
            if let Some(msg) = buf.get(..n) {
                on_result(st, msg);
            }
        }
        st.buf = buf;
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
            match new_inbox(&self.cfg) {
                Ok(inbox) => st.workers[i].inbox = inbox,
                Err(e) => {
                    self.replacement_failed(st, e);
                    continue;
                }
            }
            if let Err(e) = start_worker(&self.cfg, st, &self.results, i) {
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
        let mut front = Vec::new();
        for cid in sent {
            let Some(mut c) = st.chunks.remove(&cid) else {
                continue;
            };
            c.worker = None;
            match running {
                Some((rc, k)) if rc == cid && k < c.count => {
                    let signal = match status {
                        ExitStatus::Signal(s) => Some(s),
                        ExitStatus::Code(_) => None,
                    };
                    let code = match status {
                        ExitStatus::Code(c) => Some(c),
                        ExitStatus::Signal(_) => None,
                    };
                    if let Some(job) = st.jobs.get_mut(&c.job) {
                        job.fail(c.first + k, PoolError::WorkerDied { pid, signal, code });
                    }
                    let job_id = c.job;
                    if job_done(st, job_id) {
                        complete(st, job_id);
                    }
                    for (from, count) in [(0, k), (k + 1, c.count - k - 1)] {
                        if count > 0 {
                            let id = self.split(st, &c, from, count);
                            front.push(id);
                        }
                    }
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

    /// A new chunk holding tasks `from..from + count` of chunk `c`.
    fn split(&self, st: &mut State, c: &Chunk, from: usize, count: usize) -> u64 {
        let id = st.next_chunk;
        st.next_chunk += 1;
        let mut h: TaskHeader = read(&c.msg).unwrap_or_else(bytemuck::Zeroable::zeroed);
        let a = h.arg_size as usize;
        let mut msg = buffer(st, TASK_HEADER + count * a);
        msg.resize(TASK_HEADER, 0);
        let start = TASK_HEADER + from * a;
        msg.extend_from_slice(c.msg.get(start..start + count * a).unwrap_or(&[]));
        h.count = count as u32;
        h.chunk = id;
        seal(&mut msg, h, self.cfg.key);
        st.chunks.insert(
            id,
            Chunk {
                job: c.job,
                first: c.first + from,
                count,
                msg,
                worker: None,
            },
        );
        id
    }

    /// Handle dropped: forget the job once it completed.
    pub(crate) fn release(&self, job: u64) {
        let mut st = self.lock();
        if let Some(j) = st.jobs.get_mut(&job) {
            if j.is_done() {
                st.jobs.remove(&job);
            } else {
                j.dropped = true;
            }
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
        let r = self.drive(None, |st| {
            (st.terminated || st.chunks.is_empty()).then_some(())
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
        for cb in cbs {
            cb();
        }
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut st = self.lock();
        self.pump(&mut st);
        st.workers.iter().filter_map(|w| w.pid).collect()
    }
}

fn seal(msg: &mut [u8], mut h: TaskHeader, key: u64) {
    h.check = h.checksum(key);
    if let Some(dst) = msg.get_mut(..TASK_HEADER) {
        dst.copy_from_slice(bytemuck::bytes_of(&h));
    }
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

/// Fails every unfinished task with `e` and stops sending.
fn break_pool(st: &mut State, e: PoolError) {
    st.broken = Some(e.clone());
    st.backlog.clear();
    for w in &mut st.workers {
        w.sent.clear();
    }
    let chunks: Vec<Chunk> = st.chunks.drain().map(|(_, c)| c).collect();
    for c in chunks {
        if let Some(job) = st.jobs.get_mut(&c.job) {
            for i in c.first..c.first + c.count {
                job.fail(i, e.clone());
            }
        }
        if job_done(st, c.job) {
            complete(st, c.job);
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

fn start_worker(
    cfg: &Config,
    st: &mut State,
    results: &BytesQueue,
    i: usize,
) -> Result<(), PoolError> {
    if cfg.method == Method::Fork {
        crate::process::check_single_threaded().map_err(|e| PoolError::Start(e.to_string()))?;
    }
    let args = worker::WorkerArgs {
        index: i,
        inbox: &st.workers[i].inbox,
        results,
        running: &st.running,
        key: cfg.key,
        max_tasks: cfg.max_tasks,
        initializer: cfg.initializer,
        relocate: 0,
    };
    // SAFETY: with `Method::Fork` the thread check above passed; with
    // `ForkUnchecked` the builder's caller took on the post-fork restrictions in
    // an `unsafe` call. The child runs only the worker loop and the user's
    // plain functions, then `_exit`s; it is a daemon, so it dies with the parent.
    let pid = unsafe {
        crate::process::fork_child(true, cfg.method == Method::Fork, || worker::run(&args))
    }
    .map_err(|e| PoolError::Start(e.to_string()))?;
    let w = &mut st.workers[i];
    w.pid = Some(pid);
    w.sent.clear();
    w.total_sent = 0;
    Ok(())
}

/// Sends backlog chunks to the workers with the fewest queued, up to [`DEPTH`]
/// each (and never past a worker's `max_tasks`).
fn send_backlog(st: &mut State, max_tasks: Option<u64>) {
    while let Some(&cid) = st.backlog.front() {
        let mut best: Option<usize> = None;
        for (i, w) in st.workers.iter().enumerate() {
            if w.pid.is_none()
                || w.sent.len() >= DEPTH
                || max_tasks.is_some_and(|m| w.total_sent >= m)
            {
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
        if st.workers[i].inbox.try_put(&c.msg).is_err() {
            return;
        }
        c.worker = Some(i);
        st.backlog.pop_front();
        let w = &mut st.workers[i];
        w.sent.push_back(cid);
        w.total_sent += 1;
    }
}

/// Applies one result message from a worker.
fn on_result(st: &mut State, msg: &[u8]) {
    let Some(h) = read::<ResultHeader>(msg) else {
        return;
    };
    if h.magic != RESULT_MAGIC {
        return;
    }
    let Some(c) = st.chunks.get(&h.chunk) else {
        return;
    };
    let count = c.count;
    let Some(job) = st.jobs.get(&c.job) else {
        return;
    };
    let rs = job.res_size;
    let results_end = RESULT_HEADER + count * rs;
    if h.count as usize != count || h.res_size as usize != rs || msg.len() < results_end + count {
        return;
    }
    let Some(c) = st.chunks.remove(&h.chunk) else {
        return;
    };
    if let Some(w) = c.worker.and_then(|w| st.workers.get_mut(w)) {
        if let Some(pos) = w.sent.iter().position(|&x| x == h.chunk) {
            w.sent.remove(pos);
        }
    }
    let Some(job) = st.jobs.get_mut(&c.job) else {
        return;
    };
    let status = &msg[results_end..results_end + count];
    let mut messages: HashMap<usize, String> = HashMap::new();
    let mut p = &msg[results_end + count..];
    while p.len() >= 8 {
        let idx = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as usize;
        let len = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as usize;
        let Some(text) = p.get(8..8 + len) else {
            break;
        };
        messages.insert(idx, String::from_utf8_lossy(text).into_owned());
        p = &p[8 + len..];
    }
    if let Some(store) = job.store.as_mut() {
        let dst = store.bytes();
        let src = &msg[RESULT_HEADER..results_end];
        if let Some(d) = dst.get_mut(c.first * rs..(c.first + count) * rs) {
            d.copy_from_slice(src);
        }
    }
    let all_pending = job
        .status
        .get(c.first..c.first + count)
        .is_some_and(|v| v.iter().all(|&s| s == PENDING));
    if all_pending && !job.track && status.iter().all(|&s| s == OK) {
        // The common case: every task of the chunk succeeded.
        job.status[c.first..c.first + count].fill(OK);
        job.remaining -= count;
    } else {
        for (k, &s) in status.iter().enumerate() {
            let i = c.first + k;
            if job.status.get(i) != Some(&PENDING) {
                continue;
            }
            if s == PANICKED || s != OK {
                let m = messages.remove(&k).unwrap_or_default();
                job.fail(i, PoolError::Panicked(m));
            } else {
                job.status[i] = OK;
                job.remaining -= 1;
                if job.track {
                    job.completed.push_back(i);
                }
            }
        }
    }
    if job.is_done() {
        complete(st, c.job);
    }
    recycle(st, c.msg);
}

/// Most spare message buffers kept for reuse.
const SPARE_BUFFERS: usize = 64;

/// Keeps a finished chunk's buffer for the next chunk (fresh allocations of
/// this size cost page faults on every `map`).
fn recycle(st: &mut State, mut msg: Vec<u8>) {
    if st.spare.len() < SPARE_BUFFERS {
        msg.clear();
        st.spare.push(msg);
    }
}

/// An empty buffer with room for `len` bytes.
fn buffer(st: &mut State, len: usize) -> Vec<u8> {
    let mut v = st.spare.pop().unwrap_or_default();
    v.reserve(len);
    v
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
