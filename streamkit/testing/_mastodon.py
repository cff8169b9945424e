"""A real local Mastodon-like server on 127.0.0.1: streaming (SSE and WebSocket) and REST timelines.

:class:`MastodonServer` publishes a deterministic timeline of realistic statuses (the
Status entity of Mastodon's documentation: accounts local and remote, HTML content with
hashtags and mentions, media, cards, languages), with edits (``status.update``) and
deletes, on a clock that starts with the first streaming connection. It serves

* ``GET /api/v1/streaming/{public,public/local,public/remote,hashtag,hashtag/local,user,list}``
  as chunked ``text/event-stream`` exactly as Mastodon's streaming server writes it
  (``:)`` first, ``:thump`` heartbeats, ``event:``/``data:`` pairs);
* ``GET /api/v1/streaming`` upgraded to a WebSocket, ``{"type": "subscribe", ...}``
  messages, events as ``{"stream": [...], "event": ..., "payload": "<JSON>"}``, pings;
* ``GET /api/v1/timelines/{public,tag/:tag,home,list/:id}`` with ``max_id``,
  ``since_id``, ``min_id``, ``limit`` (max 40) and ``Link`` headers;
* ``GET /api/v1/streaming/health`` and ``GET /api/v2/instance`` (with
  ``configuration.urls.streaming``).

Bearer tokens are checked (401 with Mastodon's ``{"error": "..."}`` body). Faults
(:class:`MastodonFault`) break streaming connections the way a real instance does: a cut
(mid-event), a stall (silence, heartbeats included), an HTTP error (5xx, 401, 429 with
``X-RateLimit-*`` headers); REST faults answer timeline requests with an error. The
server records what it streamed (:attr:`MastodonServer.sent`), what the REST timelines
served, and what it published.

Examples
--------
>>> import requests
>>> with MastodonServer(statuses=5, rate=500.0) as server:
...     with requests.get(server.url + "/api/v1/streaming/hashtag", params={"tag": "python"},
...                       headers=server.auth_header(), stream=True) as r:
...         lines = r.iter_lines()
...         first = next(lines)
...         ok = server.wait_published(5, timeout=5)
...     page = requests.get(server.url + "/api/v1/timelines/public", params={"limit": 2}).json()
>>> r.headers["content-type"], first
('text/event-stream; charset=utf-8', b':)')
>>> ok, len(page), page[0]["id"] > page[1]["id"]
(True, 2, True)
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from ._httpd import BadRequest, Request, http_response, read_request
from ._loopback import LoopbackServer
from ._sse import chunk, sse_response_head

__all__ = ["MASTODON_TEST_TOKEN", "MastodonFault", "MastodonServer"]

log = logging.getLogger("streamkit.testing")

#: The (obviously fake) access token the server accepts by default.
MASTODON_TEST_TOKEN = "mastodon-test-token-not-a-real-token"

_SSE_PATHS = {
    "public": "public", "public/local": "public:local", "public/remote": "public:remote",
    "hashtag": "hashtag", "hashtag/local": "hashtag:local", "user": "user", "list": "list",
}
_NEEDS_TOKEN = {"user", "list"}
_LIST_IDS = {"1"}


@dataclass
class MastodonFault:
    """How one streaming connection (or one REST request) goes wrong.

    Build with :meth:`cut`, :meth:`stall`, :meth:`http`; ``after`` counts the events
    sent on the connection before the fault strikes.
    """

    kind: str
    after: int = 0
    status: int = 0
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None

    @classmethod
    def cut(cls, after: int = 0) -> MastodonFault:
        """Close the connection abruptly in the middle of event ``after + 1``."""
        return cls("cut", after=after)

    @classmethod
    def stall(cls, after: int = 0, seconds: float = 30.0) -> MastodonFault:
        """After ``after`` events send nothing at all (no heartbeat) for ``seconds``, then close."""
        return cls("stall", after=after, seconds=seconds)

    @classmethod
    def http(cls, status: int, message: str | None = None) -> MastodonFault:
        """Answer with HTTP ``status`` (429 carries ``X-RateLimit-*`` headers, as Mastodon's)."""
        return cls("http", status=status, message=message)


def _snowflake(ms: int, seq: int) -> str:
    return str((ms << 16) | (seq & 0xFFFF))


_LOCAL = [("alice", "Alice Liddell"), ("bob", "Bob 🐘"), ("chidi", "Chidi Anagonye"), ("dana", "")]
_REMOTE = [("carol", "fosstodon.org", "Carol"), ("erin", "hachyderm.io", "Erin ✨"),
           ("katze", "chaos.social", "Katze 🐈"), ("yuki", "mstdn.jp", "ゆき")]
_WORDS = ("the release notes for the new version are out and they look great today "
          "finally fixed that flaky test after three days of looking at it "
          "anyone else going to the meetup next week bring stickers").split()
_LANGS = ["en", "en", "en", "de", "fr", "ja", None]


class _Timeline:
    """The published statuses and their events, on offsets from the clock start."""

    def __init__(self, n: int, rate: float, tags: list[str], edits: float, deletes: float,
                 domain: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n, self.rate, self.tags, self.domain = n, rate, tags, domain
        self.edit_share, self.delete_share = edits, deletes
        self.t0: float | None = None
        self.statuses: list[dict[str, Any]] = []
        self.meta: list[dict[str, Any]] = []  # per status: offset, local, tags, home
        self.events: list[tuple[float, str, int]] = []  # (offset, kind, status index)
        self.edited: dict[int, dict[str, Any]] = {}

    def start(self, now: float) -> None:
        rng = self.rng
        self.t0 = now
        for i in range(self.n):
            offset = (i + 1) / self.rate
            local = rng.random() < 0.5
            tags = sorted(set(rng.sample(self.tags, k=rng.choice([0, 1, 1, 2]))))
            status = self._status(i, int((now + offset) * 1000), local, tags)
            self.statuses.append(status)
            self.meta.append({"offset": offset, "local": local, "tags": tags, "home": i % 3 == 0})
            self.events.append((offset, "update", i))
            roll = rng.random()
            if roll < self.edit_share:
                later = offset + 3.5 / self.rate
                edited = dict(status)
                edited["content"] = status["content"].replace("</p>", " (edit: typo)</p>", 1)
                edited["edited_at"] = _iso(now + later)
                self.edited[i] = edited
                self.events.append((later, "status.update", i))
            elif roll < self.edit_share + self.delete_share:
                self.events.append((offset + 2.5 / self.rate, "delete", i))
        self.events.sort(key=lambda e: (e[0], e[1] != "update"))

    def _status(self, i: int, ms: int, local: bool, tags: list[str]) -> dict[str, Any]:
        rng = self.rng
        sid = _snowflake(ms, i)
        if local:
            user, name = rng.choice(_LOCAL)
            acct, host = user, self.domain
        else:
            user, host, name = rng.choice(_REMOTE)
            acct = f"{user}@{host}"
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14)))
        tag_html = " ".join(
            f'<a href="https://{self.domain}/tags/{t}" class="mention hashtag" rel="tag">#<span>{t}</span></a>'
            for t in tags)
        mentions = []
        mention_html = ""
        if rng.random() < 0.25:
            m_user, m_name = rng.choice(_LOCAL)
            mentions = [{"id": str(100 + _LOCAL.index((m_user, m_name))), "username": m_user,
                         "url": f"https://{self.domain}/@{m_user}", "acct": m_user}]
            mention_html = (f'<span class="h-card"><a href="https://{self.domain}/@{m_user}" '
                            f'class="u-url mention">@<span>{m_user}</span></a></span> ')
        media: list[dict[str, Any]] = []
        if rng.random() < 0.15:
            kind = rng.choice(["image", "image", "video", "gifv"])
            media = [{"id": str(22345792 + i), "type": kind,
                      "url": f"https://files.{self.domain}/media_attachments/files/{i}/original/a.jpeg",
                      "preview_url": f"https://files.{self.domain}/media_attachments/files/{i}/small/a.jpeg",
                      "remote_url": None, "meta": {}, "description": "a picture" if kind == "image" else None,
                      "blurhash": "UFBWY:8_0Jxv4mx]t8t64.%M-:IUWGWAt6M}"}]
        card = None
        if rng.random() < 0.1:
            card = {"url": f"https://example.org/article/{i}", "title": "An article", "description": "",
                    "type": "link", "author_name": "", "author_url": "", "provider_name": "",
                    "provider_url": "", "html": "", "width": 0, "height": 0, "image": None, "embed_url": ""}
        uri_host = self.domain if local else host
        return {
            "id": sid, "created_at": _iso(ms / 1000), "in_reply_to_id": None, "in_reply_to_account_id": None,
            "sensitive": bool(media) and rng.random() < 0.3, "spoiler_text": "",
            "visibility": "public", "language": rng.choice(_LANGS),
            "uri": f"https://{uri_host}/users/{user}/statuses/{sid}", "url": f"https://{uri_host}/@{user}/{sid}",
            "replies_count": rng.randint(0, 3), "reblogs_count": rng.randint(0, 9),
            "favourites_count": rng.randint(0, 30), "edited_at": None,
            "favourited": False, "reblogged": False, "muted": False, "bookmarked": False,
            "content": f"<p>{mention_html}{words} {tag_html}</p>".replace(" </p>", "</p>"),
            "reblog": None, "application": {"name": "Web", "website": None} if local else None,
            "account": {
                "id": str(1000 + zlib.crc32(f"{user}@{host}".encode()) % 100000), "username": user, "acct": acct,
                "display_name": name, "locked": False, "bot": False, "discoverable": True, "group": False,
                "created_at": "2022-11-01T00:00:00.000Z", "note": "",
                "url": f"https://{host}/@{user}", "avatar": f"https://{host}/avatars/original/missing.png",
                "avatar_static": f"https://{host}/avatars/original/missing.png",
                "header": f"https://{host}/headers/original/missing.png",
                "header_static": f"https://{host}/headers/original/missing.png",
                "followers_count": rng.randint(0, 5000), "following_count": rng.randint(0, 500),
                "statuses_count": rng.randint(1, 9000), "last_status_at": _iso(ms / 1000)[:10],
                "emojis": [], "fields": []},
            "media_attachments": media, "mentions": mentions,
            "tags": [{"name": t, "url": f"https://{self.domain}/tags/{t}"} for t in tags],
            "emojis": [], "card": card, "poll": None,
        }


def _iso(seconds: float) -> str:
    t = time.gmtime(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(seconds * 1000) % 1000:03d}Z"


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _matches(meta: dict[str, Any], stream: str, tag: str | None) -> bool:
    if stream == "public":
        return True
    if stream == "public:local":
        return meta["local"]
    if stream == "public:remote":
        return not meta["local"]
    if stream == "hashtag":
        return tag in meta["tags"]
    if stream == "hashtag:local":
        return tag in meta["tags"] and meta["local"]
    return meta["home"]  # user, list


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> bytes:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return http_response(status, data, "application/json; charset=utf-8", headers)


class MastodonServer(LoopbackServer):
    """A local Mastodon instance: streaming API, REST timelines, tokens and faults.

    Parameters
    ----------
    statuses : int, default 200
        How many statuses the timeline publishes (then only heartbeats).
    rate : float, default 100.0
        Statuses published per second once the clock runs (from the first streaming
        connection).
    tags : sequence of str
        The hashtags statuses carry (0-2 each).
    edits, deletes : float
        Share of statuses edited (``status.update``) or deleted afterwards.
    heartbeat : float, default 15.0
        Seconds between ``:thump`` heartbeats (SSE) and pings (WebSocket); 0 or None: none.
    token : str or None
        The access token accepted; None accepts any request without one.
    public_without_token : bool, default True
        Whether public streams and timelines answer requests without a token (Mastodon
        before 4.2 and many instances do); ``user`` and ``list`` always need it.
    faults : iterable of MastodonFault
        Applied to streaming connections in turn, one per connection.
    rest_faults : iterable of MastodonFault
        ``http`` faults applied to REST timeline requests in turn.
    domain : str
        The instance's domain in statuses' URLs and local accounts.
    seed : int
        Makes the timeline reproducible.
    """

    def __init__(self, *, statuses: int = 200, rate: float = 100.0,
                 tags: Iterable[str] = ("python", "rust", "fediverse", "caturday"),
                 edits: float = 0.05, deletes: float = 0.05, heartbeat: float | None = 15.0,
                 token: str | None = MASTODON_TEST_TOKEN, public_without_token: bool = True,
                 faults: Iterable[MastodonFault] = (), rest_faults: Iterable[MastodonFault] = (),
                 domain: str = "mastodon.test", seed: int = 0, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.token = token
        self.public_without_token = public_without_token
        self.heartbeat = heartbeat or None
        self._timeline = _Timeline(int(statuses), float(rate), list(tags), edits, deletes, domain, seed)
        self._faults = list(faults)
        self._rest_faults = list(rest_faults)
        self.sent: list[dict[str, Any]] = []  # every streamed event: conn, transport, event, id
        self.rest_served: list[str] = []  # status ids the REST timelines answered with
        self.requests: list[tuple[str, str, int]] = []  # (path, query without tokens, status)
        self.heartbeats_sent = 0
        self.subscriptions: list[dict[str, Any]] = []  # WebSocket subscribe messages received
        self.connections = 0

    # -- what the server did -----------------------------------------------------------
    def auth_header(self) -> dict[str, str]:
        """The ``Authorization`` header with the accepted token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _now_offset(self) -> float | None:
        t0 = self._timeline.t0
        return None if t0 is None else time.time() - t0

    def published(self, stream: str = "public", tag: str | None = None, *,
                  include_deleted: bool = True) -> list[str]:
        """Ids of the statuses published so far on ``stream`` (oldest first)."""
        now = self._now_offset()
        if now is None:
            return []
        tl = self._timeline
        gone = self.deleted_ids() if not include_deleted else set()
        return [s["id"] for s, m in zip(tl.statuses, tl.meta, strict=True)
                if m["offset"] <= now and _matches(m, stream, tag) and s["id"] not in gone]

    def deleted_ids(self, at: float | None = None) -> set[str]:
        """Ids deleted so far (or by wall-clock time ``at``)."""
        now = self._now_offset()
        tl = self._timeline
        if at is not None and tl.t0 is not None:
            now = at - tl.t0
        return {tl.statuses[i]["id"] for off, kind, i in tl.events
                if kind == "delete" and now is not None and off <= now}

    def edited_ids(self) -> set[str]:
        """Ids edited so far."""
        now = self._now_offset()
        tl = self._timeline
        return {tl.statuses[i]["id"] for off, kind, i in tl.events
                if kind == "status.update" and now is not None and off <= now}

    def status(self, status_id: str) -> dict[str, Any]:
        """The current version of a published status (edited if the edit has happened)."""
        tl = self._timeline
        for i, s in enumerate(tl.statuses):
            if s["id"] == status_id:
                return self._current(i, self._now_offset() or 0.0)
        raise KeyError(status_id)

    def wait_published(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``n`` statuses are published (the clock starts with a streaming connection)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self._now_offset()
            if now is not None and n <= len(self._timeline.meta) and self._timeline.meta[n - 1]["offset"] <= now:
                return True
            if self._stop_event.wait(0.02):
                return False
        return False

    def done_at(self) -> float | None:
        """Wall-clock time at which the last event is published (None before the clock starts)."""
        tl = self._timeline
        if tl.t0 is None:
            return None
        return tl.t0 + (tl.events[-1][0] if tl.events else 0.0)

    def add_faults(self, *faults: MastodonFault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def __repr__(self) -> str:
        return f"<MastodonServer {self.url} statuses={self._timeline.n} connections={self.connections}>"

    # -- the protocol ------------------------------------------------------------------
    def _current(self, i: int, now: float) -> dict[str, Any]:
        tl = self._timeline
        edited = tl.edited.get(i)
        if edited is not None:
            for off, kind, j in tl.events:
                if j == i and kind == "status.update" and off <= now:
                    return edited
        return tl.statuses[i]

    def _check_token(self, req: Request, params: dict[str, list[str]], needs: bool) -> str | None:
        """The 401 error text, or None when the request may go on."""
        if self.token is None:
            return None
        auth = req.headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        given = given or _first(params, "access_token") or req.headers.get("sec-websocket-protocol")
        if given is None:
            return "Missing access token" if needs or not self.public_without_token else None
        return None if given == self.token else "Invalid access token"

    def _record(self, req: Request, status: int) -> None:
        query = "&".join(p for p in req.query.split("&") if not p.startswith("access_token="))
        with self._lock:
            self.requests.append((req.path, query, status))

    def _handle(self, sock: socket.socket, index: int) -> None:
        try:
            req = read_request(sock)
        except BadRequest as exc:
            sock.sendall(_json_response(exc.status, {"error": exc.message}))
            return
        if req is None:
            return
        params = parse_qs(req.query, keep_blank_values=True)
        path = req.path.rstrip("/")
        if req.method != "GET":
            self._record(req, 405)
            sock.sendall(_json_response(405, {"error": "Method not allowed"}))
        elif path == "/api/v1/streaming/health":
            self._record(req, 200)
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
                         b"connection: close\r\n\r\nOK")
        elif path == "/api/v1/streaming" and req.headers.get("upgrade", "").lower() == "websocket":
            self._websocket(sock, req, params, index)
        elif path.startswith("/api/v1/streaming/"):
            self._sse(sock, req, params, path[len("/api/v1/streaming/"):], index)
        elif path.startswith("/api/v1/timelines/"):
            self._rest(sock, req, params, path[len("/api/v1/timelines/"):])
        elif path == "/api/v2/instance":
            self._record(req, 200)
            sock.sendall(_json_response(200, {
                "domain": self._timeline.domain, "title": "streamkit test instance", "version": "4.3.0",
                "configuration": {"urls": {"streaming": self.url.replace("http://", "ws://")}}}))
        else:
            self._record(req, 404)
            sock.sendall(_json_response(404, {"error": "Record not found"}))

    def _refuse(self, sock: socket.socket, req: Request, status: int, error: str,
                headers: dict[str, str] | None = None) -> None:
        self._record(req, status)
        sock.sendall(_json_response(status, {"error": error}, headers))

    def _stream_fault(self, sock: socket.socket, req: Request) -> MastodonFault | None:
        """Take the next fault; an HTTP one is answered here (returns None then too)."""
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault.kind == "http":
            self._refuse(sock, req, fault.status, fault.message or _DEFAULT_ERRORS.get(fault.status, "Error"),
                         _rate_headers(exhausted=True) if fault.status == 429 else None)
            return _ANSWERED
        return fault

    def _start_clock(self) -> float:
        """Count a streaming connection; the timeline offset it streams from (0 for the one
        that starts the clock). Taken before the client hears the answer, so that a REST
        request the client makes once connected always sees what came before."""
        with self._lock:
            self.connections += 1
            if self._timeline.t0 is None:
                self._timeline.start(time.time())
                return 0.0
            return time.time() - self._timeline.t0

    def _sse(self, sock: socket.socket, req: Request, params: dict[str, list[str]], sub: str, index: int) -> None:
        stream = _SSE_PATHS.get(sub)
        if stream is None:
            self._refuse(sock, req, 400, "Unknown channel requested")
            return
        denied = self._check_token(req, params, stream in _NEEDS_TOKEN)
        if denied:
            self._refuse(sock, req, 401, denied)
            return
        tag = _first(params, "tag")
        if stream.startswith("hashtag") and not tag:
            self._refuse(sock, req, 400, "No tag for stream provided")
            return
        if stream == "list" and _first(params, "list") not in _LIST_IDS:
            self._refuse(sock, req, 404, "Record not found")
            return
        fault = self._stream_fault(sock, req)
        if fault is _ANSWERED:
            return
        self._record(req, 200)
        start = self._start_clock()
        sock.sendall(sse_response_head() + chunk(b":)\n"))

        def send_event(kind: str, payload: str) -> bytes:
            return f"event: {kind}\ndata: {payload}\n\n".encode()

        self._pump(sock, index, start, "sse", stream, tag and tag.lower(), fault,
                   lambda kind, payload: chunk(send_event(kind, payload)),
                   lambda: chunk(b":thump\n"))

    def _websocket(self, sock: socket.socket, req: Request, params: dict[str, list[str]], index: int) -> None:
        from .._websocket import OP_PING
        from ._websocket import accept_upgrade, server_frame

        denied = self._check_token(req, params, False)
        if denied:
            self._refuse(sock, req, 401, denied)
            return
        fault = self._stream_fault(sock, req)
        if fault is _ANSWERED:
            return
        start = self._start_clock()  # subscribed from the upgrade on (see _start_clock)
        ws = accept_upgrade(sock, req)
        if ws is None:
            self._record(req, 400)
            return
        self._record(req, 101)
        # Subscriptions: the query (?stream=...) or the first subscribe message.
        stream = _first(params, "stream")
        tag = _first(params, "tag")
        list_id = _first(params, "list")
        if stream is None:
            deadline = time.monotonic() + 10.0
            while not ws.received and time.monotonic() < deadline and not self._stop_event.is_set():
                if not ws.poll(0.05):
                    return
            if not ws.received:
                return
            try:
                sub = json.loads(ws.received.pop(0))
            except ValueError:
                sub = {}
            if not isinstance(sub, dict) or sub.get("type") != "subscribe":
                ws.send(json.dumps({"error": "Unknown type", "status": 400}))
                return
            stream, tag, list_id = sub.get("stream"), sub.get("tag"), sub.get("list")
        if not isinstance(stream, str) or stream not in _SSE_PATHS.values():
            ws.send(json.dumps({"error": "Unknown stream type", "status": 400}))
            return
        if stream == "list" and str(list_id) not in _LIST_IDS:
            ws.send(json.dumps({"error": "Record not found", "status": 404}))
            return
        if stream in _NEEDS_TOKEN and self._check_token(req, params, True):
            ws.send(json.dumps({"error": "Missing access token", "status": 401}))
            return
        with self._lock:
            self.subscriptions.append({"conn": index, "stream": stream, "tag": tag})
        label = [stream] + ([tag.lower()] if tag else [])

        def frame(kind: str, payload: str) -> bytes:
            body = {"stream": label, "event": kind, "payload": payload}
            return server_frame(json.dumps(body, ensure_ascii=False, separators=(",", ":")))

        self._pump(sock, index, start, "websocket", stream, tag and tag.lower(), fault, frame,
                   lambda: server_frame(b"", opcode=OP_PING), ws.poll)

    def _pump(self, sock: socket.socket, index: int, start: float, transport: str, stream: str, tag: str | None,
              fault: MastodonFault | None, render: Any, heartbeat: Any, poll: Any = None) -> None:
        """Send the timeline's events from now on, with heartbeats, until closed or a fault."""
        tl = self._timeline
        assert tl.t0 is not None
        j = next((k for k, e in enumerate(tl.events) if e[0] >= start), len(tl.events))
        sent = 0
        next_beat = time.monotonic() + self.heartbeat if self.heartbeat else None
        while not self._stop_event.is_set():
            if fault is not None and fault.kind == "stall" and sent >= fault.after:
                self._stop_event.wait(fault.seconds)
                return
            now = time.time() - tl.t0
            due = tl.events[j][0] if j < len(tl.events) else None
            if due is not None and due <= now:
                offset, kind, i = tl.events[j]
                j += 1
                meta = tl.meta[i]
                if not _matches(meta, stream, tag):
                    continue
                status = self._current(i, offset) if kind != "update" else tl.statuses[i]
                payload = status["id"] if kind == "delete" else json.dumps(
                    tl.edited[i] if kind == "status.update" else status, ensure_ascii=False,
                    separators=(",", ":"))
                data = render(kind, payload)
                if fault is not None and fault.kind == "cut" and sent >= fault.after:
                    sock.sendall(data[: len(data) // 2])
                    sock.shutdown(socket.SHUT_RDWR)
                    return
                sock.sendall(data)
                sent += 1
                with self._lock:
                    self.sent.append({"conn": index, "transport": transport, "event": kind,
                                      "id": status["id"], "time": time.time()})
                continue
            waits = [0.5]
            if due is not None:
                waits.append(due - now)
            if next_beat is not None:
                if time.monotonic() >= next_beat:
                    sock.sendall(heartbeat())
                    with self._lock:
                        self.heartbeats_sent += 1
                    next_beat = time.monotonic() + (self.heartbeat or 0)
                    continue
                waits.append(next_beat - time.monotonic())
            if poll is not None:  # WebSocket: read pongs and a close from the client
                if not poll(max(0.0, min(waits))):
                    return
            elif self._stop_event.wait(max(0.0, min(waits))):
                return

    def _rest(self, sock: socket.socket, req: Request, params: dict[str, list[str]], sub: str) -> None:
        with self._lock:
            fault = self._rest_faults.pop(0) if self._rest_faults else None
        if fault is not None:
            self._refuse(sock, req, fault.status, fault.message or _DEFAULT_ERRORS.get(fault.status, "Error"),
                         _rate_headers(exhausted=fault.status == 429))
            return
        one = {k: v[-1] for k, v in params.items()}
        local, remote = one.get("local") == "true", one.get("remote") == "true"
        tag = None
        if sub == "public":
            stream = "public:local" if local else "public:remote" if remote else "public"
        elif sub.startswith("tag/"):
            tag = sub[4:].lower()
            stream = "hashtag:local" if local else "hashtag"
        elif sub == "home":
            stream = "user"
        elif sub.startswith("list/"):
            stream = "list"
            if sub[5:] not in _LIST_IDS:
                self._refuse(sock, req, 404, "Record not found")
                return
        else:
            self._refuse(sock, req, 404, "Record not found")
            return
        denied = self._check_token(req, params, stream in _NEEDS_TOKEN)
        if denied:
            self._refuse(sock, req, 401, "The access token is invalid" if "Invalid" in denied
                         else "This method requires an authenticated user")
            return
        try:
            limit = max(1, min(40, int(one.get("limit", "20"))))
        except ValueError:
            limit = 20
        now = self._now_offset()
        tl = self._timeline
        gone = self.deleted_ids()
        rows = [] if now is None else [
            self._current(i, now) for i, m in enumerate(tl.meta)
            if m["offset"] <= now and _matches(m, stream, tag) and tl.statuses[i]["id"] not in gone]

        def key(s: dict[str, Any]) -> tuple[int, str]:
            return (len(s["id"]), s["id"])

        for name, keep in (("max_id", lambda s, v: key(s) < v), ("since_id", lambda s, v: key(s) > v),
                           ("min_id", lambda s, v: key(s) > v)):
            if one.get(name):
                bound = (len(one[name]), one[name])
                rows = [s for s in rows if keep(s, bound)]
        rows.sort(key=key)
        page = rows[:limit] if one.get("min_id") else rows[-limit:]
        page.reverse()  # newest first, as Mastodon answers
        headers = _rate_headers()
        if page:
            base = {k: v for k, v in one.items() if k not in ("max_id", "min_id", "since_id", "access_token")}
            url = f"{self.url}{req.path}"
            headers["Link"] = (f'<{url}?{urlencode({**base, "max_id": page[-1]["id"]})}>; rel="next", '
                               f'<{url}?{urlencode({**base, "min_id": page[0]["id"]})}>; rel="prev"')
        self._record(req, 200)
        with self._lock:
            self.rest_served.extend(s["id"] for s in page)
        sock.sendall(_json_response(200, page, headers))


_ANSWERED = MastodonFault("answered")
_DEFAULT_ERRORS = {401: "Invalid access token", 429: "Too many requests", 500: "Internal Server Error",
                   502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _rate_headers(*, exhausted: bool = False) -> dict[str, str]:
    reset = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 300))
    return {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0" if exhausted else "299",
            "X-RateLimit-Reset": reset}
