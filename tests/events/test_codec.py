from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.events import (
    EVENT_FIELDS,
    GATEWAYS,
    CanonicalEvent,
    MalformedEvent,
    decode_event,
    decode_event_fields,
    encode_event,
)
from pipeline.events.codec import decode_event_record
from pipeline.events.timestamps import format_utc

EVENT = CanonicalEvent(
    idempotency_key="7b3a8f0e-kong",
    tenant_headers=("acme", "ACME-LEGACY"),
    gateway="kong",
    integration_id="kong-prod",
    timestamp=datetime(2026, 1, 15, 10, 0, 0, 123456, tzinfo=UTC),
    api="payments-svc",
    route="/v1/payments",
    method="POST",
    status=201,
    request_bytes=120,
    response_bytes=0,
    latency_ms=35,
    consumer="app-1",
    attributes={"tokens": "1200"},
)


def test_encoding_is_compact_json_with_utc_microsecond_timestamp() -> None:
    data = encode_event(EVENT)
    assert b" " not in data
    obj = orjson.loads(data)
    assert list(obj) == list(EVENT_FIELDS)
    assert obj["timestamp"] == "2026-01-15T10:00:00.123456Z"
    assert obj["tenant_headers"] == ["acme", "ACME-LEGACY"]
    assert obj["response_bytes"] == 0


def test_nulls_are_written_out() -> None:
    bare = EVENT.model_copy(update={"status": None, "consumer": None})
    obj = orjson.loads(encode_event(bare))
    assert obj["status"] is None
    assert obj["consumer"] is None


def test_decode_event_round_trips() -> None:
    assert decode_event(encode_event(EVENT)) == EVENT


def test_decode_event_record_gives_the_timestamp_text_as_sent() -> None:
    fields, stamp = decode_event_record(encode_event(EVENT))
    assert stamp == format_utc(EVENT.timestamp)
    assert fields == dict(EVENT)


def test_decode_event_fields_matches_the_model() -> None:
    fields = decode_event_fields(encode_event(EVENT))
    assert fields == dict(EVENT)
    assert fields["timestamp"].tzinfo is not None
    assert fields["tenant_headers"] == ("acme", "ACME-LEGACY")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (orjson.dumps({**orjson.loads(encode_event(EVENT)), "status": 700}), "status"),
        (orjson.dumps({**orjson.loads(encode_event(EVENT)), "extra": 1}), "extra"),
    ],
)
def test_decode_event_validates(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode_event(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[1,", "invalid JSON"),
        (b"{}", "field 'idempotency_key' is missing"),
        (b"[1]", "not shaped like an encoded event"),
        (
            orjson.dumps({**orjson.loads(encode_event(EVENT)), "timestamp": "yesterday"}),
            "not shaped like an encoded event",
        ),
        (
            orjson.dumps({**orjson.loads(encode_event(EVENT)), "timestamp": "2026-01-15"}),
            "'2026-01-15' has no UTC offset",
        ),
        (
            orjson.dumps({**orjson.loads(encode_event(EVENT)), "tenant_headers": None}),
            "not shaped like an encoded event",
        ),
        (b'"text"', "a JSON str, not an object"),
    ],
)
def test_decode_event_fields_raises_malformed_event_only(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode_event_fields(data)


text = st.text(min_size=1, max_size=40).filter(lambda value: value.strip() != "")
optional_text = st.none() | st.text(max_size=40)
optional_count = st.none() | st.integers(min_value=0, max_value=2**53)

events = st.builds(
    CanonicalEvent,
    idempotency_key=text,
    tenant_headers=st.lists(st.text(max_size=20), max_size=3).map(tuple),
    gateway=st.sampled_from(GATEWAYS),
    integration_id=text,
    timestamp=st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2100, 12, 31, 23, 59, 59, 999999),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    api=optional_text,
    route=optional_text,
    method=st.none() | st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "X-CUSTOM"]),
    status=st.none() | st.integers(min_value=100, max_value=599),
    request_bytes=optional_count,
    response_bytes=optional_count,
    latency_ms=optional_count,
    consumer=optional_text,
    attributes=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4),
)


@given(events)
def test_round_trip_property(event: CanonicalEvent) -> None:
    data = encode_event(event)
    assert decode_event(data) == event
    fields: dict[str, Any] = dict(decode_event_fields(data))
    assert fields == dict(event)
    assert encode_event(decode_event(data)) == data
