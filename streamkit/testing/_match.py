"""Parse, validate and apply v1.1 streaming filter predicates.

The rules follow Twitter's documentation of ``statuses/filter``:

* ``track``: comma-separated phrases (OR); a phrase is space-separated terms
  that must all appear (AND), case-insensitively, in the text, hashtags,
  mentions or expanded/display URLs of the status -- or of the status it
  retweets or quotes.  A term made of word characters matches whole tokens
  only ("python" matches "#Python" and "python.org" but not "pythonic").
* ``follow``: the status is authored by, replies to, or is a retweet of a
  followed user id.
* ``locations``: ``west,south,east,north`` boxes; the point in ``coordinates``
  must lie inside a box, or, without coordinates, the ``place`` bounding box
  must intersect one.
* The three predicates are ORed; ``language`` and ``filter_level`` then narrow
  the result (AND).

Examples
--------
>>> f = StreamFilter.from_options(track=["climate change", "#python"])
>>> f.matches({"text": "Climate policy and change", "lang": "en"})
True
>>> f.matches({"text": "pythonic code", "lang": "en"})
False
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigError

__all__ = ["FILTER_LEVELS", "ParamError", "StreamFilter", "match_status"]

FILTER_LEVELS = ("none", "low", "medium")
_LEVEL_RANK = {name: rank for rank, name in enumerate(FILTER_LEVELS)}

MAX_TRACK = 400
MAX_TRACK_BYTES = 60
MAX_FOLLOW = 5000
MAX_BOXES = 25

_WORD = re.compile(r"\w+")
_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


class ParamError(Exception):
    """A request parameter Twitter would refuse; carries the HTTP status (406/413/416)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _values(params: Mapping[str, list[str]], name: str) -> str | None:
    vals = params.get(name)
    if not vals:
        return None
    return ",".join(vals)


@dataclass(frozen=True)
class StreamFilter:
    """A parsed, validated filter: what one streaming connection asked for.

    Build it with :meth:`from_params` (HTTP parameters, raising
    :class:`ParamError`) or :meth:`from_options` (Python values, raising
    :class:`~streamkit.ConfigError`).  An empty filter (``sample``) matches
    everything that passes ``languages`` and ``filter_level``.
    """

    track: tuple[tuple[str, ...], ...] = ()
    follow: frozenset[int] = frozenset()
    locations: tuple[tuple[float, float, float, float], ...] = ()
    languages: frozenset[str] = frozenset()
    filter_level: str = "none"

    # -- construction -----------------------------------------------------
    @classmethod
    def from_params(cls, params: Mapping[str, list[str]], *, sample: bool = False) -> StreamFilter:
        """Validate HTTP parameters as Twitter did; raise :class:`ParamError`."""
        if params.get("count"):
            raise ParamError(416, "Range Unacceptable: the count parameter needs elevated "
                                  "access; remove it.")
        track: list[tuple[str, ...]] = []
        follow: set[int] = set()
        boxes: list[tuple[float, float, float, float]] = []
        if not sample:
            raw_track = _values(params, "track")
            if raw_track is not None:
                phrases = raw_track.split(",")
                if len(phrases) > MAX_TRACK:
                    raise ParamError(413, f"Too Long: track has {len(phrases)} phrases; "
                                          f"at most {MAX_TRACK} are allowed.")
                for i, phrase in enumerate(phrases):
                    terms = tuple(t.lower() for t in phrase.split())
                    if not terms:
                        raise ParamError(406, f"Parameter track item index {i} too short: "
                                              f"{phrase!r}")
                    if len(phrase.strip().encode("utf-8")) > MAX_TRACK_BYTES:
                        raise ParamError(406, f"Parameter track item index {i} too long: "
                                              f"{phrase[:80]!r} (max {MAX_TRACK_BYTES} bytes)")
                    track.append(terms)
            raw_follow = _values(params, "follow")
            if raw_follow is not None:
                ids = [s.strip() for s in raw_follow.split(",")]
                if len(ids) > MAX_FOLLOW:
                    raise ParamError(413, f"Too Long: follow has {len(ids)} user ids; "
                                          f"at most {MAX_FOLLOW} are allowed.")
                for s in ids:
                    if not s.isdigit() or not 0 < int(s) < 2**63:
                        raise ParamError(406, f"Parameter follow contains an invalid user id: "
                                              f"{s[:40]!r}")
                    follow.add(int(s))
            raw_loc = _values(params, "locations")
            if raw_loc is not None:
                boxes = _parse_locations(raw_loc)
            if not (track or follow or boxes):
                raise ParamError(406, "No filter parameters found. Expect at least one "
                                      "parameter: follow track locations")
        languages: set[str] = set()
        raw_lang = _values(params, "language")
        if raw_lang is not None:
            for code in raw_lang.split(","):
                code = code.strip().lower()
                if not _LANG.match(code):
                    raise ParamError(406, f"Parameter language contains an invalid code: "
                                          f"{code[:20]!r}")
                languages.add(code)
        level = (_values(params, "filter_level") or "none").strip().lower()
        if level not in _LEVEL_RANK:
            raise ParamError(406, f"Parameter filter_level must be one of none, low, medium; "
                                  f"got {level[:20]!r}")
        delimited = _values(params, "delimited")
        if delimited is not None and delimited != "length":
            raise ParamError(406, f"Parameter delimited must be 'length'; got {delimited[:20]!r}")
        return cls(tuple(track), frozenset(follow), tuple(boxes), frozenset(languages), level)

    @classmethod
    def from_options(
        cls,
        *,
        track: str | Iterable[str] | None = None,
        follow: str | Iterable[int | str] | None = None,
        locations: str | Iterable[Any] | None = None,
        languages: str | Iterable[str] | None = None,
        filter_level: str | None = None,
    ) -> StreamFilter:
        """Build a filter from Python values (lists or comma-separated strings).

        Raises
        ------
        ConfigError
            When Twitter would have refused the same parameters.
        """
        params: dict[str, list[str]] = {}
        for name, value in (("track", track), ("follow", follow),
                            ("locations", _flatten_boxes(locations)), ("language", languages)):
            if value is None:
                continue
            params[name] = [value if isinstance(value, str) else ",".join(map(str, value))]
        if filter_level is not None:
            params["filter_level"] = [filter_level]
        sample = not any(k in params for k in ("track", "follow", "locations"))
        try:
            return cls.from_params(params, sample=sample)
        except ParamError as exc:
            raise ConfigError(f"invalid stream filter: {exc.message}") from exc

    # -- matching ----------------------------------------------------------
    @property
    def is_sample(self) -> bool:
        """True when no track/follow/locations predicate is set."""
        return not (self.track or self.follow or self.locations)

    def matches(self, status: Mapping[str, Any]) -> bool:
        """Whether Twitter would deliver *status* on a stream with this filter."""
        if self.languages and status.get("lang") not in self.languages:
            return False
        if _LEVEL_RANK.get(status.get("filter_level") or "low", 1) < _LEVEL_RANK[self.filter_level]:
            return False
        if self.is_sample:
            return True
        if self.follow and _matches_follow(status, self.follow):
            return True
        if self.locations and _matches_locations(status, self.locations):
            return True
        if self.track:
            tokens, blob = _searchable(status)
            for phrase in self.track:
                if all((t in tokens) if _WORD.fullmatch(t) else (t in blob) for t in phrase):
                    return True
        return False

    def key(self) -> tuple[Any, ...]:
        """A hashable, order-independent identity (for caching per-filter state)."""
        return (tuple(sorted(self.track)), tuple(sorted(self.follow)), self.locations,
                tuple(sorted(self.languages)), self.filter_level)


def _flatten_boxes(locations: Any) -> Any:
    if locations is None or isinstance(locations, str):
        return locations
    flat: list[float] = []
    for item in locations:
        if isinstance(item, (list, tuple)):
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def _parse_locations(raw: str) -> list[tuple[float, float, float, float]]:
    try:
        nums = [float(s) for s in raw.split(",")]
    except ValueError:
        raise ParamError(406, f"Parameter locations must be comma-separated numbers: "
                              f"{raw[:80]!r}") from None
    if not nums or len(nums) % 4:
        raise ParamError(406, f"Parameter locations needs groups of 4 numbers "
                              f"(west,south,east,north); got {len(nums)}")
    if len(nums) // 4 > MAX_BOXES:
        raise ParamError(413, f"Too Long: {len(nums) // 4} location boxes; at most "
                              f"{MAX_BOXES} are allowed.")
    boxes = []
    for i in range(0, len(nums), 4):
        w, s, e, n = nums[i:i + 4]
        if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
            raise ParamError(406, f"Parameter locations box {i // 4} is out of range: "
                                  f"{nums[i:i + 4]}")
        if w > e or s > n:
            raise ParamError(406, f"Parameter locations box {i // 4} must list the south-west "
                                  f"corner first: {nums[i:i + 4]}")
        boxes.append((w, s, e, n))
    return boxes


def _matches_follow(status: Mapping[str, Any], follow: frozenset[int]) -> bool:
    user = status.get("user") or {}
    if user.get("id") in follow or status.get("in_reply_to_user_id") in follow:
        return True
    rt = status.get("retweeted_status")
    return rt is not None and (rt.get("user") or {}).get("id") in follow


def _matches_locations(status: Mapping[str, Any], boxes: Any) -> bool:
    coords = status.get("coordinates")
    if coords:
        lon, lat = coords["coordinates"]
        return any(w <= lon <= e and s <= lat <= n for w, s, e, n in boxes)
    place = status.get("place")
    if place and place.get("bounding_box"):
        ring = place["bounding_box"]["coordinates"][0]
        pw = min(p[0] for p in ring)
        pe = max(p[0] for p in ring)
        ps = min(p[1] for p in ring)
        pn = max(p[1] for p in ring)
        return any(pw <= e and w <= pe and ps <= n and s <= pn for w, s, e, n in boxes)
    return False


def _searchable(status: Mapping[str, Any]) -> tuple[set[str], str]:
    parts: list[str] = []
    _collect_text(status, parts, depth=0)
    blob = " ".join(parts).lower()
    return set(_WORD.findall(blob)), blob


def _collect_text(status: Mapping[str, Any], parts: list[str], depth: int) -> None:
    ext = status.get("extended_tweet")
    if ext:
        parts.append(ext.get("full_text", ""))
        entities = ext.get("entities") or {}
    else:
        parts.append(status.get("text") or "")
        entities = status.get("entities") or {}
    for tag in entities.get("hashtags", ()):
        parts.append(tag.get("text", ""))
    for mention in entities.get("user_mentions", ()):
        parts.append(mention.get("screen_name", ""))
    for key in ("urls", "media"):
        for url in entities.get(key, ()):
            parts.append(url.get("expanded_url") or "")
            parts.append(url.get("display_url") or "")
    if depth == 0:
        for key in ("retweeted_status", "quoted_status"):
            nested = status.get(key)
            if nested:
                _collect_text(nested, parts, depth + 1)


def match_status(
    status: Mapping[str, Any],
    *,
    track: str | Iterable[str] | None = None,
    follow: str | Iterable[int | str] | None = None,
    locations: str | Iterable[Any] | None = None,
    languages: str | Iterable[str] | None = None,
) -> bool:
    """Whether a v1.1 stream with these filter parameters would deliver *status*.

    Parameters
    ----------
    status : mapping
        A decoded v1.1 status.
    track, follow, locations, languages
        As for ``statuses/filter``: lists, or comma-separated strings.

    Returns
    -------
    bool

    Examples
    --------
    >>> match_status({"text": "I love #Python", "lang": "en"}, track=["python"])
    True
    >>> match_status({"text": "x", "user": {"id": 7}}, follow=[7])
    True
    """
    flt = StreamFilter.from_options(track=track, follow=follow, locations=locations,
                                    languages=languages)
    return flt.matches(status)
