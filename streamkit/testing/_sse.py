"""The server side of server-sent events, for the local test servers.

``sse_event`` and ``sse_comment`` render the wire format that :class:`streamkit._sse.SSEFramer`
reads; :func:`sse_response_head` and :func:`chunk` write a ``text/event-stream`` response
with ``Transfer-Encoding: chunked`` (as Wikimedia EventStreams and Mastodon send it).

Examples
--------
>>> sse_event('{"a": 1}', id='[{"offset": 3}]', event="message")
b'event: message\\nid: [{"offset": 3}]\\ndata: {"a": 1}\\n\\n'
>>> sse_event("two\\nlines")
b'data: two\\ndata: lines\\n\\n'
>>> sse_comment("ok")
b':ok\\n\\n'
>>> chunk(b"hello")
b'5\\r\\nhello\\r\\n'
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping

from ._httpd import response_head

__all__ = ["LAST_CHUNK", "chunk", "sse_comment", "sse_event", "sse_response_head", "write_sse_head"]

LAST_CHUNK = b"0\r\n\r\n"
"""The terminating chunk of a chunked body (a clean end of the response)."""

_LINES = re.compile(rb"\r\n|\r|\n")


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def sse_event(data: str | bytes, *, event: str | None = None, id: str | None = None,
              retry: int | None = None, eol: bytes = b"\n") -> bytes:
    """One event on the wire: ``event:``, ``id:``, ``retry:`` then one ``data:`` line per
    line of *data*, and the blank line that dispatches it.

    Parameters
    ----------
    data : str or bytes
        The payload; line breaks in it (LF, CRLF or CR) become separate ``data:`` lines,
        which a client joins back with ``\\n``.
    event, id : str, optional
        The event type and id (neither may contain a line break; an id no NUL).
    retry : int, optional
        Reconnection time in milliseconds.
    eol : bytes, default b"\\n"
        The line end to use (``b"\\r\\n"`` or ``b"\\r"`` are valid too).

    Raises
    ------
    ValueError
        For a line break in *event* or *id*, or a bad *eol*.
    """
    if eol not in (b"\n", b"\r\n", b"\r"):
        raise ValueError(f"eol must be LF, CRLF or CR, not {eol!r}")
    out = []
    for name, value in (("event", event), ("id", id)):
        if value is None:
            continue
        raw = _bytes(value)
        if _LINES.search(raw) or (name == "id" and b"\x00" in raw):
            raise ValueError(f"an SSE {name} cannot contain a line break or NUL: {value!r}")
        out.append(name.encode() + b": " + raw + eol)
    if retry is not None:
        out.append(b"retry: " + str(int(retry)).encode() + eol)
    for line in _LINES.split(_bytes(data)):
        out.append(b"data: " + line + eol)
    out.append(eol)
    return b"".join(out)


def sse_comment(text: str = "", *, eol: bytes = b"\n") -> bytes:
    """A comment line and a blank line: a keep-alive block (``:ok`` opens Wikimedia's streams).

    Raises
    ------
    ValueError
        For a line break in *text*.
    """
    raw = _bytes(text)
    if _LINES.search(raw):
        raise ValueError(f"an SSE comment cannot contain a line break: {text!r}")
    return b":" + raw + eol + eol


def chunk(data: bytes) -> bytes:
    """*data* as one HTTP/1.1 chunk (empty data gives nothing: an empty chunk would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


def sse_response_head(headers: Mapping[str, str] | None = None) -> bytes:
    """The head of a ``200 OK`` chunked ``text/event-stream`` response.

    Examples
    --------
    >>> sse_response_head({"x-test": "1"}).splitlines()[:2]
    [b'HTTP/1.1 200 OK', b'content-type: text/event-stream; charset=utf-8']
    """
    return response_head(200, "text/event-stream; charset=utf-8",
                         {"cache-control": "no-cache, no-store", **(headers or {})})


def write_sse_head(sock: socket.socket, headers: Mapping[str, str] | None = None) -> None:
    """Send :func:`sse_response_head` on *sock*; the body follows as :func:`chunk` pieces."""
    sock.sendall(sse_response_head(headers))
