from datetime import UTC, datetime
from typing import Any

import pytest

from .support import error_of, event_of

# Flow variables as a JavaScript callout in the PostClientFlow collects them with
# context.getVariable(...): unset variables are null, numbers often arrive as strings.
APIGEE_EVENT: dict[str, Any] = {
    "messageid": "rrt-0c7a1f2e3d4b5a69-c-ea-12345-6789012-1",
    "organization.name": "example-org",
    "environment.name": "prod",
    "apiproxy.name": "payments-v1",
    "apiproxy.revision": "7",
    "apiproduct.name": "payments-gold",
    "developer.app.name": "mobile-app",
    "client_id": "Kq2x9ZpL0aBcDeFgHiJkLmNoPqRsTuVw",
    "proxy.basepath": "/v1/payments",
    "proxy.pathsuffix": "/ch_123/capture",
    "request.verb": "post",
    "request.uri": "/v1/payments/ch_123/capture?expand=all",
    "request.path": "/v1/payments/ch_123/capture",
    "request.header.X-Tenant-Id": "acme",
    "request.header.Content-Length": "88",
    "response.status.code": 200,
    "client.received.start.timestamp": "1768471200123",
    "client.sent.end.timestamp": 1768471200168,
    "client.received.content.length": "88",
    "client.sent.content.length": 1450,
    "current.flow.name": "capture",
    "target.received.content.length": None,
    "developer.email": None,
}


def apigee(**changes: Any) -> dict[str, Any]:
    event = dict(APIGEE_EVENT)
    for name, value in changes.items():
        key = name.replace("__", ".")
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def test_full_apigee_event() -> None:
    event = event_of("apigee", APIGEE_EVENT)
    assert event.idempotency_key == "rrt-0c7a1f2e3d4b5a69-c-ea-12345-6789012-1"
    assert event.gateway == "apigee"
    assert event.integration_id == "apigee-prod"
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)
    assert event.tenant_headers == ("acme",)
    assert event.api == "payments-v1"
    assert event.route == "/v1/payments/ch_123/capture"
    assert event.method == "POST"
    assert event.status == 200
    assert event.request_bytes == 88
    assert event.response_bytes == 1450
    assert event.latency_ms == 45
    assert event.consumer == "mobile-app"
    assert event.attributes == {
        "apiproduct.name": "payments-gold",
        "apiproxy.revision": "7",
        "environment.name": "prod",
        "organization.name": "example-org",
        "current.flow.name": "capture",
    }


def test_timestamp_as_number_or_string_and_status_as_string() -> None:
    event = event_of(
        "apigee",
        apigee(client__received__start__timestamp=1768471200123, response__status__code="404"),
    )
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)
    assert event.status == 404


def test_null_flow_variables_are_unknown_values() -> None:
    event = event_of(
        "apigee",
        apigee(
            **{
                "apiproduct.name": None,
                "developer.app.name": None,
                "client_id": None,
                "client.sent.end.timestamp": None,
                "client.received.content.length": None,
                "request.header.Content-Length": None,
                "client.sent.content.length": None,
                "response.status.code": None,
                "request.header.X-Tenant-Id": None,
            }
        ),
    )
    assert event.consumer is None
    assert event.latency_ms is None
    assert event.request_bytes is None
    assert event.response_bytes is None
    assert event.status is None
    assert event.tenant_headers == ()
    assert "apiproduct.name" not in event.attributes


def test_fallbacks_for_sizes_consumer_and_route() -> None:
    event = event_of(
        "apigee",
        apigee(
            **{
                "client.received.content.length": None,
                "developer.app.name": None,
                "proxy.basepath": None,
            }
        ),
    )
    assert event.request_bytes == 88  # request.header.Content-Length
    assert event.consumer == "Kq2x9ZpL0aBcDeFgHiJkLmNoPqRsTuVw"  # client_id
    assert event.route == "/v1/payments/ch_123/capture"  # request.path
    no_path = apigee(**{"proxy.basepath": None, "request.path": None})
    assert event_of("apigee", no_path).route == "/v1/payments/ch_123/capture"  # request.uri
    root = apigee(**{"proxy.basepath": "/", "proxy.pathsuffix": "/ping"})
    assert event_of("apigee", root).route == "/ping"
    no_suffix = apigee(**{"proxy.pathsuffix": None})
    assert event_of("apigee", no_suffix).route == "/v1/payments"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("request.header.x-tenant-id", " acme ", ("acme",)),
        ("REQUEST.HEADER.X-TENANT-ID", ["acme", "globex"], ("acme", "globex")),
        ("request.header.X-Tenant-Id", "acme,globex", ("acme,globex",)),
    ],
)
def test_tenant_variable_any_case_and_multi_valued(
    variable: str, value: Any, expected: tuple[str, ...]
) -> None:
    item = apigee(**{"request.header.X-Tenant-Id": ...})
    item[variable] = value
    assert event_of("apigee", item).tenant_headers == expected


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"messageid": None}, "apigee: messageid is missing"),
        (
            {"client.received.start.timestamp": None},
            "apigee: client.received.start.timestamp is missing (the request time in epoch "
            "milliseconds)",
        ),
        (
            {"client.received.start.timestamp": "2026-01-15T10:00:00Z"},
            "apigee: client.received.start.timestamp must be epoch milliseconds, "
            "got '2026-01-15T10:00:00Z'",
        ),
        (
            {"response.status.code": "OK"},
            "apigee: response.status.code must be an HTTP status code (100..599), got 'OK'",
        ),
        (
            {"client.sent.content.length": "1.4kb"},
            "apigee: client.sent.content.length must be a whole number of bytes, got '1.4kb'",
        ),
        (
            {"client.sent.end.timestamp": 1768471200000},
            "apigee: client.sent.end.timestamp is before client.received.start.timestamp, "
            "got 1768471200000",
        ),
        (
            {"request.verb": 7},
            "apigee: request.verb must be an HTTP method like GET or POST, got 7",
        ),
        ({"apiproxy.name": ["a"]}, "apigee: apiproxy.name must be a string, got ['a']"),
    ],
)
def test_bad_variables_are_rejected_with_exact_reasons(
    changes: dict[str, Any], reason: str
) -> None:
    item = dict(APIGEE_EVENT)
    item.update(changes)
    assert error_of("apigee", item) == reason


def test_not_an_object() -> None:
    assert error_of("apigee", ["messageid"]) == (
        "apigee: event must be a non-empty object of Apigee flow variables, got ['messageid']"
    )
