//! Many processes decrement one shared counter in a dict: the seeds' program.
//!
//! ```text
//! cargo run --release --example manager_dict
//! ```
//!
//! In Python this is `Manager().dict()` plus a `Lock`, because
//! `dic['count'] -= 1` is a read (one round trip to the manager's server
//! process), a subtraction, and a write (another round trip): two processes can
//! read the same value and one decrement is lost. Here the dict lives in shared
//! memory, so there is no server, and the decrement is done two ways:
//!
//! 1. `update(&key, |v| *v -= 1)`: one atomic read-modify-write, no user lock.
//! 2. the Python way, a `Lock` from the same `Manager` around `get` + `insert`.
//!
//! Both must end at exactly `START - PROCESSES * DECREMENTS`; the example
//! exits non-zero otherwise. Every object (the dict, the lock, a counter of
//! finished workers) is fetched by name from one `Manager`, as a process that
//! only knew the manager would do.

use std::error::Error;
use std::time::{Duration, Instant};

use multiproc::process::{self, ExitStatus};
use multiproc::{FixedStr, Manager};

/// Worker processes.
const PROCESSES: i64 = 8;
/// Decrements per worker and per method.
const DECREMENTS: i64 = 10_000;
/// The counter's start value.
const START: i64 = 100_000;
/// Time allowed for each worker before the run counts as stuck.
const WATCHDOG: Duration = Duration::from_secs(60);

type Key = FixedStr<16>;

fn key(s: &str) -> Result<Key, Box<dyn Error>> {
    Ok(FixedStr::try_new(s)?)
}

/// Worker body: decrements `count` with `update`, then `count_locked` under the
/// manager's lock, then bumps `finished`. Exit code 0 on success.
fn worker(m: &Manager) -> Result<(), Box<dyn Error>> {
    let dict = m.dict::<Key, i64>("dic", 16)?;
    let lock = m.lock("dic-lock")?;
    let finished = m.counter("finished", 0)?;
    let count = key("count")?;
    let locked = key("count_locked")?;
    for _ in 0..DECREMENTS {
        // 1. One atomic read-modify-write.
        dict.update(&count, |v| *v -= 1)?;
        // 2. Python's way: lock, read, write.
        let _guard = lock.lock().map_err(|e| e.without_guard())?;
        let v = dict.get(&locked)?.ok_or("count_locked missing")?;
        dict.insert(locked, v - 1).map_err(|e| e.without_item())?;
    }
    finished.fetch_add(1);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let m = Manager::anonymous(1 << 20)?;
    let dict = m.dict::<Key, i64>("dic", 16)?;
    dict.insert(key("count")?, START)
        .map_err(|e| e.without_item())?;
    dict.insert(key("count_locked")?, START)
        .map_err(|e| e.without_item())?;

    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 0..PROCESSES {
        let m = m.clone();
        // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
        children.push(unsafe {
            process::fork_unchecked(move || match worker(&m) {
                Ok(()) => 0,
                Err(_) => 1,
            })
        }?);
    }
    for child in children {
        match child.wait_timeout(WATCHDOG)? {
            Some(ExitStatus::Code(0)) => {}
            Some(status) => return Err(format!("worker failed: {status:?}").into()),
            None => {
                let _ = child.kill();
                return Err("worker stuck".into());
            }
        }
    }
    let elapsed = started.elapsed();

    let expected = START - PROCESSES * DECREMENTS;
    let with_update = dict.get(&key("count")?)?.ok_or("count missing")?;
    let with_lock = dict
        .get(&key("count_locked")?)?
        .ok_or("count_locked missing")?;
    let finished = m.counter("finished", 0)?.load();
    println!("objects in the manager: {:?}", m.names());
    println!("{PROCESSES} processes x {DECREMENTS} decrements from {START}, two ways:");
    println!("  dict.update(|v| *v -= 1):         {with_update} (expected {expected})");
    println!("  lock + dict.get + dict.insert:    {with_lock} (expected {expected})");
    println!("  workers finished: {finished}; wall time {elapsed:.2?}");
    if with_update != expected || with_lock != expected || finished != PROCESSES {
        return Err("lost updates".into());
    }
    Ok(())
}
