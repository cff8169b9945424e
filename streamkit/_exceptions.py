"""The streamkit exception tree.

Every error streamkit raises derives from :class:`StreamkitError`, so one
``except streamkit.StreamkitError`` catches them all; third-party errors
(requests, urllib3, pyarrow) are translated at the boundary and chained with
``raise ... from exc``.

::

    StreamkitError
    ├── ConfigError            bad parameters, caught before connecting
    ├── StreamError            a stream could not go on
    │   ├── HTTPStatusError    the server answered an HTTP error (.status_code)
    │   │   ├── AuthError      401/403: credentials or permissions
    │   │   └── RateLimited    420/429 (.retry_after)
    │   └── ProtocolError      the server broke the streaming protocol
    ├── SinkError              the dataset could not be written or read
    └── MissingDependency      (also an ImportError) an optional extra is missing

Examples
--------
>>> import streamkit
>>> err = streamkit.HTTPStatusError(404, "Not Found: check base_url")
>>> isinstance(err, streamkit.StreamkitError), err.status_code
(True, 404)
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "HTTPStatusError",
    "MissingDependency",
    "ProtocolError",
    "RateLimited",
    "SinkError",
    "StreamError",
    "StreamkitError",
]


class StreamkitError(Exception):
    """Root of every error raised by streamkit."""


class ConfigError(StreamkitError, ValueError):
    """A parameter is invalid; raised before anything connects or writes."""


class StreamError(StreamkitError):
    """A stream stopped because of something it could not recover from."""


class HTTPStatusError(StreamError):
    """The streaming endpoint answered with an HTTP error status.

    Parameters
    ----------
    status_code : int
        The HTTP status code.
    message : str
        What happened and what to check.
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthError(HTTPStatusError):
    """The endpoint refused the credentials (401) or the access level (403)."""


class RateLimited(HTTPStatusError):
    """The endpoint rate-limited the connection (420 or 429).

    ``retry_after`` is the server's ``Retry-After`` in seconds, or ``None``.
    """

    def __init__(self, status_code: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(status_code, message)
        self.retry_after = retry_after


class ProtocolError(StreamError):
    """The server sent something the streaming protocol does not allow."""


class SinkError(StreamkitError):
    """The dataset could not be written, recovered or read."""


class MissingDependency(StreamkitError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""
