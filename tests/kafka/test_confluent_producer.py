"""The edge's librdkafka producer settings: durable, lz4, Kafka's default partitioner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import KafkaError, KafkaException

from pipeline.devstack.kafka_launcher import KafkaLauncher
from pipeline.ingest.partitioner import kafka_partition
from pipeline.kafka import (
    EDGE_PRODUCER_CONFIG,
    TopicSpec,
    ensure_topics,
    make_confluent_producer,
)
from pipeline.settings import Settings

LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


def test_edge_producer_config_is_durable_compressed_and_keyed_like_java() -> None:
    assert EDGE_PRODUCER_CONFIG["acks"] == "all"
    assert EDGE_PRODUCER_CONFIG["enable.idempotence"] is True
    assert EDGE_PRODUCER_CONFIG["compression.type"] == "lz4"
    assert EDGE_PRODUCER_CONFIG["partitioner"] == "murmur2_random"


def test_overrides_reach_librdkafka() -> None:
    with pytest.raises(KafkaException, match=r"message\.max\.bytes"):
        make_confluent_producer("127.0.0.1:1", **{"message.max.bytes": -5})


@pytest.mark.integration
def test_keyed_records_land_where_the_java_client_puts_them_lz4_compressed(
    kafka_bootstrap: str, unique_name: str
) -> None:
    keys = [f"key-{i}".encode() for i in range(200)]
    asyncio.run(ensure_topics(kafka_bootstrap, [TopicSpec(unique_name, 5)]))
    errors: list[KafkaError] = []
    producer = make_confluent_producer(kafka_bootstrap)
    for key in keys:
        producer.produce(
            unique_name,
            b"value " * 20,
            key,
            on_delivery=lambda error, _: errors.append(error) if error else None,
        )
    assert producer.flush(30) == 0 and errors == []
    producer.close()

    async def consume() -> dict[bytes, int]:
        consumer = AIOKafkaConsumer(
            unique_name,
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: dict[bytes, int] = {}
        try:
            while len(out) < len(keys):
                batches = await consumer.getmany(timeout_ms=5000)
                if not batches:
                    break
                for records in batches.values():
                    out.update((r.key, r.partition) for r in records)
        finally:
            await consumer.stop()
        return out

    partitions = asyncio.run(consume())
    assert partitions == {key: kafka_partition(key, 5) for key in keys}
    settings = Settings()
    launcher = KafkaLauncher(settings.cache_dir, settings.kafka_version)
    running = launcher.running()
    if running is not None and running.bootstrap_servers == kafka_bootstrap:
        segments = list(Path(launcher.data_dir).glob(f"{unique_name}-*/*.log"))
        assert segments and any(LZ4_FRAME_MAGIC in seg.read_bytes() for seg in segments)
