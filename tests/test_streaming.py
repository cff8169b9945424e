"""Stream and StreamListener over real local HTTP, faults included."""

from __future__ import annotations

import threading
import time

import pytest

import streamkit
from streamkit.testing import TEST_CREDENTIALS as C
from streamkit.testing import Fault, StreamServer

FAST = dict(timeout=0.5, retry_time=0.05, retry_420=0.1, snooze_time=0.02, snooze_time_cap=0.1)


def make_auth(consumer_secret=C["consumer_secret"]):
    auth = streamkit.OAuthHandler(C["consumer_key"], consumer_secret)
    auth.set_access_token(C["access_token"], C["access_token_secret"])
    return auth


class Recorder(streamkit.StreamListener):
    """Records every callback; stops after `stop_after` statuses."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.calls = []
        self.statuses = []
        self.stop_after = stop_after
        self.threads = set()
        self.lock = threading.Lock()

    def _rec(self, name, *args):
        self.threads.add(threading.current_thread().name)
        with self.lock:
            self.calls.append((name, args))

    def names(self):
        return [c[0] for c in self.calls]

    def on_connect(self):
        self._rec("on_connect")

    def on_status(self, status):
        self._rec("on_status", status.id)
        self.statuses.append(status)
        if self.stop_after is not None and len(self.statuses) >= self.stop_after:
            return False

    def on_delete(self, status_id, user_id):
        self._rec("on_delete", status_id, user_id)

    def on_limit(self, track):
        self._rec("on_limit", track)

    def on_scrub_geo(self, notice):
        self._rec("on_scrub_geo", notice)

    def on_status_withheld(self, notice):
        self._rec("on_status_withheld", notice)

    def on_user_withheld(self, notice):
        self._rec("on_user_withheld", notice)

    def on_disconnect(self, notice):
        self._rec("on_disconnect", notice)

    def on_warning(self, notice):
        self._rec("on_warning", notice)

    def keep_alive(self):
        self._rec("keep_alive")

    def on_timeout(self):
        self._rec("on_timeout")

    def on_error(self, status_code):
        self._rec("on_error", status_code)
        return super().on_error(status_code)

    def on_exception(self, exception):
        self._rec("on_exception", exception)


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def run_async(server, listener, **kwargs):
    options = {**FAST, **kwargs.pop("options", {})}
    stream = streamkit.Stream(make_auth(), listener, base_url=server.url, **options)
    stream.filter(track=["python"], is_async=True, **kwargs)
    return stream


def test_tutorial_shape_sync_stop_from_listener():
    with StreamServer(statuses=50) as server:
        listener = Recorder(stop_after=10)
        stream = streamkit.Stream(auth=streamkit.API(make_auth()).auth, listener=listener, base_url=server.url)
        stream.filter(track=["python"])
        assert not stream.running
        assert len(listener.statuses) == 10
        assert listener.names()[0] == "on_connect"
        assert all("python" in s.full_text.lower() or s.entities for s in listener.statuses)


def test_every_status_arrives_exactly_once_across_faults():
    faults = [
        Fault.cut(after=150),
        Fault.http(503),
        Fault.http(420),
        Fault.stall(after=80, seconds=2.0),
        Fault.cut(after=5),
        Fault.disconnect(after=30, code=4),
        Fault.end(after=40),
        Fault.cut(after=0),
        Fault.garbage(after=20, kind="malformed_json"),  # this connection then goes on
    ]
    with StreamServer(statuses=1500, faults=faults, notices=0.0) as server:
        listener = Recorder()
        stream = run_async(server, listener)
        assert wait_until(lambda: len(listener.statuses) >= 1500, timeout=30)
        stream.disconnect()
        got = [s.id for s in listener.statuses]
        assert len(got) == len(set(got)) == 1500
        assert set(got) == set(server.sent)
        stats = stream.stats
        assert stats.reconnects == 6  # 9 connections minus the two HTTP errors, minus the first
        assert stats.stalls == 1
        assert stats.http_errors == 2
        assert stats.rejected.get("malformed_json") == 1
        names = listener.names()
        assert names.count("on_error") == 2 and names.count("on_timeout") == 1
        assert names.count("on_disconnect") == 1
        # every callback ran on one thread, the dispatch thread, never the reader
        assert len(listener.threads) == 1 and listener.threads.pop().startswith("streamkit-stream")


@pytest.mark.parametrize("kind, reason", [("invalid_utf8", "invalid_utf8"), ("bad_length", "length_mismatches")])
def test_bad_input_is_counted_and_the_stream_goes_on(kind, reason):
    with StreamServer(statuses=100, faults=[Fault.garbage(after=10, kind=kind)], notices=0.0) as server:
        listener = Recorder(stop_after=100)
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url, **FAST)
        stream.filter(track=["python"])
        if reason == "length_mismatches":
            assert stream.stats.length_mismatches >= 1 and not stream.stats.rejected
        else:
            assert stream.stats.rejected.get(reason, 0) >= 1
        got = [s.id for s in listener.statuses]
        assert len(got) == len(set(got))
        # The line break is authoritative: a status behind a wrong length prefix is still
        # recovered whole (the server does not count that one as a status it sent).
        extra = 1 if kind == "bad_length" else 0
        assert set(server.sent[: 100 - extra]) <= set(got)
        assert len(set(got) - set(server.sent)) == extra


def test_notices_reach_their_callbacks():
    with StreamServer(statuses=3000, notices=0.3, seed=3) as server:
        listener = Recorder()
        stream = run_async(server, listener, stall_warnings=True)
        assert wait_until(lambda: len(listener.statuses) >= 3000, timeout=30)
        stream.disconnect()
        names = set(listener.names())
        for name in ("on_delete", "on_limit", "on_scrub_geo", "on_status_withheld", "on_user_withheld", "on_warning"):
            assert name in names, name
        sent_kinds = {next(iter(n)) for n in server.sent_notices}
        deletes = [c[1] for c in listener.calls if c[0] == "on_delete"]
        assert all(isinstance(sid, int) and isinstance(uid, int) for sid, uid in deletes)
        assert "delete" in sent_kinds
        warning = next(c[1][0] for c in listener.calls if c[0] == "on_warning")
        assert warning["code"] == "FALLING_BEHIND"


def test_keep_alives_and_stall_detection():
    with StreamServer(statuses=0, keepalive_interval=0.05) as server:
        listener = Recorder()
        stream = run_async(server, listener, options={"timeout": 0.4})
        assert wait_until(lambda: listener.names().count("keep_alive") >= 5, timeout=5)
        # keep-alives count as data: no stall while they arrive
        time.sleep(0.6)
        assert stream.stats.stalls == 0
        stream.disconnect()


def test_on_error_false_stops_like_the_tutorial():
    class Tutorial(streamkit.StreamListener):
        def __init__(self):
            super().__init__()
            self.codes = []

        def on_error(self, status_code):
            self.codes.append(status_code)
            if status_code == 420:
                return False

    with StreamServer(faults=[Fault.http(420)]) as server:
        listener = Tutorial()
        stream = streamkit.Stream(auth=make_auth(), listener=listener, base_url=server.url)
        stream.filter(track=["python"], is_async=True)
        assert stream.thread is not None and stream.thread.name.startswith("streamkit-stream")
        assert stream.join(5)
        assert listener.codes == [420]
        assert not stream.running
        assert isinstance(stream.exception, streamkit.RateLimited)


def test_async_keyword_spelling_works():
    with StreamServer(statuses=5) as server:
        listener = Recorder(stop_after=5)
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url)
        stream.filter(track=["python"], **{"async": True})
        assert stream.join(10)
        assert len(listener.statuses) == 5


def test_bad_credentials_stop_with_a_typed_error():
    with StreamServer() as server:
        stream = streamkit.Stream(make_auth("wrong-secret"), Recorder(), base_url=server.url)
        with pytest.raises(streamkit.AuthError) as info:
            stream.filter(track=["python"])
        assert info.value.status_code == 401
        message = str(info.value)
        assert "credentials" in message and "clock" in message
        assert "wrong-secret" not in message and C["access_token_secret"] not in message


@pytest.mark.parametrize("code", [403, 404, 406, 413, 416])
def test_unfixable_http_errors_stop(code):
    with StreamServer(faults=[Fault.http(code)]) as server:
        listener = Recorder()
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url, **FAST)
        with pytest.raises(streamkit.HTTPStatusError) as info:
            stream.filter(track=["python"])
        assert info.value.status_code == code
        assert len(server.requests) == 1


def test_retryable_errors_back_off_exponentially_end_to_end():
    faults = [Fault.http(503), Fault.http(503), Fault.http(503)]
    with StreamServer(statuses=3, faults=faults) as server:
        listener = Recorder(stop_after=3)
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url, retry_time=0.2, retry_time_cap=10)
        stream.filter(track=["python"])
        times = [r.time for r in server.requests]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert len(gaps) == 3
        for gap, expected in zip(gaps, [0.2, 0.4, 0.8], strict=True):
            assert expected <= gap < expected + 0.5


def test_retry_count_gives_up():
    with StreamServer(faults=[Fault.http(503)] * 5) as server:
        stream = streamkit.Stream(make_auth(), Recorder(), base_url=server.url, retry_count=2, retry_time=0.01)
        with pytest.raises(streamkit.HTTPStatusError, match="gave up after 3"):
            stream.filter(track=["python"])
        assert len(server.requests) == 3


def test_exception_in_listener_reaches_on_exception_and_the_caller():
    class Boom(Recorder):
        def on_status(self, status):
            raise ValueError("bug in user code")

    with StreamServer(statuses=5) as server:
        listener = Boom()
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url)
        stream.filter(track=["python"], is_async=True)
        assert stream.join(10)
        assert isinstance(stream.exception, ValueError)
        assert "on_exception" in listener.names()
    # the synchronous form re-raises it
    with StreamServer(statuses=5) as server:
        stream2 = streamkit.Stream(make_auth(), Boom(), base_url=server.url)
        with pytest.raises(ValueError, match="bug in user code"):
            stream2.filter(track=["python"])
        assert not stream2.running


def test_disconnect_is_prompt_on_a_silent_stream_and_mid_backoff():
    with StreamServer(statuses=0, keepalive_interval=60) as server:
        stream = streamkit.Stream(make_auth(), Recorder(), base_url=server.url, timeout=60)
        stream.filter(track=["python"], is_async=True)
        assert wait_until(lambda: stream.stats.state == "streaming")
        t0 = time.monotonic()
        stream.disconnect()
        assert time.monotonic() - t0 < 1.0
        assert not stream.running and not stream.thread.is_alive()

    with StreamServer(faults=[Fault.http(420)]) as server:
        stream = streamkit.Stream(make_auth(), Recorder(), base_url=server.url)  # 60 s back-off
        stream.filter(track=["python"], is_async=True)
        assert wait_until(lambda: stream.stats.state == "backing off")
        assert stream.stats.backoff_until > time.time() + 30
        t0 = time.monotonic()
        stream.disconnect()
        assert time.monotonic() - t0 < 1.0
        assert not stream.thread.is_alive()


def test_unicode_track_and_text():
    with StreamServer(statuses=30, seed=7) as server:
        listener = Recorder(stop_after=30)
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url)
        stream.filter(track=["café", "東京"])
        texts = " ".join(s.full_text.lower() for s in listener.statuses)
        assert "café" in texts or "東京" in texts
        assert server.requests[-1].params["track"] == ["café,東京"]


def test_sample_endpoint():
    with StreamServer(statuses=20) as server:
        listener = Recorder(stop_after=20)
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url)
        stream.sample(languages=["en"])
        assert len(listener.statuses) == 20
        assert server.requests[-1].method == "GET"


def test_oversized_message_is_skipped():
    with StreamServer(statuses=20, faults=[Fault.garbage(after=5, kind="oversized")]) as server:
        listener = Recorder(stop_after=20)
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url, max_message_bytes=1 << 20)
        stream.filter(track=["python"])
        assert stream.stats.rejected.get("oversized") == 1
        assert len(listener.statuses) == 20


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "at least one of track"),
        ({"track": ["x" * 61]}, "1-60 bytes"),
        ({"track": ["é" * 31]}, "62 bytes"),
        ({"track": [str(i) for i in range(401)]}, "at most 400"),
        ({"track": ["a,b"]}, "comma"),
        ({"follow": ["@ada"]}, "numeric user ids"),
        ({"follow": list(range(1, 5002))}, "at most 5,000"),
        ({"locations": [1, 2, 3]}, "groups of 4"),
        ({"locations": [10, 10, 0, 20]}, "south-west"),
        ({"locations": [-200, 0, 0, 10]}, "out of range"),
        ({"locations": [0, 0, 1, 1] * 26}, "at most 25"),
        ({"track": ["a"], "filter_level": "high"}, "filter_level"),
        ({"track": ["a"], "languages": ["en us"]}, "BCP 47"),
        ({"track": ["a"], "bogus": 1}, "unexpected"),
    ],
)
def test_parameters_are_checked_before_connecting(kwargs, match):
    stream = streamkit.Stream(make_auth(), Recorder(), base_url="http://127.0.0.1:9")
    with pytest.raises(streamkit.ConfigError, match=match):
        stream.filter(**kwargs)
    assert not stream.running and stream._reader is None


def test_http_refused_for_remote_hosts_and_tls_warning():
    with pytest.raises(streamkit.ConfigError, match="unencrypted"):
        streamkit.Stream(make_auth(), Recorder(), base_url="http://stream.example.com")
    with pytest.warns(RuntimeWarning, match="verification is OFF"):
        streamkit.Stream(make_auth(), Recorder(), base_url="https://stream.example.com", verify=False)
    for url in ("http://localhost:1", "http://[::1]:1", "http://127.0.0.5:1"):
        streamkit.Stream(make_auth(), Recorder(), base_url=url)


def test_stream_refuses_to_start_twice():
    with StreamServer(statuses=0) as server:
        stream = run_async(server, Recorder())
        with pytest.raises(streamkit.StreamError, match="already connected"):
            stream.filter(track=["x"])
        stream.disconnect()


def test_network_errors_back_off_linearly_when_nothing_listens():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    stream = streamkit.Stream(make_auth(), Recorder(), base_url=f"http://127.0.0.1:{port}", snooze_time=0.05)
    stream.filter(track=["python"], is_async=True)
    assert wait_until(lambda: stream.stats.network_errors >= 4, timeout=5)
    stream.disconnect()
    assert stream.stats.connects == 0
    assert "could not connect" in stream.stats.last_error


def test_user_stream_messages_reach_their_callbacks():
    class UserStream(Recorder):
        def on_event(self, status):
            self._rec("on_event", status.event)

        def on_direct_message(self, status):
            self._rec("on_direct_message", status.direct_message.text)

        def on_friends(self, friends):
            self._rec("on_friends", friends)

    injected = [
        {"friends": [1, 2, 3]},
        {"event": "favorite", "source": {"id": 1}, "target": {"id": 2}, "created_at": "Wed Oct 10 20:19:24 +0000 2018"},
        {"direct_message": {"id": 5, "text": "hello", "sender_id": 1}},
        {"unheard_of": {"x": 1}},  # unknown kinds are logged, not fatal
    ]
    with StreamServer(statuses=10, notices=0.0, faults=[Fault.inject(after=3, messages=injected)]) as server:
        listener = UserStream(stop_after=10)
        stream = streamkit.Stream(make_auth(), listener, base_url=server.url)
        stream.filter(track=["python"])
    calls = {c[0]: c[1] for c in listener.calls}
    assert calls["on_friends"] == ([1, 2, 3],)
    assert calls["on_event"] == ("favorite",)
    assert calls["on_direct_message"] == ("hello",)
    assert stream.exception is None


# -- de-chunking the body over large reads (streamkit._http.dechunk) ----------------------------


def _chunked(body: bytes, sizes, rng) -> bytes:
    """``body`` as an HTTP/1.1 chunked body, chunk sizes drawn from ``sizes``, with extensions."""
    out, at = [], 0
    while at < len(body):
        n = min(rng.choice(sizes), len(body) - at)
        ext = b";name=value" if rng.random() < 0.2 else b""
        out.append(b"%x%s\r\n%s\r\n" % (n, ext, body[at : at + n]))
        at += n
    return b"".join(out) + b"0\r\n\r\n"


def test_dechunk_restores_the_body_whatever_the_chunk_and_read_borders():
    import random

    from streamkit._http import dechunk

    rng = random.Random(5)
    for _ in range(300):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
        wire = _chunked(body, [1, 2, 7, 100, 4096], rng)
        cuts = sorted(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.randrange(0, 40))))
        pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
        reads = iter(pieces)
        out = list(dechunk(lambda n, it=reads: next(it), 1 << 16))
        assert b"".join(out) == body
        assert all(out), "no empty pieces"
        assert len(out) <= len(pieces), "at most one piece per read"


@pytest.mark.parametrize("wire, message", [
    (b"5\r\nhel", "closed the connection inside an HTTP chunk"),
    (b"zz\r\nhello\r\n", "invalid HTTP chunk length"),
    (b"5\r\nhelloXX", "does not end with CRLF"),
    (b"5" * 5000, "chunk-size line is too long"),
])
def test_dechunk_reports_a_broken_body_as_a_network_error(wire, message):
    import urllib3

    from streamkit._http import NETWORK_ERRORS, dechunk

    reads = iter([wire, b""])
    with pytest.raises(urllib3.exceptions.ProtocolError, match=message) as info:
        list(dechunk(lambda n: next(reads), 1 << 16))
    assert isinstance(info.value, NETWORK_ERRORS)  # the stream reconnects, as for a cut


@pytest.mark.parametrize("chunk_bytes", [7, 1 << 20])
def test_tiny_and_huge_http_chunks_deliver_every_status_once(chunk_bytes):
    with StreamServer(statuses=400, notices=0.0, chunk_bytes=chunk_bytes, pool_size=100,
                      faults=[Fault.cut(after=150)]) as server:
        listener = Recorder()
        stream = run_async(server, listener)
        assert wait_until(lambda: len(listener.statuses) >= 400, timeout=30)
        stream.disconnect()
        got = [s.id for s in listener.statuses]
        assert len(got) == len(set(got)) == 400 and set(got) == set(server.sent)
        assert stream.stats.reconnects == 1  # the cut, read as a broken connection
