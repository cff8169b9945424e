"""Flatten ``read_json`` output into tweet and event columns with ``pyarrow.compute``.

The rules are those of :func:`streamkit._schema_extract.status_row` and
:func:`streamkit._schema_events.event_row`, written over whole columns. Python runs a
constant number of kernel calls per batch; it touches single values only where the
reference would read a ``*_str`` id (numbers missing, strings present: rare) and for the
few distinct ``source`` strings.

Arrow cannot tell a missing key from a null one, while :func:`message_kind` classifies by
key presence. A message is taken as a status when a value proves it (a non-null
``in_reply_to_status_id``, or non-null id, text and user); as a notice when its notice body
is non-null and the raw bytes do not contain any key that could have made it something else
(``"in_reply_to_status_id"``, ``"user"``, an earlier notice key ...). Anything else goes to
the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamkit._schema_events import to_int64
from streamkit._schema_extract import source_name
from streamkit._schema_time import TIMESTAMP_TYPE, parse_created_at_array

__all__ = ["classify", "events", "tweets"]

_TWEET_TYPES = pa.array(["original", "reply", "retweet", "quote"])
_STR_LIST = pa.list_(pa.string())
# An out-of-range float (1e999) makes msgspec's untyped decode reject a whole message; the
# typed one skips unread fields without looking. Conservatively: any exponent, any long run.
_BIG_FLOAT = r"[0-9][eE][+-]?[0-9]|[0-9]{300}"
#: Tweepy 3.x's order; None marks keys the fast path never decodes itself.
_NOTICE_ORDER = (
    ("delete", "delete"),
    ("event", None),
    ("direct_message", "direct_message"),
    ("friends", None),
    ("friends_str", None),
    ("limit", "limit"),
    ("disconnect", "disconnect"),
    ("warning", "warning"),
    ("scrub_geo", "scrub_geo"),
    ("status_withheld", "status_withheld"),
    ("user_withheld", "user_withheld"),
)
_KIND_CODES = {kind: i for i, (_, kind) in enumerate(_NOTICE_ORDER) if kind}
UNKNOWN = len(_NOTICE_ORDER)


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _valid(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return _np(arr.is_valid())


def _f(arr: pa.Array, *path: str) -> pa.Array:
    """A nested struct field; null wherever a parent is."""
    return pc.struct_field(arr, list(path))


def _has(raws: pa.Array, key: str) -> np.ndarray:
    return _np(pc.match_substring(raws, f'"{key}"'))


def _int_or_str(num: pa.Array, text: pa.Array) -> pa.Array:
    """``to_int64(num, text)`` per row: the number, else the decimal string."""
    need = pc.and_(pc.is_null(num), pc.is_valid(text))
    if not pc.any(need).as_py():
        return num
    rows = np.flatnonzero(_np(need))
    values = [to_int64(None, s) for s in text.take(pa.array(rows)).to_pylist()]
    return pc.replace_with_mask(num, need, pa.array(values, pa.int64()))


def _coalesce_ids(*pairs: tuple[pa.Array, pa.Array]) -> pa.Array:
    out = _int_or_str(*pairs[0])
    for num, text in pairs[1:]:
        if out.null_count:
            out = pc.coalesce(out, _int_or_str(num, text))
    return out


def _source(src: pa.Array) -> pa.Array:
    """:func:`source_name` of each value, computed once per distinct value."""
    enc = src.dictionary_encode()
    names = pa.array([source_name(s) for s in enc.dictionary.to_pylist()], pa.string())
    return names.take(enc.indices)


def _elements(lst: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(values, row of each value) of the non-null lists of a list array."""
    offsets = np.asarray(lst.offsets)
    parent = np.repeat(np.arange(len(lst)), np.diff(offsets))
    values = lst.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    if lst.null_count:  # a null list may still span values
        keep = _valid(lst)[parent]
        values, parent = values.filter(pa.array(keep)), parent[keep]
    return values, parent


def _strings(values: pa.Array, parent: np.ndarray, first: str, second: str | None = None):
    """``x.first`` (or ``x.first or x.second`` when given) of each element, where truthy."""
    a = _f(values, first)
    if second is None:
        keep = _valid(a)
    else:
        ok = pc.fill_null(pc.greater(pc.binary_length(a), 0), False)
        a = pc.if_else(ok, a, _f(values, second))
        keep = _np(pc.fill_null(pc.greater(pc.binary_length(a), 0), False))
    if keep.all():
        return a, parent
    return a.filter(pa.array(keep)), parent[keep]


def _list(n: int, parts: list[tuple[pa.Array, np.ndarray]], null: np.ndarray) -> pa.Array:
    """A list<string> column from (values, row) parts; a row's values keep part order."""
    if len(parts) == 1:
        values, parent = parts[0]
    else:
        values = pa.concat_arrays([p[0] for p in parts])
        parent = np.concatenate([p[1] for p in parts])
        order = np.argsort(parent, kind="stable")
        values, parent = values.take(pa.array(order)), parent[order]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(parent, minlength=n), out=offsets[1:])
    mask = pa.array(null) if null.any() else None
    return pa.ListArray.from_arrays(pa.array(offsets), values.cast(pa.string()), mask=mask)


def _lists(arr: pa.Array, path: tuple[str, ...] = ()) -> Iterator[pa.Array]:
    """Every list reachable through struct fields (the lists the typed decoder validates)."""
    t = arr.type
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _lists(_f(arr, t.field(i).name), path + (t.field(i).name,))
    elif pa.types.is_list(t):
        yield arr


def _rows_with_null_elements(cols: dict[str, pa.Array], n: int) -> np.ndarray:
    """Rows with a null inside a list: msgspec's typed decode rejects those messages."""
    bad = np.zeros(n, dtype=bool)
    for arr in cols.values():
        for lst in _lists(arr):
            values, parent = _elements(lst)
            if values.null_count:
                bad[parent[~_valid(values)]] = True
    return bad


# -- classification -----------------------------------------------------------------------


def classify(cols: dict[str, pa.Array], raws: Callable[[np.ndarray], pa.Array]):
    """(is_status, notice kind code or -1, slow) per parsed row.

    ``raws(rows)`` gives the raw messages of the given row numbers.
    """
    n = len(cols["id"])
    v = {k: _valid(a) for k, a in cols.items()}
    status = v["in_reply_to_status_id"] | (
        (v["id"] | v["id_str"]) & (v["text"] | v["full_text"]) & v["user"]
    )
    kind = np.full(n, -1, dtype=np.int64)
    slow = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(~status)
    if not len(rows):
        return status, kind, slow
    sub = raws(rows)
    cache: dict[str, np.ndarray] = {}

    def has(key: str) -> np.ndarray:
        if key not in cache:
            cache[key] = _has(sub, key)
        return cache[key]

    sv = {k: a[rows] for k, a in v.items()}
    # a key present with a null value would make message_kind() say "status"
    late = has("in_reply_to_status_id") | (
        (sv["user"] | has("user"))
        & (sv["id"] | sv["id_str"] | has("id") | has("id_str"))
        & (sv["text"] | sv["full_text"] | has("text") | has("full_text"))
    )
    # escaped keys ("\u0064elete") defeat the byte search; msgspec's untyped decode
    # (which notices take) rejects out-of-range floats anywhere
    late |= _np(pc.match_substring(sub, "\\")) | _np(pc.match_substring_regex(sub, _BIG_FLOAT))
    k = np.full(len(rows), UNKNOWN, dtype=np.int64)
    undecided = ~late
    for key, known in _NOTICE_ORDER:
        present = sv[key] if known else np.zeros(len(rows), dtype=bool)
        k[undecided & present] = _KIND_CODES.get(key, -1)
        late |= undecided & ~present & has(key)
        undecided &= ~present & ~late
    kind[rows] = np.where(late, -1, k)
    slow[rows] = late
    return status, kind, slow


# -- tweets -------------------------------------------------------------------------------


def _entities(get: Callable[..., pa.Array]):
    """The entity parts of rows whose tweet is ``get`` (a getter of its nested fields):
    {column: (values, row)}, rows without entities, rows without any media field."""
    ext = get("extended_tweet")
    ext_e, ext_x = _f(ext, "entities"), _f(ext, "extended_entities")
    pick = pa.array(_valid(ext) & (_valid(ext_e) | _valid(ext_x)))
    ents = pc.if_else(pick, ext_e, get("entities"))
    ext_ents = pc.if_else(pick, ext_x, get("extended_entities"))
    ents_null = ~_valid(ents)
    out = {}
    for name, field, first, second in (
        ("hashtags", "hashtags", "text", None),
        ("mentions", "user_mentions", "screen_name", None),
        ("urls", "urls", "expanded_url", "url"),
    ):
        out[name] = _strings(*_elements(_f(ents, field)), first, second)
    media = pc.coalesce(_f(ext_ents, "media"), _f(ents, "media"))
    out["media_urls"] = _strings(*_elements(media), "media_url_https", "media_url")
    return out, ents_null, ents_null & ~_valid(ext_ents)


def tweets(cols: dict[str, pa.Array], rows: np.ndarray, raws) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Tweet columns of the given parsed rows, and a mask of those left to the reference."""
    c = {k: a.take(pa.array(rows)) if len(rows) != len(a) else a for k, a in cols.items()}
    n = len(rows)
    rt, q = c["retweeted_status"], c["quoted_status"]
    is_rt = _valid(rt)
    ids = _int_or_str(c["id"], c["id_str"])
    slow = ~_valid(ids) | _rows_with_null_elements(c, n)
    point = c["coordinates"]
    coords = _f(point, "coordinates")
    values, parent = _elements(coords)
    if len(values):
        finite = _np(pc.is_finite(values).fill_null(True))
        slow[parent[~finite]] = True
    # msgspec's untyped decode, which a status without an in_reply_to_status_id key takes,
    # rejects out-of-range floats anywhere; the key is usually present (null)
    irs_null = np.flatnonzero(~_valid(c["in_reply_to_status_id"]))
    if len(irs_null):
        sub = raws(rows[irs_null])
        absent = ~_has(sub, "in_reply_to_status_id")
        if absent.any():
            sub = sub.filter(pa.array(absent))
            slow[irs_null[absent]] |= _np(pc.match_substring_regex(sub, _BIG_FLOAT))

    out: dict[str, pa.Array] = {"id": ids, "created_at": parse_created_at_array(c["created_at"])}
    rt_sn = _f(rt, "user", "screen_name")
    rt_text = pc.coalesce(_f(rt, "extended_tweet", "full_text"), _f(rt, "full_text"), _f(rt, "text"))
    own = pc.coalesce(_f(c["extended_tweet"], "full_text"), c["full_text"], c["text"])
    out["text"] = pc.coalesce(pc.binary_join_element_wise("RT @", rt_sn, ": ", rt_text, ""), own)
    out["lang"] = c["lang"]
    out["source"] = _source(c["source"])
    reply_id = _int_or_str(c["in_reply_to_status_id"], c["in_reply_to_status_id_str"])
    reply_user = _int_or_str(c["in_reply_to_user_id"], c["in_reply_to_user_id_str"])
    quoted = _coalesce_ids(
        (c["quoted_status_id"], c["quoted_status_id_str"]), (_f(q, "id"), _f(q, "id_str")),
    )
    is_quote = _valid(q) | _valid(quoted) | _np(pc.fill_null(c["is_quote_status"], False))
    is_reply = _valid(reply_id) | _valid(reply_user)
    code = np.where(is_rt, 2, np.where(is_quote, 3, np.where(is_reply, 1, 0)))
    out["tweet_type"] = _TWEET_TYPES.take(pa.array(code))
    u = c["user"]
    out["user_id"] = _int_or_str(_f(u, "id"), _f(u, "id_str"))
    for name in ("screen_name", "name", "description", "location", "verified",
                 "followers_count", "friends_count", "statuses_count"):  # fmt: skip
        out["user_" + name] = _f(u, name)
    out["user_created_at"] = parse_created_at_array(_f(u, "created_at"))
    out["in_reply_to_status_id"] = reply_id
    out["in_reply_to_user_id"] = reply_user
    out["in_reply_to_screen_name"] = c["in_reply_to_screen_name"]
    out["retweeted_status_id"] = _int_or_str(_f(rt, "id"), _f(rt, "id_str"))
    out["retweeted_user_screen_name"] = rt_sn
    if quoted.null_count:  # a retweet of a quote: the quote is the retweeted tweet's
        quoted = pc.coalesce(quoted, _coalesce_ids(
            (_f(rt, "quoted_status_id"), _f(rt, "quoted_status_id_str")),
            (_f(rt, "quoted_status", "id"), _f(rt, "quoted_status", "id_str")),
        ))  # fmt: skip
    out["quoted_status_id"] = quoted
    out["quoted_user_screen_name"] = pc.coalesce(
        _f(q, "user", "screen_name"), _f(rt, "quoted_status", "user", "screen_name")
    )

    own_parts, own_null, own_media_null = _entities(
        lambda first, *rest: _f(c[first], *rest) if rest else c[first]
    )
    rt_parts, rt_null, rt_media_null = _entities(lambda *path: _f(rt, *path))
    for name in ("hashtags", "mentions", "urls", "media_urls"):
        (ov, op), (rv, rp) = own_parts[name], rt_parts[name]
        o_keep, r_keep = ~is_rt[op], is_rt[rp]
        parts = [(ov.filter(pa.array(o_keep)), op[o_keep]), (rv.filter(pa.array(r_keep)), rp[r_keep])]
        if name == "media_urls":
            null = np.where(is_rt, rt_media_null, own_media_null)
        else:
            null = np.where(is_rt, rt_null, own_null)
        if name == "mentions":  # "RT @author:" leads the retweet's mentions
            lead = np.flatnonzero(is_rt & _valid(rt_sn) & ~rt_null)
            parts.insert(0, (rt_sn.take(pa.array(lead)), lead))
        out[name] = _list(n, parts, null)

    # [longitude, latitude] only: other lengths give nulls, as in status_row
    offsets = np.asarray(coords.offsets)
    ok = _valid(coords) & (np.diff(offsets) == 2)
    flat = np.asarray(coords.values.to_numpy(zero_copy_only=False), dtype=np.float64)
    first = np.minimum(offsets[:-1], max(len(flat) - 2, 0))
    for i, name in enumerate(("longitude", "latitude")):
        vals = flat[first + i] if len(flat) >= 2 else np.zeros(n)
        out[name] = pa.array(np.where(ok, vals, 0.0), pa.float64(), mask=~ok)
    p = c["place"]
    out["place_full_name"] = _f(p, "full_name")
    out["place_country_code"] = _f(p, "country_code")
    for name in ("retweet_count", "favorite_count", "reply_count", "quote_count",
                 "possibly_sensitive", "filter_level"):  # fmt: skip
        out[name] = c[name]
    return out, slow


# -- events -------------------------------------------------------------------------------


def _timestamp(ms: pa.Array) -> pa.Array:
    """``_timestamp_ms`` of decimal strings: µs, null when invalid or out of range."""
    ok = pc.fill_null(pc.match_substring_regex(ms, r"^-?[0-9]{1,18}$"), False)
    n = len(ms)
    us = np.zeros(n, dtype=np.int64)
    valid = _np(ok)
    if valid.any():
        us[valid] = np.asarray(pc.cast(ms.filter(ok), pa.int64()))
    long_ = np.flatnonzero(_np(pc.fill_null(pc.greater(pc.utf8_length(ms), 18), False)))
    for i in long_:  # 19-20 characters: may not fit an int64
        v = to_int64(None, ms[int(i)].as_py())
        if v is not None:
            us[i], valid[i] = v, True
    valid &= (us > -(2**62) // 1000) & (us < 2**62 // 1000)
    return pa.array(np.where(valid, us * 1000, 0), TIMESTAMP_TYPE, mask=~valid)


def events(cols: dict[str, pa.Array], rows: np.ndarray, kinds: np.ndarray, raws):
    """Event columns (without received_at and raw) of notice rows, and a slow mask."""
    take = pa.array(rows)
    n = len(rows)
    null_i = pa.nulls(n, pa.int64())
    null_s = pa.nulls(n, pa.string())
    body_ts = pa.nulls(n, pa.string())
    status_id, user_id, up_to, track = null_i, null_i, null_i, null_i
    code, message, countries = null_s, null_s, pa.nulls(n, _STR_LIST)
    created = pa.nulls(n, pa.string())
    for kind, kc in _KIND_CODES.items():
        sel = kinds == kc
        if not sel.any():
            continue
        b = cols[kind].take(take)
        m = pa.array(sel)

        def put(target, value, _m=m):
            return pc.if_else(_m, value, target)

        body_ts = put(body_ts, _f(b, "timestamp_ms"))
        if kind == "delete":
            st = _f(b, "status")
            status_id = put(status_id, _int_or_str(_f(st, "id"), _f(st, "id_str")))
            user_id = put(user_id, _int_or_str(_f(st, "user_id"), _f(st, "user_id_str")))
        elif kind == "scrub_geo":
            user_id = put(user_id, _int_or_str(_f(b, "user_id"), _f(b, "user_id_str")))
            up_to = put(up_to, _int_or_str(_f(b, "up_to_status_id"), _f(b, "up_to_status_id_str")))
        elif kind == "limit":
            track = put(track, _f(b, "track"))
        elif kind in ("status_withheld", "user_withheld"):
            if kind == "status_withheld":
                status_id = put(status_id, _int_or_str(_f(b, "id"), _f(b, "id_str")))
                user_id = put(user_id, _int_or_str(_f(b, "user_id"), _f(b, "user_id_str")))
            else:
                user_id = put(user_id, _int_or_str(_f(b, "id"), _f(b, "id_str")))
            lst = _f(b, "withheld_in_countries")
            values, parent = _elements(lst)
            keep = _valid(values)
            values, parent = values.filter(pa.array(keep)), parent[keep]
            countries = put(countries, _list(n, [(values, parent)], ~_valid(lst)))
        elif kind == "warning":
            code = put(code, _f(b, "code"))
            message = put(message, _f(b, "message"))
            user_id = put(user_id, _int_or_str(_f(b, "user_id"), _f(b, "user_id_str")))
        elif kind == "disconnect":
            code = put(code, pc.cast(_f(b, "code"), pa.string()))
            message = put(message, _f(b, "reason"))
        elif kind == "direct_message":
            user_id = put(user_id, _int_or_str(_f(b, "sender_id"), _f(b, "sender_id_str")))
            message = put(message, _f(b, "text"))
            created = put(created, _f(b, "created_at"))
    ts = _timestamp(body_ts)
    # no valid timestamp in the body: the reference then reads the top-level one, whose
    # presence the bytes cannot prove apart from the body's
    missing = ~_valid(ts)
    slow = np.zeros(n, dtype=bool)
    if missing.any():
        idx = np.flatnonzero(missing)
        slow[idx] = _has(raws(rows[idx]), "timestamp_ms")
    ts = pc.coalesce(ts, parse_created_at_array(created))
    event_type = pa.array(
        [kind for _, kind in _NOTICE_ORDER] + ["unknown"], pa.string()
    ).take(pa.array(kinds))
    out = {
        "event_type": event_type, "timestamp": ts, "status_id": status_id, "user_id": user_id,
        "up_to_status_id": up_to, "limit_track": track, "code": code, "message": message,
        "withheld_in_countries": countries,
    }  # fmt: skip
    return out, slow
