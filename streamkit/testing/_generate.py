"""Generate realistic Twitter v1.1 status objects, deterministically from a seed.

The statuses look like what ``statuses/filter`` delivered around 2018-2019:
full ``user`` objects, entities with correct code-point ``indices``, media,
replies, retweets with the original nested in ``retweeted_status``, quotes
with ``quoted_status``, long tweets with ``extended_tweet``, geo-tagged
statuses with ``coordinates`` and ``place``, and text in a realistic mix of
languages and scripts (accents, Japanese, Arabic, emoji).  Serialized with
``json.dumps(..., ensure_ascii=True)`` they average 3-5 KB, like real
payloads.

When a filter is given, a ``match_fraction`` share of statuses is built to
match it (a tracked phrase is embedded in the text, a hashtag, a mention or
an expanded URL; a followed user authors, is replied to or is retweeted; a
point or place falls in a location box) and the rest is checked *not* to
match, so that the server's filtering has something real to drop.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterable
from typing import Any

from . import _corpus as C
from ._match import FILTER_LEVELS, StreamFilter

__all__ = [
    "TWEPOCH_MS",
    "format_created_at",
    "generate_statuses",
    "snowflake",
    "snowflake_ms",
]

TWEPOCH_MS = 1288834974657
#: Wed Feb 12 20:19:24 +0000 2020 -- where generated timelines start by default
#: (ids of statuses from after mid-2019 exceed 2**60, as real ones did).
DEFAULT_START_MS = 1581538764000

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ALNUM = string.ascii_letters + string.digits
_SITES = ("www.nytimes.com", "www.theguardian.com", "www.bbc.co.uk", "www.reuters.com",
          "elpais.com", "g1.globo.com", "www.lemonde.fr", "www3.nhk.or.jp", "www.youtube.com",
          "medium.com", "github.com", "www.instagram.com", "open.spotify.com", "arxiv.org")
_TOPIC_TAGS = ("news", "breaking", "MondayMotivation", "NowPlaying", "FF", "tbt", "photography",
               "travel", "football", "election", "science", "art", "music", "tech", "love")
_SYMBOLS = ("AAPL", "TSLA", "BTC", "AMZN", "GOOG", "MSFT", "ETH")


def snowflake(ms: int, *, worker: int = 0, sequence: int = 0) -> int:
    """Build a snowflake id for the millisecond *ms* (Unix epoch).

    Examples
    --------
    >>> sid = snowflake(1581538764000)
    >>> sid > 2**60, snowflake_ms(sid)
    (True, 1581538764000)
    """
    return ((ms - TWEPOCH_MS) << 22) | ((worker & 0x3FF) << 12) | (sequence & 0xFFF)


def snowflake_ms(sid: int) -> int:
    """The creation time (Unix milliseconds) encoded in a snowflake id."""
    return (sid >> 22) + TWEPOCH_MS


def format_created_at(ms: int) -> str:
    """Format Unix milliseconds as Twitter's ``created_at`` (locale independent).

    Examples
    --------
    >>> format_created_at(1539202764000)
    'Wed Oct 10 20:19:24 +0000 2018'
    """
    t = time.gmtime(ms // 1000)
    return (f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000 {t.tm_year}")


class _Text:
    """Accumulates tweet text and entities with code-point indices, as Twitter counts them."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n = 0
        self.hashtags: list[dict[str, Any]] = []
        self.mentions: list[dict[str, Any]] = []
        self.urls: list[dict[str, Any]] = []
        self.symbols: list[dict[str, Any]] = []
        self.media_indices: list[int] | None = None
        self.media_url = ""

    def add(self, piece: str, space: bool = True) -> list[int]:
        if self.n and space:
            self.parts.append(" ")
            self.n += 1
        start = self.n
        self.parts.append(piece)
        self.n += len(piece)
        return [start, self.n]

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def entities(self, limit: int | None = None, shift: int = 0) -> dict[str, Any]:
        def keep(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for item in items:
                a, b = item["indices"]
                if limit is not None and b + shift > limit:
                    continue
                out.append({**item, "indices": [a + shift, b + shift]} if shift else item)
            return out

        return {"hashtags": keep(self.hashtags), "urls": keep(self.urls),
                "user_mentions": keep(self.mentions), "symbols": keep(self.symbols)}


class _Generator:
    def __init__(self, rng: random.Random, flt: StreamFilter, match_fraction: float,
                 start_ms: int) -> None:
        self.rng = rng
        self.flt = flt
        self.match_fraction = match_fraction
        self.ms = start_ms
        self.langs = [lang for lang, _ in C.LANG_WEIGHTS]
        self.lang_w = [w for _, w in C.LANG_WEIGHTS]
        self.src = [f'<a href="{href}" rel="nofollow">{name}</a>' for name, href, _ in C.SOURCES]
        self.src_w = [w for _, _, w in C.SOURCES]
        self.followed: dict[int, dict[str, Any]] = {}
        self.users = [self._user() for _ in range(400)]
        self.users = [u for u in self.users if u["id"] not in flt.follow]
        self.levels = [lv for lv in FILTER_LEVELS
                       if FILTER_LEVELS.index(lv) >= FILTER_LEVELS.index(flt.filter_level)]

    # -- small pieces --------------------------------------------------------
    def _code(self, n: int) -> str:
        return "".join(self.rng.choices(_ALNUM, k=n))

    def _lang(self) -> str:
        if self.flt.languages:
            return self.rng.choice(sorted(self.flt.languages))
        return self.rng.choices(self.langs, self.lang_w)[0]

    def _words(self, lang: str, k: int) -> list[str]:
        return self.rng.choices(C.WORDS.get(lang, C.WORDS["en"]), k=k)

    def _count(self, scale: float) -> int:
        return int(self.rng.lognormvariate(0, 2.2) * scale)

    def _user(self, uid: int | None = None) -> dict[str, Any]:
        rng = self.rng
        lang = rng.choices(self.langs, self.lang_w)[0]
        names_lang = lang if lang in C.FIRST_NAMES else "en"
        first = rng.choice(C.FIRST_NAMES[names_lang])
        last = rng.choice(C.LAST_NAMES[names_lang])
        name = f"{first} {last}" if rng.random() < 0.7 else f"{first} {rng.choice(C.EMOJI)}"
        base = "".join(ch for ch in rng.choice(C.FIRST_NAMES["en"]).lower() if ch.isascii())
        screen = (base + rng.choice(("", "_", "")) + str(rng.randint(1, 99999)))[:15]
        if uid is None:
            if rng.random() < 0.55:
                uid = rng.randint(10**6, 4 * 10**9)
            else:
                uid = snowflake(rng.randint(1451606400000, 1530000000000), worker=rng.randint(0, 1023))
        if uid > 10**17:
            created = snowflake_ms(uid)
        else:
            created = rng.randint(1167609600000, 1451606400000)
        desc_lang = lang if lang in C.WORDS else "en"
        sep = "" if desc_lang not in C.SPACED_LANGS else " "
        description = sep.join(self._words(desc_lang, rng.randint(6, 22)))
        if rng.random() < 0.5:
            description += " " + rng.choice(C.EMOJI) + " " + "#" + rng.choice(_TOPIC_TAGS)
        place = rng.choice(C.PLACES)
        default = rng.random() < 0.3
        return {
            "id": uid, "id_str": str(uid), "name": name, "screen_name": screen,
            "location": rng.choice((None, place[3], place[5], "Earth 🌍", "")),
            "url": f"https://t.co/{self._code(10)}" if rng.random() < 0.35 else None,
            "description": description if rng.random() < 0.9 else None,
            "translator_type": "none", "protected": False, "verified": rng.random() < 0.03,
            "followers_count": self._count(300), "friends_count": self._count(250),
            "listed_count": self._count(3), "favourites_count": self._count(2000),
            "statuses_count": self._count(5000) + 1, "created_at": format_created_at(created),
            "utc_offset": None, "time_zone": None, "geo_enabled": rng.random() < 0.4,
            "lang": None if rng.random() < 0.7 else lang,
            "contributors_enabled": False, "is_translator": False,
            "profile_background_color": "F5F8FA" if default else rng.choice(("000000", "C0DEED", "1A1B1F")),
            "profile_background_image_url": "" if default else "http://abs.twimg.com/images/themes/theme1/bg.png",
            "profile_background_image_url_https": "" if default else "https://abs.twimg.com/images/themes/theme1/bg.png",
            "profile_background_tile": False,
            "profile_link_color": rng.choice(("1DA1F2", "E81C4F", "19CF86", "981CEB")),
            "profile_sidebar_border_color": "C0DEED", "profile_sidebar_fill_color": "DDEEF6",
            "profile_text_color": "333333", "profile_use_background_image": True,
            "profile_image_url": f"http://pbs.twimg.com/profile_images/{rng.randint(10**17, 10**18)}/{self._code(8)}_normal.jpg",
            "profile_image_url_https": f"https://pbs.twimg.com/profile_images/{rng.randint(10**17, 10**18)}/{self._code(8)}_normal.jpg",
            "profile_banner_url": f"https://pbs.twimg.com/profile_banners/{uid}/{created // 1000 + rng.randint(0, 10**8)}",
            "default_profile": default, "default_profile_image": False,
            "following": None, "follow_request_sent": None, "notifications": None,
        }

    def _followed_user(self, uid: int) -> dict[str, Any]:
        user = self.followed.get(uid)
        if user is None:
            user = self.followed[uid] = self._user(uid)
        return user

    def _author(self) -> dict[str, Any]:
        return self.rng.choice(self.users)

    def _url(self, slug: str | None = None) -> tuple[str, str, str]:
        site = self.rng.choice(_SITES)
        slug = slug or "-".join(self._words("en", 3)) + f"-{self.rng.randint(1, 99999)}"
        expanded = f"https://{site}/{slug}"
        display = expanded[8:]
        if len(display) > 26:
            display = display[:25] + "…"
        return f"https://t.co/{self._code(10)}", expanded, display

    def _place(self, point: tuple[float, float] | None = None) -> dict[str, Any]:
        rng = self.rng
        known: tuple[Any, ...] | None
        if point is None:
            known = rng.choice(C.PLACES)
        else:
            lon, lat = point
            known = next((p for p in C.PLACES
                          if p[6][0] <= lon <= p[6][2] and p[6][1] <= lat <= p[6][3]), None)
        if known is not None:
            pid, ptype, name, full, cc, country, box = known
        else:
            d = rng.uniform(0.02, 0.15)
            box = (max(-180.0, lon - d), max(-90.0, lat - d), min(180.0, lon + d), min(90.0, lat + d))
            box = tuple(round(v, 6) for v in box)  # type: ignore[assignment]
            name = rng.choice(C.TOWN_NAMES)
            # Borrow the country of the nearest known city: rough, but never empty.
            near = min(C.PLACES, key=lambda p: (p[6][0] - lon) ** 2 + (p[6][1] - lat) ** 2)
            pid, ptype, cc, country = f"{rng.getrandbits(64):016x}", "city", near[4], near[5]
            full = f"{name}, {cc}"
        w, s, e, n = box
        return {
            "id": pid, "url": f"https://api.twitter.com/1.1/geo/id/{pid}.json",
            "place_type": ptype, "name": name, "full_name": full, "country_code": cc,
            "country": country,
            "bounding_box": {"type": "Polygon", "coordinates": [[[w, s], [w, n], [e, n], [e, s]]]},
            "attributes": {},
        }

    # -- text ------------------------------------------------------------------
    def _compose(self, lang: str, *, min_chars: int, max_chars: int, reply_to: dict | None,
                 embed: dict | None, media: bool, link: bool, author: dict) -> _Text:
        rng = self.rng
        tx = _Text()
        if reply_to is not None:
            self._mention(tx, reply_to)
        spaced = lang in C.SPACED_LANGS
        words_lang = lang if lang in C.WORDS else "en"
        target = rng.randint(min_chars, max_chars)
        plan: list[tuple[str, Any]] = []
        length = 0
        while length < target:
            word = rng.choice(C.WORDS[words_lang])
            plan.append(("w", word))
            length += len(word) + (1 if spaced else 0)
        if lang != "und" and rng.random() < 0.35:
            plan.append(("e", rng.choice(C.EMOJI)))
        for _ in range(rng.choices((0, 1, 2, 3), (55, 25, 13, 7))[0]):
            tag = rng.choice(_TOPIC_TAGS) if rng.random() < 0.6 else rng.choice(C.WORDS[words_lang])
            tag = tag.strip("。、！") or rng.choice(_TOPIC_TAGS)
            plan.insert(rng.randint(0, len(plan)), ("#", tag))
        if rng.random() < 0.2:
            plan.insert(rng.randint(0, len(plan)), ("@", self._author()))
        if lang == "en" and rng.random() < 0.04:
            plan.insert(rng.randint(0, len(plan)), ("$", rng.choice(_SYMBOLS)))
        if embed is not None:
            how, terms = embed["how"], embed["terms"]
            pos = rng.randint(0, len(plan))
            if how == "hashtag":
                plan.insert(pos, ("#", "".join(terms)))
            elif how == "mention":
                plan.insert(pos, ("@", {**self._author(), "screen_name": terms[0]}))
            elif how == "url":
                slug = "-".join(terms) + f"-{rng.randint(1, 9999)}"
                plan.append(("u", self._url(slug)))
            else:
                cased = [t.upper() if rng.random() < 0.2 else
                         (t.capitalize() if rng.random() < 0.3 else t) for t in terms]
                plan.insert(pos, ("p", " ".join(cased)))
        if link and not (embed and embed["how"] == "url"):
            plan.append(("u", self._url()))
        prev = ""
        for kind, val in plan:
            if kind == "w":
                tx.add(val, space=spaced or prev != "w")
            elif kind == "e":
                tx.add(val, space=rng.random() < 0.7)
            elif kind == "#":
                tag = val.replace(" ", "")
                tx.hashtags.append({"text": tag, "indices": tx.add("#" + tag)})
            elif kind == "$":
                tx.symbols.append({"text": val, "indices": tx.add("$" + val)})
            elif kind == "@":
                self._mention(tx, val)
            elif kind == "u":
                tco, expanded, display = val
                tx.urls.append({"url": tco, "expanded_url": expanded, "display_url": display,
                                "indices": tx.add(tco)})
            else:  # an embedded tracked phrase, kept apart from neighbouring words
                tx.add(val, space=True)
                kind = "p"
            prev = kind
        if media:
            tco = f"https://t.co/{self._code(10)}"
            tx.media_indices = tx.add(tco)
            tx.media_url = tco
        return tx

    def _mention(self, tx: _Text, user: dict[str, Any]) -> None:
        tx.mentions.append({"screen_name": user["screen_name"], "name": user["name"],
                            "id": user["id"], "id_str": user["id_str"],
                            "indices": tx.add("@" + user["screen_name"])})

    def _media(self, tx: _Text, sid: int, ms: int, screen: str) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        code = tx.media_url.rsplit("/", 1)[1]
        for i in range(rng.choices((1, 2, 3, 4), (70, 15, 7, 8))[0]):
            mid = snowflake(ms - rng.randint(500, 60000), worker=rng.randint(0, 1023))
            key = self._code(15)
            w, h = rng.choice(((2048, 1536), (1536, 2048), (1200, 675), (1080, 1080)))
            out.append({
                "id": mid, "id_str": str(mid), "indices": list(tx.media_indices or [0, 0]),
                "media_url": f"http://pbs.twimg.com/media/{key}.jpg",
                "media_url_https": f"https://pbs.twimg.com/media/{key}.jpg",
                "url": tx.media_url, "display_url": f"pic.twitter.com/{code}",
                "expanded_url": f"https://twitter.com/{screen}/status/{sid}/photo/{i + 1}",
                "type": "photo",
                "sizes": {"thumb": {"w": 150, "h": 150, "resize": "crop"},
                          "medium": {"w": min(w, 1200), "h": min(w, 1200) * h // w, "resize": "fit"},
                          "small": {"w": 680, "h": 680 * h // w, "resize": "fit"},
                          "large": {"w": w, "h": h, "resize": "fit"}},
            })
        return out

    # -- statuses --------------------------------------------------------------
    def _next_ms(self) -> int:
        self.ms += 1 + int(self.rng.expovariate(1 / 12))
        return self.ms

    def _tweet(self, *, ms: int, user: dict[str, Any], lang: str, long: bool = False,
               reply_to: dict | None = None, embed: dict | None = None,
               geo: tuple[dict | None, dict | None] = (None, None), fresh: bool = True,
               quoted: dict | None = None) -> dict[str, Any]:
        rng = self.rng
        sid = snowflake(ms, worker=rng.randint(0, 1023), sequence=rng.randint(0, 20))
        media = rng.random() < 0.15
        link = quoted is None and rng.random() < 0.2
        if long:
            tx = self._compose(lang, min_chars=160, max_chars=270, reply_to=reply_to, embed=embed,
                               media=media, link=link, author=user)
        else:
            tx = self._compose(lang, min_chars=20, max_chars=95, reply_to=reply_to, embed=embed,
                               media=media, link=link, author=user)
        permalink = None
        if quoted is not None:
            qsn, qid = quoted["user"]["screen_name"], quoted["id"]
            expanded = f"https://twitter.com/{qsn}/status/{qid}"
            tco = f"https://t.co/{self._code(10)}"
            display = ("twitter.com/" + f"{qsn}/status/{qid}")[:25] + "…"
            tx.urls.append({"url": tco, "expanded_url": expanded, "display_url": display,
                            "indices": tx.add(tco)})
            permalink = {"url": tco, "expanded": expanded, "display": display}
        full = tx.text
        truncated = len(full) > 140
        text = full[:139] + "…" if truncated else full
        media_list = self._media(tx, sid, ms, user["screen_name"]) if media else None
        entities = tx.entities(limit=139 if truncated else None)
        if media_list and not truncated:
            entities["media"] = [media_list[0]]
        st: dict[str, Any] = {
            "created_at": format_created_at(ms), "id": sid, "id_str": str(sid), "text": text,
            "source": rng.choices(self.src, self.src_w)[0], "truncated": truncated,
            "in_reply_to_status_id": None, "in_reply_to_status_id_str": None,
            "in_reply_to_user_id": None, "in_reply_to_user_id_str": None,
            "in_reply_to_screen_name": None, "user": user,
            "geo": None, "coordinates": geo[0], "place": geo[1], "contributors": None,
        }
        if geo[0] is not None:
            lon, lat = geo[0]["coordinates"]
            st["geo"] = {"type": "Point", "coordinates": [lat, lon]}
        if reply_to is not None:
            rid = snowflake(ms - rng.randint(1000, 6 * 3600 * 1000), worker=rng.randint(0, 1023))
            st.update(in_reply_to_status_id=rid, in_reply_to_status_id_str=str(rid),
                      in_reply_to_user_id=reply_to["id"], in_reply_to_user_id_str=reply_to["id_str"],
                      in_reply_to_screen_name=reply_to["screen_name"])
        if quoted is not None:
            st["quoted_status_id"] = quoted["id"]
            st["quoted_status_id_str"] = quoted["id_str"]
            st["quoted_status"] = quoted
            st["quoted_status_permalink"] = permalink
        st["is_quote_status"] = quoted is not None
        if truncated:
            ext: dict[str, Any] = {"full_text": full, "display_text_range": [0, len(full)],
                                   "entities": tx.entities()}
            if media_list:
                ext["entities"]["media"] = [media_list[0]]
                ext["extended_entities"] = {"media": media_list}
            st["extended_tweet"] = ext
        if fresh:
            st.update(quote_count=0, reply_count=0, retweet_count=0, favorite_count=0)
        else:
            st.update(quote_count=self._count(2), reply_count=self._count(4),
                      retweet_count=self._count(40), favorite_count=self._count(120))
        st["entities"] = entities
        if media_list and not truncated:
            st["extended_entities"] = {"media": media_list}
        st["favorited"] = False
        st["retweeted"] = False
        if tx.urls or media_list:
            st["possibly_sensitive"] = rng.random() < 0.02
        st["filter_level"] = rng.choices(self.levels, [1, 6, 1][-len(self.levels):])[0]
        st["lang"] = lang
        if fresh:
            st["timestamp_ms"] = str(ms)
        return st

    def _original(self, ms: int, lang: str, user: dict | None = None, embed: dict | None = None,
                  ) -> dict[str, Any]:
        older = ms - self.rng.randint(60_000, 3 * 86_400_000)
        return self._tweet(ms=older, user=user or self._author(), lang=lang,
                           long=self.rng.random() < 0.2, embed=embed, fresh=False)

    def _retweet(self, ms: int, user: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        sid = snowflake(ms, worker=rng.randint(0, 1023), sequence=rng.randint(0, 20))
        ou = original["user"]
        prefix = f"RT @{ou['screen_name']}: "
        ext = original.get("extended_tweet")
        body = ext["full_text"] if ext else original["text"]
        src_entities = ext["entities"] if ext else original["entities"]
        text = prefix + body
        if len(text) > 140:
            text = text[:139] + "…"
        shifted: dict[str, Any] = {"hashtags": [], "urls": [], "user_mentions": [], "symbols": []}
        shifted["user_mentions"].append({"screen_name": ou["screen_name"], "name": ou["name"],
                                         "id": ou["id"], "id_str": ou["id_str"],
                                         "indices": [3, 4 + len(ou["screen_name"])]})
        for key in shifted:
            for item in src_entities.get(key, ()):
                a, b = item["indices"]
                if b + len(prefix) <= 139:
                    shifted[key].append({**item, "indices": [a + len(prefix), b + len(prefix)]})
        return {
            "created_at": format_created_at(ms), "id": sid, "id_str": str(sid), "text": text,
            "source": rng.choices(self.src, self.src_w)[0], "truncated": False,
            "in_reply_to_status_id": None, "in_reply_to_status_id_str": None,
            "in_reply_to_user_id": None, "in_reply_to_user_id_str": None,
            "in_reply_to_screen_name": None, "user": user, "geo": None, "coordinates": None,
            "place": None, "contributors": None, "retweeted_status": original,
            "is_quote_status": False, "quote_count": 0, "reply_count": 0, "retweet_count": 0,
            "favorite_count": 0, "entities": shifted, "favorited": False, "retweeted": False,
            "filter_level": rng.choices(self.levels, [1, 6, 1][-len(self.levels):])[0],
            "lang": original["lang"], "timestamp_ms": str(ms),
        }

    def _geo_for(self, box: tuple[float, float, float, float] | None, how: str) -> tuple[Any, Any]:
        rng = self.rng
        if box is None:
            lon, lat = rng.uniform(-179.9, 179.9), rng.uniform(-60.0, 75.0)
        else:
            lon, lat = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
        lon, lat = round(lon, 8), round(lat, 8)
        place = self._place((lon, lat))
        if how == "place":
            return None, place
        return {"type": "Point", "coordinates": [lon, lat]}, place

    def status(self, want_match: bool) -> dict[str, Any]:
        flt = self.flt
        if flt.is_sample or want_match:
            return self._build(self._match_plan() if not flt.is_sample else {})
        st: dict[str, Any] = {}
        for _ in range(12):
            st = self._build({"avoid": True})
            if not flt.matches(st):
                break
        return st

    def _match_plan(self) -> dict[str, Any]:
        rng = self.rng
        flt = self.flt
        options = [k for k, on in (("track", flt.track), ("follow", flt.follow),
                                   ("locations", flt.locations)) if on]
        which = rng.choice(options)
        if which == "track":
            terms = list(rng.choice(flt.track))
            how = rng.choices(("text", "hashtag", "mention", "url"), (60, 20, 8, 12))[0]
            if how == "mention" and not (len(terms) == 1 and terms[0].isascii()
                                         and terms[0].replace("_", "").isalnum()
                                         and len(terms[0]) <= 15):
                how = "text"
            if how == "hashtag" and not (len(terms) == 1 and terms[0].replace("_", "").isalnum()):
                how = "text"
            return {"embed": {"how": how, "terms": terms}}
        if which == "follow":
            uid = rng.choice(sorted(flt.follow))
            return {rng.choices(("author", "reply_to", "rt_of"), (60, 20, 20))[0]: uid}
        return {"box": rng.choice(flt.locations), "geo": rng.choice(("point", "point", "place"))}

    def _build(self, plan: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        ms = self._next_ms()
        lang = self._lang()
        embed = plan.get("embed")
        if "author" in plan:
            user = self._followed_user(plan["author"])
        else:
            user = self._author()
        geo: tuple[Any, Any] = (None, None)
        if "box" in plan:
            geo = self._geo_for(plan["box"], plan["geo"])
            kind = rng.choices(("plain", "reply", "quote", "long"), (55, 15, 10, 20))[0]
        else:
            r = rng.random()
            if r < 0.03:
                geo = self._geo_for(None, "point")
            elif r < 0.08:
                geo = self._geo_for(None, "place")
            if "rt_of" in plan:
                kind = "retweet"
            elif "reply_to" in plan:
                kind = "reply"
            elif geo[1] is not None:
                kind = rng.choices(("plain", "reply", "long"), (70, 15, 15))[0]
            else:
                kind = rng.choices(("plain", "reply", "retweet", "quote", "long"),
                                   (30, 14, 38, 8, 10))[0]
        if kind == "retweet":
            author = self._followed_user(plan["rt_of"]) if "rt_of" in plan else None
            return self._retweet(ms, user, self._original(ms, lang, author, embed))
        if kind == "quote":
            quoted = self._original(ms, self._lang())
            return self._tweet(ms=ms, user=user, lang=lang, embed=embed, geo=geo, quoted=quoted)
        reply_to = None
        if kind == "reply":
            reply_to = (self._followed_user(plan["reply_to"]) if "reply_to" in plan
                        else self._author())
        return self._tweet(ms=ms, user=user, lang=lang, long=kind == "long", reply_to=reply_to,
                           embed=embed, geo=geo)


def generate_statuses(
    n: int,
    *,
    seed: int = 0,
    track: str | Iterable[str] | None = None,
    follow: str | Iterable[int | str] | None = None,
    locations: str | Iterable[Any] | None = None,
    languages: str | Iterable[str] | None = None,
    filter_level: str | None = None,
    match_fraction: float = 0.9,
    start_ms: int = DEFAULT_START_MS,
) -> list[dict[str, Any]]:
    """Generate *n* realistic v1.1 status dicts, the same way :class:`StreamServer` does.

    Parameters
    ----------
    n : int
        How many statuses.
    seed : int, default 0
        The same seed and arguments give the same statuses.
    track, follow, locations, languages, filter_level
        A ``statuses/filter`` filter (lists or comma-separated strings).  Without
        track/follow/locations every status is a ``sample`` status.
    match_fraction : float, default 0.9
        With a filter, the share of statuses built to match it; the others are
        checked not to match (they are what a real server would drop).
    start_ms : int
        Unix milliseconds of the first status; ids are snowflakes of their
        ``created_at`` and strictly increase.

    Returns
    -------
    list of dict

    Raises
    ------
    ConfigError
        If the filter is one Twitter would refuse.

    Examples
    --------
    >>> from streamkit.testing import match_status
    >>> sts = generate_statuses(3, seed=1, track=["python"], match_fraction=1.0)
    >>> [match_status(s, track=["python"]) for s in sts]
    [True, True, True]
    >>> sts[0]["id"] < sts[1]["id"] < sts[2]["id"]
    True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= match_fraction <= 1.0:
        raise ValueError(f"match_fraction must be in [0, 1], got {match_fraction}")
    flt = StreamFilter.from_options(track=track, follow=follow, locations=locations,
                                    languages=languages, filter_level=filter_level)
    return generate_for_filter(n, flt, seed=seed, match_fraction=match_fraction,
                               start_ms=start_ms)


def generate_for_filter(n: int, flt: StreamFilter, *, seed: int = 0, match_fraction: float = 0.9,
                        start_ms: int = DEFAULT_START_MS) -> list[dict[str, Any]]:
    """:func:`generate_statuses` for an already parsed :class:`StreamFilter`."""
    rng = random.Random(seed)
    gen = _Generator(rng, flt, match_fraction, start_ms)
    return [gen.status(rng.random() < match_fraction) for _ in range(n)]

