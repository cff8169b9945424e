"""Server-sent events: the pure framer, the event parser and the test-server side.

The framer must give the same events whatever the chunking, agree with a literal reading
of the HTML standard's parsing steps, keep memory bounded on oversized events, and
round-trip what the test servers write.
"""

from __future__ import annotations

import json
import re

import pytest
from helpers import feed_in_pieces
from hypothesis import given, settings
from hypothesis import strategies as st

from streamkit._sse import SSEEvent, SSEFramer, parse_event
from streamkit.testing._sse import LAST_CHUNK, chunk, sse_comment, sse_event, sse_response_head


def reference_events(stream: bytes) -> list[tuple[str, str | None, bytes, int | None]]:
    """A literal reading of the standard's "interpret an event stream" (whole input at once).

    Returns, per dispatched event, (type, the block's own id or None, data, retry).
    """
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    lines = re.split(rb"\r\n|\r|\n", stream)
    lines.pop()  # the text after the last line end is an incomplete line: never processed
    out = []
    data, etype, eid, retry = b"", b"", None, None
    for line in lines:
        if line == b"":
            if data:
                out.append((etype.decode("utf-8", "replace") or "message",
                            None if eid is None else eid.decode("utf-8", "replace"),
                            data[:-1], retry))
            data, etype, eid, retry = b"", b"", None, None
            continue
        if line.startswith(b":"):
            continue
        if b":" in line:
            name, value = line.split(b":", 1)
            if value.startswith(b" "):
                value = value[1:]
        else:
            name, value = line, b""
        if name == b"event":
            etype = value
        elif name == b"data":
            data += value + b"\n"
        elif name == b"id" and b"\x00" not in value:
            eid = value
        elif name == b"retry" and value and value.isdigit() and value.isascii():
            retry = int(value)
    return out


EOLS = st.sampled_from([b"\n", b"\r\n", b"\r"])
TEXT = st.binary(max_size=30).map(lambda b: re.sub(rb"[\r\n]", b"", b))
LINE = st.one_of(
    st.tuples(st.just(b"data"), st.sampled_from([b":", b": ", b""]), TEXT),
    st.tuples(st.sampled_from([b"event", b"id", b"retry", b"other", b"dat"]),
              st.sampled_from([b":", b": "]), TEXT),
    st.tuples(st.just(b"retry"), st.just(b": "), st.integers(0, 99999).map(lambda i: str(i).encode())),
    st.tuples(st.just(b""), st.just(b":"), TEXT),  # a comment
    st.just((b"", b"", b"")),  # a blank line: dispatch
).map(lambda t: t[0] + (t[1] if t[2] or t[1] != b"" else b"") + t[2])


@st.composite
def streams(draw):
    lines = draw(st.lists(LINE, max_size=40))
    eols = draw(st.lists(EOLS, min_size=len(lines), max_size=len(lines)))
    body = b"".join(line + eol for line, eol in zip(lines, eols, strict=True))
    if draw(st.booleans()):
        body += b"\n"  # end with a dispatch more often than not
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    return body


def framed(body, cuts=(), cap=1 << 20):
    f = SSEFramer(cap)
    blocks = feed_in_pieces(f, body, list(cuts))
    return f, [tuple(parse_event(b)) for b in blocks]


@settings(max_examples=300, deadline=None)
@given(streams(), st.data())
def test_framer_agrees_with_the_standard_for_any_split(body, data):
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    whole, events = framed(body)
    split, events_split = framed(body, cuts)
    assert events == reference_events(body)
    assert events_split == events
    assert split.stats == whole.stats
    assert split.pending_bytes == whole.pending_bytes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=60), st.one_of(st.none(), TEXT.map(lambda b: b.decode("latin-1"))),
                          st.one_of(st.none(), st.from_regex(r"[A-Za-z._]{1,12}", fullmatch=True))),
                min_size=1, max_size=10),
       EOLS, st.data())
def test_round_trip_from_the_test_server_side(events, eol, data):
    ids = [i.replace("\x00", "") if i is not None else None for _, i, _ in events]
    body = sse_comment("ok", eol=eol) + b"".join(
        sse_event(d, event=e, id=i, eol=eol) for (d, _, e), i in zip(events, ids, strict=True))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    f = SSEFramer()
    got = [parse_event(b) for b in feed_in_pieces(f, body, cuts)]
    want = [SSEEvent(e or "message", i, re.sub(r"\r\n|\r", "\n", d).encode(), None)
            for (d, _, e), i in zip(events, ids, strict=True)]
    assert got == want
    assert f.stats.keepalives == 1
    assert f.pending_bytes == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 120), min_size=1, max_size=15), st.integers(8, 80), st.data())
def test_oversized_events_are_skipped_counted_and_never_buffered_whole(sizes, cap, data):
    body = b"".join(sse_event("x" * n, id=str(k)) for k, n in enumerate(sizes))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=30))
    f = SSEFramer(cap)
    got = []
    prev = 0
    for c in sorted(set(cuts)) + [len(body)]:
        got += f.feed(body[prev:c])
        assert f.pending_bytes <= cap + (c - prev)
        prev = c
    block = [f"id: {k}\ndata: {'x' * n}".encode() for k, n in enumerate(sizes)]
    assert got == [b for b in block if len(b) <= cap]
    assert f.stats.oversized == sum(len(b) > cap for b in block)


def test_oversized_event_fed_a_byte_at_a_time_holds_at_most_the_cap():
    f = SSEFramer(100)
    body = sse_event("y" * 10_000) + sse_event("small")
    peak = 0
    out = []
    for i in range(len(body)):
        out += f.feed(body[i:i + 1])
        peak = max(peak, f.pending_bytes)
    assert out == [b"data: small"]
    assert peak <= 101
    assert f.stats.oversized == 1


def test_a_long_comment_is_not_an_oversized_event():
    f = SSEFramer(32)
    out = f.feed(b":" + b"c" * 100)
    out += f.feed(b"c" * 100 + b"\n\ndata: a\n\n")
    assert out == [b"data: a"]
    assert f.stats.oversized == 0
    assert f.stats.keepalives == 1


def test_comments_count_as_keepalives_and_are_left_out_of_events():
    f = SSEFramer()
    out = f.feed(b":ok\n\n: heartbeat\r\n\r\ndata: 1\n: in between\nid: 5\n\n")
    assert out == [b"data: 1\nid: 5"]
    assert f.stats.keepalives == 2
    assert f.stats.messages == 1


def test_blocks_without_data_are_not_dispatched():
    f = SSEFramer()
    assert f.feed(b"id: 9\n\nevent: x\nretry: 5\n\n\n\ndata\n\n") == [b"data"]
    assert f.stats.keepalives == 2  # two field-only blocks; bare blank lines are nothing
    assert parse_event(b"data") == SSEEvent("message", None, b"", None)


def test_crlf_split_between_feeds_is_one_line_end():
    f = SSEFramer()
    assert f.feed(b"data: a\r") == []
    assert f.feed(b"\n") == []  # the LF completes the CRLF: not a blank line
    assert f.feed(b"\r") == [b"data: a"]
    assert f.feed(b"\ndata: b\r\r") == [b"data: b"]


def test_lone_cr_line_ends():
    f = SSEFramer()
    assert f.feed(b"event: e\rdata: x\rdata: y\r\r") == [b"event: e\ndata: x\ndata: y"]
    assert parse_event(b"event: e\ndata: x\ndata: y").data == b"x\ny"


def test_bom_is_skipped_only_at_the_start_even_when_split():
    f = SSEFramer()
    assert f.feed(b"\xef") == []
    assert f.pending_bytes == 1
    # later, a BOM is part of the field name: "\ufeffdata" is an unknown field, not data
    assert f.feed(b"\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n") == [b"data: a"]
    assert f.stats.keepalives == 1
    f.reset()  # a new connection is a new stream: a BOM may open it again
    assert f.feed(b"\xef\xbb\xbfdata: c\n\n") == [b"data: c"]


def test_reset_drops_a_partial_event_and_pending_bytes_reports_it():
    f = SSEFramer()
    assert f.feed(b"id: 1\ndata: part") == []
    assert f.pending_bytes == len(b"id: 1") + len(b"data: part")  # the lines held, not their ends
    f.reset()
    assert f.pending_bytes == 0
    assert f.feed(b"\n\ndata: next\n\n") == [b"data: next"]


def test_an_event_the_stream_ends_in_is_never_delivered():
    f = SSEFramer()
    assert f.feed(b"data: complete\n\ndata: incomplete\n") == [b"data: complete"]
    assert f.pending_bytes > 0


def test_parse_event_field_rules():
    assert parse_event(b"data:x\ndata: y\ndata:  z") == SSEEvent("message", None, b"x\ny\n z", None)
    assert parse_event(b"event:\ndata: a").event == "message"
    assert parse_event(b"id: a\x00b\ndata: a").id is None
    assert parse_event(b"id\ndata: a").id == ""
    assert parse_event(b"retry: 1x\ndata: a").retry is None
    assert parse_event(b"retry: \xd9\xa3\ndata: a").retry is None  # non-ASCII digits
    assert parse_event(b"id: 1\nid: 2\ndata: a").id == "2"
    assert parse_event(b"Data: a\ndata: b").data == b"b"  # field names are case-sensitive
    assert parse_event(b"data: caf\xc3\xa9").data == "café".encode()
    wm = '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":5123}]'
    assert parse_event(f"event: message\nid: {wm}\ndata: {{}}".encode()).id == wm


def test_sse_event_rejects_what_the_wire_cannot_carry():
    with pytest.raises(ValueError, match="line break"):
        sse_event("x", id="a\nb")
    with pytest.raises(ValueError, match="line break"):
        sse_event("x", event="a\rb")
    with pytest.raises(ValueError, match="eol"):
        sse_event("x", eol=b"\n\n")
    with pytest.raises(ValueError, match="line break"):
        sse_comment("a\nb")


def test_sse_event_with_json_and_retry():
    payload = json.dumps({"meta": {"id": "abc"}, "title": "Main Page"})
    raw = sse_event(payload, id="[1]", event="message", retry=2000, eol=b"\r\n")
    f = SSEFramer()
    (block,) = f.feed(raw)
    ev = parse_event(block)
    assert ev == SSEEvent("message", "[1]", payload.encode(), 2000)
    assert json.loads(ev.data)["title"] == "Main Page"


def test_chunked_response_head_and_chunks():
    head = sse_response_head()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"content-type: text/event-stream" in head
    assert b"transfer-encoding: chunked" in head
    assert chunk(b"") == b""
    assert chunk(b"x" * 17) == b"11\r\n" + b"x" * 17 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_framer_rejects_a_nonpositive_cap():
    with pytest.raises(ValueError, match="positive"):
        SSEFramer(0)
