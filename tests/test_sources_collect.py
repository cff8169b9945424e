"""collect() with an explicit endpoint/decoder: the path every non-v1.1 source takes."""

from __future__ import annotations

import json

import pytest
from helpers import wait_until

import streamkit
from streamkit.sources.twitter_v1 import TwitterV1Endpoint, TwitterV1Source
from streamkit.testing import FILTER_PATH, Fault, StreamServer

FAST = dict(timeout=0.5, retry_time=0.05, retry_420=0.1, snooze_time=0.02, snooze_time_cap=0.1)


class Replaying(TwitterV1Source):
    """A v1.1 decoder that pretends the source can resume after the largest id seen."""

    can_replay = True

    def position(self, messages):
        ids = [json.loads(m)["id"] for m in messages if m.startswith(b'{"created_at"')]
        return {"last_id": max(ids)} if ids else None


class Resumable(TwitterV1Endpoint):
    def __init__(self, url):
        super().__init__("POST", url, FILTER_PATH, {"track": "python"})
        self.resumed = []

    def resume_from(self, position):
        self.resumed.append(position)


def test_explicit_endpoint_and_decoder_store_everything_and_record_gaps(tmp_path):
    faults = [Fault.cut(after=50), Fault.http(503)]
    with StreamServer(statuses=200, notices=0.0, faults=faults) as server:
        ep = TwitterV1Endpoint("POST", server.url, FILTER_PATH, {"track": "python"})
        with streamkit.collect(endpoint=ep, decoder=TwitterV1Source(), auth=server.auth(),
                               path=tmp_path / "d", flush_seconds=0.2, **FAST) as c:
            assert c.wait_for(stored=200, timeout=30)
    df = streamkit.read(tmp_path / "d")
    assert sorted(df["id"]) == sorted(server.sent)
    manifest = json.loads((tmp_path / "d" / "streamkit.json").read_text())
    assert manifest["source_name"] == "twitter-v1.1" and manifest["items"] == "tweets"
    # v1.1 cannot resend what passed during the reconnect: the span is in the manifest
    assert len(manifest["gaps"]) == 1
    gap = manifest["gaps"][0]
    assert gap["reason"] == "reconnected" and gap["start"] <= gap["end"]


def test_resume_position_is_committed_and_handed_to_the_next_capture(tmp_path):
    path = tmp_path / "d"
    with StreamServer(statuses=120, notices=0.0) as server:
        ep = Resumable(server.url)
        with streamkit.collect(endpoint=ep, decoder=Replaying(), auth=server.auth(), path=path,
                               flush_seconds=0.2, **FAST) as c:
            assert c.wait_for(stored=120, timeout=30)
        checkpoint = json.loads((path / "_wal" / "checkpoint.json").read_text())
        assert checkpoint["position"] == {"last_id": max(server.sent)}
        assert ep.resumed == []  # a new dataset: nothing to resume from
        again = Resumable(server.url)
        with streamkit.collect(endpoint=again, decoder=Replaying(), auth=server.auth(), path=path,
                               flush_seconds=0.2, **FAST) as c:
            assert wait_until(lambda: c.stats.state == "streaming", timeout=30, interval=0.02)
    assert again.resumed == [{"last_id": max(server.sent)}]
    manifest = json.loads((path / "streamkit.json").read_text())
    assert manifest["gaps"] == []  # a source that replays leaves no gap


def test_endpoint_and_decoder_go_together_and_sources_do_not_mix(tmp_path):
    with pytest.raises(streamkit.ConfigError, match="together"):
        streamkit.Collector(endpoint=TwitterV1Endpoint("GET", "http://127.0.0.1:9", "/x", {}),
                            path=tmp_path / "x")

    class Other(TwitterV1Source):
        name = "other"

    streamkit.sink.DatasetWriter(tmp_path / "y")
    with pytest.raises(streamkit.SinkError, match="holds twitter-v1.1 data"):
        streamkit.sink.DatasetWriter(tmp_path / "y", decoder=Other())
