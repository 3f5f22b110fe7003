"""Poison isolation against the real ClickHouse server: the engine's own refusals (a CHECK
constraint, a Decimal that does not fit), its error codes, and the event log afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.events import CanonicalEvent
from pipeline.events.codec import encode_event
from pipeline.store import Store
from pipeline.worker.batch import BatchProcessor, BatchResult, ConsumedMessage
from pipeline.worker.sink import COLUMNS, ClickHouseSink
from tests.support.builders import example_catalog, make_event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def decided(count: int, poison: int | None = None, **poison_fields: Any) -> BatchResult:
    """``count`` billed kong events (partition 0, offsets 0..), one with ``poison_fields``."""
    start = datetime(2026, 1, 15, tzinfo=UTC)
    messages = []
    for n in range(count):
        fields: dict[str, Any] = {"idempotency_key": f"k{n}", "consumer": f"app-{n % 3}"}
        fields["timestamp"] = start + timedelta(minutes=n)
        if n == poison:
            fields.update(poison_fields)
        event = CanonicalEvent.model_validate(make_event(**fields))
        messages.append(ConsumedMessage("usage.events", 0, n, encode_event(event)))
    processor = BatchProcessor(example_catalog(), clock=lambda: NOW, window_ms=10**12)
    return processor.process(messages, lambda _p, _k: None)


def fates(store: Store, db: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in store.query(
        f"SELECT fate, idempotency_key FROM {db}.event_fates ORDER BY source_offset"
    ):
        out.setdefault(row["fate"], []).append(row["idempotency_key"])
    return out


def test_a_row_the_engine_refuses_is_isolated_and_the_rest_written(
    fresh_database: tuple[Store, str],
) -> None:
    store, db = fresh_database
    store.command(
        f"ALTER TABLE {db}.usage_events ADD CONSTRAINT no_poison CHECK consumer != 'poison-app'"
    )
    result = decided(200, poison=123, consumer="poison-app")
    written = ClickHouseSink(store, db).write(result.sink_batch)
    [refusal] = written.refused
    assert (refusal.offset, refusal.table, refusal.code) == (123, "usage_events", 469)
    assert "Constraint `no_poison`" in refusal.message and "VIOLATED_CONSTRAINT" in refusal.message
    assert "version" not in refusal.message and "http" not in refusal.message

    by_fate = fates(store, db)
    assert by_fate["dead_letter"] == ["k123"]
    assert len(by_fate["billed"]) == 199  # accepted = billed + dead_letter
    [detail] = store.query(
        f"SELECT quarantine_reason AS r, quarantine_detail AS d FROM {db}.event_fates "
        "WHERE fate = 'dead_letter'"
    )
    assert detail["r"] == "clickhouse_refused"
    assert detail["d"].startswith("usage_events refused it (code 469 VIOLATED_CONSTRAINT)")
    # never billed: no usage row, no meter entry; everything else is
    [usage] = store.query(
        f"SELECT count() AS n FROM {db}.usage_events FINAL WHERE idempotency_key = 'k123'"
    )
    assert usage["n"] == 0
    [calls] = store.query(
        f"SELECT sum(quantity) AS q FROM {db}.meters_monthly WHERE metric = 'calls'"
    )
    assert calls["q"] == 199


def test_a_meter_value_the_engine_refuses_unbills_the_event(
    fresh_database: tuple[Store, str],
) -> None:
    """The batch step refuses such values itself; were one to reach the engine anyway, its
    event is isolated in meter_entries, after its usage_events row was written."""
    store, db = fresh_database
    result = decided(40)
    value = COLUMNS["meter_entries"].index("value")
    key = COLUMNS["meter_entries"].index("idempotency_key")
    entries = result.sink_batch.meter_entries
    at = next(n for n, row in enumerate(entries) if row[key] == "k7" and row[value] != "1")
    entries[at] = (*entries[at][:value], "1" * 33, *entries[at][value + 1 :])
    [refusal] = ClickHouseSink(store, db).write(result.sink_batch).refused
    assert (refusal.offset, refusal.table, refusal.code) == (7, "meter_entries", 69)
    assert "Decimal value is too big" in refusal.message
    assert fates(store, db)["dead_letter"] == ["k7"]
    [usage] = store.query(
        f"SELECT fate, product FROM {db}.usage_events FINAL WHERE idempotency_key = 'k7'"
    )
    assert usage == {"fate": "dead_letter", "product": None}
    [left] = store.query(
        f"SELECT count() AS n FROM {db}.meter_entries FINAL WHERE idempotency_key = 'k7'"
    )
    assert left["n"] == 0  # none of its metrics, not only the refused one


def test_an_event_log_row_the_engine_refuses_is_recorded_by_its_coordinates(
    fresh_database: tuple[Store, str],
) -> None:
    store, db = fresh_database
    store.command(
        f"ALTER TABLE {db}.event_log ADD CONSTRAINT no_evil CHECK idempotency_key != 'k3'"
    )
    [refusal] = ClickHouseSink(store, db).write(decided(6).sink_batch).refused
    assert (refusal.offset, refusal.table) == (3, "event_log")
    [row] = store.query(
        f"SELECT source_offset, fate, idempotency_key, quarantine_detail FROM {db}.event_fates "
        "WHERE fate = 'dead_letter'"
    )
    assert (row["source_offset"], row["idempotency_key"]) == (3, "")
    assert "Constraint `no_evil`" in row["quarantine_detail"]
    assert len(fates(store, db)["billed"]) == 5
