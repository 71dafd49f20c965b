//! The spawn start method: a fresh `exec` of the current binary
//! (`/proc/self/exe`, the very file this process runs even if it was replaced
//! on disk since) that runs a registered entry point before `main`.
//!
//! The parent starts the child with [`std::process::Command`] (whose
//! fork-then-exec is safe in a threaded parent) and an environment variable
//! naming the entry point: its offset from a function of this crate, checked in
//! the parent to lie in the same ELF object, so it names the same code in the
//! child's randomized address space. In the child, a function this crate places
//! in `.init_array` runs before `main`, removes the variable, runs the entry
//! point and exits with its code; `main` never runs. In every other process the
//! hook only looks the variable up.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::{Child, PANIC_EXIT_CODE, StartError, become_daemon, exit_child};
use crate::queue::PreInherited;
use crate::sys::process as sys;

const VAR: &str = "MULTIPROC_SPAWN";
/// The descriptors of the regions shared with the child: `fd,fd,...` in
/// `share` order.
const FDS_VAR: &str = "MULTIPROC_SPAWN_FDS";

/// What this spawned process inherited at one `share` index.
enum Inherited {
    /// A region or file descriptor.
    Fd(OwnedFd),
    /// A queue, already mapped and counted as one of this process's ends.
    Queue(PreInherited),
}

/// What this spawned process inherited (by `share` index), each taken once by
/// [`take_inherited`] or [`take_inherited_queue`].
static INHERITED: OnceLock<Mutex<Vec<Option<Inherited>>>> = OnceLock::new();

fn take(index: usize) -> Option<Inherited> {
    let mut v = INHERITED.get()?.lock().unwrap_or_else(|p| p.into_inner());
    v.get_mut(index)?.take()
}

/// The descriptor the parent shared at `index`, once. For a queue the spawn
/// hook mapped, a duplicate of its memfd (the early handle is dropped: the
/// caller maps it as whatever it asks for, and is told if that is wrong).
pub(crate) fn take_inherited(index: usize) -> Option<OwnedFd> {
    match take(index)? {
        Inherited::Fd(fd) => Some(fd),
        Inherited::Queue(q) => crate::sys::shm::dup_cloexec(q.file()?.as_fd()).ok(),
    }
}

/// The queue the spawn hook mapped at `index`, once, if `fits` accepts it:
/// `None` if that index holds something else (which stays for
/// [`take_inherited`]), `Some(Err)` if `fits` refused it (it stays, still
/// counted, for a call with the right type).
pub(crate) fn take_inherited_queue<E>(
    index: usize,
    fits: impl FnOnce(&PreInherited) -> Result<(), E>,
) -> Option<Result<PreInherited, E>> {
    let mut v = INHERITED.get()?.lock().unwrap_or_else(|p| p.into_inner());
    let slot = v.get_mut(index)?;
    let Some(Inherited::Queue(q)) = slot else {
        return None;
    };
    if let Err(e) = fits(q) {
        return Some(Err(e));
    }
    match slot.take() {
        Some(Inherited::Queue(q)) => Some(Ok(q)),
        _ => None,
    }
}

/// Adopts the descriptors named in [`FDS_VAR`] (only those that are open).
fn adopt_inherited(list: &[u8]) {
    let fds: Vec<Option<OwnedFd>> = std::str::from_utf8(list)
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let fd: i32 = p.parse().ok().filter(|&fd| fd > 2)?;
            // Close-on-exec again (this process's own children do not get it);
            // failing means the descriptor is not open.
            crate::sys::shm::set_cloexec_raw(fd).then_some(())?;
            // SAFETY: the parent passed this descriptor (open: fcntl on it
            // succeeded) for this process alone; nothing else here owns it.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect();
    // Queues count this process as an end from here on (see `PreInherited`).
    let all = fds
        .into_iter()
        .map(|fd| {
            let fd = fd?;
            Some(match PreInherited::open(fd.as_fd()) {
                Ok(q) => Inherited::Queue(q),
                Err(_) => Inherited::Fd(fd),
            })
        })
        .collect();
    let _ = INHERITED.set(Mutex::new(all));
}
/// The longest `Spawn::start` waits for the child to count as an end of
/// the queues it shares (a child stopped by a signal must not stop its parent
/// for good).
const READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest argument [`Spawn`] passes (it travels hex-encoded in the
/// environment, whose strings the kernel limits to 128 KiB).
pub const MAX_SPAWN_ARG: usize = 32 * 1024;

/// Runs in every process that links this code, before `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static SPAWN_HOOK: extern "C" fn() = spawn_hook;

extern "C" fn spawn_hook() {
    let Some(v) = std::env::var_os(VAR) else {
        return;
    };
    // SAFETY: before `main` of a freshly exec'd process: no other thread runs.
    unsafe { std::env::remove_var(VAR) };
    if sys::secure_exec() {
        // A set-user-ID (or capability) program's environment is its caller's
        // choice, not a parent of ours: never act on it. `main` runs.
        // SAFETY: as above.
        unsafe { std::env::remove_var(FDS_VAR) };
        return;
    }
    let list = std::env::var_os(FDS_VAR);
    // SAFETY: as above.
    unsafe { std::env::remove_var(FDS_VAR) };
    let Some(req) = Request::parse(v.as_bytes()).filter(authentic) else {
        sys::write_stderr(b"multiproc: malformed or stale MULTIPROC_SPAWN request\n");
        sys::exit_now(2);
    };
    if req.daemon {
        become_daemon(req.parent);
    }
    if let Some(list) = list {
        adopt_inherited(list.as_bytes());
    }
    if req.ready_fd > 2 {
        signal_ready(req.ready_fd);
    }
    let hook = spawn_hook as extern "C" fn() as usize;
    let addr = hook.wrapping_add_signed(req.offset);
    // The variable is only ever ours when it names code of this very object;
    // anything else (a stale or hand-written value) must not be jumped to.
    let same_object = sys::object_base(addr).is_some_and(|b| Some(b) == sys::object_base(hook));
    if !same_object || !sys::is_code_address(addr) {
        sys::write_stderr(b"multiproc: MULTIPROC_SPAWN names no entry point of this program\n");
        sys::exit_now(2);
    }
    // An authenticated request comes from our parent (a secure-mode exec never
    // gets here), which checked the entry with dladdr in this same file.
    // SAFETY: `offset` is from a `fn(&[u8]) -> i32` of this ELF object (the
    // parent's check) and we run the same file, so `addr` is that function.
    let entry = unsafe { std::mem::transmute::<usize, fn(&[u8]) -> i32>(addr) };
    let arg = req.arg;
    let code = std::panic::catch_unwind(move || entry(&arg)).unwrap_or(PANIC_EXIT_CODE);
    // A fresh process with one thread: flushing stdout takes no foreign lock.
    exit_child(code, true)
}

struct Request {
    parent: u32,
    daemon: bool,
    offset: isize,
    arg: Vec<u8>,
    /// A descriptor the parent passed that holds `token`: proof that the
    /// variable was set by a parent spawning us, not left in an environment
    /// copied from elsewhere or written by hand.
    auth_fd: i32,
    token: [u8; TOKEN_LEN],
    /// An `Event` region the parent waits on until this process has mapped
    /// and counted the queues it was handed (-1: none shared).
    ready_fd: i32,
}

/// Sets the parent's "ready" event (see [`Request::ready_fd`]); a descriptor
/// that is not one is ignored (the parent's wait is bounded).
fn signal_ready(fd: i32) {
    if !crate::sys::shm::set_cloexec_raw(fd) {
        return;
    }
    // SAFETY: the parent passed this descriptor (open: fcntl succeeded) for
    // this signal alone; nothing else here owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Ok(ev) = crate::Event::from_fd(fd) {
        ev.set();
    }
}

/// Bytes of the spawn request's token.
const TOKEN_LEN: usize = 16;

/// Whether the descriptor `req` names holds its token (and is taken and
/// closed: it served its one purpose).
fn authentic(req: &Request) -> bool {
    use std::os::unix::fs::FileExt;
    // Close-on-exec again; failing means the descriptor is not open. Checked
    // before it is owned, so a number naming nothing is never adopted.
    if req.auth_fd <= 2 || !crate::sys::shm::set_cloexec_raw(req.auth_fd) {
        return false;
    }
    // SAFETY: the descriptor is open; if the request is genuine the parent
    // passed it for this check alone, and if not, the process exits right
    // after without using it (or anything else) further.
    let file = unsafe { std::fs::File::from_raw_fd(req.auth_fd) };
    let mut got = [0u8; TOKEN_LEN];
    file.read_exact_at(&mut got, 0).is_ok() && got == req.token
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

impl Request {
    fn encode(&self) -> String {
        format!(
            "2:{}:{}:{}:{}:{}:{}:{}",
            self.parent,
            u8::from(self.daemon),
            self.offset,
            hex(&self.arg),
            self.auth_fd,
            hex(&self.token),
            self.ready_fd
        )
    }

    fn parse(v: &[u8]) -> Option<Request> {
        let s = std::str::from_utf8(v).ok()?;
        let mut f = s.split(':');
        if f.next()? != "2" {
            return None;
        }
        let parent = f.next()?.parse().ok()?;
        let daemon = match f.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let offset = f.next()?.parse().ok()?;
        let arg = unhex(f.next()?.as_bytes())?;
        let auth_fd = f.next()?.parse().ok()?;
        let token = unhex(f.next()?.as_bytes())?.try_into().ok()?;
        let ready_fd = f.next()?.parse().ok()?;
        if f.next().is_some() {
            return None;
        }
        Some(Request {
            parent,
            daemon,
            offset,
            arg,
            auth_fd,
            token,
            ready_fd,
        })
    }
}

/// A child process started with the spawn start method: a fresh run of this
/// program that calls `entry(arg)` instead of `main` and exits with its result
/// ([`PANIC_EXIT_CODE`] if it panics). Safe in a parent with any number of
/// threads.
///
/// The child shares nothing with the parent but what `arg` says and the
/// anonymous objects passed with [`Spawn::share`] (their memfd is duplicated
/// into the child alone; it opens them with `inherit(index)`, for example
/// [`Queue::inherit`](crate::Queue::inherit)). Pass named objects by name (the
/// child opens them). `entry` must be a function of the program itself (not of
/// a shared library loaded separately): [`Spawn::start`] checks this.
///
/// ```no_run
/// use multiproc::process::Spawn;
///
/// fn child(arg: &[u8]) -> i32 {
///     let ev = multiproc::Event::open(std::str::from_utf8(arg).unwrap()).unwrap();
///     ev.set();
///     0
/// }
///
/// let ev = multiproc::Event::create("/spawn-doc")?;
/// let mut c = Spawn::new(child, b"/spawn-doc").name("child").start()?;
/// ev.wait();
/// assert!(c.join()?.success());
/// multiproc::Region::unlink("/spawn-doc")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Spawn {
    entry: fn(&[u8]) -> i32,
    arg: Vec<u8>,
    name: Option<String>,
    daemon: bool,
    /// Duplicates of the shared regions' memfds (or why one could not be made).
    shared: Vec<io::Result<OwnedFd>>,
    /// Whether a shared region holds a queue: `start` then waits until the
    /// child counts as one of its ends (see `PreInherited`).
    shares_queue: bool,
}

impl fmt::Debug for Spawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawn")
            .field("arg_len", &self.arg.len())
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .field("shared", &self.shared.len())
            .finish_non_exhaustive()
    }
}

impl Spawn {
    /// A child that will run `entry(arg)` (at most [`MAX_SPAWN_ARG`] bytes).
    ///
    /// ```
    /// fn entry(_: &[u8]) -> i32 { 0 }
    /// let s = multiproc::process::Spawn::new(entry, b"x");
    /// # drop(s);
    /// ```
    pub fn new(entry: fn(&[u8]) -> i32, arg: &[u8]) -> Spawn {
        Spawn {
            entry,
            arg: arg.to_vec(),
            name: None,
            daemon: false,
            shared: Vec::new(),
            shares_queue: false,
        }
    }

    /// As [`super::Process::name`].
    ///
    /// ```
    /// fn entry(_: &[u8]) -> i32 { 0 }
    /// let s = multiproc::process::Spawn::new(entry, b"").name("w");
    /// # drop(s);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Spawn {
        self.name = Some(name.into());
        self
    }

    /// As [`super::Process::daemon`]: the child dies with this process.
    ///
    /// ```
    /// fn entry(_: &[u8]) -> i32 { 0 }
    /// let s = multiproc::process::Spawn::new(entry, b"").daemon(true);
    /// # drop(s);
    /// ```
    pub fn daemon(mut self, daemon: bool) -> Spawn {
        self.daemon = daemon;
        self
    }

    /// Hands the anonymous object whose region this is to the child: its
    /// `share` calls count from 0, and the child opens the `i`-th with the
    /// kind's `inherit(i)` ([`Queue::inherit`](crate::Queue::inherit),
    /// [`Value::inherit`](crate::Value::inherit)), checked like an open by name
    /// (type, layout, header). Only this child receives the descriptor (it is
    /// close-on-exec everywhere else). [`Spawn::start`] fails with
    /// `InvalidInput` for a named region (pass its name instead).
    ///
    /// ```no_run
    /// use multiproc::process::Spawn;
    /// use multiproc::Queue;
    ///
    /// fn child(_: &[u8]) -> i32 {
    ///     let q = Queue::<u64>::inherit(0).unwrap();
    ///     q.put(42).unwrap();
    ///     0
    /// }
    ///
    /// let q = Queue::<u64>::anonymous(8)?;
    /// let mut c = Spawn::new(child, b"").share(q.region()).start()?;
    /// assert_eq!(q.get()?, 42);
    /// assert!(c.join()?.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn share(mut self, region: &crate::Region) -> Spawn {
        self.shares_queue |= matches!(region.kind().as_str(), "Queue" | "BytesQueue");
        match region.memfd() {
            Some(f) => self.share_file(f),
            None => self.share_result(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Spawn::share: a named region; pass its name instead",
            ))),
        }
    }

    /// [`Spawn::share`] for a raw memfd (the pool's arena); the child takes it
    /// with [`take_inherited`].
    pub(crate) fn share_file(self, file: &std::fs::File) -> Spawn {
        let fd = crate::sys::shm::dup_cloexec(file.as_fd());
        self.share_result(fd)
    }

    fn share_result(mut self, fd: io::Result<OwnedFd>) -> Spawn {
        self.shared.push(fd);
        self
    }

    /// Starts the child. Fails with [`StartError::Io`] (`InvalidInput`) if the
    /// argument is too long or `entry` lies outside this program's executable.
    ///
    /// ```no_run
    /// fn entry(arg: &[u8]) -> i32 { arg.len() as i32 }
    /// let mut c = multiproc::process::Spawn::new(entry, b"abc").start()?;
    /// assert_eq!(c.join()?.code(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(self) -> Result<Child, StartError> {
        let invalid = |m: &str| StartError::Io(io::Error::new(io::ErrorKind::InvalidInput, m));
        if self.arg.len() > MAX_SPAWN_ARG {
            return Err(invalid("spawn argument longer than MAX_SPAWN_ARG"));
        }
        // Referencing the hook keeps it (and so `.init_array`'s entry) linked
        // into every program that can spawn.
        let hook = *std::hint::black_box(&SPAWN_HOOK) as usize;
        let entry = self.entry as usize;
        match (sys::object_base(hook), sys::object_base(entry)) {
            (Some(a), Some(b)) if a == b => {}
            _ => {
                return Err(invalid(
                    "spawn entry point is not in the program's own executable",
                ));
            }
        }
        let offset = (entry as isize).wrapping_sub(hook as isize);
        let mut token = [0u8; TOKEN_LEN];
        for part in token.chunks_mut(8) {
            part.copy_from_slice(&sys::random_u64().to_ne_bytes());
        }
        let auth = crate::sys::shm::memfd(TOKEN_LEN)?;
        std::os::unix::fs::FileExt::write_all_at(&auth, &token, 0)?;
        let req = Request {
            parent: sys::pid(),
            daemon: self.daemon,
            offset,
            arg: self.arg,
            auth_fd: auth.as_raw_fd(),
            token,
            ready_fd: -1,
        };
        let ready = if self.shares_queue {
            let ev = crate::Event::anonymous().map_err(|e| io::Error::other(e.to_string()))?;
            let fd = match ev.region().memfd() {
                Some(f) => crate::sys::shm::dup_cloexec(f.as_fd())?,
                None => return Err(invalid("the ready event has no descriptor")),
            };
            Some((ev, fd))
        } else {
            None
        };
        let req = Request {
            ready_fd: ready.as_ref().map_or(-1, |(_, fd)| fd.as_raw_fd()),
            ..req
        };
        let shared: Vec<OwnedFd> = self.shared.into_iter().collect::<io::Result<_>>()?;
        let raw: Vec<i32> = shared.iter().map(AsRawFd::as_raw_fd).collect();
        let list = raw.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        super::flush_std();
        let mut cmd = Command::new("/proc/self/exe");
        cmd.env(VAR, OsStr::new(&req.encode()));
        if !raw.is_empty() {
            cmd.env(FDS_VAR, list);
        }
        let inherit: Vec<i32> = (raw.iter().copied())
            .chain([req.auth_fd])
            .chain((req.ready_fd >= 0).then_some(req.ready_fd))
            .collect();
        // SAFETY: the closure runs in the forked child before `exec`; it
        // only calls fcntl (async-signal-safe) on descriptors this process
        // keeps open until `spawn` returns, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &inherit {
                    if !crate::sys::shm::clear_cloexec_raw(fd) {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        // The parent's duplicates close here; the child has its own.
        drop(shared);
        drop(auth);
        if let Some((ev, fd)) = ready {
            drop(fd);
            // Until the child counts as an end of the queues it was handed, so
            // that this process may drop its own handles at once (as after a
            // fork); bounded, and cut short if the child dies first.
            let limit = crate::loom::Deadline::after(READY_LIMIT);
            while !ev.wait_timeout(std::time::Duration::from_millis(10)) {
                if sys::is_alive(child.id(), 0) == Some(false) || limit.passed() {
                    break;
                }
            }
        }
        let name = self.name.unwrap_or_else(super::next_name);
        Ok(Child {
            pid: child.id(),
            name,
            daemon: self.daemon,
            reaped: Mutex::new(None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_and_rejects_garbage() {
        let r = Request {
            parent: 42,
            daemon: true,
            offset: -123456,
            arg: vec![0, 1, 0xfe, 0xff],
            auth_fd: 7,
            token: [9; TOKEN_LEN],
            ready_fd: -1,
        };
        let e = r.encode();
        let p = Request::parse(e.as_bytes()).unwrap();
        assert_eq!(
            (
                p.parent, p.daemon, p.offset, p.arg, p.auth_fd, p.token, p.ready_fd
            ),
            (
                42,
                true,
                -123456,
                vec![0, 1, 0xfe, 0xff],
                7,
                [9; TOKEN_LEN],
                -1
            )
        );
        let token = "09".repeat(TOKEN_LEN);
        for bad in [
            String::new(),
            format!("1:1:0:0::7:{token}:-1"),
            "2:1:0:0:".into(),
            format!("2:x:0:0::7:{token}:-1"),
            format!("2:1:2:0::7:{token}:-1"),
            format!("2:1:0:0:abc:7:{token}:-1"),
            format!("2:1:0:0:zz:7:{token}:-1"),
            format!("2:1:0:0::x:{token}:-1"),
            "2:1:0:0::7:0909:-1".into(),
            format!("2:1:0:0::7:{token}"),
            format!("2:1:0:0::7:{token}:-1:"),
        ] {
            assert!(Request::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
