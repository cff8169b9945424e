"""Resources: nothing left behind after ``stop()``, ``disconnect()`` or a failed start, and
memory bounded when the stream is faster than the writer.

The autouse fixture in ``conftest.py`` already fails any test that leaves a ``streamkit``
thread or a file descriptor behind (after a grace period); the tests here check the
stricter promise that nothing is left *when the call returns*, and the first test checks
that the fixture itself catches a leak.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import streamkit
from streamkit import schema
from streamkit.testing import TEST_CREDENTIALS as C
from streamkit.testing import Fault, StreamServer

FAST = dict(timeout=1.0, retry_time=0.05, snooze_time=0.02, flush_seconds=0.2, progress=False)
HERE = Path(__file__).parent


SERVER = r"""
import json, sys
from streamkit.testing import Fault, StreamServer
options = json.loads(sys.argv[1])
faults = [Fault(**f) for f in options.pop("faults", [])]
with StreamServer(faults=faults, **options) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""


class ChildServer:
    """A StreamServer in a child process: whatever this process holds afterwards is the client's."""

    def __init__(self, faults=(), **options) -> None:
        options = {"pool_size": 300, **options, "faults": [f.__dict__ for f in faults]}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(options)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def __enter__(self) -> ChildServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


def make_auth(secret: str = C["consumer_secret"]) -> streamkit.OAuthHandler:
    auth = streamkit.OAuthHandler(C["consumer_key"], secret)
    auth.set_access_token(C["access_token"], C["access_token_secret"])
    return auth


def threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("streamkit")}


def fds() -> dict[int, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    return out


class Baseline:
    """What this process holds now; ``check()`` fails on any new streamkit thread or descriptor."""

    def __init__(self) -> None:
        self.threads, self.fds = threads(), fds()

    def check(self, what: str) -> None:
        new_threads = threads() - self.threads
        new_fds = {fd: p for fd, p in fds().items() if self.fds.get(fd) != p}
        assert not new_threads and not new_fds, f"{what} left {sorted(new_threads)} {new_fds}"


pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")


def test_the_leak_fixture_fails_a_test_that_leaks(tmp_path):
    (tmp_path / "conftest.py").write_text((HERE / "conftest.py").read_text())
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent("""
        import socket
        KEEP = []

        def test_leaks_a_socket():
            KEEP.append(socket.socket())

        def test_cleans_up():
            s = socket.socket()
            s.close()
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    # (One descriptor, at the number the fixture's own directory listing had just used.)
    assert proc.returncode == 1, proc.stdout
    assert "descriptors left open" in proc.stdout and "socket:[" in proc.stdout, proc.stdout
    assert "1 error" in proc.stdout and "2 passed" in proc.stdout, proc.stdout[-2000:]


def test_stop_releases_every_thread_socket_and_file_on_return(tmp_path):
    faults = [Fault.cut(after=30), Fault.http(503), Fault.stall(after=10, seconds=2.0)]
    with ChildServer(faults, rate=2000) as server:
        base = Baseline()
        c = streamkit.collect(track=["python"], auth=make_auth(), base_url=server.url,
                              path=tmp_path / "a", **FAST)
        assert c.wait_for(stored=200, timeout=30), c.stats
        assert threads() and len(fds()) > len(base.fds), "the capture holds threads, a socket, the log"
        c.stop()
        assert not c.running and c.stats.state == "stopped" and c.stats.reconnects >= 2
        base.check("stop()")


@pytest.mark.parametrize("situation", ["streaming", "silent", "backing off", "connecting"])
def test_disconnect_returns_promptly_and_releases_everything(situation):
    faults = {"silent": [Fault.stall(after=5, seconds=60)], "backing off": [Fault.http(420)]}
    with contextlib.ExitStack() as stack:
        if situation == "connecting":  # a listener that never answers: the request waits
            mute = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
            url = f"http://127.0.0.1:{mute.getsockname()[1]}"
        else:
            url = stack.enter_context(ChildServer(faults.get(situation, ()), rate=500)).url
        base = Baseline()
        stream = streamkit.Stream(make_auth(), streamkit.StreamListener(), base_url=url, timeout=90.0)
        stream.filter(track=["python"], is_async=True)
        deadline = time.monotonic() + 10
        while not (stream.stats.state == {"silent": "streaming"}.get(situation, situation)
                   and (stream.stats.connects or situation in ("connecting", "backing off"))):
            assert time.monotonic() < deadline, stream.stats
            time.sleep(0.01)
        time.sleep(0.3)  # well inside the read, the back-off or the request
        started = time.monotonic()
        stream.disconnect()
        took = time.monotonic() - started
        assert took < 2.0, f"disconnect() took {took:.1f} s while {situation}"
        assert not stream.running
        base.check(f"disconnect() while {situation}")


def test_failed_starts_leave_nothing_behind(tmp_path):
    with ChildServer(rate=500) as server:
        base = Baseline()

        def attempt(path, error, match, **options):
            with pytest.raises(error, match=match):
                streamkit.collect(track=["python"], auth=make_auth(), base_url=server.url, path=path,
                                  **{**FAST, **options})
            base.check(f"a failed start ({match})")

        (tmp_path / "a-file").write_text("not a folder")
        attempt(tmp_path / "a-file", streamkit.SinkError, "cannot open the dataset")
        attempt(tmp_path / "x", streamkit.ConfigError, "unknown option", no_such_option=1)
        attempt(tmp_path / "x", streamkit.ConfigError, "flush_rows", flush_rows=0)
        attempt(tmp_path / "x", streamkit.ConfigError, "timeout", timeout=-1)
        other = tmp_path / "other-version"
        other.mkdir()
        (other / "streamkit.json").write_text(json.dumps({"format": "streamkit", "schema_version": -1}))
        attempt(other, streamkit.SinkError, "schema version")

        # The folder in use by a running capture: the second start fails, the first goes on.
        lock = str(tmp_path / "busy" / "_wal" / "LOCK")
        with streamkit.collect(track=["python"], auth=make_auth(), base_url=server.url,
                               path=tmp_path / "busy", **FAST) as first:
            with pytest.raises(streamkit.SinkError, match="in use by another writer"):
                streamkit.collect(track=["python"], auth=make_auth(), base_url=server.url,
                                  path=tmp_path / "busy", **FAST)
            assert list(fds().values()).count(lock) == 1  # the second one closed its lock file
            assert first.wait_for(stored=50, timeout=20) and first.running
        base.check("the first capture's stop()")

        # Refused credentials: the capture fails by itself and releases everything.
        bad = streamkit.collect(track=["python"], auth=make_auth("wrong"), base_url=server.url,
                                path=tmp_path / "bad", **FAST)
        assert bad.wait(20) and bad.stats.state == "failed"
        base.check("a capture that failed by itself")
        url = server.url
    # Nothing listening at all: collect() starts, never connects, and stop() cleans up.
    base = Baseline()
    c = streamkit.collect(track=["python"], auth=make_auth(), base_url=url, path=tmp_path / "nobody", **FAST)
    assert c.wait_for(received=1, timeout=0.5) is False
    c.stop()
    base.check("stop() of a capture that never connected")


def test_memory_stays_bounded_when_the_writer_is_slower_than_the_stream(tmp_path):
    """A server at full speed outruns the writer (it decodes and writes Parquet): beyond
    ``max_pending_bytes`` the received messages stay only in the write-ahead log, and the
    reader waits once ``max_buffer_bytes`` are queued, instead of growing the heap."""
    budget, handoff = 1 << 20, 1 << 20
    n = 60_000  # ~140 MB of JSON: far more than both bounds
    seen = {"pending": 0, "handoff": 0}
    with StreamServer(statuses=n, notices=0, pool_size=500) as server:
        c = streamkit.collect(track=["python"], auth=make_auth(), base_url=server.url,
                              path=tmp_path / "fast", max_pending_bytes=budget,
                              max_buffer_bytes=handoff, flush_rows=5_000, timeout=5.0,
                              progress=False, flush_seconds=1.0)
        try:
            deadline = time.monotonic() + 120
            while c.stats.stored < n:
                assert time.monotonic() < deadline, c.stats
                seen["pending"] = max(seen["pending"], c._pending._bytes)
                h = c._stream._handoff
                seen["handoff"] = max(seen["handoff"], h._bytes if h is not None else 0)
                time.sleep(0.005)
        finally:
            c.stop()
        sent = server.sent
    s = c.stats
    # The writer really was behind, and the backlog went to the log, not to memory.
    assert s.spilled > n // 4, s.spilled
    assert seen["pending"] <= budget, seen
    assert seen["handoff"] <= handoff + 1024 * 1024, seen  # the bound plus one network read
    # Nothing was lost or doubled on the way through the log.
    stored = streamkit.read(tmp_path / "fast", columns=["id"])["id"]
    assert sorted(stored) == sorted(sent) and s.stored == n and s.pending == 0
    assert list(streamkit.read(tmp_path / "fast").columns) == schema.TWEET_SCHEMA.names
    print(f"\nreliability: backpressure: {n:,} statuses at full speed, {s.spilled:,} spilled to the "
          f"log; peak in memory {seen['pending'] / 2**20:.1f} MiB queued + "
          f"{seen['handoff'] / 2**20:.1f} MiB hand-off (bounds 1 + 1 MiB)")
