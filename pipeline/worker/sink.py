"""The ClickHouse sink of the stream workers: one batch, three idempotent inserts, retried.

Order of side effects for one batch (:class:`pipeline.worker.app.MeterWorker` drives it):

1. ``event_log``     every consumed copy (duplicates and quarantined included), keyed by its
                     Kafka coordinates (topic, partition, offset);
2. ``usage_events``  the first copy of each (tenant, idempotency key), keyed by that key;
3. ``meter_entries`` what each of those contributes to its product's metrics, keyed by key+metric;
   -- then, back in the worker's event loop --
4. quarantined events to the quarantine topic, acknowledged by Kafka;
5. dedup state learns the new first copies: the changelog topic first (acks=all), then the
   partition's RocksDB with the changelog position reached, in one write batch;
6. the next offset of each partition of the batch is committed to the consumer group.

What a crash at each point leads to (the batch is redelivered from the last committed offset):

* before or during 1-3: some rows exist, others not. Redelivery rewrites all of them with the
  same keys; ReplacingMergeTree collapses the rewritten rows. Nothing lost, nothing doubled.
* after 3, before 5: the state does not know the batch's keys; redelivery decides them as new
  again and rewrites identical rows. Same result.
* during 5 (changelog written, RocksDB not yet): the local state is behind its changelog; the
  restarted worker reads the changelog from its local position first (recovery), and then
  it is the next case.
* after 5, before 6: the state knows the keys *with these exact Kafka coordinates*, so the
  redelivered copy is recognised as a redelivery of the first copy (contract §11, OpenMeter #5118),
  never as its duplicate; rows are rewritten identically.
* after 6: done.

The inserts retry with capped exponential backoff until they succeed or the worker stops. While
they retry the worker decides at most one more batch and then stops fetching (the finisher's
queue holds one batch): back-pressure, and nothing is committed before it is written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram

from pipeline.errors import StoreError
from pipeline.store import Store

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


#: column order of each table's rows (batch.py builds value tuples in this order)
LOG_COLUMNS = (
    "source_topic",
    "source_partition",
    "source_offset",
    "idempotency_key",
    "integration_id",
    "gateway",
    "tenant_headers",
    "tenant",
    "event_time",
    "disposition",
    "quarantine_reason",
    "quarantine_detail",
    "product",
    "payload",
    "processed_at",
)
USAGE_COLUMNS = (
    "tenant",
    "idempotency_key",
    "gateway",
    "integration_id",
    "tenant_header",
    "event_time",
    "api",
    "route",
    "method",
    "status",
    "request_bytes",
    "response_bytes",
    "latency_ms",
    "consumer",
    "attributes",
    "product",
    "fate",
    "billing_run",
    "source_partition",
    "source_offset",
    "processed_at",
)
ENTRY_COLUMNS = (
    "billing_run",
    "tenant",
    "product",
    "metric",
    "aggregation",
    "idempotency_key",
    "event_time",
    "value",
    "distinct_value",
    "divide_by",
)
COLUMNS = {
    "event_log": LOG_COLUMNS,
    "usage_events": USAGE_COLUMNS,
    "meter_entries": ENTRY_COLUMNS,
}


@dataclass
class SinkBatch:
    """The rows of one batch, per table: value tuples in the order of :data:`COLUMNS`."""

    event_log: list[Sequence[Any]] = field(default_factory=list)
    usage_events: list[Sequence[Any]] = field(default_factory=list)
    meter_entries: list[Sequence[Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_log)

    def dicts(self, table: str) -> list[dict[str, Any]]:
        """The rows of ``table`` as column -> value dicts (replays, tests, tools)."""
        columns = COLUMNS[table]
        return [dict(zip(columns, row, strict=True)) for row in getattr(self, table)]


class SinkStopped(Exception):
    """The worker is stopping while a batch is still unwritten: it must not be acknowledged."""


@dataclass
class ClickHouseSink:
    store: Store
    database: str
    max_backoff_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    stopping: threading.Event = field(default_factory=threading.Event)

    def write(self, batch: SinkBatch) -> int:
        """Write the batch (steps 1-3 above), retrying until done. Returns the attempts used.

        Raises SinkStopped when :attr:`stopping` is set before the batch is written.
        Blocking: call from a thread executor.
        """
        started = time.monotonic()
        attempt = 0
        backoff = 0.2
        steps: Sequence[tuple[str, list[Sequence[Any]]]] = (
            ("event_log", batch.event_log),
            ("usage_events", batch.usage_events),
            ("meter_entries", batch.meter_entries),
        )
        done = 0  # steps already written: a retry resumes, it does not rewrite them
        while True:
            if self.stopping.is_set():
                raise SinkStopped(f"stopped with {len(batch)} events unwritten")
            attempt += 1
            try:
                for table, rows in steps[done:]:
                    if rows:
                        self.store.insert_columns(f"{self.database}.{table}", COLUMNS[table], rows)
                    done += 1
            except StoreError as exc:
                SINK_FAILURES.inc()
                log.warning(
                    "ClickHouse insert failed (attempt %d, table %s): %s; retrying in %.1f s; "
                    "the batch stays unacknowledged",
                    attempt,
                    steps[done][0],
                    exc,
                    backoff,
                )
                self.stopping.wait(backoff) if self.sleep is time.sleep else self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            SINK_BATCH_ROWS.observe(len(batch))
            SINK_SECONDS.observe(time.monotonic() - started)
            return attempt
