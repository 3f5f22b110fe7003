"""The ClickHouse sink of the stream workers: one batch, three idempotent inserts, retried,
and the rows ClickHouse refuses for good isolated instead of retried.

Order of side effects for one batch (:class:`pipeline.worker.app.MeterWorker` drives it):

1. ``event_log``     every consumed copy (duplicates and quarantined included), keyed by its
                     Kafka coordinates (topic, partition, offset);
2. ``usage_events``  the first copy of each (tenant, idempotency key), keyed by that key;
3. ``meter_entries`` what each of those contributes to its product's metrics, keyed by key+metric;
   (3b. only if the engine refused an event's row for good: the rewrites of the isolation,
   below)
   -- then, back in the worker's event loop --
4. quarantined events to the quarantine topic and dead letters (poison records included) to
   the dead-letter topic, acknowledged by Kafka;
5. dedup state learns the new first copies: the changelog topic first (acks=all), then the
   partition's RocksDB with the changelog position reached, in one write batch;
6. the next offset of each partition of the batch is committed to the consumer group.

What a crash at each point leads to (the batch is redelivered from the last committed offset);
the crash test drives every one of them (``PIPELINE_WORKER_CRASH_AT``, faults.py):

* during 1-3 (``during_sink:event_log``, ``during_sink:usage_events``,
  ``during_sink:meter_entries``, after that table's insert): some rows exist, others not.
  Redelivery rewrites all of them with the same keys; ReplacingMergeTree collapses the
  rewritten rows. Nothing lost, nothing doubled.
* during 3b: an isolated event's rows in the later tables were never written; its event_log
  row may still say ``first_copy`` (and, refused in meter_entries, its usage_events row
  ``billed``). Redelivery decides the event again, the engine refuses it again, and the rows
  are rewritten as dead-lettered: the same end state.
* after 3, before 4 (``after_sink``): the state does not know the batch's keys; redelivery
  decides them as new again and rewrites identical rows. Same result.
* after 4, before 5 (``after_outputs``): the quarantine and dead-letter records are sent again
  on redelivery: those topics are at-least-once (a reader dedups by the ``source`` header or
  the key); the rows are rewritten identically.
* during 5 (``after_changelog``: changelog written, RocksDB not yet): the local state is behind
  its changelog; the restarted worker reads the changelog from its local position first
  (recovery), and then it is the next case.
* after 5, before 6 (``after_state``): the state knows the keys *with these exact Kafka
  coordinates*, so the redelivered copy is recognised as a redelivery of the first copy
  (contract §11, OpenMeter #5118), never as its duplicate; rows are rewritten identically.
* after 6 (``after_commit``): done.

Failures (pipeline/worker/poison.py tells them apart by ClickHouse's error code):

* **The server is away or busy** (connection refused, timeouts, memory limit, too many parts):
  the insert is retried with capped exponential backoff until it succeeds or the worker stops.
  While it retries the worker decides at most one more batch and then stops fetching (the
  finisher's queue holds one batch): back-pressure, and nothing is committed before it is
  written. A statement-level refusal (unknown table or column, access denied) is held the same
  way, logged as an error: no row causes it, so no row is isolated for it.
* **A row's value is refused for good** (cannot parse, type mismatch, out of range, constraint
  violated, too large): retrying would stall the partition for every tenant. The rows are cut
  in two at an event boundary and each half inserted again, until the events whose rows are
  refused on their own are found; every other row is written. Such an event is *isolated as a
  whole*: its rows in the later tables are not written (it is never billed), its event_log row
  is rewritten with disposition ``dead_letter`` (reason ``clickhouse_refused``, the engine's
  message in quarantine_detail; the last insert of a coordinate wins in that table), its
  usage_events row, if already written (refused in meter_entries), is rewritten with fate
  ``dead_letter`` and no product, and the worker sends the original record to the dead-letter
  topic (kind ``poison``, the engine's message as its reason). The view ``event_fates`` shows
  it with fate ``dead_letter`` (migration 0004). The dedup state still holds it as the first
  copy of its key, so a later copy is a duplicate, never billed either, as the view says.
  ``pipeline_worker_poison_records_total`` counts them. More than
  :data:`MAX_REFUSED_PER_BATCH` refused events in one table of one batch is not poison but a
  broken schema or constraint: the batch is then held and retried whole, like an outage,
  instead of dead-lettering the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import Counter, Histogram

from pipeline.errors import StoreError
from pipeline.store import Store
from pipeline.worker.faults import CrashPoint
from pipeline.worker.metrics import POISON_RECORDS
from pipeline.worker.poison import (
    Owners,
    Refusal,
    Verdict,
    classify,
    dead_letter_row,
    engine_message,
    events_of,
    minimal_row,
    refusal,
    split_point,
    unbilled_row,
)
from pipeline.worker.rows import COLUMNS, ENTRY_COLUMNS, LOG_COLUMNS, USAGE_COLUMNS, SinkBatch

__all__ = [
    "COLUMNS",
    "ENTRY_COLUMNS",
    "LOG_COLUMNS",
    "TABLES",
    "USAGE_COLUMNS",
    "ClickHouseSink",
    "SinkBatch",
    "SinkResult",
    "SinkStopped",
]

log = logging.getLogger(__name__)

SINK_BATCH_ROWS = Histogram(
    "pipeline_worker_sink_batch_events",
    "Consumed events per ClickHouse sink batch",
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000),
)
SINK_SECONDS = Histogram(
    "pipeline_worker_sink_seconds",
    "Wall time to write one batch to ClickHouse, retries included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SINK_FAILURES = Counter(
    "pipeline_worker_sink_failures_total", "Failed ClickHouse insert attempts (retried)"
)

TABLES: Final = ("event_log", "usage_events", "meter_entries")
#: more refused events than this in one table of one batch: a schema or constraint problem, not
#: poison (each costs about log2(batch) extra inserts to find; 100 in a batch of 20,000 cost
#: ~1,500 inserts): hold the batch instead of dead-lettering it
MAX_REFUSED_PER_BATCH: Final = 100


class SinkStopped(Exception):
    """The worker is stopping while a batch is still unwritten: it must not be acknowledged."""


@dataclass(frozen=True)
class SinkResult:
    """A written batch: insert attempts used, and the events the engine refused for good."""

    attempts: int
    refused: tuple[Refusal, ...] = ()


@dataclass
class ClickHouseSink:
    store: Store
    database: str
    max_backoff_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    stopping: threading.Event = field(default_factory=threading.Event)
    crash: CrashPoint = field(default_factory=lambda: CrashPoint(None, 0))
    #: batches written so far (numbers the sink's crash points)
    written: int = 0

    def write(self, batch: SinkBatch) -> SinkResult:
        """Write the batch (steps 1-3 above), retrying until done; isolate refused events.

        Raises SinkStopped when :attr:`stopping` is set before the batch is written.
        Blocking: call from the sink thread.
        """
        started = time.monotonic()
        self._attempts = 0
        number = self.written + 1
        owners = Owners(batch)
        refused: dict[tuple[int, int], Refusal] = {}
        for table in TABLES:
            rows: list[Sequence[Any]] = getattr(batch, table)
            if refused:  # an isolated event's rows in the later tables are never written
                rows = [row for row in rows if owners.event(table, row) not in refused]
            for found in self._insert(table, rows, owners, limit=MAX_REFUSED_PER_BATCH):
                refused.setdefault((found.partition, found.offset), found)
            self.crash.maybe(f"during_sink:{table}", number)
        if refused:
            self._record_refusals(batch, refused)
        self.written = number
        SINK_BATCH_ROWS.observe(len(batch))
        SINK_SECONDS.observe(time.monotonic() - started)
        return SinkResult(self._attempts, tuple(refused.values()))

    def _insert(
        self, table: str, rows: Sequence[Sequence[Any]], owners: Owners, *, limit: int | None
    ) -> list[Refusal]:
        """Insert ``rows``, retrying what may succeed later and cutting refused rows down to
        the events the engine refuses on their own (returned; every other row is written).
        More than ``limit`` of them: hold and retry all ``rows`` instead (see the module doc)."""
        group = owners.grouping(table)
        pending = [rows] if rows else []
        refusals: list[Refusal] = []
        isolating = True
        backoff = 0.2
        while pending:
            if self.stopping.is_set():
                unwritten = sum(len(chunk) for chunk in pending)
                raise SinkStopped(f"stopped with {unwritten} rows of {table} unwritten")
            chunk = pending.pop()
            self._attempts += 1
            try:
                self.store.insert_columns(f"{self.database}.{table}", COLUMNS[table], chunk)
                continue
            except StoreError as exc:
                error, verdict = exc, classify(exc)
            if verdict is Verdict.REFUSED and isolating:
                cut = split_point(chunk, group)
                if cut is not None:
                    pending += [chunk[cut:], chunk[:cut]]  # the first half next: in order
                    continue
                event = owners.event(table, chunk[0])
                if event is not None and (limit is None or len(refusals) < limit):
                    refusals.append(refusal(event, table, error))
                    continue
                log.error(
                    "not isolating the rows ClickHouse refuses in %s (%s): %s; holding the batch",
                    table,
                    f"more than {limit} events of one batch: a schema or constraint problem, "
                    "not poison records"
                    if event is not None
                    else "a row of no known event",
                    engine_message(error),
                )
                pending, chunk, refusals, isolating = [], rows, [], False
            if verdict is not Verdict.RETRY:
                verdict = Verdict.HELD
            SINK_FAILURES.inc()
            (log.warning if verdict is Verdict.RETRY else log.error)(
                "ClickHouse insert failed (attempt %d, table %s): %s; retrying in %.1f s; "
                "the batch stays unacknowledged%s",
                self._attempts,
                table,
                error,
                backoff,
                "" if verdict is Verdict.RETRY else " (held: check the schema and the grants)",
            )
            pending.append(chunk)
            self.stopping.wait(backoff) if self.sleep is time.sleep else self.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
        for refused in refusals:
            POISON_RECORDS.labels(table=table).inc()
            log.warning(
                "ClickHouse refused the %s row of %d/%d for good; the event is isolated and "
                "dead-lettered: %s",
                table,
                refused.partition,
                refused.offset,
                refused.message,
            )
        return refusals

    def _record_refusals(self, batch: SinkBatch, refused: dict[tuple[int, int], Refusal]) -> None:
        """Step 3b: the isolated events' event_log rows as ``dead_letter``, and the
        usage_events rows of events refused in meter_entries with fate ``dead_letter``."""
        owners = Owners(batch)
        logged = [
            dead_letter_row(row, refused[owners.log(row)])
            for row in batch.event_log
            if owners.log(row) in refused
        ]
        again = self._insert("event_log", logged, owners, limit=None)
        if again:  # the row itself is what the engine refuses: keep only what identifies it
            minimal = [minimal_row(row) for row in logged if owners.log(row) in events_of(again)]
            for lost in self._insert("event_log", minimal, owners, limit=None):
                log.error(
                    "could not record the dead-lettered event %d/%d in event_log: %s",
                    lost.partition,
                    lost.offset,
                    lost.message,
                )
        billed = [
            unbilled_row(row)
            for row in batch.usage_events
            if (found := refused.get(owners.usage(row))) and found.table == "meter_entries"
        ]
        for lost in self._insert("usage_events", billed, owners, limit=None):
            log.error(
                "could not mark the dead-lettered event %d/%d in usage_events: %s",
                lost.partition,
                lost.offset,
                lost.message,
            )
