"""The Faust app of the stream workers: topology, state and the order of side effects.

Topology (details and reasons in docs/topology.md)::

    usage.events (key = idempotency key, N partitions)
        └─ agent `meter` (concurrency 1) ── batch of up to worker_batch_max events ──┐
             reads/writes table `dedup` (RocksDB, changelog `<app>-dedup-changelog`,   │
             same N partitions, co-partitioned with usage.events)                    │
             ├─> ClickHouse: event_log, usage_events, meter_entries   (sink.py)  <───┘
             ├─> usage.quarantine (key = idempotency key)
             └─> usage.dead-letters (records that are not canonical events)

No repartitioning: the edge keys every event by its idempotency key, so all copies of one key
are on one partition, whichever tenant they resolve to, and the dedup state for a key lives in
the same partition number of the changelog. Dedup is by (tenant, key), a finer key on the same
partition.

Faust rules followed (SPEC 11): at-least-once, agent concurrency 1, manual acks only after the
batch is written (``noack_take``; ``take()`` would ack a batch whose body raised), no windowed
tables for the dedup TTL (the changelog is compacted *and* time-limited instead).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import faust
from faust.streams import _current_event
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.settings import Settings
from pipeline.worker.batch import BatchProcessor, BatchResult, ConsumedMessage, OffsetGap
from pipeline.worker.metrics import CONSUMER_LAG
from pipeline.worker.sink import ClickHouseSink, SinkStopped

#: exit code of a worker that stopped because the stream skipped a message (restart it)
EXIT_OFFSET_GAP = 75

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


def build_app(
    settings: Settings,
    bootstrap: str,
    processor: BatchProcessor,
    sink: ClickHouseSink,
) -> faust.App:
    """A Faust app wired to ``processor`` (pure decisions) and ``sink`` (ClickHouse writes)."""
    window_ms = settings.dedup_window_days * 24 * 3600 * 1000
    app = faust.App(
        settings.worker_group_id,
        broker=_broker_urls(bootstrap),
        store="rocksdb://",
        datadir=str(settings.state_dir / "worker"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_commit_interval=1.0,
        # A worker killed without leaving the group keeps its partitions until its session
        # expires; a short session lets a restarted or surviving worker take over quickly.
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=max(settings.worker_session_timeout_s / 4, 1.0),
        table_standby_replicas=0,
        producer_acks=-1,
        # Throughput: fetch and buffer whole batches (defaults fetch ~500 records at a time and
        # let a stream prefetch only 4096, which starved the batch step).
        broker_max_poll_records=settings.worker_batch_max,
        stream_buffer_maxsize=4 * settings.worker_batch_max,
        consumer_max_fetch_size=8 * 1024 * 1024,
        web_enabled=settings.worker_web_port != 0,
        web_port=settings.worker_web_port or 6066,
        web_bind="127.0.0.1",
        web_in_thread=False,
    )

    def raw_topic(name: str) -> faust.TopicT:
        # Records are our own bytes (canonical JSON); Faust must not (de)serialize them.
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
        )

    events_topic = raw_topic(settings.topics.events)
    quarantine_topic = raw_topic(settings.topics.quarantine)
    dead_letter_topic = raw_topic(settings.topics.dead_letters)
    dedup = app.Table(
        "dedup",
        default=None,
        key_type=bytes,  # bytes -> raw serializer for keys and values
        value_type=bytes,
        partitions=settings.topic_partitions,
        options={"driver": "rocksdict"},
        # Bounded state: Kafka drops changelog segments older than the window and compacts the
        # rest; an entry older than the window is also ignored on read (processor.window).
        extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(window_ms)},
        help="first copy (partition, offset, times) of each (tenant, idempotency key)",
    )
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-sink")
    crash = CrashPoint.parse(settings.worker_crash_at)

    def in_context_of(event: Any) -> None:
        # Faust decides a table key's changelog partition and RocksDB column from the *current
        # event*. In a batch that is the last event taken, possibly of another partition, so
        # each table access sets the event it belongs to (state stays co-partitioned).
        _current_event.set(weakref.ref(event))

    @app.agent(events_topic, concurrency=1)
    async def meter(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        # Batches whose ClickHouse write is under way, finished strictly in order. While batch
        # N is written (sink thread), batch N+1 is taken and decided (this task); its dedup
        # decisions see N's first copies through processor.in_flight. At most two in flight.
        written: asyncio.Queue[tuple[list[Any], BatchResult, asyncio.Future[int]] | None] = (
            asyncio.Queue(maxsize=1)
        )

        async def finish_in_order() -> None:
            while (item := await written.get()) is not None:
                events, result, write = item
                # 1-3: ClickHouse, retried inside until written (sink.py: crash points)
                await write
                crash.maybe("after_sink")
                # 4: quarantine and dead-letter records, acknowledged by Kafka
                sends = [
                    await quarantine_topic.send(key=r.key, value=r.value, headers=r.headers)
                    for r in result.quarantined
                ] + [
                    await dead_letter_topic.send(key=r.key, value=r.value, headers=r.headers)
                    for r in result.dead_letters
                ]
                if sends:
                    await asyncio.gather(*sends)
                # 5: dedup state learns the first copies written above
                for index, key, value in result.new_first_copies:
                    in_context_of(events[index])
                    dedup[key] = value
                processor.settled(result)
                crash.maybe("after_state")
                # 6: ack; Faust commits contiguous acked offsets after this
                for ev in events:
                    await stream.ack(ev)
                crash.maybe("after_ack")
                crash.batches += 1
                for partition, offset in result.last_offsets.items():
                    processor.note_processed(partition, offset)

        finisher = asyncio.ensure_future(finish_in_order())
        try:
            async for events in stream.noack_take(  # type: ignore[attr-defined]
                settings.worker_batch_max, within=settings.worker_batch_within_s
            ):
                if finisher.done():
                    finisher.result()  # re-raise what stopped it
                consumed = [
                    ConsumedMessage(
                        topic=ev.message.topic,
                        partition=ev.message.partition,
                        offset=ev.message.offset,
                        value=ev.message.value,
                    )
                    for ev in events
                ]

                def lookup(index: int, key: bytes, events: Any = events) -> bytes | None:
                    in_context_of(events[index])
                    value: bytes | None = dedup.get(key)
                    return value

                try:
                    result = processor.process(consumed, lookup)
                except OffsetGap as gap:
                    # Nothing of this batch is written or acknowledged; a restart re-reads
                    # from the last committed offset. Exiting at once is as safe as SIGKILL.
                    log.error("%s; exiting with %d to re-read it", gap, EXIT_OFFSET_GAP)
                    logging.shutdown()
                    os._exit(EXIT_OFFSET_GAP)
                write = loop.run_in_executor(executor, sink.write, result.sink_batch)
                put = asyncio.ensure_future(written.put((events, result, write)))
                await asyncio.wait({put, finisher}, return_when=asyncio.FIRST_COMPLETED)
                if finisher.done():
                    put.cancel()
                    finisher.result()  # re-raise what stopped it (SinkStopped)
        except SinkStopped as exc:
            log.warning("worker stopping: %s (they will be redelivered)", exc)
        finally:
            sink.stopping.set()
            finisher.cancel()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: Any, assigned: Any, **_: Any) -> None:
        processor.forget_partitions(
            [tp.partition for tp in assigned if tp.topic == settings.topics.events]
        )

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic != settings.topics.events:
                continue
            highwater = consumer.highwater(tp)
            position = processor.processed_position(tp.partition)
            if highwater is not None and position is not None:
                CONSUMER_LAG.labels(partition=str(tp.partition)).set(max(highwater - position, 0))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return app


class CrashPoint:
    """TEST-ONLY fault injection (``PIPELINE_WORKER_CRASH_AT=<point>:<batch>``): the process
    SIGKILLs itself at that point of that batch (1-based), like a power cut. Off by default."""

    def __init__(self, point: str | None, batch: int) -> None:
        self.point = point
        self.batch = batch
        self.batches = 0

    @classmethod
    def parse(cls, spec: str | None) -> CrashPoint:
        if not spec:
            return cls(None, 0)
        point, _, number = spec.partition(":")
        return cls(point, int(number))

    def maybe(self, point: str) -> None:
        if self.point == point and self.batches + 1 == self.batch:
            log.warning("fault injection: SIGKILL at %s of batch %d", point, self.batch)
            os.kill(os.getpid(), signal.SIGKILL)
