"""Realistic native payloads, exactly as each gateway's metering plugin would send them.

Used by ``python -m pipeline dev`` and by the tests of every stage to generate traffic. Each
builder takes one :class:`SampleCall` (what happened) and returns the plugin's JSON value;
decoding it with the gateway's decoder gives the call's values back (tested). Payloads are
deterministic: the same call always gives the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import lz4.frame
import orjson

from pipeline.events import Gateway, format_utc
from pipeline.ingest.body import Encoding

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAMESPACE = uuid.UUID("6f1f3c52-6c43-4f0e-9a55-0c5b2f9d1e7a")


@dataclass(frozen=True, slots=True)
class SampleCall:
    """One API request as the gateway saw it (``tenant`` is the X-Tenant-Id value sent)."""

    idempotency_key: str
    timestamp: datetime
    api: str
    route: str
    method: str = "GET"
    status: int = 200
    request_bytes: int | None = None
    response_bytes: int | None = None
    latency_ms: int | None = None
    consumer: str | None = None
    tenant: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


def _millis(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def _uuid(call: SampleCall, salt: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{salt}:{call.idempotency_key}"))


def kong_event(call: SampleCall) -> dict[str, Any]:
    """The http-log plugin's serializer object (Kong 3.x; sizes are nginx strings)."""
    headers: dict[str, Any] = {"host": "gateway.example.com", "user-agent": "curl/8.5.0"}
    if call.tenant is not None:
        headers["x-tenant-id"] = call.tenant
    started = _millis(call.timestamp)
    latency = call.latency_ms if call.latency_ms is not None else 0
    event: dict[str, Any] = {
        "request": {
            "id": call.idempotency_key,
            "method": call.method,
            "uri": f"{call.route}?source=sample",
            "url": f"https://gateway.example.com:8443{call.route}?source=sample",
            "querystring": {"source": "sample"},
            "headers": headers,
            "size": None if call.request_bytes is None else str(call.request_bytes),
        },
        "response": {
            "status": call.status,
            "headers": {
                "content-type": "application/json",
                "x-kong-request-id": call.idempotency_key,
            },
            "size": None if call.response_bytes is None else str(call.response_bytes),
        },
        "route": {"id": _uuid(call, "route"), "name": f"{call.api}-route", "paths": [call.route]},
        "service": {"id": _uuid(call, "service"), "name": call.api, "host": "upstream.internal"},
        "latencies": {
            "request": call.latency_ms,
            "kong": min(latency, 2),
            "proxy": max(latency - 2, 0),
        },
        "started_at": started,
        "client_ip": "203.0.113.10",
        "upstream_status": str(call.status),
        "workspace_name": "default",
    }
    if call.consumer is not None:
        event["consumer"] = {"id": _uuid(call, "consumer"), "username": call.consumer}
    return event


def apigee_event(call: SampleCall) -> dict[str, Any]:
    """Flow variables from a JavaScript callout in the PostClientFlow (unset = null)."""
    started = _millis(call.timestamp)
    return {
        "messageid": call.idempotency_key,
        "client.received.start.timestamp": str(started),
        "client.sent.end.timestamp": (
            None if call.latency_ms is None else str(started + call.latency_ms)
        ),
        "request.verb": call.method,
        "request.uri": call.route,
        "proxy.basepath": call.route,
        "proxy.pathsuffix": "",
        "response.status.code": call.status,
        "apiproxy.name": call.api,
        "apiproxy.revision": "3",
        "apiproduct.name": call.attributes.get("apiproduct.name"),
        "developer.app.name": call.consumer,
        "environment.name": "prod",
        "organization.name": "example-org",
        "client.received.content.length": (
            None if call.request_bytes is None else str(call.request_bytes)
        ),
        "client.sent.content.length": call.response_bytes,
        "request.header.X-Tenant-Id": call.tenant,
    }


def aws_access_log(call: SampleCall) -> dict[str, str]:
    """One JSON access-log line of ``$context`` values (all strings, ``-`` when absent)."""

    def text(value: object) -> str:
        return "-" if value is None else str(value)

    return {
        "requestId": _uuid(call, "aws-request"),
        "extendedRequestId": call.idempotency_key,
        "requestTimeEpoch": str(_millis(call.timestamp)),
        "httpMethod": call.method,
        "resourcePath": call.route,
        "path": f"/prod{call.route}",
        "status": str(call.status),
        "protocol": "HTTP/1.1",
        "responseLength": text(call.response_bytes),
        "responseLatency": text(call.latency_ms),
        "integrationLatency": text(call.latency_ms),
        "apiId": call.api,
        "stage": "prod",
        "identity.apiKeyId": text(call.consumer),
        "authorizer.tenantId": text(call.tenant),
    }


def aws_envelope(
    calls: Sequence[SampleCall], *, log_group: str = "API-Gateway-Execution-Logs_sample/prod"
) -> dict[str, Any]:
    """The decoded CloudWatch Logs subscription envelope carrying one log event per call."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": "access",
        "subscriptionFilters": ["metering"],
        "logEvents": [
            {
                "id": str(int(uuid.UUID(_uuid(call, "aws-log-event")))),
                "timestamp": _millis(call.timestamp),
                "message": orjson.dumps(aws_access_log(call)).decode(),
            }
            for call in calls
        ],
    }


def aws_subscription(calls: Sequence[SampleCall], **envelope_args: str) -> dict[str, Any]:
    """What a subscription delivers: ``{"awslogs": {"data": base64(gzip(envelope))}}``."""
    envelope = orjson.dumps(aws_envelope(calls, **envelope_args))
    data = base64.b64encode(gzip.compress(envelope, mtime=0)).decode()
    return {"awslogs": {"data": data}}


def aws_control_message() -> dict[str, Any]:
    """The envelope CloudWatch sends to check a subscription's destination."""
    return {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [
            {
                "id": "",
                "timestamp": 1700000000000,
                "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.",
            }
        ],
    }


def _azure_time(moment: datetime) -> str:
    # Log Analytics prints 7 fraction digits.
    return format_utc(moment)[:-1] + "0Z"


def azure_event(call: SampleCall) -> dict[str, Any]:
    """An outbound policy's JSON named after the ApiManagementGatewayLogs columns."""
    headers = {"Host": "contoso.azure-api.net", "User-Agent": "curl/8.5.0"}
    if call.tenant is not None:
        headers["X-Tenant-Id"] = call.tenant
    return {
        "TimeGenerated": _azure_time(call.timestamp),
        "CorrelationId": call.idempotency_key,
        "Method": call.method,
        "Url": f"https://contoso.azure-api.net{call.route}",
        "ApiId": call.api,
        "OperationId": call.attributes.get("OperationId", f"{call.method.lower()}-operation"),
        "ProductId": call.attributes.get("ProductId", "starter"),
        "ApimSubscriptionId": call.consumer,
        "ResponseCode": call.status,
        "RequestSize": call.request_bytes,
        "ResponseSize": call.response_bytes,
        "TotalTime": call.latency_ms,
        "RequestHeaders": headers,
    }


def azure_resource_log(calls: Sequence[SampleCall]) -> dict[str, Any]:
    """The diagnostic-settings resource-log form (``records`` with camelCase properties)."""
    records = []
    for call in calls:
        flat = azure_event(call)
        properties = {
            name[0].lower() + name[1:]: value
            for name, value in flat.items()
            if name not in ("TimeGenerated", "CorrelationId", "TotalTime")
        }
        records.append(
            {
                "time": flat["TimeGenerated"],
                "resourceId": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/"
                "MICROSOFT.APIMANAGEMENT/SERVICE/CONTOSO",
                "operationName": "Microsoft.ApiManagement/GatewayLogs",
                "category": "GatewayLogs",
                "durationMs": call.latency_ms,
                "correlationId": call.idempotency_key,
                "properties": properties,
            }
        )
    return {"records": records}


def mulesoft_event(call: SampleCall) -> dict[str, Any]:
    """An Anypoint analytics event (sizes ``-1`` when unknown) with the request headers."""
    headers = {"host": "api.example.cloudhub.io", "user-agent": "curl/8.5.0"}
    if call.tenant is not None:
        headers["x-tenant-id"] = call.tenant
    return {
        "Timestamp": format_utc(call.timestamp)[:-4] + "Z",  # milliseconds, as Anypoint prints
        "API ID": call.api,
        "API Name": f"{call.api}-name",
        "API Version ID": call.attributes.get("API Version ID", "16810512"),
        "API Version Name": "v1",
        "Application": call.consumer,
        "Application Name": "",
        "Client IP": "203.0.113.10",
        "Message ID": call.idempotency_key,
        "Request Outcome": "PROCESSED",
        "Verb": call.method,
        "Resource Path": call.route,
        "Status Code": call.status,
        "Request Size": -1 if call.request_bytes is None else call.request_bytes,
        "Response Size": -1 if call.response_bytes is None else call.response_bytes,
        "Response Time": -1 if call.latency_ms is None else call.latency_ms,
        "headers": headers,
    }


def canonical_event(call: SampleCall) -> dict[str, Any]:
    """A canonical event as a plugin may post it directly."""
    return {
        "idempotency_key": call.idempotency_key,
        "tenant_header": call.tenant,
        "timestamp": format_utc(call.timestamp),
        "api": call.api,
        "route": call.route,
        "method": call.method,
        "status": call.status,
        "request_bytes": call.request_bytes,
        "response_bytes": call.response_bytes,
        "latency_ms": call.latency_ms,
        "consumer": call.consumer,
        "attributes": dict(call.attributes),
    }


def native_batch(gateway: Gateway, calls: Sequence[SampleCall]) -> list[dict[str, Any]]:
    """The JSON array a gateway's plugin posts for ``calls`` (AWS: one subscription envelope)."""
    if gateway == "aws":
        return [aws_subscription(calls)] if calls else []
    builders = {
        "kong": kong_event,
        "apigee": apigee_event,
        "azure": azure_event,
        "mulesoft": mulesoft_event,
    }
    return [builders[gateway](call) for call in calls]


def encode_batch(items: Sequence[Any], encoding: Encoding = "lz4") -> bytes:
    """The POST body for ``items``: a JSON array, lz4-frame compressed by default."""
    body = orjson.dumps(list(items))
    if encoding == "lz4":
        return bytes(lz4.frame.compress(body))
    if encoding == "gzip":
        return gzip.compress(body, mtime=0)
    return body
