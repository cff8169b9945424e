"""Typed msgspec views of a v1.1 status: only the fields the flat schema needs.

The fast path decodes each message straight into :class:`Status`; msgspec skips every
field not named here without building Python objects for it, which is where most of the
speed comes from. When a message has a field of the wrong type msgspec raises
``ValidationError``; :func:`lenient_status` then rebuilds a :class:`Status` from an untyped
decode, dropping each wrongly typed value instead of the whole message, so the rest of the
row survives.

Every field is optional with a ``None`` default, except ``in_reply_to_status_id`` whose
``UNSET`` default tells "key absent" from "key null": a v1.1 status always carries that key
(null or not), and its presence is what classifies a message as a status (as Tweepy 3.x
does).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "UNSET",
    "ExtendedTweet",
    "Status",
    "decoder",
    "lenient_status",
]

# Values outside int64 fail validation here (in C), so the Arrow build never sees them.
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]


class _Base(Struct, forbid_unknown_fields=False, gc=False):
    pass


class Hashtag(_Base):
    text: str | None = None


class Mention(_Base):
    screen_name: str | None = None


class Url(_Base):
    url: str | None = None
    expanded_url: str | None = None


class Media(_Base):
    media_url_https: str | None = None
    media_url: str | None = None


class Entities(_Base):
    hashtags: list[Hashtag] | None = None
    user_mentions: list[Mention] | None = None
    urls: list[Url] | None = None
    media: list[Media] | None = None


class ExtendedEntities(_Base):
    media: list[Media] | None = None


class ExtendedTweet(_Base):
    full_text: str | None = None
    entities: Entities | None = None
    extended_entities: ExtendedEntities | None = None


class UserRef(_Base):
    screen_name: str | None = None


class User(_Base):
    id: Int64 | None = None
    id_str: str | None = None
    screen_name: str | None = None
    name: str | None = None
    description: str | None = None
    location: str | None = None
    verified: bool | None = None
    followers_count: Int64 | None = None
    friends_count: Int64 | None = None
    statuses_count: Int64 | None = None
    created_at: str | None = None


class QuotedRef(_Base):
    id: Int64 | None = None
    id_str: str | None = None
    user: UserRef | None = None


class Embedded(_Base):
    """A retweeted or quoted status nested in a status."""

    id: Int64 | None = None
    id_str: str | None = None
    text: str | None = None
    full_text: str | None = None
    extended_tweet: ExtendedTweet | None = None
    entities: Entities | None = None
    extended_entities: ExtendedEntities | None = None
    user: UserRef | None = None
    quoted_status_id: Int64 | None = None
    quoted_status_id_str: str | None = None
    quoted_status: QuotedRef | None = None


class Coordinates(_Base):
    coordinates: list[float] | None = None


class Place(_Base):
    full_name: str | None = None
    country_code: str | None = None


class Status(_Base):
    id: Int64 | None = None
    id_str: str | None = None
    created_at: str | None = None
    text: str | None = None
    full_text: str | None = None
    extended_tweet: ExtendedTweet | None = None
    lang: str | None = None
    source: str | None = None
    user: User | None = None
    in_reply_to_status_id: Int64 | None | UnsetType = UNSET
    in_reply_to_status_id_str: str | None = None
    in_reply_to_user_id: Int64 | None = None
    in_reply_to_user_id_str: str | None = None
    in_reply_to_screen_name: str | None = None
    retweeted_status: Embedded | None = None
    quoted_status_id: Int64 | None = None
    quoted_status_id_str: str | None = None
    # only the quoted tweet's id and author are read; leaving the rest undeclared spares
    # decoding (and type-checking) a whole second tweet
    quoted_status: QuotedRef | None = None
    is_quote_status: bool | None = None
    entities: Entities | None = None
    extended_entities: ExtendedEntities | None = None
    coordinates: Coordinates | None = None
    place: Place | None = None
    retweet_count: Int64 | None = None
    favorite_count: Int64 | None = None
    reply_count: Int64 | None = None
    quote_count: Int64 | None = None
    possibly_sensitive: bool | None = None
    filter_level: str | None = None


decoder = msgspec.json.Decoder(Status)

# -- lenient path -------------------------------------------------------------------------
# A "cleaner" maps an untyped JSON value to a value that msgspec.convert accepts for the
# target type, or to _DROP. Cleaners are compiled once from the Struct annotations so the
# lenient path and the fast path can never disagree about which values are acceptable.

_DROP = object()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _clean_int(v: Any) -> Any:
    if type(v) is int and _INT64_MIN <= v <= _INT64_MAX:
        return v
    return _DROP


def _clean_float(v: Any) -> Any:
    if type(v) is float:
        return v
    if type(v) is int:
        try:
            return float(v)
        except OverflowError:  # an integer literal beyond float range
            return _DROP
    return _DROP


def _clean_str(v: Any) -> Any:
    return v if type(v) is str else _DROP


def _clean_bool(v: Any) -> Any:
    return v if type(v) is bool else _DROP


def _compile(t: msgspec.inspect.Type) -> Any:
    mi = msgspec.inspect
    if isinstance(t, mi.UnionType):
        # Only `X | None` (and `| UNSET`) unions occur; None values are dropped, which
        # restores the default (None, or UNSET for the classification key).
        inner = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(inner) != 1:  # pragma: no cover - guarded by the struct definitions
            raise TypeError(f"unsupported union {t}")
        return _compile(inner[0])
    if isinstance(t, mi.IntType):
        return _clean_int
    if isinstance(t, mi.FloatType):
        return _clean_float
    if isinstance(t, mi.StrType):
        return _clean_str
    if isinstance(t, mi.BoolType):
        return _clean_bool
    if isinstance(t, mi.ListType):
        item = _compile(t.item_type)
        structs = isinstance(t.item_type, mi.StructType)

        def clean_list(v: Any) -> Any:
            if type(v) is not list:
                return _DROP
            out = [item(x) for x in v]
            if structs:  # a stray non-object entity is skipped, its siblings kept
                return [x for x in out if x is not _DROP]
            # a list of scalars (coordinates) is meaningful only whole
            return _DROP if any(x is _DROP for x in out) else out

        return clean_list
    if isinstance(t, mi.StructType):
        fields = [(f.encode_name, _compile(f.type)) for f in t.fields]

        def clean_struct(v: Any) -> Any:
            if type(v) is not dict:
                return _DROP
            out = {}
            for name, clean in fields:
                x = v.get(name)
                if x is not None:
                    x = clean(x)
                    if x is not _DROP:
                        out[name] = x
            return out

        return clean_struct
    raise TypeError(f"unsupported type {t}")  # pragma: no cover


_clean_status = _compile(msgspec.inspect.type_info(Status))


def lenient_status(obj: Any) -> Status:
    """Build a :class:`Status` from an untyped dict, dropping each wrongly typed value.

    Examples
    --------
    >>> s = lenient_status({"id": 5, "user": {"id": "six", "screen_name": "x"}})
    >>> s.id, s.user.id, s.user.screen_name, s.in_reply_to_status_id is UNSET
    (5, None, 'x', True)
    """
    cleaned = _clean_status(obj)
    if cleaned is _DROP:
        cleaned = {}
    # a present-but-null key must stay distinguishable from an absent one
    elif "in_reply_to_status_id" in obj:
        cleaned.setdefault("in_reply_to_status_id", None)
    return msgspec.convert(cleaned, Status)
