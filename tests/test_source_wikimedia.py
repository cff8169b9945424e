"""Wikimedia EventStreams: decoder, filters, resume, routine closes, collect, crash, CLI, panel.

Everything runs against :class:`streamkit.testing.WikimediaServer`, a real SSE server on
127.0.0.1 that keeps a deterministic log of events, so every capture can be checked against
exactly what the server sent and what a gapless capture must hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
import requests
from helpers import sigkill_child, wait_until

import streamkit
from streamkit._sse import parse_event
from streamkit.sources import get_source, open_source
from streamkit.sources.wikimedia import (
    CHANGE_SCHEMA,
    EVENT_SCHEMA,
    WikimediaEndpoint,
    WikimediaSource,
)
from streamkit.testing import Fault, WikimediaServer
from streamkit.testing._sse import sse_event

FIXTURES = Path(__file__).parent / "fixtures"
FAST = dict(timeout=1.0, retry_time=0.05, retry_420=0.1, snooze_time=0.02, snooze_time_cap=0.1,
            flush_seconds=0.2, progress=False)
UA = "streamkit-tests/1.0 (tests@example.org)"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"wikimedia_{name}.json").read_text("utf-8"))


def block(fx: dict) -> bytes:
    """A fixture as the framer hands it on: the event's field lines, without the blank line."""
    return sse_event(json.dumps(fx["data"], ensure_ascii=False), event=fx["event"], id=fx["id"])[:-2]


def stored_rows(path: Path) -> list[str]:
    """meta_id of every row in the part files (not read(): that would hide duplicates)."""
    folder = path / "changes"
    if not any(folder.rglob("*.parquet")):
        return []
    return pads.dataset(folder, format="parquet", partitioning="hive").to_table(columns=["meta_id"]) \
        .column("meta_id").to_pylist()


def assert_gapless(server: WikimediaServer, path: Path, streams=("recentchange",)) -> list[str]:
    """The dataset holds each change once, and every change of the log between its first and last."""
    rows = stored_rows(path)
    assert rows, "nothing stored"
    assert len(rows) == len(set(rows)), "duplicate rows on disk"
    sent = set(server.sent_ids)
    assert set(rows) <= sent, "rows the server never sent"
    indices = sorted(server.index_of(m) for m in rows)
    expected = server.expected_ids(list(streams), indices[0], indices[-1])
    missing = set(expected) - set(rows)
    assert not missing, f"{len(missing)} changes missing between log index {indices[0]} and {indices[-1]}"
    assert set(rows) == set(expected)
    return rows


# -- the decoder, on fixtures from Wikimedia's documented shapes -----------------------------

def test_recentchange_edit_columns():
    fx = fixture("recentchange_edit")
    batch = WikimediaSource().decode_batch([block(fx)], received_at_us=[1_746_030_242_000_000])
    assert batch.tweets.schema == CHANGE_SCHEMA and batch.events.schema == EVENT_SCHEMA
    row = batch.tweets.to_pylist()[0]
    d = fx["data"]
    assert row["meta_id"] == d["meta"]["id"] and row["meta_request_id"] == d["meta"]["request_id"]
    assert row["meta_stream"] == "mediawiki.recentchange" and row["meta_topic"] == "eqiad.mediawiki.recentchange"
    assert (row["meta_partition"], row["meta_offset"]) == (0, 5553294672)
    assert row["meta_dt"].isoformat() == "2025-04-30T16:24:01+00:00"
    assert row["timestamp"] == row["created_at"] == row["meta_dt"]
    assert row["schema"] == "/mediawiki/recentchange/1.0.0"
    assert (row["id"], row["type"], row["namespace"]) == (2839844572, "edit", 6)
    assert row["title"] == d["title"] and row["title_url"] == d["title_url"]
    assert row["comment"] == d["comment"] and row["parsedcomment"].startswith("Adding <a href=")
    assert (row["user"], row["bot"], row["minor"], row["patrolled"]) == ("Vysotsky", False, False, True)
    assert (row["length_old"], row["length_new"]) == (2244, 2281)
    assert (row["revision_old"], row["revision_new"]) == (711357579, 1026187021)
    assert (row["server_name"], row["server_url"], row["wiki"]) == (
        "commons.wikimedia.org", "https://commons.wikimedia.org", "commonswiki")
    assert row["log_type"] is None and row["page_id"] is None
    assert row["event_id"] == fx["id"]
    assert json.loads(row["raw"]) == d  # the event's JSON exactly as sent
    assert row["received_at"].timestamp() == 1_746_030_242
    assert batch.rejected == {} and batch.tweet_index.tolist() == [0]


def test_new_log_categorize_and_revision_create_columns():
    names = ["recentchange_new", "recentchange_log", "recentchange_categorize", "revision_create"]
    batch = WikimediaSource().decode_batch([block(fixture(n)) for n in names])
    new, log, cat, rev = batch.tweets.to_pylist()
    assert new["type"] == "new" and new["length_old"] is None and new["revision_old"] is None
    assert new["length_new"] == 5123 and new["title"] == "Fußball-Weltmeisterschaft 2026/Gruppe A"
    assert new["patrolled"] is None  # de.wikipedia does not patrol: the field is absent
    assert (log["type"], log["log_id"], log["log_type"], log["log_action"]) == ("log", 169876543, "newusers", "create")
    assert log["log_action_comment"] == "New user account" and log["length_new"] is None
    assert (cat["type"], cat["namespace"], cat["bot"]) == ("categorize", 14, True)
    # revision-create: the same columns from its own field names
    d = fixture("revision_create")["data"]
    assert rev["type"] is None and rev["meta_stream"] == "mediawiki.revision-create"
    assert (rev["wiki"], rev["title"], rev["namespace"], rev["page_id"]) == ("jawiki", "富士山", 0, 2104)
    assert (rev["user"], rev["bot"], rev["minor"]) == ("Tōru", False, True)
    assert (rev["revision_new"], rev["revision_old"], rev["length_new"]) == (d["rev_id"], d["rev_parent_id"], d["rev_len"])
    assert rev["server_name"] == "ja.wikipedia.org"  # from meta.domain
    assert rev["created_at"].isoformat() == "2025-04-30T16:24:05+00:00"  # from rev_timestamp
    assert batch.tweet_index.tolist() == [0, 1, 2, 3]


def test_canary_dropped_and_counted_errors_and_oddities_are_events_or_rejections():
    messages = [
        block(fixture("canary")),
        block(fixture("recentchange_edit")),
        block(fixture("error")),
        b"event: message\nid: [1]\ndata: {\"meta\": {\"dt\": \"2025-04-30T16:24:01Z\"}, \"type\": \"edit\"}",
        b"event: message\ndata: {\"meta\": ",
        b"event: message\ndata: [1, 2]",
        b"event: message\ndata: {\"meta\": {\"id\": \"\xff\"}}",
        b"event: heartbeat\ndata: still here",
    ]
    batch = WikimediaSource().decode_batch(messages, received_at_us=list(range(len(messages))))
    assert batch.tweets.column("meta_id").to_pylist() == [fixture("recentchange_edit")["data"]["meta"]["id"]]
    assert batch.tweet_index.tolist() == [1]
    assert batch.rejected == {"canary": 1, "malformed_json": 1, "not_an_object": 1, "invalid_utf8": 1}
    events = batch.events.to_pylist()
    assert [e["event_type"] for e in events] == ["error", "no_meta_id", "heartbeat"]
    assert batch.event_index.tolist() == [2, 3, 7]
    assert (events[0]["code"], events[0]["message"]) == ("KafkaError", "Local: Broker transport failure")
    assert events[0]["event_id"] == fixture("error")["id"]
    assert events[1]["timestamp"].isoformat() == "2025-04-30T16:24:01+00:00"
    assert events[2]["message"] == "still here"
    assert parse_event(events[0]["raw"].encode()).event == "error"
    # received = stored + events + rejected: nothing vanished uncounted
    assert batch.tweets.num_rows + batch.events.num_rows + batch.n_rejected == len(messages)


def test_what_is_not_bytes_is_rejected_and_str_or_memoryview_is_read():
    edit = block(fixture("recentchange_edit"))
    batch = WikimediaSource().decode_batch([7, memoryview(edit), edit.decode("utf-8"), None])
    assert batch.rejected == {"not_bytes": 2} and batch.tweet_index.tolist() == [1, 2]
    assert WikimediaSource().position([edit, 7]) == {"last_event_id": fixture("recentchange_edit")["id"],
                                                     "dt": "2025-04-30T16:24:01Z"}


def test_keep_raw_false_and_an_empty_batch():
    batch = WikimediaSource().decode_batch([block(fixture("recentchange_edit")), block(fixture("error"))],
                                           keep_raw=False)
    assert batch.tweets.column("raw").null_count == 1 and batch.events.column("raw").null_count == 1
    empty = WikimediaSource().decode_batch([])
    assert empty.tweets.schema == CHANGE_SCHEMA and empty.tweets.num_rows == 0 and empty.events.num_rows == 0


def test_client_side_filters():
    names = ["recentchange_edit", "recentchange_new", "recentchange_log", "recentchange_categorize",
             "revision_create"]
    messages = [block(fixture(n)) for n in names]

    def titles(**filters):
        batch = WikimediaSource(**filters).decode_batch(messages)
        kept = batch.tweets.column("wiki").to_pylist()
        assert batch.rejected.get("filtered", 0) == len(messages) - len(kept)
        assert len(batch.tweet_index) == len(kept)
        return kept

    assert titles() == ["commonswiki", "dewiki", "enwiki", "enwiki", "jawiki"]
    assert titles(wiki=["enwiki"]) == ["enwiki", "enwiki"]
    assert titles(wiki="de.wikipedia.org,jawiki") == ["dewiki", "jawiki"]  # server names too
    assert titles(type=["edit", "new"]) == ["commonswiki", "dewiki"]  # revision-create has no type
    assert titles(bot=True) == ["enwiki"]
    assert titles(bot="false") == ["commonswiki", "dewiki", "enwiki", "jawiki"]
    assert titles(namespace=[0, "14"]) == ["dewiki", "enwiki", "jawiki"]
    assert titles(wiki="enwiki", bot=False) == ["enwiki"]
    batch = WikimediaSource(wiki="enwiki").decode_batch(messages)
    assert batch.tweet_index.tolist() == [2, 3]  # positions of the kept messages
    with pytest.raises(streamkit.ConfigError, match="recentchange type"):
        WikimediaSource(type="edits")
    with pytest.raises(streamkit.ConfigError, match="bot takes"):
        WikimediaSource(bot="maybe")
    with pytest.raises(streamkit.ConfigError, match="namespace takes numbers"):
        WikimediaSource(namespace="Talk")


def test_position_is_the_last_id_with_its_time():
    src = get_source("wikimedia")
    edit, canary = fixture("recentchange_edit"), fixture("canary")
    assert src.position([block(edit), block(canary)]) == {"last_event_id": canary["id"], "dt": canary["data"]["meta"]["dt"]}
    assert src.position([block(edit), b"event: message\ndata: {}"]) == {"last_event_id": edit["id"], "dt": "2025-04-30T16:24:01Z"}
    assert src.position([b"data: {}"]) is None


# -- the endpoint ----------------------------------------------------------------------------

def test_request_resume_and_since():
    ep, _ = open_source("wikimedia", streams=["recentchange", "page-create"], since="2026-12-01T10:00:00+01:00",
                        user_agent=UA, base_url="http://127.0.0.1:9/")
    req = ep.request()
    assert req.url == "http://127.0.0.1:9/v2/stream/recentchange,page-create"
    assert req.params == {"since": "2026-12-01T09:00:00Z"} and req.headers["User-Agent"] == UA
    assert "Last-Event-ID" not in req.headers
    ep.observe([b"id: [1]\ndata: {}", b"data: {}", b"id: [2]\ndata: {}", b"data: no id"])
    assert ep.request().headers["Last-Event-ID"] == "[2]" and ep.request().params == {}  # id wins over since
    both = '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":5},' \
           '{"topic":"codfw.mediawiki.page-create","partition":0,"offset":-1}]'
    ep.resume_from({"last_event_id": both, "dt": "2026-12-02T00:00:00Z"})
    assert ep.request().headers["Last-Event-ID"] == both
    # an id of other streams would switch streams on the service: start from its time instead
    fresh, _ = open_source("wikimedia", streams=["recentchange"], user_agent=UA)
    fresh.resume_from({"last_event_id": both, "dt": "2026-12-02T00:00:00Z"})
    req = fresh.request()
    assert "Last-Event-ID" not in req.headers and req.params == {"since": "2026-12-02T00:00:00Z"}


def test_since_forms_and_option_errors(monkeypatch):
    ms = open_source("wikimedia", since=1764547200000, user_agent=UA)[0].since
    assert ms == "2025-12-01T00:00:00Z"
    ago = open_source("wikimedia", since="2h", user_agent=UA)[0].since
    assert abs(time.time() - 7200 - datetime.fromisoformat(ago.replace("Z", "+00:00")).timestamp()) < 120
    for bad, match in [({"since": "yesterday"}, "not a time"), ({"since": "2999-01-01"}, "future"),
                       ({"streams": "a b"}, "not valid"), ({"streams": []}, "at least one"),
                       ({"user_agent": "x\r\nX-Evil: 1"}, "one non-empty line"),
                       ({"routine_close_after": -1}, "routine_close_after")]:
        with pytest.raises(streamkit.ConfigError, match=match):
            open_source("wikimedia", **{"user_agent": UA, **bad})
    with pytest.raises(streamkit.ConfigError, match="has no option 'track'"):
        open_source("wikimedia", track="python")
    monkeypatch.setenv("STREAMKIT_USER_AGENT", "my-study/2.0 (lab@example.org)")
    assert open_source("wikimedia")[0].user_agent == "my-study/2.0 (lab@example.org)"
    assert open_source("wikimedia", user_agent=UA)[0].user_agent == UA  # the option wins
    monkeypatch.delenv("STREAMKIT_USER_AGENT")
    ua = open_source("wikimedia", contact="ada@example.org")[0].user_agent
    assert ua.startswith("streamkit/") and "(ada@example.org; +https://" in ua and "python-requests/" in ua


def test_routine_close_is_decided_by_how_long_the_connection_lasted():
    ep = WikimediaEndpoint("http://127.0.0.1:9", ["recentchange"], user_agent=UA)
    assert ep.routine_close(900.0) and ep.routine_close(60.0)  # the 15-minute close
    ep.observe([b"id: [1]\ndata: {}"])
    assert not ep.routine_close(5.0)  # events or not: a short connection that ends is a fault
    assert WikimediaEndpoint("http://127.0.0.1:9", ["recentchange"], user_agent=UA,
                             routine_close_after=0.5).routine_close(0.6)


# -- the test server speaks the protocol -------------------------------------------------------

def read_events(resp, n):
    from streamkit._sse import SSEFramer

    framer, out = SSEFramer(), []
    for data in resp.iter_content(None):
        out += [parse_event(b) for b in framer.feed(data)]
        if len(out) >= n:
            return out
    return out


@pytest.mark.parametrize("id_format", ["timestamp", "offset"])
def test_server_replays_after_last_event_id_and_from_since(id_format):
    with WikimediaServer(rate=500, history=300, id_format=id_format, seed=3) as server:
        url = server.url + "/v2/stream/recentchange"
        with requests.get(url, params={"since": "0"}, headers={"User-Agent": UA}, stream=True) as r:
            first = read_events(r, 80)
        ids = [json.loads(e.data)["meta"]["id"] for e in first]
        assert ids[:10] == server.expected_ids(["recentchange"], 0, 299)[:10]
        entry = json.loads(first[9].id)[0]
        assert entry["topic"] == "eqiad.mediawiki.recentchange" and id_format in entry
        with requests.get(url, headers={"User-Agent": UA, "Last-Event-ID": first[9].id}, stream=True) as r:
            again = read_events(r, 10)
        assert [json.loads(e.data)["meta"]["id"] for e in again] == ids[10:20]
        # as on the real service: only the id's topics are consumed, and only the URL's are allowed
        with requests.get(server.url + "/v2/stream/recentchange,revision-create",
                          headers={"User-Agent": UA, "Last-Event-ID": first[9].id}, stream=True) as r:
            assert {json.loads(e.data)["meta"]["stream"] for e in read_events(r, 20)} == {"mediawiki.recentchange"}
        r = requests.get(server.url + "/v2/stream/page-create", headers={"User-Agent": UA, "Last-Event-ID": first[9].id})
        assert r.status_code == 404 and "TopicNotAvailableError" in r.json()["detail"]
        assert requests.get(url, headers={"User-Agent": UA, "Last-Event-ID": "nope"}).status_code == 400
    domains = [json.loads(e.data)["meta"]["domain"] for e in first]
    assert "canary" in domains  # every 40th event of the log


def test_server_refuses_undescriptive_user_agents_and_unknown_streams():
    with WikimediaServer(rate=100) as server:
        url = server.url + "/v2/stream/recentchange"
        for ua in ("", "python-requests/2.32.3", "curl/8.5.0"):
            r = requests.get(url, headers={"User-Agent": ua})
            assert r.status_code == 403 and "User-Agent_policy" in r.json()["detail"]
        ep, _ = open_source("wikimedia", base_url=server.url)  # streamkit's default UA carries a URL
        with requests.get(ep.request().url, headers=ep.request().headers, stream=True) as r:
            assert r.status_code == 200
        r = requests.get(server.url + "/v2/stream/recentchanges", headers={"User-Agent": UA})
        assert r.status_code == 400 and r.json()["detail"] == "Invalid streams: recentchanges"


# -- streaming: routine closes, resume across faults -------------------------------------------

@pytest.mark.parametrize("cleanly", [True, False], ids=["end-of-body", "dropped-between-events"])
def test_forced_close_reconnects_at_once_without_an_error_or_back_off(tmp_path, cleanly):
    # The server closes every 1 s (15 minutes on the real service); 0.3 s counts as "long" here
    # (a wide margin: a loaded machine may start the client's clock late). A back-off would wait
    # snooze_time (5 s) at least: three closes in 3 s prove there was none. A proxy may drop
    # the connection instead of ending the body: between two events, that is routine too.
    with WikimediaServer(rate=200, close_after=1.0, close_cleanly=cleanly) as server:
        with streamkit.collect(source="wikimedia", base_url=server.url, path=tmp_path / "d", user_agent=UA,
                               routine_close_after=0.3, flush_seconds=0.2, timeout=2.0, snooze_time=5.0,
                               retry_time=5.0, progress=False) as c:
            assert wait_until(lambda: server.forced_closes >= 3 and c.stats.reconnects >= 3, timeout=30,
                              interval=0.05), (server.forced_closes, c.stats)
            assert c.stats.errors == 0 and c.stats.last_error is None
        requests_ = server.requests
    assert all(r.status == 200 for r in requests_)
    assert all(r.last_event_id for r in requests_[1:])  # every reconnect resumed
    starts = [r.time for r in requests_[:4]]
    assert max(b - a for a, b in zip(starts, starts[1:], strict=False)) < 4.0
    assert_gapless(server, tmp_path / "d")


def test_a_short_connection_the_server_ends_is_a_fault(tmp_path):
    # closed at once; then an error event and an end, as the service does when Kafka fails
    faults = [Fault.end(after=0), Fault.disconnect(after=10)]
    with WikimediaServer(rate=200, faults=faults) as server:
        with streamkit.collect(source="wikimedia", base_url=server.url, path=tmp_path / "d", user_agent=UA,
                               **FAST) as c:
            assert c.wait_for(stored=40, timeout=30)
            assert c.stats.errors == 2 and c.stats.reconnects == 2
            assert server.faults_injected == {"end": 1, "disconnect": 1}
    assert_gapless(server, tmp_path / "d")


@pytest.mark.parametrize("keepalive", [0.2, None])
def test_comment_keepalives_hold_a_silent_stream_open(tmp_path, keepalive):
    # 60 events exist, then the log stops: only ":" comments (if any) keep the connection alive.
    with WikimediaServer(rate=500, history=60, max_events=60, keepalive_interval=keepalive) as server:
        with streamkit.collect(source="wikimedia", base_url=server.url, path=tmp_path / "d", since="0",
                               user_agent=UA, **{**FAST, "timeout": 0.8}) as c:
            assert c.wait_for(stored=len(server.expected_ids(["recentchange"], 0, 59)), timeout=30)
            time.sleep(2.0)
            stalls = c.stats.stalls
    if keepalive:
        assert stalls == 0 and len(server.requests) == 1
    else:  # the control: without keep-alives the same silence is a stall, and a reconnect
        assert stalls >= 1 and server.requests[-1].last_event_id


def test_last_event_id_resume_across_faults_no_duplicates_no_gaps(tmp_path):
    faults = [Fault.cut(after=40), Fault.http(503), Fault.stall(after=25, seconds=2.0),
              Fault.http(429, retry_after=0.1), Fault.disconnect(after=30), Fault.garbage(after=10),
              Fault.cut(after=0), Fault.garbage(after=5, kind="invalid_utf8"), Fault.end(after=15)]
    with WikimediaServer(rate=300, close_after=1.5, faults=faults, seed=7) as server:
        with streamkit.collect(source="wikimedia", streams=["recentchange", "revision-create"],
                               base_url=server.url, path=tmp_path / "d", user_agent=UA, **FAST) as c:
            injected = lambda: sum(server.faults_injected.values()) == len(faults)  # noqa: E731
            assert wait_until(lambda: injected() and c.stats.stored >= 400, timeout=45, interval=0.05), \
                (c.stats, server.faults_injected)
        stats = c.stats
    assert sum(server.faults_injected.values()) == len(faults)
    rows = assert_gapless(server, tmp_path / "d", streams=("recentchange", "revision-create"))
    assert stats.stored == len(rows)
    assert stats.rejected.get("malformed_json") == 1 and stats.rejected.get("invalid_utf8") == 1
    assert stats.rejected.get("canary", 0) >= 1
    errors = streamkit.read_events(tmp_path / "d")
    assert errors["event_type"].tolist() == ["error"] and errors["code"].tolist() == ["KafkaError"]
    assert all(r.last_event_id for r in server.requests[1:])


# -- collect(), the dataset, inspect ----------------------------------------------------------

def test_collect_source_wikimedia_end_to_end(tmp_path):
    path = tmp_path / "wm"
    with WikimediaServer(rate=300, history=200) as server:
        server.add_faults(Fault.inject(after=20, messages=[{"name": "KafkaError", "message": "broker restarted"}]))
        c = streamkit.collect(source="wikimedia", base_url=server.url, path=path, since="0", wiki=["enwiki"],
                              bot=False, user_agent=UA, **FAST)
        assert c.path == path and c.filter == {"since": "0", "wiki": ["enwiki"], "bot": False, "user_agent": UA}
        assert c.wait_for(stored=30, timeout=30), c.stats
        c.stop()
    df = streamkit.read(path)
    assert list(df.columns) == CHANGE_SCHEMA.names
    assert set(df["wiki"]) == {"enwiki"} and not df["bot"].any()
    assert df["meta_id"].is_unique and str(df["created_at"].dtype) == "datetime64[us, UTC]"
    manifest = json.loads((path / "streamkit.json").read_text())
    assert manifest["source_name"] == "wikimedia" and manifest["items"] == "changes"
    params = manifest["filters"][0]["params"]
    assert params == {"endpoint": "wikimedia", "streams": ["recentchange"], "wiki": ["enwiki"], "bot": False,
                      "since": "1970-01-01T00:00:00Z"}
    assert manifest["gaps"] == []  # a replayable source records none
    events = streamkit.read_events(path)
    assert events["message"].tolist() == ["broker restarted"]
    checkpoint = json.loads((path / "_wal" / "checkpoint.json").read_text())
    assert json.loads(checkpoint["position"]["last_event_id"])[0]["topic"] == "eqiad.mediawiki.recentchange"
    s = c.stats
    assert s.received == s.stored + s.duplicates + s.events + sum(s.rejected.values())
    assert s.rejected["filtered"] > 0
    # the first change stored is the first enwiki human change of the log: since=0 replayed it all
    first = min(server.index_of(m) for m in df["meta_id"])
    assert all(server.event(i).get("wiki") != "enwiki" or server.event(i).get("bot") or server.is_canary(i)
               for i in range(first))


def test_restart_resumes_from_the_committed_position(tmp_path):
    path = tmp_path / "d"
    with WikimediaServer(rate=300) as server:
        with streamkit.collect(source="wikimedia", base_url=server.url, path=path, user_agent=UA, **FAST) as c:
            assert c.wait_for(stored=50, timeout=30)
        position = json.loads((path / "_wal" / "checkpoint.json").read_text())["position"]
        time.sleep(0.3)  # events the capture is not there for: the restart must replay them
        with streamkit.collect(source="wikimedia", base_url=server.url, path=path, user_agent=UA, **FAST) as c:
            assert c.wait_for(stored=50, timeout=30)
        resumed = [r for r in server.requests if r.last_event_id]
        assert resumed and resumed[0].last_event_id == position["last_event_id"]
    assert_gapless(server, path)


CHILD = r"""
import json, sys, time
import streamkit
url, path = sys.argv[1], sys.argv[2]
c = streamkit.collect(source="wikimedia", base_url=url, path=path, since="0", progress=False,
                      user_agent="streamkit-tests/1.0 (tests@example.org)", flush_seconds=1.0,
                      wal_group_messages=8, wal_group_seconds=0.02, timeout=10.0)
while True:
    s = c.stats
    print(json.dumps({"received": s.received, "stored": s.stored}), flush=True)
    time.sleep(0.005)
"""


def test_sigkill_mid_capture_then_restart_no_gap_no_duplicate(tmp_path):
    path = tmp_path / "crashy"
    with WikimediaServer(rate=300, history=100, seed=11) as server:
        # killed with logged but uncommitted events, so that recovery has work to do
        sigkill_child(CHILD, server.url, str(path), err=tmp_path / "child.err", timeout=40,
                      until=lambda r: r["stored"] > 50 and r["received"] - r["stored"] >= 20)
        sent_to_child = server.sent
        committed_by_child = json.loads((path / "_wal" / "checkpoint.json").read_text())["position"]
        time.sleep(0.3)  # events the capture is not there for: the restart must replay them
        with streamkit.collect(source="wikimedia", base_url=server.url, path=path, user_agent=UA,
                               **FAST) as again:
            assert wait_until(lambda: len(server.sent) > len(sent_to_child) + 200, timeout=30, interval=0.05)
            assert again.wait_for(received=100, timeout=30)
        assert again.stats.state == "stopped" and again.stats.recovered > 0
        child, restart = server.requests[:2]
        assert child.last_event_id is None and restart.last_event_id is not None
        # The restart resumed after the last event the child had logged: what it had committed
        # plus what recovery committed from its write-ahead log, and nothing it never received.
        resumed_after = server.index_of_id(restart.last_event_id)
        assert server.index_of_id(committed_by_child["last_event_id"]) < resumed_after
        assert resumed_after <= max(e.index for e in sent_to_child)
        replayed = [e for e in server.sent[len(sent_to_child):] if not e.canary]
        assert replayed and min(e.index for e in replayed) > resumed_after
    rows = assert_gapless(server, path)
    first = min(server.index_of(m) for m in rows)
    assert first == min(i for i in range(100) if server.stream_of(i) == "recentchange" and not server.is_canary(i))


# -- the command line ------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamkit", *args], capture_output=True, text=True, timeout=60)


def test_cli_collect_and_inspect(tmp_path):
    out = tmp_path / "cli"
    with WikimediaServer(rate=200, history=100) as server:
        done = run_cli("collect", "--source", "wikimedia", "--stream", "recentchange", "--wiki", "enwiki,commonswiki",
                       "--no-bot", "--since", "0", "--base-url", server.url, "--out", str(out), "--duration", "2",
                       "--flush-seconds", "0.3", "--user-agent", UA, "--timeout", "5")
    assert done.returncode == 0, done.stderr
    assert "items stored" in done.stderr
    summary = run_cli("inspect", str(out), "--json")
    assert summary.returncode == 0, summary.stderr
    s = json.loads(summary.stdout)
    df = streamkit.read(out)
    assert s["source_name"] == "wikimedia" and s["items"] == "changes" and s["rows"] == len(df) > 0
    assert set(df["wiki"]) <= {"enwiki", "commonswiki"} and not df["bot"].any()
    assert s["filters"][0]["params"]["streams"] == ["recentchange"] and s["filters"][0]["params"]["bot"] is False
    assert server.requests[0].user_agent == UA
    text = run_cli("inspect", str(out))
    assert text.returncode == 0 and "source wikimedia" in text.stdout and f"{len(df):,} changes" in text.stdout
    helptext = run_cli("collect", "--source", "wikimedia", "--help").stdout
    for flag in ("--stream", "--wiki", "--type", "--namespace", "--bot", "--no-bot", "--since", "--contact",
                 "--user-agent"):
        assert flag in helptext


# -- the panel -------------------------------------------------------------------------------

def test_panel_shows_changes_and_applies_a_new_filter(tmp_path):
    pytest.importorskip("ipywidgets")
    with WikimediaServer(rate=300) as server:
        c = streamkit.collect(source="wikimedia", base_url=server.url, path=tmp_path / "p", wiki=["enwiki"],
                              bot=True, user_agent=UA, **FAST)
        p = c.panel(refresh_interval=0.1)
        try:
            assert {"streams", "wiki", "type", "namespace", "bot", "since"} <= set(p.inputs)
            assert (p.inputs["wiki"].value, p.inputs["bot"].value) == ("enwiki", "true")
            def shown() -> bool:
                p.refresh()  # what the refresher does while the panel is displayed
                return "data-rows='0'" not in p._table.value and "enwiki" in p._table.value

            assert wait_until(shown, timeout=30, interval=0.05), p._table.value
            assert all(h in p._table.value for h in ("wiki", "user", "title", "type"))
            p.inputs["wiki"].value = "dewiki"
            p.inputs["bot"].value = "false"
            p.apply_filter()
            assert "Filter applied" in p.message, p.message
            new = p.collector
            assert new is not c and new.filter["wiki"] == ["dewiki"] and new.filter["bot"] == "false"
            assert wait_until(lambda: new.stats.stored >= 5, timeout=30, interval=0.05)
            assert server.requests[-1].last_event_id  # the restart resumed
        finally:
            p.close()
            c.stop()
            if p.collector is not None:
                p.collector.stop()
    df = streamkit.read(tmp_path / "p")
    assert set(df["wiki"]) == {"enwiki", "dewiki"}
    assert df[df["wiki"] == "enwiki"]["bot"].all() and not df[df["wiki"] == "dewiki"]["bot"].any()


def test_schemas_are_explicit_and_documented():
    for schema in (CHANGE_SCHEMA, EVENT_SCHEMA):
        assert all(f.metadata and f.metadata[b"doc"] for f in schema)
    assert CHANGE_SCHEMA.field("meta_id").nullable is False
    assert pa.types.is_timestamp(CHANGE_SCHEMA.field("created_at").type)
    assert get_source("wikimedia").key_columns == ("meta_id",) and get_source("wikimedia").can_replay
