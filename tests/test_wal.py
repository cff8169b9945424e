"""The write-ahead log: real files in tmp_path, crashes simulated by damaging them."""

from __future__ import annotations

import errno
import logging
import os
import threading

import pytest

import streamkit.wal as wal_module
from streamkit import ConfigError, SinkError
from streamkit.wal import WriteAheadLog

T0 = 1_540_000_000_000_000


def payloads(n, start=0, size=40):
    return [(f'{{"id": {i}, "pad": "' + "x" * (size + i % 7) + '"}').encode() for i in range(start, start + n)]


def segments(directory):
    return sorted(p.name for p in directory.glob("wal-*.log"))


def test_append_assigns_consecutive_numbers_and_reads_back(tmp_path):
    with WriteAheadLog(tmp_path) as wal:
        assert wal.next_seq == 0 and wal.durable_seq == -1
        assert wal.append(payloads(3), T0) == (0, 2)
        assert wal.append(["é", b"b"], T0 + 5) == (3, 4)  # str is stored as UTF-8
        assert wal.append([], T0) == (5, 4)
        records = list(wal.read(0, 10))
        assert [r[0] for r in records] == [0, 1, 2, 3, 4]
        assert [r[1] for r in records] == [T0] * 3 + [T0 + 5] * 2
        assert [r[2] for r in records] == [*payloads(3), "é".encode(), b"b"]
        assert [r[0] for r in wal.read(2, 3)] == [2, 3]
        assert list(wal.read(7, 9)) == []


def test_numbering_and_records_survive_a_restart(tmp_path):
    with WriteAheadLog(tmp_path) as wal:
        wal.append(payloads(4), T0)
        assert wal.sync() == 3 == wal.durable_seq
    with WriteAheadLog(tmp_path) as wal:
        assert (wal.next_seq, wal.durable_seq) == (4, 3)
        assert wal.append(payloads(2, start=4), T0 + 1) == (4, 5)
        assert [r[2] for r in wal.read(0, 5)] == payloads(6)


@pytest.mark.parametrize(
    ("damage", "kept"),
    [
        pytest.param(lambda data: data[:-3], 4, id="last-payload-cut"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), 4, id="crc-mismatch"),
        pytest.param(lambda data: data + b"\x07\x00", 5, id="partial-header"),
        pytest.param(lambda data: data + b"\xff\xff\xff\x7f" + b"\x00" * 12, 5, id="absurd-length"),
        pytest.param(lambda data: data[:5], 0, id="magic-cut"),
    ],
)
def test_a_torn_tail_is_cut_at_the_last_valid_record(tmp_path, caplog, damage, kept):
    with WriteAheadLog(tmp_path) as wal:
        wal.append(payloads(5), T0)
    (segment,) = tmp_path.glob("wal-*.log")
    segment.write_bytes(damage(segment.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="streamkit.wal"):
        wal = WriteAheadLog(tmp_path)
    with wal:
        assert wal.next_seq == kept
        assert [r[2] for r in wal.read(0, 10)] == payloads(kept)
        assert "torn or corrupt tail" in caplog.text
        # New records go right after the last valid one and read back after a restart.
        assert wal.append([b"after"], T0 + 9) == (kept, kept)
    with WriteAheadLog(tmp_path) as wal:
        assert [r[2] for r in wal.read(0, 10)] == [*payloads(kept), b"after"]


def test_segments_rotate_and_release_deletes_only_committed_ones(tmp_path):
    with WriteAheadLog(tmp_path, segment_bytes=1024) as wal:
        for i in range(20):
            wal.append(payloads(5, start=5 * i), T0 + i)
        wal.sync()
        names = segments(tmp_path)
        assert len(names) > 3
        assert names[0] == "wal-00000000000000000000.log"
        # Each segment is named after its first record and the names sort in order.
        firsts = [int(n[4:-4]) for n in names]
        assert firsts == sorted(firsts)
        assert [r[2] for r in wal.read(0, 99)] == payloads(100)
        size_before = wal.bytes_on_disk
        assert size_before == sum(p.stat().st_size for p in tmp_path.glob("wal-*.log"))

        upto = firsts[2] + 1  # inside the third segment: only the first two can go
        assert wal.release(upto) == 2
        assert segments(tmp_path) == names[2:]
        assert wal.first_seq == firsts[2]
        assert wal.bytes_on_disk < size_before
        assert [r[0] for r in wal.read(0, 99)] == list(range(firsts[2], 100))

        assert wal.release(10**9) == len(names) - 3  # the newest segment is always kept
        assert segments(tmp_path) == names[-1:]
    with WriteAheadLog(tmp_path, segment_bytes=1024) as wal:
        assert wal.next_seq == 100
        assert wal.append([b"x"], T0) == (100, 100)


def test_reading_a_range_skips_released_records(tmp_path):
    with WriteAheadLog(tmp_path, segment_bytes=1024) as wal:
        for i in range(10):
            wal.append(payloads(5, start=5 * i), T0)
        released_upto = int(segments(tmp_path)[1][4:-4]) - 1
        wal.release(released_upto)
        got = [r[0] for r in wal.read(0, 49)]
        assert got == list(range(released_upto + 1, 50))


def test_maybe_sync_groups_by_count_and_by_time(tmp_path):
    now = [0.0]
    with WriteAheadLog(tmp_path, group_messages=10, group_seconds=2.0, clock=lambda: now[0]) as wal:
        assert wal.maybe_sync() is False  # nothing pending
        wal.append(payloads(9), T0)
        assert wal.maybe_sync() is False and wal.durable_seq == -1
        wal.append(payloads(1), T0)
        assert wal.maybe_sync() is True and wal.durable_seq == 9
        wal.append(payloads(1), T0)
        now[0] = 1.9
        assert wal.maybe_sync() is False
        now[0] = 2.1
        assert wal.maybe_sync() is True and wal.durable_seq == 10
        now[0] = 10.0
        assert wal.maybe_sync() is False  # the timer alone does not sync nothing


def test_skip_to_moves_numbering_forward_only(tmp_path):
    with WriteAheadLog(tmp_path) as wal:
        wal.skip_to(50)
        assert wal.next_seq == 50
        assert segments(tmp_path) == ["wal-00000000000000000050.log"]  # the empty one is gone
        assert wal.append([b"a"], T0) == (50, 50)
        wal.skip_to(10)
        assert wal.next_seq == 51
    with WriteAheadLog(tmp_path) as wal:
        assert wal.next_seq == 51
        assert list(wal.read(0, 100)) == [(50, T0, b"a")]


def test_a_failed_write_is_cut_so_the_log_stays_readable(tmp_path, monkeypatch):
    with WriteAheadLog(tmp_path) as wal:
        wal.append(payloads(3), T0)
        real = wal_module._write_all

        def disk_full(fd, data):
            real(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(wal_module, "_write_all", disk_full)
        with pytest.raises(SinkError, match="disk is full") as info:
            wal.append(payloads(4, start=3), T0)
        assert isinstance(info.value.__cause__, OSError)
        assert str(tmp_path) in str(info.value)
        monkeypatch.setattr(wal_module, "_write_all", real)
        assert wal.append([b"next"], T0) == (3, 3)
    with WriteAheadLog(tmp_path) as wal:
        assert [r[2] for r in wal.read(0, 10)] == [*payloads(3), b"next"]


def test_a_corrupt_record_in_an_older_segment_is_reported(tmp_path, caplog):
    with WriteAheadLog(tmp_path, segment_bytes=1024) as wal:
        for i in range(10):
            wal.append(payloads(5, start=5 * i), T0)
    first_segment = tmp_path / segments(tmp_path)[0]
    data = bytearray(first_segment.read_bytes())
    data[8 + 16 + 5] ^= 0xFF  # inside the first record's payload
    first_segment.write_bytes(bytes(data))
    with WriteAheadLog(tmp_path, segment_bytes=1024) as wal:
        with caplog.at_level(logging.ERROR, logger="streamkit.wal"):
            seqs = [r[0] for r in wal.read(0, 49)]
        second = int(segments(tmp_path)[1][4:-4])
        assert seqs == list(range(second, 50))
        assert "corrupt at record 0" in caplog.text


def test_one_writer_per_folder(tmp_path):
    with WriteAheadLog(tmp_path):
        with pytest.raises(SinkError, match="in use by another writer"):
            WriteAheadLog(tmp_path)
    WriteAheadLog(tmp_path).close()  # free again once closed


def test_closed_log_refuses_appends_and_close_is_idempotent(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.append([b"a"], T0)
    wal.close()
    wal.close()
    assert wal.closed and wal.durable_seq == 0
    assert "closed" in repr(wal)
    with pytest.raises(SinkError, match="closed"):
        wal.append([b"b"], T0)


def test_a_file_in_the_way_is_a_sink_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(SinkError, match="file is in the way") as info:
        WriteAheadLog(blocker / "wal")
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("kwargs", [{"segment_bytes": 10}, {"group_messages": 0}, {"group_seconds": -1}])
def test_bad_parameters_are_config_errors(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        WriteAheadLog(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_appends_and_syncs_from_two_threads(tmp_path):
    n_batches, per_batch = 200, 25
    errors = []
    with WriteAheadLog(tmp_path, segment_bytes=16 * 1024, group_messages=50) as wal:
        done = threading.Event()

        def writer_side():
            seen = -1
            try:
                while not done.is_set() or wal.durable_seq < wal.next_seq - 1:
                    wal.maybe_sync()
                    durable = wal.sync()
                    assert durable >= seen
                    seen = durable
                    list(wal.read(max(durable - 10, 0), durable))
                    done.wait(0.001)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=writer_side, name="streamkit-test-syncer", daemon=True)
        thread.start()
        try:
            for i in range(n_batches):
                wal.append(payloads(per_batch, start=i * per_batch), T0 + i)
        finally:
            done.set()
            thread.join(10)
        assert not thread.is_alive() and not errors
        assert wal.durable_seq == n_batches * per_batch - 1
        records = list(wal.read(0, n_batches * per_batch))
        assert [r[2] for r in records] == payloads(n_batches * per_batch)
        assert [r[1] for r in records[::per_batch]] == [T0 + i for i in range(n_batches)]


def test_repr_names_the_folder(tmp_path):
    with WriteAheadLog(tmp_path) as wal:
        assert repr(wal).startswith("WriteAheadLog(") and os.fspath(tmp_path) in repr(wal)
