//! Two separately built programs, each with its own definition of the same
//! `#[repr(C)]` struct, share a named `Queue`, `SharedDict` and `Value` of it:
//! this test binary creates them, and `examples/typed_peer.rs` (built here
//! with cargo, run as a child process) opens all three, exchanges data and
//! checks that a struct of another size is refused with both sizes named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{Unlink, unique_name};
use multiproc::{Error, FixedStr, Pod, Queue, SharedDict, Value, Zeroable};

/// This program's statistics record: a different Rust type from the peer's
/// `typed_peer::Stat` (another crate, another path), the same layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[bytemuck(crate = "multiproc::bytemuck")]
#[repr(C)]
struct CreatorStat {
    hits: u64,
    last: u64,
}

/// Half the size: refused here too.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "multiproc::bytemuck")]
#[repr(C)]
struct NarrowStat {
    hits: u64,
}

type Key = FixedStr<16>;

/// Builds `examples/typed_peer.rs` with the cargo running this test (same
/// target dir, profile and features, so it is usually already up to date) and
/// returns the path of the binary cargo reports.
fn build_peer() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--example", "typed_peer", "--message-format=json"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .stderr(Stdio::inherit());
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let mut features = Vec::new();
    if cfg!(feature = "serde") {
        features.push("serde");
    }
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    let out = cmd.output().expect("run cargo build --example typed_peer");
    assert!(
        out.status.success(),
        "cargo build --example typed_peer failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "typed_peer")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no typed_peer executable")
}

/// Runs `bin` with `args` under a watchdog (a hang is killed and fails the
/// test); returns (success, stdout).
fn run(bin: &PathBuf, args: &[&str]) -> (bool, String) {
    let child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start typed_peer");
    let pid = child.id() as libc::pid_t;
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let hung = finished.recv_timeout(common::WATCHDOG).is_err();
        if hung {
            // SAFETY: plain syscall on our own, not yet reaped, child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        hung
    });
    let out = child.wait_with_output().expect("wait for typed_peer");
    let _ = done.send(());
    assert!(
        !watchdog.join().unwrap_or(true),
        "watchdog: typed_peer hung"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_separate_binary_with_its_own_struct_opens_queue_dict_and_value() {
    let peer = build_peer();
    let (qn, dn, vn) = (unique_name("q"), unique_name("d"), unique_name("v"));
    let _u = [Unlink(qn.clone()), Unlink(dn.clone()), Unlink(vn.clone())];

    let q = Queue::<CreatorStat>::create(&qn, 8).unwrap();
    let d = SharedDict::<Key, CreatorStat>::create(&dn, 16).unwrap();
    let v = Value::create(&vn, CreatorStat { hits: 4, last: 40 }).unwrap();
    q.put(CreatorStat { hits: 1, last: 10 }).unwrap();
    q.put(CreatorStat { hits: 2, last: 20 }).unwrap();
    d.insert(
        Key::try_new("alpha").unwrap(),
        CreatorStat { hits: 3, last: 30 },
    )
    .unwrap();

    let (ok, out) = run(&peer, &[&qn, &dn, &vn]);
    print!("{out}");
    assert!(ok, "typed_peer failed:\n{out}");
    assert!(out.contains("peer: all checks passed"), "{out}");

    // The peer's answers, read back through this program's own type.
    assert_eq!(q.try_get(), Ok(CreatorStat { hits: 3, last: 30 }));
    assert!(q.is_empty());
    assert_eq!(
        d.get(&Key::try_new("beta").unwrap()),
        Ok(Some(CreatorStat { hits: 7, last: 70 }))
    );
    assert_eq!(
        v.load(),
        Ok(CreatorStat {
            hits: 104,
            last: 40
        })
    );

    // The peer was refused with both sizes named, for each kind.
    let refused: Vec<&str> = out.lines().filter(|l| l.starts_with("refused:")).collect();
    assert_eq!(refused.len(), 3, "{out}");
    assert!(
        refused.iter().any(|l| l.contains(
            "SharedDict: value type differs: \
             this program's has size 24, align 8, no type id; \
             the object's has size 16, align 8, no type id"
        )),
        "{out}"
    );

    // And so is this program, with a narrower struct.
    for e in [
        Queue::<NarrowStat>::open(&qn).map(drop).unwrap_err(),
        SharedDict::<Key, NarrowStat>::open(&dn)
            .map(drop)
            .unwrap_err(),
        Value::<NarrowStat>::open(&vn).map(drop).unwrap_err(),
    ] {
        assert!(
            matches!(&e, Error::ElementMismatch { expected, found, .. }
                if expected.size == 8 && found.size == 16),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("size 8") && msg.contains("size 16"), "{msg}");
    }
}

/// FNV-1a 64 as the spec in `src/identity.rs` writes it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Decodes a region file's identity as a peer in another language would,
/// from the written spec only: (kind, elements, capacity, slot size,
/// stored fingerprint, fingerprint recomputed from the fields).
fn decode_as_a_foreign_peer(name: &str) -> (String, Vec<[u64; 3]>, u64, u64, u64, u64) {
    let h = std::fs::read(format!("/dev/shm{name}")).unwrap();
    let u64_at = |o: usize| u64::from_ne_bytes(h[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_ne_bytes(h[o..o + 4].try_into().unwrap());
    assert_eq!(&h[..8], b"MPROCRGN");
    assert_eq!(u32_at(8), 4, "format version");
    let kind: Vec<u8> = h[64..96].iter().copied().take_while(|&b| b != 0).collect();
    let n = u32_at(184) as usize;
    let elems: Vec<[u64; 3]> = (0..n)
        .map(|i| {
            let at = 192 + 24 * i;
            [u64_at(at), u64_at(at + 8), u64_at(at + 16)]
        })
        .collect();
    let mut s = kind.clone();
    s.push(0);
    s.extend_from_slice(&(n as u64).to_le_bytes());
    for e in &elems {
        for v in e {
            s.extend_from_slice(&v.to_le_bytes());
        }
    }
    (
        String::from_utf8(kind).unwrap(),
        elems,
        u64_at(240),
        u64_at(248),
        u64_at(24),
        fnv1a(&s),
    )
}

#[test]
fn a_peer_in_another_language_computes_the_identity_from_the_spec() {
    use multiproc::identity::stable_id;
    const STAT: u64 = stable_id("demo.Stat/v1");
    assert_eq!(STAT, fnv1a(b"demo.Stat/v1"));

    let (qn, dn) = (unique_name("spec-q"), unique_name("spec-d"));
    let _u = [Unlink(qn.clone()), Unlink(dn.clone())];
    let q = Queue::<multiproc::Tagged<CreatorStat, STAT>>::create(&qn, 8).unwrap();
    let _d = SharedDict::<Key, NarrowStat>::create(&dn, 10).unwrap();

    let (kind, elems, cap, slot, stored, computed) = decode_as_a_foreign_peer(&qn);
    assert_eq!(kind, "Queue");
    assert_eq!(elems, [[16, 8, STAT]]);
    assert_eq!((cap, slot), (8, 16));
    assert_eq!(stored, computed);
    assert_eq!(stored, q.region().identity().fingerprint);

    let (kind, elems, cap, slot, stored, computed) = decode_as_a_foreign_peer(&dn);
    assert_eq!(kind, "SharedDict");
    assert_eq!(elems, [[18, 1, 0], [8, 8, 0]]);
    assert_eq!((cap, slot), (10, 0));
    assert_eq!(stored, computed);
}
