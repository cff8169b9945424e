"""Parse Twitter's ``created_at`` format (``Wed Oct 10 20:19:24 +0000 2018``) to UTC µs.

Two implementations of one rule, kept in step by a property test: a scalar one for the odd
notice, and a vectorised one for whole columns. The vectorised one reads the fixed-width
strings straight out of an Arrow buffer with numpy, about 3x faster than Arrow's own
``strptime`` and, unlike it, independent of the C library's locale (``%a``/``%b``).

A value is accepted only when it is exactly that shape: a day and month abbreviation in
English, a real calendar date in years 1-9999, ``HH:MM:SS`` with seconds < 60, and a
``+HHMM``/``-HHMM`` offset with hours < 24 and minutes < 60. Anything else is null.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["TIMESTAMP_TYPE", "parse_created_at", "parse_created_at_array"]

#: The Arrow type of every timestamp column.
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

_MONTH_NAMES = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_DAY_NAMES = "Mon Tue Wed Thu Fri Sat Sun".split()
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_DAYS = frozenset(_DAY_NAMES)
_EPOCH = _dt.datetime(1970, 1, 1)
_US = _dt.timedelta(microseconds=1)


def parse_created_at(s: Any) -> int | None:
    """Microseconds since the epoch (UTC) of one ``created_at`` string, or None.

    Examples
    --------
    >>> parse_created_at("Wed Oct 10 20:19:24 +0000 2018")
    1539202764000000
    >>> parse_created_at("Wed Oct 10 22:19:24 +0200 2018"), parse_created_at("yesterday")
    (1539202764000000, None)
    """
    if type(s) is not str or len(s) != 30 or not s.isascii():
        return None
    if (
        s[:3] not in _DAYS
        or s[4:7] not in _MONTHS
        or s[3] + s[7] + s[10] + s[13] + s[16] + s[19] + s[25] != "   ::  "
        or s[20] not in "+-"
    ):
        return None
    digits = s[8:10] + s[11:13] + s[14:16] + s[17:19] + s[21:25] + s[26:30]
    if not digits.isdigit():
        return None
    tzh, tzm = int(s[21:23]), int(s[23:25])
    if tzh > 23 or tzm > 59:
        return None
    try:
        dt = _dt.datetime(
            int(s[26:30]), _MONTHS[s[4:7]], int(s[8:10]),
            int(s[11:13]), int(s[14:16]), int(s[17:19]),
        )  # fmt: skip
    except ValueError:  # no such date or time
        return None
    offset = (tzh * 60 + tzm) * 60_000_000
    us = (dt - _EPOCH) // _US
    return us - offset if s[20] == "+" else us + offset


def _key3(m: np.ndarray, i: int) -> np.ndarray:
    return (m[:, i].astype(np.int32) << 16) | (m[:, i + 1].astype(np.int32) << 8) | m[:, i + 2]


def _keys(names: list[str]) -> np.ndarray:
    return np.array([(ord(n[0]) << 16) | (ord(n[1]) << 8) | ord(n[2]) for n in names], np.int32)


_MONTH_KEYS = _keys(_MONTH_NAMES)
_MONTH_SORT = np.argsort(_MONTH_KEYS)
_MONTH_KEYS_SORTED = _MONTH_KEYS[_MONTH_SORT]
_MONTH_NUM_SORTED = (_MONTH_SORT + 1).astype(np.int64)
_DAY_KEYS_SORTED = np.sort(_keys(_DAY_NAMES))
_MDAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
# positions of: day(2) hour(2) minute(2) second(2) tz(4) year(4)
_DIGIT_POS = np.array([8, 9, 11, 12, 14, 15, 17, 18, 21, 22, 23, 24, 26, 27, 28, 29])
_SEP_POS = np.array([3, 7, 10, 13, 16, 19, 25])
_SEP_VAL = np.array([ord(c) for c in "   ::  "], dtype=np.uint8)
_WIDTH = np.arange(30)


def parse_created_at_array(values: Sequence[Any] | pa.Array) -> pa.Array:
    """A ``timestamp[us, UTC]`` array from ``created_at`` strings; invalid values are null.

    Examples
    --------
    >>> parse_created_at_array(["Wed Oct 10 20:19:24 +0000 2018", None, "x"]).to_pylist()[1:]
    [None, None]
    """
    arr = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    n = len(arr)
    if n == 0:
        return pa.array([], TIMESTAMP_TYPE)
    _, obuf, dbuf = arr.buffers()
    offsets = np.frombuffer(obuf, dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data = np.frombuffer(dbuf, dtype=np.uint8) if dbuf is not None else np.empty(0, np.uint8)
    ok = np.diff(offsets) == 30
    if arr.null_count:
        ok &= arr.is_valid().to_numpy(zero_copy_only=False)
    # Rows that are not 30 bytes read 30 zero bytes appended past the data instead.
    data = np.concatenate([data, np.zeros(30, np.uint8)])
    starts = np.where(ok, offsets[:-1], len(data) - 30)
    m = data[starts[:, None] + _WIDTH]

    ok &= (m[:, _SEP_POS] == _SEP_VAL).all(axis=1)
    sign = m[:, 20]
    ok &= (sign == ord("+")) | (sign == ord("-"))
    d = m[:, _DIGIT_POS].astype(np.int64) - ord("0")
    ok &= ((d >= 0) & (d <= 9)).all(axis=1)
    key = _key3(m, 0)
    ok &= _DAY_KEYS_SORTED[np.searchsorted(_DAY_KEYS_SORTED, key).clip(0, 6)] == key
    key = _key3(m, 4)
    mi = np.searchsorted(_MONTH_KEYS_SORTED, key).clip(0, 11)
    ok &= _MONTH_KEYS_SORTED[mi] == key
    month = _MONTH_NUM_SORTED[mi]

    day = d[:, 0] * 10 + d[:, 1]
    hh = d[:, 2] * 10 + d[:, 3]
    mm = d[:, 4] * 10 + d[:, 5]
    ss = d[:, 6] * 10 + d[:, 7]
    tzh = d[:, 8] * 10 + d[:, 9]
    tzm = d[:, 10] * 10 + d[:, 11]
    year = d[:, 12] * 1000 + d[:, 13] * 100 + d[:, 14] * 10 + d[:, 15]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= (year >= 1) & (day >= 1) & (day <= _MDAYS[month] + (leap & (month == 2)))
    ok &= (hh < 24) & (mm < 60) & (ss < 60) & (tzh < 24) & (tzm < 60)

    # days since the epoch of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    offset = (tzh * 3600 + tzm * 60) * np.where(sign == ord("-"), -1, 1)
    us = (days * 86400 + hh * 3600 + mm * 60 + ss - offset) * 1_000_000
    return pa.array(us, TIMESTAMP_TYPE, mask=~ok)
