//! The results: rows grouped into tables, printed as text, and written as CSV
//! and JSON. Numbers and ratios only; no prose verdicts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cli::Options;
use super::machine::Machine;
use super::plumbing::Res;
use super::stats::{Latency, Spread};
use super::throughput::{CAP, Mech};
use super::{LATENCY_REF, LOCK_REF, THROUGHPUT_REF, WAKEUP_REF, peers, python, syncprims};

/// What a table measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// Round trips between two processes.
    Latency,
    /// `pairs` producers -> `pairs` consumers.
    Throughput {
        /// Producers (and consumers).
        pairs: usize,
    },
    /// Event/condition wake-up round trips.
    Wakeup,
    /// Contended lock acquisitions.
    Lock,
}

impl Section {
    /// Table order of sections.
    fn rank(self) -> usize {
        match self {
            Section::Latency => 0,
            Section::Throughput { pairs } => pairs,
            Section::Wakeup => 10,
            Section::Lock => 11,
        }
    }

    /// The short name used in CSV and JSON.
    pub fn key(self) -> &'static str {
        match self {
            Section::Latency => "latency",
            Section::Throughput { .. } => "throughput",
            Section::Wakeup => "wakeup",
            Section::Lock => "lock",
        }
    }

    /// The row the ratio column compares with.
    pub fn reference(self) -> &'static str {
        match self {
            Section::Latency => LATENCY_REF,
            Section::Throughput { .. } => THROUGHPUT_REF,
            Section::Wakeup => WAKEUP_REF,
            Section::Lock => LOCK_REF,
        }
    }

    /// Producers (and consumers) of a throughput table.
    pub fn producers(self) -> Option<usize> {
        match self {
            Section::Throughput { pairs } => Some(pairs),
            _ => None,
        }
    }

    /// Row names in table order.
    fn order(self) -> Vec<&'static str> {
        match self {
            Section::Latency => {
                let n = super::LATENCY_ROWS.len();
                let mut v: Vec<&str> = super::LATENCY_ROWS[..n - 1].to_vec();
                v.extend(python::LATENCY_ROWS.map(|(_, n)| n));
                v.extend(peers::ROWS);
                v.push(super::LATENCY_ROWS[n - 1]);
                v
            }
            Section::Throughput { .. } => {
                // Process transports, Python, then threads and the ceiling.
                let k = Mech::ALL
                    .iter()
                    .position(|m| *m == Mech::Crossbeam)
                    .unwrap_or(Mech::ALL.len());
                let mut v: Vec<&str> = Mech::ALL[..k].iter().map(|m| m.name()).collect();
                v.push(python::THROUGHPUT_ROW);
                v.extend(Mech::ALL[k..].iter().map(|m| m.name()));
                v
            }
            Section::Wakeup => syncprims::WAKEUP_ROWS.to_vec(),
            Section::Lock => syncprims::LOCK_ROWS.to_vec(),
        }
    }
}

/// One table: a section and a message size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Group {
    /// What is measured.
    pub section: Section,
    /// Bytes per message.
    pub size: usize,
}

/// A row's figures.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Round trips, nanoseconds.
    Latency(Latency),
    /// Messages per second.
    Rate {
        /// Median and range of the per-run rates.
        per_sec: Spread,
        /// The per-run rates.
        runs: Vec<f64>,
    },
    /// Contended lock.
    Lock {
        /// Nanoseconds per acquisition: median and range over runs.
        per_acq_ns: Spread,
        /// Acquisitions per second (median over runs).
        per_sec: f64,
        /// Share of acquisitions that changed hands (median over runs).
        handoff_share: f64,
        /// Per-run nanoseconds per acquisition.
        runs: Vec<f64>,
    },
    /// Not measured, and why.
    Missing(String),
}

impl Outcome {
    /// The figure ratios use, and whether lower is better.
    fn primary(&self) -> Option<(f64, bool)> {
        match self {
            Outcome::Latency(l) => Some((l.p50.median, true)),
            Outcome::Rate { per_sec, .. } => Some((per_sec.median, false)),
            Outcome::Lock { per_acq_ns, .. } => Some((per_acq_ns.median, true)),
            Outcome::Missing(_) => None,
        }
    }
}

/// One mechanism in one table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its table.
    pub group: Group,
    /// The mechanism.
    pub name: String,
    /// Its figures.
    pub outcome: Outcome,
}

/// Everything one run of the program measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where.
    pub machine: Machine,
    /// Python's version, if the Python rows ran.
    pub python: Option<String>,
    /// Measured runs per row.
    pub runs: usize,
    /// Measured time per run.
    pub time: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Message sizes.
    pub sizes: Vec<usize>,
    /// `--quick`: a structure check, the numbers are noise.
    pub quick: bool,
    /// One clock read, nanoseconds.
    pub timer_ns: f64,
    /// All rows, in table order.
    pub rows: Vec<Row>,
    /// Instructions per put+get pair (`--instr`), if that section ran.
    pub instr: Option<super::instr::Summary>,
    /// Wall time of the whole program.
    pub elapsed: Duration,
}

/// "3.1x slower", "12x faster", "reference", or "" without figures.
pub fn ratio_text(row: &Outcome, reference: Option<&Outcome>, is_ref: bool) -> String {
    if is_ref {
        return "reference".to_owned();
    }
    match ratio(row, reference) {
        Some(f) if f >= 1.0 => format!("{}x slower", factor(f)),
        Some(f) => format!("{}x faster", factor(1.0 / f)),
        None => String::new(),
    }
}

/// How many times slower than the reference (below 1: faster).
pub fn ratio(row: &Outcome, reference: Option<&Outcome>) -> Option<f64> {
    let (v, lower_better) = row.primary()?;
    let (r, _) = reference?.primary()?;
    if v <= 0.0 || r <= 0.0 || !v.is_finite() || !r.is_finite() {
        return None;
    }
    Some(if lower_better { v / r } else { r / v })
}

fn factor(f: f64) -> String {
    if f >= 100.0 {
        format!("{f:.0}")
    } else if f >= 10.0 {
        format!("{f:.1}")
    } else {
        format!("{f:.2}")
    }
}

/// Three significant digits.
fn sig(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A duration in nanoseconds, in a readable unit.
pub fn ns(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{} us", sig(v / 1e3))
    } else if v < 1e9 {
        format!("{} ms", sig(v / 1e6))
    } else {
        format!("{} s", sig(v / 1e9))
    }
}

/// A number with a decimal prefix and `unit`: "24.1 M", "1.54 GB".
pub fn si(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    let (x, p) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{} {p}{unit}", sig(x)).trim_end().to_owned()
}

fn spread(s: &Spread, f: impl Fn(f64) -> String) -> String {
    format!("{} .. {}", f(s.min), f(s.max))
}

/// Prints `cells` as aligned columns (the first left-aligned, the rest right),
/// each line indented by two spaces. A row of two cells is a name and a note
/// spanning the rest.
pub fn columns(out: &mut dyn Write, cells: &[Vec<String>]) -> Res {
    let n = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut w = vec![0; n];
    for r in cells.iter().filter(|r| r.len() == n) {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    w[0] = cells
        .iter()
        .map(|r| r[0].chars().count())
        .max()
        .unwrap_or(0);
    for r in cells {
        let mut line = format!("  {:<width$}", r[0], width = w[0]);
        if r.len() == n {
            for (i, c) in r.iter().enumerate().skip(1) {
                line.push_str(&format!("  {c:>width$}", width = w[i]));
            }
        } else {
            for c in &r[1..] {
                line.push_str("  ");
                line.push_str(c);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

impl Report {
    /// Rows sorted into table order.
    pub fn ordered(mut self, opts: &Options) -> Report {
        let size_rank = |s: usize| {
            opts.sizes
                .iter()
                .position(|&x| x == s)
                .unwrap_or(usize::MAX)
        };
        self.rows.sort_by_key(|r| {
            let order = r.group.section.order();
            let pos = order
                .iter()
                .position(|n| *n == r.name)
                .unwrap_or(usize::MAX);
            (r.group.section.rank(), size_rank(r.group.size), pos)
        });
        self
    }

    /// The groups in order, each with its rows.
    pub fn groups(&self) -> Vec<(Group, Vec<&Row>)> {
        let mut out: Vec<(Group, Vec<&Row>)> = Vec::new();
        for r in &self.rows {
            match out.last_mut() {
                Some((g, rows)) if *g == r.group => rows.push(r),
                _ => out.push((r.group, vec![r])),
            }
        }
        out
    }

    /// The reference row's figures in `rows`.
    fn reference<'a>(rows: &[&'a Row], section: Section) -> Option<&'a Outcome> {
        rows.iter()
            .find(|r| r.name == section.reference())
            .map(|r| &r.outcome)
    }

    /// The text table.
    pub fn write_table(&self, out: &mut dyn Write) -> Res {
        let m = &self.machine;
        writeln!(out, "multiproc compare, {} UTC", m.date)?;
        writeln!(
            out,
            "machine: {} cores, {}{}, Linux {}, glibc {}, load {} at start{}{}",
            m.cores,
            m.cpu,
            if m.virtualized { " (virtualized)" } else { "" },
            m.kernel,
            m.glibc,
            m.load,
            if m.load_end.is_empty() {
                String::new()
            } else {
                format!(", {} at end", m.load_end)
            },
            match m.hogs {
                0 => String::new(),
                n => format!(
                    "; load: {n} CPU-bound hog{} during every row (--load {n}), {} runs x {} ms \
                     measured per row{}",
                    if n == 1 { "" } else { "s" },
                    self.runs,
                    self.time.as_millis(),
                    if (self.runs, self.time) == (super::cli::LOAD_RUNS, super::cli::LOAD_TIME) {
                        " (the --load defaults)"
                    } else {
                        ""
                    }
                ),
            }
        )?;
        if !m.release {
            writeln!(
                out,
                "build:   DEBUG (unoptimized): the numbers mean nothing; use --release"
            )?;
        }
        writeln!(
            out,
            "python:  {}",
            self.python.as_deref().unwrap_or("not run (see the rows)")
        )?;
        writeln!(
            out,
            "params:  {} runs per row in interleaved rounds, each {} ms warm-up + {} ms measured; \
             sizes {} B; queue capacity {CAP} (2 for ping-pong)",
            self.runs,
            self.warmup.as_millis(),
            self.time.as_millis(),
            self.sizes
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if self.quick {
            writeln!(
                out,
                "quick:   --quick checks that every row runs; its numbers are noise"
            )?;
        }
        writeln!(
            out,
            "figures: medians over runs; spread = min .. max of the per-run figures; every \
             timed round trip includes one clock read ({:.0} ns here)",
            self.timer_ns
        )?;
        let mut last_notes = None;
        for (g, rows) in self.groups() {
            let these = notes(g.section);
            if last_notes != Some(these) {
                last_notes = Some(these);
                writeln!(out)?;
                for line in these {
                    writeln!(out, "{line}")?;
                }
            }
            writeln!(out)?;
            writeln!(out, "{} (ratio vs {})", title(g), g.section.reference())?;
            let reference = Report::reference(&rows, g.section);
            let mut cells = vec![header(g.section)];
            for r in &rows {
                let is_ref = r.name == g.section.reference();
                let ratio = ratio_text(&r.outcome, reference, is_ref);
                cells.push(match &r.outcome {
                    Outcome::Latency(l) => vec![
                        r.name.clone(),
                        ns(l.p50.median),
                        ns(l.p99),
                        ns(l.p999),
                        spread(&l.p50, ns),
                        l.samples.to_string(),
                        ratio,
                    ],
                    Outcome::Rate { per_sec: s, .. } => vec![
                        r.name.clone(),
                        si(s.median, ""),
                        spread(s, |v| si(v, "")),
                        si(s.median * g.size as f64, "B"),
                        ratio,
                    ],
                    Outcome::Lock {
                        per_acq_ns,
                        per_sec: ps,
                        handoff_share,
                        ..
                    } => vec![
                        r.name.clone(),
                        ns(per_acq_ns.median),
                        spread(per_acq_ns, ns),
                        si(*ps, ""),
                        format!("{:.1} %", handoff_share * 100.0),
                        ratio,
                    ],
                    Outcome::Missing(why) => vec![r.name.clone(), why.clone()],
                });
            }
            columns(out, &cells)?;
        }
        if let Some(i) = &self.instr {
            i.write(out)?;
        }
        Ok(())
    }

    /// Writes the rows as CSV; returns the path.
    pub fn write_csv(&self, path: &Path) -> Res<PathBuf> {
        let mut s = String::from(
            "section,size_bytes,producers,consumers,mechanism,status,unit,median,min,max,\
             p99,p999,samples,bytes_per_s,handoff_share,ratio_vs_reference,reference,note\n",
        );
        for (g, rows) in self.groups() {
            let reference = Report::reference(&rows, g.section);
            for r in rows {
                let ratio =
                    ratio(&r.outcome, reference).map_or(String::new(), |f| format!("{f:.4}"));
                let num = |v: f64| format!("{v:.3}");
                let (status, unit, fig, note): (&str, &str, Vec<String>, String) = match &r.outcome
                {
                    Outcome::Latency(l) => (
                        "ok",
                        "ns_round_trip",
                        vec![
                            num(l.p50.median),
                            num(l.p50.min),
                            num(l.p50.max),
                            num(l.p99),
                            num(l.p999),
                            l.samples.to_string(),
                            String::new(),
                            String::new(),
                        ],
                        String::new(),
                    ),
                    Outcome::Rate { per_sec: s, .. } => (
                        "ok",
                        "msg_per_s",
                        vec![
                            num(s.median),
                            num(s.min),
                            num(s.max),
                            String::new(),
                            String::new(),
                            String::new(),
                            num(s.median * g.size as f64),
                            String::new(),
                        ],
                        String::new(),
                    ),
                    Outcome::Lock {
                        per_acq_ns,
                        handoff_share,
                        ..
                    } => (
                        "ok",
                        "ns_per_acquisition",
                        vec![
                            num(per_acq_ns.median),
                            num(per_acq_ns.min),
                            num(per_acq_ns.max),
                            String::new(),
                            String::new(),
                            String::new(),
                            String::new(),
                            format!("{handoff_share:.4}"),
                        ],
                        String::new(),
                    ),
                    Outcome::Missing(why) => ("missing", "", vec![String::new(); 8], why.clone()),
                };
                let mut fields = vec![
                    g.section.key().to_owned(),
                    g.size.to_string(),
                    g.section
                        .producers()
                        .map_or(String::new(), |p| p.to_string()),
                    g.section
                        .producers()
                        .map_or(String::new(), |p| p.to_string()),
                    r.name.clone(),
                    status.to_owned(),
                    unit.to_owned(),
                ];
                fields.extend(fig);
                fields.push(ratio);
                fields.push(g.section.reference().to_owned());
                fields.push(note);
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                s.push_str(&line.join(","));
                s.push('\n');
            }
        }
        std::fs::write(path, s).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path.to_owned())
    }

    /// Writes everything as JSON; returns the path.
    pub fn write_json(&self, path: &Path) -> Res<PathBuf> {
        use serde_json::{Value, json};
        let m = &self.machine;
        let mut rows = Vec::new();
        for (g, group_rows) in self.groups() {
            let reference = Report::reference(&group_rows, g.section);
            for r in group_rows {
                let mut v = json!({
                    "section": g.section.key(),
                    "size_bytes": g.size,
                    "producers": g.section.producers(),
                    "consumers": g.section.producers(),
                    "mechanism": r.name,
                    "reference": g.section.reference(),
                    "ratio_vs_reference": ratio(&r.outcome, reference),
                });
                let extra = match &r.outcome {
                    Outcome::Latency(l) => json!({
                        "status": "ok",
                        "unit": "ns_round_trip",
                        "median": l.p50.median,
                        "min": l.p50.min,
                        "max": l.p50.max,
                        "p99": l.p99,
                        "p999": l.p999,
                        "samples": l.samples,
                        "runs": l.runs,
                        "merged_percentiles": {
                            "p50": l.merged.value_at_quantile(0.5),
                            "p90": l.merged.value_at_quantile(0.9),
                            "p99": l.merged.value_at_quantile(0.99),
                            "p99.9": l.merged.value_at_quantile(0.999),
                            "p99.99": l.merged.value_at_quantile(0.9999),
                            "max": l.merged.max(),
                        },
                    }),
                    Outcome::Rate { per_sec: s, runs } => json!({
                        "status": "ok",
                        "unit": "msg_per_s",
                        "median": s.median,
                        "min": s.min,
                        "max": s.max,
                        "bytes_per_s": s.median * g.size as f64,
                        "per_run": runs,
                    }),
                    Outcome::Lock {
                        per_acq_ns,
                        per_sec,
                        handoff_share,
                        runs,
                    } => json!({
                        "status": "ok",
                        "unit": "ns_per_acquisition",
                        "median": per_acq_ns.median,
                        "min": per_acq_ns.min,
                        "max": per_acq_ns.max,
                        "acquisitions_per_s": per_sec,
                        "handoff_share": handoff_share,
                        "per_run": runs,
                    }),
                    Outcome::Missing(why) => json!({ "status": "missing", "note": why }),
                };
                if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
                    a.extend(b);
                }
                rows.push(v);
            }
        }
        let doc = json!({
            "date_utc": m.date,
            "machine": {
                "cores": m.cores,
                "cpu": m.cpu,
                "virtualized": m.virtualized,
                "kernel": m.kernel,
                "glibc": m.glibc,
                "load_at_start": m.load,
                "load_at_end": m.load_end,
                "cpu_hogs": m.hogs,
                "release_build": m.release,
            },
            "python": self.python,
            "params": {
                "runs": self.runs,
                "time_ms": self.time.as_millis() as u64,
                "warmup_ms": self.warmup.as_millis() as u64,
                "sizes": self.sizes,
                "queue_capacity": CAP,
                "quick": self.quick,
                "ratio_vs_reference": "times slower than the reference row of the same table \
                                       (below 1: faster), from the medians of this run",
                "timer_overhead_ns": self.timer_ns,
            },
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rows": rows,
            "instructions_per_pair": self.instr.as_ref().map(|i| i.json()),
        });
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path.to_owned())
    }
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_owned()
    }
}

fn title(g: Group) -> String {
    match g.section {
        Section::Latency => format!("Round trip, {} B messages, 2 processes", g.size),
        Section::Throughput { pairs } => format!(
            "Throughput, {} B messages, {pairs} producer{s} -> {pairs} consumer{s}",
            g.size,
            s = if pairs == 1 { "" } else { "s" }
        ),
        Section::Wakeup => "Wake-up round trip, 2 processes (threads where marked)".to_owned(),
        Section::Lock => {
            "Contended lock, 2 processes (threads where marked) taking it in a loop".to_owned()
        }
    }
}

fn header(section: Section) -> Vec<String> {
    let h: &[&str] = match section {
        Section::Latency | Section::Wakeup => &[
            "mechanism",
            "median",
            "p99",
            "p99.9",
            "spread of medians",
            "samples",
            "ratio",
        ],
        Section::Throughput { .. } => &["mechanism", "msg/s", "spread", "bytes/s", "ratio"],
        Section::Lock => &[
            "mechanism",
            "per acquisition",
            "spread",
            "acquisitions/s",
            "changed hands",
            "ratio",
        ],
    };
    h.iter().map(|s| (*s).to_owned()).collect()
}

fn notes(section: Section) -> &'static [&'static str] {
    match section {
        Section::Latency => &[
            "== Round-trip latency: the parent sends a message, the echo process checks it and",
            "   replies, the parent checks the reply. Pipe and socket rows move each message with",
            "   one write and one read of exactly its size (no framing); the POSIX message queue",
            "   one mq_send and one mq_receive. The floor copies the message through one shared",
            "   buffer and a flag (8 B: one cache line bouncing).",
        ],
        Section::Throughput { .. } => &[
            "== Throughput: producer processes -> consumer processes (threads for crossbeam);",
            "   every message checked (sequence, bytes, exactly once). Frames: 4-byte length +",
            "   payload. For 2 -> 2 the pipe and socket rows add a reader lock (and the socket",
            "   a writer lock), as a pipe-based queue such as Python's does. The POSIX message",
            "   queue holds 10 messages (Linux's default fs.mqueue.msg_max), the others 1024.",
        ],
        Section::Wakeup | Section::Lock => &[
            "== Sync primitives: wake-up = ping-pong of an 8-byte word in shared memory plus a",
            "   signal (two events, or one condition and its lock). Lock = two workers take the",
            "   lock, increment a shared counter non-atomically, release, do ~100 ns of local",
            "   work, repeat; the counter must equal the number of acquisitions.",
        ],
    }
}
