"""Throughput of ``streamkit.schema.decode_batch`` against plain JSON parsing.

Decodes the same realistic v1.1 statuses (3-5 KB each, from
``streamkit.testing.generate_statuses``) with

* stdlib ``json.loads`` (one dict per message, nothing else),
* untyped ``msgspec.json.decode`` (one dict per message, nothing else),
* ``decode_batch`` (typed decode + flatten + Arrow tables, raw column kept),

and prints messages per second (best of ``--repeat`` runs). The parsers only parse;
``decode_batch`` does the whole job, so beating ``json.loads`` is the bar.

Run: ``python benchmarks/bench_schema.py [-n 20000] [--batch 5000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable

import msgspec

from streamkit.schema import decode_batch

__all__ = ["main"]


def _statuses(n: int) -> list[bytes]:
    try:
        from streamkit.testing import generate_statuses
    except ImportError:  # the public re-export may not be wired up yet
        from streamkit.testing._generate import generate_statuses
    # compact separators, as the streaming API sends them
    return [json.dumps(s, separators=(",", ":")).encode() for s in generate_statuses(n, seed=0)]


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=20_000, help="number of statuses (default 20000)")
    p.add_argument("--batch", type=int, default=5_000, help="decode_batch size (default 5000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per method; best is kept")
    args = p.parse_args(argv)

    msgs = _statuses(args.n)
    n = len(msgs)
    size = statistics.mean(map(len, msgs))
    print(f"{n} statuses, mean {size / 1024:.1f} KB, python {sys.version.split()[0]}, "
          f"msgspec {msgspec.__version__}")  # fmt: skip
    decode_batch(msgs[:100])  # warm Arrow's strptime and the caches

    def stdlib() -> None:
        loads = json.loads
        for m in msgs:
            loads(m)

    def untyped() -> None:
        decode = msgspec.json.decode
        for m in msgs:
            decode(m)

    def batched(keep_raw: bool) -> Callable[[], None]:
        def run() -> None:
            for i in range(0, n, args.batch):
                decode_batch(msgs[i : i + args.batch], received_at_us=0, keep_raw=keep_raw)

        return run

    results = [
        ("json.loads (parse only)", _best(stdlib, args.repeat)),
        ("msgspec.json.decode untyped (parse only)", _best(untyped, args.repeat)),
        (f"decode_batch batch={args.batch}", _best(batched(True), args.repeat)),
        (f"decode_batch batch={args.batch} keep_raw=False", _best(batched(False), args.repeat)),
    ]
    for name, secs in results:
        print(f"{name:<48} {n / secs:>10,.0f} statuses/s  {secs * 1e6 / n:6.1f} us/status")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
