"""Write the notebooks in notebooks/ from the cell sources below (no outputs, no secrets).

Run ``python tools/make_notebooks.py`` after editing; tests execute the notebooks.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"

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


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, cells in {"streaming_tutorial.ipynb": TUTORIAL}.items():
        nbformat.write(build(cells), HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
