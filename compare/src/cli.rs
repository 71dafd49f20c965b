//! Command-line options.

use std::path::PathBuf;
use std::time::Duration;

use super::payload::KNOWN_SIZES;
use super::plumbing::Res;

/// The usage text.
pub const HELP: &str = "\
compare: how multiproc compares with pipes, Unix sockets, Python's multiprocessing,
crossbeam, raw_sync and std on this machine. Prints a table; writes CSV, JSON and
SVG charts.

usage: cargo run --release -p compare [--no-default-features] -- [options]
       (--no-default-features: without the iceoryx2, ipc-channel and shmem-ipc rows)

  --runs N         measured runs per figure, interleaved across rows (default 3, at least 2;
                   5 with --load)
  --time MS        measured time per run and row (default 200; 1000 with --load)
  --warmup MS      unrecorded warm-up before each run (default 50)
  --sizes LIST     message sizes, a subset of 8,64,1024 (default all)
  --only LIST      sections: latency,throughput,sync,pool,instr (default all)
  --out DIR        where CSV, JSON and SVG go (default target/compare)
  --python EXE     interpreter for the multiprocessing rows (default python3)
  --no-python      skip the Python rows
  --load N         run N CPU-bound processes (busy loops, normal priority) during
                   every row, to measure a busy machine (default 0). A 200 ms window is
                   short against the scheduler's time slices, so --load also makes the
                   defaults 5 runs x 1000 ms (--runs and --time still override)
  --instr          count instructions per put+get pair with valgrind (the `instr`
                   section; on by default except with --quick or an --only list
                   without it; skipped with a note where valgrind is absent)
  --no-instr       leave the instruction counts out
  --quick          tiny runs (2 x 5 ms): checks that every row works; numbers are noise
  -h, --help       this text

A longer, more precise run: --runs 5 --time 1000 (about 7 minutes).";

/// Which sections to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sections {
    /// Round-trip latency.
    pub latency: bool,
    /// Throughput 1 -> 1 and 2 -> 2.
    pub throughput: bool,
    /// Events, conditions, locks.
    pub sync: bool,
    /// Pool map of tiny tasks (`pool.rs`).
    pub pool: bool,
    /// Instructions per put+get pair under callgrind (`instr.rs`).
    pub instr: bool,
}

/// Parsed options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured runs per figure.
    pub runs: usize,
    /// Measured time per run.
    pub time: Duration,
    /// Warm-up before each run.
    pub warmup: Duration,
    /// Message sizes.
    pub sizes: Vec<usize>,
    /// Sections to run.
    pub only: Sections,
    /// Output directory.
    pub out: PathBuf,
    /// Python interpreter (`None`: skip).
    pub python: Option<String>,
    /// `--quick` was given.
    pub quick: bool,
    /// CPU-bound processes to run during every row (`--load`).
    pub load: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            runs: 3,
            time: Duration::from_millis(200),
            warmup: Duration::from_millis(50),
            sizes: KNOWN_SIZES.to_vec(),
            only: Sections {
                latency: true,
                throughput: true,
                sync: true,
                pool: true,
                instr: true,
            },
            // The workspace's target directory (this crate sits one level below).
            out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/compare")),
            python: Some("python3".to_owned()),
            quick: false,
            load: 0,
        }
    }
}

fn millis(v: &str, flag: &str) -> Res<Duration> {
    let ms: u64 = v
        .parse()
        .map_err(|_| format!("{flag} wants milliseconds, got {v:?}"))?;
    Ok(Duration::from_millis(ms))
}

/// `--runs` default under `--load`.
pub const LOAD_RUNS: usize = 5;
/// `--time` default under `--load`.
pub const LOAD_TIME: Duration = Duration::from_millis(1000);

/// Whether an `--only` list in `args` names `section`.
fn only_given(args: &[String], section: &str) -> bool {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let list = match a.strip_prefix("--only=") {
            Some(v) => Some(v.to_owned()),
            None if a == "--only" => it.next().cloned(),
            None => None,
        };
        if list.is_some_and(|l| l.split(',').any(|p| p.trim() == section)) {
            return true;
        }
    }
    false
}

/// Parses `args` (without the program name); `None` for `--help`.
pub fn parse(args: &[String]) -> Res<Option<Options>> {
    let mut o = Options::default();
    let (mut runs, mut time, mut warmup) = (None, None, None);
    let mut instr: Option<bool> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Res<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value").into()),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            "--quick" => o.quick = true,
            "--no-python" => o.python = None,
            "--instr" => instr = Some(true),
            "--no-instr" => instr = Some(false),
            "--runs" => {
                let v = value()?;
                runs = Some(
                    v.parse()
                        .map_err(|_| format!("--runs wants a count, got {v:?}"))?,
                );
            }
            "--time" => time = Some(millis(&value()?, flag)?),
            "--warmup" => warmup = Some(millis(&value()?, flag)?),
            "--load" => {
                let v = value()?;
                o.load = v
                    .parse()
                    .map_err(|_| format!("--load wants a count of processes, got {v:?}"))?;
                if o.load > 256 {
                    return Err(format!(
                        "--load {} is more hogs than anyone needs (at most 256)",
                        o.load
                    )
                    .into());
                }
            }
            "--out" => o.out = PathBuf::from(value()?),
            "--python" => o.python = Some(value()?),
            "--sizes" => {
                let v = value()?;
                let mut sizes = Vec::new();
                for s in v.split(',') {
                    let n: usize = s
                        .trim()
                        .parse()
                        .map_err(|_| format!("--sizes: {s:?} is not a number"))?;
                    if !KNOWN_SIZES.contains(&n) {
                        return Err(format!("--sizes: {n} is not one of {KNOWN_SIZES:?}").into());
                    }
                    if !sizes.contains(&n) {
                        sizes.push(n);
                    }
                }
                sizes.sort_unstable();
                o.sizes = sizes;
            }
            "--only" => {
                let v = value()?;
                let mut s = Sections {
                    latency: false,
                    throughput: false,
                    sync: false,
                    pool: false,
                    instr: false,
                };
                for part in v.split(',') {
                    match part.trim() {
                        "latency" => s.latency = true,
                        "throughput" => s.throughput = true,
                        "sync" => s.sync = true,
                        "pool" => s.pool = true,
                        "instr" => s.instr = true,
                        other => return Err(format!("--only: unknown section {other:?}").into()),
                    }
                }
                o.only = s;
            }
            other => return Err(format!("unknown option {other:?} (see --help)").into()),
        }
    }
    if o.quick {
        o.runs = 2;
        o.time = Duration::from_millis(5);
        o.warmup = Duration::from_millis(1);
    } else if o.load > 0 {
        // Under load a row gets the CPU in scheduler slices of several
        // milliseconds: longer windows and more runs keep one unlucky run
        // from being the median.
        o.runs = LOAD_RUNS;
        o.time = LOAD_TIME;
    }
    // --quick checks structure: the instruction counts run there only when
    // asked for (by --instr or --only instr).
    if o.quick && instr.is_none() && !only_given(args, "instr") {
        o.only.instr = false;
    }
    if let Some(on) = instr {
        o.only.instr = on;
    }
    o.runs = runs.unwrap_or(o.runs);
    o.time = time.unwrap_or(o.time);
    o.warmup = warmup.unwrap_or(o.warmup);
    if o.runs < 2 {
        return Err(
            "--runs must be at least 2: figures are medians over runs, never one run".into(),
        );
    }
    if o.time.is_zero() {
        return Err("--time must be positive".into());
    }
    if o.sizes.is_empty() {
        return Err("--sizes is empty".into());
    }
    Ok(Some(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_flags() {
        let o = parse(&args(&["--runs", "5", "--time=300", "--sizes", "1024,8"]))
            .expect("valid")
            .expect("not help");
        assert_eq!(o.runs, 5);
        assert_eq!(o.time, Duration::from_millis(300));
        assert_eq!(o.sizes, vec![8, 1024]);
        assert_eq!(o.load, 0);
        let l = parse(&args(&["--load", "4"]))
            .expect("valid")
            .expect("not help");
        assert_eq!(l.load, 4);
        assert!(parse(&args(&["--load", "x"])).is_err());
        assert!(parse(&args(&["--load"])).is_err());
        assert!(parse(&args(&["--help"])).expect("valid").is_none());
        assert!(parse(&args(&["--runs", "1"])).is_err());
        assert!(parse(&args(&["--sizes", "100"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
        let q = parse(&args(&["--quick"]))
            .expect("valid")
            .expect("not help");
        assert_eq!((q.runs, q.time), (2, Duration::from_millis(5)));
        assert!(!q.only.instr, "--quick leaves the instruction counts out");
    }

    #[test]
    fn load_lengthens_the_windows_unless_told_otherwise() {
        let d = parse(&args(&[])).expect("valid").expect("not help");
        assert_eq!((d.runs, d.time), (3, Duration::from_millis(200)));
        let l = parse(&args(&["--load", "2"]))
            .expect("valid")
            .expect("not help");
        assert_eq!((l.runs, l.time), (LOAD_RUNS, LOAD_TIME));
        let o = parse(&args(&["--load", "2", "--runs", "3", "--time", "300"]))
            .expect("valid")
            .expect("not help");
        assert_eq!((o.runs, o.time), (3, Duration::from_millis(300)));
        let q = parse(&args(&["--load", "2", "--quick"]))
            .expect("valid")
            .expect("not help");
        assert_eq!((q.runs, q.time), (2, Duration::from_millis(5)));
    }

    #[test]
    fn instr_is_a_section_and_a_flag() {
        let d = parse(&args(&[])).expect("valid").expect("not help");
        assert!(d.only.instr, "on in a full run");
        let o = parse(&args(&["--only", "latency"]))
            .expect("valid")
            .expect("not help");
        assert!(!o.only.instr, "an --only list without it leaves it out");
        let i = parse(&args(&["--quick", "--only=instr"]))
            .expect("valid")
            .expect("not help");
        assert!(i.only.instr && !i.only.latency);
        let f = parse(&args(&["--quick", "--only", "sync", "--instr"]))
            .expect("valid")
            .expect("not help");
        assert!(f.only.instr && f.only.sync);
        let n = parse(&args(&["--no-instr"]))
            .expect("valid")
            .expect("not help");
        assert!(!n.only.instr);
    }
}
