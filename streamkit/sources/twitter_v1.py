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

__all__ = ["TwitterV1Endpoint", "TwitterV1Source"]


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

    def __init__(self) -> None:
        from streamkit import schema

        self.item_schema = schema.TWEET_SCHEMA
        self.event_schema = schema.EVENT_SCHEMA

    def decode_batch(
        self, messages: Sequence[bytes], *, received_at_us: Any = None, keep_raw: bool = True
    ) -> Any:
        """:func:`streamkit.schema.decode_batch`."""
        from streamkit import schema

        return schema.decode_batch(messages, received_at_us=received_at_us, keep_raw=keep_raw)
