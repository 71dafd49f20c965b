//! A stable measure beside the noisy one: instructions per put+get pair,
//! counted by `valgrind --tool=callgrind` on a fixed single-process workload.
//!
//! Wall-clock figures on a shared 2-core machine swing with whatever else
//! runs; an instruction count does not. This program re-executes itself
//! (hidden mode `--instr-worker KIND N`) under
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null`, once with `N`
//! pairs and once with `2N`, reads the `Collected :` total from callgrind's
//! summary, and reports `(Ir(2N) - Ir(N)) / N`: start-up, queue creation
//! and exit cancel out. Each pair is one put and one get by the same
//! process on an empty queue (no waiting, no contention), every value
//! checked, so the count is the fast path's own instruction cost.
//!
//! Cycles need hardware counters: `perf stat -e cycles` runs the same way
//! where it works (most VMs report `<not supported>`; the table says so).
//! Without valgrind the section prints one line saying it was skipped.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use multiproc::{BytesQueue, Queue};

use super::plumbing::Res;
use super::report;
use super::throughput::{Rx, Spsc, Tx};

/// Queue capacity in the workloads (the comparison's ping-pong capacity).
const CAP: usize = 2;
/// Bytes per message of the 1 KiB workloads.
const KIB: usize = 1024;

/// The workloads: worker name, row name, and the floor row it is compared
/// with (`None`: it is a floor).
pub const ROWS: [(&str, &str, Option<&str>); 6] = [
    ("queue", "multiproc Queue<u64>: put + get", Some("ring8")),
    (
        "spsc",
        "multiproc spsc::channel<u64>: send + recv",
        Some("ring8"),
    ),
    (
        "queue-try",
        "multiproc Queue<u64>: try_put + try_get",
        Some("ring8"),
    ),
    (
        "bytes1k",
        "multiproc BytesQueue, 1 KiB: put + get_into",
        Some("ring1k"),
    ),
    ("ring8", "floor: bare SPSC ring, 8 B: push + pop", None),
    ("ring1k", "floor: bare SPSC ring, 1 KiB: push + pop", None),
];

/// One workload's figures.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The row name.
    pub name: String,
    /// Instructions per pair.
    pub instructions: f64,
    /// Cycles per pair, where `perf stat` counts them.
    pub cycles: Option<f64>,
    /// Instructions per pair over the floor's (`None` for a floor).
    pub vs_floor: Option<f64>,
}

/// What the section measured, or why not.
#[derive(Debug, Clone)]
pub enum Summary {
    /// Measured with `n` and `2n` pairs.
    Measured {
        /// Pairs in the smaller run.
        n: u64,
        /// valgrind's version line.
        valgrind: String,
        /// Why cycles are missing, if they are.
        cycles_note: Option<String>,
        /// One per workload, in [`ROWS`] order.
        figures: Vec<Figure>,
        /// Wall time of the section.
        elapsed: Duration,
    },
    /// Not measured, and why.
    Skipped(String),
}

/// The hidden worker: `KIND N` runs `N` pairs of workload `KIND` and exits 0,
/// or prints why and exits 1 (a wrong value, a queue error).
pub fn worker_main(args: &[String]) -> std::process::ExitCode {
    let run = || -> Res<u64> {
        let [kind, n] = args else {
            return Err("usage: --instr-worker KIND N".into());
        };
        let n: u64 = n.parse().map_err(|_| format!("N: {n:?} is not a count"))?;
        pairs(kind, n)
    };
    match run() {
        Ok(sum) => {
            // The checksum keeps the loop's values alive.
            println!("{sum}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("compare --instr-worker: FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs `n` pairs of workload `kind` in this process; a checksum.
pub fn pairs(kind: &str, n: u64) -> Res<u64> {
    use std::hint::black_box;
    let mut sum = 0u64;
    let bad = |i: u64, got: u64| format!("{kind}: pair {i} got {got}");
    match kind {
        "queue" => {
            let q = Queue::<u64>::anonymous(CAP)?;
            for i in 0..n {
                q.put(black_box(i))?;
                let v = black_box(q.get()?);
                if v != i {
                    return Err(bad(i, v).into());
                }
                sum = sum.wrapping_add(v);
            }
        }
        "queue-try" => {
            let q = Queue::<u64>::anonymous(CAP)?;
            for i in 0..n {
                q.try_put(black_box(i))
                    .map_err(|_| format!("{kind}: try_put {i} on an empty queue failed"))?;
                let v = black_box(q.try_get()?);
                if v != i {
                    return Err(bad(i, v).into());
                }
                sum = sum.wrapping_add(v);
            }
        }
        "spsc" => {
            let (mut tx, mut rx) = multiproc::spsc::channel::<u64>(CAP)?;
            for i in 0..n {
                tx.send(black_box(i))
                    .map_err(|e| format!("{kind}: send: {e}"))?;
                let v = black_box(rx.recv()?);
                if v != i {
                    return Err(bad(i, v).into());
                }
                sum = sum.wrapping_add(v);
            }
        }
        "bytes1k" => {
            let q = BytesQueue::anonymous(CAP, KIB)?;
            let mut msg = vec![0x5au8; KIB];
            let mut buf = vec![0u8; KIB];
            for i in 0..n {
                msg[..8].copy_from_slice(&i.to_le_bytes());
                q.put(black_box(&msg))
                    .map_err(|e| format!("{kind}: put: {e}"))?;
                let len = q.get_into(black_box(&mut buf))?;
                let v = u64::from_le_bytes(buf[..8].try_into()?);
                if len != KIB || v != i || buf[KIB - 1] != 0x5a {
                    return Err(bad(i, v).into());
                }
                sum = sum.wrapping_add(v);
            }
        }
        "ring8" | "ring1k" => {
            let size = if kind == "ring8" { 8 } else { KIB };
            let ring = Spsc::new(size)?;
            let (mut tx, mut rx) = ring.ends();
            let mut msg = vec![0x5au8; size];
            let mut buf = vec![0u8; size];
            for i in 0..n {
                msg[..8].copy_from_slice(&i.to_le_bytes());
                tx.send(black_box(&msg))
                    .map_err(|c| format!("{kind}: send failed ({c})"))?;
                let len = rx
                    .recv(black_box(&mut buf))
                    .map_err(|c| format!("{kind}: receive failed ({c})"))?;
                let v = u64::from_le_bytes(buf[..8].try_into()?);
                if len != size || v != i || (size > 8 && buf[size - 1] != 0x5a) {
                    return Err(bad(i, v).into());
                }
                sum = sum.wrapping_add(v);
            }
        }
        other => return Err(format!("unknown workload {other:?}").into()),
    }
    Ok(sum)
}

/// valgrind's version line, or why it cannot run.
fn valgrind_version() -> Result<String, String> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        Ok(o) => Err(format!("`valgrind --version` exited with {}", o.status)),
        Err(e) => Err(format!("valgrind not found ({e})")),
    }
}

/// The total of callgrind's `Collected :` line in `stderr`.
pub fn parse_collected(stderr: &str) -> Option<u64> {
    stderr.lines().rev().find_map(|l| {
        let (_, rest) = l.split_once("Collected :")?;
        rest.trim().parse().ok()
    })
}

/// Instructions of one worker run of `n` pairs under callgrind.
fn callgrind(exe: &Path, kind: &str, n: u64) -> Res<u64> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args(["--instr-worker", kind, &n.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run valgrind: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "valgrind {} --instr-worker {kind} {n} exited with {}: {}",
            exe.display(),
            out.status,
            stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        )
        .into());
    }
    parse_collected(&stderr)
        .ok_or_else(|| format!("no `Collected :` line in callgrind's output: {stderr}").into())
}

/// Cycles of one worker run under `perf stat`, or why there are none.
fn perf_cycles(exe: &Path, kind: &str, n: u64) -> Result<u64, String> {
    let out = Command::new("perf")
        .args(["stat", "-x", ",", "-e", "cycles:u"])
        .arg(exe)
        .args(["--instr-worker", kind, &n.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("perf not available ({e})"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("perf stat exited with {}", out.status));
    }
    let line = stderr
        .lines()
        .find(|l| l.contains("cycles"))
        .ok_or("perf stat printed no cycles line")?;
    let value = line.split(',').next().unwrap_or_default();
    value.parse().map_err(|_| {
        if value.contains("not supported") || value.contains("not counted") {
            format!("perf stat reports {value} for cycles (no hardware counters here)")
        } else {
            format!("perf stat: unreadable cycles figure {value:?}")
        }
    })
}

/// Measures every workload with `n` and `2n` pairs, re-executing `exe`.
pub fn measure(exe: &Path, n: u64) -> Res<Summary> {
    let started = Instant::now();
    let valgrind = match valgrind_version() {
        Ok(v) => v,
        Err(why) => return Ok(Summary::Skipped(why)),
    };
    let mut counts = Vec::new();
    let mut cycles = Vec::new();
    let mut cycles_note = None;
    for (kind, _, _) in ROWS {
        eprint!("i");
        let a = callgrind(exe, kind, n)?;
        let b = callgrind(exe, kind, 2 * n)?;
        counts.push(b.saturating_sub(a) as f64 / n as f64);
        if cycles_note.is_none() {
            match (perf_cycles(exe, kind, n), perf_cycles(exe, kind, 2 * n)) {
                (Ok(a), Ok(b)) => cycles.push(b.saturating_sub(a) as f64 / n as f64),
                (Err(why), _) | (_, Err(why)) => cycles_note = Some(why),
            }
        }
    }
    let floor = |k: &str| {
        ROWS.iter()
            .position(|(kind, _, _)| *kind == k)
            .map(|i| counts[i])
    };
    let figures = ROWS
        .iter()
        .enumerate()
        .map(|(i, (_, name, vs))| Figure {
            name: (*name).to_owned(),
            instructions: counts[i],
            cycles: if cycles_note.is_none() {
                cycles.get(i).copied()
            } else {
                None
            },
            vs_floor: vs
                .and_then(floor)
                .filter(|f| *f > 0.0)
                .map(|f| counts[i] / f),
        })
        .collect();
    Ok(Summary::Measured {
        n,
        valgrind,
        cycles_note,
        figures,
        elapsed: started.elapsed(),
    })
}

impl Summary {
    /// The section as text.
    pub fn write(&self, out: &mut dyn Write) -> Res {
        writeln!(out)?;
        writeln!(
            out,
            "== Instructions per put+get pair: one process puts and gets on an empty queue, \
             counted by"
        )?;
        writeln!(
            out,
            "   valgrind --tool=callgrind as (Ir(2N) - Ir(N)) / N (start-up cancels). The count \
             does not depend on"
        )?;
        writeln!(
            out,
            "   load or timing, unlike the wall-clock tables (it does on the compiler, the build \
             and the CPU's"
        )?;
        writeln!(
            out,
            "   memcpy variant). `--only instr` runs just this section."
        )?;
        if cfg!(debug_assertions) {
            writeln!(
                out,
                "   DEBUG build: these counts are of unoptimized code; use --release."
            )?;
        }
        writeln!(out)?;
        match self {
            Summary::Skipped(why) => {
                writeln!(out, "Instructions per pair: skipped: {why}")?;
            }
            Summary::Measured {
                n,
                valgrind,
                cycles_note,
                figures,
                elapsed,
            } => {
                writeln!(
                    out,
                    "Instructions per pair ({valgrind}, N = {n}, {:.1} s; ratio vs the floor row \
                     of the same size)",
                    elapsed.as_secs_f64()
                )?;
                let mut cells = vec![vec![
                    "workload".to_owned(),
                    "instructions".to_owned(),
                    "cycles".to_owned(),
                    "ratio".to_owned(),
                ]];
                for f in figures {
                    cells.push(vec![
                        f.name.clone(),
                        format!("{:.1}", f.instructions),
                        f.cycles.map_or("-".to_owned(), |c| format!("{c:.1}")),
                        f.vs_floor
                            .map_or("floor".to_owned(), |r| format!("{r:.2}x the floor")),
                    ]);
                }
                report::columns(out, &cells)?;
                if let Some(why) = cycles_note {
                    writeln!(out, "  cycles: {why}")?;
                }
            }
        }
        Ok(())
    }

    /// The section as JSON.
    pub fn json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Summary::Skipped(why) => json!({ "status": "skipped", "note": why }),
            Summary::Measured {
                n,
                valgrind,
                cycles_note,
                figures,
                elapsed,
            } => json!({
                "status": "ok",
                "method": "valgrind --tool=callgrind, (Ir(2N) - Ir(N)) / N, one process",
                "n": n,
                "valgrind": valgrind,
                "cycles_note": cycles_note,
                "elapsed_s": elapsed.as_secs_f64(),
                "workloads": figures.iter().map(|f| json!({
                    "workload": f.name,
                    "instructions_per_pair": f.instructions,
                    "cycles_per_pair": f.cycles,
                    "ratio_vs_floor": f.vs_floor,
                })).collect::<Vec<_>>(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_runs_and_checks_its_values() {
        for (kind, _, _) in ROWS {
            let sum = pairs(kind, 100).expect(kind);
            assert_eq!(sum, (0..100).sum::<u64>(), "{kind}");
        }
        assert!(pairs("nonsense", 1).is_err());
    }

    #[test]
    fn reads_callgrinds_summary() {
        let err =
            "==1== Events    : Ir\n==1== Collected : 126559\n==1==\n==1== I   refs: 126,559\n";
        assert_eq!(parse_collected(err), Some(126_559));
        assert_eq!(parse_collected("nothing here"), None);
    }
}
