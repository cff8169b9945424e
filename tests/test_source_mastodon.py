"""The Mastodon source against a real local Mastodon server: decoder, both transports,
heartbeats, the REST gap fill, collect(), a SIGKILL and restart, the CLI, token hygiene."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import sigkill_child, wait_until

import streamkit
from streamkit.cli import main
from streamkit.sources import open_source
from streamkit.sources.mastodon import (
    STATUS_SCHEMA,
    TOKEN_ENV,
    MastodonSource,
    read_statuses,
)
from streamkit.testing import MASTODON_TEST_TOKEN as TOKEN
from streamkit.testing import MastodonFault, MastodonServer

FIXTURES = Path(__file__).parent / "fixtures"
FAST = dict(timeout=2.0, retry_time=0.05, retry_420=0.1, snooze_time=0.02, snooze_time_cap=0.1)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"mastodon_{name}.json").read_text(encoding="utf-8"))


def sse(event: str, payload) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"event: {event}\ndata: {data}".encode()


def ws(event: str, payload, stream=("public",)) -> bytes:
    body = {"stream": list(stream), "event": event}
    if payload is not None:
        body["payload"] = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return json.dumps(body).encode()


def wait_done(server: MastodonServer, collector, extra: float = 1.0, timeout: float = 30.0) -> None:
    """Until the server's last event is out (plus ``extra`` s for it to be committed)."""
    assert wait_until(lambda: server.done_at() is not None and time.time() > server.done_at() + extra,
                      timeout=timeout, interval=0.05), collector.stats


def stored_keys(path: Path) -> list[tuple]:
    """Every (instance, id, edited_at) in the statuses part files, duplicates included."""
    keys = []
    for part in sorted((path / "statuses").rglob("*.parquet")):
        t = pq.read_table(part, columns=["instance", "id", "edited_at"])
        keys += list(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))
    return keys


def assert_no_gap(path: Path, server: MastodonServer, stream: str = "public", tag: str | None = None) -> set:
    """Everything the server published on the stream is stored, except statuses published
    *and* deleted while nobody listened (the REST timeline no longer has them)."""
    published = set(server.published(stream, tag))
    streamed = {e["id"] for e in server.sent if e["event"] == "update"}
    stored = set(streamkit.read(path, include_deleted=True, all_versions=True)["id"])
    assert stored <= published
    assert published - stored <= server.deleted_ids() - streamed, sorted(published - stored)
    return published


# -- the decoder ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [sse, ws])
def test_decoder_columns_on_the_documented_shapes(shape):
    src = MastodonSource(instance="mastodon.social", stream="public")
    messages = [shape("update", fixture("status")), shape("update", fixture("status_reply")),
                shape("update", fixture("status_reblog")), shape("status.update", fixture("status_edited")),
                shape("delete", "108914398911648589"), shape("notification", fixture("notification")),
                shape("filters_changed", "undefined" if shape is sse else None),
                b"event: update\ndata: {not json", b"\xff\xfe", shape("update", '{"no": "id"}')]
    batch = src.decode_batch(messages, received_at_us=1_700_000_000_000_000)
    t = batch.tweets
    assert t.schema == STATUS_SCHEMA
    assert batch.tweet_index.tolist() == [0, 1, 2, 3] and batch.event_index.tolist() == [4, 5, 6]
    assert batch.rejected == {"malformed_json": 1, "invalid_utf8": 1, "not_a_status": 1}
    rows = t.to_pylist()
    doc, reply, boost, edited = rows
    assert doc["id"] == "103270115826048975" and doc["instance"] == "mastodon.social"
    assert doc["account_acct"] == "Gargron" and doc["account_display_name"] == "Eugen"
    assert doc["account_followers_count"] == 322930 and doc["favourites_count"] == 11
    assert doc["text"].startswith('"I lost my inheritance with one wrong digit on my sort code"\nhttps://www.theguardian.com/money/2019/dec/07/')
    assert "<" not in doc["text"] and doc["content"].startswith("<p>&quot;")
    assert doc["card_url"].startswith("https://www.theguardian.com/") and doc["edited_at"] is None
    assert doc["created_at"].isoformat() == "2019-12-08T03:48:33.901000+00:00" and doc["event"] == "update"
    assert doc["received_at"].timestamp() == 1_700_000_000
    assert reply["in_reply_to_id"] == "108914298452377720" and reply["mentions"] == ["disarray@pl.nulled.red"]
    assert reply["language"] is None and reply["visibility"] == "unlisted"
    assert boost["reblog_of_id"] == "109331233460573921" and boost["account_acct"] == "Gargron"
    assert boost["hashtags"] == ["caturday", "python"] and boost["media_types"] == ["image", "video"]
    assert boost["text"] == "Guten Morgen! #Caturday #Python mit @Gargron & Kaffee" and boost["language"] == "de"
    assert edited["event"] == "status.update" and edited["edited_at"].isoformat() == "2022-11-15T16:07:29.023000+00:00"
    assert json.loads(json.loads(rows[0]["raw"])["payload"] if shape is ws else rows[0]["raw"].split("data: ", 1)[1])["id"] == doc["id"]
    ev = batch.events.to_pylist()
    assert [e["event_type"] for e in ev] == ["delete", "notification", "filters_changed"]
    assert ev[0]["status_id"] == "108914398911648589"
    assert ev[1]["status_id"] == "108914327388663283" and ev[1]["detail"] == "mention"
    assert ev[1]["created_at"].isoformat() == "2022-08-30T23:09:54.070000+00:00"
    assert (ev[0]["stream"] == "public")
    # The position is the newest *new* status seen (an edit's old id does not move it back).
    assert src.position(messages) == {"instance": "mastodon.social", "stream": "public", "filter": None,
                                      "newest_id": "109331234000000042"}
    assert src.decode_batch(messages[:1], keep_raw=False).tweets.column("raw").null_count == 1


def test_options_are_checked_before_connecting(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    bad = [dict(stream="hashtag"), dict(stream="firehose"), dict(stream="user"), dict(stream="list", token="t"),
           dict(stream="public", tag="python"), dict(transport="carrier-pigeon"), dict(token="a b"),
           dict(instance="http://mastodon.example.org")]
    for options in bad:
        options.setdefault("instance", "https://mastodon.social")
        with pytest.raises(streamkit.ConfigError) as info:
            open_source("mastodon", **options)
        assert "a b" not in str(info.value)
    with pytest.raises(streamkit.ConfigError, match="needs an instance"):
        open_source("mastodon", stream="public")
    ep, _ = open_source("mastodon", instance="mastodon.social", stream="list", list_id=7, token="tok")
    assert ep.request().url == "https://mastodon.social/api/v1/streaming/list" and ep.request().params == {"list": "7"}
    assert ep.rest_url() == "https://mastodon.social/api/v1/timelines/list/7"


# -- streaming, both transports ----------------------------------------------------------------

@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_collect_fills_the_reconnect_gap_from_the_rest_timeline(tmp_path, transport):
    # A cut mid-event, then a 503 (SSE) or a 429 with X-RateLimit headers (WebSocket): the
    # stream misses ~0.4 s of statuses; the REST fill brings them.
    faults = [MastodonFault.cut(after=30), MastodonFault.http(503 if transport == "sse" else 429)]
    path = tmp_path / "d"
    with MastodonServer(statuses=240, rate=120, faults=faults, heartbeat=0.3) as server:
        options = dict(FAST, retry_time=0.4, retry_420=0.4)
        with streamkit.collect(source="mastodon", base_url=server.url, stream="hashtag", tag="python",
                               token=TOKEN, transport=transport, path=path, flush_seconds=0.2, **options) as c:
            wait_done(server, c)
        published = server.published("hashtag", "python")
        streamed = {e["id"] for e in server.sent if e["event"] == "update"}
        served = set(server.rest_served)
        requests = list(server.requests)
        deleted = server.deleted_ids()
    assert len(published) > 40
    df = streamkit.read(path, include_deleted=True, all_versions=True)  # every stored row
    # No gap: everything published is stored, but for statuses deleted before anyone could
    # see them (published and deleted while disconnected: the REST timeline no longer has them).
    assert set(df["id"]) <= set(published)
    assert set(published) - set(df["id"]) <= deleted - streamed
    keys = stored_keys(path)
    assert len(keys) == len(set(keys))  # no duplicate (the overlap was dropped)
    missed = set(published) - streamed - deleted
    assert missed and missed <= served  # the stream really missed some; the REST fill had them
    assert [p for p, _q, s in requests if p.startswith("/api/v1/timelines/")] == ["/api/v1/timelines/tag/python"] * len(
        [1 for p, _q, _s in requests if p.startswith("/api/v1/timelines/")])
    assert [s for _p, _q, s in requests if s not in (200, 101)] == [503 if transport == "sse" else 429]
    manifest = json.loads((path / "streamkit.json").read_text())
    assert manifest["source_name"] == "mastodon" and manifest["items"] == "statuses"
    assert manifest["gaps"] == []  # filled, so nothing is recorded as missing
    assert manifest["filters"][-1]["params"]["tag"] == "python"
    events = streamkit.read_events(path)
    assert set(events["event_type"]) <= {"delete"} and len(events) > 0
    # Edits are new versions (not duplicates, not dropped); read_statuses gives the newest, no deletes.
    edited = df[df["event"] == "status.update"]
    assert len(edited) and edited["text"].str.endswith("(edit: typo)").all()
    latest = read_statuses(path)
    assert latest.equals(streamkit.read(path))
    assert latest["id"].is_unique and set(latest["id"]) == set(published) - deleted
    assert set(edited["id"]) <= set(latest[latest["text"].str.endswith("(edit: typo)")]["id"]) | set(events["status_id"])


def test_websocket_subscribes_with_a_message(tmp_path):
    with MastodonServer(statuses=20, rate=200, heartbeat=None) as server:
        ep, src = open_source("mastodon", base_url=server.url, stream="hashtag:local", tag="Rust",
                              token=TOKEN, transport="websocket")
        with streamkit.collect(endpoint=ep, decoder=src, path=tmp_path / "d", flush_seconds=0.2, **FAST) as c:
            wait_done(server, c, extra=0.5)
        assert server.subscriptions == [{"conn": 1, "stream": "hashtag:local", "tag": "rust"}]
        published = server.published("hashtag:local", "rust")
    assert ep.request().url == f"{server.url.replace('http', 'ws')}/api/v1/streaming"
    assert set(streamkit.read(tmp_path / "d")["id"]) == set(published)


class Counting(streamkit.StreamListener):
    def __init__(self):
        super().__init__()
        self.messages = 0

    def on_data(self, raw_data):
        self.messages += 1


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_heartbeats_alone_keep_the_connection_alive(transport):
    results = {}
    for heartbeat in (0.2, None):
        with MastodonServer(statuses=0, heartbeat=heartbeat) as server:
            ep, _ = open_source("mastodon", base_url=server.url, stream="public", token=TOKEN, transport=transport)
            stream = streamkit.Stream(None, Counting(), endpoint=ep, **dict(FAST, timeout=0.8))
            stream.start(is_async=True)
            try:
                time.sleep(2.0)
            finally:
                stream.disconnect()
            results[heartbeat] = (stream.stats.stalls, stream.stats.keepalives, stream.stats.connects)
            assert server.heartbeats_sent >= (6 if heartbeat else 0)
    stalls, keepalives, connects = results[0.2]
    assert stalls == 0 and connects == 1 and keepalives >= 6  # 2 s of heartbeats only, under a 0.8 s timeout
    stalls, keepalives, connects = results[None]
    assert stalls >= 1 and keepalives == 0 and connects >= 2  # silence is a stall: it reconnects


def test_a_stall_reconnects_and_the_fill_covers_it(tmp_path):
    with MastodonServer(statuses=150, rate=100, heartbeat=0.2, faults=[MastodonFault.stall(after=20, seconds=5)]) as server:
        with streamkit.collect(source="mastodon", base_url=server.url, stream="public:local", token=TOKEN,
                               path=tmp_path / "d", flush_seconds=0.2, **dict(FAST, timeout=0.8)) as c:
            wait_done(server, c)
            stalls, reconnects = c.stats.stalls, c.stats.reconnects
        assert_no_gap(tmp_path / "d", server, "public:local")
        assert server.connections >= 2 and len(server.rest_served) > 0
    assert stalls >= 1 and reconnects >= 1


def test_an_unfilled_gap_is_recorded(tmp_path):
    # The REST timeline answers 429 (with Mastodon's X-RateLimit headers): the fill fails,
    # the stream goes on, and the span is stored as a gap event with the reason.
    faults = [MastodonFault.cut(after=10), MastodonFault.http(503)]
    with MastodonServer(statuses=100, rate=100, faults=faults, rest_faults=[MastodonFault.http(429)]) as server:
        ep, src = open_source("mastodon", base_url=server.url, stream="public", token=TOKEN)
        with streamkit.collect(endpoint=ep, decoder=src, path=tmp_path / "d", flush_seconds=0.2,
                               **dict(FAST, retry_time=0.3)) as c:
            wait_done(server, c)
        published = server.published()
    events = streamkit.read_events(tmp_path / "d")
    gaps = events[events["event_type"] == "gap"]
    assert len(gaps) == 1
    detail = json.loads(gaps["detail"].iloc[0])
    assert "HTTP 429" in detail["reason"] and "rate limited until 20" in detail["reason"]
    assert detail["start"] <= detail["end"]
    assert ep.fills[0]["complete"] is False and ep.fills[0]["status"] == 429
    # collect() took the span from the endpoint into the manifest (and `inspect`'s gaps)
    manifest = json.loads((tmp_path / "d" / "streamkit.json").read_text())
    (gap,) = manifest["gaps"]
    assert gap["start"] <= gap["end"] and "429" in gap["reason"] and ep.take_gaps() == []
    stored = set(streamkit.read(tmp_path / "d", include_deleted=True, all_versions=True)["id"])
    assert stored < set(published)  # something really is missing, and the gap says so


# -- tokens ---------------------------------------------------------------------------------

def test_token_never_shows_and_a_401_says_what_to_do(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG, logger="streamkit")
    secret = "wrong-token-s3cr3t"
    with MastodonServer(statuses=10, public_without_token=False) as server:
        ep, src = open_source("mastodon", base_url=server.url, stream="public", token=secret)
        c = streamkit.collect(endpoint=ep, decoder=src, path=tmp_path / "bad", flush_seconds=0.2, **FAST)
        assert wait_until(lambda: not c.running, timeout=20, interval=0.05)
        c.stop()
        err = c._stream.exception
        # No token at all, where the instance requires one.
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        ep2, src2 = open_source("mastodon", base_url=server.url, stream="public")
        with pytest.raises(streamkit.AuthError) as info:
            streamkit.Stream(None, Counting(), endpoint=ep2, **FAST).start()
        # From the environment, accepted.
        monkeypatch.setenv(TOKEN_ENV, TOKEN)
        ep3, _ = open_source("mastodon", base_url=server.url, stream="public")
        assert ep3.request().headers["Authorization"] == f"Bearer {TOKEN}"
    assert isinstance(err, streamkit.AuthError) and err.status_code == 401
    assert "Invalid access token" in str(err)
    assert "HTTP 401" in str(info.value) and "Missing access token" in str(info.value)
    # in Mastodon's terms, naming the variable to set, not Twitter's OAuth keys
    assert TOKEN_ENV in str(err) and TOKEN_ENV in str(info.value)
    assert "consumer key" not in str(err) + str(info.value)
    texts = [str(err), repr(ep), repr(ep.request()), json.dumps(ep.describe()), caplog.text, repr(c),
             str(c.stats)]
    texts += [p.read_text(errors="replace") for p in (tmp_path / "bad").rglob("*") if p.is_file()]
    assert not [t for t in texts if secret in t]


# -- crash and restart -------------------------------------------------------------------------

CHILD = r"""
import json, sys, time
import streamkit
url, path, token = sys.argv[1], sys.argv[2], sys.argv[3]
c = streamkit.collect(source="mastodon", base_url=url, stream="public", token=token, path=path,
                      progress=False, flush_seconds=0.3, wal_group_messages=4, wal_group_seconds=0.02,
                      timeout=5.0)
while True:
    s = c.stats
    print(json.dumps({"received": s.received, "stored": s.stored}), flush=True)
    time.sleep(0.01)
"""


def test_sigkill_mid_capture_then_restart_has_no_gap_and_no_duplicate(tmp_path):
    path = tmp_path / "crashy"
    with MastodonServer(statuses=500, rate=100, heartbeat=0.5) as server:
        sigkill_child(CHILD, server.url, str(path), TOKEN, err=tmp_path / "child.err", timeout=30,
                      until=lambda r: r["stored"] > 30 and r["received"] > r["stored"])
        time.sleep(1.0)  # the server goes on publishing while nothing listens
        checkpoint = json.loads((path / "_wal" / "checkpoint.json").read_text())
        assert checkpoint["position"]["newest_id"]
        with streamkit.collect(source="mastodon", base_url=server.url, stream="public", token=TOKEN,
                               path=path, flush_seconds=0.2, progress=False, **FAST) as c:
            wait_done(server, c, extra=1.0)
            fills = c._stream.endpoint.fills
        published = server.published()
        streamed_ids = {e["id"] for e in server.sent if e["event"] == "update"}
        deleted = server.deleted_ids(at=fills[0]["done"])  # gone when the fill asked
    # The fill starts at the newest id committed: the checkpoint's, or newer once recovery
    # committed what the killed child had logged but not committed.
    assert fills and fills[0]["complete"] and fills[0]["connection"] == 1
    assert int(fills[0]["min_id"]) >= int(checkpoint["position"]["newest_id"])
    assert set(published) - streamed_ids  # the stream alone would have left a gap
    df = streamkit.read(path, include_deleted=True, all_versions=True)
    assert set(df["id"]) <= set(published)
    # Nothing lost but statuses deleted before the fill (the killed child may have had them
    # on the wire, unlogged: nobody can fetch them any more).
    assert set(published) - set(df["id"]) <= deleted
    keys = stored_keys(path)
    assert len(keys) == len(set(keys))
    assert json.loads((path / "streamkit.json").read_text())["gaps"] == []


# -- the command line ----------------------------------------------------------------------------

def test_cli_collect_and_inspect(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    out = tmp_path / "tag"
    with MastodonServer(statuses=60, rate=100) as server:
        code = main(["collect", "--source", "mastodon", "--instance", server.url, "--stream", "hashtag",
                     "--tag", "python", "--transport", "websocket", "--duration", "2s", "--out", str(out),
                     "--flush-seconds", "0.2", "--quiet"])
        published = server.published("hashtag", "python")
    assert code == 0, capsys.readouterr().err
    assert set(streamkit.read(out, include_deleted=True, all_versions=True)["id"]) == set(published) and published
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source_name"] == "mastodon" and summary["items"] == "statuses"
    assert summary["stored_rows"] >= len(published) and summary["rows"] == len(streamkit.read(out))
    assert summary["top_hashtags"]["python"] >= summary["rows"] > 0
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "source mastodon" in text and "gaps          none recorded" in text
    assert TOKEN not in text and TOKEN not in (out / "streamkit.json").read_text()
    assert main(["collect", "--source", "mastodon", "--help"]) == 0
    helptext = capsys.readouterr().out
    assert "--instance" in helptext and "--tag" in helptext and TOKEN_ENV in helptext


def test_without_gap_fill_reconnects_are_recorded_as_gaps(tmp_path):
    faults = [MastodonFault.cut(after=10), MastodonFault.http(503)]
    with MastodonServer(statuses=80, rate=100, faults=faults) as server:
        ep, src = open_source("mastodon", base_url=server.url, stream="public", token=TOKEN, gap_fill=False)
        assert src.can_replay is False
        with streamkit.collect(endpoint=ep, decoder=src, path=tmp_path / "d", flush_seconds=0.2,
                               **dict(FAST, retry_time=0.3)) as c:
            wait_done(server, c)
        assert not [p for p, _q, _s in server.requests if p.startswith("/api/v1/timelines/")]
    manifest = json.loads((tmp_path / "d" / "streamkit.json").read_text())
    assert [g["reason"] for g in manifest["gaps"]] == ["reconnected"]  # collect's own record
    events = streamkit.read_events(tmp_path / "d")
    assert json.loads(events[events["event_type"] == "gap"]["detail"].iloc[0])["reason"] == "gap fill disabled"


def test_resume_position_of_another_filter_starts_fresh():
    ep, _ = open_source("mastodon", instance="https://mastodon.social", stream="hashtag", tag="rust", token="t")
    ep.resume_from({"instance": "mastodon.social", "stream": "hashtag", "filter": "python", "newest_id": "99"})
    assert ep.newest_id is None and ep.gap_fill() == []  # the first connection of a new filter: nothing to fill
    ep.resume_from({"instance": "mastodon.social", "stream": "hashtag", "filter": "rust", "newest_id": "99"})
    assert ep.newest_id == "99"
    ep.resume_from(["not", "ours"])
    assert ep.newest_id == "99"


@pytest.mark.parametrize("pages", [10, 2])
def test_a_long_gap_is_filled_page_by_page_up_to_the_bound(tmp_path, pages):
    # ~0.7 s away at 300 statuses/s: about 200 missed, 5+ pages of 40 by min_id (Link rel="prev").
    faults = [MastodonFault.cut(after=40), MastodonFault.http(503)]
    with MastodonServer(statuses=700, rate=300, faults=faults, edits=0, deletes=0) as server:
        ep, src = open_source("mastodon", base_url=server.url, stream="public", token=TOKEN, gap_fill_pages=pages)
        with streamkit.collect(endpoint=ep, decoder=src, path=tmp_path / "d", flush_seconds=0.2,
                               **dict(FAST, retry_time=0.7)) as c:
            wait_done(server, c)
        published = server.published()
        timeline_requests = [q for p, q, _s in server.requests if p == "/api/v1/timelines/public"]
    fill = ep.fills[0]
    stored = set(streamkit.read(tmp_path / "d", include_deleted=True, all_versions=True)["id"])
    assert len(timeline_requests) == fill["pages"] and all("limit=40" in q for q in timeline_requests)
    events = streamkit.read_events(tmp_path / "d")
    if pages == 10:
        assert fill["complete"] and fill["pages"] >= 4 and fill["statuses"] >= 120
        assert stored == set(published)
        assert "gap" not in set(events["event_type"])
    else:
        assert not fill["complete"] and fill["pages"] == 2 and fill["statuses"] == 80
        assert "more than 2 pages" in fill["why"]
        assert len(stored) < len(published)  # what the bound left out is missing...
        gap = json.loads(events[events["event_type"] == "gap"]["detail"].iloc[0])
        assert "more than 2 pages" in gap["reason"] and gap["start"] < gap["end"]  # ...and recorded
