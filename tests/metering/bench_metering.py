"""Throughput of the worker's pure core: assess + dedup per event, on the example catalog.

Run: ``python -m tests.metering.bench_metering`` (not a test: timings vary by machine).
Events are EventFields dicts as decode_event_fields returns them; JSON decoding is not timed.
"""

from __future__ import annotations

import gc
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.events import EventFields
from pipeline.metering import BatchDedup, FirstCopy, Metering, dedup_key, epoch_ms
from tests.support.builders import example_catalog

EVENTS = 200_000
BATCH = 500
NOW_MS = 1_780_000_000_000
# (gateway, integration, api, route, tenant headers): metered, default-tenant, quarantined, unmapped
TRAFFIC = [
    ("kong", "kong-prod", "payments-svc", "/v1/payments/{id}", ("acme",)),
    ("kong", "kong-prod", "search-svc", "/v1/search", ("ACME-LEGACY",)),
    ("apigee", "apigee-prod", "llm-v1", "/v1/chat", ()),
    ("aws", "aws-prod", "h7k2p9q4xa", "/v1/completions", ("initech",)),
    ("aws", "aws-prod", "h7k2p9q4xa", "/v1/payments/9", ("globex",)),
    ("azure", "azure-prod", "payments-api", "/pay", ("umbrella",)),
    ("mulesoft", "mulesoft-prod", "16183421", "/p", ()),
    ("kong", "kong-prod", "unknown", "/x", ("acme",)),
    ("kong", "kong-prod", "payments-svc", "/v1/payments/{id}", ("hooli",)),
]


def sample_events(count: int, seed: int = 1) -> list[EventFields]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[Any] = []
    for i in range(count):
        gateway, integration, api, route, headers = rng.choice(TRAFFIC)
        events.append(
            {
                "idempotency_key": f"req-{rng.randrange(count)}",  # ~37% duplicates
                "tenant_headers": headers,
                "gateway": gateway,
                "integration_id": integration,
                "timestamp": start + timedelta(milliseconds=7 * i),
                "api": api,
                "route": route,
                "method": rng.choice(["GET", "POST"]),
                "status": rng.choice([200, 201, 404, 500]),
                "request_bytes": rng.randrange(10_000),
                "response_bytes": rng.randrange(10**6),
                "latency_ms": rng.randrange(900),
                "consumer": f"app-{rng.randrange(50)}",
                "attributes": {"tokens": str(rng.randrange(4000))},
            }
        )
    return events


def run(metering: Metering, events: list[EventFields], state: dict[str, FirstCopy]) -> None:
    """What the worker does per message, minus I/O: assess, then dedup in batches."""
    assess = metering.assess
    batch = BatchDedup(state.get, NOW_MS)
    for offset, fields in enumerate(events):
        tenant = assess(fields).tenant.tenant_id
        if tenant is not None:
            key = dedup_key(tenant, fields["idempotency_key"])
            batch.decide(key, 0, offset, epoch_ms(fields["timestamp"]))
        if offset % BATCH == BATCH - 1:
            state.update(batch.updates)
            batch = BatchDedup(state.get, NOW_MS)
    state.update(batch.updates)


def main() -> None:
    metering = Metering(example_catalog())
    events = sample_events(EVENTS)
    gc.freeze()  # the event list is setup, not work
    rates = []
    for _ in range(5):
        state: dict[str, FirstCopy] = {}
        started = time.perf_counter()
        run(metering, events, state)
        rates.append(EVENTS / (time.perf_counter() - started))
    rates.sort()
    print(f"assess + dedup: median {rates[2]:,.0f} events/s, best {rates[-1]:,.0f} events/s")


if __name__ == "__main__":
    main()
