"""The dedup changelog on a real broker: per-batch writes, positions, recovery into RocksDB."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline.kafka import ensure_topics, make_producer
from pipeline.worker.changelog import changelog_spec, recover, write_changelog
from pipeline.worker.state import DedupState

pytestmark = pytest.mark.integration

WINDOW_MS = 35 * 86_400_000


def _entries(prefix: str, count: int) -> list[tuple[bytes, bytes]]:
    return [(f"4:acme:{prefix}-{i}".encode(), f"copy-{prefix}-{i}".encode()) for i in range(count)]


async def _write(
    bootstrap: str, topic: str, entries: dict[int, list[tuple[bytes, bytes]]]
) -> dict[int, int]:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        return await write_changelog(producer, topic, entries)
    finally:
        await producer.stop()


def test_writes_return_positions_and_recovery_rebuilds_an_empty_state(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    spec = changelog_spec(unique_name, 2, 1, WINDOW_MS)
    asyncio.run(ensure_topics(kafka_bootstrap, [spec]))
    # more than one produce batch for partition 0 (1 MiB batches, ~40 bytes per entry)
    first = asyncio.run(
        _write(kafka_bootstrap, spec.name, {0: _entries("a", 30_000), 1: _entries("b", 3)})
    )
    assert first == {0: 30_000, 1: 3}
    second = asyncio.run(_write(kafka_bootstrap, spec.name, {1: _entries("c", 2)}))
    assert second == {1: 5}

    state = DedupState(tmp_path / "fresh")
    applied = asyncio.run(recover(kafka_bootstrap, spec.name, [0, 1], state, say=lambda _: None))
    assert applied == {0: 30_000, 1: 5}
    assert state.get(0, b"4:acme:a-29999") == b"copy-a-29999"
    assert state.get(1, b"4:acme:c-1") == b"copy-c-1"
    assert state.get(1, b"4:acme:a-0") is None  # entries stay in their partition
    assert state.partition(0).changelog_position == 30_000
    assert state.partition(1).changelog_position == 5
    state.close_all()


def test_recovery_resumes_from_the_local_position_and_reads_nothing_twice(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    spec = changelog_spec(unique_name, 1, 1, WINDOW_MS)
    asyncio.run(ensure_topics(kafka_bootstrap, [spec]))
    asyncio.run(_write(kafka_bootstrap, spec.name, {0: _entries("a", 10)}))
    state = DedupState(tmp_path)
    assert asyncio.run(recover(kafka_bootstrap, spec.name, [0], state)) == {0: 10}
    # another owner wrote more while this worker did not hold the partition
    asyncio.run(_write(kafka_bootstrap, spec.name, {0: _entries("b", 4)}))
    assert asyncio.run(recover(kafka_bootstrap, spec.name, [0], state)) == {0: 4}
    assert state.get(0, b"4:acme:b-3") == b"copy-b-3"
    assert state.partition(0).changelog_position == 14
    # up to date: nothing to read
    assert asyncio.run(recover(kafka_bootstrap, spec.name, [0], state)) == {0: 0}
    state.close_all()


def test_a_state_ahead_of_its_changelog_is_rebuilt_from_scratch(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    spec = changelog_spec(unique_name, 1, 1, WINDOW_MS)
    asyncio.run(ensure_topics(kafka_bootstrap, [spec]))
    asyncio.run(_write(kafka_bootstrap, spec.name, {0: _entries("a", 3)}))
    state = DedupState(tmp_path)
    # a state left from an earlier incarnation of the topic (e.g. a wiped broker)
    state.partition(0).apply([(b"4:acme:stale", b"old")], 500)
    said: list[str] = []
    assert asyncio.run(recover(kafka_bootstrap, spec.name, [0], state, say=said.append)) == {0: 3}
    assert state.get(0, b"4:acme:stale") is None
    assert state.get(0, b"4:acme:a-2") == b"copy-a-2"
    assert any("ahead of its changelog" in line for line in said)
    state.close_all()
