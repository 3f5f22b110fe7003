"""KafkaPublisher: wait for every ack, fail as PublishFailed, replace a broken producer; murmur2."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ingest.publisher import (
    KafkaPublisher,
    OutgoingRecord,
    PublishFailed,
    kafka_partition,
    murmur2,
)
from pipeline.kafka import TopicSpec, ensure_topics

# --- Kafka's default partitioner ---------------------------------------------------------------

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed Java ints).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "java"), JAVA_VECTORS.items())
def test_murmur2_matches_the_java_client(data: bytes, java: int) -> None:
    assert murmur2(data) == java & 0xFFFFFFFF


@given(st.binary(max_size=600))
def test_murmur2_matches_aiokafka(data: bytes) -> None:
    assert murmur2(data) & 0x7FFFFFFF == aiokafka_murmur2(data) & 0x7FFFFFFF


@given(st.binary(min_size=1, max_size=80), st.integers(min_value=1, max_value=64))
def test_partition_matches_the_default_partitioner(key: bytes, partitions: int) -> None:
    everything = list(range(partitions))
    assert kafka_partition(key, partitions) == DefaultPartitioner()(key, everything, everything)


# --- a producer double -----------------------------------------------------------------------


class FakeProducer:
    """Just enough of AIOKafkaProducer: start/stop/partitions_for/send/client."""

    def __init__(self, *, start_error: BaseException | None = None) -> None:
        self.start_error = start_error
        self.started = False
        self.stopped = False
        self.sent: list[dict[str, Any]] = []
        self.ack_error: BaseException | None = None
        self.send_error: BaseException | None = None
        self.never_ack = False
        self.metadata_error: BaseException | None = None
        self.client = SimpleNamespace(fetch_all_metadata=self._metadata)

    async def _metadata(self) -> object:
        if self.metadata_error is not None:
            raise self.metadata_error
        return object()

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(
            {"topic": topic, "key": key, "value": value, "partition": partition, "headers": headers}
        )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.ack_error is not None:
            future.set_exception(self.ack_error)
        elif not self.never_ack:
            future.set_result(SimpleNamespace(partition=partition, offset=len(self.sent)))
        return future


class Factory:
    def __init__(self, *producers: FakeProducer) -> None:
        self.queue = list(producers)
        self.made: list[FakeProducer] = []

    def __call__(self) -> FakeProducer:
        producer = self.queue.pop(0) if self.queue else FakeProducer()
        self.made.append(producer)
        return producer


class Observer:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.replaced = 0

    def kafka_error(self, kind: str) -> None:
        self.errors.append(kind)

    def producer_replaced(self) -> None:
        self.replaced += 1


RECORDS = [
    OutgoingRecord("events", b"key-1", b"v1"),
    OutgoingRecord("events", b"key-2", b"v2"),
    OutgoingRecord("dead", b"kong-prod", b"raw", (("reason", b"bad"), ("index", b"3"))),
]


def test_publish_sends_every_record_to_the_default_partition_and_waits_for_acks() -> None:
    async def scenario() -> FakeProducer:
        factory = Factory()
        publisher = KafkaPublisher(factory, timeout_s=1)
        await publisher.start()
        await publisher.publish(RECORDS)
        await publisher.stop()
        return factory.made[0]

    producer = asyncio.run(scenario())
    assert [(s["topic"], s["key"], s["value"]) for s in producer.sent] == [
        (r.topic, r.key, r.value) for r in RECORDS
    ]
    assert [s["partition"] for s in producer.sent] == [kafka_partition(r.key, 4) for r in RECORDS]
    assert producer.sent[0]["headers"] is None
    assert producer.sent[2]["headers"] == [("reason", b"bad"), ("index", b"3")]
    assert producer.stopped


def test_a_failed_ack_is_publish_failed_and_the_next_publish_uses_a_new_producer() -> None:
    async def scenario() -> tuple[Factory, Observer, PublishFailed]:
        broken = FakeProducer()
        factory, observer = Factory(broken), Observer()
        publisher = KafkaPublisher(factory, timeout_s=1, observer=observer)
        await publisher.start()
        broken.ack_error = OutOfOrderSequenceNumber()
        with pytest.raises(PublishFailed) as failed:
            await publisher.publish(RECORDS)
        await publisher.publish(RECORDS)  # a fresh producer takes over
        await publisher.stop()
        return factory, observer, failed.value

    factory, observer, failed = asyncio.run(scenario())
    assert not failed.timed_out
    assert "OutOfOrderSequenceNumber" in failed.message and "retry later" in failed.message
    assert len(factory.made) == 2 and factory.made[0].stopped
    assert len(factory.made[1].sent) == len(RECORDS)
    assert observer.errors == ["OutOfOrderSequenceNumber"] and observer.replaced == 1


def test_no_ack_in_time_is_a_timeout_and_keeps_the_producer_until_replace_after() -> None:
    now = [100.0]

    async def scenario() -> tuple[Factory, list[PublishFailed], Observer]:
        slow = FakeProducer()
        factory, observer = Factory(slow), Observer()
        publisher = KafkaPublisher(
            factory, timeout_s=0.05, replace_after_s=10, observer=observer, monotonic=lambda: now[0]
        )
        await publisher.start()
        slow.never_ack = True
        failures = []
        for _ in range(2):
            with pytest.raises(PublishFailed) as failed:
                await publisher.publish(RECORDS)
            failures.append(failed.value)
        assert len(factory.made) == 1  # a timeout alone does not replace the producer
        now[0] += 11  # ... but failing for longer than replace_after_s does
        await publisher.publish(RECORDS)
        await publisher.stop()
        return factory, failures, observer

    factory, failures, observer = asyncio.run(scenario())
    assert all(f.timed_out and "no acknowledgement within 0.05 s" in f.message for f in failures)
    assert len(factory.made) == 2 and factory.made[0].stopped
    assert observer.errors == ["timeout", "timeout"] and observer.replaced == 1


def test_a_success_resets_the_failing_clock() -> None:
    now = [0.0]

    async def scenario() -> Factory:
        flaky = FakeProducer()
        factory = Factory(flaky)
        publisher = KafkaPublisher(
            factory, timeout_s=0.05, replace_after_s=10, monotonic=lambda: now[0]
        )
        await publisher.start()
        flaky.never_ack = True
        with pytest.raises(PublishFailed):
            await publisher.publish(RECORDS)
        flaky.never_ack = False
        now[0] += 5
        await publisher.publish(RECORDS)
        now[0] += 20
        await publisher.publish(RECORDS)
        await publisher.stop()
        return factory

    assert len(asyncio.run(scenario()).made) == 1


def test_while_the_broker_is_down_a_replacement_fails_fast_and_is_retried() -> None:
    async def scenario() -> tuple[Factory, PublishFailed]:
        first = FakeProducer()
        down = FakeProducer(start_error=KafkaConnectionError("Unable to bootstrap"))
        factory = Factory(first, down)
        publisher = KafkaPublisher(factory, timeout_s=1)
        await publisher.start()
        first.send_error = KafkaError("broker went away")
        with pytest.raises(PublishFailed):
            await publisher.publish(RECORDS)
        with pytest.raises(PublishFailed) as failed:
            await publisher.publish(RECORDS)  # replacement cannot start: still a clean 503
        await publisher.publish(RECORDS)  # the broker is back: the next replacement works
        await publisher.stop()
        return factory, failed.value

    factory, failed = asyncio.run(scenario())
    assert "Unable to bootstrap" in failed.message
    assert len(factory.made) == 3 and factory.made[1].stopped is True
    assert len(factory.made[2].sent) == len(RECORDS)


def test_start_failure_is_publish_failed() -> None:
    async def scenario() -> None:
        publisher = KafkaPublisher(
            Factory(FakeProducer(start_error=KafkaConnectionError("refused"))), timeout_s=1
        )
        await publisher.start()

    with pytest.raises(PublishFailed, match="refused"):
        asyncio.run(scenario())


def test_connected_asks_the_broker() -> None:
    async def scenario() -> tuple[bool, bool]:
        producer = FakeProducer()
        publisher = KafkaPublisher(Factory(producer), timeout_s=1)
        await publisher.start()
        up = await publisher.connected()
        producer.metadata_error = KafkaError("Unable to get cluster metadata")
        down = await publisher.connected()
        await publisher.stop()
        return up, down

    assert asyncio.run(scenario()) == (True, False)


def test_publishing_nothing_needs_no_producer() -> None:
    factory = Factory()
    asyncio.run(KafkaPublisher(factory, timeout_s=1).publish([]))
    assert factory.made == []


def test_timeout_error_from_the_producer_counts_as_timeout() -> None:
    async def scenario() -> PublishFailed:
        producer = FakeProducer()
        publisher = KafkaPublisher(Factory(producer), timeout_s=1)
        await publisher.start()
        producer.ack_error = KafkaTimeoutError()
        with pytest.raises(PublishFailed) as failed:
            await publisher.publish(RECORDS)
        return failed.value

    assert asyncio.run(scenario()).timed_out


# --- against the real broker -----------------------------------------------------------------


@pytest.mark.integration
def test_records_reach_kafka_with_headers_on_the_default_partition(
    kafka_bootstrap: str, unique_name: str
) -> None:
    async def scenario() -> list[Any]:
        await ensure_topics(kafka_bootstrap, [TopicSpec(unique_name, 3)])
        publisher = KafkaPublisher.for_bootstrap(
            kafka_bootstrap, timeout_s=10, max_request_size=2 * 1024 * 1024
        )
        await publisher.start()
        records = [
            OutgoingRecord(
                unique_name, f"key-{i}".encode(), f"value-{i}".encode(), (("n", b"%d" % i),)
            )
            for i in range(30)
        ]
        records.append(OutgoingRecord(unique_name, b"big", b"x" * (1536 * 1024)))  # > 1 MiB
        await publisher.publish(records)
        assert await publisher.connected()
        await publisher.stop()
        return await _consume(kafka_bootstrap, unique_name, len(records))

    messages = asyncio.run(scenario())
    assert len(messages) == 31
    for message in messages:
        assert message.partition == kafka_partition(message.key, 3)
        if message.key != b"big":
            number = message.key.decode().removeprefix("key-")
            assert message.value == f"value-{number}".encode()
            assert list(message.headers) == [("n", number.encode())]


@pytest.mark.integration
def test_many_concurrent_requests_are_all_acknowledged_in_partition_order(
    kafka_bootstrap: str, unique_name: str
) -> None:
    """Concurrent requests on one idempotent producer: every record once, in request order per
    partition, none refused. (Per-request closed batches failed here in CI: queued behind one
    undrained batch per partition, they timed out on a fresh topic.)"""
    requests, per_request = 60, 100

    async def scenario() -> list[Any]:
        await ensure_topics(kafka_bootstrap, [TopicSpec(unique_name, 4)])
        publisher = KafkaPublisher.for_bootstrap(
            kafka_bootstrap, timeout_s=30, max_request_size=1024 * 1024
        )
        await publisher.start()
        try:
            for wave in range(3):
                await asyncio.gather(
                    *(
                        publisher.publish(
                            [
                                OutgoingRecord(unique_name, f"w{wave}-r{r}-{i:03d}".encode(), b"v")
                                for i in range(per_request)
                            ]
                        )
                        for r in range(requests)
                    )
                )
        finally:
            await publisher.stop()
        return await _consume(kafka_bootstrap, unique_name, 3 * requests * per_request)

    messages = asyncio.run(scenario())
    assert len(messages) == 3 * requests * per_request
    assert len({m.key for m in messages}) == len(messages)  # each exactly once
    # within a partition, one request's records keep their order
    last: dict[tuple[int, bytes], int] = {}
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        request, _, number = message.key.rpartition(b"-")
        previous = last.get((message.partition, request), -1)
        assert int(number) > previous
        last[(message.partition, request)] = int(number)


async def _consume(bootstrap: str, topic: str, count: int) -> list[Any]:
    """Up to ``count`` records of ``topic`` from the beginning (stops after 5 s of nothing)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        while len(out) < count:
            batches = await consumer.getmany(timeout_ms=5000)
            if not batches:
                break
            for messages in batches.values():
                out.extend(messages)
    finally:
        await consumer.stop()
    return out
