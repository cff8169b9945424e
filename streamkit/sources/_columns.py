"""Helpers the source decoders share: schemas with documented fields, Arrow tables built from
Python lists, ISO 8601 datetimes as epoch microseconds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

__all__ = ["Columns", "documented_schema", "int64", "iso_us"]


def documented_schema(fields: Sequence[tuple[str, pa.DataType, bool, str]],
                      metadata: Mapping[str, str]) -> pa.Schema:
    """A schema of ``(name, type, nullable, doc)`` fields, each doc in ``field.metadata[b"doc"]``.

    Examples
    --------
    >>> s = documented_schema([("id", pa.int64(), False, "The id.")], {"streamkit.table": "t"})
    >>> s.field("id").metadata[b"doc"], s.metadata[b"streamkit.table"]
    (b'The id.', b't')
    """
    return pa.schema(
        [pa.field(n, t, nullable=nl, metadata={"doc": d}) for n, t, nl, d in fields],
        metadata=dict(metadata),
    )


class Columns:
    """Python lists per column, turned into one Arrow table of an explicit schema.

    Examples
    --------
    >>> cols = Columns(pa.schema([("id", pa.int64()), ("text", pa.string())]))
    >>> cols.add(id=1, text="a"); cols.add(id=2)
    >>> cols.table().to_pylist()
    [{'id': 1, 'text': 'a'}, {'id': 2, 'text': None}]
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.cols: dict[str, list[Any]] = {name: [] for name in schema.names}

    def add(self, **values: Any) -> None:
        """Append one row; a column not named is null."""
        for name, col in self.cols.items():
            col.append(values.get(name))

    def table(self) -> pa.Table:
        """The rows added so far."""
        return pa.table([pa.array(self.cols[f.name], type=f.type) for f in self.schema], schema=self.schema)


def iso_us(value: Any) -> int | None:
    """An ISO 8601 / RFC 3339 datetime (``2019-12-08T03:48:33.901Z``) as epoch microseconds
    (UTC when it names no zone); None for anything else.

    Examples
    --------
    >>> iso_us("1970-01-01T00:00:01.5Z"), iso_us("1970-01-01T00:00:01"), iso_us("soon"), iso_us(None)
    (1500000, 1000000, None, None)
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return int(dt.timestamp() * 1_000_000)
    except (OverflowError, OSError, ValueError):
        return None


def int64(value: Any) -> int | None:
    """An int64 from a JSON integer or a string of ASCII digits; None for anything else
    (booleans, floats, out-of-range numbers): a wrongly typed field is dropped, not coerced.

    Examples
    --------
    >>> int64(5), int64("1067094924124872705"), int64(True), int64(0.0), int64("9" * 20)
    (5, 1067094924124872705, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        n = int(value)
        return n if n < 2**63 else None
    return None
