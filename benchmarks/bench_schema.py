"""Throughput and GIL use of ``streamkit.schema.decode_batch``: Arrow path vs msgspec.

Decodes the same realistic v1.1 statuses (from ``streamkit.testing.generate_statuses``,
with retweets, quotes, long tweets and a share of notices) with

* ``json.loads`` and untyped ``msgspec.json.decode`` (parse only, one dict per message),
* the msgspec reference implementation (``schema._decode_reference``: typed decode,
  per-row flattening in Python, the whole job),
* ``decode_batch`` (the Arrow path: ``pyarrow.json`` + ``pyarrow.compute``, the whole job),

and prints messages per second: wall clock, and CPU of the calling thread (what a
``collect()`` writer thread spends itself; the Arrow path also runs Arrow's own threads).

Two GIL tests run a thread beside one that decodes batches back to back:

* a pure-Python busy loop: how much of its speed it keeps (the share of the GIL the decoder
  leaves to others), and how fast the decoder still goes (a busy thread is the worst case
  for a decoder that hands the GIL over often: each hand-over can cost it 5 ms);
* an I/O-like thread, as ``collect()``'s network reader and WAL dispatcher are: it sleeps
  1 ms, then runs ~50 us of Python; the report is how late it wakes (the time it waits for
  the GIL), median and 99th percentile.

Run: ``python benchmarks/bench_schema.py [-n 20000] [--batch 5000] [--repeat 3] [--gil 3]``
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable

import msgspec
import pyarrow as pa

from streamkit import schema
from streamkit.schema import decode_batch

__all__ = ["main"]


def _messages(n: int, notices: float) -> list[bytes]:
    try:
        from streamkit.testing import generate_statuses
    except ImportError:  # the public re-export may not be wired up yet
        from streamkit.testing._generate import generate_statuses
    rng = random.Random(0)
    out = []
    # compact separators, as the streaming API sends them
    for s in generate_statuses(n, seed=0):
        if rng.random() < notices:
            out.append(json.dumps({"delete": {"status": {"id": s["id"], "id_str": s["id_str"],
                                  "user_id": s["user"]["id"], "user_id_str": s["user"]["id_str"]},
                                  "timestamp_ms": s["timestamp_ms"]}}, separators=(",", ":")))  # fmt: skip
        else:
            out.append(json.dumps(s, separators=(",", ":")))
    return [m.encode() for m in out]


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best (wall, calling-thread CPU) seconds of ``repeat`` runs."""
    wall, cpu = [], []
    for _ in range(repeat):
        gc.collect()
        w, c = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return min(wall), min(cpu)


def _busy(stop: threading.Event, counts: list[int]) -> None:
    n = 0
    while not stop.is_set():
        for _ in range(1000):
            n += 1
    counts.append(n)


def _io_like(stop: threading.Event, lateness: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        time.sleep(0.001)
        lateness.append(time.perf_counter() - t0 - 0.001)
        sum(range(500))  # some framing work


def _beside(seconds: float, work: Callable[[], None] | None, other, out: list) -> int:
    """Run ``other(stop, out)`` in a thread while ``work`` runs in a loop; work calls done."""
    stop = threading.Event()
    done = [0]

    def worker() -> None:
        while not stop.is_set():
            work()
            done[0] += 1

    threads = [threading.Thread(target=other, args=(stop, out), name="bench-other", daemon=True)]
    if work is not None:
        threads.append(threading.Thread(target=worker, name="bench-decode", daemon=True))
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    return done[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=20_000, help="number of messages (default 20000)")
    p.add_argument("--batch", type=int, default=5_000, help="decode batch size (default 5000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per method; best is kept")
    p.add_argument("--notices", type=float, default=0.02, help="share of delete notices")
    p.add_argument("--gil", type=float, default=3.0, help="seconds per GIL measurement (0: skip)")
    args = p.parse_args(argv)

    msgs = _messages(args.n, args.notices)
    n = len(msgs)
    size = statistics.mean(map(len, msgs))
    print(f"{n} messages, mean {size / 1024:.1f} KB, batch {args.batch}, python "
          f"{sys.version.split()[0]}, msgspec {msgspec.__version__}, pyarrow {pa.__version__}, "
          f"Arrow CPU threads {pa.cpu_count()}")  # fmt: skip
    batches = [msgs[i : i + args.batch] for i in range(0, n, args.batch)]
    for b in batches[:1]:  # warm caches and Arrow's thread pool
        decode_batch(b)
        schema._decode_reference(b)

    def stdlib() -> None:
        loads = json.loads
        for m in msgs:
            loads(m)

    def untyped() -> None:
        decode = msgspec.json.decode
        for m in msgs:
            decode(m)

    def run(fn: Callable, keep_raw: bool = True) -> Callable[[], None]:
        def go() -> None:
            for b in batches:
                fn(b, received_at_us=0, keep_raw=keep_raw)

        return go

    results = [
        ("json.loads (parse only)", _best(stdlib, args.repeat)),
        ("msgspec.json.decode untyped (parse only)", _best(untyped, args.repeat)),
        ("msgspec reference (whole job)", _best(run(schema._decode_reference), args.repeat)),
        ("decode_batch, Arrow (whole job)", _best(run(decode_batch), args.repeat)),
        ("decode_batch, Arrow, keep_raw=False", _best(run(decode_batch, False), args.repeat)),
    ]
    print(f"{'':44} {'wall msgs/s':>12} {'us/msg':>7} {'thread-CPU msgs/s':>18}")
    for name, (wall, cpu) in results:
        print(f"{name:<44} {n / wall:>12,.0f} {wall * 1e6 / n:>7.1f} {n / cpu:>18,.0f}")

    if args.gil > 0:
        b = batches[0]
        paths = (("msgspec reference", schema._decode_reference), ("decode_batch, Arrow", decode_batch))
        print(f"\nGIL, beside a thread decoding {len(b)}-message batches back to back "
              f"({args.gil:.0f} s each)")  # fmt: skip
        counts: list[int] = []
        t0 = time.perf_counter()
        _beside(args.gil, None, _busy, counts)
        alone = counts[0] / (time.perf_counter() - t0)
        print(f"{'busy loop alone':<44} {alone:>14,.0f} iterations/s")
        for name, fn in paths:
            counts = []
            t0 = time.perf_counter()
            done = _beside(args.gil, lambda fn=fn: fn(b, received_at_us=0), _busy, counts)
            wall = time.perf_counter() - t0
            print(f"{'busy loop beside ' + name:<44} {counts[0] / wall:>14,.0f} iterations/s "
                  f"({counts[0] / wall / alone:5.1%} kept); decoding {done * len(b) / wall:,.0f} "
                  "msgs/s")  # fmt: skip
        for name, fn in (("alone", None), *paths):
            late: list[float] = []
            work = None if fn is None else (lambda fn=fn: fn(b, received_at_us=0))
            t0 = time.perf_counter()
            done = _beside(args.gil, work, _io_like, late)
            wall = time.perf_counter() - t0
            p50, p99 = (statistics.quantiles(late, n=100)[i] * 1e3 for i in (49, 98))
            rate = "" if fn is None else f"; decoding {done * len(b) / wall:,.0f} msgs/s"
            print(f"{'I/O-like thread ' + name:<44} wakes late by {p50:6.2f} ms median, "
                  f"{p99:6.2f} ms p99{rate}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
