"""The ``streamkit`` command: ``collect``, ``demo``, ``inspect``, ``serve`` and ``rules`` (X API v2).

A thin adapter over the library. Status and progress go to stderr, data to
files and stdout. Credentials come only from the ``STREAMKIT_*`` environment
variables, never from options (other users can read a command line in ``ps``).
Exit status: 0 ok, 1 a runtime failure, 2 a usage error, 130 quit by a second signal.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import logging
import math
import os
import re
import shlex
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from tqdm.contrib.logging import logging_redirect_tqdm

from . import schema as _schema
from ._exceptions import ConfigError, SinkError, StreamkitError
from ._version import __version__
from .auth import ENV_VARS

__all__ = ["main", "parse_duration", "summarize"]

_OAUTH = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
_DEMO_TRACK = ["python", "climate", "music"]
_STATUS_EVERY = 60.0  # seconds between status lines when there is no progress bar


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _human_bytes(n: float) -> str:
    exp = min(int(math.log(max(n, 1), 1024)), 4)
    return f"{n:,.0f} B" if exp == 0 else f"{n / 1024 ** exp:,.1f} {'KMGT'[exp - 1]}B"


def _human_seconds(s: float) -> str:
    s = round(s)
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s / 3600:.1f} h"


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``2h``, ``30m``, ``90s``, ``1h30m``, ``1.5d`` or ``3600``.

    Each number takes a unit (``s``, ``m``, ``h``, ``d``); a lone number is
    seconds. Anything else, or zero, raises ValueError.

    Examples
    --------
    >>> parse_duration("2h"), parse_duration("30m"), parse_duration("90s"), parse_duration("3600")
    (7200.0, 1800.0, 90.0, 3600.0)
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    ValueError: 'soon' is not a duration: write e.g. 2h, 30m, 90s, 1h30m or 3600 (seconds)
    """
    s = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(s)
    ok = parts and "".join(n + u for n, u in parts) == s and (len(parts) == 1 or all(u for _, u in parts))
    if not ok or (total := sum(float(n) * _UNITS[u] for n, u in parts)) <= 0:
        raise ValueError(f"{text!r} is not a duration: write e.g. 2h, 30m, 90s, 1h30m or 3600 (seconds)")
    return total


def _arg(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type=``: a ValueError becomes a usage error naming the option."""
    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _positive(kind: type) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if not (value := kind(text)) > 0:
            raise ValueError(f"expected a positive number, got {text!r}")
        return value
    return _arg(convert)


def _locations(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or len(values) % 4:
        raise ValueError(f"{text!r}: give 4 numbers per box: W,S,E,N (south-west corner first)")
    for i in range(0, len(values), 4):
        w, s, e, n = box = values[i:i + 4]
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ValueError(f"box {box}: write W,S,E,N (south-west corner first), lon in [-180, 180], lat in [-90, 90]")
    return values


def _split(values: Sequence[str] | None) -> list[str]:
    """``["a,b", " c "]`` -> ``["a", "b", "c"]``: a comma means OR, as in Twitter's filter."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


# -- the summary shared by demo and inspect ------------------------------------------------

def _read_table(folder: Path, schema: pa.Schema, columns: list[str]) -> pa.Table:
    for _ in range(3):  # recovery may remove a file between listing and reading
        if not folder.is_dir():
            return schema.empty_table().select(columns)
        try:
            dataset = pads.dataset(folder, schema=schema, format="parquet", ignore_prefixes=[".", "_"])
            return dataset.to_table(columns=columns)
        except FileNotFoundError:
            time.sleep(0.05)
        except (OSError, pa.ArrowException) as exc:
            raise SinkError(f"cannot read the Parquet files in {str(folder)!r}: {exc}. A file may be damaged; "
                            "move it away and retry.") from exc
    raise SinkError(f"files in {str(folder)!r} kept vanishing while being read; retry.")


def _counts(values: pa.ChunkedArray | pa.Array, top: int | None = None) -> dict[str, int]:
    """Value counts, largest first (ties alphabetically)."""
    vc = pc.value_counts(values)
    pairs = zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True)
    return {str(v): int(n) for v, n in sorted(pairs, key=lambda p: (-p[1], str(p[0])))[:top]}


def _disk_usage(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):  # removed while walking
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def _iso(value: Any) -> str | None:
    return None if value is None else value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarize(path: str | os.PathLike[str], *, top: int = 10) -> dict[str, Any]:
    """What a dataset holds: rows, files, time span, filters, notices and top values.

    Rows follow :func:`streamkit.read` (one per item: the newest version, deleted items
    left out; ``stored_rows`` counts every stored row, one per key, for sources other than
    Twitter v1.1); the work is vectorised Arrow on the few columns needed.

    Parameters
    ----------
    path : path-like
        The dataset folder (it holds ``streamkit.json``).
    top : int, default 10
        How many hashtags (lower case) and languages to list.

    Returns
    -------
    dict
        JSON-serialisable; ``streamkit inspect --json`` prints it.

    Raises
    ------
    ConfigError
        ``path`` is not a streamkit dataset.
    SinkError
        A file cannot be read.

    Examples
    --------
    >>> import json, tempfile
    >>> from streamkit.sink import DatasetWriter
    >>> status = {"id": 1, "created_at": "Wed Oct 10 20:19:24 +0000 2018", "lang": "en",
    ...           "text": "hi #Python", "entities": {"hashtags": [{"text": "Python"}]},
    ...           "user": {"id": 2, "screen_name": "ada"}}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = DatasetWriter(tmp).commit(0, 0, [json.dumps(status).encode()], [1_540_000_000_000_000])
    ...     s = summarize(tmp)
    >>> s["rows"], s["top_hashtags"], s["languages"], s["created_at"]["min"]
    (1, {'python': 1}, {'en': 1}, '2018-10-10T20:19:24Z')
    """
    root = Path(path)
    manifest_path = root / "streamkit.json"
    if not manifest_path.is_file():
        why = "does not exist" if not root.exists() else "is not a folder" if not root.is_dir() else "has no streamkit.json"
        raise ConfigError(f"{str(root)!r} is not a streamkit dataset: it {why}. "
                          "Give the folder that `streamkit collect --out` wrote.")
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SinkError(f"cannot read {str(manifest_path)!r}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "streamkit":
        raise ConfigError(f"{str(root)!r} is not a streamkit dataset: its streamkit.json is something else.")

    from .sink import _current_items, dataset_source

    source = dataset_source(root)
    if source.name != "twitter-v1.1":
        return _summarize_source(root, manifest, source, top, _current_items)
    events = _read_table(root / "events", _schema.EVENT_SCHEMA, ["event_type", "status_id"])
    tweets = _read_table(root / "tweets", _schema.TWEET_SCHEMA,
                         ["id", "created_at", "received_at", "user_id", "lang", "tweet_type", "hashtags"])
    tweets = _current_items(root, source, tweets)  # as read(): one row per id, deletes applied

    def span(column: str) -> dict[str, str | None]:
        mm = pc.min_max(tweets.column(column)).as_py() if tweets.num_rows else {"min": None, "max": None}
        return {"min": _iso(mm["min"]), "max": _iso(mm["max"])}

    parts = {kind: list((root / kind).glob("date=*/part-*.parquet")) for kind in ("tweets", "events")}
    by_event, types = _counts(events.column("event_type")), _counts(tweets.column("tweet_type"))
    return {
        "path": str(root),
        "rows": tweets.num_rows,
        "users": pc.count_distinct(tweets.column("user_id")).as_py() if tweets.num_rows else 0,
        "files": len(parts["tweets"]) + len(parts["events"]),
        "tweet_files": len(parts["tweets"]),
        "event_files": len(parts["events"]),
        "bytes": _disk_usage(root),
        "wal_bytes": _disk_usage(root / "_wal"),
        "created_at": span("created_at"),
        "received_at": span("received_at"),
        "filters": manifest.get("filters", []),
        "events": by_event,
        "deletes": by_event.get("delete", 0),
        "limit_notices": by_event.get("limit", 0),
        "top_hashtags": _counts(pc.utf8_lower(pc.list_flatten(tweets.column("hashtags"))), top),
        "languages": _counts(pc.fill_null(tweets.column("lang"), "und"), top),
        "tweet_types": {t: types[t] for t in (*_schema.TWEET_TYPES, *types) if t in types},
        "source": manifest.get("source", {}),
        "source_name": source.name,
        "items": source.items,
        "gaps": manifest.get("gaps", []),
        "created": manifest.get("created"),
        "schema_version": manifest.get("schema_version"),
    }


def _summarize_source(root: Path, manifest: dict[str, Any], source: Any, top: int, current: Any) -> dict[str, Any]:
    """:func:`summarize` for a source other than Twitter v1.1: rows as read() gives them (the
    newest version of each item, deletes applied), rows stored, spans, events, gaps."""
    schema = source.item_schema
    keys = list(source.key_columns)
    wanted = [c for c in ("created_at", "received_at") if c in schema.names]
    langs = next((c for c in ("lang", "language", "langs") if c in schema.names), None)
    tags = "hashtags" if "hashtags" in schema.names else None
    columns = list(dict.fromkeys(keys + wanted + [c for c in (langs, tags) if c]))
    items = current(root, source, _read_table(root / source.items, schema, columns),
                    include_deleted=True, all_versions=True)  # one row per key
    stored_rows = items.num_rows
    items = current(root, source, items)
    events = _read_table(root / "events", source.event_schema, ["event_type"])

    def span(column: str) -> dict[str, str | None]:
        if column not in items.column_names or not items.num_rows:
            return {"min": None, "max": None}
        mm = pc.min_max(items.column(column)).as_py()
        return {"min": _iso(mm["min"]), "max": _iso(mm["max"])}

    lang_values = None
    if langs:
        lang_values = items.column(langs)
        if pa.types.is_list(lang_values.type):
            lang_values = pc.list_flatten(lang_values)
    item_files = list((root / source.items).glob("date=*/part-*.parquet"))
    event_files = list((root / "events").glob("date=*/part-*.parquet"))
    return {
        "path": str(root),
        "source_name": source.name,
        "items": source.items,
        "rows": items.num_rows,
        "stored_rows": stored_rows,
        "versioned": source.version_column is not None,
        "files": len(item_files) + len(event_files),
        "item_files": len(item_files),
        "event_files": len(event_files),
        "bytes": _disk_usage(root),
        "wal_bytes": _disk_usage(root / "_wal"),
        "created_at": span("created_at"),
        "received_at": span("received_at"),
        "filters": manifest.get("filters", []),
        "events": _counts(events.column("event_type")),
        "top_hashtags": _counts(pc.utf8_lower(pc.list_flatten(items.column(tags))), top) if tags else {},
        "languages": _counts(pc.fill_null(lang_values, "und"), top) if lang_values is not None else {},
        "gaps": manifest.get("gaps", []),
        "source": manifest.get("source", {}),
        "created": manifest.get("created"),
        "schema_version": manifest.get("schema_version"),
    }


def _share(counts: dict[str, int], total: int) -> str:
    return ", ".join(f"{k} {n / total:.0%}" for k, n in counts.items()) if counts and total else "-"


def _span_text(lo: str | None, hi: str | None, *, length: bool = True) -> str:
    if lo is None:
        return "-"
    a = _dt.datetime.fromisoformat(lo.replace("Z", "+00:00"))
    if hi is None:
        return f"since {a:%Y-%m-%d %H:%M:%S} UTC, still open"
    b = _dt.datetime.fromisoformat(hi.replace("Z", "+00:00"))
    end = b.strftime("%H:%M:%S" if a.date() == b.date() else "%Y-%m-%d %H:%M:%S")
    return f"{a:%Y-%m-%d %H:%M:%S} -> {end} UTC" + (f" ({_human_seconds((b - a).total_seconds())})" * length)


def _gap_lines(gaps: list[dict[str, Any]]) -> list[str]:
    if not gaps:
        return ["  gaps          none recorded"]
    lines = [f"  gaps          {len(gaps):,} span{'s' * (len(gaps) != 1)} the source could not resend "
             "(messages sent then may be missing):"]
    for g in gaps[-5:]:
        lines.append(f"                {_span_text(g.get('start'), g.get('end'))} ({g.get('reason', '?')})"
                     if g.get("start") else f"                until {g.get('end')} ({g.get('reason', '?')})")
    if len(gaps) > 5:
        lines.append(f"                ... and {len(gaps) - 5:,} earlier (all in streamkit.json)")
    return lines


def _rows_note(s: dict[str, Any]) -> str:
    """How the rows of a summary are counted: as streamkit.read() returns them."""
    stored, rows = s.get("stored_rows", s["rows"]), s["rows"]
    if s.get("versioned"):
        return f"as read(): the newest version of each item, deleted left out; {stored:,} rows stored, every version"
    if stored != rows:
        return f"as read(): one row per item, deleted left out; {stored:,} rows stored"
    return "as read(): one row per item"


def _format_source_summary(s: dict[str, Any]) -> str:
    rows, items = s["rows"], s["items"]
    wal = f", {_human_bytes(s['wal_bytes'])} of it write-ahead log" if s["wal_bytes"] else ""
    lines = [
        f"streamkit dataset {s['path']} (source {s['source_name']})",
        f"  rows          {rows:,} {items} ({_rows_note(s)})",
        f"  files         {s['files']:,} part files ({s['item_files']:,} {items}, {s['event_files']:,} events); "
        f"{_human_bytes(s['bytes'])} on disk{wal}",
        f"  created_at    {_span_text(s['created_at']['min'], s['created_at']['max'])}",
        f"  received_at   {_span_text(s['received_at']['min'], s['received_at']['max'])}",
        "  events        " + (", ".join(f"{k} {n:,}" for k, n in s["events"].items()) or "-"),
    ]
    for i, f in enumerate(s["filters"] or [{}]):
        params = f.get("params", {})
        what = " ".join(f"{k}=" + (",".join(map(str, v)) if isinstance(v, list) else str(v))
                        for k, v in params.items() if v not in (None, "", [], {})) or "-"
        when = f"  [{_span_text(f['started'], f.get('ended'), length=False)}]" if f.get("started") else ""
        lines.append(f"  {'options' if i == 0 else '':<13} {what}{when}")
    if s["top_hashtags"]:
        lines.append("  top hashtags  " + ", ".join(f"#{t} {n:,}" for t, n in s["top_hashtags"].items()))
    if s["languages"]:
        lines.append(f"  languages     {_share(s['languages'], sum(s['languages'].values()))}")
    lines += _gap_lines(s["gaps"])
    if (s.get("source") or {}).get("base_url"):
        lines.append(f"  source        {s['source']['base_url']}")
    return "\n".join(lines)


def _format_summary(s: dict[str, Any]) -> str:
    """The text report of a :func:`summarize` result (what ``streamkit inspect`` prints)."""
    if s.get("source_name", "twitter-v1.1") != "twitter-v1.1":
        return _format_source_summary(s)
    rows = s["rows"]
    others = sum(s["events"].values()) - s["deletes"] - s["limit_notices"]
    wal = f", {_human_bytes(s['wal_bytes'])} of it write-ahead log" if s["wal_bytes"] else ""
    lines = [
        f"streamkit dataset {s['path']}",
        f"  rows          {rows:,} tweets from {s['users']:,} users (one row per id; deleted tweets left out)",
        f"  files         {s['files']:,} part files ({s['tweet_files']:,} tweets, {s['event_files']:,} events); "
        f"{_human_bytes(s['bytes'])} on disk{wal}",
        f"  created_at    {_span_text(s['created_at']['min'], s['created_at']['max'])}",
        f"  notices       {s['deletes']:,} deletes, {s['limit_notices']:,} limit notices, {others:,} other",
    ]
    for i, f in enumerate(s["filters"] or [{}]):
        params = f.get("params", {})
        what = " ".join(f"{k}=" + (",".join(map(str, v)) if isinstance(v, list) else str(v))
                        for k, v in params.items() if k != "endpoint")
        what = ("sample " + what).strip() if params.get("endpoint") == "statuses/sample" else what or "-"
        when = f"  [{_span_text(f['started'], f.get('ended'), length=False)}]" if f.get("started") else ""
        lines.append(f"  {'filters' if i == 0 else '':<13} {what}{when}")
    tags = ", ".join(f"#{t} {n:,}" for t, n in s["top_hashtags"].items()) or "-"
    lines += [f"  top hashtags  {tags}", f"  languages     {_share(s['languages'], rows)}",
              f"  tweet types   {_share(s['tweet_types'], rows)}"]
    lines += _gap_lines(s.get("gaps", []))
    if (s.get("source") or {}).get("base_url"):
        lines.append(f"  source        {s['source']['base_url']} ({s['source'].get('kind', '?')})")
    return "\n".join(lines)


def _how_to_read(path: Path, items: str = "tweets") -> str:
    glob = (path / items / "*" / "*.parquet").as_posix().replace("'", "''")
    sql = f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)"
    duck = f'duckdb -c "{sql}"' if not re.search(r'["$`\\]', sql) else "duckdb -c " + shlex.quote(sql)
    return (f"Read it:\n  python -c \"import streamkit; print(streamkit.read({str(path)!r}))\"\n"
            f"  {duck}\n  streamkit inspect {shlex.quote(str(path))}")


@contextlib.contextmanager
def _signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` (only the main thread can install handlers)."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)


def _capture(args: argparse.Namespace, **kwargs: Any) -> tuple[Any, str | None, float, int]:
    """Run ``collect(**kwargs)`` in the foreground: (collector, signal name, seconds, exit status)."""
    from .collect import collect

    # The handler only sets a flag: stop() joins threads, which belongs on the main
    # thread's normal path. A second signal quits at once (the WAL keeps the rest).
    caught: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        caught.append(signal.Signals(signum).name)
        if len(caught) > 1:
            raise KeyboardInterrupt

    bar = not args.quiet and getattr(sys.stderr, "isatty", lambda: False)()
    started = last_status = time.monotonic()
    collector = collect(progress=bar, view_rows=0, **kwargs)  # a ConfigError is a usage error
    try:
        with _signals(on_signal):
            while not collector.wait(0.5):
                if caught:
                    if not args.quiet:
                        _err(f"streamkit: {caught[0]}: stopping and committing what was received "
                             "(send it again to quit at once; the write-ahead log keeps the rest)")
                    collector.stop()
                    break
                if not (args.quiet or bar) and time.monotonic() - last_status >= _STATUS_EVERY:
                    last_status, s = time.monotonic(), collector.stats
                    _err(f"streamkit: {s.detail or s.state}: {s.stored:,} stored, {s.rate:,.0f} msg/s, "
                         f"{s.reconnects} reconnects")
    except Exception:  # not KeyboardInterrupt: a second signal means quit now
        collector.stop()
        raise
    s = collector.stats
    if s.state == "failed":
        _err(f"streamkit: the capture failed: {s.last_error or s.detail}")
    # Still running: stop() timed out and logged that the write-ahead log keeps the data.
    code = 1 if s.state == "failed" or collector.running else 0
    return collector, caught[0] if caught else None, time.monotonic() - started, code


def _cmd_collect(args: argparse.Namespace) -> int:
    from .auth import auth_from_env
    from .collect import default_path

    if args.source != "twitter-v1.1":
        return _collect_source(args)
    track, follow, languages = _split(args.track), _split(args.follow), _split(args.language)
    locations = [v for box in args.locations or [] for v in box] or None
    if bad := [f for f in follow if not f.isdigit()]:
        raise ConfigError(f"--follow takes numeric user ids, not {', '.join(bad)}")
    if args.sample and (track or follow or locations):
        raise ConfigError("use either --sample or a filter (--track/--follow/--locations), not both")
    if not (args.sample or track or follow or locations):
        raise ConfigError("say what to collect: --track WORDS, --follow IDS, --locations BOXES or --sample")
    try:
        auth = auth_from_env()
    except ConfigError as exc:
        missing = [ENV_VARS[k] for k in _OAUTH if not os.environ.get(ENV_VARS[k], "").strip()]
        raise ConfigError(f"missing credentials: set {', '.join(missing)} in the environment. The command reads them "
                          "only from there, never from options (`streamkit serve` prints test values for a local "
                          "server)." if missing else str(exc)) from None
    options = {k: v for k, v in (("duration", args.duration), ("max_tweets", args.limit), ("timeout", args.timeout),
                                 ("sample", args.sample or None)) if v is not None}
    path = Path(args.out) if args.out else default_path(track=track, follow=follow, locations=locations)
    if not args.quiet:
        what = "the sample stream" if args.sample else " ".join(
            f"{k}={','.join(map(str, v))}" for k, v in (("track", track), ("follow", follow), ("locations", locations)) if v)
        u = urlsplit(args.base_url or "https://stream.twitter.com")  # user info or a query may hold secrets
        url = urlunsplit((u.scheme, u.netloc.rpartition("@")[2], u.path, "", ""))
        _err(f"streamkit: collecting {what} from {url} into {path}; Ctrl-C or SIGTERM stops and saves.")
    collector, why, elapsed, code = _capture(
        args, track=track or None, follow=follow or None, locations=locations, languages=languages or None,
        auth=auth, path=path, base_url=args.base_url, flush_seconds=args.flush_seconds,
        keep_raw=not args.no_raw, **options)
    if not args.quiet:
        s = collector.stats
        ended = f"stopped by {why}" if why else "finished" if code == 0 else "ended"
        _err(f"streamkit: {ended} after {_human_seconds(elapsed)}: {s.stored:,} tweets stored in {path} "
             f"({s.received:,} messages received, {s.duplicates:,} duplicates, {s.deletes:,} deletes, "
             f"{s.reconnects} reconnects)." + ("\n" + _how_to_read(path)) * bool(s.stored or not code))
    return code


def _collect_source(args: argparse.Namespace) -> int:
    """``streamkit collect --source NAME``: any source but Twitter v1.1."""
    from .collect import Collector
    from .sources import cli_options, takes_option

    track = _split(args.track) if takes_option(args.source, "track") else None  # keywords (Jetstream)
    v1 = [flag for flag, value in (("--track", args.track if track is None else None), ("--follow", args.follow),
                                   ("--locations", args.locations), ("--language", args.language),
                                   ("--sample", args.sample)) if value]
    if v1:
        raise ConfigError(f"{', '.join(v1)} belong(s) to Twitter v1.1; --source {args.source} takes its own options "
                          f"(see `streamkit collect --source {args.source} --help`)")
    source_options = {kw["dest"]: getattr(args, kw["dest"]) for _flags, kw in cli_options(args.source)
                      if getattr(args, kw["dest"], None) is not None}
    if track:
        source_options["track"] = track
    options = {k: v for k, v in (("duration", args.duration), ("max_tweets", args.limit), ("timeout", args.timeout))
               if v is not None}
    if args.out:
        path = Path(args.out)
    else:  # the source names its default folder (built here only to learn it; nothing starts)
        path = Collector(source=args.source, base_url=args.base_url, **source_options).path
    if not args.quiet:
        _err(f"streamkit: collecting from {args.source} into {path}; Ctrl-C or SIGTERM stops and saves.")
    collector, why, elapsed, code = _capture(
        args, source=args.source, path=path, base_url=args.base_url, flush_seconds=args.flush_seconds,
        keep_raw=not args.no_raw, **source_options, **options)
    if not args.quiet:
        s = collector.stats
        ended = f"stopped by {why}" if why else "finished" if code == 0 else "ended"
        _err(f"streamkit: {ended} after {_human_seconds(elapsed)}: {s.stored:,} items stored in {path} "
             f"({s.received:,} messages received, {s.duplicates:,} duplicates, {s.reconnects} reconnects)."
             + ("\n" + _how_to_read(path, collector._decoder.items)) * bool(s.stored or not code))
    return code


def _cmd_demo(args: argparse.Namespace) -> int:
    from .auth import OAuthHandler
    from .testing import TEST_CREDENTIALS, Fault, StreamServer

    n = max(4, int(args.rate * args.seconds))
    # A cut mid-message, a disconnect notice and a malformed message: the demo shows the
    # capture riding through them. No HTTP errors: Twitter's policy backs off for seconds.
    faults = [Fault.cut(after=n // 4), Fault.disconnect(after=n // 4, code=12), Fault.garbage(after=n // 8)]
    auth = OAuthHandler(*(TEST_CREDENTIALS[k] for k in _OAUTH[:2]))
    auth.set_access_token(*(TEST_CREDENTIALS[k] for k in _OAUTH[2:]))
    if not args.quiet:
        _err(f"streamkit demo: a local test stream at {args.rate:,.0f} tweets/s for {args.seconds:g} s "
             f"(track={','.join(_DEMO_TRACK)}, faults injected) into {args.out}")
    with StreamServer(rate=args.rate, faults=faults) as server:
        server.prepare(track=_DEMO_TRACK)  # the statuses are ready before the clock starts
        collector, why, elapsed, code = _capture(args, track=_DEMO_TRACK, auth=auth, base_url=server.url,
                                                 path=args.out, duration=args.seconds, flush_seconds=1.0)
    s, out = collector.stats, Path(args.out)
    bad = sum(s.rejected.values())
    print(f"This run: {s.stored:,} tweets stored in {_human_seconds(elapsed)}{f' (stopped by {why})' if why else ''}; "
          f"{s.reconnects} reconnects after injected faults, {bad} malformed message{'s' * (bad != 1)} skipped.\n")
    print(_format_summary(summarize(out)) + "\n\n" + _how_to_read(out))
    return code


def _cmd_inspect(args: argparse.Namespace) -> int:
    summary = summarize(args.path, top=args.top)
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else _format_summary(summary))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .testing import TEST_CREDENTIALS, StreamServer

    server = StreamServer(port=args.port, rate=args.rate or None, statuses=args.statuses,
                          keepalive_interval=args.keepalive, seed=args.seed)
    try:
        server.start()
    except OSError as exc:
        _err(f"streamkit serve: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}. "
             "Choose another --port (0 picks a free one).")
        return 1

    def on_signal(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # serve_forever() stops the server on it

    exports = "\n".join(f"  export {ENV_VARS[k]}={shlex.quote(TEST_CREDENTIALS[k])}" for k in _OAUTH)
    _err(f"streamkit test stream server on {server.url} (Ctrl-C to stop)\n"
         f"Its credentials are public test values:\n{exports}\n"
         f"Then: streamkit collect --track python --base-url {server.url}")
    with _signals(on_signal), contextlib.suppress(KeyboardInterrupt):
        try:
            server.serve_forever()
        finally:
            server.stop()
    _err(f"streamkit serve: stopped after sending {len(server.sent):,} statuses")
    return 0


# -- the parser ------------------------------------------------------------------------------

def _source_in(argv: Sequence[str]) -> str | None:
    """The ``--source NAME`` of a ``collect`` command line, if any (its options depend on it)."""
    for i, token in enumerate(argv):
        if token == "--source" and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith("--source="):
            return token.partition("=")[2]
    return None


def _add_source_options(c: argparse.ArgumentParser, source: str | None) -> None:
    from .sources import SOURCES, cli_options

    c.add_argument("--source", choices=list(SOURCES), default="twitter-v1.1", metavar="NAME",
                   help=f"What to capture: {', '.join(SOURCES)} (default twitter-v1.1). "
                        "`streamkit collect --source NAME --help` lists the source's own options.")
    if source in SOURCES and source != "twitter-v1.1":
        try:
            options = cli_options(source)
        except ConfigError:
            return  # not in this version: running the command says so
        group = c.add_argument_group(f"options of --source {source}")
        for flags, kwargs in options:
            group.add_argument(*flags, **kwargs)


def _build_parser(source: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamkit", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Capture live social-media streams into Parquet datasets.",
        epilog="Start with `streamkit demo`: no credentials or internet needed.\n"
               "`streamkit COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"streamkit {__version__}", help="Show the version and exit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str, func: Callable[..., int], help: str, description: str, epilog: str | None = None,
                quiet: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=textwrap.fill(description, 88), epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="Log more to stderr: -v for informational messages, -vv for debugging.")
        if quiet:
            p.add_argument("-q", "--quiet", action="store_true",
                           help="No progress bar, status lines or closing report; errors are still printed.")
        return p

    env = "\n".join(f"  {ENV_VARS[k]}" for k in _OAUTH)
    c = command("collect", _cmd_collect, "Capture a stream into a Parquet dataset until stopped.",
                "Capture a live source (Twitter v1.1 statuses/filter or sample by default; --source for X API v2, "
                "Bluesky Jetstream, Wikimedia EventStreams or Mastodon) into a Parquet dataset in the foreground, "
                "until Ctrl-C, SIGTERM, --duration or --limit. Everything received goes to a write-ahead log first: "
                "stopping commits it, and the next run into the same --out folder recovers after a crash and "
                "resumes where the source allows.",
                f"Twitter v1.1 credentials come only from the environment (OAuth 1.0a user context):\n{env}\n"
                "X API v2 reads STREAMKIT_BEARER_TOKEN, Mastodon STREAMKIT_MASTODON_TOKEN; Jetstream and "
                "Wikimedia need none.\n\nExamples:\n"
                "  streamkit collect --track climate --track 'cop30,#cop30' --duration 2h --out data/climate\n"
                "  streamkit collect --source jetstream --collection app.bsky.feed.post --duration 1h\n"
                "  streamkit collect --source wikimedia --stream recentchange --contact you@example.org",
                quiet=True)
    _add_source_options(c, source)
    v1 = c.add_argument_group("Twitter v1.1 filter (the default source)")
    v1.add_argument("--track", action="append", metavar="WORDS",
                    help="Keywords or phrases to track; repeat the option or separate with commas (either means OR). "
                         "Also Jetstream's client-side keyword filter.")
    v1.add_argument("--follow", action="extend", nargs="+", metavar="ID",
                    help="Numeric user ids whose tweets to capture (space or comma separated).")
    v1.add_argument("--locations", action="append", type=_arg(_locations), metavar="W,S,E,N",
                    help="Bounding boxes, 4 numbers each, south-west corner first: -122.75,36.8,-121.75,37.8.")
    v1.add_argument("--language", action="append", metavar="LANG",
                    help="Only tweets in these languages (BCP 47 codes such as en, es; commas or repeat).")
    v1.add_argument("--sample", action="store_true", help="Capture the sample stream (~1%% of all tweets), not a filter.")
    c.add_argument("--out", metavar="PATH",
                   help="Dataset folder (default: data/<name from the filter>); an existing dataset is appended to.")
    c.add_argument("--duration", type=_arg(parse_duration), metavar="TIME", help="Stop after 2h, 30m, 90s, 1h30m, 3600 (s)...")
    c.add_argument("--limit", type=_positive(int), metavar="N", help="Stop once at least N tweets (items) are stored.")
    c.add_argument("--base-url", metavar="URL", help="Streaming server (default: the source's public one, "
                   "https://stream.twitter.com for v1.1); http:// and ws:// only for a loopback host such as a "
                   "local test server.")
    c.add_argument("--flush-seconds", type=_positive(float), default=5.0, metavar="S",
                   help="Commit a Parquet part file at least every S seconds (default 5).")
    c.add_argument("--no-raw", action="store_true",
                   help="Do not keep each message's original JSON in the `raw` column (smaller files).")
    c.add_argument("--timeout", type=_positive(float), metavar="S",
                   help="Reconnect when nothing, not even a keep-alive, arrives for S seconds (default 90).")

    d = command("demo", _cmd_demo, "Collect from a built-in local test stream, then summarise the data.",
                "Start a local test stream server (realistic statuses, with a dropped connection, a disconnect "
                "notice and a malformed message mixed in), collect from it, and print what was stored. No "
                "credentials, no internet. Running it again appends to the same dataset.", quiet=True)
    d.add_argument("--seconds", type=_positive(float), default=20.0, metavar="S", help="How long to collect (default 20).")
    d.add_argument("--out", default=os.path.join("data", "demo"), metavar="PATH",
                   help="Dataset folder (default data/demo, relative to the current folder).")
    d.add_argument("--rate", type=_positive(float), default=2000.0, metavar="R", help="Tweets per second to send (default 2000).")

    i = command("inspect", _cmd_inspect, "Summarise a dataset: rows, files, time span, filters, top values.",
                "Summarise a dataset written by `streamkit collect`: rows (as streamkit.read() returns them: one "
                "per item, the newest version, deleted items left out), files and bytes on disk, the created_at span, the filters with their time spans, delete "
                "and limit notices, top hashtags, languages and tweet types.")
    i.add_argument("path", metavar="PATH", help="The dataset folder (it holds streamkit.json).")
    i.add_argument("--json", action="store_true", help="Print one JSON object to stdout instead of text.")
    i.add_argument("--top", type=_positive(int), default=10, metavar="N", help="Hashtags and languages to list (default 10).")

    s = command("serve", _cmd_serve, "Run the local test stream server in the foreground.",
                "Serve the Twitter v1.1 streaming API on 127.0.0.1 with generated statuses, to try `streamkit "
                "collect --base-url` or your own Tweepy-style code. It prints the URL and its public test "
                "credentials; Ctrl-C or SIGTERM stops it.")
    s.add_argument("--port", type=int, default=8080, metavar="PORT", help="Port on 127.0.0.1 (default 8080; 0 picks a free one).")
    s.add_argument("--rate", type=float, default=100.0, metavar="R",
                   help="Statuses per second per connection (default 100; 0 sends as fast as the client reads).")
    s.add_argument("--statuses", type=_positive(int), metavar="N", help="Send N statuses in all, then keep-alives (default: endless).")
    s.add_argument("--keepalive", type=_positive(float), default=30.0, metavar="S",
                   help="Send a keep-alive after S seconds of silence (default 30).")
    s.add_argument("--seed", type=int, default=0, metavar="N", help="Seed for the generated content (default 0).")

    # `streamkit rules`: the X API v2 filtered stream's rules
    from ._rules_cli import add_rules_command

    add_rules_command(command)
    return parser


def _glue_negative_locations(argv: list[str]) -> list[str]:
    # argparse takes "-122.75,36.8,..." for an option: glue it to its flag.
    out: list[str] = []
    for token in argv:
        if out and out[-1] == "--locations" and re.match(r"-\.?\d", token):
            out[-1] = f"--locations={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``streamkit`` command on ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Examples
    --------
    >>> main(["--version"])  # doctest: +ELLIPSIS
    streamkit ...
    0
    >>> main(["inspect", "no/such/folder"])
    2
    """
    argv = _glue_negative_locations(list(sys.argv[1:] if argv is None else argv))
    parser = _build_parser(_source_in(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    logger = logging.getLogger("streamkit")  # only the command configures logging
    handler, old_level = logging.StreamHandler(sys.stderr), logger.level
    handler.setFormatter(logging.Formatter("streamkit: %(message)s"))
    quiet = getattr(args, "quiet", False) and not args.verbose
    logger.setLevel(logging.ERROR if quiet else logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING)
    logger.addHandler(handler)
    try:
        with logging_redirect_tqdm(loggers=[logger]):  # log lines must not tear a progress bar apart
            return int(args.func(args))
    except ConfigError as exc:
        _err(f"streamkit {args.command}: error: {exc}")
        return 2
    except StreamkitError as exc:
        _err(f"streamkit {args.command}: {exc}")
        return 1
    except KeyboardInterrupt:
        _err(f"streamkit {args.command}: quit. Anything received but not committed is in the write-ahead log; "
             "the next run into the same folder commits it.")
        return 130
    except BrokenPipeError:  # e.g. `streamkit inspect --json PATH | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
