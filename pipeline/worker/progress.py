"""Where the worker's loop spends its time, said in words every few seconds.

The loop does three things in turn: wait for Kafka (``getmany``), decide a batch (the pure batch
step), and hand it to the finisher, which may make it wait while ClickHouse, the changelog or
the commit of the previous batch are not done (back-pressure). The share of each says what
limits the worker right now: Kafka (nothing to do), the CPU (deciding), or the writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from pipeline.worker.metrics import CONSUMER_LAG

log = logging.getLogger(__name__)


@dataclass
class LoopClock:
    """Seconds spent per phase of the loop since the last report, and events decided."""

    clock: Callable[[], float] = time.monotonic
    events: int = 0
    batches: int = 0
    seconds: dict[str, float] = field(
        default_factory=lambda: {"kafka": 0.0, "deciding": 0.0, "writes": 0.0}
    )
    _since: float | None = None

    def __post_init__(self) -> None:
        self._since = self.clock()

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    def decided(self, events: int) -> None:
        self.events += events
        self.batches += 1

    def report(self) -> str | None:
        """One line about the time since the last report (None if nothing was decided), then
        start over."""
        now = self.clock()
        assert self._since is not None
        elapsed, self._since = max(now - self._since, 1e-9), now
        events, batches, seconds = self.events, self.batches, self.seconds
        self.events, self.batches = 0, 0
        self.seconds = dict.fromkeys(seconds, 0.0)
        if not events:
            return None
        total = sum(seconds.values()) or 1e-9
        shares = ", ".join(f"{name} {100 * spent / total:.0f}%" for name, spent in seconds.items())
        return (
            f"{events:,} events in {elapsed:.0f} s ({events / elapsed:,.0f}/s, "
            f"{batches} batches of ~{events // batches:,}); loop time: {shares} "
            "(kafka = waiting for records, writes = waiting for ClickHouse/changelog/commit)"
        )


async def report_lag(
    consumer: AIOKafkaConsumer, processed: Callable[[int], int | None], clock: LoopClock
) -> None:
    """Every 5 s: the consumer lag per partition (gauge); every 10 s the loop clock's line."""
    ticks = 0
    while True:
        await asyncio.sleep(5.0)
        ticks += 1
        if ticks % 2 == 0 and (line := clock.report()):
            log.info("%s", line)
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = processed(tp.partition)
            if highwater is not None and position is not None:
                CONSUMER_LAG.labels(partition=str(tp.partition)).set(max(highwater - position, 0))
