"""Migration 0001: the usage_events table, its exact types and its dedup-by-key behaviour."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pipeline.store import Store

pytestmark = pytest.mark.integration

EXPECTED_COLUMNS = [
    ("tenant", "LowCardinality(String)"),
    ("idempotency_key", "String"),
    ("gateway", "LowCardinality(String)"),
    ("integration_id", "LowCardinality(String)"),
    ("tenant_header", "Nullable(String)"),
    ("event_time", "DateTime64(6, 'UTC')"),
    ("api", "Nullable(String)"),
    ("route", "Nullable(String)"),
    ("method", "LowCardinality(Nullable(String))"),
    ("status", "Nullable(UInt16)"),
    ("request_bytes", "Nullable(UInt64)"),
    ("response_bytes", "Nullable(UInt64)"),
    ("latency_ms", "Nullable(UInt64)"),
    ("consumer", "Nullable(String)"),
    ("attributes", "Map(String, String)"),
    ("product", "Nullable(String)"),
    ("fate", "LowCardinality(String)"),
    ("billing_run", "LowCardinality(String)"),
    ("source_partition", "UInt32"),
    ("source_offset", "UInt64"),
    ("processed_at", "DateTime64(3, 'UTC')"),
]


def _event(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant": "acme",
        "idempotency_key": "kong-req-1",
        "gateway": "kong",
        "integration_id": "kong-prod",
        "tenant_header": "ACME-LEGACY",
        "event_time": datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "api": "payments-svc",
        "route": "/v1/payments/{id}",
        "method": "POST",
        "status": 201,
        "request_bytes": 512,
        "response_bytes": 2**40,
        "latency_ms": 37,
        "consumer": "app-1",
        "attributes": {"tokens": "1200", "region": "eu"},
        "product": "payments",
        "fate": "billed",
        "billing_run": "run-2026-03-a",
        "source_partition": 3,
        "source_offset": 2**40 + 7,
        "processed_at": datetime(2026, 4, 1, 0, 0, 1, 123000, tzinfo=UTC),
    }
    row.update(overrides)
    return row


def test_columns_engine_and_keys_are_as_specified(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    columns = store.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} "
        "AND table = 'usage_events' ORDER BY position",
        {"db": database},
    )
    assert [(c["name"], c["type"]) for c in columns] == EXPECTED_COLUMNS
    [table] = store.query(
        "SELECT engine, sorting_key, partition_key FROM system.tables "
        "WHERE database = {db:String} AND name = 'usage_events'",
        {"db": database},
    )
    assert table == {
        "engine": "ReplacingMergeTree",
        "sorting_key": "billing_run, tenant, idempotency_key",
        "partition_key": "toYYYYMM(event_time)",
    }


def test_an_event_round_trips_exactly(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    full = _event()
    sparse = _event(
        idempotency_key="aws-req-2",
        gateway="aws",
        tenant_header=None,
        api=None,
        route=None,
        method=None,
        status=None,
        request_bytes=None,
        response_bytes=None,
        latency_ms=None,
        consumer=None,
        attributes={},
        product=None,
        fate="unmapped",
    )
    store.insert_rows(f"{database}.usage_events", [full, sparse])
    rows = store.query(f"SELECT * FROM {database}.usage_events ORDER BY idempotency_key")
    assert rows == [sparse, full]


def test_final_collapses_a_redelivered_event(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    table = f"{database}.usage_events"
    store.insert_rows(table, [_event()])
    store.insert_rows(table, [_event(processed_at=datetime(2026, 4, 1, 0, 5, tzinfo=UTC))])
    store.insert_rows(table, [_event(tenant="globex")])  # same key, other tenant: its own event
    [raw] = store.query(f"SELECT count() AS c FROM {table}")
    assert raw["c"] == 3
    final = store.query(f"SELECT tenant, idempotency_key FROM {table} FINAL ORDER BY tenant")
    assert final == [
        {"tenant": "acme", "idempotency_key": "kong-req-1"},
        {"tenant": "globex", "idempotency_key": "kong-req-1"},
    ]
    store.command(f"OPTIMIZE TABLE {table} FINAL")
    [merged] = store.query(f"SELECT count() AS c FROM {table}")
    assert merged["c"] == 2


def test_copies_in_different_months_are_never_merged_away(
    fresh_database: tuple[Store, str],
) -> None:
    """The documented caveat: merges stay inside a month; FINAL and the by-key read do not."""
    store, database = fresh_database
    table = f"{database}.usage_events"
    march = _event()
    april = _event(
        event_time=datetime(2026, 4, 1, tzinfo=UTC),
        processed_at=datetime(2026, 4, 2, tzinfo=UTC),
    )
    store.insert_rows(table, [march])
    store.insert_rows(table, [april])
    store.command(f"OPTIMIZE TABLE {table} FINAL")
    [stored] = store.query(f"SELECT count() AS c FROM {table}")
    assert stored["c"] == 2
    [final] = store.query(f"SELECT count() AS c FROM {table} FINAL")
    assert final["c"] == 1
    by_key = store.query(
        "SELECT tenant, idempotency_key, argMin(event_time, processed_at) AS event_time "
        f"FROM {table} GROUP BY tenant, idempotency_key"
    )
    assert by_key == [
        {"tenant": "acme", "idempotency_key": "kong-req-1", "event_time": march["event_time"]}
    ]


def test_money_style_decimals_aggregate_exactly(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    store.insert_rows(
        f"{database}.usage_events",
        [_event(idempotency_key=f"k{n}", attributes={"tokens": "0.1"}) for n in range(10)],
    )
    [row] = store.query(
        "SELECT sum(toDecimal128(attributes['tokens'], 9)) AS tokens "
        f"FROM {database}.usage_events FINAL WHERE tenant = {{tenant:String}}",
        {"tenant": "acme"},
    )
    assert row == {"tokens": Decimal("1.000000000")}
