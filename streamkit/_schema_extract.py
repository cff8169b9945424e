"""Flatten one typed :class:`~streamkit._schema_structs.Status` into a tweet row.

The rules (which text, which entities, which id) live here and nowhere else; the public
column documentation in :mod:`streamkit.schema` describes them for users.
"""

from __future__ import annotations

import html
from typing import Any

from streamkit._schema_events import to_int64
from streamkit._schema_structs import UNSET, ExtendedTweet, Status

__all__ = ["ROW_COLUMNS", "source_name", "status_row"]

#: The order of the values :func:`status_row` returns (the tweet schema minus
#: ``received_at`` and ``raw``, which the batch adds). ``created_at`` and
#: ``user_created_at`` are still Twitter's strings here; the batch parses them vectorised.
ROW_COLUMNS = (
    "id",
    "created_at",
    "text",
    "lang",
    "source",
    "tweet_type",
    "user_id",
    "user_screen_name",
    "user_name",
    "user_description",
    "user_location",
    "user_verified",
    "user_followers_count",
    "user_friends_count",
    "user_statuses_count",
    "user_created_at",
    "in_reply_to_status_id",
    "in_reply_to_user_id",
    "in_reply_to_screen_name",
    "retweeted_status_id",
    "retweeted_user_screen_name",
    "quoted_status_id",
    "quoted_user_screen_name",
    "hashtags",
    "mentions",
    "urls",
    "media_urls",
    "longitude",
    "latitude",
    "place_full_name",
    "place_country_code",
    "retweet_count",
    "favorite_count",
    "reply_count",
    "quote_count",
    "possibly_sensitive",
    "filter_level",
)

# Sources repeat endlessly (a few hundred apps write most tweets); the cache is cleared
# when full rather than evicting one by one, which keeps the hit path a single dict lookup.
_SOURCE_CACHE: dict[str, str] = {}
_SOURCE_CACHE_MAX = 4096


def source_name(source: str | None) -> str | None:
    """The anchor text of Twitter's ``source`` HTML, unescaped; other strings as they are.

    Examples
    --------
    >>> source_name('<a href="http://twitter.com/download/iphone" rel="nofollow">Twitter for iPhone</a>')
    'Twitter for iPhone'
    >>> source_name("web"), source_name('<a href="x">Q&amp;A bot</a>')
    ('web', 'Q&A bot')
    """
    if source is None:
        return None
    name = _SOURCE_CACHE.get(source)
    if name is None:
        name = source
        if source.startswith("<a"):
            start = source.find(">")
            end = source.rfind("</a>")
            if 0 < start < end:
                name = html.unescape(source[start + 1 : end])
        if len(_SOURCE_CACHE) >= _SOURCE_CACHE_MAX:
            _SOURCE_CACHE.clear()
        _SOURCE_CACHE[source] = name
    return name


def _full_text(s: Any) -> str | None:
    ext = s.extended_tweet
    if ext is not None and ext.full_text is not None:
        return ext.full_text
    if s.full_text is not None:
        return s.full_text
    return s.text


def _entities(s: Any, ext: ExtendedTweet | None) -> tuple:
    """(hashtags, mentions, urls, media_urls) of one status: tuples, or None when absent.

    Tuples, not lists: a tuple of str is untracked by the garbage collector, so a batch of
    rows does not make every collection walk it (the rows live until the batch is built).
    """
    if ext is not None and (ext.entities is not None or ext.extended_entities is not None):
        ents, ext_ents = ext.entities, ext.extended_entities
    else:
        ents, ext_ents = s.entities, s.extended_entities
    if ents is None:
        hashtags = mentions = urls = None
        media = ext_ents.media if ext_ents is not None else None
    else:
        tags, names, links = ents.hashtags, ents.user_mentions, ents.urls
        hashtags = tuple([h.text for h in tags if h.text is not None]) if tags else ()
        mentions = (
            tuple([m.screen_name for m in names if m.screen_name is not None]) if names else ()
        )
        urls = (
            tuple([u.expanded_url or u.url for u in links if u.expanded_url or u.url])
            if links
            else ()
        )
        media = ext_ents.media if ext_ents is not None and ext_ents.media is not None else None
        if media is None:
            media = ents.media
    if media:
        media_urls = tuple(
            [m.media_url_https or m.media_url for m in media if m.media_url_https or m.media_url]
        )
    elif media is None and ents is None and ext_ents is None:
        media_urls = None
    else:
        media_urls = ()
    return hashtags, mentions, urls, media_urls


def status_row(s: Status) -> tuple | None:
    """The tweet row of one status (see :data:`ROW_COLUMNS`), or None if it has no id."""
    # msgspec has already checked that every int field is an int64 (or None); the *_str
    # fallbacks only run when the number is missing.
    tweet_id = s.id
    if tweet_id is None:
        tweet_id = to_int64(None, s.id_str)
        if tweet_id is None:
            return None
    reply_id = s.in_reply_to_status_id
    if reply_id is None or reply_id is UNSET:
        x = s.in_reply_to_status_id_str
        reply_id = None if x is None else to_int64(None, x)
    reply_user = s.in_reply_to_user_id
    if reply_user is None:
        x = s.in_reply_to_user_id_str
        reply_user = None if x is None else to_int64(None, x)

    q = s.quoted_status
    quoted_id = s.quoted_status_id
    if quoted_id is None:
        x = s.quoted_status_id_str
        quoted_id = None if x is None else to_int64(None, x)
        if quoted_id is None and q is not None:
            quoted_id = to_int64(q.id, q.id_str)
    quoted_sn = q.user.screen_name if q is not None and q.user is not None else None

    text: str | None
    rt = s.retweeted_status
    if rt is not None:
        tweet_type = "retweet"
        rt_id = rt.id if rt.id is not None else to_int64(None, rt.id_str)
        rt_sn = rt.user.screen_name if rt.user is not None else None
        rt_text = _full_text(rt)
        if rt_sn is not None and rt_text is not None:
            text = f"RT @{rt_sn}: {rt_text}"
        else:
            text = _full_text(s)
        hashtags, mentions, urls, media_urls = _entities(rt, rt.extended_tweet)
        if rt_sn is not None and mentions is not None:
            mentions = (rt_sn, *mentions)
        rq = rt.quoted_status
        if quoted_id is None:  # a retweet of a quote tweet: the quote is the retweeted one's
            quoted_id = to_int64(rt.quoted_status_id, rt.quoted_status_id_str)
            if quoted_id is None and rq is not None:
                quoted_id = to_int64(rq.id, rq.id_str)
        if quoted_sn is None and rq is not None and rq.user is not None:
            quoted_sn = rq.user.screen_name
    else:
        rt_id = rt_sn = None
        ext = s.extended_tweet
        if ext is not None and ext.full_text is not None:
            text = ext.full_text
        else:
            text = s.full_text if s.full_text is not None else s.text
        hashtags, mentions, urls, media_urls = _entities(s, ext)
        if q is not None or quoted_id is not None or s.is_quote_status:
            tweet_type = "quote"
        elif reply_id is not None or reply_user is not None:
            tweet_type = "reply"
        else:
            tweet_type = "original"

    src = s.source
    if src is not None:
        cached = _SOURCE_CACHE.get(src)
        src = cached if cached is not None else source_name(src)

    lon = lat = None
    if s.coordinates is not None:
        point = s.coordinates.coordinates
        if point is not None and len(point) == 2:
            lon, lat = point
    p = s.place
    place_name, place_cc = (p.full_name, p.country_code) if p is not None else (None, None)

    u = s.user
    if u is None:
        return (
            tweet_id, s.created_at, text, s.lang, src, tweet_type,
            None, None, None, None, None, None, None, None, None, None,
            reply_id, reply_user, s.in_reply_to_screen_name, rt_id, rt_sn, quoted_id, quoted_sn,
            hashtags, mentions, urls, media_urls, lon, lat, place_name, place_cc,
            s.retweet_count, s.favorite_count, s.reply_count, s.quote_count,
            s.possibly_sensitive, s.filter_level,
        )  # fmt: skip
    user_id = u.id
    if user_id is None:
        user_id = to_int64(None, u.id_str)
    return (
        tweet_id, s.created_at, text, s.lang, src, tweet_type,
        user_id, u.screen_name, u.name, u.description, u.location, u.verified,
        u.followers_count, u.friends_count, u.statuses_count, u.created_at,
        reply_id, reply_user, s.in_reply_to_screen_name, rt_id, rt_sn, quoted_id, quoted_sn,
        hashtags, mentions, urls, media_urls, lon, lat, place_name, place_cc,
        s.retweet_count, s.favorite_count, s.reply_count, s.quote_count,
        s.possibly_sensitive, s.filter_level,
    )  # fmt: skip
