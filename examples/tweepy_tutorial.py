"""The Tweepy 3.x streaming tutorial, run on streamkit with one changed import.

Without credentials in the environment it streams from the built-in local
server (``streamkit.testing``); with ``STREAMKIT_CONSUMER_KEY`` and friends and
``STREAMKIT_BASE_URL`` set it streams from that endpoint instead.

Run it::

    python examples/tweepy_tutorial.py
"""

import os
import sys
import time

import streamkit as tweepy  # the only line that differs from the Tweepy 3.x tutorial
from streamkit.testing import TEST_CREDENTIALS, StreamServer

HOW_MANY = int(os.environ.get("TUTORIAL_STATUSES", "20"))


# Step 1: a StreamListener that prints each status and gives up on 420.
class MyStreamListener(tweepy.StreamListener):
    def __init__(self):
        super().__init__()
        self.count = 0

    def on_status(self, status):
        print(status.text)
        self.count += 1

    def on_error(self, status_code):
        if status_code == 420:
            # returning False in on_error disconnects the stream
            return False


def main():
    server = None
    if os.environ.get("STREAMKIT_BASE_URL"):
        base_url = os.environ["STREAMKIT_BASE_URL"]
        env = os.environ
    else:
        server = StreamServer(rate=200).start()
        base_url = server.url
        env = {f"STREAMKIT_{k.upper()}": v for k, v in TEST_CREDENTIALS.items()}

    # Step 2: credentials and an API object, as in the tutorial.
    auth = tweepy.OAuthHandler(env["STREAMKIT_CONSUMER_KEY"], env["STREAMKIT_CONSUMER_SECRET"])
    auth.set_access_token(env["STREAMKIT_ACCESS_TOKEN"], env["STREAMKIT_ACCESS_TOKEN_SECRET"])
    api = tweepy.API(auth)

    # Step 3: create the stream and start it on a background thread.
    myStreamListener = MyStreamListener()
    myStream = tweepy.Stream(auth=api.auth, listener=myStreamListener, base_url=base_url)
    myStream.filter(track=["python"], is_async=True)

    deadline = time.monotonic() + 30
    while myStreamListener.count < HOW_MANY and myStream.running and time.monotonic() < deadline:
        time.sleep(0.05)
    myStream.disconnect()
    if server is not None:
        server.stop()
    print(f"received {myStreamListener.count} statuses", file=sys.stderr)
    if myStream.exception is not None:
        print(f"stream ended with: {myStream.exception}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
