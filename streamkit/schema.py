"""The flat Arrow schema of a tweet and of the events table, and raw JSON → Arrow columns.

This module is the one place that says what a stored tweet looks like. The sink writes
:data:`TWEET_SCHEMA` and :data:`EVENT_SCHEMA` to Parquet exactly (never inferred, so a
column that is null in one batch keeps its type), the live view and ``streamkit.read()``
hand researchers :func:`to_pandas` frames, and the stream's listener dispatch classifies
messages with :func:`message_kind`.

:func:`decode_batch` turns a batch of raw v1.1 messages (bytes as received) into the two
tables, by two paths that give identical tables:

* the Arrow path (:mod:`streamkit._schema_arrow`, batches of :data:`_ARROW_MIN_BATCH`
  messages or more): ``pyarrow.json`` parses the joined batch on Arrow's threads and Acero
  projections flatten it, with the GIL released nearly throughout, so the collector's
  network and WAL threads keep running while a batch decodes;
* the msgspec path, the reference: each message is decoded once, by msgspec, straight into
  a typed struct that names only the fields the schema needs; rows are accumulated as
  tuples and every column is built with one ``pyarrow.array`` call per batch. A message
  whose fields have unexpected types is decoded again untyped and flattened leniently
  (wrong values become nulls), so one odd message costs a little time and never the
  batch. Small batches, and every message the Arrow path cannot prove it decodes exactly
  as this one would (malformed, oddly typed, ambiguous), take this path, one by one.

Known differences, on hand-crafted input only: a status without an
``in_reply_to_status_id`` key (but with an id, a text and a user) holding an out-of-range
float literal such as ``2e308`` in a field streamkit does not read is rejected
(malformed_json) by the msgspec path and kept by the Arrow path; and messages holding 400
brackets or more go to msgspec whole, so only a Python recursion limit lowered far below
its default (msgspec failing under 400 levels of nesting) could make the paths differ.

Examples
--------
>>> from streamkit.schema import decode_batch, to_pandas
>>> status = (b'{"id": 1, "id_str": "1", "created_at": "Wed Oct 10 20:19:24 +0000 2018",'
...           b' "text": "hello #world", "in_reply_to_status_id": null,'
...           b' "user": {"id": 6253282, "screen_name": "TwitterAPI"},'
...           b' "entities": {"hashtags": [{"text": "world"}]}}')
>>> batch = decode_batch([status, b'{"limit": {"track": 42}}', b"not json"],
...                      received_at_us=1539202765000000)
>>> batch.tweets.num_rows, batch.events.num_rows, batch.rejected
(1, 1, {'malformed_json': 1})
>>> row = batch.tweets.to_pylist()[0]
>>> row["text"], row["user_screen_name"], row["hashtags"], row["tweet_type"]
('hello #world', 'TwitterAPI', ['world'], 'original')
>>> str(row["created_at"])
'2018-10-10 20:19:24+00:00'
>>> batch.events.column("limit_track").to_pylist()
[42]
>>> to_pandas(batch.tweets)["user_id"].dtype
Int64Dtype()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa

from streamkit import _schema_arrow as _arrow
from streamkit import _schema_arrow_flat as _flat
from streamkit import _schema_structs as _structs
from streamkit._exceptions import ConfigError
from streamkit._schema_events import EVENT_KINDS, MESSAGE_KINDS, event_row, message_kind
from streamkit._schema_extract import ROW_COLUMNS, status_row
from streamkit._schema_time import TIMESTAMP_TYPE, parse_created_at_array

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_KINDS",
    "EVENT_SCHEMA",
    "MESSAGE_KINDS",
    "REJECT_REASONS",
    "SCHEMA_VERSION",
    "TWEET_COLUMNS",
    "TWEET_SCHEMA",
    "TWEET_TYPES",
    "DecodedBatch",
    "decode_batch",
    "empty_events",
    "empty_tweets",
    "message_kind",
    "to_pandas",
]

logger = logging.getLogger("streamkit.schema")

#: Bumped whenever a column is added, removed, renamed or changes type.
SCHEMA_VERSION: int = 1

#: Values of the ``tweet_type`` column.
TWEET_TYPES = ("original", "reply", "retweet", "quote")

#: Keys of :attr:`DecodedBatch.rejected`.
REJECT_REASONS = (
    "invalid_utf8",  # the bytes are not UTF-8 (anywhere in the message)
    # not one JSON document; also lone UTF-16 surrogate escapes ("\ud800") and numbers
    # too large to represent (1e400) where the decoder has to read them
    "malformed_json",
    "not_an_object",  # valid JSON, but an array, string, number, ...
    "status_without_id",  # a status whose id/id_str is missing or not an int64
    "too_deep",  # nested deeper than msgspec's recursion limit
    "not_bytes",  # the item is not bytes, bytearray, memoryview or str
    "decoder_error",  # a bug in streamkit: logged with its traceback; please report it
)

_TS = TIMESTAMP_TYPE
_STR_LIST = pa.list_(pa.string())

# name, type, nullable, one-line doc
_TWEET_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("id", pa.int64(), False, "Tweet id (from `id`, else `id_str`)."),
    ("created_at", _TS, True, "When the tweet was posted (Twitter's `created_at`), UTC."),
    ("text", pa.string(), True,
     "Full text: `extended_tweet.full_text`, else `full_text`, else `text`; for a retweet "
     "'RT @<screen_name>: ' + the retweeted tweet's full text. HTML entities (&amp; &lt; "
     "&gt;) are kept as Twitter sends them."),
    ("lang", pa.string(), True, "Language Twitter detected (BCP 47), or 'und'."),
    ("source", pa.string(), True,
     "The posting app's name: the anchor text of Twitter's `source` HTML, unescaped."),
    ("tweet_type", pa.string(), False,
     "original, reply, retweet or quote; precedence retweet > quote > reply. A reply has "
     "`in_reply_to_status_id` or `in_reply_to_user_id`."),
    ("user_id", pa.int64(), True, "Author's user id."),
    ("user_screen_name", pa.string(), True, "Author's @handle, without the @."),
    ("user_name", pa.string(), True, "Author's display name."),
    ("user_description", pa.string(), True, "Author's profile bio."),
    ("user_location", pa.string(), True, "Author's free-text profile location."),
    ("user_verified", pa.bool_(), True, "Whether the author is verified."),
    ("user_followers_count", pa.int64(), True, "Author's followers when the tweet was sent."),
    ("user_friends_count", pa.int64(), True, "Accounts the author follows."),
    ("user_statuses_count", pa.int64(), True, "Tweets the author has posted."),
    ("user_created_at", _TS, True, "When the author's account was created, UTC."),
    ("in_reply_to_status_id", pa.int64(), True, "Id of the tweet this replies to."),
    ("in_reply_to_user_id", pa.int64(), True, "Id of the user this replies to."),
    ("in_reply_to_screen_name", pa.string(), True, "Screen name of the user this replies to."),
    ("retweeted_status_id", pa.int64(), True, "For a retweet, the id of the retweeted tweet."),
    ("retweeted_user_screen_name", pa.string(), True,
     "For a retweet, the retweeted tweet's author."),
    ("quoted_status_id", pa.int64(), True,
     "Id of the quoted tweet (for a retweet of a quote, the one the retweeted tweet quotes)."),
    ("quoted_user_screen_name", pa.string(), True, "Author of the quoted tweet."),
    ("hashtags", _STR_LIST, True,
     "Hashtag texts without '#', in order, repeats kept; from the full (extended) entities, "
     "the retweeted tweet's for a retweet. Null only when the tweet has no entities."),
    ("mentions", _STR_LIST, True,
     "Screen names mentioned, in order; a retweet starts with the retweeted author (as in "
     "'RT @author:' of `text`)."),
    ("urls", _STR_LIST, True, "Links in the text, as `expanded_url` (else the t.co `url`)."),
    ("media_urls", _STR_LIST, True,
     "`media_url_https` of each photo/video/GIF, from `extended_entities` (all media), "
     "else `entities.media`."),
    ("longitude", pa.float64(), True, "Exact location: `coordinates.coordinates[0]`."),
    ("latitude", pa.float64(), True, "Exact location: `coordinates.coordinates[1]`."),
    ("place_full_name", pa.string(), True, "Tagged place, e.g. 'San Francisco, CA'."),
    ("place_country_code", pa.string(), True, "Tagged place's ISO country code."),
    ("retweet_count", pa.int64(), True, "Retweets when delivered (usually 0 on streams)."),
    ("favorite_count", pa.int64(), True, "Likes when delivered (usually 0 on streams)."),
    ("reply_count", pa.int64(), True, "Replies when delivered."),
    ("quote_count", pa.int64(), True, "Quotes when delivered."),
    ("possibly_sensitive", pa.bool_(), True, "Twitter's flag for links/media that may be sensitive."),
    ("filter_level", pa.string(), True, "none, low or medium: the stream filter level it met."),
    ("received_at", _TS, False, "When streamkit received the message, UTC."),
    ("raw", pa.string(), True,
     "The message exactly as received (UTF-8); null when collected with keep_raw=False."),
]  # fmt: skip

_EVENT_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("event_type", pa.string(), False, "What the message is: " + ", ".join(EVENT_KINDS) + "."),
    ("received_at", _TS, False, "When streamkit received the message, UTC."),
    ("timestamp", _TS, True,
     "When Twitter sent it: `timestamp_ms` (else `created_at` for event/direct_message)."),
    ("status_id", pa.int64(), True,
     "delete / status_withheld: the tweet; event: the target tweet, if any."),
    ("user_id", pa.int64(), True,
     "delete, scrub_geo, status_withheld, user_withheld: the user; event: the source user; "
     "direct_message: the sender; warning: the user, if any."),
    ("up_to_status_id", pa.int64(), True, "scrub_geo: strip geo up to this tweet id."),
    ("limit_track", pa.int64(), True,
     "limit: undelivered tweets since the connection opened (as Twitter reports it)."),
    ("code", pa.string(), True, "warning code, disconnect code, or the event name."),
    ("message", pa.string(), True,
     "warning message, disconnect reason, or direct message text."),
    ("withheld_in_countries", _STR_LIST, True, "status_withheld / user_withheld countries."),
    ("raw", pa.string(), True,
     "The message exactly as received (UTF-8); null when collected with keep_raw=False."),
]  # fmt: skip


def _schema(fields: list[tuple[str, pa.DataType, bool, str]], table: str) -> pa.Schema:
    return pa.schema(
        [pa.field(n, t, nullable=nl, metadata={"doc": d}) for n, t, nl, d in fields],
        metadata={
            "streamkit.table": table,
            "streamkit.schema_version": str(SCHEMA_VERSION),
        },
    )


#: Schema of the tweets table: one row per status. Each field's ``metadata[b"doc"]``
#: documents it; the schema metadata carries ``streamkit.schema_version``.
TWEET_SCHEMA: pa.Schema = _schema(_TWEET_FIELDS, "tweets")

#: Schema of the events table: one row per non-status message (notices and unknowns).
EVENT_SCHEMA: pa.Schema = _schema(_EVENT_FIELDS, "events")

#: Tweet column name → one-line description, in schema order (for docs and README).
TWEET_COLUMNS: dict[str, str] = {n: d for n, _, _, d in _TWEET_FIELDS}

#: Event column name → one-line description, in schema order.
EVENT_COLUMNS: dict[str, str] = {n: d for n, _, _, d in _EVENT_FIELDS}

assert ROW_COLUMNS == tuple(TWEET_SCHEMA.names[:-2]), "extractor and schema disagree"

_EVENT_ROW_COLUMNS = EVENT_SCHEMA.names[:1] + EVENT_SCHEMA.names[2:-1]
_TS_ROW_COLUMNS = frozenset({"created_at", "user_created_at"})
# Below this many messages the Arrow path's fixed cost (a few ms) outweighs what it saves.
_ARROW_MIN_BATCH = 1000
_STATUS_FIELDS = [f.name for f in _arrow.READ_SCHEMA if f.name not in _arrow.NOTICE_TYPES]
# An Arrow string array addresses its data with int32 offsets.
_RAW_CHUNK_BYTES = 2**31 - 1


@dataclass
class DecodedBatch:
    """The result of :func:`decode_batch`.

    Attributes
    ----------
    tweets : pyarrow.Table
        :data:`TWEET_SCHEMA` exactly; one row per status, in input order, duplicates kept.
    events : pyarrow.Table
        :data:`EVENT_SCHEMA` exactly; one row per other JSON object, in input order.
    rejected : dict[str, int]
        Reason (see :data:`REJECT_REASONS`) → number of messages skipped for it.
    tweet_index : numpy.ndarray
        int64; for each tweet row, the position of its message in the input.
    event_index : numpy.ndarray
        int64; for each event row, the position of its message in the input.
    """

    tweets: pa.Table
    events: pa.Table
    rejected: dict[str, int]
    tweet_index: np.ndarray
    event_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def n_rejected(self) -> int:
        """Total number of messages skipped."""
        return sum(self.rejected.values())


def _received(received_at_us: Any, n: int) -> np.ndarray:
    if received_at_us is None:
        return np.full(n, time.time_ns() // 1000, dtype=np.int64)
    if isinstance(received_at_us, (int, np.integer)) and not isinstance(received_at_us, bool):
        return np.full(n, int(received_at_us), dtype=np.int64)
    try:
        arr = np.asarray(received_at_us, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(
            "received_at_us must be None, an int, or a sequence of ints (microseconds since "
            f"the epoch), one per message; got {type(received_at_us).__name__}"
        ) from exc
    if arr.shape != (n,):
        raise ConfigError(
            f"received_at_us has shape {arr.shape} but there are {n} messages: pass one "
            "timestamp per message, a single int, or None for now"
        )
    return arr


def _as_bytes(m: Any) -> bytes | str:
    """The message as bytes, or the reason (a str) it cannot be one."""
    if type(m) is bytes:
        return m
    if isinstance(m, (bytearray, memoryview)):
        try:
            return bytes(m)
        except (TypeError, ValueError, BufferError):
            return "not_bytes"
    if isinstance(m, str):
        try:
            return m.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates
            return "invalid_utf8"
    if isinstance(m, bytes):
        return bytes(m)
    return "not_bytes"


def _decode_reason(m: bytes) -> str:
    try:
        m.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    return "malformed_json"


_untyped = msgspec.json.Decoder()


def decode_batch(
    messages: Sequence[bytes],
    *,
    received_at_us: Sequence[int] | np.ndarray | int | None = None,
    keep_raw: bool = True,
) -> DecodedBatch:
    """Decode raw v1.1 streaming messages into a tweets table and an events table.

    Never raises on message content: invalid UTF-8 and malformed JSON are counted in
    ``rejected`` and skipped; missing, null or wrongly typed fields at any depth become
    nulls. Valid JSON objects that are neither a status nor a known notice land in the
    events table as ``"unknown"``.

    The work is done by Arrow's multi-threaded JSON reader and compute kernels, with the
    GIL released; a message that path cannot decode exactly as the msgspec reference
    implementation would (a malformed message, an unusual shape) is decoded by the
    reference, alone, so the result never depends on which path ran.

    Parameters
    ----------
    messages : sequence of bytes
        One complete JSON message each, as received (``bytearray``, ``memoryview`` and
        ``str`` are accepted too).
    received_at_us : int, sequence of int or numpy array, optional
        Receive time in microseconds since the epoch: one per message, one for all, or
        None for now.
    keep_raw : bool, default True
        Store each message verbatim in the ``raw`` column; when False the column is null
        (it stays in the schema).

    Returns
    -------
    DecodedBatch

    Raises
    ------
    ConfigError
        If ``received_at_us`` is a sequence whose length differs from ``messages``.

    Examples
    --------
    >>> b = decode_batch([b'{"delete": {"status": {"id": 5, "user_id": 3}}}', b"[1]"],
    ...                  received_at_us=0, keep_raw=False)
    >>> b.tweets.num_rows, b.events.to_pylist()[0]["status_id"], b.rejected
    (0, 5, {'not_an_object': 1})
    """
    return _decode(messages, received_at_us, keep_raw)


def _decode_reference(
    messages: Sequence[bytes],
    *,
    received_at_us: Sequence[int] | np.ndarray | int | None = None,
    keep_raw: bool = True,
) -> DecodedBatch:
    """:func:`decode_batch` with msgspec alone: the reference the Arrow path must equal."""
    return _decode(messages, received_at_us, keep_raw, path="reference")


@dataclass
class _Part:
    """Rows decoded by one path: columns (without received_at and raw) and positions."""

    tweets: dict[str, Any]
    tweet_pos: np.ndarray
    events: dict[str, Any]
    event_pos: np.ndarray


def _decode(
    messages: Sequence[bytes],
    received_at_us: Any,
    keep_raw: bool,
    *,
    path: str = "auto",
    trace: list[np.ndarray] | None = None,
) -> DecodedBatch:
    """Decode by ``path``: "arrow", "reference", or "auto" (Arrow from
    :data:`_ARROW_MIN_BATCH` messages on). ``trace``, when given, receives the mask of the
    messages that msgspec decoded."""
    n = len(messages)
    received = _received(received_at_us, n)
    msgs, slow = _normalized(messages)
    joined = _arrow.join(msgs)
    parts = []
    if n and (path == "arrow" or (path == "auto" and n >= _ARROW_MIN_BATCH)):
        slow |= _arrow.prescan(joined)
        part = _fast(msgs, joined, slow)
        if part is not None:
            parts.append(part)
    else:
        slow[:] = True
    if trace is not None:
        trace.append(slow)
    part, rejected = _reference(messages, np.flatnonzero(slow))
    parts.append(part)

    tweet_cols, tweet_index = _merge(parts, "tweets", ROW_COLUMNS)
    event_cols, event_index = _merge(parts, "events", _EVENT_ROW_COLUMNS)
    tweets = _assemble(TWEET_SCHEMA, tweet_cols, received[tweet_index],
                       joined, tweet_index if keep_raw else None)  # fmt: skip
    events = _assemble(EVENT_SCHEMA, event_cols, received[event_index],
                       joined, event_index if keep_raw else None)  # fmt: skip
    if rejected:
        logger.debug(
            "decode_batch: %d of %d messages rejected: %s", sum(rejected.values()), n, rejected
        )
    return DecodedBatch(tweets, events, rejected, tweet_index, event_index)


def _normalized(messages: Sequence[bytes]) -> tuple[Sequence[bytes], np.ndarray]:
    """The messages as bytes (b"" where impossible), and a mask of those to leave to msgspec."""
    n = len(messages)
    slow = np.zeros(n, dtype=bool)
    if n == 0 or set(map(type, messages)) == {bytes}:
        return messages, slow
    msgs: list[bytes] = []
    for i, m in enumerate(messages):
        if type(m) is not bytes:
            as_bytes = _as_bytes(m)
            if isinstance(as_bytes, str):
                slow[i] = True
                as_bytes = b""
            m = as_bytes
        msgs.append(m)
    return msgs, slow


def _fast(msgs: Sequence[bytes], joined: _arrow.Joined, slow: np.ndarray) -> _Part | None:
    """The Arrow path over the messages not marked ``slow``; marks the ones it gives up."""
    table, pos = _arrow.read(msgs, joined, slow)
    if table is None:
        return None
    tweets, t_slow, is_status, first_notice = _flat.tweets(table, _STATUS_FIELDS)
    late = is_status & t_slow
    keep = is_status & ~t_slow
    # Notices are few: their kind is settled in Python, on their raw bytes.
    rows = np.flatnonzero(~is_status)
    notice_rows: list[int] = []
    kinds, raws = [], []
    buf, starts, lengths = joined.buf, joined.starts, joined.lengths
    firsts = first_notice.take(pa.array(rows)).to_pylist()
    for r, first in zip(rows.tolist(), firsts, strict=True):
        at = int(starts[pos[r]])
        raw = buf[at : at + int(lengths[pos[r]])]
        kind = _flat.notice_kind(raw, first)
        if kind is None:
            late[r] = True
        else:
            notice_rows.append(r)
            kinds.append(kind)
            raws.append(raw)
    n_rows = np.asarray(notice_rows, dtype=np.int64)
    if len(n_rows):
        events, e_slow = _flat.events(table.take(pa.array(n_rows)), kinds, raws)
        late[n_rows[e_slow]] = True
    else:
        events, e_slow = _row_arrays(EVENT_SCHEMA, _EVENT_ROW_COLUMNS, []), np.zeros(0, bool)
    slow[pos[late]] = True
    # one filter per table, not per column: each call hands the GIL over
    if not keep.all():
        tweets = _flat.columns(pa.table(tweets).filter(pa.array(keep)))
    if e_slow.any():
        events = _flat.columns(pa.table(events).filter(pa.array(~e_slow)))
    return _Part(tweets, pos[keep], events, pos[n_rows[~e_slow]])


def _reference(messages: Sequence[Any], positions: np.ndarray) -> tuple[_Part, dict[str, int]]:
    """The msgspec path, one message at a time, over the given positions (ascending)."""
    rejected: dict[str, int] = {}
    rows: list[tuple] = []
    tweet_idx: list[int] = []
    ev_rows: list[tuple] = []
    ev_idx: list[int] = []
    decode = _structs.decoder.decode
    unset = _structs.UNSET

    for i in positions.tolist():
        m = messages[i]
        if type(m) is not bytes:
            converted = _as_bytes(m)
            if isinstance(converted, str):
                rejected[converted] = rejected.get(converted, 0) + 1
                continue
            m = converted
        # msgspec does not check the UTF-8 of fields it skips, and `raw` must be valid
        # UTF-8; ASCII (the usual case: Twitter escapes non-ASCII) needs no decode.
        if not m.isascii():
            try:
                m.decode("utf-8")
            except UnicodeDecodeError:
                rejected["invalid_utf8"] = rejected.get("invalid_utf8", 0) + 1
                continue
        try:
            try:
                s = decode(m)
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
                s = None  # wrong field types or bad JSON: _lenient tells which
            if s is not None and s.in_reply_to_status_id is not unset:
                row = status_row(s)
                kind = "status"
            else:
                kind, row = _lenient(m)
        except RecursionError:
            kind, row = "too_deep", None
        except Exception:  # one message must never cost the batch
            logger.warning("decode_batch: message %d could not be decoded; skipped", i,
                           exc_info=True)  # fmt: skip
            kind, row = "decoder_error", None
        if row is None:
            reason = "status_without_id" if kind == "status" else kind
            rejected[reason] = rejected.get(reason, 0) + 1
        elif kind == "status":
            rows.append(row)
            tweet_idx.append(i)
        else:
            ev_rows.append(row)
            ev_idx.append(i)
    tweets = _row_arrays(TWEET_SCHEMA, ROW_COLUMNS, rows)
    del rows  # the batch's strings are in Arrow now; free them before the events
    events = _row_arrays(EVENT_SCHEMA, _EVENT_ROW_COLUMNS, ev_rows)
    part = _Part(tweets, np.asarray(tweet_idx, dtype=np.int64),
                 events, np.asarray(ev_idx, dtype=np.int64))  # fmt: skip
    return part, rejected


def _lenient(m: bytes) -> tuple[str, tuple | None]:
    """Untyped decode of one message: (kind or reject reason, row)."""
    try:
        obj = _untyped.decode(m)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return _decode_reason(m), None
    if type(obj) is not dict:
        return "not_an_object", None
    kind = message_kind(obj)
    if kind != "status":
        return kind, event_row(kind, obj)
    return "status", status_row(_structs.lenient_status(obj))


def _row_arrays(schema: pa.Schema, row_columns: Sequence[str], rows: list[tuple]) -> dict[str, Any]:
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(row_columns)
    arrays: dict[str, Any] = {}
    for name, values in zip(row_columns, columns, strict=True):
        if name in _TS_ROW_COLUMNS:
            arrays[name] = parse_created_at_array(values)
        elif name == "timestamp":
            arrays[name] = pa.array(values, pa.int64()).cast(_TS)
        else:
            arrays[name] = pa.array(values, schema.field(name).type)
    return arrays


def _merge(parts: list[_Part], table: str, names: Sequence[str]) -> tuple[dict[str, Any], np.ndarray]:
    """The parts' rows of one table, in input order."""
    got = [(getattr(p, table), getattr(p, table[:-1] + "_pos")) for p in parts]
    got = [(cols, pos) for cols, pos in got if len(pos)] or got[-1:]
    if len(got) == 1:
        return got[0]
    pos = np.concatenate([p for _, p in got])
    order = pa.array(np.argsort(pos, kind="stable"))
    cols = {name: pa.concat_arrays([c[name] for c, _ in got]).take(order) for name in names}
    return cols, np.sort(pos)


def _assemble(
    schema: pa.Schema,
    cols: dict[str, Any],
    received: np.ndarray,
    joined: _arrow.Joined,
    raw_pos: np.ndarray | None,
) -> pa.Table:
    n = len(received)
    arrays = dict(cols)
    arrays["received_at"] = pa.array(received, _TS)
    if raw_pos is not None and n:
        arrays["raw"] = _arrow.raw_column(joined, raw_pos, _RAW_CHUNK_BYTES)
    else:
        arrays["raw"] = pa.nulls(n, pa.string())
    return pa.Table.from_arrays([arrays[name] for name in schema.names], schema=schema)


# -- pandas -------------------------------------------------------------------------------

_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    pa.string(): pd.StringDtype("pyarrow"),
    pa.large_string(): pd.StringDtype("pyarrow"),
    _TS: pd.DatetimeTZDtype("us", "UTC"),
}


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """A tweets or events table as a DataFrame with dtypes made for analysis.

    Timestamps are ``datetime64[us, UTC]``; integers ``Int64`` and booleans ``boolean``
    (nullable, missing is ``pd.NA``); strings ``string[pyarrow]``; floats stay
    ``float64`` (missing is NaN); list columns (``hashtags``, ``mentions``, ``urls``,
    ``media_urls``, ``withheld_in_countries``) hold Python lists of str (or None), so
    ``df.explode("hashtags")`` and ``"x" in row.hashtags`` work. Works on any subset of
    the columns.

    Parameters
    ----------
    table : pyarrow.Table
        From :func:`decode_batch`, a sink, or a Parquet read.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> df = to_pandas(decode_batch([b'{"id": 7, "in_reply_to_status_id": null}']).tweets)
    >>> df.loc[0, "id"], df.loc[0, "hashtags"], str(df["received_at"].dtype)
    (np.int64(7), None, 'datetime64[us, UTC]')
    """
    lists = [
        (i, f.name)
        for i, f in enumerate(table.schema)
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
    ]
    # list columns skip Arrow's numpy conversion: it would build arrays only to discard them
    df = table.drop_columns([name for _, name in lists]).to_pandas(types_mapper=_pandas_type)
    for i, name in lists:
        values = pd.Series(table.column(i).to_pylist(), index=df.index, dtype=object)
        df.insert(i, name, values)
    return df


def _pandas_type(t: pa.DataType) -> Any:
    if pa.types.is_timestamp(t) and t.tz:
        return pd.DatetimeTZDtype(t.unit, t.tz)
    return _PANDAS_TYPES.get(t)


def empty_tweets() -> pd.DataFrame:
    """A zero-row tweets DataFrame with every column and the dtypes of :func:`to_pandas`.

    Examples
    --------
    >>> df = empty_tweets()
    >>> len(df), list(df.columns) == TWEET_SCHEMA.names, str(df["created_at"].dtype)
    (0, True, 'datetime64[us, UTC]')
    """
    return to_pandas(TWEET_SCHEMA.empty_table())


def empty_events() -> pd.DataFrame:
    """A zero-row events DataFrame with every column and the dtypes of :func:`to_pandas`.

    Examples
    --------
    >>> df = empty_events()
    >>> len(df), str(df["status_id"].dtype), str(df["timestamp"].dtype)
    (0, 'Int64', 'datetime64[us, UTC]')
    """
    return to_pandas(EVENT_SCHEMA.empty_table())
