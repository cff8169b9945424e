"""Shared fixtures: every test fails if it leaks a thread or a file descriptor."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest


def _fds() -> dict[int, str]:
    """Open descriptors and what they point to.

    Compared by target, not just by number: ``listdir`` itself holds a descriptor while
    it lists, and a leaked socket or file opened later usually gets that very number.
    """
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # not Linux: skip the fd check
        return {}
    out = {}
    for name in names:
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return out


def _streamkit_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("streamkit")}


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Fail a test that leaves a streamkit thread running or a descriptor open."""
    threads_before = _streamkit_threads()
    fds_before = _fds()
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    deadline = time.monotonic() + 5.0
    while True:
        gc.collect()
        leaked_threads = _streamkit_threads() - threads_before
        described = {
            fd: what for fd, what in _fds().items()
            if fds_before.get(fd) != what and "pytest" not in what
        }
        if not leaked_threads and not described:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    problems = []
    if leaked_threads:
        problems.append(f"threads still running: {sorted(t.name for t in leaked_threads)}")
    if described:
        problems.append(f"descriptors left open: {described}")
    pytest.fail("; ".join(problems))
