"""Cells of notebooks/jetstream.ipynb: Bluesky's Jetstream into Parquet.

Runs against streamkit's local Jetstream server by default (CI has no network); with
``STREAMKIT_JETSTREAM_LIVE=1`` in the environment the same cells capture from
wss://jetstream2.us-east.bsky.network/subscribe.
"""

NOTEBOOK = "jetstream.ipynb"

CELLS = [
    ("md", """# Bluesky's Jetstream: posts, likes and follows, live, into Parquet

[Jetstream](https://github.com/bluesky-social/jetstream) serves the Bluesky (AT Protocol) firehose
as JSON over a WebSocket: every post, like, repost, follow, block and profile change, plus identity
and account events. No account or token is needed. Bluesky runs four public hosts:
`jetstream1.us-east.bsky.network`, `jetstream2.us-east.bsky.network`,
`jetstream1.us-west.bsky.network`, `jetstream2.us-west.bsky.network` (all at
`wss://HOST/subscribe`).

This notebook runs against streamkit's **local** Jetstream server, so it works offline. Set
`STREAMKIT_JETSTREAM_LIVE=1` in the environment before starting Jupyter to run the same cells
against `wss://jetstream2.us-east.bsky.network/subscribe`."""),
    ("code", """import os
import time

import streamkit
from streamkit.testing import JetstreamServer

LIVE = os.environ.get("STREAMKIT_JETSTREAM_LIVE") == "1"

# The local server speaks Jetstream's protocol for real on 127.0.0.1: realistic events (posts with
# hashtags, mentions, links, replies and quotes; likes, follows, ...), 300 a second, and a replay
# buffer of the last 5,000 events for cursors.
server = JetstreamServer(total=None, rate=300, prefill=2000, buffer_size=5000, seed=1).start()
base_url = None if LIVE else server.url    # None: wss://jetstream2.us-east.bsky.network/subscribe
print("streaming from", base_url or "wss://jetstream2.us-east.bsky.network/subscribe")"""),
    ("md", """## Capture posts

`collections` is Jetstream's `wantedCollections` (NSIDs such as `app.bsky.feed.post`, or prefixes
such as `app.bsky.graph.*`); the server sends only those commits (plus identity and account
events, which always come). `collect()` runs in the background and writes Parquet part files as
events arrive; `c.df` is a live view of the newest posts."""),
    ("code", """path = "data/bluesky-posts"
c = streamkit.collect(source="jetstream", collections=["app.bsky.feed.post"], base_url=base_url,
                      path=path, flush_seconds=1.0, progress=False)

deadline = time.monotonic() + 60
while c.stats.stored < 50 and time.monotonic() < deadline:
    time.sleep(0.2)
print(c.stats)
c.df[["created_at", "did", "text", "langs"]].tail(10)"""),
    ("md", """## The panel

The same capture in the notebook panel: the newest posts, counters and a rate chart. Changing
the collections or keywords and pressing *Apply filter* restarts into the same dataset, resuming
from where it stopped."""),
    ("code", """panel = c.panel()
panel"""),
    ("md", """## Analyse with pandas

`streamkit.read()` returns one row per post: its newest version (the key is `did`, `collection`,
`rkey`, `rev`; an edit is a new `rev`, kept: `all_versions=True` shows every one), without the
posts deleted since (`include_deleted=True` keeps them). Columns: `uri` (`at://did/app.bsky.feed.post/rkey`), `created_at` (the
post's own `createdAt`), `time` (when Jetstream saw it), `text`, `langs`, `reply_root_uri`,
`reply_parent_uri`, `quote_uri`, `embed_type`, `hashtags`, `mentions` (DIDs), `links`, and `raw`.
Post deletes, and every other collection, land in the events table: `streamkit.read_events()`."""),
    ("code", """panel.close()
c.stop()
df = streamkit.read(path)
print(len(df), "posts;", df["reply_parent_uri"].notna().mean().round(2), "are replies,",
      df["quote_uri"].notna().mean().round(2), "quote a post")
print(df.explode("hashtags")["hashtags"].str.lower().value_counts().head(5))
df.explode("langs")["langs"].value_counts().head(8)"""),
    ("code", """events = streamkit.read_events(path)
events["event_type"].value_counts()"""),
    ("md", """## Keywords, and other collections

Jetstream cannot filter by text, so `keywords` is applied by streamkit as the events arrive: a post
is kept when its text holds one of the words or phrases (whole words, any case). Here: posts about
Python or climate, and every like, into another dataset."""),
    ("code", """kw = streamkit.collect(source="jetstream", collections=["app.bsky.feed.post", "app.bsky.feed.like"],
                       keywords=["python", "climate"], base_url=base_url, path="data/bluesky-python",
                       flush_seconds=1.0, progress=False)
deadline = time.monotonic() + 60
while kw.stats.stored < 10 and time.monotonic() < deadline:
    time.sleep(0.2)
kw.stop()
posts = streamkit.read("data/bluesky-python")
print(len(posts), "matching posts;", (streamkit.read_events("data/bluesky-python")["collection"]
                                      == "app.bsky.feed.like").sum(), "likes")
posts["text"].head()"""),
    ("md", """## Restarting resumes without a gap

Every event carries `time_us` (microseconds), and Jetstream replays from a `cursor`. The newest
`time_us` is stored with each Parquet commit; `collect()` on the same path asks for
`cursor = newest - 5 s` and drops, as they arrive, the replayed events it already has: no gap, no
duplicate, after a stop, a lost connection or a crash. A cursor older than the server's buffer
(the public hosts keep a few days) is clamped to the oldest event it holds: streamkit records that
span as a `gap` event. The same from a terminal:

```
streamkit collect --source jetstream --collection app.bsky.feed.post --out data/bluesky-posts
streamkit inspect data/bluesky-posts
```"""),
    ("code", """before = len(streamkit.read(path))
again = streamkit.collect(source="jetstream", collections=["app.bsky.feed.post"], base_url=base_url,
                          path=path, flush_seconds=1.0, progress=False)
deadline = time.monotonic() + 60
while again.stats.stored < 20 and time.monotonic() < deadline:
    time.sleep(0.2)
again.stop()
if not LIVE:
    print("resumed with cursor", server.connections[-1].cursor)
after = streamkit.read(path)
keys = list(zip(after["did"], after["rkey"], after["rev"]))
print(before, "->", len(after), "posts, one row each:", len(keys) == len(set(keys)))

from streamkit.cli import summarize
summarize(path)["rows"], summarize(path)["gaps"]"""),
    ("code", """server.stop()"""),
]
