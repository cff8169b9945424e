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

from .._exceptions import ConfigError
from . import _x_v2_decode
from ._x_v2_decode import X_EVENT_SCHEMA, X_TWEET_SCHEMA
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
    "credential_help",
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


def credential_help(status_code: int) -> str:
    """What a 401 or 403 from any X endpoint (stream or rules) means, naming the variable.

    Examples
    --------
    >>> credential_help(401)[:29]
    'the bearer token was refused:'
    """
    if status_code == 403:
        return (f"the bearer token has no access to this endpoint: check the app's access level "
                f"(the filtered stream needs a paid plan) and {BEARER_ENV}")
    return f"the bearer token was refused: check {BEARER_ENV} (your app's Bearer Token in the X developer console)"


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

    def http_error_help(self, status_code: int) -> str | None:
        """X's meaning of an HTTP status, naming the credential (never showing it).

        Examples
        --------
        >>> XV2Endpoint.__new__(XV2Endpoint).http_error_help(401)[:36]
        'the bearer token was refused: check '
        """
        if status_code in (401, 403):
            return credential_help(status_code)
        if status_code == 429:
            return ("too many connections or requests for this app (X allows one filtered-stream "
                    "connection per app); backing off from 60 s")
        return None

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

    @property
    def can_replay(self) -> bool:  # type: ignore[override]  # per connection, not per class
        """Whether the connection being opened gets everything missed since the last one."""
        st = self._state
        return bool(self.backfill_minutes and st is not None and st.covered)

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """Raw v2 stream messages -> :class:`streamkit.schema.DecodedBatch` (never raises on content)."""
        from streamkit.schema import _received

        received = _received(received_at_us, len(messages))
        if len(messages):
            self._last_received_us = int(received.max())
        return _x_v2_decode.decode(messages, received, keep_raw)

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
