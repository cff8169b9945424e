"""The HTTP/1.1 side of the test server: request parsing, error responses, OAuth checks.

Small on purpose: the server answers one request per connection (streaming
responses never end normally, and error responses close), so there is no
keep-alive or pipelining to support.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import NamedTuple
from urllib.parse import parse_qs

from oauthlib.oauth1.rfc5849 import signature, utils

__all__ = [
    "BadRequest",
    "Request",
    "error_body",
    "error_response",
    "http_response",
    "read_request",
    "request_params",
    "response_head",
    "verify_auth",
]

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
OAUTH_WINDOW = 900  # seconds of clock skew tolerated on oauth_timestamp

REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 411: "Length Required",
    413: "Too Long", 416: "Range Unacceptable", 420: "Enhance Your Calm",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Twitter error codes and messages for the statuses a fault may ask for.
ERRORS = {
    400: (214, "Bad request."),
    401: (32, "Could not authenticate you."),
    403: (87, "Client is not permitted to perform this action."),
    404: (34, "Sorry, that page does not exist."),
    405: (405, "Method not allowed for this resource."),
    406: (406, "Not Acceptable: a parameter is not suitable for this resource."),
    413: (413, "Too Long: a parameter list is too long."),
    416: (416, "Range Unacceptable: the count parameter is not allowed."),
    420: (420, "Enhance Your Calm: exceeded connection limit for user."),
    429: (88, "Rate limit exceeded."),
    500: (131, "Internal error."),
    502: (131, "Twitter is down or being upgraded."),
    503: (130, "Over capacity."),
    504: (131, "The request timed out."),
}


class _Secrets(NamedTuple):
    """The two attributes oauthlib's ``sign_*_with_client`` helpers read."""

    client_secret: str
    resource_owner_secret: str


class BadRequest(Exception):
    """The client sent something that is not a usable HTTP/1.1 request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    """One parsed request."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received: float = 0.0
    params: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_form(self) -> bool:
        ctype = self.headers.get("content-type", "")
        return ctype.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"


def read_request(sock: socket.socket) -> Request | None:
    """Read one request; ``None`` when the peer closed before sending anything."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            if buf:
                raise BadRequest(400, "connection closed in the middle of the request head")
            return None
        buf += data
        if len(buf) > MAX_HEAD and b"\r\n\r\n" not in buf[:MAX_HEAD + 4]:
            raise BadRequest(431, "request head too large")
    received = time.monotonic()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, f"malformed request line {lines[0][:100]!r}")
    method, target, _version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, f"malformed header line {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    path, _, query = target.partition("?")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(sock, rest)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest(400, "invalid Content-Length") from None
        if length > MAX_BODY:
            raise BadRequest(413, "request body too large")
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                raise BadRequest(400, "connection closed in the middle of the request body")
            rest += data
        body = rest[:length]
    return Request(method, path, query, headers, body, received)


def _read_chunked(sock: socket.socket, buf: bytes) -> bytes:
    out = bytearray()
    while True:
        while b"\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise BadRequest(400, "connection closed in a chunked request body")
            buf += data
        line, _, buf = buf.partition(b"\r\n")
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            raise BadRequest(400, "malformed chunk size in request body") from None
        while len(buf) < size + 2:
            data = sock.recv(65536)
            if not data:
                raise BadRequest(400, "connection closed in a chunked request body")
            buf += data
        if size == 0:
            return bytes(out)
        out += buf[:size]
        buf = buf[size + 2:]
        if len(out) > MAX_BODY:
            raise BadRequest(413, "request body too large")


def request_params(req: Request) -> dict[str, list[str]]:
    """Query-string and form-body parameters, merged (query first)."""
    params: dict[str, list[str]] = {}
    for source in (req.query, req.body.decode("utf-8", "replace") if req.is_form else ""):
        for key, values in parse_qs(source, keep_blank_values=True).items():
            params.setdefault(key, []).extend(values)
    return params


def error_body(status: int, message: str | None = None) -> bytes:
    """A Twitter-style ``{"errors": [...]}`` body for *status*."""
    code, default = ERRORS.get(status, (status, REASONS.get(status, "Error")))
    return json.dumps({"errors": [{"code": code, "message": message or default}]},
                      separators=(",", ":")).encode()


def response_head(status: int, content_type: str, headers: Mapping[str, str] | None = None, *,
                  length: int | None = None) -> bytes:
    """The head of a response that closes the connection: ``content-length: length``, or a
    chunked body when *length* is None; *headers* come last.

    Examples
    --------
    >>> response_head(200, "text/plain", {"x-test": "1"}).split(b"\\r\\n")[:3]
    [b'HTTP/1.1 200 OK', b'content-type: text/plain', b'transfer-encoding: chunked']
    """
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'OK' if status == 200 else 'Error')}",
             f"content-type: {content_type}",
             "transfer-encoding: chunked" if length is None else f"content-length: {length}",
             f"date: {formatdate(usegmt=True)}",
             "server: streamkit-testing",
             "connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_response(status: int, body: bytes, content_type: str,
                  headers: Mapping[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response with *body* that closes the connection.

    Examples
    --------
    >>> http_response(404, b"{}", "application/json").split(b"\\r\\n")[0]
    b'HTTP/1.1 404 Not Found'
    """
    return response_head(status, content_type, headers, length=len(body)) + body


def error_response(status: int, message: str | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection."""
    return http_response(status, error_body(status, message), "application/json; charset=utf-8", headers)


def verify_auth(req: Request, credentials: Mapping[str, str]) -> str | None:
    """Check the ``Authorization`` header; ``None`` when valid, else why it is not.

    OAuth 1.0a HMAC-SHA1 user context is verified against the signature base
    string (method, URL from the ``Host`` header, query and form-body
    parameters).  A ``Bearer`` token equal to ``credentials["bearer_token"]``
    is accepted too.  The reason is for logs; clients only get error 32.
    """
    auth = req.headers.get("authorization", "")
    if not auth:
        return "no Authorization header"
    scheme, _, rest = auth.partition(" ")
    if scheme.lower() == "bearer":
        expected = credentials.get("bearer_token")
        if expected and signature.safe_string_equals(rest.strip(), expected):
            return None
        return "unknown bearer token"
    if scheme.lower() != "oauth":
        return f"unsupported Authorization scheme {scheme[:20]!r}"
    try:
        oauth = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(auth)}
    except (ValueError, IndexError):
        return "malformed OAuth header"
    for name in ("oauth_consumer_key", "oauth_token", "oauth_signature_method",
                 "oauth_signature", "oauth_timestamp", "oauth_nonce"):
        if not oauth.get(name):
            return f"missing {name}"
    if oauth["oauth_signature_method"] != "HMAC-SHA1":
        return "oauth_signature_method must be HMAC-SHA1"
    if oauth.get("oauth_version", "1.0") != "1.0":
        return "oauth_version must be 1.0"
    if not signature.safe_string_equals(oauth["oauth_consumer_key"], credentials["consumer_key"]):
        return "unknown consumer key"
    if not signature.safe_string_equals(oauth["oauth_token"], credentials["access_token"]):
        return "unknown access token"
    try:
        skew = abs(time.time() - int(oauth["oauth_timestamp"]))
    except ValueError:
        return "malformed oauth_timestamp"
    if skew > OAUTH_WINDOW:
        return f"oauth_timestamp is {skew:.0f} s off"
    try:
        params = signature.collect_parameters(
            uri_query=req.query,
            body=req.body.decode("utf-8") if req.is_form and req.body else None,
            headers={"Authorization": auth},
            exclude_oauth_signature=True,
        )
        host = req.headers.get("host", "")
        uri = signature.base_string_uri(f"http://{host}{req.path}")
        base = signature.signature_base_string(req.method, uri,
                                               signature.normalize_parameters(params))
    except (ValueError, UnicodeDecodeError) as exc:
        return f"cannot build the signature base string: {exc}"
    expected = signature.sign_hmac_sha1_with_client(base, _Secrets(
        credentials["consumer_secret"], credentials["access_token_secret"]))
    if not signature.safe_string_equals(expected, oauth["oauth_signature"]):
        return "signature mismatch"
    return None
