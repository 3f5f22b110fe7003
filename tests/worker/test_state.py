"""The worker's local dedup state (RocksDB per partition): entries and changelog position."""

from __future__ import annotations

from pathlib import Path

from pipeline.worker.state import DedupState


def test_entries_and_position_are_written_together_and_survive_reopening(tmp_path: Path) -> None:
    state = DedupState(tmp_path)
    assert state.partition(2).changelog_position == 0
    state.partition(2).apply([(b"4:acme:k1", b"first"), (b"4:acme:k2", b"second")], 17)
    state.close_all()

    reopened = DedupState(tmp_path)
    assert reopened.get(2, b"4:acme:k1") == b"first"
    assert reopened.get(2, b"4:acme:k2") == b"second"
    assert reopened.get(2, b"4:acme:k3") is None
    assert reopened.partition(2).changelog_position == 17
    reopened.close_all()


def test_partitions_are_separate_databases(tmp_path: Path) -> None:
    state = DedupState(tmp_path)
    state.partition(0).apply([(b"k", b"zero")], 1)
    state.partition(1).apply([], 5)
    assert state.get(0, b"k") == b"zero"
    assert state.get(1, b"k") is None
    assert state.partition(1).changelog_position == 5
    assert state.open_partitions == [0, 1]
    state.close_all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0", "p1"]


def test_the_position_entry_is_not_a_dedup_key(tmp_path: Path) -> None:
    # dedup keys start with the tenant's length in digits; the reserved entry with NUL
    state = DedupState(tmp_path)
    state.partition(0).apply([(b"0:", b"v")], 3)
    assert state.get(0, b"0:") == b"v"
    assert state.partition(0).changelog_position == 3
    state.close_all()


def test_reset_deletes_a_partition_so_it_is_rebuilt_from_scratch(tmp_path: Path) -> None:
    state = DedupState(tmp_path)
    state.partition(3).apply([(b"k", b"v")], 9)
    state.reset(3)
    assert not (tmp_path / "p3").exists()
    assert state.get(3, b"k") is None
    assert state.partition(3).changelog_position == 0
    state.close_all()


def test_a_batch_reader_reads_what_get_reads(tmp_path: Path) -> None:
    state = DedupState(tmp_path)
    state.partition(0).apply([(b"k0", b"zero")], 1)
    state.partition(1).apply([(b"k1", b"one")], 1)
    read = state.reader()
    assert [read(0, b"k0"), read(1, b"k1"), read(0, b"k1"), read(2, b"k0")] == [
        b"zero",
        b"one",
        None,
        None,
    ]
    state.close_all()
