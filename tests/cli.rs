//! The `multiproc` binary, run against real regions this test creates (unique
//! names under one prefix per test), next to files in /dev/shm that are not
//! regions: `ls` lists exactly the regions, `inspect` describes every kind,
//! `rm` and `gc` remove what they should and nothing else.
#![cfg(feature = "cli")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{WATCHDOG, kill, spawn, unique_name};
use multiproc::{
    Array, Barrier, BoundedSemaphore, BytesQueue, Cleanup, Condition, Counter, Event, Lock,
    Manager, Queue, RLock, Region, RegionOptions, Semaphore, SharedDict, Value,
};
use serde_json::Value as Json;

/// Output of one run of the binary.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `multiproc ARGS` with `input` on stdin, under the watchdog.
fn run_with(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn multiproc");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            panic!("watchdog: multiproc {args:?} did not finish");
        }
        // Polling for the exit under a deadline, not synchronizing with it.
        std::thread::sleep(Duration::from_millis(5));
    };
    feeder.join().unwrap();
    Run {
        code: status.code(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn run(args: &[&str]) -> Run {
    run_with(args, "")
}

fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm{name}"))
}

fn exists(name: &str) -> bool {
    shm_path(name).symlink_metadata().is_ok()
}

/// Removes whatever sits at a name in /dev/shm when dropped (regions, plain
/// files, FIFOs, symlinks, directories), so a failing test leaves nothing.
struct Remove(Vec<String>);

impl Drop for Remove {
    fn drop(&mut self) {
        for n in &self.0 {
            let p = shm_path(n);
            let _ = std::fs::remove_file(&p);
            let _ = std::fs::remove_dir(&p);
        }
    }
}

/// Files under the prefix that are not regions: `ls` must never show them and
/// `rm`/`gc` must leave them alone.
fn plant_non_regions(prefix: &str, guard: &mut Remove) -> Vec<String> {
    let mut names = Vec::new();
    let mut plant = |tag: &str, make: &dyn Fn(&PathBuf)| {
        let n = format!("{prefix}{tag}");
        make(&shm_path(&n));
        guard.0.push(n.clone());
        names.push(n);
    };
    plant("plain", &|p| {
        std::fs::write(p, b"just some text\n").unwrap()
    });
    plant("empty", &|p| std::fs::write(p, b"").unwrap());
    // The magic alone, shorter than a header: truncated, not a region.
    plant("short-magic", &|p| std::fs::write(p, b"MPROCRGN").unwrap());
    plant("garbage", &|p| {
        let b: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(p, b).unwrap()
    });
    plant("fifo", &|p| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; mkfifo returns 0 or -1.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    });
    plant("dir", &|p| std::fs::create_dir(p).unwrap());
    names
}

/// One live region of every kind under `prefix`, with known contents.
struct Kinds {
    names: Vec<String>,
    _handles: Vec<Box<dyn std::any::Any>>,
}

fn create_all_kinds(prefix: &str, guard: &mut Remove) -> Kinds {
    let mut names = Vec::new();
    let mut handles: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mut name = |tag: &str| {
        let n = format!("{prefix}{tag}");
        guard.0.push(n.clone());
        names.push(n.clone());
        n
    };
    let q = Queue::<u64>::create(&name("queue"), 8).unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    handles.push(Box::new(q));
    let bq = BytesQueue::create(&name("bytes"), 4, 60).unwrap();
    bq.put(b"hello").unwrap();
    handles.push(Box::new(bq));
    let d = SharedDict::<u64, u32>::create(&name("dict"), 16).unwrap();
    d.insert(1, 10).unwrap();
    d.insert(2, 20).unwrap();
    handles.push(Box::new(d));
    let m = Manager::create(&name("manager"), 1 << 16).unwrap();
    let mq = m.queue::<u32>("jobs", 4).unwrap();
    let ml = m.lock("jobs-lock").unwrap();
    handles.push(Box::new((m, mq, ml)));
    handles.push(Box::new(Lock::create(&name("lock")).unwrap()));
    handles.push(Box::new(RLock::create(&name("rlock")).unwrap()));
    handles.push(Box::new(Semaphore::create(&name("sem"), 3).unwrap()));
    handles.push(Box::new(
        BoundedSemaphore::create(&name("bsem"), 5).unwrap(),
    ));
    let ev = Event::create(&name("event")).unwrap();
    ev.set();
    handles.push(Box::new(ev));
    handles.push(Box::new(Condition::create(&name("cond")).unwrap()));
    handles.push(Box::new(Barrier::create(&name("barrier"), 3).unwrap()));
    handles.push(Box::new(Counter::create(&name("counter"), -5).unwrap()));
    handles.push(Box::new(Value::<u64>::create(&name("value"), 42).unwrap()));
    handles.push(Box::new(Array::<u32>::create(&name("array"), 4).unwrap()));
    Kinds {
        names,
        _handles: handles,
    }
}

fn json(r: &Run) -> Json {
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn ls_lists_exactly_the_regions_created() {
    let prefix = format!("{}-", unique_name("cli-ls"));
    let mut guard = Remove(Vec::new());
    let others = plant_non_regions(&prefix, &mut guard);
    let kinds = create_all_kinds(&prefix, &mut guard);
    let expected: BTreeSet<String> = kinds.names.iter().cloned().collect();
    // A symlink to a region is not a region name of its own.
    let link = format!("{prefix}link");
    std::os::unix::fs::symlink(shm_path(&kinds.names[0]), shm_path(&link)).unwrap();
    guard.0.push(link.clone());

    // The library's view.
    let listed: BTreeSet<String> = Region::list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert_eq!(listed, expected);

    // JSON, filtered by the binary.
    let j = json(&run(&["ls", "--json", "--prefix", &prefix]));
    let rows = j.as_array().unwrap();
    let names: BTreeSet<String> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, expected);
    for r in rows {
        assert!(r.get("error").is_none(), "{r}");
        assert_eq!(r["status"], "in-use", "{r}");
        assert_eq!(r["creator_pid"], u64::from(std::process::id()));
    }

    // The table, unfiltered: the lines under our prefix are exactly the regions.
    let r = run(&["ls"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let mut lines = r.stdout.lines();
    let head = lines.next().unwrap();
    for col in [
        "NAME", "KIND", "LEN", "CAP", "PROCS", "CLEANUP", "MODE", "OWNER",
    ] {
        assert!(head.contains(col), "{head}");
    }
    let table: BTreeSet<String> = lines
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    assert_eq!(table, expected);
    for o in &others {
        assert!(!r.stdout.contains(o.as_str()), "{o} listed");
    }
    assert!(!r.stdout.contains(link.as_str()));
}

#[test]
fn inspect_shows_every_kind() {
    let prefix = format!("{}-", unique_name("cli-inspect"));
    let mut guard = Remove(Vec::new());
    let others = plant_non_regions(&prefix, &mut guard);
    let kinds = create_all_kinds(&prefix, &mut guard);
    let me = u64::from(std::process::id());
    // SAFETY: geteuid has no preconditions.
    let euid = u64::from(unsafe { libc::geteuid() });
    for n in &kinds.names {
        let j = json(&run(&["inspect", "--json", n]));
        assert_eq!(j["name"], n.as_str());
        assert_eq!(j["version"].as_u64(), Some(4), "{j}");
        assert!(j["fingerprint"].as_str().unwrap().starts_with("0x"), "{j}");
        assert!(j["size"].as_u64().unwrap() >= 4096, "{j}");
        assert_eq!(j["creator_pid"], me);
        assert_eq!(j["creator_alive"], true);
        assert!(j["created_at"].as_u64().unwrap() > 1_600_000_000, "{j}");
        assert_eq!(j["cleanup"], "persistent");
        assert_eq!(j["mode"], "0600");
        assert_eq!(j["uid"], euid);
        // Children that other tests of this binary fork inherit (and so count
        // as holders of) this process's queue handles: they may be listed
        // too. This process is listed exactly once.
        let parts: Vec<_> = j["participants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["pid"] == me)
            .collect();
        assert_eq!(parts.len(), 1, "{j}");
        assert_eq!(parts[0]["pid"], me);
        assert_eq!(parts[0]["alive"], true);
        assert!(parts[0]["joined_at"].as_u64().unwrap() > 1_600_000_000);
        let detail = |k: &str| {
            j["details"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d[0] == k)
                .map(|d| d[1].clone())
                .collect::<Vec<_>>()
        };
        let tag = n.strip_prefix(&prefix).unwrap();
        let geo = (
            j["capacity"].as_u64(),
            j["element_size"].as_u64(),
            j["len"].as_u64(),
        );
        let kind = j["kind"].as_str().unwrap();
        match tag {
            "queue" => {
                assert_eq!(kind, "Queue");
                assert_eq!(geo, (Some(8), Some(8), Some(3)));
                assert_eq!(detail("closed"), [Json::Bool(false)]);
            }
            "bytes" => {
                assert_eq!(kind, "BytesQueue");
                assert_eq!((geo.0, geo.2), (Some(4), Some(1)));
                assert!(geo.1.unwrap() >= 60, "{j}");
            }
            "dict" => {
                assert_eq!(kind, "SharedDict");
                assert!(geo.0.unwrap() >= 16, "{j}");
                assert_eq!((geo.1, geo.2), (Some(4), Some(2)));
                assert_eq!(detail("key_size"), [Json::from(8)]);
            }
            "manager" => {
                assert_eq!(kind, "Manager");
                assert_eq!(geo.2, Some(2));
                let objs = detail("object");
                assert_eq!(objs.len(), 2, "{j}");
                assert!(objs[0].as_str().unwrap().starts_with("jobs Queue "), "{j}");
                assert!(
                    objs[1].as_str().unwrap().starts_with("jobs-lock Lock "),
                    "{j}"
                );
            }
            "lock" | "rlock" | "cond" => {
                let want = match tag {
                    "lock" => "Lock",
                    "rlock" => "RLock",
                    _ => "Condition",
                };
                assert_eq!(kind, want);
                assert_eq!(geo, (None, None, None));
            }
            "sem" => {
                assert_eq!(kind, "Semaphore");
                assert_eq!((geo.0, geo.2), (None, Some(3)));
                assert_eq!(detail("bounded"), [Json::Bool(false)]);
            }
            "bsem" => {
                assert_eq!(kind, "Semaphore");
                assert_eq!((geo.0, geo.2), (Some(5), Some(5)));
                assert_eq!(detail("bounded"), [Json::Bool(true)]);
            }
            "event" => {
                assert_eq!(kind, "Event");
                assert_eq!(detail("set"), [Json::Bool(true)]);
            }
            "barrier" => {
                assert_eq!(kind, "Barrier");
                assert_eq!((geo.0, geo.2), (Some(3), Some(0)));
                assert_eq!(detail("broken"), [Json::Bool(false)]);
            }
            "counter" => {
                assert_eq!(kind, "Counter");
                assert_eq!(detail("value"), [Json::from("-5")]);
            }
            "value" => {
                assert_eq!(kind, "Array");
                assert_eq!(geo, (Some(1), Some(8), Some(1)));
            }
            "array" => {
                assert_eq!(kind, "Array");
                assert_eq!(geo, (Some(4), Some(4), Some(4)));
            }
            other => panic!("unexpected region {other}"),
        }
    }

    // The text form names every field, for one region of each shape.
    let r = run(&[
        "inspect",
        &format!("{prefix}queue"),
        &format!("{prefix}manager"),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for field in [
        "kind:         Queue",
        "fingerprint:  0x",
        "capacity:     8",
        "element size: 8 bytes",
        "len:          3",
        "creator:      pid",
        "created:      20",
        "cleanup:      persistent",
        "mode 0600",
        // Not "1 (1 alive)": children other tests fork may be listed too.
        "participants: ",
        "kind:         Manager",
        "object:       jobs Queue",
    ] {
        assert!(
            r.stdout.contains(field),
            "{field:?} missing from\n{}",
            r.stdout
        );
    }
    assert!(r.stdout.contains(&format!("pid {me}")), "{}", r.stdout);

    // Anything else is refused with a reason and a failing exit code.
    for o in &others {
        let r = run(&["inspect", o]);
        assert_eq!(r.code, Some(1), "{o}: {}", r.stdout);
        assert!(r.stderr.contains(o.as_str()), "{}", r.stderr);
    }
    let r = run(&["inspect", &format!("{prefix}absent")]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("no shared memory object"), "{}", r.stderr);
}

#[test]
fn rm_removes_regions_and_only_forces_other_files() {
    let prefix = format!("{}-", unique_name("cli-rm"));
    let mut guard = Remove(Vec::new());
    let others = plant_non_regions(&prefix, &mut guard);
    let kinds = create_all_kinds(&prefix, &mut guard);
    let plain = &others[0];
    let (a, b, keep) = (&kinds.names[0], &kinds.names[1], &kinds.names[2..]);

    // One region and one plain file: the region goes, the file stays.
    let r = run(&["rm", a, plain]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert!(!exists(a));
    assert!(exists(plain));
    assert!(r.stdout.contains(&format!("removed {a}")));

    let r = run(&["rm", "--force", plain]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!exists(plain));

    // A symlink cannot be opened as a region (regions are never opened
    // through one); --force removes the link itself, not its target.
    let link = format!("{prefix}link");
    guard.0.push(link.clone());
    std::os::unix::fs::symlink(shm_path(b), shm_path(&link)).unwrap();
    let r = run(&["rm", &link]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(exists(&link));
    let r = run(&["rm", "--force", &link]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!exists(&link));
    assert!(exists(b), "the link's target stays");

    let r = run(&["rm", b]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!exists(b));

    let r = run(&["rm", &format!("{prefix}absent")]);
    assert_eq!(r.code, Some(1));

    // Nothing else was touched.
    for n in keep.iter().chain(&others[1..]) {
        assert!(exists(n), "{n} was removed");
    }
}

/// Forks a child that creates the Counter `name` with `opts`, says so, and
/// waits (in the crate's own code) to be killed; returns it once created.
fn creator_child(name: &str, opts: RegionOptions) -> multiproc::process::Child {
    let ready = Event::anonymous().unwrap();
    let never = Event::anonymous().unwrap();
    let (n, set) = (name.to_owned(), ready.clone());
    let child = spawn(move || {
        let Ok(_c) = Counter::create_with(&n, 7, opts) else {
            return 3;
        };
        set.set();
        never.wait();
        4
    });
    assert!(
        ready.wait_timeout(WATCHDOG),
        "watchdog: {name} never created"
    );
    child
}

#[test]
fn gc_removes_regions_nobody_alive_uses_and_nothing_else() {
    let prefix = format!("{}-", unique_name("cli-gc"));
    let mut guard = Remove(Vec::new());
    let others = plant_non_regions(&prefix, &mut guard);
    let name = |tag: &str, guard: &mut Remove| {
        let n = format!("{prefix}{tag}");
        guard.0.push(n.clone());
        n
    };
    // Ours, alive: kept.
    let ours = name("ours", &mut guard);
    let _ours = Counter::create(&ours, 1).unwrap();
    // Left cleanly by everyone (persistent, idle): kept.
    let idle = name("idle", &mut guard);
    drop(Counter::create(&idle, 1).unwrap());
    // Created by a child that was SIGKILLed, nobody else joined: collected.
    let dead = name("dead", &mut guard);
    let c = creator_child(&dead, RegionOptions::new());
    kill(c);
    // Created by a killed child, but this process joined it too: kept.
    let shared = name("shared", &mut guard);
    let c = creator_child(&shared, RegionOptions::new());
    let _shared = Counter::open(&shared).unwrap();
    kill(c);
    // Creator-death policy, creator killed while we use it: collected.
    let expired = name("expired", &mut guard);
    let c = creator_child(
        &expired,
        RegionOptions::new().cleanup(Cleanup::CreatorDeath),
    );
    let _expired = Counter::open(&expired).unwrap();
    kill(c);

    let doomed = [&dead, &expired];
    let kept: Vec<&String> = [&ours, &idle, &shared].into_iter().chain(&others).collect();
    let all_there = |what: &str| {
        for n in doomed.iter().copied().chain(kept.iter().copied()) {
            assert!(exists(n), "{what}: {n} was removed");
        }
    };

    let r = run(&["gc", "--dry-run", "--prefix", &prefix]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let said: BTreeSet<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("would remove "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(said, doomed.iter().map(|s| s.as_str()).collect());
    all_there("dry run");

    // Without --yes it asks; anything but yes keeps everything.
    let r = run_with(&["gc", "--prefix", &prefix], "n\n");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("[y/N]"), "{}", r.stderr);
    all_there("declined");

    // No answer at all (a script that forgot --yes): nothing removed, and not
    // a success either.
    let r = run_with(&["gc", "--prefix", &prefix], "");
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    all_there("unanswered");

    let r = run_with(&["gc", "--prefix", &prefix], "y\n");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for n in doomed {
        assert!(!exists(n), "{n} survived gc:\n{}", r.stdout);
        assert!(r.stdout.contains(&format!("removed {n}")), "{}", r.stdout);
    }
    for n in &kept {
        assert!(exists(n), "gc removed {n}:\n{}", r.stdout);
    }
    // The region a live process uses keeps working after its name is gone.
    assert_eq!(_expired.fetch_add(1), 7);

    let r = run(&["gc", "--yes", "--prefix", &prefix]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("nothing to collect"), "{}", r.stdout);
}
