"""The live sources streamkit captures, each behind the contract in :mod:`.base`.

A new source is one new module here: an :class:`~.base.Endpoint` (how the reader thread
reaches it) and a :class:`~.base.Source` (how its messages land in the dataset).

Examples
--------
>>> from streamkit.sources import Endpoint, Source
>>> Source.can_replay
False
"""

from __future__ import annotations

from .base import Endpoint, Request, Source

__all__ = ["Endpoint", "Request", "Source"]
