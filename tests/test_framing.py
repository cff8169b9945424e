"""The framing layer: both framings, keep-alives, wrong prefixes, the size cap, any split."""

from __future__ import annotations

import json

from helpers import feed_in_pieces
from hypothesis import given, settings
from hypothesis import strategies as st

from streamkit.framing import Framer

MESSAGES = [json.dumps({"id": i, "text": "x" * (i * 37 % 300)}).encode() for i in range(40)]


def newline_body(msgs, keepalive_every=5):
    out = b""
    for i, m in enumerate(msgs):
        if i % keepalive_every == 0:
            out += b"\r\n"
        out += m + b"\r\n"
    return out


def length_body(msgs):
    return b"".join(str(len(m) + 2).encode() + b"\r\n" + m + b"\r\n" for m in msgs)


def test_newline_framing_and_keepalives():
    f = Framer()
    assert f.feed(newline_body(MESSAGES)) == MESSAGES
    assert f.stats.keepalives == 8
    assert f.stats.messages == len(MESSAGES)


def test_length_framing_without_mismatches():
    f = Framer()
    assert f.feed(length_body(MESSAGES)) == MESSAGES
    assert f.stats.length_prefixes == len(MESSAGES)
    assert f.stats.length_mismatches == 0


def test_wrong_length_prefix_is_counted_and_message_recovered():
    body = b"5\r\n" + MESSAGES[0] + b"\r\n" + length_body(MESSAGES[1:3])
    f = Framer()
    assert f.feed(body) == MESSAGES[:3]
    assert f.stats.length_mismatches == 1


def test_bare_newlines_are_accepted():
    f = Framer()
    assert f.feed(b'{"a":1}\n\n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']
    assert f.stats.keepalives == 1


def test_oversized_message_is_skipped_without_buffering_it():
    f = Framer(max_message_bytes=100)
    big = b"{" + b"x" * 10_000 + b"}"
    out = []
    for i in range(0, len(big), 64):
        out += f.feed(big[i : i + 64])
        assert f.pending_bytes <= 100 + 64
    out += f.feed(b"\r\n" + MESSAGES[0] + b"\r\n")
    assert out == [MESSAGES[0]]
    assert f.stats.oversized == 1


def test_oversized_in_one_piece():
    f = Framer(max_message_bytes=100)
    assert f.feed(b"{" + b"y" * 500 + b"}\r\n" + MESSAGES[1] + b"\r\n") == [MESSAGES[1]]
    assert f.stats.oversized == 1


def test_reset_drops_a_half_message():
    f = Framer()
    assert f.feed(MESSAGES[0] + b"\r\n" + MESSAGES[1][:10]) == [MESSAGES[0]]
    f.reset()
    assert f.feed(MESSAGES[2] + b"\r\n") == [MESSAGES[2]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20_000), max_size=30), st.booleans())
def test_any_split_gives_the_same_messages(cuts, delimited):
    body = length_body(MESSAGES) if delimited else newline_body(MESSAGES)
    cuts = [c % (len(body) + 1) for c in cuts]
    assert feed_in_pieces(Framer(), body, cuts) == MESSAGES


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_garbage_never_crashes_and_memory_stays_capped(garbage, cuts):
    f = Framer(max_message_bytes=512)
    body = garbage + b"\r\n" + length_body(MESSAGES[:3])
    out = feed_in_pieces(f, body, [c % (len(body) + 1) for c in cuts])
    assert f.pending_bytes <= 512
    # Whatever the garbage, the valid messages after it come through whole.
    assert out[-3:] == MESSAGES[:3]
