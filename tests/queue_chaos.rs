//! kill -9 chaos: producers and consumers are SIGKILLed at random points, over
//! and over, while items flow; survivors and replacements keep going to the end.
//!
//! Accounting, with every item a unique id carrying a check value:
//! - nothing is delivered twice and nothing arrives corrupted;
//! - only items whose put was started arrive;
//! - each kill loses at most one item (the one the victim was copying, or had
//!   just taken and not yet recorded), and the queue's `abandoned` counter never
//!   exceeds the items actually lost;
//! - no hang: every wait is under a watchdog.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Scratch, join, spawn};
use multiproc::process::{Child, ExitStatus};
use multiproc::{Event, GetError, Queue};

const MAX_IDS: u64 = 1 << 23;
const BITMAP_WORDS: usize = (MAX_IDS / 64) as usize;
// Scratch layout (in u64 words).
const NEXT_ID: usize = 0;
const STOP: usize = 1;
const DUPLICATES: usize = 2;
const CORRUPT: usize = 3;
const ATTEMPTED: usize = 8;
const CONFIRMED: usize = ATTEMPTED + BITMAP_WORDS;
const RECEIVED: usize = CONFIRMED + BITMAP_WORDS;
const WORDS: usize = RECEIVED + BITMAP_WORDS;

fn check_of(id: u64) -> u64 {
    (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) & 0xffff_ffff
}

fn set(mem: &Scratch, base: usize, id: u64) -> bool {
    let old = mem
        .atomic(base + (id / 64) as usize)
        .fetch_or(1 << (id % 64), Ordering::SeqCst);
    old & (1 << (id % 64)) != 0
}

fn producer(q: &Queue<u64>, mem: &Scratch) -> i32 {
    loop {
        if mem.atomic(STOP).load(Ordering::SeqCst) != 0 {
            return 0;
        }
        let id = mem.atomic(NEXT_ID).fetch_add(1, Ordering::SeqCst);
        if id >= MAX_IDS {
            return 0;
        }
        set(mem, ATTEMPTED, id);
        match q.put(check_of(id) << 32 | id) {
            Ok(()) => {
                set(mem, CONFIRMED, id);
            }
            Err(_) => return 0, // closed
        }
    }
}

fn consumer(q: &Queue<u64>, mem: &Scratch) -> i32 {
    loop {
        match q.get() {
            Ok(v) => {
                let id = v & 0xffff_ffff;
                if id >= MAX_IDS || v >> 32 != check_of(id) {
                    mem.atomic(CORRUPT).fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                if set(mem, RECEIVED, id) {
                    mem.atomic(DUPLICATES).fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(GetError::Closed) => return 0,
            Err(_) => return 1,
        }
    }
}

fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn sigkill_chaos_loses_at_most_one_item_per_kill_and_never_wedges() {
    const KILLS: usize = 60;
    // Not a power of two: positions skip the unused indices of each lap.
    let q: Queue<u64> = Queue::anonymous(15).unwrap();
    let mem = Scratch::new(WORDS);
    // Never set: its timed wait is a randomized pause between kills (it decides
    // *where* victims die, not whether the test is correct).
    let pause = Event::anonymous().unwrap();
    let spawn_producer = || spawn(|| producer(&q, &mem));
    let spawn_consumer = || spawn(|| consumer(&q, &mem));
    let mut producers: Vec<Child> = (0..2).map(|_| spawn_producer()).collect();
    let mut consumers: Vec<Child> = (0..2).map(|_| spawn_consumer()).collect();
    let mut state = 0x1234_5678_9abc_def1u64;
    let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
    for _ in 0..KILLS {
        pause.wait_timeout(Duration::from_micros(200 + rng(&mut state) % 1_500));
        let pick = rng(&mut state);
        let (pool, kills) = if pick % 2 == 0 {
            (&mut producers, &mut producer_kills)
        } else {
            (&mut consumers, &mut consumer_kills)
        };
        let victim = pool.swap_remove((pick / 2) as usize % pool.len());
        common::kill(victim);
        *kills += 1;
        pool.push(if pick % 2 == 0 {
            spawn_producer()
        } else {
            spawn_consumer()
        });
    }
    mem.atomic(STOP).store(1, Ordering::SeqCst);
    for p in producers {
        assert_eq!(join(p), ExitStatus::Code(0));
    }
    q.shutdown();
    for c in consumers {
        assert_eq!(join(c), ExitStatus::Code(0));
    }

    let kills = producer_kills + consumer_kills;
    assert!(kills >= 50);
    assert_eq!(
        mem.atomic(DUPLICATES).load(Ordering::SeqCst),
        0,
        "an item was delivered twice"
    );
    assert_eq!(
        mem.atomic(CORRUPT).load(Ordering::SeqCst),
        0,
        "an item arrived corrupted"
    );
    let word = |base: usize, i: usize| mem.atomic(base + i).load(Ordering::SeqCst);
    let (mut attempted, mut received, mut lost, mut confirmed_missing) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..BITMAP_WORDS {
        let (a, c, r) = (word(ATTEMPTED, i), word(CONFIRMED, i), word(RECEIVED, i));
        assert_eq!(r & !a, 0, "received an item nobody put");
        attempted += u64::from(a.count_ones());
        received += u64::from(r.count_ones());
        lost += u64::from((a & !r).count_ones());
        confirmed_missing += u64::from((c & !r).count_ones());
    }
    let stats = q.stats();
    eprintln!(
        "chaos: {kills} kills ({producer_kills} producers, {consumer_kills} consumers), {attempted} items \
         attempted, {received} received, {lost} lost, stats {stats:?}"
    );
    assert!(received > 0 && attempted > 0);
    assert!(lost <= kills, "{lost} items lost for {kills} kills");
    // A confirmed item can only go missing with a consumer that died holding it.
    assert!(
        confirmed_missing <= consumer_kills,
        "{confirmed_missing} confirmed items lost"
    );
    assert!(
        stats.abandoned <= lost,
        "abandoned {} > lost {lost}",
        stats.abandoned
    );
    assert!(stats.dead_writers <= producer_kills);
    assert!(stats.dead_readers <= consumer_kills);
    assert_eq!(received + lost, attempted);
    assert!(q.is_empty());
}
