"""A real Jetstream-like WebSocket server on 127.0.0.1, for tests, demos and notebooks.

:class:`JetstreamServer` speaks Jetstream's protocol over a real WebSocket
(``GET /subscribe``): it generates realistic ``commit`` (posts with facets, replies,
quotes, images; likes, reposts, follows, blocks, profile updates; deletes and post edits),
``identity`` and ``account`` events shaped as Jetstream sends them, with strictly
increasing ``time_us``; keeps a replay buffer of ``buffer_size`` events; honours
``wantedCollections`` (NSIDs and ``prefix.*``; identity and account events always pass),
``wantedDids``, ``maxMessageSizeBytes`` and ``cursor`` (replays from the first event at or
after it; a cursor older than the buffer is clamped to the oldest event held, as the real
service does; no cursor, or one in the future, is the live tail). Faults
(:class:`~streamkit.testing.WsFault`) break connections as they really break: an HTTP
error instead of the upgrade, a TCP cut in the middle of a frame, a stall, a close frame.
It records everything it generated and sent.

Examples
--------
>>> import json
>>> from streamkit._websocket import WebSocketFramer, open_websocket
>>> with JetstreamServer(total=50, rate=5000, seed=1) as server:
...     with open_websocket(server.url + "/subscribe?wantedCollections=app.bsky.feed.post") as ws:
...         f, got = WebSocketFramer(), []
...         while len(got) < 3:
...             got += [json.loads(m) for m in f.feed(ws.recv())]
>>> {e["kind"] for e in got} <= {"commit", "identity", "account"}
True
>>> all(e["commit"]["collection"] == "app.bsky.feed.post" for e in got if e["kind"] == "commit")
True
"""

from __future__ import annotations

import bisect
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from ._httpd import BadRequest, read_request
from ._loopback import LoopbackServer
from ._websocket import (
    FaultQueue,
    ServerWebSocket,
    WsFault,
    accept_upgrade,
    http_error,
    server_frame,
    upgrade_problem,
)

__all__ = ["JetstreamConnection", "JetstreamServer", "make_tid"]

log = logging.getLogger("streamkit.testing")

_B32 = "234567abcdefghijklmnopqrstuvwxyz"
_NSID = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z0-9][a-zA-Z0-9-]*)+(\.\*)?$")

WORDS = (
    "the a of and to in is it for on with this that at my from you what about how just today "
    "python rust data science climate weather music art cats dogs coffee bluesky atproto feed "
    "open source research notebook parquet stream election football book film garden science "
    "sunset morning news city train coding release paper model vote ocean mountain photo"
).split()
HASHTAGS = ("python", "climate", "art", "bluesky", "science", "music", "dataviz", "cats")
LANGS: tuple[list[str], ...] = (["en"], ["en"], ["en"], ["pt"], ["ja"], ["de"], ["es"], ["en", "es"], [])
COLLECTIONS = (
    ("app.bsky.feed.post", 30), ("app.bsky.feed.like", 40), ("app.bsky.feed.repost", 9),
    ("app.bsky.graph.follow", 10), ("app.bsky.graph.block", 2), ("app.bsky.actor.profile", 2),
    ("app.bsky.graph.listitem", 1),
)


def make_tid(time_us: int, clock_id: int = 0) -> str:
    """An AT Protocol TID (13 base32-sortable characters) for a time in microseconds.

    Examples
    --------
    >>> make_tid(1725911162329308), len(make_tid(1)), make_tid(2) > make_tid(1)
    ('3l3qo2vxaaw22', 13, True)
    """
    n = ((time_us & ((1 << 53) - 1)) << 10) | (clock_id & 0x3FF)
    return "".join(_B32[(n >> (5 * i)) & 31] for i in range(12, -1, -1))


def _iso(time_us: int) -> str:
    return datetime.fromtimestamp(time_us / 1e6, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Event:
    seq: int
    time_us: int
    did: str
    kind: str
    collection: str | None
    data: bytes  # the JSON message as sent
    event: dict[str, Any]


@dataclass
class JetstreamConnection:
    """What one connection asked for and got."""

    index: int
    params: dict[str, list[str]]
    cursor: int | None
    status: int
    start_seq: int | None = None  # the first event considered (after clamping)
    clamped: bool = False
    sent: list[int] = field(default_factory=list)  # event seqs sent
    fault: WsFault | None = None


class _Generator:
    """Realistic events from a seeded RNG: a pool of accounts, their posts and revisions."""

    def __init__(self, seed: int, accounts: int, bad_created_at: float) -> None:
        self.rng = random.Random(seed)
        self.dids = [
            "did:plc:" + "".join(self.rng.choice(_B32) for _ in range(24)) for _ in range(accounts)
        ]
        self.handles = {d: f"{self.rng.choice(WORDS)}{i}.bsky.social" for i, d in enumerate(self.dids)}
        self.posts: list[tuple[str, str, str]] = []  # (did, rkey, cid) of live posts
        self.records: dict[tuple[str, str], list[str]] = {}  # (did, collection) -> rkeys
        self.seq_of_account = 0
        self.bad_created_at = bad_created_at
        self.weights = [w for _, w in COLLECTIONS]
        self.names = [c for c, _ in COLLECTIONS]

    def cid(self) -> str:
        return "bafyrei" + "".join(self.rng.choice(_B32) for _ in range(52))

    def event(self, time_us: int) -> dict[str, Any]:
        r = self.rng.random()
        did = self.rng.choice(self.dids)
        if r < 0.015:
            self.seq_of_account += 1
            return {"did": did, "time_us": time_us, "kind": "identity",
                    "identity": {"did": did, "handle": self.handles[did], "seq": 1_000_000 + self.seq_of_account,
                                 "time": _iso(time_us - 180_000)}}
        if r < 0.025:
            self.seq_of_account += 1
            active = self.rng.random() < 0.6
            account: dict[str, Any] = {"active": active, "did": did, "seq": 1_000_000 + self.seq_of_account,
                                       "time": _iso(time_us - 150_000)}
            if not active:
                account["status"] = self.rng.choice(["deactivated", "takendown", "deleted"])
            return {"did": did, "time_us": time_us, "kind": "account", "account": account}
        collection = self.rng.choices(self.names, self.weights)[0]
        rev = make_tid(time_us, 7)
        mine = self.records.setdefault((did, collection), [])
        op = "create"
        roll = self.rng.random()
        if mine and roll < 0.10:
            op = "delete"
        elif mine and collection in ("app.bsky.feed.post", "app.bsky.actor.profile") and roll < 0.14:
            op = "update"
        if collection == "app.bsky.actor.profile":
            op = "update" if mine else "create"
        if op == "create":
            rkey = "self" if collection == "app.bsky.actor.profile" else make_tid(time_us - self.rng.randrange(1000, 90_000), 3)
            mine.append(rkey)
        else:
            rkey = self.rng.choice(mine)
        commit: dict[str, Any] = {"rev": rev, "operation": op, "collection": collection, "rkey": rkey}
        if op == "delete":
            mine.remove(rkey)
            if collection == "app.bsky.feed.post":
                self.posts = [p for p in self.posts if (p[0], p[1]) != (did, rkey)]
            return {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}
        cid = self.cid()
        created = _iso(time_us - self.rng.randrange(50_000, 900_000))
        record = self._record(collection, did, created)
        commit["record"] = record
        commit["cid"] = cid
        if collection == "app.bsky.feed.post" and op == "create":
            self.posts.append((did, rkey, cid))
            del self.posts[:-500]
        return {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}

    def _ref(self) -> dict[str, str] | None:
        if not self.posts:
            return None
        did, rkey, cid = self.rng.choice(self.posts)
        return {"cid": cid, "uri": f"at://{did}/app.bsky.feed.post/{rkey}"}

    def _record(self, collection: str, did: str, created: str) -> dict[str, Any]:
        rng = self.rng
        if collection in ("app.bsky.feed.like", "app.bsky.feed.repost"):
            subject = self._ref() or {"cid": self.cid(), "uri": f"at://{rng.choice(self.dids)}/app.bsky.feed.post/{make_tid(1)}"}
            return {"$type": collection, "createdAt": created, "subject": subject}
        if collection in ("app.bsky.graph.follow", "app.bsky.graph.block"):
            return {"$type": collection, "createdAt": created, "subject": rng.choice(self.dids)}
        if collection == "app.bsky.graph.listitem":
            return {"$type": collection, "createdAt": created, "subject": rng.choice(self.dids),
                    "list": f"at://{did}/app.bsky.graph.list/{make_tid(7)}"}
        if collection == "app.bsky.actor.profile":
            return {"$type": collection, "displayName": rng.choice(WORDS).title(), "description": " ".join(rng.choices(WORDS, k=6))}
        return self._post(did, created)

    def _post(self, did: str, created: str) -> dict[str, Any]:
        rng = self.rng
        words = rng.choices(WORDS, k=rng.randrange(3, 25))
        if rng.random() < 0.1:
            words.insert(rng.randrange(len(words) + 1), rng.choice(["Python", "CLIMATE", "Data Science"]))
        text = " ".join(words)
        facets: list[dict[str, Any]] = []

        def add(fragment: str, feature: dict[str, Any]) -> None:
            nonlocal text
            text += " "
            start = len(text.encode("utf-8"))
            text += fragment
            facets.append({"$type": "app.bsky.richtext.facet",
                           "index": {"byteStart": start, "byteEnd": len(text.encode("utf-8"))},
                           "features": [feature]})

        if rng.random() < 0.3:
            tag = rng.choice(HASHTAGS)
            add("#" + tag, {"$type": "app.bsky.richtext.facet#tag", "tag": tag})
        if rng.random() < 0.15:
            other = rng.choice(self.dids)
            add("@" + self.handles[other], {"$type": "app.bsky.richtext.facet#mention", "did": other})
        if rng.random() < 0.15:
            url = f"https://example.org/{rng.choice(WORDS)}/{rng.randrange(10_000)}"
            add(url, {"$type": "app.bsky.richtext.facet#link", "uri": url})
        if rng.random() < 0.05:
            text += " 🦋 olá — ünïcödé"
        record: dict[str, Any] = {"$type": "app.bsky.feed.post", "createdAt": created, "text": text,
                                  "langs": rng.choice(LANGS)}
        if not record["langs"]:
            del record["langs"]
        if facets:
            record["facets"] = facets
        if rng.random() < self.bad_created_at:
            record["createdAt"] = rng.choice(["not a date", "2024-13-45T99:00:00Z", "", "0000-00-00"])
        parent = self._ref() if rng.random() < 0.3 else None
        if parent is not None:
            root = self._ref() if rng.random() < 0.5 else parent
            record["reply"] = {"parent": parent, "root": root}
        roll = rng.random()
        quoted = self._ref()
        if roll < 0.08 and quoted:
            record["embed"] = {"$type": "app.bsky.embed.record", "record": quoted}
        elif roll < 0.12 and quoted:
            record["embed"] = {"$type": "app.bsky.embed.recordWithMedia",
                               "record": {"$type": "app.bsky.embed.record", "record": quoted},
                               "media": {"$type": "app.bsky.embed.images", "images": [self._image()]}}
        elif roll < 0.25:
            record["embed"] = {"$type": "app.bsky.embed.images", "images": [self._image() for _ in range(rng.randrange(1, 4))]}
        elif roll < 0.30:
            url = f"https://news.example.com/{rng.randrange(100_000)}"
            record["embed"] = {"$type": "app.bsky.embed.external",
                               "external": {"uri": url, "title": " ".join(rng.choices(WORDS, k=5)), "description": ""}}
        return record

    def _image(self) -> dict[str, Any]:
        return {"alt": " ".join(self.rng.choices(WORDS, k=4)),
                "image": {"$type": "blob", "ref": {"$link": "bafkrei" + self.cid()[7:]}, "mimeType": "image/jpeg",
                          "size": self.rng.randrange(20_000, 900_000)}}


class JetstreamServer(LoopbackServer):
    """A Jetstream-compatible WebSocket server (see the module docstring).

    Parameters
    ----------
    total : int or None, default 1000
        Events to generate live, after ``prefill`` (None: without end).
    rate : float, default 2000
        Live events per second.
    prefill : int, default 0
        Events already in the buffer at start, with ``time_us`` in the recent past (1 ms
        apart, ending now): what a ``cursor`` can replay.
    buffer_size : int or None
        Events the replay buffer keeps (the oldest are dropped); None keeps all.
    start_on_connect : bool, default True
        Start generating live events when the first client connects (so a client without
        a cursor sees them all); False starts at :meth:`start`.
    faults : iterable of WsFault
        One per connection, in order.
    seed : int
        Seed of the generator: the same seed gives the same events (not the same times).
    accounts : int
        Size of the pool of accounts (DIDs).
    bad_created_at : float
        Share of posts with an invalid ``createdAt``.

    Attributes
    ----------
    connections : list of JetstreamConnection
        Every upgrade request, what it asked and what it was sent.
    sent : list of int
        Event seqs sent, over all connections, in order (replays appear again).
    """

    scheme = "ws"
    path = "/subscribe"

    def __init__(
        self,
        *,
        total: int | None = 1000,
        rate: float = 2000.0,
        prefill: int = 0,
        buffer_size: int | None = None,
        start_on_connect: bool = True,
        faults: Iterable[WsFault] = (),
        seed: int = 0,
        accounts: int = 60,
        bad_created_at: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.total = total
        self.rate = float(rate)
        self.buffer_size = buffer_size
        self.start_on_connect = start_on_connect
        self.faults = FaultQueue(faults)
        self._gen = _Generator(seed, accounts, bad_created_at)
        self._log: list[_Event] = []
        self._times: list[int] = []
        self._oldest = 0  # seq of the oldest event still in the buffer
        self._live = 0  # live events generated so far
        self._gen_thread: threading.Thread | None = None
        self._gen_started = threading.Event()
        self._gen_stop = threading.Event()
        self.connections: list[JetstreamConnection] = []
        self.sent: list[int] = []
        if prefill:
            now = time.time_ns() // 1000
            for i in range(prefill):
                self._append(now - (prefill - i) * 1000)

    # -- the event log ---------------------------------------------------------------------
    def _append(self, time_us: int) -> None:
        if self._times and time_us <= self._times[-1]:
            time_us = self._times[-1] + 1
        ev = self._gen.event(time_us)
        commit = ev.get("commit") or {}
        data = json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._log.append(_Event(len(self._log), time_us, ev["did"], ev["kind"], commit.get("collection"), data, ev))
        self._times.append(time_us)
        if self.buffer_size is not None and len(self._log) - self._oldest > self.buffer_size:
            self._oldest = len(self._log) - self.buffer_size

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event generated, in order (a copy of each as sent)."""
        with self._lock:
            return [e.event for e in self._log]

    @property
    def dids(self) -> list[str]:
        """The accounts events come from."""
        return list(self._gen.dids)

    @property
    def live_done(self) -> bool:
        """True once ``total`` live events have been generated."""
        return self.total is not None and self._live >= self.total

    def matching(self, collections: Iterable[str] = (), dids: Iterable[str] = ()) -> list[dict[str, Any]]:
        """The generated events a subscription with these filters receives (from the start)."""
        f = _Filter(list(collections), list(dids), None)
        with self._lock:
            return [e.event for e in self._log if f.passes(e)]

    def add_faults(self, *faults: WsFault) -> None:
        """Queue more faults for the next connections."""
        self.faults.add(*faults)

    def start(self) -> Any:
        super().start()
        self._gen_thread = threading.Thread(target=self._generate, daemon=True,
                                            name=f"streamkit-testing-jetstream-{self.port}")
        self._gen_thread.start()
        if not self.start_on_connect:
            self._gen_started.set()
        return self

    def stop(self, timeout: float = 0.9) -> None:
        self._gen_stop.set()
        self._gen_started.set()
        if self._gen_thread is not None:
            self._gen_thread.join(timeout)
        super().stop(timeout)

    def _generate(self) -> None:
        self._gen_started.wait()
        started = time.monotonic()
        while not self._gen_stop.is_set():
            if self.total is not None and self._live >= self.total:
                self._gen_stop.wait(0.05)
                continue
            due = int((time.monotonic() - started) * self.rate) + 1
            if self.total is not None:
                due = min(due, self.total)
            with self._cond:
                while self._live < due:
                    self._append(time.time_ns() // 1000)
                    self._live += 1
                self._cond.notify_all()
            self._gen_stop.wait(0.005)

    # -- connections ---------------------------------------------------------------------
    def _handle(self, sock: socket.socket, index: int) -> None:
        try:
            req = read_request(sock)
        except BadRequest as exc:
            sock.sendall(http_error(exc.status, exc.message))
            return
        if req is None:
            return
        params = parse_qs(req.query, keep_blank_values=True)
        conn = JetstreamConnection(index, params, None, 101)
        with self._lock:
            self.connections.append(conn)
        fault = self.faults.take()
        conn.fault = fault if fault.kind != "none" else None
        if fault.kind == "http":
            conn.status = fault.code or 500
            extra = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else None
            sock.sendall(http_error(conn.status, f"test server fault: HTTP {conn.status}", headers=extra))
            return
        if req.path != self.path:
            conn.status = 404
            sock.sendall(http_error(404, f"no such endpoint {req.path!r}: Jetstream serves {self.path}"))
            return
        problem = upgrade_problem(req) or self._check_params(params)
        if problem is not None:
            conn.status = problem[0]
            sock.sendall(http_error(*problem))
            return
        filt = _Filter(params.get("wantedCollections", []), params.get("wantedDids", []),
                       int(params["maxMessageSizeBytes"][0]) if params.get("maxMessageSizeBytes") else None)
        conn.cursor = int(params["cursor"][0]) if params.get("cursor") else None
        ws = accept_upgrade(sock, req, bad_accept=fault.kind == "bad_accept")
        if ws is None or fault.kind == "bad_accept":
            return
        self._gen_started.set()
        self._serve(ws, conn, filt, fault)

    @staticmethod
    def _check_params(params: dict[str, list[str]]) -> tuple[int, str] | None:
        for nsid in params.get("wantedCollections", []):
            if not _NSID.match(nsid):
                return 400, f"invalid collection in wantedCollections: {nsid!r}"
        for did in params.get("wantedDids", []):
            if not did.startswith("did:"):
                return 400, f"invalid DID in wantedDids: {did!r}"
        for name in ("cursor", "maxMessageSizeBytes"):
            values = params.get(name, [])
            if values and not values[0].lstrip("-").isdigit():
                return 400, f"{name} must be an integer, got {values[0]!r}"
        return None

    def _start_seq(self, conn: JetstreamConnection) -> int:
        with self._lock:
            end = len(self._log)
            if conn.cursor is None or not self._times or conn.cursor > self._times[-1]:
                return end  # the live tail
            seq = bisect.bisect_left(self._times, conn.cursor)
            if seq < self._oldest:  # older than the buffer: the oldest held, as Jetstream does
                conn.clamped = True
                seq = self._oldest
            return seq

    def _serve(self, ws: ServerWebSocket, conn: JetstreamConnection, filt: _Filter, fault: WsFault) -> None:
        seq = self._start_seq(conn)
        conn.start_seq = seq
        count = 0
        while not self._stop_event.is_set():
            with self._cond:
                while seq >= len(self._log) and not self._stop_event.is_set():
                    self._cond.wait(0.05)
                    if not ws.poll(0.0):
                        return
                batch = self._log[seq : seq + 256]
            if not ws.poll(0.0):
                return
            out = bytearray()
            sent: list[int] = []
            for ev in batch:
                seq = ev.seq + 1
                if not filt.passes(ev):
                    continue
                if fault.kind != "none" and count == fault.after:
                    if out:
                        ws.send_raw(bytes(out))
                        self._record(conn, sent)
                        out, sent = bytearray(), []
                    if self._inject(ws, fault, ev):
                        return
                    fault = WsFault.none()
                out += server_frame(ev.data)
                sent.append(ev.seq)
                count += 1
            if out:
                ws.send_raw(bytes(out))
                self._record(conn, sent)

    def _record(self, conn: JetstreamConnection, seqs: list[int]) -> None:
        with self._lock:
            conn.sent.extend(seqs)
            self.sent.extend(seqs)

    def _inject(self, ws: ServerWebSocket, fault: WsFault, ev: _Event) -> bool:
        """Apply *fault* before *ev*; True when the connection is over."""
        if fault.kind == "ping":
            ws.ping()
            return False
        if fault.kind == "cut":
            frame = server_frame(ev.data)
            ws.send_raw(frame[: max(1, len(frame) // 2)])
        elif fault.kind == "stall":
            self._stop_event.wait(fault.seconds)
        elif fault.kind == "close":
            ws.close(fault.code or 1011, "test server fault")
        ws.poll(0.05)
        try:
            ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return True


class _Filter:
    def __init__(self, collections: list[str], dids: list[str], max_size: int | None) -> None:
        self.exact = {c for c in collections if not c.endswith(".*")}
        self.prefixes = tuple(c[:-1] for c in collections if c.endswith(".*"))  # "app.bsky.graph."
        self.any_collection = not collections
        self.dids = set(dids)
        self.max_size = max_size

    def passes(self, ev: _Event) -> bool:
        if self.dids and ev.did not in self.dids:
            return False
        if self.max_size is not None and self.max_size > 0 and len(ev.data) > self.max_size:
            return False
        if ev.kind != "commit" or self.any_collection:
            return True  # identity and account events go to every subscriber
        c = ev.collection or ""
        return c in self.exact or c.startswith(self.prefixes)
