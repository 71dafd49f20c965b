//! The classic ticket office: 10 buyer processes sell 100 tickets kept in
//! shared memory, and a `multiproc::Lock` makes sure no ticket is sold twice.
//!
//! ```text
//! cargo run --release --example tickets
//! ```
//!
//! The remaining count and a ticket -> buyer table live in a shared anonymous
//! mapping made here ([`Shared`]). Each buyer loops: lock, read the count, record
//! the sale of the next ticket (noticing if it already had a buyer), write the
//! count back, unlock. The count is updated with a plain load and store, so
//! without the lock two buyers could sell the same ticket. The parent waits for
//! everyone, checks that every ticket was sold exactly once and prints a tally
//! per buyer; it exits non-zero on any violation.

#![allow(
    clippy::disallowed_types,
    reason = "the example keeps plain std atomics in its own mapping; the lint is for the crate's loom facade"
)]

use std::error::Error;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use multiproc::Lock;
use multiproc::process::{self, Child};

const TICKETS: usize = 100;
const BUYERS: usize = 10;
/// Word holding the number of tickets left.
const REMAINING: usize = 0;
/// Word counting sales of a ticket that already had a buyer.
const DOUBLE_SALES: usize = 1;
/// Words `OWNER + t` for ticket `t` in `0..TICKETS`: buyer number + 1, 0 = unsold.
const OWNER: usize = 2;
/// Words `SOLD_BY + b`: how many tickets buyer `b` says it sold.
const SOLD_BY: usize = OWNER + TICKETS;
const WORDS: usize = SOLD_BY + BUYERS;
/// How long the parent waits for a buyer before killing it.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Words of plain data in a `MAP_SHARED | MAP_ANONYMOUS` mapping: forked
/// children see the very same memory as the parent.
#[derive(Clone, Copy)]
struct Shared {
    words: &'static [AtomicU64],
}

impl Shared {
    /// `n` zeroed words, shared with every child forked afterwards.
    fn new(n: usize) -> std::io::Result<Shared> {
        let len = n.max(1) * size_of::<AtomicU64>();
        // SAFETY: asks for a fresh mapping at an address the kernel picks, so no
        // existing memory is touched; the arguments are valid for an anonymous map.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the mapping is `len >= n * 8` bytes, page aligned (enough for
        // AtomicU64), zero-filled (a valid AtomicU64), and never unmapped, so a
        // `'static` borrow is sound. It is only accessed through atomics, in this
        // process and in forked children, which share the pages (MAP_SHARED).
        let words = unsafe { std::slice::from_raw_parts(p.cast::<AtomicU64>(), n) };
        Ok(Shared { words })
    }

    fn at(&self, i: usize) -> &'static AtomicU64 {
        &self.words[i]
    }

    fn get(&self, i: usize) -> u64 {
        self.words[i].load(Ordering::SeqCst)
    }
}

/// One buyer's loop; returns the exit code (0 = fine).
fn buy(lock: &Lock, mem: Shared, buyer: usize) -> i32 {
    loop {
        {
            let Ok(_guard) = lock.lock() else { return 1 };
            // A plain load and store: only the lock keeps two buyers apart.
            let left = mem.at(REMAINING).load(Ordering::Relaxed);
            if left == 0 {
                return 0;
            }
            let ticket = TICKETS - left as usize;
            // Check the seat map: a moment between reading the count and writing
            // it back, in which an unlocked office would sell the ticket twice.
            std::thread::sleep(Duration::from_micros(50));
            let previous = mem
                .at(OWNER + ticket)
                .swap(buyer as u64 + 1, Ordering::Relaxed);
            if previous != 0 {
                mem.at(DOUBLE_SALES).fetch_add(1, Ordering::Relaxed);
            }
            mem.at(SOLD_BY + buyer).fetch_add(1, Ordering::Relaxed);
            mem.at(REMAINING).store(left - 1, Ordering::Relaxed);
        }
        // Hand the customer their ticket outside the lock, so others get a turn.
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Waits for `child` (killing it after [`WATCHDOG`]); `Err` unless it exited 0.
fn reap(child: Child) -> Result<(), String> {
    let pid = child.pid();
    match child.wait_timeout(WATCHDOG) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(format!("buyer {pid} ended with {s:?}")),
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("buyer {pid} hung and was killed"))
        }
        Err(e) => Err(format!("waiting for buyer {pid}: {e}")),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let lock = Lock::anonymous()?;
    let mem = Shared::new(WORDS)?;
    mem.at(REMAINING).store(TICKETS as u64, Ordering::SeqCst);

    let buyers = (0..BUYERS)
        // SAFETY: the child runs only this crate's primitives and plain code, then `_exit`s; it takes no lock another thread of this program may hold.
        .map(|b| unsafe { process::fork_unchecked(|| buy(&lock, mem, b)) })
        .collect::<Result<Vec<_>, _>>()?;
    let pids: Vec<u32> = buyers.iter().map(Child::pid).collect();
    let mut problems: Vec<String> = buyers.into_iter().filter_map(|c| reap(c).err()).collect();

    // Tally from the ticket table, and cross-check with what each buyer counted.
    let mut sold: Vec<Vec<usize>> = vec![Vec::new(); BUYERS];
    for t in 0..TICKETS {
        match mem.get(OWNER + t) {
            0 => problems.push(format!("ticket {} was never sold", t + 1)),
            owner => sold[owner as usize - 1].push(t + 1),
        }
    }
    println!("{TICKETS} tickets, {BUYERS} buyers:");
    for (b, tickets) in sold.iter().enumerate() {
        let claimed = mem.get(SOLD_BY + b);
        let list: Vec<String> = tickets.iter().map(ToString::to_string).collect();
        println!(
            "  buyer {:>2} (pid {}): {:>3} tickets: {}",
            b + 1,
            pids[b],
            tickets.len(),
            list.join(" ")
        );
        if claimed != tickets.len() as u64 {
            problems.push(format!(
                "buyer {} counted {claimed} sales but holds {} tickets",
                b + 1,
                tickets.len()
            ));
        }
    }
    let total: usize = sold.iter().map(Vec::len).sum();
    let doubles = mem.get(DOUBLE_SALES);
    let left = mem.get(REMAINING);
    println!("  total sold {total}, left {left}, sold twice {doubles}");
    if doubles != 0 {
        problems.push(format!("{doubles} ticket(s) sold twice"));
    }
    if left != 0 || total != TICKETS {
        problems.push(format!("{total} sold and {left} left, out of {TICKETS}"));
    }

    if problems.is_empty() {
        println!("every ticket sold exactly once: no ticket sold twice");
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}
