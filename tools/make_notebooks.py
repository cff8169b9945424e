"""Write the notebooks in notebooks/ from the cell sources below (no outputs, no secrets).

Run ``python tools/make_notebooks.py`` after editing; tests execute the notebooks.

A source's notebook lives in ``tools/notebook_cells/<name>.py``: a module defining ``NOTEBOOK``
(the file name under notebooks/) and ``CELLS`` (a list of ``("md" | "code", source)``), so that
each source's cells are kept beside no other source's.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"
CELL_MODULES = Path(__file__).resolve().parent / "notebook_cells"

TUTORIAL = [
    ("md", """# Streaming with a listener, Tweepy 3.x style

This is the classic Tweepy 3.x streaming tutorial, running on **streamkit**: the only change is
`import streamkit as tweepy`. It streams from streamkit's built-in local server, so it needs no
credentials and no internet. To use a real endpoint, see `real_endpoint.ipynb`."""),
    ("code", """import time

import streamkit as tweepy
from streamkit.testing import TEST_CREDENTIALS, StreamServer

server = StreamServer(rate=200).start()   # a real HTTP streaming server on 127.0.0.1
server.url"""),
    ("md", """## Step 1: a `StreamListener`

Override `on_status` to handle each status. `on_error` returning `False` on HTTP 420 (rate limited)
disconnects the stream, as in the tutorial. Unlike Tweepy 3.x, streamkit keeps reconnecting on
every other transient error by itself."""),
    ("code", """class MyStreamListener(tweepy.StreamListener):
    def __init__(self):
        super().__init__()
        self.texts = []

    def on_status(self, status):
        self.texts.append(status.full_text)   # full_text: the whole text, even of long tweets

    def on_error(self, status_code):
        if status_code == 420:
            # returning False in on_error disconnects the stream
            return False"""),
    ("md", "## Step 2: credentials, an API object and a stream"),
    ("code", """auth = tweepy.OAuthHandler(TEST_CREDENTIALS["consumer_key"], TEST_CREDENTIALS["consumer_secret"])
auth.set_access_token(TEST_CREDENTIALS["access_token"], TEST_CREDENTIALS["access_token_secret"])
api = tweepy.API(auth)

myStreamListener = MyStreamListener()
myStream = tweepy.Stream(auth=api.auth, listener=myStreamListener, base_url=server.url)"""),
    ("md", """## Step 3: start streaming

`is_async=True` runs the stream on a background thread, so the notebook stays usable."""),
    ("code", """myStream.filter(track=["python"], is_async=True)

deadline = time.monotonic() + 30
while len(myStreamListener.texts) < 20 and time.monotonic() < deadline:
    time.sleep(0.1)
print(len(myStreamListener.texts), "statuses so far")
for text in myStreamListener.texts[:5]:
    print("-", text)
assert len(myStreamListener.texts) >= 20"""),
    ("md", """## Step 4: what happened, and stopping

`stream.stats` counts messages, keep-alives, reconnects and errors; `disconnect()` returns within
a second even when the stream is silent."""),
    ("code", """myStream.disconnect()
print(myStream.stats.state, myStream.stats.messages, "messages,", myStream.stats.reconnects, "reconnects")
assert not myStream.running"""),
    ("md", """## Handling a 420

Here the server answers the first connection with HTTP 420; the tutorial's `on_error` returns
`False`, so the stream stops, and `stream.exception` says why."""),
    ("code", """from streamkit.testing import Fault

server.add_faults(Fault.http(420))
stream = tweepy.Stream(auth=api.auth, listener=MyStreamListener(), base_url=server.url)
stream.filter(track=["python"], is_async=True)
stream.join(10)
print(type(stream.exception).__name__, "-", stream.exception)
assert isinstance(stream.exception, tweepy.RateLimited)
server.stop()"""),
]


QUICKSTART = [
    ("md", """# streamkit quickstart: collect, watch, analyse

Collect tweets into a Parquet dataset with the control panel, then analyse them with pandas and
DuckDB. It streams from streamkit's built-in local server, so it needs no credentials and no
internet (`real_endpoint.ipynb` shows the real thing). The panel needs the notebook extra:
`pip install 'streamkit[notebook]'`; the plot below needs matplotlib."""),
    ("code", """import pandas as pd

import streamkit
from streamkit.testing import StreamServer

server = StreamServer(rate=400).start()   # a real HTTP streaming server on 127.0.0.1
c = streamkit.collect(track=["python", "data"], base_url=server.url, auth=server.auth(),
                      path="data/quickstart", flush_seconds=1)
c   # shows the control panel: state, counters, newest rows, rate chart, Stop / Apply filter"""),
    ("md", """`collect()` returned at once; the capture runs on background threads. The panel above
updates a few times a second while it is on screen: the counters, the newest rows, the rate over
the last minutes, and where the data is on disk. Change the track phrases there and press
**Apply filter** to reconnect with a new filter into the same dataset, or **Stop** to finish.

The same from code: `c.df` is the newest rows as a DataFrame, while the capture runs."""),
    ("code", """assert c.wait_for(stored=3000, timeout=120), c.stats
live = c.df
print(len(live), "rows in the live view;", c.stats)
assert len(live) > 0
live[["created_at", "user_screen_name", "text", "lang", "tweet_type"]].tail()"""),
    ("code", """c.set_filter(track=["python", "rust"])   # what the panel's Apply filter does
assert c.wait_for(stored=c.stats.stored + 1000, timeout=120), c.stats
c.stop()                                   # commits everything received; the panel shows "stopped"
server.stop()
c.stats"""),
    ("md", """## Analyse with pandas

`streamkit.read` gives every stored tweet, one row per id, with analysis-ready dtypes."""),
    ("code", """df = streamkit.read(c.path)
print(f"{len(df):,} tweets from {df.created_at.min():%H:%M:%S} to {df.created_at.max():%H:%M:%S} UTC")
assert len(df) >= 3000
df.dtypes.head(8)"""),
    ("md", """### Tweets per minute

This capture lasted seconds, so the bins here are 2 seconds wide, scaled to a per-minute rate;
over a capture of hours use `pd.Timedelta(minutes=1)`."""),
    ("code", """bin_width = pd.Timedelta(seconds=2)
counts = df.set_index("created_at").resample(bin_width).size()
per_minute = counts * (pd.Timedelta(minutes=1) / bin_width)
ax = per_minute.plot(drawstyle="steps-post", title="Tweets per minute", xlabel="created_at (UTC)",
                     ylabel="tweets per minute")
plotted = ax.get_lines()[0].get_ydata()
assert len(plotted) >= 2 and plotted.max() > 0"""),
    ("md", "### Top hashtags, languages, most retweeted"),
    ("code", """top_hashtags = df["hashtags"].explode().str.lower().value_counts().head(10)
assert len(top_hashtags) > 0
top_hashtags"""),
    ("code", """languages = df["lang"].value_counts()
assert languages.sum() == len(df)
languages.head(10)"""),
    ("code", """# Retweet counts on a stream are usually 0 (tweets arrive as they are posted), so count the
# retweets captured here instead.
retweets = df[df["tweet_type"] == "retweet"]
most_retweeted = (retweets.groupby(["retweeted_user_screen_name", "retweeted_status_id"])
                  .agg(retweets=("id", "size"), text=("text", "first"))
                  .sort_values("retweets", ascending=False).head(5))
assert len(retweets) > 0 and most_retweeted["retweets"].iloc[0] >= 1
most_retweeted"""),
    ("md", """## The same dataset with DuckDB

The dataset is plain Parquet with Hive partitions (`tweets/date=YYYY-MM-DD/part-*.parquet`), so
DuckDB, polars, pyarrow and Spark read it directly. (`streamkit.read` also hides tweets that a
later delete notice names; the files keep them.)"""),
    ("code", """import duckdb

tweets = f"{c.path}/tweets/**/*.parquet"
by_lang = duckdb.sql(f\"\"\"
    select lang, count(*) as tweets, count(distinct user_id) as users
    from read_parquet('{tweets}', hive_partitioning = true)
    group by lang order by tweets desc
\"\"\").df()
assert by_lang["tweets"].sum() == len(streamkit.read(c.path, include_deleted=True))
by_lang.head(10)"""),
]

REAL_ENDPOINT = [
    ("md", """# Using a real streaming endpoint

The code that collects from the local server collects from a real endpoint: only the credentials
and `base_url` change. Credentials come from the environment, never from the notebook, so that
they cannot end up in git or in a shared output:

```bash
export STREAMKIT_CONSUMER_KEY=... STREAMKIT_CONSUMER_SECRET=...
export STREAMKIT_ACCESS_TOKEN=... STREAMKIT_ACCESS_TOKEN_SECRET=...
jupyter lab
```

The v1.1 streaming endpoints were retired by Twitter/X; set `ENDPOINT` to a server that speaks the
same protocol. Without the variables, this notebook still runs: the cells that need them say they
are skipped, and the rehearsal at the end runs the same code against the local server."""),
    ("code", """import os

import streamkit

ENDPOINT = "https://stream.twitter.com"   # or a compatible endpoint
NAMES = ["STREAMKIT_CONSUMER_KEY", "STREAMKIT_CONSUMER_SECRET",
         "STREAMKIT_ACCESS_TOKEN", "STREAMKIT_ACCESS_TOKEN_SECRET"]
missing = [name for name in NAMES if not os.environ.get(name)]
HAVE_CREDENTIALS = not missing
print("credentials found" if HAVE_CREDENTIALS else f"not set: {', '.join(missing)}; the cells that need them will skip")"""),
    ("md", """`collect()` reads the variables itself (`streamkit.auth_from_env()`). A missing one is a
`ConfigError` that names it; values never appear in a message, a repr, a log line or the dataset."""),
    ("code", """try:
    auth = streamkit.auth_from_env()
    print(auth)   # secrets hidden
except streamkit.ConfigError as exc:
    print("ConfigError:", exc)
    assert not HAVE_CREDENTIALS"""),
    ("md", """## Collect

With credentials, this starts a capture of at most 1,000 tweets into `data/climate` and shows the
control panel. Stop it there, or with `c.stop()`."""),
    ("code", """if HAVE_CREDENTIALS:
    c = streamkit.collect(track=["climate"], base_url=ENDPOINT, path="data/climate", max_tweets=1000)
    display(c)
else:
    c = None
    print("skipped: set the STREAMKIT_* variables to collect from", ENDPOINT)"""),
    ("code", """if c is not None:
    c.wait_for(stored=100, timeout=300)
    c.stop()
    print(c.stats)
    df = streamkit.read(c.path)
    display(df[["created_at", "user_screen_name", "text", "lang"]].tail())
else:
    print("skipped: no capture")"""),
    ("md", """## Rehearsal: the same code against the local server

`auth_from_env(environ=...)` is what `collect()` does with `os.environ`; here it reads the local
server's public test credentials, so the whole path runs without secrets."""),
    ("code", """from streamkit.testing import TEST_CREDENTIALS, StreamServer

rehearsal_env = {f"STREAMKIT_{key.upper()}": value for key, value in TEST_CREDENTIALS.items()}
with StreamServer(rate=300) as server:
    auth = streamkit.auth_from_env(environ=rehearsal_env)
    with streamkit.collect(track=["climate"], auth=auth, base_url=server.url, path="data/rehearsal",
                           flush_seconds=0.5) as rehearsal:
        arrived = rehearsal.wait_for(stored=200, timeout=120)
print(rehearsal.stats)
assert arrived and len(streamkit.read(rehearsal.path)) >= 200"""),
]


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating changes only what was edited
        cell["id"] = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    HERE.mkdir(exist_ok=True)
    notebooks = {
        "quickstart.ipynb": QUICKSTART,
        "streaming_tutorial.ipynb": TUTORIAL,
        "real_endpoint.ipynb": REAL_ENDPOINT,
    }
    for module_path in sorted(CELL_MODULES.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"notebook_cells.{module_path.stem}", module_path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        notebooks[module.NOTEBOOK] = module.CELLS
    for name, cells in notebooks.items():
        nbformat.write(build(cells), HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
