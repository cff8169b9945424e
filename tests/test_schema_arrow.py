"""The Arrow path of decode_batch against the msgspec reference: identical tables.

Every test decodes the same messages twice, with ``path="arrow"`` (forced, whatever the
batch size) and ``path="reference"`` (the msgspec implementation), and asserts equal
tweets and events tables, rejection counts (in order) and indexes. Tests also check, through
the ``trace`` of which messages fell back to msgspec, that the Arrow path really decoded
what it should: an equality between two runs of the reference would prove nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import random
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamkit import _schema_arrow, _schema_arrow_flat, schema
from streamkit._schema_time import parse_created_at
from streamkit.schema import EVENT_SCHEMA, TWEET_SCHEMA, decode_batch

FIXTURES = Path(__file__).parent / "fixtures"
RECV = 1_700_000_000_123_456
STATUS_FIXTURES = sorted(p.stem for p in FIXTURES.glob("status_*.json"))
NOTICE_FIXTURES = sorted(p.stem for p in FIXTURES.glob("notice_*.json"))
# the fast path reads neither of these itself (see _schema_arrow_flat)
ALWAYS_SLOW = {"notice_event", "notice_friends"}


def fixture(name: str) -> bytes:
    """A fixture on one line, as the stream frames it (the files are pretty-printed)."""
    return json.dumps(json.loads((FIXTURES / f"{name}.json").read_bytes())).encode()


def _generate(n: int, seed: int, **kw) -> list[dict]:
    from streamkit.testing import generate_statuses

    return generate_statuses(n, seed=seed, **kw)


@functools.cache
def _plain(n: int, seed: int) -> tuple[bytes, ...]:
    return tuple(json.dumps(s).encode() for s in _generate(n, seed))


def _diff(a: pa.Table, b: pa.Table) -> str:
    if a.num_rows != b.num_rows:
        return f"{a.num_rows} rows vs {b.num_rows}"
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        if x != y:
            i = next(i for i in range(len(x)) if x[i] != y[i])
            return f"column {name}, row {i}: {x[i]!r} vs {y[i]!r}"
    return "types or layout"


def both(msgs, *, received_at_us=RECV, keep_raw=True):
    """Decode with both paths, assert they agree; returns (batch, mask of msgspec rows)."""
    trace: list[np.ndarray] = []
    fast = schema._decode(msgs, received_at_us, keep_raw, path="arrow", trace=trace)
    ref = schema._decode(msgs, received_at_us, keep_raw, path="reference")
    for got, want, sch in ((fast.tweets, ref.tweets, TWEET_SCHEMA),
                           (fast.events, ref.events, EVENT_SCHEMA)):  # fmt: skip
        assert got.schema == sch
        got.validate(full=True)
        assert got.equals(want), _diff(got, want)
    assert fast.rejected == ref.rejected
    assert list(fast.rejected) == list(ref.rejected)  # same first-seen order
    for a, b in ((fast.tweet_index, ref.tweet_index), (fast.event_index, ref.event_index)):
        assert a.dtype == np.int64 and a.tolist() == b.tolist()
    return fast, trace[0]


# -- realistic input: everything on the fast path ----------------------------------------


@pytest.mark.parametrize("name", STATUS_FIXTURES + NOTICE_FIXTURES)
def test_fixtures_one_by_one(name):
    b, slow = both([fixture(name)])
    assert slow.tolist() == [name in ALWAYS_SLOW]
    assert b.tweets.num_rows + b.events.num_rows == 1


def test_fixtures_in_one_batch_and_as_pretty_printed_files():
    names = STATUS_FIXTURES + NOTICE_FIXTURES
    msgs = [fixture(n) for n in names] * 3
    b, slow = both(msgs)
    # a failing segment (the event's "source" object) costs at most its leaf neighbours
    assert slow.sum() <= 3 * 2 * _schema_arrow._LEAF
    files = [(FIXTURES / f"{n}.json").read_bytes() for n in names]  # newlines inside
    _, slow = both(files)
    assert slow.all()


@pytest.mark.parametrize(
    ("seed", "kw"),
    [(0, {}), (1, {"track": ["python"]}), (2, {"languages": ["ja", "ar"]}),
     (3, {"locations": [-122.75, 36.8, -121.75, 37.8]}), (4, {"follow": [12, 13]})],
)  # fmt: skip
def test_generated_statuses_all_fast(seed, kw):
    statuses = _generate(600, seed, **kw)
    rng = random.Random(seed)
    msgs = [
        json.dumps(s, ensure_ascii=rng.random() < 0.5,
                   separators=(",", ":") if rng.random() < 0.5 else None).encode()
        for s in statuses
    ]  # fmt: skip
    b, slow = both(msgs)
    assert not slow.any()
    assert b.tweets.num_rows == len(msgs) and b.rejected == {}
    kinds = set(b.tweets.column("tweet_type").to_pylist())
    assert kinds == set(schema.TWEET_TYPES)
    # long tweets and retweets exercise the extended_tweet and "RT @" rules
    assert any(s.get("extended_tweet") for s in statuses)
    assert any(t.startswith("RT @") for t in b.tweets.column("text").to_pylist())


def test_generated_notices_and_statuses_mixed():
    statuses = _generate(400, 7)
    rng = random.Random(7)
    msgs = []
    for s in statuses:
        sid, uid = s["id"], s["user"]["id"]
        notice = rng.choice([
            {"delete": {"status": {"id": sid, "id_str": str(sid), "user_id": uid,
                                   "user_id_str": str(uid)}, "timestamp_ms": s["timestamp_ms"]}},
            {"limit": {"track": rng.randrange(10**6), "timestamp_ms": s["timestamp_ms"]}},
            {"scrub_geo": {"user_id": uid, "user_id_str": str(uid), "up_to_status_id": sid,
                           "up_to_status_id_str": str(sid), "timestamp_ms": s["timestamp_ms"]}},
            {"status_withheld": {"id": sid, "user_id": uid, "withheld_in_countries": ["DE"],
                                 "timestamp_ms": s["timestamp_ms"]}},
            {"user_withheld": {"id": uid, "withheld_in_countries": ["TR", "RU"]}},
            {"warning": {"code": "FALLING_BEHIND", "message": "queue 80% full",
                         "percent_full": 80}},
            {"disconnect": {"code": 12, "stream_name": "x", "reason": "full buffer"}},
            {"warning": {"code": "FOLLOWS_OVER_LIMIT", "message": "m", "user_id": uid}},
        ])  # fmt: skip
        msgs += [json.dumps(s).encode(), json.dumps(notice).encode()]
    b, slow = both(msgs)
    assert not slow.any()
    assert b.events.num_rows == 400 and b.tweets.num_rows == 400
    assert set(b.events.column("event_type").to_pylist()) == {
        "delete", "limit", "scrub_geo", "status_withheld", "user_withheld", "warning",
        "disconnect",
    }  # fmt: skip


def test_keep_raw_false_received_at_per_message_and_chunked_raw(monkeypatch):
    msgs = [*_plain(60, 11), fixture("notice_limit")]
    recv = np.arange(len(msgs), dtype=np.int64) * 7 + RECV
    both(msgs, received_at_us=recv, keep_raw=False)
    monkeypatch.setattr(schema, "_RAW_CHUNK_BYTES", 20_000)
    b, slow = both(msgs, received_at_us=recv)
    assert not slow.any() and b.tweets.column("raw").num_chunks > 1
    assert b.tweets.column("raw").to_pylist() == [m.decode() for m in msgs[:-1]]


def test_accepted_input_types_and_empty_batch():
    good = fixture("status_reply")
    msgs = [bytearray(good), memoryview(good), good.decode(), good, None, "\ud800"]
    b, slow = both(msgs)
    assert slow.tolist() == [False] * 4 + [True] * 2
    assert b.rejected == {"not_bytes": 1, "invalid_utf8": 1}
    both([])


# -- fallback: odd messages go to msgspec, alone -------------------------------------------

S = json.loads(fixture("status_quote"))


def status(**fields) -> dict:
    return {**S, **fields}


def enc(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def raw_field(obj: dict, tail: bytes) -> bytes:
    """``obj`` encoded with ``tail`` spliced in as its last member(s), verbatim."""
    return enc(obj)[:-1] + b"," + tail + b"}"


EDGE_CASES = {
    # JSON that Arrow reads differently from msgspec, or not at all
    "nan_unread": raw_field(S, b'"zz":NaN'),
    "minus_infinity_unread": raw_field(S, b'"zz":[1,-Infinity]'),
    "nan_read": raw_field(S, b'"coordinates":{"coordinates":[NaN,1]}'),
    "inf_notice": b'{"limit":{"track":5},"x":Inf}',
    "nan_inf_words_in_text": enc(status(text="Info: NaNa, Inflation")),
    "float_beyond_range_read": raw_field(S, b'"coordinates":{"coordinates":[1e999,2]}'),
    "big_int_as_coordinate": raw_field(S, b'"coordinates":{"coordinates":[1' + b"0" * 400 + b",2]}"),
    "float_beyond_range_unread": raw_field(S, b'"zz":1e400'),
    "float_beyond_range_notice": b'{"delete":{"status":{"id":1}},"zz":2e308}',
    "big_int_unread_notice": b'{"limit":{"track":1},"zz":1' + b"0" * 320 + b"}",
    "deep_unread": raw_field(S, b'"zz":' + b"[" * 3000 + b"]" * 3000),
    "deep_objects_unread": raw_field(S, b'"zz":' + b'{"a":' * 1200 + b"1" + b"}" * 1200),
    "lone_surrogate_unread": raw_field(S, b'"zz":"\\ud800"'),
    "lone_surrogate_read": enc(status(text="\ud83d")),
    "control_char_in_string": raw_field(S, b'"zz":"a\tb"'),
    "tab_between_tokens": enc(S)[:-1] + b',\t"zz":1}',
    "newline_between_tokens": enc(S)[:-1] + b',\n"zz":1}',
    "cr_between_tokens": enc(S)[:-1] + b',\r"zz":1}',
    "leading_space": b" " + enc(S),
    "trailing_space": enc(S) + b" ",
    "bom": b"\xef\xbb\xbf" + enc(S),
    "two_objects": enc(S) + enc(S),
    "object_null_object": enc(S) + b" null " + enc(S),
    "trailing_junk": enc(S) + b"}",
    "bare_null": b"null",
    "array": b"[1,2]",
    "empty": b"",
    "blank": b"   ",
    "invalid_utf8_unread": raw_field(S, b'"zz":"\xff"'),
    "invalid_utf8_surrogate_bytes": enc(status(text="x"))[:-1] + b',"zz":"\xed\xa0\x80"}',
    "duplicate_key": raw_field(S, b'"id":5'),
    "duplicate_nested_key": enc(status(user={"screen_name": "a"}))[:-2] + b',"screen_name":"b"}}',
    "escaped_key": enc(S)[:-1] + b',"\\u0069d_str":"1"}',
    "escaped_notice_key": b'{"\\u0064elete":{"status":{"id":1}}}',
    # wrong types: null and wrongly typed values become nulls, one at a time
    "id_as_string_only": enc(status(id=None, id_str="123")),
    "id_float": enc(status(id=1.5)),
    "id_beyond_int64": enc(status(id=2**63, id_str="77")),
    "no_id_at_all": enc(status(id=None, id_str=None)),
    "user_id_str_only": enc(status(user={"id_str": "9", "screen_name": "s"})),
    "reply_ids_as_strings": enc(status(in_reply_to_status_id=None, in_reply_to_status_id_str="5",
                                       in_reply_to_user_id=None, in_reply_to_user_id_str="-6")),
    "quoted_id_str_only": enc(status(quoted_status_id=None, quoted_status_id_str="0042",
                                     quoted_status=None)),
    "text_number": enc(status(text=5)),
    "user_list": enc(status(user=[1])),
    "hashtags_not_list": enc(status(entities={"hashtags": "x"})),
    "null_in_hashtags": enc(status(entities={"hashtags": [None, {"text": "a"}], "urls": [5]})),
    "null_in_coordinates": enc(status(coordinates={"coordinates": [1.5, None]})),
    "three_coordinates": enc(status(coordinates={"coordinates": [1, 2, 3]})),
    "integer_coordinates": enc(status(coordinates={"coordinates": [-122, 37]})),
    "empty_entities": enc(status(entities={}, extended_entities={})),
    "media_only_in_extended": enc(status(entities=None, extended_entities={"media": [
        {"media_url": "http://m/1"}, {"media_url_https": "", "media_url": ""}]})),  # fmt: skip
    "urls_empty_strings": enc(status(entities={"urls": [{"expanded_url": "", "url": "u"},
                                                        {"expanded_url": "", "url": ""}]})),
    "extended_tweet_without_text": enc(status(extended_tweet={"entities": {"hashtags": [{"text": "h"}]}})),
    "extended_tweet_empty": enc(status(extended_tweet={})),
    "retweet_without_author": enc(status(retweeted_status={"id": 9, "text": "orig"})),
    "retweet_empty": enc(status(retweeted_status={})),
    "retweet_of_quote_ids_only": enc(status(quoted_status_id=None, quoted_status=None,
                                            retweeted_status={"user": {"screen_name": "a"},
                                                              "text": "t", "quoted_status_id_str": "8",
                                                              "quoted_status": {"user": {"screen_name": "q"}}})),
    "source_plain_and_odd": enc(status(source="<a href='x'>Q&amp;A &lt;bot&gt;</a>")),
    "source_unclosed": enc(status(source="<a href='x'>broken")),
    "is_quote_status_only": enc(status(quoted_status=None, quoted_status_id=None,
                                       quoted_status_id_str=None, is_quote_status=True)),
    "created_at_garbage": enc(status(created_at="yesterday", user={"created_at": "Mon Feb 30 00:00:00 +0000 2019"})),
    # classification: what message_kind() says, from keys Arrow sees as null
    "status_by_key_only": b'{"in_reply_to_status_id":null,"id":3}',
    "status_by_key_only_with_notice": b'{"in_reply_to_status_id":null,"delete":{"status":{"id":1}}}',
    "status_without_reply_key": enc({k: v for k, v in S.items() if k != "in_reply_to_status_id"}),
    "status_with_null_user": b'{"id_str":"1","full_text":"t","user":null}',
    "id_text_no_user": b'{"id":1,"text":"t"}',
    "notice_null_body": b'{"delete":null,"limit":{"track":3}}',
    "notice_two_keys": b'{"limit":{"track":3},"delete":{"status":{"id":1}}}',
    "notice_with_user_key": b'{"limit":{"track":3},"user":{"id":1},"id":2,"text":"x"}',
    "notice_body_not_object": b'{"limit":5}',
    "notice_wrong_types": b'{"delete":{"status":{"id":"x","id_str":"77","user_id":[1]}}}',
    "limit_track_string": b'{"limit":{"track":"many"}}',
    "warning_code_number": b'{"warning":{"code":3,"message":null}}',
    "disconnect_code_string": b'{"disconnect":{"code":"7","reason":"r"}}',
    "withheld_countries_with_null": b'{"status_withheld":{"id":1,"withheld_in_countries":["DE",null]}}',
    "withheld_countries_with_number": b'{"user_withheld":{"id":1,"withheld_in_countries":["DE",3]}}',
    "timestamp_in_body": b'{"limit":{"track":1,"timestamp_ms":"1539203001456"}}',
    "timestamp_top_level": b'{"limit":{"track":1},"timestamp_ms":"1539203001456"}',
    "timestamp_bad": b'{"delete":{"status":{"id":1},"timestamp_ms":"soon"}}',
    "timestamp_bad_top_level_good": b'{"limit":{"track":1,"timestamp_ms":"x"},"timestamp_ms":"5"}',
    "timestamp_long": b'{"limit":{"track":1,"timestamp_ms":"00000000001539203001"}}',
    "timestamp_negative": b'{"limit":{"track":1,"timestamp_ms":"-1539203001456"}}',
    "timestamp_out_of_range": b'{"limit":{"track":1,"timestamp_ms":"9999999999999999"}}',
    "timestamp_number": b'{"limit":{"track":1,"timestamp_ms":1539203001456}}',
    "direct_message_created_at": fixture("notice_direct_message"),
    "unknown": b'{"control":{"control_uri":"/1.1/x"}}',
    "unknown_with_timestamp": b'{"for_user":1,"timestamp_ms":"1000"}',
    "empty_object": b"{}",
    "event_without_source": b'{"event":"follow","created_at":"Sat Sep 04 16:10:54 +0000 2010"}',
    "friends_str": b'{"friends_str":["1","2"]}',
    "quoted_text_looks_like_key": enc(status(text='say "in_reply_to_status_id" and "delete"')),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_case_between_ordinary_messages(name):
    plain = list(_plain(30, 3))
    msgs = plain[:15] + [EDGE_CASES[name]] + plain[15:] + [fixture("notice_delete")]
    _, slow = both(msgs)
    # only the odd message's leaf segment of the bisection may fall back with it
    assert slow.sum() <= _schema_arrow._LEAF
    both([EDGE_CASES[name]])


@pytest.mark.parametrize(
    "name",
    ["nan_inf_words_in_text", "integer_coordinates", "three_coordinates", "empty_entities",
     "retweet_empty", "extended_tweet_empty", "extended_tweet_without_text", "source_unclosed",
     "source_plain_and_odd", "timestamp_in_body", "timestamp_negative", "unknown",
     "empty_object", "quoted_text_looks_like_key", "direct_message_created_at",
     "is_quote_status_only", "created_at_garbage", "retweet_without_author",
     "notice_two_keys"],
)  # fmt: skip
def test_unusual_but_valid_messages_stay_on_the_fast_path(name):
    _, slow = both([EDGE_CASES[name]])
    assert not slow.any()


def test_one_bad_message_costs_a_few_neighbours_not_the_batch():
    msgs = list(_plain(2000, 5))
    msgs[1234] = enc(status(user={"id": "not a number"}))
    _, slow = both(msgs)
    assert slow[1234] and 1 <= slow.sum() <= _schema_arrow._LEAF


def test_a_producer_with_other_types_falls_back_whole():
    # every message has a field of another type than Twitter's: no point in bisecting
    msgs = [enc(status(id=i, lang=7)) for i in range(300)]
    b, slow = both(msgs)
    assert slow.all() and b.tweets.column("lang").null_count == 300


def test_concurrent_batches():
    batches = [list(_plain(300, seed)) for seed in range(4)]
    expected = [schema._decode(b, RECV, True, path="reference") for b in batches]
    results: dict[int, schema.DecodedBatch] = {}

    def run(i: int) -> None:
        for _ in range(3):
            results[i] = schema._decode(batches[i], RECV, True, path="arrow")

    threads = [threading.Thread(target=run, args=(i,), name=f"decode-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(expected):
        assert results[i].tweets.equals(want.tweets)


def test_auto_path_uses_arrow_for_large_batches(monkeypatch):
    msgs = list(_plain(20, 8))
    calls = []
    real = schema._fast
    monkeypatch.setattr(schema, "_fast", lambda *a: calls.append(1) or real(*a))
    decode_batch(msgs)
    assert calls == []  # below _ARROW_MIN_BATCH: msgspec alone
    monkeypatch.setattr(schema, "_ARROW_MIN_BATCH", 10)
    got = decode_batch(msgs, received_at_us=RECV).tweets
    assert got.equals(schema._decode_reference(msgs, received_at_us=RECV).tweets)
    assert calls == [1]


def test_read_schema_mirrors_the_typed_structs():
    s = _schema_arrow.READ_SCHEMA
    assert s.field("id").type == pa.int64() and s.field("id_str").type == pa.string()
    assert s.field("coordinates").type == pa.struct([("coordinates", pa.list_(pa.float64()))])
    user = s.field("user").type
    assert user.field("verified").type == pa.bool_()
    hashtags = s.field("entities").type.field("hashtags").type
    assert hashtags == pa.list_(pa.struct([("text", pa.string())]))
    assert "event" not in s.names and "source" in s.names  # an event's source is an object


# -- property tests ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(10**300, 10**320)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10)
    | st.sampled_from(["123", "-5", "007", "Wed Oct 10 20:19:24 +0000 2018", "", "1539203001456"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "id_str", "text", "user", "screen_name", "media",
                                       "hashtags", "coordinates", "status", "track", "x"]),
                      inner, max_size=4),
    max_leaves=10,
)  # fmt: skip
_KEYS = ["in_reply_to_status_id", "id", "id_str", "text", "full_text", "user", "delete",
         "limit", "event", "friends", "warning", "disconnect", "scrub_geo", "status_withheld",
         "user_withheld", "direct_message", "timestamp_ms", "retweeted_status",
         "quoted_status", "extended_tweet", "entities", "extended_entities", "coordinates"]  # fmt: skip
_SEEDS = [json.loads(fixture(n)) for n in STATUS_FIXTURES + NOTICE_FIXTURES]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_messages_decode_identically(data):
    plain = list(_plain(24, 9))
    msgs = []
    for _ in range(data.draw(st.integers(1, 5))):
        obj = copy.deepcopy(data.draw(st.sampled_from(_SEEDS)))
        for _ in range(data.draw(st.integers(1, 3))):
            path = data.draw(st.sampled_from(list(_paths(obj))))
            if not path:
                continue
            target = obj
            for key in path[:-1]:
                target = target[key]
            action = data.draw(st.sampled_from(["set", "delete", "add"]))
            if action == "delete" and isinstance(target, dict):
                del target[path[-1]]
            elif action == "add" and isinstance(target, dict):
                target[data.draw(st.sampled_from(_KEYS))] = data.draw(json_values)
            else:
                target[path[-1]] = data.draw(json_values)
        ascii_ = data.draw(st.booleans())
        msgs.append(json.dumps(obj, ensure_ascii=ascii_, separators=(",", ":")).encode())
    at = data.draw(st.integers(0, len(plain)))
    both(plain[:at] + msgs + plain[at:], keep_raw=data.draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode()),
                min_size=1, max_size=5),
       st.integers(0, 2000), st.binary(max_size=3))  # fmt: skip
def test_broken_bytes_decode_identically(extra, cut, splice):
    base = fixture("status_media_geo")
    cut %= len(base)
    msgs = [base, base[:cut] + splice + base[cut:], *extra, base]
    both(msgs)


_DATES = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(_DATES, st.integers(-1439, 1439)).map(
                lambda t: (
                    t[0].strftime("%a %b %d %H:%M:%S ")
                    + f"{'-' if t[1] < 0 else '+'}{abs(t[1]) // 60:02d}{abs(t[1]) % 60:02d} "
                    + f"{t[0].year:04d}"
                )
            ),
            st.tuples(_DATES, st.integers(0, 29), st.characters(codec="utf-8")).map(
                lambda t: (
                    (s := t[0].strftime("%a %b %d %H:%M:%S +0000 ") + f"{t[0].year:04d}")[: t[1]]
                    + t[2]
                    + s[t[1] + 1 :]
                )
            ),
            st.from_regex(r"\A[A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} "
                          r"[+-][0-9]{4} [0-9]{4}\Z"),
            st.text(st.characters(codec="utf-8"), max_size=32),
            st.none(),
        ),
        max_size=20,
    )
)  # fmt: skip
def test_created_at_expressions_match_the_scalar_parser(values):
    got = _schema_arrow_flat.parse_created_at(pa.array(values, pa.string()))
    assert got.cast(pa.int64()).to_pylist() == [parse_created_at(v) for v in values]


# -- the msgspec path's own tests, run on the Arrow path ---------------------------------------

test_schema = pytest.importorskip("test_schema")  # tests/ is on sys.path under pytest


@pytest.fixture
def arrow_for_every_batch(monkeypatch):
    monkeypatch.setattr(schema, "_ARROW_MIN_BATCH", 1)


@pytest.mark.usefixtures("arrow_for_every_batch")
class TestTheReferenceSuiteOnTheArrowPath:
    """tests/test_schema.py's semantic tests, with decode_batch taking the Arrow path for
    every batch (its property tests are covered by the both-paths ones above)."""


for _name in (
    "test_fixture_status_every_column", "test_keep_raw_false_keeps_column_null",
    "test_fixture_notice_every_column", "test_unknown_json_object_is_an_event_not_a_rejection",
    "test_notices_with_wrong_types_give_nulls", "test_tweet_type_precedence",
    "test_text_fallbacks", "test_ids_fall_back_to_id_str_and_bad_ids_are_rejected",
    "test_wrong_types_null_only_the_bad_value", "test_entities_absent_vs_empty_and_media_fallback",
    "test_created_at_offsets_and_garbage", "test_order_indexes_and_received_at_per_message",
    "test_received_at_forms", "test_rejections_and_accepted_input_types",
    "test_numbers_beyond_range_and_deep_nesting", "test_empty_and_all_null_batches_keep_types",
    "test_raw_column_split_into_chunks_when_large", "test_many_statuses_one_batch_matches_one_by_one",
    "test_to_pandas_dtypes_and_values", "test_empty_frames_have_the_same_dtypes",
    "test_decodes_generated_statuses",
):  # fmt: skip
    setattr(TestTheReferenceSuiteOnTheArrowPath, _name, staticmethod(getattr(test_schema, _name)))


def test_the_reference_suite_really_takes_the_arrow_path(arrow_for_every_batch):
    trace: list[np.ndarray] = []
    raw = json.dumps(json.loads(test_schema.fixture("status_quote"))).encode()
    schema._decode([raw], RECV, True, trace=trace)
    assert trace[0].tolist() == [False]
