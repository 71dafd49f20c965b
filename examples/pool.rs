//! The seeds' `multiprocessing.Pool` programs, ported:
//!
//! 1. `pool.map(f, range(100))` of squares;
//! 2. `pool.apply_async(f, args, callback=...)` collecting results in a callback;
//! 3. `Pool(os.cpu_count() + 1)` doing I/O-like work (each task sleeps), which is
//!    worth more workers than CPUs;
//! 4. what Python cannot do: a worker killed mid-task fails that task only.
//!
//! Every result is checked; the program exits non-zero on any mismatch.
//!
//! ```text
//! cargo run --release --example pool
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multiproc::pool::{Pool, PoolError};

fn square(x: u64) -> u64 {
    x * x
}

fn cube(x: u64) -> u64 {
    x * x * x
}

/// Stands in for a network or disk wait.
fn fetch(id: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(20));
    id * 10
}

/// Dies (SIGKILL, as the OOM killer would) on 13.
fn fragile(x: u32) -> u32 {
    if x == 13 {
        // SAFETY: kill(2) on this worker's own pid.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    x + 1
}

fn check(what: &str, ok: bool) -> Result<(), Box<dyn std::error::Error>> {
    println!("{what}: {}", if ok { "ok" } else { "MISMATCH" });
    if ok {
        Ok(())
    } else {
        Err(format!("{what} mismatched").into())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. map of squares over 0..100.
    let pool = Pool::new(0)?;
    let squares = pool.map(square, 0..100u64)?;
    println!("squares[..10] = {:?}", &squares[..10]);
    check(
        "map(square, 0..100)",
        squares == (0..100u64).map(|x| x * x).collect::<Vec<_>>(),
    )?;

    // 2. apply_async with a callback that appends to a list.
    let collected = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for x in 0..20u64 {
        let c = Arc::clone(&collected);
        handles.push(pool.apply_async_with(
            cube,
            x,
            move |r| c.lock().map(|mut v| v.push(r)).unwrap_or(()),
            |e| eprintln!("task failed: {e}"),
        )?);
    }
    pool.close();
    pool.join()?;
    let mut got = collected.lock().map_err(|_| "poisoned")?.clone();
    got.sort_unstable();
    println!(
        "callback results: {} values, sum {}",
        got.len(),
        got.iter().sum::<u64>()
    );
    check(
        "apply_async + callback",
        got == (0..20u64).map(cube).collect::<Vec<_>>() && handles.iter().all(|h| h.ready()),
    )?;

    // 3. cpu_count + 1 workers for I/O-like tasks.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let io_pool = Pool::new(cpus + 1)?;
    let started = Instant::now();
    let ids: Vec<u32> = (0..4 * (cpus as u32 + 1)).collect();
    let fetched = io_pool.map_chunked(fetch, ids.clone(), 1)?;
    println!(
        "{} fetches of 20 ms on {} workers took {:?}",
        ids.len(),
        cpus + 1,
        started.elapsed()
    );
    check(
        "Pool(cpu_count + 1).map(fetch)",
        fetched == ids.iter().map(|i| i * 10).collect::<Vec<_>>(),
    )?;

    // 4. A worker killed mid-task: that task fails, the others succeed, the pool
    //    keeps its size.
    let results: Vec<Result<u32, PoolError>> = io_pool.imap(fragile, 0..30u32)?.collect();
    let failed: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    println!("task 13: {:?}", results[13]);
    check(
        "killed worker fails only its task",
        failed == [13]
            && results
                .iter()
                .enumerate()
                .all(|(i, r)| i == 13 || *r == Ok(i as u32 + 1))
            && io_pool.pids().len() == cpus + 1,
    )?;
    Ok(())
}
