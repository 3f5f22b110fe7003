"""Reading a topic back in tests that claim what reached Kafka."""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer


async def consume(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """Every record of ``topic`` from the beginning: until ``expected`` arrived (at most 30 s),
    then half a second more, so that a record beyond what was expected shows up too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while len(out) < expected and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(messages)
        for messages in (await consumer.getmany(timeout_ms=500)).values():
            out.extend(messages)  # anything beyond what was expected would show up here
    finally:
        await consumer.stop()
    return out
