"""Decoding X API v2 stream messages into the columns of an explicit Arrow schema.

Each message is decoded once, by msgspec, into typed structs that name only the fields the
columns need; rows are accumulated as tuples and each column is built with one
``pyarrow.array`` call per batch. A message with a field of an unexpected type is decoded again
untyped and converted leniently (what does not fit becomes null), so one odd message never
costs the batch. Used by :class:`streamkit.sources.x_v2.XV2Source`.

Examples
--------
>>> batch = decode([b'{"data":{"id":"20","text":"hi","lang":"en"}}', b'{"errors":[{"title":"x"}]}'],
...                np.zeros(2, dtype=np.int64), keep_raw=False)
>>> batch.tweets.column("id").to_pylist(), batch.events.column("title").to_pylist()
([20], ['x'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._columns import documented_schema, int64

__all__ = ["X_EVENT_SCHEMA", "X_TWEET_SCHEMA", "decode"]

_untyped = msgspec.json.Decoder()

_TS = pa.timestamp("us", tz="UTC")
_STR_LIST = pa.list_(pa.string())
_RULES = pa.list_(pa.struct([pa.field("id", pa.string()), pa.field("tag", pa.string())]))

_X_TWEET_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("id", pa.int64(), False, "Post id (`data.id`)."),
    ("created_at", _TS, True, "When the post was created (`created_at`, needs tweet.fields=created_at), UTC."),
    ("text", pa.string(), True,
     "Full text: `note_tweet.text` for long posts, else `text`; for a repost 'RT @<username>: ' + the "
     "reposted post's full text when it is in `includes.tweets`."),
    ("lang", pa.string(), True, "Language X detected (BCP 47), or 'und'."),
    ("source", pa.string(), True, "The posting app's name (`source`), where X still sends it."),
    ("tweet_type", pa.string(), False,
     "original, reply, retweet or quote from `referenced_tweets` (precedence retweeted > quoted > "
     "replied_to); a post with `in_reply_to_user_id` is a reply."),
    ("user_id", pa.int64(), True, "Author's user id (`author_id`)."),
    ("user_screen_name", pa.string(), True, "Author's @username (from includes.users, expansion author_id)."),
    ("user_name", pa.string(), True, "Author's display name (includes.users)."),
    ("user_description", pa.string(), True, "Author's bio (user.fields=description)."),
    ("user_location", pa.string(), True, "Author's profile location (user.fields=location)."),
    ("user_verified", pa.bool_(), True, "Whether the author is verified (user.fields=verified)."),
    ("user_followers_count", pa.int64(), True, "Author's followers (user.fields=public_metrics)."),
    ("user_friends_count", pa.int64(), True, "Accounts the author follows (`following_count`)."),
    ("user_statuses_count", pa.int64(), True, "Posts the author has made (`tweet_count`)."),
    ("user_created_at", _TS, True, "When the author's account was created, UTC."),
    ("in_reply_to_status_id", pa.int64(), True, "Id of the post this replies to (`replied_to`)."),
    ("in_reply_to_user_id", pa.int64(), True, "Id of the user this replies to."),
    ("in_reply_to_screen_name", pa.string(), True, "Username of that user, when in includes.users."),
    ("retweeted_status_id", pa.int64(), True, "For a repost, the reposted post's id."),
    ("retweeted_user_screen_name", pa.string(), True,
     "For a repost, the reposted post's author (expansion referenced_tweets.id.author_id)."),
    ("quoted_status_id", pa.int64(), True,
     "Id of the quoted post (for a repost of a quote, the one the reposted post quotes)."),
    ("quoted_user_screen_name", pa.string(), True, "Author of the quoted post, when in includes."),
    ("hashtags", _STR_LIST, True,
     "Hashtags without '#', in order (the reposted post's for a repost; note_tweet's for a long post)."),
    ("mentions", _STR_LIST, True, "Usernames mentioned, in order."),
    ("urls", _STR_LIST, True, "Links in the text as `expanded_url` (else `url`); media links left out."),
    ("media_urls", _STR_LIST, True,
     "`url` (photos) or `preview_image_url` (videos, GIFs) of each attached media in includes.media."),
    ("longitude", pa.float64(), True, "Exact location: `geo.coordinates.coordinates[0]`."),
    ("latitude", pa.float64(), True, "Exact location: `geo.coordinates.coordinates[1]`."),
    ("place_full_name", pa.string(), True, "Tagged place (includes.places, expansion geo.place_id)."),
    ("place_country_code", pa.string(), True, "Tagged place's ISO country code."),
    ("retweet_count", pa.int64(), True, "public_metrics.retweet_count when delivered."),
    ("favorite_count", pa.int64(), True, "public_metrics.like_count when delivered."),
    ("reply_count", pa.int64(), True, "public_metrics.reply_count when delivered."),
    ("quote_count", pa.int64(), True, "public_metrics.quote_count when delivered."),
    ("possibly_sensitive", pa.bool_(), True, "X's flag for links/media that may be sensitive."),
    ("conversation_id", pa.int64(), True, "Id of the post that started the conversation."),
    ("matching_rules", _RULES, True,
     "The filtered stream's rules this post matched: their ids and tags (null on the sample stream)."),
    ("received_at", _TS, False, "When streamkit received the message, UTC."),
    ("raw", pa.string(), True,
     "The message exactly as received (UTF-8); null when collected with keep_raw=False."),
]  # fmt: skip

_X_EVENT_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("event_type", pa.string(), False,
     "error (an in-stream `errors` object such as operational-disconnect) or unknown."),
    ("received_at", _TS, False, "When streamkit received the message, UTC."),
    ("title", pa.string(), True, "The first error's `title` (operational-disconnect, ConnectionException...)."),
    ("detail", pa.string(), True, "The first error's `detail`, in X's words."),
    ("problem_type", pa.string(), True, "The first error's `type` URI."),
    ("disconnect_type", pa.string(), True, "`disconnect_type` (OperationalDisconnect...), if any."),
    ("errors", pa.int64(), True, "How many error objects the message held."),
    ("raw", pa.string(), True,
     "The message exactly as received (UTF-8); null when collected with keep_raw=False."),
]  # fmt: skip


def _schema(fields: list[tuple[str, pa.DataType, bool, str]], table: str) -> pa.Schema:
    return documented_schema(fields, {"streamkit.table": table, "streamkit.source": "x-v2"})


#: The items ("tweets") table of an X API v2 dataset.
X_TWEET_SCHEMA: pa.Schema = _schema(_X_TWEET_FIELDS, "tweets")
#: The events table of an X API v2 dataset.
X_EVENT_SCHEMA: pa.Schema = _schema(_X_EVENT_FIELDS, "events")

_ROW_COLUMNS = tuple(X_TWEET_SCHEMA.names[:-2])  # all but received_at and raw
_EVENT_ROW_COLUMNS = ("event_type", "title", "detail", "problem_type", "disconnect_type", "errors")


# Typed structs naming only what the columns need: msgspec skips the rest without building it.
class _Ref(msgspec.Struct):
    type: str | None = None
    id: str | int | None = None


class _Tag(msgspec.Struct):
    tag: str | None = None


class _Mention(msgspec.Struct):
    username: str | None = None


class _Url(msgspec.Struct):
    url: str | None = None
    expanded_url: str | None = None
    media_key: str | None = None


class _Entities(msgspec.Struct):
    hashtags: list[_Tag] | None = None
    mentions: list[_Mention] | None = None
    urls: list[_Url] | None = None


class _Metrics(msgspec.Struct):
    retweet_count: int | None = None
    reply_count: int | None = None
    like_count: int | None = None
    quote_count: int | None = None


class _Point(msgspec.Struct):
    coordinates: list[float] | None = None


class _Geo(msgspec.Struct):
    place_id: str | None = None
    coordinates: _Point | None = None


class _Attachments(msgspec.Struct):
    media_keys: list[str] | None = None


class _Note(msgspec.Struct):
    text: str | None = None
    entities: _Entities | None = None


class _Tweet(msgspec.Struct):
    id: str | int | None = None
    text: str | None = None
    created_at: str | None = None
    author_id: str | int | None = None
    conversation_id: str | int | None = None
    in_reply_to_user_id: str | int | None = None
    referenced_tweets: list[_Ref] | None = None
    entities: _Entities | None = None
    public_metrics: _Metrics | None = None
    geo: _Geo | None = None
    attachments: _Attachments | None = None
    lang: str | None = None
    source: str | None = None
    possibly_sensitive: bool | None = None
    note_tweet: _Note | None = None


class _UserMetrics(msgspec.Struct):
    followers_count: int | None = None
    following_count: int | None = None
    tweet_count: int | None = None


class _User(msgspec.Struct):
    id: str | int | None = None
    username: str | None = None
    name: str | None = None
    description: str | None = None
    location: str | None = None
    verified: bool | None = None
    created_at: str | None = None
    public_metrics: _UserMetrics | None = None


class _Media(msgspec.Struct):
    media_key: str | None = None
    type: str | None = None
    url: str | None = None
    preview_image_url: str | None = None


class _Place(msgspec.Struct):
    id: str | None = None
    full_name: str | None = None
    country_code: str | None = None


class _Includes(msgspec.Struct):
    users: list[_User] | None = None
    tweets: list[_Tweet] | None = None
    media: list[_Media] | None = None
    places: list[_Place] | None = None


class _Rule(msgspec.Struct):
    id: str | int | None = None
    tag: str | None = None


class _Problem(msgspec.Struct):
    title: str | None = None
    detail: str | None = None
    type: str | None = None
    disconnect_type: str | None = None


class _Message(msgspec.Struct):
    data: _Tweet | None = None
    includes: _Includes | None = None
    matching_rules: list[_Rule] | None = None
    errors: list[_Problem] | None = None


_decoder = msgspec.json.Decoder(_Message)
_MISSING = object()


def _lenient(value: Any, typ: Any) -> Any:
    """``msgspec.convert`` that drops what has the wrong type instead of failing the message."""
    try:
        return msgspec.convert(value, typ, strict=True)
    except msgspec.ValidationError:
        pass
    struct = _struct_of(typ)
    if struct is not None and isinstance(value, dict):
        kwargs = {}
        for f in msgspec.structs.fields(struct):
            if f.encode_name in value:
                kwargs[f.name] = _lenient(value[f.encode_name], f.type)
        return struct(**kwargs)
    inner = _list_of(typ)
    if inner is not None and isinstance(value, list):
        return [v for v in (_lenient(x, inner) for x in value) if v is not None]
    return None


def _struct_of(typ: Any) -> Any:
    for t in getattr(typ, "__args__", (typ,)):
        if isinstance(t, type) and issubclass(t, msgspec.Struct):
            return t
    return None


def _list_of(typ: Any) -> Any:
    for t in getattr(typ, "__args__", (typ,)):
        if getattr(t, "__origin__", None) is list:
            return t.__args__[0]
    return None


_int = int64


def _str_id(value: Any) -> str | None:
    return None if value is None or isinstance(value, bool) else str(value)


def _refs(t: _Tweet) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in t.referenced_tweets or ():
        if r.type and r.type not in out:
            out[r.type] = r.id
    return out


def _entities(t: _Tweet) -> _Entities | None:
    if t.note_tweet is not None and t.note_tweet.entities is not None:
        return t.note_tweet.entities
    return t.entities


def _full_text(t: _Tweet) -> str | None:
    if t.note_tweet is not None and t.note_tweet.text is not None:
        return t.note_tweet.text
    return t.text


def _row(m: _Message) -> tuple | None:
    """One tweets-table row (the columns of :data:`_ROW_COLUMNS`), or None without an id."""
    t = m.data
    assert t is not None
    tid = _int(t.id)
    if tid is None:
        return None
    inc = m.includes
    users = {_str_id(u.id): u for u in (inc.users or ()) if u.id is not None} if inc else {}
    tweets = {_str_id(x.id): x for x in (inc.tweets or ()) if x.id is not None} if inc else {}
    refs = _refs(t)
    rt_id, quote_id, reply_id = refs.get("retweeted"), refs.get("quoted"), refs.get("replied_to")
    if rt_id is not None:
        kind = "retweet"
    elif quote_id is not None:
        kind = "quote"
    elif reply_id is not None or t.in_reply_to_user_id is not None:
        kind = "reply"
    else:
        kind = "original"
    author = users.get(_str_id(t.author_id))
    text = _full_text(t)
    ent = _entities(t)
    rt_user = None
    if rt_id is not None:
        inner = tweets.get(_str_id(rt_id))
        if inner is not None:
            rt_user = users.get(_str_id(inner.author_id))
            inner_text = _full_text(inner)
            if rt_user is not None and rt_user.username and inner_text is not None:
                text = f"RT @{rt_user.username}: {inner_text}"
            if _entities(inner) is not None:
                ent = _entities(inner)
            inner_quote = _refs(inner).get("quoted")
            if inner_quote is not None and quote_id is None:
                quote_id = inner_quote
    quote_user = None
    if quote_id is not None:
        q = tweets.get(_str_id(quote_id))
        if q is not None:
            quote_user = users.get(_str_id(q.author_id))
    reply_user = users.get(_str_id(t.in_reply_to_user_id)) if t.in_reply_to_user_id is not None else None
    hashtags = mentions = urls = None
    if ent is not None:
        hashtags = [h.tag for h in ent.hashtags or () if h.tag is not None]
        mentions = [x.username for x in ent.mentions or () if x.username is not None]
        urls = [u.expanded_url or u.url for u in ent.urls or () if u.media_key is None and (u.expanded_url or u.url)]
    media_urls = None
    if t.attachments is not None and t.attachments.media_keys:
        by_key = {x.media_key: x for x in (inc.media or ())} if inc else {}
        media_urls = [u for u in (_media_url(by_key.get(k)) for k in t.attachments.media_keys) if u]
    lon = lat = None
    place = None
    if t.geo is not None:
        pt = t.geo.coordinates
        if pt is not None and pt.coordinates and len(pt.coordinates) == 2:
            lon, lat = pt.coordinates
        if t.geo.place_id is not None and inc is not None:
            place = next((p for p in inc.places or () if p.id == t.geo.place_id), None)
    pm = t.public_metrics
    um = author.public_metrics if author is not None else None
    rules = None
    if m.matching_rules is not None:
        rules = [{"id": _str_id(r.id), "tag": r.tag} for r in m.matching_rules]
    return (
        tid, t.created_at, text, t.lang, t.source, kind,
        _int(t.author_id),
        author.username if author else None, author.name if author else None,
        author.description if author else None, author.location if author else None,
        author.verified if author else None,
        um.followers_count if um else None, um.following_count if um else None, um.tweet_count if um else None,
        author.created_at if author else None,
        _int(reply_id), _int(t.in_reply_to_user_id), reply_user.username if reply_user else None,
        _int(rt_id), rt_user.username if rt_user else None,
        _int(quote_id), quote_user.username if quote_user else None,
        hashtags, mentions, urls, media_urls, lon, lat,
        place.full_name if place else None, place.country_code if place else None,
        pm.retweet_count if pm else None, pm.like_count if pm else None,
        pm.reply_count if pm else None, pm.quote_count if pm else None,
        t.possibly_sensitive, _int(t.conversation_id), rules,
    )  # fmt: skip


def _media_url(media: _Media | None) -> str | None:
    if media is None:
        return None
    return media.url or media.preview_image_url


def _event_row(m: _Message | None, kind: str) -> tuple:
    first = m.errors[0] if m is not None and m.errors else None
    n = len(m.errors) if m is not None and m.errors is not None else None
    if first is None:
        return (kind, None, None, None, None, n)
    return (kind, first.title, first.detail, first.type, first.disconnect_type, n)


def _timestamps(values: Sequence[str | None]) -> pa.Array:
    """ISO 8601 strings (``2019-08-26T17:29:14.000Z``) -> UTC timestamps; unparsable -> null."""
    arr = pa.array(values, pa.string())
    try:
        return pc.cast(arr, _TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = []
    for v in values:
        try:
            out.append(pc.cast(pa.array([v], pa.string()), _TS)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out.append(None)
    return pa.array(out, _TS)


def _column(name: str, values: Sequence[Any]) -> pa.Array:
    if name in ("created_at", "user_created_at"):
        return _timestamps(values)
    return pa.array(values, X_TWEET_SCHEMA.field(name).type)



def decode(messages: Sequence[bytes], received: np.ndarray, keep_raw: bool) -> Any:
    """Raw v2 stream messages -> :class:`streamkit.schema.DecodedBatch` (never raises on content).

    ``received`` holds one receive time (µs since the epoch) per message.
    """
    from streamkit.schema import DecodedBatch

    rows: list[tuple] = []
    t_idx: list[int] = []
    ev_rows: list[tuple] = []
    e_idx: list[int] = []
    raws: list[str | None] = []
    ev_raws: list[str | None] = []
    rejected: dict[str, int] = {}

    def reject(reason: str) -> None:
        rejected[reason] = rejected.get(reason, 0) + 1

    for i, raw in enumerate(messages):
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        elif not isinstance(raw, bytes):
            try:
                raw = bytes(raw)
            except (TypeError, ValueError):
                reject("not_bytes")
                continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            reject("invalid_utf8")
            continue
        try:
            m: _Message | None = _decoder.decode(raw)
            obj: Any = _MISSING
        except msgspec.ValidationError:
            m = None
            obj = _MISSING
        except msgspec.DecodeError:
            reject("malformed_json")
            continue
        if m is None:  # an unexpected shape somewhere: keep what fits, if it is JSON at all
            try:
                obj = _untyped.decode(raw)
            except msgspec.DecodeError:
                reject("malformed_json")
                continue
            if not isinstance(obj, dict):
                reject("not_an_object")
                continue
            m = _lenient(obj, _Message)
            assert m is not None
        if m.data is not None:
            row = _row(m)
            if row is None:
                reject("tweet_without_id")
                continue
            rows.append(row)
            t_idx.append(i)
            raws.append(text if keep_raw else None)
        elif m.errors is not None:
            ev_rows.append(_event_row(m, "error"))
            e_idx.append(i)
            ev_raws.append(text if keep_raw else None)
        else:
            if obj is _MISSING:
                obj = _untyped.decode(raw)
            if not isinstance(obj, dict):
                reject("not_an_object")
                continue
            ev_rows.append(_event_row(None, "unknown"))
            e_idx.append(i)
            ev_raws.append(text if keep_raw else None)
    tweet_index = np.asarray(t_idx, dtype=np.int64)
    event_index = np.asarray(e_idx, dtype=np.int64)
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(_ROW_COLUMNS)
    arrays = [_column(name, values) for name, values in zip(_ROW_COLUMNS, cols, strict=True)]
    arrays.append(pa.array(received[tweet_index], _TS))
    arrays.append(pa.array(raws, pa.string()))
    tweets = pa.Table.from_arrays(arrays, schema=X_TWEET_SCHEMA)
    ecols = list(zip(*ev_rows, strict=True)) if ev_rows else [()] * len(_EVENT_ROW_COLUMNS)
    ev = dict(zip(_EVENT_ROW_COLUMNS, ecols, strict=True))
    ev_arrays = []
    for f in X_EVENT_SCHEMA:
        if f.name == "received_at":
            ev_arrays.append(pa.array(received[event_index], _TS))
        elif f.name == "raw":
            ev_arrays.append(pa.array(ev_raws, pa.string()))
        else:
            ev_arrays.append(pa.array(ev[f.name], f.type))
    events = pa.Table.from_arrays(ev_arrays, schema=X_EVENT_SCHEMA)
    return DecodedBatch(tweets, events, rejected, tweet_index, event_index)
