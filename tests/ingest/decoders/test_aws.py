import base64
import gzip
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.events import CanonicalEvent
from pipeline.ingest.body import DecompressionBudget
from pipeline.ingest.decoders import aws, decode_items
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.errors import BodyTooLarge

from .support import context, error_of

ACCESS_LOG: dict[str, str] = {
    "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    "extendedRequestId": "Ab1CdEfGhIjKlMn=",
    "ip": "203.0.113.10",
    "caller": "-",
    "user": "-",
    "requestTime": "15/Jan/2026:10:00:00 +0000",
    "requestTimeEpoch": "1768471200123",
    "httpMethod": "POST",
    "resourcePath": "/v1/payments/{id}/capture",
    "path": "/prod/v1/payments/ch_123/capture",
    "status": "201",
    "protocol": "HTTP/1.1",
    "responseLength": "1450",
    "responseLatency": "45",
    "integrationLatency": "38",
    "apiId": "h7k2p9q4xa",
    "stage": "prod",
    "identity.apiKeyId": "k9x8w7v6u5",
    "authorizer.tenantId": "acme",
    "authorizer.principalId": "user-17",
}


def log_line(**changes: str) -> str:
    return orjson.dumps({**ACCESS_LOG, **changes}).decode()


def envelope(*messages: Any, message_type: str = "DATA_MESSAGE") -> dict[str, Any]:
    return {
        "messageType": message_type,
        "owner": "123456789012",
        "logGroup": "API-Gateway-Access-Logs_h7k2p9q4xa/prod",
        "logStream": "2b2c5d3f8e7a6b5c4d3e2f1a0b9c8d7e",
        "subscriptionFilters": ["metering"],
        "logEvents": [
            {
                "id": f"3719580011700000000000000000000000000000000000000{n:04d}",
                "timestamp": 1768471201000,
                "message": m,
            }
            for n, m in enumerate(messages)
        ],
    }


def subscription(body: dict[str, Any]) -> dict[str, Any]:
    return {"awslogs": {"data": base64.b64encode(gzip.compress(orjson.dumps(body))).decode()}}


def events(item: Any, **kwargs: Any) -> list[CanonicalEvent]:
    results = decode_items([item], context("aws", **kwargs))
    assert all(r.event is not None for r in results), [r.error for r in results]
    return [r.event for r in results if r.event is not None]


def test_decoded_envelope_with_several_log_events() -> None:
    item = envelope(
        log_line(),
        log_line(extendedRequestId="Zz9=", status="500"),
        log_line(extendedRequestId="Yy8="),
    )
    results = decode_items([item], context("aws"))
    assert [(r.index, r.sub_index) for r in results] == [(0, 0), (0, 1), (0, 2)]
    first = results[0].event
    assert first is not None
    assert first.idempotency_key == "Ab1CdEfGhIjKlMn="
    assert first.gateway == "aws"
    assert first.integration_id == "aws-prod"
    assert first.timestamp == datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)
    assert first.tenant_headers == ("acme",)
    assert first.api == "h7k2p9q4xa"
    assert first.route == "/v1/payments/{id}/capture"
    assert first.method == "POST"
    assert first.status == 201
    assert first.request_bytes is None
    assert first.response_bytes == 1450
    assert first.latency_ms == 45
    assert first.consumer == "k9x8w7v6u5"
    assert first.attributes == {
        "stage": "prod",
        "integrationLatency": "38",
        "logGroup": "API-Gateway-Access-Logs_h7k2p9q4xa/prod",
    }
    assert [r.event.status for r in results if r.event] == [201, 500, 201]


def test_base64_gzip_subscription_equals_decoded_envelope() -> None:
    body = envelope(log_line(), log_line(extendedRequestId="Zz9="))
    assert events(subscription(body)) == events(body)


def test_control_message_yields_nothing() -> None:
    control = envelope(
        "CWL CONTROL MESSAGE: Checking health of destination", message_type="CONTROL_MESSAGE"
    )
    assert decode_items([control, subscription(control)], context("aws")) == []


def test_dash_means_absent() -> None:
    line = log_line(
        extendedRequestId="-",
        status="-",
        responseLength="-",
        responseLatency="-",
        integrationLatency="-",
        resourcePath="-",
        apiId="-",
        httpMethod="-",
        stage="-",
        **{"identity.apiKeyId": "-", "authorizer.tenantId": "-", "authorizer.principalId": "-"},
    )
    (event,) = events(envelope(line))
    assert event.idempotency_key == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # requestId
    assert (event.status, event.response_bytes, event.latency_ms) == (None, None, None)
    assert (event.api, event.method, event.consumer) == (None, None, None)
    assert event.route == "/prod/v1/payments/ch_123/capture"  # path
    assert event.tenant_headers == ()
    assert "stage" not in event.attributes


def test_tenant_from_authorizer_else_api_key_map() -> None:
    tenants = {"k9x8w7v6u5": "globex"}
    (with_authorizer,) = events(envelope(log_line()), api_key_tenants=tenants)
    assert with_authorizer.tenant_headers == ("acme",)
    (from_key,) = events(
        envelope(log_line(**{"authorizer.tenantId": "-"})), api_key_tenants=tenants
    )
    assert from_key.tenant_headers == ("globex",)
    (unknown_key,) = events(
        envelope(log_line(**{"authorizer.tenantId": "-", "identity.apiKeyId": "other"})),
        api_key_tenants=tenants,
    )
    assert unknown_key.tenant_headers == ()


def test_nested_keys_http_api_route_key_and_latency_fallback() -> None:
    line = {
        "requestId": "Hx1=",
        "requestTimeEpoch": "1768471200123",
        "httpMethod": "GET",
        "routeKey": "GET /pets/{petId}",
        "path": "/pets/7",
        "status": "200",
        "integrationLatency": "12",
        "apiId": "a1b2c3d4e5",
        "identity": {"apiKeyId": "key-1"},
        "authorizer": {"tenantId": " acme "},
    }
    (event,) = events(envelope(orjson.dumps(line).decode()))
    assert event.route == "/pets/{petId}"
    assert event.latency_ms == 12
    assert event.consumer == "key-1"
    assert event.tenant_headers == ("acme",)
    default_route = {**line, "routeKey": "$default"}
    (event,) = events(envelope(orjson.dumps(default_route).decode()))
    assert event.route == "/pets/7"


def test_message_may_already_be_an_object_and_time_falls_back_to_the_log_event() -> None:
    (event,) = events(envelope({**ACCESS_LOG, "requestTimeEpoch": "-"}))
    assert event.timestamp == datetime(2026, 1, 15, 10, 0, 1, tzinfo=UTC)


def test_bad_log_events_are_rejected_individually_with_their_own_raw_bytes() -> None:
    item = envelope(
        log_line(), log_line(status="abc"), "not json", log_line(requestTimeEpoch="soon")
    )
    results = decode_items([item], context("aws"))
    assert [r.accepted for r in results] == [True, False, False, False]
    assert (
        results[1].error
        == "aws: logEvents[1].message.status must be an HTTP status code (100..599), got 'abc'"
    )
    assert results[1].sub_index == 1
    assert results[1].error_entry() == {"index": 0, "sub_index": 1, "error": results[1].error}
    assert results[2].error is not None
    assert results[2].error.startswith("aws: logEvents[2].message is not a JSON access-log line (")
    assert (
        results[3].error
        == "aws: logEvents[3].message.requestTimeEpoch must be epoch milliseconds, got 'soon'"
    )
    raw = orjson.loads(results[1].raw)
    assert raw["logGroup"] == item["logGroup"]
    assert raw["logEvents"] == [item["logEvents"][1]]
    # a dead letter is a valid envelope again: re-posting it gives the same rejection
    (again,) = decode_items([raw], context("aws"))
    assert again.error == results[1].error.replace("logEvents[1]", "logEvents[0]")


def test_accepted_sub_events_carry_a_reposted_envelope_too() -> None:
    item = envelope(log_line(), log_line(extendedRequestId="Zz9="))
    results = decode_items([item], context("aws"))
    reposted = decode_items([orjson.loads(results[1].raw)], context("aws"))
    assert reposted[0].event == results[1].event


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (
            {"records": []},
            'aws: event must be a CloudWatch Logs subscription envelope ({"awslogs": {"data": '
            '"<base64 gzip>"}} or {"messageType": ..., "logEvents": [...]}), got {\'records\': []}',
        ),
        ({"awslogs": {"data": "%%%not base64%%%"}}, "aws: awslogs.data is not valid base64 ("),
        (
            {"awslogs": {"data": 42}},
            "aws: awslogs.data must be a base64 string of gzip-compressed JSON, got 42",
        ),
        ({"awslogs": "x"}, "aws: awslogs must be a JSON object, got 'x'"),
        (
            {"awslogs": {"data": base64.b64encode(b"plain text").decode()}},
            "aws: awslogs.data is not gzip data (invalid gzip data (",
        ),
        (
            {"awslogs": {"data": base64.b64encode(gzip.compress(b"{oops")).decode()}},
            "aws: awslogs.data does not hold JSON (",
        ),
        (
            {"awslogs": {"data": base64.b64encode(gzip.compress(b"[1]")).decode()}},
            "aws: awslogs.data does not hold a CloudWatch Logs envelope, got [1]",
        ),
        (
            {**envelope(), "messageType": "DATA"},
            "aws: messageType must be DATA_MESSAGE or CONTROL_MESSAGE, got 'DATA'",
        ),
        ({**envelope(), "logEvents": {}}, "aws: logEvents must be an array of log events, got {}"),
    ],
)
def test_bad_envelopes(item: Any, reason: str) -> None:
    error = error_of("aws", item)
    assert error.startswith(reason), error


def test_embedded_data_is_charged_to_the_requests_decompression_budget() -> None:
    """Each item's gzip data used to inflate on its own (up to 8 MiB each): one 43.7 KB item
    gave 39,746 events. Now every item draws from one budget per request, and going past it
    refuses the whole request (413: split the batch)."""
    big = envelope(*(log_line(extendedRequestId=f"id-{n}") for n in range(200)))
    size = len(orjson.dumps(big))
    items = [subscription(big), subscription(big)]
    roomy = DecoderContext("aws-prod", "aws", {}, DecompressionBudget(2 * size))
    assert len(decode_items(items, roomy)) == 400
    tight = DecoderContext("aws-prod", "aws", {}, DecompressionBudget(2 * size - 1))
    with pytest.raises(BodyTooLarge) as caught:
        decode_items(items, tight)  # each item alone fits; together they do not
    assert caught.value.limit == 2 * size - 1


def test_log_event_entries_must_be_objects() -> None:
    item = envelope(log_line())
    item["logEvents"].append("loose string")
    results = decode_items([item], context("aws"))
    assert results[1].error == (
        "aws: logEvents[1].entry must be a JSON object with id, timestamp and message, "
        "got 'loose string'"
    )


def test_an_internal_error_in_one_log_event_spares_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = aws.build_event

    def flaky(ctx: Any, **values: Any) -> CanonicalEvent:
        if values["idempotency_key"] == "boom":
            raise RuntimeError("simulated bug")
        return real(ctx, **values)

    monkeypatch.setattr(aws, "build_event", flaky)
    results = decode_items(
        [envelope(log_line(), log_line(extendedRequestId="boom"))], context("aws")
    )
    assert results[0].accepted
    assert results[1].error == (
        "aws: logEvents[1] could not be decoded (internal error RuntimeError: simulated bug)"
    )
