"""Helpers for integration tests on real processes: producing like the edge, waiting for a
consumer group to drain a topic. Workers and the test share the run's ClickHouse server
(tests/conftest_store.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.devstack.kafka_launcher import KafkaLauncher
from pipeline.events import CanonicalEvent
from pipeline.events.codec import encode_event
from pipeline.kafka import TopicSpec, ensure_topics, group_lag, make_producer
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]


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


def private_kafka(home: Path) -> KafkaLauncher:
    """A Kafka launcher of one test (a broker it may stop and restart) that shares only the
    cached jars with the default launcher; not started."""
    shared = Settings()
    libs = KafkaLauncher(shared.cache_dir, shared.kafka_version).ensure_jars()
    launcher = KafkaLauncher(home, shared.kafka_version)
    launcher.home.mkdir(parents=True, exist_ok=True)
    os.symlink(libs, launcher.libs_dir)
    return launcher
