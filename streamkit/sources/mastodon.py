"""Mastodon's streaming API (server-sent events or WebSocket), with REST gap filling.

A Mastodon instance streams its timelines live: ``hashtag`` (and ``hashtag:local``),
``public``, ``public:local``, ``public:remote``, ``user`` (the token owner's home feed and
notifications) and ``list``. Two transports carry the same events:

* server-sent events (the default): ``GET /api/v1/streaming/<stream>`` (for instance
  ``/api/v1/streaming/hashtag?tag=python``); ``:thump`` comment lines every 15 s keep the
  connection alive;
* WebSocket: ``GET /api/v1/streaming`` upgraded, then a ``{"type": "subscribe", ...}``
  message; each event is ``{"stream": [...], "event": "update", "payload": "<JSON>"}``
  and the server pings every 30 s.

Events: ``update`` (a new status), ``status.update`` (an edited status), ``delete`` (the
payload is the id), ``notification``, ``filters_changed``, ``announcement``... The streaming
API cannot resume. After every reconnect, and after a restart from a stored position, the
endpoint fetches what the stream missed from the REST timeline with ``min_id`` (the newest
status id received), page by page (``limit=40``, bounded), and hands those statuses on
shaped exactly like streamed ones; the dataset drops the overlap by key. What the fill
cannot cover (an error, too many pages, no status seen yet) is stored as a ``gap`` row in
the events table (see :attr:`MastodonEndpoint.take_gaps` for the manifest).

The dataset
-----------
``statuses/`` holds one row per *version* of a status: key ``(instance, id, edited_at)``.
An edit (``status.update``) adds a row with the new ``edited_at`` instead of overwriting or
being dropped as a duplicate, so the edit history is kept; :func:`streamkit.read` (and
:func:`read_statuses`, the same under its Mastodon name) gives one row per status, the newest
version, without deleted statuses (``all_versions=True``, ``include_deleted=True`` keep them). Status ids are strings, as
Mastodon documents them ("cast from an integer but not guaranteed to be a number"), and
only unique per instance, hence ``instance`` in the key. For a boost (``reblog_of_id``
set), ``content``, ``text``, ``language``, ``hashtags``, ``mentions``, ``media_types`` and
``card_url`` describe the boosted status (the boost itself has none). ``events/`` holds
deletes, notifications, filter and announcement events and recorded gaps.

The decoder, the schemas and the readers live in :mod:`._mastodon_dataset` (re-exported
here). The access token (``token=`` or ``STREAMKIT_MASTODON_TOKEN``) goes only into the
``Authorization`` header: never into a URL, a log line, a repr or an error message.

Examples
--------
>>> ep, src = open_source(instance="https://mastodon.social", stream="hashtag", tag="#Python",
...                       token="secret-token")
>>> ep.request()
Request(GET https://mastodon.social/api/v1/streaming/hashtag params=['tag'])
>>> ep.request().params, "secret-token" in repr(ep)
({'tag': 'python'}, False)
>>> src.items, src.key_columns
('statuses', ('instance', 'id', 'edited_at'))
>>> ep, _ = open_source(instance="https://mastodon.social", stream="public:local",
...                     transport="websocket", token="t")
>>> ep.request().url, ep.request().send
('wss://mastodon.social/api/v1/streaming', ['{"type":"subscribe","stream":"public:local"}'])
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import msgspec

from .. import _http
from .._exceptions import ConfigError, HTTPStatusError
from ._mastodon_dataset import (
    EVENT_SCHEMA,
    GAP_EVENT,
    STATUS_SCHEMA,
    MastodonSource,
    _d,
    _decode_any,
    _encode,
    _id_key,
    _iso,
    _newer,
    _s,
    _sse_message,
    _status_id_of,
    _ts_us,
    _ws_message,
    latest_versions,
    read_statuses,
)
from .base import Endpoint, Request

__all__ = [
    "CLI_OPTIONS",
    "EVENT_SCHEMA",
    "SOURCE_CLASS",
    "STATUS_SCHEMA",
    "STREAMS",
    "TOKEN_ENV",
    "MastodonEndpoint",
    "MastodonSource",
    "discover_streaming_url",
    "latest_versions",
    "open_source",
    "read_statuses",
]

log = logging.getLogger("streamkit.sources.mastodon")

TOKEN_ENV = "STREAMKIT_MASTODON_TOKEN"
"""The environment variable holding the access token when ``token=`` is not given."""

HEARTBEAT_SECONDS = 15.0
"""Mastodon's streaming server writes ``:thump`` every 15 s (SSE) and pings every 30 s (WS)."""


@dataclass(frozen=True)
class _StreamSpec:
    sse_path: str  # under /api/v1/streaming/
    rest_path: str  # under /api/v1/timelines/ ("{tag}", "{list}" filled in)
    rest_params: tuple[tuple[str, str], ...] = ()
    needs: str | None = None  # "tag" or "list"
    needs_token: bool = False


#: The streams this source can capture: name -> how to reach it and fill its gaps.
STREAMS: dict[str, _StreamSpec] = {
    "public": _StreamSpec("public", "public"),
    "public:local": _StreamSpec("public/local", "public", (("local", "true"),)),
    "public:remote": _StreamSpec("public/remote", "public", (("remote", "true"),)),
    "hashtag": _StreamSpec("hashtag", "tag/{tag}", needs="tag"),
    "hashtag:local": _StreamSpec("hashtag/local", "tag/{tag}", (("local", "true"),), needs="tag"),
    "user": _StreamSpec("user", "home", needs_token=True),
    "list": _StreamSpec("list", "list/{list}", needs="list", needs_token=True),
}

# -- the endpoint (reader side) ------------------------------------------------------------

class _Token:
    """Holds the access token; nothing prints it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._value}"} if self._value else {}

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "<token set>" if self._value else "<no token>"


class _SSEHeartbeats:
    """:class:`streamkit._sse.SSEFramer` plus a count of Mastodon's ``:thump`` heartbeats.

    Mastodon writes ``:thump\\n`` with no blank line after it, so the standard framer sees
    one growing comment-only block and counts no keep-alive; the heartbeats still reset
    the stall timer (they are bytes), and here they count as keep-alives too.
    """

    def __init__(self, max_message_bytes: int) -> None:
        from .._sse import SSEFramer

        self._framer = SSEFramer(max_message_bytes)
        self.stats = self._framer.stats

    def feed(self, data: bytes) -> list[bytes]:
        beats = data.count(b":thump\n")  # cannot occur inside a data line: JSON escapes line breaks
        if beats:
            self.stats.keepalives += beats
        return self._framer.feed(data)

    def reset(self) -> None:
        self._framer.reset()

    @property
    def pending_bytes(self) -> int:
        return self._framer.pending_bytes


class MastodonEndpoint(Endpoint):
    """One Mastodon stream on one instance (see :func:`open_source` for the options).

    The reader thread calls :meth:`observe` with what arrives (the newest status id is
    remembered) and :meth:`gap_fill` after every connection: from the second connection
    on (or after :meth:`resume_from`), it pages through the REST timeline with
    ``min_id`` = the newest id received and returns the statuses the stream missed.

    Examples
    --------
    >>> ep = MastodonEndpoint("http://127.0.0.1:3000", "public:remote")
    >>> ep.request().url, ep.rest_url()
    ('http://127.0.0.1:3000/api/v1/streaming/public/remote', 'http://127.0.0.1:3000/api/v1/timelines/public')
    >>> ep.resume_from({"instance": "127.0.0.1:3000", "stream": "public:remote", "filter": None,
    ...                 "newest_id": "42"})
    >>> ep.newest_id
    '42'
    """

    name: ClassVar[str] = "mastodon"

    def __init__(
        self,
        instance: str,
        stream: str,
        *,
        tag: str | None = None,
        list_id: str | None = None,
        token: str | None = None,
        transport: str = "sse",
        streaming_url: str | None = None,
        gap_fill: bool = True,
        gap_fill_pages: int = 10,
        gap_fill_timeout: float = 10.0,
        stall_timeout: float | None = None,
    ) -> None:
        self.instance_url = instance.rstrip("/")
        self.instance = urlsplit(self.instance_url).netloc
        self.stream = stream
        self.spec = STREAMS[stream]
        self.tag = tag
        self.list_id = list_id
        self._token = _Token(token)
        # Per capture, not per class (the base declares them ClassVars): SSE or WebSocket.
        self.transport = "websocket" if transport == "websocket" else "http"  # type: ignore[misc]
        self.streaming_url = (streaming_url or self.instance_url).rstrip("/")
        self.fill_enabled = bool(gap_fill)
        self.gap_fill_pages = int(gap_fill_pages)
        self.gap_fill_timeout = float(gap_fill_timeout)
        self.stall_timeout = stall_timeout or (4 * HEARTBEAT_SECONDS if self.transport == "http" else 90.0)  # type: ignore[misc]
        self._lock = threading.Lock()
        self.newest_id: str | None = None  # newest status id received (or resumed from)
        self._last_time: float | None = None  # when the newest message arrived
        self._connections = 0
        self._first_connected: float | None = None
        self._resumed = False
        self._gaps: list[tuple[float | None, float, str]] = []
        self.fills: list[dict[str, Any]] = []  # what each fill did (for tests and the curious)

    # -- what the reader thread sends --------------------------------------------------
    def _stream_params(self) -> dict[str, str]:
        if self.spec.needs == "tag":
            return {"tag": str(self.tag)}
        if self.spec.needs == "list":
            return {"list": str(self.list_id)}
        return {}

    def _subscribe(self) -> dict[str, str]:
        return {"type": "subscribe", "stream": self.stream, **self._stream_params()}

    def request(self) -> Request:
        """SSE ``GET /api/v1/streaming/<stream>`` or the WebSocket ``/api/v1/streaming``."""
        headers = self._token.header()
        if self.transport == "websocket":
            parts = urlsplit(self.streaming_url)
            scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
            url = urlunsplit((scheme, parts.netloc, parts.path, "", "")) + "/api/v1/streaming"
            return Request("GET", url, headers=headers,
                           send=[_encode(self._subscribe()).decode("utf-8")])
        headers = {**headers, "Accept": "text/event-stream"}
        return Request("GET", f"{self.streaming_url}/api/v1/streaming/{self.spec.sse_path}",
                       params=self._stream_params(), headers=headers)

    def framer(self, max_message_bytes: int) -> Any:
        if self.transport == "websocket":
            from .._websocket import WebSocketFramer

            return WebSocketFramer(max_message_bytes)
        return _SSEHeartbeats(max_message_bytes)

    def observe(self, messages: Sequence[bytes]) -> None:
        newest = None
        for m in messages:
            sid = _status_id_of(m)
            if sid is not None:
                newest = _newer(newest, sid)
        with self._lock:
            self._last_time = time.time()
            if newest is not None:
                self.newest_id = _newer(self.newest_id, newest)

    def resume_from(self, position: Any) -> None:
        """Continue after the newest status id a previous capture committed."""
        if not isinstance(position, dict) or not isinstance(position.get("newest_id"), str):
            log.warning("ignoring a resume position this source did not write: %r", position)
            return
        here = (self.instance, self.stream, self.tag or self.list_id)
        there = (position.get("instance"), position.get("stream", self.stream), position.get("filter"))
        if here != there:
            # Another instance, stream or tag: a new filter starts fresh (nothing was "missed").
            log.info("the dataset's last capture was %s; this one is %s: starting without a gap fill",
                     there, here)
            return
        with self._lock:
            self.newest_id = _newer(self.newest_id, position["newest_id"])
            self._resumed = True

    def http_error_help(self, status_code: int) -> str | None:
        """What an HTTP error from this instance means and what to do (None: the generic text).

        Examples
        --------
        >>> MastodonEndpoint("https://mastodon.social", "public").http_error_help(401)[:43]
        'the instance wants a user access token for '
        """
        if status_code in (401, 403):
            if not self._token:
                return (f"the instance wants a user access token for the {self.stream} stream: set {TOKEN_ENV} "
                        "(or token=) to a token with the read scope from this instance (Preferences > "
                        "Development > New application)")
            return (f"the instance refused the access token (invalid, revoked, or without the read scope): "
                    f"check {TOKEN_ENV} or token= (the token is not shown here)")
        if status_code in (301, 302, 307, 308):
            return ("the instance redirects its streaming API to another host: pass "
                    "streaming_url=discover_streaming_url(instance) (--streaming-url)")
        if status_code in (400, 404):
            return (f"no such stream here: check the instance URL, the stream {self.stream!r} and its "
                    "tag/list id, and whether streaming is served by another host (streaming_url=)")
        if status_code == 429:
            return "rate limited by the instance (see its X-RateLimit-Reset); backing off"
        return None

    def describe(self) -> dict[str, Any]:
        """The filter as the manifest records it (never the token)."""
        out: dict[str, Any] = {"endpoint": "mastodon", "instance": self.instance_url, "stream": self.stream,
                               "transport": "websocket" if self.transport == "websocket" else "sse"}
        if self.tag:
            out["tag"] = self.tag
        if self.list_id:
            out["list_id"] = self.list_id
        return out

    def dataset_name(self) -> str:
        extra = f"-{self.tag}" if self.tag else f"-list{self.list_id}" if self.list_id else ""
        return f"mastodon-{self.instance.split(':')[0]}-{self.stream.replace(':', '-')}{extra}"

    def __repr__(self) -> str:
        return (f"MastodonEndpoint({self.instance_url!r}, {self.stream!r}, transport="
                f"{'websocket' if self.transport == 'websocket' else 'sse'!r}, token={self._token!r})")

    # -- gap filling ----------------------------------------------------------------------
    def rest_url(self) -> str:
        """The REST timeline that holds what this stream sends."""
        path = self.spec.rest_path.format(tag=self.tag, list=self.list_id)
        return f"{self.instance_url}/api/v1/timelines/{path}"

    def take_gaps(self) -> list[tuple[float | None, float, str]]:
        """Spans the gap fill could not cover since the last call: ``(start, end, reason)``
        in epoch seconds (start None when unknown). They are also in the events table."""
        with self._lock:
            gaps, self._gaps = self._gaps, []
        return gaps

    def gap_fill(self, session: Any = None) -> list[bytes]:
        """After a reconnect or a resume: the statuses the stream missed, from the REST
        timeline (``min_id`` paging), shaped like streamed messages, oldest first.

        ``session`` (the stream's) is not used: a request on it would replace the stream's
        socket in the holder that ``Stream.disconnect`` shuts down. A failed or incomplete
        fill adds a ``streamkit.gap`` marker message (an events-table row).
        """
        now = time.time()
        with self._lock:
            self._connections += 1
            first = self._connections == 1
            if first:
                self._first_connected = now
            since = self.newest_id
            resumed, self._resumed = self._resumed, False
            last_time = self._last_time
        if first and not resumed:
            return []
        start = last_time
        if not self.fill_enabled:
            return [self._gap_marker(start, now, "gap fill disabled")]
        if since is None:
            # Nothing received yet: Mastodon ids are millisecond timestamps shifted by 16 bits,
            # so the first connection's time (a second of slack) is a valid min_id.
            assert self._first_connected is not None
            since = str(int((self._first_connected - 1.0) * 1000) << 16)
        messages, report = self._fetch_since(since)
        report["connection"] = self._connections
        self.fills.append(report)
        del self.fills[:-100]  # the latest fills; a capture of weeks reconnects many times
        if report["complete"]:
            log.info("filled the gap after reconnecting: %d statuses from the REST timeline", len(messages))
        else:
            reason = f"gap fill incomplete: {report['why']}"
            log.warning("%s; the span is recorded as a gap", reason)
            messages.append(self._gap_marker(report.get("covered_until") or start, now, reason))
        return messages

    def _gap_marker(self, start: float | None, end: float, reason: str) -> bytes:
        if self.fill_enabled:  # without filling, collect() records every reconnect itself
            with self._lock:
                self._gaps.append((start, end, reason))
        detail = _encode({"start": _iso(start), "end": _iso(end), "reason": reason}).decode("utf-8")
        if self.transport == "websocket":
            return _ws_message(GAP_EVENT, detail, [self.stream])
        return _sse_message(GAP_EVENT, detail)

    def _fetch_since(self, min_id: str) -> tuple[list[bytes], dict[str, Any]]:
        import requests

        url = self.rest_url()
        params = dict(self.spec.rest_params)
        params["limit"] = "40"
        headers = {**self._token.header(), "Accept": "application/json"}
        out: list[bytes] = []
        report: dict[str, Any] = {"time": time.time(), "min_id": min_id, "pages": 0, "statuses": 0, "complete": False, "why": None}
        newest_created: float | None = None
        deadline = time.monotonic() + 3 * self.gap_fill_timeout
        stream_list = [self.stream] + ([str(self.tag)] if self.tag else [str(self.list_id)] if self.list_id else [])
        with requests.Session() as session:
            session.headers["User-Agent"] = "streamkit"
            cursor = min_id
            for _ in range(self.gap_fill_pages):
                if time.monotonic() > deadline:
                    report["why"] = "the REST timeline was too slow"
                    break
                try:
                    resp = session.get(url, params={**params, "min_id": cursor}, headers=headers,
                                       timeout=(self.gap_fill_timeout, self.gap_fill_timeout),
                                       allow_redirects=False)
                except _http.NETWORK_ERRORS as exc:
                    report["why"] = f"{type(exc).__name__} from {url}"
                    break
                with resp:
                    if resp.status_code != 200:
                        report["why"] = _rest_error(resp, url)
                        report["status"] = resp.status_code
                        break
                    try:
                        page = _decode_any(resp.content)
                    except _PAGE_ERRORS as exc:
                        report["why"] = f"unreadable timeline page from {url}: {exc}"
                        break
                    link = resp.headers.get("Link", "")
                if not isinstance(page, list):
                    report["why"] = f"{url} did not answer a list of statuses"
                    break
                report["pages"] += 1
                statuses = [s for s in page if isinstance(s, dict) and isinstance(_s(s.get("id")), str)]
                statuses.sort(key=lambda s: _id_key(_s(s["id"]) or ""))
                for status in statuses:
                    payload = _encode(status)
                    if self.transport == "websocket":
                        out.append(_ws_message("update", payload, stream_list))
                    else:
                        out.append(_sse_message("update", payload))
                    created = _ts_us(status.get("created_at"))
                    if created is not None:
                        newest_created = max(newest_created or 0, created / 1e6)
                report["statuses"] += len(statuses)
                if statuses:
                    newest = _s(statuses[-1]["id"]) or cursor
                    with self._lock:
                        self.newest_id = _newer(self.newest_id, newest)
                    cursor = _prev_min_id(link) or newest
                if len(page) < 40:
                    report["complete"] = True
                    break
            else:
                report["why"] = f"more than {self.gap_fill_pages} pages of {40} statuses were missed"
        report["covered_until"] = newest_created
        report["done"] = time.time()
        return out, report


_PAGE_ERRORS: tuple[type[BaseException], ...] = (msgspec.DecodeError, *_http.NETWORK_ERRORS)


def _prev_min_id(link: str) -> str | None:
    """The ``min_id`` of a Link header's ``rel="prev"`` URL (Mastodon's newer page)."""
    for part in link.split(","):
        if 'rel="prev"' in part:
            m = re.search(r"[?&]min_id=([^&>]+)", part)
            if m:
                return m.group(1)
    return None


def _rest_error(resp: Any, url: str) -> str:
    try:
        said = _d(_decode_any(resp.content)).get("error")
    except (msgspec.DecodeError, ValueError):
        said = None
    said = f" ({str(said)[:200]})" if said else ""
    if resp.status_code == 401:
        return f"HTTP 401 from {url}{said}: the instance wants a valid access token ({TOKEN_ENV})"
    if resp.status_code == 429:
        reset = resp.headers.get("X-RateLimit-Reset", "?")
        return f"HTTP 429 from {url}{said}: rate limited until {reset}"
    return f"HTTP {resp.status_code} from {url}{said}"


SOURCE_CLASS = MastodonSource


def discover_streaming_url(instance: str, *, token: str | None = None, timeout: float = 10.0) -> str:
    """The instance's streaming server (``configuration.urls.streaming`` of ``/api/v2/instance``).

    Large instances serve streaming from another host (mastodon.social:
    ``wss://streaming.mastodon.social``); pass the result as ``streaming_url=``.

    Raises
    ------
    HTTPStatusError
        When the instance does not answer the request.

    Examples
    --------
    >>> from streamkit.testing import MastodonServer
    >>> with MastodonServer() as server:
    ...     found = discover_streaming_url(server.url)
    >>> found == server.url
    True
    """
    import requests


    base = _check_instance(instance)
    headers = _Token(token).header()
    try:
        resp = requests.get(f"{base}/api/v2/instance", headers=headers, timeout=timeout)
    except _http.NETWORK_ERRORS as exc:
        raise HTTPStatusError(0, f"could not reach {base}/api/v2/instance ({type(exc).__name__}): "
                                 "check the instance URL and the network") from exc
    with resp:
        if resp.status_code != 200:
            raise HTTPStatusError(resp.status_code, _rest_error(resp, f"{base}/api/v2/instance"))
        urls = _d(_d(_d(resp.json()).get("configuration")).get("urls"))
    streaming = _s(urls.get("streaming"))
    if not streaming:
        return base
    parts = urlsplit(streaming)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, "", "")).rstrip("/")


# -- options -------------------------------------------------------------------------------

def _check_instance(url: Any, what: str = "instance") -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{what} must be a Mastodon instance URL such as 'https://mastodon.social', got {url!r}")
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    return _http.check_base_url(url)


def _clean_token(token: Any) -> str | None:
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
        if token is None:
            return None
    if not isinstance(token, str) or not token.strip():
        raise ConfigError(f"token must be a non-empty string (a user access token; or set {TOKEN_ENV})")
    token = token.strip()
    if any(c.isspace() or ord(c) < 33 or ord(c) > 126 for c in token):
        raise ConfigError("the Mastodon access token contains spaces or control characters: "
                          f"check the value of token= or {TOKEN_ENV} (it is not shown here)")
    return token


def open_source(
    *,
    base_url: str | None = None,
    instance: str | None = None,
    stream: str = "public",
    tag: str | None = None,
    list_id: str | int | None = None,
    token: str | None = None,
    transport: str = "sse",
    streaming_url: str | None = None,
    gap_fill: bool = True,
    gap_fill_pages: int = 10,
) -> tuple[MastodonEndpoint, MastodonSource]:
    """A Mastodon stream's endpoint and decoder.

    Parameters
    ----------
    base_url, instance : str
        The instance (``https://mastodon.social``); ``base_url`` is the name every source
        shares (a local test server), ``instance`` the Mastodon one. Give either.
    stream : str, default "public"
        One of :data:`STREAMS`: ``hashtag``, ``hashtag:local``, ``public``,
        ``public:local``, ``public:remote``, ``user``, ``list``.
    tag : str, optional
        The hashtag of a ``hashtag`` stream (without ``#``; a leading ``#`` is dropped).
    list_id : str, optional
        The list of a ``list`` stream.
    token : str, optional
        A user access token (``read`` scope); default ``$STREAMKIT_MASTODON_TOKEN``. Some
        instances stream public timelines without one; ``user`` and ``list`` need one.
    transport : {"sse", "websocket"}
    streaming_url : str, optional
        The streaming server when it is not the instance (see
        :func:`discover_streaming_url`).
    gap_fill : bool, default True
        Fill what reconnects and restarts missed from the REST timeline.
    gap_fill_pages : int, default 10
        At most this many pages of 40 statuses per fill; the rest is recorded as a gap.

    Raises
    ------
    ConfigError
        For a missing instance, an unknown stream, a missing tag or list id, or a
        ``user``/``list`` stream without a token.

    Examples
    --------
    >>> open_source(instance="https://mastodon.social", stream="hashtag")
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: the hashtag stream needs tag= (the hashtag to follow, e.g. tag='python'; --tag on the command line)
    """
    if base_url is not None and instance is not None and base_url.rstrip("/") != str(instance).rstrip("/"):
        raise ConfigError(f"base_url {base_url!r} and instance {instance!r} differ: give one of them")
    given = base_url if base_url is not None else instance
    if given is None:
        raise ConfigError("Mastodon needs an instance: instance='https://mastodon.social' "
                          "(--instance on the command line), or base_url= for a local test server")
    base = _check_instance(given, "base_url" if base_url is not None else "instance")
    if stream not in STREAMS:
        raise ConfigError(f"unknown Mastodon stream {stream!r}; choose one of: {', '.join(STREAMS)}")
    spec = STREAMS[stream]
    if spec.needs == "tag":
        if not isinstance(tag, str) or not tag.strip().lstrip("#"):
            raise ConfigError(f"the {stream} stream needs tag= (the hashtag to follow, e.g. tag='python'; "
                              "--tag on the command line)")
        tag = tag.strip().lstrip("#").lower()
        if not all(c.isalnum() or c == "_" for c in tag):
            raise ConfigError(f"tag {tag!r} is not a hashtag: letters, digits and _ only, without '#'")
    elif tag is not None:
        raise ConfigError(f"tag= applies to the hashtag streams, not {stream!r}")
    if spec.needs == "list":
        if list_id is None or not str(list_id).strip():
            raise ConfigError("the list stream needs list_id= (the id of one of your lists; --list-id)")
        list_id = str(list_id).strip()
    elif list_id is not None:
        raise ConfigError(f"list_id= applies to the list stream, not {stream!r}")
    if transport not in ("sse", "websocket"):
        raise ConfigError(f"transport must be 'sse' or 'websocket', got {transport!r}")
    clean = _clean_token(token)
    if spec.needs_token and clean is None:
        raise ConfigError(f"the {stream} stream needs a user access token: pass token= or set {TOKEN_ENV} "
                          "(Preferences > Development > New application on your instance, scope read)")
    if streaming_url is not None:
        streaming_url = _check_instance(streaming_url, "streaming_url")
    if not isinstance(gap_fill_pages, int) or isinstance(gap_fill_pages, bool) or gap_fill_pages < 1:
        raise ConfigError(f"gap_fill_pages must be a positive integer, got {gap_fill_pages!r}")
    endpoint = MastodonEndpoint(base, stream, tag=tag, list_id=list_id, token=clean, transport=transport,
                                streaming_url=streaming_url, gap_fill=gap_fill, gap_fill_pages=gap_fill_pages)
    source = MastodonSource(instance=endpoint.instance, stream=stream, filter=tag or list_id, gap_fill=gap_fill)
    return endpoint, source


CLI_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--instance",), {"dest": "instance", "metavar": "URL",
                       "help": "The Mastodon instance, e.g. https://mastodon.social (the access token comes "
                               f"from ${TOKEN_ENV})."}),
    (("--stream",), {"dest": "stream", "choices": list(STREAMS), "metavar": "NAME",
                     "help": f"The timeline to stream: {', '.join(STREAMS)} (default public)."}),
    (("--tag",), {"dest": "tag", "metavar": "TAG", "help": "The hashtag of --stream hashtag or hashtag:local."}),
    (("--list-id",), {"dest": "list_id", "metavar": "ID", "help": "The list of --stream list."}),
    (("--transport",), {"dest": "transport", "choices": ["sse", "websocket"],
                        "help": "Server-sent events (default) or WebSocket."}),
    (("--streaming-url",), {"dest": "streaming_url", "metavar": "URL",
                            "help": "The instance's streaming server when it is another host "
                                    "(configuration.urls.streaming of /api/v2/instance)."}),
]
