//! Criterion benchmarks for `SharedDict<u64, u64>` against two baselines:
//!
//! * `std_mutex`: a `std::sync::Mutex<HashMap<u64, u64>>` in one process (the
//!   floor: no shared memory, no robustness, process-private);
//! * `manager`: Python's `Manager().dict()` model, a server process that owns a
//!   `HashMap` and answers requests over a Unix socket (one `UnixStream` pair per
//!   client, created before `fork`; one server thread per connection, the map
//!   behind a `Mutex`, as the manager's server does). Requests are a fixed
//!   17-byte binary record `[op, key: u64, value: u64]` and replies a 9-byte
//!   `[found, value: u64]`: no pickling, no proxy objects, so this is a lower
//!   bound of what a Python manager round trip costs. Its `update` is one
//!   server-side read-modify-write per round trip (Python's `d[k] += 1` through
//!   a proxy takes two round trips and is not atomic), again favouring the
//!   baseline.
//!
//! Groups:
//!
//! * `dict_uncontended`: one process, `get` (a present key), `insert` (an
//!   existing key, new value) and `update` (`*v += 1`), cycling over 1,024 keys.
//! * `dict_contended_update`: `update` while a second writer hammers the same
//!   keys in a loop: a forked process for `shared_dict`, a second thread for
//!   `std_mutex`, a second client process for `manager`. The reported time is the
//!   measuring side's per-operation latency.
//!
//! Run with `cargo bench -p multiproc-benches --bench dict -- --noplot`.
//! Every child is forked once per benchmark function, not per sample.

// A benchmark has no caller to hand errors to: failing setup should abort loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use multiproc::process::{self, Child};
use multiproc::{Event, SharedDict};

/// Keys cycled through by every benchmark; all present before measuring.
const KEYS: u64 = 1024;

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
    let mut g = c.benchmark_group(name);
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    g
}

/// Reaps `child`, panicking unless it exited with code 0.
fn reap(child: Child) {
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "child ended with {status:?}");
}

mod manager {
    //! The Manager-style server and its client.

    use super::*;

    pub const GET: u8 = 1;
    pub const SET: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const STOP: u8 = 4;

    /// Serves one connection until `STOP` or EOF.
    fn serve(mut s: UnixStream, map: &Mutex<HashMap<u64, u64>>) {
        let mut req = [0u8; 17];
        loop {
            if s.read_exact(&mut req).is_err() || req[0] == STOP {
                return;
            }
            let key = u64::from_le_bytes(req[1..9].try_into().unwrap());
            let val = u64::from_le_bytes(req[9..17].try_into().unwrap());
            let (found, out) = {
                let mut m = map.lock().unwrap();
                match req[0] {
                    GET => m.get(&key).map_or((0, 0), |v| (1, *v)),
                    SET => m.insert(key, val).map_or((0, 0), |v| (1, v)),
                    UPDATE => m.get_mut(&key).map_or((0, 0), |v| {
                        *v += val;
                        (1, *v)
                    }),
                    _ => (0, 0),
                }
            };
            let mut resp = [0u8; 9];
            resp[0] = found;
            resp[1..].copy_from_slice(&u64::to_le_bytes(out));
            if s.write_all(&resp).is_err() {
                return;
            }
        }
    }

    /// Forks the server process: one thread per connection, one shared map
    /// holding keys `0..KEYS`.
    pub fn spawn_server(conns: Vec<UnixStream>) -> Child {
        // SAFETY: criterion may run other threads; the child runs only this crate's primitives and plain code, then `_exit`s, taking no lock another thread may hold.
        unsafe {
            process::fork_unchecked(move || {
                let map = Mutex::new((0..KEYS).map(|k| (k, 0)).collect::<HashMap<u64, u64>>());
                std::thread::scope(|sc| {
                    for c in conns {
                        let map = &map;
                        sc.spawn(move || serve(c, map));
                    }
                });
                0
            })
        }
        .expect("fork manager server")
    }

    /// One client connection.
    pub struct Client(pub UnixStream);

    impl Client {
        /// One request/response round trip.
        pub fn call(&mut self, op: u8, key: u64, val: u64) -> Option<u64> {
            let mut req = [0u8; 17];
            req[0] = op;
            req[1..9].copy_from_slice(&key.to_le_bytes());
            req[9..17].copy_from_slice(&val.to_le_bytes());
            self.0.write_all(&req).expect("send request");
            if op == STOP {
                return None;
            }
            let mut resp = [0u8; 9];
            self.0.read_exact(&mut resp).expect("read response");
            (resp[0] == 1).then(|| u64::from_le_bytes(resp[1..].try_into().unwrap()))
        }
    }

    /// A server and `n` connected clients.
    pub fn start(n: usize) -> (Child, Vec<Client>) {
        let (ours, theirs): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| UnixStream::pair().expect("socketpair"))
            .unzip();
        let server = spawn_server(theirs);
        (server, ours.into_iter().map(Client).collect())
    }
}

fn uncontended(c: &mut Criterion) {
    let mut g = group(c, "dict_uncontended");

    let d: SharedDict<u64, u64> = SharedDict::anonymous(KEYS as usize).unwrap();
    for k in 0..KEYS {
        d.insert(k, 0).unwrap();
    }
    let m = Mutex::new((0..KEYS).map(|k| (k, 0)).collect::<HashMap<u64, u64>>());
    let (server, mut clients) = manager::start(1);
    let mut cl = clients.pop().unwrap();

    let mut k = 0u64;
    let mut next = move || {
        k = (k + 1) % KEYS;
        k
    };

    g.bench_function("get/shared_dict", |b| {
        b.iter(|| black_box(d.get(&next()).unwrap()));
    });
    g.bench_function("get/std_mutex", |b| {
        b.iter(|| black_box(m.lock().unwrap().get(&next()).copied()));
    });
    g.bench_function("get/manager", |b| {
        b.iter(|| black_box(cl.call(manager::GET, next(), 0)));
    });

    g.bench_function("insert/shared_dict", |b| {
        b.iter(|| black_box(d.insert(next(), 7).unwrap()));
    });
    g.bench_function("insert/std_mutex", |b| {
        b.iter(|| black_box(m.lock().unwrap().insert(next(), 7)));
    });
    g.bench_function("insert/manager", |b| {
        b.iter(|| black_box(cl.call(manager::SET, next(), 7)));
    });

    g.bench_function("update/shared_dict", |b| {
        b.iter(|| black_box(d.update(&next(), |v| *v += 1).unwrap()));
    });
    g.bench_function("update/std_mutex", |b| {
        b.iter(|| {
            let mut g = m.lock().unwrap();
            black_box(g.get_mut(&next()).map(|v| *v += 1))
        });
    });
    g.bench_function("update/manager", |b| {
        b.iter(|| black_box(cl.call(manager::UPDATE, next(), 1)));
    });
    g.finish();

    cl.call(manager::STOP, 0, 0);
    drop(cl);
    reap(server);
}

fn contended(c: &mut Criterion) {
    let mut g = group(c, "dict_contended_update");
    let mut k = 0u64;
    let mut next = move || {
        k = (k + 1) % KEYS;
        k
    };

    // shared_dict: a forked process updates the same keys in a loop.
    {
        let d: SharedDict<u64, u64> = SharedDict::anonymous(KEYS as usize).unwrap();
        for k in 0..KEYS {
            d.insert(k, 0).unwrap();
        }
        let (started, stop) = (Event::anonymous().unwrap(), Event::anonymous().unwrap());
        // SAFETY: criterion may run other threads; the child runs only this crate's primitives and plain code, then `_exit`s, taking no lock another thread may hold.
        let child = unsafe {
            process::fork_unchecked(|| {
                let mut i = 0u64;
                while !stop.is_set() {
                    if d.update(&(i % KEYS), |v| *v += 1).is_err() {
                        return 1;
                    }
                    i += 1;
                    if i == 1 {
                        started.set();
                    }
                }
                0
            })
        }
        .expect("fork contender");
        started.wait();
        g.bench_function("update_2_procs/shared_dict", |b| {
            b.iter(|| black_box(d.update(&next(), |v| *v += 1).unwrap()));
        });
        stop.set();
        reap(child);
    }

    // std_mutex: a second thread (a Mutex<HashMap> cannot be shared by processes).
    {
        let m = Mutex::new((0..KEYS).map(|k| (k, 0)).collect::<HashMap<u64, u64>>());
        let (started, stop) = (Event::anonymous().unwrap(), Event::anonymous().unwrap());
        std::thread::scope(|sc| {
            sc.spawn(|| {
                let mut i = 0u64;
                while !stop.is_set() {
                    if let Some(v) = m.lock().unwrap().get_mut(&(i % KEYS)) {
                        *v += 1;
                    }
                    i += 1;
                    if i == 1 {
                        started.set();
                    }
                }
            });
            started.wait();
            g.bench_function("update_2_threads/std_mutex", |b| {
                b.iter(|| {
                    let mut g = m.lock().unwrap();
                    black_box(g.get_mut(&next()).map(|v| *v += 1))
                });
            });
            stop.set();
        });
    }

    // manager: a second client process sends updates in a loop.
    {
        let (server, mut clients) = manager::start(2);
        let mut theirs = clients.pop().unwrap();
        let mut ours = clients.pop().unwrap();
        let (started, stop) = (Event::anonymous().unwrap(), Event::anonymous().unwrap());
        // SAFETY: criterion may run other threads; the child runs only this crate's primitives and plain code, then `_exit`s, taking no lock another thread may hold.
        let child = unsafe {
            process::fork_unchecked(|| {
                let mut i = 0u64;
                while !stop.is_set() {
                    theirs.call(manager::UPDATE, i % KEYS, 1);
                    i += 1;
                    if i == 1 {
                        started.set();
                    }
                }
                theirs.call(manager::STOP, 0, 0);
                0
            })
        }
        .expect("fork contending client");
        started.wait();
        g.bench_function("update_2_procs/manager", |b| {
            b.iter(|| black_box(ours.call(manager::UPDATE, next(), 1)));
        });
        stop.set();
        reap(child);
        ours.call(manager::STOP, 0, 0);
        drop(ours);
        drop(theirs);
        reap(server);
    }
    g.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
