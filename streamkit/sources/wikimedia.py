"""Wikimedia EventStreams: every edit, page creation and log action on Wikimedia's wikis, live.

``https://stream.wikimedia.org/v2/stream/<streams>`` serves server-sent events
(:mod:`streamkit._sse`) over HTTP, without authentication. Streams are comma-joined
(``recentchange``, ``page-create``, ``revision-create``, ...). Each event's ``id`` is a JSON
array of Kafka ``{topic, partition, offset|timestamp}`` positions; sending it back as the
``Last-Event-ID`` header resumes right after that event, so a capture can replay what it
missed (``can_replay``). ``?since=`` (ISO 8601 or Unix milliseconds) starts from a time
instead, when no id is known. Wikimedia keeps about a week of history.

What the service does, and what this module does about it:

* It closes every connection after about 15 minutes. That close is routine:
  :meth:`WikimediaEndpoint.routine_close` lets the stream reconnect at once, without back-off
  and without counting an error, when the connection had lasted ``routine_close_after``
  seconds (60 by default). A shorter connection that the server ends is a fault and is backed
  off from: a server that keeps closing at once, or that sends an ``error`` event and ends
  (what the service does when its Kafka consumer fails), must not make streamkit hammer
  Wikimedia. Whether a close was clean does not decide it; the duration does. (The stream
  asks :meth:`routine_close` only about a body that ended cleanly; a cut -- including the
  15-minute close, if a proxy cuts instead of ending the body -- is a network error with the
  shortest back-off, 250 ms, and resumes the same way.)
* It mixes ``canary`` events (``meta.domain == "canary"``) into every stream to prove it is
  alive; they are dropped and counted (``rejected["canary"]``), never stored.
* Its `User-Agent policy <https://meta.wikimedia.org/wiki/User-Agent_policy>`_ requires a
  descriptive User-Agent with contact information, and clients without one may be blocked
  (HTTP 403). Give ``contact="you@example.org"`` (or a URL), or a whole ``user_agent=``, or
  set the environment variable ``STREAMKIT_USER_AGENT``. Without any, streamkit sends
  ``streamkit/<version> (+https://pypi.org/project/streamkit/) python-requests/<version>``
  and logs a warning once.

The dataset: every event of every stream is a row of the ``changes`` table, keyed by
``meta_id`` (Wikimedia's unique event id). The common ``meta_*`` columns are filled for
all streams; the recentchange columns (``type``, ``title``, ``user``, ``bot``, ``length_*``,
``revision_*``, ``log_*``...) come from recentchange events, and from the equivalent fields
of the other MediaWiki schemas where they have one (``page_title`` -> ``title``,
``database`` -> ``wiki``, ``performer.user_text`` -> ``user``, ``rev_id`` ->
``revision_new``...), so one table and one panel serve any mix of streams. ``raw`` keeps the
event's JSON exactly as sent. The events table holds what is not a change: SSE ``error``
events, other event types, and change events without a ``meta.id``.

Client-side filters (``wiki``, ``type``, ``bot``, ``namespace``) are applied when decoding
(EventStreams has no server-side filtering); what they leave out is counted in
``rejected["filtered"]``.

Examples
--------
>>> ep, src = open_source(streams=["recentchange"], wiki=["enwiki"], contact="me@example.org",
...                       base_url="http://127.0.0.1:8080")
>>> req = ep.request()
>>> req.url, req.headers["User-Agent"].split(" (")[0].split("/")[0]
('http://127.0.0.1:8080/v2/stream/recentchange', 'streamkit')
>>> "me@example.org" in req.headers["User-Agent"], src.items, src.key_columns
(True, 'changes', ('meta_id',))
>>> ep.resume_from({"last_event_id": '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":7}]'})
>>> ep.request().headers["Last-Event-ID"]
'[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":7}]'
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._exceptions import ConfigError
from .._sse import SSEFramer, parse_event
from ._columns import documented_schema
from .base import Endpoint, Request, Source

__all__ = [
    "CHANGE_SCHEMA",
    "DEFAULT_BASE_URL",
    "EVENT_SCHEMA",
    "SOURCE_CLASS",
    "USER_AGENT_ENV",
    "WikimediaEndpoint",
    "WikimediaSource",
    "default_user_agent",
    "open_source",
]

log = logging.getLogger("streamkit.sources.wikimedia")

DEFAULT_BASE_URL = "https://stream.wikimedia.org"
STREAM_PATH = "/v2/stream/"
USER_AGENT_ENV = "STREAMKIT_USER_AGENT"
"""Environment variable holding the whole User-Agent to send to Wikimedia."""

RC_TYPES = ("edit", "new", "log", "categorize", "external")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TS = pa.timestamp("us", tz="UTC")
_warned_user_agent = threading.Event()


# -- the schemas ----------------------------------------------------------------------------

def _schema(fields: list[tuple[str, pa.DataType, bool, str]], table: str) -> pa.Schema:
    from ..schema import SCHEMA_VERSION

    return documented_schema(fields, {"streamkit.table": table, "streamkit.schema_version": str(SCHEMA_VERSION),
                                      "streamkit.source": "wikimedia"})


_S, _I, _B = pa.string(), pa.int64(), pa.bool_()
_CHANGE_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("meta_id", _S, False, "`meta.id`: Wikimedia's unique id of the event (the dedupe key)."),
    ("created_at", _TS, True, "When the change happened: `timestamp` (else `rev_timestamp`, `dt`, `meta.dt`). "
                              "The dataset's date partition."),
    ("meta_dt", _TS, True, "`meta.dt`: the event time Wikimedia recorded."),
    ("meta_stream", _S, True, "`meta.stream`: mediawiki.recentchange, mediawiki.page-create, ..."),
    ("meta_topic", _S, True, "`meta.topic`: the Kafka topic (eqiad.mediawiki.recentchange...), if present."),
    ("meta_partition", _I, True, "`meta.partition`: the Kafka partition, if present."),
    ("meta_offset", _I, True, "`meta.offset`: the Kafka offset, if present."),
    ("meta_uri", _S, True, "`meta.uri`: the page or entity the event is about."),
    ("meta_request_id", _S, True, "`meta.request_id`: the MediaWiki request that caused it."),
    ("schema", _S, True, "`$schema`: /mediawiki/recentchange/1.0.0, /mediawiki/revision/create/...."),
    ("id", _I, True, "recentchange `id` (rcid)."),
    ("type", _S, True, "recentchange `type`: edit, new, log, categorize or external."),
    ("namespace", _I, True, "`namespace` (else `page_namespace`): 0 articles, 1 talk, 2 user, 6 file, 14 category, -1 special."),
    ("title", _S, True, "Full page name: `title` (else `page_title`)."),
    ("title_url", _S, True, "`title_url`: the page's URL."),
    ("comment", _S, True, "Edit summary (`comment`)."),
    ("parsedcomment", _S, True, "The summary as HTML (`parsedcomment`)."),
    ("timestamp", _TS, True, "recentchange `timestamp` (Unix seconds), as a timestamp."),
    ("user", _S, True, "User name or IP: `user` (else `performer.user_text`)."),
    ("bot", _B, True, "Bot flag: `bot` (else `performer.user_is_bot`)."),
    ("minor", _B, True, "Minor edit: `minor` (else `rev_minor_edit`)."),
    ("patrolled", _B, True, "`patrolled`, where the wiki patrols."),
    ("length_old", _I, True, "`length.old`: page length before, bytes."),
    ("length_new", _I, True, "`length.new` (else `rev_len`): page length after, bytes."),
    ("revision_old", _I, True, "`revision.old` (else `rev_parent_id`)."),
    ("revision_new", _I, True, "`revision.new` (else `rev_id`)."),
    ("page_id", _I, True, "`page_id` (revision and page streams; recentchange has none)."),
    ("server_name", _S, True, "`server_name` (else `meta.domain`): en.wikipedia.org, ..."),
    ("server_url", _S, True, "`server_url`: https://en.wikipedia.org, ..."),
    ("wiki", _S, True, "Wiki database name: `wiki` (else `database`): enwiki, commonswiki, ..."),
    ("log_id", _I, True, "`log_id` of a log event."),
    ("log_type", _S, True, "`log_type` of a log event: delete, block, upload, ..."),
    ("log_action", _S, True, "`log_action` of a log event."),
    ("log_action_comment", _S, True, "`log_action_comment` of a log event."),
    ("event_id", _S, True, "The SSE `id` of the event: its resume position (Last-Event-ID)."),
    ("received_at", _TS, False, "When streamkit received the event, UTC."),
    ("raw", _S, True, "The event's JSON exactly as sent (UTF-8); null when collected with keep_raw=False."),
]  # fmt: skip

_EVENT_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("event_type", _S, False, "error (an SSE error event from the service), no_meta_id (a change without "
                              "`meta.id`) or the SSE event type of anything else."),
    ("received_at", _TS, False, "When streamkit received it, UTC."),
    ("event_id", _S, True, "The SSE `id`, if any."),
    ("timestamp", _TS, True, "`meta.dt` when the data has one."),
    ("code", _S, True, "error: the error's name (e.g. KafkaError)."),
    ("message", _S, True, "error: the error's message."),
    ("raw", _S, True, "The SSE event as received (field lines); null when collected with keep_raw=False."),
]  # fmt: skip

#: Schema of the ``changes`` table (one row per event, any stream).
CHANGE_SCHEMA: pa.Schema = _schema(_CHANGE_FIELDS, "changes")
#: Schema of the ``events`` table (service errors and other non-change events).
EVENT_SCHEMA: pa.Schema = _schema(_EVENT_FIELDS, "events")


# -- typed decoding (msgspec reads only the fields named here) -----------------------------

class _Meta(msgspec.Struct):
    id: Any = None
    dt: Any = None
    stream: Any = None
    topic: Any = None
    partition: Any = None
    offset: Any = None
    domain: Any = None
    uri: Any = None
    request_id: Any = None


class _Pair(msgspec.Struct):
    old: Any = None
    new: Any = None


class _Performer(msgspec.Struct):
    user_text: Any = None
    user_is_bot: Any = None


class _Event(msgspec.Struct, rename={"schema_": "$schema"}):
    """The union of recentchange's fields and the common fields of the other MediaWiki schemas.

    Every field is ``Any``: the typed decoder never fails on a surprising type (values are
    checked when columns are built), and fields not named here are skipped unparsed.
    """

    meta: Any = None
    schema_: Any = None
    id: Any = None
    type: Any = None
    namespace: Any = None
    title: Any = None
    title_url: Any = None
    comment: Any = None
    parsedcomment: Any = None
    timestamp: Any = None
    user: Any = None
    bot: Any = None
    minor: Any = None
    patrolled: Any = None
    length: Any = None
    revision: Any = None
    server_name: Any = None
    server_url: Any = None
    wiki: Any = None
    log_id: Any = None
    log_type: Any = None
    log_action: Any = None
    log_action_comment: Any = None
    # mediawiki/revision/create, page/delete, page/move, ... (and page_change's dt)
    database: Any = None
    page_id: Any = None
    page_title: Any = None
    page_namespace: Any = None
    rev_id: Any = None
    rev_parent_id: Any = None
    rev_len: Any = None
    rev_minor_edit: Any = None
    rev_timestamp: Any = None
    performer: Any = None
    dt: Any = None


_DECODER = msgspec.json.Decoder(_Event)
_DICT = msgspec.json.Decoder()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _str(v: Any) -> str | None:
    return v if type(v) is str else None


def _int(v: Any) -> int | None:
    return v if type(v) is int and _INT64_MIN <= v <= _INT64_MAX else None


def _bool(v: Any) -> bool | None:
    return v if type(v) is bool else None


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if type(obj) is dict else None


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _iso_column(values: list[Any]) -> pa.Array:
    """ISO 8601 strings (with a zone: ``Z`` or ``+00:00``) to UTC timestamps; anything else null."""
    strings = pa.array([_str(v) for v in values], pa.string())
    try:
        return strings.cast(_TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        out: list[int | None] = []
        for v in strings.to_pylist():
            out.append(_iso_us(v))
        return pa.array(out, pa.int64()).cast(_TS)


def _iso_us(v: Any) -> int | None:
    if type(v) is not str:
        return None
    try:
        t = _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        return None
    return (t - _EPOCH) // _US


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_US = _dt.timedelta(microseconds=1)


def _as_bytes(message: Any) -> bytes | None:
    if isinstance(message, bytes):
        return message
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8", "surrogatepass")
    return None


def _received(received_at_us: Any, n: int) -> np.ndarray:
    if received_at_us is None:
        now = int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1_000_000)
        return np.full(n, now, dtype=np.int64)
    if np.ndim(received_at_us) == 0:
        return np.full(n, int(received_at_us), dtype=np.int64)
    out = np.asarray(received_at_us, dtype=np.int64)
    if len(out) != n:
        raise ValueError(f"received_at_us has {len(out)} values for {n} messages")
    return out


# -- the writer side ------------------------------------------------------------------------

class WikimediaSource(Source):
    """EventStreams events into :data:`CHANGE_SCHEMA` (``changes``) and :data:`EVENT_SCHEMA`.

    Parameters
    ----------
    wiki : list of str, optional
        Keep only these wikis: database names (``enwiki``, ``commonswiki``) or server names
        (``en.wikipedia.org``).
    type : list of str, optional
        Keep only these recentchange types (``edit``, ``new``, ``log``, ``categorize``,
        ``external``); events of other streams have no type and are left out.
    bot : bool, optional
        True keeps only bot changes, False only changes by people; None keeps both.
    namespace : list of int, optional
        Keep only these namespaces (0 = articles, 1 = talk, 2 = user, 14 = categories...).

    Examples
    --------
    >>> import json
    >>> change = {"$schema": "/mediawiki/recentchange/1.0.0", "meta": {"id": "a-1",
    ...           "dt": "2026-01-02T03:04:05Z", "domain": "en.wikipedia.org",
    ...           "stream": "mediawiki.recentchange"}, "type": "edit", "title": "Main Page",
    ...           "wiki": "enwiki", "user": "Ada", "bot": False, "timestamp": 1767323045}
    >>> canary = {"meta": {"id": "c-1", "dt": "2026-01-02T03:04:05Z", "domain": "canary",
    ...           "stream": "mediawiki.recentchange"}}
    >>> block = lambda d: b"event: message\\nid: [1]\\ndata: " + json.dumps(d).encode()
    >>> batch = WikimediaSource(wiki=["enwiki"]).decode_batch([block(change), block(canary)])
    >>> batch.tweets.column("title").to_pylist(), batch.rejected
    (['Main Page'], {'canary': 1})
    """

    name: ClassVar[str] = "wikimedia"
    items: ClassVar[str] = "changes"
    key_columns: ClassVar[tuple[str, ...]] = ("meta_id",)
    can_replay: ClassVar[bool] = True
    view_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("time", "created_at"), ("wiki", "wiki"), ("user", "user"), ("title", "title"), ("type", "type"),
    )

    def __init__(self, *, wiki: Any = None, type: Any = None, bot: Any = None, namespace: Any = None) -> None:
        self.item_schema = CHANGE_SCHEMA
        self.event_schema = EVENT_SCHEMA
        self.wiki = _names(wiki, "wiki")
        self.type = _names(type, "type")
        if self.type:
            unknown = [t for t in self.type if t not in RC_TYPES]
            if unknown:
                raise ConfigError(f"type {', '.join(map(repr, unknown))} is not a recentchange type; "
                                  f"use {', '.join(RC_TYPES)}")
        self.bot = _tristate(bot, "bot")
        self.namespace = _namespaces(namespace)

    def filters(self) -> dict[str, Any]:
        """The client-side filters in force (for the manifest and the panel)."""
        out: dict[str, Any] = {}
        for k in ("wiki", "type", "namespace"):
            if getattr(self, k):
                out[k] = list(getattr(self, k))
        if self.bot is not None:
            out["bot"] = self.bot
        return out

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """Raw SSE event blocks -> :class:`streamkit.schema.DecodedBatch` (never raises on content)."""
        from ..schema import DecodedBatch

        received = _received(received_at_us, len(messages))
        rejected: Counter[str] = Counter()
        items: list[tuple[int, _Event, str, str | None]] = []  # index, event, JSON text, SSE id
        events: list[tuple[int, str, str | None, Any, str | None, str | None, str]] = []
        for i, message in enumerate(messages):
            block = _as_bytes(message)
            if block is None:
                rejected["not_bytes"] += 1
                continue
            ev = parse_event(block)
            if ev.event != "message":
                events.append(self._other_event(i, ev, block))
                continue
            try:
                text = ev.data.decode("utf-8")
            except UnicodeDecodeError:
                rejected["invalid_utf8"] += 1
                continue
            try:
                obj = _DECODER.decode(ev.data)
            except msgspec.ValidationError:  # valid JSON, but not an object
                rejected["not_an_object"] += 1
                continue
            except msgspec.DecodeError:
                rejected["malformed_json"] += 1
                continue
            meta = obj.meta if type(obj.meta) is dict else {}
            if meta.get("domain") == "canary":
                rejected["canary"] += 1
                continue
            if _str(meta.get("id")) is None:
                events.append((i, "no_meta_id", ev.id, meta.get("dt"), None, None,
                               block.decode("utf-8", "replace")))
                continue
            items.append((i, obj, text, ev.id))
        table = self._changes(items, received, keep_raw)
        index = np.fromiter((t[0] for t in items), dtype=np.int64, count=len(items))
        if table.num_rows and (self.wiki or self.type or self.bot is not None or self.namespace):
            mask = self._mask(table)
            kept = int(pc.sum(mask.cast(pa.int64())).as_py() or 0)
            if kept != table.num_rows:
                rejected["filtered"] += table.num_rows - kept
                table = table.filter(mask)
                index = index[np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)]
        return DecodedBatch(
            tweets=table,
            events=self._events(events, received, keep_raw),
            rejected=dict(rejected),
            tweet_index=index,
            event_index=np.fromiter((e[0] for e in events), dtype=np.int64, count=len(events)),
        )

    @staticmethod
    def _other_event(i: int, ev: Any, block: bytes) -> tuple[int, str, str | None, Any, str | None, str | None, str]:
        code = message = dt = None
        try:
            data = _DICT.decode(ev.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            data = None
        if type(data) is dict:
            code = _str(data.get("name")) or _str(data.get("code"))
            message = _str(data.get("message")) or _str(data.get("error"))
            dt = _get(data.get("meta"), "dt")
        elif ev.data:
            message = ev.data.decode("utf-8", "replace")[:1000]
        return (i, ev.event, ev.id, dt, code, message, block.decode("utf-8", "replace"))

    def _changes(self, items: list[tuple[int, _Event, str, str | None]], received: np.ndarray,
                 keep_raw: bool) -> pa.Table:
        n = len(items)
        objs = [t[1] for t in items]
        metas = [o.meta for o in objs]  # dicts: checked above
        length = [o.length if type(o.length) is dict else {} for o in objs]
        revision = [o.revision if type(o.revision) is dict else {} for o in objs]
        performer = [o.performer if type(o.performer) is dict else {} for o in objs]

        def col(values: Iterable[Any], typ: pa.DataType) -> pa.Array:
            return pa.array(list(values), typ)

        meta_dt = _iso_column([m.get("dt") for m in metas])
        rc_ts = [_int(o.timestamp) for o in objs]
        timestamp = pa.array([None if t is None else t * 1_000_000 for t in rc_ts], pa.int64()).cast(_TS)
        other_ts = _iso_column([_first(_str(o.rev_timestamp), _str(o.dt)) for o in objs])
        created = pc.coalesce(timestamp, other_ts, meta_dt)
        columns = {
            "meta_id": col((m.get("id") for m in metas), _S),
            "created_at": created,
            "meta_dt": meta_dt,
            "meta_stream": col((_str(m.get("stream")) for m in metas), _S),
            "meta_topic": col((_str(m.get("topic")) for m in metas), _S),
            "meta_partition": col((_int(m.get("partition")) for m in metas), _I),
            "meta_offset": col((_int(m.get("offset")) for m in metas), _I),
            "meta_uri": col((_str(m.get("uri")) for m in metas), _S),
            "meta_request_id": col((_str(m.get("request_id")) for m in metas), _S),
            "schema": col((_str(o.schema_) for o in objs), _S),
            "id": col((_int(o.id) for o in objs), _I),
            "type": col((_str(o.type) for o in objs), _S),
            "namespace": col((_int(_first(o.namespace, o.page_namespace)) for o in objs), _I),
            "title": col((_str(_first(o.title, o.page_title)) for o in objs), _S),
            "title_url": col((_str(o.title_url) for o in objs), _S),
            "comment": col((_str(o.comment) for o in objs), _S),
            "parsedcomment": col((_str(o.parsedcomment) for o in objs), _S),
            "timestamp": timestamp,
            "user": col((_str(_first(o.user, p.get("user_text"))) for o, p in zip(objs, performer, strict=True)), _S),
            "bot": col((_bool(_first(o.bot, p.get("user_is_bot"))) for o, p in zip(objs, performer, strict=True)), _B),
            "minor": col((_bool(_first(o.minor, o.rev_minor_edit)) for o in objs), _B),
            "patrolled": col((_bool(o.patrolled) for o in objs), _B),
            "length_old": col((_int(x.get("old")) for x in length), _I),
            "length_new": col((_int(_first(x.get("new"), o.rev_len)) for x, o in zip(length, objs, strict=True)), _I),
            "revision_old": col((_int(_first(x.get("old"), o.rev_parent_id)) for x, o in zip(revision, objs, strict=True)), _I),
            "revision_new": col((_int(_first(x.get("new"), o.rev_id)) for x, o in zip(revision, objs, strict=True)), _I),
            "page_id": col((_int(o.page_id) for o in objs), _I),
            "server_name": col((_str(_first(o.server_name, m.get("domain"))) for o, m in zip(objs, metas, strict=True)), _S),
            "server_url": col((_str(o.server_url) for o in objs), _S),
            "wiki": col((_str(_first(o.wiki, o.database)) for o in objs), _S),
            "log_id": col((_int(o.log_id) for o in objs), _I),
            "log_type": col((_str(o.log_type) for o in objs), _S),
            "log_action": col((_str(o.log_action) for o in objs), _S),
            "log_action_comment": col((_str(o.log_action_comment) for o in objs), _S),
            "event_id": col((t[3] for t in items), _S),
            "received_at": pa.array(received[[t[0] for t in items]] if n else [], pa.int64()).cast(_TS),
            "raw": col((t[2] for t in items) if keep_raw else [None] * n, _S),
        }
        return pa.Table.from_pydict(columns, schema=CHANGE_SCHEMA)

    @staticmethod
    def _events(rows: list[tuple[int, str, str | None, Any, str | None, str | None, str]],
                received: np.ndarray, keep_raw: bool) -> pa.Table:
        n = len(rows)
        return pa.Table.from_pydict({
            "event_type": pa.array([r[1] for r in rows], _S),
            "received_at": pa.array(received[[r[0] for r in rows]] if n else [], pa.int64()).cast(_TS),
            "event_id": pa.array([r[2] for r in rows], _S),
            "timestamp": _iso_column([r[3] for r in rows]),
            "code": pa.array([r[4] for r in rows], _S),
            "message": pa.array([r[5] for r in rows], _S),
            "raw": pa.array([r[6] for r in rows] if keep_raw else [None] * n, _S),
        }, schema=EVENT_SCHEMA)

    def _mask(self, table: pa.Table) -> pa.Array:
        mask = pa.array(np.ones(table.num_rows, dtype=bool))
        if self.wiki:
            wanted = pa.array(self.wiki, _S)
            by_wiki = pc.fill_null(pc.is_in(table.column("wiki"), value_set=wanted), False)
            by_server = pc.fill_null(pc.is_in(table.column("server_name"), value_set=wanted), False)
            mask = pc.and_(mask, pc.or_(by_wiki, by_server))
        if self.type:
            mask = pc.and_(mask, pc.fill_null(pc.is_in(table.column("type"), value_set=pa.array(self.type, _S)), False))
        if self.bot is not None:
            mask = pc.and_(mask, pc.fill_null(pc.equal(table.column("bot"), self.bot), False))
        if self.namespace:
            ns = pa.array(self.namespace, _I)
            mask = pc.and_(mask, pc.fill_null(pc.is_in(table.column("namespace"), value_set=ns), False))
        if isinstance(mask, pa.ChunkedArray):
            mask = mask.combine_chunks()
        return mask

    def position(self, messages: Sequence[bytes]) -> Any:
        """``{"last_event_id": ..., "dt": ...}`` of the last event with an id, or None.

        Canary events count: their ids are positions too.
        """
        for message in reversed(messages):
            block = _as_bytes(message)
            if block is None:
                continue
            ev = parse_event(block)
            if not ev.id:
                continue
            dt = None
            try:
                data = _DICT.decode(ev.data)
                dt = _str(_get(_get(data, "meta"), "dt"))
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
            return {"last_event_id": ev.id, "dt": dt}
        return None


# -- the reader side ------------------------------------------------------------------------

class WikimediaEndpoint(Endpoint):
    """``GET {base_url}/v2/stream/{streams}`` with resume by ``Last-Event-ID`` (or ``since``).

    Parameters
    ----------
    base_url : str
        ``https://stream.wikimedia.org`` or a compatible server.
    streams : list of str
        Stream names, joined with commas in the URL.
    user_agent : str
        The User-Agent header (Wikimedia requires a descriptive one).
    since : str, optional
        ISO 8601 start time, used only while no event id is known.
    routine_close_after : float, default 60.0
        The server ending a connection this long (seconds) is routine: reconnect at once
        (see the module docstring).
    """

    name: ClassVar[str] = "wikimedia"
    transport: ClassVar[str] = "http"
    # recentchange carries dozens of events a second and the service sends no keep-alives:
    # a minute of silence on it means a dead connection. Quiet streams just reconnect (and
    # resume): nothing is lost.
    stall_timeout: ClassVar[float | None] = 60.0

    def __init__(self, base_url: str, streams: Sequence[str], *, user_agent: str,
                 since: str | None = None, routine_close_after: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.streams = list(streams)
        self.user_agent = user_agent
        self.since = since
        self.routine_close_after = float(routine_close_after)
        self.last_event_id: str | None = None
        self.filters: dict[str, Any] = {}  # the decoder's client-side filters, for describe()

    def dataset_name(self) -> str:
        """The default dataset folder name: ``wikimedia-<streams>``."""
        return "wikimedia-" + "-".join(self.streams)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this capture's request."""
        out: dict[str, Any] = {"endpoint": "wikimedia", "streams": list(self.streams), **self.filters}
        if self.since:
            out["since"] = self.since
        return out

    def request(self) -> Request:
        """The next connection: resume after the last event seen, else from ``since``."""
        headers = {"User-Agent": self.user_agent, "Accept": "text/event-stream"}
        params: dict[str, str] = {}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        elif self.since:
            params["since"] = self.since
        return Request("GET", f"{self.base_url}{STREAM_PATH}{','.join(self.streams)}",
                       params=params, headers=headers)

    def framer(self, max_message_bytes: int) -> SSEFramer:
        """A :class:`streamkit._sse.SSEFramer`: one raw message per SSE event."""
        return SSEFramer(max_message_bytes)

    def observe(self, messages: Sequence[bytes]) -> None:
        """Keep the id of the newest event for reconnects (only the last block is parsed)."""
        for message in reversed(messages):
            event_id = parse_event(message).id
            if event_id:
                self.last_event_id = event_id
                return

    def resume_from(self, position: Any) -> None:
        """Continue after a stored position (``{"last_event_id": ..., "dt": ...}``, or an id).

        The stored id is used only if it covers exactly this capture's streams (the service
        consumes only the topics named in ``Last-Event-ID`` and refuses topics of streams not in
        the URL, so an id of other streams would narrow the capture or fail); otherwise the
        capture starts from the stored event's time with ``since``, and the dataset's dedupe
        drops the overlap.
        """
        if isinstance(position, str):
            position = {"last_event_id": position}
        if not isinstance(position, dict):
            return
        event_id, dt = position.get("last_event_id"), position.get("dt")
        if isinstance(event_id, str) and event_id and _id_covers(event_id, self.streams):
            self.last_event_id = event_id
            return
        if isinstance(dt, str) and dt:
            log.warning("the stored resume position is for other streams than %s; starting from %s instead",
                        ",".join(self.streams), dt)
            self.last_event_id = None
            self.since = dt
        elif event_id:
            log.warning("the stored resume position is for other streams than %s and has no time; starting "
                        "from %s (events since the last capture may be missing)",
                        ",".join(self.streams), self.since or "the newest event")

    def routine_close(self, seconds_connected: float) -> bool:
        """The server ending a connection that lasted ``routine_close_after`` seconds is routine."""
        return seconds_connected >= self.routine_close_after


def _id_covers(event_id: str, streams: Sequence[str]) -> bool:
    """Whether an EventStreams id's topics are exactly ``streams`` (unparsable ids: assume so)."""
    try:
        entries = json.loads(event_id)
    except ValueError:
        return True
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return True
    topics = {e.get("topic") for e in entries}
    if not all(isinstance(t, str) for t in topics):
        return True
    in_id = {_topic_stream(t) for t in topics}  # type: ignore[arg-type]
    wanted = {s if "." in s else f"mediawiki.{s}" for s in streams}
    return in_id == wanted


def _topic_stream(topic: str) -> str:
    """``eqiad.mediawiki.recentchange`` -> ``mediawiki.recentchange`` (the datacenter prefix off)."""
    dc, sep, rest = topic.partition(".")
    return rest if sep and dc in _DATACENTERS else topic


_DATACENTERS = frozenset({"eqiad", "codfw", "esams", "ulsfo", "eqsin", "drmrs", "magru", "datacenter1"})


# -- options ---------------------------------------------------------------------------------

def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    try:
        items = [part.strip() for v in value for part in str(v).split(",")]
    except TypeError:
        raise ConfigError(f"{what} takes a name or a list of names, not {value!r}") from None
    return [v for v in items if v]


def _tristate(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "any", "none", "both"):
        return None
    if text in ("true", "yes", "1", "only", "bots", "bot"):
        return True
    if text in ("false", "no", "0", "exclude", "humans", "people"):
        return False
    raise ConfigError(f"{what} takes True (bots only), False (no bots) or None (both), not {value!r}")


def _namespaces(value: Any) -> list[int]:
    out = []
    for v in _names(value if not isinstance(value, int) else [value], "namespace"):
        try:
            out.append(int(v))
        except ValueError:
            raise ConfigError(f"namespace takes numbers (0 articles, 1 talk, 2 user, 14 category...), not {v!r}") from None
    return out


def _since(value: Any) -> str | None:
    """``since`` as the ISO 8601 UTC string the service takes."""
    if value is None or value == "":
        return None
    now = _dt.datetime.now(_dt.timezone.utc)
    when: _dt.datetime
    if isinstance(value, _dt.datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = _dt.datetime.fromtimestamp(value / 1000, _dt.timezone.utc)  # Unix ms, as Wikimedia takes
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            when = _dt.datetime.fromtimestamp(int(text) / 1000, _dt.timezone.utc)
        else:
            try:
                from ..cli import parse_duration

                when = now - _dt.timedelta(seconds=parse_duration(text))
            except ValueError:
                try:
                    when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                except ValueError:
                    raise ConfigError(
                        f"since={value!r} is not a time: give ISO 8601 (2026-12-01T00:00:00Z), Unix "
                        "milliseconds, a datetime, or a duration ago (2h, 30m)") from None
                if when.tzinfo is None:
                    when = when.replace(tzinfo=_dt.timezone.utc)
    else:
        raise ConfigError(f"since takes an ISO 8601 time, Unix milliseconds, a datetime or a duration, not {value!r}")
    if when > now + _dt.timedelta(minutes=5):
        raise ConfigError(f"since={value!r} is in the future; give a past time (Wikimedia keeps about 7 days)")
    utc = when.astimezone(_dt.timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def default_user_agent(contact: str | None = None) -> str:
    """The User-Agent streamkit sends to Wikimedia, per its User-Agent policy.

    Parameters
    ----------
    contact : str, optional
        How Wikimedia's operators can reach you: an e-mail address or a URL.

    Examples
    --------
    >>> default_user_agent("ada@example.org").split(" ")[1]
    '(ada@example.org;'
    """
    import requests

    from .._version import __version__

    where = "+https://pypi.org/project/streamkit/"
    about = f"{contact}; {where}" if contact else where
    return f"streamkit/{__version__} ({about}) python-requests/{requests.__version__}"


def _user_agent(user_agent: str | None, contact: str | None) -> str:
    if user_agent is None:
        user_agent = os.environ.get(USER_AGENT_ENV, "").strip() or None
    if contact is not None and not str(contact).strip():
        contact = None
    if user_agent is None:
        if contact is None and not _warned_user_agent.is_set():
            _warned_user_agent.set()
            log.warning("no contact in the User-Agent: Wikimedia's policy asks for one and may block clients "
                        "without it; pass contact='you@example.org' (--contact) or set %s", USER_AGENT_ENV)
        user_agent = default_user_agent(contact)
    text = str(user_agent)
    if not text.strip() or "\r" in text or "\n" in text:
        raise ConfigError("user_agent must be one non-empty line, e.g. "
                          "'my-study/1.0 (you@example.org) streamkit'")
    if contact is not None and ("\r" in str(contact) or "\n" in str(contact)):
        raise ConfigError("contact must be one line: an e-mail address or a URL")
    return text


SOURCE_CLASS = WikimediaSource


def open_source(
    *,
    base_url: str | None = None,
    streams: Any = ("recentchange",),
    wiki: Any = None,
    type: Any = None,
    bot: Any = None,
    namespace: Any = None,
    since: Any = None,
    contact: str | None = None,
    user_agent: str | None = None,
    routine_close_after: float = 60.0,
) -> tuple[WikimediaEndpoint, WikimediaSource]:
    """The EventStreams endpoint and decoder for these options.

    Parameters
    ----------
    base_url : str, optional
        Default ``https://stream.wikimedia.org``; a local
        :class:`streamkit.testing.WikimediaServer` for tests.
    streams : str or list of str, default ("recentchange",)
        Streams to join: ``recentchange``, ``page-create``, ``revision-create``,
        ``page-delete``, ``page-move``, ... (comma-separated or a list).
    wiki, type, bot, namespace
        Client-side filters (see :class:`WikimediaSource`).
    since : str, int or datetime, optional
        Start from this time when no resume position is known: ISO 8601, Unix
        milliseconds, a datetime, or a duration ago (``"2h"``). Wikimedia keeps about 7 days.
    contact : str, optional
        Your e-mail or URL, put in the User-Agent (Wikimedia's policy asks for it).
    user_agent : str, optional
        The whole User-Agent instead (default: ``$STREAMKIT_USER_AGENT``, else built
        from ``contact``).
    routine_close_after : float, default 60.0
        The server ending a connection that lasted this long (seconds) is routine (the
        15-minute close): reconnect at once. Shorter ones are faults and are backed off from.

    Raises
    ------
    ConfigError
        For a bad stream name, filter value, time or User-Agent.

    Examples
    --------
    >>> ep, src = open_source(streams="recentchange,page-create", bot=False, since=1764547200000,
    ...                       contact="me@example.org")
    >>> ep.request().url, ep.request().params, src.bot
    ('https://stream.wikimedia.org/v2/stream/recentchange,page-create', {'since': '2025-12-01T00:00:00Z'}, False)
    >>> open_source(streams="recent change")
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: stream name 'recent change' is not valid: use names such as recentchange, page-create, revision-create
    """
    names = _names(streams, "streams")
    if not names:
        raise ConfigError("give at least one stream, e.g. streams=['recentchange']")
    for s in names:
        if not _STREAM_NAME.match(s):
            raise ConfigError(f"stream name {s!r} is not valid: use names such as recentchange, page-create, "
                              "revision-create")
    names = list(dict.fromkeys(names))
    if not isinstance(routine_close_after, (int, float)) or routine_close_after < 0:
        raise ConfigError(f"routine_close_after must be a number of seconds >= 0, got {routine_close_after!r}")
    source = WikimediaSource(wiki=wiki, type=type, bot=bot, namespace=namespace)
    endpoint = WikimediaEndpoint(base_url or DEFAULT_BASE_URL, names, user_agent=_user_agent(user_agent, contact),
                                 since=_since(since), routine_close_after=routine_close_after)
    endpoint.filters = source.filters()
    return endpoint, source


CLI_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--stream",), dict(dest="streams", action="append", metavar="NAME",
                         help="Stream to capture: recentchange (default), page-create, revision-create, ... "
                              "Repeat or separate with commas.")),
    (("--wiki",), dict(dest="wiki", action="append", metavar="WIKI",
                       help="Keep only these wikis (enwiki, commonswiki or en.wikipedia.org); repeat or commas.")),
    (("--type",), dict(dest="type", action="append", metavar="TYPE",
                       help="Keep only these recentchange types: edit, new, log, categorize, external.")),
    (("--namespace",), dict(dest="namespace", action="append", metavar="NS",
                            help="Keep only these namespace numbers (0 articles, 1 talk, 2 user, 14 category).")),
    (("--bot",), dict(dest="bot", action=argparse.BooleanOptionalAction, default=None,
                      help="--bot keeps only bot changes, --no-bot only changes by people (default: both).")),
    (("--since",), dict(dest="since", metavar="TIME",
                        help="On a new dataset, start from this time: ISO 8601, Unix ms, or a duration ago "
                             "(2h). Later runs resume where the dataset ends.")),
    (("--contact",), dict(dest="contact", metavar="EMAIL_OR_URL",
                          help="Your contact for the User-Agent Wikimedia asks for (its User-Agent policy).")),
    (("--user-agent",), dict(dest="user_agent", metavar="UA",
                             help=f"The whole User-Agent instead (default: ${USER_AGENT_ENV}, else built from --contact).")),
]
