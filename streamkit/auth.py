"""Credentials: OAuth 1.0a user context and app-only bearer tokens.

The handlers keep their secrets in private attributes and never show them:
not in a ``repr``, not in a log line, not in an exception message.
Credentials normally come from the environment through :func:`auth_from_env`.

Examples
--------
>>> auth = OAuthHandler("my-consumer-key", "my-consumer-secret")
>>> auth.set_access_token("my-token", "my-token-secret")
>>> auth
OAuthHandler(consumer_key='my-c…', access_token='my-t…', secrets hidden)
>>> "my-consumer-secret" in repr(auth) or "my-token-secret" in repr(auth)
False
>>> API(auth).auth is auth
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from oauthlib.common import generate_nonce, generate_timestamp
from oauthlib.oauth1.rfc5849 import signature as _signature
from oauthlib.oauth1.rfc5849 import utils as _oauth_utils

from ._exceptions import ConfigError

__all__ = [
    "API",
    "ENV_VARS",
    "AuthHandler",
    "BearerTokenHandler",
    "OAuth1UserHandler",
    "OAuthHandler",
    "auth_from_env",
]

ENV_VARS = {
    "consumer_key": "STREAMKIT_CONSUMER_KEY",
    "consumer_secret": "STREAMKIT_CONSUMER_SECRET",
    "access_token": "STREAMKIT_ACCESS_TOKEN",
    "access_token_secret": "STREAMKIT_ACCESS_TOKEN_SECRET",
    "bearer_token": "STREAMKIT_BEARER_TOKEN",
}
"""The environment variables :func:`auth_from_env` reads."""


def _hint(value: str | None) -> str:
    # Enough to tell two keys apart in a notebook, never enough to use one.
    if not value:
        return "unset"
    return repr(value[:4] + "…")


def _check(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{name} must be a non-empty string; got {type(value).__name__}. "
            f"Pass it explicitly or set {ENV_VARS.get(name, name)} in the environment."
        )
    return value.strip()


class AuthHandler:
    """Base class of credential handlers.

    A handler turns itself into a ``requests`` auth object with
    :meth:`apply_auth`. Subclasses must keep secrets out of ``repr``.
    """

    def apply_auth(self) -> requests.auth.AuthBase:
        """Return the ``requests`` auth object that signs each request."""
        raise NotImplementedError

    def __reduce__(self) -> Any:  # pragma: no cover - defensive
        # Pickling would write secrets to disk (multiprocessing, caches).
        raise TypeError(f"{type(self).__name__} holds secrets and cannot be pickled")


class OAuthHandler(AuthHandler):
    """OAuth 1.0a user-context credentials (HMAC-SHA1), as in Tweepy 3.x.

    Parameters
    ----------
    consumer_key, consumer_secret : str
        The app's API key and secret.

    Examples
    --------
    >>> auth = OAuthHandler("ck", "cs")
    >>> auth.set_access_token("at", "ats")
    >>> auth.apply_auth()
    <OAuth 1.0a signer, credentials hidden>
    """

    def __init__(self, consumer_key: str, consumer_secret: str) -> None:
        self._consumer_key = _check("consumer_key", consumer_key)
        self._consumer_secret = _check("consumer_secret", consumer_secret)
        self._access_token: str | None = None
        self._access_token_secret: str | None = None

    def set_access_token(self, key: str, secret: str) -> None:
        """Set the user's access token and its secret."""
        self._access_token = _check("access_token", key)
        self._access_token_secret = _check("access_token_secret", secret)

    # Tweepy exposes these as plain attributes; keep that, read-only.
    @property
    def consumer_key(self) -> str:
        return self._consumer_key

    @property
    def consumer_secret(self) -> str:
        return self._consumer_secret

    @property
    def access_token(self) -> str | None:
        return self._access_token

    @property
    def access_token_secret(self) -> str | None:
        return self._access_token_secret

    def apply_auth(self) -> requests.auth.AuthBase:
        if self._access_token is None or self._access_token_secret is None:
            raise ConfigError(
                "OAuthHandler has no access token: call auth.set_access_token(key, secret) "
                f"or set {ENV_VARS['access_token']} and {ENV_VARS['access_token_secret']}."
            )
        return _OAuth1Signer(
            self._consumer_key, self._consumer_secret, self._access_token, self._access_token_secret
        )

    def __repr__(self) -> str:
        return (
            f"OAuthHandler(consumer_key={_hint(self._consumer_key)}, "
            f"access_token={_hint(self._access_token)}, secrets hidden)"
        )


OAuth1UserHandler = OAuthHandler
"""Tweepy 4's name for :class:`OAuthHandler`."""


class _Secrets(NamedTuple):
    """The two attributes oauthlib's ``sign_hmac_sha1_with_client`` reads."""

    client_secret: str
    resource_owner_secret: str

    def __repr__(self) -> str:
        return "_Secrets(hidden)"


class _OAuth1Signer(requests.auth.AuthBase):
    """Signs each request with an OAuth 1.0a HMAC-SHA1 ``Authorization`` header.

    Built from oauthlib's signature functions rather than requests-oauthlib's
    ``OAuth1``: that one logs the consumer key and the access token at DEBUG
    level (and oauthlib's ``Client.sign`` the whole signature base string), so
    anyone turning on DEBUG logging would write credentials to their logs.
    """

    __slots__ = ("_access_token", "_consumer_key", "_secrets")

    def __init__(self, consumer_key: str, consumer_secret: str, access_token: str, access_token_secret: str) -> None:
        self._consumer_key = consumer_key
        self._access_token = access_token
        self._secrets = _Secrets(consumer_secret, access_token_secret)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        oauth = [
            ("oauth_nonce", generate_nonce()),
            ("oauth_timestamp", generate_timestamp()),
            ("oauth_version", "1.0"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_consumer_key", self._consumer_key),
            ("oauth_token", self._access_token),
        ]
        url = r.url or ""
        body: str = ""
        content_type = str(r.headers.get("Content-Type", "")).split(";")[0].strip().lower()
        if r.body and content_type == "application/x-www-form-urlencoded":
            body = r.body.decode("utf-8") if isinstance(r.body, bytes) else str(r.body)
        params = _signature.collect_parameters(uri_query=urlsplit(url).query, body=body) + oauth
        base = _signature.signature_base_string(
            (r.method or "GET").upper(), _signature.base_string_uri(url), _signature.normalize_parameters(params)
        )
        oauth.append(("oauth_signature", _signature.sign_hmac_sha1_with_client(base, self._secrets)))
        r.headers["Authorization"] = "OAuth " + ", ".join(
            f'{name}="{_oauth_utils.escape(value)}"' for name, value in oauth
        )
        return r

    def __repr__(self) -> str:
        return "<OAuth 1.0a signer, credentials hidden>"

    def __reduce__(self) -> Any:  # pragma: no cover - defensive
        raise TypeError("an OAuth signer holds secrets and cannot be pickled")


class _Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "<bearer token hidden>"


class BearerTokenHandler(AuthHandler):
    """App-only bearer token (OAuth 2.0), for app-only endpoints.

    Parameters
    ----------
    bearer_token : str
        The app's bearer token.

    Examples
    --------
    >>> BearerTokenHandler("AAAAAAAAsecret")
    BearerTokenHandler(bearer_token='AAAA…')
    """

    def __init__(self, bearer_token: str) -> None:
        self._bearer_token = _check("bearer_token", bearer_token)

    @property
    def bearer_token(self) -> str:
        return self._bearer_token

    def apply_auth(self) -> requests.auth.AuthBase:
        return _Bearer(self._bearer_token)

    def __repr__(self) -> str:
        return f"BearerTokenHandler(bearer_token={_hint(self._bearer_token)})"


def auth_from_env(
    kind: str = "oauth1", *, environ: Mapping[str, str] | None = None
) -> OAuthHandler | BearerTokenHandler:
    """Build credentials from ``STREAMKIT_*`` environment variables.

    Parameters
    ----------
    kind : {"oauth1", "bearer"}
        ``"oauth1"`` reads ``STREAMKIT_CONSUMER_KEY``, ``STREAMKIT_CONSUMER_SECRET``,
        ``STREAMKIT_ACCESS_TOKEN`` and ``STREAMKIT_ACCESS_TOKEN_SECRET``;
        ``"bearer"`` reads ``STREAMKIT_BEARER_TOKEN``.
    environ : mapping, optional
        Where to read from (default ``os.environ``).

    Returns
    -------
    OAuthHandler or BearerTokenHandler

    Raises
    ------
    ConfigError
        When a variable is missing or empty; the message names every
        missing variable (never a value).

    Examples
    --------
    >>> env = {"STREAMKIT_CONSUMER_KEY": "ck", "STREAMKIT_CONSUMER_SECRET": "cs",
    ...        "STREAMKIT_ACCESS_TOKEN": "at", "STREAMKIT_ACCESS_TOKEN_SECRET": "ats"}
    >>> auth_from_env(environ=env)
    OAuthHandler(consumer_key='ck…', access_token='at…', secrets hidden)
    >>> auth_from_env("bearer", environ={})
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: missing credentials: set STREAMKIT_BEARER_TOKEN in the environment (or pass auth=...).
    """
    env = os.environ if environ is None else environ
    if kind == "oauth1":
        names = ["consumer_key", "consumer_secret", "access_token", "access_token_secret"]
    elif kind == "bearer":
        names = ["bearer_token"]
    else:
        raise ConfigError(f"kind must be 'oauth1' or 'bearer', got {kind!r}")
    values = {n: (env.get(ENV_VARS[n]) or "").strip() for n in names}
    missing = [ENV_VARS[n] for n, v in values.items() if not v]
    if missing:
        raise ConfigError(
            f"missing credentials: set {', '.join(missing)} in the environment (or pass auth=...)."
        )
    if kind == "bearer":
        return BearerTokenHandler(values["bearer_token"])
    handler = OAuthHandler(values["consumer_key"], values["consumer_secret"])
    handler.set_access_token(values["access_token"], values["access_token_secret"])
    return handler


class API:
    """A minimal holder of credentials, so that Tweepy's ``api.auth`` works.

    Parameters
    ----------
    auth : AuthHandler
        The credentials.

    Examples
    --------
    >>> api = API(BearerTokenHandler("tok"))
    >>> api
    API(auth=BearerTokenHandler(bearer_token='tok…'))
    """

    def __init__(self, auth: AuthHandler | None = None, **kwargs: Any) -> None:
        self.auth = auth

    def __repr__(self) -> str:
        return f"API(auth={self.auth!r})"
