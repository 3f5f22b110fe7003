from datetime import UTC, datetime
from typing import Any

import pytest

from .support import error_of, event_of

# An Anypoint analytics event (field names with spaces) plus the request headers.
MULESOFT_EVENT: dict[str, Any] = {
    "API ID": "211799904",
    "API Name": "payments-api",
    "API Version ID": "16810512",
    "API Version Name": "v1",
    "Application": "4a1c2b3d4e5f60718293a4b5c6d7e8f9",
    "Application Name": "mobile-app",
    "Browser": "Unknown",
    "Client IP": "203.0.113.10",
    "City": "Dublin",
    "Message ID": "e2029ea0-a873-11eb-875c-064449f4dd2c",
    "Request Outcome": "PROCESSED",
    "Request Size": 512,
    "Resource Path": "/v1/payments/ch_123?expand=all",
    "Response Size": 2048,
    "Response Time": 58,
    "Status Code": 201,
    "Timestamp": "2026-01-15T10:00:00.123Z",
    "Verb": "POST",
    "Violated Policy Name": None,
    "headers": {"host": "payments.cloudhub.io", "X-Tenant-Id": "acme"},
}


def test_full_mulesoft_event() -> None:
    event = event_of("mulesoft", MULESOFT_EVENT)
    assert event.idempotency_key == "e2029ea0-a873-11eb-875c-064449f4dd2c"
    assert event.gateway == "mulesoft"
    assert event.integration_id == "mulesoft-prod"
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)
    assert event.tenant_headers == ("acme",)
    assert event.api == "211799904"
    assert event.route == "/v1/payments/ch_123"
    assert event.method == "POST"
    assert event.status == 201
    assert event.request_bytes == 512
    assert event.response_bytes == 2048
    assert event.latency_ms == 58
    assert event.consumer == "4a1c2b3d4e5f60718293a4b5c6d7e8f9"
    assert event.attributes == {
        "API Version ID": "16810512",
        "API Name": "payments-api",
        "API Version Name": "v1",
        "Application Name": "mobile-app",
        "Request Outcome": "PROCESSED",
    }


def test_minus_one_sizes_are_unknown_and_numbers_may_be_strings() -> None:
    event = event_of(
        "mulesoft",
        {
            **MULESOFT_EVENT,
            "Request Size": -1,
            "Response Size": "-1",
            "Response Time": "-1",
            "API ID": 211799904,
            "Status Code": "200",
        },
    )
    assert (event.request_bytes, event.response_bytes, event.latency_ms) == (None, None, None)
    assert event.api == "211799904"
    assert event.status == 200


def test_blank_application_and_missing_headers() -> None:
    item = {**MULESOFT_EVENT, "Application": "", "headers": None}
    event = event_of("mulesoft", item)
    assert event.consumer is None
    assert event.tenant_headers == ()


def test_repeated_tenant_header() -> None:
    item = {**MULESOFT_EVENT, "headers": {"x-tenant-id": ["acme", "globex"]}}
    assert event_of("mulesoft", item).tenant_headers == ("acme", "globex")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"Message ID": None}, "mulesoft: Message ID is missing"),
        ({"Timestamp": "2026-01-15 10:00"}, "mulesoft: Timestamp must include a UTC offset"),
        ({"Timestamp": "yesterday"}, "mulesoft: Timestamp must be ISO-8601 like"),
        (
            {"Request Size": -2},
            "mulesoft: Request Size must be a whole number of bytes (>= 0), got -2",
        ),
        (
            {"Response Size": "big"},
            "mulesoft: Response Size must be a whole number of bytes, got 'big'",
        ),
        (
            {"Status Code": 1000},
            "mulesoft: Status Code must be an HTTP status code (100..599), got 1000",
        ),
        ({"headers": "x-tenant-id: acme"}, "mulesoft: headers must be a JSON object"),
    ],
)
def test_bad_fields_are_rejected_with_exact_reasons(changes: dict[str, Any], reason: str) -> None:
    error = error_of("mulesoft", {**MULESOFT_EVENT, **changes})
    assert error.startswith(reason), error
