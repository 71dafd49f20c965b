//! Python's `multiprocessing` rows: runs `mp_bench.py` (embedded) once per
//! round with `python3 -c` and parses the JSON lines it prints.
//!
//! The script runs in its own process group, so a hang or a failure kills it
//! and every process it forked. It exits non-zero (and the run fails) if a
//! message was lost, duplicated or corrupt.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::latency::Timing;
use super::plumbing::{Res, watchdog};
use super::stats::{self, Rate};

/// The script, stdlib only.
const SCRIPT: &str = include_str!("mp_bench.py");

/// Latency row names, by the script's `mech`.
pub const LATENCY_ROWS: [(&str, &str); 2] = [
    ("queue", "Python multiprocessing.Queue"),
    ("pipe", "Python multiprocessing.Pipe (send_bytes)"),
];

/// The throughput row name.
pub const THROUGHPUT_ROW: &str = "Python multiprocessing.Queue";

/// A usable interpreter.
#[derive(Debug, Clone)]
pub struct Python {
    /// The command.
    pub exe: String,
    /// Its `--version`, e.g. `Python 3.11.7`.
    pub version: String,
}

/// Finds the interpreter, or says why the Python rows are skipped.
pub fn find(exe: Option<&str>) -> Result<Python, String> {
    let Some(exe) = exe else {
        return Err("skipped: --no-python".to_owned());
    };
    match Command::new(exe).arg("--version").output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            Ok(Python {
                exe: exe.to_owned(),
                version: text,
            })
        }
        Ok(out) => Err(format!(
            "skipped: `{exe} --version` failed ({})",
            out.status
        )),
        Err(_) => Err(format!("skipped: {exe} not found on the PATH")),
    }
}

/// What one round of the script measured.
#[derive(Debug, Default)]
pub struct Round {
    /// Round trips by (`mech`, size).
    pub latency: HashMap<(String, usize), Histogram<u64>>,
    /// Throughput by (size, pairs).
    pub rate: HashMap<(usize, usize), Rate>,
}

fn list(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

/// Runs the script once.
pub fn round(py: &Python, sizes: &[usize], pairs: &[usize], t: Timing) -> Res<Round> {
    let _armed = watchdog::arm("python multiprocessing");
    let mut child = Command::new(&py.exe)
        .arg("-c")
        .arg(SCRIPT)
        .args(["--sizes", &list(sizes), "--pairs", &list(pairs)])
        .args(["--warmup", &t.warmup.as_secs_f64().to_string()])
        .args(["--time", &t.time.as_secs_f64().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("start {}: {e}", py.exe))?;
    let pgid = child.id();
    let mut stdout = child.stdout.take().ok_or("python stdout")?;
    let mut stderr = child.stderr.take().ok_or("python stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });
    // Generous: every cell's phases plus interpreter and fork overheads.
    let cells = (sizes.len() * (2 + 2 * pairs.len())) as u32;
    let limit = Duration::from_secs(60) + (t.warmup + t.time) * cells * 5;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > limit {
            // SAFETY: kill(2) with a negative pid signals that process group: the
            // script's, created by `process_group(0)` above.
            unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!("python script did not finish within {limit:?}: killed").into());
        }
        watchdog::tick();
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader
        .join()
        .map_err(|_| "python stdout reader panicked")??;
    let err = err_reader
        .join()
        .map_err(|_| "python stderr reader panicked")??;
    let mut round = Round::default();
    let mut error = None;
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("python output {line:.80}: {e}"))?;
        let field = |k: &str| {
            v.get(k)
                .ok_or_else(|| format!("python output lacks {k}: {line:.80}"))
        };
        let num = |k: &str| -> Res<u64> {
            Ok(field(k)?
                .as_u64()
                .ok_or_else(|| format!("python output: {k} is not a count"))?)
        };
        match field("kind")?.as_str() {
            Some("latency") => {
                let mech = field("mech")?.as_str().unwrap_or("?").to_owned();
                let mut h = stats::new_histogram()?;
                for s in field("samples_ns")?.as_array().ok_or("samples_ns")? {
                    h.saturating_record(s.as_u64().ok_or("sample")?.max(1));
                }
                round.latency.insert((mech, num("size")? as usize), h);
            }
            Some("throughput") => {
                let rate = Rate {
                    msgs: num("msgs")?,
                    secs: field("secs")?.as_f64().ok_or("secs")?,
                };
                round
                    .rate
                    .insert((num("size")? as usize, num("pairs")? as usize), rate);
            }
            Some("error") => {
                error = Some(field("message")?.as_str().unwrap_or("?").to_owned());
            }
            _ => {}
        }
    }
    if let Some(e) = error {
        return Err(format!("python multiprocessing: {e}").into());
    }
    if !status.success() {
        let lines: Vec<&str> = err.lines().collect();
        let tail = lines[lines.len().saturating_sub(12)..].join("\n");
        return Err(format!("python script failed ({status}):\n{tail}").into());
    }
    Ok(round)
}
