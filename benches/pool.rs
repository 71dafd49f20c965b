//! Per-task cost of a process pool's `map` over 1,000,000 tiny `u64 -> u64`
//! tasks, in one criterion run:
//!
//! * `multiproc_map`: [`multiproc::pool::Pool::map`] with the default chunk size
//!   (Python's rule, capped by what fits in one 1 MiB arena slot), one worker
//!   per CPU;
//! * `rayon_par_map`: rayon's `into_par_iter().map().collect()` on its global
//!   thread pool (threads, no processes: the floor);
//! * `python_pool_map`: CPython's `multiprocessing.Pool(cpus).map(f, range(n))`
//!   with its default chunk size, timed inside the interpreter around `map`
//!   only (interpreter and pool start-up excluded), via `python3 -c`.
//!
//! Every variant's results are checked (Rust's once before timing, Python's
//! last element after each map). Throughput is reported in elements, so
//! criterion prints tasks per second; the time per iteration divided by
//! 1,000,000 is the per-task cost.
//!
//! Run with `cargo bench -p multiproc-benches --bench pool -- --noplot`;
//! `MULTIPROC_BENCH_PYTHON` picks the interpreter (default `python3`; an empty
//! value skips Python).

// A benchmark has no caller to hand errors to: failing setup should abort loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use multiproc::pool::Pool;
use rayon::prelude::*;

const N: u64 = 1_000_000;

fn tiny(x: u64) -> u64 {
    x.wrapping_mul(x) ^ 0x5555
}

/// The Python side: `f` is the same arithmetic; prints the seconds spent in
/// `iters` calls of `map`.
const SCRIPT: &str = r#"
import multiprocessing as mp, sys, time
def f(x):
    return (x * x) ^ 0x5555
if __name__ == "__main__":
    mp.set_start_method("fork")
    n, iters, procs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with mp.Pool(procs) as p:
        p.map(f, range(1000))
        total = 0.0
        for _ in range(iters):
            t = time.perf_counter()
            r = p.map(f, range(n))
            total += time.perf_counter() - t
            assert len(r) == n and r[n - 1] == ((n - 1) * (n - 1)) ^ 0x5555
    print(total)
"#;

fn python() -> Option<String> {
    let exe = std::env::var("MULTIPROC_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    if exe.is_empty() {
        return None;
    }
    let ok = Command::new(&exe)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(exe)
}

fn python_map(exe: &str, iters: u64, procs: usize) -> Duration {
    let out = Command::new(exe)
        .args([
            "-c",
            SCRIPT,
            &N.to_string(),
            &iters.to_string(),
            &procs.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("python3");
    assert!(out.status.success(), "python failed");
    let secs: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("seconds");
    Duration::from_secs_f64(secs)
}

fn bench(c: &mut Criterion) {
    let procs = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: criterion and rayon run threads in this process; the tasks only do
    // arithmetic and take no lock.
    let pool = unsafe { Pool::builder().processes(procs).fork_unchecked() }
        .build()
        .unwrap();
    let want: Vec<u64> = (0..N).map(tiny).collect();

    let mut g = c.benchmark_group("pool_map_1m_tiny_tasks");
    g.throughput(Throughput::Elements(N))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    // Checked once here (as the Python script checks its last result), so the
    // timed loops measure the maps alone.
    assert!(pool.map(tiny, 0..N).unwrap() == want);
    assert!((0..N).into_par_iter().map(tiny).collect::<Vec<u64>>() == want);
    g.bench_function("multiproc_map", |b| {
        b.iter(|| pool.map(tiny, black_box(0..N)).unwrap())
    });
    g.bench_function("rayon_par_map", |b| {
        b.iter(|| {
            black_box(0..N)
                .into_par_iter()
                .map(tiny)
                .collect::<Vec<u64>>()
        })
    });
    if let Some(exe) = python() {
        g.measurement_time(Duration::from_secs(15));
        g.bench_function("python_pool_map", |b| {
            b.iter_custom(|iters| python_map(&exe, iters, procs))
        });
    } else {
        eprintln!("python_pool_map skipped: no interpreter");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
