"""Cells of notebooks/wikimedia.ipynb: Wikimedia EventStreams into Parquet.

Runs against streamkit's local EventStreams server by default (CI has no network); with
``STREAMKIT_WIKIMEDIA_LIVE=1`` in the environment the same cells capture from
https://stream.wikimedia.org.
"""

NOTEBOOK = "wikimedia.ipynb"

CELLS = [
    ("md", """# Wikimedia EventStreams: every edit on Wikipedia, live, into Parquet

[EventStreams](https://wikitech.wikimedia.org/wiki/Event_Platform/EventStreams_HTTP_Service) publishes
every change to Wikimedia's wikis as server-sent events at
`https://stream.wikimedia.org/v2/stream/recentchange` (and `page-create`, `revision-create`, ...).
No account or token is needed, but Wikimedia's
[User-Agent policy](https://meta.wikimedia.org/wiki/User-Agent_policy) asks every client to say who it
is: pass `contact="you@example.org"` (or set `STREAMKIT_USER_AGENT`).

This notebook runs against streamkit's **local** EventStreams server, so it works offline. Set
`STREAMKIT_WIKIMEDIA_LIVE=1` in the environment before starting Jupyter to run the same cells
against the real service."""),
    ("code", """import os
import time

import streamkit
from streamkit.testing import WikimediaServer

LIVE = os.environ.get("STREAMKIT_WIKIMEDIA_LIVE") == "1"
CONTACT = os.environ.get("STREAMKIT_CONTACT", "you@example.org")   # put your e-mail or project URL here

# The local server keeps a log of realistic events (500 from before it started, then 50 a second)
# and, like the real service after 15 minutes, closes every connection -- here after 4 seconds,
# so streamkit is told that 3 seconds is a long connection (its default: 60).
server = WikimediaServer(rate=50, history=500, close_after=4.0).start()
base_url = None if LIVE else server.url     # None: https://stream.wikimedia.org
local = {} if LIVE else {"routine_close_after": 3.0}
print("streaming from", base_url or "https://stream.wikimedia.org")"""),
    ("md", """## Capture English Wikipedia edits by people

`collect()` runs in the background and writes Parquet part files as events arrive. The filters
(`wiki`, `type`, `bot`, `namespace`) are applied by streamkit (EventStreams itself has none);
`since="10m"` starts ten minutes back on a new dataset. `canary` events, which Wikimedia mixes in
to prove a stream is alive, are dropped."""),
    ("code", """path = "data/wikimedia-enwiki"
c = streamkit.collect(source="wikimedia", streams=["recentchange"], wiki=["enwiki"], bot=False,
                      since="10m", contact=CONTACT, base_url=base_url, path=path,
                      flush_seconds=1.0, progress=False, **local)

deadline = time.monotonic() + 60
while c.stats.stored < 20 and time.monotonic() < deadline:
    time.sleep(0.2)
print(c.stats)
c.df[["created_at", "wiki", "user", "title", "type"]].tail(10)"""),
    ("md", """## The panel

The same capture in the notebook panel: a live table of the newest changes, counters and a rate
chart. Typing another wiki and pressing *Apply filter* restarts into the same dataset, resuming
where it stopped."""),
    ("code", """panel = c.panel()
panel"""),
    ("md", """## The 15-minute close is routine

The service ends every connection after about 15 minutes. streamkit reconnects at once when a
connection that long ends, sending the id of the last event it received as `Last-Event-ID`, so
the service resumes right after it: no error, no back-off, no gap."""),
    ("code", """deadline = time.monotonic() + 30
while c.stats.reconnects < 2 and time.monotonic() < deadline and not LIVE:
    time.sleep(0.2)
print(c.stats.reconnects, "reconnects,", c.stats.errors, "errors; dropped:", c.stats.rejected)
if not LIVE:
    assert c.stats.reconnects >= 2 and c.stats.errors == 0"""),
    ("md", """## Analyse with pandas

`streamkit.read()` returns one row per event (`meta_id` is the key). Columns follow the
recentchange schema: `type`, `namespace`, `title`, `user`, `bot`, `minor`, `length_old/new`,
`revision_old/new`, `log_type`, ..., and `raw` keeps each event's JSON."""),
    ("code", """panel.close()
c.stop()
df = streamkit.read(path)
df["bytes_changed"] = df["length_new"] - df["length_old"]
print(len(df), "changes;", df["meta_id"].is_unique and "one row per event")
df.groupby("type").agg(changes=("meta_id", "size"), median_bytes=("bytes_changed", "median"))"""),
    ("md", """## Restarting resumes without a gap

The resume position (the last committed event's id) is stored with every Parquet commit. Running
`collect()` again on the same path continues from there; `streamkit inspect` summarises the
dataset. The same from a terminal:

```
streamkit collect --source wikimedia --stream recentchange --wiki enwiki --no-bot \\
    --contact you@example.org --out data/wikimedia-enwiki
streamkit inspect data/wikimedia-enwiki
```"""),
    ("code", """before = len(streamkit.read(path))
again = streamkit.collect(source="wikimedia", streams=["recentchange"], wiki=["enwiki"], bot=False,
                          contact=CONTACT, base_url=base_url, path=path, flush_seconds=1.0, progress=False,
                          **local)
deadline = time.monotonic() + 60
while again.stats.stored < 10 and time.monotonic() < deadline:
    time.sleep(0.2)
again.stop()
if not LIVE:
    print("resumed with Last-Event-ID", server.requests[-1].last_event_id[:70], "...")
after = streamkit.read(path)
print(before, "->", len(after), "changes, still one row per event:", after["meta_id"].is_unique)

from streamkit.cli import summarize
summarize(path)["rows"], summarize(path)["gaps"]"""),
    ("code", """server.stop()"""),
]
