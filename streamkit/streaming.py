"""``Stream``: a Tweepy 3.x-compatible streaming client that does not give up.

A stream runs two threads. The *reader* connects, reads bytes, frames them
into messages and hands lists of raw messages to the *dispatcher*, which
calls the listener. A slow listener therefore never stalls the socket (up to
``max_buffer_bytes`` of backlog; past that the reader waits, and says so).

The reader reconnects from every network fault and HTTP error following
Twitter's policy (:class:`~streamkit.backoff.Backoff`); ``disconnect()``
shuts the socket down and wakes every wait, so it returns promptly even on
a silent stream or in the middle of a back-off.

Examples
--------
>>> from streamkit.testing import StreamServer, TEST_CREDENTIALS as C
>>> import streamkit
>>> class Collect(streamkit.StreamListener):
...     def __init__(self):
...         super().__init__()
...         self.texts = []
...     def on_status(self, status):
...         self.texts.append(status.full_text)
...         if len(self.texts) == 3:
...             return False                      # ends the stream
>>> auth = streamkit.OAuthHandler(C["consumer_key"], C["consumer_secret"])
>>> auth.set_access_token(C["access_token"], C["access_token_secret"])
>>> with StreamServer() as server:
...     listener = Collect()
...     stream = streamkit.Stream(auth, listener, base_url=server.url)
...     stream.filter(track=["python"])           # blocks until the listener says stop
>>> len(listener.texts), stream.running
(3, False)
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from . import _http
from ._exceptions import (
    ConfigError,
    HTTPStatusError,
    ProtocolError,
    StreamError,
)
from .auth import AuthHandler
from .backoff import Backoff
from .framing import DEFAULT_MAX_MESSAGE_BYTES
from .listener import FATAL_STATUS_CODES, MessageError, StreamListener
from .sources.base import Endpoint, Request
from .sources.twitter_v1 import TwitterV1Endpoint

__all__ = ["DEFAULT_BASE_URL", "Stream", "StreamStats"]

log = logging.getLogger("streamkit.stream")

DEFAULT_BASE_URL = "https://stream.twitter.com"

_ids = itertools.count(1)

_STATUS_HELP = {
    400: "the request was malformed: check the filter parameters",
    401: (
        "the credentials were refused: check the consumer key/secret and access token/secret "
        "(STREAMKIT_* variables), that they belong to the same app, and that this machine's "
        "clock is right (OAuth signatures expire)"
    ),
    403: "access denied: the app or account is not allowed to use this endpoint",
    404: "no such endpoint: check base_url and that the endpoint still exists",
    406: "the filter parameters were not acceptable: check track, follow and locations",
    413: "the filter is too long: use fewer track phrases, follow ids or location boxes",
    416: "the requested range (count) is not acceptable for this account",
    420: "rate limited (Enhance Your Calm): too many connection attempts; backing off",
    429: "too many requests or connections for this account; backing off",
}


def _http_error(
    status_code: int, url: str, body: str, retry_after: float | None, what: str | None = None
) -> HTTPStatusError:
    """The error for an HTTP status; ``what`` (the endpoint's own explanation) wins over
    the Twitter v1.1 texts."""
    return _http.status_error(status_code, f"from {url}", body, retry_after, what or _STATUS_HELP.get(status_code))


@dataclass
class StreamStats:
    """What a stream has seen so far; read it from any thread.

    ``state`` is one of ``"idle"``, ``"connecting"``, ``"streaming"``,
    ``"backing off"``, ``"stopped"``; ``backoff_until`` is a wall-clock
    ``time.time()`` while backing off. ``rejected`` counts complete messages
    dropped, by reason (``oversized``, ``invalid_utf8``, ``malformed_json``,
    ...); ``incomplete`` counts messages cut off by a broken connection (never
    received whole); ``length_mismatches`` counts wrong ``delimited=length``
    prefixes (the messages were still recovered).
    """

    state: str = "idle"
    connects: int = 0
    reconnects: int = 0
    messages: int = 0
    keepalives: int = 0
    bytes: int = 0
    stalls: int = 0
    network_errors: int = 0
    http_errors: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    incomplete: int = 0
    length_mismatches: int = 0
    last_error: str | None = None
    last_error_time: float | None = None
    backoff_until: float | None = None
    last_status_code: int | None = None
    connected_since: float | None = None

    def _reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + n

    def _error(self, text: str) -> None:
        self.last_error = text
        self.last_error_time = time.time()


class _Handoff:
    """Bounded (in bytes) queue from the reader to the dispatcher."""

    def __init__(self, max_bytes: int) -> None:
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._bytes = 0
        self._max = max_bytes
        self._closed = False

    def put(self, item: Any, nbytes: int, stop: threading.Event) -> None:
        with self._cond:
            if self._bytes > self._max:
                log.warning("listener is %d bytes behind the stream; reading waits for it", self._bytes)
                while self._bytes > self._max and not self._closed and not stop.is_set():
                    self._cond.wait(0.2)
            self._items.append((item, nbytes))
            self._bytes += nbytes
            self._cond.notify()

    def get(self) -> Any:
        """Next item, or ``None`` once closed and empty."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self._cond.wait()
            item, nbytes = self._items.popleft()
            self._bytes -= nbytes
            if self._bytes <= self._max:
                self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Call:
    """A listener call that the reader needs the answer to (``on_error``, ``on_timeout``)."""

    __slots__ = ("args", "done", "name", "result")

    def __init__(self, name: str, args: tuple[Any, ...]) -> None:
        self.name = name
        self.args = args
        self.done = threading.Event()
        self.result: Any = None


_KEEPALIVE = object()


class Stream:
    """A streaming connection, driven by a :class:`StreamListener`.

    Parameters
    ----------
    auth : AuthHandler
        Credentials (``OAuthHandler`` for the v1.1 endpoints).
    listener : StreamListener
        Receives messages and events.
    base_url : str
        ``https://stream.twitter.com`` by default; ``http://`` is accepted
        only for loopback hosts (a local test server).
    timeout : float
        Stall timeout: no byte at all (keep-alives count) for this long
        means the connection is dead; the stream reconnects.
    retry_count : int, optional
        Give up after this many consecutive HTTP errors (``None``: never).
    retry_time, retry_time_cap : float
        Exponential back-off after HTTP errors: first wait and longest wait.
    retry_420 : float
        First wait after HTTP 420/429, doubling.
    snooze_time, snooze_time_cap : float
        Linear back-off step and cap after network errors and stalls.
    chunk_size : int
        Read size for non-chunked bodies.
    daemon : bool
        Whether the stream's threads are daemon threads.
    max_message_bytes : int
        One message larger than this is skipped with a warning.
    max_buffer_bytes : int
        Backlog between reader and listener before reading waits.
    verify : bool or str
        TLS certificate verification (on by default; turning it off warns).
    connect_timeout : float
        Time allowed to establish the TCP/TLS connection.
    endpoint : Endpoint, optional
        Another source to stream from (see :mod:`streamkit.sources`): then
        :meth:`start` connects to it, with the same reconnect loop, back-off,
        stall detection and listener dispatch. ``filter``/``sample`` are the
        Twitter v1.1 endpoints at ``base_url``.

    Attributes
    ----------
    running : bool
        True from ``filter``/``sample`` until the stream has ended.
    thread : threading.Thread or None
        The dispatch thread when started with ``is_async=True``.
    exception : BaseException or None
        What ended the stream, if it did not end by request.
    stats : StreamStats
        Counters and state.
    """

    def __init__(
        self,
        auth: AuthHandler | None,
        listener: StreamListener,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 90.0,
        retry_count: int | None = None,
        retry_time: float = 5.0,
        retry_420: float = 60.0,
        retry_time_cap: float = 320.0,
        snooze_time: float = 0.25,
        snooze_time_cap: float = 16.0,
        chunk_size: int = 65536,
        daemon: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_buffer_bytes: int = 256 * 1024 * 1024,
        verify: bool | str = True,
        connect_timeout: float = 10.0,
        endpoint: Endpoint | None = None,
        **unsupported: Any,
    ) -> None:
        if unsupported:
            raise ConfigError(
                f"Stream got unknown option(s) {', '.join(sorted(unsupported))}; "
                "see help(streamkit.Stream) for the supported ones."
            )
        if not isinstance(listener, StreamListener):
            raise ConfigError("listener must be a streamkit.StreamListener (subclass) instance")
        if auth is not None and not hasattr(auth, "apply_auth"):
            raise ConfigError("auth must be an OAuthHandler or BearerTokenHandler (or None for open servers)")
        if not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if endpoint is not None and not isinstance(endpoint, Endpoint):
            raise ConfigError("endpoint must be a streamkit.sources.Endpoint (subclass) instance")
        if retry_count is not None and (not isinstance(retry_count, int) or retry_count < 0):
            raise ConfigError(f"retry_count must be None or an integer >= 0, got {retry_count!r}")
        self.auth = auth
        self.listener = listener
        self.endpoint = endpoint
        self.base_url = _http.check_base_url(base_url, verify=verify)
        self.timeout = float(timeout)
        self.retry_count = retry_count
        self.retry_time = retry_time
        self.retry_420 = retry_420
        self.retry_time_cap = retry_time_cap
        self.snooze_time = snooze_time
        self.snooze_time_cap = snooze_time_cap
        self.chunk_size = int(chunk_size)
        self.daemon = daemon
        self.max_message_bytes = int(max_message_bytes)
        self.max_buffer_bytes = int(max_buffer_bytes)
        self.verify = verify
        self.connect_timeout = float(connect_timeout)
        try:
            self._backoff_args: dict[str, Any] = dict(
                snooze_time=snooze_time,
                snooze_time_cap=snooze_time_cap,
                retry_time=retry_time,
                retry_time_cap=retry_time_cap,
                retry_420=retry_420,
            )
            Backoff(**self._backoff_args)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.running = False
        self.thread: threading.Thread | None = None
        self.exception: BaseException | None = None
        self.stats = StreamStats()
        self.session: Any = None
        self.url: str | None = None
        self.body: dict[str, str] | None = None
        self.method = "POST"
        self._active: Endpoint | None = None  # the endpoint of the current run
        self._n = next(_ids)
        self._stop = threading.Event()
        self._sock = _http.SocketHolder()
        self._reader: threading.Thread | None = None
        self._handoff: _Handoff | None = None
        self._abort = False  # stop without delivering the backlog (the listener asked)

    # -- public API --------------------------------------------------------------
    def filter(
        self,
        follow: Iterable[int | str] | None = None,
        track: Iterable[str] | str | None = None,
        is_async: bool = False,
        locations: Sequence[float] | None = None,
        stall_warnings: bool = False,
        languages: Iterable[str] | str | None = None,
        encoding: str = "utf8",
        filter_level: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Connect to ``statuses/filter`` and stream statuses that match.

        Parameters
        ----------
        follow : list of int or str, optional
            Up to 5,000 user ids.
        track : list of str, optional
            Up to 400 phrases of 1-60 bytes; words of a phrase must all
            appear, phrases are alternatives.
        is_async : bool
            Run on a background thread and return at once
            (``**{"async": True}`` also works, as in old Tweepy).
        locations : list of float, optional
            Bounding boxes as ``[sw_lon, sw_lat, ne_lon, ne_lat, ...]``, up to 25.
        stall_warnings : bool
            Ask the server for ``FALLING_BEHIND`` warnings.
        languages : list of str, optional
            BCP 47 language codes.
        encoding : str
            Encoding of the track phrases on the wire.
        filter_level : {"none", "low", "medium"}, optional

        Raises
        ------
        ConfigError
            For invalid parameters, before anything connects.
        """
        is_async = self._async_flag(is_async, kwargs)
        body = build_filter_params(
            follow=follow,
            track=track,
            locations=locations,
            stall_warnings=stall_warnings,
            languages=languages,
            encoding=encoding,
            filter_level=filter_level,
        )
        self._start(self._v1("POST", "/1.1/statuses/filter.json", body), is_async)

    def sample(
        self,
        is_async: bool = False,
        languages: Iterable[str] | str | None = None,
        stall_warnings: bool = False,
        **kwargs: Any,
    ) -> None:
        """Connect to ``statuses/sample``: a random sample of all public statuses."""
        is_async = self._async_flag(is_async, kwargs)
        params = {"delimited": "length"}
        if stall_warnings:
            params["stall_warnings"] = "true"
        langs = _as_list(languages, "languages")
        if langs:
            params["language"] = ",".join(_check_language(x) for x in langs)
        self._start(self._v1("GET", "/1.1/statuses/sample.json", params), is_async)

    def start(self, is_async: bool = False) -> None:
        """Connect to this stream's ``endpoint`` and stream (the non-v1.1 sources).

        Parameters
        ----------
        is_async : bool
            Run on a background thread and return at once.

        Raises
        ------
        ConfigError
            If the Stream was built without ``endpoint=``.

        Examples
        --------
        >>> import streamkit
        >>> streamkit.Stream(None, streamkit.StreamListener()).start()
        Traceback (most recent call last):
        ...
        streamkit._exceptions.ConfigError: this Stream has no endpoint: build it with Stream(auth, listener, endpoint=...) or call filter()/sample() for Twitter v1.1
        """
        if self.endpoint is None:
            raise ConfigError(
                "this Stream has no endpoint: build it with Stream(auth, listener, endpoint=...) "
                "or call filter()/sample() for Twitter v1.1"
            )
        url = self.endpoint.request().url
        _http.check_base_url(_http_scheme(url), verify=self.verify)
        self._start(self.endpoint, is_async)

    def _v1(self, method: str, path: str, params: dict[str, str]) -> Endpoint:
        if self.endpoint is not None and not isinstance(self.endpoint, TwitterV1Endpoint):
            raise ConfigError(
                f"this Stream was built for the {self.endpoint.name} endpoint: call start(), "
                "not filter()/sample()"
            )
        return TwitterV1Endpoint(method, self.base_url, path, params)

    def disconnect(self) -> None:
        """End the stream; returns within about a second, whatever it was doing.

        Messages already read from the socket are still delivered to the
        listener before the stream ends, so nothing that arrived is lost.
        """
        self.running = False
        self._stop.set()
        self._sock.shutdown()
        current = threading.current_thread()
        for thread in (self._reader, self.thread):
            if thread is not None and thread is not current and thread.is_alive():
                thread.join(timeout=5.0)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for an async stream to end; True when it has."""
        for thread in (self.thread, self._reader):
            if thread is not None:
                thread.join(timeout)
        return not any(t is not None and t.is_alive() for t in (self.thread, self._reader))

    def __repr__(self) -> str:
        return (
            f"<Stream #{self._n} {self.base_url} state={self.stats.state!r} "
            f"messages={self.stats.messages} reconnects={self.stats.reconnects}>"
        )

    # -- internals ------------------------------------------------------------------
    @staticmethod
    def _async_flag(is_async: bool, kwargs: dict[str, Any]) -> bool:
        if "async" in kwargs:
            is_async = bool(kwargs.pop("async"))
        if kwargs:
            raise ConfigError(f"unexpected argument(s): {', '.join(sorted(kwargs))}")
        return bool(is_async)

    def _start(self, endpoint: Endpoint, is_async: bool) -> None:
        if self.running:
            raise StreamError("Stream is already connected; call disconnect() before starting it again.")
        if self._reader is not None and self._reader.is_alive():
            raise StreamError("Stream is still shutting down; call disconnect() and try again.")
        self._active = endpoint
        first = endpoint.request()
        self.method, self.url, self.body = first.method, first.url, first.params
        self.running = True
        self.exception = None
        self._abort = False
        self._stop.clear()
        self._sock.reopen()
        self.stats.state = "connecting"
        self._handoff = _Handoff(self.max_buffer_bytes)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"streamkit-reader-{self._n}", daemon=self.daemon
        )
        self._reader.start()
        if is_async:
            self.thread = threading.Thread(
                target=self._dispatch_loop, name=f"streamkit-stream-{self._n}", daemon=self.daemon
            )
            self.thread.start()
            return
        self.thread = None
        try:
            self._dispatch_loop()
        finally:
            self.disconnect()
        exc = self.exception
        if exc is not None and not _chosen_stop(exc):
            raise exc

    # The reader thread --------------------------------------------------------------
    def _read_loop(self) -> None:
        handoff = self._handoff
        assert handoff is not None
        backoff = Backoff(**self._backoff_args, clock=time.monotonic)
        self.session = _http.make_session(self._sock, user_agent="streamkit")
        try:
            while not self._stop.is_set():
                delay = self._connect_once(backoff, handoff)
                if delay is None or self._stop.is_set():
                    break
                if delay > 0:
                    self.stats.state = "backing off"
                    self.stats.backoff_until = time.time() + delay
                    log.info("reconnecting in %.2f s", delay)
                    if self._stop.wait(delay):
                        break
                self.stats.backoff_until = None
                self.stats.state = "connecting"
        except BaseException as exc:  # a bug here must not vanish with the thread
            log.exception("stream reader failed")
            self.exception = self.exception or exc
        finally:
            self.running = False
            self.stats.state = "stopped"
            self.stats.backoff_until = None
            self.session.close()
            handoff.close()

    def _connect_once(self, backoff: Backoff, handoff: _Handoff) -> float | None:
        """One connection attempt and its reading; returns the delay before the next, or None to stop."""
        endpoint = self._active
        assert endpoint is not None
        req = endpoint.request()
        self.method, self.url, self.body = req.method, req.url, req.params
        if endpoint.transport == "websocket":
            return self._connect_websocket(endpoint, req, backoff, handoff)
        auth = self.auth.apply_auth() if self.auth is not None else None
        kwargs: dict[str, Any] = {
            "auth": auth,
            "stream": True,
            "timeout": (self.connect_timeout, self.timeout),
            "verify": self.verify,
            # A streaming endpoint never redirects; following one could lead to plain
            # http:// on another host, past check_base_url. A 3xx is an HTTP error.
            "allow_redirects": False,
        }
        if req.headers:
            kwargs["headers"] = req.headers
        if req.method == "POST":
            kwargs["data"] = req.params
        else:
            kwargs["params"] = req.params
        try:
            resp = self.session.request(req.method, req.url, **kwargs)
        except _http.NETWORK_ERRORS as exc:
            return self._connect_failed(exc, backoff)
        with resp:
            if resp.status_code != 200:
                try:
                    body = resp.raw.read(4096, decode_content=True).decode("utf-8", "replace")
                except _http.NETWORK_ERRORS:
                    body = ""
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                what = endpoint.http_error_help(resp.status_code)
                return self._http_failure(_http_error(resp.status_code, req.url, body, retry_after, what), backoff)
            self._connected(endpoint, handoff)
            return self._read_body(endpoint, _http.iter_body(resp, self.chunk_size), None, backoff, handoff)

    def _connect_websocket(
        self, endpoint: Endpoint, req: Request, backoff: Backoff, handoff: _Handoff
    ) -> float | None:
        from . import _websocket

        url = req.url
        if req.params:
            url += ("&" if "?" in url else "?") + urlencode(req.params, doseq=True)
        try:
            ws = _websocket.open_websocket(
                url, headers=req.headers, connect_timeout=self.connect_timeout,
                read_timeout=self.timeout, verify=self.verify, on_socket=self._sock.set,
                describe=endpoint.http_error_help,
            )  # fmt: skip
        except HTTPStatusError as exc:
            return self._http_failure(exc, backoff)
        except (*_http.NETWORK_ERRORS, ProtocolError) as exc:  # type: ignore[misc]  # mypy reads no star here
            return self._connect_failed(exc, backoff)
        try:
            for text in req.send:
                ws.send_text(text)
            self._connected(endpoint, handoff)
            return self._read_body(endpoint, iter(ws.recv, b""), ws, backoff, handoff)
        except _http.NETWORK_ERRORS as exc:  # a failed subscribe
            return self._connect_failed(exc, backoff)
        finally:
            ws.close()

    def _connect_failed(self, exc: BaseException, backoff: Backoff) -> float | None:
        if self._stop.is_set():
            return None
        self.stats.network_errors += 1
        self.stats._error(f"could not connect to {self.url}: {type(exc).__name__}")
        log.warning("connection to %s failed (%s)", self.url, type(exc).__name__)
        return backoff.network_error()

    def _connected(self, endpoint: Endpoint, handoff: _Handoff) -> None:
        stats = self.stats
        stats.connects += 1
        if stats.connects > 1:
            stats.reconnects += 1
        stats.last_status_code = 200 if endpoint.transport == "http" else 101
        stats.state = "streaming"
        stats.connected_since = time.time()
        handoff.put(_Call("on_connect", ()), 0, self._stop)
        # Sources without server-side resume fetch what was missed (after the stream is
        # open, so nothing falls between the two; the sink drops the overlap by key).
        try:
            filled = endpoint.gap_fill(self.session)
        except Exception as exc:  # a failed fill leaves a gap, never stops the stream
            log.warning("could not fill the gap after reconnecting: %s", exc)
            stats._error(f"gap fill failed: {exc}")
            filled = []
        if filled:
            stats.messages += len(filled)
            handoff.put(list(filled), sum(map(len, filled)), self._stop)

    def _read_body(
        self, endpoint: Endpoint, chunks: Iterable[bytes], ws: Any, backoff: Backoff, handoff: _Handoff
    ) -> float | None:
        """Frame the body and hand messages on until it ends; the delay before reconnecting."""
        stats = self.stats
        framer = endpoint.framer(self.max_message_bytes)
        outgoing = getattr(framer, "outgoing", None)
        established = False
        seen_keepalives = 0
        seen_oversized = 0
        fstats = framer.stats
        opened = time.monotonic()
        try:
            for data in chunks:
                if not established:
                    established = True
                    backoff.connected()
                stats.bytes += len(data)
                messages = framer.feed(data)
                if messages:
                    stats.messages += len(messages)
                    endpoint.observe(messages)
                    handoff.put(messages, len(data), self._stop)
                if outgoing:  # WebSocket control replies (pong, close)
                    for frame in outgoing:
                        ws.send_raw(frame)
                    outgoing.clear()
                if fstats.keepalives != seen_keepalives:
                    handoff.put((_KEEPALIVE, fstats.keepalives - seen_keepalives), 0, self._stop)
                    stats.keepalives += fstats.keepalives - seen_keepalives
                    seen_keepalives = fstats.keepalives
                if fstats.oversized != seen_oversized:
                    stats._reject("oversized", fstats.oversized - seen_oversized)
                    seen_oversized = fstats.oversized
                    log.warning("skipped a message larger than %d bytes", self.max_message_bytes)
                if self._stop.is_set():
                    return None
                if getattr(framer, "closed", False):
                    break
            # The server ended the response: Twitter does this on purpose at times.
            reason = "the server closed the stream"
            stalled = broken = False
        except ProtocolError as exc:  # the server broke the framing (WebSocket)
            stalled, broken = False, True
            reason = f"protocol error from the server: {exc}"
        except _http.NETWORK_ERRORS as exc:
            broken = False
            stalled = _is_timeout(exc)
            if stalled:
                reason = f"no data for {self.timeout:.1f} s (stall)"
            else:
                reason = f"connection lost: {type(exc).__name__}"
        finally:
            self._count_framing(framer)
        if self._stop.is_set():
            return None
        if framer.pending_bytes:
            stats.incomplete += 1  # cut mid-message: never received whole
        elif not stalled and not broken and endpoint.routine_close(
            time.monotonic() - opened
        ):  # a clean end, or a cut between messages (a proxy closing a long connection)
            log.info("the server ended the stream as it routinely does; reconnecting")
            return 0.0
        stats.network_errors += 1
        stats._error(reason)
        log.warning("%s; reconnecting", reason)
        if stalled:
            stats.stalls += 1
            if self._ask("on_timeout", ()) is False:
                return None
        return backoff.network_error()

    def _count_framing(self, framer: Any) -> None:
        mismatches = getattr(framer.stats, "length_mismatches", 0)
        if mismatches:
            # The message itself was recovered whole (the line break is authoritative).
            self.stats.length_mismatches += mismatches

    def _http_failure(self, error: HTTPStatusError, backoff: Backoff) -> float | None:
        stats = self.stats
        code = error.status_code
        stats.http_errors += 1
        stats.last_status_code = code
        stats._error(str(error))
        log.warning("%s", error)
        if self._ask("on_error", (code,)) is False:
            self.exception = error
            return None
        delay = backoff.http_error(code, getattr(error, "retry_after", None))
        if self.retry_count is not None and backoff.consecutive_http_errors > self.retry_count:
            gave_up = type(error)(code, f"gave up after {backoff.consecutive_http_errors} consecutive HTTP errors (retry_count={self.retry_count}); last: {error}")
            self.exception = gave_up
            return None
        return delay

    def _ask(self, name: str, args: tuple[Any, ...]) -> Any:
        """Run a listener callback on the dispatch thread and wait for its answer."""
        call = _Call(name, args)
        assert self._handoff is not None
        self._handoff.put(call, 0, self._stop)
        while not call.done.wait(0.1):
            if self._stop.is_set():
                return False
        return call.result

    # The dispatch thread ----------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        handoff = self._handoff
        assert handoff is not None
        listener = self.listener
        on_data = listener.on_data
        want_bytes = bool(getattr(listener, "raw_bytes", False))
        # The fast path for listeners that take whole lists of raw messages.
        on_batch = getattr(listener, "on_batch", None)
        stats = self.stats
        while True:
            item = handoff.get()
            if item is None:
                break
            if self._abort:
                if isinstance(item, _Call):
                    item.result = False
                    item.done.set()
                continue
            try:
                if type(item) is list:
                    if on_batch is not None:
                        if on_batch(item) is False:
                            self._listener_stop("on_batch")
                        continue
                    for raw in item:
                        if not want_bytes:
                            try:
                                raw = raw.decode("utf-8")
                            except UnicodeDecodeError:
                                stats._reject("invalid_utf8")
                                log.warning("skipped a message that is not valid UTF-8")
                                continue
                        try:
                            if on_data(raw) is False:
                                self._listener_stop("on_data")
                                break
                        except MessageError as exc:
                            stats._reject(exc.reason)
                            log.warning("skipped a bad message: %s", exc)
                elif isinstance(item, _Call):
                    try:
                        item.result = getattr(listener, item.name)(*item.args)
                    finally:
                        item.done.set()
                    if item.result is False and item.name == "on_connect":
                        self._listener_stop("on_connect")
                else:
                    for _ in range(item[1]):
                        if listener.keep_alive() is False:
                            self._listener_stop("keep_alive")
                            break
            except Exception as exc:
                self._user_exception(exc)
        self.running = False

    def _listener_stop(self, where: str) -> None:
        log.info("listener returned False from %s; stopping", where)
        self._abort = True
        self.running = False
        self._stop.set()
        self._sock.shutdown()

    def _user_exception(self, exc: Exception) -> None:
        log.error("exception in listener: %r; stopping the stream", exc)
        self.stats._error(f"listener raised {type(exc).__name__}: {exc}")
        self.exception = exc
        try:
            self.listener.on_exception(exc)
        except Exception:
            log.exception("on_exception itself raised")
        self._listener_stop("an exception")


def _chosen_stop(exc: BaseException) -> bool:
    """True when the listener chose to stop on an error that retrying could have fixed."""
    return isinstance(exc, HTTPStatusError) and exc.status_code not in FATAL_STATUS_CODES and "gave up" not in str(exc)


def _is_timeout(exc: BaseException) -> bool:
    import socket

    import requests
    import urllib3

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (socket.timeout, TimeoutError, urllib3.exceptions.ReadTimeoutError, requests.Timeout)):
            return True
        e = e.__cause__ or e.__context__ or (e.args[0] if e.args and isinstance(e.args[0], BaseException) else None)
    return False


def _http_scheme(url: str) -> str:
    """The URL with ws/wss read as http/https, for the loopback-only-plaintext check."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


# -- parameter checks ------------------------------------------------------------------

def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, int, float)):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise ConfigError(f"{name} must be a list, got {type(value).__name__}") from None


def _check_language(code: Any) -> str:
    if not isinstance(code, str) or not code.strip() or not all(c.isalnum() or c == "-" for c in code.strip()):
        raise ConfigError(f"languages must be BCP 47 codes such as 'en' or 'pt-BR', got {code!r}")
    return code.strip()


def build_filter_params(
    *,
    follow: Any = None,
    track: Any = None,
    locations: Any = None,
    stall_warnings: bool = False,
    languages: Any = None,
    encoding: str = "utf8",
    filter_level: str | None = None,
) -> dict[str, str]:
    """Validate filter parameters and build the form body of ``statuses/filter``.

    Examples
    --------
    >>> build_filter_params(track=["python", "data science"], languages=["en"])
    {'delimited': 'length', 'track': 'python,data science', 'language': 'en'}
    >>> build_filter_params(locations=[-122.75, 36.8, -121.75, 37.8])
    {'delimited': 'length', 'locations': '-122.7500,36.8000,-121.7500,37.8000'}
    >>> build_filter_params(track=[])
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: filter needs at least one of track, follow or locations.
    """
    params = {"delimited": "length"}
    phrases = _as_list(track, "track")
    if len(phrases) > 400:
        raise ConfigError(f"track has {len(phrases)} phrases; the endpoint allows at most 400.")
    clean = []
    for phrase in phrases:
        if isinstance(phrase, bytes):
            phrase = phrase.decode(encoding)
        if not isinstance(phrase, str):
            raise ConfigError(f"track phrases must be strings, got {phrase!r}")
        phrase = " ".join(phrase.split())
        if "," in phrase:
            raise ConfigError(f"track phrase {phrase!r} contains a comma; pass separate phrases as a list.")
        size = len(phrase.encode(encoding))
        if not 1 <= size <= 60:
            raise ConfigError(f"track phrase {phrase!r} is {size} bytes; each must be 1-60 bytes.")
        clean.append(phrase)
    if clean:
        params["track"] = ",".join(clean)
    ids = _as_list(follow, "follow")
    if len(ids) > 5000:
        raise ConfigError(f"follow has {len(ids)} user ids; the endpoint allows at most 5,000.")
    clean_ids = []
    for uid in ids:
        text = str(uid).strip()
        if isinstance(uid, bool) or not text.isdigit() or int(text) <= 0:
            raise ConfigError(f"follow takes numeric user ids, got {uid!r} (look up screen names first).")
        clean_ids.append(str(int(text)))
    if clean_ids:
        params["follow"] = ",".join(clean_ids)
    coords = _as_list(locations, "locations")
    if coords:
        params["locations"] = _check_locations(coords)
    if not (clean or clean_ids or coords):
        raise ConfigError("filter needs at least one of track, follow or locations.")
    langs = _as_list(languages, "languages")
    if langs:
        params["language"] = ",".join(_check_language(x) for x in langs)
    if stall_warnings:
        params["stall_warnings"] = "true"
    if filter_level is not None:
        if filter_level not in ("none", "low", "medium"):
            raise ConfigError(f"filter_level must be 'none', 'low' or 'medium', got {filter_level!r}")
        params["filter_level"] = filter_level
    return params


def _check_locations(coords: list[Any]) -> str:
    try:
        values = [float(c) for c in coords]
    except (TypeError, ValueError):
        raise ConfigError("locations must be numbers: [sw_lon, sw_lat, ne_lon, ne_lat, ...]") from None
    if len(values) % 4:
        raise ConfigError(
            f"locations has {len(values)} numbers; boxes come in groups of 4: sw_lon, sw_lat, ne_lon, ne_lat."
        )
    if len(values) > 100:
        raise ConfigError(f"locations has {len(values) // 4} boxes; the endpoint allows at most 25.")
    for i in range(0, len(values), 4):
        w, s, e, n = values[i : i + 4]
        box = i // 4 + 1
        if not all(math.isfinite(v) for v in (w, s, e, n)):
            raise ConfigError(f"location box {box} has a non-finite number")
        if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
            raise ConfigError(
                f"location box {box} {values[i:i+4]} is out of range: longitudes -180..180, latitudes -90..90."
            )
        if not (w < e and s < n):
            raise ConfigError(
                f"location box {box} {values[i:i+4]} must give the south-west corner first, then the north-east."
            )
    return ",".join(f"{v:.4f}" for v in values)
