"""Helpers shared by several test modules (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as pads

from streamkit import schema
from streamkit.testing import StreamServer


def wait_until(predicate, timeout: float, interval: float) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; a last try at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def visible_ids(path: Path) -> list[int]:
    """Ids as pandas, pyarrow and DuckDB see them; they must agree (and not fail)."""
    tweets = path / "tweets"
    if not any(tweets.rglob("*.parquet")):
        return []
    by_arrow = pads.dataset(tweets, format="parquet", partitioning="hive").to_table(columns=["id"])
    by_pandas = pd.read_parquet(tweets, columns=["id"])
    con = duckdb.connect()
    try:
        by_duck = con.sql(
            f"select id from read_parquet('{tweets.as_posix()}/**/*.parquet', hive_partitioning=true)"
        ).fetchall()
    finally:
        con.close()
    ids = sorted(by_arrow.column("id").to_pylist())
    assert sorted(by_pandas["id"].tolist()) == ids == sorted(x[0] for x in by_duck)
    assert by_arrow.schema.field("id").type == schema.TWEET_SCHEMA.field("id").type
    return ids


def settled(server: StreamServer, quiet: float) -> list[int]:
    """``server.sent`` once no send has completed for ``quiet`` seconds (the killed socket is gone)."""
    last, since = len(server.sent), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.02)
        if len(server.sent) != last:
            last, since = len(server.sent), time.monotonic()
    return server.sent


def feed_in_pieces(framer, body, cuts):
    """Everything ``framer.feed`` returns when ``body`` arrives cut at the offsets ``cuts``."""
    out = []
    prev = 0
    for c in sorted(set(cuts)) + [len(body)]:
        out += framer.feed(body[prev:c])
        prev = c
    return out


class Reports:
    """A child process's JSON lines on stdout, read without blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen, err: Path | None = None) -> None:
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.err = err
        self.buf = b""
        self.seen: list[dict] = []
        self.reached: dict | None = None  # the report that met wait_for's condition

    def _lines(self) -> None:
        *done, self.buf = self.buf.split(b"\n")
        self.seen.extend(json.loads(x) for x in done if x.strip())

    def wait_for(self, condition, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seen and condition(self.seen[-1]):
                self.reached = self.seen[-1]
                return self.reached
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                data = os.read(self.fd, 65536)
                if not data:
                    break
                self.buf += data
                self._lines()
        stderr = self.err.read_text(errors="replace")[-2000:] if self.err is not None and self.err.exists() else ""
        raise AssertionError(f"the child never reached the kill condition: {self.seen[-3:]}; stderr: {stderr}")

    def drain(self) -> None:
        """After the child died: everything it printed before."""
        while data := os.read(self.fd, 65536):
            self.buf += data
        self._lines()


def sigkill_child(script: str, *args: str, until, err: Path, timeout: float = 30.0) -> Reports:
    """Run ``python -c script *args`` (it prints one JSON report a line), SIGKILL it as soon
    as ``until(latest report)`` is true, and return all it reported (stderr goes to ``err``)."""
    with open(err, "wb") as err_file:
        proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=err_file)
    try:
        reports = Reports(proc, err)
        reports.wait_for(until, timeout=timeout)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        reports.drain()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return reports
