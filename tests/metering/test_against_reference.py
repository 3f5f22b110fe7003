"""The production chain (assess + batch dedup + aggregate) against the naive reference."""

from __future__ import annotations

import random
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.events import EventFields
from pipeline.metering import (
    BatchDedup,
    Decision,
    FirstCopy,
    MeterEntry,
    Metering,
    MeterProblem,
    aggregate_quantity,
    dedup_key,
    epoch_ms,
    split_dedup_key,
)
from tests.support.builders import example_catalog, make_event
from tests.support.reference import QuantityKey, expected_usage

CATALOG = example_catalog()
INTEGRATIONS = [(i.id, i.gateway) for i in CATALOG.integrations] + [("ghost", "kong")]
APIS = sorted({rule.api for p in CATALOG.products for rule in p.match} | {"unknown-api"})
MONTH_EDGE = datetime(2026, 2, 1, tzinfo=UTC)
NOW = 1_780_000_000_000


@st.composite
def events(draw: st.DrawFn, index: int) -> EventFields:
    integration_id, gateway = draw(st.sampled_from(INTEGRATIONS))
    headers = draw(
        st.lists(
            st.sampled_from(
                [
                    "acme",
                    "ACME-LEGACY",
                    " acme_eu",
                    "globex",
                    "GLOBEX_US",
                    "initech",
                    "umbrella",
                    "hooli",
                    "",
                ]
            ),
            max_size=2,
        )
    )
    key = draw(st.sampled_from([f"req-{index}", f"req-{index}", "shared-1", "shared-2"]))
    attributes = draw(
        st.sampled_from(
            [
                {},
                {"tokens": "12"},
                {"tokens": "0.5"},
                {"tokens": " 7 "},
                {"tokens": "abc"},
                {"tokens": "-3"},
                {"tokens": "1e3"},
            ]
        )
    )
    return make_event(
        idempotency_key=key,
        tenant_headers=tuple(headers),
        gateway=gateway,
        integration_id=integration_id,
        timestamp=MONTH_EDGE + timedelta(microseconds=draw(st.integers(-3, 3))),
        api=draw(st.sampled_from(APIS)),
        route=draw(st.sampled_from([None, "/v1/payments/1", "/v1/completions", "/v1/search"])),
        method=draw(st.sampled_from([None, "GET", "POST", "DELETE"])),
        status=draw(st.sampled_from([None, 200, 399, 400, 499, 500])),
        response_bytes=draw(st.one_of(st.none(), st.integers(0, 10**12))),
        latency_ms=draw(st.one_of(st.none(), st.integers(0, 5000))),
        consumer=draw(st.sampled_from([None, "app-1", "app-2", "app-3"])),
        attributes=attributes,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[EventFields], list[int]]:
    count = draw(st.integers(1, 25))
    unique = [draw(events(i)) for i in range(count)]
    copies = [draw(st.integers(1, 4)) for _ in unique]
    return unique, copies


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False), st.integers(1, 7), st.integers(1, 3))
def test_production_chain_matches_reference(
    scenario: tuple[list[EventFields], list[int]],
    rng: random.Random,
    batch_size: int,
    partitions: int,
) -> None:
    unique, copies = scenario
    # every copy on the partition of its idempotency key, any order within a partition
    queues: dict[int, list[int]] = {p: [] for p in range(partitions)}
    for index, event in enumerate(unique):
        # crc32, not hash(): str hashes change with PYTHONHASHSEED, and a failure must replay
        queues[zlib.crc32(event["idempotency_key"].encode()) % partitions] += [index] * copies[
            index
        ]
    for queue in queues.values():
        rng.shuffle(queue)
    stream: list[tuple[int, int, int]] = []  # (event index, partition, offset)
    offsets = dict.fromkeys(queues, 0)
    while any(queues.values()):
        partition = rng.choice([p for p, q in queues.items() if q])
        stream.append((queues[partition].pop(0), partition, offsets[partition]))
        offsets[partition] += 1

    metering = Metering(CATALOG)
    state: dict[str, FirstCopy] = {}
    quarantined: Counter[str] = Counter()
    duplicates = 0
    winners: dict[str, tuple[str, str | None, list[MeterEntry | MeterProblem]]] = {}
    for start in range(0, len(stream), batch_size):
        dedup = BatchDedup(state.get, NOW)
        for index, partition, offset in stream[start : start + batch_size]:
            event = unique[index]
            assessment = metering.assess(event)
            tenant = assessment.tenant.tenant_id
            if tenant is None:
                assert assessment.tenant.reason is not None
                quarantined[assessment.tenant.reason.value] += 1
                continue
            key = dedup_key(tenant, event["idempotency_key"])
            decision = dedup.decide(key, partition, offset, epoch_ms(event["timestamp"]))
            if decision is Decision.DUPLICATE:
                duplicates += 1
                continue
            month = event["timestamp"].strftime("%Y-%m")
            winners[key] = (month, assessment.product_id, list(assessment.entries))
        state.update(dedup.updates)

    # the reference sees events in the order their first copies were processed
    first_seen: dict[int, int] = {}
    for position, (index, _, _) in enumerate(stream):
        first_seen.setdefault(index, position)
    order = sorted(first_seen, key=first_seen.__getitem__)
    expected = expected_usage(CATALOG, [(unique[i], copies[i]) for i in order])

    assert quarantined == expected.quarantined_copies
    assert duplicates == expected.duplicates
    assert len(winners) == expected.unique
    assert sum(1 for _, product, _ in winners.values() if product is None) == expected.unmapped

    entries: dict[QuantityKey, list[MeterEntry]] = {}
    problems: Counter[tuple[str, str]] = Counter()
    for key, (month, product_id, product_entries) in winners.items():
        if product_id is None:
            continue
        tenant, _ = split_dedup_key(key)
        product = CATALOG.product(product_id)
        assert product is not None
        for metric in product.metrics:
            entries.setdefault((tenant, product_id, metric.id, month), [])
        for entry in product_entries:
            if isinstance(entry, MeterProblem):
                problems[(product_id, entry.metric_id)] += 1
            else:
                entries[(tenant, product_id, entry.metric_id, month)].append(entry)
    actual: dict[QuantityKey, Decimal] = {}
    for quantity_key, metric_entries in entries.items():
        metric = CATALOG.metric(quantity_key[1], quantity_key[2])
        assert metric is not None
        actual[quantity_key] = aggregate_quantity(metric.aggregation, metric_entries)
    assert actual == expected.quantities
    assert problems == expected.problems
