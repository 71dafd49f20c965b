//! `JoinableQueue`'s unfinished-task counter, beside the ring in shared memory.

use super::{RingCore, SLEEPERS};
use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::park::{Park, WaitPolicy, no_probe};

/// Unfinished-task accounting for joinable queues.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Tasks {
    /// Items put and not yet marked done. SYNC(tasks): decrements are AcqRel
    /// RMWs followed by an RMW bump of `joined`.
    unfinished: AtomicU64,
    /// Eventcount for `join` (`SLEEPERS` bit + epoch).
    joined: AtomicU32,
    /// 1 for a joinable queue. Written once at creation.
    joinable: AtomicU32,
}

impl Tasks {
    pub(super) fn new(joinable: bool) -> Tasks {
        Tasks {
            unfinished: AtomicU64::new(0),
            joined: AtomicU32::new(0),
            joinable: AtomicU32::new(u32::from(joinable)),
        }
    }
}

impl RingCore {
    /// Whether task accounting is on.
    pub fn is_joinable(&self) -> bool {
        self.tasks.0.joinable.load(Ordering::Relaxed) != 0
    }

    /// Counts `n` more unfinished tasks (before the items are published).
    pub(crate) fn task_add(&self, n: u64) {
        // Relaxed: the item's Release publish orders this before any get, and so
        // before any `task_done` for it.
        self.tasks.0.unfinished.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks one task done; `false` (and no change) if none is unfinished.
    pub fn task_done(&self) -> bool {
        let mut n = self.tasks.0.unfinished.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return false;
            }
            match self.tasks.0.unfinished.compare_exchange_weak(
                n,
                n - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        if n == 1 {
            self.bump(&self.tasks.0.joined);
        }
        true
    }

    /// Unfinished tasks now.
    pub fn unfinished(&self) -> u64 {
        self.tasks.0.unfinished.load(Ordering::Acquire)
    }

    /// Waits until every task is done, or `deadline`; returns whether it is.
    pub fn join_wait(&self, policy: WaitPolicy, deadline: Option<Deadline>) -> bool {
        let mut w = Park::bit(&self.tasks.0.joined, SLEEPERS).waiter(policy, deadline);
        loop {
            // SYNC(tasks): read before `unfinished`, as for the ring's eventcounts.
            let seen = w.load();
            if self.unfinished() == 0 {
                return true;
            }
            if w.sleep(seen, no_probe).is_err() {
                return self.unfinished() == 0;
            }
        }
    }
}
