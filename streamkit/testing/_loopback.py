"""What every local test server shares: a loopback listener, one thread per connection,
and a ``stop()`` that returns promptly even with clients that stopped reading.

A server subclasses :class:`LoopbackServer` and implements ``_handle(sock, index)`` (one
accepted connection; the socket is closed afterwards) and, if it has threads waiting on
``self._cond``, nothing more: ``stop()`` notifies it.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from typing import Any

__all__ = ["LoopbackServer"]

log = logging.getLogger("streamkit.testing")


class LoopbackServer:
    """Bind ``host:port`` (127.0.0.1, a free port by default) and serve connections on threads.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        Loopback only: the servers are for tests and demos on this machine.
    port : int, default 0
        0 picks a free port; read it back from :attr:`url`.

    Examples
    --------
    >>> class Hello(LoopbackServer):
    ...     def _handle(self, sock, index):
    ...         sock.sendall(b"hello")
    >>> import socket
    >>> with Hello() as server:
    ...     with socket.create_connection((server.host, server.port)) as s:
    ...         s.recv(5)
    b'hello'
    """

    scheme = "http"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._conn_count = 0

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._accept_thread is not None and not self._stop_event.is_set()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (``ws://`` for a WebSocket server): the ``base_url`` to give a client."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> Any:
        """Bind and start accepting connections on a background thread."""
        if self._accept_thread is not None:
            raise RuntimeError(f"{type(self).__name__}.start() called twice; make a new server")
        listener = socket.create_server((self.host, self._requested_port), backlog=128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name=f"streamkit-testing-accept-{self.port}")
        self._accept_thread.start()
        log.debug("%s listening on %s", type(self).__name__, self.url)
        return self

    def stop(self, timeout: float = 0.9) -> None:
        """Stop accepting, close every client connection and join every thread.

        Returns within about *timeout* seconds even with clients that stopped reading.
        """
        if self._accept_thread is None or self._stop_event.is_set():
            return
        deadline = time.monotonic() + timeout
        self._stop_event.set()
        with self._lock:
            self._cond.notify_all()
            conns = list(self._conns.items())
            for _thread, sock in conns:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        assert self._wake_w is not None
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        for thread, _sock in conns:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            late = list(self._conns.items())
        for thread, _sock in late:  # accepted while stopping
            thread.join(max(0.0, deadline - time.monotonic()))
        for owned in (self._listener, self._wake_r, self._wake_w):
            if owned is not None:
                owned.close()
        log.debug("%s on %s stopped", type(self).__name__, self.url)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called from another thread or Ctrl-C."""
        if self._accept_thread is None:
            self.start()
        try:
            while not self._stop_event.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _handle(self, sock: socket.socket, index: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop_event.is_set():
                for key, _ in sel.select():
                    if key.fileobj is not self._listener or self._stop_event.is_set():
                        continue
                    try:
                        sock, _addr = self._listener.accept()
                    except OSError:
                        continue
                    self._spawn(sock)

    def _spawn(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._stop_event.is_set():
                sock.close()
                return
            self._conn_count += 1
            index = self._conn_count
            thread = threading.Thread(target=self._serve_connection, args=(sock, index),
                                      daemon=True, name=f"streamkit-testing-conn-{index}")
            self._conns[thread] = sock
        thread.start()

    def _serve_connection(self, sock: socket.socket, index: int) -> None:
        try:
            sock.settimeout(30.0)
            self._handle(sock, index)
        except OSError as exc:
            log.debug("connection %d ended: %s", index, exc)
        except Exception:  # a server bug must not pass silently, nor kill the process
            log.exception("connection %d: unexpected error in the test server", index)
        finally:
            with self._lock:
                self._conns.pop(threading.current_thread(), None)
                sock.close()
