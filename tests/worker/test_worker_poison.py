"""One poison event among 20,000 good ones, end to end: a real worker process, Kafka and
ClickHouse. The poison is refused by ClickHouse itself (a CHECK constraint added to the test's
database), not by the worker's record check, so what is tested is the sink's isolation: the
partition keeps moving, the 20,000 are billed exactly, the poison is dead-lettered with the
engine's own message and has a fate of its own, and the worker is never restarted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from pipeline.devstack.processes import start_worker, stop_worker
from pipeline.devstack.samples import SampleCall
from pipeline.devstack.traffic import SampleDelivery, canonical, sample_deliveries
from pipeline.events.codec import encode_event
from pipeline.store import Store
from pipeline.store.migrate import migrate
from tests.support.stack import wait_drained
from tests.support.topics import consume
from tests.worker.support import Stack, assert_exact, expected_for

pytestmark = pytest.mark.integration

POISON = SampleDelivery(
    "kong",
    SampleCall(
        idempotency_key="poison-1",
        timestamp=datetime(2026, 3, 9, 12, 0, tzinfo=UTC),
        api="payments-svc",
        route="/v1/payments",
        method="POST",
        status=200,
        request_bytes=100,
        response_bytes=5000,
        latency_ms=20,
        consumer="poison-app",
        tenant="acme",
    ),
    1,
)


def test_a_poison_event_is_isolated_and_the_partition_keeps_moving(
    stack: Stack, store: Store
) -> None:
    good = sample_deliveries(20_000, seed=71, max_copies=1, key_prefix="good")
    expected = expected_for(good)
    assert expected.delivered == 20_000
    poison = canonical(POISON)
    assert poison.consumer == "poison-app" and expected_for([POISON]).metered == 1  # billable
    migrate(store, stack.database)
    store.command(
        f"ALTER TABLE {stack.database}.usage_events "
        "ADD CONSTRAINT no_poison CHECK consumer != 'poison-app'"
    )
    assert stack.produce([*good, POISON], seed=72) == 20_001
    proc = start_worker(stack.env(PIPELINE_WORKER_BATCH_MAX="5000"), stack.log())
    try:
        # lag 0: every partition moved past the poison, nothing is retried forever
        wait_drained(
            stack.bootstrap, stack.name, stack.topic, alive=[proc], logs=[stack.log()], timeout=300
        )
        assert proc.poll() is None  # the same process: never crashed nor restarted
        assert stack.log().read_text().count("consuming") == 1
    finally:
        stop_worker(proc)

    # the 20,000 billed exactly as the naive reference says; the poison has its own fate
    assert_exact(store, stack.database, expected, dead_letters=1)
    [row] = store.query(
        f"SELECT fate, source_partition AS p, source_offset AS o, quarantine_detail AS detail "
        f"FROM {stack.database}.event_fates WHERE idempotency_key = 'poison-1'"
    )
    assert row["fate"] == "dead_letter"
    assert "Constraint `no_poison`" in row["detail"]

    # on the dead-letter topic: the record as consumed, the engine's message as the reason
    [letter] = asyncio.run(consume(stack.bootstrap, f"{stack.name}.dlq", 1))
    value, headers = letter.value, dict(letter.headers)
    assert headers["kind"] == b"poison"
    assert value == encode_event(poison)
    reason = headers["reason"].decode()
    assert "ClickHouse refused its usage_events row (code 469 VIOLATED_CONSTRAINT)" in reason
    assert "Code: 469. DB::Exception: Constraint `no_poison`" in reason
    assert headers["source"] == f"{stack.topic}/{row['p']}/{row['o']}".encode()
    assert headers["table"] == b"usage_events"
