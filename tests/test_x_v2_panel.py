"""The notebook panel drives an X API v2 capture: its inputs are the source's options."""

from __future__ import annotations

import functools
import re

import pytest

pytest.importorskip("ipywidgets")

import helpers

import streamkit  # noqa: E402
from streamkit.testing import XV2Server  # noqa: E402

wait_until = functools.partial(helpers.wait_until, timeout=30.0, interval=0.02)


def test_panel_starts_applies_and_stops_an_x_v2_capture(tmp_path, monkeypatch):
    with XV2Server(rate=200, rules=[("python", "py")], match_fraction=1.0, keepalive_interval=0.3) as server:
        monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", server.bearer_token)  # never a panel input
        p = streamkit.panel(source="x-v2", base_url=server.url, backfill_minutes=1, path=tmp_path / "d",
                            refresh_interval=0.2, flush_seconds=0.2, progress=False, timeout=2.0)
        try:
            assert {"sample_stream", "tweet_fields", "expansions", "backfill_minutes"} <= set(p.inputs)
            assert "bearer_token" not in p.inputs and p.inputs["backfill_minutes"].value == "1"
            p._repr_mimebundle_()
            p.buttons["start"].click()
            assert p.collector is not None and p.collector.running, p.message
            assert wait_until(lambda: int(re.search(r"data-rows='(\d+)'", p._table.value).group(1)) >= 5)
            assert "python" in p._table.value.lower()
            p.inputs["tweet_fields"].value = "created_at,author_id,lang"
            p.inputs["expansions"].value = "author_id"
            p.buttons["apply"].click()  # restarts into the same dataset with the new field lists
            assert "resumes from the last committed position" in p.message
            assert wait_until(lambda: server.connections[-1]["params"].get("expansions") == "author_id")
            # the restart asked for backfill covering the moment it was away
            assert server.connections[-1]["params"]["backfill_minutes"] == "1"
            p.buttons["stop"].click()
            assert not p.collector.running
        finally:
            p.close()
    df = streamkit.read(tmp_path / "d")
    assert len(df) >= 5 and df["id"].is_unique and df["user_screen_name"].notna().all()
    assert server.bearer_token not in p._table.value + p.message
