"""Bluesky Jetstream: the decoder on fixtures shaped as Jetstream sends them, the client-side
keyword filter, server-side filters, cursor resume without gaps or duplicates across
faults and a SIGKILL, cursor clamping, collect(), the CLI and inspect.

Everything runs against :class:`streamkit.testing.JetstreamServer`, a real WebSocket
server on 127.0.0.1 that records every event it generated and sent.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from helpers import sigkill_child, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

import streamkit
from streamkit._exceptions import ConfigError
from streamkit._websocket import OP_TEXT, encode_frame
from streamkit.cli import main
from streamkit.sink import read_events
from streamkit.sources import open_source
from streamkit.sources._jetstream_decode import _identity
from streamkit.sources.jetstream import (
    EVENT_SCHEMA,
    POST_SCHEMA,
    JetstreamSource,
    TrackMatcher,
    parse_cursor,
)
from streamkit.testing import JetstreamServer, WsFault

FIXTURES = Path(__file__).parent / "fixtures"
FAST = dict(timeout=1.0, retry_time=0.05, retry_420=0.1, snooze_time=0.02, snooze_time_cap=0.1)
POST = "app.bsky.feed.post"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"jetstream_{name}.json").read_bytes().strip()


def decode(*names: str, **kw):
    src = JetstreamSource()
    return src, src.decode_batch([fixture(n) for n in names], received_at_us=1_700_000_000_000_000, **kw)


def is_post_version(e: dict) -> bool:
    return e["kind"] == "commit" and e["commit"]["collection"] == POST and e["commit"]["operation"] != "delete"


def key(e: dict) -> tuple:
    c = e["commit"]
    return (e["did"], c["collection"], c["rkey"], c["rev"])


def dataset_keys(path) -> list[tuple]:
    df = streamkit.read(path, include_deleted=True, all_versions=True)  # every stored row
    return list(zip(df["did"], df["collection"], df["rkey"], df["rev"], strict=True))


def wait(predicate, timeout=30.0) -> bool:
    return wait_until(predicate, timeout, 0.02)


# -- the decoder ---------------------------------------------------------------------------

def test_post_columns_from_the_fixture():
    _, batch = decode("post")
    assert batch.tweets.schema == POST_SCHEMA and batch.events.schema == EVENT_SCHEMA
    row = batch.tweets.to_pylist()[0]
    did, rkey = "did:plc:eygmaihciaxprqvxpfvl6flk", "3l3qo2vuowo2b"
    assert (row["did"], row["collection"], row["rkey"], row["rev"]) == (did, POST, rkey, "3l3qo2vutsw2b")
    assert row["uri"] == f"at://{did}/{POST}/{rkey}" and row["operation"] == "create"
    assert row["cid"] == "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"
    assert row["time_us"] == 1725911162329308
    assert row["time"].isoformat() == "2024-09-09T19:46:02.329308+00:00"
    assert row["created_at"].isoformat() == "2024-09-09T19:46:02.102000+00:00"
    assert row["text"].startswith("Reading the #atproto spec") and row["langs"] == ["en"]
    assert row["hashtags"] == ["atproto", "specs"]  # facet tags, then the record's own tags
    assert row["mentions"] == ["did:plc:wa7b35aakoll7hugkrjtf3xf"]
    assert row["links"] == ["https://atproto.com/specs/repository"]
    assert row["reply_root_uri"] is row["reply_parent_uri"] is row["quote_uri"] is row["embed_type"] is None
    assert json.loads(row["raw"]) == json.loads(fixture("post"))
    assert row["received_at"].timestamp() == 1_700_000_000


def test_reply_quote_and_update_fixtures():
    _, batch = decode("post_reply", "post_quote", "post", "post_update")
    rows = batch.tweets.to_pylist()
    reply, quote, original, edited = rows
    assert reply["reply_parent_uri"] == "at://did:plc:eygmaihciaxprqvxpfvl6flk/app.bsky.feed.post/3l3qo2vuowo2b"
    assert reply["reply_root_uri"] == "at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3l3qnxq5hbk2w"
    assert reply["embed_type"] == "app.bsky.embed.images" and reply["quote_uri"] is None
    assert reply["langs"] == ["en", "pt"] and reply["text"].endswith("— olá!")
    assert quote["embed_type"] == "app.bsky.embed.recordWithMedia"
    assert quote["quote_uri"] == original["uri"] and quote["text"] == "これは良い説明です"
    # an edit is a new version of the same record: same uri, new rev, both kept by key
    assert edited["operation"] == "update" and edited["uri"] == original["uri"]
    assert edited["rev"] != original["rev"] and edited["text"].endswith("(edited)")
    assert batch.tweet_index.tolist() == [0, 1, 2, 3] and not batch.rejected


def test_deletes_other_collections_identity_and_account_are_events():
    _, batch = decode("post_delete", "like", "follow", "follow_delete", "identity", "account")
    assert batch.tweets.num_rows == 0 and not batch.rejected
    ev = batch.events.to_pylist()
    assert [e["event_type"] for e in ev] == [
        "delete:app.bsky.feed.post", "create:app.bsky.feed.like", "create:app.bsky.graph.follow",
        "delete:app.bsky.graph.follow", "identity", "account"]
    assert [e["kind"] for e in ev] == ["commit"] * 4 + ["identity", "account"]
    delete, like, follow, unfollow, identity, account = ev
    assert delete["uri"] == "at://did:plc:eygmaihciaxprqvxpfvl6flk/app.bsky.feed.post/3l3qo2vuowo2b"
    assert delete["rkey"] == "3l3qo2vuowo2b" and delete["rev"] == "3l3qo4zkqbk2b" and delete["cid"] is None
    assert like["subject"] == "at://did:plc:wa7b35aakoll7hugkrjtf3xf/app.bsky.feed.post/3l3pte3p2e325"
    assert like["created_at"].isoformat() == "2024-09-09T19:46:02.176000+00:00"
    assert follow["subject"] == "did:plc:z72i7hdynmk6r22z27h6tvur"
    assert unfollow["subject"] is None and unfollow["collection"] == "app.bsky.graph.follow"
    assert identity["handle"] == "yohenrique.bsky.social" and identity["seq"] == 1409752997
    assert identity["time_us"] == 1725516665234703 and identity["collection"] is None
    assert account["active"] is False and account["status"] == "takendown" and account["seq"] == 13206502767
    assert batch.event_index.tolist() == list(range(6))


def test_no_raw_keeps_every_other_column():
    _, with_raw = decode("post", "like")
    _, without = decode("post", "like", keep_raw=False)
    assert without.tweets.column("raw").null_count == 1 and without.events.column("raw").null_count == 1
    assert without.tweets.drop_columns(["raw"]).equals(with_raw.tweets.drop_columns(["raw"]))


def commit(collection=POST, operation="create", record=None, **extra):
    c = {"rev": "3l3qo2vutsw2b", "operation": operation, "collection": collection, "rkey": "3l3qo2vuowo2b"}
    if record is not None:
        c["record"] = record
    c.update(extra)
    return {"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit", "commit": c}


BAD = [
    (b'{"did": "did:plc:a", "time_us": 1, "kind": "commit"', "malformed_json"),
    (b"[1, 2]", "not_an_object"),
    (b'"just a string"', "not_an_object"),
    (b"\xff\xfe{}", "invalid_utf8"),
    (b'{"time_us": 1725911162329308, "kind": "identity"}', "missing_did"),
    (b'{"did": "alice", "time_us": 1725911162329308, "kind": "identity"}', "missing_did"),
    (b'{"did": "did:plc:a", "kind": "identity"}', "missing_time_us"),
    (b'{"did": "did:plc:a", "time_us": "1725911162329308", "kind": "identity"}', "missing_time_us"),
    (b'{"did": "did:plc:a", "time_us": true, "kind": "identity"}', "missing_time_us"),
    (b'{"did": "did:plc:a", "time_us": 1725911162329308}', "missing_kind"),
    (b'{"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit"}', "missing_commit"),
    (b'{"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit", "commit": "x"}', "invalid_fields"),
    (json.dumps(commit(rkey=None)).encode(), "missing_commit_fields"),
    (json.dumps(commit()).encode(), "missing_record"),
    (json.dumps(commit(record=None)).encode(), "missing_record"),
    (json.dumps(commit(record=[1])).encode(), "invalid_record"),
]


def test_bad_input_is_counted_by_reason_and_never_raises():
    src = JetstreamSource()
    messages = [m for m, _ in BAD] + [fixture("post")]
    batch = src.decode_batch(messages, received_at_us=0)
    expected: dict[str, int] = {}
    for _, reason in BAD:
        expected[reason] = expected.get(reason, 0) + 1
    assert batch.rejected == expected
    assert batch.tweets.num_rows == 1 and batch.tweet_index.tolist() == [len(BAD)]


def test_bad_created_at_is_null_and_counted_unknown_kind_is_kept():
    src = JetstreamSource()
    record = {"$type": POST, "text": "hi", "createdAt": "2024-13-45T99:00:00Z", "langs": "en", "facets": [7]}
    other_kind = b'{"did": "did:plc:a", "time_us": 1725911162329309, "kind": "sync", "sync": {}}'
    batch = src.decode_batch([json.dumps(commit(record=record)).encode(), other_kind], received_at_us=0)
    row = batch.tweets.to_pylist()[0]
    assert row["created_at"] is None and row["text"] == "hi" and src.bad_created_at == 1
    assert row["langs"] == [] and row["hashtags"] == []  # wrong shapes are empty, not errors
    assert batch.events.column("event_type").to_pylist() == ["sync"] and not batch.rejected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=80),
    st.sampled_from([fixture(n) for n in ("post", "post_reply", "like", "identity", "account")]).flatmap(
        lambda m: st.integers(0, len(m)).map(lambda cut: m[:cut])),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(
                     st.sampled_from(["did", "time_us", "kind", "commit", "record", "text", "rkey", "rev",
                                      "collection", "operation", "facets", "embed", "reply", "langs"]), c, max_size=5),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
), max_size=8))
def test_decoder_never_raises_and_accounts_for_every_message(messages):
    batch = JetstreamSource().decode_batch(messages, received_at_us=0)
    assert batch.tweets.num_rows + batch.events.num_rows + batch.n_rejected == len(messages)


def test_position_is_the_newest_time_and_the_events_at_it():
    src = JetstreamSource(host="h")
    a, b = fixture("post"), fixture("like")  # like is 3.9 ms newer
    assert src.position([]) is None
    first = src.position([b, a])
    assert first["time_us"] == 1725911162333201 and len(first["marks"]) == 1 and first["host"] == "h"
    assert src.position([a])["time_us"] == 1725911162333201  # older ones do not move it back
    # decode_batch notes the position of what it decoded: position() then parses nothing again
    other = JetstreamSource(host="h")
    batch = [b, a]
    other.decode_batch(batch, received_at_us=0)
    assert other.position(batch) == first


# -- keyword filter and options -----------------------------------------------------------

@pytest.mark.parametrize(("text", "hit"), [
    ("I write Python daily", True), ("PYTHON!", True), ("pythonic code", False), ("#python rocks", True),
    ("data  science is fun", True), ("datascience", False), ("big data\nscience", True), ("", False),
])
def test_track_matcher_words_and_phrases(text, hit):
    assert TrackMatcher(["python", "data science"])(text) is hit


@pytest.mark.parametrize(("options", "words"), [
    (dict(collections=["not an nsid"]), "is not an NSID"),
    (dict(collections=["app.bsky.*.post"]), "is not an NSID"),
    (dict(collections=[f"a.b.c{i}" for i in range(101)]), "at most 100"),
    (dict(dids=["alice.bsky.social"]), "is not a DID"),
    (dict(cursor=1725911162), "not a plausible time"),
    (dict(cursor="yesterday"), "neither unix microseconds"),
    (dict(track=[""]), "non-empty"),
    (dict(track=["a"], keywords=["b"]), "not both"),
    (dict(host="jetstream1.us-west.bsky.network", base_url="wss://x.org"), "not both"),
    (dict(host="wss://x.org/subscribe"), "host must be a host name"),
    (dict(base_url="ws://example.org/subscribe"), "plain http"),
    (dict(base_url="https://example.org/subscribe?cursor=1"), "must not hold a query"),
    (dict(max_message_size=0), "positive"),
])
def test_bad_options_are_config_errors(options, words):
    with pytest.raises(ConfigError, match=words):
        open_source("jetstream", **options)


def test_request_parameters_and_urls():
    ep, src = open_source("jetstream", collections=["app.bsky.feed.post", "app.bsky.graph.*"],
                          dids="did:plc:a,did:web:example.com", cursor="2024-09-09T19:46:02Z",
                          max_message_size=100_000, keywords=["python"])
    assert ep.url == "wss://jetstream2.us-east.bsky.network/subscribe" and src.host == ep.host
    assert ep.request().params == {
        "wantedCollections": ["app.bsky.feed.post", "app.bsky.graph.*"],
        "wantedDids": ["did:plc:a", "did:web:example.com"],
        "cursor": "1725911162000000", "maxMessageSizeBytes": "100000"}
    assert ep.track == ["python"] and ep.describe()["track"] == ["python"]
    assert open_source("jetstream", host="jetstream1.us-west.bsky.network")[0].url == \
        "wss://jetstream1.us-west.bsky.network/subscribe"
    assert open_source("jetstream", base_url="http://127.0.0.1:9/")[0].url == "ws://127.0.0.1:9/subscribe"
    assert parse_cursor(1725911162329308) == 1725911162329308


def event(t: int, rkey: str, did: str = "did:plc:a") -> bytes:
    return json.dumps({"did": did, "time_us": t, "kind": "commit", "commit": {
        "rev": rkey, "operation": "create", "collection": "app.bsky.feed.like", "rkey": rkey,
        "record": {"subject": "did:plc:b", "createdAt": "2024-01-01T00:00:00Z"}}}).encode()


def frames(*messages: bytes) -> bytes:
    return b"".join(encode_frame(OP_TEXT, m) for m in messages)


def test_replayed_events_are_dropped_also_at_the_same_microsecond():
    ep, _ = open_source("jetstream", base_url="ws://127.0.0.1:1")
    # two events at t=200: the connection broke after the first of them
    ep.observe([event(100, "a"), event(200, "b")])
    assert ep.request().params["cursor"] == str(max(1, 200 - 5_000_000))
    f = ep.framer(1 << 20)
    replay = [event(100, "a"), event(200, "b"), event(200, "c"), event(300, "d"), event(150, "late")]
    got = f.feed(frames(*replay))
    # past the overlap everything is new, even out of order
    assert got == [event(200, "c"), event(300, "d"), event(150, "late")]
    assert ep.skipped_replayed == 2


def test_an_event_older_than_the_newest_but_never_received_is_kept():
    ep, _ = open_source("jetstream", base_url="ws://127.0.0.1:1")
    # the server emitted t=300 before t=250; the connection broke before t=250 arrived
    ep.observe([event(100, "a"), event(300, "c")])
    got = ep.framer(1 << 20).feed(frames(event(100, "a"), event(250, "b"), event(300, "c"), event(400, "d")))
    assert got == [event(250, "b"), event(400, "d")] and ep.skipped_replayed == 2


def test_after_a_restart_the_stored_position_and_the_session_both_count():
    ep, _ = open_source("jetstream", base_url="ws://127.0.0.1:1")
    _, mark = _identity(event(200, "b"))
    ep.resume_from({"host": ep.host, "time_us": 200, "marks": [mark]})
    ep.observe([event(300, "c")])  # received after the restart
    replay = [event(150, "old"), event(200, "b"), event(200, "b2"), event(300, "c"), event(350, "d")]
    got = ep.framer(1 << 20).feed(frames(*replay))
    assert got == [event(200, "b2"), event(350, "d")] and ep.skipped_replayed == 3


def test_a_resume_from_another_host_drops_nothing():
    ep, _ = open_source("jetstream", base_url="ws://127.0.0.1:1")
    ep.resume_from({"host": "jetstream1.us-west.bsky.network", "time_us": 200, "marks": []})
    assert ep.request().params["cursor"] == "1"  # rewound (not below 1)
    got = ep.framer(1 << 20).feed(frames(event(100, "a"), event(200, "b")))
    assert len(got) == 2 and ep.skipped_replayed == 0


def test_resume_from_ignores_what_it_did_not_write():
    ep, _ = open_source("jetstream", base_url="ws://127.0.0.1:1")
    ep.resume_from({"newest_id": "42"})
    assert "cursor" not in ep.request().params


# -- against the server --------------------------------------------------------------------

def capture(server, path, *, wait_for, stop_when=None, **options):
    with streamkit.collect(source="jetstream", base_url=server.url, path=path, flush_seconds=0.2,
                           progress=False, **{**FAST, **options}) as c:
        assert wait(lambda: server.live_done), "the server did not finish generating"
        assert wait(lambda: wait_for(c)), c.stats
        if stop_when is not None:
            assert wait(stop_when)
    return c


def test_collect_stores_every_event_once_across_faults(tmp_path):
    faults = [WsFault.cut(after=300), WsFault.stall(after=200, seconds=2.5), WsFault.close(after=250),
              WsFault.http(429, retry_after=0), WsFault.end(after=100), WsFault.ping(after=50)]
    path = tmp_path / "all"
    with JetstreamServer(total=2000, rate=1500, seed=2, faults=faults) as server:
        c = capture(server, path, wait_for=lambda c: c.stats.received >= 2000)
        events = server.events
        conns = list(server.connections)
    assert len(events) == 2000
    posts = [e for e in events if is_post_version(e)]
    others = [e for e in events if not is_post_version(e)]
    assert sorted(dataset_keys(path)) == sorted(map(key, posts))  # no gap, no duplicate
    ev = read_events(path)
    assert len(ev) == len(others)  # the events table too: replays were dropped, not stored twice
    assert sorted(ev["time_us"]) == sorted(e["time_us"] for e in others)
    assert c.stats.received == 2000 and c.stats.duplicates == 0 and not c.stats.rejected
    # every reconnect asked to replay from 5 s before the newest event it had
    statuses = [cn.status for cn in conns]
    assert statuses[:6] == [101, 101, 101, 429, 101, 101]
    assert conns[0].cursor is None
    newest = None
    for cn in [cn for cn in conns if cn.status == 101]:
        assert cn.cursor == (None if newest is None else newest - 5_000_000)
        newest = max([newest or 0] + [events[s]["time_us"] for s in cn.sent])
    manifest = json.loads((path / "streamkit.json").read_text())
    assert manifest["source_name"] == "jetstream" and manifest["items"] == "posts" and not manifest.get("gaps")
    checkpoint = json.loads((path / "_wal" / "checkpoint.json").read_text())
    assert checkpoint["position"]["time_us"] == events[-1]["time_us"]


def test_collection_and_did_filters_are_honoured(tmp_path):
    with JetstreamServer(total=1500, rate=3000, seed=3) as server:
        capture(server, tmp_path / "graph", collections=["app.bsky.graph.*"],
                wait_for=lambda c: c.stats.received >= len(server.matching(["app.bsky.graph.*"])))
        expected = server.matching(["app.bsky.graph.*"])
        params = server.connections[0].params
    assert params["wantedCollections"] == ["app.bsky.graph.*"]
    ev = read_events(tmp_path / "graph")
    assert len(streamkit.read(tmp_path / "graph")) == 0
    assert len(ev) == len(expected) > 100
    commits = ev[ev["kind"] == "commit"]
    assert commits["collection"].str.startswith("app.bsky.graph.").all()
    assert set(ev["kind"]) <= {"commit", "identity", "account"}  # those two always come

    with JetstreamServer(total=1500, rate=3000, seed=3, accounts=20) as server:
        dids = server.dids[:3]
        capture(server, tmp_path / "dids", dids=dids, collections=[POST],
                wait_for=lambda c: c.stats.received >= len(server.matching([POST], dids)))
        expected = server.matching([POST], dids)
        params = server.connections[0].params
    assert params["wantedDids"] == dids
    df = streamkit.read(tmp_path / "dids", include_deleted=True, all_versions=True)
    assert set(df["did"]) <= set(dids) and len(df) == sum(map(is_post_version, expected)) > 0
    assert set(read_events(tmp_path / "dids")["did"]) <= set(dids)


def test_keywords_filter_posts_on_the_client(tmp_path):
    with JetstreamServer(total=1500, rate=3000, seed=4) as server:
        ep_holder = {}
        # collect()'s own track= (as for Twitter) is Jetstream's keyword filter
        c = capture(server, tmp_path / "kw", collections=[POST], track=["python", "data science"],
                    wait_for=lambda c: ep_holder.setdefault("ep", c._endpoint) is not None and (
                        c.stats.received + c._endpoint.skipped_track >= len(server.matching([POST]))))
        expected_all = server.matching([POST])
    ep = ep_holder["ep"]

    def matches(text: str) -> bool:  # independent of TrackMatcher: tokens, lower case
        words = re.findall(r"[\w#]+", text.lower())
        pairs = set(zip(words, words[1:], strict=False))
        return "python" in words or "#python" in words or ("data", "science") in pairs

    wanted = [e for e in expected_all if is_post_version(e) and matches(e["commit"]["record"]["text"])]
    df = streamkit.read(tmp_path / "kw", include_deleted=True, all_versions=True)
    assert sorted(dataset_keys(tmp_path / "kw")) == sorted(map(key, wanted)) and len(wanted) > 10
    assert ep.skipped_track == sum(map(is_post_version, expected_all)) - len(wanted) > 0
    # deletes, identity and account events are not keyword-filtered
    assert len(read_events(tmp_path / "kw")) == sum(not is_post_version(e) for e in expected_all)
    assert df["text"].str.contains("python|data science", case=False).all()
    assert c.stats.received == len(expected_all) - ep.skipped_track


def test_cursor_replays_from_that_time_and_a_too_old_cursor_is_clamped_and_recorded(tmp_path):
    with JetstreamServer(total=1, prefill=1200, buffer_size=800, seed=5) as server:
        events = server.events
        start = events[1000]["time_us"]
        capture(server, tmp_path / "cursor", cursor=start, wait_for=lambda c: c.stats.received >= 201)
        capture(server, tmp_path / "old", cursor="2024-01-01T00:00:00Z", wait_for=lambda c: c.stats.received >= 801)  # 800 + the gap
        conns = list(server.connections)
        events = server.events
    got = read_events(tmp_path / "cursor")["time_us"].tolist() + streamkit.read(tmp_path / "cursor", include_deleted=True, all_versions=True)["time_us"].tolist()
    assert sorted(got) == [e["time_us"] for e in events[1000:]]  # from exactly that event on
    assert not conns[0].clamped and conns[0].start_seq == 1000
    clamped = [cn for cn in conns if cn.clamped]
    assert clamped and clamped[0].start_seq == 401  # the oldest of the 800 it still held
    ev = read_events(tmp_path / "old")
    gaps = ev[ev["event_type"] == "gap"]
    assert len(gaps) == 1
    assert gaps["created_at"].iloc[0].timestamp() == pytest.approx(1704067200.0)  # the cursor asked
    assert gaps["time_us"].iloc[0] == events[401]["time_us"]  # the first event the server had
    assert "older than its buffer" in gaps["detail"].iloc[0]
    rows = len(ev) - 1 + len(streamkit.read(tmp_path / "old", include_deleted=True, all_versions=True))
    assert rows == len(events) - 401
    # ... and the manifest (what `streamkit inspect` shows) names the missing span
    manifest = json.loads((tmp_path / "old" / "streamkit.json").read_text())
    (gap,) = manifest["gaps"]
    assert gap["start"].startswith("2024-01-01T00:00:00") and "buffer" in gap["reason"]
    assert json.loads((tmp_path / "cursor" / "streamkit.json").read_text())["gaps"] == []


# -- SIGKILL mid-capture, then a restart on the same path -----------------------------------

CHILD = r"""
import json, sys, time
import streamkit
url, path = sys.argv[1], sys.argv[2]
c = streamkit.collect(source="jetstream", base_url=url, path=path, progress=False, flush_seconds=0.3,
                      wal_group_messages=8, wal_group_seconds=0.02, timeout=10.0)
while True:
    s = c.stats
    print(json.dumps({"received": s.received, "stored": s.stored}), flush=True)
    time.sleep(0.005)
"""


def test_sigkill_mid_capture_then_restart_leaves_no_gap_and_no_duplicate(tmp_path):
    path = tmp_path / "killed"
    with JetstreamServer(total=None, rate=600, seed=6) as server:
        sigkill_child(CHILD, server.url, str(path), err=tmp_path / "child.err", timeout=40,
                      until=lambda r: r["stored"] >= 300 and r["received"] - r["stored"] >= 30)
        killed_at = len(server.events)
        time.sleep(0.5)  # events keep coming while nobody listens
        with streamkit.collect(source="jetstream", base_url=server.url, path=path, flush_seconds=0.2,
                               progress=False, timeout=10.0) as again:
            # past everything generated up to the restart, and then some
            assert wait(lambda: again.stats.received >= 300 and len(streamkit.read(path)) > 0)
            target = len(server.events) + 200
            assert wait(lambda: len(server.events) >= target)
            time.sleep(0.5)
        conns = list(server.connections)
        events = server.events
    assert len(conns) == 2 and conns[1].cursor is not None and conns[1].cursor < events[killed_at]["time_us"]
    df = streamkit.read(path, include_deleted=True, all_versions=True)
    ev = read_events(path)
    end = max(df["time_us"].max(), ev["time_us"].max())
    assert end >= events[killed_at + 200]["time_us"]
    upto = [e for e in events if e["time_us"] <= end]
    want_posts = sorted(map(key, filter(is_post_version, upto)))
    got_posts = dataset_keys(path)
    assert len(got_posts) == len(set(got_posts))
    assert sorted(got_posts) == want_posts  # no gap, no duplicate
    want_events = sorted(e["time_us"] for e in upto if not is_post_version(e))
    assert sorted(ev["time_us"]) == want_events  # the events table too, exactly once each


# -- the CLI ---------------------------------------------------------------------------------

def test_cli_collect_and_inspect(tmp_path, capsys):
    out = tmp_path / "posts"
    with JetstreamServer(total=3000, rate=2000, seed=7) as server:
        code = main(["collect", "--source", "jetstream", "--collection", "app.bsky.feed.post",
                     "--track", "python,climate", "--base-url", server.url, "--out", str(out),
                     "--limit", "20", "--flush-seconds", "0.2", "--timeout", "5"])
        params = server.connections[0].params
    err = capsys.readouterr().err
    assert code == 0, err
    assert params["wantedCollections"] == ["app.bsky.feed.post"] and "cursor" not in params
    df = streamkit.read(out)
    assert len(df) >= 20 and (df["collection"] == POST).all()
    assert df["text"].str.contains("python|climate", case=False).all()
    assert main(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source_name"] == "jetstream" and summary["items"] == "posts"
    assert summary["rows"] == len(df)
    assert summary["filters"][-1]["params"]["collections"] == ["app.bsky.feed.post"]
    assert summary["filters"][-1]["params"]["track"] == ["python", "climate"]
    langs = df["langs"].explode().dropna().value_counts()  # a post without langs counts for none
    assert summary["languages"] == {k: int(v) for k, v in langs.head(10).items()}
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "jetstream" in text and f"{len(df):,}" in text


def test_cli_help_lists_the_jetstream_options(capsys):
    assert main(["collect", "--source", "jetstream", "--help"]) == 0
    help_text = capsys.readouterr().out
    for flag in ("--collection", "--did", "--keyword", "--cursor", "--host", "--max-message-size"):
        assert flag in help_text


# -- the test server itself speaks Jetstream faithfully -------------------------------------

def read_messages(url: str, n: int) -> list[dict]:
    from streamkit._websocket import WebSocketFramer, open_websocket

    with open_websocket(url, read_timeout=10) as ws:
        f, got = WebSocketFramer(), []
        while len(got) < n:
            data = ws.recv()
            assert data, "the server closed early"
            got += [json.loads(m) for m in f.feed(data)]
    return got[:n]


def test_server_filters_cursor_size_limit_and_bad_parameters():
    with JetstreamServer(total=1, prefill=600, seed=9, accounts=10) as server:
        events = server.events
        did = server.dids[0]
        cursor = events[100]["time_us"]
        got = read_messages(f"{server.url}/subscribe?wantedCollections=app.bsky.graph.*&wantedCollections="
                            f"app.bsky.feed.like&wantedDids={did}&cursor={cursor}", 3)
        want = [e for e in events[100:] if e["did"] == did and (e["kind"] != "commit" or (
            e["commit"]["collection"].startswith("app.bsky.graph.") or e["commit"]["collection"] == "app.bsky.feed.like"))]
        assert got == want[:3]
        small = read_messages(f"{server.url}/subscribe?maxMessageSizeBytes=300&cursor={cursor}", 20)
        assert small == [e for e in events[100:] if len(json.dumps(e, separators=(",", ":"),
                                                                    ensure_ascii=False).encode()) <= 300][:20]
        with pytest.raises(streamkit.HTTPStatusError, match="HTTP 400.*cursor must be an integer"):
            read_messages(f"{server.url}/subscribe?cursor=yesterday", 1)
        with pytest.raises(streamkit.HTTPStatusError, match="HTTP 404"):
            read_messages(f"{server.url}/firehose", 1)
