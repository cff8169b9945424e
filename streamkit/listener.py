"""``StreamListener``: the Tweepy 3.x callback set.

The stream calls :meth:`StreamListener.on_data` with each raw message;
the default ``on_data`` decodes it and calls the callback for its kind. All
callbacks run on one thread, the stream's dispatch thread, never on the
network thread. Any callback that returns exactly ``False`` ends the stream.

Where this differs from Tweepy 3.x
----------------------------------
* ``on_error`` by default keeps retrying (with back-off) on 420, 429 and
  5xx, and stops on errors that retrying cannot fix (401, 403, 404, 406,
  413, 416) with a typed error on ``stream.exception``. Tweepy 3.x stopped on
  every error.
* Malformed JSON is counted and logged and the stream goes on; Tweepy
  raised and ended the stream.
* ``on_disconnect`` and ``on_warning`` receive the whole notice dict.
* ``raw_data`` is a ``str`` as in Tweepy; a subclass that sets
  ``raw_bytes = True`` receives the undecoded ``bytes`` (the fast path used
  by ``collect()``).

Examples
--------
>>> class Printer(StreamListener):
...     def on_status(self, status):
...         print(status.user.screen_name, status.full_text)
>>> Printer().on_data('{"id": 1, "text": "hi", "user": {"screen_name": "ada"}, '
...                   '"in_reply_to_status_id": null}')
ada hi
>>> class Stopper(StreamListener):
...     def on_error(self, status_code):
...         return False
>>> Stopper().on_error(420)
False
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from ._exceptions import ProtocolError
from ._schema_events import message_kind
from .models import Model, Status

__all__ = ["FATAL_STATUS_CODES", "MessageError", "StreamListener"]

log = logging.getLogger("streamkit.stream")

FATAL_STATUS_CODES = frozenset({400, 401, 403, 404, 406, 413, 416})
"""HTTP statuses that retrying cannot fix: the default ``on_error`` stops on them."""

_decode = msgspec.json.Decoder().decode


class MessageError(ProtocolError):
    """A message could not be decoded (malformed JSON, not an object).

    The stream counts and logs it and goes on; it is raised by ``on_data``
    only so that the stream can tell bad input from a bug in user code.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _decode_object(raw_data: str | bytes) -> dict[str, Any]:
    """One message as a JSON object; :class:`MessageError` when it is not one."""
    try:
        data = _decode(raw_data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MessageError("malformed_json", f"malformed JSON message: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("not_an_object", "message is JSON but not an object")
    return data


class StreamListener:
    """Receives what a :class:`~streamkit.Stream` reads. Override the callbacks you need.

    Parameters
    ----------
    api : API, optional
        Kept as ``self.api`` for Tweepy compatibility.

    Notes
    -----
    The contract: every method may return ``False`` to end the stream; any
    other return value (``None`` included) lets it go on. An exception
    raised by a callback reaches :meth:`on_exception`, ends the stream and is
    kept on ``stream.exception`` (and re-raised by a synchronous ``filter``).
    """

    raw_bytes = False
    """Set ``True`` in a subclass to receive undecoded ``bytes`` in ``on_data``."""

    on_batch = None
    """Optional fast path: a subclass may define ``on_batch(messages)``.

    When defined, the stream calls it with each list of raw ``bytes``
    messages read together, instead of ``on_data`` once per message.
    Returning ``False`` ends the stream.
    """

    def __init__(self, api: Any = None) -> None:
        self.api = api

    # -- connection lifecycle -------------------------------------------------
    def on_connect(self) -> Any:
        """Called after each successful connection (HTTP 200)."""

    def keep_alive(self) -> Any:
        """Called for each keep-alive newline."""

    def on_timeout(self) -> Any:
        """Called when the stream stalled (no byte for ``timeout`` s); it then reconnects."""

    def on_error(self, status_code: int) -> Any:
        """Called when the endpoint answers an HTTP error.

        Return ``False`` to stop. The default retries with back-off on 420,
        429 and 5xx and stops on statuses that retrying cannot fix
        (:data:`FATAL_STATUS_CODES`); the stream then holds a typed error
        saying what to check.
        """
        if status_code in FATAL_STATUS_CODES:
            return False
        return None

    def on_exception(self, exception: BaseException) -> Any:
        """Called with an exception raised by another callback, before the stream stops."""

    # -- messages --------------------------------------------------------------
    def on_data(self, raw_data: str | bytes) -> Any:
        """Decode one raw message and call the callback for its kind.

        Raises
        ------
        MessageError
            When ``raw_data`` is not a JSON object (the stream counts it).
        """
        data = _decode_object(raw_data)
        kind = message_kind(data)
        if kind == "status":
            return self.on_status(Status.parse(data, self.api))
        if kind == "delete":
            status = data["delete"].get("status", {}) if isinstance(data["delete"], dict) else {}
            return self.on_delete(status.get("id"), status.get("user_id"))
        if kind == "limit":
            limit = data["limit"]
            return self.on_limit(limit.get("track") if isinstance(limit, dict) else None)
        if kind in ("event", "direct_message"):
            return getattr(self, "on_" + kind)(Model.parse(data, self.api))
        if kind == "friends":
            return self.on_friends(data.get("friends", data.get("friends_str")))
        if kind == "unknown":
            log.warning("unknown message type (keys: %s); ignored", ", ".join(sorted(data)[:10]))
            return None
        return getattr(self, "on_" + kind)(data[kind])

    def on_status(self, status: Status) -> Any:
        """Called with each new status."""

    def on_delete(self, status_id: int | None, user_id: int | None) -> Any:
        """Called when a delete notice arrives for a status."""

    def on_limit(self, track: int | None) -> Any:
        """Called with a limit notice: ``track`` statuses matched but were withheld."""

    def on_disconnect(self, notice: dict[str, Any]) -> Any:
        """Called with the server's ``disconnect`` notice (codes 1-12) before it closes."""

    def on_warning(self, notice: dict[str, Any]) -> Any:
        """Called with a ``warning`` notice such as ``FALLING_BEHIND``."""

    def on_scrub_geo(self, notice: dict[str, Any]) -> Any:
        """Called with a ``scrub_geo`` notice: remove location data up to a status id."""

    def on_status_withheld(self, notice: dict[str, Any]) -> Any:
        """Called with a ``status_withheld`` notice."""

    def on_user_withheld(self, notice: dict[str, Any]) -> Any:
        """Called with a ``user_withheld`` notice."""

    def on_event(self, status: Model) -> Any:
        """Called with a user-stream ``event`` message."""

    def on_direct_message(self, status: Model) -> Any:
        """Called with a ``direct_message``."""

    def on_friends(self, friends: list[int] | None) -> Any:
        """Called with a user stream's friends list."""
