"""Reading the raw record of a period in chunks, against the engine."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.rating import Period
from pipeline.replay import RawRecord, ReplayError, raw_records
from pipeline.store import Store

Fresh = tuple[Store, str]
MARCH = Period(2026, 3)


def log_row(partition: int, offset: int, when: datetime, payload: str = "{}") -> dict[str, Any]:
    return {
        "source_topic": "usage.events",
        "source_partition": partition,
        "source_offset": offset,
        "idempotency_key": f"k-{partition}-{offset}",
        "integration_id": "kong-prod",
        "gateway": "kong",
        "tenant_headers": ["acme"],
        "tenant": "acme",
        "event_time": when,
        "disposition": "first_copy",
        "quarantine_reason": "",
        "quarantine_detail": "",
        "product": None,
        "payload": payload,
        "processed_at": when,
    }


@pytest.mark.integration
@pytest.mark.parametrize("chunk_rows", [1, 4, 7, 1000])
def test_chunks_cover_the_period_once_in_consumption_order(
    fresh_database: Fresh, chunk_rows: int
) -> None:
    store, database = fresh_database
    rng = random.Random(chunk_rows)
    march = [
        log_row(p, o, datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 700)))
        for p in range(3)
        for o in range(6)
    ]
    edges = [
        log_row(0, 100, datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC)),  # February
        log_row(1, 100, datetime(2026, 4, 1, tzinfo=UTC)),  # April: the end is exclusive
        log_row(2, 100, datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)),  # March
    ]
    rows = march + edges
    rng.shuffle(rows)
    table = f"{database}.event_log"
    store.insert_rows(table, rows[:10])
    store.insert_rows(table, rows[10:])
    store.insert_rows(table, rows[:5])  # a redelivered batch rewritten: same coordinates

    chunks = list(raw_records(store, database, MARCH, chunk_rows))

    assert all(0 < len(chunk) <= chunk_rows for chunk in chunks)
    seen = [(r.partition, r.offset) for chunk in chunks for r in chunk]
    expected = sorted([(p, o) for p in range(3) for o in range(6)] + [(2, 100)])
    assert seen == expected
    first = chunks[0][0]
    assert first == RawRecord("usage.events", 0, 0, "first_copy", "{}")


@pytest.mark.integration
def test_an_empty_period_has_no_chunks_and_the_size_must_be_positive(
    fresh_database: Fresh,
) -> None:
    store, database = fresh_database
    assert list(raw_records(store, database, MARCH)) == []
    with pytest.raises(ReplayError, match="at least 1 row, got 0"):
        next(raw_records(store, database, MARCH, 0))
