"""Storage failures under a running capture: a full disk, a read-only folder, a deleted folder.

Each test makes the failure for real, with file systems it mounts itself (a few MiB of
tmpfs, which needs root; elsewhere the tests skip and say why):

* a full disk for the whole dataset: the write-ahead log cannot take more, so the capture
  stops cleanly ("failed", with what to do), and the next start commits what it had logged;
* a full or read-only volume under ``tweets/`` only: commits fail while the log is fine,
  so the writer retries with back-off and catches up by itself once writing works again;
* a read-only folder at start: a clear error, nothing left behind;
* the dataset folder deleted under the capture: it stops, and writes what it still held
  to a new dataset at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest

import streamkit
from streamkit import cli
from streamkit._panel_html import state_html, state_text
from streamkit.testing import TEST_CREDENTIALS as C
from streamkit.testing import StreamServer

FAST = dict(timeout=2.0, retry_time=0.05, snooze_time=0.02, flush_seconds=0.3, progress=False)
ENV = {
    "STREAMKIT_CONSUMER_KEY": C["consumer_key"],
    "STREAMKIT_CONSUMER_SECRET": C["consumer_secret"],
    "STREAMKIT_ACCESS_TOKEN": C["access_token"],
    "STREAMKIT_ACCESS_TOKEN_SECRET": C["access_token_secret"],
}


def make_auth() -> streamkit.OAuthHandler:
    auth = streamkit.OAuthHandler(C["consumer_key"], C["consumer_secret"])
    auth.set_access_token(C["access_token"], C["access_token_secret"])
    return auth


def capture(url: str, path: Path, **options) -> streamkit.Collector:
    return streamkit.collect(track=["python"], auth=make_auth(), base_url=url, path=path,
                             **{**FAST, **options})


def server(**options) -> StreamServer:
    return StreamServer(notices=0, pool_size=300, **options)


def ids_in(path: Path) -> list[int]:
    """Tweet ids of the committed part files (hidden temporary files are not read)."""
    if not [p for p in (path / "tweets").rglob("*.parquet") if not p.name.startswith(".")]:
        return []
    dataset = pads.dataset(path / "tweets", format="parquet", partitioning="hive",
                           ignore_prefixes=[".", "_"])
    return dataset.to_table(columns=["id"]).column("id").to_pylist()


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(where: Path, *, size: str, read_only: bool = False):
    """A tmpfs of ``size`` mounted on ``where`` for the duration of the block."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to mount a small tmpfs (a real full or read-only disk)")
    where.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size}" + (",ro" if read_only else ""), "tmpfs", str(where))
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, options: str) -> None:
    done = _mount("-o", f"remount,{options}", str(where))
    assert done.returncode == 0, done.stderr


# -- the whole dataset on a full disk ----------------------------------------------------------


def test_a_full_disk_stops_the_capture_cleanly_and_the_next_start_commits_its_log(tmp_path):
    with tmpfs(tmp_path / "small", size="2m") as disk, server(rate=1000) as srv:
        path = disk / "climate"
        c = capture(srv.url, path)
        assert c.wait(60), "a capture that cannot log must stop by itself"
        s = c.stats
        sent = srv.sent
        assert s.state == "failed" and not c.running
        safe = s.pending  # logged, not committed
        assert safe > 0, s  # (some commits may have gone through before the disk filled)
        assert s.last_error == s.detail.removeprefix("failed: ")
        assert s.last_error.startswith(f"disk full at {path}: the capture stopped. Free some space, "
                                       "then run collect() again on the same path"), s.last_error
        assert f"the {safe:,} messages received but not yet committed are safe" in s.last_error
        # The panel says it too (its first 160 characters carry the cause and the place).
        assert state_text(s, base_url=srv.url).startswith(f"failed: disk full at {path}")
        assert "disk full at" in state_html(state_text(s, base_url=srv.url))
        # What readers see is clean, and only what was committed.
        committed = ids_in(path)
        assert len(committed) == len(set(committed)) == s.stored
        # One connection, so the capture logged exactly the first `received` statuses sent.
        logged = sent[: s.received]
        assert len(logged) == s.received
        assert set(committed) <= set(logged)

        # Started again on the still full disk, it stops again the same way, losing nothing.
        with capture(srv.url, path) as still_full:
            assert still_full.wait(30)
        assert still_full.stats.state == "failed"
        assert still_full.stats.last_error.startswith(f"disk full at {path}: the capture stopped")

        remount(disk, "size=64m")  # free space
        with capture(srv.url, path) as again:
            assert wait_until(lambda: again.stats.state == "streaming"), again.stats
        assert again.stats.state == "stopped", again.stats
        assert again.stats.recovered >= safe  # nothing logged was thrown away
        final = ids_in(path)
        assert len(final) == len(set(final))
        assert set(logged) <= set(final)
        assert len(final) >= s.received + still_full.stats.received  # both runs' logs committed
        assert not [p for p in path.rglob("*.tmp")]
    print(f"\nreliability: full disk: stopped with {safe:,} messages safe in the log; "
          f"all {len(logged):,} logged statuses stored after freeing space")


def test_the_cli_exits_non_zero_with_the_reason_on_a_full_disk(tmp_path, monkeypatch, capsys):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    with tmpfs(tmp_path / "small", size="1m") as disk, server(rate=4000) as srv:
        out = disk / "cli"
        code = cli.main(["collect", "--track", "python", "--base-url", srv.url, "--out", str(out),
                         "--flush-seconds", "0.3", "--duration", "60"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert re.search(rf"the capture failed: disk full at {re.escape(str(out))}: the capture stopped\. "
                     r"Free some space, then run collect\(\) again on the same path: the [\d,]+ "
                     r"messages received but not yet committed are safe", err), err


# -- commits failing while the log is fine: retry, then catch up ---------------------------------


def _retries(records: list[logging.LogRecord]) -> list[tuple[float, float]]:
    """(time, announced delay) of each failed commit the collector logged."""
    out = []
    for r in records:
        m = re.search(r"cannot commit to Parquet, retrying in ([\d.]+) s", r.getMessage())
        if m and r.name == "streamkit.collect":
            out.append((r.created, float(m.group(1))))
    return out


@pytest.mark.parametrize("trouble", ["disk full", "read-only file system"])
def test_failing_commits_are_retried_with_back_off_and_catch_up(tmp_path, caplog, trouble):
    caplog.set_level(logging.WARNING, logger="streamkit")
    path = tmp_path / "ds"
    (path / "tweets").mkdir(parents=True)
    # Only the Parquet side fails: a tiny (or read-only) volume mounted on tweets/.
    options = dict(size="16k") if trouble == "disk full" else dict(size="16m", read_only=True)
    with tmpfs(path / "tweets", **options) as tweets, server(rate=400) as srv:
        c = capture(srv.url, path)
        try:
            assert wait_until(lambda: len(_retries(caplog.records)) >= 3, timeout=30), c.stats
            s = c.stats
            assert s.state == "streaming" and c.running and s.stored == 0, s
            assert s.last_error.startswith(f"{trouble} at {path}: cannot commit to Parquet, retrying in ")
            assert "messages are safe in the write-ahead log" in s.last_error
            assert "cannot commit to Parquet" in s.detail  # the CLI's status line shows it
            panel = state_html(state_text(s, base_url=srv.url), s.last_error)
            assert f"(last error: {trouble} at {path}: cannot commit" in panel
            remount(tweets, "size=64m" if trouble == "disk full" else "rw")
            assert wait_until(lambda: c.stats.stored > 0 and c.stats.pending < 2_000, timeout=30), c.stats
            recovered = c.stats
            assert "cannot commit" not in recovered.detail
            assert recovered.last_error.startswith("resolved: commits work again"), recovered.last_error
        finally:
            c.stop()
            sent = srv.sent
        s = c.stats
        stored = ids_in(path)
    assert s.state == "stopped" and s.pending == 0, s
    # One connection: it logged the first `received` statuses sent (the last few sent may
    # still have been in the socket when it stopped).
    assert sorted(stored) == sorted(sent[: s.received]) and s.stored == s.received > 0
    # Back-off: each retry waited what it announced, and the waits grew (0.5 s, 1 s, 2 s, ...).
    retries = _retries(caplog.records)
    delays = [d for _, d in retries]
    assert delays[:3] == [0.5, 1.0, 2.0], delays
    for (t0, d0), (t1, _) in zip(retries, retries[1:], strict=False):
        assert t1 - t0 >= d0 * 0.9, (retries, "a retry came sooner than its announced back-off")
    print(f"\nreliability: {trouble} under tweets/: {len(retries)} commit retries, then all "
          f"{s.received:,} statuses received stored once")


def test_a_read_only_folder_fails_at_start_with_a_clear_error(tmp_path, monkeypatch, capsys):
    with tmpfs(tmp_path / "ro", size="1m", read_only=True) as ro, server(rate=100) as srv:
        with pytest.raises(streamkit.SinkError, match=r"cannot open the dataset at .*: Read-only file system\. Check the path and permissions"):
            capture(srv.url, ro / "ds")
        for k, v in ENV.items():
            monkeypatch.setenv(k, v)
        code = cli.main(["collect", "--track", "python", "--base-url", srv.url, "--out", str(ro / "ds")])
        assert srv.requests == []  # nothing connected
    err = capsys.readouterr().err
    assert code == 1 and "Read-only file system" in err, err


# -- the dataset folder deleted under a running capture ----------------------------------------


def _rmtree(path: Path) -> None:
    for _ in range(20):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:  # a file appeared meanwhile: try again
            time.sleep(0.01)
    raise AssertionError(f"could not delete {path}")


def test_a_deleted_folder_stops_the_capture_and_keeps_what_it_held(tmp_path):
    path = tmp_path / "deleted"
    with server(statuses=200, rate=2000) as first:
        with capture(first.url, path) as c:
            assert c.wait_for(stored=200, timeout=20)
    with server(rate=500, seed=1) as srv:
        # No commit is due for a minute: everything received is held (WAL + memory) when
        # the folder goes.
        c = capture(srv.url, path, flush_seconds=60.0, flush_rows=10**6)
        try:
            assert c.wait_for(received=300, timeout=20), c.stats
            _rmtree(path)
            assert c.wait(20), "the capture must stop by itself"
        finally:
            c.stop()
        sent = srv.sent
    s = c.stats
    assert s.state == "failed", s
    assert s.last_error.startswith(
        f"the dataset folder {path} was deleted while collecting: the capture stopped. "
        f"The {s.received:,} messages it still held were written to a new dataset at {path}"
    ), s.last_error
    assert "Run collect() again" in s.last_error
    # Nothing received was thrown away: the new dataset holds exactly what this capture logged.
    kept = ids_in(path)
    assert sorted(kept) == sorted(sent[: s.received]) and s.stored == s.received == len(kept)
    assert (path / "streamkit.json").exists()
    # ... and the path works for the next capture.
    with server(statuses=50, rate=2000, seed=2) as srv, capture(srv.url, path) as again:
        assert again.wait_for(stored=50, timeout=20)
    final = ids_in(path)
    assert len(final) == len(set(final)) == len(kept) + 50
    print(f"\nreliability: dataset folder deleted mid-capture: {len(kept):,} held messages saved, 0 lost")
