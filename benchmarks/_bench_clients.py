"""One benchmark client per process: ``python benchmarks/_bench_clients.py NAME [options]``.

The orchestrator (``run.py``) starts a fresh process for every measured run, so
peak RSS and CPU time belong to that client alone. The process prints one JSON
line on stdout: what it received (``messages``, and ``statuses`` where it can
tell), the measured window (``seconds``, wall clock) and the CPU time of the
whole process during that window (``cpu_seconds``, every thread), its peak RSS
(``peak_rss_mb``) and its RSS once its imports were done (``rss_start_mb``).

The window starts just before the client connects (the server has already
rendered its statuses) and ends when the client has everything the server sent:
the server ends the response after the last status, and each client notices
that the way its library lets it (end of body, ``on_closed``, a second
``on_connect``, a reconnect in ``Collector.stats``).

Clients (the names the orchestrator uses):

==================  ============================================================
capture             not measured: saves every message to ``--file`` (for ceiling-parse)
server-drain        raw socket, reads and discards bytes: how fast the server sends
ceiling-parse       ``orjson.loads`` of every captured message, from memory
ceiling-socket      raw socket, HTTP de-chunking and message splitting, nothing else
streamkit-stream    ``streamkit.Stream`` with a listener whose ``on_data`` does nothing
streamkit-collect   ``streamkit.collect(keep_raw=True)`` until every row is in Parquet
baseline-tweepy     Tweepy 4 ``BaseStream`` + ``json.loads`` + json_normalize/to_parquet
baseline-requests   ``requests`` + ``iter_lines`` + the same
==================  ============================================================

The probes ``memory``, ``latency`` and ``idle`` live in :mod:`_bench_probes`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _bench_common import (
    FILTER_PATH,
    STATUS_MARK,
    TRACK,
    RawStream,
    credentials,
    emit,
    peak_rss_mb,
    rss_mb,
    split_messages,
)

__all__ = ["BASELINE_FLUSH_ROWS", "CLIENTS", "main"]

#: The baselines write a Parquet file every this many messages, as users do.
BASELINE_FLUSH_ROWS = 10_000


class _Window:
    """Wall clock and whole-process CPU time between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._t = self._c = 0.0

    def start(self) -> None:
        self._t, self._c = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.seconds += time.perf_counter() - self._t
        self.cpu_seconds += time.process_time() - self._c

    def result(self, **extra: Any) -> dict[str, Any]:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds, **extra}


# -- raw socket -------------------------------------------------------------------------
def run_capture(a: argparse.Namespace) -> dict[str, Any]:
    """Save every message (without its ``\\r\\n``) to ``a.file``, one a line; count them."""
    messages = statuses = keepalives = payload_bytes = 0
    pending = b""
    with RawStream(a.url, credentials()) as rs, open(a.file, "wb") as out:
        rest = rs.connect()
        for payload in rs.payloads(rest):
            parts, pending = split_messages(pending + payload)
            msgs = [p[:-1] if p.endswith(b"\r") else p for p in parts]
            full = [m for m in msgs if m]
            keepalives += len(msgs) - len(full)
            if full:
                out.write(b"\n".join(full) + b"\n")
            messages += len(full)
            statuses += sum(1 for m in full if m.startswith(STATUS_MARK))
            payload_bytes += sum(map(len, full))
        wire = rs.bytes
    return {"messages": messages, "statuses": statuses, "keepalives": keepalives,
            "payload_bytes": payload_bytes, "wire_bytes": wire, "incomplete": len(pending)}


def run_server_drain(a: argparse.Namespace) -> dict[str, Any]:
    """Read the response as fast as a socket can and throw the bytes away."""
    w = _Window()
    with RawStream(a.url, credentials()) as rs:
        w.start()
        rest = rs.connect()
        body = rs.drain(rest)
        w.stop()
    return w.result(messages=a.expect, body_bytes=body)


def run_ceiling_socket(a: argparse.Namespace) -> dict[str, Any]:
    """De-chunk and split the stream into messages; do nothing with them."""
    w = _Window()
    messages = keepalives = 0
    pending = b""
    with RawStream(a.url, credentials()) as rs:
        w.start()
        rest = rs.connect()
        for payload in rs.payloads(rest):
            parts, pending = split_messages(pending + payload)
            empty = parts.count(b"\r")
            messages += len(parts) - empty
            keepalives += empty
        w.stop()
    return w.result(messages=messages, keepalives=keepalives)


# -- from memory -----------------------------------------------------------------------
def run_ceiling_parse(a: argparse.Namespace) -> dict[str, Any]:
    """``orjson.loads`` over every captured message; only the parsing is timed.

    The capture is read in blocks of ~16 MB so that memory stays bounded; each
    parsed dict is dropped at once (a ceiling, not a use).
    """
    import orjson

    loads = orjson.loads
    w = _Window()
    messages = statuses = 0
    rest = b""
    with open(a.file, "rb") as fh:
        while True:
            block = fh.read(16 << 20)
            lines = (rest + block).split(b"\n")
            rest = lines.pop() if block else b""  # the capture ends every message with \n
            lines = [m for m in lines if m]
            w.start()
            for m in lines:
                loads(m)
            w.stop()
            messages += len(lines)
            statuses += sum(1 for m in lines if m.startswith(STATUS_MARK))
            if not block:
                break
    return w.result(messages=messages, statuses=statuses)


# -- streamkit ---------------------------------------------------------------------------
def _streamkit_auth() -> Any:
    import streamkit

    c = credentials()
    auth = streamkit.OAuthHandler(c["consumer_key"], c["consumer_secret"])
    auth.set_access_token(c["access_token"], c["access_token_secret"])
    return auth


def run_streamkit_stream(a: argparse.Namespace) -> dict[str, Any]:
    """``Stream.filter`` with a listener that ignores every message."""
    import streamkit

    class Idle(streamkit.StreamListener):
        def __init__(self) -> None:
            super().__init__()
            self.connects = 0

        def on_data(self, raw_data: Any) -> None:
            pass

        def on_connect(self) -> Any:
            # A second connection means the server ended the first response, and
            # the dispatcher delivers in order: every message has been handled.
            self.connects += 1
            return False if self.connects > 1 else None

    stream = streamkit.Stream(_streamkit_auth(), Idle(), base_url=a.url)
    w = _Window()
    w.start()
    stream.filter(track=[TRACK])
    w.stop()
    return w.result(messages=stream.stats.messages, error=_text(stream.exception))


def wait_collected(c: Any, expect: int | None, *, poll: float = 0.01, timeout: float = 3600.0,
                   on_poll: Callable[[Any], None] | None = None) -> Any:
    """Poll ``c.stats`` until *expect* messages were received or the stream ended.

    The server ends the response after the last status and the collector then
    reconnects, so ``reconnects >= 1`` also means everything has arrived.
    """
    deadline = time.monotonic() + timeout
    while True:
        s = c.stats
        if on_poll is not None:
            on_poll(s)
        if (expect is not None and s.received >= expect) or s.reconnects >= 1 or not c.running:
            return s
        if time.monotonic() > deadline:
            raise TimeoutError(f"collect() did not finish in {timeout:.0f} s: {s!r}")
        time.sleep(poll)


def run_streamkit_collect(a: argparse.Namespace) -> dict[str, Any]:
    """``collect()`` with defaults and ``keep_raw=True``, until every row is committed."""
    import streamkit

    auth = _streamkit_auth()
    path = Path(a.tmp) / "collect"
    w = _Window()
    w.start()
    c = streamkit.collect(track=[TRACK], auth=auth, path=path, base_url=a.url,
                          keep_raw=True, progress=False)
    try:
        wait_collected(c, a.expect)
    finally:
        c.stop()  # commits what is pending: the window ends with every row in Parquet
    w.stop()
    s = c.stats
    return w.result(messages=s.received, statuses=s.stored + s.duplicates, stored=s.stored,
                    duplicates=s.duplicates, events=s.events, rejected=dict(s.rejected),
                    state=s.state, error=s.last_error if s.state == "failed" else None,
                    parquet_mb=_size_mb(path / "tweets"))


# -- baselines ---------------------------------------------------------------------------
class _ParquetBatches:
    """The user's pattern: dicts in a list, ``json_normalize(...).to_parquet(...)`` every 10k."""

    def __init__(self, folder: Path) -> None:
        import pandas as pd

        self._normalize = pd.json_normalize
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.rows: list[dict[str, Any]] = []
        self.parts = 0
        self.messages = 0

    def add(self, line: bytes) -> None:
        self.rows.append(json.loads(line))
        self.messages += 1
        if len(self.rows) >= BASELINE_FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            frame = self._normalize(self.rows)
            frame.to_parquet(self.folder / f"part-{self.parts:05d}.parquet")
            self.parts += 1
            self.rows = []


def _oauth1() -> Any:
    from requests_oauthlib import OAuth1

    c = credentials()
    return OAuth1(c["consumer_key"], c["consumer_secret"], c["access_token"],
                  c["access_token_secret"])


def run_baseline_tweepy(a: argparse.Namespace) -> dict[str, Any]:
    """Tweepy 4.x ``BaseStream`` on the v1.1 filter endpoint, as Tweepy's own v1.1 ``Stream`` did."""
    import tweepy

    sink = _ParquetBatches(Path(a.tmp) / "tweepy")
    errors: list[str] = []

    class Baseline(tweepy.streaming.BaseStream):
        def on_data(self, raw_data: bytes) -> None:
            sink.add(raw_data)

        def on_closed(self, response: Any) -> None:
            self.disconnect()  # the server ended the stream: everything has arrived

        def on_exception(self, exception: Exception) -> None:
            errors.append(_text(exception) or "")

    stream = Baseline()
    w = _Window()
    w.start()
    stream._connect("POST", a.url + FILTER_PATH, auth=_oauth1(), body={"track": TRACK},
                    timeout=90)
    sink.flush()
    w.stop()
    return w.result(messages=sink.messages, parts=sink.parts, error=errors[0] if errors else None,
                    parquet_mb=_size_mb(sink.folder))


def run_baseline_requests(a: argparse.Namespace) -> dict[str, Any]:
    """Plain ``requests`` + ``iter_lines`` + the same batching."""
    import requests

    sink = _ParquetBatches(Path(a.tmp) / "requests")
    w = _Window()
    w.start()
    with requests.post(a.url + FILTER_PATH, data={"track": TRACK}, auth=_oauth1(), stream=True,
                       timeout=90) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line:
                sink.add(line)
    sink.flush()
    w.stop()
    return w.result(messages=sink.messages, parts=sink.parts, parquet_mb=_size_mb(sink.folder))


# -- plumbing ----------------------------------------------------------------------------
def _text(exc: BaseException | None) -> str | None:
    return None if exc is None else f"{type(exc).__name__}: {exc}"


def _size_mb(folder: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / 2**20


def _probes() -> dict[str, Callable[[argparse.Namespace], dict[str, Any]]]:
    import _bench_probes

    return {"memory": _bench_probes.run_memory, "latency": _bench_probes.run_latency,
            "idle": _bench_probes.run_idle}


CLIENTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "capture": run_capture,
    "server-drain": run_server_drain,
    "ceiling-parse": run_ceiling_parse,
    "ceiling-socket": run_ceiling_socket,
    "streamkit-stream": run_streamkit_stream,
    "streamkit-collect": run_streamkit_collect,
    "baseline-tweepy": run_baseline_tweepy,
    "baseline-requests": run_baseline_requests,
}

# What each client imports before its window opens (so import time is never measured).
_PRELOAD = {
    "ceiling-parse": ("orjson",),
    "streamkit-stream": ("streamkit",),
    "streamkit-collect": ("streamkit", "pandas", "pyarrow.parquet"),
    "baseline-tweepy": ("tweepy", "pandas", "pyarrow.parquet"),
    "baseline-requests": ("requests", "pandas", "pyarrow.parquet"),
    "memory": ("streamkit",),
    "latency": ("streamkit", "pyarrow.parquet"),
    "idle": ("streamkit",),
}


def main(argv: list[str] | None = None) -> int:
    """Run one client and print its JSON result line."""
    p = argparse.ArgumentParser(description="Run one benchmark client (see run.py).")
    p.add_argument("name")
    p.add_argument("--url", help="the server's http://host:port")
    p.add_argument("--expect", type=int, default=None, help="messages the server will send")
    p.add_argument("--statuses", type=int, default=None, help="statuses the server will send")
    p.add_argument("--file", help="capture file (capture, ceiling-parse)")
    p.add_argument("--tmp", help="scratch folder for datasets")
    p.add_argument("--seconds", type=float, default=30.0, help="idle / latency duration")
    p.add_argument("--checkpoints", default="", help="memory: statuses at which to read peak RSS")
    p.add_argument("--memory-guard-mb", type=float, default=4096.0,
                   help="memory: end the probe if RSS passes this")
    p.add_argument("--rate", type=float, default=None, help="latency: the server's rate")
    p.add_argument("--flush-seconds", type=float, default=None,
                   help="latency: collect(flush_seconds=...); default: collect's own")
    a = p.parse_args(argv)
    table = {**CLIENTS, **_probes()}
    if a.name not in table:
        p.error(f"unknown client {a.name!r}; one of {', '.join(table)}")
    import importlib

    for module in _PRELOAD.get(a.name, ()):
        importlib.import_module(module)
    rss_start = rss_mb()
    try:
        result = table[a.name](a)
    except Exception as exc:  # report the failure as data: the benchmark goes on
        traceback.print_exc(file=sys.stderr)
        result = {"error": _text(exc)}
    result.update(name=a.name, peak_rss_mb=peak_rss_mb(), rss_start_mb=rss_start,
                  pid=os.getpid())
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
