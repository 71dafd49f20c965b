//! Monotonic deadlines as the kernel wants them.

use std::time::Duration;

/// An absolute point on `CLOCK_MONOTONIC`, the clock futex `WAIT_BITSET` and
/// `pthread_mutex_clocklock` measure deadlines against.
///
/// `std::time::Instant` is `CLOCK_MONOTONIC` on Linux but does not expose its
/// value, so deadlines are computed here from a fresh `clock_gettime` reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    nanos: u128,
}

impl Deadline {
    /// The current monotonic time.
    pub(crate) fn now() -> Deadline {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists
        // on Linux, so the call cannot fail with valid arguments.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Deadline {
            nanos: u128::from(ts.tv_sec.unsigned_abs()) * 1_000_000_000
                + u128::from(ts.tv_nsec.unsigned_abs()),
        }
    }

    /// `d` from now, saturating far in the future.
    pub(crate) fn after(d: Duration) -> Deadline {
        Deadline {
            nanos: Deadline::now().nanos.saturating_add(d.as_nanos()),
        }
    }

    /// The earlier of `self` and `d` from now: waits sleep in bounded slices.
    pub(crate) fn min_after(self, d: Duration) -> Deadline {
        self.min(Deadline::after(d))
    }

    /// Time left until the deadline (zero when passed).
    pub(crate) fn remaining(self) -> Duration {
        let now = Deadline::now().nanos;
        let left = self.nanos.saturating_sub(now);
        Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX))
    }

    /// Whether the deadline has passed.
    pub(crate) fn passed(self) -> bool {
        Deadline::now() >= self
    }

    /// The deadline as an absolute `timespec`, clamped to what the kernel accepts.
    pub(crate) fn timespec(self) -> libc::timespec {
        let secs = self.nanos / 1_000_000_000;
        libc::timespec {
            tv_sec: libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX),
            // Always below 1e9, so it fits in a c_long.
            tv_nsec: (self.nanos % 1_000_000_000) as libc::c_long,
        }
    }
}

/// Seconds since the Unix epoch (`CLOCK_REALTIME`), for records people read.
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
