"""encode_record (the edge's fast path) against the reference: the model, then encode_event."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.events import (
    EVENT_FIELDS,
    GATEWAYS,
    MAX_EVENT_INTEGER,
    CanonicalEvent,
    EventRecord,
    decode_event,
    encode_event,
    encode_record,
)
from pipeline.events.record import NO_ATTRIBUTES, final_form_record

BASE: dict[str, Any] = {
    "idempotency_key": "req-1",
    "gateway": "kong",
    "integration_id": "kong-prod",
    "timestamp": datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC),
}


def reference(fields: dict[str, Any]) -> tuple[bytes, EventRecord] | str:
    """What the model path gives: (record value, record) or the validation errors."""
    try:
        event = CanonicalEvent(**fields)
    except ValidationError as exc:
        return str(exc.errors(include_url=False))
    return encode_event(event), EventRecord.of(event)


def fast(fields: dict[str, Any]) -> tuple[bytes, EventRecord] | str:
    try:
        record = encode_record(fields)
    except ValidationError as exc:
        return str(exc.errors(include_url=False))
    return record.value, record


def test_a_record_reads_like_its_event_and_round_trips() -> None:
    record = encode_record({**BASE, "tenant_headers": ("acme",), "method": "POST", "status": 201})
    event = record.to_event()
    assert record.value == encode_event(event)
    assert record.key == b"req-1"
    assert decode_event(record.value) == event
    assert (record.gateway, record.method, record.status) == ("kong", "POST", 201)
    assert list(orjson.loads(record.value)) == list(EVENT_FIELDS)
    assert EventRecord.of(event) == record


def test_a_zero_fraction_is_still_printed_with_six_digits() -> None:
    record = encode_record({**BASE, "timestamp": datetime(2026, 1, 15, 10, 0, tzinfo=UTC)})
    assert orjson.loads(record.value)["timestamp"] == "2026-01-15T10:00:00.000000Z"


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "post"},  # the model upper-cases it
        {"tenant_headers": ["acme", "ACME"]},  # a list becomes a tuple
        {"timestamp": datetime(2026, 1, 15, 12, 0, tzinfo=timezone(timedelta(hours=2)))},
        {"timestamp": "2026-01-15T10:00:00.5Z"},
        {"attributes": {"tokens": 12}},  # refused by the model
        {"status": True},
        {"request_bytes": MAX_EVENT_INTEGER + 1},
        {"extra": 1},
        {"attributes": None},
        {"idempotency_key": "  "},
    ],
)
def test_values_not_in_final_form_go_through_the_model(changes: dict[str, Any]) -> None:
    fields = {**BASE, **changes}
    assert final_form_record(*_positional(fields)) is None or "extra" in changes
    assert fast(fields) == reference(fields)


def test_the_largest_encodable_integer_is_accepted() -> None:
    fields = {**BASE, "response_bytes": MAX_EVENT_INTEGER, "latency_ms": MAX_EVENT_INTEGER}
    result = fast(fields)
    assert not isinstance(result, str)
    assert orjson.loads(result[0])["response_bytes"] == MAX_EVENT_INTEGER
    assert result == reference(fields)


def _positional(fields: dict[str, Any]) -> list[Any]:
    defaults: dict[str, Any] = {"tenant_headers": (), "attributes": NO_ATTRIBUTES}
    return [fields.get(name, defaults.get(name)) for name in EVENT_FIELDS]


# --- the property: same bytes, same errors --------------------------------------------------

texts = st.text(max_size=12) | st.sampled_from(["", " ", "x", " padded ", "\u00e9t\u00e9", "\t"])
methods = st.sampled_from(["GET", "POST", "M-SEARCH", "get", " GET", "G ET", "-", "ÄB", ""])
counts = st.none() | st.integers(min_value=-3, max_value=2**64 + 3) | st.booleans()
instants = st.datetimes(
    min_value=datetime(1999, 12, 31),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2101, 1, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(0))])
    | st.none(),
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "idempotency_key": texts | st.text(min_size=510, max_size=514) | st.integers(),
    "tenant_headers": st.lists(texts, max_size=3).map(tuple) | st.lists(texts, max_size=2),
    "gateway": st.sampled_from([*GATEWAYS, "canonical", "KONG"]) | st.just({"kong": 1}),
    "integration_id": texts | st.lists(texts, max_size=1),
    "timestamp": instants | st.sampled_from(["2026-01-15T10:00:00Z", "yesterday", 1]),
    "api": st.none() | texts | st.integers(),
    "route": st.none() | texts,
    "method": st.none() | methods | st.lists(methods, max_size=1),
    "status": st.none() | st.integers(min_value=90, max_value=610) | st.just("200"),
    "request_bytes": counts,
    "response_bytes": counts | st.just(1.5),
    "latency_ms": counts,
    "consumer": st.none() | texts,
    "attributes": st.dictionaries(texts, texts | st.integers(), max_size=3) | st.none(),
}


@st.composite
def field_sets(draw: st.DrawFn) -> dict[str, Any]:
    fields = dict(BASE)
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=6)):
        fields[name] = draw(FIELD_VALUES[name])
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=2)):
        fields.pop(name, None)  # missing fields take the model's defaults (or are refused)
    return fields


@settings(max_examples=400, deadline=None)
@given(field_sets())
def test_fast_path_equals_model_then_encode_event(fields: dict[str, Any]) -> None:
    assert fast(fields) == reference(fields)


@settings(max_examples=200, deadline=None)
@given(field_sets())
def test_whatever_the_fast_path_accepts_the_model_accepts_unchanged(fields: dict[str, Any]) -> None:
    if not set(fields) <= set(EVENT_FIELDS):
        return
    record = final_form_record(*_positional(fields))
    if record is not None:
        event = CanonicalEvent(**fields)
        assert record.value == encode_event(event)
        assert record.to_event() == event
