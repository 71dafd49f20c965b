//! One process pool `map` of a tiny `u64 -> u64` function over many tasks,
//! for profilers (callgrind counts instructions per process, independent of
//! the machine's load) and quick timing.
//!
//! ```text
//! cargo run --release --example pool_map -- [tasks] [workers] [maps] [chunksize]
//! valgrind --tool=callgrind --trace-children=yes target/release/examples/pool_map 1000000 2 1
//! ```
//!
//! Defaults: 1,000,000 tasks, 2 workers, 1 map (after one warm-up map of the
//! same size), chunk size 0 (the default rule). Prints the best wall time per
//! task and checks every result.

use std::time::Instant;

use multiproc::pool::Pool;

fn tiny(x: u64) -> u64 {
    x.wrapping_mul(x) ^ 0x5555
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let workers: usize = args.next().map_or(Ok(2), |s| s.parse())?;
    let maps: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    let chunk: usize = args.next().map_or(Ok(0), |s| s.parse())?;
    let pool = Pool::new(workers)?;
    let want: Vec<u64> = (0..n).map(tiny).collect();
    if pool.map_chunked(tiny, 0..n, chunk)? != want {
        return Err("wrong results (warm-up)".into());
    }
    let mut best = f64::INFINITY;
    for _ in 0..maps {
        let t = Instant::now();
        let got = pool.map_chunked(tiny, 0..n, chunk)?;
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        if got != want {
            return Err("wrong results".into());
        }
        best = best.min(ns);
    }
    // Let the workers exit normally (a profiler writes their counts then).
    pool.close();
    pool.join()?;
    println!("{n} tasks, {workers} workers, best of {maps}: {best:.2} ns/task");
    Ok(())
}
