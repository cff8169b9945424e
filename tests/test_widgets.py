"""The notebook panel without a browser: real captures from a local server, buttons pressed in code.

ipywidgets runs here without a kernel (its comms are dummies), which exercises everything
the panel does on the Python side: validation, starting/stopping, the refresher thread,
the HTML it renders. tests/test_browser.py drives the same panel in Chromium.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import textwrap
import threading

import pytest

pytest.importorskip("ipywidgets")

import helpers

import streamkit  # noqa: E402
from streamkit import widgets  # noqa: E402
from streamkit.testing import Fault, StreamServer  # noqa: E402

FAST = dict(flush_seconds=0.2, progress=False, timeout=2.0, retry_time=0.05, snooze_time=0.02)


wait_until = functools.partial(helpers.wait_until, timeout=30.0, interval=0.02)


def counter(p: widgets.Panel, name: str) -> int:
    m = re.search(rf"data-name='{name}'.*?streamkit-value[^>]*>([\d,.–]+)<", p._counters.value)
    assert m, p._counters.value
    return int(m.group(1).replace(",", "")) if m.group(1) != "–" else -1


def table_rows(p: widgets.Panel) -> int:
    return int(re.search(r"data-rows='(\d+)'", p._table.value).group(1))


def panel_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "streamkit-panel"]


def streamkit_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("streamkit")}


@pytest.fixture
def server():
    with StreamServer(rate=300, notices=0.05) as s:
        yield s


@pytest.fixture
def make_panel(server, tmp_path):
    made = []

    def make(**options):
        options = {"base_url": server.url, "auth": server.auth(), "path": tmp_path / "data",
                   "refresh_interval": 0.2, **FAST, **options}
        p = streamkit.panel(**options)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def show(p: widgets.Panel) -> dict:
    """What a notebook does when the panel is the last expression of a cell."""
    return p._repr_mimebundle_()


# -- start, watch, apply, stop ---------------------------------------------------------------


def test_start_counters_rise_rows_appear_apply_and_stop(make_panel, tmp_path):
    p = make_panel(track=["python"])
    bundle = show(p)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert p.state == "not started: fill in a filter and press Start"
    assert counter(p, "received") == -1 and table_rows(p) == 0
    assert p.buttons["stop"].disabled and p.buttons["apply"].disabled and not p.buttons["start"].disabled

    p.buttons["start"].click()
    assert p.collector is not None and p.collector.running, p.message
    assert p.message == "Started: track python."
    assert p.buttons["start"].disabled and not p.buttons["stop"].disabled
    assert len(panel_threads()) == 1

    # The refresher alone (no further calls) brings the counters, table and chart up to date.
    assert wait_until(lambda: counter(p, "stored") >= 50 and table_rows(p) == 10)
    assert wait_until(lambda: "data-state='streaming'" in p._state.value)
    assert p.state == "streaming"
    assert counter(p, "received") >= counter(p, "stored")
    assert wait_until(lambda: int(re.search(r"data-points='(\d+)'", p._chart.value).group(1)) >= 1)
    cells = re.findall(r">(\d\d:\d\d:\d\d)</td><td[^>]*>@([^<]+)</td>", p._table.value)  # time, user
    times, users = [t for t, _ in cells], {u for _, u in cells}
    assert len(cells) == 10 and times == sorted(times, reverse=True)  # newest first
    assert users <= set(p.collector.df["user_screen_name"])  # rows of this capture's live view
    assert str((tmp_path / "data").resolve()) in p._where.value
    assert "track=python" in p._where.value

    p.inputs["track"].value = "rust, data science"
    p.inputs["languages"].value = "en"
    p.buttons["apply"].click()
    assert "Filter applied: track rust, data science; languages en" in p.message
    assert p.collector.filter["track"] == ["rust", "data science"]
    assert wait_until(lambda: "track=rust, data science; languages=en" in p._where.value)
    before = counter(p, "stored")
    assert wait_until(lambda: counter(p, "stored") > before)

    p.buttons["stop"].click()
    assert not p.collector.running
    assert p.state.startswith("stopped: ") and p.state.endswith(" tweets stored")
    assert p.message.startswith("Stopped: ")
    assert counter(p, "stored") == len(streamkit.read(tmp_path / "data", include_deleted=True))
    assert not panel_threads()
    assert not p.buttons["start"].disabled and p.buttons["stop"].disabled


def test_start_again_continues_the_same_dataset(make_panel, tmp_path):
    p = make_panel(track=["python"])
    show(p)
    p.start()
    first = p.collector
    assert first.wait_for(stored=20, timeout=30)
    p.stop()
    p.start()
    assert p.collector is not first and p.collector.path == first.path
    assert wait_until(lambda: counter(p, "stored") >= 20)
    assert len(panel_threads()) == 1
    p.stop()
    assert not panel_threads()


def test_nothing_is_refreshed_until_displayed(make_panel):
    p = make_panel(track=["python"])
    p.start()
    assert p.collector.wait_for(stored=10, timeout=30)
    assert not panel_threads() and p.refresh_stats["refreshes"] == 1  # only the render on Start
    show(p)
    assert len(panel_threads()) == 1
    assert wait_until(lambda: p.refresh_stats["refreshes"] >= 3)


def test_refresher_idles_while_the_frontend_shows_no_view(make_panel):
    p = make_panel(track=["python"])
    show(p)
    p.start()
    p.widget._view_count = 1  # what the frontend reports for one view
    assert wait_until(lambda: p.refresh_stats["refreshes"] >= 3)
    p.widget._view_count = 0  # the output was cleared
    idle = p.refresh_stats["refreshes"]  # taken under the panel's lock: no render in flight
    # Several refresh intervals pass with no rendering (the capture goes on).
    stored = p.collector.stats.stored
    assert p.collector.wait_for(stored=stored + 100, timeout=30)
    assert p.refresh_stats["refreshes"] == idle
    p.widget._view_count = 1
    assert wait_until(lambda: p.refresh_stats["refreshes"] > idle)


# -- bad input: a clear message, and nothing started -------------------------------------------


@pytest.mark.parametrize(
    "inputs, expected",
    [
        ({}, "The filter is empty: give at least one track phrase, follow id or location box."),
        ({"follow": "12, jack"}, "Follow ids must be numeric user ids; 'jack' is not"),
        ({"locations": "-74.3, 40.5, -73.7"}, "Locations has 3 numbers; each box needs 4"),
        ({"locations": "-74.3, north, -73.7, 40.9"}, "Locations must be numbers, 'north' is not"),
        ({"locations": "-73.7, 40.9, -74.3, 40.5"}, "south-west"),
        ({"track": "x" * 61}, "each must be 1-60 bytes"),
        ({"track": "python", "languages": "english!"}, "language"),
    ],
)
def test_bad_input_shows_a_message_and_starts_nothing(make_panel, tmp_path, inputs, expected):
    p = make_panel()
    show(p)
    for name, value in inputs.items():
        p.inputs[name].value = value
    threads = streamkit_threads()
    p.buttons["start"].click()
    assert p.message.startswith("Not started.")
    assert expected.lower() in p.message.lower()
    assert "⚠" in p._msg.value and "data-kind='error'" in p._msg.value
    assert p.collector is None and p.state.startswith("not started")
    assert streamkit_threads() == threads
    assert not (tmp_path / "data").exists()


def test_missing_credentials_show_which_variables(tmp_path, monkeypatch):
    for name in ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET"):
        monkeypatch.delenv(f"STREAMKIT_{name}", raising=False)
    p = streamkit.panel(track="python", path=tmp_path / "data")
    try:
        p.buttons["start"].click()
        assert p.message.startswith("Not started.") and "STREAMKIT_CONSUMER_KEY" in p.message
        assert p.collector is None and not (tmp_path / "data").exists()
    finally:
        p.close()


def test_bad_filter_on_apply_keeps_the_running_filter(make_panel):
    p = make_panel(track=["python"])
    p.start()
    p.inputs["track"].value = ""
    p.buttons["apply"].click()
    assert p.message.startswith("Filter not applied. The filter is empty")
    assert p.collector.running and p.collector.filter["track"] == ["python"]
    p.stop()


def test_apply_and_stop_when_nothing_runs_say_so(make_panel):
    p = make_panel(track=["python"])
    p.apply_filter()
    assert p.message == "Not running: press Start to capture with this filter."
    p.stop()
    assert p.message == "Nothing is running."


def test_unknown_option_is_a_config_error():
    with pytest.raises(streamkit.ConfigError, match="flush_secs"):
        streamkit.panel(track="python", flush_secs=1)
    with pytest.raises(streamkit.ConfigError, match="refresh_interval"):
        streamkit.panel(track="python", refresh_interval=0)


# -- the panel of an existing collector ------------------------------------------------------


def test_collector_panel_is_filled_from_the_running_filter(server, tmp_path):
    c = streamkit.collect(track=["python", "data science"], languages=["en"], locations=[-74.5, 40.25, -73.5, 41.0],
                          base_url=server.url, auth=server.auth(), path=tmp_path / "d", **FAST)
    try:
        p = c.panel(refresh_interval=0.2)
        assert p.inputs["track"].value == "python, data science"
        assert p.inputs["languages"].value == "en"
        assert p.inputs["locations"].value == "-74.5, 40.25, -73.5, 41"
        assert p.inputs["follow"].value == ""
        assert c.panel() is p  # one panel per collector
        show(p)
        assert wait_until(lambda: counter(p, "stored") > 0)
        # The capture stopped elsewhere: the panel shows it and its thread ends.
        c.stop()
        assert wait_until(lambda: not panel_threads())
        assert p.state.startswith("stopped")
        p.close()
        assert c.panel() is not p
        c.panel().close()
    finally:
        c.stop()


def test_close_keeps_a_passed_collector_running_but_stops_its_own(server, tmp_path, make_panel):
    c = streamkit.collect(track="python", base_url=server.url, auth=server.auth(), path=tmp_path / "d", **FAST)
    try:
        p = c.panel(refresh_interval=0.2)
        show(p)
        assert len(panel_threads()) == 1
        p.close()
        assert not panel_threads() and c.running
    finally:
        c.stop()
    own = make_panel(track=["python"])
    show(own)
    own.start()
    collector = own.collector
    own.close()
    assert not collector.running and not panel_threads()
    own.close()  # twice is fine


def test_collector_display_outside_a_kernel_is_html(server, tmp_path):
    c = streamkit.collect(track="python", base_url=server.url, auth=server.auth(), path=tmp_path / "d", **FAST)
    try:
        assert c._repr_mimebundle_() is None  # IPython then uses _repr_html_
        assert "streamkit Collector" in c._repr_html_()
    finally:
        c.stop()


def test_collector_display_in_a_kernel_is_the_panel(server, tmp_path, monkeypatch):
    monkeypatch.setattr(widgets, "_in_kernel", lambda: True)
    c = streamkit.collect(track="python", base_url=server.url, auth=server.auth(), path=tmp_path / "d", **FAST)
    try:
        bundle = c._repr_mimebundle_()
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == c.panel().widget.model_id
        assert len(panel_threads()) == 1
    finally:
        c.panel().close()
        c.stop()


# -- states in words ---------------------------------------------------------------------------


def test_backing_off_says_when_and_why(tmp_path):
    with StreamServer(rate=300, faults=[Fault.http(420)]) as server:
        p = streamkit.panel(track="python", base_url=server.url, auth=server.auth(), path=tmp_path / "d",
                            retry_420=60.0, **FAST)
        try:
            p.start()
            assert wait_until(lambda: p.state.startswith("backing off"))
            assert re.fullmatch(r"backing off, retrying in (\d+) s after HTTP 420 \(rate limited\)", p.state), p.state
            assert int(re.search(r"in (\d+) s", p.state).group(1)) > 30
            p.stop()  # promptly, mid-back-off
            assert p.state.startswith("stopped")
        finally:
            p.close()


def test_failure_is_shown_in_words(tmp_path):
    with StreamServer(rate=300, faults=[Fault.http(401)]) as server:
        p = streamkit.panel(track="python", base_url=server.url, auth=server.auth(), path=tmp_path / "d", **FAST)
        try:
            show(p)
            p.start()
            assert wait_until(lambda: not p.collector.running)
            assert wait_until(lambda: "data-state='failed'" in p._state.value)
            assert p.state.startswith("failed: HTTP 401") and "credentials were refused" in p.state
            assert not p.buttons["start"].disabled
        finally:
            p.close()


# -- the optional dependency ---------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_import_streamkit_does_not_import_ipywidgets():
    proc = run_python("""
        import sys, streamkit
        assert callable(streamkit.panel)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("ipywidgets", "IPython", "traitlets")))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_without_ipywidgets_building_a_panel_names_the_extra(tmp_path):
    proc = run_python(f"""
        import sys
        sys.modules["ipywidgets"] = None  # as if not installed
        import streamkit
        for build in (lambda: streamkit.panel(track="python"),
                      lambda: streamkit.Collector(track="python", auth=streamkit.OAuthHandler("a", "b"),
                                                  path={str(tmp_path)!r}).panel()):
            try:
                build()
            except streamkit.MissingDependency as exc:
                assert isinstance(exc, ImportError)
                print(exc)
            else:
                raise SystemExit("no MissingDependency")
        c = streamkit.Collector(track="python", auth=streamkit.OAuthHandler("a", "b"), path={str(tmp_path)!r})
        print(c._repr_mimebundle_() is None)
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and lines[2] == "True"
    for line in lines[:2]:
        assert "pip install 'streamkit[notebook]'" in line and "ipywidgets" in line


# -- the table from either kind of live view --------------------------------------------------


def test_table_from_a_dataframe_view_with_missing_values():
    import pandas as pd

    from streamkit import _panel_html as H

    class DfOnly:  # a collector that offers only the public ``df``
        df = pd.DataFrame({
            "created_at": pd.to_datetime(["2026-01-01 10:00:00", None], utc=True),
            "user_screen_name": pd.array(["ada", pd.NA], dtype="string"),
            "text": pd.array(["first", "second <b>"], dtype="string"),
            "lang": pd.array([pd.NA, "en"], dtype="string"),
            "tweet_type": ["original", "reply"],
        })

    view = H.live_view(DfOnly())
    assert view is DfOnly.df
    rows = H.newest_rows(view, 10)
    assert [r["text"] for r in rows] == ["second <b>", "first"]
    out = H.table_html(rows)
    assert "data-rows='2'" in out and "second &lt;b&gt;" in out and "10:00:00" in out
    assert "NaT" not in out and "<NA>" not in out and "nan" not in out
