"""Rows for the billing and finance tests: one usage event -> its usage_events row, event_log
row and meter_entries rows, exactly as the stream workers would write them, plus a catalog
and a clock. Expected amounts are worked out by hand in the tests, never from these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import orjson

from pipeline.catalog import Catalog, parse_rules
from pipeline.store import Store

RULES = """
tenants:
  - {id: acme, plan: growth, aliases: [ACME-LEGACY, acme_eu]}
  - {id: globex, plan: growth}
  - {id: hooli, plan: HOOLI_PLAN}
  - {id: initech, plan: tokyo}
  - {id: soylent, plan: later}
products:
  - id: payments
    match:
      - {gateway: kong, api: payments-svc}
      - {gateway: apigee, api: payments-v1}
      - {gateway: aws, api: h7k2p9q4xa}
    metrics:
      - {id: calls, aggregation: count}
      - {id: egress_gb, aggregation: sum, field: response_bytes, divide_by: 1000000000}
      - {id: active_apps, aggregation: unique_count, field: consumer}
      - {id: peak_latency, aggregation: max, field: latency_ms}
plans:
  - id: growth
    currency: USD
    versions:
      - effective_from: 2026-01-01
        minimum_commitment: "60.00"
        charges:
          - {model: flat, amount: "49.00", name: Platform fee}
          - {product: payments, metric: calls, model: graduated, name: Payment calls,
             tiers: [{up_to: 10, unit_price: "0"}, {unit_price: "CALL_PRICE"}]}
          - {product: payments, metric: egress_gb, model: per_unit, unit_price: "0.09",
             included: 1}
          - {product: payments, metric: active_apps, model: volume,
             tiers: [{up_to: 2, unit_price: "5"}, {unit_price: "4", flat_fee: "10"}]}
  - id: tokyo
    currency: JPY
    versions:
      - effective_from: 2025-06-01
        minimum_commitment: "1000"
        charges:
          - {model: flat, amount: "1200", name: Platform fee}
          - {product: payments, metric: calls, model: volume,
             tiers: [{up_to: 100, unit_price: "0.5"}, {unit_price: "0.4", flat_fee: "1000"}]}
          - {product: payments, metric: egress_gb, model: per_unit, unit_price: "13.5"}
  - id: later
    currency: USD
    versions:
      - effective_from: 2027-01-01
        charges:
          - {model: flat, amount: "10.00"}
"""


@cache
def catalog(call_price: str = "0.25", hooli_plan: str = "growth") -> Catalog:
    """The test catalog; ``call_price`` is the growth price per call above the first 10."""
    text = RULES.replace("CALL_PRICE", call_price).replace("HOOLI_PLAN", hooli_plan)
    return Catalog.from_rules(parse_rules(text, "billing-test-rules.yaml"))


MARCH = "2026-03"


def at(day: int, hour: int = 12, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


class Clock:
    """An injected clock: 2026-04-01T09:00Z, one second later on every call."""

    def __init__(self, start: datetime = datetime(2026, 4, 1, 9, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        current = self.now
        self.now += timedelta(seconds=1)
        return current


@dataclass(frozen=True)
class Usage:
    """One usage event of the test scenarios (one copy unless ``copies`` says more)."""

    key: str
    gateway: str
    time: datetime
    tenant: str | None = "acme"
    consumer: str | None = None
    response_bytes: int | None = None
    latency_ms: int | None = None
    product: str | None = "payments"
    api: str | None = "payments-svc"
    route: str | None = "/v1/payments"
    headers: tuple[str, ...] = ("acme",)
    billing_run: str = "live"
    quarantine_reason: str = ""
    copies: int = 1
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def integration(self) -> str:
        return f"{self.gateway}-prod"

    @property
    def quarantined(self) -> bool:
        return bool(self.quarantine_reason)


def usage_event_row(usage: Usage) -> dict[str, Any]:
    return {
        "tenant": usage.tenant,
        "idempotency_key": usage.key,
        "gateway": usage.gateway,
        "integration_id": usage.integration,
        "tenant_header": usage.headers[0] if usage.headers else None,
        "event_time": usage.time,
        "api": usage.api,
        "route": usage.route,
        "method": "POST",
        "status": 200,
        "request_bytes": 100,
        "response_bytes": usage.response_bytes,
        "latency_ms": usage.latency_ms,
        "consumer": usage.consumer,
        "attributes": usage.attributes,
        "product": usage.product,
        "fate": "billed" if usage.product else "unmapped",
        "billing_run": usage.billing_run,
        "source_partition": 0,
        "source_offset": 0,
        "processed_at": usage.time + timedelta(seconds=1),
    }


def event_log_rows(usage: Usage, first_offset: int) -> list[dict[str, Any]]:
    """Every consumed copy of ``usage`` (offsets first_offset, first_offset + 1, ...)."""
    payload = orjson.dumps(
        {
            "idempotency_key": usage.key,
            "tenant_headers": list(usage.headers),
            "gateway": usage.gateway,
            "integration_id": usage.integration,
            "timestamp": usage.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "api": usage.api,
            "route": usage.route,
            "method": "POST",
            "status": 200,
            "request_bytes": 100,
            "response_bytes": usage.response_bytes,
            "latency_ms": usage.latency_ms,
            "consumer": usage.consumer,
            "attributes": usage.attributes,
        }
    ).decode()
    return [
        {
            "source_topic": "usage-events",
            "source_partition": 0,
            "source_offset": first_offset + copy,
            "idempotency_key": usage.key,
            "integration_id": usage.integration,
            "gateway": usage.gateway,
            "tenant_headers": list(usage.headers),
            "tenant": None if usage.quarantined else usage.tenant,
            "event_time": usage.time,
            "disposition": "quarantined" if usage.quarantined else "accepted",
            "quarantine_reason": usage.quarantine_reason,
            "quarantine_detail": f"{usage.quarantine_reason} for {usage.headers}"
            if usage.quarantined
            else "",
            "product": None if usage.quarantined else usage.product,
            "payload": payload,
            "processed_at": usage.time + timedelta(seconds=1 + copy),
        }
        for copy in range(usage.copies)
    ]


def meter_rows(usage: Usage) -> list[dict[str, Any]]:
    """The meter entries of ``usage`` for the payments product of the test catalog."""
    if usage.product != "payments" or usage.quarantined:
        return []

    def entry(metric: str, aggregation: str, **values: Any) -> dict[str, Any]:
        return {
            "billing_run": usage.billing_run,
            "tenant": usage.tenant,
            "product": "payments",
            "metric": metric,
            "aggregation": aggregation,
            "idempotency_key": usage.key,
            "event_time": usage.time,
            "value": values.get("value"),
            "distinct_value": values.get("distinct_value"),
            "divide_by": values.get("divide_by", Decimal(1)),
        }

    rows = [entry("calls", "count", value=Decimal(1))]
    if usage.response_bytes is not None:
        rows.append(
            entry(
                "egress_gb",
                "sum",
                value=Decimal(usage.response_bytes),
                divide_by=Decimal(1_000_000_000),
            )
        )
    if usage.consumer is not None:
        rows.append(entry("active_apps", "unique_count", distinct_value=usage.consumer))
    if usage.latency_ms is not None:
        rows.append(entry("peak_latency", "max", value=Decimal(usage.latency_ms)))
    return rows


def write_usage(store: Store, database: str, usages: Iterable[Usage]) -> None:
    """Write the events as the stream would: event log (every copy), usage_events and meter
    entries (first copy, unless quarantined)."""
    items = list(usages)
    log: list[dict[str, Any]] = []
    offset = _next_offset(store, database)
    for usage in items:
        log += event_log_rows(usage, offset)
        offset += usage.copies
    tables = {
        "event_log": log,
        "usage_events": [usage_event_row(u) for u in items if not u.quarantined],
        "meter_entries": [row for u in items for row in meter_rows(u)],
    }
    for table, rows in tables.items():
        if rows:
            store.insert_rows(f"{database}.{table}", rows)


def _next_offset(store: Store, database: str) -> int:
    [row] = store.query(f"SELECT max(source_offset) + 1 AS next FROM {database}.event_log")
    return int(row["next"])


def acme_march_across_three_gateways() -> list[Usage]:
    """acme's March usage: 20 calls through kong (8), apigee (6) and aws (6).

    egress 1e9 (kong-1) + 1e9 (apigee-1) + 5e8 (aws-1) bytes = 2.5 GB; consumers app-1,
    app-2 and app-3 (aws-6): 3 distinct; peak latency 340 ms (apigee-3).
    """
    kong = [
        Usage(f"kong-{n}", "kong", at(n), consumer="app-1", headers=("ACME-LEGACY",))
        for n in range(1, 9)
    ]
    apigee = [
        Usage(f"apigee-{n}", "apigee", at(10 + n), consumer="app-2", api="payments-v1")
        for n in range(1, 7)
    ]
    aws = [
        Usage(f"aws-{n}", "aws", at(20 + n), consumer="app-1", api="h7k2p9q4xa", headers=())
        for n in range(1, 7)
    ]
    kong[0] = replace(kong[0], response_bytes=1_000_000_000)
    kong[1] = replace(kong[1], latency_ms=120)
    apigee[0] = replace(apigee[0], response_bytes=1_000_000_000)
    apigee[2] = replace(apigee[2], latency_ms=340)
    aws[0] = replace(aws[0], response_bytes=500_000_000)
    aws[3] = replace(aws[3], latency_ms=90)
    aws[5] = replace(aws[5], consumer="app-3")
    return kong + apigee + aws
