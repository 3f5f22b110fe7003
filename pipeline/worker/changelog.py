"""The dedup state's changelog topic: written per batch, read back to rebuild local state.

Topic ``<group id>-dedup-changelog``: same partition count as the events topic, and each entry
goes to the partition number of the event that created it, so a partition's state moves with
the partition on a rebalance. ``cleanup.policy=compact,delete`` with ``retention.ms`` = the
dedup window: Kafka keeps the latest first copy per key and drops entries older than the
window, so the topic (and any state rebuilt from it) stays bounded. Keys are dedup keys, values
encoded :class:`~pipeline.metering.dedup.FirstCopy` records (29 bytes).

Writing: one produce batch per partition and batch of events (``send_batch``), not one record
at a time; a batch is acknowledged by every in-sync replica (``acks=all``) before the local
database learns it. Recovery: on assignment, read each partition from the local database's
position to the end of the changelog, in chunks, one RocksDB write batch per chunk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.errors import InfrastructureError
from pipeline.kafka import TopicSpec
from pipeline.worker.state import DedupState

log = logging.getLogger(__name__)

Say = Callable[[str], None]


def changelog_topic(group_id: str) -> str:
    return f"{group_id}-dedup-changelog"


def changelog_spec(group_id: str, partitions: int, replication: int, window_ms: int) -> TopicSpec:
    return TopicSpec(
        changelog_topic(group_id),
        partitions,
        replication,
        {"cleanup.policy": "compact,delete", "retention.ms": str(window_ms)},
    )


async def write_changelog(
    producer: AIOKafkaProducer,
    topic: str,
    entries: Mapping[int, Sequence[tuple[bytes, bytes]]],
) -> dict[int, int]:
    """Produce each partition's entries, wait for every acknowledgement, and return the
    changelog position (next offset) each partition reached."""
    sent: dict[int, list[tuple[asyncio.Future[Any], int]]] = {}
    for partition, items in entries.items():
        index = 0
        while index < len(items):
            batch = producer.create_batch()
            count = 0
            while index < len(items):
                key, value = items[index]
                if batch.append(key=key, value=value, timestamp=None) is None:
                    break  # batch full: send it and start another
                index += 1
                count += 1
            if count == 0:
                raise InfrastructureError(
                    f"dedup changelog entry of {len(items[index][1])} bytes does not fit in one "
                    "producer batch",
                    partition=partition,
                )
            batch.close()
            future = await producer.send_batch(batch, topic, partition=partition)
            sent.setdefault(partition, []).append((future, count))
    # wait for every acknowledgement (each failure retrieved), then raise the first failure
    flat = [(partition, future, count) for partition, fs in sent.items() for future, count in fs]
    outcomes = await asyncio.gather(*(f for _, f, _ in flat), return_exceptions=True)
    acknowledged: list[Any] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        acknowledged.append(outcome)
    positions: dict[int, int] = {}
    for (partition, _, count), metadata in zip(flat, acknowledged, strict=True):
        # a produce batch is one record batch: its records have consecutive offsets
        positions[partition] = max(positions.get(partition, 0), metadata.offset + count)
    return positions


async def recover(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int],
    state: DedupState,
    *,
    say: Say = log.info,
    chunk: int = 10_000,
) -> dict[int, int]:
    """Bring each partition's local database up to the end of its changelog.

    Returns partition -> entries applied. A database that claims a position beyond the end of
    the changelog belongs to another incarnation of the topic: it is deleted and rebuilt.
    """
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=chunk,
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    applied: dict[int, int] = {}
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        todo: dict[TopicPartition, int] = {}
        total = 0
        for tp in tps:
            local = state.partition(tp.partition)
            position = local.changelog_position
            if position > ends[tp]:
                say(
                    f"dedup state of partition {tp.partition} is ahead of its changelog "
                    f"({position} > {ends[tp]}): the topic was recreated; rebuilding it"
                )
                state.reset(tp.partition)
                position = 0
            position = max(position, starts[tp])
            if position < ends[tp]:
                consumer.seek(tp, position)
                todo[tp] = ends[tp]
                total += ends[tp] - position
            else:
                consumer.pause(tp)
            applied[tp.partition] = 0
        if total:
            say(f"Rebuilding dedup state from {topic}: up to {total:,} entries to read")
        while todo:
            records = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, end in list(todo.items()):
                batch = records.get(tp, [])
                # compaction leaves holes in the offsets: progress is the consumer's position
                # (entries past the end read along are applied too: none may be skipped)
                reached = await consumer.position(tp)
                entries = [(r.key, r.value) for r in batch if r.key]
                if entries or reached >= end:
                    state.partition(tp.partition).apply(entries, reached)
                    applied[tp.partition] += len(entries)
                if reached >= end:
                    del todo[tp]
                    consumer.pause(tp)
        if total:
            say(f"Dedup state rebuilt: {sum(applied.values()):,} entries applied")
    finally:
        await consumer.stop()
    return applied
