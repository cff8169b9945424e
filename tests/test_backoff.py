"""Twitter's reconnect policy as a pure object."""

from __future__ import annotations

import pytest

from streamkit import Backoff


def test_network_errors_back_off_linearly_to_the_cap():
    b = Backoff()
    delays = [b.network_error() for _ in range(70)]
    assert delays[:4] == [0.25, 0.5, 0.75, 1.0]
    assert max(delays) == 16.0 and delays[-1] == 16.0
    assert delays[63] == 16.0 and delays[62] == 15.75


def test_first_reconnect_after_an_established_connection_is_immediate():
    b = Backoff()
    b.network_error()
    b.connected()
    assert b.network_error() == 0.0
    assert b.network_error() == 0.25


def test_http_errors_back_off_exponentially():
    b = Backoff()
    assert [b.http_error(503) for _ in range(8)] == [5, 10, 20, 40, 80, 160, 320, 320]
    assert b.consecutive_http_errors == 8


def test_rate_limits_back_off_from_a_minute():
    b = Backoff()
    assert [b.http_error(420) for _ in range(4)] == [60, 120, 240, 320]
    b.connected()
    assert b.http_error(429) == 60
    assert b.consecutive_http_errors == 1


def test_retry_after_is_respected():
    b = Backoff()
    assert b.http_error(429, retry_after=900) == 900


def test_connected_resets_every_sequence():
    b = Backoff(retry_time=1, snooze_time=0.1)
    b.http_error(500), b.http_error(500), b.network_error()
    b.connected()
    assert b.http_error(500) == 1


def test_clock_is_injectable():
    now = [100.0]
    b = Backoff(clock=lambda: now[0])
    b.http_error(503)
    assert b.until() == 105.0


def test_rejects_negative_settings():
    with pytest.raises(ValueError, match="snooze_time"):
        Backoff(snooze_time=-1)
