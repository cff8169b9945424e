"""The Parquet dataset: atomic part files, dedupe by id, the manifest, recovery, ``read()``.

Layout of a dataset at ``PATH``::

    PATH/
      streamkit.json                                  manifest (source, filters, versions)
      tweets/date=YYYY-MM-DD/part-<first>-<last>.parquet   date of created_at (UTC)
      events/date=YYYY-MM-DD/part-<first>-<last>.parquet   date received (UTC)
      _wal/                                           write-ahead log, checkpoint (hidden)

``<first>``/``<last>`` are the write-ahead log sequence numbers of the batch,
so a batch committed again after a crash lands on the same names. A part file
appears under its final name only once complete (``.part-...parquet.tmp``,
``fsync``, rename), so pandas, pyarrow, DuckDB and polars never see half a
file; they also skip the ``_wal`` folder and the dot-prefixed temporary files.

:class:`DatasetWriter` commits batches with a crash-safe, idempotent
protocol: intent record ``_wal/pending.json`` → decode → dedupe by ``id``
(within the batch and against a bounded window of recently committed ids) →
tweet part files → event part files → checkpoint ``_wal/checkpoint.json`` →
remove the intent record. :meth:`DatasetWriter.recover` redoes an interrupted
batch with its original boundaries, then commits whatever else the
write-ahead log holds.

The reading side (:func:`read`, :func:`read_events`, :func:`dataset_source`) lives in
``streamkit._read``; this module re-exports it.

Examples
--------
>>> import json, tempfile
>>> status = {"id": 1, "id_str": "1", "created_at": "Wed Oct 10 20:19:24 +0000 2018",
...           "text": "hello", "user": {"id": 2, "screen_name": "ada"},
...           "in_reply_to_status_id": None}
>>> messages = [json.dumps(status).encode()] * 2          # a duplicate
>>> with tempfile.TemporaryDirectory() as tmp:
...     ds = DatasetWriter(tmp)
...     result = ds.commit(0, 1, messages, [1_540_000_000_000_000] * 2)
...     df = read(tmp)
>>> result.tweets, result.duplicates, [f.name for f in result.files]
(1, 1, ['part-000000000000-000000000001.parquet'])
>>> df["id"].tolist(), df["text"].tolist()
([1], ['hello'])
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import logging
import os
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import schema as _schema
from ._exceptions import ConfigError, SinkError
from ._read import EVENTS_DIR, MANIFEST_NAME, dataset_source, read, read_events
from ._read import _current_items as _current_items  # cli's inspect counts rows as read() does
from ._version import __version__
from .wal import _fsync_dir, _read_json, _sink_error, _write_json_atomic

if TYPE_CHECKING:
    from .wal import WriteAheadLog

__all__ = ["CommitResult", "DatasetWriter", "dataset_source", "read", "read_events"]

logger = logging.getLogger("streamkit.sink")

TWEETS_DIR = "tweets"
WAL_DIR = "_wal"
_PENDING = "pending.json"
_CHECKPOINT = "checkpoint.json"
_SEQ_DIGITS = 12
_PART_RE = re.compile(r"^part-(\d+)-(\d+)\.parquet$")
_TMP_RE = re.compile(r"^\.part-\d+-\d+\.parquet\.tmp$")
# Recovery commits what the log holds in batches of at most this many messages / bytes.
_RECOVER_MESSAGES = 20_000
_RECOVER_BYTES = 64 << 20
# Columns whose values are (nearly) all distinct and large: a dictionary page and
# min/max statistics cost write time and bytes and never help a reader.
_NO_DICTIONARY = frozenset({"raw", "text"})
_NO_STATISTICS = frozenset({"raw", "text"})
_SECRET_KEY_RE = re.compile(
    r"secret|token|password|passwd|credential|authorization|oauth|api_?key|consumer_?key|access_?key",
    re.IGNORECASE,
)


def _part_name(first: int, last: int) -> str:
    return f"part-{first:0{_SEQ_DIGITS}d}-{last:0{_SEQ_DIGITS}d}.parquet"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _scrub(value: Any) -> Any:
    """Drop anything that looks like a credential (keys, URL user info, secret query params)."""
    if isinstance(value, dict):
        return {
            str(k): _scrub(v) for k, v in value.items() if not _SECRET_KEY_RE.search(str(k))
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        netloc = parts.netloc.rpartition("@")[2]
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not _SECRET_KEY_RE.search(k)])
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass(frozen=True)
class CommitResult:
    """What one :meth:`DatasetWriter.commit` stored.

    Attributes
    ----------
    tweets : int
        Tweet rows written (after dedupe).
    duplicates : int
        Tweets dropped because their id was already in the batch or recently committed.
    events : int
        Event rows written (deletes, limits, warnings, ...).
    rejected : dict of str to int
        Messages that could not be decoded, by reason.
    files : list of pathlib.Path
        The part files written.
    first_seq, last_seq : int
        The write-ahead log range the batch covers.
    """

    tweets: int
    duplicates: int
    events: int
    rejected: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    first_seq: int = -1
    last_seq: int = -1


class _IdWindow:
    """The ids of the most recently committed tweets, bounded, for vectorised lookups.

    Ids live in sorted numpy arrays in generations of ``capacity // 8``; a lookup
    is one ``searchsorted`` per array and the oldest generation is dropped once
    the window holds more than ``capacity`` ids, so memory stays about
    ``9/8 * capacity * 8`` bytes.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._generation = max(capacity // 8, 1)
        self._sealed: deque[np.ndarray] = deque()
        self._open = np.empty(0, dtype=np.int64)
        self._fresh: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(map(len, self._sealed)) + len(self._open) + sum(map(len, self._fresh))

    def contains(self, ids: np.ndarray) -> np.ndarray:
        found = np.zeros(len(ids), dtype=bool)
        for arr in (*self._sealed, self._open, *self._fresh):
            if len(arr) and len(ids):
                pos = np.searchsorted(arr, ids)
                np.minimum(pos, len(arr) - 1, out=pos)
                found |= arr[pos] == ids
        return found

    def add(self, ids: np.ndarray) -> None:
        if not self.capacity or not len(ids):
            return
        self._fresh.append(np.unique(ids))
        if len(self._fresh) >= 8 or sum(map(len, self._fresh)) >= self._generation:
            self._open = np.unique(np.concatenate([self._open, *self._fresh]))
            self._fresh = []
            if len(self._open) >= self._generation:
                self._sealed.append(self._open)
                self._open = np.empty(0, dtype=np.int64)
        while self._sealed and len(self) - len(self._sealed[0]) >= self.capacity:
            self._sealed.popleft()


class DatasetWriter:
    """Commit batches of raw messages to a partitioned Parquet dataset, crash-safely.

    Parameters
    ----------
    path : path-like
        The dataset folder; created (with its manifest) if missing.
    source : dict, optional
        Where the data come from (e.g. ``{"url": ..., "endpoint": "filter"}``),
        recorded in the manifest and in each file's metadata. Anything that
        looks like a credential is dropped.
    keep_raw : bool, default True
        Store each message's raw JSON in the ``raw`` column.
    compression : str or None, default "zstd"
        Parquet codec ("zstd", "snappy", "gzip", "lz4", "brotli", or None).
    compression_level : int or None, default 1
        Codec level (low: the raw JSON column dominates the write cost).
    dedupe_window : int, default 1_000_000
        How many recently committed tweet ids a new batch is checked against
        (besides itself). Seeded from the newest part files, so duplicates
        are caught across restarts too. ``0`` checks within the batch only.
    decoder : streamkit.sources.Source, optional
        The source whose messages this dataset holds (how they decode, the
        item table's folder and schema, the dedupe key). Default: Twitter
        v1.1 statuses into ``tweets/``.

    Raises
    ------
    SinkError
        The folder cannot be created, or holds a dataset of another schema version.

    Notes
    -----
    One writer per dataset at a time; readers may read while it commits.
    The write-ahead log folder (``PATH/_wal``) is :attr:`wal_dir`.

    Examples
    --------
    Messages go to the write-ahead log first; what it holds is committed by
    :meth:`commit`, or after a crash by :meth:`recover`:

    >>> import tempfile
    >>> from streamkit.wal import WriteAheadLog
    >>> notice = b'{"delete":{"status":{"id":1,"id_str":"1","user_id":2,"user_id_str":"2"}}}'
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     ds = DatasetWriter(tmp, source={"url": "https://stream.twitter.com/1.1/statuses/sample.json"})
    ...     with WriteAheadLog(ds.wal_dir) as wal:
    ...         _ = wal.append([notice], received_at_us=1_540_000_000_000_000)
    ...         results = ds.recover(wal)
    ...     events = read_events(tmp)
    >>> [(r.events, r.first_seq, r.last_seq) for r in results], ds.committed_seq
    ([(1, 0, 0)], 0)
    >>> events["event_type"].tolist(), events["status_id"].tolist()
    (['delete'], [1])
    """

    def __init__(
        self,
        path: os.PathLike[str] | str,
        *,
        source: dict[str, Any] | None = None,
        keep_raw: bool = True,
        compression: str | None = "zstd",
        compression_level: int | None = 1,
        dedupe_window: int = 1_000_000,
        decoder: Any = None,
    ) -> None:
        if decoder is None:
            from .sources.twitter_v1 import TwitterV1Source

            decoder = TwitterV1Source()
        self._decoder = decoder
        self._items = decoder.items
        if dedupe_window < 0:
            raise ConfigError(f"dedupe_window must be >= 0, got {dedupe_window!r}")
        compression = "none" if compression is None else str(compression).lower()
        if compression in ("none", "uncompressed"):
            compression_level = None
        else:
            try:
                if not pa.Codec.supports_compression_level(compression):
                    compression_level = None  # snappy: the default level must not be an error
                pa.Codec(compression, compression_level)
            except (ValueError, TypeError, pa.ArrowException) as exc:
                raise ConfigError(
                    f"Parquet compression {compression!r} at level {compression_level!r} is not "
                    f"available ({exc}); use e.g. compression='zstd', compression_level=1."
                ) from exc
        self._path = Path(path)
        self._keep_raw = bool(keep_raw)
        self._compression = compression
        self._compression_level = compression_level
        self._dedupe_window = int(dedupe_window)
        self._window: _IdWindow | None = None  # seeded on the first commit
        self._wal_dir = self._path / WAL_DIR
        for folder in (self._path, self._path / self._items, self._path / EVENTS_DIR, self._wal_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _sink_error("create the dataset folder", folder, exc) from exc
        self._manifest = self._open_manifest(source)
        self._file_meta = {
            "library_version": __version__,
            "schema_version": _schema.SCHEMA_VERSION,
            "source": self._manifest.get("source") or {},
        }
        # Both are written atomically; were one damaged anyway, the part file names and
        # the write-ahead log still tell what to do, so it is not fatal.
        pending = _read_json(self._wal_dir / _PENDING, what="commit intent record", lenient=True)
        self._pending: tuple[int, int] | None = None
        if isinstance(pending, dict) and {"first", "last"} <= pending.keys():
            self._pending = (int(pending["first"]), int(pending["last"]))
        checkpoint = _read_json(self._wal_dir / _CHECKPOINT, what="checkpoint", lenient=True)
        # Where the source can resume from: stored with each commit, in the same atomic write.
        self._position: Any = checkpoint.get("position") if isinstance(checkpoint, dict) else None
        self._received_until: int | None = (
            checkpoint.get("received_until") if isinstance(checkpoint, dict) else None
        )
        if isinstance(checkpoint, dict) and "committed_seq" in checkpoint:
            self._committed = int(checkpoint["committed_seq"])
        else:  # no checkpoint yet (or it was deleted): trust the part file names
            below = self._pending[0] if self._pending else None
            lasts = [
                last for first, last, _ in self._parts()
                if below is None or first < below
            ]
            self._committed = max(lasts, default=-1)
        # Part files beyond the checkpoint belong to an interrupted batch: they are
        # removed (and written again) before anything else is committed.
        self._dirty = pending is not None or any(
            p[0] > self._committed for kind in (self._items, EVENTS_DIR) for p in self._parts(kind)
        )
        self._cleanup(uncommitted=False)

    # -- properties ----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The dataset folder."""
        return self._path

    @property
    def wal_dir(self) -> Path:
        """The folder for the write-ahead log (``PATH/_wal``)."""
        return self._wal_dir

    @property
    def committed_seq(self) -> int:
        """The last write-ahead log sequence number fully committed (``-1`` if none)."""
        return self._committed

    @property
    def resume_position(self) -> Any:
        """The source's resume position after the last commit (None if unknown)."""
        return copy.deepcopy(self._position)

    @property
    def last_received(self) -> float | None:
        """``time.time()`` when the newest committed message was received (None if unknown)."""
        return None if self._received_until is None else self._received_until / 1e6

    @property
    def decoder(self) -> Any:
        """The :class:`streamkit.sources.Source` of this dataset."""
        return self._decoder

    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the manifest (``streamkit.json``)."""
        return copy.deepcopy(self._manifest)

    def __repr__(self) -> str:
        return f"DatasetWriter({os.fspath(self._path)!r}, committed_seq={self._committed})"

    # -- manifest ------------------------------------------------------------------------

    def _open_manifest(self, source: dict[str, Any] | None) -> dict[str, Any]:
        path = self._path / MANIFEST_NAME
        manifest = _read_json(path, what="manifest")
        now = _utc_now()
        if manifest is None:
            manifest = {
                "format": "streamkit",
                "schema_version": _schema.SCHEMA_VERSION,
                "library_version": __version__,
                "created": now,
                "source": _scrub(source or {}),
                "source_name": self._decoder.name,
                "items": self._items,
                "filters": [],
                "gaps": [],
                "updated": now,
            }
            _write_json_atomic(path, manifest, what="manifest")
            return manifest
        if not isinstance(manifest, dict) or manifest.get("format") != "streamkit":
            raise SinkError(
                f"{os.fspath(path)!r} is not a streamkit manifest: this folder holds something "
                "else. Choose another path."
            )
        if manifest.get("schema_version") != _schema.SCHEMA_VERSION:
            raise SinkError(
                f"The dataset at {os.fspath(self._path)!r} has schema version "
                f"{manifest.get('schema_version')!r} but this streamkit writes version "
                f"{_schema.SCHEMA_VERSION}: write to a new path (it can still be read)."
            )
        manifest.setdefault("filters", [])
        manifest.setdefault("gaps", [])
        stored = manifest.get("source_name", "twitter-v1.1")
        if stored != self._decoder.name:
            raise SinkError(
                f"The dataset at {os.fspath(self._path)!r} holds {stored} data, not "
                f"{self._decoder.name}: write to a new path for another source."
            )
        if source is not None and _scrub(source) != manifest.get("source"):
            manifest["source"] = _scrub(source)
            self._save_manifest(manifest)
        return manifest

    def _save_manifest(self, manifest: dict[str, Any] | None = None) -> None:
        manifest = self._manifest if manifest is None else manifest
        manifest["library_version"] = __version__
        manifest["updated"] = _utc_now()
        _write_json_atomic(self._path / MANIFEST_NAME, manifest, what="manifest")

    def record_filter(self, params: dict[str, Any]) -> None:
        """Record in the manifest that a filter started now (ending the previous one).

        Parameters
        ----------
        params : dict
            The filter parameters (``track``, ``follow``, ``locations``, ...).
        """
        now = _utc_now()
        for entry in self._manifest["filters"]:
            if entry.get("ended") is None:
                entry["ended"] = now
        self._manifest["filters"].append({"params": _scrub(params), "started": now, "ended": None})
        self._save_manifest()

    def record_gap(self, start: float | None, end: float, reason: str) -> None:
        """Record in the manifest that messages between ``start`` and ``end`` may be missing.

        For sources that cannot resend what was missed (X without backfill, v1.1):
        a researcher reading the dataset knows exactly which span is not covered.

        Parameters
        ----------
        start, end : float
            ``time.time()`` of the last message before the gap (None: unknown) and of
            the reconnect after it.
        reason : str
            Why, in words (``"reconnected"``, ``"restarted"``).
        """
        def iso(t: float | None) -> str | None:
            if t is None:
                return None
            return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        self._manifest["gaps"].append({"start": iso(start), "end": iso(end), "reason": reason})
        self._save_manifest()

    def close_filter(self) -> None:
        """Record in the manifest that the current filter ended now."""
        open_entries = [e for e in self._manifest["filters"] if e.get("ended") is None]
        if open_entries:
            now = _utc_now()
            for entry in open_entries:
                entry["ended"] = now
            self._save_manifest()

    # -- files ---------------------------------------------------------------------------

    def _listing(self, kind: str) -> list[tuple[str, str]]:
        """``(folder, file name)`` of every file in the date folders of ``kind``."""
        root = self._path / kind
        out: list[tuple[str, str]] = []
        try:
            with os.scandir(root) as dirs:
                folders = [d.path for d in dirs if d.name.startswith("date=") and d.is_dir()]
            for folder in folders:
                with os.scandir(folder) as entries:
                    out.extend((folder, e.name) for e in entries)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _sink_error("list the files in", root, exc) from exc
        return out

    def _parts(self, kind: str | None = None) -> list[tuple[int, int, Path]]:
        """Every part file of ``kind`` (default: the items) as ``(first, last, path)``."""
        kind = self._items if kind is None else kind
        return [
            (int(m.group(1)), int(m.group(2)), Path(folder, name))
            for folder, name in self._listing(kind)
            if (m := _PART_RE.match(name))
        ]

    def _cleanup(self, *, uncommitted: bool) -> None:
        """Remove temporary files and, with ``uncommitted``, part files beyond the checkpoint."""
        doomed = [
            Path(folder, name)
            for kind in (self._items, EVENTS_DIR)
            for folder, name in self._listing(kind)
            if _TMP_RE.match(name)
            or (uncommitted and (m := _PART_RE.match(name)) and int(m.group(1)) > self._committed)
        ]
        for path in doomed:
            logger.info("removing %s, left by an interrupted commit", path)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise _sink_error("remove the leftover file", path, exc) from exc
        if uncommitted:
            self._dirty = False

    def _write_parts(
        self, kind: str, table: pa.Table, dates: pa.Array, first: int, last: int
    ) -> tuple[list[Path], set[Path]]:
        """Write one file per date; return the files and the folders to fsync."""
        files: list[Path] = []
        folders: set[Path] = set()
        if not table.num_rows:
            return files, folders
        if dates.null_count:  # no timestamp at all: file it under the day it was written
            dates = pc.fill_null(dates, pa.scalar(_dt.datetime.now(_dt.timezone.utc).date()))
        days = dates.cast(pa.int32()).to_numpy(zero_copy_only=False)
        meta = dict(table.schema.metadata or {})
        meta[b"streamkit"] = json.dumps(
            {**self._file_meta, "first_seq": first, "last_seq": last, "written": _utc_now()}
        ).encode()
        table = table.replace_schema_metadata(meta)
        names = table.column_names
        options = {
            "compression": self._compression,
            "compression_level": self._compression_level,
            "use_dictionary": [c for c in names if c not in _NO_DICTIONARY],
            "write_statistics": [c for c in names if c not in _NO_STATISTICS],
        }
        unique_days = np.unique(days)
        for day in unique_days:
            part = table if len(unique_days) == 1 else table.filter(pa.array(days == day))
            date = _dt.date(1970, 1, 1) + _dt.timedelta(days=int(day))
            folder = self._path / kind / f"date={date.isoformat()}"
            if not folder.is_dir():
                try:
                    folder.mkdir(exist_ok=True)
                except OSError as exc:
                    raise _sink_error("create the partition folder", folder, exc) from exc
                folders.add(folder.parent)
            name = _part_name(first, last)
            tmp, final = folder / f".{name}.tmp", folder / name
            try:
                pq.write_table(part, os.fspath(tmp), **options)
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, final)
            except OSError as exc:
                raise _sink_error("write the part file", final, exc) from exc
            folders.add(folder)
            files.append(final)
        return files, folders

    # -- dedupe --------------------------------------------------------------------------

    def _seed_window(self) -> _IdWindow:
        window = _IdWindow(self._dedupe_window)
        if not self._dedupe_window:
            return window
        parts = sorted(
            (p for p in self._parts() if p[0] <= self._committed),
            key=lambda p: p[1], reverse=True,
        )
        chunks, total = [], 0
        for _, _, path in parts:
            if total >= self._dedupe_window:
                break
            try:
                keys = self._keys(pq.read_table(path, columns=list(self._decoder.key_columns)))
            except (OSError, pa.ArrowException) as exc:
                logger.warning("cannot read ids from %s for dedupe (%s); skipping it", path, exc)
                continue
            chunks.append(keys)
            total += len(chunks[-1])
        for ids in reversed(chunks):  # oldest first, so the oldest are evicted first
            window.add(ids)
        return window

    def _dedupe(self, tweets: pa.Table) -> tuple[pa.Table, np.ndarray]:
        """Drop repeated ids (first wins) and recently committed ones; return the kept ids."""
        if self._window is None:
            self._window = self._seed_window()
        ids = self._keys(tweets)
        keep = np.zeros(len(ids), dtype=bool)
        keep[np.unique(ids, return_index=True)[1]] = True
        keep &= ~self._window.contains(ids)
        if not keep.all():
            tweets = tweets.filter(pa.array(keep))
        return tweets, ids[keep]

    def _keys(self, table: pa.Table) -> np.ndarray:
        """One int64 per row identifying the item: the id itself, or a hash of the key columns."""
        names = self._decoder.key_columns
        if len(names) == 1 and pa.types.is_int64(table.schema.field(names[0]).type):
            return table.column(names[0]).fill_null(-1).to_numpy()
        columns = [table.column(n).to_pylist() for n in names]
        out = np.empty(table.num_rows, dtype=np.int64)
        for i, values in enumerate(zip(*columns, strict=True)):
            digest = hashlib.blake2b(repr(values).encode("utf-8"), digest_size=8).digest()
            out[i] = int.from_bytes(digest, "little", signed=True)
        return out

    # -- commit --------------------------------------------------------------------------

    def commit(
        self,
        first_seq: int,
        last_seq: int,
        messages: Sequence[bytes],
        received_at_us: Sequence[int] | np.ndarray,
    ) -> CommitResult:
        """Decode, dedupe and write one batch of messages, crash-safely.

        Parameters
        ----------
        first_seq, last_seq : int
            The write-ahead log range of the batch; they name the part files.
        messages : sequence of bytes
            The raw messages of the range (fewer than the range if the log lost some).
        received_at_us : sequence of int
            When each message was received, microseconds since the epoch (UTC).

        Returns
        -------
        CommitResult
            Empty (no files) if the range was already committed.

        Raises
        ------
        SinkError
            A file could not be written (the batch may be committed again with
            the same range), or the range overlaps a committed one.
        """
        if len(messages) != len(received_at_us):
            raise ConfigError(
                f"commit() got {len(messages)} messages but {len(received_at_us)} received_at_us values"
            )
        if len(messages) > max(int(last_seq) - int(first_seq) + 1, 0):
            raise ConfigError(
                f"commit() got {len(messages)} messages for the range {first_seq}..{last_seq}"
            )
        if self._already_committed(int(first_seq), int(last_seq)):
            return CommitResult(0, 0, 0, {}, [], int(first_seq), int(last_seq))
        received = np.asarray(received_at_us, dtype=np.int64)
        batch = self._decoder.decode_batch(messages, received_at_us=received, keep_raw=self._keep_raw)
        return self.commit_decoded(first_seq, last_seq, batch, position=self._decoder.position(messages))

    def _already_committed(self, first: int, last: int) -> bool:
        if last < first or last <= self._committed:
            return True  # empty, or committed before (a retry): nothing to do
        if first <= self._committed:
            raise SinkError(
                f"The batch {first}..{last} overlaps what is already committed (up to "
                f"{self._committed}); commit exactly the range that follows it."
            )
        return False

    def commit_decoded(
        self, first_seq: int, last_seq: int, batch: _schema.DecodedBatch, *, position: Any = None
    ) -> CommitResult:
        """Like :meth:`commit`, for messages already decoded with :func:`schema.decode_batch`.

        ``batch`` must hold exactly the messages of ``first_seq..last_seq``
        (decoded with this writer's ``keep_raw``), so that recovery, which
        decodes them again from the write-ahead log, writes the same rows.
        ``position`` (the source's resume position after the batch; None keeps the
        previous one) is written with the checkpoint, atomically with the commit.
        """
        first, last = int(first_seq), int(last_seq)
        if self._already_committed(first, last):
            return CommitResult(0, 0, 0, {}, [], first, last)
        if first > self._committed + 1:
            logger.info("committing %d..%d after a gap (committed up to %d)", first, last, self._committed)
        if self._dirty:
            self._cleanup(uncommitted=True)
        _write_json_atomic(
            self._wal_dir / _PENDING, {"first": first, "last": last}, what="commit intent record"
        )
        self._pending = (first, last)
        self._dirty = True  # until the checkpoint says otherwise
        tweets, kept_ids = self._dedupe(batch.tweets)
        if "created_at" in tweets.column_names:
            stamp = pc.coalesce(tweets.column("created_at"), tweets.column("received_at"))
        else:
            stamp = tweets.column("received_at")
        tweet_dates = pc.cast(stamp, pa.date32())
        events = batch.events
        event_dates = pc.cast(events.column("received_at"), pa.date32())
        try:
            files, folders = self._write_parts(self._items, tweets, tweet_dates, first, last)
            more_files, more_folders = self._write_parts(EVENTS_DIR, events, event_dates, first, last)
            for folder in sorted(folders | more_folders):
                _fsync_dir(folder)
        except SinkError:
            # A failed commit (disk full, read-only...), not a crash: take back the part
            # files it renamed already, so that readers see committed data only and a full
            # disk gets the space back. The batch is still in the write-ahead log.
            try:
                self._cleanup(uncommitted=True)
            except SinkError as exc:
                logger.warning("could not remove the part files of a failed commit: %s", exc)
            raise
        if position is not None:
            self._position = position
        newest = [t.column("received_at") for t in (tweets, events) if t.num_rows]
        if newest:
            self._received_until = max(int(pc.max(c).cast(pa.int64()).as_py()) for c in newest)
        _write_json_atomic(self._wal_dir / _CHECKPOINT, self._checkpoint(last), what="checkpoint")
        self._committed = last
        self._dirty = False
        self._window.add(kept_ids)  # type: ignore[union-attr]
        self._remove_pending()
        return CommitResult(
            tweets=tweets.num_rows,
            duplicates=batch.tweets.num_rows - tweets.num_rows,
            events=events.num_rows,
            rejected=dict(batch.rejected),
            files=files + more_files,
            first_seq=first,
            last_seq=last,
        )

    def _checkpoint(self, last: int) -> dict[str, Any]:
        record: dict[str, Any] = {"committed_seq": last}
        if self._position is not None:
            record["position"] = self._position
        if self._received_until is not None:
            record["received_until"] = self._received_until
        return record

    def _remove_pending(self) -> None:
        self._pending = None
        try:
            os.unlink(self._wal_dir / _PENDING)
        except FileNotFoundError:
            pass
        except OSError as exc:
            # Harmless: a stale intent record (at or below the checkpoint) is ignored.
            logger.warning("could not remove %s: %s", self._wal_dir / _PENDING, exc)

    # -- recovery ------------------------------------------------------------------------

    def recover(self, wal: WriteAheadLog) -> list[CommitResult]:
        """Commit everything the write-ahead log holds beyond :attr:`committed_seq`.

        An interrupted batch is committed again with exactly its original
        range, so it lands on the same file names; the rest follows in
        batches. Then the log's committed segments are released. Safe to call
        again after a crash during recovery.

        Parameters
        ----------
        wal : WriteAheadLog
            The dataset's log (``WriteAheadLog(writer.wal_dir)``).

        Returns
        -------
        list of CommitResult
            One per batch committed.
        """
        results: list[CommitResult] = []
        if wal.next_seq <= self._committed:
            logger.warning(
                "the write-ahead log in %s restarts at %d but the dataset is committed up to %d "
                "(the log was reset or lost its tail); numbering continues after %d",
                wal.directory, wal.next_seq, self._committed, self._committed,
            )
            wal.skip_to(self._committed + 1)
        pending = self._pending
        if pending is not None and pending[1] > self._committed:
            first, last = max(pending[0], self._committed + 1), pending[1]
            records = list(wal.read(first, last))
            if records:
                logger.info("redoing the interrupted commit of %d..%d", first, last)
                results.append(self.commit(
                    first, last, [r[2] for r in records], [r[1] for r in records]
                ))
            else:
                self._keep_leftovers(wal, last)
        elif pending is not None:
            self._remove_pending()  # stale: its batch reached the checkpoint
        if self._dirty:  # part files beyond the checkpoint that no intent record names
            stray = [p for k in (self._items, EVENTS_DIR) for p in self._parts(k) if p[0] > self._committed]
            if stray and next(wal.read(min(p[0] for p in stray), max(p[1] for p in stray)), None) is None:
                self._keep_leftovers(wal, max(p[1] for p in stray))
        end = wal.next_seq - 1
        batch: list[bytes] = []
        received: list[int] = []
        size = 0
        start = self._committed + 1
        for seq, received_at, payload in wal.read(start, end):
            batch.append(payload)
            received.append(received_at)
            size += len(payload)
            if len(batch) >= _RECOVER_MESSAGES or size >= _RECOVER_BYTES:
                results.append(self.commit(start, seq, batch, received))
                start, batch, received, size = seq + 1, [], [], 0
        if batch or start <= end:
            results.append(self.commit(start, end, batch, received))
        wal.release(self._committed)
        return results

    def _keep_leftovers(self, wal: WriteAheadLog, upto: int) -> None:
        """The log no longer holds an interrupted batch: keep the complete files it left."""
        logger.error(
            "the write-ahead log no longer holds the interrupted batch ending at %d; keeping "
            "the part files it had completed (%s)", upto, self._path,
        )
        _write_json_atomic(self._wal_dir / _CHECKPOINT, self._checkpoint(upto), what="checkpoint")
        self._committed, self._dirty, self._window = upto, False, None
        self._cleanup(uncommitted=False)
        self._remove_pending()
        wal.skip_to(upto + 1)
