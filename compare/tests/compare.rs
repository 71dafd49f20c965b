//! Keeps the comparison program from rotting: runs the whole program in-process
//! with `--quick` (tiny runs, every row, real forked processes, every message
//! checked) and checks that it produces a complete table and its CSV, JSON and
//! SVG files. It asserts structure only, never timings.

use std::path::{Path, PathBuf};

/// Every row name the table must show (measured, or with the reason it is not).
const ROWS: [&str; 31] = [
    // Round-trip latency.
    "multiproc Queue, spinning try_get",
    "multiproc Queue, blocking get",
    "multiproc spsc::channel, blocking recv",
    "multiproc Pipe",
    "pipe (write/read)",
    "Unix socket pair",
    "POSIX message queue (mq_send/mq_receive)",
    "Python multiprocessing.Queue",
    "Python multiprocessing.Pipe (send_bytes)",
    "iceoryx2 publish-subscribe (polling)",
    "ipc-channel (bytes channel)",
    "shmem-ipc ring (spinning)",
    "floor: shared memory, no queue",
    // Throughput.
    "multiproc Queue (put/get)",
    "multiproc Queue (put_many/get_many, 64)",
    "multiproc spsc::channel (send/recv)",
    "multiproc spsc::channel (send_many/recv_many, 64)",
    "multiproc BytesQueue (put/get_into)",
    "pipe, one write per frame",
    "pipe, buffered frames (64 KiB)",
    "Unix socket, one write per frame",
    "POSIX message queue (10 deep)",
    "crossbeam ArrayQueue (threads)",
    "bare SPSC ring in shared memory",
    // Sync primitives.
    "multiproc Event",
    "multiproc Condition",
    "raw_sync Event (pthread mutex + cond)",
    "std Mutex + Condvar (threads)",
    "multiproc Lock (robust)",
    "raw_sync Mutex (pthread, not robust)",
    "std Mutex (threads)",
];

/// Table titles: one per size and section.
const TITLES: [&str; 11] = [
    "Round trip, 8 B messages, 2 processes",
    "Round trip, 64 B messages, 2 processes",
    "Round trip, 1024 B messages, 2 processes",
    "Throughput, 8 B messages, 1 producer -> 1 consumer",
    "Throughput, 64 B messages, 1 producer -> 1 consumer",
    "Throughput, 1024 B messages, 1 producer -> 1 consumer",
    "Throughput, 8 B messages, 2 producers -> 2 consumers",
    "Throughput, 64 B messages, 2 producers -> 2 consumers",
    "Throughput, 1024 B messages, 2 producers -> 2 consumers",
    "Wake-up round trip",
    "Contended lock",
];

const SVGS: [&str; 6] = [
    "latency_8B.svg",
    "latency_64B.svg",
    "latency_1024B.svg",
    "wakeup.svg",
    "throughput_1to1.svg",
    "throughput_2to2.svg",
];

/// The fields of one CSV line (RFC 4180 quoting, no embedded newlines).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("a field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().expect("a field").push(c),
        }
    }
    fields
}

/// A fresh output directory under the target directory.
fn out_dir() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn quick_run_produces_every_row_and_file() {
    let dir = out_dir();
    let args: Vec<String> = ["--quick", "--out"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([dir.display().to_string()])
        .collect();
    let mut table = Vec::new();
    let report = compare::run(&args, &mut table)
        .expect("the quick comparison runs")
        .expect("not --help");
    let table = String::from_utf8(table).expect("utf-8 table");

    assert!(
        table.contains("machine: "),
        "machine line missing:\n{table}"
    );
    assert!(table.contains("params: "), "params line missing:\n{table}");
    for title in TITLES {
        assert!(table.contains(title), "table {title:?} missing:\n{table}");
    }
    for row in ROWS {
        assert!(
            table.lines().any(|l| l.trim_start().starts_with(row)),
            "row {row:?} missing:\n{table}"
        );
    }
    // Every multiproc row was measured and has a ratio column entry.
    for line in table.lines().filter(|l| l.starts_with("  multiproc ")) {
        assert!(
            line.contains("reference")
                || line.contains("x slower")
                || line.contains("x faster")
                || line.contains("n/a: single producer, single consumer by design"),
            "multiproc row without figures: {line}"
        );
    }
    // Rows that are measured here on every machine have figures: everything
    // but Python (needs python3) and the peers (need the default `peers` feature).
    for row in &report.rows {
        let by_design_2x2 = (row.name.starts_with("pipe, buffered")
            || row.name.starts_with("bare SPSC")
            || row.name.starts_with("multiproc spsc::channel"))
            && row.group.section.producers() == Some(2);
        let optional = row.name.starts_with("Python")
            || row.name.starts_with("iceoryx2")
            || row.name.starts_with("ipc-channel")
            || row.name.starts_with("shmem-ipc")
            || by_design_2x2;
        if !optional {
            assert!(
                !matches!(row.outcome, compare::Outcome::Missing(_)),
                "row {} ({:?}) was not measured",
                row.name,
                row.group
            );
        }
    }

    let csv = std::fs::read_to_string(dir.join("results.csv")).expect("results.csv");
    let mut lines = csv.lines();
    let header = lines.next().expect("CSV header");
    assert!(
        header.starts_with("section,size_bytes,"),
        "CSV header: {header}"
    );
    let columns = header.split(',').count();
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), report.rows.len(), "one CSV line per row");
    for row in ROWS {
        assert!(csv.contains(row), "CSV lacks {row:?}");
    }
    for line in &body {
        assert_eq!(csv_fields(line).len(), columns, "CSV line: {line}");
    }

    let json = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let rows = v["rows"].as_array().expect("rows array");
    assert_eq!(rows.len(), report.rows.len(), "one JSON row per row");
    for row in ROWS {
        assert!(
            rows.iter().any(|r| r["mechanism"] == row),
            "JSON lacks {row:?}"
        );
    }
    assert!(v["machine"]["cores"].as_u64().is_some(), "machine in JSON");

    for svg in SVGS {
        let text = std::fs::read_to_string(dir.join(svg)).unwrap_or_else(|e| panic!("{svg}: {e}"));
        assert!(
            text.contains("<svg") && text.contains("</svg>"),
            "{svg} is not an SVG"
        );
        assert!(
            text.contains("<polyline") || text.contains("<path"),
            "{svg} draws no line"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_option_runs_hogs_and_says_so() {
    let dir = out_dir().with_extension("load");
    let args: Vec<String> = [
        "--quick",
        "--only",
        "sync",
        "--no-python",
        "--load",
        "2",
        "--out",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([dir.display().to_string()])
    .collect();
    let mut table = Vec::new();
    compare::run(&args, &mut table)
        .expect("the quick comparison runs under load")
        .expect("not --help");
    let table = String::from_utf8(table).expect("utf-8 table");
    let machine = table
        .lines()
        .find(|l| l.starts_with("machine: "))
        .expect("machine line");
    assert!(
        machine.contains("load: 2 CPU-bound hogs during every row (--load 2), 2 runs x 5 ms"),
        "machine line does not mention the hogs: {machine}"
    );
    assert!(machine.contains(" at end"), "no end load: {machine}");
    let json = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["machine"]["cpu_hogs"].as_u64(), Some(2), "hogs in JSON");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_prints_usage() {
    let mut out = Vec::new();
    let r = compare::run(&["--help".to_owned()], &mut out).expect("help works");
    assert!(r.is_none());
    assert!(String::from_utf8_lossy(&out).contains("--quick"));
}

#[test]
fn instr_counts_each_workload_or_says_why_not() {
    let dir = out_dir().with_extension("instr");
    let args: Vec<String> = ["--quick", "--only", "instr", "--out"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([dir.display().to_string()])
        .collect();
    let mut table = Vec::new();
    let report = compare::run_with_exe(&args, &mut table, Path::new(env!("CARGO_BIN_EXE_compare")))
        .expect("the instruction counts run")
        .expect("not --help");
    let table = String::from_utf8(table).expect("utf-8 table");
    let valgrind = std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let json = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let section = &v["instructions_per_pair"];
    if !valgrind {
        assert!(
            table.contains("Instructions per pair: skipped: valgrind not found"),
            "no skip line without valgrind:\n{table}"
        );
        assert_eq!(section["status"], "skipped");
        return;
    }
    let Some(compare::instr::Summary::Measured { figures, .. }) = &report.instr else {
        panic!("valgrind is here but nothing was measured:\n{table}");
    };
    assert_eq!(figures.len(), compare::instr::ROWS.len());
    for (f, (_, name, floor)) in figures.iter().zip(compare::instr::ROWS) {
        assert_eq!(f.name, name);
        assert!(
            f.instructions.is_finite() && f.instructions > 1.0,
            "{name}: {} instructions per pair",
            f.instructions
        );
        assert_eq!(f.vs_floor.is_some(), floor.is_some(), "{name}: ratio");
        assert!(
            table.lines().any(|l| l.trim_start().starts_with(name)),
            "row {name:?} missing:\n{table}"
        );
    }
    assert_eq!(section["status"], "ok");
    assert_eq!(
        section["workloads"].as_array().map(Vec::len),
        Some(compare::instr::ROWS.len())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
