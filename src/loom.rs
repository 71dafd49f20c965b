//! One facade for everything an algorithm in shared memory touches: atomics,
//! `UnsafeCell`, spin hints, the futex, and process identity for robust words.
//!
//! Normally these are the real things (`core` atomics, the [`crate::sys`] futex).
//! Under `--cfg loom` they become loom's models, with a futex model (an
//! address-keyed table of condition variables, checked and slept on under one
//! lock, like the kernel's hash bucket) and a model of processes dying (each loom
//! thread is a "process" with a token; `kill_current_process` marks it dead, as the
//! kernel's robust-list walk marks a beacon). Algorithms import only from here, so
//! the code loom checks is the code that runs. `clippy.toml` forbids naming
//! `core::sync::atomic` elsewhere.

#[cfg(not(loom))]
pub(crate) mod atomic {
    //! `#[repr(transparent)]` wrappers over the `core` atomics: the same layout in
    //! shared memory, but a distinct type, so `clippy.toml` can forbid the `core`
    //! ones everywhere else.
    #![expect(clippy::disallowed_types, reason = "this is the facade")]
    pub(crate) use core::sync::atomic::Ordering;

    macro_rules! atomic {
        ($name:ident, $int:ty) => {
            #[repr(transparent)]
            #[derive(Debug, Default)]
            pub(crate) struct $name(core::sync::atomic::$name);

            #[allow(dead_code, reason = "the full atomic API, used as layers need it")]
            impl $name {
                #[inline]
                pub(crate) const fn new(v: $int) -> Self {
                    $name(core::sync::atomic::$name::new(v))
                }
                #[inline]
                pub(crate) fn load(&self, o: Ordering) -> $int {
                    self.0.load(o)
                }
                #[inline]
                pub(crate) fn store(&self, v: $int, o: Ordering) {
                    self.0.store(v, o)
                }
                #[inline]
                pub(crate) fn swap(&self, v: $int, o: Ordering) -> $int {
                    self.0.swap(v, o)
                }
                #[inline]
                pub(crate) fn compare_exchange(
                    &self,
                    cur: $int,
                    new: $int,
                    ok: Ordering,
                    err: Ordering,
                ) -> Result<$int, $int> {
                    self.0.compare_exchange(cur, new, ok, err)
                }
                #[inline]
                pub(crate) fn compare_exchange_weak(
                    &self,
                    cur: $int,
                    new: $int,
                    ok: Ordering,
                    err: Ordering,
                ) -> Result<$int, $int> {
                    self.0.compare_exchange_weak(cur, new, ok, err)
                }
                #[inline]
                pub(crate) fn fetch_add(&self, v: $int, o: Ordering) -> $int {
                    self.0.fetch_add(v, o)
                }
                #[inline]
                pub(crate) fn fetch_sub(&self, v: $int, o: Ordering) -> $int {
                    self.0.fetch_sub(v, o)
                }
                #[inline]
                pub(crate) fn fetch_or(&self, v: $int, o: Ordering) -> $int {
                    self.0.fetch_or(v, o)
                }
                #[inline]
                pub(crate) fn fetch_and(&self, v: $int, o: Ordering) -> $int {
                    self.0.fetch_and(v, o)
                }
                /// The wrapped `core` atomic, for the syscall layer.
                #[inline]
                pub(crate) fn as_core(&self) -> &core::sync::atomic::$name {
                    &self.0
                }
            }
        };
    }

    atomic!(AtomicU32, u32);
    atomic!(AtomicU64, u64);

    /// A memory fence (seqlocks need one on each side of their data).
    #[inline]
    #[allow(dead_code, reason = "used by the seqlocked layers")]
    pub(crate) fn fence(o: Ordering) {
        core::sync::atomic::fence(o);
    }
}

#[cfg(loom)]
pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
}

/// `UnsafeCell` reachable only through closures, so loom can see every access.
pub(crate) mod cell {
    #[cfg(not(loom))]
    #[expect(clippy::disallowed_types, reason = "this is the facade")]
    type Inner<T> = core::cell::UnsafeCell<T>;
    #[cfg(loom)]
    type Inner<T> = loom::cell::UnsafeCell<T>;

    /// An `UnsafeCell` whose contents are reached through `with`/`with_mut` only.
    #[derive(Debug)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(Inner<T>);

    #[allow(dead_code, reason = "used by the shared-value layer")]
    impl<T> UnsafeCell<T> {
        pub(crate) fn new(v: T) -> UnsafeCell<T> {
            UnsafeCell(Inner::new(v))
        }

        /// Runs `f` with a shared pointer to the contents.
        #[cfg(not(loom))]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a unique pointer to the contents.
        #[cfg(not(loom))]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }

        #[cfg(loom)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            self.0.with(f)
        }

        #[cfg(loom)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            self.0.with_mut(f)
        }
    }
}

/// Spinning before parking.
pub(crate) mod hint {
    /// A CPU relax hint (`pause`), or a loom yield.
    #[inline]
    pub(crate) fn spin_loop() {
        #[cfg(not(loom))]
        core::hint::spin_loop();
        #[cfg(loom)]
        loom::thread::yield_now();
    }

    /// Re-checks `done` under the crate's one spin policy
    /// ([`crate::spin::spin_until`]); `true` as soon as it holds. Under loom it
    /// checks once: spinning only multiplies interleavings.
    #[inline]
    pub(crate) fn spin_wait(done: impl FnMut() -> bool) -> bool {
        crate::spin::spin_until(done)
    }
}

pub(crate) use crate::sys::futex::WaitResult;
pub(crate) use crate::sys::time::Deadline;

/// A futex word the kernel itself may write (a beacon on a robust list): the
/// plain `core` atomic, as `crate::sys::robust` lays it out.
#[cfg(not(loom))]
#[expect(
    clippy::disallowed_types,
    reason = "the kernel ABI type of a beacon word"
)]
pub(crate) type KernelWord = core::sync::atomic::AtomicU32;
/// Under loom no beacon exists; owner death is modelled by the owners mock.
#[cfg(loom)]
pub(crate) type KernelWord = atomic::AtomicU32;

#[cfg(not(loom))]
pub(crate) mod futex {
    //! The real shared futex.
    use super::atomic::{AtomicU32, Ordering};
    use super::{Deadline, KernelWord, WaitResult};

    /// Sleeps while `*word == expected`, until woken or `deadline`.
    #[inline]
    pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> WaitResult {
        crate::sys::futex::wait(word.as_core(), expected, deadline)
    }

    /// Wakes up to `n` waiters of `word`.
    #[inline]
    pub(crate) fn wake(word: &AtomicU32, n: u32) -> u32 {
        crate::sys::futex::wake(word.as_core(), n)
    }

    /// Sleeps while `*word == expected` and, if given, the beacon still holds its
    /// value: a wake on either (an unlock, or the kernel's death notice) ends it.
    #[inline]
    pub(crate) fn wait2(
        word: &AtomicU32,
        expected: u32,
        beacon: Option<(&KernelWord, u32)>,
        deadline: Option<Deadline>,
    ) -> WaitResult {
        match beacon {
            Some((b, v)) => crate::sys::futex::wait2(word.as_core(), expected, b, v, deadline),
            None => crate::sys::futex::wait(word.as_core(), expected, deadline),
        }
    }

    /// Prepares to sleep on a beacon that held `value`: sets `FUTEX_WAITERS` so
    /// the kernel wakes a sleeper when the owner dies. `None` if the beacon is not
    /// armed (nothing would wake us: the slice bounds the wait instead).
    pub(crate) fn beacon_waiters(word: &KernelWord, value: u32) -> Option<(&KernelWord, u32)> {
        use crate::sys::robust::{FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS};
        if value & FUTEX_TID_MASK == 0 || value & FUTEX_OWNER_DIED != 0 {
            return None;
        }
        if value & FUTEX_WAITERS != 0 {
            return Some((word, value));
        }
        let want = value | FUTEX_WAITERS;
        // Relaxed: the bit carries no data. On failure the word changed (the owner
        // died or left): waiting on the old value returns at once, and the caller
        // re-probes.
        let _ = word.compare_exchange(value, want, Ordering::Relaxed, Ordering::Relaxed);
        Some((word, want))
    }
}

#[cfg(not(loom))]
pub(crate) use crate::sys::process::thread_token;

#[cfg(loom)]
pub(crate) use model::{beacon, futex, kill_current_process, process_token, thread_token};

#[cfg(loom)]
mod model {
    use std::collections::HashMap;

    use loom::sync::{Arc, Condvar, Mutex};

    use super::atomic::{AtomicU32, Ordering};
    use super::{Deadline, WaitResult};

    pub(crate) mod futex {
        //! A futex model: `wait` compares the word and sleeps under one table lock,
        //! `wake` notifies under the same lock, so a wake can never slip between
        //! the comparison and the sleep (the kernel's guarantee). Deadlines are
        //! ignored: a timed wait blocks until woken, so loom checks that every
        //! wait is ended by a wake and never by a slice expiring.
        use super::*;

        loom::lazy_static! {
            static ref TABLE: Mutex<HashMap<usize, Arc<Condvar>>> = Mutex::new(HashMap::new());
        }

        pub(crate) fn wait(
            word: &AtomicU32,
            expected: u32,
            _deadline: Option<Deadline>,
        ) -> WaitResult {
            let key = word as *const AtomicU32 as usize;
            let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            // SeqCst: stands for the kernel's full barrier between queueing the
            // waiter and reading the word.
            if word.load(Ordering::SeqCst) != expected {
                return WaitResult::Changed;
            }
            let cv = table
                .entry(key)
                .or_insert_with(|| Arc::new(Condvar::new()))
                .clone();
            table = cv.wait(table).unwrap_or_else(|e| e.into_inner());
            drop(table);
            WaitResult::Woken
        }

        /// `futex_waitv` on the word and a beacon: both compared under the table
        /// lock, so a death (`kernel_mark_dead`, also under it) either is seen
        /// here or happens after we sleep, when the dying owner's wake of the lock
        /// word (`simulate_owner_death`) ends the sleep.
        pub(crate) fn wait2(
            word: &AtomicU32,
            expected: u32,
            beacon: Option<(&AtomicU32, u32)>,
            _deadline: Option<Deadline>,
        ) -> WaitResult {
            let key = word as *const AtomicU32 as usize;
            let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            if word.load(Ordering::SeqCst) != expected
                || beacon.is_some_and(|(b, v)| b.load(Ordering::SeqCst) != v)
            {
                return WaitResult::Changed;
            }
            let cv = table
                .entry(key)
                .or_insert_with(|| Arc::new(Condvar::new()))
                .clone();
            table = cv.wait(table).unwrap_or_else(|e| e.into_inner());
            drop(table);
            WaitResult::Woken
        }

        /// Beacons need no waiters bit in the model: deaths wake the lock word.
        pub(crate) fn beacon_waiters(word: &AtomicU32, value: u32) -> Option<(&AtomicU32, u32)> {
            Some((word, value))
        }

        /// The kernel's exit hook on a beacon, atomic with respect to sleepers.
        pub(crate) fn kernel_mark_dead(beacon: &AtomicU32) {
            let table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            beacon.store(0, Ordering::SeqCst);
            drop(table);
        }

        pub(crate) fn wake(word: &AtomicU32, n: u32) -> u32 {
            let key = word as *const AtomicU32 as usize;
            let table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cv) = table.get(&key) {
                if n == 1 {
                    cv.notify_one();
                } else {
                    cv.notify_all();
                }
            }
            drop(table);
            n
        }
    }

    /// A per-thread token, unique within a model run.
    pub(crate) fn thread_token() -> u64 {
        #[expect(clippy::disallowed_types, reason = "an id source outside the model")]
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        loom::thread_local! {
            static TOKEN: u64 = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        TOKEN.with(|t| *t)
    }

    /// The calling loom thread's "process" token (an owner token for robust
    /// words): unique, non-zero, 31 bits, renewed when the thread "dies".
    pub(crate) fn process_token() -> u32 {
        PROCESS.with(|p| {
            let t = p.get();
            if t != 0 {
                return t;
            }
            let t = fresh_process_token();
            p.set(t);
            t
        })
    }

    fn fresh_process_token() -> u32 {
        #[expect(clippy::disallowed_types, reason = "an id source outside the model")]
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 0x0fff_ffff + 1
    }

    loom::thread_local! {
        static PROCESS: std::cell::Cell<u32> = std::cell::Cell::new(0);
    }

    loom::lazy_static! {
        static ref BEACONS: Mutex<HashMap<u32, &'static AtomicU32>> = Mutex::new(HashMap::new());
    }

    /// The "beacon" of the process owning `token`: 1 while it lives, 0 once dead.
    /// Leaked per model execution (tokens are never reused across executions).
    pub(crate) fn beacon(token: u32) -> &'static AtomicU32 {
        let mut map = BEACONS.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(token)
            .or_insert_with(|| Box::leak(Box::new(AtomicU32::new(1))))
    }

    /// The calling loom thread's process dies; the thread goes on as a new one.
    pub(crate) fn kill_current_process() {
        futex::kernel_mark_dead(beacon(process_token()));
        PROCESS.with(|p| p.set(fresh_process_token()));
    }
}
