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

import json
import logging
import math
import random
import selectors
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from ._faults import Fault, FaultQueue
from ._generate import TWEPOCH_MS
from ._httpd import REASONS, BadRequest, Request, http_response, read_request, response_head
from ._loopback import LoopbackServer
from ._render import delivered_payload, frame_chunks
from ._server import TEST_CREDENTIALS, RequestRecord
from ._sockio import idle_until, send_counted
from ._x_v2_timeline import (
    _DEFAULT_TWEET_FIELDS,
    _DEFAULT_USER_FIELDS,
    _EXPANSION_FIELDS,
    RuleSyntaxError,
    _dumps,
    _now_iso,
    _public,
    _rule_matches,
    _Timeline,
    parse_rule,
)

__all__ = ["RULES_PATH", "X_SAMPLE_PATH", "X_STREAM_PATH", "XV2Server", "parse_rule"]

log = logging.getLogger("streamkit.testing")

X_STREAM_PATH = "/2/tweets/search/stream"
X_SAMPLE_PATH = "/2/tweets/sample/stream"
RULES_PATH = "/2/tweets/search/stream/rules"
_PROBLEMS = "https://api.twitter.com/2/problems/"
# -- the server --------------------------------------------------------------------------------

class XV2Server(FaultQueue, LoopbackServer):
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
        self._init_faults(faults)
        self._timeline = _Timeline(seed=seed, rate=self.rate, limit=tweets, match_fraction=match_fraction)
        self._rules: dict[str, tuple[str, str, list]] = {}  # id -> (value, tag, alternatives)
        self._rule_seq = 0
        self._sent: list[str] = []
        self._sent_messages: list[dict[str, Any]] = []
        self._requests: list[RequestRecord] = []
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
    def rules(self) -> list[dict[str, str]]:
        """The stored rules, as X lists them."""
        with self._lock:
            return [self._rule_json(rid) for rid in self._rules]

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
        with self._lock:
            self._requests.append(RequestRecord(req.received if req else time.monotonic(),
                                                req.method if req else "", req.path if req else "",
                                                parse_qs(req.query) if req else {}, status))
        sock.sendall(http_response(status, payload, "application/json; charset=utf-8", headers))

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
        fault = self._take_fault()
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
        body: dict[str, Any]
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
        total = send_counted(self.sock, wire)
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
        return idle_until(self.sock, self.srv._stop_event, deadline, sel, poll=0.5)

    def run(self) -> None:
        head = response_head(200, "application/json; charset=utf-8", {
            "x-rate-limit-limit": "50", "x-rate-limit-remaining": "49",
            "x-rate-limit-reset": str(int(time.time()) + 900)})
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
