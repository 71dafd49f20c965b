//! The comparison program: plans the rows, runs the rounds, summarizes, and
//! writes the table, CSV, JSON and charts. `main.rs` calls [`run`] with the
//! command line; `tests/compare.rs` calls it with `--quick`.
//!
//! This is the `compare` workspace member (`publish = false`): the library's
//! manifest does not carry the comparison's dependencies.
//!
//! Method, shared by every row:
//!
//! * A row is measured in `--runs` runs. Runs are interleaved: round 1 runs
//!   every row once, then round 2, and so on, so a burst of load on the
//!   machine hits all rows alike instead of one row's every run.
//! * Every run forks fresh workers, warms up (`--warmup`, not recorded), then
//!   measures for `--time`. Figures are medians over the runs of the per-run
//!   figure; the spread is the range of the per-run medians (or rates).
//! * Workers are real processes (`multiproc::process::fork`), except in rows
//!   marked "threads". Every message is checked on arrival (sequence and
//!   bytes, see [`payload`]); any failure ends the program with an error.
//! * Ratios compare figures of the same run of this program, against the
//!   multiproc row named at the top of each table.

// The baselines (the floor, the bare ring, control blocks) need raw std atomics
// in mappings this program owns; the lint guards the crate's loom facade.
#![allow(
    clippy::disallowed_types,
    reason = "benchmark baselines use std atomics in their own shared mappings"
)]

mod charts;
mod cli;
mod hogs;
#[doc(hidden)]
pub mod instr;
mod latency;
mod machine;
mod mq;
mod payload;
mod peers;
mod plumbing;
mod pool;
mod python;
mod report;
mod stats;
mod syncprims;
mod throughput;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use hdrhistogram::Histogram;
use multiproc::{Pipe, Queue};

use latency::{ChanEnd, Fd, Floor, MpPipe, QueueBlocking, QueueSpin, Timing};
use plumbing::{Fds, Res};
use report::{Group, Row, Section};
use throughput::Mech;

pub use report::{Outcome, Report};

/// Latency rows measured here, in table order (Python and peers are added
/// around them).
const LATENCY_ROWS: [&str; 8] = [
    "multiproc Queue, spinning try_get",
    "multiproc Queue, blocking get",
    "multiproc spsc::channel, blocking recv",
    "multiproc Pipe",
    "pipe (write/read)",
    "Unix socket pair",
    mq::LATENCY_ROW,
    "floor: shared memory, no queue",
];

/// Index of the POSIX message queue row in [`LATENCY_ROWS`].
const MQ_ROW: usize = 6;

/// The reference row of each section, for the ratio column.
pub const LATENCY_REF: &str = LATENCY_ROWS[1];
/// See [`LATENCY_REF`].
pub const THROUGHPUT_REF: &str = "multiproc Queue (put/get)";
/// See [`LATENCY_REF`].
pub const WAKEUP_REF: &str = syncprims::WAKEUP_ROWS[0];
/// See [`LATENCY_REF`].
pub const LOCK_REF: &str = syncprims::LOCK_ROWS[0];

/// What one run of a row produced.
#[derive(Debug)]
enum Sample {
    Hist(Histogram<u64>),
    Rate(stats::Rate),
    Lock(stats::LockRun),
}

type Measure = Box<dyn Fn(Timing) -> Res<Sample>>;

/// A row to measure in every round.
struct Cell {
    group: Group,
    name: String,
    measure: Measure,
}

/// A row that is not measured, and why.
struct Absent {
    group: Group,
    name: String,
    why: String,
}

/// Pairs in the smaller of the two callgrind runs of each workload.
const INSTR_PAIRS: u64 = 20_000;
/// [`INSTR_PAIRS`] under `--quick`.
const INSTR_PAIRS_QUICK: u64 = 2_000;

/// Runs the comparison with `args` (no program name), writing the table to
/// `out` and progress to stderr. `Ok(None)` after `--help`. The instruction
/// counts re-execute this program (`main.rs` understands `--instr-worker`);
/// a caller that is not that program uses [`run_with_exe`].
pub fn run(args: &[String], out: &mut dyn Write) -> Res<Option<Report>> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    run_with_exe(args, out, &exe)
}

/// [`run`], re-executing `exe` (the `compare` binary) for the instruction
/// counts.
pub fn run_with_exe(
    args: &[String],
    out: &mut dyn Write,
    exe: &std::path::Path,
) -> Res<Option<Report>> {
    let Some(opts) = cli::parse(args)? else {
        writeln!(out, "{}", cli::HELP)?;
        return Ok(None);
    };
    let started = Instant::now();
    let mut machine = machine::probe();
    // Started after the probe: the load figure at start is the machine's own.
    let hogs = hogs::Hogs::start(opts.load)?;
    machine.hogs = hogs.count();
    let timer_ns = stats::timer_overhead_ns();
    let python = python::find(opts.python.as_deref());
    let t = Timing {
        warmup: opts.warmup,
        time: opts.time,
    };
    let (cells, mut absent) = plan(&opts, &python);

    let mut samples: Vec<Vec<Sample>> = cells.iter().map(|_| Vec::new()).collect();
    let mut py_rounds = Vec::new();
    let py_pairs: Vec<usize> = if opts.only.throughput {
        vec![1, 2]
    } else {
        vec![]
    };
    let python_wanted = opts.only.latency || opts.only.throughput;
    for round in 0..opts.runs {
        let round_start = Instant::now();
        eprint!("compare: round {}/{} ", round + 1, opts.runs);
        for (i, cell) in cells.iter().enumerate() {
            let s = (cell.measure)(t).map_err(|e| format!("{}: {e}", cell.name))?;
            samples[i].push(s);
            eprint!(".");
        }
        if let (Ok(py), true) = (&python, python_wanted) {
            let sizes = &opts.sizes;
            let r = python::round(py, sizes, &py_pairs, t)?;
            py_rounds.push(r);
            eprint!("p");
        }
        eprintln!(" {:.1} s", round_start.elapsed().as_secs_f64());
    }

    let mut rows = Vec::new();
    for (cell, s) in cells.iter().zip(samples) {
        rows.push(Row {
            group: cell.group,
            name: cell.name.clone(),
            outcome: summarize(s)?,
        });
    }
    rows.extend(python_rows(&opts, &python, py_rounds, &mut absent)?);
    for a in absent {
        rows.push(Row {
            group: a.group,
            name: a.name,
            outcome: Outcome::Missing(a.why),
        });
    }
    let report = Report {
        machine,
        python: python
            .as_ref()
            .ok()
            .filter(|_| python_wanted)
            .map(|p| p.version.clone()),
        runs: opts.runs,
        time: opts.time,
        warmup: opts.warmup,
        sizes: opts.sizes.clone(),
        quick: opts.quick,
        timer_ns,
        rows,
        instr: None,
        elapsed: Duration::ZERO,
    };
    let mut report = report.ordered(&opts);
    report.machine.load_end = machine::loadavg();
    drop(hogs);
    if opts.only.instr {
        // After the hogs are gone: counts do not depend on load, but
        // valgrind's run time does.
        let n = if opts.quick {
            INSTR_PAIRS_QUICK
        } else {
            INSTR_PAIRS
        };
        eprint!("compare: instruction counts ");
        report.instr = Some(instr::measure(exe, n)?);
        eprintln!();
    }
    report.elapsed = started.elapsed();
    report.write_table(out)?;
    if opts.only.pool {
        pool::run(&opts, &python, out)?;
    }
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| format!("create {}: {e}", opts.out.display()))?;
    let written = [
        report.write_csv(&opts.out.join("results.csv"))?,
        report.write_json(&opts.out.join("results.json"))?,
    ];
    let charts = charts::draw(&report, &opts.out)?;
    writeln!(out)?;
    writeln!(
        out,
        "wrote {} and {} charts ({}) in {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        charts.len(),
        charts
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", "),
        opts.out.display()
    )?;
    writeln!(out, "total time {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(Some(report))
}

/// Every measured row, and the rows that cannot run with the reason.
fn plan(opts: &cli::Options, python: &Result<python::Python, String>) -> (Vec<Cell>, Vec<Absent>) {
    let mut cells = Vec::new();
    let mut absent = Vec::new();
    let mut add = |group: Group, name: &str, m: Measure| {
        cells.push(Cell {
            group,
            name: name.to_owned(),
            measure: m,
        });
    };
    if opts.only.latency {
        for &size in &opts.sizes {
            let g = Group {
                section: Section::Latency,
                size,
            };
            for (i, name) in LATENCY_ROWS.iter().enumerate() {
                if i == MQ_ROW {
                    if let Err(why) = mq::Mq::available(size) {
                        absent.push(Absent {
                            group: g,
                            name: (*name).to_owned(),
                            why,
                        });
                        continue;
                    }
                }
                add(
                    g,
                    name,
                    Box::new(move |t| latency_run(i, size, t).map(Sample::Hist)),
                );
            }
            for (i, name) in peers::ROWS.iter().enumerate() {
                match peers::available() {
                    Ok(()) => add(
                        g,
                        name,
                        Box::new(move |t| peers::run(i, size, t).map(Sample::Hist)),
                    ),
                    Err(why) => absent.push(Absent {
                        group: g,
                        name: (*name).to_owned(),
                        why,
                    }),
                }
            }
        }
    }
    if opts.only.throughput {
        for pairs in [1, 2] {
            for &size in &opts.sizes {
                let g = Group {
                    section: Section::Throughput { pairs },
                    size,
                };
                for mech in Mech::ALL {
                    if let Some(why) = mech.unsupported(pairs) {
                        absent.push(Absent {
                            group: g,
                            name: mech.name().to_owned(),
                            why: why.to_owned(),
                        });
                        continue;
                    }
                    if mech == Mech::Mq {
                        if let Err(why) = mq::Mq::available(size) {
                            absent.push(Absent {
                                group: g,
                                name: mech.name().to_owned(),
                                why,
                            });
                            continue;
                        }
                    }
                    add(
                        g,
                        mech.name(),
                        Box::new(move |t| throughput::run(mech, size, pairs, t).map(Sample::Rate)),
                    );
                }
            }
        }
    }
    if opts.only.sync {
        let g = Group {
            section: Section::Wakeup,
            size: 8,
        };
        for (i, name) in syncprims::WAKEUP_ROWS.iter().enumerate() {
            add(
                g,
                name,
                Box::new(move |t| syncprims::wakeup(i, t).map(Sample::Hist)),
            );
        }
        let g = Group {
            section: Section::Lock,
            size: 8,
        };
        for (i, name) in syncprims::LOCK_ROWS.iter().enumerate() {
            add(
                g,
                name,
                Box::new(move |t| syncprims::lock(i, t).map(Sample::Lock)),
            );
        }
    }
    if let Err(why) = python {
        if opts.only.latency {
            for &size in &opts.sizes {
                for (_, name) in python::LATENCY_ROWS {
                    absent.push(Absent {
                        group: Group {
                            section: Section::Latency,
                            size,
                        },
                        name: name.to_owned(),
                        why: why.clone(),
                    });
                }
            }
        }
        if opts.only.throughput {
            for pairs in [1, 2] {
                for &size in &opts.sizes {
                    absent.push(Absent {
                        group: Group {
                            section: Section::Throughput { pairs },
                            size,
                        },
                        name: python::THROUGHPUT_ROW.to_owned(),
                        why: why.clone(),
                    });
                }
            }
        }
    }
    (cells, absent)
}

/// One run of latency row `i` of [`LATENCY_ROWS`].
fn latency_run(i: usize, size: usize, t: Timing) -> Res<Histogram<u64>> {
    match size {
        8 => latency_sized::<8>(i, t),
        64 => latency_sized::<64>(i, t),
        1024 => latency_sized::<1024>(i, t),
        s => Err(format!("unsupported message size {s}").into()),
    }
}

fn latency_sized<const S: usize>(i: usize, t: Timing) -> Res<Histogram<u64>>
where
    [u8; S]: Pod,
{
    let what = format!("latency {} {S} B", LATENCY_ROWS[i]);
    match i {
        0 | 1 => {
            let req = Queue::<[u8; S]>::anonymous(2)?;
            let resp = Queue::<[u8; S]>::anonymous(2)?;
            if i == 0 {
                let parent = QueueSpin {
                    tx: &req,
                    rx: &resp,
                };
                let child = QueueSpin {
                    tx: &resp,
                    rx: &req,
                };
                latency::processes(&what, S, t, parent, child)
            } else {
                let parent = QueueBlocking {
                    tx: &req,
                    rx: &resp,
                };
                let child = QueueBlocking {
                    tx: &resp,
                    rx: &req,
                };
                latency::processes(&what, S, t, parent, child)
            }
        }
        2 => {
            let (req_tx, req_rx) = multiproc::spsc::channel::<[u8; S]>(2)?;
            let (resp_tx, resp_rx) = multiproc::spsc::channel::<[u8; S]>(2)?;
            let parent = ChanEnd {
                tx: req_tx,
                rx: resp_rx,
            };
            let child = ChanEnd {
                tx: resp_tx,
                rx: req_rx,
            };
            latency::processes(&what, S, t, parent, child)
        }
        3 => {
            let (a, b) = Pipe::anonymous(2, S)?;
            latency::processes(&what, S, t, MpPipe(a), MpPipe(b))
        }
        4 | 5 => {
            let mut fds = Fds::default();
            let (parent, child) = if i == 4 {
                let (to_child, from_parent) = fds.pipe()?;
                let (to_parent, from_child) = fds.pipe()?;
                (
                    Fd {
                        w: to_child,
                        r: from_child,
                        size: S,
                    },
                    Fd {
                        w: to_parent,
                        r: from_parent,
                        size: S,
                    },
                )
            } else {
                let (mine, theirs) = fds.socketpair()?;
                (
                    Fd {
                        w: mine,
                        r: mine,
                        size: S,
                    },
                    Fd {
                        w: theirs,
                        r: theirs,
                        size: S,
                    },
                )
            };
            latency::processes(&what, S, t, parent, child)
        }
        MQ_ROW => {
            let (req, resp) = (mq::Mq::new(S)?, mq::Mq::new(S)?);
            let parent = mq::MqEnd {
                tx: &req,
                rx: &resp,
            };
            let child = mq::MqEnd {
                tx: &resp,
                rx: &req,
            };
            latency::processes(&what, S, t, parent, child)
        }
        _ => {
            let buf = Floor::buffer()?;
            let parent = Floor::new(&buf, S, true);
            let child = Floor::new(&buf, S, false);
            latency::processes(&what, S, t, parent, child)
        }
    }
}

/// Medians over runs.
fn summarize(samples: Vec<Sample>) -> Res<Outcome> {
    let mut hists = Vec::new();
    let mut rates = Vec::new();
    let mut locks = Vec::new();
    for s in samples {
        match s {
            Sample::Hist(h) => hists.push(h),
            Sample::Rate(r) => rates.push(r.per_sec()),
            Sample::Lock(l) => locks.push(l),
        }
    }
    if !hists.is_empty() {
        return Ok(Outcome::Latency(stats::Latency::of(&hists)?));
    }
    if !rates.is_empty() {
        return Ok(Outcome::Rate {
            per_sec: stats::Spread::of(&rates),
            runs: rates,
        });
    }
    let per_acq: Vec<f64> = locks
        .iter()
        .map(|l| l.secs * 1e9 / l.acquisitions.max(1) as f64)
        .collect();
    let per_sec: Vec<f64> = locks
        .iter()
        .map(|l| l.acquisitions as f64 / l.secs.max(1e-9))
        .collect();
    let share: Vec<f64> = locks
        .iter()
        .map(|l| l.handoffs as f64 / l.acquisitions.max(1) as f64)
        .collect();
    Ok(Outcome::Lock {
        per_acq_ns: stats::Spread::of(&per_acq),
        per_sec: stats::median(&per_sec),
        handoff_share: stats::median(&share),
        runs: per_acq,
    })
}

/// The Python rows, from the script's rounds.
fn python_rows(
    opts: &cli::Options,
    python: &Result<python::Python, String>,
    rounds: Vec<python::Round>,
    absent: &mut Vec<Absent>,
) -> Res<Vec<Row>> {
    let mut rows = Vec::new();
    if python.is_err() || rounds.is_empty() {
        return Ok(rows);
    }
    let mut lat: HashMap<(String, usize), Vec<Histogram<u64>>> = HashMap::new();
    let mut rate: HashMap<(usize, usize), Vec<f64>> = HashMap::new();
    for r in rounds {
        for (k, h) in r.latency {
            lat.entry(k).or_default().push(h);
        }
        for (k, v) in r.rate {
            rate.entry(k).or_default().push(v.per_sec());
        }
    }
    if opts.only.latency {
        for &size in &opts.sizes {
            let group = Group {
                section: Section::Latency,
                size,
            };
            for (mech, name) in python::LATENCY_ROWS {
                match lat.remove(&(mech.to_owned(), size)) {
                    Some(h) => rows.push(Row {
                        group,
                        name: name.to_owned(),
                        outcome: Outcome::Latency(stats::Latency::of(&h)?),
                    }),
                    None => absent.push(Absent {
                        group,
                        name: name.to_owned(),
                        why: "the script reported nothing".to_owned(),
                    }),
                }
            }
        }
    }
    if opts.only.throughput {
        for pairs in [1, 2] {
            for &size in &opts.sizes {
                let group = Group {
                    section: Section::Throughput { pairs },
                    size,
                };
                let name = python::THROUGHPUT_ROW.to_owned();
                match rate.remove(&(size, pairs)) {
                    Some(v) => rows.push(Row {
                        group,
                        name,
                        outcome: Outcome::Rate {
                            per_sec: stats::Spread::of(&v),
                            runs: v,
                        },
                    }),
                    None => absent.push(Absent {
                        group,
                        name,
                        why: "the script reported nothing".to_owned(),
                    }),
                }
            }
        }
    }
    Ok(rows)
}
