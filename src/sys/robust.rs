//! Death notices from the kernel: one robust-futex list per process, held by a
//! parked thread of the crate's own (the *beacon thread*).
//!
//! When a thread exits for any reason (SIGKILL, OOM kill, `exec`, a normal exit),
//! the kernel walks the robust list the thread registered with `set_robust_list`.
//! For every entry whose futex word holds the thread's TID it sets
//! `FUTEX_OWNER_DIED`, clears the TID and, if the word's `FUTEX_WAITERS` bit is set,
//! wakes a waiter. That is the one reuse-proof death notice Linux gives, and it
//! reaches sleepers in other processes at once.
//!
//! glibc registers one list per thread for its `pthread_mutex_t`s, so the crate
//! does not use those threads' lists. Instead each process starts one thread,
//! `multiproc-beacon`, that registers a list of the crate's own and then parks for
//! the life of the process; it holds no lock and allocates nothing after start, so
//! forking beside it is safe. Its TID is the value every beacon word of this process
//! holds. Any thread may add or remove entries (under a process-local mutex): the
//! kernel reads the list only when the beacon thread exits, which is when the
//! process dies or execs. So membership no longer depends on which thread joined or
//! left a region, or whether that thread is still running.
//!
//! Entries live in shared memory (the futex word must be visible to peers), so a
//! peer could overwrite their `next` links. The crate never reads a link back:
//! the list's order is kept in a private shadow vector and links are only written.
//! A scribbled link can only make the kernel's walk at our death stop early (it
//! stops on any fault, and after [`LIST_LIMIT`] entries); peers then fall back to
//! `/proc` probes for the entries it missed.
//!
//! Protocol (every list change is announced in `list_op_pending` first, so a death
//! in the middle still marks the entry, as the kernel ABI intends):
//!
//! | step | arm (join) | disarm (leave) |
//! |---|---|---|
//! | 1 | `pending = entry` | `pending = entry` |
//! | 2 | `word = tid` | unlink from the list |
//! | 3 | link at the front | `word = 0`, wake waiters if `FUTEX_WAITERS` |
//! | 4 | `pending = null` | `pending = null` |
#![expect(
    clippy::disallowed_types,
    reason = "the kernel ABI takes real atomics; this module is not modelled by loom"
)]

use std::cell::UnsafeCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Set by the kernel (or a waiter) when someone sleeps on the word.
pub(crate) const FUTEX_WAITERS: u32 = 0x8000_0000;
/// Set by the kernel when the thread whose TID the word held died.
pub(crate) const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// The TID part of a robust futex word.
pub(crate) const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// The kernel stops walking a robust list after this many entries
/// (`ROBUST_LIST_LIMIT`); entries beyond it are not armed, and peers probe
/// `/proc` for them instead.
pub(crate) const LIST_LIMIT: usize = 2048;

/// One robust-list entry in shared memory: the kernel's `struct robust_list`
/// followed by the futex word at [`FUTEX_OFFSET`].
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Entry {
    /// `struct robust_list::next`: an address in the *owning* process. Written by
    /// the owner, read only by the kernel at the owner's death, never read back.
    next: AtomicU64,
    /// 0 (not armed), the beacon thread's TID (armed), or `FUTEX_OWNER_DIED`
    /// (set by the kernel at death); `FUTEX_WAITERS` may be or-ed in by waiters.
    pub(crate) word: AtomicU32,
    _pad: u32,
}

/// Distance from an entry to its futex word, registered with the list head.
const FUTEX_OFFSET: isize = 8;
const _: () = assert!(std::mem::offset_of!(Entry, word) == FUTEX_OFFSET as usize);
const _: () = assert!(size_of::<Entry>() == 16);

impl Entry {
    /// A zeroed entry (not armed).
    pub(crate) const fn new() -> Entry {
        Entry {
            next: AtomicU64::new(0),
            word: AtomicU32::new(0),
            _pad: 0,
        }
    }
}

/// The kernel's `struct robust_list_head`, in process-private memory.
#[repr(C)]
struct Head {
    /// First entry, or the head itself when the list is empty.
    next: AtomicUsize,
    futex_offset: isize,
    list_op_pending: AtomicUsize,
}

/// The one list head of this process. The kernel reads it only when the beacon
/// thread exits; the private mutex in [`State`] orders every writer.
struct HeadCell(UnsafeCell<Head>);

// SAFETY: all fields are atomics or immutable; the cell only exists so the kernel
// gets a stable `*mut` address.
unsafe impl Sync for HeadCell {}

static HEAD: HeadCell = HeadCell(UnsafeCell::new(Head {
    next: AtomicUsize::new(0),
    futex_offset: FUTEX_OFFSET,
    list_op_pending: AtomicUsize::new(0),
}));

fn head() -> &'static Head {
    // SAFETY: the static lives forever; shared references to atomics are fine
    // while the kernel (the only other party) reads through the raw pointer.
    unsafe { &*HEAD.0.get() }
}

fn head_addr() -> usize {
    HEAD.0.get() as usize
}

/// This process's beacon: the thread's TID and the shadow list.
struct State {
    /// The process this state belongs to; a forked child builds its own.
    pid: u32,
    /// The beacon thread's TID, or 0 if it could not be started.
    tid: u32,
    /// Entry addresses in kernel list order (front first).
    list: Mutex<Vec<usize>>,
}

static STATE: AtomicPtr<State> = AtomicPtr::new(std::ptr::null_mut());
/// Pid of the process that is building (or built) `STATE`.
static INIT: AtomicU32 = AtomicU32::new(0);

fn state() -> &'static State {
    let pid = super::process::pid();
    loop {
        // Acquire: pairs with the Release store below (SYNC(beacon)).
        let p = STATE.load(Ordering::Acquire);
        // SAFETY: non-null pointers in STATE come from Box::leak and are never freed.
        if let Some(s) = unsafe { p.as_ref() } {
            if s.pid == pid {
                return s;
            }
        }
        let cur = INIT.load(Ordering::Relaxed);
        if cur == pid {
            // Another thread of this process is starting the beacon.
            std::thread::yield_now();
            continue;
        }
        if INIT
            .compare_exchange(cur, pid, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // We build this process's state. An inherited list (fork) belongs to the
        // parent's beacon thread, which does not exist here: start empty.
        head().list_op_pending.store(0, Ordering::Relaxed);
        head().next.store(head_addr(), Ordering::Relaxed);
        let tid = start_beacon_thread();
        let s: &'static State = Box::leak(Box::new(State {
            pid,
            tid,
            list: Mutex::new(Vec::new()),
        }));
        // SYNC(beacon): Release publishes the state to other threads.
        STATE.store((s as *const State).cast_mut(), Ordering::Release);
        return s;
    }
}

/// Starts the beacon thread and returns its TID (0 if it could not start or the
/// kernel refused the list).
///
/// A raw `pthread_create`, not `std::thread`: a process forked while another
/// of its parent's threads was starting or ending a `std` thread inherits
/// std's thread-registration lock held for ever, and the child's first join
/// of a region (which starts its beacon) then never returned: 14 hangs in
/// ~1,000 runs of `tests/cpython_ports.rs` at 4-16 test threads, every one
/// with the beacon stuck in std's `thread_info` lock. glibc resets its own
/// thread-creation locks in a forked child, and nothing here takes another.
fn start_beacon_thread() -> u32 {
    /// The beacon's answer: `STARTED | tid` (tid 0: the list was refused).
    static HANDSHAKE: AtomicU32 = AtomicU32::new(0);
    const STARTED: u32 = 1 << 31;

    extern "C" fn beacon_main(_: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: an all-ones set blocks every blockable signal for this
        // thread only: signals are for the program's own threads, and this
        // one runs no handler on its small stack.
        unsafe {
            let mut all = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), std::ptr::null_mut());
        }
        let (head, len) = (HEAD.0.get(), size_of::<Head>());
        // SAFETY: a 'static robust_list_head, replacing glibc's list for this
        // thread only; this thread never locks a pthread robust mutex.
        let rc = unsafe { libc::syscall(libc::SYS_set_robust_list, head, len) };
        let tid = if rc == 0 { super::process::tid() } else { 0 };
        // Named before the answer, so a thread count taken after the start
        // already knows it (`process::thread_count` matches the kernel's
        // 15-byte `comm`, which is also the longest name glibc accepts).
        let name = c"multiproc-beaco";
        debug_assert!(super::process::BEACON_THREAD_NAME.starts_with("multiproc-beaco"));
        // SAFETY: a NUL-terminated name of 15 bytes for the calling thread.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
        // Release: the starter reads the TID with Acquire.
        HANDSHAKE.store(STARTED | tid, Ordering::Release);
        super::futex::wake(&HANDSHAKE, u32::MAX);
        loop {
            // SAFETY: pause has no preconditions; every signal is blocked, so
            // it sleeps for the life of the process.
            unsafe { libc::pause() };
        }
    }

    // Relaxed: only this thread starts the beacon of this process (`INIT`).
    HANDSHAKE.store(0, Ordering::Relaxed);
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: `attr` is initialized by pthread_attr_init before any other use
    // and destroyed once; `beacon_main` has the signature pthread expects and
    // takes no argument.
    let created = unsafe {
        if libc::pthread_attr_init(attr.as_mut_ptr()) != 0 {
            return 0;
        }
        libc::pthread_attr_setstacksize(attr.as_mut_ptr(), 64 * 1024);
        libc::pthread_attr_setdetachstate(attr.as_mut_ptr(), libc::PTHREAD_CREATE_DETACHED);
        let mut t: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut t, attr.as_ptr(), beacon_main, std::ptr::null_mut());
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        rc == 0
    };
    if !created {
        return 0;
    }
    // Bounded: a beacon that does not answer within the bound (a machine
    // stalled for that long) leaves beacons off; peers use `/proc`.
    let deadline = super::time::Deadline::after(std::time::Duration::from_secs(10));
    loop {
        let v = HANDSHAKE.load(Ordering::Acquire);
        if v & STARTED != 0 {
            return v & !STARTED;
        }
        if deadline.passed() {
            return 0;
        }
        let _ = super::futex::wait(&HANDSHAKE, v, Some(deadline));
    }
}

/// The TID every armed beacon word of this process holds; 0 if beacons are off.
#[cfg(test)]
pub(crate) fn beacon_tid() -> u32 {
    state().tid
}

/// Arms `entry`: links it into this process's list and stores the beacon TID in
/// its word. Returns `false` (the word stays 0) if beacons are unavailable or the
/// list is full; peers then judge liveness from `/proc`.
///
/// The entry must stay mapped until [`disarm`] is called on it.
pub(crate) fn arm(entry: &Entry) -> bool {
    let s = state();
    if s.tid == 0 {
        return false;
    }
    let mut list = s.list.lock().unwrap_or_else(|e| e.into_inner());
    let addr = entry as *const Entry as usize;
    if list.len() >= LIST_LIMIT - 1 || list.contains(&addr) {
        return false;
    }
    let h = head();
    // Relaxed throughout: the kernel reads these only after this process's
    // threads stopped, and the mutex orders this process's writers.
    h.list_op_pending.store(addr, Ordering::Relaxed);
    entry.word.store(s.tid, Ordering::Release);
    let first = list.first().copied().unwrap_or(head_addr());
    entry.next.store(first as u64, Ordering::Relaxed);
    h.next.store(addr, Ordering::Relaxed);
    list.insert(0, addr);
    h.list_op_pending.store(0, Ordering::Relaxed);
    true
}

/// Disarms `entry` if this process armed it: unlinks it, clears the word if it
/// still names this process, and wakes anyone waiting on it. A no-op for entries
/// this process does not hold. Safe to call from any thread. Must be called
/// before an armed entry is unmapped, whatever a peer wrote into it.
pub(crate) fn disarm(entry: &Entry) {
    let s = state();
    let mut list = s.list.lock().unwrap_or_else(|e| e.into_inner());
    let addr = entry as *const Entry as usize;
    let Some(i) = list.iter().position(|&a| a == addr) else {
        return;
    };
    let h = head();
    h.list_op_pending.store(addr, Ordering::Relaxed);
    let succ = list.get(i + 1).copied().unwrap_or(head_addr());
    if i == 0 {
        h.next.store(succ, Ordering::Relaxed);
    } else if let Some(&pred) = list.get(i - 1) {
        // SAFETY: every address in the shadow list is an armed entry, which the
        // caller of `arm` keeps mapped until it is disarmed (removed here).
        let pred = unsafe { &*(pred as *const Entry) };
        pred.next.store(succ as u64, Ordering::Relaxed);
    }
    list.remove(i);
    // Only a word that still names us is ours to clear: a peer may have written
    // it, or (after such a write made others think us dead) reused the slot.
    let cur = entry.word.load(Ordering::Relaxed);
    let ours = s.tid != 0 && cur & FUTEX_TID_MASK == s.tid && cur & FUTEX_OWNER_DIED == 0;
    // Release: a peer that sees 0 sees everything we did before leaving.
    let cleared = ours
        && entry
            .word
            .compare_exchange(cur, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok();
    h.list_op_pending.store(0, Ordering::Relaxed);
    drop(list);
    if cleared && cur & FUTEX_WAITERS != 0 {
        // Wake peers sleeping on this beacon so they re-probe.
        super::futex::wake(&entry.word, u32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_and_disarm_from_different_threads() {
        let e = Box::new(Entry::new());
        assert!(arm(&e));
        let tid = e.word.load(Ordering::Relaxed);
        assert_eq!(tid, beacon_tid());
        assert_ne!(tid, 0);
        let addr = &*e as *const Entry as usize;
        std::thread::scope(|s| {
            // SAFETY: `e` outlives the scope.
            s.spawn(|| disarm(unsafe { &*(addr as *const Entry) }));
        });
        assert_eq!(e.word.load(Ordering::Relaxed), 0);
        // Not armed twice, not disarmed twice.
        disarm(&e);
        assert_eq!(e.word.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn list_links_follow_the_shadow() {
        let es: Vec<Box<Entry>> = (0..4).map(|_| Box::new(Entry::new())).collect();
        for e in &es {
            assert!(arm(e));
        }
        disarm(&es[1]);
        // Walk the kernel's view from the head and check every remaining entry is
        // reachable and the removed one is not. Under the list mutex, so other
        // tests cannot disarm (and free) entries during the walk.
        let guard = state().list.lock().unwrap();
        let mut seen = Vec::new();
        let mut at = head().next.load(Ordering::Relaxed);
        while at != head_addr() && seen.len() < LIST_LIMIT {
            seen.push(at);
            // SAFETY: addresses in the list are armed entries, which stay alive
            // until disarmed, and disarming needs the mutex we hold.
            at = unsafe { &*(at as *const Entry) }
                .next
                .load(Ordering::Relaxed) as usize;
        }
        assert_eq!(seen, *guard);
        drop(guard);
        for (i, e) in es.iter().enumerate() {
            let a = &**e as *const Entry as usize;
            assert_eq!(seen.contains(&a), i != 1, "entry {i}");
        }
        for e in &es {
            disarm(e);
        }
    }
}
