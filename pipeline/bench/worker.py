"""End-to-end stream benchmark: events in Kafka -> one worker process -> rows in ClickHouse.

Measured in one run on one broker and one topic:

* ``produce``: the bare aiokafka produce rate of the records (project producer settings);
* ``consume``: a bare aiokafka consume loop over the same topic (the ceiling for any worker);
* ``worker``: one ``python -m pipeline worker`` process (embedded ClickHouse in-process) from
  its start until its group has committed the last offset -- rows are written before offsets
  are acknowledged, so at that moment every row is visible in ClickHouse; then the rows are
  counted and checked against what was produced.

Records are canonical events (what the edge produces) for the example catalog, with a share of
duplicate copies, generated directly as JSON for speed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from pipeline.kafka import TopicSpec, ensure_topics, make_producer

Say = Callable[[str], None]

_TENANT_HEADERS = [
    ("kong", "kong-prod", ["acme", "ACME-LEGACY", "globex", "initech", "umbrella"], "payments-svc"),
    ("apigee", "apigee-prod", ["globex", "Globex-Corp", "acme"], "search-v2"),
    ("aws", "aws-prod", ["acme", "initech", "globex"], "q3w8e5r2ty"),
    ("azure", "azure-prod", ["umbrella", "acme_eu", "initech"], "payments-api"),
    ("mulesoft", "mulesoft-prod", ["initech", "INITECH-KK", "acme"], "16183500"),
]


@dataclass
class WorkerBenchResult:
    events: int
    unique: int
    duplicates: int
    partitions: int
    produce_events_per_s: float
    consume_events_per_s: float
    worker_events_per_s: float
    worker_seconds: float
    worker_startup_seconds: float
    worker_peak_rss_mb: float
    rows_event_log: int
    rows_usage_events: int
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_records(events: int, duplicate_share: float, seed: int = 5) -> list[tuple[bytes, bytes]]:
    """(key, value) records: ``events`` in total, ``duplicate_share`` of them later copies."""
    rng = random.Random(seed)
    unique = round(events * (1 - duplicate_share))
    base = datetime(2026, 4, 1, tzinfo=UTC).timestamp()
    records: list[tuple[bytes, bytes]] = []
    for i in range(unique):
        gateway, integration, headers, api = _TENANT_HEADERS[i % len(_TENANT_HEADERS)]
        key = f"bench-{i:09d}"
        ts = datetime.fromtimestamp(base + (i % 2_400_000), UTC)
        value = orjson.dumps(
            {
                "idempotency_key": key,
                "tenant_headers": [headers[rng.randrange(len(headers))]],
                "gateway": gateway,
                "integration_id": integration,
                "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "api": api,
                "route": "/v2/search" if "search" in api or api == "16183500" else "/v1/payments",
                "method": "GET",
                "status": 200 if i % 17 else 503,
                "request_bytes": 100 + i % 900,
                "response_bytes": 1000 + i % 100_000,
                "latency_ms": 5 + i % 300,
                "consumer": f"app-{i % 40}",
                "attributes": {},
            }
        )
        records.append((key.encode(), value))
    for _ in range(events - unique):
        records.append(records[rng.randrange(unique)])
    # Duplicates arrive later than their first copy (retries), interleaved with new events.
    head, tail = records[: unique // 2], records[unique // 2 :]
    rng.shuffle(tail)
    return head + tail


async def _produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], partitions: int
) -> float:
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])
    producer = make_producer(bootstrap, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, key=key, value=value))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _consume(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)  # a worker must at least parse each record
                seen += sum(len(r) for r in batches.values())
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def _lag(bootstrap: str, group: str, topic: str, partitions: int) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        if not any(tp in committed for tp in tps):
            return None
        return int(sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps))
    finally:
        await consumer.stop()
        await admin.close()


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_worker_bench(
    bootstrap: str,
    *,
    events: int = 1_000_000,
    duplicate_share: float = 0.05,
    partitions: int = 4,
    work_dir: Path,
    rules_dir: Path,
    say: Say = print,
    name: str | None = None,
) -> WorkerBenchResult:
    name = name or f"bench-{int(time.time())}"
    topic = f"{name}.events"
    say(f"Generating {events:,} canonical events ({duplicate_share:.0%} duplicate copies)")
    records = make_records(events, duplicate_share)
    unique = len({key for key, _ in records})
    say(f"Producing to {topic} ({partitions} partitions)")
    produce_s = asyncio.run(_produce(bootstrap, topic, records, partitions))
    say(f"  produce: {events / produce_s:,.0f} events/s")
    consume_s = asyncio.run(_consume(bootstrap, topic, events))
    say(f"  bare aiokafka consume + JSON parse: {events / consume_s:,.0f} events/s")
    del records

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        {
            "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PIPELINE_TOPIC_EVENTS": topic,
            "PIPELINE_TOPIC_QUARANTINE": f"{name}.quarantine",
            "PIPELINE_TOPIC_DEAD_LETTERS": f"{name}.dlq",
            "PIPELINE_TOPIC_PARTITIONS": str(partitions),
            "PIPELINE_WORKER_GROUP_ID": name,
            "PIPELINE_CLICKHOUSE_DATA_DIR": str(work_dir / "clickhouse"),
            "PIPELINE_STATE_DIR": str(work_dir / "state"),
            "PIPELINE_WORKER_WEB_PORT": "0",
            "PIPELINE_RULES_DIR": str(rules_dir),
        }
    )
    log_path = work_dir / "worker.log"
    say(f"Starting one worker process (log {log_path})")
    started = time.perf_counter()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    first_commit = None
    peak = 0.0
    try:
        last_report = 0.0
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited early: {log_path.read_text()[-2000:]}")
            lag = asyncio.run(_lag(bootstrap, name, topic, partitions))
            peak = max(peak, _peak_rss_mb(proc.pid))
            now = time.perf_counter()
            if lag is not None and first_commit is None:
                first_commit = now
            if lag == 0:
                break
            if now - last_report > 5 and lag is not None:
                done = events - lag
                say(f"  worker: {done:,}/{events:,} events committed ({now - started:.0f} s)")
                last_report = now
            time.sleep(0.25)
        finished = time.perf_counter()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    worker_s = finished - started
    startup_s = (first_commit or finished) - started
    say(f"  worker: {events / worker_s:,.0f} events/s end to end ({worker_s:.1f} s incl. start)")

    from pipeline.store.embedded import EmbeddedStore

    store = EmbeddedStore.open(work_dir / "clickhouse")
    try:
        [log_rows] = store.query("SELECT count() AS n FROM metering.event_log FINAL")
        [usage_rows] = store.query("SELECT count() AS n FROM metering.usage_events FINAL")
    finally:
        store.close()
    exact = log_rows["n"] == events and usage_rows["n"] == unique
    say(
        f"  ClickHouse: event_log {log_rows['n']:,} rows, usage_events {usage_rows['n']:,} "
        f"unique ({'exact' if exact else 'NOT EXACT'})"
    )
    return WorkerBenchResult(
        events=events,
        unique=unique,
        duplicates=events - unique,
        partitions=partitions,
        produce_events_per_s=events / produce_s,
        consume_events_per_s=events / consume_s,
        worker_events_per_s=events / worker_s,
        worker_seconds=worker_s,
        worker_startup_seconds=startup_s,
        worker_peak_rss_mb=peak,
        rows_event_log=int(log_rows["n"]),
        rows_usage_events=int(usage_rows["n"]),
        exact=exact,
    )
