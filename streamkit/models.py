"""Attribute access over the JSON of a status, as Tweepy's models give it.

``status.user.screen_name``, ``status.retweeted_status.id`` and
``status.entities["hashtags"]`` all work; ``status._json`` is the original
dict. ``created_at`` fields become timezone-aware :class:`~datetime.datetime`
objects (UTC), as Tweepy parses them.

Long tweets
-----------
Since 2017 a status longer than 140 characters arrives with ``truncated``
set, a cut ``text`` and the whole text in ``extended_tweet.full_text``.
:attr:`Status.full_text` hides this: it returns the complete text of any
status, and for a retweet the complete text of the retweeted status behind
``"RT @user: "``.

Examples
--------
>>> s = Status.parse({"id": 1, "text": "short…", "truncated": True,
...                   "extended_tweet": {"full_text": "the whole long text"},
...                   "user": {"screen_name": "ada"},
...                   "created_at": "Wed Oct 10 20:19:24 +0000 2018"})
>>> s.user.screen_name, s.full_text
('ada', 'the whole long text')
>>> s.created_at.isoformat()
'2018-10-10T20:19:24+00:00'
>>> s.extended_tweet["full_text"] == s.extended_tweet.full_text
True
>>> s._json["text"]
'short…'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

__all__ = ["Model", "Status", "User", "parse_twitter_time"]

_M = TypeVar("_M", bound="Model")

_TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"


def parse_twitter_time(value: str) -> datetime | None:
    """Parse Twitter's ``Wed Oct 10 20:19:24 +0000 2018`` into an aware datetime.

    Returns ``None`` for anything that is not in that format.

    Examples
    --------
    >>> parse_twitter_time("Wed Oct 10 20:19:24 +0000 2018").year
    2018
    >>> parse_twitter_time("yesterday") is None
    True
    """
    try:
        return datetime.strptime(value, _TWITTER_TIME)
    except (TypeError, ValueError):
        return None


def _wrap(key: str | None, value: Any) -> Any:
    if isinstance(value, dict):
        cls = _CLASSES.get(key or "", Model)
        return cls(value)
    if isinstance(value, list):
        return [_wrap(None, v) for v in value]
    if key == "created_at" and isinstance(value, str):
        parsed = parse_twitter_time(value)
        return value if parsed is None else parsed
    return value


class Model:
    """Read-only attribute and item access over a JSON object.

    Parameters
    ----------
    json : dict
        The decoded JSON object; kept as ``_json``.
    """

    __slots__ = ("_cache", "_json")

    def __init__(self, json: dict[str, Any]) -> None:
        object.__setattr__(self, "_json", json)
        object.__setattr__(self, "_cache", {})

    @classmethod
    def parse(cls: type[_M], json: dict[str, Any], api: Any = None) -> _M:
        """Build a model from a decoded JSON object (Tweepy's signature)."""
        return cls(json)

    def __getattr__(self, name: str) -> Any:
        cache = self._cache
        if name in cache:
            return cache[name]
        try:
            value = self._json[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} "
                f"(keys: {', '.join(sorted(self._json)[:12])})"
            ) from None
        wrapped = cache[name] = _wrap(name, value)
        return wrapped

    def __getitem__(self, key: str) -> Any:
        return self.__getattr__(key) if isinstance(key, str) else self._json[key]

    def __contains__(self, key: object) -> bool:
        return key in self._json

    def get(self, key: str, default: Any = None) -> Any:
        """Return ``self[key]``, or ``default`` when the key is absent."""
        return self[key] if key in self._json else default

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; copy ._json to change it")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other._json == self._json

    __hash__ = None  # type: ignore[assignment]

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._json))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._json!r})"


class User(Model):
    """A user object (``status.user``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"User(id={self._json.get('id')!r}, screen_name={self._json.get('screen_name')!r})"


class Status(Model):
    """A status (tweet).

    Examples
    --------
    >>> rt = Status.parse({"id": 2, "text": "RT @ada: cut…", "user": {"screen_name": "bob"},
    ...     "retweeted_status": {"id": 1, "text": "cut…", "user": {"screen_name": "ada"},
    ...                          "extended_tweet": {"full_text": "complete"}}})
    >>> rt.retweeted_status.id, rt.full_text
    (1, 'RT @ada: complete')
    """

    __slots__ = ()

    @property
    def full_text(self) -> str | None:
        """The complete text: ``extended_tweet.full_text``, ``full_text`` or ``text``.

        For a retweet, ``"RT @user: "`` and the retweeted status's full text,
        since a retweet's own ``text`` is cut at 140 characters.
        """
        j = self._json
        rt = j.get("retweeted_status")
        if isinstance(rt, dict):
            inner = Status(rt).full_text
            name = (rt.get("user") or {}).get("screen_name") if isinstance(rt.get("user"), dict) else None
            if inner is not None and name:
                return f"RT @{name}: {inner}"
        ext = j.get("extended_tweet")
        if isinstance(ext, dict) and isinstance(ext.get("full_text"), str):
            return ext["full_text"]
        for key in ("full_text", "text"):
            if isinstance(j.get(key), str):
                return j[key]
        return None

    def __repr__(self) -> str:
        user = self._json.get("user")
        name = user.get("screen_name") if isinstance(user, dict) else None
        text = self._json.get("text")
        if isinstance(text, str) and len(text) > 40:
            text = text[:40] + "…"
        return f"Status(id={self._json.get('id')!r}, user={name!r}, text={text!r})"


_CLASSES: dict[str, type[Model]] = {
    "user": User,
    "retweeted_status": Status,
    "quoted_status": Status,
}
