"""Server-sent events (``text/event-stream``): a pure framer and the event parser.

The HTML Living Standard (section 9.2, "Server-sent events") defines the format: lines
end in CRLF, LF or a lone CR; a line starting with ``:`` is a comment; ``field: value``
lines (one optional space after the colon) build an event; a blank line dispatches it.
Wikimedia EventStreams and Mastodon's streaming API speak it.

Two pieces, split the way :mod:`streamkit.framing` splits newline-delimited JSON:

* :class:`SSEFramer` runs on the network thread. It only finds event boundaries and
  hands on each event's field lines, raw (never decoded), so the writer decodes once.
  It is pure (no I/O, no clock) and gives the same events whatever the chunking.
* :func:`parse_event` interprets one such block per the standard's rules
  (:class:`SSEEvent`); decoders and listeners call it.

Examples
--------
>>> f = SSEFramer()
>>> f.feed(b":ok\\r\\n\\r\\nevent: message\\r\\nid: [{\\"offset\\": 7}]\\r\\ndata: {\\"a\\"")
[]
>>> msgs = f.feed(b": 1}\\r\\n\\r\\n")
>>> msgs
[b'event: message\\nid: [{"offset": 7}]\\ndata: {"a": 1}']
>>> f.stats.keepalives, f.stats.messages
(1, 1)
>>> parse_event(msgs[0])
SSEEvent(event='message', id='[{"offset": 7}]', data=b'{"a": 1}', retry=None)
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .framing import DEFAULT_MAX_MESSAGE_BYTES, FramingStats

__all__ = ["SSEEvent", "SSEFramer", "parse_event"]

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    """One interpreted event (see :func:`parse_event`).

    Attributes
    ----------
    event : str
        The event type; ``"message"`` when the block has no (or an empty) ``event:`` field.
    id : str or None
        The ``id:`` field's value, verbatim (send it back as ``Last-Event-ID``); ``None``
        when the block has no ``id`` field, ``""`` when it resets the id.
    data : bytes
        The ``data:`` lines' values joined with ``\\n`` (raw bytes, not decoded).
    retry : int or None
        The ``retry:`` reconnection time in milliseconds, when given as ASCII digits.
    """

    event: str
    id: str | None
    data: bytes
    retry: int | None


def parse_event(block: bytes) -> SSEEvent:
    """Interpret one event block (as :meth:`SSEFramer.feed` returns it).

    Follows the standard's "interpret an event stream" steps for one block: comments
    and unknown fields are ignored; ``data:x`` and ``data: x`` mean the same (one
    leading space is dropped); several ``data`` lines join with ``\\n``; a field name
    without a colon has an empty value; an ``id`` containing NUL is ignored; a
    ``retry`` that is not all ASCII digits is ignored. Line ends may be LF, CRLF or CR.

    Parameters
    ----------
    block : bytes
        The field lines of one event, without the blank line that ends it.

    Returns
    -------
    SSEEvent

    Examples
    --------
    >>> parse_event(b"event: update\\ndata:line 1\\ndata: line 2\\nretry: 3000\\nx: ignored")
    SSEEvent(event='update', id=None, data=b'line 1\\nline 2', retry=3000)
    >>> parse_event(b": comment\\ndata\\nid: 42")
    SSEEvent(event='message', id='42', data=b'', retry=None)
    """
    event = b""
    event_id: bytes | None = None
    data: list[bytes] = []
    retry: int | None = None
    for line in block.splitlines():
        if not line or line[0] == 0x3A:  # blank inside a block (never from the framer), or comment
            continue
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value
        elif name == b"id":
            if b"\x00" not in value:
                event_id = value
        elif name == b"retry":
            if value and value.isdigit() and value.isascii():
                retry = int(value)
    return SSEEvent(
        event.decode("utf-8", "replace") if event else "message",
        None if event_id is None else event_id.decode("utf-8", "replace"),
        b"\n".join(data),
        retry,
    )


class SSEFramer:
    """Incremental splitter of a ``text/event-stream`` body into event blocks.

    Parameters
    ----------
    max_message_bytes : int, optional
        Cap on one event block (its field lines joined with ``\\n``). A larger event is
        skipped and counted in ``stats.oversized`` without buffering it: memory stays
        bounded (the cap plus one ``feed``) whatever the server sends.

    Attributes
    ----------
    stats : streamkit.framing.FramingStats
        ``messages`` (events returned), ``keepalives`` (blocks without a ``data`` line:
        comment-only blocks such as ``:ok``, and blocks with only ``id``/``event``/
        ``retry`` fields, which the standard does not dispatch), ``oversized``, ``bytes``.

    Notes
    -----
    ``feed`` returns one ``bytes`` per dispatched event: its field lines as received,
    line ends normalised to ``\\n``, comment lines left out, without the blank line
    that ends it. Only blocks with at least one ``data`` line are returned (the
    standard dispatches nothing else; a block with only an ``id`` line, which moves a
    browser's last event ID without an event, is counted as a keep-alive and its id is
    not seen -- Wikimedia and Mastodon never send one). A UTF-8 BOM at the very start of the stream is
    skipped. A CRLF split between two ``feed`` calls is one line end, not two.
    :meth:`reset` forgets a partial event (the stream does so when a connection breaks:
    the standard discards an event the stream ended in the middle of).

    Examples
    --------
    >>> f = SSEFramer(max_message_bytes=16)
    >>> f.feed(b"data: " + b"x" * 40 + b"\\n\\ndata: ok\\r")
    []
    >>> f.feed(b"\\n\\r\\n"), f.stats.oversized
    ([b'data: ok'], 1)
    """

    __slots__ = ("_after_cr", "_at_start", "_buf", "_drop_line", "_has_data", "_lines",
                 "_size", "_skipping", "_started", "max_message_bytes", "stats")

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self.max_message_bytes = max_message_bytes
        self.stats = FramingStats()
        self.reset()

    def reset(self) -> None:
        """Forget any partial event (call when the connection breaks)."""
        self._buf = b""  # the current, unterminated line
        self._lines: list[bytes] = []  # field lines of the current event
        self._size = 0  # len(b"\n".join(self._lines))
        self._has_data = False
        self._started = False  # the current block has had a line (comment or field)
        self._skipping = False  # the current event is oversized: drop lines to its end
        self._drop_line = False  # the current line is being dropped (known non-blank)
        self._after_cr = False  # the last line ended in a CR: a leading LF is its other half
        self._at_start = True  # a BOM may still come

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete event held back for the next ``feed``."""
        return len(self._buf) + self._size

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the wire; return the event blocks they complete.

        Parameters
        ----------
        data : bytes
            The next piece of the body, split anywhere.

        Returns
        -------
        list of bytes
            Complete event blocks, in order (see the class notes).
        """
        self.stats.bytes += len(data)
        out: list[bytes] = []
        if not data:
            return out
        if self._after_cr:
            self._after_cr = False
            if data[0] == 0x0A:
                data = data[1:]
        buf = self._buf + data if self._buf else data
        if self._at_start:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buf = buf
                return out
            self._at_start = False
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
        start = 0
        end_cr = False
        for m in _EOL.finditer(buf):
            self._line(buf[start:m.start()], out)
            start = m.end()
            end_cr = start == len(buf) and buf[start - 1] == 0x0D
        self._after_cr = end_cr
        rest = buf[start:]
        if rest and not self._drop_line:
            sep = 1 if self._lines else 0
            if rest[0] == 0x3A:
                if len(rest) > self.max_message_bytes:
                    self._drop_line = True  # an endless comment: not part of any event
                    self._started = True
                    rest = b""
            elif not self._skipping and self._size + sep + len(rest) > self.max_message_bytes:
                self._oversized()
                self._drop_line = True
                rest = b""
            elif self._skipping:
                self._drop_line = True
                rest = b""
        elif self._drop_line:
            rest = b""
        self._buf = rest
        self.stats.messages += len(out)
        return out

    def _oversized(self) -> None:
        self.stats.oversized += 1
        self._skipping = True
        self._lines = []
        self._size = 0

    def _line(self, line: bytes, out: list[bytes]) -> None:
        if self._drop_line:  # the end of a line already dropped: not blank, whatever is left
            self._drop_line = False
            self._started = True
            return
        if not line:
            self._dispatch(out)
            return
        self._started = True
        if line[0] == 0x3A or self._skipping:
            return
        size = self._size + (1 if self._lines else 0) + len(line)
        if size > self.max_message_bytes:
            self._oversized()
            return
        self._lines.append(line)
        self._size = size
        if not self._has_data and line[:4] == b"data" and (len(line) == 4 or line[4] == 0x3A):
            self._has_data = True

    def _dispatch(self, out: list[bytes]) -> None:
        if self._skipping:
            pass  # counted when it overflowed
        elif self._has_data:
            out.append(b"\n".join(self._lines))
        elif self._started:
            self.stats.keepalives += 1
        self._lines = []
        self._size = 0
        self._has_data = False
        self._started = False
        self._skipping = False
