"""``StreamingClient``: the X API v2 filtered and sample streams, with Tweepy 4's names.

A :class:`StreamingClient` is a :class:`~streamkit.StreamListener` that drives a
:class:`~streamkit.Stream` on the :mod:`streamkit.sources.x_v2` endpoint, so it shares the one
reconnect loop (back-off per X's policy: 429 from 60 s, stall after ~30 s without even a
keep-alive, a reconnect after an ``operational-disconnect`` error object) and the dispatch
thread. Override the callbacks Tweepy 4 names: ``on_tweet``, ``on_includes``, ``on_errors``,
``on_matching_rules``, ``on_response``, ``on_data``, ``on_keep_alive``, ``on_connect``,
``on_request_error``, ``on_connection_error``, ``on_exception``, ``on_disconnect``.
Returning ``False`` from any of them ends the stream.

Rules (``add_rules``, ``get_rules``, ``delete_rules``) use the same bearer token. Rules the
API refuses (invalid syntax, over the rule cap) raise :class:`~streamkit.ConfigError` with
X's reasons; a rule that already exists is not an error (it is logged and listed in
``Response.errors``), so a script can add its rules every time it starts.

Examples
--------
>>> import streamkit
>>> from streamkit.testing import XV2Server
>>> class Printer(streamkit.StreamingClient):
...     def on_tweet(self, tweet):
...         print(tweet.text.split()[0] == "@" or "python" in tweet.text.lower())
...         return False                          # one is enough
>>> with XV2Server(rate=100, match_fraction=1.0) as server:
...     client = Printer(server.bearer_token, base_url=server.url)
...     _ = client.add_rules(streamkit.StreamRule("python", tag="py"))
...     client.filter()
True
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from . import _http
from ._exceptions import (
    ConfigError,
    HTTPStatusError,
    StreamError,
)
from .listener import StreamListener, _decode_object
from .models import Model
from .sources.x_v2 import (
    DEFAULT_API_URL,
    XV2Endpoint,
    bearer_token_from,
    credential_help,
    field_params,
)

__all__ = [
    "Media",
    "Place",
    "Poll",
    "Response",
    "StreamResponse",
    "StreamRule",
    "StreamingClient",
    "Tweet",
    "XUser",
]

log = logging.getLogger("streamkit.x")

RULES_PATH = "/2/tweets/search/stream/rules"
_ids = itertools.count(1)


class StreamRule(NamedTuple):
    """A filtered-stream rule (Tweepy 4's ``StreamRule``).

    Examples
    --------
    >>> StreamRule("cat has:images", tag="cats")
    StreamRule(value='cat has:images', tag='cats', id=None)
    """

    value: str | None = None
    tag: str | None = None
    id: str | None = None


class StreamResponse(NamedTuple):
    """One stream message, as ``on_response`` gets it (Tweepy 4's ``StreamResponse``)."""

    data: Any
    includes: dict[str, list[Any]]
    errors: list[dict[str, Any]]
    matching_rules: list[StreamRule]


class Response(NamedTuple):
    """What the rules calls return (Tweepy 4's ``Response``): ``data`` is a list of
    :class:`StreamRule`; ``errors`` X's error objects; ``meta`` its summary."""

    data: Any
    includes: dict[str, Any]
    errors: list[dict[str, Any]]
    meta: dict[str, Any]


def _iso_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


class _V2Model(Model):
    """Attribute access over a v2 object: ids become ``int``, ``created_at`` a datetime."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        value = super().__getattr__(name)
        if (name == "id" or name.endswith("_id")) and isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        if name == "created_at" and isinstance(value, str):
            return _iso_time(value) or value
        return value

    @property
    def data(self) -> dict[str, Any]:
        """The object's JSON, as a dict (Tweepy 4's ``.data``)."""
        return self._json


class Tweet(_V2Model):
    """A post: ``tweet.id`` (int), ``tweet.text``, ``tweet.author_id``, ``tweet.data``...

    Examples
    --------
    >>> t = Tweet({"id": "1212092628029698048", "text": "hi", "created_at": "2019-12-31T19:26:16.000Z"})
    >>> t.id, t.text, t.created_at.year, t.data["id"]
    (1212092628029698048, 'hi', 2019, '1212092628029698048')
    """

    __slots__ = ()

    def __repr__(self) -> str:
        text = self._json.get("text")
        if isinstance(text, str) and len(text) > 40:
            text = text[:40] + "…"
        return f"Tweet(id={self._json.get('id')!r}, text={text!r})"


class XUser(_V2Model):
    """A user from ``includes.users`` (Tweepy 4's ``User``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"XUser(id={self._json.get('id')!r}, username={self._json.get('username')!r})"


class Media(_V2Model):
    """A media object from ``includes.media``."""

    __slots__ = ()


class Place(_V2Model):
    """A place from ``includes.places``."""

    __slots__ = ()


class Poll(_V2Model):
    """A poll from ``includes.polls``."""

    __slots__ = ()


_INCLUDE_TYPES = {"users": XUser, "tweets": Tweet, "media": Media, "places": Place, "polls": Poll}


def _rules_of(items: Any) -> list[StreamRule]:
    out = []
    for r in items or ():
        if isinstance(r, dict):
            rid = r.get("id")
            out.append(StreamRule(r.get("value"), r.get("tag"), None if rid is None else str(rid)))
    return out


class StreamingClient(StreamListener):
    """Stream posts from the X API v2 filtered stream (by rules) or sample stream.

    Parameters
    ----------
    bearer_token : str, optional
        The app's bearer token; by default ``$STREAMKIT_BEARER_TOKEN``. Never shown in a repr,
        log line or error message.
    base_url : str
        ``https://api.x.com`` by default; ``http://`` only for a loopback test server.
    wait_on_rate_limit : bool
        When a rules call is rate limited (HTTP 429), wait until X's ``x-rate-limit-reset``
        (at most 15 minutes) and retry, instead of raising :class:`~streamkit.RateLimited`.
    timeout : float
        Stall timeout of the stream: X sends a keep-alive at least every 20 s, so 30 s of
        silence means the connection is dead.
    **stream_options
        :class:`~streamkit.Stream`'s reconnect options: ``retry_count``, ``retry_time``,
        ``retry_420`` (first wait after HTTP 429, doubling; default 60 s), ``retry_time_cap``,
        ``snooze_time``, ``snooze_time_cap``, ``daemon``, ``verify``, ``connect_timeout``,
        ``max_message_bytes``, ``chunk_size``.

    Attributes
    ----------
    running : bool
        True while streaming.
    thread : threading.Thread or None
        The stream's thread after ``filter(threaded=True)``/``sample(threaded=True)``.
    stream : Stream or None
        The :class:`~streamkit.Stream` of the current (or last) run: ``stats``, ``exception``.
    """

    def __init__(self, bearer_token: str | None = None, *, base_url: str = DEFAULT_API_URL,
                 wait_on_rate_limit: bool = False, timeout: float = 30.0, **stream_options: Any) -> None:
        super().__init__()
        self.__token = bearer_token_from(bearer_token)
        self.verify = stream_options.get("verify", True)
        self.base_url = _http.check_base_url(base_url, verify=True)
        self.wait_on_rate_limit = bool(wait_on_rate_limit)
        self._stream_options = {"timeout": timeout, **stream_options}
        self._n = next(_ids)
        self.stream: Any = None
        self.thread: threading.Thread | None = None
        self._session: Any = None
        self._session_lock = threading.Lock()
        self._wake = threading.Event()
        self._ended = threading.Event()
        self._ended.set()
        self._new_stream(XV2Endpoint(self.base_url, self.__token))  # bad options fail here

    def __repr__(self) -> str:
        state = "running" if self.running else "idle"
        return f"<StreamingClient #{self._n} {self.base_url} {state}, token hidden>"

    # -- streaming ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True from ``filter()``/``sample()`` until the stream has ended."""
        return not self._ended.is_set()

    def filter(self, *, threaded: bool = False, backfill_minutes: int | None = None,
               expansions: Any = None, media_fields: Any = None, place_fields: Any = None,
               poll_fields: Any = None, tweet_fields: Any = None, user_fields: Any = None) -> Any:
        """Stream the posts that match the rules (``GET /2/tweets/search/stream``).

        Parameters
        ----------
        threaded : bool
            Run on a background thread (returned, and kept as :attr:`thread`) and return at once.
        backfill_minutes : int, optional
            0-5: after a reconnect, ask X for the minutes missed (accounts with backfill).
        expansions, media_fields, place_fields, poll_fields, tweet_fields, user_fields
            X's field lists (lists or comma-separated strings).

        Returns
        -------
        threading.Thread or None
            The thread when ``threaded``.

        Raises
        ------
        ConfigError
            Bad field names or backfill, before anything connects.
        StreamkitError
            When not threaded: what ended the stream, unless ``disconnect()`` or a callback did.
        """
        return self._run(False, threaded, backfill_minutes, expansions=expansions, media_fields=media_fields,
                         place_fields=place_fields, poll_fields=poll_fields, tweet_fields=tweet_fields,
                         user_fields=user_fields)

    def sample(self, *, threaded: bool = False, backfill_minutes: int | None = None,
               expansions: Any = None, media_fields: Any = None, place_fields: Any = None,
               poll_fields: Any = None, tweet_fields: Any = None, user_fields: Any = None) -> Any:
        """Stream about 1% of all public posts (``GET /2/tweets/sample/stream``); see :meth:`filter`."""
        return self._run(True, threaded, backfill_minutes, expansions=expansions, media_fields=media_fields,
                         place_fields=place_fields, poll_fields=poll_fields, tweet_fields=tweet_fields,
                         user_fields=user_fields)

    def disconnect(self) -> None:
        """End the stream; returns within about a second, even mid-back-off."""
        self._wake.set()
        stream = self.stream
        if stream is not None:
            stream.disconnect()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join(5.0)

    def _new_stream(self, endpoint: XV2Endpoint) -> Any:
        from .streaming import Stream

        return Stream(None, self, endpoint=endpoint, **self._stream_options)

    def _run(self, sample: bool, threaded: bool, backfill_minutes: int | None, **fields: Any) -> Any:
        if self.running:
            raise StreamError("this StreamingClient is already streaming; call disconnect() first")
        params = field_params(**fields)
        endpoint = XV2Endpoint(self.base_url, self.__token, sample=sample, params=params,
                               backfill_minutes=backfill_minutes or 0)
        stream = self._new_stream(endpoint)
        self.stream = stream
        self._wake.clear()
        self._ended.clear()
        if not threaded:
            self.thread = None
            self._drive(stream, reraise=True)
            return None
        self.thread = threading.Thread(target=self._drive, args=(stream,), daemon=stream.daemon,
                                       name=f"streamkit-x-stream-{self._n}")
        self.thread.start()
        return self.thread

    def _drive(self, stream: Any, reraise: bool = False) -> None:
        try:
            stream.start(is_async=False)  # the endpoint words X's errors (BEARER_ENV)
        except Exception as exc:  # threaded: kept on self.stream.exception, never lost with the thread
            if reraise:
                raise
            log.error("the X stream ended: %s", exc)
        finally:
            self._ended.set()
            try:
                self.on_disconnect()
            except Exception:
                log.exception("on_disconnect raised")

    # -- the listener side (the stream's dispatch thread) -------------------------------------
    def keep_alive(self) -> Any:
        return self.on_keep_alive()

    def on_error(self, status_code: int) -> Any:
        return self.on_request_error(status_code)

    def on_timeout(self) -> Any:
        return self.on_connection_error()

    def on_data(self, raw_data: str | bytes) -> Any:
        """Decode one message and call ``on_tweet``, ``on_includes``, ``on_errors``,
        ``on_matching_rules`` and ``on_response`` for what it holds."""
        data = _decode_object(raw_data)
        results = []
        tweet = None
        includes: dict[str, list[Any]] = {}
        errors: list[dict[str, Any]] = []
        matching: list[StreamRule] = []
        if isinstance(data.get("data"), dict):
            tweet = Tweet(data["data"])
            results.append(self.on_tweet(tweet))
        if isinstance(data.get("includes"), dict):
            includes = {k: [_INCLUDE_TYPES.get(k, _V2Model)(x) if isinstance(x, dict) else x for x in v]
                        for k, v in data["includes"].items() if isinstance(v, list)}
            results.append(self.on_includes(includes))
        if isinstance(data.get("errors"), list):
            errors = data["errors"]
            results.append(self.on_errors(errors))
        if isinstance(data.get("matching_rules"), list):
            matching = _rules_of(data["matching_rules"])
            results.append(self.on_matching_rules(matching))
        results.append(self.on_response(StreamResponse(tweet, includes, errors, matching)))
        return False if any(r is False for r in results) else None

    # -- callbacks (override these) ------------------------------------------------------------
    def on_connect(self) -> Any:
        """Called after each successful connection."""
        log.info("connected to the X stream")

    def on_tweet(self, tweet: Tweet) -> Any:
        """Called with each post (a :class:`Tweet`)."""

    def on_includes(self, includes: dict[str, list[Any]]) -> Any:
        """Called with a message's expansions: ``{"users": [XUser...], "tweets": [...], ...}``."""

    def on_errors(self, errors: list[dict[str, Any]]) -> Any:
        """Called with X's error objects (``operational-disconnect`` before a reconnect, or
        partial errors beside a post)."""
        log.warning("X sent errors: %s", "; ".join(str(e.get("detail") or e.get("title")) for e in errors
                                                     if isinstance(e, dict)))

    def on_matching_rules(self, matching_rules: list[StreamRule]) -> Any:
        """Called with the rules a post matched (:class:`StreamRule` with ``id`` and ``tag``)."""

    def on_response(self, response: StreamResponse) -> Any:
        """Called with each whole message as a :class:`StreamResponse`."""

    def on_keep_alive(self) -> Any:
        """Called for each keep-alive (``\\r\\n``)."""

    def on_request_error(self, status_code: int) -> Any:
        """Called when the stream endpoint answers an HTTP error; the default retries
        429 and 5xx with back-off and stops on errors retrying cannot fix (401, 403...)."""
        return StreamListener.on_error(self, status_code)

    def on_connection_error(self) -> Any:
        """Called when the connection stalled (no byte, not even a keep-alive, for ``timeout`` s)."""
        log.warning("the X stream stalled; reconnecting")

    def on_disconnect(self, notice: dict[str, Any] | None = None) -> Any:
        """Called once when the stream has ended (``disconnect()``, a callback, or a fatal error).

        ``notice`` is always None here (X v2 sends no disconnect notice); the parameter keeps
        the signature of :meth:`StreamListener.on_disconnect`.
        """

    # -- rules -------------------------------------------------------------------------------
    def add_rules(self, rules: StreamRule | str | Iterable[StreamRule | str], *, dry_run: bool = False) -> Response:
        """Add filtered-stream rules (``POST /2/tweets/search/stream/rules``).

        Parameters
        ----------
        rules : StreamRule, str, or a list of them
            The rules: ``StreamRule("cat has:images", tag="cats")`` or plain values.
        dry_run : bool
            Only validate the rules; nothing is stored.

        Returns
        -------
        Response
            ``data``: the created rules (with their ids); ``errors``: rules that already
            existed (``DuplicateRule``, with the existing rule's id); ``meta``: X's summary.

        Raises
        ------
        ConfigError
            X refused rules as invalid or over the rule cap (the message lists each one and why).
        AuthError, RateLimited, HTTPStatusError, StreamError
            The token was refused, the app is rate limited, another HTTP error, or X was unreachable.

        Examples
        --------
        >>> from streamkit.testing import XV2Server
        >>> with XV2Server() as server:
        ...     client = server.client()
        ...     created = client.add_rules([StreamRule("python", tag="py"), "climate lang:en"])
        ...     again = client.add_rules("python")           # already there: not an error
        ...     client.add_rules("-cat")
        Traceback (most recent call last):
        ...
        streamkit._exceptions.ConfigError: X refused 1 rule: '-cat': Rules must contain a non-negation term (at position 1)
        >>> [r.tag for r in created.data], again.data, again.errors[0]["title"]
        (['py', None], [], 'DuplicateRule')
        """
        items = [rules] if isinstance(rules, (str, StreamRule)) else list(rules)
        add = []
        for rule in items:
            if isinstance(rule, str):
                rule = StreamRule(rule)
            if not isinstance(rule, StreamRule) or not isinstance(rule.value, str) or not rule.value.strip():
                raise ConfigError(f"a rule must be a StreamRule(value, tag=None) or a non-empty string, got {rule!r}")
            add.append({"value": rule.value, **({"tag": rule.tag} if rule.tag else {})})
        if not add:
            raise ConfigError("add_rules() needs at least one rule")
        body = self._rules_request("POST", {"add": add}, dry_run=dry_run)
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        refused = [e for e in errors if e.get("title") != "DuplicateRule"]
        if refused:
            raise ConfigError(_refusal(refused))
        for e in errors:
            log.info("rule %r already exists (id %s); kept as it is", e.get("value"), e.get("id"))
        return Response(_rules_of(body.get("data")), {}, errors, body.get("meta") or {})

    def get_rules(self, *, ids: Iterable[str | int] | None = None) -> Response:
        """The app's rules (``GET /2/tweets/search/stream/rules``), optionally only ``ids``.

        Examples
        --------
        >>> from streamkit.testing import XV2Server
        >>> with XV2Server(rules=[("python", "py")]) as server:
        ...     server.client().get_rules().data[0][:2]
        ('python', 'py')
        """
        params = {"ids": ",".join(str(i) for i in ids)} if ids else None
        body = self._rules_request("GET", None, params=params)
        return Response(_rules_of(body.get("data")), {}, body.get("errors") or [], body.get("meta") or {})

    def delete_rules(self, ids: Any = None, *, values: Iterable[str] | None = None,
                     dry_run: bool = False) -> Response:
        """Delete rules by id, by :class:`StreamRule`, or by value.

        Parameters
        ----------
        ids : str, int, StreamRule, or a list of them
            Rule ids (ints or digit strings); a StreamRule is deleted by its ``id``, or by its
            ``value`` when it has none; any other string is taken as a rule value.
        values : list of str, optional
            Rule values to delete (use this for a value made only of digits).
        dry_run : bool
            Only check; nothing is deleted.

        Raises
        ------
        ConfigError
            Nothing to delete, or X answered that a rule does not exist.

        Examples
        --------
        >>> from streamkit.testing import XV2Server
        >>> with XV2Server(rules=["python", "climate"]) as server:
        ...     client = server.client()
        ...     first = client.get_rules().data[0]
        ...     client.delete_rules([first, "climate"]).meta["summary"]["deleted"]
        2
        """
        items = [] if ids is None else [ids] if isinstance(ids, (str, int, StreamRule)) else list(ids)
        by_id: list[str] = []
        by_value: list[str] = list(values or [])
        for item in items:
            if isinstance(item, StreamRule):
                if item.id is not None:
                    by_id.append(str(item.id))
                elif item.value:
                    by_value.append(item.value)
                else:
                    raise ConfigError(f"{item!r} has neither an id nor a value to delete it by")
            elif isinstance(item, int) and not isinstance(item, bool):
                by_id.append(str(item))
            elif isinstance(item, str) and item.strip().isascii() and item.strip().isdigit():
                by_id.append(item.strip())
            elif isinstance(item, str) and item.strip():
                by_value.append(item)
            else:
                raise ConfigError(f"delete_rules() takes rule ids, StreamRule objects or rule values, got {item!r}")
        if not by_id and not by_value:
            raise ConfigError("delete_rules() needs at least one rule id, StreamRule or value")
        delete: dict[str, list[str]] = {}
        if by_id:
            delete["ids"] = by_id
        if by_value:
            delete["values"] = by_value
        body = self._rules_request("POST", {"delete": delete}, dry_run=dry_run)
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        if errors:
            raise ConfigError(_refusal(errors, what="delete"))
        return Response([], {}, [], body.get("meta") or {})

    def delete_all_rules(self, *, dry_run: bool = False) -> Response:
        """Delete every rule of the app; returns the rules that were deleted in ``data``."""
        rules = self.get_rules().data
        if not rules:
            return Response([], {}, [], {"summary": {"deleted": 0, "not_deleted": 0}})
        done = self.delete_rules([StreamRule(r.value, r.tag, r.id) for r in rules], dry_run=dry_run)
        return Response(rules, {}, [], done.meta)

    def _rules_request(self, method: str, payload: Any, *, dry_run: bool = False,
                       params: dict[str, str] | None = None) -> dict[str, Any]:
        import requests

        url = self.base_url + RULES_PATH
        query = dict(params or {})
        if dry_run:
            query["dry_run"] = "true"
        headers = {"Authorization": f"Bearer {self.__token}", "User-Agent": "streamkit"}
        waited = False
        while True:
            with self._session_lock:
                if self._session is None:
                    self._session = requests.Session()
                session = self._session
            try:
                resp = session.request(method, url, params=query or None, json=payload, headers=headers,
                                       timeout=(10.0, 30.0), verify=self.verify, allow_redirects=False)
            except requests.RequestException as exc:
                raise StreamError(f"could not reach {url}: {type(exc).__name__}. Check the network "
                                  "and base_url, then try again.") from exc
            with resp:
                text = resp.text
                status = resp.status_code
                reset = resp.headers.get("x-rate-limit-reset")
            if status == 429 and self.wait_on_rate_limit and not waited:
                delay = _until(reset)
                log.warning("the rules endpoint is rate limited; waiting %.0f s as asked (wait_on_rate_limit)", delay)
                waited = True
                self._wake.clear()
                self._wake.wait(delay)
                continue
            break
        try:
            body = json.loads(text) if text.strip() else {}
        except ValueError:
            body = {}
        if status != 200:
            raise _rules_http_error(status, url, body, text, reset)
        return body if isinstance(body, dict) else {}

    def close(self) -> None:
        """Close the rules calls' HTTP session (the stream has its own)."""
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def __del__(self) -> None:  # a forgotten client must not leak a socket
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _until(reset: str | None) -> float:
    try:
        return min(max(float(reset) - time.time(), 1.0), 900.0) if reset else 60.0
    except ValueError:
        return 60.0


def _refusal(errors: Sequence[dict[str, Any]], what: str = "rule") -> str:
    parts = []
    for e in errors:
        subject = e.get("value") if e.get("value") is not None else e.get("id")
        why = "; ".join(e.get("details") or []) or e.get("detail") or e.get("title") or "refused"
        parts.append(f"{subject!r}: {why}" if subject not in (None, "") else str(why))
    if what == "delete":
        return f"X could not delete {len(errors)} rule(s): " + " | ".join(parts) + \
            ". List the rules with get_rules() (or `streamkit rules list`)."
    return f"X refused {len(errors)} rule{'s' * (len(errors) != 1)}: " + " | ".join(parts)


def _rules_http_error(status: int, url: str, body: Any, text: str, reset: str | None) -> HTTPStatusError:
    detail = ""
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("title") or "")
        errs = body.get("errors")
        if isinstance(errs, list) and errs:
            detail += " " + "; ".join(str(e.get("message") or e.get("detail") or e) for e in errs if isinstance(e, dict))
    retry_after = _until(reset) if status == 429 else None
    if retry_after is not None:
        what = (f"rate limited (450 rules requests per 15 minutes); try again in {retry_after:.0f} s, "
                "or pass wait_on_rate_limit=True")
    elif status in (401, 403):
        what = credential_help(status)
    else:
        what = "the rules request failed"
    return _http.status_error(status, f"from {url}", detail or text, retry_after, what)
