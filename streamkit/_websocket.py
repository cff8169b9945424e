"""A small WebSocket client (RFC 6455) for the streaming sources: connect, frame, reply.

Two pieces, kept apart so that the protocol logic can be fuzzed without a socket:

* :func:`open_websocket` — the I/O: TCP (and TLS for ``wss://``), the HTTP/1.1 upgrade,
  the ``Sec-WebSocket-Accept`` check; returns a :class:`WebSocketConnection` whose
  ``recv()`` hands out raw socket bytes. A refused upgrade raises the same
  :class:`~streamkit.HTTPStatusError` family as an HTTP stream does.
* :class:`WebSocketFramer` — pure: raw bytes in, complete data messages out (fragments
  reassembled), control frames answered (a ping queues a pong in ``outgoing``, a close
  frame queues the close reply and sets ``closed``). It has the framer contract of
  :mod:`streamkit.sources.base`, so :class:`streamkit.Stream`'s reader thread treats a
  WebSocket source like any other.

What is deliberately not here: extensions (``permessage-deflate``: none is offered, so
a server that answers with one is refused), UTF-8 validation of text messages (a message
that is not valid UTF-8 reaches the stream's own ``invalid_utf8`` count instead of
tearing the connection down), and proxies.

Examples
--------
>>> f = WebSocketFramer()
>>> frame = encode_frame(OP_TEXT, b'{"kind": "commit"}')     # as a server sends it
>>> f.feed(frame[:3]), f.feed(frame[3:])
([], [b'{"kind": "commit"}'])
>>> f.feed(encode_frame(OP_PING, b"hi")), f.stats.keepalives, len(f.outgoing)
([], 1, 1)
>>> f.feed(encode_frame(OP_CLOSE, (1001).to_bytes(2, "big"))), f.closed, f.close_code
([], True, 1001)
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from ._exceptions import ConfigError, HTTPStatusError, ProtocolError
from ._http import status_error
from .framing import DEFAULT_MAX_MESSAGE_BYTES, FramingStats

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "WebSocketConnection",
    "WebSocketFramer",
    "accept_key",
    "client_frame",
    "close_payload",
    "encode_frame",
    "open_websocket",
]

log = logging.getLogger("streamkit.websocket")

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_DATA_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY))
_CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 64 * 1024
_MAX_ERROR_BODY = 4096

# Close codes an endpoint may send (RFC 6455 7.4.1; 1004-1006 and 1015 are never sent).
_SENDABLE_CLOSE = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))

_STATUS_HELP = {
    400: "the server did not accept the request: check the URL and its parameters",
    401: "the server wants credentials: check the access token",
    403: "access denied: the token or account may not use this stream",
    404: "no such stream: check the URL (host and path)",
    420: "rate limited: too many connection attempts; backing off",
    426: "the server wants another protocol version",
    429: "too many requests or connections; backing off",
}


def accept_key(key: str | bytes) -> str:
    """The ``Sec-WebSocket-Accept`` value that answers ``Sec-WebSocket-Key`` *key*.

    Examples
    --------
    >>> accept_key("dGhlIHNhbXBsZSBub25jZQ==")      # the example of RFC 6455 1.3
    's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
    """
    raw = key.encode("ascii") if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw.strip() + _GUID).digest()).decode("ascii")


def _mask(payload: bytes, key: bytes, offset: int = 0) -> bytes:
    """XOR *payload* with the 4-byte *key*, starting at byte *offset* of the key stream."""
    n = len(payload)
    if not n:
        return b""
    if offset % 4:
        key = key[offset % 4 :] + key[: offset % 4]
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask_key: bytes | None = None, rsv: int = 0
) -> bytes:
    """One frame: header, 7/16/64-bit length, optional mask, payload.

    Parameters
    ----------
    opcode : int
        ``OP_TEXT``, ``OP_BINARY``, ``OP_CONTINUATION``, ``OP_PING``, ``OP_PONG``, ``OP_CLOSE``
        (any 4-bit value is encoded, so tests can build invalid frames too).
    payload : bytes
        Unmasked payload.
    fin : bool
        Last frame of its message.
    mask_key : bytes, optional
        Four bytes: mask the payload (what a client must do). ``None``: unmasked
        (what a server does).
    rsv : int
        The three reserved bits (0 unless an extension was negotiated).

    Examples
    --------
    >>> encode_frame(OP_TEXT, b"Hello")                       # RFC 6455 5.7
    b'\\x81\\x05Hello'
    >>> encode_frame(OP_TEXT, b"Hello", mask_key=bytes.fromhex("37fa213d")).hex()
    '818537fa213d7f9f4d5158'
    >>> len(encode_frame(OP_BINARY, bytes(70000)))            # 64-bit length: 2 + 8 + 70000
    70010
    """
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"opcode must be 0..15, got {opcode}")
    b0 = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask_key is not None else 0
    if n < 126:
        head = bytes((b0, mask_bit | n))
    elif n < 65536:
        head = bytes((b0, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mask_bit | 127)) + n.to_bytes(8, "big")
    if mask_key is None:
        return head + bytes(payload)
    if len(mask_key) != 4:
        raise ValueError("mask_key must be 4 bytes")
    return head + bytes(mask_key) + _mask(bytes(payload), bytes(mask_key))


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """A frame as a client sends it: masked with a fresh random key (RFC 6455 5.3).

    Examples
    --------
    >>> frame = client_frame(OP_TEXT, b'{"type": "subscribe"}')
    >>> frame[0], frame[1] & 0x80, len(frame) == 2 + 4 + 21
    (129, 128, True)
    """
    return encode_frame(opcode, payload, fin=fin, mask_key=os.urandom(4))


def close_payload(code: int | None = 1000, reason: str = "") -> bytes:
    """The payload of a close frame: a 2-byte code and a UTF-8 reason (or nothing).

    Examples
    --------
    >>> close_payload(1000, "bye")
    b'\\x03\\xe8bye'
    """
    if code is None:
        return b""
    return code.to_bytes(2, "big") + reason.encode("utf-8")[:123]


class WebSocketFramer:
    """Incremental WebSocket frame parser: raw socket bytes in, complete messages out.

    Parameters
    ----------
    max_message_bytes : int
        Cap on one (reassembled) message; a longer one is skipped frame by frame as it
        arrives, never buffered, and counted in ``stats.oversized``.
    expect_masked : bool, keyword-only
        ``False`` (a client reading server frames: a masked frame is a protocol error,
        replies are masked) or ``True`` (a server reading client frames: every frame must
        be masked, replies are not). Test servers use ``True``.

    Attributes
    ----------
    outgoing : list of bytes
        Frames to send back (pong for a ping, the close reply); the caller sends and
        clears them.
    closed : bool
        True once a close frame arrived; later bytes are ignored.
    close_code : int or None
        The peer's close code (``None`` when its close frame had no code).
    close_reason : str
        The peer's close reason.
    pongs : int
        Pong frames received.
    stats : FramingStats
        ``messages``, ``keepalives`` (pings received), ``oversized``, ``bytes``.

    Raises
    ------
    ProtocolError
        From :meth:`feed`, when the peer breaks RFC 6455: reserved bits or opcodes, a
        fragmented or oversized control frame, a continuation with no message started, a
        new message inside a fragmented one, wrong masking, a 64-bit length with its top
        bit set, a 1-byte or invalid close payload. When messages completed before the
        violation in the same ``feed``, they are returned first: the framer then queues a
        close frame (1002), sets ``closed`` and keeps the error in ``error``, raised by the
        next ``feed``.

    Examples
    --------
    >>> from streamkit._websocket import encode_frame, OP_TEXT, OP_CONTINUATION, OP_PING
    >>> f = WebSocketFramer()
    >>> body = (encode_frame(OP_TEXT, b"hel", fin=False) + encode_frame(OP_PING, b"")
    ...         + encode_frame(OP_CONTINUATION, b"lo"))
    >>> f.feed(body), f.stats.keepalives
    ([b'hello'], 1)
    >>> WebSocketFramer(4).feed(encode_frame(OP_TEXT, b"too long") + encode_frame(OP_TEXT, b"ok"))
    [b'ok']
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, *, expect_masked: bool = False) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self.max_message_bytes = int(max_message_bytes)
        self.expect_masked = bool(expect_masked)
        self.stats = FramingStats()
        self.outgoing: list[bytes] = []
        self.reset()

    def reset(self) -> None:
        """Forget any partial frame or message and the close state (a new connection)."""
        self.closed = False
        self.error: ProtocolError | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.pongs = 0
        self._hdr = b""  # an incomplete frame header
        self._in_frame = False
        self._remaining = 0  # payload bytes of the current frame still to come
        self._opcode = 0
        self._fin = True
        self._key: bytes | None = None
        self._key_off = 0
        self._ctrl = bytearray()  # payload of a control frame in progress
        self._msg = bytearray()  # fragments of the data message in progress
        self._msg_started = False
        self._skipping = False  # inside an oversized message
        self.outgoing.clear()

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame or message held back: 0 between messages, at least 1
        once a frame has begun (even before any of its payload arrived)."""
        held = len(self._hdr) + len(self._msg) + len(self._ctrl)
        if not held and (self._in_frame or self._msg_started) and not self._skipping:
            return 1  # a frame has begun, even if no payload byte is held yet
        return held

    def _reply(self, opcode: int, payload: bytes) -> None:
        if self.expect_masked:
            self.outgoing.append(encode_frame(opcode, payload))
        else:
            self.outgoing.append(client_frame(opcode, payload))

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the socket; return the data messages they complete.

        Parameters
        ----------
        data : bytes
            The next bytes, split anywhere (even inside a frame header).

        Returns
        -------
        list of bytes
            Complete text or binary message payloads, in order.
        """
        stats = self.stats
        stats.bytes += len(data)
        out: list[bytes] = []
        if self.error is not None:
            raise self.error
        if self.closed:
            return out
        try:
            self._feed(bytes(data), out)
        except ProtocolError as exc:
            if not out:
                raise
            # Deliver the messages that came whole before the violation, then fail the
            # connection as RFC 6455 7.1.7 asks: close 1002, and raise on the next feed.
            log.warning("WebSocket protocol error after %d good message(s): %s", len(out), exc)
            self.error = exc
            self._reply(OP_CLOSE, close_payload(1002))
            self.closed = True
        stats.messages += len(out)
        return out

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        stats = self.stats
        pos = 0
        end = len(data)
        cap = self.max_message_bytes
        while pos < end and not self.closed:
            if not self._in_frame:
                old = len(self._hdr)
                head = self._hdr + data[pos : pos + 14 - old] if old else data[pos : pos + 14]
                parsed = self._parse_header(head)
                if parsed is None:  # the rest of the data is all header: wait for more
                    self._hdr = head
                    pos = end
                    break
                size, n = parsed
                pos += size - old
                self._hdr = b""
                op = self._opcode
                # Fast path: a whole unmasked single-frame message already in the buffer.
                if (
                    op != OP_CONTINUATION and op in _DATA_OPCODES and self._fin and self._key is None
                    and pos + n <= end and n <= cap
                ):
                    out.append(data[pos : pos + n])
                    pos += n
                    continue
                if op in _DATA_OPCODES:
                    if not self._skipping and len(self._msg) + n > cap:
                        self._skipping = True
                        self._msg = bytearray()
                        stats.oversized += 1
                    self._msg_started = True
                self._in_frame = True
                self._remaining = n
                self._key_off = 0
                if n == 0:
                    self._end_frame(out)
                    continue
            take = min(self._remaining, end - pos)
            chunk = data[pos : pos + take]
            pos += take
            self._remaining -= take
            if self._opcode in _CONTROL_OPCODES:
                self._ctrl += self._unmask(chunk)
            elif not self._skipping:
                self._msg += self._unmask(chunk)
            else:
                self._key_off += take
            if self._remaining == 0:
                self._end_frame(out)

    def _unmask(self, chunk: bytes) -> bytes:
        if self._key is None:
            return chunk
        result = _mask(chunk, self._key, self._key_off)
        self._key_off += len(chunk)
        return result

    def _parse_header(self, head: bytes) -> tuple[int, int] | None:
        """(header size, payload length) of a complete header, or None; validates it."""
        if len(head) < 2:
            return None
        b0, b1 = head[0], head[1]
        n = b1 & 0x7F
        masked = bool(b1 & 0x80)
        size = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if masked else 0)
        if len(head) < size:
            return None
        if b0 & 0x70:
            raise ProtocolError("the server set reserved bits in a WebSocket frame although no extension was negotiated")
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        if opcode not in _DATA_OPCODES and opcode not in _CONTROL_OPCODES:
            raise ProtocolError(f"the peer sent a WebSocket frame with reserved opcode {opcode:#x}")
        if masked != self.expect_masked:
            raise ProtocolError(
                "a client sent an unmasked WebSocket frame" if self.expect_masked
                else "the server sent a masked WebSocket frame (servers must not mask)"
            )
        if n == 126:
            n = int.from_bytes(head[2:4], "big")
        elif n == 127:
            n = int.from_bytes(head[2:10], "big")
            if n >> 63:
                raise ProtocolError("the peer sent a WebSocket frame length with the top bit set")
        if opcode in _CONTROL_OPCODES:
            if not fin:
                raise ProtocolError("the peer fragmented a WebSocket control frame")
            if n > 125:
                raise ProtocolError(f"the peer sent a WebSocket control frame of {n} bytes (at most 125)")
        elif opcode == OP_CONTINUATION:
            if not self._msg_started:
                raise ProtocolError("the peer sent a WebSocket continuation frame with no message started")
        elif self._msg_started:
            raise ProtocolError("the peer began a new WebSocket message inside a fragmented one")
        self._opcode = opcode
        self._fin = fin
        self._key = head[size - 4 : size] if masked else None
        return size, n

    def _end_frame(self, out: list[bytes]) -> None:
        self._in_frame = False
        op = self._opcode
        if op in _DATA_OPCODES:
            if self._fin:
                if not self._skipping:
                    out.append(bytes(self._msg))
                self._msg = bytearray()
                self._msg_started = False
                self._skipping = False
            return
        payload = bytes(self._ctrl)
        self._ctrl = bytearray()
        if op == OP_PING:
            self.stats.keepalives += 1
            self._reply(OP_PONG, payload)
        elif op == OP_PONG:
            self.pongs += 1
        else:
            self._on_close(payload)

    def _on_close(self, payload: bytes) -> None:
        if len(payload) == 1:
            raise ProtocolError("the peer sent a WebSocket close frame with a 1-byte payload")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if code not in _SENDABLE_CLOSE and not 3000 <= code <= 4999:
                raise ProtocolError(f"the peer sent an invalid WebSocket close code {code}")
            self.close_code = code
            self.close_reason = payload[2:].decode("utf-8", "replace")
        self._reply(OP_CLOSE, payload[:2])
        self.closed = True


# -- the connection -----------------------------------------------------------------------

def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        if not os.path.exists(verify):
            raise ConfigError(f"verify={verify!r}: no such CA bundle file or directory")
        return ssl.create_default_context(cafile=verify)
    try:
        import certifi  # a dependency of requests: the same CA bundle as HTTP streams
    except ImportError:  # pragma: no cover - requests always brings it
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _public_url(url: str) -> str:
    """The URL without its query (which may hold a token), for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _upgrade_error(
    status: int, url: str, body: str, retry_after: float | None, what: str | None = None
) -> HTTPStatusError:
    where = f"instead of a WebSocket upgrade from {_public_url(url)}"
    return status_error(status, where, body, retry_after, what or _STATUS_HELP.get(status))


class WebSocketConnection:
    """An open WebSocket: raw bytes in (:meth:`recv`), frames out. Made by :func:`open_websocket`.

    ``recv`` and the ``send_*`` methods may be called from different threads; sends are
    serialised by a lock.
    """

    def __init__(self, sock: socket.socket, leftover: bytes, url: str) -> None:
        self._sock = sock
        self._leftover = leftover
        self._send_lock = threading.Lock()
        self._closed = False
        self.url = url

    def __repr__(self) -> str:
        return f"<WebSocketConnection {_public_url(self.url)}{' closed' if self._closed else ''}>"

    def recv(self, size: int = 65536) -> bytes:
        """The next raw bytes from the socket (frames, split anywhere); ``b""`` at the end.

        Socket timeouts propagate (the stream counts them as a stall).
        """
        if self._closed:
            return b""
        if self._leftover:
            data, self._leftover = self._leftover, b""
            return data
        return self._sock.recv(size)

    def send_raw(self, frame: bytes) -> None:
        """Send an already encoded frame (a framer's ``outgoing`` reply)."""
        with self._send_lock:
            self._sock.sendall(frame)

    def send_text(self, text: str) -> None:
        """Send one text message."""
        self.send_raw(client_frame(OP_TEXT, text.encode("utf-8")))

    def close(self, code: int = 1000) -> None:
        """Send a close frame (best effort) and close the socket; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._leftover = b""
        try:
            self._sock.settimeout(1.0)
            self.send_raw(client_frame(OP_CLOSE, close_payload(code)))
        except OSError:
            pass  # the connection is already gone: nothing to say goodbye to
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def __enter__(self) -> WebSocketConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(host: str, port: int, timeout: float, on_socket: Callable[[socket.socket], None] | None) -> socket.socket:
    last: OSError | None = None
    for family, kind, proto, _name, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            if on_socket is not None:
                on_socket(sock)  # from here on, Stream.disconnect() can cut it
            sock.settimeout(timeout)
            sock.connect(addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"could not resolve {host}")


def _read_head(sock: socket.socket, url: str) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError(f"{_public_url(url)} closed the connection during the WebSocket handshake")
        buf += data
        if len(buf) > _MAX_HEAD and b"\r\n\r\n" not in buf:
            raise ProtocolError(f"{_public_url(url)} sent a handshake answer over {_MAX_HEAD} bytes")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _read_error_body(sock: socket.socket, headers: Mapping[str, str], rest: bytes) -> str:
    try:
        length = int(headers.get("content-length", "-1"))
    except ValueError:
        length = -1
    want = _MAX_ERROR_BODY if length < 0 else min(length, _MAX_ERROR_BODY)
    body = rest
    try:
        while len(body) < want:
            data = sock.recv(want - len(body))
            if not data:
                break
            body += data
    except OSError:
        pass  # whatever arrived is enough to explain the error
    if headers.get("transfer-encoding", "").lower() == "chunked":
        size, _, after = body.partition(b"\r\n")
        try:
            body = after[: int(size.split(b";")[0], 16)]
        except ValueError:
            pass
    return body[:want].decode("utf-8", "replace")


def open_websocket(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 90.0,
    verify: bool | str = True,
    on_socket: Callable[[socket.socket], None] | None = None,
    describe: Callable[[int], str | None] | None = None,
) -> WebSocketConnection:
    """Connect to a ``ws://`` or ``wss://`` URL and complete the WebSocket handshake.

    Parameters
    ----------
    url : str
        ``wss://host[:port]/path?query`` (``ws://`` is for loopback test servers; callers
        check that, as :class:`streamkit.Stream` does).
    headers : mapping, optional
        Extra request headers (``Authorization``, ``User-Agent``...). Never logged.
    connect_timeout : float
        Seconds allowed for TCP, TLS and the handshake answer.
    read_timeout : float
        Socket timeout of :meth:`WebSocketConnection.recv` afterwards (a stall).
    verify : bool or str
        TLS verification like requests: ``True`` (certifi's CA bundle), ``False``, or the
        path of a CA bundle file or directory.
    on_socket : callable, optional
        Called with the socket as soon as it exists (and again with the TLS socket), so
        another thread can shut it down.
    describe : callable, optional
        ``describe(status) -> str | None``: what an HTTP status instead of the upgrade means
        for this service and what to do (the source's wording; None: a generic one).

    Returns
    -------
    WebSocketConnection

    Raises
    ------
    AuthError, RateLimited, HTTPStatusError
        The server answered the upgrade with 401/403, 420/429 or another status; the
        message holds the start of its body.
    ProtocolError
        The handshake answer was not a valid WebSocket upgrade (wrong accept key...).
    ConfigError
        A URL that is not ``ws://`` or ``wss://``.
    OSError
        Network failures and timeouts.

    Examples
    --------
    >>> from streamkit.testing import WebSocketTestServer
    >>> with WebSocketTestServer(messages=[b'{"n": 1}']) as server:
    ...     with open_websocket(server.url + "/subscribe") as ws:
    ...         framer = WebSocketFramer()
    ...         messages = []
    ...         while not messages:
    ...             messages += framer.feed(ws.recv())
    >>> messages
    [b'{"n": 1}']
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"{_public_url(url)!r} is not a ws:// or wss:// URL")
    secure = parts.scheme == "wss"
    host = parts.hostname
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sock = _connect(host, port, connect_timeout, on_socket)
    try:
        if secure:
            sock = _ssl_context(verify).wrap_socket(sock, server_hostname=host)
            if on_socket is not None:
                on_socket(sock)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        host_header = host if ":" not in host else f"[{host}]"
        if parts.port:
            host_header += f":{parts.port}"
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {host_header}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        extra = dict(headers or {})
        if not any(name.lower() == "user-agent" for name in extra):
            from ._version import __version__

            extra["User-Agent"] = f"streamkit/{__version__}"
        for name, value in extra.items():
            if "\r" in name + str(value) or "\n" in name + str(value):
                raise ConfigError(f"header {name!r} contains a line break")
            lines.append(f"{name}: {value}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        head, rest = _read_head(sock, url)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or not fields[1].isdigit():
            raise ProtocolError(
                f"{_public_url(url)} did not answer the WebSocket handshake with HTTP: {status_line[:80]!r}"
            )
        status = int(fields[1])
        resp_headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                resp_headers[name.strip().lower()] = value.strip()
        if status != 101:
            body = _read_error_body(sock, resp_headers, rest)
            retry = resp_headers.get("retry-after")
            retry_after = float(retry) if retry and retry.strip().isdigit() else None
            raise _upgrade_error(status, url, body, retry_after, describe(status) if describe else None)
        if resp_headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in resp_headers.get(
            "connection", ""
        ).lower():
            raise ProtocolError(
                f"{_public_url(url)} answered 101 without 'Upgrade: websocket' and 'Connection: Upgrade'"
            )
        if resp_headers.get("sec-websocket-accept") != accept_key(key):
            raise ProtocolError(
                f"{_public_url(url)} answered the WebSocket handshake with a wrong Sec-WebSocket-Accept: "
                "it is not a WebSocket server, or a proxy in between rewrote the answer"
            )
        if resp_headers.get("sec-websocket-extensions"):
            raise ProtocolError(
                f"{_public_url(url)} chose WebSocket extension(s) "
                f"{resp_headers['sec-websocket-extensions'][:60]!r} that the client never offered"
            )
        sock.settimeout(read_timeout)
    except BaseException:
        sock.close()
        raise
    log.debug("WebSocket open to %s", _public_url(url))
    return WebSocketConnection(sock, rest, url)
