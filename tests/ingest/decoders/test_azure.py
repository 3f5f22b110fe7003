from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.ingest.decoders import decode_items

from .support import context, error_of, event_of

# What an outbound policy posts, named after the ApiManagementGatewayLogs columns.
AZURE_EVENT: dict[str, Any] = {
    "TimeGenerated": "2026-01-15T10:00:00.1234567Z",
    "CorrelationId": "9d3f7a1e-5b2c-4e8f-a6d0-1c2b3a4d5e6f",
    "Method": "POST",
    "Url": "https://contoso.azure-api.net/payments/v1/charges?expand=all",
    "ApiId": "payments-api",
    "OperationId": "create-charge",
    "ProductId": "unlimited",
    "ApimSubscriptionId": "sub-mobile-app",
    "UserId": "1",
    "ResponseCode": 201,
    "RequestSize": "512",
    "ResponseSize": 2048,
    "TotalTime": 87,
    "BackendTime": 61,
    "ApiRevision": "3",
    "Region": "West Europe",
    "Cache": "none",
    "IsRequestSuccess": True,
    "RequestHeaders": {"Host": "contoso.azure-api.net", "x-TENANT-id": "acme"},
}

# Resource-log (diagnostic settings) form: camelCase properties under records.
RECORD: dict[str, Any] = {
    "time": "2026-01-15T10:00:00.1234567Z",
    "resourceId": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.APIMANAGEMENT"
    "/SERVICE/CONTOSO",
    "operationName": "Microsoft.ApiManagement/GatewayLogs",
    "category": "GatewayLogs",
    "durationMs": 87,
    "callerIpAddress": "203.0.113.10",
    "correlationId": "9d3f7a1e-5b2c-4e8f-a6d0-1c2b3a4d5e6f",
    "location": "West Europe",
    "properties": {
        "method": "POST",
        "url": "https://contoso.azure-api.net/payments/v1/charges?expand=all",
        "backendResponseCode": 201,
        "responseCode": 201,
        "responseSize": 2048,
        "cache": "none",
        "backendTime": 61,
        "requestSize": 512,
        "apiId": "payments-api",
        "operationId": "create-charge",
        "productId": "unlimited",
        "apimSubscriptionId": "sub-mobile-app",
        "apiRevision": "3",
        "requestHeaders": {"X-Tenant-Id": "acme"},
    },
}


def test_flat_pascal_case_event() -> None:
    event = event_of("azure", AZURE_EVENT)
    assert event.idempotency_key == "9d3f7a1e-5b2c-4e8f-a6d0-1c2b3a4d5e6f"
    assert event.gateway == "azure"
    assert event.integration_id == "azure-prod"
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)
    assert event.tenant_headers == ("acme",)
    assert event.api == "payments-api"
    assert event.route == "/payments/v1/charges"
    assert event.method == "POST"
    assert event.status == 201
    assert event.request_bytes == 512
    assert event.response_bytes == 2048
    assert event.latency_ms == 87
    assert event.consumer == "sub-mobile-app"
    assert event.attributes == {
        "OperationId": "create-charge",
        "ProductId": "unlimited",
        "ApiRevision": "3",
        "UserId": "1",
        "Region": "West Europe",
        "Cache": "none",
    }


def test_resource_log_records_expand_like_envelopes() -> None:
    second = {
        **RECORD,
        "correlationId": "second",
        "properties": {**RECORD["properties"], "responseCode": 404},
    }
    item = {"records": [RECORD, second]}
    results = decode_items([item], context("azure"))
    assert [(r.index, r.sub_index) for r in results] == [(0, 0), (0, 1)]
    first = results[0].event
    assert first is not None
    flat = event_of("azure", AZURE_EVENT)
    # same call, same canonical values (BackendResponseCode only exists in the record)
    assert first.model_dump(exclude={"attributes"}) == flat.model_dump(exclude={"attributes"})
    assert first.attributes["OperationId"] == "create-charge"
    assert first.attributes["BackendResponseCode"] == "201"
    assert results[1].event is not None
    assert results[1].event.status == 404
    assert orjson.loads(results[1].raw) == {"records": [second]}


def test_properties_win_over_record_level_fields_and_nulls_do_not_hide_values() -> None:
    record = {
        **RECORD,
        "properties": {**RECORD["properties"], "correlationId": None, "durationMs": 90},
    }
    (result,) = decode_items([{"records": [record]}], context("azure"))
    assert result.event is not None
    assert result.event.idempotency_key == RECORD["correlationId"]
    assert result.event.latency_ms == 90


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Tenant-Id": ["acme", "acme_eu"]}, ("acme", "acme_eu")),
        ({"x-tenant-id": "acme", "X-TENANT-ID": "globex"}, ("acme", "globex")),
        ('{"X-Tenant-Id": " acme "}', ("acme",)),
        ({"Host": "x"}, ()),
        (None, ()),
    ],
    ids=["repeated", "two-spellings", "json-string", "absent", "null"],
)
def test_request_headers_any_case(headers: Any, expected: tuple[str, ...]) -> None:
    assert event_of("azure", {**AZURE_EVENT, "RequestHeaders": headers}).tenant_headers == expected


def test_camel_case_flat_and_odd_time_forms() -> None:
    camel = {name[0].lower() + name[1:]: value for name, value in AZURE_EVENT.items()}
    assert event_of("azure", camel) == event_of("azure", AZURE_EVENT)
    six = event_of("azure", {**AZURE_EVENT, "TimeGenerated": "2026-01-15T11:00:00.123+01:00"})
    assert six.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)


def test_response_code_zero_and_missing_optionals_are_unknown() -> None:
    minimal = {"TimeGenerated": "2026-01-15T10:00:00Z", "CorrelationId": "c-1", "ResponseCode": 0}
    event = event_of("azure", minimal)
    assert event.status is None
    assert (event.api, event.route, event.method, event.consumer) == (None, None, None, None)
    assert (event.request_bytes, event.response_bytes, event.latency_ms) == (None, None, None)
    assert event.attributes == {}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"CorrelationId": None}, "azure: CorrelationId is missing"),
        ({"TimeGenerated": None}, "azure: TimeGenerated is missing (the request time, ISO-8601)"),
        (
            {"TimeGenerated": "2026-01-15T10:00:00.1234567"},
            "azure: TimeGenerated must include a UTC offset ('Z' or +hh:mm); naive times are "
            "ambiguous, got '2026-01-15T10:00:00.1234567'",
        ),
        (
            {"TimeGenerated": 1768471200000},
            "azure: TimeGenerated must be an ISO-8601 string, got 1768471200000",
        ),
        (
            {"ResponseCode": "abc"},
            "azure: ResponseCode must be an HTTP status code (100..599), got 'abc'",
        ),
        (
            {"ResponseSize": -2},
            "azure: ResponseSize must be a whole number of bytes (>= 0), got -2",
        ),
        ({"TotalTime": "fast"}, "azure: TotalTime must be a number of milliseconds, got 'fast'"),
        (
            {"RequestHeaders": ["X-Tenant-Id: acme"]},
            "azure: RequestHeaders must be a JSON object of header names to values, "
            "got ['X-Tenant-Id: acme']",
        ),
        (
            {"RequestHeaders": "{broken"},
            "azure: RequestHeaders is a string but not a JSON object (",
        ),
    ],
)
def test_bad_columns_are_rejected_with_exact_reasons(changes: dict[str, Any], reason: str) -> None:
    item = {**AZURE_EVENT, **changes}
    error = error_of("azure", item)
    assert error.startswith(reason), error


def test_bad_records_are_rejected_individually() -> None:
    bad_code = {**RECORD, "properties": {**RECORD["properties"], "responseCode": "x"}}
    other_category = {**RECORD, "category": "WebSocketConnectionLogs"}
    no_properties = {**RECORD, "properties": None}
    item = {"records": [RECORD, bad_code, other_category, no_properties, 7]}
    results = decode_items([item], context("azure"))
    assert [r.accepted for r in results] == [True, False, False, False, False]
    assert [r.error for r in results[1:]] == [
        "azure: records[1].properties.responseCode must be an HTTP status code (100..599), got 'x'",
        "azure: records[2].category must be GatewayLogs (other log categories carry no calls), "
        "got 'WebSocketConnectionLogs'",
        "azure: records[3].properties must be a JSON object of gateway log columns, got None",
        "azure: records[4].record must be a JSON object, got 7",
    ]
    assert orjson.loads(results[4].raw) == {"records": [7]}


def test_records_must_be_an_array() -> None:
    assert error_of("azure", {"records": {"a": 1}}) == (
        "azure: records must be an array of resource-log records, got {'a': 1}"
    )
    assert decode_items([{"records": []}], context("azure")) == []
