"""The project's producer settings against a real broker: acks=all, idempotence, lz4."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.devstack.kafka_launcher import KafkaLauncher
from pipeline.kafka import PRODUCER_CONFIG, TopicSpec, ensure_topics, make_producer
from pipeline.settings import Settings

LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


def test_producer_config_is_durable_and_compressed() -> None:
    assert PRODUCER_CONFIG["acks"] == "all"
    assert PRODUCER_CONFIG["enable_idempotence"] is True
    assert PRODUCER_CONFIG["compression_type"] == "lz4"


async def _roundtrip(bootstrap: str, topic: str, n: int) -> list[tuple[bytes, bytes, int]]:
    created = await ensure_topics(bootstrap, [TopicSpec(topic, 3)])
    assert created == [topic]
    assert await ensure_topics(bootstrap, [TopicSpec(topic, 3)]) == []  # idempotent

    producer = make_producer(bootstrap)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode() * 20)
            for i in range(n)
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert all(md.offset >= 0 for md in metadata)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[tuple[bytes, bytes, int]] = []
    try:
        while len(out) < n:
            batches = await consumer.getmany(timeout_ms=5000)
            if not batches:
                break
            for records in batches.values():
                out.extend((r.key, r.value, r.partition) for r in records)
    finally:
        await consumer.stop()
    return out


@pytest.mark.integration
def test_produce_and_consume_back_every_message(kafka_bootstrap: str, unique_name: str) -> None:
    n = 2000
    out = asyncio.run(_roundtrip(kafka_bootstrap, unique_name, n))
    assert sorted(v for _, v, _ in out) == sorted(f"v{i}".encode() * 20 for i in range(n))
    # One key, one partition: the property the dedup stage depends on.
    partitions_by_key: dict[bytes, set[int]] = {}
    for key, _, partition in out:
        partitions_by_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_by_key.values())

    settings = Settings()
    launcher = KafkaLauncher(settings.cache_dir, settings.kafka_version)
    running = launcher.running()
    if running is not None and running.bootstrap_servers == kafka_bootstrap:
        # On the local broker, look at the stored batches: they must be lz4 frames.
        segments = list(Path(launcher.data_dir).glob(f"{unique_name}-*/*.log"))
        assert segments
        assert any(LZ4_FRAME_MAGIC in seg.read_bytes() for seg in segments)


@pytest.mark.integration
def test_group_lag_counts_uncommitted_messages(kafka_bootstrap: str, unique_name: str) -> None:
    from aiokafka.structs import TopicPartition

    from pipeline.kafka import group_lag

    async def scenario() -> tuple[int | None, int | None, int | None]:
        await ensure_topics(kafka_bootstrap, [TopicSpec(unique_name, 2)])
        producer = make_producer(kafka_bootstrap)
        await producer.start()
        for _ in range(6):
            await producer.send_and_wait(unique_name, value=b"x", partition=0)
        for _ in range(4):
            await producer.send_and_wait(unique_name, value=b"y", partition=1)
        await producer.stop()
        before = await group_lag(kafka_bootstrap, unique_name, unique_name)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap, group_id=unique_name, enable_auto_commit=False
        )
        await consumer.start()
        try:
            p0, p1 = TopicPartition(unique_name, 0), TopicPartition(unique_name, 1)
            consumer.assign([p0, p1])
            await consumer.commit({p0: 6})
            partial = await group_lag(kafka_bootstrap, unique_name, unique_name)
            await consumer.commit({p1: 4})
            done = await group_lag(kafka_bootstrap, unique_name, unique_name)
        finally:
            await consumer.stop()
        return before, partial, done

    before, partial, done = asyncio.run(scenario())
    assert before is None  # nothing committed yet
    assert partial == 4  # partition 1 not committed
    assert done == 0
