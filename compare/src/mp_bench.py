"""Python multiprocessing baselines for `cargo run --release -p compare`.

Run by the Rust program (embedded with include_str!, once per round); stdlib
only. For each message size it measures, with the same messages as the Rust
side (compare/src/payload.rs):

* round trip over two multiprocessing.Queue (parent -> echo process -> parent);
* round trip over one multiprocessing.Pipe (send_bytes / recv_bytes);
* throughput of one multiprocessing.Queue(maxsize=1024), n producer processes
  -> n consumer processes, n in --pairs.

Each measurement has a warm-up phase, then one measured phase. Processes are
forked ("fork" start method). Every message is checked on arrival (sequence
and bytes); producers' messages must arrive exactly once. Results are printed
as one JSON object per line; any failure prints {"kind": "error", ...} and
exits 1.
"""

import argparse
import json
import multiprocessing as mp
import queue
import struct
import sys
import time

STOP = (1 << 64) - 1
SHIFT = 56
MASK = (1 << SHIFT) - 1
CHUNK = 64
CAPACITY = 1024
TIMEOUT = 60.0
clock = time.perf_counter_ns


def emit(obj):
    print(json.dumps(obj, separators=(",", ":")), flush=True)


class Failed(Exception):
    pass


def stamp(w, size):
    """The message for word w: w (little-endian), fill bytes, w again."""
    head = struct.pack("<Q", w)
    if size < 16:
        return head
    return head + bytes([(w & 0xFF) ^ 0xA5]) * (size - 16) + head


def word(m):
    return struct.unpack_from("<Q", m)[0] if len(m) >= 8 else None


def echo_queue(rx, tx, size):
    expect = 1
    while True:
        m = rx.get()
        w = word(m)
        if w == STOP:
            return
        if w != expect or m != stamp(w, size):
            tx.put(b"bad")
            sys.exit(3)
        tx.put(stamp(w + 1, size))
        expect = w + 2


def echo_pipe(conn, size):
    expect = 1
    while True:
        m = conn.recv_bytes()
        w = word(m)
        if w == STOP:
            return
        if w != expect or m != stamp(w, size):
            conn.send_bytes(b"bad")
            sys.exit(3)
        conn.send_bytes(stamp(w + 1, size))
        expect = w + 2


def ping_pong(ctx, kind, size, warmup, secs):
    if kind == "queue":
        to_child, to_parent = ctx.Queue(), ctx.Queue()
        child = ctx.Process(target=echo_queue, args=(to_child, to_parent, size))
        send, recv = to_child.put, to_parent.get
    else:
        mine, theirs = ctx.Pipe()
        child = ctx.Process(target=echo_pipe, args=(theirs, size))
        send, recv = mine.send_bytes, mine.recv_bytes
    child.start()
    samples = []
    v = 1
    for dur, recorded in ((warmup, False), (secs, True)):
        end = clock() + int(dur * 1e9)
        while True:
            msg = stamp(v, size)
            t0 = clock()
            send(msg)
            r = recv()
            t1 = clock()
            if r != stamp(v + 1, size):
                raise Failed(f"{kind} ping-pong {size} B: wrong reply to {v}: {r[:16]!r}")
            if recorded:
                samples.append(t1 - t0)
            v += 2
            if t1 >= end:
                break
    send(stamp(STOP, size))
    child.join(TIMEOUT)
    if child.exitcode != 0:
        raise Failed(f"{kind} ping-pong {size} B: echo process ended with {child.exitcode}")
    return samples


def producer(q, p, size, ready, stop, results):
    base = p << SHIFT
    k = 0
    ready.wait()
    while not stop.is_set():
        for _ in range(CHUNK):
            k += 1
            q.put(stamp(base | k, size))
    q.put(stamp(STOP, size))
    results.put(("p", p, k))


def consumer(q, c, size, producers, results):
    last = [0] * producers
    count = [0] * producers
    total = [0] * producers
    squares = [0] * producers
    while True:
        m = q.get()
        w = word(m)
        if w is None or len(m) != size or m != stamp(w, size):
            results.put(("bad", c, f"corrupt message {m[:16]!r}"))
            return
        if w == STOP:
            break
        p, k = w >> SHIFT, w & MASK
        if p >= producers or k <= last[p]:
            results.put(("bad", c, f"out of turn: producer {p}, {k} after {last[p] if p < producers else '-'}"))
            return
        last[p] = k
        count[p] += 1
        total[p] += k
        squares[p] += k * k
    results.put(("c", c, count, total, squares))


def throughput(ctx, size, pairs, secs):
    q = ctx.Queue(maxsize=CAPACITY)
    results = ctx.Queue()
    stop = ctx.Event()
    ready = ctx.Barrier(pairs + 1)
    procs = [ctx.Process(target=consumer, args=(q, c, size, pairs, results)) for c in range(pairs)]
    procs += [ctx.Process(target=producer, args=(q, p, size, ready, stop, results)) for p in range(pairs)]
    for pr in procs:
        pr.start()
    ready.wait(TIMEOUT)
    t0 = clock()
    time.sleep(secs)
    stop.set()
    sent = {}
    got = []
    t1 = t0
    try:
        while len(sent) < pairs or len(got) < pairs:
            r = results.get(timeout=TIMEOUT)
            if r[0] == "p":
                sent[r[1]] = r[2]
            elif r[0] == "c":
                got.append(r)
                t1 = clock()
            else:
                raise Failed(f"throughput {size} B {pairs}->{pairs}: consumer {r[1]}: {r[2]}")
    except queue.Empty:
        raise Failed(f"throughput {size} B {pairs}->{pairs}: no result within {TIMEOUT} s")
    for pr in procs:
        pr.join(TIMEOUT)
        if pr.exitcode != 0:
            raise Failed(f"throughput {size} B {pairs}->{pairs}: a worker ended with {pr.exitcode}")
    for p in range(pairs):
        k = sent[p]
        count = sum(r[2][p] for r in got)
        total = sum(r[3][p] for r in got)
        squares = sum(r[4][p] for r in got)
        if count != k or total != k * (k + 1) // 2 or squares != k * (k + 1) * (2 * k + 1) // 6:
            raise Failed(
                f"throughput {size} B {pairs}->{pairs}: producer {p} sent {k}, consumers got {count}: "
                "messages lost or duplicated"
            )
    return sum(sent.values()), (t1 - t0) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="8,64,1024")
    ap.add_argument("--pairs", default="1,2")
    ap.add_argument("--warmup", type=float, default=0.05)
    ap.add_argument("--time", type=float, default=0.2)
    a = ap.parse_args()
    ctx = mp.get_context("fork")
    emit({"kind": "info", "version": sys.version.split()[0]})
    for size in [int(s) for s in a.sizes.split(",")]:
        for kind in ("queue", "pipe"):
            samples = ping_pong(ctx, kind, size, a.warmup, a.time)
            emit({"kind": "latency", "mech": kind, "size": size, "samples_ns": samples})
        for pairs in [int(p) for p in a.pairs.split(",") if p]:
            throughput(ctx, size, pairs, a.warmup)
            msgs, secs = throughput(ctx, size, pairs, a.time)
            emit({"kind": "throughput", "mech": "queue", "size": size, "pairs": pairs,
                  "msgs": msgs, "secs": secs})


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        emit({"kind": "error", "message": str(e)})
        sys.exit(1)
