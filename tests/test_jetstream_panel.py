"""The notebook panel drives a Jetstream capture: its inputs are the source's options."""

from __future__ import annotations

import functools
import re

import pytest

pytest.importorskip("ipywidgets")

import helpers

import streamkit  # noqa: E402
from streamkit.testing import JetstreamServer  # noqa: E402

wait_until = functools.partial(helpers.wait_until, timeout=30.0, interval=0.02)


def rows(p) -> int:
    return int(re.search(r"data-rows='(\d+)'", p._table.value).group(1))


def test_panel_starts_shows_applies_and_stops_a_jetstream_capture(tmp_path):
    with JetstreamServer(total=None, rate=400, seed=8) as server:
        p = streamkit.panel(source="jetstream", base_url=server.url, collections=["app.bsky.feed.post"],
                            keywords=["python"], path=tmp_path / "data", refresh_interval=0.2,
                            flush_seconds=0.2, progress=False, timeout=2.0)
        try:
            assert {"collections", "dids", "keywords", "cursor", "host", "max_message_size"} <= set(p.inputs)
            assert p.inputs["collections"].value == "app.bsky.feed.post" and p.inputs["keywords"].value == "python"
            p._repr_mimebundle_()  # displayed, as the last expression of a cell: it refreshes
            p.buttons["start"].click()
            assert p.collector is not None and p.collector.running, p.message
            assert wait_until(lambda: rows(p) >= 2)
            assert "did:plc:" in p._table.value and re.search("python", p._table.value, re.I)
            first = len(server.connections)
            p.inputs["keywords"].value = "climate"
            p.buttons["apply"].click()  # restarts into the same dataset, resuming from its position
            assert wait_until(lambda: len(server.connections) > first)
            resumed = server.connections[first]
            assert resumed.params["wantedCollections"] == ["app.bsky.feed.post"] and resumed.cursor is not None
            assert wait_until(lambda: "climate" in p.collector._endpoint.track)
            before = p.collector.stats.stored
            assert wait_until(lambda: p.collector.stats.stored > before)
            p.buttons["stop"].click()
            assert not p.collector.running
        finally:
            p.close()
    df = streamkit.read(tmp_path / "data")
    texts = df["text"].str.lower()
    assert len(df) and (texts.str.contains("python") | texts.str.contains("climate")).all()
    assert texts.str.contains("climate").any()
    keys = list(zip(df["did"], df["rkey"], df["rev"], strict=True))
    assert len(keys) == len(set(keys))
