"""Kafka sides of the attack campaign (:mod:`pipeline.devstack.bench.hostile`): records that
bypass the edge, the lag of each partition, and the dead letters read back by reason."""

from __future__ import annotations

import re
from collections import Counter

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from pipeline.devstack.bench.hostile_bodies import worker_poison_records
from pipeline.kafka import TopicSpec, ensure_topics, make_producer


async def poison(bootstrap: str, topic: str, count: int, run: str) -> int:
    """Records no edge would send, produced past it (the events topic exists: the edge made it)."""
    await ensure_topics(bootstrap, [TopicSpec(topic, 4)])
    producer = make_producer(bootstrap)
    await producer.start()
    sent = 0
    try:
        for key, value in worker_poison_records(count, 5, run):
            await producer.send(topic, key=key, value=value)
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def lag_by_partition(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(tps)
        lags = {
            tp.partition: ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps
        }
        return {partition: lag for partition, lag in lags.items() if lag > 0}
    finally:
        await consumer.stop()
        await admin.close()


_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|\d+")


async def dead_letters(bootstrap: str, topic: str) -> Counter[str]:
    """Every dead letter of the campaign, by kind and reason (values and numbers blanked)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    counts: Counter[str] = Counter()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(tps)
        seen = {tp: 0 for tp in tps}
        while any(seen[tp] < ends[tp] for tp in tps):
            batches = await consumer.getmany(timeout_ms=2000, max_records=5000)
            if not batches:
                break
            for tp, records in batches.items():
                for record in records:
                    seen[tp] = record.offset + 1
                    headers = {k: v.decode(errors="replace") for k, v in record.headers}
                    reason = _VARYING.sub("…", headers.get("reason", "?"))[:90]
                    counts[f"{headers.get('kind', '?')}: {reason}"] += 1
    finally:
        await consumer.stop()
    return counts
