"""A decided batch on its way through the sink and the finisher, and what becomes of the
events ClickHouse refused in it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from pipeline.worker.batch import BatchResult, ConsumedMessage, dead_letter
from pipeline.worker.poison import Refusal, code_name
from pipeline.worker.sink import SinkResult

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """A decided batch on its way to ClickHouse, Kafka and the commit."""

    messages: list[ConsumedMessage]
    result: BatchResult
    write: asyncio.Future[SinkResult]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    #: written, sent, stored and committed
    finished: bool = False


def isolate(item: InFlight, refusals: tuple[Refusal, ...]) -> None:
    """Events ClickHouse refused go to the dead-letter topic as they were consumed, never to
    the quarantine topic (sink.py has written their event_log rows as ``dead_letter``)."""
    refused = {(refusal.partition, refusal.offset): refusal for refusal in refusals}
    result = item.result
    result.quarantined = [record for record in result.quarantined if record.source not in refused]
    for message in item.messages:
        refusal = refused.get((message.partition, message.offset))
        if refusal is not None:
            result.dead_letters.append(
                dead_letter(
                    message,
                    "poison",
                    f"ClickHouse refused its {refusal.table} row ({code_name(refusal.code)}): "
                    f"{refusal.message}",
                    [("table", refusal.table.encode())],
                )
            )


async def commit_batch(consumer: AIOKafkaConsumer, topic: str, result: BatchResult) -> None:
    """Step 6: commit the next offset of each partition of the batch that is still ours."""
    assignment = consumer.assignment()
    offsets = {
        tp: offset + 1
        for partition, offset in result.last_offsets.items()
        if (tp := TopicPartition(topic, partition)) in assignment
    }
    if not offsets:
        return
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as exc:
        # The group moved on (rebalance): the new owner re-reads from the last committed
        # offset and rewrites the same rows with the same keys. Nothing lost or doubled.
        log.warning("offset commit refused after a rebalance (%s); batch will be re-read", exc)
