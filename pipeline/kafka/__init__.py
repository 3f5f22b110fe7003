"""Thin Kafka adapter: where the broker is, how we produce, which topics exist.

Producer settings are fixed here for every producer of the project (ingest edge, dead letters,
tests): ``acks=all`` + idempotence (no duplicate or reordered writes from producer retries within a
session) and lz4 compression (the plugins already send lz4; the broker stores it compact).
:data:`PRODUCER_CONFIG` is aiokafka's (worker, tools); :data:`EDGE_PRODUCER_CONFIG` is the same
for librdkafka (confluent-kafka), which the ingest edge produces with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.errors import ConfigError
from pipeline.settings import Settings

if TYPE_CHECKING:
    import confluent_kafka


PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "compression_type": "lz4",
    # Small linger: an ingest request waits for its own acks, so batching only helps across
    # concurrent requests; 5 ms is invisible next to the plugin's 5 s buffering.
    "linger_ms": 5,
    "max_batch_size": 1024 * 1024,
    "request_timeout_ms": 10_000,
}


EDGE_PRODUCER_CONFIG: dict[str, Any] = {
    # The same durability as PRODUCER_CONFIG, in librdkafka's names (confluent-kafka): the edge
    # produces with librdkafka, whose batching and compression run in C threads outside the GIL.
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    # Kafka's default partitioner for keyed records (murmur2, as the Java client and aiokafka);
    # librdkafka's own default (consistent_random, CRC32) would put keys on other partitions.
    "partitioner": "murmur2_random",
    # An edge request waits for its own acks, so a longer linger adds to every request's latency
    # (and, with few concurrent clients, caps throughput), while fewer, larger produce requests
    # cost the broker less CPU. Measured with `bench` (4 clients, 3 rounds each, in turn, typed
    # fast path): 2 ms 30.9k events/s, broker 19 us/event; 5 ms 32.1k, broker 16 us/event;
    # 10 ms 23.6k (requests wait out the linger), broker 11.5 us/event. p99 21-40 ms in all.
    "linger.ms": 5,
    "request.timeout.ms": 10_000,
    # A record not acknowledged within a minute fails (its request was answered 503 long ago).
    "message.timeout.ms": 60_000,
}


def make_confluent_producer(bootstrap: str, **overrides: Any) -> confluent_kafka.Producer:
    """A librdkafka producer with the project's durability settings (:data:`EDGE_PRODUCER_CONFIG`).

    ``overrides`` use librdkafka's property names (``{"message.max.bytes": n}``) and may carry
    callbacks (``error_cb``, ``logger``); it must be polled (``poll``/``flush``) by its owner.
    """
    import confluent_kafka  # only the edge loads librdkafka

    return confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, **EDGE_PRODUCER_CONFIG, **overrides}
    )


def resolve_bootstrap(settings: Settings) -> str:
    """The configured broker. Production never starts one by itself: with no address this is a
    :class:`ConfigError` that names the setting and the local launcher."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    raise ConfigError(
        "PIPELINE_KAFKA_BOOTSTRAP_SERVERS is not set: name the Kafka brokers, "
        "host:port[,host:port]. For a local one, run `python -m pipeline kafka start`: it prints "
        "the line to export",
        setting="PIPELINE_KAFKA_BOOTSTRAP_SERVERS",
    )


def make_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """An (unstarted) producer with the project's durability settings."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **{**PRODUCER_CONFIG, **overrides})


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] | None = None


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the pipeline needs. Events and quarantine share the partition count so that a
    key keeps its partition across them."""
    t, n, rf = settings.topics, settings.topic_partitions, settings.topic_replication_factor
    return [TopicSpec(name, n, rf) for name in (t.events, t.quarantine, t.dead_letters)]


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the missing topics. Returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        for spec in specs:
            if spec.name in existing:
                continue
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            spec.partitions,
                            spec.replication_factor,
                            topic_configs=spec.config or {},
                        )
                    ]
                )
                created.append(spec.name)
    finally:
        await admin.close()
    return created


async def group_lag(bootstrap: str, group: str, topic: str) -> int | None:
    """Messages of ``topic`` that consumer group ``group`` has not committed yet.

    None while the group has committed nothing for the topic (a worker still starting).
    """
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import GroupCoordinatorNotAvailableError
    from aiokafka.structs import TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        for attempt in range(20):
            try:
                committed = await admin.list_consumer_group_offsets(group)
                break
            except GroupCoordinatorNotAvailableError:
                # a new broker creates its group coordinator on first use
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        # A consumer without subscriptions fetches no topic metadata until asked to.
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        if not any(tp in committed for tp in tps):
            return None
        return int(sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps))
    finally:
        await consumer.stop()
        await admin.close()
