"""The notebook panel drives a Mastodon capture: its inputs are the source's options."""

from __future__ import annotations

import functools
import re

import pytest

pytest.importorskip("ipywidgets")

import helpers

import streamkit  # noqa: E402
from streamkit.sources.mastodon import TOKEN_ENV  # noqa: E402
from streamkit.testing import MASTODON_TEST_TOKEN, MastodonServer  # noqa: E402

wait_until = functools.partial(helpers.wait_until, timeout=30.0, interval=0.02)


def test_panel_starts_shows_and_stops_a_mastodon_capture(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, MASTODON_TEST_TOKEN)  # the token comes from the environment
    with MastodonServer(statuses=400, rate=100, heartbeat=0.5) as server:
        p = streamkit.panel(source="mastodon", base_url=server.url, stream="hashtag", tag="python",
                            path=tmp_path / "data", refresh_interval=0.2, flush_seconds=0.2, progress=False,
                            timeout=2.0)
        try:
            assert {"instance", "stream", "tag", "list_id", "transport"} <= set(p.inputs)
            assert p.inputs["tag"].value == "python" and p.inputs["stream"].value == "hashtag"
            p._repr_mimebundle_()  # displayed, as the last expression of a cell: it refreshes
            p.buttons["start"].click()
            assert p.collector is not None and p.collector.running, p.message
            assert wait_until(lambda: int(re.search(r"data-rows='(\d+)'", p._table.value).group(1)) >= 3)
            assert "#python" in p._table.value and "@" in p._table.value  # text and account columns
            p.inputs["tag"].value = "rust"
            p.buttons["apply"].click()  # restarts into the same dataset with the new tag
            assert wait_until(lambda: any("tag=rust" in q for _p, q, _s in server.requests))
            # A new tag is a new filter, not a gap to fill from the old one's position.
            assert not [r for r in server.requests if r[0].startswith("/api/v1/timelines/")]
            p.buttons["stop"].click()
            assert not p.collector.running
        finally:
            p.close()
    df = streamkit.read(tmp_path / "data")
    assert len(df) and {"python", "rust"} & set(df["hashtags"].explode())
    assert MASTODON_TEST_TOKEN not in (tmp_path / "data" / "streamkit.json").read_text()


def test_a_token_given_to_collect_survives_apply_in_the_panel(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)  # only the token passed to collect() can work
    with MastodonServer(statuses=400, rate=100, heartbeat=0.5, public_without_token=False) as server:
        c = streamkit.collect(source="mastodon", base_url=server.url, stream="hashtag", tag="python",
                              token=MASTODON_TEST_TOKEN, path=tmp_path / "data", flush_seconds=0.2,
                              progress=False, timeout=2.0)
        p = c.panel()
        try:
            assert "token" not in p.inputs and c.filter["token"] == "***"
            p.inputs["tag"].value = "rust"
            p.buttons["apply"].click()  # restarts with the same (never typed, never shown) token
            assert p.message.startswith("Filter applied"), p.message
            assert wait_until(lambda: any("tag=rust" in q for _p, q, _s in server.requests))
            assert wait_until(lambda: p.collector.stats.state == "streaming"), p.collector.stats
            p.buttons["stop"].click()
        finally:
            p.close()
            c.stop()
    assert MASTODON_TEST_TOKEN not in p.message + repr(p.collector) + str(p.collector.filter)
