//! Process identity and liveness: pid/tid, start time, PID namespace, a fork
//! epoch, per-thread tokens, and the fork/wait/kill calls behind
//! [`crate::process`].
//!
//! The pid is cached; a `pthread_atfork` child handler (async-signal-safe: it only
//! stores to atomics) invalidates every cache in the child, so a forked child never
//! mistakes itself for its parent.
#![expect(
    clippy::disallowed_types,
    reason = "process-local caches, never placed in shared memory or modelled by loom"
)]

use std::cell::Cell;
use std::io;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::time::Deadline;

static REGISTER: Once = Once::new();
static PID: AtomicU32 = AtomicU32::new(0);
static START_TIME: AtomicU64 = AtomicU64::new(0);
static FORK_EPOCH: AtomicU32 = AtomicU32::new(1);

thread_local! {
    /// This thread's token (0: none yet). Const-initialized, so reading it is one
    /// TLS load; the fork hook clears it in the child's only thread.
    static THREAD_TOKEN: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn after_fork_in_child() {
    // Relaxed: the child is single-threaded when this runs.
    PID.store(0, Ordering::Relaxed);
    START_TIME.store(0, Ordering::Relaxed);
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
    // The forking thread is the child's only thread: its token must not be the
    // parent thread's. A const-initialized TLS cell needs no allocation.
    let _ = THREAD_TOKEN.try_with(|t| t.set(0));
}

fn register() {
    REGISTER.call_once(|| {
        // SAFETY: registering a handler with no parent/prepare hooks; the child hook
        // only touches atomics, which is async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// The fork epoch without registering the fork hook: for caches that were
/// filled after [`fork_epoch`] registered it (anything tagged with an epoch).
#[inline]
pub(crate) fn fork_epoch_cached() -> u32 {
    // Relaxed: as in `fork_epoch`.
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// Incremented in every forked child; a cache tagged with an older epoch belongs
/// to an ancestor.
pub(crate) fn fork_epoch() -> u32 {
    register();
    // Relaxed: each process only reads its own epoch, written before it forks or
    // by the single-threaded child hook.
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// This process's pid (cached; correct in forked children).
pub(crate) fn pid() -> u32 {
    register();
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: getpid has no preconditions.
    let p = unsafe { libc::getpid() }.unsigned_abs();
    PID.store(p, Ordering::Relaxed);
    p
}

/// The calling thread's kernel TID.
pub(crate) fn tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }.unsigned_abs()
}

/// This process's start time in clock ticks since boot (field 22 of
/// `/proc/self/stat`), 0 if it cannot be read.
pub(crate) fn start_time() -> u64 {
    register();
    let t = START_TIME.load(Ordering::Relaxed);
    if t != 0 {
        return t;
    }
    let t = match read_stat(pid()) {
        Some(s) => s.start_time,
        None => 0,
    };
    START_TIME.store(t, Ordering::Relaxed);
    t
}

/// The inode of this process's PID namespace (`/proc/self/ns/pid`); 0 if unknown.
/// Pids and start times from another namespace are not comparable with ours.
pub(crate) fn pid_namespace() -> u64 {
    let path = c"/proc/self/ns/pid";
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated; `st` is writable storage for a stat.
    let rc = unsafe { libc::stat(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: stat returned 0, so it filled `st`.
    unsafe { st.assume_init() }.st_ino
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    /// The state letter: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub(crate) state: u8,
    /// Start time in clock ticks since boot.
    pub(crate) start_time: u64,
}

/// Reads `/proc/<pid>/stat` with plain `open`/`read` into a stack buffer: no
/// allocation, so it is usable in a child forked from a threaded parent.
pub(crate) fn read_stat(pid: u32) -> Option<Stat> {
    let mut path = [0u8; 32];
    let mut n = 0;
    for b in b"/proc/" {
        path[n] = *b;
        n += 1;
    }
    let mut digits = [0u8; 10];
    let mut d = 0;
    let mut p = pid;
    loop {
        digits[d] = b'0' + (p % 10) as u8;
        d += 1;
        p /= 10;
        if p == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[n] = digits[d];
        n += 1;
    }
    for b in b"/stat" {
        path[n] = *b;
        n += 1;
    }
    // path[n] is already 0: NUL-terminated.
    // SAFETY: `path` is a NUL-terminated byte string.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 1024];
    let mut len = 0usize;
    while len < buf.len() {
        // SAFETY: writes at most `buf.len() - len` bytes into `buf[len..]`.
        let r = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if r < 0 && super::errno() == libc::EINTR {
            continue;
        }
        if r <= 0 {
            break;
        }
        len += r.unsigned_abs();
    }
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    parse_stat(&buf[..len])
}

/// Parses the fields we need from a `/proc/<pid>/stat` line. The command name is
/// in parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`.
pub(crate) fn parse_stat(line: &[u8]) -> Option<Stat> {
    let close = line.iter().rposition(|&b| b == b')')?;
    let rest = line.get(close + 1..)?;
    let mut fields = rest.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    // The state is field 3; start time is field 22, 19 fields further.
    let start = fields.nth(18)?;
    let mut start_time = 0u64;
    for &b in start {
        if !b.is_ascii_digit() {
            return None;
        }
        start_time = start_time
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))?;
    }
    Some(Stat { state, start_time })
}

/// Whether the process `pid` that started at `start_time` still runs.
///
/// A zombie counts as dead (it runs no code), and so does a pid now used by a
/// process with another start time. Returns `None` when `/proc` cannot tell.
pub(crate) fn is_alive(pid: u32, start_time: u64) -> Option<bool> {
    if pid == 0 {
        return Some(false);
    }
    match read_stat(pid) {
        None => {
            // SAFETY: kill with signal 0 only checks for existence and permission.
            let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
            if rc == 0 || super::errno() == libc::EPERM {
                None
            } else {
                Some(false)
            }
        }
        Some(s) => Some(
            !(matches!(s.state, b'Z' | b'X' | b'x')
                || (start_time != 0 && s.start_time != start_time)),
        ),
    }
}

/// A 64-bit token unique to the calling thread across every process sharing a
/// region (random, from `getrandom`, so it is PID-namespace proof), regenerated
/// in forked children. Never 0.
#[inline]
pub(crate) fn thread_token() -> u64 {
    let tok = THREAD_TOKEN.with(Cell::get);
    if tok != 0 {
        return tok;
    }
    new_thread_token()
}

#[cold]
fn new_thread_token() -> u64 {
    // The fork hook that clears tokens in children must exist before any token
    // can be inherited.
    register();
    let tok = random_u64() | 1;
    THREAD_TOKEN.with(|t| t.set(tok));
    tok
}

/// 64 random bits from the kernel (falls back to time and ids if getrandom fails).
pub(crate) fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    let mut got = 0usize;
    while got < buf.len() {
        // SAFETY: writes at most `buf.len() - got` bytes into `buf[got..]`.
        let r = unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), buf.len() - got, 0) };
        if r < 0 {
            if super::errno() == libc::EINTR {
                continue;
            }
            let now = Deadline::now().timespec();
            let mixed = (now.tv_nsec as u64) ^ ((u64::from(pid()) << 32) | u64::from(tid()));
            return mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        got += r.unsigned_abs();
    }
    u64::from_ne_bytes(buf)
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// `_exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

/// Forks the process.
///
/// # Safety
///
/// In a multi-threaded process the child has only the calling thread; locks held
/// by other threads at the time of the fork stay held forever in the child. The
/// caller must keep the child to code that does not need them.
pub(crate) unsafe fn fork() -> io::Result<Option<u32>> {
    register();
    // SAFETY: the caller upholds the post-fork restrictions.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(super::last_error()),
        0 => Ok(None),
        p => Ok(Some(p.unsigned_abs())),
    }
}

/// Ends the calling process immediately, without running destructors or atexit
/// handlers (what a forked child must do).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// Sends `signal` to `pid`.
pub(crate) fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: kill has no memory preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(super::last_error())
    }
}

/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// Waits for child `pid` to end, until `deadline`. `Ok(None)` on timeout (the child
/// is left running and can be waited for again).
pub(crate) fn wait_child(pid: u32, deadline: Option<Deadline>) -> io::Result<Option<Exit>> {
    let ipid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if let Some(deadline) = deadline {
        if pidfd_ended(ipid, deadline) == Some(false) {
            return Ok(None);
        }
    }
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is writable; waitpid on our own child.
        let r = unsafe { libc::waitpid(ipid, &mut status, 0) };
        if r == ipid {
            break;
        }
        if r < 0 && super::errno() == libc::EINTR {
            continue;
        }
        return Err(super::last_error());
    }
    Ok(Some(decode_status(status)))
}

/// Blocks until child `pid` has ended, without reaping it (`waitid` with
/// `WNOWAIT`, so the status stays for [`try_wait_child`] to collect), or
/// until `deadline`: `Ok(true)` once it ended, `Ok(false)` at the deadline.
/// `ECHILD` if it is not (or no longer) our child.
///
/// With a deadline the wait polls a pidfd; where `pidfd_open` is missing
/// (kernels before 5.3) it looks with `WNOHANG` in naps that grow to 10 ms,
/// so the deadline holds either way.
pub(crate) fn wait_child_ended(pid: u32, deadline: Option<Deadline>) -> io::Result<bool> {
    let ipid = libc::id_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let ended = |flags: libc::c_int| -> io::Result<bool> {
        loop {
            // SAFETY: an all-zero siginfo_t is a valid value to hand waitid.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is writable; waitid on our own child, never reaping
            // (WNOWAIT).
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    ipid,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT | flags,
                )
            };
            if r == 0 {
                // SAFETY: waitid filled `info`; si_pid is 0 when WNOHANG found
                // the child still running.
                return Ok(unsafe { info.si_pid() } != 0);
            }
            if super::errno() == libc::EINTR {
                continue;
            }
            return Err(super::last_error());
        }
    };
    let Some(deadline) = deadline else {
        return ended(0);
    };
    if let Some(ended) = pidfd_ended(ipid as libc::pid_t, deadline) {
        return Ok(ended);
    }
    // No pidfd (kernels before 5.3): look in naps that grow to 10 ms.
    let mut nap = Duration::from_micros(100);
    loop {
        if ended(libc::WNOHANG)? {
            return Ok(true);
        }
        if deadline.passed() {
            return Ok(false);
        }
        std::thread::sleep(nap.min(deadline.remaining()));
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

/// Polls a pidfd of child `pid` until it ended (`Some(true)`) or `deadline`
/// (`Some(false)`); `None` if the kernel gives no pidfd.
fn pidfd_ended(pid: libc::pid_t, deadline: Deadline) -> Option<bool> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = fd as libc::c_int;
    let ready = loop {
        let ms = libc::c_int::try_from(deadline.remaining().as_millis().saturating_add(1))
            .unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd array of length 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            break true;
        }
        if r < 0 && super::errno() == libc::EINTR {
            continue;
        }
        if r < 0 || deadline.passed() {
            break false;
        }
    };
    // SAFETY: `fd` came from pidfd_open and is closed once.
    unsafe { libc::close(fd) };
    Some(ready)
}

/// `SIGTERM`.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;

/// Whether `e` is `ECHILD`: the child was reaped by someone else (a
/// `waitpid(-1)` elsewhere in the program, or `SIGCHLD` ignored).
pub(crate) fn is_no_child(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECHILD)
}

/// The parent's pid as the kernel sees it now (1 or a subreaper once the parent
/// died).
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() }.unsigned_abs()
}

/// Asks the kernel to send `signal` to this process when the thread that forked
/// it exits (`PR_SET_PDEATHSIG`).
pub(crate) fn set_parent_death_signal(signal: i32) -> io::Result<()> {
    let sig =
        libc::c_ulong::try_from(signal).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PR_SET_PDEATHSIG takes one integer argument; the rest are unused.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            sig,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(super::last_error())
    }
}

/// The parent process a daemon watches (`watch_parent_death`).
static WATCHED_PARENT: AtomicU32 = AtomicU32::new(0);

/// The parent-death signal of a daemon: a real-time signal near the top of
/// the range (glibc keeps the bottom ones for itself), caught by
/// [`on_parent_death_signal`].
fn parent_death_signal() -> i32 {
    libc::SIGRTMAX() - 1
}

/// The handler of [`parent_death_signal`]: the kernel sends it when the
/// *thread* that forked this process exits, which is the death of the parent
/// process only if no thread of it is left, i.e. when this process was
/// reparented to another process (`getppid` changed). A thread of a live
/// parent that merely ended (this process moves to another thread of the same
/// parent, and `getppid` stays) is ignored. Only async-signal-safe calls.
extern "C" fn on_parent_death_signal(_: libc::c_int) {
    // SAFETY: getppid, getpid and kill are async-signal-safe and take no
    // pointers.
    unsafe {
        if libc::getppid() as u32 != WATCHED_PARENT.load(Ordering::Relaxed) {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// In a freshly started child: dies (`SIGKILL`) when the parent *process*
/// `parent` dies. `PR_SET_PDEATHSIG` alone fires when the parent thread that
/// forked exits, so a daemon started from a short-lived thread (a pool's
/// replacement worker, say) died with that thread; here the signal is a caught
/// one whose handler checks the parent process first.
pub(crate) fn watch_parent_death(parent: u32) -> io::Result<()> {
    WATCHED_PARENT.store(parent, Ordering::Relaxed);
    let sig = parent_death_signal();
    // SAFETY: a zeroed sigaction is valid; the handler is an `extern "C" fn(c_int)`
    // that only makes async-signal-safe calls; SA_RESTART keeps interrupted
    // syscalls going.
    let rc = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_parent_death_signal as extern "C" fn(libc::c_int) as usize;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(sig, &act, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(super::last_error());
    }
    set_parent_death_signal(sig)
}

/// Ends the calling process with `SIGKILL` (as if its parent's death signal had
/// arrived), falling back to `_exit(137)` should the signal somehow not end it.
pub(crate) fn kill_self() -> ! {
    // SAFETY: sending SIGKILL to ourselves has no memory preconditions.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    exit_now(128 + libc::SIGKILL)
}

fn decode_status(status: libc::c_int) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        // waitpid without WUNTRACED/WCONTINUED reports only terminations.
        Exit::Signal(0)
    }
}

/// Reaps child `pid` if it has ended, without blocking: `Ok(None)` while it runs.
pub(crate) fn try_wait_child(pid: u32) -> io::Result<Option<Exit>> {
    let ipid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is writable; waitpid on our own child with WNOHANG.
        let r = unsafe { libc::waitpid(ipid, &mut status, libc::WNOHANG) };
        if r == ipid {
            return Ok(Some(decode_status(status)));
        }
        if r == 0 {
            return Ok(None);
        }
        if r < 0 && super::errno() == libc::EINTR {
            continue;
        }
        return Err(super::last_error());
    }
}

/// Writes `buf` to file descriptor 2 with plain `write(2)` calls: no lock, so a
/// child forked from a threaded parent may use it. Errors are ignored.
pub(crate) fn write_stderr(mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let r = unsafe { libc::write(2, buf.as_ptr().cast(), buf.len()) };
        if r < 0 && super::errno() == libc::EINTR {
            continue;
        }
        if r <= 0 {
            return;
        }
        buf = buf.get(r.unsigned_abs()..).unwrap_or(&[]);
    }
}

/// The load address of the ELF object (executable or shared library) that
/// contains code address `addr`, from `dladdr`; `None` if unknown.
pub(crate) fn object_base(addr: usize) -> Option<usize> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads its address argument as a number and fills
    // `info`, which is writable storage for a Dl_info.
    let rc = unsafe { libc::dladdr(addr as *const libc::c_void, info.as_mut_ptr()) };
    if rc == 0 {
        return None;
    }
    // SAFETY: dladdr returned non-zero, so it filled `info`.
    let base = unsafe { info.assume_init() }.dli_fbase as usize;
    (base != 0).then_some(base)
}

/// Registers `f` to run when the process exits through `exit` (returning
/// from `main`, `std::process::exit`), not through `_exit` or a signal.
/// `false` if the C library refused (it has no room left).
pub(crate) fn at_exit(f: extern "C" fn()) -> bool {
    // SAFETY: `f` is a plain function with the C ABI that takes nothing.
    unsafe { libc::atexit(f) == 0 }
}

/// Whether this process was exec'd in secure mode (`AT_SECURE`: set-user-ID,
/// set-group-ID or file capabilities), whose environment its invoker chose.
pub(crate) fn secure_exec() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; 0 if the entry is absent.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Whether `addr` lies in an executable mapping of this process
/// (`/proc/self/maps`); `false` if the maps cannot be read.
pub(crate) fn is_code_address(addr: usize) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    maps.lines().any(|line| {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            return false;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            return false;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            return false;
        };
        (lo..hi).contains(&addr) && perms.as_bytes().get(2) == Some(&b'x')
    })
}

/// Name the crate gives its one internal per-process thread (parked forever,
/// holding no locks), which is safe to leave behind across `fork`.
pub(crate) const BEACON_THREAD_NAME: &str = "multiproc-beacon";

/// Number of threads in this process other than the crate's beacon thread,
/// counted from `/proc/self/task` (each thread's `comm`, which the kernel
/// truncates to 15 bytes: `multiproc-beaco`).
pub(crate) fn thread_count() -> io::Result<usize> {
    let beacon = BEACON_THREAD_NAME.as_bytes();
    let beacon = beacon.get(..15).unwrap_or(beacon);
    let mut n = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let entry = entry?;
        let mut comm = entry.path();
        comm.push("comm");
        match std::fs::read(&comm) {
            Ok(name) if name.strip_suffix(b"\n").unwrap_or(&name) == beacon => {}
            // A thread that ended between the listing and the read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => n += 1,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parses_tricky_names() {
        let line = b"1234 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, b'S');
        assert_eq!(s.start_time, 987654);
        assert!(parse_stat(b"no paren").is_none());
        assert!(parse_stat(b"1 (x) S 1").is_none());
    }

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        assert!(start_time() > 0);
        assert_eq!(is_alive(pid(), start_time()), Some(true));
        assert_eq!(is_alive(pid(), start_time() + 1), Some(false));
        assert_ne!(thread_token(), 0);
        assert_eq!(thread_token(), thread_token());
        let other = std::thread::spawn(thread_token).join().unwrap();
        assert_ne!(other, thread_token());
    }
}
