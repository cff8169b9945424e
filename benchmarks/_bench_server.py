"""The benchmark's server process: fresh ``StreamServer`` instances on request.

The orchestrator talks to this process over stdin/stdout, one JSON object a line::

    {"cmd": "start", "params": {...StreamServer keywords..., "end_after": N}}
        -> {"id": 1, "url": "http://127.0.0.1:PORT"}
    {"cmd": "stop", "id": 1}
        -> {"sent_count": N, "cpu_seconds": ..., "wall_seconds": ..., ...}
    {"cmd": "quit"}

Every measured run gets a new server, so its first connection is connection 1 and
it streams exactly the same content (same seed, same templates, same notices) as
for every other client; only ids and timestamps, stamped at send time, differ.
``end_after`` queues ``Fault.end(after=N)``: the response ends cleanly after N
statuses, which tells every client that it has everything.

The server's statuses are rendered once per filter; that happens here, before the
URL is handed out, so no client pays for it. ``cpu_seconds`` is this process's
CPU time between handing out the URL and the stop: compared with a client's
measured wall time it says how busy the server was.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from _bench_common import TRACK, emit

from streamkit.testing import TEST_CREDENTIALS, Fault, StreamFilter, StreamServer

__all__ = ["main"]


def _warm(server: StreamServer) -> bool:
    """Render the statuses for the benchmark's filter now (a private hook; optional)."""
    pool_for = getattr(server, "_pool_for", None)
    if pool_for is None:
        return False
    pool_for(StreamFilter.from_params({"track": [TRACK]}, sample=False))
    return True


def main() -> int:
    """Serve commands from stdin until ``quit`` or EOF."""
    logging.getLogger("streamkit").setLevel(logging.WARNING)
    servers: dict[int, tuple[StreamServer, float, float, bool]] = {}
    next_id = 1
    # The fake test credentials, so that clients can sign requests without importing streamkit.
    emit({"ready": True, "credentials": dict(TEST_CREDENTIALS)})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd: dict[str, Any] = json.loads(line)
        kind = cmd.get("cmd")
        if kind == "start":
            params = dict(cmd.get("params") or {})
            end_after = params.pop("end_after", None)
            params.setdefault("pool_size", 2000)  # more variety than tests need; built ahead below
            faults = [Fault.end(after=int(end_after))] if end_after else []
            server = StreamServer(faults=faults, **params).start()
            warmed = _warm(server)
            servers[next_id] = (server, time.process_time(), time.monotonic(), warmed)
            emit({"id": next_id, "url": server.url, "warmed": warmed})
            next_id += 1
        elif kind == "stop":
            server, cpu0, t0, warmed = servers.pop(int(cmd["id"]))
            cpu = time.process_time() - cpu0
            wall = time.monotonic() - t0
            server.stop()
            emit({
                "sent_count": server.sent_count,
                "connections": sum(1 for r in server.requests if r.status == 200),
                "faults_injected": dict(server.faults_injected),
                "cpu_seconds": cpu,
                "wall_seconds": wall,
                "warmed": warmed,
            })
        elif kind == "quit":
            break
        else:
            emit({"error": f"unknown command {kind!r}"})
    for server, *_ in servers.values():
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
