"""A real local X API v2 server: the filtered and sample streams and the rules endpoints.

:class:`XV2Server` speaks HTTP/1.1 on 127.0.0.1 like ``api.x.com``:

* ``GET /2/tweets/search/stream/rules`` and ``POST`` (``add`` with tags, ``delete`` by ids or
  values, ``dry_run``, ``delete_all``): stored rules with snowflake ids, validation of obvious
  syntax errors (unbalanced quotes or parentheses, negation only, unknown operators, too long),
  ``DuplicateRule`` and the rule cap, answered with X's ``data``/``meta``/``errors`` shapes
  and ``x-rate-limit-*`` headers;
* ``GET /2/tweets/search/stream`` (posts matching the rules: keywords, phrases, ``#tags``,
  ``from:``, ``lang:``, ``is:``, ``-`` negation, ``OR``; each message carries
  ``matching_rules`` with the rule ids and tags) and ``GET /2/tweets/sample/stream``;
  ``tweet.fields``, ``expansions``, ``user.fields``, ``media.fields``, ``place.fields``
  honoured (only ``id``, ``text``, ``edit_history_tweet_ids`` by default, as X does);
* a bearer token checked on every request (401 with X's problem body otherwise);
* chunked transfer with messages straddling chunk borders and ``\\r\\n`` keep-alives after
  ``keepalive_interval`` seconds of silence (X: 20 s);
* ``backfill_minutes`` honoured: a connection first gets the matching posts of the last N
  minutes.

Posts form one timeline, created at ``rate`` per second from the moment the server starts,
whether anyone is connected or not (as on X): a client that is away misses the posts created
meanwhile unless backfill brings them back. :attr:`XV2Server.sent` records every post id
completely handed to a socket (repeats included), and :meth:`XV2Server.matching_ids` the posts
of the timeline that match the current rules, so tests can prove no loss and no duplicates.

Faults (:class:`streamkit.testing.Fault`, one per stream connection, ``after`` counting posts
sent on that connection): ``Fault.http(429)`` (TooManyConnections, with ``x-rate-limit-*``
headers) or any status, ``Fault.disconnect(after)`` (the ``operational-disconnect`` error
object, then the response ends), ``Fault.cut(after)`` (half a message, then the TCP
connection drops), ``Fault.stall(after, seconds)``, ``Fault.end(after)``,
``Fault.garbage(after)`` (one malformed message) and ``Fault.inject(after, messages)``.

Examples
--------
>>> import requests
>>> from streamkit.testing import XV2Server
>>> with XV2Server(rate=200, tweets=50) as server:
...     auth = {"Authorization": "Bearer " + server.bearer_token}
...     r = requests.post(server.url + "/2/tweets/search/stream/rules", headers=auth,
...                       json={"add": [{"value": "python", "tag": "py"}]})
...     with requests.get(server.url + "/2/tweets/search/stream", headers=auth, stream=True,
...                       params={"expansions": "author_id"}) as s:
...         line = next(x for x in s.iter_lines() if x.strip())
>>> r.json()["meta"]["summary"]["created"], b'"matching_rules"' in line, b'"users"' in line
(1, True, True)
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
import math
import random
import re
import selectors
import socket
import time
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

from ._faults import Fault
from ._generate import TWEPOCH_MS
from ._httpd import REASONS, BadRequest, Request, read_request
from ._loopback import LoopbackServer
from ._render import delivered_payload, frame_chunks
from ._server import TEST_CREDENTIALS, RequestRecord

__all__ = ["RULES_PATH", "X_SAMPLE_PATH", "X_STREAM_PATH", "XV2Server", "parse_rule"]

log = logging.getLogger("streamkit.testing")

X_STREAM_PATH = "/2/tweets/search/stream"
X_SAMPLE_PATH = "/2/tweets/sample/stream"
RULES_PATH = "/2/tweets/search/stream/rules"
_PROBLEMS = "https://api.twitter.com/2/problems/"
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
    streamkit.testing._x_v2.RuleSyntaxError: Rules must contain a non-negation term (at position 1)
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
        pos, neg = [], []
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


# -- the server --------------------------------------------------------------------------------

class XV2Server(LoopbackServer):
    """A local X API v2 endpoint (streams and rules) for tests, demos and notebooks.

    Parameters
    ----------
    host, port : str, int
        127.0.0.1 and a free port by default; :attr:`url` is the ``base_url`` to give clients.
    rate : float, default 50.0
        Posts created per second on the timeline.
    tweets : int or None
        Posts on the timeline in all (``None``: endless); afterwards only keep-alives.
    keepalive_interval : float, default 20.0
        Seconds of silence before a ``\\r\\n`` keep-alive (X promises at least every 20 s).
    seed : int
        Seeds the generated content.
    faults : iterable of Fault
        Consumed one per stream connection attempt (see the module docstring).
    bearer_token : str
        The token the server accepts (``TEST_CREDENTIALS["bearer_token"]`` by default).
    check_auth : bool
        False accepts any request.
    rules : iterable of str or (value, tag)
        Rules stored at start.
    max_rules : int, default 25
        The rule cap (X's Basic/Pro levels allow 5 to 1,000).
    max_connections : int or None
        More simultaneous stream connections than this get HTTP 429 TooManyConnections.
    match_fraction : float, default 0.5
        Share of posts built to match a stored rule (the rest match by chance, if at all).
    chunk_bytes : int, default 4096
        HTTP chunk size; chunk borders do not follow message borders.
    rules_limit, rules_window : int, float
        Rules requests allowed per window of seconds (X: 450 per 15 minutes); more get HTTP 429.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, rate: float = 50.0,
                 tweets: int | None = None, keepalive_interval: float = 20.0, seed: int = 0,
                 faults: Iterable[Fault] | None = None,
                 bearer_token: str = TEST_CREDENTIALS["bearer_token"], check_auth: bool = True,
                 rules: Iterable[Any] = (), max_rules: int = 25, max_connections: int | None = None,
                 match_fraction: float = 0.5, chunk_bytes: int = 4096, rules_limit: int = 450,
                 rules_window: float = 900.0) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if keepalive_interval <= 0:
            raise ValueError(f"keepalive_interval must be > 0, got {keepalive_interval}")
        super().__init__(host=host, port=port)
        self.rate = float(rate)
        self.keepalive_interval = float(keepalive_interval)
        self.seed = seed
        self.check_auth = check_auth
        self.max_rules = max_rules
        self.max_connections = max_connections
        self.chunk_bytes = chunk_bytes
        self.__token = bearer_token
        self._faults: collections.deque[Fault] = collections.deque(faults or ())
        self._timeline = _Timeline(seed=seed, rate=self.rate, limit=tweets, match_fraction=match_fraction)
        self._rules: dict[str, tuple[str, str, list]] = {}  # id -> (value, tag, alternatives)
        self._rule_seq = 0
        self._sent: list[str] = []
        self._sent_messages: list[dict[str, Any]] = []
        self._requests: list[RequestRecord] = []
        self._faults_injected: collections.Counter[str] = collections.Counter()
        self._active = 0
        self._connections: list[dict[str, Any]] = []
        self.rules_limit = rules_limit
        self.rules_window = rules_window
        self._rate_remaining = rules_limit
        self._rate_reset = time.time() + rules_window
        for rule in rules:
            value, tag = (rule, "") if isinstance(rule, str) else (rule[0], rule[1] or "")
            self._store_rule(value, tag, parse_rule(value))

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<XV2Server {state} url={self.url!r} rules={len(self._rules)} sent={len(self._sent)}>"

    @property
    def bearer_token(self) -> str:
        """The (public, test-only) bearer token this server accepts."""
        return self.__token

    def client(self, **options: Any) -> Any:
        """A :class:`streamkit.StreamingClient` pointed at this server.

        Examples
        --------
        >>> from streamkit import StreamRule
        >>> with XV2Server() as server:
        ...     server.client().add_rules([StreamRule("cat", tag="cats")]).data[0].value
        'cat'
        """
        from streamkit.x_client import StreamingClient

        return StreamingClient(self.__token, base_url=self.url, **options)

    # -- observations -------------------------------------------------------------------
    @property
    def sent(self) -> list[int]:
        """Ids of posts completely handed to a socket, in order (repeats included)."""
        with self._lock:
            return [int(x) for x in self._sent]

    @property
    def sent_messages(self) -> list[dict[str, Any]]:
        """Non-post messages completely sent (errors objects, injected messages)."""
        with self._lock:
            return list(self._sent_messages)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> list[dict[str, Any]]:
        """One record per stream connection that got ``200``: time, path, params, backfilled posts."""
        with self._lock:
            return [dict(c) for c in self._connections]

    @property
    def faults_injected(self) -> collections.Counter[str]:
        """How many faults of each kind were injected."""
        with self._lock:
            return collections.Counter(self._faults_injected)

    @property
    def rules(self) -> list[dict[str, str]]:
        """The stored rules, as X lists them."""
        with self._lock:
            return [self._rule_json(rid) for rid in self._rules]

    def add_faults(self, *faults: Fault) -> None:
        """Queue faults for the next stream connections."""
        with self._lock:
            self._faults.extend(faults)

    def timeline_ids(self, *, since: float | None = None, until: float | None = None) -> list[int]:
        """Ids of every post created so far (between ``since`` and ``until``, ``time.time()``)."""
        with self._lock:
            self._timeline.advance(time.time(), list(self._rules.values()))
            return [int(p["id"]) for p in self._timeline.posts
                    if (since is None or p["_ms"] >= since * 1000) and (until is None or p["_ms"] <= until * 1000)]

    def matching_ids(self, *, since: float | None = None, until: float | None = None) -> list[int]:
        """Ids of the posts created so far that match the current rules (what a filtered
        stream connected all along would have delivered)."""
        with self._lock:
            self._timeline.advance(time.time(), list(self._rules.values()))
            rules = [alts for _v, _t, alts in self._rules.values()]
            return [int(p["id"]) for p in self._timeline.posts
                    if (since is None or p["_ms"] >= since * 1000) and (until is None or p["_ms"] <= until * 1000)
                    and any(_rule_matches(a, p) for a in rules)]

    def created_at(self, post_id: int) -> float:
        """``time.time()`` at which a post of the timeline was created."""
        return ((int(post_id) >> 22) + TWEPOCH_MS) / 1000

    def wait_sent(self, n: int, timeout: float | None = None) -> bool:
        """Block until at least ``n`` posts were sent; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._sent) >= n or self._stop_event.is_set(),
                                       timeout) and len(self._sent) >= n

    # -- HTTP ----------------------------------------------------------------------------
    def _respond(self, sock: socket.socket, req: Request | None, status: int, body: Any,
                 headers: Mapping[str, str] | None = None) -> None:
        payload = _dumps(body)
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'OK' if status == 200 else 'Error')}",
                 "content-type: application/json; charset=utf-8", f"content-length: {len(payload)}",
                 f"date: {formatdate(usegmt=True)}", "server: streamkit-testing", "connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        with self._lock:
            self._requests.append(RequestRecord(req.received if req else time.monotonic(),
                                                req.method if req else "", req.path if req else "",
                                                parse_qs(req.query) if req else {}, status))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        """The rules endpoints' ``x-rate-limit-*`` headers, and whether this request is over."""
        now = time.time()
        with self._lock:
            if now >= self._rate_reset:
                self._rate_remaining, self._rate_reset = self.rules_limit, now + self.rules_window
            over = self._rate_remaining == 0
            self._rate_remaining = max(0, self._rate_remaining - 1)
            remaining, reset = self._rate_remaining, self._rate_reset
        return {"x-rate-limit-limit": str(self.rules_limit), "x-rate-limit-remaining": str(remaining),
                "x-rate-limit-reset": str(math.ceil(reset))}, over

    def _handle(self, sock: socket.socket, index: int) -> None:
        try:
            req = read_request(sock)
        except BadRequest as exc:
            self._respond(sock, None, exc.status, {"title": "Invalid Request", "detail": exc.message,
                                                   "type": _PROBLEMS + "invalid-request"})
            return
        if req is None:
            return
        if req.path not in (RULES_PATH, X_STREAM_PATH, X_SAMPLE_PATH):
            self._respond(sock, req, 404, {"title": "Not Found Error", "detail": f"Sorry, no such endpoint {req.path}",
                                           "type": "about:blank", "status": 404})
            return
        auth = req.headers.get("authorization", "")
        if self.check_auth and auth != f"Bearer {self.__token}":
            self._respond(sock, req, 401, {"title": "Unauthorized", "type": "about:blank",
                                           "status": 401, "detail": "Unauthorized"})
            return
        if req.path == RULES_PATH:
            self._rules_endpoint(sock, req)
        else:
            self._stream(sock, req, index)

    # -- rules ---------------------------------------------------------------------------
    def _rule_json(self, rid: str) -> dict[str, str]:
        value, tag, _ = self._rules[rid]
        out = {"id": rid, "value": value}
        if tag:
            out["tag"] = tag
        return out

    def _next_rule_id(self) -> str:
        self._rule_seq += 1
        ms = int(time.time() * 1000)
        return str(((ms - TWEPOCH_MS) << 22) | (7 << 12) | (self._rule_seq & 0xFFF))

    def _store_rule(self, value: str, tag: str, alts: list) -> str:
        rid = self._next_rule_id()
        self._rules[rid] = (value, tag, alts)
        return rid

    def _rules_endpoint(self, sock: socket.socket, req: Request) -> None:
        query = {k: v[-1] for k, v in parse_qs(req.query).items()}
        headers, over = self._rate_headers()
        if over:
            self._respond(sock, req, 429, {"title": "Too Many Requests", "detail": "Too Many Requests",
                                           "type": "about:blank", "status": 429}, headers)
            return
        if req.method == "GET":
            ids = [x for x in query.get("ids", "").split(",") if x]
            with self._lock:
                data = [self._rule_json(r) for r in self._rules if not ids or r in ids]
            body: dict[str, Any] = {"meta": {"sent": _now_iso(), "result_count": len(data)}}
            if data:
                body["data"] = data
            self._respond(sock, req, 200, body, headers)
            return
        if req.method != "POST":
            self._respond(sock, req, 405, {"title": "Method Not Allowed", "type": "about:blank", "status": 405,
                                           "detail": f"{req.path} takes GET or POST"}, {"allow": "GET, POST"})
            return
        dry_run = query.get("dry_run", "").lower() == "true"
        try:
            payload = json.loads(req.body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            self._invalid(sock, req, f"The request body is not valid JSON: {exc}", headers)
            return
        if query.get("delete_all", "").lower() == "true":
            payload = {"delete": {"ids": list(self._rules)}}
        if "add" in payload and isinstance(payload["add"], list):
            self._add(sock, req, payload["add"], dry_run, headers)
        elif "delete" in payload and isinstance(payload["delete"], dict):
            self._delete(sock, req, payload["delete"], dry_run, headers)
        else:
            self._invalid(sock, req, "The body must hold an 'add' array or a 'delete' object with 'ids' or 'values'",
                          headers)

    def _invalid(self, sock: socket.socket, req: Request, message: str, headers: Mapping[str, str]) -> None:
        self._respond(sock, req, 400, {"errors": [{"parameters": {}, "message": message}],
                                       "title": "Invalid Request",
                                       "detail": "One or more parameters to your request was invalid.",
                                       "type": _PROBLEMS + "invalid-request"}, headers)

    def _add(self, sock: socket.socket, req: Request, add: list[Any], dry_run: bool,
             headers: Mapping[str, str]) -> None:
        errors: list[dict[str, Any]] = []
        valid: list[tuple[str, str, list]] = []
        with self._lock:
            existing = {v: rid for rid, (v, _t, _a) in self._rules.items()}
            for item in add:
                value = item.get("value") if isinstance(item, dict) else None
                tag = item.get("tag") or "" if isinstance(item, dict) else ""
                if not isinstance(value, str):
                    errors.append({"title": "UnprocessableEntity", "detail": "Each rule needs a 'value' string",
                                   "type": _PROBLEMS + "invalid-rules", "value": value})
                    continue
                if value in existing or any(v == value for v, _t, _a in valid):
                    errors.append({"value": value, "id": existing.get(value, ""), "title": "DuplicateRule",
                                   "type": _PROBLEMS + "duplicate-rules"})
                    continue
                try:
                    valid.append((value, str(tag), parse_rule(value)))
                except RuleSyntaxError as exc:
                    errors.append({"value": value, "details": [str(exc)], "title": "UnprocessableEntity",
                                   "type": _PROBLEMS + "invalid-rules"})
            created: list[dict[str, str]] = []
            if len(self._rules) + len(valid) > self.max_rules:
                errors.append({"title": "RulesCapExceeded", "type": _PROBLEMS + "rule-cap",
                               "detail": f"Rule cap exceeded: this app may have at most {self.max_rules} rules "
                                         f"({len(self._rules)} exist, {len(valid)} more asked for)."})
                valid_count, valid = len(valid), []
            else:
                valid_count = len(valid)
            for value, tag, alts in valid:
                if dry_run:
                    rid = self._next_rule_id()
                    created.append({"id": rid, "value": value, **({"tag": tag} if tag else {})})
                else:
                    rid = self._store_rule(value, tag, alts)
                    created.append(self._rule_json(rid))
        body: dict[str, Any] = {"meta": {"sent": _now_iso(), "summary": {
            "created": len(created), "not_created": len(add) - len(created),
            "valid": valid_count, "invalid": len(add) - valid_count}}}
        if created:
            body["data"] = created
        if errors:
            body["errors"] = errors
        self._respond(sock, req, 200, body, headers)

    def _delete(self, sock: socket.socket, req: Request, delete: dict[str, Any], dry_run: bool,
                headers: Mapping[str, str]) -> None:
        ids = [str(x) for x in delete.get("ids") or []]
        values = [str(x) for x in delete.get("values") or []]
        errors: list[dict[str, Any]] = []
        deleted = 0
        with self._lock:
            by_value = {v: rid for rid, (v, _t, _a) in self._rules.items()}
            targets = []
            for rid in ids:
                (targets.append(rid) if rid in self._rules else errors.append(
                    {"id": rid, "title": "Invalid Request", "detail": f"Rule does not exist: {rid}",
                     "type": _PROBLEMS + "invalid-request"}))
            for value in values:
                (targets.append(by_value[value]) if value in by_value else errors.append(
                    {"value": value, "title": "Invalid Request", "detail": f"Rule does not exist: {value}",
                     "type": _PROBLEMS + "invalid-request"}))
            for rid in dict.fromkeys(targets):
                deleted += 1
                if not dry_run:
                    del self._rules[rid]
        body: dict[str, Any] = {"meta": {"sent": _now_iso(), "summary": {
            "deleted": deleted, "not_deleted": len(ids) + len(values) - deleted}}}
        if errors:
            body["errors"] = errors
        self._respond(sock, req, 200, body, headers)

    # -- streams -------------------------------------------------------------------------
    def _stream(self, sock: socket.socket, req: Request, index: int) -> None:
        if req.method != "GET":
            self._respond(sock, req, 405, {"title": "Method Not Allowed", "type": "about:blank", "status": 405,
                                           "detail": f"{req.path} takes GET"}, {"allow": "GET"})
            return
        params = {k: v[-1] for k, v in parse_qs(req.query).items()}
        try:
            backfill = int(params.get("backfill_minutes", "0") or 0)
            if not 0 <= backfill <= 5:
                raise ValueError
        except ValueError:
            self._invalid(sock, req, "The `backfill_minutes` query parameter value "
                                     f"[{params.get('backfill_minutes')}] is not one of [0-5]", {})
            return
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "http":
            assert fault.code is not None
            self._note_fault(fault, index)
            self._stream_refused(sock, req, fault.code)
            return
        with self._lock:
            too_many = self.max_connections is not None and self._active >= self.max_connections
            if not too_many:
                self._active += 1
        if too_many:
            if fault is not None:
                with self._lock:
                    self._faults.appendleft(fault)
            self._stream_refused(sock, req, 429)
            return
        try:
            _StreamSession(self, sock, req, params, backfill, fault, index).run()
        finally:
            with self._lock:
                self._active -= 1

    def _stream_refused(self, sock: socket.socket, req: Request, code: int) -> None:
        if code == 429:
            body = {"title": "ConnectionException", "detail": "This stream is currently at the maximum allowed "
                    "connection limit.", "connection_issue": "TooManyConnections",
                    "type": _PROBLEMS + "streaming-connection"}
            headers = {"x-rate-limit-limit": "50", "x-rate-limit-remaining": "0",
                       "x-rate-limit-reset": str(int(time.time()) + 900)}
        else:
            body = {"title": REASONS.get(code, "Error"), "detail": REASONS.get(code, "Error"),
                    "type": "about:blank", "status": code}
            headers = {}
        self._respond(sock, req, code, body, headers)

    def _note_fault(self, fault: Fault, index: int) -> None:
        with self._lock:
            self._faults_injected[fault.kind] += 1
        log.debug("x-v2 connection %d: injecting %r", index, fault)


class _StreamSession:
    """One ``200 OK`` stream response."""

    def __init__(self, server: XV2Server, sock: socket.socket, req: Request, params: dict[str, str],
                 backfill: int, fault: Fault | None, index: int) -> None:
        self.srv = server
        self.sock = sock
        self.sample = req.path == X_SAMPLE_PATH
        self.fault = fault if fault is not None and fault.kind != "none" else None
        self.index = index
        self.rng = random.Random(server.seed * 7919 + index)
        split = lambda k: [x for x in params.get(k, "").split(",") if x]  # noqa: E731
        self.tweet_fields = split("tweet.fields")
        self.expansions = set(split("expansions"))
        self.user_fields = split("user.fields")
        self.expansion_fields = {_EXPANSION_FIELDS[e] for e in self.expansions if e in _EXPANSION_FIELDS}
        self.media_fields = split("media.fields")
        self.place_fields = split("place.fields")
        self.sent_here = 0
        self.last_write = time.monotonic()
        now = time.time()
        tl = server._timeline
        with server._lock:
            tl.advance(now, list(server._rules.values()))
            self.cursor = len(tl.posts)
            if backfill:
                since_ms = (now - backfill * 60) * 1000
                while self.cursor > 0 and tl.posts[self.cursor - 1]["_ms"] >= since_ms:
                    self.cursor -= 1
            server._connections.append({"time": now, "path": req.path, "params": params,
                                        "backfilled": len(tl.posts) - self.cursor})
            server._requests.append(RequestRecord(req.received, req.method, req.path,
                                                  {k: [v] for k, v in params.items()}, 200))

    # -- rendering -----------------------------------------------------------------------
    def _message(self, post: dict[str, Any], rules: list[dict[str, str]] | None) -> bytes:
        tl = self.srv._timeline
        # An expansion brings its field into `data` too, as X does.
        data = _public(post, [*self.tweet_fields, *self.expansion_fields], _DEFAULT_TWEET_FIELDS)
        includes: dict[str, list[dict[str, Any]]] = {}
        users: dict[str, dict[str, Any]] = {}
        by_id = {u["id"]: u for u in tl.users}
        ref_posts = [tl.by_id[r["id"]] for r in post.get("referenced_tweets", []) if r["id"] in tl.by_id]
        if "author_id" in self.expansions:
            users[post["author_id"]] = by_id[post["author_id"]]
        if "in_reply_to_user_id" in self.expansions and post.get("in_reply_to_user_id") in by_id:
            users[post["in_reply_to_user_id"]] = by_id[post["in_reply_to_user_id"]]
        if "entities.mentions.username" in self.expansions:
            for m in post.get("entities", {}).get("mentions", []):
                if m["id"] in by_id:
                    users[m["id"]] = by_id[m["id"]]
        if "referenced_tweets.id" in self.expansions and ref_posts:
            includes["tweets"] = [_public(p, self.tweet_fields, _DEFAULT_TWEET_FIELDS) for p in ref_posts]
        if "referenced_tweets.id.author_id" in self.expansions:
            for p in ref_posts:
                users.setdefault(p["author_id"], by_id[p["author_id"]])
        if "attachments.media_keys" in self.expansions and "_media" in post:
            includes["media"] = [_public(post["_media"], self.media_fields, ("media_key", "type"))]
        if "geo.place_id" in self.expansions and "_place" in post:
            includes["places"] = [_public(post["_place"], self.place_fields, ("id", "full_name"))]
        if users:
            includes["users"] = [_public(u, self.user_fields, _DEFAULT_USER_FIELDS) for u in users.values()]
        msg: dict[str, Any] = {"data": data}
        if includes:
            msg["includes"] = {k: includes[k] for k in ("users", "tweets", "media", "places") if k in includes}
        if rules is not None:
            msg["matching_rules"] = rules
        return _dumps(msg)

    def _matching(self, post: dict[str, Any], rules: dict[str, tuple[str, str, list]]) -> list[dict[str, str]]:
        return [{"id": rid, "tag": tag} for rid, (_v, tag, alts) in rules.items() if _rule_matches(alts, post)]

    # -- I/O -----------------------------------------------------------------------------
    def _send(self, wire: bytes) -> int:
        total = 0
        with memoryview(wire) as view:
            try:
                while total < len(wire):
                    total += self.sock.send(view[total:])
            except OSError:
                pass
        self.last_write = time.monotonic()
        return total

    def _send_messages(self, items: list[tuple[str | None, bytes]]) -> bool:
        """Send (post id or None, message) pairs in HTTP chunks; record what went out whole."""
        payload = b"".join(m + b"\r\n" for _, m in items)
        wire, spans = frame_chunks(payload, self.srv.chunk_bytes, self.rng)
        sent = self._send(wire)
        delivered = delivered_payload(spans, sent) if sent < len(wire) else len(payload)
        end = 0
        with self.srv._cond:
            for pid, m in items:
                end += len(m) + 2
                if end > delivered:
                    break
                if pid is not None:
                    self.srv._sent.append(pid)
                    self.sent_here += 1
                else:
                    try:
                        self.srv._sent_messages.append(json.loads(m))
                    except ValueError:
                        self.srv._sent_messages.append({"raw": m.decode("utf-8", "replace")})
            self.srv._cond.notify_all()
        return sent == len(wire)

    def _idle_until(self, deadline: float, sel: selectors.BaseSelector) -> bool:
        stop = self.srv._stop_event
        while not stop.is_set():
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return True
            if sel.select(min(timeout, 0.5)):
                try:
                    if not self.sock.recv(65536):
                        return False
                except OSError:
                    return False
        return False

    def run(self) -> None:
        head = ("HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
                f"date: {formatdate(usegmt=True)}\r\nserver: streamkit-testing\r\n"
                "transfer-encoding: chunked\r\nconnection: close\r\n"
                "x-rate-limit-limit: 50\r\nx-rate-limit-remaining: 49\r\n"
                f"x-rate-limit-reset: {int(time.time()) + 900}\r\n\r\n").encode("latin-1")
        self.sock.settimeout(None)
        if self._send(head) != len(head):
            return
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            self._loop(sel)

    def _loop(self, sel: selectors.BaseSelector) -> None:
        srv = self.srv
        tl = srv._timeline
        while not srv._stop_event.is_set():
            fault = self.fault
            if fault is not None and self.sent_here >= fault.after:
                self.fault = None
                srv._note_fault(fault, self.index)
                if self._inject(fault, sel):
                    return
                continue
            with srv._lock:
                tl.advance(time.time(), list(srv._rules.values()))
                posts = tl.posts[self.cursor:]
                rules = dict(srv._rules)
            items: list[tuple[str | None, bytes]] = []
            taken = 0
            for post in posts:
                if fault is not None and self.sent_here + len(items) >= fault.after:
                    break
                taken += 1
                if self.sample:
                    items.append((post["id"], self._message(post, None)))
                else:
                    matched = self._matching(post, rules)
                    if matched:
                        items.append((post["id"], self._message(post, matched)))
                if len(items) >= 256:
                    break
            self.cursor += taken
            if items:
                if not self._send_messages(items):
                    return
                continue
            if taken:
                continue
            deadline = self.last_write + srv.keepalive_interval
            if tl.limit is None or len(tl.posts) < tl.limit:
                next_at = tl.t0 + (len(tl.posts) + 1) / tl.rate
                deadline = min(deadline, time.monotonic() + max(0.0, next_at - time.time()))
            if not self._idle_until(deadline, sel):
                return
            if time.monotonic() - self.last_write >= srv.keepalive_interval:
                if self._send(b"2\r\n\r\n\r\n") != 7:
                    return

    def _inject(self, fault: Fault, sel: selectors.BaseSelector) -> bool:
        """Carry out a fault; True when the connection ends with it."""
        kind = fault.kind
        if kind == "disconnect":
            err = {"errors": [{"title": "operational-disconnect", "disconnect_type": "OperationalDisconnect",
                               "detail": "This stream has been disconnected for operational reasons.",
                               "type": _PROBLEMS + "operational-disconnect"}]}
            self._send_messages([(None, _dumps(err))])
            self._send(b"0\r\n\r\n")
            return True
        if kind == "end":
            self._send(b"0\r\n\r\n")
            return True
        if kind == "cut":
            half = b'{"data":{"id":"1","text":"this message is cut in the mid'
            self._send(b"%x\r\n%b\r\n" % (len(half), half))
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if kind == "stall":
            self._idle_until(time.monotonic() + fault.seconds, sel)
            return True
        if kind == "garbage":
            self._send_messages([(None, b'{"data":{"id":"12","text":"trunc')])
            return False
        if kind == "inject":
            self._send_messages([(None, m if isinstance(m, bytes) else _dumps(m)) for m in fault.messages])
            return False
        return False
