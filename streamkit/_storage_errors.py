"""What to tell a person when the dataset's storage fails: disk full, read-only, deleted.

A capture meets three kinds of storage trouble, and handles each its own way
(:class:`~streamkit.collect.Collector` does the handling; this module only
words it):

* **A Parquet commit fails** (disk full, read-only, permissions): the data
  are safe in the write-ahead log, so the writer retries with back-off and
  the capture carries on by itself once writing works again.
* **The write-ahead log cannot be written**: nothing more can be received
  safely, so the capture stops, state ``"failed"``. What reached the log is
  committed by the next ``collect()`` on the same path.
* **The dataset folder is deleted** under a running capture: the capture
  stops, after writing what it still holds to a new dataset at the same path.

Every message starts with the cause and the place, because the notebook
panel shows only the first 160 characters.

Examples
--------
>>> import errno
>>> from streamkit._exceptions import SinkError
>>> try:
...     try:
...         raise OSError(errno.ENOSPC, "No space left on device")
...     except OSError as exc:
...         raise SinkError("Could not append ...") from exc
... except SinkError as err:
...     problem = cause(err)
>>> problem
'disk full'
>>> stopped_message(problem, path="data/x", safe=1200, lost=0, detail="Could not append ...")[:72]
'disk full at data/x: the capture stopped. Free some space, then run coll'
"""

from __future__ import annotations

import errno
import os

__all__ = ["cause", "deleted_message", "retrying_message", "stopped_message"]

_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "a folder is missing",
    errno.EIO: "I/O error",
}

_FIXES = {
    "disk full": "Free some space",
    "disk quota exceeded": "Free some space or raise the quota",
    "read-only file system": "Make the file system writable again (remount it read-write)",
    "permission denied": "Give this user write access to the folder",
}


def cause(exc: BaseException) -> str:
    """The storage problem behind ``exc`` (or its chain of causes), in two or three words."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _CAUSES:
            return _CAUSES[e.errno]
        e = e.__cause__ or e.__context__
    return "storage error"


def _fix(problem: str) -> str:
    return _FIXES.get(problem, "Check that the disk is healthy and the folder writable")


def retrying_message(problem: str, *, path: os.PathLike[str] | str, safe: int, delay: float) -> str:
    """A commit failed and will be tried again in ``delay`` seconds."""
    return (
        f"{problem} at {os.fspath(path)}: cannot commit to Parquet, retrying in {delay:g} s; "
        f"{safe:,} messages are safe in the write-ahead log. {_fix(problem)}: the capture "
        "then catches up by itself."
    )


def stopped_message(
    problem: str, *, path: os.PathLike[str] | str, safe: int, lost: int, detail: str
) -> str:
    """The capture stopped because it could no longer write safely."""
    if safe:
        text = (
            f"{problem} at {os.fspath(path)}: the capture stopped. {_fix(problem)}, then run "
            f"collect() again on the same path: the {safe:,} messages received but not yet "
            "committed are safe in its write-ahead log and will be committed then."
        )
    else:
        text = (
            f"{problem} at {os.fspath(path)}: the capture stopped; everything it had logged is "
            f"committed. {_fix(problem)}, then run collect() again to go on capturing."
        )
    if lost:
        text += f" {lost:,} messages that arrived after the log failed could not be kept."
    return f"{text} ({detail})"


def deleted_message(*, path: os.PathLike[str] | str, whole: bool, saved: int, lost: int) -> str:
    """The dataset folder (or its write-ahead log) was deleted under the capture."""
    what = "the dataset folder" if whole else "the write-ahead log folder"
    text = (
        f"{what} {os.fspath(path)} was deleted while collecting: the capture stopped. "
        f"The {saved:,} messages it still held were written to a new dataset at "
        f"{os.fspath(path)}"
    )
    text += " (what was committed before went with the folder)." if whole else "."
    if lost:
        text += f" {lost:,} messages that were only in the deleted log are lost."
    return text + " Run collect() again to go on capturing."
