"""The worker's batch step: decisions, rows and records for one batch (pure, no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.events import CanonicalEvent
from pipeline.events.codec import encode_event
from pipeline.events.timestamps import format_utc
from pipeline.metering.dedup import FirstCopy, dedup_key, epoch_ms
from pipeline.worker.batch import (
    BatchProcessor,
    ConsumedMessage,
    _amount_text,
    _ch_time,
    _event_time,
)
from tests.support.builders import example_catalog, make_event

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
WINDOW_MS = 35 * 24 * 3600 * 1000


def record(**overrides: Any) -> bytes:
    fields = dict(make_event(**overrides))
    return encode_event(CanonicalEvent.model_validate(fields))


def msg(offset: int, value: bytes | None, partition: int = 0) -> ConsumedMessage:
    return ConsumedMessage("usage.events", partition, offset, value)


def processor() -> BatchProcessor:
    return BatchProcessor(example_catalog(), clock=lambda: NOW, window_ms=WINDOW_MS)


def no_state(_index: int, _key: bytes) -> bytes | None:
    return None


def test_first_copy_duplicate_alias_quarantine_and_dead_letter_in_one_batch() -> None:
    batch = [
        msg(0, record(idempotency_key="a", tenant_headers=("acme",))),
        msg(1, record(idempotency_key="a", tenant_headers=(" ACME-LEGACY ",))),  # same tenant
        msg(2, record(idempotency_key="a", tenant_headers=("globex",))),  # other tenant: not dup
        msg(3, record(idempotency_key="b", tenant_headers=("nobody",))),
        msg(4, b"{not json"),
        msg(5, record(idempotency_key="c", api="not-a-product")),
    ]
    result = processor().process(batch, no_state)

    log = result.sink_batch.dicts("event_log")
    assert [(r["source_offset"], r["disposition"], r["tenant"]) for r in log] == [
        (0, "first_copy", "acme"),
        (1, "duplicate", "acme"),
        (2, "first_copy", "globex"),
        (3, "quarantined", None),
        (5, "first_copy", "acme"),
    ]
    assert log[3]["quarantine_reason"] == "unknown_tenant"
    assert "nobody" in log[3]["quarantine_detail"]
    usage = result.sink_batch.dicts("usage_events")
    assert [(r["tenant"], r["idempotency_key"], r["fate"]) for r in usage] == [
        ("acme", "a", "billed"),
        ("globex", "a", "billed"),
        ("acme", "c", "unmapped"),
    ]
    # payments has 4 metrics; every one applies to a 200 with a consumer and a latency
    assert {(r["tenant"], r["metric"]) for r in result.sink_batch.dicts("meter_entries")} == {
        (t, m)
        for t in ("acme", "globex")
        for m in ("calls", "egress_gb", "active_apps", "peak_latency")
    }
    assert [q.key for q in result.quarantined] == [b"b"]
    assert dict(result.quarantined[0].headers)["reason"] == b"unknown_tenant"
    assert len(result.dead_letters) == 1
    assert result.dead_letters[0].value == b"{not json"
    assert dict(result.dead_letters[0].headers)["source"] == b"usage.events/0/4"
    # state to store after the write: the two first copies of tenant-scoped keys, with coordinates
    stored = {key: FirstCopy.decode(value) for _i, key, value in result.new_first_copies}
    assert set(stored) == {
        dedup_key(t, k).encode() for t, k in [("acme", "a"), ("globex", "a"), ("acme", "c")]
    }
    assert stored[dedup_key("acme", "a").encode()].offset == 0
    assert result.decisions == {"first_copy": 3, "duplicate": 1, "quarantined": 1, "dead_letter": 1}
    assert result.last_offsets == {0: 5}


def test_a_redelivered_message_is_processed_again_not_counted_as_duplicate() -> None:
    """The state already holds this very message as first copy (crash after state, before
    commit): rows are rewritten, no duplicate (contract §11, OpenMeter #5118)."""
    event_ms = epoch_ms(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))
    state = {dedup_key("acme", "a").encode(): FirstCopy(0, 7, event_ms, epoch_ms(NOW)).encode()}
    result = processor().process([msg(7, record(idempotency_key="a"))], lambda _i, k: state.get(k))
    assert [r["disposition"] for r in result.sink_batch.dicts("event_log")] == ["first_copy"]
    assert len(result.sink_batch.dicts("usage_events")) == 1
    assert result.new_first_copies == []  # nothing new to store


def test_a_later_copy_is_a_duplicate_even_in_a_later_batch() -> None:
    state = {dedup_key("acme", "a").encode(): FirstCopy(0, 7, 0, epoch_ms(NOW)).encode()}
    result = processor().process([msg(9, record(idempotency_key="a"))], lambda _i, k: state.get(k))
    assert [r["disposition"] for r in result.sink_batch.dicts("event_log")] == ["duplicate"]
    assert result.sink_batch.dicts("usage_events") == []
    assert result.sink_batch.dicts("meter_entries") == []


def test_a_first_copy_older_than_the_window_is_ignored_by_the_stream() -> None:
    """Beyond the window the stream treats a copy as new; ClickHouse's key collapses it."""
    seen = epoch_ms(NOW - timedelta(days=36))
    state = {dedup_key("acme", "a").encode(): FirstCopy(0, 7, 0, seen).encode()}
    result = processor().process([msg(9, record(idempotency_key="a"))], lambda _i, k: state.get(k))
    assert [r["disposition"] for r in result.sink_batch.dicts("event_log")] == ["first_copy"]


def test_state_lookups_name_the_partition_whose_state_holds_the_key() -> None:
    """The dedup state is kept per partition (beside its changelog partition)."""
    asked: list[tuple[int, bytes]] = []

    def lookup(partition: int, key: bytes) -> bytes | None:
        asked.append((partition, key))
        return None

    batch = [
        msg(0, record(idempotency_key="x"), partition=1),
        msg(0, record(idempotency_key="y"), partition=2),
    ]
    result = processor().process(batch, lookup)
    assert asked == [(1, dedup_key("acme", "x").encode()), (2, dedup_key("acme", "y").encode())]
    assert sorted(i for i, _k, _v in result.new_first_copies) == [0, 1]


def test_rows_carry_exact_decimals_and_the_raw_payload() -> None:
    raw = record(idempotency_key="d", response_bytes=1_000_000_001)
    result = processor().process([msg(0, raw)], no_state)
    [log] = result.sink_batch.dicts("event_log")
    assert orjson.loads(log["payload"]) == orjson.loads(raw)
    egress = next(r for r in result.sink_batch.dicts("meter_entries") if r["metric"] == "egress_gb")
    assert str(egress["value"]) == "1000000001"
    assert str(egress["divide_by"]) == "1000000000"


def test_first_copies_of_a_batch_still_being_written_count_for_the_next_batch() -> None:
    p = processor()
    first = p.process([msg(0, record(idempotency_key="k"))], no_state)
    assert dedup_key("acme", "k") in p.in_flight
    second = p.process([msg(1, record(idempotency_key="k"))], no_state)
    assert [r["disposition"] for r in second.sink_batch.dicts("event_log")] == ["duplicate"]
    p.settled(first)
    assert p.in_flight == {}
    # once settled, the durable state answers (here: it says this very message was first)
    state = {dedup_key("acme", "k").encode(): first.new_first_copies[0][2]}
    third = p.process([msg(0, record(idempotency_key="k"))], lambda _i, k: state.get(k))
    assert [r["disposition"] for r in third.sink_batch.dicts("event_log")] == ["first_copy"]


def test_a_skipped_offset_stops_the_batch_before_anything_is_written() -> None:
    """Faust skipped offset 520 during a rebalance (seen on Apache Kafka 4.1): never decide,
    write or acknowledge past such a hole."""
    import pytest

    from pipeline.worker.batch import OffsetGap

    p = processor()
    p.process(
        [msg(518, record(idempotency_key="a")), msg(519, record(idempotency_key="b"))], no_state
    )
    with pytest.raises(OffsetGap, match=r"offsets 520\.\.520 were never delivered") as gap:
        p.process([msg(521, record(idempotency_key="c"))], no_state)
    assert gap.value.fields["first_missing"] == 520
    with pytest.raises(OffsetGap):
        processor().process([msg(0, record()), msg(2, record(idempotency_key="z"))], no_state)
    # going back (a redelivery after a restart or seek) is fine, and so is a partition that a
    # rebalance handed over
    p.process([msg(519, record(idempotency_key="b"))], no_state)
    p.forget_partitions([0])
    p.process([msg(900, record(idempotency_key="d"))], no_state)


@given(st.datetimes(timezones=st.just(UTC)))
def test_event_time_cut_from_the_record_text_equals_formatting_the_datetime(
    moment: datetime,
) -> None:
    stamp = format_utc(moment)
    assert _event_time(stamp, moment) == _ch_time(moment)


def test_event_times_in_another_form_are_formatted_from_the_datetime() -> None:
    moment = datetime(2026, 1, 15, 10, 0, 0, 120000, tzinfo=timezone(timedelta(hours=2)))
    assert _event_time("2026-01-15T10:00:00.12+02:00", moment) == "2026-01-15 08:00:00.120000"


def test_count_amounts_and_divisors_are_plain_decimal_text() -> None:
    raw = record(idempotency_key="c", status=200)
    result = processor().process([msg(0, raw)], no_state)
    calls = next(r for r in result.sink_batch.dicts("meter_entries") if r["metric"] == "calls")
    assert (calls["value"], calls["divide_by"]) == ("1", "1")
    assert _amount_text(Decimal("1E+3")) == "1000"
