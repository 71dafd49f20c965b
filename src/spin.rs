//! The spin policy: how long a waiter re-checks before it parks.
//!
//! Spinning pays only while the peer that will answer is running on another
//! CPU: then the answer comes within a cache-line transfer (~0.1-0.3 µs) and a
//! park/unpark round (~20-25 µs each way on a 2-vCPU VM) is avoided. When the
//! machine is oversubscribed the peer is usually *not* running, and every
//! microsecond spun is taken from it or from someone else. So the spin is short
//! and it watches for that case:
//!
//! 1. `PURE_ROUNDS` rounds of 32 `pause`s (~1-2 µs): cheap even when useless.
//! 2. Then `sched_yield` between rounds, timing each yield. A yield that comes
//!    back within [`YIELD_BUSY`] found nobody else runnable on this CPU, so the
//!    peer, if it is running, has a CPU of its own: keep spinning. A yield that
//!    took longer ran another task: the CPU is contended, and spinning on would
//!    only delay the peer. Stop and park (the futex wake then hands the CPU over
//!    directly, which is what a kernel pipe gets for free).
//! 3. Never longer than [`SPIN_TIME`] in all, about one wake-up's cost, which
//!    keeps the policy 2-competitive with parking at once when the peer is slow.
//!
//! Under loom the spin checks once: spinning only multiplies interleavings.

#[cfg(not(loom))]
use std::time::Duration;

/// The longest spin before parking: about one futex wake-up's cost.
#[cfg(not(loom))]
pub(crate) const SPIN_TIME: Duration = Duration::from_micros(20);

/// A `sched_yield` that takes longer than this ran another task.
#[cfg(not(loom))]
pub(crate) const YIELD_BUSY: Duration = Duration::from_micros(5);

/// Rounds of 32 `pause`s before the spin starts yielding.
#[cfg(not(loom))]
const PURE_ROUNDS: u32 = 4;

/// Re-checks `done` for up to [`SPIN_TIME`], stopping early when the CPU is
/// contended (see the module doc); `true` as soon as `done()` holds.
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
    use crate::sys::time::Deadline;
    let until = Deadline::after(SPIN_TIME);
    let mut rounds = 0u32;
    loop {
        for _ in 0..32 {
            core::hint::spin_loop();
            if done() {
                return true;
            }
        }
        rounds += 1;
        if rounds <= PURE_ROUNDS {
            continue;
        }
        if until.passed() {
            return false;
        }
        let busy = Deadline::after(YIELD_BUSY);
        std::thread::yield_now();
        if busy.passed() {
            // Another task had this CPU: the machine is oversubscribed.
            return done();
        }
    }
}

/// One step of a busy-poll: a relax hint (a loom yield under loom).
#[inline]
pub(crate) fn relax() {
    crate::loom::hint::spin_loop();
}
