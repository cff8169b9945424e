"""Stream's shared reconnect loop driven by an Endpoint (the contract every source uses)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from test_streaming import FAST, Recorder, make_auth, wait_until

import streamkit
from streamkit.sources import Endpoint
from streamkit.sources.twitter_v1 import TwitterV1Endpoint
from streamkit.testing import FILTER_PATH, Fault, StreamServer


class Probe(TwitterV1Endpoint):
    """The v1.1 endpoint, recording what the reader thread asks of it."""

    def __init__(self, url, *, routine=False, fill=()):
        super().__init__("POST", url, FILTER_PATH, {"track": "python"})
        self.requests = 0
        self.observed = 0
        self.observer_threads = set()
        self.routine = routine
        self.closes = []
        self.fill = list(fill)
        self.fills = 0
        self.lock = threading.Lock()

    def request(self):
        if threading.current_thread().name.startswith("streamkit-reader"):
            self.requests += 1  # connection attempts (start() also asks, to check the URL)
        req = super().request()
        req.headers["X-Attempt"] = str(self.requests)
        return req

    def observe(self, messages):
        with self.lock:
            self.observed += len(messages)
        self.observer_threads.add(threading.current_thread().name)

    def routine_close(self, seconds_connected):
        self.closes.append(seconds_connected)
        return self.routine

    def gap_fill(self, session):
        self.fills += 1
        return [json.dumps(s).encode() for s in self.fill] if self.fills > 1 else []


def test_start_streams_from_the_endpoint_and_observes_every_message():
    with StreamServer(statuses=300, notices=0.0, faults=[Fault.cut(after=100)]) as server:
        ep = Probe(server.url)
        listener = Recorder()
        stream = streamkit.Stream(make_auth(), listener, endpoint=ep, **FAST)
        stream.start(is_async=True)
        assert wait_until(lambda: len(listener.statuses) >= 300)
        stream.disconnect()
    ids = [s.id for s in listener.statuses]
    assert len(ids) == len(set(ids)) == 300 and set(ids) == set(server.sent)
    # request() is asked again for every reconnect (the cut, and any stall after the end)
    assert ep.requests >= 2 and ep.requests == stream.stats.connects
    assert ep.observed >= 300
    assert all(name.startswith("streamkit-reader") for name in ep.observer_threads)


def test_routine_close_reconnects_at_once_without_counting_an_error():
    faults = [Fault.end(after=20), Fault.end(after=20), Fault.end(after=20)]
    with StreamServer(statuses=100, notices=0.0, faults=faults) as server:
        ep = Probe(server.url, routine=True)
        listener = Recorder()
        # a network-error back-off of 5 s would make this test time out
        stream = streamkit.Stream(make_auth(), listener, endpoint=ep,
                                  **{**FAST, "snooze_time": 5.0, "snooze_time_cap": 5.0})
        stream.start(is_async=True)
        assert wait_until(lambda: len(listener.statuses) >= 100, timeout=10)
        stream.disconnect()
    assert len(ep.closes) == 3
    assert stream.stats.network_errors == 0 and stream.stats.reconnects == 3


def test_a_clean_close_that_is_not_routine_backs_off_as_a_network_error():
    with StreamServer(statuses=40, notices=0.0, faults=[Fault.end(after=20)]) as server:
        ep = Probe(server.url, routine=False)
        listener = Recorder()
        stream = streamkit.Stream(make_auth(), listener, endpoint=ep, **FAST)
        stream.start(is_async=True)
        assert wait_until(lambda: len(listener.statuses) >= 40)
        stream.disconnect()
    assert stream.stats.network_errors == 1 and len(ep.closes) == 1


def test_gap_fill_messages_are_delivered_after_a_reconnect():
    extra = {"id": 7, "id_str": "7", "text": "filled in", "in_reply_to_status_id": None,
             "user": {"id": 1, "screen_name": "gap"}}
    with StreamServer(statuses=60, notices=0.0, faults=[Fault.cut(after=30)]) as server:
        ep = Probe(server.url, fill=[extra])
        listener = Recorder()
        stream = streamkit.Stream(make_auth(), listener, endpoint=ep, **FAST)
        stream.start(is_async=True)
        assert wait_until(lambda: len(listener.statuses) >= 61)
        stream.disconnect()
    assert [s.id for s in listener.statuses].count(7) == 1
    assert ep.fills == 2  # once per connection; the first had nothing to fill


def test_start_without_an_endpoint_and_filter_on_a_foreign_endpoint_are_refused():
    class Other(Endpoint):
        name = "other"

        def request(self):
            return streamkit.sources.Request("GET", "http://127.0.0.1:9/x")

    with pytest.raises(streamkit.ConfigError, match="no endpoint"):
        streamkit.Stream(None, streamkit.StreamListener()).start()
    stream = streamkit.Stream(None, streamkit.StreamListener(), endpoint=Other())
    with pytest.raises(streamkit.ConfigError, match="call start"):
        stream.filter(track=["x"])
    with pytest.raises(streamkit.ConfigError, match="Endpoint"):
        streamkit.Stream(None, streamkit.StreamListener(), endpoint="wss://example.org")


def test_plain_http_and_ws_endpoints_are_refused_off_loopback():
    class Remote(Endpoint):
        name = "remote"

        def __init__(self, url):
            self.url = url

        def request(self):
            return streamkit.sources.Request("GET", self.url)

    for url in ("http://example.org/stream", "ws://example.org/subscribe"):
        stream = streamkit.Stream(None, streamkit.StreamListener(), endpoint=Remote(url))
        with pytest.raises(streamkit.ConfigError, match="http"):
            stream.start(is_async=True)
        assert not stream.running
    time.sleep(0)  # nothing was started: the leak check sees no thread
