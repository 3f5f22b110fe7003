"""``python -m pipeline worker``: settings, catalog, ClickHouse and Kafka wired into the app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from pipeline.catalog import load_catalog
from pipeline.kafka import ensure_topics, pipeline_topics, resolve_bootstrap
from pipeline.logs import configure_logging
from pipeline.runtime import tune_gc_for_throughput
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from pipeline.store.migrate import migrate
from pipeline.worker.app import MeterWorker, install_stop_signals
from pipeline.worker.batch import BatchProcessor
from pipeline.worker.changelog import changelog_spec
from pipeline.worker.sink import ClickHouseSink
from pipeline.worker.stopping import EXIT_UNFINISHED

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def prepare_worker(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Callable[[], datetime] = utc_now,
    say: Callable[[str], None] = print,
) -> MeterWorker:
    """Everything the worker needs, ready to run: topics exist, schema is migrated."""
    catalog = load_catalog(settings.rules_dir)
    say(
        f"Loaded rules from {settings.rules_dir}: {len(catalog.tenants)} tenants, "
        f"{len(catalog.integrations)} integrations, {len(catalog.products)} products"
    )
    bootstrap = resolve_bootstrap(settings)
    store = store or open_store(settings)  # before any Kafka call: a missing setting fails fast
    window_ms = settings.dedup_window_days * 24 * 3600 * 1000
    changelog = changelog_spec(
        settings.worker_group_id,
        settings.topic_partitions,
        settings.topic_replication_factor,
        window_ms,
    )
    asyncio.run(ensure_topics(bootstrap, [*pipeline_topics(settings), changelog]))
    report = migrate(store, settings.clickhouse_database)
    say(f"ClickHouse ({store.engine}): {report}")
    processor = BatchProcessor(
        catalog,
        clock=clock,
        window_ms=window_ms,
    )
    sink = ClickHouseSink(store, settings.clickhouse_database)
    return MeterWorker(settings, bootstrap, processor, sink, say=say)


def run_worker(settings: Settings) -> None:
    """Run one worker process until SIGINT/SIGTERM; it stops within ``STOP_GRACE_S`` (20 s).

    Raises ``SystemExit(EXIT_UNFINISHED)`` (69) when it stopped with batches unwritten or
    uncommitted (they are re-read; nothing is lost).
    """
    # aiokafka logs every produce at DEBUG; building those records cost ~15% of the hot path.
    configure_logging("INFO")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    worker = prepare_worker(settings, say=lambda line: print(line, flush=True))

    tune_gc_for_throughput()

    async def main() -> bool:
        install_stop_signals(worker)  # and the watchdog: stopping.py
        return await worker.run()

    try:
        clean = asyncio.run(main())
    finally:
        worker.sink.stopping.set()
        if not worker.sink_busy:  # else an insert is in flight in the sink's daemon thread
            worker.sink.store.close()
    if not clean:
        # Batches decided but not written or not committed: re-read from the committed
        # offsets by whoever owns their partitions next. Nothing is lost; say it in the code.
        print(f"Worker stopped: {worker.unfinished()}", flush=True)
        raise SystemExit(EXIT_UNFINISHED)
    print("Worker stopped", flush=True)
