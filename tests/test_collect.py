"""collect() end to end over real local HTTP: faults, values, live view, filters, readers, stats.

Every test runs a real :class:`streamkit.testing.StreamServer` on 127.0.0.1 (or, for the
re-sending server, a few lines of socket code below) and checks what lands on disk
against what the server says it sent.
"""

from __future__ import annotations

import collections
import functools
import html
import json
import re
import socketserver
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import helpers
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

import streamkit
from streamkit import schema
from streamkit.collect import default_path
from streamkit.testing import TEST_CREDENTIALS as C
from streamkit.testing import Fault, StreamServer, match_status

# Short waits so that faults cost milliseconds, not Twitter's real back-off times.
FAST = dict(
    timeout=0.5, retry_time=0.05, retry_420=0.1, snooze_time=0.02, snooze_time_cap=0.1,
    flush_seconds=0.2, progress=False,
)
SECRETS = ("consumer_secret", "access_token", "access_token_secret")


def make_server(**options) -> StreamServer:
    """A test server whose pool of statuses is quick to build: the first request to a new
    filter builds it, and on a busy machine a full pool can outlast the 0.5 s timeout."""
    return StreamServer(pool_size=300, **options)


def make_auth(consumer_secret: str = C["consumer_secret"]) -> streamkit.OAuthHandler:
    auth = streamkit.OAuthHandler(C["consumer_key"], consumer_secret)
    auth.set_access_token(C["access_token"], C["access_token_secret"])
    return auth


def capture(server_url: str, path: Path, track=("python",), **options) -> streamkit.Collector:
    return streamkit.collect(
        track=list(track), auth=make_auth(), base_url=server_url, path=path, **{**FAST, **options}
    )


def stored_rows(path: Path) -> list[dict]:
    """Every committed tweet row, straight from the Parquet files (no pandas conversion)."""
    dataset = pads.dataset(
        path / "tweets", format="parquet", partitioning="hive", ignore_prefixes=[".", "_"]
    )
    return dataset.to_table(columns=schema.TWEET_SCHEMA.names).to_pylist()


wait_until = functools.partial(helpers.wait_until, timeout=10.0, interval=0.01)


def _status(i: int, **extra) -> bytes:
    st = {"created_at": "Wed Oct 10 20:19:24 +0000 2018", "id": i, "id_str": str(i),
          "text": f"tweet {i}", "in_reply_to_status_id": None, "lang": "en",
          "user": {"id": 6253282, "id_str": "6253282", "screen_name": "TwitterAPI"}}
    st.update(extra)
    return json.dumps(st).encode()


def _limit(track: int) -> bytes:
    return json.dumps({"limit": {"track": track, "timestamp_ms": "1539202765000"}}).encode()


class ReplayServer(socketserver.ThreadingTCPServer):
    """A bare streaming endpoint on 127.0.0.1 that sends scripted bodies, one per connection.

    Connection ``i`` gets ``bodies[i]`` (newline-delimited messages, exactly these bytes)
    and is closed; connections beyond the script stay open and silent until :meth:`close`.
    It checks no credentials: it stands for a server that re-sends what it sent before.
    """

    daemon_threads = True

    def __init__(self, bodies: list[list[bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), _ReplayHandler)
        self.bodies = [b"".join(m + b"\r\n" for m in body) for body in bodies]
        self.connections = 0
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, name="replay-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class _ReplayHandler(socketserver.StreamRequestHandler):
    server: ReplayServer

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline()
            if not line:
                return
            head += line
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        self.rfile.read(int(length.group(1)) if length else 0)
        with self.server.lock:
            index = self.server.connections
            self.server.connections += 1
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"connection: close\r\n\r\n")
        if index < len(self.server.bodies):
            self.wfile.write(self.server.bodies[index])
            return
        try:  # keep-alives, so that the client has no reason to reconnect
            while not self.server.closing.wait(0.1):
                self.wfile.write(b"\r\n")
        except OSError:
            return


# -- an independent reference flattener ------------------------------------------------------
# Written from the column docs in schema.TWEET_COLUMNS, on plain dicts from json.loads, so it
# shares no code with streamkit's decoder.

_CREATED_AT = "%a %b %d %H:%M:%S %z %Y"
_ANCHOR = re.compile(r"<a\b[^>]*>(.*)</a>", re.DOTALL)


def _when(text):
    return None if text is None else datetime.strptime(text, _CREATED_AT).astimezone(timezone.utc)


def _id(obj, key):
    """``key`` else ``key_str`` as an int."""
    if not obj:
        return None
    value = obj.get(key)
    if value is None and obj.get(key + "_str") is not None:
        value = int(obj[key + "_str"])
    return value


def _full_text(st):
    ext = st.get("extended_tweet") or {}
    if ext.get("full_text") is not None:
        return ext["full_text"]
    if st.get("full_text") is not None:
        return st["full_text"]
    return st.get("text")


def _lists(st):
    """hashtags, mentions, urls, media_urls from the full (extended) entities of ``st``."""
    ext = st.get("extended_tweet") or {}
    if "entities" in ext or "extended_entities" in ext:
        ents, ext_ents = ext.get("entities"), ext.get("extended_entities")
    else:
        ents, ext_ents = st.get("entities"), st.get("extended_entities")
    if ents is None:
        hashtags = mentions = urls = None
    else:
        hashtags = [h["text"] for h in ents.get("hashtags") or []]
        mentions = [m["screen_name"] for m in ents.get("user_mentions") or []]
        urls = [u.get("expanded_url") or u["url"] for u in ents.get("urls") or []]
    if ents is None and ext_ents is None:
        media_urls = None
    else:
        media = (ext_ents or {}).get("media") or (ents or {}).get("media") or []
        media_urls = [m["media_url_https"] for m in media]
    return hashtags, mentions, urls, media_urls


def _source(src):
    if src is None:
        return None
    m = _ANCHOR.fullmatch(src)
    return html.unescape(m.group(1)) if m else src


def expected_row(payload: bytes) -> dict:
    """What the tweets table must hold for one status payload, by the documented rules."""
    st = json.loads(payload)
    user = st.get("user") or {}
    rt = st.get("retweeted_status")
    quoted = st.get("quoted_status")
    quoted_id = _id(st, "quoted_status_id") or _id(quoted, "id")
    quoted_sn = (quoted or {}).get("user", {}).get("screen_name")
    if rt is not None:
        rt_sn = rt["user"]["screen_name"]
        text = f"RT @{rt_sn}: {_full_text(rt)}"
        hashtags, mentions, urls, media_urls = _lists(rt)
        mentions = None if mentions is None else [rt_sn, *mentions]
        tweet_type = "retweet"
        rt_quoted = rt.get("quoted_status")
        quoted_id = quoted_id or _id(rt, "quoted_status_id") or _id(rt_quoted, "id")
        quoted_sn = quoted_sn or (rt_quoted or {}).get("user", {}).get("screen_name")
    else:
        rt_sn = None
        text = _full_text(st)
        hashtags, mentions, urls, media_urls = _lists(st)
        if quoted is not None or quoted_id is not None or st.get("is_quote_status"):
            tweet_type = "quote"
        elif _id(st, "in_reply_to_status_id") is not None or _id(st, "in_reply_to_user_id") is not None:
            tweet_type = "reply"
        else:
            tweet_type = "original"
    point = (st.get("coordinates") or {}).get("coordinates") or [None, None]
    place = st.get("place") or {}
    return {
        "id": _id(st, "id"),
        "created_at": _when(st.get("created_at")),
        "text": text,
        "lang": st.get("lang"),
        "source": _source(st.get("source")),
        "tweet_type": tweet_type,
        "user_id": _id(user, "id"),
        "user_screen_name": user.get("screen_name"),
        "user_name": user.get("name"),
        "user_description": user.get("description"),
        "user_location": user.get("location"),
        "user_verified": user.get("verified"),
        "user_followers_count": user.get("followers_count"),
        "user_friends_count": user.get("friends_count"),
        "user_statuses_count": user.get("statuses_count"),
        "user_created_at": _when(user.get("created_at")),
        "in_reply_to_status_id": _id(st, "in_reply_to_status_id"),
        "in_reply_to_user_id": _id(st, "in_reply_to_user_id"),
        "in_reply_to_screen_name": st.get("in_reply_to_screen_name"),
        "retweeted_status_id": _id(rt, "id"),
        "retweeted_user_screen_name": rt_sn,
        "quoted_status_id": quoted_id,
        "quoted_user_screen_name": quoted_sn,
        "hashtags": hashtags,
        "mentions": mentions,
        "urls": urls,
        "media_urls": media_urls,
        "longitude": point[0],
        "latitude": point[1],
        "place_full_name": place.get("full_name"),
        "place_country_code": place.get("country_code"),
        "retweet_count": st.get("retweet_count"),
        "favorite_count": st.get("favorite_count"),
        "reply_count": st.get("reply_count"),
        "quote_count": st.get("quote_count"),
        "possibly_sensitive": st.get("possibly_sensitive"),
        "filter_level": st.get("filter_level"),
        "raw": payload.decode("utf-8"),
    }


def test_the_reference_flattener_covers_every_tweet_column():
    reference = set(expected_row(b'{"id": 1, "in_reply_to_status_id": null}')) | {"received_at"}
    assert reference == set(schema.TWEET_SCHEMA.names)


# -- every status, exactly once, right values, despite faults ---------------------------------


def test_every_status_sent_is_stored_once_with_the_right_value_in_every_column(tmp_path):
    n = 600
    faults = [
        Fault.http(503),
        Fault.cut(after=150),
        Fault.http(420),
        Fault.stall(after=100, seconds=1.0),
        Fault.cut(after=120),
    ]
    path = tmp_path / "python"
    with make_server(statuses=n, faults=faults, record_payloads=True, notices=0.03, seed=3) as server:
        started = datetime.now(timezone.utc)
        c = capture(server.url, path)
        try:
            assert server.wait_sent(n, timeout=30), f"the server sent only {len(server.sent)} of {n}"
            assert c.wait_for(stored=n, timeout=30), c.stats
        finally:
            c.stop()
        ended = datetime.now(timezone.utc)
        sent, payloads = server.sent, server.sent_payloads
        injected = server.faults_injected
    assert injected == collections.Counter({"http": 2, "cut": 2, "stall": 1})
    stats = c.stats
    assert stats.state == "stopped" and not c.running
    assert stats.http_errors == 2 and stats.stalls >= 1 and stats.reconnects >= 3

    rows = stored_rows(path)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "a status was stored twice"
    assert set(ids) == set(sent) and len(ids) == n == stats.stored

    kinds = collections.Counter()
    problems = []
    for row in rows:
        received_at = row.pop("received_at")
        if not started <= received_at <= ended:
            problems.append((row["id"], "received_at", received_at, (started, ended)))
        want = expected_row(payloads[row["id"]])
        kinds[want["tweet_type"]] += 1
        problems.extend(
            (row["id"], col, row[col], want[col]) for col in want if row[col] != want[col]
        )
    assert not problems, f"{len(problems)} wrong values (id, column, stored, expected): {problems[:8]}"
    # The generated mix exercises every branch of the rules above.
    assert min(kinds[k] for k in schema.TWEET_TYPES) > 10, kinds


FIXTURES = Path(__file__).parent / "fixtures"
_MEDIA = [{"media_url_https": f"https://pbs.twimg.com/media/{c}.jpg", "media_url": "http://x"}
          for c in "abc"]


def _edge_cases() -> list[bytes]:
    """Statuses that take the less travelled branches of each documented rule."""
    quoted = json.loads(_status(900, text="quoted", user={"id": 9, "screen_name": "quoted_author"}))
    quoting = json.loads(_status(901, is_quote_status=True, quoted_status_id=900,
                                 quoted_status_id_str="900", quoted_status=quoted,
                                 user={"id": 8, "screen_name": "quoter"}))
    return [
        # ids only as *_str; a reply known only by its user id
        json.dumps({"id_str": "101", "created_at": "Thu Jan 01 00:00:00 +0000 2015",
                    "text": "a &amp; b", "in_reply_to_status_id": None,
                    "in_reply_to_user_id_str": "77", "user": {"id_str": "5", "name": "x"},
                    "source": '<a href="http://x.org" rel="nofollow">Q&amp;A &lt;bot&gt;</a>'}
                   ).encode(),
        # no entities at all; compat-mode full_text; a plain source
        _status(102, full_text="the full text", source="web", entities=None),
        # empty entities; repeated hashtags; a url without expanded_url; 3 photos
        _status(103, entities={"hashtags": [{"text": "a"}, {"text": "a"}], "user_mentions": [],
                               "urls": [{"url": "https://t.co/1", "expanded_url": None}],
                               "media": _MEDIA[:1]},
                extended_entities={"media": _MEDIA}, possibly_sensitive=True,
                coordinates={"type": "Point", "coordinates": [-122.5, 37.25]},
                place={"full_name": "San Francisco, CA", "country_code": "US"}),
        # a long tweet: text and entities from extended_tweet
        _status(104, text="short\u2026", truncated=True,
                entities={"hashtags": [{"text": "cut"}]},
                extended_tweet={"full_text": "long text #x #y", "entities": {
                    "hashtags": [{"text": "x"}, {"text": "y"}],
                    "user_mentions": [{"screen_name": "m"}]},
                    "extended_entities": {"media": _MEDIA[1:]}}),
        # a quote known only by is_quote_status + quoted_status_id_str
        _status(105, is_quote_status=True, quoted_status_id_str="900"),
        # a retweet of a quote of a long tweet
        _status(106, text="RT @quoter: trunc\u2026", retweeted_status=quoting,
                entities={"hashtags": [{"text": "top"}], "user_mentions": [{"screen_name": "q"}]}),
        # a retweet whose original is long
        _status(107, retweeted_status=json.loads(_status(
            108, user={"id": 3, "screen_name": "orig"}, text="x\u2026",
            extended_tweet={"full_text": "original full text", "entities": {
                "hashtags": [{"text": "h"}], "user_mentions": [{"screen_name": "z"}],
                "urls": [{"url": "https://t.co/2", "expanded_url": "https://e.org"}]}}))),
    ] + [json.dumps(json.loads(p.read_bytes())).encode() for p in sorted(FIXTURES.glob("status_*.json"))]


def test_the_documented_rules_hold_for_rare_shapes_of_status(tmp_path):
    messages = _edge_cases()
    path = tmp_path / "edge"
    with ReplayServer([messages]) as server, capture(server.url, path) as c:
        assert c.wait_for(stored=len(messages), timeout=10), c.stats
    rows = {r["id"]: r for r in stored_rows(path)}
    assert len(rows) == len(messages) and not c.stats.rejected
    problems = []
    for payload in messages:
        want = expected_row(payload)
        row = rows[want["id"]]
        problems.extend((want["id"], k, row[k], want[k]) for k in want if row[k] != want[k])
    assert not problems, f"{len(problems)} wrong values (id, column, stored, expected): {problems}"


# -- the live view, filter changes, prompt stop -----------------------------------------------


def test_df_shows_the_newest_rows_while_the_capture_runs(tmp_path):
    with make_server(rate=400, notices=0, seed=4) as server:
        c = capture(server.url, tmp_path / "live", view_rows=150)
        frames = []
        try:
            assert c.df.empty and list(c.df.columns) == schema.TWEET_SCHEMA.names[:-1]
            for want in (40, 120, 300, 450):
                assert c.wait_for(received=want, timeout=10)
                assert wait_until(lambda want=want: len(c.df) >= min(want, 150), timeout=5)
                frames.append(c.df)
        finally:
            c.stop()
        sent = server.sent
    position = {sid: i for i, sid in enumerate(sent)}  # one connection: arrival order
    expected_dtypes = schema.empty_tweets().drop(columns=["raw"]).dtypes
    spans = []
    for df in frames:
        assert "raw" not in df.columns
        pd.testing.assert_series_equal(df.dtypes, expected_dtypes)
        where = [position[i] for i in df["id"]]
        # a contiguous run of what the server sent, oldest first, newest last
        assert where == list(range(where[0], where[0] + len(where)))
        assert df["received_at"].is_monotonic_increasing
        spans.append((where[0], where[-1]))
    assert len(frames[-1]) == 150
    assert [s[1] for s in spans] == sorted({s[1] for s in spans}), f"the view did not move: {spans}"
    assert spans[-1][0] > 0, "the oldest rows never left the view"


def test_set_filter_switches_filters_without_losing_or_duplicating(tmp_path):
    path = tmp_path / "switch"
    with make_server(rate=500, notices=0, record_payloads=True, seed=5) as server:
        c = capture(server.url, path, track=["python"])
        try:
            assert c.wait_for(stored=100, timeout=15)
            before_switch = datetime.now(timezone.utc)
            c.set_filter(track=["climate"])
            after_switch = datetime.now(timezone.utc)
            assert c.filter == {"track": ["climate"]}
            assert c.wait_for(stored=c.stats.stored + 150, timeout=15)
        finally:
            c.stop()
        # Stopping cuts the connection: statuses the server handed to the socket after the
        # last read are gone with it. The accounting below therefore uses what was
        # received; with a steady 500/s stream that is everything but the last moment.
        sent, payloads = server.sent, server.sent_payloads
        tracks = [r.params.get("track") for r in server.requests if r.status == 200]
    assert [t for i, t in enumerate(tracks) if i == 0 or t != tracks[i - 1]] == [
        ["python"], ["climate"]]
    rows = stored_rows(path)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == c.stats.stored == c.stats.received
    assert set(ids) <= set(sent) and len(sent) - len(ids) <= 25
    old = new = 0
    for row in rows:
        status = json.loads(payloads[row["id"]])
        on_old = match_status(status, track=["python"])
        on_new = match_status(status, track=["climate"])
        if row["received_at"] < before_switch:
            assert on_old, f"{row['id']} received before the switch does not match 'python'"
            old += 1
        elif row["received_at"] > after_switch:
            assert on_new, f"{row['id']} received after the switch does not match 'climate'"
            new += 1
        else:  # received while switching: the old stream's last reads are kept
            assert on_old or on_new
    assert old >= 100 and new >= 100
    manifest = json.loads((path / "streamkit.json").read_text())
    filters = manifest["filters"]
    assert [f["params"].get("track") for f in filters] == [["python"], ["climate"]]
    assert all(f["started"] and f["ended"] for f in filters)
    assert filters[0]["ended"] <= filters[1]["started"] <= filters[1]["ended"]


@pytest.mark.parametrize("situation", ["silent stream", "mid back-off after 420"])
def test_stop_returns_promptly(tmp_path, situation):
    options = dict(FAST)
    if situation == "silent stream":
        server = make_server(statuses=0)  # keep-alives only every 30 s
        options.update(timeout=90.0)  # the default: the reader sits in a blocking read
        want = "streaming"
    else:
        server = make_server(faults=[Fault.http(420)])
        options.update(retry_420=60.0)  # the default back-off after a 420
        want = "backing off"
    with server:
        c = streamkit.collect(track=["python"], auth=make_auth(), base_url=server.url,
                              path=tmp_path / "p", **options)
        try:
            assert wait_until(lambda: c.stats.state == want, timeout=10), c.stats
            if want == "backing off":
                assert "420" in c.stats.detail
            t0 = time.monotonic()
        finally:
            c.stop()
        elapsed = time.monotonic() - t0
    assert elapsed < 3.0, f"stop() took {elapsed:.1f} s on a {situation}"
    assert c.stats.state == "stopped" and not c.running


# -- pandas, pyarrow and DuckDB read the dataset, also while it is written ---------------------


def _duck(path: Path, query: str):
    con = duckdb.connect()
    try:
        glob = f"read_parquet('{(path / 'tweets').as_posix()}/**/*.parquet', hive_partitioning=true)"
        return con.sql(query.format(t=glob)).to_arrow_table()
    finally:
        con.close()


def test_pandas_pyarrow_and_duckdb_read_the_dataset_while_it_is_written(tmp_path):
    path = tmp_path / "readers"
    n = 2500
    counts = {"pandas": [], "pyarrow": [], "duckdb": []}
    with make_server(statuses=n, rate=1500, notices=0.02, seed=6) as server:
        c = capture(server.url, path, flush_seconds=0.05)
        try:
            assert c.wait_for(stored=1, timeout=10)
            while True:
                done = c.stats.stored >= n
                counts["pandas"].append(len(pd.read_parquet(path / "tweets", columns=["id"])))
                table = pads.dataset(path / "tweets", format="parquet", partitioning="hive").to_table()
                counts["pyarrow"].append(table.num_rows)
                assert table.column("id").null_count == 0
                counts["duckdb"].append(_duck(path, "select count(*) as n from {t}")["n"][0].as_py())
                if done:
                    break
                assert c.running, c.stats
        finally:
            c.stop()
    for reader, seen in counts.items():
        assert seen == sorted(seen), f"{reader} saw the row count go down: {seen}"
        assert seen[-1] == n and len(set(seen)) >= 3, (reader, seen)

    names, types = schema.TWEET_SCHEMA.names, [f.type for f in schema.TWEET_SCHEMA]
    by_pandas = pd.read_parquet(path / "tweets")
    by_arrow = pads.dataset(path / "tweets", format="parquet", partitioning="hive").to_table()
    by_duck = _duck(path, "select * from {t}")
    for table in (pa.Table.from_pandas(by_pandas, preserve_index=False), by_arrow, by_duck):
        assert [c for c in table.column_names if c != "date"] == names
    assert [by_arrow.schema.field(x).type for x in names] == types
    # DuckDB names the UTC zone "Etc/UTC"; the instants are the same.
    utc = {pa.timestamp("us", tz="Etc/UTC"): pa.timestamp("us", tz="UTC")}
    assert [utc.get(t, t) for t in (by_duck.schema.field(x).type for x in names)] == types
    file_schema = pads.dataset(next((path / "tweets").rglob("*.parquet"))).schema
    assert file_schema.remove_metadata().equals(schema.TWEET_SCHEMA.remove_metadata())
    ids = sorted(by_arrow["id"].to_pylist())
    assert sorted(by_pandas["id"]) == ids == sorted(by_duck["id"].to_pylist())
    assert len(ids) == len(set(ids)) == n


# -- stats add up; states ----------------------------------------------------------------------


def _notice_kinds(notices):
    return collections.Counter(next(iter(n)) for n in notices)


def test_stats_add_up_with_garbage_notices_and_reconnects(tmp_path):
    path = tmp_path / "stats"
    n = 400
    # The first stream carries every status and notice (and one malformed message); once
    # the budget is spent it goes quiet, the client's stall timeout reconnects, and the next
    # stream sends invalid UTF-8 at once. A disconnect notice ends the third stream.
    faults = [
        Fault.http(503),
        Fault.garbage(after=30, kind="malformed_json"),
        Fault.garbage(after=0, kind="invalid_utf8"),
        Fault.disconnect(after=0, code=7),
    ]
    with make_server(statuses=n, faults=faults, notices=0.15, seed=7) as server:
        c = capture(server.url, path)
        try:
            assert server.wait_sent(n, timeout=20)
            assert wait_until(lambda: not server.pending_faults and c.stats.state == "streaming"
                              and len(server.requests) >= 5, timeout=20)
        finally:
            c.stop()
        notices = server.sent_notices
        requests_seen = server.requests
        injected = server.faults_injected
    s = c.stats
    assert injected == collections.Counter({"http": 1, "garbage": 2, "disconnect": 1})
    assert s.rejected == {"malformed_json": 1, "invalid_utf8": 1}
    assert s.received == s.stored + s.duplicates + s.events + sum(s.rejected.values()), s
    assert s.pending == 0 and s.stored == n and s.duplicates == 0

    kinds = _notice_kinds(notices)
    assert kinds["delete"] > 10 and kinds["limit"] > 3, kinds
    assert s.events == len(notices)
    assert s.deletes == kinds["delete"]
    assert s.limit_notices == kinds["limit"]
    # Every limit notice came on the first stream (the others carried no statuses), and
    # Twitter's `track` is a running total per connection: the last one is the total.
    assert s.withheld == max(x["limit"]["track"] for x in notices if "limit" in x)
    events = streamkit.read_events(path)
    assert collections.Counter(events["event_type"]) == kinds

    streams = sum(r.status == 200 for r in requests_seen)
    assert s.reconnects == streams - 1 >= 3
    assert s.http_errors == sum(r.status >= 400 for r in requests_seen) == 1
    assert s.stalls >= 2 and s.errors >= s.http_errors + s.stalls
    assert s.bytes > n * 1000 and s.state == "stopped" and s.last_flush is not None


def test_withheld_counts_each_connection_from_zero(tmp_path):
    """A limit notice's ``track`` counts undelivered tweets since *its connection* opened."""
    # The second connection's first total (50) happens to exceed the first connection's last
    # (5): only knowing where the connection changed tells a new total from an increase.
    script = [[_status(1), _limit(5)], [_limit(50), _status(2), _limit(70)]]
    with ReplayServer(script) as server, capture(server.url, tmp_path / "limits") as c:
        assert c.wait_for(stored=2, received=5, timeout=10)
        assert wait_until(lambda: c.stats.events == 3)
    s = c.stats
    assert s.limit_notices == 3 and s.reconnects >= 1
    assert s.withheld == 5 + 70, (
        f"withheld={s.withheld}: the first connection reported 5 undelivered tweets and the "
        "second 70 (each a running total since its own connection opened), so 75 were withheld"
    )


def test_stats_add_up_when_the_stream_drops_bad_frames(tmp_path):
    # Three connections cut mid-message, then a message beyond max_message_bytes: both are
    # thrown away by the stream's framing, before the write-ahead log.
    faults = [Fault.cut(after=50)] * 3 + [Fault.garbage(after=10, kind="oversized", size=300_000)]
    with make_server(statuses=200, faults=faults, notices=0, seed=2) as server:
        c = capture(server.url, tmp_path / "cut", max_message_bytes=100_000)
        try:
            assert server.wait_sent(200, timeout=20)
            assert c.wait_for(stored=200, timeout=20)
        finally:
            c.stop()
    s = c.stats
    assert s.stored == 200 and s.reconnects == 3 and s.pending == 0
    # A cut message was never received whole: counted apart, not as received. (With this
    # seed at least one of the three cuts falls between HTTP chunks, so the stream holds
    # half a message when the connection breaks.)
    assert 1 <= s.incomplete <= 3 and s.rejected == {"oversized": 1}, (s.incomplete, s.rejected)
    accounted = s.stored + s.duplicates + s.events + sum(s.rejected.values())
    assert s.received == accounted == 201, (s.received, accounted, s.rejected)


def test_states_from_connecting_to_stopped(tmp_path):
    seen: list[str] = []
    with make_server(faults=[Fault.http(503)], rate=200, notices=0) as server:
        c = capture(server.url, tmp_path / "states", retry_time=0.3)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                s = c.stats
                if not seen or seen[-1] != s.state:
                    seen.append(s.state)
                    if s.state == "backing off":
                        assert "503" in s.detail, s.detail
                if s.state == "streaming" and s.stored > 0:
                    break
                time.sleep(0.002)
        finally:
            c.stop()
    seen.append(c.stats.state)
    assert seen[-1] == "stopped" and not c.running
    # The first "connecting" lasts as long as a local 503 takes (well under a poll) and may
    # go unseen; the second includes the server's first build of its status pool.
    core = [x for x in seen if x in ("connecting", "backing off", "streaming")]
    assert core[-3:] == ["backing off", "connecting", "streaming"], seen
    assert core.count("backing off") == 1 and core.count("streaming") == 1, seen
    assert set(seen) <= {"starting", "recovering", "connecting", "backing off", "streaming",
                         "stopping", "stopped"}, seen


def test_bad_credentials_fail_with_a_clear_error(tmp_path):
    with make_server() as server:
        c = streamkit.collect(track=["python"], auth=make_auth("wrong-secret"),
                              base_url=server.url, path=tmp_path / "denied", **FAST)
        try:
            assert c.wait(timeout=10), "a 401 did not end the capture"
        finally:
            c.stop()
    s = c.stats
    assert not c.running and s.state == "failed"
    assert "401" in s.last_error and "credentials" in s.last_error, s.last_error
    assert isinstance(c.exception, streamkit.AuthError) and c.exception.status_code == 401
    assert "wrong-secret" not in s.last_error and "wrong-secret" not in repr(c)


# -- read(), default paths, context manager, reprs, duplicates --------------------------------


def test_read_drops_deleted_tweets_unless_asked(tmp_path):
    path = tmp_path / "deletes"
    with make_server(statuses=400, notices=0.2, seed=10) as server:
        with capture(server.url, path) as c:
            assert server.wait_sent(400, timeout=20)
            assert c.wait_for(stored=400, timeout=20)
        sent = set(server.sent)
        deleted = {x["delete"]["status"]["id"] for x in server.sent_notices if "delete" in x}
    assert deleted & sent, "the server deleted none of the statuses it sent"
    assert set(streamkit.read(path)["id"]) == sent - deleted
    everything = streamkit.read(path, include_deleted=True)
    assert set(everything["id"]) == sent and everything["id"].is_monotonic_increasing


def test_read_of_a_capture_with_nothing_committed_is_empty_with_the_full_schema(tmp_path):
    path = tmp_path / "fresh"
    with make_server(statuses=0) as server, capture(server.url, path) as c:
        assert wait_until(lambda: c.stats.state == "streaming")
        df = streamkit.read(path)
        live = c.df
    expected = schema.empty_tweets()
    assert df.empty and list(df.columns) == schema.TWEET_SCHEMA.names
    pd.testing.assert_series_equal(df.dtypes, expected.dtypes)
    assert live.empty and list(live.columns) == schema.TWEET_SCHEMA.names[:-1]


@pytest.mark.parametrize("phrase", [
    "../../etc/passwd", "..", "/etc", "~root", "a/../../b", "C:\\Windows\\System32",
    "\x00evil", "....//....//", "%2e%2e%2f", "\u2025/\u2025", " ", "#\u0000/..",
])
def test_default_path_never_leaves_data(phrase):
    path = default_path(track=[phrase])
    root = Path("data").resolve()
    assert path.parts[0] == "data" and len(path.parts) == 2
    assert path.resolve().parent == root and path.name not in ("", ".", "..")


def test_collect_without_a_path_writes_under_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with make_server(statuses=20, notices=0) as server:
        with streamkit.collect(track=["python", "../../escape"], auth=make_auth(),
                               base_url=server.url, **FAST) as c:
            assert c.wait_for(stored=20, timeout=10)
    assert c.path.resolve().parent == (tmp_path / "data").resolve()
    assert len(streamkit.read(c.path)) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_the_context_manager_stops_and_commits_everything(tmp_path):
    with make_server(statuses=120, notices=0) as server:
        with capture(server.url, tmp_path / "cm", flush_seconds=30.0) as c:
            assert c.running
            assert c.wait_for(received=120, timeout=10)
            assert c.stats.stored == 0  # nothing is due before 30 s...
        assert not c.running and c.stats.state == "stopped"
    assert len(streamkit.read(tmp_path / "cm")) == 120 == c.stats.stored  # ...but stop commits


def test_no_secret_in_reprs_stats_or_files(tmp_path):
    path = tmp_path / "secrets"
    with make_server(statuses=50, faults=[Fault.http(503)]) as server:
        c = capture(server.url, path)
        try:
            assert c.wait_for(stored=50, timeout=10)
            shown = [repr(c), c._repr_html_(), repr(c.stats), str(c.stats.as_dict())]
        finally:
            c.stop()
    shown += [repr(c), c._repr_html_(), str(c.stats.as_dict()), str(c.filter)]
    assert "streamkit Collector" in shown[1] and "<table>" in shown[1]
    blobs = [s.encode() for s in shown] + [p.read_bytes() for p in path.rglob("*") if p.is_file()]
    for key in SECRETS:
        secret = C[key].encode()
        assert not [b for b in blobs if secret in b], f"{key} leaked"


def test_a_status_sent_again_is_stored_once_across_reconnects_and_captures(tmp_path):
    path = tmp_path / "dupes"
    with make_server(statuses=150, notices=0, record_payloads=True, seed=11) as server:
        with capture(server.url, path) as first:
            assert first.wait_for(stored=150, timeout=10)
        payloads = [server.sent_payloads[i] for i in server.sent]
    # A second capture into the same dataset from a server that sends all 150 again on each
    # of three connections: duplicates within one connection's batch, across reconnects and
    # across the two captures.
    with ReplayServer([payloads] * 3) as replay, capture(replay.url, path) as second:
        assert second.wait_for(received=450, timeout=20), second.stats
    s = second.stats
    assert replay.connections >= 3 and s.received == 450
    assert s.stored == 0 and s.duplicates == 450
    rows = stored_rows(path)
    assert len(rows) == 150, "a duplicate reached the Parquet files"
    df = streamkit.read(path)
    assert len(df) == df["id"].nunique() == 150
    assert sorted(df["id"]) == sorted(json.loads(p)["id"] for p in payloads)


def test_flush_bytes_commits_before_flush_rows_or_flush_seconds(tmp_path):
    # ~4 KB statuses and 40 kB per commit: many part files, and no wait for 60 s / 10**6 rows.
    with make_server(statuses=300, notices=0.0, rate=3000) as server:
        c = capture(server.url, tmp_path / "bytes", flush_rows=10**6, flush_seconds=60.0,
                    flush_bytes=40_000)
        try:
            assert c.wait_for(stored=250, timeout=30), c.stats
        finally:
            c.stop()
        sent = server.sent
    parts = sorted((tmp_path / "bytes" / "tweets").rglob("part-*.parquet"))
    assert len(parts) >= 5, parts
    ids = [r["id"] for r in stored_rows(tmp_path / "bytes")]
    assert sorted(ids) == sorted(sent) and len(ids) == len(set(ids)) == 300


def test_flush_bytes_must_be_positive(tmp_path):
    with pytest.raises(streamkit.ConfigError, match="flush_bytes must be an integer >= 1"):
        streamkit.Collector(track=["x"], auth=make_auth(), path=tmp_path, flush_bytes=0)
