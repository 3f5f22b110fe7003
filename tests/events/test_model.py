from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.events import GATEWAYS, MAX_EVENT_INTEGER, CanonicalEvent, encode_event

BASE: dict[str, Any] = {
    "idempotency_key": "req-1",
    "gateway": "kong",
    "integration_id": "kong-prod",
    "timestamp": datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
}


def make(**changes: Any) -> CanonicalEvent:
    return CanonicalEvent(**{**BASE, **changes})


def test_minimal_event_has_nulls_not_zeros() -> None:
    event = make()
    assert event.status is None
    assert event.request_bytes is None
    assert event.response_bytes is None
    assert event.latency_ms is None
    assert event.tenant_headers == ()
    assert event.tenant_header is None
    assert event.attributes == {}


def test_gateways_are_the_five_of_the_spec() -> None:
    assert set(GATEWAYS) == {"kong", "apigee", "aws", "azure", "mulesoft"}
    with pytest.raises(ValidationError, match="gateway"):
        make(gateway="canonical")


def test_event_is_frozen() -> None:
    event = make()
    with pytest.raises(ValidationError):
        event.status = 200  # type: ignore[misc]


def test_tenant_headers_keep_every_value_and_tenant_header_is_the_first() -> None:
    event = make(tenant_headers=["acme", "ACME-LEGACY"])
    assert event.tenant_headers == ("acme", "ACME-LEGACY")
    assert event.tenant_header == "acme"


def test_timestamp_is_converted_to_utc() -> None:
    event = make(timestamp=datetime(2026, 1, 15, 12, 0, tzinfo=timezone(timedelta(hours=2))))
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC
    assert make(timestamp="2026-01-15T10:00:00.5Z").timestamp.microsecond == 500000


def test_method_is_upper_cased() -> None:
    assert make(method="post").method == "POST"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"idempotency_key": ""}, "idempotency_key", "at least 1"),
        ({"idempotency_key": "   "}, "idempotency_key", "blank"),
        ({"idempotency_key": "k" * 513}, "idempotency_key", "at most 512"),
        ({"integration_id": ""}, "integration_id", "at least 1"),
        ({"timestamp": datetime(2026, 1, 15)}, "timestamp", "naive"),  # noqa: DTZ001
        ({"timestamp": datetime(1999, 12, 31, tzinfo=UTC)}, "timestamp", "outside 2000..2100"),
        ({"timestamp": datetime(2101, 1, 1, tzinfo=UTC)}, "timestamp", "outside 2000..2100"),
        ({"timestamp": "2026-01-15T10:00:00"}, "timestamp", "UTC offset"),
        ({"status": 99}, "status", "greater than or equal to 100"),
        ({"status": 600}, "status", "less than or equal to 599"),
        ({"status": True}, "status", "valid integer"),
        ({"status": "200"}, "status", "valid integer"),
        ({"request_bytes": -1}, "request_bytes", "greater than or equal to 0"),
        ({"response_bytes": 1.5}, "response_bytes", "valid integer"),
        ({"latency_ms": -3}, "latency_ms", "greater than or equal to 0"),
        ({"method": "GET /x"}, "method", "HTTP method"),
        ({"attributes": {"tokens": 12}}, "attributes.tokens", "valid string"),
        ({"tenant": "acme"}, "tenant", "Extra inputs"),
    ],
)
def test_invalid_values_are_refused_by_field(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make(**changes)
    errors = caught.value.errors()
    assert ".".join(str(part) for part in errors[0]["loc"]) == field
    assert message in errors[0]["msg"]


@pytest.mark.parametrize("field", ["request_bytes", "response_bytes", "latency_ms"])
def test_sizes_and_latency_stop_at_the_largest_integer_a_record_holds(field: str) -> None:
    largest = make(**{field: MAX_EVENT_INTEGER})
    assert str(MAX_EVENT_INTEGER).encode() in encode_event(largest)  # encodable, unlike 2**64
    with pytest.raises(ValidationError) as caught:
        make(**{field: MAX_EVENT_INTEGER + 1})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert "less than or equal to 18446744073709551615" in error["msg"]
