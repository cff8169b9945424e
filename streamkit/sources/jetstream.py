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
already has: exactly those it received in this session (it keeps their ``(time_us,
identity)`` for the rewind window), so an event the server emitted out of time order is
not lost. A restarted capture resumes from the position stored with the last commit and
drops what is older than it, or at its very microsecond with an identity it lists.
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

import logging
import re
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import msgspec

from .._exceptions import ConfigError
from ._jetstream_decode import (
    _DECODE_ERRORS,
    _MAX_US,
    EVENT_SCHEMA,
    GAP_KIND,
    POST_COLLECTION,
    POST_SCHEMA,
    JetstreamSource,
    _datetime_us,
    _identity,
    _iso,
    _Newest,
    _time_us,
)
from .base import Endpoint, Request

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

MAX_COLLECTIONS = 100  # Jetstream's limits on one subscription
MAX_DIDS = 10_000
REWIND_SECONDS = 5.0
CLAMP_SECONDS = 60.0
# The firehose never pauses for long; a filtered stream may (then reconnecting is cheap:
# the cursor resumes it exactly).
STALL_TIMEOUT = 60.0

_NSID = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}(?:\.[a-zA-Z0-9][a-zA-Z0-9-]{0,62}){2,}$")
_NSID_PREFIX = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}(?:\.[a-zA-Z0-9][a-zA-Z0-9-]{0,62})+\.\*$")
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]{1,2000}$")


# -- messages the reader thread looks at ----------------------------------------------

class _Text(msgspec.Struct):
    text: Any = None


class _TrackCommit(msgspec.Struct):
    operation: Any = None
    collection: Any = None
    record: _Text | None = None


class _TrackEvent(msgspec.Struct):
    kind: Any = None
    commit: _TrackCommit | None = None


_decode_track = msgspec.json.Decoder(_TrackEvent).decode
_encode = msgspec.json.Encoder().encode


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
    out: list[str] = []
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

    def __init__(self, endpoint: JetstreamEndpoint, inner: Any, replay: _Replay | None,
                 cursor: int | None) -> None:
        self._ep = endpoint
        self._inner = inner
        self.stats = inner.stats
        self.outgoing = inner.outgoing
        self._replay = replay
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
        if self._replay is not None:
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
        replay = self._replay
        assert replay is not None
        kept: list[bytes] = []
        for i, m in enumerate(messages):
            ident = _identity(m)
            if ident is None:
                kept.append(m)  # not ours to judge: the decoder counts it
                continue
            if ident[0] > replay.until:  # past the overlap: the rest is new
                self._replay = None
                kept.extend(messages[i:])
                break
            if replay.seen(ident):
                self._ep.skipped_replayed += 1
            else:
                kept.append(m)
        return kept


class _Replay:
    """What a new connection's replay may resend: events up to ``until``, known either
    exactly (``window``: this session's recent ``(time_us, identity)`` pairs) or, for what a
    previous run received, by the stored position (older than it, or at its time with a
    known identity)."""

    __slots__ = ("floor", "until", "window")

    def __init__(self, until: int, window: frozenset[tuple[int, str]], floor: _Newest | None) -> None:
        self.until = until
        self.window = window
        self.floor = floor

    def seen(self, ident: tuple[int, str]) -> bool:
        if ident in self.window:
            return True
        floor = self.floor
        if floor is None or floor.time_us is None:
            return False
        t, digest = ident
        return t < floor.time_us or (t == floor.time_us and digest in floor.marks)


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
        self._newest: int | None = None  # newest time_us received (or resumed from)
        # This session's events within the rewind window (what a reconnect replays), and
        # the position a restarted capture resumed from (same host only).
        self._recent: deque[tuple[int, str]] = deque()
        self._recent_set: set[tuple[int, str]] = set()
        self._resumed: _Newest | None = None
        self.skipped_replayed = 0
        self.skipped_track = 0
        self.gaps: list[tuple[int, int, float]] = []
        self._untaken: list[tuple[int, int, float]] = []  # gaps not yet handed to take_gaps

    @property
    def newest_time_us(self) -> int | None:
        return self._newest

    def next_cursor(self) -> int | None:
        """The ``cursor`` of the next connection (None: the live tail)."""
        with self._lock:
            newest = self._newest
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
            replay = None
            if self._newest is not None:
                replay = _Replay(self._newest, frozenset(self._recent_set), self._resumed)
        return _JetstreamFramer(self, WebSocketFramer(max_message_bytes), replay, self.next_cursor())

    def observe(self, messages: Sequence[bytes]) -> None:
        keep = self.rewind_us + 2_000_000  # the window a reconnect replays, and some slack
        with self._lock:
            recent, seen = self._recent, self._recent_set
            newest = self._newest
            for m in messages:
                ident = _identity(m)
                if ident is None:
                    continue
                recent.append(ident)
                seen.add(ident)
                if newest is None or ident[0] > newest:
                    newest = ident[0]
            self._newest = newest
            if newest is not None:
                while recent and recent[0][0] < newest - keep:
                    seen.discard(recent.popleft())

    def resume_from(self, position: Any) -> None:
        """Continue from a stored position ``{"host", "time_us", "marks"}`` (see
        :meth:`JetstreamSource.position`)."""
        t = position.get("time_us") if isinstance(position, dict) else None
        if type(t) is not int or t <= 0:
            log.warning("ignoring a resume position this source did not write: %r", position)
            return
        marks = [m for m in position.get("marks") or [] if isinstance(m, str)]
        with self._lock:
            if self._newest is None or t > self._newest:
                self._newest = t
            if position.get("host") == self.host:
                self._resumed = _Newest(t, marks)
        if position.get("host") != self.host:
            log.info("resuming a capture made from %s on %s: cursor times are close but not equal "
                     "across hosts, so a few events may be stored twice in the events table",
                     position.get("host"), self.host)

    def take_gaps(self) -> list[tuple[float | None, float, str]]:
        """Spans a clamped replay left out since the last call, for the manifest."""
        with self._lock:
            new, self._untaken = self._untaken, []
        return [(cursor / 1e6, first / 1e6, "replay started after the cursor (older than the server's buffer)")
                for cursor, first, _late in new]

    def _gap_marker(self, cursor: int, first: int, late: float) -> bytes:
        self.gaps.append((cursor, first, late))
        with self._lock:
            self._untaken.append((cursor, first, late))
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
    out: list[str] = []
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
