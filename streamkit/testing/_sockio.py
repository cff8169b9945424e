"""Socket I/O shared by the test servers' streaming responses.

A streaming response must know how many bytes the socket took before a send failed (so the
server records exactly which messages went out whole), and must wait between messages without
missing ``stop()`` or the client going away.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time

__all__ = ["idle_until", "send_counted"]


def send_counted(sock: socket.socket, wire: bytes) -> int:
    """Send *wire* on *sock*; how many bytes the socket accepted before any error.

    Examples
    --------
    >>> a, b = socket.socketpair()
    >>> send_counted(a, b"hello"), b.recv(5)
    (5, b'hello')
    >>> a.close(); b.close()
    """
    total = 0
    n = len(wire)
    with memoryview(wire) as view:
        try:
            while total < n:
                total += sock.send(view[total:])
        except OSError:
            pass
    return total


def idle_until(sock: socket.socket, stop: threading.Event, deadline: float,
               sel: selectors.BaseSelector, *, poll: float | None = None) -> bool:
    """Wait until *deadline* (``time.monotonic()``); False if *stop* is set or the client goes away.

    *sel* has *sock* registered for reading: readable means stray bytes, EOF from the client,
    or ``stop()``'s shutdown of the socket. *poll* caps each wait, so that *stop* is seen
    within that time even when nothing wakes the selector.

    Examples
    --------
    >>> a, b = socket.socketpair()
    >>> with selectors.DefaultSelector() as sel:
    ...     _ = sel.register(a, selectors.EVENT_READ)
    ...     waited = idle_until(a, threading.Event(), time.monotonic() + 0.01, sel)
    ...     b.close()
    ...     gone = idle_until(a, threading.Event(), time.monotonic() + 5, sel)
    >>> waited, gone
    (True, False)
    >>> a.close()
    """
    while not stop.is_set():
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return True
        if sel.select(timeout if poll is None else min(timeout, poll)):
            try:
                if not sock.recv(65536):
                    return False
            except OSError:
                return False
    return False
