"""``python -m pipeline dev``: the whole stack on this machine, sample traffic, invoices.

What it starts (and stops again on Ctrl-C, except a Kafka broker it found running):

* Kafka: ``PIPELINE_KAFKA_BOOTSTRAP_SERVERS`` or the project's launcher (started or reused);
* ClickHouse: ``PIPELINE_CLICKHOUSE_URL`` or the embedded engine (``PIPELINE_CLICKHOUSE_DATA_DIR``),
  owned by a relay child process so that the worker, this process and the ``invoice`` /
  ``finance`` / ``events`` commands (with ``PIPELINE_CLICKHOUSE_URL=relay://...``) share it;
* one stream worker child process;
* the ingest edge, in this process.

Then it posts sample traffic from all five gateways' native payloads (lz4 batches, retried
deliveries that create duplicates, alias and header variants, a few bad events and one
undecodable body), waits until the worker has committed every event, and prints the event log
summary and every tenant's invoice for the sample month.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
import orjson

from pipeline.billing import invoice_all
from pipeline.catalog import Catalog, load_catalog
from pipeline.infra.kafka_launcher import KafkaLauncher
from pipeline.ingest.decoders.samples import SampleCall, encode_batch, native_batch
from pipeline.ingest.server import create_edge
from pipeline.kafka import ensure_topics, group_lag, pipeline_topics
from pipeline.logs import configure_logging
from pipeline.processes import Relay, RestartingWorker, start_worker, stop_worker, worker_env
from pipeline.rating.render import render_invoice_text
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from pipeline.store.migrate import migrate
from pipeline.traffic import INTEGRATIONS, SampleDelivery, sample_deliveries

Say = Callable[[str], None]

SAMPLE_PERIOD = "2026-03"
BATCH_CALLS = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_dev(settings: Settings, *, events: int, keep_running: bool, say: Say) -> int:
    configure_logging("WARNING")
    # SIGTERM like Ctrl-C: unwind through the finally blocks that stop what was started.
    signal.signal(signal.SIGTERM, _interrupt)
    catalog = load_catalog(settings.rules_dir)
    say(
        f"Rules: {settings.rules_dir} ({len(catalog.tenants)} tenants, "
        f"{len(catalog.integrations)} integrations, {len(catalog.products)} products)"
    )
    launcher: KafkaLauncher | None = None
    if settings.kafka_bootstrap_servers:
        bootstrap = settings.kafka_bootstrap_servers
        say(f"Kafka: {bootstrap} (from PIPELINE_KAFKA_BOOTSTRAP_SERVERS)")
    else:
        launcher = KafkaLauncher(settings.cache_dir, settings.kafka_version, say=say)
        info = launcher.start()
        bootstrap = info.bootstrap_servers
        if info.reused:
            launcher = None  # not ours to stop
    asyncio.run(ensure_topics(bootstrap, pipeline_topics(settings)))

    state_dir = settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    relay: Relay | None = None
    if settings.clickhouse_url is not None:
        store_url = settings.clickhouse_url.get_secret_value()
        say("ClickHouse: the server in PIPELINE_CLICKHOUSE_URL")
    else:
        relay = Relay(settings.clickhouse_data_dir, state_dir / "dev-clickhouse.log")
        relay.start()
        store_url = relay.url
        say(f"ClickHouse: embedded, data in {settings.clickhouse_data_dir}, shared at {store_url}")
    store = open_store(Settings(clickhouse_url=store_url))
    worker: RestartingWorker | None = None
    try:
        say(f"Schema: {migrate(store, settings.clickhouse_database)}")
        env = worker_env(
            bootstrap=bootstrap,
            name=settings.worker_group_id,
            store_url=store_url,
            state_dir=state_dir,
            rules_dir=settings.rules_dir.resolve(),
            extra={
                "PIPELINE_TOPIC_EVENTS": settings.topics.events,
                "PIPELINE_TOPIC_QUARANTINE": settings.topics.quarantine,
                "PIPELINE_TOPIC_DEAD_LETTERS": settings.topics.dead_letters,
                "PIPELINE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
            },
        )
        worker_log = state_dir / "dev-worker.log"
        worker = RestartingWorker(lambda: start_worker(env, worker_log), say)
        say(f"Worker: pid {worker.process.pid}, log {worker_log}")

        return asyncio.run(
            _serve_and_send(
                settings,
                catalog,
                bootstrap,
                store,
                events,
                keep_running,
                say,
                worker_alive=worker.alive,
            )
        )
    finally:
        if worker is not None:
            say("Stopping the worker")
            stop_worker(worker.process)
        store.close()
        if relay is not None:
            say("Stopping ClickHouse")
            relay.stop()
        if launcher is not None:
            launcher.stop()


async def _serve_and_send(
    settings: Settings,
    catalog: Catalog,
    bootstrap: str,
    store: Store,
    events: int,
    keep_running: bool,
    say: Say,
    worker_alive: Callable[[], bool],
) -> int:
    edge = await create_edge(settings, catalog, bootstrap, utc_now)
    try:
        say(f"Ingest edge: {edge.ingest_url}")
        deliveries = sample_deliveries(events, key_prefix="dev")
        totals = await _send_traffic(edge.ingest_url, deliveries, say)
        say(
            f"Sent {totals['batches']} batches: {totals['accepted']} events accepted, "
            f"{totals['rejected']} rejected (dead-lettered with their reason), "
            f"{totals['undecodable']} undecodable body"
        )
        await _wait_drained(bootstrap, settings, say, worker_alive)
        _print_summary(store, settings.clickhouse_database, say)
        report = await asyncio.to_thread(
            invoice_all, store, settings.clickhouse_database, catalog, SAMPLE_PERIOD, clock=utc_now
        )
        for stored in report.invoices:
            say("")
            say(render_invoice_text(stored.invoice))
        say("")
        for line in report.lines():
            say(line)
        if keep_running:
            _print_how_to_continue(edge.ingest_url, say)
            await _wait_for_ctrl_c()
        return 1 if report.failures else 0
    finally:
        await edge.close()


async def _send_traffic(url: str, deliveries: list[SampleDelivery], say: Say) -> Counter[str]:
    rng = random.Random(3)
    by_gateway: dict[str, list[SampleCall]] = defaultdict(list)
    for delivery in deliveries:
        by_gateway[delivery.gateway].extend([delivery.call] * delivery.copies)
    posts: list[tuple[str, bytes, str]] = []
    for gateway, calls in by_gateway.items():
        rng.shuffle(calls)  # retries arrive late, interleaved with new calls
        _integration, key = INTEGRATIONS[gateway]  # type: ignore[index]
        for start in range(0, len(calls), BATCH_CALLS):
            items = native_batch(gateway, calls[start : start + BATCH_CALLS])  # type: ignore[arg-type]
            posts.append((key, encode_batch(items, "lz4"), "lz4"))
        # a plugin bug: one event with a broken timestamp, next to a good one
        bad = native_batch(gateway, calls[:1])  # type: ignore[arg-type]
        posts.append((key, encode_batch([*bad, {"garbage": True}], "identity"), "identity"))
    posts.append((INTEGRATIONS["kong"][1], b"\x04\x22\x4d\x18 not really lz4", "lz4"))
    rng.shuffle(posts)
    totals: Counter[str] = Counter()
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        for number, (key, body, encoding) in enumerate(posts, 1):
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            if encoding != "identity":
                headers["Content-Encoding"] = encoding
            async with session.post(url, data=body, headers=headers) as response:
                payload = await response.read()
                if response.status == 202:
                    answer = orjson.loads(payload)
                    totals["accepted"] += answer["accepted"]
                    totals["rejected"] += answer["rejected"]
                elif response.status == 400:
                    totals["undecodable"] += 1
                else:
                    raise RuntimeError(f"edge answered {response.status}: {payload[:300]!r}")
            totals["batches"] += 1
            if number % 25 == 0 or number == len(posts):
                say(f"  posted {number}/{len(posts)} batches ({time.monotonic() - started:.1f} s)")
    return totals


async def _wait_drained(
    bootstrap: str, settings: Settings, say: Say, worker_alive: Callable[[], bool]
) -> None:
    say("Waiting for the worker to process every event")
    deadline = time.monotonic() + 600
    last = None
    while time.monotonic() < deadline:
        if not worker_alive():
            raise RuntimeError(f"the worker stopped; see {settings.state_dir / 'dev-worker.log'}")
        lag = await group_lag(bootstrap, settings.worker_group_id, settings.topics.events)
        if lag == 0:
            return
        if lag is not None and lag != last:
            say(f"  {lag} events still to process")
            last = lag
        await asyncio.sleep(1)
    raise RuntimeError("the worker did not catch up within 10 minutes")


def _print_summary(store: Store, database: str, say: Say) -> None:
    rows = store.query(
        f"SELECT fate, quarantine_reason AS reason, gateway, count() AS n "
        f"FROM {database}.event_fates GROUP BY fate, reason, gateway ORDER BY fate, gateway"
    )
    fates: Counter[str] = Counter()
    per_gateway: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    for row in rows:
        fates[row["fate"]] += row["n"]
        per_gateway[row["gateway"]][row["fate"]] += row["n"]
        if row["fate"] == "quarantined":
            reasons[row["reason"]] += row["n"]
    say("")
    say(
        f"Event log: {sum(fates.values())} events consumed = {fates['billed']} billed + "
        f"{fates['duplicate']} duplicate + {fates['quarantined']} quarantined + "
        f"{fates['unmapped']} unmapped"
    )
    for gateway, counts in sorted(per_gateway.items()):
        say(
            f"  {gateway:9} "
            + "  ".join(
                f"{k} {counts[k]}" for k in ("billed", "duplicate", "quarantined", "unmapped")
            )
        )
    if reasons:
        say("  quarantine reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))


def _print_how_to_continue(url: str, say: Say) -> None:
    say("")
    say("The stack keeps running. Post more traffic, e.g.:")
    say(
        f"  curl -s -X POST {url} -H 'Authorization: Bearer dev-kong-prod-key' "
        "-H 'Content-Type: application/json' --data @events.json"
    )
    say("Ctrl-C stops everything this command started.")


async def _wait_for_ctrl_c() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
