"""The X API v2 filtered stream and sample stream (``/2/tweets/search/stream``, ``/2/tweets/sample/stream``).

The reader side (:class:`XV2Endpoint`) connects with an app-only bearer token in the
``Authorization`` header, asks for the field lists (``tweet.fields``, ``expansions``,
``user.fields``, ...) and, after a reconnect or a restart, for just enough
``backfill_minutes`` to cover the time it was away (at most the ``backfill_minutes`` the
capture allows, never more than X's 5). Its framer splits the newline-delimited JSON, counts
the ``\\r\\n`` keep-alives X sends at least every 20 s, and ends the connection when X sends an
in-stream error object such as ``operational-disconnect`` (the reader then reconnects).

The writer side (:class:`XV2Source`) decodes a batch once, with msgspec, into the columns of
:data:`X_TWEET_SCHEMA`: the v1.1 tweet columns where they apply (the author's columns come
from ``includes.users``, places from ``includes.places``, media from ``includes.media``) plus
``conversation_id`` and ``matching_rules`` (rule ids and tags). Error objects and anything
else go to the events table (:data:`X_EVENT_SCHEMA`). The dedupe key is the tweet id.

Resume and gaps
---------------
X resends nothing by itself. With ``backfill_minutes=0`` (the default) the capture cannot
replay, and collect() records every reconnect and restart as a gap in the manifest. With
``backfill_minutes`` between 1 and 5 (an account that has it), the endpoint asks on each
reconnect and restart for the minutes since it last received anything (keep-alives count),
and the dedupe by id drops what arrives twice. A gap longer than the allowed backfill is still
recorded (``can_replay`` is then False for that connection), so the manifest says exactly
which span may miss tweets.

Examples
--------
>>> ep, src = open_source(bearer_token="t0ken", base_url="http://127.0.0.1:9",
...                       tweet_fields=["created_at", "lang"], expansions="author_id")
>>> req = ep.request()
>>> req.url, req.params["tweet.fields"], req.params["expansions"]
('http://127.0.0.1:9/2/tweets/search/stream', 'created_at,lang', 'author_id')
>>> "t0ken" in repr(req) or "t0ken" in repr(ep)
False
>>> msg = (b'{"data":{"id":"1212092628029698048","text":"hi #python","author_id":"2244994945",'
...        b'"entities":{"hashtags":[{"start":3,"end":10,"tag":"python"}]}},'
...        b'"includes":{"users":[{"id":"2244994945","name":"X Dev","username":"XDevelopers"}]},'
...        b'"matching_rules":[{"id":"1166916266197536768","tag":"py"}]}')
>>> row = src.decode_batch([msg], received_at_us=0).tweets.to_pylist()[0]
>>> row["id"], row["user_screen_name"], row["hashtags"], row["matching_rules"]
(1212092628029698048, 'XDevelopers', ['python'], [{'id': '1166916266197536768', 'tag': 'py'}])
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._exceptions import ConfigError
from .base import Endpoint, Request, Source

__all__ = [
    "BEARER_ENV",
    "CLI_OPTIONS",
    "DEFAULT_API_URL",
    "FIELD_OPTIONS",
    "SAMPLE_PATH",
    "SOURCE_CLASS",
    "STREAM_PATH",
    "X_EVENT_SCHEMA",
    "X_TWEET_SCHEMA",
    "XV2Endpoint",
    "XV2Framer",
    "XV2Source",
    "bearer_token_from",
    "field_params",
    "open_source",
]

log = logging.getLogger("streamkit.sources.x_v2")

DEFAULT_API_URL = "https://api.x.com"
STREAM_PATH = "/2/tweets/search/stream"
SAMPLE_PATH = "/2/tweets/sample/stream"
BEARER_ENV = "STREAMKIT_BEARER_TOKEN"
MAX_BACKFILL_MINUTES = 5
# Keep-alives come at least every 20 s; a little slack before calling it a stall.
STALL_TIMEOUT = 30.0
# Asked-for backfill covers the measured gap plus this margin (the reconnect takes time too).
_BACKFILL_MARGIN = 10.0

#: open_source option -> X query parameter.
FIELD_OPTIONS: dict[str, str] = {
    "tweet_fields": "tweet.fields",
    "expansions": "expansions",
    "user_fields": "user.fields",
    "media_fields": "media.fields",
    "place_fields": "place.fields",
    "poll_fields": "poll.fields",
}

# What a capture asks for when the caller names nothing: enough for every column.
DEFAULT_FIELDS: dict[str, str] = {
    "tweet.fields": "attachments,author_id,conversation_id,created_at,entities,geo,in_reply_to_user_id,"
                    "lang,note_tweet,possibly_sensitive,public_metrics,referenced_tweets,source",
    "expansions": "author_id,attachments.media_keys,geo.place_id,in_reply_to_user_id,"
                  "referenced_tweets.id,referenced_tweets.id.author_id",
    "user.fields": "created_at,description,location,public_metrics,verified",
    "media.fields": "preview_image_url,type,url",
    "place.fields": "country_code,full_name",
}


def bearer_token_from(token: str | None) -> str:
    """The bearer token given, else ``$STREAMKIT_BEARER_TOKEN``.

    Raises
    ------
    ConfigError
        When neither is set (the message names the variable, never a value).

    Examples
    --------
    >>> bearer_token_from("abc")
    'abc'
    """
    value = token if token is not None else os.environ.get(BEARER_ENV, "")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"no X API bearer token: set the {BEARER_ENV} environment variable (your app's "
            "Bearer Token from the X developer console) or pass bearer_token=..."
        )
    if any(c.isspace() for c in value.strip()):
        raise ConfigError("the X API bearer token contains whitespace: copy it again, without spaces or line breaks")
    return value.strip()


def _field_list(name: str, value: Any) -> str | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    try:
        parts = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    except TypeError:
        raise ConfigError(f"{name} must be a list of field names or a comma-separated string, got {value!r}") from None
    bad = [p for p in parts if not all(c.isalnum() or c in "._" for c in p)]
    if bad:
        raise ConfigError(f"{name} has invalid field name(s) {bad}: use names such as 'created_at' or 'author_id'")
    return ",".join(dict.fromkeys(parts)) if parts else None


def field_params(**fields: Any) -> dict[str, str]:
    """Query parameters for the field lists (``tweet_fields=[...]`` -> ``tweet.fields``).

    Examples
    --------
    >>> field_params(tweet_fields=["created_at", "lang"], expansions="author_id")
    {'tweet.fields': 'created_at,lang', 'expansions': 'author_id'}
    >>> field_params(colour="red")
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: unknown field list 'colour'; the X API v2 stream takes tweet_fields, expansions, user_fields, media_fields, place_fields, poll_fields
    """
    params: dict[str, str] = {}
    for name, value in fields.items():
        if name not in FIELD_OPTIONS:
            raise ConfigError(f"unknown field list {name!r}; the X API v2 stream takes {', '.join(FIELD_OPTIONS)}")
        text = _field_list(name, value)
        if text:
            params[FIELD_OPTIONS[name]] = text
    return params


def _check_backfill(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"backfill_minutes must be a whole number of minutes 0-5, got {value!r}")
    if not 0 <= int(value) <= MAX_BACKFILL_MINUTES:
        raise ConfigError(f"backfill_minutes must be 0-5 (X keeps at most 5 minutes), got {value!r}")
    return int(value)


class _ResumeState:
    """What the endpoint (reader thread) and the source (writer) share about gaps."""

    def __init__(self, backfill_minutes: int) -> None:
        self.lock = threading.Lock()
        self.backfill_minutes = backfill_minutes
        self.last_alive: float | None = None  # time.time() of the last byte (or the resume position)
        self.covered = True  # whether the next/current connection's backfill covers its gap
        self.gap_seconds = 0.0


class XV2Framer:
    """Newline framing with keep-alives, ending the connection on an in-stream error object.

    X sends ``{"errors": [{"title": "operational-disconnect", ...}]}`` before it closes a
    stream; after such a message :attr:`closed` is True, later bytes are ignored and the
    reader reconnects. A message that holds ``data`` and ``errors`` (a tweet whose expansion
    failed) is an ordinary tweet.

    Examples
    --------
    >>> f = XV2Framer()
    >>> f.feed(b'{"data":{"id":"1","text":"a"}}\\r\\n\\r\\n')
    [b'{"data":{"id":"1","text":"a"}}']
    >>> f.stats.keepalives, f.closed
    (1, False)
    >>> f.feed(b'{"errors":[{"title":"operational-disconnect"}]}\\r\\n{"data":{}}\\r\\n')
    [b'{"errors":[{"title":"operational-disconnect"}]}']
    >>> f.closed, f.pending_bytes
    (True, 0)
    """

    def __init__(self, max_message_bytes: int | None = None, *, on_bytes: Any = None) -> None:
        from streamkit.framing import DEFAULT_MAX_MESSAGE_BYTES, Framer

        self._framer = Framer(max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES)
        self.closed = False
        self.close_reason: str | None = None
        self._on_bytes = on_bytes

    @property
    def stats(self) -> Any:
        """The :class:`streamkit.framing.FramingStats` of this connection."""
        return self._framer.stats

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete message (0 once closed)."""
        return 0 if self.closed else self._framer.pending_bytes

    def reset(self) -> None:
        """Forget a partial message."""
        self._framer.reset()

    def feed(self, data: bytes) -> list[bytes]:
        """The complete messages these bytes finish (none after an ending error object)."""
        if self._on_bytes is not None:
            self._on_bytes()
        if self.closed:
            return []
        messages = self._framer.feed(data)
        for i, m in enumerate(messages):
            if m.startswith(b'{"data"'):
                continue
            reason = _ending_error(m)
            if reason is not None:
                self.closed = True
                self.close_reason = reason
                self._framer.reset()
                return messages[: i + 1]
        return messages


_untyped = msgspec.json.Decoder()


def _ending_error(message: bytes) -> str | None:
    """The reason when ``message`` is an error object that ends the stream, else None."""
    if b'"errors"' not in message:
        return None
    try:
        obj = _untyped.decode(message)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or "data" in obj or not isinstance(obj.get("errors"), list):
        return None
    for err in obj["errors"]:
        if not isinstance(err, dict):
            continue
        words = " ".join(str(err.get(k, "")) for k in ("title", "type", "disconnect_type")).lower()
        if "disconnect" in words or "connection" in words:
            return str(err.get("detail") or err.get("title") or "disconnected by X")
    return None


class XV2Endpoint(Endpoint):
    """``GET /2/tweets/search/stream`` (or ``/2/tweets/sample/stream``) with a bearer token.

    Parameters
    ----------
    base_url : str
        ``https://api.x.com`` or a compatible server.
    bearer_token : str
        The app's bearer token; sent in the ``Authorization`` header only, never shown.
    sample : bool
        The sample stream instead of the filtered stream.
    params : dict
        The field-list query parameters (see :func:`field_params`).
    backfill_minutes : int
        0-5: the most backfill to ask for after a reconnect or restart.
    """

    name: ClassVar[str] = "x-v2"
    transport: ClassVar[str] = "http"
    stall_timeout: ClassVar[float | None] = STALL_TIMEOUT

    def __init__(self, base_url: str, bearer_token: str, *, sample: bool = False,
                 params: dict[str, str] | None = None, backfill_minutes: int = 0,
                 state: _ResumeState | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.__token = bearer_token
        self.sample = bool(sample)
        self.params = dict(params or {})
        self.backfill_minutes = _check_backfill(backfill_minutes)
        self.state = state or _ResumeState(self.backfill_minutes)

    @property
    def path(self) -> str:
        """The stream's path."""
        return SAMPLE_PATH if self.sample else STREAM_PATH

    def __repr__(self) -> str:
        return f"XV2Endpoint({self.base_url}{self.path} params={sorted(self.params)} token hidden)"

    def describe(self) -> dict[str, Any]:
        """The manifest's record of this capture (no token)."""
        out: dict[str, Any] = {"endpoint": self.path.lstrip("/")}
        out.update(self.params)
        if self.backfill_minutes:
            out["backfill_minutes"] = self.backfill_minutes
        return out

    def dataset_name(self) -> str:
        """The default dataset folder name."""
        return "x-v2-sample" if self.sample else "x-v2-filtered"

    def _backfill(self) -> int:
        """Minutes of backfill for the next connection; notes whether they cover the gap."""
        st = self.state
        with st.lock:
            if st.last_alive is None:  # a fresh capture: nothing was missed
                st.covered, st.gap_seconds = True, 0.0
                return 0
            gap = max(0.0, time.time() - st.last_alive)
            st.gap_seconds = gap
            if not self.backfill_minutes:
                st.covered = False
                return 0
            want = max(1, math.ceil((gap + _BACKFILL_MARGIN) / 60.0))
            st.covered = want <= self.backfill_minutes
            return min(want, self.backfill_minutes)

    def request(self) -> Request:
        """The next connection's request: field lists, and backfill for the time away."""
        params = dict(self.params)
        minutes = self._backfill()
        if minutes:
            params["backfill_minutes"] = str(minutes)
            if not self.state.covered:
                log.warning("away for %.0f s, longer than the %d minutes of backfill allowed: "
                            "tweets before that may be missing (recorded as a gap)",
                            self.state.gap_seconds, self.backfill_minutes)
        return Request("GET", self.base_url + self.path, params=params,
                       headers={"Authorization": f"Bearer {self.__token}"})

    def framer(self, max_message_bytes: int) -> XV2Framer:
        """A fresh :class:`XV2Framer`; every byte it sees marks the connection alive."""
        return XV2Framer(max_message_bytes, on_bytes=self._alive)

    def _alive(self) -> None:
        self.state.last_alive = time.time()

    def resume_from(self, position: Any) -> None:
        """A restart: measure the gap from the last committed message's receive time."""
        when = position.get("received_at") if isinstance(position, dict) else None
        if isinstance(when, (int, float)) and math.isfinite(when):
            with self.state.lock:
                self.state.last_alive = float(when)
            self._backfill()  # sets covered, which collect() reads as can_replay


# -- the dataset ---------------------------------------------------------------------------

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
    return pa.schema(
        [pa.field(n, t, nullable=nl, metadata={"doc": d}) for n, t, nl, d in fields],
        metadata={"streamkit.table": table, "streamkit.source": "x-v2"},
    )


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
        return msgspec.convert(value, typ, strict=False)
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


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        n = int(value)
        return n if n < 2**63 else None
    return None


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


class XV2Source(Source):
    """X API v2 stream messages into :data:`X_TWEET_SCHEMA` and :data:`X_EVENT_SCHEMA`.

    Parameters
    ----------
    backfill_minutes : int
        The backfill the capture allows (0: none, so it cannot replay).

    Attributes
    ----------
    can_replay : bool
        True when backfill covers the gap of the connection being opened: read by
        ``collect()`` at each reconnect and restart, it records a gap when False.
    """

    name: ClassVar[str] = "x-v2"
    items: ClassVar[str] = "tweets"
    key_columns: ClassVar[tuple[str, ...]] = ("id",)
    view_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("time", "created_at"), ("user", "user_screen_name"), ("text", "text"), ("lang", "lang"),
        ("type", "tweet_type"),
    )
    item_schema = X_TWEET_SCHEMA
    event_schema = X_EVENT_SCHEMA

    def __init__(self, backfill_minutes: int = 0, *, state: _ResumeState | None = None) -> None:
        self.backfill_minutes = _check_backfill(backfill_minutes)
        self._state = state
        self._last_received_us: int | None = None

    @property  # type: ignore[override]
    def can_replay(self) -> bool:
        """Whether the connection being opened gets everything missed since the last one."""
        st = self._state
        return bool(self.backfill_minutes and st is not None and st.covered)

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """Raw v2 stream messages -> :class:`streamkit.schema.DecodedBatch` (never raises on content)."""
        from streamkit.schema import DecodedBatch, _received

        n = len(messages)
        received = _received(received_at_us, n)
        if n:
            self._last_received_us = int(received.max())
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

    def position(self, messages: Sequence[bytes]) -> Any:
        """``{"received_at": seconds}`` of the newest message of the batch just decoded.

        The writer calls :meth:`decode_batch` and then this on the same messages; X has no
        resume token, so the position is a time: a restart asks for backfill from there.
        """
        if not messages or self._last_received_us is None:
            return None
        return {"received_at": self._last_received_us / 1e6}


SOURCE_CLASS = XV2Source


def open_source(
    *,
    base_url: str | None = None,
    bearer_token: str | None = None,
    sample_stream: bool = False,
    tweet_fields: Iterable[str] | str | None = None,
    expansions: Iterable[str] | str | None = None,
    user_fields: Iterable[str] | str | None = None,
    media_fields: Iterable[str] | str | None = None,
    place_fields: Iterable[str] | str | None = None,
    poll_fields: Iterable[str] | str | None = None,
    backfill_minutes: int = 0,
) -> tuple[XV2Endpoint, XV2Source]:
    """The X API v2 filtered stream (or, with ``sample_stream=True``, the sample stream) and its decoder.

    Parameters
    ----------
    base_url : str, optional
        ``https://api.x.com`` by default; a local :class:`streamkit.testing.XV2Server` for tests.
    bearer_token : str, optional
        The app's bearer token; by default ``$STREAMKIT_BEARER_TOKEN``.
    sample_stream : bool
        The ~1% sample stream instead of the filtered stream (whose rules are managed with
        :class:`streamkit.StreamingClient` or ``streamkit rules``).
    tweet_fields, expansions, user_fields, media_fields, place_fields, poll_fields
        X's field lists (list or comma-separated). When none is given, the capture asks for
        every field its columns need (authors, places, media, referenced posts).
    backfill_minutes : int
        0-5 (needs an account with backfill): the most backfill asked for after a reconnect
        or a restart; gaps longer than that are recorded in the manifest.

    Raises
    ------
    ConfigError
        No token, an invalid field name, or backfill outside 0-5.

    Examples
    --------
    >>> ep, src = open_source(bearer_token="x", sample_stream=True, backfill_minutes=2)
    >>> ep.request().url, src.can_replay
    ('https://api.x.com/2/tweets/sample/stream', True)
    >>> open_source(bearer_token="x", backfill_minutes=9)
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: backfill_minutes must be 0-5 (X keeps at most 5 minutes), got 9
    """
    from streamkit import _http

    minutes = _check_backfill(backfill_minutes)
    token = bearer_token_from(bearer_token)
    base = _http.check_base_url(base_url or DEFAULT_API_URL)
    fields = field_params(tweet_fields=tweet_fields, expansions=expansions, user_fields=user_fields,
                          media_fields=media_fields, place_fields=place_fields, poll_fields=poll_fields)
    params = fields or dict(DEFAULT_FIELDS)
    state = _ResumeState(minutes)
    endpoint = XV2Endpoint(base, token, sample=bool(sample_stream), params=params,
                           backfill_minutes=minutes, state=state)
    return endpoint, XV2Source(minutes, state=state)


def _fields_arg(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


CLI_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--sample-stream",), dict(dest="sample_stream", action="store_true", default=None,
                                help="Capture the ~1%% sample stream instead of the filtered stream "
                                     "(whose rules `streamkit rules` manages).")),
    (("--tweet-fields",), dict(dest="tweet_fields", metavar="LIST",
                               help="tweet.fields to ask for, comma-separated (default: every field "
                                    "the dataset's columns need).")),
    (("--expansions",), dict(dest="expansions", metavar="LIST",
                             help="expansions to ask for, comma-separated (e.g. author_id,geo.place_id).")),
    (("--user-fields",), dict(dest="user_fields", metavar="LIST",
                              help="user.fields for the expanded users, comma-separated.")),
    (("--media-fields",), dict(dest="media_fields", metavar="LIST",
                               help="media.fields for expanded media, comma-separated.")),
    (("--place-fields",), dict(dest="place_fields", metavar="LIST",
                               help="place.fields for expanded places, comma-separated.")),
    (("--poll-fields",), dict(dest="poll_fields", metavar="LIST",
                              help="poll.fields for expanded polls, comma-separated.")),
    (("--backfill-minutes",), dict(dest="backfill_minutes", type=int, choices=range(0, 6), metavar="N",
                                   help="Ask for up to N (1-5) minutes of backfill after a reconnect or "
                                        "restart (accounts with backfill only); default 0: gaps are recorded.")),
]
"""``streamkit collect --source x-v2`` options; the bearer token comes from ``$STREAMKIT_BEARER_TOKEN`` only."""
