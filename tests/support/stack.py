"""Real processes for integration tests: a ClickHouse relay, worker processes, Kafka helpers.

The test process itself holds a chdb engine (tests/conftest_store.py), and chdb allows one
data directory per process, so worker tests run the embedded store in a relay subprocess
(``python -m pipeline.store.relay``) that the workers and the test share over loopback.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from pipeline.events import CanonicalEvent
from pipeline.events.codec import encode_event
from pipeline.kafka import TopicSpec, ensure_topics, make_producer

REPO = Path(__file__).resolve().parents[2]


class Relay:
    """The embedded ClickHouse in its own process, on a fixed data dir and (after start) port."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"relay://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "pipeline.store.relay",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log_path.read_text()[-2000:]}")
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                return
        raise RuntimeError("relay did not start in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def worker_env(
    *,
    bootstrap: str,
    name: str,
    store_url: str,
    state_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        {
            "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PIPELINE_TOPIC_EVENTS": f"{name}.events",
            "PIPELINE_TOPIC_QUARANTINE": f"{name}.quarantine",
            "PIPELINE_TOPIC_DEAD_LETTERS": f"{name}.dlq",
            "PIPELINE_WORKER_GROUP_ID": name,
            "PIPELINE_CLICKHOUSE_URL": store_url,
            "PIPELINE_STATE_DIR": str(state_dir),
            "PIPELINE_WORKER_WEB_PORT": "0",
            "PIPELINE_RULES_DIR": str(REPO / "rating_rules"),
        }
    )
    env.update(extra or {})
    return env


def start_worker(env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "worker"],
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )


def stop_worker(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60
) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    return proc.returncode


async def produce_events(
    bootstrap: str, topic: str, events: Iterable[CanonicalEvent], partitions: int = 4
) -> int:
    """Produce like the edge does: key = idempotency key, value = canonical record."""
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=e.idempotency_key.encode(), value=encode_event(e))
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def group_lag(bootstrap: str, group: str, topic: str) -> int | None:
    """Messages of ``topic`` not yet committed by ``group`` (None: nothing committed yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        if not any(tp in committed for tp in tps):
            return None
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


def wait_drained(
    bootstrap: str,
    group: str,
    topic: str,
    *,
    timeout: float = 180,
    alive: Iterable[subprocess.Popen[bytes]] = (),
    logs: Iterable[Path] = (),
) -> None:
    """Until the group has committed every message of ``topic``; fail early if a worker died."""
    deadline = time.monotonic() + timeout
    procs = list(alive)
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                tails = "\n".join(p.read_text()[-3000:] for p in logs)
                raise AssertionError(f"worker exited with {proc.returncode}:\n{tails}")
        if asyncio.run(group_lag(bootstrap, group, topic)) == 0:
            return
        time.sleep(0.5)
    tails = "\n".join(p.read_text()[-3000:] for p in logs)
    raise AssertionError(f"group {group} did not drain {topic} in {timeout:.0f} s\n{tails}")


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
