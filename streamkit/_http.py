"""HTTP plumbing for streams: a session whose live socket can be cut from another thread.

A blocking read on a quiet stream cannot be interrupted by closing the
session: on Linux only ``shutdown()`` of the socket wakes the reader. The
adapter here records each socket it connects so that ``Stream.disconnect``
can shut it down and return at once, whatever the stream is doing.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import warnings
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ._exceptions import AuthError, ConfigError, HTTPStatusError, RateLimited

__all__: list[str] = []

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
)
"""Everything a connection or a read can raise that means "the network failed"."""


def status_error(
    status_code: int, where: str, body: str, retry_after: float | None, what: str | None
) -> HTTPStatusError:
    """The error for an HTTP status a stream got instead of data: what it means, what to do.

    ``where`` says which request (``"from https://host/path"``); ``what`` is the
    explanation (None: a generic one by status class); the server's own words follow.

    Examples
    --------
    >>> e = status_error(429, "from https://x.example/s", "slow down", 7.0, None)
    >>> type(e).__name__, e.retry_after
    ('RateLimited', 7.0)
    >>> str(status_error(503, "from https://x.example/s", "", None, None))
    'HTTP 503 from https://x.example/s: the server had a problem; retrying with back-off.'
    """
    if not what:
        what = "the server had a problem; retrying with back-off" if status_code >= 500 else "unexpected HTTP status"
    detail = f" Server said: {body.strip()[:300]}" if body.strip() else ""
    message = f"HTTP {status_code} {where}: {what}.{detail}"
    if status_code in (401, 403):
        return AuthError(status_code, message)
    if status_code in (420, 429):
        return RateLimited(status_code, message, retry_after)
    return HTTPStatusError(status_code, message)


class SocketHolder:
    """The socket of the connection in use, shut down on request from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._closed = False

    def set(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            closed = self._closed
        if closed:
            self._shutdown(sock)

    def shutdown(self) -> None:
        """Wake any thread blocked on the socket; later sockets are cut at once."""
        with self._lock:
            self._closed = True
            sock = self._sock
        if sock is not None:
            self._shutdown(sock)

    def reopen(self) -> None:
        with self._lock:
            self._closed = False
            self._sock = None

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected: nothing to wake


class _TrackingAdapter(HTTPAdapter):
    def __init__(self, holder: SocketHolder) -> None:
        self._holder = holder
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        holder = self._holder

        class _HTTPConnection(urllib3.connection.HTTPConnection):
            def connect(self) -> None:
                super().connect()
                holder.set(self.sock)

        class _HTTPSConnection(urllib3.connection.HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                holder.set(self.sock)

        class _HTTPPool(HTTPConnectionPool):
            ConnectionCls = _HTTPConnection

        class _HTTPSPool(HTTPSConnectionPool):
            ConnectionCls = _HTTPSConnection

        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def make_session(holder: SocketHolder, *, user_agent: str) -> requests.Session:
    session = requests.Session()
    adapter = _TrackingAdapter(holder)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, verify: bool | str = True) -> str:
    """Validate a streaming base URL; ``http://`` is allowed for loopback hosts only."""
    if not isinstance(base_url, str):
        raise ConfigError(f"base_url must be a string such as 'https://stream.twitter.com', got {base_url!r}")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base_url {base_url!r} is not an http(s) URL: use e.g. 'https://stream.twitter.com' "
            "or the url of a local streamkit.testing.StreamServer."
        )
    if parts.username or parts.password:
        raise ConfigError("base_url must not contain credentials; pass them with auth=...")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: credentials and data would cross the "
            "network unencrypted. Use https://, or http:// only for a server on this machine "
            "(127.0.0.1, ::1, localhost)."
        )
    if verify is False:
        warnings.warn(
            "TLS certificate verification is OFF for the stream: anyone on the network path "
            "can read the credentials and data. Only do this for a test server you control.",
            RuntimeWarning,
            stacklevel=3,
        )
    return base_url.rstrip("/")


def iter_body(response: requests.Response, chunk_size: int) -> Iterator[bytes]:
    """Yield body bytes as soon as they arrive (per HTTP chunk, or per ``read1``)."""
    raw = response.raw
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.read_chunked(amt=None, decode_content=True)
        return
    while True:
        data = raw.read1(chunk_size)
        if not data:
            return
        yield data
