//! Processes, Python's way: [`Process`] (`start`, `join`, `is_alive`, `exitcode`,
//! `terminate`, `kill`, `daemon`) and the [`fork`] helper over `fork(2)`, and
//! [`Spawn`], the spawn start method (a fresh `exec` of this program running a
//! given entry point), for parents that run threads.
//!
//! Shared objects created before a child starts (anonymous or named) are shared
//! with it. The child runs its closure and ends with `_exit`, never returning into
//! the caller's code (no destructors, no atexit handlers, no test-harness code).
//! Before `_exit` it flushes Rust's `stdout` (`stderr` is unbuffered) and leaves
//! every region it joined, so peers can tell a child that finished from one that
//! died. The parent flushes its own `stdout` before forking, so text buffered
//! before the fork is not printed twice. (A child started with an `_unchecked`
//! call skips its flush: another thread of the parent may have held `stdout`'s
//! lock at the fork.)
//!
//! # Exit codes
//!
//! [`Child::exitcode`] follows Python's `Process.exitcode`: `None` while the child
//! runs, its exit code once it exited, `-N` when signal `N` ended it. What the
//! closure returns becomes the exit code through [`IntoExitCode`] (`()` is 0, an
//! `i32` is itself, an `Err` is 1 after printing it, as `main` does). A closure
//! that panics exits with [`PANIC_EXIT_CODE`] (101, as a Rust program whose `main`
//! panics; Python's uncaught exception gives 1).
//!
//! # Threads
//!
//! A forked child has only the thread that forked. Locks other threads held at
//! that moment (the allocator's arenas are handled by glibc, but `stdout`'s lock,
//! a logger's mutex or any of the program's own locks are not) stay locked in the
//! child forever, so forking a multi-threaded process can deadlock the child.
//! [`Process::start`] and [`fork`] therefore refuse with
//! [`StartError::Threads`] when the process runs threads other than the calling
//! one (the crate's own parked `multiproc-beacon` thread, which holds no locks,
//! is not counted). [`Process::start_unchecked`] and [`fork_unchecked`] skip the
//! check; they are `unsafe` because the caller must keep the child away from
//! locks other threads may hold.
//!
//! # Daemons and dropped handles
//!
//! A daemon child ([`Process::daemon`]) never outlives its parent: it asks the
//! kernel for a signal when the parent dies (`PR_SET_PDEATHSIG`), and kills
//! itself if the parent already died before that request took effect. The
//! kernel sends that signal when the *thread* that forked exits; the child
//! catches it and kills itself only if its parent process is gone (it was
//! reparented), so a daemon started from a thread that ends early lives on
//! with its parent. The signal is `SIGRTMAX - 1`: a daemon's own code should
//! leave that one alone.
//!
//! Dropping a [`Child`] never leaves a zombie: a child that already ended is
//! reaped; a daemon child still running is killed and reaped; a non-daemon child
//! still running is waited for (Python joins non-daemon children at exit), except
//! while the dropping thread panics, when it is killed and reaped so an unwinding
//! parent never hangs on a child that waits for it.

mod spawn;

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::Duration;

use crate::loom::atomic::{AtomicU64, Ordering};
use crate::sys::process as sys;
use crate::sys::time::Deadline;

/// The exit code of a child whose closure panicked (Rust's own code for a
/// panicking `main`; Python's uncaught exception gives 1).
pub const PANIC_EXIT_CODE: i32 = 101;

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The child exited with this code (what its closure returned, through
    /// [`IntoExitCode`]; [`PANIC_EXIT_CODE`] if it panicked).
    Code(i32),
    /// The child was killed by this signal. `Signal(0)` means the status was
    /// lost: someone else reaped the child (`SIGCHLD` ignored, or a
    /// `waitpid(-1)` elsewhere in the program); it no longer runs.
    Signal(i32),
}

impl ExitStatus {
    /// Exited with code 0.
    ///
    /// ```
    /// use multiproc::process::ExitStatus;
    /// assert!(ExitStatus::Code(0).success());
    /// assert!(!ExitStatus::Signal(9).success());
    /// ```
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }

    /// Python's `exitcode`: the code, or `-signal`.
    ///
    /// ```
    /// use multiproc::process::ExitStatus;
    /// assert_eq!(ExitStatus::Code(3).code(), 3);
    /// assert_eq!(ExitStatus::Signal(15).code(), -15);
    /// ```
    pub fn code(&self) -> i32 {
        match *self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => -s,
        }
    }
}

/// What a child's closure may return; it becomes the child's exit code.
///
/// ```
/// use multiproc::process::IntoExitCode;
/// assert_eq!(().into_exit_code(), 0);
/// assert_eq!(7i32.into_exit_code(), 7);
/// assert_eq!(Ok::<(), &str>(()).into_exit_code(), 0);
/// ```
pub trait IntoExitCode {
    /// The exit code.
    fn into_exit_code(self) -> i32;
}

impl IntoExitCode for () {
    fn into_exit_code(self) -> i32 {
        0
    }
}

impl IntoExitCode for i32 {
    fn into_exit_code(self) -> i32 {
        self
    }
}

impl IntoExitCode for u8 {
    fn into_exit_code(self) -> i32 {
        i32::from(self)
    }
}

impl<T: IntoExitCode, E: fmt::Debug> IntoExitCode for Result<T, E> {
    /// `Ok(t)`: `t`'s code; `Err(e)`: prints `Error: {e:?}` to file descriptor 2
    /// (as `main` does, but without taking `stderr`'s lock) and gives 1.
    fn into_exit_code(self) -> i32 {
        match self {
            Ok(t) => t.into_exit_code(),
            Err(e) => {
                sys::write_stderr(format!("Error: {e:?}\n").as_bytes());
                1
            }
        }
    }
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The process runs other threads, so forking it could deadlock the child
    /// (see the [module docs](self#threads)); use the spawn start method or
    /// [`Process::start_unchecked`].
    #[error(
        "refusing to fork: the process runs {threads} threads (start children with \
         process::Spawn, or a pool with PoolBuilder::spawn(); or, knowing the \
         restrictions, the unsafe *_unchecked variants)"
    )]
    Threads {
        /// Threads counted (the beacon thread excluded).
        threads: usize,
    },
    /// `fork` (or reading `/proc/self/task`) failed.
    #[error("cannot start a child process: {0}")]
    Io(#[from] io::Error),
}

impl From<StartError> for io::Error {
    fn from(e: StartError) -> io::Error {
        match e {
            StartError::Io(e) => e,
            e @ StartError::Threads { .. } => io::Error::other(e),
        }
    }
}

/// Refuses when the process runs threads besides the caller's (and the beacon).
pub(crate) fn check_single_threaded() -> Result<(), StartError> {
    let threads = sys::thread_count()?;
    if threads > 1 {
        return Err(StartError::Threads { threads });
    }
    Ok(())
}

pub use spawn::{MAX_SPAWN_ARG, Spawn};
pub(crate) use spawn::{take_inherited, take_inherited_queue};

static NEXT_NAME: AtomicU64 = AtomicU64::new(1);

/// Python's default name, `Process-N`, counted in this process.
fn next_name() -> String {
    // Relaxed: a process-local counter for names only.
    format!("Process-{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed))
}

/// A child process to start, Python's `multiprocessing.Process` with a closure
/// as its `target`.
///
/// ```no_run
/// use multiproc::process::Process;
///
/// let ev = multiproc::Event::anonymous()?;
/// let mut child = Process::new(|| ev.set()).name("setter").start()?;
/// assert_eq!(child.name(), "setter");
/// assert!(child.join()?.success());
/// assert_eq!(child.exitcode(), Some(0));
/// assert!(ev.is_set());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Process<F> {
    f: F,
    name: Option<String>,
    daemon: bool,
}

impl<F> fmt::Debug for Process<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .finish_non_exhaustive()
    }
}

impl<F, R> Process<F>
where
    F: FnOnce() -> R,
    R: IntoExitCode,
{
    /// A process that will run `f` (not started yet).
    ///
    /// ```
    /// let p = multiproc::process::Process::new(|| 0);
    /// # drop(p);
    /// ```
    ///
    /// A closure that never returns (it calls `std::process::exit`, or loops
    /// until killed) has the never type `!`, which stable Rust cannot give an
    /// [`IntoExitCode`]: name a return type for it.
    ///
    /// ```
    /// use multiproc::process::Process;
    /// let p = Process::new(|| -> i32 { std::process::exit(3) });
    /// # drop(p);
    /// ```
    pub fn new(f: F) -> Process<F> {
        Process {
            f,
            name: None,
            daemon: false,
        }
    }

    /// The name reported by [`Child::name`] (default `Process-N`, counted in this
    /// process, as Python does). Informational only.
    ///
    /// ```
    /// let p = multiproc::process::Process::new(|| 0).name("worker");
    /// # drop(p);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Process<F> {
        self.name = Some(name.into());
        self
    }

    /// Whether the child is a daemon: killed when its parent dies, and killed
    /// (not waited for) when its handle is dropped. Default `false`.
    ///
    /// ```
    /// let p = multiproc::process::Process::new(|| 0).daemon(true);
    /// # drop(p);
    /// ```
    pub fn daemon(mut self, daemon: bool) -> Process<F> {
        self.daemon = daemon;
        self
    }

    /// Forks the child, which runs the closure and exits with its code.
    ///
    /// Refused with [`StartError::Threads`] when this process runs other threads
    /// (see the [module docs](self#threads)).
    ///
    /// ```no_run
    /// let mut c = multiproc::process::Process::new(|| 3).start()?;
    /// assert_eq!(c.join()?.code(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(self) -> Result<Child, StartError> {
        check_single_threaded()?;
        // SAFETY: the process has no other thread whose locks the child could
        // inherit held.
        unsafe { self.start_inner(true) }
    }

    /// [`Process::start`] without the thread check.
    ///
    /// # Safety
    ///
    /// If other threads run, the closure must not take any lock (including the
    /// allocator's own, `stdout`'s, or the program's) that another thread might
    /// hold at the moment of the fork; this crate's primitives take no such
    /// lock. For the same reason the child
    /// does not flush Rust's `stdout` at exit (its lock may be held by another
    /// thread): end printed lines with a newline, or flush them yourself.
    pub unsafe fn start_unchecked(self) -> Result<Child, StartError> {
        // SAFETY: forwarded to the caller.
        unsafe { self.start_inner(false) }
    }

    /// # Safety
    ///
    /// As [`Process::start_unchecked`]; `single_threaded` says the check passed,
    /// so the child may take `stdout`'s lock to flush it.
    unsafe fn start_inner(self, single_threaded: bool) -> Result<Child, StartError> {
        let name = self.name.unwrap_or_else(next_name);
        let f = self.f;
        // SAFETY: the caller upholds the post-fork restrictions.
        let pid =
            unsafe { fork_child(self.daemon, single_threaded, move || f().into_exit_code()) }?;
        Ok(Child {
            pid,
            name,
            daemon: self.daemon,
            reaped: Mutex::new(None),
        })
    }
}

/// Forks; in the child runs `f` and exits (flushing `stdout` first if `flush`).
/// Returns the child's pid.
///
/// # Safety
///
/// As [`Process::start_unchecked`]; `flush` only if no other thread ran at the
/// fork.
pub(crate) unsafe fn fork_child(
    daemon: bool,
    flush: bool,
    f: impl FnOnce() -> i32,
) -> io::Result<u32> {
    // SAFETY: forwarded to the caller.
    unsafe { fork_child_with(daemon, flush, None, f) }
}

/// [`fork_child`], the child not counting as an end of the inherited queues
/// whose regions `skip` names (see
/// [`inherit_in_child`](crate::queue::ends::inherit_in_child)).
///
/// # Safety
///
/// As [`fork_child`].
pub(crate) unsafe fn fork_child_with(
    daemon: bool,
    flush: bool,
    skip: Option<&dyn Fn(&crate::Region) -> bool>,
    f: impl FnOnce() -> i32,
) -> io::Result<u32> {
    flush_std();
    let parent = sys::pid();
    // Queue handles the child inherits count from its first instruction on.
    let handshake = crate::queue::ends::ForkHandshake::before_fork();
    // SAFETY: the child only runs `f` and then `_exit`s; the caller upholds the
    // restrictions on `f`.
    match unsafe { sys::fork() }? {
        Some(pid) => {
            if let Some(h) = handshake {
                h.in_parent(pid);
            }
            Ok(pid)
        }
        None => {
            if daemon {
                become_daemon(parent);
            }
            if let Some(h) = &handshake {
                h.in_child(skip);
            }
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .unwrap_or(PANIC_EXIT_CODE);
            exit_child(code, flush)
        }
    }
}

/// In a freshly forked child: die with the parent process (a caught
/// `PR_SET_PDEATHSIG` signal whose handler checks the parent, so the end of
/// the parent *thread* that forked does not count), and die now if the parent
/// (`parent`, read before the fork) is already gone, which the signal request
/// would not notice.
pub(crate) fn become_daemon(parent: u32) {
    if sys::watch_parent_death(parent).is_err() || sys::parent_pid() != parent {
        sys::kill_self();
    }
}

/// Ends a child: flushes Rust's `stdout` if `flush`, leaves the regions it
/// joined (so peers can tell a normal exit from a death) and `_exit`s.
pub(crate) fn exit_child(code: i32, flush: bool) -> ! {
    if flush {
        let _ = io::stdout().flush();
    }
    crate::region::leave_all();
    sys::exit_now(code)
}

fn flush_std() {
    let _ = io::stdout().flush();
}

/// Runs `f` in a forked child process and returns a handle to it. The child's
/// exit code is `f`'s return value ([`PANIC_EXIT_CODE`] if `f` panics).
///
/// Refused with [`StartError::Threads`] when this process runs other threads
/// (see the [module docs](self#threads)); [`fork_unchecked`] skips the check.
/// The returned [`Child`] is not a daemon.
///
/// ```no_run
/// let ev = multiproc::Event::anonymous()?;
/// let child = multiproc::process::fork(|| { ev.set(); 0 })?;
/// ev.wait();
/// assert!(child.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fork(f: impl FnOnce() -> i32) -> Result<Child, StartError> {
    Process::new(f).start()
}

/// [`fork`] without the thread check.
///
/// # Safety
///
/// As [`Process::start_unchecked`]: if other threads run, `f` must not take a
/// lock another thread might hold at the moment of the fork.
///
/// ```no_run
/// // SAFETY: the child only returns a constant.
/// let child = unsafe { multiproc::process::fork_unchecked(|| 0) }?;
/// assert!(child.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub unsafe fn fork_unchecked(f: impl FnOnce() -> i32) -> Result<Child, StartError> {
    // SAFETY: forwarded to the caller.
    unsafe { Process::new(f).start_unchecked() }
}

fn convert(e: sys::Exit) -> ExitStatus {
    match e {
        sys::Exit::Code(c) => ExitStatus::Code(c),
        sys::Exit::Signal(s) => ExitStatus::Signal(s),
    }
}

/// A started child process (Python's `Process` after `start()`).
///
/// See the [module docs](self#daemons-and-dropped-handles) for what dropping it
/// does.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    name: String,
    daemon: bool,
    /// The status once reaped. Reaping happens only under this lock (with
    /// `WNOHANG`); blocking waits wait without reaping, so threads sharing
    /// the handle never race `waitpid` for the status.
    reaped: Mutex<Option<ExitStatus>>,
}

impl Child {
    /// The child's process id.
    ///
    /// ```no_run
    /// let c = multiproc::process::Process::new(|| 0).start()?;
    /// assert!(c.pid() > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name given with [`Process::name`], or `Process-N`.
    ///
    /// ```no_run
    /// let c = multiproc::process::Process::new(|| 0).name("w").start()?;
    /// assert_eq!(c.name(), "w");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child was started as a daemon.
    ///
    /// ```no_run
    /// let c = multiproc::process::Process::new(|| 0).daemon(true).start()?;
    /// assert!(c.is_daemon());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Waits for the child to end and returns how it ended (again on later
    /// calls).
    ///
    /// ```no_run
    /// let mut c = multiproc::process::Process::new(|| 2).start()?;
    /// assert_eq!(c.join()?, multiproc::process::ExitStatus::Code(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(&self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.wait_inner(None)? {
                return Ok(s);
            }
        }
    }

    /// Waits at most `timeout`; `Ok(None)` if the child still runs.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let mut c = multiproc::process::Process::new(|| 0).start()?;
    /// while c.join_timeout(Duration::from_millis(10))?.is_none() {}
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.wait_inner(Some(Deadline::after(timeout)))
    }

    /// Whether the child still runs (a child that ended is reaped by this call).
    ///
    /// Every method but [`Child::wait`] takes `&self`, so children kept in a
    /// `Vec` can be polled while iterating, or shared between threads.
    ///
    /// ```no_run
    /// let c = multiproc::process::Process::new(|| 0).start()?;
    /// c.join()?;
    /// assert!(!c.is_alive());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        self.poll().is_none()
    }

    /// Python's `exitcode`: `None` while the child runs, its exit code once it
    /// exited, `-N` if signal `N` ended it. Never blocks. A child whose status
    /// was lost (reaped elsewhere, see [`ExitStatus::Signal`]) gives `Some(0)`
    /// here, though its [`ExitStatus::success`] is `false`: check
    /// [`Child::join`]'s status when that matters (Python's `exitcode` stays
    /// `None` in that case).
    ///
    /// ```no_run
    /// let c = multiproc::process::Process::new(|| 0).start()?;
    /// c.kill()?;
    /// c.join()?;
    /// assert_eq!(c.exitcode(), Some(-9));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        self.poll().map(|s| s.code())
    }

    /// Sends `SIGTERM` (a no-op once the child was reaped).
    ///
    /// ```no_run
    /// let mut c = multiproc::process::Process::new(|| -> i32 { loop { std::thread::park() } }).start()?;
    /// c.terminate()?;
    /// assert_eq!(c.join()?.code(), -15);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn terminate(&self) -> io::Result<()> {
        self.signal(sys::SIGTERM)
    }

    /// Sends `SIGKILL` (a no-op once the child was reaped).
    ///
    /// ```no_run
    /// let mut c = multiproc::process::Process::new(|| -> i32 { loop { std::thread::park() } }).start()?;
    /// c.kill()?;
    /// assert_eq!(c.join()?.code(), -9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill(&self) -> io::Result<()> {
        self.signal(sys::SIGKILL)
    }

    /// Waits for the child to end (consuming the handle).
    ///
    /// ```no_run
    /// let c = multiproc::process::Process::new(|| 0).start()?;
    /// assert!(c.wait()?.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(self) -> io::Result<ExitStatus> {
        self.join()
    }

    /// Waits at most `timeout`; `Ok(None)` if the child still runs (same as
    /// [`Child::join_timeout`]).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let mut c = multiproc::process::Process::new(|| 0).start()?;
    /// while c.wait_timeout(Duration::from_millis(10))?.is_none() {}
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.join_timeout(timeout)
    }

    fn signal(&self, signal: i32) -> io::Result<()> {
        // Under the lock: a child reaped meanwhile by another thread's call
        // is not signalled (its pid may already name another process).
        let reaped = self.status();
        if reaped.is_some() {
            return Ok(());
        }
        sys::kill(self.pid, signal)
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Option<ExitStatus>> {
        // A panic cannot leave the status half written: take it as it is.
        self.reaped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reaps the child if it ended; its status, or `None` while it runs.
    fn poll(&self) -> Option<ExitStatus> {
        let mut reaped = self.status();
        if reaped.is_none() {
            match sys::try_wait_child(self.pid) {
                Ok(r) => *reaped = r.map(convert),
                // ECHILD: someone else reaped it (waitpid(-1) elsewhere, or
                // SIGCHLD ignored); its status is lost and it no longer runs.
                Err(_) => *reaped = Some(ExitStatus::Signal(0)),
            }
        }
        *reaped
    }

    fn wait_inner(&self, deadline: Option<Deadline>) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(s) = *self.status() {
                return Ok(Some(s));
            }
            match sys::wait_child_ended(self.pid, deadline) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                // Reaped, by another thread's call through this handle (its
                // status is recorded) or elsewhere (lost): `poll` tells.
                Err(e) if sys::is_no_child(&e) => {}
                Err(e) => return Err(e),
            }
            if let Some(s) = self.poll() {
                return Ok(Some(s));
            }
        }
    }
}

impl Child {
    /// The pid, for a caller that reaps (and, for a daemon, kills) the child
    /// itself: the handle then does nothing on drop.
    pub(crate) fn detach(self) -> u32 {
        *self.status() = Some(ExitStatus::Code(0));
        self.pid
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.poll().is_some() {
            return;
        }
        if self.daemon || std::thread::panicking() {
            let _ = sys::kill(self.pid, sys::SIGKILL);
        }
        let _ = self.join();
    }
}
