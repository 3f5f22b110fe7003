"""Command line: ``python -m pipeline <command>``. Each command prints what it did in plain words.

Commands are registered only once they work; see README.md for the list.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from pipeline.errors import PipelineError
from pipeline.settings import Settings, load_settings


def say(message: str) -> None:
    print(message, flush=True)


def _cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.infra.kafka_launcher import KafkaLauncher

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


def _cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.kafka import ensure_topics, pipeline_topics, resolve_bootstrap

    bootstrap = resolve_bootstrap(settings, say=say)
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


Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Usage metering and billing pipeline. Configuration: PIPELINE_* environment "
        "variables (see README.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("kafka", help="the project's local Apache Kafka broker")
    p.add_argument("action", choices=["install", "start", "stop", "status"])
    p.set_defaults(handler=_cmd_kafka)

    p = sub.add_parser("topics", help="create the pipeline's Kafka topics if missing")
    p.set_defaults(handler=_cmd_topics)

    p = sub.add_parser("migrate", help="create or upgrade the ClickHouse schema (idempotent)")
    p.set_defaults(handler=_cmd_migrate)
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
