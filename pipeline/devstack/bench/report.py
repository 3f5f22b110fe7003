"""``python -m pipeline bench``: every stage and its Kafka baseline, repeated, in one run.

On one broker the bench runs ``repeat`` rounds of the cheap measures -- the ingest edge (fresh
edge process(es) each round), the bare aiokafka produce loop and the bare consume loop over the
worker's records -- interleaved so that a change in the machine's load hits all of them alike;
then ``worker_repeat`` end-to-end worker runs (each a fresh process, consumer group and
ClickHouse directory) over the same topic. It reports every measure's median and spread, the
ratios of medians, the peak memory of every process (each edge process, the worker, and the
bench process itself per phase), and writes the JSON document with every individual run.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.devstack.bench.host import describe_machine, peak_rss_mb, reset_peak_rss, rss_mb
from pipeline.devstack.bench.ingest import run_ingest_bench
from pipeline.devstack.bench.progress import Say, Ticker
from pipeline.devstack.bench.stats import Measure, Ratio, measure
from pipeline.devstack.bench.table import bench_document, render_table
from pipeline.devstack.bench.topics import delete_topics
from pipeline.devstack.bench.worker import (
    consume_records,
    make_records,
    produce_records,
    run_worker,
)
from pipeline.devstack.clickhouse_launcher import ClickHouseLauncher
from pipeline.devstack.kafka_launcher import local_bootstrap
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.store.server import ServerStore

BATCH_SIZE = 100
WINDOW_S = 5.0


@dataclass(frozen=True)
class BenchOptions:
    """What to run; the defaults are the issue's (1M worker events, 5 % duplicate copies)."""

    ingest_batches: int = 600
    clients: int = 4
    edge_processes: int = 1
    repeat: int = 3
    worker_events: int = 1_000_000
    worker_repeat: int = 1
    duplicate_share: float = 0.05
    partitions: int = 4
    json_out: Path | None = None

    def __post_init__(self) -> None:
        counts = {
            "ingest_batches": self.ingest_batches,
            "clients": self.clients,
            "edge_processes": self.edge_processes,
            "repeat": self.repeat,
            "worker_events": self.worker_events,
            "worker_repeat": self.worker_repeat,
            "partitions": self.partitions,
        }
        bad = {name: value for name, value in counts.items() if value < 1}
        if bad:
            raise ConfigError(f"bench sizes must be at least 1: {bad}", **bad)
        if not 0 <= self.duplicate_share < 1:
            raise ConfigError(
                f"duplicate share must be in [0, 1), got {self.duplicate_share}",
                duplicate_share=self.duplicate_share,
            )


def run_bench(settings: Settings, options: BenchOptions, say: Say = print) -> int:
    """Run every measure, print the table, write the JSON; 0 when every check passed."""
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    bootstrap = local_bootstrap(settings, say=say)
    kafka = "external" if settings.kafka_bootstrap_servers else settings.kafka_version
    machine = describe_machine(kafka=kafka)
    say(
        f"Machine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, "
        f"{machine['memory_gib']} GiB, {machine['python']}, load {machine['load_average']}"
    )
    o = options
    say(
        f"Plan: {o.repeat} round(s) of ingest edge ({o.ingest_batches} lz4 batches of "
        f"{BATCH_SIZE}, {o.clients} clients) + bare produce + bare consume of "
        f"{o.worker_events:,} events; then {o.worker_repeat} worker run(s) over them"
    )
    name = f"bench-{started_at:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    runs: dict[str, list[dict[str, Any]]] = {
        "ingest": [],
        "produce": [],
        "consume": [],
        "worker": [],
    }
    try:
        records_mb = _rounds(settings, o, bootstrap, name, runs, say)
        _worker_runs(settings, o, bootstrap, name, runs, say)
    finally:
        asyncio.run(delete_topics(bootstrap, prefix=name))
    machine["load_average_end"] = describe_machine()["load_average"]

    measures = build_measures(o, runs, records_mb)
    ratios = build_ratios(measures)
    checks = build_checks(o, runs)
    failed = [text for text, ok in checks.values() if not ok]
    say("")
    verdicts = [f"{text} -> {'ok' if ok else 'FAILED'}" for text, ok in checks.values()]
    for line in render_table(measures, ratios, verdicts):
        say(line)
    duration = time.perf_counter() - clock
    say(f"Bench took {duration:.0f} s.")
    if o.json_out is not None:
        document = bench_document(
            machine=machine,
            options={**asdict(o), "json_out": str(o.json_out), "batch_size": BATCH_SIZE},
            measures=measures,
            ratios=ratios,
            runs=runs,
            checks={key: {"text": text, "ok": ok} for key, (text, ok) in checks.items()},
            started_at=started_at.isoformat(),
            duration_s=duration,
        )
        o.json_out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2, default=str))
        say(f"JSON written to {o.json_out}")
    return 1 if failed else 0


def _rounds(
    settings: Settings,
    o: BenchOptions,
    bootstrap: str,
    name: str,
    runs: dict[str, list[dict[str, Any]]],
    say: Say,
) -> float | None:
    """The cheap measures, ``repeat`` times; returns the MiB the records add to this process."""
    say(f"Generating {o.worker_events:,} canonical events ({o.duplicate_share:.0%} duplicates)")
    before = rss_mb()
    records = make_records(
        o.worker_events, o.duplicate_share, progress=Ticker(say, "generated", o.worker_events)
    )
    after = rss_mb()
    records_mb = after - before if after is not None and before is not None else None
    data_topic = f"{name}.events"
    for number in range(1, o.repeat + 1):
        say(f"Round {number}/{o.repeat}: ingest edge")
        reset_peak_rss()
        ingest = run_ingest_bench(
            settings,
            bootstrap,
            clients=o.clients,
            batches=o.ingest_batches,
            batch_size=BATCH_SIZE,
            edge_processes=o.edge_processes,
            progress=Ticker(say, "edge accepted", o.ingest_batches * BATCH_SIZE),
        )
        say(ingest.summary())
        runs["ingest"].append({**asdict(ingest), "bench_peak_rss_mb": peak_rss_mb()})

        # The first round fills the worker's topic; later rounds produce to scratch topics.
        topic = data_topic if number == 1 else f"{name}.produce-{number}"
        say(f"Round {number}/{o.repeat}: bare aiokafka produce to {topic}")
        reset_peak_rss()
        ticker = Ticker(say, "produced", o.worker_events)
        seconds = produce_records(bootstrap, topic, records, o.partitions, ticker)
        runs["produce"].append(_loop_run(topic, o.worker_events, seconds))
        say(f"  bare produce: {o.worker_events / seconds:,.0f} events/s")

        say(f"Round {number}/{o.repeat}: bare aiokafka consume + JSON parse of {data_topic}")
        reset_peak_rss()
        ticker = Ticker(say, "consumed", o.worker_events)
        seconds = consume_records(bootstrap, data_topic, o.worker_events, ticker)
        runs["consume"].append(_loop_run(data_topic, o.worker_events, seconds))
        say(f"  bare consume: {o.worker_events / seconds:,.0f} events/s")
    return records_mb


def _loop_run(topic: str, events: int, seconds: float) -> dict[str, Any]:
    return {
        "topic": topic,
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds if seconds > 0 else 0.0,
        "bench_peak_rss_mb": peak_rss_mb(),
    }


def _worker_runs(
    settings: Settings,
    o: BenchOptions,
    bootstrap: str,
    name: str,
    runs: dict[str, list[dict[str, Any]]],
    say: Say,
) -> None:
    unique = round(o.worker_events * (1 - o.duplicate_share))  # as make_records makes them
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as work:
        for number in range(1, o.worker_repeat + 1):
            work_dir = Path(work) / f"worker-{number}"
            say(
                f"Worker run {number}/{o.worker_repeat}: one worker process over "
                f"{o.worker_events:,} events (log {work_dir / 'worker.log'})"
            )
            with bench_clickhouse(settings, work_dir, say) as (store_url, server_pid):
                database = f"bench_{number}_{uuid.uuid4().hex[:8]}"
                try:
                    run = run_worker(
                        bootstrap,
                        topic=f"{name}.events",
                        partitions=o.partitions,
                        unique=unique,
                        group=f"{name}-worker-{number}",
                        work_dir=work_dir,
                        rules_dir=settings.rules_dir.resolve(),
                        store_url=store_url,
                        database=database,
                        server_pid=server_pid,
                        progress=Ticker(say, "worker committed", o.worker_events),
                        window_s=WINDOW_S,
                    )
                finally:
                    drop_database(store_url, database)
            runs["worker"].append(run.to_dict())
            cpu = ""
            if run.worker_cpu_us_per_event is not None:
                cpu = f"; CPU per event: worker {run.worker_cpu_us_per_event:.1f} us"
                if run.clickhouse_cpu_us_per_event is not None:
                    cpu += f", ClickHouse server {run.clickhouse_cpu_us_per_event:.1f} us"
            say(
                f"  worker: {run.events_per_s:,.0f} events/s end to end ({run.seconds:.1f} s, "
                f"first commit after {run.startup_seconds:.1f} s); event_log "
                f"{run.rows_event_log:,} rows, usage_events {run.rows_usage_events:,} "
                f"({'exact' if run.exact else 'NOT EXACT'}){cpu}"
            )


@contextlib.contextmanager
def bench_clickhouse(
    settings: Settings, work_dir: Path, say: Say
) -> Iterator[tuple[str, int | None]]:
    """The configured server, else a fresh local server for this run (its pid is measured)."""
    if settings.clickhouse_url is not None:
        yield settings.clickhouse_url.get_secret_value(), None
        return
    launcher = ClickHouseLauncher(work_dir / "clickhouse", say=say)
    info = launcher.start()
    try:
        yield info.url, info.pid
    finally:
        launcher.stop()


def drop_database(store_url: str, database: str) -> None:
    store = ServerStore.connect(store_url)
    try:
        store.command(f"DROP DATABASE IF EXISTS {database}")
    finally:
        store.close()


def build_measures(
    o: BenchOptions, runs: dict[str, list[dict[str, Any]]], records_mb: float | None
) -> list[Measure]:
    """The table's measures from the individual runs (rows without any value are left out)."""
    ingest, worker = runs["ingest"], runs["worker"]
    edges = f"{o.edge_processes} edge process{'es' if o.edge_processes > 1 else ''}"
    windows = [rate for run in worker for rate in run["window_rates"]]
    held = f"{records_mb:.0f} MiB" if records_mb is not None else "the"
    candidates = [
        measure(
            "edge_events_per_s",
            f"ingest edge, {edges}, {o.clients} clients",
            "events/s",
            [run["events_per_s"] for run in ingest],
        ),
        measure("edge_p50_ms", "  latency per lz4 batch, p50", "ms", [r["p50_ms"] for r in ingest]),
        measure("edge_p99_ms", "  latency per lz4 batch, p99", "ms", [r["p99_ms"] for r in ingest]),
        measure(
            "produce_events_per_s",
            "bare aiokafka produce",
            "events/s",
            [run["events_per_s"] for run in runs["produce"]],
        ),
        measure(
            "consume_events_per_s",
            "bare aiokafka consume + JSON parse",
            "events/s",
            [run["events_per_s"] for run in runs["consume"]],
        ),
        measure(
            "worker_events_per_s",
            "worker end to end, 1 process, to ClickHouse",
            "events/s",
            [run["events_per_s"] for run in worker],
        ),
        measure(
            "worker_window_events_per_s",
            f"  worker steady state, per {WINDOW_S:.0f}-s window",
            "events/s",
            windows,
            note=f"{len(windows)} windows after the first commit of {len(worker)} run(s): "
            "noise within a run, not between runs",
        ),
        measure(
            "worker_startup_s",
            "  worker start to first commit",
            "s",
            [run["startup_seconds"] for run in worker],
        ),
        measure(
            "worker_cpu_us_per_event",
            "  worker process CPU per event",
            "us",
            [run.get("worker_cpu_us_per_event") for run in worker],
        ),
        measure(
            "clickhouse_cpu_us_per_event",
            "  ClickHouse server CPU per event",
            "us",
            [run.get("clickhouse_cpu_us_per_event") for run in worker],
            note="the bench's local server (its own process); none for a configured server",
        ),
        measure(
            "edge_peak_rss_mb",
            "peak RSS, edge process",
            "MiB",
            [mb for run in ingest for mb in run["edge_peak_rss_mb"]],
            note="one value per edge process and round" if o.edge_processes > 1 else "",
        ),
        measure(
            "worker_peak_rss_mb",
            "peak RSS, worker process",
            "MiB",
            [run["peak_rss_mb"] for run in worker],
        ),
        measure(
            "clickhouse_peak_rss_mb",
            "peak RSS, ClickHouse server (local)",
            "MiB",
            [run.get("clickhouse_peak_rss_mb") for run in worker],
        ),
        measure(
            "bench_edge_clients_peak_rss_mb",
            "peak RSS, bench process: edge clients",
            "MiB",
            [run["bench_peak_rss_mb"] for run in ingest],
            note=f"includes the {held} of worker records it holds",
        ),
        measure(
            "bench_loops_peak_rss_mb",
            "peak RSS, bench process: bare loops",
            "MiB",
            [run["bench_peak_rss_mb"] for run in runs["produce"] + runs["consume"]],
            note=f"produce and consume runs; includes the {held} of records it holds",
        ),
    ]
    return [m for m in candidates if m is not None]


def build_ratios(measures: list[Measure]) -> list[Ratio]:
    """Each stage against its bare Kafka loop, median over median."""
    by_key = {m.key: m for m in measures}
    return [
        Ratio.of(
            "worker_over_bare_consume",
            "worker / bare consume",
            by_key.get("worker_events_per_s"),
            by_key.get("consume_events_per_s"),
        ),
        Ratio.of(
            "edge_over_bare_produce",
            "edge / bare produce",
            by_key.get("edge_events_per_s"),
            by_key.get("produce_events_per_s"),
        ),
    ]


def build_checks(
    o: BenchOptions, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, tuple[str, bool]]:
    """Named checks: (what the table says, passed)."""
    worker = runs["worker"]
    exact = sum(1 for run in worker if run["exact"] and run["events"] == o.worker_events)
    refused = sum(run["failed_batches"] for run in runs["ingest"])
    accepted = sum(run["events_accepted"] for run in runs["ingest"])
    sent = o.ingest_batches * BATCH_SIZE * len(runs["ingest"])
    return {
        "worker_exact": (
            f"worker rows exact (all {o.worker_events:,} copies logged, every unique event "
            f"once) in {exact}/{len(worker)} run(s)",
            exact == len(worker),
        ),
        "edge_accepted_all": (
            f"edge accepted {accepted:,}/{sent:,} events ({refused} batches refused)",
            accepted == sent and refused == 0,
        ),
    }
