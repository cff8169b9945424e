"""Bytes to messages: newline framing, ``delimited=length``, keep-alives, a size cap.

The streaming endpoints send one JSON message per line, each ending in
``\\r\\n``; blank lines are keep-alives. With ``delimited=length`` every message
is preceded by a line holding its byte length. JSON never contains a raw
newline (the encoder escapes it), so the line break is the ground truth and
the length prefix is checked against it rather than trusted: a wrong prefix
is counted and the message is still recovered whole.

The :class:`Framer` is pure (no I/O, no clock) so that it can be fuzzed with
arbitrary splits of its input.

Examples
--------
>>> f = Framer()
>>> f.feed(b'{"a": 1}\\r\\n\\r\\n{"b"')
[b'{"a": 1}']
>>> f.feed(b': 2}\\r\\n')
[b'{"b": 2}']
>>> f.stats.keepalives
1
>>> Framer().feed(b'10\\r\\n{"c": 3}\\r\\n')
[b'{"c": 3}']
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "Framer", "FramingStats"]

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""One message larger than this is skipped (4 MiB; real statuses are under 20 KB)."""

# A length prefix has at most this many digits: 10**9 bytes is already absurd.
_MAX_PREFIX_DIGITS = 9


@dataclass
class FramingStats:
    """Counters kept by a :class:`Framer`.

    Attributes
    ----------
    messages : int
        Messages returned.
    keepalives : int
        Blank keep-alive lines seen.
    length_prefixes : int
        ``delimited=length`` prefixes seen.
    length_mismatches : int
        Prefixes that did not match the message that followed (the message
        is still returned: the line break is authoritative).
    oversized : int
        Messages skipped because they exceeded ``max_message_bytes``.
    bytes : int
        Bytes fed in.
    """

    messages: int = 0
    keepalives: int = 0
    length_prefixes: int = 0
    length_mismatches: int = 0
    oversized: int = 0
    bytes: int = 0


class Framer:
    """Incremental splitter of a streaming body into messages.

    Parameters
    ----------
    max_message_bytes : int, optional
        Cap on one message. A longer one is dropped (counted in
        ``stats.oversized``) without buffering it: memory stays bounded
        whatever the server sends.

    Notes
    -----
    ``feed`` returns complete messages without their line terminator, as
    ``bytes`` (never decoded here: decoding happens once, in the writer).
    A partial message at the end of the input waits for the next ``feed``;
    :meth:`reset` drops it, which the stream does when a connection breaks,
    so a half-received message is never delivered.
    """

    __slots__ = ("_buf", "_expect", "_skipping", "max_message_bytes", "stats")

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self.max_message_bytes = max_message_bytes
        self.stats = FramingStats()
        self._buf = b""
        self._expect: int | None = None  # length announced by the last prefix
        self._skipping = False  # inside an oversized message: drop until newline

    def reset(self) -> None:
        """Forget any partial message (call when the connection breaks)."""
        self._buf = b""
        self._expect = None
        self._skipping = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete message held back for the next ``feed``."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the wire; return the messages they complete.

        Parameters
        ----------
        data : bytes
            The next piece of the body, split anywhere.

        Returns
        -------
        list of bytes
            Complete messages, in order, without ``\\r\\n``.
        """
        stats = self.stats
        stats.bytes += len(data)
        out: list[bytes] = []
        if self._skipping:
            nl = data.find(b"\n")
            if nl < 0:
                return out
            data = data[nl + 1 :]
            self._skipping = False
        buf = self._buf + data if self._buf else data
        start = 0
        find = buf.find
        cap = self.max_message_bytes
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                break
            end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl  # strip \r
            if end == start:
                stats.keepalives += 1
                start = nl + 1
                continue
            line = buf[start:end]
            size = nl + 1 - start  # what a length prefix counts: the line and its terminator
            start = nl + 1
            if line.isdigit() and len(line) <= _MAX_PREFIX_DIGITS:
                if self._expect is not None:
                    stats.length_mismatches += 1  # a prefix followed by another prefix
                stats.length_prefixes += 1
                self._expect = int(line)
                continue
            if self._expect is not None:
                if self._expect != size:
                    stats.length_mismatches += 1
                self._expect = None
            if len(line) > cap:
                stats.oversized += 1
                continue
            out.append(line)
        rest = buf[start:]
        # A trailing \r may be the first half of the terminator, not part of the message.
        if len(rest) > cap + (rest[-1:] == b"\r"):
            # Too long already and no end in sight: drop it now, skip to its end.
            stats.oversized += 1
            self._expect = None
            self._skipping = True
            rest = b""
        self._buf = rest
        stats.messages += len(out)
        return out
