"""A real local Twitter v1.1 streaming server with fault injection, for tests.

:class:`StreamServer` listens on 127.0.0.1 and speaks the v1.1 streaming
protocol over real HTTP: OAuth 1.0a verification, ``statuses/filter`` and
``statuses/sample``, chunked transfer with messages straddling chunk borders,
newline or ``delimited=length`` framing, keep-alives, notices, and realistic
generated statuses that actually match (or are dropped by) the filter.
:class:`Fault` objects queued on the server break connections in documented
ways: HTTP errors, cuts mid-message, stalls, garbage, disconnect notices.

Examples
--------
>>> import itertools
>>> import requests
>>> from requests_oauthlib import OAuth1
>>> from streamkit.testing import StreamServer, Fault, TEST_CREDENTIALS
>>> c = TEST_CREDENTIALS
>>> auth = OAuth1(c["consumer_key"], c["consumer_secret"],
...               c["access_token"], c["access_token_secret"])
>>> with StreamServer(faults=[Fault.http(420)], statuses=5) as server:
...     url = server.url + "/1.1/statuses/filter.json"
...     first = requests.post(url, data={"track": "python"}, auth=auth)
...     with requests.post(url, data={"track": "python"}, auth=auth, stream=True) as r:
...         lines = (line for line in r.iter_lines() if line.startswith(b'{"created_at"'))
...         statuses = list(itertools.islice(lines, 5))
>>> first.status_code, first.json()["errors"][0]["code"], len(statuses)
(420, 420, 5)
"""

from __future__ import annotations

from ._faults import FAULT_KINDS, GARBAGE_KINDS, Fault, FaultPlan
from ._generate import format_created_at, generate_statuses, snowflake, snowflake_ms
from ._jetstream import JetstreamServer
from ._mastodon import MASTODON_TEST_TOKEN, MastodonFault, MastodonServer
from ._match import StreamFilter, match_status
from ._server import FILTER_PATH, SAMPLE_PATH, TEST_CREDENTIALS, RequestRecord, StreamServer
from ._websocket import WebSocketTestServer, WsFault
from ._wikimedia import WikimediaRequest, WikimediaSentEvent, WikimediaServer
from ._x_v2 import XV2Server

__all__ = [
    "FAULT_KINDS",
    "FILTER_PATH",
    "GARBAGE_KINDS",
    "MASTODON_TEST_TOKEN",
    "SAMPLE_PATH",
    "TEST_CREDENTIALS",
    "Fault",
    "FaultPlan",
    "JetstreamServer",
    "MastodonFault",
    "MastodonServer",
    "RequestRecord",
    "StreamFilter",
    "StreamServer",
    "WebSocketTestServer",
    "WikimediaRequest",
    "WikimediaSentEvent",
    "WikimediaServer",
    "WsFault",
    "XV2Server",
    "format_created_at",
    "generate_statuses",
    "match_status",
    "snowflake",
    "snowflake_ms",
]
