"""``collect()``: a lossless background capture into a Parquet dataset, with a live view.

One call starts a :class:`Collector` and returns at once::

    c = streamkit.collect(track=["climate"])     # credentials from STREAMKIT_* variables
    c.df          # the newest rows, as a pandas DataFrame, while it runs
    c.stats       # received, stored, duplicates, deletes, reconnects, state, ...
    c.stop()      # flushes and returns
    streamkit.read(c.path)

Threads and data flow (see DESIGN.md)::

    reader thread  ── framed raw messages ──> dispatch thread: WAL append (fsync in groups)
                                                 └─> pending queue ──> writer thread:
                decode once into Arrow columns ─> live ring (Collector.df)
                                                 └─> dedupe + Parquet part files every
                                                     flush_rows / flush_bytes / flush_seconds

Memory is bounded in bytes at every step: the reader waits once 4 MiB wait for the
dispatch thread; beyond 8 MiB (``max_pending_bytes``) received messages stay only in the
WAL and the writer reads them back; it decodes passes of at most 8 MiB and commits at
``flush_bytes`` (16 MiB) at the latest, handing the Arrow pool's free pages back.

Examples
--------
>>> import streamkit, tempfile
>>> from streamkit.testing import StreamServer
>>> with StreamServer(statuses=50, notices=0) as server, tempfile.TemporaryDirectory() as tmp:
...     with streamkit.collect(track=["python"], base_url=server.url, auth=server.auth(),
...                            path=tmp + "/python", flush_seconds=0.2) as c:
...         c.wait_for(stored=50, timeout=30)
...     len(streamkit.read(tmp + "/python"))
True
50
"""

from __future__ import annotations

import bisect
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import _storage_errors as _storage
from . import schema
from ._exceptions import ConfigError, SinkError, StreamkitError
from .auth import AuthHandler, auth_from_env
from .listener import StreamListener
from .sink import DatasetWriter, read
from .streaming import DEFAULT_BASE_URL, Stream, build_filter_params
from .wal import WriteAheadLog

__all__ = ["BufferingListener", "Collector", "CollectorStats", "collect", "default_path"]

log = logging.getLogger("streamkit.collect")

_STREAM_OPTIONS = {
    "timeout",
    "retry_count",
    "retry_time",
    "retry_420",
    "retry_time_cap",
    "snooze_time",
    "snooze_time_cap",
    "chunk_size",
    "max_message_bytes",
    "max_buffer_bytes",
    "verify",
    "connect_timeout",
}

_AUTH_RETRIES = 3

# Payload bytes the writer decodes in one pass (at least one network read's batch).
_PASS_BYTES = 8 << 20

# A failing Parquet commit is retried after 0.5 s, 1 s, 2 s, ... up to a minute apart (the
# data are safe in the WAL meanwhile); once the capture is ending, a few quick tries.
_RETRY_FIRST = 0.5
_RETRY_CAP = 60.0
_FINAL_ATTEMPTS = 3

_FILTER_KEYS = ("track", "follow", "locations", "languages", "filter_level", "stall_warnings")


@dataclass
class CollectorStats:
    """A snapshot of a capture's counters (``Collector.stats``).

    Attributes
    ----------
    state : str
        ``starting``, ``recovering``, ``connecting``, ``streaming``,
        ``backing off``, ``stopping``, ``stopped`` or ``failed``.
    detail : str
        The state in words, e.g. ``"backing off until 12:03:10 after HTTP 420"``.
    received : int
        Messages written to the write-ahead log (statuses and notices).
    stored : int
        Tweets committed to Parquet (after removing duplicates).
    pending : int
        Received messages not yet committed.
    duplicates : int
        Tweets dropped because their id was already stored.
    events : int
        Notices committed to the events table.
    deletes, limit_notices, withheld : int
        Delete notices; limit notices and the number of tweets they say
        were withheld.
    rejected : dict
        Complete messages that could not be used, by reason (``oversized``,
        ``malformed_json``, ``invalid_utf8``, ...). After ``stop()``,
        ``received == stored + duplicates + events + sum(rejected.values())``.
    incomplete : int
        Messages cut off by a broken connection: never received whole, so
        not counted as received (the server did not finish sending them).
    length_mismatches : int
        Wrong ``delimited=length`` prefixes; the messages were recovered.
    recovered : int
        Tweets committed at start from an earlier run's write-ahead log.
    spilled : int
        Messages that arrived while the writer was behind by more than
        ``max_pending_bytes``: kept only in the write-ahead log (not in
        memory) and read back from it when the writer got to them.
    reconnects, stalls, http_errors : int
        From the stream.
    bytes : int
        Bytes read from the network.
    rate : float
        Messages per second over the last ~10 s.
    last_flush : float or None
        ``time.time()`` of the last Parquet commit.
    last_error : str or None
        The last error, in words. Storage trouble starts with the cause and
        the place (``"disk full at data/x: ..."``) and says what is safe and
        what to do: failing Parquet commits are retried with back-off while
        the write-ahead log holds the data; a log that cannot be written, or a
        dataset folder deleted under the capture, stops it (``failed``).
    errors : int
        How many errors (network, HTTP, write) were seen.
    started : float
        ``time.time()`` when the capture started.
    """

    state: str = "starting"
    detail: str = ""
    received: int = 0
    stored: int = 0
    pending: int = 0
    duplicates: int = 0
    events: int = 0
    deletes: int = 0
    limit_notices: int = 0
    withheld: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    incomplete: int = 0
    length_mismatches: int = 0
    recovered: int = 0
    spilled: int = 0
    reconnects: int = 0
    stalls: int = 0
    http_errors: int = 0
    bytes: int = 0
    rate: float = 0.0
    last_flush: float | None = None
    last_error: str | None = None
    errors: int = 0
    started: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as a plain dict."""
        return asdict(self)

    def __repr__(self) -> str:
        rej = sum(self.rejected.values())
        return (
            f"CollectorStats({self.state}: received={self.received:,} stored={self.stored:,} "
            f"duplicates={self.duplicates:,} deletes={self.deletes:,} rejected={rej:,} "
            f"reconnects={self.reconnects} rate={self.rate:,.0f}/s)"
        )


def _slug(text: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text[:60].strip("-")


def default_path(*, track: Any = None, follow: Any = None, locations: Any = None, root: str | Path = "data") -> Path:
    """The dataset folder ``collect()`` uses when no ``path`` is given.

    The name is built from the filter with safe characters only, so a
    filter can never point outside ``root``.

    Examples
    --------
    >>> default_path(track=["Climate Change", "#COP30"]).as_posix()
    'data/climate-change_cop30'
    >>> default_path(track=["../../etc/passwd"]).as_posix()
    'data/etc-passwd'
    >>> default_path(follow=[12, 34]).as_posix()
    'data/follow-12-34'
    """
    parts: list[str] = []
    if isinstance(track, str):
        track = [track]
    for phrase in track or []:
        s = _slug(str(phrase))
        if s:
            parts.append(s)
    if follow:
        parts.append("follow-" + "-".join(_slug(str(x)) for x in list(follow)[:5]))
    if locations:
        parts.append("locations")
    name = "_".join(parts)[:80].strip("_-") or "capture"
    return Path(root) / name


class BufferingListener(StreamListener):
    """The listener behind ``collect()``: raw messages into the WAL and the writer's queue.

    It runs on the stream's dispatch thread and does only cheap work:
    one buffered WAL write per network read, no parsing.
    """

    raw_bytes = True

    def __init__(self, collector: Collector) -> None:
        super().__init__()
        self._collector = collector

    def on_batch(self, messages: list[bytes]) -> bool | None:  # type: ignore[override]  # the optional fast path
        return self._collector._on_messages(messages)

    def on_data(self, raw_data: str | bytes) -> bool | None:
        if isinstance(raw_data, str):
            raw_data = raw_data.encode("utf-8")
        return self._collector._on_messages([raw_data])

    def on_connect(self) -> None:
        self._worked = True
        self._auth_retries = 0
        self._collector._on_connect()

    def on_error(self, status_code: int) -> Any:
        # A 401 from credentials that worked minutes ago is usually transient (clock
        # skew, an edge node): retry a few times before calling the capture failed.
        if status_code == 401 and getattr(self, "_worked", False):
            self._auth_retries = getattr(self, "_auth_retries", 0) + 1
            if self._auth_retries <= _AUTH_RETRIES:
                log.warning("HTTP 401 after the credentials had worked; retry %d of %d", self._auth_retries, _AUTH_RETRIES)
                return None
        return super().on_error(status_code)

    def on_exception(self, exception: BaseException) -> None:
        self._collector._note_error(f"capture failed: {exception}")


class _Pending:
    """Received batches waiting for the writer; payloads beyond a budget stay only in the WAL."""

    def __init__(self, budget_bytes: int) -> None:
        # (first, last, messages or None when spilled, received_us, bytes held in memory,
        # payload bytes)
        self._items: deque[tuple[int, int, list[bytes] | None, int, int, int]] = deque()
        self._lock = threading.Lock()
        self._bytes = 0
        self.budget = budget_bytes
        self.spilled = 0

    def put(self, first: int, last: int, messages: list[bytes], received_us: int, nbytes: int) -> None:
        with self._lock:
            if self._bytes + nbytes > self.budget:
                self.spilled += last - first + 1
                self._items.append((first, last, None, received_us, 0, nbytes))  # re-read from the WAL
            else:
                self._bytes += nbytes
                self._items.append((first, last, messages, received_us, nbytes, nbytes))

    def take(self, max_messages: int, max_bytes: int | None = None) -> list[tuple[int, int, list[bytes] | None, int, int]]:
        """The oldest batches, up to about ``max_messages`` messages and ``max_bytes`` bytes
        of payload (at least one batch): (first, last, messages or None, received_us, bytes)."""
        with self._lock:
            items = []
            count = size = 0
            while self._items and count < max_messages and (max_bytes is None or size < max_bytes):
                first, last, messages, received_us, held, nbytes = self._items.popleft()
                self._bytes -= held  # counted once, by put()
                items.append((first, last, messages, received_us, nbytes))
                count += last - first + 1
                size += nbytes
            return items

    def __len__(self) -> int:
        return len(self._items)


class Collector:
    """A running (or finished) capture. Build one with :func:`collect`.

    Parameters are those of :func:`collect`. Everything ``collect()`` does,
    ``Collector(...).start()`` does too.
    """

    def __init__(
        self,
        *,
        track: Iterable[str] | str | None = None,
        follow: Iterable[int | str] | None = None,
        locations: Sequence[float] | None = None,
        languages: Iterable[str] | str | None = None,
        filter_level: str | None = None,
        stall_warnings: bool = False,
        sample: bool = False,
        auth: AuthHandler | None = None,
        path: str | Path | None = None,
        base_url: str | None = None,
        flush_rows: int = 20_000,
        flush_seconds: float = 5.0,
        view_rows: int = 1_000,
        keep_raw: bool = True,
        progress: bool | None = None,
        max_tweets: int | None = None,
        duration: float | None = None,
        wal_group_messages: int = 5_000,
        wal_group_seconds: float = 1.0,
        max_pending_bytes: int = 8 * 1024 * 1024,
        flush_bytes: int = 16 * 1024 * 1024,
        endpoint: Any = None,
        decoder: Any = None,
        source: str | None = None,
        **stream_options: Any,
    ) -> None:
        self._base_url_given = base_url
        self.source_name = source or "twitter-v1.1"
        self.source_options: dict[str, Any] = {}
        if source is not None and source != "twitter-v1.1":
            if endpoint is not None or decoder is not None:
                raise ConfigError("source= builds its own endpoint and decoder: pass source=NAME or endpoint=/decoder=, not both")
            from .sources import open_source

            self.source_options = {k: v for k, v in stream_options.items() if k not in _STREAM_OPTIONS}
            if track is not None:  # keywords, for a source that filters on them (Jetstream)
                self.source_options["track"], track = track, None
            stream_options = {k: v for k, v in stream_options.items() if k in _STREAM_OPTIONS}
            extra = {"base_url": base_url} if base_url is not None else {}
            endpoint, decoder = open_source(source, **extra, **self.source_options)
        elif source is not None:
            source = None  # v1.1: the classic filter arguments below
        unknown = set(stream_options) - _STREAM_OPTIONS
        if unknown:
            raise ConfigError(
                f"collect() got unknown option(s) {', '.join(sorted(unknown))}; "
                f"Stream options it passes on: {', '.join(sorted(_STREAM_OPTIONS))}."
            )
        self._filter = {
            "track": track,
            "follow": follow,
            "locations": locations,
            "languages": languages,
            "filter_level": filter_level,
            "stall_warnings": stall_warnings,
        }
        self.sample = bool(sample)
        if endpoint is not None:
            given = sorted(k for k, v in self._filter.items() if v not in (None, False))
            if given or sample:
                where = f"source={source!r}" if source else "endpoint=..."
                raise ConfigError(
                    f"{', '.join(given) or 'sample'} belong(s) to the Twitter v1.1 filter; with "
                    f"{where}, the source's own options carry its filter"
                )
            self._params: dict[str, str] = {}
        else:
            self._params = self._check_filter(self._filter)
        for name, value, low in (
            ("flush_rows", flush_rows, 1),
            ("view_rows", view_rows, 0),
            ("wal_group_messages", wal_group_messages, 1),
            ("flush_bytes", flush_bytes, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, seconds in (("flush_seconds", flush_seconds), ("wal_group_seconds", wal_group_seconds)):
            if not isinstance(seconds, (int, float)) or not seconds > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {seconds!r}")
        if max_tweets is not None and (not isinstance(max_tweets, int) or max_tweets < 1):
            raise ConfigError(f"max_tweets must be a positive integer or None, got {max_tweets!r}")
        if duration is not None and not (isinstance(duration, (int, float)) and duration > 0):
            raise ConfigError(f"duration must be a positive number of seconds or None, got {duration!r}")
        if (endpoint is None) != (decoder is None):
            raise ConfigError("endpoint and decoder go together: pass both (another source) or neither (Twitter v1.1)")
        if decoder is None:
            from .sources.twitter_v1 import TwitterV1Source

            decoder = TwitterV1Source()
        self._endpoint = endpoint
        self._decoder = decoder
        # Open sources (Jetstream, Wikimedia) need no credentials; their endpoint carries a token if any.
        self.auth = auth if auth is not None or endpoint is not None else auth_from_env()
        self.base_url = base_url or (endpoint.request().url if endpoint is not None else DEFAULT_BASE_URL)
        self._stream_options = stream_options
        # Build one stream now so that bad options fail here, not on a thread.
        self._stream = self._new_stream()
        if path is not None:
            self.path = Path(path)
        elif endpoint is not None and hasattr(endpoint, "dataset_name"):
            self.path = Path("data") / (_slug(str(endpoint.dataset_name())) or endpoint.name)
        else:
            self.path = default_path(track=track, follow=follow, locations=locations)
        self.flush_rows = flush_rows
        self.flush_bytes = flush_bytes
        self.flush_seconds = float(flush_seconds)
        self.view_rows = view_rows
        self.keep_raw = keep_raw
        self.max_tweets = max_tweets
        self.duration = duration
        self._wal_options: dict[str, Any] = {"group_messages": wal_group_messages,
                                              "group_seconds": float(wal_group_seconds)}
        self._progress_wanted = _default_progress() if progress is None else bool(progress)
        self._progress: Any = None
        self._pending = _Pending(max_pending_bytes)
        self._pass_messages = max(1_000, min(flush_rows, 10_000))
        # Decoding a pass takes several times its size in temporaries: a few MiB per pass
        # keep the peak low at the same speed (the decoder's per-pass cost is small).
        self._pass_bytes = max(1, min(_PASS_BYTES, flush_bytes))
        self._lock = threading.RLock()
        self._stats = CollectorStats()
        self._ring: pa.Table | None = None
        self._ring_version = 0
        self._df_cache: tuple[int, Any] | None = None
        self._rates: deque[tuple[float, int]] = deque(maxlen=64)
        self._last_limit = 0
        self._limit_conn = -1
        self._conn_starts: list[int] = []
        self._wal: WriteAheadLog | None = None
        self._ds: DatasetWriter | None = None
        self._writer: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._started = False
        self._switching = False
        self._last_message_time: float | None = None
        self._connections = 0
        self._gaps: list[tuple[float | None, float, str]] = []  # for the writer to record
        self._position: Any = None  # resume position of the batch being built
        self._closed_stream_stats = {
            "reconnects": 0,
            "stalls": 0,
            "http_errors": 0,
            "bytes": 0,
            "connects": 0,
            "incomplete": 0,
            "length_mismatches": 0,
        }
        self._rejected_stream: dict[str, int] = {}
        # Storage failures (see _storage_errors): why the capture must stop, the commit
        # trouble being retried right now, and messages the log could not take.
        self._fatal: tuple[str, BaseException | None, str | None] | None = None
        self._write_trouble: str | None = None
        self._unlogged = 0

    # -- public API ----------------------------------------------------------------------
    def start(self) -> Collector:
        """Open the dataset, recover what the WAL holds, and start streaming in the background."""
        with self._lock:
            if self._started:
                raise StreamkitError("this Collector was already started; build a new one with collect()")
            self._started = True
        self._stats.started = time.time()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._wal = WriteAheadLog(self.path / "_wal", **self._wal_options)
            self._ds = DatasetWriter(self.path, source=self._source(), keep_raw=self.keep_raw,
                                     decoder=self._decoder)
        except OSError as exc:
            raise SinkError(f"cannot open the dataset at {self.path}: {exc.strerror or exc}. Check the path and permissions.") from exc
        except BaseException:
            if self._wal is not None:
                self._wal.close()
            raise
        if self._progress_wanted:
            from tqdm.auto import tqdm

            self._progress = tqdm(desc=f"streamkit {self.path.name}", unit=" tweets", dynamic_ncols=True)
        self._writer = threading.Thread(target=self._writer_loop, name="streamkit-writer", daemon=True)
        self._writer.start()
        return self

    @property
    def running(self) -> bool:
        """True until the capture has stopped (by ``stop()``, a limit, or a fatal error)."""
        return self._started and not self._done.is_set()

    @property
    def stats(self) -> CollectorStats:
        """A consistent snapshot of the counters and the state."""
        with self._lock:
            s = CollectorStats(**{k: v for k, v in asdict(self._stats).items()})
        st = self._stream.stats
        c = self._closed_stream_stats
        s.reconnects = c["reconnects"] + st.reconnects + (1 if c["connects"] and st.connects else 0)
        s.stalls = c["stalls"] + st.stalls
        s.http_errors = c["http_errors"] + st.http_errors
        s.bytes = c["bytes"] + st.bytes
        rejected = dict(self._rejected_stream)
        for k, v in st.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
        # Complete messages the stream dropped (oversized) were received too.
        s.received += sum(rejected.values())
        for k, v in s.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
        s.rejected = rejected
        s.incomplete = c["incomplete"] + st.incomplete
        s.length_mismatches = c["length_mismatches"] + st.length_mismatches
        s.pending = max(0, s.received - (s.stored + s.duplicates + s.events + sum(rejected.values())))
        s.spilled = self._pending.spilled
        if s.state not in ("stopped", "failed", "recovering", "starting", "stopping"):
            s.state = st.state if st.state in ("connecting", "streaming", "backing off") else s.state
            if s.state == "backing off" and st.backoff_until:
                why = f" after HTTP {st.last_status_code}" if st.last_status_code not in (None, 200) else ""
                s.detail = f"backing off until {time.strftime('%H:%M:%S', time.localtime(st.backoff_until))}{why}"
            elif s.state == "streaming":
                s.detail = "streaming"
            elif s.state == "connecting":
                s.detail = f"connecting to {self.base_url}"
        if self._write_trouble and s.state not in ("stopped", "failed"):
            s.detail = f"{s.detail or s.state}; {self._write_trouble}"
        if st.last_error and (s.last_error is None or (st.last_error_time or 0) >= (self._last_error_time or 0)):
            s.last_error = st.last_error
        s.errors += st.network_errors + st.http_errors + c.get("errors", 0)
        return s

    _last_error_time: float | None = None

    @property
    def df(self):  # -> pandas.DataFrame
        """The newest ``view_rows`` tweets (oldest first), safe to read while the capture runs."""
        with self._lock:
            ring, version = self._ring, self._ring_version
            cached = self._df_cache
        if cached is not None and cached[0] == version:
            return cached[1]
        frame = schema.to_pandas(self._decoder.item_schema.empty_table() if ring is None else ring)
        if "raw" in frame.columns:
            frame = frame.drop(columns=["raw"])
        with self._lock:
            self._df_cache = (version, frame)
        return frame

    def read(self, **kwargs: Any):  # -> pandas.DataFrame
        """Everything committed so far: ``streamkit.read(self.path, **kwargs)``."""
        return read(self.path, **kwargs)

    @property
    def filter(self) -> dict[str, Any]:
        """The filter in use (as passed to ``collect`` or ``set_filter``; a source's own options).

        Credentials among a source's options (``bearer_token``, Mastodon's ``token``) show as ``"***"``.
        """
        if self.source_options:
            from .sources import is_credential

            return {k: "***" if is_credential(k) and v is not None else v for k, v in self.source_options.items()}
        return {k: v for k, v in self._filter.items() if v not in (None, False)}

    def set_filter(self, **params: Any) -> None:
        """Switch to a new filter, reconnecting into the same dataset.

        Parameters
        ----------
        **params
            ``track``, ``follow``, ``locations``, ``languages``,
            ``filter_level``, ``stall_warnings``; omitted ones are cleared.

        Messages already received under the old filter are kept; the
        manifest records each filter with the time span it was in use.
        """
        if self._endpoint is not None:
            raise ConfigError(
                f"set_filter() changes a Twitter v1.1 filter; for {self._decoder.name}, stop() and "
                "start a new collect() on the same path (it resumes where this one stopped)"
            )
        unknown = set(params) - set(_FILTER_KEYS)
        if unknown:
            raise ConfigError(f"set_filter() got unknown parameter(s): {', '.join(sorted(unknown))}")
        new_filter = {k: params.get(k) for k in _FILTER_KEYS}
        new_filter["stall_warnings"] = bool(new_filter["stall_warnings"])
        params_checked = self._check_filter(new_filter, sample=False)
        with self._lock:
            if not self.running:
                raise StreamkitError("the capture is not running; start a new one with collect()")
            old = self._stream
            self._filter = new_filter
            self._params = params_checked
            self.sample = False
            self._switching = True
        try:
            old.disconnect()
            self._absorb_stream_stats(old)
            with self._lock:
                assert self._ds is not None
                self._ds.record_filter(self._manifest_filter())
                self._stream = self._new_stream()
                if not self._stop_requested.is_set():
                    self._start_stream()
        finally:
            self._switching = False

    def stop(self, timeout: float = 30.0) -> None:
        """Stop streaming, commit everything received, and return.

        Safe to call more than once and from any thread but the writer.
        """
        if not self._started:
            return
        self._stop_requested.set()
        with self._lock:
            if self._stats.state not in ("stopped", "failed"):
                self._stats.state = "stopping"
        self._stream.disconnect()
        if self._writer is not None and self._writer is not threading.current_thread():
            self._writer.join(timeout)
            if self._writer.is_alive():
                log.error("the writer did not finish within %.0f s; data stays in the WAL for recovery", timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the capture has stopped; True if it has."""
        return self._done.wait(timeout)

    def wait_for(self, *, stored: int | None = None, received: int | None = None, timeout: float = 60.0) -> bool:
        """Block until at least ``stored`` tweets are committed (or ``received`` messages logged).

        Returns False on timeout or when the capture stopped first.

        Examples
        --------
        >>> # c.wait_for(stored=1000, timeout=120)
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                s = self._stats
                ok = (stored is None or s.stored >= stored) and (received is None or s.received >= received)
            if ok:
                return True
            if self._done.wait(0.02):
                with self._lock:
                    s = self._stats
                    return (stored is None or s.stored >= stored) and (received is None or s.received >= received)
        return False

    @property
    def exception(self) -> BaseException | None:
        """What ended the capture, if it did not end by request."""
        return self._stream.exception

    def __enter__(self) -> Collector:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<Collector {s.state} path={str(self.path)!r} filter={self.filter!r} "
            f"received={s.received:,} stored={s.stored:,} duplicates={s.duplicates:,}>"
        )

    def panel(self, **options: Any) -> Any:
        """The notebook control panel of this capture (needs ``pip install 'streamkit[notebook]'``)."""
        from .widgets import panel  # lazy: ipywidgets is optional

        return panel(self, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        # In a kernel with ipywidgets: the panel; otherwise None, and IPython uses _repr_html_.
        from .widgets import _collector_mimebundle

        return _collector_mimebundle(self, include, exclude)

    def _repr_html_(self) -> str:
        import html

        s = self.stats
        rows = [
            ("state", s.detail or s.state),
            ("filter", self.filter),
            ("path", str(self.path)),
            ("received", f"{s.received:,}"),
            ("stored", f"{s.stored:,}"),
            ("duplicates", f"{s.duplicates:,}"),
            ("deletes", f"{s.deletes:,}"),
            ("withheld (limit notices)", f"{s.withheld:,}"),
            ("reconnects", s.reconnects),
            ("rate", f"{s.rate:,.0f}/s"),
            ("last error", s.last_error or ""),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<div><b>streamkit Collector</b><table>{body}</table></div>"

    # -- internals -------------------------------------------------------------------------
    def _check_filter(self, f: dict[str, Any], sample: bool | None = None) -> dict[str, str]:
        if self.sample if sample is None else sample:
            return {"delimited": "length"}
        kwargs = {k: f[k] for k in _FILTER_KEYS}
        kwargs["stall_warnings"] = bool(kwargs["stall_warnings"])
        return build_filter_params(**kwargs)

    def _manifest_filter(self) -> dict[str, Any]:
        if self._endpoint is not None:
            describe = getattr(self._endpoint, "describe", None)
            return dict(describe()) if describe is not None else {"endpoint": self._endpoint.name}
        if self.sample:
            return {"endpoint": "statuses/sample"}
        out: dict[str, Any] = {"endpoint": "statuses/filter"}
        for k, v in self._filter.items():
            if v is None or v is False:
                continue
            out[k] = [v] if isinstance(v, str) else (list(v) if not isinstance(v, (bool, int, float)) else v)
        return out

    def _source(self) -> dict[str, Any]:
        return {"kind": self._decoder.name, "base_url": self.base_url}

    def _new_stream(self) -> Stream:
        options = dict(self._stream_options)
        # The dispatch thread only appends to the WAL, and a backlog beyond this spills
        # to the WAL anyway: a big in-memory hand-off would only cost memory.
        options.setdefault("max_buffer_bytes", 4 * 1024 * 1024)
        if self._endpoint is not None:
            if self._endpoint.stall_timeout:
                options.setdefault("timeout", self._endpoint.stall_timeout)
            return Stream(self.auth, BufferingListener(self), endpoint=self._endpoint, **options)
        return Stream(self.auth, BufferingListener(self), base_url=self.base_url, **options)

    def _start_stream(self) -> None:
        if self._endpoint is not None:
            self._stream.start(is_async=True)
            return
        f: dict[str, Any] = dict(self._filter)
        if self.sample:
            self._stream.sample(is_async=True, languages=f["languages"], stall_warnings=f["stall_warnings"])
        else:
            self._stream.filter(is_async=True, **f)

    def _absorb_stream_stats(self, old: Stream) -> None:
        st = old.stats
        c = self._closed_stream_stats
        with self._lock:
            c["reconnects"] += st.reconnects + (1 if c["connects"] and st.connects else 0)
            c["connects"] += st.connects
            c["stalls"] += st.stalls
            c["http_errors"] += st.http_errors
            c["bytes"] += st.bytes
            c["incomplete"] += st.incomplete
            c["length_mismatches"] += st.length_mismatches
            c["errors"] = c.get("errors", 0) + st.network_errors + st.http_errors
            for k, v in st.rejected.items():
                self._rejected_stream[k] = self._rejected_stream.get(k, 0) + v

    def _note_error(self, text: str) -> None:
        with self._lock:
            self._stats.last_error = text
            self._stats.errors += 1
            self._last_error_time = time.time()
        log.error("%s", text)

    def _on_connect(self) -> None:
        """Dispatch thread, in order with the messages: where in the log a connection starts."""
        assert self._wal is not None
        now = time.time()
        with self._lock:
            self._conn_starts.append(self._wal.next_seq)
            del self._conn_starts[:-64]
            self._connections += 1
            if self._connections > 1 and not self._decoder.can_replay:
                # Nothing resends what passed while we were away: say which span may miss data.
                self._gaps.append((self._last_message_time, now, "reconnected"))

    def _on_messages(self, messages: list[bytes]) -> bool | None:
        """Dispatch thread: WAL first, then the writer's queue. False stops the stream."""
        wal = self._wal
        assert wal is not None
        now_us = time.time_ns() // 1000
        try:
            first, last = wal.append(messages, now_us)
        except SinkError as exc:
            return self._log_failed(exc, len(messages))
        nbytes = sum(map(len, messages))
        with self._lock:
            self._stats.received += len(messages)
            self._last_message_time = now_us / 1e6
        self._pending.put(first, last, messages, now_us, nbytes)
        try:
            wal.maybe_sync()
        except SinkError as exc:
            return self._log_failed(exc, 0)
        return None

    def _log_failed(self, exc: SinkError, unlogged: int) -> bool:
        """The WAL cannot take messages: nothing more can be received safely, so stop."""
        with self._lock:
            self._unlogged += unlogged
            first_failure = self._fatal is None
            if first_failure:
                self._fatal = ("log", exc, None)
        if first_failure:
            self._note_error(f"{_storage.cause(exc)} at {self.path}: the write-ahead log failed, stopping ({exc})")
        return False

    # The writer thread --------------------------------------------------------------------
    def _writer_loop(self) -> None:
        wal, ds = self._wal, self._ds
        assert wal is not None and ds is not None
        try:
            with self._lock:
                self._stats.state = "recovering"
            recovered = ds.recover(wal)
            with self._lock:
                self._stats.recovered = sum(r.tweets for r in recovered)
            self._resume(ds)
            if ds.committed_seq >= wal.next_seq - 1 and wal.rotate():
                # Everything recovered is in Parquet: drop it from the log, so that a
                # capture killed again and again never grows its log without bound.
                wal.sync()
                wal.release(ds.committed_seq)
            ds.record_filter(self._manifest_filter())
            with self._lock:
                self._stats.state = "connecting"
                if not self._stop_requested.is_set():
                    self._start_stream()
            self._write_until_stopped(wal, ds)
        except _DatasetGone as gone:
            try:
                self._save_after_deletion(gone)
            except BaseException as exc:
                log.exception("could not save what the capture held after its folder was deleted")
                self._note_error(f"the dataset folder {self.path} was deleted while collecting, and "
                                 f"what the capture held could not be saved: {exc}")
                with self._lock:
                    self._fatal = ("deleted", exc, f"the dataset folder {self.path} was deleted while "
                                   f"collecting; the capture stopped and could not save what it held: {exc}")
        except _CommitAbandoned as exc:
            with self._lock:
                if self._fatal is None:
                    self._fatal = ("commit", exc.__cause__, None)
        except SinkError as exc:  # storage trouble outside a commit: recovery, the manifest
            log.exception("the writer failed")
            with self._lock:
                if self._fatal is None:
                    self._fatal = ("writer", exc, None)
            self._stream.disconnect()
        except BaseException as exc:  # a writer failure must be seen, not lost with the thread
            log.exception("the writer failed")
            self._note_error(f"writer failed: {exc}")
            with self._lock:
                self._stats.state = "failed"
                self._stats.detail = f"failed: {exc}"
            self._stream.disconnect()
        finally:
            self._finish(wal, self._ds or ds)

    def _resume(self, ds: DatasetWriter) -> None:
        """Writer thread, before streaming: continue from where the dataset's last commit was."""
        position = ds.resume_position
        if position is None or self._endpoint is None:
            return
        self._endpoint.resume_from(position)
        if not self._decoder.can_replay:
            ds.record_gap(ds.last_received, time.time(), "restarted")

    def _record_gaps(self, ds: DatasetWriter) -> None:
        with self._lock:
            gaps, self._gaps = self._gaps, []
        if self._endpoint is not None:  # spans the source itself could not fill in
            gaps.extend(self._endpoint.take_gaps())
        for start, end, reason in gaps:
            ds.record_gap(start, end, reason)

    def _write_until_stopped(self, wal: WriteAheadLog, ds: DatasetWriter) -> None:
        batch: list[schema.DecodedBatch] = []
        span: list[int] = []  # first and last WAL seq of the uncommitted batch
        rows = size = 0  # messages and payload bytes of the uncommitted batch
        since = time.monotonic()
        tick = min(0.2, self.flush_seconds / 2)
        deadline = None if self.duration is None else time.monotonic() + self.duration
        while True:
            if wal.detached:
                raise _DatasetGone(span, batch)
            stream = self._stream
            stream_done = (
                not self._switching
                and not stream.running
                and (stream.thread is None or not stream.thread.is_alive())
            )
            # Bounded work per pass (messages and bytes) keeps memory flat when the writer
            # falls behind: decoding takes several times a pass's size in temporaries.
            items = self._pending.take(self._pass_messages, self._pass_bytes)
            if items:
                # Decode everything that arrived since the last tick in one call:
                # per-batch overheads dominate when network reads are small.
                messages, received = [], []
                for first, last, msgs, received_us, nbytes in items:
                    size += nbytes
                    if msgs is None:  # spilled: only the WAL holds the payloads
                        for _, rec_us, payload in wal.read(first, last):
                            messages.append(payload)
                            received.append(rec_us)
                    else:
                        messages.extend(msgs)
                        received.extend([received_us] * len(msgs))
                decoded = self._decoder.decode_batch(messages, received_at_us=received, keep_raw=self.keep_raw)
                position = self._decoder.position(messages)
                if position is not None:
                    self._position = position
                if not span:
                    span = [items[0][0], items[-1][1]]
                    since = time.monotonic()
                span[1] = items[-1][1]
                batch.append(decoded)
                rows += len(messages)
                self._update_view(decoded)
                self._count_notices(decoded, items[0][0])
                # A pass's temporaries are free now: hand the pages back (mimalloc keeps
                # them otherwise, and the process's footprint grows to its worst pass).
                del messages, received, decoded
                pa.default_memory_pool().release_unused()
            wal.maybe_sync()
            self._update_rate()
            if self._gaps or self._endpoint is not None:
                self._record_gaps(ds)
            stopping = self._stop_requested.is_set() or stream_done
            if batch and (rows >= self.flush_rows or size >= self.flush_bytes
                          or time.monotonic() - since >= self.flush_seconds or stopping):
                self._commit(ds, wal, span[0], span[1], batch)
                batch, span, rows, size = [], [], 0, 0
            limit_hit = self.max_tweets is not None and self._stats.stored >= self.max_tweets
            timed_out = deadline is not None and time.monotonic() >= deadline
            if (limit_hit or timed_out) and not self._stop_requested.is_set():
                log.info("capture limit reached; stopping")
                self._stop_requested.set()
                self._stream.disconnect()
                continue
            # stream_done was read before take(): nothing can have arrived since.
            if stream_done and not items and not batch:
                break
            if not items:
                self._stop_requested.wait(tick)

    def _commit(
        self, ds: DatasetWriter, wal: WriteAheadLog, first: int, last: int, batch: list[schema.DecodedBatch]
    ) -> None:
        decoded = _concat(batch)
        attempt = 0
        problem = ""
        while True:
            try:
                result = ds.commit_decoded(first, last, decoded, position=self._position)
                break
            except SinkError as exc:
                if wal.detached:
                    raise _DatasetGone([first, last], [decoded]) from exc
                # The data are safe in the WAL: retry with back-off (bounded memory: the
                # queue spills to the WAL meanwhile), until writing works or the capture ends.
                attempt += 1
                problem = _storage.cause(exc)
                ending = self._stop_requested.is_set() or self._fatal is not None or (
                    not self._switching and not self._stream.running
                )
                if ending and attempt >= _FINAL_ATTEMPTS:
                    raise _CommitAbandoned(problem) from exc
                delay = _RETRY_FIRST if ending else min(_RETRY_FIRST * 2 ** (attempt - 1), _RETRY_CAP)
                safe = max(0, wal.next_seq - 1 - ds.committed_seq)
                trouble = _storage.retrying_message(problem, path=self.path, safe=safe, delay=delay)
                with self._lock:
                    self._write_trouble = trouble
                self._note_error(f"{trouble} ({exc})")
                self._stop_requested.wait(delay)
        if attempt:
            log.warning("commits to %s work again after %d failed attempt(s)", self.path, attempt)
            with self._lock:
                self._write_trouble = None
                self._stats.last_error = f"resolved: commits work again after {attempt} failed attempt(s) ({problem})"
                self._last_error_time = time.time()
        self._count_commit(result)
        wal.release(ds.committed_seq)
        # The Arrow allocator keeps freed pages for reuse; the next batch is seconds away,
        # so give them back now (mimalloc otherwise holds on to the peak of every commit).
        pa.default_memory_pool().release_unused()

    def _save_after_deletion(self, gone: _DatasetGone) -> None:
        """The dataset folder was deleted: stop, and write what is still held to a new one."""
        log.error("the dataset at %s was deleted while collecting; stopping", self.path)
        self._stop_requested.set()
        self._stream.disconnect()  # the dispatch thread first hands over what it had read
        # A recursive delete removes the folder itself last: let it finish before recreating.
        deadline = time.monotonic() + 1.0
        while self.path.exists() and time.monotonic() < deadline:
            self._done.wait(0.02)
        whole = not self.path.exists()
        ds = DatasetWriter(self.path, source=self._source(), keep_raw=self.keep_raw,
                           decoder=self._decoder)
        ds.record_filter(self._manifest_filter())
        self._ds = ds
        saved = lost = 0
        if gone.batch:  # decoded (and counted) already
            decoded = _concat(gone.batch)
            self._count_commit(ds.commit_decoded(gone.span[0], gone.span[1], decoded))
            saved += decoded.tweets.num_rows + decoded.events.num_rows + decoded.n_rejected
        messages: list[bytes] = []
        received: list[int] = []
        first = last = -1
        for lo, hi, msgs, received_us, _ in self._pending.take(1 << 62):
            if msgs is None:  # spilled: only the deleted log had it
                lost += hi - lo + 1
                continue
            first = lo if first < 0 else first
            last = hi
            messages.extend(msgs)
            received.extend([received_us] * len(msgs))
        if messages:
            decoded = self._decoder.decode_batch(messages, received_at_us=received, keep_raw=self.keep_raw)
            self._count_notices(decoded, first)
            self._count_commit(ds.commit_decoded(first, last, decoded))
            saved += len(messages)
        text = _storage.deleted_message(path=self.path, whole=whole, saved=saved, lost=lost)
        with self._lock:
            self._fatal = ("deleted", None, text)

    def _count_commit(self, result: Any) -> None:
        with self._lock:
            s = self._stats
            s.stored += result.tweets
            s.duplicates += result.duplicates
            s.events += result.events
            for k, v in result.rejected.items():
                s.rejected[k] = s.rejected.get(k, 0) + v
            s.last_flush = time.time()
        if self._progress is not None:
            self._progress.update(result.tweets)
            self._progress.set_postfix_str(self.stats.detail or self.stats.state, refresh=False)

    def _count_notices(self, decoded: schema.DecodedBatch, first_seq: int) -> None:
        """Count deletes and limit notices; ``first_seq`` is the log position of message 0."""
        events = decoded.events
        if events.num_rows == 0 or "limit_track" not in events.column_names:
            return
        kinds = events.column("event_type").to_pylist()
        tracks = events.column("limit_track").to_pylist()
        positions = (decoded.event_index + first_seq).tolist()
        with self._lock:
            s = self._stats
            starts = list(self._conn_starts)
            for kind, track, seq in zip(kinds, tracks, positions, strict=True):
                if kind == "delete":
                    s.deletes += 1
                elif kind == "limit" and track is not None:
                    s.limit_notices += 1
                    # `track` is a running total since its own connection opened.
                    i = bisect.bisect_right(starts, seq) - 1
                    conn = starts[i] if i >= 0 else -1  # the connection's first log position
                    if conn != self._limit_conn:
                        self._limit_conn = conn
                        self._last_limit = 0
                    s.withheld += max(0, int(track) - self._last_limit)
                    self._last_limit = max(self._last_limit, int(track))

    def _update_view(self, decoded: schema.DecodedBatch) -> None:
        if self.view_rows == 0 or decoded.tweets.num_rows == 0:
            return
        new = decoded.tweets.drop_columns(["raw"])
        ring = new if self._ring is None else pa.concat_tables([self._ring, new])
        if ring.num_rows > self.view_rows:
            ring = ring.slice(ring.num_rows - self.view_rows)
        if ring.num_rows < self.view_rows * 4 and len(ring.columns[0].chunks) > 64:
            ring = ring.combine_chunks()
        with self._lock:
            self._ring = ring
            self._ring_version += 1

    def _update_rate(self) -> None:
        now = time.monotonic()
        received = self._stats.received
        self._rates.append((now, received))
        while len(self._rates) > 2 and now - self._rates[0][0] > 10:
            self._rates.popleft()
        t0, r0 = self._rates[0]
        with self._lock:
            self._stats.rate = (received - r0) / (now - t0) if now > t0 else 0.0

    def _fatal_text(self, wal: WriteAheadLog, ds: DatasetWriter) -> str:
        """Why the capture stopped, with what is safe and where (caller holds the lock)."""
        assert self._fatal is not None
        kind, exc, text = self._fatal
        if text is not None:
            return text
        safe = max(0, wal.next_seq - 1 - ds.committed_seq)
        problem = _storage.cause(exc) if exc is not None else "storage error"
        detail = str(exc) if exc is not None else kind
        return _storage.stopped_message(problem, path=self.path, safe=safe, lost=self._unlogged, detail=detail)

    def _finish(self, wal: WriteAheadLog, ds: DatasetWriter) -> None:
        try:
            self._stream.disconnect()
            ds.close_filter()
            if not wal.detached and ds.committed_seq >= wal.next_seq - 1:
                # Everything is in Parquet: leave an empty log, not a copy of the data.
                wal.sync()
                wal.rotate()
                wal.release(ds.committed_seq)
        except Exception as exc:
            self._note_error(f"could not close the dataset cleanly: {exc}")
        finally:
            try:
                wal.close()
            except Exception as exc:
                self._note_error(f"could not close the write-ahead log cleanly: {exc}")
            with self._lock:
                ended_by = self._stream.exception
                if self._fatal is not None:
                    text = self._fatal_text(wal, ds)
                    self._stats.state = "failed"
                    self._stats.detail = f"failed: {text}"
                    self._stats.last_error = text
                    self._last_error_time = time.time()
                    self._write_trouble = None
                elif self._stats.state != "failed":
                    if ended_by is not None and not self._stop_requested.is_set():
                        self._stats.state = "failed"
                        self._stats.detail = f"failed: {ended_by}"
                    else:
                        self._stats.state = "stopped"
                        self._stats.detail = "stopped"
                if ended_by is not None and not self._stats.last_error:
                    self._stats.last_error = str(ended_by)
                self._stats.rate = 0.0
            if self._progress is not None:
                self._progress.set_postfix_str(self._stats.detail, refresh=False)
                self._progress.close()
            self._done.set()


class _DatasetGone(Exception):
    """Writer-internal: the dataset folder was deleted; carries the uncommitted batch."""

    def __init__(self, span: list[int], batch: list[schema.DecodedBatch]) -> None:
        super().__init__("the dataset folder was deleted")
        self.span = span
        self.batch = batch


class _CommitAbandoned(Exception):
    """Writer-internal: commits kept failing while the capture was ending."""


def _concat(batches: list[schema.DecodedBatch]) -> schema.DecodedBatch:
    if len(batches) == 1:
        return batches[0]
    rejected: dict[str, int] = {}
    for b in batches:
        for k, v in b.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
    return schema.DecodedBatch(
        tweets=pa.concat_tables([b.tweets for b in batches]),
        events=pa.concat_tables([b.events for b in batches]),
        rejected=rejected,
        # positions within one batch are meaningless once concatenated
        tweet_index=np.empty(0, dtype=np.int64),
    )


def _default_progress() -> bool:
    """A progress bar in a terminal; none in a notebook (the panel takes over) or a pipe."""
    if "ipykernel" in sys.modules:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def collect(
    *,
    source: str | None = None,
    track: Iterable[str] | str | None = None,
    follow: Iterable[int | str] | None = None,
    locations: Sequence[float] | None = None,
    languages: Iterable[str] | str | None = None,
    auth: AuthHandler | None = None,
    path: str | Path | None = None,
    base_url: str | None = None,
    flush_rows: int = 20_000,
    flush_seconds: float = 5.0,
    view_rows: int = 1_000,
    keep_raw: bool = True,
    progress: bool | None = None,
    **options: Any,
) -> Collector:
    """Start a capture on background threads and return its :class:`Collector` at once.

    Parameters
    ----------
    source : str, optional
        The live source, a name in :data:`streamkit.sources.SOURCES`: ``"x-v2"``,
        ``"jetstream"``, ``"wikimedia"``, ``"mastodon"``, or ``"twitter-v1.1"`` (the
        default). The source's own options (``collections=``, ``streams=``, ``tag=``...)
        are passed as keyword arguments too; see the source's module in
        :mod:`streamkit.sources` and ``streamkit collect --source NAME --help``.
    track, follow, locations, languages
        The Twitter v1.1 filter, as for :meth:`Stream.filter`. With ``sample=True``
        (and no filter) the sample stream is captured instead.
    auth : AuthHandler, optional
        Credentials; by default from the ``STREAMKIT_*`` environment variables.
    path : str or Path, optional
        Dataset folder; by default ``data/<name from the filter>``.
    base_url : str, optional
        Streaming endpoint (e.g. a local ``streamkit.testing.StreamServer``).
    flush_rows, flush_seconds
        Commit a Parquet part file after this many messages or seconds (or once the
        uncommitted messages reach ``flush_bytes``, see below).
    view_rows : int
        Rows kept for the live ``Collector.df``.
    keep_raw : bool
        Store each message as received in the ``raw`` column.
    progress : bool, optional
        A tqdm progress bar; by default on in a terminal, off in a notebook.
    **options
        ``max_tweets``, ``duration`` (seconds), ``filter_level``,
        ``stall_warnings``, ``sample``, WAL group settings, and every
        :class:`Stream` option (``timeout``, ``retry_time``, ``snooze_time``, ...).
        ``flush_bytes`` (default 16 MiB) also commits once the uncommitted messages
        reach this many bytes, which bounds the memory a batch holds.
        ``max_pending_bytes`` (default 8 MiB): received messages beyond this, not yet
        decoded, are kept only in the write-ahead log and read back from it.

    Returns
    -------
    Collector
        Already running.
    """
    collector = Collector(
        source=source,
        track=track,
        follow=follow,
        locations=locations,
        languages=languages,
        auth=auth,
        path=path,
        base_url=base_url,
        flush_rows=flush_rows,
        flush_seconds=flush_seconds,
        view_rows=view_rows,
        keep_raw=keep_raw,
        progress=progress,
        **options,
    )
    return collector.start()
