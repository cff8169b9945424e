"""The Arrow-native fast path of :func:`streamkit.schema.decode_batch`: bytes to tables in C++.

The messages are joined with ``b"\\n"`` and parsed by ``pyarrow.json.read_json`` against
:data:`READ_SCHEMA` (multi-threaded, the GIL released); :mod:`streamkit._schema_arrow_flat`
then flattens the parsed columns with a few Acero projections and numpy steps, so the
Python work per batch grows with the number of columns, not of messages (notices, which
are few, are classified one by one). The batch's work is done in a few dozen long
GIL-free calls rather than many short ones: beside a busy Python thread every hand-over of
the GIL costs the decoder up to a switch interval (5 ms).

The msgspec implementation in :mod:`streamkit.schema` is the reference: the fast path must
give exactly its tables. Every message it cannot prove it decodes identically goes to the
reference instead ("slow"), one message at a time, so an odd message costs only itself:

* before parsing (:func:`prescan`): anything that is not one ``{...}`` object on one line of
  ASCII or valid UTF-8; ``NaN``/``Infinity`` literals, which Arrow accepts and msgspec rejects;
  nesting deep enough to reach msgspec's recursion limit (Arrow has none);
* while parsing (:func:`read`): every message of a segment that Arrow refuses (malformed
  JSON, a field of the wrong type, a duplicate key, a lone surrogate ...), found by
  splitting the failing segment instead of giving up on the batch;
* after parsing (:mod:`streamkit._schema_arrow_flat`): messages whose kind Arrow cannot tell
  (a null key and an absent key look the same to it), values the typed decoder would reject
  (a null inside a list, an infinite coordinate), ids only a ``*_str`` can give.

:data:`READ_SCHEMA` is derived from the msgspec structs of :mod:`streamkit._schema_structs`,
so Arrow refuses a value of a wrong type exactly where the typed decoder does.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from streamkit import _schema_structs as _structs

__all__ = ["NOTICE_TYPES", "READ_SCHEMA", "Joined", "join", "prescan", "raw_column", "read"]

_mi = msgspec.inspect


def _arrow_type(t: msgspec.inspect.Type) -> pa.DataType:
    if isinstance(t, _mi.UnionType):
        inner = [x for x in t.types if not isinstance(x, _mi.NoneType)]
        if len(inner) != 1:  # pragma: no cover - guarded by the struct definitions
            raise TypeError(f"unsupported union {t}")
        return _arrow_type(inner[0])
    if isinstance(t, _mi.IntType):  # the structs bound every int to int64's range
        return pa.int64()
    if isinstance(t, _mi.FloatType):
        return pa.float64()
    if isinstance(t, _mi.StrType):
        return pa.string()
    if isinstance(t, _mi.BoolType):
        return pa.bool_()
    if isinstance(t, _mi.ListType):
        return pa.list_(_arrow_type(t.item_type))
    if isinstance(t, _mi.StructType):
        return pa.struct([(f.encode_name, _arrow_type(f.type)) for f in t.fields])
    raise TypeError(f"unsupported type {t}")  # pragma: no cover


_I, _S = pa.int64(), pa.string()
_TS = ("timestamp_ms", _S)
#: The notice bodies that the fast path reads (``event`` and ``friends`` always take the
#: reference: an event's ``source`` is an object where a status has a string).
NOTICE_TYPES: dict[str, pa.StructType] = {
    "delete": pa.struct([
        ("status", pa.struct([("id", _I), ("id_str", _S), ("user_id", _I), ("user_id_str", _S)])),
        _TS,
    ]),
    "limit": pa.struct([("track", _I), _TS]),
    "scrub_geo": pa.struct([("user_id", _I), ("user_id_str", _S), ("up_to_status_id", _I),
                            ("up_to_status_id_str", _S), _TS]),
    "status_withheld": pa.struct([("id", _I), ("id_str", _S), ("user_id", _I),
                                  ("user_id_str", _S), ("withheld_in_countries", pa.list_(_S)),
                                  _TS]),
    "user_withheld": pa.struct([("id", _I), ("id_str", _S), ("withheld_in_countries", pa.list_(_S)),
                                _TS]),
    "warning": pa.struct([("code", _S), ("message", _S), ("user_id", _I), ("user_id_str", _S),
                          _TS]),
    "disconnect": pa.struct([("code", _I), ("reason", _S), _TS]),
    "direct_message": pa.struct([("sender_id", _I), ("sender_id_str", _S), ("text", _S),
                                 ("created_at", _S), _TS]),
}  # fmt: skip

_STATUS_TYPE = _arrow_type(_mi.type_info(_structs.Status))
#: What ``read_json`` is told the messages hold: every field of the typed
#: :class:`~streamkit._schema_structs.Status`, with msgspec's types, and the notice bodies.
READ_SCHEMA = pa.schema(
    [(f.name, f.type) for f in _STATUS_TYPE] + list(NOTICE_TYPES.items())  # type: ignore[attr-defined]
)

# A message nesting this deep (counted conservatively, in brackets) is left to msgspec,
# whose limit is Python's recursion limit minus the caller's stack depth; realistic
# statuses hold well under 200 brackets.
_MAX_BRACKETS = 400
_WIN = 1024  # bytes per bracket-count window; a row's count may include 2 windows of others
_SCAN_CHUNK = 4 << 20  # bytes per numpy step of the scan (a multiple of _WIN)
_MIN_BLOCK = 4 << 20  # read_json block size: large blocks parse fastest here
_SPLIT = 8  # a failing segment is split in this many parts ...
_LEAF = 8  # ... down to this many messages, which then take the reference
_ALNUM = np.zeros(256, dtype=bool)
_ALNUM[[*b"0123456789_", *range(65, 91), *range(97, 123)]] = True


@dataclass
class Joined:
    """All messages of a batch joined with ``b"\\n"``: ``buf[starts[i]:starts[i] + lengths[i]]``."""

    buf: bytes
    starts: np.ndarray
    lengths: np.ndarray

    @property
    def n(self) -> int:
        return len(self.starts)


def join(msgs: Sequence[bytes]) -> Joined:
    """Join the messages (bytes each) with newlines and record where each one lies."""
    lengths = np.fromiter(map(len, msgs), dtype=np.int64, count=len(msgs))
    starts = np.zeros(len(msgs), dtype=np.int64)
    if len(msgs) > 1:
        np.cumsum(lengths[:-1] + 1, out=starts[1:])
    return Joined(b"\n".join(msgs), starts, lengths)


def prescan(j: Joined) -> np.ndarray:
    """Boolean mask of the messages the fast path must leave to the reference.

    Arrow's UTF-8 check and eight numpy steps over the joined bytes: the GIL is released
    in each, and few hand-overs keep the decoder from waiting on a busy thread.
    """
    a = np.frombuffer(j.buf, dtype=np.uint8)
    starts, lengths = j.starts, j.lengths
    ends = starts + lengths
    slow = lengths < 2
    ok = ~slow
    # One object per line: Arrow skips blank lines, splits at newlines, reads `{}{}` as
    # two rows and crashes on a line that is a bare `null`.
    slow[ok] |= (a[starts[ok]] != 0x7B) | (a[ends[ok] - 1] != 0x7D)
    try:  # UTF-8, checked by Arrow with the GIL released
        _whole(j).view(pa.large_string()).validate(full=True)
    except pa.ArrowInvalid:  # rare: find the culprits one by one
        for i in np.flatnonzero(~slow).tolist():
            slow[i] = _bad_utf8(j.buf[starts[i] : ends[i]])

    # Chunks of a few MB: temporaries that stay in cache, and few GIL hand-overs (each numpy
    # call releases the GIL; getting it back from a busy thread can take 5 ms).
    total = len(a)
    wins = np.empty(-(-total // _WIN), dtype=np.int64)
    found = []
    low, m1 = _scratch(min(total, _SCAN_CHUNK))
    for s in range(0, total, _SCAN_CHUNK):
        x = a[s : s + _SCAN_CHUNK]
        k = len(x)
        lo, b1 = low[:k], m1[:k]
        np.bitwise_and(x, 0xDF, out=lo)  # "{" -> "["
        np.equal(lo, 0x5B, out=b1)
        full = k - k % _WIN
        w = s // _WIN
        # 8 bools per uint64: no byte lane of a window's sum exceeds _WIN // 8 < 256
        lanes = b1[:full].view(np.uint64).reshape(-1, _WIN // 8).sum(axis=1, dtype=np.uint64)
        wins[w : w + full // _WIN] = lanes.view(np.uint8).reshape(-1, 8).sum(axis=1)
        if full < k:
            wins[w + full // _WIN] = np.count_nonzero(b1[full:])
        # Candidates, in one pass: the bytes 0x08-0x0F (a newline inside a message splits
        # it in two lines; Arrow may end a line at \r; \t, rare, is left to msgspec too)
        # and the capitals H to O (NaN and Inf literals: Arrow accepts, msgspec rejects).
        np.bitwise_or(x, 0x07, out=lo)
        np.bitwise_and(lo, 0xBF, out=lo)
        np.equal(lo, 0x0F, out=b1)
        found.append(np.flatnonzero(b1) + s)
    cum = np.zeros(len(wins) + 1, dtype=np.int64)
    np.cumsum(wins, out=cum[1:])
    slow |= cum[-(-ends // _WIN)] - cum[starts // _WIN] >= _MAX_BRACKETS
    p = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    ctrl = p[a[p] < 0x10]
    rows = np.searchsorted(starts, ctrl, side="right") - 1
    slow[rows[ctrl < ends[rows]]] = True  # the separators between messages are fine
    p = p[p + 3 < total]  # a literal is followed by at least a "}"
    p = p[(a[p + 1] | 0x0F) == 0x6F]  # "a" or "n"
    p = p[((a[p] == 0x4E) & (a[p + 1] == 0x61) & (a[p + 2] == 0x4E))
          | ((a[p] == 0x49) & (a[p + 1] == 0x6E) & (a[p + 2] == 0x66))]  # fmt: skip
    if len(p):
        after = a[p + 3]
        bad = ~_ALNUM[after] | ((a[p] == 0x49) & (after == 0x69))  # "Infinity"
        bad &= (p == 0) | ~_ALNUM[a[np.maximum(p - 1, 0)]]
        if bad.any():
            slow[np.searchsorted(starts, p[bad], side="right") - 1] = True
    return slow


_local = threading.local()


def _scratch(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-thread scan buffers (a few MB), kept: fresh memory costs page faults."""
    bufs = getattr(_local, "scan", None)
    if bufs is None or len(bufs[0]) < size:
        bufs = _local.scan = (np.empty(size, dtype=np.uint8), np.empty(size, dtype=bool))
    return bufs[0][:size], bufs[1][:size]


def _bad_utf8(m: bytes) -> bool:
    try:
        m.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _whole(j: Joined) -> pa.LargeBinaryArray:
    """The joined buffer as messages and separators in turn: msg, "\\n", msg, ..."""
    offsets = np.empty(2 * j.n, dtype=np.int64)
    offsets[0::2] = j.starts
    offsets[1::2] = j.starts + j.lengths
    size = max(2 * j.n - 1, 0)
    return pa.Array.from_buffers(
        pa.large_binary(), size, [None, pa.py_buffer(offsets[: size + 1]), pa.py_buffer(j.buf)]
    )


def _strings(j: Joined, positions: np.ndarray) -> pa.LargeStringArray:
    """The messages at ``positions`` as a large_string array (copied, GIL released).

    Only valid UTF-8 may be taken (Arrow does not check it here).
    """
    return _whole(j).take(pa.array(2 * np.asarray(positions, dtype=np.int64))).view(pa.large_string())


def raw_column(j: Joined, positions: np.ndarray, chunk_bytes: int) -> pa.Array | pa.ChunkedArray:
    """The ``raw`` column: the messages at ``positions``, as string chunks of at most
    ``chunk_bytes`` (an Arrow string array addresses its data with int32 offsets)."""
    taken = _strings(j, positions)
    lengths = j.lengths[positions]
    chunks = []
    start = 0
    while True:
        ends = np.cumsum(lengths[start:])
        stop = start + int(np.searchsorted(ends, chunk_bytes, side="right"))
        if stop == start and start < len(positions):  # pragma: no cover - one message > 2 GiB
            stop = start + 1
        chunks.append(taken.slice(start, stop - start).cast(pa.string()))
        start = stop
        if start >= len(positions):
            break
    return chunks[0] if len(chunks) == 1 else pa.chunked_array(chunks, pa.string())


def _parse(buf: memoryview, block_size: int) -> pa.Table | None:
    try:
        return pj.read_json(
            pa.BufferReader(pa.py_buffer(buf)),
            read_options=pj.ReadOptions(use_threads=True, block_size=block_size),
            parse_options=pj.ParseOptions(
                explicit_schema=READ_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def read(
    msgs: Sequence[bytes], j: Joined, slow: np.ndarray
) -> tuple[pa.Table | None, np.ndarray]:
    """Parse the messages not marked ``slow``; returns (table, positions of its rows).

    Messages of a segment Arrow refuses are marked ``slow`` (in place). A failing segment
    is split in :data:`_SPLIT` parts and the failing parts again, so one bad message costs
    about one more parse of the batch. When more than half of the parts fail, the failure
    is not one odd message but the producer: those parts go to the reference at once.
    """
    positions = np.flatnonzero(~slow)
    if not len(positions):
        return None, positions
    if len(positions) == j.n:
        buf, starts, lengths = j.buf, j.starts, j.lengths
    else:
        buf = b"\n".join(itertools.compress(msgs, (~slow).tolist()))
        lengths = j.lengths[positions]
        starts = np.zeros(len(positions), dtype=np.int64)
        np.cumsum(lengths[:-1] + 1, out=starts[1:])
    block = max(_MIN_BLOCK, 1 << (int(lengths.max()) + 2).bit_length())
    view = memoryview(buf)
    tables: list[tuple[int, pa.Table]] = []

    def parse(lo: int, hi: int) -> bool:
        table = _parse(view[starts[lo] : starts[hi - 1] + lengths[hi - 1]], block)
        # Each line starts with "{" and ends with "}", so no document spans two lines and
        # as many rows as lines means one row per line.
        if table is None or table.num_rows != hi - lo:
            return False
        tables.append((lo, table))
        return True

    failed = [] if parse(0, len(positions)) else [(0, len(positions))]
    while failed:
        lo, hi = failed.pop()
        if hi - lo <= _LEAF:
            slow[positions[lo:hi]] = True
            continue
        step = -(-(hi - lo) // _SPLIT)
        parts = [(a, min(a + step, hi)) for a in range(lo, hi, step)]
        bad = [(a, b) for a, b in parts if not parse(a, b)]
        if 2 * len(bad) > len(parts):
            for a, b in bad:
                slow[positions[a:b]] = True
        else:
            failed.extend(bad)
    if not tables:
        return None, positions[:0]
    tables.sort(key=lambda t: t[0])
    keep = np.flatnonzero(~slow)
    table = pa.concat_tables([t for _, t in tables]) if len(tables) > 1 else tables[0][1]
    return table.combine_chunks(), keep  # Acero runs several times faster on one chunk
