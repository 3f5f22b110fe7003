"""The stream worker: consume batches, decide, write, then commit. Topology in docs/topology.md.

::

    usage.events (key = idempotency key, N partitions)
        └─ MeterWorker (one consumer group member per process) ── batches of whole fetches ─┐
             dedup state: RocksDB per partition + changelog `<group>-dedup-changelog`        │
             (same N partitions, co-partitioned with usage.events)                           │
             ├─> ClickHouse: event_log, usage_events, meter_entries   (sink.py)  <───────────┘
             ├─> usage.quarantine (key = idempotency key)
             └─> usage.dead-letters (records the batch step refuses; poison records)

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
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from pipeline.settings import Settings
from pipeline.worker.batch import BatchProcessor, BatchResult, ConsumedMessage, OffsetGap
from pipeline.worker.changelog import changelog_topic, recover
from pipeline.worker.faults import CrashPoint
from pipeline.worker.inflight import InFlight, commit_batch, isolate
from pipeline.worker.outputs import KafkaOutputs
from pipeline.worker.progress import LoopClock, report_lag
from pipeline.worker.sink import ClickHouseSink, SinkBatch, SinkResult, SinkStopped
from pipeline.worker.sink_thread import SinkThread
from pipeline.worker.state import DedupState
from pipeline.worker.stopping import (
    CONSUMER_STOP_S,
    EXIT_RESERVE_S,
    PRODUCER_STOP_S,
    StopClock,
    bounded,
    install_stop_signals,
)
from pipeline.worker.web import serve_metrics

#: exit code of a worker that stopped because a partition's offsets had a hole: start it again
#: (it re-reads from its committed offsets). 75 is EX_TEMPFAIL: a supervisor's "try again".
EXIT_OFFSET_GAP = 75
#: how long a rebalance waits for in-flight batches to be written and committed (a stop waits
#: what its grace allows: stopping.py)
DRAIN_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)

Say = Callable[[str], None]


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
        self.crash = sink.crash = CrashPoint.parse(settings.worker_crash_at)
        self._stop = asyncio.Event()
        self.stop_clock = StopClock()
        self._pending: list[InFlight] = []
        #: batches that left the finisher unfinished (a stop or a failed step)
        self._abandoned: list[InFlight] = []
        self._putting: asyncio.Future[None] | None = None
        self._queue: asyncio.Queue[InFlight | None] = asyncio.Queue(maxsize=1)
        self._sink_thread: SinkThread[SinkBatch, SinkResult] = SinkThread(sink.write)
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
        self.stop_clock.start()
        self._stop.set()

    @property
    def sink_busy(self) -> bool:
        """An insert may be in flight in the sink thread."""
        return self._sink_thread.busy

    def unfinished(self) -> str:
        """What a stop now would leave uncommitted, for the log."""
        items = [*self._abandoned, *self._pending]
        if not items:
            return "every decided batch is written and committed"
        return (
            f"{len(items)} decided batches ({sum(len(i.messages) for i in items)} events) are "
            "not written or not committed; they will be re-read from the last committed offsets"
        )

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> bool:
        """Consume until stopped; True when every decided batch was written and committed."""
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
            lag = asyncio.create_task(
                report_lag(self._consumer, self.processor.processed_position, self.loop_clock)
            )
            self.say(
                f"Worker '{s.worker_group_id}' consuming {self.topic}; dedup state in "
                f"{self.state.directory}; Ctrl-C to stop"
            )
            await self._consume(finisher)
        except SinkStopped as exc:
            log.warning("worker stopping: %s (they will be redelivered)", exc)
        finally:
            clean = await self._shutdown(finisher, lag, runner)
        return clean

    async def _consume(self, finisher: asyncio.Task[None]) -> None:
        assert self._consumer is not None
        consumer = self._consumer
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
            item = InFlight(messages, result, self._sink_thread.submit(result.sink_batch))
            self._pending.append(item)
            put = asyncio.ensure_future(self._queue.put(item))
            await asyncio.wait({put, finisher, stop}, return_when=asyncio.FIRST_COMPLETED)
            if finisher.done():
                put.cancel()
                finisher.result()
            if not put.done():
                # Stopping while the finisher is still busy with the batch before: the put
                # goes on, so that a drain within the grace can still finish this batch too.
                self._putting = put
                break
            clock.add("writes", time.monotonic() - decided)
        stop.cancel()

    async def _finish_in_order(self) -> None:
        """Finish decided batches strictly in order. While batch N is written (sink thread),
        batch N+1 is fetched and decided; its dedup decisions see N's first copies through
        ``processor.in_flight``. At most two batches are in flight."""
        while (item := await self._queue.get()) is not None:
            result = item.result
            try:
                # 1-3: ClickHouse, retried inside until written; refused events isolated
                # (sink.py: crash points)
                written = await item.write
                self.crash.maybe("after_sink")
                if written.refused:
                    isolate(item, written.refused)
                # 4: quarantine and dead-letter records, acknowledged by Kafka
                await self.outputs.send_out(result)
                self.crash.maybe("after_outputs")
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
                item.finished = True
                for partition, offset in result.last_offsets.items():
                    self.processor.note_processed(partition, offset)
            finally:
                self._pending.remove(item)
                if not item.finished:
                    self._abandoned.append(item)
                if not item.done.done():
                    item.done.set_result(None)

    async def _store_first_copies(self, item: InFlight) -> None:
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for index, key, value in item.result.new_first_copies:
            partition = item.messages[index].partition
            # A partition revoked meanwhile belongs to its new owner's state and changelog: it
            # re-reads these messages (uncommitted) and decides them itself.
            if partition in self._owned:
                by_partition.setdefault(partition, []).append((key, value))
        if not by_partition:
            self.crash.maybe("after_changelog")  # nothing to write: trivially past it
            return
        positions = await self.outputs.write_changelog(by_partition)
        self.crash.maybe("after_changelog")
        for partition, entries in by_partition.items():
            self.state.partition(partition).apply(entries, positions[partition])

    async def _commit(self, result: BatchResult) -> None:
        assert self._consumer is not None
        await commit_batch(self._consumer, self.topic, result)

    async def drain(self) -> bool:
        """Wait until every decided batch is written and committed. False on timeout."""
        waiting = [item.done for item in self._pending]
        if not waiting:
            return True
        timeout = DRAIN_TIMEOUT_S
        if self.stop_clock.started:  # a stop has its own, shorter budget
            timeout = min(timeout, self.stop_clock.remaining(EXIT_RESERVE_S))
        if timeout <= 0:
            return False
        _, late = await asyncio.wait(waiting, timeout=timeout)
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
        if partitions:  # operators (and the rebalance test) see the assignment change
            log.info("revoked partitions %s of %s", sorted(partitions), self.topic)

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

    async def _shutdown(
        self,
        finisher: asyncio.Task[None] | None,
        lag: asyncio.Task[None] | None,
        runner: web.AppRunner | None,
    ) -> bool:
        """Stop within the grace (stopping.py); True when nothing was left unfinished."""
        clock = self.stop_clock
        clock.start()
        if lag is not None:
            lag.cancel()
        if finisher is not None and not finisher.done():
            if await self.drain():
                with contextlib.suppress(asyncio.QueueFull):  # drained: the queue is empty
                    self._queue.put_nowait(None)
                await bounded(finisher, clock.remaining(EXIT_RESERVE_S), "the finisher")
            # Unwritten batches stay uncommitted: re-read later. A sink waiting to retry ends
            # at once; an insert in flight is left to its daemon thread.
            self.sink.stopping.set()
            if self._putting is not None:
                self._putting.cancel()
            if not finisher.done():
                await asyncio.wait({finisher}, timeout=min(0.5, clock.remaining(EXIT_RESERVE_S)))
                finisher.cancel()
                await asyncio.wait({finisher}, timeout=0.5)
            if finisher.done() and not finisher.cancelled() and finisher.exception():
                log.warning("stopped with batches unfinished (%s)", finisher.exception())
        self.sink.stopping.set()
        self._sink_thread.close()
        if self._consumer is not None:  # leaving the group moves its partitions at once
            await bounded(
                self._consumer.stop(),
                min(CONSUMER_STOP_S, clock.remaining(PRODUCER_STOP_S + 1.0)),
                "leaving the consumer group",
            )
        await bounded(
            self.outputs.stop(), min(PRODUCER_STOP_S, clock.remaining(1.0)), "the producer"
        )
        if runner is not None:
            await bounded(runner.cleanup(), min(0.5, clock.remaining(0.5)), "the web server")
        self.state.close_all()
        clean = not (self._abandoned or self._pending)
        (log.info if clean else log.warning)("worker stopped: %s", self.unfinished())
        return clean


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: MeterWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.worker.on_assigned(set(assigned))


#: tuple.__new__ builds a NamedTuple without its Python-level __new__ (once per record).
_new = tuple.__new__


__all__ = ["EXIT_OFFSET_GAP", "MeterWorker", "install_stop_signals"]
