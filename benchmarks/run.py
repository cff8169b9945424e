"""streamkit against what users do today: one reproducible benchmark.

Run ``python benchmarks/run.py`` (about 10 minutes on 2 cores), ``--quick`` (about a
minute) or ``--tiny`` (seconds; what CI runs). In one run, against the same local
``streamkit.testing.StreamServer`` streaming the same realistic v1.1 statuses
(~4 KB on average; retweets, long tweets and 2% notices mixed in), it measures:

1. ``ceiling-parse``     ``orjson.loads`` of every message from memory (no network)
2. ``ceiling-socket``    reading the HTTP stream and splitting messages, nothing more
3. ``streamkit-stream``  ``Stream`` with a listener that does nothing in ``on_data``
4. ``streamkit-collect`` ``collect(keep_raw=True)`` until every row is committed
                         to Parquet (WAL included)
5. ``baseline-tweepy``   Tweepy 4 ``BaseStream`` (v1.1 filter, OAuth 1.0a), ``json.loads``
                         per message into a list, ``json_normalize(...).to_parquet(...)``
                         every 10,000 messages
6. ``baseline-requests`` the same with ``requests`` + ``iter_lines``

each as messages/s (median of ``--runs``), peak RSS and CPU seconds, plus memory over
length, live-view latency and idle cost; prints a table and the targets, and writes
JSON to ``benchmarks/results/<timestamp>.json``.

Method: every measured run is a fresh client process (its own peak RSS and CPU
time) against a fresh server in one separate server process, with the same seed
and size, so every client receives the same messages. Runs are interleaved
(round-robin over the clients) so that drift on a shared machine hits all
clients alike. The server alone is measured with a raw-socket reader that
discards the bytes; a client at >= 90% of that rate, or with the server >= 90%
busy, is flagged as server-bound.

Examples
--------
``python benchmarks/run.py --quick``,
``python benchmarks/run.py --sizes 20k,200k --runs 5``,
``python benchmarks/run.py --only streamkit-collect --only baseline-tweepy``,
``python benchmarks/run.py --only latency,idle``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported rather than run as a script
    sys.path.insert(0, str(HERE))

from _bench_report import (  # noqa: E402
    CLIENT_ORDER,
    evaluate_targets,
    format_report,
    ratios,
    summarize_clients,
)

__all__ = ["SECTIONS", "Plan", "ServerHost", "main", "make_plan", "parse_count"]

#: The measurements besides the six clients.
SECTIONS = ("memory", "latency", "idle")
_CLIENTS_SCRIPT = HERE / "_bench_clients.py"
_SERVER_SCRIPT = HERE / "_bench_server.py"
_NEEDS = {"ceiling-parse": "orjson", "baseline-tweepy": "tweepy"}

_MODES: dict[str, dict[str, Any]] = {
    "full": {"sizes": [100_000], "runs": 3, "memory_sizes": (200_000, 1_000_000),
             "latency_rate": 10_000, "latency_seconds": 20.0, "idle_seconds": 30.0},
    "quick": {"sizes": [10_000], "runs": 3, "memory_sizes": (50_000, 200_000),
              "latency_rate": 10_000, "latency_seconds": 5.0, "idle_seconds": 10.0},
    "tiny": {"sizes": [2_000], "runs": 1, "memory_sizes": (2_000, 5_000),
             "latency_rate": 2_000, "latency_seconds": 2.0, "idle_seconds": 2.0,
             "flush_seconds": 1.0},
}


def parse_count(text: str) -> int:
    """``"200000"``, ``"200_000"``, ``"200k"`` or ``"1m"`` as an int.

    Examples
    --------
    >>> parse_count("200k"), parse_count("1M"), parse_count("2_000")
    (200000, 1000000, 2000)
    """
    t = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    value = float(t[:-1]) if scale != 1 else float(t)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive, got {text!r}")
    return int(value * scale)


@dataclass
class Plan:
    """What one invocation measures."""

    mode: str
    sizes: list[int]
    runs: int
    only: list[str]
    memory_sizes: tuple[int, int]
    latency_rate: int
    latency_seconds: float
    idle_seconds: float
    keepalive_interval: float = 1.0
    flush_seconds: float | None = None
    memory_guard_mb: float = 4096.0
    memory_rate: int | None = None
    seed: int = 20_240_601
    notices: float = 0.02
    out: Path = HERE / "results"
    report: Path | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def clients(self) -> list[str]:
        return [n for n in CLIENT_ORDER if n in self.only and n not in self.skipped]

    def wants(self, section: str) -> bool:
        return section in self.only


def make_plan(argv: list[str] | None = None) -> Plan:
    """Parse the command line into a :class:`Plan`.

    Examples
    --------
    >>> p = make_plan(["--quick", "--only", "latency,idle"])
    >>> p.mode, p.only, p.clients
    ('quick', ['latency', 'idle'], [])
    >>> make_plan(["--tiny"]).sizes
    [2000]
    """
    names = list(CLIENT_ORDER) + list(SECTIONS)
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.split("\n\n")[0],
        epilog="Names for --only: " + ", ".join(names))
    modes = p.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true",
                      help="about a minute: 10k statuses, memory at 50k/200k, 5 s latency, 10 s idle")
    modes.add_argument("--tiny", action="store_true",
                      help="a few seconds: 2k statuses, 1 run, the six clients only (for CI)")
    p.add_argument("--sizes", type=lambda s: [parse_count(x) for x in s.split(",") if x],
                   help="statuses per throughput run, comma-separated (e.g. 20k,200k)")
    p.add_argument("--runs", type=int, help="runs per client; the median is reported")
    p.add_argument("--only", action="append", default=[],
                   help="measure only these (comma-separated or repeated)")
    p.add_argument("--memory-sizes", type=lambda s: tuple(parse_count(x) for x in s.split(",")),
                   help="memory over length: two checkpoints, e.g. 200k,1m")
    p.add_argument("--memory-rate", type=int, default=None,
                   help="statuses/s the server sends in the memory probe (default: full speed)")
    p.add_argument("--memory-guard-mb", type=float, default=4096.0,
                   help="end the memory probe if its RSS passes this (protects a shared machine)")
    p.add_argument("--latency-rate", type=int, help="statuses/s for the latency probe")
    p.add_argument("--latency-seconds", type=float, help="how long the latency probe streams")
    p.add_argument("--idle-seconds", type=float, help="how long the idle probe measures")
    p.add_argument("--flush-seconds", type=float,
                   help="flush_seconds of the latency probe's collect() (default: collect's own; "
                        "--tiny uses 1 to finish sooner)")
    p.add_argument("--keepalive", type=float, default=1.0,
                   help="keep-alive interval of the idle server (s; Twitter's was ~30)")
    p.add_argument("--seed", type=int, default=20_240_601)
    p.add_argument("--notices", type=float, default=0.02, help="share of notices in the stream")
    p.add_argument("--report", type=Path, metavar="JSON",
                   help="measure nothing: print the report of a saved results file again")
    p.add_argument("--out", type=Path, default=HERE / "results",
                   help="folder for the JSON results (default benchmarks/results)")
    a = p.parse_args(argv)
    mode = "quick" if a.quick else "tiny" if a.tiny else "full"
    d = _MODES[mode]
    only = [x.strip() for item in a.only for x in item.split(",") if x.strip()]
    bad = [x for x in only if x not in names]
    if bad:
        p.error(f"unknown name(s) for --only: {', '.join(bad)}; use {', '.join(names)}")
    if not only:
        only = list(CLIENT_ORDER) + ([] if mode == "tiny" else list(SECTIONS))
    mem = a.memory_sizes or d["memory_sizes"]
    if len(mem) != 2 or mem[0] >= mem[1]:
        p.error("--memory-sizes takes two increasing sizes, e.g. 200k,1m")
    runs = a.runs if a.runs is not None else d["runs"]
    if runs < 1:
        p.error("--runs must be at least 1")
    plan = Plan(mode=mode, sizes=a.sizes or d["sizes"], runs=runs, only=only,
                memory_sizes=(mem[0], mem[1]),
                latency_rate=a.latency_rate or d["latency_rate"],
                latency_seconds=a.latency_seconds or d["latency_seconds"],
                idle_seconds=a.idle_seconds or d["idle_seconds"],
                keepalive_interval=a.keepalive, seed=a.seed,
                flush_seconds=a.flush_seconds or d.get("flush_seconds"),
                memory_guard_mb=a.memory_guard_mb, memory_rate=a.memory_rate,
                notices=a.notices, out=a.out, report=a.report)
    for name, module in _NEEDS.items():
        if name in only and importlib.util.find_spec(module) is None:
            plan.skipped[name] = f"{module} is not installed: pip install -e '.[bench]'"
    return plan


class ServerHost:
    """The server process: starts and stops fresh ``StreamServer`` instances on request."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(_SERVER_SCRIPT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=HERE)
        hello = self._read()
        if not hello.get("ready"):
            raise RuntimeError(f"the server process did not start: {hello}")
        self.credentials: dict[str, str] = hello["credentials"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the server process exited (see its messages above)")
        return json.loads(line)

    def _ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(self, **params: Any) -> tuple[int, str]:
        """A new server with these ``StreamServer`` keywords (plus ``end_after``)."""
        reply = self._ask({"cmd": "start", "params": params})
        return reply["id"], reply["url"]

    def stop(self, server_id: int) -> dict[str, Any]:
        """Stop a server; its counters and the CPU time it used."""
        return self._ask({"cmd": "stop", "id": server_id})

    def close(self) -> None:
        """Ask the process to quit; kill it (only it) if it does not."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                f.close()

    def __enter__(self) -> ServerHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Runner:
    """Runs client processes and keeps the progress count."""

    def __init__(self, plan: Plan, host: ServerHost, tmp: Path) -> None:
        self.plan = plan
        self.host = host
        self.tmp = tmp
        self.count = 0
        self.failures = 0

    def server_params(self, statuses: int, **extra: Any) -> dict[str, Any]:
        params = {"statuses": statuses, "seed": self.plan.seed, "notices": self.plan.notices,
                  "record_sent": False, "rate": None}
        if statuses:
            params["end_after"] = statuses
        params.update(extra)
        return params

    def child(self, name: str, timeout: float, **opts: Any) -> dict[str, Any]:
        """Run one client process and return its result (or the error, as data)."""
        work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))
        cmd = [sys.executable, str(_CLIENTS_SCRIPT), name, "--tmp", str(work)]
        for key, value in opts.items():
            if value is not None:
                cmd += [f"--{key.replace('_', '-')}", str(value)]
        env = dict(os.environ, STREAMKIT_BENCH_CREDENTIALS=json.dumps(self.host.credentials))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE,
                                  env=env)
        except subprocess.TimeoutExpired:
            result = {"error": f"timed out after {timeout:.0f} s"}
        else:
            lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
            if lines:
                result = json.loads(lines[-1])
            else:
                tail = proc.stderr.strip().splitlines()[-3:]
                result = {"error": f"exit code {proc.returncode}: {' | '.join(tail)}"}
            if result.get("error"):
                sys.stderr.write(proc.stderr[-4000:])
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if result.get("error") and not result.get("aborted_rss_mb"):  # an abort is a result
            self.failures += 1
        return result

    def served(self, name: str, params: dict[str, Any], timeout: float,
               **opts: Any) -> dict[str, Any]:
        """Run a client against a fresh server; add the server's counters to the result."""
        sid, url = self.host.start(**params)
        try:
            result = self.child(name, timeout, url=url, **opts)
        finally:
            server = self.host.stop(sid)
        result["server"] = server
        if result.get("seconds"):
            result["server_busy"] = server["cpu_seconds"] / result["seconds"]
        return result

    def progress(self, total: int, text: str) -> None:
        self.count += 1
        print(f"[{self.count}/{total}] {text}", file=sys.stderr, flush=True)


def _run_note(r: dict[str, Any], expected: int) -> str:
    if r.get("error"):
        return f"FAILED: {r['error']}"
    rate = r["messages"] / r["seconds"] if r.get("seconds") else 0
    note = (f"{rate:,.0f} msgs/s, {r['seconds']:.2f} s, CPU {r['cpu_seconds']:.2f} s, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB")
    if r.get("messages") != expected:
        note += f"  (received {r.get('messages')} of {expected} messages!)"
    return note


def throughput(runner: Runner, size: int, total: int) -> dict[str, Any]:
    """The six clients (and the server alone) at one size."""
    plan = runner.plan
    params = runner.server_params(size)
    timeout = max(180.0, size / 300.0)
    capture_file = runner.tmp / f"capture-{size}.ndjson"
    cap = runner.served("capture", params, timeout, file=capture_file)
    runner.progress(total, f"capture ({size:,}): {cap.get('messages', '?')} messages")
    if cap.get("error") or cap.get("statuses") != size:
        raise RuntimeError(f"capturing the stream failed: {cap}")
    cap["mean_kb"] = cap["payload_bytes"] / cap["messages"] / 1024
    expected = cap["messages"]
    names = ["server-drain", *plan.clients]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(plan.runs):
        for name in names:
            if name == "ceiling-parse":
                res = runner.child(name, timeout, file=capture_file, expect=expected)
            else:
                res = runner.served(name, params, timeout, expect=expected)
            runs[name].append(res)
            runner.progress(total, f"{name} ({size:,}) run {r + 1}/{plan.runs}: "
                                   f"{_run_note(res, expected)}")
    capture_file.unlink(missing_ok=True)
    drain = [x for x in runs.pop("server-drain") if not x.get("error") and x.get("seconds")]
    server: dict[str, Any] = {}
    if drain:
        secs = statistics.median(x["seconds"] for x in drain)
        server = {"msgs_per_s": expected / secs,
                  "mb_per_s": drain[0]["body_bytes"] / secs / 2**20,
                  "server_busy": statistics.median(x["server_busy"] for x in drain),
                  "runs": drain}
    summary = summarize_clients(runs, expected, server.get("msgs_per_s"))
    return {"capture": cap, "expected_messages": expected, "runs": plan.runs, "server": server,
            "clients": summary, "ratios": ratios(summary), "raw_runs": runs}


def memory(runner: Runner) -> dict[str, Any]:
    """Peak RSS of collect() at two lengths, in one capture (at full speed by default)."""
    plan = runner.plan
    small, big = plan.memory_sizes
    res = runner.served("memory", runner.server_params(big, rate=plan.memory_rate),
                        max(600.0, big / 500.0), checkpoints=f"{small},{big}",
                        memory_guard_mb=plan.memory_guard_mb)
    res["rate"] = plan.memory_rate
    if runner.plan.mode != "full" and (small, big) != (200_000, 1_000_000):
        res["note"] = f"{runner.plan.mode} mode: {small:,} and {big:,} instead of 200,000 and 1,000,000"
    return res


def latency(runner: Runner) -> dict[str, Any]:
    """Send-to-view and send-to-Parquet latency at a fixed rate."""
    plan = runner.plan
    n = int(plan.latency_rate * plan.latency_seconds)
    return runner.served("latency", runner.server_params(n, rate=plan.latency_rate),
                         plan.latency_seconds + 120, statuses=n, rate=plan.latency_rate,
                         flush_seconds=plan.flush_seconds)


def idle(runner: Runner) -> dict[str, Any]:
    """CPU of a collector that only receives keep-alives."""
    plan = runner.plan
    params = runner.server_params(0, keepalive_interval=plan.keepalive_interval)
    res = runner.served("idle", params, plan.idle_seconds + 120, seconds=plan.idle_seconds)
    res["keepalive_interval"] = plan.keepalive_interval
    return res


def environment() -> dict[str, Any]:
    """Versions, machine, load and the git commit measured."""
    versions: dict[str, str | None] = {}
    for dist in ("streamkit", "pandas", "pyarrow", "msgspec", "requests", "tweepy", "orjson"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    env: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(),
        "cpus": os.cpu_count(), "versions": versions,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?",
    }
    try:
        git = ["git", "-C", str(HERE.parent)]
        env["git_commit"] = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                                           text=True, timeout=10).stdout.strip() or None
        status = subprocess.run(git + ["status", "--porcelain", "--", "streamkit"],
                                capture_output=True, text=True, timeout=10).stdout
        env["git_dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    return env


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the report; write the JSON. Non-zero if a run failed."""
    plan = make_plan(argv)
    if plan.report is not None:
        saved = json.loads(plan.report.read_text())
        saved["targets"] = evaluate_targets(saved)  # with this version's rules
        print(format_report(saved))
        return 0
    args = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/run.py", *args])
    started = _dt.datetime.now().astimezone()
    results: dict[str, Any] = {
        "mode": plan.mode, "command": command,
        "started": started.isoformat(timespec="seconds"),
        "plan": {k: v for k, v in asdict(plan).items()}, "environment": environment(),
        "warnings": [f"{name} skipped: {why}" for name, why in plan.skipped.items()],
    }
    sections = [s for s in SECTIONS if plan.wants(s)]
    per_size = 1 + (plan.runs * (1 + len(plan.clients)) if plan.clients else 0)
    total = (len(plan.sizes) * per_size if plan.clients else 0) + len(sections)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="streamkit-bench-"))
    runner: Runner | None = None
    try:
        with ServerHost() as host:
            runner = Runner(plan, host, tmp)
            if plan.clients:
                results["throughput"] = {str(n): throughput(runner, n, total) for n in plan.sizes}
            for name, fn in (("memory", memory), ("latency", latency), ("idle", idle)):
                if name in sections:
                    results[name] = fn(runner)
                    runner.progress(total, f"{name}: {'FAILED ' + str(results[name]['error']) if results[name].get('error') else 'done'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["seconds"] = time.monotonic() - t0
    results["targets"] = evaluate_targets(results)
    failures = runner.failures if runner is not None else 0
    results["failures"] = failures
    print(format_report(results))
    plan.out.mkdir(parents=True, exist_ok=True)
    out = plan.out / f"{started.strftime('%Y%m%dT%H%M%S')}-{plan.mode}.json"
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\nfinished in {results['seconds']:.0f} s; results written to {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
