//! Instructions per uncontended lock + unlock, for `valgrind --tool=callgrind`
//! (a count that does not move with machine load).
//!
//! ```text
//! cargo build --release --example lock_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out target/release/examples/lock_cost multiproc 1000000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out target/release/examples/lock_cost std 1000000
//! ```
//! Subtract a run with 0 iterations to remove start-up costs, then divide by N.
#![allow(clippy::unwrap_used, reason = "a measurement program")]

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "multiproc".into());
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    match which.as_str() {
        "std" => {
            let m = std::sync::Mutex::new(0u64);
            for _ in 0..n {
                *std::hint::black_box(&m).lock().unwrap() += 1;
            }
        }
        _ => {
            let lock = multiproc::Lock::anonymous().unwrap();
            for _ in 0..n {
                drop(std::hint::black_box(&lock).lock().unwrap());
            }
        }
    }
}
