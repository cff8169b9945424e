"""A real Twitter v1.1 streaming server on 127.0.0.1, with fault injection.

It speaks HTTP/1.1 on a plain socket (one thread per connection, named
``streamkit-testing-*``), verifies OAuth 1.0a signatures, validates filter
parameters as Twitter did, and streams generated statuses that match the
filter, interleaved with notices and keep-alives, in newline or
``delimited=length`` framing, inside ``Transfer-Encoding: chunked``.

Endpoints: ``POST /1.1/statuses/filter.json`` (form body and/or query string)
and ``GET /1.1/statuses/sample.json``.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
import zlib
from array import array
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from ._faults import Fault, FaultQueue
from ._generate import TWEPOCH_MS, generate_statuses
from ._httpd import BadRequest, Request, error_response, read_request, request_params, verify_auth
from ._loopback import LoopbackServer
from ._match import ParamError, StreamFilter
from ._render import Template, TemplatePool, make_template
from ._session import Session

__all__ = ["FILTER_PATH", "SAMPLE_PATH", "TEST_CREDENTIALS", "RequestRecord", "StreamServer"]

log = logging.getLogger("streamkit.testing")

FILTER_PATH = "/1.1/statuses/filter.json"
SAMPLE_PATH = "/1.1/statuses/sample.json"
_ENDPOINTS = {FILTER_PATH: ("filter", "POST"), SAMPLE_PATH: ("sample", "GET")}

#: Obviously fake credentials the server accepts by default.
TEST_CREDENTIALS: Mapping[str, str] = MappingProxyType({
    "consumer_key": "test-consumer-key",
    "consumer_secret": "test-consumer-secret-not-a-real-secret",
    "access_token": "1234567890-test-access-token",
    "access_token_secret": "test-access-token-secret-not-a-real-secret",
    "bearer_token": "AAAA-test-bearer-token-not-a-real-token",
})


class RequestRecord(NamedTuple):
    """One request the server answered (``time`` is ``time.monotonic()``)."""

    time: float
    method: str
    path: str
    params: dict[str, list[str]]
    status: int


class _IdClock:
    """Snowflake ids from the wall clock: unique, increasing, at most 4096 per ms."""

    def __init__(self, worker: int) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._seq = 0
        self._worker = (worker & 0x3FF) << 12

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        with self._lock:
            now = int(time.time() * 1000)
            if now > self._ms:
                self._ms, self._seq = now, 0
            while n > 0:
                if self._seq >= 4096:  # ran ahead of the clock: borrow the next ms
                    self._ms += 1
                    self._seq = 0
                k = min(n, 4096 - self._seq)
                base = ((self._ms - TWEPOCH_MS) << 22) | self._worker
                out.extend(range(base | self._seq, (base | self._seq) + k))
                self._seq += k
                n -= k
        return out


class StreamServer(FaultQueue, LoopbackServer):
    """A local Twitter v1.1 streaming endpoint for tests, demos and benchmarks.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        Loopback only: the server is for tests on this machine.
    port : int, default 0
        0 picks a free port; read it back from :attr:`url`.
    rate : float or None
        Statuses per second per connection; ``None`` sends as fast as the client reads.
    statuses : int or None
        Statuses to send completely over the server's lifetime, across connections;
        ``None`` is endless.  Afterwards connections get keep-alives only.
    keepalive_interval : float, default 30.0
        Seconds of silence after which a ``\\r\\n`` keep-alive is sent.
    notices : float, default 0.02
        Share of messages that are notices (delete, limit, scrub_geo, withheld, warning).
    seed : int, default 0
        Seeds the generated content.
    faults : iterable of Fault, optional
        Consumed one per connection attempt, in order (see :class:`Fault`).
    credentials : mapping, default TEST_CREDENTIALS
        consumer_key/consumer_secret/access_token/access_token_secret (and bearer_token).
    check_auth : bool, default True
        Verify the OAuth 1.0a signature (or bearer token); ``False`` accepts anything.
    chunk_bytes : int, default 16384
        HTTP chunk size; chunk borders do not follow message borders.
    match_fraction : float, default 0.9
        Share of generated statuses built to match a filter; the rest is dropped.
    record_payloads : bool, default False
        Keep the exact JSON bytes of every sent status in :attr:`sent_payloads`.
    pool_size : int, default 500
        Statuses generated and pre-rendered per distinct filter (each goes out with a
        fresh id every time). The first client of a filter waits while they are built
        (about 0.5 ms each), so a big pool can look like a stall to a short ``timeout``;
        :meth:`prepare` builds them ahead.
    record_sent : bool, default True
        Keep :attr:`sent` and :attr:`sent_notices`.  A long-running server (the
        ``streamkit serve`` command) can turn this off; :attr:`sent_count` still counts.

    Examples
    --------
    >>> import requests
    >>> with StreamServer(statuses=3, check_auth=False, seed=1) as server:
    ...     with requests.get(server.url + "/1.1/statuses/sample.json", stream=True) as r:
    ...         lines = r.iter_lines()
    ...         first = next(line for line in lines if line.startswith(b'{"created_at"'))
    ...     server.wait_sent(3, timeout=5)
    True
    >>> len(server.sent), r.status_code
    (3, 200)
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, rate: float | None = None,
                 statuses: int | None = None, keepalive_interval: float = 30.0,
                 notices: float = 0.02, seed: int = 0, faults: Any = None,
                 credentials: Mapping[str, str] = TEST_CREDENTIALS, check_auth: bool = True,
                 chunk_bytes: int = 16384, match_fraction: float = 0.9,
                 record_payloads: bool = False, pool_size: int = 500,
                 record_sent: bool = True) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 or None, got {rate}")
        if statuses is not None and statuses < 0:
            raise ValueError(f"statuses must be >= 0 or None, got {statuses}")
        if keepalive_interval <= 0:
            raise ValueError(f"keepalive_interval must be > 0, got {keepalive_interval}")
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
        if not 0.0 <= notices <= 0.5:
            raise ValueError(f"notices must be in [0, 0.5], got {notices}")
        if not 0.0 <= match_fraction <= 1.0:
            raise ValueError(f"match_fraction must be in [0, 1], got {match_fraction}")
        missing = {"consumer_key", "consumer_secret", "access_token",
                   "access_token_secret"} - set(credentials)
        if check_auth and missing:
            raise ValueError(f"credentials lack {sorted(missing)}")
        super().__init__(host=host, port=port)
        self.rate = rate
        self.statuses = statuses
        self.keepalive_interval = keepalive_interval
        self.notices = notices
        self.seed = seed
        self.check_auth = check_auth
        self.chunk_bytes = chunk_bytes
        self.match_fraction = match_fraction
        self.record_payloads = record_payloads
        self.pool_size = pool_size
        self.record_sent = record_sent
        self._credentials = dict(credentials)
        self._init_faults(faults)
        self._sent = array("q")  # 8 bytes an id: benchmarks send millions
        self._sent_count = 0
        self._payloads: dict[int, bytes] = {}
        self._notices: list[dict[str, Any]] = []
        self._requests: list[RequestRecord] = []
        self._dropped = 0
        self._budget = statuses
        self._recent: list[tuple[int, int]] = []
        self._recent_pos = 0
        self._ids = _IdClock(worker=zlib.crc32(str(seed).encode()) & 0x3FF)
        self._pools: dict[Any, TemplatePool] = {}
        self._pool_lock = threading.Lock()
        self._fallback: Template | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<StreamServer {state} url={self.url!r} sent={self._sent_count}>"

    def auth(self) -> Any:
        """An :class:`streamkit.OAuthHandler` with this server's test credentials.

        Examples
        --------
        >>> StreamServer().auth()
        OAuthHandler(consumer_key='test…', access_token='1234…', secrets hidden)
        """
        from streamkit.auth import OAuthHandler

        c = self._credentials
        handler = OAuthHandler(c["consumer_key"], c["consumer_secret"])
        handler.set_access_token(c["access_token"], c["access_token_secret"])
        return handler

    # -- observations (thread-safe copies) --------------------------------------------------
    @property
    def sent(self) -> list[int]:
        """Ids of statuses completely handed to a socket, in order."""
        with self._lock:
            return list(self._sent)

    @property
    def sent_count(self) -> int:
        """How many statuses were sent completely (also with ``record_sent=False``)."""
        with self._lock:
            return self._sent_count

    @property
    def sent_payloads(self) -> dict[int, bytes]:
        """id -> exact JSON bytes sent (only with ``record_payloads=True``)."""
        with self._lock:
            return dict(self._payloads)

    @property
    def sent_notices(self) -> list[dict[str, Any]]:
        """Notices completely sent (delete, limit, ..., disconnect), decoded."""
        with self._lock:
            return list(self._notices)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def dropped(self) -> int:
        """Generated statuses skipped because they did not match the connection's filter."""
        with self._lock:
            return self._dropped

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not consumed yet."""
        with self._lock:
            return list(self._faults)

    def wait_sent(self, n: int, timeout: float | None = None) -> bool:
        """Block until at least *n* statuses were sent completely; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._sent_count >= n or self._stop_event.is_set(), timeout
            ) and self._sent_count >= n

    # -- used by sessions -----------------------------------------------------------------
    def _reserve(self, n: int) -> int:
        if self._budget is None:
            return n
        with self._lock:
            k = min(n, self._budget)
            self._budget -= k
            return k

    def _refund(self, n: int) -> None:
        if self._budget is not None:
            with self._lock:
                self._budget += n

    def _commit(self, ids: list[int], uids: list[int], bodies: list[bytes] | None,
                notices: list[dict[str, Any]], dropped: int) -> None:
        with self._cond:
            self._sent_count += len(ids)
            if self.record_sent:
                self._sent.extend(ids)
                self._notices.extend(notices)
            if bodies is not None:
                self._payloads.update(zip(ids, bodies, strict=True))
            self._dropped += dropped
            for pair in zip(ids[-64:], uids[-64:], strict=True):
                if len(self._recent) < 4096:
                    self._recent.append(pair)
                else:
                    self._recent[self._recent_pos] = pair
                    self._recent_pos = (self._recent_pos + 1) % 4096
            if ids:
                self._cond.notify_all()

    def _recent_pick(self, rng: random.Random) -> tuple[int, int] | None:
        with self._lock:
            return rng.choice(self._recent) if self._recent else None

    def _pool_for(self, flt: StreamFilter) -> TemplatePool:
        key = flt.key()
        with self._pool_lock:
            pool = self._pools.get(key)
            if pool is None:
                seed = self.seed ^ zlib.crc32(repr(key).encode())
                # A finite stream needs no more templates than statuses (and the first
                # client waits for this, so a big pool would look like a stall).
                size = self.pool_size if self.statuses is None else max(1, min(self.pool_size, self.statuses))
                pool = TemplatePool.build(flt, seed=seed, size=size,
                                          match_fraction=self.match_fraction)
                self._pools[key] = pool
            return pool

    def prepare(self, **filter: Any) -> None:
        """Build the statuses for this filter now, so the first client does not wait for them.

        ``filter`` is as for :meth:`streamkit.Stream.filter` (``track=``, ``follow=``...);
        none means the sample stream. Building a large pool takes a moment, which a
        client with a short stall timeout would otherwise count as a stall.
        """
        from ._match import StreamFilter

        self._pool_for(StreamFilter.from_options(**filter))

    def _fallback_template(self) -> Template:
        if self._fallback is None:
            self._fallback = make_template(generate_statuses(1, seed=self.seed)[0])
        return self._fallback

    # -- connections ---------------------------------------------------------------------
    def _record(self, req: Request | None, params: dict[str, list[str]], status: int) -> None:
        rec = RequestRecord(req.received if req else time.monotonic(),
                            req.method if req else "", req.path if req else "", params, status)
        with self._lock:
            self._requests.append(rec)

    def _answer(self, sock: socket.socket, req: Request | None, params: dict[str, list[str]],
                status: int, message: str | None = None,
                headers: Mapping[str, str] | None = None) -> None:
        self._record(req, params, status)
        sock.sendall(error_response(status, message, headers))

    def _handle(self, sock: socket.socket, index: int) -> None:
        try:
            req = read_request(sock)
        except BadRequest as exc:
            self._answer(sock, None, {}, exc.status, exc.message)
            return
        if req is None:
            return
        params = request_params(req)
        endpoint = _ENDPOINTS.get(req.path)
        if endpoint is None:
            self._answer(sock, req, params, 404)
            return
        name, method = endpoint
        if req.method != method:
            self._answer(sock, req, params, 405, f"{req.path} takes {method}, not {req.method}.",
                         {"allow": method})
            return
        fault = self._take_fault()
        if fault is not None and fault.kind == "http":
            assert fault.code is not None
            self._note_fault(fault, index)
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            self._answer(sock, req, params, fault.code, headers=headers)
            return
        refused: tuple[int, str | None] | None = None
        why = verify_auth(req, self._credentials) if self.check_auth else None
        if why is not None:
            log.debug("connection %d: 401 (%s)", index, why)
            refused = (401, None)
        else:
            try:
                flt = StreamFilter.from_params(params, sample=name == "sample")
            except ParamError as exc:
                refused = (exc.status, exc.message)
        if refused is not None:
            if fault is not None:  # the stream never started: keep the fault for the next one
                with self._lock:
                    self._faults.appendleft(fault)
            self._answer(sock, req, params, *refused)
            return
        self._record(req, params, 200)
        sock.settimeout(None)
        delimited = (params.get("delimited") or [""])[-1] == "length"
        stall_warnings = (params.get("stall_warnings") or [""])[-1].lower() in ("true", "1", "t")
        Session(self, sock, flt, endpoint=name, delimited=delimited,
                stall_warnings=stall_warnings, fault=fault, conn_index=index).run()

