//! A [`multiproc::JoinableQueue`] as a work queue: the parent hands out jobs to
//! two worker processes and waits until every job is *done*, not just taken.
//!
//! ```text
//! cargo run --release --example joinable
//! ```
//!
//! What it shows:
//!
//! * Every `put` counts one unfinished task; a worker calls `task_done()` after
//!   it has finished a job (here: after it has put the job's result on a result
//!   queue), and the parent's `join` returns once every task is done. So when
//!   `join` returns, every result is already there, although the workers are
//!   still running: the parent checks exactly that.
//! * `join` can be used again for a second batch of jobs.
//! * `task_done()` once too often is refused with
//!   `TaskDoneError::TooManyCalls` (Python raises `ValueError`), and changes
//!   nothing.
//! * Shutting down: after the last `join` the parent calls `shutdown()`, the
//!   workers' `get` returns `GetError::Closed`, and they exit with code 0.
//!
//! The parent uses `join_timeout` rather than `join`, and waits for each worker
//! with `wait_timeout`, so that a stuck run fails (killing the workers) instead of
//! hanging. Workers never print; they report through the result queue and their
//! exit code. The example exits non-zero if any check fails.

use std::error::Error;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use multiproc::process::{self, Child};
use multiproc::{GetError, JoinableQueue, Queue, TaskDoneError};

/// Worker processes.
const WORKERS: u32 = 2;
/// Jobs per batch; two batches are run.
const JOBS: u32 = 100;
/// Slots in the job queue: fewer than the jobs, so the parent's puts wait for
/// the workers now and then.
const CAPACITY: usize = 8;
/// Slots in the result queue: room for every result of both batches.
const RESULT_CAPACITY: usize = 256;
/// How long any single blocking step may take before the run counts as stuck.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Worker exit code: putting a result failed.
const CODE_PUT_FAILED: i32 = 2;
/// Worker exit code: `task_done` was refused although the worker had taken a job.
const CODE_TASK_DONE_REFUSED: i32 = 3;
/// Worker exit code: no job and no close for [`WATCHDOG`].
const CODE_GET_TIMEOUT: i32 = 4;

/// A job: square `n`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Job {
    id: u32,
    n: u32,
}

/// A finished job.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Done {
    id: u32,
    worker: u32,
    square: u64,
}

/// A worker: takes jobs until the queue is closed; marks each done after its
/// result is on `results`. Returns the exit code.
fn work(jobs: &JoinableQueue<Job>, results: &Queue<Done>, worker: u32) -> i32 {
    loop {
        match jobs.get_timeout(WATCHDOG) {
            Ok(job) => {
                let done = Done {
                    id: job.id,
                    worker,
                    square: u64::from(job.n) * u64::from(job.n),
                };
                if results.put_timeout(done, WATCHDOG).is_err() {
                    return CODE_PUT_FAILED;
                }
                if jobs.task_done().is_err() {
                    return CODE_TASK_DONE_REFUSED;
                }
            }
            Err(GetError::Closed) => return 0,
            Err(_) => return CODE_GET_TIMEOUT,
        }
    }
}

/// Waits for `child` for at most [`WATCHDOG`], killing it if it hangs; `Err`
/// unless it exited with code 0.
fn reap(worker: usize, child: Child) -> Result<(), String> {
    let pid = child.pid();
    match child.wait_timeout(WATCHDOG) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(format!("worker {worker} (pid {pid}) ended with {s:?}")),
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait_timeout(WATCHDOG);
            Err(format!("worker {worker} (pid {pid}) hung and was killed"))
        }
        Err(e) => Err(format!("waiting for worker {worker} (pid {pid}): {e}")),
    }
}

/// Puts jobs `first..first + JOBS`, joins, and checks that every result is in
/// `results` at that moment. Returns the results and any problems.
fn batch(jobs: &JoinableQueue<Job>, results: &Queue<Done>, first: u32) -> (Vec<Done>, Vec<String>) {
    let mut problems = Vec::new();
    for id in first..first + JOBS {
        if jobs.put_timeout(Job { id, n: id }, WATCHDOG).is_err() {
            problems.push(format!("could not put job {id}"));
            return (Vec::new(), problems);
        }
    }
    // `join()` with a watchdog: returns once every job put so far is done.
    if !jobs.join_timeout(WATCHDOG) {
        problems.push(format!(
            "join timed out with {} task(s) unfinished",
            jobs.unfinished()
        ));
        return (Vec::new(), problems);
    }
    println!("batch {first}..{}: all tasks done", first + JOBS);
    if jobs.unfinished() != 0 {
        problems.push(format!("{} unfinished after join", jobs.unfinished()));
    }
    // Every worker put its result before its task_done, so all are here now.
    let mut got = Vec::new();
    while let Ok(d) = results.try_get() {
        got.push(d);
    }
    let mut seen = vec![0u32; JOBS as usize];
    for d in &got {
        match d.id.checked_sub(first).filter(|&i| i < JOBS) {
            Some(i) => seen[i as usize] += 1,
            None => problems.push(format!("result for unknown job {}", d.id)),
        }
        if d.square != u64::from(d.id) * u64::from(d.id) {
            problems.push(format!("job {} came back as {}", d.id, d.square));
        }
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let twice = seen.iter().filter(|&&n| n > 1).count();
    if missing != 0 || twice != 0 {
        problems.push(format!(
            "after join: {missing} result(s) missing, {twice} duplicated"
        ));
    }
    let per_worker: Vec<String> = (0..WORKERS)
        .map(|w| {
            let n = got.iter().filter(|d| d.worker == w).count();
            format!("worker {w} did {n}")
        })
        .collect();
    println!("  {} results: {}", got.len(), per_worker.join(", "));
    (got, problems)
}

fn main() -> Result<(), Box<dyn Error>> {
    let jobs: JoinableQueue<Job> = JoinableQueue::anonymous(CAPACITY)?;
    let results: Queue<Done> = Queue::anonymous(RESULT_CAPACITY)?;
    let mut problems = Vec::new();

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        match process::fork(|| work(&jobs, &results, w)) {
            Ok(child) => workers.push(child),
            Err(e) => problems.push(format!("fork worker {w}: {e}")),
        }
    }

    let mut total = 0;
    if problems.is_empty() {
        for first in [0, JOBS] {
            let (got, p) = batch(&jobs, &results, first);
            total += got.len();
            problems.extend(p);
            if !problems.is_empty() {
                break;
            }
        }
    }

    // Nothing is unfinished, so one more task_done is refused and changes nothing.
    match jobs.task_done() {
        Err(TaskDoneError::TooManyCalls) if jobs.unfinished() == 0 => {
            println!("task_done() once too often: refused with TooManyCalls");
        }
        other => problems.push(format!(
            "extra task_done() gave {other:?}, {} unfinished",
            jobs.unfinished()
        )),
    }

    // Shut down: workers see GetError::Closed and exit 0.
    jobs.shutdown();
    for (w, child) in workers.into_iter().enumerate() {
        if let Err(e) = reap(w, child) {
            problems.push(e);
        }
    }
    let lost = jobs.stats().abandoned + results.stats().abandoned;
    if lost != 0 {
        problems.push(format!("{lost} message(s) abandoned"));
    }
    if !results.is_empty() {
        problems.push(format!("{} unexpected result(s) left", results.len()));
    }

    if problems.is_empty() {
        println!("{total} jobs done by {WORKERS} workers; workers shut down cleanly");
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}
