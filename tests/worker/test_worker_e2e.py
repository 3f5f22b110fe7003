"""Worker processes against the real Kafka broker and the real ClickHouse engine.

Events from all five gateways (decoded by the real decoders), several tenants under aliases and
header variants, each delivered 1 to 3 times in shuffled order. After the worker(s) drain the
topic, the meters must equal an independent calculation from the unique events
(tests/support/reference.py), and the fate counts must be exact -- also after SIGKILLs at
chosen points, a wiped state directory, a rebalance, and ClickHouse being away for a while.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.catalog import load_catalog
from pipeline.devstack.clickhouse_launcher import ClickHouseLauncher
from pipeline.devstack.processes import start_worker, stop_worker
from pipeline.devstack.traffic import SampleDelivery, sample_deliveries
from pipeline.kafka import group_lag
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.worker.app import EXIT_OFFSET_GAP
from pipeline.worker.faults import POINTS
from pipeline.worker.stopping import EXIT_UNFINISHED
from tests.support.stack import REPO, private_kafka, wait_drained, wait_for
from tests.worker.support import (
    Stack,
    assert_exact,
    committed,
    committed_by_partition,
    database_for,
    expected_for,
    wait_committed_beyond,
    wait_for_log,
)

pytestmark = pytest.mark.integration


def test_exact_meters_and_fates_from_five_gateways(stack: Stack) -> None:
    deliveries = sample_deliveries(400, seed=1)
    expected = expected_for(deliveries)
    assert expected.duplicates > 100 and expected.unmapped > 0 and expected.quarantined
    assert stack.produce(deliveries) == expected.delivered
    stack.run_until_drained()
    store = stack.store()
    try:
        assert_exact(store, stack.database, expected)
        gateways = store.query(
            f"SELECT DISTINCT gateway FROM {stack.database}.usage_events ORDER BY gateway"
        )
        assert [r["gateway"] for r in gateways] == ["apigee", "aws", "azure", "kong", "mulesoft"]
    finally:
        store.close()


#: every crash point of the sink's crash matrix (faults.POINTS), each at one batch
CRASH_SPECS = [
    "during_sink:event_log:2",
    "during_sink:usage_events:3",
    "during_sink:meter_entries:2",
    "after_sink:2",
    "after_outputs:3",
    "after_changelog:2",
    "after_state:3",
    "after_commit:2",
]


def test_the_crash_test_drives_every_crash_point() -> None:
    assert [spec.rpartition(":")[0] for spec in CRASH_SPECS] == list(POINTS)


@pytest.mark.parametrize("point", CRASH_SPECS)
def test_sigkill_at_a_crash_point_then_restart_is_exact(stack: Stack, point: str) -> None:
    assert Settings(worker_crash_at=point).worker_crash_at == point  # the setting takes it
    deliveries = sample_deliveries(300, seed=2)
    expected = expected_for(deliveries)
    stack.produce(deliveries)
    crashing = start_worker(stack.env(PIPELINE_WORKER_CRASH_AT=point), stack.log())
    assert crashing.wait(180) == -signal.SIGKILL
    stack.run_until_drained()
    stack.assert_exact(expected)


def test_sigkill_mid_stream_after_observed_progress_then_restart_is_exact(stack: Stack) -> None:
    """Each worker is killed only once it has committed more than the one before it (observed,
    not slept for), with batches still ahead of it; its exit is the SIGKILL's."""
    deliveries = sample_deliveries(600, seed=3)
    expected = expected_for(deliveries)
    total = stack.produce(deliveries)
    reached = 0
    for _ in range(3):
        proc = start_worker(stack.env(PIPELINE_WORKER_BATCH_MAX="20"), stack.log())
        reached = wait_committed_beyond(stack, reached)
        assert reached < total  # mid-stream: work left when it dies
        assert stop_worker(proc, signal.SIGKILL) == -signal.SIGKILL
    stack.run_until_drained()
    stack.assert_exact(expected)


def test_wiped_state_directory_is_rebuilt_from_the_changelog(stack: Stack) -> None:
    first = sample_deliveries(200, seed=4, max_copies=1)
    stack.produce(first)
    stack.run_until_drained()
    shutil.rmtree(stack.tmp / "state-w1")
    # Later retries of the same events: the stream must still know them (state from changelog).
    retried = [SampleDelivery(d.gateway, d.call, 1) for d in first[:50]]
    stack.produce(retried)
    stack.run_until_drained()
    store = stack.store()
    try:
        [row] = store.query(
            "SELECT countIf(disposition = 'duplicate') AS dup "
            f"FROM {stack.database}.event_log FINAL"
        )
        # every retried copy whose tenant resolves was recognised by the rebuilt state
        assert row["dup"] == sum(1 for d in retried if _resolves(d))
        again = {d.call.idempotency_key for d in retried}
        assert_exact(
            store,
            stack.database,
            expected_for(
                [
                    SampleDelivery(d.gateway, d.call, 2 if d.call.idempotency_key in again else 1)
                    for d in first
                ]
            ),
        )
    finally:
        store.close()


def _resolves(delivery: SampleDelivery) -> bool:
    expected = expected_for([delivery])
    return not expected.quarantined


def _revoked(log: Path) -> list[int]:
    found = re.findall(r"revoked partitions \[([0-9, ]+)\]", log.read_text())
    assert found, log.read_text()[-2000:]
    return [int(p) for p in found[0].split(",")]


def test_second_worker_joins_then_one_leaves_by_sigterm(stack: Stack) -> None:
    deliveries = sample_deliveries(1200, seed=5)
    expected = expected_for(deliveries)
    half = len(deliveries) // 2
    stack.produce(deliveries[:half], seed=21)
    one = start_worker(stack.env("w1"), stack.log("w1"))
    two = None
    try:
        wait_committed_beyond(stack, 0)  # w1 is mid-stream: it has committed progress
        two = start_worker(stack.env("w2"), stack.log("w2"))
        # the rebalance, observed: w2 is assigned partitions and w1 gives some up
        wait_for_log(stack.log("w2"), "assigned partitions", 120)
        wait_for_log(stack.log("w1"), "revoked partitions", 120)
        revoked = _revoked(stack.log("w1"))
        before = committed_by_partition(stack)
        stack.produce(deliveries[half:], seed=22)
        # the revoked partitions' offsets move on: their new owner commits them
        wait_for(
            lambda: all(
                committed_by_partition(stack).get(p, 0) > before.get(p, 0) for p in revoked
            ),
            120,
            f"commits on the revoked partitions {revoked}",
        )
        stop_worker(one, signal.SIGTERM)
        # 75: w1 found a skipped offset and stopped without acknowledging (see below); 69: it
        # stopped with batches uncommitted (a rebalance took its grace), re-read by w2
        assert one.returncode in (0, EXIT_OFFSET_GAP, EXIT_UNFINISHED), stack.log("w1").read_text()[
            -3000:
        ]
        # Supervise w2 like a restart policy would: a worker that finds an offset the stream
        # skipped (Faust, during rebalances) exits with 75 and is started again.
        deadline = time.monotonic() + 240
        while asyncio.run(group_lag(stack.bootstrap, stack.name, stack.topic)) != 0:
            assert time.monotonic() < deadline, stack.log("w2").read_text()[-3000:]
            if two.poll() is not None:
                assert two.returncode == EXIT_OFFSET_GAP, stack.log("w2").read_text()[-3000:]
                two = start_worker(stack.env("w2"), stack.log("w2"))
            time.sleep(0.5)
    finally:
        stop_worker(one)
        if two is not None:
            stop_worker(two)
    stack.assert_exact(expected)


def test_clickhouse_server_sigkilled_mid_stream_then_restarted_catches_up(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """The ClickHouse server process is SIGKILLed while the worker writes: the worker holds
    without committing, and once the server is back on the same port and data it catches up."""
    server = ClickHouseLauncher(tmp_path / "clickhouse")  # ours alone: it gets killed
    info = server.start()
    stack = Stack(kafka_bootstrap, unique_name, info.url, "metering", tmp_path)
    deliveries = sample_deliveries(500, seed=6)
    expected = expected_for(deliveries)
    try:
        stack.produce(deliveries[:100], seed=31)
        proc = start_worker(stack.env(), stack.log())
        try:
            wait_drained(stack.bootstrap, stack.name, stack.topic, alive=[proc], logs=[stack.log()])
            stack.produce(deliveries[100:], seed=32)
            wait_for(lambda: committed(stack) > 100, 60, "the worker to commit new batches")
            assert server.kill() == info.pid  # mid-stream: batches of 100 are being written
            wait_for(
                lambda: stack.log().read_text().count("ClickHouse insert failed") >= 2,
                60,
                "the worker to fail an insert and retry it",
            )
            # Nothing is acknowledged while nothing can be written: the commits stay put.
            held = committed(stack)
            time.sleep(3)
            assert committed(stack) == held < expected.delivered
            assert proc.poll() is None
            assert server.start().http_port == info.http_port  # back: same port and data
            wait_drained(stack.bootstrap, stack.name, stack.topic, alive=[proc], logs=[stack.log()])
        finally:
            stop_worker(proc)
        stack.assert_exact(expected)
    finally:
        server.stop()


def test_kafka_away_for_a_while_the_same_worker_holds_then_continues(
    tmp_path: Path, unique_name: str, clickhouse_url: str, store: Store
) -> None:
    launcher = private_kafka(tmp_path / "kafka")  # ours to stop
    bootstrap = launcher.start().bootstrap_servers
    stack = Stack(bootstrap, unique_name, clickhouse_url, database_for(unique_name), tmp_path)
    deliveries = sample_deliveries(600, seed=8)
    expected = expected_for(deliveries)
    try:
        stack.produce(deliveries[:300], seed=41)
        proc = start_worker(stack.env(PIPELINE_WORKER_BATCH_MAX="5"), stack.log())
        try:
            # mid-stream, observed: batches of 5 are being committed, and not all of them yet
            reached = wait_committed_beyond(stack, 0)
            launcher.stop()
            assert reached < 300
            time.sleep(8)  # the broker stays away a while; the worker must hold, not exit
            assert proc.poll() is None, stack.log().read_text()[-3000:]
            launcher.start()  # same data dir and port
            stack.produce(deliveries[300:], seed=42)
            wait_drained(bootstrap, stack.name, stack.topic, alive=[proc], logs=[stack.log()])
            assert proc.poll() is None  # the same process held and continued
        finally:
            stop_worker(proc)
        stack.assert_exact(expected)
    finally:
        store.command(f"DROP DATABASE IF EXISTS {stack.database}")
        launcher.stop()


def test_quantities_are_decimals(stack: Stack) -> None:
    stack.produce(sample_deliveries(30, seed=8))
    stack.run_until_drained()
    store = stack.store()
    try:
        rows = store.query(f"SELECT quantity FROM {stack.database}.meters_monthly")
        assert rows and all(isinstance(r["quantity"], Decimal) for r in rows)
    finally:
        store.close()


def test_one_invoice_for_a_tenant_seen_through_three_gateways(stack: Stack) -> None:
    """acme's usage arrives via Kong, Azure and MuleSoft under different X-Tenant-Id variants,
    retried 1-3 times: one invoice whose total equals an independent calculation."""
    from datetime import UTC, datetime, timedelta

    from pipeline.billing import invoice_tenant
    from pipeline.devstack.samples import SampleCall
    from pipeline.rating import Period
    from tests.support.pricer import plan_of, price

    variants = {"kong": "ACME-LEGACY", "azure": " acme_eu ", "mulesoft": "Acme"}
    apis = {"kong": "payments-svc", "azure": "payments-api", "mulesoft": "16183421"}
    start = datetime(2026, 3, 2, tzinfo=UTC)
    deliveries = [
        SampleDelivery(
            gateway,  # type: ignore[arg-type]
            SampleCall(
                idempotency_key=f"inv-{gateway}-{i}",
                timestamp=start + timedelta(hours=i),
                api=apis[gateway],
                route="/v1/payments",
                method="POST",
                status=200 if i % 5 else 502,
                request_bytes=300,
                response_bytes=700_000_000 + i,
                latency_ms=20 + i,
                consumer=f"app-{i % 13}",
                tenant=variants[gateway],
            ),
            1 + i % 3,
        )
        for gateway in variants
        for i in range(40)
    ]
    expected = expected_for(deliveries)
    assert not expected.quarantined
    stack.produce(deliveries)
    stack.run_until_drained()
    catalog = load_catalog(REPO / "rating_rules")
    period = Period.parse("2026-03")
    # Independent: quantities from the naive reference over the unique events, then the rules.
    quantities = {
        (product, metric): quantity
        for (tenant, product, metric, month), quantity in expected.quantities.items()
        if tenant == "acme" and month == "2026-03"
    }
    # the naive pricer, from the rules YAML: nothing of pipeline.rating or pipeline.catalog
    independent = price(plan_of(REPO / "rating_rules", "acme"), period.start_date, quantities)
    store = stack.store()
    try:
        gateways = store.query(
            f"SELECT DISTINCT gateway FROM {stack.database}.usage_events FINAL "
            "WHERE tenant = 'acme'"
        )
        assert {r["gateway"] for r in gateways} == {"kong", "azure", "mulesoft"}
        stored = invoice_tenant(
            store, stack.database, catalog, "ACME-LEGACY", period, clock=lambda: datetime.now(UTC)
        )
    finally:
        store.close()
    assert stored.tenant == "acme"
    assert stored.invoice.total == independent.total
    assert [line.amount for line in stored.invoice.lines] == [a for _, a in independent.lines]
    # 96 of 120 calls answered below 500: 120 * 4/5 calls, each billed once
    calls = next(line for line in stored.invoice.lines if line.metric == "calls")
    assert calls.quantity == 96
