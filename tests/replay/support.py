"""Scenario data for the replay tests: a small catalog, and a live stream that writes the
database exactly as the stream workers do (BatchProcessor over encoded canonical records,
then the ClickHouse sink), with each copy of an event on the partition its key hashes to.

Expected quantities and amounts are worked out by hand in the tests, never from here.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.catalog import Catalog
from pipeline.events import CanonicalEvent, encode_event
from pipeline.store import Store
from pipeline.worker.batch import BatchProcessor, ConsumedMessage
from pipeline.worker.sink import ClickHouseSink
from tests.support.builders import catalog_from_yaml, key_sha256, make_event

TOPIC = "usage.events"
PARTITIONS = 3
WINDOW_MS = 35 * 24 * 3600 * 1000
MARCH = "2026-03"
APRIL = "2026-04"

RULES = """
tenants:
  - {id: acme, plan: growth, aliases: ACME_ALIASES}
  - {id: globex, plan: growth}
integrations:
  - {id: kong-prod, gateway: kong, api_key_sha256: "KONG_SHA", allowed_tenants: [acme, globex]}
  - {id: azure-prod, gateway: azure, api_key_sha256: "AZURE_SHA", allowed_tenants: [acme, globex]}
products:
  - id: payments
    match:
      - {gateway: kong, api: payments-svc}
      - {gateway: azure, api: payments-api}
    metrics:
      - {id: calls, aggregation: count, where: {status: {lt: 500}}}
      - {id: egress_gb, aggregation: sum, field: response_bytes, divide_by: 1000000000}
      - {id: active_apps, aggregation: unique_count, field: consumer}
plans:
  - id: growth
    currency: USD
    versions:
      - effective_from: 2026-01-01
        minimum_commitment: "20.00"
        charges:
          - {model: flat, amount: "10.00", name: Platform fee}
          - {product: payments, metric: calls, model: per_unit, unit_price: "CALL_PRICE",
             name: Payment calls}
          - {product: payments, metric: egress_gb, model: per_unit, unit_price: "2.00",
             name: Egress}
          - {product: payments, metric: active_apps, model: volume, name: Active apps,
             tiers: [{up_to: 2, unit_price: "3"}, {unit_price: "2.5"}]}
"""


def rules_catalog(*, azure_alias: bool, call_price: str = "0.50") -> Catalog:
    """The replay test catalog; ``azure_alias`` False = acme's Azure header value is missing
    from its aliases (the broken catalog the period was first billed with)."""
    aliases = "[ACME-LEGACY, acme-azure]" if azure_alias else "[ACME-LEGACY]"
    text = (
        RULES.replace("ACME_ALIASES", aliases)
        .replace("CALL_PRICE", call_price)
        .replace("KONG_SHA", key_sha256("kong-prod"))
        .replace("AZURE_SHA", key_sha256("azure-prod"))
    )
    return catalog_from_yaml(text, "replay-test-rules.yaml")


class Clock:
    """2026-04-02T08:00Z, one second later on every call."""

    def __init__(self, start: datetime = datetime(2026, 4, 2, 8, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        current = self.now
        self.now += timedelta(seconds=1)
        return current


def at(day: int, hour: int = 12, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@dataclass(frozen=True)
class Call:
    """One API call as its gateway's plugin reports it, delivered ``copies`` times."""

    record: bytes
    key: str
    copies: int


def call(key: str, copies: int = 1, **overrides: Any) -> Call:
    event = CanonicalEvent.model_validate(dict(make_event(idempotency_key=key, **overrides)))
    return Call(encode_event(event), key, copies)


def kong(key: str, header: str | None, when: datetime, copies: int = 1, **more: Any) -> Call:
    headers = () if header is None else (header,)
    return call(key, copies, tenant_headers=headers, timestamp=when, **more)


def azure(key: str, header: str, when: datetime, copies: int = 1, **more: Any) -> Call:
    return call(
        key,
        copies,
        tenant_headers=(header,),
        timestamp=when,
        gateway="azure",
        integration_id="azure-prod",
        api="payments-api",
        **more,
    )


def march_calls() -> list[Call]:
    """The March scenario (see tests/replay/test_job.py for the hand-worked amounts)."""
    calls: list[Call] = []
    for n, copies in enumerate([1, 2, 1, 1, 2, 1], start=1):  # acme via kong: resolves
        calls.append(
            kong(
                f"k{n}",
                "acme",
                at(n),
                copies,
                response_bytes=250_000_000,
                consumer=f"app-{1 + n % 2}",
            )
        )
    azure_events = [  # acme via azure under a header value the broken catalog lacks
        ("a1", 3, 200, "app-3"),
        ("a2", 2, 200, "app-1"),
        ("a3", 3, 503, "app-3"),
        ("a4", 1, 201, "app-1"),
    ]
    for n, (key, copies, status, consumer) in enumerate(azure_events, start=1):
        calls.append(
            azure(
                key,
                "acme-azure",
                at(10 + n),
                copies,
                status=status,
                response_bytes=500_000_000,
                consumer=consumer,
            )
        )
    for n, copies in enumerate([1, 1, 2], start=1):  # globex via kong
        calls.append(
            kong(
                f"g{n}",
                "globex",
                at(20 + n),
                copies,
                response_bytes=100_000_000,
                consumer="app-9",
            )
        )
    calls.append(kong("n1", "nobody", at(25), 2))  # unknown whatever the catalog
    calls.append(kong("u1", "acme", at(26), 1, api="legacy-svc"))  # unmapped
    return calls


class LiveStream:
    """Plays the live stream worker against ``database``: partition by key, offsets in
    order, one dedup state for the whole stream, rows written by the real sink."""

    def __init__(self, store: Store, database: str, catalog: Catalog, clock: Clock) -> None:
        self.processor = BatchProcessor(catalog, clock=clock, window_ms=WINDOW_MS)
        self.sink = ClickHouseSink(store, database)
        self.state: dict[bytes, bytes] = {}
        self.next_offset: dict[int, int] = defaultdict(int)

    def deliver(self, calls: Sequence[Call], batch_size: int = 7) -> int:
        """First copies in order, then the retries (copy 2 of each, then copy 3, ...), as
        plugins retry. Returns the number of messages consumed."""
        messages = [self._message(c.key, c.record) for c in calls]
        rounds = max((c.copies for c in calls), default=1)
        for copy in range(2, rounds + 1):
            messages += [self._message(c.key, c.record) for c in calls if c.copies >= copy]
        for start in range(0, len(messages), batch_size):
            self.consume(messages[start : start + batch_size])
        return len(messages)

    def consume(self, batch: Iterable[ConsumedMessage]) -> None:
        result = self.processor.process(list(batch), lambda _i, key: self.state.get(key))
        self.sink.write(result.sink_batch)
        for _index, key, first in result.new_first_copies:
            self.state[key] = first

    def _message(self, key: str, record: bytes) -> ConsumedMessage:
        partition = zlib.crc32(key.encode()) % PARTITIONS
        offset = self.next_offset[partition]
        self.next_offset[partition] += 1
        return ConsumedMessage(TOPIC, partition, offset, record)


def count(store: Store, sql: str) -> int:
    [row] = store.query(sql)
    return int(row["c"])
