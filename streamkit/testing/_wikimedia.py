"""A real Wikimedia EventStreams server on 127.0.0.1: server-sent events with resume.

:class:`WikimediaServer` serves ``GET /v2/stream/<streams>`` (comma-joined) the way
stream.wikimedia.org does (its KafkaSSE service): a chunked ``text/event-stream`` body that
opens with ``:ok``, then ``event: message`` / ``id: [...]`` / ``data: {...}`` events whose id
is a JSON array of Kafka positions ``{"topic", "partition", "timestamp"|"offset"}`` (the
next position of each topic, as KafkaSSE writes it: the last message's + 1).

* A ``Last-Event-ID`` header replays from the positions it names (as on the real service,
  only the topics it names are consumed, and a topic of a stream not in the URL is refused
  with 404); without one, ``?since=`` (ISO 8601 or Unix ms)
  starts from a time; without either, the stream starts at the newest event.
* The events come from an endless, deterministic log (the same index always renders the
  same event): realistic recentchange events (edit, new, log, categorize on several wikis,
  bots and people) and revision-create / page-create events, with ``canary`` events
  (``meta.domain == "canary"``) mixed in. ``history`` events exist before the server starts,
  so ``since`` has something to replay.
* Every connection is closed cleanly after ``close_after`` seconds (15 minutes on the real
  service).
* Requests without a descriptive User-Agent (contact information, not just a library name)
  get 403, as Wikimedia's User-Agent policy allows.
* :class:`~streamkit.testing.Fault` objects break connections: ``http`` (5xx, 429 with
  Retry-After...), ``cut`` (half an event, then the TCP connection drops), ``stall``
  (silence, then a drop), ``end`` (an early clean close), ``disconnect`` (an SSE ``error``
  event, then a clean close, as KafkaSSE ends on a consumer error), ``garbage``
  (``malformed_json``, ``invalid_utf8``, ``oversized``) and ``inject`` (raw bytes, or dicts
  sent as SSE ``error`` events). ``after`` counts message events sent on that connection.
* It records what it sent: :attr:`WikimediaServer.sent` (log index, ``meta.id``, stream,
  canary or not, connection) for every event completely handed to the socket, and
  :meth:`WikimediaServer.expected_ids` gives what a gapless capture must hold.

Examples
--------
>>> import requests
>>> from streamkit._sse import SSEFramer, parse_event
>>> with WikimediaServer(history=5, rate=100) as server:
...     url = server.url + "/v2/stream/recentchange"
...     headers = {"User-Agent": "doc-test/1.0 (docs@example.org)"}
...     with requests.get(url, params={"since": "0"}, headers=headers, stream=True) as r:
...         framer, events = SSEFramer(), []
...         for data in r.iter_content(None):
...             events += [parse_event(b) for b in framer.feed(data)]
...             if len(events) >= 3:
...                 break
...     refused = requests.get(url).status_code
>>> r.headers["content-type"], events[0].event, events[0].id.startswith('[{"topic":"eqiad.')
('text/event-stream; charset=utf-8', 'message', True)
>>> refused
403
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import random
import re
import selectors
import socket
import time
import uuid
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote

from ._faults import Fault, FaultQueue
from ._httpd import REASONS, BadRequest, Request, http_response, read_request
from ._loopback import LoopbackServer
from ._sockio import idle_until, send_counted
from ._sse import LAST_CHUNK, chunk, sse_comment, sse_event, sse_response_head

__all__ = ["STREAMS", "WikimediaSentEvent", "WikimediaRequest", "WikimediaServer"]

log = logging.getLogger("streamkit.testing")

#: URL stream name -> Kafka stream name. The generated log mixes them in these proportions.
STREAMS: Mapping[str, str] = {
    "recentchange": "mediawiki.recentchange",
    "revision-create": "mediawiki.revision-create",
    "page-create": "mediawiki.page-create",
}
_WEIGHTS = (("recentchange", 0.75), ("revision-create", 0.2), ("page-create", 0.05))
_CODES = {name: i for i, name in enumerate(STREAMS)}
_NAMES = list(STREAMS)
_ACTIVE_DC, _OTHER_DC = "eqiad", "codfw"
_CONTACT = re.compile(r"@|https?://|www\.", re.IGNORECASE)
UA_REFUSAL = ("Please set a user-agent and respect our robot policy https://w.wiki/4wJS. "
              "See also https://meta.wikimedia.org/wiki/User-Agent_policy")

_WIKIS = [  # wiki, server name, language of titles
    ("enwiki", "en.wikipedia.org", "en", 0.38), ("dewiki", "de.wikipedia.org", "de", 0.08),
    ("frwiki", "fr.wikipedia.org", "fr", 0.07), ("jawiki", "ja.wikipedia.org", "ja", 0.05),
    ("eswiki", "es.wikipedia.org", "es", 0.05), ("commonswiki", "commons.wikimedia.org", "en", 0.22),
    ("wikidatawiki", "www.wikidata.org", "en", 0.15),
]
_TITLES = {
    "en": ["Main Page", "Climate change", "Python (programming language)", "List of rivers of Europe",
           "2026 in science", "Ada Lovelace", "Photosynthesis", "Talk:Moon landing", "Coffee"],
    "de": ["Berlin", "Zürich", "Quantenmechanik", "Liste der Flüsse in Europa", "Fußball-Weltmeisterschaft 2026"],
    "fr": ["Paris", "Révolution française", "Tour Eiffel", "Île-de-France", "Marie Curie"],
    "ja": ["東京都", "富士山", "日本語", "新幹線", "ラーメン"],
    "es": ["Madrid", "Río Amazonas", "Gabriel García Márquez", "Economía de México"],
}
_USERS = ["Ada L", "GeoEditor", "Ramona.K", "Tōru", "WikiGnome42", "Müller-Lüdenscheidt", "192.0.2.17",
          "2001:db8::7a", "ListBot", "InternetArchiveBot", "Cewbot", "SuggestBot", "Emma_R"]
_BOTS = {"ListBot", "InternetArchiveBot", "Cewbot", "SuggestBot"}
_COMMENTS = ["/* History */ fix typo", "Rescuing 1 sources and tagging 0 as dead.) #IABot (v2.0.9.5",
             "Undo revision 1234 by [[Special:Contributions/192.0.2.17|192.0.2.17]]", "",
             "Added [[Category:Rivers of Europe]]", "clean up, [[WP:AWB/T|typo(s) fixed]]: et al → et al.",
             "Created page with '{{Short description|Japanese dish}}'"]
_LOG = [("newusers", "create", "created a new user account"), ("delete", "delete", "deleted page"),
        ("block", "block", "blocked"), ("upload", "upload", "uploaded a file"),
        ("patrol", "patrol", "marked revision as patrolled"), ("move", "move", "moved page")]


_FAULT_TEXT = {  # what the service says (routes/stream.js of mediawiki-services-eventstreams)
    429: ("Too Many Concurrent Connections From Your Client IP",
          "Your HTTP client is likely opening too many concurrent connections."),
    503: ("Service Unavailable", "upstream connect error or disconnect/reset before headers"),
}


@dataclass(frozen=True, slots=True)
class WikimediaSentEvent:
    """One message event completely handed to a socket."""

    index: int  # position in the server's log
    meta_id: str
    stream: str  # URL stream name (recentchange, ...)
    canary: bool
    connection: int


class WikimediaRequest(NamedTuple):
    """One request the server answered (``time`` is ``time.monotonic()``)."""

    time: float
    path: str
    params: dict[str, list[str]]
    user_agent: str | None
    last_event_id: str | None
    status: int


def _iso(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_error(status: int, title: str, detail: str, headers: Mapping[str, str] | None = None) -> bytes:
    body = json.dumps({"type": "https://mediawiki.org/wiki/HyperSwitch/errors/" + title.lower().replace(" ", "_"),
                       "title": title, "status": status, "detail": detail}).encode()
    return http_response(status, body, "application/problem+json", headers)


class _Refused(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class WikimediaServer(FaultQueue, LoopbackServer):
    """A local EventStreams endpoint for tests, demos and notebooks.

    Parameters
    ----------
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port; read it back from :attr:`url`.
    rate : float, default 50.0
        Events per second appended to the log (every stream together; at most 1000: each
        event gets its own millisecond, so timestamp ids resume exactly).
    history : int, default 0
        Events already in the log when the server starts (replayable with ``since``).
    max_events : int, optional
        Stop the log after this many events (connections then stay open, silent).
    seed : int, default 0
        Seeds the generated content.
    canary_every : int, default 40
        Every Nth event of the log is a canary (0: none).
    close_after : float, default 900.0
        Seconds after which the server ends each connection cleanly (the real service:
        about 15 minutes).
    close_cleanly : bool, default True
        End the body properly at ``close_after`` (the last chunk); False drops the TCP
        connection between two events instead, as a proxy timing out a long request does.
    id_format : {"timestamp", "offset"}, default "timestamp"
        What the event ids carry for the active topic (stream.wikimedia.org uses timestamps).
    keepalive_interval : float, optional
        Send a ``:`` comment after this many idle seconds (the real service sends none).
    require_user_agent : bool, default True
        Refuse (403) requests without a descriptive User-Agent with contact information.
    faults : iterable of Fault, optional
        Consumed one per streaming request, in order.
    chunk_bytes : int, default 4096
        Largest HTTP chunk; chunk borders fall anywhere inside events.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, rate: float = 50.0, history: int = 0,
                 max_events: int | None = None, seed: int = 0, canary_every: int = 40,
                 close_after: float = 900.0, close_cleanly: bool = True, id_format: str = "timestamp",
                 keepalive_interval: float | None = None, require_user_agent: bool = True,
                 faults: Iterable[Fault] | None = None, chunk_bytes: int = 4096) -> None:
        if not 0 < rate <= 1000:
            raise ValueError(f"rate must be in (0, 1000] events per second, got {rate}")
        if history < 0 or (max_events is not None and max_events < 0):
            raise ValueError("history and max_events must be >= 0")
        if id_format not in ("timestamp", "offset"):
            raise ValueError(f"id_format must be 'timestamp' or 'offset', not {id_format!r}")
        if close_after <= 0 or chunk_bytes < 1 or canary_every < 0:
            raise ValueError("close_after and chunk_bytes must be > 0, canary_every >= 0")
        super().__init__(host=host, port=port)
        self.rate = rate
        self.step_ms = max(1, round(1000 / rate))
        self.history = history
        self.max_events = max_events
        self.seed = seed
        self.canary_every = canary_every
        self.close_after = close_after
        self.close_cleanly = close_cleanly
        self.id_format = id_format
        self.keepalive_interval = keepalive_interval
        self.require_user_agent = require_user_agent
        self.chunk_bytes = chunk_bytes
        self._init_faults(faults)
        self._sent: list[WikimediaSentEvent] = []
        self._requests: list[WikimediaRequest] = []
        self._forced_closes = 0
        # The log: the stream code and the topic offset of every index built so far.
        self._log_stream = bytearray()
        self._log_offset = array("q")
        self._topic_counts = [0] * len(STREAMS)
        self._t0_mono = 0.0
        self._t0_ms = 0

    def __repr__(self) -> str:
        return f"<WikimediaServer {'running' if self.running else 'stopped'} url={self.url!r} sent={len(self._sent)}>"

    def start(self) -> WikimediaServer:
        """Bind, fix the log's clock (``history`` events in the past) and start serving."""
        # Event i is due at t0 + (i + 1) steps: at start, events 0..history-1 exist.
        self._t0_ms = int(time.time() * 1000) - self.history * self.step_ms
        self._t0_mono = time.monotonic() - self.history * self.step_ms / 1000
        return super().start()  # type: ignore[no-any-return]

    # -- observations -------------------------------------------------------------------
    @property
    def sent(self) -> list[WikimediaSentEvent]:
        """Every message event completely handed to a socket, in order."""
        with self._lock:
            return list(self._sent)

    @property
    def sent_ids(self) -> list[str]:
        """``meta.id`` of the non-canary events sent, in order (repeats kept)."""
        with self._lock:
            return [e.meta_id for e in self._sent if not e.canary]

    @property
    def requests(self) -> list[WikimediaRequest]:
        """Every request answered, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def forced_closes(self) -> int:
        """Connections the server ended because they reached ``close_after``."""
        with self._lock:
            return self._forced_closes

    def wait_sent(self, n: int, timeout: float | None = None, *, canaries: bool = False) -> bool:
        """Block until at least *n* (non-canary, unless ``canaries``) events were sent."""
        def enough() -> bool:
            return sum(1 for e in self._sent if canaries or not e.canary) >= n
        with self._cond:
            return self._cond.wait_for(lambda: enough() or self._stop_event.is_set(), timeout) and enough()

    def available(self) -> int:
        """How many events the log holds now."""
        n = max(0, int((time.monotonic() - self._t0_mono) * 1000 // self.step_ms))
        return n if self.max_events is None else min(n, self.max_events)

    def _due(self, index: int) -> float:
        return self._t0_mono + (index + 1) * self.step_ms / 1000

    def event(self, index: int) -> dict[str, Any]:
        """The event at *index* of the log, as sent (decoded)."""
        return json.loads(self._payload(index))

    def is_canary(self, index: int) -> bool:
        """Whether the event at *index* is a canary."""
        return self.canary_every > 0 and index % self.canary_every == self.canary_every - 1

    def stream_of(self, index: int) -> str:
        """The URL stream name of the event at *index*."""
        self._extend(index + 1)
        return _NAMES[self._log_stream[index]]

    def expected_ids(self, streams: Sequence[str], first: int, last: int) -> list[str]:
        """``meta.id`` of the non-canary events of *streams* with log index in [first, last]."""
        return [self._meta_id(i) for i in range(first, last + 1)
                if self.stream_of(i) in streams and not self.is_canary(i)]

    def index_of_id(self, last_event_id: str, stream: str = "recentchange") -> int:
        """The log index of the *stream* event whose SSE id this is (the event a resume follows)."""
        topic = f"{_ACTIVE_DC}.{STREAMS[stream]}"
        entry = next(e for e in json.loads(last_event_id) if e.get("topic") == topic)
        if "timestamp" in entry:
            return (entry["timestamp"] - 1 - self._t0_ms) // self.step_ms - 1
        code = _CODES[stream]
        self._extend(self.available())
        return next(i for i in range(len(self._log_offset))
                    if self._log_stream[i] == code and self._log_offset[i] == entry["offset"] - 1)

    def index_of(self, meta_id: str) -> int:
        """The log index of an event sent (ValueError if it was never sent)."""
        with self._lock:
            for e in self._sent:
                if e.meta_id == meta_id:
                    return e.index
        raise ValueError(f"{meta_id!r} was never sent")

    # -- the log ------------------------------------------------------------------------
    def _extend(self, n: int) -> None:
        with self._lock:
            while len(self._log_stream) < n:
                i = len(self._log_stream)
                x = random.Random(self.seed * 7_919 + i * 104_729).random()
                code = 0
                for name, w in _WEIGHTS:
                    if x < w:
                        code = _CODES[name]
                        break
                    x -= w
                self._log_stream.append(code)
                self._log_offset.append(self._topic_counts[code])
                self._topic_counts[code] += 1

    def _ts_ms(self, index: int) -> int:
        return self._t0_ms + (index + 1) * self.step_ms

    def _meta_id(self, index: int) -> str:
        return str(uuid.UUID(int=random.Random(f"{self.seed}:{index}").getrandbits(128), version=4))

    def _first_index(self, code: int, *, offset: int | None = None, ts: int | None = None) -> int:
        """The first log index of stream *code* at topic offset >= offset (or time >= ts).

        An offset past the end of the topic starts at the newest event (Kafka's
        ``auto.offset.reset=latest``); a time in the future waits for it.
        """
        if ts is not None:
            return max(0, -(-(ts - self._t0_ms) // self.step_ms) - 1)
        assert offset is not None
        now = self.available()
        self._extend(now)
        if offset >= self._log_stream[:now].count(code):
            return now
        for j in range(now):
            if self._log_stream[j] == code and self._log_offset[j] >= offset:
                return j
        return now  # pragma: no cover - the count above says otherwise

    def _offset_before(self, index: int, code: int) -> int:
        """The topic offset of the first event of stream *code* at or after *index*."""
        self._extend(index)
        return self._log_stream[:index].count(code)

    def _payload(self, index: int) -> bytes:
        self._extend(index + 1)
        name = _NAMES[self._log_stream[index]]
        rng = random.Random(f"{self.seed}/{index}")
        ms = self._ts_ms(index)
        wiki, server, lang, _ = rng.choices(_WIKIS, weights=[w[3] for w in _WIKIS])[0]
        meta = {"uri": "", "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "id": self._meta_id(index), "dt": _iso(ms), "domain": server, "stream": STREAMS[name],
                "topic": f"{_ACTIVE_DC}.{STREAMS[name]}", "partition": 0, "offset": self._log_offset[index]}
        if self.is_canary(index):
            meta = {"id": meta["id"], "dt": meta["dt"], "domain": "canary", "stream": meta["stream"],
                    "topic": meta["topic"], "partition": 0, "offset": meta["offset"]}
            schema = "/mediawiki/recentchange/1.0.0" if name == "recentchange" else "/mediawiki/revision/create/2.0.0"
            return json.dumps({"$schema": schema, "meta": meta}, separators=(",", ":")).encode()
        title = rng.choice(_TITLES[lang])
        if wiki == "commonswiki":
            title = "File:" + title.replace(" ", "_") + ".jpg"
        elif wiki == "wikidatawiki":
            title = f"Q{rng.randrange(1, 130_000_000)}"
        user = rng.choice(_USERS)
        bot = user in _BOTS
        url_title = title.replace(" ", "_")
        meta["uri"] = f"https://{server}/wiki/{url_title}"
        rev_old = rng.randrange(10_000_000, 1_300_000_000)
        rev_new = rev_old + rng.randrange(1, 5_000_000)
        len_old = rng.randrange(0, 250_000)
        len_new = max(0, len_old + rng.randrange(-2_000, 5_000))
        comment = rng.choice(_COMMENTS)
        if name == "recentchange":
            kind = rng.choices(["edit", "new", "log", "categorize"], weights=[70, 8, 10, 12])[0]
            ns = {"edit": rng.choice([0, 0, 0, 1, 2, 4, 6, 14]), "new": rng.choice([0, 2, 6]),
                  "log": rng.choice([-1, 2, 6]), "categorize": 14}[kind]
            ev: dict[str, Any] = {"$schema": "/mediawiki/recentchange/1.0.0", "meta": meta,
                                  "id": rng.randrange(1_000_000_000, 3_000_000_000), "type": kind,
                                  "namespace": ns, "title": title, "title_url": meta["uri"], "comment": comment,
                                  "timestamp": ms // 1000, "user": user, "bot": bot}
            if kind in ("edit", "new"):
                ev["notify_url"] = f"https://{server}/w/index.php?diff={rev_new}&oldid={rev_old}"
                ev["minor"] = rng.random() < 0.2
                if wiki != "dewiki":  # not every wiki patrols
                    ev["patrolled"] = rng.random() < 0.6
                ev["length"] = {"old": None if kind == "new" else len_old, "new": len_new}
                ev["revision"] = {"old": None if kind == "new" else rev_old, "new": rev_new}
            elif kind == "log":
                log_type, action, text = rng.choice(_LOG)
                ev.update(log_id=rng.randrange(100_000_000, 200_000_000), log_type=log_type, log_action=action,
                          log_params={"userid": rng.randrange(1, 50_000_000)} if log_type == "newusers" else [],
                          log_action_comment=f"{text} {title}")
            ev.update(server_url=f"https://{server}", server_name=server, server_script_path="/w", wiki=wiki,
                      parsedcomment=comment.replace("[[", '<a href="/wiki/').replace("]]", '">link</a>'))
        else:
            ev = {"$schema": "/mediawiki/revision/create/2.0.0", "meta": meta, "database": wiki,
                  "page_id": rng.randrange(1, 80_000_000), "page_title": url_title,
                  "page_namespace": 0, "rev_id": rev_new, "rev_timestamp": meta["dt"],
                  "rev_sha1": f"{rng.getrandbits(160):031x}"[:31], "rev_minor_edit": rng.random() < 0.2,
                  "rev_len": len_new, "rev_content_model": "wikitext", "rev_content_format": "text/x-wiki",
                  "performer": {"user_text": user, "user_groups": ["*", "user", "autoconfirmed"] + (["bot"] if bot else []),
                                "user_is_bot": bot, "user_id": rng.randrange(1, 50_000_000),
                                "user_registration_dt": "2015-04-01T10:00:00Z",
                                "user_edit_count": rng.randrange(1, 500_000)},
                  "page_is_redirect": False, "comment": comment, "parsedcomment": comment,
                  "rev_content_changed": True}
            if name == "revision-create":
                ev["rev_parent_id"] = rev_old
        return json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode()

    # -- connections --------------------------------------------------------------------
    def _record(self, req: Request | None, params: dict[str, list[str]], status: int) -> None:
        rec = WikimediaRequest(req.received if req else time.monotonic(), req.path if req else "", params,
                               req.headers.get("user-agent") if req else None,
                               req.headers.get("last-event-id") if req else None, status)
        with self._lock:
            self._requests.append(rec)

    def _handle(self, sock: socket.socket, index: int) -> None:
        try:
            req = read_request(sock)
        except BadRequest as exc:
            self._record(None, {}, exc.status)
            sock.sendall(_http_error(exc.status, "Bad Request", exc.message))
            return
        if req is None:
            return
        params = parse_qs(req.query, keep_blank_values=True)
        try:
            streams, start = self._plan(req, params)
        except _Refused as exc:
            self._record(req, params, exc.status)
            sock.sendall(_http_error(exc.status, exc.title, exc.detail))
            return
        fault = self._take_fault()
        if fault is not None and fault.kind == "http":
            assert fault.code is not None
            self._note_fault(fault, index)
            self._record(req, params, fault.code)
            headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            title, detail = _FAULT_TEXT.get(fault.code, (REASONS.get(fault.code, "Error"), "injected fault"))
            sock.sendall(_http_error(fault.code, title, detail, headers))
            return
        self._record(req, params, 200)
        sock.settimeout(None)
        _Connection(self, sock, streams, start, fault, index).run()

    def _plan(self, req: Request, params: dict[str, list[str]]) -> tuple[list[str], dict[str, int]]:
        """The streams of a request and the first log index of each (refusals raise)."""
        if req.method != "GET":
            raise _Refused(405, "Method Not Allowed", f"{req.path} takes GET, not {req.method}")
        if not req.path.startswith("/v2/stream/"):
            raise _Refused(404, "Not Found", f"no such endpoint {req.path!r}; streams are under /v2/stream/")
        if self.require_user_agent:
            ua = req.headers.get("user-agent", "").strip()
            if not _CONTACT.search(ua):  # a bare library name (python-requests/2.32) says nothing
                raise _Refused(403, "Forbidden", UA_REFUSAL)
        names = [s for s in unquote(req.path[len("/v2/stream/"):]).split(",") if s]
        unknown = [s for s in names if s not in STREAMS]
        if not names or unknown:  # the real service answers 400 here, not 404
            raise _Refused(400, "Stream Not Found", f"Invalid streams: {','.join(unknown) or '(none)'}")
        last_event_id = req.headers.get("last-event-id")
        if last_event_id is not None:
            return self._from_id(last_event_id, names)
        since_values = params.get("since")
        if since_values:
            since = since_values[-1]
            ms = self._since_ms(since)
            return names, {s: self._first_index(_CODES[s], ts=ms) for s in names}
        now = self.available()
        return names, dict.fromkeys(names, now)

    def _since_ms(self, since: str) -> int:
        if since.strip().lstrip("-").isdigit():
            return int(since)
        try:
            t = _dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise _Refused(400, "Bad Request", f"since must be ISO 8601 or Unix milliseconds, not {since!r}") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return int(t.timestamp() * 1000)

    def _from_id(self, text: str, allowed: list[str]) -> tuple[list[str], dict[str, int]]:
        try:
            entries = json.loads(text)
            if not isinstance(entries, list) or not entries:
                raise ValueError("not a non-empty array")
        except ValueError as exc:
            raise _Refused(400, "Bad Request", f"InvalidAssignmentError: Last-Event-ID is not an assignment "
                                               f"array: {exc}") from None
        by_stream = {v: k for k, v in STREAMS.items()}
        streams: list[str] = []
        start: dict[str, int] = {}
        for e in entries:
            topic = e.get("topic") if isinstance(e, dict) else None
            if not isinstance(topic, str) or e.get("partition") != 0:
                raise _Refused(400, "Bad Request", f"InvalidAssignmentError: bad assignment {e!r}")
            dc, _, kafka_stream = topic.partition(".")
            name = by_stream.get(kafka_stream)
            if name not in allowed or dc not in (_ACTIVE_DC, _OTHER_DC):
                raise _Refused(404, "Not Found", f"TopicNotAvailableError: Topics {topic} are not available "
                                                 "for consumption.")
            if name not in streams:
                streams.append(name)
            if dc != _ACTIVE_DC:
                continue  # the passive datacenter's topics hold nothing
            code = _CODES[name]
            if isinstance(e.get("timestamp"), int):
                start[name] = self._first_index(code, ts=e["timestamp"])
            elif isinstance(e.get("offset"), int) and e["offset"] >= 0:
                start[name] = self._first_index(code, offset=e["offset"])
            else:
                start[name] = self.available()  # -1: latest
        for name in streams:
            start.setdefault(name, self.available())
        return streams, start

    def _commit_sent(self, events: list[WikimediaSentEvent]) -> None:
        with self._cond:
            self._sent.extend(events)
            if events:
                self._cond.notify_all()


class _Connection:
    """The body of one ``200 OK`` event stream."""

    def __init__(self, srv: WikimediaServer, sock: socket.socket, streams: list[str], start: dict[str, int],
                 fault: Fault | None, index: int) -> None:
        self.srv = srv
        self.sock = sock
        self.streams = streams
        self.start = start
        self.fault = fault if fault is not None and fault.kind != "none" else None
        self.index = index
        self.rng = random.Random(srv.seed * 31 + index)
        self.sent_here = 0
        self.cursor = min(start.values())
        self.codes = {_CODES[s] for s in streams}
        # The id state, per topic: the next position, as KafkaSSE keeps latestOffsetsMap.
        self.positions: dict[str, dict[str, Any]] = {}
        for s in streams:
            first = start[s]
            active = f"{_ACTIVE_DC}.{STREAMS[s]}"
            if srv.id_format == "timestamp":
                self.positions[active] = {"topic": active, "partition": 0, "timestamp": srv._ts_ms(first)}
            else:
                self.positions[active] = {"topic": active, "partition": 0,
                                          "offset": srv._offset_before(first, _CODES[s])}
            passive = f"{_OTHER_DC}.{STREAMS[s]}"
            self.positions[passive] = {"topic": passive, "partition": 0, "offset": -1}
        self.last_write = time.monotonic()

    def _id(self) -> str:
        return json.dumps(list(self.positions.values()), separators=(",", ":"))

    def _send(self, wire: bytes) -> int:
        total = send_counted(self.sock, wire)
        self.last_write = time.monotonic()
        return total

    def _send_body(self, body: bytes, ends: Sequence[int] = ()) -> tuple[bool, int]:
        """Send *body* as chunks cut at random places; (all sent, how many of the events
        ending at body offsets *ends* reached the socket whole, chunk included)."""
        pieces, wire_ends, pos, wire_pos = [], [], 0, 0
        while pos < len(body):
            size = min(len(body) - pos, self.rng.randint(1, self.srv.chunk_bytes))
            piece = chunk(body[pos:pos + size])
            pieces.append(piece)
            pos += size
            wire_pos += len(piece)
            wire_ends.append((pos, wire_pos))
        wire = b"".join(pieces)
        accepted = self._send(wire)
        done = 0
        k = 0
        for end in ends:
            while k < len(wire_ends) and wire_ends[k][0] < end:
                k += 1
            if k < len(wire_ends) and wire_ends[k][1] <= accepted:
                done += 1
            else:
                break
        return accepted == len(wire), done

    def _idle_until(self, deadline: float, sel: selectors.BaseSelector) -> bool:
        return idle_until(self.sock, self.srv._stop_event, deadline, sel, poll=0.25)

    def run(self) -> None:
        head = sse_response_head({"access-control-allow-origin": "*", "x-streamkit-connection": str(self.index)})
        if self._send(head) != len(head) or not self._send_body(sse_comment("ok"))[0]:
            return
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            self._loop(sel, time.monotonic() + self.srv.close_after)

    def _loop(self, sel: selectors.BaseSelector, close_at: float) -> None:
        srv = self.srv
        while not srv._stop_event.is_set():
            fault = self.fault
            if fault is not None and self.sent_here >= fault.after:
                self.fault = None
                if self._inject(fault, sel):
                    return
                continue
            now = time.monotonic()
            if now >= close_at:  # the service's routine close: a clean end of the body
                with srv._lock:
                    srv._forced_closes += 1
                if srv.close_cleanly:
                    self._send(LAST_CHUNK)
                return  # without the last chunk: a dropped connection, between events
            available = srv.available()
            batch: list[int] = []
            if self.cursor < available:
                srv._extend(available)
                limit = 64 if fault is None else fault.after - self.sent_here
                while self.cursor < available and len(batch) < limit:
                    i = self.cursor
                    self.cursor += 1
                    code = srv._log_stream[i]
                    if code in self.codes and i >= self.start[_NAMES[code]]:
                        batch.append(i)
            if batch:
                if not self._send_events(batch):
                    return
                continue
            if self.cursor < available:
                continue  # skipped other streams' events: look again
            next_due = srv._due(self.cursor)
            deadline = min(close_at, max(next_due, now + 0.001))
            if srv.keepalive_interval is not None:
                deadline = min(deadline, self.last_write + srv.keepalive_interval)
            if not self._idle_until(deadline, sel):
                return
            if srv.keepalive_interval is not None and time.monotonic() - self.last_write >= srv.keepalive_interval:
                if not self._send_body(sse_comment(""))[0]:
                    return

    def _send_events(self, batch: list[int]) -> bool:
        srv = self.srv
        body = bytearray()
        ends: list[int] = []
        records: list[WikimediaSentEvent] = []
        for i in batch:
            name = _NAMES[srv._log_stream[i]]
            topic = f"{_ACTIVE_DC}.{STREAMS[name]}"
            pos = self.positions[topic]
            if "timestamp" in pos:
                pos["timestamp"] = srv._ts_ms(i) + 1
            else:
                pos["offset"] = srv._log_offset[i] + 1
            body += sse_event(srv._payload(i), event="message", id=self._id())
            ends.append(len(body))
            records.append(WikimediaSentEvent(i, srv._meta_id(i), name, srv.is_canary(i), self.index))
        ok, done = self._send_body(bytes(body), ends)
        srv._commit_sent(records[:done])
        self.sent_here += done
        return ok

    def _inject(self, fault: Fault, sel: selectors.BaseSelector) -> bool:
        """Inject *fault*; True when the connection must now end."""
        srv = self.srv
        srv._note_fault(fault, self.index)
        kind = fault.kind
        nxt = self._next_index()
        if kind == "cut":
            body = sse_event(srv._payload(nxt), event="message", id=self._id()) if nxt is not None else \
                sse_event('{"meta":{"id":"never-sent"}}', event="message", id=self._id())
            half = body[: len(body) // 2]
            if self.rng.random() < 0.5:  # inside a chunk
                self._send(b"%x\r\n%b" % (len(body), half))
            else:  # the half event in a chunk of its own, then the drop
                self._send(chunk(half))
            return True
        if kind == "stall":
            self._idle_until(time.monotonic() + fault.seconds, sel)
            return True
        if kind == "end":
            self._send(LAST_CHUNK)
            return True
        if kind == "disconnect":
            error = {"name": "KafkaError", "message": "Local: Broker transport failure",
                     "code": fault.code if fault.code is not None else -195}
            if self._send_body(sse_event(json.dumps(error), event="error", id=self._id()))[0]:
                self._send(LAST_CHUNK)
            return True
        if kind == "inject":
            for m in fault.messages:
                wire = m if isinstance(m, bytes) else sse_event(json.dumps(m), event="error", id=self._id())
                if not self._send_body(wire)[0]:
                    return True
            return False
        sub = fault.garbage_kind  # garbage: one bad event, then the stream goes on
        payload = srv._payload(nxt) if nxt is not None else b'{"meta":{"id":"garbage","dt":"2026-01-01T00:00:00Z"}}'
        if sub == "oversized":
            data = b'{"oversized":"' + b"x" * max(0, fault.size - 16) + b'"}'
        elif sub == "invalid_utf8":
            data = payload.replace(b'"meta":{', b'"meta":{"bad":"\xff\xfe\xc3(",', 1)
        else:  # malformed_json, bad_length
            data = payload[: len(payload) * 3 // 5]
        return not self._send_body(sse_event(data, event="message", id=self._id()))[0]

    def _next_index(self) -> int | None:
        """The index the stream would send next (for a cut, nothing is consumed)."""
        srv = self.srv
        srv._extend(self.cursor + 4096)
        for i in range(self.cursor, self.cursor + 4096):
            if srv._log_stream[i] in self.codes and i >= self.start[_NAMES[srv._log_stream[i]]]:
                return i
        return None
