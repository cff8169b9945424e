"""read() applies every source's versions and in-stream deletes (the Source contract in
streamkit.sources.base: version_column, identity_columns, deleted_items), on datasets written
by the real DatasetWriter with each source's own decoder from documented message shapes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

import streamkit
from streamkit.cli import summarize
from streamkit.sink import DatasetWriter, read, read_events
from streamkit.sources import SOURCES, get_source
from streamkit.sources.base import Source
from streamkit.sources.jetstream import JetstreamSource
from streamkit.sources.mastodon import MastodonSource, read_statuses

FIXTURES = Path(__file__).parent / "fixtures"
T0 = 1_733_000_000_000_000  # received_at, microseconds


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


class Writer:
    """A DatasetWriter with a running write-ahead sequence number."""

    def __init__(self, path: Path, decoder: Source) -> None:
        self.ds = DatasetWriter(path, decoder=decoder)
        self.seq = 0

    def commit(self, *messages: bytes) -> None:
        n = len(messages)
        result = self.ds.commit(self.seq, self.seq + n - 1, list(messages), [T0 + self.seq + i for i in range(n)])
        assert not result.rejected, result.rejected
        self.seq += n


def test_every_source_declares_the_contract():
    for name in SOURCES:
        src = get_source(name)
        assert set(src.identity_columns) <= set(src.key_columns)
        assert src.version_column is None or src.version_column in src.key_columns
        assert set(src.key_columns) == set(src.identity_columns) | ({src.version_column} - {None})
        for column in src.key_columns:
            assert column in src.item_schema.names
    assert get_source("mastodon").version_column == "edited_at"
    assert get_source("mastodon").identity_columns == ("instance", "id")
    assert get_source("jetstream").version_column == "rev"
    assert get_source("jetstream").identity_columns == ("did", "collection", "rkey")
    assert get_source("twitter-v1.1").identity_columns == ("id",)
    # X v2 and Wikimedia send no in-stream deletes and no versions of one key
    for name in ("x-v2", "wikimedia"):
        src = get_source(name)
        assert src.version_column is None and src.deleted_items(None) is None
        assert type(src).deleted_items is Source.deleted_items


# -- Mastodon: (instance, id, edited_at); delete events (instance, status_id) -------------------

def mastodon_status(sid: str, text: str, *, edited_at: str | None = None) -> dict:
    s = copy.deepcopy(fixture("mastodon_status"))
    s["id"], s["content"], s["edited_at"] = sid, f"<p>{text}</p>", edited_at
    return s


def sse(event: str, payload) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"event: {event}\ndata: {data}".encode()


def write_mastodon(path: Path, instance: str | None = "mastodon.social") -> None:
    w = Writer(path, MastodonSource(instance=instance))
    w.commit(*(sse("update", mastodon_status(i, f"{i} v0")) for i in ("1001", "1002", "1003", "1004")))
    w.commit(sse("status.update", mastodon_status("1001", "1001 v2", edited_at="2024-01-01T10:00:02.000Z")),
             sse("delete", "1002"))
    # an older edit that arrives late: the newest edited_at wins, not the latest to arrive
    w.commit(sse("status.update", mastodon_status("1001", "1001 v1", edited_at="2024-01-01T10:00:01.000Z")),
             sse("status.update", mastodon_status("1003", "1003 v1", edited_at="2024-01-01T11:00:00.000Z")),
             sse("update", mastodon_status("1005", "1005 v0")),
             sse("delete", "9999"))  # a status never seen


def test_mastodon_newest_version_without_deleted(tmp_path):
    write_mastodon(tmp_path)
    df = read(tmp_path)
    assert df["id"].tolist() == ["1001", "1003", "1004", "1005"]
    assert df["text"].tolist() == ["1001 v2", "1003 v1", "1004 v0", "1005 v0"]
    assert df["event"].tolist() == ["status.update", "status.update", "update", "update"]
    # read_statuses is the same call under its Mastodon name
    pd.testing.assert_frame_equal(read_statuses(tmp_path), df)
    # the rows stored are untouched: every version is there
    assert len(read(tmp_path, all_versions=True, include_deleted=True)) == 8


def test_mastodon_include_deleted_and_all_versions(tmp_path):
    write_mastodon(tmp_path)
    kept = read(tmp_path, include_deleted=True)
    assert kept["id"].tolist() == ["1001", "1002", "1003", "1004", "1005"]
    assert kept.loc[kept["id"] == "1002", "text"].tolist() == ["1002 v0"]
    history = read(tmp_path, all_versions=True)
    assert list(zip(history["id"], history["text"], strict=True)) == [
        ("1001", "1001 v0"), ("1001", "1001 v1"), ("1001", "1001 v2"),  # the original first
        ("1003", "1003 v0"), ("1003", "1003 v1"), ("1004", "1004 v0"), ("1005", "1005 v0")]
    assert history["edited_at"].isna().tolist() == [True, False, False, True, False, True, True]
    everything = read_statuses(tmp_path, all_versions=True, include_deleted=True)
    assert everything["text"].tolist()[3] == "1002 v0" and len(everything) == 8


def test_mastodon_columns_apply_versions_and_deletes(tmp_path):
    write_mastodon(tmp_path)
    small = read(tmp_path, columns=["text", "account_acct"])
    assert list(small.columns) == ["text", "account_acct"]
    assert small["text"].tolist() == ["1001 v2", "1003 v1", "1004 v0", "1005 v0"]
    history = read(tmp_path, columns=["text"], all_versions=True, include_deleted=True)
    assert list(history.columns) == ["text"] and len(history) == 8
    full = read(tmp_path)
    assert small.dtypes.astype(str).tolist() == full[["text", "account_acct"]].dtypes.astype(str).tolist()


def test_mastodon_delete_matches_within_its_instance_only(tmp_path):
    # Status ids are unique per instance only: a delete on one instance leaves another's alone.
    w = Writer(tmp_path, MastodonSource(instance="a.example"))
    w.commit(sse("update", mastodon_status("1", "on a")))
    w.ds = DatasetWriter(tmp_path, decoder=MastodonSource(instance="b.example"))
    w.commit(sse("update", mastodon_status("1", "on b")), sse("delete", "1"))
    assert read(tmp_path)["text"].tolist() == ["on a"]
    assert read(tmp_path, include_deleted=True)["instance"].tolist() == ["a.example", "b.example"]


def test_mastodon_without_instance_still_applies_deletes(tmp_path):
    # The decoder stores a status with instance "" and a delete with instance null.
    write_mastodon(tmp_path, instance=None)
    assert read_events(tmp_path)["instance"].isna().all()
    assert read(tmp_path)["id"].tolist() == ["1001", "1003", "1004", "1005"]


def test_mastodon_empty_and_events_only(tmp_path):
    DatasetWriter(tmp_path / "empty", decoder=MastodonSource(instance="m"))
    w = Writer(tmp_path / "deletes", MastodonSource(instance="m"))
    w.commit(sse("delete", "1"))
    schema = MastodonSource.item_schema
    for path in (tmp_path / "empty", tmp_path / "deletes"):
        for options in ({}, {"all_versions": True}, {"include_deleted": True}):
            df = read(path, **options)
            assert len(df) == 0 and list(df.columns) == schema.names
    assert list(read(tmp_path / "empty", columns=["id", "edited_at"]).columns) == ["id", "edited_at"]


def test_mastodon_inspect_counts_as_read(tmp_path):
    write_mastodon(tmp_path)
    s = summarize(tmp_path)
    assert s["rows"] == len(read(tmp_path)) == 4 and s["stored_rows"] == 8
    from streamkit.cli import _format_summary

    text = _format_summary(s)
    assert "4 statuses (as read(): the newest version of each item, deleted left out; 8 rows stored" in text


# -- Jetstream: (did, collection, rkey, rev); post deletes (did, collection, rkey) at a rev --------

def js(name: str, **commit) -> bytes:
    e = copy.deepcopy(fixture(f"jetstream_{name}"))
    e["commit"].update(commit)
    return json.dumps(e).encode()


def write_jetstream(path: Path) -> dict[str, str]:
    post, reply, quote = fixture("jetstream_post"), fixture("jetstream_post_reply"), fixture("jetstream_post_quote")
    rkeys = {"post": post["commit"]["rkey"], "reply": reply["commit"]["rkey"], "quote": quote["commit"]["rkey"]}
    w = Writer(path, JetstreamSource())
    # The post's delete (rev 3l3qo4zkqbk2b) first, its create and update (older revs) after:
    # the delete still wins, whatever the order of arrival.
    w.commit(js("post_delete"), js("post_quote"))
    w.commit(js("post"), js("post_update"), js("post_reply"))
    reply_delete = {"kind": "commit", "did": reply["did"], "time_us": reply["time_us"] + 1,
                    "commit": {"rev": "3l3qo5aaaaa2f", "operation": "delete",
                               "collection": "app.bsky.feed.post", "rkey": rkeys["reply"]}}
    # the same record key created again after its delete (a newer rev): a live post again
    again = copy.deepcopy(reply)
    again["commit"].update(rev="3l3qo6aaaaa2f")
    again["commit"]["record"]["text"] = "posted again"
    w.commit(json.dumps(reply_delete).encode(), json.dumps(again).encode())
    return rkeys


def test_jetstream_newest_revision_without_deleted(tmp_path):
    rkeys = write_jetstream(tmp_path)
    df = read(tmp_path)
    assert len(read(tmp_path, all_versions=True, include_deleted=True)) == 5  # every revision stored
    got = {(r, rev): text for r, rev, text in zip(df["rkey"], df["rev"], df["text"], strict=True)}
    assert set(got) == {(rkeys["quote"], fixture("jetstream_post_quote")["commit"]["rev"]),
                        (rkeys["reply"], "3l3qo6aaaaa2f")}
    assert got[(rkeys["reply"], "3l3qo6aaaaa2f")] == "posted again"
    keys = list(zip(df["did"], df["collection"], df["rkey"], strict=True))
    assert keys == sorted(keys)  # sorted by identity
    assert df["collection"].eq("app.bsky.feed.post").all()


def test_jetstream_include_deleted_and_all_versions(tmp_path):
    rkeys = write_jetstream(tmp_path)
    kept = read(tmp_path, include_deleted=True)
    by_rkey = dict(zip(kept["rkey"], zip(kept["rev"], kept["text"], strict=True), strict=True))
    assert by_rkey[rkeys["post"]] == ("3l3qo43ivnc2b", "Reading the #atproto spec (edited)")  # the update
    assert by_rkey[rkeys["reply"]][0] == "3l3qo6aaaaa2f" and len(kept) == 3
    history = read(tmp_path, all_versions=True)
    # the reply's first revision was deleted; the one created after the delete stays
    assert sorted(zip(history["rkey"], history["rev"], strict=True)) == sorted([
        (rkeys["quote"], fixture("jetstream_post_quote")["commit"]["rev"]), (rkeys["reply"], "3l3qo6aaaaa2f")])
    everything = read(tmp_path, all_versions=True, include_deleted=True)
    post_revs = everything.loc[everything["rkey"] == rkeys["post"], "rev"].tolist()
    assert post_revs == ["3l3qo2vutsw2b", "3l3qo43ivnc2b"]  # oldest first
    assert everything.loc[everything["rkey"] == rkeys["post"], "operation"].tolist() == ["create", "update"]


def test_jetstream_columns_and_empty(tmp_path):
    write_jetstream(tmp_path / "d")
    small = read(tmp_path / "d", columns=["uri", "text"])
    assert list(small.columns) == ["uri", "text"] and len(small) == 2
    assert "posted again" in small["text"].tolist()
    DatasetWriter(tmp_path / "empty", decoder=JetstreamSource())
    for options in ({}, {"all_versions": True, "include_deleted": True}):
        df = read(tmp_path / "empty", **options)
        assert len(df) == 0 and list(df.columns) == JetstreamSource.item_schema.names
    s = summarize(tmp_path / "d")
    assert s["rows"] == 2 and s["stored_rows"] == 5


# -- sources without versions or deletes: every stored row ---------------------------------------

def test_x_v2_and_wikimedia_read_every_row(tmp_path):
    tweet = json.dumps(fixture("x_v2_filtered_tweet")).encode()
    retweet = json.dumps(fixture("x_v2_retweet")).encode()
    x = Writer(tmp_path / "x", get_source("x-v2"))
    x.commit(tweet, retweet, tweet)  # a duplicate: the writer drops it
    assert len(read(tmp_path / "x")) == 2 == summarize(tmp_path / "x")["rows"]
    edit = fixture("wikimedia_recentchange_edit")
    block = f"event: message\nid: {edit['id']}\ndata: {json.dumps(edit['data'])}".encode()
    wm = Writer(tmp_path / "wm", get_source("wikimedia"))
    wm.commit(block)
    df = read(tmp_path / "wm")
    assert df["meta_id"].tolist() == [edit["data"]["meta"]["id"]]
    assert read(tmp_path / "wm", all_versions=True, include_deleted=True).equals(df)


def test_a_custom_source_can_declare_deletes_without_versions(tmp_path):
    # Twitter v1.1 is such a source; its behaviour through the contract is the old one.
    status = {"id": 7, "id_str": "7", "created_at": "Wed Oct 10 20:19:24 +0000 2018", "text": "x",
              "user": {"id": 2, "screen_name": "ada"}, "in_reply_to_status_id": None}
    w = Writer(tmp_path, get_source("twitter-v1.1"))
    w.commit(json.dumps({"delete": {"status": {"id": 8, "user_id": 2}}}).encode(),
             json.dumps(status).encode(), json.dumps({**status, "id": 8, "id_str": "8"}).encode())
    assert streamkit.read(tmp_path)["id"].tolist() == [7]
    assert streamkit.read(tmp_path, include_deleted=True, all_versions=True)["id"].tolist() == [7, 8]
    assert summarize(tmp_path)["rows"] == 1


@pytest.mark.parametrize("bad", [["nope"], ["text", "edited"]])
def test_unknown_columns_still_rejected(tmp_path, bad):
    write_mastodon(tmp_path)
    with pytest.raises(streamkit.ConfigError, match="Unknown column"):
        read(tmp_path, columns=bad, all_versions=True)
