"""Command line: ``python -m pipeline <command>``. Each command prints what it did in plain words.

Commands are registered only once they work; see README.md for the list.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pipeline.errors import ConfigError, PipelineError
from pipeline.settings import Settings, load_settings


def say(message: str) -> None:
    print(message, flush=True)


def _cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack.kafka_launcher import KafkaLauncher

    launcher = KafkaLauncher(settings.cache_dir, settings.kafka_version, say=say)
    if args.action == "install":
        say(f"Kafka {settings.kafka_version} jars are in {launcher.ensure_jars()}")
    elif args.action == "start":
        info = launcher.start()
        say(f"bootstrap servers: {info.bootstrap_servers}")
        say(
            f"export PIPELINE_KAFKA_BOOTSTRAP_SERVERS={info.bootstrap_servers} "
            "to point other tools at it"
        )
    elif args.action == "stop":
        if not launcher.stop():
            say("No local Kafka broker was running.")
        else:
            say("Kafka stopped.")
    else:  # status
        running = launcher.running()
        if running is None:
            say("No local Kafka broker is running (start one: python -m pipeline kafka start).")
            return 1
        say(f"Kafka {running.version} running at {running.bootstrap_servers} (pid {running.pid})")
    return 0


def _cmd_clickhouse(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack.clickhouse_launcher import ClickHouseLauncher

    launcher = ClickHouseLauncher(settings.clickhouse_local_home, say=say)
    if args.action == "start":
        info = launcher.start()
        say(f"ClickHouse HTTP interface: {info.address} (native TCP: 127.0.0.1:{info.tcp_port})")
        say(f"user: {info.user}; password in {info.password_file} (readable by you only)")
        say("To point the pipeline's commands (or any ClickHouse client) at it:")
        say(f"  {info.export_line()}")
    elif args.action == "stop":
        if not launcher.stop():
            say("No local ClickHouse server was running.")
        else:
            say("ClickHouse stopped.")
    else:  # status
        running = launcher.running()
        if running is None:
            say(
                "No local ClickHouse server is running "
                "(start one: python -m pipeline clickhouse start)."
            )
            return 1
        say(
            f"ClickHouse running at {running.address} (pid {running.pid}, user {running.user}, "
            f"data in {launcher.data_dir})"
        )
    return 0


def _cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.kafka import ensure_topics, pipeline_topics, resolve_bootstrap

    bootstrap = resolve_bootstrap(settings)
    specs = pipeline_topics(settings)
    created = asyncio.run(ensure_topics(bootstrap, specs))
    for spec in specs:
        state = "created" if spec.name in created else "already present"
        say(f"topic {spec.name}: {spec.partitions} partitions, {state}")
    return 0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.store import open_store
    from pipeline.store.migrate import migrate

    store = open_store(settings)
    try:
        report = migrate(store, settings.clickhouse_database)
    finally:
        store.close()
    say(str(report))
    return 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _cmd_invoice(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from pipeline.billing import finalize_invoice, invoice_all, invoice_tenant
    from pipeline.catalog import load_catalog
    from pipeline.rating.render import render_invoice_text
    from pipeline.store import open_store
    from pipeline.store.migrate import migrate

    if not args.all and not args.tenant:
        raise ConfigError("invoice needs --tenant T or --all")
    catalog = load_catalog(settings.rules_dir)
    store = open_store(settings)
    db = settings.clickhouse_database
    try:
        migrate(store, db)
        if args.all:
            report = invoice_all(store, db, catalog, args.period, clock=_utc_now)
            if args.json:
                print(orjson.dumps(report.to_json_dict(), option=orjson.OPT_INDENT_2).decode())
            else:
                for stored in report.invoices:
                    print(render_invoice_text(stored.invoice))
                    print()
                for line in report.lines():
                    say(line)
            return 1 if report.failures else 0
        stored = invoice_tenant(store, db, catalog, args.tenant, args.period, clock=_utc_now)
        if args.finalize:
            stored = finalize_invoice(store, db, stored.tenant, args.period, clock=_utc_now)
        if args.json:
            print(orjson.dumps(stored.to_json_dict(), option=orjson.OPT_INDENT_2).decode())
        else:
            print(render_invoice_text(stored.invoice))
            say(f"{stored.invoice_id}: {stored.outcome}")
        return 0
    finally:
        store.close()


def _cmd_finance(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.billing import finance_query_names, finance_query_summary, run_finance_query
    from pipeline.store import open_store

    if args.name is None:
        for name in finance_query_names():
            say(f"{name}: {finance_query_summary(name)}")
        return 0
    params: dict[str, object] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--param takes name=value, got {item!r}")
        params[key] = value
    store = open_store(settings)
    try:
        rows = run_finance_query(store, settings.clickhouse_database, args.name, params)
    finally:
        store.close()
    for row in rows:
        say("  ".join(f"{k}={v}" for k, v in row.items()))
    say(f"({len(rows)} rows)")
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.worker.runner import run_worker

    try:
        run_worker(settings)
    except SystemExit as stopped:  # 69: stopped with batches unwritten (they are re-read)
        return int(stopped.code or 0)
    return 0


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.ingest.server import run_ingest

    run_ingest(settings, say=say, log_level=args.log_level, log_json=args.json_logs)
    return 0


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:

    from pipeline.catalog import load_catalog
    from pipeline.replay import run_replay
    from pipeline.store import open_store
    from pipeline.store.migrate import migrate

    catalog = load_catalog(settings.rules_dir)
    store = open_store(settings)
    try:
        migrate(store, settings.clickhouse_database)
        report = run_replay(
            store,
            settings.clickhouse_database,
            catalog,
            args.period,
            clock=_utc_now,
            tenant=args.tenant,
            dry_run=args.dry_run,
            reinvoice=args.reinvoice,
            progress=None if args.json else say,
        )
    finally:
        store.close()
    return _print_report(report, as_json=args.json)


def _cmd_events(args: argparse.Namespace, settings: Settings) -> int:

    from pipeline.catalog import load_catalog
    from pipeline.replay import event_log_report
    from pipeline.store import open_store

    catalog = load_catalog(settings.rules_dir)
    store = open_store(settings)
    try:
        report = event_log_report(
            store,
            settings.clickhouse_database,
            catalog,
            args.tenant,
            gateway=args.gateway,
            period=args.period,
            sample=args.sample,
        )
    finally:
        store.close()
    return _print_report(report, as_json=args.json)


class _Report(Protocol):
    def to_json_dict(self) -> dict[str, Any]: ...
    def lines(self) -> Iterable[str]: ...


def _print_report(report: _Report, *, as_json: bool) -> int:
    """A report with ``to_json_dict()`` and ``lines()``: indented JSON, or its lines in words."""
    import orjson

    if as_json:
        print(orjson.dumps(report.to_json_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        for line in report.lines():
            say(line)
    return 0


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    if args.hostile:
        from pipeline.devstack.bench.hostile import run_hostile

        return run_hostile(
            settings,
            bodies=args.bodies,
            clients=args.clients,
            json_out=Path(args.json_out) if args.json_out else None,
            say=say,
        )
    from pipeline.devstack.bench.report import BenchOptions, run_bench

    options = BenchOptions(
        ingest_batches=args.ingest_batches,
        clients=args.clients,
        edge_processes=args.edge_processes,
        repeat=args.repeat,
        worker_events=args.worker_events,
        worker_repeat=args.worker_repeat,
        duplicate_share=args.duplicate_share,
        json_out=Path(args.json_out) if args.json_out else None,
    )
    return run_bench(settings, options, say=say)


def _cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack.dev import run_dev

    return run_dev(settings, events=args.events, keep_running=not args.once, say=say)


Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Usage metering and billing pipeline. Configuration: PIPELINE_* environment "
        "variables (see README.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("kafka", help="the project's local Apache Kafka broker (development)")
    p.add_argument("action", choices=["install", "start", "stop", "status"])
    p.set_defaults(handler=_cmd_kafka)

    p = sub.add_parser("clickhouse", help="the project's local ClickHouse server (development)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(handler=_cmd_clickhouse)

    p = sub.add_parser("topics", help="create the pipeline's Kafka topics if missing")
    p.set_defaults(handler=_cmd_topics)

    p = sub.add_parser("migrate", help="create or upgrade the ClickHouse schema (idempotent)")
    p.set_defaults(handler=_cmd_migrate)

    p = sub.add_parser("ingest", help="serve the ingest edge POST /v1/ingest until Ctrl-C")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--json-logs", action="store_true", help="one JSON object per log line")
    p.set_defaults(handler=_cmd_ingest)

    p = sub.add_parser("worker", help="run a stream worker until Ctrl-C")
    p.set_defaults(handler=_cmd_worker)

    p = sub.add_parser("invoice", help="compute, store and print a tenant's invoice for a month")
    p.add_argument("--tenant", help="tenant id or alias")
    p.add_argument("--period", required=True, help="billing month, YYYY-MM (UTC)")
    p.add_argument("--all", action="store_true", help="every tenant with usage or a plan")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--finalize", action="store_true", help="finalize it: never changed again, only revised"
    )
    p.set_defaults(handler=_cmd_invoice)

    p = sub.add_parser(
        "replay", help="re-rate a month from the event log with the current rules (rebilling)"
    )
    p.add_argument("--period", required=True, help="billing month, YYYY-MM (UTC)")
    p.add_argument("--tenant", help="only this tenant (id or alias)")
    p.add_argument("--dry-run", action="store_true", help="show the difference, write nothing")
    p.add_argument(
        "--reinvoice", action="store_true", help="recompute drafts / revise finalized invoices"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_replay)

    p = sub.add_parser("events", help="event log: what happened to a tenant's events, per gateway")
    p.add_argument("--tenant", required=True, help="tenant id, alias or raw X-Tenant-Id value")
    p.add_argument("--gateway", choices=["kong", "apigee", "aws", "azure", "mulesoft"])
    p.add_argument("--period", help="YYYY-MM")
    p.add_argument("--sample", type=int, default=10, help="events to show with their fate")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_events)

    p = sub.add_parser(
        "dev",
        help="the whole stack here: Kafka, ClickHouse, edge, worker, sample traffic, invoices",
    )
    p.add_argument("--events", type=int, default=2000, help="distinct sample calls to send")
    p.add_argument("--once", action="store_true", help="exit after printing the invoices")
    p.set_defaults(handler=_cmd_dev)

    p = sub.add_parser("bench", help="measure the edge and the worker next to bare Kafka loops")
    p.add_argument("--ingest-batches", type=int, default=600, help="lz4 batches of 100 per run")
    p.add_argument("--clients", type=int, default=4, help="concurrent plugins posting")
    p.add_argument("--edge-processes", type=int, default=1)
    p.add_argument(
        "--repeat", type=int, default=3, help="runs of the edge and the bare Kafka loops"
    )
    p.add_argument("--worker-events", type=int, default=1_000_000)
    p.add_argument("--worker-repeat", type=int, default=1, help="end-to-end worker runs")
    p.add_argument("--duplicate-share", type=float, default=0.05, help="of the worker events")
    p.add_argument("--json-out", help="also write every run as JSON to this file")
    p.add_argument(
        "--hostile",
        action="store_true",
        help="instead: an attack campaign of hostile bodies against an edge and a worker",
    )
    p.add_argument("--bodies", type=int, default=100_000, help="bodies of the --hostile campaign")
    p.set_defaults(handler=_cmd_bench)

    p = sub.add_parser("finance", help="run a documented finance query (finance/*.sql)")
    p.add_argument("name", nargs="?", help="query name; omit to list them")
    p.add_argument("--param", action="append", default=[], help="name=value, repeatable")
    p.set_defaults(handler=_cmd_finance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, load_settings())
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
