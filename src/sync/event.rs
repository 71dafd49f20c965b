//! `Event`: a flag processes wait on, in one futex word.
//!
//! ```text
//! bit 0      SET       the flag
//! bit 1      SLEEPERS  a waiter may be asleep (set by a waiter that found the
//!                      flag clear; cleared by `set`, which then wakes everyone)
//! bits 2..32 GEN       bumped by every `set`
//! ```
//!
//! A waiter returns `true` when it sees `SET` *or* a generation other than the
//! one it read when it started, so every waiter blocked when `set` is called
//! returns `true` even if `clear` follows at once (Python's contract: `wait`
//! returns `True` if the flag was set before the call or after it started).
//! Waiting is [`crate::park`]'s loop in bit mode; `set` is one RMW that clears
//! `SLEEPERS` and wakes all only if it was there, so setting an event nobody
//! waits on makes no syscall. Waiters own nothing, so a waiter killed at any
//! point blocks nobody.

use crate::loom::Deadline;
use crate::loom::atomic::{AtomicU32, Ordering};
use crate::park::{Park, WaitPolicy, no_probe};

const SET: u32 = 1;
const SLEEPERS: u32 = 2;
/// One generation step; the generation is the word without its two flags.
const GEN: u32 = 4;

fn generation(v: u32) -> u32 {
    v & !(SET | SLEEPERS)
}

/// The event's shared state. SYNC(event): `set` is a Release RMW, waiters read
/// with Acquire, so what the setter wrote before `set` is visible after `wait`.
#[repr(C)]
#[derive(Debug)]
pub struct RawEvent {
    word: AtomicU32,
}

/// `Region::inspect`: whether the event is set, from a copy of its bytes.
#[cfg(not(loom))]
pub(crate) fn inspect(
    obj: crate::region::inspect::Snapshot<'_>,
    info: &mut crate::region::inspect::KindInfo,
) {
    let w = obj.u32(std::mem::offset_of!(RawEvent, word));
    info.flag("set", w.map(|w| w & SET != 0));
}

impl RawEvent {
    /// A clear event.
    pub fn new() -> RawEvent {
        RawEvent {
            word: AtomicU32::new(0),
        }
    }

    fn park(&self) -> Park<'_> {
        Park::bit(&self.word, SLEEPERS)
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let mut v = self.word.load(Ordering::Relaxed);
        loop {
            if v & SET != 0 && v & SLEEPERS == 0 {
                // Already set: nobody can be asleep (a waiter that sees SET
                // returns), so there is nothing to publish or wake.
                return;
            }
            let new = ((v & !SLEEPERS) | SET).wrapping_add(GEN);
            match self
                .word
                .compare_exchange_weak(v, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        // SLEEPERS was cleared by our RMW: wake everyone it hid.
        self.park().wake_if(v, u32::MAX);
    }

    /// Clears the flag.
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing. The generation and a sleeper's
        // flag are left alone.
        self.word.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.word.load(Ordering::Acquire) & SET != 0
    }

    /// Waits as `policy` says until the event is set (or was set since this
    /// call started) or `deadline`; `false` only on timeout.
    pub fn wait(&self, policy: WaitPolicy, deadline: Option<Deadline>) -> bool {
        self.wait_since(policy, deadline, self.snapshot())
    }

    /// The word as a wait starting now sees it (Acquire: SYNC(event)).
    pub(super) fn snapshot(&self) -> u32 {
        self.word.load(Ordering::Acquire)
    }

    /// [`RawEvent::wait`] for a wait that started when the word was `start`.
    pub(super) fn wait_since(
        &self,
        policy: WaitPolicy,
        deadline: Option<Deadline>,
        start: u32,
    ) -> bool {
        if start & SET != 0 {
            return true;
        }
        self.wait_slow(policy, deadline, generation(start))
    }

    #[cold]
    fn wait_slow(&self, policy: WaitPolicy, deadline: Option<Deadline>, started: u32) -> bool {
        let mut w = self.park().waiter(policy, deadline);
        loop {
            let v = w.load();
            if v & SET != 0 || generation(v) != started {
                return true;
            }
            if w.sleep(v, no_probe).is_err() {
                return false;
            }
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
    use crate::park::WaitPolicy;
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
        policy: WaitPolicy,
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
            Event {
                obj,
                policy: WaitPolicy::default(),
            }
        }

        /// The event behind an anonymous region's descriptor (a parent's,
        /// passed to a spawned child).
        pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Event, Error> {
            Ok(Event::from_object(crate::Region::open_fd::<RawEvent>(fd)?))
        }

        /// This handle with another [`WaitPolicy`] for its waits (clones made
        /// from it inherit it).
        pub fn with_wait_policy(mut self, policy: WaitPolicy) -> Event {
            self.policy = policy;
            self
        }

        /// The [`WaitPolicy`] of this handle's waits.
        pub fn wait_policy(&self) -> WaitPolicy {
            self.policy
        }

        /// A clear event in an anonymous shared mapping.
        pub fn anonymous() -> Result<Event, Error> {
            Ok(Event::from_object(Region::create_object(
                None,
                RegionOptions::default(),
                &(),
            )?))
        }

        /// Creates a clear event under `name`.
        pub fn create(name: &str) -> Result<Event, Error> {
            Event::create_with(name, RegionOptions::default())
        }

        /// [`Event::create`] with explicit region options.
        pub fn create_with(name: &str, opts: RegionOptions) -> Result<Event, Error> {
            Ok(Event::from_object(Region::create_object(
                Some(name),
                opts,
                &(),
            )?))
        }

        /// Opens the event `name`.
        pub fn open(name: &str) -> Result<Event, Error> {
            Ok(Event::from_object(Region::open_object(name)?))
        }

        /// `open` with the trust options of `opts`
        /// ([`RegionOptions::allow_foreign_owner`],
        /// [`RegionOptions::allow_shared_write`]).
        pub fn open_with(name: &str, opts: RegionOptions) -> Result<Event, Error> {
            Ok(Event::from_object(Region::open_object_with(name, opts)?))
        }

        /// Opens the event `name`, creating it (cleared) if the name does not
        /// exist; race-free between concurrent starters (see
        /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
        pub fn open_or_create(name: &str) -> Result<Event, Error> {
            Event::open_or_create_with(name, RegionOptions::default())
        }

        /// [`Event::open_or_create`] with region options (creation and trust).
        pub fn open_or_create_with(name: &str, opts: RegionOptions) -> Result<Event, Error> {
            Ok(Event::from_object(Region::open_or_create_object(
                name,
                opts,
                &(),
            )?))
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

        /// Blocks until the flag is set. Returns as soon as it was set after
        /// the call started, even if it was cleared again at once.
        pub fn wait(&self) {
            while !self.obj.get().wait(self.policy, None) {}
        }

        /// Blocks until the flag is set or `timeout` passes. Returns `true` if
        /// the flag was set before the call or at any time during it (even if
        /// cleared again), `false` only on timeout, like Python's `wait`.
        ///
        /// ```
        /// use std::time::Duration;
        /// let ev = multiproc::Event::anonymous()?;
        /// assert!(!ev.wait_timeout(Duration::from_millis(1)));
        /// ev.set();
        /// assert!(ev.wait_timeout(Duration::from_millis(1)));
        /// # Ok::<(), multiproc::Error>(())
        /// ```
        pub fn wait_timeout(&self, timeout: Duration) -> bool {
            self.obj
                .get()
                .wait(self.policy, Some(Deadline::after(timeout)))
        }

        /// The region holding the event.
        pub fn region(&self) -> &Region {
            self.obj.region()
        }
    }
}
