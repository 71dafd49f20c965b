//! How `multiproc` compares with the alternatives, measured on this machine in
//! one run: round-trip latency, one-way throughput (1 -> 1 and 2 -> 2) and the
//! sync primitives, against pipes, Unix sockets, Python's `multiprocessing`,
//! crossbeam between threads, `raw_sync` and `std`, plus the physical floor and
//! ceiling of shared memory.
//!
//! ```text
//! cargo run --release -p compare                              # ~1 minute
//! cargo run --release -p compare -- --runs 5 --time 1000      # ~7 minutes
//! cargo run --release -p compare --no-default-features        # without the peer crates
//! cargo run --release -p compare -- --help
//! ```
//!
//! Prints a table (machine and parameters first), and writes CSV, JSON and SVG
//! charts to `target/compare/` (`--out DIR`). Every message is checked on
//! arrival; a lost, duplicated or corrupt message fails the run (exit code 1).
//! The program lives in the library half of this crate (`lib.rs` and its
//! modules) so that `tests/compare.rs` can run it in-process with `--quick`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The instruction counts re-execute this program under valgrind.
    if args.first().map(String::as_str) == Some("--instr-worker") {
        return compare::instr::worker_main(&args[1..]);
    }
    let mut stdout = std::io::stdout().lock();
    match compare::run(&args, &mut stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
