"""Cells of notebooks/mastodon.ipynb: a Mastodon hashtag stream into Parquet.

Runs against streamkit's local Mastodon server by default (CI has no network); with
``STREAMKIT_MASTODON_INSTANCE=https://mastodon.social`` and ``STREAMKIT_MASTODON_TOKEN`` in the
environment the same cells capture from that instance.
"""

NOTEBOOK = "mastodon.ipynb"

CELLS = [
    ("md", """# Mastodon: a hashtag, live, into Parquet

Every Mastodon instance streams its timelines live through the
[streaming API](https://docs.joinmastodon.org/methods/streaming/): a hashtag (`hashtag`, or
`hashtag:local` for the instance's own posts), the federated timeline (`public`), the local one
(`public:local`), posts from elsewhere (`public:remote`), your home feed (`user`) or a list
(`list`), as server-sent events or over a WebSocket.

**A token.** Since Mastodon 4.2 most instances want a user access token even for public streams.
On your instance: *Preferences > Development > New application*, scope `read`, then copy *Your
access token* and put it in the environment before starting Jupyter, never in the notebook:

```
export STREAMKIT_MASTODON_TOKEN=...            # the token, from your instance
export STREAMKIT_MASTODON_INSTANCE=https://mastodon.social
```

This notebook runs against streamkit's **local** Mastodon server, so it works offline; with the two
variables set it captures from your instance instead."""),
    ("code", """import os
import time

import streamkit
from streamkit.sources.mastodon import discover_streaming_url, read_statuses
from streamkit.testing import MASTODON_TEST_TOKEN, MastodonFault, MastodonServer

INSTANCE = os.environ.get("STREAMKIT_MASTODON_INSTANCE")
LIVE = INSTANCE is not None and "STREAMKIT_MASTODON_TOKEN" in os.environ

# The local server publishes realistic statuses (edits and deletes included) at 40 a second and
# writes a ':thump' heartbeat every 2 s. Its first connection is cut after 60 events and the next
# attempt answered 503, so you can see the gap being filled from the REST timeline.
server = MastodonServer(statuses=2000, rate=40, heartbeat=2.0,
                        faults=[MastodonFault.cut(after=60), MastodonFault.http(503)]).start()
if LIVE:
    where = dict(instance=INSTANCE, streaming_url=discover_streaming_url(INSTANCE))  # token: from the environment
else:
    where = dict(base_url=server.url, token=MASTODON_TEST_TOKEN)
print("streaming from", where.get("instance") or server.url)"""),
    ("md", """## Capture a hashtag

`collect()` runs in the background and writes Parquet part files as statuses arrive. If the
connection drops, streamkit reconnects and asks the REST timeline (`/api/v1/timelines/tag/python`
with `min_id` = the newest status it had) for what it missed; the dataset keeps one row per
status version, so the overlap is dropped."""),
    ("code", """path = "data/mastodon-python"
c = streamkit.collect(source="mastodon", stream="hashtag", tag="python", path=path,
                      flush_seconds=1.0, progress=False, retry_time=1.0, **where)

deadline = time.monotonic() + 60
while c.stats.stored < 40 and time.monotonic() < deadline:
    time.sleep(0.2)
print(c.stats)
c.df[["created_at", "account_acct", "text", "language", "hashtags"]].tail(10)"""),
    ("md", """## The panel

The same capture in the notebook panel: the newest statuses, counters and a rate chart. Changing
the tag and pressing *Apply filter* restarts into the same dataset."""),
    ("code", """panel = c.panel()
panel"""),
    ("md", """## Reconnects are filled from the REST timeline

The local server cut the first connection and refused the next one. The fill after the
reconnect fetched what the stream missed; `fills` says what each one did. A fill that cannot
finish (an error, a rate limit, more than `gap_fill_pages` pages) is stored as a `gap` event."""),
    ("code", """deadline = time.monotonic() + 30
while c.stats.reconnects < 1 and time.monotonic() < deadline and not LIVE:
    time.sleep(0.2)
time.sleep(2)
print(c.stats.reconnects, "reconnect(s)")
for fill in c._stream.endpoint.fills:
    print({k: fill[k] for k in ("min_id", "pages", "statuses", "complete")})"""),
    ("md", """## Analyse with pandas

Every stored *version* of each status is kept (an edit arrives as `status.update` and is stored
as a new row with its `edited_at`). `streamkit.read()` gives the newest version of each status and
leaves out deleted ones; `all_versions=True` gives the edit history, `include_deleted=True` keeps
deleted statuses (`read_statuses()` is the same call). Deletes, notifications and recorded gaps are
in `streamkit.read_events()`."""),
    ("code", """panel.close()
c.stop()
versions = streamkit.read(path, all_versions=True, include_deleted=True)
statuses = streamkit.read(path)
events = streamkit.read_events(path)
print(len(versions), "versions,", len(statuses), "statuses,", events["event_type"].value_counts().to_dict())
statuses.groupby("language", dropna=False).size().sort_values(ascending=False).head()"""),
    ("md", """## Restarting resumes without a gap

The newest status id is stored with every Parquet commit. Running `collect()` again on the same
path fills from it (REST, `min_id`) and goes on streaming. From a terminal (the token comes from
`STREAMKIT_MASTODON_TOKEN`):

```
streamkit collect --source mastodon --instance https://mastodon.social --stream hashtag --tag python \\
    --out data/mastodon-python
streamkit inspect data/mastodon-python
```"""),
    ("code", """before = set(read_statuses(path, include_deleted=True)["id"])
again = streamkit.collect(source="mastodon", stream="hashtag", tag="python", path=path,
                          flush_seconds=1.0, progress=False, **where)
deadline = time.monotonic() + 60
while again.stats.stored < 10 and time.monotonic() < deadline:
    time.sleep(0.2)
again.stop()
after = read_statuses(path, include_deleted=True)
print(len(before), "->", len(after), "statuses; filled on restart:", again._stream.endpoint.fills[:1])

from streamkit.cli import summarize
summarize(path)["rows"], summarize(path)["gaps"]"""),
    ("code", """server.stop()"""),
]
