import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.ingest.decoders import decode_items

from .support import context, error_of, event_of

REQUEST_ID = "b3a1c2d4e5f60718293a4b5c6d7e8f90"

# A Kong 3.x http-log serializer object (field names as the plugin sends them).
KONG_EVENT: dict[str, Any] = {
    "request": {
        "id": REQUEST_ID,
        "method": "POST",
        "uri": "/v1/payments?expand=charges",
        "url": "https://api.example.com:8443/v1/payments?expand=charges",
        "size": "612",
        "querystring": {"expand": "charges"},
        "headers": {
            "host": "api.example.com",
            "content-type": "application/json",
            "user-agent": "okhttp/4.12.0",
            "x-tenant-id": "acme",
        },
        "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "client_verify": "NONE"},
    },
    "upstream_uri": "/payments?expand=charges",
    "upstream_status": "201",
    "response": {
        "status": 201,
        "size": "1034",
        "headers": {
            "content-type": "application/json",
            "x-kong-request-id": REQUEST_ID,
            "x-kong-upstream-latency": "30",
            "x-kong-proxy-latency": "3",
        },
    },
    "tries": [
        {"balancer_latency": 0, "port": 8080, "balancer_start": 1768471200126, "ip": "10.0.3.7"}
    ],
    "route": {
        "id": "0f6a3e62-7d0c-4f55-9d0f-3c1a4e8b2a11",
        "name": "payments-create",
        "paths": ["/v1/payments"],
        "methods": ["POST"],
        "protocols": ["https"],
        "strip_path": True,
        "service": {"id": "9b1f0c9e-2f5e-4a61-8c1e-5d7a3b4c2e10"},
    },
    "service": {
        "id": "9b1f0c9e-2f5e-4a61-8c1e-5d7a3b4c2e10",
        "name": "payments-svc",
        "host": "payments.internal",
        "port": 8080,
        "protocol": "http",
        "path": "/payments",
        "retries": 5,
    },
    "consumer": {
        "id": "5e0d6b8a-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
        "username": "mobile-app",
        "custom_id": "cust-42",
    },
    "latencies": {"request": 35, "kong": 3, "proxy": 30, "receive": 0},
    "client_ip": "203.0.113.10",
    "started_at": 1768471200123,
    "workspace": "a6b8c9d0-0000-4000-8000-000000000000",
    "workspace_name": "default",
    "source": "upstream",
}


def kong(**changes: Any) -> dict[str, Any]:
    """A copy of KONG_EVENT with dotted paths replaced (``None`` deletes)."""
    event = copy.deepcopy(KONG_EVENT)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = event
        for parent in parents:
            target = target.setdefault(parent, {})
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return event


def test_full_kong_event() -> None:
    event = event_of("kong", KONG_EVENT)
    assert event.idempotency_key == REQUEST_ID
    assert event.gateway == "kong"
    assert event.integration_id == "kong-prod"
    assert event.tenant_headers == ("acme",)
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)
    assert event.api == "payments-svc"
    assert event.route == "/v1/payments"
    assert event.method == "POST"
    assert event.status == 201
    assert event.request_bytes == 612
    assert event.response_bytes == 1034
    assert event.latency_ms == 35
    assert event.consumer == "mobile-app"
    assert event.attributes == {
        "route.name": "payments-create",
        "latencies.kong": "3",
        "latencies.proxy": "30",
        "workspace_name": "default",
        "upstream_status": "201",
    }


def test_a_batch_array_gives_one_result_per_event_in_order() -> None:
    batch = [kong(request__id=f"req-{n}") for n in range(3)]
    results = decode_items(batch, context("kong"))
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.sub_index for r in results] == [None, None, None]
    assert [r.event.idempotency_key for r in results if r.event] == ["req-0", "req-1", "req-2"]


def test_minimal_event_leaves_unknowns_null() -> None:
    event = event_of("kong", {"request": {"id": "r1"}, "started_at": 1768471200000})
    assert event.idempotency_key == "r1"
    assert (event.api, event.route, event.method, event.status) == (None, None, None, None)
    assert (event.request_bytes, event.response_bytes, event.latency_ms) == (None, None, None)
    assert event.consumer is None
    assert event.tenant_headers == ()
    assert event.attributes == {}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-tenant-id": ["acme", " acme_eu "]}, ("acme", "acme_eu")),
        ({"x-tenant-id": "acme, globex"}, ("acme, globex",)),
        ({"X-Tenant-ID": "  acme  "}, ("acme",)),
        ({"x-tenant-id": ["acme", "", "  "]}, ("acme",)),
        ({"x-tenant-id": ""}, ()),
        ({"host": "a"}, ()),
    ],
    ids=[
        "repeated",
        "comma-joined-not-split",
        "any-case-trimmed",
        "blank-dropped",
        "empty",
        "absent",
    ],
)
def test_tenant_header_values(headers: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert event_of("kong", kong(request__headers=headers)).tenant_headers == expected


def test_numbers_as_numbers_or_strings() -> None:
    event = event_of(
        "kong",
        kong(
            request__size=612,
            response__size="1034",
            response__status="201",
            started_at="1768471200123",
        ),
    )
    assert (event.request_bytes, event.response_bytes, event.status) == (612, 1034, 201)
    assert event.timestamp.microsecond == 123000


def test_request_id_falls_back_to_the_response_header() -> None:
    event = event_of("kong", kong(request__id=None))
    assert event.idempotency_key == REQUEST_ID
    repeated = kong(request__id=None, response__headers={"X-Kong-Request-Id": ["abc", "abc"]})
    assert event_of("kong", repeated).idempotency_key == "abc"


def test_route_prefers_the_single_route_path() -> None:
    assert event_of("kong", kong(route__paths=["/v1/payments", "/v1/pay"])).route == "/v1/payments"
    assert event_of("kong", kong(route__paths=["~/v1/payments/\\d+$"])).route == "/v1/payments"
    assert event_of("kong", kong(route=None)).route == "/v1/payments"
    only_url = kong(route=None, request__uri=None)
    assert event_of("kong", only_url).route == "/v1/payments"


def test_consumer_and_api_fallbacks() -> None:
    assert (
        event_of("kong", kong(consumer__username=None)).consumer
        == "5e0d6b8a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
    )
    entity = kong(consumer=None, authenticated_entity={"id": "cred-1", "consumer_id": "c-1"})
    assert event_of("kong", entity).consumer == "cred-1"
    assert event_of("kong", kong(service__name=None)).api == "9b1f0c9e-2f5e-4a61-8c1e-5d7a3b4c2e10"


def test_unknown_latency_minus_one_is_null() -> None:
    assert event_of("kong", kong(latencies__request=-1)).latency_ms is None


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (kong(started_at="abc"), "kong: started_at must be epoch milliseconds, got 'abc'"),
        (
            kong(started_at=None),
            "kong: started_at is missing (the request time in epoch milliseconds)",
        ),
        (
            kong(started_at=1768471200),
            "kong: started_at must be epoch milliseconds between the years 2000 and 2100 "
            "(looks like epoch seconds), got 1768471200",
        ),
        (kong(started_at=True), "kong: started_at must be epoch milliseconds, got True"),
        (
            kong(request__id=None, response__headers={}),
            "kong: request.id is missing (logged by Kong >= 3.5; older Kong: send the "
            "x-kong-request-id header)",
        ),
        (kong(request__id="x" * 513), "kong: request.id is longer than 512 characters, got 'xxxx"),
        (kong(request__id={"a": 1}), "kong: request.id must be a string, got {'a': 1}"),
        (
            kong(response__status="abc"),
            "kong: response.status must be an HTTP status code (100..599), got 'abc'",
        ),
        (
            kong(response__status=42),
            "kong: response.status must be an HTTP status code (100..599), got 42",
        ),
        (
            kong(request__size="-5"),
            "kong: request.size must be a whole number of bytes (>= 0), got '-5'",
        ),
        (
            kong(response__size=12.5),
            "kong: response.size must be a whole number of bytes, got 12.5",
        ),
        (
            kong(latencies__request=-7),
            "kong: latencies.request must be a number of milliseconds (>= 0), got -7",
        ),
        (
            kong(request__method="G E T"),
            "kong: request.method must be an HTTP method like GET or POST, got 'G E T'",
        ),
        (kong(request="oops"), "kong: request must be a JSON object, got 'oops'"),
        (
            kong(request__headers=[["x-tenant-id", "acme"]]),
            "kong: request.headers must be a JSON object of header names to values, "
            "got [['x-tenant-id', 'acme']]",
        ),
        (
            kong(request__headers={"x-tenant-id": {"v": "acme"}}),
            "kong: request.headers['x-tenant-id'] must be a string, got {'v': 'acme'}",
        ),
        (5, "kong: event must be a non-empty Kong log serializer object, got 5"),
        ({}, "kong: event must be a non-empty Kong log serializer object, got {}"),
    ],
)
def test_bad_fields_are_rejected_with_exact_reasons(item: Any, reason: str) -> None:
    error = error_of("kong", item)
    assert error.startswith(reason), error


def test_a_bad_event_does_not_affect_its_neighbours() -> None:
    results = decode_items([KONG_EVENT, kong(started_at="abc"), KONG_EVENT], context("kong"))
    assert [r.accepted for r in results] == [True, False, True]
    assert results[1].index == 1
    assert results[1].error_entry() == {"index": 1, "error": results[1].error}
