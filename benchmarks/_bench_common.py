"""Pieces shared by the benchmark orchestrator, the server host and the client processes.

* process measurements read from ``/proc`` (peak and current RSS) with a
  ``getrusage`` fallback, so every process reports its own numbers;
* a raw-socket HTTP/1.1 client for the v1.1 filter endpoint (OAuth 1.0a signed by
  requests-oauthlib, then written to the socket by hand) with a minimal chunked
  decoder: the fastest reader Python offers, used for the ceilings and the
  server-speed check;
* a line protocol (one JSON object per line) between the processes.

Nothing here imports pandas, pyarrow or streamkit, so the ceilings pay for none of it.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FILTER_PATH",
    "STATUS_MARK",
    "TRACK",
    "RawStream",
    "emit",
    "peak_rss_mb",
    "credentials",
    "rss_mb",
    "split_messages",
]

FILTER_PATH = "/1.1/statuses/filter.json"
#: The phrase every client tracks; the server builds one pool of statuses for it.
TRACK = "python"
#: How every status message begins on the wire (notices begin otherwise).
STATUS_MARK = b'{"created_at"'


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``VmHWM``).

    Examples
    --------
    >>> peak_rss_mb() > 0
    True
    """
    kb = _proc_status_kb("VmHWM")
    if kb is None:  # not Linux: ru_maxrss is KiB on Linux/BSD, bytes on macOS
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = maxrss // 1024 if sys.platform == "darwin" else maxrss
    return kb / 1024.0


def rss_mb() -> float:
    """Current resident set size in MiB (``VmRSS``; the peak where that is unknown)."""
    kb = _proc_status_kb("VmRSS")
    return peak_rss_mb() if kb is None else kb / 1024.0


def emit(obj: dict[str, Any]) -> None:
    """Write one JSON line to stdout and flush (the inter-process protocol)."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def split_messages(text: bytes) -> tuple[list[bytes], bytes]:
    r"""Split newline-framed *text* into complete messages and the unfinished rest.

    One C-level ``split`` at ``\n`` (the fastest way Python has: JSON never holds a
    raw newline), so each message keeps its ``\r``, which JSON parsers ignore;
    keep-alives come out as ``b"\r"``. *text* must begin at a message border.

    Examples
    --------
    >>> split_messages(b'{"a":1}\r\n{"b":2}\r\n\r\n{"c"')
    ([b'{"a":1}\r', b'{"b":2}\r', b'\r'], b'{"c"')
    """
    parts = text.split(b"\n")
    rest = parts.pop()
    return parts, rest


def credentials() -> dict[str, str]:
    """The test server's (fake) credentials, handed down by the orchestrator.

    Read from ``STREAMKIT_BENCH_CREDENTIALS`` so that the raw-socket clients need
    not import streamkit (and its pandas) just to sign a request.
    """
    raw = os.environ.get("STREAMKIT_BENCH_CREDENTIALS")
    if raw:
        return json.loads(raw)
    from streamkit.testing import TEST_CREDENTIALS

    return dict(TEST_CREDENTIALS)


class RawStream:
    """One streaming request on a bare socket; iterate :meth:`payloads` for the body.

    Parameters
    ----------
    url : str
        The server's ``http://host:port``.
    credentials : mapping
        ``consumer_key``, ``consumer_secret``, ``access_token``, ``access_token_secret``.
    track : str
        The filter phrase.
    """

    def __init__(self, url: str, credentials: Any, track: str = TRACK) -> None:
        import requests
        from requests_oauthlib import OAuth1

        c = credentials
        auth = OAuth1(c["consumer_key"], c["consumer_secret"], c["access_token"],
                      c["access_token_secret"])
        prepared = requests.Request("POST", url + FILTER_PATH, data={"track": track},
                                    auth=auth).prepare()
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        headers = {k: v.decode("latin-1") if isinstance(v, bytes) else v
                   for k, v in prepared.headers.items()}
        headers["Host"] = f"{host}:{port}"
        body = prepared.body if isinstance(prepared.body, bytes) else str(prepared.body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.request = f"POST {FILTER_PATH} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.bytes = 0

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def connect(self) -> bytes:
        """Send the request, read the response head; return the body bytes already read."""
        sock = socket.create_connection(self.address, timeout=60)
        self.sock = sock
        sock.sendall(self.request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection before answering")
            buf += data
        head, rest = buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise ConnectionError(f"the server answered {status.decode('latin-1')!r}")
        if b"transfer-encoding: chunked" not in head.lower():
            raise ConnectionError("expected a chunked response")
        self.bytes = len(buf)
        return rest

    def drain(self, rest: bytes, bufsize: int = 1 << 20) -> int:
        """Read and discard until the server closes the connection; return body bytes read."""
        assert self.sock is not None
        view = memoryview(bytearray(bufsize))
        recv_into = self.sock.recv_into
        total = len(rest)
        while True:
            n = recv_into(view)
            if not n:
                break
            total += n
        self.bytes += total
        return total

    def payloads(self, rest: bytes, bufsize: int = 1 << 20) -> Iterator[bytes]:
        """Yield the de-chunked body, one piece per socket read, until the last chunk."""
        assert self.sock is not None
        recv = self.sock.recv
        buf = rest
        while True:
            out: list[bytes] = []
            pos = 0
            n = len(buf)
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(buf[pos:eol], 16)
                if size == 0:
                    if out:
                        yield b"".join(out)
                    return
                end = eol + 2 + size
                if end + 2 > n:
                    break
                out.append(buf[eol + 2:end])
                pos = end + 2
            if out:
                yield b"".join(out)
            data = recv(bufsize)
            if not data:
                return
            self.bytes += len(data)
            buf = buf[pos:] + data
