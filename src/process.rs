//! Forking helpers: run a closure in a child process and wait for it.
//!
//! Shared objects created before [`fork`] (anonymous or named) are shared with the
//! child. The child runs the closure and ends with `_exit`, never returning into
//! the caller's code (no destructors, no atexit handlers, no test-harness code).

use std::time::Duration;

use crate::sys::process as sys;
use crate::sys::time::Deadline;

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The child exited with this code (the closure's return value; 101 if it
    /// panicked).
    Code(i32),
    /// The child was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }
}

/// A forked child process.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    reaped: Option<ExitStatus>,
}

/// Runs `f` in a forked child process and returns a handle to it. The child's
/// exit code is `f`'s return value (101 if `f` panics).
///
/// The child leaves every region it joined before `_exit`, so a child that
/// finished is not mistaken for one that died. The child starts with a copy of the parent's memory and only the calling
/// thread. In a multi-threaded parent, locks held by other threads stay locked
/// in the child, so keep `f` to simple work: this crate's primitives are safe to
/// use there (they allocate nothing after fork on their hot paths).
///
/// ```no_run
/// let ev = multiproc::Event::anonymous()?;
/// let child = multiproc::process::fork(|| { ev.set(); 0 })?;
/// ev.wait();
/// assert!(child.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fork(f: impl FnOnce() -> i32) -> std::io::Result<Child> {
    // SAFETY: the child only runs `f` and then `_exit`s; the documentation above
    // states the restrictions a multi-threaded parent places on `f`.
    match unsafe { sys::fork() }? {
        Some(pid) => Ok(Child { pid, reaped: None }),
        None => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // A child that finished leaves the regions it joined, so peers can tell
            // a normal exit from a death.
            crate::region::leave_all();
            sys::exit_now(code)
        }
    }
}

fn convert(e: sys::Exit) -> ExitStatus {
    match e {
        sys::Exit::Code(c) => ExitStatus::Code(c),
        sys::Exit::Signal(s) => ExitStatus::Signal(s),
    }
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the child to end.
    pub fn wait(mut self) -> std::io::Result<ExitStatus> {
        self.wait_inner(None)
            .map(|s| s.unwrap_or(ExitStatus::Signal(0)))
    }

    /// Waits at most `timeout`; `Ok(None)` if the child still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        self.wait_inner(Some(Deadline::after(timeout)))
    }

    fn wait_inner(&mut self, deadline: Option<Deadline>) -> std::io::Result<Option<ExitStatus>> {
        if let Some(s) = self.reaped {
            return Ok(Some(s));
        }
        let r = sys::wait_child(self.pid, deadline)?.map(convert);
        self.reaped = r;
        Ok(r)
    }

    /// Sends `SIGKILL` to the child (a no-op if it was already reaped).
    pub fn kill(&mut self) -> std::io::Result<()> {
        if self.reaped.is_some() {
            return Ok(());
        }
        sys::kill(self.pid, sys::SIGKILL)
    }
}
