"""Classify decoded v1.1 messages and flatten the non-status ones into event rows.

Notices are rare next to statuses, so they take the lenient path: an untyped decode and
type-checked ``dict.get`` calls. Any value of the wrong type becomes null.
"""

from __future__ import annotations

from typing import Any

from streamkit._schema_time import parse_created_at

__all__ = [
    "EVENT_KINDS",
    "MESSAGE_KINDS",
    "event_row",
    "message_kind",
    "to_int64",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

#: Notice keys in the order Tweepy 3.x's ``StreamListener.on_data`` tests them, so a
#: message carrying several of them is classified the same way.
_NOTICE_KEYS = (
    ("delete", "delete"),
    ("event", "event"),
    ("direct_message", "direct_message"),
    ("friends", "friends"),
    ("friends_str", "friends"),
    ("limit", "limit"),
    ("disconnect", "disconnect"),
    ("warning", "warning"),
    ("scrub_geo", "scrub_geo"),
    ("status_withheld", "status_withheld"),
    ("user_withheld", "user_withheld"),
)

#: Every value :func:`message_kind` can return.
MESSAGE_KINDS = (
    "status",
    "delete",
    "limit",
    "scrub_geo",
    "status_withheld",
    "user_withheld",
    "warning",
    "disconnect",
    "event",
    "direct_message",
    "friends",
    "unknown",
)

#: Every value of the events table's ``event_type`` column.
EVENT_KINDS = MESSAGE_KINDS[1:]


def message_kind(obj: Any) -> str:
    """Classify one decoded v1.1 streaming message.

    This is the single place that decides what a message is; the stream's listener
    dispatch and the Parquet decoder both use it.

    A dict is a ``"status"`` when it has an ``in_reply_to_status_id`` key (every v1.1
    status has one, null or not; Tweepy 3.x tests the same key), or when it has an id
    (``id``/``id_str``), a text (``text``/``full_text``) and a ``user``. Otherwise the
    first notice key found, in Tweepy 3.x's order, names it (``friends_str`` counts as
    ``"friends"``). Anything else, including a non-dict, is ``"unknown"``.

    Parameters
    ----------
    obj : Any
        A decoded JSON message.

    Returns
    -------
    str
        One of :data:`MESSAGE_KINDS`.

    Examples
    --------
    >>> message_kind({"delete": {"status": {"id": 1, "user_id": 3}}})
    'delete'
    >>> message_kind({"id": 1, "text": "hi", "user": {}, "in_reply_to_status_id": None})
    'status'
    >>> message_kind({"limit": {"track": 5}}), message_kind([1, 2]), message_kind({"x": 1})
    ('limit', 'unknown', 'unknown')
    """
    if not isinstance(obj, dict):
        return "unknown"
    if "in_reply_to_status_id" in obj:
        return "status"
    if ("id" in obj or "id_str" in obj) and ("text" in obj or "full_text" in obj) and "user" in obj:
        return "status"
    for key, kind in _NOTICE_KEYS:
        if key in obj:
            return kind
    return "unknown"


def to_int64(value: Any, fallback: Any = None) -> int | None:
    """``value`` if it is an int64-range int, else ``fallback`` parsed as a decimal string.

    Twitter sends every id twice, as a number and as ``*_str``; the number is preferred
    and the string is the fallback for producers that only send the string.
    """
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    if type(fallback) is str and 0 < len(fallback) <= 20 and fallback.isascii():
        s = fallback[1:] if fallback[0] == "-" else fallback
        if s.isdigit():
            v = int(fallback)
            if _INT64_MIN <= v <= _INT64_MAX:
                return v
    return None


def _str(value: Any) -> str | None:
    return value if type(value) is str else None


def _code(value: Any) -> str | None:
    # disconnect codes are numbers, warning codes are strings; the column holds both
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return None


def _countries(value: Any) -> list[str] | None:
    if type(value) is not list:
        return None
    return [x for x in value if type(x) is str]


def _dict(value: Any) -> dict:
    return value if type(value) is dict else {}


def _timestamp_ms(value: Any) -> int | None:
    ms = to_int64(value, value)
    if ms is None or not -(2**62) // 1000 < ms < 2**62 // 1000:
        return None
    return ms * 1000


def event_row(kind: str, obj: Any) -> tuple:
    """One events-table row (without ``received_at`` and ``raw``) for a non-status message.

    Returns ``(event_type, timestamp_us, status_id, user_id, up_to_status_id,
    limit_track, code, message, withheld_in_countries)``.
    """
    obj = _dict(obj)
    body = obj if kind in ("event", "unknown", "friends") else _dict(obj.get(kind))
    ts = _timestamp_ms(body.get("timestamp_ms"))
    if ts is None:
        ts = _timestamp_ms(obj.get("timestamp_ms"))
    status_id = user_id = up_to = track = code = message = countries = None
    if kind == "delete":
        st = _dict(body.get("status"))
        status_id = to_int64(st.get("id"), st.get("id_str"))
        user_id = to_int64(st.get("user_id"), st.get("user_id_str"))
    elif kind == "scrub_geo":
        user_id = to_int64(body.get("user_id"), body.get("user_id_str"))
        up_to = to_int64(body.get("up_to_status_id"), body.get("up_to_status_id_str"))
    elif kind == "limit":
        track = to_int64(body.get("track"))
    elif kind == "status_withheld":
        status_id = to_int64(body.get("id"), body.get("id_str"))
        user_id = to_int64(body.get("user_id"), body.get("user_id_str"))
        countries = _countries(body.get("withheld_in_countries"))
    elif kind == "user_withheld":
        user_id = to_int64(body.get("id"), body.get("id_str"))
        countries = _countries(body.get("withheld_in_countries"))
    elif kind == "warning":
        code = _code(body.get("code"))
        message = _str(body.get("message"))
        user_id = to_int64(body.get("user_id"), body.get("user_id_str"))
    elif kind == "disconnect":
        code = _code(body.get("code"))
        message = _str(body.get("reason"))
    elif kind == "event":
        code = _str(obj.get("event"))
        src = _dict(obj.get("source"))
        user_id = to_int64(src.get("id"), src.get("id_str"))
        target = _dict(obj.get("target_object"))
        status_id = to_int64(target.get("id"), target.get("id_str"))
        if ts is None:
            ts = parse_created_at(obj.get("created_at"))
    elif kind == "direct_message":
        user_id = to_int64(body.get("sender_id"), body.get("sender_id_str"))
        message = _str(body.get("text"))
        if ts is None:
            ts = parse_created_at(body.get("created_at"))
    return (kind, ts, status_id, user_id, up_to, track, code, message, countries)
