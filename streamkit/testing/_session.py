"""One streaming response: statuses, notices, keep-alives and the injected fault.

A session runs on its connection's thread.  It reserves statuses from the
server's budget, stamps fresh ids into pre-rendered templates, frames a batch
as HTTP chunks and hands it to ``socket.send`` while counting bytes, so the
server knows exactly which messages were completely handed to the socket when
a send fails part-way.
"""

from __future__ import annotations

import bisect
import random
import selectors
import socket
import time
from typing import TYPE_CHECKING, Any

from ._faults import DISCONNECT_REASONS, Fault
from ._generate import TWEPOCH_MS, snowflake
from ._httpd import response_head
from ._match import StreamFilter
from ._render import CreatedAtCache, Template, delivered_payload, encode_json, frame_chunks
from ._sockio import idle_until, send_counted

if TYPE_CHECKING:
    from ._server import StreamServer

__all__ = ["Session"]

BATCH_BYTES = 512 * 1024
_WITHHELD = (["DE"], ["DE", "AT"], ["TR"], ["FR"], ["IN"], ["RU"], ["XY"])
_WARNING = ("Your connection is falling behind and messages are being queued for delivery to "
            "you. Your queue is now over {pct}% full. You will be disconnected when the queue "
            "is full.")


class Session:
    """The body of one ``200 OK`` streaming response."""

    def __init__(self, server: StreamServer, sock: socket.socket, flt: StreamFilter, *,
                 endpoint: str, delimited: bool, stall_warnings: bool, fault: Fault | None,
                 conn_index: int) -> None:
        self.srv = server
        self.sock = sock
        self.flt = flt
        self.endpoint = endpoint
        self.delimited = delimited
        self.stall_warnings = stall_warnings
        self.fault = fault if fault is not None and fault.kind != "none" else None
        self.conn_index = conn_index
        self.rng = random.Random(server.seed * 1_000_003 + conn_index)
        self.pool = server._pool_for(flt)
        n_templates = len(self.pool.templates)
        self.cursor = self.rng.randrange(n_templates) if n_templates else 0
        self.sent_here = 0
        self.limit_total = 0
        self.created = CreatedAtCache()
        self.last_write = time.monotonic()
        self.batch_n = max(1, min(1024, int(BATCH_BYTES / self.pool.mean_size)))
        p = min(max(server.notices, 0.0), 0.5)
        self.notice_p = p / (1.0 - p)

    # -- I/O ---------------------------------------------------------------------
    def _send_counted(self, wire: bytes) -> int:
        """Send *wire*; return how many bytes the socket accepted before any error."""
        total = send_counted(self.sock, wire)
        self.last_write = time.monotonic()
        return total

    def _send_framed(self, payload: bytes) -> bool:
        wire, _ = frame_chunks(payload, self.srv.chunk_bytes, self.rng)
        return self._send_counted(wire) == len(wire)

    def _idle_until(self, deadline: float, sel: selectors.BaseSelector) -> bool:
        """Wait until *deadline*; False if the server stops or the client goes away."""
        return idle_until(self.sock, self.srv._stop_event, deadline, sel)

    def _frame(self, body: bytes) -> bytes:
        if self.delimited:
            return b"%d\r\n%b\r\n" % (len(body) + 2, body)
        return body + b"\r\n"

    # -- main loop -------------------------------------------------------------------
    def run(self) -> None:
        """Send headers, then stream until the fault, the client or ``stop()`` ends it."""
        head = response_head(200, "application/json", {"x-connection-hash": f"{self.rng.getrandbits(128):032x}"})
        if self._send_counted(head) != len(head):
            return
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            self._loop(sel)

    def _loop(self, sel: selectors.BaseSelector) -> None:
        srv = self.srv
        stop = srv._stop_event
        rate = srv.rate
        has_templates = bool(self.pool.templates)
        t0 = time.monotonic()
        emitted = 0
        while not stop.is_set():
            fault = self.fault
            if fault is not None and self.sent_here >= fault.after:
                self.fault = None
                if self._inject(fault, sel):
                    return
                continue
            want = self.batch_n if has_templates else 0
            now = time.monotonic()
            if rate is not None:
                want = min(want, int((now - t0) * rate) - emitted)
            if fault is not None:
                want = min(want, fault.after - self.sent_here)
            n = srv._reserve(want) if want > 0 else 0
            if n:
                emitted += n
                if not self._send_statuses(n):
                    return
                continue
            deadline = self.last_write + srv.keepalive_interval
            if want > 0:  # the budget is spent; a failed send elsewhere may give some back
                deadline = min(deadline, now + 0.25)
            elif rate is not None and has_templates:
                deadline = min(deadline, t0 + (emitted + 1) / rate)
            if not self._idle_until(deadline, sel):
                return
            if time.monotonic() - self.last_write >= srv.keepalive_interval:
                if self._send_counted(b"2\r\n\r\n\r\n") != 7:
                    return

    def _send_statuses(self, n: int) -> bool:
        srv = self.srv
        ids = srv._ids.take(n)
        templates = self.pool.templates
        skips = self.pool.skips
        size = len(templates)
        cur = self.cursor
        dropped = 0
        parts: list[bytes] = []
        append = parts.append
        status_ends: list[int] = []
        uids: list[int] = []
        bodies: list[bytes] = []
        notices: list[dict[str, Any]] = []
        notice_ends: list[int] = []
        pos = 0
        delimited = self.delimited
        record = srv.record_payloads
        created = self.created
        rnd = self.rng.random
        p = self.notice_p
        for sid in ids:
            if p and rnd() < p:
                notice = self._notice()
                frame = self._frame(encode_json(notice))
                append(frame)
                pos += len(frame)
                notices.append(notice)
                notice_ends.append(pos)
            tpl = templates[cur]
            dropped += skips[cur]
            cur += 1
            if cur == size:
                cur = 0
            ms = (sid >> 22) + TWEPOCH_MS
            body = tpl.fmt % {b"c": created(ms), b"i": sid, b"t": ms}
            if delimited:
                prefix = b"%d\r\n" % (len(body) + 2)
                append(prefix)
                pos += len(prefix)
            append(body)
            append(b"\r\n")
            pos += len(body) + 2
            status_ends.append(pos)
            uids.append(tpl.user_id)
            if record:
                bodies.append(body)
        self.cursor = cur
        payload = b"".join(parts)
        wire, spans = frame_chunks(payload, srv.chunk_bytes, self.rng)
        sent = self._send_counted(wire)
        ok = sent == len(wire)
        if ok:
            k, kn = n, len(notices)
        else:
            delivered = delivered_payload(spans, sent)
            k = bisect.bisect_right(status_ends, delivered)
            kn = bisect.bisect_right(notice_ends, delivered)
        srv._commit(ids[:k], uids[:k], bodies[:k] if record else None, notices[:kn], dropped)
        self.sent_here += k
        if k < n:
            srv._refund(n - k)
        return ok

    # -- notices ---------------------------------------------------------------------
    def _old_status(self, ms: int) -> tuple[int, int]:
        """An (id, user_id) sent earlier on this server, or a plausible older one."""
        rng = self.rng
        if rng.random() < 0.85:
            picked = self.srv._recent_pick(rng)
            if picked is not None:
                return picked
        sid = snowflake(ms - rng.randint(1_000, 30 * 86_400_000), worker=rng.randint(0, 1023))
        return sid, rng.randint(10**6, 4 * 10**9)

    def _notice(self) -> dict[str, Any]:
        rng = self.rng
        ms = int(time.time() * 1000)
        ts = str(ms)
        kinds = ["delete", "limit", "scrub_geo", "status_withheld", "user_withheld"]
        weights = [70, 15 if self.endpoint == "filter" else 0, 3, 5, 4]
        if self.stall_warnings:
            kinds.append("warning")
            weights.append(3)
        kind = rng.choices(kinds, weights)[0]
        if kind == "limit":
            self.limit_total += rng.randint(1, 120)
            return {"limit": {"track": self.limit_total, "timestamp_ms": ts}}
        if kind == "warning":
            pct = rng.choice((60, 70, 80, 90))
            return {"warning": {"code": "FALLING_BEHIND", "message": _WARNING.format(pct=pct),
                                "percent_full": pct}}
        sid, uid = self._old_status(ms)
        if kind == "delete":
            return {"delete": {"status": {"id": sid, "id_str": str(sid), "user_id": uid,
                                          "user_id_str": str(uid)}, "timestamp_ms": ts}}
        if kind == "scrub_geo":
            return {"scrub_geo": {"user_id": uid, "user_id_str": str(uid), "up_to_status_id": sid,
                                  "up_to_status_id_str": str(sid), "timestamp_ms": ts}}
        countries = rng.choice(_WITHHELD)
        if kind == "status_withheld":
            return {"status_withheld": {"id": sid, "user_id": uid,
                                        "withheld_in_countries": countries, "timestamp_ms": ts}}
        return {"user_withheld": {"id": uid, "withheld_in_countries": countries,
                                  "timestamp_ms": ts}}

    # -- faults ------------------------------------------------------------------------
    def _fresh_body(self) -> bytes:
        """A real status with a fresh id that will never be in ``server.sent``."""
        tpl: Template
        if self.pool.templates:
            tpl = self.pool.templates[self.cursor]
            self.cursor = (self.cursor + 1) % len(self.pool.templates)
        else:
            tpl = self.srv._fallback_template()
        sid = self.srv._ids.take(1)[0]
        ms = (sid >> 22) + TWEPOCH_MS
        return tpl.fmt % {b"c": self.created(ms), b"i": sid, b"t": ms}

    def _inject(self, fault: Fault, sel: selectors.BaseSelector) -> bool:
        """Inject *fault*; True when the connection must now end."""
        srv = self.srv
        srv._note_fault(fault, self.conn_index)
        kind = fault.kind
        if kind == "cut":
            msg = self._frame(self._fresh_body())
            half = msg[: len(msg) // 2]
            if self.rng.random() < 0.5:  # the cut falls inside a chunk (IncompleteRead)
                self._send_counted(b"%x\r\n%b" % (len(msg), half))
            else:  # ... or between chunks, the half message in a chunk of its own
                self._send_framed(half)
            return True
        if kind == "stall":
            self._idle_until(time.monotonic() + fault.seconds, sel)
            return True
        if kind == "end":
            self._send_counted(b"0\r\n\r\n")
            return True
        if kind == "disconnect":
            code = fault.code if fault.code is not None else 4
            notice = {"disconnect": {"code": code,
                                     "stream_name": f"streamkit-test-statuses{self.conn_index}",
                                     "reason": DISCONNECT_REASONS.get(code, "Unknown")}}
            if self._send_framed(self._frame(encode_json(notice))):
                srv._commit([], [], None, [notice], 0)
                self._send_counted(b"0\r\n\r\n")
            return True
        if kind == "inject":
            notices = [m for m in fault.messages if isinstance(m, dict)]
            for m in fault.messages:
                body = m if isinstance(m, bytes) else encode_json(m)
                if not self._send_framed(self._frame(body)):
                    return True
            srv._commit([], [], None, notices, 0)
            return False
        # garbage: one bad message, then the stream goes on
        sub = fault.garbage_kind
        if sub == "oversized":
            size = max(fault.size, 16)
            msg = self._frame(b'{"oversized":"' + b"x" * (size - 16) + b'"}')
        elif sub == "invalid_utf8":
            msg = self._frame(self._fresh_body().replace(b'"text":"', b'"text":"\xff\xfe\xc3(', 1))
        elif sub == "bad_length" and self.delimited:
            body = self._fresh_body()
            msg = b"%d\r\n%b\r\n" % ((len(body) + 2) // 2, body)
        else:  # malformed_json, and bad_length without length framing
            body = self._fresh_body()
            msg = self._frame(body[: len(body) * 3 // 5])
        return not self._send_framed(msg)
