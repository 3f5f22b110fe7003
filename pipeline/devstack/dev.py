"""``python -m pipeline dev``: the whole stack on this machine, sample traffic, invoices.

What it starts (and stops again on Ctrl-C, except a Kafka broker it found running):

* Kafka: ``PIPELINE_KAFKA_BOOTSTRAP_SERVERS`` or the project's launcher (started or reused);
* ClickHouse: ``PIPELINE_CLICKHOUSE_URL`` or the project's local server (started or reused,
  ``pipeline/devstack/clickhouse_launcher.py``): ClickHouse's own HTTP and native protocols on
  loopback, so that the worker, this process, the ``invoice`` / ``finance`` / ``events``
  commands and any ClickHouse client share it; its address and user are printed;
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
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
from pydantic import SecretStr

from pipeline.billing import invoice_all
from pipeline.catalog import Catalog, load_catalog
from pipeline.devstack.clickhouse_launcher import ClickHouseLauncher
from pipeline.devstack.kafka_launcher import KafkaLauncher
from pipeline.devstack.processes import RestartingWorker, start_worker, stop_worker, worker_env
from pipeline.devstack.samples import SampleCall, encode_batch, kong_event, native_batch
from pipeline.devstack.traffic import INTEGRATIONS, SampleDelivery, sample_deliveries
from pipeline.ingest.server import create_edge
from pipeline.kafka import ensure_topics, group_lag, pipeline_topics
from pipeline.logs import configure_logging
from pipeline.rating.render import render_invoice_text
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from pipeline.store.migrate import migrate

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
    clickhouse: ClickHouseLauncher | None = None
    clickhouse_home: ClickHouseLauncher | None = None  # a local server, ours or reused
    clickhouse_export = "export PIPELINE_CLICKHOUSE_URL=... (the server you configured)"
    if settings.clickhouse_url is not None:
        store_url = settings.clickhouse_url.get_secret_value()
        say("ClickHouse: the server in PIPELINE_CLICKHOUSE_URL")
    else:
        clickhouse = clickhouse_home = ClickHouseLauncher(settings.clickhouse_local_home, say=say)
        server = clickhouse.start()
        store_url = server.url
        clickhouse_export = server.export_line()
        say(
            f"ClickHouse: {server.address} (native TCP 127.0.0.1:{server.tcp_port}), user "
            f"{server.user}, password in {server.password_file}"
        )
        if server.reused:
            clickhouse = None  # not ours to stop
    store = open_store(Settings(clickhouse_url=SecretStr(store_url)))
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

        supervise = _Supervisor(worker, clickhouse_home, say)
        return asyncio.run(
            _serve_and_send(
                settings,
                catalog,
                bootstrap,
                store,
                events,
                keep_running,
                say,
                stack_alive=supervise.alive,
                clickhouse_export=clickhouse_export,
            )
        )
    finally:
        if worker is not None:
            say("Stopping the worker")
            stop_worker(worker.process)
        store.close()
        if clickhouse is not None:
            clickhouse.stop()
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
    stack_alive: Callable[[], bool],
    clickhouse_export: str,
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
        await _wait_drained(bootstrap, settings, say, stack_alive)
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
            sample = _write_sample_batch(settings.state_dir)
            _print_how_to_continue(edge.ingest_url, sample, clickhouse_export, say)
            await _wait_for_ctrl_c(stack_alive)
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
        if not await asyncio.to_thread(worker_alive):
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
    dead = f" + {fates['dead_letter']} dead-lettered" if fates["dead_letter"] else ""
    say(
        f"Event log: {sum(fates.values())} events consumed = {fates['billed']} billed + "
        f"{fates['duplicate']} duplicate + {fates['quarantined']} quarantined + "
        f"{fates['unmapped']} unmapped{dead}"
    )
    shown = ["billed", "duplicate", "quarantined", "unmapped"]
    if fates["dead_letter"]:
        shown.append("dead_letter")
    for gateway, counts in sorted(per_gateway.items()):
        say(f"  {gateway:9} " + "  ".join(f"{k} {counts[k]}" for k in shown))
    if reasons:
        say("  quarantine reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))


def _write_sample_batch(state_dir: Path) -> Path:
    """A Kong http-log batch of three calls for tenant acme, with keys new to this run, to post
    by hand (it is decoded like the plugins' traffic; posting it twice shows the dedup)."""
    run = uuid.uuid4().hex[:8]
    calls = [
        SampleCall(
            idempotency_key=f"manual-{run}-{number}",
            timestamp=datetime(2026, 3, 31, 12, number, tzinfo=UTC),  # the newest of the month
            api="payments-svc",
            route="/v1/payments",
            method="POST",
            status=200,
            request_bytes=420,
            response_bytes=2_000,
            latency_ms=30 + number,
            consumer="manual-app",
            tenant="acme",
        )
        for number in range(3)
    ]
    path = (state_dir / "sample-kong-batch.json").resolve()
    path.write_bytes(orjson.dumps([kong_event(call) for call in calls], option=orjson.OPT_INDENT_2))
    return path


def _print_how_to_continue(url: str, sample: Path, clickhouse_export: str, say: Say) -> None:
    say("")
    say("The stack keeps running. Post more traffic, e.g. a Kong batch of 3 calls for acme:")
    say(
        f"  curl -s -X POST {url} -H 'Authorization: Bearer dev-kong-prod-key' "
        f"-H 'Content-Type: application/json' --data-binary @{sample}"
    )
    say("Then, in another shell, look at it and the invoice with the other commands:")
    say(f"  {clickhouse_export}")
    say("  python -m pipeline events --tenant acme --period 2026-03")
    say("  python -m pipeline invoice --tenant acme --period 2026-03")
    say("Ctrl-C stops everything this command started.")


class _Supervisor:
    """Keeps the dev stack's processes up: a worker that asks to be restarted (exit 75) and the
    local ClickHouse server (a crash of the engine ends its process) are started again."""

    def __init__(
        self, worker: RestartingWorker, clickhouse: ClickHouseLauncher | None, say: Say
    ) -> None:
        self._worker = worker
        self._clickhouse = clickhouse
        self._say = say
        self._checked = 0.0

    def alive(self) -> bool:
        if self._clickhouse is not None and time.monotonic() - self._checked > 2.0:
            self._checked = time.monotonic()
            if self._clickhouse.running() is None:
                self._say(
                    "The local ClickHouse server is not answering; starting it again "
                    f"(its log: {self._clickhouse.log_file})"
                )
                self._clickhouse.start()
        return self._worker.alive()


async def _wait_for_ctrl_c(stack_alive: Callable[[], bool]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        if not await asyncio.to_thread(stack_alive):
            raise RuntimeError("the worker stopped; see its log")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=2.0)
