"""The stream worker: consume batches, decide, write, then commit. Topology in docs/topology.md.

::

    usage.events (key = idempotency key, N partitions)
        └─ MeterWorker (one consumer group member per process) ── batches of whole fetches ─┐
             dedup state: RocksDB per partition + changelog `<group>-dedup-changelog`        │
             (same N partitions, co-partitioned with usage.events)                           │
             ├─> ClickHouse: event_log, usage_events, meter_entries   (sink.py)  <───────────┘
             ├─> usage.quarantine (key = idempotency key)
             └─> usage.dead-letters (records that are not canonical events)

No repartitioning: the edge keys every event by its idempotency key, so all copies of one key
are on one partition, whichever tenant they resolve to, and the dedup state for a key lives in
the same partition number of the changelog.

Why not Faust's agents (the first design; docs/topology.md has the measurements): on Apache
Kafka 4.1 a Faust stream skipped an offset during a rebalance and committed past it (contract §11's
loss), and its per-message path capped the worker at ~2,000 events/s. This loop reads whole
fetches with aiokafka's ``getmany``, commits explicitly after the batch is written, and writes
the dedup changelog once per batch. The decisions (batch.py) and the sink did not change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from pipeline.settings import Settings
from pipeline.worker.batch import (
    BatchProcessor,
    BatchResult,
    ConsumedMessage,
    OffsetGap,
)
from pipeline.worker.changelog import changelog_topic, recover
from pipeline.worker.faults import CrashPoint
from pipeline.worker.metrics import CONSUMER_LAG
from pipeline.worker.outputs import KafkaOutputs
from pipeline.worker.progress import LoopClock
from pipeline.worker.sink import ClickHouseSink, SinkStopped
from pipeline.worker.state import DedupState
from pipeline.worker.web import serve_metrics

#: exit code of a worker that stopped because a partition's offsets had a hole: start it again
#: (it re-reads from its committed offsets). 75 is EX_TEMPFAIL: a supervisor's "try again".
EXIT_OFFSET_GAP = 75
#: how long a rebalance or a stop waits for in-flight batches to be written and committed
DRAIN_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass
class _InFlight:
    """A decided batch on its way to ClickHouse, Kafka and the commit."""

    messages: list[ConsumedMessage]
    result: BatchResult
    write: asyncio.Future[int]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class MeterWorker:
    """One worker process's consumer loop (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        processor: BatchProcessor,
        sink: ClickHouseSink,
        *,
        say: Say = print,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.processor = processor
        self.sink = sink
        self.say = say
        self.topic = settings.topics.events
        self.changelog = changelog_topic(settings.worker_group_id)
        self.state = DedupState(settings.state_dir / "worker" / settings.worker_group_id / "dedup")
        self.crash = CrashPoint.parse(settings.worker_crash_at)
        self._stop = asyncio.Event()
        self._pending: list[_InFlight] = []
        self._queue: asyncio.Queue[_InFlight | None] = asyncio.Queue(maxsize=1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-sink")
        self._consumer: AIOKafkaConsumer | None = None
        self.outputs = KafkaOutputs(bootstrap, settings.topics, self.changelog, self._stop)
        self.loop_clock = LoopClock()
        #: partitions of the events topic assigned to this worker (their state is current)
        self._owned: set[int] = set()
        #: set while the owned partitions' state is current. aiokafka starts fetching as soon
        #: as partitions are assigned, while on_assigned is still rebuilding their state: no
        #: batch may be decided before that is done.
        self._state_ready = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        s = self.settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=s.worker_group_id,
            enable_auto_commit=False,  # committed by _finish_in_order once the batch is written
            auto_offset_reset="earliest",
            max_poll_records=s.worker_batch_max,
            fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            # A worker killed without leaving the group keeps its partitions until its session
            # expires; a short session lets a restarted or surviving worker take over quickly.
            session_timeout_ms=int(s.worker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(max(s.worker_session_timeout_s / 4, 1.0) * 1000),
        )
        await self.outputs.start()
        runner = await serve_metrics(s.worker_web_port)
        finisher: asyncio.Task[None] | None = None
        lag: asyncio.Task[None] | None = None
        try:
            self._consumer.subscribe([self.topic], listener=_Rebalance(self))
            await self._consumer.start()
            finisher = asyncio.create_task(self._finish_in_order())
            lag = asyncio.create_task(self._report_lag())
            self.say(
                f"Worker '{s.worker_group_id}' consuming {self.topic}; dedup state in "
                f"{self.state.directory}; Ctrl-C to stop"
            )
            await self._consume(finisher)
        except SinkStopped as exc:
            log.warning("worker stopping: %s (they will be redelivered)", exc)
        finally:
            await self._shutdown(finisher, lag, runner)

    async def _consume(self, finisher: asyncio.Task[None]) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        loop = asyncio.get_running_loop()
        within_ms = int(self.settings.worker_batch_within_s * 1000)
        state = self.state
        stop = asyncio.ensure_future(self._stop.wait())
        clock = self.loop_clock
        while not self._stop.is_set():
            started = time.monotonic()
            fetch = asyncio.ensure_future(
                consumer.getmany(timeout_ms=within_ms, max_records=self.settings.worker_batch_max)
            )
            await asyncio.wait({fetch, stop, finisher}, return_when=asyncio.FIRST_COMPLETED)
            if finisher.done():
                fetch.cancel()
                finisher.result()  # re-raise what stopped it (SinkStopped)
            if not fetch.done():
                fetch.cancel()
                break
            records = fetch.result()
            fetched = time.monotonic()
            clock.add("kafka", fetched - started)
            if not records:
                continue
            if not self._state_ready.is_set():
                ready = asyncio.ensure_future(self._state_ready.wait())
                await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not ready.done():
                    ready.cancel()
                    break
            # Records of a partition revoked since they were fetched are left to its new owner
            # (it re-reads them from the committed offset with the current state).
            owned = self._owned
            topic = self.topic
            messages: list[ConsumedMessage] = [
                _new(ConsumedMessage, (topic, tp.partition, r.offset, r.value))
                for tp, batch in records.items()
                if tp.partition in owned
                for r in batch
            ]
            if not messages:
                continue

            try:
                result = self.processor.process(messages, state.reader())
            except OffsetGap as gap:
                # Nothing of this batch is written or committed; a restart re-reads from the
                # last committed offset. Exiting at once is as safe as SIGKILL.
                log.error("%s; exiting with %d to re-read it", gap, EXIT_OFFSET_GAP)
                logging.shutdown()
                os._exit(EXIT_OFFSET_GAP)
            decided = time.monotonic()
            clock.add("deciding", decided - fetched)
            clock.decided(len(messages))
            item = _InFlight(
                messages,
                result,
                loop.run_in_executor(self._executor, self.sink.write, result.sink_batch),
            )
            self._pending.append(item)
            put = asyncio.ensure_future(self._queue.put(item))
            await asyncio.wait({put, finisher}, return_when=asyncio.FIRST_COMPLETED)
            if finisher.done():
                put.cancel()
                finisher.result()
            clock.add("writes", time.monotonic() - decided)
        stop.cancel()

    async def _finish_in_order(self) -> None:
        """Finish decided batches strictly in order. While batch N is written (sink thread),
        batch N+1 is fetched and decided; its dedup decisions see N's first copies through
        ``processor.in_flight``. At most two batches are in flight."""
        while (item := await self._queue.get()) is not None:
            result = item.result
            try:
                # 1-3: ClickHouse, retried inside until written (sink.py: crash points)
                await item.write
                self.crash.maybe("after_sink")
                # 4: quarantine and dead-letter records, acknowledged by Kafka
                await self.outputs.send_out(result)
                # 5: the dedup state learns the first copies written above: changelog first
                # (acks=all), then the local database with the changelog position it reached
                await self._store_first_copies(item)
                self.processor.settled(result)
                self.crash.maybe("after_state")
                # 6: commit the next offset of each partition of the batch that we still own
                await self.outputs.retrying(
                    "committing offsets", self._commit, result, produces=False
                )
                self.crash.maybe("after_commit")
                self.crash.batches += 1
                for partition, offset in result.last_offsets.items():
                    self.processor.note_processed(partition, offset)
            finally:
                self._pending.remove(item)
                if not item.done.done():
                    item.done.set_result(None)

    async def _store_first_copies(self, item: _InFlight) -> None:
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for index, key, value in item.result.new_first_copies:
            partition = item.messages[index].partition
            # A partition revoked meanwhile belongs to its new owner's state and changelog: it
            # re-reads these messages (uncommitted) and decides them itself.
            if partition in self._owned:
                by_partition.setdefault(partition, []).append((key, value))
        if not by_partition:
            return
        positions = await self.outputs.write_changelog(by_partition)
        for partition, entries in by_partition.items():
            self.state.partition(partition).apply(entries, positions[partition])

    async def _commit(self, result: BatchResult) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        assignment = consumer.assignment()
        offsets = {
            tp: offset + 1
            for partition, offset in result.last_offsets.items()
            if (tp := TopicPartition(self.topic, partition)) in assignment
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on (rebalance): the new owner re-reads from the last committed
            # offset and rewrites the same rows with the same keys. Nothing lost or doubled.
            log.warning("offset commit refused after a rebalance (%s); batch will be re-read", exc)

    async def drain(self) -> bool:
        """Wait until every decided batch is written and committed. False on timeout."""
        waiting = [item.done for item in self._pending]
        if not waiting:
            return True
        _, late = await asyncio.wait(waiting, timeout=DRAIN_TIMEOUT_S)
        return not late

    # --- rebalances -------------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._state_ready.clear()
        # Finish and commit what was decided while the partitions were ours; what does not
        # make it in time is re-read by the next owner (idempotent rows, same decisions).
        if not await self.drain():
            log.warning("rebalance: in-flight batches not committed in time; they will be re-read")
        partitions = [tp.partition for tp in revoked if tp.topic == self.topic]
        self.processor.forget_partitions(partitions)
        self._owned.difference_update(partitions)
        for partition in partitions:
            self.state.close(partition)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
        self.processor.forget_partitions(partitions)

        async def rebuild(_: object) -> None:
            await recover(self.bootstrap, self.changelog, partitions, self.state, say=self.say)

        # A broker hiccup here must not leave the worker without state (it would wait forever
        # for it): retried like the finisher's Kafka steps.
        await self.outputs.retrying("rebuilding the dedup state", rebuild, None, produces=False)
        self._owned.update(partitions)
        self._state_ready.set()
        log.info("assigned partitions %s of %s", partitions, self.topic)

    # --- around the loop --------------------------------------------------------------------

    async def _report_lag(self) -> None:
        assert self._consumer is not None
        ticks = 0
        while True:
            await asyncio.sleep(5.0)
            ticks += 1
            if ticks % 2 == 0 and (line := self.loop_clock.report()):
                log.info("%s", line)
            for tp in self._consumer.assignment():
                highwater = self._consumer.highwater(tp)
                position = self.processor.processed_position(tp.partition)
                if highwater is not None and position is not None:
                    CONSUMER_LAG.labels(partition=str(tp.partition)).set(
                        max(highwater - position, 0)
                    )

    async def _shutdown(
        self,
        finisher: asyncio.Task[None] | None,
        lag: asyncio.Task[None] | None,
        runner: web.AppRunner | None,
    ) -> None:
        if lag is not None:
            lag.cancel()
        if finisher is not None and not finisher.done():
            if not await self.drain():
                self.sink.stopping.set()  # unwritten batches stay uncommitted: re-read later
            await self._queue.put(None)
            try:
                await asyncio.wait_for(finisher, DRAIN_TIMEOUT_S)
            except (TimeoutError, SinkStopped, KafkaError) as exc:
                log.warning("stopped with batches unfinished (%s); they will be re-read", exc)
        self.sink.stopping.set()
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group: its partitions move at once
        await self.outputs.stop()
        if runner is not None:
            await runner.cleanup()
        self.state.close_all()
        self._executor.shutdown(wait=False)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: MeterWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.worker.on_assigned(set(assigned))


#: tuple.__new__ builds a NamedTuple without its Python-level __new__ (once per record).
_new = tuple.__new__


def install_stop_signals(worker: MeterWorker) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.request_stop)
