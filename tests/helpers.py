"""Helpers shared by several test modules (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as pads

from streamkit import schema
from streamkit.testing import StreamServer


def wait_until(predicate, timeout: float, interval: float) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; a last try at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def visible_ids(path: Path) -> list[int]:
    """Ids as pandas, pyarrow and DuckDB see them; they must agree (and not fail)."""
    tweets = path / "tweets"
    if not any(tweets.rglob("*.parquet")):
        return []
    by_arrow = pads.dataset(tweets, format="parquet", partitioning="hive").to_table(columns=["id"])
    by_pandas = pd.read_parquet(tweets, columns=["id"])
    con = duckdb.connect()
    try:
        by_duck = con.sql(
            f"select id from read_parquet('{tweets.as_posix()}/**/*.parquet', hive_partitioning=true)"
        ).fetchall()
    finally:
        con.close()
    ids = sorted(by_arrow.column("id").to_pylist())
    assert sorted(by_pandas["id"].tolist()) == ids == sorted(x[0] for x in by_duck)
    assert by_arrow.schema.field("id").type == schema.TWEET_SCHEMA.field("id").type
    return ids


def settled(server: StreamServer, quiet: float) -> list[int]:
    """``server.sent`` once no send has completed for ``quiet`` seconds (the killed socket is gone)."""
    last, since = len(server.sent), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.02)
        if len(server.sent) != last:
            last, since = len(server.sent), time.monotonic()
    return server.sent
