//! `Process` lifecycle with real processes: exit codes, panics and signals as
//! Python reports them, `is_alive`, names, dropped handles leaving no zombie,
//! daemons dying with a SIGKILLed parent, flushed stdout, and the fork refusal
//! in threaded parents (with the beacon thread exempt).
//!
//! Roles that need a process of their own (a single-threaded parent, real
//! stdout) re-execute this test binary with `MULTIPROC_ROLE` set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use common::{WATCHDOG, watchdog};
use std::process::Command;
use std::time::Duration;

use multiproc::process::{self, ExitStatus, PANIC_EXIT_CODE, Process, StartError};
use multiproc::{Event, Queue};

/// Starts `p` in this (threaded) test binary.
fn start<F, R>(p: Process<F>) -> process::Child
where
    F: FnOnce() -> R,
    R: process::IntoExitCode,
{
    // SAFETY: the children below use only this crate's primitives, arithmetic,
    // panics and `print!` to a stdout no other thread of a role process uses.
    unsafe { p.start_unchecked() }.expect("start")
}

/// `Some((state, ppid))` from `/proc/<pid>/stat`, `None` if the pid is gone.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = s.rfind(')')?;
    let mut f = s[close + 1..].split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

fn is_our_child(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, ppid)| ppid == std::process::id())
}

/// Waits (under the watchdog) until process `pid`, not our child, has exited.
fn wait_gone(pid: u32) {
    // SAFETY: pidfd_open on a pid; the fd is polled and closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        // Already gone (ESRCH).
        return;
    }
    let mut pfd = libc::pollfd {
        fd: fd as i32,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, WATCHDOG.as_millis() as i32) };
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd as i32) };
    assert_eq!(r, 1, "process {pid} still runs after {WATCHDOG:?}");
}

#[test]
fn exit_codes_match_python() {
    watchdog(|| {
        let gate = Event::anonymous().unwrap();
        let g = gate.clone();
        let c = start(Process::new(move || {
            g.wait();
            3
        }));
        assert!(c.is_alive());
        assert_eq!(c.exitcode(), None);
        assert_eq!(c.join_timeout(Duration::from_millis(5)).unwrap(), None);
        gate.set();
        assert_eq!(c.join().unwrap(), ExitStatus::Code(3));
        assert!(!c.is_alive());
        assert_eq!(c.exitcode(), Some(3));
        // join again: same answer.
        assert_eq!(c.join().unwrap(), ExitStatus::Code(3));

        let ok = start(Process::new(|| ()));
        assert_eq!(ok.join().unwrap().code(), 0);
        assert_eq!(ok.exitcode(), Some(0));

        let err = start(Process::new(|| Err::<(), _>("bad")));
        assert_eq!(err.join().unwrap().code(), 1);

        // `resume_unwind` unwinds without running the panic hook, whose locks
        // another thread of this harness may hold at the fork; `role_panic`
        // below checks a real `panic!` in a process of its own.
        let panicked = start(Process::new(|| -> i32 {
            std::panic::resume_unwind(Box::new("child panics"))
        }));
        assert_eq!(panicked.join().unwrap(), ExitStatus::Code(PANIC_EXIT_CODE));
        assert_eq!(panicked.exitcode(), Some(101));
    });
}

#[test]
fn signals_are_negative_exit_codes() {
    watchdog(|| {
        let never = Event::anonymous().unwrap();
        let n = never.clone();
        let t = start(Process::new(move || n.wait()));
        assert!(t.is_alive());
        t.terminate().unwrap();
        assert_eq!(t.join().unwrap(), ExitStatus::Signal(15));
        assert_eq!(t.exitcode(), Some(-15));
        assert!(!t.is_alive());
        // Signals after the child was reaped are no-ops.
        t.terminate().unwrap();
        t.kill().unwrap();

        let n = never.clone();
        let k = start(Process::new(move || n.wait()));
        k.kill().unwrap();
        assert_eq!(k.join().unwrap().code(), -9);
        assert_eq!(k.exitcode(), Some(-9));
    });
}

#[test]
fn names_and_daemon_flag() {
    watchdog(|| {
        let a = start(Process::new(|| 0).name("worker-a"));
        assert_eq!(a.name(), "worker-a");
        assert!(!a.is_daemon());
        let b = start(Process::new(|| 0).daemon(true));
        assert!(b.name().starts_with("Process-"), "{}", b.name());
        assert!(b.is_daemon());
        assert!(a.join().unwrap().success());
        assert!(b.join().unwrap().success());
    });
}

#[test]
fn dropped_handles_leave_no_zombie() {
    watchdog(|| {
        // Finished child: reaped by drop.
        let done = Event::anonymous().unwrap();
        let d = done.clone();
        let c = start(Process::new(move || d.set()));
        let pid = c.pid();
        done.wait();
        drop(c);
        assert!(!is_our_child(pid), "finished child {pid} left a zombie");

        // Running daemon: killed and reaped by drop.
        let never = Event::anonymous().unwrap();
        let n = never.clone();
        let c = start(Process::new(move || n.wait()).daemon(true));
        let pid = c.pid();
        assert!(is_our_child(pid));
        drop(c);
        assert!(!is_our_child(pid), "daemon {pid} survived its handle");

        // Running non-daemon: drop waits for it.
        let gate = Event::anonymous().unwrap();
        let out: Queue<u32> = Queue::anonymous(2).unwrap();
        let (g, o) = (gate.clone(), out.clone());
        let c = start(Process::new(move || {
            g.wait();
            o.put(7).unwrap();
        }));
        let pid = c.pid();
        gate.set();
        drop(c);
        assert!(!is_our_child(pid));
        assert_eq!(
            out.try_get(),
            Ok(7),
            "drop returned before the child finished"
        );
    });
}

/// A parent (middle process) starts a daemon and a non-daemon child that both
/// block forever, then is SIGKILLed: the daemon dies with it, the other lives.
#[test]
fn daemon_dies_with_a_killed_parent() {
    watchdog(|| {
        let pids: Queue<[u32; 2]> = Queue::anonymous(2).unwrap();
        let never = Event::anonymous().unwrap();
        let (q, n) = (pids.clone(), never.clone());
        let parent = start(Process::new(move || {
            let (n1, n2) = (n.clone(), n.clone());
            // SAFETY: this middle process is single-threaded (forked).
            let d = unsafe {
                Process::new(move || n1.wait())
                    .daemon(true)
                    .start_unchecked()
            };
            // SAFETY: as above.
            let o = unsafe { Process::new(move || n2.wait()).start_unchecked() };
            let (d, o) = (d.unwrap(), o.unwrap());
            q.put([d.pid(), o.pid()]).unwrap();
            n.wait();
            // Never reached: killed while waiting.
            std::mem::forget((d, o));
        }));
        let [daemon, other] = pids.get_timeout(WATCHDOG).unwrap();
        parent.kill().unwrap();
        assert_eq!(parent.join().unwrap().code(), -9);
        wait_gone(daemon);
        // The non-daemon child was re-parented and still runs.
        let st = stat(other).expect("non-daemon child still exists");
        assert_ne!(st.0, 'Z');
        // SAFETY: clean up the orphan we made.
        unsafe { libc::kill(other as i32, libc::SIGKILL) };
        wait_gone(other);
    });
}

#[test]
fn fork_is_refused_with_other_threads() {
    watchdog(|| {
        // This thread and the harness's main thread: at least two.
        match Process::new(|| 0).start() {
            Err(StartError::Threads { threads }) => assert!(threads >= 2),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(matches!(
            process::fork(|| 0),
            Err(StartError::Threads { .. })
        ));
    });
}

fn role() -> Option<String> {
    std::env::var("MULTIPROC_ROLE").ok()
}

/// Runs this test binary's test `name` alone, single-threaded, with real
/// stdout; returns (exit status success, stdout).
fn run_role(name: &str, role: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env("MULTIPROC_ROLE", role)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Role body (in a re-executed test binary, real stdout): a forked,
/// single-threaded middle process prints without a newline (line-buffered
/// stdout keeps it), starts a child with the checked `start`, which prints
/// without a newline too, and joins it.
#[test]
fn role_flush() {
    if role().as_deref() != Some("flush") {
        return;
    }
    let middle = start(Process::new(|| -> i32 {
        print!("<parent-before>");
        let Ok(c) = Process::new(|| print!("<child>")).start() else {
            return 20;
        };
        if !c.join().is_ok_and(|s| s.success()) {
            return 21;
        }
        println!("<parent-after>");
        0
    }));
    assert_eq!(middle.join().unwrap(), ExitStatus::Code(0));
}

/// Role body: a real `panic!` in a child (this re-executed binary runs only
/// this test, so no other thread holds the panic hook's locks at the fork).
#[test]
fn role_panic() {
    if role().as_deref() != Some("panic") {
        return;
    }
    let c = start(Process::new(|| -> i32 { panic!("child panics") }));
    assert_eq!(c.join().unwrap(), ExitStatus::Code(PANIC_EXIT_CODE));
    assert_eq!(c.exitcode(), Some(101));
    println!("<panic-ok>");
}

#[test]
fn panicking_child_exits_101() {
    watchdog(|| {
        let (ok, out) = run_role("role_panic", "panic");
        assert!(ok && out.contains("<panic-ok>"), "{out}");
    });
}

#[test]
fn child_stdout_is_flushed_once() {
    watchdog(|| {
        let (ok, out) = run_role("role_flush", "flush");
        assert!(ok, "{out}");
        assert_eq!(out.matches("<parent-before>").count(), 1, "{out}");
        assert_eq!(out.matches("<child>").count(), 1, "{out}");
        assert!(out.contains("<parent-after>"), "{out}");
    });
}

/// In a single-threaded process (a forked child of this test), a thread named
/// like the crate's beacon is not counted; a thread with another name is.
#[test]
fn beacon_thread_is_not_counted() {
    watchdog(|| {
        let probe = start(Process::new(|| -> i32 {
            use std::sync::{Arc, Barrier};
            // A thread named `name`, known to run (std names a thread from the
            // thread itself, so wait until it runs), that exits when released.
            let named = |name: &str| {
                let (started, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
                let (s, r) = (Arc::clone(&started), Arc::clone(&release));
                let t = std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || {
                        s.wait();
                        r.wait();
                    });
                started.wait();
                t.map(|t| (t, release))
            };
            let Ok((beacon, release_beacon)) = named("multiproc-beacon") else {
                return 10;
            };
            let code = match Process::new(|| 4).start() {
                Ok(c) => match c.join() {
                    Ok(s) if s.code() == 4 => 0,
                    _ => 11,
                },
                Err(_) => 12,
            };
            let Ok((other, release_other)) = named("other") else {
                return 13;
            };
            let refused = matches!(
                Process::new(|| 0).start(),
                Err(StartError::Threads { threads: 2 })
            );
            release_other.wait();
            let _ = other.join();
            release_beacon.wait();
            let _ = beacon.join();
            if code != 0 {
                code
            } else if refused {
                0
            } else {
                14
            }
        }));
        assert_eq!(probe.join().unwrap(), ExitStatus::Code(0));
    });
}

/// Entry point of a spawned child: opens the named `Event` given as its
/// argument, sets it, exits with 7.
fn spawned_entry(arg: &[u8]) -> i32 {
    let Ok(name) = std::str::from_utf8(arg) else {
        return 1;
    };
    let Ok(ev) = Event::open(name) else {
        return 2;
    };
    ev.set();
    7
}

/// A spawned child is a fresh single-threaded process: a real `panic!` is safe.
fn spawned_panics(_: &[u8]) -> i32 {
    panic!("spawned child panics")
}

/// The spawn start method from a parent running several threads, one of them
/// holding a lock (the failure mode of fork): the child runs its entry point,
/// reaches a named object by name, and reports exit codes as Python does.
#[test]
fn spawn_in_a_threaded_parent() {
    watchdog(|| {
        use std::sync::{Arc, Barrier, Mutex};
        let held = Arc::new(Mutex::new(()));
        let (locked, release) = (Arc::new(Barrier::new(4)), Arc::new(Barrier::new(4)));
        let mut threads = Vec::new();
        for i in 0..3 {
            let (h, l, r) = (Arc::clone(&held), Arc::clone(&locked), Arc::clone(&release));
            threads.push(std::thread::spawn(move || {
                let _g = (i == 0).then(|| h.lock().unwrap());
                l.wait();
                r.wait();
            }));
        }
        locked.wait();
        assert!(matches!(
            Process::new(|| 0).start(),
            Err(StartError::Threads { .. })
        ));

        let name = format!("/mp-spawn-test-{}", std::process::id());
        let ev = Event::create(&name).unwrap();
        let c = process::Spawn::new(spawned_entry, name.as_bytes())
            .name("spawned")
            .start()
            .unwrap();
        assert_eq!(c.name(), "spawned");
        assert!(
            ev.wait_timeout(WATCHDOG),
            "spawned child never set the event"
        );
        assert_eq!(c.join().unwrap(), ExitStatus::Code(7));
        assert_eq!(c.exitcode(), Some(7));
        multiproc::Region::unlink(&name).unwrap();

        let p = process::Spawn::new(spawned_panics, b"").start().unwrap();
        assert_eq!(p.join().unwrap().code(), PANIC_EXIT_CODE);

        // A daemon spawned child killed by `kill`, reaped, reported as -9.
        let never = format!("/mp-spawn-never-{}", std::process::id());
        let _never = Event::create(&never).unwrap();
        fn wait_forever(arg: &[u8]) -> i32 {
            let ev = Event::open(std::str::from_utf8(arg).unwrap_or("")).map(|e| e.wait());
            i32::from(ev.is_err())
        }
        let d = process::Spawn::new(wait_forever, never.as_bytes())
            .daemon(true)
            .start()
            .unwrap();
        assert!(d.is_alive());
        d.kill().unwrap();
        assert_eq!(d.join().unwrap().code(), -9);
        multiproc::Region::unlink(&never).unwrap();

        release.wait();
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// The spawned side of `anonymous_objects_reach_a_spawned_child`: opens the
/// queue and value its parent shared (indices 0 and 1), checks that nothing
/// else was shared and that an index cannot be opened twice, answers on the
/// queue. Exit code 0 on success, 10 + the failed step otherwise.
fn spawned_uses_anonymous(arg: &[u8]) -> i32 {
    let Ok(q) = Queue::<u64>::inherit(0) else {
        return 10;
    };
    let Ok(v) = multiproc::Value::<u64>::inherit(1) else {
        return 11;
    };
    if Queue::<u64>::inherit(0).is_ok() || Queue::<u64>::inherit(2).is_ok() {
        return 12;
    }
    let Ok(first) = q.get_timeout(WATCHDOG) else {
        return 13;
    };
    let seed = u64::from(arg.first().copied().unwrap_or(0));
    if v.store(first * 2 + seed).is_err() || q.put(first + 1).is_err() {
        return 14;
    }
    0
}

/// A queue put into a wrong type's inherit: the child reports the refusal.
fn spawned_wrong_type(_: &[u8]) -> i32 {
    match multiproc::Value::<u64>::inherit(0) {
        Err(multiproc::Error::TypeMismatch { .. }) => 0,
        Err(_) => 2,
        Ok(_) => 1,
    }
}

/// Anonymous objects (no name anywhere) reach a child started with the spawn
/// start method from a parent with several threads: their memfds are handed
/// to that child alone, which opens them with `inherit` (type checked).
#[test]
fn anonymous_objects_reach_a_spawned_child() {
    watchdog(|| {
        let stop = std::sync::Arc::new(std::sync::Barrier::new(3));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let s = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    s.wait();
                })
            })
            .collect();
        let q = Queue::<u64>::anonymous(8).unwrap();
        let v = multiproc::Value::<u64>::anonymous(0).unwrap();
        let c = process::Spawn::new(spawned_uses_anonymous, &[5])
            .share(q.region())
            .share(v.region())
            .start()
            .unwrap();
        q.put(20).unwrap();
        // The child answers 21 (it took 20 first); wait for a value that is not ours.
        let got = loop {
            let x = q.get_timeout(WATCHDOG).unwrap();
            if x != 20 {
                break x;
            }
            q.put(x).unwrap();
        };
        assert_eq!(got, 21);
        assert_eq!(c.join().unwrap(), ExitStatus::Code(0));
        assert_eq!(v.load().unwrap(), 45);

        // Type checked like an open by name.
        let w = process::Spawn::new(spawned_wrong_type, b"")
            .share(q.region())
            .start()
            .unwrap();
        assert_eq!(w.join().unwrap(), ExitStatus::Code(0));

        // A named region cannot be shared this way.
        let name = format!("/mp-share-named-{}", std::process::id());
        let ev = Event::create(&name).unwrap();
        let r = process::Spawn::new(spawned_wrong_type, b"")
            .share(ev.region())
            .start();
        assert!(
            matches!(r, Err(StartError::Io(ref e)) if e.kind() == std::io::ErrorKind::InvalidInput),
            "{r:?}"
        );
        multiproc::Region::unlink(&name).unwrap();
        stop.wait();
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// A child reaped by someone else (a `waitpid` elsewhere in the program)
/// gives the same answer to `join` and `join_timeout` as to `is_alive` and
/// `exitcode`, in whatever order they are called: its status is lost
/// (`Signal(0)`), it no longer runs. Before the fix `join` failed with
/// `ECHILD` unless `exitcode` had been called first.
#[test]
fn a_child_reaped_elsewhere_joins_as_signal_zero() {
    watchdog(|| {
        for first_join in [true, false] {
            let child = start(Process::new(|| 0));
            let pid = child.pid() as libc::pid_t;
            let mut status = 0;
            // SAFETY: waitpid on our own child, into a local status word.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            if first_join {
                assert_eq!(child.join().unwrap(), ExitStatus::Signal(0));
                assert_eq!(
                    child.join_timeout(Duration::ZERO).unwrap(),
                    Some(ExitStatus::Signal(0))
                );
                assert!(!child.is_alive());
            } else {
                assert_eq!(
                    child.join_timeout(Duration::from_secs(1)).unwrap(),
                    Some(ExitStatus::Signal(0))
                );
                assert_eq!(child.exitcode(), Some(0));
                assert_eq!(child.join().unwrap(), ExitStatus::Signal(0));
            }
        }
    });
}

/// The spawn hook runs in every program that links the crate, before `main`:
/// a `MULTIPROC_SPAWN` its parent did not set (hand-written, or copied from
/// another process's environment) is refused with exit code 2, never jumped
/// to (a hand-written offset used to end in SIGSEGV before `main`).
#[test]
fn a_spawn_request_no_parent_made_is_refused() {
    let me = std::env::current_exe().unwrap();
    let token = "00".repeat(16);
    for req in [
        "1:1:0:4096:".to_string(),
        format!("2:1:0:4096::7:{token}:-1"),
        format!("2:1:0:0::0:{token}:-1"),
        "garbage".to_string(),
    ] {
        let out = Command::new(&me)
            .env("MULTIPROC_SPAWN", &req)
            .arg("--list")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{req}: {:?}", out.status);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("MULTIPROC_SPAWN"),
            "{req}"
        );
        assert!(out.stdout.is_empty(), "{req}: main ran");
    }
}

fn spawned_puts_five(_: &[u8]) -> i32 {
    // Wrong types first: refused, and the queue is still there to take.
    if !matches!(
        multiproc::BytesQueue::inherit(0),
        Err(multiproc::Error::TypeMismatch { .. })
    ) {
        return 20;
    }
    let Ok(q) = Queue::<u64>::inherit(0) else {
        return 21;
    };
    for i in 0..5 {
        if q.put(i).is_err() {
            return 22;
        }
    }
    0
}

/// A spawned child counts as an end of a queue it was handed from before its
/// entry runs, as a forked child does from its first instruction: the parent
/// may drop its own handle as soon as `start` returns and still receives
/// everything, then `Disconnected` once the child is gone. Before, the child
/// counted only once its entry called `inherit`, and a parent that dropped
/// its copy first saw `Disconnected` at once with nothing received.
///
/// In a forked child of its own: a child another test forks meanwhile would
/// inherit the queue and count as a sender until it exits.
#[test]
fn a_spawned_child_counts_as_a_sender_before_its_entry_runs() {
    watchdog(|| {
        // SAFETY: the child only uses this crate's queue and spawn method.
        let scenario = unsafe {
            Process::new(|| {
                let Ok(q) = Queue::<u64>::anonymous(8) else {
                    return 10;
                };
                let rx = q.receiver();
                let started = process::Spawn::new(spawned_puts_five, b"")
                    .share(q.region())
                    .start();
                let Ok(c) = started else {
                    return 11;
                };
                drop(q);
                let got: Vec<_> = (0..5).map(|_| rx.get_timeout(WATCHDOG)).collect();
                if got != (0..5).map(Ok).collect::<Vec<_>>() {
                    return 12;
                }
                if c.join().ok() != Some(ExitStatus::Code(0)) {
                    return 13;
                }
                if rx.get_timeout(WATCHDOG) != Err(multiproc::GetError::Disconnected) {
                    return 14;
                }
                0
            })
            .start_unchecked()
        };
        assert_eq!(scenario.unwrap().join().unwrap(), ExitStatus::Code(0));
    });
}

/// A daemon started from a thread that then ends lives on with its parent
/// process: the kernel's parent-death signal fires when the *thread* that
/// forked exits, and it used to be `SIGKILL` (a pool's replacement worker,
/// started by whichever thread was driving the pool, died with that thread).
/// It still dies with the parent process (`daemon_dies_with_a_killed_parent`).
#[test]
fn a_daemon_outlives_the_thread_that_started_it() {
    watchdog(|| {
        let (go, armed) = (Event::anonymous().unwrap(), Event::anonymous().unwrap());
        let (g, a) = (go.clone(), armed.clone());
        let (child, tid) = std::thread::spawn(move || {
            // SAFETY: the child only uses this crate's Events and returns.
            let c = unsafe {
                Process::new(move || {
                    // The closure runs after the child asked for its death signal.
                    a.set();
                    i32::from(!g.wait_timeout(WATCHDOG))
                })
                .daemon(true)
                .start_unchecked()
            };
            // End this thread only once the child's death signal is armed.
            assert!(
                armed.wait_timeout(WATCHDOG),
                "watchdog: the child never started"
            );
            // SAFETY: gettid has no preconditions.
            (c.unwrap(), unsafe { libc::gettid() })
        })
        .join()
        .unwrap();
        // The thread is gone for good (the kernel has sent the death signal,
        // which it does before it removes the thread).
        let start = std::time::Instant::now();
        while std::path::Path::new(&format!("/proc/self/task/{tid}")).exists() {
            assert!(
                start.elapsed() < WATCHDOG,
                "watchdog: the thread never ended"
            );
            std::thread::yield_now();
        }
        go.set();
        let child = child;
        assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    });
}

#[test]
fn a_child_shared_by_threads_is_reaped_once_and_keeps_its_status() {
    // `Child` methods take `&self`: one thread joins while another polls
    // `is_alive` and `exitcode`. The status is reaped once, under the handle's
    // lock, and both see the real exit code (two threads racing `waitpid`
    // would leave one of them `ECHILD`, a status read as lost).
    for round in 0..20 {
        let go = Event::anonymous().unwrap();
        let c = start(Process::new(
            || if go.wait_timeout(WATCHDOG) { 7 } else { 9 },
        ));
        std::thread::scope(|s| {
            let joiner = s.spawn(|| c.join().unwrap());
            let poller = s.spawn(|| {
                let start = std::time::Instant::now();
                while c.is_alive() {
                    assert!(start.elapsed() < WATCHDOG, "watchdog: child never ended");
                    std::thread::yield_now();
                }
                c.exitcode()
            });
            go.set();
            assert_eq!(joiner.join().unwrap(), ExitStatus::Code(7), "round {round}");
            assert_eq!(poller.join().unwrap(), Some(7), "round {round}");
        });
        assert_eq!(
            c.wait_timeout(Duration::ZERO).unwrap(),
            Some(ExitStatus::Code(7))
        );
        c.kill().unwrap();
    }
}

#[test]
fn join_timeout_on_a_running_child_returns_none_and_reaps_nothing() {
    let go = Event::anonymous().unwrap();
    let c = start(Process::new(
        || if go.wait_timeout(WATCHDOG) { 3 } else { 9 },
    ));
    assert_eq!(c.join_timeout(Duration::from_millis(5)).unwrap(), None);
    assert!(c.is_alive());
    go.set();
    assert_eq!(c.join().unwrap(), ExitStatus::Code(3));
    assert_eq!(c.exitcode(), Some(3));
}
