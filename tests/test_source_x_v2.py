"""The X API v2 source: decoder, endpoint, StreamingClient, rules, collect(), CLI, secrets.

Everything runs against :class:`streamkit.testing.XV2Server` on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import wait_until

import streamkit
from streamkit.cli import main
from streamkit.sources import SOURCES, open_source
from streamkit.sources.x_v2 import X_EVENT_SCHEMA, X_TWEET_SCHEMA, XV2Endpoint, XV2Framer, XV2Source
from streamkit.testing import Fault, XV2Server

FIXTURES = Path(__file__).parent / "fixtures"
# Short stall timeout and back-off steps; the server sends keep-alives often enough for it.
FAST = dict(timeout=2.0, retry_time=0.05, retry_420=0.3, snooze_time=0.02, snooze_time_cap=0.1)
SERVER = dict(keepalive_interval=0.3)


def settled(state, quiet: float, timeout: float) -> bool:
    """True once ``state()`` has not changed for ``quiet`` seconds and its parts are equal."""
    deadline = time.monotonic() + timeout
    last, since = state(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = state()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet and len(set(now)) == 1:
            return True
    return False


def fixture(name: str) -> bytes:
    return json.dumps(json.loads((FIXTURES / name).read_text("utf-8")), ensure_ascii=False).encode("utf-8")


# -- decoder, framer, endpoint -------------------------------------------------------------

def test_decoder_maps_v2_messages_to_the_v1_columns_with_authors_from_includes():
    src = XV2Source()
    batch = src.decode_batch([fixture("x_v2_filtered_tweet.json"), fixture("x_v2_retweet.json"),
                              fixture("x_v2_operational_disconnect.json"), b'{"data":{"id":"x"}}',
                              b"{not json", b"\xff\xfe", b"[1,2]", b'{"hello":1}'],
                             received_at_us=1_600_000_000_000_000)
    assert batch.tweets.schema == X_TWEET_SCHEMA and batch.events.schema == X_EVENT_SCHEMA
    assert batch.rejected == {"tweet_without_id": 1, "malformed_json": 1, "invalid_utf8": 1, "not_an_object": 1}
    assert batch.tweet_index.tolist() == [0, 1] and batch.event_index.tolist() == [2, 7]
    first, rt = batch.tweets.to_pylist()
    assert first["id"] == 1067094924124872705 and first["user_id"] == 2244994945
    assert (first["user_screen_name"], first["user_name"], first["user_verified"]) == ("TwitterDev", "Twitter Dev", True)
    assert first["user_followers_count"] == 513958 and first["user_friends_count"] == 2039
    assert str(first["created_at"]) == "2018-11-26 16:37:10+00:00"
    assert str(first["user_created_at"]) == "2013-12-14 04:35:55+00:00"
    assert first["urls"] == [] and first["media_urls"][0].endswith("1NVYkXtwIfvRbl2Z.jpg")  # media link left out
    assert (first["retweet_count"], first["favorite_count"], first["reply_count"]) == (4, 12, 1)
    assert first["matching_rules"] == [{"id": "1166916266197536768", "tag": "twitterdev"},
                                       {"id": "1166916266197536769", "tag": "videos"}]
    assert first["tweet_type"] == "original" and first["conversation_id"] == 1067094924124872705
    assert json.loads(first["raw"])["data"]["id"] == "1067094924124872705"
    # a repost: the whole text of the reposted post, its hashtags, its author
    assert rt["tweet_type"] == "retweet" and rt["retweeted_status_id"] == 1228393702244134911
    assert rt["text"].startswith("RT @TwitterDev: What did") and rt["text"].endswith("#ValentinesDay")
    assert rt["hashtags"] == ["ValentinesDay"] and rt["retweeted_user_screen_name"] == "TwitterDev"
    events = batch.events.to_pylist()
    assert events[0]["event_type"] == "error" and events[0]["title"] == "operational-disconnect"
    assert events[0]["disconnect_type"] == "OperationalDisconnect" and events[0]["errors"] == 1
    assert events[1]["event_type"] == "unknown"


def test_decoder_keeps_what_fits_when_a_field_has_an_unexpected_type():
    odd = b'{"data":{"id":"5","text":"ok","public_metrics":{"like_count":"many"},"lang":7},"matching_rules":[{"id":9,"tag":"t"}]}'
    row = XV2Source().decode_batch([odd], keep_raw=False).tweets.to_pylist()[0]
    assert (row["id"], row["text"], row["favorite_count"], row["lang"], row["raw"]) == (5, "ok", None, None, None)
    assert row["matching_rules"] == [{"id": "9", "tag": "t"}]


def test_framer_ends_the_connection_on_an_error_object_but_not_on_partial_errors():
    partial = b'{"data":{"id":"1","text":"a"},"errors":[{"title":"Not Found Error","resource_type":"tweet"}]}'
    f = XV2Framer(1 << 20)
    assert f.feed(partial[:20]) == [] and f.pending_bytes == 20
    assert f.feed(partial[20:] + b"\r\n\r\n") == [partial] and not f.closed and f.stats.keepalives == 1
    ending = fixture("x_v2_operational_disconnect.json")
    assert f.feed(ending + b"\r\n" + b'{"data":{"id":"2"}}\r\n{"da') == [ending]
    assert f.closed and f.pending_bytes == 0 and "operational" in f.close_reason
    assert f.feed(b'ta":{}}\r\n') == []


def test_open_source_checks_its_options_and_never_shows_the_token(monkeypatch):
    monkeypatch.delenv("STREAMKIT_BEARER_TOKEN", raising=False)
    assert SOURCES["x-v2"] == "x_v2"
    with pytest.raises(streamkit.ConfigError, match="STREAMKIT_BEARER_TOKEN"):
        open_source("x-v2")
    with pytest.raises(streamkit.ConfigError, match="0-5"):
        open_source("x-v2", bearer_token="t", backfill_minutes=6)
    with pytest.raises(streamkit.ConfigError, match="invalid field name"):
        open_source("x-v2", bearer_token="t", tweet_fields=["created at"])
    with pytest.raises(streamkit.ConfigError, match="plain http"):
        open_source("x-v2", bearer_token="t", base_url="http://example.org")
    monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", "env-token-123")
    ep, src = open_source("x-v2", sample_stream=True)
    req = ep.request()
    assert req.headers["Authorization"] == "Bearer env-token-123"
    assert req.url.endswith("/2/tweets/sample/stream") and "backfill_minutes" not in req.params
    assert "env-token-123" not in repr(req) + repr(ep) + repr(ep.describe()) + repr(vars(src))
    assert not src.can_replay  # no backfill: every reconnect is a gap


def test_backfill_covers_the_time_away_and_says_when_it_cannot():
    ep, src = open_source("x-v2", bearer_token="t", backfill_minutes=3)
    assert "backfill_minutes" not in ep.request().params  # a fresh capture missed nothing
    ep.resume_from({"received_at": time.time() - 100})
    assert ep.request().params["backfill_minutes"] == "2" and src.can_replay
    ep.resume_from({"received_at": time.time() - 600})
    assert ep.request().params["backfill_minutes"] == "3" and not src.can_replay
    framer = ep.framer(1024)
    framer.feed(b"\r\n")  # a keep-alive: the connection was alive just now
    assert ep.request().params["backfill_minutes"] == "1" and src.can_replay


# -- rules -------------------------------------------------------------------------------------

def test_rules_crud_against_the_local_server():
    with XV2Server(max_rules=4) as server:
        client = server.client()
        created = client.add_rules([streamkit.StreamRule("cat has:images", tag="cats"), "python OR #rstats"])
        assert [(r.value, r.tag) for r in created.data] == [("cat has:images", "cats"), ("python OR #rstats", None)]
        assert all(r.id and r.id.isdigit() for r in created.data)
        assert created.meta["summary"]["created"] == 2
        dry = client.add_rules("dog", dry_run=True)
        assert dry.data[0].value == "dog" and len(server.rules) == 2
        again = client.add_rules(["cat has:images", "climate"])
        assert [r.value for r in again.data] == ["climate"]
        assert again.errors[0]["title"] == "DuplicateRule" and again.errors[0]["id"] == created.data[0].id
        with pytest.raises(streamkit.ConfigError, match=r"'\(cat': Rule has unbalanced parentheses"):
            client.add_rules("(cat")
        with pytest.raises(streamkit.ConfigError, match="invalid operator 'colour'"):
            client.add_rules("colour:red")
        with pytest.raises(streamkit.ConfigError, match="Rule cap exceeded: this app may have at most 4"):
            client.add_rules(["a1", "a2"])
        assert len(server.rules) == 3  # the refused requests stored nothing
        listed = client.get_rules()
        assert {r.value for r in listed.data} == {"cat has:images", "python OR #rstats", "climate"}
        assert client.get_rules(ids=[created.data[0].id]).data == [created.data[0]]
        client.delete_rules([created.data[0], int(created.data[1].id)])
        assert [r["value"] for r in server.rules] == ["climate"]
        with pytest.raises(streamkit.ConfigError, match="Rule does not exist: nope"):
            client.delete_rules(values=["nope"])
        client.delete_rules("climate", dry_run=True)
        assert len(server.rules) == 1
        assert [r.value for r in client.delete_all_rules().data] == ["climate"] and server.rules == []
        client.close()


def test_rules_with_a_refused_token_raise_auth_error_naming_the_variable_not_the_token():
    with XV2Server() as server:
        client = streamkit.StreamingClient("wrong-token-0123456789", base_url=server.url)
        with pytest.raises(streamkit.AuthError) as info:
            client.get_rules()
        client.close()
    assert info.value.status_code == 401 and "STREAMKIT_BEARER_TOKEN" in str(info.value)
    assert "wrong-token" not in str(info.value) and "Unauthorized" in str(info.value)


def test_rate_limited_rules_calls_raise_or_wait_for_the_reset():
    with XV2Server(rules_limit=2, rules_window=1.5) as server:
        client = server.client()
        client.get_rules()
        client.get_rules()
        with pytest.raises(streamkit.RateLimited) as info:
            client.get_rules()
        assert info.value.status_code == 429 and 0 < info.value.retry_after <= 2.5
        assert "wait_on_rate_limit=True" in str(info.value)
        patient = server.client(wait_on_rate_limit=True)
        started = time.monotonic()
        assert patient.get_rules().data == []  # waited for x-rate-limit-reset, then it worked
        assert 0.2 < time.monotonic() - started < 5
        client.close()
        patient.close()


# -- StreamingClient ---------------------------------------------------------------------------

class Recorder(streamkit.StreamingClient):
    def __init__(self, *args, stop_after=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tweets, self.includes, self.rules, self.errors, self.responses = [], [], [], [], []
        self.events = []
        self.stop_after = stop_after
        self.lock = threading.Lock()

    def on_connect(self):
        self.events.append("connect")

    def on_tweet(self, tweet):
        self.tweets.append(tweet)

    def on_includes(self, includes):
        self.includes.append(includes)

    def on_matching_rules(self, matching_rules):
        self.rules.append(matching_rules)

    def on_errors(self, errors):
        self.errors.append(errors)

    def on_response(self, response):
        self.responses.append(response)
        if self.stop_after is not None and len(self.tweets) >= self.stop_after:
            return False

    def on_request_error(self, status_code):
        self.events.append(status_code)
        return super().on_request_error(status_code)

    def on_connection_error(self):
        self.events.append("stall")

    def on_keep_alive(self):
        self.events.append("keep-alive")

    def on_disconnect(self):
        self.events.append("disconnect")


def test_callbacks_get_tweets_includes_rules_and_responses_and_errors_reconnect():
    with XV2Server(rate=300, tweets=150, rules=[("python", "py"), ("climate", "cl")], match_fraction=0.9,
                   faults=[Fault.disconnect(after=20)], **SERVER) as server:
        client = Recorder(server.bearer_token, base_url=server.url, **FAST)
        thread = client.filter(threaded=True, expansions=["author_id"], tweet_fields="created_at,lang")
        assert isinstance(thread, threading.Thread) and thread.name.startswith("streamkit-x-stream")
        assert client.running and client.thread is thread
        assert wait_until(lambda: len(server.timeline_ids()) == 150, timeout=20, interval=0.05)
        assert settled(lambda: (len(server.sent), len(client.tweets)), quiet=0.5, timeout=10)
        client.disconnect()
    assert not client.running and not thread.is_alive() and client.events.count("disconnect") == 1
    ids = [t.id for t in client.tweets]
    assert len(ids) == len(set(ids)) and ids == server.sent and len(ids) > 100
    assert set(ids) <= set(server.matching_ids())
    assert client.events.count("connect") == 2  # the operational-disconnect made it reconnect
    assert client.errors and client.errors[0][0]["title"] == "operational-disconnect"
    assert client.stream.stats.reconnects == 1
    # every post came with its author (expansions=author_id) and the rules it matched
    responses = [r for r in client.responses if r.data is not None]
    assert [r.errors for r in client.responses if r.data is None] == client.errors
    for tweet, includes, rules, response in zip(client.tweets, client.includes, client.rules, responses, strict=True):
        assert includes["users"][0].id == tweet.author_id and includes["users"][0].username
        assert {r.tag for r in rules} <= {"py", "cl"} and all(r.id for r in rules)
        assert response.data is tweet and response.matching_rules == rules and response.errors == []
        text = tweet.text.lower()
        assert any(("python" in text) == (r.tag == "py") or ("climate" in text) == (r.tag == "cl") for r in rules)
        assert tweet.created_at.tzinfo is not None and tweet.lang
    assert "keep-alive" in client.events


def test_threaded_disconnect_is_prompt_on_a_silent_stream_and_mid_backoff():
    with XV2Server(tweets=0, keepalive_interval=20.0, faults=[Fault.none(), Fault.http(503)]) as server:
        client = Recorder(server.bearer_token, base_url=server.url, timeout=30.0)
        client.sample(threaded=True)
        assert wait_until(lambda: "connect" in client.events, timeout=10, interval=0.02)
        started = time.monotonic()
        client.disconnect()
        assert time.monotonic() - started < 3.0
        assert not client.running and not client.thread.is_alive()
        # again, this time while backing off after HTTP 503 (retry_time 30 s)
        slow = Recorder(server.bearer_token, base_url=server.url, retry_time=30.0)
        slow.sample(threaded=True)
        assert wait_until(lambda: 503 in slow.events, timeout=10, interval=0.02)
        started = time.monotonic()
        slow.disconnect()
        assert time.monotonic() - started < 3.0 and not slow.running
    assert client.events.count("disconnect") == slow.events.count("disconnect") == 1


def test_429_backs_off_from_retry_420_and_the_default_is_60_s():
    assert streamkit.StreamingClient("t").stream is None
    assert streamkit.StreamingClient("t")._new_stream(XV2Endpoint("https://api.x.com", "t")).retry_420 == 60.0
    with XV2Server(rate=200, rules=["python"], match_fraction=1.0,
                   faults=[Fault.http(429), Fault.http(429)], **SERVER) as server:
        client = Recorder(server.bearer_token, base_url=server.url, stop_after=40, **{**FAST, "retry_420": 0.4})
        client.filter()
    times = [r.time for r in server.requests if r.path.endswith("/stream")]
    statuses = [r.status for r in server.requests if r.path.endswith("/stream")]
    assert statuses[:3] == [429, 429, 200] and client.events[:2] == [429, 429]
    # first wait retry_420, then doubled: exponential from the 429 policy's start, not 5 s or 0.25 s
    assert 0.4 * 0.9 <= times[1] - times[0] < 3.0
    assert 0.8 * 0.9 <= times[2] - times[1] < 4.0
    assert len(client.tweets) == 40 and client.stream.stats.http_errors == 2


def test_a_cut_mid_message_and_a_stall_reconnect_without_delivering_a_partial_message():
    with XV2Server(rate=400, rules=["python"], match_fraction=1.0,
                   faults=[Fault.cut(after=30), Fault.stall(after=30, seconds=3.0)], **SERVER) as server:
        client = Recorder(server.bearer_token, base_url=server.url, stop_after=120, **{**FAST, "timeout": 1.0})
        client.filter()
    ids = [t.id for t in client.tweets]
    assert ids == server.sent[:len(ids)] and len(set(ids)) == len(ids) == 120
    assert set(ids) <= set(server.matching_ids())
    assert client.stream.stats.incomplete == 1 and client.stream.stats.stalls == 1
    assert "stall" in client.events and client.events.count("connect") == 3


def test_an_exception_in_a_callback_reaches_on_exception_and_the_caller():
    class Failing(Recorder):
        def on_tweet(self, tweet):
            raise ValueError("bad callback")

        def on_exception(self, exception):
            self.events.append(repr(exception))

    with XV2Server(rate=200, rules=["python"], match_fraction=1.0, **SERVER) as server:
        client = Failing(server.bearer_token, base_url=server.url, **FAST)
        with pytest.raises(ValueError, match="bad callback"):
            client.filter()
        threaded = Failing(server.bearer_token, base_url=server.url, **FAST)
        threaded.filter(threaded=True).join(10)
    assert "ValueError('bad callback')" in client.events and client.events[-1] == "disconnect"
    assert not threaded.running and isinstance(threaded.stream.exception, ValueError)
    assert threaded.events[-1] == "disconnect"


def test_a_refused_token_stops_the_stream_with_an_auth_error():
    with XV2Server() as server:
        client = Recorder("not-the-token-xyz", base_url=server.url, **FAST)
        with pytest.raises(streamkit.AuthError) as info:
            client.sample()
    assert info.value.status_code == 401 and client.events == [401, "disconnect"]
    assert "STREAMKIT_BEARER_TOKEN" in str(info.value) and "not-the-token-xyz" not in str(info.value)


def test_collect_words_a_refused_token_in_x_terms(tmp_path):
    with XV2Server() as server:
        c = streamkit.collect(source="x-v2", bearer_token="not-the-token-xyz", base_url=server.url,
                              sample_stream=True, path=tmp_path / "d", flush_seconds=0.2, **FAST)
        try:
            assert wait_until(lambda: not c.running, timeout=20, interval=0.05)
        finally:
            c.stop()
    err = c._stream.exception
    assert isinstance(err, streamkit.AuthError) and err.status_code == 401
    assert "STREAMKIT_BEARER_TOKEN" in str(err) and "consumer key" not in str(err)
    assert "not-the-token-xyz" not in str(err) + repr(c) + str(c.stats)


# -- collect() -------------------------------------------------------------------------------

def test_collect_stores_every_sent_tweet_once_with_authors_and_rules(tmp_path):
    path = tmp_path / "x"
    faults = [Fault.disconnect(after=60), Fault.cut(after=40), Fault.http(503)]
    with XV2Server(rate=300, tweets=300, rules=[("python", "py"), ("#climate", "cl")], match_fraction=0.8,
                   faults=faults, **SERVER) as server:
        with streamkit.collect(source="x-v2", bearer_token=server.bearer_token, base_url=server.url,
                               backfill_minutes=1, path=path, flush_seconds=0.2, progress=False, **FAST) as c:
            assert wait_until(lambda: len(server.timeline_ids()) == 300, timeout=20, interval=0.05)
            want = set(server.matching_ids())
            assert c.wait_for(stored=len(want), timeout=20), c.stats
    df = streamkit.read(path)
    ids = df["id"].tolist()
    assert len(ids) == len(set(ids)) and set(ids) == set(server.sent)
    # backfill brought back what passed during the reconnects: nothing is missing
    assert want - set(ids) == set() and len(want) > 150
    assert c.stats.duplicates == len(server.sent) - len(set(server.sent)) > 0
    asked = [conn["params"].get("backfill_minutes") for conn in server.connections]
    assert asked[0] is None and asked[1:] == ["1"] * (len(asked) - 1) and len(asked) >= 3
    assert sum(conn["backfilled"] for conn in server.connections) > 0
    # authors from includes.users, rules with tags
    raw = {int(json.loads(r)["data"]["id"]): json.loads(r) for r in streamkit.read(path, columns=["raw"])["raw"]}
    for row in df.itertuples():
        msg = raw[row.id]
        author = next(u for u in msg["includes"]["users"] if u["id"] == msg["data"]["author_id"])
        assert row.user_screen_name == author["username"] and row.user_id == int(author["id"])
        assert [r["tag"] for r in row.matching_rules] == [r["tag"] for r in msg["matching_rules"]]
        assert row.created_at.isoformat().startswith(msg["data"]["created_at"][:19])
    manifest = json.loads((path / "streamkit.json").read_text())
    assert manifest["source_name"] == "x-v2" and manifest["gaps"] == []
    assert manifest["filters"][0]["params"]["endpoint"] == "2/tweets/search/stream"
    events = streamkit.read_events(path)
    assert events["title"].tolist() == ["operational-disconnect"]


def test_collect_without_backfill_records_each_reconnect_as_a_gap(tmp_path):
    path = tmp_path / "x"
    with XV2Server(rate=300, tweets=200, rules=["python"], match_fraction=1.0,
                   faults=[Fault.disconnect(after=50)], **SERVER) as server:
        with streamkit.collect(source="x-v2", bearer_token=server.bearer_token, base_url=server.url,
                               path=path, flush_seconds=0.2, progress=False, **{**FAST, "snooze_time": 0.3, "snooze_time_cap": 0.5}) as c:
            assert wait_until(lambda: len(server.timeline_ids()) == 200 and c.stats.received >= len(server.sent)
                              and len(server.sent) > 100, timeout=20, interval=0.05)
    manifest = json.loads((path / "streamkit.json").read_text())
    assert [g["reason"] for g in manifest["gaps"]] == ["reconnected"]
    ids = set(streamkit.read(path)["id"])
    missing = set(server.matching_ids()) - ids
    assert ids == set(server.sent) and missing  # the 0.3 s away cost some posts...
    gap = manifest["gaps"][0]
    start, end = (datetime.fromisoformat(gap[k].replace("Z", "+00:00")).timestamp() for k in ("start", "end"))
    for pid in missing:  # ...and each of them was created during the recorded gap
        assert start - 0.5 <= server.created_at(pid) <= end + 0.5


def test_collect_sample_stream_and_the_cli(tmp_path, monkeypatch, capsys):
    with XV2Server(rate=200, **SERVER) as server:
        monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", server.bearer_token)
        code = main(["collect", "--source", "x-v2", "--sample-stream", "--base-url", server.url,
                     "--out", str(tmp_path / "s"), "--limit", "60", "--duration", "20s", "--quiet",
                     "--tweet-fields", "created_at,lang,author_id", "--expansions", "author_id"])
    assert code == 0, capsys.readouterr().err
    df = streamkit.read(tmp_path / "s")
    assert len(df) >= 60 and set(df["id"]) <= set(server.sent)
    assert df["matching_rules"].isna().all() and df["user_screen_name"].notna().all()
    assert server.connections[0]["params"]["tweet.fields"] == "created_at,lang,author_id"
    assert main(["inspect", str(tmp_path / "s")]) == 0
    assert "source x-v2" in capsys.readouterr().out


def test_a_restart_after_longer_than_the_backfill_window_records_the_gap(tmp_path, capsys):
    path = tmp_path / "x"
    with XV2Server(rate=200, rules=["python"], match_fraction=1.0, **SERVER) as server:
        options = dict(source="x-v2", bearer_token=server.bearer_token, base_url=server.url, path=path,
                       backfill_minutes=2, flush_seconds=0.2, progress=False, **FAST)
        with streamkit.collect(**options) as c:
            assert c.wait_for(stored=40, timeout=20)
            assert c.filter == {"bearer_token": "***", "backfill_minutes": 2}
        checkpoint = path / "_wal" / "checkpoint.json"
        record = json.loads(checkpoint.read_text())
        assert abs(record["position"]["received_at"] - time.time()) < 30
        # as if the collector had been down for 10 minutes
        record["position"]["received_at"] -= 600
        checkpoint.write_text(json.dumps(record))
        with streamkit.collect(**options) as c:
            assert wait_until(lambda: c.stats.state == "streaming", timeout=20, interval=0.02)
    assert server.connections[-1]["params"]["backfill_minutes"] == "2"
    gaps = json.loads((path / "streamkit.json").read_text())["gaps"]
    assert [g["reason"] for g in gaps] == ["restarted"]
    assert main(["inspect", str(path)]) == 0
    assert "restarted" in capsys.readouterr().out


# -- CLI rules -------------------------------------------------------------------------------

def test_cli_rules_list_add_delete(monkeypatch, capsys):
    monkeypatch.delenv("STREAMKIT_BEARER_TOKEN", raising=False)
    assert main(["rules", "list"]) == 2
    assert "STREAMKIT_BEARER_TOKEN" in capsys.readouterr().err
    with XV2Server() as server:
        monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", server.bearer_token)
        url = ["--base-url", server.url]
        assert main(["rules", "add", "cat has:images", "--tag", "cats", *url]) == 0
        out, err = capsys.readouterr()
        rid = server.rules[0]["id"]
        assert rid in out and "cats" in out and "1 rule added" in err
        assert main(["rules", "add", "dog", "--dry-run", *url]) == 0 and len(server.rules) == 1
        assert "dry run" in capsys.readouterr().err
        assert main(["rules", "add", "cat has:images", *url]) == 0
        assert "already exists" in capsys.readouterr().err
        assert main(["rules", "add", *url, "--", "-cat"]) == 2
        assert "non-negation" in capsys.readouterr().err
        assert main(["rules", "add", "python", *url]) == 0
        capsys.readouterr()
        assert main(["rules", "list", "--json", *url]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(r["value"], r["tag"]) for r in listed] == [("cat has:images", "cats"), ("python", None)]
        assert main(["rules", "delete", rid, *url]) == 0
        assert "1 rule deleted" in capsys.readouterr().err
        assert main(["rules", "delete", "--value", "python", "--dry-run", *url]) == 0 and len(server.rules) == 1
        assert main(["rules", "delete", *url]) == 2
        assert main(["rules", "delete", "--all", *url]) == 0 and server.rules == []
        assert main(["rules", "delete", "12345", *url]) == 2
        assert "Rule does not exist" in capsys.readouterr().err
        for action in ("list", "add", "delete"):
            assert main(["rules", action, "--help"]) == 0
            assert "--base-url" in capsys.readouterr().out


# -- secrets -------------------------------------------------------------------------------------

def test_the_bearer_token_never_reaches_logs_reprs_errors_or_files(tmp_path, caplog, capsys):
    token = "AAAA-sekrit-bearer-0123456789-XYZ"
    path = tmp_path / "x"
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's too
    with XV2Server(bearer_token=token, rate=300, rules=["python"], match_fraction=1.0,
                   faults=[Fault.disconnect(after=20)], **SERVER) as server:
        client = streamkit.StreamingClient(token, base_url=server.url, **FAST)
        client.add_rules("climate")
        texts = [repr(client), repr(client.stream), str(client.get_rules())]
        with streamkit.collect(source="x-v2", bearer_token=token, base_url=server.url, path=path,
                               flush_seconds=0.2, progress=False, **FAST) as c:
            assert c.wait_for(stored=80, timeout=20)
            texts += [repr(c), repr(c._endpoint), repr(c._endpoint.request()), repr(c.stats), c._repr_html_()]
        bad = Recorder(token[:-1] + "!", base_url=server.url, **FAST)
        with pytest.raises(streamkit.AuthError) as info:
            bad.sample()
        texts.append(str(info.value))
        client.close()
    texts += [r.getMessage() for r in caplog.records] + list(capsys.readouterr())
    assert [t for t in texts if token in t] == []
    assert any("connection" in r.getMessage().lower() for r in caplog.records)  # DEBUG logging did run
    files = [p for p in path.rglob("*") if p.is_file()]
    assert files and not [p for p in files if token.encode() in p.read_bytes()]
