"""The reading side of a dataset: :func:`read`, :func:`read_events`, :func:`dataset_source`.

Reads only complete part files (``DatasetWriter`` writes them under a temporary name and
renames them), so it is safe while a collection writes. ``streamkit.read``,
``streamkit.read_events`` and ``streamkit.sink.read`` are these functions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from . import schema as _schema
from ._exceptions import ConfigError, SinkError
from .wal import _read_json, _sink_error

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["dataset_source", "read", "read_events"]

MANIFEST_NAME = "streamkit.json"
EVENTS_DIR = "events"
_PARTITIONING = pads.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")

def _dataset_root(path: os.PathLike[str] | str) -> Path:
    root = Path(path)
    if not root.exists():
        raise SinkError(
            f"No dataset at {os.fspath(root)!r}: the folder does not exist. Check the path "
            "(collect(path=...) creates it)."
        )
    if not root.is_dir():
        raise SinkError(f"{os.fspath(root)!r} is a file, not a dataset folder. Check the path.")
    return root


def _read_folder(folder: Path, schema: pa.Schema, columns: Iterable[str] | None,
                 filter: pc.Expression | None = None) -> pa.Table | None:
    """Read every committed part file under ``folder``, or ``None`` if there are none."""
    return _scan_folder(folder, schema, lambda dataset: dataset.to_table(
        columns=list(columns) if columns is not None else None, filter=filter))


def _scan_folder(folder: Path, schema: pa.Schema, scan: Any) -> Any:
    """``scan(dataset)`` over the committed part files under ``folder`` (a
    :class:`pyarrow.dataset.Dataset`), or ``None`` if there are none."""
    if not folder.is_dir():
        return None
    # A file may vanish between listing and reading (recovery removing an
    # uncommitted part): list again.
    for attempt in range(3):
        try:
            dataset = pads.dataset(
                folder, schema=schema, format="parquet", partitioning=_PARTITIONING,
                ignore_prefixes=[".", "_"],
            )
            if not dataset.files:
                return None
            return scan(dataset)
        except FileNotFoundError as exc:
            if attempt == 2:
                raise _sink_error("read the dataset in", folder, exc) from exc
            time.sleep(0.05)
        except OSError as exc:
            raise _sink_error("read the dataset in", folder, exc) from exc
        except pa.ArrowException as exc:
            raise SinkError(
                f"Could not read the Parquet files in {os.fspath(folder)!r}: {exc}. A file there "
                "may be damaged or not written by streamkit; move it away and read again."
            ) from exc
    return None  # pragma: no cover


def dataset_source(path: os.PathLike[str] | str) -> Any:
    """The :class:`streamkit.sources.Source` a dataset's manifest names (v1.1 if none).

    Examples
    --------
    >>> import tempfile
    >>> from streamkit.sink import DatasetWriter
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     name = dataset_source(DatasetWriter(tmp).path).name
    >>> name
    'twitter-v1.1'
    """
    from .sources import get_source

    manifest = _read_json(Path(path) / MANIFEST_NAME, what="manifest", lenient=True)
    name = manifest.get("source_name") if isinstance(manifest, dict) else None
    return get_source(name or "twitter-v1.1")


def read(
    path: os.PathLike[str] | str,
    *,
    columns: Sequence[str] | None = None,
    include_deleted: bool = False,
    all_versions: bool = False,
) -> pd.DataFrame:
    """Read the items of a dataset, whatever its source: one row per item, sorted by its key.

    One row per item means: the newest version of each item (Mastodon edits, Bluesky post
    updates: the source's :attr:`~streamkit.sources.Source.version_column`), without the
    items that a delete in the stream removed (Twitter delete notices, Mastodon ``delete``
    events, Bluesky post deletes: :meth:`~streamkit.sources.Source.deleted_items`). Sources
    without versions or deletes (X API v2, Wikimedia) give every stored row, one per key.
    Safe while a collection is writing: only complete part files are read.

    Parameters
    ----------
    path : path-like
        The dataset folder.
    columns : sequence of str, optional
        Read only these columns (default: all).
    include_deleted : bool, default False
        Keep items that a delete in the stream asked to remove (by default they are
        dropped, as the platforms' terms require).
    all_versions : bool, default False
        Keep every stored version of each item (the edit history, oldest first) instead of
        the newest only.

    Returns
    -------
    pandas.DataFrame
        With streamkit's dtypes; empty, with every column, if nothing is committed yet.

    Raises
    ------
    SinkError
        The folder does not exist or a file cannot be read.
    ConfigError
        A column is not in the schema.

    Examples
    --------
    >>> import tempfile
    >>> from streamkit.sink import DatasetWriter
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     df = read(DatasetWriter(tmp).path)
    >>> len(df), "id" in df.columns
    (0, True)
    """
    root = _dataset_root(path)
    source = dataset_source(root)
    schema = source.item_schema
    wanted = list(schema.names) if columns is None else list(columns)
    unknown = [c for c in wanted if c not in schema.names]
    if unknown:
        raise ConfigError(f"Unknown column(s) {unknown}; the {source.items} columns are {schema.names}.")
    keys = list(source.key_columns)
    needed = wanted + [k for k in keys if k not in wanted]
    table = _read_folder(root / source.items, schema, needed)
    if table is None or not table.num_rows:
        return _schema.to_pandas(schema.empty_table())[wanted]
    table = _current_items(root, source, table, include_deleted=include_deleted, all_versions=all_versions)
    return _schema.to_pandas(table.select(wanted))


def _current_items(root: Path, source: Any, table: pa.Table, *, include_deleted: bool = False,
                   all_versions: bool = False) -> pa.Table:
    """Stored rows (with the key columns) → the items :func:`read` shows, sorted by key:
    repeated keys dropped, the newest version per identity, deleted items left out."""
    keys = list(source.key_columns)
    version = source.version_column
    identity = list(source.identity_columns)
    if not table.num_rows:
        return table
    order = [(k, "ascending") for k in keys]
    if version:  # a null version (the original) first: ascending order is the edit history
        order.insert(keys.index(version), ("__has_version", "ascending"))
        table = table.append_column("__has_version", pc.is_valid(table.column(version)))
    table = table.take(pc.sort_indices(table, sort_keys=order))
    if version:
        table = table.drop_columns(["__has_version"])
    table = _drop_repeated_keys(table, keys)  # defensive: the writer already deduped
    if version and not all_versions:
        table = _drop_repeated_keys(table, identity, keep="last")
    if not include_deleted:
        deleted = _scan_folder(root / EVENTS_DIR, source.event_schema, source.deleted_items)
        if deleted is not None and deleted.num_rows:
            table = _drop_deleted(table, deleted, identity, version)
    return table


def _drop_deleted(table: pa.Table, deleted: pa.Table, identity: list[str], version: str | None) -> pa.Table:
    """Rows of ``table`` whose identity ``deleted`` does not name (an anti-join), in their order.

    When ``deleted`` also has the version column, a row survives a delete of an older version.
    """
    # Only the identity and a row number go through the hash join: Arrow's join does not
    # carry list columns, and its output order is not the input's.
    rows = table.select(identity).append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    gone = pa.table({c: pc.cast(deleted.column(c), rows.schema.field(c).type) for c in identity})
    if version is not None and version in deleted.column_names:
        gone = gone.append_column("__deleted", pc.cast(deleted.column(version), table.schema.field(version).type))
        gone = gone.filter(pc.is_valid(gone.column("__deleted")))
        gone = gone.group_by(identity).aggregate([("__deleted", "max")])
        rows = rows.append_column("__version", table.column(version))
        joined = rows.join(gone, keys=identity, join_type="left outer")
        newer = pc.greater(joined.column("__version"), joined.column("__deleted_max"))
        joined = joined.filter(pc.or_kleene(pc.is_null(joined.column("__deleted_max")), pc.fill_null(newer, False)))
    else:
        joined = rows.join(gone, keys=identity, join_type="left anti")
    if joined.num_rows == table.num_rows:
        return table
    return table.take(pa.array(np.sort(joined.column("__row").to_numpy())))


def _drop_repeated_keys(table: pa.Table, keys: Sequence[str], *, keep: str = "first") -> pa.Table:
    """Of rows sorted by ``keys``, keep the first (or ``keep="last"``) of each run with equal keys."""
    if table.num_rows < 2 or not keys:
        return table
    same = np.ones(table.num_rows - 1, dtype=bool)
    for key in keys:
        column = table.column(key).combine_chunks()
        a, b = column.slice(1), column.slice(0, table.num_rows - 1)
        equal = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
        same &= equal | both_null
    if not same.any():
        return table
    if keep == "last":
        return table.filter(pa.array(np.concatenate([~same, [True]])))
    return table.filter(pa.array(np.concatenate([[True], ~same])))


def read_events(path: os.PathLike[str] | str) -> pd.DataFrame:
    """Read every stored event (delete, limit, warning, ...), in the order received.

    Parameters
    ----------
    path : path-like
        The dataset folder.

    Returns
    -------
    pandas.DataFrame
        One row per event; empty (with every column) if there are none.

    Raises
    ------
    SinkError
        The folder does not exist or a file cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> from streamkit.sink import DatasetWriter
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     df = read_events(DatasetWriter(tmp).path)
    >>> len(df), "event_type" in df.columns
    (0, True)
    """
    root = _dataset_root(path)
    schema = dataset_source(root).event_schema
    table = _read_folder(root / EVENTS_DIR, schema, None)
    if table is None:
        table = schema.empty_table()
    elif table.num_rows:
        table = table.take(pc.sort_indices(table, sort_keys=[("received_at", "ascending")]))
    return _schema.to_pandas(table)
