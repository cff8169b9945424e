"""Client-side probes of a running ``collect()``: memory over length, latency, idle cost.

Each runs in its own process (started by ``_bench_clients.py``), against a fresh
server in the benchmark's server process, and returns one result dict.

* ``memory``: ``collect()`` with the server at full speed (the strict case: the
  network outruns the writer, and what is not written yet must stay bounded);
  the process's peak RSS (``VmHWM``) is read when ``stored`` first reaches each
  checkpoint, and at the end (after ``stop()``, i.e. with every row committed).
  A guard thread ends the process if RSS passes ``--memory-guard-mb``.
* ``latency``: the server sends at ``--rate`` statuses/s. Every status carries
  the time it was sent: its id is a snowflake drawn from the server's wall clock
  just before the send, and ``timestamp_ms`` is the same millisecond. The probe
  polls ``Collector.df`` every 10 ms and takes, for each row the first time it
  shows up, ``time.time() - sent``; it scans the part files every 50 ms and does
  the same for each row of a new file (committed). Same machine, same clock.
* ``idle``: a server that sends only keep-alives; the process's CPU time over
  ``--seconds`` once the collector is streaming.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _bench_clients import _streamkit_auth, _Window, wait_collected
from _bench_common import TRACK, emit, peak_rss_mb, rss_mb

__all__ = ["percentiles", "run_idle", "run_latency", "run_memory"]

_VIEW_POLL = 0.010
_PART_SCAN = 0.050


def percentiles(values: np.ndarray) -> dict[str, float | int | None]:
    """p50/p90/p99/max of *values* (seconds) and how many there were.

    Examples
    --------
    >>> percentiles(np.arange(101, dtype=float))["p99"]
    99.0
    >>> percentiles(np.array([]))["n"]
    0
    """
    if not len(values):
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"n": int(len(values)), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "max": float(np.max(values))}


def _twepoch_ms() -> int:
    from streamkit.testing import snowflake_ms

    return snowflake_ms(0)


def _guard_rss(limit_mb: float, report: Callable[[float], dict[str, Any]]) -> threading.Event:
    """Exit this process, after printing what *report* returns, if RSS passes *limit_mb*.

    A runaway capture on a shared machine must not take everyone's memory; the
    probe is killed from inside, so the partial result still reaches the orchestrator.
    """
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            rss = rss_mb()
            if rss > limit_mb:
                result = report(rss)
                result.update(peak_rss_mb=peak_rss_mb(), rss_start_mb=None, pid=os.getpid())
                emit(result)
                os._exit(3)

    threading.Thread(target=watch, name="bench-rss-guard", daemon=True).start()
    return done


def run_memory(a: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of ``collect()`` at each checkpoint of stored statuses."""
    import streamkit

    checkpoints = sorted(int(x) for x in a.checkpoints.split(",") if x)
    marks: dict[int, dict[str, float]] = {}
    series: list[tuple[float, int, float]] = []
    w = _Window()
    w.start()
    t0 = time.monotonic()
    last_sample = [0.0]
    stored = [0]

    def on_poll(s: Any) -> None:
        now = time.monotonic() - t0
        stored[0] = s.stored
        for cp in checkpoints:
            if cp not in marks and s.stored >= cp:
                marks[cp] = {"peak_rss_mb": peak_rss_mb(), "rss_mb": rss_mb(), "at_seconds": now,
                             "stored": s.stored}
        if now - last_sample[0] >= 0.5:
            last_sample[0] = now
            series.append((round(now, 2), s.stored, round(rss_mb(), 1)))

    def aborted(rss: float) -> dict[str, Any]:
        return {"name": "memory", "error": f"RSS reached {rss:,.0f} MB (guard "
                f"{a.memory_guard_mb:,.0f} MB) with {stored[0]:,} statuses stored",
                "aborted_rss_mb": rss, "stored": stored[0],
                "checkpoints": {str(k): v for k, v in sorted(marks.items())}, "series": series,
                "seconds": time.monotonic() - t0}

    guard = _guard_rss(a.memory_guard_mb, aborted)
    c = streamkit.collect(track=[TRACK], auth=_streamkit_auth(), path=Path(a.tmp) / "memory",
                          base_url=a.url, keep_raw=True, progress=False)
    try:
        wait_collected(c, None, poll=0.05, on_poll=on_poll)
        # The server is done; the writer may still be working through a backlog held in
        # the WAL. Keep reading the checkpoints until every message is committed, so that
        # each is read when it is reached, not all at once after stop().
        drain_until = time.monotonic() + max(600.0, checkpoints[-1] / 500.0)
        while c.running and time.monotonic() < drain_until:
            s = c.stats
            on_poll(s)
            if s.pending == 0:
                break
            time.sleep(0.05)
    finally:
        c.stop()
    w.stop()
    guard.set()
    on_poll(c.stats)  # the last checkpoints are reached by the final commit
    s = c.stats
    return w.result(messages=s.received, stored=s.stored, state=s.state,
                    checkpoints={str(k): v for k, v in sorted(marks.items())},
                    series=series, error=s.last_error if s.state == "failed" else None)


def _new_parts(folder: Path, seen: set[str]) -> list[Path]:
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if name.startswith("part-") and name.endswith(".parquet"):
                full = os.path.join(root, name)
                if full not in seen:
                    seen.add(full)
                    found.append(Path(full))
    return found


def run_latency(a: argparse.Namespace) -> dict[str, Any]:
    """Send-to-``Collector.df`` and send-to-Parquet latency at the server's rate."""
    import pandas as pd
    import pyarrow.parquet as pq

    import streamkit

    n = int(a.statuses)
    twepoch = _twepoch_ms()
    epoch = pd.Timestamp(0, tz="UTC")
    view: list[np.ndarray] = []
    network: list[np.ndarray] = []
    committed: list[np.ndarray] = []
    sent_ms: list[np.ndarray] = []
    seen_parts: set[str] = set()
    seen_max = 0
    observed = stored_rows = polls = 0
    poll_seconds = 0.0
    path = Path(a.tmp) / "latency"
    options = {} if a.flush_seconds is None else {"flush_seconds": a.flush_seconds}
    c = streamkit.collect(track=[TRACK], auth=_streamkit_auth(), path=path, base_url=a.url,
                          keep_raw=True, progress=False, **options)
    flush_seconds = c.flush_seconds
    ended_at: float | None = None
    next_scan = 0.0
    try:
        while True:
            t_poll = time.perf_counter()
            df = c.df
            now = time.time()
            polls += 1
            poll_seconds += time.perf_counter() - t_poll
            if len(df):
                ids = df["id"].to_numpy(dtype="int64")
                mask = ids > seen_max
                if mask.any():
                    new = ids[mask]
                    sent = ((new >> 22) + twepoch) / 1000.0
                    view.append(now - sent)
                    if "received_at" in df.columns:
                        rec = (df["received_at"][mask] - epoch).dt.total_seconds().to_numpy()
                        network.append(rec - sent)
                    seen_max = int(new.max())
                    observed += len(new)
            if now >= next_scan:
                next_scan = now + _PART_SCAN
                for part in _new_parts(path / "tweets", seen_parts):
                    ids = pq.read_table(part, columns=["id"]).column("id").to_numpy()
                    sent_ms.append((ids >> 22) + twepoch)
                    committed.append(now - sent_ms[-1] / 1000.0)
                    stored_rows += len(ids)
            s = c.stats
            if ended_at is None and (s.reconnects >= 1 or not c.running):
                ended_at = now
            if ended_at is not None and (stored_rows >= n or now - ended_at > flush_seconds + 10):
                break
            time.sleep(_VIEW_POLL)
    finally:
        c.stop()
    # every committed row's send time: the rate the server really kept up
    all_sent = np.concatenate(sent_ms) if sent_ms else np.array([], dtype=np.int64)
    span = (all_sent.max() - all_sent.min()) / 1000.0 if len(all_sent) > 1 else 0.0
    return {
        "statuses": n,
        "rate_target": a.rate,
        "rate_sent": (len(all_sent) - 1) / span if span > 0 else None,
        "flush_seconds": flush_seconds,
        "view_rows": c.view_rows,
        "view": percentiles(np.concatenate(view) if view else np.array([])),
        "network_to_wal": percentiles(np.concatenate(network) if network else np.array([])),
        "committed": percentiles(np.concatenate(committed) if committed else np.array([])),
        "observed_in_view": observed,
        "committed_rows": stored_rows,
        "polls": polls,
        "mean_df_seconds": poll_seconds / polls if polls else None,
        "messages": c.stats.received,
        "state": c.stats.state,
    }


def run_idle(a: argparse.Namespace) -> dict[str, Any]:
    """CPU used by a streaming collector over ``--seconds`` of keep-alives only."""
    import streamkit

    c = streamkit.collect(track=[TRACK], auth=_streamkit_auth(), path=Path(a.tmp) / "idle",
                          base_url=a.url, keep_raw=True, progress=False)
    try:
        deadline = time.monotonic() + 20
        while c.stats.state != "streaming" and time.monotonic() < deadline:
            time.sleep(0.05)
        streaming = c.stats.state == "streaming"
        time.sleep(1.0)  # let start-up work (recovery, manifest) finish
        bytes0 = c.stats.bytes
        w = _Window()
        w.start()
        time.sleep(a.seconds)
        w.stop()
        s = c.stats
    finally:
        c.stop()
    return w.result(cpu_percent=100.0 * w.cpu_seconds / w.seconds, streaming=streaming,
                    bytes=s.bytes - bytes0, received=s.received, reconnects=s.reconnects)
