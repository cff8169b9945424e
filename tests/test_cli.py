"""The ``streamkit`` command, run in-process through ``main()`` and as a real process."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import streamkit
from streamkit import cli
from streamkit.auth import ENV_VARS
from streamkit.cli import main, parse_duration
from streamkit.testing import SAMPLE_PATH, TEST_CREDENTIALS, StreamServer

OAUTH = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
COMMANDS = {
    "collect": {"--track", "--follow", "--locations", "--language", "--sample", "--out", "--duration",
                "--limit", "--base-url", "--flush-seconds", "--no-raw", "--timeout", "--quiet"},
    "demo": {"--seconds", "--out", "--rate", "--quiet"},
    "inspect": {"PATH", "--json", "--top"},
    "serve": {"--port", "--rate", "--statuses", "--keepalive", "--seed"},
    "rules": {"ACTION"},
}


def _test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in OAUTH:
        monkeypatch.setenv(ENV_VARS[key], TEST_CREDENTIALS[key])


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli._build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _stored(stderr: str) -> tuple[int, int]:
    """(tweets stored, messages received) from collect's closing report."""
    m = re.search(r"([\d,]+) tweets stored in .*\(([\d,]+) messages received", stderr)
    assert m, stderr
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def _run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# -- help and usage ------------------------------------------------------------------------

def test_every_command_exists_and_is_listed(capsys):
    assert set(_subparsers()) == set(COMMANDS)
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, sub in _subparsers().items():
        assert re.search(rf"^\s+{name}\s+\S", out, re.M), f"{name} has no one-line help"
        assert len(sub.description or "") > 60


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_are_documented(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    actions = [a for a in _subparsers()[command]._actions if not isinstance(a, argparse._HelpAction)]
    names = set()
    for action in actions:
        name = action.option_strings[-1] if action.option_strings else action.metavar
        names.add(name)
        assert action.help and action.help != argparse.SUPPRESS and len(action.help) > 15, name
        assert name in out
        # the option's own help text (first words) is shown next to it
        assert " ".join(action.help.split()[:3]) in " ".join(out.split()), name
    assert COMMANDS[command] <= names


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"streamkit {streamkit.__version__}"


@pytest.mark.skipif(shutil.which("streamkit") is None, reason="console script not on PATH")
def test_console_script_runs():
    r = subprocess.run(["streamkit", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and streamkit.__version__ in r.stdout


@pytest.mark.parametrize("argv", [
    [],
    ["collect"],
    ["collect", "--sample", "--track", "python"],
    ["collect", "--track", "python", "--duration", "soon"],
    ["collect", "--track", "python", "--limit", "0"],
    ["collect", "--follow", "jack"],
    ["collect", "--locations", "1,2,3"],
    ["collect", "--locations", "10,50,5,40"],  # north-east corner first
    ["demo", "--seconds", "0"],
    ["inspect"],
    ["no-such-command"],
])
def test_usage_errors_exit_2(argv, capsys, monkeypatch):
    _test_env(monkeypatch)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() and "Traceback" not in err


@pytest.mark.parametrize("text, seconds", [
    ("2h", 7200), ("30m", 1800), ("90s", 90), ("3600", 3600), ("1h30m", 5400), ("1.5d", 129600), (" 2H ", 7200),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "soon", "1h30", "-5m", "2 weeks", "h"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


# -- collect -------------------------------------------------------------------------------

def test_collect_with_limit(tmp_path, monkeypatch, capsys):
    _test_env(monkeypatch)
    out = tmp_path / "python"
    with StreamServer(rate=2000, notices=0) as server:
        code = main(["collect", "--track", "python", "--track", "data,ai", "--language", "en",
                     "--limit", "300", "--base-url", server.url, "--out", str(out), "--flush-seconds", "0.2"])
        sent = set(server.sent)
        params = server.requests[-1].params
    err = capsys.readouterr().err
    assert code == 0, err
    df = streamkit.read(out)
    stored, received = _stored(err)
    assert len(df) == stored == received >= 300
    assert set(df["id"]) <= sent
    assert params["track"] == ["python,data,ai"] and params["language"] == ["en"]
    manifest = json.loads((out / "streamkit.json").read_text())
    assert manifest["filters"][-1]["params"]["track"] == ["python", "data", "ai"]
    assert f"streamkit.read({str(out)!r})" in err and "duckdb -c" in err


def test_collect_sample_duration_no_raw(tmp_path, monkeypatch, capsys):
    _test_env(monkeypatch)
    out = tmp_path / "sample"
    with StreamServer(rate=500, notices=0) as server:
        code = main(["collect", "--sample", "--duration", "1s", "--no-raw", "--quiet", "--timeout", "30",
                     "--base-url", server.url, "--out", str(out), "--flush-seconds", "0.2"])
        paths = {r.path for r in server.requests}
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == "" and captured.out == ""  # --quiet
    assert paths == {SAMPLE_PATH}
    df = streamkit.read(out)
    assert len(df) > 0 and df["raw"].isna().all()


def test_collect_negative_locations(tmp_path, monkeypatch, capsys):
    _test_env(monkeypatch)
    with StreamServer(rate=2000, notices=0) as server:
        code = main(["collect", "--locations", "-122.75,36.8,-121.75,37.8", "--limit", "20", "--base-url",
                     server.url, "--out", str(tmp_path / "sf"), "--flush-seconds", "0.2"])
        params = server.requests[-1].params
    assert code == 0, capsys.readouterr().err
    assert [float(v) for v in params["locations"][0].split(",")] == [-122.75, 36.8, -121.75, 37.8]


def test_missing_credentials_exit_2_and_name_the_variables(tmp_path, monkeypatch, capsys):
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(ENV_VARS["consumer_key"], "present")
    out = tmp_path / "nothing"
    assert main(["collect", "--track", "python", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for key in ("consumer_secret", "access_token", "access_token_secret"):
        assert ENV_VARS[key] in err
    assert "missing credentials" in err and "Traceback" not in err
    assert not out.exists()


def test_refused_credentials_exit_1_without_printing_secrets(tmp_path, monkeypatch, capsys):
    secrets = {key: f"{key}-S3CRET-{i}x" for i, key in enumerate(OAUTH)}
    for key, value in secrets.items():
        monkeypatch.setenv(ENV_VARS[key], value)
    out = tmp_path / "refused"
    with StreamServer(rate=100) as server:  # expects TEST_CREDENTIALS: answers 401
        code = main(["collect", "--track", "python", "--base-url", server.url, "--out", str(out), "-v"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "401" in captured.err and "capture failed" in captured.err
    on_disk = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for value in secrets.values():
        for where in (captured.out, captured.err, on_disk.decode("utf-8", "replace")):
            assert value not in where and value[:-2] not in where


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_mid_capture_flushes_and_exits_0(tmp_path):
    out = tmp_path / "capture"
    env = {**os.environ, **{ENV_VARS[k]: TEST_CREDENTIALS[k] for k in OAUTH}}
    with StreamServer(rate=1000, notices=0) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamkit", "collect", "--track", "python", "--base-url", server.url,
             "--out", str(out), "--flush-seconds", "0.2"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not list((out / "tweets").glob("date=*/part-*.parquet")):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no part file was committed"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        sent = set(server.sent)
    assert proc.returncode == 0, stderr
    assert "SIGTERM" in stderr and "Traceback" not in stderr and stdout == ""
    stored, received = _stored(stderr)
    df = streamkit.read(out)
    assert len(df) == stored == received > 0  # everything received was committed
    assert set(df["id"]) <= sent


# -- serve ---------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_serve_then_collect_from_it(tmp_path, monkeypatch, capsys):
    proc = subprocess.Popen([sys.executable, "-m", "streamkit", "serve", "--port", "0", "--rate", "1000",
                             "--keepalive", "5", "--seed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        while not any(line.startswith("Then:") for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        banner = "".join(lines)
        url = re.search(r"(http://127\.0\.0\.1:\d+)", banner).group(1)
        exports = dict(re.findall(r"export (STREAMKIT_\w+)=(\S+)", banner))
        assert set(exports) == {ENV_VARS[k] for k in OAUTH}
        for var, value in exports.items():
            monkeypatch.setenv(var, value)
        code = main(["collect", "--track", "python", "--limit", "50", "--base-url", url,
                     "--out", str(tmp_path / "served"), "--flush-seconds", "0.2"])
        assert code == 0, capsys.readouterr().err
        assert len(streamkit.read(tmp_path / "served")) >= 40  # deletes may remove a few
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, rest
    assert "stopped after sending" in rest and "Traceback" not in rest


# -- demo and inspect ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One 3-second demo run shared by the demo and inspect tests: (path, stdout, stderr)."""
    path = tmp_path_factory.mktemp("demo") / "demo"
    code, out, err = _run_main("demo", "--seconds", "3", "--out", str(path))
    assert code == 0, err
    return path, out, err


def test_demo_prints_a_summary(demo):
    path, out, _err = demo
    rows = int(re.search(r"rows\s+([\d,]+) tweets", out).group(1).replace(",", ""))
    assert rows > 0 and rows == len(streamkit.read(path))
    for heading in ("This run:", "reconnects", "files", "created_at", "top hashtags", "languages",
                    "tweet types", "streamkit.read(", "duckdb"):
        assert heading in out, heading


def test_demo_reruns_append_into_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    counts = []
    for _ in range(2):
        code, out, err = _run_main("demo", "--seconds", "1", "--rate", "500", "--quiet")
        assert code == 0, err
        counts.append(len(streamkit.read(tmp_path / "data" / "demo")))
    assert 0 < counts[0] < counts[1]
    manifest = json.loads((tmp_path / "data" / "demo" / "streamkit.json").read_text())
    assert len(manifest["filters"]) == 2


def _expected(path: Path) -> dict:
    df = streamkit.read(path)
    events = streamkit.read_events(path)

    def top(counter: Counter, n: int = 10) -> dict:
        return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n])

    tags = Counter(t.lower() for tags in df["hashtags"] if tags is not None for t in tags)
    return {
        "rows": len(df),
        "users": df["user_id"].nunique(),
        "top_hashtags": top(tags),
        "languages": top(Counter(df["lang"].fillna("und"))),
        "tweet_types": dict(Counter(df["tweet_type"])),
        "deletes": int((events["event_type"] == "delete").sum()),
        "limit_notices": int((events["event_type"] == "limit").sum()),
        "files": len(list(path.glob("*/date=*/part-*.parquet"))),
        "created_min": df["created_at"].min().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "created_max": df["created_at"].max().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_inspect_json_matches_the_data(demo, capsys):
    path = demo[0]
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    want = _expected(path)
    for key in ("rows", "users", "deletes", "limit_notices", "files"):
        assert summary[key] == want[key], key
    assert list(summary["top_hashtags"].items()) == list(want["top_hashtags"].items())
    assert list(summary["languages"].items()) == list(want["languages"].items())
    assert summary["tweet_types"] == want["tweet_types"]
    assert summary["created_at"] == {"min": want["created_min"], "max": want["created_max"]}
    assert summary["filters"][0]["params"]["track"] == ["python", "climate", "music"]
    assert summary["bytes"] >= sum(p.stat().st_size for p in path.glob("*/date=*/part-*.parquet"))
    assert summary["source"]["base_url"].startswith("http://127.0.0.1:")


def test_inspect_text(demo, capsys):
    path = demo[0]
    assert main(["inspect", str(path), "--top", "3"]) == 0
    out = capsys.readouterr().out
    want = _expected(path)
    assert f"{want['rows']:,} tweets" in out
    assert f"{want['deletes']:,} deletes" in out
    first_tag, count = next(iter(want["top_hashtags"].items()))
    assert f"#{first_tag} {count:,}" in out
    assert re.search(r"top hashtags\s+#\S+ [\d,]+, #\S+ [\d,]+, #\S+ [\d,]+$", out, re.M)  # --top 3
    for kind in want["tweet_types"]:
        assert kind in out
    assert "track=python,climate,music" in out


def test_inspect_shows_the_gaps_a_reconnect_left(demo, capsys):
    # The demo cuts the connection and sends a disconnect notice: v1.1 cannot resend
    # what passed while reconnecting, so each span is in the manifest and the report.
    path = demo[0]
    gaps = json.loads((path / "streamkit.json").read_text())["gaps"]
    assert len(gaps) >= 2 and all(g["reason"] == "reconnected" and g["start"] <= g["end"] for g in gaps)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"gaps\s+{len(gaps)} spans the source could not resend", out)
    assert out.count("(reconnected)") == min(len(gaps), 5)
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gaps"] == gaps


def test_inspect_empty_dataset(tmp_path, capsys):
    from streamkit.sink import DatasetWriter

    DatasetWriter(tmp_path / "empty")
    assert main(["inspect", str(tmp_path / "empty"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 0 and summary["top_hashtags"] == {} and summary["created_at"]["min"] is None
    assert main(["inspect", str(tmp_path / "empty")]) == 0
    assert "0 tweets" in capsys.readouterr().out


@pytest.mark.parametrize("make", ["missing", "empty folder", "file", "foreign manifest"])
def test_inspect_not_a_dataset_exits_2(make, tmp_path, capsys):
    path = tmp_path / "thing"
    if make == "empty folder":
        path.mkdir()
    elif make == "file":
        path.write_text("hello")
    elif make == "foreign manifest":
        path.mkdir()
        (path / "streamkit.json").write_text('{"format": "other"}')
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not a streamkit dataset" in err and "Traceback" not in err
