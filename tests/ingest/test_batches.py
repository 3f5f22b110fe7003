"""PartitionBatches through KafkaPublisher, with a producer double that has aiokafka's batch API.

The double behaves like aiokafka where it matters: a full builder refuses a record and closes
itself, one future per batch reports the acknowledgement, and it refuses a builder that is
still open when queued (an open builder could take records after aiokafka numbered them:
OutOfOrderSequenceNumber, seen in the bench when batches were shared across requests). The
real producer is exercised by tests/ingest/test_publisher.py (broker test) and
tests/ingest/test_edge_kafka.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from pipeline.ingest.batches import PartitionBatches, supports_batches
from pipeline.ingest.publisher import (
    KafkaPublisher,
    OutgoingRecord,
    PublishFailed,
    kafka_partition,
)


class FakeBuilder:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        self._closed = False

    def append(
        self, *, timestamp: Any, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> object | None:
        assert timestamp is None and isinstance(headers, list)
        if self._closed:
            return None
        if len(self.records) >= self.capacity:
            self._closed = True
            return None
        self.records.append((key, value, headers))
        return object()

    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True


class BatchProducer:
    """start/stop/partitions_for/create_batch/send_batch, plus drain() and ack() for the test."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.batches: list[tuple[str, int, FakeBuilder, asyncio.Future[Any]]] = []
        self.send_error: BaseException | None = None
        self.queue_full: asyncio.Event | None = None  # set: send_batch may proceed
        self.stopped = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def create_batch(self) -> FakeBuilder:
        return FakeBuilder(self.capacity)

    async def send_batch(
        self, batch: FakeBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        if self.queue_full is not None:
            await self.queue_full.wait()  # like add_batch waiting for the previous batch's drain
        if self.send_error is not None:
            raise self.send_error
        assert batch.closed(), "a builder must be closed before it is queued"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.batches.append((topic, partition, batch, future))
        return future

    def ack(self, error: BaseException | None = None) -> None:
        for _, _, _, future in self.batches:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def contents(self) -> dict[tuple[str, int], list[bytes]]:
        out: dict[tuple[str, int], list[bytes]] = {}
        for topic, partition, builder, _ in self.batches:
            out.setdefault((topic, partition), []).extend(key for key, _, _ in builder.records)
        return out


def records(prefix: str, n: int, topic: str = "events") -> list[OutgoingRecord]:
    return [OutgoingRecord(topic, f"{prefix}-{i}".encode(), b"v") for i in range(n)]


def by_partition(sent: list[OutgoingRecord]) -> dict[tuple[str, int], list[bytes]]:
    out: dict[tuple[str, int], list[bytes]] = {}
    for record in sent:
        out.setdefault((record.topic, kafka_partition(record.key, 4)), []).append(record.key)
    return out


def publisher_for(producer: BatchProducer, **kwargs: Any) -> KafkaPublisher:
    return KafkaPublisher(lambda: producer, timeout_s=2, **kwargs)


async def until(condition: Any) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_only_producers_with_the_batch_api_get_batches() -> None:
    assert supports_batches(BatchProducer())
    assert not supports_batches(object())


def test_one_request_fills_one_batch_per_partition_in_order_with_headers() -> None:
    async def scenario() -> BatchProducer:
        producer = BatchProducer()
        publisher = publisher_for(producer)
        await publisher.start()
        sent = [
            *records("a", 12),
            OutgoingRecord("dead", b"kong-prod", b"raw", (("reason", b"bad"),)),
        ]
        task = asyncio.create_task(publisher.publish(sent))
        await until(lambda: producer.batches)
        assert not task.done()  # nothing is answered before the acknowledgement
        producer.ack()
        await task
        assert producer.contents() == by_partition(sent)
        assert len(producer.batches) == len(by_partition(sent))
        (dead,) = [b for topic, _, b, _ in producer.batches if topic == "dead"]
        assert dead.records == [(b"kong-prod", b"raw", [("reason", b"bad")])]
        return producer

    asyncio.run(scenario())


def test_concurrent_requests_get_their_own_closed_batches_in_order() -> None:
    async def scenario() -> None:
        producer = BatchProducer()
        publisher = publisher_for(producer)
        await publisher.start()
        first = asyncio.create_task(publisher.publish(records("a", 8)))
        await until(lambda: producer.batches)
        opened = len(producer.batches)
        second = asyncio.create_task(publisher.publish(records("b", 8)))
        await until(lambda: len(producer.batches) > opened)
        await asyncio.sleep(0.01)
        assert all(builder.closed() for _, _, builder, _ in producer.batches)
        firsts = {key for _, _, b, _ in producer.batches[:opened] for key, _, _ in b.records}
        assert firsts == {r.key for r in records("a", 8)}  # nothing of b joined a's batches
        producer.ack()
        await asyncio.gather(first, second)
        assert producer.contents() == by_partition([*records("a", 8), *records("b", 8)])

    asyncio.run(scenario())


def test_a_full_batch_continues_in_a_new_one_and_the_request_waits_for_both() -> None:
    async def scenario() -> None:
        producer = BatchProducer(capacity=2)
        publisher = publisher_for(producer)
        await publisher.start()
        sent = [OutgoingRecord("events", b"same-key", b"%d" % i) for i in range(5)]
        task = asyncio.create_task(publisher.publish(sent))
        await until(lambda: len(producer.batches) == 3)
        producer.batches[0][3].set_result(None)
        await asyncio.sleep(0.01)
        assert not task.done()
        producer.ack()
        await task
        values = [v for _, _, b, _ in producer.batches for _, v, _ in b.records]
        assert values == [b"0", b"1", b"2", b"3", b"4"]  # order kept across batches

    asyncio.run(scenario())


def test_a_failed_batch_fails_every_request_with_a_record_in_it() -> None:
    async def scenario() -> list[BaseException | None]:
        producer = BatchProducer()
        publisher = publisher_for(producer)
        await publisher.start()
        tasks = [asyncio.create_task(publisher.publish(records(p, 6))) for p in "ab"]
        await until(lambda: producer.batches)
        await asyncio.sleep(0.01)
        producer.ack(OutOfOrderSequenceNumber())
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        return [o if isinstance(o, BaseException) else None for o in outcomes]

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, PublishFailed) for o in outcomes)
    assert all("OutOfOrderSequenceNumber" in str(o) for o in outcomes)


def test_batches_that_could_not_be_queued_fail_their_requests() -> None:
    async def scenario() -> list[BaseException | None]:
        producer = BatchProducer()
        producer.queue_full = asyncio.Event()
        publisher = publisher_for(producer)
        await publisher.start()
        same = [OutgoingRecord("events", b"k", b"1")]
        first = asyncio.create_task(publisher.publish(same))
        await asyncio.sleep(0.01)  # first is waiting in send_batch
        second = asyncio.create_task(publisher.publish(same))
        await asyncio.sleep(0.01)
        producer.send_error = KafkaTimeoutError()
        producer.queue_full.set()
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
        assert producer.batches == []
        return [o if isinstance(o, BaseException) else None for o in outcomes]

    first, second = asyncio.run(scenario())
    assert isinstance(first, PublishFailed) and "KafkaTimeoutError" in first.message
    assert isinstance(second, PublishFailed) and "KafkaTimeoutError" in second.message


def test_a_record_no_request_may_hold_is_refused_before_anything_is_queued() -> None:
    async def scenario() -> tuple[BatchProducer, PublishFailed]:
        producer = BatchProducer()
        publisher = publisher_for(producer, max_request_size=10_000)
        await publisher.start()
        sent = [*records("a", 3), OutgoingRecord("events", b"big", b"x" * 20_000)]
        with pytest.raises(PublishFailed) as refused:
            await publisher.publish(sent)
        return producer, refused.value

    producer, refused = asyncio.run(scenario())
    assert producer.batches == []
    assert "MessageSizeTooLargeError" in refused.message
    assert not refused.timed_out


def test_records_near_the_limit_are_measured_exactly() -> None:
    async def scenario() -> BatchProducer:
        producer = BatchProducer()
        batches = PartitionBatches(producer, max_request_size=2_000)
        near = OutgoingRecord("events", b"k", b"x" * 1_800)  # within the slack: estimated
        waits = await batches.send([near], kafka_partition)
        assert len(waits) == 1
        return producer

    producer = asyncio.run(scenario())
    assert producer.contents() == {("events", kafka_partition(b"k", 4)): [b"k"]}


def test_a_replaced_producer_starts_with_no_open_batches() -> None:
    async def scenario() -> list[BatchProducer]:
        made: list[BatchProducer] = []

        def factory() -> BatchProducer:
            made.append(BatchProducer())
            return made[-1]

        publisher = KafkaPublisher(factory, timeout_s=2)
        await publisher.start()
        task = asyncio.create_task(publisher.publish(records("a", 4)))
        await until(lambda: made[0].batches)
        made[0].ack(OutOfOrderSequenceNumber())
        with pytest.raises(PublishFailed):
            await task
        task = asyncio.create_task(publisher.publish(records("b", 4)))
        await until(lambda: len(made) == 2 and made[1].batches)
        made[1].ack()
        await task
        await publisher.stop()
        return made

    first, second = asyncio.run(scenario())
    assert first.stopped
    assert second.contents() == by_partition(records("b", 4))


def test_a_builder_that_takes_nothing_is_an_error_not_a_loop() -> None:
    async def scenario() -> PublishFailed:
        producer = BatchProducer(capacity=0)
        publisher = publisher_for(producer)
        await publisher.start()
        with pytest.raises(PublishFailed) as failed:
            await publisher.publish(records("a", 1))
        assert producer.batches == []
        return failed.value

    assert "does not fit in an empty batch" in asyncio.run(scenario()).message
