"""What the worker produces to Kafka, and how it keeps going through a broker outage.

One producer (the project's settings: ``acks=all``, idempotence, lz4) writes the quarantine and
dead-letter records and the dedup changelog. :meth:`KafkaOutputs.retrying` runs a Kafka step of
the finisher until it succeeds: a broker outage holds the batch (uncommitted) instead of
crashing the worker, and every step is idempotent, so a retry only repeats it. After a failed
produce the producer is replaced: an idempotent producer can stay stuck on
OutOfOrderSequenceNumber after an outage (seen in the Kafka-outage test).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline.kafka import make_producer
from pipeline.settings import TopicNames
from pipeline.worker.batch import BatchResult
from pipeline.worker.changelog import write_changelog
from pipeline.worker.metrics import KAFKA_RETRIES
from pipeline.worker.sink import SinkStopped

log = logging.getLogger(__name__)

#: how long a replaced producer may take to flush and close in the background
RETIRE_TIMEOUT_S = 30.0
MAX_BACKOFF_S = 10.0


class KafkaOutputs:
    def __init__(
        self, bootstrap: str, topics: TopicNames, changelog: str, stopping: asyncio.Event
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.changelog = changelog
        self._stopping = stopping
        self._producer: AIOKafkaProducer | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._current()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send_out(self, result: BatchResult) -> None:
        """The batch's quarantined and dead-lettered records, acknowledged (retried)."""
        if result.quarantined or result.dead_letters:
            await self.retrying("sending quarantined records", self._send_out, result)

    async def write_changelog(
        self, entries: Mapping[int, Sequence[tuple[bytes, bytes]]]
    ) -> dict[int, int]:
        """Changelog entries per partition, acknowledged (retried); positions reached."""
        positions: dict[int, int] = {}

        async def write(_: object) -> None:
            producer = await self._current()
            positions.update(await write_changelog(producer, self.changelog, entries))

        await self.retrying("writing the dedup changelog", write, None)
        return positions

    async def retrying(
        self,
        what: str,
        step: Callable[[Any], Awaitable[None]],
        argument: Any,
        *,
        produces: bool = True,
    ) -> None:
        """Run ``step(argument)`` until it succeeds; raise SinkStopped if the worker stops
        meanwhile (the batch then stays uncommitted)."""
        backoff = 0.5
        while True:
            try:
                await step(argument)
                return
            except KafkaError as exc:
                if produces:
                    self._replace()
                if self._stopping.is_set():
                    raise SinkStopped(f"stopped while {what} failed ({exc})") from exc
                KAFKA_RETRIES.labels(step=what).inc()
                log.warning(
                    "Kafka error while %s: %s; retrying in %.1f s, the batch stays uncommitted",
                    what,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _send_out(self, result: BatchResult) -> None:
        producer = await self._current()
        sends = [
            await producer.send(self.topics.quarantine, r.value, key=r.key, headers=r.headers)
            for r in result.quarantined
        ] + [
            await producer.send(self.topics.dead_letters, r.value, key=r.key, headers=r.headers)
            for r in result.dead_letters
        ]
        await asyncio.gather(*sends)

    async def _current(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer = make_producer(self.bootstrap)
            await producer.start()  # a broker that is down: KafkaError, retried by the caller
            return producer
        return self._producer

    def _replace(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            retiring = asyncio.create_task(_stop_quietly(old))
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), RETIRE_TIMEOUT_S)
    except (TimeoutError, KafkaError) as exc:
        log.info("replaced producer did not stop cleanly: %s", exc)
