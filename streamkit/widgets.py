"""The notebook control panel: start, watch, re-filter and stop a capture from Jupyter.

``collector.panel()`` (or displaying a :class:`~streamkit.Collector` as the
last expression of a cell) shows the panel of a running capture;
:func:`panel` builds one with no capture yet: fill in a filter, press Start.

ipywidgets (the ``notebook`` extra) is imported only when a panel is built;
without it, building one raises :class:`~streamkit.MissingDependency` naming
``pip install 'streamkit[notebook]'``.

How it updates::

    button clicks (kernel thread) ──> collect() / set_filter() / stop()
    one "streamkit-panel" thread per displayed panel, every ``refresh_interval``:
        collector.stats / collector.df ──> widget .value (only when changed)

The refresher starts on the first display, sleeps while the frontend reports
no view of the panel, and ends when the capture stops or the panel closes.
It never writes into an ``Output`` widget (that is unsafe from a thread) and
holds a bounded amount of state: the newest ``table_rows`` rows and one rate
sample per second over ``chart_seconds``.

Examples
--------
>>> import streamkit
>>> p = streamkit.panel(track=["python", "data science"], languages=["en"])
>>> p.inputs["track"].value, p.inputs["languages"].value
('python, data science', 'en')
>>> p.state
'not started: fill in a filter and press Start'
>>> p.parse_filter()
{'track': ['python', 'data science'], 'languages': ['en']}
>>> p.close()
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
import threading
import time
import weakref
from collections import deque
from typing import Any

from . import _panel_html as H
from ._exceptions import ConfigError, MissingDependency, StreamkitError
from .sources import is_credential
from .streaming import build_filter_params

__all__ = ["Panel", "panel"]

log = logging.getLogger("streamkit.widgets")

INSTALL_HINT = "pip install 'streamkit[notebook]'"

# One panel per collector, so displaying a Collector twice shows two views of one panel.
_PANELS: weakref.WeakKeyDictionary[Any, Panel] = weakref.WeakKeyDictionary()
_PANELS_LOCK = threading.Lock()
_UNSEEN = object()


def _require_ipywidgets() -> Any:
    """Import ipywidgets, or say how to install it."""
    try:
        import ipywidgets
    except ImportError as exc:
        raise MissingDependency(
            f"the notebook panel needs ipywidgets, which is not installed: {INSTALL_HINT}"
        ) from exc
    major = str(getattr(ipywidgets, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 8:
        raise MissingDependency(
            f"the notebook panel needs ipywidgets 8 or later (found {ipywidgets.__version__}): "
            f"pip install -U 'streamkit[notebook]'"
        )
    return ipywidgets


def _collect_options() -> set[str]:
    from .collect import _STREAM_OPTIONS, Collector

    names = set(inspect.signature(Collector.__init__).parameters) - {"self", "stream_options"}
    return (names | _STREAM_OPTIONS) - {"track", "follow", "locations", "languages"}


def _source_fields(source: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(option name, label, argparse settings) of each ``--source`` option: the panel's inputs."""
    from .sources import cli_options

    fields = []
    for flags, kwargs in cli_options(source):
        if kwargs.get("dest") == "base_url" or is_credential(kwargs.get("dest", "")):
            continue  # where and who: collect() options, never typed into a visible box
        label = flags[-1].lstrip("-").replace("-", " ").capitalize()
        fields.append((kwargs["dest"], label, dict(kwargs)))
    return fields


def _split(text: str, pattern: str = r"[,\n]") -> list[str]:
    return [part.strip() for part in re.split(pattern, text or "") if part.strip()]


class Panel:
    """The control panel of one capture (built by :func:`panel` or ``Collector.panel()``).

    Parameters
    ----------
    collector : Collector, optional
        A capture to show and control. Without one, Start begins a new capture
        with the filter in the inputs and ``collect_options``.
    track, follow, locations, languages
        Fill the inputs (ignored when ``collector`` is given: its filter is used).
    refresh_interval : float, default 0.5
        Seconds between refreshes while displayed (the panel never refreshes
        more often than 5 times a second).
    table_rows : int, default 10
        Newest rows in the live table.
    chart_seconds : int, default 300
        Span of the rate chart.
    **collect_options
        Passed to :func:`streamkit.collect` on Start: ``auth``, ``base_url``,
        ``path``, ``flush_seconds``, ``max_tweets``, ... (and ``bearer_token``
        with ``source="x-v2"``, which the Rules area uses too).

    Attributes
    ----------
    widget : ipywidgets.VBox
        The whole panel; ``inputs`` and ``buttons`` hold its controls by name.
    collector : Collector or None
        The capture shown (the newest one, after Start).
    rules : streamkit._rules_panel.RulesArea or None
        With ``source="x-v2"``: the "Rules" area (list, add with a tag or as a dry run, delete
        selected or all) using the capture's ``bearer_token`` (else ``$STREAMKIT_BEARER_TOKEN``)
        and ``base_url``; loaded on the first display, ``rules.refresh()`` reloads it.

    Notes
    -----
    ``close()`` stops the refresher and closes the widgets. It also stops a
    capture the panel started itself; a collector you passed in keeps running.
    """

    def __init__(
        self,
        collector: Any = None,
        *,
        source: str | None = None,
        track: Any = None,
        follow: Any = None,
        locations: Any = None,
        languages: Any = None,
        refresh_interval: float = 0.5,
        table_rows: int = 10,
        chart_seconds: int = 300,
        **collect_options: Any,
    ) -> None:
        w = _require_ipywidgets()
        if collector is not None:
            source = getattr(collector, "source_name", None)
        self.source = source if source not in (None, "twitter-v1.1") else None
        # Another source's filter is its own options (as `streamkit collect --source` takes them).
        self._source_fields = _source_fields(self.source) if self.source else []
        source_values = {k: collect_options.pop(k) for k in [f[0] for f in self._source_fields] if k in collect_options}
        unknown = set(collect_options) - _collect_options() - ({"bearer_token"} if self.source == "x-v2" else set())
        if unknown:
            raise ConfigError(
                f"panel() got unknown option(s) {', '.join(sorted(unknown))}; "
                "it takes the filter, refresh_interval, table_rows, chart_seconds and collect()'s options."
            )
        if not isinstance(refresh_interval, (int, float)) or not refresh_interval > 0:
            raise ConfigError(f"refresh_interval must be a positive number of seconds, got {refresh_interval!r}")
        if not isinstance(table_rows, int) or table_rows < 1:
            raise ConfigError(f"table_rows must be a positive integer, got {table_rows!r}")
        if not isinstance(chart_seconds, int) or chart_seconds < 10:
            raise ConfigError(f"chart_seconds must be an integer >= 10, got {chart_seconds!r}")
        self.refresh_interval = max(0.2, float(refresh_interval))
        self.table_rows = table_rows
        self.chart_seconds = chart_seconds
        self._options = dict(collect_options)
        self.collector = collector
        self._owned = False  # True when this panel started the capture and so stops it on close
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._thread_stop: threading.Event | None = None
        self._visible = threading.Event()  # cleared while the frontend shows no view
        self._displayed = False
        self._frontend_counts_views = False
        self._closed = False
        self._samples: deque[tuple[float, int]] = deque(maxlen=chart_seconds + 2)
        self._last_view: Any = _UNSEEN
        self._refreshes = 0
        self._refresh_total = 0.0
        self._refresh_max = 0.0
        self._message = ""

        if collector is not None:
            f = collector.filter
            track, follow = f.get("track"), f.get("follow")
            locations, languages = f.get("locations"), f.get("languages")
            source_values = dict(f) if self.source else source_values
        text = dict(layout=w.Layout(width="auto"), style={"description_width": "90px"})
        if self.source:
            self.inputs = {}
            for dest, label, kwargs in self._source_fields:
                value = source_values.get(dest)
                if kwargs.get("action") in ("store_true", "store_false"):
                    self.inputs[dest] = w.Checkbox(value=bool(value), description=label, indent=False)
                else:
                    self.inputs[dest] = w.Text(H.join_values(value) if value is not None else "", description=label,
                                               placeholder=str(kwargs.get("metavar") or ""),
                                               tooltip=kwargs.get("help", ""), **text)
        else:
            self.inputs = {
                "track": w.Text(H.join_values(track), description="Track", placeholder="climate, #cop30 (comma-separated phrases)", **text),
                "follow": w.Text(H.join_values(follow), description="Follow ids", placeholder="783214, 6253282 (numeric user ids)", **text),
                "locations": w.Text(H.join_values(locations), description="Locations", placeholder="sw_lon, sw_lat, ne_lon, ne_lat (; between boxes)", **text),
                "languages": w.Text(H.join_values(languages), description="Languages", placeholder="en, es (optional)", **text),
            }
        self.buttons = {
            "start": w.Button(description="Start", button_style="success", icon="play", tooltip="Start a capture with this filter"),
            "stop": w.Button(description="Stop", button_style="danger", icon="stop", tooltip="Stop and commit everything received"),
            "apply": w.Button(description="Apply filter", button_style="info", icon="filter", tooltip="Reconnect with the filter above"),
        }
        for name, widget in {**self.inputs, **self.buttons}.items():
            widget.add_class(f"streamkit-{name}")
        self.buttons["start"].on_click(lambda _b: self.start())
        self.buttons["stop"].on_click(lambda _b: self.stop())
        self.buttons["apply"].on_click(lambda _b: self.apply_filter())
        self._state = w.HTML(layout=w.Layout(margin="0 0 4px 0"))
        self._msg = w.HTML()
        self._counters = w.HTML()
        self._chart = w.HTML()
        self._table = w.HTML(layout=w.Layout(overflow="auto"))
        self._where = w.HTML()
        for name in ("state", "msg", "counters", "chart", "table", "where"):
            getattr(self, f"_{name}").add_class(f"streamkit-part-{name}")
        title = w.HTML("<b style='font-size:1.1em'>streamkit</b>")
        form = w.GridBox(
            list(self.inputs.values()),
            layout=w.Layout(grid_template_columns="repeat(2, minmax(260px, 1fr))", grid_gap="2px 12px"),
        )
        self.widget = w.VBox(
            [
                w.HBox([title, self._state], layout=w.Layout(align_items="baseline", grid_gap="12px")),
                form,
                w.HBox(list(self.buttons.values())),
                self._msg,
                w.HBox([self._counters, self._chart], layout=w.Layout(flex_flow="row wrap", grid_gap="16px")),
                self._table,
                self._where,
            ],
            layout=w.Layout(border="1px solid #ddd", padding="8px", max_width="980px"),
        )
        self.rules = None  # the "Rules" area of an X API v2 panel (streamkit._rules_panel)
        if self.source == "x-v2":
            from ._rules_panel import RulesArea

            self.rules = RulesArea(w, token=self._bearer_token, base_url=self._api_url)
            self.widget.children = (*self.widget.children[:-1], self.rules.widget, self.widget.children[-1])
        self.widget.add_class("streamkit-panel")
        # Ask the frontend to count the views it shows; while it reports none, stay idle.
        self.widget._view_count = 0
        self.widget.observe(self._on_view_count, names="_view_count")
        self._chart.value = H.chart_html([], chart_seconds)
        self._render_once()

    # -- public API ----------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The state line as plain text, e.g. ``"streaming"`` or ``"failed: ..."``."""
        return self._state_text(None if self.collector is None else self.collector.stats)

    @property
    def message(self) -> str:
        """The last message shown under the buttons (an error or a confirmation), as text."""
        return self._message

    @property
    def refresh_stats(self) -> dict[str, float]:
        """How often and how fast the panel refreshed: ``refreshes``, ``mean_ms``, ``max_ms``."""
        with self._lock:
            n = self._refreshes
            return {
                "refreshes": n,
                "mean_ms": 1000 * self._refresh_total / n if n else 0.0,
                "max_ms": 1000 * self._refresh_max,
            }

    @property
    def running(self) -> bool:
        """True while the panel's capture runs."""
        return self.collector is not None and self.collector.running

    def parse_filter(self) -> dict[str, Any]:
        """The filter in the inputs, validated; raises ConfigError with a message for a person.

        Examples
        --------
        >>> p = panel(follow="12, 34", locations="-74.3, 40.5, -73.7, 40.9")
        >>> p.parse_filter()
        {'follow': [12, 34], 'locations': [-74.3, 40.5, -73.7, 40.9]}
        >>> p.inputs["follow"].value = "12, @jack"
        >>> p.parse_filter()
        Traceback (most recent call last):
        ...
        streamkit._exceptions.ConfigError: Follow ids must be numeric user ids; '@jack' is not (look up screen names first).
        >>> p.close()
        """
        if self.source:
            return self._parse_source_filter(self.source)
        track = _split(self.inputs["track"].value)
        follow: list[int] = []
        for item in _split(self.inputs["follow"].value, r"[,\s]+"):
            if not item.isdigit() or int(item) <= 0:
                raise ConfigError(f"Follow ids must be numeric user ids; {item!r} is not (look up screen names first).")
            follow.append(int(item))
        locations: list[float] = []
        for item in _split(self.inputs["locations"].value, r"[,;\s]+"):
            try:
                locations.append(float(item))
            except ValueError:
                raise ConfigError(
                    f"Locations must be numbers, {item!r} is not: give boxes as sw_lon, sw_lat, ne_lon, ne_lat, "
                    "e.g. -74.3, 40.5, -73.7, 40.9."
                ) from None
        languages = _split(self.inputs["languages"].value, r"[,\s]+")
        if not (track or follow or locations):
            raise ConfigError("The filter is empty: give at least one track phrase, follow id or location box.")
        if locations and len(locations) % 4:
            raise ConfigError(
                f"Locations has {len(locations)} numbers; each box needs 4: sw_lon, sw_lat, ne_lon, ne_lat."
            )
        # The same checks as the stream makes, before anything connects.
        build_filter_params(track=track, follow=follow, locations=locations, languages=languages)
        out: dict[str, Any] = {}
        for key, value in (("track", track), ("follow", follow), ("locations", locations), ("languages", languages)):
            if value:
                out[key] = value
        return out

    def _parse_source_filter(self, source: str) -> dict[str, Any]:
        """The inputs of another source's panel as its options, checked by the source itself."""
        from .sources import open_source

        out: dict[str, Any] = {}
        for dest, label, kwargs in self._source_fields:
            widget = self.inputs[dest]
            if isinstance(widget.value, bool):
                if widget.value != (kwargs.get("action") == "store_false"):
                    out[dest] = kwargs.get("action") == "store_true"
                continue
            convert = kwargs.get("type") or str
            try:
                if kwargs.get("action") in ("append", "extend") or kwargs.get("nargs") in ("+", "*"):
                    items = [convert(v) for v in _split(widget.value)]
                    if items:
                        out[dest] = items
                elif widget.value.strip():
                    out[dest] = convert(widget.value.strip())
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{label}: {exc}") from None
        base_url = self._options.get("base_url") or getattr(self.collector, "_base_url_given", None)
        given = {**(getattr(self.collector, "source_options", None) or {}), **self._options}
        credentials = {k: v for k, v in given.items() if is_credential(k) and v}  # given, not typed
        open_source(source, **out, **credentials, **({"base_url": base_url} if base_url else {}))  # the source's own checks
        return out

    def start(self) -> None:
        """Start a capture with the filter in the inputs (what the Start button does)."""
        from .collect import collect

        with self._lock:
            if self.running:
                self._say("Already running: press Stop first, or Apply filter to change the filter.", error=True)
                return
            try:
                flt = self.parse_filter()
            except ConfigError as exc:
                self._say(f"Not started. {exc}", error=True)
                return
            options = dict(self._options)
            old = self.collector
            if old is not None:  # a restart continues the same dataset, endpoint and settings
                for name in ("auth", "base_url", "path", "flush_rows", "flush_seconds", "view_rows", "keep_raw"):
                    if name == "base_url" and self.source:  # the server given, not the endpoint's full URL
                        if getattr(old, "_base_url_given", None):
                            options.setdefault(name, old._base_url_given)
                        continue
                    options.setdefault(name, getattr(old, name))
                for name, value in getattr(old, "_stream_options", {}).items():
                    options.setdefault(name, value)
                for name, value in (getattr(old, "source_options", None) or {}).items():
                    if is_credential(name) and value:  # a credential given to collect(), kept
                        options.setdefault(name, value)
            self._set_buttons(starting=True)
            if self.source:
                options["source"] = self.source
            try:
                collector = collect(**flt, **options)
            except StreamkitError as exc:
                self._say(f"Not started. {exc}", error=True)
                self._set_buttons()
                return
            except Exception as exc:  # a button must report, not swallow
                log.exception("the panel could not start a capture")
                self._say(f"Not started: {type(exc).__name__}: {exc}", error=True)
                self._set_buttons()
                return
            self.collector = collector
            self._owned = True
            with _PANELS_LOCK:
                _PANELS[collector] = self
            self._samples.clear()
            self._last_view = _UNSEEN
            self._say(f"Started: {H.describe_filter(flt)}.")
            self._render_once()
            self._ensure_refresher()

    def stop(self) -> None:
        """Stop the capture and commit what it received (what the Stop button does)."""
        collector = self.collector
        if collector is None or not collector.running:
            with self._lock:
                self._say("Nothing is running.")
                self._render_once()
            return
        with self._lock:
            self._set_buttons(stopping=True)
            self._state.value = H.state_html("stopping: committing what was received")
        collector.stop()
        self._stop_refresher()
        with self._lock:
            s = collector.stats
            items = getattr(getattr(collector, "_decoder", None), "items", "tweets")
            self._render_once()  # the final counters first: the message then agrees with them
            self._say(f"Stopped: {s.stored:,} {items} stored in {collector.path}.")

    def apply_filter(self) -> None:
        """Reconnect the running capture with the filter in the inputs (the Apply filter button)."""
        with self._lock:
            try:
                flt = self.parse_filter()
            except ConfigError as exc:
                self._say(f"Filter not applied. {exc}", error=True)
                return
            if not self.running:
                self._say("Not running: press Start to capture with this filter.", error=True)
                return
            if self.source:  # the source's filter is fixed per connection: restart into the same dataset
                self._restart_with(flt)
                return
            current = self.collector.filter
            kept = {k: current[k] for k in ("filter_level", "stall_warnings") if k in current}
            try:
                self.collector.set_filter(**flt, **kept)
            except StreamkitError as exc:
                self._say(f"Filter not applied. {exc}", error=True)
                return
            self._say(f"Filter applied: {H.describe_filter(flt)}. Reconnecting into the same dataset.")
            self._render_once()

    def _restart_with(self, flt: dict[str, Any]) -> None:
        old = self.collector
        assert old is not None
        self._set_buttons(stopping=True)
        old.stop()
        self._stop_refresher()
        owned = self._owned
        self.start()  # the same dataset, endpoint and settings; it resumes from the last commit
        if self.collector is old:  # the start failed and said why
            return
        self._owned = self._owned or owned
        resumes = "it resumes from the last committed position" if old._decoder.can_replay else (
            "the time it was stopped is recorded as a gap in the manifest")
        self._say(f"Filter applied: {H.describe_filter(flt)}. Restarted into the same dataset; {resumes}.")
        self._render_once()

    def refresh(self) -> None:
        """Update every part of the panel from the capture now."""
        with self._lock:
            self._render_once()

    def close(self) -> None:
        """Stop the refresher, stop a capture this panel started, and close the widgets."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop_refresher()
        if self._owned and self.collector is not None and self.collector.running:
            self.collector.stop()
        with _PANELS_LOCK:
            for key, value in list(_PANELS.items()):
                if value is self:
                    del _PANELS[key]
        self.widget.unobserve(self._on_view_count, names="_view_count")
        _close_tree(self.widget)

    # -- display -------------------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if self._closed:
            return {"text/plain": "<streamkit panel (closed)>"}
        self._displayed = True
        self._visible.set()
        if self.rules is not None and not self.rules.loaded:
            self.rules.refresh(quiet=True)  # a short call with a timeout; errors become its message
        self._ensure_refresher()
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return f"<streamkit Panel: {self.state}>"

    def _bearer_token(self) -> str | None:
        """The capture's bearer token for the rules calls (None: ``$STREAMKIT_BEARER_TOKEN``)."""
        options = getattr(self.collector, "source_options", None) or {}
        return options.get("bearer_token") or self._options.get("bearer_token")

    def _api_url(self) -> str | None:
        """The server the capture uses (None: X's)."""
        return self._options.get("base_url") or getattr(self.collector, "_base_url_given", None)

    def _on_view_count(self, change: dict[str, Any]) -> None:
        count = change["new"]
        if count:
            self._frontend_counts_views = True
            self._visible.set()
        elif self._frontend_counts_views:
            self._visible.clear()

    # -- the refresher thread --------------------------------------------------------------
    def _ensure_refresher(self) -> None:
        with self._lock:
            if self._closed or not self._displayed or not self.running:
                return
            if self._thread is not None and self._thread.is_alive():
                return
            stop = threading.Event()
            thread = threading.Thread(target=self._refresh_loop, args=(stop,), name="streamkit-panel", daemon=True)
            self._thread, self._thread_stop = thread, stop
            thread.start()

    def _stop_refresher(self) -> None:
        with self._lock:
            thread, stop = self._thread, self._thread_stop
            self._thread = self._thread_stop = None
        if stop is not None:
            stop.set()
            self._visible.set()  # wake a refresher idling while hidden, so it sees stop
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        if not self._closed and self._frontend_counts_views and not self.widget._view_count:
            self._visible.clear()

    def _refresh_loop(self, stop: threading.Event) -> None:
        try:
            while not stop.wait(self.refresh_interval):
                if not self._visible.is_set():
                    # Hidden: no rendering until a view appears (or stop wakes it); only a
                    # cheap look now and then, so a capture stopped elsewhere ends this thread.
                    if not self._visible.wait(2.0) and not self.running:
                        break
                    continue
                with self._lock:
                    if stop.is_set() or self._closed:
                        break
                    if not self._visible.is_set():  # hidden while waiting for the lock
                        continue
                    # Read "running" before rendering: once it is False the render shows the
                    # final state, and the next capture gets its own refresher.
                    finished = not self.running
                    self._render_once()
                    if finished:
                        if self._thread is threading.current_thread():
                            self._thread = self._thread_stop = None  # before releasing the lock
                        break
        except Exception as exc:  # the panel must not die silently; the capture is unaffected
            log.exception("the panel refresher failed")
            self._say(f"The panel stopped updating ({type(exc).__name__}: {exc}); the capture goes on.", error=True)
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = self._thread_stop = None

    # -- rendering (always under self._lock) ------------------------------------------------
    def _render_once(self) -> None:
        t0 = time.perf_counter()
        collector = self.collector
        stats = None if collector is None else collector.stats
        self._set_value(self._state, H.state_html(self._state_text(stats), stats and stats.last_error))
        self._set_buttons()
        if collector is None or stats is None:
            self._set_value(self._counters, H.counters_html(None))
            self._set_value(self._table, H.table_html([]))
            self._set_value(self._where, "")
            return
        self._set_value(self._counters, H.counters_html(stats))
        now = time.monotonic()
        if not self._samples or now - self._samples[-1][0] >= 1.0 or not collector.running:
            self._samples.append((now, stats.received))
            self._set_value(self._chart, H.chart_html(list(self._samples), self.chart_seconds))
        view = H.live_view(collector)  # replaced, never changed in place, when rows arrive
        if view is not self._last_view:
            self._last_view = view
            columns = getattr(getattr(collector, "_decoder", None), "view_columns", H.TABLE_COLUMNS)
            self._set_value(self._table, H.table_html(H.newest_rows(view, self.table_rows, columns), columns))
        self._set_value(self._where, H.where_html(collector.path, collector.filter, stats.last_flush))
        elapsed = time.perf_counter() - t0
        self._refreshes += 1
        self._refresh_total += elapsed
        self._refresh_max = max(self._refresh_max, elapsed)

    @staticmethod
    def _set_value(widget: Any, value: str) -> None:
        if widget.value != value:  # an unchanged value costs no message to the frontend
            widget.value = value

    def _set_buttons(self, *, starting: bool = False, stopping: bool = False) -> None:
        running = self.running
        busy = starting or stopping
        wanted = {
            "start": busy or running or self._closed,
            "stop": busy or not running,
            "apply": busy or not running,
        }
        for name, disabled in wanted.items():
            if self.buttons[name].disabled != disabled:
                self.buttons[name].disabled = disabled

    def _say(self, text: str, *, error: bool = False) -> None:
        self._message = text
        self._msg.value = H.message_html(text, error=error)

    def _state_text(self, s: Any) -> str:
        collector = self.collector
        if collector is None:
            return H.NOT_STARTED
        stream_stats = getattr(getattr(collector, "_stream", None), "stats", None)
        return H.state_text(
            s,
            base_url=collector.base_url,
            backoff_until=getattr(stream_stats, "backoff_until", None),
            status_code=getattr(stream_stats, "last_status_code", None),
        )


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def panel(collector: Any = None, /, **options: Any) -> Panel:
    """The notebook control panel: of ``collector``, or with no capture yet.

    Parameters
    ----------
    collector : Collector, optional
        Show and control this capture. ``collector.panel()`` calls this;
        it returns the same panel each time until that panel is closed.
    **options
        The filter to fill in (``track``, ``follow``, ``locations``,
        ``languages``), ``refresh_interval``, ``table_rows``,
        ``chart_seconds``, and :func:`streamkit.collect` options used by
        Start (``auth``, ``base_url``, ``path``, ...). See :class:`Panel`.

    Returns
    -------
    Panel
        Display it (last expression of a cell, or ``display(p)``).

    Raises
    ------
    MissingDependency
        Without ipywidgets: install it with ``pip install 'streamkit[notebook]'``.

    Examples
    --------
    >>> import streamkit
    >>> p = streamkit.panel(track="python", base_url="http://127.0.0.1:8080")
    >>> p.inputs["follow"].value = "not-a-number"
    >>> p.buttons["start"].click()
    >>> p.message
    "Not started. Follow ids must be numeric user ids; 'not-a-number' is not (look up screen names first)."
    >>> p.collector is None
    True
    >>> p.close()
    """
    if collector is None:
        return Panel(**options)
    with _PANELS_LOCK:
        existing = _PANELS.get(collector)
    if existing is not None and not existing._closed and not options:
        return existing
    made = Panel(collector, **options)
    with _PANELS_LOCK:
        _PANELS[collector] = made
    return made


def _collector_mimebundle(collector: Any, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
    """``Collector._repr_mimebundle_``: the panel in a kernel with ipywidgets, else None.

    None makes IPython fall back to ``Collector._repr_html_`` and ``repr``.
    """
    if not _in_kernel():
        return None
    try:
        bundle = panel(collector)._repr_mimebundle_(include=include, exclude=exclude)
    except MissingDependency:
        return None
    bundle["text/plain"] = repr(collector)
    return bundle
