"""The HTML of the notebook panel's parts: pure functions of a stats snapshot and rows.

Kept apart from :mod:`streamkit.widgets` (threads, widgets) so that each part
is easy to test and costs one string build per refresh. No ipywidgets here;
the rate chart is a small inline SVG, so the panel needs no plotting library.

Examples
--------
>>> from streamkit.collect import CollectorStats
>>> state_text(CollectorStats(state="streaming"), base_url="http://127.0.0.1:8080")
'streaming'
>>> state_text(CollectorStats(state="backing off"), base_url="x", backoff_until=130.4,
...            status_code=420, now=100.0)
'backing off, retrying in 30 s after HTTP 420 (rate limited)'
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "COUNTERS",
    "NOT_STARTED",
    "TABLE_COLUMNS",
    "chart_html",
    "counters_html",
    "describe_filter",
    "join_values",
    "live_view",
    "newest_rows",
    "message_html",
    "state_html",
    "state_text",
    "table_html",
    "where_html",
]

#: Columns of the live table: (heading, DataFrame column).
TABLE_COLUMNS = (
    ("time", "created_at"),
    ("user", "user_screen_name"),
    ("text", "text"),
    ("lang", "lang"),
    ("type", "tweet_type"),
)

#: Counters shown: (CollectorStats attribute, label).
COUNTERS = (
    ("received", "received"),
    ("stored", "stored"),
    ("duplicates", "duplicates"),
    ("deletes", "deletes"),
    ("withheld", "withheld (limit notices)"),
    ("reconnects", "reconnects"),
    ("rate", "per second"),
)

_NO_RING = object()

NOT_STARTED = "not started: fill in a filter and press Start"

_WHY = {
    401: "the credentials were refused",
    403: "access was denied",
    404: "no such endpoint",
    420: "rate limited",
    429: "too many requests",
}

_COLORS = {
    "streaming": "#2e7d32",
    "connecting": "#f9a825",
    "reconnecting": "#f9a825",
    "starting": "#f9a825",
    "backing": "#ef6c00",
    "stopping": "#757575",
    "stopped": "#757575",
    "failed": "#c62828",
}


def join_values(value: Any) -> str:
    """A filter value as the text of an input box.

    Examples
    --------
    >>> join_values(["python", "data science"]), join_values([-74.25, 40.5]), join_values(None)
    ('python, data science', '-74.25, 40.5', '')
    >>> join_values(False), join_values(7)  # a source's scalar option (Wikimedia's bot=False)
    ('false', '7')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)


def describe_filter(flt: dict[str, Any]) -> str:
    """``{"track": ["a", "b"], "languages": ["en"]}`` as ``"track a, b; languages en"``.

    Examples
    --------
    >>> describe_filter({"track": ["a", "b"], "languages": ["en"]})
    'track a, b; languages en'
    >>> describe_filter({})  # an X v2 stream: its rules live on the server
    "the source's defaults"
    """
    return "; ".join(f"{k} {join_values(v)}" for k, v in flt.items()) or "the source's defaults"


def _rate(rate: float) -> str:
    return f"{rate:,.1f}" if rate < 10 else f"{rate:,.0f}"


def _why(status_code: int | None, stalls: int) -> str:
    if status_code in _WHY:
        return f" after HTTP {status_code} ({_WHY[status_code]})"
    if status_code is not None and status_code >= 500:
        return f" after HTTP {status_code} (server error)"
    if status_code not in (None, 200):
        return f" after HTTP {status_code}"
    return " after a network error or stall" if stalls else " after a network error"


def state_text(
    s: Any,
    *,
    base_url: str,
    backoff_until: float | None = None,
    status_code: int | None = None,
    now: float | None = None,
) -> str:
    """The capture's state in words a person understands.

    Parameters
    ----------
    s : CollectorStats or None
        None means no capture yet.
    base_url : str
        The endpoint, named while connecting.
    backoff_until, status_code : optional
        From the stream: when the next attempt is due (``time.time()``) and the
        last HTTP status, to say "retrying in N s after HTTP 420 (rate limited)".

    Examples
    --------
    >>> from streamkit.collect import CollectorStats
    >>> state_text(None, base_url="x")
    'not started: fill in a filter and press Start'
    >>> state_text(CollectorStats(state="connecting", reconnects=2), base_url="https://stream.example.org")
    'reconnecting to https://stream.example.org'
    >>> state_text(CollectorStats(state="failed", detail="failed: HTTP 401 from ...: the credentials were refused"),
    ...            base_url="x")
    'failed: HTTP 401 from ...: the credentials were refused'
    """
    if s is None:
        return NOT_STARTED
    state = s.state
    if state == "recovering":
        return "starting: committing data left by an earlier run"
    if state == "connecting":
        return ("reconnecting" if s.reconnects else "connecting") + f" to {base_url}"
    if state == "backing off":
        why = _why(status_code, s.stalls)
        if backoff_until:
            wait = max(0, round(backoff_until - (time.time() if now is None else now)))
            return f"backing off, retrying in {wait} s{why}"
        return f"backing off{why}"
    if state == "stopping":
        return "stopping: committing what was received"
    if state == "stopped":
        return f"stopped: {s.stored:,} tweets stored"
    if state == "failed":
        why = s.detail[len("failed: "):] if s.detail.startswith("failed: ") else (s.detail or s.last_error)
        return f"failed: {why or 'see the log'}"
    return state  # starting, streaming


def state_html(text: str, last_error: str | None = None) -> str:
    """The state line: a coloured dot, the text, and the last error while still running."""
    word = text.split(":")[0].split(" ")[0]
    color = _COLORS.get(word, "#9e9e9e")
    extra = ""
    if last_error and word not in ("failed", "stopped", "not"):
        extra = f" <span style='color:#777'>(last error: {html.escape(last_error[:160])})</span>"
    return (
        f"<span class='streamkit-state-text' data-state='{html.escape(word)}'>"
        f"<span style='color:{color}'>●</span> {html.escape(text)}</span>{extra}"
    )


def message_html(text: str, *, error: bool = False) -> str:
    """The message under the buttons: red with a warning sign for errors."""
    if not text:
        return ""
    color, icon = ("#b00020", "⚠ ") if error else ("#1b5e20", "")
    kind = "error" if error else "info"
    return f"<div class='streamkit-message' data-kind='{kind}' style='color:{color}'>{icon}{html.escape(text)}</div>"


def counters_html(s: Any) -> str:
    """The counters; dashes before a capture exists.

    Examples
    --------
    >>> from streamkit.collect import CollectorStats
    >>> "data-name='stored'" in counters_html(CollectorStats(stored=12345)), "12,345" in counters_html(CollectorStats(stored=12345))
    (True, True)
    """
    cells = []
    for key, label in COUNTERS:
        if s is None:
            value = "–"
        elif key == "rate":
            value = _rate(s.rate)
        else:
            value = f"{getattr(s, key):,}"
        cells.append(
            f"<div class='streamkit-counter' data-name='{key}' style='min-width:84px'>"
            f"<div class='streamkit-value' style='font-size:1.3em;font-variant-numeric:tabular-nums'>{value}</div>"
            f"<div style='color:#666;font-size:0.85em'>{html.escape(label)}</div></div>"
        )
    return f"<div style='display:flex;flex-wrap:wrap;gap:10px'>{''.join(cells)}</div>"


def chart_html(samples: Sequence[tuple[float, int]], span: float, *, width: int = 300, height: int = 56) -> str:
    """An inline SVG of messages per second from ``(monotonic time, received)`` samples.

    Only the last ``span`` seconds are drawn; ``data-points`` says how many rates.

    Examples
    --------
    >>> svg = chart_html([(0.0, 0), (1.0, 100), (2.0, 300)], span=300)
    >>> "data-points='2'" in svg, "peak 200/s" in svg
    (True, True)
    """
    now = samples[-1][0] if samples else 0.0
    points: list[tuple[float, float]] = []
    for (t0, r0), (t1, r1) in zip(samples, samples[1:], strict=False):
        if t1 > t0 and t1 >= now - span:
            points.append((t1, max(0.0, (r1 - r0) / (t1 - t0))))
    # Until a capture has run for ``span``, the x axis covers what there is (at least 10 s).
    shown = max(10.0, min(span, now - samples[0][0])) if samples else span
    top = max((r for _, r in points), default=0.0)
    scale = top * 1.1 or 1.0
    xy = [(width * (1 - (now - t) / shown), height - 2 - (height - 4) * r / scale) for t, r in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    area = f"{xy[0][0]:.1f},{height} {line} {xy[-1][0]:.1f},{height}" if xy else ""
    label = f"last {shown / 60:.3g} min" if shown >= 60 else f"last {shown:.0f} s"
    return (
        f"<div class='streamkit-chart' data-points='{len(points)}' style='font-size:0.8em;color:#666'>"
        f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        "style='background:#fafafa;border:1px solid #eee;display:block'>"
        f"<polygon points='{area}' fill='#90caf9' fill-opacity='0.5'/>"
        f"<polyline points='{line}' fill='none' stroke='#1565c0' stroke-width='1.5'/></svg>"
        f"messages per second, {label} (peak {_rate(top)}/s)</div>"
    )


def _text(value: Any) -> str:
    if value is None or type(value).__name__ in ("NAType", "NaTType") or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def live_view(collector: Any) -> Any:
    """The collector's live view as it is now: its Arrow ring when it has one, else ``collector.df``.

    Both are immutable snapshots replaced when rows arrive, so ``is`` tells
    whether anything changed since the last look. The ring is preferred because
    slicing a few rows of it costs microseconds, where ``collector.df`` converts
    the whole view (``view_rows`` rows) to pandas.
    """
    ring = getattr(collector, "_ring", _NO_RING)
    if ring is None or (ring is not _NO_RING and hasattr(ring, "column_names")):
        return ring
    return collector.df


def newest_rows(view: Any, n: int, columns: Sequence[tuple[str, str]] = TABLE_COLUMNS) -> list[dict[str, Any]]:
    """The newest ``n`` rows (newest first) of a live view from :func:`live_view`, as dicts.

    Examples
    --------
    >>> import pyarrow as pa
    >>> newest_rows(pa.table({"text": ["a", "b", "c"], "lang": ["en", "es", "fr"]}), 2)
    [{'text': 'c', 'lang': 'fr'}, {'text': 'b', 'lang': 'es'}]
    """
    if view is None:
        return []
    names = [name for _, name in columns]
    if hasattr(view, "column_names"):  # a pyarrow.Table
        tail = view.slice(max(0, view.num_rows - n)).select([c for c in names if c in view.column_names])
        return tail.to_pylist()[::-1]
    tail = view.iloc[-n:][[c for c in names if c in view.columns]]
    return tail.to_dict("records")[::-1]


#: Columns shown with a leading "@" (account names).
AT_COLUMNS = frozenset({"user_screen_name", "account_acct"})


def table_html(records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = TABLE_COLUMNS) -> str:
    """Rows (dicts with the ``columns`` — (heading, column) pairs — newest first) as an HTML table.

    Timestamps show as ``HH:MM:SS``, account names with ``@``, and a ``text`` column is
    clipped to 140 characters.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> row = {"created_at": datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc), "user_screen_name": "ada",
    ...        "text": "<b>hi</b>", "lang": "en", "tweet_type": "original"}
    >>> out = table_html([row, {**row, "lang": None}])
    >>> "data-rows='2'" in out, "@ada" in out, "10:00:00" in out, "&lt;b&gt;hi&lt;/b&gt;" in out
    (True, True, True, True)
    """
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>" for h, _ in columns)
    if not records:
        return (
            "<table class='streamkit-table' data-rows='0' style='border-collapse:collapse'>"
            f"<thead><tr>{head}</tr></thead></table><div style='color:#999'>no rows yet</div>"
        )
    out = []
    for row in records:
        cells = []
        for heading, name in columns:
            value = row.get(name)
            strftime = getattr(value, "strftime", None)
            if strftime is not None:
                cell = strftime("%H:%M:%S") if _text(value) else ""
            elif name in AT_COLUMNS:
                cell = "@" + _text(value) if _text(value) else ""
            elif heading == "text":
                cell = _clip(_text(value), 140)
            elif isinstance(value, (list, tuple)):
                cell = ", ".join(map(_text, value))
            else:
                cell = _text(value)
            wrap = "" if heading == "text" else ";white-space:nowrap"
            cells.append(f"<td style='padding:2px 8px;vertical-align:top{wrap}'>{html.escape(cell)}</td>")
        tds = "".join(cells)
        out.append(f"<tr style='border-top:1px solid #eee'>{tds}</tr>")
    return (
        f"<table class='streamkit-table' data-rows='{len(out)}' "
        "style='border-collapse:collapse;font-size:0.9em;line-height:1.35'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"
    )


def where_html(path: Path, flt: dict[str, Any], last_flush: float | None) -> str:
    """Where the data is on disk, how to read it, and the filter in use."""
    path = Path(path).resolve()
    v1 = ("track", "follow", "locations", "languages")
    shown = "; ".join(
        f"{k}={join_values(v)}" for k, v in flt.items()
        if k in v1 or not any(key in flt for key in v1) and not isinstance(v, bool)
    )
    when = time.strftime("%H:%M:%S", time.localtime(last_flush)) if last_flush else "not yet"
    return (
        "<div style='color:#555;font-size:0.9em;line-height:1.6'>"
        f"Data on disk: <code class='streamkit-path'>{html.escape(str(path))}</code> "
        f"(last commit {when}; read it with <code>streamkit.read({html.escape(repr(str(path)))})</code>)<br>"
        f"Filter: <span class='streamkit-filter'>{html.escape(shown or 'sample stream')}</span></div>"
    )
