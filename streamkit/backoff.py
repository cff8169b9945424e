"""Twitter's documented reconnect policy, as a pure object.

The streaming documentation asks clients to reconnect like this:

* The first reconnect after an established connection drops is immediate.
* TCP/IP-level errors (refused, reset, cut mid-message, a stall): back off
  *linearly*, 250 ms more each attempt, up to 16 s.
* HTTP errors: back off *exponentially*, from 5 s, doubling up to 320 s.
* HTTP 420 / 429 (rate limited): exponentially from 60 s, doubling.

:class:`Backoff` only computes delays and remembers state; it never sleeps,
so it is tested with plain numbers. The clock is injectable so that the
stream can report "backing off until T".

Examples
--------
>>> b = Backoff()
>>> b.connected()            # a connection was established
>>> b.network_error()        # ... and dropped: reconnect at once
0.0
>>> b.network_error(), b.network_error()
(0.25, 0.5)
>>> b.http_error(503), b.http_error(503), b.http_error(420)
(5.0, 10.0, 60.0)
>>> b.http_error(429)
120.0
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Backoff"]

RATE_LIMIT_CODES = frozenset({420, 429})


class Backoff:
    """Reconnect delays following Twitter's streaming guidelines.

    Parameters
    ----------
    snooze_time : float
        Step of the linear back-off after network errors (seconds).
    snooze_time_cap : float
        Longest wait after network errors.
    retry_time : float
        First wait after an HTTP error.
    retry_time_cap : float
        Longest wait after HTTP errors (420/429 included unless
        ``retry_420`` is already larger).
    retry_420 : float
        First wait after HTTP 420 or 429.
    clock : callable, optional
        Monotonic clock, for :meth:`until`.

    Notes
    -----
    Each kind of error has its own sequence; a successful connection
    (:meth:`connected`) resets them all. ``consecutive_http_errors`` feeds
    the stream's ``retry_count``.
    """

    def __init__(
        self,
        *,
        snooze_time: float = 0.25,
        snooze_time_cap: float = 16.0,
        retry_time: float = 5.0,
        retry_time_cap: float = 320.0,
        retry_420: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (
            ("snooze_time", snooze_time),
            ("snooze_time_cap", snooze_time_cap),
            ("retry_time", retry_time),
            ("retry_time_cap", retry_time_cap),
            ("retry_420", retry_420),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        self.snooze_time = float(snooze_time)
        self.snooze_time_cap = float(snooze_time_cap)
        self.retry_time = float(retry_time)
        self.retry_time_cap = float(retry_time_cap)
        self.retry_420 = float(retry_420)
        self.clock = clock
        self.consecutive_http_errors = 0
        self._was_connected = False
        self._network_attempts = 0
        self._http_attempts = 0
        self._rate_attempts = 0
        self.last_delay = 0.0

    def connected(self) -> None:
        """Record an established connection: every sequence starts again."""
        self._was_connected = True
        self._network_attempts = 0
        self._http_attempts = 0
        self._rate_attempts = 0
        self.consecutive_http_errors = 0

    def network_error(self) -> float:
        """Delay before reconnecting after a network-level error or stall."""
        if self._was_connected:
            self._was_connected = False
            return self._set(0.0)
        self._network_attempts += 1
        return self._set(min(self.snooze_time * self._network_attempts, self.snooze_time_cap))

    def http_error(self, status_code: int, retry_after: float | None = None) -> float:
        """Delay before reconnecting after an HTTP error status.

        Parameters
        ----------
        status_code : int
            The status the server answered.
        retry_after : float, optional
            The server's ``Retry-After``; the delay is never shorter.
        """
        self._was_connected = False
        self.consecutive_http_errors += 1
        if status_code in RATE_LIMIT_CODES:
            delay = self.retry_420 * 2.0**self._rate_attempts
            cap = max(self.retry_time_cap, self.retry_420)
            self._rate_attempts += 1
        else:
            delay = self.retry_time * 2.0**self._http_attempts
            cap = self.retry_time_cap
            self._http_attempts += 1
        delay = min(delay, cap)
        if retry_after is not None and retry_after > delay:
            delay = float(retry_after)
        return self._set(delay)

    def until(self) -> float:
        """Clock time at which the last computed delay ends."""
        return self._since + self.last_delay

    def _set(self, delay: float) -> float:
        self.last_delay = delay
        self._since = self.clock()
        return delay

    _since = 0.0

    def __repr__(self) -> str:
        return (
            f"Backoff(snooze_time={self.snooze_time}, snooze_time_cap={self.snooze_time_cap}, "
            f"retry_time={self.retry_time}, retry_time_cap={self.retry_time_cap}, "
            f"retry_420={self.retry_420})"
        )
