"""Bluesky's Jetstream: the AT Protocol firehose as JSON over a WebSocket, no credentials.

Jetstream (``wss://jetstream2.us-east.bsky.network/subscribe`` and the other public hosts
in :data:`PUBLIC_HOSTS`) sends one JSON text message per event:

* ``commit`` — a record created, updated or deleted in someone's repository:
  ``{"did", "time_us", "kind": "commit", "commit": {"rev", "operation", "collection",
  "rkey", "record", "cid"}}`` (a delete has no ``record`` nor ``cid``);
* ``identity`` — a handle or DID document change (``identity.handle``, ``seq``, ``time``);
* ``account`` — an account (de)activated, taken down or deleted (``account.active``,
  ``status``).

The query string filters on the server: ``wantedCollections`` (NSIDs such as
``app.bsky.feed.post``, or prefixes such as ``app.bsky.graph.*``; identity and account
events always come), ``wantedDids``, ``maxMessageSizeBytes``, and ``cursor``: a
``time_us`` (unix microseconds) to replay from. Keyword filtering (``track``) is done
here, on the client: a post is kept when its text contains one of the phrases as whole
words, ignoring case (``"climate change"`` matches "Climate  change!" but not
"climatechange"); other events are not filtered by keywords.

Resume without gaps or duplicates
---------------------------------
Every event carries ``time_us``, and Jetstream replays from a cursor. The endpoint keeps
the newest ``time_us`` received; a reconnect asks for ``cursor = newest - rewind_seconds``
(5 s by default, as Jetstream's documentation advises, so that nothing between two
hosts' clocks falls through) and drops, on the reader thread, the replayed events it
already has (those older than the newest, and those at exactly the newest time that it
saw). A restarted capture does the same from the position stored with the last commit.
A server whose buffer no longer reaches back to the cursor replays from its oldest
event instead (the public hosts keep a few days): when the first event after a cursor
is more than ``clamp_seconds`` newer than the cursor, the span is recorded as a ``gap``
row in the events table (on a stream filtered by ``wantedDids`` silence is normal, so
this check is off there).

The dataset
-----------
``posts/`` holds ``app.bsky.feed.post`` creates and updates, one row per record version:
key ``(did, collection, rkey, rev)`` (an edit is a new ``rev``). Post deletes, every other
collection (likes, reposts, follows, blocks, profiles...), identity and account events
go to ``events/`` (:data:`EVENT_SCHEMA`): ``kind`` is Jetstream's (``commit``,
``identity``, ``account``; ``gap`` for a recorded gap), ``event_type`` says more
(``create:app.bsky.feed.like``, ``delete:app.bsky.feed.post``, ``identity``...).

Examples
--------
>>> ep, src = open_source(collections=["app.bsky.feed.post"], track=["python"])
>>> req = ep.request()
>>> req.url, req.params
('wss://jetstream2.us-east.bsky.network/subscribe', {'wantedCollections': ['app.bsky.feed.post']})
>>> src.items, src.key_columns
('posts', ('did', 'collection', 'rkey', 'rev'))
>>> ep.resume_from({"host": "jetstream2.us-east.bsky.network", "time_us": 1725911162329308})
>>> ep.request().params["cursor"]                    # 5 s before the stored position
'1725911157329308'
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import msgspec
import numpy as np
import pyarrow as pa

from .._exceptions import ConfigError
from .base import Endpoint, Request, Source

__all__ = [
    "CLI_OPTIONS",
    "DEFAULT_URL",
    "EVENT_SCHEMA",
    "POST_COLLECTION",
    "POST_SCHEMA",
    "PUBLIC_HOSTS",
    "SOURCE_CLASS",
    "JetstreamEndpoint",
    "JetstreamSource",
    "TrackMatcher",
    "open_source",
    "parse_cursor",
]

log = logging.getLogger("streamkit.sources.jetstream")

#: Bluesky's public Jetstream instances.
PUBLIC_HOSTS = (
    "jetstream1.us-east.bsky.network",
    "jetstream2.us-east.bsky.network",
    "jetstream1.us-west.bsky.network",
    "jetstream2.us-west.bsky.network",
)
DEFAULT_URL = f"wss://{PUBLIC_HOSTS[1]}/subscribe"
POST_COLLECTION = "app.bsky.feed.post"
GAP_KIND = "streamkit.gap"  # a marker the endpoint itself emits; no server sends it

MAX_COLLECTIONS = 100  # Jetstream's limits on one subscription
MAX_DIDS = 10_000
REWIND_SECONDS = 5.0
CLAMP_SECONDS = 60.0
# The firehose never pauses for long; a filtered stream may (then reconnecting is cheap:
# the cursor resumes it exactly).
STALL_TIMEOUT = 60.0

_TS = pa.timestamp("us", tz="UTC")

#: The ``posts`` table: one row per version (``rev``) of an ``app.bsky.feed.post`` record.
POST_SCHEMA = pa.schema([
    pa.field("did", pa.string(), nullable=False),
    pa.field("collection", pa.string(), nullable=False),
    pa.field("rkey", pa.string(), nullable=False),
    pa.field("rev", pa.string(), nullable=False),
    pa.field("operation", pa.string(), nullable=False),
    pa.field("cid", pa.string()),
    pa.field("uri", pa.string(), nullable=False),
    pa.field("time_us", pa.int64(), nullable=False),
    pa.field("time", _TS, nullable=False),
    pa.field("created_at", _TS),
    pa.field("received_at", _TS, nullable=False),
    pa.field("text", pa.string()),
    pa.field("langs", pa.list_(pa.string())),
    pa.field("reply_root_uri", pa.string()),
    pa.field("reply_parent_uri", pa.string()),
    pa.field("quote_uri", pa.string()),
    pa.field("embed_type", pa.string()),
    pa.field("hashtags", pa.list_(pa.string())),
    pa.field("mentions", pa.list_(pa.string())),
    pa.field("links", pa.list_(pa.string())),
    pa.field("raw", pa.string()),
])

#: The ``events`` table: post deletes, other collections, identity and account events, gaps.
EVENT_SCHEMA = pa.schema([
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("did", pa.string()),
    pa.field("time_us", pa.int64()),
    pa.field("time", _TS),
    pa.field("received_at", _TS, nullable=False),
    pa.field("collection", pa.string()),
    pa.field("operation", pa.string()),
    pa.field("rkey", pa.string()),
    pa.field("rev", pa.string()),
    pa.field("cid", pa.string()),
    pa.field("uri", pa.string()),
    pa.field("subject", pa.string()),
    pa.field("created_at", _TS),
    pa.field("handle", pa.string()),
    pa.field("active", pa.bool_()),
    pa.field("status", pa.string()),
    pa.field("seq", pa.int64()),
    pa.field("detail", pa.string()),
    pa.field("raw", pa.string()),
])

_NSID = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}(?:\.[a-zA-Z0-9][a-zA-Z0-9-]{0,62}){2,}$")
_NSID_PREFIX = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}(?:\.[a-zA-Z0-9][a-zA-Z0-9-]{0,62})+\.\*$")
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]{1,2000}$")


# -- messages on the wire (typed structs naming only the fields used) ---------------------

class _Commit(msgspec.Struct):
    rev: Any = None
    operation: Any = None
    collection: Any = None
    rkey: Any = None
    cid: Any = None
    record: msgspec.Raw = msgspec.Raw(b"null")


class _Event(msgspec.Struct):
    did: Any = None
    time_us: Any = None
    kind: Any = None
    commit: _Commit | None = None
    identity: Any = None
    account: Any = None
    # streamkit's own gap marker
    start: Any = None
    end: Any = None
    reason: Any = None


class _Post(msgspec.Struct, rename={"created_at": "createdAt"}):
    text: Any = None
    created_at: Any = None
    langs: Any = None
    reply: Any = None
    embed: Any = None
    facets: Any = None
    tags: Any = None


class _Other(msgspec.Struct, rename={"created_at": "createdAt"}):
    created_at: Any = None
    subject: Any = None


class _Time(msgspec.Struct):
    time_us: Any = None


class _IdentCommit(msgspec.Struct):
    rev: Any = None
    operation: Any = None
    collection: Any = None
    rkey: Any = None


class _Ident(msgspec.Struct):
    did: Any = None
    time_us: Any = None
    kind: Any = None
    commit: _IdentCommit | None = None


class _Text(msgspec.Struct):
    text: Any = None


class _TrackCommit(msgspec.Struct):
    operation: Any = None
    collection: Any = None
    record: _Text | None = None


class _TrackEvent(msgspec.Struct):
    kind: Any = None
    commit: _TrackCommit | None = None


_decode_event = msgspec.json.Decoder(_Event).decode
_decode_post = msgspec.json.Decoder(_Post).decode
_decode_other = msgspec.json.Decoder(_Other).decode
_decode_time = msgspec.json.Decoder(_Time).decode
_decode_ident = msgspec.json.Decoder(_Ident).decode
_decode_track = msgspec.json.Decoder(_TrackEvent).decode
_encode = msgspec.json.Encoder().encode
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


def _present(raw: msgspec.Raw) -> bool:
    """A record that is there (not absent, not ``null``)."""
    return not (len(raw) == 4 and bytes(raw) == b"null")


def _time_us(message: bytes) -> int | None:
    try:
        t = _decode_time(message).time_us
    except _DECODE_ERRORS:
        return None
    return t if type(t) is int and t > 0 else None


def _identity(message: bytes) -> tuple[int, str] | None:
    """(time_us, digest) of an event: what tells two events at the same time apart."""
    try:
        e = _decode_ident(message)
    except _DECODE_ERRORS:
        return None
    if type(e.time_us) is not int:
        return None
    c = e.commit
    parts = (e.did, e.kind) + ((c.collection, c.rkey, c.rev, c.operation) if c is not None else ())
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).hexdigest()
    return e.time_us, digest


class _Newest:
    """The newest ``time_us`` seen and the identities of the events at exactly that time."""

    __slots__ = ("marks", "time_us")

    def __init__(self, time_us: int | None = None, marks: Iterable[str] = ()) -> None:
        self.time_us = time_us
        self.marks = set(marks)

    def take(self, time_us: int, marks: Iterable[str]) -> None:
        """Take in the newest time of some events and the identities of those at it."""
        if self.time_us is None or time_us > self.time_us:
            self.time_us, self.marks = time_us, set(marks)
        elif time_us == self.time_us:
            self.marks |= set(marks)

    def scan(self, messages: Sequence[bytes]) -> None:
        """Take in messages in any order (every one is parsed)."""
        top: int | None = None
        marks: set[str] = set()
        for m in messages:
            ident = _identity(m)
            if ident is None:
                continue
            t, digest = ident
            if top is None or t > top:
                top, marks = t, {digest}
            elif t == top:
                marks.add(digest)
        if top is not None:
            self.take(top, marks)

    def advance(self, messages: Sequence[bytes]) -> None:
        """Take in messages of one connection (in time order): only the newest few are parsed."""
        top: int | None = None
        marks: set[str] = set()
        for m in reversed(messages):
            ident = _identity(m)
            if ident is None:
                continue
            t, digest = ident
            if top is None:
                top = t
            if t != top:
                break
            marks.add(digest)
        if top is not None:
            self.take(top, marks)


# -- client-side keyword filter ------------------------------------------------------------

class TrackMatcher:
    """Case-insensitive whole-word match of any of the phrases in a text.

    Words of a phrase must appear in that order, separated by any whitespace; a phrase
    may hold ``#`` or ``@`` (``"#python"``).

    Examples
    --------
    >>> m = TrackMatcher(["climate change", "#python"])
    >>> m("Climate  change is here"), m("climatechange"), m("I love #Python!"), m("#pythonic")
    (True, False, True, False)
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases = [" ".join(p.split()) for p in phrases]
        alternatives = "|".join(r"\s+".join(map(re.escape, p.split())) for p in self.phrases)
        self._search = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE).search

    def __call__(self, text: Any) -> bool:
        return isinstance(text, str) and self._search(text) is not None

    def __repr__(self) -> str:
        return f"TrackMatcher({self.phrases!r})"


def _check_track(track: Any) -> list[str]:
    phrases = [track] if isinstance(track, str) else list(track or [])
    out = []
    for p in phrases:
        if not isinstance(p, str) or not p.split():
            raise ConfigError(f"track phrases must be non-empty strings, got {p!r}")
        out.extend(part.strip() for part in p.split(",") if part.strip())
    return out


# -- the endpoint (reader side) ------------------------------------------------------------

class _JetstreamFramer:
    """The WebSocket framer, then (on the reader thread, before the log): replayed events
    already received are dropped, posts not matching ``track`` are dropped, and a cursor
    the server could not honour is reported."""

    def __init__(self, endpoint: JetstreamEndpoint, inner: Any, floor: _Newest | None,
                 cursor: int | None) -> None:
        self._ep = endpoint
        self._inner = inner
        self.stats = inner.stats
        self.outgoing = inner.outgoing
        self._floor = floor
        self._cursor = cursor
        self._first = cursor is not None and endpoint.clamp_seconds is not None

    @property
    def closed(self) -> bool:
        return bool(self._inner.closed)

    @property
    def pending_bytes(self) -> int:
        return int(self._inner.pending_bytes)

    def reset(self) -> None:
        self._inner.reset()

    def feed(self, data: bytes) -> list[bytes]:
        messages = self._inner.feed(data)
        if not messages:
            return messages
        out: list[bytes] = messages
        if self._first:
            out = self._check_clamp(out)
        if self._floor is not None:
            out = self._drop_replayed(out)
        matcher = self._ep.matcher
        if matcher is not None and out:
            kept = [m for m in out if _keep_for_track(m, matcher)]
            self._ep.skipped_track += len(out) - len(kept)
            out = kept
        return out

    def _check_clamp(self, messages: list[bytes]) -> list[bytes]:
        for i, m in enumerate(messages):
            t = _time_us(m)
            if t is None:
                continue
            self._first = False
            assert self._cursor is not None
            late = (t - self._cursor) / 1e6
            if late > self._ep.clamp_seconds:  # type: ignore[operator]
                marker = self._ep._gap_marker(self._cursor, t, late)
                return messages[:i] + [marker] + messages[i:]
            return messages
        return messages

    def _drop_replayed(self, messages: list[bytes]) -> list[bytes]:
        floor = self._floor
        assert floor is not None and floor.time_us is not None
        kept: list[bytes] = []
        for i, m in enumerate(messages):
            ident = _identity(m)
            if ident is None:
                kept.append(m)  # not ours to judge: the decoder counts it
                continue
            t, digest = ident
            if t < floor.time_us or (t == floor.time_us and digest in floor.marks):
                self._ep.skipped_replayed += 1
                continue
            kept.append(m)
            if t > floor.time_us:  # past the overlap: the rest is new
                self._floor = None
                kept.extend(messages[i + 1:])
                break
        return kept


def _keep_for_track(message: bytes, matcher: TrackMatcher) -> bool:
    try:
        e = _decode_track(message)
    except _DECODE_ERRORS:
        return True  # the decoder counts it
    c = e.commit
    if e.kind != "commit" or c is None or c.collection != POST_COLLECTION or c.operation not in ("create", "update"):
        return True
    return c.record is not None and matcher(c.record.text)


class JetstreamEndpoint(Endpoint):
    """One Jetstream subscription (see :func:`open_source` for the options).

    Attributes
    ----------
    newest_time_us : int or None
        The newest ``time_us`` received (or resumed from).
    skipped_replayed, skipped_track : int
        Events dropped on the reader thread: replays already received, posts not
        matching ``track``.
    gaps : list of (int, int, float)
        ``(cursor, first time_us, seconds)`` where the server replayed from later than asked.

    Examples
    --------
    >>> ep = JetstreamEndpoint("ws://127.0.0.1:6008/subscribe", dids=["did:plc:abc"], cursor=1700000000000000)
    >>> ep.request().params
    {'wantedDids': ['did:plc:abc'], 'cursor': '1700000000000000'}
    >>> ep.observe([b'{"did": "did:plc:abc", "time_us": 1700000000000042, "kind": "identity"}'])
    >>> ep.newest_time_us, ep.request().params["cursor"]
    (1700000000000042, '1699999995000042')
    """

    name: ClassVar[str] = "jetstream"
    transport: ClassVar[str] = "websocket"
    stall_timeout: ClassVar[float | None] = STALL_TIMEOUT

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        collections: Sequence[str] = (),
        dids: Sequence[str] = (),
        track: Sequence[str] = (),
        cursor: int | None = None,
        max_message_size: int | None = None,
        rewind_seconds: float = REWIND_SECONDS,
        clamp_seconds: float | None = CLAMP_SECONDS,
    ) -> None:
        self.url = url
        self.host = urlsplit(url).netloc
        self.collections = list(collections)
        self.dids = list(dids)
        self.track = list(track)
        self.matcher = TrackMatcher(self.track) if self.track else None
        self.cursor = cursor
        self.max_message_size = max_message_size
        self.rewind_us = int(rewind_seconds * 1_000_000)
        # Silence is normal on a stream of a few accounts: no clamp check there.
        self.clamp_seconds = None if self.dids else clamp_seconds
        self._lock = threading.Lock()
        self._newest = _Newest()
        self._newest_host: str | None = None  # where the newest time_us came from
        self.skipped_replayed = 0
        self.skipped_track = 0
        self.gaps: list[tuple[int, int, float]] = []

    @property
    def newest_time_us(self) -> int | None:
        return self._newest.time_us

    def next_cursor(self) -> int | None:
        """The ``cursor`` of the next connection (None: the live tail)."""
        with self._lock:
            newest = self._newest.time_us
        if newest is not None:
            return max(1, newest - self.rewind_us)
        return self.cursor

    def request(self) -> Request:
        """``GET /subscribe?wantedCollections=...&wantedDids=...&cursor=...`` (upgraded)."""
        params: dict[str, Any] = {}
        if self.collections:
            params["wantedCollections"] = list(self.collections)
        if self.dids:
            params["wantedDids"] = list(self.dids)
        cursor = self.next_cursor()
        if cursor is not None:
            params["cursor"] = str(cursor)
        if self.max_message_size:
            params["maxMessageSizeBytes"] = str(self.max_message_size)
        return Request("GET", self.url, params=params)

    def framer(self, max_message_bytes: int) -> Any:
        from .._websocket import WebSocketFramer

        with self._lock:
            same_host = self._newest_host == self.host
            floor = _Newest(self._newest.time_us, self._newest.marks) if (
                self._newest.time_us is not None and same_host) else None
        return _JetstreamFramer(self, WebSocketFramer(max_message_bytes), floor, self.next_cursor())

    def observe(self, messages: Sequence[bytes]) -> None:
        with self._lock:
            before = self._newest.time_us
            self._newest.advance(messages)
            if self._newest.time_us != before:
                self._newest_host = self.host

    def resume_from(self, position: Any) -> None:
        """Continue from a stored position ``{"host", "time_us", "marks"}`` (see
        :meth:`JetstreamSource.position`)."""
        t = position.get("time_us") if isinstance(position, dict) else None
        if type(t) is not int or t <= 0:
            log.warning("ignoring a resume position this source did not write: %r", position)
            return
        marks = position.get("marks") or []
        with self._lock:
            if self._newest.time_us is None or t > self._newest.time_us:
                self._newest = _Newest(t, [m for m in marks if isinstance(m, str)])
                self._newest_host = position.get("host")
        if position.get("host") != self.host:
            log.info("resuming a capture made from %s on %s: cursor times are close but not equal "
                     "across hosts, so a few events may be stored twice in the events table",
                     position.get("host"), self.host)

    def _gap_marker(self, cursor: int, first: int, late: float) -> bytes:
        self.gaps.append((cursor, first, late))
        log.warning("asked %s to replay from %s, but its first event is %.0f s later: the server's "
                    "buffer does not reach back that far, so that span is missing (recorded as a gap)",
                    self.host, _iso(cursor), late)
        return _encode({"kind": GAP_KIND, "time_us": first, "start": cursor, "end": first,
                        "reason": f"{self.host} replayed from {late:.0f} s after the cursor (older than its buffer)"})

    def describe(self) -> dict[str, Any]:
        """The subscription as the manifest records it."""
        out: dict[str, Any] = {"endpoint": "jetstream", "url": self.url}
        for key in ("collections", "dids", "track"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.cursor is not None:
            out["cursor"] = self.cursor
        return out

    def dataset_name(self) -> str:
        what = "-".join(c.rstrip(".*").split(".")[-1] for c in self.collections[:3]) or "all"
        return f"jetstream-{what}" + (f"-{self.track[0]}" if self.track else "")

    def __repr__(self) -> str:
        return f"JetstreamEndpoint({self.url!r}, collections={self.collections!r}, dids={len(self.dids)})"


# -- the source (writer side) --------------------------------------------------------------

def _iso(time_us: int | None) -> str | None:
    if time_us is None:
        return None
    return datetime.fromtimestamp(time_us / 1e6, timezone.utc).isoformat().replace("+00:00", "Z")


_MIN_US = 0
_MAX_US = int(datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)


def _datetime_us(value: Any) -> int | None | bool:
    """An RFC 3339 datetime as epoch microseconds; None when absent, False when invalid."""
    if value is None:
        return None
    if not isinstance(value, str):
        return False
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return False
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        us = int(dt.timestamp() * 1_000_000)
    except (OverflowError, OSError, ValueError):
        return False
    return us if _MIN_US <= us < _MAX_US else False


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _facets(facets: Any) -> tuple[list[str], list[str], list[str]]:
    """(hashtags, mention dids, link uris) of ``app.bsky.richtext.facet`` annotations."""
    tags: list[str] = []
    mentions: list[str] = []
    links: list[str] = []
    if not isinstance(facets, list):
        return tags, mentions, links
    for facet in facets:
        for feature in _d(facet).get("features") or ():
            f = _d(feature)
            kind = f.get("$type")
            if kind == "app.bsky.richtext.facet#tag" and isinstance(f.get("tag"), str):
                tags.append(f["tag"])
            elif kind == "app.bsky.richtext.facet#mention" and isinstance(f.get("did"), str):
                mentions.append(f["did"])
            elif kind == "app.bsky.richtext.facet#link" and isinstance(f.get("uri"), str):
                links.append(f["uri"])
    return tags, mentions, links


def _quote_uri(embed: dict[str, Any]) -> str | None:
    kind = embed.get("$type")
    if kind == "app.bsky.embed.record":
        return _s(_d(embed.get("record")).get("uri"))
    if kind == "app.bsky.embed.recordWithMedia":
        return _s(_d(_d(embed.get("record")).get("record")).get("uri"))
    return None


def _subject(value: Any) -> str | None:
    """A like's or repost's subject (a strong ref: its uri), a follow's or block's (a did)."""
    if isinstance(value, str):
        return value
    return _s(_d(value).get("uri"))


def _int(value: Any) -> int | None:
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


class _Columns:
    """Python lists per column, turned into one Arrow table of an explicit schema."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.cols: dict[str, list[Any]] = {name: [] for name in schema.names}

    def add(self, **values: Any) -> None:
        for name, col in self.cols.items():
            col.append(values.get(name))

    def table(self) -> pa.Table:
        return pa.table([pa.array(self.cols[f.name], type=f.type) for f in self.schema], schema=self.schema)


class JetstreamSource(Source):
    """Jetstream events into the ``posts`` and ``events`` tables (see the module notes).

    Parameters
    ----------
    host : str, optional
        The Jetstream host, stored in the resume position.

    Attributes
    ----------
    bad_created_at : int
        Posts whose ``createdAt`` was not a valid datetime (stored with ``created_at`` null).

    Examples
    --------
    >>> src = JetstreamSource()
    >>> post = (b'{"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit", "commit": '
    ...         b'{"rev": "3l3qo2vutsw2b", "operation": "create", "collection": "app.bsky.feed.post", '
    ...         b'"rkey": "3l3qo2vuowo2b", "cid": "bafy", "record": {"$type": "app.bsky.feed.post", '
    ...         b'"text": "hello #atproto", "createdAt": "2024-09-09T19:46:02.102Z", "langs": ["en"]}}}')
    >>> batch = src.decode_batch([post, b'{"kind": "commit"}', b"not json"], received_at_us=0)
    >>> row = batch.tweets.to_pylist()[0]
    >>> row["uri"], row["text"], row["langs"], str(row["created_at"])
    ('at://did:plc:a/app.bsky.feed.post/3l3qo2vuowo2b', 'hello #atproto', ['en'], '2024-09-09 19:46:02.102000+00:00')
    >>> sorted(batch.rejected.items())
    [('malformed_json', 1), ('missing_did', 1)]
    >>> src.position([post])["time_us"]
    1725911162329308
    """

    name: ClassVar[str] = "jetstream"
    items: ClassVar[str] = "posts"
    key_columns: ClassVar[tuple[str, ...]] = ("did", "collection", "rkey", "rev")
    can_replay: ClassVar[bool] = True
    view_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("time", "created_at"), ("did", "did"), ("text", "text"), ("langs", "langs"),
    )
    item_schema = POST_SCHEMA
    event_schema = EVENT_SCHEMA

    def __init__(self, *, host: str | None = None) -> None:
        self.host = host
        self.bad_created_at = 0
        self._newest = _Newest()
        # (the list decode_batch saw, its length, its newest time_us, identities at that time)
        self._decoded: tuple[int, int, int | None, set[str]] = (0, -1, None, set())
        self._top: int | None = None
        self._marks: set[str] = set()

    def position(self, messages: Sequence[bytes]) -> Any:
        """``{"host", "time_us", "marks"}``: the newest ``time_us`` so far and the identities
        of the events at exactly that time (None before any event)."""
        ref, n, top, marks = self._decoded
        if ref == id(messages) and n == len(messages):  # just decoded: no second parse
            if top is not None:
                self._newest.take(top, marks)
        elif messages:
            self._newest.scan(messages)
        if self._newest.time_us is None:
            return None
        return {"host": self.host, "time_us": self._newest.time_us, "marks": sorted(self._newest.marks)}

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """Raw Jetstream messages → a :class:`streamkit.schema.DecodedBatch` (never raises
        on content: bad messages are counted in ``rejected`` by reason)."""
        from streamkit.schema import DecodedBatch, _as_bytes, _received

        received = _received(received_at_us, len(messages))
        posts = _Columns(POST_SCHEMA)
        events = _Columns(EVENT_SCHEMA)
        post_index: list[int] = []
        event_index: list[int] = []
        rejected: dict[str, int] = {}
        self._top = None
        self._marks = set()

        for i, m in enumerate(messages):
            raw = _as_bytes(m)
            if isinstance(raw, str):
                rejected[raw] = rejected.get(raw, 0) + 1
                continue
            reason = self._decode_one(raw, int(received[i]), keep_raw, posts, events)
            if reason is None:
                post_index.append(i)
            elif reason == "":
                event_index.append(i)
            else:
                rejected[reason] = rejected.get(reason, 0) + 1
        self._decoded = (id(messages), len(messages), self._top, self._marks)
        return DecodedBatch(
            tweets=posts.table(), events=events.table(), rejected=rejected,
            tweet_index=np.asarray(post_index, dtype=np.int64),
            event_index=np.asarray(event_index, dtype=np.int64),
        )

    def _decode_one(self, raw: bytes, received: int, keep_raw: bool, posts: _Columns,
                    events: _Columns) -> str | None:
        """None: a post row; "": an event row; else the reason it was rejected."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "invalid_utf8"
        try:
            e = _decode_event(text)
        except msgspec.ValidationError:  # valid JSON of the wrong shape
            return "invalid_fields" if text.lstrip()[:1] == "{" else "not_an_object"
        except msgspec.DecodeError:
            return "malformed_json"
        keep = text if keep_raw else None
        kind = e.kind
        if kind == GAP_KIND:
            events.add(event_type="gap", kind="gap", time_us=_int(e.end), time=_int(e.end), received_at=received,
                       created_at=_int(e.start), detail=_s(e.reason), raw=keep)
            return ""
        if not isinstance(kind, str) or not kind:
            return "missing_kind"
        did = e.did
        if not isinstance(did, str) or not did.startswith("did:"):
            return "missing_did"
        t = e.time_us
        if type(t) is not int or not 0 < t < _MAX_US:
            return "missing_time_us"
        if self._top is None or t >= self._top:  # the resume position (see position())
            c0 = e.commit
            parts = (did, kind) + ((c0.collection, c0.rkey, c0.rev, c0.operation) if c0 is not None else ())
            digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).hexdigest()
            if self._top is None or t > self._top:
                self._top, self._marks = t, {digest}
            else:
                self._marks.add(digest)
        if kind == "commit":
            c = e.commit
            if c is None:
                return "missing_commit"
            collection, operation, rkey, rev = c.collection, c.operation, c.rkey, c.rev
            if not (isinstance(collection, str) and isinstance(operation, str) and isinstance(rkey, str)
                    and isinstance(rev, str) and collection and rkey and rev):
                return "missing_commit_fields"
            uri = f"at://{did}/{collection}/{rkey}"
            if collection == POST_COLLECTION and operation in ("create", "update"):
                if not _present(c.record):
                    return "missing_record"
                try:
                    p = _decode_post(c.record)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    return "invalid_record"
                created = _datetime_us(p.created_at)
                if created is False:
                    self.bad_created_at += 1
                    if self.bad_created_at == 1:
                        log.warning("a post has an invalid createdAt %r; stored with created_at null "
                                    "(counted in bad_created_at)", str(p.created_at)[:40])
                    created = None
                reply = _d(p.reply)
                embed = _d(p.embed)
                tags, mentions, links = _facets(p.facets)
                for tag in _strings(p.tags):
                    if tag not in tags:
                        tags.append(tag)
                posts.add(
                    did=did, collection=collection, rkey=rkey, rev=rev, operation=operation,
                    cid=_s(c.cid), uri=uri, time_us=t, time=t, created_at=created, received_at=received,
                    text=_s(p.text), langs=_strings(p.langs),
                    reply_root_uri=_s(_d(reply.get("root")).get("uri")),
                    reply_parent_uri=_s(_d(reply.get("parent")).get("uri")),
                    quote_uri=_quote_uri(embed), embed_type=_s(embed.get("$type")),
                    hashtags=tags, mentions=mentions, links=links, raw=keep,
                )
                return None
            subject = created_at = None
            if _present(c.record):
                try:
                    other = _decode_other(c.record)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    other = _Other()
                subject = _subject(other.subject)
                created = _datetime_us(other.created_at)
                created_at = created if created is not False else None
            events.add(event_type=f"{operation}:{collection}", kind=kind, did=did, time_us=t, time=t,
                       received_at=received, collection=collection,
                       operation=operation, rkey=rkey, rev=rev, cid=_s(c.cid), uri=uri, subject=subject,
                       created_at=created_at, raw=keep)
            return ""
        if kind == "identity":
            ident = _d(e.identity)
            created = _datetime_us(ident.get("time"))
            events.add(event_type=kind, kind=kind, did=did, time_us=t, time=t, received_at=received,
                       created_at=created if created is not False else None, handle=_s(ident.get("handle")),
                       seq=_int(ident.get("seq")), raw=keep)
            return ""
        if kind == "account":
            acct = _d(e.account)
            created = _datetime_us(acct.get("time"))
            active = acct.get("active")
            events.add(event_type=kind, kind=kind, did=did, time_us=t, time=t, received_at=received,
                       created_at=created if created is not False else None,
                       active=active if isinstance(active, bool) else None, status=_s(acct.get("status")),
                       seq=_int(acct.get("seq")), raw=keep)
            return ""
        # A kind this version does not know: kept, so nothing the service sends is lost.
        events.add(event_type=kind, kind=kind, did=did, time_us=t, time=t, received_at=received, raw=keep)
        return ""


SOURCE_CLASS = JetstreamSource


# -- options --------------------------------------------------------------------------------

def parse_cursor(value: Any) -> int | None:
    """A cursor as unix microseconds: an int (µs), a digit string, a datetime or an ISO 8601 time.

    Examples
    --------
    >>> parse_cursor("2024-09-09T19:46:02Z"), parse_cursor(1725911162000000), parse_cursor(None)
    (1725911162000000, 1725911162000000, None)
    >>> parse_cursor("yesterday")
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: cursor 'yesterday' is neither unix microseconds (e.g. 1725911162329308) nor an ISO 8601 time (e.g. 2024-09-09T19:46:02Z)
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1_000_000)
    if isinstance(value, int) and not isinstance(value, bool):
        us = value
    elif isinstance(value, str) and value.strip().isdigit():
        us = int(value.strip())
    elif isinstance(value, str):
        parsed = _datetime_us(value.strip())
        if not isinstance(parsed, int) or parsed is False:
            raise ConfigError(
                f"cursor {value!r} is neither unix microseconds (e.g. 1725911162329308) nor an ISO 8601 "
                "time (e.g. 2024-09-09T19:46:02Z)"
            )
        us = parsed
    else:
        raise ConfigError(f"cursor must be unix microseconds or an ISO 8601 time, got {type(value).__name__}")
    if not 10**15 <= us < _MAX_US:  # 2001..2100 in microseconds: seconds or ms are a mistake
        raise ConfigError(
            f"cursor {us} is not a plausible time in unix microseconds (2001-2100); "
            "Jetstream cursors are microseconds, e.g. 1725911162329308"
        )
    return us


def _as_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{name} must be strings, got {item!r}")
        out.extend(part.strip() for part in item.split(",") if part.strip())
    return out


def _url(base_url: str | None, host: str | None) -> str:
    from .. import _http

    if base_url and host:
        raise ConfigError("give host= or base_url=, not both (host=NAME means wss://NAME/subscribe)")
    if host:
        if not re.match(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$", host):
            raise ConfigError(f"host must be a host name such as {PUBLIC_HOSTS[0]!r}, got {host!r}")
        return f"wss://{host}/subscribe"
    url = base_url or DEFAULT_URL
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"base_url {url!r} is not a WebSocket URL: use e.g. {DEFAULT_URL!r}")
    if parts.query:
        raise ConfigError("base_url must not hold a query: pass collections=, dids=, cursor= instead")
    path = parts.path if parts.path not in ("", "/") else "/subscribe"
    url = urlunsplit((scheme, parts.netloc, path, "", ""))
    _http.check_base_url(urlunsplit(({"ws": "http", "wss": "https"}[scheme], parts.netloc, "", "", "")))
    return url


def open_source(
    *,
    base_url: str | None = None,
    host: str | None = None,
    collections: Any = None,
    dids: Any = None,
    track: Any = None,
    keywords: Any = None,
    cursor: Any = None,
    max_message_size: int | None = None,
    rewind_seconds: float = REWIND_SECONDS,
    clamp_seconds: float | None = CLAMP_SECONDS,
) -> tuple[JetstreamEndpoint, JetstreamSource]:
    """The Jetstream endpoint and its decoder.

    Parameters
    ----------
    base_url : str, optional
        ``wss://HOST/subscribe`` (default :data:`DEFAULT_URL`); ``ws://`` for a loopback
        test server (``/subscribe`` is added to a URL without a path).
    host : str, optional
        One of :data:`PUBLIC_HOSTS` (or another Jetstream host): ``wss://HOST/subscribe``.
    collections : list of str, optional
        ``wantedCollections``: NSIDs (``app.bsky.feed.post``) or prefixes
        (``app.bsky.graph.*``), at most 100. Default: every collection.
    dids : list of str, optional
        ``wantedDids``: only these repositories, at most 10,000.
    track : list of str, optional
        Keep only posts whose text contains one of these phrases (whole words, any case;
        commas separate phrases). Client-side: Jetstream has no keyword filter.
    keywords : list of str, optional
        Another name for ``track`` (``streamkit collect --keyword``).
    cursor : int, str or datetime, optional
        Start from this time (unix microseconds or ISO 8601) instead of the live tail;
        a resumed capture starts from its stored position instead.
    max_message_size : int, optional
        ``maxMessageSizeBytes``: the server leaves out larger events.
    rewind_seconds : float, default 5
        How far before the newest event a reconnect or restart asks to replay from.
    clamp_seconds : float or None, default 60
        Record a gap when a replay starts later than this after the cursor (None: never).

    Raises
    ------
    ConfigError
        For an invalid NSID, DID, cursor, URL or too many filters.

    Examples
    --------
    >>> ep, _ = open_source(base_url="ws://127.0.0.1:6008", collections="app.bsky.feed.*,app.bsky.graph.follow")
    >>> ep.url, ep.request().params["wantedCollections"]
    ('ws://127.0.0.1:6008/subscribe', ['app.bsky.feed.*', 'app.bsky.graph.follow'])
    >>> open_source(collections=["posts"])
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: collection 'posts' is not an NSID such as 'app.bsky.feed.post' or a prefix such as 'app.bsky.graph.*'
    """
    url = _url(base_url, host)
    wanted = _as_list(collections, "collections")
    for nsid in wanted:
        if not (_NSID.match(nsid) or _NSID_PREFIX.match(nsid)):
            raise ConfigError(
                f"collection {nsid!r} is not an NSID such as 'app.bsky.feed.post' or a prefix such as 'app.bsky.graph.*'"
            )
    if len(wanted) > MAX_COLLECTIONS:
        raise ConfigError(f"{len(wanted)} collections; Jetstream takes at most {MAX_COLLECTIONS}")
    repos = _as_list(dids, "dids")
    for did in repos:
        if not _DID.match(did):
            raise ConfigError(f"{did!r} is not a DID such as 'did:plc:z72i7hdynmk6r22z27h6tvur'")
    if len(repos) > MAX_DIDS:
        raise ConfigError(f"{len(repos)} dids; Jetstream takes at most {MAX_DIDS}")
    if track is not None and keywords is not None:
        raise ConfigError("give track= or keywords= (the same thing), not both")
    phrases = _check_track(track if track is not None else keywords)
    if max_message_size is not None and (not isinstance(max_message_size, int) or max_message_size < 1):
        raise ConfigError(f"max_message_size must be a positive number of bytes, got {max_message_size!r}")
    if not isinstance(rewind_seconds, (int, float)) or not 0 <= rewind_seconds <= 3600:
        raise ConfigError(f"rewind_seconds must be 0..3600, got {rewind_seconds!r}")
    if clamp_seconds is not None and (not isinstance(clamp_seconds, (int, float)) or clamp_seconds <= 0):
        raise ConfigError(f"clamp_seconds must be a positive number of seconds or None, got {clamp_seconds!r}")
    endpoint = JetstreamEndpoint(url, collections=wanted, dids=repos, track=phrases, cursor=parse_cursor(cursor),
                                 max_message_size=max_message_size, rewind_seconds=float(rewind_seconds),
                                 clamp_seconds=clamp_seconds)
    return endpoint, JetstreamSource(host=endpoint.host)


CLI_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--collection",), dict(dest="collections", action="append", metavar="NSID",
                             help="wantedCollections: an NSID such as app.bsky.feed.post or a prefix such as "
                                  "app.bsky.graph.* (repeat or separate with commas; default: all).")),
    (("--did",), dict(dest="dids", action="append", metavar="DID",
                      help="wantedDids: only these accounts' repositories (repeat or separate with commas).")),
    (("--keyword",), dict(dest="keywords", action="append", metavar="WORDS",
                          help="Keep only posts whose text contains one of these words or phrases (any case, "
                               "whole words; checked by streamkit, not the server).")),
    (("--cursor",), dict(dest="cursor", metavar="TIME",
                         help="Replay from this time: unix microseconds or ISO 8601 (2024-09-09T19:46:02Z). "
                              "A resumed dataset continues from its own position instead.")),
    (("--host",), dict(dest="host", metavar="HOST",
                       help=f"Jetstream host (default {PUBLIC_HOSTS[1]}; also {PUBLIC_HOSTS[0]}, "
                            f"{PUBLIC_HOSTS[2]}, {PUBLIC_HOSTS[3]}).")),
    (("--max-message-size",), dict(dest="max_message_size", type=int, metavar="BYTES",
                                   help="maxMessageSizeBytes: the server leaves out larger events.")),
]
"""``streamkit collect --source jetstream`` options (no credentials: Jetstream is open)."""
