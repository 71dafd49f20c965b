//! Instructions per uncontended put + get pair on one thread, for
//! `valgrind --tool=callgrind` (a count that does not move with machine load).
//!
//! ```text
//! cargo build --release --example queue_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out target/release/examples/queue_cost try 100000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out target/release/examples/queue_cost try 200000
//! ```
//! The difference of the two totals divided by the difference of N is the cost
//! of one pair (start-up and mapping costs cancel). Modes: `try`
//! (`try_put` + `try_get`), `block` (`put` + `get`), `many` (`put_many` +
//! `get_many` of 32 items, counted as 32 pairs). Capacity 64 unless a third
//! argument says otherwise (a non-power-of-two takes the lap-jump path).
#![allow(clippy::unwrap_used, reason = "a measurement program")]

use std::hint::black_box;

use multiproc::Queue;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "try".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cap: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let q: Queue<u64> = Queue::anonymous(cap).unwrap();
    let mut sum = 0u64;
    match mode.as_str() {
        "block" => {
            for i in 0..n {
                black_box(&q).put(i).unwrap();
                sum = sum.wrapping_add(black_box(&q).get().unwrap());
            }
        }
        "many" => {
            let items: Vec<u64> = (0..32).collect();
            let mut out = [0u64; 32];
            for _ in 0..n / 32 {
                assert_eq!(black_box(&q).put_many(&items), 32);
                assert_eq!(black_box(&q).get_many(&mut out), 32);
                sum = sum.wrapping_add(out[31]);
            }
        }
        _ => {
            for i in 0..n {
                black_box(&q).try_put(i).unwrap();
                sum = sum.wrapping_add(black_box(&q).try_get().unwrap());
            }
        }
    }
    println!("{mode} {n} {sum}");
}
