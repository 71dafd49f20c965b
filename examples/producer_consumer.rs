//! The classic fruit seller: producer processes put fruit into one shared
//! [`multiproc::Queue`], consumer processes take it out, and the parent checks
//! that every fruit arrived exactly once and, per producer, in order.
//!
//! ```text
//! cargo run --release --example producer_consumer
//! ```
//!
//! What it shows:
//!
//! * A `Queue<T>` of a small `#[repr(C)]` plain-old-data struct ([`Fruit`]),
//!   created before `fork` and so shared with every child. The queue is small
//!   (16 slots), so producers block in `put` while consumers catch up.
//! * **Shutting down with `shutdown()`** (round 1): the parent waits for the
//!   producers, then calls `shutdown()`. Consumers keep getting until the queue is
//!   drained and then see `GetError::Closed`: nothing put before the close is lost.
//! * **Shutting down with sentinels** (round 2), the way one does it with
//!   Python's `multiprocessing.Queue`: after the producers are done the parent
//!   puts one "no more fruit" item per consumer, and each consumer stops at the
//!   first sentinel it gets. This needs no `shutdown()`, but the parent must know
//!   how many consumers there are, and a sentinel must be a value no producer
//!   ever sends.
//! * Results travel back on a second queue: each consumer puts a [`Receipt`]
//!   for every fruit it got, in the order it got them. The parent checks them
//!   after reaping everyone.
//!
//! Children never print; they report through the receipt queue and their exit
//! code (0 = fine, see [`CODE_PUT_FAILED`] and friends). Every wait on a child is
//! bounded: a child that hangs is killed and the run fails. The parent exits
//! non-zero if anything is missing, duplicated, out of order or left over.

use std::error::Error;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use multiproc::process::{self, Child};
use multiproc::{GetError, Queue};

/// What every producer sells, in this order.
const FRUITS: [&str; 8] = [
    "apple",
    "banana",
    "cherry",
    "date",
    "elderberry",
    "fig",
    "grape",
    "kiwi",
];
/// Each producer puts its list of fruits this many times.
const ROUNDS: u32 = 25;
/// Items per producer.
const PER_PRODUCER: u32 = ROUNDS * FRUITS.len() as u32;
/// Slots in the fruit queue: small, so producers wait for consumers.
const CAPACITY: usize = 16;
/// Slots in the receipt queue: room for every receipt, so a consumer never
/// blocks on it (the parent reads receipts only after reaping the children).
const RECEIPT_CAPACITY: usize = 1024;
/// How long any single blocking step (a put, a get, a child's exit) may take
/// before the run is declared stuck.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Exit code: a put of a fruit or a receipt failed (timeout or closed).
const CODE_PUT_FAILED: i32 = 2;
/// Exit code: a consumer waited [`WATCHDOG`] without getting anything.
const CODE_GET_TIMEOUT: i32 = 3;
/// Exit code: a sentinel-mode consumer saw the queue closed.
const CODE_UNEXPECTED_CLOSE: i32 = 4;

/// One fruit on the queue: plain old data, copied into a slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
struct Fruit {
    /// Which producer sold it.
    producer: u32,
    /// Index into [`FRUITS`].
    fruit: u32,
    /// The producer's sequence number, 0, 1, 2, ...
    seq: u32,
}

/// Round 2's "no more fruit" marker: no producer has this id.
const SENTINEL: Fruit = Fruit {
    producer: u32::MAX,
    fruit: u32::MAX,
    seq: u32::MAX,
};

/// A consumer's note that it got `fruit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Receipt {
    consumer: u32,
    fruit: Fruit,
}

/// How consumers learn that no more fruit is coming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    /// The parent calls `shutdown()`; consumers drain and see `GetError::Closed`.
    Close,
    /// The parent puts one [`SENTINEL`] per consumer.
    Sentinel,
}

/// A producer: puts its list of fruits [`ROUNDS`] times. Returns the exit code.
fn produce(fruit: &Queue<Fruit>, producer: u32) -> i32 {
    for seq in 0..PER_PRODUCER {
        let item = Fruit {
            producer,
            fruit: seq % FRUITS.len() as u32,
            seq,
        };
        // Blocks while the queue is full; `put_timeout` only so that a stuck run
        // ends instead of hanging.
        if fruit.put_timeout(item, WATCHDOG).is_err() {
            return CODE_PUT_FAILED;
        }
    }
    0
}

/// A consumer: gets fruit until told to stop, writing a receipt for each.
fn consume(fruit: &Queue<Fruit>, receipts: &Queue<Receipt>, consumer: u32, how: Shutdown) -> i32 {
    loop {
        match fruit.get_timeout(WATCHDOG) {
            Ok(item) if item == SENTINEL && how == Shutdown::Sentinel => return 0,
            Ok(item) => {
                let receipt = Receipt {
                    consumer,
                    fruit: item,
                };
                if receipts.put_timeout(receipt, WATCHDOG).is_err() {
                    return CODE_PUT_FAILED;
                }
            }
            // Closed and drained: every fruit put before `shutdown()` was taken.
            Err(GetError::Closed) if how == Shutdown::Close => return 0,
            Err(GetError::Closed) => return CODE_UNEXPECTED_CLOSE,
            Err(_) => return CODE_GET_TIMEOUT,
        }
    }
}

/// Waits for `child` for at most [`WATCHDOG`], killing it if it hangs; `Err`
/// unless it exited with code 0.
fn reap(what: &str, child: Child) -> Result<(), String> {
    let pid = child.pid();
    match child.wait_timeout(WATCHDOG) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(format!("{what} (pid {pid}) ended with {s:?}")),
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait_timeout(WATCHDOG);
            Err(format!("{what} (pid {pid}) hung and was killed"))
        }
        Err(e) => Err(format!("waiting for {what} (pid {pid}): {e}")),
    }
}

/// One full run: forks the producers and consumers, shuts down the `how` way,
/// reaps everyone, then checks and prints the receipts. Returns the problems.
fn run(how: Shutdown, producers: u32, consumers: u32) -> Result<Vec<String>, Box<dyn Error>> {
    let fruit: Queue<Fruit> = Queue::anonymous(CAPACITY)?;
    let receipts: Queue<Receipt> = Queue::anonymous(RECEIPT_CAPACITY)?;
    let mut problems = Vec::new();

    // Consumers first, so they are already waiting when the first fruit comes.
    let mut consumer_children = Vec::new();
    for c in 0..consumers {
        match process::fork(|| consume(&fruit, &receipts, c, how)) {
            Ok(child) => consumer_children.push(child),
            Err(e) => problems.push(format!("fork consumer {c}: {e}")),
        }
    }
    let mut producer_children = Vec::new();
    for p in 0..producers {
        match process::fork(|| produce(&fruit, p)) {
            Ok(child) => producer_children.push(child),
            Err(e) => problems.push(format!("fork producer {p}: {e}")),
        }
    }

    // All producers done (or killed): nothing more will be put.
    for (p, child) in producer_children.into_iter().enumerate() {
        if let Err(e) = reap(&format!("producer {p}"), child) {
            problems.push(e);
        }
    }
    match how {
        Shutdown::Close => fruit.shutdown(),
        Shutdown::Sentinel => {
            // Sentinels queue up behind the last fruit, so every consumer gets
            // all fruit ahead of its sentinel. Close too if they do not fit, so
            // that consumers stop either way (they then report an error).
            for _ in 0..consumers {
                if fruit.put_timeout(SENTINEL, WATCHDOG).is_err() {
                    problems.push("could not put a sentinel".to_owned());
                    fruit.shutdown();
                    break;
                }
            }
        }
    }
    for (c, child) in consumer_children.into_iter().enumerate() {
        if let Err(e) = reap(&format!("consumer {c}"), child) {
            problems.push(e);
        }
    }

    // Everyone is gone: collect the receipts.
    let mut got = Vec::new();
    while let Ok(r) = receipts.try_get() {
        got.push(r);
    }
    problems.extend(check(&got, producers, consumers));
    if !fruit.is_empty() {
        problems.push(format!("{} fruit left in the queue", fruit.len()));
    }
    let lost = fruit.stats().abandoned + receipts.stats().abandoned;
    if lost != 0 {
        problems.push(format!("{lost} message(s) abandoned"));
    }
    print_summary(how, &got, producers, consumers);
    Ok(problems)
}

/// Every (producer, seq) exactly once, with the right fruit, and each
/// consumer saw each producer's fruit in the order it was put.
fn check(got: &[Receipt], producers: u32, consumers: u32) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = vec![vec![0u32; PER_PRODUCER as usize]; producers as usize];
    // last[c][p]: the last seq consumer c got from producer p.
    let mut last = vec![vec![None::<u32>; producers as usize]; consumers as usize];
    for r in got {
        let (c, f) = (r.consumer as usize, r.fruit);
        let (p, s) = (f.producer as usize, f.seq as usize);
        if c >= consumers as usize || p >= producers as usize || s >= PER_PRODUCER as usize {
            problems.push(format!("bogus receipt {r:?}"));
            continue;
        }
        seen[p][s] += 1;
        if f.fruit != f.seq % FRUITS.len() as u32 {
            problems.push(format!("producer {p} item {s} came as fruit {}", f.fruit));
        }
        if let Some(prev) = last[c][p] {
            if prev >= f.seq {
                problems.push(format!(
                    "consumer {c} got producer {p}'s item {s} after item {prev}"
                ));
            }
        }
        last[c][p] = Some(f.seq);
    }
    for (p, counts) in seen.iter().enumerate() {
        let missing = counts.iter().filter(|&&n| n == 0).count();
        let dups = counts.iter().filter(|&&n| n > 1).count();
        if missing != 0 {
            problems.push(format!("producer {p}: {missing} item(s) never arrived"));
        }
        if dups != 0 {
            problems.push(format!("producer {p}: {dups} item(s) arrived twice"));
        }
    }
    problems
}

fn print_summary(how: Shutdown, got: &[Receipt], producers: u32, consumers: u32) {
    println!(
        "{how:?} shutdown: {producers} producers x {PER_PRODUCER} fruit, {consumers} consumers, \
         queue of {CAPACITY}"
    );
    for c in 0..consumers {
        let mine: Vec<&Receipt> = got.iter().filter(|r| r.consumer == c).collect();
        let from: Vec<String> = (0..producers)
            .map(|p| {
                let n = mine.iter().filter(|r| r.fruit.producer == p).count();
                format!("{n:>3} from producer {p}")
            })
            .collect();
        println!(
            "  consumer {c}: {:>3} fruit ({})",
            mine.len(),
            from.join(", ")
        );
    }
    let tally: Vec<String> = FRUITS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let n = got.iter().filter(|r| r.fruit.fruit == i as u32).count();
            format!("{n} {name}")
        })
        .collect();
    println!("  sold: {}", tally.join(", "));
    println!(
        "  total {} of {}",
        got.len(),
        producers as usize * PER_PRODUCER as usize
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut problems = run(Shutdown::Close, 3, 3)?;
    problems.extend(run(Shutdown::Sentinel, 2, 2)?);
    if problems.is_empty() {
        println!("every fruit arrived exactly once, in order per producer");
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}
