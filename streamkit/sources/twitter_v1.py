"""Twitter's v1.1 streaming endpoints (``statuses/filter``, ``statuses/sample``).

The first source streamkit spoke, and the one :class:`streamkit.Stream`'s ``filter()`` and
``sample()`` use. The v1.1 endpoints are retired at twitter.com; they live on in archives,
compatible services and :class:`streamkit.testing.StreamServer`.

Examples
--------
>>> ep = TwitterV1Endpoint("POST", "https://stream.twitter.com", "/1.1/statuses/filter.json",
...                        {"track": "python"})
>>> ep.request()
Request(POST https://stream.twitter.com/1.1/statuses/filter.json params=['track'])
>>> TwitterV1Source().key_columns
('id',)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .base import Endpoint, Request, Source

__all__ = ["SOURCE_CLASS", "TwitterV1Endpoint", "TwitterV1Source", "open_source"]


class TwitterV1Endpoint(Endpoint):
    """``statuses/filter`` (POST, form body) or ``statuses/sample`` (GET).

    Parameters
    ----------
    method : {"POST", "GET"}
    base_url : str
        ``https://stream.twitter.com`` or a compatible server.
    path : str
        ``/1.1/statuses/filter.json`` or ``/1.1/statuses/sample.json``.
    params : dict
        The filter (see :func:`streamkit.streaming.build_filter_params`).
    """

    name: ClassVar[str] = "twitter-v1.1"
    transport: ClassVar[str] = "http"
    stall_timeout: ClassVar[float | None] = 90.0

    def __init__(self, method: str, base_url: str, path: str, params: dict[str, str]) -> None:
        self.method = method
        self.base_url = base_url
        self.path = path
        self.params = dict(params)

    def request(self) -> Request:
        """The same request every time: v1.1 streams cannot resume."""
        return Request(self.method, self.base_url + self.path, params=dict(self.params))


class TwitterV1Source(Source):
    """v1.1 statuses into :data:`streamkit.schema.TWEET_SCHEMA` (see :mod:`streamkit.schema`)."""

    name: ClassVar[str] = "twitter-v1.1"
    items: ClassVar[str] = "tweets"
    key_columns: ClassVar[tuple[str, ...]] = ("id",)
    can_replay: ClassVar[bool] = False
    view_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("time", "created_at"), ("user", "user_screen_name"), ("text", "text"), ("lang", "lang"), ("type", "tweet_type"),
    )

    def __init__(self) -> None:
        from streamkit import schema

        self.item_schema = schema.TWEET_SCHEMA
        self.event_schema = schema.EVENT_SCHEMA

    def deleted_items(self, events: Any) -> Any:
        """The ``id`` of every tweet a delete notice (``{"delete": {"status": ...}}``) named.

        Examples
        --------
        >>> import pyarrow as pa, pyarrow.dataset as pads
        >>> from streamkit import schema
        >>> rows = [{"event_type": "delete", "status_id": 5}, {"event_type": "limit", "status_id": 6}]
        >>> t = pa.Table.from_pylist([{**dict.fromkeys(schema.EVENT_SCHEMA.names), **r, "received_at": 0}
        ...                           for r in rows], schema=schema.EVENT_SCHEMA)
        >>> TwitterV1Source().deleted_items(pads.dataset(t)).to_pydict()
        {'id': [5]}
        """
        import pyarrow.compute as pc

        table = events.to_table(columns=["status_id"], filter=pc.field("event_type") == "delete")
        return table.rename_columns(["id"])

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """:func:`streamkit.schema.decode_batch`."""
        from streamkit import schema

        return schema.decode_batch(messages, received_at_us=received_at_us, keep_raw=keep_raw)


SOURCE_CLASS = TwitterV1Source


def open_source(
    *,
    base_url: str | None = None,
    track: Any = None,
    follow: Any = None,
    locations: Any = None,
    languages: Any = None,
    filter_level: str | None = None,
    stall_warnings: bool = False,
    sample: bool = False,
) -> tuple[TwitterV1Endpoint, TwitterV1Source]:
    """The v1.1 filter (or, with ``sample=True``, sample) endpoint and its decoder.

    Examples
    --------
    >>> ep, src = open_source(track=["python"], base_url="http://127.0.0.1:8080")
    >>> ep.request().params["track"], src.items
    ('python', 'tweets')
    """
    from streamkit.streaming import DEFAULT_BASE_URL, build_filter_params

    base = base_url or DEFAULT_BASE_URL
    if sample:
        return TwitterV1Endpoint("GET", base, "/1.1/statuses/sample.json", {}), TwitterV1Source()
    params = build_filter_params(track=track, follow=follow, locations=locations, languages=languages,
                                 filter_level=filter_level, stall_warnings=stall_warnings)
    return TwitterV1Endpoint("POST", base, "/1.1/statuses/filter.json", params), TwitterV1Source()
