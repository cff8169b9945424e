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
from collections.abc import Callable, Iterator
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
    """Yield body bytes as soon as they arrive: what one socket read brings, de-chunked.

    A chunked body without a content encoding (a stream's usual form) is de-chunked here
    over large reads (:func:`dechunk`): every ``chunk_size`` bytes that arrive together
    come out as one piece, however many HTTP chunks they hold, so the framer and the
    listener get few large batches instead of one small one per HTTP chunk. Other bodies
    (gzip, not chunked) go through urllib3.
    """
    raw = response.raw
    fp = getattr(getattr(raw, "_fp", None), "fp", None)
    encoded = raw.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity")
    if raw.chunked and fp is not None and hasattr(fp, "read1") and not encoded:
        yield from dechunk(fp.read1, max(int(chunk_size), _MIN_READ))
        return
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.read_chunked(amt=None, decode_content=True)
        return
    while True:
        data = raw.read1(chunk_size)
        if not data:
            return
        yield data


# De-chunking reads at least this much at a time (one read returns what has arrived).
_MIN_READ = 1 << 16
# A chunk-size line (hex size, extensions) longer than this is not HTTP.
_MAX_SIZE_LINE = 4096


def dechunk(read1: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    r"""The data of an HTTP/1.1 chunked body, from reads of up to ``size`` bytes.

    ``read1(size)`` returns what has arrived (at least one byte; ``b""`` when the
    connection closed). Each read yields at most one piece: the chunk data it completed
    or carried, joined. Returns after the last (zero-size) chunk; trailers are not read
    (the caller closes the connection). Raises ``urllib3.exceptions.ProtocolError`` when
    the connection closes inside the body or the chunk framing is broken.

    Examples
    --------
    >>> wire = [b"5\r\nhel", b"lo\r\n3;x=1\r\n wo\r\n", b"2\r\nrl\r", b"\n1\r\nd\r\n0\r\n\r\n"]
    >>> list(dechunk(lambda n, it=iter(wire): next(it), 1 << 16))
    [b'hel', b'lo wo', b'rl', b'd']
    >>> list(dechunk(lambda n, it=iter([b"5\r\nhel", b""]): next(it), 1 << 16))
    Traceback (most recent call last):
    ...
    urllib3.exceptions.ProtocolError: Connection broken: the server closed the connection inside an HTTP chunk
    """
    protocol_error = urllib3.exceptions.ProtocolError
    pending = b""  # an incomplete chunk-size line
    remaining = 0  # data bytes left in the current chunk
    crlf = 0  # bytes of the CRLF that ends the current chunk's data, still to come
    while True:
        data = read1(size)
        if not data:
            raise protocol_error(
                "Connection broken: the server closed the connection inside an HTTP chunk"
            )
        if pending:
            data, pending = pending + data, b""
        pos, n = 0, len(data)
        out: list[bytes] = []
        while pos < n:
            if remaining:
                end = min(n, pos + remaining)
                out.append(data if pos == 0 and end == n else data[pos:end])
                remaining -= end - pos
                pos = end
                if not remaining:
                    crlf = 2
                continue
            if crlf:
                take = min(crlf, n - pos)
                if data[pos : pos + take] != b"\r\n"[2 - crlf : 2 - crlf + take]:
                    raise protocol_error("Connection broken: an HTTP chunk does not end with CRLF")
                pos += take
                crlf -= take
                continue
            eol = data.find(b"\n", pos)
            if eol < 0:
                pending = data[pos:]
                if len(pending) > _MAX_SIZE_LINE:
                    raise protocol_error("Connection broken: an HTTP chunk-size line is too long")
                break
            line = data[pos:eol]
            pos = eol + 1
            try:
                length = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise protocol_error(
                    f"Connection broken: invalid HTTP chunk length {line[:40]!r}"
                ) from None
            if length < 0:
                raise protocol_error(f"Connection broken: invalid HTTP chunk length {line[:40]!r}")
            if length == 0:  # the last chunk: the body is complete
                if out:
                    yield out[0] if len(out) == 1 else b"".join(out)
                return
            remaining = length
        if out:
            yield out[0] if len(out) == 1 else b"".join(out)
