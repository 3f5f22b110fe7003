"""Worker bench pieces: the records, the bare Kafka loops, and one real worker run."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import orjson
import pytest

from pipeline.devstack.bench.topics import delete_topics
from pipeline.devstack.bench.worker import (
    consume_records,
    make_records,
    produce_records,
    run_worker,
)
from pipeline.devstack.clickhouse_launcher import ClickHouseLauncher
from tests.ingest.test_service import REPO_RULES


def test_records_hold_the_asked_share_of_later_duplicate_copies() -> None:
    records = make_records(2_000, 0.05, seed=3)
    assert len(records) == 2_000
    copies = Counter(key for key, _ in records)
    assert len(copies) == 1_900 and sum(n - 1 for n in copies.values()) == 100
    assert records == make_records(2_000, 0.05, seed=3)  # reproducible
    # every duplicate is a byte-identical copy arriving after the first half of new events
    first_seen: dict[bytes, int] = {}
    for position, (key, value) in enumerate(records):
        if key in first_seen:
            assert position >= 950 and records[first_seen[key]][1] == value
        first_seen.setdefault(key, position)


def test_records_are_canonical_events_the_worker_can_read() -> None:
    [(key, value)] = make_records(1, 0.0)
    event = orjson.loads(value)
    assert event["idempotency_key"] == key.decode()
    assert event["tenant_headers"] and event["gateway"] == "kong"
    assert event["timestamp"].endswith("Z") and event["attributes"] == {}


def test_record_generation_reports_progress() -> None:
    seen: list[int] = []
    make_records(120_000, 0.0, progress=seen.append)
    assert seen == [0, 50_000, 100_000]


@pytest.mark.integration
def test_bare_loops_produce_and_read_back_every_record(
    kafka_bootstrap: str, unique_name: str
) -> None:
    records = make_records(3_000, 0.05)
    topic = f"{unique_name}.events"
    produced: list[int] = []
    consumed: list[int] = []
    try:
        assert produce_records(kafka_bootstrap, topic, records, 2, produced.append) > 0
        assert consume_records(kafka_bootstrap, topic, 3_000, consumed.append) > 0
    finally:
        asyncio.run(delete_topics(kafka_bootstrap, prefix=unique_name))
    assert consumed[-1] == 3_000 and consumed == sorted(consumed)


@pytest.mark.integration
def test_one_worker_run_through_a_server_is_exact_and_reports_memory_and_cpu(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    records = make_records(400, 0.05)
    topic = f"{unique_name}.events"
    committed: list[int] = []
    server = ClickHouseLauncher(tmp_path / "clickhouse")
    info = server.start()
    try:
        produce_records(kafka_bootstrap, topic, records, 2)
        run = run_worker(
            kafka_bootstrap,
            topic=topic,
            partitions=2,
            unique=380,
            group=f"{unique_name}-worker",
            work_dir=tmp_path / "worker",
            rules_dir=REPO_RULES,
            store_url=info.url,
            database="bench_test",
            server_pid=info.pid,
            progress=committed.append,
        )
    finally:
        server.stop()
        asyncio.run(delete_topics(kafka_bootstrap, prefix=unique_name))
    assert (run.events, run.rows_event_log, run.rows_usage_events) == (400, 400, 380)
    assert run.exact and run.to_dict()["exact"] is True
    assert 0 < run.startup_seconds <= run.seconds and run.events_per_s > 0
    assert run.peak_rss_mb is not None and run.peak_rss_mb > 50  # a Python worker process
    assert run.clickhouse_peak_rss_mb is not None and run.clickhouse_peak_rss_mb > 100
    assert run.worker_cpu_us_per_event is not None and run.worker_cpu_us_per_event > 0
    assert run.clickhouse_cpu_us_per_event is not None and run.clickhouse_cpu_us_per_event > 0
    assert committed[-1] == 400 and committed == sorted(committed)
