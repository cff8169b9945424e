"""Fast wire encoding: pre-rendered status templates and HTTP chunked framing.

Generating a realistic status costs ~100 us; the server must send >100,000
per second.  So each filter gets a pool of a few thousand statuses rendered
once to compact JSON, with the outer ``created_at``, ``id``/``id_str`` (and the
media URLs that contain the id) and ``timestamp_ms`` turned into ``%``-format
slots.  Serving a status is then one C-level ``bytes % dict``.

The JSON is escaped as Twitter's encoder did: ``ensure_ascii`` (so emoji are
``\\ud83d\\ude02`` surrogate pairs), ``/`` as ``\\/``, and ``<``, ``>``, ``&`` as
``\\u003c``-style escapes -- all only inside strings, where JSON allows them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from ._generate import format_created_at, generate_for_filter
from ._match import StreamFilter

__all__ = ["Template", "TemplatePool", "encode_json", "frame_chunks", "twitter_json"]


def encode_json(obj: Any) -> bytes:
    """Compact, ASCII-only JSON, as the v1.1 API sent it."""
    return twitter_json(json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii"))


def twitter_json(raw: bytes) -> bytes:
    r"""Apply Twitter's extra escapes; ``/ < > &`` only ever occur inside JSON strings.

    Examples
    --------
    >>> twitter_json(b'{"source":"<a href=\\"http://x\\">"}')
    b'{"source":"\\u003ca href=\\"http:\\/\\/x\\"\\u003e"}'
    """
    return (raw.replace(b"/", b"\\/").replace(b"<", b"\\u003c").replace(b">", b"\\u003e")
            .replace(b"&", b"\\u0026"))


@dataclass(frozen=True)
class Template:
    """One pre-rendered status: ``fmt % {b"c": created_at, b"i": id, b"t": ms}``."""

    fmt: bytes
    user_id: int
    size: int


class TemplatePool:
    """The statuses one filter serves, pre-rendered, with the generated non-matches.

    ``templates`` holds only statuses that :meth:`StreamFilter.matches`; ``skips[i]``
    is how many generated statuses were dropped just before ``templates[i]``, so a
    cursor walking the pool can count dropped statuses without re-matching.
    """

    def __init__(self, statuses: list[dict[str, Any]], flt: StreamFilter) -> None:
        self.templates: list[Template] = []
        self.skips: list[int] = []
        self.generated = len(statuses)
        dropped = 0
        for st in statuses:
            if not flt.matches(st):
                dropped += 1
                continue
            self.templates.append(make_template(st))
            self.skips.append(dropped)
            dropped = 0
        if self.skips:
            self.skips[0] += dropped  # the wrap-around gap
        self.matched = len(self.templates)
        self.mean_size = (sum(t.size for t in self.templates) / self.matched
                          if self.matched else 4096.0)

    @classmethod
    def build(cls, flt: StreamFilter, *, seed: int, size: int, match_fraction: float,
              ) -> TemplatePool:
        """Generate *size* statuses for *flt* and keep the matching ones."""
        return cls(generate_for_filter(size, flt, seed=seed, match_fraction=match_fraction), flt)


def make_template(st: dict[str, Any]) -> Template:
    """Render *st* with the outer id, created_at and timestamp_ms as format slots."""
    sid = st["id"]
    raw = encode_json(st).replace(b"%", b"%%")
    head = b'{"created_at":"' + st["created_at"].encode() + b'"'
    tail = b'"timestamp_ms":"' + st["timestamp_ms"].encode() + b'"}'
    if not (raw.startswith(head) and raw.endswith(tail)):
        raise ValueError("status must start with created_at and end with timestamp_ms")
    raw = b'{"created_at":"%(c)s"' + raw[len(head):-len(tail)] + b'"timestamp_ms":"%(t)d"}'
    raw = raw.replace(str(sid).encode(), b"%(i)d")
    size = len(raw % {b"c": st["created_at"].encode(), b"i": sid, b"t": 0}) + 12
    return Template(raw, st["user"]["id"], size)


class CreatedAtCache:
    """``created_at`` bytes for a millisecond, formatted once per second."""

    __slots__ = ("sec", "value")

    def __init__(self) -> None:
        self.sec = -1
        self.value = b""

    def __call__(self, ms: int) -> bytes:
        sec = ms // 1000
        if sec != self.sec:
            self.sec = sec
            self.value = format_created_at(ms).encode()
        return self.value


def frame_chunks(payload: bytes, chunk_bytes: int, rng: random.Random,
                 ) -> tuple[bytes, list[tuple[int, int]]]:
    """Wrap *payload* in HTTP chunks of *chunk_bytes*; return wire bytes and chunk spans.

    Chunk borders fall wherever the byte count puts them, so messages straddle
    them.  A payload smaller than one chunk is split in two at a random point
    half of the time, so that even slow streams exercise reassembly.
    """
    n = len(payload)
    if n <= chunk_bytes:
        if n > 1 and rng.random() < 0.5:
            cut = rng.randint(1, n - 1)
            spans = [(0, cut), (cut, n)]
        else:
            spans = [(0, n)]
    else:
        spans = [(a, min(a + chunk_bytes, n)) for a in range(0, n, chunk_bytes)]
    view = memoryview(payload)
    pieces: list[Any] = []
    for a, b in spans:
        pieces.append(b"%x\r\n" % (b - a))
        pieces.append(view[a:b])
        pieces.append(b"\r\n")
    wire = b"".join(pieces)
    view.release()
    return wire, spans


def delivered_payload(spans: list[tuple[int, int]], wire_sent: int) -> int:
    """How many payload bytes the first *wire_sent* bytes of a framed batch carried."""
    pos = 0
    for a, b in spans:
        pos += len(b"%x\r\n" % (b - a))
        if wire_sent <= pos:
            return a
        if wire_sent < pos + (b - a):
            return a + (wire_sent - pos)
        pos += (b - a) + 2
    return spans[-1][1] if spans else 0
