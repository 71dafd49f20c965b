//! `Event`: a flag processes wait on, in one futex word.
//!
//! ```text
//! bit 0  SET       the flag
//! bit 1  SLEEPERS  a waiter may be asleep (set by a waiter that found the flag
//!                  clear; cleared by `set`, which then wakes everyone)
//! ```
//!
//! `set` swaps in `SET` and wakes all only if `SLEEPERS` was there, so setting an
//! event nobody waits on makes no syscall. Waiters own nothing, so a waiter
//! killed at any point blocks nobody.

use crate::loom::atomic::{AtomicU32, Ordering};
use crate::loom::hint::spin_wait;
use crate::loom::{Deadline, futex};

const SET: u32 = 1;
const SLEEPERS: u32 = 2;

/// The event's shared state. SYNC(event): `set` is a Release swap, waiters read
/// with Acquire, so what the setter wrote before `set` is visible after `wait`.
#[repr(C)]
#[derive(Debug)]
pub struct RawEvent {
    word: AtomicU32,
}

impl RawEvent {
    /// A clear event.
    pub fn new() -> RawEvent {
        RawEvent {
            word: AtomicU32::new(0),
        }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        if self.word.swap(SET, Ordering::Release) & SLEEPERS != 0 {
            futex::wake(&self.word, u32::MAX);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing. SLEEPERS is never set together with
        // SET, so this leaves a sleeper's flag alone.
        self.word.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.word.load(Ordering::Acquire) & SET != 0
    }

    /// Waits until set or `deadline`; returns the flag.
    pub fn wait(&self, deadline: Option<Deadline>) -> bool {
        if self.is_set() {
            return true;
        }
        self.wait_slow(deadline)
    }

    #[cold]
    fn wait_slow(&self, deadline: Option<Deadline>) -> bool {
        if spin_wait(|| self.is_set()) {
            return true;
        }
        loop {
            let v = self.word.load(Ordering::Acquire);
            if v & SET != 0 {
                return true;
            }
            if deadline.is_some_and(Deadline::passed) {
                return false;
            }
            if v & SLEEPERS == 0
                && self
                    .word
                    .compare_exchange(v, SLEEPERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // No slices: an event has no owner whose death could strand a
            // waiter, and an untimed futex wait arms no timer.
            futex::wait(&self.word, SLEEPERS, deadline);
        }
    }
}

impl Default for RawEvent {
    fn default() -> Self {
        RawEvent::new()
    }
}

#[cfg(not(loom))]
pub use handle::Event;

#[cfg(not(loom))]
mod handle {
    use std::fmt;
    use std::time::Duration;

    use super::RawEvent;
    use crate::Error;
    use crate::loom::Deadline;
    use crate::region::{Object, Region, RegionOptions, SharedObject};

    // SAFETY: repr(C), one atomic.
    unsafe impl SharedObject for RawEvent {
        const KIND: &'static str = "Event";
        type Params = ();

        unsafe fn init(this: *mut Self, _: &()) -> Result<(), Error> {
            // SAFETY: the caller guarantees `this` is valid, aligned and unused.
            unsafe { this.write(RawEvent::new()) };
            Ok(())
        }
    }

    /// A flag shared between processes, like Python's `multiprocessing.Event`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = multiproc::Event::anonymous()?;
    /// assert!(!ev.wait_timeout(Duration::from_millis(1)));
    /// ev.set();
    /// ev.wait();
    /// assert!(ev.is_set());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Event {
        obj: Object<RawEvent>,
    }

    impl fmt::Debug for Event {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Event")
                .field("set", &self.is_set())
                .finish()
        }
    }

    impl Event {
        /// Wraps an object placed by the manager.
        pub(crate) fn from_object(obj: Object<RawEvent>) -> Event {
            Event { obj }
        }

        /// A clear event in an anonymous shared mapping.
        pub fn anonymous() -> Result<Event, Error> {
            Ok(Event {
                obj: Region::create_object(None, RegionOptions::default(), &())?,
            })
        }

        /// Creates a clear event under `name`.
        pub fn create(name: &str) -> Result<Event, Error> {
            Event::create_with(name, RegionOptions::default())
        }

        /// [`Event::create`] with explicit region options.
        pub fn create_with(name: &str, opts: RegionOptions) -> Result<Event, Error> {
            Ok(Event {
                obj: Region::create_object(Some(name), opts, &())?,
            })
        }

        /// Opens the event `name`.
        pub fn open(name: &str) -> Result<Event, Error> {
            Ok(Event {
                obj: Region::open_object(name)?,
            })
        }

        /// Sets the flag, waking every waiter in every process.
        pub fn set(&self) {
            self.obj.get().set();
        }

        /// Clears the flag.
        pub fn clear(&self) {
            self.obj.get().clear();
        }

        /// Whether the flag is set.
        pub fn is_set(&self) -> bool {
            self.obj.get().is_set()
        }

        /// Blocks until the flag is set.
        pub fn wait(&self) {
            while !self.obj.get().wait(None) {}
        }

        /// Blocks until the flag is set or `timeout` passes; returns the flag.
        pub fn wait_timeout(&self, timeout: Duration) -> bool {
            self.obj.get().wait(Some(Deadline::after(timeout)))
        }

        /// The region holding the event.
        pub fn region(&self) -> &Region {
            self.obj.region()
        }
    }
}
