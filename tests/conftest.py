"""Shared fixtures: every test fails if it leaks a thread or a file descriptor."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest


def _fds() -> set[int]:
    try:
        return {int(x) for x in os.listdir("/proc/self/fd")}
    except OSError:  # not Linux: skip the fd check
        return set()


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
        leaked_fds = _fds() - fds_before
        # Descriptors: readlink tells what they are; ignore ones closed meanwhile.
        described = {}
        for fd in leaked_fds:
            try:
                described[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
        described = {fd: what for fd, what in described.items() if "pytest" not in what}
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
