"""Flatten ``read_json`` output into tweet and event columns, a few C++ calls per batch.

The rules are those of :func:`streamkit._schema_extract.status_row` and
:func:`streamkit._schema_events.event_row`, written as Arrow expressions and evaluated by
one Acero projection per table: one GIL release instead of one per kernel. That matters
beside a busy Python thread, where every hand-over of the GIL and back can cost the
decoder a whole switch interval (5 ms). Lists (entities) are rebuilt from their offsets
with a handful of numpy steps.

Rare shapes that the expressions do not cover are left to the msgspec reference ("slow"):
an id given only as a ``*_str`` string, a null inside a list (msgspec's typed decode
rejects those messages), a non-finite coordinate, an empty or null entity string.

Arrow cannot tell a missing key from a null one, while :func:`message_kind` classifies by
key presence. A message is taken as a status when a value proves it (a non-null
``in_reply_to_status_id``, or non-null id, text and user); as a notice when its notice
body is non-null and its bytes hold no key that could make it something else (see
:func:`notice_kind`). Anything else is left to the reference.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pyarrow as pa
import pyarrow.acero as ac
import pyarrow.compute as pc

from streamkit._schema_events import _NOTICE_KEYS
from streamkit._schema_extract import source_name
from streamkit._schema_time import TIMESTAMP_TYPE

__all__ = ["NOTICE_ORDER", "columns", "events", "notice_kind", "parse_created_at", "project", "tweets"]

F = pc.field
_FALSE, _NULL_S = pc.scalar(False), pc.scalar(pa.scalar(None, pa.string()))
_I64 = pa.int64()
_STR_LIST = pa.list_(pa.string())

#: Tweepy 3.x's order (one table, in _schema_events); None marks keys whose messages
#: always take the reference path.
NOTICE_ORDER = tuple(
    (key, None if kind in ("event", "friends") else kind) for key, kind in _NOTICE_KEYS
)
_NEEDLES = [(b'"%s"' % key.encode(), kind) for key, kind in NOTICE_ORDER]
# keys whose presence (even with a null value) could make message_kind() say "status"
_STATUS_KEYS = (b'"in_reply_to_status_id"', b'"user"')
# msgspec's untyped decode (which notices take) rejects a whole message for one
# out-of-range float (1e999); conservatively: any exponent, any long run of digits
_BIG_FLOAT = re.compile(rb"[0-9][eE][+-]?[0-9]|[0-9]{300}")


def project(table: pa.Table, exprs: dict[str, pc.Expression]) -> dict[str, pa.Array]:
    """Evaluate named expressions over a table in one C++ call."""
    decl = ac.Declaration.from_sequence([
        ac.Declaration("table_source", ac.TableSourceNodeOptions(table)),
        ac.Declaration("project", ac.ProjectNodeOptions(list(exprs.values()), list(exprs))),
    ])  # fmt: skip
    out = decl.to_table(use_threads=False)
    if any(c.num_chunks > 1 for c in out.columns):
        out = out.combine_chunks()  # one call for all columns: one GIL hand-over
    return columns(out)


def columns(table: pa.Table) -> dict[str, pa.Array]:
    """The table's columns as single arrays."""
    return {
        name: col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        for name, col in zip(table.column_names, table.columns, strict=True)
    }


def _s(value) -> pc.Expression:
    return pc.scalar(value)


def _valid(e: pc.Expression) -> pc.Expression:
    return pc.is_valid(e)


def _any(*es: pc.Expression) -> pc.Expression:
    out = es[0]
    for e in es[1:]:
        out = out | e
    return out


def _str_only(num: pc.Expression, text: pc.Expression) -> pc.Expression:
    """The number is missing and the string is not: only the reference reads such ids."""
    return pc.is_null(num) & _valid(text)


# -- created_at ---------------------------------------------------------------------------

_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_SHAPE = rf"^({_DAYS}) ({'|'.join(_MONTHS)}) [0-9]{{2}} [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}} [+-][0-9]{{4}} [0-9]{{4}}$"
_SAFE = _s("Mon Jan 01 00:00:00 +0000 2000")


def created_at_text(s: pc.Expression) -> pc.Expression:
    """``s`` where it has the shape of a ``created_at``, else a valid placeholder: the
    slices of :data:`_CREATED_PARTS` are then always digits."""
    return pc.if_else(pc.coalesce(pc.match_substring_regex(s, _SHAPE), _FALSE), s, _SAFE)


def _parts(name: str) -> dict[str, pc.Expression]:
    t = F(name)

    def num(a: int, b: int) -> pc.Expression:
        return pc.utf8_slice_codeunits(t, a, b).cast(_I64)

    month = pc.index_in(pc.utf8_slice_codeunits(t, 4, 7), value_set=pa.array(_MONTHS))
    parts = {
        # the placeholder stands in for invalid strings (equal to it: valid anyway)
        "ok": pc.coalesce(t == F(name + "_in"), _FALSE),
        "day": num(8, 10), "hh": num(11, 13), "mm": num(14, 16), "ss": num(17, 19),
        "tzh": num(21, 23), "tzm": num(23, 25), "year": num(26, 30),
        "month": month.cast(_I64) + _s(1), "neg": pc.utf8_slice_codeunits(t, 20, 21) == _s("-"),
    }  # fmt: skip
    return {f"{name}_{k}": v for k, v in parts.items()}


def created_at(prefix: str) -> pc.Expression:
    """:func:`~streamkit._schema_time.parse_created_at_array`, over the columns of
    :func:`_parts` (Acero shares no common subexpressions: each stage of the parse is a
    projection of its own, so the regex and the slices run once per value)."""
    day, hh, mm, ss = F(prefix + "day"), F(prefix + "hh"), F(prefix + "mm"), F(prefix + "ss")
    tzh, tzm, year, month = F(prefix + "tzh"), F(prefix + "tzm"), F(prefix + "year"), F(prefix + "month")

    def rem(x: pc.Expression, k: int) -> pc.Expression:  # x >= 0 here
        return x - pc.divide(x, _s(k)) * _s(k)

    leap = (rem(year, 4) == _s(0)) & ((rem(year, 100) != _s(0)) | (rem(year, 400) == _s(0)))
    short = pc.is_in(month, value_set=pa.array([4, 6, 9, 11])).cast(_I64)
    mdays = _s(31) - short - (month == _s(2)).cast(_I64) * (_s(3) - leap.cast(_I64))
    ok = F(prefix + "ok") & (year >= _s(1)) & (day >= _s(1)) & (day <= mdays)
    ok = ok & (hh < _s(24)) & (mm < _s(60)) & (ss < _s(60)) & (tzh < _s(24)) & (tzm < _s(60))
    # days since the epoch of a proleptic Gregorian date (H. Hinnant's days_from_civil);
    # every operand is >= 0, so truncating division is floor division
    y = year - (month <= _s(2)).cast(_I64)
    era = pc.divide(y, _s(400))
    yoe = y - era * _s(400)
    mp = month + pc.if_else(month > _s(2), _s(-3), _s(9))
    doy = pc.divide(_s(153) * mp + _s(2), _s(5)) + day - _s(1)
    doe = yoe * _s(365) + pc.divide(yoe, _s(4)) - pc.divide(yoe, _s(100)) + doy
    days = era * _s(146097) + doe - _s(719468)
    offset = (tzh * _s(3600) + tzm * _s(60)) * pc.if_else(F(prefix + "neg"), _s(-1), _s(1))
    us = (days * _s(86400) + hh * _s(3600) + mm * _s(60) + ss - offset) * _s(1_000_000)
    return pc.if_else(ok, us, pc.scalar(pa.scalar(None, _I64))).cast(TIMESTAMP_TYPE)


_CREATED_PARTS = {**_parts("c"), **_parts("u")}
_CREATED = {"created_at": created_at("c_"), "user_created_at": created_at("u_")}


# -- tweets -------------------------------------------------------------------------------


def _entity_exprs(is_rt: pc.Expression) -> dict[str, pc.Expression]:
    """Entity choices (see status_row's ``_entities``) among four sources per row: the
    retweeted tweet's extended_tweet, the retweeted tweet, the own extended_tweet, own."""

    def use_ext(*p: str) -> pc.Expression:
        return _valid(F(*p, "extended_tweet")) & (
            _valid(F(*p, "extended_tweet", "entities"))
            | _valid(F(*p, "extended_tweet", "extended_entities"))
        )

    rt = ("retweeted_status",)
    which = pc.make_struct(is_rt & use_ext(*rt), is_rt, use_ext(), field_names=["a", "b", "c"])

    def pick(*path: str, f=lambda e: e) -> pc.Expression:
        return pc.case_when(which, f(F(*rt, "extended_tweet", *path)), f(F(*rt, *path)),
                            f(F("extended_tweet", *path)), f(F(*path)))  # fmt: skip

    return {
        "_hashtags": pick("entities", "hashtags"),
        "_mentions": pick("entities", "user_mentions"),
        "_urls": pick("entities", "urls"),
        "_media": pc.coalesce(pick("extended_entities", "media"), pick("entities", "media")),
        "_ents": pick("entities", f=_valid),
        "_xents": pick("extended_entities", f=_valid),
    }


def _tweet_exprs() -> dict[str, pc.Expression]:
    rt = ("retweeted_status",)
    is_rt = _valid(F(*rt))
    q, rq = ("quoted_status",), ("retweeted_status", "quoted_status")
    rt_sn = F(*rt, "user", "screen_name")

    def full_text(p: tuple[str, ...]) -> pc.Expression:
        return pc.coalesce(F(*p, "extended_tweet", "full_text"), F(*p, "full_text"), F(*p, "text"))

    is_quote = _valid(F(*q)) | _valid(F("quoted_status_id")) | pc.coalesce(F("is_quote_status"), _FALSE)
    is_reply = _valid(F("in_reply_to_status_id")) | _valid(F("in_reply_to_user_id"))
    kinds = pc.make_struct(is_rt, is_quote, is_reply, field_names=["rt", "quote", "reply"])
    e = {
        "id": F("id"),
        "_c": created_at_text(F("created_at")),
        "_c_in": F("created_at"),
        "text": pc.coalesce(
            pc.binary_join_element_wise(_s("RT @"), rt_sn, _s(": "), full_text(rt), _s("")),
            full_text(()),
        ),
        "lang": F("lang"),
        "source": F("source"),
        "tweet_type": pc.case_when(kinds, _s("retweet"), _s("quote"), _s("reply"), _s("original")),
        "user_id": F("user", "id"),
        **{f"user_{n}": F("user", n) for n in ("screen_name", "name", "description",
           "location", "verified", "followers_count", "friends_count", "statuses_count")},
        "_u": created_at_text(F("user", "created_at")),
        "_u_in": F("user", "created_at"),
        "in_reply_to_status_id": F("in_reply_to_status_id"),
        "in_reply_to_user_id": F("in_reply_to_user_id"),
        "in_reply_to_screen_name": F("in_reply_to_screen_name"),
        "retweeted_status_id": F(*rt, "id"),
        "retweeted_user_screen_name": rt_sn,
        # a retweet of a quote: the quote is the retweeted tweet's
        "quoted_status_id": pc.coalesce(F("quoted_status_id"), F(*q, "id"),
                                        F(*rt, "quoted_status_id"), F(*rq, "id")),
        "quoted_user_screen_name": pc.coalesce(F(*q, "user", "screen_name"),
                                               F(*rq, "user", "screen_name")),
        "place_full_name": F("place", "full_name"),
        "place_country_code": F("place", "country_code"),
        **{n: F(n) for n in ("retweet_count", "favorite_count", "reply_count", "quote_count",
                             "possibly_sensitive", "filter_level")},
    }  # fmt: skip
    e.update(_entity_exprs(is_rt))
    e["_is_rt"] = is_rt
    e["_is_status"] = _valid(F("in_reply_to_status_id")) | (
        (_valid(F("id")) | _valid(F("id_str")))
        & (_valid(F("text")) | _valid(F("full_text")))
        & _valid(F("user"))
    )
    known = [kind for _, kind in NOTICE_ORDER if kind]
    e["_first_notice"] = pc.case_when(
        pc.make_struct(*[_valid(F(k)) for k in known], field_names=known),
        *[_s(k) for k in known], _NULL_S,
    )
    e["_coordinates"] = F("coordinates", "coordinates")
    e["_str_ids"] = _any(
        pc.is_null(F("id")),  # no number: only a string, or no id (rejected)
        _str_only(F("in_reply_to_status_id"), F("in_reply_to_status_id_str")),
        _str_only(F("in_reply_to_user_id"), F("in_reply_to_user_id_str")),
        _str_only(F("quoted_status_id"), F("quoted_status_id_str")),
        _str_only(F(*q, "id"), F(*q, "id_str")),
        _str_only(F("user", "id"), F("user", "id_str")),
        _str_only(F(*rt, "id"), F(*rt, "id_str")),
        _str_only(F(*rt, "quoted_status_id"), F(*rt, "quoted_status_id_str")),
        _str_only(F(*rq, "id"), F(*rq, "id_str")),
    )
    return e


_TWEET_EXPRS = _tweet_exprs()


@functools.cache
def _has_list(t: pa.DataType) -> bool:
    if pa.types.is_list(t):
        return True
    return pa.types.is_struct(t) and any(_has_list(f.type) for f in t)


def _null_elements(arr: pa.Array) -> bool:
    """Whether a list anywhere inside ``arr`` holds a null (cheap: buffer metadata only)."""
    t = arr.type
    if pa.types.is_struct(t):
        return any(_null_elements(arr.field(i)) for i in range(t.num_fields)
                   if _has_list(t.field(i).type))  # fmt: skip
    if pa.types.is_list(t):
        return arr.values.null_count > 0 or (_has_list(t.value_type) and _null_elements(arr.values))
    return False


def _rows_of(lst: pa.Array, mask: np.ndarray) -> np.ndarray:
    """Rows owning the list elements flagged in ``mask`` (indexes into ``lst.values``)."""
    return np.searchsorted(np.asarray(lst.offsets), np.flatnonzero(mask), side="right") - 1


def _strings(lst: pa.Array, field: str, truthy: bool, slow: np.ndarray) -> pa.Array:
    """``[x.field for x in lst]`` as list<string>. The reference skips null values (and
    empty ones where ``truthy``: ``x.expanded_url or x.url``); rows holding any are
    marked slow instead, so no filtering is needed here (null lists come out empty)."""
    a = lst.values.field(field)
    bad = ~np.asarray(a.is_valid().to_numpy(zero_copy_only=False)) if a.null_count else None
    if truthy and len(a):
        offsets = np.frombuffer(a.buffers()[1], np.int32, count=len(a) + 1, offset=4 * a.offset)
        empty = np.diff(offsets) == 0
        if empty.any():
            bad = empty if bad is None else bad | empty
    if bad is not None:
        slow[_rows_of(lst, bad)] = True
    return pa.ListArray.from_arrays(lst.offsets, a)


def _with_lead(lst: pa.Array, lead: np.ndarray, names: pa.Array) -> pa.Array:
    """``[names[i], *lst[i]]`` where ``lead[i]``, else ``lst[i]``."""
    offsets = np.asarray(lst.offsets).astype(np.int64)
    n_values = int(offsets[-1])
    before = np.zeros(len(lead) + 1, dtype=np.int64)
    np.cumsum(lead, out=before[1:])
    new_offsets = offsets + before
    # where each output value comes from: the list's values, then the leading names
    rows = np.flatnonzero(lead)
    at = new_offsets[rows]
    source = np.empty(n_values + len(rows), dtype=np.int64)
    source[at] = n_values + np.arange(len(rows))
    rest = np.ones(len(source), dtype=bool)
    rest[at] = False
    source[rest] = np.arange(n_values)
    values = pa.concat_arrays([lst.values.slice(0, n_values), names.take(pa.array(rows))])
    return pa.ListArray.from_arrays(pa.array(new_offsets.astype(np.int32)),
                                    values.take(pa.array(source)))  # fmt: skip


def _mask(lst: pa.Array, null: np.ndarray) -> pa.Array:
    """The list with exactly the rows in ``null`` null (their lists are empty already)."""
    if not null.any():
        return lst
    return pa.ListArray.from_arrays(lst.offsets, lst.values, mask=pa.array(null))


def tweets(table: pa.Table, status_fields: list[str]):
    """Flatten every parsed row as a status.

    Returns (tweet columns without received_at and raw, slow mask, is-a-status mask, first
    non-null notice body per row); only the status rows' columns mean anything.
    """
    col = project(table, _TWEET_EXPRS)
    n = table.num_rows
    texts = pa.table({k[1:]: col.pop(k) for k in ("_c", "_c_in", "_u", "_u_in")})
    col.update(project(pa.table(project(texts, _CREATED_PARTS)), _CREATED))
    is_status = _bools(col.pop("_is_status"))
    first_notice = col.pop("_first_notice")
    slow = _bools(col.pop("_str_ids"))
    if any(_null_elements(chunk) for name in status_fields
           if _has_list(table.schema.field(name).type) for chunk in table.column(name).chunks):  # fmt: skip
        slow |= _null_rows(table, status_fields)
    coords = col.pop("_coordinates")
    flat = np.asarray(coords.values.to_numpy(zero_copy_only=False), dtype=np.float64)
    offsets = np.asarray(coords.offsets)
    if len(flat) and not np.isfinite(flat).all():  # msgspec rejects NaN and overflows
        slow[_rows_of(coords, ~np.isfinite(flat))] = True
    ok = _bools(coords.is_valid()) & (np.diff(offsets) == 2)
    start = np.minimum(offsets[:-1], max(len(flat) - 2, 0))
    for i, name in enumerate(("longitude", "latitude")):
        vals = flat[start + i] if len(flat) >= 2 else np.zeros(n)
        col[name] = pa.array(np.where(ok, vals, 0.0), pa.float64(), mask=~ok)

    enc = col["source"].dictionary_encode()  # the few distinct apps, decoded once each
    names = pa.array([source_name(s) for s in enc.dictionary.to_pylist()], pa.string())
    col["source"] = names.take(enc.indices)

    ents, xents = _bools(col.pop("_ents")), _bools(col.pop("_xents"))
    # "RT @author:" leads a retweet's mentions
    lead = _bools(col.pop("_is_rt")) & ents
    if col["retweeted_user_screen_name"].null_count:
        lead &= _bools(col["retweeted_user_screen_name"].is_valid())
    col["hashtags"] = _strings(col.pop("_hashtags"), "text", False, slow)
    mentions = _strings(col.pop("_mentions"), "screen_name", False, slow)
    if lead.any():
        mentions = _with_lead(mentions, lead, col["retweeted_user_screen_name"])
    col["mentions"] = mentions
    col["urls"] = _strings(col.pop("_urls"), "expanded_url", True, slow)
    col["media_urls"] = _strings(col.pop("_media"), "media_url_https", True, slow)
    for name in ("hashtags", "mentions", "urls"):
        col[name] = _mask(col[name], ~ents)
    col["media_urls"] = _mask(col["media_urls"], ~ents & ~xents)
    return col, slow, is_status, first_notice


def _bools(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _null_rows(table: pa.Table, fields: list[str]) -> np.ndarray:
    """Rows with a null inside some list (slow path of :func:`tweets`)."""
    bad = np.zeros(table.num_rows, dtype=bool)

    def walk(arr: pa.Array, rows: np.ndarray) -> None:
        t = arr.type
        if pa.types.is_struct(t):
            for i in range(t.num_fields):
                if _has_list(t.field(i).type):
                    walk(arr.field(i), rows)
        elif pa.types.is_list(t):
            offsets = np.asarray(arr.offsets)
            values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
            owner = rows[np.repeat(np.arange(len(arr)), np.diff(offsets))]
            if values.null_count:
                bad[owner[~np.asarray(values.is_valid().to_numpy(zero_copy_only=False))]] = True
            if _has_list(t.value_type):
                walk(values, owner)

    every = np.arange(table.num_rows)
    for name in fields:
        if _has_list(table.schema.field(name).type):
            walk(table.column(name).combine_chunks(), every)
    return bad


# -- notices ------------------------------------------------------------------------------


def notice_kind(raw: bytes, first: str | None) -> str | None:
    """The kind of a non-status message, or None when only the reference can tell.

    ``first`` is the first notice body, in Tweepy's order, that Arrow read as non-null
    (present for sure). Every key before it must be absent from the bytes: Arrow reads a
    key with a null value as it reads a missing one.
    """
    if b"\\" in raw or any(k in raw for k in _STATUS_KEYS):
        return None  # an escaped key defeats the byte search; a status key, message_kind
    for needle, kind in _NEEDLES:
        if kind is not None and kind == first:
            break
        if needle in raw:
            return None  # present with a null value, or read only by the reference
    else:
        kind = "unknown"
    if _BIG_FLOAT.search(raw) is not None:
        return None
    return kind


_KINDS = [kind for _, kind in NOTICE_ORDER if kind] + ["unknown"]


def _event_exprs() -> dict[str, pc.Expression]:
    kind = F("_kind")

    def when(pairs: list[tuple[str, pc.Expression]], null) -> pc.Expression:
        conds = pc.make_struct(*[kind == _s(k) for k, _ in pairs], field_names=[k for k, _ in pairs])
        return pc.case_when(conds, *[v for _, v in pairs], null)

    i_null = pc.scalar(pa.scalar(None, _I64))
    body_ts = when([(k, F(k, "timestamp_ms")) for k in _KINDS[:-1]], _NULL_S)
    ok = pc.coalesce(pc.match_substring_regex(body_ts, r"^-?[0-9]{1,18}$"), _FALSE)
    ms = pc.if_else(ok, body_ts, _s("0")).cast(_I64)
    ok = ok & (ms > _s(-(2**62) // 1000)) & (ms < _s(2**62 // 1000))
    # both branches of if_else are computed: multiply only what cannot overflow
    ts = pc.if_else(ok, pc.if_else(ok, ms, _s(0)) * _s(1000), i_null).cast(TIMESTAMP_TYPE)
    dm_at = F("_dm_created_at")
    return {
        "timestamp": pc.coalesce(ts, pc.if_else(kind == _s("direct_message"), dm_at,
                                                pc.scalar(pa.scalar(None, TIMESTAMP_TYPE)))),
        "status_id": when([("delete", F("delete", "status", "id")),
                           ("status_withheld", F("status_withheld", "id"))], i_null),
        "user_id": when([("delete", F("delete", "status", "user_id")),
                         ("scrub_geo", F("scrub_geo", "user_id")),
                         ("status_withheld", F("status_withheld", "user_id")),
                         ("user_withheld", F("user_withheld", "id")),
                         ("warning", F("warning", "user_id")),
                         ("direct_message", F("direct_message", "sender_id"))], i_null),
        "up_to_status_id": when([("scrub_geo", F("scrub_geo", "up_to_status_id"))], i_null),
        "limit_track": when([("limit", F("limit", "track"))], i_null),
        "code": when([("warning", F("warning", "code")),
                      ("disconnect", F("disconnect", "code").cast(pa.string()))], _NULL_S),
        "message": when([("warning", F("warning", "message")),
                         ("disconnect", F("disconnect", "reason")),
                         ("direct_message", F("direct_message", "text"))], _NULL_S),
        "withheld_in_countries": when(
            [("status_withheld", F("status_withheld", "withheld_in_countries")),
             ("user_withheld", F("user_withheld", "withheld_in_countries"))],
            pc.scalar(pa.scalar(None, _STR_LIST))),
        "_ts_ok": ok,
        "_slow": _any(
            _str_only(F("delete", "status", "id"), F("delete", "status", "id_str")),
            _str_only(F("delete", "status", "user_id"), F("delete", "status", "user_id_str")),
            _str_only(F("scrub_geo", "user_id"), F("scrub_geo", "user_id_str")),
            _str_only(F("scrub_geo", "up_to_status_id"), F("scrub_geo", "up_to_status_id_str")),
            _str_only(F("status_withheld", "id"), F("status_withheld", "id_str")),
            _str_only(F("status_withheld", "user_id"), F("status_withheld", "user_id_str")),
            _str_only(F("user_withheld", "id"), F("user_withheld", "id_str")),
            _str_only(F("warning", "user_id"), F("warning", "user_id_str")),
            _str_only(F("direct_message", "sender_id"), F("direct_message", "sender_id_str")),
            # a long or odd timestamp string: to_int64's rules in Python
            pc.coalesce(pc.utf8_length(body_ts) > _s(18), _FALSE) & ~ok,
        ),
    }  # fmt: skip


_EVENT_EXPRS = _event_exprs()


def parse_created_at(values: pa.Array) -> pa.Array:
    """:func:`~streamkit._schema_time.parse_created_at_array` in three projections."""
    table = pa.table({"s": values})
    texts = pa.table(project(table, {"c": created_at_text(F("s")), "c_in": F("s")}))
    return project(pa.table(project(texts, _parts("c"))), {"t": created_at("c_")})["t"]


def events(table: pa.Table, kinds: list[str], raws: list[bytes]):
    """Event columns (without received_at and raw) of notice rows, and a slow mask."""
    table = table.append_column("_kind", pa.array(kinds, pa.string()))
    if "direct_message" in kinds:
        dm = parse_created_at(table.column("direct_message").combine_chunks().field("created_at"))
    else:
        dm = pa.nulls(len(kinds), TIMESTAMP_TYPE)
    table = table.append_column("_dm_created_at", dm)
    col = project(table, _EVENT_EXPRS)
    slow = np.asarray(col.pop("_slow").to_numpy(zero_copy_only=False), dtype=bool).copy()
    # no valid timestamp in the body: the reference then reads the top-level one, and the
    # bytes cannot tell which of the two a "timestamp_ms" they hold belongs to
    ts_ok = col.pop("_ts_ok").to_pylist()
    for i, raw in enumerate(raws):
        if not ts_ok[i] and b'"timestamp_ms"' in raw:
            slow[i] = True
    countries = col["withheld_in_countries"]
    if countries.values.null_count:  # event_row skips non-strings: rare, the reference's
        slow[_rows_of(countries, ~np.asarray(countries.values.is_valid()))] = True
    col["event_type"] = pa.array(kinds, pa.string())
    return col, slow
