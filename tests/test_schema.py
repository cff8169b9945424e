"""Tests for streamkit.schema: the flat tweet/event schemas and decode_batch."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import time
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamkit import schema
from streamkit._exceptions import ConfigError
from streamkit._schema_extract import source_name, status_row
from streamkit._schema_structs import decoder, lenient_status
from streamkit._schema_time import parse_created_at, parse_created_at_array
from streamkit.schema import (
    EVENT_SCHEMA,
    TWEET_COLUMNS,
    TWEET_SCHEMA,
    decode_batch,
    empty_events,
    empty_tweets,
    message_kind,
    to_pandas,
)

FIXTURES = Path(__file__).parent / "fixtures"
UTC = dt.timezone.utc
RECV = 1_700_000_000_123_456  # 2023-11-14 22:13:20.123456 UTC
RECV_DT = dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def one_tweet(raw: bytes, **kw) -> dict:
    batch = decode_batch([raw], received_at_us=RECV, **kw)
    assert batch.rejected == {}
    assert batch.tweets.schema == TWEET_SCHEMA
    assert batch.tweets.num_rows == 1
    return batch.tweets.to_pylist()[0]


def ts(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# -- the schemas ------------------------------------------------------------------------

STR_LIST = pa.list_(pa.string())
TS = pa.timestamp("us", tz="UTC")
REQUIRED_TWEET_TYPES = {
    "id": pa.int64(), "created_at": TS, "text": pa.string(), "lang": pa.string(),
    "source": pa.string(), "tweet_type": pa.string(), "user_id": pa.int64(),
    "user_screen_name": pa.string(), "user_name": pa.string(),
    "user_description": pa.string(), "user_location": pa.string(),
    "user_verified": pa.bool_(), "user_followers_count": pa.int64(),
    "user_friends_count": pa.int64(), "user_statuses_count": pa.int64(),
    "user_created_at": TS, "in_reply_to_status_id": pa.int64(),
    "in_reply_to_user_id": pa.int64(), "in_reply_to_screen_name": pa.string(),
    "retweeted_status_id": pa.int64(), "retweeted_user_screen_name": pa.string(),
    "quoted_status_id": pa.int64(), "quoted_user_screen_name": pa.string(),
    "hashtags": STR_LIST, "mentions": STR_LIST, "urls": STR_LIST, "media_urls": STR_LIST,
    "longitude": pa.float64(), "latitude": pa.float64(), "place_full_name": pa.string(),
    "place_country_code": pa.string(), "retweet_count": pa.int64(),
    "favorite_count": pa.int64(), "reply_count": pa.int64(), "quote_count": pa.int64(),
    "possibly_sensitive": pa.bool_(), "filter_level": pa.string(), "received_at": TS,
    "raw": pa.string(),
}  # fmt: skip
REQUIRED_EVENT_TYPES = {
    "event_type": pa.string(), "received_at": TS, "timestamp": TS, "status_id": pa.int64(),
    "user_id": pa.int64(), "up_to_status_id": pa.int64(), "limit_track": pa.int64(),
    "code": pa.string(), "message": pa.string(), "withheld_in_countries": STR_LIST,
    "raw": pa.string(),
}  # fmt: skip


@pytest.mark.parametrize(
    ("sch", "required"),
    [(TWEET_SCHEMA, REQUIRED_TWEET_TYPES), (EVENT_SCHEMA, REQUIRED_EVENT_TYPES)],
)
def test_schema_columns_types_and_docs(sch, required):
    assert {n: sch.field(n).type for n in required} == required
    assert len(set(sch.names)) == len(sch.names)
    for f in sch:
        assert f.metadata and f.metadata[b"doc"].strip(), f.name
    assert sch.metadata[b"streamkit.schema_version"] == str(schema.SCHEMA_VERSION).encode()


def test_tweet_columns_describe_every_column_in_order():
    assert schema.SCHEMA_VERSION == 1
    assert list(TWEET_COLUMNS) == TWEET_SCHEMA.names
    assert all(TWEET_COLUMNS[f.name] == f.metadata[b"doc"].decode() for f in TWEET_SCHEMA)
    assert list(schema.EVENT_COLUMNS) == EVENT_SCHEMA.names


# -- statuses: every column on hand-written fixtures -------------------------------------

NULL_ROW = dict.fromkeys(TWEET_SCHEMA.names)

EXPECTED = {
    "status_original": dict(
        id=1050118621198921728,
        created_at=ts(2018, 10, 10, 20, 19, 24),
        text=(
            "To make room for more expression, we will now count all emojis as equal\u2014"
            "including those with gender\u200d\u200d and skin tone modifiers "
            "\U0001f44d\U0001f3fb\U0001f44d\U0001f3fd\U0001f44d\U0001f3ff. This is now "
            "reflected in Twitter-Text, our Open Source library. \n\nUsing Twitter-Text? "
            "See the forum post for detail: https://t.co/Nx1XZmRCXA #emoji #TwitterText"
        ),
        lang="en", source="Twitter Web Client", tweet_type="original",
        user_id=6253282, user_screen_name="TwitterAPI", user_name="Twitter API",
        user_description=(
            "The Real Twitter API. Tweets about API changes, service issues and our "
            "Developer Platform. Don't get an answer? It's on my website."
        ),
        user_location="San Francisco, CA", user_verified=True,
        user_followers_count=6172353, user_friends_count=46, user_statuses_count=3635,
        user_created_at=ts(2007, 5, 23, 6, 1, 13),
        # the long tweet's own entities, not the truncated ones (which hold an i/web link)
        hashtags=["emoji", "TwitterText"], mentions=[],
        urls=["https://twittercommunity.com/t/new-update-to-the-twitter-text-library-emoji-character-count/114607"],
        media_urls=[],
        retweet_count=0, favorite_count=0, reply_count=0, quote_count=0,
        possibly_sensitive=False, filter_level="low",
    ),
    "status_reply": dict(
        id=850007368138018817,
        created_at=ts(2017, 4, 6, 15, 28, 43),
        text="@jack Q&amp;A tonight: are you excited about the #SpaceX launch? https://t.co/xzp3bP0d8B",
        lang="en", source="Twitter for Android", tweet_type="reply",
        user_id=2244994945, user_screen_name="TwitterDev", user_name="Twitter Dev",
        user_description=(
            "Your official source for Twitter Platform news, updates & events. Need "
            "technical help? Visit https://t.co/mGHnxZU8c1 \u2328\ufe0f #TapIntoTwitter"
        ),
        user_location="Internet", user_verified=False, user_followers_count=477684,
        user_friends_count=1524, user_statuses_count=3121,
        user_created_at=ts(2013, 12, 14, 4, 35, 55),
        in_reply_to_status_id=849813577770778624, in_reply_to_user_id=12,
        in_reply_to_screen_name="jack",
        hashtags=["SpaceX"], mentions=["jack"], urls=["https://www.spacex.com/webcast"],
        media_urls=[],
        retweet_count=160, favorite_count=295, reply_count=2, quote_count=1,
        possibly_sensitive=False, filter_level="medium",
    ),
    "status_retweet_long": dict(
        id=1063723426390126592,
        created_at=ts(2018, 11, 17, 9, 2, 11),
        text=(
            "RT @NASA: We're going back to the Moon \u2014 to stay. Our #Artemis program will "
            "land the first woman and next man on the lunar surface, and @NASA_SLS will get "
            "them there. Watch live: https://t.co/Xy12AbCd34 #Moon2024 https://t.co/VidEoLiNk1"
        ),
        lang="en", source="Twitter Web App", tweet_type="retweet",
        user_id=987654321012345678, user_screen_name="astro_fan_42",
        user_name="Ada \u2728 Stargazer", user_verified=False, user_followers_count=311,
        user_friends_count=1022, user_statuses_count=48211,
        user_created_at=ts(2018, 4, 21, 22, 14, 5),
        retweeted_status_id=1063504000123456789, retweeted_user_screen_name="NASA",
        # the retweeted tweet's extended entities, led by the retweeted author
        hashtags=["Artemis", "Moon2024"], mentions=["NASA", "NASA_SLS"],
        urls=["https://www.nasa.gov/live"],
        media_urls=[
            "https://pbs.twimg.com/ext_tw_video_thumb/1063503900000000000/pu/img/Q1w2E3r4T5y6U7i8.jpg"
        ],
        retweet_count=0, favorite_count=0, reply_count=0, quote_count=0,
        filter_level="low",
    ),
    "status_quote": dict(
        id=1084794113212063744,
        created_at=ts(2019, 1, 14, 11, 45, 2),
        text="This is exactly why open data matters. Great thread \U0001f447 https://t.co/QuOtEdLnK1",
        lang="en", source="Twitter for iPhone", tweet_type="quote",
        user_id=30436279, user_screen_name="ODIHQ", user_name="Open Data Institute",
        user_description=(
            "Working with companies and governments to build an open, trustworthy data "
            "ecosystem."
        ),
        user_location="London, UK", user_verified=True, user_followers_count=51234,
        user_friends_count=2890, user_statuses_count=21877,
        user_created_at=ts(2009, 4, 11, 12, 56, 35),
        quoted_status_id=1084700000000000001, quoted_user_screen_name="priya_data",
        hashtags=[], mentions=[],
        urls=["https://twitter.com/priya_data/status/1084700000000000001"], media_urls=[],
        retweet_count=0, favorite_count=0, reply_count=0, quote_count=0,
        possibly_sensitive=False, filter_level="low",
    ),
    "status_media_geo": dict(
        id=1147960237445054465,
        created_at=ts(2019, 7, 7, 19, 3, 55),
        text="Fog rolling over the bridge tonight #sanfrancisco #fog https://t.co/PhOtOsEt12",
        lang="en", source="Instagram", tweet_type="original",
        user_id=19834403, user_screen_name="marco_shoots", user_name="Marco Ruiz",
        user_description="Photographer. Fog enthusiast.", user_location="San Francisco",
        user_verified=False, user_followers_count=1204, user_friends_count=388,
        user_statuses_count=7043, user_created_at=ts(2009, 1, 31, 18, 21, 9),
        hashtags=["sanfrancisco", "fog"], mentions=[], urls=[],
        # both photos: extended_entities, not entities (which lists only the first)
        media_urls=[
            "https://pbs.twimg.com/media/D-z1AbCUcAA1xYz.jpg",
            "https://pbs.twimg.com/media/D-z1AbDUYAEq9Wk.jpg",
        ],
        longitude=-122.4783, latitude=37.8199,  # [lon, lat] from coordinates, not geo
        place_full_name="San Francisco, CA", place_country_code="US",
        retweet_count=0, favorite_count=0, reply_count=0, quote_count=0,
        possibly_sensitive=True, filter_level="low",
    ),
    "status_unicode": dict(
        id=1234630000000000000,
        created_at=ts(2020, 3, 3, 0, 0, 59),
        text=(
            "\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17 \u2600\ufe0f\U0001f338 caf\u00e9 "
            'na\u00efve \u00fcber "quoted" back\\slash tab\there #\u685c @elodie_k'
        ),
        lang="ja", source="Tweets & \u3055\u304f\u3089", tweet_type="original",
        user_id=1180000000000000001, user_screen_name="sakura_tokyo",
        user_name="さくら 🌸 Sakura",
        user_description="写真とお茶 \U0001f375 | مرحبا | Ελληνικά",
        user_location="東京都 渋谷区", user_verified=False, user_followers_count=0,
        user_friends_count=0, user_statuses_count=1,
        user_created_at=ts(2019, 10, 3, 9, 9, 9),
        hashtags=["\u685c"], mentions=["elodie_k"], urls=[], media_urls=[],
        retweet_count=0, favorite_count=0, reply_count=0, quote_count=0,
        filter_level="low",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_status_every_column(name):
    raw = fixture(name)
    row = one_tweet(raw)
    expected = {**NULL_ROW, **EXPECTED[name], "received_at": RECV_DT, "raw": raw.decode()}
    assert row == expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fast_and_lenient_paths_agree_on_fixtures(name):
    raw = fixture(name)
    fast = status_row(decoder.decode(raw))
    slow = status_row(lenient_status(msgspec.json.decode(raw)))
    assert fast == slow
    assert fast is not None


def test_keep_raw_false_keeps_column_null():
    raws = [fixture("status_reply"), fixture("notice_limit")]
    b = decode_batch(raws, received_at_us=RECV, keep_raw=False)
    assert b.tweets.schema == TWEET_SCHEMA and b.events.schema == EVENT_SCHEMA
    assert b.tweets.column("raw").to_pylist() == [None]
    assert b.events.column("raw").to_pylist() == [None]
    assert b.tweets.column("id").to_pylist() == [850007368138018817]


# -- notices -----------------------------------------------------------------------------

NULL_EVENT = dict.fromkeys(EVENT_SCHEMA.names)
EXPECTED_EVENTS = {
    "notice_delete": dict(event_type="delete", timestamp=ts(2018, 10, 10, 20, 23, 20, 123000),
                          status_id=1050118621198921728, user_id=6253282),
    "notice_limit": dict(event_type="limit", timestamp=ts(2018, 10, 10, 20, 23, 21, 456000),
                         limit_track=1234),
    "notice_scrub_geo": dict(event_type="scrub_geo",
                             timestamp=ts(2018, 10, 10, 20, 23, 22, 789000),
                             user_id=14090452, up_to_status_id=23260136625),
    "notice_status_withheld": dict(event_type="status_withheld",
                                   timestamp=ts(2018, 10, 10, 20, 23, 23), status_id=1234567890,
                                   user_id=123456, withheld_in_countries=["DE", "AR"]),
    "notice_user_withheld": dict(event_type="user_withheld", user_id=123456,
                                 withheld_in_countries=["DE", "AR"]),
    "notice_warning": dict(
        event_type="warning", code="FALLING_BEHIND",
        message="Your connection is falling behind and messages are being queued for delivery "
        "to you. Your queue is now over 60% full. You will be disconnected when the queue is "
        "full.",
    ),
    "notice_disconnect": dict(event_type="disconnect", code="7", message="admin logout"),
    "notice_event": dict(event_type="event", timestamp=ts(2010, 9, 4, 16, 10, 54),
                         code="favorite", user_id=6253282, status_id=22962386108),
    "notice_direct_message": dict(event_type="direct_message",
                                  timestamp=ts(2012, 8, 27, 17, 21, 3), user_id=15211564,
                                  message="booyakasha"),
    "notice_friends": dict(event_type="friends"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED_EVENTS))
def test_fixture_notice_every_column(name):
    raw = fixture(name)
    b = decode_batch([raw], received_at_us=RECV)
    assert b.rejected == {} and b.tweets.num_rows == 0
    assert b.events.schema == EVENT_SCHEMA
    expected = {**NULL_EVENT, **EXPECTED_EVENTS[name], "received_at": RECV_DT, "raw": raw.decode()}
    assert b.events.to_pylist() == [expected]
    assert message_kind(json.loads(raw)) == EXPECTED_EVENTS[name]["event_type"]


def test_unknown_json_object_is_an_event_not_a_rejection():
    raws = [b'{"control": {"control_uri": "/1.1/site/c/1_1_54e345d655ee3e8df359ac033648530bfbe26c5f"}}',
            b"{}", b'{"timestamp_ms": "1000"}']  # fmt: skip
    b = decode_batch(raws, received_at_us=RECV)
    assert b.rejected == {}
    assert b.events.column("event_type").to_pylist() == ["unknown"] * 3
    assert b.events.column("timestamp").to_pylist() == [None, None, ts(1970, 1, 1, 0, 0, 1)]
    assert b.events.column("raw").to_pylist() == [r.decode() for r in raws]


def test_notices_with_wrong_types_give_nulls():
    raws = [b'{"delete": {"status": {"id": "x", "id_str": "77", "user_id": [1]}}}',
            b'{"limit": {"track": "many"}}', b'{"limit": 5}',
            b'{"warning": {"code": 3, "message": null}}',
            b'{"status_withheld": {"id": 1.5, "withheld_in_countries": ["DE", 3, null]}}',
            b'{"delete": {"status": {"id": 1}, "timestamp_ms": "soon"}}']  # fmt: skip
    b = decode_batch(raws, received_at_us=RECV)
    assert b.rejected == {}
    ev = b.events.to_pylist()
    assert [e["event_type"] for e in ev] == ["delete", "limit", "limit", "warning",
                                             "status_withheld", "delete"]  # fmt: skip
    assert ev[0]["status_id"] == 77 and ev[0]["user_id"] is None
    assert ev[1]["limit_track"] is None and ev[2]["limit_track"] is None
    assert ev[3]["code"] == "3" and ev[3]["message"] is None
    assert ev[4]["status_id"] is None and ev[4]["withheld_in_countries"] == ["DE"]
    assert ev[5]["status_id"] == 1 and ev[5]["timestamp"] is None


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ({"in_reply_to_status_id": None}, "status"),
        ({"id": 1, "text": "t", "user": {}}, "status"),
        ({"id_str": "1", "full_text": "t", "user": None}, "status"),
        ({"id": 1, "text": "t"}, "unknown"),  # no user: not a status
        ({"delete": {}, "limit": {}}, "delete"),  # Tweepy 3.x order
        ({"limit": {}, "event": "follow"}, "event"),
        ({"friends_str": ["1"]}, "friends"),
        ({"scrub_geo": {}}, "scrub_geo"),
        ({"status_withheld": {}}, "status_withheld"),
        ({"user_withheld": {}}, "user_withheld"),
        ({"warning": {}}, "warning"),
        ({"disconnect": {}}, "disconnect"),
        ({"direct_message": {}}, "direct_message"),
        ({"for_user": 1, "message": {}}, "unknown"),
        ([{"delete": {}}], "unknown"),
        ("delete", "unknown"),
        (None, "unknown"),
    ],
)
def test_message_kind(obj, kind):
    assert message_kind(obj) == kind
    assert kind in schema.MESSAGE_KINDS


# -- tweet rules beyond the fixtures --------------------------------------------------------


def status(**fields) -> dict:
    base = json.loads(fixture("status_reply"))
    for key in ("in_reply_to_status_id", "in_reply_to_status_id_str", "in_reply_to_user_id",
                "in_reply_to_user_id_str", "in_reply_to_screen_name"):  # fmt: skip
        base[key] = None
    base.update(fields)
    return base


def row_of(obj) -> dict:
    return one_tweet(json.dumps(obj).encode())


def test_tweet_type_precedence():
    quote = json.loads(fixture("status_quote"))
    rt_of_quote = status(retweeted_status=quote, quoted_status=quote["quoted_status"],
                         is_quote_status=True)  # fmt: skip
    r = row_of(rt_of_quote)
    assert r["tweet_type"] == "retweet"
    assert r["retweeted_status_id"] == quote["id"] and r["retweeted_user_screen_name"] == "ODIHQ"
    assert r["quoted_status_id"] == 1084700000000000001
    assert r["quoted_user_screen_name"] == "priya_data"
    assert r["text"] == "RT @ODIHQ: " + quote["text"]
    assert r["mentions"] == ["ODIHQ"]

    # a retweet that only carries the retweeted quote's ids still names the quote
    rt_quote_inner = status(retweeted_status=quote)
    r = row_of(rt_quote_inner)
    assert (r["tweet_type"], r["quoted_status_id"]) == ("retweet", 1084700000000000001)

    quote_reply = dict(quote, in_reply_to_status_id=5, in_reply_to_user_id=6)
    assert row_of(quote_reply)["tweet_type"] == "quote"
    # the quoted tweet may be gone: is_quote_status alone makes it a quote
    assert row_of(status(is_quote_status=True))["tweet_type"] == "quote"
    assert row_of(status(in_reply_to_user_id=12))["tweet_type"] == "reply"
    assert row_of(status(in_reply_to_status_id_str="42"))["in_reply_to_status_id"] == 42
    assert row_of(status())["tweet_type"] == "original"


def test_text_fallbacks():
    assert row_of(status(text="short", full_text="the full one"))["text"] == "the full one"
    assert row_of(status(text="short", extended_tweet={"full_text": "ext"}))["text"] == "ext"
    assert row_of(status(text="short", extended_tweet={"full_text": None}))["text"] == "short"
    # a retweet whose retweeted author is unknown keeps its own text
    r = row_of(status(text="RT @x: trunc", retweeted_status={"id": 9, "text": "orig"}))
    assert (r["text"], r["retweeted_status_id"], r["mentions"]) == ("RT @x: trunc", 9, None)


def test_ids_fall_back_to_id_str_and_bad_ids_are_rejected():
    assert row_of(status(id=None, id_str="123"))["id"] == 123
    assert row_of(status(id=2**70, id_str="124"))["id"] == 124  # beyond int64
    assert row_of(status(id=9_223_372_036_854_775_807))["id"] == 2**63 - 1
    bad = [status(id=None, id_str=None), status(id=1.5, id_str=None), status(id="7", id_str="x"),
           status(id=2**64, id_str="99999999999999999999"), {"in_reply_to_status_id": None}]  # fmt: skip
    b = decode_batch([json.dumps(x).encode() for x in bad], received_at_us=RECV)
    assert b.rejected == {"status_without_id": len(bad)}
    assert b.tweets.num_rows == 0 and b.tweets.schema == TWEET_SCHEMA


def test_wrong_types_null_only_the_bad_value():
    obj = status()
    obj["user"] = dict(obj["user"], followers_count="477684", verified="yes")
    obj["entities"] = dict(obj["entities"], hashtags="SpaceX", urls=[5, {"url": "u"}, None])
    obj["coordinates"] = {"type": "Point", "coordinates": [1.5, "2"]}
    obj["retweet_count"] = 1.5
    obj["lang"] = ["en"]
    r = row_of(obj)
    assert r["user_followers_count"] is None and r["user_verified"] is None
    assert r["user_screen_name"] == "TwitterDev" and r["user_friends_count"] == 1524
    assert r["hashtags"] == [] and r["urls"] == ["u"] and r["mentions"] == ["jack"]
    assert r["longitude"] is None and r["latitude"] is None
    assert r["retweet_count"] is None and r["lang"] is None
    assert r["favorite_count"] == 295 and r["id"] == 850007368138018817


def test_entities_absent_vs_empty_and_media_fallback():
    r = row_of(status(entities=None, extended_entities=None))
    assert (r["hashtags"], r["mentions"], r["urls"], r["media_urls"]) == (None,) * 4
    media = {"media": [{"media_url_https": "https://m/1.jpg"}, {"media_url": "http://m/2.jpg"}]}
    r = row_of(status(entities=media))
    assert r["media_urls"] == ["https://m/1.jpg", "http://m/2.jpg"] and r["hashtags"] == []
    r = row_of(status(entities={"urls": [{"url": "https://t.co/a", "expanded_url": None}]}))
    assert r["urls"] == ["https://t.co/a"]


def test_created_at_offsets_and_garbage():
    assert row_of(status(created_at="Wed Oct 10 22:19:24 +0200 2018"))["created_at"] == ts(
        2018, 10, 10, 20, 19, 24
    )
    assert row_of(status(created_at="2018-10-10T20:19:24Z"))["created_at"] is None
    assert row_of(status(created_at=5))["created_at"] is None


def test_source_name():
    assert source_name('<a href="http://x" rel="nofollow">App &amp; Co</a>') == "App & Co"
    assert source_name("web") == "web" and source_name(None) is None
    assert source_name("<a href='x'>broken") == "<a href='x'>broken"


# -- batches ---------------------------------------------------------------------------------


def test_order_indexes_and_received_at_per_message():
    msgs = [fixture("notice_limit"), fixture("status_reply"), b"{oops", fixture("status_quote"),
            fixture("notice_delete"), fixture("status_reply"), b"[]"]  # fmt: skip
    recv = np.arange(len(msgs), dtype=np.int64) * 1_000_000 + RECV
    b = decode_batch(msgs, received_at_us=recv)
    assert b.tweets.column("id").to_pylist() == [
        850007368138018817,
        1084794113212063744,
        850007368138018817,
    ]  # duplicates kept
    assert b.tweet_index.tolist() == [1, 3, 5] and b.tweet_index.dtype == np.int64
    assert b.event_index.tolist() == [0, 4]
    assert b.events.column("event_type").to_pylist() == ["limit", "delete"]
    assert b.rejected == {"malformed_json": 1, "not_an_object": 1} and b.n_rejected == 2
    got = b.tweets.column("received_at").cast(pa.int64()).to_pylist()
    assert got == recv[[1, 3, 5]].tolist()
    assert b.events.column("received_at").cast(pa.int64()).to_pylist() == recv[[0, 4]].tolist()
    assert b.tweets.column("raw").to_pylist() == [msgs[i].decode() for i in (1, 3, 5)]
    assert b.events.column("raw").to_pylist() == [msgs[i].decode() for i in (0, 4)]


def test_received_at_forms():
    m = [fixture("status_reply")] * 2
    as_list = decode_batch(m, received_at_us=[RECV, RECV + 1]).tweets.column("received_at")
    assert as_list.cast(pa.int64()).to_pylist() == [RECV, RECV + 1]
    scalar = decode_batch(m, received_at_us=np.int64(RECV)).tweets.column("received_at")
    assert scalar.cast(pa.int64()).to_pylist() == [RECV, RECV]
    before = time.time_ns() // 1000
    now = decode_batch(m).tweets.column("received_at").cast(pa.int64()).to_pylist()
    assert before <= now[0] == now[1] <= time.time_ns() // 1000
    with pytest.raises(ConfigError, match="one timestamp per message"):
        decode_batch(m, received_at_us=[RECV])
    with pytest.raises(ConfigError, match="received_at_us"):
        decode_batch(m, received_at_us=["soon", "later"])


def test_rejections_and_accepted_input_types():
    good = fixture("status_reply")
    msgs = [
        b'{"in_reply_to_status_id": null, "id": 1, "text": "caf\xe9"}',  # latin-1
        b'{"in_reply_to_status_id": null, "id": 2, "zzz": "\xff\xfe"}',  # in a skipped field
        b'{"id": 3, "in_reply_to_status_id": null, "text": "\\ud83d"}',  # lone surrogate
        b'{"id": 4}}',  # trailing junk
        b"",
        b"   ",
        b"\xef\xbb\xbf" + good,  # a byte-order mark is not JSON
        b"42",
        b'"str"',
        b"null",
        b"[1, 2]",
        None,
        12,
        ["not", "bytes"],
        "\ud800 lone surrogate in a str",
        bytearray(good),
        memoryview(good),
        good.decode(),
    ]
    b = decode_batch(msgs, received_at_us=RECV)
    assert b.rejected == {"invalid_utf8": 3, "malformed_json": 5, "not_an_object": 4,
                          "not_bytes": 3}  # fmt: skip
    assert b.tweet_index.tolist() == [15, 16, 17]
    assert b.tweets.column("raw").to_pylist() == [good.decode()] * 3
    assert set(b.rejected) <= set(schema.REJECT_REASONS)


def test_numbers_beyond_range_and_deep_nesting():
    big = b"1" + b"0" * 400
    deep = b"[" * 5000 + b"]" * 5000
    msgs = [
        b'{"id": 1, "in_reply_to_status_id": null, "coordinates": {"coordinates": [%s, 2]}}' % big,
        b'{"id": 2, "in_reply_to_status_id": null, "user": {"id": %s}, "text": "t"}' % big,
        b'{"id": 3, "in_reply_to_status_id": null, "unused": %s}' % big,
        b'{"id": 4, "in_reply_to_status_id": null, "deep": %s}' % deep,
        b'{"limit": {"track": %s}}' % big,
    ]
    b = decode_batch(msgs, received_at_us=RECV)
    _check_batch(b, len(msgs))
    assert b.rejected == {"too_deep": 1}
    assert b.tweets.column("id").to_pylist() == [1, 2, 3]
    assert b.tweets.column("longitude").to_pylist() == [None] * 3
    assert b.tweets.column("user_id").to_pylist() == [None] * 3
    assert b.tweets.column("text").to_pylist() == [None, "t", None]
    assert b.events.column("limit_track").to_pylist() == [None]


def test_empty_and_all_null_batches_keep_types(tmp_path):
    empty = decode_batch([])
    assert empty.tweets.schema == TWEET_SCHEMA and empty.events.schema == EVENT_SCHEMA
    assert empty.tweets.num_rows == empty.events.num_rows == 0 and empty.rejected == {}
    assert empty.tweet_index.dtype == np.int64 and len(empty.tweet_index) == 0

    msgs = [b'{"id": %d, "in_reply_to_status_id": null}' % i for i in range(3)]
    b = decode_batch(msgs + [b'{"limit": {}}'], received_at_us=RECV, keep_raw=False)
    assert b.tweets.schema == TWEET_SCHEMA
    always = {"id", "tweet_type", "received_at"}
    for name in TWEET_SCHEMA.names:
        col = b.tweets.column(name)
        assert col.type == TWEET_SCHEMA.field(name).type
        assert col.null_count == (0 if name in always else 3), name
    assert b.tweets.column("tweet_type").to_pylist() == ["original"] * 3
    # the types survive a Parquet round trip even though every value is null
    path = tmp_path / "t.parquet"
    pq.write_table(b.tweets, path)
    assert pq.read_schema(path).equals(TWEET_SCHEMA, check_metadata=False)
    buf = io.BytesIO()
    pq.write_table(b.events, buf)
    assert pq.read_table(io.BytesIO(buf.getvalue())).schema.equals(EVENT_SCHEMA)


def test_raw_column_split_into_chunks_when_large(monkeypatch):
    msgs = [fixture("status_reply"), fixture("status_quote"), fixture("status_unicode")] * 3
    monkeypatch.setattr(schema, "_RAW_CHUNK_BYTES", 3000)
    raw = decode_batch(msgs, received_at_us=RECV).tweets.column("raw")
    assert raw.num_chunks > 1
    assert raw.to_pylist() == [m.decode() for m in msgs]


def test_many_statuses_one_batch_matches_one_by_one():
    names = sorted(EXPECTED)
    msgs = [fixture(n) for n in names] * 50
    whole = decode_batch(msgs, received_at_us=RECV).tweets
    single = pa.concat_tables([decode_batch([m], received_at_us=RECV).tweets for m in msgs[:6]])
    assert whole.slice(0, 6).equals(single)
    assert whole.slice(6 * 49).equals(single)


# -- created_at parsing ---------------------------------------------------------------------

_DATES = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            _DATES.map(lambda d: d.strftime("%a %b %d %H:%M:%S +0000 %Y")),
            st.tuples(_DATES, st.integers(-1439, 1439)).map(
                lambda t: (
                    t[0].strftime("%a %b %d %H:%M:%S ")
                    + f"{'-' if t[1] < 0 else '+'}{abs(t[1]) // 60:02d}{abs(t[1]) % 60:02d}"
                    + t[0].strftime(" %Y")
                )
            ),
            # created_at values come from decoded JSON: valid UTF-8, never a lone surrogate
            st.tuples(_DATES, st.integers(0, 29), st.characters(codec="utf-8")).map(
                lambda t: (
                    (s := t[0].strftime("%a %b %d %H:%M:%S +0000 %Y"))[: t[1]]
                    + t[2]
                    + s[t[1] + 1 :]
                )
            ),
            st.text(st.characters(codec="utf-8"), max_size=32),
            st.none(),
        ),
        max_size=20,
    )
)
def test_vectorised_created_at_matches_scalar_parser(values):
    got = parse_created_at_array(values).cast(pa.int64()).to_pylist()
    assert got == [parse_created_at(v) for v in values]


def test_created_at_parser_against_datetime():
    for s in ["Wed Oct 10 20:19:24 +0000 2018", "Thu Feb 29 23:59:59 -0930 2024",
              "Mon Jan 01 00:00:00 +0000 1970"]:  # fmt: skip
        expected = dt.datetime.strptime(s, "%a %b %d %H:%M:%S %z %Y")
        assert parse_created_at(s) == int(expected.timestamp()) * 1_000_000
    for bad in ["Wed Feb 30 20:19:24 +0000 2018", "Wed Oct 10 24:19:24 +0000 2018",
                "Wed Oct 10 20:19:60 +0000 2018", "Wed Oct 10 20:19:24 +0060 2018",
                "Wed Oct 10 20:19:24 +0000 0000", "Xyz Oct 10 20:19:24 +0000 2018",
                "Wed Oct 10 20:19:24 +0000 ٢٠١٨"]:  # fmt: skip
        assert parse_created_at(bad) is None
        assert parse_created_at_array([bad]).to_pylist() == [None]


# -- robustness --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(10**300, 10**320)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
_SEEDS = [json.loads(fixture(n)) for n in sorted(EXPECTED)] + [
    json.loads(fixture(n)) for n in sorted(EXPECTED_EVENTS)
]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _mutate(obj, path, value, delete):
    if not path:
        return value
    target = obj
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


def _check_batch(b, n):
    assert b.tweets.schema == TWEET_SCHEMA and b.events.schema == EVENT_SCHEMA
    assert b.tweets.num_rows == len(b.tweet_index) and b.events.num_rows == len(b.event_index)
    assert b.tweets.num_rows + b.events.num_rows + b.n_rejected == n
    assert set(b.rejected) <= set(schema.REJECT_REASONS)
    assert "decoder_error" not in b.rejected  # that reason means a bug in streamkit
    idx = np.concatenate([b.tweet_index, b.event_index])
    assert len(set(idx.tolist())) == len(idx) and (np.diff(b.tweet_index) > 0).all()
    b.tweets.validate(full=True)
    b.events.validate(full=True)
    assert set(b.tweets.column("tweet_type").to_pylist()) <= set(schema.TWEET_TYPES)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_messages_never_raise(data):
    msgs = []
    for _ in range(data.draw(st.integers(1, 4))):
        obj = copy.deepcopy(data.draw(st.sampled_from(_SEEDS)))
        for _ in range(data.draw(st.integers(1, 3))):
            paths = list(_paths(obj))
            path = data.draw(st.sampled_from(paths))
            obj = _mutate(obj, path, data.draw(json_values), data.draw(st.booleans()))
        msgs.append(json.dumps(obj, ensure_ascii=data.draw(st.booleans())).encode())
    b = decode_batch(msgs, received_at_us=RECV, keep_raw=data.draw(st.booleans()))
    _check_batch(b, len(msgs))
    for m in msgs:
        # the typed fast path, when it accepts a status, agrees with the lenient one
        try:
            fast = decoder.decode(m)
        except msgspec.ValidationError:
            continue
        if fast.in_reply_to_status_id is not msgspec.UNSET:
            assert status_row(fast) == status_row(lenient_status(msgspec.json.decode(m)))


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=6))
def test_arbitrary_json_never_raises(values):
    msgs = [json.dumps(v).encode() for v in values]
    b = decode_batch(msgs, received_at_us=RECV)
    _check_batch(b, len(msgs))
    n_objects = sum(isinstance(v, dict) for v in values)
    assert b.rejected.get("not_an_object", 0) == len(values) - n_objects


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.binary(max_size=64)
        | st.binary(max_size=8).map(
            lambda x: b'{"id":1,"in_reply_to_status_id":null,"text":"' + x + b'"}'
        ),
        max_size=6,
    )
)
def test_arbitrary_bytes_never_raise(msgs):
    b = decode_batch(msgs, received_at_us=RECV)
    _check_batch(b, len(msgs))


# -- pandas ----------------------------------------------------------------------------------

EXPECTED_DTYPES = {
    "id": "Int64", "created_at": "datetime64[us, UTC]", "text": "string",
    "user_verified": "boolean", "user_followers_count": "Int64", "longitude": "float64",
    "hashtags": "object", "received_at": "datetime64[us, UTC]", "raw": "string",
}  # fmt: skip


def test_to_pandas_dtypes_and_values():
    msgs = [fixture(n) for n in sorted(EXPECTED)]
    df = to_pandas(decode_batch(msgs, received_at_us=RECV).tweets)
    assert list(df.columns) == TWEET_SCHEMA.names and len(df) == len(msgs)
    assert {c: str(df[c].dtype) for c in EXPECTED_DTYPES} == EXPECTED_DTYPES
    assert isinstance(df["text"].dtype, pd.StringDtype)
    for c in TWEET_SCHEMA.names:
        t = TWEET_SCHEMA.field(c).type
        if t == pa.int64():
            assert df[c].dtype == pd.Int64Dtype(), c
        elif t == pa.string():
            assert df[c].dtype == pd.StringDtype("pyarrow"), c
    media = df.set_index("id").loc[1147960237445054465]
    assert media["hashtags"] == ["sanfrancisco", "fog"] and isinstance(media["hashtags"], list)
    assert media["created_at"] == pd.Timestamp("2019-07-07 19:03:55", tz="UTC")
    rt = df[df["tweet_type"] == "retweet"].iloc[0]
    assert rt["possibly_sensitive"] is pd.NA and rt["in_reply_to_status_id"] is pd.NA
    assert df.explode("hashtags")["hashtags"].dropna().tolist().count("fog") == 1


def test_empty_frames_have_the_same_dtypes():
    full = to_pandas(decode_batch([fixture("status_media_geo")], received_at_us=RECV).tweets)
    empty = empty_tweets()
    assert len(empty) == 0
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    events = to_pandas(decode_batch([fixture("notice_status_withheld")]).events)
    assert empty_events().dtypes.to_dict() == events.dtypes.to_dict()
    assert events.loc[0, "withheld_in_countries"] == ["DE", "AR"]


# -- the shared status generator --------------------------------------------------------------


def _generate_statuses():
    try:
        from streamkit.testing import generate_statuses
    except ImportError:
        try:  # the generator exists before streamkit.testing re-exports it
            from streamkit.testing._generate import generate_statuses
        except ImportError:
            pytest.skip("streamkit.testing.generate_statuses is not importable yet")
    return generate_statuses


def _reference(st_: dict) -> dict:
    """An independent, dict-based reading of a few columns, to cross-check the decoder."""
    rt = st_.get("retweeted_status")
    src = rt or st_
    ext = src.get("extended_tweet") or {}
    text = ext.get("full_text") or src.get("full_text") or src["text"]
    ents = ext.get("entities") or src.get("entities") or {}
    if rt:
        text = f"RT @{rt['user']['screen_name']}: {text}"
        kind = "retweet"
    elif st_.get("quoted_status") or st_.get("is_quote_status"):
        kind = "quote"
    elif st_.get("in_reply_to_status_id") or st_.get("in_reply_to_user_id"):
        kind = "reply"
    else:
        kind = "original"
    created = dt.datetime.strptime(st_["created_at"], "%a %b %d %H:%M:%S %z %Y")
    return {
        "id": int(st_["id_str"]),
        "text": text,
        "tweet_type": kind,
        "user_screen_name": st_["user"]["screen_name"],
        "hashtags": [h["text"] for h in ents.get("hashtags", [])],
        "created_at": created,
    }


def test_decodes_generated_statuses():
    statuses = _generate_statuses()(300, seed=0)
    msgs = [json.dumps(s, separators=(",", ":")).encode() for s in statuses]
    b = decode_batch(msgs, received_at_us=RECV)
    _check_batch(b, len(msgs))
    assert b.rejected == {} and b.tweets.num_rows == len(msgs)
    rows = b.tweets.select(list(_reference(statuses[0]))).to_pylist()
    assert rows == [_reference(s) for s in statuses]
    assert set(b.tweets.column("tweet_type").to_pylist()) == set(schema.TWEET_TYPES)
