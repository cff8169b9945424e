"""The live sources streamkit captures, each behind the contract in :mod:`.base`.

A new source is one new module here and one line in :data:`SOURCES`. The module provides

* an :class:`~.base.Endpoint` subclass (how the reader thread reaches the source) and a
  :class:`~.base.Source` subclass (how its messages land in the dataset), the latter
  named by the module attribute ``SOURCE_CLASS``;
* ``open_source(*, base_url=None, **options) -> (Endpoint, Source)``: keyword-only
  options (filters, tokens, field lists) checked with clear :class:`ConfigError` messages;
  ``base_url`` points the endpoint at a compatible server (a local test server);
* ``CLI_OPTIONS``: ``[(flags, argparse_kwargs), ...]`` for ``streamkit collect --source``;
  every ``argparse_kwargs`` has ``dest`` equal to an ``open_source`` option name.

Examples
--------
>>> from streamkit.sources import get_source
>>> src = get_source("twitter-v1.1")
>>> src.items, src.key_columns
('tweets', ('id',))
>>> get_source("myspace")
Traceback (most recent call last):
...
streamkit._exceptions.ConfigError: unknown source 'myspace'; streamkit knows: twitter-v1.1, x-v2, jetstream, wikimedia, mastodon
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

from .._exceptions import ConfigError
from .base import Endpoint, Request, Source

__all__ = [
    "SOURCES", "Endpoint", "Request", "Source", "cli_options", "get_source", "is_credential", "open_source",
    "takes_option",
]

#: Source name -> module under ``streamkit.sources``.
SOURCES: dict[str, str] = {
    "twitter-v1.1": "twitter_v1",
    "x-v2": "x_v2",
    "jetstream": "jetstream",
    "wikimedia": "wikimedia",
    "mastodon": "mastodon",
}


def source_module(name: str) -> ModuleType:
    """The module that implements source ``name``.

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    try:
        module = SOURCES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown source {name!r}; streamkit knows: {', '.join(SOURCES)}") from None
    full = f"{__name__}.{module}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:
            raise
        raise ConfigError(f"source {name!r} is not available in this version of streamkit") from None


def get_source(name: str, **options: Any) -> Source:
    """The :class:`Source` (writer side) registered as ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`SOURCES`.
    **options
        Passed to the Source class (client-side filters, for instance).

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    return source_module(name).SOURCE_CLASS(**options)


def open_source(name: str, **options: Any) -> tuple[Endpoint, Source]:
    """The endpoint and decoder of source ``name`` for these options.

    Parameters
    ----------
    name : str
        A key of :data:`SOURCES`.
    **options
        The source's own options (see its module's ``open_source``); ``base_url`` points it
        at a compatible server.

    Raises
    ------
    ConfigError
        For an unknown source, an option the source does not take, or a bad value.

    Examples
    --------
    >>> open_source("twitter-v1.1", colour="red")
    Traceback (most recent call last):
    ...
    streamkit._exceptions.ConfigError: source 'twitter-v1.1' has no option 'colour'; its options: base_url, track, follow, locations, languages, filter_level, stall_warnings, sample
    """
    module = source_module(name)
    opener = module.open_source
    params = inspect.signature(opener).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params]
    if unknown and not takes_any:
        names = ", ".join(p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY)
        plural = "s" if len(unknown) > 1 else ""
        raise ConfigError(
            f"source {name!r} has no option{plural} {', '.join(map(repr, unknown))}; its options: {names}"
        )
    return opener(**options)


def cli_options(name: str) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """The ``streamkit collect --source NAME`` options of source ``name``."""
    return list(getattr(source_module(name), "CLI_OPTIONS", []))


def takes_option(name: str, option: str) -> bool:
    """Whether source ``name``'s :func:`open_source` takes ``option``.

    Examples
    --------
    >>> takes_option("jetstream", "track"), takes_option("wikimedia", "track")
    (True, False)
    """
    return option in inspect.signature(source_module(name).open_source).parameters


def is_credential(option: str) -> bool:
    """Whether a source option carries a secret (``bearer_token``, Mastodon's ``token``):
    shown as ``***``, never typed into a visible panel box, kept across a panel restart.

    Examples
    --------
    >>> is_credential("bearer_token"), is_credential("token"), is_credential("tag")
    (True, True, False)
    """
    return option.endswith(("token", "secret"))
