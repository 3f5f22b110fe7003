from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.events import GATEWAYS

from .support import decode_one, error_of, event_of

CANONICAL: dict[str, Any] = {
    "idempotency_key": "req-42",
    "tenant_header": "acme",
    "timestamp": "2026-01-15T10:00:00.123456Z",
    "api": "payments-svc",
    "route": "/v1/payments",
    "method": "post",
    "status": 201,
    "request_bytes": 512,
    "response_bytes": "2048",
    "latency_ms": 35,
    "consumer": "mobile-app",
    "attributes": {"tokens": 1200, "model": "large", "cached": False, "note": None},
}


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_canonical_events_are_accepted_for_every_gateway_with_forced_identity(gateway: Any) -> None:
    item = {**CANONICAL, "gateway": "kong", "integration_id": "someone-else"}
    if gateway == "aws":  # an aws integration names no tenant in the event (below)
        item.pop("tenant_header", None)
        item.pop("tenant_headers", None)
    event = event_of(gateway, item)
    assert event.gateway == gateway
    assert event.integration_id == f"{gateway}-prod"
    assert event.idempotency_key == "req-42"
    assert event.tenant_headers == (() if gateway == "aws" else ("acme",))
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)
    assert (event.api, event.route, event.method, event.status) == (
        "payments-svc",
        "/v1/payments",
        "POST",
        201,
    )
    assert (event.request_bytes, event.response_bytes, event.latency_ms) == (512, 2048, 35)
    assert event.consumer == "mobile-app"
    assert event.attributes == {"tokens": "1200", "model": "large", "cached": "false"}


@pytest.mark.parametrize("field", ["tenant_header", "tenant_headers"])
def test_an_aws_key_cannot_name_the_tenant_in_a_canonical_event(field: str) -> None:
    """contract §12: AWS events take their tenant only from the authorizer context or the key
    map. An AWS key posting a canonical event with a tenant of its choosing is refused."""
    value: Any = ["acme"] if field == "tenant_headers" else "acme"
    item = {k: v for k, v in CANONICAL.items() if k not in ("tenant_header", "tenant_headers")}
    error = error_of("aws", {**item, field: value})
    assert error.startswith("canonical: tenant_header is not taken from events of an aws")
    assert event_of("kong", {**item, field: value}).tenant_headers == ("acme",)


def test_minimal_canonical_event() -> None:
    event = event_of("kong", {"idempotency_key": "k", "timestamp": 1768471200000})
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    assert event.tenant_headers == ()
    assert event.status is None
    assert event.attributes == {}


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        ({"tenant_header": ["acme", " globex "]}, ("acme", "globex")),
        ({"tenant_headers": ["acme"]}, ("acme",)),
        ({"tenant_header": None}, ()),
        ({"tenant_header": "  "}, ()),
    ],
)
def test_tenant_header_forms(tenant: dict[str, Any], expected: tuple[str, ...]) -> None:
    item = {key: value for key, value in CANONICAL.items() if key != "tenant_header"}
    assert event_of("azure", {**item, **tenant}).tenant_headers == expected


def test_timestamp_as_epoch_millis_string() -> None:
    event = event_of("kong", {**CANONICAL, "timestamp": "1768471200123"})
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"idempotency_key": ""}, "canonical: idempotency_key is missing"),
        (
            {"idempotency_key": "k" * 513},
            "canonical: idempotency_key is longer than 512 characters",
        ),
        (
            {"timestamp": "2026-01-15T10:00:00"},
            "canonical: timestamp must include a UTC offset ('Z' or +hh:mm); naive times are "
            "ambiguous, got '2026-01-15T10:00:00'",
        ),
        (
            {"timestamp": "1999-12-31T00:00:00Z"},
            "canonical: timestamp year 1999 is outside 2000..2100; check the unit and clock",
        ),
        (
            {"timestamp": "2026-01-15"},
            "canonical: timestamp must be ISO-8601 like 2026-01-15T10:00:00.123Z",
        ),
        ({"status": 700}, "canonical: status must be an HTTP status code (100..599), got 700"),
        (
            {"latency_ms": -1},
            "canonical: latency_ms must be a number of milliseconds (>= 0), got -1",
        ),
        (
            {"request_bytes": True},
            "canonical: request_bytes must be a whole number of bytes, got True",
        ),
        (
            {"attributes": {"nested": {"a": 1}}},
            "canonical: attributes.nested must be a string, number or boolean, got {'a': 1}",
        ),
        (
            {"attributes": ["a"]},
            "canonical: attributes must be a JSON object of names to scalar values",
        ),
        (
            {"tenant_headers": ["x"]},
            "canonical: tenant_header and tenant_headers must not both be set",
        ),
        ({"tenant_header": 42}, "canonical: tenant_header must be a string, got 42"),
        (
            {"tenant": "acme"},
            "canonical: tenant is not a canonical event field (put extra values under",
        ),
    ],
)
def test_bad_canonical_fields(changes: dict[str, Any], reason: str) -> None:
    error = error_of("mulesoft", {**CANONICAL, **changes})
    assert error.startswith(reason), error


def test_only_items_with_key_and_timestamp_are_canonical() -> None:
    # without a timestamp, a kong integration decodes the item as a Kong event
    result = decode_one("kong", {"idempotency_key": "k"})
    assert result.error is not None
    assert result.error.startswith("kong: ")
