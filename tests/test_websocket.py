"""WebSocket: the pure framer (any split, fragments, control frames, size cap, protocol errors),
the handshake (accept key, HTTP errors instead of the upgrade), and Stream over a real
local WebSocket server (reconnect after a cut, a stall, a close frame; ping -> pong;
prompt disconnect)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from helpers import feed_in_pieces, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

import streamkit
from streamkit._exceptions import (
    AuthError,
    ConfigError,
    HTTPStatusError,
    ProtocolError,
    RateLimited,
)
from streamkit._websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WebSocketFramer,
    _mask,
    client_frame,
    encode_frame,
    open_websocket,
)
from streamkit.sources.base import Endpoint, Request
from streamkit.testing import WebSocketTestServer, WsFault
from streamkit.testing._httpd import read_request
from streamkit.testing._loopback import LoopbackServer
from streamkit.testing._websocket import ServerWebSocket, accept_upgrade

FAST = dict(timeout=0.5, retry_time=0.05, retry_420=0.1, snooze_time=0.02, snooze_time_cap=0.1)


def unframe(frame: bytes, masked: bool) -> tuple[int, bytes]:
    """(opcode, payload) of one complete frame (the reference decoder for the tests)."""
    b1 = frame[1]
    n, pos = b1 & 0x7F, 2
    if n == 126:
        n, pos = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, pos = int.from_bytes(frame[2:10], "big"), 10
    assert bool(b1 & 0x80) == masked
    if masked:
        key, pos = frame[pos : pos + 4], pos + 4
        return frame[0] & 0x0F, _mask(frame[pos : pos + n], key)
    return frame[0] & 0x0F, frame[pos : pos + n]


# -- the framer, property-based --------------------------------------------------------------

payloads = st.one_of(
    st.binary(max_size=200),
    st.integers(min_value=120, max_value=70_000).map(lambda n: bytes(i % 251 for i in range(n))),
)
messages_st = st.lists(
    st.tuples(payloads, st.integers(min_value=1, max_value=4), st.booleans(), st.booleans()),
    max_size=12,
)


def build_stream(specs, *, masked=False):
    """Frames for (payload, pieces, ping_between, binary) specs; returns (bytes, messages, pings)."""
    key = b"\x01\x02\x03\x04" if masked else None
    out, expected, pings = b"", [], []
    for i, (payload, pieces, ping_between, binary) in enumerate(specs):
        step = max(1, -(-len(payload) // pieces))
        chunks = [payload[j : j + step] for j in range(0, len(payload), step)] or [b""]
        for j, chunk in enumerate(chunks):
            opcode = (OP_BINARY if binary else OP_TEXT) if j == 0 else OP_CONTINUATION
            out += encode_frame(opcode, chunk, fin=j == len(chunks) - 1, mask_key=key)
            if ping_between and j < len(chunks) - 1:
                ping = f"ping {i}.{j}".encode()
                out += encode_frame(OP_PING, ping, mask_key=key)
                pings.append(ping)
        expected.append(payload)
    return out, expected, pings


@settings(max_examples=60, deadline=None)
@given(specs=messages_st, data=st.data())
def test_any_split_of_fragmented_messages_and_pings_round_trips(specs, data):
    body, expected, pings = build_stream(specs)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=max(0, len(body))), max_size=20))
    f = WebSocketFramer()
    assert feed_in_pieces(f, body, cuts) == expected
    assert f.pending_bytes == 0 and not f.closed
    assert f.stats.keepalives == len(pings) and f.stats.messages == len(expected)
    # every ping answered, in order, by a masked pong with the same payload
    assert [unframe(p, masked=True) for p in f.outgoing] == [(OP_PONG, p) for p in pings]


@settings(max_examples=30, deadline=None)
@given(specs=messages_st, data=st.data())
def test_server_role_reads_masked_client_frames(specs, data):
    body, expected, pings = build_stream(specs, masked=True)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=max(0, len(body))), max_size=10))
    f = WebSocketFramer(expect_masked=True)
    assert feed_in_pieces(f, body, cuts) == expected
    assert [unframe(p, masked=False) for p in f.outgoing] == [(OP_PONG, p) for p in pings]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=8),
    pieces=st.integers(min_value=1, max_value=5),
    cuts=st.lists(st.integers(min_value=0, max_value=30_000), max_size=15),
)
def test_oversized_messages_are_skipped_counted_and_never_buffered(sizes, pieces, cuts):
    cap = 1000
    specs = [(bytes([65 + i % 26]) * n, pieces, True, False) for i, n in enumerate(sizes)]
    body, _, _ = build_stream(specs)
    f = WebSocketFramer(cap)
    out, prev, held = [], 0, 0
    for c in sorted({c for c in cuts if c < len(body)}) + [len(body)]:
        out += f.feed(body[prev:c])
        held = max(held, f.pending_bytes)
        prev = c
    assert out == [p for p, *_ in specs if len(p) <= cap]
    assert f.stats.oversized == sum(len(p) > cap for p, *_ in specs)
    assert held <= cap + 14  # at most one allowed message and a header, never a big one


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=300))
def test_arbitrary_bytes_give_messages_or_protocol_error_only(data, cap):
    f = WebSocketFramer(cap)
    try:
        out = f.feed(data)
    except ProtocolError:
        return
    assert all(len(m) <= cap for m in out)
    assert f.pending_bytes <= cap + 14 + 125


def test_lengths_7_16_and_64_bit_at_their_boundaries():
    for n in (0, 125, 126, 65535, 65536, 70_001):
        payload = bytes(i % 7 for i in range(n))
        frame = encode_frame(OP_BINARY, payload)
        assert frame[1] == (n if n < 126 else 126 if n < 65536 else 127)
        f = WebSocketFramer()
        assert feed_in_pieces(f, frame, range(0, len(frame), 4093)) == [payload]


def test_close_frame_is_answered_and_later_bytes_ignored():
    f = WebSocketFramer()
    body = encode_frame(OP_TEXT, b"a") + encode_frame(OP_CLOSE, (1001).to_bytes(2, "big") + b"going away")
    assert f.feed(body + encode_frame(OP_TEXT, b"after")) == [b"a"]
    assert f.closed and f.close_code == 1001 and f.close_reason == "going away"
    assert [unframe(x, masked=True) for x in f.outgoing] == [(OP_CLOSE, (1001).to_bytes(2, "big"))]
    assert f.feed(encode_frame(OP_TEXT, b"more")) == []
    f.reset()
    assert not f.closed and not f.outgoing and f.feed(encode_frame(OP_TEXT, b"new")) == [b"new"]


def test_empty_close_and_pong_frames():
    f = WebSocketFramer()
    assert f.feed(encode_frame(OP_PONG, b"x") + encode_frame(OP_CLOSE)) == []
    assert f.pongs == 1 and f.closed and f.close_code is None
    assert unframe(f.outgoing[0], masked=True) == (OP_CLOSE, b"")


def test_pending_bytes_counts_a_begun_frame():
    f = WebSocketFramer()
    frame = encode_frame(OP_TEXT, b"x" * 300)
    f.feed(frame[:4])  # exactly the header: no payload yet, but a message has begun
    assert f.pending_bytes >= 1
    f.feed(frame[4:100])
    assert f.pending_bytes == 96
    assert f.feed(frame[100:]) == [b"x" * 300] and f.pending_bytes == 0


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (bytes([0x80 | 0x40 | OP_TEXT, 1]) + b"a", "reserved bits"),
        (bytes([0x80 | 0x3, 0]), "reserved opcode"),
        (bytes([0x80 | 0xB, 0]), "reserved opcode"),
        (encode_frame(OP_TEXT, b"a", mask_key=b"abcd"), "masked"),
        (encode_frame(OP_PING, b"a", fin=False), "fragmented"),
        (bytes([0x80 | OP_PING, 126]) + (126).to_bytes(2, "big") + bytes(126), "control frame of 126"),
        (encode_frame(OP_CONTINUATION, b"a"), "no message started"),
        (encode_frame(OP_TEXT, b"a", fin=False) + encode_frame(OP_TEXT, b"b"), "inside a fragmented"),
        (bytes([0x80 | OP_BINARY, 127]) + (1 << 63).to_bytes(8, "big"), "top bit"),
        (encode_frame(OP_CLOSE, b"\x03"), "1-byte"),
        (encode_frame(OP_CLOSE, (1005).to_bytes(2, "big")), "invalid WebSocket close code 1005"),
        (encode_frame(OP_CLOSE, (999).to_bytes(2, "big")), "close code 999"),
    ],
)
def test_protocol_violations_raise_protocol_error(frame, words):
    with pytest.raises(ProtocolError, match=words):
        WebSocketFramer().feed(frame)


def test_server_role_refuses_unmasked_client_frames():
    with pytest.raises(ProtocolError, match="unmasked"):
        WebSocketFramer(expect_masked=True).feed(encode_frame(OP_TEXT, b"a"))


def test_client_frames_are_masked_with_fresh_keys():
    a, b = client_frame(OP_TEXT, b"same"), client_frame(OP_TEXT, b"same")
    assert unframe(a, masked=True) == unframe(b, masked=True) == (OP_TEXT, b"same")
    assert a[2:6] != b[2:6] or a[2:6] != client_frame(OP_TEXT, b"same")[2:6]


# -- the handshake ---------------------------------------------------------------------------

def test_wrong_accept_key_is_a_protocol_error():
    with WebSocketTestServer(faults=[WsFault.bad_accept()]) as server:
        with pytest.raises(ProtocolError, match="Sec-WebSocket-Accept"):
            open_websocket(server.url + "/x")


@pytest.mark.parametrize(
    ("status", "exc", "words"),
    [(401, AuthError, "credentials"), (403, AuthError, "denied"), (429, RateLimited, "too many"),
     (420, RateLimited, "rate limited"), (503, HTTPStatusError, "back-off"), (404, HTTPStatusError, "check the URL")],
)
def test_http_errors_instead_of_the_upgrade(status, exc, words):
    with WebSocketTestServer(faults=[WsFault.http(status, retry_after=7)]) as server:
        with pytest.raises(exc) as info:
            open_websocket(server.url + "/subscribe?access_token=SECRET-TOKEN")
    err = info.value
    assert type(err) is exc and err.status_code == status
    text = str(err)
    assert f"HTTP {status}" in text and words in text and "/subscribe" in text
    assert "test server fault" in text  # the server's body is quoted
    assert "SECRET-TOKEN" not in text  # the query may carry a token: never in a message
    if exc is RateLimited:
        assert err.retry_after == 7.0


def test_not_a_websocket_url_and_refused_connection():
    with pytest.raises(ConfigError, match="ws:// or wss://"):
        open_websocket("http://127.0.0.1:1/")
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError):
        open_websocket(f"ws://127.0.0.1:{port}/", connect_timeout=2)


def test_not_http_at_all_is_a_protocol_error():
    class Garbage(LoopbackServer):
        def _handle(self, sock, index):
            read_request(sock)
            sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    with Garbage() as server:
        with pytest.raises(ProtocolError, match="did not answer"):
            open_websocket(f"ws://{server.host}:{server.port}/")


def test_headers_are_sent_and_leftover_bytes_are_kept():
    class Eager(LoopbackServer):
        """Sends the 101 and the first frames in one write (recv() must hand them out)."""

        def _handle(self, sock, index):
            req = read_request(sock)
            self.headers = req.headers
            ws = accept_upgrade(sock, req)
            ws.send("first")
            ws.poll(2.0)
            self.got = ws.received

    with Eager() as server:
        with open_websocket(f"ws://{server.host}:{server.port}/p?q=1",
                            headers={"Authorization": "Bearer abc", "User-Agent": "me/1"}) as ws:
            f, got = WebSocketFramer(), []
            while not got:
                got += f.feed(ws.recv())
            ws.send_text("hello server")
            time.sleep(0.2)
    assert got == [b"first"]
    assert server.headers["authorization"] == "Bearer abc" and server.headers["user-agent"] == "me/1"
    assert server.got == [b"hello server"]


def test_close_sends_a_close_frame_once():
    with WebSocketTestServer(messages=[b"x"]) as server:
        ws = open_websocket(server.url)
        ws.close()
        ws.close()  # idempotent
        assert ws.recv() == b""
        deadline = time.monotonic() + 3
        while not server.client_close_codes and time.monotonic() < deadline:
            time.sleep(0.02)
    assert server.client_close_codes == [1000]


# -- Stream over WebSocket --------------------------------------------------------------------

class Numbered(Endpoint):
    """Resumes with ?from=<next message number>, as a cursor-based source does."""

    name = "ws-test"
    transport = "websocket"

    def __init__(self, url, send=()):
        self.url = url
        self.next = 0
        self.send = list(send)

    def request(self):
        return Request("GET", self.url + "/stream", params={"from": str(self.next)}, send=list(self.send))

    def framer(self, max_message_bytes):
        return WebSocketFramer(max_message_bytes)

    def observe(self, messages):
        self.next = json.loads(messages[-1])["n"] + 1


class Raw(streamkit.StreamListener):
    raw_bytes = True

    def __init__(self):
        super().__init__()
        self.seen = []
        self.errors = []
        self.timeouts = 0
        self.lock = threading.Lock()

    def on_data(self, raw):
        with self.lock:
            self.seen.append(json.loads(raw)["n"])

    def on_error(self, status_code):
        self.errors.append(status_code)
        return False if status_code == 401 else None

    def on_timeout(self):
        self.timeouts += 1


def numbered(n):
    return [json.dumps({"n": i, "text": "x" * (i % 300)}).encode() for i in range(n)]


def wait_for(predicate, timeout=15.0):
    return wait_until(predicate, timeout, 0.02)


def test_stream_resumes_across_cut_stall_close_and_ping_without_gaps_or_duplicates():
    faults = [WsFault.cut(after=40), WsFault.stall(after=40, seconds=1.5), WsFault.close(after=30),
              WsFault.end(after=25), WsFault.http(503), WsFault.ping(after=10)]
    with WebSocketTestServer(messages=numbered(300), faults=faults) as server:
        ep = Numbered(server.url, send=['{"type": "hello"}'])
        listener = Raw()
        stream = streamkit.Stream(None, listener, endpoint=ep, **FAST)
        stream.start(is_async=True)
        assert wait_for(lambda: len(listener.seen) >= 300)
        stream.disconnect()
        assert wait_for(lambda: server.pongs >= 1, timeout=3)
    assert listener.seen == list(range(300))  # in order, no gap, no duplicate
    assert sorted(set(server.sent)) == list(range(300))
    s = stream.stats
    assert s.connects >= 5 and s.reconnects >= 4  # the 503 is no connection
    assert s.stalls >= 1 and listener.timeouts >= 1
    assert s.incomplete >= 1  # the cut fell inside a frame
    assert s.keepalives >= 1  # the ping
    assert s.http_errors == 1 and listener.errors == [503]
    assert server.received.count(b'{"type": "hello"}') >= 5  # req.send on every connection
    starts = [int(r.params["from"][0]) for r in server.requests]
    assert starts[0] == 0 and starts == sorted(starts)  # resumed, never rewound


def test_ping_from_an_idle_server_is_answered_with_pong():
    with WebSocketTestServer(messages=numbered(3), ping_every=0.1) as server:
        listener = Raw()
        stream = streamkit.Stream(None, listener, endpoint=Numbered(server.url), **{**FAST, "timeout": 5.0})
        stream.start(is_async=True)
        assert wait_for(lambda: stream.stats.keepalives >= 3)
        stream.disconnect()
        assert wait_for(lambda: server.pongs >= 3, timeout=3)
    assert listener.seen == [0, 1, 2] and stream.stats.reconnects == 0


def test_disconnect_is_prompt_on_a_silent_connection_and_in_back_off():
    with WebSocketTestServer(messages=numbered(2)) as server:
        stream = streamkit.Stream(None, Raw(), endpoint=Numbered(server.url), **{**FAST, "timeout": 60.0})
        stream.start(is_async=True)
        assert wait_for(lambda: stream.stats.messages >= 2)
        t0 = time.monotonic()
        stream.disconnect()
        assert time.monotonic() - t0 < 2.0 and not stream.running
    with WebSocketTestServer(faults=[WsFault.http(503)]) as server:
        stream = streamkit.Stream(None, Raw(), endpoint=Numbered(server.url),
                                  **{**FAST, "retry_time": 60.0, "retry_time_cap": 60.0})
        stream.start(is_async=True)
        assert wait_for(lambda: stream.stats.state == "backing off")
        t0 = time.monotonic()
        stream.disconnect()
        assert time.monotonic() - t0 < 2.0 and not stream.running


def test_auth_error_reaches_on_error_and_ends_the_stream():
    with WebSocketTestServer(faults=[WsFault.http(401)]) as server:
        listener = Raw()
        stream = streamkit.Stream(None, listener, endpoint=Numbered(server.url), **FAST)
        stream.start(is_async=True)
        assert stream.join(10)
    assert listener.errors == [401]
    assert isinstance(stream.exception, AuthError) and "HTTP 401" in str(stream.exception)


def test_protocol_error_mid_stream_reconnects():
    class Broken(LoopbackServer):
        scheme = "ws"

        def __init__(self):
            super().__init__()
            self.connections = 0
            self.close_codes = []

        def _handle(self, sock, index):
            req = read_request(sock)
            ws = accept_upgrade(sock, req)
            self.connections += 1
            start = int(req.query.partition("from=")[2] or 0)
            for i in range(start, start + 5):
                ws.send(json.dumps({"n": i}))
            if self.connections == 1:
                ws.send_raw(encode_frame(OP_TEXT, b"masked!", mask_key=b"abcd"))  # servers must not mask
            while ws.poll(0.05) and not self._stop_event.is_set():
                pass
            self.close_codes.append(ws.close_code)

    with Broken() as server:
        listener = Raw()
        stream = streamkit.Stream(None, listener, endpoint=Numbered(server.url), **{**FAST, "timeout": 10.0})
        stream.start(is_async=True)
        assert wait_for(lambda: len(listener.seen) >= 10)
        stream.disconnect()
    # the 5 good messages before the bad frame are delivered; the client fails the
    # connection with close 1002 (protocol error) and resumes after them
    assert listener.seen == list(range(10))
    assert server.close_codes[0] == 1002 and stream.stats.reconnects >= 1


def test_protocol_error_after_good_messages_delivers_them_first():
    f = WebSocketFramer()
    bad = encode_frame(OP_TEXT, b"x", mask_key=b"abcd")
    assert f.feed(encode_frame(OP_TEXT, b"good") + bad) == [b"good"]
    assert f.closed and isinstance(f.error, ProtocolError)
    assert unframe(f.outgoing[0], masked=True) == (OP_CLOSE, (1002).to_bytes(2, "big"))
    with pytest.raises(ProtocolError, match="masked"):
        f.feed(b"")
    with pytest.raises(ProtocolError, match="masked"):  # alone in a feed: raised at once
        WebSocketFramer().feed(bad)


def test_server_websocket_fragmented_send_with_ping_between():
    class Frag(LoopbackServer):
        def _handle(self, sock, index):
            ws: ServerWebSocket = accept_upgrade(sock, read_request(sock))
            ws.send_fragmented(b'{"n": 0, "text": "fragmented"}', 3, ping_between=True)
            ws.poll(2.0)
            self.pongs = ws.pongs

    with Frag() as server:
        with open_websocket(f"ws://{server.host}:{server.port}/") as ws:
            f, got = WebSocketFramer(), []
            while not got:
                got += f.feed(ws.recv())
            for frame in f.outgoing:
                ws.send_raw(frame)
            time.sleep(0.2)
    assert got == [b'{"n": 0, "text": "fragmented"}'] and f.stats.keepalives == 1
    assert server.pongs == 1
