"""What differs from one live source to another, behind one small contract.

streamkit captures every source the same way: :class:`~streamkit.Stream`'s reader thread
(connect, back off, detect stalls, frame) hands lists of raw messages to a listener; in
``collect()`` they go to the write-ahead log and a writer decodes them once into Arrow
columns and commits Parquet part files. A source supplies only what differs:

* an :class:`Endpoint` — how to reach it (HTTP or WebSocket request, framing, keep-alive
  promise, where a connection resumes from), used by the reader thread;
* a :class:`Source` — how its messages decode into the dataset (the item and events
  tables, the dedupe key, the resume position of a committed batch), used by the writer,
  and how a reader turns stored rows into current items (versions and deletes, below).

Contract of versions and deletes (used by :func:`streamkit.read` for every source)
---------------------------------------------------------------------------------
The writer stores every row it receives once per :attr:`Source.key_columns`. Some sources
send new versions of an item (a Mastodon edit, a Bluesky post update) and in-stream deletes
(a Twitter delete notice, a Mastodon ``delete`` event, a Bluesky post delete): these are
kept as they came, and the reader applies them:

* :attr:`Source.version_column` names the key column that orders the versions of one item
  (newest wins; a null version is the original, older than any other). None: one row per
  item. :attr:`Source.identity_columns` is the key without it: what one item is.
* :meth:`Source.deleted_items` reads the delete events out of the events table and returns
  the deleted identities as an Arrow table with :attr:`Source.identity_columns` (and, for a
  source whose identities can come back after a delete, :attr:`Source.version_column`: the
  version of the delete, so that only versions up to it are deleted). None: no in-stream
  deletes.

``read(path)`` sorts by identity and version, keeps the newest version of each identity
(unless ``all_versions=True``) and drops deleted identities with an anti-join (unless
``include_deleted=True``).

Contract of a framer (returned by :meth:`Endpoint.framer`)
----------------------------------------------------------
``feed(data: bytes) -> list[bytes]``: the complete messages these bytes finish, raw as
received (never decoded). A partial message waits for the next ``feed``; ``reset()`` drops
it; ``pending_bytes`` is its size (a connection that breaks with bytes pending counts as an
incomplete message). ``stats`` has at least ``keepalives``, ``oversized`` and
``length_mismatches`` (see :class:`streamkit.framing.FramingStats`). A framer for a
protocol with control frames (WebSocket ping) may queue bytes to send in ``outgoing``.

Examples
--------
>>> from streamkit.sources.base import Request
>>> Request("GET", "https://example.org/stream", params={"a": "1"}).method
'GET'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Endpoint", "Request", "Source"]


@dataclass
class Request:
    """One connection attempt: what the reader thread sends.

    Attributes
    ----------
    method : str
        ``GET`` or ``POST`` (HTTP); ``GET`` for a WebSocket upgrade.
    url : str
        Full URL (``https://``, ``http://`` for loopback only, ``wss://``/``ws://``).
    params : dict
        Query parameters (or the form body of a POST).
    headers : dict
        Extra headers (``Last-Event-ID``, ``User-Agent``, ``Authorization``...).
        Never logged: they may hold a token.
    send : list of str
        WebSocket only: text messages to send once the connection is open
        (Mastodon's ``{"type": "subscribe", ...}``).
    """

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    send: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # headers may carry a token: never shown
        return f"Request({self.method} {self.url} params={sorted(self.params)})"


class Endpoint:
    """How the reader thread reaches one source. Subclass per source.

    The reader thread calls :meth:`request` before every connection attempt (so resume
    state travels with reconnects), feeds the body to :meth:`framer`'s ``feed``, and calls
    :meth:`observe` with every list of messages it hands on (cheap work only: it runs on
    the network thread). Everything here must be thread-safe with respect to that one
    reader thread; nothing here touches a file.

    Attributes
    ----------
    name : str
        The source's name, as in :data:`streamkit.sources.SOURCES`.
    transport : str
        ``"http"`` (a long-lived response body) or ``"websocket"``.
    stall_timeout : float or None
        A suitable stall timeout for this source (its keep-alive promise plus slack),
        used when the caller does not set ``timeout``.
    """

    name: ClassVar[str] = "base"
    transport: ClassVar[str] = "http"
    stall_timeout: ClassVar[float | None] = None

    def request(self) -> Request:
        """The request for the next connection attempt (resume position included)."""
        raise NotImplementedError

    def framer(self, max_message_bytes: int) -> Any:
        """A fresh framer for one connection (see the module docstring)."""
        from streamkit.framing import Framer

        return Framer(max_message_bytes)

    def observe(self, messages: Sequence[bytes]) -> None:
        """Note the resume position of messages just received (reader thread; cheap)."""

    def resume_from(self, position: Any) -> None:
        """Start from a stored resume position (see :meth:`Source.position`)."""

    def routine_close(self, seconds_connected: float) -> bool:
        """True when the server ending the response is routine, not a fault (no back-off).

        Wikimedia EventStreams closes every connection after about 15 minutes.
        """
        return False

    def http_error_help(self, status_code: int) -> str | None:
        """What an HTTP status from this source means and what to do, in the source's own
        terms (which token, which variable), or None for the generic wording. Never include
        a secret: the text goes into the exception and the log."""
        return None

    def take_gaps(self) -> list[tuple[float | None, float, str]]:
        """Spans since the last call that the source could not resend or fill in (a failed
        gap fill, a replay cursor the server clamped): ``(start, end, reason)`` in epoch
        seconds, start None when unknown. ``collect()`` records them in the manifest."""
        return []

    def gap_fill(self, session: Any) -> list[bytes]:
        """Messages to fetch after a reconnect to cover the gap (Mastodon's REST
        timeline with ``min_id``); raw JSON each, as if streamed. Default: none."""
        return []


class Source:
    """How one source's messages land in the dataset (the writer side). Subclass per source.

    Attributes
    ----------
    name : str
        As in :data:`streamkit.sources.SOURCES`; stored in the manifest.
    items : str
        Folder of the item table (``"tweets"``, ``"posts"``, ``"changes"``...).
    item_schema, event_schema : pyarrow.Schema
        The explicit schemas of the two tables (never inferred).
    key_columns : tuple of str
        The columns whose values identify a stored row, one row per key (tweet id;
        Jetstream's ``(did, collection, rkey, rev)``; Wikimedia ``meta_id``; Mastodon's
        ``(instance, id, edited_at)``).
    version_column : str or None
        The key column that orders the versions of one item, newest wins, null oldest
        (Mastodon ``edited_at``, Jetstream ``rev``); None when each item has one row.
    identity_columns : tuple of str
        :attr:`key_columns` without :attr:`version_column`: what identifies one item
        whatever its version (read-only).
    can_replay : bool
        Whether the source can resend what was missed since a resume position.
    view_columns : tuple of (str, str)
        (heading, column) pairs of the notebook panel's live table.
    """

    name: ClassVar[str] = "base"
    items: ClassVar[str] = "items"
    key_columns: ClassVar[tuple[str, ...]] = ()
    version_column: ClassVar[str | None] = None
    can_replay: ClassVar[bool] = False
    view_columns: ClassVar[tuple[tuple[str, str], ...]] = (("time", "created_at"), ("text", "text"))
    item_schema: Any = None
    event_schema: Any = None

    @property
    def identity_columns(self) -> tuple[str, ...]:
        """:attr:`key_columns` without :attr:`version_column`: what one item is.

        Examples
        --------
        >>> class Versioned(Source):
        ...     key_columns = ("instance", "id", "edited_at")
        ...     version_column = "edited_at"
        >>> Versioned().identity_columns, Source().identity_columns
        (('instance', 'id'), ())
        """
        return tuple(c for c in self.key_columns if c != self.version_column)

    def deleted_items(self, events: Any) -> Any:
        """The items that in-stream delete events removed, or None (the default) when the
        source has none.

        Parameters
        ----------
        events : pyarrow.dataset.Dataset
            The dataset's events table (:attr:`event_schema`); read only the columns needed,
            with a filter (``events.to_table(columns=[...], filter=...)``).

        Returns
        -------
        pyarrow.Table or None
            One row per delete with the :attr:`identity_columns` (same names; types that
            cast to the item table's), optionally also :attr:`version_column`: the version
            of the delete itself, when an item can come back after it (then only the
            versions up to it count as deleted). Repeats and null identities are allowed.
        """
        return None

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """Raw messages → :class:`streamkit.schema.DecodedBatch` (``tweets`` holds the item
        table, in :attr:`item_schema`). Never raises on message content: bad messages are
        counted in ``rejected`` by reason."""
        raise NotImplementedError

    def position(self, messages: Sequence[bytes]) -> Any:
        """The resume position after these messages (JSON-serialisable), or None.

        Stored with each commit, atomically with it; a restarted capture passes it to
        :meth:`Endpoint.resume_from`.
        """
        return None
