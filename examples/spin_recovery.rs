//! How fast a blocking ping-pong recovers once both sides stopped spinning.
//!
//! ```text
//! cargo run --release --example spin_recovery [ROUNDS]
//! ```
//!
//! Each round first drives both processes' spin budgets to zero on purpose
//! (12 exchanges in which each side answers only after a 300 µs sleep, so
//! every spin runs out), then times 20,000 plain 8-byte round trips through
//! two `Queue<u64>`s of capacity 2 with blocking `get`. A round has
//! *recovered* at the first of 200 round trips in a row that each take under
//! 5 µs (a parked pair takes ~50 µs on an idle 2-vCPU VM, a spinning one
//! ~0.4 µs). Printed: the percentiles of the round trips spent before
//! recovery, and how many rounds never recovered. A diagnostic for the spin
//! policy (`src/spin.rs`), not a benchmark with a pass mark: run it on an idle
//! machine, and compare builds in the same sitting.
#![allow(clippy::unwrap_used, reason = "a measurement program")]

use std::time::{Duration, Instant};

use multiproc::{Queue, process};

/// Marks a request the echo answers only after a sleep.
const SLOW: u64 = 1 << 63;
/// Asks the echo to exit.
const STOP: u64 = u64::MAX;

const STALL: Duration = Duration::from_micros(300);
const STALLS: u64 = 12;
const TRIPS: usize = 20_000;
const FAST: Duration = Duration::from_micros(5);
const RUN: usize = 200;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    let req: Queue<u64> = Queue::anonymous(2).unwrap();
    let rep: Queue<u64> = Queue::anonymous(2).unwrap();
    let child = {
        let (req, rep) = (req.clone(), rep.clone());
        process::fork(move || {
            loop {
                let m = req.get().unwrap();
                if m == STOP {
                    return 0;
                }
                if m & SLOW != 0 {
                    std::thread::sleep(STALL);
                }
                rep.put(m).unwrap();
            }
        })
        .unwrap()
    };
    let mut spent = Vec::with_capacity(rounds);
    let mut stuck = 0;
    let mut seq = 0u64;
    let trace = std::env::var_os("TRACE").is_some();
    for _ in 0..rounds {
        // Both sides' spins fail: the echo sleeps before each answer, and we
        // sleep before each request.
        for _ in 0..STALLS {
            std::thread::sleep(STALL);
            seq += 1;
            req.put(seq | SLOW).unwrap();
            assert_eq!(rep.get().unwrap(), seq | SLOW);
        }
        let mut fast_run = 0;
        let mut recovered = None;
        for i in 0..TRIPS {
            seq += 1;
            let t = Instant::now();
            req.put(seq).unwrap();
            assert_eq!(rep.get().unwrap(), seq);
            let took = t.elapsed();
            if trace && i < 400 {
                // TRACE=1: the first 400 round trips of each round, in µs.
                eprint!("{} ", took.as_micros());
            }
            if took < FAST {
                fast_run += 1;
                if fast_run == RUN {
                    recovered = Some(i + 1 - RUN);
                    break;
                }
            } else {
                fast_run = 0;
            }
        }
        match recovered {
            Some(n) => spent.push(n),
            None => stuck += 1,
        }
    }
    req.put(STOP).unwrap();
    let child = child;
    child.join().unwrap();
    spent.sort_unstable();
    let pct = |p: usize| spent.get((spent.len() * p / 100).min(spent.len().saturating_sub(1)));
    println!(
        "rounds {rounds}: recovered {} (round trips before recovery: p50 {:?}, p90 {:?}, max {:?}), \
         not recovered within {TRIPS}: {stuck}",
        spent.len(),
        pct(50),
        pct(90),
        spent.last()
    );
}
