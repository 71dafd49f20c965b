//! The `pool` section: per-task cost of a process pool's `map` over many tiny
//! `u64 -> u64` tasks (1,000,000; 20,000 with `--quick`), one worker per CPU,
//! default chunk size everywhere:
//!
//! * `multiproc Pool.map`: [`multiproc::pool::Pool::map`] over a range;
//! * `rayon par_iter map (threads)`: `into_par_iter().map().collect()`, threads
//!   of one process, the floor;
//! * `Python multiprocessing.Pool.map`: CPython's `Pool(cpus).map(f, range(n))`
//!   (fork start method, default chunk size), timed inside the interpreter
//!   around `map` only, one fresh interpreter per run.
//!
//! Runs are interleaved (round 1 runs every row once, then round 2, ...). A
//! Rust run repeats the map for `--time` (at least twice) and its figure is
//! the run's total time over its total tasks; Python's run is one map. Every
//! result vector is checked against the sequential one (Python checks its own,
//! and exits non-zero otherwise). The figures are medians over runs with the
//! range of the per-run figures; the ratio column compares medians of this
//! run of the program.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use multiproc::pool::Pool;
use rayon::prelude::*;

use super::cli::Options;
use super::plumbing::{Res, watchdog};
use super::python::Python;
use super::stats::Spread;

/// Row names, in table order; the first is the reference.
pub const ROWS: [&str; 3] = [
    "multiproc Pool.map",
    "rayon par_iter map (threads)",
    "Python multiprocessing.Pool.map",
];

/// The task (Python's is the same arithmetic on unbounded ints, masked).
fn tiny(x: u64) -> u64 {
    x.wrapping_mul(x) ^ 0x5555
}

const SCRIPT: &str = r#"
import multiprocessing as mp, sys, time
def f(x):
    return ((x * x) & 0xFFFFFFFFFFFFFFFF) ^ 0x5555
if __name__ == "__main__":
    mp.set_start_method("fork")
    n, procs = int(sys.argv[1]), int(sys.argv[2])
    with mp.Pool(procs) as p:
        p.map(f, range(1000))
        t = time.perf_counter()
        r = p.map(f, range(n))
        secs = time.perf_counter() - t
        m = n - 1
        if len(r) != n or r[m] != (((m * m) & 0xFFFFFFFFFFFFFFFF) ^ 0x5555):
            sys.exit("wrong results")
    print(secs)
"#;

/// One Python run: seconds spent in one `map` of `n` tasks.
fn python_run(py: &Python, n: u64, procs: usize) -> Res<f64> {
    let _armed = watchdog::arm("python multiprocessing.Pool.map");
    let mut child = Command::new(&py.exe)
        .args(["-c", SCRIPT, &n.to_string(), &procs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("start {}: {e}", py.exe))?;
    let pgid = child.id();
    let limit = Duration::from_secs(120);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > limit {
            // SAFETY: kill(2) with a negative pid signals the script's own
            // process group (created by `process_group(0)` above).
            unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!("python Pool.map did not finish within {limit:?}").into());
        }
        watchdog::tick();
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut text)?;
    }
    if !status.success() {
        return Err(format!("python Pool.map failed ({status})").into());
    }
    Ok(text
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("python output {text:?}: {e}"))?)
}

/// One Rust run: repeats `map` for at least `time` (and twice); nanoseconds
/// per task.
fn rust_run(time: Duration, n: u64, want: &[u64], map: &dyn Fn() -> Res<Vec<u64>>) -> Res<f64> {
    let _armed = watchdog::arm("pool map");
    let (mut spent, mut maps) = (Duration::ZERO, 0u64);
    while maps < 2 || spent < time {
        let t = Instant::now();
        let got = map()?;
        spent += t.elapsed();
        if got != want {
            return Err("wrong map results".into());
        }
        maps += 1;
        watchdog::tick();
    }
    Ok(spent.as_nanos() as f64 / (maps * n) as f64)
}

/// Measures the section and prints its table to `out` (and `pool.csv` in the
/// output directory).
pub fn run(opts: &Options, python: &Result<Python, String>, out: &mut dyn Write) -> Res {
    let n: u64 = if opts.quick { 20_000 } else { 1_000_000 };
    let procs = std::thread::available_parallelism().map_or(1, |p| p.get());
    // SAFETY: this program runs helper threads (watchdog, pipe readers); the
    // pool's tasks only do arithmetic and take no lock, and the workers run
    // nothing else.
    let pool = unsafe { Pool::builder().processes(procs).fork_unchecked() }
        .build()
        .map_err(|e| format!("pool: {e}"))?;
    let want: Vec<u64> = (0..n).map(tiny).collect();
    // Warm-up, unrecorded (workers touch their pages, rayon starts threads).
    let _ = rust_run(opts.warmup, n, &want, &|| Ok(pool.map(tiny, 0..n)?))?;
    let mut ns: [Vec<f64>; 3] = Default::default();
    let mut py_missing = None;
    if let Err(why) = python {
        py_missing = Some(why.clone());
    }
    for round in 0..opts.runs {
        eprint!("compare: pool round {}/{} ", round + 1, opts.runs);
        ns[0].push(rust_run(
            opts.time,
            n,
            &want,
            &|| Ok(pool.map(tiny, 0..n)?),
        )?);
        eprint!(".");
        ns[1].push(rust_run(opts.time, n, &want, &|| {
            Ok((0..n).into_par_iter().map(tiny).collect())
        })?);
        eprint!(".");
        if let Ok(py) = python {
            ns[2].push(python_run(py, n, procs)? * 1e9 / n as f64);
            eprint!("p");
        }
        eprintln!();
    }
    drop(pool);

    let spreads: Vec<Option<Spread>> = ns
        .iter()
        .map(|v| (!v.is_empty()).then(|| Spread::of(v)))
        .collect();
    let reference = spreads[0].map(|s| s.median);
    writeln!(out)?;
    writeln!(
        out,
        "Pool map, {n} tiny u64 -> u64 tasks, {procs} workers, default chunk size ({} runs)",
        opts.runs
    )?;
    writeln!(
        out,
        "  {:<34} {:>12} {:>20} {:>14} {:>16}",
        "", "ns/task", "range", "tasks/s", "vs multiproc"
    )?;
    let mut csv =
        String::from("row,tasks,workers,ns_per_task_median,ns_min,ns_max,tasks_per_sec\n");
    for (i, name) in ROWS.iter().enumerate() {
        match spreads[i] {
            Some(s) => {
                let ratio = match reference {
                    _ if i == 0 => "reference".to_owned(),
                    Some(r) if s.median >= r => format!("{:.1}x slower", s.median / r),
                    Some(r) => format!("{:.1}x faster", r / s.median),
                    None => String::new(),
                };
                writeln!(
                    out,
                    "  {:<34} {:>12.2} {:>20} {:>14.3e} {:>16}",
                    name,
                    s.median,
                    format!("{:.2}-{:.2}", s.min, s.max),
                    1e9 / s.median,
                    ratio
                )?;
                csv.push_str(&format!(
                    "{name},{n},{procs},{:.3},{:.3},{:.3},{:.0}\n",
                    s.median,
                    s.min,
                    s.max,
                    1e9 / s.median
                ));
            }
            None => {
                let why = py_missing.as_deref().unwrap_or("not measured");
                writeln!(out, "  {name:<34} {why}")?;
            }
        }
    }
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| format!("create {}: {e}", opts.out.display()))?;
    let path = opts.out.join("pool.csv");
    std::fs::write(&path, csv).map_err(|e| format!("write {}: {e}", path.display()))?;
    writeln!(out, "wrote {}", path.display())?;
    Ok(())
}
