"""Cells of notebooks/x_v2.ipynb: the X API v2 filtered stream into Parquet.

Runs against streamkit's local X API v2 server by default (CI has no network and no token);
with ``STREAMKIT_X_LIVE=1`` and ``STREAMKIT_BEARER_TOKEN`` in the environment the same cells
use https://api.x.com.
"""

NOTEBOOK = "x_v2.ipynb"

CELLS = [
    ("md", """# The X API v2 filtered stream into Parquet

X's [filtered stream](https://docs.x.com/x-api/posts/filtered-stream/introduction) delivers, in
real time, the public posts that match your app's **rules** (`python lang:en`,
`#climate -is:retweet`, `from:XDevelopers`...). You manage the rules with
`POST /2/tweets/search/stream/rules`, then hold one long HTTP connection to
`GET /2/tweets/search/stream`. It needs an app-only **bearer token** and an X API plan that
includes the filtered stream; some plans also allow `backfill_minutes` (up to 5 minutes of posts
missed while disconnected).

This notebook runs against streamkit's **local** X API v2 server (rules, filtered and sample
streams, keep-alives, faults), so it works offline. To run the same cells against X, start
Jupyter with your token in the environment, never in the notebook:

```bash
export STREAMKIT_BEARER_TOKEN='AAAA...'   # your app's Bearer Token (developer console, Keys and tokens)
export STREAMKIT_X_LIVE=1
jupyter lab
```"""),
    ("code", """import os
import time

import streamkit
from streamkit.testing import XV2Server

LIVE = os.environ.get("STREAMKIT_X_LIVE") == "1"

# The local server creates 100 posts a second whether anyone listens or not, as X does, and sends
# a keep-alive after 20 s of silence; its bearer token is a public test value.
server = XV2Server(rate=100, match_fraction=0.6, seed=1).start()
base_url = "https://api.x.com" if LIVE else server.url
token = None if LIVE else server.bearer_token   # None: read from STREAMKIT_BEARER_TOKEN
print("X API at", base_url)"""),
    ("md", """## Rules

`StreamingClient` has Tweepy 4's names. `add_rules` takes `StreamRule(value, tag=...)` objects;
X checks each rule: an invalid one raises `ConfigError` with X's reason, a rule that already
exists is left as it is (so this cell can run again). Tags come back with every post that
matches, in `matching_rules`."""),
    ("code", """client = streamkit.StreamingClient(token, base_url=base_url)
added = client.add_rules([
    streamkit.StreamRule("python lang:en -is:retweet", tag="python"),
    streamkit.StreamRule("climate OR #climate", tag="climate"),
])
ours = [r.id for r in added.data]     # the ones created now (rules that were there stay)
for rule in client.get_rules().data:
    print(rule.id, rule.tag, rule.value)"""),
    ("code", """try:
    client.add_rules("(python")
except streamkit.ConfigError as exc:
    print(exc)"""),
    ("md", """## Listening with callbacks

Subclass `StreamingClient` and override `on_tweet`, `on_includes` (expanded users, media,
places), `on_matching_rules`, `on_errors` or `on_response` (all of a message at once).
`filter(threaded=True)` streams on a background thread; returning `False` from a callback, or
`disconnect()`, ends it. Reconnects (with X's back-off: 60 s after HTTP 429, a fresh connection
after an `operational-disconnect`) happen by themselves."""),
    ("code", """class Printer(streamkit.StreamingClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = 0

    def on_response(self, response):
        if response.data is None:
            return
        author = response.includes["users"][0].username if response.includes.get("users") else "?"
        tags = ",".join(rule.tag for rule in response.matching_rules)
        print(f"[{tags}] @{author}: {response.data.text[:70]}")
        self.seen += 1
        if self.seen >= 5:
            return False           # enough: ends the stream


printer = Printer(token, base_url=base_url)
thread = printer.filter(threaded=True, expansions=["author_id"], tweet_fields=["created_at", "lang"])
thread.join(60)
printer.disconnect()"""),
    ("md", """## Capture into Parquet

`collect(source="x-v2")` captures the filtered stream (or, with `sample_stream=True`, the sample
stream) in the background into a Parquet dataset. With no field lists it asks X for every field
its columns need; authors come from `includes.users`. `backfill_minutes` (if your plan has it)
makes reconnects and restarts ask for the minutes missed; without it, each reconnect is recorded
as a gap in the dataset's manifest."""),
    ("code", """path = "data/x-python-climate"
c = streamkit.collect(source="x-v2", bearer_token=token, base_url=base_url, backfill_minutes=2,
                      path=path, flush_seconds=1.0, progress=False)
deadline = time.monotonic() + 60
while c.stats.stored < 100 and time.monotonic() < deadline:
    time.sleep(0.2)
print(c.stats)
c.df[["created_at", "user_screen_name", "text", "lang"]].tail(5)"""),
    ("code", """panel = c.panel()   # the newest posts, counters and a rate chart
panel"""),
    ("md", """## Analyse

One row per post id; the v1.1 column names where they apply (`user_screen_name`,
`retweeted_status_id`, `hashtags`, `favorite_count`...), plus `conversation_id` and
`matching_rules` (a list of `{"id", "tag"}`)."""),
    ("code", """panel.close()
c.stop()
df = streamkit.read(path)
rules = df.explode("matching_rules")["matching_rules"].dropna()
print(len(df), "posts;", rules.map(lambda r: r["tag"]).value_counts().to_dict())
df["tweet_type"].value_counts()"""),
    ("code", """from streamkit.cli import summarize

summary = summarize(path)
summary["rows"], summary["gaps"], summary["events"]"""),
    ("md", """## Clean up

Delete the rules this notebook added (on X, rules stay until you delete them, and count against
your plan's rule cap); `streamkit rules list` and `streamkit rules delete ID` do the same from a
terminal."""),
    ("code", """if ours:
    client.delete_rules(ours)
print("rules left:", [rule.value for rule in client.get_rules().data])
client.close()
server.stop()"""),
]
