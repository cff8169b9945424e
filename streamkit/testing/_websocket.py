"""The server side of WebSocket for local test servers: upgrade, frames, faults.

Pieces a WebSocket test server is built from (the Jetstream server uses them), and
:class:`WebSocketTestServer`, a small server of numbered messages with the faults a
WebSocket stream really shows: an HTTP error instead of the upgrade, a wrong accept key,
a TCP cut in the middle of a frame, a stall, a close frame, a ping the client must answer.

Examples
--------
>>> from streamkit._websocket import WebSocketFramer, open_websocket
>>> with WebSocketTestServer(messages=[b"one", b"two"], faults=[WsFault.http(429)]) as server:
...     try:
...         open_websocket(server.url)
...     except Exception as exc:
...         first = type(exc).__name__
...     with open_websocket(server.url) as ws:
...         f, got = WebSocketFramer(), []
...         while len(got) < 2:
...             got += f.feed(ws.recv())
>>> first, got, [r.status for r in server.requests]
('RateLimited', [b'one', b'two'], [429, 101])
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import parse_qs

from .._websocket import (
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    WebSocketFramer,
    accept_key,
    close_payload,
    encode_frame,
)
from ._httpd import REASONS, BadRequest, Request, http_response, read_request
from ._loopback import LoopbackServer

__all__ = [
    "WS_FAULT_KINDS",
    "ServerWebSocket",
    "WebSocketTestServer",
    "WsFault",
    "WsRequestRecord",
    "accept_upgrade",
    "http_error",
    "server_frame",
    "upgrade_problem",
]

log = logging.getLogger("streamkit.testing")

WS_FAULT_KINDS = ("none", "http", "bad_accept", "cut", "stall", "close", "end", "ping")


def server_frame(payload: bytes | str, *, opcode: int | None = None, fin: bool = True) -> bytes:
    """One unmasked frame as a server sends it (text for ``str``, binary for ``bytes``
    unless *opcode* says otherwise).

    Examples
    --------
    >>> server_frame("hi")
    b'\\x81\\x02hi'
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
        opcode = OP_TEXT if opcode is None else opcode
    return encode_frame(OP_TEXT if opcode is None else opcode, payload, fin=fin)


def http_error(status: int, message: str = "", *, headers: Mapping[str, str] | None = None) -> bytes:
    """A complete plain-text HTTP/1.1 error response (instead of the upgrade), closing.

    Examples
    --------
    >>> http_error(429, "slow down").split(b"\\r\\n")[0]
    b'HTTP/1.1 429 Too Many Requests'
    """
    body = (message or REASONS.get(status, "Error")).encode("utf-8")
    return http_response(status, body, "text/plain; charset=utf-8", headers)


def upgrade_problem(req: Request) -> tuple[int, str] | None:
    """Why *req* is not a valid WebSocket upgrade (status, message), or ``None``."""
    h = req.headers
    if req.method != "GET":
        return 405, "a WebSocket upgrade must be a GET"
    if h.get("upgrade", "").lower() != "websocket":
        return 426, "this endpoint speaks WebSocket only (Upgrade: websocket)"
    if "upgrade" not in h.get("connection", "").lower():
        return 400, "missing 'Connection: Upgrade'"
    if h.get("sec-websocket-version") != "13":
        return 426, "Sec-WebSocket-Version must be 13"
    if not h.get("sec-websocket-key"):
        return 400, "missing Sec-WebSocket-Key"
    return None


def accept_upgrade(
    sock: socket.socket, req: Request, *, bad_accept: bool = False, headers: Mapping[str, str] | None = None
) -> ServerWebSocket | None:
    """Answer *req* with ``101 Switching Protocols``; ``None`` (after an error answer) when
    it is not a valid upgrade. ``bad_accept`` answers a wrong ``Sec-WebSocket-Accept``."""
    problem = upgrade_problem(req)
    if problem is not None:
        sock.sendall(http_error(*problem))
        return None
    accept = accept_key(req.headers["sec-websocket-key"])
    if bad_accept:
        accept = accept_key("not-the-key-the-client-sent")
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
        "server: streamkit-testing",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return ServerWebSocket(sock)


class ServerWebSocket:
    """A server's end of an upgraded connection: send frames, read the client's (masked) ones.

    Attributes
    ----------
    received : list of bytes
        Data messages the client sent.
    pongs : int
        Pongs the client sent (answers to :meth:`ping`).
    client_closed : bool
        The client sent a close frame (or the connection ended).
    close_code : int or None
        The client's close code.
    """

    def __init__(self, sock: socket.socket, leftover: bytes = b"") -> None:
        self.sock = sock
        self.framer = WebSocketFramer(expect_masked=True)
        self.received: list[bytes] = []
        self.client_closed = False
        self.pings_sent = 0
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        if leftover:
            self._feed(leftover)

    @property
    def pongs(self) -> int:
        return self.framer.pongs

    @property
    def close_code(self) -> int | None:
        return self.framer.close_code

    def send(self, payload: bytes | str, *, opcode: int | None = None) -> None:
        """One message in one frame (text for ``str``; ``bytes`` go as text unless *opcode*)."""
        self.sock.sendall(server_frame(payload, opcode=OP_TEXT if opcode is None else opcode))

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are: frames, several frames, or part of one."""
        self.sock.sendall(data)

    def send_fragmented(self, payload: bytes, pieces: int, *, ping_between: bool = False) -> None:
        """One text message in *pieces* frames (a ping between fragments if asked)."""
        step = max(1, -(-len(payload) // pieces))
        chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        out = b""
        for i, chunk in enumerate(chunks):
            opcode = OP_TEXT if i == 0 else OP_CONTINUATION
            out += encode_frame(opcode, chunk, fin=i == len(chunks) - 1)
            if ping_between and i == 0 and len(chunks) > 1:
                out += encode_frame(OP_PING, b"between")
                self.pings_sent += 1
        self.sock.sendall(out)

    def ping(self, payload: bytes = b"streamkit") -> None:
        """Send a ping; the client's pong shows in :attr:`pongs` after :meth:`poll`."""
        self.sock.sendall(encode_frame(OP_PING, payload))
        self.pings_sent += 1

    def close(self, code: int = 1000, reason: str = "", *, wait: float = 1.0) -> None:
        """Send a close frame and wait up to *wait* seconds for the client's close reply."""
        try:
            self.sock.sendall(encode_frame(OP_CLOSE, close_payload(code, reason)))
        except OSError:
            return
        deadline = time.monotonic() + wait
        while not self.client_closed and time.monotonic() < deadline:
            if not self.poll(0.05):
                break

    def poll(self, timeout: float = 0.0) -> bool:
        """Read what the client sent within *timeout*; False once the connection is over."""
        if self.client_closed:
            return False
        if not self._poller.poll(max(0, int(timeout * 1000))):
            return True
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return True
        if not data:
            self.client_closed = True
            return False
        self._feed(data)
        return not self.client_closed

    def _feed(self, data: bytes) -> None:
        self.received += self.framer.feed(data)
        for frame in self.framer.outgoing:
            try:
                self.sock.sendall(frame)
            except OSError:
                break
        self.framer.outgoing.clear()
        if self.framer.closed:
            self.client_closed = True


@dataclass(frozen=True)
class WsFault:
    """One fault for one connection of a WebSocket test server (the next in its queue).

    ``after`` counts data messages completely sent on that connection.

    ==============  ============================================================
    kind            what the connection does
    ==============  ============================================================
    ``none``        nothing unusual (to space faults out)
    ``http``        answers HTTP ``code`` (with ``Retry-After`` if given) instead
                    of the upgrade
    ``bad_accept``  answers 101 with a wrong ``Sec-WebSocket-Accept``
    ``cut``         after ``after`` messages sends half of the next frame and
                    closes the TCP connection (the message is never resent as
                    sent: it is not in the record)
    ``stall``       after ``after`` messages sends nothing for ``seconds``, then
                    closes the TCP connection
    ``close``       after ``after`` messages sends a close frame with ``code``
    ``end``         after ``after`` messages closes TCP without a close frame
    ``ping``        after ``after`` messages sends a ping and goes on
    ==============  ============================================================

    Examples
    --------
    >>> WsFault.cut(after=3)
    WsFault(kind='cut', after=3, code=None, retry_after=None, seconds=0.0)
    """

    kind: str
    after: int = 0
    code: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in WS_FAULT_KINDS:
            raise ValueError(f"unknown WebSocket fault {self.kind!r}; use one of {WS_FAULT_KINDS}")
        if self.after < 0:
            raise ValueError(f"after must be >= 0, got {self.after}")

    @classmethod
    def none(cls) -> WsFault:
        return cls("none")

    @classmethod
    def http(cls, code: int, retry_after: float | None = None) -> WsFault:
        return cls("http", code=code, retry_after=retry_after)

    @classmethod
    def bad_accept(cls) -> WsFault:
        return cls("bad_accept")

    @classmethod
    def cut(cls, after: int = 0) -> WsFault:
        return cls("cut", after=after)

    @classmethod
    def stall(cls, after: int = 0, seconds: float = 2.0) -> WsFault:
        return cls("stall", after=after, seconds=seconds)

    @classmethod
    def close(cls, after: int = 0, code: int = 1001) -> WsFault:
        return cls("close", after=after, code=code)

    @classmethod
    def end(cls, after: int = 0) -> WsFault:
        return cls("end", after=after)

    @classmethod
    def ping(cls, after: int = 0) -> WsFault:
        return cls("ping", after=after)


class WsRequestRecord(NamedTuple):
    """One upgrade request the server answered (``time`` is ``time.monotonic()``)."""

    time: float
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    status: int


class FaultQueue:
    """Faults taken one per connection, thread-safe."""

    def __init__(self, faults: Iterable[WsFault]) -> None:
        self._faults = list(faults)
        self._lock = threading.Lock()

    def take(self) -> WsFault:
        with self._lock:
            return self._faults.pop(0) if self._faults else WsFault.none()

    def add(self, *faults: WsFault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)


class WebSocketTestServer(LoopbackServer):
    """A WebSocket server of numbered messages, resumable with ``?from=N``, with faults.

    Every connection sends ``messages[from:]`` (one frame each), then stays open sending
    nothing except a ping every ``ping_every`` seconds, until the client leaves or the
    server stops.

    Parameters
    ----------
    messages : sequence of bytes
        The messages, in order.
    faults : iterable of WsFault
        One per connection, in order; then normal connections.
    ping_every : float, optional
        Ping idle clients this often.

    Attributes
    ----------
    sent : list of int
        Indexes of the messages completely sent, in send order, over all connections.
    requests : list of WsRequestRecord
    pongs : int
        Pongs received from clients, over all connections.
    received : list of bytes
        Data messages clients sent.
    """

    scheme = "ws"

    def __init__(
        self,
        *,
        messages: Sequence[bytes] = (),
        faults: Iterable[WsFault] = (),
        ping_every: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.messages = list(messages)
        self.faults = FaultQueue(faults)
        self.ping_every = ping_every
        self.sent: list[int] = []
        self.requests: list[WsRequestRecord] = []
        self.pongs = 0
        self.received: list[bytes] = []
        self.client_close_codes: list[int | None] = []

    def _record(self, req: Request, status: int) -> None:
        params = parse_qs(req.query, keep_blank_values=True)
        with self._lock:
            self.requests.append(WsRequestRecord(time.monotonic(), req.path, params, dict(req.headers), status))

    def _handle(self, sock: socket.socket, index: int) -> None:
        try:
            req = read_request(sock)
        except BadRequest as exc:
            sock.sendall(http_error(exc.status, exc.message))
            return
        if req is None:
            return
        fault = self.faults.take()
        if fault.kind == "http":
            status = fault.code or 500
            self._record(req, status)
            extra = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else None
            sock.sendall(http_error(status, f"test server fault: HTTP {status}", headers=extra))
            return
        problem = upgrade_problem(req)
        self._record(req, problem[0] if problem else 101)
        ws = accept_upgrade(sock, req, bad_accept=fault.kind == "bad_accept")
        if ws is None or fault.kind == "bad_accept":
            return
        try:
            self._serve(ws, req, fault)
        finally:
            with self._lock:
                self.pongs += ws.pongs
                self.received += ws.received
                if ws.client_closed:
                    self.client_close_codes.append(ws.close_code)

    def _serve(self, ws: ServerWebSocket, req: Request, fault: WsFault) -> None:
        params = parse_qs(req.query)
        start = int(params.get("from", ["0"])[0])
        count = 0
        for i in range(start, len(self.messages)):
            if self._stop_event.is_set() or not ws.poll(0.0):
                return
            if fault.kind != "none" and count == fault.after and self._inject(ws, fault, i):
                return
            ws.send(self.messages[i])
            count += 1
            with self._lock:
                self.sent.append(i)
        if fault.kind != "none" and count == fault.after and self._inject(ws, fault, None):
            return
        last_ping = time.monotonic()
        while not self._stop_event.is_set():
            if not ws.poll(0.05):
                return
            if self.ping_every is not None and time.monotonic() - last_ping >= self.ping_every:
                ws.ping()
                last_ping = time.monotonic()

    def _inject(self, ws: ServerWebSocket, fault: WsFault, next_index: int | None) -> bool:
        """Apply *fault*; True when the connection is over."""
        if fault.kind == "ping":
            ws.ping()
            return False
        if fault.kind == "cut":
            payload = self.messages[next_index] if next_index is not None else b'{"cut": true}'
            frame = server_frame(payload)
            ws.send_raw(frame[: max(1, len(frame) // 2)])
        elif fault.kind == "stall":
            self._stop_event.wait(fault.seconds)
        elif fault.kind == "close":
            ws.close(fault.code or 1001, "test server fault")
        ws.poll(0.1)  # take in what the client sent before the cut (its subscribe message)
        _hard_close(ws.sock)
        return True


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

