"""Fault soak: ``collect()`` against a test server that mixes every fault in at random.

A :class:`~streamkit.testing.StreamServer` runs in a child process (so that it does not
share the collector's GIL) and serves at least 200,000 statuses while a seeded plan of
hundreds of faults breaks its connections: cuts mid-message, stalls, HTTP 420/429/500/503
bursts, a 401 in the middle of a session, disconnect notices, clean ends, malformed JSON,
wrong length prefixes, oversized messages and invalid UTF-8. Afterwards:

* every status the server sent completely is stored exactly once (and the statuses carried
  by wrong length prefixes, which the stream recovers whole, are stored too);
* the stats add up: ``received == stored + duplicates + events + sum(rejected)``, with each
  rejection counted under its reason, and every reconnect and HTTP error counted;
* the collector never died (its state never became ``failed``);
* each reconnect waited what :class:`streamkit.backoff.Backoff` says for the faults that
  came before it: never sooner, and not much later.

CI runs the bounded mode (~1 minute). ``STREAMKIT_SOAK=long`` runs 2,000,000 statuses and
3,000 faults; ``STREAMKIT_SOAK_STATUSES``, ``STREAMKIT_SOAK_FAULTS`` and
``STREAMKIT_SOAK_SEED`` set any size and seed.

The test server takes one fault per connection, and a garbage fault lets its connection go
on. So that the plan's later faults are reached, the child lets a connection that carried
garbage take the next fault of the queue too (a few lines wrapping the server's session,
below); every other fault behaves as documented in :mod:`streamkit.testing`.
"""

from __future__ import annotations

import collections
import json
import os
import random
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest

import streamkit
from streamkit.backoff import Backoff
from streamkit.testing import TEST_CREDENTIALS as C

LONG = os.environ.get("STREAMKIT_SOAK", "").lower() == "long"
STATUSES = int(os.environ.get("STREAMKIT_SOAK_STATUSES", 2_000_000 if LONG else 200_000))
FAULTS = int(os.environ.get("STREAMKIT_SOAK_FAULTS", 3_000 if LONG else 300))
SEED = int(os.environ.get("STREAMKIT_SOAK_SEED", 20_261_128))

# Twitter's policy with small numbers, so that hundreds of faults cost seconds, not hours.
POLICY = dict(snooze_time=0.02, snooze_time_cap=0.1, retry_time=0.05, retry_time_cap=0.4, retry_420=0.1)
STALL_TIMEOUT = 0.5
OVERSIZED = 600_000
MAX_MESSAGE = 512 * 1024

SERVER = r"""
import json, select, sys, time
from collections import Counter
from dataclasses import replace
from streamkit.testing import Fault, StreamServer
from streamkit.testing import _session

plan_file, statuses, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
faults = [Fault(**f) for f in json.load(open(plan_file))]
conns, injected = [], Counter()

_inject, _run, _note = _session.Session._inject, _session.Session.run, StreamServer._note_fault

def note(self, fault, conn_index):
    injected[fault.garbage_kind or (f"http {fault.code}" if fault.kind == "http" else fault.kind)] += 1
    _note(self, fault, conn_index)

def inject(self, fault, sel):
    self.soak_faults = getattr(self, "soak_faults", []) + [fault.kind]
    ended = _inject(self, fault, sel)
    if not ended and fault.kind == "garbage":  # let this connection take the next fault too
        with self.srv._lock:
            nxt = self.srv._faults.popleft() if self.srv._faults else None
        if nxt is not None:
            assert nxt.kind != "http", "the plan never follows garbage with an HTTP fault"
            self.fault = replace(nxt, after=self.sent_here + nxt.after)
    return ended

def run(self):
    try:
        _run(self)
    finally:
        conns.append((self.conn_index, self.sent_here, time.monotonic(), getattr(self, "soak_faults", [])))

_session.Session._inject, _session.Session.run, StreamServer._note_fault = inject, run, note

server = StreamServer(statuses=statuses, faults=faults, seed=seed, notices=0.02, pool_size=500,
                      keepalive_interval=0.1)
with server:
    print(json.dumps({"url": server.url}), flush=True)
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        if ready:
            break
        print(json.dumps({"sent": server.sent_count, "pending_faults": len(server.pending_faults),
                          "injected": dict(injected)}), flush=True)
    with open(out + "/sent.bin", "wb") as f:
        f.write(bytes(server._sent))
    json.dump({
        "requests": [(r.time, r.status) for r in server.requests],
        "conns": sorted(conns),
        "injected": dict(injected),
        "notices": len(server.sent_notices),
        "sent": server.sent_count,
    }, open(out + "/observed.json", "w"))
print(json.dumps({"dumped": True}), flush=True)
"""


def make_plan(rng: random.Random, statuses: int, count: int) -> list[dict]:
    """``count`` faults, grouped by the connection they break, reachable within ``statuses``."""
    plan: list[dict] = []
    after_budget = statuses * 0.6 / (count * 0.75)  # mean statuses per connection with data
    worked = False  # a 401 is fatal until the credentials have worked once
    run_401 = 0

    def after() -> int:
        return rng.randint(1, max(2, int(2 * after_budget)))

    while len(plan) < count:
        kind = rng.choices(["http", "cut", "disconnect", "end", "stall", "garbage"],
                           [20, 30, 12, 8, 8, 22])[0]
        if kind == "http":
            codes = [420, 429, 503, 500] + ([401] if worked and run_401 < 2 else [])
            code = rng.choice(codes)
            run_401 = run_401 + 1 if code == 401 else run_401
            plan.append(dict(kind="http", code=code))
            continue
        garbage = kind == "garbage"
        if garbage:
            for _ in range(rng.randint(1, 3)):
                sub = rng.choice(["malformed_json", "bad_length", "invalid_utf8", "oversized"])
                plan.append(dict(kind="garbage", after=rng.randint(0, 20), garbage_kind=sub,
                                 size=OVERSIZED))
            kind = rng.choice(["cut", "disconnect", "end", "stall"])
        # Only `end` and `stall` ever come at once (no data: the back-off grows linearly);
        # a cut after 0 statuses may or may not deliver a byte, which would make the
        # expected back-off ambiguous.
        n = 0 if kind in ("end", "stall") and rng.random() < 0.3 else after()
        if kind == "stall":
            plan.append(dict(kind="stall", after=n, seconds=round(rng.uniform(0.3, 0.8), 3)))
        elif kind == "disconnect":
            plan.append(dict(kind="disconnect", after=n, code=rng.choice([1, 4, 7, 10, 12])))
        else:
            plan.append(dict(kind=kind, after=n))
        if n == 0:  # a run of connections without data: the linear back-off grows
            plan.extend(dict(kind="end", after=0) for _ in range(rng.randint(0, 3)))
        if n > 0 or garbage:  # the connection delivered data: the credentials worked
            worked, run_401 = True, 0
    return plan


class Child:
    """The server process and its JSON lines."""

    def __init__(self, tmp: Path, plan: list[dict]) -> None:
        (tmp / "plan.json").write_text(json.dumps(plan))
        self.tmp = tmp
        self.err = open(tmp / "server.err", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(tmp / "plan.json"), str(STATUSES), str(SEED), str(tmp)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
        )
        self.buf = b""
        self.last: dict = {}

    def line(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise AssertionError(f"the server process died: {(self.tmp / 'server.err').read_text()}")
            self.buf += data
        raw, self.buf = self.buf.split(b"\n", 1)
        self.last = json.loads(raw)
        return self.last

    def dump(self) -> tuple[np.ndarray, dict]:
        self.proc.stdin.write(b"dump\n")
        self.proc.stdin.flush()
        while not (self.line(60) or {}).get("dumped"):
            pass
        sent = np.frombuffer((self.tmp / "sent.bin").read_bytes(), dtype=np.int64)
        return sent, json.loads((self.tmp / "observed.json").read_text())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.err.close()


def expected_waits(requests: list, conns: list, plan: list[dict]) -> list[tuple[float, float, float, str]]:
    """For each reconnect: (earliest end of the previous attempt, its latest end, policy's wait, why)."""
    backoff = Backoff(**POLICY)
    streams = iter(conns)
    out = []
    for t, status in requests[:-1]:
        if status != 200:
            delay = backoff.http_error(status)
            out.append((t, t, delay, f"HTTP {status}"))
            continue
        _index, sent_here, ended, faults = next(streams)
        got_data = sent_here > 0 or any(k in ("garbage", "disconnect", "cut") for k in faults)
        if got_data:
            backoff.connected()
        delay = backoff.network_error()
        # A silent connection ends when the client's stall timeout fires or the server closes.
        earliest = t + min(STALL_TIMEOUT, ended - t) if not got_data else t
        out.append((earliest, ended, delay, "stream" + ("" if got_data else " without data")))
    return out


@pytest.mark.timeout(7200 if LONG else 300)
def test_fault_soak(tmp_path):
    rng = random.Random(SEED)
    plan = make_plan(rng, STATUSES, FAULTS)
    child = Child(tmp_path, plan)
    auth = streamkit.OAuthHandler(C["consumer_key"], C["consumer_secret"])
    auth.set_access_token(C["access_token"], C["access_token_secret"])
    states: collections.Counter[str] = collections.Counter()
    watching = threading.Event()
    started = time.monotonic()
    try:
        url = child.line(30)["url"]
        c = streamkit.collect(track=["python"], auth=auth, base_url=url, path=tmp_path / "soak",
                              progress=False, flush_seconds=1.0, timeout=STALL_TIMEOUT,
                              max_message_bytes=MAX_MESSAGE, **POLICY)

        def watch() -> None:  # the collector must never be seen failed
            while not watching.wait(0.05):
                states[c.stats.state] += 1

        watcher = threading.Thread(target=watch, name="soak-watch", daemon=True)
        watcher.start()
        try:
            deadline = time.monotonic() + (6000 if LONG else 240)
            done_since = None
            while True:
                report = child.line(1.0) or child.last
                want = STATUSES + report.get("injected", {}).get("bad_length", 0)
                done = (report.get("sent") == STATUSES and report.get("pending_faults") == 0
                        and c.stats.stored >= want)
                # Twice, 0.5 s apart: a fault injected right as the budget ran out is in.
                done_since = (done_since or time.monotonic()) if done else None
                if done_since is not None and time.monotonic() - done_since >= 0.5:
                    break
                assert c.running, c.stats
                assert time.monotonic() < deadline, (report, c.stats)
        finally:
            c.stop()
            watching.set()
            watcher.join()
        sent, seen = child.dump()
    finally:
        child.close()
    elapsed = time.monotonic() - started
    s = c.stats
    injected = collections.Counter(seen["injected"])

    # Every status sent completely is stored exactly once.
    tweets = pads.dataset(tmp_path / "soak" / "tweets", format="parquet", partitioning="hive",
                          ignore_prefixes=[".", "_"]).to_table(columns=["id"])
    stored = tweets.column("id").to_numpy()
    assert len(sent) == STATUSES == seen["sent"]
    assert len(np.unique(stored)) == len(stored), "a status was stored twice"
    missing = np.setdiff1d(sent, stored)
    assert len(missing) == 0, f"{len(missing)} statuses sent completely were not stored"
    # The only others: statuses behind a wrong length prefix, recovered whole.
    assert len(stored) - len(sent) == injected["bad_length"] == s.length_mismatches

    # The stats add up, every rejection under its reason.
    assert s.state == "stopped" and c.exception is None, s
    assert states["failed"] == 0 and not set(states) - {"connecting", "streaming", "backing off",
                                                         "recovering", "stopping", "stopped"}
    assert s.received == s.stored + s.duplicates + s.events + sum(s.rejected.values()), s
    assert s.pending == 0 and s.duplicates == 0 and s.stored == len(stored)
    assert s.rejected == {k: injected[k] for k in ("malformed_json", "invalid_utf8", "oversized")
                          if injected[k]}, (s.rejected, injected)
    assert s.events == seen["notices"]
    assert s.incomplete <= injected["cut"]
    requests = seen["requests"]
    http = [status for _, status in requests if status != 200]
    assert s.http_errors == len(http) == sum(v for k, v in injected.items() if k.startswith("http"))
    assert s.reconnects == len(requests) - len(http) - 1
    assert injected["http 401"] >= 1 and injected["stall"] >= 1 and injected["cut"] >= 1

    # Each reconnect waited what the policy says: never less (the client cannot reconnect
    # before the previous attempt ended and its back-off elapsed), and not much more.
    waits = expected_waits(requests, seen["conns"], plan)
    early, late, over = [], [], []
    for (earliest, latest, delay, why), (t_next, _) in zip(waits, requests[1:], strict=True):
        if t_next - earliest < delay - 0.005:
            early.append((why, delay, round(t_next - earliest, 3)))
        if t_next - latest > delay * 1.5 + 1.0:
            late.append((why, delay, round(t_next - latest, 3)))
        over.append(t_next - latest - delay)
    assert not early, f"reconnects sooner than the back-off policy allows: {early[:10]}"
    assert not late, f"reconnects much later than the policy says: {late[:10]}"
    assert np.median(over) < 0.1, "reconnects lag the policy's waits"
    # Waits that back off, each against its own policy: a policy twice as slow would fail.
    for kind in ("HTTP", "stream without data"):
        ratios = [(t_next - latest) / delay for (_, latest, delay, why), (t_next, _) in
                  zip(waits, requests[1:], strict=True) if why.startswith(kind) and delay > 0]
        assert np.median(ratios) < 1.8, (kind, sorted(ratios))
        print(f"\nback-off {kind}: {len(ratios)} waits, median actual/policy {np.median(ratios):.2f}")
    # The plan holds bursts: back-offs that grew past their first step were checked too.
    grew = collections.Counter(
        why.split()[0] for *_, d, why in waits
        if (why in ("HTTP 420", "HTTP 429") and d > POLICY["retry_420"])
        or (why.startswith("HTTP") and why not in ("HTTP 420", "HTTP 429") and d > POLICY["retry_time"])
        or (why == "stream without data" and d > POLICY["snooze_time"])
    )
    if FAULTS >= 200:
        assert grew["HTTP"] >= 3 and grew["stream"] >= 3, grew

    kinds = {k: v for k, v in sorted(injected.items())}
    print(f"\nreliability: soak: {STATUSES:,} statuses streamed in {elapsed:.0f} s; "
          f"{sum(injected.values())} faults injected {kinds}; {len(requests)} connections, "
          f"{len(waits)} reconnect waits checked; stored {s.stored:,}, lost 0, duplicated 0; "
          f"rejected {dict(s.rejected)}, incomplete {s.incomplete}, "
          f"length mismatches {s.length_mismatches}")
