"""Property tests of the X API v2 decoder and framer (hypothesis).

* Real messages (the fixtures) with fields removed, nulled or given another type at any depth,
  and arbitrary JSON: decoding never raises, a message whose ``data.id`` survives as a numeric
  string becomes exactly one row, and the batch holds the explicit schema.
* The framer, fed a body of messages, keep-alives and one ending error object cut into arbitrary
  pieces, returns exactly the messages up to and including the error object.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamkit.sources.x_v2 import X_EVENT_SCHEMA, X_TWEET_SCHEMA, XV2Framer, XV2Source

FIXTURES = Path(__file__).parent / "fixtures"
MESSAGES = [json.loads((FIXTURES / n).read_text("utf-8"))
            for n in ("x_v2_filtered_tweet.json", "x_v2_retweet.json", "x_v2_operational_disconnect.json")]
ODD = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=8), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _id(value):
    """The post id the decoder must find: X's numeric string (or, leniently, an int64)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -2**63 <= value < 2**63 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19 and int(value) < 2**63:
        return int(value)
    return None


@st.composite
def mutated(draw):
    msg = copy.deepcopy(draw(st.sampled_from(MESSAGES)))
    paths = list(_paths(msg))
    for _ in range(draw(st.integers(0, 4))):
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = msg
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(ODD)
        except (KeyError, IndexError, TypeError):
            continue
        paths = list(_paths(msg))
    return msg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated(), JSON), min_size=1, max_size=8))
def test_decoding_never_raises_and_each_identified_post_is_one_row(objs):
    raws = [json.dumps(o).encode() for o in objs]
    # a typed field of the wrong type stops msgspec before it meets the broken JSON behind it
    raws.append(b'{"includes": false, "data": {"id": "7"}, "x": Infinity}')
    batch = XV2Source().decode_batch(raws, received_at_us=0)
    assert batch.rejected.get("malformed_json", 0) >= 1
    raws.pop()
    assert batch.tweets.schema == X_TWEET_SCHEMA and batch.events.schema == X_EVENT_SCHEMA
    ids = [i for i in (_id(o["data"].get("id")) for o in objs
                       if isinstance(o, dict) and isinstance(o.get("data"), dict)) if i is not None]
    assert batch.tweets.column("id").to_pylist() == ids
    assert batch.tweets.num_rows + batch.events.num_rows + batch.n_rejected == len(raws) + 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b'{"data":{"id":"1","text":"a"}}', b"", b'{"data":{"id":"2"},"errors":[{"title":"x"}]}']),
                max_size=6),
       st.lists(st.integers(1, 40), max_size=12), st.booleans())
def test_framer_returns_the_messages_up_to_the_ending_error_whatever_the_cuts(lines, cuts, crlf):
    ending = json.dumps(MESSAGES[2]).encode()
    end = b"\r\n" if crlf else b"\n"
    body = b"".join(x + end for x in [*lines, ending, b'{"data":{"id":"3"}}'])
    pieces, at = [], 0
    for n in cuts:
        pieces.append(body[at:at + n])
        at += n
    pieces.append(body[at:])
    framer = XV2Framer(1 << 16)
    out = [m for p in pieces for m in framer.feed(p)]
    assert out == [x for x in lines if x] + [ending]
    assert framer.closed and framer.pending_bytes == 0
    assert framer.stats.keepalives == lines.count(b"")
