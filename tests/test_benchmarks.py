"""The benchmark harness runs end to end in its smallest mode and reports sane numbers.

No timing assertions: only that every measurement is present, positive and
consistent (each client received exactly the messages the server sent), that
the JSON is written and the report printed. The docstring examples of the
benchmark modules run here too (pytest does not collect ``benchmarks/``).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
RUN = BENCH / "run.py"
CLIENTS = ("ceiling-parse", "ceiling-socket", "streamkit-stream", "streamkit-collect",
           "baseline-tweepy", "baseline-requests")

_missing = [m for m in ("tweepy", "orjson") if importlib.util.find_spec(m) is None]
needs_bench_extra = pytest.mark.skipif(
    bool(_missing), reason=f"{', '.join(_missing)} not installed: pip install -e '.[bench]'")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One ``--tiny`` run of everything: the six clients and, shortened, the three probes."""
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run(
        [sys.executable, str(RUN), "--tiny", "--only", ",".join(CLIENTS) + ",memory,latency,idle",
         "--out", str(out)],
        capture_output=True, text=True, timeout=100,
    )
    files = sorted(out.glob("*.json"))
    return proc, files


@needs_bench_extra
def test_tiny_run_writes_every_row(tiny):
    proc, files = tiny
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(files) == 1 and files[0].name.endswith("-tiny.json")
    data = json.loads(files[0].read_text())
    assert data["mode"] == "tiny" and data["failures"] == 0
    [(size, t)] = data["throughput"].items()
    cap = t["capture"]
    assert cap["statuses"] == int(size) == 2000
    assert cap["messages"] >= cap["statuses"]  # notices come on top
    assert t["expected_messages"] == cap["messages"]
    assert 2.5 < cap["mean_kb"] < 6  # realistic 3-5 KB statuses
    assert set(t["clients"]) == set(CLIENTS)
    for name in CLIENTS:
        s = t["clients"][name]
        assert s["good_runs"] == 1 and s["failed_runs"] == 0, (name, s["errors"])
        assert s["msgs_per_s"] > 0 and s["peak_rss_mb"] > 0 and s["cpu_seconds"] > 0, name
        [run] = t["raw_runs"][name]
        assert run["messages"] == cap["messages"], name  # every client got the same stream
    assert t["raw_runs"]["streamkit-collect"][0]["stored"] == 2000
    assert t["server"]["msgs_per_s"] > 0
    for key in ("collect_vs_tweepy", "collect_vs_ceiling_parse", "stream_vs_ceiling_socket"):
        assert t["ratios"][key] > 0


@needs_bench_extra
def test_tiny_run_probes_and_targets(tiny):
    proc, files = tiny
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(files[0].read_text())
    mem = data["memory"]
    assert mem["stored"] == 5000
    assert [int(k) for k in mem["checkpoints"]] == [2000, 5000]
    assert all(v["peak_rss_mb"] > 0 for v in mem["checkpoints"].values())
    lat = data["latency"]
    assert lat["committed_rows"] == lat["statuses"] == 4000
    assert lat["view"]["n"] > 0 and lat["view"]["p50"] > 0
    assert lat["committed"]["max"] >= lat["committed"]["p50"] > 0
    idle = data["idle"]
    assert idle["streaming"] and idle["seconds"] >= 2.0 and idle["cpu_seconds"] >= 0
    assert idle["bytes"] > 0  # keep-alives did arrive
    targets = {t["target"]: t for t in data["targets"]}
    assert len(targets) == 8
    for name, t in targets.items():
        if t["met"] is None:  # only growth, when one commit passed both sizes
            assert "1.10x" in name and "not measurable" in t["note"], t
        else:
            assert t["value"] > 0 and isinstance(t["met"], bool), t


@needs_bench_extra
def test_saved_results_can_be_reported_again(tiny):
    proc, files = tiny
    again = subprocess.run([sys.executable, str(RUN), "--report", str(files[0])],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("Targets:")[1] == proc.stdout.split("Targets:")[1].split(
        "\nfinished in")[0]


@needs_bench_extra
def test_tiny_run_prints_the_report(tiny):
    proc, files = tiny
    out = proc.stdout
    assert "command: python benchmarks/run.py --tiny" in out
    for name in CLIENTS:
        assert f"\n{name} " in out
    for heading in ("Server check:", "Memory over length", "Live-view latency", "Idle cost",
                    "Targets:"):
        assert heading in out
    assert str(files[0]) in out


@pytest.mark.parametrize("module", ["_bench_common", "_bench_report", "_bench_probes", "run"])
def test_benchmark_doctests(module, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_unknown_only_name_is_refused():
    proc = subprocess.run([sys.executable, str(RUN), "--only", "nope"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "unknown name(s) for --only: nope" in proc.stderr
