"""The end-to-end tests' stack: Kafka topics and a ClickHouse database of one test, worker
processes on them, and the exactness check against the naive reference."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from pipeline.catalog import load_catalog
from pipeline.devstack.processes import start_worker, stop_worker, worker_env
from pipeline.devstack.traffic import SampleDelivery, canonical, shuffled_copies
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from tests.support.reference import Expected, expected_usage
from tests.support.stack import REPO, produce_events, wait_drained


@dataclass
class Stack:
    """Kafka topics ``<name>.*`` and a database of their own on a ClickHouse server."""

    bootstrap: str
    name: str
    store_url: str
    database: str
    tmp: Path

    @property
    def topic(self) -> str:
        return f"{self.name}.events"

    def env(self, worker: str = "w1", **extra: str) -> dict[str, str]:
        return worker_env(
            bootstrap=self.bootstrap,
            name=self.name,
            store_url=self.store_url,
            state_dir=self.tmp / f"state-{worker}",
            rules_dir=REPO / "rating_rules",
            extra={
                "PIPELINE_WORKER_BATCH_MAX": "100",
                "PIPELINE_CLICKHOUSE_DATABASE": self.database,
                **extra,
            },
        )

    def log(self, worker: str = "w1") -> Path:
        return self.tmp / f"{worker}.log"

    def produce(self, deliveries: list[SampleDelivery], seed: int = 11) -> int:
        events = [event for _d, event in shuffled_copies(deliveries, seed=seed)]
        return asyncio.run(produce_events(self.bootstrap, self.topic, events))

    def store(self) -> Store:
        return open_store(Settings(clickhouse_url=SecretStr(self.store_url)))

    def assert_exact(self, expected: Expected) -> None:
        store = self.store()
        try:
            assert_exact(store, self.database, expected)
        finally:
            store.close()

    def run_until_drained(self, worker: str = "w1", **extra: str) -> None:
        proc = start_worker(self.env(worker, **extra), self.log(worker))
        try:
            wait_drained(
                self.bootstrap, self.name, self.topic, alive=[proc], logs=[self.log(worker)]
            )
        finally:
            stop_worker(proc)


def database_for(name: str) -> str:
    return "e2e_" + "".join(c if c.isalnum() else "_" for c in name)


def expected_for(deliveries: list[SampleDelivery]) -> Expected:
    catalog = load_catalog(REPO / "rating_rules")
    return expected_usage(catalog, [(canonical(d).model_dump(), d.copies) for d in deliveries])


def assert_exact(store: Store, db: str, expected: Expected, dead_letters: int = 0) -> None:
    """Meters equal the reference; every consumed copy has exactly one fate, and the fates
    add up: accepted = billed + unmapped + duplicate + quarantined + dead_letter."""
    rows = store.query(
        f"SELECT tenant, product, metric, period, quantity FROM {db}.meters_monthly "
        "WHERE billing_run = 'live'"
    )
    # every meter row, zeros included: a row missing or extra on either side fails (the meters
    # have a row exactly where the reference has at least one entry)
    actual = {(r["tenant"], r["product"], r["metric"], r["period"]): r["quantity"] for r in rows}
    wanted = {k: v for k, v in expected.quantities.items() if expected.entries[k] > 0}
    assert actual == wanted
    fates = {
        r["fate"]: r["n"]
        for r in store.query(f"SELECT fate, count() AS n FROM {db}.event_fates GROUP BY fate")
    }
    assert fates.get("billed", 0) == expected.metered
    assert fates.get("unmapped", 0) == expected.unmapped
    assert fates.get("duplicate", 0) == expected.duplicates
    assert fates.get("quarantined", 0) == sum(expected.quarantined_copies.values())
    assert fates.get("dead_letter", 0) == dead_letters
    # no event lost, none counted twice
    assert sum(fates.values()) == expected.delivered + dead_letters
    [unique] = store.query(f"SELECT count() AS n FROM {db}.usage_events FINAL")
    assert unique["n"] == expected.unique


def committed_by_partition(stack: Stack) -> dict[int, int]:
    """The worker group's committed offset of each partition of the events topic."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def read() -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(stack.name)
        finally:
            await admin.close()
        return {
            tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == stack.topic
        }

    return asyncio.run(read())


def committed(stack: Stack) -> int:
    """Offsets the worker group has committed on the events topic, summed over partitions."""
    return sum(committed_by_partition(stack).values())


def wait_committed_beyond(stack: Stack, offsets: int, timeout: float = 120) -> int:
    """Until the group has committed more than ``offsets`` records; the count it reached."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = committed(stack)
        if done > offsets:
            return done
        time.sleep(0.1)
    raise AssertionError(f"the group did not commit beyond {offsets} within {timeout:.0f} s")


def wait_for_log(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{path.name} never said {text!r}")
