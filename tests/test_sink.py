"""The Parquet dataset: real files in tmp_path; crashes injected at every step of a commit."""

from __future__ import annotations

import json
import os
import threading

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import streamkit.sink as sink
from streamkit import ConfigError, SinkError, schema
from streamkit.sink import CommitResult, DatasetWriter, read, read_events
from streamkit.wal import WriteAheadLog

try:
    from streamkit.testing import generate_statuses
except ImportError:  # pragma: no cover - the generator lives in another module
    generate_statuses = None

T0 = 1_540_000_000_000_000  # 2018-10-20 01:46:40 UTC
OCT10 = "Wed Oct 10 20:19:24 +0000 2018"
OCT11 = "Thu Oct 11 00:00:01 +0000 2018"


def status(i, created_at=OCT10, text=None, **extra):
    obj = {
        "id": i, "id_str": str(i), "created_at": created_at, "text": text or f"tweet {i}",
        "user": {"id": 1000 + i % 7, "screen_name": f"user{i % 7}"},
        "in_reply_to_status_id": None, **extra,
    }
    if created_at is None:
        del obj["created_at"]
    return json.dumps(obj).encode()


def delete(i, user=2):
    return json.dumps({"delete": {"status": {"id": i, "id_str": str(i), "user_id": user,
                                             "user_id_str": str(user)},
                                  "timestamp_ms": "1540000000000"}}).encode()


def realistic(n, seed=0):
    if generate_statuses is None:  # pragma: no cover - a stand-in until streamkit.testing has it
        base = 10**18 + seed * 10**6
        return [
            status(base + i, text=f"#tag{i % 5} words {'x' * (i % 200)}", lang="en",
                   entities={"hashtags": [{"text": f"tag{i % 5}"}], "urls": [], "user_mentions": []},
                   coordinates={"type": "Point", "coordinates": [i / 100, 10.0]} if i % 9 == 0 else None)
            for i in range(n)
        ]
    return [json.dumps(s).encode() for s in generate_statuses(n, seed=seed)]


def all_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def part_files(root):
    return [f for f in all_files(root)
            if f.startswith(("tweets/", "events/")) and f.rpartition("/")[2].startswith("part-")]


def stored_rows(root):
    """Every tweet row in the part files, without read()'s defensive dedupe."""
    return pads.dataset(root / "tweets", format="parquet", partitioning="hive").to_table()


def commit_all(ds, wal, batches):
    out = []
    for messages in batches:
        first, last = wal.append(messages, T0)
        out.append(ds.commit(first, last, messages, [T0] * len(messages)))
    return out


# -- committing ----------------------------------------------------------------------------


def test_commit_writes_one_file_per_date_named_by_sequence(tmp_path):
    ds = DatasetWriter(tmp_path)
    messages = [status(1), status(2, OCT11), delete(99), status(3), b"{not json"]
    result = ds.commit(0, 4, messages, [T0] * 5)
    assert isinstance(result, CommitResult)
    assert (result.tweets, result.duplicates, result.events) == (3, 0, 1)
    assert result.rejected == {"malformed_json": 1}
    assert (result.first_seq, result.last_seq, ds.committed_seq) == (0, 4, 4)
    name = "part-000000000000-000000000004.parquet"
    expected = [
        f"events/date=2018-10-20/{name}",  # events go by the day received
        f"tweets/date=2018-10-10/{name}",
        f"tweets/date=2018-10-11/{name}",
    ]
    assert part_files(tmp_path) == expected
    assert sorted(p.relative_to(tmp_path).as_posix() for p in result.files) == expected
    assert not [f for f in all_files(tmp_path) if f.endswith(".tmp")]
    checkpoint = json.loads((tmp_path / "_wal" / "checkpoint.json").read_text())
    # the newest receive time of the batch, for the manifest's gap records after a restart
    assert checkpoint == {"committed_seq": 4, "received_until": 1_540_000_000_000_000}
    assert not (tmp_path / "_wal" / "pending.json").exists()
    oct10 = pq.read_table(tmp_path / "tweets" / "date=2018-10-10" / name)
    assert oct10.column("id").to_pylist() == [1, 3]


def test_a_tweet_without_created_at_is_filed_under_the_day_received(tmp_path):
    DatasetWriter(tmp_path).commit(0, 0, [status(5, created_at=None)], [T0])
    assert part_files(tmp_path) == ["tweets/date=2018-10-20/part-000000000000-000000000000.parquet"]
    assert read(tmp_path)["id"].tolist() == [5]


def test_files_keep_the_explicit_schema_even_when_a_batch_is_all_null(tmp_path):
    ds = DatasetWriter(tmp_path)
    ds.commit(0, 0, [status(1)], [T0])  # no hashtags, place, coordinates, ...
    (path,) = (tmp_path / "tweets").rglob("*.parquet")
    file_schema = pq.read_schema(path)
    assert file_schema.names == schema.TWEET_SCHEMA.names
    assert [f.type for f in file_schema] == [f.type for f in schema.TWEET_SCHEMA]
    meta = pq.read_metadata(path)
    assert meta.row_group(0).column(file_schema.get_field_index("latitude")).statistics.null_count == 1
    assert not list((tmp_path / "events").rglob("*.parquet"))  # no events: no empty file


def test_parquet_metadata_carries_provenance_but_no_credentials(tmp_path):
    source = {
        "url": "https://user:pw@stream.twitter.com/1.1/statuses/filter.json?track=x&oauth_token=SECRET1",
        "endpoint": "filter",
        "access_token_secret": "SECRET2",
        "auth": {"bearer_token": "SECRET3", "kind": "oauth1"},
    }
    ds = DatasetWriter(tmp_path, source=source)
    result = ds.commit(0, 1, [status(1), delete(1)], [T0, T0])
    for path in result.files:
        meta = json.loads(pq.read_schema(path).metadata[b"streamkit"])
        assert meta["schema_version"] == schema.SCHEMA_VERSION
        assert meta["library_version"]
        assert meta["source"]["url"] == "https://stream.twitter.com/1.1/statuses/filter.json?track=x"
        assert (meta["first_seq"], meta["last_seq"]) == (0, 1)
    everything = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in (b"SECRET1", b"SECRET2", b"SECRET3", b"user:pw"):
        assert secret not in everything
    assert "SECRET" not in repr(ds) and "SECRET" not in json.dumps(ds.manifest)


def test_keep_raw_false_stores_no_raw_json(tmp_path):
    DatasetWriter(tmp_path, keep_raw=False).commit(0, 0, [status(1)], [T0])
    assert read(tmp_path)["raw"].isna().all()
    DatasetWriter(tmp_path / "b").commit(0, 0, [status(1)], [T0])
    assert json.loads(read(tmp_path / "b")["raw"][0])["id"] == 1


# -- dedupe --------------------------------------------------------------------------------


def test_dedupe_within_a_batch_keeps_the_first_occurrence(tmp_path):
    ds = DatasetWriter(tmp_path)
    result = ds.commit(0, 3, [status(1, text="first"), status(2), status(1, text="again"), status(2)],
                       [T0] * 4)
    assert (result.tweets, result.duplicates) == (2, 2)
    rows = stored_rows(tmp_path)
    assert sorted(zip(rows["id"].to_pylist(), rows["text"].to_pylist(), strict=True)) == [(1, "first"), (2, "tweet 2")]


def test_dedupe_across_commits_and_across_a_restart(tmp_path):
    ds = DatasetWriter(tmp_path)
    ds.commit(0, 2, [status(1), status(2), status(3)], [T0] * 3)
    result = ds.commit(3, 5, [status(3), status(4), status(1)], [T0] * 3)
    assert (result.tweets, result.duplicates) == (1, 2)
    reopened = DatasetWriter(tmp_path)  # the window is seeded from the newest part files
    assert reopened.committed_seq == 5
    result = reopened.commit(6, 8, [status(2), status(5), status(4)], [T0] * 3)
    assert (result.tweets, result.duplicates) == (1, 2)
    assert sorted(stored_rows(tmp_path)["id"].to_pylist()) == [1, 2, 3, 4, 5]


def test_without_a_window_read_still_returns_one_row_per_id(tmp_path):
    ds = DatasetWriter(tmp_path, dedupe_window=0)
    ds.commit(0, 0, [status(1, text="first")], [T0])
    assert ds.commit(1, 1, [status(1, text="second")], [T0]).duplicates == 0
    assert stored_rows(tmp_path).num_rows == 2
    df = read(tmp_path)
    assert df["id"].tolist() == [1]


def test_the_id_window_is_bounded_and_forgets_the_oldest_first():
    window = sink._IdWindow(1000)
    for start in range(0, 10_000, 100):
        window.add(np.arange(start, start + 100, dtype=np.int64))
        assert len(window) <= 1000 + 1000 // 8 + 100
    found = window.contains(np.array([0, 5000, 9000, 9999, 12_345], dtype=np.int64))
    assert found.tolist() == [False, False, True, True, False]
    assert window.contains(np.arange(9000, 10_000, dtype=np.int64)).all()


# -- reading -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def polars_started(tmp_path_factory):
    """Polars opens its process-wide I/O runtime (three descriptors, kept for the process
    lifetime) on its first read: start it before the per-test descriptor check looks."""
    path = tmp_path_factory.mktemp("polars") / "warm.parquet"
    pq.write_table(pa.table({"a": [1]}), path)
    pl.read_parquet(path)


def test_pandas_pyarrow_duckdb_and_polars_see_the_same_rows_and_types(tmp_path, polars_started):
    ds = DatasetWriter(tmp_path)
    with WriteAheadLog(ds.wal_dir) as wal:
        commit_all(ds, wal, [realistic(300, seed=1), realistic(200, seed=2) + [status(7, OCT11)]])
    tweets = tmp_path / "tweets"
    expected = read(tmp_path, include_deleted=True)
    assert len(expected) == expected["id"].nunique() > 400

    by_pandas = pd.read_parquet(tweets)
    by_arrow = pads.dataset(tweets, format="parquet", partitioning="hive").to_table()
    glob = f"read_parquet('{tweets.as_posix()}/**/*.parquet', hive_partitioning=true)"
    con = duckdb.connect()
    try:
        by_duck = con.sql(f"SELECT * FROM {glob}").to_arrow_table()
        created = con.execute(f"SELECT min(created_at), count(DISTINCT date) FROM {glob}").fetchall()[0]
    finally:
        con.close()
    by_polars = pl.read_parquet(f"{tweets.as_posix()}/**/*.parquet", hive_partitioning=True)
    names = schema.TWEET_SCHEMA.names
    for columns in (list(by_pandas.columns), by_arrow.column_names, by_duck.column_names,
                    by_polars.columns):
        assert [c for c in columns if c != "date"] == names
    assert [by_arrow.schema.field(n).type for n in names] == [f.type for f in schema.TWEET_SCHEMA]
    ids = sorted(expected["id"].tolist())
    assert sorted(by_pandas["id"].tolist()) == ids
    assert sorted(by_arrow["id"].to_pylist()) == ids
    assert sorted(by_duck["id"].to_pylist()) == ids
    assert sorted(by_polars["id"].to_list()) == ids
    texts = dict(zip(expected["id"].tolist(), expected["text"].tolist(), strict=True))
    assert dict(zip(by_duck["id"].to_pylist(), by_duck["text"].to_pylist(), strict=True)) == texts
    assert dict(zip(by_polars["id"].to_list(), by_polars["text"].to_list(), strict=True)) == texts
    assert created[0] == expected["created_at"].min().to_pydatetime()
    assert created[1] == expected["created_at"].dt.date.nunique()


def test_read_returns_researcher_dtypes_sorted_by_id(tmp_path):
    ds = DatasetWriter(tmp_path)
    ds.commit(0, 2, [status(30), status(10), status(20)], [T0] * 3)
    df = read(tmp_path)
    assert df["id"].tolist() == [10, 20, 30]
    expected = schema.empty_tweets()
    assert list(df.columns) == list(expected.columns)
    assert df.dtypes.astype(str).tolist() == expected.dtypes.astype(str).tolist()
    small = read(tmp_path, columns=["text", "created_at"])
    assert list(small.columns) == ["text", "created_at"] and len(small) == 3
    with pytest.raises(ConfigError, match="nope"):
        read(tmp_path, columns=["id", "nope"])


def test_read_drops_deleted_tweets_unless_asked(tmp_path):
    ds = DatasetWriter(tmp_path)
    ds.commit(0, 2, [status(1), status(2), status(3)], [T0] * 3)
    ds.commit(3, 4, [delete(2), delete(12345)], [T0] * 2)  # a later notice, one for an unseen tweet
    assert read(tmp_path)["id"].tolist() == [1, 3]
    assert read(tmp_path, include_deleted=True)["id"].tolist() == [1, 2, 3]
    events = read_events(tmp_path)
    assert events["event_type"].tolist() == ["delete", "delete"]
    assert events["status_id"].tolist() == [2, 12345]


def test_reading_an_empty_or_missing_dataset(tmp_path):
    DatasetWriter(tmp_path / "empty")
    df = read(tmp_path / "empty")
    expected = schema.empty_tweets()
    assert len(df) == 0 and list(df.columns) == list(expected.columns)
    assert df.dtypes.astype(str).tolist() == expected.dtypes.astype(str).tolist()
    assert read(tmp_path / "empty", columns=["id"]).columns.tolist() == ["id"]
    assert len(read_events(tmp_path / "empty")) == 0
    with pytest.raises(SinkError, match="does not exist"):
        read(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinkError, match="not a dataset folder"):
        read(tmp_path / "file")


def test_a_damaged_part_file_is_a_sink_error_on_read(tmp_path):
    DatasetWriter(tmp_path).commit(0, 0, [status(1)], [T0])
    (path,) = (tmp_path / "tweets").rglob("*.parquet")
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SinkError, match="damaged"):
        read(tmp_path)


def test_readers_never_see_half_a_batch_while_a_writer_commits(tmp_path):
    ds = DatasetWriter(tmp_path)
    batch, n_batches = 50, 30
    errors = []

    def write():
        try:
            for b in range(n_batches):
                messages = [status(b * batch + i) for i in range(batch)]
                ds.commit(b * batch, (b + 1) * batch - 1, messages, [T0] * batch)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=write, name="streamkit-test-writer", daemon=True)
    writer.start()
    seen = []
    try:
        while writer.is_alive() or not seen:
            n = len(read(tmp_path, columns=["id"]))
            assert n % batch == 0, f"saw {n} rows: part of a batch"
            seen.append(n)
    finally:
        writer.join(30)
    assert not errors
    assert seen == sorted(seen)
    assert len(read(tmp_path)) == batch * n_batches


# -- recovery ------------------------------------------------------------------------------


class Crash(BaseException):
    """A simulated process death: nothing in the library catches a BaseException."""


def inject_crash(monkeypatch, at):
    """Raise :class:`Crash` at the ``at``-th step of a commit (file write, fsync, rename, ...).

    Returns a list that receives the step names as they run.
    """
    steps = []
    real_write, real_replace = pq.write_table, os.replace
    real_json, real_fsync_dir, real_unlink = sink._write_json_atomic, sink._fsync_dir, os.unlink

    def step(name):
        steps.append(name)
        if len(steps) - 1 == at:
            raise Crash(name)

    def write_table(table, where, **kw):
        if len(steps) == at:  # die in the middle of writing: leave a half file behind
            with open(where, "wb") as f:
                f.write(b"PAR1" + b"\0" * 100)
        step("write_table")
        return real_write(table, where, **kw)

    def replace(src, dst):
        step(f"replace {os.path.basename(dst)}")
        return real_replace(src, dst)

    def write_json(path, obj, *, what):
        step(f"json {path.name}")
        return real_json(path, obj, what=what)

    def fsync_dir(path):
        step("fsync_dir")
        return real_fsync_dir(path)

    def unlink(path, *a, **kw):
        step(f"unlink {os.path.basename(path)}")
        return real_unlink(path, *a, **kw)

    monkeypatch.setattr(pq, "write_table", write_table)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(sink, "_write_json_atomic", write_json)
    monkeypatch.setattr(sink, "_fsync_dir", fsync_dir)
    monkeypatch.setattr(os, "unlink", unlink)
    return steps


BATCH_A = [status(1), status(2), status(3)]
# Two dates, a duplicate of an earlier tweet, a repeat within the batch, a delete notice.
BATCH_B = [status(4), status(5, OCT11), status(2), status(6), status(4), delete(3)]
# Received while B was being committed; it must not be merged into B's files.
BATCH_C = [status(7), status(1)]


def crashed_dataset(path, monkeypatch, at):
    """Commit A cleanly, then B and C with a crash at step ``at``; return the steps seen."""
    ds = DatasetWriter(path)
    with WriteAheadLog(ds.wal_dir) as wal:
        commit_all(ds, wal, [BATCH_A])
        ranges = [wal.append(BATCH_B, T0), wal.append(BATCH_C, T0 + 1)]
        steps = inject_crash(monkeypatch, at)
        try:
            for (first, last), batch, t in zip(ranges, (BATCH_B, BATCH_C), (T0, T0 + 1), strict=True):
                ds.commit(first, last, batch, [t] * len(batch))
        except Crash:
            pass
        finally:
            monkeypatch.undo()
    return steps


def test_recovery_after_a_crash_at_every_step_of_a_commit(tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    clean_steps = crashed_dataset(clean, monkeypatch, at=10**6)  # never crashes
    expected_files = part_files(clean)
    assert len(expected_files) == 5  # A, B on two days, B's events, C
    assert read(clean)["id"].tolist() == [1, 2, 4, 5, 6, 7]  # 3 is deleted
    assert len(clean_steps) >= 16
    for at, name in enumerate(clean_steps):
        root = tmp_path / f"crash-{at}"
        crashed_dataset(root, monkeypatch, at)
        visible = part_files(root)
        intent = (root / "_wal" / "pending.json").exists()
        # A crash during recovery itself, at the same step, must be recoverable too.
        ds = DatasetWriter(root)
        with WriteAheadLog(ds.wal_dir) as wal:
            inject_crash(monkeypatch, at)
            try:
                ds.recover(wal)
            except Crash:
                pass
            finally:
                monkeypatch.undo()
        ds = DatasetWriter(root)
        with WriteAheadLog(ds.wal_dir) as wal:
            ds.recover(wal)
            assert ds.committed_seq == wal.next_seq - 1 == 10, name
        where = f"crash at step {at} ({name})"
        rows = stored_rows(root)
        assert sorted(rows["id"].to_pylist()) == [1, 2, 3, 4, 5, 6, 7], where
        # Names never change once visible; with the intent record on disk the
        # interrupted batch keeps its exact range, so every name is as in a clean run.
        assert set(visible) <= set(part_files(root)), where
        if intent:
            assert part_files(root) == expected_files, where
        assert len(part_files(root)) == len(set(part_files(root)))
        assert not [f for f in all_files(root) if f.endswith(".tmp")], where
        assert not (root / "_wal" / "pending.json").exists(), where
        assert read(root).equals(read(clean)), where


def test_a_stray_temporary_file_and_a_stale_intent_record_are_cleaned_up(tmp_path):
    ds = DatasetWriter(tmp_path)
    ds.commit(0, 0, [status(1)], [T0])
    folder = tmp_path / "tweets" / "date=2018-10-10"
    (folder / ".part-000000000001-000000000001.parquet.tmp").write_bytes(b"half")
    (tmp_path / "_wal" / "pending.json").write_text('{"first": 0, "last": 0}')
    ds = DatasetWriter(tmp_path)
    assert not list(folder.glob(".*.tmp"))
    with WriteAheadLog(ds.wal_dir) as wal:
        assert ds.recover(wal) == []
    assert not (tmp_path / "_wal" / "pending.json").exists()
    assert read(tmp_path)["id"].tolist() == [1]


def test_recover_commits_everything_the_log_holds_and_releases_it(tmp_path):
    ds = DatasetWriter(tmp_path)
    with WriteAheadLog(ds.wal_dir, segment_bytes=4096) as wal:
        for b in range(5):  # received, never committed (the writer died)
            wal.append([status(b * 10 + i) for i in range(10)], T0 + b)
        segments_before = len(list(ds.wal_dir.glob("wal-*.log")))
    ds = DatasetWriter(tmp_path)
    with WriteAheadLog(ds.wal_dir, segment_bytes=4096) as wal:
        results = ds.recover(wal)
        assert sum(r.tweets for r in results) == 50
        assert ds.committed_seq == 49
        assert len(list(ds.wal_dir.glob("wal-*.log"))) < segments_before
        assert ds.recover(wal) == []  # nothing left: idempotent
        assert wal.append([status(999)], T0) == (50, 50)
    assert read(tmp_path)["id"].tolist() == list(range(50))
    received = read(tmp_path)["received_at"]
    assert received.iloc[0].value // 1000 == T0 and received.iloc[-1].value // 1000 == T0 + 4


def test_a_lost_log_never_reuses_sequence_numbers(tmp_path):
    ds = DatasetWriter(tmp_path)
    with WriteAheadLog(ds.wal_dir) as wal:
        commit_all(ds, wal, [[status(1), status(2)]])
    for segment in ds.wal_dir.glob("wal-*.log"):
        segment.unlink()
    ds = DatasetWriter(tmp_path)
    with WriteAheadLog(ds.wal_dir) as wal:
        assert wal.next_seq == 0
        ds.recover(wal)
        assert wal.next_seq == 2
        commit_all(ds, wal, [[status(3)]])
    assert part_files(tmp_path)[-1].endswith("part-000000000002-000000000002.parquet")
    assert read(tmp_path)["id"].tolist() == [1, 2, 3]


def test_an_interrupted_batch_missing_from_the_log_keeps_its_complete_files(tmp_path, monkeypatch):
    steps = crashed_dataset(tmp_path / "clean", monkeypatch, at=10**6)
    after_first_file = steps.index("replace part-000000000003-000000000008.parquet") + 1
    crashed_dataset(tmp_path / "crash", monkeypatch, at=after_first_file)
    tmp_path = tmp_path / "crash"
    kept = part_files(tmp_path)
    assert len(kept) == 2  # batch A and one file of batch B
    for segment in (tmp_path / "_wal").glob("wal-*.log"):
        segment.unlink()
    ds = DatasetWriter(tmp_path)
    with WriteAheadLog(ds.wal_dir) as wal:
        assert ds.recover(wal) == []
        assert ds.committed_seq == 8 and wal.next_seq == 9  # C was lost with the log too
    assert part_files(tmp_path) == kept
    assert not (tmp_path / "_wal" / "pending.json").exists()


def test_commit_ranges_are_checked(tmp_path):
    ds = DatasetWriter(tmp_path)
    ds.commit(0, 1, [status(1), status(2)], [T0] * 2)
    again = ds.commit(0, 1, [status(1), status(2)], [T0] * 2)  # a retry after success
    assert (again.tweets, again.files) == (0, [])
    with pytest.raises(SinkError, match="overlaps"):
        ds.commit(1, 2, [status(3), status(4)], [T0] * 2)
    with pytest.raises(ConfigError):
        ds.commit(2, 3, [status(3)], [T0] * 2)
    with pytest.raises(ConfigError):
        ds.commit(2, 2, [status(3), status(4)], [T0] * 2)


def test_commit_decoded_matches_commit(tmp_path):
    messages = [status(1), status(2, OCT11), delete(1), status(1)]
    a = DatasetWriter(tmp_path / "a").commit(0, 3, messages, [T0] * 4)
    batch = schema.decode_batch(messages, received_at_us=[T0] * 4)
    b = DatasetWriter(tmp_path / "b").commit_decoded(0, 3, batch)
    assert (a.tweets, a.duplicates, a.events) == (b.tweets, b.duplicates, b.events) == (2, 1, 1)
    assert part_files(tmp_path / "a") == part_files(tmp_path / "b")
    assert read(tmp_path / "a", include_deleted=True).equals(read(tmp_path / "b", include_deleted=True))


# -- errors --------------------------------------------------------------------------------


def test_a_file_in_the_way_of_the_dataset_is_a_sink_error(tmp_path):
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(SinkError, match="file is in the way") as info:
        DatasetWriter(tmp_path / "blocker" / "data")
    assert isinstance(info.value.__cause__, OSError)
    assert "blocker" in str(info.value)


def test_a_failed_commit_is_a_sink_error_and_can_be_retried(tmp_path):
    ds = DatasetWriter(tmp_path)
    ds.commit(0, 0, [status(1, OCT11)], [T0])
    (tmp_path / "tweets" / "date=2018-10-10").write_text("a file where a partition goes")
    messages = [status(2, OCT11), status(3), delete(1)]
    with pytest.raises(SinkError, match=r"date=2018-10-10.*file is in the way") as info:
        ds.commit(1, 3, messages, [T0] * 3)
    assert isinstance(info.value.__cause__, OSError)
    assert ds.committed_seq == 0
    (tmp_path / "tweets" / "date=2018-10-10").unlink()
    result = ds.commit(1, 3, messages, [T0] * 3)
    assert (result.tweets, result.events) == (2, 1)
    assert sorted(stored_rows(tmp_path)["id"].to_pylist()) == [1, 2, 3]
    assert read(tmp_path)["id"].tolist() == [2, 3]


@pytest.mark.parametrize("codec", ["snappy", None, "gzip"])
def test_other_codecs_work_with_the_default_level(tmp_path, codec):
    DatasetWriter(tmp_path, compression=codec).commit(0, 0, [status(1)], [T0])
    (path,) = (tmp_path / "tweets").rglob("*.parquet")
    expected = "UNCOMPRESSED" if codec is None else codec.upper()
    assert pq.read_metadata(path).row_group(0).column(0).compression == expected
    assert read(tmp_path)["id"].tolist() == [1]


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="compression"):
        DatasetWriter(tmp_path, compression="nope")
    with pytest.raises(ConfigError):
        DatasetWriter(tmp_path, dedupe_window=-1)


# -- manifest ------------------------------------------------------------------------------


def test_manifest_records_versions_source_and_filters(tmp_path):
    ds = DatasetWriter(tmp_path, source={"url": "http://127.0.0.1:8080/1.1/statuses/filter.json"})
    manifest = json.loads((tmp_path / "streamkit.json").read_text())
    assert manifest == ds.manifest
    assert manifest["format"] == "streamkit"
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["library_version"] and manifest["created"].endswith("Z")
    assert manifest["filters"] == []
    ds.record_filter({"track": ["python"], "consumer_secret": "S3CRET"})
    ds.record_filter({"track": ["rust"]})
    ds.close_filter()
    ds.close_filter()  # nothing open: no change
    filters = DatasetWriter(tmp_path).manifest["filters"]
    assert [f["params"] for f in filters] == [{"track": ["python"]}, {"track": ["rust"]}]
    assert filters[0]["ended"] == filters[1]["started"]
    assert filters[1]["ended"] is not None
    assert "S3CRET" not in (tmp_path / "streamkit.json").read_text()
    ds.manifest["filters"].clear()  # a copy: the writer's own is untouched
    assert len(ds.manifest["filters"]) == 2


def test_a_dataset_of_another_schema_version_or_format_is_refused(tmp_path):
    DatasetWriter(tmp_path / "old")
    manifest_path = tmp_path / "old" / "streamkit.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "schema_version": 999}))
    with pytest.raises(SinkError, match="schema version 999"):
        DatasetWriter(tmp_path / "old")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "streamkit.json").write_text('{"format": "something-else"}')
    with pytest.raises(SinkError, match="not a streamkit manifest"):
        DatasetWriter(tmp_path / "other")
    (tmp_path / "other" / "streamkit.json").write_text("{torn")
    with pytest.raises(SinkError, match="not valid JSON"):
        DatasetWriter(tmp_path / "other")


def test_a_damaged_intent_record_still_recovers_every_row_once(tmp_path, monkeypatch):
    steps = crashed_dataset(tmp_path / "clean", monkeypatch, at=10**6)
    crash_at = steps.index("json checkpoint.json")  # every file of B written, not yet checkpointed
    root = tmp_path / "crash"
    crashed_dataset(root, monkeypatch, at=crash_at)
    assert len(part_files(root)) == 4
    (root / "_wal" / "pending.json").write_text('{"first": 3, "la')
    ds = DatasetWriter(root)
    with WriteAheadLog(ds.wal_dir) as wal:
        ds.recover(wal)  # B's files cannot be matched to a range: they go, and B is redone
    assert sorted(stored_rows(root)["id"].to_pylist()) == [1, 2, 3, 4, 5, 6, 7]
    assert read(root).equals(read(tmp_path / "clean"))


def test_leftover_files_that_neither_the_log_nor_an_intent_record_name_are_kept(tmp_path, monkeypatch):
    steps = crashed_dataset(tmp_path / "clean", monkeypatch, at=10**6)
    root = tmp_path / "crash"
    crashed_dataset(root, monkeypatch, at=steps.index("json checkpoint.json"))
    (root / "_wal" / "pending.json").unlink()
    for segment in (root / "_wal").glob("wal-*.log"):
        segment.unlink()
    kept = part_files(root)
    ds = DatasetWriter(root)
    with WriteAheadLog(ds.wal_dir) as wal:
        assert ds.recover(wal) == []
        assert ds.committed_seq == 8 and wal.next_seq == 9  # B's names are never reused
        commit_all(ds, wal, [[status(8)]])
    assert set(kept) <= set(part_files(root))
    assert sorted(stored_rows(root)["id"].to_pylist()) == [1, 2, 3, 4, 5, 6, 8]
