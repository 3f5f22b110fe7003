"""The edge's Kafka send path: a request's records appended straight into per-partition batches.

``AIOKafkaProducer.send`` costs about 20 µs of CPU per record (a coroutine, a size estimate, a
partition check, a future per record resolved one by one). The edge publishes ~100 records per
request and only needs to know that *all* of them are acknowledged, so :class:`PartitionBatches`
uses aiokafka's batch API instead: it appends each record directly to an open ``BatchBuilder``
of its topic-partition (``producer.create_batch()``), submits each builder once
(``producer.send_batch``) and hands back one future per batch.

Nothing else changes: builders stay open until aiokafka's sender drains them, so the records of
concurrent requests share a batch exactly as they do with ``send()`` (same ``linger_ms``, same
batch size cap, one produce request in flight per broker, acks and idempotence per batch), and
records of one partition keep their order. A batch's acknowledgement is that of every record in
it; its failure fails every request with a record in it. A record larger than the producer's
``max_request_size`` is refused before it joins a batch (``MessageSizeTooLargeError``, as
``send()`` raises), so it cannot fail other requests' records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
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


class _OpenBatch:
    """A builder that may still take records, and the future of its acknowledgement."""

    __slots__ = ("builder", "done")

    def __init__(self, builder: Any, done: asyncio.Future[Any]) -> None:
        self.builder = builder
        self.done = done


class PartitionBatches:
    """Per-partition open batches of one producer (see the module doc)."""

    def __init__(self, producer: Any, max_request_size: int | None) -> None:
        self.producer = producer
        self._max_request_size = max_request_size
        self._open: dict[TopicPartition, _OpenBatch] = {}

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
            batch = self._open.get(tp)
            fresh = batch is None or batch.builder.closed()
            if fresh:
                batch = _OpenBatch(
                    self.producer.create_batch(), asyncio.get_running_loop().create_future()
                )
                batch.done.add_done_callback(_retrieve)
                self._open[tp] = batch
            assert batch is not None
            builder = batch.builder
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
                    break  # full: the builder closed itself; the rest goes to a new one
                position += 1
            if position == start and fresh:  # aiokafka's builders always take a first record
                del self._open[tp]
                raise MessageSizeTooLargeError("a record does not fit in an empty batch")
            if position > start:
                waits.append(batch.done)
            if fresh:
                await self._submit(tp, batch)

    async def _submit(self, tp: TopicPartition, batch: _OpenBatch) -> None:
        """Queue ``batch`` in the producer; its ``done`` follows the producer's batch future."""
        try:
            acked = await self.producer.send_batch(batch.builder, tp[0], partition=tp[1])
        except BaseException as exc:
            batch.builder.close()
            if self._open.get(tp) is batch:
                del self._open[tp]
            if not batch.done.done():
                failure = exc if isinstance(exc, Exception) else KafkaTimeoutError()
                batch.done.set_exception(failure)
            raise
        acked.add_done_callback(lambda future: _copy_outcome(future, batch.done))


def _copy_outcome(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.set_exception(KafkaTimeoutError())
        return
    exc = source.exception()  # also marks the producer's future as retrieved
    if exc is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a batch's failure as seen: requests that gave up waiting must not log it again."""
    if not future.cancelled():
        future.exception()
