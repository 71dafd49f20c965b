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
//! run of the program. The last column is CPU time per task (all the
//! processes and threads of the row, from `/proc`: `schedstat` for the Rust
//! rows, clock ticks for Python's), which a busy machine disturbs much less
//! than wall time.

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
import multiprocessing as mp, os, sys, time
def f(x):
    return ((x * x) & 0xFFFFFFFFFFFFFFFF) ^ 0x5555
def cpu(pid):
    # utime + stime of a whole process, in seconds (clock ticks).
    with open("/proc/%d/stat" % pid) as s:
        fields = s.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
if __name__ == "__main__":
    mp.set_start_method("fork")
    n, procs = int(sys.argv[1]), int(sys.argv[2])
    with mp.Pool(procs) as p:
        p.map(f, range(1000))
        pids = [os.getpid()] + [w.pid for w in p._pool]
        c0 = sum(cpu(q) for q in pids)
        t = time.perf_counter()
        r = p.map(f, range(n))
        secs = time.perf_counter() - t
        c1 = sum(cpu(q) for q in pids)
        m = n - 1
        if len(r) != n or r[m] != (((m * m) & 0xFFFFFFFFFFFFFFFF) ^ 0x5555):
            sys.exit("wrong results")
    print(secs, c1 - c0)
"#;

/// CPU time (ns) a thread has run: the first field of its `schedstat`.
fn thread_cpu_ns(pid: u32, tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (ns) of every thread of process `pid`.
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .map(|tid| thread_cpu_ns(pid, tid))
        .sum()
}

/// One Python run: seconds spent in one `map` of `n` tasks, and the CPU
/// seconds the parent and its workers used meanwhile.
fn python_run(py: &Python, n: u64, procs: usize) -> Res<(f64, f64)> {
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
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next()) {
        (Some(Ok(secs)), Some(Ok(cpu))) => Ok((secs, cpu)),
        _ => Err(format!("python output {text:?}").into()),
    }
}

/// One Rust run: repeats `map` for at least `time` (and twice); nanoseconds
/// per task of wall time, and of CPU time as `cpu` counts it (called before
/// and after).
fn rust_run(
    time: Duration,
    n: u64,
    want: &[u64],
    map: &dyn Fn() -> Res<Vec<u64>>,
    cpu: &dyn Fn() -> u64,
) -> Res<(f64, f64)> {
    let _armed = watchdog::arm("pool map");
    let (mut spent, mut maps) = (Duration::ZERO, 0u64);
    let c0 = cpu();
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
    // The checks above ran on this thread too: a few percent of the CPU figure.
    let tasks = (maps * n) as f64;
    Ok((
        spent.as_nanos() as f64 / tasks,
        cpu().saturating_sub(c0) as f64 / tasks,
    ))
}

/// This thread's id (`gettid`).
fn multiproc_tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
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
    let me = std::process::id();
    let workers = pool.pids();
    // The calling thread (it runs the pool) and the workers.
    let pool_cpu = || {
        thread_cpu_ns(me, multiproc_tid()) + workers.iter().map(|&w| process_cpu_ns(w)).sum::<u64>()
    };
    let all_threads = || process_cpu_ns(me);
    // Warm-up, unrecorded (workers touch their pages, rayon starts threads).
    let _ = rust_run(
        opts.warmup,
        n,
        &want,
        &|| Ok(pool.map(tiny, 0..n)?),
        &pool_cpu,
    )?;
    let mut ns: [Vec<f64>; 3] = Default::default();
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut py_missing = None;
    if let Err(why) = python {
        py_missing = Some(why.clone());
    }
    for round in 0..opts.runs {
        eprint!("compare: pool round {}/{} ", round + 1, opts.runs);
        let (w, c) = rust_run(
            opts.time,
            n,
            &want,
            &|| Ok(pool.map(tiny, 0..n)?),
            &pool_cpu,
        )?;
        ns[0].push(w);
        cpu[0].push(c);
        eprint!(".");
        let par = || Ok((0..n).into_par_iter().map(tiny).collect());
        let (w, c) = rust_run(opts.time, n, &want, &par, &all_threads)?;
        ns[1].push(w);
        cpu[1].push(c);
        eprint!(".");
        if let Ok(py) = python {
            let (secs, cpu_secs) = python_run(py, n, procs)?;
            ns[2].push(secs * 1e9 / n as f64);
            cpu[2].push(cpu_secs * 1e9 / n as f64);
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
        "  {:<34} {:>12} {:>20} {:>14} {:>16} {:>14}",
        "", "ns/task", "range", "tasks/s", "vs multiproc", "CPU ns/task"
    )?;
    let mut csv = String::from(
        "row,tasks,workers,ns_per_task_median,ns_min,ns_max,tasks_per_sec,cpu_ns_per_task_median\n",
    );
    for (i, name) in ROWS.iter().enumerate() {
        match spreads[i] {
            Some(s) => {
                let ratio = match reference {
                    _ if i == 0 => "reference".to_owned(),
                    Some(r) if s.median >= r => format!("{:.1}x slower", s.median / r),
                    Some(r) => format!("{:.1}x faster", r / s.median),
                    None => String::new(),
                };
                let c = super::stats::median(&cpu[i]);
                writeln!(
                    out,
                    "  {:<34} {:>12.2} {:>20} {:>14.3e} {:>16} {:>14.2}",
                    name,
                    s.median,
                    format!("{:.2}-{:.2}", s.min, s.max),
                    1e9 / s.median,
                    ratio,
                    c
                )?;
                csv.push_str(&format!(
                    "{name},{n},{procs},{:.3},{:.3},{:.3},{:.0},{c:.3}\n",
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
