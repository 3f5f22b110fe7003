"""End-to-end stream benchmark pieces: events in Kafka -> one worker process -> rows in ClickHouse.

On one broker and the same records:

* :func:`produce_records`: the bare aiokafka produce loop (project producer settings);
* :func:`consume_records`: a bare aiokafka consume loop that parses each record (the ceiling
  for any worker);
* :func:`run_worker`: one ``python -m pipeline worker`` process with its own consumer group,
  writing to a ClickHouse server through clickhouse-connect (the bench's own local server, or
  the configured one), from its start until its group has committed the last offset -- rows
  are written before offsets are acknowledged, so at that moment every row is visible in
  ClickHouse; then the rows are counted and checked against what was produced. Its peak
  resident memory is its ``VmHWM`` read just before it is stopped, with the CPU time it and the
  local server used (``/proc/<pid>/stat``); its steady-state rate per window comes from the
  committed offsets, polled with long-lived clients.

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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import TopicPartition

from pipeline.devstack.bench.host import cpu_seconds, peak_rss_mb
from pipeline.devstack.bench.stats import window_rates
from pipeline.errors import InfrastructureError
from pipeline.kafka import TopicSpec, ensure_topics, make_producer
from pipeline.store.server import ServerStore

Say = Callable[[str], None]
Progress = Callable[[int], None]

#: a worker whose committed offsets do not move for this long is declared stuck
STALL_TIMEOUT_S = 180.0

_TENANT_HEADERS = [
    ("kong", "kong-prod", ["acme", "ACME-LEGACY", "globex", "initech", "umbrella"], "payments-svc"),
    ("apigee", "apigee-prod", ["globex", "Globex-Corp", "acme"], "search-v2"),
    ("aws", "aws-prod", ["acme", "initech", "globex"], "q3w8e5r2ty"),
    ("azure", "azure-prod", ["umbrella", "acme_eu", "initech"], "payments-api"),
    ("mulesoft", "mulesoft-prod", ["initech", "INITECH-KK", "acme"], "16183500"),
]


@dataclass(frozen=True)
class WorkerRun:
    """One worker process over the whole topic."""

    group: str
    events: int
    unique: int
    seconds: float
    """From process start until the last offset was committed."""
    startup_seconds: float
    """From process start until its first commit."""
    peak_rss_mb: float | None
    rows_event_log: int
    rows_usage_events: int
    window_rates: list[float] = field(default_factory=list)
    """Events committed per second in each window after the first commit (steady state)."""
    worker_cpu_s: float | None = None
    """CPU seconds the worker process used until its last commit."""
    clickhouse_cpu_s: float | None = None
    """CPU seconds the ClickHouse server used meanwhile (a local server of the bench only)."""
    clickhouse_peak_rss_mb: float | None = None

    def _per_event_us(self, seconds: float | None) -> float | None:
        return None if seconds is None or not self.events else 1e6 * seconds / self.events

    @property
    def worker_cpu_us_per_event(self) -> float | None:
        return self._per_event_us(self.worker_cpu_s)

    @property
    def clickhouse_cpu_us_per_event(self) -> float | None:
        return self._per_event_us(self.clickhouse_cpu_s)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def exact(self) -> bool:
        """Every copy is in the event log and every unique event in usage_events, once."""
        return self.rows_event_log == self.events and self.rows_usage_events == self.unique

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "events_per_s": self.events_per_s,
            "exact": self.exact,
            "worker_cpu_us_per_event": self.worker_cpu_us_per_event,
            "clickhouse_cpu_us_per_event": self.clickhouse_cpu_us_per_event,
        }


def make_records(
    events: int, duplicate_share: float, seed: int = 5, progress: Progress | None = None
) -> list[tuple[bytes, bytes]]:
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
        # orjson's bytes keep the slack of its output buffer (~4 KiB each when held by the
        # million); a copy is exact-sized: 1M records hold ~0.45 GB instead of ~7 GB.
        records.append((key.encode(), bytes(memoryview(value))))
        if progress is not None and i % 50_000 == 0:
            progress(i)
    for _ in range(events - unique):
        records.append(records[rng.randrange(unique)])
    # Duplicates arrive later than their first copy (retries), interleaved with new events.
    head, tail = records[: unique // 2], records[unique // 2 :]
    rng.shuffle(tail)
    return head + tail


def produce_records(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes, bytes]],
    partitions: int,
    progress: Progress | None = None,
) -> float:
    """Create ``topic`` and produce every record to it; seconds from first send to last ack."""
    return asyncio.run(_produce(bootstrap, topic, records, partitions, progress))


async def _produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes, bytes]],
    partitions: int,
    progress: Progress | None,
) -> float:
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])
    producer = make_producer(bootstrap, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for number, (key, value) in enumerate(records, 1):
            pending.append(await producer.send(topic, key=key, value=value))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
                if progress is not None:
                    progress(number)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def consume_records(
    bootstrap: str, topic: str, total: int, progress: Progress | None = None
) -> float:
    """Read ``total`` records of ``topic`` from the start, parsing each; seconds taken."""
    return asyncio.run(_consume(bootstrap, topic, total, progress))


async def _consume(bootstrap: str, topic: str, total: int, progress: Progress | None) -> float:
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
                seen += len(records)
            if progress is not None:
                progress(seen)
    finally:
        await consumer.stop()
    return time.perf_counter() - started


def run_worker(
    bootstrap: str,
    *,
    topic: str,
    partitions: int,
    unique: int,
    group: str,
    work_dir: Path,
    rules_dir: Path,
    store_url: str,
    database: str,
    server_pid: int | None = None,
    progress: Progress | None = None,
    window_s: float = 5.0,
) -> WorkerRun:
    """One worker process over all of ``topic`` as group ``group``, writing to ``database`` of
    the server at ``store_url`` (``server_pid``: a local server, measured too); see the module
    doc."""
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        {
            "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PIPELINE_TOPIC_EVENTS": topic,
            "PIPELINE_TOPIC_QUARANTINE": f"{group}.quarantine",
            "PIPELINE_TOPIC_DEAD_LETTERS": f"{group}.dlq",
            "PIPELINE_TOPIC_PARTITIONS": str(partitions),
            "PIPELINE_WORKER_GROUP_ID": group,
            "PIPELINE_CLICKHOUSE_DATABASE": database,
            "PIPELINE_CLICKHOUSE_URL": store_url,
            "PIPELINE_STATE_DIR": str(work_dir / "state"),
            "PIPELINE_WORKER_WEB_PORT": "0",
            "PIPELINE_RULES_DIR": str(rules_dir),
        }
    )
    log_path = work_dir / "worker.log"
    server_cpu_before = cpu_seconds(server_pid) if server_pid is not None else None
    started = time.perf_counter()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        watched = asyncio.run(_watch(proc, log_path, bootstrap, group, topic, started, progress))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    if watched is None:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise InfrastructureError(
            f"the bench worker exited early (code {proc.returncode}); its log {log_path} "
            f"ends with:\n{tail}",
            returncode=proc.returncode,
            log=str(log_path),
        )
    samples, events, peak, worker_cpu = watched
    server_cpu = cpu_seconds(server_pid) if server_pid is not None else None
    finished_at, _ = samples[-1]
    event_log, usage_events = count_rows(store_url, database)
    return WorkerRun(
        group=group,
        events=events,
        unique=unique,
        seconds=finished_at,
        startup_seconds=samples[0][0],
        peak_rss_mb=peak,
        rows_event_log=event_log,
        rows_usage_events=usage_events,
        window_rates=window_rates(samples, window_s),
        worker_cpu_s=worker_cpu,
        clickhouse_cpu_s=(
            server_cpu - server_cpu_before
            if server_cpu is not None and server_cpu_before is not None
            else None
        ),
        clickhouse_peak_rss_mb=peak_rss_mb(server_pid) if server_pid is not None else None,
    )


async def _watch(
    proc: subprocess.Popen[bytes],
    log_path: Path,
    bootstrap: str,
    group: str,
    topic: str,
    started: float,
    progress: Progress | None,
    poll_s: float = 0.25,
) -> tuple[list[tuple[float, int]], int, float | None, float | None] | None:
    """Poll the group's committed offsets until it has committed the whole topic.

    ``None`` if the worker exited first. Otherwise the samples ``(seconds since start, events
    committed)`` from the first commit on, the topic's size, and the worker's peak RSS and CPU
    seconds read right after the last commit.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # no subscription: fetch metadata now
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(tps)
        total = int(sum(ends.values()))
        samples: list[tuple[float, int]] = []
        moved_at = time.perf_counter()
        while True:
            if proc.poll() is not None:
                return None
            try:
                committed = await admin.list_consumer_group_offsets(group)
            except GroupCoordinatorNotAvailableError:  # a new broker creates it on first use
                committed = {}
            now = time.perf_counter()
            if any(tp in committed for tp in tps):
                done = int(sum(committed[tp].offset for tp in tps if tp in committed))
                if not samples or done > samples[-1][1]:
                    moved_at = now
                samples.append((now - started, done))
                if progress is not None:
                    progress(done)
                if done >= total:
                    return samples, total, peak_rss_mb(proc.pid), cpu_seconds(proc.pid)
            if now - moved_at > STALL_TIMEOUT_S:
                raise InfrastructureError(
                    f"the bench worker committed nothing for {STALL_TIMEOUT_S:.0f} s; "
                    f"see its log {log_path}",
                    group=group,
                    log=str(log_path),
                )
            await asyncio.sleep(poll_s)
    finally:
        await consumer.stop()
        await admin.close()


def count_rows(store_url: str, database: str) -> tuple[int, int]:
    """Rows of ``event_log`` and ``usage_events`` (each key once) the worker wrote."""
    store = ServerStore.connect(store_url)
    try:
        [log_rows] = store.query(f"SELECT count() AS n FROM {database}.event_log FINAL")
        [usage_rows] = store.query(f"SELECT count() AS n FROM {database}.usage_events FINAL")
    finally:
        store.close()
    return int(log_rows["n"]), int(usage_rows["n"])
