"""The Mastodon dataset: schemas, the decoder (writer side) and readers.

Split from :mod:`streamkit.sources.mastodon` (the endpoint and options), which re-exports
everything public here. See that module for the dataset's design: one row per version of a
status, key ``(instance, id, edited_at)``; deletes, notifications and gaps in ``events``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar

import msgspec
import numpy as np
import pyarrow as pa

from ._columns import Columns as _Columns
from ._columns import int64
from ._columns import iso_us as _ts_us  # Mastodon's 2019-12-08T03:48:33.901Z
from .base import Source

__all__ = [
    "EVENT_SCHEMA",
    "GAP_EVENT",
    "STATUS_EVENTS",
    "STATUS_SCHEMA",
    "MastodonSource",
    "html_to_text",
    "latest_versions",
    "read_statuses",
]

STATUS_EVENTS = ("update", "status.update")
GAP_EVENT = "streamkit.gap"  # a marker the endpoint itself emits; no server sends it

_TS = pa.timestamp("us", tz="UTC")

#: The ``statuses`` table: one row per version of a status.
STATUS_SCHEMA = pa.schema([
    pa.field("instance", pa.string(), nullable=False),
    pa.field("id", pa.string(), nullable=False),
    pa.field("edited_at", _TS),
    pa.field("created_at", _TS),
    pa.field("received_at", _TS, nullable=False),
    pa.field("event", pa.string()),
    pa.field("uri", pa.string()),
    pa.field("url", pa.string()),
    pa.field("account_id", pa.string()),
    pa.field("account_acct", pa.string()),
    pa.field("account_username", pa.string()),
    pa.field("account_display_name", pa.string()),
    pa.field("account_followers_count", pa.int64()),
    pa.field("content", pa.string()),
    pa.field("text", pa.string()),
    pa.field("spoiler_text", pa.string()),
    pa.field("language", pa.string()),
    pa.field("visibility", pa.string()),
    pa.field("sensitive", pa.bool_()),
    pa.field("in_reply_to_id", pa.string()),
    pa.field("in_reply_to_account_id", pa.string()),
    pa.field("reblog_of_id", pa.string()),
    pa.field("hashtags", pa.list_(pa.string())),
    pa.field("mentions", pa.list_(pa.string())),
    pa.field("replies_count", pa.int64()),
    pa.field("reblogs_count", pa.int64()),
    pa.field("favourites_count", pa.int64()),
    pa.field("media_types", pa.list_(pa.string())),
    pa.field("card_url", pa.string()),
    pa.field("raw", pa.string()),
])

#: The ``events`` table: deletes, notifications, filters/announcements, recorded gaps.
EVENT_SCHEMA = pa.schema([
    pa.field("instance", pa.string()),
    pa.field("received_at", _TS, nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("stream", pa.string()),
    pa.field("status_id", pa.string()),
    pa.field("created_at", _TS),
    pa.field("detail", pa.string()),
    pa.field("raw", pa.string()),
])


# -- small helpers -------------------------------------------------------------------------

def _id_key(value: str) -> tuple[int, str]:
    """Order of Mastodon ids: numbers as strings (longer is larger), flake ids by length then text."""
    return (len(value), value)


def _newer(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if _id_key(a) >= _id_key(b) else b


_TAGS = re.compile(r"<[^>]*>")
_BREAKS = re.compile(r"<br\s*/?>|</p>\s*<p[^>]*>", re.IGNORECASE)


def html_to_text(content: str | None) -> str | None:
    """Status HTML to plain text, cheaply: line breaks for ``<br>`` and paragraphs, tags
    dropped, entities unescaped.

    Examples
    --------
    >>> html_to_text('<p>Hi <a href="https://x.org/tags/py">#<span>py</span></a> &amp; co</p><p>2nd</p>')
    'Hi #py & co\\n2nd'
    """
    if content is None:
        return None
    if "<" not in content and "&" not in content:
        return content
    return html.unescape(_TAGS.sub("", _BREAKS.sub("\n", content))).strip()


def _s(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


_i = int64


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


# -- messages on the wire ----------------------------------------------------------------

class _Envelope(msgspec.Struct):
    """A WebSocket event (``payload`` is itself JSON, as a string; an id for deletes)."""

    event: str = ""
    payload: Any = None
    stream: Any = None


class _HasId(msgspec.Struct):
    id: Any = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_id = msgspec.json.Decoder(_HasId).decode
_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _split(message: bytes) -> tuple[str, bytes | str | None, Any]:
    """(event, payload, stream) of one raw message, SSE block or WebSocket JSON.

    Raises ValueError / msgspec.DecodeError for what is neither.
    """
    body = message.lstrip()
    if body[:1] == b"{":
        env = _decode_envelope(body)
        payload = env.payload
        if payload is not None and not isinstance(payload, str):
            payload = _encode(payload).decode("utf-8")  # a server that sent an object
        return env.event, payload, env.stream
    from .._sse import parse_event

    ev = parse_event(message)
    return ev.event, ev.data, None


def _status_id_of(message: bytes) -> str | None:
    """The status id of an ``update`` message (cheap: the rest of the status is skipped)."""
    try:
        event, payload, _ = _split(message)
        if event != "update" or payload is None:
            return None
        return _s(_decode_id(payload).id)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _sse_message(event: str, payload: str | bytes) -> bytes:
    """A message shaped as :class:`streamkit._sse.SSEFramer` hands one on."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return b"event: " + event.encode("ascii") + b"\ndata: " + data


def _ws_message(event: str, payload: str | bytes, stream: list[str]) -> bytes:
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    return _encode({"stream": stream, "event": event, "payload": text})


# -- the source (writer side) --------------------------------------------------------------

class MastodonSource(Source):
    """Mastodon events into the ``statuses`` and ``events`` tables (see the module notes).

    Parameters
    ----------
    instance : str, optional
        The host the stream comes from (``mastodon.social``); stored in every row.
    stream : str, optional
        The stream name, stored with events and in the resume position.
    filter : str, optional
        The stream's tag or list id, stored in the resume position.
    gap_fill : bool, default True
        Whether the endpoint fills gaps from the REST timeline (then reconnects and
        restarts are not recorded as gaps: an unfilled remainder is, by the endpoint).

    Examples
    --------
    >>> import json, pathlib
    >>> status = pathlib.Path("tests/fixtures/mastodon_status.json").read_bytes()
    >>> src = MastodonSource(instance="mastodon.social")
    >>> batch = src.decode_batch([b"event: update\\ndata: " + json.dumps(json.loads(status)).encode(),
    ...                           b"event: delete\\ndata: 103270115826048975"], received_at_us=0)
    >>> row = batch.tweets.to_pylist()[0]
    >>> row["id"], row["account_acct"], row["text"][:22]
    ('103270115826048975', 'Gargron', '"I lost my inheritance')
    >>> batch.events.column("event_type").to_pylist(), batch.events.column("status_id").to_pylist()
    (['delete'], ['103270115826048975'])
    >>> src.position([b"event: update\\ndata: {\\"id\\": \\"7\\"}"])
    {'instance': 'mastodon.social', 'stream': None, 'filter': None, 'newest_id': '7'}
    """

    name: ClassVar[str] = "mastodon"
    items: ClassVar[str] = "statuses"
    key_columns: ClassVar[tuple[str, ...]] = ("instance", "id", "edited_at")
    version_column: ClassVar[str | None] = "edited_at"
    view_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("time", "created_at"), ("account", "account_acct"), ("text", "text"), ("lang", "language"),
    )
    item_schema = STATUS_SCHEMA
    event_schema = EVENT_SCHEMA

    def __init__(self, *, instance: str | None = None, stream: str | None = None, filter: str | None = None,
                 gap_fill: bool = True) -> None:
        self.instance = instance
        self.stream = stream
        self.filter = filter
        self.can_replay = bool(gap_fill)  # type: ignore[misc]  # per capture, not per class
        self._newest: str | None = None

    def deleted_items(self, events: Any) -> Any:
        """``(instance, id)`` of every status a ``delete`` event removed (a status id is
        only unique per instance; an event without an instance matches statuses stored
        without one, as the decoder stores them with ``""``).

        Examples
        --------
        >>> import pyarrow.dataset as pads
        >>> src = MastodonSource(instance="mastodon.social")
        >>> batch = src.decode_batch([b"event: delete\\ndata: 1039", b"event: filters_changed\\ndata: "])
        >>> src.deleted_items(pads.dataset(batch.events)).to_pylist()
        [{'instance': 'mastodon.social', 'id': '1039'}]
        """
        import pyarrow.compute as pc

        table = events.to_table(columns=["instance", "status_id"], filter=pc.field("event_type") == "delete")
        return pa.table({"instance": pc.fill_null(table.column("instance"), ""), "id": table.column("status_id")})

    def position(self, messages: Sequence[bytes]) -> Any:
        """``{"instance", "stream", "newest_id"}``: the newest status id so far (None before any)."""
        for m in messages:
            sid = _status_id_of(m)
            if sid is not None:
                self._newest = _newer(self._newest, sid)
        if self._newest is None:
            return None
        return {"instance": self.instance, "stream": self.stream, "filter": self.filter, "newest_id": self._newest}

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """Raw SSE blocks or WebSocket events → a :class:`streamkit.schema.DecodedBatch`."""
        from streamkit.schema import DecodedBatch, _as_bytes, _received

        received = _received(received_at_us, len(messages))
        rows = _Columns(STATUS_SCHEMA)
        events = _Columns(EVENT_SCHEMA)
        item_index: list[int] = []
        event_index: list[int] = []
        rejected: dict[str, int] = {}

        def reject(reason: str) -> None:
            rejected[reason] = rejected.get(reason, 0) + 1

        for i, m in enumerate(messages):
            raw = _as_bytes(m)
            if isinstance(raw, str):
                reject(raw)
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                reject("invalid_utf8")
                continue
            try:
                event, payload, stream = _split(raw)
            except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
                reject("malformed_json")
                continue
            stream_name = ":".join(map(str, stream)) if isinstance(stream, list) else self.stream
            keep = text if keep_raw else None
            if isinstance(payload, bytes):
                payload = payload.decode("utf-8")
            if event in STATUS_EVENTS:
                try:
                    status = _decode_any(payload) if payload is not None else None
                except msgspec.DecodeError:
                    reject("malformed_json")
                    continue
                if not isinstance(status, dict) or _s(status.get("id")) is None:
                    reject("not_a_status")
                    continue
                self._status_row(rows, status, event, int(received[i]), keep)
                item_index.append(i)
                continue
            if not event:
                reject("no_event_type")
                continue
            self._event_row(events, event, payload, stream_name, int(received[i]), keep)
            event_index.append(i)
        return DecodedBatch(
            tweets=rows.table(), events=events.table(), rejected=rejected,
            tweet_index=np.asarray(item_index, dtype=np.int64),
            event_index=np.asarray(event_index, dtype=np.int64),
        )

    def _status_row(self, rows: _Columns, s: dict[str, Any], event: str, received: int, raw: str | None) -> None:
        account = _d(s.get("account"))
        reblog = _d(s.get("reblog"))
        shown = reblog or s  # a boost has no content of its own
        content = _s(shown.get("content"))
        rows.add(
            instance=self.instance or "", id=_s(s.get("id")), edited_at=_ts_us(s.get("edited_at")),
            created_at=_ts_us(s.get("created_at")), received_at=received, event=event,
            uri=_s(s.get("uri")), url=_s(s.get("url")), account_id=_s(account.get("id")),
            account_acct=_s(account.get("acct")), account_username=_s(account.get("username")),
            account_display_name=_s(account.get("display_name")),
            account_followers_count=_i(account.get("followers_count")),
            content=content, text=html_to_text(content), spoiler_text=_s(s.get("spoiler_text")),
            language=_s(shown.get("language")), visibility=_s(s.get("visibility")),
            sensitive=s.get("sensitive") if isinstance(s.get("sensitive"), bool) else None,
            in_reply_to_id=_s(s.get("in_reply_to_id")),
            in_reply_to_account_id=_s(s.get("in_reply_to_account_id")),
            reblog_of_id=_s(reblog.get("id")) if reblog else None,
            hashtags=[t for t in (_s(_d(x).get("name")) for x in _l(shown.get("tags"))) if t],
            mentions=[a for a in (_s(_d(x).get("acct")) for x in _l(shown.get("mentions"))) if a],
            replies_count=_i(s.get("replies_count")), reblogs_count=_i(s.get("reblogs_count")),
            favourites_count=_i(s.get("favourites_count")),
            media_types=[t for t in (_s(_d(x).get("type")) for x in _l(shown.get("media_attachments"))) if t],
            card_url=_s(_d(shown.get("card")).get("url")), raw=raw,
        )

    def _event_row(self, events: _Columns, event: str, payload: Any, stream: str | None,
                   received: int, raw: str | None) -> None:
        status_id = created = detail = None
        if event in ("delete", "announcement.delete"):
            status_id = payload.strip() if isinstance(payload, str) else None
        elif event == GAP_EVENT:
            event = "gap"
            detail = payload if isinstance(payload, str) else None
            try:
                created = _ts_us(_d(_decode_any(payload or "")).get("start"))
            except msgspec.DecodeError:
                pass
        elif isinstance(payload, str) and payload.startswith("{"):
            try:
                obj = _d(_decode_any(payload))
            except msgspec.DecodeError:
                obj = {}
            created = _ts_us(obj.get("created_at") or obj.get("published_at"))
            if event == "notification":
                status_id = _s(_d(obj.get("status")).get("id"))
                detail = _s(obj.get("type"))
            elif event == "conversation":
                status_id = _s(_d(obj.get("last_status")).get("id"))
        events.add(instance=self.instance, received_at=received, event_type=event, stream=stream,
                   status_id=status_id, created_at=created, detail=detail, raw=raw)


# -- reading a dataset ----------------------------------------------------------------------

def latest_versions(df: Any) -> Any:
    """One row per ``(instance, id)``: the newest version by ``edited_at`` (unedited first).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"instance": ["m", "m", "m"], "id": ["1", "1", "2"],
    ...                    "edited_at": [pd.NaT, pd.Timestamp("2024-01-01", tz="UTC"), pd.NaT],
    ...                    "text": ["old", "new", "other"]})
    >>> latest_versions(df)["text"].tolist()
    ['new', 'other']
    """
    if not len(df):
        return df
    ordered = df.sort_values(["instance", "id", "edited_at"], na_position="first", kind="stable")
    return ordered.drop_duplicates(["instance", "id"], keep="last").reset_index(drop=True)


def read_statuses(path: Any, *, include_deleted: bool = False, all_versions: bool = False) -> Any:
    """The statuses of a Mastodon dataset: the newest version of each, deleted ones left out.

    The same as :func:`streamkit.read` (which applies every source's versions and deletes),
    kept under its Mastodon name.

    Parameters
    ----------
    path : path-like
        The dataset folder.
    include_deleted : bool, default False
        Keep statuses that a ``delete`` event removed.
    all_versions : bool, default False
        Keep every version (the edit history, original first) instead of the newest.

    Examples
    --------
    >>> import tempfile
    >>> from streamkit.sink import DatasetWriter
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = DatasetWriter(tmp, decoder=MastodonSource(instance="m"))
    ...     df = read_statuses(tmp)
    >>> len(df), "account_acct" in df.columns
    (0, True)
    """
    from streamkit.sink import read

    return read(path, include_deleted=include_deleted, all_versions=all_versions)
