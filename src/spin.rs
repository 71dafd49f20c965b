//! The spin policy: how long a waiter re-checks before it parks.
//!
//! Spinning pays only while the peer that will answer is running on another
//! CPU: then the answer comes within a cache-line transfer (~0.1-0.3 µs) and a
//! park/unpark round (~20-25 µs each way on an idle 2-vCPU VM) is avoided. When
//! the machine is oversubscribed the peer is usually *not* running, and every
//! microsecond spun is taken from it or from someone else. Worse, a waiter that
//! spins (or `sched_yield`s) is a runnable task when the answer comes, and the
//! scheduler gives a runnable task no priority; a waiter that sleeps in the
//! futex is a *waking* task, which the scheduler (EEVDF, like CFS before it)
//! lets preempt a CPU hog at once. Measured with `cargo run --release -p compare -- --load N`
//! (see [`crate::WaitPolicy`]): a spin of 20 µs with `sched_yield` between
//! rounds made an 8-byte queue round trip take milliseconds with 4 or 8
//! CPU-bound processes on 2 cores, where parking at once stays at a kernel
//! pipe's ~10-15 µs.
//!
//! So the spin is **adaptive**, per thread, in the manner of glibc's adaptive
//! mutex but driven by outcomes:
//!
//! 1. A thread's spin budget starts at [`SPIN_TIME`] (about one idle wake-up's
//!    cost, which keeps spinning 2-competitive with parking at once).
//! 2. A spin that sees the condition within its budget *doubles* the budget,
//!    or sets it to twice the time the spin took if that is more (up to
//!    [`SPIN_TIME`]), so one success restores a budget that fits the waits
//!    this thread sees; a spin that runs out *halves* it, and below
//!    [`FLOOR`] the budget is zero. So a thread spins while most of its spins
//!    pay and stops within a handful of waits once they mostly do not.
//! 3. A spin that succeeded only after being descheduled (wall time far past
//!    its budget, [`PREEMPTED`]) counts as a failure: the CPU is contended.
//! 4. At budget zero the thread parks at once, except that about one wait in
//!    [`PROBE_EVERY`] (a random gap, so two threads do not probe in lock step)
//!    spins for up to [`PROBE_TIME`] to notice that spinning pays again. The
//!    probe must outlast an idle peer's futex wake-up (~20-25 µs on a 2-vCPU
//!    VM): once both sides of a ping-pong park, every answer comes one
//!    wake-up late, so a probe shorter than that never succeeds, and the pair
//!    stays parked (~25-50 µs round trips against ~0.4 µs) until something
//!    else disturbs it. Probes of 5 µs measured exactly that on an idle
//!    machine: a single hiccup of the peer collapsed both budgets, and some
//!    200 ms runs of `compare --only latency` never recovered (median
//!    53-56 µs). The gap is random because two threads whose probes fall in
//!    different phases of a fixed cycle would never meet.
//! 5. A long probe is also what hurts on a busy machine: with no idle CPU the
//!    scheduler tends to queue the peer this thread just woke on this
//!    thread's own CPU, behind the probe, so the probe runs out and the answer
//!    comes just after it. Measured with 4 CPU hogs on 2 cores
//!    (`compare --only latency --sizes 8 --load 4`, 3 runs each): the
//!    blocking round trip's p99 sat at 73 µs with 60 µs probes every ~8th
//!    wait and 38-43 µs with 30 µs probes, against a kernel pipe's 35-65 µs.
//!    So the probe is [`PROBE_TIME`] = 30 µs, and a probe that **runs out**
//!    doubles the mean gap to the next one (up to [`PROBE_EVERY`] `<<`
//!    [`MAX_BACKOFF`], ~64 waits); any answered probe resets it. Then the
//!    p99 measured 4.5-19 µs. The price is a slower escape from a parked
//!    pair after a long stall (`examples/spin_recovery`: the 90th percentile
//!    of round trips before recovery about 2,700 against 1,100-1,300 with
//!    60 µs probes at a fixed gap).
//! 6. The spin is `pause`s only, never `sched_yield`: yielding under load hands
//!    the CPU to a hog for a whole slice and makes the waiter a runnable task
//!    with a pushed-back deadline (see above).
//!
//! The budget is per thread because a thread tends to wait on the same peers;
//! a forked child starts with its parent's estimate. It is a hint: any value
//! is safe, since spinning only ever delays parking, and every caller re-checks
//! its condition after the spin.
//!
//! Under loom the spin checks once: spinning only multiplies interleavings.

#[cfg(not(loom))]
use std::cell::Cell;
#[cfg(not(loom))]
use std::time::{Duration, Instant};

/// The longest spin before parking: about one idle futex wake-up's cost.
#[cfg(not(loom))]
pub(crate) const SPIN_TIME: Duration = Duration::from_micros(20);

/// A budget below this is zero: park at once.
#[cfg(not(loom))]
const FLOOR: Duration = Duration::from_nanos(500);

/// At budget zero, about one wait in this many spins for [`PROBE_TIME`]: the
/// gap between probes is uniform in `1..=2 * PROBE_EVERY - 1` waits, and
/// doubles with every probe in a row that ran out (module doc, rule 5).
#[cfg(not(loom))]
const PROBE_EVERY: u32 = 8;

/// The most doublings of the gap between probes: at most ~256 waits apart.
#[cfg(not(loom))]
const MAX_BACKOFF: u32 = 3;

/// The probing spin at budget zero: longer than an idle peer's futex wake-up
/// (module doc, rule 4).
#[cfg(not(loom))]
const PROBE_TIME: Duration = Duration::from_micros(30);

/// Looks before a spin first reads the clock (see `spin_slow`).
#[cfg(not(loom))]
const FIRST_ROUND: u32 = 16;

/// A spin that ends this long past its budget was descheduled.
#[cfg(not(loom))]
const PREEMPTED: Duration = Duration::from_micros(50);

#[cfg(not(loom))]
thread_local! {
    /// This thread's spin budget in nanoseconds (at most [`SPIN_TIME`]).
    static BUDGET_NS: Cell<u32> = const { Cell::new(nanos(SPIN_TIME)) };
    /// Waits to park at once before the next probe (budget zero).
    static UNTIL_PROBE: Cell<u32> = const { Cell::new(PROBE_EVERY) };
    /// The state of the generator that draws the gaps between probes.
    static GAP_STATE: Cell<u64> = const { Cell::new(0) };
    /// Probes in a row that ran out, at most [`MAX_BACKOFF`].
    static PROBE_MISSES: Cell<u32> = const { Cell::new(0) };
}

/// `d` in nanoseconds; the constants here are all far below `u32::MAX` ns.
#[cfg(not(loom))]
const fn nanos(d: Duration) -> u32 {
    d.as_nanos() as u32
}

/// Re-checks `done` for up to this thread's spin budget (see the module doc);
/// `true` as soon as `done()` holds, `false` when the caller should park.
#[inline]
pub(crate) fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    if done() {
        return true;
    }
    #[cfg(not(loom))]
    {
        spin_slow(&mut done)
    }
    #[cfg(loom)]
    false
}

#[cfg(not(loom))]
#[cold]
fn spin_slow(done: &mut dyn FnMut() -> bool) -> bool {
    let budget = BUDGET_NS.with(Cell::get).min(nanos(SPIN_TIME));
    let probe = budget == 0;
    let limit = if probe {
        let left = UNTIL_PROBE.with(Cell::get);
        if left > 1 {
            UNTIL_PROBE.with(|u| u.set(left - 1));
            return false;
        }
        let misses = PROBE_MISSES.with(Cell::get);
        UNTIL_PROBE.with(|u| u.set(probe_gap(misses)));
        nanos(PROBE_TIME)
    } else {
        budget
    };
    // `done` may have side effects (a lock's try-acquire): it is called once
    // per look, and its first `true` ends the spin.
    //
    // The first round of looks reads no clock: most spins that pay end within
    // it (a cache-line transfer or two), and two clock reads would be a
    // quarter of an 8-byte round trip on this VM (~20-30 ns each through the
    // vDSO). A success there counts as instant: the round (16 pauses, well
    // under a microsecond) is too short to matter to a budget.
    for _ in 0..FIRST_ROUND {
        core::hint::spin_loop();
        if done() {
            let took = Some(Duration::ZERO);
            return settle(probe, budget, limit, took);
        }
    }
    let start = Instant::now();
    let took = 'spin: loop {
        for _ in 0..32 {
            core::hint::spin_loop();
            if done() {
                break 'spin Some(start.elapsed());
            }
        }
        if start.elapsed() >= Duration::from_nanos(u64::from(limit)) {
            break None;
        }
    };
    settle(probe, budget, limit, took)
}

/// Records a spin's outcome in this thread's budget (and probe state) and
/// returns whether it succeeded.
#[cfg(not(loom))]
fn settle(probe: bool, budget: u32, limit: u32, took: Option<Duration>) -> bool {
    let next = if probe {
        let (next, misses) = after_probe(PROBE_MISSES.with(Cell::get), took);
        PROBE_MISSES.with(|m| m.set(misses));
        next
    } else {
        next_budget(budget, limit, took)
    };
    BUDGET_NS.with(|b| b.set(next));
    took.is_some()
}

/// The budget and the count of failed probes in a row after a probe (module
/// doc, rule 5), given the count before it and the probe's outcome: `Some`
/// of the time it took to succeed, or `None` if it ran out.
#[cfg(not(loom))]
fn after_probe(misses: u32, took: Option<Duration>) -> (u32, u32) {
    match took {
        // Descheduled while spinning: the CPU is contended.
        Some(t) if t > PROBE_TIME + PREEMPTED => (0, (misses + 1).min(MAX_BACKOFF)),
        // Answered: spinning pays again; the budget is twice what the probe
        // took (at most `SPIN_TIME`) and probes are back to every ~8th wait.
        Some(t) => (next_budget(0, nanos(PROBE_TIME), Some(t)), 0),
        None => (0, (misses + 1).min(MAX_BACKOFF)),
    }
}

/// The number of waits until the next probe after `misses` failed probes in
/// a row: uniform in `1..=((2 * PROBE_EVERY) << misses) - 1`. The clock's
/// nanoseconds are mixed into the state at every draw: a forked child starts
/// with a copy of its parent's state, and would otherwise draw the same gaps
/// in lock step with it.
#[cfg(not(loom))]
fn probe_gap(misses: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let x = GAP_STATE.with(|g| {
        // splitmix64's finaliser over a Weyl sequence: cheap and well mixed,
        // and the quality needed is only "not in step with another thread".
        let mut z = g.get().wrapping_add(0x9e37_79b9_7f4a_7c15) ^ u64::from(nanos);
        g.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    });
    let span = u64::from(((2 * PROBE_EVERY) << misses.min(MAX_BACKOFF)) - 1);
    // Lossless: the remainder is below `span`, a small `u32`.
    1 + (x % span) as u32
}

/// The budget after a spin with budget `budget` and limit `limit` (the budget,
/// or the probe's time at budget zero) that succeeded after `took`, or ran out
/// (`None`).
#[cfg(not(loom))]
fn next_budget(budget: u32, limit: u32, took: Option<Duration>) -> u32 {
    let halve = |ns: u32| if ns / 2 < nanos(FLOOR) { 0 } else { ns / 2 };
    match took {
        // Descheduled while spinning: the CPU is contended.
        Some(t) if t > Duration::from_nanos(u64::from(limit)) + PREEMPTED => halve(budget),
        Some(t) => budget
            .saturating_mul(2)
            .max(u32::try_from(t.as_nanos().saturating_mul(2)).unwrap_or(u32::MAX))
            .clamp(2 * nanos(FLOOR), nanos(SPIN_TIME)),
        None => halve(budget),
    }
}

/// One step of a busy-poll: a relax hint (a loom yield under loom).
#[inline]
pub(crate) fn relax() {
    crate::loom::hint::spin_loop();
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The budget's rules, through outcomes that do not depend on timing: a
    //! condition that never holds (each spin then runs its whole budget, at
    //! most 20 µs), and the update rule fed with chosen durations.
    use super::*;

    fn budget() -> u32 {
        BUDGET_NS.with(Cell::get)
    }

    #[test]
    fn failures_shrink_the_budget_to_zero_then_probes_run() {
        // A fresh thread: its own budget, starting at the maximum.
        std::thread::spawn(|| {
            assert_eq!(budget(), nanos(SPIN_TIME));
            let mut failures = 0;
            while budget() != 0 {
                assert!(!spin_until(|| false));
                failures += 1;
                assert!(failures <= 8, "the budget halves on every failure");
            }
            // At zero a wait either looks once and parks, or probes (spins:
            // many looks). The gap after the j-th probe in a row that ran out
            // is drawn from 1..(2 * PROBE_EVERY << min(j - 1, MAX_BACKOFF)),
            // so the gaps are random and grow.
            let mut gaps = Vec::new();
            let mut since_probe = 0u32;
            while gaps.len() < 24 {
                let mut checks = 0u32;
                assert!(!spin_until(|| {
                    checks += 1;
                    false
                }));
                since_probe += 1;
                assert_eq!(budget(), 0, "a failed probe leaves the budget at zero");
                if checks > 1 {
                    gaps.push(since_probe);
                    since_probe = 0;
                }
                let bound = (2 * PROBE_EVERY) << (gaps.len() as u32).saturating_sub(1);
                assert!(since_probe < bound.min((2 * PROBE_EVERY) << MAX_BACKOFF));
            }
            // gaps[0] ends the budget's last spin; gaps[j] follows probe j.
            for (j, &g) in gaps.iter().enumerate().skip(1) {
                let span = (2 * PROBE_EVERY) << (j as u32 - 1).min(MAX_BACKOFF);
                assert!((1..span).contains(&g), "gap {j}: {gaps:?}");
            }
            assert!(
                gaps[1..].iter().any(|&g| g != gaps[1]),
                "random gaps: {gaps:?}"
            );
            assert!(
                gaps[8..].iter().any(|&g| g >= 2 * PROBE_EVERY),
                "failed probes space the next ones out: {gaps:?}"
            );
            assert_eq!(PROBE_MISSES.with(Cell::get), MAX_BACKOFF);
        })
        .join()
        .expect("test thread");
    }

    #[test]
    fn a_probe_outcome_sets_the_budget_and_the_backoff() {
        let quick = Some(Duration::from_nanos(300));
        let woken = Some(SPIN_TIME + Duration::from_micros(5));
        let preempted = Some(PROBE_TIME + PREEMPTED * 2);
        // Answered: spinning pays again, probes back to every ~8th wait.
        assert_eq!(after_probe(3, quick), (2 * nanos(FLOOR), 0));
        assert_eq!(after_probe(3, woken), (nanos(SPIN_TIME), 0));
        // Ran out, or was descheduled: no budget, the gaps grow, up to a cap.
        assert_eq!(after_probe(2, None), (0, 3));
        assert_eq!(after_probe(2, preempted), (0, 3));
        assert_eq!(after_probe(MAX_BACKOFF, None), (0, MAX_BACKOFF));
    }

    #[test]
    fn the_budget_doubles_on_success_and_halves_on_failure() {
        let max = nanos(SPIN_TIME);
        let quick = Some(Duration::from_nanos(300));
        assert_eq!(next_budget(max, max, quick), max, "capped");
        assert_eq!(next_budget(4_000, 4_000, quick), 8_000);
        assert_eq!(next_budget(4_000, 4_000, None), 2_000);
        // Below the floor the budget is zero; a probe's success restores one.
        assert_eq!(next_budget(nanos(FLOOR), nanos(FLOOR), None), 0);
        assert_eq!(next_budget(0, nanos(PROBE_TIME), quick), 2 * nanos(FLOOR));
        assert_eq!(next_budget(0, nanos(PROBE_TIME), None), 0);
        // A success sets the budget to twice what it took, if that is more.
        let slow = Some(Duration::from_nanos(1_500));
        assert_eq!(next_budget(0, nanos(PROBE_TIME), slow), 3_000);
        assert_eq!(next_budget(1_000, 1_000, slow), 3_000);
        assert_eq!(next_budget(8_000, 8_000, slow), 16_000);
        // A success long past the limit was descheduled: it counts as a failure.
        let late = Some(Duration::from_nanos(u64::from(max)) + PREEMPTED * 2);
        assert_eq!(next_budget(max, max, late), max / 2);
    }
}
