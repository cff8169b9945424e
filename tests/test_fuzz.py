"""Fuzzing with hypothesis: the framing layer, and flattening all the way to Parquet.

* **Framing**: bodies mixing valid messages, keep-alives, right, wrong and absurd length
  prefixes, garbage lines and oversized lines, cut into arbitrary pieces. The framer never
  raises, never holds more than one message's cap of bytes, and returns exactly the
  messages a line-by-line reading of the whole body gives, whatever the cuts.
* **Flattening**: real statuses with fields removed, nulled or given the wrong type, at any
  depth, and arbitrary JSON. Decoding never raises; every status with an id becomes one row
  whose mutated columns are null; the dataset writer commits them and readers read them.
* **Through a live capture**: a stream that carries such messages between ordinary
  statuses; the writer never stops and the stats add up.

The number of cases each property ran is printed (``-s``) for the README's Reliability
section.
"""

from __future__ import annotations

import collections
import copy
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamkit
from streamkit import schema
from streamkit.framing import Framer
from streamkit.sink import DatasetWriter
from streamkit.testing import TEST_CREDENTIALS as C
from streamkit.testing import Fault, StreamServer

FIXTURES = Path(__file__).parent / "fixtures"
CASES: collections.Counter[str] = collections.Counter()
CAP = 64  # a small cap, so that lines near it are common

# -- framing -------------------------------------------------------------------------------

_text = st.binary(max_size=90).map(lambda b: b.replace(b"\n", b" "))
_message = st.one_of(
    st.just(b'{"id":1}'),
    _text.filter(lambda b: b.strip() and not b.isdigit()),
    st.integers(CAP - 3, CAP + 3).map(lambda n: b"{" + b"x" * max(n - 2, 0) + b"}"),  # near the cap
)
_line = st.one_of(
    _message,
    st.just(b""),  # keep-alive
    st.integers(0, 10**9 - 1).map(lambda n: str(n).encode()),  # a prefix, right or wrong
    st.integers(10**9, 10**40).map(lambda n: str(n).encode()),  # too long to be a prefix
    st.integers(CAP + 1, 4 * CAP).map(lambda n: b"y" * n),  # oversized
)
_body = st.lists(
    st.tuples(_line, st.sampled_from([b"\r\n", b"\n"]), st.booleans()), max_size=40
)


def _frame(parts) -> bytes:
    """Lines, some preceded by their correct ``delimited=length`` prefix."""
    out = []
    for line, end, prefixed in parts:
        if prefixed:
            out.append(b"%d\r\n" % (len(line) + len(end)))
        out.append(line + end)
    return b"".join(out)


def _oracle(body: bytes) -> tuple[list[bytes], int, int]:
    """Messages, oversized lines and keep-alives, reading the complete lines of ``body``."""
    messages, oversized, keepalives = [], 0, 0
    for line in body.split(b"\n")[:-1]:
        line = line[:-1] if line.endswith(b"\r") else line
        if not line:
            keepalives += 1
        elif line.isdigit() and len(line) <= 9:
            continue  # a length prefix
        elif len(line) > CAP:
            oversized += 1
        else:
            messages.append(line)
    return messages, oversized, keepalives


@settings(max_examples=600, deadline=None)
@given(_body, st.lists(st.integers(0, 10_000), max_size=25), st.binary(max_size=40), st.booleans())
def _framing_property(parts, cuts, tail, between_cr_lf):
    body = _frame(parts) + tail  # `tail`: an unfinished last line, waiting for more
    if between_cr_lf:  # the nastiest cuts: between a line's \r and its \n
        cuts = cuts + [i + 1 for i in range(len(body) - 1) if body[i:i + 2] == b"\r\n"]
    CASES["framing"] += 1
    framer = Framer(max_message_bytes=CAP)
    out: list[bytes] = []
    prev = 0
    for cut in sorted({c % (len(body) + 1) for c in cuts}) + [len(body)]:
        out += framer.feed(body[prev:cut])
        prev = cut
        assert framer.pending_bytes <= CAP + 1, "the framer holds more than one message (and a \\r)"
    messages, oversized, keepalives = _oracle(body)
    unfinished = body.rsplit(b"\n", 1)[-1]  # dropped at once when already too long
    assert out == messages
    assert framer.stats.oversized == oversized + (len(unfinished) > CAP)
    assert framer.stats.keepalives == keepalives
    # The same bytes in one piece give the same messages and counters.
    whole = Framer(max_message_bytes=CAP)
    assert whole.feed(body) == out
    assert (whole.stats.oversized, whole.stats.keepalives) == (framer.stats.oversized, keepalives)


def test_framing_recovers_every_valid_message_from_any_split_and_garbage():
    _framing_property()
    print(f"\nreliability: fuzz: framing {CASES['framing']} cases")


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 10**9 - 1), st.integers(0, 5000), st.lists(st.integers(1, 4096), max_size=20))
def _huge_prefix_property(announced, actual, pieces):
    CASES["huge_prefix"] += 1
    framer = Framer(max_message_bytes=4096)
    body = b"%d\r\n" % announced + b"{" + b"z" * actual + b"}\r\n" + b'{"id":2}\r\n'
    out, pos = [], 0
    for n in pieces + [len(body)]:
        out += framer.feed(body[pos:pos + n])
        pos += n
        assert framer.pending_bytes <= 4097  # a prefix is never trusted to size a buffer
    fits = actual + 2 <= 4096
    assert out == ([b"{" + b"z" * actual + b"}"] if fits else []) + [b'{"id":2}']
    assert framer.stats.oversized == (not fits)
    if fits:  # (an oversized message may or may not be checked against its prefix)
        assert framer.stats.length_mismatches == (announced != actual + 4)


def test_huge_length_prefixes_never_size_a_buffer():
    _huge_prefix_property()
    print(f"\nreliability: fuzz: length prefixes {CASES['huge_prefix']} cases")


# -- flattening ----------------------------------------------------------------------------

_STATUSES = [json.loads((FIXTURES / n).read_text()) for n in sorted(p.name for p in FIXTURES.glob("status_*.json"))]
# (path in the JSON, column, kind of value the column holds)
_SCALARS = [
    (("lang",), "lang", "str"), (("filter_level",), "filter_level", "str"),
    (("retweet_count",), "retweet_count", "int"), (("favorite_count",), "favorite_count", "int"),
    (("reply_count",), "reply_count", "int"), (("quote_count",), "quote_count", "int"),
    (("possibly_sensitive",), "possibly_sensitive", "bool"),
    (("user", "screen_name"), "user_screen_name", "str"), (("user", "name"), "user_name", "str"),
    (("user", "followers_count"), "user_followers_count", "int"),
    (("user", "friends_count"), "user_friends_count", "int"),
    (("user", "statuses_count"), "user_statuses_count", "int"),
    (("user", "verified"), "user_verified", "bool"),
]
_WRONG = {
    "str": st.one_of(st.integers(-5, 5), st.booleans(), st.lists(st.text(max_size=3), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.floats(allow_nan=False, allow_infinity=False)),
    "int": st.one_of(st.text(max_size=6), st.booleans(), st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)),
                     st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                     st.integers(2**64, 2**80)),
    "bool": st.one_of(st.text(max_size=5), st.integers(-3, 3), st.lists(st.booleans(), max_size=2),
                      st.dictionaries(st.text(max_size=3), st.booleans(), max_size=1)),
}
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


def _paths(obj, prefix=()):
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("id", "id_str"):  # the id must survive for the row to exist
                yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value, delete=False):
    target = obj
    for key in path[:-1]:
        target = target[key]
    # Deleting `in_reply_to_status_id` would make it no status at all (Tweepy's test).
    if delete and isinstance(target, dict) and path != ("in_reply_to_status_id",):
        del target[path[-1]]
    else:
        target[path[-1]] = value


@st.composite
def _mutated_status(draw):
    """A real status with scalar fields wrongly typed and anything else removed, nulled or replaced."""
    obj = copy.deepcopy(draw(st.sampled_from(_STATUSES)))
    wrong = {}
    for path, column, kind in draw(st.lists(st.sampled_from(_SCALARS), max_size=4, unique=True)):
        if path[0] == "user" and not isinstance(obj.get("user"), dict):
            continue
        _set(obj, path, draw(_WRONG[kind]))
        wrong[column] = path
    for _ in range(draw(st.integers(0, 4))):
        paths = [p for p in _paths(obj) if not any(p[:len(w)] == w or w[:len(p)] == p for w in wrong.values())]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["delete", "null", "junk"]))
        _set(obj, path, None if how == "null" else draw(_json), delete=how == "delete")
    return obj, sorted(wrong)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutated_status(), min_size=1, max_size=5), st.lists(_json, max_size=3), st.booleans())
def _flatten_property(statuses, others, keep_raw):
    CASES["flattening"] += len(statuses) + len(others)
    messages = [json.dumps(obj).encode() for obj, _ in statuses] + [json.dumps(v).encode() for v in others]
    batch = schema.decode_batch(messages, received_at_us=[1_540_000_000_000_000] * len(messages), keep_raw=keep_raw)
    assert batch.tweets.schema == schema.TWEET_SCHEMA and batch.events.schema == schema.EVENT_SCHEMA
    assert batch.tweets.num_rows + batch.events.num_rows + batch.n_rejected == len(messages)
    assert "decoder_error" not in batch.rejected, batch.rejected  # that reason is a bug
    rows = dict(zip(batch.tweet_index.tolist(), batch.tweets.to_pylist(), strict=True))
    for i, (obj, wrong) in enumerate(statuses):
        row = rows.get(i)
        assert row is not None and row["id"] == obj["id"], "a status with an id must become a row"
        for column in wrong:
            assert row[column] is None, (column, row[column])


def test_flattening_turns_missing_null_and_wrong_fields_into_nulls():
    _flatten_property()
    print(f"\nreliability: fuzz: flattening {CASES['flattening']} messages")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(_mutated_status(), min_size=1, max_size=8), st.lists(_json | st.binary(max_size=30), max_size=4),
       st.integers(0, 2**40))
def _writer_property(tmp_path, statuses, junk, salt):
    CASES["writer"] += 1
    path = tmp_path / f"w{salt}-{CASES['writer']}"
    messages = [json.dumps(obj).encode() for obj, _ in statuses]
    messages += [j if isinstance(j, bytes) else json.dumps(j).encode() for j in junk]
    ds = DatasetWriter(path)
    result = ds.commit(0, len(messages) - 1, messages, [1_540_000_000_000_000] * len(messages))
    assert result.tweets + result.duplicates + result.events + sum(result.rejected.values()) == len(messages)
    for f in result.files:  # every file inside the dataset's own folders
        assert f.resolve().is_relative_to(path.resolve()) and f.parent.name.startswith("date=")
        pq.read_metadata(f)
    df = streamkit.read(path, include_deleted=True)
    assert len(df) == result.tweets and df["id"].is_unique
    assert len(streamkit.read_events(path)) == result.events


def test_the_writer_commits_whatever_the_message_shapes(tmp_path):
    _writer_property(tmp_path)
    print(f"\nreliability: fuzz: dataset writer {CASES['writer']} commits")


# -- through a live capture ------------------------------------------------------------------


def _random_mutants(seed: int, n: int) -> tuple[list[bytes], set[int]]:
    """Mutated statuses (and their ids) and junk, without hypothesis (a live stream is too
    slow to run per example)."""
    rng = random.Random(seed)
    junk = [b"[]", b"null", b"12345678901234567890", b'{"id":"x"}', b"{", b'"text"', b"\xff\xfe{}",
            b'{"delete":{"status":{"id":"no"}}}', b'{"limit":{"track":"many"}}', b'{"user":5,"id":3}']
    out, ids = [], set()
    for i in range(n):
        if rng.random() < 0.3:
            out.append(rng.choice(junk))
            continue
        obj = copy.deepcopy(rng.choice(_STATUSES))
        obj["id"] = obj["id"] + i  # distinct, so that dedupe keeps them all
        obj["id_str"] = str(obj["id"])
        for _ in range(rng.randint(1, 4)):
            paths = list(_paths(obj))
            path = rng.choice(paths)
            _set(obj, path, rng.choice([None, "", 0, -1, [], {}, "x" * 50, 1.5, True, [None], {"a": [1]}]),
                 delete=rng.random() < 0.3)
        out.append(json.dumps(obj).encode())
        ids.add(obj["id"])
    return out, ids


def test_a_capture_never_stops_on_a_bad_shape(tmp_path):
    mutants, mutant_ids = _random_mutants(5, 300)
    auth = streamkit.OAuthHandler(C["consumer_key"], C["consumer_secret"])
    auth.set_access_token(C["access_token"], C["access_token_secret"])
    faults = [Fault.inject(after=100, messages=mutants)]  # between statuses 100 and 101
    with StreamServer(statuses=400, notices=0, pool_size=300, faults=faults) as server:
        c = streamkit.collect(track=["python"], auth=auth, base_url=server.url,
                              path=tmp_path / "shapes", flush_seconds=0.2, progress=False)
        try:
            assert c.wait_for(received=700, timeout=30), c.stats
            assert c.wait_for(stored=400 + len(mutant_ids), timeout=30), c.stats
        finally:
            c.stop()
        sent = server.sent
    s = c.stats
    assert s.state == "stopped" and c.exception is None and s.received == 700, s
    assert s.received == s.stored + s.duplicates + s.events + sum(s.rejected.values()), s
    stored = set(streamkit.read(tmp_path / "shapes", include_deleted=True)["id"])
    assert stored == set(sent) | mutant_ids
    assert "decoder_error" not in s.rejected
    print(f"\nreliability: fuzz: live capture, {len(mutants)} mutated messages, writer never stopped")
