"""The writer side of :mod:`streamkit.sources.jetstream`: Jetstream messages into columns.

Kept apart from the endpoint (the reader side) so that each module stays small. Messages are
decoded once, with msgspec structs that name only the fields the columns need, into Python
lists per column and then one Arrow table per batch of an explicit schema.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar

import msgspec
import numpy as np
import pyarrow as pa

from ._columns import Columns as _Columns
from ._columns import iso_us
from .base import Source

__all__ = ["EVENT_SCHEMA", "GAP_KIND", "POST_COLLECTION", "POST_SCHEMA", "JetstreamSource"]

log = logging.getLogger("streamkit.sources.jetstream")

POST_COLLECTION = "app.bsky.feed.post"
GAP_KIND = "streamkit.gap"  # a marker the endpoint itself emits; no server sends it

_TS = pa.timestamp("us", tz="UTC")

#: The ``posts`` table: one row per version (``rev``) of an ``app.bsky.feed.post`` record.
POST_SCHEMA = pa.schema([
    pa.field("did", pa.string(), nullable=False),
    pa.field("collection", pa.string(), nullable=False),
    pa.field("rkey", pa.string(), nullable=False),
    pa.field("rev", pa.string(), nullable=False),
    pa.field("operation", pa.string(), nullable=False),
    pa.field("cid", pa.string()),
    pa.field("uri", pa.string(), nullable=False),
    pa.field("time_us", pa.int64(), nullable=False),
    pa.field("time", _TS, nullable=False),
    pa.field("created_at", _TS),
    pa.field("received_at", _TS, nullable=False),
    pa.field("text", pa.string()),
    pa.field("langs", pa.list_(pa.string())),
    pa.field("reply_root_uri", pa.string()),
    pa.field("reply_parent_uri", pa.string()),
    pa.field("quote_uri", pa.string()),
    pa.field("embed_type", pa.string()),
    pa.field("hashtags", pa.list_(pa.string())),
    pa.field("mentions", pa.list_(pa.string())),
    pa.field("links", pa.list_(pa.string())),
    pa.field("raw", pa.string()),
])

#: The ``events`` table: post deletes, other collections, identity and account events, gaps.
EVENT_SCHEMA = pa.schema([
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("did", pa.string()),
    pa.field("time_us", pa.int64()),
    pa.field("time", _TS),
    pa.field("received_at", _TS, nullable=False),
    pa.field("collection", pa.string()),
    pa.field("operation", pa.string()),
    pa.field("rkey", pa.string()),
    pa.field("rev", pa.string()),
    pa.field("cid", pa.string()),
    pa.field("uri", pa.string()),
    pa.field("subject", pa.string()),
    pa.field("created_at", _TS),
    pa.field("handle", pa.string()),
    pa.field("active", pa.bool_()),
    pa.field("status", pa.string()),
    pa.field("seq", pa.int64()),
    pa.field("detail", pa.string()),
    pa.field("raw", pa.string()),
])


# -- messages on the wire (typed structs naming only the fields used) ---------------------

class _Commit(msgspec.Struct):
    rev: Any = None
    operation: Any = None
    collection: Any = None
    rkey: Any = None
    cid: Any = None
    record: msgspec.Raw = msgspec.Raw(b"null")


class _Event(msgspec.Struct):
    did: Any = None
    time_us: Any = None
    kind: Any = None
    commit: _Commit | None = None
    identity: Any = None
    account: Any = None
    # streamkit's own gap marker
    start: Any = None
    end: Any = None
    reason: Any = None


class _Post(msgspec.Struct, rename={"created_at": "createdAt"}):
    text: Any = None
    created_at: Any = None
    langs: Any = None
    reply: Any = None
    embed: Any = None
    facets: Any = None
    tags: Any = None


class _Other(msgspec.Struct, rename={"created_at": "createdAt"}):
    created_at: Any = None
    subject: Any = None


class _Time(msgspec.Struct):
    time_us: Any = None


class _IdentCommit(msgspec.Struct):
    rev: Any = None
    operation: Any = None
    collection: Any = None
    rkey: Any = None


class _Ident(msgspec.Struct):
    did: Any = None
    time_us: Any = None
    kind: Any = None
    commit: _IdentCommit | None = None


_decode_event = msgspec.json.Decoder(_Event).decode
_decode_post = msgspec.json.Decoder(_Post).decode
_decode_other = msgspec.json.Decoder(_Other).decode
_decode_time = msgspec.json.Decoder(_Time).decode
_decode_ident = msgspec.json.Decoder(_Ident).decode
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


def _present(raw: msgspec.Raw) -> bool:
    """A record that is there (not absent, not ``null``)."""
    return not (len(raw) == 4 and bytes(raw) == b"null")


def _time_us(message: bytes) -> int | None:
    try:
        t = _decode_time(message).time_us
    except _DECODE_ERRORS:
        return None
    return t if type(t) is int and t > 0 else None


def _identity(message: bytes) -> tuple[int, str] | None:
    """(time_us, digest) of an event: what tells two events at the same time apart."""
    try:
        e = _decode_ident(message)
    except _DECODE_ERRORS:
        return None
    if type(e.time_us) is not int:
        return None
    c = e.commit
    parts = (e.did, e.kind) + ((c.collection, c.rkey, c.rev, c.operation) if c is not None else ())
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).hexdigest()
    return e.time_us, digest


class _Newest:
    """The newest ``time_us`` seen and the identities of the events at exactly that time."""

    __slots__ = ("marks", "time_us")

    def __init__(self, time_us: int | None = None, marks: Iterable[str] = ()) -> None:
        self.time_us = time_us
        self.marks = set(marks)

    def take(self, time_us: int, marks: Iterable[str]) -> None:
        """Take in the newest time of some events and the identities of those at it."""
        if self.time_us is None or time_us > self.time_us:
            self.time_us, self.marks = time_us, set(marks)
        elif time_us == self.time_us:
            self.marks |= set(marks)

    def scan(self, messages: Sequence[bytes]) -> None:
        """Take in messages in any order (every one is parsed)."""
        top: int | None = None
        marks: set[str] = set()
        for m in messages:
            ident = _identity(m)
            if ident is None:
                continue
            t, digest = ident
            if top is None or t > top:
                top, marks = t, {digest}
            elif t == top:
                marks.add(digest)
        if top is not None:
            self.take(top, marks)



# -- the source (writer side) --------------------------------------------------------------

def _iso(time_us: int | None) -> str | None:
    if time_us is None:
        return None
    return datetime.fromtimestamp(time_us / 1e6, timezone.utc).isoformat().replace("+00:00", "Z")


_MIN_US = 0
_MAX_US = int(datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)


def _datetime_us(value: Any) -> int | None | bool:
    """An RFC 3339 datetime as epoch microseconds; None when absent, False when invalid."""
    if value is None:
        return None
    us = iso_us(value)
    if us is None:
        return False
    return us if _MIN_US <= us < _MAX_US else False


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _facets(facets: Any) -> tuple[list[str], list[str], list[str]]:
    """(hashtags, mention dids, link uris) of ``app.bsky.richtext.facet`` annotations."""
    tags: list[str] = []
    mentions: list[str] = []
    links: list[str] = []
    if not isinstance(facets, list):
        return tags, mentions, links
    for facet in facets:
        for feature in _d(facet).get("features") or ():
            f = _d(feature)
            kind = f.get("$type")
            if kind == "app.bsky.richtext.facet#tag" and isinstance(f.get("tag"), str):
                tags.append(f["tag"])
            elif kind == "app.bsky.richtext.facet#mention" and isinstance(f.get("did"), str):
                mentions.append(f["did"])
            elif kind == "app.bsky.richtext.facet#link" and isinstance(f.get("uri"), str):
                links.append(f["uri"])
    return tags, mentions, links


def _quote_uri(embed: dict[str, Any]) -> str | None:
    kind = embed.get("$type")
    if kind == "app.bsky.embed.record":
        return _s(_d(embed.get("record")).get("uri"))
    if kind == "app.bsky.embed.recordWithMedia":
        return _s(_d(_d(embed.get("record")).get("record")).get("uri"))
    return None


def _subject(value: Any) -> str | None:
    """A like's or repost's subject (a strong ref: its uri), a follow's or block's (a did)."""
    if isinstance(value, str):
        return value
    return _s(_d(value).get("uri"))


def _int(value: Any) -> int | None:
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


class JetstreamSource(Source):
    """Jetstream events into the ``posts`` and ``events`` tables (see the module notes).

    Parameters
    ----------
    host : str, optional
        The Jetstream host, stored in the resume position.

    Attributes
    ----------
    bad_created_at : int
        Posts whose ``createdAt`` was not a valid datetime (stored with ``created_at`` null).

    Examples
    --------
    >>> src = JetstreamSource()
    >>> post = (b'{"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit", "commit": '
    ...         b'{"rev": "3l3qo2vutsw2b", "operation": "create", "collection": "app.bsky.feed.post", '
    ...         b'"rkey": "3l3qo2vuowo2b", "cid": "bafy", "record": {"$type": "app.bsky.feed.post", '
    ...         b'"text": "hello #atproto", "createdAt": "2024-09-09T19:46:02.102Z", "langs": ["en"]}}}')
    >>> batch = src.decode_batch([post, b'{"kind": "commit"}', b"not json"], received_at_us=0)
    >>> row = batch.tweets.to_pylist()[0]
    >>> row["uri"], row["text"], row["langs"], str(row["created_at"])
    ('at://did:plc:a/app.bsky.feed.post/3l3qo2vuowo2b', 'hello #atproto', ['en'], '2024-09-09 19:46:02.102000+00:00')
    >>> sorted(batch.rejected.items())
    [('malformed_json', 1), ('missing_did', 1)]
    >>> src.position([post])["time_us"]
    1725911162329308
    """

    name: ClassVar[str] = "jetstream"
    items: ClassVar[str] = "posts"
    key_columns: ClassVar[tuple[str, ...]] = ("did", "collection", "rkey", "rev")
    version_column: ClassVar[str | None] = "rev"
    can_replay: ClassVar[bool] = True
    view_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("time", "created_at"), ("did", "did"), ("text", "text"), ("langs", "langs"),
    )
    item_schema = POST_SCHEMA
    event_schema = EVENT_SCHEMA

    def __init__(self, *, host: str | None = None) -> None:
        self.host = host
        self.bad_created_at = 0
        self._newest = _Newest()
        # (the list decode_batch saw, its length, its newest time_us, identities at that time)
        self._decoded: tuple[int, int, int | None, set[str]] = (0, -1, None, set())
        self._top: int | None = None
        self._marks: set[str] = set()

    def deleted_items(self, events: Any) -> Any:
        """``(did, collection, rkey)`` of every deleted post, with the ``rev`` of the delete:
        revisions are ordered in a repository (TIDs sort as strings), so a record created
        again under the same key after its delete (a newer ``rev``) is not deleted.

        Examples
        --------
        >>> import pyarrow.dataset as pads
        >>> delete = (b'{"did": "did:plc:a", "time_us": 1725911230411980, "kind": "commit", "commit": '
        ...           b'{"rev": "3l3qo4zkqbk2b", "operation": "delete", "collection": "app.bsky.feed.post", '
        ...           b'"rkey": "3l3qo2vuowo2b"}}')
        >>> src = JetstreamSource()
        >>> src.deleted_items(pads.dataset(src.decode_batch([delete]).events)).to_pylist()
        [{'did': 'did:plc:a', 'collection': 'app.bsky.feed.post', 'rkey': '3l3qo2vuowo2b', 'rev': '3l3qo4zkqbk2b'}]
        """
        import pyarrow.compute as pc

        return events.to_table(columns=["did", "collection", "rkey", "rev"],
                               filter=pc.field("event_type") == f"delete:{POST_COLLECTION}")

    def position(self, messages: Sequence[bytes]) -> Any:
        """``{"host", "time_us", "marks"}``: the newest ``time_us`` so far and the identities
        of the events at exactly that time (None before any event)."""
        ref, n, top, marks = self._decoded
        if ref == id(messages) and n == len(messages):  # just decoded: no second parse
            if top is not None:
                self._newest.take(top, marks)
        elif messages:
            self._newest.scan(messages)
        if self._newest.time_us is None:
            return None
        return {"host": self.host, "time_us": self._newest.time_us, "marks": sorted(self._newest.marks)}

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """Raw Jetstream messages → a :class:`streamkit.schema.DecodedBatch` (never raises
        on content: bad messages are counted in ``rejected`` by reason)."""
        from streamkit.schema import DecodedBatch, _as_bytes, _received

        received = _received(received_at_us, len(messages))
        posts = _Columns(POST_SCHEMA)
        events = _Columns(EVENT_SCHEMA)
        post_index: list[int] = []
        event_index: list[int] = []
        rejected: dict[str, int] = {}
        self._top = None
        self._marks = set()

        for i, m in enumerate(messages):
            raw = _as_bytes(m)
            if isinstance(raw, str):
                rejected[raw] = rejected.get(raw, 0) + 1
                continue
            reason = self._decode_one(raw, int(received[i]), keep_raw, posts, events)
            if reason is None:
                post_index.append(i)
            elif reason == "":
                event_index.append(i)
            else:
                rejected[reason] = rejected.get(reason, 0) + 1
        self._decoded = (id(messages), len(messages), self._top, self._marks)
        return DecodedBatch(
            tweets=posts.table(), events=events.table(), rejected=rejected,
            tweet_index=np.asarray(post_index, dtype=np.int64),
            event_index=np.asarray(event_index, dtype=np.int64),
        )

    def _decode_one(self, raw: bytes, received: int, keep_raw: bool, posts: _Columns,
                    events: _Columns) -> str | None:
        """None: a post row; "": an event row; else the reason it was rejected."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "invalid_utf8"
        try:
            e = _decode_event(text)
        except msgspec.ValidationError:  # valid JSON of the wrong shape
            return "invalid_fields" if text.lstrip()[:1] == "{" else "not_an_object"
        except msgspec.DecodeError:
            return "malformed_json"
        keep = text if keep_raw else None
        kind = e.kind
        if kind == GAP_KIND:
            events.add(event_type="gap", kind="gap", time_us=_int(e.end), time=_int(e.end), received_at=received,
                       created_at=_int(e.start), detail=_s(e.reason), raw=keep)
            return ""
        if not isinstance(kind, str) or not kind:
            return "missing_kind"
        did = e.did
        if not isinstance(did, str) or not did.startswith("did:"):
            return "missing_did"
        t = e.time_us
        if type(t) is not int or not 0 < t < _MAX_US:
            return "missing_time_us"
        if self._top is None or t >= self._top:  # the resume position (see position())
            c0 = e.commit
            parts = (did, kind) + ((c0.collection, c0.rkey, c0.rev, c0.operation) if c0 is not None else ())
            digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).hexdigest()
            if self._top is None or t > self._top:
                self._top, self._marks = t, {digest}
            else:
                self._marks.add(digest)
        if kind == "commit":
            c = e.commit
            if c is None:
                return "missing_commit"
            collection, operation, rkey, rev = c.collection, c.operation, c.rkey, c.rev
            if not (isinstance(collection, str) and isinstance(operation, str) and isinstance(rkey, str)
                    and isinstance(rev, str) and collection and rkey and rev):
                return "missing_commit_fields"
            uri = f"at://{did}/{collection}/{rkey}"
            if collection == POST_COLLECTION and operation in ("create", "update"):
                if not _present(c.record):
                    return "missing_record"
                try:
                    p = _decode_post(c.record)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    return "invalid_record"
                created = _datetime_us(p.created_at)
                if created is False:
                    self.bad_created_at += 1
                    if self.bad_created_at == 1:
                        log.warning("a post has an invalid createdAt %r; stored with created_at null "
                                    "(counted in bad_created_at)", str(p.created_at)[:40])
                    created = None
                reply = _d(p.reply)
                embed = _d(p.embed)
                tags, mentions, links = _facets(p.facets)
                for tag in _strings(p.tags):
                    if tag not in tags:
                        tags.append(tag)
                posts.add(
                    did=did, collection=collection, rkey=rkey, rev=rev, operation=operation,
                    cid=_s(c.cid), uri=uri, time_us=t, time=t, created_at=created, received_at=received,
                    text=_s(p.text), langs=_strings(p.langs),
                    reply_root_uri=_s(_d(reply.get("root")).get("uri")),
                    reply_parent_uri=_s(_d(reply.get("parent")).get("uri")),
                    quote_uri=_quote_uri(embed), embed_type=_s(embed.get("$type")),
                    hashtags=tags, mentions=mentions, links=links, raw=keep,
                )
                return None
            subject = created_at = None
            if _present(c.record):
                try:
                    other = _decode_other(c.record)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    other = _Other()
                subject = _subject(other.subject)
                created = _datetime_us(other.created_at)
                created_at = created if created is not False else None
            events.add(event_type=f"{operation}:{collection}", kind=kind, did=did, time_us=t, time=t,
                       received_at=received, collection=collection,
                       operation=operation, rkey=rkey, rev=rev, cid=_s(c.cid), uri=uri, subject=subject,
                       created_at=created_at, raw=keep)
            return ""
        if kind == "identity":
            ident = _d(e.identity)
            created = _datetime_us(ident.get("time"))
            events.add(event_type=kind, kind=kind, did=did, time_us=t, time=t, received_at=received,
                       created_at=created if created is not False else None, handle=_s(ident.get("handle")),
                       seq=_int(ident.get("seq")), raw=keep)
            return ""
        if kind == "account":
            acct = _d(e.account)
            created = _datetime_us(acct.get("time"))
            active = acct.get("active")
            events.add(event_type=kind, kind=kind, did=did, time_us=t, time=t, received_at=received,
                       created_at=created if created is not False else None,
                       active=active if isinstance(active, bool) else None, status=_s(acct.get("status")),
                       seq=_int(acct.get("seq")), raw=keep)
            return ""
        # A kind this version does not know: kept, so nothing the service sends is lost.
        events.add(event_type=kind, kind=kind, did=did, time_us=t, time=t, received_at=received, raw=keep)
        return ""
