"""streamkit: capture live social-media streams into Parquet from a notebook or a terminal.

``import streamkit as tweepy`` runs a Tweepy 3.x streaming script unchanged;
:func:`collect` runs a capture on background threads into a Parquet dataset
with a live pandas view.

Examples
--------
>>> import streamkit
>>> issubclass(streamkit.AuthError, streamkit.StreamkitError)
True
"""

from __future__ import annotations

import logging

from ._exceptions import (
    AuthError,
    ConfigError,
    HTTPStatusError,
    MissingDependency,
    ProtocolError,
    RateLimited,
    SinkError,
    StreamError,
    StreamkitError,
)
from ._version import __version__
from .auth import API, BearerTokenHandler, OAuth1UserHandler, OAuthHandler, auth_from_env
from .backoff import Backoff
from .collect import Collector, CollectorStats, collect
from .listener import MessageError, StreamListener
from .models import Status, User
from .sink import read, read_events
from .streaming import Stream
from .widgets import panel  # builds ipywidgets only when called
from .x_client import StreamingClient, StreamRule

logging.getLogger("streamkit").addHandler(logging.NullHandler())

__all__ = [
    "API",
    "AuthError",
    "Backoff",
    "BearerTokenHandler",
    "Collector",
    "CollectorStats",
    "ConfigError",
    "HTTPStatusError",
    "MessageError",
    "MissingDependency",
    "OAuth1UserHandler",
    "OAuthHandler",
    "ProtocolError",
    "RateLimited",
    "SinkError",
    "Status",
    "Stream",
    "StreamError",
    "StreamListener",
    "StreamRule",
    "StreamingClient",
    "StreamkitError",
    "User",
    "__version__",
    "auth_from_env",
    "collect",
    "panel",
    "read",
    "read_events",
]
