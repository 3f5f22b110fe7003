"""``python -m pipeline worker``: settings, catalog, ClickHouse and Kafka wired into the app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import faust

from pipeline.catalog import load_catalog
from pipeline.kafka import ensure_topics, pipeline_topics, resolve_bootstrap
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from pipeline.store.migrate import migrate
from pipeline.worker.app import build_app
from pipeline.worker.batch import BatchProcessor
from pipeline.worker.sink import ClickHouseSink

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def prepare_worker(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Callable[[], datetime] = utc_now,
    say: Callable[[str], None] = print,
) -> tuple[faust.App, ClickHouseSink]:
    """Everything the worker needs, ready to run: topics exist, schema is migrated."""
    catalog = load_catalog(settings.rules_dir)
    say(
        f"Loaded rules from {settings.rules_dir}: {len(catalog.tenants)} tenants, "
        f"{len(catalog.integrations)} integrations, {len(catalog.products)} products"
    )
    bootstrap = resolve_bootstrap(settings, say=say)
    asyncio.run(ensure_topics(bootstrap, pipeline_topics(settings)))
    store = store or open_store(settings)
    report = migrate(store, settings.clickhouse_database)
    say(f"ClickHouse ({store.engine}): {report}")
    processor = BatchProcessor(
        catalog,
        clock=clock,
        window_ms=settings.dedup_window_days * 24 * 3600 * 1000,
    )
    sink = ClickHouseSink(store, settings.clickhouse_database)
    (settings.state_dir / "worker").mkdir(parents=True, exist_ok=True)
    app = build_app(settings, bootstrap, processor, sink)
    return app, sink


def run_worker(settings: Settings) -> None:
    """Run one worker process until SIGINT/SIGTERM."""
    # aiokafka logs every produce at DEBUG; building those records cost ~15% of the hot path.
    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(logging.WARNING)
    app, sink = prepare_worker(settings)
    print(
        f"Worker '{settings.worker_group_id}' consuming {settings.topics.events}; "
        f"state in {settings.state_dir / 'worker'}; Ctrl-C to stop",
        flush=True,
    )
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        sink.stopping.set()
        sink.store.close()
