"""The edge's Kafka send path: a request's records appended straight into per-partition batches.

``AIOKafkaProducer.send`` costs about 20 µs of CPU per record (a coroutine, a size estimate, a
partition check, a future per record resolved one by one). The edge publishes ~100 records per
request and only needs to know that *all* of them are acknowledged, so :class:`PartitionBatches`
uses aiokafka's batch API instead: it appends the request's records of each topic-partition to a
new ``BatchBuilder`` (``producer.create_batch()``), closes it, submits it
(``producer.send_batch``) and hands back one future per batch.

Batches are never shared between requests, and a builder is closed before it is queued: with
idempotence, aiokafka numbers a batch's records when its sender *takes* the batch, which can be
before it serialises it; a record appended in between shifts every later sequence number and the
broker answers OutOfOrderSequenceNumber for the rest of the producer's life (seen in the bench
with batches shared across concurrent requests). Records of one partition keep their order;
aiokafka queues one undrained batch per partition and sends them in order. A batch's
acknowledgement is that of every record in it. A record larger than the producer's
``max_request_size`` is refused before anything of the request is queued
(``MessageSizeTooLargeError``, as ``send()`` raises).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

if TYPE_CHECKING:
    from pipeline.ingest.publisher import OutgoingRecord

TopicPartition = tuple[str, int]
_estimate_size = DefaultRecordBatchBuilder.estimate_size_in_bytes
_SIZE_SLACK = 1024
"""Bytes a record may need beyond its key and value (batch header, varints): a header-less
record with ``len(key) + len(value) + _SIZE_SLACK <= max_request_size`` fits without estimating."""


def supports_batches(producer: Any) -> bool:
    """Whether ``producer`` has aiokafka's batch API (test doubles may offer only ``send``)."""
    return callable(getattr(producer, "create_batch", None)) and callable(
        getattr(producer, "send_batch", None)
    )


class PartitionBatches:
    """Per-partition open batches of one producer (see the module doc)."""

    def __init__(self, producer: Any, max_request_size: int | None) -> None:
        self.producer = producer
        self._max_request_size = max_request_size

    async def send(
        self, records: Sequence[OutgoingRecord], partition_of: Callable[[bytes, int], int]
    ) -> list[asyncio.Future[Any]]:
        """Append every record to its partition's open batch; the futures to wait for.

        ``partition_of(key, partition_count)`` picks the partition. Raises
        ``MessageSizeTooLargeError`` (nothing of this request queued) for a record that no
        request may hold, or what ``send_batch`` raises.
        """
        limit = self._max_request_size
        groups: dict[TopicPartition, list[OutgoingRecord]] = {}
        counts: dict[str, int] = {}
        for record in records:
            topic = record.topic
            count = counts.get(topic)
            if count is None:
                count = counts[topic] = len(await self.producer.partitions_for(topic))
            if limit is not None and (
                record.headers or len(record.key) + len(record.value) + _SIZE_SLACK > limit
            ):
                size = _estimate_size(record.key, record.value, list(record.headers))
                if size > limit:
                    raise MessageSizeTooLargeError(
                        f"The message is {size} bytes when serialized which is larger than the "
                        "maximum request size you have configured with the max_request_size "
                        "configuration"
                    )
            tp = (topic, partition_of(record.key, count))
            group = groups.get(tp)
            if group is None:
                groups[tp] = [record]
            else:
                group.append(record)
        waits: list[asyncio.Future[Any]] = []
        for tp, group in groups.items():
            await self._append(tp, group, waits)
        return waits

    async def _append(
        self, tp: TopicPartition, records: list[OutgoingRecord], waits: list[asyncio.Future[Any]]
    ) -> None:
        position, end = 0, len(records)
        while position < end:
            builder = self.producer.create_batch()
            start = position
            while position < end:
                record = records[position]
                headers = list(record.headers) if record.headers else []
                if (
                    builder.append(
                        timestamp=None, key=record.key, value=record.value, headers=headers
                    )
                    is None
                ):
                    break  # full: the rest goes to a new batch
                position += 1
            if position == start:  # aiokafka's builders always take a first record
                raise MessageSizeTooLargeError("a record does not fit in an empty batch")
            builder.close()  # before it is queued: see the module doc (sequence numbers)
            acked = await self.producer.send_batch(builder, tp[0], partition=tp[1])
            acked.add_done_callback(_retrieve)
            waits.append(acked)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a batch's failure as seen: requests that gave up waiting must not log it again."""
    if not future.cancelled():
        future.exception()
