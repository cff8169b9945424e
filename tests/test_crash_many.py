"""Twenty SIGKILLs into one dataset: during WAL writes and fsyncs, Parquet writes, renames,
the checkpoint, recovery itself, and at random moments.

Each round starts a child process that runs ``collect()`` on the same path (recovering what
the previous child left) against a :class:`~streamkit.testing.StreamServer` of its own.
Most rounds arm a hook in the child that kills the process with SIGKILL at an exact point:

=================  ==========================================================================
``wal_append``     half-way through writing a batch to the write-ahead log (a torn record)
``wal_fsync``      just before an fsync of the write-ahead log
``part_write``     after a Parquet part was written to its temporary name, cut to half its size
``rename_before``  just before a complete part file is renamed to its final name
``rename_after``   just after that rename, before the checkpoint
``checkpoint``     just before the checkpoint is replaced
``recover``        during recovery, right after it renamed its first part file
``external``       no hook: the parent kills the child at a random moment mid-capture
=================  ==========================================================================

After each kill: pandas, pyarrow and DuckDB read the dataset and agree, no id is stored
twice, no half-written file is visible, everything an earlier child had logged is committed,
and the write-ahead log holds no more than what was logged since the last recovery (it never
grows without bound). At the end a clean start recovers the last child's log, and every
status any child had logged is stored: a SIGKILL loses nothing logged (the page cache
outlives the process); only statuses still in flight (sent by the server but not yet
logged) may be missing. A power loss could lose one fsync group more (``WAL_GROUP``).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import settled, visible_ids

import streamkit
from streamkit.testing import TEST_CREDENTIALS as C
from streamkit.testing import StreamServer

WAL_GROUP = 8  # the child's fsync group (messages)
RATE = 1000  # statuses per second from each round's server
MAX_STATUS_BYTES = 8192  # a generous bound on one WAL record (status + header)

CHILD = r"""
import json, os, signal, sys
import pyarrow.parquet as pq
import streamkit
from streamkit import sink
from streamkit.testing import TEST_CREDENTIALS as C

url, path, group, point, nth = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
c = None
calls = 0
recovering = False

def report(**extra):
    s = c._stats if c is not None else None
    line = {"received": s.received if s else 0, "stored": s.stored if s else 0,
            "state": s.state if s else "starting", **extra}
    os.write(1, (json.dumps(line) + "\n").encode())

def due(here):
    global calls
    if here != point:
        return False
    calls += 1
    return calls == nth

def die():
    report(killed=point)
    os.kill(os.getpid(), signal.SIGKILL)

def is_wal(fd):
    try:
        return "/_wal/wal-" in os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False

_write, _fsync, _replace, _write_table = os.write, os.fsync, os.replace, pq.write_table
_recover = sink.DatasetWriter.recover

def write(fd, data):
    if fd > 2 and len(data) > 64 and is_wal(fd) and due("wal_append"):
        _write(fd, bytes(data)[: len(data) // 2])
        die()
    return _write(fd, data)

def fsync(fd):
    if is_wal(fd) and due("wal_fsync"):
        die()
    return _fsync(fd)

def replace(src, dst):
    dst = str(dst)
    if dst.endswith(".parquet"):
        if due("rename_before"):
            die()
        _replace(src, dst)
        if due("rename_after") or (recovering and due("recover")):
            die()
        return
    if dst.endswith("checkpoint.json") and due("checkpoint"):
        die()
    return _replace(src, dst)

def write_table(table, where, **kw):
    _write_table(table, where, **kw)
    if due("part_write"):
        os.truncate(where, os.path.getsize(where) // 2)
        die()

def recover(self, wal):
    global recovering
    recovering = True
    try:
        return _recover(self, wal)
    finally:
        recovering = False

os.write, os.fsync, os.replace, pq.write_table = write, fsync, replace, write_table
sink.DatasetWriter.recover = recover

auth = streamkit.OAuthHandler(C["consumer_key"], C["consumer_secret"])
auth.set_access_token(C["access_token"], C["access_token_secret"])
c = streamkit.collect(track=["python"], auth=auth, base_url=url, path=path, progress=False,
                      flush_seconds=0.3, wal_group_messages=group, wal_group_seconds=0.02,
                      timeout=10.0)
while True:
    report()
    c.wait(0.01)
"""

# (kill point, nth occurrence) for hooks; ("external", minimum uncommitted backlog) otherwise.
# `recover` follows rounds that leave a backlog, so that recovery has work to be killed in.
KILLS = [
    ("external", 50), ("wal_fsync", 25), ("part_write", 1), ("external", 300), ("recover", 1),
    ("rename_before", 2), ("wal_append", 40), ("external", 100), ("recover", 1),
    ("rename_after", 1), ("checkpoint", 2), ("wal_fsync", 60), ("external", 20),
    ("part_write", 2), ("recover", 1), ("wal_append", 90), ("external", 200),
    ("rename_after", 3), ("rename_before", 1), ("external", 0),
]


class Child:
    def __init__(self, url: str, path: Path, point: str, nth: int, err: Path) -> None:
        with open(err, "wb") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, url, str(path), str(WAL_GROUP), point, str(nth)],
                stdout=subprocess.PIPE, stderr=f,
            )
        self.err = err
        self.buf = b""
        self.seen: list[dict] = []

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return True
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            return False
        *lines, self.buf = (self.buf + data).split(b"\n")
        self.seen.extend(json.loads(x) for x in lines if x.strip())
        return True

    def run_until(self, condition, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seen and condition(self.seen[-1]):
                return
            if not self._read(0.05):
                return  # the child ended (a hook killed it)
        raise AssertionError(f"no kill within {timeout} s: {self.seen[-3:]}, "
                             f"{self.err.read_text()[-2000:]}")

    def kill_and_reap(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(10)
        while self._read(0):
            if self.proc.stdout.closed:
                break
        self.proc.stdout.close()
        return code

    @property
    def logged(self) -> int:
        return max((r["received"] for r in self.seen), default=0)

    @property
    def recovered(self) -> bool:
        """Whether this child finished recovery (it went on to connect)."""
        return any(r["state"] in ("connecting", "streaming") for r in self.seen)


def wal_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path / "_wal").glob("wal-*.log"))


@pytest.mark.allow_leaks  # SIGKILLed children: their pipes are closed here, not by the fixture
def test_twenty_sigkills_lose_nothing_that_was_logged(tmp_path):
    rng = random.Random(7)
    path = tmp_path / "crashy"
    durable: list[int] = []  # statuses some killed child had logged
    rounds = []
    since_recovery = 0  # messages logged since the last completed recovery
    started = time.monotonic()
    for i, (point, arg) in enumerate(KILLS):
        with StreamServer(rate=RATE, notices=0, seed=i, pool_size=300) as server:
            child = Child(server.url, path, point, arg if point != "external" else 0,
                          tmp_path / f"child-{i}.err")
            try:
                if point == "external":
                    backlog = arg
                    child.run_until(lambda r, b=backlog: r["stored"] > 0 and r["received"] - r["stored"] >= b,
                                    timeout=30)
                    time.sleep(rng.uniform(0, 0.2))  # a random moment, not the report's
                else:
                    child.run_until(lambda r: "killed" in r, timeout=30)
                    # The main thread may report once more between the hook's last line and
                    # the kill landing: the hook's line need not be the very last one.
                    assert [r["killed"] for r in child.seen if "killed" in r] == [point], child.seen[-3:]
            finally:
                code = child.kill_and_reap()
            assert code == -signal.SIGKILL, (point, code, child.err.read_text()[-2000:])
            sent = settled(server, quiet=0.15)
        logged = child.logged
        # One connection per child: it logged exactly the first `logged` statuses sent.
        assert logged <= len(sent)
        rounds.append((point, sent, logged))

        ids = visible_ids(path)
        assert len(ids) == len(set(ids)), f"kill {i} ({point}): an id is stored twice"
        for part in (path / "tweets").rglob("*.parquet"):
            pq.read_metadata(part)  # every visible file is whole (hidden .tmp files may not be)
        assert set(ids) <= {x for _, s, _ in rounds for x in s}
        if child.recovered:
            missing = set(durable) - set(ids)
            assert not missing, f"kill {i} ({point}): {len(missing)} statuses logged before are lost"
            since_recovery = logged
        else:
            since_recovery += logged
        assert wal_bytes(path) <= since_recovery * MAX_STATUS_BYTES + 65536, (
            f"kill {i} ({point}): the write-ahead log holds {wal_bytes(path):,} bytes for "
            f"{since_recovery} messages logged since the last recovery"
        )
        durable.extend(sent[:logged])

    # A clean start recovers the last child's log.
    auth = streamkit.OAuthHandler(C["consumer_key"], C["consumer_secret"])
    auth.set_access_token(C["access_token"], C["access_token_secret"])
    with StreamServer(rate=RATE, notices=0, seed=99, pool_size=300) as server:
        with streamkit.collect(track=["python"], auth=auth, base_url=server.url, path=path,
                               flush_seconds=0.2, progress=False) as last:
            assert last.wait_for(received=50, timeout=20), last.stats
        tail = server.sent[: last.stats.received]
    assert last.stats.state == "stopped"
    final = set(visible_ids(path))
    df = streamkit.read(path, include_deleted=True)
    assert len(df) == len(final) and df["id"].is_unique
    assert not [p for p in path.rglob("*") if p.name.endswith(".tmp")]
    assert not (path / "_wal" / "pending.json").exists()
    assert wal_bytes(path) <= 64, "a clean stop leaves an empty write-ahead log"

    lost_logged = [len(set(s[:n]) - final) for _, s, n in rounds]
    in_flight = [len(s) - n for _, s, n in rounds]
    lost = [len(set(s) - final) for _, s, _ in rounds]
    assert lost_logged == [0] * len(KILLS), lost_logged  # a SIGKILL loses nothing logged...
    assert all(a <= b for a, b in zip(lost, in_flight, strict=True)), (lost, in_flight)
    assert max(lost_logged) <= WAL_GROUP  # ...and a power loss no more than one fsync group
    assert set(tail) <= final
    points = sorted({p for p, _, _ in rounds})
    print(f"\nreliability: crash: {len(KILLS)} SIGKILLs survived ({', '.join(points)}) in "
          f"{time.monotonic() - started:.0f} s; {len(durable):,} logged statuses, 0 lost, "
          f"0 duplicated; unlogged in flight at the kills: {sum(in_flight)} (of which lost "
          f"{sum(lost)}); fsync group {WAL_GROUP}")
