"""The write-ahead log: every received message on disk before it is acknowledged.

A :class:`WriteAheadLog` is a folder of append-only segment files
``wal-<first seq:020d>.log``. Each message becomes one record with a global
sequence number that keeps counting across restarts; the Parquet part files
are named after these numbers, so a batch committed again after a crash lands
on the same file names.

Record layout (little endian)::

    u32 payload length | u32 crc32(received_at_us, payload) | i64 received_at_us | payload

A segment starts with an 8-byte magic. :meth:`WriteAheadLog.append` writes a
whole batch of messages with one ``write`` call (the bytes reach the OS, so a
process crash loses nothing); :meth:`WriteAheadLog.sync` makes them survive a
power loss with ``fsync``, which :meth:`WriteAheadLog.maybe_sync` does in
groups. On open, a torn or corrupt tail of the newest segment (a crash in the
middle of a write) is cut at the last valid record.

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     with WriteAheadLog(tmp) as wal:
...         wal.append([b'{"id": 1}', b'{"id": 2}'], received_at_us=1_540_000_000_000_000)
...         durable = wal.sync()
...         records = list(wal.read(0, 1))
...     with WriteAheadLog(tmp) as wal:  # numbering continues after a restart
...         wal.append([b'{"id": 3}'], received_at_us=1_540_000_000_000_001)
(0, 1)
(2, 2)
>>> durable, records[1]
(1, (1, 1540000000000000, b'{"id": 2}'))
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ._exceptions import ConfigError, SinkError

try:  # POSIX only; elsewhere two writers on one folder are not detected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriteAheadLog"]

logger = logging.getLogger("streamkit.wal")

_MAGIC = b"SKWAL1\n\x00"
_HEADER = struct.Struct("<IIq")
_TIMESTAMP = struct.Struct("<q")
# Far above any real message (framing caps them at a few MiB): a larger
# length field can only be a torn or corrupt header.
_MAX_RECORD_BYTES = 1 << 30
_SEGMENT_RE = re.compile(r"^wal-(\d{20})\.log$")
_LOCK_NAME = "LOCK"
# Bytes per read when reading records back (a few MiB: a spilled backlog is read in bulk).
_READ_BYTES = 4 << 20
_FIRST_READ_BYTES = 64 << 10


def _segment_name(first_seq: int) -> str:
    return f"wal-{first_seq:020d}.log"


def _hint(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "The disk is full (or over quota): free some space or choose another path."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "Check the folder's permissions (and that the file system is writable), or choose another path."
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return "A file is in the way of a folder the dataset needs: move it, or choose another path."
    return "Check that the path exists, is writable and that the disk is healthy."


def _sink_error(action: str, path: os.PathLike[str] | str, exc: OSError) -> SinkError:
    """Build a :class:`SinkError` that says what failed, where, and what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return SinkError(f"Could not {action} {os.fspath(path)!r}: {reason}. {_hint(exc)}")


def _fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make a rename or a new file in ``path`` durable (no-op where folders cannot be synced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        if os.name == "nt":  # pragma: no cover - folders cannot be opened on Windows
            return
        raise _sink_error("open the folder", path, exc) from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise _sink_error("sync the folder", path, exc) from exc
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, obj: Any, *, what: str) -> None:
    """Replace a small JSON file atomically and durably (tmp, fsync, rename, fsync folder)."""
    tmp = path.with_name(f".{path.name}.tmp")
    data = json.dumps(obj, indent=2, sort_keys=False).encode("utf-8") + b"\n"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _sink_error(f"write the {what}", path, exc) from exc
    _fsync_dir(path.parent)


def _read_json(path: Path, *, what: str, lenient: bool = False) -> Any:
    """Load a JSON file; ``None`` if missing. ``lenient``: a damaged one is logged and ignored."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _sink_error(f"read the {what}", path, exc) from exc
    except ValueError as exc:
        if lenient:
            logger.warning("ignoring the damaged %s %s (%s)", what, path, exc)
            return {}
        raise SinkError(
            f"The {what} {os.fspath(path)!r} is not valid JSON ({exc}). "
            "Restore it from a backup, or move it away to start it afresh."
        ) from exc


def _lock_folder(directory: Path) -> int | None:
    """Take an exclusive lock so that two processes never append to one WAL."""
    path = directory / _LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _sink_error("create the lock file", path, exc) from exc
    if fcntl is None:  # pragma: no cover - Windows
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SinkError(
            f"The write-ahead log in {os.fspath(directory)!r} is in use by another writer "
            "(another collection, or an earlier one in this process that was not closed). "
            "Stop or close it first, or write to another path."
        ) from None
    except OSError as exc:  # e.g. ENOLCK on some network file systems
        logger.warning("cannot lock %s (%s); make sure only one writer uses it", path, exc)
    return fd


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_segment(
    directory: Path, seg: int, lo: int, hi: int, start: tuple[int, int] | None = None
) -> Iterator[tuple[int, int, bytes, int]]:
    """Records ``lo..hi`` of the segment starting at ``seg``: (seq, received_at_us, payload,
    offset after the record). ``start`` is a known (seq, offset) to begin from."""
    path = directory / _segment_name(seg)
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115
    except FileNotFoundError:
        return  # released meanwhile: everything in it was committed
    except OSError as exc:
        raise _sink_error("read the write-ahead log segment", path, exc) from exc
    unpack, header_size, crc32, stamp = _HEADER.unpack_from, _HEADER.size, zlib.crc32, _TIMESTAMP.pack
    with f:
        seq, offset = start if start is not None else (seg, len(_MAGIC))
        # Records are parsed out of large reads (a few MiB): one system call and one
        # buffer for many records instead of two reads per record.
        buf = b""
        at = 0  # where buf[at] lies in the file is `offset`
        step = _FIRST_READ_BYTES  # grows: a short range costs a short read
        try:
            f.seek(offset)
            while seq <= hi:
                if len(buf) - at < header_size:
                    buf = buf[at:] + f.read(step)
                    step = min(2 * step, _READ_BYTES)
                    at = 0
                    if len(buf) < header_size:
                        break
                length, crc, received_at = unpack(buf, at)
                if length > _MAX_RECORD_BYTES:
                    break
                end = at + header_size + length
                if end > len(buf):
                    buf = buf[at:] + f.read(max(step, end - len(buf)))
                    step = min(2 * step, _READ_BYTES)
                    end -= at
                    at = 0
                    if end > len(buf):
                        break  # a torn record
                if seq >= lo:
                    payload = buf[at + header_size : end]
                    if crc != crc32(payload, crc32(stamp(received_at))):
                        break
                    yield seq, received_at, payload, offset + end - at
                offset += end - at
                at = end
                seq += 1
        except OSError as exc:
            raise _sink_error("read the write-ahead log segment", path, exc) from exc
        if seq <= hi:
            logger.error(
                "write-ahead log %s is corrupt at record %d; records %d..%d are lost",
                path, seq, seq, hi,
            )


class WriteAheadLog:
    """An append-only, crash-safe log of raw messages with global sequence numbers.

    Parameters
    ----------
    directory : path-like
        Folder holding the segments; created if missing. A dataset keeps it
        in ``PATH/_wal`` so that readers never see it.
    segment_bytes : int, default 64 MiB
        Start a new segment once the current one is this large; whole
        segments are deleted by :meth:`release`.
    group_messages : int, default 5000
        :meth:`maybe_sync` syncs once this many messages are not yet durable...
    group_seconds : float, default 1.0
        ...or once this long has passed since the last sync.
    clock : callable, default time.monotonic
        Seconds, for the group timer (injectable for tests).

    Notes
    -----
    :meth:`append` is meant for one thread (the one receiving messages);
    :meth:`sync`, :meth:`maybe_sync`, :meth:`read` and :meth:`release` may run
    on another. ``fsync`` runs outside the lock, so appends never wait for
    the disk. Only one ``WriteAheadLog`` may have a folder open at a time
    (an exclusive lock, on POSIX); close it to open it again.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with WriteAheadLog(tmp, group_messages=2) as wal:
    ...         first_last = wal.append([b"a", b"b"], received_at_us=0)
    ...         synced = wal.maybe_sync()  # a group of 2 is due
    ...         durable = wal.durable_seq
    >>> first_last, synced, durable
    ((0, 1), True, 1)
    """

    def __init__(
        self,
        directory: os.PathLike[str] | str,
        *,
        segment_bytes: int = 64 << 20,
        group_messages: int = 5000,
        group_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if segment_bytes < 1024:
            raise ConfigError(f"segment_bytes must be at least 1024, got {segment_bytes!r}")
        if group_messages < 1:
            raise ConfigError(f"group_messages must be at least 1, got {group_messages!r}")
        if group_seconds < 0:
            raise ConfigError(f"group_seconds must be >= 0, got {group_seconds!r}")
        self._dir = Path(directory)
        self._segment_bytes = int(segment_bytes)
        self._group_messages = int(group_messages)
        self._group_seconds = float(group_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._closed = False
        # Segments rotated out but not yet fsync'd: the next sync() syncs and closes them.
        self._rotated: list[tuple[int, IO[bytes]]] = []
        self._dir_dirty = False
        self._read_hint: tuple[int, int, int] | None = None  # (seq, segment, offset)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _sink_error("create the write-ahead log folder", self._dir, exc) from exc
        self._lock_fd = _lock_folder(self._dir)
        try:
            self._open_segments()
        except BaseException:
            self._release_lock()
            raise

    # -- opening -------------------------------------------------------------------------

    def _list_segments(self) -> list[int]:
        try:
            names = os.listdir(self._dir)
        except OSError as exc:
            raise _sink_error("list the write-ahead log folder", self._dir, exc) from exc
        return sorted(int(m.group(1)) for m in map(_SEGMENT_RE.match, names) if m)

    def _open_segments(self) -> None:
        segments = self._list_segments()
        self._sizes: dict[int, int] = {}
        for first in segments[:-1]:
            try:
                self._sizes[first] = (self._dir / _segment_name(first)).stat().st_size
            except OSError as exc:
                raise _sink_error("read the write-ahead log segment", self._dir, exc) from exc
        if segments:
            last = segments[-1]
            count, valid_end = self._scan(last)
            next_seq = last + count
        else:
            last, valid_end, next_seq = 0, 0, 0
            segments = [0]
        self._segments = segments
        path = self._dir / _segment_name(last)
        try:
            self._file: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115
            try:
                size = os.fstat(self._file.fileno()).st_size
                if size != valid_end:
                    logger.warning(
                        "write-ahead log %s: cut a torn or corrupt tail of %d bytes "
                        "(a crash in the middle of a write)", path, size - valid_end,
                    )
                    os.ftruncate(self._file.fileno(), valid_end)
                if valid_end < len(_MAGIC):
                    os.ftruncate(self._file.fileno(), 0)
                    _write_all(self._file.fileno(), _MAGIC)
                    valid_end = len(_MAGIC)
                os.fsync(self._file.fileno())
            except BaseException:
                self._file.close()
                raise
        except OSError as exc:
            raise _sink_error("open the write-ahead log segment", path, exc) from exc
        _fsync_dir(self._dir)
        self._sizes[last] = valid_end
        self._next_seq = next_seq
        self._durable_seq = next_seq - 1
        self._last_sync = self._clock()

    def _scan(self, first: int) -> tuple[int, int]:
        """Count the valid records of a segment; return ``(count, end offset of the last)``."""
        path = self._dir / _segment_name(first)
        count = 0
        try:
            with open(path, "rb") as f:
                if f.read(len(_MAGIC)) != _MAGIC:
                    return 0, 0
                end = len(_MAGIC)
                while True:
                    header = f.read(_HEADER.size)
                    if len(header) < _HEADER.size:
                        break
                    length, crc, received_at = _HEADER.unpack(header)
                    if length > _MAX_RECORD_BYTES:
                        break
                    payload = f.read(length)
                    if len(payload) < length:
                        break
                    if zlib.crc32(payload, zlib.crc32(_TIMESTAMP.pack(received_at))) != crc:
                        break
                    count += 1
                    end += _HEADER.size + length
        except OSError as exc:
            raise _sink_error("read the write-ahead log segment", path, exc) from exc
        return count, end

    # -- properties ----------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The folder holding the segments."""
        return self._dir

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended message will get."""
        return self._next_seq

    @property
    def durable_seq(self) -> int:
        """The last sequence number known to be fsync'd (``-1`` if none)."""
        return self._durable_seq

    @property
    def first_seq(self) -> int:
        """The lowest sequence number still held (``next_seq`` when the log is empty)."""
        with self._lock:
            return min(self._segments[0], self._next_seq)

    @property
    def bytes_on_disk(self) -> int:
        """Total size of the segment files."""
        with self._lock:
            return sum(self._sizes.values())

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def detached(self) -> bool:
        """True when the active segment has no name on disk any more.

        That happens when its folder is deleted under a running log: appends
        still succeed (the file stays open) but would not outlive the process,
        so a writer must stop relying on them.
        """
        with self._lock:
            if self._closed:
                return False
            try:
                return os.fstat(self._file.fileno()).st_nlink == 0
            except OSError:
                return True

    def __repr__(self) -> str:
        return (
            f"WriteAheadLog({os.fspath(self._dir)!r}, next_seq={self._next_seq}, "
            f"durable_seq={self._durable_seq}{', closed' if self._closed else ''})"
        )

    # -- writing -------------------------------------------------------------------------

    def append(self, messages: Sequence[bytes], received_at_us: int) -> tuple[int, int]:
        """Append messages, giving them consecutive sequence numbers.

        One ``write`` for the whole batch: the data reach the operating system
        (safe from a process crash) but are durable against a power loss only
        after :meth:`sync`.

        Parameters
        ----------
        messages : sequence of bytes
            Raw messages (``str`` is encoded as UTF-8).
        received_at_us : int
            When they were received, microseconds since the epoch (UTC).

        Returns
        -------
        (first, last) : tuple of int
            The sequence numbers given; ``last == first - 1`` when ``messages`` is empty.

        Raises
        ------
        SinkError
            The log is closed or the write failed (the log stays consistent).
        """
        received_at_us = int(received_at_us)
        seed = zlib.crc32(_TIMESTAMP.pack(received_at_us))
        pack, crc32 = _HEADER.pack, zlib.crc32
        parts: list[bytes] = []
        for message in messages:
            if isinstance(message, str):
                message = message.encode("utf-8")
            parts.append(pack(len(message), crc32(message, seed), received_at_us))
            parts.append(message)
        data = b"".join(parts)
        count = len(parts) // 2
        with self._lock:
            if self._closed:
                raise SinkError(f"The write-ahead log {os.fspath(self._dir)!r} is closed.")
            first = self._next_seq
            if not count:
                return first, first - 1
            active = self._segments[-1]
            if self._sizes[active] >= self._segment_bytes:
                self._rotate_locked(first)
                active = first
            fd = self._file.fileno()
            size = self._sizes[active]
            try:
                _write_all(fd, data)
            except OSError as exc:
                # Cut the partial record so that later appends stay readable.
                try:
                    os.ftruncate(fd, size)
                except OSError:  # pragma: no cover - the disk is failing badly
                    logger.exception("could not cut a partial write-ahead log record")
                raise _sink_error(
                    "append to the write-ahead log", self._dir / _segment_name(active), exc
                ) from exc
            self._sizes[active] = size + len(data)
            self._next_seq = first + count
        return first, first + count - 1

    def _rotate_locked(self, first: int) -> None:
        path = self._dir / _segment_name(first)
        try:
            new = open(path, "ab", buffering=0)  # noqa: SIM115
            try:
                _write_all(new.fileno(), _MAGIC)
            except BaseException:
                new.close()
                raise
        except OSError as exc:
            raise _sink_error("create a write-ahead log segment", path, exc) from exc
        self._rotated.append((self._segments[-1], self._file))
        self._file = new
        self._segments.append(first)
        self._sizes[first] = len(_MAGIC)
        self._dir_dirty = True

    def rotate(self) -> bool:
        """Start a new segment if the active one holds records.

        After everything is committed, ``rotate()`` then ``release(committed)``
        leaves only an empty segment behind (it carries the numbering).

        Returns
        -------
        bool
            Whether a new segment was started.
        """
        with self._lock:
            if self._closed:
                raise SinkError(f"The write-ahead log {os.fspath(self._dir)!r} is closed.")
            if self._segments[-1] == self._next_seq:
                return False
            self._rotate_locked(self._next_seq)
            return True

    def skip_to(self, seq: int) -> None:
        """Continue numbering at ``seq`` (never backwards), in a new segment.

        Used by recovery when the log was lost or reset but the dataset has
        already committed higher sequence numbers: reusing them would reuse
        part file names.
        """
        with self._lock:
            if seq <= self._next_seq:
                return
            active = self._segments[-1]
            empty = self._sizes[active] <= len(_MAGIC)
            self._rotate_locked(seq)
            if empty:
                _, old = self._rotated.pop()
                old.close()
                self._segments.remove(active)
                del self._sizes[active]
                try:
                    os.unlink(self._dir / _segment_name(active))
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise _sink_error("remove an empty segment", self._dir, exc) from exc
            self._next_seq = seq
            self._durable_seq = max(self._durable_seq, seq - 1)

    def sync(self) -> int:
        """Flush and ``fsync`` everything appended so far.

        Returns
        -------
        int
            The last durable sequence number (``-1`` if none).
        """
        with self._sync_lock:
            with self._lock:
                if self._closed:
                    return self._durable_seq
                target = self._next_seq - 1
                rotated, self._rotated = self._rotated, []
                dir_dirty, self._dir_dirty = self._dir_dirty, False
                if target <= self._durable_seq and not rotated and not dir_dirty:
                    self._last_sync = self._clock()
                    return self._durable_seq
                # A duplicate descriptor stays valid even if close() runs meanwhile.
                fd = os.dup(self._file.fileno())
            try:
                for _, f in rotated:
                    os.fsync(f.fileno())
                os.fsync(fd)
                if dir_dirty:
                    _fsync_dir(self._dir)
            except OSError as exc:
                with self._lock:
                    self._dir_dirty = self._dir_dirty or dir_dirty
                raise _sink_error("sync the write-ahead log", self._dir, exc) from exc
            finally:
                os.close(fd)
                for _, f in rotated:
                    f.close()
            with self._lock:
                self._durable_seq = max(self._durable_seq, target)
                self._last_sync = self._clock()
                return self._durable_seq

    def maybe_sync(self) -> bool:
        """Sync if a group is due (``group_messages`` pending or ``group_seconds`` passed).

        Returns
        -------
        bool
            Whether a sync happened.
        """
        with self._lock:
            pending = self._next_seq - 1 - self._durable_seq
            due = pending >= self._group_messages or (
                pending > 0 and self._clock() - self._last_sync >= self._group_seconds
            )
        if due:
            self.sync()
        return due

    # -- reading and releasing -----------------------------------------------------------

    def read(self, first: int, last: int) -> Iterator[tuple[int, int, bytes]]:
        """Yield the records with ``first <= seq <= last`` that the log holds.

        Records already released, or lost to a corrupt segment (logged), are
        skipped; sequence numbers may therefore have gaps.

        Yields
        ------
        (seq, received_at_us, payload) : tuple of (int, int, bytes)
        """
        with self._lock:
            end = min(last, self._next_seq - 1)
            segments = list(self._segments)
        for i, seg in enumerate(segments):
            seg_last = segments[i + 1] - 1 if i + 1 < len(segments) else end
            lo, hi = max(first, seg), min(seg_last, end)
            if lo <= hi:
                yield from self._read_segment(seg, lo, hi)

    def _read_segment(self, seg: int, lo: int, hi: int) -> Iterator[tuple[int, int, bytes]]:
        hint = self._read_hint
        start = (hint[0], hint[2]) if hint is not None and hint[1] == seg and hint[0] <= lo else None
        for seq, received_at, payload, end in _read_segment(self._dir, seg, lo, hi, start):
            self._read_hint = (seq + 1, seg, end)
            yield seq, received_at, payload

    def release(self, upto_seq: int) -> int:
        """Delete the whole segments whose records all have ``seq <= upto_seq``.

        Call it with the last committed sequence number. The newest segment
        is always kept (it carries the numbering across restarts).

        Returns
        -------
        int
            The number of segments deleted.
        """
        with self._lock:
            segments = self._segments
            doomed = [s for i, s in enumerate(segments[:-1]) if segments[i + 1] - 1 <= upto_seq]
            if not doomed:
                return 0
            self._segments = segments[len(doomed):]
            for s in doomed:
                del self._sizes[s]
            keep = []
            for s, f in self._rotated:
                if s in doomed:
                    f.close()
                else:
                    keep.append((s, f))
            self._rotated = keep
            if self._read_hint is not None and self._read_hint[1] in doomed:
                self._read_hint = None
        for s in doomed:
            path = self._dir / _segment_name(s)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise _sink_error("delete the write-ahead log segment", path, exc) from exc
        return len(doomed)

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Sync, then close the files and release the folder lock. Idempotent."""
        if self._closed:
            return
        try:
            self.sync()
        finally:
            with self._lock:
                self._closed = True
                for _, f in self._rotated:
                    f.close()
                self._rotated = []
                self._file.close()
            self._release_lock()

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
