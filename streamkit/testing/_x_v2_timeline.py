"""The content side of :class:`streamkit.testing.XV2Server`: filtered-stream rules and the timeline.

A rule is parsed into alternatives of positive and negated terms (keywords, quoted phrases,
``#tags``, ``@mentions``, ``from:``, ``lang:``, ``is:``, ``has:``; parentheses are flattened),
with the obvious syntax errors X rejects. The timeline creates posts at a fixed rate from the
server's start, each built from the seed (and, for a share of them, from a stored rule's terms so
that rules match), with v2 fields, entities, references to earlier posts, media and places.

Examples
--------
>>> alternatives = parse_rule("python -snake")
>>> _rule_matches(alternatives, {"_words": {"python", "code"}, "_text": "python code"})
True
"""

from __future__ import annotations

import datetime as _dt
import json
import random
import re
import time
from collections.abc import Iterable
from typing import Any

from ._generate import TWEPOCH_MS

__all__ = ["RuleSyntaxError", "parse_rule"]

_OPERATORS = {"from", "to", "lang", "is", "has", "url", "retweets_of", "conversation_id", "place",
              "place_country", "point_radius", "bounding_box", "sample", "bio", "bio_location",
              "context", "entity", "followers_count", "url_title", "url_description"}
_DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
_DEFAULT_USER_FIELDS = ("id", "name", "username")
_EXPANSION_FIELDS = {"author_id": "author_id", "referenced_tweets.id": "referenced_tweets",
                     "referenced_tweets.id.author_id": "referenced_tweets", "in_reply_to_user_id": "in_reply_to_user_id",
                     "attachments.media_keys": "attachments", "geo.place_id": "geo",
                     "entities.mentions.username": "entities"}

_WORDS = ("the", "a", "new", "today", "why", "how", "data", "open", "we", "just", "love", "think",
          "about", "really", "great", "this", "week", "time", "people", "world", "city", "news",
          "science", "music", "game", "project", "release", "team", "idea", "morning", "night",
          "study", "paper", "python", "climate", "rust", "coffee", "cat", "dog", "weather", "art")
_TAGS = ("news", "science", "python", "climate", "music", "art", "ai", "opensource", "travel", "tbt")
_LANGS = ("en", "en", "en", "en", "es", "fr", "de", "ja", "pt", "und")
_SOURCES = ("X Web App", "X for iPhone", "X for Android", "TweetDeck Web App")
_PLACES = (("01a9a39529b27f36", "Manhattan, NY", "US", (-73.97, 40.78)),
           ("0a0de7bd49ef942d", "Paris, France", "FR", (2.35, 48.86)),
           ("5a110d312052166f", "San Francisco, CA", "US", (-122.42, 37.77)))


def _iso(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _now_iso() -> str:
    return _iso(int(time.time() * 1000))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- rules -----------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(-?"[^"]*"|\(|\)|[^\s()]+)')


class RuleSyntaxError(ValueError):
    """An invalid rule, with X-like details."""


def parse_rule(value: str) -> list[tuple[list[str], list[str]]]:
    """A rule's alternatives: ``[(positive terms, negated terms), ...]`` (parentheses flattened).

    Raises
    ------
    RuleSyntaxError
        For the obvious errors X rejects.

    Examples
    --------
    >>> parse_rule('python OR "data science" -snake')
    [(['python'], ['snake']), (['"data science"'], ['snake'])]
    >>> parse_rule("-cat")
    Traceback (most recent call last):
    ...
    streamkit.testing._x_v2_timeline.RuleSyntaxError: Rules must contain a non-negation term (at position 1)
    """
    if not isinstance(value, str) or not value.strip():
        raise RuleSyntaxError("Rules must not be empty")
    if len(value) > 512:
        raise RuleSyntaxError(f"Rule is {len(value)} characters long; rules may be at most 512 characters")
    if value.count('"') % 2:
        raise RuleSyntaxError("Rule has an unbalanced quote")
    depth = 0
    for c in value:
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0:
            break
    if depth != 0:
        raise RuleSyntaxError("Rule has unbalanced parentheses")
    tokens = [t for t in _TOKEN.findall(value) if t not in ("(", ")")]
    if tokens and (tokens[0] == "OR" or tokens[-1] == "OR"):
        raise RuleSyntaxError("Ambiguous use of OR: it needs a term on each side")
    groups: list[list[str]] = [[]]
    for tok in tokens:
        if tok == "OR":
            groups.append([])
        else:
            groups[-1].append(tok)
    negated_all: list[str] = []
    alternatives = []
    for group in groups:
        pos: list[str] = []
        neg: list[str] = []
        for tok in group:
            term, negated = (tok[1:], True) if tok.startswith("-") and len(tok) > 1 else (tok, False)
            op, sep, arg = term.partition(":")
            if sep and not term.startswith('"') and not term.startswith("http"):
                if op.lower() not in _OPERATORS:
                    raise RuleSyntaxError(f"Reference to invalid operator '{op}'. Operator is not available "
                                          "in current product or product packaging.")
                if not arg:
                    raise RuleSyntaxError(f"The operator '{op}:' needs a value")
            (neg if negated else pos).append(term)
        if not pos:
            raise RuleSyntaxError("Rules must contain a non-negation term (at position 1)")
        negated_all.extend(neg)
        alternatives.append((pos, neg))
    # X applies a trailing negation to the whole rule in practice; flattening keeps it simple.
    return [(pos, sorted(set(neg) | set(negated_all), key=negated_all.index)) for pos, neg in alternatives]


def _term_matches(term: str, t: dict[str, Any]) -> bool:
    low = term.lower()
    if low.startswith('"'):
        return low.strip('"') in t["_text"].lower()
    if low.startswith("#"):
        return low[1:] in t["_tags"]
    if low.startswith("@"):
        return low[1:] in t["_mentions"]
    op, sep, arg = low.partition(":")
    if sep and op in _OPERATORS:
        if op == "from":
            return arg.lstrip("@") == t["_author"].lower()
        if op == "lang":
            return arg == t.get("lang")
        if op == "is":
            return arg in t["_kinds"]
        if op == "has":
            return arg in t["_has"]
        return False
    return low in t["_words"]


def _rule_matches(alternatives: list[tuple[list[str], list[str]]], t: dict[str, Any]) -> bool:
    return any(all(_term_matches(p, t) for p in pos) and not any(_term_matches(n, t) for n in neg)
               for pos, neg in alternatives)


# -- the timeline ------------------------------------------------------------------------------

class _Timeline:
    """Posts created at ``rate`` per second since ``t0``, generated when first needed."""

    def __init__(self, *, seed: int, rate: float, limit: int | None, match_fraction: float) -> None:
        self.seed = seed
        self.rate = rate
        self.limit = limit
        self.match_fraction = match_fraction
        self.t0 = time.time()
        self.posts: list[dict[str, Any]] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        rng = random.Random(seed)
        self.users = [self._user(rng, i) for i in range(40)]
        self._by_name = {u["username"].lower(): u for u in self.users}

    def _user(self, rng: random.Random, i: int, name: str | None = None) -> dict[str, Any]:
        uid = str(10_000_000 + i * 7919 + rng.randrange(1000))
        username = name or f"{rng.choice(('ada', 'grace', 'alan', 'kate', 'lin', 'omar', 'sara', 'yuki'))}_{i}"
        created = int((self.t0 - rng.uniform(30, 4000) * 86400) * 1000)
        return {
            "id": uid, "name": username.replace("_", " ").title(), "username": username,
            "created_at": _iso(created), "description": f"Researcher #{i}. Views my own.",
            "location": rng.choice(("Berlin", "Lagos", "São Paulo", "Tokyo", "", "Earth")),
            "verified": rng.random() < 0.1, "protected": False,
            "public_metrics": {"followers_count": rng.randrange(5, 50_000), "following_count": rng.randrange(1, 3000),
                               "tweet_count": rng.randrange(10, 90_000), "listed_count": rng.randrange(0, 50)},
        }  # fmt: skip

    def user_named(self, name: str) -> dict[str, Any]:
        key = name.lower()
        if key not in self._by_name:
            user = self._user(random.Random(hash(key) & 0xFFFF), len(self.users), name=name)
            self.users.append(user)
            self._by_name[key] = user
        return self._by_name[key]

    def due(self, now: float) -> int:
        """How many posts exist by ``now``."""
        n = int(max(0.0, now - self.t0) * self.rate)
        return n if self.limit is None else min(n, self.limit)

    def advance(self, now: float, rules: list[tuple[str, str, list]]) -> None:
        for i in range(len(self.posts), self.due(now)):
            post = self._post(i, rules)
            self.posts.append(post)
            self.by_id[post["id"]] = post

    def _post(self, i: int, rules: list[tuple[str, str, list]]) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + i)
        ms = int(self.t0 * 1000 + i * 1000 / self.rate)
        pid = str(((ms - TWEPOCH_MS) << 22) | ((self.seed & 0x3FF) << 12) | (i & 0xFFF))
        author = self.users[rng.randrange(len(self.users))]
        lang = rng.choice(_LANGS)
        words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 14))]
        tags = [rng.choice(_TAGS) for _ in range(rng.choice((0, 0, 1, 2)))]
        if rules and rng.random() < self.match_fraction:
            _rid, value, alts = rng.choice(rules)
            for term in rng.choice(alts)[0]:
                low = term.lower()
                op, sep, arg = low.partition(":")
                if low.startswith("#"):
                    tags.append(term[1:])
                elif sep and op == "from":
                    author = self.user_named(term.partition(":")[2].lstrip("@"))
                elif sep and op == "lang":
                    lang = arg
                elif sep:
                    continue
                else:
                    words.insert(rng.randrange(len(words) + 1), term.strip('"'))
        mention = rng.choice(self.users) if rng.random() < 0.3 else None
        link = f"https://example.org/{rng.getrandbits(32):08x}" if rng.random() < 0.25 else None
        kind = "original"
        refs: list[dict[str, str]] = []
        roll = rng.random()
        earlier = self.posts[rng.randrange(len(self.posts))] if self.posts else None
        if earlier is not None and roll < 0.12:
            kind = "retweeted"
        elif earlier is not None and roll < 0.2:
            kind = "quoted"
        elif earlier is not None and roll < 0.32:
            kind = "replied_to"
        text = " ".join(words)
        entities: dict[str, Any] = {}
        pieces = []
        if kind == "replied_to":
            pieces.append("@" + earlier["_author"])  # type: ignore[index]
        pieces.append(text)
        pieces += ["#" + t for t in tags]
        if mention is not None:
            pieces.append("@" + mention["username"])
        if link:
            pieces.append("https://t.co/" + f"{rng.getrandbits(40):010x}")
        body = " ".join(pieces)
        if kind == "retweeted":
            inner = earlier
            body = f"RT @{inner['_author']}: {inner['text']}"[:140]  # type: ignore[index]
            tags = list(inner["_tag_list"])  # type: ignore[index]
        for name, key in (("hashtags", "tag"),):
            found = [(m.start(), m.end(), m.group(1)) for m in re.finditer(r"#(\w+)", body)]
            if found:
                entities[name] = [{"start": a, "end": b, key: tag} for a, b, tag in found]
        found = [(m.start(), m.end(), m.group(1)) for m in re.finditer(r"@(\w+)", body)]
        if found:
            entities["mentions"] = [{"start": a, "end": b, "username": u,
                                     "id": self._by_name[u.lower()]["id"] if u.lower() in self._by_name else "1"}
                                    for a, b, u in found]
        if link and kind != "retweeted":
            short = body.rsplit(" ", 1)[1]
            entities["urls"] = [{"start": len(body) - len(short), "end": len(body), "url": short,
                                 "expanded_url": link, "display_url": link.split("//", 1)[1][:26]}]
        post: dict[str, Any] = {
            "id": pid, "text": body, "edit_history_tweet_ids": [pid], "created_at": _iso(ms),
            "author_id": author["id"], "conversation_id": pid, "lang": lang,
            "source": rng.choice(_SOURCES), "possibly_sensitive": False, "reply_settings": "everyone",
            "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0,
                               "bookmark_count": 0, "impression_count": rng.randrange(0, 3)},
        }  # fmt: skip
        if entities:
            post["entities"] = entities
        if kind != "original":
            refs.append({"type": kind, "id": earlier["id"]})  # type: ignore[index]
            post["referenced_tweets"] = refs
        if kind == "replied_to":
            post["in_reply_to_user_id"] = earlier["author_id"]  # type: ignore[index]
            post["conversation_id"] = earlier["conversation_id"]  # type: ignore[index]
        if rng.random() < 0.1:
            key = f"3_{pid}"
            post["attachments"] = {"media_keys": [key]}
            post["_media"] = {"media_key": key, "type": "photo",
                              "url": f"https://pbs.twimg.com/media/{key}.jpg", "width": 1200, "height": 800}
        if rng.random() < 0.08:
            pl = rng.choice(_PLACES)
            post["geo"] = {"place_id": pl[0]}
            if rng.random() < 0.5:
                post["geo"]["coordinates"] = {"type": "Point", "coordinates": list(pl[3])}
            post["_place"] = {"id": pl[0], "full_name": pl[1], "country_code": pl[2], "name": pl[1].split(",")[0],
                              "place_type": "city", "country": pl[2]}
        if kind == "original" and rng.random() < 0.05:
            long_text = (body + " ") * 8
            post["note_tweet"] = {"text": long_text.strip()}
            post["text"] = long_text[:277] + "…"
        post["_author"] = author["username"]
        post["_text"] = post.get("note_tweet", {}).get("text", post["text"])
        post["_tag_list"] = tags
        post["_tags"] = {t.lower() for t in tags}
        post["_mentions"] = {m["username"].lower() for m in entities.get("mentions", [])}
        post["_words"] = set(re.findall(r"[\w']+", post["_text"].lower()))
        post["_kinds"] = {{"retweeted": "retweet", "quoted": "quote", "replied_to": "reply"}.get(kind, "original")}
        post["_has"] = {k for k, ok in (("hashtags", tags), ("mentions", mention), ("links", link),
                                        ("media", "attachments" in post), ("geo", "geo" in post)) if ok}
        post["_ms"] = ms
        return post


def _public(obj: dict[str, Any], fields: Iterable[str], always: Iterable[str]) -> dict[str, Any]:
    keep = set(fields) | set(always)
    return {k: v for k, v in obj.items() if k in keep and not k.startswith("_")}
