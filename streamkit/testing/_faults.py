"""Faults a :class:`~streamkit.testing.StreamServer` can inject, one per connection.

A server holds a queue of :class:`Fault` objects.  Each request to a streaming
endpoint takes the next one; once the queue is empty, connections are normal.
HTTP faults answer at once, whatever the request.  Stream faults apply only to
a request the server accepts (good credentials and parameters): a rejected
request leaves the fault at the head of the queue for the next attempt.

``after`` always counts *statuses* completely sent on that connection (notices
and keep-alives do not count).

==============  ===============================================================
kind            what the connection does
==============  ===============================================================
``none``        nothing unusual: a normal connection (to space faults out)
``http``        answers ``code`` with a Twitter-like JSON error body, closes
``cut``         sends ``after`` statuses, half of the next message, then closes
                the TCP connection without the terminating chunk; the cut
                falls inside an HTTP chunk or between two, at random
``stall``       after ``after`` statuses sends nothing (no keep-alives) for
                ``seconds``, then closes without the terminating chunk
``garbage``     after ``after`` statuses sends one bad message, then goes on:
                ``malformed_json`` (truncated JSON), ``bad_length`` (a
                ``delimited=length`` prefix of half the true length; in newline
                framing the same as ``malformed_json``), ``invalid_utf8``,
                ``oversized`` (one ``size``-byte message without a newline)
``disconnect``  after ``after`` statuses sends a ``disconnect`` notice with
                ``code``, the terminating chunk, and closes
``end``         after ``after`` statuses sends the terminating chunk and closes
==============  ===============================================================

The status cut by ``cut`` and the statuses carried by ``garbage`` messages
have fresh ids that are never sent again and are not in ``server.sent``.  A
fault whose ``after`` is never reached (the server's ``statuses`` budget ran
out first) is never injected.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DISCONNECT_REASONS", "FAULT_KINDS", "GARBAGE_KINDS", "Fault", "FaultPlan", "FaultQueue"]

log = logging.getLogger("streamkit.testing")

FAULT_KINDS = ("http", "cut", "stall", "garbage", "disconnect", "end")
GARBAGE_KINDS = ("malformed_json", "bad_length", "invalid_utf8", "oversized")
DEFAULT_OVERSIZED = 8 * 1024 * 1024

#: Disconnect codes from Twitter's "streaming message types" documentation.
DISCONNECT_REASONS = {
    1: "Shutdown: the feed was shutdown (possibly a machine restart)",
    2: "Duplicate stream: the same endpoint was connected too many times",
    3: "Control request: control streams was used to close a stream",
    4: "Stall: the client was reading too slowly and was disconnected by the server",
    5: "Normal: the client appears to have initiated a disconnect",
    6: "Token revoked: an oauth token was revoked for a user",
    7: "Admin logout: the same credentials were used to connect a new stream",
    9: "Max message limit: the stream connected with a negative count parameter",
    10: "Stream exception: an internal issue disconnected the stream",
    11: "Broker stall: an internal issue disconnected the stream",
    12: "Shed load: the host the stream was connected to became overloaded",
}


@dataclass(frozen=True)
class Fault:
    """One injected fault; build it with the class-method constructors.

    Examples
    --------
    >>> Fault.cut(after=3)
    Fault(kind='cut', after=3)
    >>> Fault.http(420).code
    420
    """

    kind: str
    after: int = 0
    code: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    garbage_kind: str | None = None
    size: int = DEFAULT_OVERSIZED
    messages: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS + ("none", "inject"):
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {FAULT_KINDS}")
        if self.after < 0:
            raise ValueError(f"after must be >= 0, got {self.after}")
        if self.kind == "garbage" and self.garbage_kind not in GARBAGE_KINDS:
            raise ValueError(f"unknown garbage kind {self.garbage_kind!r}; use one of {GARBAGE_KINDS}")

    def __repr__(self) -> str:
        fields = [f"kind={self.kind!r}"]
        if self.kind != "http":
            fields.append(f"after={self.after}")
        if self.code is not None:
            fields.append(f"code={self.code}")
        if self.retry_after is not None:
            fields.append(f"retry_after={self.retry_after}")
        if self.kind == "stall":
            fields.append(f"seconds={self.seconds}")
        if self.garbage_kind is not None:
            fields.append(f"garbage_kind={self.garbage_kind!r}")
            if self.garbage_kind == "oversized":
                fields.append(f"size={self.size}")
        return f"Fault({', '.join(fields)})"

    @classmethod
    def none(cls) -> Fault:
        """A normal connection: takes one slot of the queue and injects nothing."""
        return cls("none")

    @classmethod
    def http(cls, code: int, retry_after: float | None = None) -> Fault:
        """Answer HTTP *code* (420, 429, 503, 401, ...) with a JSON error body, then close.

        *retry_after* (seconds) is sent as a ``Retry-After`` header when given.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"an HTTP fault needs a 4xx/5xx code, got {code}")
        return cls("http", code=code, retry_after=retry_after)

    @classmethod
    def cut(cls, after: int = 0) -> Fault:
        """Send *after* statuses, then half of the next message, then drop the connection."""
        return cls("cut", after=after)

    @classmethod
    def stall(cls, after: int = 0, seconds: float = 5.0) -> Fault:
        """After *after* statuses go silent (no keep-alives) for *seconds*, then close."""
        return cls("stall", after=after, seconds=seconds)

    @classmethod
    def garbage(cls, after: int = 0, kind: str = "malformed_json",
                size: int = DEFAULT_OVERSIZED) -> Fault:
        """After *after* statuses send one bad message of *kind*, then continue normally.

        *kind* is one of ``malformed_json``, ``bad_length``, ``invalid_utf8``,
        ``oversized`` (a *size*-byte message).
        """
        return cls("garbage", after=after, garbage_kind=kind, size=size)

    @classmethod
    def disconnect(cls, after: int = 0, code: int = 4) -> Fault:
        """After *after* statuses send a v1.1 ``disconnect`` notice and close cleanly."""
        return cls("disconnect", after=after, code=code)

    @classmethod
    def inject(cls, after: int = 0, messages: Sequence[Any] = ()) -> Fault:
        """After *after* statuses send the given messages, then continue normally.

        Each message is a dict (sent as JSON, e.g. a user-stream ``event``,
        ``direct_message`` or ``friends`` message) or raw ``bytes``. They are
        recorded in ``sent_notices`` (dicts only), never in ``sent``.

        Examples
        --------
        >>> Fault.inject(after=2, messages=[{"friends": [1, 2]}]).kind
        'inject'
        """
        return cls("inject", after=after, messages=tuple(messages))

    @classmethod
    def end(cls, after: int = 0) -> Fault:
        """After *after* statuses end the response cleanly (terminating chunk)."""
        return cls("end", after=after)


class FaultPlan:
    """Builders for lists of faults (soak and fuzz tests).

    Examples
    --------
    >>> plan = FaultPlan.random(seed=1, count=5, kinds=("cut", "end"), max_after=10)
    >>> len(plan), {f.kind for f in plan} <= {"cut", "end"}
    (5, True)
    >>> plan == FaultPlan.random(seed=1, count=5, kinds=("cut", "end"), max_after=10)
    True
    """

    @staticmethod
    def random(
        seed: int,
        count: int,
        kinds: Sequence[str] = FAULT_KINDS,
        max_after: int = 100,
        *,
        http_codes: Sequence[int] = (503, 500, 429, 420),
        stall_seconds: tuple[float, float] = (0.5, 2.0),
        garbage_kinds: Sequence[str] = GARBAGE_KINDS,
        oversized_size: int = DEFAULT_OVERSIZED,
    ) -> list[Fault]:
        """A reproducible list of *count* faults drawn from *kinds*.

        Parameters
        ----------
        seed, count : int
            The same seed gives the same plan.
        kinds : sequence of str
            Fault kinds to draw from (see :data:`FAULT_KINDS`, plus ``"none"``).
        max_after : int
            ``after`` is drawn uniformly from ``0..max_after``.
        http_codes, stall_seconds, garbage_kinds, oversized_size
            What ``http``, ``stall`` and ``garbage`` faults draw from.  Note that a
            client following Twitter's policy backs off 60 s after a 420/429.
        """
        for kind in kinds:
            if kind not in FAULT_KINDS + ("none",):
                raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        rng = random.Random(seed)
        plan = []
        for _ in range(count):
            kind = rng.choice(list(kinds))
            after = rng.randint(0, max_after)
            if kind == "http":
                plan.append(Fault.http(rng.choice(list(http_codes))))
            elif kind == "stall":
                plan.append(Fault.stall(after, round(rng.uniform(*stall_seconds), 3)))
            elif kind == "garbage":
                plan.append(Fault.garbage(after, rng.choice(list(garbage_kinds)),
                                          size=oversized_size))
            elif kind == "disconnect":
                plan.append(Fault.disconnect(after, rng.choice(sorted(DISCONNECT_REASONS))))
            elif kind == "none":
                plan.append(Fault.none())
            else:
                plan.append(Fault(kind, after=after))
        return plan


class FaultQueue:
    """The :class:`Fault` queue of a test server (one fault per connection attempt, in order)
    and the count of the faults it injected.

    Mixed into a server that holds ``self._lock``; the server calls :meth:`_init_faults` in
    its ``__init__``, :meth:`_take_fault` per connection and :meth:`_note_fault` when it
    injects one.
    """

    _lock: threading.Lock
    _faults: collections.deque[Fault]
    _faults_injected: collections.Counter[str]

    def _init_faults(self, faults: Iterable[Fault] | None) -> None:
        self._faults = collections.deque(faults or ())
        self._faults_injected = collections.Counter()

    @property
    def faults_injected(self) -> collections.Counter[str]:
        """How many faults of each kind were injected."""
        with self._lock:
            return collections.Counter(self._faults_injected)

    def add_faults(self, *faults: Fault) -> None:
        """Queue more faults for the next connection attempts."""
        with self._lock:
            self._faults.extend(faults)

    def _take_fault(self) -> Fault | None:
        """The next queued fault (None when the queue is empty)."""
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _note_fault(self, fault: Fault, conn: int) -> None:
        with self._lock:
            self._faults_injected[fault.kind] += 1
        log.debug("%s connection %d: injecting %r", type(self).__name__, conn, fault)
